//! cloud-init interop: an answer file exported as a NoCloud seed
//! (`user-data`, `meta-data`, `network-config`), for images that specialize
//! themselves with cloud-init instead of `slipway specialize`.
//!
//! The mapping is specified in `docs/answer-format.md` ("cloud-init
//! NoCloud"). What a seed cannot carry faithfully is refused with the reason,
//! never dropped: a domain join and `secret_env` (a seed holds secrets in
//! plain text), systemd credentials (cloud-init has no credential channel),
//! group IDs, files fetched from the network, a machine-id made offline.
//!
//! Every file is JSON after its first line; JSON is YAML 1.2, and cloud-init
//! (PyYAML) reads it as YAML. `scripts/cloud-init-schema.sh` checks a seed
//! with cloud-init itself.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use sha2::Digest;

use super::{
    check_crypt_hash, parse_mode, AddressMode, Answer, Facts, HashOrRef, HostKeys, Interface, MachineIdPolicy,
    OnFailure, Renderer, SecretRef, Sudo, When,
};
use crate::rootdir::{Perm, RootDir};

/// A NoCloud seed: the files of a `CIDATA` volume or a `ds=nocloud;s=DIR/`
/// directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    /// `#cloud-config` user data.
    pub user_data: String,
    /// `instance-id` and `local-hostname`.
    pub meta_data: String,
    /// Network configuration version 2; `None` when the answer configures
    /// no interface or says `renderer = "none"`.
    pub network_config: Option<String>,
}

/// The sudo rules cloud-init writes for slipway's sudo modes: the rules
/// `slipway specialize` writes to /etc/sudoers.d/50-slipway-NAME.
const SUDO_PASSWORD: &str = "ALL=(ALL:ALL) ALL";
const SUDO_NOPASSWD: &str = "ALL=(ALL:ALL) NOPASSWD: ALL";
/// `slipway firstboot`'s defaults, applied the same way here.
const DEFAULT_TIMEOUT: u32 = 300;
const DEFAULT_RETRIES: u32 = 3;
const RETRY_PAUSE_SECS: u32 = 5;
/// Where cloud-init's `scripts_per_boot` finds scripts run at every boot.
const PER_BOOT_DIR: &str = "/var/lib/cloud/scripts/per-boot";
/// Set by a failing `halt` every-boot command so the later ones skip (it is
/// on a tmpfs, so it lasts one boot).
const HALT_MARK: &str = "/run/slipway-every-boot-halted";

