//! Plans: what an install or uninstall will do to a root, checked before
//! anything is written. A plan names every change, the bytes to write, the
//! free space it needs (staging plus backups), and every file that would go
//! down in version; the executor consumes it as a transaction.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::container::{Package, SignatureStatus};
use crate::dpkg;
use crate::manifest::{Action, Node};
use crate::rootfs::{self, parent_of, Found, Meta, Root};
use crate::state::{self, Change, Installed, Mode, Snapshot, State};
use crate::txn::{Journal, Phase, Source, Step, JOURNAL_FORMAT};
use crate::version;

/// One line of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct Item {
    pub path: String,
    /// `add`, `replace`, `delete`, `restore`, `unchanged`, `skip`, `keep`.
    pub change: &'static str,
    /// Kind after the change (`file`, `dir`, `symlink`, `absent`).
    pub kind: &'static str,
    /// Bytes written for it.
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A file that would go down in version.
#[derive(Clone, Debug, Serialize)]
pub struct Downgrade {
    pub path: String,
    /// The version on the root now.
    pub installed: String,
    /// Who brought it: a slipway package id, or `dpkg:NAME`.
    pub owner: String,
    /// The version the package brings.
    pub brings: String,
}

/// Free space on one filesystem.
#[derive(Clone, Debug, Serialize)]
pub struct Space {
    /// A directory on that filesystem.
    pub at: String,
    pub needed: u64,
    pub available: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub action: &'static str,
    pub package: String,
    pub version: String,
    pub items: Vec<Item>,
    pub adds: usize,
    pub replaces: usize,
    pub deletes: usize,
    pub unchanged: usize,
    pub skipped: usize,
    /// Bytes of new content written (staged, then renamed into place).
    pub write_bytes: u64,
    /// Bytes copied into the backup store (0 for files hard-linked there).
    pub backup_bytes: u64,
    pub space: Vec<Space>,
    pub downgrades: Vec<Downgrade>,
    pub warnings: Vec<String>,
}

impl Plan {
    fn new(action: &'static str, package: &str, version: &str) -> Plan {
        Plan {
            action,
            package: package.to_string(),
            version: version.to_string(),
            items: vec![],
            adds: 0,
            replaces: 0,
            deletes: 0,
            unchanged: 0,
            skipped: 0,
            write_bytes: 0,
            backup_bytes: 0,
            space: vec![],
            downgrades: vec![],
            warnings: vec![],
        }
    }
    /// Whether every filesystem has the space the plan needs.
    pub fn fits(&self) -> bool {
        self.space.iter().all(|s| s.needed <= s.available)
    }
}

/// A plan with the transaction that carries it out.
pub struct Planned {
    pub plan: Plan,
    pub journal: Journal,
}

pub(crate) fn now_rfc3339() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(t.as_secs() as i64)
}

pub(crate) use slipway_store::rfc3339;

fn txid() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}", t.as_secs(), std::process::id())
}

/// The snapshot of what is at `rel` now (hashing a file).
pub(crate) fn snapshot(root: &Root, rel: &str, found: &Found) -> anyhow::Result<Snapshot> {
    Ok(match found {
        Found::Absent => Snapshot::Absent,
        Found::File { size, .. } => {
            Snapshot::File { blake3: root.hash(rel)?, size: *size, meta: root.meta(rel)?, link: None }
        }
        Found::Dir => Snapshot::Dir { meta: root.meta(rel)? },
        Found::Symlink { target } => Snapshot::Symlink {
            target: String::from_utf8(target.clone())
                .map_err(|_| anyhow::anyhow!("{}: symlink target is not UTF-8", root.display(rel).display()))?,
            meta: root.meta(rel)?,
        },
        Found::Other => {
            bail!("{} is a device, FIFO or socket; packages do not replace those", root.display(rel).display())
        }
    })
}

/// Equal as far as the catalog is concerned: kind, content, target, and all
/// metadata (mode, owner, mtime, xattrs).
pub(crate) fn same(a: &Snapshot, b: &Snapshot) -> bool {
    match (a, b) {
        (Snapshot::File { blake3: h1, meta: m1, .. }, Snapshot::File { blake3: h2, meta: m2, .. }) => {
            h1 == h2 && m1 == m2
        }
        (x, y) => x == y,
    }
}

