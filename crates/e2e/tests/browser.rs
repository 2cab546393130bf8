//! A real browser: headless Chromium, driven by an OpenID Connect relying party built on
//! Authlib (`browser_rp.py`), signs in through the cloud's own pages with the code flow, PKCE
//! (S256), state and nonce, and the RP verifies the ID token's ES256 signature against the JWKS.
//! Then every pass-through failure is signed in the same way and its error page screenshotted
//! (under this test's run dir, kept for inspection) and checked for its text.
//!
//! Needs /usr/bin/chromium, /usr/bin/chromedriver and, for Python, selenium and authlib
//! (`PASSTHRU_NEED_BROWSER=1 bash scripts/deps.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use passthru_testkit::bed;
use passthru_testkit::browser::check_png;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::procs::fresh_dir;
use serde_json::{json, Value};

/// How long one spec (every case of it) may take the RP.
const RP_TIMEOUT: Duration = Duration::from_secs(600);

/// The relying party: `browser_rp.py` as a child process, one JSON line each way.
struct Rp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    log: PathBuf,
}

impl Rp {
    fn start(dir: &Path) -> anyhow::Result<Rp> {
        let log = dir.join("rp.log");
        let mut child = passthru_e2e::chromium::browser_script("browser_rp.py", &log)?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Rp {
            child,
            stdin,
            lines,
            log,
        })
    }

    /// The next line the RP prints, as JSON.
    fn read(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line).with_context(|| format!("RP said: {line}")),
            Err(_) => bail!(
                "the relying party gave no answer; its log ({}):\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    /// Sends one spec and returns the RP's result for it.
    fn run(&mut self, spec: &Value) -> anyhow::Result<Value> {
        let stdin = self.stdin.as_mut().ok_or_else(|| anyhow!("stdin closed"))?;
        writeln!(stdin, "{spec}")?;
        stdin.flush()?;
        self.read(RP_TIMEOUT)
    }

    /// Closes its stdin and waits for it to quit its browser and exit.
    fn finish(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "the relying party failed ({status}): {}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the relying party did not exit")
    }
}

impl Drop for Rp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Ok(None) = self.child.try_wait() {
            // Closing stdin lets it quit Chromium; kill it only if it does not.
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the error page of one case must show.
fn check_error_page(r: &Value, code: u64) -> anyhow::Result<String> {
    let name = r["name"].as_str().unwrap_or("?");
    if r["outcome"] != "error_page" || r["stage"] != "password" {
        bail!("{name}: expected the password page with an error: {r:#}");
    }
    let text = r["text"].as_str().unwrap_or_default();
    let sentence = r["error_sentence"].as_str().unwrap_or_default().trim();
    let expect_code = format!("Error code: AADSTS{code}");
    if !text.contains(&expect_code) {
        bail!("{name}: the page does not say {expect_code:?}: {text:?}");
    }
    let corr = text
        .split_once("Correlation ID: ")
        .and_then(|(_, rest)| rest.get(..36))
        .unwrap_or_default();
    if uuid::Uuid::parse_str(corr).is_err() {
        bail!("{name}: the page shows no correlation id: {text:?}");
    }
    if sentence.len() < 20 || !sentence.ends_with('.') || !text.contains(sentence) {
        bail!("{name}: no readable sentence in #error: {sentence:?}");
    }
    // Still the password page, for the same person; nothing reached the app.
    if r["title"] != "Enter password" || !text.contains(r["username"].as_str().unwrap_or("-")) {
        bail!("{name}: not the password page of this user: {r:#}");
    }
    if r["final_url"]
        .as_str()
        .unwrap_or_default()
        .contains("/callback")
    {
        bail!("{name}: the browser reached the app: {r:#}");
    }
    let (w, h) = check_png(Path::new(r["screenshot"].as_str().unwrap_or_default()))?;
    if w < 800 || h < 500 {
        bail!("{name}: screenshot is only {w}x{h}");
    }
    Ok(sentence.to_string())
}

/// The browser came back to the app with a code and the state it was sent with.
fn reached_app(r: &Value) -> anyhow::Result<()> {
    let name = r["name"].as_str().unwrap_or("?");
    ensure!(
        r["outcome"] != "blocked",
        "{name}: Chromium blocked the way back to the app (Content Security Policy): {:#}\n{r:#}",
        r["console"]
    );
    ensure!(
        r["outcome"] == "callback" && r["state_matches"] == true,
        "{name}: no code reached the app: {r:#}"
    );
    Ok(())
}

/// What a successful sign-in must have shown and yielded.
struct Expected<'a> {
    upn: &'a str,
    client_id: &'a str,
    issuer: &'a str,
    tenant_id: &'a str,
    jwks_kids: &'a Value,
}

