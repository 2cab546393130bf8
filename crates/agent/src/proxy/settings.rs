//! Which proxy the agent uses for the cloud, decided once per command from the configuration
//! and the environment:
//!
//! - `[cloud] proxy = "http://HOST:PORT"` (with `proxy_auth_file`, a file holding
//!   `user:password` on one line) wins, for every cloud address;
//! - else `HTTPS_PROXY` (or `https_proxy`), which may carry `user:password@`, unless
//!   `NO_PROXY` (or `no_proxy`) names the cloud's host: `*`, an exact name or address, a
//!   domain (`example.com` and `.example.com` both cover its subdomains) or an address range
//!   (`10.0.0.0/8`);
//! - else no proxy.
//!
//! Only `http://` proxies: the agent's TLS to the cloud (and its client certificate) runs end to
//! end inside the CONNECT tunnel, so TLS to the proxy itself would add nothing the agent needs.
//! The password is never shown: [`ProxySettings::describe`] names the user only.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use url::{Host, Url};
use zeroize::Zeroizing;

/// The environment variables naming a proxy, in the order they are read.
pub const PROXY_VARS: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
/// The environment variables naming hosts reached without the proxy, in the order they are
/// read.
pub const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// Where a proxy listens: `http://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddress {
    host: Host<String>,
    port: u16,
}

impl ProxyAddress {
    /// The host as a name or an address (an IPv6 address without brackets), for connecting.
    pub fn host(&self) -> &Host<String> {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `HOST:PORT` (an IPv6 address in brackets).
    pub fn authority(&self) -> String {
        match &self.host {
            Host::Ipv6(ip) => format!("[{ip}]:{}", self.port),
            other => format!("{other}:{}", self.port),
        }
    }
}

impl fmt::Display for ProxyAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}", self.authority())
    }
}

/// `user:password` for the proxy's basic authentication. The password is zeroized on drop and
/// never shown (`Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    user: String,
    password: Zeroizing<String>,
}

impl BasicCredentials {
    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password (for a client that builds its own header, such as reqwest's proxy).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The `Proxy-Authorization` value: `Basic base64(user:password)`.
    pub fn authorization(&self) -> Zeroizing<String> {
        let pair = Zeroizing::new(format!("{}:{}", self.user, self.password.as_str()));
        Zeroizing::new(format!("Basic {}", B64.encode(pair.as_bytes())))
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user", &self.user)
            .field("password", &"(hidden)")
            .finish()
    }
}

/// `[cloud] proxy` and `proxy_auth_file` as the configuration checked them (the file is read
/// when the proxy is resolved, not kept here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `[cloud] proxy`.
    pub address: ProxyAddress,
    /// `[cloud] proxy_auth_file` (relative paths already taken from the configuration file's
    /// directory).
    pub auth_file: Option<PathBuf>,
}

/// Where the proxy in use was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    /// `[cloud] proxy` in the configuration file.
    Config,
    /// This environment variable (`HTTPS_PROXY` or `https_proxy`).
    Environment(&'static str),
}

impl fmt::Display for ProxySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxySource::Config => f.write_str("[cloud] proxy"),
            ProxySource::Environment(var) => f.write_str(var),
        }
    }
}

/// Why the proxy settings cannot be used. Each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// `[cloud] proxy_auth_file` cannot be used (any more: the configuration check passed).
    #[error("[cloud] proxy_auth_file: {detail}")]
    AuthFile {
        /// What is wrong and how to fix it (never the file's content).
        detail: String,
    },
    /// `HTTPS_PROXY` (or `https_proxy`) is not a usable proxy URL.
    #[error(
        "the environment variable {var} is not a usable proxy: {detail}. Fix or unset it, or \
         set [cloud] proxy in the configuration file (which wins over the environment)"
    )]
    Environment {
        /// The variable.
        var: &'static str,
        /// What is wrong (the value is shown without its password).
        detail: String,
    },
}

