//! Writing ISO 9660 images.
//!
//! The writer works in three steps, so that memory holds only metadata:
//! 1. **plan**: walk the tree once, give every entry its ISO 9660 name
//!    (level 3: 31 characters, multi-extent files), its Joliet name and its
//!    Rock Ridge fields, and measure every directory;
//! 2. **allocate**: give each structure its sectors, in the order they are
//!    written (volume descriptors, boot catalog, path tables, directories,
//!    Rock Ridge continuation areas, Joliet directories, file data, appended
//!    images, system-area tail);
//! 3. **stream**: render the metadata with the final addresses and copy file
//!    content straight from its source to the output, sector by sector.
//!
//! The output goes to a temporary file next to the destination, is synced
//! and then renamed, so a failed or interrupted build never leaves a
//! half-written image under the requested name. The layout is documented in
//! `docs/iso-format.md`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::hybrid::{Extent, Layout, Rendered};
use crate::model::{self, BootImage, CatalogPlace, Content, Entry, External, Image, Kind, Meta, SystemArea, Tree};
use crate::spec::*;

/// Copies exactly `size` bytes of `content` to `out`. A source that is
/// shorter or longer than `size` is an error naming it (a file that changed
/// while the image was written).
pub fn copy_content<'e>(
    content: &Content,
    size: u64,
    external: Option<&mut (dyn External + 'e)>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match content {
        Content::Bytes(b) => {
            if b.len() as u64 != size {
                bail!("in-memory content is {} bytes, expected {size}", b.len());
            }
            out.write_all(b)?;
        }
        Content::Path(p) => {
            let mut f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let n = copy_exact(&mut f, size, out).with_context(|| format!("reading {}", p.display()))?;
            if n != size {
                bail!("{} is {n} bytes now, {size} when it was scanned; it changed during the build", p.display());
            }
        }
        Content::Region { file, ranges } => {
            let mut f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let mut total = 0u64;
            for &(off, len) in ranges {
                f.seek(SeekFrom::Start(off))?;
                let n = copy_exact(&mut f, len, out).with_context(|| format!("reading {}", file.display()))?;
                if n != len {
                    bail!("{}: extent at byte {off} ({len} bytes) runs past the end of the file", file.display());
                }
                total += n;
            }
            if total != size {
                bail!("{}: extents hold {total} bytes, the entry says {size}", file.display());
            }
        }
        Content::External(id) => match external {
            Some(x) => x.write_external(*id, size, out)?,
            None => bail!("content {id} comes from an external source, and none was given"),
        },
    }
    Ok(())
}

/// Copies up to `len` bytes from `r` to `out` in large blocks (so that a
/// sink can turn long zero runs into holes); returns the bytes copied.
fn copy_exact(r: &mut File, len: u64, out: &mut dyn Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; (len.min(COPY_BLOCK as u64)) as usize];
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

const COPY_BLOCK: usize = 1 << 20;
/// Zero runs at least this long become holes in the output file.
const HOLE_MIN: usize = 64 << 10;

/// What a finished build reports.
#[derive(Clone, Debug, Serialize)]
pub struct WriteReport {
    /// Bytes of the image file.
    pub bytes: u64,
    /// Size of the ISO 9660 filesystem in 2048-byte sectors.
    pub fs_sectors: u64,
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    /// Bytes of file content (each hard-linked file counted once).
    pub content_bytes: u64,
    /// El Torito entries written: platform and extent.
    pub boot: Vec<BootReport>,
    /// Entries left out of the Joliet tree (symlinks, devices) or renamed
    /// there; Rock Ridge keeps them all.
    pub joliet_skipped: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BootReport {
    pub platform: String,
    pub lba: u64,
    pub bytes: u64,
    pub path: Option<String>,
}

/// Builds the image described by `tree` and `image` at `out`.
/// `progress(done, total)` is called with content bytes as they are copied.
pub fn write_image(
    tree: Tree,
    image: &Image,
    external: Option<&mut dyn External>,
    out: &Path,
    progress: &dyn Fn(u64, u64),
) -> anyhow::Result<WriteReport> {
    let mut tree = tree;
    let boot = prepare_boot(&mut tree, image)?;
    let mut plan = Plan::new(&tree, image, &boot)?;
    plan.allocate(&boot)?;

    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().with_context(|| format!("{} is not a file name", out.display()))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp-");
    remove_stale_temps(dir, prefix.as_encoded_bytes());
    let mut tmp_name = prefix;
    tmp_name.push(std::process::id().to_string());
    let tmp = dir.join(tmp_name);
    let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let guard = TempGuard(&tmp);
    let mut w = Sink { w: BufWriter::with_capacity(1 << 20, f), pos: 0, hole_at_end: false };
    let report =
        plan.stream(&mut w, &boot, external, progress).with_context(|| format!("writing {}", out.display()))?;
    let (pos, hole_at_end) = (w.pos, w.hole_at_end);
    let f = w.w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {}", tmp.display()))?;
    if hole_at_end {
        f.set_len(pos).with_context(|| format!("writing {}", tmp.display()))?;
    }
    f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    std::mem::forget(guard);
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(report)
}

/// Removes `PREFIX<pid>` files left by builds of the same output that were
/// killed (their process is gone), so an interrupted build's partial image
/// does not stay on disk for good.
fn remove_stale_temps(dir: &Path, prefix: &[u8]) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.as_encoded_bytes().strip_prefix(prefix) else { continue };
        let Some(pid) = std::str::from_utf8(pid).ok().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

struct TempGuard<'a>(&'a Path);
impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// A writer that knows its position, for checking the plan while streaming.
struct Sink {
    w: BufWriter<File>,
    pos: u64,
    /// The last bytes were skipped: the file must be extended to `pos`.
    hole_at_end: bool,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Long runs of zeros (holes of sparse sources, padding) are skipped
        // with a seek, so the image is sparse where its sources are.
        if buf.len() >= HOLE_MIN && buf.iter().all(|&b| b == 0) {
            self.w.flush()?;
            self.w.get_mut().seek(SeekFrom::Current(buf.len() as i64))?;
            self.pos += buf.len() as u64;
            self.hole_at_end = true;
            return Ok(buf.len());
        }
        let n = self.w.write(buf)?;
        self.pos += n as u64;
        if n > 0 {
            self.hole_at_end = false;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

impl Sink {
    fn zeros(&mut self, mut n: u64) -> std::io::Result<()> {
        let z = [0u8; HOLE_MIN];
        while n > 0 {
            let k = n.min(z.len() as u64) as usize;
            self.write_all(&z[..k])?;
            n -= k as u64;
        }
        Ok(())
    }
    fn pad_to(&mut self, lba: u64) -> anyhow::Result<()> {
        let target = lba * SECTOR;
        if self.pos > target {
            bail!("internal layout error: at byte {} but sector {lba} should start at {target}", self.pos);
        }
        Ok(self.zeros(target - self.pos)?)
    }
}

// ------------------------------------------------------------------ boot prep

/// Boot entries resolved against the tree.
struct BootPlan {
    catalog: Option<Vec<Vec<u8>>>,
    hidden_catalog: bool,
    entries: Vec<BootSlot>,
}

struct BootSlot {
    entry: model::BootEntry,
}

fn prepare_boot(tree: &mut Tree, image: &Image) -> anyhow::Result<BootPlan> {
    let Some(boot) = &image.boot else {
        return Ok(BootPlan { catalog: None, hidden_catalog: false, entries: Vec::new() });
    };
    if boot.entries.is_empty() {
        bail!("a boot catalog needs at least one boot entry");
    }
    let mut catalog = None;
    let mut hidden_catalog = false;
    match &boot.catalog {
        CatalogPlace::File(path) => {
            let Some((last, dir)) = path.split_last() else { bail!("the boot catalog path is empty") };
            let meta = Meta { mode: 0o444, ..tree.root.clone() };
            let entry = Entry {
                name: last.clone(),
                meta: meta.clone(),
                kind: Kind::File { size: SECTOR, content: Content::Bytes(vec![0u8; SECTOR as usize].into()) },
                link: None,
            };
            let dir_meta = Meta { mode: 0o755, ..tree.root.clone() };
            tree.insert(dir, entry, true, &dir_meta).context("placing the boot catalog")?;
            catalog = Some(path.clone());
        }
        CatalogPlace::Hidden => hidden_catalog = true,
    }
    for e in &boot.entries {
        if let BootImage::File(path) = &e.image {
            match tree.get(path) {
                Some(Entry { kind: Kind::File { size, .. }, .. }) => {
                    if *size == 0 {
                        bail!("boot image {} is empty", model::join(path));
                    }
                }
                Some(other) => {
                    bail!("boot image {} is a {}, not a regular file", model::join(path), other.kind.type_name())
                }
                None => bail!("boot image {} is not in the tree", model::join(path)),
            }
            if Some(path) == catalog.as_ref() {
                bail!("boot image {} is also where the boot catalog goes", model::join(path));
            }
        }
    }
    Ok(BootPlan {
        catalog,
        hidden_catalog,
        entries: boot.entries.iter().map(|e| BootSlot { entry: e.clone() }).collect(),
    })
}

// ------------------------------------------------------------------ plan

/// A regular file's data: one per hard-link group, plus hidden boot images.
struct FileData<'t> {
    size: u64,
    content: FileContent<'t>,
    lba: u64,
    /// Rock Ridge file serial number.
    serial: u32,
    nlink: u32,
    /// The first boot entry that boots this file, for patching.
    boot: Option<usize>,
    appended: bool,
    path: String,
}

enum FileContent<'t> {
    Tree(&'t Content),
    Owned(Content),
    /// The boot catalog, rendered at write time.
    Catalog,
}

/// Where a continuation area goes.
#[derive(Clone, Copy, Default)]
struct CePos {
    lba: u64,
    offset: u32,
}

/// The Rock Ridge fields of one record, split into the part that fits the
/// record and continuation areas.
#[derive(Default)]
struct Susp {
    /// Fields in the directory record itself (without the CE field).
    inline: Vec<u8>,
    /// Continuation areas; each but the last ends with a CE to the next.
    areas: Vec<Vec<u8>>,
    /// Where each continuation area lands (filled by `allocate`).
    pos: Vec<CePos>,
}

const CE_LEN: usize = 28;
/// The longest directory record: the length byte holds 255, and records
/// have even lengths.
const MAX_REC: usize = 254;

impl Susp {
    /// Splits `fields` so that the record keeps at most `room` bytes and
    /// every continuation area fits one sector.
    fn pack(fields: Vec<Vec<u8>>, room: usize) -> Susp {
        let total: usize = fields.iter().map(|f| f.len()).sum();
        if total <= room {
            return Susp { inline: fields.concat(), areas: Vec::new(), pos: Vec::new() };
        }
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut cur = Vec::new();
        let mut cap = room - CE_LEN;
        for (i, f) in fields.iter().enumerate() {
            let rest: usize = fields[i..].iter().map(|f| f.len()).sum();
            // The last area needs no CE of its own.
            let fits_as_last = !chunks.is_empty() && cur.len() + rest <= SECTOR as usize;
            if cur.len() + f.len() > cap && !fits_as_last {
                chunks.push(std::mem::take(&mut cur));
                cap = SECTOR as usize - CE_LEN;
            }
            cur.extend_from_slice(f);
        }
        chunks.push(cur);
        let inline = chunks.remove(0);
        let n = chunks.len();
        Susp { inline, areas: chunks, pos: vec![CePos::default(); n] }
    }

