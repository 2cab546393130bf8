//! What application developers use, unchanged, against a Passthru cloud (issue 21): the client
//! libraries from the npm registry (`crates/e2e/js`, pinned in its `package-lock.json`), an
//! AD user of the test bed signing in through pass-through (synced, for `email` and groups),
//! and only the settings that differ from Entra changed (the authority, `knownAuthorities`,
//! trusting the cloud's CA):
//!
//! - MSAL Node `ConfidentialClientApplication`: the authorization code flow (PKCE), a silent
//!   refresh, client credentials, with a client secret and with certificates (both of MSAL's
//!   assertion kinds: `thumbprintSha256` signs PS256, `thumbprint` RS256); the code flow on the
//!   `/organizations` authority; `PublicClientApplication`'s device code flow.
//! - A single-page app with MSAL Browser (`loginRedirect`, `handleRedirectPromise`,
//!   `acquireTokenSilent` forcing a refresh) in headless Chromium, from another origin.
//! - A web API validating access tokens with jose (JWKS, issuer, audience, `scp`, `roles`):
//!   it takes delegated and app-only tokens meant for it and refuses tokens for another API,
//!   without the scope, without the role, tampered with, or ID tokens.
//! - openid-client (discovery, code flow with PKCE, ID token signature checked, RS256 as
//!   generic clients expect) and an oauth2-proxy-style check of the ID token (RS256 against
//!   the JWKS, iss, aud, exp, `email` with `email_verified`).
//!
//! One cloud and one agent serve every case; every case runs even when an earlier one failed,
//! and the test fails at the end listing every failure. The scripts' outputs are kept in the
//! run dir (`app-developers-*/results/`). Needs Node 20+ with `npm ci` done in `crates/e2e/js`,
//! Chromium and chromedriver, Selenium (`scripts/deps.sh` with `PASSTHRU_NEED_NODE=1` and
//! `PASSTHRU_NEED_BROWSER=1`). `PASSTHRU_APPDEV_ONLY=msal,spa,api,oidc` runs only some parts.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant};
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, ForestEntry};
use passthru_testkit::users::{AccountState, TestUser};
use serde_json::{json, Value};

/// How long one Node program may run.
const NODE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the SPA's browser may take.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);
/// The web app's redirect URI: nothing listens there, the page walker stops at the redirect.
const WEB_REDIRECT: &str = "http://localhost:3000/redirect";
/// The generic relying party's.
const RP_REDIRECT: &str = "http://localhost:3000/oidc";
/// The API's App ID URI, scopes and roles.
const API_URI: &str = "api://orders";
const ROLE_GROUP: &str = "Orders.Admin";
const ROLE_USER: &str = "Orders.Auditor";
const ROLE_APP: &str = "Jobs.Run";
/// Another API, whose tokens the first must refuse.
const OTHER_API_URI: &str = "api://billing";

/// Every check's outcome; the test fails at the end with every failure listed.
#[derive(Default)]
struct Outcomes {
    failures: Vec<String>,
    passed: usize,
}

impl Outcomes {
    fn fail(&mut self, what: &str, why: impl std::fmt::Display) {
        self.failures.push(format!("{what}: {why}"));
    }

    fn check(&mut self, what: &str, ok: bool, why: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.fail(what, why());
        }
    }

    /// The value of a step that may fail; a failure is recorded and gives None.
    fn step<T>(&mut self, what: &str, r: anyhow::Result<T>) -> Option<T> {
        match r {
            Ok(v) => {
                self.passed += 1;
                Some(v)
            }
            Err(e) => {
                self.fail(what, format!("{e:#}"));
                None
            }
        }
    }

    /// The result of the case `name` of a script's output when it succeeded; its error is
    /// recorded otherwise.
    /// A case that was not sent (its set-up failed, recorded then) is passed over.
    fn case<'a>(&mut self, part: &str, out: Option<&'a Value>, name: &str) -> Option<&'a Value> {
        let what = format!("{part} {name}");
        let Some(out) = out else {
            self.fail(&what, "not run: the program failed (see above)");
            return None;
        };
        let found = out["results"]
            .as_array()
            .and_then(|r| r.iter().find(|c| c["name"] == name));
        match found {
            None => None,
            Some(c) if c["ok"] != true => {
                self.fail(&what, c["error"].as_str().unwrap_or("failed"));
                None
            }
            Some(c) => {
                self.passed += 1;
                Some(c)
            }
        }
    }
}

/// `crates/e2e/js`, with its packages installed.
fn js_dir() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    ensure!(
        dir.join("node_modules/@azure/msal-node").is_dir(),
        "the Node packages are not installed in {}: run `npm ci` there (PASSTHRU_NEED_NODE=1 bash \
         scripts/deps.sh does)",
        dir.display()
    );
    Ok(dir)
}

