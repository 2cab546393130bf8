//! A federated domain round trip between two real clouds: cloud A ("fabrikam-idp") is the
//! federation identity provider of the domain fab.example, cloud B ("contoso") federates
//! fab.example to it. The browser is driven form by form over reqwest (no automatic redirects,
//! cookies kept by hand per origin): B's username page sends the browser to A, A's pages sign
//! alice in, A answers B's callback, B checks A's ID token and answers the app with a code.
//! Then: tampered and replayed callbacks, an error answer from the identity provider, an
//! issuer that does not match the provider's discovery document, single sign-on at A for a
//! known federated user (same object id), and the conversion of the domain to managed (the
//! username page then leads to the password page). Cloud-only users: no Samba needed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use passthru_testkit::browser::{FormBrowser, Page};
use passthru_testkit::http::verify_with_jwks;
use passthru_testkit::procs::{fresh_dir, recorded_secret, Cloud};
use serde_json::Value;

const APP_REDIRECT: &str = "http://127.0.0.1:9/callback";
const ALICE: &str = "alice@fab.example";

fn pkce() -> (String, String) {
    use sha2::Digest as _;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = B64URL.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn authorize_url(base: &str, client_id: &str, challenge: &str, state: &str, nonce: &str) -> String {
    format!(
        "{base}/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&scope=openid%20profile&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(APP_REDIRECT)
    )
}

/// B's authorize then B's username page with `username`: returns that page's answer.
async fn start_at_b(
    br: &mut FormBrowser,
    b: &Cloud,
    web: &str,
    challenge: &str,
    state: &str,
    nonce: &str,
    username: &str,
) -> anyhow::Result<Page> {
    let first = br
        .get(&authorize_url(&b.url, web, challenge, state, nonce))
        .await?;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.contains("id=\"username\""), "{}", first.body);
    br.post(
        &format!("{}/contoso/login", b.url),
        &[
            ("req", &first.hidden("req")),
            ("csrf", &first.hidden("csrf")),
            ("username", username),
        ],
    )
    .await
}

