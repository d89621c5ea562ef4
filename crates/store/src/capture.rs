//! Capture: a directory tree becomes a new image version. [`ImageBuilder`]
//! holds what every writer of a new version shares (chunking, packing, trees,
//! stats, the commit); `tar.rs` uses it for `import-tar`.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use slipway_fstree::{data_extents, open_source_file, scan, Metadata, Node, NodeKind, ScanOptions};

use crate::config::Chunking;
use crate::id::BlobId;
use crate::pack::BlobKind;
use crate::packer::Packer;
use crate::progress::Progress;
use crate::record::{check_name, ImageRecord, ImageSpec, ImageStats, RootDir, RECORD_FORMAT, RECORD_VERSION};
use crate::source_cache::{self, Seen, SourceCache};
use crate::store::Store;
use crate::tree::{ChunkRef, EntryKind, Tree, TreeEntry};

/// What to capture and how to label it.
#[derive(Clone, Debug, Default)]
pub struct CaptureOptions {
    pub name: String,
    pub description: String,
    /// Stay on the source's filesystem (mount points become empty dirs).
    pub one_file_system: bool,
    /// Read every file, even ones the previous version's source cache says
    /// are unchanged.
    pub rehash: bool,
    /// Update packages to record in the new version (`slipway integrate`).
    pub packages: Vec<crate::record::PackageRef>,
}

/// The outcome of a capture.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureReport {
    pub image: String,
    pub record: BlobId,
    pub stats: ImageStats,
    /// Entries left out, with the reason.
    #[serde(serialize_with = "crate::serde_path::path_pairs")]
    pub skipped: Vec<(PathBuf, String)>,
    /// Regular files read, and bytes read from them.
    pub files_read: u64,
    pub bytes_read: u64,
    /// Files whose chunks were taken from the previous version's source
    /// cache without reading them (same inode, size, mtime and ctime).
    pub files_reused: u64,
    pub seconds: f64,
}

/// Largest tree object a writer makes: readers refuse larger frames. (Unit
/// tests use 1 MiB so they can reach it cheaply.)
pub(crate) const MAX_TREE: usize = if cfg!(test) { 1 << 20 } else { crate::pack::MAX_FRAME as usize };

/// Files up to this size are read whole and chunked in memory.
const IN_MEMORY: u64 = 16 << 20;

/// Makes a new image version, whatever it is read from (a directory by
/// [`capture`], a tar archive by [`crate::import_tar`]): cuts file content
/// into chunks with the store's FastCDC parameters and queues new ones for
/// packs, writes directory trees bottom-up, keeps the stats, and commits the
/// record and ref last (after every pack and index file is durable).
pub(crate) struct ImageBuilder<'a> {
    pub(crate) store: &'a Store,
    pub(crate) progress: &'a dyn Progress,
    packer: Packer,
    chunking: Chunking,
    /// Distinct blobs this image uses, with their length.
    used: HashMap<BlobId, u32>,
    stats: ImageStats,
    buf: Vec<u8>,
}

/// The name, version and parent a new image version gets.
pub(crate) struct NewVersion {
    pub name: String,
    pub description: String,
    pub version: u32,
    /// The record of the newest existing version of the name.
    pub parent: Option<BlobId>,
    /// Update packages to record.
    pub packages: Vec<crate::record::PackageRef>,
}

impl NewVersion {
    /// The next version of `name` in `store` (call with the writer lock held).
    pub(crate) fn next(store: &Store, name: &str, description: &str) -> anyhow::Result<Self> {
        let versions = store.versions(name)?;
        let parent = match versions.last() {
            Some(v) => Some(store.ref_target(name, *v)?),
            None => None,
        };
        Ok(Self {
            name: name.to_string(),
            description: description.to_string(),
            version: versions.last().copied().unwrap_or(0) + 1,
            parent,
            packages: vec![],
        })
    }
}

