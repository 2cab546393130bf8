//! Self-service password reset (writeback), at `/{tenant}/password/reset`: the user names
//! their account, proves their second factor (a code of their authenticator app, or a
//! recovery code), then sets a new password, which an agent writes to AD as a reset (AD's
//! lockout is cleared too). Only users allowed writeback who have a second factor can
//! reset; five wrong codes end the flow.
//!
//! The flow lives in the store under the hash of a random id held in a cookie
//! (`Secure; HttpOnly; SameSite=Strict`, path-scoped, 15 minutes); each form also carries
//! the flow's CSRF token.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::clock::unix_now;
use crate::http::cookie_value;
use crate::http::correlation_id;
use crate::http::ClientInfo;
use crate::issue::{hash_secret, random_token, secrets_equal};
use crate::mfa::verify::Verdict;
use crate::pages::{alert, form_status, hidden, info_page, page};
use crate::state::Shared;
use crate::store::attempts::Bump;
use crate::store::writeback::ResetFlow;
use crate::store::{Tenant, User};
use crate::writeback::{self, Actor};

/// The flow's cookie (`__Host-passthru_reset.TENANT`).
const COOKIE: &str = "passthru_reset";
/// How long a reset may take, seconds.
const FLOW_LIFETIME: i64 = 900;
/// Wrong codes before the flow ends.
const MAX_WRONG_CODES: u32 = 5;

/// Resets a user may start in [`START_WINDOW`] (any browser, any address).
const STARTS_PER_USER: i64 = 5;
/// Resets one client address may start in [`START_WINDOW`] (any user of the tenant).
const STARTS_PER_ADDRESS: i64 = 20;
/// The window of those counts, seconds.
pub(crate) const START_WINDOW: i64 = 3600;

/// The key of a client address: the address itself for IPv4, its /64 for IPv6 (one host
/// holds a whole /64).
pub(crate) fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Counts a start; once `limit` were counted in the window, the page that says so (429).
async fn too_many(
    state: &Shared,
    scope: &str,
    key: &str,
    limit: i64,
    now: i64,
) -> Option<Response> {
    match state
        .store
        .bump_attempts(scope, key, limit, START_WINDOW, now)
        .await
    {
        Ok(Bump::Counted(_)) => None,
        Ok(Bump::Refused { retry_at }) => {
            let wait = (retry_at - now).max(1);
            let mut r = info_page(
                "Too many password resets",
                &format!(
                    "Too many password resets were started for this account or from this network. Try again in {} minutes, or contact your administrator.",
                    (wait + 59) / 60
                ),
            );
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Ok(v) = axum::http::HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            Some(r)
        }
        Err(e) => Some(crate::pages::fault_page(uuid::Uuid::new_v4(), e)),
    }
}

fn not_here() -> Response {
    info_page(
        "You can't reset your password here",
        "Your account can't reset its password on this site: self-service password reset isn't turned on for it, or you haven't registered an authenticator app yet. Contact your administrator for help.",
    )
}

fn form_page(t: &Tenant, title: &str, inner: Markup, error: Option<&str>) -> Response {
    let body = html! {
        h1 { (title) }
        p class="who" { (t.name) }
        (alert(error))
        (inner)
    };
    let status = form_status(error.is_some());
    page(status, title, body, "'self'")
}

fn with_cookie(mut r: Response, t: &Tenant, value: &str, max_age: i64) -> Response {
    let name = crate::browser_policy::tenant_cookie(COOKIE, &t.name);
    let h = crate::browser_policy::host_cookie(&name, value, "Strict", max_age);
    r.headers_mut().append("set-cookie", h);
    r
}

/// Whether self-service reset is offered to the domain of `username`: the tenant writes
/// passwords back and the domain is a managed one of the tenant (whether this user may reset
/// is decided only when they try, so the sign-in page says nothing about the account).
pub(crate) async fn available(state: &Shared, t: &Tenant, username: &str) -> bool {
    if !t.settings.writeback {
        return false;
    }
    let domain = username
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default();
    matches!(
        state.store.domain(domain).await,
        Ok(Some(d)) if d.tenant_id == t.id && d.kind == crate::store::DomainKind::Managed
    )
}

/// `GET /{tenant}/password/reset`: the account name.
pub async fn start_page(State(state): State<Shared>, Path(tenant): Path<String>) -> Response {
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    username_page(&t, None)
}

