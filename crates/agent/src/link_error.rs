//! Why a connection to the cloud failed or ended. Every one of these is logged and followed
//! by a reconnect (with backoff); the texts say what an operator can do.

use std::error::Error as StdError;

/// Why a connection to the cloud could not be made, or ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// `agent_endpoint` in `agent.json` is not a usable `https://host[:port]` URL.
    #[error(
        "the agent endpoint '{endpoint}' recorded at registration is not usable ({detail}): \
         register the agent again with --force"
    )]
    BadEndpoint {
        /// The recorded endpoint.
        endpoint: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No TCP connection could be made.
    #[error(
        "cannot reach the cloud at {endpoint} ({detail}): check that the cloud is running and \
         that outbound HTTPS to it is allowed"
    )]
    Unreachable {
        /// host:port.
        endpoint: String,
        /// What the network stack said.
        detail: String,
    },
    /// No TCP connection could be made to the proxy the agent reaches the cloud through.
    #[error(
        "cannot reach the proxy {proxy} ({detail}): check [cloud] proxy in the configuration \
         file (or HTTPS_PROXY), and that the proxy runs and this computer may connect to it"
    )]
    ProxyUnreachable {
        /// `http://host:port` of the proxy.
        proxy: String,
        /// What the network stack said.
        detail: String,
    },
    /// The proxy answered `CONNECT` with 407 Proxy Authentication Required.
    #[error("the proxy {proxy} answered 407 Proxy Authentication Required: {hint}")]
    ProxyAuthentication {
        /// `http://host:port` of the proxy.
        proxy: String,
        /// Whether credentials were sent, and where to check them.
        hint: String,
    },
    /// The proxy refused to open the tunnel (any other status than 2xx and 407).
    #[error(
        "the proxy {proxy} refused to open a tunnel to the cloud at {target} (HTTP {status} \
         {reason}): ask the proxy's administrator to allow CONNECT to {target}, or check \
         [cloud] proxy"
    )]
    ProxyRefused {
        /// `http://host:port` of the proxy.
        proxy: String,
        /// The `host:port` asked for.
        target: String,
        /// The proxy's status.
        status: u16,
        /// The proxy's reason phrase.
        reason: String,
    },
    /// The proxy's answer to `CONNECT` is not a usable HTTP answer.
    #[error(
        "the proxy {proxy} did not answer CONNECT properly: {detail}. Check that [cloud] proxy \
         (or HTTPS_PROXY) names an HTTP proxy's port"
    )]
    ProxyAnswer {
        /// `http://host:port` of the proxy.
        proxy: String,
        /// What was wrong.
        detail: String,
    },
    /// A step took too long.
    #[error("timed out {stage} ({endpoint})")]
    Timeout {
        /// host:port.
        endpoint: String,
        /// The step, e.g. "connecting".
        stage: &'static str,
    },
    /// The cloud's certificate is not trusted.
    #[error(
        "the cloud's TLS certificate is not trusted ({detail}): put the CA that issued it \
         (the cloud's DIR/tls/ca.pem) in the state dir as cloud-ca.pem, or register again with \
         --ca-file"
    )]
    UntrustedCertificate {
        /// Why.
        detail: String,
    },
    /// The cloud refused the agent's client certificate during the TLS handshake.
    #[error(
        "the cloud refused this agent's client certificate ({detail}): the agent may have \
         been revoked or its certificate may have expired; register it again with --force"
    )]
    CertificateRefused {
        /// The TLS alert.
        detail: String,
    },
    /// Another TLS failure.
    #[error("TLS failure talking to the cloud: {detail}")]
    Tls {
        /// What rustls said.
        detail: String,
    },
    /// The cloud answered the WebSocket upgrade with an HTTP error.
    #[error("the cloud refused the agent's connection (HTTP {status}): {detail}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The cloud's explanation.
        detail: String,
    },
    /// The WebSocket handshake failed otherwise.
    #[error("the WebSocket handshake with the cloud failed: {detail}")]
    Handshake {
        /// What tungstenite said.
        detail: String,
    },
    /// The cloud did not follow the protocol.
    #[error("protocol error: {detail}")]
    Protocol {
        /// What was unexpected.
        detail: String,
    },
    /// The cloud's welcome names another agent or tenant than the state dir.
    #[error(
        "the cloud knows this certificate as agent {cloud_agent} of tenant {cloud_tenant}, but \
         the state dir says agent {our_agent} of tenant {our_tenant}: register the agent again \
         with --force"
    )]
    NotUs {
        /// Agent id in the welcome.
        cloud_agent: uuid::Uuid,
        /// Tenant id in the welcome.
        cloud_tenant: uuid::Uuid,
        /// Agent id in agent.json.
        our_agent: uuid::Uuid,
        /// Tenant id in agent.json.
        our_tenant: uuid::Uuid,
    },
    /// The cloud said goodbye.
    #[error("the cloud said goodbye: {reason}")]
    Goodbye {
        /// The cloud's reason.
        reason: String,
    },
    /// Nothing was received for two heartbeat intervals.
    #[error("nothing received from the cloud for {seconds} s (two heartbeats)")]
    Silent {
        /// How long.
        seconds: u64,
    },
    /// The connection was closed or broke.
    #[error("connection closed: {detail}")]
    Closed {
        /// How.
        detail: String,
    },
}

/// The first rustls error in `err`'s chain (looking inside `io::Error`s too).
fn find_rustls<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(r) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r);
        }
        current = e.source();
    }
    None
}

impl LinkError {
    /// Classifies a failure of the TLS layer (handshake, or a read right after it, where a
    /// TLS 1.3 server reports a refused client certificate). `None` when it is not TLS.
    pub fn from_tls(err: &(dyn StdError + 'static)) -> Option<LinkError> {
        if let Some(detail) = passthru_client::untrusted_certificate_reason(err) {
            return Some(LinkError::UntrustedCertificate { detail });
        }
        let tls = find_rustls(err)?;
        use rustls::AlertDescription as A;
        Some(match tls {
            rustls::Error::AlertReceived(
                alert @ (A::BadCertificate
                | A::CertificateRequired
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::UnsupportedCertificate),
            ) => LinkError::CertificateRefused {
                detail: format!("TLS alert {alert:?}"),
            },
            other => LinkError::Tls {
                detail: other.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_about_our_certificate_say_register_again() {
        let io = std::io::Error::other(rustls::Error::AlertReceived(
            rustls::AlertDescription::CertificateRequired,
        ));
        let e = LinkError::from_tls(&io);
        assert!(matches!(e, Some(LinkError::CertificateRefused { .. })));
        assert!(e
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("register it again"));
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        assert!(matches!(
            LinkError::from_tls(&io),
            Some(LinkError::UntrustedCertificate { .. })
        ));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(LinkError::from_tls(&plain).is_none());
    }
}
