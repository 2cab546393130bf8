//! `passthru-agent register`: sign the administrator in, make the TLS key (and its CSR) and
//! the HPKE key here, have the cloud issue the agent's certificate, and write the state dir.
//! No private key leaves this computer.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use passthru_client::{ClientError, CloudClient, ProxyRoute, RealClock, Refresh, Route};
use passthru_proto::admin::{RegisterAgentRequest, RegisterAgentResponse};
use passthru_proto::AgentKeyPair;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use crate::config::{AgentConfig, ConfigError};
use crate::connect::Endpoint;
use crate::lock::{self, LockError};
use crate::proxy::{ProxyError, ProxySettings};
use crate::state_dir::{
    Registration, StateDir, StateError, CLIENT_CERT_FILE, CLIENT_KEY_FILE, CLOUD_CA_FILE,
    HPKE_KEY_FILE, REGISTRATION_FILE,
};

/// What `register` was given.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// The cloud's URL.
    pub cloud: String,
    /// Tenant name or id.
    pub tenant: String,
    /// CA to trust for the cloud's certificate (copied to the state dir).
    pub ca_file: Option<PathBuf>,
    /// Where to write the state.
    pub state_dir: PathBuf,
    /// Replace an existing registration.
    pub force: bool,
    /// The HTTP CONNECT proxy to reach the cloud through ([`register_proxy`]); `None`:
    /// directly.
    pub proxy: Option<ProxySettings>,
    /// Sign in through a browser (device authorization grant) rather than with the password
    /// grant.
    pub device_code: bool,
}

/// Why registration failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The state dir already holds a registration and `--force` was not given.
    #[error(
        "{dir} already holds the registration of agent {agent}. To replace it, run register \
         again with --force (the old agent stays registered in the cloud until an administrator \
         revokes it); to run a second agent on this computer, give it another --state-dir."
    )]
    AlreadyRegistered {
        /// The state dir.
        dir: String,
        /// The registered agent's id (or a note when agent.json is unreadable).
        agent: String,
    },
    /// An agent is running on this state dir.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The state dir could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The cloud could not be used (bad URL or CA file, unreachable, untrusted, no
    /// credentials, a browser sign-in not completed in time or declined).
    #[error("{0}")]
    Cloud(#[source] ClientError),
    /// The administrator's sign-in was refused.
    #[error("{}", sign_in_text(tenant, source))]
    SignIn {
        /// The tenant given.
        tenant: String,
        /// The refusal.
        #[source]
        source: ClientError,
    },
    /// The cloud refused to register the agent.
    #[error("{}", register_text(tenant, source))]
    Refused {
        /// The tenant given.
        tenant: String,
        /// The refusal.
        #[source]
        source: ClientError,
    },
    /// The configuration file given with `--config` is wrong (its `[cloud]` table).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The proxy settings cannot be used.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The keys or the CSR could not be made.
    #[error("cannot make the agent's keys: {0}")]
    Keys(String),
    /// The cloud's answer is not usable.
    #[error("the cloud's answer to the registration is not usable ({0}); check that the cloud and the agent are the same version")]
    BadAnswer(String),
}

fn sign_in_text(tenant: &str, source: &ClientError) -> String {
    let ClientError::Rejected { code, description } = source else {
        return source.to_string();
    };
    let what_to_do = match code {
        50126 | 50034 => format!(
            "Check the administrator's user name and cloud password (PASSTHRU_ADMIN_UPN and \
             PASSTHRU_ADMIN_PASSWORD, or the prompt): it must be a Global Administrator or \
             Hybrid Identity Administrator of tenant '{tenant}'."
        ),
        90002 => format!("There is no tenant '{tenant}' on this cloud: check --tenant."),
        50076 | 50079 => "This administrator must prove a second factor, which the password \
             grant cannot ask for: run register again with --device-code and sign in through a \
             web browser."
            .to_string(),
        50053 => "The administrator's account is locked: wait and try again.".to_string(),
        _ => format!(
            "Sign in as a Global Administrator or Hybrid Identity Administrator of tenant \
             '{tenant}'."
        ),
    };
    format!("the cloud refused the administrator's sign-in: {description} {what_to_do}")
}

