//! The portal's changes: every form that changes something posts to
//! `/{tenant}/portal/act` with the CSRF token, the action's name ([`ACTIONS`]) and its
//! fields. The portal does not change the store itself: it calls the admin API operation the
//! action names, in-process, as the signed-in administrator (a token minted for this one
//! call, valid for a minute, never sent out), so the portal, the CLI and the API share one
//! set of rules, role checks and error sentences, and each change writes one audit entry
//! ([`crate::admin_api::audit`], marked `portal`, with the browser's address).
//!
//! A destructive action (block, delete, revoke, remove...) first answers with a page that
//! says what will happen and asks again; only the form on that page (`confirmed=yes`) acts.
//! An operation the API refuses until forced (revoking the last agent) shows the API's
//! warning on such a page, whose button sends `force=true`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;
use serde_json::{json, Value};
use tower::ServiceExt as _;

use super::auth::{server_error, signed_in, Ctx};
use super::layout;
use crate::admin_api::audit::PortalCall;
use crate::admin_api::ops::{self, Operation};
use crate::http::ClientInfo;
use crate::issue::secrets_equal;
use crate::state::Shared;
use crate::sts::BaseUrl;

/// One change the portal offers.
#[derive(Debug)]
pub struct Action {
    /// The form's `action` value.
    pub name: &'static str,
    /// The admin API operation it calls.
    pub op: &'static Operation,
    /// What the confirmation page says will happen (`{target}` is replaced by the target);
    /// `None`: acts at once.
    pub confirm: Option<&'static str>,
    /// The form field naming the target (in the operation's path).
    pub target: &'static str,
    /// The body sent with the operation, from the form's fields.
    pub body: fn(&HashMap<String, String>) -> Option<Value>,
    /// The portal page to go back to (`{target}` replaced), and what to say there.
    pub back: &'static str,
    pub done: &'static str,
}

fn none(_: &HashMap<String, String>) -> Option<Value> {
    None
}

fn field<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(|v| v.trim()).unwrap_or_default()
}

fn checked(f: &HashMap<String, String>, k: &str) -> bool {
    matches!(field(f, k), "on" | "true" | "yes" | "1")
}

