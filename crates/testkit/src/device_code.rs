//! A command that signs in with `--device-code` (`passthru-agent register`, `passthru-cloud
//! admin`), run as a real process without a terminal: [`DeviceCodeRun::start`] waits for the
//! cloud's sentence on its standard error and reads the page and the user code from it, so
//! that the test completes the browser side; [`DeviceCodeRun::finish`] waits for the end.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// How the sentence introduces the code (the cloud's `message`).
const CODE_MARK: &str = "enter the code ";
/// How it introduces the page.
const PAGE_MARK: &str = "open the page ";

/// The running command.
#[derive(Debug)]
pub struct DeviceCodeRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Standard error so far.
    stderr: String,
    /// The code to enter at [`DeviceCodeRun::verification_uri`].
    pub user_code: String,
    /// The page the sentence names.
    pub verification_uri: String,
}

/// How the command ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// The word after `mark` in `line`, without trailing punctuation.
fn word_after(line: &str, mark: &str) -> Option<String> {
    let rest = line.split(mark).nth(1)?;
    let word = rest.split_whitespace().next()?;
    Some(word.trim_end_matches(['.', ',']).to_string())
}

impl DeviceCodeRun {
    /// Starts `command` (standard input closed: no terminal) and waits up to `timeout` for the
    /// line with the user code.
    pub fn start(mut command: Command, timeout: Duration) -> anyhow::Result<DeviceCodeRun> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the device code command")?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no standard error to read"))?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = DeviceCodeRun {
            child,
            lines,
            stderr: String::new(),
            user_code: String::new(),
            verification_uri: String::new(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match run.lines.recv_timeout(left) {
                Ok(line) => {
                    run.stderr.push_str(&line);
                    run.stderr.push('\n');
                    if let Some(code) = word_after(&line, CODE_MARK) {
                        run.user_code = code;
                        run.verification_uri = word_after(&line, PAGE_MARK).unwrap_or_default();
                        return Ok(run);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "no user code within {timeout:?}; standard error: {}",
                        run.stderr
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = run.child.wait();
                    bail!(
                        "the command ended without printing a user code; standard error: {}",
                        run.stderr
                    )
                }
            }
        }
    }

    /// Waits up to `timeout` for the command to end (killed after that); its output.
    pub fn finish(mut self, timeout: Duration) -> anyhow::Result<Finished> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "the command did not end within {timeout:?}; standard error: {}",
                    self.stderr
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout)?;
        }
        // The reader thread ends with the pipe.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stderr.push_str(&line);
            self.stderr.push('\n');
        }
        Ok(Finished {
            status,
            stdout,
            stderr: std::mem::take(&mut self.stderr),
        })
    }
}

impl Drop for DeviceCodeRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clouds_sentence() {
        let line = "To sign in, use a web browser to open the page https://127.0.0.1:8443/contoso/devicelogin and enter the code BCDF-GHJK to authenticate.";
        assert_eq!(word_after(line, CODE_MARK).as_deref(), Some("BCDF-GHJK"));
        assert_eq!(
            word_after(line, PAGE_MARK).as_deref(),
            Some("https://127.0.0.1:8443/contoso/devicelogin")
        );
        assert_eq!(word_after("nothing here", CODE_MARK), None);
    }
}
