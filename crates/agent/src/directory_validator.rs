//! The real [`Validator`]: `passthru_directory` (LDAPS binds to the forests' domain
//! controllers).

use passthru_directory::{DcHealth, Directory, DirectoryError, ForestConfig};
use passthru_proto::AgentError;

use crate::config::AgentConfig;
use crate::validator::{Validator, Verdict};

/// Validates passwords against the configured forests.
#[derive(Debug)]
pub struct DirectoryValidator {
    directory: Directory,
}

impl DirectoryValidator {
    /// Sets up the directory for the configuration's forests, and (inside a Tokio runtime,
    /// as in `passthru-agent run`) starts the background probes of domain controllers that
    /// go down.
    pub fn new(config: &AgentConfig) -> Result<DirectoryValidator, DirectoryError> {
        let forests = config
            .forests
            .iter()
            .map(|f| ForestConfig {
                name: f.name.clone(),
                upn_suffixes: f.upn_suffixes.clone(),
                domain_controllers: f.domain_controllers.clone(),
                ca_file: f.ca_file.clone(),
            })
            .collect();
        let directory = Directory::new(forests)?;
        directory.start_health_checks();
        Ok(DirectoryValidator { directory })
    }

    /// The health of each configured domain controller.
    pub fn health(&self) -> Vec<DcHealth> {
        self.directory.health()
    }
}

impl Validator for DirectoryValidator {
    fn domain_controllers(&self) -> Vec<passthru_proto::wire::DcStatus> {
        self.health()
            .into_iter()
            .map(|h| passthru_proto::wire::DcStatus {
                forest: h.forest,
                url: h.url.to_string(),
                up: h.up,
                since: h
                    .since
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .unwrap_or(0),
                consecutive_failures: h.consecutive_failures,
            })
            .collect()
    }

    async fn validate(&self, upn: &str, password: &str) -> Result<Verdict, AgentError> {
        match self.directory.validate(upn, password).await {
            Ok(passthru_directory::Verdict::Accepted(user)) => Ok(Verdict::Accepted(user)),
            Ok(passthru_directory::Verdict::Denied(win32)) => Ok(Verdict::Denied(win32)),
            Err(e) => {
                let error = e.agent_error();
                tracing::warn!(error = %e, code = error.aadsts().code(), "the directory gave no answer");
                Err(error)
            }
        }
    }
}
