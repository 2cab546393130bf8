//! The admin API's table against its router, in process: every operation answers every role
//! as [`super::ops`] says, refuses a caller without a token, and takes the body its OpenAPI
//! document describes (the document against the router: `openapi_tests.rs`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};

use super::openapi;
use super::ops::{self, Operation, GLOBAL_ADMIN, HYBRID_ADMIN};
use crate::test_state::{TestServer, ADMIN, TENANT};

const HYBRID: &str = "hybrid@contoso.example";
const NOBODY: &str = "plain@contoso.example";

/// The operation's path under the tenant with every parameter filled with something that
/// does not exist (so an allowed call changes nothing it could not change back).
pub(super) fn path_of(op: &Operation) -> String {
    let filled: Vec<String> = op
        .path
        .split('/')
        .map(|seg| match seg {
            "{upn}" => "nobody@contoso.example".to_string(),
            "{client_id}" => "00000000-0000-4000-8000-000000000000".to_string(),
            "{name}" => "absent.example".to_string(),
            "{id}" => "00000000-0000-4000-8000-000000000001".to_string(),
            "{forest}" => "absent.example".to_string(),
            "{key}" => "lockout_threshold".to_string(),
            "{version}" => "0.0.0-absent".to_string(),
            other => other.to_string(),
        })
        .collect();
    format!("/{TENANT}/admin{}", filled.join("/"))
}

/// The document's entry of a row of the table (`null` when it has none).
pub(super) fn documented<'a>(doc: &'a Value, op: &Operation) -> &'a Value {
    &doc["paths"][format!("{}{}", openapi::PREFIX, op.path)][op.method.to_ascii_lowercase()]
}

/// The schema of the operation's JSON request body as the document gives it (a `$ref`, or a
/// `oneOf` with `null` for an optional body), if it takes one.
pub(super) fn body_schema<'a>(doc: &'a Value, op: &Operation) -> Option<&'a Value> {
    let s = &documented(doc, op)["requestBody"]["content"]["application/json"]["schema"];
    (!s.is_null()).then_some(s)
}

/// The name of the first component schema `s` refers to.
pub(super) fn schema_name(s: &Value) -> Option<&str> {
    if let Some(r) = s["$ref"].as_str() {
        return r.strip_prefix("#/components/schemas/");
    }
    match s {
        Value::Object(m) => m.values().find_map(schema_name),
        Value::Array(a) => a.iter().find_map(schema_name),
        _ => None,
    }
}

/// `s` with a reference (or an optional's `oneOf`) replaced by the schema it names.
pub(super) fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        Some(name) => &doc["components"]["schemas"][name],
        None => match s["oneOf"].as_array() {
            Some(alts) => alts
                .iter()
                .find(|a| a["type"] != "null")
                .map_or(s, |a| resolve(doc, a)),
            None => s,
        },
    }
}

/// A body that follows the operation's documented schema: each required property with a
/// value of its type (a string's first example).
fn example(doc: &Value, schema: &Value) -> Value {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match types.iter().find(|t| **t != "null").copied() {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let Some(name) = name.as_str() else { continue };
                out.insert(name.to_string(), example(doc, &schema["properties"][name]));
            }
            Value::Object(out)
        }
        Some("boolean") => json!(true),
        Some("integer" | "number") => json!(1),
        Some("array") => json!([]),
        _ => schema["examples"]
            .get(0)
            .cloned()
            .unwrap_or_else(|| json!("example")),
    }
}

pub(super) fn request(
    op: &Operation,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Request<Body>> {
    let mut b = Request::builder().method(op.method).uri(path_of(op));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    Ok(match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))?,
        None => b.body(Body::empty())?,
    })
}