    fn inline_len(&self) -> usize {
        self.inline.len() + if self.areas.is_empty() { 0 } else { CE_LEN }
    }

    /// Bytes of continuation area `i` as written: its fields and, unless
    /// it is the last, the CE to the next area (which the pointer to area
    /// `i` must cover, or readers stop before it).
    fn area_len(&self, i: usize) -> usize {
        self.areas[i].len() + if i + 1 < self.areas.len() { CE_LEN } else { 0 }
    }

    /// The system use field of the record, with the CE to the first area.
    fn render_inline(&self) -> Vec<u8> {
        let mut v = self.inline.clone();
        if let Some(p) = self.pos.first().filter(|_| !self.areas.is_empty()) {
            v.extend_from_slice(&ce_field(p, self.area_len(0)));
        }
        v
    }

    /// Continuation area `i` with the CE to the next one.
    fn render_area(&self, i: usize) -> Vec<u8> {
        let mut v = self.areas[i].clone();
        if let Some(p) = self.pos.get(i + 1) {
            v.extend_from_slice(&ce_field(p, self.area_len(i + 1)));
        }
        v
    }
}

fn ce_field(p: &CePos, len: usize) -> [u8; CE_LEN] {
    let mut f = [0u8; CE_LEN];
    f[0..4].copy_from_slice(&[b'C', b'E', CE_LEN as u8, 1]);
    both32(&mut f[4..12], p.lba as u32);
    both32(&mut f[12..20], p.offset);
    both32(&mut f[20..28], len as u32);
    f
}

/// One directory record to be written (ISO 9660 or Joliet).
struct Rec {
    /// Identifier bytes as stored (d-characters with ";1", or UCS-2).
    ident: Vec<u8>,
    target: Target,
    mtime: i64,
    /// Rock Ridge fields (ISO 9660 tree only).
    susp: Option<Susp>,
}

#[derive(Clone, Copy)]
enum Target {
    /// A directory, by index.
    Dir(usize),
    /// Part `part` of a file's data (multi-extent files have several).
    File { file: usize, part: u32, parts: u32 },
    /// Symlinks and special files: no data.
    Empty,
}

struct DirNode {
    parent: usize,
    /// Records of the children, sorted as each tree wants.
    recs: Vec<Rec>,
    jrecs: Vec<Rec>,
    /// Rock Ridge fields of the "." and ".." records.
    dot: Susp,
    dotdot: Susp,
    ident: Vec<u8>,
    jident: Vec<u8>,
    mtime: i64,
    size: u64,
    lba: u64,
    jsize: u64,
    jlba: u64,
    /// Sectors of continuation areas right after the directory's extent.
    ce_sectors: u64,
    /// Path-table numbers (1-based) in the ISO 9660 and Joliet tables.
    number: u16,
    jnumber: u16,
}

struct Plan<'t> {
    image: &'t Image,
    dirs: Vec<DirNode>,
    files: Vec<FileData<'t>>,
    /// Directories in path-table order, per tree.
    order: Vec<usize>,
    jorder: Vec<usize>,
    joliet: bool,
    pt_size: u64,
    jpt_size: u64,
    /// Files booted by the catalog entries, in entry order, and their platforms.
    boot_files: Vec<usize>,
    boot_platforms: Vec<u8>,
    // Allocation results (sectors).
    catalog_lba: u64,
    pt_l: u64,
    pt_m: u64,
    jpt_l: u64,
    jpt_m: u64,
    empty_lba: u64,
    fs_sectors: u64,
    end_sectors: u64,
    report: WriteReport,
}

fn subdirs(entries: &[Entry]) -> u32 {
    entries.iter().filter(|e| matches!(e.kind, Kind::Dir(_))).count() as u32
}

