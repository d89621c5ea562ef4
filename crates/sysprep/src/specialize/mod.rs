//! Specialize: apply an answer file to a root offline, after an image is
//! applied and before its first boot (the Mini-Setup of slipway).
//!
//! Everything that can be done on files is done here: host name and hosts,
//! a fresh machine-id when asked, users and groups, SSH settings (and host
//! keys when asked), network files for the root's own stack, locale,
//! keyboard, time zone, NTP and files. What must run on the machine itself
//! (SSH host keys if absent, passwords held as systemd credentials, domain
//! join, commands) goes into a first-boot plan that `slipway firstboot`
//! carries out once, from `slipway-firstboot.service`.

pub mod accounts;
pub mod network;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::Digest;

use crate::answer::{self, Answer, Facts, HashOrRef, MachineIdPolicy, Renderer, SecretRef};
use crate::firstboot::{self, Plan, SecretSource};
use crate::rootdir::{Found, Perm, RootDir};

/// How to specialize.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The machine's facts (serial, mac, uuid, seq, …).
    pub facts: Facts,
    /// The slipway binary copied into the root for the first-boot unit
    /// (default: the running executable).
    pub slipway_binary: Option<PathBuf>,
    /// Refuse nothing about the running system (see [`crate::rootdir::is_running_system`]).
    pub force: bool,
}

/// What specialize did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub root: String,
    pub hostname: Option<String>,
    /// The machine-id written (policy `specialize`), or None (made at
    /// first boot).
    pub machine_id: Option<String>,
    /// Indexes of the `[[machines]]` entries that matched the facts.
    pub matched_overrides: Vec<usize>,
    pub accounts: accounts::AccountReport,
    pub network: network::NetworkReport,
    /// SSH host key fingerprints made offline (`ssh.host_keys = "specialize"`).
    pub ssh_host_keys: Vec<String>,
    /// Files written or replaced (absolute inside the root), other than
    /// those in `accounts` and `network`.
    pub written: Vec<String>,
    /// Steps left for `slipway firstboot` on the machine.
    pub firstboot_steps: Vec<String>,
}

/// Where the first-boot unit and binary go inside the root.
pub const UNIT_PATH: &str = "etc/systemd/system/slipway-firstboot.service";
pub const EVERYBOOT_UNIT_PATH: &str = "etc/systemd/system/slipway-everyboot.service";
pub const BINARY_PATH: &str = "usr/local/sbin/slipway";