/// Waits for `child` up to `timeout`, killing it after that.
fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "{what} exited with {status}");
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `crates/e2e/js/SCRIPT` with Node: the spec on its standard input, its one line of
/// JSON read back; Node trusts the cloud's CA (NODE_EXTRA_CA_CERTS) and nothing else
/// changed. Its standard error goes to `results/SCRIPT.log`, its output to
/// `results/LABEL.json`.
fn node(
    script: &str,
    label: &str,
    spec: &Value,
    ca_file: &Path,
    results: &Path,
) -> anyhow::Result<Value> {
    let dir = js_dir()?;
    let log = results.join(format!("{label}.log"));
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("NODE_EXTRA_CA_CERTS", ca_file)
        .env_remove("NODE_OPTIONS")
        .env_remove("NODE_TLS_REJECT_UNAUTHORIZED")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log)?))
        .spawn()
        .context("starting node (Node.js 20 or later must be on the PATH)")?;
    let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
    stdin.write_all(spec.to_string().as_bytes())?;
    drop(stdin);
    let mut stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    let waited = wait_child(&mut child, NODE_TIMEOUT, &format!("node {script}"));
    let text = reader
        .join()
        .map_err(|_| anyhow!("reading node's output"))??;
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    waited.with_context(|| format!("its standard error:\n{}", stderr()))?;
    let v: Value = serde_json::from_str(text.trim())
        .with_context(|| format!("node {script} printed no JSON: {text}\n{}", stderr()))?;
    std::fs::write(results.join(format!("{label}.json")), format!("{v:#}"))?;
    Ok(v)
}

/// A string field of a JSON value, or "".
fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether `a` equals `b` ignoring ASCII case.
fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// A confidential app's client id and secret (`app add` prints them on two lines).
fn add_confidential(t: &PtaTenant, name: &str, extra: &[&str]) -> anyhow::Result<(String, String)> {
    let mut args = vec!["app", "add", name, "--confidential"];
    args.extend_from_slice(extra);
    let out = t.cloud.admin(&args)?;
    let mut lines = out.lines().map(str::trim);
    let id = lines.next().unwrap_or_default().to_string();
    let secret = lines.next().unwrap_or_default().to_string();
    ensure!(
        !id.is_empty() && !secret.is_empty(),
        "`app add` printed {out:?}"
    );
    Ok((id, secret))
}

/// `admin --json ARGS...`, parsed.
fn admin_json(t: &PtaTenant, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = t.cloud.admin(&all)?;
    serde_json::from_str(&out).with_context(|| format!("`admin {}` printed {out}", args.join(" ")))
}

/// Secret rotation without an outage, with MSAL Node's client credentials: a second secret
/// beside the first (`app secret add`), both work; the first removed (`app secret remove`),
/// it is refused at once and the second still works.
#[allow(clippy::too_many_arguments)]
fn rotation(
    o: &mut Outcomes,
    t: &PtaTenant,
    web_id: &str,
    old_secret: &str,
    base: &Value,
    scope: &str,
    results: &Path,
) -> anyhow::Result<()> {
    let added = admin_json(t, &["app", "secret", "add", web_id])?;
    let (new_id, new_secret) = (s(&added, "/id"), s(&added, "/secret"));
    ensure!(
        !new_id.is_empty() && !new_secret.is_empty(),
        "`app secret add` gave {}",
        json!({"id": new_id})
    );
    let cc = |name: &str, secret: &str| {
        json!({"name": name, "kind": "client_credentials",
        "client_id": web_id, "secret": secret, "scopes": [scope]})
    };
    let mut spec = base.clone();
    spec["cases"] = json!([cc("old secret", old_secret), cc("new secret", new_secret)]);
    let both = node(
        "msal_node.mjs",
        "msal_rotation_both",
        &spec,
        &t.cloud.ca_file(),
        results,
    )?;
    o.case("rotation, both secrets:", Some(&both), "old secret");
    o.case("rotation, both secrets:", Some(&both), "new secret");
    let list = admin_json(t, &["app", "credential", "list", web_id])?;
    let old_id = list["credentials"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["kind"] == "secret" && c["id"] != new_id)
        .and_then(|c| c["id"].as_str())
        .ok_or_else(|| anyhow!("`app credential list` shows no other secret: {list}"))?
        .to_string();
    t.cloud
        .admin(&["app", "secret", "remove", web_id, &old_id])?;
    let after = node(
        "msal_node.mjs",
        "msal_rotation_after",
        &spec,
        &t.cloud.ca_file(),
        results,
    )?;
    let old = after["results"]
        .as_array()
        .and_then(|r| r.iter().find(|c| c["name"] == "old secret"))
        .cloned()
        .unwrap_or_default();
    o.check(
        "rotation: the removed secret is refused at once",
        old["ok"] == false && s(&old, "/error").contains("7000215"),
        || old.to_string(),
    );
    o.case("rotation, after the removal:", Some(&after), "new secret");
    Ok(())
}