/// Lines of a text area, without blank ones.
fn lines(f: &HashMap<String, String>, k: &str) -> Vec<String> {
    field(f, k)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every change the portal offers.
pub const ACTIONS: &[Action] = &[
    Action {
        name: "block-user",
        op: ops::DISABLE_USER,
        confirm: Some("Block {target}? They cannot sign in until unblocked, and their sessions and refresh tokens end now."),
        target: "upn",
        body: none,
        back: "users/{target}",
        done: "Blocked.",
    },
    Action {
        name: "unblock-user",
        op: ops::ENABLE_USER,
        confirm: None,
        target: "upn",
        body: none,
        back: "users/{target}",
        done: "Unblocked: the user can sign in again.",
    },
    Action {
        name: "unlock-user",
        op: ops::UNLOCK_USER,
        confirm: None,
        target: "upn",
        body: none,
        back: "users/{target}",
        done: "Unlocked: smart lockout ended and the wrong passwords counted so far are forgotten.",
    },
    Action {
        name: "reset-mfa",
        op: ops::RESET_USER_MFA,
        confirm: Some("Reset the multi-factor authentication of {target}? Their authenticator app and recovery codes are removed (they enrol again) and their sessions and refresh tokens end."),
        target: "upn",
        body: none,
        back: "users/{target}",
        done: "Multi-factor authentication reset: the user enrols again at the next sign-in.",
    },
    Action {
        name: "reset-password",
        op: ops::RESET_USER_PASSWORD,
        confirm: None,
        target: "upn",
        body: |f| {
            Some(json!({
                "password": field(f, "password"),
                "must_change": checked(f, "must_change"),
            }))
        },
        back: "users/{target}",
        done: "Password reset; the user's sessions and refresh tokens ended.",
    },
    Action {
        name: "set-role",
        op: ops::SET_USER_ROLE,
        confirm: Some("Change the administrator role of {target}? It takes effect at once."),
        target: "upn",
        body: |f| Some(json!({ "role": field(f, "role") })),
        back: "users/{target}",
        done: "Role changed.",
    },
    Action {
        name: "add-domain",
        op: ops::ADD_DOMAIN,
        confirm: None,
        target: "",
        body: |f| Some(json!({ "name": field(f, "name") })),
        back: "domains",
        done: "Domain added: publish the TXT record shown below, then verify it.",
    },
    Action {
        name: "verify-domain",
        op: ops::VERIFY_DOMAIN,
        confirm: None,
        target: "name",
        body: none,
        back: "domains",
        done: "Domain verified.",
    },
    Action {
        name: "remove-domain",
        op: ops::REMOVE_DOMAIN,
        confirm: Some("Remove the domain {target}? Its users can no longer sign in."),
        target: "name",
        body: none,
        back: "domains",
        done: "Domain removed.",
    },
    Action {
        name: "convert-domain",
        op: ops::CONVERT_DOMAIN,
        confirm: Some("Convert {target} from federated to managed? Its users then sign in with their Active Directory password through the agents, not at their identity provider."),
        target: "name",
        body: |_| Some(json!({ "to": "managed" })),
        back: "domains",
        done: "Domain converted to managed.",
    },
    Action {
        name: "add-app",
        op: ops::ADD_APP,
        confirm: None,
        target: "",
        body: |f| {
            let kind = field(f, "kind");
            Some(json!({
                "name": field(f, "name"),
                "public": kind == "public",
                "confidential": kind == "confidential",
                "spa": kind == "spa",
                "redirect_uris": lines(f, "redirect_uris"),
            }))
        },
        back: "apps",
        done: "App registered.",
    },
    Action {
        name: "set-redirect-uris",
        op: ops::SET_APP_REDIRECT_URIS,
        confirm: None,
        target: "client_id",
        body: |f| Some(json!({ "redirect_uris": lines(f, "redirect_uris") })),
        back: "apps",
        done: "Redirect URIs saved.",
    },
    Action {
        name: "add-secret",
        op: ops::ADD_APP_SECRET,
        confirm: None,
        target: "client_id",
        body: |_| Some(json!({})),
        back: "apps",
        done: "Secret added.",
    },
    Action {
        name: "delete-app",
        op: ops::DELETE_APP,
        confirm: Some("Delete the app {target}? Its sign-ins stop at once and its refresh tokens end."),
        target: "client_id",
        body: none,
        back: "apps",
        done: "App deleted.",
    },
    Action {
        name: "revoke-agent",
        op: ops::REVOKE_AGENT,
        confirm: Some("Revoke the agent {target}? It is disconnected at once and its certificate is refused from now on; it must be registered again to serve."),
        target: "id",
        body: |f| Some(json!({ "force": checked(f, "force") })),
        back: "agents",
        done: "Agent revoked.",
    },
    Action {
        name: "set-pta",
        op: ops::SET_PTA,
        confirm: None,
        target: "",
        body: |f| Some(json!({ "enabled": checked(f, "enabled") })),
        back: "agents",
        done: "Pass-through authentication setting saved.",
    },
    Action {
        name: "set-setting",
        op: ops::SET_SETTING,
        confirm: None,
        target: "key",
        body: |f| Some(json!({ "value": field(f, "value") })),
        back: "settings",
        done: "Setting saved.",
    },
];

/// The action of a form.
pub fn action(name: &str) -> Option<&'static Action> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// The operation's path with the target put in (`/users/{upn}/disable` and `a@b` give
/// `/users/a%40b/disable`).
fn api_path(op: &Operation, target_field: &str, target: &str) -> String {
    if target_field.is_empty() {
        return op.path.to_string();
    }
    let enc: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
    // form encoding writes spaces as '+', which a path does not decode.
    let enc = enc.replace('+', "%20");
    op.path.replace(&format!("{{{target_field}}}"), &enc)
}

/// The answer of an admin operation called in-process.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The API's error sentence, for an answer that is not a success.
    pub fn error(&self) -> String {
        self.body["error_description"]
            .as_str()
            .or_else(|| self.body["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| format!("The change was refused ({}).", self.status))
    }
}

/// Calls the admin API operation `method path` (under `/{tenant}/admin`) as `ctx`'s user, from
/// `client`, with `body` as JSON.
pub async fn admin_call(
    state: &Shared,
    ctx: &Ctx,
    client: &ClientInfo,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Answer, Response> {
    let fault = |e: &dyn std::fmt::Display| server_error(crate::oauth_error::Fault::other(e));
    let token = mint(state, ctx).await.map_err(|e| fault(&e))?;
    let router = crate::admin_api::operations_router(state.clone());
    let uri = format!("/{}/admin{}", ctx.t.name, path);
    let method = Method::from_bytes(method.as_bytes()).map_err(|e| fault(&e))?;
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("user-agent", "passthru-portal");
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).map_err(|e| fault(&e))?;
    req.extensions_mut().insert(PortalCall {
        client_ip: client.addr.ip().to_string(),
    });
    req.extensions_mut().insert(client.clone());
    let resp = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .map_err(|e| fault(&e))?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer { status, body })
}

/// An admin API token of `ctx`'s user for one in-process call.
async fn mint(state: &Shared, ctx: &Ctx) -> anyhow::Result<String> {
    let now = crate::clock::unix_now();
    let claims = crate::tokens::AccessClaims {
        iss: format!("portal/{}", ctx.t.id),
        aud: passthru_proto::admin::ADMIN_AUDIENCE.into(),
        sub: ctx.user.id.to_string(),
        oid: ctx.user.id,
        tid: ctx.t.id,
        exp: now + 60,
        iat: now,
        nbf: now,
        scp: String::new(),
        azp: passthru_proto::admin::ADMIN_CLIENT_ID.into(),
        preferred_username: ctx.user.upn.clone(),
        ver: "2.0".into(),
    };
    let keys = state
        .signer
        .keys_for(ctx.t.id, crate::tokens::SigningAlg::Es256)
        .await?;
    Ok(keys.sign(&claims)?)
}

/// The form fields an action page repeats (everything but the CSRF token and the step).
fn carried(f: &HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut v: Vec<_> = f
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "csrf" | "confirmed" | "force"))
        .collect();
    v.sort();
    v
}

