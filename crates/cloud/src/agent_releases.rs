//! Signed auto-update, the cloud's side: which release to offer an agent that asks
//! ([`choose`], answered on its connection by [`answer_check`]), and the package download
//! (`GET /{tenant_id}/agent/v1/releases/{version}/package`, [`package`]), authenticated as the
//! agent WebSocket is. The cloud never verifies a release's signature: it has no publisher
//! key; the agent verifies with the one pinned in it.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::Extension;
use passthru_proto::release::{compare_versions, parse_version};
use passthru_proto::wire::CloudToAgent;
use uuid::Uuid;

use crate::agent_auth::{calling_agent, forbidden};
use crate::http::ClientInfo;
use crate::model::settings::AgentUpdates;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::releases::ReleaseInfo;

/// This cloud's version: a release whose `min_cloud_version` is newer is not offered.
pub(crate) const CLOUD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Package downloads one instance serves at once (each holds its package in memory);
/// beyond, 503 with `Retry-After` (the agent tries again at its next check).
pub(crate) const MAX_DOWNLOADS: usize = 4;
/// The pieces a package is sent in.
const CHUNK: usize = 64 * 1024;
/// What a refused download asks the agent to wait, seconds.
const RETRY_AFTER_SECONDS: u64 = 60;

/// Downloads in progress in this process: one permit each.
static DOWNLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_DOWNLOADS);

/// The release to offer an agent running `agent_version` on `agent_target`: among the
/// tenant's releases for that platform that this cloud (`cloud_version`) may offer, the
/// newest; offered when the policy is `auto` and its version is not the agent's. `Err` says
/// why nothing is offered. (A release older than the agent is offered too: the agent
/// refuses it as a downgrade, and says so in its admin log.)
pub(crate) fn choose<'a>(
    releases: &'a [ReleaseInfo],
    policy: AgentUpdates,
    agent_version: &str,
    agent_target: &str,
    cloud_version: &str,
) -> Result<&'a ReleaseInfo, String> {
    if policy == AgentUpdates::Off {
        return Err("agent updates are off for this tenant (settings agent_updates)".into());
    }
    let cloud = parse_version(cloud_version).map_err(|e| format!("the cloud's version {e}"))?;
    let newest = releases
        .iter()
        .filter(|r| r.target == agent_target)
        .filter_map(|r| {
            let v = parse_version(&r.version).ok()?;
            let min = parse_version(&r.min_cloud_version).ok()?;
            (compare_versions(&min, &cloud) != Ordering::Greater).then_some((v, r))
        })
        .max_by(|a, b| compare_versions(&a.0, &b.0));
    let Some((version, release)) = newest else {
        return Err(format!(
            "no release for {agent_target} that this cloud (version {cloud_version}) may offer"
        ));
    };
    let same = parse_version(agent_version)
        .is_ok_and(|own| compare_versions(&own, &version) == Ordering::Equal);
    if same {
        return Err(format!(
            "the agent runs the newest release ({})",
            release.version
        ));
    }
    Ok(release)
}

/// The answer to an agent's `UpdateCheck`.
pub(crate) async fn answer_check(
    state: &Shared,
    tenant_id: Uuid,
    agent_id: Uuid,
    version: &str,
    target: &str,
) -> CloudToAgent {
    let policy = match state.store.tenant(&tenant_id.to_string()).await {
        Ok(Some(t)) => t.settings.agent_updates,
        Ok(None) => AgentUpdates::Off,
        Err(e) => {
            tracing::warn!(agent = %agent_id, error = %e, "cannot read the tenant's settings for an update check");
            return CloudToAgent::NoUpdate {
                reason: "the cloud cannot read its store now; ask again later".into(),
            };
        }
    };
    let releases = if policy == AgentUpdates::Off {
        Vec::new()
    } else {
        match state.store.releases(tenant_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(agent = %agent_id, error = %e, "cannot read the releases for an update check");
                return CloudToAgent::NoUpdate {
                    reason: "the cloud cannot read its store now; ask again later".into(),
                };
            }
        }
    };
    match choose(&releases, policy, version, target, CLOUD_VERSION) {
        Ok(release) => {
            tracing::info!(agent = %agent_id, agent_version = %version, offered = %release.version, "update check: release offered");
            CloudToAgent::UpdateOffer {
                signed_manifest: release.signed_manifest.clone(),
            }
        }
        Err(reason) => {
            tracing::debug!(agent = %agent_id, agent_version = %version, %reason, "update check: nothing offered");
            CloudToAgent::NoUpdate { reason }
        }
    }
}

/// A download slot, given back when dropped.
type Slot = tokio::sync::SemaphorePermit<'static>;

/// A slot when one is free, at once.
fn take_slot() -> Option<Slot> {
    DOWNLOADS.try_acquire().ok()
}