/// An RSA key and a self-signed certificate for it (what an app developer makes with
/// openssl for a certificate credential): the certificate's and the key's PEM files.
fn make_certificate(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("daemon-cert.pem"), dir.join("daemon-key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg("/CN=Passthru test daemon")
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl")?;
    ensure!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((cert, key))
}

/// The SPA's browser script (`tests/spa_browser.py`): started first for the redirect URI
/// its page is served at, then given the spec.
struct SpaBrowser {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
    redirect_uri: String,
}

impl SpaBrowser {
    fn start(results: &Path) -> anyhow::Result<SpaBrowser> {
        let log = results.join("spa_browser.log");
        let mut child = passthru_e2e::chromium::browser_script("spa_browser.py", &log)?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = SpaBrowser {
            child,
            lines,
            log,
            redirect_uri: String::new(),
        };
        let hello = b.read(Duration::from_secs(60))?;
        b.redirect_uri = hello["redirect_uri"]
            .as_str()
            .ok_or_else(|| anyhow!("the SPA script said {hello}"))?
            .to_string();
        Ok(b)
    }

    fn read(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                serde_json::from_str(&line).with_context(|| format!("the SPA script said {line}"))
            }
            Err(_) => bail!(
                "the SPA script gave no answer; its log ({}):\n{}",
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }

    fn run(mut self, spec: &Value) -> anyhow::Result<Value> {
        let mut stdin = self.child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        writeln!(stdin, "{spec}")?;
        drop(stdin);
        let r = self.read(BROWSER_TIMEOUT)?;
        wait_child(&mut self.child, Duration::from_secs(30), "spa_browser.py")?;
        Ok(r)
    }
}

impl Drop for SpaBrowser {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            drop(self.child.stdin.take());
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Which parts run (`PASSTHRU_APPDEV_ONLY`, comma-separated; all by default).
fn part(name: &str) -> bool {
    match std::env::var("PASSTHRU_APPDEV_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|p| p.trim() == name),
        _ => true,
    }
}

/// The AD side: a user of this test with a name, a mail and a group of its own (so that no
/// other test sees them), and a sync service account.
struct Directory {
    user: TestUser,
    group: String,
    sync_account: String,
    sync_password_file: PathBuf,
}

async fn directory(corp: &bed::BedForest) -> anyhow::Result<Directory> {
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let svc = TestUser::with(
        &format!("svj{tag}"),
        &format!("svj{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Svj"),
        "Sync service",
    );
    admin.create_user(&svc).await?;
    let user = TestUser::with(
        &format!("ada{tag}"),
        &format!("ada{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Ada"),
        "Ada Lovelace",
    );
    admin.create_user(&user).await?;
    let group = format!("orders-admins-{tag}");
    let group_dn = format!("CN={group},CN=Users,{}", corp.base_dn);
    admin
        .add_entry(
            &group_dn,
            &[("objectClass", "group"), ("sAMAccountName", &group)],
        )
        .await?;
    admin
        .set_member(&group_dn, &user.dn(&corp.base_dn), true)
        .await?;
    Ok(Directory {
        user,
        group,
        sync_account: svc.upn,
        sync_password_file: secret_file(&svc.password)?,
    })
}

/// Waits (up to 60 s) until the synced group `name` shows `member` among its members; its
/// object id.
fn wait_group(t: &PtaTenant, name: &str, member: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = t.cloud.admin_as(
            &t.cloud.tenant,
            &t.cloud.admin_upn,
            &t.cloud.admin_password,
            &["--json", "group", "show", name],
        )?;
        if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout)?;
            let has = v
                .to_string()
                .to_ascii_lowercase()
                .contains(&member.to_ascii_lowercase());
            if has {
                return v["id"]
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("`group show` gave no id: {v}"));
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the group {name} with {member} was not synced within 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What every part needs: the tenant, the user, where the cloud is and what it says of itself.
struct Ctx<'a> {
    t: &'a PtaTenant,
    ad: &'a Directory,
    /// `https://127.0.0.1:PORT/contoso`
    authority: String,
    /// `127.0.0.1:PORT`, MSAL's known authority.
    host: String,
    issuer: String,
    jwks_uri: String,
    tenant_id: String,
    ca_file: PathBuf,
    results: PathBuf,
}

impl Ctx<'_> {
    fn user(&self) -> Value {
        json!({"username": self.ad.user.upn, "password": self.ad.user.password})
    }

    fn node(&self, script: &str, label: &str, spec: &Value) -> anyhow::Result<Value> {
        node(script, label, spec, &self.ca_file, &self.results)
    }
}

/// The registrations, each made as the admin CLI makes it (None where a step failed, recorded).
struct Apps {
    /// A confidential web app (client id, secret) with a redirect URI; it holds the API's
    /// app role.
    web: Option<(String, String)>,
    /// A public app for the device code flow.
    tv: Option<String>,
    /// The API's client id, and whether `app expose` worked.
    api: Option<String>,
    exposed: bool,
    /// Another API exposed.
    other_api: bool,
    /// A confidential app with a certificate credential, and the certificate and key files.
    cert_app: Option<String>,
    certificate: Option<(PathBuf, PathBuf)>,
}

