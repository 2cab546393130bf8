//! The audit log's writer: every admin API operation that changes something (any method but
//! GET) is recorded once, whoever calls it: the CLI and scripts over HTTPS, and the portal,
//! whose forms call the same operations in-process ([`crate::portal::act`]). One entry holds
//! who (the caller's id and UPN), when, from where (the client's address), how (`api`, `cli`,
//! `portal`), what (the operation and its path), the answer's status, the request, and the
//! target's state before and after, as the admin API shows it, with every secret removed
//! ([`redact`]).
//!
//! The entry is written after the handler answers, so a change the store refused is recorded
//! with its refusal; an entry that cannot be written is logged as an error (the change itself
//! stands: it has been made).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ops::Operation;
use crate::http::ClientInfo;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::{AuditEntry, Tenant, User};

/// The `User-Agent` the admin CLI (and `passthru-agent register`) sends
/// (`passthru-client/VERSION`): its entries say `cli`.
pub const CLI_AGENT_PREFIX: &str = "passthru-client/";

/// A request the portal makes in-process for its signed-in administrator: its entries say
/// `portal` and carry the browser's address.
#[derive(Debug, Clone)]
pub struct PortalCall {
    pub client_ip: String,
}

/// The largest JSON body the audit reads (the server refuses larger admin bodies anyway).
const MAX_JSON: usize = 64 * 1024;
/// The longest request or state kept in an entry; longer ones are cut and marked.
const MAX_KEPT: usize = 16 * 1024;

/// Field names whose values are never recorded: passwords, secrets, tokens, keys, codes
/// shown once. Matched case-insensitively as a part of the name.
const SECRET_PARTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "private",
    "recovery",
    "totp",
    "otp_",
    "assertion",
    "credential_value",
    "pfx",
];

/// What a redacted value becomes.
pub const REDACTED: &str = "[redacted]";

/// `v` with the value of every field named like a secret replaced by [`REDACTED`], at any
/// depth.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_PARTS.iter().any(|p| lower.contains(p)) && !val.is_null() {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// `v` redacted, as compact JSON of at most [`MAX_KEPT`] bytes.
fn kept(mut v: Value) -> String {
    redact(&mut v);
    let s = v.to_string();
    if s.len() <= MAX_KEPT {
        return s;
    }
    let mut end = MAX_KEPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [cut: {} bytes in all]", &s[..end], s.len())
}

/// The state of what `op` acts on, as the admin API shows it, or `None` when it has no single
/// target (adding to a collection, a sync run, a key rotation) or no longer exists.
async fn target_state(
    state: &Shared,
    t: &Tenant,
    op: &Operation,
    params: &HashMap<String, String>,
) -> Option<Value> {
    let p = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    let path = op.path;
    let value = if path.starts_with("/users/{upn}") {
        let u = state
            .store
            .user_by_upn(t.id, p("upn").trim())
            .await
            .ok()??;
        serde_json::to_value(super::users::user_json(&u)).ok()?
    } else if path.starts_with("/domains/{name}") {
        let d = state.store.domain_any(p("name").trim()).await.ok()??;
        if d.tenant_id != t.id {
            return None;
        }
        serde_json::to_value(super::domains::domain_json(&d)).ok()?
    } else if path.starts_with("/apps/{client_id}") {
        let a = state.store.app(t.id, p("client_id").trim()).await.ok()??;
        serde_json::to_value(super::apps::app_json(&a)).ok()?
    } else if path.starts_with("/agents/{id}") {
        let id = uuid::Uuid::parse_str(p("id").trim()).ok()?;
        let a = state
            .store
            .agents(t.id)
            .await
            .ok()?
            .into_iter()
            .find(|a| a.id == id)?;
        serde_json::to_value(&a).ok()?
    } else if path.starts_with("/settings") {
        // Read past the cache: the state the change left.
        let fresh = state.store.tenant(&t.id.to_string()).await.ok()??;
        let pairs: serde_json::Map<String, Value> = fresh
            .settings
            .pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect();
        Value::Object(pairs)
    } else if path == "/pta" {
        let fresh = state.store.tenant(&t.id.to_string()).await.ok()??;
        serde_json::json!({ "pta_enabled": fresh.pta_enabled })
    } else {
        return None;
    };
    Some(value)
}

