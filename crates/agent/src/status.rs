//! `passthru-agent status`: what the state dir says about this agent.

use std::fmt::Write as _;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::state_dir::{StateDir, StateError, CLIENT_CERT_FILE, CLOUD_CA_FILE};

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
