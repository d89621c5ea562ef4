//! First boot: what `slipway specialize` leaves for the machine itself.
//!
//! Specialize writes a plan (`/etc/slipway/firstboot.json`, mode 0600),
//! secrets it resolved (`/var/lib/slipway/firstboot/secrets/`, mode 0600)
//! and `slipway-firstboot.service`, which runs `slipway firstboot` once:
//! SSH host keys when none are there, passwords held as systemd
//! credentials, the domain join, then the commands in order. Every step is
//! logged to `/var/log/slipway/firstboot.log` and the console; secrets
//! never are. When the run ends, `/var/lib/slipway/firstboot/done` records
//! its status, the stored secrets are deleted, and the unit's condition
//! keeps it from starting again. A run cut short (power lost) has no `done`
//! and starts again at the next boot, skipping the steps it finished.
//!
//! Exit status: 0 everything succeeded, 1 a step failed and the run went on
//! (`on_failure = "continue"`), 2 a step failed and stopped the run
//! (`halt`, or `retry` out of attempts), 3 the run could not start (no
//! readable plan, no writable log).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::answer::{OnFailure, When};
use crate::rootdir::{Perm, RootDir};

pub const PLAN_PATH: &str = "etc/slipway/firstboot.json";
pub const STATE_DIR: &str = "var/lib/slipway/firstboot";
pub const SECRETS_DIR: &str = "var/lib/slipway/firstboot/secrets";
pub const STATE_PATH: &str = "var/lib/slipway/firstboot/state.json";
pub const DONE_PATH: &str = "var/lib/slipway/firstboot/done";
pub const LOG_PATH: &str = "var/log/slipway/firstboot.log";
pub const PLAN_FORMAT: u32 = 1;

/// Where a secret comes from on the machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// Resolved by specialize and stored under [`SECRETS_DIR`] by this key.
    Stored(String),
    /// A systemd credential, from `$CREDENTIALS_DIRECTORY`.
    Credential(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordStep {
    pub user: String,
    pub secret: SecretSource,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainStep {
    pub realm: String,
    pub user: Option<String>,
    pub ou: Option<String>,
    pub password: Option<SecretSource>,
    pub timeout: u32,
    pub on_failure: OnFailure,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandStep {
    /// Its index in the answer file's `commands`.
    pub index: usize,
    pub name: String,
    pub run: Vec<String>,
    pub shell: Option<String>,
    pub when: When,
    pub timeout: u32,
    pub on_failure: OnFailure,
    pub retries: u32,
    pub env: BTreeMap<String, SecretSource>,
}

/// The first-boot plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub format: u32,
    /// The host name specialize set (for the log).
    pub hostname: Option<String>,
    /// Make SSH host keys when the machine has none.
    pub ssh_host_keys: bool,
    pub passwords: Vec<PasswordStep>,
    pub domain: Option<DomainStep>,
    pub commands: Vec<CommandStep>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            format: PLAN_FORMAT,
            hostname: None,
            ssh_host_keys: false,
            passwords: Vec::new(),
            domain: None,
            commands: Vec::new(),
        }
    }
}

impl Plan {
    /// The names of the steps, in the order they run: the first-boot steps,
    /// then the every-boot commands (which slipway-everyboot.service runs
    /// at every boot, the first included, after the first-boot steps).
    pub fn step_names(&self) -> Vec<String> {
        let mut v = self.once_step_names();
        v.extend(
            self.commands
                .iter()
                .filter(|c| c.when == When::EveryBoot)
                .map(|c| format!("command:{} (every boot)", c.name)),
        );
        v
    }

    /// The steps `slipway firstboot` runs once.
    fn once_step_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.ssh_host_keys {
            v.push("ssh-host-keys".to_string());
        }
        for p in &self.passwords {
            v.push(format!("password:{}", p.user));
        }
        if self.domain.is_some() {
            v.push("domain-join".to_string());
        }
        for c in self.commands.iter().filter(|c| c.when == When::Once) {
            v.push(format!("command:{}", c.name));
        }
        v
    }

    fn credentials(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut add = |s: &SecretSource| {
            if let SecretSource::Credential(c) = s {
                if !v.contains(c) {
                    v.push(c.clone());
                }
            }
        };
        self.passwords.iter().for_each(|p| add(&p.secret));
        if let Some(d) = &self.domain {
            d.password.iter().for_each(&mut add);
        }
        self.commands.iter().flat_map(|c| c.env.values()).for_each(add);
        v
    }

    fn needs_network(&self) -> bool {
        self.domain.is_some() || !self.commands.is_empty()
    }
}

