//! Directory records (ECMA-119 9.1) and the walk that turns them into a
//! [`model::Tree`], with Rock Ridge names and metadata, relocated
//! directories (CL / RE), multi-extent files and hard-link groups.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;

use anyhow::{anyhow, Result};
use slipway_fstree::{display_bytes, EntryName, Timestamp};

use super::susp::{self, Continuation, Fields};
use super::{DirExtent, IsoImage};
use crate::model::{self, Content, Entry, Kind, Meta, Tree};
use crate::spec::{self, FLAG_DIR, FLAG_MULTI_EXTENT, SECTOR};

/// Directories nested deeper than this are refused.
pub(crate) const MAX_DEPTH: usize = 256;
/// Entries one tree may have.
pub(crate) const MAX_ENTRIES: u64 = 4_000_000;
/// Bytes of a directory read at a time (a whole number of sectors).
const CHUNK: u64 = 64 * 1024;
/// Associated file (ECMA-119 9.1.6): hidden, like the Linux kernel does.
const FLAG_ASSOCIATED: u8 = 0x04;

use crate::spec::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFSOCK};

/// Which names and metadata the tree is read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Names {
    /// Rock Ridge; LEN_SKP bytes are skipped at the start of each system use field.
    RockRidge {
        skip: usize,
    },
    Joliet,
    Iso,
}

/// How much directory and SUSP data one walk may read: twice the image's
/// size (a sound image reads each byte at most once), so overlapping or
/// repeated extents in a crafted image cannot make the walk run long.
struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    fn new(img: &IsoImage) -> Self {
        let limit = img.len.saturating_mul(2).saturating_add(1 << 20);
        Budget { left: limit, limit }
    }

    fn take(&mut self, n: u64) -> Result<()> {
        if n > self.left {
            return Err(anyhow!(
                "the directories and SUSP areas add up to more than {} bytes, twice the image's size; \
                 the image is corrupt or made to make readers loop",
                self.limit
            ));
        }
        self.left -= n;
        Ok(())
    }
}

/// Reads a SUSP continuation area.
fn read_ce(img: &IsoImage, budget: &mut Budget, ce: Continuation) -> Result<Vec<u8>> {
    let off = u64::from(ce.lba) * SECTOR + u64::from(ce.offset);
    let len = u64::from(ce.len);
    if off + len > img.len {
        return Err(anyhow!(
            "SUSP continuation area (CE) at sector {} byte {} ({len} bytes) runs past the end of the image ({} sectors)",
            ce.lba,
            ce.offset,
            spec::sectors(img.len)
        ));
    }
    budget.take(len)?;
    let mut buf = vec![0u8; ce.len as usize];
    img.file
        .read_exact_at(&mut buf, off)
        .map_err(|e| anyhow!("reading the SUSP continuation area at sector {}: {e}", ce.lba))?;
    Ok(buf)
}

/// Where the system use field of a directory record starts.
fn system_use(r: &[u8]) -> &[u8] {
    let name_len = r[32] as usize;
    r.get(33 + name_len + usize::from(name_len % 2 == 0)..).unwrap_or(&[])
}

/// Rock Ridge as found in the root directory's `.` record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RockRidge {
    /// LEN_SKP of the SP entry.
    pub skip: u8,
    /// An ER entry names Rock Ridge.
    pub er: bool,
}

