//! The running agent's side of updates: when to ask the cloud (about every
//! `[updates] check_interval_seconds`, with jitter), what to do with an offer (verify it with
//! the pinned key, refuse what is not for this agent, download, verify the package, stage it)
//! and telling `run` that a verified version waits ([`Updater::ready`]). Every step is one
//! line of the admin log (`[update] ...`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use passthru_proto::release::{Manifest, SignedManifest};
use passthru_proto::wire::{release_package_path, AgentToCloud};
use rustls::ClientConfig;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::admin_log::AdminLog;
use crate::proxy::ProxySettings;
use crate::update::download::download;
use crate::update::staging::Staging;
use crate::update::verify::{check_for_us, check_package, verify_signed, PublisherKey, Refusal};

/// The admin log's category of every update line.
pub const CATEGORY: &str = "update";
/// Offers refused that a process remembers (to refuse each quietly after the first time).
const MAX_REMEMBERED_REFUSALS: usize = 1000;

/// A verified version, staged, waiting to be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// Its version.
    pub version: String,
    /// The staged package.
    pub path: PathBuf,
}

/// What the updater needs to know of the agent.
#[derive(Debug, Clone)]
pub struct UpdaterSetup {
    /// The version this process runs.
    pub own_version: String,
    /// Its platform ([`passthru_proto::release::this_target`]).
    pub target: String,
    /// The pinned publisher key.
    pub key: PublisherKey,
    /// About how often to ask.
    pub check_interval: Duration,
    /// The agent's tenant (the download path names it).
    pub tenant_id: Uuid,
}

#[derive(Debug)]
struct Inner {
    next_check: Instant,
    /// A download in progress.
    busy: bool,
    /// Offers already refused by this process (SHA-256 of the signed manifest): refused
    /// once, then ignored quietly.
    refused: HashSet<String>,
}

/// The update steps of one agent process (shared by its connections).
#[derive(Debug)]
pub struct Updater {
    setup: UpdaterSetup,
    staging: Staging,
    log: AdminLog,
    inner: Mutex<Inner>,
    ready: watch::Sender<Option<Staged>>,
}

/// The wait before the next check: between three quarters and five quarters of `interval`
/// (`unit` in [0, 1)), so that agents started together do not ask together.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    interval.mul_f64(0.75 + 0.5 * unit.clamp(0.0, 1.0))
}

fn digest_of(text: &str) -> String {
    crate::update::verify::hex(
        ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref(),
    )
}

impl Updater {
    /// An updater that first asks after a jittered interval.
    pub fn new(setup: UpdaterSetup, staging: Staging, log: AdminLog) -> Arc<Updater> {
        let first = Instant::now() + jittered(setup.check_interval, crate::backoff::random_unit());
        Arc::new(Updater {
            setup,
            staging,
            log,
            inner: Mutex::new(Inner {
                next_check: first,
                busy: false,
                refused: HashSet::new(),
            }),
            ready: watch::channel(None).0,
        })
    }

