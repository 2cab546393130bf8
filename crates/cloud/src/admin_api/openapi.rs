//! The OpenAPI 3.1 document of the admin API, derived rather than written: each handler's
//! `#[utoipa::path]` gives its method, path, query parameters, request body and answer, the
//! bodies' schemas come from the shared types of [`passthru_admin::api`], and utoipa-axum
//! builds the router from the same attributes ([`super::operations`]), so a route cannot be
//! served without being documented. [`finish`] then adds what every operation shares (the
//! tenant and path parameters, the bearer token, the error answers) and the roles of
//! [`super::ops`]. The document is public: it holds no tenant data.

use std::sync::Arc;

use axum::Json;
use passthru_admin::api;
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::ops::{Operation, ALL};
use crate::sts::BaseUrl;

/// Where the admin routes are nested (see `server.rs`).
pub const PREFIX: &str = "/{tenant}/admin";

/// What the derived document starts from: the error body every operation may answer.
#[derive(OpenApi)]
#[openapi(components(schemas(api::ApiError)))]
struct Base;

/// The document the routes are added to.
pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// The operation of the table with this id.
pub fn operation_of(id: &str) -> Option<&'static Operation> {
    ALL.iter().copied().find(|o| o.id == id)
}

/// The parameters every operation of `path` takes in its path: the tenant, then each
/// `{name}` of the path.
fn path_params(path: &str) -> Vec<Value> {
    let mut params = vec![json!({
        "name": "tenant", "in": "path", "required": true,
        "description": "The tenant's name or id.", "schema": { "type": "string" }
    })];
    for seg in path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
        }
    }
    params
}

/// What every operation shares, added to one derived from a handler.
fn complete(path: &str, o: &mut Value) {
    let error = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ApiError" } } } });
    let mut params = path_params(path);
    if let Some(Value::Array(query)) = o.get_mut("parameters").map(Value::take) {
        params.extend(query);
    }
    o["parameters"] = Value::Array(params);
    o["security"] = json!([{ "bearer": [] }]);
    let roles = o["operationId"]
        .as_str()
        .and_then(operation_of)
        .map(|op| op.roles)
        .unwrap_or_default();
    o["x-passthru-roles"] = json!(roles);
    let Some(responses) = o.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    for (status, description) in [
        (
            "400",
            "The request is malformed or a value is invalid; the description says which."
                .to_string(),
        ),
        (
            "401",
            "No valid access token for the administration client.".to_string(),
        ),
        (
            "403",
            format!("The caller's role is not one of: {}.", roles.join(", ")),
        ),
        (
            "404",
            "The tenant or the named object does not exist.".to_string(),
        ),
        (
            "409",
            "The change conflicts with the current state (last agent, domain in use, ...)."
                .to_string(),
        ),
    ] {
        responses
            .entry(status)
            .or_insert_with(|| error(&description));
    }
}

/// The whole document from the one utoipa derived, without `servers` (see [`with_server`]).
pub fn finish(derived: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(derived).unwrap_or_default();
    let mut paths = Map::new();
    if let Some(Value::Object(derived_paths)) = doc.get_mut("paths").map(Value::take) {
        for (path, mut item) in derived_paths {
            for (_, o) in item.as_object_mut().into_iter().flatten() {
                complete(&path, o);
            }
            paths.insert(format!("{PREFIX}{path}"), item);
        }
    }
    doc["openapi"] = json!("3.1.0");
    doc["paths"] = Value::Object(paths);
    doc["info"] = json!({
        "title": "Passthru admin API",
        "version": env!("CARGO_PKG_VERSION"),
        "description": format!("Tenant administration. Authenticate with an access token from this service's own token endpoint for the client {} and the scope {}; x-passthru-roles lists the roles allowed to call each operation.", passthru_proto::admin::ADMIN_CLIENT_ID, passthru_proto::admin::ADMIN_SCOPE)
    });
    doc["components"]["securitySchemes"] =
        json!({ "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } });
    doc
}

/// The document for a server at `base`.
pub fn with_server(doc: &Value, base: &str) -> Value {
    let mut doc = doc.clone();
    doc["servers"] = json!([{ "url": base }]);
    doc
}

/// The document as the admin routes serve it, for a server at `base`.
#[cfg(test)]
pub fn build(base: &str) -> Value {
    with_server(&finish(&super::operations().into_openapi()), base)
}

/// `GET /{tenant}/admin/openapi.json`
pub async fn document(BaseUrl(base): BaseUrl, doc: Arc<Value>) -> Json<Value> {
    Json(with_server(&doc, &base))
}
