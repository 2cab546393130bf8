//! `passthru-agent status`: what the state dir says about this agent.

use std::fmt::Write as _;
use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::state_dir::{ConnectionRecord, StateDir, StateError, CLIENT_CERT_FILE, CLOUD_CA_FILE};

/// The status report for the state dir, at `now`.
pub fn status(state: &StateDir, now: OffsetDateTime) -> Result<String, StateError> {
    let loaded = state.load()?;
    let reg = &loaded.registration;
    let cert_path = state.file(CLIENT_CERT_FILE);
    let expiry = CertificateDer::from_pem_file(&cert_path)
        .ok()
        .and_then(|der| {
            x509_parser::parse_x509_certificate(der.as_ref())
                .ok()
                .map(|(_, cert)| cert.validity().not_after.timestamp())
        })
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
    let mut out = String::new();
    let _ = writeln!(out, "Agent id:        {}", reg.agent_id);
    let _ = writeln!(
        out,
        "Tenant:          {} ({})",
        reg.tenant_name, reg.tenant_id
    );
    let _ = writeln!(out, "Cloud:           {}", reg.cloud_url);
    let _ = writeln!(out, "Agent endpoint:  {}", reg.agent_endpoint);
    let _ = writeln!(
        out,
        "Connected to:    {}",
        connection_text(state.connection(), process_runs)
    );
    let _ = writeln!(out, "Registered at:   {}", reg.registered_at);
    match expiry {
        Some(at) => {
            let stamp = at.format(&Rfc3339).unwrap_or_default();
            let note = if at <= now {
                " (EXPIRED: register the agent again with --force)".to_string()
            } else {
                format!(" ({} days left)", (at - now).whole_days())
            };
            let _ = writeln!(out, "Certificate:     expires {stamp}{note}");
        }
        None => {
            let _ = writeln!(out, "Certificate:     unreadable ({})", cert_path.display());
        }
    }
    let _ = writeln!(out, "HPKE key id:     {}", loaded.hpke.key_id());
    let _ = writeln!(
        out,
        "Cloud CA:        {}",
        loaded
            .cloud_ca
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("system roots (no {CLOUD_CA_FILE})"))
    );
    Ok(out)
}

/// What `Connected to:` says, from the running agent's record and whether its process still
/// runs (`None`: cannot tell).
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
        let text = status(&state, now)?;
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