/// The snapshot an operation of the signed manifest leaves at its path
/// (absent for a delete); a hard link has its target file's content and
/// metadata.
pub(crate) fn op_snapshot(pkg: &Package, op_index: usize) -> anyhow::Result<Snapshot> {
    let op = &pkg.manifest.ops[op_index];
    let Some(e) = &op.entry else { return Ok(Snapshot::Absent) };
    let meta = Meta::of_entry(e);
    Ok(match &e.node {
        Node::File { size, blake3, .. } => Snapshot::File { blake3: blake3.clone(), size: *size, meta, link: None },
        Node::Hardlink { target } => {
            let t = pkg.manifest.ops.iter().find(|o| &o.path == target).and_then(|o| o.entry.as_ref());
            match t.map(|t| &t.node) {
                Some(Node::File { size, blake3, .. }) => Snapshot::File {
                    blake3: blake3.clone(),
                    size: *size,
                    meta: Meta::of_entry(t.expect("entry")),
                    link: Some(target.clone()),
                },
                _ => bail!("{}: hard link target {target} is not a file of the package", op.path),
            }
        }
        Node::Dir => Snapshot::Dir { meta },
        Node::Symlink { target } => Snapshot::Symlink { target: target.clone(), meta },
    })
}

/// The version of `rel` on the root now, and who brought it.
pub(crate) fn current_version(
    state: &State,
    owners: &HashMap<String, dpkg::Owner>,
    rel: &str,
) -> Option<(String, String)> {
    if let Some((i, j)) = state.top(rel) {
        if let Some(v) = &state.packages[i].changes[j].version {
            return Some((v.clone(), state.packages[i].id.clone()));
        }
    }
    owners.get(rel).map(|o| (o.version.clone(), format!("dpkg:{}", o.package)))
}

/// Reads `ID` and `VERSION_ID` from the root's os-release.
pub fn os_release(root: &Root) -> (Option<String>, Option<String>) {
    let text = ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| matches!(root.inspect(p), Ok(Found::File { .. })).then(|| root.read(p).ok()).flatten());
    let (mut id, mut ver) = (None, None);
    for line in String::from_utf8_lossy(&text.unwrap_or_default()).lines() {
        let unq = |v: &str| v.trim().trim_matches('"').trim_matches('\'').to_string();
        if let Some(v) = line.strip_prefix("ID=") {
            id = Some(unq(v));
        } else if let Some(v) = line.strip_prefix("VERSION_ID=") {
            ver = Some(unq(v));
        }
    }
    (id, ver)
}

/// Why a package is not applicable, if it is not.
pub fn applicability(root: &Root, state: &State, pkg: &Package, image: Option<&str>) -> Option<String> {
    let m = &pkg.manifest;
    let a = &m.applies_to;
    if let (Some(img), false) = (image, a.images.is_empty()) {
        if !a.images.iter().any(|i| i == img) {
            return Some(format!("it applies to images {}, not {img}", a.images.join(", ")));
        }
    }
    if a.os_id.is_some() || a.version_min.is_some() || a.version_max.is_some() {
        let (id, ver) = os_release(root);
        if let Some(want) = &a.os_id {
            if id.as_deref() != Some(want) {
                return Some(format!("it applies to {want}; the root is {}", id.as_deref().unwrap_or("unknown")));
            }
        }
        let v = ver.unwrap_or_default();
        if let Some(min) = &a.version_min {
            if version::compare(&v, min).is_lt() {
                return Some(format!("it needs version {min} or later; the root has {v}"));
            }
        }
        if let Some(max) = &a.version_max {
            if version::compare(&v, max).is_gt() {
                return Some(format!("it applies up to version {max}; the root has {v}"));
            }
        }
    }
    for r in &m.requires {
        if state.find(r).is_none() {
            return Some(format!("it requires package {r}, which is not installed"));
        }
    }
    None
}