/// Exports the answer for the machine with `facts` as a NoCloud seed.
///
/// Password hashes given as `file` or `env` references are read now, on the
/// machine running the export, and land in the seed (as hashes). The
/// instance ID is `instance_id`, or `slipway-` and 16 hex digits of a hash
/// of the answer and the facts (the same answer and machine give the same
/// ID, so cloud-init does not specialize the machine again).
pub fn export(a: &Answer, facts: &Facts, instance_id: Option<&str>) -> Result<Seed> {
    let mut refused = Vec::new();
    let mut no = |key: String, why: &str| refused.push(format!("{key}: {why}"));
    if a.computer.machine_id == MachineIdPolicy::Specialize {
        no("computer.machine_id".into(), "cloud-init cannot write a machine-id before the first boot; use \"first-boot\" (systemd makes it), or `slipway specialize`");
    }
    if a.ssh.as_ref().is_some_and(|s| s.host_keys == HostKeys::Specialize) {
        no("ssh.host_keys".into(), "a seed would carry the private host keys in plain text; use \"first-boot\" (cloud-init makes new keys on the machine), or `slipway specialize`");
    }
    if a.domain.is_some() {
        no("domain".into(), "cloud-init has no domain join, and a seed would carry the join password in plain text to anyone who can read it; join with `slipway specialize` (the password stays a reference), or after boot");
    }
    for (i, g) in a.groups.iter().enumerate() {
        if g.gid.is_some() {
            no(format!("groups[{i}].gid"), "cloud-init cannot set a group ID; drop gid, or use `slipway specialize`");
        }
        if g.system {
            no(
                format!("groups[{i}].system"),
                "cloud-init cannot make a system group; drop system, or use `slipway specialize`",
            );
        }
    }
    for (i, c) in a.commands.iter().enumerate() {
        if !c.secret_env.is_empty() {
            no(format!("commands[{i}].secret_env"), "a seed would carry the secrets in plain text to anyone who can read it; use `slipway specialize`, whose first-boot runner reads them on the machine");
        }
    }
    for (i, u) in a.users.iter().enumerate() {
        if let Some(HashOrRef::Secret(s @ SecretRef::Credential(_))) = &u.password_hash {
            no(format!("users[{i}].password_hash"), &format!("cloud-init has no credential channel to read {} from; give the hash inline or as a file/env reference (read at export), or use `slipway specialize`", s.describe()));
        }
    }
    for (i, f) in a.files.iter().enumerate() {
        if let Some(src) = &f.source {
            if !src.starts_with("file://") {
                no(format!("files[{i}].source"), "the cloud-init this seed is checked against (22.4, Debian 12) cannot fetch write_files from a URL; download it and give the content, a file:// source (read at export), or use `slipway specialize`");
            }
        }
    }
    if !refused.is_empty() {
        bail!("the answer cannot be exported as a cloud-init seed:\n  {}", refused.join("\n  "));
    }

    let mut random_err = None;
    let mut random = |b: &mut [u8]| {
        if let Err(e) = getrandom::fill(b) {
            random_err = Some(e);
        }
    };
    let fm = a.for_machine(facts, &mut random)?;
    if let Some(e) = random_err {
        bail!("reading random bytes for the host name: {e}");
    }

    let mut cc = Map::new();
    if let Some(h) = &fm.hostname {
        cc.insert("hostname".into(), json!(h));
        if let Some(d) = &a.computer.domain {
            cc.insert("fqdn".into(), json!(format!("{h}.{d}")));
        }
        cc.insert("prefer_fqdn_over_hostname".into(), json!(false));
        cc.insert("manage_etc_hosts".into(), json!("localhost"));
    }
    if !a.groups.is_empty() {
        let groups: Vec<Value> = a
            .groups
            .iter()
            .map(|g| if g.members.is_empty() { json!(g.name) } else { json!({ g.name.clone(): g.members }) })
            .collect();
        cc.insert("groups".into(), Value::Array(groups));
    }
    if !a.users.is_empty() {
        let mut users = Vec::new();
        for (i, u) in a.users.iter().enumerate() {
            users.push(user(u).with_context(|| format!("users[{i}] ({})", u.name))?);
        }
        cc.insert("users".into(), Value::Array(users));
    }
    let mut files = Vec::new();
    if let Some(s) = &a.ssh {
        if let Some(pw) = s.password_authentication {
            cc.insert("ssh_pwauth".into(), json!(pw));
        }
        if let Some(r) = &s.permit_root_login {
            cc.insert("disable_root".into(), json!(r == "no"));
        }
        // The same drop-in `slipway specialize` writes.
        let mut conf = String::from("# Written by cloud-init from a slipway answer file.\n");
        if let Some(pw) = s.password_authentication {
            let _ = writeln!(conf, "PasswordAuthentication {}", if pw { "yes" } else { "no" });
        }
        if let Some(r) = &s.permit_root_login {
            let _ = writeln!(conf, "PermitRootLogin {r}");
        }
        if s.password_authentication.is_some() || s.permit_root_login.is_some() {
            files.push(
                json!({ "path": "/etc/ssh/sshd_config.d/50-slipway.conf", "content": conf, "permissions": "0644" }),
            );
        }
    }
    if let Some(tz) = &fm.timezone {
        cc.insert("timezone".into(), json!(tz));
    }
    if let Some(l) = &a.locale {
        if let Some(lang) = &l.lang {
            cc.insert("locale".into(), json!(lang));
        }
        if let Some(kb) = &l.keyboard {
            cc.insert("keyboard".into(), json!({ "layout": kb }));
        }
    }
    if let Some(t) = &a.time {
        if !t.ntp.is_empty() {
            cc.insert("ntp".into(), json!({ "enabled": true, "servers": t.ntp }));
        }
    }
    for (i, f) in a.files.iter().enumerate() {
        files.push(file(a, f).with_context(|| format!("files[{i}] ({})", f.path))?);
    }
    let mut runcmd = Vec::new();
    let width = a.commands.len().saturating_sub(1).to_string().len().max(2);
    for (i, c) in a.commands.iter().enumerate() {
        match c.when {
            When::Once => runcmd.push(runcmd_entry(c)),
            When::EveryBoot => {
                let mut script = format!("#!/bin/sh\n# slipway command {:?}, every boot.\n", c.name);
                let _ = writeln!(script, "[ -e {HALT_MARK} ] && exit 0");
                let _ = writeln!(script, "{}", retried(c, &command_line(c), &format!("touch {HALT_MARK}; exit 1")));
                files.push(json!({
                    "path": format!("{PER_BOOT_DIR}/{i:0width$}-{}", file_name(&c.name)),
                    "content": script,
                    "permissions": "0755",
                }));
            }
        }
    }
    if !files.is_empty() {
        cc.insert("write_files".into(), Value::Array(files));
    }
    if !runcmd.is_empty() {
        cc.insert("runcmd".into(), Value::Array(runcmd));
    }
    let user_data = format!("#cloud-config\n{}\n", serde_json::to_string_pretty(&Value::Object(cc))?);

    let instance_id = match instance_id {
        Some(id) => {
            if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bail!("instance ID {id:?}: give 1-255 characters without spaces or control characters");
            }
            id.to_string()
        }
        None => {
            let mut h = blake3::Hasher::new();
            h.update(toml::to_string(a).context("writing the answer as TOML for its instance ID")?.as_bytes());
            h.update(b"\0");
            h.update(serde_json::to_string(facts)?.as_bytes());
            format!("slipway-{}", &h.finalize().to_hex()[..16])
        }
    };
    let mut meta_data = format!("instance-id: {}\n", json!(instance_id));
    if let Some(h) = &fm.hostname {
        let _ = writeln!(meta_data, "local-hostname: {}", json!(h));
    }

    let renderer = a.network.as_ref().map(|n| n.renderer).unwrap_or_default();
    let network_config = if renderer == Renderer::None || fm.interfaces.is_empty() {
        None
    } else {
        Some(format!("{}\n", serde_json::to_string_pretty(&network(&fm.interfaces)?)?))
    };
    Ok(Seed { user_data, meta_data, network_config })
}

