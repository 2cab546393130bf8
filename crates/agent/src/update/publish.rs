//! The publisher's side (`passthru-agent release keygen` and `release sign`): an Ed25519 key
//! pair (PKCS#8, PEM, mode 0600), and the signed manifest of a package.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use passthru_proto::release::{self, Manifest, SignedManifest, MAX_PACKAGE_BYTES};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use crate::config::updates::PUBLIC_KEY_BYTES;
use crate::update::verify::{file_digest, PublisherKey};

/// How long `release sign` waits for `PACKAGE --version`.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a publisher command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The key file exists: a key is never overwritten.
    #[error("{0} already exists: a signing key is never overwritten (choose another --out, or remove the old key if you mean to replace it; agents that pin its public half then refuse releases signed with the new one)")]
    KeyExists(String),
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The key file is not an Ed25519 private key.
    #[error("{0} is not an Ed25519 private key in PEM (PKCS#8): give the file `passthru-agent release keygen --out` wrote")]
    BadKey(String),
    /// The operating system's random generator failed.
    #[error("cannot make a key: the operating system's random generator failed")]
    Random,
    /// The package is not usable.
    #[error("{path}: {detail}")]
    Package {
        /// The package.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A version given or read is not one.
    #[error("{0}")]
    Version(String),
}

/// A publisher's Ed25519 key pair.
#[derive(Debug)]
pub struct KeyPair {
    pair: Ed25519KeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl KeyPair {
    /// A new key pair from the operating system's random generator.
    pub fn generate() -> Result<KeyPair, PublishError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| PublishError::Random)?;
        let pkcs8 = Zeroizing::new(pkcs8.as_ref().to_vec());
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| PublishError::Random)?;
        Ok(KeyPair { pair, pkcs8 })
    }

    /// Reads a key file (PEM, PKCS#8; v1 as OpenSSL writes it, or v2 as `keygen` does).
    pub fn read(path: &Path) -> Result<KeyPair, PublishError> {
        let shown = path.display().to_string();
        let pem = Zeroizing::new(std::fs::read(path).map_err(|source| PublishError::Io {
            what: "cannot read the key file",
            path: shown.clone(),
            source,
        })?);
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|_| PublishError::BadKey(shown.clone()))?;
        let pkcs8 = Zeroizing::new(der.secret_pkcs8_der().to_vec());
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|_| PublishError::BadKey(shown))?;
        Ok(KeyPair { pair, pkcs8 })
    }

    /// The public half.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_BYTES] {
        let mut out = [0u8; PUBLIC_KEY_BYTES];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// The public half, base64 (what agents pin).
    pub fn public_key_base64(&self) -> String {
        PublisherKey::new(self.public_key(), "").base64()
    }

    /// Writes the private key to `path` (PEM, mode 0600); an existing file is refused.
    pub fn write(&self, path: &Path) -> Result<(), PublishError> {
        use base64::Engine as _;
        let shown = path.display().to_string();
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.pkcs8));
        let mut pem = Zeroizing::new(String::from("-----BEGIN PRIVATE KEY-----\n"));
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    PublishError::KeyExists(shown.clone())
                } else {
                    PublishError::Io {
                        what: "cannot create the key file",
                        path: shown.clone(),
                        source,
                    }
                }
            })?;
        file.write_all(pem.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| PublishError::Io {
                what: "cannot write the key file",
                path: shown,
                source,
            })
    }
}

/// Signs `manifest`'s JSON text with `pair`.
pub fn sign_manifest(pair: &KeyPair, manifest: &Manifest) -> SignedManifest {
    sign_text(pair, &manifest.to_json())
}

/// Signs `text` exactly, as a manifest's text, with `pair` (whether it reads as a manifest
/// is not checked: for tests).
pub fn sign_text(pair: &KeyPair, text: &str) -> SignedManifest {
    use base64::Engine as _;
    let signature = pair.pair.sign(text.as_bytes());
    SignedManifest {
        manifest: text.to_string(),
        signature: base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
    }
}

/// `release keygen --out KEYFILE`: writes a new key, returns its public half (base64).
pub fn keygen(out: &Path) -> Result<String, PublishError> {
    let pair = KeyPair::generate()?;
    pair.write(out)?;
    Ok(pair.public_key_base64())
}

/// What `release sign` was given.
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// The key file.
    pub key: PathBuf,
    /// The package (the `passthru-agent` executable).
    pub package: PathBuf,
    /// Its version; `None`: asked of the package (`PACKAGE --version`).
    pub version: Option<String>,
    /// The oldest cloud version that may offer it.
    pub min_cloud_version: String,
    /// The platform it runs on.
    pub target: String,
    /// Where to write the signed manifest.
    pub out: PathBuf,
}

/// The version a `passthru-agent --version` output names (`passthru-agent 0.2.0`).
pub fn version_in(output: &str) -> Option<String> {
    let line = output.lines().next()?.trim();
    let word = line.split_whitespace().last()?;
    release::parse_version(word).ok().map(|_| word.to_string())
}

/// Runs `package --version` (at most [`VERSION_TIMEOUT`]) and reads the version it prints.
fn ask_version(package: &Path) -> Result<String, PublishError> {
    let shown = package.display().to_string();
    let failed = |detail: String| PublishError::Package {
        path: shown.clone(),
        detail,
    };
    let mut command = std::process::Command::new(package);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = crate::update::spawn_retrying(&mut command).map_err(|e| {
        failed(format!(
            "cannot run it to ask its version ({e}): give --version"
        ))
    })?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < VERSION_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "`--version` did not answer within {} s: give --version",
                    VERSION_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(failed(format!("cannot wait for `--version`: {e}"))),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        use std::io::Read as _;
        let _ = stdout.by_ref().take(4096).read_to_string(&mut out);
    }
    if !status.success() {
        return Err(failed(format!(
            "`--version` failed ({status}): give --version"
        )));
    }
    version_in(&out).ok_or_else(|| {
        failed(format!(
            "`--version` printed no version ({:?}): give --version",
            out.trim().chars().take(80).collect::<String>()
        ))
    })
}

