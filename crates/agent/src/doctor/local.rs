//! The checks that need nothing but this computer: the configuration file and the state dir
//! (owner and modes, registration, certificate and key).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use rustls::pki_types::pem::PemObject as _;

use super::{Check, DoctorOptions};
use crate::config::{AgentConfig, ConfigError};
use crate::state_dir::{AgentState, StateDir, Validity, CLIENT_KEY_FILE};

/// Loads the configuration, one check per problem (with its key path).
pub(super) fn check_config(path: &Path, checks: &mut Vec<Check>) -> Option<AgentConfig> {
    let subject = format!("config {}", path.display());
    match AgentConfig::load(path) {
        Ok(config) => {
            checks.push(Check::pass(
                &subject,
                "parse",
                format!(
                    "{} forest(s): {}",
                    config.forests.len(),
                    config
                        .forests
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            Some(config)
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            for p in problems {
                let key = if p.path.is_empty() {
                    "file".to_string()
                } else {
                    p.path
                };
                checks.push(Check::fail(
                    &subject,
                    &key,
                    p.message,
                    format!("edit {key} in {}", path.display()),
                ));
            }
            None
        }
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "parse",
                e.to_string(),
                "give --config the agent's configuration file (the package's is /etc/passthru-agent/agent.toml) and fix what the message names",
            ));
            None
        }
    }
}

/// Checks the state dir; returns what it holds when it loads.
pub(super) fn check_state(
    state: &StateDir,
    options: &DoctorOptions,
    checks: &mut Vec<Check>,
) -> Option<AgentState> {
    let subject = format!("state {}", state.path().display());
    let meta = match std::fs::metadata(state.path()) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            checks.push(Check::fail(
                &subject,
                "dir",
                "is not a directory",
                "give --state-dir the directory `passthru-agent register` wrote",
            ));
            return None;
        }
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "dir",
                format!("cannot be read: {e}"),
                "register the agent first (passthru-agent register --cloud URL --tenant NAME --state-dir DIR), or run doctor as the agent's user",
            ));
            return None;
        }
    };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() == me {
        checks.push(Check::pass(
            &subject,
            "owner",
            format!("owned by uid {me}, who runs doctor"),
        ));
    } else {
        checks.push(Check::fail(
            &subject,
            "owner",
            format!("owned by uid {}, but doctor runs as uid {me}", meta.uid()),
            "run doctor as the agent's user (sudo -u passthru-agent passthru-agent doctor ...); the agent must own its state dir",
        ));
    }
    let loose = state.loose_permissions();
    if loose.is_empty() {
        checks.push(Check::pass(
            &subject,
            "modes",
            "the directory is 0700 and its files 0600",
        ));
    } else {
        checks.push(Check::fail(
            &subject,
            "modes",
            format!(
                "readable by other users: {}",
                loose
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "chmod 700 {} and chmod 600 the files in it",
                state.path().display()
            ),
        ));
    }
    let agent = match state.load() {
        Ok(a) => a,
        Err(e) => {
            checks.push(Check::fail(
                &subject,
                "registration",
                e.to_string(),
                "register the agent (again) with passthru-agent register ... --force",
            ));
            return None;
        }
    };
    checks.push(Check::pass(
        &subject,
        "registration",
        format!(
            "agent {} of tenant {} ({}), cloud {}",
            agent.registration.agent_id,
            agent.registration.tenant_name,
            agent.registration.tenant_id,
            agent.registration.cloud_url
        ),
    ));
    let now = (options.now)().unix_timestamp();
    match Validity::of(&agent.client_cert_chain) {
        None => checks.push(Check::fail(
            &subject,
            "certificate",
            "the client certificate does not parse",
            "register the agent again with --force",
        )),
        Some(v) if v.not_after <= now => checks.push(Check::fail(
            &subject,
            "certificate",
            format!(
                "the agent's certificate expired on {}",
                passthru_directory::dc_tls::utc_text(v.not_after)
            ),
            format!(
                "register the agent again: passthru-agent register --cloud {} --tenant {} --state-dir {} --force",
                agent.registration.cloud_url,
                agent.registration.tenant_name,
                state.path().display()
            ),
        )),
        Some(v) => checks.push(Check::pass(
            &subject,
            "certificate",
            format!(
                "valid until {} ({} days left); renewed over the connection from {}",
                passthru_directory::dc_tls::utc_text(v.not_after),
                (v.not_after - now) / 86_400,
                passthru_directory::dc_tls::utc_text(v.renew_at())
            ),
        )),
    }
    checks.push(key_matches(state, &agent, &subject));
    Some(agent)
}

/// Whether the client key is the certificate's.
fn key_matches(state: &StateDir, agent: &AgentState, subject: &str) -> Check {
    let fix = "register the agent again with --force (the key and the certificate do not belong together)";
    let pem = match std::fs::read(state.file(CLIENT_KEY_FILE)) {
        Ok(p) => zeroize::Zeroizing::new(p),
        Err(e) => {
            return Check::fail(
                subject,
                "key",
                format!("cannot read the client key: {e}"),
                fix,
            )
        }
    };
    let key_public = rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem)
        .ok()
        .and_then(|der| rcgen::KeyPair::try_from(&der).ok())
        .map(|k| k.public_key_raw().to_vec());
    let cert_public = agent.client_cert_chain.first().and_then(|der| {
        x509_parser::parse_x509_certificate(der.as_ref())
            .ok()
            .map(|(_, c)| c.public_key().subject_public_key.data.to_vec())
    });
    match (key_public, cert_public) {
        (Some(k), Some(c)) if k == c => {
            Check::pass(subject, "key", "the client key matches the certificate")
        }
        (Some(_), Some(_)) => Check::fail(
            subject,
            "key",
            "the client key is not the certificate's",
            fix,
        ),
        _ => Check::fail(
            subject,
            "key",
            "the client key or certificate does not parse",
            fix,
        ),
    }
}