/// `POST /{tenant}/portal/act`
pub async fn act(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<HashMap<String, String>>,
) -> Response {
    let Some(a) = action(field(&f, "action")) else {
        return layout::message(
            StatusCode::BAD_REQUEST,
            "Unknown action",
            "This form asked for a change the portal does not offer. Reload the page and try again.",
        );
    };
    let ctx = match signed_in(&state, &tenant, &base, &headers, a.op.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !secrets_equal(&ctx.session.csrf, field(&f, "csrf")) {
        return layout::message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form was not ours or has expired (wrong CSRF token). Reload the page and try again.",
        );
    }
    let target = field(&f, a.target).to_string();
    if a.confirm.is_some() && field(&f, "confirmed") != "yes" {
        let sentence = a.confirm.unwrap_or_default().replace("{target}", &target);
        return confirm_page(&ctx, a, &f, &sentence, false);
    }
    let path = api_path(a.op, a.target, &target);
    let answer = match admin_call(&state, &ctx, &client, a.op.method, &path, (a.body)(&f)).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let back = format!(
        "/{}/portal/{}",
        ctx.t.name,
        a.back.replace(
            "{target}",
            &url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
        )
    );
    if answer.status == StatusCode::CONFLICT
        && a.name == "revoke-agent"
        && !checked(&f, "force")
        && answer.body["error"] == "last_agent"
    {
        return confirm_page(&ctx, a, &f, &answer.error(), true);
    }
    if !answer.status.is_success() {
        return layout::page(
            if answer.status.is_client_error() {
                answer.status
            } else {
                StatusCode::BAD_GATEWAY
            },
            &ctx,
            a.back.split('/').next().unwrap_or_default(),
            "Not changed",
            html! {
                h1 { "Not changed" }
                p class="error" role="alert" id="error" { (answer.error()) }
                p { a href=(back) { "Back" } }
            },
        );
    }
    if let Some(page) = shown_once(&ctx, a, &answer, &back) {
        return page;
    }
    let sep = if back.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{back}{sep}done={}", a.name)).into_response()
}

/// The notice of a finished action on the page it went back to.
pub fn done_notice(done: Option<&str>) -> maud::Markup {
    html! {
        @if let Some(a) = done.and_then(action) {
            p class="notice" role="status" id="notice" { (a.done) }
        }
    }
}

