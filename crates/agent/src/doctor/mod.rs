//! `passthru-agent doctor`: one command that answers "why does this agent not work". Every
//! check prints a PASS, FAIL or SKIP line; a failure says what to do. The checks, in the order
//! a sign-in needs them: the configuration ([`local`]), the state dir ([`local`]), the way to
//! the cloud and the cloud's opinion of this agent ([`cloud`]), each domain controller of each
//! forest (`passthru_directory::diagnose`), and the proxy in use. A failing check does not
//! hide the ones after it: only the checks that need what failed are skipped.
//!
//! Time is passed in ([`DoctorOptions::now`]), so the clock checks are tested with a skewed
//! clock.

mod cloud;
mod local;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::AgentConfig;
use crate::state_dir::StateDir;

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It worked.
    Pass,
    /// It failed: see the fix.
    Fail,
    /// It did not run, because what it needs failed or is not configured.
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `config`, `state`, `cloud https://HOST:PORT`, `dc FOREST URL`, `proxy`.
    pub subject: String,
    /// The step: `parse`, `dns`, `tcp`, `tls`, `agent`, `clock`, ...
    pub step: String,
    /// How it ended.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub(crate) fn pass(subject: &str, step: &str, detail: impl Into<String>) -> Check {
        Check {
            subject: subject.to_string(),
            step: step.to_string(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub(crate) fn fail(
        subject: &str,
        step: &str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            subject: subject.to_string(),
            step: step.to_string(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub(crate) fn skip(subject: &str, step: &str, detail: impl Into<String>) -> Check {
        Check {
            subject: subject.to_string(),
            step: step.to_string(),
            status: Status::Skip,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// Every check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Whether every check passed (skipped ones aside).
    pub ok: bool,
    /// The agent's version.
    pub version: String,
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Report {
        Report {
            ok: !checks.iter().any(|c| c.status == Status::Fail),
            version: env!("CARGO_PKG_VERSION").to_string(),
            checks,
        }
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The report as text: one line per check, the fix indented under a failure, a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{} {}: {}: {}\n",
                c.status.label(),
                c.subject,
                c.step,
                c.detail
            ));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("     what to do: {fix}\n"));
            }
        }
        let failed = self.failures().count();
        if failed == 0 {
            out.push_str(&format!(
                "All checks passed ({} checks).\n",
                self.checks
                    .iter()
                    .filter(|c| c.status == Status::Pass)
                    .count()
            ));
        } else {
            out.push_str(&format!(
                "{failed} of {} checks failed: see the FAIL lines above.\n",
                self.checks.len()
            ));
        }
        out
    }

    /// The report as one JSON object.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// What `doctor` checks.
#[derive(Clone)]
pub struct DoctorOptions {
    /// The state dir written by `register`.
    pub state_dir: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// The clock the checks compare with the cloud's and the DCs'.
    pub now: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    /// Each network step's time-out.
    pub timeout: Duration,
}

impl std::fmt::Debug for DoctorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoctorOptions")
            .field("state_dir", &self.state_dir)
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl DoctorOptions {
    /// The options for the real clock and a 10 s time-out per step.
    pub fn new(state_dir: PathBuf, config: PathBuf) -> DoctorOptions {
        DoctorOptions {
            state_dir,
            config,
            now: Arc::new(OffsetDateTime::now_utc),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Runs every check.
pub async fn doctor(options: &DoctorOptions) -> Report {
    let mut checks = Vec::new();
    let config = local::check_config(&options.config, &mut checks);
    let state = StateDir::new(&options.state_dir);
    let agent = local::check_state(&state, options, &mut checks);
    cloud::check_cloud(agent.as_ref(), config.as_ref(), options, &mut checks).await;
    check_dcs(config.as_ref(), options, &mut checks).await;
    Report::new(checks)
}

/// Every DC of every forest.
async fn check_dcs(config: Option<&AgentConfig>, options: &DoctorOptions, checks: &mut Vec<Check>) {
    let Some(config) = config else {
        checks.push(Check::skip(
            "dc",
            "all",
            "not checked: the configuration does not load (see above)",
        ));
        return;
    };
    for forest in &config.forests {
        let password = match &forest.sync {
            Some(s) => match s.read_password() {
                Ok(p) => Some(p),
                Err(e) => {
                    checks.push(Check::fail(
                        &format!("forest {}", forest.name),
                        "service password",
                        format!(
                            "cannot read the service account's password file {}: {e}",
                            s.password_file.display()
                        ),
                        "create it readable by the agent's user only (install -m 0600 -o passthru-agent /dev/null FILE, then write the password in it)",
                    ));
                    None
                }
            },
            None => None,
        };
        let service = forest
            .sync
            .as_ref()
            .zip(password.as_ref())
            .map(|(s, p)| (s.service_account.as_str(), p.as_str()));
        for url in &forest.domain_controllers {
            let subject = format!("dc {} {url}", forest.name);
            let steps =
                passthru_directory::diagnose::check_dc(&passthru_directory::diagnose::DcCheck {
                    url,
                    ca_file: &forest.ca_file,
                    tls_server_name: forest.tls_server_name.as_deref(),
                    service,
                    timeout: options.timeout,
                    now_unix: (options.now)().unix_timestamp(),
                })
                .await;
            for step in steps {
                use passthru_directory::diagnose::Status as S;
                checks.push(Check {
                    subject: subject.clone(),
                    step: step.name.to_string(),
                    status: match step.status {
                        S::Pass => Status::Pass,
                        S::Fail => Status::Fail,
                        S::Skip => Status::Skip,
                    },
                    detail: step.detail,
                    fix: step.fix,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_say_what_failed_and_what_to_do() -> Result<(), serde_json::Error> {
        let report = Report::new(vec![
            Check::pass("config", "parse", "1 forest"),
            Check::fail("cloud https://x:443", "tcp", "refused", "start the cloud"),
            Check::skip("cloud https://x:443", "tls", "not checked: no TCP"),
        ]);
        assert!(!report.ok);
        let text = report.text();
        assert!(text.contains("PASS config: parse: 1 forest\n"));
        assert!(text.contains(
            "FAIL cloud https://x:443: tcp: refused\n     what to do: start the cloud\n"
        ));
        assert!(text.contains("SKIP cloud https://x:443: tls"));
        assert!(text.ends_with("1 of 3 checks failed: see the FAIL lines above.\n"));
        let json: serde_json::Value = serde_json::from_str(&report.json())?;
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][1]["status"], "fail");
        assert_eq!(json["checks"][1]["fix"], "start the cloud");
        assert!(json["checks"][0].get("fix").is_none());
        let good = Report::new(vec![Check::pass("config", "parse", "ok")]);
        assert!(good.ok && good.text().ends_with("All checks passed (1 checks).\n"));
        Ok(())
    }
}