fn register_text(tenant: &str, source: &ClientError) -> String {
    match source {
        ClientError::Api {
            status: 403,
            description,
            ..
        } => format!(
            "the cloud refused to register the agent: {description} Sign in as a Global \
             Administrator or Hybrid Identity Administrator of tenant '{tenant}'."
        ),
        ClientError::Api {
            status: 401,
            description,
            ..
        } => format!(
            "the cloud did not accept the administrator's token: {description} Try again; if \
             it repeats, check that this computer's clock is right."
        ),
        other => format!("the cloud refused to register the agent: {other}"),
    }
}

/// The keys made for registration (and for each renewal).
pub(crate) struct NewKeys {
    pub(crate) tls_key_pem: Zeroizing<String>,
    pub(crate) csr_pem: String,
    pub(crate) hpke: AgentKeyPair,
}

pub(crate) fn make_keys() -> Result<NewKeys, RegisterError> {
    let keys_err = |e: rcgen::Error| RegisterError::Keys(e.to_string());
    let tls_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(keys_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(keys_err)?;
    // The cloud sets the certificate's subject itself; this one only labels the request.
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "passthru-agent");
    params.distinguished_name = dn;
    let csr_pem = params
        .serialize_request(&tls_key)
        .and_then(|csr| csr.pem())
        .map_err(keys_err)?;
    Ok(NewKeys {
        tls_key_pem: Zeroizing::new(tls_key.serialize_pem()),
        csr_pem,
        hpke: AgentKeyPair::generate(),
    })
}

