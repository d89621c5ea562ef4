//! The agent: enroll once, report the inventory, wait for work (long poll),
//! fetch, apply, specialize, and report every step. Its state (credential,
//! event numbering, unsent events, the step it is on) lives in one file,
//! written atomically, so a restarted agent resumes where it was and a
//! restarted server loses nothing the agent said.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use slipway_api::*;
use slipway_store::{ApplyOptions, Progress, Store};
use tokio::sync::Mutex;

use crate::client::{self, Client, Connection};
use crate::fetch::fetch_image;
use crate::inventory::{self, Sources};
use crate::retry::retrying;

pub struct AgentOptions {
    pub conn: Connection,
    /// An enrollment token; without one the machine waits for approval.
    pub enroll: Option<String>,
    /// The directory the image goes to.
    pub target: PathBuf,
    /// `KEY=VALUE` facts added to (or overriding) the inventory.
    pub facts: Vec<(String, String)>,
    /// The agent's own directory: state file and cache store.
    pub state: PathBuf,
    /// Stop after one deployment reached a final state.
    pub once: bool,
    /// Empty a target that holds files from before.
    pub wipe_target: bool,
    /// Where /sys, /proc and /etc are read ("/" on a machine).
    pub sys_root: PathBuf,
    /// The slipway binary specialize copies in for first boot.
    pub slipway_binary: Option<PathBuf>,
}

/// The agent's state file, `STATE/agent.json` (mode 0600).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Saved {
    format: u32,
    server: String,
    machine_id: String,
    credential: String,
    next_seq: u64,
    /// Events not yet acknowledged by the server.
    outbox: VecDeque<AgentEvent>,
    /// The deployment the agent began writing to the target.
    #[serde(default)]
    writing: Option<String>,
}

struct Reporter {
    client: Client,
    saved: Mutex<Saved>,
    path: PathBuf,
}

impl Reporter {
    async fn save(&self, s: &Saved) -> Result<()> {
        write_private(&self.path, &serde_json::to_vec_pretty(s)?)
    }

    /// Queues an event (saved before it is sent) and sends what is queued.
    async fn event(&self, mut e: AgentEvent) -> Result<()> {
        {
            let mut s = self.saved.lock().await;
            e.seq = s.next_seq;
            s.next_seq += 1;
            e.at = Some(slipway_store::rfc3339(now_secs()));
            s.outbox.push_back(e);
            self.save(&s).await?;
        }
        self.flush().await
    }

    async fn flush(&self) -> Result<()> {
        let mut s = self.saved.lock().await;
        while !s.outbox.is_empty() {
            let batch: Vec<AgentEvent> = s.outbox.iter().take(200).cloned().collect();
            let body = EventBatch { events: batch.clone() };
            let ack: EventAck = retrying(|| self.client.post("/v1/agent/events", &body)).await?;
            for r in &ack.refused {
                eprintln!("slipway agent: the server refused event {}: {}", r.seq, r.reason);
            }
            for _ in 0..batch.len() {
                s.outbox.pop_front();
            }
            self.save(&s).await?;
        }
        Ok(())
    }

