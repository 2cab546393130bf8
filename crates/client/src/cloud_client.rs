//! [`CloudClient`]: HTTPS to the cloud's token endpoint and admin API.

use std::path::Path;
use std::time::Duration;

use passthru_proto::admin::{ApiError, ADMIN_CLIENT_ID, ADMIN_SCOPE};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ClientError;
use crate::tls;

/// How long to wait for a TCP connection (and TLS handshake) to the cloud.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one Passthru cloud (one base URL, one trust setting, one route).
#[derive(Debug, Clone)]
pub struct CloudClient {
    base: String,
    http: reqwest::Client,
    /// The proxy of [`Route::Proxy`] (`http://HOST:PORT`), for messages.
    proxy: Option<ProxyRoute>,
}

/// How a [`CloudClient`] reaches the cloud.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Route {
    /// As the environment says (`HTTPS_PROXY`, `NO_PROXY`, as reqwest reads them): what
    /// `passthru-cloud admin` does.
    Environment,
    /// Straight to the cloud, whatever the environment says.
    Direct,
    /// Through an HTTP CONNECT proxy; TLS to the cloud runs end to end inside the tunnel.
    Proxy(ProxyRoute),
}

/// An HTTP CONNECT proxy for [`Route::Proxy`].
#[derive(Clone)]
pub struct ProxyRoute {
    /// `http://HOST:PORT`.
    pub url: String,
    /// The user name and password sent in `Proxy-Authorization: Basic` (the password is
    /// zeroized on drop and never shown).
    pub basic_auth: Option<(String, Zeroizing<String>)>,
    /// What to check when the proxy answers 407, in the caller's words (e.g. which setting
    /// holds the credentials).
    pub authentication_hint: String,
}

