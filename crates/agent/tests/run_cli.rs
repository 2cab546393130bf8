//! `passthru-agent run` (the binary): starts from a state dir and a configuration, keeps
//! retrying an unreachable cloud, and exits 0 on SIGTERM.

use std::error::Error;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use passthru_agent::state_dir::{
    Registration, StateDir, CLIENT_CERT_FILE, CLIENT_KEY_FILE, CLOUD_CA_FILE, HPKE_KEY_FILE,
    TRACE_LOG_FILE,
};
use passthru_proto::AgentKeyPair;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_passthru-agent");

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn run_retries_then_stops_cleanly_on_sigterm() -> Result<(), Box<dyn Error>> {
    let tmp = TempDir(std::env::temp_dir().join(format!("passthru-run-it-{}", Uuid::new_v4())));
    let state = StateDir::new(tmp.0.join("state"));
    state.create()?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])?.self_signed(&key)?;
    state.write_file(CLIENT_CERT_FILE, cert.pem().as_bytes())?;
    state.write_file(CLIENT_KEY_FILE, key.serialize_pem().as_bytes())?;
    state.write_file(CLOUD_CA_FILE, cert.pem().as_bytes())?;
    state.write_file(HPKE_KEY_FILE, AgentKeyPair::generate().private_bytes())?;
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    state.write_registration(&Registration {
        agent_id: Uuid::new_v4(),
        tenant_id: Uuid::new_v4(),
        tenant_name: "contoso".into(),
        cloud_url: format!("https://127.0.0.1:{dead_port}"),
        agent_endpoint: format!("https://127.0.0.1:{dead_port}"),
        registered_at: "2026-01-01T00:00:00Z".into(),
    })?;
    let config = tmp.0.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[[forest]]\nname = \"corp.example.test\"\nupn_suffixes = [\"corp.example.test\"]\n\
             domain_controllers = [\"ldaps://127.0.0.1:1\"]\nca_file = \"{}\"\n\n\
             [agent]\nmax_concurrency = 8\n",
            state.file(CLOUD_CA_FILE).display()
        ),
    )?;

    let mut child = Command::new(BIN)
        .args(["run", "--state-dir"])
        .arg(state.path())
        .arg("--config")
        .arg(&config)
        .env("PASSTHRU_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let retrying = line.contains("reconnecting");
            log.push(line);
            if retrying {
                break;
            }
        }
    }
    assert!(
        log.iter().any(|l| l.contains("cannot reach the cloud")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("reconnecting")), "{log:#?}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break Some(exit);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    let trace = state.file(TRACE_LOG_FILE);
    assert_eq!(
        std::fs::metadata(&trace)?.permissions().mode() & 0o777,
        0o600
    );
    Ok(())
}
