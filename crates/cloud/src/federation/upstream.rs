//! The client of a federated domain's identity provider (OpenID Connect): the HTTPS client
//! and its address policy, discovery, the token endpoint, and the ID token's checks. The
//! browser round trip that uses it is the parent module.

use std::path::Path as FsPath;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::issue::secrets_equal;
use crate::store::federation::{FederationConfig, FederationState};

/// Environment variable naming an extra CA file to trust for identity providers.
pub const CA_FILE_ENV: &str = "PASSTHRU_FEDERATION_CA_FILE";
/// Every call to an identity provider ends within this time.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from an identity provider.
const MAX_BODY: usize = 256 * 1024;
/// Clock leeway for the ID token's `exp`/`nbf`, seconds.
const LEEWAY_SECS: u64 = 60;
/// What we ask the identity provider for.
pub(super) const UPSTREAM_SCOPE: &str = "openid profile email";

/// Why talking to an identity provider failed. Messages never contain a secret or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// Our own settings are unusable (CA file).
    #[error("federation setup: {0}")]
    Config(String),
    /// The provider could not be reached or answered with an error status.
    #[error("identity provider request failed: {0}")]
    Http(String),
    /// The discovery document is unusable.
    #[error("identity provider discovery: {0}")]
    Discovery(String),
    /// The token endpoint refused the code.
    #[error("identity provider token endpoint: {0}")]
    TokenEndpoint(String),
    /// The ID token failed a check.
    #[error("ID token rejected: {0}")]
    IdToken(String),
    /// The provider's address is loopback, link-local or private, and that is not allowed.
    #[error("identity provider refused: {0}")]
    NotPublic(String),
}

/// The client for identity providers and the address policy it was built with.
struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

static HTTP: OnceLock<Outbound> = OnceLock::new();

