//! Agent releases: the manifest a publisher signs and the signed document that carries it.
//!
//! A release is the `passthru-agent` executable (the package) and a signed manifest: the
//! manifest's JSON text, exactly as signed, and an Ed25519 signature over those bytes, in one
//! JSON document (`passthru-agent release sign --out SIGFILE` writes it):
//!
//! ```json
//! {"manifest":"{\"product\":\"passthru-agent\",\"version\":\"0.2.0\",...}","signature":"BASE64"}
//! ```
//!
//! The cloud reads a manifest without verifying it (it holds no publisher key): it only checks
//! that the package it is given has the digest and size the manifest names, and picks which
//! release to offer. The agent verifies the signature with the publisher key pinned in it
//! before it trusts anything the manifest says. Parsing here never panics on any input.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// The product every manifest names: a signature over another product's manifest is not a
/// release of the agent.
pub const PRODUCT: &str = "passthru-agent";
/// Largest signed manifest accepted (a manifest is a few hundred bytes).
pub const MAX_SIGNED_MANIFEST_BYTES: usize = 16 * 1024;
/// Largest package a manifest may announce.
pub const MAX_PACKAGE_BYTES: u64 = 512 * 1024 * 1024;
/// Length of an Ed25519 signature.
pub const SIGNATURE_BYTES: usize = 64;
/// Longest version string accepted.
const MAX_VERSION_LEN: usize = 64;

/// What a publisher signs about one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`PRODUCT`].
    pub product: String,
    /// The package's version (semantic versioning, e.g. `0.2.0`).
    pub version: String,
    /// The platform the package runs on, `ARCH-OS` as Rust names them (`x86_64-linux`).
    pub target: String,
    /// SHA-256 of the package, lower-case hex.
    pub sha256: String,
    /// The package's size in bytes.
    pub size: u64,
    /// The oldest cloud version that may offer this release.
    pub min_cloud_version: String,
}

/// A manifest with its signature: the content of a `SIGFILE`, stored by the cloud and sent to
/// agents as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    /// The manifest's JSON text, exactly the bytes signed.
    pub manifest: String,
    /// The Ed25519 signature over `manifest`'s UTF-8 bytes, base64 (standard alphabet).
    pub signature: String,
}

/// Why a signed manifest or a manifest cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// Larger than [`MAX_SIGNED_MANIFEST_BYTES`].
    #[error("the signed manifest is larger than {MAX_SIGNED_MANIFEST_BYTES} bytes: not a file written by `passthru-agent release sign`")]
    TooLarge,
    /// Not the JSON shape expected.
    #[error("the signed manifest is not readable ({0}): give the file written by `passthru-agent release sign --out`")]
    Malformed(String),
    /// A field of the manifest is wrong.
    #[error("the manifest's {field} {detail}")]
    BadField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
}

/// The platform this program was built for, as manifests name it (`x86_64-linux`).
pub fn this_target() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// Reads a version (semantic versioning; a leading `v` is not accepted).
pub fn parse_version(text: &str) -> Result<semver::Version, String> {
    if text.len() > MAX_VERSION_LEN {
        return Err(format!("is longer than {MAX_VERSION_LEN} characters"));
    }
    semver::Version::parse(text).map_err(|e| {
        format!(
            "'{}' is not a version like 1.2.3 ({e})",
            text.escape_debug()
        )
    })
}

/// Compares two versions by semantic-versioning precedence (build metadata ignored; a
/// pre-release comes before its release).
pub fn compare_versions(a: &semver::Version, b: &semver::Version) -> Ordering {
    a.cmp_precedence(b)
}

/// Whether `candidate` is newer than `current` (both must be versions; anything unreadable
/// is not newer).
pub fn is_newer(candidate: &str, current: &str) -> bool {
    match (parse_version(candidate), parse_version(current)) {
        (Ok(c), Ok(o)) => compare_versions(&c, &o) == Ordering::Greater,
        _ => false,
    }
}

fn bad(field: &'static str, detail: impl Into<String>) -> ReleaseError {
    ReleaseError::BadField {
        field,
        detail: detail.into(),
    }
}

impl Manifest {
    /// The manifest's JSON text (what is signed).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads and checks a manifest's JSON text: the product, a version and a minimum cloud
    /// version that parse, a target, a SHA-256 in lower-case hex and a size within
    /// [`MAX_PACKAGE_BYTES`].
    pub fn parse(text: &str) -> Result<Manifest, ReleaseError> {
        let m: Manifest =
            serde_json::from_str(text).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
        m.check()?;
        Ok(m)
    }