fn check_signed_in(r: &Value, want: &Expected<'_>) -> anyhow::Result<()> {
    let name = r["name"].as_str().unwrap_or("?");
    reached_app(r)?;
    let req = &r["request"];
    ensure!(
        req["response_type"] == "code"
            && req["code_challenge_method"] == "S256"
            && req["has_code_challenge"] == true
            && req["nonce_sent"] == true
            && req["state_sent"] == true,
        "{name}: not a code + PKCE S256 + state + nonce request: {req}"
    );
    ensure!(
        r["who"] == want.upn,
        "{name}: password page of {}",
        r["who"]
    );
    ensure!(
        r["id_token_valid"] == true,
        "{name}: ID token refused: {r:#}"
    );
    ensure!(r["nonce_matches"] == true, "{name}: nonce: {r:#}");
    ensure!(r["header"]["alg"] == "ES256", "{name}: alg: {r:#}");
    ensure!(
        want.jwks_kids
            .as_array()
            .is_some_and(|k| k.contains(&r["header"]["kid"])),
        "{name}: the signing key {} is not in the JWKS {}",
        r["header"]["kid"],
        want.jwks_kids
    );
    let c = &r["claims"];
    ensure!(c["iss"] == want.issuer, "{name}: iss: {c}");
    ensure!(c["aud"] == want.client_id, "{name}: aud: {c}");
    ensure!(c["tid"] == want.tenant_id, "{name}: tid: {c}");
    ensure!(c["ver"] == "2.0", "{name}: ver: {c}");
    ensure!(
        c["preferred_username"]
            .as_str()
            .is_some_and(|u| u.eq_ignore_ascii_case(want.upn)),
        "{name}: preferred_username: {c}"
    );
    ensure!(
        c["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{name}: {c}"
    );
    ensure!(
        c["exp"].as_i64().unwrap_or(0) > c["iat"].as_i64().unwrap_or(i64::MAX),
        "{name}: exp/iat: {c}"
    );
    ensure!(
        r["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
            && r["has_access_token"] == true
            && r["has_refresh_token"] == true,
        "{name}: token response: {r:#}"
    );
    // The checks are not vacuous: every tampering is refused.
    let negative = r["negative_checks"]
        .as_object()
        .ok_or_else(|| anyhow!("{name}: no negative checks: {r:#}"))?;
    ensure!(negative.len() == 5, "{name}: {negative:?}");
    for (check, v) in negative {
        ensure!(
            v.is_string(),
            "{name}: an ID token with a {check} was accepted"
        );
    }
    // A code is good once.
    ensure!(
        r["code_replay"]["status"] == 400 && r["code_replay"]["body"]["error"] == "invalid_grant",
        "{name}: the code was redeemed twice: {}",
        r["code_replay"]
    );
    ensure!(
        r["text"].as_str().unwrap_or_default().contains("Signed in"),
        "{name}: the app's page: {r:#}"
    );
    check_png(Path::new(r["screenshot"].as_str().unwrap_or_default()))?;
    Ok(())
}

/// The browser got a code, but redeeming it with another verifier than the challenge's fails.
fn check_pkce_refused(r: &Value) -> anyhow::Result<()> {
    let name = r["name"].as_str().unwrap_or("?");
    reached_app(r)?;
    let w = &r["wrong_verifier"];
    ensure!(
        w["status"] == 400
            && w["body"]["error"] == "invalid_grant"
            && w["body"]["error_codes"] == json!([501481])
            && r.get("claims").is_none(),
        "{name}: a code was redeemed with the wrong PKCE verifier: {w}"
    );
    Ok(())
}

/// (case name, username, password, response mode, expected AADSTS code; None = signs in)
type Case = (&'static str, String, String, &'static str, Option<u64>);

#[test]
fn chromium_signs_in_with_code_pkce_and_sees_each_aadsts_page() -> anyhow::Result<()> {
    let started = Instant::now();
    let corp = bed::corp()?;
    let dir = fresh_dir("browser")?;
    let shots = dir.join("screenshots");
    let mut rp = Rp::start(&dir)?;
    let hello = rp.read(Duration::from_secs(60))?;
    let redirect_uri = hello["redirect_uri"]
        .as_str()
        .ok_or_else(|| anyhow!("RP said {hello}"))?
        .to_string();
    ensure!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{redirect_uri}"
    );

    let mut t = PtaSetup::new(&dir, &corp).without_app().start()?;
    let client_id = t
        .cloud
        .admin(&[
            "app",
            "add",
            "Browser RP",
            "--public",
            "--redirect-uri",
            &redirect_uri,
        ])?
        .trim()
        .to_string();
    let server_cert = t.cloud.data_dir.join("tls/server.pem");
    let authority = format!("{}/{}", t.cloud.url, t.cloud.tenant);
    let ca_file = t.cloud.ca_file();

    let good = corp.user("good")?;
    let spare = corp.user("spare5")?;
    let mut cases: Vec<Case> = vec![
        (
            "good",
            good.upn.clone(),
            good.password.clone(),
            "query",
            None,
        ),
        (
            "good-form-post",
            good.upn.clone(),
            good.password.clone(),
            "form_post",
            None,
        ),
        (
            "pkce-wrong-verifier",
            good.upn.clone(),
            good.password.clone(),
            "query",
            None,
        ),
        (
            "wrong-password",
            spare.upn.clone(),
            "Wrong-Passw0rd!".to_string(),
            "query",
            Some(50126),
        ),
        // Its own password then: signs in, and resets its bad-password count, so that runs
        // in a row against one test bed never lock it out.
        (
            "spare-right-password",
            spare.upn.clone(),
            spare.password.clone(),
            "query",
            None,
        ),
    ];
    for (name, code) in [
        ("locked", 50053),
        ("disabled", 50057),
        ("expired", 50057),
        ("mustchange", 50144),
        ("pwdexpired", 50144),
        ("hours", 80012),
        ("workstation", 80007),
    ] {
        let u = corp.user(name)?;
        cases.push((name, u.upn.clone(), u.password.clone(), "query", Some(code)));
    }
    let spec = |cases: &[Case]| {
        json!({
            "authority": authority,
            "client_id": client_id,
            "ca_file": ca_file,
            "server_cert": server_cert,
            "screenshot_dir": shots,
            "chromium": "/usr/bin/chromium",
            "chromedriver": "/usr/bin/chromedriver",
            "cases": cases.iter().map(|(name, u, p, mode, want)| json!({
                "name": name, "username": u, "password": p, "response_mode": mode,
                "pkce": if *name == "pkce-wrong-verifier" { "wrong_verifier" } else { "ok" },
                "expect": if want.is_some() { "error" } else { "success" },
            })).collect::<Vec<_>>(),
        })
    };
    let out = rp.run(&spec(&cases))?;
    std::fs::write(dir.join("rp-results.json"), format!("{out:#}"))?;
    let mut results = out["results"]
        .as_array()
        .ok_or_else(|| anyhow!("no results: {out}"))?
        .clone();
    ensure!(results.len() == cases.len(), "{out:#}");

    // With the agent stopped, the password page says no agent can reach the directory.
    let mut agent = t.take_agent()?;
    agent.stop_with(15);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = serde_json::from_str(&t.cloud.admin(&["--json", "agents", "list"])?)?;
        let active = v["agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["status"] == "Active"));
        if !active {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the agent still shows active: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let outage: Vec<Case> = vec![(
        "agent-unavailable",
        good.upn.clone(),
        good.password.clone(),
        "query",
        Some(80001),
    )];
    let out2 = rp.run(&spec(&outage))?;
    std::fs::write(dir.join("rp-results-outage.json"), format!("{out2:#}"))?;
    rp.finish()?;
    let more = out2["results"]
        .as_array()
        .ok_or_else(|| anyhow!("no results: {out2}"))?;
    ensure!(more.len() == outage.len(), "{out2:#}");
    results.extend(more.iter().cloned());
    cases.extend(outage);

    let issuer = out["issuer"].as_str().unwrap_or_default();
    let tenant_id = issuer
        .strip_prefix(&format!("{}/", t.cloud.url))
        .and_then(|r| r.strip_suffix("/v2.0"))
        .ok_or_else(|| anyhow!("issuer {issuer} is not under {}", t.cloud.url))?;
    let mut failures = Vec::new();
    let mut sentences: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for ((name, upn, _, _, want), r) in cases.iter().zip(&results) {
        let checked = if r["name"] != *name {
            Err(anyhow!("{name}: results out of order: {r}"))
        } else if *name == "pkce-wrong-verifier" {
            check_pkce_refused(r)
        } else if let Some(code) = want {
            check_error_page(r, *code).map(|s| {
                sentences.entry(*code).or_default().insert(s);
            })
        } else {
            let want = Expected {
                upn,
                client_id: &client_id,
                issuer,
                tenant_id,
                jwks_kids: &out["jwks_kids"],
            };
            check_signed_in(r, &want).and_then(|()| {
                ensure!(
                    (*name == "good-form-post") == r["form_post_page"].is_string(),
                    "{name}: response mode: {r:#}"
                );
                Ok(())
            })
        };
        if let Err(e) = checked {
            failures.push(format!("{e:#}"));
        }
    }
    // One sentence per code, and a different one for every code.
    let mut seen = BTreeSet::new();
    for (code, s) in &sentences {
        if s.len() != 1 {
            failures.push(format!("AADSTS{code} has several sentences: {s:?}"));
        }
        for s in s {
            if !seen.insert(s.clone()) {
                failures.push(format!("AADSTS{code} shares its sentence {s:?}"));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {} browser checks failed (results in {}):\n\n{}",
        failures.len(),
        cases.len(),
        dir.display(),
        failures.join("\n\n")
    );
    ensure!(sentences.len() == 7, "{sentences:?}");
    // An expired or must-change password, without writeback: the seed's message.
    ensure!(
        sentences
            .get(&50144)
            .is_some_and(|s| s.iter().all(|x| x.contains(
                "Your organization doesn't allow you to update your password on this site."
            ))),
        "{sentences:?}"
    );
    eprintln!(
        "browser test: {} sign-ins with Chromium {} in {:.1} s; screenshots in {}",
        cases.len(),
        out["chromium"].as_str().unwrap_or("?"),
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    Ok(())
}