impl std::fmt::Debug for ProxyRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyRoute")
            .field("url", &self.url)
            .field("user", &self.basic_auth.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

/// The success answer of the token endpoint (only what we use).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

/// The Microsoft-shaped error answer of the token endpoint.
#[derive(Deserialize)]
pub(crate) struct TokenErrorAnswer {
    pub(crate) error: String,
    #[serde(default)]
    pub(crate) error_description: String,
    #[serde(default)]
    pub(crate) error_codes: Vec<u32>,
}

/// Checks and normalises a base URL: `https://host[:port][/prefix]`, no trailing slash (what
/// [`CloudClient::base_url`] gives for it).
pub fn normalize_base(base_url: &str) -> Result<String, ClientError> {
    let parsed = url::Url::parse(base_url.trim()).map_err(|e| {
        ClientError::Config(format!(
            "'{base_url}' is not a URL ({e}); expected https://HOST[:PORT]"
        ))
    })?;
    if parsed.scheme() != "https" {
        return Err(ClientError::Config(format!(
            "'{base_url}' must start with https:// (the cloud only speaks HTTPS)"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ClientError::Config(format!(
            "'{base_url}' has no host; expected https://HOST[:PORT]"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(ClientError::Config(format!(
            "'{base_url}' must be a plain https://HOST[:PORT] URL (no user, query or fragment)"
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// Refuses tenant names that would change the meaning of a URL path.
pub(crate) fn check_tenant(tenant: &str) -> Result<(), ClientError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 256
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ClientError::Config(format!(
            "'{tenant}' is not a tenant name or id (letters, digits, '-', '.', '_')"
        )))
    }
}

/// The start of a body, for error messages (bodies are never secrets here, but may be long).
pub(crate) fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return "empty body".to_string();
    }
    let mut out: String = trimmed.chars().take(200).collect();
    if trimmed.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

/// Reads the `AADSTS<n>:` prefix of a description.
fn aadsts_code_in(description: &str) -> Option<u32> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Maps an admin API answer to `T` or [`ClientError::Api`].
pub(crate) fn api_result<T: DeserializeOwned>(status: u16, body: &str) -> Result<T, ClientError> {
    if (200..300).contains(&status) {
        let text = if body.trim().is_empty() { "null" } else { body };
        return serde_json::from_str(text).map_err(|e| ClientError::UnexpectedResponse {
            status,
            detail: format!("the answer is not what the API promises ({e})"),
        });
    }
    match serde_json::from_str::<ApiError>(body) {
        Ok(api) => Err(ClientError::Api {
            status,
            error: api.error,
            description: api.error_description,
        }),
        Err(_) => Err(ClientError::UnexpectedResponse {
            status,
            detail: excerpt(body),
        }),
    }
}

/// Maps a token endpoint answer to the access token or [`ClientError::Rejected`].
pub(crate) fn token_result(status: u16, body: &str) -> Result<String, ClientError> {
    if (200..300).contains(&status) {
        return serde_json::from_str::<TokenAnswer>(body)
            .map(|t| t.access_token)
            .map_err(|e| ClientError::UnexpectedResponse {
                status,
                detail: format!("the token answer has no access_token ({e})"),
            });
    }
    Err(token_error(status, body))
}

/// The error answer of the token endpoint as [`ClientError::Rejected`] (with the AADSTS code
/// and the cloud's description), or [`ClientError::UnexpectedResponse`] when it is not one.
pub(crate) fn token_error(status: u16, body: &str) -> ClientError {
    match serde_json::from_str::<TokenErrorAnswer>(body) {
        Ok(err) => rejected(err),
        Err(_) => ClientError::UnexpectedResponse {
            status,
            detail: excerpt(body),
        },
    }
}

/// A parsed error answer as [`ClientError::Rejected`].
pub(crate) fn rejected(err: TokenErrorAnswer) -> ClientError {
    let code = err
        .error_codes
        .first()
        .copied()
        .or_else(|| aadsts_code_in(&err.error_description))
        .unwrap_or(0);
    let description = if err.error_description.is_empty() {
        err.error
    } else {
        err.error_description
    };
    ClientError::Rejected { code, description }
}

impl CloudClient {
    /// A client of the cloud at `base_url` (`https://HOST[:PORT]`), trusting the certificates
    /// of `ca_file` (PEM), or the system's roots when `None`. Connecting times out after 10 s,
    /// a whole request after 30 s.
    pub fn new(base_url: &str, ca_file: Option<&Path>) -> Result<CloudClient, ClientError> {
        CloudClient::with_route(base_url, ca_file, Route::Environment)
    }

    /// [`CloudClient::new`], reaching the cloud by `route`.
    pub fn with_route(
        base_url: &str,
        ca_file: Option<&Path>,
        route: Route,
    ) -> Result<CloudClient, ClientError> {
        let base = normalize_base(base_url)?;
        let tls = tls::client_config(ca_file)?;
        let builder = reqwest::Client::builder();
        let (builder, proxy) = match route {
            Route::Environment => (builder, None),
            Route::Direct => (builder.no_proxy(), None),
            Route::Proxy(route) => {
                let mut proxy = reqwest::Proxy::all(route.url.as_str()).map_err(|e| {
                    ClientError::Config(format!(
                        "'{}' is not a usable proxy URL ({e}); expected http://HOST:PORT",
                        route.url
                    ))
                })?;
                if let Some((user, password)) = &route.basic_auth {
                    proxy = proxy.basic_auth(user, password);
                }
                (builder.proxy(proxy), Some(route))
            }
        };
        // No redirects: a 307/308 would re-send the password form elsewhere.
        let http = builder
            .redirect(reqwest::redirect::Policy::none())
            .use_preconfigured_tls(tls)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("passthru-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot set up the HTTPS client: {e}")))?;
        Ok(CloudClient { base, http, proxy })
    }

    /// The cloud's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("{}{path}", self.base)
        } else {
            format!("{}/{path}", self.base)
        }
    }

    /// What a failed exchange means: the proxy's refusal when the client goes through one and
    /// the tunnel failed, else unreachable or untrusted.
    fn transport_error(&self, err: &reqwest::Error) -> ClientError {
        self.proxy
            .as_ref()
            .and_then(|proxy| ClientError::from_tunnel(&self.base, proxy, err))
            .unwrap_or_else(|| ClientError::from_transport(&self.base, err))
    }

    /// `POST {base}{path}` of a form (`application/x-www-form-urlencoded`, which may hold
    /// secrets: the caller zeroizes its copy) to the token service; status and body.
    pub(crate) async fn post_form(
        &self,
        path: &str,
        form: &Zeroizing<String>,
    ) -> Result<(u16, Zeroizing<String>), ClientError> {
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form.as_bytes().to_vec());
        let (status, body) = self.exchange(request).await?;
        Ok((status, Zeroizing::new(body)))
    }

    /// Sends a request and reads the whole answer.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, String), ClientError> {
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok((status, body))
    }

    /// Signs an administrator in with the password grant of the first-party admin client and
    /// returns the access token for the admin API. A refusal (wrong password, unknown user or
    /// tenant) is [`ClientError::Rejected`] with the AADSTS code and the cloud's description.
    pub async fn admin_token(
        &self,
        tenant: &str,
        upn: &str,
        password: &str,
    ) -> Result<String, ClientError> {
        check_tenant(tenant)?;
        let url = self.url(&format!("/{tenant}/oauth2/v2.0/token"));
        let form = Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "password")
                .append_pair("client_id", ADMIN_CLIENT_ID)
                .append_pair("scope", ADMIN_SCOPE)
                .append_pair("username", upn)
                .append_pair("password", password)
                .finish(),
        );
        let request = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form.as_bytes().to_vec());
        drop(form);
        let (status, body) = self.exchange(request).await?;
        token_result(status, &body)
    }

    /// `GET {base}{path}` with a bearer token; the JSON answer as `T` (for example
    /// `serde_json::Value`).
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self.http.get(&url).bearer_auth(token);
        let (status, body) = self.exchange(request).await?;
        api_result(status, &body)
    }

    /// `POST {base}{path}` with a bearer token and a JSON body; the JSON answer as `T`.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self.http.post(&url).bearer_auth(token).json(body);
        let (status, body) = self.exchange(request).await?;
        api_result(status, &body)
    }

    /// `POST {base}{path}` with a bearer token, `body` as `application/octet-stream` and the
    /// extra `headers`; the JSON answer as `T`. The whole request may take `timeout` (a
    /// large upload takes longer than [`REQUEST_TIMEOUT`]).
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut request = self
            .http
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .timeout(timeout)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (status, body) = self.exchange(request).await?;
        api_result(status, &body)
    }

    /// `PUT {base}{path}` with a bearer token and a JSON body; the JSON answer as `T`.
    pub async fn put_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self.http.put(&url).bearer_auth(token).json(body);
        let (status, body) = self.exchange(request).await?;
        api_result(status, &body)
    }

    /// `GET {base}{path}` with a bearer token; the answer as text (CSV exports). An error
    /// answer is still read as the API's JSON error.
    pub async fn get_text(&self, path: &str, token: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let request = self.http.get(&url).bearer_auth(token);
        let (status, body) = self.exchange(request).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        api_result::<serde_json::Value>(status, &body).map(|_| String::new())
    }

    /// `DELETE {base}{path}` with a bearer token; the JSON answer (`Null` when the body is
    /// empty).
    pub async fn delete(&self, path: &str, token: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.url(path);
        let request = self.http.delete(&url).bearer_auth(token);
        let (status, body) = self.exchange(request).await?;
        api_result(status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            normalize_base("https://127.0.0.1:8443/").ok().as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert!(matches!(
            normalize_base("http://127.0.0.1"),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            normalize_base("login.example"),
            Err(ClientError::Config(_))
        ));
        assert!(normalize_base("https://x/?a=b").is_err());
    }

    #[test]
    fn tenant_names() {
        assert!(check_tenant("contoso").is_ok());
        assert!(check_tenant("3f2e1a9d-4c70-4d8e-9b0c-3e2f1a9d4c70").is_ok());
        assert!(check_tenant("../admin").is_err());
        assert!(check_tenant("").is_err());
    }

    #[test]
    fn token_error_carries_code_and_description() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials due to invalid username or password. Trace ID: x","error_codes":[50126],"correlation_id":"c"}"#;
        assert!(matches!(
            token_result(400, body),
            Err(ClientError::Rejected { code: 50126, ref description })
                if description.starts_with("AADSTS50126: ")
        ));
        // No error_codes: the code is read from the description.
        let body =
            r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found."}"#;
        assert!(matches!(
            token_result(400, body),
            Err(ClientError::Rejected { code: 90002, .. })
        ));
        assert_eq!(
            token_result(200, r#"{"access_token":"t","token_type":"Bearer"}"#).ok(),
            Some("t".to_string())
        );
        assert!(matches!(
            token_result(502, "<html>bad gateway</html>"),
            Err(ClientError::UnexpectedResponse { status: 502, .. })
        ));
    }

    #[test]
    fn api_errors_are_mapped() {
        let body = r#"{"error":"access_denied","error_description":"'bob@x' is not allowed to do this: it needs the role GlobalAdministrator."}"#;
        assert!(matches!(
            api_result::<serde_json::Value>(403, body),
            Err(ClientError::Api { status: 403, ref error, ref description })
                if error == "access_denied" && description.contains("needs the role")
        ));
        assert_eq!(
            api_result::<serde_json::Value>(204, "").ok(),
            Some(serde_json::Value::Null)
        );
        let v: Result<serde_json::Value, _> = api_result(200, r#"{"a":1}"#);
        assert_eq!(v.ok().and_then(|v| v["a"].as_u64()), Some(1));
    }
}
