//! The session (debug) log (`STATE_DIR/session.log`, mode 0600): everything the agent
//! traces at debug level, written only while an administrator has it on, without a restart:
//! `passthru-agent log-level debug|info --state-dir DIR` (which asks through the state dir's
//! `log-level` file and SIGUSR1), or SIGUSR1 alone, which switches it on or off. Off at every
//! start. The agent never traces a password, a token or key material, at any level.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::admin_log::AdminLog;
use crate::log_file::{LogFile, Rotation};
use crate::state_dir::{StateDir, FILE_MODE, LOG_LEVEL_FILE, SESSION_LOG_FILE};

/// Size at which the session log is rotated.
pub const MAX_BYTES: u64 = 20 * 1024 * 1024;
/// Rotated session logs kept.
pub const KEEP: u32 = 2;

/// The levels an administrator can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The session log on: every debug event.
    Debug,
    /// The session log off (the process log keeps its own level).
    Info,
}

impl Level {
    /// `debug` or `info`.
    pub fn parse(text: &str) -> Option<Level> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(Level::Debug),
            "info" => Some(Level::Info),
            _ => None,
        }
    }

    /// `debug` or `info`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
        }
    }
}

/// What the tracing set-up does when the session log is switched (its layer's filter is
/// changed, so that while the log is off no debug event is even looked at).
type OnSwitch = Box<dyn Fn(bool) + Send + Sync>;

/// The session log's switch and file. One per process; the tracing layer and the signal
/// handler share it.
pub struct SessionLog {
    path: PathBuf,
    on: AtomicBool,
    file: Mutex<Option<LogFile>>,
    on_switch: Mutex<Option<OnSwitch>>,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog")
            .field("path", &self.path)
            .field("on", &self.on)
            .finish_non_exhaustive()
    }
}

impl SessionLog {
    /// The session log of the state dir `state_dir`, off.
    pub fn new(state_dir: &Path) -> Arc<SessionLog> {
        Arc::new(SessionLog {
            path: state_dir.join(SESSION_LOG_FILE),
            on: AtomicBool::new(false),
            file: Mutex::new(None),
            on_switch: Mutex::new(None),
        })
    }

    /// Calls `f` with the new state at every switch (the tracing layer's filter).
    pub fn on_switch(&self, f: OnSwitch) {
        *self.on_switch.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    fn switched(&self, on: bool) {
        if let Some(f) = self
            .on_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f(on);
        }
    }

    /// Whether debug events are written now.
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// The level in effect.
    pub fn level(&self) -> Level {
        if self.is_on() {
            Level::Debug
        } else {
            Level::Info
        }
    }