pub(super) async fn server_with_roles() -> anyhow::Result<(TestServer, [(String, &'static str); 3])>
{
    let s = TestServer::start(None).await?;
    let now = crate::clock::unix_now();
    for (upn, role) in [(HYBRID, HYBRID_ADMIN), (NOBODY, "none")] {
        s.state
            .store
            .add_cloud_user(s.tenant_id, upn, "not-a-hash", role, now)
            .await?;
    }
    let tokens = [
        (s.admin_token(s.tenant_id, ADMIN).await?, GLOBAL_ADMIN),
        (s.admin_token(s.tenant_id, HYBRID).await?, HYBRID_ADMIN),
        (s.admin_token(s.tenant_id, NOBODY).await?, "none"),
    ];
    Ok((s, tokens))
}

#[tokio::test]
async fn every_operation_answers_every_role_as_the_table_says() -> anyhow::Result<()> {
    let (s, tokens) = server_with_roles().await?;
    let doc = openapi::build("https://example");
    let mut problems = Vec::new();
    // The least privileged first: a refused call must change nothing the next ones see.
    for (token, role) in tokens.iter().rev() {
        for op in ops::ALL {
            let body = body_schema(&doc, op).map(|_| json!({}));
            let (status, v) = s.json(request(op, Some(token), body.as_ref())?).await?;
            let allowed = op.roles.contains(role);
            if allowed && (status == 401 || status == 403 || status == 404 && v.is_null()) {
                problems.push(format!("{role} {} {}: {status} {v}", op.method, op.path));
            }
            if !allowed && status != 403 {
                problems.push(format!(
                    "{role} {} {}: {status}, not 403 {v}",
                    op.method, op.path
                ));
            }
            if !allowed
                && !v["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains(op.id))
            {
                problems.push(format!(
                    "{role} {}: the refusal does not name the operation: {v}",
                    op.id
                ));
            }
        }
    }
    // No token at all: 401 for every operation, before anything else is looked at.
    for op in ops::ALL {
        let body = body_schema(&doc, op).map(|_| json!({}));
        let (status, v) = s.json(request(op, None, body.as_ref())?).await?;
        if status != 401 {
            problems.push(format!("no token {} {}: {status} {v}", op.method, op.path));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.done().await
}

#[tokio::test]
async fn every_documented_body_is_one_the_handler_takes() -> anyhow::Result<()> {
    let (s, tokens) = server_with_roles().await?;
    let ga = &tokens[0].0;
    let doc = openapi::build("https://example");
    let mut problems = Vec::new();
    for op in ops::ALL {
        let Some(schema) = body_schema(&doc, op) else {
            continue;
        };
        let body = example(&doc, schema);
        let (status, v) = s.json(request(op, Some(ga), Some(&body))?).await?;
        // A body the extractor cannot read is refused with this sentence.
        let refused = v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("not what this operation takes"));
        if status == 415 || status == 422 || refused {
            problems.push(format!(
                "{} {} with {body}: {status} {v}",
                op.method, op.path
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.done().await
}

#[tokio::test]
async fn a_body_the_handler_cannot_read_gets_the_apis_json_error() -> anyhow::Result<()> {
    let (s, tokens) = server_with_roles().await?;
    let ga = &tokens[0].0;
    let op = ops::SET_USER_ROLE;
    let send =
        |content_type: Option<&'static str>, body: &'static str| -> anyhow::Result<Request<Body>> {
            let mut b = Request::builder()
                .method(op.method)
                .uri(path_of(op))
                .header("authorization", format!("Bearer {ga}"));
            if let Some(ct) = content_type {
                b = b.header("content-type", ct);
            }
            Ok(b.body(Body::from(body))?)
        };
    for (content_type, body, status) in [
        (Some("application/json"), "{\"role\": 7}", 400),
        (Some("application/json"), "{\"role\":", 400),
        (Some("application/json"), "{}", 400),
        (None, "{\"role\": \"none\"}", 415),
        (Some("text/plain"), "{\"role\": \"none\"}", 415),
    ] {
        let (got, v) = s.json(send(content_type, body)?).await?;
        assert_eq!(got, status, "{content_type:?} {body}: {v}");
        assert_eq!(
            v["error"], "invalid_request",
            "{content_type:?} {body}: {v}"
        );
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{v}"
        );
    }
    s.done().await
}

/// Every Global Administrator at once demotes, blocks or deletes another (a ring): however
/// the requests interleave, the tenant keeps at least one enabled Global Administrator.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_changes_never_remove_the_last_global_administrator() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let now = crate::clock::unix_now();
    let mut admins = vec![ADMIN.to_string()];
    for i in 0..20 {
        let upn = format!("ga{i}@contoso.example");
        s.state
            .store
            .add_cloud_user(s.tenant_id, &upn, "not-a-hash", GLOBAL_ADMIN, now)
            .await?;
        admins.push(upn);
    }
    let mut tokens = Vec::new();
    for upn in &admins {
        tokens.push(s.admin_token(s.tenant_id, upn).await?);
    }
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let target = admins[(i + 1) % admins.len()].clone();
        let (method, path, body) = match i % 3 {
            0 => (
                "PUT",
                format!("/{TENANT}/admin/users/{target}/role"),
                r#"{"role":"none"}"#,
            ),
            1 => (
                "POST",
                format!("/{TENANT}/admin/users/{target}/disable"),
                "",
            ),
            _ => ("DELETE", format!("/{TENANT}/admin/users/{target}"), ""),
        };
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body))?;
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.json(req).await }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, _) = t.await??;
        statuses.push(status);
    }
    let left = s.state.store.count_role(s.tenant_id, GLOBAL_ADMIN).await?;
    assert!(
        left >= 1,
        "no Global Administrator left; answers {statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|st| [200, 401, 403, 404, 409].contains(st)),
        "{statuses:?}"
    );
    Ok(())
}

/// A JSON call of the admin API with `token`.
pub(crate) async fn call(
    s: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let b = Request::builder()
        .method(method)
        .uri(format!("/{TENANT}/admin{path}"))
        .header("authorization", format!("Bearer {token}"));
    let req = match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string()))?,
        None => b.body(Body::empty())?,
    };
    s.json(req).await
}

