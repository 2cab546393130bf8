//! `passthru-cloud serve` under systemd (`Type=notify`, the package's unit): `READY=1` once it
//! listens (the listener takes connections when it arrives), `WATCHDOG=1` every half
//! `WATCHDOG_USEC` (after the store answered), `STOPPING=1` on SIGTERM, each to the datagram
//! socket `NOTIFY_SOCKET` names; the real binary on a fresh data dir.

use std::error::Error;
use std::io::{BufRead as _, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_passthru-cloud");

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the server when dropped (a failed assertion must not leave it running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_notifies_ready_watchdog_and_stopping() -> Result<(), Box<dyn Error>> {
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "passthru-notify-it-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    )));
    std::fs::create_dir_all(&tmp.0)?;
    let data = tmp.0.join("data");
    let init = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&data)
        .args(["--tenant", "contoso", "--admin", "admin@contoso.example"])
        .env("PASSTHRU_ADMIN_PASSWORD", "Notify-Test-Admin-1")
        .stdin(Stdio::null())
        .output()?;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let socket_path = tmp.0.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path)?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut server = Running(
        Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = server.0.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let received = |until: &str| -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
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

    let ready = received("READY=1");
    assert!(ready.iter().any(|m| m == "READY=1\n"), "{ready:?}");
    // Ready means listening: the address is printed before, and it takes connections.
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(5))?;
        if let Some(addr) = line.strip_prefix("Passthru cloud listening on https://") {
            break addr.to_string();
        }
    };
    std::net::TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(2))?;

    let pings = received("WATCHDOG=1");
    assert!(pings.iter().any(|m| m == "WATCHDOG=1\n"), "{pings:?}");
    let started = Instant::now();
    let again = received("WATCHDOG=1");
    assert!(again.iter().any(|m| m == "WATCHDOG=1\n"), "{again:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.0.try_wait()? {
            break Some(exit);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");
    let stopping = received("STOPPING=1");
    assert!(stopping.iter().any(|m| m == "STOPPING=1\n"), "{stopping:?}");
    Ok(())
}
