//! Load on a deployment server, for `slipway-load` and `bench/server.sh`:
//! many simulated machines enroll, report their inventory and post status
//! events through one shared HTTP client, every request timed; afterwards
//! the server must hold exactly the events that were sent. And image
//! downloads: K simulated agents fetch one image version at once, each into
//! its own cache store, or K clients fetch a list of URLs (the same packs
//! from another web server) for comparison.
//!
//! Everything is measured from the client's side: a latency is the time from
//! sending a request to having its parsed answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use slipway_api::*;
use slipway_store::Store;

use crate::client::{status_of, Client, Connection};
use crate::fetch::fetch_image;

/// What `run` does.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub machines: usize,
    /// Status events each machine posts, one per request.
    pub events: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Machines whose stored events and facts history are read back one by one.
    pub verify: usize,
}

/// Latency figures of one kind of request, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(mut ms: Vec<f64>) -> Latency {
        if ms.is_empty() {
            return Latency::default();
        }
        ms.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least p of them at or below it.
        let at = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Latency {
            count: ms.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: ms[ms.len() - 1],
            mean_ms: ms.iter().sum::<f64>() / ms.len() as f64,
        }
    }
}

/// One phase of the load: its requests, how long it took, what failed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Phase {
    pub requests: u64,
    pub failures: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub latency: Latency,
}

/// The result of `run` (`--json` prints it; schema `slipway.load/1`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    pub schema: &'static str,
    pub server: String,
    /// `/v1/overview`'s `database`.
    pub database: String,
    pub machines: u64,
    pub machines_enrolled: u64,
    pub events_per_machine: u64,
    pub concurrency: usize,
    pub events_sent: u64,
    /// Events the server acknowledged as stored (`accepted`).
    pub events_acked: u64,
    /// Events the server said it had already (must be 0: every seq is new).
    pub events_duplicate: u64,
    /// Growth of `/v1/overview`'s `events` over the run.
    pub events_stored: u64,
    /// Events acknowledged but not stored (acked - stored; must be 0).
    pub events_lost: i64,
    pub requests: u64,
    pub failures: u64,
    /// Failed requests by `PHASE STATUS` (`transport` when no HTTP answer came).
    pub failures_by_status: BTreeMap<String, u64>,
    /// The first few failures, whole.
    pub failure_examples: Vec<String>,
    pub wall_seconds: f64,
    pub enroll: Phase,
    pub inventory: Phase,
    pub events: Phase,
    /// Events stored per second of the event phase.
    pub events_per_second: f64,
    /// Read back one by one: each machine's events and facts history.
    pub verified_machines: u64,
    pub verify_problems: Vec<String>,
    /// `GET /v1/machines/{id}/events` while verifying.
    pub verify_events_latency: Latency,
    pub ok: bool,
}

/// One machine of the simulation.
struct Sim {
    index: usize,
    id: String,
    client: Client,
}

/// What one request did: its latency, or why it failed.
type Outcome<T> = std::result::Result<(T, f64), String>;

async fn timed<T, Fut: Future<Output = Result<T>>>(phase: &str, f: Fut) -> Outcome<T> {
    let t = Instant::now();
    match f.await {
        Ok(v) => Ok((v, t.elapsed().as_secs_f64() * 1000.0)),
        Err(e) => {
            let key = match status_of(&e) {
                Some(s) => format!("{phase} {}", s.as_u16()),
                None => format!("{phase} transport"),
            };
            Err(format!("{key}\t{e:#}"))
        }
    }
}

/// Runs `f(0..n)` with at most `limit` of them at once, each on its own
/// task, and returns the results in completion order.
async fn bounded<T, F, Fut>(n: usize, limit: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    stream::iter(0..n)
        .map(|i| tokio::spawn(f(i)))
        .buffer_unordered(limit.max(1))
        .map(|r| r.expect("a load task panicked"))
        .collect()
        .await
}

