//! The security token service: OpenID Connect discovery, the JWKS, the token endpoint and
//! MSAL's user realm discovery, at the Microsoft identity platform v2.0 paths.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use passthru_proto::Aadsts;
use serde_json::json;
use uuid::Uuid;

use crate::http::correlation_id;
use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::store::{DomainKind, Tenant};

/// The base URL of every absolute URL we produce (issuer, endpoints, redirects): the
/// configured `serve --public-url` when there is one, whatever the request says. Without it
/// (the quickstart), the URL clients used to reach us (`https://host[:port]`), from the
/// HTTP/2 authority or the HTTP/1 Host header; anything that is not a plain host[:port]
/// falls back to `localhost`, so a forged header cannot inject text into issued URLs.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BaseUrl
where
    Shared: axum::extract::FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let shared = <Shared as axum::extract::FromRef<S>>::from_ref(state);
        if let Some(url) = &shared.public_url {
            return Ok(BaseUrl(url.clone()));
        }
        Ok(BaseUrl::from_request_host(parts))
    }
}

impl BaseUrl {
    /// The base URL the request names (HTTP/2 authority, else HTTP/1 `Host`), or
    /// `https://localhost` when that is not a plain host[:port]: what the extractor answers
    /// when no public URL is configured.
    pub(crate) fn from_request_host(parts: &axum::http::request::Parts) -> BaseUrl {
        let from_uri = parts.uri.authority().map(|a| a.as_str().to_string());
        let from_header = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let host = from_uri
            .or(from_header)
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            })
            .unwrap_or_else(|| "localhost".into());
        BaseUrl(format!("https://{host}"))
    }
}

