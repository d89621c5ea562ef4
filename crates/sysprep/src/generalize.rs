//! Generalize: remove a root's machine identity so that every clone made from
//! it becomes a machine of its own at first boot.
//!
//! The work is a list of named [`Operation`]s (the CLI contract, like
//! virt-sysprep's `--operations`). A run first *plans* every selected
//! operation against the root as it is (what each removes, rewrites or
//! creates, and how many bytes that frees), then executes the plan unless it
//! is a dry run. A dry run therefore reports exactly what a real run does.
//!
//! Beside the operations, every run computes [`Finding`]s: identity that
//! generalize cannot (or was told not to) remove, such as a domain keytab or
//! encrypted homes, each with advice. They are reported, never silently kept.
//!
//! Every access inside the root goes through [`RootDir`], which never follows
//! a symlink.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::rootdir::{Found, Perm, Removed, RootDir};

/// One named generalize operation.
pub struct Operation {
    /// The name used in `--ops` (stable; part of the CLI contract).
    pub name: &'static str,
    /// One line for `--help` and the documentation.
    pub summary: &'static str,
    /// Whether the operation runs when `--ops` is not given.
    pub default: bool,
    plan: PlanFn,
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("summary", &self.summary)
            .field("default", &self.default)
            .finish()
    }
}

type PlanFn = fn(&Ctx, &mut OpPlan) -> Result<()>;

const fn op(name: &'static str, default: bool, summary: &'static str, plan: PlanFn) -> Operation {
    Operation { name, summary, default, plan }
}

static OPERATIONS: [Operation; 22] = [
    op("machine-id", true, "write \"uninitialized\" to /etc/machine-id; remove the D-Bus copy", plan_machine_id),
    op("ssh-hostkeys", true, "remove SSH host keys; make sure new ones are made at first boot", plan_ssh_hostkeys),
    op("random-seed", true, "remove random seeds (also the ESP's) and credential.secret", plan_random_seed),
    op("hostname", true, "remove /etc/hostname, the 127.0.1.1 host line and PRETTY_HOSTNAME", plan_hostname),
    op("net-nmconn", true, "remove MAC-bound NetworkManager profiles; HWADDR from ifcfg files", plan_net_nmconn),
    op("udev-persistent-net", true, "remove /etc/udev/rules.d/70-persistent-*.rules", plan_udev_persistent_net),
    op("dhcp-client-state", true, "remove DHCP client leases and DUIDs", plan_dhcp_client_state),
    op("cloud-init", true, "remove cloud-init's instance state and logs (keeps seed, scripts)", plan_cloud_init),
    op("machine-state", true, "remove timer stamps, backlight/rfkill state, NetworkManager's key", plan_machine_state),
    op("lvm-system-devices", true, "remove /etc/lvm/devices/system.devices and its backups", plan_lvm_system_devices),
    op("blkid-tab", true, "remove blkid.tab caches", plan_blkid_tab),
    op("rpm-db", true, "remove the rpm database's __db.* files", plan_rpm_db),
    op("passwd-backups", true, "remove /etc/passwd-, shadow-, group-, gshadow-, subuid-, subgid-", plan_passwd_backups),
    op("logfiles", true, "empty live logs, remove rotated ones (keeps /var/log/slipway)", plan_logfiles),
    op("crash-data", true, "remove crash dumps and core files", plan_crash_data),
    op("mail-spool", true, "remove local mail in /var/spool/mail and /var/mail", plan_mail_spool),
    op("bash-history", true, "remove shell and tool histories of root and /home users", plan_bash_history),
    op("tmp-files", true, "empty /tmp and /var/tmp", plan_tmp_files),
    op(
        "package-manager-cache",
        true,
        "remove apt, dnf, yum and zypp caches (keeps apt's lists)",
        plan_package_manager_cache,
    ),
    op("kerberos-keytab", false, "remove /etc/krb5.keytab (this machine's domain account key)", plan_kerberos_keytab),
    op("ssh-userdir", false, "remove .ssh of root and /home users", plan_ssh_userdir),
    op(
        "selinux-relabel",
        true,
        "on SELinux roots, relabel at first boot when files were written",
        plan_selinux_relabel,
    ),
];

/// Every operation, in the order they run.
pub fn operations() -> &'static [Operation] {
    &OPERATIONS
}

fn find_op(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

fn known_names() -> String {
    OPERATIONS.iter().map(|o| o.name).collect::<Vec<_>>().join(", ")
}

/// Parses an `--ops` list (see `docs/generalize.md`): comma-separated
/// `defaults`, `all`, `none`, `NAME`, `+NAME`, `-NAME`, applied left to
/// right. `None` or `""` is `defaults`. A list of only `+`/`-` items starts
/// from the defaults; any other list starts empty. An unknown name is an
/// error that lists the known ones. The result is in run order.
pub fn select(spec: Option<&str>) -> Result<Vec<&'static Operation>> {
    let spec = spec.map(str::trim).unwrap_or("");
    let items: Vec<&str> = spec.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.is_empty() {
        return Ok(OPERATIONS.iter().filter(|o| o.default).collect());
    }
    let unknown: Vec<&str> = items
        .iter()
        .map(|i| i.trim_start_matches(['+', '-']))
        .filter(|n| !matches!(*n, "defaults" | "all" | "none") && find_op(n).is_none())
        .collect();
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|n| format!("{n:?}")).collect();
        bail!(
            "unknown generalize operation{} {} in --ops; known operations: {} (and the words defaults, all, none)",
            if unknown.len() > 1 { "s" } else { "" },
            quoted.join(", "),
            known_names()
        );
    }
    let mut on = vec![false; OPERATIONS.len()];
    if items.iter().all(|i| i.starts_with(['+', '-'])) {
        for (i, o) in OPERATIONS.iter().enumerate() {
            on[i] = o.default;
        }
    }
    for item in items {
        let (add, name) = match item.strip_prefix('-') {
            Some(n) => (false, n),
            None => (true, item.strip_prefix('+').unwrap_or(item)),
        };
        match name {
            "none" => on.iter_mut().for_each(|b| *b = false),
            "all" => on.iter_mut().for_each(|b| *b = add),
            "defaults" => {
                for (i, o) in OPERATIONS.iter().enumerate() {
                    if o.default {
                        on[i] = add;
                    }
                }
            }
            n => {
                let i = OPERATIONS.iter().position(|o| o.name == n).expect("checked above");
                on[i] = add;
            }
        }
    }
    Ok(OPERATIONS.iter().zip(on).filter(|(_, b)| *b).map(|(o, _)| o).collect())
}

/// How to run [`generalize`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Allow generalizing the running system's own root.
    pub force: bool,
}

/// What a generalize run did (or, in a dry run, would do). This is the
/// `slipway generalize --json` document (see `docs/generalize.md`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub root: String,
    pub dry_run: bool,
    pub operations: Vec<OpReport>,
    pub findings: Vec<Finding>,
    pub removed_entries: u64,
    pub removed_bytes: u64,
}

/// What one operation did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpReport {
    pub name: String,
    /// Paths removed (absolute inside the root, sorted). A directory is
    /// listed once; its contents count in `entries` and `bytes`.
    pub removed: Vec<String>,
    /// Files and symlinks created or rewritten (emptied logs included), sorted.
    pub written: Vec<String>,
    /// Files, symlinks and directories removed.
    pub entries: u64,
    /// Bytes freed: removed regular files plus the old size of emptied logs.
    pub bytes: u64,
    pub note: Option<String>,
}

/// Identity that this run leaves in the root, with what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub path: String,
    pub problem: String,
    pub advice: String,
}

