//! `passthru-agent collect-logs --out FILE.tar.gz`: the support bundle. It holds the
//! version, `status` and `doctor` (text and JSON), the configuration with secrets redacted,
//! the agent's logs (trace, admin, session), the registration record and a listing of the
//! state dir, and system facts (OS, kernel, time synchronisation). The state dir's files are
//! taken from an allow-list, so no private key, HPKE key or password file can enter it; the
//! configuration is re-written with every secret-looking value replaced.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use crate::doctor::{doctor, DoctorOptions};
use crate::state_dir::{
    StateDir, ADMIN_LOG_FILE, CONNECTION_FILE, FILE_MODE, REGISTRATION_FILE, SESSION_LOG_FILE,
    TRACE_LOG_FILE,
};

/// The value written instead of a secret.
pub const REDACTED: &str = "(redacted)";

/// Why the bundle could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// The output file could not be written.
    #[error("cannot write the support bundle {path}: {source} (check that its directory exists and has room)")]
    Write {
        /// The bundle.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// What went into the bundle.
#[derive(Debug)]
pub struct Bundle {
    /// The file written.
    pub path: PathBuf,
    /// The names inside it.
    pub entries: Vec<String>,
}

/// Whether a configuration key names a secret (its value is replaced); `*_file` keys name a
/// file and are kept (the file's content never enters the bundle).
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k.ends_with("_file") || k.ends_with("_files") {
        return false;
    }
    [
        "password",
        "secret",
        "token",
        "credential",
        "private",
        "auth",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// A URL's `user:password@` replaced.
fn without_userinfo(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username(REDACTED);
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => text.to_string(),
    }
}

fn redact_value(key: &str, value: &mut toml::Value) {
    match value {
        toml::Value::Table(t) => redact_table(t),
        toml::Value::Array(items) => {
            for v in items.iter_mut() {
                redact_value(key, v);
            }
        }
        toml::Value::String(s) if secret_key(key) => *s = REDACTED.to_string(),
        toml::Value::String(s) => *s = without_userinfo(s),
        other if secret_key(key) => *other = toml::Value::String(REDACTED.to_string()),
        _ => {}
    }
}

fn redact_table(table: &mut toml::Table) {
    for (k, v) in table.iter_mut() {
        redact_value(k, v);
    }
}

/// The configuration file's text with secrets redacted; a file that is not TOML is not
/// copied (it could hold anything), only described.
pub fn redacted_config(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut table) => {
            redact_table(&mut table);
            format!(
                "# The agent's configuration, re-written with secrets replaced by \"{REDACTED}\".\n{}",
                toml::to_string_pretty(&table).unwrap_or_default()
            )
        }
        Err(e) => format!(
            "# The configuration file is not valid TOML ({}); its text is left out because it could hold secrets.\n",
            e.message()
        ),
    }
}

/// Runs a command with a time-out, its output as text (or why not).
fn command_output(program: &str, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return format!("({program} not available: {e})\n"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return format!("({program} did not answer within 5 s)\n");
            }
        }
    }
    match child.wait_with_output() {
        Ok(o) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text
        }
        Err(e) => format!("({program}: {e})\n"),
    }
}

/// OS, kernel, host, time and its synchronisation.
fn system_facts(now: OffsetDateTime) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "collected at: {}\nhost: {}\n\n== /etc/os-release\n",
        crate::log_file::stamp(now),
        crate::host::host_name()
    ));
    out.push_str(
        &std::fs::read_to_string("/etc/os-release")
            .unwrap_or_else(|e| format!("(cannot read: {e})\n")),
    );
    out.push_str("\n== uname -a\n");
    out.push_str(&command_output("uname", &["-a"]));
    out.push_str("\n== timedatectl show (time synchronisation)\n");
    out.push_str(&command_output("timedatectl", &["show"]));
    out.push_str("\n== chronyc tracking\n");
    out.push_str(&command_output("chronyc", &["tracking"]));
    out
}

/// The state dir's files: name, size, mode, owner (never their content).
fn state_listing(state: &StateDir) -> String {
    let mut out = format!("{}\n", state.path().display());
    let mut entries: Vec<_> = match std::fs::read_dir(state.path()) {
        Ok(rd) => rd.filter_map(Result::ok).collect(),
        Err(e) => return format!("{out}(cannot list: {e})\n"),
    };
    entries.sort_by_key(|e| e.file_name());
    if let Ok(m) = std::fs::metadata(state.path()) {
        out.push_str(&format!(
            ".  mode {:o} uid {}\n",
            m.mode() & 0o7777,
            m.uid()
        ));
    }
    for e in entries {
        if let Ok(m) = e.metadata() {
            out.push_str(&format!(
                "{}  {} bytes  mode {:o}  uid {}\n",
                e.file_name().to_string_lossy(),
                m.len(),
                m.mode() & 0o7777,
                m.uid()
            ));
        }
    }
    out
}

