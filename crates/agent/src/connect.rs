//! Dialing the cloud: TCP (with a time-out; through the HTTP CONNECT proxy of
//! [`crate::proxy`] when one applies to the endpoint), TLS with the agent's client certificate,
//! then the WebSocket upgrade on `/{tenant_id}/agent/v1/connect`. The agent only ever dials
//! out.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use passthru_proto::admin::ApiError;
use passthru_proto::wire::connect_path;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;
use url::{Host, Url};
use uuid::Uuid;

use crate::link_error::LinkError;
use crate::proxy::ProxySettings;

/// Time-out of the TCP connection (name resolution included).
pub const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Time-out of the TLS handshake.
pub const TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Time-out of the WebSocket upgrade.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message accepted from the cloud.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// What the WebSocket reads at once.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// The agent's WebSocket to the cloud.
pub type AgentSocket = WebSocketStream<TlsStream<TcpStream>>;

/// Where the agent dials, and through which proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: Host<String>,
    port: u16,
    url: String,
    proxy: Option<Arc<ProxySettings>>,
}

impl Endpoint {
    /// The endpoint for `agent_endpoint` (`https://host[:port]`, as the cloud gave it at
    /// registration) and the agent's tenant.
    pub fn new(agent_endpoint: &str, tenant_id: Uuid) -> Result<Endpoint, LinkError> {
        let bad = |detail: &str| LinkError::BadEndpoint {
            endpoint: agent_endpoint.to_string(),
            detail: detail.to_string(),
        };
        let url = Url::parse(agent_endpoint).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "https" | "wss") {
            return Err(bad("expected an https:// URL"));
        }
        let host = url
            .host()
            .map(|h| h.to_owned())
            .ok_or_else(|| bad("no host"))?;
        let port = url.port().unwrap_or(443);
        let authority = match &host {
            Host::Ipv6(ip) => format!("[{ip}]:{port}"),
            other => format!("{other}:{port}"),
        };
        Ok(Endpoint {
            host,
            port,
            url: format!("wss://{authority}{}", connect_path(tenant_id)),
            proxy: None,
        })
    }

    /// This endpoint, dialled through `proxy` when there is one and it applies to the
    /// endpoint's host (see [`ProxySettings::applies_to`]), else directly.
    pub fn through(mut self, proxy: Option<&Arc<ProxySettings>>) -> Endpoint {
        self.proxy = proxy
            .filter(|p| p.applies_to(&self.host_name()))
            .map(Arc::clone);
        self
    }

    /// The proxy this endpoint is dialled through, if any.
    pub fn proxy(&self) -> Option<&ProxySettings> {
        self.proxy.as_deref()
    }

    /// The host as a name or an address (an IPv6 address without brackets).
    pub fn host_name(&self) -> String {
        match &self.host {
            Host::Ipv6(ip) => ip.to_string(),
            other => other.to_string(),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `wss://` URL of the agent route.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for messages.
    pub fn authority(&self) -> String {
        match &self.host {
            Host::Ipv6(ip) => format!("[{ip}]:{}", self.port),
            other => format!("{other}:{}", self.port),
        }
    }

    /// `https://host:port`: the address as logs and `status` show it.
    pub fn address(&self) -> String {
        format!("https://{}", self.authority())
    }

    /// The host (a name or an address) and the port.
    pub(crate) fn host_port(&self) -> (&Host<String>, u16) {
        (&self.host, self.port)
    }

    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, LinkError> {
        match &self.host {
            Host::Domain(d) => {
                ServerName::try_from(d.clone()).map_err(|e| LinkError::BadEndpoint {
                    endpoint: self.authority(),
                    detail: e.to_string(),
                })
            }
            Host::Ipv4(ip) => Ok(ServerName::IpAddress((*ip).into())),
            Host::Ipv6(ip) => Ok(ServerName::IpAddress((*ip).into())),
        }
    }

    /// TCP to the endpoint, directly (no time-out here).
    async fn direct_tcp(&self) -> std::io::Result<TcpStream> {
        match &self.host {
            Host::Domain(d) => TcpStream::connect((d.as_str(), self.port)).await,
            Host::Ipv4(ip) => TcpStream::connect(SocketAddr::from((*ip, self.port))).await,
            Host::Ipv6(ip) => TcpStream::connect(SocketAddr::from((*ip, self.port))).await,
        }
    }
}

/// The cloud's explanation in an HTTP error answer (`{error, error_description}`), else the
/// start of the body.
fn refusal_detail(body: Option<&[u8]>) -> String {
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return "no explanation given".to_string();
    };
    match serde_json::from_slice::<ApiError>(body) {
        Ok(api) => api.error_description,
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

/// Maps a WebSocket failure (during or after the upgrade) to a [`LinkError`].
pub fn classify_ws_error(endpoint: &Endpoint, err: WsError) -> LinkError {
    if let Some(tls) = LinkError::from_tls(&err as &(dyn StdError + 'static)) {
        return tls;
    }
    match err {
        WsError::Http(response) => LinkError::Refused {
            status: response.status().as_u16(),
            detail: refusal_detail(response.body().as_deref()),
        },
        WsError::Io(e) => {
            if let Some(tls) = LinkError::from_tls(&e) {
                tls
            } else {
                LinkError::Closed {
                    detail: format!("{} ({})", e, endpoint.authority()),
                }
            }
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => LinkError::Closed {
            detail: "the connection was closed".to_string(),
        },
        other => LinkError::Handshake {
            detail: other.to_string(),
        },
    }
}

/// TCP to the endpoint, through its proxy when it has one, each step with its time-out.
pub async fn dial(endpoint: &Endpoint) -> Result<TcpStream, LinkError> {
    if let Some(proxy) = endpoint.proxy() {
        return crate::proxy::open_tunnel(proxy, &endpoint.host_name(), endpoint.port).await;
    }
    let authority = endpoint.authority();
    let tcp = tokio::time::timeout(TCP_TIMEOUT, endpoint.direct_tcp())
        .await
        .map_err(|_| LinkError::Timeout {
            endpoint: authority.clone(),
            stage: "connecting",
        })?
        .map_err(|e| LinkError::Unreachable {
            endpoint: authority,
            detail: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Dials the cloud and upgrades to the agent WebSocket, each step with its time-out.
pub async fn connect(
    endpoint: &Endpoint,
    tls: Arc<ClientConfig>,
) -> Result<AgentSocket, LinkError> {
    let authority = endpoint.authority();
    let timeout = |stage: &'static str| LinkError::Timeout {
        endpoint: authority.clone(),
        stage,
    };
    let tcp = dial(endpoint).await?;
    let server_name = endpoint.server_name()?;
    let stream = tokio::time::timeout(
        TLS_TIMEOUT,
        TlsConnector::from(tls).connect(server_name, tcp),
    )
    .await
    .map_err(|_| timeout("in the TLS handshake"))?
    .map_err(|e| {
        LinkError::from_tls(&e).unwrap_or_else(|| LinkError::Unreachable {
            endpoint: authority.clone(),
            detail: e.to_string(),
        })
    })?;
    // tungstenite zero-fills its whole read buffer before each read: 16 KiB (a TLS record)
    // instead of its 128 KiB default; a larger frame grows the buffer to its length.
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .read_buffer_size(READ_BUFFER_BYTES);
    let (socket, _response) = tokio::time::timeout(
        UPGRADE_TIMEOUT,
        tokio_tungstenite::client_async_with_config(endpoint.url(), stream, Some(config)),
    )
    .await
    .map_err(|_| timeout("in the WebSocket upgrade"))?
    .map_err(|e| classify_ws_error(endpoint, e))?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() -> Result<(), LinkError> {
        let tenant = Uuid::nil();
        let e = Endpoint::new("https://127.0.0.1:8443", tenant)?;
        assert_eq!(
            e.url(),
            "wss://127.0.0.1:8443/00000000-0000-0000-0000-000000000000/agent/v1/connect"
        );
        let e = Endpoint::new("https://login.contoso.example", tenant)?;
        assert_eq!(e.authority(), "login.contoso.example:443");
        assert_eq!(e.address(), "https://login.contoso.example:443");
        let e = Endpoint::new("https://[::1]:9443/", tenant)?;
        assert_eq!(e.authority(), "[::1]:9443");
        assert_eq!(e.address(), "https://[::1]:9443");
        assert!(e.url().starts_with("wss://[::1]:9443/"));
        assert!(matches!(
            Endpoint::new("ftp://x", tenant),
            Err(LinkError::BadEndpoint { .. })
        ));
        assert!(Endpoint::new("not a url", tenant).is_err());
        Ok(())
    }

    #[test]
    fn refusals_carry_the_clouds_words() {
        let body = br#"{"error":"access_denied","error_description":"This agent has been revoked. Register it again."}"#;
        assert_eq!(
            refusal_detail(Some(body)),
            "This agent has been revoked. Register it again."
        );
        assert_eq!(refusal_detail(None), "no explanation given");
    }
}
