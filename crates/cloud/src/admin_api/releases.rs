//! Agent releases (signed auto-update): list, add (the package as the body, its signed
//! manifest in the `Passthru-Signed-Manifest` header), remove. The cloud checks that the
//! package has the SHA-256 and size its manifest names; it cannot check the signature (the
//! agents do, with the publisher key pinned in them).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use passthru_admin::api;
use passthru_proto::release::SignedManifest;
use sha2::{Digest as _, Sha256};

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::limits::MAX_RELEASE_BYTES;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::releases::ReleaseInfo;

/// Releases a tenant keeps at most (each holds its package).
pub const MAX_RELEASES_PER_TENANT: usize = 20;

fn release_json(r: &ReleaseInfo) -> api::Release {
    api::Release {
        version: r.version.clone(),
        target: r.target.clone(),
        sha256: r.sha256.clone(),
        size: u64::try_from(r.size).unwrap_or(0),
        min_cloud_version: r.min_cloud_version.clone(),
        added_at: r.added_at,
        added_by: r.added_by.clone(),
    }
}

/// `GET /{tenant}/admin/agents/releases`
#[utoipa::path(
    get,
    path = "/agents/releases",
    operation_id = ops::LIST_RELEASES.id,
    summary = ops::LIST_RELEASES.summary,
    responses((status = 200, description = "Done.", body = api::ReleaseList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::ReleaseList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_RELEASES).await?;
    let releases = state.store.releases(t.id).await?;
    let offered = crate::agent_releases::choose(
        &releases,
        t.settings.agent_updates,
        "0.0.0",
        &passthru_proto::release::this_target(),
        crate::agent_releases::CLOUD_VERSION,
    )
    .ok()
    .map(|r| r.version.clone());
    Ok(Json(api::ReleaseList {
        releases: releases.iter().map(release_json).collect(),
        agent_updates: t.settings.agent_updates.as_str().to_string(),
        offered,
    }))
}

/// `POST /{tenant}/admin/agents/releases`: the body is the package (the passthru-agent
/// executable, `application/octet-stream`); the `Passthru-Signed-Manifest` header is its
/// signed manifest (the `SIGFILE` of `passthru-agent release sign`), base64.
#[utoipa::path(
    post,
    path = "/agents/releases",
    operation_id = ops::ADD_RELEASE.id,
    summary = ops::ADD_RELEASE.summary,
    params(
        ("passthru-signed-manifest" = String, Header, description = "The release's signed manifest (the SIGFILE `passthru-agent release sign` wrote), base64.")
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The package: the passthru-agent executable the manifest was signed for."),
    responses((status = 200, description = "Done.", body = api::Release))
)]
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<api::Release>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ADD_RELEASE).await?;
    let header = headers
        .get(api::SIGNED_MANIFEST_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "The release's signed manifest is missing: send the SIGFILE `passthru-agent \
                 release sign` wrote, base64, in the Passthru-Signed-Manifest header (the body \
                 is the package).",
            )
        })?;
    let signed = B64
        .decode(header.trim().as_bytes())
        .map_err(|_| ApiError::bad_request("The Passthru-Signed-Manifest header is not base64."))?;
    let signed = SignedManifest::parse(&signed)
        .map_err(|e| ApiError::bad_request(format!("{}.", capital(&e.to_string()))))?;
    let manifest = signed
        .unverified_manifest()
        .map_err(|e| ApiError::bad_request(format!("{}.", capital(&e.to_string()))))?;
    let package = http_body_util::Limited::new(body, MAX_RELEASE_BYTES)
        .collect()
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "The package could not be read, or is larger than {MAX_RELEASE_BYTES} bytes."
            ))
        })?
        .to_bytes();
    if package.len() as u64 != manifest.size {
        return Err(ApiError::bad_request(format!(
            "The package is {} bytes but its signed manifest says {}: this is not the package \
             that was signed (give the FILE `passthru-agent release sign --package` was given).",
            package.len(),
            manifest.size
        )));
    }
    let digest = hex::encode(Sha256::digest(&package));
    if digest != manifest.sha256 {
        return Err(ApiError::bad_request(format!(
            "The package's SHA-256 is {digest} but its signed manifest says {}: this is not the \
             package that was signed (give the FILE `passthru-agent release sign --package` \
             was given).",
            manifest.sha256
        )));
    }
    let existing = state.store.releases(t.id).await?;
    if existing.iter().any(|r| r.version == manifest.version) {
        return Err(ApiError::conflict(format!(
            "Release {} exists already: remove it first (agents release remove {}).",
            manifest.version, manifest.version
        )));
    }
    if existing.len() >= MAX_RELEASES_PER_TENANT {
        return Err(ApiError::conflict(format!(
            "This tenant has {} releases, the most it may keep: remove old ones first (agents \
             release remove VERSION).",
            existing.len()
        )));
    }
    let info = ReleaseInfo {
        version: manifest.version.clone(),
        target: manifest.target.clone(),
        sha256: manifest.sha256.clone(),
        size: i64::try_from(manifest.size).unwrap_or(i64::MAX),
        min_cloud_version: manifest.min_cloud_version.clone(),
        signed_manifest: signed.to_json(),
        added_at: unix_now(),
        added_by: admin.upn.clone(),
    };
    state.store.add_release(t.id, &info, &package).await?;
    tracing::info!(tenant = %t.name, version = %info.version, target = %info.target, bytes = package.len(), by = %admin.upn, "agent release added");
    Ok(Json(release_json(&info)))
}