/// Plans the install (or integration) of `pkg` on `root`.
pub fn install(root: &Root, state: &State, pkg: &Package, pkg_path: &Path, mode: Mode) -> anyhow::Result<Planned> {
    let m = &pkg.manifest;
    let owners = dpkg::owners(root.path());
    let mut plan = Plan::new(if mode == Mode::Installed { "install" } else { "integrate" }, &m.id, &m.version);
    let mut steps: Vec<Step> = vec![];
    let mut changes: Vec<Change> = vec![];
    let mut pending = vec![];
    let mut step_of_path: HashMap<String, usize> = HashMap::new();
    let mut created_dirs: BTreeSet<String> = BTreeSet::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    let mut staging: HashMap<String, u64> = HashMap::new(); // staging dir -> bytes
    let tx = txid();
    let objects_dev = dev_of(&root.path().join(state::STATE_DIR));
    let mut backup_copy: HashMap<String, u64> = HashMap::new();

    for (i, op) in m.ops.iter().enumerate() {
        let rel = op.path.as_str();
        if state::is_reserved(rel) {
            bail!("package {}: {rel} is slipway's own state; packages may not write there", m.id);
        }
        let makes_dir = matches!(op.entry.as_ref().map(|e| &e.node), Some(Node::Dir));
        if state::holds_reserved(rel) && !makes_dir {
            bail!("package {}: {rel} holds slipway's own state; packages may not delete or replace it", m.id);
        }
        let found = root.inspect(rel)?;
        // The nearest existing directory on the path (for staging).
        let parent = parent_of(rel);
        let parent_exists = root.open_dir(parent)?.is_some();
        if !parent_exists && !created_dirs.contains(parent) && op.action != Action::Delete {
            bail!(
                "package {}: the directory {} for {rel} is missing on the target and the package does not create it",
                m.id,
                root.display(parent).display()
            );
        }
        let cur_version = current_version(state, &owners, rel);
        match op.action {
            Action::Delete => {
                if found == Found::Absent {
                    plan.items.push(item(rel, "unchanged", "absent", 0, Some("already absent")));
                    plan.unchanged += 1;
                    continue;
                }
                let below = snapshot(root, rel, &found)?;
                let mut backup = None;
                if let (Snapshot::File { blake3, size, .. }, Mode::Installed) = (&below, mode) {
                    backup = Some(blake3.clone());
                    count_backup(&mut backup_copy, root, rel, *size, objects_dev);
                }
                deleted.insert(rel.to_string());
                plan.deletes += 1;
                plan.items.push(Item {
                    path: rel.to_string(),
                    change: "delete",
                    kind: "absent",
                    bytes: 0,
                    from_version: cur_version.as_ref().map(|v| v.0.clone()),
                    to_version: None,
                    note: None,
                });
                step_of_path.insert(rel.to_string(), steps.len());
                steps.push(Step {
                    path: rel.into(),
                    new: Snapshot::Absent,
                    source: Source::None,
                    staged: None,
                    backup,
                });
                changes.push(Change {
                    path: rel.into(),
                    below: (mode == Mode::Installed).then_some(below),
                    above: Snapshot::Absent,
                    version: None,
                    below_version: cur_version.map(|v| v.0),
                });
            }
            Action::Add | Action::Replace => {
                let mut new = op_snapshot(pkg, i)?;
                let below = if found == Found::Absent { Snapshot::Absent } else { snapshot(root, rel, &found)? };
                let entry = op.entry.as_ref().expect("validated");
                // A replace of a file the package expected but the root lacks
                // is not installed: the package cache keeps it for later.
                if op.action == Action::Replace
                    && found == Found::Absent
                    && matches!(op.old.as_ref().map(|o| o.kind), Some(crate::manifest::OldKind::File))
                    && matches!(entry.node, Node::File { .. })
                {
                    plan.skipped += 1;
                    plan.items.push(item(
                        rel,
                        "skip",
                        "absent",
                        0,
                        Some("not on this root; kept in the package cache"),
                    ));
                    pending.push(rel.to_string());
                    continue;
                }
                if same(&below, &new) {
                    plan.unchanged += 1;
                    plan.items.push(item(rel, "unchanged", new.kind_name(), 0, None));
                    changes.push(Change {
                        path: rel.into(),
                        below: (mode == Mode::Installed).then(|| below.clone()),
                        above: new,
                        version: op.version.clone(),
                        below_version: cur_version.map(|v| v.0),
                    });
                    continue;
                }
                if let Node::File { data, .. } = &entry.node {
                    if let Some(base) = &data.base {
                        let cur_hash = match &below {
                            Snapshot::File { blake3, .. } => Some(blake3.as_str()),
                            _ => None,
                        };
                        if cur_hash != Some(base.as_str()) {
                            bail!(
                                "package {}: {} is not the version its delta was made against (BLAKE3 {}, found {}); \
                                 install the package that brings that version first, or use a package built without deltas",
                                m.id,
                                root.display(rel).display(),
                                short(base),
                                cur_hash.map(short).unwrap_or_else(|| below.kind_name().to_string())
                            );
                        }
                    }
                }
                if let Snapshot::Dir { .. } = below {
                    if !matches!(new, Snapshot::Dir { .. }) {
                        check_emptied(root, rel, &m.ops)?;
                    }
                }
                if let (Some(brings), Some((have, owner)), Snapshot::File { .. }) = (&op.version, &cur_version, &new) {
                    if version::compare(brings, have).is_lt() {
                        plan.downgrades.push(Downgrade {
                            path: rel.into(),
                            installed: have.clone(),
                            owner: owner.clone(),
                            brings: brings.clone(),
                        });
                    }
                }
                let mut backup = None;
                if let (Snapshot::File { blake3, size, .. }, Mode::Installed) = (&below, mode) {
                    backup = Some(blake3.clone());
                    count_backup(&mut backup_copy, root, rel, *size, objects_dev);
                }
                let mut below = below;
                if let (Found::File { dev, ino, nlink, .. }, Snapshot::File { link, .. }) = (&found, &mut below) {
                    if *nlink > 1 {
                        match inodes.get(&(*dev, *ino)) {
                            Some(first) => *link = Some(first.clone()),
                            None => {
                                inodes.insert((*dev, *ino), rel.to_string());
                            }
                        }
                    }
                }
                let (source, staged, bytes) = match (&new, &entry.node) {
                    (Snapshot::File { .. }, Node::Hardlink { target }) => {
                        let s = *step_of_path.get(target).with_context(|| {
                            format!("{rel}: hard link to {target}, which this package does not write on this root")
                        })?;
                        (
                            Source::Link { step: s },
                            Some(stage_name(root, created_dirs.contains(parent), rel, &tx, i)?),
                            0,
                        )
                    }
                    (Snapshot::File { size, .. }, _) => {
                        let st = stage_name(root, created_dirs.contains(parent), rel, &tx, i)?;
                        *staging.entry(parent_of(&st).to_string()).or_default() += size;
                        (Source::Package { op: i, base: None }, Some(st), *size)
                    }
                    (Snapshot::Symlink { .. }, _) => {
                        (Source::None, Some(stage_name(root, created_dirs.contains(parent), rel, &tx, i)?), 0)
                    }
                    _ => (Source::None, None, 0),
                };
                if let Snapshot::Dir { .. } = new {
                    created_dirs.insert(rel.to_string());
                }
                if let Snapshot::File { link, .. } = &mut new {
                    // Only a link made by this step is remembered as a link.
                    if !matches!(source, Source::Link { .. }) {
                        *link = None;
                    }
                }
                let change = if below == Snapshot::Absent { "add" } else { "replace" };
                if change == "add" {
                    plan.adds += 1;
                } else {
                    plan.replaces += 1;
                }
                plan.write_bytes += bytes;
                plan.items.push(Item {
                    path: rel.to_string(),
                    change,
                    kind: new.kind_name(),
                    bytes,
                    from_version: cur_version.as_ref().map(|v| v.0.clone()),
                    to_version: op.version.clone(),
                    note: (op.action == Action::Add && change == "replace")
                        .then(|| "the package adds it, but it exists; the old one is backed up".to_string()),
                });
                step_of_path.insert(rel.to_string(), steps.len());
                steps.push(Step { path: rel.into(), new: new.clone(), source, staged, backup });
                changes.push(Change {
                    path: rel.into(),
                    below: (mode == Mode::Installed).then_some(below),
                    above: new,
                    version: op.version.clone(),
                    below_version: cur_version.map(|v| v.0),
                });
            }
        }
    }
    // A deleted directory must end up empty, or it is kept.
    for d in deleted.iter().rev() {
        if root.inspect(d)? == Found::Dir {
            let children = rootfs::list_dir(&root.open_dir(d)?.expect("dir"), &root.display(d))?;
            let all_gone = children.iter().all(|c| {
                let p = format!("{d}/{}", String::from_utf8_lossy(c));
                deleted.contains(&p)
            });
            if !all_gone {
                plan.warnings.push(format!(
                    "{} holds entries the package does not delete; it is kept",
                    root.display(d).display()
                ));
            }
        }
    }
    plan.backup_bytes = backup_copy.values().sum();
    space(root, &mut plan, &staging, objects_dev)?;
    let mut after = state.clone();
    after.packages.push(Installed {
        id: m.id.clone(),
        title: m.title.clone(),
        version: m.version.clone(),
        kind: m.kind,
        mode,
        when: now_rfc3339(),
        source: pkg_path.display().to_string(),
        signer: match &pkg.signature {
            SignatureStatus::Signed { key_id, .. } => Some(key_id.clone()),
            SignatureStatus::Unsigned => None,
        },
        package_blake3: pkg.file_blake3().to_string(),
        supersedes: m.supersedes.clone(),
        requires: m.requires.clone(),
        changes,
        pending,
    });
    let journal = Journal {
        format: JOURNAL_FORMAT,
        txid: tx,
        action: plan.action.to_string(),
        package: m.id.clone(),
        phase: Phase::Prepare,
        steps,
        state_after: after,
        cache: Some((pkg_path.canonicalize().unwrap_or_else(|_| pkg_path.to_owned()), m.id.clone())),
        dir_times: vec![],
    };
    let mut journal = journal;
    journal.dir_times = crate::txn::dir_times(root, &journal.steps)?;
    Ok(Planned { plan, journal })
}