    /// Switches to `level`: `Debug` opens (or creates, 0600) the file and writes to it,
    /// `Info` stops writing and closes it.
    pub fn set(&self, level: Level) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match level {
            Level::Debug => {
                if file.is_none() {
                    *file = Some(LogFile::open(
                        &self.path,
                        Rotation {
                            max_bytes: MAX_BYTES,
                            keep: KEEP,
                        },
                    )?);
                }
                self.on.store(true, Ordering::Relaxed);
            }
            Level::Info => {
                self.on.store(false, Ordering::Relaxed);
                *file = None;
            }
        }
        drop(file);
        self.switched(level == Level::Debug);
        Ok(())
    }

    /// Writes one formatted event (whole lines).
    fn write(&self, bytes: &[u8]) {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = file.as_ref() {
            // A session log that cannot be written is not worth failing anything for.
            let _ = f.append(bytes);
        }
    }

    /// Reopens the file after an outside rename (SIGHUP), when it is on.
    pub fn reopen(&self) -> std::io::Result<()> {
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match file.as_ref() {
            Some(f) => f.reopen(),
            None => Ok(()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The writer the tracing layer formats each event into.
#[derive(Debug)]
pub struct SessionWriter(Arc<SessionLog>);

impl std::io::Write for SessionWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Makes a [`SessionWriter`] per event.
#[derive(Debug, Clone)]
pub struct MakeSessionWriter(pub Arc<SessionLog>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeSessionWriter {
    type Writer = SessionWriter;

    fn make_writer(&'a self) -> SessionWriter {
        SessionWriter(Arc::clone(&self.0))
    }
}

/// What one SIGUSR1 asks for: the level in the state dir's `log-level` file when there is
/// one (written by `passthru-agent log-level`, then removed), else the other level.
pub(crate) fn requested(file_content: Option<&str>, now: Level) -> Level {
    match file_content.and_then(Level::parse) {
        Some(level) => level,
        None => match now {
            Level::Debug => Level::Info,
            Level::Info => Level::Debug,
        },
    }
}

/// Reads and removes the state dir's `log-level` file.
fn take_request(state: &StateDir) -> Option<String> {
    let path = state.file(LOG_LEVEL_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    Some(text)
}

/// Applies `level`, saying so in the admin log.
pub(crate) fn apply(session: &SessionLog, level: Level, admin: &AdminLog) {
    match session.set(level) {
        Ok(()) => match level {
            Level::Debug => admin.record(
                "log",
                &format!("session log on (debug): {}", session.path().display()),
            ),
            Level::Info => admin.record("log", "session log off (info)"),
        },
        Err(e) => admin.record(
            "log",
            &format!(
                "cannot open the session log {}: {e}; it stays off",
                session.path().display()
            ),
        ),
    }
}

/// Switches the session log on every SIGUSR1 (see [`requested`]), until the process ends.
/// The handler is in place when this returns.
pub fn switch_on_sigusr1(
    session: Arc<SessionLog>,
    state: StateDir,
    admin: AdminLog,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut usr1 = signal(SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let asked = take_request(&state);
            let level = requested(asked.as_deref(), session.level());
            apply(&session, level, &admin);
        }
    });
    Ok(())
}

/// Why `passthru-agent log-level` could not ask.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogLevelError {
    /// No agent runs on the state dir.
    #[error("no agent is running on {0}: start it (systemctl start passthru-agent), then ask again; the session log is off at every start")]
    NotRunning(String),
    /// The request could not be written or the agent not signalled.
    #[error("cannot ask the agent on {dir}: {detail}")]
    Io {
        /// The state dir.
        dir: String,
        /// What failed.
        detail: String,
    },
}

/// `passthru-agent log-level LEVEL`: writes the request to the state dir and signals the
/// agent that holds its lock (SIGUSR1). Returns the agent's pid.
pub fn ask(state_dir: &Path, level: Level) -> Result<u32, LogLevelError> {
    let dir = state_dir.display().to_string();
    let pid = match crate::lock::acquire(state_dir) {
        Ok(lock) => {
            drop(lock);
            return Err(LogLevelError::NotRunning(dir));
        }
        Err(crate::lock::LockError::Held { .. }) => {
            crate::lock::holder_pid(state_dir).ok_or_else(|| LogLevelError::Io {
                dir: dir.clone(),
                detail: "the lock file does not say which process holds it".into(),
            })?
        }
        Err(e) => {
            return Err(LogLevelError::Io {
                dir,
                detail: e.to_string(),
            })
        }
    };
    let io = |e: std::io::Error| LogLevelError::Io {
        dir: dir.clone(),
        detail: e.to_string(),
    };
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(state_dir.join(LOG_LEVEL_FILE))
            .map_err(io)?;
        f.write_all(level.name().as_bytes()).map_err(io)?;
    }
    let process =
        rustix::process::Pid::from_raw(i32::try_from(pid).unwrap_or(0)).ok_or_else(|| {
            LogLevelError::Io {
                dir: dir.clone(),
                detail: format!("'{pid}' is not a process id"),
            }
        })?;
    rustix::process::kill_process(process, rustix::process::Signal::USR1).map_err(|e| {
        LogLevelError::Io {
            dir: dir.clone(),
            detail: format!("cannot signal pid {pid}: {e}"),
        }
    })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn sigusr1_toggles_unless_asked() {
        assert_eq!(requested(None, Level::Info), Level::Debug);
        assert_eq!(requested(None, Level::Debug), Level::Info);
        assert_eq!(requested(Some("debug\n"), Level::Debug), Level::Debug);
        assert_eq!(requested(Some("INFO"), Level::Debug), Level::Info);
        assert_eq!(requested(Some("info"), Level::Info), Level::Info);
        // Nonsense in the file: a toggle, as SIGUSR1 alone.
        assert_eq!(requested(Some("verbose"), Level::Info), Level::Debug);
    }

    #[test]
    fn writes_only_while_on() -> Result<(), Box<dyn std::error::Error>> {
        let dir = crate::test_support::TempDir::new("session-log")?;
        let admin = AdminLog::open(dir.path())?;
        let session = SessionLog::new(dir.path());
        let mut w = MakeSessionWriter(Arc::clone(&session));
        use tracing_subscriber::fmt::MakeWriter as _;
        w.make_writer().write_all(b"before\n")?;
        assert!(!session.path().exists());
        apply(&session, Level::Debug, &admin);
        w.make_writer().write_all(b"during\n")?;
        apply(&session, Level::Info, &admin);
        w.make_writer().write_all(b"after\n")?;
        w = MakeSessionWriter(Arc::clone(&session));
        w.make_writer().write_all(b"still off\n")?;
        assert_eq!(std::fs::read_to_string(session.path())?, "during\n");
        let admin_text = std::fs::read_to_string(dir.path().join("admin.log"))?;
        assert!(
            admin_text.contains("[log] session log on (debug)"),
            "{admin_text}"
        );
        assert!(
            admin_text.contains("[log] session log off (info)"),
            "{admin_text}"
        );
        Ok(())
    }

    #[test]
    fn asking_with_no_agent_running_says_so() -> Result<(), Box<dyn std::error::Error>> {
        let dir = crate::test_support::TempDir::new("log-level")?;
        let err = ask(dir.path(), Level::Debug)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no agent is running"), "{err}");
        assert!(!dir.path().join(LOG_LEVEL_FILE).exists());
        Ok(())
    }
}