/// Checks the image name, runs `write` with the store's writer lock held, and
/// reloads the index afterwards whatever happened, so the store object shows
/// what is on disk.
pub(crate) fn with_writer_lock<T>(
    store: &mut Store,
    name: &str,
    progress: &dyn Progress,
    write: impl FnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    check_name(name)?;
    let lock = store.lock(&|m| progress.note(m))?;
    let r = write(store);
    drop(lock);
    store.reload_index()?;
    r
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<'a> ImageBuilder<'a> {
    pub(crate) fn new(store: &'a Store, progress: &'a dyn Progress) -> Self {
        Self {
            store,
            progress,
            packer: Packer::new(store),
            chunking: store.config().chunking.clone(),
            used: HashMap::new(),
            stats: ImageStats::default(),
            buf: Vec::new(),
        }
    }

    /// True when the store has the blob or this builder queued it.
    pub(crate) fn has(&self, id: &BlobId) -> bool {
        self.packer.has(self.store.index(), id)
    }

    /// Cuts `data_len` bytes read from `reader` into chunks and queues the new
    /// ones. Input that ends early is an error: "read N bytes but expected M:
    /// `if_short`".
    pub(crate) fn chunk(
        &mut self,
        reader: &mut dyn Read,
        data_len: u64,
        if_short: &str,
    ) -> anyhow::Result<Vec<ChunkRef>> {
        let k = &self.chunking;
        let (min, avg, max) = (k.min_size as usize, k.avg_size as usize, k.max_size as usize);
        let mut chunks = Vec::new();
        if data_len <= IN_MEMORY {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            buf.resize(data_len as usize, 0);
            let got = read_full(reader, &mut buf).context("reading")?;
            if got as u64 != data_len {
                bail!("read {got} bytes but expected {data_len}: {if_short}");
            }
            for c in fastcdc::v2020::FastCDC::new(&buf, min, avg, max) {
                chunks.push(self.add_chunk(&buf[c.offset..c.offset + c.length])?);
            }
            self.progress.advance(data_len);
            self.buf = buf;
        } else {
            let mut total = 0u64;
            for c in fastcdc::v2020::StreamCDC::new(reader, min, avg, max) {
                let c = c.map_err(|e| anyhow::anyhow!("reading: {e}"))?;
                total += c.length as u64;
                chunks.push(self.add_chunk(&c.data)?);
                self.progress.advance(c.length as u64);
            }
            if total != data_len {
                bail!("read {total} bytes but expected {data_len}: {if_short}");
            }
        }
        Ok(chunks)
    }

    fn add_chunk(&mut self, data: &[u8]) -> anyhow::Result<ChunkRef> {
        let id = BlobId::of(data);
        self.packer.add(self.store.index(), id, BlobKind::Data, data)?;
        Ok(ChunkRef { id, len: data.len() as u32 })
    }

    /// Counts an entry in the image's stats. Entries must come in traversal
    /// order; `further_link` is set for every member of a hard-link group
    /// but the first.
    pub(crate) fn count(&mut self, e: &TreeEntry, further_link: bool) {
        if further_link && !matches!(e.kind, EntryKind::Dir { .. }) {
            self.stats.hardlinks += 1;
        }
        let first = u64::from(!further_link);
        match &e.kind {
            EntryKind::Dir { .. } => self.stats.dirs += 1,
            EntryKind::File { size, chunks, .. } => {
                for c in chunks {
                    self.used.insert(c.id, c.len);
                }
                if !further_link {
                    self.stats.files += 1;
                    self.stats.logical_bytes += size;
                    self.stats.data_bytes += chunks.iter().map(|c| c.len as u64).sum::<u64>();
                }
            }
            EntryKind::Symlink { .. } => self.stats.symlinks += first,
            EntryKind::CharDev { .. } | EntryKind::BlockDev { .. } | EntryKind::Fifo => self.stats.specials += first,
        }
    }

    /// Writes one directory's tree object (entries sorted by name); `dir`
    /// names it in errors.
    pub(crate) fn add_tree(&mut self, entries: Vec<TreeEntry>, dir: &dyn std::fmt::Display) -> anyhow::Result<BlobId> {
        debug_assert!(entries.windows(2).all(|w| w[0].name < w[1].name));
        let bytes = Tree { entries }.encode();
        if bytes.len() > MAX_TREE {
            bail!(
                "directory {dir} holds too much metadata ({} bytes encoded, the limit is {}); split it into subdirectories",
                bytes.len(),
                MAX_TREE
            );
        }
        let id = BlobId::of_tree(&bytes);
        self.packer.add(self.store.index(), id, BlobKind::Tree, &bytes)?;
        self.used.insert(id, bytes.len() as u32);
        Ok(id)
    }

    /// Writes the last packs and index file, then the record and its ref:
    /// the new version exists from here on.
    pub(crate) fn commit(
        self,
        new: &NewVersion,
        root_meta: &Metadata,
        root_tree: BlobId,
    ) -> anyhow::Result<(BlobId, ImageRecord)> {
        let Self { store, packer, used, mut stats, .. } = self;
        let packer = packer.finish()?;
        stats.chunks = used.len() as u64;
        for (id, len) in &used {
            let stored = match packer.written.get(id) {
                Some(e) => (e.len as u64 * e.frame_clen as u64).div_ceil(e.frame_ulen.max(1) as u64),
                None => store.index().get(id).map(|l| l.stored_estimate()).unwrap_or(0),
            };
            stats.stored_bytes += stored;
            let is_tree = packer
                .written
                .get(id)
                .map(|e| e.kind == BlobKind::Tree)
                .or_else(|| store.index().get(id).map(|l| l.kind == BlobKind::Tree))
                .unwrap_or(false);
            if is_tree {
                stats.chunks -= 1;
            } else {
                stats.unique_bytes += *len as u64;
            }
        }
        stats.new_bytes = packer.pack_bytes;
        let record = ImageRecord {
            format: RECORD_FORMAT.into(),
            format_version: RECORD_VERSION,
            name: new.name.clone(),
            version: new.version,
            description: new.description.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            parent: new.parent,
            root: RootDir::new(root_meta, root_tree),
            stats,
            packages: new.packages.clone(),
        };
        let record_id = store.commit_image(&record)?;
        debug_assert!(store.resolve(&ImageSpec { name: new.name.clone(), version: Some(new.version) }).is_ok());
        Ok((record_id, record))
    }
}

struct Ctx<'a> {
    b: ImageBuilder<'a>,
    /// Content of hard-link groups already read.
    links: HashMap<u64, FileContent>,
    /// Hard-link groups of any kind seen so far.
    groups: std::collections::HashSet<u64>,
    /// The previous version's source cache, and the one being made.
    old_cache: Option<SourceCache>,
    new_cache: SourceCache,
    /// Byte length of the source root's path, to make paths relative.
    root_len: usize,
    files_read: u64,
    bytes_read: u64,
    files_reused: u64,
}

