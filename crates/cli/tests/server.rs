//! The deployment server end to end, on SQLite and on PostgreSQL: a real
//! server process, three real agents with directory targets and different
//! facts, a collection whose rule matches two of them, and a deployment of
//! a Debian root with an answer file. The two targets end up equal to the
//! image (bsdtar's mtree) except for what the answer changed, the third is
//! untouched, and the server is killed mid-deployment and restarted without
//! losing a state or an event. Also: unauthenticated writes are refused, a
//! machine cannot read another machine's answer, and the OpenAPI document
//! lists every route.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);

struct Server {
    child: Child,
    url: String,
    ca: PathBuf,
    listen: String,
    log: PathBuf,
}

impl Server {
    fn start(store: &Path, db: Option<&str>, listen: &str, log: &Path) -> Server {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
        c.arg("--store").arg(store).args(["serve", "--listen", listen, "--json"]);
        if let Some(db) = db {
            c.args(["--db", db]);
        }
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        // Standard output to a file, read as it grows: the server outlives
        // any reader.
        let out_path = log.with_extension(format!(
            "out.{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        let out = std::fs::File::create(&out_path).unwrap();
        let mut child = c.stdout(out).stderr(err).spawn().expect("starting slipway serve");
        let t = Instant::now();
        let mut line = String::new();
        while t.elapsed() < Duration::from_secs(60) {
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            if let Some((first, _)) = text.split_once('\n') {
                line = first.to_string();
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("slipway serve exited ({st}); log:\n{}", std::fs::read_to_string(log).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "slipway serve printed no start line ({line:?}); log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        });
        let url = v["started"]["url"].as_str().unwrap().to_string();
        let ca = PathBuf::from(v["started"]["certificate"].as_str().expect("a TLS certificate"));
        let listen = url.trim_start_matches("https://").to_string();
        Server { child, url, ca, listen, log: log.to_path_buf() }
    }

    /// SIGKILL: no chance to finish anything.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Agent {
    child: Child,
    state: PathBuf,
    target: PathBuf,
    log: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(dir: &Path, name: &str, s: &Server, token: &str, facts: &[&str], once: bool) -> Agent {
    let (state, target, log) =
        (dir.join(format!("{name}-state")), dir.join(format!("{name}-target")), dir.join(format!("{name}.log")));
    std::fs::create_dir_all(&target).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.args(["agent", "--server", &s.url, "--enroll", token])
        .arg("--ca")
        .arg(&s.ca)
        .arg("--target")
        .arg(&target)
        .arg("--state")
        .arg(&state);
    for f in facts {
        c.args(["--fact", f]);
    }
    if once {
        c.arg("--once");
    }
    let err = std::fs::File::create(&log).unwrap();
    let child = c.stdout(Stdio::null()).stderr(err).spawn().expect("starting slipway agent");
    Agent { child, state, target, log }
}

/// An admin command against the server, with --json.
fn admin(s: &Server, token: &str, args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .args(["--server", &s.url, "--token", token, "--json"])
        .arg("--ca")
        .arg(&s.ca)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "slipway {args:?} failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("slipway {args:?} printed no JSON"))
}

/// curl: the HTTP status and the body.
fn curl(s: &Server, method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method]).arg("--cacert").arg(&s.ca);
    if let Some(t) = bearer {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data", b]);
    }
    c.arg(format!("{}{path}", s.url));
    let o = c.output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let code = code.trim().parse().unwrap_or(0);
    assert!(code != 0, "curl {method} {path} failed: {}", String::from_utf8_lossy(&o.stderr));
    (code, body.to_string())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn agent_json(a: &Agent) -> Value {
    serde_json::from_slice(&std::fs::read(a.state.join("agent.json")).unwrap()).unwrap()
}

/// The paths whose mtree lines differ between two listings.
fn mtree_diff(a: &str, b: &str) -> BTreeSet<String> {
    let index = |t: &str| -> std::collections::BTreeMap<String, String> {
        t.lines()
            .filter(|l| l.starts_with("./"))
            .map(|l| (l.split(' ').next().unwrap().to_string(), l.to_string()))
            .collect()
    };
    let (ia, ib) = (index(a), index(b));
    ia.keys().chain(ib.keys()).filter(|k| ia.get(*k) != ib.get(*k)).cloned().collect()
}

/// What the answer may change: the files it names, what specialize keeps
/// for first boot, and the directories holding them (their times change).
fn allowed_change(p: &str) -> bool {
    const FILES: &[&str] = &[
        "./etc/hostname",
        "./etc/hosts",
        "./etc/passwd",
        "./etc/shadow",
        "./etc/group",
        "./etc/gshadow",
        "./etc/subuid",
        "./etc/subgid",
        "./etc/motd",
    ];
    const TREES: &[&str] = &[
        "./home/deploy",
        "./etc/slipway",
        "./var/lib/slipway",
        "./var/log/slipway",
        "./usr/local/sbin",
        "./etc/systemd/system",
    ];
    const DIRS: &[&str] =
        &[".", "./etc", "./home", "./var", "./var/lib", "./var/log", "./usr", "./usr/local", "./etc/systemd"];
    FILES.contains(&p) || DIRS.contains(&p) || TREES.iter().any(|t| p == *t || p.starts_with(&format!("{t}/")))
}

fn end_to_end(db: Option<&str>, tag: &str) {
    let ws = workspace();
    let cache = ws.join("target/cache/minbase-bookworm");
    let o = Command::new(ws.join("scripts/minbase-root.sh")).arg(&cache).output().expect("minbase-root.sh");
    assert!(o.status.success(), "building the minbase root failed:\n{}", String::from_utf8_lossy(&o.stderr));
    let t = tempfile::Builder::new().prefix(&format!("server-{tag}-")).tempdir_in(ws.join("target")).unwrap();
    let dir = t.path();
    let store = dir.join("store");
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&cache).args(["--name", "base"]));
    // The reference: the image applied by hand.
    let reference = dir.join("reference");
    ok(slipway(&store).args(["apply", "base"]).arg(&reference));

    // The first admin token exists before the server runs.
    let mut tok = Command::new(env!("CARGO_BIN_EXE_slipway"));
    tok.arg("--store").arg(&store).args(["server", "token", "new", "--name", "test", "--json"]);
    if let Some(db) = db {
        tok.args(["--db", db]);
    }
    let token: Value = serde_json::from_str(&ok(&mut tok)).unwrap();
    let token = token["token"]["token"].as_str().unwrap().to_string();
    // A secret the answer file references, on the server only.
    let secrets = dir.join("store.server/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let hash = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
    std::fs::write(secrets.join("deploy.hash"), format!("{hash}\n")).unwrap();

    let log = dir.join("server.log");
    let mut server = Server::start(&store, db, "127.0.0.1:0", &log);

    // Nothing is written without a credential, and machines cannot use the admin API.
    let (code, body) = curl(&server, "POST", "/v1/collections", None, Some(r#"{"name":"x"}"#));
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("slipway server token new"), "the error says what to do: {body}");
    assert_eq!(curl(&server, "POST", "/v1/agent/events", None, Some(r#"{"events":[]}"#)).0, 401);
    assert_eq!(curl(&server, "GET", "/v1/machines", Some("slw_admin_forged"), None).0, 401);
    // A body that is not the JSON expected: 400 with the API's error body.
    let (code, body) =
        curl(&server, "POST", "/v1/enroll", None, Some(r#"{"token":"slw_enroll_forged","inventory":{}}"#));
    assert_eq!(code, 400, "{body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["fix"].as_str().unwrap().contains("openapi.json"), "{body}");
    let (code, doc) = curl(&server, "GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    for p in [
        "/v1/enroll",
        "/v1/agent/work",
        "/v1/agent/events",
        "/v1/deployments",
        "/v1/collections",
        "/v1/content/blobs/{id}",
    ] {
        assert!(doc["paths"].get(p).is_some(), "the OpenAPI document lists {p}");
    }

    let enroll: Value = serde_json::from_str(
        &curl(&server, "POST", "/v1/tokens", Some(&token), Some(r#"{"kind":"enrollment","name":"lab","uses":3}"#)).1,
    )
    .unwrap();
    let enroll = enroll["token"].as_str().unwrap().to_string();

    // Three machines: two web servers with memory, one small.
    let a1 = start_agent(dir, "a1", &server, &enroll, &["serial=A1", "role=web", "memory_mb=8192"], true);
    let a2 = start_agent(dir, "a2", &server, &enroll, &["serial=B2", "role=web", "memory_mb=16384"], true);
    let a3 = start_agent(dir, "a3", &server, &enroll, &["serial=C3", "role=web", "memory_mb=1024"], false);
    wait_for("three machines", LIMIT, || {
        admin(&server, &token, &["machines"])["machines"].as_array().unwrap().len() == 3
    });
    // The token allowed three uses.
    assert_eq!(curl(&server, "POST", "/v1/enroll", None, Some(&format!(r#"{{"token":"{enroll}","inventory":{{"arch":"x86_64","hostname":"x","cpu":{{"model":"m","cores":1,"threads":1}},"memory_mb":1}}}}"#))).0, 401);

    let coll = admin(
        &server,
        &token,
        &[
            "collection",
            "new",
            "web",
            "--rule",
            r#"arch == "x86_64" and memory_mb >= 4096 and role == "web" and any(nic.mac, "*:*")"#,
        ],
    );
    assert_eq!(coll["collection"]["machines"].as_array().unwrap().len(), 2, "{coll}");

    let answer = dir.join("answer.toml");
    std::fs::write(
        &answer,
        r#"version = 1
[computer]
name = "web-{serial}"
domain = "example.test"

[[users]]
name = "deploy"
password_hash = { file = "deploy.hash" }

[[files]]
path = "/etc/motd"
content = "Managed by slipway\n"
mode = "0644"
"#,
    )
    .unwrap();
    let dep = admin(
        &server,
        &token,
        &[
            "deploy",
            "base",
            "--to",
            "web",
            "--answer",
            answer.to_str().unwrap(),
            "--max-parallel",
            "1",
            "--name",
            "web-rollout",
        ],
    );
    let dep_id = dep["status"]["deployment"]["id"].as_str().unwrap().to_string();
    assert_eq!(dep["status"]["deployment"]["requirements"]["arch"], "x86_64", "{dep}");
    let hostnames: BTreeSet<&str> =
        dep["status"]["machines"].as_array().unwrap().iter().map(|m| m["hostname"].as_str().unwrap()).collect();
    assert_eq!(hostnames, BTreeSet::from(["web-a1", "web-b2"]), "{dep}");

    // Kill the server while the first machine works and the second waits
    // for its slot; start it again on the same port and database.
    let status = |s: &Server| admin(s, &token, &["status", &dep_id]);
    wait_for("a machine at work", LIMIT, || {
        status(&server)["status"]["machines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| matches!(m["state"].as_str(), Some("downloading" | "applying" | "specializing" | "succeeded")))
    });
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    let listen = server.listen.clone();
    drop(server);
    let server = Server::start(&store, db, &listen, &log);
    let logs = || {
        let mut out = String::new();
        for p in [&log, &a1.log, &a2.log] {
            out.push_str(&format!("--- {}\n{}\n", p.display(), std::fs::read_to_string(p).unwrap_or_default()));
        }
        out
    };
    let started = Instant::now();
    wait_for("both machines to succeed", LIMIT, || {
        if started.elapsed() > LIMIT - Duration::from_secs(5) {
            panic!("the machines did not finish: {}\n{}", status(&server), logs());
        }
        let s = status(&server);
        let states: Vec<String> = s["status"]["machines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["state"].as_str().unwrap().to_string())
            .collect();
        assert!(!states.iter().any(|s| s == "failed"), "a machine failed: {s}");
        states == ["succeeded", "succeeded"]
    });
    for a in [&a1, &a2] {
        let mut child_done = false;
        wait_for("the agent to exit", Duration::from_secs(60), || {
            child_done = std::process::Command::new("kill")
                .arg("-0")
                .arg(a.child.id().to_string())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
                || std::fs::read_to_string(&a.log).unwrap_or_default().contains("succeeded");
            child_done
        });
    }

    // The targets: the image plus what the answer changed, nothing else.
    let want = mtree(&reference);
    for (a, host) in [(&a1, "web-a1"), (&a2, "web-b2")] {
        let got = mtree(&a.target);
        let changed = mtree_diff(&want, &got);
        let unexpected: Vec<&String> = changed.iter().filter(|p| !allowed_change(p)).collect();
        assert!(
            unexpected.is_empty(),
            "{host}: changed beyond the answer's reach: {unexpected:?}\nlog:\n{}",
            std::fs::read_to_string(&a.log).unwrap()
        );
        assert!(
            changed.contains("./etc/hostname") && changed.contains("./etc/motd") && changed.contains("./etc/shadow"),
            "{changed:?}"
        );
        assert_eq!(std::fs::read_to_string(a.target.join("etc/hostname")).unwrap().trim(), host);
        assert_eq!(std::fs::read_to_string(a.target.join("etc/motd")).unwrap(), "Managed by slipway\n");
        let shadow = std::fs::read_to_string(a.target.join("etc/shadow")).unwrap();
        assert!(
            shadow.lines().any(|l| l.starts_with(&format!("deploy:{hash}:"))),
            "the secret hash reached the machine"
        );
        // The secret went no further than the target.
        assert!(!std::fs::read_to_string(&a.log).unwrap().contains(hash));
        assert!(!std::fs::read_dir(&a.state).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("secrets-")));
    }
    assert!(!std::fs::read_to_string(&log).unwrap().contains(hash), "the server never logs a secret");
    // The third machine was never touched.
    assert_eq!(std::fs::read_dir(&a3.target).unwrap().count(), 0);
    let machines = admin(&server, &token, &["machines"]);
    let m3 = machines["machines"].as_array().unwrap().iter().find(|m| m["memory_mb"] == 1024).unwrap().clone();
    assert!(m3["collections"].as_array().unwrap().is_empty() && m3.get("last_deployment").is_none(), "{m3}");

    // No event lost across the restart: each agent's numbering matches
    // what the server stored, in order, once.
    for a in [&a1, &a2] {
        let st = agent_json(a);
        let id = st["machine_id"].as_str().unwrap();
        assert!(st["outbox"].as_array().unwrap().is_empty(), "every event was acknowledged");
        let ev = admin(&server, &token, &["machines", "events", id]);
        let seqs: Vec<u64> = ev["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let sent = st["next_seq"].as_u64().unwrap() - 1;
        assert_eq!(seqs, (1..=sent).collect::<Vec<_>>(), "machine {id}");
        let states: Vec<&str> = ev["events"].as_array().unwrap().iter().filter_map(|e| e["state"].as_str()).collect();
        let mut order = states.clone();
        order.dedup();
        assert_eq!(order, ["downloading", "applying", "specializing", "succeeded"], "machine {id}: {states:?}");
    }

    // A machine reads only its own answer, and only while it works on it.
    let c1 = agent_json(&a1)["credential"].as_str().unwrap().to_string();
    let id1 = agent_json(&a1)["machine_id"].as_str().unwrap().to_string();
    let id2 = agent_json(&a2)["machine_id"].as_str().unwrap().to_string();
    let (code, body) =
        curl(&server, "GET", &format!("/v1/machines/{id2}/deployments/{dep_id}/answer"), Some(&c1), None);
    assert_eq!(code, 403, "{body}");
    let (code, body) =
        curl(&server, "GET", &format!("/v1/machines/{id1}/deployments/{dep_id}/answer"), Some(&c1), None);
    assert_eq!(code, 403, "a finished machine gets no answer (and no secret): {body}");
    assert!(!body.contains(hash));
    // A machine cannot write through the admin API.
    let (code, _) = curl(&server, "POST", "/v1/collections", Some(&c1), Some(r#"{"name":"mine"}"#));
    assert_eq!(code, 403);
    // Content is served by id, immutable and cacheable.
    let rec = status(&server)["status"]["deployment"]["record"].as_str().unwrap().to_string();
    let o = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "-H", &format!("Authorization: Bearer {c1}")])
        .arg("--cacert")
        .arg(&server.ca)
        .arg(format!("{}/v1/content/records/{rec}", server.url))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(headers.contains("cache-control: public, max-age=31536000, immutable"), "{headers}");

    // The web console shows each machine's state, in headless Chromium.
    if require("chromium") {
        let out = dir.join("console");
        let routes = [format!("/deployments/{dep_id}"), format!("/machines/{id1}")];
        let o = Command::new(ws.join("scripts/console-check.sh"))
            .arg(&server.url)
            .arg(&token)
            .arg(&out)
            .args(&routes)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "console-check failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let page = std::fs::read_to_string(out.join(format!("deployments_{dep_id}.html"))).unwrap();
        assert!(page.contains(r#"data-view="deployment""#) && page.contains(r#"data-ready="1""#), "{page}");
        for id in [&id1, &id2] {
            assert!(
                page.contains(&format!(r#"data-machine="{id}" data-state="succeeded""#)),
                "the console shows {id} succeeded:\n{page}"
            );
        }
        assert!(page.contains("web-a1") && page.contains("web-b2"), "the console shows the host names");
        let machines = std::fs::read_to_string(out.join("machines.html")).unwrap();
        assert_eq!(machines.matches("data-machine=").count(), 3, "{machines}");
        let m1 = std::fs::read_to_string(out.join(format!("machines_{id1}.html"))).unwrap();
        assert!(
            m1.contains(r#"data-fact="role""#) && m1.contains("data-event="),
            "the machine page shows facts and its log:\n{m1}"
        );
    }

    let ov: Value = serde_json::from_str(&curl(&server, "GET", "/v1/overview", Some(&token), None).1).unwrap();
    assert_eq!(ov["machines"], 3);
    assert_eq!(ov["states"]["succeeded"], 2);
    drop(a3);
}

fn prerequisites() -> bool {
    if !is_root() {
        eprintln!("SKIPPED: needs root (debootstrap, owners)");
        return false;
    }
    require("debootstrap") && require("bsdtar") && require("curl")
}

#[test]
fn deployment_end_to_end_on_sqlite() {
    if prerequisites() {
        end_to_end(None, "sqlite");
    }
}

#[test]
fn deployment_end_to_end_on_postgres() {
    if !prerequisites() {
        return;
    }
    if !std::path::Path::new("/usr/lib/postgresql").exists() {
        if std::env::var_os("CI").is_some() {
            panic!("PostgreSQL is required in CI; scripts/install-deps.sh installs it");
        }
        eprintln!("SKIPPED: PostgreSQL not installed (run scripts/install-deps.sh)");
        return;
    }
    let ws = workspace();
    let pg = tempfile::Builder::new().prefix("pg-").tempdir_in(ws.join("target")).unwrap();
    let url = ok(Command::new(ws.join("scripts/postgres-test.sh")).arg("start").arg(pg.path())).trim().to_string();
    struct Stop(PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(workspace().join("scripts/postgres-test.sh")).arg("stop").arg(&self.0).status();
        }
    }
    let _stop = Stop(pg.path().to_path_buf());
    end_to_end(Some(&url), "postgres");
}

/// A deployment with an update package: uploaded by `deploy --package`
/// (the store must trust its signer), fetched by the agent by id and
/// installed into the target after the image, where the image's own trust
/// decides; a package the image does not trust fails the machine with the
/// reason.
#[test]
fn deployment_installs_update_packages() {
    if !prerequisites() {
        return;
    }
    let ws = workspace();
    let t = tempfile::Builder::new().prefix("server-pkg-").tempdir_in(ws.join("target")).unwrap();
    let dir = t.path();
    let sw = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
        c.args(args);
        c
    };
    // A small root whose programs tell its architecture, and a newer app.conf.
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::copy("/usr/bin/env", root.join("usr/bin/env")).unwrap();
    std::fs::write(root.join("etc/app/app.conf"), "level=1\n").unwrap();
    let newer = dir.join("newer");
    ok(Command::new("cp").arg("-a").arg(&root).arg(&newer));
    std::fs::write(newer.join("etc/app/app.conf"), "level=2\n").unwrap();
    ok(&mut sw(&["key", "new", dir.join("k").to_str().unwrap()]));
    let (key, public) = (dir.join("k.key"), dir.join("k.pub"));
    let pkg = dir.join("fix.slwpkg");
    ok(sw(&["package", "build", "--diff"])
        .arg(&root)
        .arg(&newer)
        .args(["--id", "APP-FIX-1", "--sign"])
        .arg(&key)
        .arg("-o")
        .arg(&pkg));
    // The image trusts the key; a second image does not.
    let store = dir.join("store");
    ok(slipway(&store).args(["store", "init"]));
    ok(slipway(&store).arg("capture").arg(&root).args(["--name", "untrusting"]));
    ok(sw(&["key", "trust"]).arg(&public).arg("--root").arg(&root));
    ok(slipway(&store).arg("capture").arg(&root).args(["--name", "app"]));
    let mut tok = Command::new(env!("CARGO_BIN_EXE_slipway"));
    tok.arg("--store").arg(&store).args(["server", "token", "new", "--json"]);
    let token: Value = serde_json::from_str(&ok(&mut tok)).unwrap();
    let token = token["token"]["token"].as_str().unwrap().to_string();
    let server = Server::start(&store, None, "127.0.0.1:0", &dir.join("server.log"));

    // The store does not trust the signer yet: the upload is refused.
    let o = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["deploy", "app", "--to", "none", "--server", &server.url, "--token", &token])
        .arg("--ca")
        .arg(&server.ca)
        .arg("--package")
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refused") && err.contains("key trust"), "{err}");
    ok(slipway(&store).args(["key", "trust"]).arg(&public));

    let enroll: Value = serde_json::from_str(
        &curl(&server, "POST", "/v1/tokens", Some(&token), Some(r#"{"kind":"enrollment","name":"p"}"#)).1,
    )
    .unwrap();
    let enroll = enroll["token"].as_str().unwrap().to_string();
    let a = start_agent(dir, "p1", &server, &enroll, &["serial=P1"], true);
    let b = start_agent(dir, "p2", &server, &enroll, &["serial=P2"], true);
    wait_for("two machines", LIMIT, || {
        admin(&server, &token, &["machines"])["machines"].as_array().unwrap().len() == 2
    });
    let id_of = |ag: &Agent| -> String {
        let mut id = String::new();
        wait_for("the agent's state file", LIMIT, || {
            id = std::fs::read(ag.state.join("agent.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["machine_id"].as_str().map(str::to_string))
                .unwrap_or_default();
            !id.is_empty()
        });
        id
    };
    let (ida, idb) = (id_of(&a), id_of(&b));
    admin(&server, &token, &["collection", "new", "pa", "--member", &ida]);
    admin(&server, &token, &["collection", "new", "pb", "--member", &idb]);
    let d1 = admin(&server, &token, &["deploy", "app", "--to", "pa", "--package", pkg.to_str().unwrap(), "--wait"]);
    assert_eq!(d1["status"]["machines"][0]["state"], "succeeded", "{d1}");
    assert_eq!(std::fs::read_to_string(a.target.join("etc/app/app.conf")).unwrap(), "level=2\n");
    let installed = ok(Command::new(env!("CARGO_BIN_EXE_slipway")).args(["packages", "--root"]).arg(&a.target));
    assert!(installed.contains("APP-FIX-1"), "{installed}");
    // The other image does not trust the signer: the machine fails, saying why.
    let o = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["deploy", "untrusting", "--to", "pb", "--wait", "--json", "--server", &server.url, "--token", &token])
        .arg("--ca")
        .arg(&server.ca)
        .arg("--package")
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "deploy --wait exits 3 when a machine did not succeed");
    let d2: Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &d2["status"]["machines"][0];
    assert_eq!(m["state"], "failed", "{d2}");
    assert!(m["reason"].as_str().unwrap().contains("update packages"), "{m}");
}
