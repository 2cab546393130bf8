//! The README's quickstart command itself: `bash scripts/demo.sh` comes up, a sign-in works
//! against it, and Ctrl-C (SIGINT) stops every process it started and removes its directory.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use passthru_testkit::http::SignInClient;
use serde_json::Value;

fn alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_comes_up_signs_in_and_cleans_up() -> anyhow::Result<()> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = Command::new("bash")
        .arg(repo.join("scripts/demo.sh"))
        .env("PASSTHRU_BIN_DIR", passthru_testkit::procs::bin_dir())
        .env("PASSTHRU_DEMO_LISTEN", "127.0.0.1:0")
        .env("PASSTHRU_DEMO_IP", "127.0.0.9")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut demo: Option<Value> = None;
    let mut seen = Vec::new();
    let mut lines_after = 0;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                if let Some(j) = line.strip_prefix("DEMO ") {
                    demo = Some(serde_json::from_str(j)?);
                } else {
                    seen.push(line.clone());
                }
                if demo.is_some() {
                    lines_after += 1;
                    if line.starts_with("Press Ctrl-C") {
                        break;
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if child.try_wait()?.is_some() {
                    anyhow::bail!("the demo exited early:\n{}", seen.join("\n"));
                }
            }
            Err(_) => anyhow::bail!("the demo closed its output:\n{}", seen.join("\n")),
        }
    }
    let demo =
        demo.ok_or_else(|| anyhow::anyhow!("the demo did not come up:\n{}", seen.join("\n")))?;
    assert!(lines_after >= 1);
    let printed = seen.join("\n");
    assert!(
        printed.contains("curl --cacert"),
        "the demo prints a curl line"
    );
    assert!(
        printed.contains("msal.PublicClientApplication"),
        "the demo prints an MSAL snippet"
    );

    let s = |k: &str| demo[k].as_str().unwrap_or_default().to_string();
    let client = SignInClient::new(
        std::path::Path::new(&s("ca_file")),
        &s("url"),
        &s("client_id"),
    )?;
    let r = client
        .password_with_scope("contoso", &s("username"), &s("password"), "openid")
        .await?;
    assert!(r.ok(), "sign-in against the demo failed: {:?}", r.body);

    // Ctrl-C.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()?;
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        anyhow::ensure!(
            Instant::now() < stop_deadline,
            "the demo did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the demo should exit cleanly on Ctrl-C: {status}"
    );
    for key in ["samba_pid", "cloud_pid", "agent_pid"] {
        let pid = demo[key]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no {key}"))?;
        assert!(!alive(pid), "{key} {pid} still runs after Ctrl-C");
    }
    assert!(
        !std::path::Path::new(&s("dir")).exists(),
        "the demo dir was not removed"
    );
    Ok(())
}