/// A page that shows what an answer holds once (an app's secret, a domain's TXT record).
fn shown_once(ctx: &Ctx, a: &Action, answer: &Answer, back: &str) -> Option<Response> {
    let b = &answer.body;
    let (title, body) = match a.name {
        "add-app" => (
            "App registered",
            html! {
                h1 { "App registered" }
                p class="notice" role="status" id="notice" { (a.done) }
                dl class="kv" {
                    dt { "Name" } dd { (b["name"].as_str().unwrap_or_default()) }
                    dt { "Client id" } dd id="client-id" { code { (b["client_id"].as_str().unwrap_or_default()) } }
                    @if let Some(secret) = b["client_secret"].as_str() {
                        dt { "Client secret" } dd id="client-secret" { code { (secret) } }
                    }
                }
                @if b["client_secret"].is_string() {
                    p { strong { "Copy the secret now: it is shown only this once." } }
                }
            },
        ),
        "add-secret" => (
            "Secret added",
            html! {
                h1 { "Secret added" }
                dl class="kv" {
                    dt { "Secret" } dd id="client-secret" { code { (b["secret"].as_str().unwrap_or_default()) } }
                    dt { "Id" } dd { (b["id"].as_str().unwrap_or_default()) }
                }
                p { strong { "Copy the secret now: it is shown only this once." } }
            },
        ),
        "add-domain" => (
            "Domain added",
            html! {
                h1 { "Domain added" }
                p class="notice" role="status" id="notice" { (a.done) }
                (super::directory::txt_record(b))
            },
        ),
        _ => return None,
    };
    let body = html! { (body) p { a href=(back) id="back" { "Back" } } };
    let mut r = layout::page(StatusCode::OK, ctx, a.back, title, body);
    r.headers_mut().insert(
        "cache-control",
        axum::http::HeaderValue::from_static("no-store"),
    );
    Some(r)
}

/// The page that asks again before a destructive action (or a forced one).
fn confirm_page(
    ctx: &Ctx,
    a: &Action,
    f: &HashMap<String, String>,
    sentence: &str,
    force: bool,
) -> Response {
    let t = &ctx.t.name;
    let back = format!(
        "/{t}/portal/{}",
        a.back.replace(
            "{target}",
            &url::form_urlencoded::byte_serialize(field(f, a.target).as_bytes())
                .collect::<String>()
        )
    );
    let body = html! {
        h1 { "Are you sure?" }
        p id="confirm-text" role=[force.then_some("alert")] class=[force.then_some("error")] { (sentence) }
        form method="post" action={ "/" (t) "/portal/act" } {
            (crate::pages::hidden("csrf", &ctx.session.csrf))
            @for (k, v) in carried(f) {
                (crate::pages::hidden(k, v))
            }
            (crate::pages::hidden("confirmed", "yes"))
            @if force {
                (crate::pages::hidden("force", "true"))
            }
            button type="submit" class="primary" id="confirm" { @if force { "Yes, anyway" } @else { "Yes" } }
            " "
            a href=(back) id="cancel" { "Cancel" }
        }
    };
    layout::page(
        StatusCode::OK,
        ctx,
        a.back.split('/').next().unwrap_or_default(),
        "Are you sure?",
        body,
    )
}

/// A form of one action: the CSRF token, the action and its target, `fields` (markup of
/// the inputs) and a button.
pub fn form(
    ctx: &Ctx,
    action: &str,
    target: (&str, &str),
    fields: maud::Markup,
    button: &str,
    id: &str,
) -> maud::Markup {
    html! {
        form class="setting" method="post" action={ "/" (ctx.t.name) "/portal/act" } {
            (crate::pages::hidden("csrf", &ctx.session.csrf))
            (crate::pages::hidden("action", action))
            @if !target.0.is_empty() {
                (crate::pages::hidden(target.0, target.1))
            }
            (fields)
            button type="submit" class="primary" id=(id) { (button) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_names_a_changing_operation_and_its_target() {
        for a in ACTIONS {
            assert_ne!(a.op.method, "GET", "{}", a.name);
            if a.target.is_empty() {
                assert!(!a.op.path.contains('{'), "{}", a.name);
            } else {
                assert!(
                    a.op.path.contains(&format!("{{{}}}", a.target)),
                    "{}",
                    a.name
                );
            }
            if a.op.method == "DELETE"
                || a.name.starts_with("block")
                || a.name.starts_with("revoke")
            {
                assert!(
                    a.confirm.is_some(),
                    "{} is destructive: it must ask again",
                    a.name
                );
            }
        }
    }

    #[test]
    fn targets_are_encoded_into_the_path() {
        assert_eq!(
            api_path(ops::DISABLE_USER, "upn", "a b@c.example"),
            "/users/a%20b%40c.example/disable"
        );
        assert_eq!(api_path(ops::ADD_DOMAIN, "", "x"), "/domains");
    }
}
