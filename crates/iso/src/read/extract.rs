//! Writing an image's tree (or parts of it) into a directory, through
//! [`slipway_fstree::Target`]: every write is relative to an open directory
//! handle and never follows a symlink, so no name or link in the image can
//! send a write outside the destination.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use slipway_fstree::{ApplyOptions, DirHandle, EntryName, Metadata, SpecialKind, Target};

use super::IsoImage;
use crate::model::{self, Content, Entry, Kind, Meta, Tree};

/// Bytes read from the image at a time.
const BUF: usize = 1 << 20;
/// Runs of zeros this long are left as holes in extracted files.
const HOLE: usize = 64 * 1024;

/// What an extraction wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExtractStats {
    pub dirs: u64,
    pub files: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
    pub symlinks: u64,
    /// Files written as hard links to a file extracted earlier.
    pub hardlinks: u64,
    /// Device nodes and FIFOs.
    pub specials: u64,
    /// Entries that cannot be made in a directory (sockets), by path.
    pub skipped: Vec<String>,
}

/// Extracts `tree` (read from `image`) into `dest`, or only the entries at
/// `paths` (each extracted at `dest/<path>`, with its parent directories),
/// with the default [`ApplyOptions`]: `dest` must be empty or missing, and
/// owners are restored when running as root.
pub fn extract(image: &IsoImage, tree: &Tree, dest: &Path, paths: &[Vec<Vec<u8>>]) -> Result<ExtractStats> {
    extract_with(image, tree, dest, paths, ApplyOptions::default())
}

/// [`extract`] with explicit options (`force` writes into a non-empty
/// destination, replacing entries the image also has).
pub fn extract_with(
    image: &IsoImage,
    tree: &Tree,
    dest: &Path,
    paths: &[Vec<Vec<u8>>],
    opts: ApplyOptions,
) -> Result<ExtractStats> {
    let mut sel = if paths.is_empty() { Sel::All } else { Sel::Some(BTreeMap::new()) };
    for p in paths {
        if !p.is_empty() && tree.get(p).is_none() {
            bail!("{}: {} is not in the image", image.path().display(), model::join(p));
        }
        sel.add(p);
    }
    let target = Target::open(dest, opts).with_context(|| format!("extracting {}", image.path().display()))?;
    let mut x =
        Extractor { image, target: &target, stats: ExtractStats::default(), links: HashMap::new(), buf: Vec::new() };
    let root = target.open_dir(&[])?;
    match &sel {
        // The destination takes the image's top directory metadata only
        // when all of it is extracted.
        Sel::All => x.walk(root, &tree.entries, None, Some(&tree.root))?,
        Sel::Some(m) => x.walk(root, &tree.entries, Some(m), None)?,
    }
    Ok(x.stats)
}

/// Which entries of a directory to extract.
enum Sel {
    /// All of it.
    All,
    /// The named entries, each with what to extract inside it.
    Some(BTreeMap<Vec<u8>, Sel>),
}

impl Sel {
    fn add(&mut self, path: &[Vec<u8>]) {
        let Some((first, rest)) = path.split_first() else {
            *self = Sel::All;
            return;
        };
        if let Sel::Some(m) = self {
            m.entry(first.clone()).or_insert_with(|| Sel::Some(BTreeMap::new())).add(rest);
        }
    }
}

fn metadata(m: &Meta) -> Metadata {
    Metadata { mode: m.mode, uid: m.uid, gid: m.gid, mtime: m.mtime, xattrs: Vec::new() }
}

/// A directory being written: its handle, its entries and the next one to
/// write, what to extract of them (`None`: all), and the metadata to set
/// when it is done.
struct Frame<'t> {
    dir: DirHandle,
    entries: &'t [Entry],
    next: usize,
    sel: Option<&'t BTreeMap<Vec<u8>, Sel>>,
    meta: Option<&'t Meta>,
}

struct Extractor<'a> {
    image: &'a IsoImage,
    target: &'a Target,
    stats: ExtractStats,
    /// Hard-link group -> where its first member was written.
    links: HashMap<u64, (Vec<EntryName>, EntryName)>,
    buf: Vec<u8>,
}