    fn record(&self, message: &str) {
        tracing::info!(target: "passthru_agent::update", "{message}");
        self.log.record(CATEGORY, message);
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns `Some` once a verified version is staged.
    pub fn ready(&self) -> watch::Receiver<Option<Staged>> {
        self.ready.subscribe()
    }

    /// The staged version, taken (it is started once).
    pub fn take_ready(&self) -> Option<Staged> {
        let mut taken = None;
        self.ready.send_if_modified(|v| {
            taken = v.take();
            taken.is_some()
        });
        taken
    }

    /// The check to send now, when one is due (and none is being acted on); schedules the
    /// next one.
    pub fn check_due(&self, now: Instant) -> Option<AgentToCloud> {
        let mut inner = self.inner();
        if inner.busy || self.ready.borrow().is_some() || now < inner.next_check {
            return None;
        }
        inner.next_check = now + jittered(self.setup.check_interval, crate::backoff::random_unit());
        Some(AgentToCloud::UpdateCheck {
            version: self.setup.own_version.clone(),
            target: self.setup.target.clone(),
        })
    }

    /// What to do with an offer, decided now: the verified manifest to download, or why not
    /// (`None`: ignored quietly, as an offer refused before, or while another is handled).
    pub fn judge(&self, signed: &str) -> Option<Result<(SignedManifest, Manifest), Refusal>> {
        let digest = digest_of(signed);
        let mut inner = self.inner();
        if inner.busy || self.ready.borrow().is_some() || inner.refused.contains(&digest) {
            return None;
        }
        let judged = verify_signed(signed.as_bytes(), &self.setup.key).and_then(|(doc, m)| {
            check_for_us(&m, &self.setup.own_version, &self.setup.target)?;
            if self.staging.is_refused(&m.version) {
                return Err(Refusal::RolledBackBefore(m.version.clone()));
            }
            Ok((doc, m))
        });
        match &judged {
            Ok(_) => inner.busy = true,
            Err(_) => {
                // A cloud that offers a new bad manifest at every check is heard once each;
                // the memory of them stays bounded.
                if inner.refused.len() >= MAX_REMEMBERED_REFUSALS {
                    inner.refused.clear();
                }
                inner.refused.insert(digest);
            }
        }
        Some(judged)
    }

    /// An offer from the cloud, on the connection to `address`: verified at once; when it
    /// is for this agent, downloaded (with `tls`, the agent's client configuration: without
    /// one, as in tests that connect with fixed credentials, nothing is downloaded), verified
    /// and staged in the background.
    pub fn offer(
        self: &Arc<Self>,
        signed: String,
        address: String,
        tls: Option<Arc<ClientConfig>>,
        proxy: Option<ProxySettings>,
    ) {
        let Some(judged) = self.judge(&signed) else {
            tracing::debug!(
                "an update offer already refused (or while another is handled) ignored"
            );
            return;
        };
        let (doc, manifest) = match judged {
            Ok(ok) => ok,
            Err(refusal) => {
                self.record(&refusal.to_string());
                return;
            }
        };
        self.record(&format!(
            "update check found version {} (this agent runs {}); signature verified with the publisher key pinned in {}; downloading {} bytes from {address}",
            manifest.version,
            self.setup.own_version,
            self.setup.key.from(),
            manifest.size
        ));
        let Some(tls) = tls else {
            self.inner().busy = false;
            self.record(&format!(
                "download of version {} failed: no client credentials to download it with",
                manifest.version
            ));
            return;
        };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let staged = me
                .fetch(&doc, &manifest, &address, &tls, proxy.as_ref())
                .await;
            let mut inner = me.inner();
            inner.busy = false;
            match staged {
                Ok(staged) => {
                    drop(inner);
                    me.ready.send_replace(Some(staged));
                }
                Err(Some(refusal)) => {
                    inner.refused.insert(digest_of(&signed));
                    drop(inner);
                    me.record(&refusal.to_string());
                }
                Err(None) => {}
            }
        });
    }

    /// Downloads, verifies and stages one verified manifest's package. `Err(Some)`: refused
    /// (for this process); `Err(None)`: failed (said in the log), tried again at the next
    /// check.
    async fn fetch(
        &self,
        doc: &SignedManifest,
        manifest: &Manifest,
        address: &str,
        tls: &Arc<ClientConfig>,
        proxy: Option<&ProxySettings>,
    ) -> Result<Staged, Option<Refusal>> {
        let version = &manifest.version;
        let failed = |what: String| {
            self.record(&format!(
                "download of version {version} failed: {what}; it is tried again at the next check"
            ));
            self.staging.remove_version(version);
            None
        };
        let file = self
            .staging
            .create_partial(version)
            .map_err(|e| failed(e.to_string()))?;
        let url = format!(
            "{}{}",
            address.trim_end_matches('/'),
            release_package_path(self.setup.tenant_id, version)
        );
        let got = download(&url, tls, proxy, manifest.size, file)
            .await
            .map_err(|e| failed(e.to_string()))?;
        self.record(&format!(
            "downloaded version {version}: {} bytes, SHA-256 {}",
            got.size, got.sha256
        ));
        if let Err(refusal) = check_package(manifest, &got.sha256, got.size) {
            self.staging.remove_version(version);
            return Err(Some(refusal));
        }
        self.record(&format!(
            "verified version {version}: its SHA-256 and size are those of the signed manifest"
        ));
        let path = self
            .staging
            .stage(version, &doc.to_json())
            .map_err(|e| failed(format!("cannot stage it: {e}")))?;
        self.record(&format!("staged version {version} at {}", path.display()));
        Ok(Staged {
            version: version.clone(),
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::update::publish::{sign_manifest, KeyPair};
    use passthru_proto::release::{this_target, PRODUCT};

    fn manifest(version: &str) -> Manifest {
        Manifest {
            product: PRODUCT.into(),
            version: version.into(),
            target: this_target(),
            sha256: "ab".repeat(32),
            size: 10,
            min_cloud_version: "0.0.0".into(),
        }
    }

    fn updater(dir: &TempDir, pair: &KeyPair) -> Result<Arc<Updater>, Box<dyn std::error::Error>> {
        Ok(Updater::new(
            UpdaterSetup {
                own_version: "0.2.0".into(),
                target: this_target(),
                key: PublisherKey::new(pair.public_key(), "test"),
                check_interval: Duration::from_secs(100),
                tenant_id: Uuid::nil(),
            },
            Staging::new(dir.path()),
            AdminLog::open(dir.path())?,
        ))
    }

    #[test]
    fn checks_come_about_every_interval_with_jitter() -> Result<(), Box<dyn std::error::Error>> {
        let i = Duration::from_secs(100);
        assert_eq!(jittered(i, 0.0), Duration::from_secs(75));
        assert_eq!(jittered(i, 0.5), Duration::from_secs(100));
        assert!(jittered(i, 0.999_999) < Duration::from_secs(125));
        let dir = TempDir::new("updater-checks")?;
        let u = updater(&dir, &KeyPair::generate()?)?;
        let now = Instant::now();
        assert!(u.check_due(now).is_none(), "not at once");
        let later = now + Duration::from_secs(126);
        let check = u.check_due(later);
        assert!(
            matches!(&check, Some(AgentToCloud::UpdateCheck { version, target }) if version == "0.2.0" && *target == this_target()),
            "{check:?}"
        );
        assert!(u.check_due(later).is_none(), "the next one is scheduled");
        assert!(u.check_due(later + Duration::from_secs(126)).is_some());
        Ok(())
    }

    #[tokio::test]
    async fn offers_are_judged_once_and_logged() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("updater-offers")?;
        let pair = KeyPair::generate()?;
        let u = updater(&dir, &pair)?;
        // Signed by another key.
        let other = sign_manifest(&KeyPair::generate()?, &manifest("0.3.0")).to_json();
        assert!(matches!(
            u.judge(&other),
            Some(Err(Refusal::BadSignature(_)))
        ));
        assert!(u.judge(&other).is_none(), "refused once, then ignored");
        // A downgrade, and the same version.
        let old = sign_manifest(&pair, &manifest("0.1.0")).to_json();
        assert!(matches!(
            u.judge(&old),
            Some(Err(Refusal::Downgrade { .. }))
        ));
        let same = sign_manifest(&pair, &manifest("0.2.0")).to_json();
        assert!(matches!(
            u.judge(&same),
            Some(Err(Refusal::Downgrade { .. }))
        ));
        // Rolled back before.
        Staging::new(dir.path()).refuse("0.4.0", "did not connect", "now")?;
        let rolled = sign_manifest(&pair, &manifest("0.4.0")).to_json();
        assert!(matches!(
            u.judge(&rolled),
            Some(Err(Refusal::RolledBackBefore(_)))
        ));
        // Garbage.
        assert!(matches!(u.judge("{}"), Some(Err(Refusal::Malformed(_)))));
        // An offer refused is one admin log line that says why.
        u.offer(
            other.replace("0.3.0", "0.3.1"),
            "https://x".into(),
            Some(test_tls()?),
            None,
        );
        u.offer(old.clone(), "https://x".into(), None, None);
        let log = std::fs::read_to_string(dir.path().join(crate::state_dir::ADMIN_LOG_FILE))?;
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "the downgrade was refused before: {log}");
        assert!(
            lines[0].contains("[update] refused an offered release: bad signature"),
            "{log}"
        );
        // A good one is taken, and nothing else while it is handled.
        let good = sign_manifest(&pair, &manifest("0.3.0")).to_json();
        assert!(matches!(u.judge(&good), Some(Ok((_, m))) if m.version == "0.3.0"));
        assert!(u.judge(&good).is_none());
        assert!(u
            .check_due(Instant::now() + Duration::from_secs(1000))
            .is_none());
        Ok(())
    }

    fn test_tls() -> Result<Arc<ClientConfig>, Box<dyn std::error::Error>> {
        Ok(Arc::new(
            ClientConfig::builder_with_provider(passthru_client::tls::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ))
    }

    #[test]
    fn a_staged_version_is_taken_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("updater-ready")?;
        let u = updater(&dir, &KeyPair::generate()?)?;
        let ready = u.ready();
        assert!(u.take_ready().is_none());
        u.ready.send_replace(Some(Staged {
            version: "0.3.0".into(),
            path: dir.path().join("x"),
        }));
        assert!(ready.has_changed()?);
        assert_eq!(u.take_ready().map(|s| s.version).as_deref(), Some("0.3.0"));
        assert!(u.take_ready().is_none());
        Ok(())
    }
}
