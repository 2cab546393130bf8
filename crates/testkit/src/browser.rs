//! A browser-like HTTPS client for tests that drive the sign-in pages form by form: no
//! automatic redirects (the answers' `Location` is checked by hand), cookies kept by hand per
//! origin (two clouds on 127.0.0.1 on different ports stand for two different hosts).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

/// A reqwest client trusting exactly `ca_file`, without automatic redirects.
pub fn no_redirect_client(ca_file: &Path) -> anyhow::Result<reqwest::Client> {
    no_redirect_client_trusting(&[ca_file.to_path_buf()])
}

/// A reqwest client trusting exactly the CAs in `ca_files`, without automatic redirects.
pub fn no_redirect_client_trusting(ca_files: &[PathBuf]) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(crate::http::tls_trusting(ca_files)?)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// The `value` of the hidden input `name` in an HTML page, or "".
pub fn hidden(body: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    body.split(&key)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

/// An answer as the browser saw it.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The `value` of the hidden input `name`, or "".
    pub fn hidden(&self, name: &str) -> String {
        hidden(&self.body, name)
    }

    /// The `Location` header, or "".
    pub fn location(&self) -> String {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The query parameters of the `Location` header (empty without one).
    pub fn query(&self) -> HashMap<String, String> {
        url::Url::parse(&self.location())
            .map(|u| u.query_pairs().into_owned().collect())
            .unwrap_or_default()
    }

    /// Every `Set-Cookie` header, as sent.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }
}

/// The origin (`scheme://host:port`) of `url`, or "".
fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// A browser-like client: no automatic redirects; cookies kept by hand, per origin.
/// [`get`](Self::get) and [`post`](Self::post) take an absolute URL or a path under the base URL.
#[derive(Debug)]
pub struct FormBrowser {
    http: reqwest::Client,
    base: String,
    jar: HashMap<String, BTreeMap<String, String>>,
}

impl FormBrowser {
    /// A browser trusting `ca_file`, with paths relative to `base_url` (`https://HOST:PORT`).
    pub fn new(ca_file: &Path, base_url: &str) -> anyhow::Result<FormBrowser> {
        FormBrowser::trusting(&[ca_file.to_path_buf()], base_url)
    }

    /// A browser trusting every CA in `ca_files` (for several clouds), with paths relative to
    /// `base_url`.
    pub fn trusting(ca_files: &[PathBuf], base_url: &str) -> anyhow::Result<FormBrowser> {
        Ok(FormBrowser {
            http: no_redirect_client_trusting(ca_files)?,
            base: base_url.to_string(),
            jar: HashMap::new(),
        })
    }

    /// The underlying client (no redirects, no cookies), for direct API calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `target` itself when it is an absolute URL, else the base URL followed by `target`.
    fn url(&self, target: &str) -> String {
        if target.starts_with("https://") || target.starts_with("http://") {
            target.to_string()
        } else {
            format!("{}{target}", self.base)
        }
    }

    /// The `Cookie` header this browser sends to `target`'s origin (all the cookies it holds
    /// for it), or None.
    pub fn cookie_header(&self, target: &str) -> Option<String> {
        let cookies = self.jar.get(&origin(&self.url(target)))?;
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    async fn finish(&mut self, url: &str, r: reqwest::Response) -> anyhow::Result<Page> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let jar = self.jar.entry(origin(url)).or_default();
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str()?;
            let kv = c.split(';').next().unwrap_or_default();
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if v.is_empty() || c.contains("Max-Age=0") {
                jar.remove(k.trim());
            } else {
                jar.insert(k.trim().to_string(), v.to_string());
            }
        }
        Ok(Page {
            status,
            headers,
            body: r.text().await?,
        })
    }

    /// `GET target` with this browser's cookies for its origin.
    pub async fn get(&mut self, target: &str) -> anyhow::Result<Page> {
        let url = self.url(target);
        let mut req = self.http.get(&url);
        if let Some(c) = self.cookie_header(&url) {
            req = req.header("cookie", c);
        }
        let r = req.send().await?;
        self.finish(&url, r).await
    }

    /// Signs out at `logout` (`/TENANT/oauth2/v2.0/logout?...`, relative or absolute): a GET
    /// shows a confirmation page while a session is live, whose form this posts back. The
    /// answer to the post (or to the GET when there was nothing to confirm).
    pub async fn sign_out(&mut self, logout: &str) -> anyhow::Result<Page> {
        let page = self.get(logout).await?;
        if !page.body.contains("id=\"signout\"") {
            return Ok(page);
        }
        let action = logout.split('?').next().unwrap_or(logout).to_string();
        let mut form = vec![("csrf", page.hidden("csrf"))];
        for k in ["post_logout_redirect_uri", "state"] {
            let v = page.hidden(k);
            if !v.is_empty() {
                form.push((k, v));
            }
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.post(&action, &form).await
    }

    /// `POST target` with `form` (urlencoded) and this browser's cookies for its origin.
    pub async fn post(&mut self, target: &str, form: &[(&str, &str)]) -> anyhow::Result<Page> {
        let url = self.url(target);
        let mut req = self.http.post(&url).form(form);
        if let Some(c) = self.cookie_header(&url) {
            req = req.header("cookie", c);
        }
        let r = req.send().await?;
        self.finish(&url, r).await
    }
}

/// A screenshot: the PNG signature, an IHDR chunk and a plausible size for a rendered page
/// (a single-colour image compresses to far less). Returns its width and height.
pub fn check_png(path: &Path) -> anyhow::Result<(u32, u32)> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    if bytes.len() < 1000 || !bytes.starts_with(b"\x89PNG\r\n\x1a\n") || &bytes[12..16] != b"IHDR" {
        anyhow::bail!("{} is not a PNG ({} bytes)", path.display(), bytes.len());
    }
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Ok((be(16), be(20)))
}