/// The proxy the agent reaches the cloud through.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySettings {
    address: ProxyAddress,
    credentials: Option<BasicCredentials>,
    source: ProxySource,
    /// `NO_PROXY` entries, lower case (only with a proxy from the environment).
    no_proxy: Vec<String>,
}

impl fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl ProxySettings {
    /// The proxy in use: `config` (`[cloud] proxy`, reading its `proxy_auth_file`) when set,
    /// else `HTTPS_PROXY` / `https_proxy` as `env` gives them (with `NO_PROXY` / `no_proxy`),
    /// else `None`. Whether it applies to a given cloud host is [`ProxySettings::applies_to`].
    pub fn resolve(
        config: Option<&ProxyConfig>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ProxySettings>, ProxyError> {
        if let Some(config) = config {
            let credentials = match &config.auth_file {
                Some(path) => {
                    Some(read_auth_file(path).map_err(|detail| ProxyError::AuthFile { detail })?)
                }
                None => None,
            };
            return Ok(Some(ProxySettings {
                address: config.address.clone(),
                credentials,
                source: ProxySource::Config,
                no_proxy: Vec::new(),
            }));
        }
        let Some((var, value)) = PROXY_VARS.iter().find_map(|var| {
            env(var)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*var, Zeroizing::new(v)))
        }) else {
            return Ok(None);
        };
        let parsed = parse_proxy_url(&value, true)
            .map_err(|detail| ProxyError::Environment { var, detail })?;
        let no_proxy = NO_PROXY_VARS
            .iter()
            .find_map(|var| env(var))
            .map(|list| {
                list.split(',')
                    .map(|e| e.trim().to_ascii_lowercase())
                    .filter(|e| !e.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(ProxySettings {
            address: parsed.address,
            credentials: parsed.credentials,
            source: ProxySource::Environment(var),
            no_proxy,
        }))
    }

    /// [`ProxySettings::resolve`] with this process's environment.
    pub fn from_environment(
        config: Option<&ProxyConfig>,
    ) -> Result<Option<ProxySettings>, ProxyError> {
        ProxySettings::resolve(config, |var| std::env::var(var).ok())
    }

    /// The proxy's address.
    pub fn address(&self) -> &ProxyAddress {
        &self.address
    }

    /// The credentials sent to the proxy, if any.
    pub fn credentials(&self) -> Option<&BasicCredentials> {
        self.credentials.as_ref()
    }

    /// Where the proxy was found.
    pub fn source(&self) -> ProxySource {
        self.source
    }

    /// Whether connections to `host` (a name, or an address with or without brackets) go
    /// through this proxy: always for `[cloud] proxy`; for a proxy from the environment,
    /// unless `NO_PROXY` names the host.
    pub fn applies_to(&self, host: &str) -> bool {
        !self
            .no_proxy
            .iter()
            .any(|entry| no_proxy_matches(entry, host))
    }

    /// The proxy for messages and `doctor`, without the password, e.g.
    /// `http://proxy.example:3128 (from [cloud] proxy, basic auth user 'x')`.
    pub fn describe(&self) -> String {
        let auth = match &self.credentials {
            Some(c) => format!("basic auth user '{}'", c.user),
            None => "no authentication".to_string(),
        };
        format!("{} (from {}, {auth})", self.address, self.source)
    }

    /// What to check when the proxy answers 407, by where its credentials come from.
    pub(crate) fn authentication_hint(&self) -> String {
        match (self.source, &self.credentials) {
            (ProxySource::Config, None) => "it requires credentials and none were sent: put \
                 user:password on one line of a file (mode 0600, owned by the agent's user) \
                 and name it in [cloud] proxy_auth_file"
                .to_string(),
            (ProxySource::Config, Some(c)) => format!(
                "it refused the credentials of user '{}': check the user name and password \
                 in the file named by [cloud] proxy_auth_file",
                c.user
            ),
            (ProxySource::Environment(var), None) => format!(
                "it requires credentials and none were sent: set [cloud] proxy and \
                 [cloud] proxy_auth_file in the configuration file (or user:password@ in {var})"
            ),
            (ProxySource::Environment(var), Some(c)) => format!(
                "it refused the credentials of user '{}' given in {var}: check them, or set \
                 [cloud] proxy and [cloud] proxy_auth_file instead",
                c.user
            ),
        }
    }
}

/// Whether the `NO_PROXY` entry `entry` (lower case) covers `host`.
fn no_proxy_matches(entry: &str, host: &str) -> bool {
    if entry == "*" {
        return true;
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if let Ok(net) = entry.parse::<ipnet::IpNet>() {
        return host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip));
    }
    // An entry may carry a port (`host:8443`) or brackets (`[::1]`): only the host counts.
    let entry = entry.trim_end_matches('.');
    let entry = if entry.parse::<IpAddr>().is_ok() {
        entry
    } else if let Some(rest) = entry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        entry.rsplit_once(':').map_or(entry, |(h, _)| h)
    };
    let entry = entry.strip_prefix('*').unwrap_or(entry);
    match entry.strip_prefix('.') {
        Some(domain) => host == domain || host.ends_with(entry),
        None => !entry.is_empty() && (host == entry || host.ends_with(&format!(".{entry}"))),
    }
}

