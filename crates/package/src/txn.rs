//! Transactions on a root: a write-ahead journal, staged entries, atomic
//! renames, and recovery.
//!
//! A transaction runs in two phases, each announced by the journal
//! (`var/lib/slipway/journal.json`, written atomically and synced before the
//! phase starts):
//!
//! 1. **prepare**: backups are linked or copied into the object store, every
//!    new file and symlink is written and synced under a staging name
//!    (`.slipway-TXID-N`) in the nearest existing directory on the path, and
//!    the package is copied into the package cache. Nothing the root's users
//!    see has changed. A crash here is rolled back: the staged entries are
//!    removed.
//! 2. **commit**: entries to remove go first (children before parents), new
//!    directories are made (parents first), staged entries are renamed into
//!    place (each rename atomic: a program holding the old file keeps its
//!    inode), directory metadata is set (deepest first), the state is saved
//!    and the journal removed. Every step is idempotent, so a crash here is
//!    rolled forward by doing the steps again.
//!
//! The root is therefore always wholly old or, after recovery, wholly new.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::container::Package;
use crate::rootfs::{self, name_of, parent_of, Found, Root};
use crate::state::{self, Snapshot, State, STATE_DIR};

pub const JOURNAL_FORMAT: u32 = 1;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Prepare,
    Commit,
}

/// Where the content of a staged entry comes from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "from", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    /// Decoded from operation `op` of the package; a delta's base is the
    /// backup object `base` when given, else the current content of the path.
    Package {
        op: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<String>,
    },
    /// Copied from a backup object.
    Object { blake3: String },
    /// A hard link to the entry staged by step `step`.
    Link { step: usize },
    /// Nothing to stage (directories, removals).
    None,
}

/// One path of a transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub path: String,
    /// The entry the path ends as.
    pub new: Snapshot,
    pub source: Source,
    /// Staging name, relative to the root, for files and symlinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staged: Option<String>,
    /// Back the current file up into this object before committing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub format: u32,
    pub txid: String,
    /// `install`, `uninstall`, `integrate` or `repair`.
    pub action: String,
    pub package: String,
    pub phase: Phase,
    pub steps: Vec<Step>,
    /// The state to save when the transaction commits.
    pub state_after: State,
    /// Package file to copy into the cache (absolute path), and its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<(PathBuf, String)>,
    /// Modification times of the existing directories the transaction
    /// creates, renames or removes entries in: put back after rollback, and
    /// after commit before the package's own directory metadata is set, so
    /// the root's directories are exactly old or exactly new.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dir_times: Vec<(String, (i64, u32))>,
}

/// The directories a transaction's steps touch, with their current mtimes.
pub fn dir_times(root: &Root, steps: &[Step]) -> anyhow::Result<Vec<(String, (i64, u32))>> {
    let mut dirs: Vec<&str> = steps.iter().map(|s| parent_of(&s.path)).collect();
    dirs.extend(steps.iter().filter_map(|s| s.staged.as_deref()).map(parent_of));
    dirs.sort();
    dirs.dedup();
    let mut out = vec![];
    for d in dirs {
        if root.inspect(d)? == Found::Dir || d.is_empty() {
            out.push((d.to_string(), root.meta(d)?.mtime));
        }
    }
    Ok(out)
}

fn restore_dir_times(root: &Root, j: &Journal) -> anyhow::Result<()> {
    for (d, t) in &j.dir_times {
        let Some(fd) = root.open_dir(d)? else { continue };
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
            last_modification: rustix::fs::Timespec { tv_sec: t.0, tv_nsec: t.1 as _ },
        };
        rustix::fs::futimens(&fd, &ts).with_context(|| format!("setting mtime of {}", root.display(d).display()))?;
    }
    Ok(())
}

pub fn journal_path(root: &Path) -> PathBuf {
    root.join(STATE_DIR).join("journal.json")
}

/// The journal file: a line with the BLAKE3 of the JSON that follows it,
/// then the JSON. Written atomically; the checksum catches damage at rest.
fn save_journal(root: &Path, j: &Journal) -> anyhow::Result<()> {
    let body = serde_json::to_vec(j)?;
    let mut bytes = format!("{}\n", blake3::hash(&body).to_hex()).into_bytes();
    bytes.extend_from_slice(&body);
    state::write_atomic(&journal_path(root), &bytes)
}

