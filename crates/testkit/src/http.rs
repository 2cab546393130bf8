//! An HTTPS client for tests that trusts only the cloud's deployment CA, and the requests tests
//! make with it (the password grant, the JWKS) plus ID token verification. [`SignInClient`]
//! bundles the client, the cloud's URL and an app's client id for tests that sign in often.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

/// The scope [`SignInClient::password`] asks for.
pub const DEFAULT_SCOPE: &str = "openid profile offline_access";

/// A reqwest client trusting exactly `ca_file`.
pub fn client(ca_file: &Path) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls_trusting(&[ca_file.to_path_buf()])?)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A rustls client configuration trusting exactly the CAs in `ca_files`.
pub fn tls_trusting(ca_files: &[PathBuf]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for ca_file in ca_files {
        for c in CertificateDer::pem_file_iter(ca_file)
            .with_context(|| format!("reading {}", ca_file.display()))?
        {
            roots.add(c?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
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

/// Verifies a JWT's signature against the tenant's JWKS (ES256 with an EC key, RS256 with an
/// RSA key: the algorithm is the key's, as a relying party should pick it) and returns its
/// claims.
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
    let part = |name: &str| key[name].as_str().unwrap_or_default();
    let (dk, alg) = match part("kty") {
        "EC" => (
            jsonwebtoken::DecodingKey::from_ec_components(part("x"), part("y"))?,
            jsonwebtoken::Algorithm::ES256,
        ),
        "RSA" => (
            jsonwebtoken::DecodingKey::from_rsa_components(part("n"), part("e"))?,
            jsonwebtoken::Algorithm::RS256,
        ),
        other => anyhow::bail!("kid {kid} is a key of type '{other}' in the JWKS"),
    };
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[audience]);
    Ok(jsonwebtoken::decode::<Value>(jwt, &dk, &v)?.claims)
}

/// Signs in to one cloud as one app: the password grant and ID token verification without
/// repeating the client, the URL and the client id at every call.
#[derive(Debug, Clone)]
pub struct SignInClient {
    pub http: reqwest::Client,
    /// `https://HOST:PORT` of the cloud.
    pub url: String,
    /// The app's client id.
    pub client_id: String,
}

impl SignInClient {
    /// A sign-in client for the app `client_id` of the cloud at `url`, whose deployment CA is
    /// `ca_file`.
    pub fn new(ca_file: &Path, url: &str, client_id: &str) -> anyhow::Result<SignInClient> {
        Ok(SignInClient {
            http: client(ca_file)?,
            url: url.to_string(),
            client_id: client_id.to_string(),
        })
    }

    /// The password grant in `tenant` with [`DEFAULT_SCOPE`].
    pub async fn password(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<TokenAnswer> {
        self.password_with_scope(tenant, username, password, DEFAULT_SCOPE)
            .await
    }

    /// The password grant in `tenant` asking for `scope`.
    pub async fn password_with_scope(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
        scope: &str,
    ) -> anyhow::Result<TokenAnswer> {
        password_grant(
            &self.http,
            &self.url,
            tenant,
            &self.client_id,
            username,
            password,
            scope,
        )
        .await
    }

    /// Verifies the ID token of `answer` against the JWKS of `tenant`, with this app as the
    /// audience, and returns its claims. An answer without an ID token is an error.
    pub async fn verify_id_token(
        &self,
        tenant: &str,
        answer: &TokenAnswer,
    ) -> anyhow::Result<Value> {
        let id_token = answer.body["id_token"]
            .as_str()
            .ok_or_else(|| anyhow!("the answer has no id_token: {}", answer.body))?;
        verify_with_jwks(&self.http, &self.url, tenant, id_token, &self.client_id).await
    }
}
