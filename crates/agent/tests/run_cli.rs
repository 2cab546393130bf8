//! `passthru-agent run` (the binary): starts from a state dir and a configuration, keeps
//! retrying an unreachable cloud, and exits 0 on SIGTERM; tells systemd it is ready, pings
//! its watchdog and says it is stopping; refuses to start beside another agent on the same
//! host.

use std::error::Error;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("passthru-run-it-{}", Uuid::new_v4())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Stops the child when dropped (a failed assertion must not leave an agent running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A registered state dir `root/name` whose cloud address refuses connections, and a
/// configuration for it (`root/name.toml`).
fn registered(root: &Path, name: &str) -> Result<(StateDir, PathBuf), Box<dyn Error>> {
    let state = StateDir::new(root.join(name));
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
    let config = root.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[[forest]]\nname = \"corp.example.test\"\nupn_suffixes = [\"corp.example.test\"]\n\
             domain_controllers = [\"ldaps://127.0.0.1:1\"]\nca_file = \"{}\"\n\n\
             [agent]\nmax_concurrency = 8\n",
            state.file(CLOUD_CA_FILE).display()
        ),
    )?;
    Ok((state, config))
}

/// `passthru-agent run` on `state` with `config` and the host lock `host_lock`, its log
/// lines sent to the returned channel.
fn start(
    state: &StateDir,
    config: &Path,
    host_lock: &Path,
    env: &[(&str, &Path)],
) -> Result<(Running, mpsc::Receiver<String>), Box<dyn Error>> {
    let mut command = Command::new(BIN);
    command
        .args(["run", "--state-dir"])
        .arg(state.path())
        .arg("--config")
        .arg(config)
        .arg("--host-lock")
        .arg(host_lock)
        .env("PASSTHRU_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Ok((Running(child), rx))
}

/// Log lines until one contains `needle` (or 20 s pass).
fn log_until(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let found = line.contains(needle);
            log.push(line);
            if found {
                break;
            }
        }
    }
    log
}

/// Sends SIGTERM and waits up to 15 s for the exit (`None`: still running, killed).
fn terminate(running: &mut Running) -> Result<Option<std::process::ExitStatus>, Box<dyn Error>> {
    // (It may have exited already; a zombie takes the signal all the same.)
    let _ = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(exit) = running.0.try_wait()? {
            return Ok(Some(exit));
        }
        if Instant::now() > deadline {
            let _ = running.0.kill();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_retries_then_stops_cleanly_on_sigterm() -> Result<(), Box<dyn Error>> {
    let tmp = TempDir::new();
    let (state, config) = registered(&tmp.0, "state")?;
    let (mut agent, rx) = start(&state, &config, &tmp.0.join("host.lock"), &[])?;
    let log = log_until(&rx, "reconnecting");
    assert!(
        log.iter().any(|l| l.contains("cannot reach the cloud")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.contains("reconnecting")), "{log:#?}");

    let exit = terminate(&mut agent)?;
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    let trace = state.file(TRACE_LOG_FILE);
    assert_eq!(
        std::fs::metadata(&trace)?.permissions().mode() & 0o777,
        0o600
    );
    Ok(())
}

/// One agent per host: a second `run`, with a registration and a state dir of its own but
/// the same host lock, is refused with a message naming the first (pid, state dir); once
/// the first has stopped, it starts.
#[test]
fn a_second_agent_on_the_host_is_refused() -> Result<(), Box<dyn Error>> {
    let tmp = TempDir::new();
    let host_lock = tmp.0.join("run").join("host.lock");
    let (first_state, first_config) = registered(&tmp.0, "first")?;
    let (second_state, second_config) = registered(&tmp.0, "second")?;
    let (mut first, rx) = start(&first_state, &first_config, &host_lock, &[])?;
    let log = log_until(&rx, "passthru-agent starting");
    assert!(
        log.iter().any(|l| l.contains("passthru-agent starting")),
        "{log:#?}"
    );

    let refused = Command::new(BIN)
        .args(["run", "--state-dir"])
        .arg(second_state.path())
        .arg("--config")
        .arg(&second_config)
        .env("PASSTHRU_AGENT_HOST_LOCK", &host_lock)
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    let named = format!(
        "another passthru-agent (pid {}, state dir {}) is already running on this host",
        first.0.id(),
        first_state.path().display()
    );
    assert!(
        stderr.contains(&named) && stderr.contains("one authentication agent per server"),
        "{stderr}"
    );

    assert!(terminate(&mut first)?.is_some_and(|e| e.success()));
    let (mut second, rx) = start(&second_state, &second_config, &host_lock, &[])?;
    let log = log_until(&rx, "passthru-agent starting");
    assert!(
        log.iter().any(|l| l.contains("passthru-agent starting")),
        "{log:#?}"
    );
    assert!(terminate(&mut second)?.is_some_and(|e| e.success()));
    Ok(())
}

/// Under systemd (`Type=notify`): `READY=1` once the connection loop starts (the cloud
/// being unreachable does not hold it), `WATCHDOG=1` every half `WATCHDOG_USEC`, and
/// `STOPPING=1` on SIGTERM, each to the datagram socket `NOTIFY_SOCKET` names.
#[test]
fn run_notifies_ready_watchdog_and_stopping() -> Result<(), Box<dyn Error>> {
    let tmp = TempDir::new();
    let (state, config) = registered(&tmp.0, "state")?;
    let socket_path = tmp.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let (mut agent, _rx) = start(
        &state,
        &config,
        &tmp.0.join("host.lock"),
        &[
            ("NOTIFY_SOCKET", &socket_path),
            ("WATCHDOG_USEC", Path::new("400000")),
        ],
    )?;
    let received = |until: &str| -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).to_string();
                let done = text.lines().any(|l| l == until);
                got.push(text);
                if done {
                    break;
                }
            }
        }
        got
    };
    let before = received("WATCHDOG=1");
    assert!(before.iter().any(|m| m == "READY=1\n"), "{before:?}");
    assert!(before.iter().any(|m| m == "WATCHDOG=1\n"), "{before:?}");
    // The pings go on, about every 200 ms.
    let started = Instant::now();
    let again = received("WATCHDOG=1");
    assert!(again.iter().any(|m| m == "WATCHDOG=1\n"), "{again:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let exit = terminate(&mut agent)?;
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    // Queued in the socket before the exit.
    let after = received("STOPPING=1");
    assert!(after.iter().any(|m| m == "STOPPING=1\n"), "{after:?}");
    Ok(())
}

/// A reader that goes away before the output is written (`passthru-agent helpmsg 1909 |
/// grep -q ...`) ends the command quietly, not with a panic.
#[test]
fn output_to_a_closed_pipe_is_not_a_panic() -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..5 {
        let mut child = std::process::Command::new(BIN)
            .args(["helpmsg", "1909"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        // Close the read end at once: the agent writes into a pipe nobody reads.
        drop(child.stdout.take());
        let out = child.wait_with_output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(out.status.success(), "{:?} {stderr}", out.status);
    }
    Ok(())
}