#[tokio::test]
async fn apps_register_show_their_secret_once_and_check_redirect_uris() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    // Exactly one of public and confidential; a name; valid redirect URIs.
    for body in [
        json!({"name": "Both", "public": true, "confidential": true}),
        json!({"name": "Neither"}),
        json!({"name": "", "public": true}),
        json!({"name": "Frag", "public": true, "redirect_uris": ["https://a.example/cb#x"]}),
        json!({"name": "Plain", "public": true, "redirect_uris": ["http://a.example/cb"]}),
        json!({"name": "Relative", "public": true, "redirect_uris": ["/cb"]}),
    ] {
        let (status, v) = call(&s, &ga, "POST", "/apps", Some(body.clone())).await?;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"], "invalid_request", "{v}");
    }
    let (status, public) = call(
        &s,
        &ga,
        "POST",
        "/apps",
        Some(json!({"name": "Native", "public": true, "redirect_uris": ["http://localhost:8400/cb"]})),
    )
    .await?;
    assert_eq!(status, 201, "{public}");
    assert!(public["client_secret"].is_null(), "{public}");
    let (status, web) = call(
        &s,
        &ga,
        "POST",
        "/apps",
        Some(json!({"name": "Web", "confidential": true, "redirect_uris": ["https://web.example/cb"]})),
    )
    .await?;
    assert_eq!(status, 201, "{web}");
    let first = web["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(first.len() >= 32, "{web}");
    let web_id = web["client_id"].as_str().unwrap_or_default().to_string();

    // The secret is never shown again: not by show, not by list.
    let (_, shown) = call(&s, &ga, "GET", &format!("/apps/{web_id}"), None).await?;
    let (_, listed) = call(&s, &ga, "GET", "/apps", None).await?;
    for v in [&shown, &listed] {
        assert!(
            !v.to_string().contains(&first),
            "the secret was shown again: {v}"
        );
    }
    // A new secret replaces it; a public client has none to rotate.
    let (status, rotated) = call(&s, &ga, "POST", &format!("/apps/{web_id}/secret"), None).await?;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["client_secret"].as_str().unwrap_or_default();
    assert!(!second.is_empty() && second != first, "{rotated}");
    let public_id = public["client_id"].as_str().unwrap_or_default();
    let (status, v) = call(&s, &ga, "POST", &format!("/apps/{public_id}/secret"), None).await?;
    assert_eq!(status, 409, "{v}");

    // Redirect URIs are replaced as a whole, with the same checks.
    let (status, v) = call(
        &s,
        &ga,
        "PUT",
        &format!("/apps/{web_id}/redirect-uris"),
        Some(json!({"redirect_uris": ["ftp://web.example/cb"]})),
    )
    .await?;
    assert_eq!(status, 400, "{v}");
    let (status, v) = call(
        &s,
        &ga,
        "PUT",
        &format!("/apps/{web_id}/redirect-uris"),
        Some(json!({"redirect_uris": ["https://web.example/a", "https://web.example/b"]})),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let (_, shown) = call(&s, &ga, "GET", &format!("/apps/{web_id}"), None).await?;
    assert_eq!(
        shown["redirect_uris"],
        json!(["https://web.example/a", "https://web.example/b"]),
        "{shown}"
    );
    // Deleted: gone.
    let (status, _) = call(&s, &ga, "DELETE", &format!("/apps/{web_id}"), None).await?;
    assert_eq!(status, 200);
    let (status, _) = call(&s, &ga, "GET", &format!("/apps/{web_id}"), None).await?;
    assert_eq!(status, 404);
    s.done().await
}

#[tokio::test]
async fn pta_cannot_be_enabled_without_an_active_agent() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let (status, v) = call(&s, &ga, "POST", "/pta", Some(json!({"enabled": true}))).await?;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"], "no_connectors");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.starts_with(
                "The enabling of the feature failed because there were no connectors available."
            )),
        "{v}"
    );
    let (status, v) = call(&s, &ga, "GET", "/pta", None).await?;
    assert_eq!(status, 200);
    assert_eq!(v["enabled"], false, "{v}");
    assert_eq!(v["active_agents"], 0, "{v}");
    // Turning it off needs no agent.
    let (status, v) = call(&s, &ga, "POST", "/pta", Some(json!({"enabled": false}))).await?;
    assert_eq!(status, 200, "{v}");
    s.done().await
}