impl Extractor<'_> {
    fn path_of(&self, at: &[EntryName], name: &[u8]) -> String {
        let mut p: Vec<Vec<u8>> = at.iter().map(|n| n.as_bytes().to_vec()).collect();
        p.push(name.to_vec());
        model::join(&p)
    }

    fn name(&self, at: &[EntryName], e: &Entry) -> Result<EntryName> {
        EntryName::new(e.name.clone())
            .map_err(|err| anyhow!("{}: {}: {err}", self.image.path().display(), self.path_of(at, &e.name)))
    }

    /// Writes the directory `entries` into `root` and everything below,
    /// without recursion (the depth of the tree costs no stack): a stack of
    /// open directories, each finished once its entries are written.
    fn walk<'t>(
        &mut self,
        root: DirHandle,
        entries: &'t [Entry],
        sel: Option<&'t BTreeMap<Vec<u8>, Sel>>,
        meta: Option<&'t Meta>,
    ) -> Result<()> {
        let mut stack = vec![Frame { dir: root, entries, next: 0, sel, meta }];
        let mut at: Vec<EntryName> = Vec::new();
        while let Some(top) = stack.last_mut() {
            let Some(e) = top.entries.get(top.next) else {
                let Some(done) = stack.pop() else { break };
                if let Some(m) = done.meta {
                    done.dir.finish(&metadata(m))?;
                }
                at.pop();
                continue;
            };
            top.next += 1;
            // What of this entry to extract: all of it, or (a directory)
            // the named entries inside it.
            let inner = match top.sel {
                None => None,
                Some(map) => match map.get(&e.name) {
                    None => continue,
                    Some(Sel::All) => None,
                    Some(Sel::Some(inner)) => Some(inner),
                },
            };
            let name = self.name(&at, e)?;
            match (&e.kind, inner) {
                (Kind::Dir(children), _) => {
                    let dir = top.dir.create_dir(&name)?;
                    self.stats.dirs += 1;
                    at.push(name);
                    stack.push(Frame { dir, entries: children, next: 0, sel: inner, meta: Some(&e.meta) });
                }
                (kind, Some(_)) => bail!(
                    "{}: {} is a {}, not a directory",
                    self.image.path().display(),
                    self.path_of(&at, &e.name),
                    kind.type_name()
                ),
                (_, None) => {
                    let dir = &top.dir;
                    self.entry(dir, e, name, &at)?;
                }
            }
        }
        Ok(())
    }

    /// Writes an entry that is not a directory.
    fn entry(&mut self, dir: &DirHandle, e: &Entry, name: EntryName, at: &[EntryName]) -> Result<()> {
        let meta = metadata(&e.meta);
        match &e.kind {
            Kind::Dir(_) => unreachable!("directories are written by walk"),
            Kind::File { size, content } => {
                if let Some((from_dir, from_name)) = e.link.and_then(|g| self.links.get(&g)) {
                    if from_dir == at {
                        dir.hardlink(&name, dir, from_name)?;
                    } else {
                        let from = self.target.open_dir(from_dir)?;
                        dir.hardlink(&name, &from, from_name)?;
                    }
                    self.stats.hardlinks += 1;
                    return Ok(());
                }
                let mut f = dir.create_file(&name)?;
                self.write_content(&mut f, content, *size)
                    .with_context(|| format!("writing {}", dir.child_path(&name).display()))?;
                dir.finish_file(&name, &f, &meta)?;
                if let Some(g) = e.link {
                    self.links.insert(g, (at.to_vec(), name));
                }
                self.stats.files += 1;
                self.stats.bytes += size;
            }
            Kind::Symlink(target) => {
                dir.symlink(&name, target, &meta)?;
                self.stats.symlinks += 1;
            }
            Kind::CharDev(d) => self.special(dir, &name, SpecialKind::CharDev(*d), &meta)?,
            Kind::BlockDev(d) => self.special(dir, &name, SpecialKind::BlockDev(*d), &meta)?,
            Kind::Fifo => self.special(dir, &name, SpecialKind::Fifo, &meta)?,
            Kind::Socket => self.stats.skipped.push(self.path_of(at, &e.name)),
        }
        Ok(())
    }

    fn special(&mut self, dir: &DirHandle, name: &EntryName, kind: SpecialKind, meta: &Metadata) -> Result<()> {
        dir.special(name, kind, meta)?;
        self.stats.specials += 1;
        Ok(())
    }

    /// Copies a file's content; zero runs of [`HOLE`] bytes become holes.
    fn write_content(&mut self, out: &mut File, content: &Content, size: u64) -> Result<()> {
        let Content::Region { file, ranges } = content else {
            return crate::write::copy_content(content, size, None, out);
        };
        if **file != *self.image.path {
            return crate::write::copy_content(content, size, None, out);
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; BUF];
        }
        let mut total = 0u64;
        for &(off, len) in ranges {
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(BUF as u64) as usize;
                let chunk = &mut self.buf[..n];
                self.image.file.read_exact_at(chunk, off + done).with_context(|| {
                    format!("{}: reading {n} bytes at byte {}", self.image.path().display(), off + done)
                })?;
                for piece in chunk.chunks(HOLE) {
                    if piece.len() == HOLE && piece.iter().all(|&b| b == 0) {
                        out.seek(SeekFrom::Current(HOLE as i64))?;
                    } else {
                        out.write_all(piece)?;
                    }
                }
                done += n as u64;
            }
            total += len;
        }
        if total != size {
            bail!("{}: the extents hold {total} bytes, the entry says {size}", self.image.path().display());
        }
        out.set_len(size)?;
        Ok(())
    }
}