/// A plausible machine: distinct host name, serial, UUID and MAC, an x86_64
/// server with one disk and one NIC.
pub fn synthetic_inventory(i: usize) -> Inventory {
    let mac =
        format!("02:5e:{:02x}:{:02x}:{:02x}:{:02x}", (i >> 24) & 0xff, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    let memory_mb = [4096, 8192, 16384, 32768][i % 4];
    let disk = 64u64 << 30 << (i % 3);
    Inventory {
        arch: "x86_64".into(),
        firmware: Some(if i % 5 == 0 { Firmware::Bios } else { Firmware::Uefi }),
        hostname: format!("load-{i:05}"),
        cpu: Cpu { model: "AMD EPYC 7B13 (simulated)".into(), cores: 4, threads: 8 },
        memory_mb,
        disk: vec![Disk {
            name: "vda".into(),
            size_bytes: disk,
            model: Some("QEMU HARDDISK".into()),
            serial: Some(format!("LD{i:08}")),
            rotational: false,
            removable: false,
        }],
        nic: vec![Nic { name: "ens3".into(), mac, speed_mbps: Some(10_000), driver: Some("virtio_net".into()) }],
        dmi: Dmi {
            vendor: Some("QEMU".into()),
            model: Some("Standard PC (Q35 + ICH9, 2009)".into()),
            serial: Some(format!("LOAD{i:08}")),
            uuid: Some(format!("4c4f4144-0000-4000-8000-{i:012x}")),
            bios_vendor: Some("EDK II".into()),
            bios_version: Some("stable202302".into()),
        },
        os: Some(OsRelease {
            id: "debian".into(),
            version_id: Some("12".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        }),
        packages: Vec::new(),
        target: Some(Target { path: "/target".into(), free_bytes: disk - (2 << 30), total_bytes: disk }),
        extra: BTreeMap::new(),
    }
}

/// The second report: the target lost 1 GiB of free space (one changed fact).
fn changed_inventory(i: usize) -> Inventory {
    let mut inv = synthetic_inventory(i);
    if let Some(t) = &mut inv.target {
        t.free_bytes -= 1 << 30;
    }
    inv
}

/// Event `seq` of machine `i`: odd ones are log lines, even ones progress.
fn event(i: usize, seq: u64, of: u64) -> AgentEvent {
    let (kind, message, done, total) = if seq % 2 == 1 {
        (
            EventKind::Log,
            Some(format!("load-{i:05}: step {seq} of {of}: fetched 412 blobs (48.2 MB), 0 from cache")),
            None,
            None,
        )
    } else {
        (EventKind::Progress, None, Some(seq * 1_000_000), Some(of * 1_000_000))
    };
    AgentEvent {
        seq,
        kind,
        deployment_id: None,
        state: None,
        message,
        done,
        total,
        at: Some(slipway_store::rfc3339(now_secs())),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Collects the outcomes of a phase: latencies and failures.
struct Tally {
    failures: BTreeMap<String, u64>,
    examples: Vec<String>,
}

impl Tally {
    fn phase<T>(&mut self, results: &[Outcome<T>], seconds: f64) -> Phase {
        let mut ms = Vec::with_capacity(results.len());
        let mut failed = 0;
        for r in results {
            match r {
                Ok((_, t)) => ms.push(*t),
                Err(e) => {
                    failed += 1;
                    let (key, whole) = e.split_once('\t').unwrap_or((e, e));
                    *self.failures.entry(key.to_string()).or_default() += 1;
                    if self.examples.len() < 10 {
                        self.examples.push(whole.to_string());
                    }
                }
            }
        }
        let requests = results.len() as u64;
        Phase {
            requests,
            failures: failed,
            seconds,
            requests_per_second: if seconds > 0.0 { requests as f64 / seconds } else { 0.0 },
            latency: Latency::of(ms),
        }
    }
}

/// Runs the load: an enrollment token, then every machine enrolls, reports
/// its inventory again with one fact changed, and posts its events; then
/// the server's counts and a sample of machines are read back.
pub async fn run(conn: &Connection, admin_token: &str, opts: &LoadOptions) -> Result<LoadReport> {
    let anon = Client::new(conn, None)?;
    let admin = anon.with_token(admin_token.to_string());
    let before: Overview = admin.get("/v1/overview").await.context("reading the server's overview before the load")?;
    let token: TokenCreated = admin
        .post(
            "/v1/tokens",
            &TokenRequest { kind: TokenKind::Enrollment, name: "load".into(), uses: None, expires_in: None },
        )
        .await
        .context("making an enrollment token")?;
    let mut rep = LoadReport {
        schema: "slipway.load/1",
        server: conn.server.clone(),
        database: before.database.clone(),
        machines: opts.machines as u64,
        events_per_machine: opts.events,
        concurrency: opts.concurrency,
        ..Default::default()
    };
    let mut tally = Tally { failures: BTreeMap::new(), examples: Vec::new() };
    let started = Instant::now();

    // Enroll.
    let t = Instant::now();
    let enrolled = bounded(opts.machines, opts.concurrency, |i| {
        let (c, tok) = (anon.clone(), token.token.clone());
        async move {
            let req = EnrollRequest { token: Some(tok), inventory: synthetic_inventory(i) };
            timed("enroll", async { c.post::<_, EnrollResponse>("/v1/enroll", &req).await })
                .await
                .map(|(r, ms)| ((i, r), ms))
        }
    })
    .await;
    rep.enroll = tally.phase(&enrolled, t.elapsed().as_secs_f64());
    let sims: Vec<Arc<Sim>> = enrolled
        .into_iter()
        .filter_map(|r| r.ok())
        .map(|((index, r), _)| Arc::new(Sim { index, id: r.machine_id, client: anon.with_token(r.credential) }))
        .collect();
    rep.machines_enrolled = sims.len() as u64;

    // Inventory again, with a changed fact.
    let t = Instant::now();
    let reported = bounded(sims.len(), opts.concurrency, |k| {
        let s = sims[k].clone();
        async move {
            timed("inventory", async {
                let v: FactsVersion = s.client.post("/v1/agent/inventory", &changed_inventory(s.index)).await?;
                if v.version != 2 || v.changed != ["target"] {
                    bail!(
                        "machine {}: the changed report became facts version {} changing {:?}, not 2 changing [\"target\"]",
                        s.id,
                        v.version,
                        v.changed
                    );
                }
                Ok(())
            })
            .await
        }
    })
    .await;
    rep.inventory = tally.phase(&reported, t.elapsed().as_secs_f64());

    // Events: each machine posts its own in order, one per request, with
    // `concurrency` machines (so requests) at once.
    let t = Instant::now();
    let per_machine = bounded(sims.len(), opts.concurrency, |k| {
        let s = sims[k].clone();
        let n = opts.events;
        async move {
            let mut out = Vec::with_capacity(n as usize);
            for seq in 1..=n {
                let batch = EventBatch { events: vec![event(s.index, seq, n)] };
                out.push(
                    timed("events", async { s.client.post::<_, EventAck>("/v1/agent/events", &batch).await }).await,
                );
            }
            out
        }
    })
    .await;
    let event_seconds = t.elapsed().as_secs_f64();
    let posted: Vec<Outcome<EventAck>> = per_machine.into_iter().flatten().collect();
    rep.events_sent = posted.len() as u64;
    for (ack, _) in posted.iter().flatten() {
        rep.events_acked += ack.accepted;
        rep.events_duplicate += ack.duplicates;
    }
    rep.events = tally.phase(&posted, event_seconds);
    rep.wall_seconds = started.elapsed().as_secs_f64();

    // What the server holds now.
    let after: Overview = admin.get("/v1/overview").await.context("reading the server's overview after the load")?;
    rep.events_stored = after.events.saturating_sub(before.events);
    rep.events_lost = rep.events_acked as i64 - rep.events_stored as i64;
    rep.events_per_second = if event_seconds > 0.0 { rep.events_stored as f64 / event_seconds } else { 0.0 };
    if after.machines.saturating_sub(before.machines) != rep.machines_enrolled {
        rep.verify_problems.push(format!(
            "the server counts {} new machines; {} enrolled",
            after.machines.saturating_sub(before.machines),
            rep.machines_enrolled
        ));
    }
    verify(&admin, &sims, opts, &mut rep).await;

    rep.requests = rep.enroll.requests + rep.inventory.requests + rep.events.requests;
    rep.failures = rep.enroll.failures + rep.inventory.failures + rep.events.failures;
    rep.failures_by_status = tally.failures;
    rep.failure_examples = tally.examples;
    let expected = rep.machines * rep.events_per_machine;
    rep.ok = rep.failures == 0
        && rep.events_lost == 0
        && rep.events_duplicate == 0
        && rep.events_stored == expected
        && rep.events_acked == expected
        && rep.verify_problems.is_empty();
    Ok(rep)
}

/// Reads back `opts.verify` machines spread over the run: every event in
/// order with the content sent, and two facts versions.
async fn verify(admin: &Client, sims: &[Arc<Sim>], opts: &LoadOptions, rep: &mut LoadReport) {
    let n = opts.verify.min(sims.len());
    let mut ms = Vec::new();
    for k in 0..n {
        let s = &sims[k * sims.len() / n];
        let t = Instant::now();
        let got: Result<Vec<Event>> = admin.get(&format!("/v1/machines/{}/events?limit=5000", s.id)).await;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        match got {
            Err(e) => rep.verify_problems.push(format!("machine {}: reading its events: {e:#}", s.id)),
            Ok(events) => {
                let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
                let want: Vec<i64> = (1..=opts.events as i64).collect();
                if seqs != want {
                    rep.verify_problems.push(format!(
                        "machine {}: stored seqs {:?} (of {}), want 1..={}",
                        s.id,
                        &seqs[..seqs.len().min(30)],
                        seqs.len(),
                        opts.events
                    ));
                }
                for e in &events {
                    let sent = event(s.index, e.seq as u64, opts.events);
                    if e.kind != sent.kind || e.message != sent.message || e.done != sent.done || e.total != sent.total
                    {
                        rep.verify_problems.push(format!("machine {}: event {} is not what was sent", s.id, e.seq));
                        break;
                    }
                }
            }
        }
        match admin.get::<Vec<FactsVersion>>(&format!("/v1/machines/{}/facts", s.id)).await {
            Err(e) => rep.verify_problems.push(format!("machine {}: reading its facts history: {e:#}", s.id)),
            Ok(h) if h.len() != 2 || h[0].changed != ["target"] => rep.verify_problems.push(format!(
                "machine {}: {} facts versions (newest changed {:?}); want 2, the newest changing [\"target\"]",
                s.id,
                h.len(),
                h.first().map(|v| &v.changed)
            )),
            Ok(_) => {}
        }
        rep.verified_machines += 1;
    }
    rep.verify_events_latency = Latency::of(ms);
}

/// One agent's download.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AgentDownload {
    pub agent: usize,
    pub seconds: f64,
    pub bytes: u64,
    pub requests: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of `download` and `download_urls` (schema `slipway.load-download/1`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct DownloadReport {
    pub schema: &'static str,
    /// `fetch_image` (the agent's path: verify, import into a cache store)
    /// or `urls` (plain GETs written to files).
    pub method: &'static str,
    pub server: String,
    pub agents: usize,
    /// Bytes over HTTP, all agents.
    pub bytes: u64,
    /// From the first request to the last agent done.
    pub wall_seconds: f64,
    /// `bytes` / `wall_seconds`, in MB/s (10^6).
    pub aggregate_mb_per_s: f64,
    pub agent_seconds_median: f64,
    pub agent_seconds_max: f64,
    pub per_agent: Vec<AgentDownload>,
    pub failures: u64,
    pub ok: bool,
}

fn finish_download(method: &'static str, server: &str, mut per: Vec<AgentDownload>, wall: f64) -> DownloadReport {
    per.sort_by_key(|a| a.agent);
    let bytes = per.iter().map(|a| a.bytes).sum();
    let mut secs: Vec<f64> = per.iter().filter(|a| a.error.is_none()).map(|a| a.seconds).collect();
    secs.sort_by(f64::total_cmp);
    let failures = per.iter().filter(|a| a.error.is_some()).count() as u64;
    DownloadReport {
        schema: "slipway.load-download/1",
        method,
        server: server.to_string(),
        agents: per.len(),
        bytes,
        wall_seconds: wall,
        aggregate_mb_per_s: if wall > 0.0 { bytes as f64 / 1e6 / wall } else { 0.0 },
        agent_seconds_median: if secs.is_empty() { 0.0 } else { secs[(secs.len() - 1) / 2] },
        agent_seconds_max: secs.last().copied().unwrap_or(0.0),
        ok: failures == 0,
        failures,
        per_agent: per,
    }
}

/// A directory that does not exist yet or is empty.
fn fresh_dir(d: &Path) -> Result<()> {
    if d.exists() && std::fs::read_dir(d)?.next().is_some() {
        bail!("{} is not empty; give an empty directory for the agents' caches", d.display());
    }
    std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))
}

/// `agents` simulated agents fetch image record `record` at once, each into
/// a new cache store `DIR/agent-N` (the agent's own code path: every blob
/// verified and imported).
pub async fn download(
    conn: &Connection,
    token: &str,
    record: &str,
    agents: usize,
    dir: &Path,
) -> Result<DownloadReport> {
    let client = Client::new(conn, Some(token.to_string()))?;
    let mut caches = Vec::with_capacity(agents);
    for k in 0..agents {
        let d = dir.join(format!("agent-{k}"));
        fresh_dir(&d)?;
        caches.push(Store::init(&d).with_context(|| format!("making the cache store {}", d.display()))?);
    }
    let t = Instant::now();
    let tasks: Vec<_> = caches
        .into_iter()
        .enumerate()
        .map(|(k, mut cache)| {
            let (c, record) = (client.clone(), record.to_string());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = fetch_image(&c, &mut cache, &record, &mut |_, _| {}).await;
                let seconds = t.elapsed().as_secs_f64();
                match r {
                    Ok((_, f)) => AgentDownload {
                        agent: k,
                        seconds,
                        bytes: f.bytes_received,
                        requests: 2 + f.packs_fetched + f.blobs_fetched.saturating_sub(f.packs_fetched),
                        error: None,
                    },
                    Err(e) => AgentDownload { agent: k, seconds, error: Some(format!("{e:#}")), ..Default::default() },
                }
            })
        })
        .collect();
    let mut per = Vec::with_capacity(agents);
    for task in tasks {
        per.push(task.await.context("a download task panicked")?);
    }
    Ok(finish_download("fetch_image", &conn.server, per, t.elapsed().as_secs_f64()))
}

/// Requests each agent has in flight in `download_urls`, as `fetch_image` does.
const URL_PARALLEL: usize = 8;

/// `agents` clients each GET every path of `paths` (relative to the
/// server), 8 at a time as the agent does, writing each body to a file in
/// `DIR/agent-N`. The same measurement for any web server holding the same
/// bytes.
pub async fn download_urls(
    conn: &Connection,
    token: Option<&str>,
    paths: &[String],
    agents: usize,
    dir: &Path,
) -> Result<DownloadReport> {
    let client = Client::new(conn, token.map(str::to_string))?;
    let mut dirs = Vec::with_capacity(agents);
    for k in 0..agents {
        let d = dir.join(format!("agent-{k}"));
        fresh_dir(&d)?;
        dirs.push(d);
    }
    let paths = Arc::new(paths.to_vec());
    let t = Instant::now();
    let tasks: Vec<_> = dirs
        .into_iter()
        .enumerate()
        .map(|(k, d)| {
            let (c, paths) = (client.clone(), paths.clone());
            tokio::spawn(async move {
                let t = Instant::now();
                let r = fetch_paths(&c, &paths, &d).await;
                let seconds = t.elapsed().as_secs_f64();
                match r {
                    Ok(bytes) => AgentDownload { agent: k, seconds, bytes, requests: paths.len() as u64, error: None },
                    Err(e) => AgentDownload { agent: k, seconds, error: Some(format!("{e:#}")), ..Default::default() },
                }
            })
        })
        .collect();
    let mut per = Vec::with_capacity(agents);
    for task in tasks {
        per.push(task.await.context("a download task panicked")?);
    }
    Ok(finish_download("urls", &conn.server, per, t.elapsed().as_secs_f64()))
}

async fn fetch_paths(c: &Client, paths: &[String], dir: &Path) -> Result<u64> {
    let jobs: Vec<(String, PathBuf)> =
        paths.iter().enumerate().map(|(n, p)| (p.clone(), dir.join(format!("{n:05}")))).collect();
    let mut results = stream::iter(jobs)
        .map(|(p, out)| {
            let c = c.clone();
            async move {
                let bytes = c.get_bytes(&p).await?;
                tokio::fs::write(&out, &bytes).await.with_context(|| format!("writing {}", out.display()))?;
                Ok::<u64, anyhow::Error>(bytes.len() as u64)
            }
        })
        .buffer_unordered(URL_PARALLEL);
    let mut total = 0;
    while let Some(r) = results.next().await {
        total += r?;
    }
    Ok(total)
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// The load report as a table for a terminal.
pub fn human(r: &LoadReport) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("server    {} ({})", r.server, r.database));
    line(format!(
        "machines  {} enrolled of {}, {} events each, {} requests in flight",
        r.machines_enrolled, r.machines, r.events_per_machine, r.concurrency
    ));
    line(format!(
        "events    {} sent, {} acknowledged, {} stored, {} lost, {} duplicates",
        r.events_sent, r.events_acked, r.events_stored, r.events_lost, r.events_duplicate
    ));
    line(format!("requests  {} in {:.1} s, {} failed", r.requests, r.wall_seconds, r.failures));
    for (k, n) in &r.failures_by_status {
        line(format!("  failed  {k}: {n}"));
    }
    line(String::new());
    line(format!(
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "phase", "requests", "failed", "s", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
    ));
    for (name, p) in [("enroll", &r.enroll), ("inventory", &r.inventory), ("events", &r.events)] {
        line(format!(
            "{:<10} {:>8} {:>8} {:>8.1} {:>8.0} {:>8} {:>8} {:>8} {:>8}",
            name,
            p.requests,
            p.failures,
            p.seconds,
            p.requests_per_second,
            ms(p.latency.p50_ms),
            ms(p.latency.p95_ms),
            ms(p.latency.p99_ms),
            ms(p.latency.max_ms)
        ));
    }
    line(String::new());
    line(format!("events/s  {:.0} (stored events / event phase)", r.events_per_second));
    line(format!(
        "verified  {} machines one by one (events read in p50 {} ms, max {} ms)",
        r.verified_machines,
        ms(r.verify_events_latency.p50_ms),
        ms(r.verify_events_latency.max_ms)
    ));
    for p in &r.verify_problems {
        line(format!("  PROBLEM {p}"));
    }
    for e in &r.failure_examples {
        line(format!("  e.g. {e}"));
    }
    line(if r.ok { "OK: every request answered, no event lost".into() } else { "FAILED: see above".into() });
    s
}