fn username_page(t: &Tenant, error: Option<&str>) -> Response {
    let inner = html! {
        p { "Enter your work account to reset its password." }
        form method="post" action={ "/" (t.name) "/password/reset" } {
            label for="username" { "Email or username" }
            input type="email" id="username" name="username" autocomplete="username" required autofocus;
            button type="submit" id="next" { "Next" }
        }
    };
    form_page(t, "Get back into your account", inner, error)
}

fn code_page(t: &Tenant, csrf: &str, error: Option<&str>) -> Response {
    let inner = html! {
        p { "Enter the code from your authenticator app, or one of your recovery codes." }
        form method="post" action={ "/" (t.name) "/password/reset/verify" } {
            (hidden("csrf", csrf))
            label for="code" { "Code" }
            input type="text" id="code" name="code" autocomplete="one-time-code" inputmode="numeric" required autofocus;
            button type="submit" id="verify" { "Verify" }
        }
    };
    form_page(t, "Verify your identity", inner, error)
}

fn new_password_page(t: &Tenant, csrf: &str, error: Option<&str>) -> Response {
    let inner = html! {
        form method="post" action={ "/" (t.name) "/password/reset/new" } {
            (hidden("csrf", csrf))
            label for="new" { "New password" }
            input type="password" id="new" name="new" autocomplete="new-password" required autofocus;
            label for="confirm" { "Confirm new password" }
            input type="password" id="confirm" name="confirm" autocomplete="new-password" required;
            button type="submit" id="reset" { "Reset password" }
        }
    };
    form_page(t, "Choose a new password", inner, error)
}

/// The username form.
#[derive(Debug, Deserialize)]
pub struct StartForm {
    username: String,
}

/// `POST /{tenant}/password/reset`: finds the account and asks for its second factor.
pub async fn start(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    axum::Form(f): axum::Form<StartForm>,
) -> Response {
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    let username = f.username.trim();
    if username.is_empty() {
        return username_page(&t, Some("Enter your work account."));
    }
    let now = unix_now();
    // Every start counts for its client address, whether or not the account exists (the
    // same answer either way), before anything is looked up.
    let by_address = format!("{}:{}", t.id, address_key(client.addr.ip()));
    if let Some(r) = too_many(&state, "sspr-address", &by_address, STARTS_PER_ADDRESS, now).await {
        return r;
    }
    let user = match state.store.user_by_upn(t.id, username).await {
        Ok(Some(u)) => u,
        Ok(None) => return not_here(),
        Err(e) => return crate::pages::fault_page(uuid::Uuid::new_v4(), e),
    };
    if let Some(r) = too_many(
        &state,
        "sspr-user",
        &user.id.to_string(),
        STARTS_PER_USER,
        now,
    )
    .await
    {
        tracing::warn!(tenant = %t.name, user = %user.upn, "self-service reset: too many resets started for this user");
        return r;
    }
    match writeback::allowed(&state, &t, &user.upn, Some(&user), Actor::User).await {
        Ok(()) if user.enabled => {}
        // An outage is the same for every account: say so, rather than "not here".
        Err(writeback::WritebackError::Server(e)) => {
            return crate::pages::fault_page(uuid::Uuid::new_v4(), e)
        }
        _ => return not_here(),
    }
    match crate::mfa::has_second_factor(&state, &t, &user).await {
        Ok(true) => {}
        Ok(false) => return not_here(),
        Err(e) => return crate::pages::fault_page(uuid::Uuid::new_v4(), e),
    }
    let id = random_token();
    let flow = ResetFlow {
        tenant_id: t.id,
        user_id: user.id,
        csrf: random_token(),
        verified: false,
        wrong_codes: 0,
    };
    if let Err(e) = state
        .store
        .start_reset_flow(&hash_secret(&id), &flow, now + FLOW_LIFETIME)
        .await
    {
        if let Some(page) = crate::limits::pending_full_page(&e, uuid::Uuid::new_v4()) {
            return page;
        }
        return crate::pages::fault_page(uuid::Uuid::new_v4(), e);
    }
    tracing::info!(tenant = %t.name, user = %user.upn, "self-service password reset started");
    with_cookie(code_page(&t, &flow.csrf, None), &t, &id, FLOW_LIFETIME)
}

/// The flow of this browser, its id's hash and its user, when the CSRF token matches.
async fn flow_of(
    state: &Shared,
    t: &Tenant,
    headers: &HeaderMap,
    csrf: &str,
) -> Option<(ResetFlow, String, User)> {
    let id = cookie_value(
        headers,
        &crate::browser_policy::tenant_cookie(COOKIE, &t.name),
    )?;
    let id_hash = hash_secret(&id);
    let flow = state
        .store
        .reset_flow(t.id, &id_hash, unix_now())
        .await
        .ok()??;
    if !secrets_equal(&flow.csrf, csrf) {
        return None;
    }
    let user = state.store.user_by_id(t.id, flow.user_id).await.ok()??;
    Some((flow, id_hash, user))
}

