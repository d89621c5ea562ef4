//! `slipway-load`: load on a slipway deployment server (many simulated
//! machines enrolling and posting status events), or many agents
//! downloading one image at once. Used by `bench/server.sh`; the logic is in
//! `slipway_agent::load`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use slipway_agent::load::{self, LoadOptions};
use slipway_agent::Connection;

/// Load on a slipway deployment server.
///
/// Without --download: makes an enrollment token, then --machines simulated
/// machines enroll, report their inventory again with one fact changed, and
/// post --events status events each (one per request), with --concurrency
/// requests in flight; then checks that the server holds every event sent.
/// Exits 1 when a request failed or an event was lost.
///
/// With --download RECORD: --agents simulated agents fetch that image record
/// at once, each into a new cache store under --cache-dir. With --download-urls
/// FILE: --agents clients GET every path listed in FILE (one a line, relative
/// to --server) into files under --cache-dir.
#[derive(Parser, Debug)]
#[command(name = "slipway-load", version, max_term_width = 80)]
struct Args {
    /// The server, https://HOST:PORT
    #[arg(long, value_name = "URL")]
    server: String,
    /// PEM certificate to trust (STORE.server/tls/cert.pem)
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// An admin token (slipway server token new)
    #[arg(long, env = "SLIPWAY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Simulated machines
    #[arg(long, default_value_t = 1000)]
    machines: usize,
    /// Status events per machine, one request each
    #[arg(long, default_value_t = 20)]
    events: u64,
    /// Requests in flight at once
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Machines whose events and facts history are read back one by one
    #[arg(long, default_value_t = 50)]
    verify: usize,
    /// Fetch this image record (GET /v1/images lists them) with --agents
    /// agents at once
    #[arg(long, value_name = "RECORD", conflicts_with = "download_urls")]
    download: Option<String>,
    /// GET every path in FILE with --agents clients at once
    #[arg(long, value_name = "FILE")]
    download_urls: Option<PathBuf>,
    /// Simulated agents downloading at once
    #[arg(long, default_value_t = 20)]
    agents: usize,
    /// Where the agents' caches go (an empty or new directory)
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// One JSON object instead of a table
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slipway-load: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("slipway-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print<T: serde::Serialize>(json: bool, report: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", human(report));
    }
    Ok(())
}

async fn run(a: Args) -> Result<bool> {
    let conn = Connection { server: a.server.clone(), ca: a.ca.clone() };
    if let Some(record) = &a.download {
        let dir = a.cache_dir.as_deref().context("--cache-dir is needed with --download")?;
        let token = a.token.as_deref().context("--token (an admin token) is needed with --download")?;
        let r = load::download(&conn, token, record, a.agents, dir).await?;
        print(a.json, &r, load::human_download)?;
        return Ok(r.ok);
    }
    if let Some(list) = &a.download_urls {
        let dir = a.cache_dir.as_deref().context("--cache-dir is needed with --download-urls")?;
        let text = std::fs::read_to_string(list).with_context(|| format!("reading the URL list {}", list.display()))?;
        let paths: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
        if paths.is_empty() {
            bail!("{} lists no paths", list.display());
        }
        let r = load::download_urls(&conn, a.token.as_deref(), &paths, a.agents, dir).await?;
        print(a.json, &r, load::human_download)?;
        return Ok(r.ok);
    }
    let token = a.token.as_deref().context("--token (an admin token) is needed")?;
    if a.machines == 0 || a.concurrency == 0 {
        bail!("--machines and --concurrency must be at least 1");
    }
    let opts = LoadOptions { machines: a.machines, events: a.events, concurrency: a.concurrency, verify: a.verify };
    let r = load::run(&conn, token, &opts).await?;
    print(a.json, &r, load::human)?;
    Ok(r.ok)
}
