//! The cloud's state over a fresh data dir, for in-process tests of handlers and rules: a
//! real store, real keys and certificates, no listener and no agent (tests that need one
//! register a fake connection with the gateway).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use passthru_proto::seal::ValidationPayload;
use passthru_proto::wire::{CloudToAgent, Outcome};
use passthru_proto::AgentKeyPair;
use tokio::sync::mpsc;

use tokio::sync::watch;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::dispatcher::Reply;
use crate::gateway::AgentConn;
use crate::server::{app_state, ServeOptions};
use crate::state::Shared;
use crate::store::{DomainKind, Tenant};

/// `serve`'s options as tests use them (no listener is opened; nothing is asked of DNS).
pub(crate) fn test_options() -> ServeOptions {
    ServeOptions {
        listen: "127.0.0.1:0".into(),
        heartbeat: Duration::from_secs(10),
        dns_server: "127.0.0.1:9".parse().ok(),
        metrics_listen: None,
        max_agents_per_tenant: 40,
        agent_cert_lifetime: crate::pki::default_agent_cert_lifetime(),
        public_url: None,
        allow_private_federation: false,
        limits: crate::limits::Limits::default(),
        bus: None,
        store: None,
        tls_files: None,
    }
}

/// A data dir with the tenant `contoso` and its state; the dir is removed on drop.
#[derive(Debug)]
pub(crate) struct TestApp {
    pub state: Shared,
    pub tenant: Tenant,
    dir: PathBuf,
    _shutdown: watch::Sender<bool>,
}

impl TestApp {
    /// A new data dir (`init`, whose admin is `admin@contoso.example` in the cloud domain
    /// `contoso.example`), with `domain` added to the tenant as `kind`.
    pub async fn new(label: &str, domain: &str, kind: DomainKind) -> anyhow::Result<TestApp> {
        let dir = std::env::temp_dir().join(format!("passthru-app-{label}-{}", Uuid::new_v4()));
        let password = Zeroizing::new(format!("A1!{}", Uuid::new_v4()));
        crate::init::init(
            &dir,
            "contoso",
            "admin@contoso.example",
            password,
            &["localhost".to_string()],
            None,
        )
        .await?;
        let (store, mfa_box) = crate::init::open_store(&dir, false).await?;
        let tenant = store
            .tenant("contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("init made no tenant"))?;
        // The admin's domain is the tenant's cloud domain already.
        if store.domain(domain).await?.is_none() {
            store.add_domain(tenant.id, domain, kind, None, 1).await?;
        }
        let (tx, rx) = watch::channel(false);
        let state = app_state(&dir, store, mfa_box, &test_options(), rx)?;
        Ok(TestApp {
            state,
            tenant,
            dir,
            _shutdown: tx,
        })
    }

    /// A cloud-only user of the tenant (no password that could sign in).
    pub async fn cloud_user(&self, upn: &str) -> anyhow::Result<crate::store::User> {
        let id = self
            .state
            .store
            .add_cloud_user(self.tenant.id, upn, "!", "none", 1)
            .await?;
        self.state
            .store
            .user_by_id(self.tenant.id, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("user {upn} not stored"))
    }

    /// Enrols `user` in TOTP with a fresh secret (returned, to make codes).
    pub async fn enrol_totp(
        &self,
        user: &crate::store::User,
        now: i64,
    ) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let secret = crate::mfa::totp::new_secret();
        let sealed = self.state.mfa_box.seal(user.id, &secret)?;
        let store = &self.state.store;
        store
            .start_mfa_enrolment(self.tenant.id, user.id, &sealed)
            .await?;
        store
            .confirm_mfa_enrolment(self.tenant.id, user.id, now / 30 - 10, &[], now)
            .await?;
        Ok(secret)
    }
}

