//! The HTTP client of the agent and the admin commands: one base URL, one
//! bearer credential, the server's certificate trusted from a PEM file, and
//! errors that carry the server's own explanation.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_api::ApiError;

/// How to reach a server.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// `https://HOST:PORT` (or `http://` for a server run with `--plain-http`).
    pub server: String,
    /// A PEM certificate to trust (the server's self-signed one is in
    /// `STORE.server/tls/cert.pem`). Required for `https://`.
    pub ca: Option<std::path::PathBuf>,
}

/// An error the server answered with.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {status}: {}{}", body.error, body.fix.as_deref().map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct ServerError {
    pub method: &'static str,
    pub path: String,
    pub status: StatusCode,
    pub body: ApiError,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Installs rustls' ring provider for the process (once; later calls are
/// no-ops).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    pub fn new(conn: &Connection, token: Option<String>) -> Result<Client> {
        install_crypto();
        let base = conn.server.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            bail!("server {base:?} is not an http(s) URL; give it as https://HOST:PORT");
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")));
        match &conn.ca {
            Some(p) => {
                b = b.tls_built_in_root_certs(false).add_root_certificate(load_cert(p)?);
            }
            None => {
                if base.starts_with("https://") {
                    bail!(
                        "no certificate to trust for {base}: pass --ca with the server's certificate \
                         (for a self-signed server, STORE.server/tls/cert.pem on the server)"
                    );
                }
            }
        }
        Ok(Client { http: b.build().context("building the HTTP client")?, base, token })
    }

    pub fn with_token(&self, token: String) -> Client {
        Client { http: self.http.clone(), base: self.base.clone(), token: Some(token) }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn req(&self, m: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(m, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn check(method: &'static str, path: &str, resp: reqwest::Response) -> Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ApiError>(&text)
            .unwrap_or(ApiError { error: text.chars().take(300).collect(), fix: None });
        Err(ServerError { method, path: path.to_string(), status, body }.into())
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp =
            self.req(reqwest::Method::GET, path).send().await.with_context(|| format!("GET {}{path}", self.base))?;
        let resp = Self::check("GET", path, resp).await?;
        resp.json().await.with_context(|| format!("GET {path}: the answer is not the JSON expected"))
    }

    /// GET that may answer 204 No Content (`None`).
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str, timeout: Duration) -> Result<Option<T>> {
        let resp = self
            .req(reqwest::Method::GET, path)
            .timeout(timeout)
            .send()
            .await
            .with_context(|| format!("GET {}{path}", self.base))?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let resp = Self::check("GET", path, resp).await?;
        Ok(Some(resp.json().await.with_context(|| format!("GET {path}: the answer is not the JSON expected"))?))
    }

    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>> {
        let resp =
            self.req(reqwest::Method::GET, path).send().await.with_context(|| format!("GET {}{path}", self.base))?;
        let resp = Self::check("GET", path, resp).await?;
        Ok(resp.bytes().await.with_context(|| format!("GET {path}: reading the body"))?.to_vec())
    }

    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).context("HTTP method")?;
        let resp =
            self.req(m, path).json(body).send().await.with_context(|| format!("{method} {}{path}", self.base))?;
        let resp = Self::check(method, path, resp).await?;
        resp.json().await.with_context(|| format!("{method} {path}: the answer is not the JSON expected"))
    }

    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.send("POST", path, body).await
    }

    /// PUT of raw bytes (a package upload).
    pub async fn put_bytes<T: DeserializeOwned>(&self, path: &str, body: Vec<u8>) -> Result<T> {
        let resp = self
            .req(reqwest::Method::PUT, path)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("PUT {}{path}", self.base))?;
        let resp = Self::check("PUT", path, resp).await?;
        resp.json().await.with_context(|| format!("PUT {path}: the answer is not the JSON expected"))
    }

    pub async fn delete(&self, path: &str) -> Result<()> {
        let resp = self
            .req(reqwest::Method::DELETE, path)
            .send()
            .await
            .with_context(|| format!("DELETE {}{path}", self.base))?;
        Self::check("DELETE", path, resp).await.map(|_| ())
    }
}

fn load_cert(p: &Path) -> Result<reqwest::Certificate> {
    let pem = std::fs::read(p).with_context(|| format!("reading the certificate to trust {}", p.display()))?;
    reqwest::Certificate::from_pem(&pem).with_context(|| format!("{} is not a PEM certificate", p.display()))
}

/// Whether an error is worth retrying: the server could not be reached, or
/// answered 5xx / 429 / 503 (restarting, overloaded).
pub fn is_transient(e: &anyhow::Error) -> bool {
    if let Some(s) = e.downcast_ref::<ServerError>() {
        return s.status.is_server_error() || s.status == StatusCode::TOO_MANY_REQUESTS;
    }
    // A certificate that does not verify will not verify next time either.
    let mut src: Option<&dyn std::error::Error> = Some(e.as_ref());
    while let Some(x) = src {
        if x.downcast_ref::<rustls::Error>().is_some() || x.to_string().contains("certificate") {
            return false;
        }
        src = x.source();
    }
    e.chain().any(|c| {
        c.downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect() || r.is_timeout() || r.is_request() || r.is_body())
    })
}

/// The status of a server error, if it was one.
pub fn status_of(e: &anyhow::Error) -> Option<StatusCode> {
    e.downcast_ref::<ServerError>().map(|s| s.status)
}