/// The download report as lines for a terminal.
pub fn human_download(r: &DownloadReport) -> String {
    let mut s = format!(
        "{} from {}: {} agents, {:.1} MB in {:.2} s, {:.0} MB/s aggregate; per agent median {:.2} s, max {:.2} s",
        r.method,
        r.server,
        r.agents,
        r.bytes as f64 / 1e6,
        r.wall_seconds,
        r.aggregate_mb_per_s,
        r.agent_seconds_median,
        r.agent_seconds_max
    );
    for a in &r.per_agent {
        if let Some(e) = &a.error {
            s.push_str(&format!("\n  agent {} FAILED after {:.2} s: {e}", a.agent, a.seconds));
        }
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let l = Latency::of((1..=100).rev().map(f64::from).collect());
        assert_eq!((l.count, l.p50_ms, l.p95_ms, l.p99_ms, l.max_ms), (100, 50.0, 95.0, 99.0, 100.0));
        assert_eq!(Latency::of(vec![7.0]).p99_ms, 7.0);
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }

    #[test]
    fn synthetic_machines_are_distinct_and_change_one_fact() {
        let mut seen = std::collections::HashSet::new();
        for i in [0, 1, 255, 256, 65_535, 65_536, 99_999] {
            let inv = synthetic_inventory(i);
            assert!(seen.insert((inv.hostname.clone(), inv.nic[0].mac.clone(), inv.dmi.serial.clone())));
            let before = inv.facts();
            let after = changed_inventory(i).facts();
            let changed: Vec<&String> =
                before.as_object().unwrap().keys().filter(|k| before[k.as_str()] != after[k.as_str()]).collect();
            assert_eq!(changed, ["target"]);
        }
    }

    #[test]
    fn events_alternate_log_and_progress() {
        let (a, b) = (event(3, 1, 10), event(3, 2, 10));
        assert_eq!((a.kind, b.kind), (EventKind::Log, EventKind::Progress));
        assert!(a.message.as_deref().is_some_and(|m| m.starts_with("load-00003: step 1 of 10")));
        assert_eq!((b.done, b.total), (Some(2_000_000), Some(10_000_000)));
    }
}