/// A proxy URL as parsed, with the credentials it carried.
#[derive(Debug)]
pub(crate) struct ParsedProxyUrl {
    pub(crate) address: ProxyAddress,
    pub(crate) credentials: Option<BasicCredentials>,
}

/// `raw` with any `user:password@` replaced, for messages.
pub(crate) fn without_credentials(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), raw),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}***@{host}{tail}"),
        None => raw.to_string(),
    }
}

/// Whether the authority of `url_text` (`scheme://[userinfo@]host[:port]...`) writes a port.
fn writes_port(url_text: &str) -> bool {
    let rest = url_text.split_once("://").map_or(url_text, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.rsplit_once(']') {
        Some((_, after)) => after.starts_with(':'),
        None => host_port.contains(':'),
    }
}

/// Parses `http://HOST:PORT` (with `scheme_optional`, `HOST:PORT` too, as `HTTPS_PROXY` often
/// is). The error says what to write; it never repeats a password.
pub(crate) fn parse_proxy_url(raw: &str, scheme_optional: bool) -> Result<ParsedProxyUrl, String> {
    let trimmed = raw.trim();
    let shown = without_credentials(trimmed);
    if trimmed.is_empty() {
        return Err("it is empty: write http://HOST:PORT, e.g. http://proxy.example:3128".into());
    }
    let text = if trimmed.contains("://") {
        trimmed.to_string()
    } else if scheme_optional {
        format!("http://{trimmed}")
    } else {
        return Err(format!("'{shown}' is not a URL: write \"http://{shown}\""));
    };
    let url = Url::parse(&text)
        .map_err(|e| format!("'{shown}' is not a URL ({e}); expected http://HOST:PORT"))?;
    let host = url.host_str().unwrap_or_default();
    let plain = |port: Option<u16>| match port {
        Some(port) => format!("http://{}:{port}", host),
        None => format!("http://{host}:PORT"),
    };
    let port = url
        .port()
        .or_else(|| (url.scheme() == "http" && writes_port(&text)).then_some(80));
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(format!(
                "'{shown}' is an https:// proxy, and TLS to the proxy is not supported: write \
                 \"{}\" (the proxy's plain HTTP port). The connection stays encrypted: the \
                 agent's own TLS to the cloud runs end to end through the proxy's CONNECT \
                 tunnel",
                plain(port)
            ))
        }
        other => {
            return Err(format!(
                "'{shown}' is a {other}:// proxy: only HTTP proxies (HTTP CONNECT) are \
                 supported; write http://HOST:PORT"
            ))
        }
    }
    if host.is_empty() {
        return Err(format!("'{shown}' has no host; expected http://HOST:PORT"));
    }
    if !(url.path().is_empty() || url.path() == "/")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(format!(
            "'{shown}' must be a plain http://HOST:PORT URL (no path, query or fragment): \
             write \"{}\"",
            plain(port)
        ));
    }
    let Some(port) = port else {
        return Err(format!(
            "'{shown}' has no port: write \"{}\" with the proxy's port, e.g. \
             http://{host}:3128",
            plain(None)
        ));
    };
    let credentials = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("'{shown}': the user name or password is not UTF-8"))
        };
        Some(BasicCredentials {
            user: decode(url.username())?,
            password: Zeroizing::new(decode(url.password().unwrap_or_default())?),
        })
    };
    let host = url
        .host()
        .map(|h| h.to_owned())
        .ok_or_else(|| format!("'{shown}' has no host"))?;
    Ok(ParsedProxyUrl {
        address: ProxyAddress { host, port },
        credentials,
    })
}

