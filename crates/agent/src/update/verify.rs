//! Checking a release: the signature of its manifest with the pinned publisher key, what the
//! manifest says against this agent (platform, version, refused before), and the package
//! against the manifest (size, SHA-256). Each refusal is a [`Refusal`], whose text is the
//! admin log's line.

use std::io::Read as _;
use std::path::Path;

use passthru_proto::release::{self, Manifest, SignedManifest};
use ring::signature::{UnparsedPublicKey, ED25519};

use crate::config::updates::PUBLIC_KEY_BYTES;

/// The publisher's Ed25519 public key the agent trusts, and where it was pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherKey {
    bytes: [u8; PUBLIC_KEY_BYTES],
    from: String,
}

impl PublisherKey {
    /// `bytes` pinned by `from` (a configuration key, a file, or the build).
    pub fn new(bytes: [u8; PUBLIC_KEY_BYTES], from: impl Into<String>) -> PublisherKey {
        PublisherKey {
            bytes,
            from: from.into(),
        }
    }

    /// Where the key was pinned.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// The key, base64 (as `release keygen` prints it).
    pub fn base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// The key to trust: the one pinned at install time (`[updates] public_key` or
    /// `public_key_file`), else the one built in (`PASSTHRU_UPDATE_PUBLIC_KEY` at build
    /// time), else none. A built-in key that does not read is reported as `Err`.
    pub fn pinned(
        config: &crate::config::UpdateSettings,
        built_in: Option<&str>,
    ) -> Result<Option<PublisherKey>, String> {
        if let Some(bytes) = config.public_key {
            let from = config
                .public_key_from
                .clone()
                .unwrap_or_else(|| "the configuration".to_string());
            return Ok(Some(PublisherKey::new(bytes, from)));
        }
        match built_in.map(str::trim).filter(|k| !k.is_empty()) {
            None => Ok(None),
            Some(text) => crate::config::updates::parse_public_key(text)
                .map(|bytes| {
                    Some(PublisherKey::new(
                        bytes,
                        "this build (PASSTHRU_UPDATE_PUBLIC_KEY)",
                    ))
                })
                .map_err(|e| format!("the publisher key built into this agent {e}")),
        }
    }
}

/// Why a release is not taken. The text is what the admin log says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The signed manifest does not read.
    #[error("refused an offered release: the signed manifest is not readable ({0})")]
    Malformed(String),
    /// The signature is not the pinned key's.
    #[error("refused an offered release: bad signature (the manifest is not signed by the publisher key pinned in {0})")]
    BadSignature(String),
    /// Built for another platform.
    #[error("refused version {version}: it is built for {target}, this agent runs on {ours}")]
    WrongTarget {
        /// The release's version.
        version: String,
        /// Its platform.
        target: String,
        /// This agent's.
        ours: String,
    },
    /// Not newer than this agent.
    #[error(
        "refused version {offered}: downgrade (it is not newer than this agent's version {own})"
    )]
    Downgrade {
        /// The release's version.
        offered: String,
        /// This agent's.
        own: String,
    },
    /// Tried before and rolled back.
    #[error("refused version {0}: it was rolled back before (see updates/refused.json in the state dir); it is not tried again")]
    RolledBackBefore(String),
    /// The package is not the one signed.
    #[error("refused version {version}: digest mismatch (the package downloaded has SHA-256 {got} and {size} bytes; the signed manifest says {expected} and {expected_size} bytes)")]
    DigestMismatch {
        /// The release's version.
        version: String,
        /// The signed digest.
        expected: String,
        /// The signed size.
        expected_size: u64,
        /// The package's digest.
        got: String,
        /// The package's size.
        size: u64,
    },
}