impl<'t> Plan<'t> {
    fn new(tree: &'t Tree, image: &'t Image, boot: &BootPlan) -> anyhow::Result<Plan<'t>> {
        let mut p = Plan {
            image,
            dirs: Vec::new(),
            files: Vec::new(),
            order: Vec::new(),
            jorder: Vec::new(),
            joliet: image.joliet,
            pt_size: 0,
            jpt_size: 0,
            boot_files: Vec::new(),
            boot_platforms: Vec::new(),
            catalog_lba: 0,
            pt_l: 0,
            pt_m: 0,
            jpt_l: 0,
            jpt_m: 0,
            empty_lba: 0,
            fs_sectors: 0,
            end_sectors: 0,
            report: WriteReport {
                bytes: 0,
                fs_sectors: 0,
                dirs: 1,
                files: 0,
                symlinks: 0,
                specials: 0,
                content_bytes: 0,
                boot: Vec::new(),
                joliet_skipped: 0,
            },
        };
        let mut link_counts: HashMap<u64, u32> = HashMap::new();
        count_links(&tree.entries, &mut link_counts);
        let mut links: HashMap<u64, usize> = HashMap::new();
        // Serial numbers: directories get theirs from their index, the rest
        // count up from a separate base so the two never meet.
        let dir_serial = |i: usize| 0x8000_0000u32.wrapping_add(i as u32);
        let mut serial = 1u32;
        let root_sub = subdirs(&tree.entries);
        let root_fields = |m: &Meta, sub: u32| rr_meta_fields(m, S_IFDIR, 2 + sub, dir_serial(0));
        let mut dot = vec![sp_field()];
        dot.extend(root_fields(&tree.root, root_sub));
        dot.push(er_field());
        p.dirs.push(DirNode {
            parent: 0,
            recs: Vec::new(),
            jrecs: Vec::new(),
            dot: Susp::pack(dot, MAX_REC - 34),
            dotdot: Susp::pack(root_fields(&tree.root, root_sub), MAX_REC - 34),
            ident: vec![0],
            jident: vec![0],
            mtime: tree.root.mtime.sec,
            size: 0,
            lba: 0,
            jsize: 0,
            jlba: 0,
            ce_sectors: 0,
            number: 0,
            jnumber: 0,
        });
        // Depth-first with an explicit stack: no recursion limit on depth.
        struct Todo<'t> {
            dir: usize,
            entries: &'t [Entry],
            meta: &'t Meta,
            path: Vec<Vec<u8>>,
        }
        let mut stack = vec![Todo { dir: 0, entries: &tree.entries, meta: &tree.root, path: Vec::new() }];
        while let Some(todo) = stack.pop() {
            let mut sorted: Vec<&'t Entry> = todo.entries.iter().collect();
            sorted.sort_by(|a, b| a.name.cmp(&b.name));
            for w in sorted.windows(2) {
                if w[0].name == w[1].name {
                    bail!("{} appears twice in its directory", model::join(&child_path(&todo.path, &w[0].name)));
                }
            }
            let parent_sub = subdirs(todo.entries);
            let mut iso_names = NameSet::default();
            let mut j_names = NameSet::default();
            let mut recs = Vec::new();
            let mut jrecs = Vec::new();
            let mut subdirs_todo = Vec::new();
            for e in sorted {
                let epath = child_path(&todo.path, &e.name);
                check_name(&e.name, &epath)?;
                let is_dir = matches!(e.kind, Kind::Dir(_));
                let ident = iso_names.unique(iso_ident(&e.name, is_dir), is_dir);
                let jident = if p.joliet && matches!(e.kind, Kind::Dir(_) | Kind::File { .. }) {
                    Some(j_names.unique_joliet(joliet_ident(&e.name)))
                } else {
                    if p.joliet {
                        p.report.joliet_skipped += 1;
                    }
                    None
                };
                let mtime = e.meta.mtime.sec;
                let (target, fserial, nlink) = match &e.kind {
                    Kind::Dir(children) => {
                        p.report.dirs += 1;
                        let child = p.dirs.len();
                        let sub = subdirs(children);
                        // The "." record carries the directory's own PX and TF.
                        let dotf = rr_meta_fields(&e.meta, S_IFDIR, 2 + sub, dir_serial(child));
                        p.dirs.push(DirNode {
                            parent: todo.dir,
                            recs: Vec::new(),
                            jrecs: Vec::new(),
                            dot: Susp::pack(dotf, MAX_REC - 34),
                            dotdot: Susp::pack(
                                rr_meta_fields(todo.meta, S_IFDIR, 2 + parent_sub, dir_serial(todo.dir)),
                                MAX_REC - 34,
                            ),
                            ident: ident.clone(),
                            jident: jident.clone().unwrap_or_default(),
                            mtime,
                            size: 0,
                            lba: 0,
                            jsize: 0,
                            jlba: 0,
                            ce_sectors: 0,
                            number: 0,
                            jnumber: 0,
                        });
                        subdirs_todo.push(Todo { dir: child, entries: children, meta: &e.meta, path: epath.clone() });
                        (Target::Dir(child), dir_serial(child), 2 + sub)
                    }
                    Kind::File { size, content } => {
                        let existing = e.link.and_then(|g| links.get(&g).copied());
                        let fi = match existing {
                            Some(fi) => {
                                if p.files[fi].size != *size {
                                    bail!("{}: hard-linked files differ in size", model::join(&epath));
                                }
                                fi
                            }
                            None => {
                                let fi = p.files.len();
                                let is_catalog = boot.catalog.as_ref() == Some(&epath);
                                p.report.files += 1;
                                p.report.content_bytes += size;
                                p.files.push(FileData {
                                    size: *size,
                                    content: if is_catalog { FileContent::Catalog } else { FileContent::Tree(content) },
                                    lba: 0,
                                    serial,
                                    nlink: e.link.and_then(|g| link_counts.get(&g).copied()).unwrap_or(1),
                                    boot: None,
                                    appended: false,
                                    path: model::join(&epath),
                                });
                                serial += 1;
                                if let Some(g) = e.link {
                                    links.insert(g, fi);
                                }
                                fi
                            }
                        };
                        let parts = size.div_ceil(MAX_EXTENT).max(1) as u32;
                        (Target::File { file: fi, part: 0, parts }, p.files[fi].serial, p.files[fi].nlink)
                    }
                    other => {
                        if matches!(other, Kind::Symlink(_)) {
                            p.report.symlinks += 1;
                        } else {
                            p.report.specials += 1;
                        }
                        serial += 1;
                        (Target::Empty, serial - 1, 1)
                    }
                };
                let parts = match target {
                    Target::File { parts, .. } => parts,
                    _ => 1,
                };
                let room = MAX_REC - (33 + ident.len() + (ident.len() + 1) % 2);
                for part in 0..parts {
                    let t = match target {
                        Target::File { file, parts, .. } => Target::File { file, part, parts },
                        t => t,
                    };
                    let fields = rr_fields(e, fserial, nlink).with_context(|| model::join(&epath))?;
                    recs.push(Rec { ident: ident.clone(), target: t, mtime, susp: Some(Susp::pack(fields, room)) });
                    if let Some(j) = &jident {
                        jrecs.push(Rec { ident: j.clone(), target: t, mtime, susp: None });
                    }
                }
            }
            // Subdirectories next, first name first: file data ends up in
            // depth-first name order.
            stack.extend(subdirs_todo.into_iter().rev());
            // Stable sorts keep the parts of a multi-extent file in order.
            recs.sort_by(|a, b| iso_order(&a.ident, &b.ident));
            jrecs.sort_by(|a, b| a.ident.cmp(&b.ident));
            p.dirs[todo.dir].recs = recs;
            p.dirs[todo.dir].jrecs = jrecs;
        }
        // Hidden boot images become files without a directory entry.
        for (i, s) in boot.entries.iter().map(|s| &s.entry).enumerate() {
            let fi = match &s.image {
                BootImage::File(path) => {
                    let name = model::join(path);
                    p.files
                        .iter()
                        .position(|f| f.path == name && !matches!(f.content, FileContent::Catalog))
                        .with_context(|| format!("boot image {name} is not in the tree"))?
                }
                BootImage::Hidden { size, content, appended } => {
                    if *size == 0 {
                        bail!("hidden boot image {} is empty", i + 1);
                    }
                    p.files.push(FileData {
                        size: *size,
                        content: FileContent::Owned(content.clone()),
                        lba: 0,
                        serial: 0,
                        nlink: 1,
                        boot: None,
                        appended: *appended,
                        path: format!("(hidden boot image {})", i + 1),
                    });
                    p.files.len() - 1
                }
            };
            if p.files[fi].boot.is_none() {
                p.files[fi].boot = Some(i);
            }
            p.boot_files.push(fi);
            p.boot_platforms.push(s.platform);
        }
        if boot.hidden_catalog {
            p.files.push(FileData {
                size: SECTOR,
                content: FileContent::Catalog,
                lba: 0,
                serial: 0,
                nlink: 1,
                boot: None,
                appended: false,
                path: "(boot catalog)".into(),
            });
        }
        Ok(p)
    }

    fn allocate(&mut self, boot: &BootPlan) -> anyhow::Result<()> {
        let has_boot = !boot.entries.is_empty();
        let mut lba = SYSTEM_AREA_SECTORS + 1; // system area, primary descriptor
        if has_boot {
            lba += 1; // boot record
        }
        if self.joliet {
            lba += 1; // supplementary descriptor
        }
        lba += 1; // terminator
        if has_boot {
            self.catalog_lba = lba;
            lba += 1;
        }
        // Path tables.
        self.order = bfs(&self.dirs, false);
        if self.order.len() > 0xFFFF {
            bail!("{} directories; ISO 9660 path tables number at most 65535", self.order.len());
        }
        for (n, &d) in self.order.iter().enumerate() {
            self.dirs[d].number = (n + 1) as u16;
        }
        self.pt_size = self.order.iter().map(|&d| pt_rec_len(self.dirs[d].ident.len())).sum();
        self.pt_l = lba;
        lba += sectors(self.pt_size);
        self.pt_m = lba;
        lba += sectors(self.pt_size);
        if self.joliet {
            self.jorder = bfs(&self.dirs, true);
            for (n, &d) in self.jorder.iter().enumerate() {
                self.dirs[d].jnumber = (n + 1) as u16;
            }
            self.jpt_size = self.jorder.iter().map(|&d| pt_rec_len(self.dirs[d].jident.len())).sum();
            self.jpt_l = lba;
            lba += sectors(self.jpt_size);
            self.jpt_m = lba;
            lba += sectors(self.jpt_size);
        }
        // ISO 9660 directories, in path-table order.
        for d in &mut self.dirs {
            let mut lens = vec![rec_len(1, d.dot.inline_len()), rec_len(1, d.dotdot.inline_len())];
            lens.extend(d.recs.iter().map(|r| rec_len(r.ident.len(), r.susp.as_ref().map_or(0, |s| s.inline_len()))));
            d.size = packed_size(&lens);
        }
        // Each directory is followed by the continuation areas of its
        // records, packed into whole sectors. Readers that walk the image in
        // address order (libarchive) then meet a directory's Rock Ridge
        // continuations before the extents of its subdirectories.
        for &d in &self.order {
            let dir = &mut self.dirs[d];
            dir.lba = lba;
            lba += dir.size / SECTOR;
            let mut cur = lba;
            let mut off = 0u64;
            let mut used = false;
            let mut susps: Vec<&mut Susp> = vec![&mut dir.dot, &mut dir.dotdot];
            susps.extend(dir.recs.iter_mut().filter_map(|r| r.susp.as_mut()));
            for s in susps {
                for i in 0..s.areas.len() {
                    let len = s.area_len(i) as u64;
                    if off + len > SECTOR {
                        cur += 1;
                        off = 0;
                    }
                    s.pos[i] = CePos { lba: cur, offset: off as u32 };
                    off += len;
                    used = true;
                }
            }
            dir.ce_sectors = if used { cur + 1 - lba } else { 0 };
            lba += dir.ce_sectors;
        }
        // Joliet directories.
        if self.joliet {
            for d in &mut self.dirs {
                let mut lens = vec![34usize, 34];
                lens.extend(d.jrecs.iter().map(|r| rec_len(r.ident.len(), 0)));
                d.jsize = packed_size(&lens);
            }
            for &d in &self.jorder {
                self.dirs[d].jlba = lba;
                lba += self.dirs[d].jsize / SECTOR;
            }
        }
        // File data: boot images first, then the rest in tree order. Empty
        // files share one zero sector at the end.
        let mut order: Vec<usize> = Vec::new();
        let mut seen = vec![false; self.files.len()];
        for &f in &self.boot_files {
            if !seen[f] {
                seen[f] = true;
                order.push(f);
            }
        }
        order.extend((0..self.files.len()).filter(|&f| !seen[f]));
        let mut appended = Vec::new();
        for f in order {
            let fd = &mut self.files[f];
            if fd.appended {
                appended.push(f);
            } else if matches!(fd.content, FileContent::Catalog) {
                fd.lba = self.catalog_lba;
            } else if fd.size > 0 {
                fd.lba = lba;
                lba += sectors(fd.size);
            }
        }
        self.empty_lba = lba;
        lba += 1;
        for f in &mut self.files {
            if f.size == 0 {
                f.lba = self.empty_lba;
            }
        }
        self.fs_sectors = lba;
        for f in appended {
            self.files[f].lba = lba;
            lba += sectors(self.files[f].size);
        }
        self.end_sectors = lba;
        if self.end_sectors > u32::MAX as u64 {
            bail!("the image would need {} sectors; ISO 9660 addresses at most 2^32", self.end_sectors);
        }
        Ok(())
    }
}

