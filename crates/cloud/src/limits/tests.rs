//! In-process tests of the request limits: the real router and middleware over a real
//! store in a temporary data dir (no network, no agent).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{protect, Limits, RateLimits};
use crate::http::ClientInfo;
use crate::state::Shared;
use crate::store::App;

const TENANT: &str = "contoso";
const APP: &str = "11111111-2222-3333-4444-555555555555";
const REDIRECT: &str = "https://app.test/cb";

struct Cloud {
    state: Shared,
    dir: std::path::PathBuf,
    tenant: Uuid,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Cloud {
    async fn new() -> anyhow::Result<Cloud> {
        let dir = std::env::temp_dir().join(format!("passthru-limits-{}", Uuid::new_v4()));
        let tenant = crate::init::init(
            &dir,
            TENANT,
            "admin@contoso.test",
            Zeroizing::new("Adm1n-Passw0rd!".into()),
            &[],
            None,
        )
        .await?;
        let (store, mfa_box) = crate::init::open_store(&dir, false).await?;
        store
            .add_app(
                &App {
                    client_id: APP.into(),
                    tenant_id: tenant,
                    name: "Test".into(),
                    public: true,
                    redirect_uris: vec![REDIRECT.into()],
                    secret_hash: None,
                    groups_claim: false,
                    ..Default::default()
                },
                crate::clock::unix_now(),
            )
            .await?;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let state = crate::server::app_state(
            &dir,
            store,
            mfa_box,
            &crate::test_app::test_options(),
            shutdown,
        )?;
        Ok(Cloud {
            state,
            dir,
            tenant,
            _stop: stop,
        })
    }

    fn app(&self, limits: &Limits) -> Router {
        protect(
            crate::server::router(self.state.clone()),
            Arc::new(RateLimits::new(limits)),
            self.state.store.clone(),
            limits.body_read_timeout,
        )
    }

    async fn close(self) {
        self.state.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn from(addr: &str) -> ClientInfo {
    ClientInfo {
        addr: addr
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| unreachable!("{addr}")),
        peer_cert_fingerprint: None,
    }
}

fn get(uri: &str, client: &str) -> Request<Body> {
    Request::get(uri)
        .extension(from(client))
        .body(Body::empty())
        .unwrap_or_else(|_| unreachable!())
}

fn post_form(uri: &str, client: &str, body: String) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .extension(from(client))
        .body(Body::from(body))
        .unwrap_or_else(|_| unreachable!())
}

async fn send(
    app: &Router,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Value)> {
    let r = app.clone().oneshot(req).await?;
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.into_body().collect().await?.to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, headers, json))
}

fn device_start() -> String {
    format!("client_id={APP}&scope=openid")
}

fn authorize_uri(extra: &str) -> String {
    format!(
        "/{TENANT}/oauth2/v2.0/authorize?client_id={APP}&response_type=code&redirect_uri={}&code_challenge={}&code_challenge_method=S256{extra}",
        percent_encoding::utf8_percent_encode(REDIRECT, percent_encoding::NON_ALPHANUMERIC),
        "a".repeat(43)
    )
}

#[tokio::test]
async fn a_flooding_address_gets_429_with_retry_after_and_another_is_served() -> anyhow::Result<()>
{
    let cloud = Cloud::new().await?;
    let limits = Limits {
        per_address_rate: 1,
        per_address_burst: 20,
        ..Limits::default()
    };
    let app = cloud.app(&limits);
    // 200 parallel discovery requests from one address: 20 pass, the rest get 429.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        flood.push(tokio::spawn(async move {
            send(
                &app,
                get(
                    &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
                    "127.0.0.5:4000",
                ),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut throttled = Vec::new();
    for f in flood {
        let (status, headers, body) = f.await??;
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => throttled.push((headers, body)),
            other => anyhow::bail!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ok, 20);
    assert_eq!(throttled.len(), 180);
    let (headers, body) = &throttled[0];
    let retry: u64 = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(body["error_codes"][0], 90055);
    let d = body["error_description"].as_str().unwrap_or("");
    assert!(
        d.starts_with("AADSTS90055: ") && d.contains("client address"),
        "{d}"
    );
    for key in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[key].is_string(), "{key} missing: {body}");
    }
    // Another address is served; so is the admin API's own path (not limited here).
    let (status, _, _) = send(
        &app,
        get(
            &format!("/{TENANT}/v2.0/.well-known/openid-configuration"),
            "127.0.0.6:4000",
        ),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(&app, get("/healthz", "127.0.0.5:4000")).await?;
    assert_eq!(status, StatusCode::OK);
    cloud.close().await;
    Ok(())
}