/// Unit files and enabling symlinks to write (paths relative to the root).
pub struct Units {
    pub files: Vec<(String, String)>,
    pub links: Vec<(String, String)>,
    pub remove: Vec<String>,
}

pub const UNIT: &str = "slipway-firstboot.service";
pub const EVERYBOOT_UNIT: &str = "slipway-everyboot.service";

/// The systemd units for a plan.
pub fn units(plan: &Plan) -> Units {
    let net = if plan.needs_network() { "Wants=network-online.target\nAfter=network-online.target\n" } else { "" };
    let creds: String = plan.credentials().iter().map(|c| format!("LoadCredential={c}\n")).collect();
    let unit = |what: &str, description: &str, order: &str, args: &str| {
        format!(
            "# Written by slipway specialize. Runs the answer file's {what}.\n\
             [Unit]\n\
             Description={description}\n\
             ConditionPathExists=/{PLAN_PATH}\n\
             {order}\
             {net}\
             \n\
             [Service]\n\
             Type=oneshot\n\
             RemainAfterExit=yes\n\
             ExecStart=/usr/local/sbin/slipway firstboot{args}\n\
             StandardOutput=journal+console\n\
             StandardError=journal+console\n\
             TimeoutStartSec=infinity\n\
             {creds}\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n"
        )
    };
    let firstboot = unit(
        "first-boot steps once",
        "slipway first-boot setup from the answer file",
        &format!(
            "ConditionPathExists=!/{DONE_PATH}\n\
             After=local-fs.target systemd-remount-fs.service systemd-tmpfiles-setup.service\n\
             Before=ssh.service sshd.service systemd-user-sessions.service\n"
        ),
        "",
    );
    let wants = "etc/systemd/system/multi-user.target.wants";
    let mut u = Units {
        files: vec![(format!("etc/systemd/system/{UNIT}"), firstboot)],
        links: vec![(format!("{wants}/{UNIT}"), format!("/etc/systemd/system/{UNIT}"))],
        remove: Vec::new(),
    };
    if plan.commands.iter().any(|c| c.when == When::EveryBoot) {
        let every = unit(
            "every-boot commands",
            "slipway every-boot commands from the answer file",
            &format!("After=local-fs.target {UNIT}\n"),
            " --every-boot",
        );
        u.files.push((format!("etc/systemd/system/{EVERYBOOT_UNIT}"), every));
        u.links.push((format!("{wants}/{EVERYBOOT_UNIT}"), format!("/etc/systemd/system/{EVERYBOOT_UNIT}")));
    } else {
        u.remove.push(format!("etc/systemd/system/{EVERYBOOT_UNIT}"));
        u.remove.push(format!("{wants}/{EVERYBOOT_UNIT}"));
    }
    u
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The machine's root: `/` on the machine; tests use a directory.
    pub root: PathBuf,
    /// Run the every-boot commands instead of the first-boot steps.
    pub every_boot: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Ok,
    Failed,
    /// Done by an earlier, interrupted run.
    AlreadyDone,
    /// Not run: an earlier step halted the run.
    NotRun,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub status: StepStatus,
    pub detail: String,
    pub seconds: f64,
}

/// The outcome of a run; also what `done` records.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// Which run this was (1 for the first; more after interruptions).
    pub run: u32,
    /// `ok`, `failed`, `halted` or `already-done`.
    pub status: String,
    pub started: String,
    pub finished: String,
    pub steps: Vec<StepResult>,
}

