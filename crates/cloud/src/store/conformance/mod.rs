//! The store conformance suite: the rules every store backend keeps, written against the store
//! traits ([`super::Backend`]) and the facade, never a backend's own methods, so that each
//! backend runs the same checks. It covers every trait:
//! - this file: one function per area whose rules are checked with many calls at once
//!   (`oidc`, `lockout`, `device`, `mfa`, `attempts`, `writeback`, `signing_keys`, `portal`,
//!   `federation`), called with `store.backend()`;
//! - `releases`: agent releases (signed auto-update);
//! - `app_credentials`: apps' secrets and certificates (the cap under parallel adds);
//! - `directory`: tenants, domains, users, apps, the sign-in log, sync state and purges;
//! - one file per area for the rules that need a prepared store (`admin`, `agents`, `sync`,
//!   `sign_in_state`, `federation`, `mfa`, `portal`, `sign_in_log`, `tenants`): they open it
//!   with `store::test_store_on`, the one place a test picks its backend.
//!
//! SQLite and PostgreSQL run all of it in `cargo test -p passthru-cloud --lib conformance`
//! (`on_every_backend!` makes one test per backend; PostgreSQL at `PASSTHRU_TEST_POSTGRES`,
//! skipped only with `PASSTHRU_SKIP_POSTGRES=1`); a new backend opens itself in
//! `store::empty_test_store` and joins [`crate::store::TestBackend`].
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
pub(crate) use more_areas::{
    attempts, federation, portal, signing_key_algorithms, signing_keys, writeback,
};
pub(crate) use sign_in_flows::{device, lockout, mfa, oidc};

mod admin;
mod agents;
mod app_apis;
mod app_credentials;
mod audit;
mod directory;
mod federation;
mod instances;
mod mfa;
mod portal;
mod releases;
mod sign_in_log;
mod sign_in_state;
mod sync;
mod tenants;

/// Tests that run on every backend: each `async fn name(backend: TestBackend)` becomes
/// `sqlite::name` and `postgres::name` (the latter fails when PostgreSQL is unreachable,
/// unless `PASSTHRU_SKIP_POSTGRES=1`). Attributes before a function (the tokio flavour, its doc)
/// go to both tests.
macro_rules! on_every_backend {
    ($(
        $(#[$attr:meta])*
        async fn $name:ident($backend:ident: TestBackend $(,)?) -> anyhow::Result<()> $body:block
    )*) => {
        $(
            async fn $name($backend: crate::store::TestBackend) -> anyhow::Result<()> $body
        )*
        mod sqlite {
            $(
                $(#[$attr])*
                async fn $name() -> anyhow::Result<()> {
                    super::$name(crate::store::TestBackend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                $(#[$attr])*
                async fn $name() -> anyhow::Result<()> {
                    if crate::store::postgres_skipped() {
                        return Ok(());
                    }
                    super::$name(crate::store::TestBackend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

#[cfg(test)]
mod tests {
    use crate::store::{empty_test_store, test_store_on, DomainKind};

    super::on_every_backend! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_the_oidc_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir, tenant_id) =
                test_store_on(backend, "conformance", "contoso.example", DomainKind::Cloud).await?;
            super::oidc(s.backend(), tenant_id).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_the_lockout_and_device_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir, tenant_id) =
                test_store_on(backend, "conformance", "corp.test", DomainKind::Managed).await?;
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
        async fn keeps_the_attempt_counter_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir, _) =
                test_store_on(backend, "conformance", "corp.test", DomainKind::Managed).await?;
            super::attempts(s.backend()).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_the_mfa_writeback_and_signing_key_rules(
            backend: TestBackend,
        ) -> anyhow::Result<()> {
            let (s, dir, t) =
                test_store_on(backend, "conformance", "contoso.example", DomainKind::Cloud).await?;
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
            let gamma = uuid::Uuid::new_v4();
            s.create_tenant(gamma, "gamma", 1).await?;
            super::signing_key_algorithms(s.backend(), gamma).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_the_directory_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir) = empty_test_store(backend, "conf").await?;
            super::directory::directory(s.backend()).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keeps_the_app_api_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir) = empty_test_store(backend, "conf").await?;
            super::app_apis::app_apis(s.backend()).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn keeps_the_release_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir, t) =
                test_store_on(backend, "conformance", "corp.test", DomainKind::Managed).await?;
            let other = uuid::Uuid::new_v4();
            s.create_tenant(other, "fabrikam", 1).await?;
            super::releases::releases(s.backend(), t, other).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn keeps_the_instance_rules(backend: TestBackend) -> anyhow::Result<()> {
            let (s, dir, t) =
                test_store_on(backend, "conformance", "corp.test", DomainKind::Managed).await?;
            super::instances::instances(s.backend(), t).await?;
            super::instances::check_places(s.backend(), t).await?;
            s.close().await;
            std::fs::remove_dir_all(dir)?;
            Ok(())
        }
    }

    /// One SQLite store, one instance: a second serve lock is refused, bus or not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_refuses_a_second_serve_lock() -> anyhow::Result<()> {
        let (s, dir) = empty_test_store(crate::store::TestBackend::Sqlite, "serve-lock").await?;
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

    /// PostgreSQL: instances with a bus share the store; one without a bus has it alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_serve_locks_are_shared_with_a_bus_and_exclusive_without() -> anyhow::Result<()>
    {
        if std::env::var("PASSTHRU_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            return Ok(());
        }
        let url = std::env::var("PASSTHRU_TEST_POSTGRES")
            .unwrap_or_else(|_| crate::store::DEFAULT_TEST_POSTGRES.to_string());
        let open = |schema: String, fresh: bool| {
            let url = url.clone();
            async move {
                let b = if fresh {
                    crate::store::postgres::PgStore::open_in_schema(&url, &schema).await?
                } else {
                    crate::store::postgres::PgStore::open_schema(&url, &schema).await?
                };
                anyhow::Ok(crate::store::Store::over(std::sync::Arc::new(b)))
            }
        };
        let schema = format!("pt_{}", uuid::Uuid::new_v4().simple());
        let s = open(schema.clone(), true).await?;
        let other = || open(schema.clone(), false);
        // With a bus: several at once; then one without a bus is refused, with what to do.
        s.hold_serve_lock(true).await?;
        let b = other().await?;
        b.hold_serve_lock(true).await?;
        let c = other().await?;
        match c.hold_serve_lock(false).await {
            Err(crate::store::StoreError::InUse(m)) => anyhow::ensure!(m.contains("--bus"), "{m}"),
            other => anyhow::bail!("an instance without a bus was let in: {other:?}"),
        }
        b.close().await;
        s.close().await;
        // Without a bus: alone; one with a bus is refused too.
        let schema = format!("pt_{}", uuid::Uuid::new_v4().simple());
        let s = open(schema.clone(), true).await?;
        let d = open(schema.clone(), false).await?;
        s.hold_serve_lock(false).await?;
        for shared in [false, true] {
            match d.hold_serve_lock(shared).await {
                Err(crate::store::StoreError::InUse(m)) => {
                    anyhow::ensure!(m.contains("--bus"), "{m}")
                }
                other => anyhow::bail!("a second instance was let in: {other:?}"),
            }
        }
        c.close().await;
        d.close().await;
        s.close().await;
        Ok(())
    }
}