impl Apps {
    /// A delegated scope of the API, or a plain one when it is not exposed (so that the
    /// flows themselves are still tried).
    fn scope(&self, name: &str) -> String {
        if self.exposed {
            format!("{API_URI}/{name}")
        } else {
            "User.Read".to_string()
        }
    }

    /// The API's `.default` scope (client credentials).
    fn default_scope(&self) -> String {
        if self.exposed {
            format!("{API_URI}/.default")
        } else {
            format!("{}/.default", self.api.clone().unwrap_or_default())
        }
    }
}

fn register(o: &mut Outcomes, cx: &Ctx<'_>, group_id: Option<&str>, msal_parts: bool) -> Apps {
    let cloud = &cx.t.cloud;
    let web = o.step(
        "app add --confidential (web app)",
        add_confidential(cx.t, "Node web app", &["--redirect-uri", WEB_REDIRECT]),
    );
    let tv = o.step(
        "app add --public (device)",
        cloud
            .admin(&["app", "add", "Node TV app", "--public"])
            .map(|s| s.trim().to_string()),
    );
    let api = o
        .step("app add (API)", add_confidential(cx.t, "Orders API", &[]))
        .map(|(id, _)| id);
    let exposed = api.as_ref().is_some_and(|id| {
        let r = cloud.admin(&[
            "app",
            "expose",
            id,
            "--identifier-uri",
            API_URI,
            "--scope",
            "read",
            "--scope",
            "write",
            "--app-role",
            ROLE_GROUP,
            "--app-role",
            ROLE_USER,
            "--app-role",
            ROLE_APP,
        ]);
        o.step("app expose --identifier-uri --scope --app-role", r)
            .is_some()
    });
    let other_api = o
        .step(
            "app add (another API)",
            add_confidential(cx.t, "Billing API", &[]),
        )
        .is_some_and(|(id, _)| {
            let r = cloud.admin(&[
                "app",
                "expose",
                &id,
                "--identifier-uri",
                OTHER_API_URI,
                "--scope",
                "read",
            ]);
            o.step("app expose (another API)", r).is_some()
        });
    if let (Some(api), true) = (&api, exposed) {
        let mut assign = |what: &str, args: &[&str]| {
            let mut all = vec!["app", "role", "assign", api.as_str()];
            all.extend_from_slice(args);
            o.step(what, cloud.admin(&all));
        };
        if let Some(group_id) = group_id {
            assign(
                "app role assign --group",
                &[ROLE_GROUP, "--group", group_id],
            );
        }
        assign(
            "app role assign --user",
            &[ROLE_USER, "--user", &cx.ad.user.upn],
        );
        if let Some((web_id, _)) = &web {
            assign("app role assign --app", &[ROLE_APP, "--app", web_id]);
        }
    }
    // A daemon with a certificate credential (and a redirect URI, for its code flow).
    let (mut cert_app, mut certificate) = (None, None);
    if msal_parts {
        let app = o
            .step(
                "app add --confidential (certificate app)",
                add_confidential(cx.t, "Node daemon", &["--redirect-uri", WEB_REDIRECT]),
            )
            .map(|(id, _)| id);
        let made = o.step(
            "an RSA key and certificate (openssl)",
            make_certificate(&cx.results),
        );
        if let (Some(id), Some((cert, key))) = (app, made) {
            let cert_arg = cert.display().to_string();
            let r = cloud.admin(&["app", "credential", "add", &id, "--cert", &cert_arg]);
            if o.step("app credential add --cert", r).is_some() {
                cert_app = Some(id);
                certificate = Some((cert, key));
            }
        }
    }
    Apps {
        web,
        tv,
        api,
        exposed,
        other_api,
        cert_app,
        certificate,
    }
}

