//! Renewing the agent's credentials over its live connection, as Azure's agents do. When a
//! third of the client certificate's lifetime is left, the agent makes a new TLS key pair and
//! a new HPKE key pair and asks the cloud (`RenewCertificate`, authenticated by the current
//! certificate). The cloud's answer is written to the state dir beside the current set (the
//! `renewed-*` files); the agent drains its connection and connects again with the renewed
//! certificate. That connection working makes the renewed set current (on disk and in the
//! cloud, which then refuses the old certificate) and the old HPKE key is dropped. Until then
//! the old set stays: a renewed certificate the cloud refuses is discarded, and a crash at any
//! point leaves one complete set to start from.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use passthru_proto::wire::AgentToCloud;
use passthru_proto::AgentKeyPair;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use zeroize::Zeroizing;

use crate::state_dir::{Credentials, StateDir, StateError, Validity};
use crate::tls_config::{config_with, TlsConfigError};

/// Why a renewed certificate was not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewError {
    /// The cloud answered a renewal this connection did not ask for.
    #[error("the cloud sent a renewed certificate that was not asked for")]
    NotAsked,
    /// The answer is not a certificate for the key that was sent.
    #[error("the renewed certificate is not usable: {0}")]
    BadCertificate(String),
    /// The renewed set could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// No TLS configuration could be made with it.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

/// A set to connect with.
#[derive(Clone)]
pub struct DialSet {
    /// The TLS configuration with its client certificate.
    pub tls: Arc<ClientConfig>,
    /// Its HPKE key pair.
    pub hpke: Arc<AgentKeyPair>,
    /// Whether it is the renewed set, not yet used.
    pub renewed: bool,
}

impl std::fmt::Debug for DialSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialSet")
            .field("hpke", &self.hpke)
            .field("renewed", &self.renewed)
            .finish_non_exhaustive()
    }
}

struct Held {
    set: DialSet,
    validity: Validity,
}

/// Keys sent in a renewal request, waiting for the cloud's certificate.
struct Asked {
    tls_key_pem: Zeroizing<String>,
    hpke: AgentKeyPair,
}

struct Inner {
    current: Held,
    renewed: Option<Held>,
    asked: Option<Asked>,
}

/// The agent's credentials over time (one per process, shared by its connections).
pub struct Renewal {
    state: StateDir,
    cloud_ca: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewal")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn held(
    cloud_ca: Option<&std::path::Path>,
    creds: Credentials,
    renewed: bool,
) -> Result<Held, RenewError> {
    let validity = Validity::of(&creds.client_cert_chain)
        .ok_or_else(|| RenewError::BadCertificate("its validity cannot be read".to_string()))?;
    let tls = config_with(cloud_ca, creds.client_cert_chain, creds.client_key)?;
    Ok(Held {
        set: DialSet {
            tls,
            hpke: Arc::new(creds.hpke),
            renewed,
        },
        validity,
    })
}

