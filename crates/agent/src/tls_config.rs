//! The agent's TLS client configuration: its client certificate and key from the state dir,
//! and the roots it trusts for the cloud: the system's, plus the CA it registered with
//! (`cloud-ca.pem`) when it has one.

use std::sync::Arc;

use passthru_client::ClientError;
use rustls::ClientConfig;

use crate::state_dir::AgentState;

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The roots to trust could not be loaded.
    #[error("cannot load the CA to trust for the cloud: {0}")]
    Roots(#[source] ClientError),
    /// The client certificate and key do not go together or are not usable.
    #[error(
        "the agent's client certificate or key in the state dir is not usable ({0}): register \
         the agent again with --force"
    )]
    ClientCertificate(#[source] rustls::Error),
}

/// Builds the configuration used for every connection to the cloud.
pub fn client_config(state: &AgentState) -> Result<Arc<ClientConfig>, TlsConfigError> {
    config_with(
        state.cloud_ca.as_deref(),
        state.client_cert_chain.clone(),
        state.client_key.clone_key(),
    )
}

/// The configuration for connections made with `chain` and `key` (the registered
/// certificate, or a renewed one).
pub fn config_with(
    cloud_ca: Option<&std::path::Path>,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let roots = passthru_client::tls::root_store(cloud_ca).map_err(TlsConfigError::Roots)?;
    let mut config = ClientConfig::builder_with_provider(passthru_client::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::ClientCertificate)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(TlsConfigError::ClientCertificate)?;
    // WebSocket upgrades are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
