//! slipway's deployment server (`slipway serve`): machines enroll and report
//! their inventory, collections choose machines by rules over it,
//! deployments put image versions on collections, agents fetch content by
//! id and report every step. One process, with SQLite by default or
//! PostgreSQL, TLS by rustls, an OpenAPI document and a web console.
//!
//! The API is specified in `docs/server-api.md`; the rule language of
//! collections in `docs/rule-language.md`.

mod auth;
mod collections;
mod console;
mod content;
mod db;
mod deployments;
mod error;
mod images;
mod machines;
mod tls;
mod tokens;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use axum::extract::State;
use axum::Json;
use slipway_api::{Overview, TokenCreated, TokenKind, TokenRequest};
use slipway_store::{BlobId, Store};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use db::Db;
pub use tls::fingerprint;

type Manifests = (Arc<Vec<u8>>, Vec<BlobId>);

/// What every request handler shares.
pub struct AppState {
    db: Db,
    store: RwLock<Store>,
    frames: Mutex<content::FrameCache>,
    /// Manifests by record, with the packs they name.
    manifests: Mutex<HashMap<BlobId, Manifests>>,
    /// Woken when work may have appeared (agents long-poll on it).
    work: tokio::sync::Notify,
    /// One claim at a time, so `max_parallel` holds.
    claim: tokio::sync::Mutex<()>,
    secrets: PathBuf,
    /// The server's data directory (packages are kept there).
    data: PathBuf,
}

/// How the server speaks TLS.
#[derive(Clone, Debug)]
pub enum Tls {
    /// A self-signed certificate in the data directory, made on first start.
    SelfSigned,
    /// This certificate chain and key (PEM).
    Given { cert: PathBuf, key: PathBuf },
    /// Plain HTTP (behind a TLS-terminating proxy, or on loopback in tests).
    Off,
}

pub struct ServeOptions {
    pub listen: SocketAddr,
    pub store: PathBuf,
    /// Database, TLS files and secrets (default: `STORE.server`).
    pub data: PathBuf,
    /// `sqlite:PATH` or `postgres://...` (default: SQLite in the data directory).
    pub db: Option<String>,
    pub tls: Tls,
    /// Where answer files' `file` secrets are read (default: `DATA/secrets`).
    pub secrets: Option<PathBuf>,
}

/// `STORE.server`, beside the store.
pub fn default_data_dir(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_owned();
    s.push(".server");
    PathBuf::from(s)
}

/// The database URL: the one given, else SQLite in the data directory.
pub fn database_url(data: &Path, given: Option<&str>) -> String {
    match given {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}?mode=rwc", data.join("slipway.db").display()),
    }
}

/// Makes a token offline, straight in the database (`slipway server token
/// new`), so the first admin token exists before the server runs.
pub async fn new_token(data: &Path, db: Option<&str>, req: &TokenRequest) -> Result<TokenCreated> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let db = Db::open(&database_url(data, db)).await?;
    tokens::make(&db, req).await
}

#[derive(OpenApi)]
#[openapi(
    info(title = "slipway deployment API", description = "Machines, inventory, collections, deployments and status. Specified in docs/server-api.md."),
    modifiers(&Security),
    tags(
        (name = "agent", description = "What agents call, with their machine credential"),
        (name = "machines", description = "Enrolled machines, their facts and events"),
        (name = "collections", description = "Sets of machines by rule and by membership"),
        (name = "deployments", description = "Images to collections, and each machine's state"),
        (name = "content", description = "Image content by BLAKE3 id (immutable, cacheable)"),
        (name = "images", description = "Images in the server's store"),
        (name = "tokens", description = "Admin and enrollment tokens"),
        (name = "server", description = "The server itself"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
        };
        c.add_security_scheme("admin", bearer("An admin token, slw_admin_..."));
        c.add_security_scheme("machine", bearer("A machine credential from enrollment, slw_machine_..."));
    }
}

/// The fleet at a glance.
#[utoipa::path(get, path = "/v1/overview", tag = "server", responses((status = 200, body = Overview)), security(("admin" = [])))]
async fn overview(State(st): State<Arc<AppState>>, _a: auth::Admin) -> error::ApiResult<Json<Overview>> {
    use db::RowExt;
    let one = |sql: &'static str| {
        let st = st.clone();
        async move { Ok::<u64, error::ApiErr>(sqlx::query(sql).fetch_one(&st.db.pool).await?.int("n") as u64) }
    };
    let mut states = BTreeMap::new();
    for r in sqlx::query("SELECT state, COUNT(*) AS n FROM deployment_machines GROUP BY state")
        .fetch_all(&st.db.pool)
        .await?
    {
        states.insert(r.text("state"), r.int("n") as u64);
    }
    Ok(Json(Overview {
        version: env!("CARGO_PKG_VERSION").to_string(),
        database: st.db.describe(),
        machines: one("SELECT COUNT(*) AS n FROM machines").await?,
        awaiting_approval: one("SELECT COUNT(*) AS n FROM machines WHERE status = 'awaiting_approval'").await?,
        collections: one("SELECT COUNT(*) AS n FROM collections").await?,
        deployments: one("SELECT COUNT(*) AS n FROM deployments").await?,
        states,
        events: one("SELECT COUNT(*) AS n FROM events").await?,
    }))
}