/// Generalizes the root at `root` with `ops` (run in [`operations`] order).
pub fn generalize(root: &Path, ops: &[&'static Operation], opts: &Options) -> Result<Report> {
    if !opts.dry_run && !opts.force && crate::rootdir::is_running_system(root).unwrap_or(false) {
        bail!(
            "{} is the running system's root; generalizing it would remove this machine's identity while it \
             runs. Pass --force if that is what you want (then shut it down and capture it), or --dry-run to \
             see what would be removed",
            root.display()
        );
    }
    let rd = RootDir::open(root).with_context(|| format!("opening root {}", root.display()))?;
    if !rd.exists("etc/os-release")? && !rd.exists("usr/lib/os-release")? {
        bail!(
            "{} has neither etc/os-release nor usr/lib/os-release, so it does not look like an operating \
             system's root; give the directory where the image's root filesystem is mounted",
            root.display()
        );
    }
    let mut selected: Vec<&'static Operation> = Vec::new();
    for o in OPERATIONS.iter() {
        if ops.iter().any(|s| s.name == o.name) {
            selected.push(o);
        }
    }
    let ctx = Ctx::new(&rd, selected.iter().map(|o| o.name).collect())?;

    // Plan every operation against the root as it is now.
    let mut plans: Vec<(&'static Operation, OpPlan)> = Vec::new();
    let mut claimed = Claims::default();
    for o in &selected {
        let mut p = OpPlan::default();
        (o.plan)(&ctx, &mut p).with_context(|| format!("planning generalize operation {}", o.name))?;
        p.actions.retain(|a| claimed.take(a));
        if p.actions.iter().any(|a| !matches!(a, Action::Remove { .. })) {
            ctx.wrote.set(true);
        }
        plans.push((o, p));
    }
    let mut findings = global_findings(&ctx)?;

    // Execute (or only report).
    let mut report = Report {
        root: root.display().to_string(),
        dry_run: opts.dry_run,
        operations: Vec::new(),
        findings: Vec::new(),
        removed_entries: 0,
        removed_bytes: 0,
    };
    for (o, p) in plans {
        let mut r = OpReport {
            name: o.name.to_string(),
            removed: Vec::new(),
            written: Vec::new(),
            entries: 0,
            bytes: 0,
            note: None,
        };
        for a in &p.actions {
            let done = if opts.dry_run {
                a.planned()
            } else {
                a.execute(&rd).with_context(|| format!("generalize operation {}", o.name))?
            };
            r.entries += done.entries;
            r.bytes += done.bytes;
            match a {
                Action::Remove { rel, .. } => r.removed.push(abs(rel)),
                Action::Write { rel, .. } | Action::Link { rel, .. } => r.written.push(abs(rel)),
            }
        }
        r.removed.sort();
        r.written.sort();
        r.note = if !p.notes.is_empty() {
            Some(p.notes.join("; "))
        } else if p.actions.is_empty() {
            Some("nothing to do".to_string())
        } else {
            None
        };
        report.removed_entries += r.entries;
        report.removed_bytes += r.bytes;
        report.operations.push(r);
        findings.extend(p.findings);
    }
    findings.extend(ctx.walk_findings.into_inner());
    report.findings = findings;
    if !opts.dry_run {
        rd.sync()?;
    }
    Ok(report)
}

fn abs(rel: &str) -> String {
    format!("/{}", rel.trim_start_matches('/'))
}

// ---------------------------------------------------------------------------
// Plans

/// One change to the root.
#[derive(Debug)]
enum Action {
    /// Remove whatever is at `rel` (a directory with its contents).
    Remove { rel: String, size: Removed },
    /// Write `data` to `rel`; `keep` keeps the mode and owner of the file
    /// there. `freed` is the size of what it replaces, when that is an
    /// emptied log (counted as bytes freed).
    Write { rel: String, data: Vec<u8>, perm: Perm, keep: bool, freed: u64 },
    /// Make `rel` a symlink to `target`.
    Link { rel: String, target: String },
}

impl Action {
    fn rel(&self) -> &str {
        match self {
            Action::Remove { rel, .. } | Action::Write { rel, .. } | Action::Link { rel, .. } => rel,
        }
    }

    fn planned(&self) -> Removed {
        match self {
            Action::Remove { size, .. } => *size,
            Action::Write { freed, .. } => Removed { entries: 0, bytes: *freed },
            Action::Link { .. } => Removed::default(),
        }
    }

    fn execute(&self, rd: &RootDir) -> Result<Removed> {
        match self {
            Action::Remove { rel, .. } => rd.remove(rel),
            Action::Write { rel, data, perm, keep, freed } => {
                if *keep {
                    rd.write_keeping(rel, data, *perm)?;
                } else {
                    rd.write(rel, data, *perm)?;
                }
                Ok(Removed { entries: 0, bytes: *freed })
            }
            Action::Link { rel, target } => {
                rd.symlink(rel, target)?;
                Ok(Removed::default())
            }
        }
    }
}

/// Paths already claimed by an earlier operation of the same run: a later
/// operation does not remove or rewrite them again (so that a dry run and a
/// real run report the same, and nothing counts twice).
#[derive(Default)]
struct Claims {
    paths: BTreeSet<String>,
    removed_dirs: BTreeSet<String>,
}

impl Claims {
    /// Claims the path of `a`; false when it (or a directory above it) was
    /// already claimed.
    fn take(&mut self, a: &Action) -> bool {
        let rel = a.rel();
        let mut prefix = rel;
        while let Some((up, _)) = prefix.rsplit_once('/') {
            if self.removed_dirs.contains(up) {
                return false;
            }
            prefix = up;
        }
        if !self.paths.insert(rel.to_string()) {
            return false;
        }
        if matches!(a, Action::Remove { .. }) {
            self.removed_dirs.insert(rel.to_string());
        }
        true
    }
}

/// What one operation will do.
#[derive(Default, Debug)]
struct OpPlan {
    actions: Vec<Action>,
    notes: Vec<String>,
    findings: Vec<Finding>,
}

impl OpPlan {
    /// Removes `rel` if anything is there (not looking through symlinks).
    fn remove(&mut self, ctx: &Ctx, rel: &str) -> Result<()> {
        if let At::Here(_) = ctx.at(rel)? {
            let size = measure(ctx.rd, rel)?;
            if !self.actions.iter().any(|a| a.rel() == rel) {
                self.actions.push(Action::Remove { rel: rel.to_string(), size });
            }
        }
        Ok(())
    }

    /// Removes every entry of the directory `dir` for which `pick` is true.
    fn remove_children(&mut self, ctx: &Ctx, dir: &str, pick: impl Fn(&str) -> bool) -> Result<()> {
        for name in ctx.children(dir, true)? {
            if pick(&name) {
                self.remove(ctx, &format!("{dir}/{name}"))?;
            }
        }
        Ok(())
    }

    fn write(&mut self, rel: &str, data: Vec<u8>, perm: Perm, keep: bool) {
        self.actions.push(Action::Write { rel: rel.to_string(), data, perm, keep, freed: 0 });
    }

    /// Empties the log file `rel` of `size` bytes, keeping its mode and owner.
    fn truncate(&mut self, rel: &str, size: u64) {
        self.actions.push(Action::Write {
            rel: rel.to_string(),
            data: Vec::new(),
            perm: Perm::root(0o640),
            keep: true,
            freed: size,
        });
    }

    fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    fn finding(&mut self, path: &str, problem: impl Into<String>, advice: impl Into<String>) {
        self.findings.push(Finding { path: abs(path), problem: problem.into(), advice: advice.into() });
    }
}

/// Where a path stands, looking at every component without following one.
enum At {
    Missing,
    Here(Found),
    /// A component above the path is a symlink.
    Behind {
        link: String,
        target: String,
    },
}

/// What every operation can see.
struct Ctx<'a> {
    rd: &'a RootDir,
    selected: Vec<&'static str>,
    /// /etc/machine-id before the run, trimmed.
    machine_id: Option<String>,
    /// Whether an operation planned so far writes something.
    wrote: Cell<bool>,
    /// Findings about what listing directories left alone: symlinked
    /// directories, names that are not UTF-8.
    walk_findings: RefCell<Vec<Finding>>,
}

impl<'a> Ctx<'a> {
    fn new(rd: &'a RootDir, selected: Vec<&'static str>) -> Result<Ctx<'a>> {
        let machine_id = match rd.inspect("etc/machine-id")? {
            Found::File { .. } => rd.read("etc/machine-id")?.map(|b| String::from_utf8_lossy(&b).trim().to_string()),
            _ => None,
        };
        Ok(Ctx { rd, selected, machine_id, wrote: Cell::new(false), walk_findings: RefCell::new(Vec::new()) })
    }

    fn selected(&self, name: &str) -> bool {
        self.selected.contains(&name)
    }

    fn at(&self, rel: &str) -> Result<At> {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut prefix = String::new();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            match self.rd.inspect(&prefix)? {
                Found::Dir => {}
                Found::Symlink { target } => {
                    return Ok(At::Behind { link: prefix, target: String::from_utf8_lossy(&target).into_owned() })
                }
                _ => return Ok(At::Missing),
            }
        }
        Ok(match self.rd.inspect(rel)? {
            Found::Absent => At::Missing,
            f => At::Here(f),
        })
    }

    /// What is at `rel`; `Absent` when it is missing or behind a symlink.
    fn found(&self, rel: &str) -> Result<Found> {
        Ok(match self.at(rel)? {
            At::Here(f) => f,
            _ => Found::Absent,
        })
    }

    fn exists(&self, rel: &str) -> Result<bool> {
        Ok(self.found(rel)? != Found::Absent)
    }

    fn any_exists(&self, rels: &[&str]) -> Result<bool> {
        for r in rels {
            if self.exists(r)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn is_file(&self, rel: &str) -> Result<bool> {
        Ok(matches!(self.found(rel)?, Found::File { .. }))
    }

    /// The regular file at `rel`, or `None` (missing, behind a symlink, not
    /// a regular file).
    fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        if !self.is_file(rel)? {
            return Ok(None);
        }
        self.rd.read(rel)
    }

    /// UTF-8 names in the directory `dir`. When `dir` (or a directory above
    /// it) is a symlink and `loud`, that is recorded as a finding: it is
    /// never followed. Names that are not UTF-8 are recorded as findings.
    fn children(&self, dir: &str, loud: bool) -> Result<Vec<String>> {
        let (link, target) = match self.at(dir)? {
            At::Missing => return Ok(Vec::new()),
            At::Here(Found::Dir) => {
                let mut out = Vec::new();
                for n in self.rd.list(dir)? {
                    match n.into_string() {
                        Ok(s) => out.push(s),
                        Err(n) => self.walk_finding(Finding {
                            path: abs(&format!("{dir}/{}", n.to_string_lossy())),
                            problem: "its name is not UTF-8, so generalize left it alone".to_string(),
                            advice: "check it and remove it by hand if it holds this machine's state".to_string(),
                        }),
                    }
                }
                return Ok(out);
            }
            At::Here(Found::Symlink { target }) => (dir.to_string(), String::from_utf8_lossy(&target).into_owned()),
            At::Here(_) => return Ok(Vec::new()),
            At::Behind { link, target } => (link, target),
        };
        if loud {
            self.walk_finding(Finding {
                path: abs(&link),
                problem: format!(
                    "is a symlink (to {target}); generalize never follows symlinks inside a root, so it did not \
                     look at {} or anything else below it",
                    abs(dir)
                ),
                advice: "check what it points to and clean that by hand, or generalize the root where that \
                         directory really is"
                    .to_string(),
            });
        }
        Ok(Vec::new())
    }

    /// Records a finding of a directory walk, once per path.
    fn walk_finding(&self, f: Finding) {
        let mut all = self.walk_findings.borrow_mut();
        if !all.iter().any(|x| x.path == f.path) {
            all.push(f);
        }
    }

    /// Home directories: /root and every directory in /home.
    fn homes(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if self.found("root")? == Found::Dir {
            out.push("root".to_string());
        }
        for n in self.children("home", true)? {
            let rel = format!("home/{n}");
            if self.found(&rel)? == Found::Dir {
                out.push(rel);
            }
        }
        Ok(out)
    }
}

