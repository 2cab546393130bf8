//! An HTTPS client for tests that trusts only the cloud's deployment CA, and the requests tests
//! make with it (the password grant, the JWKS) plus ID token verification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

/// A reqwest client trusting exactly `ca_file`.
pub fn client(ca_file: &Path) -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("reading {}", ca_file.display()))?
    {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The answer of a token request: the JSON body and the HTTP status.
#[derive(Debug, Clone)]
pub struct TokenAnswer {
    pub status: u16,
    pub body: Value,
}

impl TokenAnswer {
    /// The first AADSTS code of an error answer.
    pub fn code(&self) -> Option<u64> {
        self.body["error_codes"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
    }
    pub fn ok(&self) -> bool {
        self.status == 200 && self.body["access_token"].is_string()
    }
}

/// `POST {url}/{tenant}/oauth2/v2.0/token` with the password grant.
pub async fn password_grant(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    client_id: &str,
    username: &str,
    password: &str,
    scope: &str,
) -> anyhow::Result<TokenAnswer> {
    let resp = http
        .post(format!("{url}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", username),
            ("password", password),
            ("scope", scope),
            ("client_info", "1"),
        ])
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await?;
    Ok(TokenAnswer { status, body })
}

/// Verifies a JWT's ES256 signature against the tenant's JWKS and returns its claims.
pub async fn verify_with_jwks(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    jwt: &str,
    audience: &str,
) -> anyhow::Result<Value> {
    let jwks: Value = http
        .get(format!("{url}/{tenant}/discovery/v2.0/keys"))
        .send()
        .await?
        .json()
        .await?;
    let header = jsonwebtoken::decode_header(jwt)?;
    let kid = header.kid.ok_or_else(|| anyhow!("the token has no kid"))?;
    let key = jwks["keys"]
        .as_array()
        .and_then(|ks| ks.iter().find(|k| k["kid"] == kid.as_str()))
        .ok_or_else(|| anyhow!("kid {kid} is not in the JWKS"))?;
    let dk = jsonwebtoken::DecodingKey::from_ec_components(
        key["x"].as_str().unwrap_or_default(),
        key["y"].as_str().unwrap_or_default(),
    )?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&[audience]);
    Ok(jsonwebtoken::decode::<Value>(jwt, &dk, &v)?.claims)
}
