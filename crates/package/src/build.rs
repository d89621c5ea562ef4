//! Making packages: from a directory and a TOML manifest
//! (`package build --from DIR --manifest FILE`), or from the difference
//! between two trees (`package build --diff OLD NEW`).
//!
//! Trees are read with [`slipway_fstree::scan`]; one file's content is in
//! memory at a time (two for a delta: the old and the new).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;
use slipway_fstree::{display_bytes, open_source_file, scan, Metadata, NodeKind, ScanOptions};

use crate::container::{self, check_id, check_path, check_version, PayloadWriter};
use crate::delta::{encode, EncodeOptions};
use crate::manifest::{
    Action, AppliesTo, Entry, Kind, Manifest, Node, OldEntry, OldKind, Op, PayloadInfo, MANIFEST_FORMAT,
};

/// What a package is, besides its operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: String,
    pub title: String,
    pub version: String,
    pub kind: Kind,
    pub description: String,
    pub applies_to: AppliesTo,
    pub requires: Vec<String>,
    pub supersedes: Vec<String>,
}

/// How payloads are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Store replaced files as deltas against their old content when smaller.
    pub deltas: bool,
    /// zstd level.
    pub level: i32,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self { deltas: true, level: 19 }
    }
}

/// What a build made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildReport {
    pub ops: usize,
    pub added: usize,
    pub replaced: usize,
    pub deleted: usize,
    /// Sum of the sizes of the files the package writes.
    pub content_bytes: u64,
    pub payload_bytes: u64,
    /// What the payload would be with every file stored as full zstd.
    pub full_payload_bytes: u64,
    /// Files stored as deltas.
    pub deltas: usize,
    /// Size of the package file.
    pub package_bytes: u64,
}

/// The TOML manifest of `package build --from`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirManifest {
    id: String,
    title: String,
    version: String,
    kind: Kind,
    #[serde(default)]
    description: String,
    #[serde(default)]
    applies_to: AppliesTo,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    supersedes: Vec<String>,
    /// Paths the package deletes.
    #[serde(default)]
    delete: Vec<String>,
    /// Path → version of the file.
    #[serde(default)]
    versions: BTreeMap<String, String>,
    /// Version of every operation not in `versions`.
    #[serde(default)]
    default_version: Option<String>,
}

/// A path inside a tree as its components: ordering by it puts parents
/// right before their children (`a`, `a/b`, `a.txt`).
type Key = Vec<String>;

fn key_of(path: &str) -> Key {
    path.split('/').map(String::from).collect()
}

/// One entry of a scanned tree.
#[derive(Clone, Debug)]
struct Item {
    meta: Metadata,
    kind: ItemKind,
    hardlink: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ItemKind {
    Dir,
    File { size: u64 },
    Symlink(String),
    Special(&'static str),
}

/// Scans `root` into a map from path to entry (the root itself left out).
fn flatten(root: &Path) -> anyhow::Result<BTreeMap<Key, Item>> {
    let (_, nodes, stats) =
        scan(root, &ScanOptions::default()).with_context(|| format!("reading {}", root.display()))?;
    if let Some((p, why)) = stats.skipped.first() {
        bail!("{} is {why}; packages carry only files, directories and symlinks: remove it", p.display());
    }
    let mut out = BTreeMap::new();
    let mut stack: Vec<(Key, Vec<slipway_fstree::Node>)> = vec![(Vec::new(), nodes)];
    while let Some((prefix, nodes)) = stack.pop() {
        for n in nodes {
            let Ok(name) = String::from_utf8(n.name.as_bytes().to_vec()) else {
                let shown: Vec<String> = prefix.iter().cloned().chain([n.name.to_string()]).collect();
                bail!(
                    "{}/{} has a name that is not UTF-8; package paths must be UTF-8: rename it",
                    root.display(),
                    shown.join("/")
                );
            };
            let mut key = prefix.clone();
            key.push(name);
            // slipway's own state, logs and trust on a serviced root are
            // not content of an update.
            if crate::state::is_reserved(&key.join("/")) {
                continue;
            }
            let kind = match n.kind {
                NodeKind::Dir(children) => {
                    stack.push((key.clone(), children));
                    ItemKind::Dir
                }
                NodeKind::File { size, .. } => ItemKind::File { size },
                NodeKind::Symlink(t) => ItemKind::Symlink(String::from_utf8(t).map_err(|t| {
                    anyhow::anyhow!(
                        "{}/{} is a symlink whose target {} is not UTF-8; package paths must be UTF-8",
                        root.display(),
                        key.join("/"),
                        display_bytes(t.as_bytes())
                    )
                })?),
                NodeKind::CharDev(_) => ItemKind::Special("a character device"),
                NodeKind::BlockDev(_) => ItemKind::Special("a block device"),
                NodeKind::Fifo => ItemKind::Special("a FIFO"),
            };
            out.insert(key, Item { meta: n.meta, kind, hardlink: n.hardlink });
        }
    }
    Ok(out)
}

fn special_error(root: &Path, key: &Key, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}/{} is {what}; packages carry only files, directories and symlinks: remove it or leave it out",
        root.display(),
        key.join("/")
    )
}