/// a, b: MSAL Node's flows in one run of `msal_node.mjs`; its output.
fn msal_node(o: &mut Outcomes, cx: &Ctx<'_>, apps: &Apps) -> Option<Value> {
    let mut cases = Vec::new();
    let code = |name: &str, client_id: &str, credential: (&str, Value), scope: String| {
        let mut c = json!({"name": name, "kind": "auth_code", "client_id": client_id,
            "redirect_uri": WEB_REDIRECT, "scopes": [scope]});
        c[credential.0] = credential.1;
        c
    };
    let app_only = |name: &str, client_id: &str, credential: (&str, Value)| {
        let mut c = json!({"name": name, "kind": "client_credentials", "client_id": client_id,
            "scopes": [apps.default_scope()]});
        c[credential.0] = credential.1;
        c
    };
    if let Some((web_id, secret)) = &apps.web {
        let secret = || ("secret", json!(secret));
        let mut first = code("secret-code", web_id, secret(), apps.scope("read"));
        first["refresh"] = json!(true);
        cases.push(first);
        let mut orgs = code("organizations-code", web_id, secret(), apps.scope("read"));
        orgs["authority"] = json!(format!("{}/organizations", cx.t.cloud.url));
        cases.push(orgs);
        cases.push(app_only("secret-client-credentials", web_id, secret()));
        if apps.exposed {
            cases.push(code(
                "write-scope-code",
                web_id,
                secret(),
                apps.scope("write"),
            ));
        }
        if apps.other_api {
            let other = format!("{OTHER_API_URI}/read");
            cases.push(code("other-api-code", web_id, secret(), other));
        }
    }
    if let (Some(id), Some((cert, key))) = (&apps.cert_app, &apps.certificate) {
        let read = || -> anyhow::Result<(String, String)> {
            Ok((
                std::fs::read_to_string(cert)?,
                std::fs::read_to_string(key)?,
            ))
        };
        if let Some((cert_pem, key_pem)) = o.step("read the certificate", read()) {
            let certificate = |sha: &str| {
                let c =
                    json!({"cert_pem": cert_pem, "private_key_pem": key_pem, "thumbprint": sha});
                ("certificate", c)
            };
            cases.push(code(
                "certificate-code",
                id,
                certificate("sha256"),
                apps.scope("read"),
            ));
            cases.push(app_only(
                "certificate-client-credentials",
                id,
                certificate("sha1"),
            ));
        }
    } else {
        o.fail(
            "MSAL Node certificate cases",
            "not run: no certificate credential",
        );
    }
    if let Some(tv) = &apps.tv {
        cases.push(
            json!({"name": "device-code", "kind": "device_code", "client_id": tv,
            "scopes": [apps.scope("read")]}),
        );
    }
    let spec = json!({"authority": cx.authority, "known_authority": cx.host, "user": cx.user(),
        "cases": cases});
    o.step(
        "node msal_node.mjs",
        cx.node("msal_node.mjs", "msal_node", &spec),
    )
}

/// What MSAL Node's results must show; the user's object id (from the first ID token).
fn check_msal_node(o: &mut Outcomes, cx: &Ctx<'_>, apps: &Apps, msal: Option<&Value>) -> String {
    let upn = &cx.ad.user.upn;
    let tenant_id = cx.tenant_id.as_str();
    let mut oid = String::new();
    if let Some(r) = o.case("MSAL Node", msal, "secret-code") {
        o.check(
            "secret-code: code + PKCE S256",
            s(r, "/request/code_challenge_method") == "S256" && r["state_matches"] == true,
            || r["request"].to_string(),
        );
        let id = &r["code"]["id"]["claims"];
        oid = s(id, "/oid").to_string();
        o.check(
            "secret-code: the ID token names the AD user",
            same(s(id, "/preferred_username"), upn)
                && s(id, "/iss") == cx.issuer
                && s(id, "/tid") == tenant_id
                && !oid.is_empty(),
            || id.to_string(),
        );
        o.check(
            "secret-code: MSAL's account",
            same(s(r, "/code/account/username"), upn)
                && s(r, "/code/account/tenant_id") == tenant_id,
            || r["code"]["account"].to_string(),
        );
        o.check(
            "secret-code: acquireTokenSilent(forceRefresh) redeemed the refresh token",
            r["refreshed"]["from_cache"] == false
                && !s(r, "/refreshed/access_token").is_empty()
                && s(r, "/refreshed/access_token") != s(r, "/code/access_token")
                && same(s(r, "/refreshed/account/username"), upn),
            || r["refreshed"].to_string(),
        );
    }
    if let Some(r) = o.case("MSAL Node", msal, "organizations-code") {
        let id = &r["code"]["id"]["claims"];
        o.check(
            "organizations-code: the user's tenant",
            s(id, "/tid") == tenant_id && same(s(id, "/preferred_username"), upn),
            || id.to_string(),
        );
    }
    let app_only_of = |a: &Value, client_id: &str| {
        (s(a, "/azp") == client_id || s(a, "/appid") == client_id)
            && a.get("scp").is_none()
            && s(a, "/tid") == tenant_id
    };
    if let Some(r) = o.case("MSAL Node", msal, "secret-client-credentials") {
        let a = &r["app"]["access"]["claims"];
        let web_id = apps.web.as_ref().map(|w| w.0.as_str()).unwrap_or_default();
        o.check(
            "secret-client-credentials: an app-only token of the web app",
            app_only_of(a, web_id),
            || a.to_string(),
        );
    }
    if let Some(cert_id) = &apps.cert_app {
        if let Some(r) = o.case("MSAL Node", msal, "certificate-code") {
            let id = &r["code"]["id"]["claims"];
            o.check(
                "certificate-code (thumbprintSha256, PS256 assertion): the user's tokens",
                same(s(id, "/preferred_username"), upn) && s(id, "/aud") == cert_id,
                || id.to_string(),
            );
        }
        if let Some(r) = o.case("MSAL Node", msal, "certificate-client-credentials") {
            let a = &r["app"]["access"]["claims"];
            o.check(
                "certificate-client-credentials (thumbprint, RS256 assertion): an app-only token",
                app_only_of(a, cert_id),
                || a.to_string(),
            );
        }
    }
    if let Some(r) = o.case("MSAL Node", msal, "device-code") {
        let id = &r["device"]["id"]["claims"];
        let page = format!("{}/{}/devicelogin", cx.t.cloud.url, cx.t.cloud.tenant);
        o.check(
            "device-code: the cloud's prompt",
            s(r, "/prompt/verification_uri") == page
                && s(r, "/prompt/message").contains(s(r, "/prompt/user_code")),
            || r["prompt"].to_string(),
        );
        o.check(
            "device-code: the browser side",
            s(r, "/device_page").contains("signed in to Node TV app"),
            || format!("{} {}", r["device_page"], r["device_page_error"]),
        );
        o.check(
            "device-code: the user's tokens",
            same(s(id, "/preferred_username"), upn) && Some(s(id, "/aud")) == apps.tv.as_deref(),
            || id.to_string(),
        );
    }
    oid
}