impl TestApp {
    /// An on-premises user (as a pass-through sign-in records one).
    pub async fn onprem_user(&self, upn: &str) -> anyhow::Result<crate::store::User> {
        let guid = Uuid::new_v4().to_string();
        let record = crate::store::OnpremUser {
            tenant_id: self.tenant.id,
            id: Uuid::new_v4(),
            immutable_id: &guid,
            upn,
            display_name: None,
            mail: None,
        };
        Ok(self.state.store.upsert_onprem_user(&record, 1).await?)
    }

    /// Changes the tenant's settings (in the store and in `self.tenant`).
    pub async fn settings(
        &mut self,
        change: impl FnOnce(&mut crate::model::settings::Settings),
    ) -> anyhow::Result<()> {
        change(&mut self.tenant.settings);
        self.state
            .store
            .save_settings(self.tenant.id, &self.tenant.settings)
            .await?;
        Ok(())
    }

    /// Sends `request` through the cloud's router as if from `from` (an address and port).
    pub async fn call(
        &self,
        from: &str,
        request: axum::http::Request<axum::body::Body>,
    ) -> anyhow::Result<Called> {
        use tower::ServiceExt as _;
        let client = crate::http::ClientInfo {
            addr: from.parse()?,
            peer_cert_fingerprint: None,
        };
        let router = crate::server::router(self.state.clone()).layer(axum::Extension(client));
        let response = router.oneshot(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
        Ok(Called {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// A response of [`TestApp::call`].
#[derive(Debug)]
pub(crate) struct Called {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Called {
    /// The `name=value` of the first cookie set.
    pub fn cookie(&self) -> Option<String> {
        let v = self.headers.get("set-cookie")?.to_str().ok()?;
        Some(v.split(';').next()?.trim().to_string())
    }

    /// The value of the hidden form field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let len = self.body[start..].find('"')?;
        Some(self.body[start..start + len].to_string())
    }
}

/// A form POST.
pub(crate) fn form(
    uri: &str,
    body: &str,
    cookie: Option<&str>,
) -> anyhow::Result<axum::http::Request<axum::body::Body>> {
    let mut b =
        axum::http::Request::post(uri).header("content-type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    Ok(b.body(axum::body::Body::from(body.to_string()))?)
}

/// What a fake agent answers to a validation (it opens the envelope with its own key).
pub(crate) type Answer = Arc<dyn Fn(&ValidationPayload) -> Outcome + Send + Sync>;

/// A fake agent connected to the gateway: it opens each request with its own HPKE key,
/// counts it, waits `delay`, and answers with `answer`'s outcome, authenticated with the
/// request's answer key.
#[derive(Debug)]
pub(crate) struct FakeAgent {
    /// Requests received.
    pub received: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestApp {
    /// Connects a fake agent that serves every UPN suffix of `suffixes`.
    pub fn fake_agent(&self, suffixes: &[&str], delay: Duration, answer: Answer) -> FakeAgent {
        let keys = AgentKeyPair::generate();
        let (tx, mut rx) = mpsc::channel(1024);
        let conn = Arc::new(AgentConn::new(
            Uuid::new_v4(),
            self.tenant.id,
            "fake-agent".into(),
            "test".into(),
            suffixes.iter().map(|s| s.to_string()).collect(),
            keys.public_bytes().to_vec(),
            tx,
        ));
        self.state.gateway.register(conn.clone());
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                let CloudToAgent::Validate(sealed) = msg else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let Ok((payload, answer_key)) = keys.open_bound(&sealed) else {
                    continue;
                };
                let outcome = answer(&payload);
                let mac = answer_key.mac(sealed.request_id, &outcome, false);
                let state = state.clone();
                let conn = conn.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let reply = Reply {
                        request_id: sealed.request_id,
                        outcome,
                        agent_id: conn.agent_id,
                        agent_host: conn.host.clone(),
                        agent_micros: 1,
                        repeated: false,
                        passed_over: Vec::new(),
                    };
                    // A late answer (the request gave up) is simply not delivered.
                    let _ = state
                        .gateway
                        .complete(&conn, sealed.request_id, reply, Some(&mac));
                });
            }
        });
        FakeAgent { received, task }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
