//! The client's one error type, and the classification of transport failures into "cannot
//! reach the cloud" and "the cloud's certificate is not trusted".

use std::error::Error as StdError;

/// What went wrong talking to the cloud. Every message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The cloud could not be reached: bad host or port, connection refused, time-out, or the
    /// connection broke.
    #[error(
        "cannot reach the cloud at {url} ({detail}). Check the URL (https://HOST[:PORT]), \
         that the cloud is running, and that no firewall or proxy blocks outbound HTTPS to it."
    )]
    Unreachable {
        /// The URL that was tried.
        url: String,
        /// What the network stack said.
        detail: String,
    },
    /// The proxy the client goes through could not be reached.
    #[error(
        "cannot reach the proxy {proxy} ({detail}). Check the proxy setting and that the \
         proxy runs and this computer may connect to it."
    )]
    ProxyUnreachable {
        /// `http://HOST:PORT` of the proxy.
        proxy: String,
        /// What the network stack said.
        detail: String,
    },
    /// The proxy answered `CONNECT` with 407 Proxy Authentication Required.
    #[error("the proxy {proxy} answered 407 Proxy Authentication Required: {hint}")]
    ProxyAuthentication {
        /// `http://HOST:PORT` of the proxy.
        proxy: String,
        /// What to check ([`crate::ProxyRoute::authentication_hint`]).
        hint: String,
    },
    /// The proxy did not open the tunnel (another refusal, or an answer that is not HTTP).
    #[error(
        "the proxy {proxy} did not open a tunnel to {url} ({detail}): ask the proxy's \
         administrator to allow CONNECT to the cloud's host and port, and check that the proxy \
         setting names an HTTP proxy's port"
    )]
    ProxyRefused {
        /// `http://HOST:PORT` of the proxy.
        proxy: String,
        /// The cloud's URL.
        url: String,
        /// What the tunnel said.
        detail: String,
    },
    /// The cloud answered, but its TLS certificate is not trusted (unknown CA, wrong name,
    /// expired).
    #[error(
        "the cloud's TLS certificate is not trusted at {url} ({detail}). Pass --ca-file with \
         the CA certificate the cloud's certificate was issued by (the cloud's DIR/tls/ca.pem), \
         and use a host name or address that the certificate names."
    )]
    UntrustedCertificate {
        /// The URL that was tried.
        url: String,
        /// Why the certificate was refused.
        detail: String,
    },
    /// The cloud's token service refused to sign the administrator in (an AADSTS error).
    #[error("the cloud refused the sign-in: {description}")]
    Rejected {
        /// The AADSTS code (for example 50126 for a wrong user name or password).
        code: u32,
        /// The cloud's `error_description`, starting `AADSTS<code>: `.
        description: String,
    },
    /// The device code expired before the administrator completed the sign-in in a browser.
    #[error(
        "the sign-in code expired before the sign-in was completed in a browser: run the \
         command again and complete the sign-in at the page it shows within {minutes} minutes"
    )]
    DeviceCodeExpired {
        /// How long the code was valid, in minutes.
        minutes: u64,
    },
    /// The administrator (or someone with the code) declined the sign-in in the browser.
    #[error(
        "the sign-in was declined in the browser: run the command again and approve the \
         sign-in, as an administrator of the tenant, at the page it shows"
    )]
    SignInDeclined,
    /// The admin API answered with an error (`{error, error_description}`).
    #[error("the cloud refused the request (HTTP {status}, {error}): {description}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The API's short error name (`access_denied`, `conflict`, ...).
        error: String,
        /// The API's explanation.
        description: String,
    },
    /// The cloud answered something the API does not promise (not JSON, wrong shape).
    #[error(
        "unexpected answer from the cloud (HTTP {status}): {detail}. Check that the URL points \
         at a Passthru cloud."
    )]
    UnexpectedResponse {
        /// The HTTP status code.
        status: u16,
        /// What was wrong with the answer (the start of the body, or the parse error).
        detail: String,
    },
    /// An argument, a setting or a file's content is wrong; the text says which and how.
    #[error("{0}")]
    Config(String),
    /// A local file or the terminal could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// What hyper-util's CONNECT tunnel (which reqwest uses) says when it fails (`tunnel error:
/// ...`), and what it means. Its error type is private, so its words are matched; the
/// client's tests against real listeners keep them honest.
const TUNNEL_FAILURES: [(&str, TunnelFailure); 6] = [
    (
        "proxy authorization required",
        TunnelFailure::Authentication,
    ),
    (
        "failed to create underlying connection",
        TunnelFailure::Unreachable,
    ),
    (
        "unsuccessful",
        TunnelFailure::Refused("it answered CONNECT with an error"),
    ),
    (
        "unexpected end of file",
        TunnelFailure::Refused("it closed the connection without answering CONNECT"),
    ),
    (
        "proxy response headers too long",
        TunnelFailure::Refused("its answer to CONNECT is too long"),
    ),
    (
        "io error establishing tunnel",
        TunnelFailure::Refused("the connection to it broke during CONNECT"),
    ),
];

