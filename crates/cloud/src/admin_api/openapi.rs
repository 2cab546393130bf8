//! The OpenAPI 3.1 document of the admin API, built from the operation table in [`super::ops`]
//! (so it lists exactly what the router serves and who may call it). It is public: it holds
//! no tenant data.

use axum::extract::Path;
use axum::Json;
use serde_json::{json, Map, Value};

use super::ops::{Operation, ALL};
use crate::sts::BaseUrl;

fn path_params(op: &Operation) -> Vec<Value> {
    let mut params = vec![json!({
        "name": "tenant", "in": "path", "required": true,
        "description": "The tenant's name or id.", "schema": { "type": "string" }
    })];
    for seg in op.path.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            params.push(json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }));
        }
    }
    for q in op.query {
        params.push(
            json!({ "name": q, "in": "query", "required": false, "schema": { "type": "string" } }),
        );
    }
    params
}

fn operation(op: &Operation) -> Value {
    let error = |d: &str| json!({ "description": d, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    let ok_status = if op.method == "POST" && matches!(op.id, "addUser" | "addDomain" | "addApp") {
        "201"
    } else {
        "200"
    };
    let mut v = json!({
        "operationId": op.id,
        "summary": op.summary,
        "parameters": path_params(op),
        "security": [{ "bearer": [] }],
        "x-passthru-roles": op.roles,
        "responses": {
            ok_status: { "description": "Done.", "content": { "application/json": {} } },
            "400": error("The request is malformed or a value is invalid; the description says which."),
            "401": error("No valid access token for the administration client."),
            "403": error(&format!("The caller's role is not one of: {}.", op.roles.join(", "))),
            "404": error("The tenant or the named object does not exist."),
            "409": error("The change conflicts with the current state (last agent, domain in use, ...)."),
        }
    });
    if op.id == "listSignIns" {
        v["responses"]["200"]["content"]["text/csv"] = json!({});
    }
    if let Some(body) = op.body {
        let schema: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        v["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    v
}

/// The document for a server at `base`.
pub fn build(base: &str) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in ALL {
        let entry = paths
            .entry(format!("/{{tenant}}/admin{}", op.path))
            .or_insert_with(|| json!({}));
        entry[op.method.to_ascii_lowercase()] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Passthru admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Tenant administration. Authenticate with an access token from this service's own token endpoint for the client {} and the scope {}; x-passthru-roles lists the roles allowed to call each operation.", passthru_proto::admin::ADMIN_CLIENT_ID, passthru_proto::admin::ADMIN_SCOPE)
        },
        "servers": [{ "url": base }],
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "error_description"],
                    "properties": {
                        "error": { "type": "string" },
                        "error_description": { "type": "string" }
                    }
                }
            }
        }
    })
}

/// `GET /{tenant}/admin/openapi.json`
pub async fn document(BaseUrl(base): BaseUrl, Path(_tenant): Path<String>) -> Json<Value> {
    Json(build(&base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_with_a_valid_body_schema() {
        let doc = build("https://example");
        let mut count = 0;
        for op in ALL {
            if let Some(b) = op.body {
                assert!(serde_json::from_str::<Value>(b).is_ok(), "{}", op.id);
            }
            let p = format!("/{{tenant}}/admin{}", op.path);
            let o = &doc["paths"][&p][op.method.to_ascii_lowercase()];
            assert_eq!(o["operationId"], op.id);
            assert!(!op.roles.is_empty());
            count += 1;
        }
        let ids: std::collections::HashSet<_> = ALL.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), count, "operation ids are unique");
    }
}