/// Looks for the SUSP `SP` entry that starts the system use field of the
/// root directory's first record.
pub(crate) fn probe_rock_ridge(img: &IsoImage) -> Result<Option<RockRidge>> {
    let root = img.primary_root();
    let fail = |msg: String| anyhow!("{}: /: {msg}", img.path.display());
    let off = root.lba * SECTOR;
    if off + root.size > img.len {
        return Err(fail(format!(
            "directory extent at sector {} ({} bytes) runs past the end of the image ({} sectors)",
            root.lba,
            root.size,
            spec::sectors(img.len)
        )));
    }
    let n = root.size.min(SECTOR) as usize;
    if n < 34 {
        return Err(fail(format!("the root directory is {} bytes, too small to hold its '.' record", root.size)));
    }
    let mut buf = vec![0u8; n];
    img.file.read_exact_at(&mut buf, off).map_err(|e| fail(format!("reading the root directory: {e}")))?;
    let len = buf[0] as usize;
    if len < 34 || len > n {
        return Err(fail("the root directory does not start with a directory record".into()));
    }
    let su = system_use(&buf[..len]);
    if su.len() < 7 || &su[..2] != b"SP" || su[2] < 7 || su[4] != 0xBE || su[5] != 0xEF {
        return Ok(None);
    }
    let mut budget = Budget::new(img);
    let f = susp::parse(su, &mut |ce| read_ce(img, &mut budget, ce)).map_err(|e| fail(format!("record '.': {e:#}")))?;
    Ok(Some(RockRidge { skip: su[6], er: f.rrip_er }))
}

/// Reads the whole tree of `img`.
///
/// The walk is iterative, so nesting costs no stack: each directory is read
/// as a job, its subdirectories become placeholders plus new jobs, and the
/// tree is assembled from the deepest directories up once all are read.
pub(crate) fn read_tree(img: &IsoImage) -> Result<Tree> {
    let (names, root) = match (probe_rock_ridge(img)?, img.joliet_root()) {
        (Some(rr), _) => (Names::RockRidge { skip: rr.skip as usize }, img.primary_root()),
        (None, Some(j)) => (Names::Joliet, j),
        (None, None) => (Names::Iso, img.primary_root()),
    };
    let mut w = Walk {
        img,
        names,
        budget: Budget::new(img),
        visited: HashSet::new(),
        relocated_from: HashSet::new(),
        links: HashMap::new(),
        link_members: HashMap::new(),
        entries: 0,
        jobs: vec![Some(Job { ext: root, depth: 0 })],
        dirs: vec![(0, Vec::new())],
        stack: vec![0],
    };
    let mut read: Vec<Option<Listing>> = Vec::new();
    while let Some(id) = w.stack.pop() {
        let Some(job) = w.jobs.get_mut(id).and_then(Option::take) else { continue };
        let listing = w.read_dir(id, job)?;
        if read.len() <= id {
            read.resize_with(id + 1, || None);
        }
        read[id] = Some(listing);
    }
    // Children always have higher ids than their parents: build from the
    // last directory read back to the root.
    let mut built: Vec<Option<(Vec<Entry>, Option<Rec>)>> = Vec::new();
    built.resize_with(read.len(), || None);
    for id in (0..read.len()).rev() {
        let Some(Listing { mut entries, children, dot }) = read[id].take() else { continue };
        let mut gone = Vec::new();
        for c in children {
            let (kids, kid_dot) = built.get_mut(c.id).and_then(Option::take).unwrap_or_default();
            if c.relocated {
                if let Some(d) = kid_dot.as_ref().filter(|d| d.rr.as_ref().is_some_and(|f| f.px.is_some())) {
                    entries[c.index].meta = w.meta(d.rr.as_ref(), &d.date, true);
                }
            } else if kids.is_empty() && w.relocated_from.contains(&c.lba) {
                // rr_moved, left empty once its directories went back to
                // their places.
                gone.push(c.index);
            }
            entries[c.index].kind = Kind::Dir(kids);
        }
        for i in gone.into_iter().rev() {
            entries.remove(i);
        }
        built[id] = Some((entries, dot));
    }
    let (entries, dot) = built.first_mut().and_then(Option::take).unwrap_or_default();
    let root_meta = match &dot {
        Some(d) => w.meta(d.rr.as_ref(), &d.date, true),
        None => w.meta(None, &[0; 7], true),
    };
    let mut tree = Tree { root: root_meta, entries };
    w.finish_links(&mut tree.entries, &mut HashMap::new());
    Ok(tree)
}