/// Checks `serve --public-url`: an absolute https URL with a host, no user info, query,
/// fragment or path. Returns it without a trailing slash.
pub fn parse_public_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let u = url::Url::parse(raw).map_err(|e| {
        format!("--public-url '{raw}' is not an absolute URL ({e}): give it like https://login.contoso.example")
    })?;
    if u.scheme() != "https" {
        return Err(format!(
            "--public-url '{raw}' must start with https:// (the cloud is only served over HTTPS)"
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("--public-url '{raw}' has no host name"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "--public-url '{raw}' must not hold a user name or password"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "--public-url '{raw}' must not have a query (?...) or a fragment (#...)"
        ));
    }
    if u.path() != "/" {
        return Err(format!(
            "--public-url '{raw}' must not have a path: the cloud is served at the root of its host (https://HOST[:PORT])"
        ));
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// `iss` of every token of a tenant.
pub fn issuer(base: &str, tenant: &Tenant) -> String {
    format!("{base}/{}/v2.0", tenant.id)
}

/// Whether an authority's tenant segment is a multi-tenant one (`organizations`, or
/// `common`, which work accounts only makes the same), resolved per request.
pub fn is_multi_tenant(segment: &str) -> bool {
    segment.eq_ignore_ascii_case("organizations") || segment.eq_ignore_ascii_case("common")
}

/// The tenant a request to a multi-tenant authority is for: the tenant of the user's domain
/// when a user name is given, else the tenant of the app (client ids are unique across the
/// service). `TenantNotFound` when neither says.
pub async fn resolve_multi_tenant(
    state: &Shared,
    client_id: Option<&str>,
    username: Option<&str>,
    corr: Uuid,
) -> Result<Tenant, OAuthError> {
    let not_found = |why: &str| {
        OAuthError::new(Aadsts::TenantNotFound, corr).with_detail(format!(
            "The organizations authority could not tell which organization this request is for: {why}. Use the organization's own authority (https://HOST/TENANT)."
        ))
    };
    let tenant_id = if let Some(domain) = username.and_then(|u| u.rsplit_once('@')).map(|(_, d)| d)
    {
        match state.store.domain(domain).await {
            Ok(Some(d)) => d.tenant_id,
            Ok(None) => {
                return Err(not_found(&format!(
                    "no organization has the domain '{domain}'"
                )))
            }
            Err(e) => return Err(OAuthError::fault(corr, e)),
        }
    } else if let Some(client_id) = client_id {
        match state.store.app_anywhere(client_id).await {
            Ok(Some(app)) => app.tenant_id,
            Ok(None) => {
                return Err(not_found(&format!(
                    "no organization has the application '{client_id}'"
                )))
            }
            Err(e) => return Err(OAuthError::fault(corr, e)),
        }
    } else {
        return Err(not_found(
            "the request names neither a user nor a registered application",
        ));
    };
    load_tenant(state, &tenant_id.to_string(), corr).await
}

pub async fn load_tenant(state: &Shared, name: &str, corr: Uuid) -> Result<Tenant, OAuthError> {
    match state.store.tenant(name).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(OAuthError::new(Aadsts::TenantNotFound, corr)
            .with_detail(format!("Tenant '{name}' not found."))),
        Err(e) => Err(OAuthError::fault(corr, e)),
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`
pub async fn discovery(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let (tid, iss) = if is_multi_tenant(&tenant) {
        // As Entra's: the issuer is a template the client fills with the token's `tid`.
        let segment = tenant.to_ascii_lowercase();
        (segment, format!("{base}/{{tenantid}}/v2.0"))
    } else {
        let t = load_tenant(&state, &tenant, correlation_id(&headers)).await?;
        (t.id.to_string(), issuer(&base, &t))
    };
    let doc = json!({
        "issuer": iss,
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "userinfo_endpoint": format!("{base}/{tid}/openid/userinfo"),
        "device_authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/{tid}/oauth2/v2.0/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "password", "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["login", "none", "select_account"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "oid", "tid",
            "preferred_username", "name", "given_name", "family_name", "email", "email_verified", "ver",
            "sid", "login_hint", "roles", "groups"],
        "request_uri_parameter_supported": false,
        "tenant_region_scope": null,
        "cloud_instance_name": "passthru",
    });
    Ok(([("cache-control", "max-age=300")], Json(doc)).into_response())
}

/// `GET /{tenant}/discovery/v2.0/keys`
pub async fn keys(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let corr = correlation_id(&headers);
    let t = load_tenant(&state, &tenant, corr).await?;
    let keys = state
        .signer
        .keys(t.id)
        .await
        .map_err(|e| OAuthError::fault(corr, e))?;
    Ok(Json(json!({ "keys": keys.jwks() })).into_response())
}

/// `GET /common/userrealm/{username}?api-version=1.0`: MSAL's home realm discovery.
pub async fn user_realm(State(state): State<Shared>, Path(username): Path<String>) -> Response {
    let domain = username.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let kind = match state.store.domain(domain).await {
        Ok(Some(d)) => Some(d.kind),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "store failure");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let account_type = match kind {
        Some(DomainKind::Federated) => "Federated",
        Some(_) => "Managed",
        None => "Unknown",
    };
    Json(json!({
        "ver": "1.0",
        "account_type": account_type,
        "domain_name": domain.to_ascii_lowercase(),
        "cloud_instance_name": "passthru",
        "cloud_audience_urn": "urn:federation:passthru",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;

    use super::parse_public_url;
    use crate::test_state::{TestServer, TENANT};

    const PUBLIC: &str = "https://login.contoso.example";

    fn discovery(host: &str) -> anyhow::Result<Request<Body>> {
        Ok(
            Request::get(format!("/{TENANT}/v2.0/.well-known/openid-configuration"))
                .header("host", host)
                .body(Body::empty())?,
        )
    }

    /// With `--public-url`, a forged Host header changes nothing the cloud publishes: the
    /// issuer, every endpoint of the discovery document (cached 300 s by clients) and the
    /// device flow's verification_uri come from the configuration.
    #[tokio::test]
    async fn public_url_wins_over_a_forged_host() -> anyhow::Result<()> {
        let s = TestServer::start(Some(PUBLIC)).await?;
        let tid = s.tenant_id;
        for host in [
            "evil.example",
            "login.contoso.example:8443",
            "127.0.0.1",
            "",
        ] {
            let (status, doc) = s.json(discovery(host)?).await?;
            assert_eq!(status, 200, "{doc}");
            assert_eq!(doc["issuer"], format!("{PUBLIC}/{tid}/v2.0"), "Host {host}");
            let obj = doc.as_object().map(|o| o.iter()).into_iter().flatten();
            let urls: Vec<(&String, &Value)> = obj
                .filter(|(k, _)| k.ends_with("_endpoint") || k.ends_with("_uri"))
                .collect();
            assert!(urls.len() >= 6, "{doc}");
            for (k, v) in urls {
                assert!(
                    v.as_str()
                        .is_some_and(|u| u.starts_with(&format!("{PUBLIC}/"))),
                    "{k} = {v} with Host {host}"
                );
            }
        }
        let client_id = uuid::Uuid::new_v4().to_string();
        s.state
            .store
            .add_app(
                &crate::store::App {
                    client_id: client_id.clone(),
                    tenant_id: tid,
                    name: "TV".into(),
                    public: true,
                    redirect_uris: Vec::new(),
                    secret_hash: None,
                    groups_claim: false,
                    ..Default::default()
                },
                1,
            )
            .await?;
        let (status, dc) = s
            .json(
                Request::post(format!("/{TENANT}/oauth2/v2.0/devicecode"))
                    .header("host", "evil.example")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("client_id={client_id}&scope=openid")))?,
            )
            .await?;
        assert_eq!(status, 200, "{dc}");
        assert_eq!(
            dc["verification_uri"],
            format!("{PUBLIC}/{TENANT}/devicelogin")
        );
        assert!(!dc["message"].to_string().contains("evil"), "{dc}");
        s.done().await?;

        // Without the flag (quickstart, demo) the URLs follow the Host, as before.
        let s = TestServer::start(None).await?;
        let (_, doc) = s.json(discovery("login.fabrikam.example")?).await?;
        assert_eq!(
            doc["issuer"],
            format!("https://login.fabrikam.example/{}/v2.0", s.tenant_id)
        );
        s.done().await
    }

    #[test]
    fn public_url_is_checked() {
        assert_eq!(
            parse_public_url("https://Login.Contoso.example/").as_deref(),
            Ok("https://login.contoso.example")
        );
        assert_eq!(
            parse_public_url("https://login.contoso.example:8443").as_deref(),
            Ok("https://login.contoso.example:8443")
        );
        assert_eq!(
            parse_public_url("https://127.0.0.1:443").as_deref(),
            Ok("https://127.0.0.1")
        );
        for (bad, why) in [
            ("http://login.contoso.example", "https://"),
            ("login.contoso.example", "not an absolute URL"),
            ("https://login.contoso.example/?a=1", "query"),
            ("https://login.contoso.example/#x", "fragment"),
            ("https://user:pw@login.contoso.example", "user name"),
            ("https://login.contoso.example/sub", "path"),
            ("https://", "not an absolute URL"),
        ] {
            let e = parse_public_url(bad).err().unwrap_or_default();
            assert!(e.contains(why) && e.contains("--public-url"), "{bad}: {e}");
        }
    }
}