#[tokio::test]
async fn a_tenant_over_its_rate_gets_429_whatever_the_address() -> anyhow::Result<()> {
    let cloud = Cloud::new().await?;
    let limits = Limits {
        per_tenant_rate: 1,
        per_tenant_burst: 10,
        ..Limits::default()
    };
    let app = cloud.app(&limits);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let (s, _, body) = send(
            &app,
            get(
                &format!("/{TENANT}/discovery/v2.0/keys"),
                &format!("10.0.0.{i}:1"),
            ),
        )
        .await?;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert!(body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("organization"));
        }
        statuses.push(s);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        10
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        20
    );
    cloud.close().await;
    Ok(())
}

#[tokio::test]
async fn fields_over_their_maximum_get_a_clear_400() -> anyhow::Result<()> {
    let cloud = Cloud::new().await?;
    let app = cloud.app(&Limits::default());
    let cases = [
        ("state", "state", 4096),
        ("nonce", "nonce", 1024),
        ("login_hint", "login_hint", 320),
        ("scope", "scope", 2048),
    ];
    for (param, name, max) in cases {
        let uri = authorize_uri(&format!("&{param}={}", "x".repeat(max + 1)));
        let (status, _, body) = send(&app, get(&uri, "127.0.0.1:1")).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{param}: {body}");
        assert_eq!(body["error"], "invalid_request");
        let d = body["error_description"].as_str().unwrap_or("");
        assert!(
            d.contains(&format!(
                "'{name}' is longer than its maximum of {max} bytes"
            )),
            "{d}"
        );
        // At the maximum, the request goes through (the sign-in page).
        let uri = authorize_uri(&format!("&{param}={}", "x".repeat(max)));
        let (status, _, _) = send(&app, get(&uri, "127.0.0.1:1")).await?;
        assert_eq!(status, StatusCode::OK, "{param} at its maximum");
    }
    // Form bodies: the token endpoint's user name and code verifier, the device's user code.
    for (uri, form, name) in [
        (
            format!("/{TENANT}/oauth2/v2.0/token"),
            format!("grant_type=password&client_id={APP}&username={}&password=x", "u".repeat(321)),
            "username",
        ),
        (
            format!("/{TENANT}/oauth2/v2.0/token"),
            format!("grant_type=authorization_code&client_id={APP}&code=c&redirect_uri=r&code_verifier={}", "v".repeat(129)),
            "code_verifier",
        ),
        (
            format!("/{TENANT}/oauth2/v2.0/token"),
            format!("grant_type=password&client_id={}&username=a&password=b", "c".repeat(257)),
            "client_id",
        ),
        (
            format!("/{TENANT}/devicelogin"),
            format!("csrf=a&user_code={}", "B".repeat(65)),
            "user_code",
        ),
        (
            format!("/{TENANT}/password/reset"),
            format!("username={}", "u".repeat(321)),
            "username",
        ),
    ] {
        let (status, _, body) = send(&app, post_form(&uri, "127.0.0.1:1", form)).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {name}: {body}");
        let d = body["error_description"].as_str().unwrap_or("");
        assert!(d.contains(&format!("'{name}'")), "{d}");
        // Never the value.
        assert!(!d.contains("uuuuuuuu") && !d.contains("vvvvvvvv"), "{d}");
    }
    // The user name of MSAL's realm discovery, in the path.
    let (status, _, body) = send(
        &app,
        get(
            &format!("/common/userrealm/{}@contoso.test", "u".repeat(320)),
            "127.0.0.1:1",
        ),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    cloud.close().await;
    Ok(())
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() -> anyhow::Result<()> {
    let cloud = Cloud::new().await?;
    let app = cloud.app(&Limits::default());
    let big = format!(
        "grant_type=password&x={}",
        "a".repeat(super::MAX_BODY_BYTES)
    );
    for path in [
        "oauth2/v2.0/token",
        "login",
        "password/reset",
        "oauth2/v2.0/devicecode",
    ] {
        let (status, _, body) = send(
            &app,
            post_form(&format!("/{TENANT}/{path}"), "127.0.0.1:1", big.clone()),
        )
        .await?;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("65536 bytes"),
            "{body}"
        );
    }
    cloud.close().await;
    Ok(())
}

/// An agent release's upload may be larger than every other body (its own limit): the
/// body reader lets it through to the admin API (which refuses it here: no token); the same
/// body elsewhere is 413.
#[tokio::test]
async fn a_release_upload_has_a_limit_of_its_own() -> anyhow::Result<()> {
    let cloud = Cloud::new().await?;
    let app = cloud.app(&Limits::default());
    let big = vec![b'p'; 4 * super::MAX_BODY_BYTES];
    let post = |path: &str| -> anyhow::Result<Request<Body>> {
        let mut r = Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/octet-stream")
            .header("content-length", big.len().to_string())
            .body(Body::from(big.clone()))?;
        r.extensions_mut().insert(ClientInfo {
            addr: "127.0.0.1:1".parse()?,
            peer_cert_fingerprint: None,
        });
        Ok(r)
    };
    let (status, _, body) = send(&app, post(&format!("/{TENANT}/admin/agents/releases"))?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = send(&app, post(&format!("/{TENANT}/admin/users"))?).await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let get = axum::http::Method::GET;
    let post_m = axum::http::Method::POST;
    assert!(super::is_release_upload(
        &post_m,
        "/contoso/admin/agents/releases"
    ));
    assert!(!super::is_release_upload(
        &get,
        "/contoso/admin/agents/releases"
    ));
    assert!(!super::is_release_upload(
        &post_m,
        "/contoso/admin/agents/releases/0.2.0"
    ));
    assert!(!super::is_release_upload(&post_m, "/contoso/admin/agents"));
    assert!(!super::is_release_upload(
        &post_m,
        "//admin/agents/releases"
    ));
    cloud.close().await;
    Ok(())
}

/// A flood of 10,000 unauthenticated starts (device codes, authorization requests, password
/// reset flows), 200 at a time: rows pile up, then every one goes once they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_starts_are_purged_once_expired() -> anyhow::Result<()> {
    let cloud = Cloud::new().await?;
    let app = cloud.app(&Limits {
        per_address_rate: 0,
        per_tenant_rate: 0,
        ..Limits::default()
    });
    let mut done = 0;
    while done < 8_000 {
        let mut batch = Vec::new();
        for i in 0..200 {
            let app = app.clone();
            batch.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    send(
                        &app,
                        post_form(
                            &format!("/{TENANT}/oauth2/v2.0/devicecode"),
                            "127.0.0.9:1",
                            device_start(),
                        ),
                    )
                    .await
                } else {
                    send(&app, get(&authorize_uri("&state=s"), "127.0.0.9:1")).await
                }
            }));
        }
        for b in batch {
            let (status, _, body) = b.await??;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        done += 200;
    }
    let store = &cloud.state.store;
    let now = crate::clock::unix_now();
    for i in 0..2_000 {
        let flow = crate::store::writeback::ResetFlow {
            tenant_id: cloud.tenant,
            user_id: Uuid::new_v4(),
            csrf: "c".into(),
            verified: false,
            wrong_codes: 0,
        };
        store
            .start_reset_flow(&format!("h{i}"), &flow, now + 900)
            .await?;
    }
    assert_eq!(store.count_rows("device_codes").await?, 4_000);
    assert_eq!(store.count_rows("authz_requests").await?, 4_000);
    assert_eq!(store.count_rows("password_reset_flows").await?, 2_000);
    // Nothing is purged before it expires...
    store.purge_expired(now).await?;
    assert_eq!(store.count_rows("device_codes").await?, 4_000);
    // ...and everything once it has.
    let removed = store.purge_expired(now + 3_600).await?;
    assert!(removed >= 10_000, "{removed}");
    for table in ["device_codes", "authz_requests", "password_reset_flows"] {
        assert_eq!(store.count_rows(table).await?, 0, "{table}");
    }
    for table in crate::store::housekeeping::EXPIRING_TABLES {
        assert_eq!(store.count_rows(table).await?, 0, "{table}");
    }
    cloud.close().await;
    Ok(())
}