/// c: the single-page app in Chromium; its silently refreshed access token.
fn spa(o: &mut Outcomes, cx: &Ctx<'_>, apps: &Apps, browser: SpaBrowser) -> Option<String> {
    let cloud = &cx.t.cloud;
    let redirect = browser.redirect_uri.clone();
    let spa_id = o.step(
        "app add --spa --redirect-uri",
        cloud
            .admin(&[
                "app",
                "add",
                "MSAL.js SPA",
                "--spa",
                "--redirect-uri",
                &redirect,
            ])
            .map(|s| s.trim().to_string()),
    )?;
    let spec = json!({
        "authority": cx.authority, "known_authority": cx.host, "client_id": spa_id,
        "scopes": [apps.scope("read")], "username": cx.ad.user.upn, "password": cx.ad.user.password,
        "server_cert": cloud.data_dir.join("tls/server.pem"),
        "screenshot_dir": cx.results.join("screenshots"),
        "chromium": "/usr/bin/chromium", "chromedriver": "/usr/bin/chromedriver",
    });
    let r = o.step("the SPA in Chromium", browser.run(&spec))?;
    if let Err(e) = std::fs::write(cx.results.join("spa.json"), format!("{r:#}")) {
        o.fail("writing spa.json", e);
    }
    // What a page may read: the SPA's origin reads discovery and the token endpoint's
    // answers; another origin (the same page server, as 127.0.0.1) neither.
    let cors = &r["cors"];
    for (probe, want) in [
        ("registered discovery", "read 200"),
        ("registered token", "read 400"),
        ("unregistered discovery", "blocked"),
        ("unregistered token", "blocked"),
    ] {
        o.check(
            &format!("SPA CORS: {probe}"),
            s(cors, &format!("/{probe}")).starts_with(want),
            || format!("expected {want}: {cors} {}", r["cors_error"]),
        );
    }
    if r["ok"] != true {
        o.fail(
            "SPA (MSAL Browser)",
            format!(
                "{} at {} (stage {}); MSAL said {}; console {}",
                s(&r, "/error"),
                s(&r, "/final_url"),
                s(&r, "/stage"),
                r["console"],
                r["browser_console"]
            ),
        );
        return None;
    }
    let c = &r["login"]["id_token_claims"];
    o.check(
        "SPA: loginRedirect signed the AD user in",
        same(s(c, "/preferred_username"), &cx.ad.user.upn)
            && s(c, "/aud") == spa_id
            && s(c, "/tid") == cx.tenant_id,
        || c.to_string(),
    );
    o.check(
        "SPA: back at the app's own origin",
        s(&r, "/final_url") == redirect && s(&r, "/authorize_url").starts_with(&cloud.url),
        || format!("{} {}", r["final_url"], r["authorize_url"]),
    );
    o.check(
        "SPA: acquireTokenSilent(forceRefresh) redeemed the refresh token",
        r["silent"]["from_cache"] == false
            && !s(&r, "/silent/access_token").is_empty()
            && s(&r, "/silent/access_token") != s(&r, "/login/access_token"),
        || r["silent"].to_string(),
    );
    Some(s(&r, "/silent/access_token").to_string())
}