/// `GET /{tenant_id}/agent/v1/releases/{version}/package`: the package, to an agent of the
/// tenant (its client certificate, as on the agent WebSocket) when the tenant's policy is
/// `auto`.
pub async fn package(
    State(state): State<Shared>,
    Path((tenant, version)): Path<(String, String)>,
    Extension(client): Extension<ClientInfo>,
) -> Result<Response, ApiError> {
    let caller = calling_agent(&state, &client, &tenant).await?;
    let agent = &caller.agent;
    let settings = state
        .store
        .tenant(&agent.tenant_id.to_string())
        .await?
        .map(|t| t.settings.agent_updates);
    if settings != Some(AgentUpdates::Auto) {
        return Err(forbidden(
            "Agent updates are off for this tenant (settings agent_updates).",
        ));
    }
    let Some(slot) = take_slot() else {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "This instance is sending as many packages as it may at once; try again later.",
        )
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        return Ok(r);
    };
    let Some(bytes) = state
        .store
        .release_package(agent.tenant_id, &version)
        .await?
    else {
        return Err(ApiError::not_found(format!(
            "This tenant has no release {}.",
            version.chars().take(64).collect::<String>()
        )));
    };
    tracing::info!(agent = %agent.id, tenant = %agent.tenant_id, %version, bytes = bytes.len(), "sending a release's package to an agent");
    let len = bytes.len();
    let bytes = Bytes::from(bytes);
    // The slot is held until the last piece is sent (or the agent goes away).
    let slot = Arc::new(slot);
    let pieces: Vec<Bytes> = (0..len)
        .step_by(CHUNK)
        .map(|at| bytes.slice(at..(at + CHUNK).min(len)))
        .collect();
    let stream = futures_util::stream::iter(pieces.into_iter().map(move |piece| {
        let _held = &slot;
        Ok::<Bytes, std::convert::Infallible>(piece)
    }));
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, target: &str, min_cloud: &str) -> ReleaseInfo {
        ReleaseInfo {
            version: version.into(),
            target: target.into(),
            sha256: "ab".repeat(32),
            size: 1,
            min_cloud_version: min_cloud.into(),
            signed_manifest: format!("signed {version}"),
            added_at: 1,
            added_by: "a".into(),
        }
    }

    const T: &str = "x86_64-linux";

    #[test]
    fn the_newest_release_this_cloud_may_offer_is_offered() {
        let all = vec![
            release("0.2.0", T, "0.1.0"),
            release("0.10.0", T, "0.1.0"),
            release("0.9.0", T, "0.1.0"),
            release("1.0.0-rc.1", T, "0.1.0"),
            // Newer, but for another platform, or for a newer cloud.
            release("2.0.0", "aarch64-linux", "0.1.0"),
            release("3.0.0", T, "0.5.0"),
        ];
        let offered = |agent: &str| {
            choose(&all, AgentUpdates::Auto, agent, T, "0.1.0").map(|r| r.version.clone())
        };
        assert_eq!(offered("0.1.0"), Ok("1.0.0-rc.1".to_string()));
        assert_eq!(
            choose(&all, AgentUpdates::Auto, "0.1.0", T, "0.5.0").map(|r| r.version.clone()),
            Ok("3.0.0".to_string()),
            "a cloud new enough offers it"
        );
        // The agent runs it already.
        assert!(offered("1.0.0-rc.1").is_err_and(|e| e.contains("newest")));
        // Newer than every release: the newest is still offered (the agent refuses it).
        assert_eq!(offered("5.0.0"), Ok("1.0.0-rc.1".to_string()));
        // Policy off: nothing.
        assert!(choose(&all, AgentUpdates::Off, "0.1.0", T, "0.1.0")
            .is_err_and(|e| e.contains("agent_updates")));
        // No release for the platform, or none yet.
        assert!(choose(&all, AgentUpdates::Auto, "0.1.0", "riscv64-linux", "0.1.0").is_err());
        assert!(choose(&[], AgentUpdates::Auto, "0.1.0", T, "0.1.0")
            .is_err_and(|e| e.contains("no release")));
        // A stored row that does not read is passed over, never a panic.
        let odd = vec![release("garbage", T, "0.1.0"), release("0.3.0", T, "x")];
        assert!(choose(&odd, AgentUpdates::Auto, "0.1.0", T, "0.1.0").is_err());
        // This cloud's own version reads.
        assert!(parse_version(CLOUD_VERSION).is_ok());
    }

    /// 200 threads asking at once, each holding what it got until all have asked: exactly
    /// MAX_DOWNLOADS get a slot; once they are given back, slots are free again.
    #[test]
    fn downloads_are_bounded_under_contention() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
        let (tx, rx) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..200)
            .map(|_| {
                let (barrier, tx) = (std::sync::Arc::clone(&barrier), tx.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let slot = take_slot();
                    let _ = tx.send(slot.is_some());
                    // Hold it until every thread has asked.
                    barrier.wait();
                    drop(slot);
                })
            })
            .collect();
        drop(tx);
        let granted = rx.iter().filter(|got| *got).count();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(granted, MAX_DOWNLOADS);
        let again: Vec<Slot> = std::iter::from_fn(take_slot)
            .take(MAX_DOWNLOADS + 2)
            .collect();
        assert_eq!(again.len(), MAX_DOWNLOADS);
    }
}
