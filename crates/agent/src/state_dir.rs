//! The agent's state dir: its registration (`agent.json`), TLS client certificate and key,
//! HPKE private key, the cloud's CA, the trace log, the lock file and the running agent's
//! connection record (for `status`). The directory is mode
//! 0700 and every file 0600; files are replaced atomically (temporary file, then rename).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use passthru_proto::AgentKeyPair;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

/// The registration record.
pub const REGISTRATION_FILE: &str = "agent.json";
/// The TLS client certificate issued by the cloud (PEM).
pub const CLIENT_CERT_FILE: &str = "client-cert.pem";
/// The TLS client private key (PKCS#8 PEM).
pub const CLIENT_KEY_FILE: &str = "client-key.pem";
/// The HPKE private key (raw 32 bytes).
pub const HPKE_KEY_FILE: &str = "hpke-key";
/// The CA to trust for the cloud's TLS certificate (copy of `register --ca-file`).
pub const CLOUD_CA_FILE: &str = "cloud-ca.pem";
/// One line per failed validation.
pub const TRACE_LOG_FILE: &str = "trace.log";
/// Held by the running agent.
pub const LOCK_FILE: &str = "agent.lock";
/// The admin log: registration, renewal, connection changes, updates (always on).
pub const ADMIN_LOG_FILE: &str = "admin.log";
/// The session (debug) log, written while an administrator has it on.
pub const SESSION_LOG_FILE: &str = "session.log";
/// The level `passthru-agent log-level` asks the running agent for (read on SIGUSR1).
pub const LOG_LEVEL_FILE: &str = "log-level";
/// Which cloud address the running agent is connected to (see [`ConnectionRecord`]).
pub const CONNECTION_FILE: &str = "connection.json";
/// A renewed client certificate not yet used for a connection (written last: its presence
/// marks a complete renewed set).
pub const RENEWED_CERT_FILE: &str = "renewed-client-cert.pem";
/// The renewed certificate's private key.
pub const RENEWED_KEY_FILE: &str = "renewed-client-key.pem";
/// The HPKE private key sent with the renewal.
pub const RENEWED_HPKE_KEY_FILE: &str = "renewed-hpke-key";

/// Mode of the state dir.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file in it.
pub const FILE_MODE: u32 = 0o600;

/// What `register` learned from the cloud (`agent.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// This agent's id.
    pub agent_id: Uuid,
    /// Its tenant's id.
    pub tenant_id: Uuid,
    /// Its tenant's name.
    pub tenant_name: String,
    /// The cloud URL given to `register`.
    pub cloud_url: String,
    /// Base URL the agent dials (`https://host[:port]`).
    pub agent_endpoint: String,
    /// When the agent was registered (RFC 3339).
    pub registered_at: String,
}

/// What the running agent says about its connection to the cloud (`connection.json`,
/// rewritten when it connects or loses the connection, removed when it stops), for
/// `status`. It holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The agent's process id.
    pub pid: u32,
    /// The cloud address it is connected to (`https://host:port`); `None` while it is
    /// connecting.
    pub address: Option<String>,
    /// Since when (RFC 3339).
    pub since: String,
}

/// Everything `run` needs from the state dir.
pub struct AgentState {
    /// The registration record.
    pub registration: Registration,
    /// The client certificate (and any chain after it).
    pub client_cert_chain: Vec<CertificateDer<'static>>,
    /// The client certificate's private key.
    pub client_key: PrivateKeyDer<'static>,
    /// The HPKE key pair requests are sealed to.
    pub hpke: AgentKeyPair,
    /// The cloud CA file, when `register` was given one.
    pub cloud_ca: Option<PathBuf>,
    /// A renewed set (certificate, key, HPKE key) not yet used for a connection.
    pub renewed: Option<Credentials>,
}

/// A client certificate with its key, and the HPKE key pair that goes with it.
pub struct Credentials {
    /// The client certificate (and any chain after it).
    pub client_cert_chain: Vec<CertificateDer<'static>>,
    /// The client certificate's private key.
    pub client_key: PrivateKeyDer<'static>,
    /// The HPKE key pair requests are sealed to.
    pub hpke: AgentKeyPair,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("hpke", &self.hpke)
            .finish_non_exhaustive()
    }
}

/// The validity of a certificate, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
}