fn flow_gone(t: &Tenant) -> Response {
    let mut r = info_page(
        "This page has expired",
        &format!(
            "Your password reset took too long or was started in another window. Start again at /{}/password/reset.",
            t.name
        ),
    );
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

/// The code form.
#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: Zeroizing<String>,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm").finish_non_exhaustive()
    }
}

/// `POST /{tenant}/password/reset/verify`: checks the second factor.
pub async fn verify(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    let Some((flow, id_hash, user)) = flow_of(&state, &t, &headers, &f.csrf).await else {
        return flow_gone(&t);
    };
    if flow.verified {
        return new_password_page(&t, &flow.csrf, None);
    }
    let now = unix_now();
    let verdict =
        match crate::mfa::verify_second_factor(&state, &t, &user, f.code.trim(), now).await {
            Ok(v) => v,
            Err(e) => return crate::pages::fault_page(uuid::Uuid::new_v4(), e),
        };
    let ok = verdict == Verdict::Accepted;
    // The second factor's lock counts wrong codes per user, across every flow and the
    // sign-in's MFA page: a lock ends this flow whatever its own count.
    let locked = matches!(verdict, Verdict::Locked(_) | Verdict::WrongAndLocked(_));
    if let Err(e) = state.store.reset_flow_code(&id_hash, ok).await {
        return crate::pages::fault_page(uuid::Uuid::new_v4(), e);
    }
    if ok {
        return new_password_page(&t, &flow.csrf, None);
    }
    tracing::warn!(tenant = %t.name, user = %user.upn, "self-service reset: wrong code");
    if locked || flow.wrong_codes + 1 >= MAX_WRONG_CODES {
        let _ = state.store.end_reset_flow(&id_hash, unix_now()).await;
        return with_cookie(
            info_page(
                "Too many wrong codes",
                "You entered too many wrong codes, so this password reset was stopped. Wait a while and start again, or contact your administrator.",
            ),
            &t,
            "",
            0,
        );
    }
    code_page(
        &t,
        &flow.csrf,
        Some("That code didn't work. Check the code in your authenticator app and try again."),
    )
}

/// The new-password form.
#[derive(Deserialize)]
pub struct NewForm {
    csrf: String,
    new: Zeroizing<String>,
    confirm: Zeroizing<String>,
}

impl std::fmt::Debug for NewForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewForm").finish_non_exhaustive()
    }
}