/// What removing `rel` takes away, counted the way [`RootDir::remove`] does.
fn measure(rd: &RootDir, rel: &str) -> Result<Removed> {
    Ok(match rd.inspect(rel)? {
        Found::Absent => Removed::default(),
        Found::File { size, .. } => Removed { entries: 1, bytes: size },
        Found::Dir => {
            let mut r = Removed { entries: 1, bytes: 0 };
            for n in rd.list(rel)? {
                match n.to_str() {
                    Some(s) => r += measure(rd, &format!("{rel}/{s}"))?,
                    None => r.entries += 1,
                }
            }
            r
        }
        Found::Symlink { .. } | Found::Other => Removed { entries: 1, bytes: 0 },
    })
}

// ---------------------------------------------------------------------------
// Text helpers

/// Lines of `data`, each with its line end.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n')
}

/// The `key` of a `key=value` line (trimmed), if the line is one.
fn key_of(line: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(line).ok()?.trim_start();
    if s.starts_with('#') || s.starts_with(';') {
        return None;
    }
    let (k, _) = s.split_once('=')?;
    Some(k.trim().strip_prefix("export ").unwrap_or(k.trim()).trim())
}

/// `data` without the lines for which `drop` is true; `None` when nothing
/// was dropped.
fn without_lines(data: &[u8], drop: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut dropped = false;
    for l in lines(data) {
        if drop(l) {
            dropped = true;
        } else {
            out.extend_from_slice(l);
        }
    }
    dropped.then_some(out)
}

fn first_word(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let rest = &line[start..];
    let end = rest.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(rest.len());
    &rest[..end]
}

/// Whether an NetworkManager keyfile names a MAC address to bind to.
fn nm_binds_mac(data: &[u8]) -> bool {
    lines(data).any(|l| {
        let Ok(s) = std::str::from_utf8(l) else { return false };
        matches!(s.trim().split_once('='), Some((k, v)) if k.trim() == "mac-address" && !v.trim().is_empty())
    })
}

fn is_machine_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---------------------------------------------------------------------------
// Operations

const MACHINE_ID: &[u8] = b"uninitialized\n";

fn plan_machine_id(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    let rd = ctx.rd;
    let done = match rd.inspect("etc/machine-id")? {
        Found::File { .. } => {
            let m = rd.meta("etc/machine-id")?;
            ctx.read("etc/machine-id")?.as_deref() == Some(MACHINE_ID)
                && m.mode == 0o444
                && (!rd.sets_owner() || (m.uid, m.gid) == (0, 0))
        }
        _ => false,
    };
    if done {
        p.note("/etc/machine-id is already \"uninitialized\"");
    } else {
        p.write("etc/machine-id", MACHINE_ID.to_vec(), Perm::root(0o444), false);
    }
    match ctx.found("var/lib/dbus/machine-id")? {
        Found::File { .. } => p.remove(ctx, "var/lib/dbus/machine-id")?,
        Found::Symlink { target } => {
            p.note(format!("kept /var/lib/dbus/machine-id, a symlink to {}", String::from_utf8_lossy(&target)))
        }
        _ => {}
    }
    let Some(id) = ctx.machine_id.as_deref().filter(|id| is_machine_id(id)) else { return Ok(()) };
    if let Some(token) = ctx.read("etc/kernel/entry-token")? {
        if String::from_utf8_lossy(&token).trim() == id {
            p.finding(
                "etc/kernel/entry-token",
                format!(
                    "holds this machine's ID ({id}); boot entries and the kernel directory on the ESP are named by it"
                ),
                "write the image's IMAGE_ID (from os-release) to /etc/kernel/entry-token and reinstall the kernels \
                 (kernel-install add) before capturing, so clones do not carry boot entries named after this machine",
            );
        }
    }
    for dir in ["boot/loader/entries", "boot/efi/loader/entries", "efi/loader/entries"] {
        let named: Vec<String> = ctx.children(dir, false)?.into_iter().filter(|n| n.starts_with(id)).collect();
        if !named.is_empty() {
            p.finding(
                dir,
                format!(
                    "has boot entries named by this machine's ID ({}); they still boot, but clones name their new \
                     kernels' entries by their own IDs and never clean these up",
                    named.join(", ")
                ),
                "set /etc/kernel/entry-token to the image's IMAGE_ID and reinstall the kernels (kernel-install \
                 add) before capturing",
            );
        }
    }
    Ok(())
}

const SSH_UNIT: &str = "etc/systemd/system/slipway-ssh-hostkeys.service";
const SSH_UNIT_LINK: &str = "etc/systemd/system/multi-user.target.wants/slipway-ssh-hostkeys.service";
const SSH_UNIT_TARGET: &str = "../slipway-ssh-hostkeys.service";

fn ssh_unit(keygen: &str) -> String {
    format!(
        "# Written by slipway generalize: makes this machine's SSH host keys at first boot.\n\
         [Unit]\n\
         Description=Make SSH host keys for this machine\n\
         Documentation=man:ssh-keygen(1)\n\
         DefaultDependencies=no\n\
         After=local-fs.target\n\
         Before=ssh.service sshd.service ssh.socket sshd.socket\n\
         ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={keygen} -A\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

fn has_systemd(ctx: &Ctx) -> Result<bool> {
    ctx.any_exists(&["usr/lib/systemd/systemd", "lib/systemd/systemd"])
}

fn host_keys(ctx: &Ctx) -> Result<Vec<String>> {
    Ok(ctx.children("etc/ssh", true)?.into_iter().filter(|n| n.starts_with("ssh_host_")).collect())
}

fn plan_ssh_hostkeys(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for n in host_keys(ctx)? {
        p.remove(ctx, &format!("etc/ssh/{n}"))?;
    }
    if !ctx.any_exists(&["usr/sbin/sshd", "sbin/sshd", "usr/bin/sshd"])? {
        p.note("no sshd in the root, so nothing needs new host keys");
        return Ok(());
    }
    let units = ["usr/lib/systemd/system", "lib/systemd/system"];
    for dir in units {
        for unit in ["sshd-keygen@.service", "sshd-keygen.target", "sshdgenkeys.service"] {
            if ctx.exists(&format!("{dir}/{unit}"))? {
                p.note(format!("new keys are made at first boot by the root's own {unit}"));
                return Ok(());
            }
        }
    }
    if !has_systemd(ctx)? {
        p.finding(
            "etc/ssh",
            "sshd is installed but the root has no systemd, so nothing makes new host keys at first boot",
            "run `ssh-keygen -A` at first boot (an init script, or a [[commands]] entry of the answer file), or \
             sshd will not start on the clones",
        );
        return Ok(());
    }
    let mut keygen = None;
    for k in ["usr/bin/ssh-keygen", "bin/ssh-keygen"] {
        if keygen.is_none() && ctx.exists(k)? {
            keygen = Some(abs(k));
        }
    }
    let Some(keygen) = keygen else {
        p.finding(
            "etc/ssh",
            "sshd is installed but ssh-keygen is not, so nothing can make new host keys at first boot",
            "install openssh's ssh-keygen in the image (Debian: openssh-client) so generalize can set up key \
             generation",
        );
        return Ok(());
    };
    let unit = ssh_unit(&keygen);
    if ctx.read(SSH_UNIT)?.as_deref() != Some(unit.as_bytes()) {
        p.write(SSH_UNIT, unit.into_bytes(), Perm::root(0o644), false);
    }
    let linked = matches!(ctx.found(SSH_UNIT_LINK)?, Found::Symlink { target } if target == SSH_UNIT_TARGET.as_bytes());
    if !linked {
        p.actions.push(Action::Link { rel: SSH_UNIT_LINK.to_string(), target: SSH_UNIT_TARGET.to_string() });
    }
    p.note("new keys are made at first boot by slipway-ssh-hostkeys.service");
    Ok(())
}

fn plan_random_seed(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove(ctx, "var/lib/systemd/random-seed")?;
    p.remove(ctx, "var/lib/systemd/credential.secret")?;
    for esp in ["boot/efi", "efi", "boot"] {
        p.remove(ctx, &format!("{esp}/loader/random-seed"))?;
    }
    for esp in ["boot/efi", "efi"] {
        if ctx.found(esp)? == Found::Dir && ctx.children(esp, false)?.is_empty() {
            p.note(format!(
                "/{esp} is empty (the ESP is not mounted there?), so its loader/random-seed was not checked"
            ));
        }
    }
    Ok(())
}

fn plan_hostname(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove(ctx, "etc/hostname")?;
    if let Some(hosts) = ctx.read("etc/hosts")? {
        if let Some(new) = without_lines(&hosts, |l| first_word(l) == b"127.0.1.1") {
            p.write("etc/hosts", new, Perm::root(0o644), true);
        }
    }
    if let Some(info) = ctx.read("etc/machine-info")? {
        if let Some(new) = without_lines(&info, |l| key_of(l) == Some("PRETTY_HOSTNAME")) {
            if new.iter().all(u8::is_ascii_whitespace) {
                p.remove(ctx, "etc/machine-info")?;
            } else {
                p.write("etc/machine-info", new, Perm::root(0o644), true);
            }
        }
    }
    Ok(())
}

const NM_CONNECTIONS: &str = "etc/NetworkManager/system-connections";
const IFCFG_DIR: &str = "etc/sysconfig/network-scripts";

/// NetworkManager keyfiles bound to a MAC address.
fn nm_mac_keyfiles(ctx: &Ctx) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for n in ctx.children(NM_CONNECTIONS, true)? {
        let rel = format!("{NM_CONNECTIONS}/{n}");
        if let Some(data) = ctx.read(&rel)? {
            if nm_binds_mac(&data) {
                out.push(rel);
            }
        }
    }
    Ok(out)
}

fn is_hwaddr_line(l: &[u8]) -> bool {
    matches!(key_of(l), Some("HWADDR" | "MACADDR"))
}

/// ifcfg files naming a MAC address, with their contents without those lines.
fn ifcfg_hwaddr(ctx: &Ctx) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for n in ctx.children(IFCFG_DIR, true)? {
        if !n.starts_with("ifcfg-") {
            continue;
        }
        let rel = format!("{IFCFG_DIR}/{n}");
        if let Some(data) = ctx.read(&rel)? {
            if let Some(new) = without_lines(&data, is_hwaddr_line) {
                out.push((rel, new));
            }
        }
    }
    Ok(out)
}

