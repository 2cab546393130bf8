//! Headless Chromium driven one command at a time from a Rust test (`tests/mfa_browser.py`),
//! for sign-in pages whose next step depends on what the test computes (a TOTP code from the
//! secret an enrolment page shows), and the pieces those tests share: TOTP codes computed
//! independently of the cloud, an authorization request with PKCE, the username and password
//! pages, the enrolment page's key.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{anyhow, bail, ensure, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use passthru_testkit::browser::check_png;
use passthru_testkit::procs::Cloud;

/// The 6-digit code of a time step, computed independently of the cloud.
pub fn totp(secret: &[u8], step: i64) -> String {
    totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec())
        .generate((step * 30) as u64)
}

pub fn step_now() -> i64 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
        / 30) as i64
}

/// A time step later than `last` (codes are accepted once per step) whose code the cloud
/// accepts now (within one step of the current one); waits for the next step when needed.
pub async fn usable_step(last: i64) -> i64 {
    loop {
        let now = step_now();
        let candidate = (last + 1).max(now);
        if candidate <= now + 1 {
            return candidate;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Starts one of this crate's browser scripts (`crates/e2e/tests/NAME`) with Python: stdin and stdout
/// piped for its JSON lines, stderr to `log`, and no CA bundle overrides in its environment
/// (its TLS must trust only the cloud's CA, or pin the cloud's key).
pub fn browser_script(name: &str, log: &Path) -> anyhow::Result<Child> {
    let script = crate::test_file(name);
    Command::new("python3")
        .arg(&script)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log)?))
        .spawn()
        .with_context(|| format!("starting python3 {name}"))
}

/// Chromium, one command at a time (see mfa_browser.py).
#[derive(Debug)]
pub struct Chromium {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Chromium {
    pub fn start(spec: &Value, log: &Path) -> anyhow::Result<(Chromium, String)> {
        let mut child = browser_script("mfa_browser.py", log)?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        let mut c = Chromium {
            child,
            stdin: Some(stdin),
            stdout,
        };
        c.send(spec)?;
        let hello = c.read()?;
        let redirect = hello["redirect_uri"]
            .as_str()
            .ok_or_else(|| anyhow!("no redirect_uri: {hello}"))?
            .to_string();
        Ok((c, redirect))
    }

    fn send(&mut self, v: &Value) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| anyhow!("closed"))?;
        writeln!(stdin, "{v}")?;
        stdin.flush()?;
        Ok(())
    }

    fn read(&mut self) -> anyhow::Result<Value> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        if line.is_empty() {
            bail!("the browser script ended");
        }
        Ok(serde_json::from_str(line.trim())?)
    }

    pub fn cmd(&mut self, v: Value) -> anyhow::Result<Value> {
        self.send(&v)?;
        let a = self.read()?;
        if let Some(e) = a["error"].as_str() {
            bail!("browser: {v} failed: {e}");
        }
        Ok(a)
    }

    pub fn get(&mut self, url: &str) -> anyhow::Result<()> {
        self.cmd(json!({"op": "get", "url": url})).map(drop)
    }
    pub fn type_in(&mut self, id: &str, text: &str) -> anyhow::Result<()> {
        self.cmd(json!({"op": "type", "id": id, "text": text}))
            .map(drop)
    }
    pub fn click(&mut self, id: &str) -> anyhow::Result<()> {
        self.cmd(json!({"op": "click", "id": id})).map(drop)
    }
    pub fn wait(&mut self, ids: &[&str]) -> anyhow::Result<String> {
        let a = self.cmd(json!({"op": "wait", "ids": ids}))?;
        Ok(a["found"].as_str().unwrap_or_default().to_string())
    }
    pub fn texts(&mut self, css: &str) -> anyhow::Result<Vec<String>> {
        let a = self.cmd(json!({"op": "texts", "css": css}))?;
        Ok(a["texts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect())
    }
    pub fn text(&mut self, id: &str) -> anyhow::Result<String> {
        Ok(self.texts(&format!("#{id}"))?.join("\n"))
    }
    pub fn page(&mut self) -> anyhow::Result<Value> {
        self.cmd(json!({"op": "page"}))
    }
    pub fn shot(&mut self, name: &str) -> anyhow::Result<()> {
        let a = self.cmd(json!({"op": "shot", "name": name}))?;
        check_png(Path::new(a["path"].as_str().unwrap_or_default()))?;
        Ok(())
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        drop(self.stdin.take()); // the script quits Chromium at the end of its input
        let _ = self.child.wait();
    }
}

/// One authorization request of the app: PKCE verifier, and its URL.
#[derive(Debug, Clone)]
pub struct Authz {
    /// The PKCE code verifier.
    pub verifier: String,
    /// The authorization URL to open.
    pub url: String,
}

pub fn authz(cloud: &Cloud, client_id: &str, redirect: &str) -> anyhow::Result<Authz> {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = B64URL.encode(Sha256::digest(verifier.as_bytes()));
    let mut u = url::Url::parse(&format!("{}/contoso/oauth2/v2.0/authorize", cloud.url))?;
    u.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid profile")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "st")
        .append_pair("nonce", "n0");
    Ok(Authz {
        verifier,
        url: u.to_string(),
    })
}

/// Username and password in Chromium; returns which page came next (`secret`: enrolment,
/// `code`: the code page, `rp`: back at the app, `error`: refused, `current`: the page to
/// update an expired password).
pub fn browser_password(
    b: &mut Chromium,
    a: &Authz,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    b.get(&a.url)?;
    b.wait(&["username"])?;
    b.type_in("username", user)?;
    b.click("next")?;
    b.wait(&["password"])?;
    b.type_in("password", password)?;
    b.click("signin")?;
    b.wait(&["secret", "code", "rp", "error", "current"])
}

pub fn code_from_callback(b: &mut Chromium) -> anyhow::Result<String> {
    let a = b.cmd(json!({"op": "callback"}))?;
    a["url"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the app got no callback"))
}

/// Signs out of the cloud: the logout page asks for confirmation (a cross-site GET must
/// not sign anyone out), then the signed-out page.
pub fn sign_out(b: &mut Chromium, cloud: &Cloud) -> anyhow::Result<()> {
    b.get(&format!("{}/contoso/oauth2/v2.0/logout", cloud.url))?;
    let html = b.page()?["html"].as_str().unwrap_or_default().to_string();
    if html.contains("id=\"signout\"") {
        b.click("signout")?;
    }
    let text = b.page()?["text"].as_str().unwrap_or_default().to_string();
    ensure!(text.contains("signed out"), "{text}");
    Ok(())
}

/// The secret of an enrolment page, decoded from the key it shows; checks the page also has
/// the QR code and the otpauth URI with that key.
pub fn read_enrolment(b: &mut Chromium) -> anyhow::Result<(Vec<u8>, String)> {
    let shown = b.text("secret")?;
    let base32: String = shown.chars().filter(|c| !c.is_whitespace()).collect();
    ensure!(base32.len() == 32, "a 160-bit key in base32: {shown:?}");
    let uri = b.text("otpauth")?;
    ensure!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={base32}")),
        "{uri}"
    );
    ensure!(
        uri.contains("digits=6") && uri.contains("period=30"),
        "{uri}"
    );
    let html = b.page()?["html"].as_str().unwrap_or_default().to_string();
    ensure!(html.contains("<svg class=\"qr\""), "no QR code on the page");
    let secret = totp_rs::Secret::Encoded(base32.clone())
        .to_bytes()
        .map_err(|e| anyhow!("the key is not base32: {e:?}"))?;
    Ok((secret, base32))
}