impl Validity {
    /// The validity of the first certificate of `chain`, if it parses.
    pub fn of(chain: &[CertificateDer<'_>]) -> Option<Validity> {
        let der = chain.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        Some(Validity {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// When to renew: once a third of the lifetime is left.
    pub fn renew_at(&self) -> i64 {
        let lifetime = self.not_after.saturating_sub(self.not_before).max(0);
        self.not_after.saturating_sub(lifetime / 3)
    }
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentState")
            .field("registration", &self.registration)
            .field("hpke", &self.hpke)
            .field("cloud_ca", &self.cloud_ca)
            .field("renewed", &self.renewed)
            .finish_non_exhaustive()
    }
}

/// Why the state dir cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// There is no registration in the directory.
    #[error(
        "{dir} holds no agent registration: register the agent first with \
         `passthru-agent register --cloud URL --tenant NAME --ca-file CA.pem --state-dir {dir}`"
    )]
    NotRegistered {
        /// The state dir.
        dir: String,
    },
    /// A file or the directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file is there but its content is not usable.
    #[error("{path} is damaged ({detail}): register the agent again with `passthru-agent register ... --force`")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// A state dir (nothing is touched until a method is called).
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StateError {
    let path = path.display().to_string();
    move |source| StateError::Io { what, path, source }
}

impl StateDir {
    /// The state dir at `root`.
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A file of the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Creates the directory (and its parents) with mode 0700, or tightens an existing one
    /// to 0700.
    pub fn create(&self) -> Result<(), StateError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.root)
            .map_err(io_err("cannot create the state dir", &self.root))?;
        std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(io_err("cannot set the mode of the state dir", &self.root))
    }

    /// Writes `bytes` to `name` atomically with mode 0600: a temporary file in the same
    /// directory, flushed to disk, then renamed over the old file.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let target = self.file(name);
        let temp = self.file(&format!(".{name}.tmp-{}", Uuid::new_v4().simple()));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&temp)
                .map_err(io_err("cannot create", &temp))?;
            file.write_all(bytes)
                .map_err(io_err("cannot write", &temp))?;
            file.sync_all().map_err(io_err("cannot flush", &temp))?;
            drop(file);
            std::fs::rename(&temp, &target).map_err(io_err("cannot replace", &target))?;
            // Make the rename itself durable.
            File::open(&self.root)
                .and_then(|d| d.sync_all())
                .map_err(io_err("cannot flush the state dir", &self.root))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// Removes `name` if it exists.
    pub fn remove_file(&self, name: &str) -> Result<(), StateError> {
        let path = self.file(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_err("cannot remove", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Whether a registration record exists.
    pub fn is_registered(&self) -> bool {
        self.file(REGISTRATION_FILE).exists()
    }

    /// Reads the registration record.
    pub fn registration(&self) -> Result<Registration, StateError> {
        let path = self.file(REGISTRATION_FILE);
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotRegistered {
                    dir: self.root.display().to_string(),
                })
            }
            other => other.map_err(io_err("cannot read", &path))?,
        };
        serde_json::from_str(&text).map_err(|e| StateError::Damaged {
            path: path.display().to_string(),
            detail: e.to_string(),
        })
    }

    /// Writes the registration record (last step of `register`).
    pub fn write_registration(&self, registration: &Registration) -> Result<(), StateError> {
        let mut json =
            serde_json::to_vec_pretty(registration).map_err(|e| StateError::Damaged {
                path: self.file(REGISTRATION_FILE).display().to_string(),
                detail: e.to_string(),
            })?;
        json.push(b'\n');
        self.write_file(REGISTRATION_FILE, &json)
    }

    /// Records this process's connection: `address` connected since now, or connecting
    /// (`None`). Not flushed to disk: the record only matters while the agent runs.
    pub fn write_connection(&self, address: Option<&str>) -> Result<(), StateError> {
        use time::format_description::well_known::Rfc3339;
        let record = ConnectionRecord {
            pid: std::process::id(),
            address: address.map(str::to_string),
            since: {
                let now = crate::clock::now_utc();
                now.replace_nanosecond(0)
                    .unwrap_or(now)
                    .format(&Rfc3339)
                    .unwrap_or_default()
            },
        };
        let target = self.file(CONNECTION_FILE);
        let mut json = serde_json::to_vec(&record).map_err(|e| StateError::Damaged {
            path: target.display().to_string(),
            detail: e.to_string(),
        })?;
        json.push(b'\n');
        let temp = self.file(&format!(
            ".{CONNECTION_FILE}.tmp-{}",
            Uuid::new_v4().simple()
        ));
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .and_then(|mut file| file.write_all(&json))
            .map_err(io_err("cannot write", &temp))
            .and_then(|()| {
                std::fs::rename(&temp, &target).map_err(io_err("cannot replace", &target))
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    /// The connection record, when there is a readable one.
    pub fn connection(&self) -> Option<ConnectionRecord> {
        let text = std::fs::read_to_string(self.file(CONNECTION_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Files or the directory itself readable by others than the owner (to warn about).
    pub fn loose_permissions(&self) -> Vec<PathBuf> {
        let mut loose = Vec::new();
        let mut check = |path: PathBuf| {
            if let Ok(meta) = std::fs::metadata(&path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    loose.push(path);
                }
            }
        };
        check(self.root.clone());
        for name in [
            REGISTRATION_FILE,
            CLIENT_CERT_FILE,
            CLIENT_KEY_FILE,
            HPKE_KEY_FILE,
            CLOUD_CA_FILE,
            TRACE_LOG_FILE,
            LOCK_FILE,
            CONNECTION_FILE,
            RENEWED_CERT_FILE,
            RENEWED_KEY_FILE,
            RENEWED_HPKE_KEY_FILE,
        ] {
            check(self.file(name));
        }
        loose
    }

    /// Loads everything `run` needs.
    pub fn load(&self) -> Result<AgentState, StateError> {
        let registration = self.registration()?;
        let current = self.credentials(CLIENT_CERT_FILE, CLIENT_KEY_FILE, HPKE_KEY_FILE)?;
        let ca_path = self.file(CLOUD_CA_FILE);
        let cloud_ca = ca_path.exists().then_some(ca_path);
        Ok(AgentState {
            registration,
            client_cert_chain: current.client_cert_chain,
            client_key: current.client_key,
            hpke: current.hpke,
            cloud_ca,
            renewed: self.renewed()?,
        })
    }

    /// The renewed set, when a complete one is there (its certificate is written last; an
    /// incomplete set, left by a crash, is ignored).
    pub fn renewed(&self) -> Result<Option<Credentials>, StateError> {
        if !self.file(RENEWED_CERT_FILE).exists()
            || !self.file(RENEWED_KEY_FILE).exists()
            || !self.file(RENEWED_HPKE_KEY_FILE).exists()
        {
            return Ok(None);
        }
        self.credentials(RENEWED_CERT_FILE, RENEWED_KEY_FILE, RENEWED_HPKE_KEY_FILE)
            .map(Some)
    }

    /// Writes a renewed set beside the current one, its certificate last.
    pub fn write_renewed(
        &self,
        key_pem: &[u8],
        hpke_private: &[u8],
        cert_pem: &[u8],
    ) -> Result<(), StateError> {
        self.remove_file(RENEWED_CERT_FILE)?;
        self.write_file(RENEWED_KEY_FILE, key_pem)?;
        self.write_file(RENEWED_HPKE_KEY_FILE, hpke_private)?;
        self.write_file(RENEWED_CERT_FILE, cert_pem)
    }

    /// Makes the renewed set current (after a connection made with it worked): each current
    /// file is replaced atomically, then the renewed files go, certificate last, so that a
    /// crash in between leaves a complete renewed set that the next start uses and promotes.
    pub fn promote_renewed(&self) -> Result<(), StateError> {
        let read = |name: &str| {
            let path = self.file(name);
            std::fs::read(&path)
                .map(Zeroizing::new)
                .map_err(io_err("cannot read", &path))
        };
        let (key, hpke, cert) = (
            read(RENEWED_KEY_FILE)?,
            read(RENEWED_HPKE_KEY_FILE)?,
            read(RENEWED_CERT_FILE)?,
        );
        self.write_file(CLIENT_KEY_FILE, &key)?;
        self.write_file(HPKE_KEY_FILE, &hpke)?;
        self.write_file(CLIENT_CERT_FILE, &cert)?;
        self.remove_file(RENEWED_KEY_FILE)?;
        self.remove_file(RENEWED_HPKE_KEY_FILE)?;
        self.remove_file(RENEWED_CERT_FILE)
    }

    /// Drops the renewed set (the cloud refused it), certificate first.
    pub fn discard_renewed(&self) -> Result<(), StateError> {
        self.remove_file(RENEWED_CERT_FILE)?;
        self.remove_file(RENEWED_KEY_FILE)?;
        self.remove_file(RENEWED_HPKE_KEY_FILE)
    }

    /// Reads a certificate, its key and an HPKE key.
    fn credentials(
        &self,
        cert_file: &str,
        key_file: &str,
        hpke_file: &str,
    ) -> Result<Credentials, StateError> {
        let damaged = |path: &Path, detail: String| StateError::Damaged {
            path: path.display().to_string(),
            detail,
        };

        let cert_path = self.file(cert_file);
        let cert_pem = std::fs::read(&cert_path).map_err(io_err("cannot read", &cert_path))?;
        let client_cert_chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&cert_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| damaged(&cert_path, e.to_string()))?;
        if client_cert_chain.is_empty() {
            return Err(damaged(&cert_path, "no certificate in it".into()));
        }

        let key_path = self.file(key_file);
        let key_pem =
            Zeroizing::new(std::fs::read(&key_path).map_err(io_err("cannot read", &key_path))?);
        let client_key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| damaged(&key_path, e.to_string()))?;

        let hpke_path = self.file(hpke_file);
        let hpke_bytes =
            Zeroizing::new(std::fs::read(&hpke_path).map_err(io_err("cannot read", &hpke_path))?);
        let hpke = AgentKeyPair::from_private_bytes(&hpke_bytes)
            .map_err(|e| damaged(&hpke_path, e.to_string()))?;

        Ok(Credentials {
            client_cert_chain,
            client_key,
            hpke,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn directory_is_0700_and_files_0600() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("state-perms")?;
        let dir = StateDir::new(tmp.path().join("a/b/state"));
        dir.create()?;
        assert_eq!(mode(dir.path()), 0o700);
        dir.write_file(HPKE_KEY_FILE, &[7u8; 32])?;
        assert_eq!(mode(&dir.file(HPKE_KEY_FILE)), 0o600);
        // Replacing keeps 0600 and leaves no temporary file behind.
        dir.write_file(HPKE_KEY_FILE, &[8u8; 32])?;
        assert_eq!(std::fs::read(dir.file(HPKE_KEY_FILE))?, vec![8u8; 32]);
        assert_eq!(mode(&dir.file(HPKE_KEY_FILE)), 0o600);
        let names: Vec<String> = std::fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec![HPKE_KEY_FILE.to_string()]);
        assert!(dir.loose_permissions().is_empty());

        // An existing, too open directory is tightened.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        assert_eq!(dir.loose_permissions(), vec![dir.path().to_path_buf()]);
        dir.create()?;
        assert_eq!(mode(dir.path()), 0o700);
        Ok(())
    }

    fn write_set(
        dir: &StateDir,
        names: [&str; 3],
        label: &str,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(vec![label.to_string()])?.self_signed(&key)?;
        dir.write_file(names[1], key.serialize_pem().as_bytes())?;
        dir.write_file(names[2], AgentKeyPair::generate().private_bytes())?;
        dir.write_file(names[0], cert.pem().as_bytes())?;
        Ok(())
    }

    /// The renewed set is used only when complete; promoting it replaces the current files
    /// and leaves no renewed file; a crash in the middle of promoting leaves a complete
    /// renewed set, promoted again at the next start.
    #[test]
    fn a_renewed_set_is_complete_or_ignored_and_promotes_safely(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("state-renewed")?;
        let dir = StateDir::new(tmp.path().join("state"));
        dir.create()?;
        write_set(
            &dir,
            [CLIENT_CERT_FILE, CLIENT_KEY_FILE, HPKE_KEY_FILE],
            "old",
        )?;
        assert!(dir.renewed()?.is_none());
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(vec!["new".to_string()])?.self_signed(&key)?;
        let hpke = AgentKeyPair::generate();
        // Key and HPKE key written, the certificate not yet: incomplete, ignored.
        dir.write_file(RENEWED_KEY_FILE, key.serialize_pem().as_bytes())?;
        dir.write_file(RENEWED_HPKE_KEY_FILE, hpke.private_bytes())?;
        assert!(dir.renewed()?.is_none());
        dir.write_renewed(
            key.serialize_pem().as_bytes(),
            hpke.private_bytes(),
            cert.pem().as_bytes(),
        )?;
        let renewed = dir.renewed()?.ok_or("no renewed set")?;
        assert_eq!(renewed.hpke.key_id(), hpke.key_id());
        assert_eq!(mode(&dir.file(RENEWED_KEY_FILE)), 0o600);
        assert!(dir.loose_permissions().is_empty());
        // A crash after the current files were replaced but before the renewed ones went:
        // the renewed set is still complete and is promoted again.
        let renewed_cert = std::fs::read(dir.file(RENEWED_CERT_FILE))?;
        dir.write_file(CLIENT_CERT_FILE, &renewed_cert)?;
        dir.promote_renewed()?;
        assert!(dir.renewed()?.is_none());
        for name in [RENEWED_CERT_FILE, RENEWED_KEY_FILE, RENEWED_HPKE_KEY_FILE] {
            assert!(!dir.file(name).exists(), "{name} left behind");
        }
        assert_eq!(
            std::fs::read(dir.file(CLIENT_CERT_FILE))?,
            cert.pem().into_bytes()
        );
        assert_eq!(
            std::fs::read(dir.file(HPKE_KEY_FILE))?,
            hpke.private_bytes().to_vec()
        );
        assert_eq!(
            std::fs::read_to_string(dir.file(CLIENT_KEY_FILE))?,
            key.serialize_pem()
        );
        // Discarding removes a renewed set whole.
        write_set(
            &dir,
            [RENEWED_CERT_FILE, RENEWED_KEY_FILE, RENEWED_HPKE_KEY_FILE],
            "x",
        )?;
        assert!(dir.renewed()?.is_some());
        dir.discard_renewed()?;
        assert!(dir.renewed()?.is_none());
        assert!(!dir.file(RENEWED_KEY_FILE).exists());
        Ok(())
    }

    #[test]
    fn renewal_is_due_with_a_third_of_the_lifetime_left() {
        let v = Validity {
            not_before: 1_000,
            not_after: 1_000 + 132,
        };
        assert_eq!(v.renew_at(), 1_000 + 88);
        let year = Validity {
            not_before: 0,
            not_after: 365 * 86_400,
        };
        assert_eq!(year.renew_at(), 365 * 86_400 - 365 * 86_400 / 3);
    }

    #[test]
    fn connection_record_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("state-conn")?;
        let dir = StateDir::new(tmp.path());
        assert_eq!(dir.connection(), None);
        dir.write_connection(None)?;
        let record = dir.connection();
        assert!(
            matches!(&record, Some(ConnectionRecord { pid, address: None, since }) if *pid == std::process::id() && since.ends_with('Z')),
            "{record:?}"
        );
        dir.write_connection(Some("https://b.test:8443"))?;
        assert_eq!(
            dir.connection().and_then(|r| r.address).as_deref(),
            Some("https://b.test:8443")
        );
        assert_eq!(mode(&dir.file(CONNECTION_FILE)), 0o600);
        assert!(!dir.loose_permissions().contains(&dir.file(CONNECTION_FILE)));
        dir.remove_file(CONNECTION_FILE)?;
        assert_eq!(dir.connection(), None);
        Ok(())
    }

    #[test]
    fn registration_round_trip_and_clear_errors() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("state-reg")?;
        let dir = StateDir::new(tmp.path());
        assert!(matches!(
            dir.registration(),
            Err(StateError::NotRegistered { .. })
        ));
        let reg = Registration {
            agent_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            tenant_name: "contoso".into(),
            cloud_url: "https://127.0.0.1:8443".into(),
            agent_endpoint: "https://127.0.0.1:8443".into(),
            registered_at: "2026-01-01T00:00:00Z".into(),
        };
        dir.write_registration(&reg)?;
        assert!(dir.is_registered());
        assert_eq!(dir.registration()?, reg);
        assert_eq!(mode(&dir.file(REGISTRATION_FILE)), 0o600);
        dir.write_file(REGISTRATION_FILE, b"{not json")?;
        let err = dir
            .registration()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("damaged") && err.contains("--force"), "{err}");
        Ok(())
    }
}