/// One directory record, parsed.
struct Rec {
    /// The ISO 9660 (or Joliet, UCS-2) identifier.
    name: Vec<u8>,
    flags: u8,
    /// First sector of the data (past any extended attribute record).
    lba: u64,
    size: u64,
    date: [u8; 7],
    interleaved: bool,
    /// Rock Ridge fields (Rock Ridge trees only; not for `..`).
    rr: Option<Fields>,
}

impl Rec {
    fn is_dot(&self) -> bool {
        self.name == [0]
    }

    fn is_dotdot(&self) -> bool {
        self.name == [1]
    }
}

/// A directory to read.
struct Job {
    ext: DirExtent,
    depth: usize,
}

/// A subdirectory entry whose children come from another job.
struct Child {
    /// Position of the entry in its directory.
    index: usize,
    /// The job reading it.
    id: usize,
    /// Its extent.
    lba: u64,
    /// Reached through a Rock Ridge CL: its metadata is its `.` record's.
    relocated: bool,
}

/// A directory as read: entries sorted by name, subdirectories still empty.
struct Listing {
    entries: Vec<Entry>,
    children: Vec<Child>,
    dot: Option<Rec>,
}

/// A directory being read: its entries so far and the records of a
/// multi-extent file not finished yet.
struct DirState {
    out: Vec<(Entry, Option<Child>)>,
    pending: Vec<Rec>,
    dot: Option<Rec>,
    /// Extent of this directory (for relocation bookkeeping).
    lba: u64,
}

/// What a record group becomes: kind, metadata, link group, and the job of a
/// subdirectory.
type Made = (Kind, Meta, Option<u64>, Option<Child>);

struct Walk<'a> {
    img: &'a IsoImage,
    names: Names,
    budget: Budget,
    /// Directory extents read so far (a second visit is a loop).
    visited: HashSet<u64>,
    /// Directory extents in which RE-marked (relocated) entries were hidden.
    relocated_from: HashSet<u64>,
    /// Hard-link key (serial, first byte, size) -> provisional group id.
    links: HashMap<(Option<u32>, u64, u64), u64>,
    link_members: HashMap<u64, u32>,
    entries: u64,
    /// Directories found, by id; taken when read.
    jobs: Vec<Option<Job>>,
    /// Parent id and name of every directory found (the root is 0), from
    /// which paths are made for messages: a path per directory would let a
    /// deep tree with many entries take memory quadratic in the image size.
    dirs: Vec<(usize, Vec<u8>)>,
    /// Ids of directories still to read.
    stack: Vec<usize>,
}

