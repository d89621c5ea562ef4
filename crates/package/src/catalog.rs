//! Verify and repair (the old signed file catalog and file protection).
//!
//! The catalog of a root is the signed manifests of its installed packages
//! (their copies in the package cache, whose signatures are checked again),
//! layered in install order, plus, when given, the image the root was
//! deployed from. Every file they own is compared with the disk: kind,
//! content (BLAKE3), mode and owner. `--repair` rewrites what differs from
//! the package cache (or the store, for image files) through the same
//! staged, journaled transactions as install.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use slipway_store::{EntryKind, ImageVersion, Store};

use crate::container::{OpenOptions, Package};
use crate::keys::TrustedKey;
use crate::manifest::{Action, Node};
use crate::plan::{self, op_snapshot, same, snapshot};
use crate::rootfs::{self, Found, Meta, Root};
use crate::state::{self, Change, Snapshot, State};
use crate::txn::{self, Journal, Phase, Progress, Source, Step, JOURNAL_FORMAT};

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub path: String,
    /// `missing`, `unexpected`, `kind`, `content`, `mode`, `owner`,
    /// `serviceable` (a file the package cache holds a newer version of).
    pub problem: &'static str,
    /// The package id, or `image NAME@VERSION`, that owns the path.
    pub owner: String,
    pub expected: String,
    pub found: String,
    pub repaired: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Paths checked.
    pub checked: usize,
    /// Packages whose catalog was used, with their signer.
    pub packages: Vec<(String, Option<String>)>,
    pub image: Option<String>,
    pub problems: Vec<Problem>,
    pub repaired: usize,
    /// Problems `--repair` could not fix, with the reason.
    pub unrepaired: Vec<(String, String)>,
}

pub struct VerifyOptions<'a> {
    pub trusted: &'a [TrustedKey],
    pub allow_unsigned: bool,
    pub repair: bool,
    /// The image the root was deployed from, to check its files too.
    pub image: Option<(&'a mut Store, ImageVersion)>,
}

fn describe(s: &Snapshot) -> String {
    match s {
        Snapshot::Absent => "absent".into(),
        Snapshot::File { blake3, size, meta, .. } => {
            format!(
                "file {} bytes blake3 {} mode {:o} owner {}:{}",
                size,
                &blake3[..12.min(blake3.len())],
                meta.mode,
                meta.uid,
                meta.gid
            )
        }
        Snapshot::Dir { meta } => format!("dir mode {:o} owner {}:{}", meta.mode, meta.uid, meta.gid),
        Snapshot::Symlink { target, meta } => format!("symlink to {target} owner {}:{}", meta.uid, meta.gid),
    }
}

/// Compares what is on disk with what the catalog says; `None` when equal.
fn compare(root: &Root, rel: &str, want: &Snapshot) -> anyhow::Result<Option<(&'static str, Snapshot)>> {
    let found = root.inspect(rel)?;
    let now = match &found {
        Found::Absent => Snapshot::Absent,
        Found::Other => return Ok(Some(("kind", Snapshot::Absent))),
        f => snapshot(root, rel, f)?,
    };
    let meta_of = |s: &Snapshot| -> Option<Meta> {
        match s {
            Snapshot::File { meta, .. } | Snapshot::Dir { meta } | Snapshot::Symlink { meta, .. } => Some(meta.clone()),
            Snapshot::Absent => None,
        }
    };
    let p = match (want, &now) {
        (Snapshot::Absent, Snapshot::Absent) => None,
        (Snapshot::Absent, _) => Some("unexpected"),
        (_, Snapshot::Absent) => Some("missing"),
        (Snapshot::File { blake3: a, .. }, Snapshot::File { blake3: b, .. }) if a != b => Some("content"),
        (Snapshot::Symlink { target: a, .. }, Snapshot::Symlink { target: b, .. }) if a != b => Some("content"),
        (w, n) if w.kind_name() != n.kind_name() => Some("kind"),
        (w, n) => {
            let (a, b) = (meta_of(w).expect("meta"), meta_of(n).expect("meta"));
            if a.uid != b.uid || a.gid != b.gid {
                Some("owner")
            } else if a.mode != b.mode && !matches!(w, Snapshot::Symlink { .. }) {
                Some("mode")
            } else {
                None
            }
        }
    };
    Ok(p.map(|p| (p, now)))
}