fn read_file(root: &Path, key: &Key, size: u64) -> anyhow::Result<Vec<u8>> {
    let path: PathBuf = root.join(key.join("/"));
    let mut f = open_source_file(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    f.read_to_end(&mut buf).with_context(|| format!("reading {}", path.display()))?;
    if buf.len() as u64 != size {
        bail!("{} changed while the package was being built; build again", path.display());
    }
    Ok(buf)
}

fn entry_of(meta: &Metadata, node: Node) -> Entry {
    let m = crate::rootfs::Meta::of_metadata(meta);
    Entry { node, mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, xattrs: m.xattrs }
}

/// Accumulates ops and payload, then writes the package.
struct Builder {
    payload: PayloadWriter,
    ops: Vec<Op>,
    report: BuildReport,
    opts: BuildOptions,
    /// Hard-link group of the new tree → path of the File op written for it.
    groups: HashMap<u64, String>,
}

impl Builder {
    fn new(out: &Path, opts: &BuildOptions) -> anyhow::Result<Self> {
        Ok(Self {
            payload: PayloadWriter::new(out)?,
            ops: Vec::new(),
            report: BuildReport::default(),
            opts: *opts,
            groups: HashMap::new(),
        })
    }

    /// An add or replace of `key` with the entry `item` of tree `root`.
    /// `old` is the old entry and, for a file, its content (a delta base).
    fn write_op(
        &mut self,
        action: Action,
        root: &Path,
        key: &Key,
        item: &Item,
        old: Option<(OldEntry, Option<Vec<u8>>)>,
    ) -> anyhow::Result<()> {
        let path = key.join("/");
        let node = match &item.kind {
            ItemKind::Dir => Node::Dir,
            ItemKind::Symlink(t) => Node::Symlink { target: t.clone() },
            ItemKind::Special(what) => return Err(special_error(root, key, what)),
            ItemKind::File { size } => {
                if let Some(target) = item.hardlink.and_then(|g| self.groups.get(&g)) {
                    Node::Hardlink { target: target.clone() }
                } else {
                    if let Some(g) = item.hardlink {
                        self.groups.insert(g, path.clone());
                    }
                    let content = read_file(root, key, *size)?;
                    let base = old.as_ref().and_then(|(_, b)| b.as_deref());
                    let enc =
                        encode(&content, base, EncodeOptions { level: self.opts.level, deltas: self.opts.deltas })
                            .with_context(|| format!("compressing {}", root.join(&path).display()))?;
                    self.report.content_bytes += *size;
                    self.report.full_payload_bytes += enc.full_len;
                    if enc.encoding.is_delta() {
                        self.report.deltas += 1;
                    }
                    let data = self.payload.append(&enc)?;
                    Node::File { size: *size, blake3: blake3::hash(&content).to_hex().to_string(), data }
                }
            }
        };
        match action {
            Action::Add => self.report.added += 1,
            _ => self.report.replaced += 1,
        }
        self.ops.push(Op {
            action,
            path,
            entry: Some(entry_of(&item.meta, node)),
            old: old.map(|(o, _)| o),
            version: None,
        });
        Ok(())
    }

    fn delete_op(&mut self, path: String, old: Option<OldEntry>) {
        self.report.deleted += 1;
        self.ops.push(Op { action: Action::Delete, path, entry: None, old, version: None });
    }

    fn finish(mut self, header: Header, out: &Path, key: Option<&minisign::SecretKey>) -> anyhow::Result<BuildReport> {
        let mut manifest = Manifest {
            format: MANIFEST_FORMAT,
            id: header.id,
            title: header.title,
            version: header.version,
            kind: header.kind,
            description: header.description,
            created: created_now()?,
            applies_to: header.applies_to,
            requires: header.requires,
            supersedes: header.supersedes,
            ops: std::mem::take(&mut self.ops),
            payload: PayloadInfo::default(),
        };
        self.report.ops = manifest.ops.len();
        self.report.payload_bytes = self.payload.len();
        self.report.package_bytes = container::write(out, &mut manifest, self.payload, key)
            .with_context(|| format!("writing package {}", out.display()))?;
        Ok(self.report)
    }
}

/// The creation time: `SOURCE_DATE_EPOCH` when set (reproducible builds),
/// the clock otherwise; RFC 3339 UTC.
fn created_now() -> anyhow::Result<String> {
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => {
            v.trim().parse::<i64>().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"))?
        }
        Err(_) => {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
        }
    };
    Ok(slipway_store::rfc3339(secs))
}