fn user(u: &super::User) -> Result<Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(u.name));
    if let Some(g) = &u.gecos {
        m.insert("gecos".into(), json!(g));
    }
    if let Some(s) = &u.shell {
        m.insert("shell".into(), json!(s));
    }
    if let Some(h) = &u.home {
        m.insert("homedir".into(), json!(h));
    }
    if let Some(g) = &u.primary_group {
        m.insert("primary_group".into(), json!(g));
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    match u.sudo {
        Some(Sudo::Password) => {
            m.insert("sudo".into(), json!(SUDO_PASSWORD));
        }
        Some(Sudo::Nopasswd) => {
            m.insert("sudo".into(), json!(SUDO_NOPASSWD));
        }
        Some(Sudo::None) | None => {}
    }
    let hash = match &u.password_hash {
        None => None,
        Some(HashOrRef::Hash(h)) => Some(h.clone()),
        Some(HashOrRef::Secret(s)) => {
            let v = s.resolve().with_context(|| format!("reading password_hash from {}", s.describe()))?;
            check_crypt_hash(v.expose()).map_err(|e| anyhow::anyhow!("password_hash from {}: {e}", s.describe()))?;
            Some(v.expose().to_string())
        }
    };
    // cloud-init locks a password unless told not to.
    m.insert("lock_passwd".into(), json!(hash.is_none() || u.lock_password));
    if let Some(h) = hash {
        m.insert("hashed_passwd".into(), json!(h));
    }
    if !u.ssh_authorized_keys.is_empty() {
        m.insert("ssh_authorized_keys".into(), json!(u.ssh_authorized_keys));
    }
    if let Some(uid) = u.uid {
        m.insert("uid".into(), json!(uid));
    }
    if u.system {
        m.insert("system".into(), json!(true));
    }
    Ok(Value::Object(m))
}