/// A tenant's tables of sign-ins in progress are capped: past the cap a start gets 429 with
/// `Retry-After` and a sentence saying why; the cap holds under 300 parallel starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_rows_are_capped_per_tenant() -> anyhow::Result<()> {
    let cloud = Cloud::new().await?;
    cloud.state.store.set_pending_rows_per_tenant(100);
    let app = cloud.app(&Limits::default());
    let mut starts = Vec::new();
    for _ in 0..300 {
        let app = app.clone();
        starts.push(tokio::spawn(async move {
            send(
                &app,
                post_form(
                    &format!("/{TENANT}/oauth2/v2.0/devicecode"),
                    "127.0.0.9:1",
                    device_start(),
                ),
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for s in starts {
        let (status, headers, body) = s.await??;
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                assert_eq!(
                    headers.get("retry-after").and_then(|v| v.to_str().ok()),
                    Some("60")
                );
                let d = body["error_description"].as_str().unwrap_or("");
                assert!(d.contains("100 device code sign-ins in progress"), "{d}");
            }
            other => anyhow::bail!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((ok, refused), (100, 200));
    assert_eq!(cloud.state.store.count_rows("device_codes").await?, 100);
    // Authorization requests have their own cap: a browser page with 429.
    // Authorization requests run on the SQLite store's request-thread path: the cap holds
    // under 300 parallel starts there too.
    let mut starts = Vec::new();
    for _ in 0..300 {
        let app = app.clone();
        starts.push(tokio::spawn(async move {
            send(&app, get(&authorize_uri(""), "127.0.0.9:1")).await
        }));
    }
    let mut ok = 0;
    for s in starts {
        let (status, _, _) = s.await??;
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(ok, 100);
    let r = app
        .clone()
        .oneshot(get(&authorize_uri(""), "127.0.0.9:1"))
        .await?;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = String::from_utf8_lossy(&r.into_body().collect().await?.to_bytes()).to_string();
    assert!(
        page.contains("90055") && page.contains("100 sign-ins in progress"),
        "{page}"
    );
    cloud.close().await;
    Ok(())
}
