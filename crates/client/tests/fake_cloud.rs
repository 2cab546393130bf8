//! `CloudClient` against a small fake cloud on 127.0.0.1 (TLS with a throwaway CA).

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use passthru_client::{ClientError, CloudClient, PollClock, Refresh};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn Error>>;

/// A throwaway directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> std::io::Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "passthru-client-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct FakeCloud {
    url: String,
    ca_pem: String,
}

type Handler = Arc<dyn Fn(&str, &str, &str, &str) -> (u16, String) + Send + Sync>;

/// Serves `handler(method, path, authorization, body)` over TLS on 127.0.0.1.
async fn fake_cloud(
    handler: impl Fn(&str, &str, &str, &str) -> (u16, String) + Send + Sync + 'static,
) -> Result<FakeCloud, Box<dyn Error>> {
    let handler: Handler = Arc::new(handler);
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let server_key = KeyPair::generate()?;
    let server_cert =
        CertificateParams::new(vec!["127.0.0.1".to_string()])?.signed_by(&server_key, &ca)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![server_cert.der().clone()], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                while buf.len() < head_end + length {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                let mut first = head.lines().next().unwrap_or_default().split(' ');
                let method = first.next().unwrap_or_default();
                let path = first.next().unwrap_or_default();
                let (status, answer) = handler(method, path, &header("authorization"), &body);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok(FakeCloud {
        url: format!("https://{addr}"),
        ca_pem: ca.pem(),
    })
}

fn handler(method: &str, path: &str, authorization: &str, body: &str) -> (u16, String) {
    match (method, path) {
        ("POST", "/contoso/oauth2/v2.0/token") => {
            let form: Vec<(String, String)> = url_pairs(body);
            let get = |k: &str| {
                form.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or_default()
            };
            let ok = get("grant_type") == "password"
                && get("client_id") == passthru_proto::admin::ADMIN_CLIENT_ID
                && get("scope") == passthru_proto::admin::ADMIN_SCOPE
                && get("username") == "admin@contoso.example"
                && get("password") == "Right p@ss&=";
            if ok {
                (200, r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#.into())
            } else {
                (400, r#"{"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials due to invalid username or password. Trace ID: t Correlation ID: c Timestamp: 2026-01-01 00:00:00Z","error_codes":[50126],"timestamp":"2026-01-01 00:00:00Z","trace_id":"t","correlation_id":"c"}"#.into())
            }
        }
        ("GET", "/contoso/admin/agents") if authorization == "Bearer tok-1" => {
            (200, r#"{"agents":[]}"#.into())
        }
        ("POST", "/contoso/admin/agents/register") => (
            403,
            r#"{"error":"access_denied","error_description":"'bob@contoso.example' is not allowed to do this: it needs the role GlobalAdministrator or HybridIdentityAdministrator."}"#.into(),
        ),
        ("DELETE", "/contoso/admin/things/1") => (204, String::new()),
        _ => (404, r#"{"error":"not_found","error_description":"no such route"}"#.into()),
    }
}

fn url_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test]
async fn sign_in_and_api_calls() -> TestResult {
    let cloud = fake_cloud(handler).await?;
    let dir = TempDir::new("ok")?;
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &cloud.ca_pem)?;
    let client = CloudClient::new(&format!("{}/", cloud.url), Some(&ca))?;
    assert_eq!(client.base_url(), cloud.url);

    let token = client
        .admin_token("contoso", "admin@contoso.example", "Right p@ss&=")
        .await?;
    assert_eq!(token, "tok-1");

    let wrong = client
        .admin_token("contoso", "admin@contoso.example", "wrong")
        .await;
    assert!(
        matches!(wrong, Err(ClientError::Rejected { code: 50126, ref description }) if description.starts_with("AADSTS50126:")),
        "{wrong:?}"
    );

    let agents: serde_json::Value = client.get_json("/contoso/admin/agents", &token).await?;
    assert!(agents["agents"].is_array());

    let denied: Result<serde_json::Value, _> = client
        .post_json(
            "/contoso/admin/agents/register",
            &token,
            &serde_json::json!({}),
        )
        .await;
    assert!(
        matches!(denied, Err(ClientError::Api { status: 403, ref description, .. }) if description.contains("needs the role")),
        "{denied:?}"
    );
    assert_eq!(
        client.delete("/contoso/admin/things/1", &token).await?,
        serde_json::Value::Null
    );
    Ok(())
}

#[tokio::test]
async fn untrusted_certificate_is_told_apart_from_unreachable() -> TestResult {
    let cloud = fake_cloud(handler).await?;
    // Trust another CA than the one that issued the server's certificate.
    let other = fake_cloud(handler).await?;
    let dir = TempDir::new("untrusted")?;
    let ca = dir.0.join("other-ca.pem");
    std::fs::write(&ca, &other.ca_pem)?;
    let client = CloudClient::new(&cloud.url, Some(&ca))?;
    let err = client.admin_token("contoso", "a@b", "x").await;
    assert!(
        matches!(err, Err(ClientError::UntrustedCertificate { .. })),
        "{err:?}"
    );
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("certificate is not trusted") && text.contains("--ca-file"));

    // A port where nothing listens.
    let spare = TcpListener::bind("127.0.0.1:0").await?;
    let addr = spare.local_addr()?;
    drop(spare);
    let client = CloudClient::new(&format!("https://{addr}"), Some(&ca))?;
    let err = client.get_json::<serde_json::Value>("/x", "t").await;
    assert!(
        matches!(err, Err(ClientError::Unreachable { .. })),
        "{err:?}"
    );
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("cannot reach the cloud"), "{text}");
    Ok(())
}

#[tokio::test]
async fn a_bad_ca_file_is_a_clear_error() -> TestResult {
    let dir = TempDir::new("badca")?;
    let missing = dir.0.join("missing.pem");
    let err = CloudClient::new("https://127.0.0.1:1", Some(&missing)).err();
    assert!(matches!(err, Some(ClientError::Io { .. })), "{err:?}");
    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n")?;
    let err = CloudClient::new("https://127.0.0.1:1", Some(&empty)).err();
    assert!(matches!(err, Some(ClientError::Config(_))), "{err:?}");
    Ok(())
}

/// A CONNECT proxy on 127.0.0.1 for one test: answers each CONNECT with `answer` unless it is
/// 200, in which case it checks `Proxy-Authorization` against `authorization` (407 when it
/// differs) and then relays bytes to the target. Sends each request head it read on `heads`.
async fn fake_proxy(
    answer: u16,
    authorization: Option<&'static str>,
) -> Result<(String, tokio::sync::mpsc::UnboundedReceiver<String>), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let _ = tx.send(head.clone());
                let target = head.split(' ').nth(1).unwrap_or_default().to_string();
                let sent = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("proxy-authorization")
                        .then(|| v.trim().to_string())
                });
                let status = match answer {
                    200 if authorization.is_some() && sent.as_deref() != authorization => 407,
                    other => other,
                };
                if status != 200 {
                    let _ = client
                        .write_all(
                            format!("HTTP/1.1 {status} No\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    Ok((url, rx))
}

fn proxy_route(url: &str, basic_auth: Option<(&str, &str)>) -> passthru_client::Route {
    passthru_client::Route::Proxy(passthru_client::ProxyRoute {
        url: url.to_string(),
        basic_auth: basic_auth
            .map(|(u, p)| (u.to_string(), zeroize::Zeroizing::new(p.to_string()))),
        authentication_hint: "check the proxy credentials file".to_string(),
    })
}

#[tokio::test]
async fn through_a_proxy_tls_runs_end_to_end_and_refusals_name_the_proxy() -> TestResult {
    let cloud = fake_cloud(handler).await?;
    let dir = TempDir::new("proxy")?;
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &cloud.ca_pem)?;
    let authority = cloud.url.trim_start_matches("https://").to_string();

    // basic auth "u:p@ss" = "dTpwQHNz"
    let (proxy, mut heads) = fake_proxy(200, Some("Basic dTpwQHNz")).await?;
    let client = CloudClient::with_route(
        &cloud.url,
        Some(&ca),
        proxy_route(&proxy, Some(("u", "p@ss"))),
    )?;
    let token = client
        .admin_token("contoso", "admin@contoso.example", "Right p@ss&=")
        .await?;
    assert_eq!(token, "tok-1");
    let head = heads.recv().await.unwrap_or_default();
    assert!(
        head.starts_with(&format!("CONNECT {authority} HTTP/1.1\r\n")),
        "{head}"
    );
    assert!(!format!("{client:?}").contains("p@ss"));

    // Wrong or missing credentials: 407, with the caller's hint.
    for auth in [Some(("u", "wrong")), None] {
        let client = CloudClient::with_route(&cloud.url, Some(&ca), proxy_route(&proxy, auth))?;
        let err = client.admin_token("contoso", "a@b", "x").await;
        assert!(
            matches!(err, Err(ClientError::ProxyAuthentication { .. })),
            "{err:?}"
        );
        let text = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains(&proxy)
                && text.contains("407")
                && text.contains("check the proxy credentials file"),
            "{text}"
        );
    }

    // Another refusal.
    let (refusing, _heads) = fake_proxy(403, None).await?;
    let client = CloudClient::with_route(&cloud.url, Some(&ca), proxy_route(&refusing, None))?;
    let err = client.admin_token("contoso", "a@b", "x").await;
    assert!(
        matches!(err, Err(ClientError::ProxyRefused { .. })),
        "{err:?}"
    );
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains(&refusing) && text.contains("allow CONNECT"),
        "{text}"
    );

    // No proxy there.
    let spare = TcpListener::bind("127.0.0.1:0").await?;
    let gone = format!("http://{}", spare.local_addr()?);
    drop(spare);
    let client = CloudClient::with_route(&cloud.url, Some(&ca), proxy_route(&gone, None))?;
    let err = client.admin_token("contoso", "a@b", "x").await;
    assert!(
        matches!(err, Err(ClientError::ProxyUnreachable { .. })),
        "{err:?}"
    );
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains(&format!("cannot reach the proxy {gone}")),
        "{text}"
    );

    // Through the proxy, the cloud's certificate is still checked: an untrusted one is
    // the cloud's problem, not the proxy's.
    let other = fake_cloud(handler).await?;
    let other_ca = dir.0.join("other-ca.pem");
    std::fs::write(&other_ca, &other.ca_pem)?;
    let client = CloudClient::with_route(
        &cloud.url,
        Some(&other_ca),
        proxy_route(&proxy, Some(("u", "p@ss"))),
    )?;
    let err = client.admin_token("contoso", "a@b", "x").await;
    assert!(
        matches!(err, Err(ClientError::UntrustedCertificate { .. })),
        "{err:?}"
    );

    // Direct: no proxy at all.
    let client = CloudClient::with_route(&cloud.url, Some(&ca), passthru_client::Route::Direct)?;
    assert_eq!(
        client
            .admin_token("contoso", "admin@contoso.example", "Right p@ss&=")
            .await?,
        "tok-1"
    );
    Ok(())
}