/// Applies `answer` to the root at `root_path`.
pub fn specialize(root_path: &Path, answer: &Answer, opts: &Options) -> Result<Report> {
    if crate::rootdir::is_running_system(root_path)? && !opts.force {
        bail!(
            "{} is the running system's root; specialize is for an applied image before its first boot. \
             Pass --force to change this system anyway",
            root_path.display()
        );
    }
    let root = RootDir::open(root_path)?;
    // What the root cannot satisfy stops everything before a change.
    let problems = answer::check::check(answer, &root);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("\n  {p}")).collect();
        bail!(
            "{} cannot satisfy the answer file; nothing was changed:{}\n(`slipway answer check FILE --root {}` lists the same)",
            root_path.display(),
            list.concat(),
            root_path.display()
        );
    }
    let mut report = Report { root: root_path.display().to_string(), ..Default::default() };
    let mut random = |b: &mut [u8]| getrandom::fill(b).expect("the kernel's random source");
    let machine = answer.for_machine(&opts.facts, &mut random)?;
    report.matched_overrides = machine.matched.clone();

    // Secrets that specialize itself reads (file and env references) are
    // resolved first, so a missing one stops everything before a change.
    let mut hashes = Vec::new();
    let mut plan = Plan::default();
    for (i, u) in answer.users.iter().enumerate() {
        hashes.push(match &u.password_hash {
            None => None,
            Some(HashOrRef::Hash(h)) => Some(h.clone()),
            Some(HashOrRef::Secret(SecretRef::Credential(c))) => {
                let secret = SecretSource::Credential(c.clone());
                plan.passwords.push(firstboot::PasswordStep { user: u.name.clone(), secret });
                None
            }
            Some(HashOrRef::Secret(r)) => {
                let s = r.resolve().with_context(|| format!("users[{i}].password_hash"))?;
                answer::check_crypt_hash(s.expose()).map_err(|e| {
                    anyhow::anyhow!(
                        "users[{i}].password_hash from {}: {e}; the secret must hold a crypt hash",
                        r.describe()
                    )
                })?;
                Some(s.expose().to_string())
            }
        });
    }
    let mut stored: BTreeMap<String, String> = BTreeMap::new();
    let mut stash = |key: String, r: &SecretRef| -> Result<SecretSource> {
        // Credentials are read on the machine; the others now, and stored.
        if let SecretRef::Credential(c) = r {
            return Ok(SecretSource::Credential(c.clone()));
        }
        let s = r.resolve().with_context(|| key.clone())?;
        stored.insert(key.clone(), s.expose().to_string());
        Ok(SecretSource::Stored(key))
    };
    if let Some(d) = &answer.domain {
        plan.domain = Some(firstboot::DomainStep {
            realm: d.realm.clone(),
            user: d.user.clone(),
            ou: d.ou.clone(),
            password: match &d.password {
                Some(r) => Some(stash("domain.password".into(), r)?),
                None => None,
            },
            timeout: d.timeout.unwrap_or(300),
            on_failure: d.on_failure.unwrap_or_default(),
        });
    }
    for (i, c) in answer.commands.iter().enumerate() {
        let mut env = BTreeMap::new();
        for (k, r) in &c.secret_env {
            env.insert(k.clone(), stash(format!("commands.{i}.{k}"), r)?);
        }
        plan.commands.push(firstboot::CommandStep {
            index: i,
            name: c.name.clone(),
            run: c.run.clone(),
            shell: c.shell.clone(),
            when: c.when,
            timeout: c.timeout.unwrap_or(300),
            on_failure: c.on_failure,
            retries: c.retries.unwrap_or(3),
            env,
        });
    }
    // Files are fetched and checked before anything changes too.
    let mut contents = Vec::new();
    for (i, f) in answer.files.iter().enumerate() {
        contents.push(file_content(f).with_context(|| format!("files[{i}] ({})", f.path))?);
    }

    // Identity.
    if let Some(h) = &machine.hostname {
        write(&root, &mut report.written, "etc/hostname", format!("{h}\n").as_bytes(), Perm::root(0o644))?;
        let hosts = root.read_string("etc/hosts")?.unwrap_or_default();
        let fqdn = answer.computer.domain.as_ref().map(|d| format!("{h}.{d}"));
        write(
            &root,
            &mut report.written,
            "etc/hosts",
            hosts_with(&hosts, h, fqdn.as_deref()).as_bytes(),
            Perm::root(0o644),
        )?;
        report.hostname = Some(h.clone());
    }
    match answer.computer.machine_id {
        MachineIdPolicy::Specialize => {
            let mut b = [0u8; 16];
            random(&mut b);
            // A v4 UUID's bits, as systemd makes them.
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let id = slipway_fstree::hex::encode(&b);
            write(&root, &mut report.written, "etc/machine-id", format!("{id}\n").as_bytes(), Perm::root(0o444))?;
            report.machine_id = Some(id);
        }
        MachineIdPolicy::FirstBoot => {
            // A real ID left by an image that was not generalized would be
            // shared by every clone: first boot must make its own.
            let cur = root.read_string("etc/machine-id")?.unwrap_or_default();
            if cur.trim().len() == 32 {
                write(&root, &mut report.written, "etc/machine-id", b"uninitialized\n", Perm::root(0o444))?;
            }
        }
    }

    // Accounts.
    report.accounts = accounts::apply(&root, &answer.groups, &answer.users, &hashes)?;

    // SSH.
    if let Some(ssh) = &answer.ssh {
        let mut conf = String::from("# Written by slipway specialize from the answer file.\n");
        if let Some(p) = ssh.password_authentication {
            conf.push_str(&format!("PasswordAuthentication {}\n", if p { "yes" } else { "no" }));
        }
        if let Some(r) = &ssh.permit_root_login {
            conf.push_str(&format!("PermitRootLogin {r}\n"));
        }
        write(&root, &mut report.written, "etc/ssh/sshd_config.d/50-slipway.conf", conf.as_bytes(), Perm::root(0o644))?;
        if ssh.host_keys == answer::HostKeys::Specialize {
            report.ssh_host_keys = make_host_keys(&root)?;
        }
    }
    plan.ssh_host_keys = root.present(&["usr/sbin/sshd", "sbin/sshd"])?;

    // Network.
    let renderer = answer.network.as_ref().map(|n| n.renderer).unwrap_or(Renderer::None);
    if !machine.interfaces.is_empty() {
        if let Some(stack) = network::choose(&root, renderer)? {
            report.network = network::render(&root, stack, &machine.interfaces)?;
        }
    }

    // Locale and keyboard.
    let debian = root.exists("etc/debian_version")?;
    if let Some(l) = &answer.locale {
        if let Some(lang) = &l.lang {
            let line = format!("LANG={lang}\n");
            write(&root, &mut report.written, "etc/locale.conf", line.as_bytes(), Perm::root(0o644))?;
            if debian {
                write(&root, &mut report.written, "etc/default/locale", line.as_bytes(), Perm::root(0o644))?;
            }
        }
        if let Some(kb) = &l.keyboard {
            let vc = root.read_string("etc/vconsole.conf")?.unwrap_or_default();
            let vc = set_vars(&vc, &[("KEYMAP", kb.as_str()), ("XKBLAYOUT", kb.as_str())], false);
            write(&root, &mut report.written, "etc/vconsole.conf", vc.as_bytes(), Perm::root(0o644))?;
            if debian {
                let k = root.read_string("etc/default/keyboard")?.unwrap_or_default();
                let k = set_vars(&k, &[("XKBLAYOUT", kb.as_str())], true);
                write(&root, &mut report.written, "etc/default/keyboard", k.as_bytes(), Perm::root(0o644))?;
            }
        }
    }

    // Time.
    if let Some(tz) = &machine.timezone {
        let zone = format!("usr/share/zoneinfo/{tz}");
        if !matches!(root.inspect(&zone)?, Found::File { .. } | Found::Symlink { .. }) {
            bail!("time.timezone: {tz} is not in the root ({} is missing); install tzdata in the image or pick a zone it has", root.display(&zone).display());
        }
        root.symlink("etc/localtime", &format!("../usr/share/zoneinfo/{tz}"))?;
        report.written.push("/etc/localtime".into());
        if debian {
            write(&root, &mut report.written, "etc/timezone", format!("{tz}\n").as_bytes(), Perm::root(0o644))?;
        }
    }
    if let Some(t) = &answer.time {
        if !t.ntp.is_empty() {
            if root.present(&["usr/sbin/chronyd", "sbin/chronyd"])? {
                let lines: String = t.ntp.iter().map(|s| format!("server {s} iburst\n")).collect();
                let p = if root.is_dir("etc/chrony/sources.d")? {
                    "etc/chrony/sources.d/slipway.sources"
                } else {
                    "etc/chrony.d/slipway.conf"
                };
                write(&root, &mut report.written, p, lines.as_bytes(), Perm::root(0o644))?;
            } else {
                let conf = format!("# Written by slipway specialize.\n[Time]\nNTP={}\n", t.ntp.join(" "));
                write(
                    &root,
                    &mut report.written,
                    "etc/systemd/timesyncd.conf.d/50-slipway.conf",
                    conf.as_bytes(),
                    Perm::root(0o644),
                )?;
            }
        }
    }

    // Files, after the accounts that may own them.
    let accts = accounts::Accounts::load(&root)?;
    for (i, (f, data)) in answer.files.iter().zip(contents).enumerate() {
        let owner = f.owner.as_deref().unwrap_or("root");
        let uid = accts.uid_of(owner).with_context(|| format!("files[{i}].owner: no user {owner:?} in the root"))?;
        let gid = match &f.group {
            Some(g) => accts.gid_of(g).with_context(|| format!("files[{i}].group: no group {g:?} in the root"))?,
            None => accts.user(owner).map(|u| u.gid).unwrap_or(0),
        };
        let mode = f.mode.as_deref().and_then(answer::parse_mode).unwrap_or(0o644);
        // The answer's mode and owner, also over a file the image has.
        let rel = f.path.trim_start_matches('/');
        root.write(rel, &data, Perm { mode, uid, gid })?;
        report.written.push(f.path.clone());
    }

    // The first-boot plan, its secrets and its units.
    plan.hostname = machine.hostname.clone();
    report.firstboot_steps = plan.step_names();
    install_firstboot(&root, &plan, &stored, opts, &mut report)?;
    root.sync()?;
    Ok(report)
}