fn item(path: &str, change: &'static str, kind: &'static str, bytes: u64, note: Option<&str>) -> Item {
    Item {
        path: path.to_string(),
        change,
        kind,
        bytes,
        from_version: None,
        to_version: None,
        note: note.map(str::to_string),
    }
}

fn short(h: &str) -> String {
    h.chars().take(12).collect()
}

/// A staging name in the nearest directory of `rel` that exists now.
fn stage_name(root: &Root, parent_is_new: bool, rel: &str, tx: &str, i: usize) -> anyhow::Result<String> {
    let mut dir = parent_of(rel);
    if parent_is_new {
        while !dir.is_empty() && root.open_dir(dir)?.is_none() {
            dir = parent_of(dir);
        }
    }
    let name = format!(".slipway-{tx}-{i}");
    Ok(if dir.is_empty() { name } else { format!("{dir}/{name}") })
}

fn dev_of(p: &Path) -> Option<u64> {
    let mut p = p;
    loop {
        if let Ok(st) = rustix::fs::lstat(p) {
            return Some(st.st_dev);
        }
        p = p.parent()?;
    }
}

fn count_backup(acc: &mut HashMap<String, u64>, root: &Root, rel: &str, size: u64, objects_dev: Option<u64>) {
    let dev = dev_of(&root.display(rel));
    if dev != objects_dev {
        *acc.entry(rel.to_string()).or_default() += size;
    }
}