/// Captures `src` as a new version of `opts.name`.
pub fn capture(
    store: &mut Store,
    src: &Path,
    opts: &CaptureOptions,
    progress: &dyn Progress,
) -> anyhow::Result<CaptureReport> {
    with_writer_lock(store, &opts.name, progress, |store| capture_locked(store, src, opts, progress))
}

fn capture_locked(
    store: &Store,
    src: &Path,
    opts: &CaptureOptions,
    progress: &dyn Progress,
) -> anyhow::Result<CaptureReport> {
    let started = Instant::now();
    progress.phase("scanning", None);
    let (root_meta, nodes, scan_stats) = scan(src, &ScanOptions { one_file_system: opts.one_file_system })
        .with_context(|| format!("scanning {}", src.display()))?;
    for (p, why) in &scan_stats.skipped {
        progress.note(&format!("skipped {}: {why}", p.display()));
    }
    let mut new = NewVersion::next(store, &opts.name, &opts.description)?;
    new.packages = opts.packages.clone();
    let old_cache = match (&new.parent, opts.rehash) {
        (Some(p), false) => match source_cache::load(store, p) {
            Ok(c) => c,
            Err(e) => {
                progress.note(&format!("ignoring the source cache of the previous version ({e}); reading every file"));
                None
            }
        },
        _ => None,
    };
    progress.phase("capturing", Some(bytes_to_read(&nodes, &mut std::collections::HashSet::new())));
    let mut cx = Ctx {
        b: ImageBuilder::new(store, progress),
        links: HashMap::new(),
        groups: std::collections::HashSet::new(),
        old_cache,
        new_cache: SourceCache::default(),
        root_len: src.as_os_str().len(),
        files_read: 0,
        bytes_read: 0,
        files_reused: 0,
    };
    let root_tree = capture_dir(&mut cx, src, &nodes)?;
    let Ctx { b, new_cache, files_read, bytes_read, files_reused, .. } = cx;
    let (record_id, record) = b.commit(&new, &root_meta, root_tree)?;
    // A hint for the next capture; the image is complete without it.
    match source_cache::save(store, &record_id, &new_cache) {
        // Only the newest version's cache is ever used.
        Ok(()) => {
            if let Some(p) = &new.parent {
                let _ = std::fs::remove_file(source_cache::cache_path(store, p));
            }
        }
        Err(e) => {
            progress.note(&format!("could not save the source cache ({e}); the next capture will read every file"))
        }
    }
    progress.finish();
    Ok(CaptureReport {
        image: format!("{}@{}", new.name, new.version),
        record: record_id,
        stats: record.stats,
        skipped: scan_stats.skipped.into_iter().map(|(p, w)| (p, w.to_string())).collect(),
        files_read,
        bytes_read,
        files_reused,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Bytes of regular files to read, each hard-linked inode once.
fn bytes_to_read(nodes: &[Node], seen: &mut std::collections::HashSet<u64>) -> u64 {
    nodes
        .iter()
        .map(|n| match &n.kind {
            NodeKind::Dir(c) => bytes_to_read(c, seen),
            NodeKind::File { size, .. } if n.hardlink.is_none_or(|g| seen.insert(g)) => *size,
            _ => 0,
        })
        .sum()
}

fn capture_dir(cx: &mut Ctx<'_>, dir: &Path, nodes: &[Node]) -> anyhow::Result<BlobId> {
    let mut entries = Vec::with_capacity(nodes.len());
    for n in nodes {
        let path = dir.join(n.name.as_os_str());
        let further_link = n.hardlink.is_some_and(|g| !cx.groups.insert(g));
        let kind = match &n.kind {
            NodeKind::Dir(children) => EntryKind::Dir { tree: capture_dir(cx, &path, children)? },
            NodeKind::File { size, sparse } => {
                let known = n.hardlink.and_then(|g| cx.links.get(&g).cloned());
                let (chunks, extents) = match known {
                    Some(c) => c,
                    None => {
                        let c = file_content(cx, &path, n, *size, *sparse)?;
                        if let Some(g) = n.hardlink {
                            cx.links.insert(g, c.clone());
                        }
                        c
                    }
                };
                EntryKind::File { size: *size, chunks, extents }
            }
            NodeKind::Symlink(t) => EntryKind::Symlink { target: t.clone() },
            NodeKind::CharDev(r) => EntryKind::CharDev { rdev: *r },
            NodeKind::BlockDev(r) => EntryKind::BlockDev { rdev: *r },
            NodeKind::Fifo => EntryKind::Fifo,
        };
        let e = TreeEntry { name: n.name.clone(), meta: n.meta.clone(), kind, hardlink: n.hardlink };
        cx.b.count(&e, further_link);
        entries.push(e);
    }
    cx.b.add_tree(entries, &dir.display())
}

/// Reads the data regions of a file in order, as one stream.
struct ExtentReader<'a> {
    file: &'a std::fs::File,
    extents: &'a [(u64, u64)],
    pos: u64,
}

impl Read for ExtentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&(off, len)) = self.extents.first() {
            if self.pos >= len {
                self.extents = &self.extents[1..];
                self.pos = 0;
                continue;
            }
            let want = buf.len().min((len - self.pos) as usize);
            let n = self.file.read_at(&mut buf[..want], off + self.pos)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while it was read"));
            }
            self.pos += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

type FileContent = (Vec<ChunkRef>, Option<Vec<(u64, u64)>>);

/// The chunks of a file: from the previous version's source cache when the
/// file is unchanged and the store still has them, else by reading it.
fn file_content(cx: &mut Ctx<'_>, path: &Path, n: &Node, size: u64, sparse: bool) -> anyhow::Result<FileContent> {
    use std::os::unix::ffi::OsStrExt;
    let rel = path.as_os_str().as_bytes().get(cx.root_len + 1..).unwrap_or_default().to_vec();
    let mut seen =
        Seen { dev: n.dev, ino: n.ino, size, mtime: n.meta.mtime, ctime: n.ctime, chunks: vec![], extents: None };
    let cached = cx
        .old_cache
        .as_ref()
        .and_then(|c| c.files.get(&rel))
        .filter(|old| old.unchanged(&seen) && old.chunks.iter().all(|c| cx.b.has(&c.id)));
    let content = match cached {
        Some(old) => {
            cx.files_reused += 1;
            cx.b.progress.advance(size);
            (old.chunks.clone(), old.extents.clone())
        }
        None => {
            cx.files_read += 1;
            let c =
                capture_file(&mut cx.b, path, size, sparse).with_context(|| format!("capturing {}", path.display()))?;
            cx.bytes_read += c.0.iter().map(|c| c.len as u64).sum::<u64>();
            c
        }
    };
    seen.chunks = content.0.clone();
    seen.extents = content.1.clone();
    cx.new_cache.files.insert(rel, seen);
    Ok(content)
}

fn capture_file(b: &mut ImageBuilder<'_>, path: &Path, size: u64, sparse: bool) -> anyhow::Result<FileContent> {
    let file = open_source_file(path).context("opening")?;
    let extents = if sparse {
        let e = data_extents(&file, size).context("finding holes")?;
        if e.len() == 1 && e[0] == (0, size) {
            None
        } else {
            Some(e)
        }
    } else {
        None
    };
    let whole = [(0, size)];
    let regions: &[(u64, u64)] = extents.as_deref().unwrap_or(&whole);
    let data_len: u64 = regions.iter().map(|r| r.1).sum();
    let mut reader = ExtentReader { file: &file, extents: regions, pos: 0 };
    let chunks = b.chunk(&mut reader, data_len, "the file changed during the capture")?;
    // A file that grew while it was read.
    let mut probe = [0u8; 1];
    if extents.is_none() && file.read_at(&mut probe, size)? != 0 {
        bail!("the file grew during the capture; capture a tree that is not in use (a snapshot or an unmounted root)");
    }
    Ok((chunks, extents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    fn new_store(dir: &Path) -> Store {
        Store::init(&dir.join("store")).unwrap()
    }

    fn opts(name: &str) -> CaptureOptions {
        CaptureOptions { name: name.into(), ..Default::default() }
    }

    #[test]
    fn a_file_holding_the_bytes_of_a_tree_object_does_not_shadow_it() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/inner"), b"x").unwrap();
        let mut store = new_store(t.path());
        capture(&mut store, &src, &opts("a"), &NoProgress).unwrap();
        let img = store.resolve(&"a".parse().unwrap()).unwrap();
        let mut r = store.reader();
        let root = r.tree(&img.record.root.tree).unwrap();
        let EntryKind::Dir { tree: d } = root.get(b"d").unwrap().kind else { panic!("d is a dir") };
        let bytes = r.with_blob(&d, |b| b.to_vec()).unwrap();
        drop(r);
        // A file whose content is exactly d's tree object, captured first.
        let src2 = t.path().join("src2");
        std::fs::create_dir_all(&src2).unwrap();
        std::fs::write(src2.join("lookalike"), &bytes).unwrap();
        let mut store2 = new_store(&t.path().join("two"));
        capture(&mut store2, &src2, &opts("b"), &NoProgress).unwrap();
        std::fs::rename(src2.join("lookalike"), src.join("lookalike")).unwrap();
        capture(&mut store2, &src, &opts("c"), &NoProgress).unwrap();
        let mut store2 = Store::open(store2.path()).unwrap();
        let rep = crate::verify(&mut store2, &NoProgress).unwrap();
        assert!(rep.ok(), "{rep:?}");
        let img = store2.resolve(&"c".parse().unwrap()).unwrap();
        let out = t.path().join("out");
        let o = slipway_fstree::ApplyOptions { force: false, restore_owner: false };
        crate::apply(&store2, &img, &out, o, &NoProgress).unwrap();
        assert_eq!(std::fs::read(out.join("d/inner")).unwrap(), b"x");
        assert_eq!(std::fs::read(out.join("lookalike")).unwrap(), bytes);
    }

    #[test]
    fn a_directory_too_large_for_one_tree_object_is_refused_and_the_store_stays_usable() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        // Unit tests use a 1 MiB limit (MAX_TREE); 300 symlinks with
        // 4000-byte targets pass it.
        let target = "t".repeat(4000);
        for i in 0..300 {
            std::os::unix::fs::symlink(&target, src.join(format!("link-{i:05}"))).unwrap();
        }
        let mut store = new_store(t.path());
        let err = format!("{:#}", capture(&mut store, &src, &opts("big"), &NoProgress).unwrap_err());
        assert!(err.contains("too much metadata"), "{err}");
        let mut store = Store::open(store.path()).unwrap();
        assert!(store.images().unwrap().is_empty());
        assert!(crate::verify(&mut store, &NoProgress).unwrap().ok());
    }
}