/// Verifies the signature of `signed` (a signed manifest document) with `key`, then reads
/// its manifest. Nothing the manifest says is looked at before the signature holds.
pub fn verify_signed(
    signed: &[u8],
    key: &PublisherKey,
) -> Result<(SignedManifest, Manifest), Refusal> {
    let doc = SignedManifest::parse(signed).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let signature = doc
        .signature_bytes()
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    UnparsedPublicKey::new(&ED25519, key.bytes)
        .verify(doc.manifest.as_bytes(), &signature)
        .map_err(|_| Refusal::BadSignature(key.from.clone()))?;
    let manifest = Manifest::parse(&doc.manifest).map_err(|e| Refusal::Malformed(e.to_string()))?;
    Ok((doc, manifest))
}

/// Whether a verified manifest is for this agent: its platform, and a version newer than
/// `own`.
pub fn check_for_us(manifest: &Manifest, own: &str, target: &str) -> Result<(), Refusal> {
    if manifest.target != target {
        return Err(Refusal::WrongTarget {
            version: manifest.version.clone(),
            target: manifest.target.clone(),
            ours: target.to_string(),
        });
    }
    if !release::is_newer(&manifest.version, own) {
        return Err(Refusal::Downgrade {
            offered: manifest.version.clone(),
            own: own.to_string(),
        });
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256 (hex) and size of the file at `path`.
pub fn file_digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(ctx.finish().as_ref()), size))
}

