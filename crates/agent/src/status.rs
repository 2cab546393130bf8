//! `passthru-agent status`: what the state dir says about this agent.

use std::fmt::Write as _;
use std::path::Path;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::state_dir::{ConnectionRecord, StateDir, StateError, CLIENT_CERT_FILE, CLOUD_CA_FILE};

/// The status report for the state dir, at `now`.
pub fn status(state: &StateDir, now: OffsetDateTime) -> Result<String, StateError> {
    let record = state.connection();
    let report = report_of(state, record.as_ref(), now)?;
    let cert_path = state.file(CLIENT_CERT_FILE);
    let mut out = String::new();
    let _ = writeln!(out, "Agent id:        {}", report.agent_id);
    let _ = writeln!(
        out,
        "Tenant:          {} ({})",
        report.tenant_name, report.tenant_id
    );
    let _ = writeln!(out, "Cloud:           {}", report.cloud_url);
    let _ = writeln!(out, "Agent endpoint:  {}", report.agent_endpoint);
    let _ = writeln!(
        out,
        "Connected to:    {}",
        connection_text(record, process_runs)
    );
    let _ = writeln!(out, "Registered at:   {}", report.registered_at);
    match (&report.cert_not_after, report.cert_days_left) {
        (Some(stamp), Some(days)) => {
            let note = if report.cert_expired {
                " (EXPIRED: register the agent again with --force)".to_string()
            } else {
                let renewal = match &report.cert_renew_at {
                    Some(at) if report.renewed_waiting => {
                        format!("; renewed, the renewed certificate is used at the next connection (renewal due {at})")
                    }
                    Some(at) => format!("; renewed over the connection from {at}"),
                    None => String::new(),
                };
                format!(" ({days} days left{renewal})")
            };
            let _ = writeln!(out, "Certificate:     expires {stamp}{note}");
        }
        _ => {
            let _ = writeln!(out, "Certificate:     unreadable ({})", cert_path.display());
        }
    }
    let _ = writeln!(out, "HPKE key id:     {}", report.hpke_key_id);
    let _ = writeln!(
        out,
        "Cloud CA:        {}",
        report
            .cloud_ca
            .clone()
            .unwrap_or_else(|| format!("system roots (no {CLOUD_CA_FILE})"))
    );
    Ok(out)
}

/// What `status --json` prints (no secret: ids, addresses, times).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusReport {
    /// This agent's id.
    pub agent_id: uuid::Uuid,
    /// Its tenant's id and name.
    pub tenant_id: uuid::Uuid,
    /// Its tenant's name.
    pub tenant_name: String,
    /// The cloud URL given to `register`.
    pub cloud_url: String,
    /// The base URL the agent dials.
    pub agent_endpoint: String,
    /// Whether an agent process runs on this state dir (`None`: cannot tell).
    pub running: Option<bool>,
    /// The cloud address it is connected to, when it is.
    pub connected_to: Option<String>,
    /// When it was registered (RFC 3339).
    pub registered_at: String,
    /// When the client certificate expires (RFC 3339); `None` when it cannot be read.
    pub cert_not_after: Option<String>,
    /// The same, Unix seconds.
    pub cert_not_after_unix: Option<i64>,
    /// Whole days left.
    pub cert_days_left: Option<i64>,
    /// Whether it has expired.
    pub cert_expired: bool,
    /// From when the running agent renews it (a third of its lifetime left; RFC 3339).
    pub cert_renew_at: Option<String>,
    /// Whether a renewed certificate waits for the next connection.
    pub renewed_waiting: bool,
    /// The HPKE key id requests are sealed to.
    pub hpke_key_id: String,
    /// The CA file trusted for the cloud, besides the system roots.
    pub cloud_ca: Option<String>,
}

fn rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// The state dir's status as data (for `status --json`).
pub fn report(state: &StateDir, now: OffsetDateTime) -> Result<StatusReport, StateError> {
    report_of(state, state.connection().as_ref(), now)
}

/// [`report`] with the connection record already read.
fn report_of(
    state: &StateDir,
    record: Option<&ConnectionRecord>,
    now: OffsetDateTime,
) -> Result<StatusReport, StateError> {
    let loaded = state.load()?;
    let reg = &loaded.registration;
    let validity = crate::state_dir::Validity::of(&loaded.client_cert_chain);
    let running = record.map_or(Some(false), |r| process_runs(r.pid));
    let connected_to = record
        .filter(|_| running != Some(false))
        .and_then(|r| r.address.clone());
    Ok(StatusReport {
        agent_id: reg.agent_id,
        tenant_id: reg.tenant_id,
        tenant_name: reg.tenant_name.clone(),
        cloud_url: reg.cloud_url.clone(),
        agent_endpoint: reg.agent_endpoint.clone(),
        running: if state.connection().is_some() {
            running
        } else {
            Some(false)
        },
        connected_to,
        registered_at: reg.registered_at.clone(),
        cert_not_after: validity.and_then(|v| rfc3339(v.not_after)),
        cert_not_after_unix: validity.map(|v| v.not_after),
        cert_days_left: validity.map(|v| (v.not_after - now.unix_timestamp()).max(0) / 86_400),
        cert_expired: validity.is_some_and(|v| v.not_after <= now.unix_timestamp()),
        cert_renew_at: validity.and_then(|v| rfc3339(v.renew_at())),
        renewed_waiting: loaded.renewed.is_some(),
        hpke_key_id: loaded.hpke.key_id(),
        cloud_ca: loaded.cloud_ca.map(|p| p.display().to_string()),
    })
}