fn file(a: &Answer, f: &super::FileSpec) -> Result<Value> {
    let mut m = Map::new();
    m.insert("path".into(), json!(f.path));
    match (&f.content, &f.source) {
        (Some(c), _) => {
            m.insert("content".into(), json!(c));
        }
        (None, Some(src)) => {
            let path = src.strip_prefix("file://").unwrap_or(src);
            let data = std::fs::read(path).with_context(|| format!("reading source {src}"))?;
            let got = hex(&sha2::Sha256::digest(&data));
            if f.sha256.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(got.as_str()) {
                bail!(
                    "source {src} has SHA-256 {got}, not the sha256 the answer gives; check the file or update sha256"
                );
            }
            match String::from_utf8(data) {
                Ok(text) => m.insert("content".into(), json!(text)),
                Err(e) => {
                    m.insert("encoding".into(), json!("b64"));
                    m.insert("content".into(), json!(base64(e.as_bytes())))
                }
            };
        }
        (None, None) => bail!("neither content nor source"),
    }
    let mode = f.mode.as_deref().and_then(parse_mode).unwrap_or(0o644);
    m.insert("permissions".into(), json!(format!("{mode:04o}")));
    let answer_user = |n: &str| a.users.iter().find(|u| u.name == n);
    let answer_group = |n: &str| a.groups.iter().any(|g| g.name == n) || a.users.iter().any(|u| u.name == n);
    if f.owner.is_some() || f.group.is_some() {
        let owner = f.owner.clone().unwrap_or_else(|| "root".into());
        // The owner's primary group when none is given: known for the
        // answer's users; for the image's own users, cloud-init leaves the
        // group as root.
        let group = f.group.clone().or_else(|| match answer_user(&owner) {
            Some(u) => Some(u.primary_group.clone().unwrap_or_else(|| u.name.clone())),
            None if owner == "root" => Some("root".into()),
            None => None,
        });
        let spec = match &group {
            Some(g) => format!("{owner}:{g}"),
            None => owner.clone(),
        };
        m.insert("owner".into(), json!(spec));
        // write_files runs before users_groups; wait for the users.
        if answer_user(&owner).is_some() || group.as_deref().is_some_and(answer_group) {
            m.insert("defer".into(), json!(true));
        }
    }
    Ok(Value::Object(m))
}

/// One `runcmd` entry: an argv list when the command just goes on after a
/// failure, else a shell line that stops the script (`halt`) or tries again
/// (`retry`) as `slipway firstboot` does.
fn runcmd_entry(c: &super::Command) -> Value {
    if c.on_failure == OnFailure::Continue {
        let mut argv = vec!["timeout".to_string(), c.timeout.unwrap_or(DEFAULT_TIMEOUT).to_string()];
        match &c.shell {
            Some(sh) => argv.extend(["/bin/sh".to_string(), "-c".to_string(), sh.clone()]),
            None => argv.extend(c.run.iter().cloned()),
        }
        return json!(argv);
    }
    json!(retried(c, &command_line(c), "exit 1"))
}