fn parse_journal(bytes: &[u8]) -> Result<Journal, String> {
    let nl = bytes.iter().position(|&b| b == b'\n').ok_or("no checksum line")?;
    let (sum, body) = (&bytes[..nl], &bytes[nl + 1..]);
    if sum != blake3::hash(body).to_hex().as_bytes() {
        return Err("its checksum does not match its content".into());
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Hook for tests of crash safety: `SLIPWAY_CRASH_AFTER=N` makes the process
/// exit abruptly (as `kill -9` would) after the Nth durable action of a
/// transaction. Never set in normal use.
pub(crate) fn crash_point() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    if let Some(n) = std::env::var_os("SLIPWAY_CRASH_AFTER").and_then(|v| v.to_str()?.parse::<u64>().ok()) {
        if COUNT.fetch_add(1, Ordering::SeqCst) + 1 == n {
            // As abrupt as `kill -9` for what is on disk: no more writes,
            // nothing cleaned up (and no core file, unlike abort()).
            std::process::exit(137);
        }
    }
}

/// Runs a transaction to completion.
pub fn run(root: &Root, mut j: Journal, pkg: Option<&Package>, progress: &dyn Progress) -> anyhow::Result<()> {
    j.phase = Phase::Prepare;
    save_journal(root.path(), &j)?;
    crash_point();
    if let Err(e) = prepare(root, &j, pkg, progress) {
        let _ = rollback(root, &j);
        return Err(e);
    }
    j.phase = Phase::Commit;
    save_journal(root.path(), &j)?;
    crash_point();
    commit(root, &j, progress)
}

/// What a transaction reports while it runs.
pub trait Progress {
    fn phase(&self, _name: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn note(&self, _msg: &str) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

fn prepare(root: &Root, j: &Journal, pkg: Option<&Package>, progress: &dyn Progress) -> anyhow::Result<()> {
    progress.phase("staging", j.steps.len() as u64);
    // Backups first: they must exist before anything could be replaced.
    for s in &j.steps {
        if let Some(obj) = &s.backup {
            backup(root, &s.path, obj)?;
            crash_point();
        }
    }
    for s in &j.steps {
        progress.advance(1);
        let Some(staged) = &s.staged else { continue };
        stage(root, j, s, staged, pkg).with_context(|| format!("staging {}", root.display(&s.path).display()))?;
        crash_point();
    }
    // Make the staged entries and backups durable: one syncfs per
    // filesystem rather than an fsync per file.
    let mut dirs: Vec<&str> = j.steps.iter().filter_map(|s| s.staged.as_deref()).map(parent_of).collect();
    dirs.push(STATE_DIR);
    sync_filesystems(root, dirs)?;
    if let (Some((src, id)), Some(_)) = (&j.cache, pkg) {
        let dest = state::cache_path(root.path(), id);
        if !dest.exists() {
            state::copy_atomic(src, &dest)?;
        }
    }
    Ok(())
}

/// `syncfs` once on each filesystem holding one of `dirs` (relative to the
/// root): the data, metadata and directory entries written there are
/// durable when it returns.
fn sync_filesystems(root: &Root, mut dirs: Vec<&str>) -> anyhow::Result<()> {
    dirs.sort();
    dirs.dedup();
    let mut done = std::collections::HashSet::new();
    for d in dirs {
        let Some(fd) = root.open_dir(d)? else { continue };
        let dev = rustix::fs::fstat(&fd).with_context(|| format!("inspecting {}", root.display(d).display()))?.st_dev;
        if done.insert(dev) {
            rustix::fs::syncfs(&fd)
                .with_context(|| format!("syncing the filesystem of {}", root.display(d).display()))?;
        }
    }
    Ok(())
}

/// A writer that also hashes and counts what goes through it.
struct Tee<W: Write> {
    out: W,
    hash: blake3::Hasher,
    len: u64,
}

impl<W: Write> Write for Tee<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.out.write(b)?;
        self.hash.update(&b[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Copies (or hard-links, on the same filesystem) the file at `rel` into
/// the object store as `obj`, and checks its hash.
fn backup(root: &Root, rel: &str, obj: &str) -> anyhow::Result<()> {
    let dest = state::object_path(root.path(), obj);
    if dest.exists() {
        return Ok(());
    }
    let dir = dest.parent().expect("object has a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{obj}.tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let p = root.parent(rel)?.with_context(|| format!("{} vanished before its backup", root.display(rel).display()))?;
    let dfd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("opening {}", dir.display()))?;
    let tmp_name = tmp.file_name().expect("name");
    match rustix::fs::linkat(&p.dir, p.name(), &dfd, tmp_name, AtFlags::empty()) {
        Ok(()) => {}
        Err(Errno::XDEV) | Err(Errno::PERM) | Err(Errno::MLINK) => {
            let mut src = root.open_file(rel)?;
            let mut out = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            io::copy(&mut src, &mut out).with_context(|| format!("copying {} to {}", rel, tmp.display()))?;
            out.sync_all()?;
        }
        Err(e) => {
            return Err(e).with_context(|| format!("linking {} into the backup store", root.display(rel).display()))
        }
    }
    let got = rootfs::hash_file(fs::File::open(&tmp)?)?;
    if got != obj {
        let _ = fs::remove_file(&tmp);
        bail!("{} changed while the transaction was planned; run the command again", root.display(rel).display());
    }
    fs::rename(&tmp, &dest).with_context(|| format!("renaming {}", tmp.display()))?;
    // Made durable with the staged files (one syncfs), before the commit.
    Ok(())
}

fn stage(root: &Root, j: &Journal, s: &Step, staged: &str, pkg: Option<&Package>) -> anyhow::Result<()> {
    let dir_rel = parent_of(staged);
    let dir = root.open_dir(dir_rel)?.with_context(|| format!("staging directory {dir_rel} is missing"))?;
    let name = name_of(staged);
    let full = root.display(staged);
    // A staged entry left by an interrupted attempt is replaced.
    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
    match (&s.new, &s.source) {
        (Snapshot::File { .. }, Source::Link { step }) => {
            let other = j.steps[*step].staged.as_deref().context("link source is not staged")?;
            let odir = root.open_dir(parent_of(other))?.context("staging directory missing")?;
            rustix::fs::linkat(&odir, name_of(other), &dir, name, AtFlags::empty())
                .with_context(|| format!("linking {}", full.display()))?;
        }
        (Snapshot::File { blake3, size, meta, .. }, src) => {
            let fd = rustix::fs::openat(
                &dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .with_context(|| format!("creating {}", full.display()))?;
            let mut f = fs::File::from(fd);
            // Hashed on the way in, so the staged copy is never read back.
            let mut w = Tee { out: io::BufWriter::with_capacity(1 << 20, &mut f), hash: blake3::Hasher::new(), len: 0 };
            match src {
                Source::Package { op, base } => {
                    let pkg = pkg.context("no package for a package source")?;
                    let node = &pkg.manifest.ops[*op].entry.as_ref().context("op has no entry")?.node;
                    let base = match (node, base) {
                        (crate::manifest::Node::File { data, .. }, Some(obj)) if data.encoding.is_delta() => {
                            let p = state::object_path(root.path(), obj);
                            Some(fs::read(&p).with_context(|| format!("reading backup {}", p.display()))?)
                        }
                        (crate::manifest::Node::File { data, .. }, None) if data.encoding.is_delta() => {
                            Some(root.read(&s.path)?)
                        }
                        _ => None,
                    };
                    pkg.decode_to(node, base.as_deref(), &mut w)?;
                }
                Source::Object { blake3: obj } => {
                    let op = state::object_path(root.path(), obj);
                    let mut src = fs::File::open(&op)
                        .with_context(|| format!("opening backup {}; the backup store is damaged", op.display()))?;
                    io::copy(&mut src, &mut w).with_context(|| format!("copying backup {}", op.display()))?;
                }
                _ => bail!("no content for a staged file"),
            }
            w.out.flush().with_context(|| format!("writing {}", full.display()))?;
            let (len, got) = (w.len, w.hash.finalize().to_hex().to_string());
            drop(w);
            if len != *size {
                bail!("staged {} has {len} bytes, expected {size}", full.display());
            }
            if &got != blake3 {
                bail!("staged {} has BLAKE3 {got}, expected {blake3}", full.display());
            }
            rootfs::set_meta_fd(&f, meta, root.sets_owner(), &full)?;
            // Synced with every other staged file before the commit point.
        }
        (Snapshot::Symlink { target, meta }, _) => {
            rustix::fs::symlinkat(OsStr::from_bytes(target.as_bytes()), &dir, name)
                .with_context(|| format!("creating symlink {}", full.display()))?;
            rootfs::set_meta_symlink(&dir, name, meta, root.sets_owner(), &full)?;
        }
        _ => {}
    }
    Ok(())
}

/// Removes what a transaction staged (a crash during prepare).
pub fn rollback(root: &Root, j: &Journal) -> anyhow::Result<()> {
    for s in &j.steps {
        if let Some(staged) = &s.staged {
            if let Some(dir) = root.open_dir(parent_of(staged))? {
                match rustix::fs::unlinkat(&dir, name_of(staged), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e).with_context(|| format!("removing {}", root.display(staged).display())),
                }
            }
        }
    }
    restore_dir_times(root, j)?;
    let jp = journal_path(root.path());
    fs::remove_file(&jp).with_context(|| format!("removing {}", jp.display()))?;
    Ok(())
}

fn matches(root: &Root, rel: &str, want: &Snapshot) -> anyhow::Result<bool> {
    Ok(match (root.inspect(rel)?, want) {
        (Found::Absent, Snapshot::Absent) => true,
        (Found::File { size, .. }, Snapshot::File { blake3, size: s2, .. }) => {
            size == *s2 && &root.hash(rel)? == blake3
        }
        (Found::Symlink { target }, Snapshot::Symlink { target: t2, .. }) => target == t2.as_bytes(),
        (Found::Dir, Snapshot::Dir { .. }) => true,
        _ => false,
    })
}

fn same_kind(found: &Found, want: &Snapshot) -> bool {
    matches!(
        (found, want),
        (Found::Absent, Snapshot::Absent)
            | (Found::File { .. }, Snapshot::File { .. })
            | (Found::Dir, Snapshot::Dir { .. })
            | (Found::Symlink { .. }, Snapshot::Symlink { .. })
    )
}

/// Removes the entry at `rel` (a directory only if empty).
fn remove(root: &Root, rel: &str) -> anyhow::Result<bool> {
    let Some(p) = root.parent(rel)? else { return Ok(true) };
    let full = root.display(rel);
    let is_dir = matches!(rootfs::inspect_at(&p.dir, p.name(), &full)?, Found::Dir);
    let flags = if is_dir { AtFlags::REMOVEDIR } else { AtFlags::empty() };
    match rustix::fs::unlinkat(&p.dir, p.name(), flags) {
        Ok(()) | Err(Errno::NOENT) => Ok(true),
        Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("removing {}", full.display())),
    }
}

/// Makes the changes visible. Every step can run again after a crash.
pub fn commit(root: &Root, j: &Journal, progress: &dyn Progress) -> anyhow::Result<()> {
    progress.phase("committing", j.steps.len() as u64);
    // 1. Removals: entries to delete, and entries whose kind changes;
    //    children before parents.
    let mut order: Vec<usize> = (0..j.steps.len()).collect();
    order.sort_by(|&a, &b| j.steps[b].path.cmp(&j.steps[a].path));
    for &i in &order {
        let s = &j.steps[i];
        let found = root.inspect(&s.path)?;
        if found != Found::Absent && !same_kind(&found, &s.new) && !remove(root, &s.path)? {
            if matches!(s.new, Snapshot::Absent) {
                progress.note(&format!("kept {}: the directory is not empty", root.display(&s.path).display()));
            } else {
                bail!("cannot replace directory {}: it is not empty", root.display(&s.path).display());
            }
        }
        crash_point();
    }
    // 2. New directories, parents first.
    order.reverse();
    for &i in &order {
        let s = &j.steps[i];
        if let Snapshot::Dir { .. } = s.new {
            let p = root.parent(&s.path)?.with_context(|| format!("parent of {} is missing", s.path))?;
            match rustix::fs::mkdirat(&p.dir, p.name(), Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", root.display(&s.path).display())),
            }
        }
    }
    // 3. Staged entries into place.
    for s in &j.steps {
        progress.advance(1);
        let Some(staged) = &s.staged else { continue };
        let sdir = root.open_dir(parent_of(staged))?;
        let present = match &sdir {
            Some(d) => !matches!(rootfs::inspect_at(d, name_of(staged), &root.display(staged))?, Found::Absent),
            None => false,
        };
        if present {
            let p = root.parent(&s.path)?.with_context(|| format!("parent of {} is missing", s.path))?;
            rustix::fs::renameat(sdir.as_ref().expect("present"), name_of(staged), &p.dir, p.name())
                .with_context(|| format!("renaming {} to {}", staged, root.display(&s.path).display()))?;
            crash_point();
        } else if !matches(root, &s.path, &s.new)? {
            bail!(
                "{}: its staged copy {} is gone and the path does not hold the new content; the journal {} cannot be completed",
                root.display(&s.path).display(),
                staged,
                journal_path(root.path()).display()
            );
        }
    }
    // 4. Directory metadata: first the old times of every directory the
    //    transaction touched, then the new metadata of the package's own
    //    directories, deepest first.
    restore_dir_times(root, j)?;
    order.reverse();
    for &i in &order {
        let s = &j.steps[i];
        if let Snapshot::Dir { meta } = &s.new {
            let fd = root.open_dir(&s.path)?.with_context(|| format!("{} is missing", s.path))?;
            rootfs::set_meta_fd(&fd, meta, root.sets_owner(), &root.display(&s.path))?;
        }
    }
    // 5. Durable: every filesystem that changed.
    let mut dirs: Vec<&str> = j.steps.iter().map(|s| parent_of(&s.path)).collect();
    dirs.extend(j.steps.iter().filter_map(|s| s.staged.as_deref()).map(parent_of));
    sync_filesystems(root, dirs)?;
    state::save(root.path(), &j.state_after)?;
    crash_point();
    fs::remove_file(journal_path(root.path())).context("removing the journal")?;
    gc(root.path(), &j.state_after)?;
    Ok(())
}

/// Removes backup objects and cached packages the state no longer needs.
pub fn gc(root: &Path, st: &State) -> anyhow::Result<()> {
    let keep = st.objects();
    let objects = root.join(STATE_DIR).join("objects");
    if let Ok(rd) = fs::read_dir(&objects) {
        for d in rd.flatten() {
            for f in fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let n = f.file_name().to_string_lossy().into_owned();
                if !keep.contains(&n) {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
    }
    let cache = root.join(STATE_DIR).join("packages");
    if let Ok(rd) = fs::read_dir(&cache) {
        for f in rd.flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            let id = n.strip_suffix(".slwpkg").unwrap_or(&n);
            if n.starts_with('.') || st.find(id).is_none() {
                let _ = fs::remove_file(f.path());
            }
        }
    }
    Ok(())
}

/// What recovery did.
#[derive(Clone, Debug, Serialize)]
pub struct Recovered {
    pub txid: String,
    pub action: String,
    pub package: String,
    /// `rolled-back` or `rolled-forward`.
    pub outcome: &'static str,
}

/// Finishes or rolls back an interrupted transaction, if there is one.
pub fn recover(root: &Root) -> anyhow::Result<Option<Recovered>> {
    let jp = journal_path(root.path());
    let bytes = match fs::read(&jp) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", jp.display())),
    };
    let j: Journal = parse_journal(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "the journal {} is damaged ({e}); it is written atomically, so this is not a crash: inspect it by hand",
            jp.display()
        )
    })?;
    if j.format != JOURNAL_FORMAT {
        bail!("{}: journal format {} is not supported", jp.display(), j.format);
    }
    let outcome = match j.phase {
        Phase::Prepare => {
            rollback(root, &j)?;
            gc(root.path(), &State::load(root.path())?)?;
            "rolled-back"
        }
        Phase::Commit => {
            commit(root, &j, &NoProgress)?;
            "rolled-forward"
        }
    };
    Ok(Some(Recovered { txid: j.txid, action: j.action, package: j.package, outcome }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_journal_is_recognised() {
        let t = tempfile::tempdir().unwrap();
        let j = Journal {
            format: JOURNAL_FORMAT,
            txid: "1-2".into(),
            action: "install".into(),
            package: "HF-1".into(),
            phase: Phase::Commit,
            steps: vec![],
            state_after: State::default(),
            cache: None,
            dir_times: vec![],
        };
        save_journal(t.path(), &j).unwrap();
        let mut bytes = fs::read(journal_path(t.path())).unwrap();
        assert_eq!(parse_journal(&bytes).unwrap().txid, "1-2");
        let n = bytes.len();
        bytes[n - 5] ^= 1;
        assert!(parse_journal(&bytes).unwrap_err().contains("checksum"));
        assert!(parse_journal(b"{}").is_err());
    }
}
