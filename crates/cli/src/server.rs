//! serve, server token, agent, machines, collection, deploy and status: the
//! server and agent run from slipway-server and slipway-agent; the admin
//! commands are thin clients of the `/v1` API.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use slipway_agent::{Client, Connection};
use slipway_api::*;

use crate::args::{
    AgentArgs, CollectionArgs, CollectionCmd, DeployArgs, Global, MachinesArgs, MachinesCmd, RemoteArgs, ServeArgs,
    ServerCmd, StatusArgs, TokenCmd,
};
use crate::commands::{print_json, store_path};
use crate::human::bytes;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn serve(g: &Global, a: ServeArgs) -> anyhow::Result<i32> {
    let store = store_path(g)?;
    let data = a.data.clone().unwrap_or_else(|| slipway_server::default_data_dir(&store));
    let tls = match (a.plain_http, a.tls_cert, a.tls_key) {
        (true, _, _) => slipway_server::Tls::Off,
        (false, Some(cert), Some(key)) => slipway_server::Tls::Given { cert, key },
        _ => slipway_server::Tls::SelfSigned,
    };
    let opts = slipway_server::ServeOptions { listen: a.listen, store, data, db: a.db, tls, secrets: a.secrets };
    let json_out = a.json;
    runtime()?.block_on(slipway_server::serve(opts, |s| {
        if json_out {
            // One line, so a supervisor or a test can read it as it comes.
            println!("{}", json!({"schema": "slipway.serve/1", "started": s}));
        } else {
            println!("slipway serve: listening on {}", s.url);
            println!("  console:  {}/console/", s.url);
            println!("  API:      {}/v1/openapi.json", s.url);
            println!("  database: {}", s.database);
            println!("  store:    {}", s.store);
            if let (Some(c), Some(f)) = (&s.certificate, &s.fingerprint) {
                println!(
                    "  TLS:      {} ({}), SHA-256 {f}",
                    c.display(),
                    if s.certificate_made { "self-signed, made now" } else { "as given or made before" }
                );
                println!("            agents and admin commands trust it with --ca {}", c.display());
            }
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }))?;
    Ok(0)
}

pub fn server(g: &Global, c: ServerCmd) -> anyhow::Result<i32> {
    match c {
        ServerCmd::Token(TokenCmd::New(a)) => {
            let store = store_path(g)?;
            let data = a.data.clone().unwrap_or_else(|| slipway_server::default_data_dir(&store));
            let req = TokenRequest {
                kind: slipway_server::token_kind(a.enrollment),
                name: a.name,
                uses: a.uses,
                expires_in: a.expires,
            };
            let t = runtime()?.block_on(slipway_server::new_token(&data, a.db.as_deref(), &req))?;
            if a.json {
                print_json(&json!({"schema": "slipway.token/1", "token": t}));
            } else {
                println!("{}", t.token);
                eprintln!(
                    "made {} token {:?} ({}); it is shown only now",
                    if a.enrollment { "an enrollment" } else { "an admin" },
                    t.name,
                    t.id
                );
            }
            Ok(0)
        }
    }
}

pub fn agent(a: AgentArgs) -> anyhow::Result<i32> {
    let mut facts = Vec::new();
    for f in &a.facts {
        let Some((k, v)) = f.split_once('=') else {
            bail!("--fact {f:?}: expected KEY=VALUE, for example --fact rack=r12")
        };
        if k.trim().is_empty() {
            bail!("--fact {f:?}: the key is empty");
        }
        facts.push((k.trim().to_string(), v.to_string()));
    }
    let opts = slipway_agent::AgentOptions {
        conn: Connection { server: a.server, ca: a.ca },
        enroll: a.enroll,
        target: a.target,
        facts,
        state: a.state,
        once: a.once,
        wipe_target: a.wipe_target,
        sys_root: a.sys_root,
        slipway_binary: a.slipway_binary,
    };
    if a.inventory {
        let inv = slipway_agent::run::gather(&opts)?;
        print_json(&json!({"schema": "slipway.inventory/1", "inventory": inv, "facts": inv.facts()}));
        return Ok(0);
    }
    let ok = runtime()?.block_on(slipway_agent::run(opts))?;
    Ok(if ok { 0 } else { 1 })
}

fn client(r: &RemoteArgs) -> anyhow::Result<Client> {
    let server = r.server.clone().context("give the server with --server URL (or $SLIPWAY_SERVER)")?;
    let token = r.token.clone().context(
        "give an admin token with --token (or $SLIPWAY_TOKEN); make one on the server with 'slipway server token new'",
    )?;
    Client::new(&Connection { server, ca: r.ca.clone() }, Some(token))
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn state_cell(state: DeployState, reason: Option<&str>) -> String {
    match reason {
        Some(r) => format!("{} ({r})", state.as_str()),
        None => state.as_str().to_string(),
    }
}

pub fn machines(a: MachinesArgs) -> anyhow::Result<i32> {
    let r = &a.remote;
    let c = client(r)?;
    let rt = runtime()?;
    match a.cmd {
        None => {
            let list: Vec<MachineSummary> = rt.block_on(c.get("/v1/machines"))?;
            if r.json {
                print_json(&json!({"schema": "slipway.machines/1", "machines": list}));
            } else if list.is_empty() {
                println!(
                    "no machines yet; start an agent with 'slipway agent --server URL --enroll TOKEN --target DIR'"
                );
            } else {
                println!(
                    "{:<16} {:<16} {:<18} {:<8} {:>8}  {:<16} LAST DEPLOYMENT",
                    "ID", "NAME", "STATUS", "ARCH", "MEMORY", "COLLECTIONS"
                );
                for m in list {
                    println!(
                        "{:<16} {:<16} {:<18} {:<8} {:>8}  {:<16} {}",
                        m.id,
                        m.name,
                        m.status.as_str(),
                        m.arch,
                        format!("{} MiB", m.memory_mb),
                        m.collections.join(","),
                        m.last_deployment
                            .map(|d| format!("{}: {}", d.deployment, state_cell(d.state, d.reason.as_deref())))
                            .unwrap_or_default()
                    );
                }
            }
        }
        Some(MachinesCmd::Show { machine }) => {
            let m: MachineDetail = rt.block_on(c.get(&format!("/v1/machines/{}", enc(&machine))))?;
            if r.json {
                print_json(&json!({"schema": "slipway.machine/1", "machine": m}));
            } else {
                let s = &m.summary;
                println!("{} ({})  {}", s.name, s.id, s.status.as_str());
                println!("enrolled {}, last seen {}", s.enrolled_at, s.last_seen.as_deref().unwrap_or("never"));
                println!(
                    "collections: {}",
                    if s.collections.is_empty() { "none".into() } else { s.collections.join(", ") }
                );
                for d in &m.deployments {
                    println!(
                        "deployment {} ({}): {}",
                        d.deployment,
                        d.deployment_id,
                        state_cell(d.state, d.reason.as_deref())
                    );
                }
                println!("facts (version {}):", m.facts_version);
                println!("{}", serde_json::to_string_pretty(&m.facts)?);
            }
        }
        Some(MachinesCmd::Facts { machine }) => {
            let v: Vec<FactsVersion> = rt.block_on(c.get(&format!("/v1/machines/{}/facts", enc(&machine))))?;
            if r.json {
                print_json(&json!({"schema": "slipway.machine-facts/1", "versions": v}));
            } else {
                for f in v {
                    println!(
                        "version {} at {}{}",
                        f.version,
                        f.reported_at,
                        if f.changed.is_empty() {
                            String::new()
                        } else {
                            format!(": changed {}", f.changed.join(", "))
                        }
                    );
                }
            }
        }
        Some(MachinesCmd::Events { machine }) => {
            let v: Vec<Event> = rt.block_on(c.get(&format!("/v1/machines/{}/events?limit=5000", enc(&machine))))?;
            if r.json {
                print_json(&json!({"schema": "slipway.events/1", "events": v}));
            } else {
                for e in v {
                    println!("{}", event_line(&e));
                }
            }
        }
        Some(MachinesCmd::Approve { machine }) => set_status(&rt, &c, r, "approve", &machine)?,
        Some(MachinesCmd::Reject { machine }) => set_status(&rt, &c, r, "reject", &machine)?,
    }
    Ok(0)
}

fn set_status(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    r: &RemoteArgs,
    verb: &str,
    machine: &str,
) -> anyhow::Result<()> {
    let m: MachineSummary = rt.block_on(c.post(&format!("/v1/machines/{}/{verb}", enc(machine)), &json!({})))?;
    if r.json {
        print_json(&json!({"schema": "slipway.machine-status/1", "machine": m}));
    } else {
        println!("{} ({}) is now {}", m.name, m.id, m.status.as_str());
    }
    Ok(())
}

fn event_line(e: &Event) -> String {
    let mut s = format!("{}  {:<14} {:<8}", e.at, e.machine_id, e.kind.as_str());
    if let Some(st) = e.state {
        s.push_str(&format!(" {}", st.as_str()));
    }
    if let (Some(d), Some(t)) = (e.done, e.total) {
        s.push_str(&format!(" {} of {}", bytes(d), bytes(t)));
    }
    if let Some(m) = &e.message {
        s.push_str(&format!(" {m}"));
    }
    s
}

fn print_collection(c: &Collection) {
    println!(
        "{}: {} machine(s); rule: {}; explicit members: {}",
        c.name,
        c.machines.len(),
        c.rule.as_deref().unwrap_or("(none)"),
        if c.members.is_empty() { "none".into() } else { c.members.join(", ") }
    );
}

pub fn collection(cmd: CollectionCmd) -> anyhow::Result<i32> {
    let rt = runtime()?;
    match cmd {
        CollectionCmd::List(r) => {
            let list: Vec<Collection> = rt.block_on(client(&r)?.get("/v1/collections"))?;
            if r.json {
                print_json(&json!({"schema": "slipway.collections/1", "collections": list}));
            } else {
                for c in &list {
                    print_collection(c);
                }
            }
        }
        CollectionCmd::Show { name, remote } => {
            let c: Collection = rt.block_on(client(&remote)?.get(&format!("/v1/collections/{}", enc(&name))))?;
            if remote.json {
                print_json(&json!({"schema": "slipway.collection/1", "collection": c}));
            } else {
                print_collection(&c);
                for m in &c.machines {
                    println!("  {m}");
                }
            }
        }
        CollectionCmd::New(a) => write_collection(&rt, a, true)?,
        CollectionCmd::Set(a) => write_collection(&rt, a, false)?,
        CollectionCmd::Delete { name, remote } => {
            rt.block_on(client(&remote)?.delete(&format!("/v1/collections/{}", enc(&name))))?;
            if remote.json {
                print_json(&json!({"schema": "slipway.collection-deleted/1", "name": name}));
            } else {
                println!("deleted collection {name}");
            }
        }
    }
    Ok(0)
}

fn write_collection(rt: &tokio::runtime::Runtime, a: CollectionArgs, new: bool) -> anyhow::Result<()> {
    let spec = CollectionSpec { name: a.name.clone(), rule: a.rule, members: a.members };
    let c = client(&a.remote)?;
    let coll: Collection = if new {
        rt.block_on(c.post("/v1/collections", &spec))?
    } else {
        rt.block_on(c.send("PUT", &format!("/v1/collections/{}", enc(&a.name)), &spec))?
    };
    if a.remote.json {
        print_json(&json!({"schema": "slipway.collection/1", "collection": coll}));
    } else {
        print_collection(&coll);
    }
    Ok(())
}

pub fn deploy(a: DeployArgs) -> anyhow::Result<i32> {
    let answer = match &a.answer {
        Some(p) => {
            // Check it here first: the server would refuse it too, but this
            // names the file.
            slipway_sysprep::answer::load(p).map_err(|e| anyhow::anyhow!("{e}"))?;
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let mut firmware = Vec::new();
    for f in &a.firmware {
        firmware.push(match f.as_str() {
            "bios" => Firmware::Bios,
            "uefi" => Firmware::Uefi,
            other => bail!("--firmware {other:?}: give bios or uefi"),
        });
    }
    let c = client(&a.remote)?;
    let rt = runtime()?;
    let mut packages = Vec::new();
    for p in &a.packages {
        let bytes = std::fs::read(p).with_context(|| format!("reading package {}", p.display()))?;
        let info: PackageInfo =
            rt.block_on(c.put_bytes("/v1/packages", bytes)).with_context(|| format!("uploading {}", p.display()))?;
        if !a.remote.json {
            eprintln!("uploaded {} ({} {}) as {}", p.display(), info.name, info.version, info.id);
        }
        packages.push(info.id);
    }
    let spec = DeploymentSpec {
        image: a.image,
        collection: a.to,
        name: a.name,
        answer,
        packages,
        start_at: a.start,
        end_at: a.end,
        max_parallel: a.max_parallel,
        firmware,
    };
    let s: DeploymentStatus = rt.block_on(c.post("/v1/deployments", &spec))?;
    if a.wait {
        return watch(&rt, &c, &s.deployment.id, a.remote.json);
    }
    if a.remote.json {
        print_json(&json!({"schema": "slipway.deployment/1", "status": s}));
    } else {
        print_status(&s);
    }
    Ok(0)
}

fn print_status(s: &DeploymentStatus) {
    let d = &s.deployment;
    println!("{} ({}): {} to {}{}", d.name, d.id, d.image, d.collection, if d.cancelled { " [cancelled]" } else { "" });
    let counts: Vec<String> = d.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("  machines: {}", if counts.is_empty() { "none".into() } else { counts.join(", ") });
    for m in &s.machines {
        let progress = match (m.done, m.total) {
            (Some(done), Some(t)) if t > 0 && m.state.is_active() => format!(" {}%", done * 100 / t),
            _ => String::new(),
        };
        println!(
            "  {:<16} {:<16} {:<14}{progress}{}",
            m.machine_id,
            m.machine,
            state_cell(m.state, m.reason.as_deref()),
            m.hostname.as_deref().map(|h| format!("  -> {h}")).unwrap_or_default()
        );
    }
}

fn watch(rt: &tokio::runtime::Runtime, c: &Client, id: &str, json_out: bool) -> anyhow::Result<i32> {
    let mut last = String::new();
    loop {
        let s: DeploymentStatus = rt.block_on(c.get(&format!("/v1/deployments/{}", enc(id))))?;
        let done = s.machines.iter().all(|m| m.state.is_final()) || s.deployment.cancelled;
        if !json_out {
            let line: Vec<String> = s.deployment.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
            let line = line.join(", ");
            if line != last {
                eprintln!("{}: {line}", s.deployment.name);
                last = line;
            }
        }
        if done {
            let failed = s.machines.iter().any(|m| m.state != DeployState::Succeeded);
            if json_out {
                print_json(&json!({"schema": "slipway.deployment/1", "status": s}));
            } else {
                print_status(&s);
            }
            return Ok(if failed { 3 } else { 0 });
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

pub fn status(a: StatusArgs) -> anyhow::Result<i32> {
    let c = client(&a.remote)?;
    let rt = runtime()?;
    match &a.deployment {
        Some(id) if a.watch => watch(&rt, &c, id, a.remote.json),
        Some(id) => {
            let s: DeploymentStatus = rt.block_on(c.get(&format!("/v1/deployments/{}", enc(id))))?;
            if a.remote.json {
                print_json(&json!({"schema": "slipway.deployment/1", "status": s}));
            } else {
                print_status(&s);
            }
            Ok(0)
        }
        None => {
            let list: Vec<Deployment> = rt.block_on(c.get("/v1/deployments"))?;
            let ov: Overview = rt.block_on(c.get("/v1/overview"))?;
            if a.remote.json {
                print_json(&json!({"schema": "slipway.status/1", "overview": ov, "deployments": list}));
            } else {
                println!(
                    "{} machine(s) ({} awaiting approval), {} collection(s), {} deployment(s); {}",
                    ov.machines, ov.awaiting_approval, ov.collections, ov.deployments, ov.database
                );
                for d in &list {
                    let counts: Vec<String> = d.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
                    println!("{} ({}): {} to {}: {}", d.name, d.id, d.image, d.collection, counts.join(", "));
                }
            }
            Ok(0)
        }
    }
}