/// `timeout SECS program args…` as one shell-quoted line.
fn command_line(c: &super::Command) -> String {
    let mut argv = vec!["timeout".to_string(), c.timeout.unwrap_or(DEFAULT_TIMEOUT).to_string()];
    match &c.shell {
        Some(sh) => argv.extend(["/bin/sh".to_string(), "-c".to_string(), sh.clone()]),
        None => argv.extend(c.run.iter().cloned()),
    }
    argv.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

/// `line` with `halt` or `retry` semantics: `fail` (shell commands) runs
/// when the command has failed for good.
fn retried(c: &super::Command, line: &str, fail: &str) -> String {
    match c.on_failure {
        OnFailure::Continue => line.to_string(),
        OnFailure::Halt => format!("{line} || {{ {fail}; }}"),
        OnFailure::Retry => {
            let n = c.retries.unwrap_or(DEFAULT_RETRIES).max(1);
            format!(
                "n=1; until {line}; do if [ \"$n\" -ge {n} ]; then {fail}; fi; n=$((n+1)); sleep {RETRY_PAUSE_SECS}; done"
            )
        }
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A command name as a file name: letters, digits, `-` and `_`.
fn file_name(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    if s.is_empty() {
        "command".into()
    } else {
        s
    }
}

/// Network configuration version 2 for the interfaces.
fn network(ifs: &[Interface]) -> Result<Value> {
    let mut eth = Map::new();
    let mut seen = BTreeSet::new();
    for (i, f) in ifs.iter().enumerate() {
        let mut m = Map::new();
        // cloud-init's own renderers (networkd, eni) take a name match from
        // the entry's ID, and find a MAC-matched interface's name on the
        // machine; netplan reads `match`.
        let id = match (&f.matches.mac, &f.matches.name) {
            (Some(mac), _) => {
                m.insert("match".into(), json!({ "macaddress": mac.to_ascii_lowercase() }));
                format!("mac-{}", mac.to_ascii_lowercase().replace(':', ""))
            }
            (None, Some(n)) => {
                if n.contains(['*', '?', '[']) {
                    m.insert("match".into(), json!({ "name": n }));
                }
                n.clone()
            }
            (None, None) => bail!("interfaces[{i}] matches no interface"),
        };
        if !seen.insert(id.clone()) {
            bail!("interfaces[{i}] matches the same interface ({id}) as an earlier entry; merge them");
        }
        match f.mode {
            AddressMode::Dhcp => {
                m.insert("dhcp4".into(), json!(true));
                m.insert("dhcp6".into(), json!(true));
            }
            AddressMode::Static => {
                m.insert("addresses".into(), json!(f.addresses));
                if let Some(g) = &f.gateway {
                    // cloud-init 22.4 reads no `to: default`.
                    let to = if g.contains(':') { "::/0" } else { "0.0.0.0/0" };
                    m.insert("routes".into(), json!([{ "to": to, "via": g }]));
                }
            }
        }
        if !f.dns.is_empty() || !f.search.is_empty() {
            let mut ns = Map::new();
            if !f.dns.is_empty() {
                ns.insert("addresses".into(), json!(f.dns));
            }
            if !f.search.is_empty() {
                ns.insert("search".into(), json!(f.search));
            }
            m.insert("nameservers".into(), Value::Object(ns));
        }
        if let Some(mtu) = f.mtu {
            m.insert("mtu".into(), json!(mtu));
        }
        eth.insert(id, Value::Object(m));
    }
    Ok(json!({ "version": 2, "ethernets": eth }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                out.push(T[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes the seed's files into `dir` (created if missing), each atomically
/// (temporary file, fsync, rename) and readable by the owner only: the user
/// data may hold password hashes. A `network-config` left from an earlier
/// seed is removed when this one has none. Returns the files written.
pub fn write_seed(seed: &Seed, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating seed directory {}", dir.display()))?;
    let root = RootDir::open(dir).with_context(|| format!("opening seed directory {}", dir.display()))?;
    let perm = Perm { mode: 0o600, uid: rustix::process::getuid().as_raw(), gid: rustix::process::getgid().as_raw() };
    let mut files = vec![("user-data", &seed.user_data), ("meta-data", &seed.meta_data)];
    match &seed.network_config {
        Some(n) => files.push(("network-config", n)),
        None => {
            root.remove("network-config")?;
        }
    }
    let mut out = Vec::new();
    for (name, text) in files {
        root.write(name, text.as_bytes(), perm).with_context(|| format!("writing {}", dir.join(name).display()))?;
        out.push(dir.join(name));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::parse;

    const HASH: &str = "$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDE";
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2 admin@example";

    fn full() -> String {
        format!(
            r#"version = 1
[computer]
name = "web-{{serial}}"
domain = "example.com"

[[machines]]
match = {{ mac = "52:54:00:00:00:02" }}
name = "db-1"
timezone = "America/New_York"
interfaces = [{{ match = {{ mac = "52:54:00:00:00:02" }}, mode = "static", addresses = ["192.0.2.10/24", "2001:db8::10/64"], gateway = "192.0.2.1", dns = ["192.0.2.53"], search = ["example.com"], mtu = 1400 }}]

[[groups]]
name = "ops"
members = ["admin"]

[[groups]]
name = "empty"

[[users]]
name = "admin"
gecos = "Admin"
shell = "/bin/bash"
groups = ["adm", "ops"]
password_hash = "{HASH}"
sudo = "nopasswd"
ssh_authorized_keys = ["{KEY}"]

[[users]]
name = "svc"
uid = 990
system = true
sudo = "password"
home = "/var/lib/svc"

[ssh]
password_authentication = false
permit_root_login = "prohibit-password"

[[network.interfaces]]
match = {{ name = "en*" }}

[locale]
lang = "de_DE.UTF-8"
keyboard = "de"

[time]
timezone = "Europe/Berlin"
ntp = ["0.debian.pool.ntp.org", "192.0.2.123"]

[[files]]
path = "/etc/motd"
content = "hello\n"

[[files]]
path = "/home/admin/notes"
content = "x"
mode = "0600"
owner = "admin"

[[commands]]
name = "hello"
run = ["echo", "it's me"]

[[commands]]
name = "must work"
shell = "test -e /etc/motd"
on_failure = "halt"
timeout = 60

[[commands]]
name = "flaky"
run = ["/usr/bin/true"]
on_failure = "retry"
retries = 2

[[commands]]
name = "tick/boot"
shell = "date >> /var/log/boots"
when = "every-boot"
"#
        )
    }

    fn user_data(seed: &Seed) -> Value {
        let body = seed.user_data.strip_prefix("#cloud-config\n").expect("the #cloud-config header");
        serde_json::from_str(body).unwrap()
    }

    fn facts(pairs: &[(&str, &str)]) -> Facts {
        let mut f = Facts::default();
        for (k, v) in pairs {
            f.set(k, v);
        }
        f
    }

    #[test]
    fn the_answer_maps_to_cloud_config() {
        let a = parse(&full(), "t").unwrap();
        let seed = export(&a, &facts(&[("serial", "S1")]), None).unwrap();
        let u = user_data(&seed);
        assert_eq!(u["hostname"], "web-s1");
        assert_eq!(u["fqdn"], "web-s1.example.com");
        assert_eq!(u["prefer_fqdn_over_hostname"], false);
        assert_eq!(u["groups"], json!([{ "ops": ["admin"] }, "empty"]));
        assert_eq!(
            u["users"][0],
            json!({
                "name": "admin", "gecos": "Admin", "shell": "/bin/bash", "groups": ["adm", "ops"],
                "sudo": SUDO_NOPASSWD, "lock_passwd": false, "hashed_passwd": HASH, "ssh_authorized_keys": [KEY],
            })
        );
        assert_eq!(
            u["users"][1],
            json!({ "name": "svc", "uid": 990, "system": true, "sudo": SUDO_PASSWORD, "homedir": "/var/lib/svc", "lock_passwd": true })
        );
        assert_eq!(u["ssh_pwauth"], false);
        assert_eq!(u["disable_root"], false);
        assert_eq!(u["timezone"], "Europe/Berlin");
        assert_eq!(u["locale"], "de_DE.UTF-8");
        assert_eq!(u["keyboard"], json!({ "layout": "de" }));
        assert_eq!(u["ntp"], json!({ "enabled": true, "servers": ["0.debian.pool.ntp.org", "192.0.2.123"] }));
        let wf = u["write_files"].as_array().unwrap();
        assert_eq!(wf[0]["path"], "/etc/ssh/sshd_config.d/50-slipway.conf");
        assert!(wf[0]["content"].as_str().unwrap().contains("PermitRootLogin prohibit-password\n"));
        assert_eq!(wf[1], json!({ "path": "/etc/motd", "content": "hello\n", "permissions": "0644" }));
        assert_eq!(
            wf[2],
            json!({ "path": "/home/admin/notes", "content": "x", "permissions": "0600", "owner": "admin:admin", "defer": true })
        );
        assert_eq!(wf[3]["path"], "/var/lib/cloud/scripts/per-boot/03-tick-boot");
        assert_eq!(wf[3]["permissions"], "0755");
        let script = wf[3]["content"].as_str().unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(script.contains("timeout 300 /bin/sh -c 'date >> /var/log/boots'\n"), "{script}");
        assert_eq!(
            u["runcmd"],
            json!([
                ["timeout", "300", "echo", "it's me"],
                "timeout 60 /bin/sh -c 'test -e /etc/motd' || { exit 1; }",
                "n=1; until timeout 300 /usr/bin/true; do if [ \"$n\" -ge 2 ]; then exit 1; fi; n=$((n+1)); sleep 5; done",
            ])
        );
        assert!(seed.meta_data.starts_with("instance-id: \"slipway-"), "{}", seed.meta_data);
        assert!(seed.meta_data.ends_with("local-hostname: \"web-s1\"\n"), "{}", seed.meta_data);
        let n: Value = serde_json::from_str(seed.network_config.as_deref().unwrap()).unwrap();
        assert_eq!(
            n,
            json!({ "version": 2, "ethernets": { "en*": { "match": { "name": "en*" }, "dhcp4": true, "dhcp6": true } } })
        );
    }

    #[test]
    fn machine_overrides_and_instance_ids() {
        let a = parse(&full(), "t").unwrap();
        let f = facts(&[("serial", "S1"), ("mac", "52:54:00:00:00:02")]);
        let seed = export(&a, &f, None).unwrap();
        let u = user_data(&seed);
        assert_eq!(u["hostname"], "db-1");
        assert_eq!(u["timezone"], "America/New_York");
        let n: Value = serde_json::from_str(seed.network_config.as_deref().unwrap()).unwrap();
        assert_eq!(
            n["ethernets"]["mac-525400000002"],
            json!({
                "match": { "macaddress": "52:54:00:00:00:02" },
                "addresses": ["192.0.2.10/24", "2001:db8::10/64"],
                "routes": [{ "to": "0.0.0.0/0", "via": "192.0.2.1" }],
                "nameservers": { "addresses": ["192.0.2.53"], "search": ["example.com"] },
                "mtu": 1400,
            })
        );
        // The same answer and machine give the same ID; another machine another.
        assert_eq!(export(&a, &f, None).unwrap().meta_data, seed.meta_data);
        assert_ne!(export(&a, &facts(&[("serial", "S2")]), None).unwrap().meta_data, seed.meta_data);
        let given = export(&a, &f, Some("i-123")).unwrap();
        assert!(given.meta_data.starts_with("instance-id: \"i-123\"\n"));
        assert!(export(&a, &f, Some("a b")).is_err());
    }

    #[test]
    fn no_interfaces_or_renderer_none_means_no_network_config() {
        let a = parse("version = 1\n", "t").unwrap();
        let seed = export(&a, &Facts::default(), None).unwrap();
        assert_eq!(seed.network_config, None);
        assert_eq!(user_data(&seed), json!({}));
        assert!(!seed.meta_data.contains("local-hostname"));
        let a = parse(
            "version = 1\n[network]\nrenderer = \"none\"\n[[network.interfaces]]\nmatch = { name = \"eth0\" }\n",
            "t",
        )
        .unwrap();
        assert_eq!(export(&a, &Facts::default(), None).unwrap().network_config, None);
    }

    #[test]
    fn what_a_seed_cannot_carry_is_refused_with_the_reason() {
        let text = "version = 1\n[computer]\nmachine_id = \"specialize\"\n[ssh]\nhost_keys = \"specialize\"\n[domain]\nrealm = \"AD.EXAMPLE.COM\"\npassword = { file = \"/run/pw\" }\n\
            [[groups]]\nname = \"g\"\ngid = 1234\n[[users]]\nname = \"a\"\npassword_hash = { credential = \"pw\" }\n\
            [[files]]\npath = \"/x\"\nsource = \"https://example.com/x\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
            [[commands]]\nname = \"c\"\nrun = [\"true\"]\nsecret_env = { T = { env = \"T\" } }\n";
        let a = parse(text, "t").unwrap();
        let e = format!("{:#}", export(&a, &Facts::default(), None).unwrap_err());
        for key in [
            "computer.machine_id",
            "ssh.host_keys",
            "domain:",
            "groups[0].gid",
            "users[0].password_hash",
            "files[0].source",
            "commands[0].secret_env",
        ] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
        assert!(e.contains("plain text"), "{e}");
        assert!(e.contains("no credential channel"), "{e}");
    }

    #[test]
    fn file_and_env_references_are_read_at_export() {
        let t = tempfile::tempdir().unwrap();
        let pw = t.path().join("pw");
        std::fs::write(&pw, format!("{HASH}\n")).unwrap();
        let a = parse(
            &format!("version = 1\n[[users]]\nname = \"a\"\npassword_hash = {{ file = \"{}\" }}\n", pw.display()),
            "t",
        )
        .unwrap();
        let u = user_data(&export(&a, &Facts::default(), None).unwrap());
        assert_eq!(u["users"][0]["hashed_passwd"], HASH);
        std::fs::write(&pw, "hunter2\n").unwrap();
        let e = format!("{:#}", export(&a, &Facts::default(), None).unwrap_err());
        assert!(e.contains("plain-text password") && !e.contains("hunter2"), "{e}");
        // A file:// source is read, checked and carried inline.
        let data = t.path().join("blob");
        std::fs::write(&data, [0u8, 159, 146, 150]).unwrap();
        let sum = hex(&sha2::Sha256::digest([0u8, 159, 146, 150]));
        let a = parse(
            &format!(
                "version = 1\n[[files]]\npath = \"/b\"\nsource = \"file://{}\"\nsha256 = \"{sum}\"\n",
                data.display()
            ),
            "t",
        )
        .unwrap();
        let u = user_data(&export(&a, &Facts::default(), None).unwrap());
        assert_eq!(
            u["write_files"][0],
            json!({ "path": "/b", "encoding": "b64", "content": "AJ+Slg==", "permissions": "0644" })
        );
        std::fs::write(&data, "changed").unwrap();
        assert!(format!("{:#}", export(&a, &Facts::default(), None).unwrap_err()).contains("SHA-256"));
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn seeds_are_written_atomically_and_replace_old_ones() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("seed");
        let a = parse(&full(), "t").unwrap();
        let seed = export(&a, &facts(&[("serial", "S1")]), None).unwrap();
        let files = write_seed(&seed, &dir).unwrap();
        assert_eq!(files, [dir.join("user-data"), dir.join("meta-data"), dir.join("network-config")]);
        assert_eq!(std::fs::read_to_string(dir.join("user-data")).unwrap(), seed.user_data);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("user-data")).unwrap().permissions().mode() & 0o777, 0o600);
        let bare = export(&parse("version = 1\n", "t").unwrap(), &Facts::default(), None).unwrap();
        assert_eq!(write_seed(&bare, &dir).unwrap().len(), 2);
        assert!(!dir.join("network-config").exists());
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["meta-data", "user-data"]);
    }

    /// The seed checked by cloud-init itself (scripts/cloud-init-schema.sh).
    /// Skipped when cloud-init cannot be set up here (exit 77), except in CI.
    #[test]
    fn cloud_init_accepts_the_seed() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let script = repo.join("scripts/cloud-init-schema.sh");
        let t = tempfile::tempdir().unwrap();
        let a = parse(&full(), "t").unwrap();
        let mut files = Vec::new();
        for (i, f) in [facts(&[("serial", "S1")]), facts(&[("mac", "52:54:00:00:00:02")])].iter().enumerate() {
            files.extend(write_seed(&export(&a, f, None).unwrap(), &t.path().join(i.to_string())).unwrap());
        }
        let out = std::process::Command::new("bash").arg(&script).args(&files).output().unwrap();
        let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.code() == Some(77) && std::env::var_os("CI").is_none() {
            eprintln!("skipped: cloud-init is not available here:\n{log}");
            return;
        }
        assert!(out.status.success(), "cloud-init refused the seed:\n{log}");
        assert_eq!(log.matches("Valid cloud-config").count(), 2, "{log}");
    }
}