/// `POST /{tenant}/password/reset/new`: the reset itself, once the second factor is proven.
pub async fn set_new(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<NewForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    let Some((flow, id_hash, user)) = flow_of(&state, &t, &headers, &f.csrf).await else {
        return flow_gone(&t);
    };
    if !flow.verified {
        return code_page(&t, &flow.csrf, None);
    }
    if f.new.is_empty() {
        return new_password_page(&t, &flow.csrf, Some("Enter a new password."));
    }
    if !secrets_equal(&f.new, &f.confirm) {
        return new_password_page(
            &t,
            &flow.csrf,
            Some("The new passwords don't match. Type the same new password twice."),
        );
    }
    if let Err(e) = writeback::allowed(&state, &t, &user.upn, Some(&user), Actor::User).await {
        return new_password_page(&t, &flow.csrf, Some(&e.user_sentence()));
    }
    let NewForm { new, .. } = f;
    match writeback::reset(&state, &t, &user, new, false, corr).await {
        Ok(_) => {
            let _ = state.store.end_reset_flow(&id_hash, unix_now()).await;
            with_cookie(
                info_page(
                    "Your password has been reset",
                    "Your password has been reset. Sign in with your new password; your other sessions were signed out.",
                ),
                &t,
                "",
                0,
            )
        }
        Err(e) => new_password_page(&t, &flow.csrf, Some(&e.user_sentence())),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use crate::store::DomainKind;
    use crate::test_app::{form, TestApp};

    async fn app() -> anyhow::Result<(TestApp, String)> {
        let mut app = TestApp::new("sspr", "corp.test", DomainKind::Managed).await?;
        app.settings(|s| s.writeback = true).await?;
        let user = app.onprem_user("erin@corp.test").await?;
        app.state
            .store
            .set_writeback_allowed(app.tenant.id, user.id, true, 1)
            .await?;
        let now = crate::clock::unix_now();
        let secret = app.enrol_totp(&user, now).await?;
        // A code that is wrong now and in the steps around now.
        let near: Vec<String> = (-2..=2)
            .filter_map(|d| {
                crate::mfa::totp::code_for_step(&secret, crate::mfa::totp::step_of(now) + d)
            })
            .map(|c| c.to_string())
            .collect();
        let wrong = (0..10)
            .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
            .find(|c| !near.contains(c))
            .ok_or_else(|| anyhow::anyhow!("no wrong code"))?;
        Ok((app, wrong))
    }

    /// Starts a reset of `upn` from `from`; the flow's cookie and CSRF token, or the status.
    async fn start(
        app: &TestApp,
        from: &str,
        upn: &str,
    ) -> anyhow::Result<Result<(String, String), StatusCode>> {
        let r = app
            .call(
                from,
                form("/contoso/password/reset", &format!("username={upn}"), None)?,
            )
            .await?;
        Ok(match (r.cookie(), r.field("csrf")) {
            (Some(c), Some(f)) if r.status == StatusCode::OK => Ok((c, f)),
            _ => Err(r.status),
        })
    }

    #[tokio::test]
    async fn resets_started_are_limited_per_address_and_per_user() -> anyhow::Result<()> {
        let (app, _) = app().await?;
        // One address: 20 starts of any name (known or not), then 429 with Retry-After.
        for i in 0..super::STARTS_PER_ADDRESS {
            let r = app
                .call(
                    "10.9.0.1:5000",
                    form(
                        "/contoso/password/reset",
                        &format!("username=nobody{i}@corp.test"),
                        None,
                    )?,
                )
                .await?;
            assert_eq!(r.status, StatusCode::OK, "start {i}");
        }
        let r = app
            .call(
                "10.9.0.1:5001",
                form("/contoso/password/reset", "username=nobody@corp.test", None)?,
            )
            .await?;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        let retry: i64 = r
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        assert!(retry > 0 && retry <= super::START_WINDOW, "{retry}");
        assert!(r.body.contains("Too many password resets"));
        // One user, from many addresses: 5 flows, then 429; another address is not affected
        // for other users.
        for i in 0..super::STARTS_PER_USER {
            let started = start(&app, &format!("10.9.1.{i}:5000"), "erin@corp.test").await?;
            assert!(started.is_ok(), "flow {i}: {started:?}");
        }
        let sixth = start(&app, "10.9.2.1:5000", "erin@corp.test").await?;
        assert_eq!(sixth, Err(StatusCode::TOO_MANY_REQUESTS));
        Ok(())
    }

    /// 200 wrong codes at once, spread over five flows of one user: at most five are
    /// compared (the second factor's lock counts per user), and then even the right code is
    /// refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn wrong_codes_count_per_user_across_flows() -> anyhow::Result<()> {
        let (app, wrong) = app().await?;
        let app = std::sync::Arc::new(app);
        let mut flows = Vec::new();
        for i in 0..5 {
            let started = start(&app, &format!("10.8.0.{i}:5000"), "erin@corp.test").await?;
            flows.push(started.map_err(|s| anyhow::anyhow!("start: {s}"))?);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let app = app.clone();
            let (cookie, csrf) = flows[i % flows.len()].clone();
            let wrong = wrong.clone();
            tasks.spawn(async move {
                let body = format!("csrf={csrf}&code={wrong}");
                app.call(
                    "10.8.1.1:5000",
                    form("/contoso/password/reset/verify", &body, Some(&cookie))?,
                )
                .await
            });
        }
        let mut compared_wrong = 0;
        while let Some(r) = tasks.join_next().await {
            let r = r??;
            if r.body.contains("That code didn") {
                compared_wrong += 1;
            }
        }
        // The fifth wrong code locks (its page says so): at most four say "didn't work".
        assert!(
            compared_wrong <= 4,
            "{compared_wrong} codes compared as wrong"
        );
        let rec = app
            .state
            .store
            .mfa(app.tenant.id, flows_user(&app).await?)
            .await?;
        assert!(
            rec.locked_until.is_some(),
            "the user's second factor is locked"
        );
        Ok(())
    }

    async fn flows_user(app: &TestApp) -> anyhow::Result<uuid::Uuid> {
        app.state
            .store
            .user_by_upn(app.tenant.id, "erin@corp.test")
            .await?
            .map(|u| u.id)
            .ok_or_else(|| anyhow::anyhow!("no user"))
    }
}