/// Opens the cached copy of every installed package, checking signatures.
fn catalog(root: &Root, st: &State, opts: &VerifyOptions) -> anyhow::Result<Vec<Package>> {
    let mut out = vec![];
    for p in &st.packages {
        let path = state::cache_path(root.path(), &p.id);
        let o = OpenOptions { trusted: opts.trusted, allow_unsigned: opts.allow_unsigned || p.signer.is_none() };
        let pkg = Package::open(&path, &o).with_context(|| {
            format!("the package cache copy of {} ({}) cannot be used as a catalog", p.id, path.display())
        })?;
        if pkg.file_blake3() != p.package_blake3 {
            anyhow::bail!("{} is not the package {} was installed from (BLAKE3 differs)", path.display(), p.id);
        }
        out.push(pkg);
    }
    Ok(out)
}

/// Checks (and with `repair`, fixes) a root against its catalog.
pub fn verify(root_path: &Path, mut opts: VerifyOptions, progress: &dyn Progress) -> anyhow::Result<VerifyReport> {
    let (root, _lock, _rec) = crate::service::open_root_for(root_path, opts.repair)?;
    let st = State::load(root.path())?;
    let pkgs = catalog(&root, &st, &opts)?;
    let mut rep = VerifyReport {
        packages: st.packages.iter().map(|p| (p.id.clone(), p.signer.clone())).collect(),
        ..Default::default()
    };
    // Path -> (package index, op index) of the top layer.
    let mut owned: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, (p, pkg)) in st.packages.iter().zip(&pkgs).enumerate() {
        let ops: HashMap<&str, usize> =
            pkg.manifest.ops.iter().enumerate().map(|(k, o)| (o.path.as_str(), k)).collect();
        for c in &p.changes {
            let k = *ops.get(c.path.as_str()).with_context(|| {
                format!("state.json says {} changed {}, but its signed manifest has no such operation", p.id, c.path)
            })?;
            owned.insert(c.path.clone(), (i, k));
        }
    }
    progress.phase("verifying", owned.len() as u64);
    // Package-owned paths.
    let mut fixes: BTreeMap<usize, Vec<(String, usize, Snapshot)>> = BTreeMap::new();
    for (path, &(i, k)) in &owned {
        progress.advance(1);
        rep.checked += 1;
        let want = op_snapshot(&pkgs[i], k)?;
        if let Some((problem, now)) = compare(&root, path, &want)? {
            rep.problems.push(Problem {
                path: path.clone(),
                problem,
                owner: st.packages[i].id.clone(),
                expected: describe(&want),
                found: describe(&now),
                repaired: false,
            });
            fixes.entry(i).or_default().push((path.clone(), k, want));
        }
    }
    // Files a package holds in its cache that have appeared since.
    let mut service: BTreeMap<usize, Vec<(String, usize, Snapshot)>> = BTreeMap::new();
    for (i, (p, pkg)) in st.packages.iter().zip(&pkgs).enumerate() {
        for path in &p.pending {
            if owned.contains_key(path) {
                continue;
            }
            let Some(k) = pkg.manifest.ops.iter().position(|o| &o.path == path && o.action != Action::Delete) else {
                continue;
            };
            rep.checked += 1;
            let found = root.inspect(path)?;
            if found == Found::Absent {
                continue;
            }
            let want = op_snapshot(pkg, k)?;
            let now = snapshot(&root, path, &found)?;
            if !same(&now, &want) {
                rep.problems.push(Problem {
                    path: path.clone(),
                    problem: "serviceable",
                    owner: p.id.clone(),
                    expected: describe(&want),
                    found: describe(&now),
                    repaired: false,
                });
                service.entry(i).or_default().push((path.clone(), k, want));
            }
        }
    }
    // Image-owned paths.
    let mut image_fixes = vec![];
    if let Some((store, image)) = opts.image.as_mut() {
        rep.image = Some(image.label());
        let mut stack = vec![(String::new(), image.record.root.tree)];
        let mut reader = store.reader();
        while let Some((dir, tree_id)) = stack.pop() {
            let tree = reader.tree(&tree_id)?;
            for e in &tree.entries {
                let name = String::from_utf8_lossy(e.name.as_bytes()).into_owned();
                let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
                if let EntryKind::Dir { tree } = &e.kind {
                    stack.push((rel.clone(), *tree));
                }
                if owned.contains_key(&rel) || state::is_reserved(&rel) {
                    continue;
                }
                let meta = Meta::of_metadata(&e.meta);
                let want = match &e.kind {
                    EntryKind::Dir { .. } => Snapshot::Dir { meta },
                    EntryKind::Symlink { target } => {
                        Snapshot::Symlink { target: String::from_utf8_lossy(target).into_owned(), meta }
                    }
                    EntryKind::File { size, .. } => {
                        let mut h = blake3::Hasher::new();
                        slipway_store::read_file(&mut reader, e, &mut h)?;
                        Snapshot::File { blake3: h.finalize().to_hex().to_string(), size: *size, meta, link: None }
                    }
                    _ => continue,
                };
                rep.checked += 1;
                if let Some((problem, now)) = compare(&root, &rel, &want)? {
                    rep.problems.push(Problem {
                        path: rel.clone(),
                        problem,
                        owner: format!("image {}", image.label()),
                        expected: describe(&want),
                        found: describe(&now),
                        repaired: false,
                    });
                    image_fixes.push((rel, e.clone()));
                }
            }
        }
    }
    if !opts.repair {
        return Ok(rep);
    }
    // Repairs of package files and servicing of pending ones: one
    // transaction per package.
    let mut st_now = st.clone();
    let keys: Vec<usize> =
        fixes.keys().chain(service.keys()).copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for i in keys {
        let pkg = &pkgs[i];
        let tx = format!("repair-{}-{}", std::process::id(), i);
        let mut steps = vec![];
        let mut after = st_now.clone();
        let entries = fixes.remove(&i).unwrap_or_default().into_iter().map(|x| (x, false));
        let pend = service.remove(&i).unwrap_or_default().into_iter().map(|x| (x, true));
        for ((path, k, want), is_pending) in entries.chain(pend) {
            let change = st.packages[i].changes.iter().find(|c| c.path == path);
            let node = pkg.manifest.ops[k].entry.as_ref().map(|e| &e.node);
            let delta = matches!(node, Some(Node::File { data, .. }) if data.encoding.is_delta());
            let base = match change.and_then(|c| c.below.as_ref()) {
                Some(Snapshot::File { blake3, .. }) if delta => Some(blake3.clone()),
                _ => None,
            };
            if delta && base.is_none() && !is_pending {
                rep.unrepaired.push((path.clone(), "its package holds a delta and no base is backed up".into()));
                continue;
            }
            let found = root.inspect(&path)?;
            let mut backup = None;
            if is_pending {
                let below = snapshot(&root, &path, &found)?;
                // A delta applies only to the version it was made against.
                let delta_base = match node {
                    Some(Node::File { data, .. }) if data.encoding.is_delta() => data.base.clone(),
                    _ => None,
                };
                let cur = match &below {
                    Snapshot::File { blake3, .. } => Some(blake3.clone()),
                    _ => None,
                };
                if delta_base.is_some() && delta_base != cur {
                    rep.unrepaired.push((
                        path.clone(),
                        "it is not the version the package's delta was made against; reinstall the package".into(),
                    ));
                    continue;
                }
                if let Snapshot::File { blake3, .. } = &below {
                    backup = Some(blake3.clone());
                }
                let p = &mut after.packages[i];
                p.pending.retain(|x| x != &path);
                p.changes.push(Change {
                    path: path.clone(),
                    below: Some(below),
                    above: want.clone(),
                    version: pkg.manifest.ops[k].version.clone(),
                    below_version: None,
                });
            }
            let staged = match want {
                Snapshot::File { .. } | Snapshot::Symlink { .. } => {
                    let parent = rootfs::parent_of(&path);
                    if root.open_dir(parent)?.is_none() {
                        rep.unrepaired.push((path.clone(), format!("its directory {parent} is missing")));
                        continue;
                    }
                    let n = format!(".slipway-{tx}-{}", steps.len());
                    Some(if parent.is_empty() { n } else { format!("{parent}/{n}") })
                }
                _ => None,
            };
            let source = match want {
                Snapshot::File { .. } => Source::Package { op: k, base },
                _ => Source::None,
            };
            steps.push(Step { path, new: want, source, staged, backup });
        }
        if steps.is_empty() {
            continue;
        }
        let n = steps.len();
        let paths: Vec<String> = steps.iter().map(|s| s.path.clone()).collect();
        let j = Journal {
            format: JOURNAL_FORMAT,
            txid: tx.clone(),
            action: "repair".into(),
            package: st.packages[i].id.clone(),
            phase: Phase::Prepare,
            steps,
            state_after: after.clone(),
            cache: None,
            dir_times: vec![],
        };
        let mut j = j;
        j.dir_times = txn::dir_times(&root, &j.steps)?;
        txn::run(&root, j, Some(pkg), progress)?;
        st_now = after;
        rep.repaired += n;
        for pr in rep.problems.iter_mut().filter(|p| paths.contains(&p.path)) {
            pr.repaired = true;
        }
        crate::log::event(
            &root,
            serde_json::json!({"time": plan::now_rfc3339(), "txid": tx, "action": "repair",
                "package": st.packages[i].id, "event": "done", "paths": paths}),
        )?;
    }
    // Image files: each rewritten from the store, staged and renamed.
    if let Some((store, _)) = opts.image.as_mut() {
        let mut reader = store.reader();
        for (rel, e) in image_fixes {
            match repair_image_entry(&root, &rel, &e, &mut reader) {
                Ok(()) => {
                    rep.repaired += 1;
                    for pr in rep.problems.iter_mut().filter(|p| p.path == rel) {
                        pr.repaired = true;
                    }
                }
                Err(err) => rep.unrepaired.push((rel, format!("{err:#}"))),
            }
        }
    }
    Ok(rep)
}