/// Free space needed per filesystem: staged files where they are staged,
/// copied backups in the backup store; with 1 MiB of slack for the journal
/// and state.
fn space(root: &Root, plan: &mut Plan, staging: &HashMap<String, u64>, objects_dev: Option<u64>) -> anyhow::Result<()> {
    let mut per_dev: HashMap<Option<u64>, (String, u64)> = HashMap::new();
    let state_dir = state::STATE_DIR.to_string();
    per_dev.insert(objects_dev, (state_dir, plan.backup_bytes + (1 << 20)));
    for (dir, bytes) in staging {
        let d = dev_of(&root.display(dir));
        per_dev.entry(d).or_insert_with(|| (dir.clone(), 0)).1 += bytes;
    }
    for (_, (dir, needed)) in per_dev {
        let mut probe = root.display(&dir);
        while !probe.exists() {
            if !probe.pop() {
                break;
            }
        }
        let f = std::fs::File::open(&probe).with_context(|| format!("opening {}", probe.display()))?;
        let st = rustix::fs::fstatvfs(f.as_fd()).with_context(|| format!("statvfs {}", probe.display()))?;
        plan.space.push(Space {
            at: probe.display().to_string(),
            needed,
            available: st.f_bavail.saturating_mul(st.f_frsize),
        });
    }
    Ok(())
}

/// A directory replaced by a non-directory must be emptied by the package.
fn check_emptied(root: &Root, rel: &str, ops: &[crate::manifest::Op]) -> anyhow::Result<()> {
    let fd = root.open_dir(rel)?.context("directory vanished")?;
    for c in rootfs::list_dir(&fd, &root.display(rel))? {
        let p = format!("{rel}/{}", String::from_utf8_lossy(&c));
        if !ops.iter().any(|o| o.path == p && o.action == Action::Delete) {
            bail!(
                "{} is a directory on the target with entries the package does not delete ({}); it cannot become a {}",
                root.display(rel).display(),
                p,
                "non-directory"
            );
        }
    }
    Ok(())
}

