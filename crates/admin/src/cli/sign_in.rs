//! How `passthru-cloud admin` gets its access token, in this order:
//!
//! 1. `PASSTHRU_ADMIN_UPN` or `PASSTHRU_ADMIN_PASSWORD` set, and no `--device-code`: the
//!    password grant, as before the token cache existed (nothing cached, nothing read).
//! 2. Otherwise the token cache's entry for this cloud and tenant: its access token while
//!    valid, else a new one for its refresh token (rotated, stored).
//! 3. Otherwise, with `--device-code`: a sign-in through a web browser (device authorization
//!    grant, which asks for the second factor), cached with its refresh token.
//! 4. Otherwise the password grant with the credentials asked on the terminal (not cached);
//!    without a terminal, an error that names `--device-code` and the variables.

use passthru_client::{
    admin_credentials_from_env_or_prompt, admin_credentials_in_env, ClientError, CloudClient,
    RealClock, Refresh,
};
use zeroize::Zeroizing;

use super::token_cache::{Entry, TokenCache, TOKEN_CACHE_ENV};

/// The current time, Unix seconds.
fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A refused sign-in, with what to do when it is the second factor the password grant cannot
/// ask for.
fn refused(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Rejected {
            code: 50076 | 50079,
            ..
        } => anyhow::Error::new(e).context(
            "this administrator must prove a second factor, which the password grant cannot ask \
             for: run the command again with --device-code (and without PASSTHRU_ADMIN_UPN and \
             PASSTHRU_ADMIN_PASSWORD) to sign in through a web browser",
        ),
        other => other.into(),
    }
}

/// An access token, and the token cache it came from (if it did).
#[derive(Debug)]
pub(super) struct SignedIn {
    pub token: Zeroizing<String>,
    pub from_cache: Option<TokenCache>,
}

/// The admin access token for `tenant` at `client` (see the module's documentation).
pub(super) async fn admin_token(
    client: &CloudClient,
    tenant: &str,
    device_code: bool,
) -> anyhow::Result<SignedIn> {
    let fresh = |token| SignedIn {
        token,
        from_cache: None,
    };
    if !device_code && admin_credentials_in_env() {
        return password_grant(client, tenant).await.map(fresh);
    }
    let cache = TokenCache::from_env();
    let cloud = client.base_url();
    // A cache that does not exist is not made (no directory, no lock file) just to read it.
    if let Some(cache) = cache.as_ref().filter(|c| c.path().exists()) {
        let cached = cache
            .open()?
            .token(cloud, tenant, unix_now(), async |refresh_token: &str| {
                client.admin_refresh(tenant, refresh_token).await
            })
            .await?;
        if let Some(token) = cached {
            return Ok(SignedIn {
                token,
                from_cache: Some(cache.clone()),
            });
        }
    }
    if !device_code {
        return password_grant(client, tenant).await.map(fresh);
    }
    let code = client.admin_device_code(tenant, Refresh::Wanted).await?;
    eprintln!("{}", code.message);
    let tokens = client
        .admin_device_token(tenant, &code, &mut RealClock::new())
        .await?;
    let access = tokens.access_token.clone();
    match &cache {
        Some(cache) => cache
            .open()?
            .put(Entry::new(cloud, tenant, tokens, None, unix_now()))?,
        None => eprintln!(
            "warning: the sign-in is not kept (no {TOKEN_CACHE_ENV}, XDG_CACHE_HOME or HOME to \
             put the token cache in): the next command signs in again"
        ),
    }
    Ok(fresh(access))
}

/// A command that failed with a token from the cache: when the admin API did not accept the
/// token (HTTP 401: the signing keys changed, the user is gone...), the cached sign-in is
/// forgotten and the error says to sign in again.
pub(super) fn after_failure(
    err: anyhow::Error,
    signed_in: &SignedIn,
    cloud: &str,
    tenant: &str,
) -> anyhow::Error {
    let rejected = matches!(
        err.downcast_ref::<ClientError>(),
        Some(ClientError::Api { status: 401, .. })
    );
    let Some(cache) = signed_in.from_cache.as_ref().filter(|_| rejected) else {
        return err;
    };
    match cache.open().and_then(|mut l| l.remove(cloud, tenant)) {
        Ok(true) => err.context(
            "the cloud no longer accepts the cached sign-in, which is now forgotten: run the \
             command again with --device-code to sign in",
        ),
        _ => err,
    }
}

/// The password grant, with the credentials from the environment or the terminal.
async fn password_grant(client: &CloudClient, tenant: &str) -> anyhow::Result<Zeroizing<String>> {
    let (upn, password) = admin_credentials_from_env_or_prompt()?;
    let token = client
        .admin_token(tenant, &upn, &password)
        .await
        .map_err(refused)?;
    Ok(Zeroizing::new(token))
}

