//! The real [`Validator`]: `passthru_directory` (LDAPS binds to the forests' domain
//! controllers).

use passthru_directory::{
    DcHealth, Directory, DirectoryError, ForestConfig, PasswordWrite, SyncCredentials,
    WriteVerdict, WritebackScope,
};
use passthru_proto::sync::{SyncBatch, SyncDone, SyncForest, SyncRun};
use passthru_proto::{AgentError, PasswordOperation};
use tokio::sync::mpsc;

use crate::config::AgentConfig;
use crate::validator::{Validator, Verdict};

/// Validates passwords against the configured forests, and syncs those with a service
/// account.
#[derive(Debug)]
pub struct DirectoryValidator {
    directory: Directory,
    /// Per forest name: the service account and how often the cloud should run sync.
    sync: Vec<(String, SyncCredentials, std::time::Duration, Vec<String>)>,
    /// Per forest name: which accounts password writeback may write.
    writeback: Vec<(String, WritebackScope)>,
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
                bind_dn_template: f.bind_dn_template.clone(),
                tls_server_name: f.tls_server_name.clone(),
            })
            .collect();
        let directory = Directory::new(forests)?;
        directory.start_health_checks();
        let mut sync = Vec::new();
        for f in &config.forests {
            let Some(s) = &f.sync else { continue };
            let password = s.read_password().map_err(|e| {
                DirectoryError::Config(format!(
                    "forest {}: cannot read the service account's password file {}: {e}",
                    f.name,
                    s.password_file.display()
                ))
            })?;
            let creds = SyncCredentials {
                account: s.service_account.clone(),
                password,
            };
            sync.push((f.name.clone(), creds, s.interval, f.upn_suffixes.clone()));
        }
        let writeback = config
            .forests
            .iter()
            .map(|f| (f.name.clone(), f.writeback.clone()))
            .collect();
        Ok(DirectoryValidator {
            directory,
            sync,
            writeback,
        })
    }

    /// The health of each configured domain controller.
    pub fn health(&self) -> Vec<DcHealth> {
        self.directory.health()
    }
}

impl Validator for DirectoryValidator {
    fn sync_forests(&self) -> Vec<SyncForest> {
        self.sync
            .iter()
            .map(|(forest, _, interval, suffixes)| SyncForest {
                forest: forest.to_ascii_lowercase(),
                interval_seconds: interval.as_secs().max(1),
                upn_suffixes: suffixes.clone(),
            })
            .collect()
    }

    async fn sync(&self, run: SyncRun, out: mpsc::Sender<SyncBatch>) -> Result<SyncDone, String> {
        let Some((name, creds, _, _)) = self
            .sync
            .iter()
            .find(|(name, ..)| name.eq_ignore_ascii_case(&run.forest))
        else {
            return Err(format!(
                "this agent has no service account for forest {}",
                run.forest
            ));
        };
        self.directory
            .sync_run(name, creds, &run, &out)
            .await
            .map_err(|e| e.to_string())
    }

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

    async fn write_password(
        &self,
        upn: &str,
        old: &str,
        operation: &PasswordOperation,
    ) -> Result<Verdict, AgentError> {
        let write = match operation {
            PasswordOperation::Change { new_password } => PasswordWrite::Change {
                old,
                new: new_password,
            },
            PasswordOperation::Reset {
                new_password,
                must_change,
            } => PasswordWrite::Reset {
                new: new_password,
                must_change: *must_change,
            },
            _ => return Err(AgentError::DirectoryError),
        };
        // Writeback uses the service account of the user's forest (the one sync uses), within
        // the forest's writeback scope.
        let forest = self.directory.route(upn).map(|f| f.name().to_string());
        let service = forest.as_deref().and_then(|forest| {
            self.sync
                .iter()
                .find(|(name, ..)| name.eq_ignore_ascii_case(forest))
                .map(|(_, creds, ..)| creds)
        });
        let scope = forest
            .as_deref()
            .and_then(|forest| {
                self.writeback
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(forest))
                    .map(|(_, scope)| scope.clone())
            })
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        match self
            .directory
            .write_password(upn, write, service, &scope, now)
            .await
        {
            Ok(WriteVerdict::Written(user)) => Ok(Verdict::Accepted(user)),
            Ok(WriteVerdict::Denied(win32)) => Ok(Verdict::Denied(win32)),
            Ok(WriteVerdict::Refused(refusal)) => Ok(Verdict::Refused(refusal)),
            Err(e) => {
                let error = e.agent_error();
                tracing::warn!(error = %e, operation = operation.name(), code = error.aadsts().code(), "password writeback failed");
                Err(error)
            }
        }
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