fn plan_net_nmconn(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for rel in nm_mac_keyfiles(ctx)? {
        p.remove(ctx, &rel)?;
    }
    for (rel, new) in ifcfg_hwaddr(ctx)? {
        p.write(&rel, new, Perm::root(0o644), true);
    }
    Ok(())
}

fn plan_udev_persistent_net(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    let dir = "etc/udev/rules.d";
    for n in ctx.children(dir, true)? {
        if !(n.starts_with("70-persistent-") && n.ends_with(".rules")) {
            continue;
        }
        let rel = format!("{dir}/{n}");
        match ctx.found(&rel)? {
            Found::File { .. } => p.remove(ctx, &rel)?,
            Found::Symlink { target } => {
                p.note(format!("kept /{rel}, a symlink to {} (a deliberate mask)", String::from_utf8_lossy(&target)))
            }
            _ => {}
        }
    }
    Ok(())
}

fn plan_dhcp_client_state(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for dir in ["var/lib/dhcp", "var/lib/dhclient", "var/lib/dhcpcd", "var/lib/systemd/network"] {
        p.remove_children(ctx, dir, |_| true)?;
    }
    p.remove_children(ctx, "var/lib/NetworkManager", |n| {
        n.ends_with(".lease") || n.ends_with(".leases") || (n.starts_with("dhclient-") && n.ends_with(".conf"))
    })?;
    Ok(())
}

fn plan_cloud_init(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    if ctx.found("var/lib/cloud")? == Found::Dir {
        p.remove_children(ctx, "var/lib/cloud", |n| n != "seed" && n != "scripts")?;
        p.remove(ctx, "var/lib/cloud/scripts/vendor")?;
    }
    p.remove_children(ctx, "var/log", |n| n.starts_with("cloud-init") && n.contains(".log"))?;
    Ok(())
}

fn plan_machine_state(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove_children(ctx, "var/lib/systemd/timers", |n| n.starts_with("stamp-"))?;
    p.remove_children(ctx, "var/lib/systemd/backlight", |_| true)?;
    p.remove_children(ctx, "var/lib/systemd/rfkill", |_| true)?;
    for n in ["secret_key", "seen-bssids", "timestamps"] {
        p.remove(ctx, &format!("var/lib/NetworkManager/{n}"))?;
    }
    Ok(())
}

fn plan_lvm_system_devices(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove(ctx, "etc/lvm/devices/system.devices")?;
    p.remove_children(ctx, "etc/lvm/devices/backup", |n| n.starts_with("system.devices"))
}

fn plan_blkid_tab(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove_children(ctx, "etc", |n| n.starts_with("blkid.tab"))?;
    p.remove_children(ctx, "etc/blkid", |n| n.starts_with("blkid.tab"))
}

fn plan_rpm_db(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove_children(ctx, "var/lib/rpm", |n| n.starts_with("__db."))?;
    p.remove_children(ctx, "usr/lib/sysimage/rpm", |n| n.starts_with("__db."))
}

fn plan_passwd_backups(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for n in ["passwd-", "shadow-", "group-", "gshadow-", "subuid-", "subgid-"] {
        p.remove(ctx, &format!("etc/{n}"))?;
    }
    Ok(())
}

/// Whether a name under /var/log is a rotated (old) log.
fn is_rotated(name: &str) -> bool {
    const OLD: [&str; 9] = [".gz", ".xz", ".bz2", ".zst", ".lz4", ".lzma", ".Z", ".old", ".bak"];
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    OLD.iter().any(|e| name.ends_with(e))
        || name.rsplit_once('.').is_some_and(|(_, t)| digits(t))
        || name.rsplit_once('-').is_some_and(|(_, t)| (8..=10).contains(&t.len()) && digits(t))
}

fn walk_logs(ctx: &Ctx, p: &mut OpPlan, dir: &str) -> Result<()> {
    for name in ctx.children(dir, true)? {
        let rel = format!("{dir}/{name}");
        if rel == "var/log/slipway" || rel == "var/log/journal" {
            continue;
        }
        match ctx.rd.inspect(&rel)? {
            Found::Dir => walk_logs(ctx, p, &rel)?,
            Found::File { .. } if is_rotated(&name) => p.remove(ctx, &rel)?,
            Found::File { size, .. } if size > 0 => p.truncate(&rel, size),
            // Empty files, symlinks, sockets and FIFOs stay as they are.
            _ => {}
        }
    }
    Ok(())
}

fn plan_logfiles(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    walk_logs(ctx, p, "var/log")?;
    p.remove_children(ctx, "var/log/journal", |_| true)?;
    if ctx.exists("var/log/slipway")? {
        p.note("kept /var/log/slipway, the image's servicing history");
    }
    Ok(())
}

fn plan_crash_data(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for dir in
        ["var/crash", "var/lib/systemd/coredump", "var/lib/systemd/pstore", "var/spool/abrt", "var/lib/apport/coredump"]
    {
        p.remove_children(ctx, dir, |_| true)?;
    }
    Ok(())
}

fn plan_mail_spool(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    // One of the two is usually a symlink to the other; it is left as it is.
    for dir in ["var/spool/mail", "var/mail"] {
        for n in ctx.children(dir, false)? {
            p.remove(ctx, &format!("{dir}/{n}"))?;
        }
    }
    Ok(())
}

/// Histories of shells and interactive tools, relative to a home directory.
const HISTORIES: [&str; 15] = [
    ".bash_history",
    ".zsh_history",
    ".zhistory",
    ".history",
    ".sh_history",
    ".python_history",
    ".lesshst",
    ".mysql_history",
    ".psql_history",
    ".sqlite_history",
    ".node_repl_history",
    ".rediscli_history",
    ".viminfo",
    ".wget-hsts",
    ".local/share/fish/fish_history",
];

fn plan_bash_history(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for home in ctx.homes()? {
        for h in HISTORIES {
            let rel = format!("{home}/{h}");
            match ctx.found(&rel)? {
                // A history linked to /dev/null is a deliberate choice.
                Found::Symlink { target } => {
                    p.note(format!("kept /{rel}, a symlink to {}", String::from_utf8_lossy(&target)))
                }
                Found::Absent => {}
                _ => p.remove(ctx, &rel)?,
            }
        }
    }
    Ok(())
}

fn plan_tmp_files(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove_children(ctx, "tmp", |_| true)?;
    p.remove_children(ctx, "var/tmp", |_| true)
}

fn plan_package_manager_cache(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove_children(ctx, "var/cache/apt/archives", |n| n.ends_with(".deb"))?;
    p.remove_children(ctx, "var/cache/apt/archives/partial", |_| true)?;
    p.remove_children(ctx, "var/cache/apt", |n| n.ends_with(".bin"))?;
    for dir in ["var/cache/dnf", "var/cache/libdnf5", "var/cache/yum", "var/cache/zypp"] {
        p.remove_children(ctx, dir, |_| true)?;
    }
    if ctx.found("var/lib/apt/lists")? == Found::Dir {
        p.note("kept /var/lib/apt/lists, so apt can install from the image's package lists before an apt update");
    }
    Ok(())
}

fn plan_kerberos_keytab(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    p.remove(ctx, "etc/krb5.keytab")
}

fn plan_ssh_userdir(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    for home in ctx.homes()? {
        p.remove(ctx, &format!("{home}/.ssh"))?;
    }
    Ok(())
}

/// Whether the root's SELinux configuration enables SELinux.
fn selinux_enabled(ctx: &Ctx) -> Result<bool> {
    let Some(cfg) = ctx.read("etc/selinux/config")? else { return Ok(false) };
    let enabled = lines(&cfg).any(|l| {
        key_of(l) == Some("SELINUX")
            && std::str::from_utf8(l)
                .ok()
                .and_then(|s| s.split_once('='))
                .is_some_and(|(_, v)| matches!(v.trim(), "enforcing" | "permissive"))
    });
    Ok(enabled)
}