#[derive(Clone, Copy)]
enum TunnelFailure {
    Authentication,
    Unreachable,
    Refused(&'static str),
}

impl ClientError {
    /// The proxy's failure to open a tunnel for a request to `url`, when that is what `err`
    /// is; `None` otherwise (the tunnel worked: the failure is the cloud's).
    pub(crate) fn from_tunnel(
        url: &str,
        proxy: &crate::ProxyRoute,
        err: &reqwest::Error,
    ) -> Option<ClientError> {
        let mut current: Option<&(dyn StdError + 'static)> = Some(err);
        while let Some(e) = current {
            let text = e.to_string();
            let words = text.strip_prefix("tunnel error: ");
            if let Some((_, failure)) =
                words.and_then(|words| TUNNEL_FAILURES.iter().find(|(known, _)| words == *known))
            {
                let below = e.source().map(chain_text).unwrap_or_default();
                return Some(match failure {
                    TunnelFailure::Authentication => ClientError::ProxyAuthentication {
                        proxy: proxy.url.clone(),
                        hint: proxy.authentication_hint.clone(),
                    },
                    TunnelFailure::Unreachable => ClientError::ProxyUnreachable {
                        proxy: proxy.url.clone(),
                        detail: if below.is_empty() { text } else { below },
                    },
                    TunnelFailure::Refused(what) => ClientError::ProxyRefused {
                        proxy: proxy.url.clone(),
                        url: url.to_string(),
                        detail: what.to_string(),
                    },
                });
            }
            current = e.source();
        }
        None
    }

    /// Maps a failed HTTP exchange with `url` to `Unreachable` or `UntrustedCertificate`.
    pub(crate) fn from_transport(url: &str, err: &reqwest::Error) -> ClientError {
        if let Some(detail) = untrusted_certificate_reason(err) {
            return ClientError::UntrustedCertificate {
                url: url.to_string(),
                detail,
            };
        }
        let detail = if err.is_timeout() {
            "no answer in time".to_string()
        } else {
            // The top level only repeats the URL; its causes say what happened.
            match StdError::source(err) {
                Some(cause) => chain_text(cause),
                None => chain_text(err),
            }
        };
        ClientError::Unreachable {
            url: url.to_string(),
            detail,
        }
    }
}

/// If `err` (or any error it was caused by) is a TLS certificate the local trust store refused,
/// says why; `None` for every other failure (refused connection, time-out, ...).
///
/// Shared with the agent, whose WebSocket connection fails the same way.
pub fn untrusted_certificate_reason(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(reason) = e.downcast_ref::<rustls::Error>().and_then(trust_reason) {
            return Some(reason);
        }
        // `io::Error::source` skips the error it wraps, so look inside explicitly.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(reason) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .and_then(trust_reason)
            {
                return Some(reason);
            }
        }
        let text = e.to_string();
        if text.contains("invalid peer certificate") || text.contains("UnknownIssuer") {
            return Some(reason_from_text(&text));
        }
        current = e.source();
    }
    None
}

fn trust_reason(err: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(c) => Some(match c {
            C::UnknownIssuer => "it was issued by a CA that is not trusted here".to_string(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "it does not name the host in the URL".to_string()
            }
            C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "it is not valid yet (check this computer's clock)".to_string()
            }
            C::Revoked => "it has been revoked".to_string(),
            other => format!("invalid certificate: {other:?}"),
        }),
        _ => None,
    }
}

/// A plain reason from rustls' text when the typed error is out of reach (hyper wraps it).
fn reason_from_text(text: &str) -> String {
    if text.contains("UnknownIssuer") {
        "it was issued by a CA that is not trusted here".to_string()
    } else if text.contains("NotValidForName") {
        "it does not name the host in the URL".to_string()
    } else if text.contains("Expired") {
        "it has expired".to_string()
    } else if text.contains("NotValidYet") {
        "it is not valid yet (check this computer's clock)".to_string()
    } else {
        text.to_string()
    }
}

/// The messages of an error and its causes, joined with `: `, without repeats.
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_rustls_error_inside_an_io_error() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(inner);
        let reason = untrusted_certificate_reason(&io);
        assert_eq!(
            reason.as_deref(),
            Some("it was issued by a CA that is not trusted here")
        );
    }

    #[test]
    fn a_refused_connection_is_not_a_trust_problem() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(untrusted_certificate_reason(&io), None);
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = ClientError::UntrustedCertificate {
            url: "https://x".into(),
            detail: "d".into(),
        };
        let text = e.to_string();
        assert!(text.contains("certificate is not trusted"));
        assert!(text.contains("--ca-file"));
        let e = ClientError::Unreachable {
            url: "https://x".into(),
            detail: "refused".into(),
        };
        assert!(e.to_string().contains("cannot reach the cloud"));
    }
}