/// How the request came: the portal, the CLI, or anything else over the API.
fn via(request: &Request) -> (&'static str, Option<String>) {
    if let Some(p) = request.extensions().get::<PortalCall>() {
        return ("portal", Some(p.client_ip.clone()));
    }
    let ip = request
        .extensions()
        .get::<ClientInfo>()
        .map(|c| c.addr.ip().to_string());
    let cli = request
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with(CLI_AGENT_PREFIX));
    (if cli { "cli" } else { "api" }, ip)
}

/// Runs a changing operation and records it (called by the admin API's guard once the
/// caller may perform `op`).
pub(super) async fn recorded(
    state: &Shared,
    t: &Tenant,
    caller: &User,
    op: &Operation,
    params: &HashMap<String, String>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (via, client_ip) = via(&request);
    let correlation_id = crate::http::correlation_id(request.headers()).to_string();
    // Inside the admin router the path is already the part under `/{tenant}/admin`.
    let raw = request.uri().path();
    let raw = raw.split_once("/admin/").map_or(raw, |(_, rest)| rest);
    let target = format!(
        "/{}",
        percent_encoding::percent_decode_str(raw.trim_start_matches('/')).decode_utf8_lossy()
    );
    let is_json = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let (parts, body) = request.into_parts();
    let (request, asked) = if is_json {
        match axum::body::to_bytes(body, MAX_JSON).await {
            Ok(bytes) => {
                let asked = serde_json::from_slice::<Value>(&bytes)
                    .map(kept)
                    .unwrap_or_else(|_| "\"(not JSON)\"".into());
                (Request::from_parts(parts, Body::from(bytes)), Some(asked))
            }
            Err(_) => {
                return ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request",
                    "The request body is larger than the admin API takes (64 KiB).",
                )
                .into_response()
            }
        }
    } else {
        let len = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let asked = len.filter(|n| *n > 0).map(|n| {
            serde_json::json!({ "body_bytes": n, "content_type": parts.headers.get("content-type").and_then(|v| v.to_str().ok()) })
                .to_string()
        });
        (Request::from_parts(parts, body), asked)
    };
    let before = target_state(state, t, op, params).await.map(kept);
    let response = next.run(request).await;
    let status = response.status();
    // A change that answers with a body keeps it (redacted) as the "after" of targets that
    // have no state of their own (an added user, domain, app...).
    let (response, after) = match target_state(state, t, op, params).await {
        Some(v) => (response, Some(kept(v))),
        None => answered(response).await,
    };
    let entry = AuditEntry {
        id: 0,
        time_ms: crate::clock::unix_ms(),
        actor_id: caller.id,
        actor: caller.upn.clone(),
        client_ip,
        via: via.into(),
        operation: op.id.into(),
        target,
        status: status.as_u16(),
        correlation_id,
        request: asked,
        before,
        after,
    };
    if let Err(e) = state.store.add_audit(t.id, &entry).await {
        tracing::error!(error = %e, operation = op.id, "could not write the audit log entry of an admin change");
    }
    response
}

/// The answer's JSON body (redacted) if it has one, with the answer rebuilt around it.
async fn answered(response: Response) -> (Response, Option<String>) {
    let is_json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json || !response.status().is_success() {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 4 * MAX_JSON).await {
        Ok(bytes) => {
            let kept = serde_json::from_slice::<Value>(&bytes).ok().map(kept);
            (Response::from_parts(parts, Body::from(bytes)), kept)
        }
        Err(e) => {
            tracing::error!(error = %e, "could not read an admin answer for the audit log");
            (
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "The change was made but its answer could not be read; list the target to see it.",
                )
                .into_response(),
                None,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({
            "upn": "a@b.example",
            "password": "Hunter2!",
            "client_secret": "s3cr3t",
            "nested": [{"refresh_token": "rt", "name": "n"}],
            "federated": {"issuer": "https://idp", "clientSecret": "x"},
            "temporaryPassword": null,
        });
        redact(&mut v);
        let s = v.to_string();
        for secret in ["Hunter2!", "s3cr3t", "\"rt\"", "\"x\""] {
            assert!(!s.contains(secret), "{secret} in {s}");
        }
        assert_eq!(v["upn"], "a@b.example");
        assert_eq!(v["nested"][0]["name"], "n");
        assert_eq!(v["password"], REDACTED);
        assert!(v["temporaryPassword"].is_null());
    }

    #[test]
    fn long_states_are_cut_on_a_character_boundary() {
        let v = Value::String("é".repeat(MAX_KEPT));
        let s = kept(v);
        assert!(s.len() < MAX_KEPT + 64, "{}", s.len());
        assert!(s.contains("[cut: "), "{}", &s[s.len() - 40..]);
    }
}