/// Is the server up (no authentication).
#[utoipa::path(get, path = "/v1/health", tag = "server", responses((status = 200, description = "the server is up", body = serde_json::Value)))]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Every API route, with its OpenAPI description: the router and the
/// document come from this one list, so they cannot disagree.
fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(overview))
        .routes(routes!(machines::enroll))
        .routes(routes!(machines::report))
        .routes(routes!(deployments::work))
        .routes(routes!(deployments::post_events))
        .routes(routes!(deployments::answer))
        .routes(routes!(machines::list))
        .routes(routes!(machines::detail))
        .routes(routes!(machines::facts_history))
        .routes(routes!(machines::events))
        .routes(routes!(machines::approve))
        .routes(routes!(machines::reject))
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(collections::get, collections::update, collections::delete))
        .routes(routes!(deployments::list, deployments::create))
        .routes(routes!(deployments::status))
        .routes(routes!(deployments::cancel))
        .routes(routes!(deployments::retry))
        .routes(routes!(deployments::feed))
        .routes(routes!(content::record))
        .routes(routes!(content::manifest))
        .routes(routes!(content::blob))
        .routes(routes!(content::pack))
        .routes(routes!(content::package))
        .routes(routes!(content::upload_package))
        .routes(routes!(images::list))
        .routes(routes!(tokens::create))
}

fn router(state: Arc<AppState>) -> axum::Router {
    let (api, mut doc) = api_routes().with_state(state).split_for_parts();
    common_responses(&mut doc);
    let doc = Arc::new(doc);
    api.route(
        "/v1/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
    .merge(console::routes())
    .layer(axum::middleware::from_fn(content::not_modified))
    .layer(axum::middleware::from_fn(error::json_rejections))
    .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
}

/// The OpenAPI document, as the server serves it at `/v1/openapi.json`.
pub fn openapi_json() -> String {
    let mut doc = api_routes().split_for_parts().1;
    common_responses(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Adds the responses that every operation can give and that the route
/// attributes leave out: 401 and 403 from the credential extractors on every
/// operation with a `security` requirement, and 400 from the path, query and
/// body extractors (`error::Json`, `Query`, `Path`) on every operation that
/// takes parameters or a body.
fn common_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let err = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ApiError"))).build())
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
            let r = &mut op.responses.responses;
            if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                r.entry("401".into()).or_insert_with(|| err("no credential, or one this server does not know").into());
                r.entry("403".into()).or_insert_with(|| {
                    err("this credential may not do this (a machine not approved, or on the admin API)").into()
                });
            }
            if op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                r.entry("400".into()).or_insert_with(|| err("the request cannot be read").into());
            }
        }
    }
}

/// What a started server reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Started {
    pub url: String,
    pub database: String,
    pub store: String,
    /// PEM certificate clients should trust (None for plain HTTP).
    pub certificate: Option<PathBuf>,
    pub fingerprint: Option<String>,
    pub certificate_made: bool,
}

/// Runs the server until SIGINT or SIGTERM. `ready` is called once it
/// listens.
pub async fn serve(opts: ServeOptions, ready: impl FnOnce(&Started)) -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::create_dir_all(&opts.data)
        .with_context(|| format!("creating the server's data directory {}", opts.data.display()))?;
    let store = Store::open(&opts.store)
        .with_context(|| format!("opening the store {} (make one with 'slipway capture')", opts.store.display()))?;
    let db = Db::open(&database_url(&opts.data, opts.db.as_deref())).await?;
    let secrets = opts.secrets.clone().unwrap_or_else(|| opts.data.join("secrets"));
    let database = db.describe();
    let state = Arc::new(AppState {
        db,
        store: RwLock::new(store),
        frames: content::FrameCache::new(256 << 20),
        manifests: Mutex::new(HashMap::new()),
        work: tokio::sync::Notify::new(),
        claim: tokio::sync::Mutex::new(()),
        secrets,
        data: opts.data.clone(),
    });
    let app = router(state);
    let handle = axum_server::Handle::new();
    let h2 = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        h2.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    let (scheme, tls_files) = match &opts.tls {
        Tls::Off => ("http", None),
        Tls::SelfSigned | Tls::Given { .. } => {
            let given = match &opts.tls {
                Tls::Given { cert, key } => Some((cert.clone(), key.clone())),
                _ => None,
            };
            let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
            if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
                names.push(h.trim().to_string());
            }
            if !opts.listen.ip().is_unspecified() {
                names.push(opts.listen.ip().to_string());
            }
            names.dedup();
            ("https", Some(tls::files(&opts.data, given, &names)?))
        }
    };
    let server = match &tls_files {
        None => {
            let s = axum_server::bind(opts.listen).handle(handle.clone()).serve(app.into_make_service());
            tokio::spawn(s)
        }
        Some(t) => {
            let cfg = axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(
                tls::server_config(&t.cert, &t.key).with_context(|| {
                    format!("loading the TLS certificate {} and key {}", t.cert.display(), t.key.display())
                })?,
            ));
            let s = axum_server::bind_rustls(opts.listen, cfg).handle(handle.clone()).serve(app.into_make_service());
            tokio::spawn(s)
        }
    };
    let Some(addr) = handle.listening().await else {
        let r = server.await.context("the server task")?;
        r.with_context(|| format!("listening on {}", opts.listen))?;
        anyhow::bail!("the server stopped before it listened on {}", opts.listen);
    };
    let started = Started {
        url: format!("{scheme}://{addr}"),
        database,
        store: opts.store.display().to_string(),
        fingerprint: tls_files.as_ref().and_then(|t| fingerprint(&t.cert).ok()),
        certificate_made: tls_files.as_ref().is_some_and(|t| t.made),
        certificate: tls_files.map(|t| t.cert),
    };
    ready(&started);
    server.await.context("the server task")?.context("serving")?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// The kind of token a name asks for (for the CLI).
pub fn token_kind(enrollment: bool) -> TokenKind {
    if enrollment {
        TokenKind::Enrollment
    } else {
        TokenKind::Admin
    }
}