impl RunReport {
    /// The process exit status for this outcome.
    pub fn exit_code(&self) -> i32 {
        match self.status.as_str() {
            "ok" | "already-done" => 0,
            "failed" => 1,
            _ => 2,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    runs: u32,
    completed: Vec<String>,
}

struct Log {
    file: Option<std::fs::File>,
    secrets: Vec<String>,
}

impl Log {
    fn line(&mut self, msg: &str) {
        let mut msg = msg.to_string();
        for s in &self.secrets {
            if s.len() >= 4 {
                msg = msg.replace(s.as_str(), "<redacted>");
            }
        }
        let line = format!("{} slipway-firstboot: {msg}", now());
        eprintln!("slipway-firstboot: {msg}");
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{line}");
            let _ = f.sync_data();
        }
    }
}

/// Runs the plan found in `opts.root`.
pub fn run(opts: &RunOptions) -> Result<RunReport> {
    let root = RootDir::open(&opts.root)?;
    let plan_text = root.read(PLAN_PATH)?.with_context(|| {
        format!("no first-boot plan at {} (was this root specialized?)", root.display(PLAN_PATH).display())
    })?;
    let plan: Plan = serde_json::from_slice(&plan_text)
        .with_context(|| format!("reading the first-boot plan {}", root.display(PLAN_PATH).display()))?;
    if plan.format != PLAN_FORMAT {
        bail!("the first-boot plan has format {}; this slipway runs format {PLAN_FORMAT}", plan.format);
    }
    root.mkdir_all("var/log/slipway", Perm::root(0o755))?;
    let file = root.open_append(LOG_PATH, Perm::root(0o640))?;
    let mut log = Log { file: Some(file), secrets: Vec::new() };
    let started = now();
    if opts.every_boot {
        return run_every_boot(&root, &plan, &mut log, started);
    }
    if let Some(done) = root.read(DONE_PATH)? {
        let prev: Option<RunReport> = serde_json::from_slice(&done).ok();
        log.line(&format!(
            "first boot was already done ({}); nothing to do",
            prev.map(|r| format!("run {} finished {} with status {}", r.run, r.finished, r.status)).unwrap_or_default()
        ));
        return Ok(RunReport {
            run: 0,
            status: "already-done".into(),
            started: started.clone(),
            finished: started,
            steps: vec![],
        });
    }
    let mut state: State = root.read(STATE_PATH)?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    state.runs += 1;
    save_state(&root, &state)?;
    log.line(&format!(
        "run {} started (host name {}; steps: {})",
        state.runs,
        plan.hostname.as_deref().unwrap_or("unchanged"),
        plan.once_step_names().join(", ")
    ));
    let mut steps = Vec::new();
    let mut halted = false;
    let mut failed = false;
    let names = plan.once_step_names();
    let mut i = 0;
    let mut next = |steps: &mut Vec<StepResult>,
                    state: &mut State,
                    log: &mut Log,
                    halted: &mut bool,
                    failed: &mut bool,
                    on_failure: OnFailure,
                    f: &mut dyn FnMut(&mut Log) -> Result<String>| {
        let name = names[i].clone();
        i += 1;
        if *halted {
            steps.push(StepResult { name, status: StepStatus::NotRun, detail: String::new(), seconds: 0.0 });
            return;
        }
        if state.completed.contains(&name) {
            log.line(&format!("step {name}: done by an earlier run"));
            steps.push(StepResult { name, status: StepStatus::AlreadyDone, detail: String::new(), seconds: 0.0 });
            return;
        }
        let t = Instant::now();
        match f(log) {
            Ok(detail) => {
                log.line(&format!("step {name}: ok ({detail})"));
                state.completed.push(name.clone());
                let _ = save_state(&root, state);
                steps.push(StepResult { name, status: StepStatus::Ok, detail, seconds: t.elapsed().as_secs_f64() });
            }
            Err(e) => {
                let detail = format!("{e:#}");
                *failed = true;
                if on_failure != OnFailure::Continue {
                    *halted = true;
                }
                log.line(&format!(
                    "step {name}: FAILED: {detail}{}",
                    if *halted { " (the run stops here)" } else { " (going on)" }
                ));
                steps.push(StepResult { name, status: StepStatus::Failed, detail, seconds: t.elapsed().as_secs_f64() });
            }
        }
    };

    if plan.ssh_host_keys {
        next(&mut steps, &mut state, &mut log, &mut halted, &mut failed, OnFailure::Continue, &mut |_| {
            ssh_host_keys(&root)
        });
    }
    for p in &plan.passwords {
        next(&mut steps, &mut state, &mut log, &mut halted, &mut failed, OnFailure::Continue, &mut |log| {
            let hash = read_secret(&root, &p.secret, log)?;
            crate::answer::check_crypt_hash(&hash).map_err(|e| anyhow::anyhow!("the password for {}: {e}", p.user))?;
            crate::specialize::accounts::set_password_hash(&root, &p.user, &hash)?;
            Ok(format!("password hash of {} set from {}", p.user, describe(&p.secret)))
        });
    }
    if let Some(d) = &plan.domain {
        next(&mut steps, &mut state, &mut log, &mut halted, &mut failed, d.on_failure, &mut |log| {
            let mut argv = vec!["realm".to_string(), "join".to_string(), "--unattended".to_string()];
            if let Some(u) = &d.user {
                argv.push(format!("--user={u}"));
            }
            if let Some(ou) = &d.ou {
                argv.push(format!("--computer-ou={ou}"));
            }
            argv.push(d.realm.clone());
            let stdin = match &d.password {
                Some(s) => Some(read_secret(&root, s, log)?),
                None => None,
            };
            let attempts = if d.on_failure == OnFailure::Retry { 3 } else { 1 };
            run_with_retries(&opts.root, &argv, &BTreeMap::new(), stdin, d.timeout, attempts, log, "domain-join")
        });
    }
    for c in plan.commands.iter().filter(|c| c.when == When::Once) {
        next(&mut steps, &mut state, &mut log, &mut halted, &mut failed, c.on_failure, &mut |log| {
            command(&root, &opts.root, c, log)
        });
    }
    let status = if halted {
        "halted"
    } else if failed {
        "failed"
    } else {
        "ok"
    };
    let report = RunReport { run: state.runs, status: status.into(), started, finished: now(), steps };
    // Secrets are used up: they go before the run is marked done, except
    // those the every-boot commands still need.
    let keep: Vec<&str> = plan
        .commands
        .iter()
        .filter(|c| c.when == When::EveryBoot)
        .flat_map(|c| c.env.values())
        .filter_map(|s| match s {
            SecretSource::Stored(k) => Some(k.as_str()),
            SecretSource::Credential(_) => None,
        })
        .collect();
    for name in root.list_utf8(SECRETS_DIR)? {
        if !keep.contains(&name.as_str()) {
            root.remove(&format!("{SECRETS_DIR}/{name}"))?;
        }
    }
    if keep.is_empty() {
        root.remove(SECRETS_DIR)?;
    }
    root.write(DONE_PATH, &serde_json::to_vec_pretty(&report)?, Perm::root(0o644))?;
    let failed_names: Vec<&str> =
        report.steps.iter().filter(|s| s.status == StepStatus::Failed).map(|s| s.name.as_str()).collect();
    log.line(&format!(
        "run {} finished: {status}{} (log {})",
        report.run,
        if failed_names.is_empty() { String::new() } else { format!("; failed: {}", failed_names.join(", ")) },
        Path::new("/").join(LOG_PATH).display()
    ));
    Ok(report)
}

fn run_every_boot(root: &RootDir, plan: &Plan, log: &mut Log, started: String) -> Result<RunReport> {
    if root.read(DONE_PATH)?.is_none() {
        log.line("every-boot commands wait for the first boot's run to finish; nothing to do");
        return Ok(RunReport {
            run: 0,
            status: "ok".into(),
            started: started.clone(),
            finished: started,
            steps: vec![],
        });
    }
    log.line("every-boot commands started");
    let mut steps = Vec::new();
    let mut status = "ok";
    for c in plan.commands.iter().filter(|c| c.when == When::EveryBoot) {
        let t = Instant::now();
        let name = format!("command:{} (every boot)", c.name);
        match command(root, root.path(), c, log) {
            Ok(d) => {
                log.line(&format!("step {name}: ok ({d})"));
                steps.push(StepResult { name, status: StepStatus::Ok, detail: d, seconds: t.elapsed().as_secs_f64() });
            }
            Err(e) => {
                let halt = c.on_failure != OnFailure::Continue;
                log.line(&format!("step {name}: FAILED: {e:#}"));
                steps.push(StepResult {
                    name,
                    status: StepStatus::Failed,
                    detail: format!("{e:#}"),
                    seconds: t.elapsed().as_secs_f64(),
                });
                status = if halt { "halted" } else { "failed" };
                if halt {
                    break;
                }
            }
        }
    }
    Ok(RunReport { run: 0, status: status.into(), started, finished: now(), steps })
}

fn save_state(root: &RootDir, s: &State) -> Result<()> {
    root.write(STATE_PATH, &serde_json::to_vec(s)?, Perm::root(0o600))
}

fn describe(s: &SecretSource) -> String {
    match s {
        SecretSource::Stored(_) => "the secret stored by specialize".into(),
        SecretSource::Credential(c) => format!("systemd credential {c}"),
    }
}

fn read_secret(root: &RootDir, s: &SecretSource, log: &mut Log) -> Result<String> {
    let v = match s {
        SecretSource::Stored(k) => root
            .read_string(&format!("{SECRETS_DIR}/{k}"))?
            .with_context(|| format!("the stored secret {k} is gone (was first boot already run?)"))?,
        SecretSource::Credential(c) => crate::answer::SecretRef::Credential(c.clone()).resolve()?.expose().to_string(),
    };
    log.secrets.push(v.clone());
    Ok(v)
}

fn ssh_host_keys(root: &RootDir) -> Result<String> {
    let have: Vec<String> =
        root.list_utf8("etc/ssh")?.into_iter().filter(|n| n.starts_with("ssh_host_") && n.ends_with("_key")).collect();
    if !have.is_empty() {
        return Ok(format!("host keys present ({}); kept", have.join(", ")));
    }
    Ok(format!("new host keys: {}", make_host_keys(root)?.join(", ")))
}

/// Makes the missing SSH host keys of the root with `ssh-keygen -A` (with
/// `-f ROOT` when the root is not `/`); returns their fingerprints as
/// `ED25519 SHA256:…`.
pub(crate) fn make_host_keys(root: &RootDir) -> Result<Vec<String>> {
    let mut c = std::process::Command::new("ssh-keygen");
    c.arg("-A");
    if root.path() != Path::new("/") {
        c.arg("-f").arg(root.path());
    }
    let out = c.output().context("running ssh-keygen -A")?;
    if !out.status.success() {
        bail!("ssh-keygen -A failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let mut prints = Vec::new();
    for n in root.list_utf8("etc/ssh")? {
        if n.starts_with("ssh_host_") && n.ends_with("_key.pub") {
            let o = std::process::Command::new("ssh-keygen")
                .arg("-lf")
                .arg(root.display(&format!("etc/ssh/{n}")))
                .output()?;
            let l = String::from_utf8_lossy(&o.stdout);
            // "256 SHA256:abc root@host (ED25519)" → "ED25519 SHA256:abc"
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() >= 2 {
                prints.push(format!("{} {}", f.last().unwrap_or(&"").trim_matches(['(', ')']), f[1]));
            }
        }
    }
    Ok(prints)
}

fn command(root: &RootDir, root_path: &Path, c: &CommandStep, log: &mut Log) -> Result<String> {
    let mut env = BTreeMap::new();
    for (k, s) in &c.env {
        env.insert(k.clone(), read_secret(root, s, log)?);
    }
    let argv = if let Some(sh) = &c.shell { vec!["/bin/sh".into(), "-c".into(), sh.clone()] } else { c.run.clone() };
    let attempts = if c.on_failure == OnFailure::Retry { c.retries.max(1) } else { 1 };
    run_with_retries(root_path, &argv, &env, None, c.timeout, attempts, log, &c.name)
}

#[allow(clippy::too_many_arguments)]
fn run_with_retries(
    root_path: &Path,
    argv: &[String],
    env: &BTreeMap<String, String>,
    stdin: Option<String>,
    timeout: u32,
    attempts: u32,
    log: &mut Log,
    name: &str,
) -> Result<String> {
    let mut last = None;
    for attempt in 1..=attempts {
        match run_once(root_path, argv, env, stdin.as_deref(), timeout, log, name) {
            Ok(d) => return Ok(if attempt > 1 { format!("{d}, attempt {attempt}") } else { d }),
            Err(e) => {
                if attempt < attempts {
                    log.line(&format!("{name}: attempt {attempt} of {attempts} failed: {e:#}; trying again in 5 s"));
                    std::thread::sleep(Duration::from_secs(5));
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt was made")))
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    root_path: &Path,
    argv: &[String],
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
    timeout: u32,
    log: &mut Log,
    name: &str,
) -> Result<String> {
    let (prog, args) = argv.split_first().context("an empty command")?;
    let out_file = tempfile_in(root_path)?;
    let mut c = std::process::Command::new(prog);
    c.args(args)
        .envs(env)
        .stdout(Stdio::from(out_file.try_clone()?))
        .stderr(Stdio::from(out_file.try_clone()?))
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .process_group(0);
    c.current_dir("/");
    let t = Instant::now();
    let mut child = c.spawn().with_context(|| format!("starting {prog}"))?;
    if let (Some(s), Some(mut i)) = (stdin, child.stdin.take()) {
        let _ = i.write_all(s.as_bytes());
        let _ = i.write_all(b"\n");
    }
    let deadline = t + Duration::from_secs(timeout as u64);
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    let mut f = out_file;
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    f.take(64 << 10).read_to_end(&mut buf)?;
    output.push_str(&String::from_utf8_lossy(&buf));
    for l in output.lines() {
        log.line(&format!("{name}| {l}"));
    }
    let secs = t.elapsed().as_secs_f64();
    match status {
        None => bail!("timed out after {timeout} s and was killed"),
        Some(s) if s.success() => Ok(format!("exit 0 in {secs:.1} s")),
        Some(s) => match s.code() {
            Some(code) => bail!("exit status {code} after {secs:.1} s"),
            None => bail!("killed by a signal after {secs:.1} s"),
        },
    }
}

/// An unnamed temporary file for a command's output.
fn tempfile_in(root_path: &Path) -> Result<std::fs::File> {
    let dir = root_path.join("var/tmp");
    let dir = if dir.is_dir() { dir } else { std::env::temp_dir() };
    let path = dir.join(format!(".slipway-firstboot-{}-{}", std::process::id(), rand_suffix()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    Ok(f)
}

fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    slipway_fstree::hex::encode(&b)
}

fn now() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    slipway_store::rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(name: &str, when: When) -> CommandStep {
        CommandStep {
            index: 0,
            name: name.into(),
            run: vec!["/bin/true".into()],
            shell: None,
            when,
            timeout: 5,
            on_failure: OnFailure::Continue,
            retries: 3,
            env: BTreeMap::from([("T".to_string(), SecretSource::Credential("tok".into()))]),
        }
    }

    #[test]
    fn units_run_once_before_sshd_and_every_boot_after_first_boot() {
        let plan = Plan { ssh_host_keys: true, ..Plan::default() };
        let u = units(&plan);
        assert_eq!(u.files.len(), 1);
        let text = &u.files[0].1;
        assert!(text.contains("ConditionPathExists=!/var/lib/slipway/firstboot/done\n"), "{text}");
        assert!(text.contains("Before=ssh.service sshd.service"), "{text}");
        assert!(!text.contains("network-online"), "no network needed: {text}");
        assert_eq!(u.remove.len(), 2, "a stale every-boot unit goes");

        let plan = Plan { commands: vec![cmd("a", When::Once), cmd("b", When::EveryBoot)], ..Plan::default() };
        let u = units(&plan);
        assert_eq!(u.files.len(), 2);
        let every = &u.files[1].1;
        assert!(every.contains("ExecStart=/usr/local/sbin/slipway firstboot --every-boot\n"), "{every}");
        assert!(every.contains("After=local-fs.target slipway-firstboot.service\n"), "{every}");
        assert!(!every.contains("firstboot/done"), "every-boot runs at every boot: {every}");
        assert!(every.contains("LoadCredential=tok\n") && every.contains("network-online"), "{every}");
        assert_eq!(plan.step_names(), vec!["command:a", "command:b (every boot)"]);
        assert_eq!(plan.once_step_names(), vec!["command:a"]);
    }
}