fn child_path(parent: &[Vec<u8>], name: &[u8]) -> Vec<Vec<u8>> {
    let mut p = parent.to_vec();
    p.push(name.to_vec());
    p
}

fn count_links(entries: &[Entry], counts: &mut HashMap<u64, u32>) {
    for e in entries {
        match &e.kind {
            Kind::Dir(c) => count_links(c, counts),
            Kind::File { .. } => {
                if let Some(g) = e.link {
                    *counts.entry(g).or_default() += 1;
                }
            }
            _ => {}
        }
    }
}

/// Refuses names no reader could give back safely.
fn check_name(name: &[u8], path: &[Vec<u8>]) -> anyhow::Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        bail!("{}: a name cannot be empty, '.', '..', or hold '/' or NUL", model::join(path));
    }
    if name.len() > 255 {
        bail!("{}: name is {} bytes; Rock Ridge names here are limited to 255", model::join(path), name.len());
    }
    Ok(())
}

/// Directories in path-table order: by level, then by parent number, then
/// by identifier (the order of the parent's sorted records).
fn bfs(dirs: &[DirNode], joliet: bool) -> Vec<usize> {
    let mut out = vec![0usize];
    let mut i = 0;
    while i < out.len() {
        let d = out[i];
        let recs = if joliet { &dirs[d].jrecs } else { &dirs[d].recs };
        for r in recs {
            if let Target::Dir(c) = r.target {
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

fn pt_rec_len(ident_len: usize) -> u64 {
    (8 + ident_len + ident_len % 2) as u64
}

fn rec_len(ident_len: usize, susp_len: usize) -> usize {
    let base = 33 + ident_len + (ident_len + 1) % 2;
    let n = base + susp_len;
    n + n % 2
}

/// Bytes of a directory extent holding records of these lengths: records
/// never cross a sector boundary.
fn packed_size(lens: &[usize]) -> u64 {
    let mut sectors_used = 1u64;
    let mut off = 0usize;
    for &l in lens {
        if off + l > SECTOR as usize {
            sectors_used += 1;
            off = 0;
        }
        off += l;
    }
    sectors_used * SECTOR
}

// ------------------------------------------------------------------ names

/// Identifiers already used in one directory, for making new ones unique.
#[derive(Default)]
struct NameSet {
    used: std::collections::HashSet<Vec<u8>>,
}

impl NameSet {
    /// Makes an ISO 9660 identifier unique by putting a counter at the end
    /// of its name part.
    fn unique(&mut self, ident: Vec<u8>, is_dir: bool) -> Vec<u8> {
        if self.used.insert(ident.clone()) {
            return ident;
        }
        let (name, ext) = if is_dir {
            (ident.clone(), Vec::new())
        } else {
            let stem = &ident[..ident.len() - 2]; // without ";1"
            let dot = stem.iter().rposition(|&c| c == b'.').unwrap_or(stem.len());
            (stem[..dot].to_vec(), stem[dot..].to_vec())
        };
        for n in 1u64.. {
            let suffix = n.to_string().into_bytes();
            let max = if is_dir { 31 } else { 30 - ext.len() };
            let keep = name.len().min(max.saturating_sub(suffix.len()));
            let mut cand = name[..keep].to_vec();
            cand.extend_from_slice(&suffix);
            if !is_dir {
                cand.extend_from_slice(&ext);
                cand.extend_from_slice(b";1");
            }
            if self.used.insert(cand.clone()) {
                return cand;
            }
        }
        unreachable!("the counter is unbounded")
    }

    /// Same for Joliet identifiers (UCS-2 big-endian, at most 64 units).
    fn unique_joliet(&mut self, ident: Vec<u8>) -> Vec<u8> {
        if self.used.insert(ident.clone()) {
            return ident;
        }
        let units: Vec<u16> = ident.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        for n in 1u64.. {
            let suffix: Vec<u16> = format!("~{n}").encode_utf16().collect();
            let keep = units.len().min(64 - suffix.len());
            let cand: Vec<u8> = units[..keep].iter().chain(suffix.iter()).flat_map(|u| u.to_be_bytes()).collect();
            if self.used.insert(cand.clone()) {
                return cand;
            }
        }
        unreachable!("the counter is unbounded")
    }
}

fn d_char(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' | b'0'..=b'9' | b'_' => c,
        b'a'..=b'z' => c.to_ascii_uppercase(),
        _ => b'_',
    }
}

/// The ISO 9660 identifier of a name: d-characters, at most 31 for a
/// directory, `NAME.EXT;1` with at most 30 before the version for a file.
fn iso_ident(name: &[u8], is_dir: bool) -> Vec<u8> {
    if is_dir {
        return name.iter().take(31).map(|&c| d_char(c)).collect();
    }
    let dot = name.iter().rposition(|&c| c == b'.').filter(|&i| i > 0);
    let (stem, ext) = match dot {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, &b""[..]),
    };
    let ext: Vec<u8> = ext.iter().take(8).map(|&c| d_char(c)).collect();
    let stem: Vec<u8> = stem.iter().take(30 - 1 - ext.len()).map(|&c| d_char(c)).collect();
    let mut out = stem;
    out.push(b'.');
    out.extend_from_slice(&ext);
    out.extend_from_slice(b";1");
    out
}

/// ECMA-119 9.3 order: by name, then extension, each as if padded with
/// spaces (so a prefix sorts first), then by version.
fn iso_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn split(x: &[u8]) -> (&[u8], &[u8]) {
        let x = x.split(|&c| c == b';').next().unwrap_or(x);
        match x.iter().position(|&c| c == b'.') {
            Some(i) => (&x[..i], &x[i + 1..]),
            None => (x, &[]),
        }
    }
    let (an, ae) = split(a);
    let (bn, be) = split(b);
    an.cmp(bn).then(ae.cmp(be)).then(a.cmp(b))
}

/// The Joliet identifier: UCS-2 big-endian, at most 64 units, without the
/// characters Joliet forbids. Names that are not UTF-8 are read as Latin-1.
fn joliet_ident(name: &[u8]) -> Vec<u8> {
    let s: String = match std::str::from_utf8(name) {
        Ok(s) => s.to_string(),
        Err(_) => name.iter().map(|&b| b as char).collect(),
    };
    let mut units = Vec::new();
    for c in s.chars() {
        let c = match c {
            '*' | '/' | ':' | ';' | '?' | '\\' => '_',
            c if (c as u32) < 0x20 => '_',
            c if (c as u32) > 0xFFFF => '_',
            c => c,
        };
        units.push(c as u32 as u16);
        if units.len() == 64 {
            break;
        }
    }
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

// ------------------------------------------------------------------ Rock Ridge

fn field(sig: &[u8; 2], version: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + body.len());
    f.extend_from_slice(sig);
    f.push((4 + body.len()) as u8);
    f.push(version);
    f.extend_from_slice(body);
    f
}

/// SUSP "SP": marks the root's "." record as using SUSP.
fn sp_field() -> Vec<u8> {
    field(b"SP", 1, &[0xBE, 0xEF, 0])
}

/// SUSP "ER": names the extension in use (Rock Ridge, RRIP 1.10 identifier).
fn er_field() -> Vec<u8> {
    const ID: &[u8] = b"RRIP_1991A";
    const DES: &[u8] = b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS";
    const SRC: &[u8] = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION.";
    let mut body = vec![ID.len() as u8, DES.len() as u8, SRC.len() as u8, 1];
    body.extend_from_slice(ID);
    body.extend_from_slice(DES);
    body.extend_from_slice(SRC);
    field(b"ER", 1, &body)
}

/// PX (mode, links, owner, serial number) and TF (modify, access and
/// attribute-change times, all the entry's mtime).
fn rr_meta_fields(m: &Meta, ftype: u32, nlink: u32, serial: u32) -> Vec<Vec<u8>> {
    let mut px = [0u8; 40];
    both32(&mut px[0..8], ftype | (m.mode & 0o7777));
    both32(&mut px[8..16], nlink);
    both32(&mut px[16..24], m.uid);
    both32(&mut px[24..32], m.gid);
    both32(&mut px[32..40], serial);
    let t = date7(m.mtime.sec);
    let mut tf = vec![0x0E];
    for _ in 0..3 {
        tf.extend_from_slice(&t);
    }
    vec![field(b"PX", 1, &px), field(b"TF", 1, &tf)]
}

/// All Rock Ridge fields of an entry's record.
fn rr_fields(e: &Entry, serial: u32, nlink: u32) -> anyhow::Result<Vec<Vec<u8>>> {
    let ftype = match &e.kind {
        Kind::Dir(_) => S_IFDIR,
        Kind::File { .. } => S_IFREG,
        Kind::Symlink(_) => S_IFLNK,
        Kind::CharDev(_) => S_IFCHR,
        Kind::BlockDev(_) => S_IFBLK,
        Kind::Fifo => S_IFIFO,
        Kind::Socket => S_IFSOCK,
    };
    let mut fields = rr_meta_fields(&e.meta, ftype, nlink, serial);
    // NM: the real name, split into fields of at most 250 bytes.
    let chunks: Vec<&[u8]> = e.name.chunks(250).collect();
    for (i, c) in chunks.iter().enumerate() {
        let mut body = vec![if i + 1 < chunks.len() { 1 } else { 0 }];
        body.extend_from_slice(c);
        fields.push(field(b"NM", 1, &body));
    }
    match &e.kind {
        Kind::Symlink(target) => fields.extend(sl_fields(target)?),
        Kind::CharDev(rdev) | Kind::BlockDev(rdev) => {
            let mut pn = [0u8; 16];
            both32(&mut pn[0..8], (rdev >> 32) as u32);
            both32(&mut pn[8..16], *rdev as u32);
            fields.push(field(b"PN", 1, &pn));
        }
        _ => {}
    }
    Ok(fields)
}

/// The longest symlink target written: libisofs' limit.
const MAX_SYMLINK: usize = 1023;

/// SL fields for a symlink target. Components are written as their bytes
/// (`.` and `..` included, which every reader copies as they are), with the
/// ROOT flag for a leading `/`. When the target needs more than one SL
/// field, each field ends inside a component (continued with flag 1): the
/// Linux kernel adds a `/` after a field that ends on a whole component and
/// libarchive does not, so only a split inside a component reads the same
/// in both.
fn sl_fields(target: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    if target.is_empty() {
        bail!("symlink with an empty target");
    }
    if target.len() > MAX_SYMLINK {
        bail!(
            "symlink target is {} bytes; libisofs (xorriso) refuses to load an image with a Rock Ridge \
             symlink of 1024 bytes or more, so slipway writes at most {MAX_SYMLINK}",
            target.len()
        );
    }
    let mut comps: Vec<(u8, &[u8])> = Vec::new();
    let mut rest = target;
    if let Some(r) = target.strip_prefix(b"/") {
        comps.push((0x08, &[]));
        rest = r;
    }
    comps.extend(rest.split(|&c| c == b'/').filter(|c| !c.is_empty()).map(|c| (0u8, c)));
    if rest.ends_with(b"/") && comps.len() > usize::from(target.starts_with(b"/")) {
        // A trailing slash: an empty last component, which readers join
        // with a separator ("dir/").
        comps.push((0, &[]));
    }
    const CAP: usize = 250; // 255 minus the 4-byte header and the flags byte
    let mut fields = Vec::new();
    let mut body: Vec<u8> = vec![0];
    let flush = |body: &mut Vec<u8>, fields: &mut Vec<Vec<u8>>| {
        body[0] = 1; // continued in the next SL field
        fields.push(field(b"SL", 1, body));
        *body = vec![0];
    };
    let n = comps.len();
    for (ci, (flags, mut bytes)) in comps.into_iter().enumerate() {
        let more = ci + 1 < n;
        loop {
            let room = CAP - (body.len() - 1);
            if room < 3 {
                flush(&mut body, &mut fields);
                continue;
            }
            if 2 + bytes.len() <= room {
                if more && room - (2 + bytes.len()) < 3 && !bytes.is_empty() {
                    // The next component would start a new field on a
                    // component boundary: keep the last byte for that field.
                    let k = bytes.len() - 1;
                    body.extend_from_slice(&[0x01, k as u8]);
                    body.extend_from_slice(&bytes[..k]);
                    bytes = &bytes[k..];
                    flush(&mut body, &mut fields);
                    continue;
                }
                body.extend_from_slice(&[flags, bytes.len() as u8]);
                body.extend_from_slice(bytes);
                break;
            }
            let k = room - 2;
            body.extend_from_slice(&[0x01, k as u8]);
            body.extend_from_slice(&bytes[..k]);
            bytes = &bytes[k..];
            flush(&mut body, &mut fields);
        }
    }
    fields.push(field(b"SL", 1, &body));
    Ok(fields)
}

// ------------------------------------------------------------------ stream

fn dir_record(ident: &[u8], lba: u64, size: u64, mtime: i64, flags: u8, susp: &[u8]) -> Vec<u8> {
    let len = rec_len(ident.len(), susp.len());
    debug_assert!(len <= MAX_REC, "directory record of {len} bytes");
    let mut r = vec![0u8; len];
    r[0] = len as u8;
    both32(&mut r[2..10], lba as u32);
    both32(&mut r[10..18], size as u32);
    r[18..25].copy_from_slice(&date7(mtime));
    r[25] = flags;
    both16(&mut r[28..32], 1);
    r[32] = ident.len() as u8;
    r[33..33 + ident.len()].copy_from_slice(ident);
    let s = 33 + ident.len() + (ident.len() + 1) % 2;
    r[s..s + susp.len()].copy_from_slice(susp);
    r
}

/// Appends records to a directory extent, never letting one cross a sector.
fn push_record(buf: &mut Vec<u8>, rec: &[u8]) {
    let off = buf.len() % SECTOR as usize;
    if off + rec.len() > SECTOR as usize {
        buf.resize(buf.len() + SECTOR as usize - off, 0);
    }
    buf.extend_from_slice(rec);
}

fn text_field(out: &mut [u8], s: &str) {
    out.fill(b' ');
    let b = s.as_bytes();
    let n = b.len().min(out.len());
    out[..n].copy_from_slice(&b[..n]);
}

fn ucs2_field(out: &mut [u8], s: &str) {
    for c in out.chunks_exact_mut(2) {
        c.copy_from_slice(&[0, b' ']);
    }
    for (i, u) in s.encode_utf16().take(out.len() / 2).enumerate() {
        out[2 * i..2 * i + 2].copy_from_slice(&u.to_be_bytes());
    }
}

impl Plan<'_> {
    fn record_for(&self, r: &Rec, joliet: bool) -> Vec<u8> {
        let susp = r.susp.as_ref().map(|s| s.render_inline()).unwrap_or_default();
        let (lba, size, flags) = match r.target {
            Target::Dir(c) => {
                let d = &self.dirs[c];
                if joliet {
                    (d.jlba, d.jsize, FLAG_DIR)
                } else {
                    (d.lba, d.size, FLAG_DIR)
                }
            }
            Target::File { file, part, parts } => {
                let f = &self.files[file];
                let start = part as u64 * MAX_EXTENT;
                let len = (f.size - start.min(f.size)).min(MAX_EXTENT);
                let flags = if part + 1 < parts { FLAG_MULTI_EXTENT } else { 0 };
                (f.lba + start / SECTOR, len, flags)
            }
            Target::Empty => (self.empty_lba, 0, 0),
        };
        dir_record(&r.ident, lba, size, r.mtime, flags, &susp)
    }

    fn dir_extent(&self, d: usize, joliet: bool) -> Vec<u8> {
        let dir = &self.dirs[d];
        let parent = &self.dirs[dir.parent];
        let mut buf = Vec::with_capacity(if joliet { dir.jsize } else { dir.size } as usize);
        let (me, up) = if joliet {
            ((dir.jlba, dir.jsize), (parent.jlba, parent.jsize))
        } else {
            ((dir.lba, dir.size), (parent.lba, parent.size))
        };
        let (dot, dotdot) =
            if joliet { (Vec::new(), Vec::new()) } else { (dir.dot.render_inline(), dir.dotdot.render_inline()) };
        push_record(&mut buf, &dir_record(&[0], me.0, me.1, dir.mtime, FLAG_DIR, &dot));
        push_record(&mut buf, &dir_record(&[1], up.0, up.1, parent.mtime, FLAG_DIR, &dotdot));
        for r in if joliet { &dir.jrecs } else { &dir.recs } {
            push_record(&mut buf, &self.record_for(r, joliet));
        }
        buf.resize(if joliet { dir.jsize } else { dir.size } as usize, 0);
        buf
    }

    fn path_table(&self, joliet: bool, big_endian: bool) -> Vec<u8> {
        let order = if joliet { &self.jorder } else { &self.order };
        let mut buf = Vec::new();
        for &d in order {
            let dir = &self.dirs[d];
            let (ident, lba, parent) = if joliet {
                (&dir.jident, dir.jlba, self.dirs[dir.parent].jnumber)
            } else {
                (&dir.ident, dir.lba, self.dirs[dir.parent].number)
            };
            let ident: &[u8] = if d == 0 { &[0] } else { ident };
            buf.push(ident.len() as u8);
            buf.push(0);
            if big_endian {
                buf.extend_from_slice(&(lba as u32).to_be_bytes());
                buf.extend_from_slice(&parent.max(1).to_be_bytes());
            } else {
                buf.extend_from_slice(&(lba as u32).to_le_bytes());
                buf.extend_from_slice(&parent.max(1).to_le_bytes());
            }
            buf.extend_from_slice(ident);
            if ident.len() % 2 == 1 {
                buf.push(0);
            }
        }
        buf.resize((sectors(buf.len() as u64) * SECTOR) as usize, 0);
        buf
    }

    fn volume_descriptor(&self, joliet: bool) -> Vec<u8> {
        let v = &self.image.volume;
        let mut d = vec![0u8; SECTOR as usize];
        d[0] = if joliet { VD_SUPPLEMENTARY } else { VD_PRIMARY };
        d[1..6].copy_from_slice(VD_MAGIC);
        d[6] = 1;
        let text: fn(&mut [u8], &str) = if joliet { ucs2_field } else { text_field };
        text(&mut d[8..40], &v.system_id);
        text(&mut d[40..72], &v.volume_id);
        both32(&mut d[80..88], self.fs_sectors as u32);
        if joliet {
            d[88..91].copy_from_slice(JOLIET_ESCAPE);
        }
        both16(&mut d[120..124], 1);
        both16(&mut d[124..128], 1);
        both16(&mut d[128..132], SECTOR as u16);
        let (pts, l, m, root) = if joliet {
            (self.jpt_size, self.jpt_l, self.jpt_m, (self.dirs[0].jlba, self.dirs[0].jsize))
        } else {
            (self.pt_size, self.pt_l, self.pt_m, (self.dirs[0].lba, self.dirs[0].size))
        };
        both32(&mut d[132..140], pts as u32);
        d[140..144].copy_from_slice(&(l as u32).to_le_bytes());
        d[148..152].copy_from_slice(&(m as u32).to_be_bytes());
        d[156..190].copy_from_slice(&dir_record(&[0], root.0, root.1, self.dirs[0].mtime, FLAG_DIR, &[]));
        text(&mut d[190..318], &v.volume_set);
        text(&mut d[318..446], &v.publisher);
        text(&mut d[446..574], &v.preparer);
        text(&mut d[574..702], &v.application);
        text(&mut d[702..739], "");
        text(&mut d[739..776], "");
        text(&mut d[776..813], "");
        let created = date17(self.image.created);
        d[813..830].copy_from_slice(&created);
        d[830..847].copy_from_slice(&created);
        d[847..864].copy_from_slice(&date17_unset());
        d[864..881].copy_from_slice(&created);
        d[881] = 1;
        d
    }

    fn boot_record(&self) -> Vec<u8> {
        let mut d = vec![0u8; SECTOR as usize];
        d[0] = VD_BOOT_RECORD;
        d[1..6].copy_from_slice(VD_MAGIC);
        d[6] = 1;
        d[7..7 + EL_TORITO_ID.len()].copy_from_slice(EL_TORITO_ID);
        d[0x47..0x4B].copy_from_slice(&(self.catalog_lba as u32).to_le_bytes());
        d
    }

    fn terminator() -> Vec<u8> {
        let mut d = vec![0u8; SECTOR as usize];
        d[0] = VD_TERMINATOR;
        d[1..6].copy_from_slice(VD_MAGIC);
        d[6] = 1;
        d
    }

    fn catalog(&self, boot: &BootPlan) -> Vec<u8> {
        let mut c = vec![0u8; SECTOR as usize];
        let entry = |slot: &BootSlot, fi: usize, out: &mut [u8]| {
            let e = &slot.entry;
            let f = &self.files[fi];
            out[0] = if e.bootable { 0x88 } else { 0x00 };
            out[1] = e.emulation;
            out[2..4].copy_from_slice(&e.load_segment.to_le_bytes());
            out[4] = e.system_type;
            let count = e.load_sectors.unwrap_or(match (e.platform, e.emulation) {
                (_, EMUL_NONE) if e.platform == PLATFORM_EFI => f.size.div_ceil(512).min(0xFFFF) as u16,
                (_, EMUL_NONE) => 4,
                _ => 1,
            });
            out[6..8].copy_from_slice(&count.to_le_bytes());
            out[8..12].copy_from_slice(&(f.lba as u32).to_le_bytes());
        };
        // Validation entry.
        c[0] = 1;
        c[1] = boot.entries[0].entry.platform;
        c[30] = 0x55;
        c[31] = 0xAA;
        let sum = c[..32].chunks_exact(2).fold(0u16, |s, w| s.wrapping_add(u16::from_le_bytes([w[0], w[1]])));
        c[28..30].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
        entry(&boot.entries[0], self.boot_files[0], &mut c[32..64]);
        // Further entries: one section per run of entries of one platform.
        let rest: Vec<usize> = (1..boot.entries.len()).collect();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in rest {
            match groups.last_mut() {
                Some(g) if boot.entries[g[0]].entry.platform == boot.entries[i].entry.platform => g.push(i),
                _ => groups.push(vec![i]),
            }
        }
        let mut off = 64;
        for (gi, g) in groups.iter().enumerate() {
            if off + 32 * (g.len() + 1) > SECTOR as usize {
                break;
            }
            c[off] = if gi + 1 < groups.len() { 0x90 } else { 0x91 };
            c[off + 1] = boot.entries[g[0]].entry.platform;
            c[off + 2..off + 4].copy_from_slice(&(g.len() as u16).to_le_bytes());
            off += 32;
            for &i in g {
                entry(&boot.entries[i], self.boot_files[i], &mut c[off..off + 32]);
                off += 32;
            }
        }
        c
    }

    fn layout(&self) -> Layout {
        Layout {
            fs_sectors: self.fs_sectors,
            end_sectors: self.end_sectors,
            boot: self
                .boot_files
                .iter()
                .zip(&self.boot_platforms)
                .map(|(&f, &p)| (p, Extent { lba: self.files[f].lba, bytes: self.files[f].size }))
                .collect(),
        }
    }
}