/// HEAD is answered as the GET operation it mirrors: checked like it (401 without a token,
/// 200 with one), never refused as a route outside the table.
#[tokio::test]
async fn head_is_checked_as_its_get() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let head = |token: Option<String>| {
        let mut b = Request::builder()
            .method("HEAD")
            .uri(format!("/{TENANT}/admin/users"));
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty())
    };
    let anonymous = s.call(head(None)?).await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let admin = s.call(head(Some(ga))?).await?;
    assert_eq!(admin.status(), StatusCode::OK);
    s.done().await
}

/// Agent presence comes from the dispatcher: PTA can be turned on once it reports an active
/// agent, and the last active agent is revoked only with `force`; a revocation closes the
/// agent's connections through the dispatcher.
#[tokio::test]
async fn agent_presence_comes_from_the_dispatcher() -> anyhow::Result<()> {
    use crate::dispatcher::Dispatcher as _;
    use crate::dispatcher::{scripted::Scripted, ConnectedAgent};
    let scripted = std::sync::Arc::new(Scripted::new(|p| Ok(crate::in_process::ad(p))));
    let s = TestServer::start_with(None, Some(scripted.clone())).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let (status, _) = call(&s, &ga, "POST", "/pta", Some(json!({"enabled": true}))).await?;
    assert_eq!(status, 409, "no agent reported yet");

    let id = uuid::Uuid::new_v4();
    let now = crate::clock::unix_now();
    s.state
        .store
        .add_agent(
            id,
            s.tenant_id,
            "fp-a",
            now + 3600,
            &[7; 32],
            "host-a",
            "1",
            now,
            40,
        )
        .await?;
    scripted.set_connected(vec![ConnectedAgent {
        agent_id: id,
        host: "host-a".into(),
        version: "1".into(),
        upn_suffixes: Vec::new(),
        in_flight: 0,
        served: 0,
        draining: false,
        last_heard_ms: u64::try_from(crate::clock::unix_ms()).unwrap_or(0),
    }]);
    let (status, v) = call(&s, &ga, "POST", "/pta", Some(json!({"enabled": true}))).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["active_agents"], 1, "{v}");
    let (status, v) = call(&s, &ga, "GET", "/agents", None).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["agents"][0]["status"], "Active", "{v}");

    let revoke = format!("/agents/{id}/revoke");
    let (status, v) = call(&s, &ga, "POST", &revoke, Some(json!({}))).await?;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"], "last_agent");
    let (status, v) = call(&s, &ga, "POST", &revoke, Some(json!({"force": true}))).await?;
    assert_eq!(status, 200, "{v}");
    assert!(
        scripted.connected(s.tenant_id).is_empty(),
        "the connection was closed"
    );
    s.done().await
}

