//! Cloud-only passwords: argon2id hashes (PHC strings). Hashing runs on the blocking pool so
//! it never stalls the async workers.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::limits::fair::{Busy, FairShare};

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// An empty password was given.
    #[error("the password is empty")]
    Empty,
    /// The hash could not be computed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// At most this many argon2 computations at once (each takes ~19 MiB and a core): a flood
/// of password attempts queues instead of exhausting memory. One tenant holds at most half
/// of them (at least one) and has at most [`ADMITTED_PER_TENANT`] checks waiting or running:
/// a tenant's flood queues behind itself, and past that is refused (AADSTS90055), so other
/// tenants' checks still start at once.
fn permits() -> &'static FairShare {
    static POOL: std::sync::OnceLock<FairShare> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        FairShare::new(cores, (cores / 2).max(1), ADMITTED_PER_TENANT)
    })
}

/// Password checks one tenant may have waiting or running at once.
pub const ADMITTED_PER_TENANT: usize = 64;

/// Hashes a password with argon2id and a random salt.
pub async fn hash(password: Zeroizing<String>) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let _permit = permits()
        .acquire_global()
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

/// Checks a sign-in's password against a stored hash within the tenant's fair share of the
/// argon2 pool; `Err(Busy)` when the tenant already has as many checks waiting as it may.
pub async fn verify_in_tenant(
    tenant: Uuid,
    password: Zeroizing<String>,
    stored: String,
) -> Result<bool, Busy> {
    if password.is_empty() {
        return Ok(false);
    }
    let permit = permits().acquire(tenant).await?;
    Ok(check(permit, password, stored).await)
}

async fn check(
    permit: crate::limits::fair::FairPermit,
    password: Zeroizing<String>,
    stored: String,
) -> bool {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check outside any flood (one tenant, one check at a time).
    async fn verify(password: Zeroizing<String>, stored: String) -> bool {
        matches!(
            verify_in_tenant(Uuid::nil(), password, stored).await,
            Ok(true)
        )
    }

    #[tokio::test]
    async fn hash_and_verify() -> Result<(), PasswordError> {
        let h = hash(Zeroizing::new("Secr3t!ä".into())).await?;
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("Secr3t"));
        assert!(verify(Zeroizing::new("Secr3t!ä".into()), h.clone()).await);
        assert!(!verify(Zeroizing::new("secr3t!ä".into()), h.clone()).await);
        assert!(!verify(Zeroizing::new(String::new()), h).await);
        assert!(hash(Zeroizing::new(String::new())).await.is_err());
        Ok(())
    }

    /// Tenant A floods the argon2 pool with 40 checks; tenant B's one check waits for at
    /// most a few checks, not for A's whole queue (a single FIFO pool made it wait ~20).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_tenants_flood_does_not_starve_anothers_checks() -> Result<(), PasswordError> {
        let stored = hash(Zeroizing::new("Secr3t!".into())).await?;
        let started = std::time::Instant::now();
        assert!(verify(Zeroizing::new("Secr3t!".into()), stored.clone()).await);
        let one = started.elapsed();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut flood = Vec::new();
        for _ in 0..40 {
            let stored = stored.clone();
            flood.push(tokio::spawn(async move {
                verify_in_tenant(a, Zeroizing::new("wrong".into()), stored).await
            }));
        }
        tokio::time::sleep(one / 2).await;
        let started = std::time::Instant::now();
        let right = verify_in_tenant(b, Zeroizing::new("Secr3t!".into()), stored.clone()).await;
        let waited = started.elapsed();
        assert_eq!(right, Ok(true));
        assert!(
            waited < one * 6,
            "tenant B's check took {waited:?} (one check: {one:?}) behind tenant A's flood"
        );
        // A's own flood is served too, or refused past its admitted share (none here).
        for f in flood {
            assert_eq!(f.await.ok(), Some(Ok(false)));
        }
        Ok(())
    }
}