fn write(root: &RootDir, written: &mut Vec<String>, rel: &str, data: &[u8], perm: Perm) -> Result<()> {
    root.write_keeping(rel, data, perm)?;
    written.push(format!("/{rel}"));
    Ok(())
}

/// /etc/hosts with the machine's own line (`127.0.1.1 FQDN NAME`, the
/// Debian convention) replacing any earlier one; other lines kept as they are.
pub fn hosts_with(hosts: &str, name: &str, fqdn: Option<&str>) -> String {
    let own = match fqdn {
        Some(f) => format!("127.0.1.1\t{f} {name}"),
        None => format!("127.0.1.1\t{name}"),
    };
    let mut out = String::new();
    let mut placed = false;
    if hosts.is_empty() {
        out.push_str("127.0.0.1\tlocalhost\n");
    }
    for l in hosts.lines() {
        if l.split_whitespace().next() == Some("127.0.1.1") {
            if !placed {
                out.push_str(&own);
                out.push('\n');
                placed = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
        // Right after localhost, as Debian's installer writes it.
        if !placed && l.split_whitespace().next() == Some("127.0.0.1") {
            out.push_str(&own);
            out.push('\n');
            placed = true;
        }
    }
    if !placed {
        out.push_str(&own);
        out.push('\n');
    }
    out
}

/// Sets shell-style `KEY=value` lines, keeping the others.
fn set_vars(text: &str, vars: &[(&str, &str)], quote: bool) -> String {
    let mut out = String::new();
    let mut done = vec![false; vars.len()];
    for l in text.lines() {
        let key = l.split('=').next().unwrap_or("").trim();
        if let Some(i) = vars.iter().position(|(k, _)| *k == key) {
            if !done[i] {
                out.push_str(&var_line(vars[i], quote));
                done[i] = true;
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    for (i, v) in vars.iter().enumerate() {
        if !done[i] {
            out.push_str(&var_line(*v, quote));
        }
    }
    out
}

fn var_line((k, v): (&str, &str), quote: bool) -> String {
    if quote {
        format!("{k}=\"{v}\"\n")
    } else {
        format!("{k}={v}\n")
    }
}

/// The content of a file entry: inline, or fetched and checked.
fn file_content(f: &answer::FileSpec) -> Result<Vec<u8>> {
    if let Some(c) = &f.content {
        return Ok(c.as_bytes().to_vec());
    }
    let src = f.source.as_deref().context("neither content nor source")?;
    let want = f.sha256.as_deref().context("a source without its sha256")?.to_ascii_lowercase();
    const LIMIT: u64 = 256 << 20;
    let data = if let Some(p) = src.strip_prefix("file://") {
        let mut v = Vec::new();
        std::fs::File::open(p)
            .with_context(|| format!("opening {p}"))?
            .take(LIMIT + 1)
            .read_to_end(&mut v)
            .with_context(|| format!("reading {p}"))?;
        v
    } else {
        let resp = ureq::get(src).call().with_context(|| format!("fetching {src}"))?;
        let mut v = Vec::new();
        resp.into_body().into_reader().take(LIMIT + 1).read_to_end(&mut v).with_context(|| format!("reading {src}"))?;
        v
    };
    if data.len() as u64 > LIMIT {
        bail!("{src} is larger than 256 MiB; put large content in the image or a package instead");
    }
    let got = slipway_fstree::hex::encode(&sha2::Sha256::digest(&data));
    if got != want {
        bail!("{src} has SHA-256 {got}, not the {want} the answer file gives; nothing was written");
    }
    Ok(data)
}

/// New SSH host keys made offline with the host's ssh-keygen (`-A -f ROOT`).
fn make_host_keys(root: &RootDir) -> Result<Vec<String>> {
    if !root.is_dir("etc/ssh")? {
        bail!("ssh.host_keys = \"specialize\": the root has no /etc/ssh (is openssh-server installed in the image?)");
    }
    for n in root.list_utf8("etc/ssh")? {
        if n.starts_with("ssh_host_") {
            root.remove(&format!("etc/ssh/{n}"))?;
        }
    }
    firstboot::make_host_keys(root)
        .context("making SSH host keys (install openssh-client on this machine, or use ssh.host_keys = \"first-boot\")")
}

fn install_firstboot(
    root: &RootDir,
    plan: &Plan,
    stored: &BTreeMap<String, String>,
    opts: &Options,
    report: &mut Report,
) -> Result<()> {
    let bin = match &opts.slipway_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding the running slipway binary to copy into the root")?,
    };
    let data = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
    write(root, &mut report.written, BINARY_PATH, &data, Perm::root(0o755))?;
    // A previous specialize's state and secrets go; this plan starts fresh.
    root.remove(firstboot::STATE_DIR)?;
    root.mkdir_all("var/lib/slipway", Perm::root(0o755))?;
    root.mkdir_all(firstboot::SECRETS_DIR, Perm::root(0o700))?;
    for (k, v) in stored {
        root.write(&format!("{}/{k}", firstboot::SECRETS_DIR), v.as_bytes(), Perm::root(0o600))?;
    }
    root.mkdir_all(firstboot::STATE_DIR, Perm::root(0o700))?;
    report.written.push(format!("/{}/", firstboot::STATE_DIR));
    let json = serde_json::to_vec_pretty(plan)?;
    write(root, &mut report.written, firstboot::PLAN_PATH, &json, Perm::root(0o600))?;
    let units = firstboot::units(plan);
    for (rel, text) in &units.files {
        write(root, &mut report.written, rel, text.as_bytes(), Perm::root(0o644))?;
    }
    for (link, target) in &units.links {
        root.symlink(link, target)?;
        report.written.push(format!("/{link}"));
    }
    for r in &units.remove {
        root.remove(r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_gets_one_own_line_after_localhost() {
        let h = "127.0.0.1\tlocalhost\n127.0.1.1\told\n::1 localhost ip6-localhost\n";
        assert_eq!(
            hosts_with(h, "web-1", Some("web-1.example.com")),
            "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1.example.com web-1\n::1 localhost ip6-localhost\n"
        );
        let h = "127.0.0.1 localhost\n::1 localhost\n";
        assert_eq!(hosts_with(h, "a", None), "127.0.0.1 localhost\n127.0.1.1\ta\n::1 localhost\n");
    }

    #[test]
    fn shell_vars_are_replaced_in_place() {
        let k = "XKBMODEL=\"pc105\"\nXKBLAYOUT=\"us\"\nXKBVARIANT=\"\"\n";
        assert_eq!(
            set_vars(k, &[("XKBLAYOUT", "de")], true),
            "XKBMODEL=\"pc105\"\nXKBLAYOUT=\"de\"\nXKBVARIANT=\"\"\n"
        );
        assert_eq!(set_vars("", &[("KEYMAP", "de")], false), "KEYMAP=de\n");
    }
}