fn plan_selinux_relabel(ctx: &Ctx, p: &mut OpPlan) -> Result<()> {
    if !selinux_enabled(ctx)? {
        p.note("SELinux is not enabled in the root");
    } else if !ctx.wrote.get() {
        p.note("no file was written, so no relabel is needed");
    } else if ctx.exists(".autorelabel")? {
        p.note("/.autorelabel is already there");
    } else {
        // Files written here carry no SELinux label; the first boot
        // relabels the whole root (and reboots once).
        p.write(".autorelabel", Vec::new(), Perm::root(0o644), false);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Findings computed whatever operations are selected

fn global_findings(ctx: &Ctx) -> Result<Vec<Finding>> {
    let mut f = OpPlan::default();

    // Identity an unselected operation would have removed.
    if !ctx.selected("machine-id") {
        match ctx.machine_id.as_deref() {
            Some(id) if is_machine_id(id) => f.finding(
                "etc/machine-id",
                format!("holds this machine's ID ({id}); every clone would share it"),
                "add the machine-id operation (--ops +machine-id)",
            ),
            Some("") => f.finding(
                "etc/machine-id",
                "is empty: systemd does not treat an empty machine-id as first boot (machine-id(5)), so \
                 ConditionFirstBoot units and presets will not run on the clones",
                "add the machine-id operation (--ops +machine-id), which writes \"uninitialized\"",
            ),
            _ => {}
        }
    }
    if !ctx.selected("ssh-hostkeys") && !host_keys(ctx)?.is_empty() {
        f.finding(
            "etc/ssh",
            "holds this machine's SSH host keys (ssh_host_*); clones would share SSH host keys",
            "add the ssh-hostkeys operation (--ops +ssh-hostkeys)",
        );
    }
    if !ctx.selected("net-nmconn") {
        for rel in nm_mac_keyfiles(ctx)? {
            f.finding(
                &rel,
                "is a NetworkManager profile bound to this machine's MAC address (mac-address=); it will not \
                 apply on the clones",
                "add the net-nmconn operation (--ops +net-nmconn), or bind the profile to an interface name",
            );
        }
        for (rel, _) in ifcfg_hwaddr(ctx)? {
            f.finding(
                &rel,
                "names this machine's MAC address (HWADDR= or MACADDR=)",
                "add the net-nmconn operation (--ops +net-nmconn)",
            );
        }
    }
    if !ctx.selected("kerberos-keytab") && ctx.exists("etc/krb5.keytab")? {
        f.finding(
            "etc/krb5.keytab",
            "an enrolled domain keytab: every clone would share this machine's domain account",
            "leave the domain before capturing (realm leave / ipa-client-install --uninstall), or add --ops \
             +kerberos-keytab and join at first boot from the answer file ([[commands]] domain join)",
        );
    }

    // Domain enrollment.
    if ctx.exists("etc/ipa/default.conf")? {
        f.finding(
            "etc/ipa/default.conf",
            "this machine is enrolled in FreeIPA; clones would claim its host identity",
            "unenroll before capturing (ipa-client-install --uninstall) and enroll each clone at first boot \
             ([[commands]] in the answer file)",
        );
    }
    let sss_db = "var/lib/sss/db";
    let mut sss_cached = false;
    for n in ctx.children(sss_db, true)? {
        if matches!(ctx.found(&format!("{sss_db}/{n}"))?, Found::File { size, .. } if size > 0) {
            sss_cached = true;
        }
    }
    if sss_cached {
        f.finding(
            sss_db,
            "holds SSSD's caches of a domain this machine is joined to (users, credentials, the machine's \
             domain state)",
            "leave the domain and remove /var/lib/sss/db/* before capturing, and join each clone at first boot",
        );
    }
    if let Some(conf) = soft_read(ctx, &mut f, "etc/sssd/sssd.conf")? {
        {
            let has_domain = lines(&conf).any(|l| {
                let s = String::from_utf8_lossy(l);
                let s = s.trim();
                s.starts_with("[domain/")
                    || (key_of(l) == Some("domains") && s.split_once('=').is_some_and(|(_, v)| !v.trim().is_empty()))
            });
            if has_domain {
                f.finding(
                    "etc/sssd/sssd.conf",
                    "configures SSSD for a domain (an IPA or AD enrollment of this machine)",
                    "leave the domain before capturing (realm leave / ipa-client-install --uninstall) and join \
                     each clone at first boot",
                );
            }
        }
    }

    // Encrypted homes.
    let enc_advice = "encrypted homes cannot be generalized: their keys are tied to the users and to this \
                      machine; remove those users (or their homes) before capturing, or capture without them";
    if ctx.exists("home/.ecryptfs")? {
        f.finding("home/.ecryptfs", "eCryptfs-encrypted home directories", enc_advice);
    }
    for fs in [".fscrypt", "home/.fscrypt"] {
        if ctx.exists(fs)? {
            f.finding(fs, "fscrypt metadata: directories on this filesystem are encrypted with fscrypt", enc_advice);
        }
    }
    for n in ctx.children("home", true)? {
        let rel = format!("home/{n}");
        if n.ends_with(".home") || n.ends_with(".homedir") {
            f.finding(&rel, "a systemd-homed home (encrypted or signed for this machine)", enc_advice);
        } else if ctx.found(&rel)? == Found::Dir {
            if ctx.exists(&format!("{rel}/.ecryptfs"))? {
                f.finding(&format!("{rel}/.ecryptfs"), "an eCryptfs-encrypted home directory", enc_advice);
            }
            if ctx.exists(&format!("{rel}/.fscrypt"))? {
                f.finding(&format!("{rel}/.fscrypt"), "fscrypt-encrypted directories", enc_advice);
            }
        }
    }

    // Volumes bound to this machine.
    if let Some(tab) = soft_read(ctx, &mut f, "etc/crypttab")? {
        for l in lines(&tab) {
            let s = String::from_utf8_lossy(l);
            let s = s.trim();
            if s.is_empty() || s.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = s.split_whitespace().collect();
            let name = fields.first().copied().unwrap_or("");
            let key = fields.get(2).copied().unwrap_or("none");
            let options = fields.get(3).copied().unwrap_or("");
            if options.split(',').any(|o| o.starts_with("tpm2-device=")) {
                f.finding(
                    "etc/crypttab",
                    format!(
                        "volume {name} unlocks with this machine's TPM2 (tpm2-device=); the enrollment is sealed \
                         to this TPM and does not work on other machines"
                    ),
                    "enroll each clone's own TPM at first boot (systemd-cryptenroll --tpm2-device=auto), or let \
                     systemd-repart create and encrypt the volume on first boot",
                );
            }
            if key.starts_with('/') && !matches!(key, "/dev/urandom" | "/dev/random" | "/dev/hw_random") {
                f.finding(
                    "etc/crypttab",
                    format!("volume {name} unlocks with the key file {key}, a key kept on this machine's disk"),
                    "every clone would carry the same key; make a new key (and re-enroll it) on each clone at \
                     first boot, or unlock with a passphrase or the TPM",
                );
            }
        }
    }
    let mut creds = ctx.children("etc/credstore.encrypted", true)?;
    creds.retain(|n| !n.starts_with('.'));
    if !creds.is_empty() {
        f.finding(
            "etc/credstore.encrypted",
            format!(
                "holds credentials encrypted with this machine's credential key or TPM ({}); they will not \
                 decrypt on the clones",
                creds.join(", ")
            ),
            "provide these credentials to each clone at first boot (the answer file), or encrypt them per \
             machine there with systemd-creds",
        );
    }

    // Configuration that names this machine's hardware.
    for n in ctx.children("etc/netplan", true)? {
        let rel = format!("etc/netplan/{n}");
        if n.ends_with(".yaml") {
            if let Some(data) = soft_read(ctx, &mut f, &rel)? {
                if String::from_utf8_lossy(&data).contains("macaddress:") {
                    f.finding(
                        &rel,
                        "matches a network interface by this machine's MAC address (macaddress:)",
                        "match by interface name or driver instead, or let cloud-init or the answer file write \
                         the network configuration at first boot",
                    );
                }
            }
        }
    }
    for n in ctx.children("etc/systemd/network", true)? {
        let rel = format!("etc/systemd/network/{n}");
        if n.ends_with(".network") || n.ends_with(".link") || n.ends_with(".netdev") {
            if let Some(data) = soft_read(ctx, &mut f, &rel)? {
                if lines(&data).any(|l| matches!(key_of(l), Some("MACAddress" | "PermanentMACAddress"))) {
                    f.finding(
                        &rel,
                        "names a MAC address (MACAddress=), usually this machine's",
                        "match by interface name, driver or path instead, so the file applies on the clones",
                    );
                }
            }
        }
    }

    // Self-signed certificates made for this machine.
    if ctx.exists("etc/ssl/private/ssl-cert-snakeoil.key")? {
        f.finding(
            "etc/ssl/private/ssl-cert-snakeoil.key",
            "the self-signed \"snakeoil\" key made for this machine's hostname; clones would share it",
            "regenerate it on each clone at first boot: `make-ssl-cert generate-default-snakeoil \
             --force-overwrite` (a [[commands]] entry of the answer file)",
        );
    }
    if ctx.exists("etc/pki/tls/private/localhost.key")? {
        f.finding(
            "etc/pki/tls/private/localhost.key",
            "mod_ssl's self-signed key made for this machine; clones would share it",
            "remove it and /etc/pki/tls/certs/localhost.crt before capturing; httpd-init.service makes a new \
             pair at first start",
        );
    }
    Ok(f.findings)
}

/// Reads a file for a finding; a read error becomes a finding of its own.
fn soft_read(ctx: &Ctx, f: &mut OpPlan, rel: &str) -> Result<Option<Vec<u8>>> {
    match ctx.read(rel) {
        Ok(d) => Ok(d),
        Err(e) => {
            f.finding(
                rel,
                format!("could not be read ({e:#}), so it was not checked"),
                "run generalize as root, or check the file by hand",
            );
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::{symlink, PermissionsExt};

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn put(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn link(root: &Path, rel: &str, target: impl AsRef<Path>) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
    }

    fn mkdir(root: &Path, rel: &str) {
        std::fs::create_dir_all(root.join(rel)).unwrap();
    }

    fn chmod(root: &Path, rel: &str, mode: u32) {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Every entry under `root`: kind, mode and content (or link target),
    /// never following a symlink.
    fn snapshot(root: &Path) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let mode = m.permissions().mode() & 0o7777;
                if m.file_type().is_symlink() {
                    out.insert(rel, format!("link {}", std::fs::read_link(&p).unwrap().display()));
                } else if m.is_dir() {
                    out.insert(rel, format!("dir {mode:o} {}:{}", m.uid(), m.gid()));
                    walk(root, &p, out);
                } else {
                    let c = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                    out.insert(rel, format!("file {mode:o} {}:{} {c:?}", m.uid(), m.gid()));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        out
    }

    struct Fixture {
        root: tempfile::TempDir,
        outside: tempfile::TempDir,
    }

    impl Fixture {
        fn path(&self) -> &Path {
            self.root.path()
        }
        fn has(&self, rel: &str) -> bool {
            std::fs::symlink_metadata(self.path().join(rel)).is_ok()
        }
        fn read(&self, rel: &str) -> String {
            std::fs::read_to_string(self.path().join(rel)).unwrap()
        }
        fn mode(&self, rel: &str) -> u32 {
            std::fs::symlink_metadata(self.path().join(rel)).unwrap().permissions().mode() & 0o7777
        }
    }

    /// Symlinks planted inside the root that point outside it, at a
    /// directory holding a file that must survive.
    fn plant_escapes(root: &Path, outside: &Path) {
        put(outside, "precious", "do not touch");
        put(outside, "syslog", "outside log");
        link(root, "tmp/evil", outside);
        link(root, "var/log/x", outside);
        link(root, "var/tmp/evil-file", outside.join("precious"));
    }

    fn debian() -> Fixture {
        let f = Fixture { root: tempfile::tempdir().unwrap(), outside: tempfile::tempdir().unwrap() };
        let r = f.root.path();
        put(r, "etc/os-release", "ID=debian\nVERSION_ID=12\n");
        put(r, "etc/machine-id", &format!("{ID}\n"));
        link(r, "var/lib/dbus/machine-id", "/etc/machine-id");
        put(r, "etc/kernel/entry-token", &format!("{ID}\n"));
        for k in ["ssh_host_rsa_key", "ssh_host_rsa_key.pub", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"] {
            put(r, &format!("etc/ssh/{k}"), "KEY");
        }
        put(r, "etc/ssh/sshd_config", "PermitRootLogin no\n");
        put(r, "usr/sbin/sshd", "ELF");
        put(r, "usr/bin/ssh-keygen", "ELF");
        put(r, "usr/lib/systemd/systemd", "ELF");
        put(r, "var/lib/systemd/random-seed", "0123456789");
        put(r, "var/lib/systemd/credential.secret", "secret");
        put(r, "boot/efi/loader/random-seed", "seed");
        put(r, "etc/hostname", "web-1\n");
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1.example.com web-1\n::1 localhost ip6-localhost\n";
        put(r, "etc/hosts", &format!("{hosts}# 127.0.1.1 stays\n"));
        put(r, "etc/machine-info", "PRETTY_HOSTNAME=Web 1\n");
        // Logs.
        put(r, "var/log/syslog", "boot\nmore\n");
        put(r, "var/log/syslog.1", "old");
        put(r, "var/log/syslog.2.gz", "older");
        put(r, "var/log/auth.log", "login\n");
        put(r, "var/log/dpkg.log", "install\n");
        put(r, "var/log/apt/history.log", "apt\n");
        put(r, "var/log/apt/term.log", "term\n");
        put(r, "var/log/apt/eipp.log.xz", "xz");
        put(r, &format!("var/log/journal/{ID}/system.journal"), "journal");
        put(r, "var/log/wtmp", "w");
        put(r, "var/log/btmp", "b");
        chmod(r, "var/log/btmp", 0o660);
        put(r, "var/log/lastlog", "l");
        put(r, "var/log/empty.log", "");
        put(r, "var/log/installer/syslog", "installer\n");
        put(r, "var/log/slipway/history.json", "{}");
        put(r, "var/log/cloud-init.log", "ci");
        put(r, "var/log/cloud-init-output.log", "cio");
        // Histories.
        put(r, "root/.bash_history", "rm -rf\n");
        put(r, "root/.lesshst", "less");
        put(r, "home/alice/.bash_history", "ls\n");
        put(r, "home/alice/.python_history", "1+1\n");
        put(r, "home/alice/.viminfo", "vim");
        put(r, "home/alice/.profile", "keep");
        put(r, "home/alice/.ssh/authorized_keys", "ssh-ed25519 AAAA alice");
        link(r, "home/bob/.bash_history", "/dev/null");
        // Temporary files.
        put(r, "tmp/foo", "12345");
        put(r, "tmp/dir/a", "abc");
        mkdir(r, "tmp/.X11-unix");
        put(r, "var/tmp/bar", "bar");
        plant_escapes(r, f.outside.path());
        chmod(r, "tmp", 0o1777);
        chmod(r, "var/tmp", 0o1777);
        // Network.
        put(r, "var/lib/dhcp/dhclient.eth0.leases", "lease");
        put(r, "var/lib/NetworkManager/internal-abc-eth0.lease", "lease");
        put(r, "var/lib/NetworkManager/secret_key", "secret");
        put(r, "var/lib/NetworkManager/NetworkManager.state", "[main]\n");
        put(
            r,
            "etc/NetworkManager/system-connections/eth0.nmconnection",
            "[connection]\nid=eth0\n[ethernet]\nmac-address=52:54:00:12:34:56\n",
        );
        put(
            r,
            "etc/NetworkManager/system-connections/home.nmconnection",
            "[connection]\nid=home\n[ethernet]\ncloned-mac-address=random\n",
        );
        put(r, "etc/udev/rules.d/70-persistent-net.rules", "SUBSYSTEM==\"net\"\n");
        put(r, "etc/udev/rules.d/99-local.rules", "# keep\n");
        // Package manager.
        put(r, "var/cache/apt/archives/foo_1.0_amd64.deb", "deb");
        put(r, "var/cache/apt/archives/lock", "");
        put(r, "var/cache/apt/archives/partial/bar.deb", "part");
        put(r, "var/cache/apt/pkgcache.bin", "bin");
        put(r, "var/cache/apt/srcpkgcache.bin", "bin");
        put(r, "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", "lists");
        // cloud-init.
        put(r, "var/lib/cloud/instances/i-123/obj.pkl", "pickle");
        link(r, "var/lib/cloud/instance", "/var/lib/cloud/instances/i-123");
        put(r, "var/lib/cloud/data/instance-id", "i-123");
        put(r, "var/lib/cloud/sem/config_scripts_per_once.once", "");
        put(r, "var/lib/cloud/seed/nocloud/user-data", "#cloud-config\n");
        put(r, "var/lib/cloud/scripts/per-boot/hello.sh", "echo hi\n");
        put(r, "var/lib/cloud/scripts/vendor/v.sh", "vendor\n");
        // The rest.
        for n in ["passwd-", "shadow-", "group-", "gshadow-", "subuid-", "subgid-"] {
            put(r, &format!("etc/{n}"), "backup");
        }
        put(r, "etc/passwd", "root:x:0:0::/root:/bin/bash\n");
        put(r, "var/crash/_usr_bin_foo.0.crash", "crash");
        put(r, "var/lib/systemd/coredump/core.foo.zst", "core");
        put(r, "var/lib/systemd/timers/stamp-apt-daily.timer", "");
        put(r, "var/lib/systemd/timers/other", "keep");
        put(r, "etc/lvm/devices/system.devices", "IDTYPE=sys_wwid");
        put(r, "etc/blkid.tab", "<device>");
        put(r, "var/mail/alice", "From: x");
        link(r, "var/spool/mail", "../mail");
        // Findings.
        put(r, "etc/krb5.keytab", "keytab");
        mkdir(r, "home/.ecryptfs/alice");
        put(
            r,
            "etc/crypttab",
            "# <name> <device> <key> <options>\n\
             data UUID=1 none luks,tpm2-device=auto\n\
             srv UUID=2 /etc/keys/srv.key luks\n\
             swap /dev/sda3 /dev/urandom swap\n",
        );
        put(r, "etc/ssl/private/ssl-cert-snakeoil.key", "KEY");
        f
    }

    fn fedora() -> Fixture {
        let f = Fixture { root: tempfile::tempdir().unwrap(), outside: tempfile::tempdir().unwrap() };
        let r = f.root.path();
        put(r, "usr/lib/os-release", "ID=fedora\n");
        put(r, "etc/machine-id", &format!("{ID}\n"));
        put(r, "var/lib/dbus/machine-id", &format!("{ID}\n"));
        put(r, &format!("boot/loader/entries/{ID}-6.8.5-301.fc40.x86_64.conf"), "title Fedora\n");
        put(r, "etc/ssh/ssh_host_ecdsa_key", "KEY");
        put(r, "etc/ssh/ssh_host_ecdsa_key.pub", "PUB");
        put(r, "usr/sbin/sshd", "ELF");
        put(r, "usr/bin/ssh-keygen", "ELF");
        put(r, "usr/lib/systemd/systemd", "ELF");
        put(r, "usr/lib/systemd/system/sshd-keygen@.service", "[Unit]\n");
        put(
            r,
            "etc/sysconfig/network-scripts/ifcfg-eth0",
            "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nONBOOT=yes\nMACADDR=52:54:00:12:34:57\n",
        );
        chmod(r, "etc/sysconfig/network-scripts/ifcfg-eth0", 0o600);
        put(r, "var/lib/rpm/__db.001", "db");
        put(r, "var/lib/rpm/__db.002", "db");
        put(r, "var/lib/rpm/rpmdb.sqlite", "keep");
        put(r, "var/cache/dnf/fedora-abc/repodata/primary.xml", "xml");
        put(r, "var/cache/dnf/expired_repos.json", "[]");
        put(r, "var/lib/dhclient/dhclient--eth0.lease", "lease");
        put(r, "etc/selinux/config", "# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n");
        put(r, "var/log/messages", "msg\n");
        put(r, "var/log/messages-20240101", "old\n");
        put(r, "var/log/audit/audit.log", "audit\n");
        put(r, "var/log/audit/audit.log.1", "old audit\n");
        chmod(r, "var/log/audit/audit.log", 0o600);
        put(r, "var/spool/mail/alice", "mail");
        link(r, "var/mail", "spool/mail");
        put(r, "var/spool/abrt/ccpp-2024-01-01/coredump", "core");
        put(r, "etc/ipa/default.conf", "[global]\nrealm = EXAMPLE.COM\n");
        put(r, "etc/sssd/sssd.conf", "[sssd]\ndomains = example.com\n[domain/example.com]\nid_provider = ipa\n");
        put(r, "var/lib/sss/db/cache_example.com.ldb", "cache");
        put(r, "home/carol.home", "LUKS");
        put(r, "home/dave/.fscrypt/policies/x", "p");
        put(r, "etc/krb5.keytab", "keytab");
        mkdir(r, "tmp");
        mkdir(r, "var/tmp");
        plant_escapes(r, f.outside.path());
        f
    }

    fn run(f: &Fixture, spec: Option<&str>, dry_run: bool) -> Report {
        generalize(f.path(), &select(spec).unwrap(), &Options { dry_run, force: false }).unwrap()
    }

    fn op<'r>(r: &'r Report, name: &str) -> &'r OpReport {
        r.operations.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no report for {name}"))
    }

    fn strs(v: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    }

    fn has_finding(r: &Report, path: &str, word: &str) -> bool {
        r.findings.iter().any(|f| f.path == path && f.problem.contains(word))
    }

    fn expected_debian() -> Vec<(&'static str, Vec<String>, Vec<String>)> {
        let journal = format!("/var/log/journal/{ID}");
        vec![
            ("machine-id", strs(&[]), strs(&["/etc/machine-id"])),
            (
                "ssh-hostkeys",
                strs(&[
                    "/etc/ssh/ssh_host_ed25519_key",
                    "/etc/ssh/ssh_host_ed25519_key.pub",
                    "/etc/ssh/ssh_host_rsa_key",
                    "/etc/ssh/ssh_host_rsa_key.pub",
                ]),
                strs(&[
                    "/etc/systemd/system/multi-user.target.wants/slipway-ssh-hostkeys.service",
                    "/etc/systemd/system/slipway-ssh-hostkeys.service",
                ]),
            ),
            (
                "random-seed",
                strs(&[
                    "/boot/efi/loader/random-seed",
                    "/var/lib/systemd/credential.secret",
                    "/var/lib/systemd/random-seed",
                ]),
                strs(&[]),
            ),
            ("hostname", strs(&["/etc/hostname", "/etc/machine-info"]), strs(&["/etc/hosts"])),
            ("net-nmconn", strs(&["/etc/NetworkManager/system-connections/eth0.nmconnection"]), strs(&[])),
            ("udev-persistent-net", strs(&["/etc/udev/rules.d/70-persistent-net.rules"]), strs(&[])),
            (
                "dhcp-client-state",
                strs(&["/var/lib/NetworkManager/internal-abc-eth0.lease", "/var/lib/dhcp/dhclient.eth0.leases"]),
                strs(&[]),
            ),
            (
                "cloud-init",
                strs(&[
                    "/var/lib/cloud/data",
                    "/var/lib/cloud/instance",
                    "/var/lib/cloud/instances",
                    "/var/lib/cloud/scripts/vendor",
                    "/var/lib/cloud/sem",
                    "/var/log/cloud-init-output.log",
                    "/var/log/cloud-init.log",
                ]),
                strs(&[]),
            ),
            (
                "machine-state",
                strs(&["/var/lib/NetworkManager/secret_key", "/var/lib/systemd/timers/stamp-apt-daily.timer"]),
                strs(&[]),
            ),
            ("lvm-system-devices", strs(&["/etc/lvm/devices/system.devices"]), strs(&[])),
            ("blkid-tab", strs(&["/etc/blkid.tab"]), strs(&[])),
            ("rpm-db", strs(&[]), strs(&[])),
            (
                "passwd-backups",
                strs(&["/etc/group-", "/etc/gshadow-", "/etc/passwd-", "/etc/shadow-", "/etc/subgid-", "/etc/subuid-"]),
                strs(&[]),
            ),
            (
                "logfiles",
                strs(&["/var/log/apt/eipp.log.xz", &journal, "/var/log/syslog.1", "/var/log/syslog.2.gz"]),
                strs(&[
                    "/var/log/apt/history.log",
                    "/var/log/apt/term.log",
                    "/var/log/auth.log",
                    "/var/log/btmp",
                    "/var/log/dpkg.log",
                    "/var/log/installer/syslog",
                    "/var/log/lastlog",
                    "/var/log/syslog",
                    "/var/log/wtmp",
                ]),
            ),
            (
                "crash-data",
                strs(&["/var/crash/_usr_bin_foo.0.crash", "/var/lib/systemd/coredump/core.foo.zst"]),
                strs(&[]),
            ),
            ("mail-spool", strs(&["/var/mail/alice"]), strs(&[])),
            (
                "bash-history",
                strs(&[
                    "/home/alice/.bash_history",
                    "/home/alice/.python_history",
                    "/home/alice/.viminfo",
                    "/root/.bash_history",
                    "/root/.lesshst",
                ]),
                strs(&[]),
            ),
            (
                "tmp-files",
                strs(&["/tmp/.X11-unix", "/tmp/dir", "/tmp/evil", "/tmp/foo", "/var/tmp/bar", "/var/tmp/evil-file"]),
                strs(&[]),
            ),
            (
                "package-manager-cache",
                strs(&[
                    "/var/cache/apt/archives/foo_1.0_amd64.deb",
                    "/var/cache/apt/archives/partial/bar.deb",
                    "/var/cache/apt/pkgcache.bin",
                    "/var/cache/apt/srcpkgcache.bin",
                ]),
                strs(&[]),
            ),
            ("selinux-relabel", strs(&[]), strs(&[])),
        ]
    }

    #[test]
    fn debian_root_is_generalized_and_each_operation_reports_what_it_removed() {
        let f = debian();
        let outside_before = snapshot(f.outside.path());
        let r = run(&f, None, false);
        assert!(!r.dry_run);
        let expected = expected_debian();
        assert_eq!(
            r.operations.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            expected.iter().map(|e| e.0).collect::<Vec<_>>()
        );
        for (name, removed, written) in &expected {
            let o = op(&r, name);
            assert_eq!(&o.removed, removed, "removed by {name}");
            assert_eq!(&o.written, written, "written by {name}");
            for p in removed {
                assert!(!f.has(&p[1..]), "{p} is still there after {name}");
            }
        }
        assert_eq!(r.removed_entries, r.operations.iter().map(|o| o.entries).sum::<u64>());
        assert_eq!(op(&r, "tmp-files").entries, 7, "tmp: foo, dir, dir/a, .X11-unix, evil; var/tmp: bar, evil-file");
        assert_eq!(op(&r, "tmp-files").bytes, 5 + 3 + 3);

        // machine-id: "uninitialized", read-only; the D-Bus symlink is kept.
        assert_eq!(f.read("etc/machine-id"), "uninitialized\n");
        assert_eq!(f.mode("etc/machine-id"), 0o444);
        assert_eq!(std::fs::read_link(f.path().join("var/lib/dbus/machine-id")).unwrap(), Path::new("/etc/machine-id"));
        assert!(has_finding(&r, "/etc/kernel/entry-token", ID));

        // hostname: the other lines of /etc/hosts are kept byte for byte.
        assert_eq!(f.read("etc/hosts"), "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n# 127.0.1.1 stays\n");
        assert!(f.has("etc/ssh/sshd_config"));

        // SSH keys come back at first boot.
        let unit = f.read("etc/systemd/system/slipway-ssh-hostkeys.service");
        assert!(unit.contains("ExecStart=/usr/bin/ssh-keygen -A"), "{unit}");
        assert!(unit.contains("ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key"), "{unit}");
        assert!(unit.contains("WantedBy=multi-user.target"), "{unit}");
        assert_eq!(
            std::fs::read_link(f.path().join(SSH_UNIT_LINK)).unwrap(),
            Path::new("../slipway-ssh-hostkeys.service")
        );

        // Logs: emptied in place with their mode; slipway's history and empty logs kept.
        assert_eq!(f.read("var/log/syslog"), "");
        assert_eq!(f.mode("var/log/btmp"), 0o660);
        assert_eq!(f.read("var/log/slipway/history.json"), "{}");
        assert!(f.path().join("var/log/journal").is_dir());
        assert!(f.has("var/log/empty.log"));
        assert_eq!(op(&r, "logfiles").bytes, (3 + 5 + 2 + 7) + (10 + 6 + 8 + 4 + 5 + 1 + 1 + 1 + 10));

        // Kept on purpose.
        for keep in [
            "var/cache/apt/archives/lock",
            "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease",
            "var/lib/cloud/seed/nocloud/user-data",
            "var/lib/cloud/scripts/per-boot/hello.sh",
            "var/lib/NetworkManager/NetworkManager.state",
            "var/lib/systemd/timers/other",
            "etc/NetworkManager/system-connections/home.nmconnection",
            "etc/udev/rules.d/99-local.rules",
            "etc/passwd",
            "home/alice/.profile",
            "home/alice/.ssh/authorized_keys",
            "home/bob/.bash_history",
            "etc/krb5.keytab",
            "var/spool/mail",
        ] {
            assert!(f.has(keep), "{keep} was removed");
        }
        assert_eq!(f.mode("tmp"), 0o1777);
        assert_eq!(f.mode("var/tmp"), 0o1777);
        assert!(std::fs::read_dir(f.path().join("tmp")).unwrap().next().is_none());
        assert_eq!(f.read("var/log/x/syslog"), "outside log");

        // Nothing outside the root changed.
        assert_eq!(snapshot(f.outside.path()), outside_before);

        // Findings.
        assert!(has_finding(&r, "/etc/krb5.keytab", "domain account"));
        assert!(has_finding(&r, "/home/.ecryptfs", "eCryptfs"));
        assert!(has_finding(&r, "/etc/crypttab", "TPM2"));
        assert!(has_finding(&r, "/etc/crypttab", "/etc/keys/srv.key"));
        assert!(!r.findings.iter().any(|x| x.problem.contains("/dev/urandom")));
        assert!(has_finding(&r, "/etc/ssl/private/ssl-cert-snakeoil.key", "snakeoil"));
        assert!(!has_finding(&r, "/etc/ssh", "share SSH host keys"));
        assert!(r.findings.iter().all(|x| !x.advice.is_empty()));
    }

    #[test]
    fn a_second_run_has_nothing_left_to_do() {
        let f = debian();
        run(&f, None, false);
        let again = run(&f, None, false);
        for o in &again.operations {
            assert!(o.removed.is_empty() && o.written.is_empty(), "{} acts again: {o:?}", o.name);
        }
        assert_eq!(again.removed_entries, 0);
    }

    #[test]
    fn dry_run_changes_nothing_and_reports_what_the_real_run_does() {
        for f in [debian(), fedora()] {
            let before = snapshot(f.path());
            let outside = snapshot(f.outside.path());
            let dry = run(&f, Some("all"), true);
            assert!(dry.dry_run);
            assert_eq!(snapshot(f.path()), before, "a dry run changed the root");
            let real = run(&f, Some("all"), false);
            assert_ne!(snapshot(f.path()), before);
            assert_eq!(dry.operations, real.operations);
            assert_eq!((dry.removed_entries, dry.removed_bytes), (real.removed_entries, real.removed_bytes));
            assert_eq!(dry.findings, real.findings);
            assert_eq!(snapshot(f.outside.path()), outside);
        }
    }

    #[test]
    fn fedora_root_uses_its_own_keygen_and_is_relabelled() {
        let f = fedora();
        let outside_before = snapshot(f.outside.path());
        let r = run(&f, None, false);

        assert_eq!(f.read("etc/machine-id"), "uninitialized\n");
        assert_eq!(op(&r, "machine-id").removed, strs(&["/var/lib/dbus/machine-id"]));
        assert!(has_finding(&r, "/boot/loader/entries", "boot entries named by this machine's ID"));

        let ssh = op(&r, "ssh-hostkeys");
        assert_eq!(ssh.removed, strs(&["/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ecdsa_key.pub"]));
        assert!(ssh.written.is_empty());
        assert!(ssh.note.as_deref().unwrap().contains("sshd-keygen@.service"));
        assert!(!f.has(SSH_UNIT));

        let net = op(&r, "net-nmconn");
        assert_eq!(net.written, strs(&["/etc/sysconfig/network-scripts/ifcfg-eth0"]));
        assert_eq!(f.read("etc/sysconfig/network-scripts/ifcfg-eth0"), "DEVICE=eth0\nONBOOT=yes\n");
        assert_eq!(f.mode("etc/sysconfig/network-scripts/ifcfg-eth0"), 0o600);

        assert_eq!(op(&r, "rpm-db").removed, strs(&["/var/lib/rpm/__db.001", "/var/lib/rpm/__db.002"]));
        assert!(f.has("var/lib/rpm/rpmdb.sqlite"));
        assert_eq!(
            op(&r, "package-manager-cache").removed,
            strs(&["/var/cache/dnf/expired_repos.json", "/var/cache/dnf/fedora-abc"])
        );
        assert_eq!(op(&r, "package-manager-cache").entries, 4);
        assert_eq!(op(&r, "dhcp-client-state").removed, strs(&["/var/lib/dhclient/dhclient--eth0.lease"]));
        assert_eq!(op(&r, "logfiles").removed, strs(&["/var/log/audit/audit.log.1", "/var/log/messages-20240101"]));
        assert_eq!(op(&r, "logfiles").written, strs(&["/var/log/audit/audit.log", "/var/log/messages"]));
        assert_eq!(f.mode("var/log/audit/audit.log"), 0o600);
        assert_eq!(op(&r, "mail-spool").removed, strs(&["/var/spool/mail/alice"]));
        assert_eq!(op(&r, "crash-data").removed, strs(&["/var/spool/abrt/ccpp-2024-01-01"]));
        assert_eq!(op(&r, "selinux-relabel").written, strs(&["/.autorelabel"]));
        assert!(f.has(".autorelabel"));
        assert_eq!(op(&r, "tmp-files").removed, strs(&["/tmp/evil", "/var/tmp/evil-file"]));

        assert!(has_finding(&r, "/etc/ipa/default.conf", "FreeIPA"));
        assert!(has_finding(&r, "/etc/sssd/sssd.conf", "domain"));
        assert!(has_finding(&r, "/var/lib/sss/db", "SSSD"));
        assert!(has_finding(&r, "/home/carol.home", "systemd-homed"));
        assert!(has_finding(&r, "/home/dave/.fscrypt", "fscrypt"));
        assert!(has_finding(&r, "/etc/krb5.keytab", "domain account"));
        assert_eq!(snapshot(f.outside.path()), outside_before);
    }

    #[test]
    fn findings_name_identity_that_unselected_operations_would_remove() {
        let f = debian();
        let r = run(&f, Some("tmp-files"), false);
        assert_eq!(r.operations.len(), 1);
        assert!(has_finding(&r, "/etc/machine-id", ID));
        assert!(has_finding(&r, "/etc/ssh", "share SSH host keys"));
        assert!(has_finding(&r, "/etc/NetworkManager/system-connections/eth0.nmconnection", "MAC"));
        assert!(!r.findings.iter().any(|x| x.path.ends_with("home.nmconnection")));
        assert_eq!(f.read("etc/machine-id"), format!("{ID}\n"));

        put(f.path(), "etc/machine-id", "");
        let r = run(&f, Some("none"), true);
        assert!(
            has_finding(&r, "/etc/machine-id", "does not treat an empty machine-id as first boot"),
            "{:?}",
            r.findings
        );
    }

    #[test]
    fn kerberos_keytab_is_removed_only_when_asked() {
        let f = debian();
        let r = run(&f, Some("+kerberos-keytab"), false);
        assert_eq!(op(&r, "kerberos-keytab").removed, strs(&["/etc/krb5.keytab"]));
        assert!(!f.has("etc/krb5.keytab"));
        assert!(!r.findings.iter().any(|x| x.path == "/etc/krb5.keytab"));
        assert!(r.operations.iter().any(|o| o.name == "machine-id"));
    }

    #[test]
    fn ssh_userdir_removes_ssh_directories() {
        let f = debian();
        let r = run(&f, Some("ssh-userdir"), false);
        assert_eq!(op(&r, "ssh-userdir").removed, strs(&["/home/alice/.ssh"]));
        assert_eq!(op(&r, "ssh-userdir").entries, 2);
        assert!(!f.has("home/alice/.ssh"));
    }

    #[test]
    fn ops_grammar() {
        let names = |spec: Option<&str>| -> Vec<&str> { select(spec).unwrap().iter().map(|o| o.name).collect() };
        let defaults: Vec<&str> = operations().iter().filter(|o| o.default).map(|o| o.name).collect();
        assert_eq!(names(None), defaults);
        assert_eq!(names(Some("")), defaults);
        assert_eq!(names(Some("defaults")), defaults);
        assert!(!defaults.contains(&"kerberos-keytab") && !defaults.contains(&"ssh-userdir"));

        let minus = names(Some("defaults,-ssh-hostkeys"));
        assert_eq!(minus.len(), defaults.len() - 1);
        assert!(!minus.contains(&"ssh-hostkeys"));
        assert_eq!(names(Some("-ssh-hostkeys")), minus);

        // A bare list is exactly those, in run order.
        assert_eq!(names(Some("tmp-files, machine-id")), vec!["machine-id", "tmp-files"]);
        assert_eq!(names(Some("machine-id,ssh-hostkeys")), vec!["machine-id", "ssh-hostkeys"]);

        let plus = names(Some("+kerberos-keytab"));
        assert_eq!(plus.len(), defaults.len() + 1);
        assert!(plus.contains(&"kerberos-keytab"));
        assert_eq!(names(Some("all")).len(), operations().len());
        assert!(names(Some("none")).is_empty());
        assert_eq!(names(Some("all,none,machine-id")), vec!["machine-id"]);
        assert_eq!(names(Some("all,-defaults")), vec!["kerberos-keytab", "ssh-userdir"]);

        let e = format!("{:#}", select(Some("defaults,-machine-idd,frobnicate")).unwrap_err());
        assert!(e.contains("\"machine-idd\"") && e.contains("\"frobnicate\""), "{e}");
        for o in operations() {
            assert!(e.contains(o.name), "{e} does not list {}", o.name);
        }
    }

    #[test]
    fn operation_names_are_unique_and_summaries_fit_a_line() {
        let mut seen = BTreeSet::new();
        for o in operations() {
            assert!(seen.insert(o.name), "{} twice", o.name);
            assert!(o.summary.len() <= 72, "{}: summary too long", o.name);
        }
        assert_eq!(operations().last().unwrap().name, "selinux-relabel");
    }

    #[test]
    fn refuses_the_running_system_without_force() {
        let e =
            generalize(Path::new("/"), &select(None).unwrap(), &Options { dry_run: false, force: false }).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("running system") && msg.contains("--force"), "{msg}");
        assert!(Path::new("/etc").exists());
    }

    #[test]
    fn refuses_a_directory_that_is_not_an_os_root() {
        let t = tempfile::tempdir().unwrap();
        put(t.path(), "tmp/data", "x");
        let e = generalize(t.path(), &select(None).unwrap(), &Options::default()).unwrap_err();
        assert!(format!("{e:#}").contains("os-release"), "{e:#}");
        assert!(t.path().join("tmp/data").exists());
    }

    #[test]
    fn a_symlinked_directory_is_reported_not_followed() {
        let f = debian();
        let outside = tempfile::tempdir().unwrap();
        put(outside.path(), "carol/.bash_history", "secret");
        std::fs::remove_dir_all(f.path().join("var/crash")).unwrap();
        link(f.path(), "var/crash", outside.path().join("carol"));
        let r = run(&f, None, false);
        assert!(has_finding(&r, "/var/crash", "symlink"), "{:?}", r.findings);
        assert_eq!(std::fs::read_to_string(outside.path().join("carol/.bash_history")).unwrap(), "secret");
        assert!(f.has("var/crash"));
    }

    #[test]
    fn report_serializes_with_the_documented_fields() {
        let f = debian();
        let r = run(&f, Some("machine-id"), true);
        let v = serde_json::to_value(&r).unwrap();
        for k in ["root", "dry_run", "operations", "findings", "removed_entries", "removed_bytes"] {
            assert!(v.get(k).is_some(), "no {k}");
        }
        let o = &v["operations"][0];
        for k in ["name", "removed", "written", "entries", "bytes", "note"] {
            assert!(o.get(k).is_some(), "no {k} in an operation");
        }
        assert_eq!(o["written"][0], "/etc/machine-id");
    }

    #[test]
    fn rotated_log_names() {
        for n in ["syslog.1", "syslog.2.gz", "messages-20240101", "dmesg.0", "x.log.old", "eipp.log.xz"] {
            assert!(is_rotated(n), "{n}");
        }
        for n in ["syslog", "auth.log", "Xorg.0.log", "wtmp", "sa-1", "cloud-init.log"] {
            assert!(!is_rotated(n), "{n}");
        }
    }
}