async fn redeem(
    http: &reqwest::Client,
    b: &Cloud,
    web: &str,
    code: &str,
    verifier: &str,
) -> anyhow::Result<(u16, Value)> {
    let r = http
        .post(format!("{}/contoso/oauth2/v2.0/token", b.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", web),
            ("code", code),
            ("redirect_uri", APP_REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

#[tokio::test(flavor = "multi_thread")]
async fn federated_domain_round_trip_against_a_second_cloud() -> anyhow::Result<()> {
    let dir = fresh_dir("federation")?;
    let (idp_dir, sp_dir) = (dir.join("idp"), dir.join("contoso"));
    std::fs::create_dir_all(&idp_dir)?;
    std::fs::create_dir_all(&sp_dir)?;

    // Cloud A, the identity provider, with the cloud-only user alice@fab.example.
    let a = Cloud::start(
        &idp_dir,
        "fabrikam-idp",
        "admin@fabrikam-idp.example",
        &recorded_secret("Adm1n"),
        "127.0.0.1:0",
    )?;
    a.add_domain(&["fab.example"])?;
    let alice_password = recorded_secret("Al1ce");
    a.add_user(ALICE, &alice_password)?;

    // Cloud B trusts A's TLS CA for its calls to identity providers, and may call A on
    // loopback (`--allow-private-federation`: refused otherwise, see the test below).
    let a_ca = a.ca_file().display().to_string();
    let b = Cloud::start_with(
        &sp_dir,
        "contoso",
        "admin@contoso.example",
        &recorded_secret("Adm1n"),
        "127.0.0.1:0",
        &[("PASSTHRU_FEDERATION_CA_FILE", &a_ca)],
        &["--allow-private-federation"],
    )?;
    let callback = format!("{}/contoso/federation/callback", b.url);

    // B is a confidential app of A.
    let out = a.admin(&[
        "app",
        "add",
        "Passthru",
        "--confidential",
        "--redirect-uri",
        &callback,
    ])?;
    let mut lines = out.lines();
    let upstream_client = lines.next().unwrap_or_default().trim().to_string();
    let upstream_secret = lines.next().unwrap_or_default().trim().to_string();
    assert!(
        !upstream_client.is_empty() && !upstream_secret.is_empty(),
        "{out}"
    );
    let secret_file = dir.join("fabrikam-client-secret");
    std::fs::write(&secret_file, format!("{upstream_secret}\n"))?;
    let secret_path = secret_file.display().to_string();

    let mut br = FormBrowser::trusting(&[a.ca_file(), b.ca_file()], &b.url)?;
    let http = br.http().clone();
    let discovery: Value = http
        .get(format!(
            "{}/fabrikam-idp/v2.0/.well-known/openid-configuration",
            a.url
        ))
        .send()
        .await?
        .json()
        .await?;
    let issuer = discovery["issuer"].as_str().unwrap_or_default().to_string();
    assert!(issuer.starts_with(&a.url), "{discovery}");

    // The admin side: https issuers only, the secret comes from an existing file.
    let plain = b.admin_as(
        "contoso",
        "admin@contoso.example",
        &b.admin_password,
        &[
            "domain",
            "add",
            "plain.example",
            "--federated",
            "http://idp.example/v2.0",
            "--client-id",
            "x",
            "--client-secret-file",
            &secret_path,
        ],
    )?;
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("https"),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let missing = b.admin_as(
        "contoso",
        "admin@contoso.example",
        &b.admin_password,
        &[
            "domain",
            "add",
            "missing.example",
            "--federated",
            &issuer,
            "--client-id",
            "x",
            "--client-secret-file",
            "/nonexistent/secret",
        ],
    )?;
    assert!(!missing.status.success());
    let added = b.add_domain(&[
        "fab.example",
        "--federated",
        &issuer,
        "--client-id",
        &upstream_client,
        "--client-secret-file",
        &secret_path,
    ])?;
    assert_eq!(added["kind"], "federated", "{added}");
    // An issuer that is not what the provider's discovery document says (tenant name
    // instead of its id): the sign-in must not start.
    b.add_domain(&[
        "fab2.example",
        "--federated",
        &format!("{}/fabrikam-idp/v2.0", a.url),
        "--client-id",
        &upstream_client,
        "--client-secret-file",
        &secret_path,
    ])?;
    let domains = b.admin(&["--json", "domain", "list"])?;
    let v: Value = serde_json::from_str(&domains)?;
    let kind_of = |v: &Value, name: &str| {
        v["domains"]
            .as_array()
            .and_then(|d| d.iter().find(|x| x["name"] == name))
            .map(|x| x["kind"].clone())
    };
    assert_eq!(kind_of(&v, "fab.example"), Some(Value::from("federated")));
    assert!(!domains.contains(&upstream_secret), "no secret in answers");
    assert!(
        !added.to_string().contains(&upstream_secret),
        "no secret in answers"
    );
    let web = b
        .admin(&[
            "app",
            "add",
            "Web",
            "--public",
            "--redirect-uri",
            APP_REDIRECT,
        ])?
        .trim()
        .to_string();

    // B: username -> redirect to A's authorize endpoint.
    let (verifier, challenge) = pkce();
    let to_idp = start_at_b(
        &mut br,
        &b,
        &web,
        &challenge,
        "app-state-1",
        "app-nonce-1",
        ALICE,
    )
    .await?;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let idp_url = to_idp.location();
    assert!(
        idp_url.starts_with(&format!("{}/", a.url)) && idp_url.contains("/oauth2/v2.0/authorize?"),
        "{idp_url}"
    );
    let q = to_idp.query();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    assert_eq!(get("client_id"), upstream_client);
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("redirect_uri"), callback);
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("login_hint"), ALICE);
    assert!(get("scope").split(' ').any(|s| s == "openid"));
    assert!(get("nonce").len() >= 32 && get("state").len() >= 32);
    assert!(get("code_challenge").len() >= 43);
    let binding = to_idp
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-passthru_federation.contoso="))
        .unwrap_or_default();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/;"] {
        assert!(binding.contains(attr), "{binding}");
    }

    // A: its own username and password pages (the hint is filled in).
    let idp_first = br.get(&idp_url).await?;
    assert_eq!(idp_first.status, 200, "{}", idp_first.body);
    assert!(
        idp_first.body.contains(&format!("value=\"{ALICE}\"")),
        "{}",
        idp_first.body
    );
    let (req, csrf) = (idp_first.hidden("req"), idp_first.hidden("csrf"));
    let idp_pw = br
        .post(
            &format!("{}/fabrikam-idp/login", a.url),
            &[("req", &req), ("csrf", &csrf), ("username", ALICE)],
        )
        .await?;
    assert_eq!(idp_pw.status, 200, "{}", idp_pw.body);
    assert!(idp_pw.body.contains("type=\"password\""));
    let back = br
        .post(
            &format!("{}/fabrikam-idp/login/password", a.url),
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("password", &alice_password),
            ],
        )
        .await?;
    assert_eq!(back.status, 303, "{}", back.body);
    let back_url = back.location();
    assert!(back_url.starts_with(&format!("{callback}?")), "{back_url}");
    assert!(back.query().contains_key("code"));
    assert_eq!(back.query().get("state"), Some(&get("state")));

    // A tampered state is refused (and does not spoil the real one).
    let mut tampered = url::Url::parse(&back_url)?;
    let pairs: Vec<(String, String)> = tampered
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(&pairs);
    let t = br.get(tampered.as_str()).await?;
    assert_eq!(t.status, 403, "{}", t.body);
    assert!(t.location().is_empty());

    // The real callback: B redeems A's code, checks the ID token, answers the app.
    let done = br.get(&back_url).await?;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(
        done.location().starts_with(APP_REDIRECT),
        "{}",
        done.location()
    );
    assert_eq!(
        done.query().get("state").map(String::as_str),
        Some("app-state-1")
    );
    let code = done.query().get("code").cloned().unwrap_or_default();
    assert!(
        done.set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-passthru_session=") && c.contains("HttpOnly")),
        "B starts its own session"
    );

    // The same callback again: refused.
    let replay = br.get(&back_url).await?;
    assert_eq!(replay.status, 403, "{}", replay.body);
    assert!(replay.location().is_empty());

    // The app redeems B's code (PKCE) and gets B's ID token for alice.
    let (st, tokens) = redeem(&http, &b, &web, &code, &verifier).await?;
    assert_eq!(st, 200, "{tokens}");
    let claims = verify_with_jwks(
        &http,
        &b.url,
        "contoso",
        tokens["id_token"].as_str().unwrap_or_default(),
        &web,
    )
    .await?;
    assert_eq!(claims["preferred_username"], ALICE, "{claims}");
    assert_eq!(claims["nonce"], "app-nonce-1");
    assert!(
        claims["iss"]
            .as_str()
            .is_some_and(|i| i.starts_with(&b.url) && i != issuer),
        "{claims}"
    );
    let oid = claims["oid"].clone();
    let users: Value = serde_json::from_str(&b.admin(&["--json", "user", "list"])?)?;
    let alice = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|x| x["upn"] == ALICE))
        .cloned()
        .unwrap_or_default();
    assert_eq!(alice["source"], "federated", "{users}");
    assert_eq!(alice["id"], oid);

    // Sign out of B only; alice, now known to B, goes to A again, where single sign-on
    // answers at once; she is the same user (keyed by issuer and subject).
    let out = br
        .sign_out(&format!("{}/contoso/oauth2/v2.0/logout", b.url))
        .await?;
    assert_eq!(out.status, 200, "{}", out.body);
    let (verifier, challenge) = pkce();
    let to_idp = start_at_b(
        &mut br,
        &b,
        &web,
        &challenge,
        "app-state-2",
        "app-nonce-2",
        ALICE,
    )
    .await?;
    assert_eq!(to_idp.status, 303, "{}", to_idp.body);
    let sso = br.get(&to_idp.location()).await?;
    assert_eq!(sso.status, 303, "A's session answers at once: {}", sso.body);
    assert!(sso.location().starts_with(&callback), "{}", sso.location());
    let done = br.get(&sso.location()).await?;
    let code = done.query().get("code").cloned().unwrap_or_default();
    let (st, tokens) = redeem(&http, &b, &web, &code, &verifier).await?;
    assert_eq!(st, 200, "{tokens}");
    let claims = verify_with_jwks(
        &http,
        &b.url,
        "contoso",
        tokens["id_token"].as_str().unwrap_or_default(),
        &web,
    )
    .await?;
    assert_eq!(claims["oid"], oid, "the same federated user");
    assert_eq!(claims["nonce"], "app-nonce-2");

    // A callback in a browser that did not start the round trip (no binding cookie): refused.
    br.sign_out(&format!("{}/contoso/oauth2/v2.0/logout", b.url))
        .await?;
    let (_, challenge) = pkce();
    let to_idp = start_at_b(&mut br, &b, &web, &challenge, "s6", "n6", ALICE).await?;
    let up_state = to_idp.query().get("state").cloned().unwrap_or_default();
    let mut other = FormBrowser::trusting(&[a.ca_file(), b.ca_file()], &b.url)?;
    let foreign = other
        .get(&format!(
            "{callback}?code=some-code&state={}",
            urlencode(&up_state)
        ))
        .await?;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert!(
        foreign.body.contains("didn't start in this browser"),
        "{}",
        foreign.body
    );

    // The identity provider answers with an error: our error page, no crash, no redirect.
    let (_, challenge) = pkce();
    let to_idp = start_at_b(&mut br, &b, &web, &challenge, "s3", "n3", ALICE).await?;
    let up_state = to_idp.query().get("state").cloned().unwrap_or_default();
    let err = br
        .get(&format!(
            "{callback}?error=access_denied&error_description=The+user+cancelled&state={}",
            urlencode(&up_state)
        ))
        .await?;
    assert_eq!(err.status, 400, "{}", err.body);
    assert!(err.body.contains("access_denied"), "{}", err.body);
    assert!(err.location().is_empty());
    let bare = br.get(&format!("{callback}?error=server_error")).await?;
    assert_eq!(bare.status, 403, "{}", bare.body);

    // A configured issuer that differs from the provider's: an error page, not a redirect.
    let (_, challenge) = pkce();
    let wrong = start_at_b(
        &mut br,
        &b,
        &web,
        &challenge,
        "s4",
        "n4",
        "alice@fab2.example",
    )
    .await?;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.location().is_empty());
    assert!(
        b.log().contains("discovery document names the issuer"),
        "the log says why"
    );

    // Convert the domain to managed: the username page now asks for the password.
    let converted = b.admin(&["domain", "convert", "fab.example", "--managed"])?;
    assert!(converted.contains("managed"), "{converted}");
    let v: Value = serde_json::from_str(&b.admin(&["--json", "domain", "list"])?)?;
    assert_eq!(kind_of(&v, "fab.example"), Some(Value::from("managed")));
    let (_, challenge) = pkce();
    let pw_page = start_at_b(&mut br, &b, &web, &challenge, "s5", "n5", ALICE).await?;
    assert_eq!(pw_page.status, 200, "{}", pw_page.body);
    assert!(pw_page.location().is_empty());
    assert!(
        pw_page.body.contains("type=\"password\""),
        "{}",
        pw_page.body
    );
    let again = b.admin_as(
        "contoso",
        "admin@contoso.example",
        &b.admin_password,
        &["domain", "convert", "fab.example", "--managed"],
    )?;
    assert!(!again.status.success(), "already managed");

    // No secret in either server's log.
    for (who, log) in [("A", a.log()), ("B", b.log())] {
        assert!(
            !log.contains(&upstream_secret),
            "{who}'s log has the client secret"
        );
        assert!(
            !log.contains(&alice_password),
            "{who}'s log has alice's password"
        );
    }
    Ok(())
}