/// Whether a package with `digest` and `size` is the one `manifest` signed.
pub fn check_package(manifest: &Manifest, digest: &str, size: u64) -> Result<(), Refusal> {
    if digest == manifest.sha256 && size == manifest.size {
        Ok(())
    } else {
        Err(Refusal::DigestMismatch {
            version: manifest.version.clone(),
            expected: manifest.sha256.clone(),
            expected_size: manifest.size,
            got: digest.to_string(),
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::publish::{sign_manifest, KeyPair};

    fn manifest(version: &str, package: &[u8]) -> Manifest {
        Manifest {
            product: release::PRODUCT.into(),
            version: version.into(),
            target: release::this_target(),
            sha256: hex(ring::digest::digest(&ring::digest::SHA256, package).as_ref()),
            size: package.len() as u64,
            min_cloud_version: "0.0.0".into(),
        }
    }

    fn key_of(pair: &KeyPair) -> PublisherKey {
        PublisherKey::new(pair.public_key(), "test")
    }

    #[test]
    fn a_manifest_signed_by_the_pinned_key_verifies() -> Result<(), Box<dyn std::error::Error>> {
        let pair = KeyPair::generate()?;
        let m = manifest("0.2.0", b"package");
        let signed = sign_manifest(&pair, &m);
        let (doc, read) = verify_signed(signed.to_json().as_bytes(), &key_of(&pair))?;
        assert_eq!(read, m);
        assert_eq!(doc, signed);
        check_for_us(&read, "0.1.0", &release::this_target())?;
        check_package(&read, &m.sha256, m.size)?;
        Ok(())
    }

    #[test]
    fn another_key_is_a_bad_signature() -> Result<(), Box<dyn std::error::Error>> {
        let pair = KeyPair::generate()?;
        let other = KeyPair::generate()?;
        let signed = sign_manifest(&pair, &manifest("0.2.0", b"p"));
        let err = verify_signed(signed.to_json().as_bytes(), &key_of(&other));
        assert_eq!(err, Err(Refusal::BadSignature("test".into())));
        let text = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("bad signature"), "{text}");
        Ok(())
    }

    #[test]
    fn a_tampered_manifest_is_a_bad_signature() -> Result<(), Box<dyn std::error::Error>> {
        let pair = KeyPair::generate()?;
        let mut signed = sign_manifest(&pair, &manifest("0.2.0", b"p"));
        // Another version, same signature.
        signed.manifest = signed.manifest.replace("0.2.0", "9.9.9");
        assert!(matches!(
            verify_signed(signed.to_json().as_bytes(), &key_of(&pair)),
            Err(Refusal::BadSignature(_))
        ));
        // Another digest, same signature.
        let mut signed = sign_manifest(&pair, &manifest("0.2.0", b"p"));
        let m = manifest("0.2.0", b"other package");
        let original = Manifest::parse(&signed.manifest)?;
        signed.manifest = signed.manifest.replace(&original.sha256, &m.sha256);
        assert!(matches!(
            verify_signed(signed.to_json().as_bytes(), &key_of(&pair)),
            Err(Refusal::BadSignature(_))
        ));
        // A flipped bit of the signature.
        let mut signed = sign_manifest(&pair, &manifest("0.2.0", b"p"));
        let mut sig = signed.signature_bytes()?;
        sig[0] ^= 1;
        use base64::Engine as _;
        signed.signature = base64::engine::general_purpose::STANDARD.encode(sig);
        assert!(matches!(
            verify_signed(signed.to_json().as_bytes(), &key_of(&pair)),
            Err(Refusal::BadSignature(_))
        ));
        Ok(())
    }

    #[test]
    fn a_package_that_is_not_the_signed_one_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let m = manifest("0.2.0", b"package");
        let tampered = hex(ring::digest::digest(&ring::digest::SHA256, b"packagf").as_ref());
        let err = check_package(&m, &tampered, m.size);
        assert!(matches!(&err, Err(Refusal::DigestMismatch { got, .. }) if *got == tampered));
        let text = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("digest mismatch") && text.contains("0.2.0"),
            "{text}"
        );
        assert!(check_package(&m, &m.sha256, m.size + 1).is_err());
        // The digest of a file is the digest of its bytes.
        let dir = crate::test_support::TempDir::new("digest")?;
        std::fs::write(dir.path().join("p"), b"package")?;
        assert_eq!(file_digest(&dir.path().join("p"))?, (m.sha256.clone(), 7));
        Ok(())
    }

    #[test]
    fn downgrades_and_other_platforms_are_refused() {
        let ours = release::this_target();
        assert!(matches!(
            check_for_us(&manifest("0.1.0", b"p"), "0.2.0", &ours),
            Err(Refusal::Downgrade { .. })
        ));
        let same = check_for_us(&manifest("0.2.0", b"p"), "0.2.0", &ours);
        assert!(matches!(same, Err(Refusal::Downgrade { .. })));
        assert!(same
            .err()
            .map(|e| e.to_string())
            .is_some_and(|t| t.contains("downgrade")));
        let mut other = manifest("0.3.0", b"p");
        other.target = "aarch64-linux".into();
        if ours != other.target {
            assert!(matches!(
                check_for_us(&other, "0.2.0", &ours),
                Err(Refusal::WrongTarget { .. })
            ));
        }
        assert!(check_for_us(&manifest("0.2.1", b"p"), "0.2.0", &ours).is_ok());
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() -> Result<(), Box<dyn std::error::Error>> {
        let key = key_of(&KeyPair::generate()?);
        for input in [
            &b""[..],
            b"{",
            b"\x00\x01",
            b"{\"manifest\":\"x\",\"signature\":\"\"}",
            b"{\"manifest\":\"{}\",\"signature\":\"@@@\"}",
            &[b'a'; 20_000],
        ] {
            assert!(
                matches!(verify_signed(input, &key), Err(Refusal::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(&input[..input.len().min(40)])
            );
        }
        Ok(())
    }

    #[test]
    fn the_pinned_key_is_the_configurations_else_the_builds() {
        let mut settings = crate::config::UpdateSettings::default();
        assert_eq!(PublisherKey::pinned(&settings, None), Ok(None));
        assert_eq!(PublisherKey::pinned(&settings, Some("  ")), Ok(None));
        let built = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let from_build = PublisherKey::pinned(&settings, Some(built));
        assert!(
            matches!(&from_build, Ok(Some(k)) if k.bytes == [7; 32] && k.from().contains("PASSTHRU_UPDATE_PUBLIC_KEY"))
        );
        assert!(PublisherKey::pinned(&settings, Some("short")).is_err());
        settings.public_key = Some([9; 32]);
        settings.public_key_from = Some("/etc/k.pub".into());
        let from_config = PublisherKey::pinned(&settings, Some(built));
        assert!(
            matches!(&from_config, Ok(Some(k)) if k.bytes == [9; 32] && k.from() == "/etc/k.pub")
        );
    }
}