/// A clock that does not wait: each sleep moves the time on and is recorded.
#[derive(Default)]
struct FakeClock {
    now: Duration,
    slept: Vec<Duration>,
}

impl PollClock for FakeClock {
    fn now(&self) -> Duration {
        self.now
    }
    fn sleep(&mut self, d: Duration) -> impl std::future::Future<Output = ()> + Send {
        self.now += d;
        self.slept.push(d);
        std::future::ready(())
    }
}

/// The form fields of a request body.
fn field(body: &str, key: &str) -> String {
    url_pairs(body)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A fake device flow: the device code answer says `interval` and `expires_in`; the polls are
/// answered in turn by `polls` (its last answer repeats).
async fn device_cloud(
    interval: u64,
    expires_in: u64,
    polls: Vec<(u16, &'static str)>,
) -> Result<(FakeCloud, Arc<AtomicUsize>), Box<dyn Error>> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let cloud = fake_cloud(move |method, path, _, body| match (method, path) {
        ("POST", "/contoso/oauth2/v2.0/devicecode") => {
            let ok = field(body, "client_id") == passthru_proto::admin::ADMIN_CLIENT_ID
                && field(body, "scope")
                    == format!("{} offline_access", passthru_proto::admin::ADMIN_SCOPE);
            if !ok {
                return (400, r#"{"error":"invalid_client","error_description":"AADSTS700016: unknown client","error_codes":[700016]}"#.into());
            }
            (
                200,
                serde_json::json!({
                    "device_code": "dev-secret",
                    "user_code": "BCDF-GHJK",
                    "verification_uri": "https://login.example/contoso/devicelogin",
                    "expires_in": expires_in,
                    "interval": interval,
                    "message": "To sign in, open https://login.example/contoso/devicelogin and enter BCDF-GHJK.",
                })
                .to_string(),
            )
        }
        ("POST", "/contoso/oauth2/v2.0/token") => {
            if field(body, "grant_type") != DEVICE_GRANT
                || field(body, "device_code") != "dev-secret"
                || field(body, "client_id") != passthru_proto::admin::ADMIN_CLIENT_ID
            {
                return (400, r#"{"error":"invalid_grant","error_description":"AADSTS70000: wrong","error_codes":[70000]}"#.into());
            }
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let (status, answer) = polls[n.min(polls.len() - 1)];
            (status, answer.to_string())
        }
        _ => (404, r#"{"error":"not_found","error_description":"no such route"}"#.into()),
    })
    .await?;
    Ok((cloud, count))
}

fn client_of(cloud: &FakeCloud, dir: &TempDir) -> Result<CloudClient, Box<dyn Error>> {
    let ca = dir.0.join("ca.pem");
    std::fs::write(&ca, &cloud.ca_pem)?;
    Ok(CloudClient::new(&cloud.url, Some(&ca))?)
}

const PENDING: (u16, &str) = (
    400,
    r#"{"error":"authorization_pending","error_description":"AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue polling.","error_codes":[70016]}"#,
);
const SLOW_DOWN: (u16, &str) = (
    400,
    r#"{"error":"slow_down","error_description":"AADSTS70016: OAuth 2.0 device flow error. Slow down.","error_codes":[70016]}"#,
);
const TOKENS: (u16, &str) = (
    200,
    r#"{"token_type":"Bearer","access_token":"acc-1","expires_in":3600,"refresh_token":"ref-1"}"#,
);

#[tokio::test]
async fn device_code_polls_at_the_interval_and_slows_down() -> TestResult {
    let (cloud, polls) = device_cloud(2, 900, vec![PENDING, SLOW_DOWN, PENDING, TOKENS]).await?;
    let dir = TempDir::new("device")?;
    let client = client_of(&cloud, &dir)?;
    let code = client.admin_device_code("contoso", Refresh::Wanted).await?;
    assert_eq!(code.user_code, "BCDF-GHJK");
    assert!(code.message.contains("BCDF-GHJK"), "{}", code.message);
    assert_eq!(code.interval, Duration::from_secs(2));
    assert_eq!(code.expires_in, Duration::from_secs(900));
    // The device code is a secret: Debug does not show it.
    assert!(!format!("{code:?}").contains("dev-secret"));
    let mut clock = FakeClock::default();
    let tokens = client
        .admin_device_token("contoso", &code, &mut clock)
        .await?;
    assert_eq!(tokens.access_token.as_str(), "acc-1");
    assert_eq!(
        tokens.refresh_token.as_deref().map(String::as_str),
        Some("ref-1")
    );
    assert_eq!(tokens.expires_in, 3600);
    assert_eq!(polls.load(Ordering::SeqCst), 4);
    // Waits the interval before each poll; after slow_down, 5 s longer from then on.
    let s = |n| Duration::from_secs(n);
    assert_eq!(clock.slept, vec![s(2), s(2), s(7), s(7)]);
    Ok(())
}

#[tokio::test]
async fn device_code_gives_up_when_the_code_expires() -> TestResult {
    let (cloud, polls) = device_cloud(3, 10, vec![PENDING]).await?;
    let dir = TempDir::new("device-expired")?;
    let client = client_of(&cloud, &dir)?;
    let code = client.admin_device_code("contoso", Refresh::Wanted).await?;
    let mut clock = FakeClock::default();
    let err = client
        .admin_device_token("contoso", &code, &mut clock)
        .await;
    assert!(
        matches!(err, Err(ClientError::DeviceCodeExpired { minutes: 1 })),
        "{err:?}"
    );
    // Polled at 3, 6 and 9 s; stopped at the code's end, 10 s, without another poll.
    assert_eq!(polls.load(Ordering::SeqCst), 3);
    assert_eq!(clock.now, Duration::from_secs(10));
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("expired") && text.contains("run the command again"),
        "{text}"
    );

    // The cloud saying so itself (expired_token) ends the polling too, as does a decline.
    for (answer, declined) in [
        (
            (
                400,
                r#"{"error":"expired_token","error_description":"AADSTS70019: Verification code expired.","error_codes":[70019]}"#,
            ),
            false,
        ),
        (
            (
                400,
                r#"{"error":"authorization_declined","error_description":"AADSTS70000: declined"}"#,
            ),
            true,
        ),
    ] {
        let (cloud, polls) = device_cloud(1, 900, vec![PENDING, answer]).await?;
        let client = client_of(&cloud, &dir)?;
        let code = client.admin_device_code("contoso", Refresh::Wanted).await?;
        let err = client
            .admin_device_token("contoso", &code, &mut FakeClock::default())
            .await;
        if declined {
            assert!(matches!(err, Err(ClientError::SignInDeclined)), "{err:?}");
            let text = err.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                text.contains("declined") && text.contains("approve"),
                "{text}"
            );
        } else {
            assert!(
                matches!(err, Err(ClientError::DeviceCodeExpired { minutes: 15 })),
                "{err:?}"
            );
        }
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
    Ok(())
}

#[tokio::test]
async fn a_refresh_token_is_redeemed_and_rotated() -> TestResult {
    let cloud = fake_cloud(|method, path, _, body| match (method, path) {
        ("POST", "/contoso/oauth2/v2.0/token")
            if field(body, "grant_type") == "refresh_token"
                && field(body, "client_id") == passthru_proto::admin::ADMIN_CLIENT_ID =>
        {
            if field(body, "refresh_token") == "ref-1" {
                (200, r#"{"token_type":"Bearer","access_token":"acc-2","expires_in":3600,"refresh_token":"ref-2"}"#.into())
            } else {
                (400, r#"{"error":"invalid_grant","error_description":"AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.","error_codes":[70008]}"#.into())
            }
        }
        _ => (404, r#"{"error":"not_found","error_description":"no such route"}"#.into()),
    })
    .await?;
    let dir = TempDir::new("refresh")?;
    let client = client_of(&cloud, &dir)?;
    let tokens = client.admin_refresh("contoso", "ref-1").await?;
    assert_eq!(tokens.access_token.as_str(), "acc-2");
    assert_eq!(
        tokens.refresh_token.as_deref().map(String::as_str),
        Some("ref-2")
    );
    let used = client.admin_refresh("contoso", "ref-0").await;
    assert!(
        matches!(used, Err(ClientError::Rejected { code: 70008, .. })),
        "{used:?}"
    );
    Ok(())
}