fn repair_image_entry(
    root: &Root,
    rel: &str,
    e: &slipway_store::TreeEntry,
    reader: &mut slipway_store::BlobReader<'_>,
) -> anyhow::Result<()> {
    let meta = Meta::of_metadata(&e.meta);
    let p = root.parent(rel)?.with_context(|| format!("the directory of {rel} is missing"))?;
    let full = root.display(rel);
    match &e.kind {
        EntryKind::File { .. } => {
            let tmp = format!(".slipway-repair-{}", std::process::id());
            let _ = rustix::fs::unlinkat(&p.dir, tmp.as_str(), rustix::fs::AtFlags::empty());
            let fd = rustix::fs::openat(
                &p.dir,
                tmp.as_str(),
                rustix::fs::OFlags::WRONLY
                    | rustix::fs::OFlags::CREATE
                    | rustix::fs::OFlags::EXCL
                    | rustix::fs::OFlags::NOFOLLOW,
                rustix::fs::Mode::from_raw_mode(0o600),
            )?;
            let mut f = std::fs::File::from(fd);
            {
                let mut w = std::io::BufWriter::new(&mut f);
                slipway_store::read_file(reader, e, &mut w)?;
                w.flush()?;
            }
            rootfs::set_meta_fd(&f, &meta, root.sets_owner(), &full)?;
            f.sync_all()?;
            if matches!(root.inspect(rel)?, Found::Dir) {
                anyhow::bail!("{} is a directory now; remove it first", full.display());
            }
            rustix::fs::renameat(&p.dir, tmp.as_str(), &p.dir, p.name())?;
        }
        EntryKind::Dir { .. } => {
            if root.inspect(rel)? == Found::Absent {
                rustix::fs::mkdirat(&p.dir, p.name(), rustix::fs::Mode::from_raw_mode(0o700))?;
            }
            let fd = root.open_dir(rel)?.context("directory")?;
            rootfs::set_meta_fd(&fd, &meta, root.sets_owner(), &full)?;
        }
        EntryKind::Symlink { target } => {
            let tmp = format!(".slipway-repair-{}", std::process::id());
            let _ = rustix::fs::unlinkat(&p.dir, tmp.as_str(), rustix::fs::AtFlags::empty());
            rustix::fs::symlinkat(std::ffi::OsStr::new(&*String::from_utf8_lossy(target)), &p.dir, tmp.as_str())?;
            rootfs::set_meta_symlink(&p.dir, std::ffi::OsStr::new(&tmp), &meta, root.sets_owner(), &full)?;
            rustix::fs::renameat(&p.dir, tmp.as_str(), &p.dir, p.name())?;
        }
        _ => anyhow::bail!("devices and FIFOs are not repaired"),
    }
    rootfs::sync_dir(&p.dir, &full)?;
    Ok(())
}
