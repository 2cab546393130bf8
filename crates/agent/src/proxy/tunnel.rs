//! The tunnel through an HTTP proxy: TCP to the proxy, `CONNECT host:port HTTP/1.1` (with
//! `Proxy-Authorization: Basic` when the proxy has credentials), the proxy's answer read with
//! `httparse` (bounded in time and size); on 2xx the TCP stream is the tunnel, and the caller
//! runs TLS to the cloud over it exactly as over a direct connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use url::Host;
use zeroize::Zeroizing;

use crate::link_error::LinkError;
use crate::proxy::ProxySettings;

/// Time-out of the TCP connection to the proxy (name resolution included).
pub const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time-out of the proxy's answer to `CONNECT` (the proxy connects to the cloud meanwhile).
pub const PROXY_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer head (status line and headers) read from the proxy.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024;
/// Most headers read in the proxy's answer.
const MAX_HEADERS: usize = 64;

/// `host:port` as a request target (an IPv6 address in brackets).
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The `CONNECT` request; it holds the credentials, so it is zeroized.
fn connect_request(target: &str, authorization: Option<&str>) -> Zeroizing<Vec<u8>> {
    let mut request = Zeroizing::new(Vec::with_capacity(256));
    request
        .extend_from_slice(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n").as_bytes());
    if let Some(value) = authorization {
        request.extend_from_slice(b"Proxy-Authorization: ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(
        concat!(
            "User-Agent: passthru-agent/",
            env!("CARGO_PKG_VERSION"),
            "\r\n\r\n"
        )
        .as_bytes(),
    );
    request
}

/// The head of the proxy's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// Bytes received after the head.
    pub(crate) extra: usize,
}

/// Reads the head of the proxy's answer: at most [`MAX_ANSWER_BYTES`]; the error says what
/// was wrong with it.
pub(crate) async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Answer, String> {
    let mut buf = vec![0u8; MAX_ANSWER_BYTES];
    let mut filled = 0;
    loop {
        let Some(space) = buf.get_mut(filled..) else {
            return Err(format!(
                "its answer's headers are longer than {MAX_ANSWER_BYTES} bytes"
            ));
        };
        let n = stream
            .read(space)
            .await
            .map_err(|e| format!("the connection broke before its answer ({e})"))?;
        if n == 0 {
            return Err(if filled == 0 {
                "it closed the connection without answering".to_string()
            } else {
                "it closed the connection in the middle of its answer".to_string()
            });
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(buf.get(..filled).unwrap_or_default()) {
            Ok(httparse::Status::Complete(head)) => {
                return Ok(Answer {
                    status: response.code.unwrap_or_default(),
                    reason: response.reason.unwrap_or_default().to_string(),
                    extra: filled.saturating_sub(head),
                })
            }
            Ok(httparse::Status::Partial) if filled == buf.len() => {
                return Err(format!(
                    "its answer's headers are longer than {MAX_ANSWER_BYTES} bytes"
                ))
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                let start: String =
                    String::from_utf8_lossy(buf.get(..filled.min(40)).unwrap_or_default())
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                return Err(format!(
                    "its answer is not HTTP ({e}; it starts '{}')",
                    start.trim()
                ));
            }
        }
    }
}

/// What an answer means for the tunnel to `target`.
pub(crate) fn judge(proxy: &ProxySettings, target: &str, answer: Answer) -> Result<(), LinkError> {
    let shown = proxy.address().to_string();
    match answer.status {
        200..=299 if answer.extra > 0 => Err(LinkError::ProxyAnswer {
            proxy: shown,
            detail: format!(
                "it sent {} bytes after its {} answer, before the cloud could speak",
                answer.extra, answer.status
            ),
        }),
        200..=299 => Ok(()),
        407 => Err(LinkError::ProxyAuthentication {
            proxy: shown,
            hint: proxy.authentication_hint(),
        }),
        status => Err(LinkError::ProxyRefused {
            proxy: shown,
            target: target.to_string(),
            status,
            reason: answer.reason,
        }),
    }
}

/// Opens a tunnel through `proxy` to `host:port` (a name, or an address without brackets):
/// TCP to the proxy within [`PROXY_CONNECT_TIMEOUT`], `CONNECT`, its answer within
/// [`PROXY_ANSWER_TIMEOUT`]. The stream returned carries bytes to and from the target as is:
/// TLS to the target runs over it end to end.
pub async fn open_tunnel(
    proxy: &ProxySettings,
    host: &str,
    port: u16,
) -> Result<TcpStream, LinkError> {
    tunnel_within(
        proxy,
        host,
        port,
        PROXY_CONNECT_TIMEOUT,
        PROXY_ANSWER_TIMEOUT,
    )
    .await
}

/// [`open_tunnel`] with the given time-outs.
pub(crate) async fn tunnel_within(
    proxy: &ProxySettings,
    host: &str,
    port: u16,
    connect_timeout: Duration,
    answer_timeout: Duration,
) -> Result<TcpStream, LinkError> {
    let address = proxy.address();
    let shown = address.to_string();
    let timeout = |stage: &'static str| LinkError::Timeout {
        endpoint: format!("the proxy {shown}"),
        stage,
    };
    let connecting = async {
        match address.host() {
            Host::Domain(d) => TcpStream::connect((d.as_str(), address.port())).await,
            Host::Ipv4(ip) => TcpStream::connect(SocketAddr::from((*ip, address.port()))).await,
            Host::Ipv6(ip) => TcpStream::connect(SocketAddr::from((*ip, address.port()))).await,
        }
    };
    let mut tcp = tokio::time::timeout(connect_timeout, connecting)
        .await
        .map_err(|_| timeout("connecting"))?
        .map_err(|e| LinkError::ProxyUnreachable {
            proxy: shown.clone(),
            detail: e.to_string(),
        })?;
    let _ = tcp.set_nodelay(true);
    let target = authority(host, port);
    let authorization = proxy.credentials().map(|c| c.authorization());
    let request = connect_request(&target, authorization.as_deref().map(String::as_str));
    drop(authorization);
    let answer = tokio::time::timeout(answer_timeout, async {
        tcp.write_all(&request)
            .await
            .map_err(|e| format!("cannot send CONNECT ({e})"))?;
        drop(request);
        read_answer(&mut tcp).await
    })
    .await
    .map_err(|_| timeout("waiting for the answer to CONNECT"))?
    .map_err(|detail| LinkError::ProxyAnswer {
        proxy: shown.clone(),
        detail,
    })?;
    judge(proxy, &target, answer)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::settings::parse_proxy_url;
    use crate::proxy::ProxyConfig;
    use tokio::io::AsyncBufReadExt as _;
    use tokio::net::TcpListener;

    #[test]
    fn the_request() {
        let r = connect_request("cloud.example:443", Some("Basic dTpw"));
        let text = String::from_utf8_lossy(&r);
        assert!(text.starts_with(
            "CONNECT cloud.example:443 HTTP/1.1\r\nHost: cloud.example:443\r\nProxy-Authorization: Basic dTpw\r\n"
        ));
        assert!(text.ends_with("\r\n\r\n"));
        let r = connect_request(&authority("::1", 8443), None);
        assert!(String::from_utf8_lossy(&r).starts_with("CONNECT [::1]:8443 HTTP/1.1\r\n"));
        assert!(!String::from_utf8_lossy(&r).contains("Proxy-Authorization"));
    }

    async fn answer_of(bytes: &'static [u8]) -> Result<Answer, String> {
        let mut input = bytes;
        read_answer(&mut input).await
    }

    #[tokio::test]
    async fn answers() {
        assert_eq!(
            answer_of(b"HTTP/1.1 200 Connection established\r\n\r\n").await,
            Ok(Answer {
                status: 200,
                reason: "Connection established".into(),
                extra: 0
            })
        );
        assert_eq!(
            answer_of(b"HTTP/1.0 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!").await,
            Ok(Answer {
                status: 403,
                reason: "Forbidden".into(),
                extra: 5
            })
        );
        let e = answer_of(b"SSH-2.0-OpenSSH_9.2\r\n")
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains("not HTTP") && e.contains("SSH-2.0"), "{e}");
        let e = answer_of(b"").await.err().unwrap_or_default();
        assert!(e.contains("without answering"), "{e}");
        let e = answer_of(b"HTTP/1.1 200 OK\r\nVia: x\r\n")
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains("in the middle of its answer"), "{e}");
        let long: &'static [u8] = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n",
                "a".repeat(MAX_ANSWER_BYTES)
            )
            .into_bytes()
            .into_boxed_slice(),
        );
        let e = answer_of(long).await.err().unwrap_or_default();
        assert!(e.contains("longer than 8192 bytes"), "{e}");
    }

    fn settings(url: &str) -> Option<ProxySettings> {
        let config = ProxyConfig {
            address: parse_proxy_url(url, false).ok()?.address,
            auth_file: None,
        };
        ProxySettings::resolve(Some(&config), |_| None)
            .ok()
            .flatten()
    }

    /// A proxy that reads one request head, hands it over, and answers `answer`; after a 2xx
    /// it echoes what it receives.
    async fn fake_proxy(
        answer: &'static [u8],
    ) -> std::io::Result<(String, tokio::sync::oneshot::Receiver<String>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let mut reader = tokio::io::BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let _ = tx.send(head);
            let mut stream = reader.into_inner();
            if stream.write_all(answer).await.is_err() {
                return;
            }
            if answer.starts_with(b"HTTP/1.1 2") {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        Ok((url, rx))
    }

    #[tokio::test]
    async fn a_tunnel_carries_bytes_both_ways() -> Result<(), Box<dyn std::error::Error>> {
        let (url, head) = fake_proxy(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
        let proxy = settings(&url).ok_or("no settings")?;
        let mut tunnel = open_tunnel(&proxy, "cloud.example", 8443).await?;
        assert!(head
            .await?
            .starts_with("CONNECT cloud.example:8443 HTTP/1.1\r\nHost: cloud.example:8443\r\n"));
        tunnel.write_all(b"hello").await?;
        let mut back = [0u8; 5];
        tunnel.read_exact(&mut back).await?;
        assert_eq!(&back, b"hello");
        Ok(())
    }

    #[tokio::test]
    async fn refusals_name_the_proxy_and_say_what_to_do() -> Result<(), Box<dyn std::error::Error>>
    {
        let (url, _head) = fake_proxy(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n",
        )
        .await?;
        let proxy = settings(&url).ok_or("no settings")?;
        let e = open_tunnel(&proxy, "cloud.example", 443).await.err();
        assert!(
            matches!(e, Some(LinkError::ProxyAuthentication { .. })),
            "{e:?}"
        );
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains(&url) && text.contains("407") && text.contains("proxy_auth_file"),
            "{text}"
        );

        let (url, _head) = fake_proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n").await?;
        let proxy = settings(&url).ok_or("no settings")?;
        let e = open_tunnel(&proxy, "cloud.example", 8443).await.err();
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains(&url)
                && text.contains("HTTP 403 Forbidden")
                && text.contains("cloud.example:8443"),
            "{text}"
        );

        let (url, _head) = fake_proxy(b"garbage\r\n\r\n").await?;
        let proxy = settings(&url).ok_or("no settings")?;
        let e = open_tunnel(&proxy, "cloud.example", 443).await.err();
        assert!(matches!(e, Some(LinkError::ProxyAnswer { .. })), "{e:?}");

        // Nothing listens: the proxy is named.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let proxy = settings(&format!("http://127.0.0.1:{port}")).ok_or("no settings")?;
        let e = open_tunnel(&proxy, "cloud.example", 443).await.err();
        assert!(
            matches!(e, Some(LinkError::ProxyUnreachable { .. })),
            "{e:?}"
        );
        let text = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains(&format!("http://127.0.0.1:{port}")) && text.contains("[cloud] proxy"),
            "{text}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_silent_proxy_times_out() -> Result<(), Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let held = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
        let proxy = settings(&url).ok_or("no settings")?;
        let short = Duration::from_millis(300);
        let e = tunnel_within(&proxy, "cloud.example", 443, short, short)
            .await
            .err();
        assert!(
            matches!(
                e,
                Some(LinkError::Timeout {
                    stage: "waiting for the answer to CONNECT",
                    ..
                })
            ),
            "{e:?}"
        );
        drop(held);
        Ok(())
    }
}