/// Reads `user:password` from `path`: a regular file, not readable or writable by group or
/// others, one line (a line end after it is fine), a non-empty user name before the first
/// `:`. The error names the file and what to do, never its content.
pub(crate) fn read_auth_file(path: &Path) -> Result<BasicCredentials, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("file {shown} does not exist"))
        }
        Err(e) => return Err(format!("cannot use {shown}: {e}")),
    };
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{shown} is readable or writable by other users (mode {mode:o}): run chmod \
                 600 {shown}"
            ));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?,
    );
    let line = text.trim_end_matches(['\r', '\n']);
    if line.contains('\n') {
        return Err(format!(
            "{shown} must hold user:password on one line, and nothing else"
        ));
    }
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() => Ok(BasicCredentials {
            user: user.to_string(),
            password: Zeroizing::new(password.to_string()),
        }),
        _ => Err(format!(
            "{shown} must hold user:password on one line (the proxy's user name, a colon, \
             its password)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| v.to_string())
        }
    }

    fn address(raw: &str) -> ProxyAddress {
        parse_proxy_url(raw, false)
            .map(|p| p.address)
            .unwrap_or(ProxyAddress {
                host: Host::Domain("unparsed.invalid".into()),
                port: 1,
            })
    }

    #[test]
    fn proxy_urls() {
        let ok = |raw: &str, shown: &str| {
            let parsed = parse_proxy_url(raw, false);
            assert_eq!(
                parsed
                    .as_ref()
                    .map(|p| p.address.to_string())
                    .ok()
                    .as_deref(),
                Some(shown),
                "{raw}: {parsed:?}"
            );
        };
        ok("http://proxy.example:3128", "http://proxy.example:3128");
        ok(" http://Proxy.Example:3128/ ", "http://proxy.example:3128");
        ok("http://10.0.0.1:8080", "http://10.0.0.1:8080");
        ok("http://[::1]:3128", "http://[::1]:3128");
        // The URL parser forgets a written default port; it is still written.
        ok("http://proxy.example:80", "http://proxy.example:80");
        let err = |raw: &str, needle: &str| {
            let e = parse_proxy_url(raw, false).err().unwrap_or_default();
            assert!(e.contains(needle), "{raw}: {e}");
        };
        err(
            "https://proxy.example:3128",
            "TLS to the proxy is not supported: write \"http://proxy.example:3128\"",
        );
        err("https://proxy.example:3128", "end to end");
        err("socks5://proxy.example:1080", "only HTTP proxies");
        err("http://proxy.example", "has no port");
        err("http://proxy.example/", "has no port");
        err(
            "http://proxy.example:3128/path",
            "no path, query or fragment",
        );
        err("proxy.example:3128", "write \"http://proxy.example:3128\"");
        err("http://", "not a URL");
        err("", "empty");
        // Credentials in a URL are read, never repeated.
        let p = parse_proxy_url("http://alice:s%40cret@proxy.example:3128", false);
        let c = p.as_ref().ok().and_then(|p| p.credentials.clone());
        assert_eq!(c.as_ref().map(BasicCredentials::user), Some("alice"));
        assert_eq!(c.as_ref().map(BasicCredentials::password), Some("s@cret"));
        let e = parse_proxy_url("https://alice:s3cret@proxy.example:3128", false)
            .err()
            .unwrap_or_default();
        assert!(
            !e.contains("s3cret") && e.contains("***@proxy.example"),
            "{e}"
        );
        // Without a scheme, when allowed (HTTPS_PROXY).
        assert_eq!(
            parse_proxy_url("proxy.example:3128", true)
                .map(|p| p.address.to_string())
                .ok()
                .as_deref(),
            Some("http://proxy.example:3128")
        );
    }

    #[test]
    fn the_configuration_wins_over_the_environment() -> Result<(), ProxyError> {
        let config = ProxyConfig {
            address: address("http://configured.example:3128"),
            auth_file: None,
        };
        let environment = env(&[
            ("HTTPS_PROXY", "http://env.example:8080"),
            ("NO_PROXY", "*"),
        ]);
        let p = ProxySettings::resolve(Some(&config), &environment)?;
        assert_eq!(
            p.as_ref().map(ProxySettings::describe).as_deref(),
            Some("http://configured.example:3128 (from [cloud] proxy, no authentication)")
        );
        // NO_PROXY is the environment's: it does not apply to the configured proxy.
        assert!(p.is_some_and(|p| p.applies_to("cloud.example")));
        let p = ProxySettings::resolve(None, &environment)?;
        assert_eq!(
            p.as_ref().map(|p| p.address().to_string()).as_deref(),
            Some("http://env.example:8080")
        );
        assert_eq!(
            p.map(|p| p.source()),
            Some(ProxySource::Environment("HTTPS_PROXY"))
        );
        assert!(ProxySettings::resolve(None, env(&[]))?.is_none());
        assert!(ProxySettings::resolve(None, env(&[("HTTPS_PROXY", " ")]))?.is_none());
        // The lower-case form, with credentials and no scheme.
        let p = ProxySettings::resolve(None, env(&[("https_proxy", "bob:pw@proxy.example:3128")]))?;
        assert_eq!(
            p.as_ref().map(ProxySettings::describe).as_deref(),
            Some("http://proxy.example:3128 (from https_proxy, basic auth user 'bob')")
        );
        let bad = ProxySettings::resolve(
            None,
            env(&[("HTTPS_PROXY", "https://bob:pw@proxy.example:3128")]),
        );
        let text = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("HTTPS_PROXY") && text.contains("TLS to the proxy"),
            "{text}"
        );
        assert!(!text.contains(":pw@"), "{text}");
        Ok(())
    }

    #[test]
    fn no_proxy_entries() -> Result<(), ProxyError> {
        let with = |list: &'static str| {
            let pairs: &'static [(&'static str, &'static str)] = Box::leak(Box::new([
                ("HTTPS_PROXY", "http://proxy.example:3128"),
                ("no_proxy", list),
            ]));
            ProxySettings::resolve(None, env(pairs))
        };
        let p = with("*")?;
        assert!(p.is_some_and(|p| !p.applies_to("login.contoso.example")));
        let p = with("intranet.example, Login.Contoso.Example")?;
        assert!(p
            .as_ref()
            .is_some_and(|p| !p.applies_to("login.contoso.example")));
        assert!(p
            .as_ref()
            .is_some_and(|p| !p.applies_to("LOGIN.contoso.example.")));
        assert!(p.as_ref().is_some_and(|p| p.applies_to("contoso.example")));
        assert!(p.as_ref().is_some_and(|p| p.applies_to("other.example")));
        let p = with("contoso.example")?;
        assert!(p
            .as_ref()
            .is_some_and(|p| !p.applies_to("login.contoso.example")));
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("contoso.example")));
        assert!(p
            .as_ref()
            .is_some_and(|p| p.applies_to("notcontoso.example")));
        let p = with(".contoso.example,*.fabrikam.example")?;
        assert!(p
            .as_ref()
            .is_some_and(|p| !p.applies_to("login.contoso.example")));
        assert!(p
            .as_ref()
            .is_some_and(|p| !p.applies_to("login.fabrikam.example")));
        let p = with("127.0.0.1,10.0.0.0/8,[::1],cloud.example:8443")?;
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("127.0.0.1")));
        assert!(p.as_ref().is_some_and(|p| p.applies_to("127.0.0.3")));
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("10.1.2.3")));
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("[::1]")));
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("::1")));
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("cloud.example")));
        // The upper-case variable is read first.
        let p = ProxySettings::resolve(
            None,
            env(&[
                ("HTTPS_PROXY", "http://proxy.example:3128"),
                ("NO_PROXY", "a.example"),
                ("no_proxy", "b.example"),
            ]),
        )?;
        assert!(p.as_ref().is_some_and(|p| !p.applies_to("a.example")));
        assert!(p.as_ref().is_some_and(|p| p.applies_to("b.example")));
        Ok(())
    }

    #[test]
    fn the_auth_file() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("proxy-auth")?;
        let file = dir.path().join("proxy.auth");
        let write = |text: &str, mode: u32| -> std::io::Result<()> {
            std::fs::write(&file, text)?;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
        };
        write("svc-proxy:pa:ss\n", 0o600)?;
        let c = read_auth_file(&file)?;
        assert_eq!((c.user(), c.password()), ("svc-proxy", "pa:ss"));
        // base64("svc-proxy:pa:ss")
        assert_eq!(c.authorization().as_str(), "Basic c3ZjLXByb3h5OnBhOnNz");
        assert!(!format!("{c:?}").contains("pa:ss"));
        let config = ProxyConfig {
            address: address("http://proxy.example:3128"),
            auth_file: Some(file.clone()),
        };
        let p = ProxySettings::resolve(Some(&config), env(&[]))?;
        let described = p.as_ref().map(ProxySettings::describe).unwrap_or_default();
        assert_eq!(
            described,
            "http://proxy.example:3128 (from [cloud] proxy, basic auth user 'svc-proxy')"
        );
        assert!(!format!("{p:?}").contains("pa:ss"));
        let refused = |text: &str, mode: u32, needle: &str| -> std::io::Result<()> {
            write(text, mode)?;
            let e = read_auth_file(&file).err().unwrap_or_default();
            assert!(e.contains(needle), "{text:?} {mode:o}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
            Ok(())
        };
        refused("u:s3cret\n", 0o640, "chmod 600")?;
        refused("u:s3cret\n", 0o604, "chmod 600")?;
        refused("s3cret\n", 0o600, "user:password on one line")?;
        refused(":s3cret\n", 0o600, "user:password on one line")?;
        refused("u:s3cret\nmore\n", 0o600, "on one line, and nothing else")?;
        std::fs::remove_file(&file)?;
        let e = ProxySettings::resolve(Some(&config), env(&[]));
        let text = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("proxy_auth_file") && text.contains("does not exist"),
            "{text}"
        );
        Ok(())
    }

    #[test]
    fn what_a_407_asks_for() {
        let mut p = ProxySettings {
            address: address("http://proxy.example:3128"),
            credentials: None,
            source: ProxySource::Config,
            no_proxy: Vec::new(),
        };
        assert!(p.authentication_hint().contains("none were sent"));
        assert!(p.authentication_hint().contains("proxy_auth_file"));
        p.credentials = Some(BasicCredentials {
            user: "u".into(),
            password: Zeroizing::new("s3cret".into()),
        });
        assert!(p
            .authentication_hint()
            .contains("refused the credentials of user 'u'"));
        assert!(!p.authentication_hint().contains("s3cret"));
        p.source = ProxySource::Environment("HTTPS_PROXY");
        assert!(p.authentication_hint().contains("given in HTTPS_PROXY"));
    }
}