/// The logs and records of the state dir that may leave it: the logs (with their rotated
/// copies) and the registration and connection records. Nothing else.
fn allowed_state_files(state: &StateDir) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for name in [REGISTRATION_FILE, CONNECTION_FILE] {
        let p = state.file(name);
        if p.is_file() {
            out.push((format!("state/{name}"), p));
        }
    }
    for log in [ADMIN_LOG_FILE, TRACE_LOG_FILE, SESSION_LOG_FILE] {
        let p = state.file(log);
        if p.is_file() {
            out.push((format!("logs/{log}"), p.clone()));
        }
        for n in 1..=1000u32 {
            let r = crate::log_file::rotated(&p, n);
            if !r.is_file() {
                break;
            }
            out.push((format!("logs/{log}.{n}"), r));
        }
    }
    out
}

/// Writes the bundle to `out` (0600).
pub async fn collect(
    state_dir: &Path,
    config: &Path,
    out: &Path,
    now: OffsetDateTime,
) -> Result<Bundle, CollectError> {
    let state = StateDir::new(state_dir);
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    files.push((
        "version.txt".into(),
        format!("passthru-agent {}\n", env!("CARGO_PKG_VERSION")).into_bytes(),
    ));
    files.push((
        "status.txt".into(),
        crate::status::status(&state, now)
            .unwrap_or_else(|e| format!("status failed: {e}\n"))
            .into_bytes(),
    ));
    let report = doctor(&DoctorOptions::new(
        state_dir.to_path_buf(),
        config.to_path_buf(),
    ))
    .await;
    files.push(("doctor.txt".into(), report.text().into_bytes()));
    files.push(("doctor.json".into(), report.json().into_bytes()));
    files.push((
        "config.toml".into(),
        match std::fs::read_to_string(config) {
            Ok(text) => redacted_config(&text),
            Err(e) => format!("# cannot read {}: {e}\n", config.display()),
        }
        .into_bytes(),
    ));
    files.push(("state-dir.txt".into(), state_listing(&state).into_bytes()));
    files.push(("system.txt".into(), system_facts(now).into_bytes()));
    for (name, path) in allowed_state_files(&state) {
        match std::fs::read(&path) {
            Ok(bytes) => files.push((name, bytes)),
            Err(e) => files.push((
                format!("{name}.unreadable.txt"),
                format!("cannot read {}: {e}\n", path.display()).into_bytes(),
            )),
        }
    }
    write_bundle(out, &files, now).map_err(|source| CollectError::Write {
        path: out.display().to_string(),
        source,
    })?;
    Ok(Bundle {
        path: out.to_path_buf(),
        entries: files.into_iter().map(|(n, _)| n).collect(),
    })
}

fn write_bundle(
    out: &Path,
    files: &[(String, Vec<u8>)],
    now: OffsetDateTime,
) -> std::io::Result<()> {
    // Written beside the target and renamed: a full disk leaves no half bundle.
    let partial = out.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&partial)?;
    let result = (|| {
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let top = format!("passthru-agent-support-{}", now.unix_timestamp());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
            header.set_mode(0o600);
            header.set_mtime(u64::try_from(now.unix_timestamp()).unwrap_or(0));
            header.set_cksum();
            tar.append_data(&mut header, format!("{top}/{name}"), bytes.as_slice())?;
        }
        let mut gz = tar.into_inner()?;
        gz.flush()?;
        let file = gz.finish()?;
        file.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&partial, out),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_paths_kept() {
        let text = r#"
[[forest]]
name = "corp.example"
service_account = "svc@corp.example"
service_password_file = "/etc/passthru-agent/sync.pw"
service_password = "Inline-Secret-1"
[cloud]
proxy = "http://alice:Proxy-Secret-2@proxy.example:3128"
proxy_auth_file = "/etc/passthru-agent/proxy.auth"
[updates]
public_key = "not-a-secret-but-kept"
token = 42
"#;
        let out = redacted_config(text);
        assert!(!out.contains("Inline-Secret-1"), "{out}");
        assert!(!out.contains("Proxy-Secret-2"), "{out}");
        assert!(!out.contains("alice"), "{out}");
        assert!(out.contains("/etc/passthru-agent/sync.pw"));
        assert!(out.contains("/etc/passthru-agent/proxy.auth"));
        assert!(out.contains("proxy.example:3128"));
        assert!(out.contains("svc@corp.example"));
        assert!(out.contains("not-a-secret-but-kept"));
        assert!(!out.contains("42"), "{out}");
        let broken = redacted_config("password = \"Leaked-3\" [");
        assert!(!broken.contains("Leaked-3"), "{broken}");
    }
}
