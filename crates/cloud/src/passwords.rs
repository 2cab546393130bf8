//! Cloud-only passwords: argon2id hashes (PHC strings). Hashing runs on the blocking pool so
//! it never stalls the async workers.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use zeroize::Zeroizing;

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
/// of password attempts queues instead of exhausting memory.
fn permits() -> &'static tokio::sync::Semaphore {
    static SEM: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SEM.get_or_init(|| {
        tokio::sync::Semaphore::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    })
}

/// Hashes a password with argon2id and a random salt.
pub async fn hash(password: Zeroizing<String>) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    let _permit = permits()
        .acquire()
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

/// Checks a password against a stored hash. A malformed hash never matches.
pub async fn verify(password: Zeroizing<String>, stored: String) -> bool {
    if password.is_empty() {
        return false;
    }
    let Ok(_permit) = permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || {
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
}