/// Writes the isolinux boot info table (bytes 8..64) into a boot image.
fn patch_info_table(img: &mut [u8], lba: u64) {
    if img.len() < 64 {
        return;
    }
    let sum = img[64..].chunks(4).fold(0u32, |s, w| {
        let mut b = [0u8; 4];
        b[..w.len()].copy_from_slice(w);
        s.wrapping_add(u32::from_le_bytes(b))
    });
    img[8..12].copy_from_slice(&16u32.to_le_bytes());
    img[12..16].copy_from_slice(&(lba as u32).to_le_bytes());
    let len = img.len() as u32;
    img[16..20].copy_from_slice(&len.to_le_bytes());
    img[20..24].copy_from_slice(&sum.to_le_bytes());
    img[24..64].fill(0);
}

/// Writes GRUB 2's boot info: the image's address in 512-byte sectors + 5
/// at byte 2548 (what `grub-mkrescue` asks xorriso for).
fn patch_grub2_info(img: &mut [u8], lba: u64) {
    if img.len() >= 2556 {
        img[2548..2556].copy_from_slice(&(lba * 4 + 5).to_le_bytes());
    }
}

/// Boot images that get patched are read whole into memory; refuse
/// anything larger than a boot loader can be.
const MAX_PATCHED_IMAGE: u64 = 64 << 20;

