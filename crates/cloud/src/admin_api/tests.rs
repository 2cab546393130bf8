//! The admin API's table against its router, in process: every operation answers every role
//! as [`super::ops`] says, refuses a caller without a token, and takes the body its OpenAPI
//! document describes.

use axum::body::Body;
use axum::http::Request;
use serde_json::{json, Value};

use super::ops::{self, Operation, GLOBAL_ADMIN, HYBRID_ADMIN};
use crate::test_state::{TestServer, ADMIN, TENANT};

const HYBRID: &str = "hybrid@contoso.example";
const NOBODY: &str = "plain@contoso.example";

/// The operation's path under the tenant with every parameter filled with something that
/// does not exist (so an allowed call changes nothing it could not change back).
fn path_of(op: &Operation) -> String {
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
            other => other.to_string(),
        })
        .collect();
    format!("/{TENANT}/admin{}", filled.join("/"))
}

/// A body that follows the operation's documented schema: each required property with a
/// value of its type (an enum's first value).
fn example(schema: &Value) -> Value {
    match schema["type"].as_str() {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let Some(name) = name.as_str() else { continue };
                out.insert(name.to_string(), example(&schema["properties"][name]));
            }
            Value::Object(out)
        }
        Some("boolean") => json!(true),
        Some("integer" | "number") => json!(1),
        Some("array") => json!([]),
        _ => schema["enum"]
            .get(0)
            .cloned()
            .unwrap_or_else(|| json!("example")),
    }
}

fn request(
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

async fn server_with_roles() -> anyhow::Result<(TestServer, [(String, &'static str); 3])> {
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
    let mut problems = Vec::new();
    // The least privileged first: a refused call must change nothing the next ones see.
    for (token, role) in tokens.iter().rev() {
        for op in ops::ALL {
            let body = op.body.map(|_| json!({}));
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
        let body = op.body.map(|_| json!({}));
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
    let mut problems = Vec::new();
    for op in ops::ALL {
        let Some(schema) = op.body else { continue };
        let schema: Value = serde_json::from_str(schema)?;
        let body = example(&schema);
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
