//! Opening a store directory, its layout, image refs, and reading blobs.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::atomic::{sync_dir, write_atomic, write_atomic_noclobber};
use crate::config::Config;
use crate::id::BlobId;
use crate::index::{Index, Location};
use crate::lock::WriteLock;
use crate::pack::{decompress_frame, BlobKind};
use crate::record::{check_name, ImageRecord, ImageSpec};
use crate::tree::{ChunkRef, Tree};

/// An image store in a local directory.
///
/// ```text
/// STORE/config                 format version and parameters (JSON)
/// STORE/lock                   the writer lock (flock)
/// STORE/packs/XX/<id>.pack     packs, named by the BLAKE3 of their bytes
/// STORE/index/<id>.idx         index files
/// STORE/records/<id>.json      image records
/// STORE/refs/NAME/VERSION      a record id: the commit point of a capture
/// STORE/tmp/                   staging; anything here is garbage
/// ```
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    config: Config,
    index: Index,
}

/// One version of an image, resolved through its ref.
#[derive(Clone, Debug)]
pub struct ImageVersion {
    pub record_id: BlobId,
    pub record: ImageRecord,
}

/// The pack id a file in `packs/XX/` is named for (`<64 hex>.pack`).
pub fn pack_id_of(path: &Path) -> Option<BlobId> {
    path.file_name()?.to_str()?.strip_suffix(".pack")?.parse().ok()
}

impl ImageVersion {
    /// `NAME@VERSION`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.record.name, self.record.version)
    }
}