impl Walk<'_> {
    /// An error about directory `dir`, or about entry `name` in it.
    fn fail(&self, dir: usize, name: Option<&[u8]>, msg: impl std::fmt::Display) -> anyhow::Error {
        let mut path = Vec::new();
        if let Some(n) = name {
            path.push(n.to_vec());
        }
        // Parents always have smaller ids, so this ends at the root.
        let mut id = dir;
        while id != 0 {
            let Some((parent, n)) = self.dirs.get(id) else { break };
            path.push(n.clone());
            id = *parent;
        }
        path.reverse();
        anyhow!("{}: {}: {msg}", self.img.path.display(), model::join(&path))
    }

    /// Queues the directory `name` in `parent` for reading; returns its id.
    fn queue(&mut self, ext: DirExtent, parent: usize, name: &[u8], depth: usize) -> usize {
        let id = self.jobs.len();
        self.jobs.push(Some(Job { ext, depth }));
        self.dirs.push((parent, name.to_vec()));
        self.stack.push(id);
        id
    }

    /// Reads directory `id`.
    fn read_dir(&mut self, id: usize, job: Job) -> Result<Listing> {
        let Job { ext, depth } = job;
        let root = id == 0;
        if depth > MAX_DEPTH {
            return Err(self.fail(id, None, format!("directories are nested more than {MAX_DEPTH} levels deep")));
        }
        if !self.visited.insert(ext.lba) {
            return Err(self.fail(
                id,
                None,
                format!("directory extent at sector {} is reached a second time: the directories form a loop", ext.lba),
            ));
        }
        let start = ext.lba * SECTOR;
        if start + ext.size > self.img.len {
            return Err(self.fail(
                id,
                None,
                format!(
                    "directory extent at sector {} ({} bytes) runs past the end of the image ({} sectors)",
                    ext.lba,
                    ext.size,
                    spec::sectors(self.img.len)
                ),
            ));
        }
        self.budget.take(ext.size).map_err(|e| self.fail(id, None, e))?;
        let mut st = DirState { out: Vec::new(), pending: Vec::new(), dot: None, lba: ext.lba };
        let mut buf = Vec::new();
        let mut done = 0u64;
        while done < ext.size {
            let n = (ext.size - done).min(CHUNK);
            buf.resize(n as usize, 0);
            self.img
                .file
                .read_exact_at(&mut buf, start + done)
                .map_err(|e| self.fail(id, None, format!("reading the directory at sector {}: {e}", ext.lba)))?;
            for (i, sector) in buf.chunks(SECTOR as usize).enumerate() {
                let lba = ext.lba + done / SECTOR + i as u64;
                let mut pos = 0usize;
                while pos < sector.len() {
                    let len = sector[pos] as usize;
                    if len == 0 {
                        // The rest of the sector is unused.
                        break;
                    }
                    let Some(r) = sector.get(pos..pos + len) else {
                        return Err(self.fail(
                            id,
                            None,
                            format!(
                                "directory record at sector {lba} byte {pos} ({len} bytes) runs past the end of its \
                                 sector or directory"
                            ),
                        ));
                    };
                    if len < 34 {
                        return Err(self.fail(
                            id,
                            None,
                            format!("directory record at sector {lba} byte {pos} is {len} bytes, less than 34"),
                        ));
                    }
                    let rec = self.parse_record(r, lba, pos, id, root)?;
                    self.add_record(&mut st, rec, id, depth)?;
                    pos += len;
                }
            }
            done += n;
        }
        if let Some(last) = st.pending.last() {
            return Err(self.fail(
                id,
                None,
                format!("record {}: a multi-extent file ends without its final extent", display_bytes(&last.name)),
            ));
        }
        let mut out = st.out;
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        if let Some(w) = out.windows(2).find(|w| w[0].0.name == w[1].0.name) {
            return Err(self.fail(id, None, format!("two entries are named {}", display_bytes(&w[0].0.name))));
        }
        let mut entries = Vec::with_capacity(out.len());
        let mut children = Vec::new();
        for (index, (e, child)) in out.into_iter().enumerate() {
            entries.push(e);
            if let Some(c) = child {
                children.push(Child { index, ..c });
            }
        }
        Ok(Listing { entries, children, dot: st.dot })
    }

    fn parse_record(&mut self, r: &[u8], lba: u64, pos: usize, dir: usize, root: bool) -> Result<Rec> {
        let name_len = r[32] as usize;
        let Some(name) = r.get(33..33 + name_len) else {
            return Err(self.fail(
                dir,
                None,
                format!(
                    "directory record at sector {lba} byte {pos}: its {name_len}-byte name runs past the record's {} bytes",
                    r.len()
                ),
            ));
        };
        if name.is_empty() {
            return Err(self.fail(dir, None, format!("directory record at sector {lba} byte {pos} has an empty name")));
        }
        let mut rec = Rec {
            name: name.to_vec(),
            flags: r[25],
            lba: u64::from(spec::read_both32(&r[2..10])) + u64::from(r[1]),
            size: u64::from(spec::read_both32(&r[10..18])),
            date: [r[18], r[19], r[20], r[21], r[22], r[23], r[24]],
            interleaved: r[26] != 0 || r[27] != 0,
            rr: None,
        };
        if let Names::RockRidge { skip } = self.names {
            if !rec.is_dotdot() {
                let su = system_use(r);
                let area = if root && rec.is_dot() { su } else { su.get(skip..).unwrap_or(&[]) };
                let img = self.img;
                let budget = &mut self.budget;
                let fields = susp::parse(area, &mut |ce| read_ce(img, budget, ce));
                rec.rr = Some(fields.map_err(|e| {
                    self.fail(dir, None, format!("record {} at sector {lba} byte {pos}: {e:#}", display_bytes(name)))
                })?);
            }
        }
        Ok(rec)
    }

    /// Adds a record to the directory: multi-extent files collect their
    /// records until the last one.
    fn add_record(&mut self, st: &mut DirState, rec: Rec, dir: usize, depth: usize) -> Result<()> {
        if let Some(first) = st.pending.first() {
            if first.name != rec.name {
                return Err(self.fail(
                    dir,
                    None,
                    format!("record {}: a multi-extent file ends without its final extent", display_bytes(&first.name)),
                ));
            }
        }
        let more = rec.flags & FLAG_MULTI_EXTENT != 0;
        if st.pending.is_empty() && (rec.is_dot() || rec.is_dotdot()) {
            if rec.is_dot() && st.dot.is_none() {
                st.dot = Some(rec);
            }
            return Ok(());
        }
        st.pending.push(rec);
        if more {
            return Ok(());
        }
        let group = std::mem::take(&mut st.pending);
        if group[0].flags & FLAG_ASSOCIATED != 0 {
            return Ok(());
        }
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(self.fail(dir, None, format!("the image has more than {MAX_ENTRIES} entries")));
        }
        if let Some(e) = self.entry(&group, st.lba, dir, depth)? {
            st.out.push(e);
        }
        Ok(())
    }

    /// The name of an entry, checked so it cannot climb out of a directory.
    fn name(&self, r: &Rec) -> std::result::Result<Vec<u8>, String> {
        let raw = match (self.names, &r.rr) {
            (Names::RockRidge { .. }, Some(f)) if f.nm_dot => {
                return Err(format!("record {}: its Rock Ridge name (NM) is '.' or '..'", display_bytes(&r.name)));
            }
            (Names::RockRidge { .. }, Some(Fields { nm: Some(nm), .. })) => nm.clone(),
            (Names::Joliet, _) => {
                let units: Vec<u16> = r.name.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                strip_version(String::from_utf16_lossy(&units).as_bytes()).to_vec()
            }
            _ => strip_version(&r.name).to_vec(),
        };
        EntryName::new(raw).map(EntryName::into_bytes).map_err(|e| format!("record {}: {e}", display_bytes(&r.name)))
    }

    /// The entry for the records of one file or directory, `None` when it
    /// is hidden (a relocated directory's own record).
    fn entry(
        &mut self,
        group: &[Rec],
        dir_lba: u64,
        dir: usize,
        depth: usize,
    ) -> Result<Option<(Entry, Option<Child>)>> {
        let first = &group[0];
        if first.rr.as_ref().is_some_and(|f| f.re) {
            self.relocated_from.insert(dir_lba);
            return Ok(None);
        }
        let name = self.name(first).map_err(|e| self.fail(dir, None, e))?;
        let (kind, meta, link, child) = self.kind(group, dir, &name, depth)?;
        Ok(Some((Entry { name, meta, kind, link }, child)))
    }

    fn kind(&mut self, group: &[Rec], dir: usize, name: &[u8], depth: usize) -> Result<Made> {
        let first = &group[0];
        let rr = first.rr.as_ref();
        if let Some(cl) = rr.and_then(|f| f.cl) {
            let ext = self.relocated(u64::from(cl), dir, name)?;
            let id = self.queue(ext, dir, name, depth + 1);
            let child = Child { index: 0, id, lba: ext.lba, relocated: true };
            return Ok((Kind::Dir(Vec::new()), self.meta(rr, &first.date, true), None, Some(child)));
        }
        if first.flags & FLAG_DIR != 0 {
            if group.len() > 1 {
                return Err(self.fail(dir, Some(name), "a directory is recorded with multi-extent records"));
            }
            let ext = DirExtent { lba: first.lba, size: first.size };
            let id = self.queue(ext, dir, name, depth + 1);
            let child = Child { index: 0, id, lba: ext.lba, relocated: false };
            return Ok((Kind::Dir(Vec::new()), self.meta(rr, &first.date, true), None, Some(child)));
        }
        let meta = self.meta(rr, &first.date, false);
        let ftype = rr.and_then(|f| f.px).map(|p| p.mode & S_IFMT);
        let link_target = rr.and_then(|f| f.link.clone());
        let kind = match ftype {
            Some(S_IFLNK) => match link_target {
                Some(t) => Kind::Symlink(t),
                None => {
                    return Err(self.fail(dir, Some(name), "a symbolic link (Rock Ridge PX) without a target (SL)"))
                }
            },
            None if link_target.is_some() => Kind::Symlink(link_target.unwrap_or_default()),
            Some(t @ (S_IFCHR | S_IFBLK)) => {
                let Some((high, low)) = rr.and_then(|f| f.pn) else {
                    return Err(self.fail(dir, Some(name), "a device (Rock Ridge PX) without a device number (PN)"));
                };
                let dev = device(high, low);
                if t == S_IFCHR {
                    Kind::CharDev(dev)
                } else {
                    Kind::BlockDev(dev)
                }
            }
            Some(S_IFIFO) => Kind::Fifo,
            Some(S_IFSOCK) => Kind::Socket,
            Some(S_IFDIR) => {
                return Err(self.fail(dir, Some(name), "Rock Ridge (PX) says directory, but the record is a file"))
            }
            _ => {
                let (kind, link) = self.file(group, dir, name)?;
                return Ok((kind, meta, link, None));
            }
        };
        Ok((kind, meta, None, None))
    }

    /// A regular file: its extents, checked against the image.
    fn file(&mut self, group: &[Rec], dir: usize, name: &[u8]) -> Result<(Kind, Option<u64>)> {
        let rr = group[0].rr.as_ref();
        if let Some(enc) = rr.and_then(|f| f.encoded) {
            return Err(self.fail(
                dir,
                Some(name),
                format!("the content is stored as Rock Ridge {enc}, which slipway cannot read"),
            ));
        }
        let mut ranges = Vec::with_capacity(group.len());
        let mut size = 0u64;
        for r in group {
            if r.interleaved {
                return Err(self.fail(dir, Some(name), "the file is recorded interleaved, which slipway cannot read"));
            }
            let off = r.lba * SECTOR;
            if r.size > 0 && off + r.size > self.img.len {
                return Err(self.fail(
                    dir,
                    Some(name),
                    format!(
                        "extent at sector {} ({} bytes) runs past the end of the image ({} sectors)",
                        r.lba,
                        r.size,
                        spec::sectors(self.img.len)
                    ),
                ));
            }
            ranges.push((off, r.size));
            size += r.size;
        }
        let first = ranges.first().map_or(0, |r| r.0);
        let link = match (self.names, rr.and_then(|f| f.px)) {
            // Without a serial number (RRIP 1.10 PX), files sharing an
            // extent are links; empty files share one, so they need it.
            (Names::RockRidge { .. }, Some(px)) if px.nlink > 1 && (px.serial.is_some() || size > 0) => {
                let next = self.links.len() as u64 + 1;
                let id = *self.links.entry((px.serial, first, size)).or_insert(next);
                *self.link_members.entry(id).or_default() += 1;
                Some(id)
            }
            _ => None,
        };
        Ok((Kind::File { size, content: Content::Region { file: self.img.path.clone(), ranges } }, link))
    }

    /// The extent of a relocated directory, from the `.` record it starts with.
    fn relocated(&mut self, lba: u64, dir: usize, name: &[u8]) -> Result<DirExtent> {
        let off = lba * SECTOR;
        if off + 34 > self.img.len {
            return Err(self.fail(
                dir,
                Some(name),
                format!(
                    "relocated directory (Rock Ridge CL) at sector {lba} lies past the end of the image ({} sectors)",
                    spec::sectors(self.img.len)
                ),
            ));
        }
        let n = SECTOR.min(self.img.len - off);
        self.budget.take(n).map_err(|e| self.fail(dir, Some(name), e))?;
        let mut buf = vec![0u8; n as usize];
        self.img
            .file
            .read_exact_at(&mut buf, off)
            .map_err(|e| self.fail(dir, Some(name), format!("reading the relocated directory at sector {lba}: {e}")))?;
        let len = buf[0] as usize;
        if len < 34 || len > buf.len() || buf[32] != 1 || buf[33] != 0 {
            return Err(self.fail(
                dir,
                Some(name),
                format!("relocated directory (Rock Ridge CL) at sector {lba} does not start with a '.' record"),
            ));
        }
        Ok(DirExtent { lba, size: u64::from(spec::read_both32(&buf[10..18])) })
    }

    fn meta(&self, rr: Option<&Fields>, date: &[u8; 7], dir: bool) -> Meta {
        let (mode, uid, gid) = match rr.and_then(|f| f.px) {
            Some(px) => (px.mode & 0o7777, px.uid, px.gid),
            // Without Rock Ridge, what a mounted disc shows: read-only.
            None => (if dir { 0o555 } else { 0o444 }, 0, 0),
        };
        let mtime = rr
            .and_then(|f| f.mtime)
            .or_else(|| spec::read_date7(date).map(|sec| Timestamp { sec, nsec: 0 }))
            .unwrap_or_default();
        Meta { mode, uid, gid, mtime }
    }

    /// Drops link groups with one member and numbers the rest from 1, in
    /// tree order.
    fn finish_links(&self, entries: &mut [Entry], numbers: &mut HashMap<u64, u64>) {
        for e in entries {
            if let Kind::Dir(children) = &mut e.kind {
                self.finish_links(children, numbers);
            }
            if let Some(id) = e.link {
                if self.link_members.get(&id).copied().unwrap_or(0) < 2 {
                    e.link = None;
                } else {
                    let next = numbers.len() as u64 + 1;
                    e.link = Some(*numbers.entry(id).or_insert(next));
                }
            }
        }
    }
}