/// Without `serve --allow-private-federation` the cloud calls identity providers on public
/// addresses only: adding a federated domain whose issuer is on loopback is refused with a
/// clear error, and a domain added while the flag was on cannot start a sign-in once the
/// cloud runs without it (the address is checked when connecting), the log saying why.
#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_identity_provider_is_refused_without_the_flag() -> anyhow::Result<()> {
    let dir = fresh_dir("federation-private")?;
    let (idp_dir, sp_dir) = (dir.join("idp"), dir.join("contoso"));
    std::fs::create_dir_all(&idp_dir)?;
    std::fs::create_dir_all(&sp_dir)?;
    let a = Cloud::start(
        &idp_dir,
        "fabrikam-idp",
        "admin@fabrikam-idp.example",
        &recorded_secret("Adm1n"),
        "127.0.0.1:0",
    )?;
    let a_ca = a.ca_file().display().to_string();
    let mut c = Cloud::start_with_env(
        &sp_dir,
        "contoso",
        "admin@contoso.example",
        &recorded_secret("Adm1n"),
        "127.0.0.1:0",
        &[("PASSTHRU_FEDERATION_CA_FILE", &a_ca)],
    )?;
    let http = passthru_testkit::http::client(&a.ca_file())?;
    let discovery: Value = http
        .get(format!(
            "{}/fabrikam-idp/v2.0/.well-known/openid-configuration",
            a.url
        ))
        .send()
        .await?
        .json()
        .await?;
    let issuer = discovery["issuer"].as_str().unwrap_or_default().to_string();
    assert!(issuer.starts_with("https://127.0.0.1:"), "{discovery}");
    let secret_file = dir.join("client-secret");
    std::fs::write(&secret_file, "not-used-here\n")?;
    let secret_path = secret_file.display().to_string();
    let add = |domain: &str| {
        vec![
            "domain".to_string(),
            "add".into(),
            domain.into(),
            "--federated".into(),
            issuer.clone(),
            "--client-id".into(),
            "client".into(),
            "--client-secret-file".into(),
            secret_path.clone(),
        ]
    };
    let args = add("fab.example");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = c.admin_as("contoso", "admin@contoso.example", &c.admin_password, &args)?;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("127.0.0.1") && err.contains("--allow-private-federation"),
        "{err}"
    );

    // Added while allowed, used after: refused when connecting.
    c.stop();
    c.set_serve_args(&["--allow-private-federation"]);
    c.serve()?;
    let args = add("fab.example");
    let args: Vec<&str> = args[2..].iter().map(String::as_str).collect();
    c.add_domain(&args)?;
    c.stop();
    c.set_serve_args(&[]);
    c.serve()?;
    let web = c
        .admin(&[
            "app",
            "add",
            "Web",
            "--public",
            "--redirect-uri",
            APP_REDIRECT,
        ])?
        .trim()
        .to_string();
    let mut br = FormBrowser::trusting(&[a.ca_file(), c.ca_file()], &c.url)?;
    let (_, challenge) = pkce();
    let page = start_at_b(&mut br, &c, &web, &challenge, "s1", "n1", ALICE).await?;
    assert!(
        page.location().is_empty(),
        "no redirect to the identity provider"
    );
    assert!(page.status >= 400, "{}", page.body);
    let log = c.log();
    assert!(
        log.contains("non-public addresses") && log.contains("--allow-private-federation"),
        "the log says why"
    );
    Ok(())
}