fn check_header(h: &Header) -> anyhow::Result<()> {
    check_id(&h.id).map_err(anyhow::Error::msg)?;
    check_version("package version", &h.version).map_err(anyhow::Error::msg)?;
    for r in h.requires.iter().chain(&h.supersedes) {
        check_id(r).map_err(|e| anyhow::anyhow!("in requires/supersedes: {e}"))?;
    }
    Ok(())
}

/// `package build --from DIR --manifest FILE`: every entry below `dir`
/// becomes a `replace` operation (directories too, with their metadata;
/// `dir` itself is not one), hard links become hard-link operations, and the
/// TOML manifest gives the header, `delete = [paths]`, `[versions]` (path →
/// version) and `default_version`.
pub fn from_dir(
    dir: &Path,
    manifest_toml: &Path,
    opts: &BuildOptions,
    key: Option<&minisign::SecretKey>,
    out: &Path,
) -> anyhow::Result<BuildReport> {
    let text = fs::read_to_string(manifest_toml)
        .with_context(|| format!("reading package manifest {}", manifest_toml.display()))?;
    let dm: DirManifest = toml::from_str(&text).with_context(|| {
        format!("package manifest {} is not valid (see docs/package-format.md for its keys)", manifest_toml.display())
    })?;
    let header = Header {
        id: dm.id,
        title: dm.title,
        version: dm.version,
        kind: dm.kind,
        description: dm.description,
        applies_to: dm.applies_to,
        requires: dm.requires,
        supersedes: dm.supersedes,
    };
    let ctx = || format!("in package manifest {}", manifest_toml.display());
    check_header(&header).with_context(ctx)?;
    let tree = flatten(dir)?;
    let mut b = Builder::new(out, opts)?;
    for (key, item) in &tree {
        b.write_op(Action::Replace, dir, key, item, None)?;
    }
    let mut deletes: Vec<(Key, &String)> = Vec::new();
    for p in &dm.delete {
        check_path(p).map_err(anyhow::Error::msg).with_context(|| format!("in `delete` {}", ctx()))?;
        let k = key_of(p);
        if tree.contains_key(&k) {
            bail!("{p:?} is both in `delete` and in {} {}", dir.display(), ctx());
        }
        deletes.push((k, p));
    }
    // Children before their parents.
    deletes.sort_by(|a, b| b.0.cmp(&a.0));
    deletes.dedup_by(|a, b| a.0 == b.0);
    for (_, p) in deletes {
        b.delete_op(p.clone(), None);
    }
    for (p, v) in &dm.versions {
        check_version("version", v)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("[versions] {p:?} {}", ctx()))?;
        let Some(op) = b.ops.iter_mut().find(|o| &o.path == p) else {
            bail!("[versions] names {p:?}, which the package neither writes nor deletes {}", ctx());
        };
        op.version = Some(v.clone());
    }
    if let Some(v) = &dm.default_version {
        check_version("default_version", v).map_err(anyhow::Error::msg).with_context(ctx)?;
        for op in b.ops.iter_mut().filter(|o| o.version.is_none()) {
            op.version = Some(v.clone());
        }
    }
    b.finish(header, out, key)
}

fn old_kind(k: &ItemKind) -> OldKind {
    match k {
        ItemKind::Dir => OldKind::Dir,
        ItemKind::File { .. } => OldKind::File,
        ItemKind::Symlink(_) => OldKind::Symlink,
        ItemKind::Special(_) => OldKind::Other,
    }
}

