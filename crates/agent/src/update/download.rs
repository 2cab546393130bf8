//! Downloading a release's package: an HTTPS GET of
//! `/{tenant_id}/agent/v1/releases/{version}/package` on the address the agent is connected
//! to, through the proxy that connection goes through (if any), with the agent's client
//! certificate (the cloud authenticates it as it authenticates the agent WebSocket), streamed
//! to the staging file while it is hashed, never more than the signed size, each step with
//! its time-out.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::io::AsyncWriteExt as _;

use crate::proxy::ProxySettings;
use crate::update::verify::hex;

/// Time-out of the TCP connection and TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of the answer.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a whole download may take.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Why a download failed (none of these is a refusal of the release: the next check tries
/// again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The cloud answered with an error.
    #[error("the cloud answered HTTP {status}: {detail}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The cloud's explanation.
        detail: String,
    },
    /// The connection failed or timed out.
    #[error("{0}")]
    Transport(String),
    /// More bytes came than the signed manifest announces.
    #[error("the package is larger than the {limit} bytes its signed manifest announces")]
    TooLarge {
        /// The signed size.
        limit: u64,
    },
    /// The staging file could not be written.
    #[error("cannot write the download: {0}")]
    Io(#[from] std::io::Error),
}

/// What was downloaded: its SHA-256 (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Bytes written.
    pub size: u64,
}

fn transport(e: &reqwest::Error) -> DownloadError {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() {
        text.push_str(" (timed out)");
    }
    DownloadError::Transport(text)
}

/// Downloads `url` with `tls` (the agent's client configuration), through `proxy` (HTTP
/// CONNECT; else directly), into `out`, at most `limit` bytes, hashing as it goes.
pub async fn download(
    url: &str,
    tls: &Arc<ClientConfig>,
    proxy: Option<&ProxySettings>,
    limit: u64,
    out: std::fs::File,
) -> Result<Downloaded, DownloadError> {
    // The same way out as the agent's WebSocket: its proxy, or none (never the environment's
    // on its own: the connection's proxy already took HTTPS_PROXY and NO_PROXY into account).
    let builder = match proxy {
        None => reqwest::Client::builder().no_proxy(),
        Some(p) => {
            let mut via = reqwest::Proxy::all(p.address().to_string()).map_err(|e| {
                DownloadError::Transport(format!("the proxy {} is not usable: {e}", p.describe()))
            })?;
            if let Some(c) = p.credentials() {
                via = via.basic_auth(c.user(), c.password());
            }
            reqwest::Client::builder().proxy(via)
        }
    };
    let client = builder
        .use_preconfigured_tls((**tls).clone())
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .user_agent(concat!("passthru-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| transport(&e))?;
    let mut response = client.get(url).send().await.map_err(|e| transport(&e))?;
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<passthru_proto::admin::ApiError>(&body)
            .map(|e| e.error_description)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).to_string());
        return Err(DownloadError::Http { status, detail });
    }
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(DownloadError::TooLarge { limit });
    }
    let mut file = tokio::fs::File::from_std(out);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(DownloadError::TooLarge { limit });
        }
        ctx.update(&chunk);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(Downloaded {
        sha256: hex(ctx.finish().as_ref()),
        size,
    })
}
