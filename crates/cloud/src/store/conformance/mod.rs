//! The store conformance suite: the rules every store backend keeps, written against the store
//! traits ([`super::Backend`]) and the facade, never a backend's own methods, so that each
//! backend runs the same checks. It covers every trait:
//! - this file: one function per area whose rules are checked with many calls at once
//!   (`oidc`, `lockout`, `device`, `mfa`, `attempts`, `writeback`, `signing_keys`, `portal`,
//!   `federation`), called with `store.backend()`;
//! - `directory`: tenants, domains, users, apps, the sign-in log, sync state and purges;
//! - one file per area for the rules that need a prepared store (`admin`, `agents`, `sync`,
//!   `sign_in_state`, `federation`, `mfa`, `portal`, `sign_in_log`, `tenants`): they open it
//!   with `store::test_store`, the one place a test picks its backend.
//!
//! SQLite runs all of it in `cargo test -p passthru-cloud --lib conformance`; a new backend
//! opens itself in `test_store` and calls the area functions from its own tests.
//!
//! Rules that a limit or a one-time use depends on are checked with many calls at once, not
//! one after another.

use futures_util::future::join_all;
use uuid::Uuid;

use super::attempts::Bump;
use super::device::DeviceCode;
use super::federation::{Conversion, FederationConfig, FederationState};
use super::lockout::FAILURE_WINDOW_SECS;
use super::mfa::{Challenge, MfaRecord, Reservation, Stage, FAILURES_PER_LOCK, FIRST_LOCK_SECS};
use super::oidc::RefreshUse;
use super::portal::{PortalLogin, PortalSession};
use super::signing_keys::NewKey;
use super::writeback::ResetFlow;
use super::{
    AttemptStore, AuthCode, AuthzRequest, DeviceStore, FederationStore, LockoutStore, MfaStore,
    OidcStore, PortalStore, RefreshRecord, SessionRecord, SigningKeyStore, StoreError,
    WritebackStore,
};
use crate::model::mfa_policy::Policy;

/// `anyhow::ensure!` for equality, with both sides in the error.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (l, r) = (&$left, &$right);
        anyhow::ensure!(l == r, "{:?} != {:?}", l, r);
    }};
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        anyhow::ensure!(l == r, "{:?} != {:?}: {}", l, r, format!($($msg)+));
    }};
}

pub(super) fn request(tenant_id: Uuid, id: &str) -> AuthzRequest {
    AuthzRequest {
        id: id.into(),
        tenant_id,
        client_id: "client".into(),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        state: Some("s".into()),
        nonce: Some("n".into()),
        code_challenge: Some("c".repeat(43)),
        response_mode: "query".into(),
        prompt: None,
        max_age: None,
        login_hint: None,
        csrf: "csrf".into(),
        username: None,
        device_user_code: None,
        password_change: None,
    }
}

pub(super) fn code(tenant_id: Uuid) -> AuthCode {
    AuthCode {
        tenant_id,
        client_id: "client".into(),
        redirect_uri: "https://app.example/cb".into(),
        user_id: Uuid::new_v4(),
        scope: "openid".into(),
        nonce: Some("n".into()),
        code_challenge: Some("x".into()),
        auth_time: 5,
        expires_at: 100,
    }
}

pub(super) fn refresh(tenant_id: Uuid, family: &str) -> RefreshRecord {
    RefreshRecord {
        tenant_id,
        user_id: Uuid::new_v4(),
        client_id: "client".into(),
        scope: "openid".into(),
        expires_at: 100,
        family: family.into(),
        auth_time: 1,
    }
}

mod more_areas;
mod sign_in_flows;
pub(crate) use more_areas::{attempts, federation, portal, signing_keys, writeback};
pub(crate) use sign_in_flows::{device, lockout, mfa, oidc};

mod admin;
mod agents;
mod directory;
mod federation;
mod instances;
mod mfa;
mod portal;
mod sign_in_log;
mod sign_in_state;
mod sync;
mod tenants;

#[cfg(test)]
mod tests {
    use crate::store::{test_store, DomainKind};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_oidc_rules() -> anyhow::Result<()> {
        let (s, dir, tenant_id) =
            test_store("conformance", "contoso.example", DomainKind::Cloud).await?;
        super::oidc(s.backend(), tenant_id).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_lockout_and_device_rules() -> anyhow::Result<()> {
        let (s, dir, tenant_id) =
            test_store("conformance", "corp.test", DomainKind::Managed).await?;
        let user = s
            .add_cloud_user(tenant_id, "dana@corp.test", "h", "none", 1)
            .await?;
        super::lockout(s.backend(), tenant_id, user).await?;
        super::device(s.backend(), tenant_id, user).await?;
        super::portal(s.backend(), tenant_id).await?;
        super::federation(s.backend(), tenant_id).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_keeps_the_attempt_counter_rules() -> anyhow::Result<()> {
        let (s, dir, _) = test_store("conformance", "corp.test", DomainKind::Managed).await?;
        super::attempts(s.backend()).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_mfa_writeback_and_signing_key_rules() -> anyhow::Result<()> {
        let (s, dir, t) = test_store("conformance", "contoso.example", DomainKind::Cloud).await?;
        let u = s
            .add_cloud_user(t, "a@contoso.example", "x", "none", 1)
            .await?;
        let other = s
            .add_cloud_user(t, "b@contoso.example", "x", "none", 1)
            .await?;
        super::mfa(s.backend(), t, u, other).await?;
        super::writeback(s.backend(), t, other).await?;
        let beta = uuid::Uuid::new_v4();
        s.create_tenant(beta, "beta", 1).await?;
        super::signing_keys(s.backend(), t, beta).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_keeps_the_instance_rules() -> anyhow::Result<()> {
        let (s, dir, t) = test_store("conformance", "corp.test", DomainKind::Managed).await?;
        super::instances::instances(s.backend(), t).await?;
        super::instances::check_places(s.backend(), t).await?;
        // One SQLite store, one instance: a second serve lock is refused, bus or not.
        s.hold_serve_lock(false).await?;
        let again = crate::store::Store::open(&dir.join("t.db"), false).await?;
        for shared in [false, true] {
            match again.hold_serve_lock(shared).await {
                Err(crate::store::StoreError::InUse(m)) => {
                    anyhow::ensure!(m.contains("another passthru-cloud instance"), "{m}")
                }
                other => anyhow::bail!("a second serve lock was not refused: {other:?}"),
            }
        }
        again.close().await;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_directory_rules() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-conf-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let s = crate::store::Store::open(&dir.join("t.db"), true).await?;
        super::directory::directory(s.backend()).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