impl Plan<'_> {
    fn stream<'e>(
        &mut self,
        w: &mut Sink,
        boot: &BootPlan,
        mut external: Option<&mut (dyn External + 'e)>,
        progress: &dyn Fn(u64, u64),
    ) -> anyhow::Result<WriteReport> {
        let layout = self.layout();
        let seed = self.seed();
        let rendered: Option<Rendered> = match &self.image.system_area {
            SystemArea::None => None,
            SystemArea::Hybrid(h) => Some(h.render(&layout, seed).context("laying out the hybrid MBR/GPT")?),
            SystemArea::Carried(c) => Some(c.render(&layout).context("carrying the input's MBR/GPT over")?),
        };
        match &rendered {
            Some(r) => {
                if r.system_area.len() != SYSTEM_AREA_BYTES {
                    bail!("internal error: system area is {} bytes", r.system_area.len());
                }
                w.write_all(&r.system_area)?;
            }
            None => w.zeros(SYSTEM_AREA_BYTES as u64)?,
        }
        let has_boot = !boot.entries.is_empty();
        w.write_all(&self.volume_descriptor(false))?;
        if has_boot {
            w.write_all(&self.boot_record())?;
        }
        if self.joliet {
            w.write_all(&self.volume_descriptor(true))?;
        }
        w.write_all(&Self::terminator())?;
        if has_boot {
            w.pad_to(self.catalog_lba)?;
            w.write_all(&self.catalog(boot))?;
        }
        w.pad_to(self.pt_l)?;
        w.write_all(&self.path_table(false, false))?;
        w.pad_to(self.pt_m)?;
        w.write_all(&self.path_table(false, true))?;
        if self.joliet {
            w.pad_to(self.jpt_l)?;
            w.write_all(&self.path_table(true, false))?;
            w.pad_to(self.jpt_m)?;
            w.write_all(&self.path_table(true, true))?;
        }
        for &d in &self.order {
            let dir = &self.dirs[d];
            w.pad_to(dir.lba)?;
            w.write_all(&self.dir_extent(d, false))?;
            let mut susps: Vec<&Susp> = vec![&dir.dot, &dir.dotdot];
            susps.extend(dir.recs.iter().filter_map(|r| r.susp.as_ref()));
            for s in susps {
                for i in 0..s.areas.len() {
                    let at = s.pos[i].lba * SECTOR + s.pos[i].offset as u64;
                    if w.pos > at {
                        bail!("internal layout error: continuation area at byte {at} overlaps");
                    }
                    w.zeros(at - w.pos)?;
                    w.write_all(&s.render_area(i))?;
                }
            }
            w.pad_to(dir.lba + dir.size / SECTOR + dir.ce_sectors)?;
        }
        if self.joliet {
            for &d in &self.jorder {
                w.pad_to(self.dirs[d].jlba)?;
                w.write_all(&self.dir_extent(d, true))?;
            }
        }
        // File data in address order.
        let mut order: Vec<usize> = (0..self.files.len())
            .filter(|&f| self.files[f].size > 0 && !matches!(self.files[f].content, FileContent::Catalog))
            .collect();
        order.sort_by_key(|&f| self.files[f].lba);
        let total: u64 = order.iter().map(|&f| self.files[f].size).sum();
        let mut done = 0u64;
        for f in order {
            let fd = &self.files[f];
            if fd.lba == self.fs_sectors {
                // First appended image: the filesystem's last sector (the
                // shared empty-file sector) comes before it.
                w.pad_to(self.fs_sectors)?;
            }
            w.pad_to(fd.lba)?;
            let content = match &fd.content {
                FileContent::Tree(c) => *c,
                FileContent::Owned(c) => c,
                FileContent::Catalog => continue,
            };
            let patch = fd.boot.map(|b| &boot.entries[b].entry).filter(|e| e.info_table || e.grub2_boot_info);
            if let Some(e) = patch {
                if fd.size > MAX_PATCHED_IMAGE {
                    bail!("boot image {} is {} bytes; boot info tables go into images up to 64 MiB", fd.path, fd.size);
                }
                let mut img = Vec::with_capacity(fd.size as usize);
                copy_content(content, fd.size, external.as_deref_mut(), &mut img).with_context(|| fd.path.clone())?;
                // GRUB's pointer first: the boot info table's checksum
                // covers it.
                if e.grub2_boot_info {
                    patch_grub2_info(&mut img, fd.lba);
                }
                if e.info_table {
                    patch_info_table(&mut img, fd.lba);
                }
                w.write_all(&img)?;
            } else {
                let start = w.pos;
                copy_content(content, fd.size, external.as_deref_mut(), w).with_context(|| fd.path.clone())?;
                if w.pos - start != fd.size {
                    bail!("{}: wrote {} bytes, expected {}", fd.path, w.pos - start, fd.size);
                }
            }
            done += fd.size;
            progress(done, total);
        }
        if w.pos < self.fs_sectors * SECTOR {
            w.pad_to(self.fs_sectors)?;
        }
        w.pad_to(self.end_sectors)?;
        if let Some(r) = &rendered {
            w.write_all(&r.tail)?;
        }
        w.flush()?;
        let mut report = self.report.clone();
        report.bytes = w.pos;
        report.fs_sectors = self.fs_sectors;
        report.boot = boot
            .entries
            .iter()
            .zip(&self.boot_files)
            .map(|(s, &f)| BootReport {
                platform: platform_name(s.entry.platform),
                lba: self.files[f].lba,
                bytes: self.files[f].size,
                path: match &s.entry.image {
                    BootImage::File(p) => Some(model::join(p)),
                    BootImage::Hidden { .. } => None,
                },
            })
            .collect();
        Ok(report)
    }

    /// A seed for the GPT's GUIDs that depends only on what decides the
    /// image's bytes, so rebuilding the same input gives the same GUIDs.
    fn seed(&self) -> [u8; 16] {
        let mut h = Fnv128::default();
        h.update(self.image.volume.volume_id.as_bytes());
        h.update(&self.image.created.to_le_bytes());
        h.update(&self.fs_sectors.to_le_bytes());
        for f in &self.files {
            h.update(&f.size.to_le_bytes());
            h.update(f.path.as_bytes());
        }
        h.finish()
    }
}

pub fn platform_name(p: u8) -> String {
    match p {
        PLATFORM_BIOS => "BIOS".into(),
        PLATFORM_EFI => "UEFI".into(),
        PLATFORM_PPC => "PowerPC".into(),
        PLATFORM_MAC => "Mac".into(),
        p => format!("0x{p:02x}"),
    }
}

/// FNV-1a over 128 bits: a stable, dependency-free hash for GUID seeds.
struct Fnv128(u128);

impl Default for Fnv128 {
    fn default() -> Self {
        Fnv128(0x6c62272e07bb014262b821756295c58d)
    }
}

impl Fnv128 {
    fn update(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u128;
            self.0 = self.0.wrapping_mul(0x0000000001000000000000000000013B);
        }
    }
    fn finish(&self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
}
