//! Rate limits and resource bounds end to end (issue 15, item 3): the real `passthru-cloud`
//! process over real TLS; the sign-in test adds the real agent and a real Samba forest.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use passthru_testkit::bed;
use passthru_testkit::fixture::{PtaSetup, ADMIN_UPN, ANY_PORT, TENANT};
use passthru_testkit::http::{password_grant, tls_trusting, DEFAULT_SCOPE};
use passthru_testkit::procs::{fresh_dir, recorded_secret, Cloud};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A reqwest client trusting the cloud's CA whose connections leave from `source`.
fn client_from(ca_file: &std::path::Path, source: &str) -> anyhow::Result<reqwest::Client> {
    let source: IpAddr = source.parse()?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls_trusting(&[ca_file.to_path_buf()])?)
        .local_address(source)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// 127.0.0.5 floods the token endpoint with 300 concurrent password grants while 127.0.0.6
/// signs in as usual: the flooder gets 429 (AADSTS90055, `Retry-After`) past its burst, the
/// other address's every sign-in succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_address_does_not_stop_another_from_signing_in() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let t = PtaSetup::new(&fresh_dir("limits-flood")?, &corp)
        .serve_args(&[
            "--rate-limit-per-address",
            "5",
            "--rate-burst-per-address",
            "20",
        ])
        .start()?;
    let client_id = t.client_id()?.to_string();
    let good = corp.user("good")?;
    let ca = t.cloud.ca_file();
    let flooder = client_from(&ca, "127.0.0.5")?;
    let user = client_from(&ca, "127.0.0.6")?;

    let mut flood = Vec::new();
    for _ in 0..300 {
        let (http, url, client_id) = (flooder.clone(), t.cloud.url.clone(), client_id.clone());
        let nobody = format!("nobody@{}", corp.upn_suffix);
        flood.push(tokio::spawn(async move {
            password_grant(
                &http,
                &url,
                TENANT,
                &client_id,
                &nobody,
                "Wr0ng-Pass!",
                DEFAULT_SCOPE,
            )
            .await
        }));
    }
    // Meanwhile, the other address signs in ten times.
    for _ in 0..10 {
        let r = password_grant(
            &user,
            &t.cloud.url,
            TENANT,
            &client_id,
            &good.upn,
            &good.password,
            DEFAULT_SCOPE,
        )
        .await?;
        assert!(
            r.ok(),
            "127.0.0.6's sign-in failed during the flood: {} {}",
            r.status,
            r.body
        );
    }
    let mut throttled = 0;
    let mut passed = 0;
    for f in flood {
        let r = f.await??;
        if r.status == 429 {
            throttled += 1;
            assert_eq!(r.code(), Some(90055), "{}", r.body);
            assert_eq!(r.body["error"], "temporarily_unavailable");
        } else {
            passed += 1;
            // The requests let through are wrong passwords of one name sent at once: the
            // first ones are counted by smart lockout (50126), and once the name locks the
            // others waiting for a place get 50053.
            assert!(matches!(r.code(), Some(50126 | 50053)), "{}", r.body);
        }
    }
    // The burst and what the rate refilled while the flood lasted; the rest refused.
    assert!(
        throttled >= 250,
        "only {throttled} of 300 throttled ({passed} passed)"
    );
    // The 429 carries Retry-After. The bucket refilled while the other address signed in,
    // so a quick burst (more than the burst size) empties it again first.
    let mut refused = None;
    for _ in 0..60 {
        let r = flooder
            .post(format!("{}/{TENANT}/oauth2/v2.0/token", t.cloud.url))
            .form(&[
                ("grant_type", "password"),
                ("client_id", client_id.as_str()),
            ])
            .send()
            .await?;
        if r.status().as_u16() == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status().as_u16(), 400, "a form without a user name");
    }
    let r = refused.context("60 quick requests past a burst of 20 were never refused")?;
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(retry >= 1, "Retry-After {retry}");
    // After the wait, the flooder is served again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let r = password_grant(
        &flooder,
        &t.cloud.url,
        TENANT,
        &client_id,
        &good.upn,
        &good.password,
        DEFAULT_SCOPE,
    )
    .await?;
    assert!(r.ok(), "{} {}", r.status, r.body);
    Ok(())
}

/// Raw TLS to the cloud.
async fn tls_to(
    cloud: &Cloud,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut cfg = tls_trusting(&[cloud.ca_file()])?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(&cloud.listen).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    Ok(connector.connect(name, tcp).await?)
}