/// `package build --diff OLD NEW`: the operations that turn tree `old` into
/// tree `new`:
/// - `add` for entries only in `new`;
/// - `replace` for entries whose content, kind, symlink target, mode,
///   owner, mtime or xattrs differ (directories too, for their metadata),
///   recording the old kind and file hash, with a delta against the old
///   content when `opts.deltas` and smaller;
/// - `delete` for entries only in `old` (a deleted directory's entries too).
///
/// Adds and replaces come first, parents before children, then deletes,
/// children before parents. Each op gets the version of the dpkg package
/// that owns its path in `new` (see [`crate::dpkg::owners`]); deletes get none.
/// Hard links of `new` among the written files become hard-link operations.
pub fn from_diff(
    old: &Path,
    new: &Path,
    header: Header,
    opts: &BuildOptions,
    key: Option<&minisign::SecretKey>,
    out: &Path,
) -> anyhow::Result<BuildReport> {
    check_header(&header)?;
    let old_tree = flatten(old)?;
    let new_tree = flatten(new)?;
    let owners = crate::dpkg::owners(new);
    let mut b = Builder::new(out, opts)?;
    for (key, n) in &new_tree {
        let Some(o) = old_tree.get(key) else {
            b.write_op(Action::Add, new, key, n, None)?;
            continue;
        };
        let old_content = match o.kind {
            ItemKind::File { size } => Some(read_file(old, key, size)?),
            _ => None,
        };
        let changed = o.meta != n.meta
            || match (&o.kind, &n.kind, &old_content) {
                (ItemKind::File { size: os }, ItemKind::File { size: ns }, Some(oc)) => {
                    os != ns || read_file(new, key, *ns)? != *oc
                }
                (ok, nk, _) => ok != nk,
            };
        if !changed {
            continue;
        }
        let old_entry = OldEntry {
            kind: old_kind(&o.kind),
            blake3: old_content.as_ref().map(|c| blake3::hash(c).to_hex().to_string()),
        };
        // Only a file replacing a file can be a delta against the old content.
        let base = old_content.filter(|_| matches!(n.kind, ItemKind::File { .. }));
        b.write_op(Action::Replace, new, key, n, Some((old_entry, base)))?;
    }
    // Deletes, children first.
    for (key, o) in old_tree.iter().rev() {
        if new_tree.contains_key(key) {
            continue;
        }
        let blake3 = match o.kind {
            ItemKind::File { size } => Some(blake3::hash(&read_file(old, key, size)?).to_hex().to_string()),
            _ => None,
        };
        b.delete_op(key.join("/"), Some(OldEntry { kind: old_kind(&o.kind), blake3 }));
    }
    for op in b.ops.iter_mut().filter(|o| o.action != Action::Delete) {
        op.version = owners.get(&op.path).map(|o| o.version.clone());
    }
    b.finish(header, out, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{OpenOptions, Package};
    use crate::keys::{load_public, load_secret, new_key, TrustedKey};
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn set_mode(p: &Path, mode: u32) {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Gives every entry below `root` the same mtime, so two trees built at
    /// different moments compare equal where their content is.
    fn freeze(root: &Path) {
        let ts = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: 1_700_000_000, tv_nsec: 0 },
            last_modification: rustix::fs::Timespec { tv_sec: 1_700_000_000, tv_nsec: 5 },
        };
        for e in fs::read_dir(root).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                freeze(&p);
            }
            rustix::fs::utimensat(rustix::fs::CWD, &p, &ts, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
    }

    fn key(dir: &Path) -> (minisign::SecretKey, Vec<TrustedKey>) {
        let k = new_key(&dir.join("k")).unwrap();
        (load_secret(&k.secret).unwrap().0, vec![load_public(&k.public).unwrap()])
    }

    fn header() -> Header {
        Header {
            id: "SW-1".into(),
            title: "t".into(),
            version: "1".into(),
            kind: Kind::Hotfix,
            description: String::new(),
            applies_to: AppliesTo::default(),
            requires: vec![],
            supersedes: vec![],
        }
    }

    /// Checks that every written entry of `pkg` is what `new` holds,
    /// decoding deltas against `old`.
    fn check_against(pkg: &Package, old: &Path, new: &Path) {
        for op in &pkg.manifest.ops {
            let Some(e) = &op.entry else {
                assert!(fs::symlink_metadata(new.join(&op.path)).is_err(), "{} deleted but in NEW", op.path);
                continue;
            };
            let p = new.join(&op.path);
            let md = fs::symlink_metadata(&p).unwrap();
            assert_eq!(e.mode, md.permissions().mode() & 0o7777, "{}", op.path);
            match &e.node {
                Node::File { data, .. } => {
                    let base = data.encoding.is_delta().then(|| fs::read(old.join(&op.path)).unwrap());
                    let mut out = Vec::new();
                    pkg.decode_to(&e.node, base.as_deref(), &mut out).unwrap();
                    assert_eq!(out, fs::read(&p).unwrap(), "{}", op.path);
                }
                Node::Hardlink { target } => {
                    use std::os::unix::fs::MetadataExt;
                    assert_eq!(md.ino(), fs::metadata(new.join(target)).unwrap().ino(), "{}", op.path);
                }
                Node::Symlink { target } => assert_eq!(fs::read_link(&p).unwrap(), Path::new(target)),
                Node::Dir => assert!(md.is_dir()),
            }
        }
    }

    #[test]
    fn diff_of_two_trees_turns_old_into_new() {
        let t = tempfile::tempdir().unwrap();
        let (old, new) = (t.path().join("old"), t.path().join("new"));
        let ls = fs::read("/usr/bin/ls").unwrap();
        let text: Vec<u8> = (0..20_000u32).flat_map(|i| format!("setting{i} = {}\n", i * 7).into_bytes()).collect();
        for r in [&old, &new] {
            for d in ["bin", "dirmeta", "sub/deeper"] {
                fs::create_dir_all(r.join(d)).unwrap();
            }
            fs::write(r.join("keep.txt"), b"same\n").unwrap();
            fs::write(r.join("meta.txt"), b"mode changes\n").unwrap();
            fs::write(r.join("sub/deeper/same"), b"x").unwrap();
        }
        // OLD only.
        fs::write(old.join("change.txt"), &text).unwrap();
        fs::write(old.join("bin/prog"), &ls).unwrap();
        fs::write(old.join("gone.txt"), b"bye\n").unwrap();
        fs::create_dir_all(old.join("gonedir/sub")).unwrap();
        fs::write(old.join("gonedir/sub/x"), b"x").unwrap();
        symlink("keep.txt", old.join("link")).unwrap();
        fs::write(old.join("k"), b"a file that becomes a directory").unwrap();
        fs::create_dir(old.join("d2f")).unwrap();
        fs::write(old.join("d2f/c"), b"child of a directory that becomes a file").unwrap();
        // NEW.
        let mut text2 = text.clone();
        text2.splice(1000..1010, b"0123456789ABCDEF".iter().copied());
        fs::write(new.join("change.txt"), &text2).unwrap();
        let mut prog = ls.clone();
        for i in (512..prog.len()).step_by(3001) {
            prog[i] ^= 0x55;
        }
        fs::write(new.join("bin/prog"), &prog).unwrap();
        set_mode(&new.join("meta.txt"), 0o600);
        set_mode(&new.join("dirmeta"), 0o700);
        fs::write(new.join("new.txt"), b"hello\n").unwrap();
        fs::create_dir(new.join("newdir")).unwrap();
        fs::write(new.join("newdir/h1"), b"linked content\n").unwrap();
        fs::hard_link(new.join("newdir/h1"), new.join("newdir/h2")).unwrap();
        symlink("change.txt", new.join("link")).unwrap();
        fs::create_dir(new.join("k")).unwrap();
        fs::write(new.join("k/inner"), b"inside").unwrap();
        fs::write(new.join("d2f"), b"now a file").unwrap();
        let info = new.join("var/lib/dpkg/info");
        fs::create_dir_all(&info).unwrap();
        fs::write(
            new.join("var/lib/dpkg/status"),
            "Package: demo\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.2-3\n",
        )
        .unwrap();
        fs::write(info.join("demo:amd64.list"), "/.\n/new.txt\n/change.txt\n/bin/prog\n").unwrap();
        freeze(&old);
        freeze(&new);

        let (sk, trusted) = key(t.path());
        let out = t.path().join("diff.slwpkg");
        let report = from_diff(&old, &new, header(), &BuildOptions::default(), Some(&sk), &out).unwrap();
        let pkg = Package::open(&out, &OpenOptions { trusted: &trusted, allow_unsigned: false }).unwrap();
        let ops: Vec<(Action, &str)> = pkg.manifest.ops.iter().map(|o| (o.action, o.path.as_str())).collect();
        use Action::*;
        let expected = [
            (Replace, "bin/prog"),
            (Replace, "change.txt"),
            (Replace, "d2f"),
            (Replace, "dirmeta"),
            (Replace, "k"),
            (Add, "k/inner"),
            (Replace, "link"),
            (Replace, "meta.txt"),
            (Add, "new.txt"),
            (Add, "newdir"),
            (Add, "newdir/h1"),
            (Add, "newdir/h2"),
            (Add, "var"),
            (Add, "var/lib"),
            (Add, "var/lib/dpkg"),
            (Add, "var/lib/dpkg/info"),
            (Add, "var/lib/dpkg/info/demo:amd64.list"),
            (Add, "var/lib/dpkg/status"),
            (Delete, "gonedir/sub/x"),
            (Delete, "gonedir/sub"),
            (Delete, "gonedir"),
            (Delete, "gone.txt"),
            (Delete, "d2f/c"),
        ];
        assert_eq!(ops, expected);
        check_against(&pkg, &old, &new);

        let op = |p: &str| pkg.manifest.ops.iter().find(|o| o.path == p).unwrap();
        let encoding = |p: &str| match &op(p).entry.as_ref().unwrap().node {
            Node::File { data, .. } => data.encoding,
            n => panic!("{n:?}"),
        };
        assert_eq!(encoding("bin/prog"), crate::manifest::Encoding::BidiffZstd);
        assert_eq!(encoding("change.txt"), crate::manifest::Encoding::ZstdRef);
        assert!(
            matches!(op("newdir/h2").entry.as_ref().unwrap().node, Node::Hardlink { ref target } if target == "newdir/h1")
        );
        let old_prog = op("bin/prog").old.clone().unwrap();
        assert_eq!(old_prog.kind, OldKind::File);
        assert_eq!(old_prog.blake3.unwrap(), blake3::hash(&ls).to_hex().to_string());
        assert_eq!(op("k").old.as_ref().unwrap().kind, OldKind::File);
        assert!(op("k").old.as_ref().unwrap().blake3.is_some());
        assert_eq!(op("d2f").old.as_ref().unwrap().kind, OldKind::Dir);
        assert_eq!(
            op("gone.txt").old.as_ref().unwrap().blake3.as_deref(),
            Some(blake3::hash(b"bye\n").to_hex().as_str())
        );
        assert_eq!(op("new.txt").version.as_deref(), Some("1.2-3"));
        assert_eq!(op("bin/prog").version.as_deref(), Some("1.2-3"));
        assert_eq!(op("meta.txt").version, None);
        assert_eq!(op("gone.txt").version, None);

        assert_eq!(report.ops, expected.len());
        assert_eq!((report.added, report.replaced, report.deleted), (11, 7, 5));
        // bin/prog, change.txt, and meta.txt (same content, so a tiny delta).
        assert_eq!(report.deltas, 3);
        assert!(report.payload_bytes < report.full_payload_bytes);
        assert_eq!(report.package_bytes, fs::metadata(&out).unwrap().len());

        // Without deltas: every file is full zstd.
        let out2 = t.path().join("full.slwpkg");
        let opts = BuildOptions { deltas: false, level: 3 };
        let r2 = from_diff(&old, &new, header(), &opts, None, &out2).unwrap();
        assert_eq!(r2.deltas, 0);
        assert_eq!(r2.payload_bytes, r2.full_payload_bytes);
        let pkg = Package::open(&out2, &OpenOptions { trusted: &[], allow_unsigned: true }).unwrap();
        check_against(&pkg, &old, &new);

        // Identical trees: an empty package.
        let r3 = from_diff(&new, &new, header(), &opts, None, &t.path().join("empty.slwpkg")).unwrap();
        assert_eq!(r3.ops, 0);
    }

    #[test]
    fn from_dir_writes_every_entry_with_the_toml_header() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("etc/app")).unwrap();
        fs::write(src.join("etc/app/a.conf"), b"a = 1\n").unwrap();
        fs::hard_link(src.join("etc/app/a.conf"), src.join("etc/app/b.conf")).unwrap();
        symlink("app/a.conf", src.join("etc/current")).unwrap();
        set_mode(&src.join("etc/app"), 0o750);
        let toml_path = t.path().join("pkg.toml");
        fs::write(
            &toml_path,
            r#"
id = "SW-2026-0042"
title = "App config"
version = "2026.1"
kind = "rollup"
requires = ["SW-2026-0001"]
delete = ["etc/old.d/x", "etc/old.d"]
default_version = "1.0"
[applies_to]
os_id = "debian"
version_min = "12"
[versions]
"etc/app/a.conf" = "2.0"
"#,
        )
        .unwrap();
        let (sk, trusted) = key(t.path());
        let out = t.path().join("dir.slwpkg");
        let report = from_dir(&src, &toml_path, &BuildOptions::default(), Some(&sk), &out).unwrap();
        let pkg = Package::open(&out, &OpenOptions { trusted: &trusted, allow_unsigned: false }).unwrap();
        let m = &pkg.manifest;
        assert_eq!((m.id.as_str(), m.version.as_str(), m.kind), ("SW-2026-0042", "2026.1", Kind::Rollup));
        assert_eq!(m.applies_to.os_id.as_deref(), Some("debian"));
        assert_eq!(m.requires, ["SW-2026-0001"]);
        let ops: Vec<(Action, &str, Option<&str>)> =
            m.ops.iter().map(|o| (o.action, o.path.as_str(), o.version.as_deref())).collect();
        assert_eq!(
            ops,
            [
                (Action::Replace, "etc", Some("1.0")),
                (Action::Replace, "etc/app", Some("1.0")),
                (Action::Replace, "etc/app/a.conf", Some("2.0")),
                (Action::Replace, "etc/app/b.conf", Some("1.0")),
                (Action::Replace, "etc/current", Some("1.0")),
                (Action::Delete, "etc/old.d/x", Some("1.0")),
                (Action::Delete, "etc/old.d", Some("1.0")),
            ]
        );
        assert!(
            matches!(&m.ops[3].entry.as_ref().unwrap().node, Node::Hardlink { target } if target == "etc/app/a.conf")
        );
        assert_eq!(m.ops[1].entry.as_ref().unwrap().mode, 0o750);
        check_against(&pkg, &src, &src);
        assert_eq!((report.replaced, report.deleted, report.deltas), (5, 2, 0));
        assert_eq!(report.content_bytes, 6);

        // Unknown keys are named.
        fs::write(&toml_path, "id = \"x\"\ntitle = \"t\"\nversion = \"1\"\nkind = \"hotfix\"\nsurprise = 1\n").unwrap();
        let e = format!("{:#}", from_dir(&src, &toml_path, &BuildOptions::default(), None, &out).unwrap_err());
        assert!(e.contains("surprise") && e.contains("pkg.toml"), "{e}");
        // [versions] must name a path of the package.
        fs::write(
            &toml_path,
            "id = \"x\"\ntitle = \"t\"\nversion = \"1\"\nkind = \"hotfix\"\n[versions]\n\"nope\" = \"1\"\n",
        )
        .unwrap();
        let e = format!("{:#}", from_dir(&src, &toml_path, &BuildOptions::default(), None, &out).unwrap_err());
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn refuses_special_files_and_non_utf8_names() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        let toml_path = t.path().join("pkg.toml");
        fs::write(&toml_path, "id = \"x\"\ntitle = \"t\"\nversion = \"1\"\nkind = \"hotfix\"\n").unwrap();
        let out = t.path().join("x.slwpkg");
        rustix::fs::mknodat(rustix::fs::CWD, src.join("fifo"), rustix::fs::FileType::Fifo, 0o644.into(), 0).unwrap();
        let e = format!("{:#}", from_dir(&src, &toml_path, &BuildOptions::default(), None, &out).unwrap_err());
        assert!(e.contains("fifo") && e.contains("FIFO"), "{e}");
        fs::remove_file(src.join("fifo")).unwrap();
        use std::os::unix::ffi::OsStrExt;
        fs::write(src.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), b"x").unwrap();
        let e = format!("{:#}", from_dir(&src, &toml_path, &BuildOptions::default(), None, &out).unwrap_err());
        assert!(e.contains("not UTF-8") && e.contains("caf\\xe9"), "{e}");
        assert!(!out.exists());
        let left: Vec<_> = fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn formats_dates() {
        assert_eq!(slipway_store::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(slipway_store::rfc3339(1_795_376_318), "2026-11-22T19:38:38Z");
    }
}
