//! Token signing key rotation: `POST /{tenant}/admin/keys/rotate` gives the tenant a new
//! signing key of each algorithm, ES256 and RS256 (they sign the tenant's tokens from now on)
//! and keeps its previous keys in its JWKS until every token they signed has expired (at most
//! [`MAX_RETIRED_KEYS`] of them per algorithm).
//! Keys are per tenant: a tenant's Global Administrator rotates that tenant's keys only.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use passthru_admin::api;

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::tokens::{SigningAlg, TenantKeys, MAX_RETIRED_KEYS};

fn summary(keys: &TenantKeys) -> api::SigningKeys {
    api::SigningKeys {
        current: keys.current_kid().map(str::to_string),
        current_rs256: keys.current_kid_of(SigningAlg::Rs256).map(str::to_string),
        published: keys.jwks().into_iter().map(|k| k.kid).collect(),
        max_retired: MAX_RETIRED_KEYS,
    }
}

/// `POST /{tenant}/admin/keys/rotate`
#[utoipa::path(
    post,
    path = "/keys/rotate",
    operation_id = ops::ROTATE_KEYS.id,
    summary = ops::ROTATE_KEYS.summary,
    responses((status = 200, description = "Done.", body = api::SigningKeys))
)]
pub async fn rotate(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::SigningKeys>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ROTATE_KEYS).await?;
    let keys = state
        .signer
        .rotate(t.id, unix_now())
        .await
        .map_err(ApiError::internal)?;
    if let Some(cluster) = &state.cluster {
        // Every instance's JWKS and signer move to the new key at once.
        cluster.keys_rotated(t.id).await;
    }
    tracing::info!(tenant = %t.name, by = %admin.upn, kid = keys.current_kid().unwrap_or_default(),
        "the tenant's token signing key rotated");
    Ok(Json(summary(&keys)))
}

/// `GET /{tenant}/admin/keys`
#[utoipa::path(
    get,
    path = "/keys",
    operation_id = ops::LIST_KEYS.id,
    summary = ops::LIST_KEYS.summary,
    responses((status = 200, description = "Done.", body = api::SigningKeys))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::SigningKeys>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_KEYS).await?;
    let keys = state.signer.keys(t.id).await.map_err(ApiError::internal)?;
    Ok(Json(summary(&keys)))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;

    use crate::test_state::{TestServer, ADMIN, TENANT};
    use crate::tokens::MAX_RETIRED_KEYS;

    fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_string))
            .collect()
    }

    fn get(path: &str) -> anyhow::Result<Request<Body>> {
        Ok(Request::get(path).body(Body::empty())?)
    }

    fn rotate(tenant: &str, token: &str) -> anyhow::Result<Request<Body>> {
        Ok(Request::post(format!("/{tenant}/admin/keys/rotate"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from("{}"))?)
    }

    /// Tenant A's Global Administrator rotates A's keys (ES256 and RS256 at once): A's JWKS
    /// and signing keys change, tenant B's JWKS and signing keys stay as they were, and B's
    /// administrator cannot rotate A's keys. However often A rotates, its JWKS stays bounded.
    #[tokio::test]
    async fn a_tenant_rotates_only_its_own_keys() -> anyhow::Result<()> {
        let s = TestServer::start(None).await?;
        let a = s.tenant_id;
        let b = s.add_tenant("beta", "admin@beta.example").await?;
        let a_token = s.admin_token(a, ADMIN).await?;
        let b_token = s.admin_token(b, "admin@beta.example").await?;
        let (_, a_before) = s
            .json(get(&format!("/{TENANT}/discovery/v2.0/keys"))?)
            .await?;
        let (_, b_before) = s.json(get("/beta/discovery/v2.0/keys")?).await?;
        assert_ne!(
            kids(&a_before),
            kids(&b_before),
            "each tenant has its own key"
        );

        let (status, v) = s.json(rotate(TENANT, &a_token)?).await?;
        assert_eq!(status, 200, "{v}");
        let (_, a_after) = s
            .json(get(&format!("/{TENANT}/discovery/v2.0/keys"))?)
            .await?;
        assert_eq!(
            kids(&a_before).len(),
            2,
            "an ES256 and an RS256 key: {a_before}"
        );
        assert_eq!(kids(&a_after).len(), 4, "{a_after}");
        // The new keys first (ES256, RS256), then the retired ones.
        assert_eq!(v["current"].as_str(), Some(kids(&a_after)[0].as_str()));
        assert_eq!(
            v["current_rs256"].as_str(),
            Some(kids(&a_after)[1].as_str())
        );
        assert_eq!(a_after["keys"][0]["alg"], "ES256");
        assert_eq!(a_after["keys"][1]["alg"], "RS256");
        for old in kids(&a_before) {
            assert!(kids(&a_after)[2..].contains(&old), "{old} stays published");
        }
        assert_eq!(v["published"].as_array().map(Vec::len), Some(4), "{v}");
        let (_, b_after) = s.json(get("/beta/discovery/v2.0/keys")?).await?;
        assert_eq!(b_after, b_before, "B's JWKS is unchanged");
        let b_signing = s.state.signer.keys(b).await?;
        assert_eq!(
            b_signing.current_kid(),
            kids(&b_before).first().map(String::as_str),
            "B still signs with its own key"
        );
        // A token of B (signed by B's key) still works at B, not at A.
        let (status, _) = s.json(rotate(TENANT, &b_token)?).await?;
        assert_eq!(status, 403, "B's administrator cannot rotate A's keys");
        let (status, _) = s
            .json(
                Request::get("/beta/admin/keys")
                    .header("authorization", format!("Bearer {b_token}"))
                    .body(Body::empty())?,
            )
            .await?;
        assert_eq!(status, 200);

        // More rotations than the bound (each makes an RSA key): the JWKS stays bounded.
        for _ in 0..(MAX_RETIRED_KEYS + 1) {
            let a_token = s.admin_token(a, ADMIN).await?;
            let (status, v) = s.json(rotate(TENANT, &a_token)?).await?;
            assert_eq!(status, 200, "{v}");
        }
        let (_, a_many) = s
            .json(get(&format!("/{TENANT}/discovery/v2.0/keys"))?)
            .await?;
        assert_eq!(
            kids(&a_many).len() as i64,
            2 * (1 + MAX_RETIRED_KEYS),
            "{a_many}"
        );
        let (_, b_last) = s.json(get("/beta/discovery/v2.0/keys")?).await?;
        assert_eq!(b_last, b_before);
        s.done().await
    }
}