/// Builds the HTTPS client for identity providers: system roots plus the certificates of
/// `$PASSTHRU_FEDERATION_CA_FILE`, 10 s timeouts, no redirects, no proxy (the address
/// check must see the provider's own addresses), names resolved to public addresses only
/// unless `allow_private`.
pub fn build_http_client(allow_private: bool) -> Result<reqwest::Client, FederationError> {
    let mut roots = passthru_client::tls::root_store(None).unwrap_or_else(|_| {
        tracing::debug!("no system CA certificates found for federation");
        rustls::RootCertStore::empty()
    });
    if let Some(path) = std::env::var_os(CA_FILE_ENV).filter(|p| !p.is_empty()) {
        let path = FsPath::new(&path);
        let certs = passthru_client::tls::read_pem_certificates(path)
            .map_err(|e| FederationError::Config(format!("{CA_FILE_ENV}: {e}")))?;
        for c in certs {
            roots.add(c).map_err(|e| {
                FederationError::Config(format!(
                    "{CA_FILE_ENV}: {} holds an unusable CA certificate: {e}",
                    path.display()
                ))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(FederationError::Config(format!(
            "no CA certificates to trust for identity providers: install the system's CA \
             certificates or set {CA_FILE_ENV} to a PEM file"
        )));
    }
    let tls = rustls::ClientConfig::builder_with_provider(passthru_client::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| FederationError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(
            crate::public_addr::PublicOnlyResolver { allow_private },
        ))
        .user_agent(concat!("passthru-cloud/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FederationError::Config(format!("HTTP client setup failed: {e}")))
}

/// Builds the identity provider client now (at `serve`), so a bad CA file stops the start.
/// Without system roots and without a CA file this only warns: federation then fails at
/// sign-in with a clear message. `allow_private`: `serve --allow-private-federation`.
pub fn init_http_client(allow_private: bool) -> Result<(), FederationError> {
    if allow_private {
        tracing::warn!("--allow-private-federation: identity providers of federated domains may be on loopback, link-local and private addresses");
    }
    match build_http_client(allow_private) {
        Ok(client) => {
            let _ = HTTP.set(Outbound {
                client,
                allow_private,
            });
            Ok(())
        }
        Err(e @ FederationError::Config(_)) if std::env::var_os(CA_FILE_ENV).is_none() => {
            tracing::warn!(error = %e, "federated domains cannot sign in until this is fixed");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn outbound() -> Result<&'static Outbound, FederationError> {
    if let Some(o) = HTTP.get() {
        return Ok(o);
    }
    let client = build_http_client(false)?;
    Ok(HTTP.get_or_init(|| Outbound {
        client,
        allow_private: false,
    }))
}

/// Whether identity providers may be on non-public addresses (`serve
/// --allow-private-federation`).
pub fn allow_private() -> bool {
    HTTP.get().is_some_and(|o| o.allow_private)
}

/// The client for a request to `url`, after checking an address in the URL itself (names
/// are checked by the client's resolver when it connects).
fn http_for(url: &str) -> Result<&'static reqwest::Client, FederationError> {
    let o = outbound()?;
    let parsed = url::Url::parse(url)
        .map_err(|e| FederationError::Http(format!("'{url}' is not a URL: {e}")))?;
    crate::public_addr::check_url(&parsed, o.allow_private).map_err(FederationError::NotPublic)?;
    Ok(&o.client)
}

/// Reads at most [`MAX_BODY`] bytes of an answer (zeroized when dropped: it may hold tokens).
async fn read_body(mut resp: reqwest::Response) -> Result<Zeroizing<Vec<u8>>, FederationError> {
    let mut out = Zeroizing::new(Vec::new());
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| FederationError::Http(describe_reqwest(&e)))?
    {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(FederationError::Http(format!(
                "the answer is larger than {MAX_BODY} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A reqwest error without the URL's query (which could hold a code).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    let url = e
        .url()
        .map(|u| format!("{}://{}{}", u.scheme(), u.authority(), u.path()))
        .unwrap_or_default();
    if detail.is_empty() {
        format!("{url}: {what}")
    } else {
        format!("{url}: {what} ({detail})")
    }
}

pub(super) async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, FederationError> {
    let resp = http_for(url)?
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| FederationError::Http(describe_reqwest(&e)))?;
    let status = resp.status();
    let body = read_body(resp).await?;
    if !status.is_success() {
        return Err(FederationError::Http(format!(
            "{url} answered HTTP {status}"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| FederationError::Http(format!("{url} did not answer JSON as expected: {e}")))
}

/// What we use of an identity provider's discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// The discovery document URL of an issuer.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Checks a discovery document against the issuer it was fetched for.
pub fn check_discovery(d: &Discovery, issuer: &str) -> Result<(), FederationError> {
    if d.issuer != issuer {
        return Err(FederationError::Discovery(format!(
            "the discovery document names the issuer '{}', not the configured '{issuer}': \
             configure the domain with exactly the provider's issuer",
            d.issuer
        )));
    }
    for (name, url) in [
        ("authorization_endpoint", &d.authorization_endpoint),
        ("token_endpoint", &d.token_endpoint),
        ("jwks_uri", &d.jwks_uri),
    ] {
        let ok = no_hidden_text(url)
            && url::Url::parse(url).is_ok_and(|u| {
                u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty())
            });
        if !ok {
            return Err(FederationError::Discovery(format!(
                "{name} '{url}' is not an https URL"
            )));
        }
    }
    Ok(())
}

/// Fetches and checks the discovery document of `issuer`.
pub async fn discover(issuer: &str) -> Result<Discovery, FederationError> {
    let d: Discovery = get_json(&discovery_url(issuer)).await?;
    check_discovery(&d, issuer)?;
    Ok(d)
}

/// Whether `url` has no control or white-space character: the URL parser drops those (C0
/// controls and spaces at the ends, tabs and newlines anywhere), so it would check other text
/// than the one kept, compared and logged.
fn no_hidden_text(url: &str) -> bool {
    !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Checks an issuer URL an administrator gives (shared with the admin CLI, which checks it
/// before sending it).
pub use passthru_admin::api::valid_issuer;

/// PKCE S256 challenge of a verifier.
pub(super) fn pkce_challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// The claims of an upstream ID token we use.
#[derive(Debug, Clone, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub upn: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `true` (or `"true"`, as some providers send it) when the provider checked `email`.
    #[serde(default)]
    pub email_verified: Option<Value>,
    #[serde(default)]
    pub azp: Option<String>,
}

impl IdClaims {
    /// The user's principal name: `preferred_username`, else `upn`.
    pub fn principal_name(&self) -> Option<&str> {
        self.preferred_username
            .as_deref()
            .or(self.upn.as_deref())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// The upstream `email` claim we keep as the user's mail: only an address of the federated
/// `domain` that the provider says it verified (`email_verified`), so an identity provider's
/// user cannot claim an address of another domain, or one nobody proved to own.
pub fn verified_mail<'a>(claims: &'a IdClaims, domain: &str) -> Option<&'a str> {
    let verified = match &claims.email_verified {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let email = claims.email.as_deref()?.trim();
    let (local, at) = email.rsplit_once('@')?;
    (verified && !local.is_empty() && !local.contains('@') && at.eq_ignore_ascii_case(domain))
        .then_some(email)
}

/// Verifies an upstream ID token: ES256 or RS256, signed by a key of `jwks` (a JWKS
/// document), issued by `issuer` for `client_id`, unexpired, with our `nonce`.
pub fn verify_id_token(
    token: &str,
    jwks: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
) -> Result<IdClaims, FederationError> {
    let bad = |m: String| FederationError::IdToken(m);
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| bad(format!("not a signed JWT ({e})")))?;
    let alg = header.alg;
    if !matches!(alg, Algorithm::ES256 | Algorithm::RS256) {
        return Err(bad(format!(
            "signed with {alg:?}; only ES256 and RS256 are accepted"
        )));
    }
    // Each key on its own: one key this library does not know must not hide the others.
    let keys: Vec<Jwk> = jwks["keys"]
        .as_array()
        .ok_or_else(|| bad("the provider's JWKS has no keys".into()))?
        .iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .filter(|k| {
            !matches!(
                k.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            )
        })
        .collect();
    if keys.is_empty() {
        return Err(bad(format!(
            "no key of the provider's JWKS matches the token's kid {:?}",
            header.kid
        )));
    }
    let mut v = Validation::new(alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[client_id]);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let mut last = String::from("no usable key");
    for key in &keys {
        let dk = match DecodingKey::from_jwk(key) {
            Ok(dk) => dk,
            Err(e) => {
                last = format!("unusable key ({e})");
                continue;
            }
        };
        match jsonwebtoken::decode::<IdClaims>(token, &dk, &v) {
            Ok(data) => {
                let c = data.claims;
                if c.sub.is_empty() || c.sub.len() > 255 {
                    return Err(bad("the sub claim is empty or too long".into()));
                }
                if !c.nonce.as_deref().is_some_and(|n| secrets_equal(n, nonce)) {
                    return Err(bad("the nonce is missing or not ours".into()));
                }
                if c.azp.as_deref().is_some_and(|a| a != client_id) {
                    return Err(bad("the token was issued to another party (azp)".into()));
                }
                return Ok(c);
            }
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = match e.kind() {
                    ErrorKind::InvalidIssuer => format!("the issuer is not '{issuer}'"),
                    ErrorKind::InvalidAudience => {
                        format!("the audience is not our client id '{client_id}'")
                    }
                    ErrorKind::ExpiredSignature => "the token has expired".into(),
                    ErrorKind::ImmatureSignature => "the token is not valid yet".into(),
                    ErrorKind::InvalidSignature => "the signature does not verify".into(),
                    ErrorKind::MissingRequiredClaim(c) => format!("the claim '{c}' is missing"),
                    other => format!("{other:?}"),
                };
                // Only a signature failure can be another key's business.
                if !matches!(
                    e.kind(),
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm
                ) {
                    break;
                }
            }
        }
    }
    Err(bad(last))
}

/// The token endpoint's error answer (only what may be shown and logged).
#[derive(Deserialize)]
struct UpstreamError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// The token endpoint's success answer: only the ID token is kept.
#[derive(Deserialize)]
struct UpstreamTokens {
    id_token: Option<Zeroizing<String>>,
}

/// Keeps an identity provider's error code printable and short.
pub(super) fn tame(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// Redeems the provider's code at its token endpoint (client_secret_post, PKCE); returns
/// the ID token.
pub(super) async fn redeem(
    st: &FederationState,
    cfg: &FederationConfig,
    code: &str,
) -> Result<Zeroizing<String>, FederationError> {
    let form: [(&str, &str); 6] = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &st.redirect_uri),
        ("client_id", &cfg.client_id),
        ("client_secret", cfg.client_secret.as_str()),
        ("code_verifier", &st.code_verifier),
    ];
    let body =
        Zeroizing::new(serde_urlencoded::to_string(form).map_err(|e| {
            FederationError::TokenEndpoint(format!("cannot encode the request: {e}"))
        })?);
    let resp = http_for(&st.token_endpoint)?
        .post(&st.token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body.as_bytes().to_vec())
        .send()
        .await
        .map_err(|e| FederationError::Http(describe_reqwest(&e)))?;
    drop(body);
    let status = resp.status();
    let raw = read_body(resp).await?;
    if !status.is_success() {
        let e: UpstreamError = serde_json::from_slice(&raw).unwrap_or(UpstreamError {
            error: String::new(),
            error_codes: Vec::new(),
        });
        let codes: Vec<String> = e.error_codes.iter().map(u64::to_string).collect();
        return Err(FederationError::TokenEndpoint(format!(
            "HTTP {status}, error '{}'{}",
            tame(&e.error),
            if codes.is_empty() {
                String::new()
            } else {
                format!(", codes {}", codes.join(","))
            }
        )));
    }
    let t: UpstreamTokens = serde_json::from_slice(&raw).map_err(|e| {
        FederationError::TokenEndpoint(format!("the answer is not a token response ({e})"))
    })?;
    t.id_token
        .ok_or_else(|| FederationError::TokenEndpoint("the answer has no id_token".into()))
}

#[cfg(test)]
mod tests;