/// Plans the uninstall of package `id`.
pub fn uninstall(root: &Root, state: &State, id: &str, force: bool) -> anyhow::Result<Planned> {
    let k = state.find(id).with_context(|| {
        format!("package {id} is not installed on {}; `slipway packages` lists what is", root.path().display())
    })?;
    let p = &state.packages[k];
    if p.mode == Mode::Integrated {
        bail!(
            "package {id} was integrated into the image, not installed; integrated packages have no backup and cannot be \
             uninstalled (deploy an image version without it instead)"
        );
    }
    if !force {
        if let Some(dep) = state.packages.iter().find(|q| q.requires.iter().any(|r| r == id)) {
            bail!("package {} requires {id}; uninstall it first, or pass --force", dep.id);
        }
    }
    let mut plan = Plan::new("uninstall", id, &p.version);
    let mut after = state.clone();
    let mut steps: Vec<Step> = vec![];
    let tx = txid();
    let mut staging: HashMap<String, u64> = HashMap::new();
    let mut restored_from: HashMap<String, usize> = HashMap::new(); // object -> step
                                                                    // In path order, so a restored hard link only ever points at a step
                                                                    // staged before it.
    let mut changes: Vec<&Change> = p.changes.iter().collect();
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    for c in changes {
        let below = c.below.clone().context("change without backup")?;
        // A layer above on the same path takes our backup as its own.
        if let Some((j, jc)) = state
            .packages
            .iter()
            .enumerate()
            .skip(k + 1)
            .find_map(|(j, q)| q.changes.iter().position(|x| x.path == c.path).map(|jc| (j, jc)))
        {
            let upper = &mut after.packages[j].changes[jc];
            upper.below = Some(below);
            upper.below_version = c.below_version.clone();
            plan.items.push(Item {
                path: c.path.clone(),
                change: "keep",
                kind: upper.above.kind_name(),
                bytes: 0,
                from_version: None,
                to_version: None,
                note: Some(format!(
                    "{} above keeps it; its backup now holds the version below {id}",
                    state.packages[j].id
                )),
            });
            continue;
        }
        let found = root.inspect(&c.path)?;
        let now = if found == Found::Absent { Snapshot::Absent } else { snapshot(root, &c.path, &found)? };
        if !same(&now, &c.above) {
            plan.warnings.push(format!(
                "{} changed since {id} was installed; it is restored anyway",
                root.display(&c.path).display()
            ));
        }
        if same(&now, &below) {
            plan.unchanged += 1;
            plan.items.push(item(&c.path, "unchanged", below.kind_name(), 0, None));
            continue;
        }
        let parent = parent_of(&c.path);
        let parent_new = root.open_dir(parent)?.is_none();
        let (source, staged, bytes) = match &below {
            Snapshot::File { blake3, size, link, .. } => {
                let st = stage_name(root, parent_new, &c.path, &tx, steps.len())?;
                let linked = link.as_ref().and_then(|_| restored_from.get(blake3).copied());
                match linked {
                    Some(s) => (Source::Link { step: s }, Some(st), 0),
                    None => {
                        *staging.entry(parent_of(&st).to_string()).or_default() += size;
                        restored_from.insert(blake3.clone(), steps.len());
                        (Source::Object { blake3: blake3.clone() }, Some(st), *size)
                    }
                }
            }
            Snapshot::Symlink { .. } => {
                (Source::None, Some(stage_name(root, parent_new, &c.path, &tx, steps.len())?), 0)
            }
            _ => (Source::None, None, 0),
        };
        if let Snapshot::File { blake3, .. } = &below {
            let o = state::object_path(root.path(), blake3);
            if !o.exists() {
                bail!("the backup of {} ({}) is missing; the package cannot be uninstalled", c.path, o.display());
            }
        }
        plan.write_bytes += bytes;
        if below == Snapshot::Absent {
            plan.deletes += 1;
        } else {
            plan.replaces += 1;
        }
        plan.items.push(Item {
            path: c.path.clone(),
            change: if below == Snapshot::Absent { "delete" } else { "restore" },
            kind: below.kind_name(),
            bytes,
            from_version: c.version.clone(),
            to_version: c.below_version.clone(),
            note: None,
        });
        steps.push(Step { path: c.path.clone(), new: below, source, staged, backup: None });
    }
    after.packages.remove(k);
    let objects_dev = dev_of(&root.path().join(state::STATE_DIR));
    space(root, &mut plan, &staging, objects_dev)?;
    let journal = Journal {
        format: JOURNAL_FORMAT,
        txid: tx,
        action: "uninstall".into(),
        package: id.to_string(),
        phase: Phase::Prepare,
        steps,
        state_after: after,
        cache: None,
        dir_times: vec![],
    };
    let mut journal = journal;
    journal.dir_times = crate::txn::dir_times(root, &journal.steps)?;
    Ok(Planned { plan, journal })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951782400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1795395482), "2026-11-23T00:58:02Z");
    }
}