impl Renewal {
    /// The credentials of `state` (current, and a renewed set not yet used).
    pub fn new(
        state: StateDir,
        cloud_ca: Option<PathBuf>,
        current: Credentials,
        renewed: Option<Credentials>,
    ) -> Result<Renewal, RenewError> {
        let current = held(cloud_ca.as_deref(), current, false)?;
        let renewed = renewed
            .map(|r| held(cloud_ca.as_deref(), r, true))
            .transpose()?;
        Ok(Renewal {
            state,
            cloud_ca,
            inner: Mutex::new(Inner {
                current,
                renewed,
                asked: None,
            }),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Each method leaves the record consistent: a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The set to dial with: the renewed one while there is one, else the current one.
    pub fn dial_set(&self) -> DialSet {
        let inner = self.inner();
        inner.renewed.as_ref().unwrap_or(&inner.current).set.clone()
    }

    /// The current certificate's validity.
    pub fn current_validity(&self) -> Validity {
        self.inner().current.validity
    }

    /// The renewed certificate's validity, while there is one not yet used.
    pub fn renewed_validity(&self) -> Option<Validity> {
        self.inner().renewed.as_ref().map(|r| r.validity)
    }

    /// Whether to ask for a renewal at `now` (Unix seconds): a third of the current
    /// certificate's lifetime is left, and no renewal is asked or waiting to be used.
    pub fn due(&self, now: i64) -> bool {
        let inner = self.inner();
        inner.renewed.is_none() && inner.asked.is_none() && now >= inner.current.validity.renew_at()
    }

    /// Makes the new keys and the request that asks the cloud to renew.
    pub fn ask(&self) -> Result<AgentToCloud, String> {
        let keys = crate::register::make_keys().map_err(|e| e.to_string())?;
        let message = AgentToCloud::RenewCertificate {
            csr_pem: keys.csr_pem.clone(),
            hpke_public_key: B64.encode(keys.hpke.public_bytes()),
        };
        self.inner().asked = Some(Asked {
            tls_key_pem: keys.tls_key_pem,
            hpke: keys.hpke,
        });
        Ok(message)
    }

    /// The cloud refused the renewal or the connection ended before its answer: the keys
    /// made for it are dropped (a later connection asks again).
    pub fn forget_asked(&self) {
        self.inner().asked = None;
    }

    /// Takes the cloud's renewed certificate: it must be for the key that was sent. The
    /// renewed set is written to the state dir beside the current one and is what the next
    /// connection is made with.
    pub fn accept(&self, certificate_pem: &str) -> Result<Validity, RenewError> {
        let asked = self.inner().asked.take().ok_or(RenewError::NotAsked)?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| RenewError::BadCertificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(RenewError::BadCertificate("no certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(asked.tls_key_pem.as_bytes())
            .map_err(|e| RenewError::BadCertificate(e.to_string()))?;
        let provider = passthru_client::tls::provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .and_then(|certified| certified.keys_match())
            .map_err(|e| {
                RenewError::BadCertificate(format!("it is not for the key that was sent ({e})"))
            })?;
        self.state.write_renewed(
            asked.tls_key_pem.as_bytes(),
            asked.hpke.private_bytes(),
            certificate_pem.as_bytes(),
        )?;
        let renewed = held(
            self.cloud_ca.as_deref(),
            Credentials {
                client_cert_chain: chain,
                client_key: key,
                hpke: asked.hpke,
            },
            true,
        )?;
        let validity = renewed.validity;
        self.inner().renewed = Some(renewed);
        Ok(validity)
    }

    /// A connection made with the renewed set works: it becomes current, on disk too. Returns
    /// the HPKE key id to keep.
    pub fn renewed_works(&self) -> Result<String, StateError> {
        self.state.promote_renewed()?;
        let mut inner = self.inner();
        if let Some(mut renewed) = inner.renewed.take() {
            renewed.set.renewed = false;
            inner.current = renewed;
        }
        Ok(inner.current.set.hpke.key_id())
    }

    /// The cloud refused the renewed certificate: it is discarded and the current set is used
    /// again. Returns the HPKE key id to keep.
    pub fn renewed_refused(&self) -> Result<String, StateError> {
        self.state.discard_renewed()?;
        let mut inner = self.inner();
        inner.renewed = None;
        Ok(inner.current.set.hpke.key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_dir::{CLIENT_CERT_FILE, HPKE_KEY_FILE, RENEWED_CERT_FILE};
    use crate::test_support::TempDir;
    use rcgen::{CertificateParams, CertificateSigningRequestParams, Issuer, KeyPair};

    type R = Result<(), Box<dyn std::error::Error>>;

    fn ca() -> Result<Issuer<'static, KeyPair>, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        Ok(Issuer::new(params, key))
    }

    fn issue(
        ca: &Issuer<'_, KeyPair>,
        csr_pem: &str,
        seconds: i64,
    ) -> Result<String, rcgen::Error> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        let now = time::OffsetDateTime::now_utc();
        csr.params.not_before = now - time::Duration::seconds(seconds / 10);
        csr.params.not_after = now + time::Duration::seconds(seconds);
        Ok(csr.signed_by(ca)?.pem())
    }

    fn current(seconds: i64) -> Result<(Credentials, String), Box<dyn std::error::Error>> {
        let ca = ca()?;
        let key = KeyPair::generate()?;
        let csr = CertificateParams::new(Vec::<String>::new())?.serialize_request(&key)?;
        let pem = issue(&ca, &csr.pem()?, seconds)?;
        let chain =
            CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
        let client_key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?;
        Ok((
            Credentials {
                client_cert_chain: chain,
                client_key,
                hpke: AgentKeyPair::generate(),
            },
            pem,
        ))
    }

    /// Asked, answered with a certificate for the key sent: written beside the current set,
    /// dialled with, then made current; a certificate for another key is refused and changes
    /// nothing.
    #[test]
    fn a_renewal_from_ask_to_current() -> R {
        let tmp = TempDir::new("renewal")?;
        let state = StateDir::new(tmp.path());
        let (creds, _) = current(120)?;
        let old_key_id = creds.hpke.key_id();
        let renewal = Renewal::new(state.clone(), None, creds, None)?;
        let validity = renewal.current_validity();
        assert!(!renewal.due(validity.renew_at() - 1));
        assert!(renewal.due(validity.renew_at()));
        assert!(!renewal.dial_set().renewed);
        // Nothing asked: an answer is refused.
        assert!(matches!(renewal.accept("x"), Err(RenewError::NotAsked)));

        let Ok(AgentToCloud::RenewCertificate {
            csr_pem,
            hpke_public_key,
        }) = renewal.ask()
        else {
            return Err("no renewal request".into());
        };
        assert_eq!(B64.decode(hpke_public_key)?.len(), 32);
        // While asked, not due again.
        assert!(!renewal.due(validity.renew_at()));
        // A certificate for some other key is refused.
        let (_, other_pem) = current(600)?;
        assert!(matches!(
            renewal.accept(&other_pem),
            Err(RenewError::BadCertificate(_))
        ));
        assert!(!state.file(RENEWED_CERT_FILE).exists());

        let _ = renewal.ask();
        let Ok(AgentToCloud::RenewCertificate { csr_pem: csr2, .. }) = renewal.ask() else {
            return Err("no renewal request".into());
        };
        assert_ne!(csr_pem, csr2, "each renewal makes new keys");
        let ca = ca()?;
        let renewed_pem = issue(&ca, &csr2, 600)?;
        let renewed = renewal.accept(&renewed_pem)?;
        assert!(renewed.not_after > validity.not_after);
        assert!(state.renewed()?.is_some());
        let set = renewal.dial_set();
        assert!(set.renewed);
        assert_ne!(set.hpke.key_id(), old_key_id);
        assert!(
            !renewal.due(i64::MAX),
            "a renewed set waits: no new renewal"
        );

        // The connection made with it works: it becomes current, on disk too.
        let keep = renewal.renewed_works()?;
        assert_eq!(keep, set.hpke.key_id());
        assert!(!renewal.dial_set().renewed);
        assert_eq!(renewal.current_validity(), renewed);
        assert!(state.renewed()?.is_none());
        assert_eq!(
            std::fs::read_to_string(state.file(CLIENT_CERT_FILE))?,
            renewed_pem
        );
        let on_disk = AgentKeyPair::from_private_bytes(&std::fs::read(state.file(HPKE_KEY_FILE))?)?;
        assert_eq!(on_disk.key_id(), keep);
        Ok(())
    }

    /// A renewed certificate the cloud refuses is discarded and the current one used again.
    #[test]
    fn a_refused_renewal_goes_back_to_the_current_set() -> R {
        let tmp = TempDir::new("renewal-refused")?;
        let state = StateDir::new(tmp.path());
        let (creds, _) = current(120)?;
        let old_key_id = creds.hpke.key_id();
        let renewal = Renewal::new(state.clone(), None, creds, None)?;
        let Ok(AgentToCloud::RenewCertificate { csr_pem, .. }) = renewal.ask() else {
            return Err("no renewal request".into());
        };
        renewal.accept(&issue(&ca()?, &csr_pem, 600)?)?;
        assert!(renewal.dial_set().renewed);
        assert_eq!(renewal.renewed_refused()?, old_key_id);
        assert!(!renewal.dial_set().renewed);
        assert!(state.renewed()?.is_none());
        Ok(())
    }
}