/// Sends `parts` one every `pace` until the server closes the connection (or 30 s pass);
/// returns how long the connection lasted and what the server said.
async fn trickle(
    cloud: &Cloud,
    parts: &[&[u8]],
    pace: Duration,
) -> anyhow::Result<(Duration, String)> {
    let mut s = tls_to(cloud).await?;
    let started = Instant::now();
    let mut answer = Vec::new();
    'outer: for part in parts.iter().cycle() {
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        if s.write_all(part).await.is_err() || s.flush().await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::sleep(pace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                n = s.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break 'outer,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = &mut deadline => break,
            }
        }
    }
    Ok((
        started.elapsed(),
        String::from_utf8_lossy(&answer).to_string(),
    ))
}

/// A client that trickles its headers, or its body, or that sends an oversized body, is
/// dropped within seconds; an idle HTTP/1 connection is closed too.
#[tokio::test(flavor = "multi_thread")]
async fn slow_and_oversized_requests_are_dropped() -> anyhow::Result<()> {
    let dir = fresh_dir("limits-slow")?;
    let cloud = Cloud::start_with(
        &dir,
        TENANT,
        ADMIN_UPN,
        &recorded_secret("Adm1n"),
        ANY_PORT,
        &[],
        &[
            "--header-read-timeout-seconds",
            "2",
            "--body-read-timeout-seconds",
            "2",
            "--idle-timeout-seconds",
            "3",
        ],
    )
    .context("starting the cloud")?;
    let pace = Duration::from_millis(300);

    // Headers, one byte at a time.
    let head = format!("POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
    let bytes: Vec<&[u8]> = head
        .as_bytes()
        .chunks(1)
        .chain(std::iter::repeat_n(&b"a"[..], 200))
        .collect();
    let (lasted, _) = trickle(&cloud, &bytes, pace).await?;
    assert!(
        lasted < Duration::from_secs(5),
        "a trickle of headers held the connection {lasted:?}"
    );

    // Complete headers, then a body one byte at a time: 408 and the connection closed.
    let head = format!(
        "POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
    );
    let mut parts: Vec<&[u8]> = vec![head.as_bytes()];
    parts.extend(std::iter::repeat_n(&b"a"[..], 200));
    let (lasted, answer) = trickle(&cloud, &parts, pace).await?;
    assert!(
        lasted < Duration::from_secs(5),
        "a trickle of body held the connection {lasted:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("9002313"), "{answer}");

    // A body declared over the limit: 413 at once, from the headers alone.
    let head = format!(
        "POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\n"
    );
    let (lasted, answer) = trickle(&cloud, &[head.as_bytes()], Duration::from_secs(1)).await?;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(lasted < Duration::from_secs(5), "{lasted:?}");

    // A keep-alive connection that sends nothing after its request is closed.
    let get = format!(
        "GET /{TENANT}/v2.0/.well-known/openid-configuration HTTP/1.1\r\nHost: localhost\r\n\r\n"
    );
    let mut s = tls_to(&cloud).await?;
    s.write_all(get.as_bytes()).await?;
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "an idle connection stayed open");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// The per-address connection cap: past it, connections are closed before the handshake,
/// and other addresses still connect.
#[tokio::test(flavor = "multi_thread")]
async fn connections_per_address_are_capped() -> anyhow::Result<()> {
    let dir = fresh_dir("limits-conns")?;
    let cloud = Cloud::start_with(
        &dir,
        TENANT,
        ADMIN_UPN,
        &recorded_secret("Adm1n"),
        ANY_PORT,
        &[],
        &["--max-connections-per-address", "5"],
    )?;
    let mut cfg = tls_trusting(&[cloud.ca_file()])?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let connect = |source: &'static str| {
        let connector = connector.clone();
        let target = cloud.listen.clone();
        async move {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{source}:0").parse()?)?;
            let tcp = sock.connect(target.parse()?).await?;
            let name = rustls::pki_types::ServerName::try_from("localhost")?;
            anyhow::Ok(connector.connect(name, tcp).await?)
        }
    };
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect("127.0.0.7").await?);
    }
    assert!(
        connect("127.0.0.7").await.is_err(),
        "a sixth connection from one address was accepted"
    );
    assert!(
        connect("127.0.0.8").await.is_ok(),
        "another address was refused"
    );
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        connect("127.0.0.7").await.is_ok(),
        "a freed place was not given back"
    );
    Ok(())
}
