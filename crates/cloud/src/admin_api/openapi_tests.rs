//! The OpenAPI document against the router and the handlers: it lists exactly the operations
//! of the table and of the router, each documented request body is the type its handler reads,
//! and what the handlers answer has the documented shape.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;

use super::openapi::{self, PREFIX};
use super::ops;
use super::tests::{
    body_schema, documented, path_of, request, resolve, schema_name, server_with_roles,
};
use crate::test_state::{ADMIN, TENANT};

/// (method, path, operationId) of every operation the document lists.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, o) in item.as_object().into_iter().flatten() {
            out.insert((
                method.to_ascii_uppercase(),
                path.clone(),
                o["operationId"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_operations_of_the_table() {
    let doc = openapi::build("https://example");
    if let Ok(path) = std::env::var("PASSTHRU_DUMP_OPENAPI") {
        let _ = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let table: BTreeSet<(String, String, String)> = ops::ALL
        .iter()
        .map(|o| {
            (
                o.method.to_string(),
                format!("{PREFIX}{}", o.path),
                o.id.to_string(),
            )
        })
        .collect();
    assert_eq!(table.len(), ops::ALL.len(), "operation ids are unique");
    let documented_ops = documented_operations(&doc);
    let missing: Vec<_> = table.difference(&documented_ops).collect();
    let extra: Vec<_> = documented_ops.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in the table only: {missing:?}\nin the document only: {extra:?}"
    );
    for op in ops::ALL {
        let o = documented(&doc, op);
        assert!(!op.roles.is_empty(), "{}", op.id);
        assert_eq!(
            o["x-passthru-roles"],
            serde_json::json!(op.roles),
            "{}",
            op.id
        );
        assert_eq!(o["summary"], op.summary, "{}", op.id);
        let params: Vec<&str> = o["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_path: Vec<&str> = std::iter::once("tenant")
            .chain(
                op.path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))),
            )
            .collect();
        assert_eq!(params, in_path, "{}", op.id);
    }
    assert_eq!(doc["openapi"], "3.1.0");
}

/// The router takes its routes from the handlers' `#[utoipa::path]` (`routes!`), each
/// documented; the only other route is the document itself. A `.route(...)` added to the
/// admin router would be served undocumented: this fails first.
#[test]
fn every_admin_route_comes_from_a_documented_handler() {
    let source = include_str!("mod.rs");
    let plain_routes = source.matches(".route(").count();
    assert_eq!(
        plain_routes, 1,
        "the admin router has a route outside `routes!(...)` besides /openapi.json"
    );
    // Every handler named in a routes!(...) is one operation of the document.
    let handlers: usize = source
        .split("routes!(")
        .skip(1)
        .map(|s| s.split(')').next().unwrap_or_default().split(',').count())
        .sum();
    let doc = openapi::build("https://example");
    assert_eq!(handlers, documented_operations(&doc).len());
}

/// Every documented operation is routed, and a body the handler cannot read is refused naming
/// the type it reads: the one the document gives (or none where the document has no body).
#[tokio::test]
async fn each_documented_body_is_the_type_its_handler_reads() -> anyhow::Result<()> {
    let (s, tokens) = server_with_roles().await?;
    let ga = &tokens[0].0;
    let doc = openapi::build("https://example");
    let mut problems = Vec::new();
    for op in ops::ALL {
        let (status, v) = s
            .json(request(
                op,
                Some(ga),
                Some(&serde_json::json!("no object")),
            )?)
            .await?;
        if status == 405 || status == 404 && v.is_null() {
            problems.push(format!("{} {}: not routed ({status})", op.method, op.path));
            continue;
        }
        let said = v["error_description"].as_str().unwrap_or_default();
        match body_schema(&doc, op).map(schema_name) {
            Some(Some(name)) => {
                if status != 400 || !said.contains(&format!("it takes a {name},")) {
                    problems.push(format!(
                        "{} {}: documented body {name}, the handler said {status} {v}",
                        op.method, op.path
                    ));
                }
            }
            Some(None) => problems.push(format!(
                "{} {}: the documented body names no schema",
                op.method, op.path
            )),
            None => {
                if said.contains("not what this operation takes") {
                    problems.push(format!(
                        "{} {}: no documented body, but the handler reads one: {v}",
                        op.method, op.path
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.done().await
}

/// Whether `value` has the shape of `schema`: an object's required properties present and no
/// other than documented ones, checked down through properties and array items.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    match value {
        Value::Object(m) => {
            let Some(props) = schema["properties"].as_object() else {
                return;
            };
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str().filter(|r| !m.contains_key(*r)) {
                    problems.push(format!("{at}: no {r}"));
                }
            }
            for (k, v) in m {
                match props.get(k) {
                    Some(s) => conforms(doc, s, v, &format!("{at}.{k}"), problems),
                    None => problems.push(format!("{at}: {k} is not documented")),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                conforms(doc, &schema["items"], v, &format!("{at}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

/// What the reading operations answer is what the document says they answer.
#[tokio::test]
async fn answers_have_their_documented_shape() -> anyhow::Result<()> {
    let (s, tokens) = server_with_roles().await?;
    let ga = &tokens[0].0;
    let doc = openapi::build("https://example");
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut calls: Vec<(&ops::Operation, String)> = ops::ALL
        .iter()
        .copied()
        .filter(|o| o.method == "GET")
        .map(|o| (o, path_of(o)))
        .collect();
    calls.push((ops::SHOW_USER, format!("/{TENANT}/admin/users/{ADMIN}")));
    calls.push((
        ops::SHOW_DOMAIN,
        format!("/{TENANT}/admin/domains/contoso.example"),
    ));
    for (op, path) in calls {
        let req = Request::get(&path)
            .header("authorization", format!("Bearer {ga}"))
            .body(Body::empty())?;
        let (status, v) = s.json(req).await?;
        if status != 200 {
            continue;
        }
        let schema =
            &documented(&doc, op)["responses"]["200"]["content"]["application/json"]["schema"];
        if schema.is_null() {
            problems.push(format!("{}: no documented answer", op.id));
            continue;
        }
        conforms(&doc, schema, &v, op.id, &mut problems);
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} answers checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    s.done().await
}