/// A device number from a Rock Ridge PN entry. RRIP gives the high and
/// low 32 bits of `dev_t`, which libisofs (xorriso) writes; genisoimage
/// writes major and minor instead. A zero high half is read as a whole
/// `dev_t` (both agree there for common devices), otherwise as major/minor,
/// as the Linux kernel does.
fn device(high: u32, low: u32) -> u64 {
    if high == 0 {
        u64::from(low)
    } else {
        rustix::fs::makedev(high, low)
    }
}

/// An ISO 9660 or Joliet identifier without its `;1` version and a
/// trailing `.` (a file name without extension).
fn strip_version(name: &[u8]) -> &[u8] {
    let name = match name.iter().rposition(|&c| c == b';') {
        Some(p) if name[p + 1..].iter().all(u8::is_ascii_digit) => &name[..p],
        _ => name,
    };
    match name {
        [rest @ .., b'.'] if !rest.is_empty() => rest,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_names_lose_version_and_trailing_dot() {
        assert_eq!(strip_version(b"README.TXT;1"), b"README.TXT");
        assert_eq!(strip_version(b"FIFO.;1"), b"FIFO");
        assert_eq!(strip_version(b"DIR"), b"DIR");
        assert_eq!(strip_version(b"A;B"), b"A;B");
        assert_eq!(strip_version(b"."), b".");
        assert_eq!(strip_version(b";1"), b"");
    }

    #[test]
    fn device_numbers_from_both_writers() {
        // libisofs: the whole dev_t in the low half.
        assert_eq!(device(0, 0x0103), rustix::fs::makedev(1, 3));
        assert_eq!(device(0, 0x1111_2c70), rustix::fs::makedev(300, 70000));
        // genisoimage: major and minor.
        assert_eq!(device(8, 1), rustix::fs::makedev(8, 1));
        assert_eq!(device(300, 70000), rustix::fs::makedev(300, 70000));
    }
}
