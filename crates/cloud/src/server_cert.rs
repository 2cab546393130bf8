//! The certificate `serve` presents: a PEM chain (leaf first) and its key, either the
//! operator's (`serve --tls-cert FILE --tls-key FILE`) or the one `init` and `tls renew` make
//! (`tls/server.pem`, `tls/server-key.pem`). The files are checked when loaded (a certificate,
//! a key that belongs to it, valid now) and read again on SIGHUP: a new certificate is used by
//! new handshakes, connections already established keep theirs, and a reload that fails keeps
//! the certificate served until then.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use zeroize::Zeroizing;

use crate::clock::rfc3339;
use crate::metrics::Metrics;

/// Where the served certificate chain and its key are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificates, the server's own first, then intermediates.
    pub cert: PathBuf,
    /// The PEM private key (PKCS#8, SEC1 or RSA).
    pub key: PathBuf,
}

/// Why the certificate files cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}. Check the path and that the user running `passthru-cloud serve` may read it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The certificate file holds no usable certificate.
    #[error("{path} holds no usable certificate ({why}): give a PEM file with the server's certificate first (-----BEGIN CERTIFICATE-----), then its intermediates")]
    NoCertificate { path: PathBuf, why: String },
    /// The key file holds no usable private key.
    #[error("{path} holds no usable private key ({why}): give the certificate's private key as PEM (BEGIN PRIVATE KEY, BEGIN EC PRIVATE KEY or BEGIN RSA PRIVATE KEY), unencrypted")]
    NoKey { path: PathBuf, why: String },
    /// The key is not the certificate's.
    #[error("the private key in {key} does not belong to the certificate in {cert}: give the key the certificate was issued for")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// The certificate is not valid now.
    #[error("the certificate in {path} {when}: {what}")]
    NotValidNow {
        path: PathBuf,
        when: String,
        what: &'static str,
    },
}

/// A loaded, checked certificate and key.
pub struct ServedCert {
    /// What rustls presents.
    pub certified: Arc<CertifiedKey>,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the leaf's DER, hex.
    pub fingerprint: String,
}

impl std::fmt::Debug for ServedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedCert")
            .field("not_after", &self.not_after)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, CertError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads and checks `files` at `now` (Unix seconds).