/// A blob could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("chunk {0} is missing from the store (no index entry)")]
    Missing(BlobId),
    #[error("chunk {id} is damaged ({reason}) in pack {}", pack.display())]
    Damaged { id: BlobId, pack: PathBuf, reason: String },
    #[error("reading pack {}", pack.display())]
    Io {
        pack: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Store {
    /// Creates a new, empty store at `path` (the directory may exist but must
    /// not already hold a store).
    pub fn init(path: &Path) -> anyhow::Result<Self> {
        if path.join("config").exists() {
            bail!("{} already holds a slipway store", path.display());
        }
        for d in ["", "packs", "index", "records", "refs", "tmp"] {
            fs::create_dir_all(path.join(d)).with_context(|| format!("creating {}", path.join(d).display()))?;
        }
        let config = Config::new_default();
        let mut bytes = serde_json::to_vec_pretty(&config)?;
        bytes.push(b'\n');
        write_atomic(&path.join("tmp"), &path.join("config"), &bytes)
            .with_context(|| format!("writing {}", path.join("config").display()))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = sync_dir(parent);
        }
        Self::open(path)
    }

    /// Opens the store at `path` and loads its index.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut s = Self::open_without_index(path)?;
        s.index = Index::load_retrying(&path.join("index"))?;
        Ok(s)
    }

    /// Opens the store without reading its index (for rebuilding a damaged
    /// one).
    pub fn open_without_index(path: &Path) -> anyhow::Result<Self> {
        let cfg_path = path.join("config");
        let bytes = match fs::read(&cfg_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no slipway store at {} (no config file); create one with `slipway store init`, \
                 or point --store / SLIPWAY_STORE at an existing store",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", cfg_path.display())),
        };
        let config = Config::parse(&bytes).map_err(|e| anyhow::anyhow!("store config {}: {e}", cfg_path.display()))?;
        Ok(Self { root: path.to_owned(), config, index: Index::default() })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Re-reads the index (after taking the writer lock, to see what other
    /// writers added).
    pub fn reload_index(&mut self) -> anyhow::Result<()> {
        self.index = Index::load_retrying(&self.root.join("index"))?;
        Ok(())
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }

    pub fn pack_path(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("packs").join(&hex[..2]).join(format!("{hex}.pack"))
    }

    /// Every file in `packs/XX/`, sorted by path: packs, and anything else
    /// found there (verify reports it, gc and rebuild-index skip it).
    pub fn pack_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let dir = self.root.join("packs");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A store that never got a pack (or was copied without empty
            // directories) has none.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for sub in rd {
            let sub = sub?;
            if sub.file_type()?.is_dir() {
                for f in fs::read_dir(sub.path()).with_context(|| format!("listing {}", sub.path().display()))? {
                    out.push(f?.path());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub(crate) fn record_path(&self, id: &BlobId) -> PathBuf {
        self.root.join("records").join(format!("{}.json", id.to_hex()))
    }

    fn refs_dir(&self) -> PathBuf {
        self.root.join("refs")
    }

    /// Takes the writer lock and clears staging files left by a writer that
    /// died.
    pub fn lock(&mut self, waiting: &dyn Fn(&str)) -> anyhow::Result<WriteLock> {
        let lock = self.lock_only(waiting)?;
        self.reload_index()?;
        Ok(lock)
    }

    /// [`Store::lock`] without re-reading the index.
    pub(crate) fn lock_only(&self, waiting: &dyn Fn(&str)) -> anyhow::Result<WriteLock> {
        let lock = WriteLock::acquire(&self.root.join("lock"), waiting)
            .with_context(|| format!("taking the writer lock of {}", self.root.display()))?;
        let tmp = self.tmp_dir();
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        for e in fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))? {
            let e = e?;
            let p = e.path();
            let r = if e.file_type()?.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            r.with_context(|| format!("removing stale staging file {}", p.display()))?;
        }
        Ok(lock)
    }

    /// Reads and checks a record file.
    pub fn read_record(&self, id: &BlobId) -> anyhow::Result<ImageRecord> {
        let path = self.record_path(id);
        let bytes = fs::read(&path).with_context(|| format!("reading image record {}", path.display()))?;
        if BlobId::of(&bytes) != *id {
            bail!("image record {} is damaged (its contents do not match its name)", path.display());
        }
        ImageRecord::decode(&bytes).map_err(|e| anyhow::anyhow!("image record {}: {e}", path.display()))
    }

    /// The versions of `name` that have refs, ascending.
    pub fn versions(&self, name: &str) -> anyhow::Result<Vec<u32>> {
        check_name(name)?;
        let dir = self.refs_dir().join(name);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let name = name.to_str().unwrap_or("");
            if let Some(v) = name.parse::<u32>().ok().filter(|v| *v > 0 && v.to_string() == name) {
                out.push(v);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Every image name with at least one version, sorted.
    pub fn names(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.refs_dir();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e?;
            if let Some(n) = e.file_name().to_str() {
                if check_name(n).is_ok() && !self.versions(n)?.is_empty() {
                    out.push(n.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads the ref `name@version`.
    pub fn ref_target(&self, name: &str, version: u32) -> anyhow::Result<BlobId> {
        let p = self.refs_dir().join(name).join(version.to_string());
        let text = fs::read_to_string(&p).with_context(|| format!("reading ref {}", p.display()))?;
        text.trim().parse().with_context(|| format!("ref {} is damaged", p.display()))
    }

    /// Resolves `NAME` or `NAME@V` to a record.
    pub fn resolve(&self, spec: &ImageSpec) -> anyhow::Result<ImageVersion> {
        let versions = self.versions(&spec.name)?;
        let v = match spec.version {
            Some(v) if versions.contains(&v) => v,
            Some(v) => bail!(
                "image {}@{v} not found; {} has versions {:?} (see `slipway images`)",
                spec.name,
                spec.name,
                versions
            ),
            None => *versions.last().ok_or_else(|| {
                anyhow::anyhow!("no image called {:?} in this store (see `slipway images`)", spec.name)
            })?,
        };
        let record_id = self.ref_target(&spec.name, v)?;
        let record = self.read_record(&record_id)?;
        if record.name != spec.name || record.version != v {
            bail!("ref {}@{v} points at a record for {}@{}", spec.name, record.name, record.version);
        }
        Ok(ImageVersion { record_id, record })
    }

    /// Resolves an image and makes sure the loaded index covers it (a
    /// capture may have committed since the store was opened).
    pub fn open_image(&mut self, spec: &ImageSpec) -> anyhow::Result<ImageVersion> {
        let img = self.resolve(spec)?;
        if !self.index.contains(&img.record.root.tree) {
            self.reload_index()?;
        }
        Ok(img)
    }

    /// Every version of every image, by name then version.
    pub fn images(&self) -> anyhow::Result<Vec<ImageVersion>> {
        let mut out = Vec::new();
        for name in self.names()? {
            for v in self.versions(&name)? {
                out.push(self.resolve(&ImageSpec { name: name.clone(), version: Some(v) })?);
            }
        }
        Ok(out)
    }

    /// Writes a record and then its ref: the ref is what makes the image
    /// visible, so it goes last.
    pub(crate) fn commit_image(&self, record: &ImageRecord) -> anyhow::Result<BlobId> {
        let bytes = record.encode();
        let id = BlobId::of(&bytes);
        let refp = self.refs_dir().join(&record.name).join(record.version.to_string());
        if refp.exists() {
            bail!("{}@{} exists already", record.name, record.version);
        }
        let rp = self.record_path(&id);
        write_atomic(&self.tmp_dir(), &rp, &bytes).with_context(|| format!("writing image record {}", rp.display()))?;
        // The ref never replaces one that another writer made meanwhile.
        write_atomic_noclobber(&self.tmp_dir(), &refp, format!("{id}\n").as_bytes())
            .with_context(|| format!("writing ref {}", refp.display()))?;
        Ok(id)
    }

    /// Opens a pack file for reading blob `id` from it.
    pub fn open_pack(&self, pack_id: &BlobId, id: &BlobId) -> Result<File, ReadError> {
        let path = self.pack_path(pack_id);
        File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ReadError::Damaged { id: *id, pack: path, reason: PACK_MISSING.into() },
            _ => ReadError::Io { pack: path, source },
        })
    }

    /// Reads and decompresses the frame at `loc` of an open pack (for blob
    /// `id`, which the error names).
    pub fn read_frame(&self, f: &File, pack_id: &BlobId, loc: &Location, id: &BlobId) -> Result<Vec<u8>, ReadError> {
        let path = self.pack_path(pack_id);
        let mut buf = vec![0u8; loc.frame_clen as usize];
        f.read_exact_at(&mut buf, loc.frame_off).map_err(|source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                ReadError::Damaged { id: *id, pack: path.clone(), reason: "pack is truncated".into() }
            }
            _ => ReadError::Io { pack: path.clone(), source },
        })?;
        decompress_frame(&buf, loc.frame_ulen).map_err(|e| ReadError::Damaged { id: *id, pack: path, reason: e.0 })
    }

    /// The blob `id` out of its decompressed frame, after checking its hash.
    pub fn blob_in_frame<'f>(
        &self,
        frame: &'f [u8],
        pack_id: &BlobId,
        loc: &Location,
        id: &BlobId,
    ) -> Result<&'f [u8], ReadError> {
        let end = loc.off as usize + loc.len as usize;
        let data = frame.get(loc.off as usize..end).ok_or_else(|| ReadError::Damaged {
            id: *id,
            pack: self.pack_path(pack_id),
            reason: "the index places it past the end of its frame".into(),
        })?;
        if loc.kind.hash(data) != *id {
            return Err(ReadError::Damaged {
                id: *id,
                pack: self.pack_path(pack_id),
                reason: "content does not match its hash".into(),
            });
        }
        Ok(data)
    }

    /// A reader with its own cache of open packs and decompressed frames.
    pub fn reader(&self) -> BlobReader<'_> {
        BlobReader { store: self, fresh: None, files: HashMap::new(), cache: Vec::new() }
    }
}