/// `DELETE /{tenant}/admin/agents/releases/{version}`
#[utoipa::path(
    delete,
    path = "/agents/releases/{version}",
    operation_id = ops::REMOVE_RELEASE.id,
    summary = ops::REMOVE_RELEASE.summary,
    responses((status = 200, description = "Done.", body = api::ReleaseRemoved))
)]
pub async fn remove(
    State(state): State<Shared>,
    Path((tenant, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::ReleaseRemoved>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::REMOVE_RELEASE).await?;
    if !state.store.remove_release(t.id, &version).await? {
        return Err(ApiError::not_found(format!(
            "This tenant has no release {}: `agents release list` shows them.",
            version.chars().take(64).collect::<String>()
        )));
    }
    tracing::info!(tenant = %t.name, %version, by = %admin.upn, "agent release removed");
    Ok(Json(api::ReleaseRemoved {
        version,
        removed: true,
    }))
}

/// `text` with its first letter upper case.
fn capital(text: &str) -> String {
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, Response};
    use axum::{Extension, Router};
    use base64::Engine as _;
    use passthru_proto::release::{Manifest, SignedManifest, PRODUCT};
    use serde_json::Value;
    use sha2::{Digest as _, Sha256};
    use tower::ServiceExt as _;
    use uuid::Uuid;

    use crate::admin_api::ops::HYBRID_ADMIN;
    use crate::http::ClientInfo;
    use crate::test_state::{TestServer, ADMIN, TENANT};

    const HYBRID: &str = "hybrid@contoso.example";

    /// A package of `len` bytes and a signed manifest for it (the cloud cannot check the
    /// signature: any 64 bytes do here).
    fn release(version: &str, len: usize) -> (Vec<u8>, SignedManifest) {
        let package: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let manifest = Manifest {
            product: PRODUCT.into(),
            version: version.into(),
            target: passthru_proto::release::this_target(),
            sha256: hex::encode(Sha256::digest(&package)),
            size: len as u64,
            min_cloud_version: "0.0.0".into(),
        };
        let signed = SignedManifest {
            manifest: manifest.to_json(),
            signature: base64::engine::general_purpose::STANDARD.encode([1u8; 64]),
        };
        (package, signed)
    }

    fn upload(
        token: &str,
        package: Vec<u8>,
        signed: Option<&SignedManifest>,
    ) -> anyhow::Result<Request<Body>> {
        let mut b = Request::builder()
            .method("POST")
            .uri(format!("/{TENANT}/admin/agents/releases"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/octet-stream");
        if let Some(s) = signed {
            b = b.header(
                passthru_admin::api::SIGNED_MANIFEST_HEADER,
                base64::engine::general_purpose::STANDARD.encode(s.to_json()),
            );
        }
        Ok(b.body(Body::from(package))?)
    }

    fn get(uri: &str, token: &str) -> anyhow::Result<Request<Body>> {
        Ok(Request::builder()
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())?)
    }

    /// An upload whose package is the one signed is stored and listed; one whose digest or
    /// size is not the manifest's, or without a readable manifest, is refused saying why; a
    /// version is added once; only a Global Administrator adds or removes.
    #[tokio::test]
    async fn releases_are_added_checked_listed_and_removed() -> anyhow::Result<()> {
        let s = TestServer::start(None).await?;
        let ga = s.admin_token(s.tenant_id, ADMIN).await?;
        s.state
            .store
            .add_cloud_user(s.tenant_id, HYBRID, "x", HYBRID_ADMIN, 1)
            .await?;
        let hybrid = s.admin_token(s.tenant_id, HYBRID).await?;
        // Larger than the router's 64 KiB JSON limit.
        let (package, signed) = release("0.2.0", 200 * 1024);

        let (status, v) = s.json(upload(&ga, package.clone(), Some(&signed))?).await?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["version"], "0.2.0");
        assert_eq!(v["size"], 200 * 1024);
        assert_eq!(
            s.state.store.release_package(s.tenant_id, "0.2.0").await?,
            Some(package.clone())
        );
        let (status, v) = s.json(upload(&ga, package.clone(), Some(&signed))?).await?;
        assert_eq!(status, 409, "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("remove it first")),
            "{v}"
        );

        // Not the package that was signed: one byte changed, or one more.
        let (mut other, signed3) = release("0.3.0", 1000);
        other[10] ^= 1;
        let (status, v) = s.json(upload(&ga, other.clone(), Some(&signed3))?).await?;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("SHA-256") && d.contains("not the package")),
            "{v}"
        );
        other.push(0);
        let (status, v) = s.json(upload(&ga, other, Some(&signed3))?).await?;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("1001 bytes")),
            "{v}"
        );
        // No manifest, or one that does not read.
        let (status, v) = s.json(upload(&ga, b"p".to_vec(), None)?).await?;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("Passthru-Signed-Manifest")),
            "{v}"
        );
        let garbage = SignedManifest {
            manifest: "{}".into(),
            signature: "AAAA".into(),
        };
        let (status, v) = s.json(upload(&ga, b"p".to_vec(), Some(&garbage))?).await?;
        assert_eq!(status, 400, "{v}");
        assert_eq!(s.state.store.releases(s.tenant_id).await?.len(), 1);

        // A Hybrid Identity Administrator lists but does not add.
        let (package3, signed3) = release("0.3.0", 1000);
        let (status, _) = s
            .json(upload(&hybrid, package3.clone(), Some(&signed3))?)
            .await?;
        assert_eq!(status, 403);
        let (status, v) = s
            .json(get(&format!("/{TENANT}/admin/agents/releases"), &hybrid)?)
            .await?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["releases"][0]["version"], "0.2.0");
        assert_eq!(v["releases"][0]["added_by"], ADMIN);
        assert_eq!(v["agent_updates"], "auto");
        assert_eq!(v["offered"], "0.2.0");
        let (status, _) = s.json(upload(&ga, package3, Some(&signed3))?).await?;
        assert_eq!(status, 200);
        let (_, v) = s
            .json(get(&format!("/{TENANT}/admin/agents/releases"), &ga)?)
            .await?;
        assert_eq!(v["offered"], "0.3.0", "the newest: {v}");

        // Removal.
        let delete = |version: &str| -> anyhow::Result<Request<Body>> {
            Ok(Request::builder()
                .method("DELETE")
                .uri(format!("/{TENANT}/admin/agents/releases/{version}"))
                .header("authorization", format!("Bearer {ga}"))
                .body(Body::empty())?)
        };
        let (status, v) = s.json(delete("0.3.0")?).await?;
        assert_eq!((status, &v["removed"]), (200, &Value::Bool(true)), "{v}");
        let (status, _) = s.json(delete("0.3.0")?).await?;
        assert_eq!(status, 404);
        s.done().await
    }

    async fn call_as(
        s: &TestServer,
        fingerprint: Option<&str>,
        req: Request<Body>,
    ) -> anyhow::Result<Response<Body>> {
        let app: Router = crate::server::router(s.state.clone()).layer(Extension(ClientInfo {
            addr: "127.0.0.1:40000".parse()?,
            peer_cert_fingerprint: fingerprint.map(str::to_string),
        }));
        Ok(app.oneshot(req).await?)
    }

    /// The package goes to an agent of the tenant (its client certificate), byte for byte;
    /// not to a revoked agent, another tenant's, a caller without a certificate, nor while
    /// the tenant's policy is off.
    #[tokio::test]
    async fn packages_go_to_the_tenants_agents_only() -> anyhow::Result<()> {
        let s = TestServer::start(None).await?;
        let ga = s.admin_token(s.tenant_id, ADMIN).await?;
        let (package, signed) = release("0.2.0", 300 * 1024);
        let (status, _) = s.json(upload(&ga, package.clone(), Some(&signed))?).await?;
        assert_eq!(status, 200);
        let agent = Uuid::new_v4();
        s.state
            .store
            .add_agent(
                agent,
                s.tenant_id,
                "fp-ours",
                i64::MAX,
                &[7; 32],
                "h",
                "0.1.0",
                1,
                40,
            )
            .await?;
        let other_tenant = s.add_tenant("fabrikam", "admin@fabrikam.example").await?;
        s.state
            .store
            .add_agent(
                Uuid::new_v4(),
                other_tenant,
                "fp-theirs",
                i64::MAX,
                &[7; 32],
                "h",
                "0.1.0",
                1,
                40,
            )
            .await?;
        async fn fetch_as(
            s: &TestServer,
            fp: Option<&str>,
            version: &str,
        ) -> anyhow::Result<Response<Body>> {
            let req = Request::builder()
                .uri(format!(
                    "/{}/agent/v1/releases/{version}/package",
                    s.tenant_id
                ))
                .body(Body::empty())?;
            call_as(s, fp, req).await
        }
        let fetch = |fp, version| fetch_as(&s, fp, version);
        let r = fetch(Some("fp-ours"), "0.2.0").await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/octet-stream");
        assert_eq!(
            r.headers()["content-length"],
            (300 * 1024).to_string().as_str()
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 24).await?;
        assert!(body.as_ref() == package.as_slice(), "byte for byte");
        assert_eq!(fetch(Some("fp-ours"), "9.9.9").await?.status(), 404);
        assert_eq!(fetch(Some("fp-theirs"), "0.2.0").await?.status(), 403);
        assert_eq!(fetch(None, "0.2.0").await?.status(), 403);
        assert_eq!(fetch(Some("fp-unknown"), "0.2.0").await?.status(), 403);
        // Policy off.
        let mut settings = s
            .state
            .store
            .tenant(TENANT)
            .await?
            .map(|t| t.settings)
            .unwrap_or_default();
        settings.agent_updates = crate::model::settings::AgentUpdates::Off;
        s.state.store.save_settings(s.tenant_id, &settings).await?;
        assert_eq!(fetch(Some("fp-ours"), "0.2.0").await?.status(), 403);
        settings.agent_updates = crate::model::settings::AgentUpdates::Auto;
        s.state.store.save_settings(s.tenant_id, &settings).await?;
        assert_eq!(fetch(Some("fp-ours"), "0.2.0").await?.status(), 200);
        // Revoked.
        s.state.store.revoke_agent(s.tenant_id, agent).await?;
        assert_eq!(fetch(Some("fp-ours"), "0.2.0").await?.status(), 403);
        s.done().await
    }

    /// The answer to an update check: the newest release while the policy is auto and the
    /// agent does not run it; nothing otherwise.
    #[tokio::test]
    async fn update_checks_are_answered_by_the_policy() -> anyhow::Result<()> {
        use passthru_proto::wire::CloudToAgent;
        let s = TestServer::start(None).await?;
        let ga = s.admin_token(s.tenant_id, ADMIN).await?;
        let (package, signed) = release("0.2.0", 100);
        let (status, _) = s.json(upload(&ga, package, Some(&signed))?).await?;
        assert_eq!(status, 200);
        let target = passthru_proto::release::this_target();
        let ask = |version: &'static str| {
            let state = s.state.clone();
            let target = target.clone();
            let tenant = s.tenant_id;
            async move {
                crate::agent_releases::answer_check(&state, tenant, Uuid::nil(), version, &target)
                    .await
            }
        };
        assert!(
            matches!(ask("0.1.0").await, CloudToAgent::UpdateOffer { signed_manifest } if signed_manifest == signed.to_json())
        );
        assert!(matches!(ask("0.2.0").await, CloudToAgent::NoUpdate { .. }));
        let put = Request::builder()
            .method("PUT")
            .uri(format!("/{TENANT}/admin/settings/agent_updates"))
            .header("authorization", format!("Bearer {ga}"))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"value":"off"}"#))?;
        let (status, v) = s.json(put).await?;
        assert_eq!(status, 200, "{v}");
        assert!(
            matches!(ask("0.1.0").await, CloudToAgent::NoUpdate { reason } if reason.contains("off"))
        );
        s.done().await
    }
}