    /// Checks the fields (see [`Manifest::parse`]).
    pub fn check(&self) -> Result<(), ReleaseError> {
        if self.product != PRODUCT {
            return Err(bad(
                "product",
                format!(
                    "is '{}', not '{PRODUCT}'",
                    self.product.chars().take(64).collect::<String>()
                ),
            ));
        }
        parse_version(&self.version).map_err(|e| bad("version", e))?;
        parse_version(&self.min_cloud_version).map_err(|e| bad("min_cloud_version", e))?;
        let target_ok = !self.target.is_empty()
            && self.target.len() <= 64
            && self
                .target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !target_ok {
            return Err(bad("target", "must be ARCH-OS, e.g. x86_64-linux"));
        }
        let hex_ok = self.sha256.len() == 64
            && self
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !hex_ok {
            return Err(bad("sha256", "must be 64 lower-case hex digits"));
        }
        if self.size == 0 || self.size > MAX_PACKAGE_BYTES {
            return Err(bad(
                "size",
                format!("must be between 1 and {MAX_PACKAGE_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// The version, parsed (checked by [`Manifest::parse`]).
    pub fn semver(&self) -> Result<semver::Version, ReleaseError> {
        parse_version(&self.version).map_err(|e| bad("version", e))
    }
}

impl SignedManifest {
    /// Reads a signed manifest (a `SIGFILE`): its size, its shape, a signature of the right
    /// length, and a manifest that reads. Verifies nothing: see the agent's verification.
    pub fn parse(bytes: &[u8]) -> Result<SignedManifest, ReleaseError> {
        if bytes.len() > MAX_SIGNED_MANIFEST_BYTES {
            return Err(ReleaseError::TooLarge);
        }
        let signed: SignedManifest =
            serde_json::from_slice(bytes).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
        signed.signature_bytes()?;
        Manifest::parse(&signed.manifest)?;
        Ok(signed)
    }

    /// The JSON document (what `SIGFILE` holds).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The signature's bytes.
    pub fn signature_bytes(&self) -> Result<[u8; SIGNATURE_BYTES], ReleaseError> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.signature.trim().as_bytes())
            .map_err(|e| ReleaseError::Malformed(format!("the signature is not base64: {e}")))?;
        <[u8; SIGNATURE_BYTES]>::try_from(raw.as_slice()).map_err(|_| {
            ReleaseError::Malformed(format!(
                "the signature is {} bytes, not the {SIGNATURE_BYTES} of an Ed25519 signature",
                raw.len()
            ))
        })
    }

    /// The manifest, read but not verified: the cloud's view. An agent verifies first.
    pub fn unverified_manifest(&self) -> Result<Manifest, ReleaseError> {
        Manifest::parse(&self.manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            product: PRODUCT.into(),
            version: "0.2.0".into(),
            target: "x86_64-linux".into(),
            sha256: "ab".repeat(32),
            size: 1234,
            min_cloud_version: "0.1.0".into(),
        }
    }

    #[test]
    fn versions_compare_by_precedence() {
        assert!(is_newer("0.2.0", "0.1.9"));
        assert!(is_newer("0.10.0", "0.9.0"), "numeric, not textual");
        assert!(
            is_newer("1.0.0", "1.0.0-rc.1"),
            "a release after its pre-release"
        );
        assert!(!is_newer("1.0.0-rc.1", "1.0.0"));
        assert!(!is_newer("0.1.0", "0.1.0"), "the same version is not newer");
        assert!(
            !is_newer("0.1.0+build2", "0.1.0+build1"),
            "build metadata does not count"
        );
        assert!(!is_newer("0.1.0", "0.2.0"));
        assert!(!is_newer("not a version", "0.1.0"));
        assert!(!is_newer("0.2.0", "garbage"));
        assert!(!is_newer("v0.2.0", "0.1.0"));
        assert!(parse_version(&"9".repeat(100)).is_err());
    }

    #[test]
    fn manifests_round_trip_and_are_checked() {
        let m = manifest();
        assert_eq!(Manifest::parse(&m.to_json()), Ok(m.clone()));
        let with = |f: &dyn Fn(&mut Manifest)| {
            let mut m = manifest();
            f(&mut m);
            Manifest::parse(&m.to_json())
        };
        let field = |r: Result<Manifest, ReleaseError>| match r {
            Err(ReleaseError::BadField { field, .. }) => field,
            _ => "",
        };
        assert_eq!(field(with(&|m| m.product = "other".into())), "product");
        assert_eq!(field(with(&|m| m.version = "1.2".into())), "version");
        assert_eq!(
            field(with(&|m| m.min_cloud_version = "x".into())),
            "min_cloud_version"
        );
        assert_eq!(field(with(&|m| m.target = "x86 64".into())), "target");
        assert_eq!(field(with(&|m| m.target = String::new())), "target");
        assert_eq!(field(with(&|m| m.sha256 = "AB".repeat(32))), "sha256");
        assert_eq!(field(with(&|m| m.sha256 = "ab".into())), "sha256");
        assert_eq!(field(with(&|m| m.size = 0)), "size");
        assert_eq!(field(with(&|m| m.size = MAX_PACKAGE_BYTES + 1)), "size");
    }

    #[test]
    fn signed_manifests_are_read_without_panicking() {
        use base64::Engine as _;
        let sig = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
        let good = SignedManifest {
            manifest: manifest().to_json(),
            signature: sig.clone(),
        };
        let parsed = SignedManifest::parse(good.to_json().as_bytes());
        assert_eq!(parsed.as_ref().ok(), Some(&good));
        assert_eq!(good.unverified_manifest(), Ok(manifest()));
        for bad in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            b"{\"manifest\":1,\"signature\":\"\"}",
            b"{\"manifest\":\"{}\",\"signature\":\"AAAA\"}",
            b"\xff\xfe",
        ] {
            assert!(SignedManifest::parse(bad).is_err(), "{bad:?}");
        }
        let short = SignedManifest {
            manifest: manifest().to_json(),
            signature: "AAAA".into(),
        };
        assert!(matches!(
            SignedManifest::parse(short.to_json().as_bytes()),
            Err(ReleaseError::Malformed(m)) if m.contains("64")
        ));
        let extra = format!(
            "{{\"manifest\":{:?},\"signature\":\"{sig}\",\"more\":1}}",
            manifest().to_json()
        );
        assert!(SignedManifest::parse(extra.as_bytes()).is_err());
        let huge = vec![b' '; MAX_SIGNED_MANIFEST_BYTES + 1];
        assert_eq!(SignedManifest::parse(&huge), Err(ReleaseError::TooLarge));
        assert_eq!(
            this_target(),
            format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
        );
    }
}
