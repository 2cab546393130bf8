//! In-process tests' bed: the real router over a real store in a fresh data dir (made by
//! `init`), tenant `contoso` with the managed domain `corp.example.test`, pass-through on,
//! a public app, and a scripted agent registered in the gateway (it opens each sealed
//! request with its own key and answers what the test says).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::{Extension, Router};
use passthru_proto::seal::ValidationPayload;
use passthru_proto::wire::{CloudToAgent, DirectoryUser, Outcome};
use passthru_proto::AgentKeyPair;
use tokio::sync::{mpsc, watch};
use tower::ServiceExt as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::unix_now;
use crate::dispatcher::Reply;
use crate::gateway::AgentConn;
use crate::http::ClientInfo;
use crate::state::Shared;
use crate::store::{App, DomainKind, OnpremUser, Tenant, User};

/// The password the bed's [`ad`] directory accepts.
pub(crate) const RIGHT: &str = "Right-Passw0rd-1";
/// The PKCE verifier of the bed's `code_challenge` (RFC 7636's example).
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// The `code_challenge` (S256) of [`VERIFIER`].
pub(crate) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A directory that knows every name of the managed domain, with the password [`RIGHT`].
pub(crate) fn ad(p: &ValidationPayload) -> Outcome {
    let name = p.username.split('@').next().unwrap_or_default();
    if p.password.as_str() == RIGHT {
        Outcome::Success(directory_user(name))
    } else {
        Outcome::Denied {
            win32: passthru_proto::Win32::LogonFailure,
        }
    }
}

/// The `Cookie` header value that sends back every cookie `answers` set (latest wins;
/// removed ones left out).
pub(crate) fn jar(answers: &[&Answer]) -> String {
    let mut cookies: Vec<(String, String)> = Vec::new();
    for a in answers {
        for c in a.set_cookies() {
            let pair = c.split(';').next().unwrap_or_default();
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            cookies.retain(|(n, _)| n != k);
            if !v.is_empty() && !c.contains("Max-Age=0") {
                cookies.push((k.to_string(), v.to_string()));
            }
        }
    }
    cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The managed domain of the bed.
pub(crate) const DOMAIN: &str = "corp.example.test";
/// The app's redirect URI.
pub(crate) const REDIRECT: &str = "https://app.example.test/cb";

/// A value carrying each character HTML gives a meaning to, for the escaping tests.
pub(crate) const HOSTILE: &str = "<script>alert(1)</script>\"'&";
/// [`HOSTILE`] as a page must show it. maud leaves `'` as it is, which is harmless: every
/// attribute value of ours is in double quotes.
pub(crate) const HOSTILE_SHOWN: &str = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;";

/// How the scripted agent answers a request.
type AnswerFn = dyn Fn(&ValidationPayload) -> Outcome + Send + Sync;

/// What the scripted agent was asked: the operation and the user.
pub(crate) type Asked = Arc<Mutex<Vec<(String, String)>>>;

/// An answer of the bed's router.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The value of the hidden field `name` of the page's form.
    pub fn hidden(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        self.body
            .find(&needle)
            .map(|i| &self.body[i + needle.len()..])
            .and_then(|rest| rest.split_once('"').map(|(v, _)| v.to_string()))
            .unwrap_or_default()
    }

    /// Fails unless the page holds `shown` (a value as escaped markup) and no `<script`
    /// anywhere (none of our pages has a script).
    pub fn shows_escaped(&self, shown: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.body.contains(shown) && !self.body.contains("<script"),
            "{shown} is not shown escaped: {}",
            self.body
        );
        Ok(())
    }

    /// The `Location` header.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }
}