pub fn load(
    files: &TlsFiles,
    provider: &CryptoProvider,
    now: i64,
) -> Result<ServedCert, CertError> {
    let no_cert = |why: String| CertError::NoCertificate {
        path: files.cert.clone(),
        why,
    };
    let no_key = |why: String| CertError::NoKey {
        path: files.key.clone(),
        why,
    };
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| no_cert(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| no_cert("no CERTIFICATE block".into()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| no_cert(format!("the first certificate does not parse: {e}")))?;
    let not_before = parsed.validity().not_before.timestamp();
    let not_after = parsed.validity().not_after.timestamp();
    let fingerprint = crate::pki::fingerprint(leaf);
    if now >= not_after {
        return Err(CertError::NotValidNow {
            path: files.cert.clone(),
            when: format!("expired at {}", rfc3339(not_after)),
            what: "renew it (`passthru-cloud tls renew` for the generated certificate, your CA for your own) and start again",
        });
    }
    if now < not_before {
        return Err(CertError::NotValidNow {
            path: files.cert.clone(),
            when: format!("is not valid before {}", rfc3339(not_before)),
            what: "check this host's clock, or wait until then",
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| no_key(e.to_string()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| no_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    // The ring provider knows the public key of every key type it loads: anything short of
    // a match is refused.
    if certified.keys_match().is_err() {
        return Err(CertError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        });
    }
    Ok(ServedCert {
        certified: Arc::new(certified),
        not_after,
        fingerprint,
    })
}

/// The served certificate, swapped whole by [`ReloadingCert::reload`]; every handshake takes
/// the one current when it starts.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<ServedCert>>,
}

impl ReloadingCert {
    /// Loads `files` (which must be usable at `now`).
    pub fn load(
        files: TlsFiles,
        provider: Arc<CryptoProvider>,
        now: i64,
    ) -> Result<ReloadingCert, CertError> {
        let first = load(&files, &provider, now)?;
        Ok(ReloadingCert {
            files,
            provider,
            current: RwLock::new(Arc::new(first)),
        })
    }

    /// The files read.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<ServedCert> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the files again: on success new handshakes get the new certificate; on failure
    /// the current one stays.
    pub fn reload(&self, now: i64) -> Result<Arc<ServedCert>, CertError> {
        let fresh = Arc::new(load(&self.files, &self.provider, now)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        Ok(fresh)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().certified.clone())
    }
}

/// Certificates expiring sooner than this are warned about at start and on every reload.
const WARN_BEFORE_SECS: i64 = 30 * 86_400;

/// Logs what is served and sets `passthru_tls_cert_expiry_timestamp_seconds`.
pub(crate) fn record(cert: &ReloadingCert, served: &ServedCert, metrics: &Metrics, now: i64) {
    metrics.tls_cert_expiry(served.not_after);
    tracing::info!(
        cert = %cert.files.cert.display(),
        fingerprint = %served.fingerprint,
        not_after = %rfc3339(served.not_after),
        "TLS certificate loaded"
    );
    if served.not_after - now < WARN_BEFORE_SECS {
        tracing::warn!(
            cert = %cert.files.cert.display(),
            not_after = %rfc3339(served.not_after),
            "the TLS certificate expires in less than 30 days: renew it, then send SIGHUP"
        );
    }
}

/// What SIGHUP does: reload, then record the new certificate, or log why the old one stays.
/// Returns whether the certificate was replaced.
pub(crate) fn reload_and_record(cert: &ReloadingCert, metrics: &Metrics, now: i64) -> bool {
    match cert.reload(now) {
        Ok(served) => {
            record(cert, &served, metrics, now);
            tracing::info!(fingerprint = %served.fingerprint, "TLS certificate reloaded");
            true
        }
        Err(e) => {
            tracing::error!(
                error = %e,
                fingerprint = %cert.current().fingerprint,
                "TLS certificate reload failed: still serving the previous certificate"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    use time::{Duration, OffsetDateTime};
    use uuid::Uuid;

    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    struct TestCa {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    fn ca() -> anyhow::Result<TestCa> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, "Test org CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let pem = p.self_signed(&key)?.pem();
        Ok(TestCa {
            issuer: Issuer::new(p, key),
            pem,
        })
    }

    /// Writes a leaf (valid from `from` to `until`) and the CA after it into `dir/NAME.pem`,
    /// its key into `dir/NAME-key.pem`; returns the files and the leaf's fingerprint.
    fn leaf(
        ca: &TestCa,
        dir: &Path,
        name: &str,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> anyhow::Result<(TlsFiles, String)> {
        let mut p = CertificateParams::new(vec!["cloud.example.test".to_string()])?;
        p.not_before = from;
        p.not_after = until;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = p.signed_by(&key, &ca.issuer)?;
        let files = TlsFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.cert, format!("{}{}", cert.pem(), ca.pem))?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok((files, crate::pki::fingerprint(cert.der())))
    }

    fn temp_dir() -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("passthru-servercert-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn resolved(cert: &ReloadingCert) -> anyhow::Result<String> {
        let c = cert.current();
        let leaf = c.certified.end_entity_cert()?;
        Ok(crate::pki::fingerprint(leaf))
    }

    /// A reload swaps the certificate; a reload of bad files (a key of another certificate,
    /// an expired certificate, a missing file) keeps the one served.
    #[test]
    fn reload_swaps_and_a_failed_reload_keeps_the_old() -> anyhow::Result<()> {
        let dir = temp_dir()?;
        let ca = ca()?;
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let (a, fp_a) = leaf(
            &ca,
            &dir,
            "a",
            now - Duration::hours(1),
            now + Duration::days(90),
        )?;
        let (b, fp_b) = leaf(
            &ca,
            &dir,
            "b",
            now - Duration::hours(1),
            now + Duration::days(400),
        )?;
        let served = TlsFiles {
            cert: dir.join("served.pem"),
            key: dir.join("served-key.pem"),
        };
        std::fs::copy(&a.cert, &served.cert)?;
        std::fs::copy(&a.key, &served.key)?;
        let cert = ReloadingCert::load(served.clone(), provider(), t)?;
        assert_eq!(resolved(&cert)?, fp_a);
        assert_eq!(cert.current().fingerprint, fp_a);
        assert_eq!(
            cert.current().certified.cert.len(),
            2,
            "the chain is served"
        );

        // B's certificate with A's key: refused, A stays.
        std::fs::copy(&b.cert, &served.cert)?;
        let err = cert
            .reload(t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("does not belong") && err.contains("served-key.pem"),
            "{err}"
        );
        assert_eq!(resolved(&cert)?, fp_a);

        // B whole: swapped.
        std::fs::copy(&b.key, &served.key)?;
        let metrics = Metrics::default();
        assert!(reload_and_record(&cert, &metrics, t));
        assert_eq!(resolved(&cert)?, fp_b);
        assert_eq!(
            cert.current().not_after,
            (now + Duration::days(400)).unix_timestamp()
        );
        assert!(metrics.render(&[]).contains(&format!(
            "passthru_tls_cert_expiry_timestamp_seconds {}",
            cert.current().not_after
        )));

        // An expired certificate, then a missing key: B stays, and so does its expiry.
        let (old, _) = leaf(
            &ca,
            &dir,
            "old",
            now - Duration::days(30),
            now - Duration::days(1),
        )?;
        std::fs::copy(&old.cert, &served.cert)?;
        std::fs::copy(&old.key, &served.key)?;
        assert!(!reload_and_record(&cert, &metrics, t));
        std::fs::remove_file(&served.key)?;
        assert!(!reload_and_record(&cert, &metrics, t));
        assert_eq!(resolved(&cert)?, fp_b);
        assert!(metrics.render(&[]).contains(&format!(
            "passthru_tls_cert_expiry_timestamp_seconds {}",
            (now + Duration::days(400)).unix_timestamp()
        )));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// Each kind of bad file is refused with a message naming the file.
    #[test]
    fn bad_files_are_refused_with_the_file_named() -> anyhow::Result<()> {
        let dir = temp_dir()?;
        let ca = ca()?;
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let (good, _) = leaf(
            &ca,
            &dir,
            "good",
            now - Duration::hours(1),
            now + Duration::days(9),
        )?;
        let (other, _) = leaf(
            &ca,
            &dir,
            "other",
            now - Duration::hours(1),
            now + Duration::days(9),
        )?;
        let (expired, _) = leaf(
            &ca,
            &dir,
            "exp",
            now - Duration::days(9),
            now - Duration::days(1),
        )?;
        let (future, _) = leaf(
            &ca,
            &dir,
            "fut",
            now + Duration::days(1),
            now + Duration::days(9),
        )?;
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a PEM file")?;
        let p = provider();
        let err = |files: TlsFiles| match load(&files, &p, t) {
            Ok(_) => "loaded".to_string(),
            Err(e) => e.to_string(),
        };
        let with = |cert: &Path, key: &Path| TlsFiles {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        };
        assert!(load(&good, &p, t).is_ok());
        let e = err(with(&dir.join("missing.pem"), &good.key));
        assert!(
            e.contains("cannot read") && e.contains("missing.pem"),
            "{e}"
        );
        let e = err(with(&garbage, &good.key));
        assert!(
            e.contains("garbage.pem") && e.contains("no usable certificate"),
            "{e}"
        );
        let e = err(with(&good.key, &good.key));
        assert!(
            e.contains("good-key.pem") && e.contains("no usable certificate"),
            "{e}"
        );
        let e = err(with(&good.cert, &garbage));
        assert!(
            e.contains("garbage.pem") && e.contains("no usable private key"),
            "{e}"
        );
        let e = err(with(&good.cert, &other.key));
        assert!(
            e.contains("does not belong") && e.contains("other-key.pem"),
            "{e}"
        );
        let e = err(expired);
        assert!(e.contains("exp.pem") && e.contains("expired at"), "{e}");
        let e = err(future);
        assert!(
            e.contains("fut.pem") && e.contains("not valid before"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// A SEC1 key (`BEGIN EC PRIVATE KEY`, as `openssl ecparam -genkey` writes) is served
    /// like a PKCS#8 one.
    #[test]
    fn a_sec1_key_is_accepted() -> anyhow::Result<()> {
        let dir = temp_dir()?;
        let ca = ca()?;
        let now = OffsetDateTime::now_utc();
        let (files, fp) = leaf(
            &ca,
            &dir,
            "ec",
            now - Duration::hours(1),
            now + Duration::days(9),
        )?;
        // PKCS#8 is SEQUENCE { version, algorithm, OCTET STRING { SEC1 ECPrivateKey } }.
        let pkcs8 = PrivateKeyDer::from_pem_file(&files.key)?;
        let (_, info) = x509_parser::der_parser::parse_der(pkcs8.secret_der())?;
        let fields = info.as_sequence()?;
        let sec1 = fields
            .get(2)
            .ok_or_else(|| anyhow::anyhow!("no privateKey field"))?
            .as_slice()?;
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(sec1);
        let mut text = String::from("-----BEGIN EC PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            text.push_str(std::str::from_utf8(line)?);
            text.push('\n');
        }
        text.push_str("-----END EC PRIVATE KEY-----\n");
        let sec1_file = dir.join("ec-sec1.pem");
        std::fs::write(&sec1_file, text)?;
        let served = load(
            &TlsFiles {
                cert: files.cert.clone(),
                key: sec1_file,
            },
            &provider(),
            now.unix_timestamp(),
        )?;
        assert_eq!(served.fingerprint, fp);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