/// d: the API (`api.mjs`), called with the tokens the libraries got.
fn api(
    o: &mut Outcomes,
    cx: &Ctx<'_>,
    apps: &Apps,
    msal: Option<&Value>,
    spa: Option<String>,
    oid: &str,
) {
    let token = |case: &str, pointer: &str| -> Value {
        msal.and_then(|m| m["results"].as_array())
            .and_then(|r| r.iter().find(|c| c["name"] == case))
            .and_then(|c| c.pointer(pointer))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let (code, refreshed) = ("/code/access_token", "/refreshed/access_token");
    // (name, route, token, tampered, the status expected)
    let calls = [
        (
            "delegated read",
            "/me",
            token("secret-code", code),
            false,
            200,
        ),
        (
            "delegated read, refreshed",
            "/me",
            token("secret-code", refreshed),
            false,
            200,
        ),
        (
            "delegated, role through the group",
            "/admin",
            token("secret-code", code),
            false,
            200,
        ),
        (
            "device code token",
            "/me",
            token("device-code", "/device/access_token"),
            false,
            200,
        ),
        (
            "SPA token",
            "/me",
            spa.map(Value::from).unwrap_or(Value::Null),
            false,
            200,
        ),
        (
            "tampered payload",
            "/me",
            token("secret-code", code),
            true,
            401,
        ),
        (
            "an ID token",
            "/me",
            token("secret-code", "/code/id_token"),
            false,
            401,
        ),
        (
            "a token for another API",
            "/me",
            token("other-api-code", code),
            false,
            401,
        ),
        (
            "delegated without the scope",
            "/me",
            token("write-scope-code", code),
            false,
            403,
        ),
        (
            "app-only with the role",
            "/jobs",
            token("secret-client-credentials", "/app/access_token"),
            false,
            200,
        ),
        (
            "app-only without the role",
            "/jobs",
            token("certificate-client-credentials", "/app/access_token"),
            false,
            403,
        ),
        (
            "app-only on a user's route",
            "/me",
            token("secret-client-credentials", "/app/access_token"),
            false,
            403,
        ),
    ];
    let api_id = apps.api.clone().unwrap_or_default();
    let spec = json!({
        "issuer": cx.issuer, "jwks_uri": cx.jwks_uri, "audiences": [api_id, API_URI],
        "read_scope": "read", "admin_role": ROLE_GROUP, "app_role": ROLE_APP,
        "calls": calls.iter().map(|(name, route, token, tamper, _)| json!({
            "name": name, "route": route, "token": token, "tamper": tamper})).collect::<Vec<_>>(),
    });
    let out = o.step("node api.mjs", cx.node("api.mjs", "api", &spec));
    for (name, _, _, _, want) in &calls {
        let what = format!("API (jose): {name}");
        let Some(r) = out
            .as_ref()
            .and_then(|v| v["results"].as_array())
            .and_then(|r| r.iter().find(|c| c["name"] == *name))
        else {
            o.fail(&what, "no result");
            continue;
        };
        o.check(&what, r["status"] == *want, || {
            format!(
                "expected {want}, got {} {} {}",
                r["status"], r["body"], r["error"]
            )
        });
        let b = &r["body"];
        if *name == "delegated read" && r["status"] == 200 {
            let roles: Vec<&str> = b["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            o.check(
                "API: the delegated token's claims",
                s(b, "/scp") == "read"
                    && (s(b, "/aud") == api_id || s(b, "/aud") == API_URI)
                    && s(b, "/tid") == cx.tenant_id
                    && s(b, "/oid") == oid
                    && roles.contains(&ROLE_GROUP)
                    && roles.contains(&ROLE_USER)
                    && !roles.contains(&ROLE_APP),
                || format!("scp \"read\", aud the API, the user's oid {oid} and tid, roles {ROLE_GROUP} and {ROLE_USER}: {b}"),
            );
        }
        if *name == "app-only with the role" && r["status"] == 200 {
            o.check(
                "API: the app-only token's claims",
                b["roles"] == json!([ROLE_APP]) && b["scp"].is_null(),
                || format!("roles [{ROLE_APP}], no scp: {b}"),
            );
        }
    }
}

/// e: openid-client and an oauth2-proxy-style check of an RS256 ID token.
fn oidc(o: &mut Outcomes, cx: &Ctx<'_>) {
    let Some((rp_id, rp_secret)) = o.step(
        "app add --confidential --id-token-alg RS256",
        add_confidential(
            cx.t,
            "Generic OIDC app",
            &["--redirect-uri", RP_REDIRECT, "--id-token-alg", "RS256"],
        ),
    ) else {
        return;
    };
    let spec = json!({"issuer": cx.issuer, "client_id": rp_id, "client_secret": rp_secret,
        "redirect_uri": RP_REDIRECT, "user": cx.user()});
    let out = o.step(
        "node oidc_client.mjs",
        cx.node("oidc_client.mjs", "oidc_client", &spec),
    );
    if let Some(r) = o.case("openid-client", out.as_ref(), "openid-client") {
        let c = &r["claims"];
        o.check(
            "openid-client: an RS256 ID token",
            s(r, "/id/header/alg") == "RS256",
            || r["id"]["header"].to_string(),
        );
        let algs = &r["discovery"]["id_token_signing_alg_values_supported"];
        o.check(
            "openid-client: discovery lists RS256 and ES256",
            algs.as_array()
                .is_some_and(|a| a.contains(&json!("RS256")) && a.contains(&json!("ES256"))),
            || r["discovery"].to_string(),
        );
        o.check(
            "openid-client: email and email_verified from the synced mail",
            same(s(c, "/email"), &cx.ad.user.mail) && c["email_verified"] == true,
            || c.to_string(),
        );
        o.check(
            "openid-client: the profile claims",
            s(c, "/given_name") == "Ada"
                && s(c, "/family_name") == "Lovelace"
                && s(c, "/name") == "Ada Lovelace"
                && same(s(c, "/preferred_username"), &cx.ad.user.upn)
                && s(c, "/ver") == "2.0"
                && !s(c, "/sid").is_empty(),
            || c.to_string(),
        );
        o.check(
            "openid-client: refreshed, still RS256",
            s(r, "/refreshed/id/header/alg") == "RS256",
            || r["refreshed"].to_string(),
        );
    }
    if let Some(r) = o.case("oauth2-proxy-style", out.as_ref(), "oauth2-proxy-style") {
        o.check(
            "oauth2-proxy-style: RS256, and the checks refuse another audience and issuer",
            s(r, "/alg") == "RS256"
                && r["other_audience_refused"].is_string()
                && r["other_issuer_refused"].is_string(),
            || r.to_string(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn real_client_libraries_sign_in_and_call_apis() -> anyhow::Result<()> {
    let started = Instant::now();
    js_dir()?;
    let corp = bed::corp()?;
    let dir = fresh_dir("app-developers")?;
    let results = dir.join("results");
    std::fs::create_dir_all(&results)?;
    let mut o = Outcomes::default();

    // The SPA's page origin first: its redirect URI is registered below.
    let spa_browser = if part("spa") {
        o.step(
            "start the SPA's browser script",
            SpaBrowser::start(&results),
        )
    } else {
        None
    };

    // The directory, the cloud, an agent that syncs (mail, groups) and signs in.
    let ad = directory(&corp).await?;
    let t = PtaSetup::new(&dir, &corp)
        .without_app()
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let sync =
        ForestEntry::for_forest(&corp).with_sync(&ad.sync_account, &ad.sync_password_file, 3600);
    let _agent = t.start_agent(&[sync])?;
    t.enable_pta()?;
    t.wait_synced(&ad.user.upn)?;
    let group_id = o.step("the group synced", wait_group(&t, &ad.group, &ad.user.upn));
    let authority = format!("{}/{}", t.cloud.url, t.cloud.tenant);
    let meta: Value = passthru_testkit::http::client(&t.cloud.ca_file())?
        .get(format!("{authority}/v2.0/.well-known/openid-configuration"))
        .send()
        .await?
        .json()
        .await?;
    let issuer = s(&meta, "/issuer").to_string();
    let tenant_id = issuer
        .strip_prefix(&format!("{}/", t.cloud.url))
        .and_then(|r| r.strip_suffix("/v2.0"))
        .ok_or_else(|| anyhow!("issuer {issuer} is not under {}", t.cloud.url))?
        .to_string();
    let cx = Ctx {
        t: &t,
        ad: &ad,
        host: t
            .cloud
            .url
            .strip_prefix("https://")
            .ok_or_else(|| anyhow!("{}", t.cloud.url))?
            .to_string(),
        authority,
        jwks_uri: s(&meta, "/jwks_uri").to_string(),
        issuer,
        tenant_id,
        ca_file: t.cloud.ca_file(),
        results: results.clone(),
    };

    let msal_parts = part("msal") || part("api");
    let apps = register(&mut o, &cx, group_id.as_deref(), msal_parts);
    let msal = if msal_parts {
        msal_node(&mut o, &cx, &apps)
    } else {
        None
    };
    let oid = if part("msal") {
        check_msal_node(&mut o, &cx, &apps, msal.as_ref())
    } else {
        String::new()
    };
    let spa_token = spa_browser.and_then(|b| spa(&mut o, &cx, &apps, b));
    if part("api") {
        api(&mut o, &cx, &apps, msal.as_ref(), spa_token, &oid);
    }
    // Rotating the web app's secret (after the rest: the old secret stops working).
    if let (true, Some((web_id, secret))) = (part("msal"), &apps.web) {
        let base =
            json!({"authority": cx.authority, "known_authority": cx.host, "user": cx.user()});
        let r = rotation(
            &mut o,
            &t,
            web_id,
            secret,
            &base,
            &apps.default_scope(),
            &results,
        );
        o.step(
            "secret rotation (app secret add, app credential list, app secret remove)",
            r,
        );
    }
    if part("oidc") {
        oidc(&mut o, &cx);
    }

    eprintln!(
        "app developers' libraries: {} checks passed, {} failed in {:.1} s (outputs in {})",
        o.passed,
        o.failures.len(),
        started.elapsed().as_secs_f64(),
        results.display()
    );
    ensure!(
        o.failures.is_empty(),
        "{} of {} checks failed (outputs in {}):\n\n{}",
        o.failures.len(),
        o.failures.len() + o.passed,
        results.display(),
        o.failures.join("\n\n")
    );
    Ok(())
}
