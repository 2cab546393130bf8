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

/// The admin access token for `tenant` at `client` (see the module's documentation).
pub(super) async fn admin_token(
    client: &CloudClient,
    tenant: &str,
    device_code: bool,
) -> anyhow::Result<Zeroizing<String>> {
    if !device_code && admin_credentials_in_env() {
        return password_grant(client, tenant).await;
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
            return Ok(token);
        }
    }
    if !device_code {
        return password_grant(client, tenant).await;
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
    Ok(access)
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