    async fn state(&self, dep: &str, state: DeployState, message: Option<String>) -> Result<()> {
        eprintln!(
            "slipway agent: {dep}: {}{}",
            state.as_str(),
            message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
        self.event(AgentEvent {
            seq: 0,
            kind: EventKind::State,
            deployment_id: Some(dep.to_string()),
            state: Some(state),
            message,
            done: None,
            total: None,
            at: None,
        })
        .await
    }

    async fn progress(&self, dep: &str, done: u64, total: u64) -> Result<()> {
        self.event(AgentEvent {
            seq: 0,
            kind: EventKind::Progress,
            deployment_id: Some(dep.to_string()),
            state: None,
            message: None,
            done: Some(done),
            total: Some(total),
            at: None,
        })
        .await
    }

    async fn log(&self, dep: Option<&str>, message: String) -> Result<()> {
        eprintln!("slipway agent: {message}");
        self.event(AgentEvent {
            seq: 0,
            kind: EventKind::Log,
            deployment_id: dep.map(str::to_string),
            state: None,
            message: Some(message),
            done: None,
            total: None,
            at: None,
        })
        .await
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Writes a private file (0600) atomically.
fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    slipway_store::write_private(path, data).with_context(|| format!("writing {}", path.display()))
}

/// The inventory as this agent reports it.
pub fn gather(opts: &AgentOptions) -> Result<Inventory> {
    let mut inv = inventory::gather(&Sources { root: opts.sys_root.clone() })?;
    std::fs::create_dir_all(&opts.target).with_context(|| format!("creating the target {}", opts.target.display()))?;
    let mut t = inventory::target(&opts.target)?;
    t.path = opts.target.display().to_string();
    inv.target = Some(t);
    for (k, v) in &opts.facts {
        inv.extra.insert(k.clone(), v.clone());
    }
    Ok(inv)
}

/// Runs the agent until it is stopped (or, with `once`, until one
/// deployment ended). Returns whether every deployment it ran succeeded.
pub async fn run(opts: AgentOptions) -> Result<bool> {
    std::fs::create_dir_all(&opts.state)
        .with_context(|| format!("creating the agent's state directory {}", opts.state.display()))?;
    let state_file = opts.state.join("agent.json");
    let anon = Client::new(&opts.conn, None)?;
    let inv = gather(&opts)?;
    let saved: Saved = match std::fs::read(&state_file) {
        Ok(b) => {
            let s: Saved = serde_json::from_slice(&b)
                .with_context(|| format!("{} is damaged; remove it to enroll again", state_file.display()))?;
            if s.server != anon.base() {
                bail!(
                    "{} belongs to server {}, not {}; give another --state directory to enroll there",
                    state_file.display(),
                    s.server,
                    anon.base()
                );
            }
            s
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let req = EnrollRequest { token: opts.enroll.clone(), inventory: inv.clone() };
            let r: EnrollResponse = retrying(|| anon.post("/v1/enroll", &req)).await?;
            eprintln!(
                "slipway agent: enrolled as {} ({})",
                r.machine_id,
                if r.status == MachineStatus::Approved { "approved" } else { "waiting for an admin's approval" }
            );
            let s = Saved {
                format: 1,
                server: anon.base().to_string(),
                machine_id: r.machine_id,
                credential: r.credential,
                next_seq: 1,
                ..Default::default()
            };
            write_private(&state_file, &serde_json::to_vec_pretty(&s)?)?;
            s
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", state_file.display())),
    };
    let client = anon.with_token(saved.credential.clone());
    let machine_id = saved.machine_id.clone();
    let rep = Arc::new(Reporter { client: client.clone(), saved: Mutex::new(saved), path: state_file });
    rep.flush().await?;
    let _: FactsVersion = retrying(|| client.post("/v1/agent/inventory", &inv)).await?;
    let mut waiting_said = false;
    let mut all_ok = true;
    loop {
        let work = retrying(|| client.get_opt::<Assignment>("/v1/agent/work?wait=25", Duration::from_secs(40))).await;
        let a = match work {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e)
                if client::status_of(&e) == Some(reqwest::StatusCode::FORBIDDEN)
                    && format!("{e:#}").contains("rejected") =>
            {
                bail!("{e:#}; this agent stops (enroll it again with a new token and a new --state directory)");
            }
            Err(e) if client::status_of(&e) == Some(reqwest::StatusCode::FORBIDDEN) => {
                if !waiting_said {
                    eprintln!("slipway agent: {e:#}");
                    waiting_said = true;
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let dep = a.deployment_id.clone();
        eprintln!("slipway agent: work: {} ({}, {})", dep, a.image, a.state.as_str());
        let result = deploy(&opts, &client, &rep, &machine_id, &a).await;
        let ok = match result {
            Ok(()) => {
                rep.state(&dep, DeployState::Succeeded, None).await?;
                true
            }
            Err(e) => {
                rep.state(&dep, DeployState::Failed, Some(format!("{e:#}"))).await?;
                false
            }
        };
        {
            let mut s = rep.saved.lock().await;
            s.writing = None;
            rep.save(&s).await?;
        }
        all_ok &= ok;
        if opts.once {
            return Ok(all_ok);
        }
        // Report what the deployment changed (free space, packages).
        if let Ok(inv) = gather(&opts) {
            let _ = retrying(|| client.post::<_, FactsVersion>("/v1/agent/inventory", &inv)).await;
        }
    }
}

/// Applies progress to an atomic the ticker reads.
struct Counter {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress for Counter {
    fn phase(&self, _name: &str, total: Option<u64>) {
        self.total.store(total.unwrap_or(0), Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

async fn deploy(
    opts: &AgentOptions,
    client: &Client,
    rep: &Arc<Reporter>,
    machine: &str,
    a: &Assignment,
) -> Result<()> {
    let dep = a.deployment_id.as_str();
    rep.state(dep, DeployState::Downloading, None).await?;
    let cache_dir = opts.state.join("cache");
    let mut cache = if cache_dir.join("config").exists() { Store::open(&cache_dir)? } else { Store::init(&cache_dir)? };
    let mut last = (0u64, 0u64);
    let mut prog: Vec<(u64, u64)> = Vec::new();
    let (img, fetched) = fetch_image(client, &mut cache, &a.record, &mut |d, t| {
        if (d, t) != last {
            prog.push((d, t));
            last = (d, t);
        }
    })
    .await
    .with_context(|| format!("fetching {}", a.image))?;
    if let Some((d, t)) = prog.last() {
        rep.progress(dep, *d, *t).await?;
    }
    rep.log(
        Some(dep),
        format!(
            "fetched {}: {} of {} blobs from the cache, {} fetched ({} packs), {} bytes received in {:.1} s",
            fetched.image,
            fetched.blobs_cached,
            fetched.blobs,
            fetched.blobs_fetched,
            fetched.packs_fetched,
            fetched.bytes_received,
            fetched.seconds
        ),
    )
    .await?;

    rep.state(dep, DeployState::Applying, None).await?;
    prepare_target(opts, rep, dep).await?;
    let counter = Arc::new(Counter { done: AtomicU64::new(0), total: AtomicU64::new(0) });
    let ticker = {
        let (rep, counter, dep) = (rep.clone(), counter.clone(), dep.to_string());
        tokio::spawn(async move {
            let mut sent = (u64::MAX, 0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = (counter.done.load(Ordering::Relaxed), counter.total.load(Ordering::Relaxed));
                if now != sent && now.1 > 0 {
                    let _ = rep.progress(&dep, now.0, now.1).await;
                    sent = now;
                }
            }
        })
    };
    let applied = tokio::task::block_in_place(|| {
        slipway_store::apply(&cache, &img, &opts.target, ApplyOptions::default(), counter.as_ref())
    });
    ticker.abort();
    let applied = applied?;
    rep.log(
        Some(dep),
        format!(
            "applied {}: {} files, {} directories, {} bytes in {:.1} s",
            applied.image, applied.files, applied.dirs, applied.bytes, applied.seconds
        ),
    )
    .await?;

    if !a.packages.is_empty() {
        let r = install_packages(opts, client, &a.packages).await?;
        rep.log(Some(dep), r).await?;
    }

    if a.has_answer {
        rep.state(dep, DeployState::Specializing, None).await?;
        let path = format!("/v1/machines/{machine}/deployments/{dep}/answer");

        let rendered: RenderedAnswer = retrying(|| client.get(&path)).await?;
        let r = specialize(opts, dep, &rendered).await?;
        rep.log(Some(dep), r).await?;
    }
    Ok(())
}

/// Fetches the deployment's update packages (each checked against its
/// BLAKE3 id) and installs them into the target as `slipway install --root`
/// does: signatures must verify against the keys the image itself trusts.
async fn install_packages(opts: &AgentOptions, client: &Client, ids: &[String]) -> Result<String> {
    use slipway_package::{keys, service, state::Mode, txn::NoProgress};
    let dir = opts.state.join("packages");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::new();
    for id in ids {
        let path = dir.join(format!("{id}.slwpkg"));
        let have = std::fs::read(&path).ok().is_some_and(|b| blake3::hash(&b).to_hex().as_str() == id);
        if !have {
            let url = format!("/v1/content/packages/{id}");
            let bytes = retrying(|| client.get_bytes(&url)).await?;
            let got = blake3::hash(&bytes).to_hex().to_string();
            if &got != id {
                bail!("package {id} arrived damaged or forged (its bytes hash to {got})");
            }
            write_private(&path, &bytes)?;
        }
        paths.push(path);
    }
    let trusted = keys::trusted_in(&keys::machine_trust_dir(&opts.target))?;
    let o = service::Options { trusted, ..Default::default() };
    let (out, _) =
        tokio::task::block_in_place(|| service::install(&opts.target, &paths, Mode::Installed, &o, &NoProgress))
            .context("installing the deployment's update packages into the target")?;
    Ok(format!("installed {} update package(s): {}", out.len(), serde_json::to_string(&out).unwrap_or_default()))
}

/// Makes sure the target may be written: empty, or holding only what this
/// agent wrote for this deployment before it was interrupted (then it is
/// emptied and written again), or `--wipe-target` was given.
async fn prepare_target(opts: &AgentOptions, rep: &Reporter, dep: &str) -> Result<()> {
    let t = &opts.target;
    std::fs::create_dir_all(t).with_context(|| format!("creating the target {}", t.display()))?;
    let entries: Vec<_> = std::fs::read_dir(t)
        .with_context(|| format!("listing the target {}", t.display()))?
        .collect::<std::io::Result<_>>()?;
    let resumed = rep.saved.lock().await.writing.as_deref() == Some(dep);
    if !entries.is_empty() {
        if !resumed && !opts.wipe_target {
            bail!(
                "the target {} is not empty ({} entries); the agent writes only to an empty target \
                 (start it with --wipe-target to replace what is there)",
                t.display(),
                entries.len()
            );
        }
        for e in entries {
            let p = e.path();
            let r = if e.file_type()?.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            r.with_context(|| format!("emptying the target: removing {}", p.display()))?;
        }
    }
    let mut s = rep.saved.lock().await;
    s.writing = Some(dep.to_string());
    rep.save(&s).await
}

/// Specializes the target with the rendered answer: secrets go to private
/// files for the length of the run.
async fn specialize(opts: &AgentOptions, dep: &str, r: &RenderedAnswer) -> Result<String> {
    use slipway_sysprep::answer::{self as sa, Facts};
    let dir = opts.state.join(format!("secrets-{dep}"));
    let _ = std::fs::remove_dir_all(&dir);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let result = (|| -> Result<String> {
        let mut answer = sa::parse(&r.toml, "the rendered answer file").map_err(|e| anyhow::anyhow!("{e}"))?;
        for (i, v) in r.secrets.iter().enumerate() {
            write_private(&dir.join(i.to_string()), v.as_bytes())?;
        }
        for (key, sref) in sa::secret_refs_mut(&mut answer) {
            if let sa::SecretRef::File(name) = sref {
                let n = name.strip_prefix("slipway-secret-").and_then(|n| n.parse::<usize>().ok());
                match n {
                    Some(n) if n < r.secrets.len() => {
                        *sref = sa::SecretRef::File(dir.join(n.to_string()).display().to_string())
                    }
                    _ => bail!("{key}: the rendered answer names a secret file the server did not send"),
                }
            }
        }
        let inv = gather(opts)?;
        let mut facts = Facts::from_document(&inv.facts());
        for (k, v) in &r.facts {
            facts.set(k, v);
        }
        let o =
            slipway_sysprep::specialize::Options { facts, slipway_binary: opts.slipway_binary.clone(), force: false };
        let rep = tokio::task::block_in_place(|| slipway_sysprep::specialize::specialize(&opts.target, &answer, &o))?;
        Ok(format!("specialized as {}", rep.hostname.as_deref().unwrap_or("(no host name)")))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