const FRAME_CACHE: usize = 6;
const PACK_MISSING: &str = "pack file is missing";

/// Reads blobs, checking each one's hash.
pub struct BlobReader<'a> {
    store: &'a Store,
    /// An index read again from disk after a pack went missing (a `gc` in
    /// another process moved its blobs); used instead of the store's.
    fresh: Option<Index>,
    files: HashMap<BlobId, File>,
    /// Most recently used first: (pack, frame offset, frame).
    cache: Vec<(BlobId, u64, Arc<Vec<u8>>)>,
}

impl BlobReader<'_> {
    fn index(&self) -> &Index {
        self.fresh.as_ref().unwrap_or(&self.store.index)
    }

    /// Where a blob is: its pack's id and its place there.
    fn locate(&self, id: &BlobId) -> Option<(BlobId, Location)> {
        let ix = self.index();
        ix.get(id).map(|l| (ix.pack_id(l.pack), *l))
    }

    fn frame(&mut self, pack_id: BlobId, loc: &Location, id: &BlobId) -> Result<Arc<Vec<u8>>, ReadError> {
        if let Some(i) = self.cache.iter().position(|(p, o, _)| *p == pack_id && *o == loc.frame_off) {
            let hit = self.cache.remove(i);
            let f = hit.2.clone();
            self.cache.insert(0, hit);
            return Ok(f);
        }
        if !self.files.contains_key(&pack_id) {
            let f = self.store.open_pack(&pack_id, id)?;
            if self.files.len() > 64 {
                self.files.clear();
            }
            self.files.insert(pack_id, f);
        }
        let frame = self.store.read_frame(&self.files[&pack_id], &pack_id, loc, id)?;
        let frame = Arc::new(frame);
        self.cache.insert(0, (pack_id, loc.frame_off, frame.clone()));
        self.cache.truncate(FRAME_CACHE);
        Ok(frame)
    }

    /// Calls `f` with the blob's bytes, after checking their hash.
    pub fn with_blob<R>(&mut self, id: &BlobId, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        let (mut pack_id, mut loc) = self.locate(id).ok_or(ReadError::Missing(*id))?;
        let frame =
            match self.frame(pack_id, &loc, id) {
                Ok(f) => f,
                Err(ReadError::Damaged { pack, reason, .. }) if reason == PACK_MISSING && self.fresh.is_none() => {
                    // A gc in another process may have repacked this blob since
                    // the index was loaded: read the index again, once.
                    let fresh = Index::load_retrying(&self.store.root.join("index"))
                        .map_err(|e| ReadError::Damaged { id: *id, pack: pack.clone(), reason: format!("{e:#}") })?;
                    self.fresh = Some(fresh);
                    (pack_id, loc) = self.locate(id).ok_or(ReadError::Missing(*id))?;
                    self.frame(pack_id, &loc, id)?
                }
                Err(e) => return Err(e),
            };
        let data = self.store.blob_in_frame(&frame, &pack_id, &loc, id)?;
        Ok(f(data))
    }

    /// Like [`BlobReader::with_blob`] for a chunk of a file, also checking
    /// the length the tree gives it.
    pub fn with_chunk<R>(&mut self, c: &ChunkRef, f: impl FnOnce(&[u8]) -> R) -> Result<R, ReadError> {
        let (pack_id, loc) = self.locate(&c.id).ok_or(ReadError::Missing(c.id))?;
        if loc.len != c.len || loc.kind != BlobKind::Data {
            return Err(ReadError::Damaged {
                id: c.id,
                pack: self.store.pack_path(&pack_id),
                reason: format!(
                    "the tree gives it {} bytes of file data, the store holds {} bytes of {:?}",
                    c.len, loc.len, loc.kind
                ),
            });
        }
        self.with_blob(&c.id, f)
    }

    /// Reads and decodes a tree object.
    pub fn tree(&mut self, id: &BlobId) -> anyhow::Result<Tree> {
        if let Some((_, loc)) = self.locate(id) {
            if loc.kind != BlobKind::Tree {
                bail!("blob {id} is referenced as a directory but holds file data");
            }
        }
        let t = self.with_blob(id, Tree::decode)?;
        t.with_context(|| format!("tree {id}"))
    }
}