/// `admin logout`: forgets the cached sign-in of `cloud` (a normalised base URL) and
/// `tenant`; the line to print.
pub(super) fn logout(cloud: &str, tenant: &str) -> anyhow::Result<String> {
    let Some(cache) = TokenCache::from_env() else {
        return Ok(format!(
            "No token cache (no {TOKEN_CACHE_ENV}, XDG_CACHE_HOME or HOME): no sign-in to \
             tenant '{tenant}' at {cloud} is kept here."
        ));
    };
    logout_from(&cache, cloud, tenant)
}

fn logout_from(cache: &TokenCache, cloud: &str, tenant: &str) -> anyhow::Result<String> {
    if cache.path().exists() && cache.open()?.remove(cloud, tenant)? {
        Ok(format!(
            "Signed out of tenant '{tenant}' at {cloud}: its cached tokens are deleted from {} \
             (the cloud has no revocation endpoint; the refresh token is unusable without the \
             deleted copy and lapses at the cloud within 90 days).",
            cache.path().display()
        ))
    } else {
        Ok(format!(
            "No cached sign-in for tenant '{tenant}' at {cloud} in {}: nothing to forget.",
            cache.path().display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passthru_client::AdminTokens;

    #[test]
    fn logout_says_what_it_did() -> anyhow::Result<()> {
        let dir =
            std::env::temp_dir().join(format!("passthru-logout-{}", uuid::Uuid::new_v4().simple()));
        let cache = TokenCache::new(dir.join("admin-tokens.json"));
        let tokens = AdminTokens {
            access_token: Zeroizing::new("a".into()),
            expires_in: 60,
            refresh_token: None,
        };
        cache
            .open()?
            .put(Entry::new("https://x", "contoso", tokens, None, 0))?;
        let first = logout_from(&cache, "https://x", "contoso")?;
        assert!(!cache.path().exists());
        let second = logout_from(&cache, "https://x", "contoso")?;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            first.starts_with("Signed out of tenant 'contoso' at https://x"),
            "{first}"
        );
        assert!(second.contains("nothing to forget"), "{second}");
        assert_eq!(first.lines().count(), 1);
        Ok(())
    }

    #[test]
    fn a_cached_token_the_api_refuses_is_forgotten() -> anyhow::Result<()> {
        let dir =
            std::env::temp_dir().join(format!("passthru-stale-{}", uuid::Uuid::new_v4().simple()));
        let cache = TokenCache::new(dir.join("admin-tokens.json"));
        let put = || -> anyhow::Result<()> {
            let tokens = AdminTokens {
                access_token: Zeroizing::new("a".into()),
                expires_in: 3600,
                refresh_token: None,
            };
            cache
                .open()?
                .put(Entry::new("https://x", "contoso", tokens, None, 0))
        };
        let api = |status| {
            anyhow::Error::new(ClientError::Api {
                status,
                error: "invalid_token".into(),
                description: "The access token is invalid or expired. Sign in again.".into(),
            })
        };
        let cached = SignedIn {
            token: Zeroizing::new("a".into()),
            from_cache: Some(cache.clone()),
        };
        put()?;
        // A refusal for another reason (403: the role) keeps the sign-in.
        let e = after_failure(api(403), &cached, "https://x", "contoso");
        assert!(!format!("{e:#}").contains("forgotten"));
        assert!(cache.open()?.get("https://x", "contoso").is_some());
        // A token from elsewhere: nothing to forget.
        let fresh = SignedIn {
            token: Zeroizing::new("a".into()),
            from_cache: None,
        };
        let e = after_failure(api(401), &fresh, "https://x", "contoso");
        assert!(!format!("{e:#}").contains("forgotten"));
        assert!(cache.open()?.get("https://x", "contoso").is_some());
        // 401 for a cached token: forgotten, and the error says to sign in.
        let e = after_failure(api(401), &cached, "https://x", "contoso");
        let text = format!("{e:#}");
        let gone = !cache.path().exists();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            text.contains("forgotten")
                && text.contains("--device-code")
                && text.contains("Sign in again"),
            "{text}"
        );
        assert!(gone);
        Ok(())
    }

    #[test]
    fn a_second_factor_refusal_names_device_code() {
        let e = refused(ClientError::Rejected {
            code: 50076,
            description: "AADSTS50076: you must use multi-factor authentication".into(),
        });
        let text = format!("{e:#}");
        assert!(
            text.contains("--device-code") && text.contains("AADSTS50076"),
            "{text}"
        );
        let e = refused(ClientError::Rejected {
            code: 50126,
            description: "AADSTS50126: wrong".into(),
        });
        assert!(!format!("{e:#}").contains("--device-code"));
    }
}