/// An optional body (a sync run's `full`): none is fine, a bad one gets the API's error.
#[tokio::test]
async fn an_optional_body_is_optional_but_checked_when_sent() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let send =
        |content_type: Option<&'static str>, body: &'static str| -> anyhow::Result<Request<Body>> {
            let mut b = Request::post(format!("/{TENANT}/admin/sync/corp.test/run"))
                .header("authorization", format!("Bearer {ga}"));
            if let Some(ct) = content_type {
                b = b.header("content-type", ct);
            }
            Ok(b.body(Body::from(body))?)
        };
    // No agent syncs the forest: 404 once the body (or its absence) was accepted.
    for (content_type, body, status) in [
        (None, "", 404),
        (Some("application/json"), "{\"full\": true}", 404),
        (Some("application/json"), "{\"full\": \"yes\"}", 400),
        (Some("text/plain"), "full", 415),
    ] {
        let (got, v) = s.json(send(content_type, body)?).await?;
        assert_eq!(got, status, "{content_type:?} {body}: {v}");
        assert!(v["error"].is_string(), "{v}");
    }
    s.done().await
}

/// 64 agent registrations at once into a tenant that may have 40: exactly 40 certificates are
/// issued and stored, every other registration is refused with `too_many_agents`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_registrations_never_exceed_the_agent_limit() -> anyhow::Result<()> {
    use base64::Engine as _;
    let s = std::sync::Arc::new(TestServer::start(None).await?);
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let csr = rcgen::CertificateParams::new(vec!["ignored".to_string()])?
            .serialize_request(&key)?
            .pem()?;
        let hpke = base64::engine::general_purpose::STANDARD
            .encode(passthru_proto::AgentKeyPair::generate().public_bytes());
        let body = json!({"csr_pem": csr, "hpke_public_key": hpke, "host": format!("host{i}"), "version": "1"});
        let (s, ga) = (s.clone(), ga.clone());
        tasks.push(tokio::spawn(async move {
            call(&s, &ga, "POST", "/agents/register", Some(body)).await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (status, v) = t.await??;
        match status {
            200 => ok += 1,
            409 if v["error"] == "too_many_agents" => refused += 1,
            other => anyhow::bail!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((ok, refused), (40, 24));
    assert_eq!(s.state.store.active_agent_count(s.tenant_id).await?, 40);
    Ok(())
}