/// `release sign`: the package's manifest, signed, written to `out`; returns it.
pub fn sign(options: &SignOptions) -> Result<(SignedManifest, Manifest), PublishError> {
    let pair = KeyPair::read(&options.key)?;
    let shown = options.package.display().to_string();
    let meta = std::fs::metadata(&options.package).map_err(|source| PublishError::Io {
        what: "cannot read the package",
        path: shown.clone(),
        source,
    })?;
    if !meta.is_file() {
        return Err(PublishError::Package {
            path: shown,
            detail: "is not a file".into(),
        });
    }
    if meta.len() == 0 || meta.len() > MAX_PACKAGE_BYTES {
        return Err(PublishError::Package {
            path: shown,
            detail: format!(
                "is {} bytes: a package is 1 to {MAX_PACKAGE_BYTES} bytes",
                meta.len()
            ),
        });
    }
    let version = match &options.version {
        Some(v) => v.trim().to_string(),
        None => ask_version(&options.package)?,
    };
    release::parse_version(&version)
        .map_err(|e| PublishError::Version(format!("--version {e}")))?;
    release::parse_version(&options.min_cloud_version)
        .map_err(|e| PublishError::Version(format!("--min-cloud-version {e}")))?;
    let (sha256, size) = file_digest(&options.package).map_err(|source| PublishError::Io {
        what: "cannot read the package",
        path: shown.clone(),
        source,
    })?;
    let manifest = Manifest {
        product: release::PRODUCT.to_string(),
        version,
        target: options.target.clone(),
        sha256,
        size,
        min_cloud_version: options.min_cloud_version.clone(),
    };
    manifest.check().map_err(|e| PublishError::Package {
        path: shown,
        detail: e.to_string(),
    })?;
    let signed = sign_manifest(&pair, &manifest);
    let mut text = signed.to_json();
    text.push('\n');
    std::fs::write(&options.out, text).map_err(|source| PublishError::Io {
        what: "cannot write the signed manifest",
        path: options.out.display().to_string(),
        source,
    })?;
    Ok((signed, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::update::verify::{verify_signed, PublisherKey};
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn keygen_writes_a_private_key_0600_once_and_sign_makes_a_verifiable_manifest(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("publish")?;
        let key = dir.path().join("release.key");
        let public = keygen(&key)?;
        assert_eq!(std::fs::metadata(&key)?.permissions().mode() & 0o777, 0o600);
        let again = keygen(&key);
        assert!(
            matches!(again, Err(PublishError::KeyExists(_))),
            "{again:?}"
        );
        let pem = std::fs::read_to_string(&key)?;
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");

        let package = dir.path().join("passthru-agent");
        std::fs::write(&package, b"#!/bin/sh\necho passthru-agent 0.3.1\n")?;
        std::fs::set_permissions(&package, std::fs::Permissions::from_mode(0o755))?;
        let out = dir.path().join("release.sig");
        let options = SignOptions {
            key: key.clone(),
            package: package.clone(),
            version: None,
            min_cloud_version: "0.1.0".into(),
            target: release::this_target(),
            out: out.clone(),
        };
        let (signed, manifest) = sign(&options)?;
        assert_eq!(manifest.version, "0.3.1", "asked of the package");
        assert_eq!(manifest.min_cloud_version, "0.1.0");
        assert_eq!(
            (manifest.sha256.clone(), manifest.size),
            file_digest(&package)?
        );
        let bytes = std::fs::read(&out)?;
        let pinned = PublisherKey::new(crate::config::updates::parse_public_key(&public)?, "test");
        let (doc, read) = verify_signed(&bytes, &pinned)?;
        assert_eq!((doc, read), (signed, manifest));

        // --version given; a version that is not one is refused.
        let given = sign(&SignOptions {
            version: Some("1.0.0-rc.1".into()),
            ..options.clone()
        })?;
        assert_eq!(given.1.version, "1.0.0-rc.1");
        assert!(sign(&SignOptions {
            version: Some("one".into()),
            ..options.clone()
        })
        .is_err());
        assert!(sign(&SignOptions {
            min_cloud_version: "latest".into(),
            ..options.clone()
        })
        .is_err());
        // A key file that is not a key.
        std::fs::write(dir.path().join("bad.key"), "not a key")?;
        assert!(matches!(
            sign(&SignOptions {
                key: dir.path().join("bad.key"),
                ..options.clone()
            }),
            Err(PublishError::BadKey(_))
        ));
        // A package that prints no version.
        std::fs::write(&package, b"#!/bin/sh\necho hello\n")?;
        let err = sign(&options)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("give --version"), "{err}");
        Ok(())
    }

    #[test]
    fn versions_are_read_from_version_output() {
        assert_eq!(version_in("passthru-agent 0.2.0\n"), Some("0.2.0".into()));
        assert_eq!(
            version_in("passthru-agent 1.0.0-rc.1"),
            Some("1.0.0-rc.1".into())
        );
        assert_eq!(version_in(""), None);
        assert_eq!(version_in("passthru-agent"), None);
    }
}