/// The proxy `register` reaches `cloud` through: `[cloud] proxy` (and `proxy_auth_file`) of
/// `config` when given (only its `[cloud]` table is read), else `HTTPS_PROXY` as `env` gives
/// it, unless `NO_PROXY` names the cloud's host; `None` for a direct connection.
pub fn register_proxy(
    config: Option<&Path>,
    cloud: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ProxySettings>, RegisterError> {
    let configured = match config {
        Some(path) => AgentConfig::load_proxy(path)?,
        None => None,
    };
    let Some(proxy) = ProxySettings::resolve(configured.as_ref(), env)? else {
        return Ok(None);
    };
    // A URL that does not parse is reported by the client, with what to write.
    let host = url::Url::parse(cloud.trim())
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    Ok(host.filter(|h| proxy.applies_to(h)).map(|_| proxy))
}

/// The client's route for `proxy`.
fn route(proxy: Option<&ProxySettings>) -> Route {
    match proxy {
        None => Route::Direct,
        Some(proxy) => Route::Proxy(ProxyRoute {
            url: proxy.address().to_string(),
            basic_auth: proxy.credentials().map(|c| {
                (
                    c.user().to_string(),
                    Zeroizing::new(c.password().to_string()),
                )
            }),
            authentication_hint: proxy.authentication_hint(),
        }),
    }
}

/// The administrator's access token: through a browser with `--device-code` (the cloud's
/// sentence with the page and the code goes to standard error), else with the password grant
/// (credentials from the environment or the terminal).
async fn sign_in(
    client: &CloudClient,
    options: &RegisterOptions,
) -> Result<Zeroizing<String>, ClientError> {
    if options.device_code {
        let code = client
            .admin_device_code(&options.tenant, Refresh::NotWanted)
            .await?;
        eprintln!("{}", code.message);
        let tokens = client
            .admin_device_token(&options.tenant, &code, &mut RealClock::new())
            .await?;
        return Ok(tokens.access_token);
    }
    let (upn, password) = passthru_client::admin_credentials_from_env_or_prompt()?;
    let token = client.admin_token(&options.tenant, &upn, &password).await?;
    Ok(Zeroizing::new(token))
}

/// Registers the agent and writes its state dir; returns what was recorded.
pub async fn register(options: &RegisterOptions) -> Result<Registration, RegisterError> {
    let state = StateDir::new(&options.state_dir);
    if state.is_registered() && !options.force {
        let agent = state
            .registration()
            .map(|r| r.agent_id.to_string())
            .unwrap_or_else(|_| "(agent.json is unreadable)".to_string());
        return Err(RegisterError::AlreadyRegistered {
            dir: state.path().display().to_string(),
            agent,
        });
    }
    let client = CloudClient::with_route(
        &options.cloud,
        options.ca_file.as_deref(),
        route(options.proxy.as_ref()),
    )
    .map_err(RegisterError::Cloud)?;
    let token = sign_in(&client, options)
        .await
        .map_err(|source| match source {
            ClientError::Rejected { .. } => RegisterError::SignIn {
                tenant: options.tenant.clone(),
                source,
            },
            other => RegisterError::Cloud(other),
        })?;
    // Only now touch the disk: a failed sign-in leaves nothing behind. The lock keeps a
    // running agent's state dir from being replaced under it.
    state.create()?;
    let _lock = lock::acquire(state.path())?;

    let keys = make_keys()?;
    let request = RegisterAgentRequest {
        csr_pem: keys.csr_pem.clone(),
        hpke_public_key: B64.encode(keys.hpke.public_bytes()),
        host: crate::host::host_name(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let answer: RegisterAgentResponse = client
        .post_json(
            &format!("/{}/admin/agents/register", options.tenant),
            &token,
            &request,
        )
        .await
        .map_err(|source| match source {
            ClientError::Api { .. } => RegisterError::Refused {
                tenant: options.tenant.clone(),
                source,
            },
            other => RegisterError::Cloud(other),
        })?;

    // Check the answer before writing anything.
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(answer.certificate_pem.as_bytes()).collect();
    if !certs.is_ok_and(|c| !c.is_empty()) {
        return Err(RegisterError::BadAnswer(
            "certificate_pem holds no certificate".into(),
        ));
    }
    Endpoint::new(&answer.agent_endpoint, answer.tenant_id)
        .map_err(|e| RegisterError::BadAnswer(e.to_string()))?;

    // agent.json goes first and comes back last, so that a failure in between leaves "not
    // registered" rather than an old id with new keys.
    state.remove_file(REGISTRATION_FILE)?;
    state.write_file(CLIENT_KEY_FILE, keys.tls_key_pem.as_bytes())?;
    state.write_file(HPKE_KEY_FILE, keys.hpke.private_bytes())?;
    state.write_file(CLIENT_CERT_FILE, answer.certificate_pem.as_bytes())?;
    match &options.ca_file {
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|source| StateError::Io {
                what: "cannot read",
                path: ca.display().to_string(),
                source,
            })?;
            state.write_file(CLOUD_CA_FILE, &pem)?;
        }
        None => state.remove_file(CLOUD_CA_FILE)?,
    }
    let registration = Registration {
        agent_id: answer.agent_id,
        tenant_id: answer.tenant_id,
        tenant_name: answer.tenant_name,
        cloud_url: client.base_url().to_string(),
        agent_endpoint: answer.agent_endpoint,
        registered_at: time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
    };
    // Last: agent.json marks a complete registration.
    state.write_registration(&registration)?;
    match crate::admin_log::AdminLog::open(state.path()) {
        Ok(admin) => admin.record(
            "register",
            &format!(
                "registered as agent {} of tenant {} ({}) with the cloud {}{}",
                registration.agent_id,
                registration.tenant_name,
                registration.tenant_id,
                registration.cloud_url,
                if options.force {
                    " (replacing the previous registration)"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => tracing::warn!(error = %e, "cannot write the admin log"),
    }
    Ok(registration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_csr() -> Result<(), Box<dyn std::error::Error>> {
        let keys = make_keys()?;
        assert!(keys
            .csr_pem
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        assert!(keys.tls_key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // The cloud parses the CSR with rcgen too.
        let parsed = rcgen::CertificateSigningRequestParams::from_pem(&keys.csr_pem);
        assert!(parsed.is_ok());
        assert_eq!(keys.hpke.public_bytes().len(), 32);
        Ok(())
    }

    #[test]
    fn messages_say_what_to_do() {
        let wrong_password = RegisterError::SignIn {
            tenant: "contoso".into(),
            source: ClientError::Rejected {
                code: 50126,
                description:
                    "AADSTS50126: Error validating credentials due to invalid username or password."
                        .into(),
            },
        }
        .to_string();
        assert!(wrong_password.contains("AADSTS50126"));
        assert!(wrong_password.contains("PASSTHRU_ADMIN_PASSWORD"));
        let mfa = RegisterError::SignIn {
            tenant: "contoso".into(),
            source: ClientError::Rejected {
                code: 50076,
                description: "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access 'passthru-admin'.".into(),
            },
        }
        .to_string();
        assert!(
            mfa.contains("AADSTS50076") && mfa.contains("--device-code"),
            "{mfa}"
        );
        let not_admin = RegisterError::Refused {
            tenant: "contoso".into(),
            source: ClientError::Api {
                status: 403,
                error: "access_denied".into(),
                description: "'bob@contoso.example' is not allowed to do this: it needs the role GlobalAdministrator or HybridIdentityAdministrator.".into(),
            },
        }
        .to_string();
        assert!(not_admin.contains("needs the role"));
        assert!(not_admin.contains("Sign in as a Global Administrator"));
    }

    #[test]
    fn the_proxy_register_uses() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = crate::test_support::TempDir::new("register-proxy")?;
        let config = tmp.path().join("agent.toml");
        // Only [cloud] is read: no forest yet is fine.
        std::fs::write(&config, "[cloud]\nproxy = \"http://proxy.test:3128\"\n")?;
        let env = |var: &str| match var {
            "HTTPS_PROXY" => Some("http://env-proxy.test:8080".to_string()),
            "NO_PROXY" => Some("login.contoso.test".to_string()),
            _ => None,
        };
        let cloud = "https://login.contoso.test:8443";
        let p = register_proxy(Some(&config), cloud, env)?;
        assert_eq!(
            p.as_ref().map(|p| p.address().to_string()).as_deref(),
            Some("http://proxy.test:3128")
        );
        // The environment's proxy, but NO_PROXY names the cloud.
        assert!(register_proxy(None, cloud, env)?.is_none());
        let p = register_proxy(None, "https://other.test", env)?;
        assert_eq!(
            p.map(|p| p.describe()).as_deref(),
            Some("http://env-proxy.test:8080 (from HTTPS_PROXY, no authentication)")
        );
        assert!(register_proxy(None, cloud, |_| None)?.is_none());
        std::fs::write(&config, "[cloud]\nproxy = \"https://proxy.test:3128\"\n")?;
        let e = register_proxy(Some(&config), cloud, env).err();
        assert!(matches!(e, Some(RegisterError::Config(_))), "{e:?}");
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("cloud.proxy") && text.contains("TLS to the proxy"),
            "{text}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn refuses_to_overwrite_without_force() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = crate::test_support::TempDir::new("register-exists")?;
        let state = StateDir::new(tmp.path());
        let reg = Registration {
            agent_id: uuid::Uuid::new_v4(),
            tenant_id: uuid::Uuid::new_v4(),
            tenant_name: "contoso".into(),
            cloud_url: "https://127.0.0.1:1".into(),
            agent_endpoint: "https://127.0.0.1:1".into(),
            registered_at: "2026-01-01T00:00:00Z".into(),
        };
        state.write_registration(&reg)?;
        let options = RegisterOptions {
            cloud: "https://127.0.0.1:1".into(),
            tenant: "contoso".into(),
            ca_file: None,
            state_dir: tmp.path().to_path_buf(),
            force: false,
            proxy: None,
            device_code: false,
        };
        let err = register(&options).await;
        assert!(
            matches!(err, Err(RegisterError::AlreadyRegistered { ref agent, .. }) if *agent == reg.agent_id.to_string()),
            "{err:?}"
        );
        assert!(err
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("--force"));
        Ok(())
    }
}
