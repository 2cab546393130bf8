//! Liveness and readiness, served on the management listener next to `/metrics`
//! (`serve --metrics-listen ADDR`):
//!
//! - `GET /healthz`: 200 `ok` while the process serves requests (alive).
//! - `GET /readyz`: 200 `ready` when this instance can serve sign-ins: the store answers a
//!   cheap query within [`STORE_TIMEOUT`], the key that seals the deployment's secrets
//!   (`mfa.key`) is loaded and is the one the store records, and, on an instance with
//!   `--bus`, the bus is connected. Otherwise 503 with one line per problem, e.g.
//!   `store: unreachable` or `bus: disconnected`.

use std::time::Duration;

use axum::http::StatusCode;

use crate::state::Shared;

/// How long the store has to answer the readiness query.
pub(crate) const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`.
pub(crate) async fn readyz(
    axum::extract::State(state): axum::extract::State<Shared>,
) -> (StatusCode, String) {
    let problems = not_ready(&state).await;
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        let mut body = problems.join("\n");
        body.push('\n');
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// What keeps this instance from serving, one short line each (empty: ready).
pub(crate) async fn not_ready(state: &Shared) -> Vec<String> {
    let mut problems = Vec::new();
    // One primary-key read: the store answers, and it holds the check value of the
    // deployment's key, which must be the loaded key's.
    let recorded = tokio::time::timeout(
        STORE_TIMEOUT,
        state.store.meta(crate::store::instances::KEY_CHECK),
    )
    .await;
    match recorded {
        Err(_) => problems.push(format!(
            "store: unreachable (no answer within {} s)",
            STORE_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store failed");
            problems.push("store: unreachable".to_string());
        }
        Ok(Ok(None)) => problems.push("keys: not loaded (the store records no key yet)".into()),
        Ok(Ok(Some(check))) => {
            if check != state.mfa_box.key_check() {
                problems.push("keys: mfa.key is not the deployment's key".into());
            }
        }
    }
    if let Some(cluster) = &state.cluster {
        if !cluster.bus_up() {
            problems.push("bus: disconnected".into());
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use crate::test_state::TestServer;

    async fn get(s: &TestServer, path: &str) -> anyhow::Result<(u16, String)> {
        let app = crate::server::metrics_router(s.state.clone());
        let r = app.oneshot(Request::get(path).body(Body::empty())?).await?;
        let status = r.status().as_u16();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Over a working store whose key check is recorded (as `serve` does), both answer 200;
    /// before the check is recorded, `/readyz` says the keys are not loaded; once the store
    /// fails, `/readyz` answers 503 naming it while `/healthz` stays 200.
    #[tokio::test]
    async fn ready_over_a_working_store_and_not_over_a_failed_one() -> anyhow::Result<()> {
        let s = TestServer::start(None).await?;
        assert_eq!(get(&s, "/healthz").await?, (200, "ok".to_string()));
        let (status, body) = get(&s, "/readyz").await?;
        assert_eq!(status, 503, "{body}");
        assert!(body.starts_with("keys: not loaded"), "{body}");
        s.state
            .store
            .init_meta(
                crate::store::instances::KEY_CHECK,
                &s.state.mfa_box.key_check(),
            )
            .await?;
        assert_eq!(get(&s, "/readyz").await?, (200, "ready\n".to_string()));
        // The build is published with the metrics.
        let (status, metrics) = get(&s, "/metrics").await?;
        assert_eq!(status, 200);
        let line = format!(
            "passthru_build_info{{version=\"{}\",protocol=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            passthru_proto::wire::PROTOCOL_VERSION
        );
        assert!(metrics.contains(&line), "{metrics}");
        // The store fails (its connections are gone).
        s.state.store.close().await;
        let (status, body) = get(&s, "/readyz").await?;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body, "store: unreachable\n");
        assert_eq!(get(&s, "/healthz").await?, (200, "ok".to_string()));
        std::fs::remove_dir_all(&s.dir)?;
        Ok(())
    }

    /// A data dir whose key is not the deployment's is not ready.
    #[tokio::test]
    async fn another_deployments_key_is_not_ready() -> anyhow::Result<()> {
        let s = TestServer::start(None).await?;
        s.state
            .store
            .init_meta(crate::store::instances::KEY_CHECK, "00")
            .await?;
        let (status, body) = get(&s, "/readyz").await?;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body, "keys: mfa.key is not the deployment's key\n");
        s.done().await
    }
}
