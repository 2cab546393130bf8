//! In-process tests' server: a data dir made by `init` in a temporary directory, the state
//! `serve` would build over it, and the router, called without a socket.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, Response};
use axum::{Extension, Router};
use tokio::sync::watch;
use tower::ServiceExt as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::http::ClientInfo;
use crate::server::ServeOptions;
use crate::state::Shared;

/// A data dir with one tenant, and the state over it.
pub(crate) struct TestServer {
    pub dir: PathBuf,
    pub state: Shared,
    pub tenant_id: Uuid,
    _shutdown: watch::Sender<bool>,
}

/// The first tenant's name and Global Administrator.
pub(crate) const TENANT: &str = "contoso";
pub(crate) const ADMIN: &str = "admin@contoso.example";

impl TestServer {
    /// `init` in a fresh temporary dir, then the state of `serve` with `public_url`.
    pub(crate) async fn start(public_url: Option<&str>) -> anyhow::Result<TestServer> {
        TestServer::start_with(public_url, None).await
    }

    /// A server whose agent work and presence go to `dispatcher` (the gateway when `None`).
    pub(crate) async fn start_with(
        public_url: Option<&str>,
        dispatcher: Option<std::sync::Arc<dyn crate::dispatcher::Dispatcher>>,
    ) -> anyhow::Result<TestServer> {
        let dir = std::env::temp_dir().join(format!("passthru-inproc-{}", Uuid::new_v4()));
        let tenant_id = crate::init::init(
            &dir,
            TENANT,
            ADMIN,
            Zeroizing::new("Adm1n-password".into()),
            &[],
            None,
        )
        .await?;
        let (tx, rx) = watch::channel(false);
        let state = state_over(&dir, public_url.map(str::to_string), rx, dispatcher).await?;
        Ok(TestServer {
            dir,
            state,
            tenant_id,
            _shutdown: tx,
        })
    }

    /// Adds a tenant (as `tenant add` does) and returns its id.
    pub(crate) async fn add_tenant(&self, name: &str, admin: &str) -> anyhow::Result<Uuid> {
        crate::init::create_tenant(
            &self.state.store,
            &self.state.mfa_box,
            name,
            admin,
            Zeroizing::new("Adm1n-password".into()),
        )
        .await
    }

    /// An admin API access token of `tenant_id`'s user `upn`, signed with the tenant's key.
    pub(crate) async fn admin_token(&self, tenant_id: Uuid, upn: &str) -> anyhow::Result<String> {
        admin_token_of(&self.state, tenant_id, upn).await
    }

    /// Sends `req` through the router as from 127.0.0.1.
    pub(crate) async fn call(&self, req: Request<Body>) -> anyhow::Result<Response<Body>> {
        let app: Router = crate::server::router(self.state.clone()).layer(Extension(ClientInfo {
            addr: "127.0.0.1:40000".parse()?,
            peer_cert_fingerprint: None,
        }));
        Ok(app.oneshot(req).await?)
    }

    /// `call`, then the body as JSON (with the status).
    pub(crate) async fn json(
        &self,
        req: Request<Body>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let r = self.call(req).await?;
        let status = r.status().as_u16();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await?;
        let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((status, v))
    }

    pub(crate) async fn done(self) -> anyhow::Result<()> {
        self.state.store.close().await;
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

/// An admin API access token of `tenant_id`'s user `upn`, signed with the tenant's key.
pub(crate) async fn admin_token_of(
    state: &Shared,
    tenant_id: Uuid,
    upn: &str,
) -> anyhow::Result<String> {
    let user = state
        .store
        .user_by_upn(tenant_id, upn)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {upn}"))?;
    let now = crate::clock::unix_now();
    let claims = crate::tokens::AccessClaims {
        iss: format!("https://localhost/{tenant_id}/v2.0"),
        aud: passthru_proto::admin::ADMIN_AUDIENCE.into(),
        sub: user.id.to_string(),
        oid: user.id,
        tid: tenant_id,
        exp: now + 600,
        iat: now,
        nbf: now,
        scp: String::new(),
        azp: passthru_proto::admin::ADMIN_CLIENT_ID.into(),
        preferred_username: upn.into(),
        ver: "2.0".into(),
    };
    let es256 = crate::tokens::SigningAlg::Es256;
    Ok(state.signer.keys_for(tenant_id, es256).await?.sign(&claims)?)
}

/// The state `serve` builds over `dir` (no listener, no background task).
async fn state_over(
    dir: &Path,
    public_url: Option<String>,
    shutdown: watch::Receiver<bool>,
    dispatcher: Option<std::sync::Arc<dyn crate::dispatcher::Dispatcher>>,
) -> anyhow::Result<Shared> {
    let (store, mfa_box) = crate::init::open_store(dir, false).await?;
    let opts = ServeOptions {
        public_url,
        ..crate::test_app::test_options()
    };
    Ok(crate::server::app_state_with(
        dir, store, mfa_box, &opts, shutdown, dispatcher,
    )?)
}