/// The bed.
pub(crate) struct Bed {
    pub state: Shared,
    pub tenant: Tenant,
    pub client_id: String,
    pub asked: Asked,
    router: Router,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Bed {
    /// A fresh bed whose agent answers every request with `answer`.
    pub async fn new(
        answer: impl Fn(&ValidationPayload) -> Outcome + Send + Sync + 'static,
    ) -> anyhow::Result<Bed> {
        Bed::build(Some(Box::new(answer)), None).await
    }

    /// A fresh bed whose sign-ins and writebacks go to `dispatcher` (no agent connects).
    pub async fn with_dispatcher(
        dispatcher: Arc<dyn crate::dispatcher::Dispatcher>,
    ) -> anyhow::Result<Bed> {
        Bed::build(None, Some(dispatcher)).await
    }

    async fn build(
        answer: Option<Box<AnswerFn>>,
        dispatcher: Option<Arc<dyn crate::dispatcher::Dispatcher>>,
    ) -> anyhow::Result<Bed> {
        let dir = TempDir(std::env::temp_dir().join(format!("passthru-inproc-{}", Uuid::new_v4())));
        let data = dir.0.join("data");
        crate::init::init(
            &data,
            "contoso",
            "admin@contoso.example",
            Zeroizing::new("Admin-Passw0rd-1".into()),
            &["localhost".to_string()],
            None,
        )
        .await?;
        let (store, mfa_box) = crate::init::open_store(&data, false).await?;
        let (_stop, shutdown) = watch::channel(false);
        let opts = crate::server::ServeOptions {
            heartbeat: std::time::Duration::from_secs(2),
            ..crate::test_app::test_options()
        };
        let state =
            crate::server::app_state_with(&data, store, mfa_box, &opts, shutdown, dispatcher)?;
        let t = state
            .store
            .tenant("contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
        state
            .store
            .add_domain(t.id, DOMAIN, DomainKind::Managed, None, unix_now())
            .await?;
        state.store.set_pta(t.id, true).await?;
        let client_id = Uuid::new_v4().to_string();
        state
            .store
            .add_app(
                &App {
                    client_id: client_id.clone(),
                    tenant_id: t.id,
                    name: "App".into(),
                    public: true,
                    redirect_uris: vec![REDIRECT.into()],
                    secret_hash: None,
                    groups_claim: false,
                    ..Default::default()
                },
                unix_now(),
            )
            .await?;
        let asked = Asked::default();
        if let Some(answer) = answer {
            fake_agent(&state, t.id, asked.clone(), answer);
        }
        let addr: SocketAddr = ([127, 0, 0, 1], 40_000).into();
        let router = crate::server::router(state.clone()).layer(Extension(ClientInfo {
            addr,
            peer_cert_fingerprint: None,
        }));
        let tenant = state
            .store
            .tenant("contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
        Ok(Bed {
            state,
            tenant,
            client_id,
            asked,
            router,
            _dir: dir,
        })
    }

    /// Changes the tenant's settings.
    pub async fn settings(
        &mut self,
        change: impl FnOnce(&mut crate::model::settings::Settings),
    ) -> anyhow::Result<()> {
        let mut s = self.tenant.settings.clone();
        change(&mut s);
        self.state.store.save_settings(self.tenant.id, &s).await?;
        self.tenant = self
            .state
            .store
            .tenant("contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
        Ok(())
    }

    /// An on-premises user of the managed domain known to the cloud, whose directory
    /// identity is [`Bed::directory_user`] of the same name.
    pub async fn onprem_user(&self, name: &str) -> anyhow::Result<User> {
        let dir = directory_user(name);
        let anchor = dir.anchor().to_string();
        Ok(self
            .state
            .store
            .upsert_onprem_user(
                &OnpremUser {
                    tenant_id: self.tenant.id,
                    id: crate::signin::onprem_object_id(self.tenant.id, dir.anchor()),
                    immutable_id: &anchor,
                    upn: &dir.user_principal_name,
                    display_name: None,
                    mail: None,
                },
                unix_now(),
            )
            .await?)
    }

    /// A user of the managed domain as directory sync brings it (objectGUID and UPN of
    /// [`directory_user`] of the same name).
    pub async fn synced_user(&self, name: &str) -> anyhow::Result<User> {
        use passthru_proto::sync::{SyncBatch, SyncObject, SyncUser};
        let dir = directory_user(name);
        let user = SyncUser {
            object_guid: dir.object_guid,
            consistency_guid: None,
            dn: format!("CN={name},CN=Users,DC=corp,DC=example,DC=test"),
            user_principal_name: Some(dir.user_principal_name.clone()),
            sam_account_name: Some(name.into()),
            mail: None,
            display_name: None,
            given_name: None,
            surname: None,
            enabled: true,
            account_expires: None,
            usn_changed: 1,
            when_changed: None,
            password_last_set: Some(1_000),
        };
        let batch = SyncBatch {
            run_id: Uuid::new_v4(),
            objects: vec![SyncObject::User(user)],
            present: Vec::new(),
            done: 1,
            estimated_total: None,
        };
        self.state
            .store
            .apply_sync_batch(self.tenant.id, DOMAIN, &batch, unix_now())
            .await?;
        self.state
            .store
            .user_by_upn(self.tenant.id, &dir.user_principal_name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the synced user {name} is not in the store"))
    }

    /// Sends a request through the router.
    pub async fn send(&self, req: Request<Body>) -> anyhow::Result<Answer> {
        let r = self.router.clone().oneshot(req).await?;
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), 4 * 1024 * 1024).await?;
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }

    /// `GET path` with `cookie` (a `Cookie` header value; empty for none).
    pub async fn get(&self, path: &str, cookie: &str) -> anyhow::Result<Answer> {
        let mut b = Request::get(path);
        if !cookie.is_empty() {
            b = b.header("cookie", cookie);
        }
        self.send(b.body(Body::empty())?).await
    }

    /// `POST path` with a form and `cookie`.
    pub async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        cookie: &str,
    ) -> anyhow::Result<Answer> {
        let body = serde_urlencoded::to_string(fields)?;
        let mut b = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
        if !cookie.is_empty() {
            b = b.header("cookie", cookie);
        }
        self.send(b.body(Body::from(body))?).await
    }

    /// The authorize request's first page (the username form).
    pub async fn authorize(&self) -> anyhow::Result<Answer> {
        self.authorize_with(&[], "").await
    }

    /// `GET /contoso/oauth2/v2.0/authorize` with the bed's usual parameters (the app, code,
    /// its redirect URI, openid, state `s`, nonce `n`, PKCE S256 of [`VERIFIER`]) changed by
    /// `changes` (a value of `None` leaves the parameter out), with `cookie`.
    pub async fn authorize_with(
        &self,
        changes: &[(&str, Option<&str>)],
        cookie: &str,
    ) -> anyhow::Result<Answer> {
        let mut params: Vec<(String, String)> = self
            .authorize_params()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (key, value) in changes {
            params.retain(|(k, _)| k != key);
            if let Some(v) = value {
                params.push((key.to_string(), v.to_string()));
            }
        }
        let q = serde_urlencoded::to_string(&params)?;
        self.get(&format!("/contoso/oauth2/v2.0/authorize?{q}"), cookie)
            .await
    }

    /// The bed's usual authorization request's parameters.
    fn authorize_params(&self) -> Vec<(&str, &str)> {
        vec![
            ("client_id", self.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid"),
            ("state", "s"),
            ("nonce", "n"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ]
    }

    /// The path and query of the bed's usual authorization request (see
    /// [`Bed::authorize_with`]) with `extra` parameters added.
    pub fn authorize_uri(&self, extra: &[(&str, &str)]) -> String {
        let mut params = self.authorize_params();
        params.extend_from_slice(extra);
        let q = serde_urlencoded::to_string(&params).unwrap_or_default();
        format!("/contoso/oauth2/v2.0/authorize?{q}")
    }

    /// The username and password pages of the sign-in whose username page is `page`, for
    /// `name` of [`DOMAIN`] with [`RIGHT`]: the answer to the password.
    pub async fn password_pages(&self, page: &Answer, name: &str) -> anyhow::Result<Answer> {
        let (req, csrf) = (page.hidden("req"), page.hidden("csrf"));
        let upn = format!("{name}@{DOMAIN}");
        self.post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", &upn)],
            "",
        )
        .await?;
        self.post(
            "/contoso/login/password",
            &[("req", &req), ("csrf", &csrf), ("password", RIGHT)],
            "",
        )
        .await
    }

    /// Signs `name` in through the pages with [`RIGHT`]: the answer that carries the code
    /// (and the session cookie).
    pub async fn sign_in(&self, name: &str) -> anyhow::Result<Answer> {
        let first = self.authorize().await?;
        let done = self.password_pages(&first, name).await?;
        anyhow::ensure!(
            done.location().contains("code="),
            "the sign-in of {name} ended with {} {}",
            done.status,
            done.body
        );
        Ok(done)
    }

    /// What the agent was asked so far.
    pub fn asked(&self) -> Vec<(String, String)> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// The directory identity of the user `name` of [`DOMAIN`] (a stable objectGUID per name).
pub(crate) fn directory_user(name: &str) -> DirectoryUser {
    DirectoryUser {
        object_guid: {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(name.as_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&digest[..16]);
            Uuid::from_bytes(bytes)
        },
        user_principal_name: format!("{name}@{DOMAIN}"),
        sam_account_name: Some(name.into()),
        display_name: None,
        mail: None,
        consistency_guid: None,
    }
}

/// Registers a scripted agent for `tenant_id` in the gateway: it opens each request with
/// its key, records it in `asked` and answers `answer(payload)`.
fn fake_agent(state: &Shared, tenant_id: Uuid, asked: Asked, answer: Box<AnswerFn>) {
    let keys = AgentKeyPair::generate();
    let (tx, mut rx) = mpsc::channel(1024);
    let conn = Arc::new(AgentConn::new(
        Uuid::new_v4(),
        tenant_id,
        "fake-agent".into(),
        "test".into(),
        vec![DOMAIN.into()],
        keys.public_bytes().to_vec(),
        tx,
    ));
    state.gateway.register(conn.clone());
    let state = state.clone();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let CloudToAgent::Validate(sealed) = msg else {
                continue;
            };
            let Ok((payload, answer_key)) = keys.open_bound(&sealed) else {
                continue;
            };
            if let Ok(mut a) = asked.lock() {
                a.push((
                    payload.operation.name().to_string(),
                    payload.username.clone(),
                ));
            }
            let outcome = answer(&payload);
            let mac = answer_key.mac(sealed.request_id, &outcome, false);
            let reply = Reply {
                request_id: sealed.request_id,
                outcome,
                agent_id: conn.agent_id,
                agent_host: conn.host.clone(),
                agent_micros: 0,
                repeated: false,
                passed_over: Vec::new(),
            };
            // A late answer (the request gave up) is simply not delivered.
            let _ = state
                .gateway
                .complete(&conn, sealed.request_id, reply, Some(&mac));
        }
    });
}