fn connection_text(record: Option<ConnectionRecord>, runs: impl Fn(u32) -> Option<bool>) -> String {
    const NOT_RUNNING: &str = "none (the agent is not running)";
    let Some(record) = record else {
        return NOT_RUNNING.to_string();
    };
    let runs = runs(record.pid);
    if runs == Some(false) {
        return NOT_RUNNING.to_string();
    }
    let unsure = if runs.is_none() {
        "; cannot check that it still runs"
    } else {
        ""
    };
    match record.address {
        Some(address) => format!(
            "{address} (since {}, agent pid {}{unsure})",
            record.since, record.pid
        ),
        None => format!(
            "none yet (the agent, pid {}, is connecting since {}{unsure})",
            record.pid, record.since
        ),
    }
}

/// Whether process `pid` runs (Linux's /proc), `None` without /proc.
fn process_runs(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_dir::{
        Registration, CLIENT_KEY_FILE, CONNECTION_FILE, HPKE_KEY_FILE, REGISTRATION_FILE,
    };
    use crate::test_support::TempDir;

    fn record(address: Option<&str>) -> Option<ConnectionRecord> {
        Some(ConnectionRecord {
            pid: 4242,
            address: address.map(str::to_string),
            since: "2026-01-01T00:00:00Z".into(),
        })
    }

    #[test]
    fn the_connection_line() {
        let alive = |_| Some(true);
        assert_eq!(
            connection_text(record(Some("https://b.test:8443")), alive),
            "https://b.test:8443 (since 2026-01-01T00:00:00Z, agent pid 4242)"
        );
        assert_eq!(
            connection_text(record(None), alive),
            "none yet (the agent, pid 4242, is connecting since 2026-01-01T00:00:00Z)"
        );
        // A record left by an agent that was killed, or none at all.
        assert_eq!(
            connection_text(record(Some("https://b.test:8443")), |_| Some(false)),
            "none (the agent is not running)"
        );
        assert_eq!(
            connection_text(None, alive),
            "none (the agent is not running)"
        );
        assert!(
            connection_text(record(Some("https://b.test:8443")), |_| None)
                .ends_with("; cannot check that it still runs)")
        );
        assert_eq!(process_runs(std::process::id()), Some(true));
    }

    #[test]
    fn status_keeps_its_lines_and_adds_the_connection() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("status")?;
        let state = StateDir::new(tmp.path());
        let key = rcgen::KeyPair::generate()?;
        let cert = rcgen::CertificateParams::new(vec!["agent".to_string()])?.self_signed(&key)?;
        state.write_file(CLIENT_CERT_FILE, cert.pem().as_bytes())?;
        state.write_file(CLIENT_KEY_FILE, key.serialize_pem().as_bytes())?;
        state.write_file(
            HPKE_KEY_FILE,
            passthru_proto::AgentKeyPair::generate().private_bytes(),
        )?;
        state.write_registration(&Registration {
            agent_id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            tenant_name: "contoso".into(),
            cloud_url: "https://cloud.test:8443".into(),
            agent_endpoint: "https://cloud.test:8443".into(),
            registered_at: "2026-01-01T00:00:00Z".into(),
        })?;
        assert!(state.file(REGISTRATION_FILE).exists());
        let now = OffsetDateTime::now_utc();
        let json = serde_json::to_value(report(&state, now)?)?;
        let not_after = json["cert_not_after"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(not_after.len() >= 20 && not_after.ends_with('Z'), "{json}");
        assert_eq!(json["cert_expired"], false);
        assert_eq!(json["renewed_waiting"], false);
        assert_eq!(json["running"], false);
        assert!(
            json["cert_days_left"].as_i64().is_some_and(|d| d > 300),
            "{json}"
        );
        let text = status(&state, now)?;
        assert!(
            text.contains(&format!("Certificate:     expires {not_after}")),
            "{text}"
        );
        let labels: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(':').map(|(label, _)| label))
            .collect();
        assert_eq!(
            labels,
            [
                "Agent id",
                "Tenant",
                "Cloud",
                "Agent endpoint",
                "Connected to",
                "Registered at",
                "Certificate",
                "HPKE key id",
                "Cloud CA"
            ]
        );
        assert!(
            text.contains("\nCloud:           https://cloud.test:8443\n"),
            "{text}"
        );
        assert!(
            text.contains("\nConnected to:    none (the agent is not running)\n"),
            "{text}"
        );
        // This process plays the running agent.
        state.write_connection(Some("https://cloud2.test:8443"))?;
        let text = status(&state, now)?;
        assert!(
            text.contains(&format!(
                "\nConnected to:    https://cloud2.test:8443 (since {}",
                state.connection().map(|r| r.since).unwrap_or_default()
            )),
            "{text}"
        );
        state.remove_file(CONNECTION_FILE)?;
        Ok(())
    }
}
