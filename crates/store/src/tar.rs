//! Tar export and import: POSIX.1-2001 pax archives (ustar headers with `x`
//! extended headers), read and written here without a tar library, so that
//! every field is under our control.
//!
//! **Export** writes an image version as a pax archive that GNU tar and
//! bsdtar extract exactly: raw name bytes (`hdrcharset=BINARY` when a name or
//! link target is not UTF-8), the full mode, numeric owners, mtimes with
//! nanoseconds, every xattr as `SCHILY.xattr.NAME` (raw value bytes), POSIX
//! ACLs also as `SCHILY.acl.access`/`SCHILY.acl.default` text (GNU tar
//! `--acls` resets ACLs from that text after setting xattrs), symlinks, hard
//! links, devices, FIFOs and directories, the top directory first as `./`.
//! Sparse files are written in full: holes become zeros.
//!
//! **Import** reads a tar stream as a new image version. The archive is
//! hostile input; see [`import_tar`] for what is refused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use slipway_fstree::{display_bytes, EntryName, Metadata, Timestamp, Xattr};

use crate::capture::{read_full, with_writer_lock, CaptureOptions, CaptureReport, ImageBuilder, NewVersion, MAX_TREE};
use crate::id::BlobId;
use crate::progress::Progress;
use crate::store::{BlobReader, ImageVersion, Store};
use crate::tree::{EntryKind, TreeEntry};

const BLOCK: usize = 512;
/// GNU tar's default record (blocking factor 20): archives are padded to it.
const RECORD: u64 = 20 * BLOCK as u64;
/// Largest `x`/`g` extended header or GNU long name accepted.
const MAX_EXT: u64 = 8 << 20;
/// Deepest path accepted in an archive (components).
const MAX_DEPTH: usize = 1024;
/// Largest symlink target (Linux's PATH_MAX) and xattr value (XATTR_SIZE_MAX),
/// as the tree format allows.
const MAX_LINK: usize = 4096;
const MAX_XATTR: usize = 65536;

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

// ---------------------------------------------------------------- export

/// What an export to a tar archive wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TarReport {
    pub image: String,
    /// Archive members written, the top directory (`./`) included.
    pub entries: u64,
    /// Directories below the top one.
    pub dirs: u64,
    /// Regular files written with content.
    pub files: u64,
    /// Members written as hard links (type `1`) to an earlier member.
    pub hardlinks: u64,
    /// Symlinks, devices and FIFOs.
    pub others: u64,
    /// Bytes of file content written (holes written as zeros).
    pub bytes: u64,
    /// Sparse files whose holes were written out as zeros.
    pub sparse_files: u64,
    /// Size of the whole archive.
    pub archive_bytes: u64,
    pub seconds: f64,
}

/// The archive being written, counting its bytes.
struct TarOut<'a> {
    w: BufWriter<&'a mut dyn Write>,
    n: u64,
}

impl Write for TarOut<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

impl TarOut<'_> {
    /// Zeros up to the next block boundary.
    fn pad(&mut self) -> io::Result<()> {
        let r = (self.n % BLOCK as u64) as usize;
        if r != 0 {
            self.write_all(&[0u8; BLOCK][..BLOCK - r])?;
        }
        Ok(())
    }
}

/// File content on its way into the archive: counts it and reports progress.
struct Content<'a, 'b> {
    out: &'a mut TarOut<'b>,
    progress: &'a dyn Progress,
    n: u64,
}

impl Write for Content<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.n += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ExportCx<'a, 'b> {
    reader: BlobReader<'a>,
    out: TarOut<'b>,
    progress: &'a dyn Progress,
    /// Archive path and entry of the first member of each hard-link group.
    links: HashMap<u64, (Vec<u8>, TreeEntry)>,
    report: TarReport,
}

/// Writes `img` to `out` as a POSIX pax archive. Members come depth first in
/// name order, as `apply` writes them, with paths `./NAME...` and the top
/// directory first as `./`. See the module documentation for what is kept.
pub fn export_tar(
    store: &Store,
    img: &ImageVersion,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> anyhow::Result<TarReport> {
    let started = Instant::now();
    let root_meta = img.record.root.metadata().map_err(|e| anyhow::anyhow!("image {}: {e}", img.label()))?;
    progress.phase("exporting", Some(img.record.stats.logical_bytes));
    let mut cx = ExportCx {
        reader: store.reader(),
        out: TarOut { w: BufWriter::with_capacity(256 << 10, out), n: 0 },
        progress,
        links: HashMap::new(),
        report: TarReport { image: img.label(), ..Default::default() },
    };
    let mut path = b"./".to_vec();
    let r = (|| -> anyhow::Result<()> {
        let top =
            Member { path: &path, typeflag: b'5', meta: &root_meta, size: 0, link: None, dev: None, xattrs: true };
        write_member(&mut cx.out, &top).context("writing the archive")?;
        cx.report.entries += 1;
        export_dir(&mut cx, &img.record.root.tree, &mut path)?;
        // The end-of-archive marker (two zero blocks), padded to a record.
        cx.out.write_all(&[0u8; 2 * BLOCK]).context("writing the archive")?;
        let r = (cx.out.n % RECORD) as usize;
        if r != 0 {
            cx.out.write_all(&vec![0u8; RECORD as usize - r]).context("writing the archive")?;
        }
        cx.out.flush().context("writing the archive")?;
        Ok(())
    })();
    r.with_context(|| format!("exporting image {} as a tar archive", img.label()))?;
    progress.finish();
    let mut report = cx.report;
    report.archive_bytes = cx.out.n;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// `path` (without `./` and a final `/`) for messages.
fn shown(path: &[u8]) -> String {
    let p = path.strip_prefix(b".").unwrap_or(path);
    let p = p.strip_suffix(b"/").unwrap_or(p);
    if p.is_empty() {
        "/".into()
    } else {
        display_bytes(p)
    }
}

fn export_dir(cx: &mut ExportCx<'_, '_>, tree_id: &BlobId, path: &mut Vec<u8>) -> anyhow::Result<()> {
    let tree = cx.reader.tree(tree_id).with_context(|| format!("reading directory {}", shown(path)))?;
    for e in &tree.entries {
        let len = path.len();
        path.extend_from_slice(e.name.as_bytes());
        let r = export_entry(cx, e, path);
        // A directory's errors already name the entry that failed.
        let r = if matches!(e.kind, EntryKind::Dir { .. }) { r } else { r.with_context(|| shown(path)) };
        path.truncate(len);
        r?;
    }
    Ok(())
}

fn export_entry(cx: &mut ExportCx<'_, '_>, e: &TreeEntry, path: &mut Vec<u8>) -> anyhow::Result<()> {
    let member =
        |path, typeflag| Member { path, typeflag, meta: &e.meta, size: 0, link: None, dev: None, xattrs: true };
    if let EntryKind::Dir { tree } = &e.kind {
        path.push(b'/');
        write_member(&mut cx.out, &member(path, b'5')).context("writing the archive")?;
        cx.report.entries += 1;
        cx.report.dirs += 1;
        return export_dir(cx, tree, path);
    }
    cx.report.entries += 1;
    if let Some(g) = e.hardlink {
        if let Some((first_path, first)) = cx.links.get(&g) {
            if first.kind != e.kind || first.meta != e.meta {
                bail!(
                    "hard-link group {g} mixes entries of different content or metadata ({} and this one): \
                     the tree is damaged or forged",
                    shown(first_path)
                );
            }
            // The link shares the first member's inode: no xattrs again.
            let m = Member { link: Some(first_path), xattrs: false, ..member(path, b'1') };
            write_member(&mut cx.out, &m).context("writing the archive")?;
            cx.report.hardlinks += 1;
            return Ok(());
        }
        cx.links.insert(g, (path.clone(), e.clone()));
    }
    let m = match &e.kind {
        EntryKind::File { size, extents, .. } => {
            write_member(&mut cx.out, &Member { size: *size, ..member(path, b'0') }).context("writing the archive")?;
            let mut c = Content { out: &mut cx.out, progress: cx.progress, n: 0 };
            crate::browse::read_file(&mut cx.reader, e, &mut c)?;
            if c.n != *size {
                bail!("wrote {} bytes of content but the file has {size}: the tree is damaged", c.n);
            }
            cx.out.pad().context("writing the archive")?;
            cx.report.files += 1;
            cx.report.bytes += size;
            cx.report.sparse_files += u64::from(extents.is_some());
            return Ok(());
        }
        EntryKind::Symlink { target } => Member { link: Some(target), ..member(path, b'2') },
        EntryKind::CharDev { rdev } => Member { dev: Some(*rdev), ..member(path, b'3') },
        EntryKind::BlockDev { rdev } => Member { dev: Some(*rdev), ..member(path, b'4') },
        EntryKind::Fifo => member(path, b'6'),
        EntryKind::Dir { .. } => unreachable!("handled above"),
    };
    write_member(&mut cx.out, &m).context("writing the archive")?;
    cx.report.others += 1;
    Ok(())
}

/// One archive member's header.
struct Member<'a> {
    /// The archive path: `./...`, with a final `/` for directories.
    path: &'a [u8],
    typeflag: u8,
    meta: &'a Metadata,
    size: u64,
    /// Symlink target or hard-link target path.
    link: Option<&'a [u8]>,
    dev: Option<u64>,
    /// Whether to write the xattrs (not for hard links).
    xattrs: bool,
}

/// Writes a member's header, preceded by a pax `x` header when anything
/// does not fit the ustar fields exactly.
fn write_member(out: &mut TarOut<'_>, m: &Member<'_>) -> io::Result<()> {
    let mut h = [0u8; BLOCK];
    let mut pax = Vec::new();
    let utf8 = |b: &[u8]| std::str::from_utf8(b).is_ok();
    if !utf8(m.path) || m.link.is_some_and(|l| !utf8(l)) {
        pax_record(&mut pax, b"hdrcharset", b"BINARY");
    }
    match ustar_split(m.path) {
        Some((prefix, name)) => {
            put(&mut h[345..500], prefix);
            put(&mut h[0..100], name);
        }
        None => {
            pax_record(&mut pax, b"path", m.path);
            put(&mut h[0..100], &ascii_stand_in(m.path, 100));
        }
    }
    if let Some(l) = m.link {
        if l.len() <= 100 && l.is_ascii() {
            put(&mut h[157..257], l);
        } else {
            pax_record(&mut pax, b"linkpath", l);
            put(&mut h[157..257], &ascii_stand_in(l, 100));
        }
    }
    octal(&mut h[100..108], u64::from(m.meta.mode & 0o7777));
    for (range, key, v) in [(108..116, &b"uid"[..], m.meta.uid), (116..124, b"gid", m.meta.gid)] {
        if !octal(&mut h[range.clone()], u64::from(v)) {
            pax_record(&mut pax, key, v.to_string().as_bytes());
            base256(&mut h[range], i64::from(v));
        }
    }
    if !octal(&mut h[124..136], m.size) {
        pax_record(&mut pax, b"size", m.size.to_string().as_bytes());
        base256(&mut h[124..136], m.size as i64);
    }
    let t = m.meta.mtime;
    let fits = t.sec >= 0 && octal(&mut h[136..148], t.sec as u64);
    if !fits {
        base256(&mut h[136..148], t.sec);
    }
    if !fits || t.nsec != 0 {
        pax_record(&mut pax, b"mtime", pax_time(t).as_bytes());
    }
    h[156] = m.typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    if let Some(rdev) = m.dev {
        for (range, v) in [(329..337, rustix::fs::major(rdev)), (337..345, rustix::fs::minor(rdev))] {
            if !octal(&mut h[range.clone()], u64::from(v)) {
                base256(&mut h[range], i64::from(v));
            }
        }
    }
    if m.xattrs {
        for x in &m.meta.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(&encode_xattr_name(&x.name));
            pax_record(&mut pax, &key, &x.value);
            let text_key: &[u8] = match x.name.as_slice() {
                ACL_ACCESS => b"SCHILY.acl.access",
                ACL_DEFAULT => b"SCHILY.acl.default",
                _ => continue,
            };
            if let Some(text) = acl_to_text(&x.value) {
                pax_record(&mut pax, text_key, text.as_bytes());
            }
        }
    }
    if !pax.is_empty() {
        let mut x = [0u8; BLOCK];
        put(&mut x[0..100], &pax_header_name(m.path));
        octal(&mut x[100..108], 0o644);
        octal(&mut x[108..116], 0);
        octal(&mut x[116..124], 0);
        if !octal(&mut x[124..136], pax.len() as u64) {
            return Err(io::Error::other("extended header too large"));
        }
        octal(&mut x[136..148], t.sec.clamp(0, 0o77777777777) as u64);
        x[156] = b'x';
        x[257..263].copy_from_slice(b"ustar\0");
        x[263..265].copy_from_slice(b"00");
        set_checksum(&mut x);
        out.write_all(&x)?;
        out.write_all(&pax)?;
        out.pad()?;
    }
    set_checksum(&mut h);
    out.write_all(&h)
}

fn put(field: &mut [u8], v: &[u8]) {
    field[..v.len()].copy_from_slice(v);
}

/// Splits a path into the ustar `prefix` and `name` fields, or `None` when
/// it needs a pax `path` record (too long, or not ASCII).
fn ustar_split(p: &[u8]) -> Option<(&[u8], &[u8])> {
    if !p.is_ascii() {
        return None;
    }
    if p.len() <= 100 {
        return Some((&[], p));
    }
    // The prefix is what comes before a '/', at most 155 bytes and not
    // empty; the name after it, 1 to 100 bytes.
    for i in (1..p.len().min(156)).rev() {
        if p[i] == b'/' {
            let name = &p[i + 1..];
            if name.len() > 100 {
                return None;
            }
            if !name.is_empty() {
                return Some((&p[..i], name));
            }
        }
    }
    None
}

/// A printable ASCII stand-in for a field whose real value is in a pax
/// record (readers that know pax never look at it).
fn ascii_stand_in(p: &[u8], max: usize) -> Vec<u8> {
    p.iter().take(max).map(|&b| if b.is_ascii_graphic() || b == b' ' { b } else { b'_' }).collect()
}

/// `./PaxHeaders/NAME`, as GNU tar names extended headers.
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let base = path.split(|b| *b == b'/').rfind(|c| !c.is_empty()).unwrap_or(b".");
    let mut n = b"./PaxHeaders/".to_vec();
    n.extend(ascii_stand_in(base, 100 - n.len()).into_iter().map(|b| if b == b'/' { b'_' } else { b }));
    n
}

/// Writes `v` in octal, zero-padded and NUL-terminated; false if it does
/// not fit.
fn octal(field: &mut [u8], v: u64) -> bool {
    let digits = field.len() - 1;
    if digits < 22 && v >= 1u64 << (3 * digits) {
        return false;
    }
    let s = format!("{v:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    true
}

/// GNU's base-256 encoding: two's complement, big-endian, first byte 0x80
/// (positive) or 0xff (negative). Fields are 8 or 12 bytes.
fn base256(field: &mut [u8], v: i64) {
    let fill = if v < 0 { 0xff } else { 0 };
    field.fill(fill);
    let n = field.len();
    field[n - 8..].copy_from_slice(&v.to_be_bytes());
    if v >= 0 {
        field[0] = 0x80;
    }
}

fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Appends the pax record `LEN KEY=VALUE\n` (LEN counts itself).
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let body = key.len() + value.len() + 3;
    let digits = |n: usize| n.to_string().len();
    let mut len = body + digits(body);
    while body + digits(len) != len {
        len = body + digits(len);
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// A time as pax writes it: seconds, and a fraction without trailing zeros.
/// Times before 1970 are negative decimals (`-1.5` is sec -2, nsec 5e8).
fn pax_time(t: Timestamp) -> String {
    if t.nsec == 0 {
        return t.sec.to_string();
    }
    let (sign, whole, frac) =
        if t.sec < 0 { ("-", (t.sec + 1).unsigned_abs(), 1_000_000_000 - t.nsec) } else { ("", t.sec as u64, t.nsec) };
    let f = format!("{frac:09}");
    format!("{sign}{whole}.{}", f.trim_end_matches('0'))
}

/// Parses a pax time: `[-]SECONDS[.FRACTION]`; digits past nanoseconds are
/// dropped.
fn parse_pax_time(v: &[u8]) -> Option<Timestamp> {
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, v),
    };
    let (whole, frac) = match v.iter().position(|b| *b == b'.') {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &b""[..]),
    };
    if whole.is_empty() || !whole.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let whole: i64 = std::str::from_utf8(whole).ok()?.parse().ok()?;
    let mut nsec = 0u32;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map(|d| u32::from(d - b'0')).unwrap_or(0);
    }
    Some(match (neg, nsec) {
        (false, _) => Timestamp { sec: whole, nsec },
        (true, 0) => Timestamp { sec: whole.checked_neg()?, nsec: 0 },
        (true, _) => Timestamp { sec: whole.checked_neg()?.checked_sub(1)?, nsec: 1_000_000_000 - nsec },
    })
}

/// GNU tar's escaping of xattr names in pax keywords: `%` and `=`.
fn encode_xattr_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for &b in name {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'=' => out.extend_from_slice(b"%3D"),
            _ => out.push(b),
        }
    }
    out
}

fn decode_xattr_name(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    let mut i = 0;
    while i < key.len() {
        match &key[i..] {
            [b'%', b'3', b'D', ..] => {
                out.push(b'=');
                i += 3;
            }
            [b'%', b'2', b'5', ..] => {
                out.push(b'%');
                i += 3;
            }
            _ => {
                out.push(key[i]);
                i += 1;
            }
        }
    }
    out
}

// POSIX ACLs in their xattr form: a u32 version (2), then entries of u16 tag,
// u16 permissions, u32 id (little-endian).
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const ACL_UNDEFINED_ID: u32 = u32::MAX;

/// The text form GNU tar writes (`user::rw-\nuser:1234:rwx\n...`), with
/// numeric ids; `None` if the value is not a valid ACL.
fn acl_to_text(v: &[u8]) -> Option<String> {
    if v.len() < 4 || (v.len() - 4) % 8 != 0 || v[..4] != 2u32.to_le_bytes() {
        return None;
    }
    let mut out = String::new();
    for e in v[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        if perm > 7 {
            return None;
        }
        let who = match tag {
            ACL_USER_OBJ => "user:".to_string(),
            ACL_USER => format!("user:{id}"),
            ACL_GROUP_OBJ => "group:".to_string(),
            ACL_GROUP => format!("group:{id}"),
            ACL_MASK => "mask:".to_string(),
            ACL_OTHER => "other:".to_string(),
            _ => return None,
        };
        let p = |bit: u16, c: char| if perm & bit != 0 { c } else { '-' };
        out.push_str(&format!("{who}:{}{}{}\n", p(4, 'r'), p(2, 'w'), p(1, 'x')));
    }
    Some(out)
}

/// The xattr form of an ACL given as text (`SCHILY.acl.access`, as GNU tar
/// and bsdtar write it: entries separated by newlines or commas, optional
/// `#` comments, and star's `user:NAME:rwx:UID` form). Ids must be numeric.
fn acl_from_text(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "ACL text is not UTF-8".to_string())?;
    let mut entries: Vec<(u16, u32, u16)> = Vec::new();
    for e in text.split(['\n', ',']) {
        let e = e.split('#').next().unwrap_or("").trim();
        if e.is_empty() {
            continue;
        }
        let f: Vec<&str> = e.split(':').map(str::trim).collect();
        if f.len() < 3 || f.len() > 4 {
            return Err(format!("ACL entry {e:?} is not TAG:QUALIFIER:PERMS"));
        }
        let named = !f[1].is_empty();
        let tag = match (f[0], named) {
            ("user" | "u", false) => ACL_USER_OBJ,
            ("user" | "u", true) => ACL_USER,
            ("group" | "g", false) => ACL_GROUP_OBJ,
            ("group" | "g", true) => ACL_GROUP,
            ("mask" | "m", false) => ACL_MASK,
            ("other" | "o", false) => ACL_OTHER,
            _ => return Err(format!("ACL entry {e:?} has an unknown tag")),
        };
        let id = if !named {
            ACL_UNDEFINED_ID
        } else if let Ok(id) = f[1].parse::<u32>() {
            id
        } else if let Some(id) = f.get(3).and_then(|s| s.parse::<u32>().ok()) {
            id
        } else {
            return Err(format!(
                "ACL entry {e:?} names a user or group; slipway keeps numeric ids only \
                 (create the archive with --numeric-owner, or with --xattrs so the raw ACL is kept)"
            ));
        };
        let mut perm = 0u16;
        for c in f[2].chars() {
            perm |= match c {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                '-' => 0,
                _ => return Err(format!("ACL entry {e:?} has bad permissions")),
            };
        }
        if entries.iter().any(|(t, i, _)| *t == tag && *i == id) {
            return Err(format!("ACL entry {e:?} is repeated"));
        }
        entries.push((tag, id, perm));
    }
    for (tag, what) in [(ACL_USER_OBJ, "user::"), (ACL_GROUP_OBJ, "group::"), (ACL_OTHER, "other::")] {
        if !entries.iter().any(|e| e.0 == tag) {
            return Err(format!("ACL has no {what} entry"));
        }
    }
    entries.sort();
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

// ---------------------------------------------------------------- import

/// The archive being read, counting its bytes (for messages).
struct TarIn<'a> {
    r: &'a mut dyn Read,
    pos: u64,
}

impl Read for TarIn<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn truncated(pos: u64, what: &str) -> anyhow::Error {
    anyhow::anyhow!("the archive is truncated: it ends at byte {pos}, {what}")
}

impl TarIn<'_> {
    /// One block, or `None` when the input ends cleanly before it.
    fn block(&mut self) -> anyhow::Result<Option<[u8; BLOCK]>> {
        let mut b = [0u8; BLOCK];
        let at = self.pos;
        let got = read_full(self, &mut b).context("reading the archive")?;
        if at == 0 && got > 0 {
            if let Some(kind) = compressed(&b[..got]) {
                bail!(
                    "the input is {kind}-compressed; slipway reads plain tar: decompress it first \
                     (for example `zcat FILE | slipway import-tar - --name NAME`)"
                );
            }
        }
        match got {
            0 => Ok(None),
            BLOCK => Ok(Some(b)),
            _ => Err(truncated(self.pos, "in the middle of a header block")),
        }
    }

    fn skip(&mut self, n: u64, what: &str) -> anyhow::Result<()> {
        let got = io::copy(&mut self.take(n), &mut io::sink()).context("reading the archive")?;
        if got != n {
            return Err(truncated(self.pos, what));
        }
        Ok(())
    }

    fn skip_padding(&mut self, size: u64, what: &str) -> anyhow::Result<()> {
        self.skip((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64, what)
    }

    /// The data of an extended header or GNU long name, and its padding.
    fn small_data(&mut self, size: u64, what: &str) -> anyhow::Result<Vec<u8>> {
        if size > MAX_EXT {
            bail!("{what} is {size} bytes long; slipway accepts at most {MAX_EXT}");
        }
        let mut buf = vec![0u8; size as usize];
        let got = read_full(self, &mut buf).context("reading the archive")?;
        if got != buf.len() {
            return Err(truncated(self.pos, &format!("inside {what}")));
        }
        self.skip_padding(size, &format!("inside {what}"))?;
        Ok(buf)
    }
}

fn compressed(b: &[u8]) -> Option<&'static str> {
    [
        (&[0x1f, 0x8b][..], "gzip"),
        (b"BZh", "bzip2"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    ]
    .into_iter()
    .find(|(m, _)| b.starts_with(m))
    .map(|(_, k)| k)
}

/// A numeric header field: octal (leading spaces, then digits ended by NUL
/// or space) or GNU base-256. An empty field is 0.
fn parse_num(f: &[u8]) -> Option<i64> {
    if f[0] & 0x80 != 0 {
        // Bit 6 of the first byte is the sign; the rest is two's complement.
        let mut v = i128::from(f[0] & 0x3f) - if f[0] & 0x40 != 0 { 0x40 } else { 0 };
        for b in &f[1..] {
            v = v * 256 + i128::from(*b);
        }
        return i64::try_from(v).ok();
    }
    let mut i = f.iter().position(|b| *b != b' ').unwrap_or(f.len());
    let mut v: u64 = 0;
    while i < f.len() && (b'0'..=b'7').contains(&f[i]) {
        v = v.checked_mul(8)?.checked_add(u64::from(f[i] - b'0'))?;
        i += 1;
    }
    if !f[i..].iter().all(|b| *b == 0 || *b == b' ') {
        return None;
    }
    i64::try_from(v).ok()
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(stored) = parse_num(&h[148..156]) else { return false };
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || stored == signed
}

/// Up to the first NUL.
fn cstr(f: &[u8]) -> &[u8] {
    &f[..f.iter().position(|b| *b == 0).unwrap_or(f.len())]
}

/// Parses pax records into `into`. In a global header an empty value
/// removes the keyword.
fn parse_pax(data: &[u8], into: &mut BTreeMap<Vec<u8>, Vec<u8>>, global: bool) -> Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break; // padding some writers leave
        }
        let at = data.len() - rest.len();
        let bad = |why: &str| format!("malformed extended header record at offset {at}: {why}");
        let sp = rest.iter().take(20).position(|b| *b == b' ').ok_or_else(|| bad("no length"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad length"))?;
        if len <= sp + 1 || len > rest.len() {
            return Err(bad("length out of range"));
        }
        let rec = &rest[sp + 1..len];
        let Some(rec) = rec.strip_suffix(b"\n") else { return Err(bad("no final newline")) };
        let eq = rec.iter().position(|b| *b == b'=').ok_or_else(|| bad("no '='"))?;
        let (k, v) = (&rec[..eq], &rec[eq + 1..]);
        if k.is_empty() {
            return Err(bad("empty keyword"));
        }
        if global && v.is_empty() {
            into.remove(k);
        } else {
            into.insert(k.to_vec(), v.to_vec());
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// Keywords read but not kept (times slipway does not keep, names of
/// owners, hints about the source).
const IGNORED_KEYS: &[&[u8]] = &[
    b"atime",
    b"ctime",
    b"uname",
    b"gname",
    b"hdrcharset",
    b"charset",
    b"comment",
    b"SCHILY.dev",
    b"SCHILY.ino",
    b"SCHILY.nlink",
    b"SCHILY.filetype",
    b"LIBARCHIVE.creationtime",
    b"LIBARCHIVE.symlinktype",
];

/// An entry of the image being built. Metadata and content are shared by
/// the members of a hard-link group, so a hostile archive cannot multiply
/// memory with links to one large entry.
struct INode {
    meta: Rc<Metadata>,
    kind: IKind,
}

enum IKind {
    Dir {
        children: BTreeMap<EntryName, INode>,
        /// False for directories made for entries below them that the
        /// archive does not list itself.
        explicit: bool,
    },
    Leaf {
        kind: Rc<EntryKind>,
        /// Hard-link group while reading (renumbered in traversal order when
        /// the trees are written).
        group: Option<u64>,
    },
}

/// Metadata of directories the archive does not list but has entries in.
fn implicit_meta(mtime: Timestamp) -> Metadata {
    Metadata { mode: 0o755, uid: 0, gid: 0, mtime, xattrs: vec![] }
}

struct Import<'a, 'b> {
    b: ImageBuilder<'a>,
    tin: TarIn<'b>,
    root_meta: Option<Metadata>,
    /// The mtime of the first entry: the top directory's when the archive
    /// has no `.` entry.
    first_mtime: Option<Timestamp>,
    root: BTreeMap<EntryName, INode>,
    groups: u64,
    warned_keys: HashSet<Vec<u8>>,
    skipped: Vec<(PathBuf, String)>,
    files_read: u64,
    bytes_read: u64,
}

/// Reads a tar archive (POSIX pax or ustar, GNU tar's long names, old v7)
/// from `input` as a new version of `opts.name` (`one_file_system` and
/// `rehash` do not apply). Content is chunked with the store's parameters,
/// as `capture` does, so a tree imported from an archive of a directory has
/// the same ids as a capture of that directory.
///
/// The archive is hostile input. The import fails, naming the entry, and
/// commits nothing, for: a bad header checksum; an archive that ends before
/// its end-of-archive marker; an absolute name, a `..` component or a NUL
/// byte in a name or hard-link target; an entry below a symlink (or below
/// any other non-directory) of the archive; a name the archive lists twice;
/// a hard link whose target is not an earlier non-directory entry; GNU
/// sparse entries and other types slipway does not know. Directories that
/// have entries but are not listed themselves get mode 0755, owner 0:0 and
/// the mtime of the entry that needed them first. A hard link gets its
/// target's metadata. Owner names are ignored (numeric ids only).
pub fn import_tar(
    store: &mut Store,
    input: &mut dyn Read,
    opts: &CaptureOptions,
    progress: &dyn Progress,
) -> anyhow::Result<CaptureReport> {
    with_writer_lock(store, &opts.name, progress, |store| {
        let started = Instant::now();
        let new = NewVersion::next(store, &opts.name, &opts.description)?;
        progress.phase("importing", None);
        let mut im = Import {
            b: ImageBuilder::new(store, progress),
            tin: TarIn { r: input, pos: 0 },
            root_meta: None,
            first_mtime: None,
            root: BTreeMap::new(),
            groups: 0,
            warned_keys: HashSet::new(),
            skipped: Vec::new(),
            files_read: 0,
            bytes_read: 0,
        };
        im.read_archive()?;
        let Import { mut b, root_meta, first_mtime, root, skipped, files_read, bytes_read, .. } = im;
        let root_meta = root_meta.unwrap_or_else(|| implicit_meta(first_mtime.unwrap_or_default()));
        let root_tree = write_trees(&mut b, root, &mut b"/".to_vec(), &mut HashMap::new())?;
        let (record_id, record) = b.commit(&new, &root_meta, root_tree)?;
        progress.finish();
        Ok(CaptureReport {
            image: format!("{}@{}", new.name, new.version),
            record: record_id,
            stats: record.stats,
            skipped,
            files_read,
            bytes_read,
            files_reused: 0,
            seconds: started.elapsed().as_secs_f64(),
        })
    })
}

/// Writes the trees bottom-up, numbering hard-link groups in traversal order
/// (as a capture numbers them).
fn write_trees(
    b: &mut ImageBuilder<'_>,
    children: BTreeMap<EntryName, INode>,
    path: &mut Vec<u8>,
    groups: &mut HashMap<u64, u64>,
) -> anyhow::Result<BlobId> {
    let mut entries = Vec::with_capacity(children.len());
    let mut least = 0usize;
    for (name, node) in children {
        let (kind, hardlink, further) = match node.kind {
            IKind::Dir { children, .. } => {
                let len = path.len();
                if len > 1 {
                    path.push(b'/');
                }
                path.extend_from_slice(name.as_bytes());
                let tree = write_trees(b, children, path, groups);
                path.truncate(len);
                (Rc::new(EntryKind::Dir { tree: tree? }), None, false)
            }
            IKind::Leaf { kind, group: None } => (kind, None, false),
            IKind::Leaf { kind, group: Some(g) } => {
                let next = groups.len() as u64;
                match groups.entry(g) {
                    std::collections::hash_map::Entry::Occupied(o) => (kind, Some(*o.get()), true),
                    std::collections::hash_map::Entry::Vacant(v) => (kind, Some(*v.insert(next)), false),
                }
            }
        };
        let e = TreeEntry { name, meta: Rc::unwrap_or_clone(node.meta), kind: Rc::unwrap_or_clone(kind), hardlink };
        // Stop before the listing takes much memory when it cannot fit a
        // tree object anyway (a lower bound of its encoded size).
        least += e.name.as_bytes().len()
            + e.meta.xattrs.iter().map(|x| x.name.len() + x.value.len()).sum::<usize>()
            + match &e.kind {
                EntryKind::File { chunks, .. } => chunks.len() * 34,
                EntryKind::Symlink { target } => target.len(),
                _ => 0,
            };
        if least > MAX_TREE {
            bail!(
                "directory {} holds too much metadata (more than {MAX_TREE} bytes encoded); split it into subdirectories",
                display_bytes(path)
            );
        }
        b.count(&e, further);
        entries.push(e);
    }
    b.add_tree(entries, &display_bytes(path))
}

/// Splits an archive name into entry names: `.` components, repeated and
/// final slashes are dropped; absolute names, `..`, NUL and bad names are
/// refused.
fn split_name(p: &[u8]) -> Result<Vec<EntryName>, String> {
    if p.is_empty() {
        return Err("the name is empty".into());
    }
    if p.contains(&0) {
        return Err("the name contains a NUL byte".into());
    }
    if p[0] == b'/' {
        return Err("the name is absolute; slipway refuses absolute names in archives \
                    (make the archive with relative names, for example `tar -C DIR -cf - .`)"
            .into());
    }
    let mut out = Vec::new();
    for c in p.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("the name has a '..' component; slipway refuses names that climb".into()),
            c => out.push(EntryName::new(c.to_vec()).map_err(|e| e.to_string())?),
        }
    }
    if out.len() > MAX_DEPTH {
        return Err(format!("the name is more than {MAX_DEPTH} directories deep"));
    }
    Ok(out)
}

/// What one header (with its extended headers) says.
struct Header {
    at: u64,
    typeflag: u8,
    path: Vec<u8>,
    link: Vec<u8>,
    size: u64,
    meta: Metadata,
    dev: (u32, u32),
}

impl Import<'_, '_> {
    fn read_archive(&mut self) -> anyhow::Result<()> {
        let mut globals: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut ext: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let (mut long_name, mut long_link): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
        // Bytes of global headers, and of extended headers and long names
        // since the last entry: each at most MAX_EXT.
        let (mut global_bytes, mut ext_bytes) = (0u64, 0u64);
        loop {
            let at = self.tin.pos;
            let Some(h) = self.tin.block()? else {
                return Err(truncated(at, "without an end-of-archive marker (a zero block)"));
            };
            if h.iter().all(|b| *b == 0) {
                if !ext.is_empty() || long_name.is_some() || long_link.is_some() {
                    bail!("the archive ends (at byte {at}) right after an extended header: it is truncated or damaged");
                }
                // Read to the end of the record, as tar does, so a writer
                // on the other end of a pipe is not cut off.
                let rest = (RECORD - self.tin.pos % RECORD) % RECORD;
                let _ = io::copy(&mut (&mut self.tin).take(rest), &mut io::sink());
                return Ok(());
            }
            if !checksum_ok(&h) {
                bail!(
                    "bad header checksum at byte {at}: the archive is damaged{}",
                    if at == 0 { ", or it is not a tar archive" } else { "" }
                );
            }
            let typeflag = h[156];
            let hsize = parse_num(&h[124..136])
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| anyhow::anyhow!("bad size field in the header at byte {at}"))?;
            if matches!(typeflag, b'x' | b'X' | b'g' | b'L' | b'K') {
                let sum = if typeflag == b'g' { &mut global_bytes } else { &mut ext_bytes };
                *sum = sum.saturating_add(hsize);
                if *sum > MAX_EXT {
                    bail!("the extended headers up to byte {at} hold more than {MAX_EXT} bytes; slipway refuses them");
                }
            }
            match typeflag {
                // 'X': the same, as Solaris tar writes it.
                b'x' | b'X' | b'g' => {
                    let what = format!("the extended header at byte {at}");
                    let data = self.tin.small_data(hsize, &what)?;
                    let into = if typeflag == b'g' { &mut globals } else { &mut ext };
                    parse_pax(&data, into, typeflag == b'g').map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                    continue;
                }
                b'L' | b'K' => {
                    let what = format!("the GNU long name at byte {at}");
                    let mut data = self.tin.small_data(hsize, &what)?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    *(if typeflag == b'L' { &mut long_name } else { &mut long_link }) = Some(data);
                    continue;
                }
                _ => {}
            }
            ext_bytes = 0;
            let mut kv = globals.clone();
            kv.append(&mut ext);
            let hd = self.header(&h, at, &kv, long_name.take(), long_link.take())?;
            self.entry(hd)?;
        }
    }

    /// Reads one entry's header, with its pax keywords applied.
    fn header(
        &mut self,
        h: &[u8; BLOCK],
        at: u64,
        kv: &BTreeMap<Vec<u8>, Vec<u8>>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> anyhow::Result<Header> {
        let get = |k: &[u8]| kv.get(k).filter(|v| !v.is_empty());
        let ustar = &h[257..263] == b"ustar\0";
        let path = match (get(b"path"), long_name) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => p,
            (None, None) => {
                let (prefix, name) = (cstr(&h[345..500]), cstr(&h[0..100]));
                if ustar && !prefix.is_empty() {
                    [prefix, b"/", name].concat()
                } else {
                    name.to_vec()
                }
            }
        };
        let link = match (get(b"linkpath"), long_link) {
            (Some(p), _) => p.clone(),
            (None, Some(p)) => p,
            (None, None) => cstr(&h[157..257]).to_vec(),
        };
        let name = display_bytes(&path);
        let bad = |what: &str| anyhow::anyhow!("entry {name} (at byte {at}): bad {what}");
        let dec = |k: &[u8]| -> anyhow::Result<Option<u64>> {
            match get(k) {
                None => Ok(None),
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse().ok())
                    .map(Some)
                    .ok_or_else(|| bad(&format!("pax {}", String::from_utf8_lossy(k)))),
            }
        };
        let field = |r: std::ops::Range<usize>, what: &str| parse_num(&h[r]).ok_or_else(|| bad(what));
        let size = match dec(b"size")? {
            Some(s) => s,
            None => u64::try_from(field(124..136, "size field")?).map_err(|_| bad("size field"))?,
        };
        let id = |k: &[u8], r, what: &str| -> anyhow::Result<u32> {
            let v = match dec(k)? {
                Some(v) => v,
                None => u64::try_from(field(r, what)?).map_err(|_| bad(what))?,
            };
            u32::try_from(v).map_err(|_| anyhow::anyhow!("entry {name} (at byte {at}): {what} {v} is out of range"))
        };
        let uid = id(b"uid", 108..116, "uid")?;
        let gid = id(b"gid", 116..124, "gid")?;
        let mtime = match get(b"mtime") {
            Some(v) => parse_pax_time(v).ok_or_else(|| bad("pax mtime"))?,
            None => Timestamp { sec: field(136..148, "mtime field")?, nsec: 0 },
        };
        let mode = (field(100..108, "mode field")? & 0o7777) as u32;
        let dev_part = |k: &[u8], r, what: &str| -> anyhow::Result<u32> {
            let v = match dec(k)? {
                Some(v) => v,
                None => u64::try_from(field(r, what)?).map_err(|_| bad(what))?,
            };
            u32::try_from(v).map_err(|_| bad(what))
        };
        let dev = match h[156] {
            b'3' | b'4' => (
                dev_part(b"SCHILY.devmajor", 329..337, "devmajor")?,
                dev_part(b"SCHILY.devminor", 337..345, "devminor")?,
            ),
            _ => (0, 0),
        };
        let mut xattrs: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut acl_text: Vec<(&[u8], &[u8])> = Vec::new();
        for (k, v) in kv {
            if let Some(n) = k.strip_prefix(b"SCHILY.xattr.") {
                xattrs.insert(decode_xattr_name(n), v.clone());
            } else if k.starts_with(b"GNU.sparse.") {
                bail!(
                    "entry {name} (at byte {at}) is a sparse file in GNU tar's sparse format, which slipway \
                     does not read; make the archive without --sparse (-S)"
                );
            } else if k == b"SCHILY.acl.access" {
                acl_text.push((ACL_ACCESS, v));
            } else if k == b"SCHILY.acl.default" {
                acl_text.push((ACL_DEFAULT, v));
            } else if k.starts_with(b"LIBARCHIVE.xattr.") || k == b"RHT.security.selinux" {
                // Handled below, when SCHILY.xattr has not said it.
            } else if !matches!(
                k.as_slice(),
                b"path" | b"linkpath" | b"size" | b"uid" | b"gid" | b"mtime" | b"SCHILY.devmajor" | b"SCHILY.devminor"
            ) && !IGNORED_KEYS.contains(&k.as_slice())
                && self.warned_keys.insert(k.clone())
            {
                self.b.progress.note(&format!(
                    "ignoring the pax keyword {} (first on entry {name}): slipway does not keep it",
                    display_bytes(k)
                ));
            }
        }
        // Other writers' forms, when the SCHILY.xattr form is missing.
        for (k, v) in kv {
            let (n, v) = if let Some(n) = k.strip_prefix(b"LIBARCHIVE.xattr.") {
                let v = base64_decode(v).ok_or_else(|| bad("LIBARCHIVE.xattr value"))?;
                (percent_decode(n), v)
            } else if k == b"RHT.security.selinux" {
                (b"security.selinux".to_vec(), v.clone())
            } else {
                continue;
            };
            xattrs.entry(n).or_insert(v);
        }
        for (n, text) in acl_text {
            if !xattrs.contains_key(n) && !text.is_empty() {
                let v = acl_from_text(text).map_err(|e| anyhow::anyhow!("entry {name} (at byte {at}): {e}"))?;
                xattrs.insert(n.to_vec(), v);
            }
        }
        for (n, v) in &xattrs {
            if n.is_empty() || n.contains(&0) || n.len() > 255 {
                bail!("entry {name} (at byte {at}): bad xattr name {}", display_bytes(n));
            }
            if v.len() > MAX_XATTR {
                bail!("entry {name} (at byte {at}): xattr {} is larger than {MAX_XATTR} bytes", display_bytes(n));
            }
        }
        let xattrs = xattrs.into_iter().map(|(name, value)| Xattr { name, value }).collect();
        Ok(Header { at, typeflag: h[156], path, link, size, meta: Metadata { mode, uid, gid, mtime, xattrs }, dev })
    }

    fn entry(&mut self, h: Header) -> anyhow::Result<()> {
        let name = display_bytes(&h.path);
        let at = h.at;
        let fail = |msg: String| anyhow::anyhow!("entry {name} (at byte {at}): {msg}");
        let comps = split_name(&h.path).map_err(fail)?;
        self.first_mtime.get_or_insert(h.meta.mtime);
        let what = format!("inside entry {name}");
        let kind = match h.typeflag {
            b'0' | b'7' => None,
            0 if !h.path.ends_with(b"/") => None,
            0 | b'5' | b'D' => {
                self.tin.skip(h.size, &what)?;
                self.tin.skip_padding(h.size, &what)?;
                self.insert(
                    &comps,
                    INode { meta: Rc::new(h.meta), kind: IKind::Dir { children: BTreeMap::new(), explicit: true } },
                )
                .map_err(fail)?;
                return Ok(());
            }
            b'1' => {
                self.tin.skip(h.size, &what)?;
                self.tin.skip_padding(h.size, &what)?;
                let to = split_name(&h.link).map_err(|e| fail(format!("its hard-link target: {e}")))?;
                let (kind, meta, group) = self
                    .link_target(&to)
                    .map_err(|e| fail(format!("hard link to {}, which {e}", display_bytes(&h.link))))?;
                return self
                    .insert(&comps, INode { meta, kind: IKind::Leaf { kind, group: Some(group) } })
                    .map_err(fail);
            }
            b'2' => {
                if h.link.is_empty() || h.link.contains(&0) || h.link.len() > MAX_LINK {
                    return Err(fail(format!("symlink target empty, with a NUL byte or over {MAX_LINK} bytes")));
                }
                Some(EntryKind::Symlink { target: h.link.clone() })
            }
            b'3' => Some(EntryKind::CharDev { rdev: rustix::fs::makedev(h.dev.0, h.dev.1) }),
            b'4' => Some(EntryKind::BlockDev { rdev: rustix::fs::makedev(h.dev.0, h.dev.1) }),
            b'6' => Some(EntryKind::Fifo),
            b'S' => {
                return Err(fail(
                    "a sparse file in GNU tar's sparse format, which slipway does not read; \
                     make the archive without --sparse (-S)"
                        .into(),
                ))
            }
            b'V' => {
                self.tin.skip(h.size, &what)?;
                self.tin.skip_padding(h.size, &what)?;
                self.b.progress.note(&format!("skipped the volume label {name}"));
                use std::os::unix::ffi::OsStrExt;
                self.skipped.push((PathBuf::from(std::ffi::OsStr::from_bytes(&h.path)), "a volume label".into()));
                return Ok(());
            }
            t => {
                return Err(fail(format!(
                    "type {} is not one slipway reads (regular file, hard link, symlink, device, directory, FIFO)",
                    if t.is_ascii_graphic() { format!("'{}'", t as char) } else { format!("0x{t:02x}") }
                )))
            }
        };
        let kind = match kind {
            Some(k) => {
                self.tin.skip(h.size, &what)?;
                self.tin.skip_padding(h.size, &what)?;
                k
            }
            None => {
                let mut data = (&mut self.tin).take(h.size);
                let chunks =
                    self.b.chunk(&mut data, h.size, "the archive is truncated").map_err(|e| fail(format!("{e:#}")))?;
                self.tin.skip_padding(h.size, &what)?;
                self.files_read += 1;
                self.bytes_read += h.size;
                EntryKind::File { size: h.size, chunks, extents: None }
            }
        };
        let node = INode { meta: Rc::new(h.meta), kind: IKind::Leaf { kind: Rc::new(kind), group: None } };
        self.insert(&comps, node).map_err(fail)
    }

    /// The kind, metadata and hard-link group of an earlier non-directory
    /// entry (giving it a group if it has none).
    fn link_target(&mut self, comps: &[EntryName]) -> Result<(Rc<EntryKind>, Rc<Metadata>, u64), String> {
        let missing = || "is not an earlier entry of the archive".to_string();
        let (last, parents) = comps.split_last().ok_or("is the top directory")?;
        let mut cur = &mut self.root;
        for c in parents {
            match cur.get_mut(c) {
                Some(INode { kind: IKind::Dir { children, .. }, .. }) => cur = children,
                _ => return Err(missing()),
            }
        }
        match cur.get_mut(last) {
            None => Err(missing()),
            Some(INode { kind: IKind::Dir { .. }, .. }) => Err("is a directory".into()),
            Some(INode { meta, kind: IKind::Leaf { kind, group } }) => {
                let g = *group.get_or_insert_with(|| {
                    self.groups += 1;
                    self.groups
                });
                Ok((kind.clone(), meta.clone(), g))
            }
        }
    }

    /// Puts an entry in place: its parents must be directories (made if the
    /// archive has not listed them), and its name must be new.
    fn insert(&mut self, comps: &[EntryName], node: INode) -> Result<(), String> {
        let Some((last, parents)) = comps.split_last() else {
            if !matches!(node.kind, IKind::Dir { .. }) {
                return Err("the top directory (.) must be a directory".into());
            }
            if self.root_meta.is_some() {
                return Err("the archive lists the top directory (.) twice; slipway refuses duplicate entries".into());
            }
            self.root_meta = Some(Rc::unwrap_or_clone(node.meta));
            return Ok(());
        };
        let mtime = node.meta.mtime;
        let mut cur = &mut self.root;
        for (i, c) in parents.iter().enumerate() {
            let p = cur.entry(c.clone()).or_insert_with(|| INode {
                meta: Rc::new(implicit_meta(mtime)),
                kind: IKind::Dir { children: BTreeMap::new(), explicit: false },
            });
            match &mut p.kind {
                IKind::Dir { children, .. } => cur = children,
                IKind::Leaf { kind, .. } => {
                    let at = comps[..=i].iter().map(|c| c.to_string()).collect::<Vec<_>>().join("/");
                    return Err(match &**kind {
                        EntryKind::Symlink { .. } => {
                            format!("{at} is a symlink in the archive; slipway refuses entries below a symlink")
                        }
                        k => format!("{at} is a {} in the archive, not a directory", k.type_name()),
                    });
                }
            }
        }
        match cur.get_mut(last) {
            None => {
                cur.insert(last.clone(), node);
                Ok(())
            }
            Some(INode { meta, kind: IKind::Dir { explicit: explicit @ false, .. } }) => match node.kind {
                IKind::Dir { .. } => {
                    *meta = node.meta;
                    *explicit = true;
                    Ok(())
                }
                IKind::Leaf { kind, .. } => Err(format!(
                    "earlier entries of the archive are inside it, so it must be a directory, but it is a {}",
                    kind.type_name()
                )),
            },
            Some(_) => Err("the archive lists this name twice; slipway refuses duplicate entries \
                            (was the archive appended to with tar -r or -u?)"
                .into()),
        }
    }
}

/// `%XX` decoding (libarchive's xattr names).
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(a), Some(b)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push((a * 16 + b) as u8);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Standard base64 (libarchive's xattr values), padding optional.
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s: &[u8] = {
        let mut e = s.len();
        while e > 0 && s[e - 1] == b'=' {
            e -= 1;
        }
        &s[..e]
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{capture, NoProgress};
    use std::path::Path;

    fn opts(name: &str) -> CaptureOptions {
        CaptureOptions { name: name.into(), ..Default::default() }
    }

    /// Tar bytes built field by field, independently of the writer above.
    struct Ar(Vec<u8>);

    fn header(name: &[u8], flag: u8, size: usize, link: &[u8]) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0001750\0");
        h[116..124].copy_from_slice(b"0001750\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"14000000000\0");
        h[156] = flag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    impl Ar {
        fn new() -> Self {
            Ar(Vec::new())
        }
        fn raw(mut self, name: &[u8], flag: u8, data: &[u8], link: &[u8]) -> Self {
            self.0.extend_from_slice(&header(name, flag, data.len(), link));
            self.0.extend_from_slice(data);
            self.0.resize(self.0.len().next_multiple_of(BLOCK), 0);
            self
        }
        fn file(self, name: &str, data: &[u8]) -> Self {
            self.raw(name.as_bytes(), b'0', data, b"")
        }
        fn dir(self, name: &str) -> Self {
            self.raw(name.as_bytes(), b'5', b"", b"")
        }
        fn symlink(self, name: &str, target: &str) -> Self {
            self.raw(name.as_bytes(), b'2', b"", target.as_bytes())
        }
        fn hardlink(self, name: &str, target: &str) -> Self {
            self.raw(name.as_bytes(), b'1', b"", target.as_bytes())
        }
        fn pax(self, records: &[(&str, &[u8])]) -> Self {
            let mut data = Vec::new();
            for (k, v) in records {
                pax_record(&mut data, k.as_bytes(), v);
            }
            self.raw(b"PaxHeader", b'x', &data, b"")
        }
        fn end(mut self) -> Vec<u8> {
            self.0.extend_from_slice(&[0u8; 2 * BLOCK]);
            self.0
        }
    }

    fn new_store(t: &Path) -> Store {
        Store::init(&t.join("store")).unwrap()
    }

    /// Imports `archive`, which must be refused with a message holding every
    /// one of `says`; the store must then have no image and verify clean.
    fn refused(archive: &[u8], says: &[&str]) {
        let t = tempfile::tempdir().unwrap();
        let mut store = new_store(t.path());
        let err = import_tar(&mut store, &mut &archive[..], &opts("evil"), &NoProgress).unwrap_err();
        let err = format!("{err:#}");
        for s in says {
            assert!(err.contains(s), "{s:?} not in: {err}");
        }
        let mut store = Store::open(store.path()).unwrap();
        assert!(store.images().unwrap().is_empty(), "{err}");
        assert!(crate::verify(&mut store, &NoProgress).unwrap().ok());
    }

    fn imported(archive: &[u8]) -> (tempfile::TempDir, Store, ImageVersion) {
        let t = tempfile::tempdir().unwrap();
        let mut store = new_store(t.path());
        import_tar(&mut store, &mut &archive[..], &opts("ok"), &NoProgress).unwrap();
        let img = store.resolve(&"ok".parse().unwrap()).unwrap();
        (t, store, img)
    }

    #[test]
    fn names_that_climb_are_refused() {
        let a = Ar::new().file("a/../../escaped", b"x").end();
        refused(&a, &["entry a/../../escaped", "'..'"]);
        let a = Ar::new().file("ok", b"x").file("../escaped", b"x").end();
        refused(&a, &["entry ../escaped (at byte 1024)", "'..'"]);
        // In a pax path too, and in a hard link's target.
        let a = Ar::new().pax(&[("path", b"d/../../x")]).file("harmless", b"x").end();
        refused(&a, &["entry d/../../x", "'..'"]);
        let a = Ar::new().file("f", b"x").hardlink("l", "../f").end();
        refused(&a, &["entry l", "hard-link target", "'..'"]);
    }

    #[test]
    fn absolute_names_are_refused() {
        let a = Ar::new().file("/etc/passwd", b"owned").end();
        refused(&a, &["entry /etc/passwd (at byte 0)", "absolute"]);
        let a = Ar::new().file("f", b"x").hardlink("l", "/etc/passwd").end();
        refused(&a, &["entry l", "absolute"]);
    }

    #[test]
    fn names_with_nul_are_refused() {
        let a = Ar::new().pax(&[("path", b"a\0b")]).file("harmless", b"x").end();
        refused(&a, &["NUL"]);
    }

    #[test]
    fn entries_below_a_symlink_or_file_are_refused() {
        let a = Ar::new().symlink("etc", "/etc").file("etc/passwd", b"owned").end();
        refused(&a, &["entry etc/passwd", "etc is a symlink"]);
        let a = Ar::new().dir("d").symlink("d/l", "..").file("d/l/x/y", b"owned").end();
        refused(&a, &["entry d/l/x/y", "d/l is a symlink"]);
        let a = Ar::new().file("f", b"x").file("f/g", b"y").end();
        refused(&a, &["entry f/g", "f is a file", "not a directory"]);
        // A symlink may not replace a directory that entries went into.
        let a = Ar::new().file("d/f", b"x").symlink("d", "/etc").end();
        refused(&a, &["entry d", "must be a directory"]);
    }

    #[test]
    fn hard_links_must_name_an_earlier_non_directory_entry() {
        let a = Ar::new().hardlink("l", "missing").end();
        refused(&a, &["entry l", "hard link to missing", "not an earlier entry"]);
        let a = Ar::new().hardlink("l", "later").file("later", b"x").end();
        refused(&a, &["entry l", "not an earlier entry"]);
        let a = Ar::new().dir("d").hardlink("l", "d").end();
        refused(&a, &["entry l", "is a directory"]);
        let a = Ar::new().symlink("s", "/etc").hardlink("l", "s/passwd").end();
        refused(&a, &["entry l", "not an earlier entry"]);
    }

    #[test]
    fn duplicate_names_are_refused() {
        let a = Ar::new().file("f", b"x").file("./f", b"y").end();
        refused(&a, &["entry ./f", "twice"]);
        let a = Ar::new().dir("d").dir("d/").end();
        refused(&a, &["entry d/", "twice"]);
    }

    #[test]
    fn truncated_archives_are_refused() {
        let whole = Ar::new().file("a", &[7u8; 3000]).file("b", b"x").end();
        // Inside file data, inside a header, at an entry boundary without
        // the end-of-archive marker, and at an empty input.
        for (cut, says) in [
            (700, "entry a (at byte 0): read 188 bytes but expected 3000"),
            (2000, "read 1488 bytes but expected 3000"),
            (3584 + 100, "ends at byte 3684, in the middle of a header block"),
            (3584 + 512 + 512, "ends at byte 4608, without an end-of-archive marker"),
            (0, "ends at byte 0"),
        ] {
            refused(&whole[..cut], &["truncated", says]);
        }
    }

    #[test]
    fn bad_checksums_are_refused() {
        let mut a = Ar::new().file("a", b"x").file("b", b"y").end();
        a[1024] ^= 1; // the name of the second header
        refused(&a, &["bad header checksum at byte 1024", "damaged"]);
        let mut a = Ar::new().file("a", b"x").end();
        a[148..156].copy_from_slice(b"0000000\0");
        refused(&a, &["bad header checksum at byte 0", "not a tar archive"]);
        refused(&[b'x'; 2048], &["checksum", "not a tar archive"]);
    }

    #[test]
    fn memory_bombs_are_refused() {
        // Extended headers without end before one entry.
        let mut a = Ar::new();
        for i in 0..9 {
            let v = vec![b'v'; 1 << 20];
            a = a.pax(&[(&format!("SCHILY.xattr.user.{i}"), &v)]);
        }
        refused(&a.file("f", b"x").end(), &["more than 8388608 bytes"]);
        // Hard links to a file of many chunks: refused before the listing
        // is built (unit tests allow 1 MiB tree objects).
        let mut seed = 1u64;
        let data: Vec<u8> = (0..3_000_000)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (seed >> 56) as u8
            })
            .collect();
        let mut a = Ar::new().file("big", &data);
        for i in 0..1000 {
            a = a.hardlink(&format!("l{i}"), "big");
        }
        refused(&a.end(), &["directory / holds too much metadata (more than 1048576 bytes"]);
    }

    #[test]
    fn unreadable_kinds_are_refused() {
        let a = Ar::new().raw(b"s", b'S', b"", b"").end();
        refused(&a, &["entry s", "sparse"]);
        let a = Ar::new().pax(&[("GNU.sparse.major", b"1")]).file("s", b"x").end();
        refused(&a, &["entry s", "sparse"]);
        let a = Ar::new().raw(b"q", b'Q', b"", b"").end();
        refused(&a, &["entry q", "type 'Q'"]);
        let a = Ar::new().pax(&[("mtime", b"1.5")]).end();
        refused(&a, &["right after an extended header"]);
        refused(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0], &["gzip-compressed"]);
        let a = Ar::new().symlink("l", "").end();
        refused(&a, &["entry l", "symlink target"]);
        let a = Ar::new().pax(&[("uid", b"4294967296")]).file("f", b"x").end();
        refused(&a, &["entry f", "uid 4294967296 is out of range"]);
        let a = Ar::new().pax(&[("SCHILY.acl.access", b"user:bob:rwx,user::rw-,group::r--,other::r--")]);
        refused(&a.file("f", b"x").end(), &["entry f", "numeric ids only"]);
    }

    #[test]
    fn directories_the_archive_does_not_list_are_made() {
        let a = Ar::new().file("a/b/f", b"x").end();
        let (_t, store, img) = imported(&a);
        let mut r = store.reader();
        let root = r.tree(&img.record.root.tree).unwrap();
        let e = root.get(b"a").unwrap();
        let want =
            Metadata { mode: 0o755, uid: 0, gid: 0, mtime: Timestamp { sec: 0o14000000000, nsec: 0 }, xattrs: vec![] };
        assert_eq!(e.meta, want);
        assert_eq!(img.record.root.metadata().unwrap(), want);
        let EntryKind::Dir { tree } = e.kind else { panic!("a is a directory") };
        let b = r.tree(&tree).unwrap();
        assert!(matches!(b.get(b"b").unwrap().kind, EntryKind::Dir { .. }));
        // A later entry for the directory itself sets its metadata.
        let a = Ar::new().file("a/f", b"x").pax(&[("mtime", b"5.25")]).dir("a").dir(".").end();
        let (_t, store, img) = imported(&a);
        let root = store.reader().tree(&img.record.root.tree).unwrap();
        let m = &root.get(b"a").unwrap().meta;
        assert_eq!((m.mode, m.uid, m.mtime), (0o644, 0o1750, Timestamp { sec: 5, nsec: 250_000_000 }));
        assert_eq!(img.record.root.metadata().unwrap().uid, 0o1750);
    }

    #[test]
    fn pax_metadata_and_text_acls_are_read() {
        let acl = b"user::rw-\nuser:1234:rwx\ngroup::r--\ngroup:99:r-x\nmask::rwx\nother::r--\n";
        let a = Ar::new()
            .pax(&[
                ("path", b"caf\xe9"),
                ("hdrcharset", b"BINARY"),
                ("uid", b"3000000"),
                ("gid", b"4000000"),
                ("mtime", b"-1.75"),
                ("SCHILY.xattr.user.a%3Db%25c", b"\0\xff"),
                ("SCHILY.xattr.user.empty", b""),
                ("SCHILY.acl.access", acl),
                ("atime", b"1"),
            ])
            .file("stand-in", b"data")
            .hardlink("l", "caf\u{e9}")
            .end();
        // The hard link's target is the raw name: rewrite it as bytes.
        let mut a = a;
        let at = a.windows(5).position(|w| w == "caf\u{e9}".as_bytes()).unwrap();
        a.splice(at..at + 5, *b"caf\xe9\0");
        let l = a.len() - 3 * BLOCK;
        let mut h: [u8; BLOCK] = a[l..l + BLOCK].try_into().unwrap();
        set_checksum(&mut h);
        a[l..l + BLOCK].copy_from_slice(&h);
        let (_t, store, img) = imported(&a);
        let root = store.reader().tree(&img.record.root.tree).unwrap();
        let e = root.get(b"caf\xe9").unwrap();
        assert_eq!((e.meta.uid, e.meta.gid), (3_000_000, 4_000_000));
        assert_eq!(e.meta.mtime, Timestamp { sec: -2, nsec: 250_000_000 });
        let names: Vec<_> = e.meta.xattrs.iter().map(|x| x.name.as_slice()).collect();
        assert_eq!(names, [&b"system.posix_acl_access"[..], b"user.a=b%c", b"user.empty"]);
        assert_eq!(acl_to_text(&e.meta.xattrs[0].value).unwrap().as_bytes(), acl);
        assert_eq!(e.meta.xattrs[1].value, b"\0\xff");
        let l = root.get(b"l").unwrap();
        assert_eq!((l.meta.clone(), l.kind.clone()), (e.meta.clone(), e.kind.clone()));
        assert_eq!((e.hardlink, l.hardlink), (Some(0), Some(0)));
        assert_eq!(img.record.stats.hardlinks, 1);
        assert_eq!(img.record.stats.files, 1);
    }

    #[test]
    fn export_then_import_gives_the_very_same_trees() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let long = "d".repeat(120);
        std::fs::create_dir_all(src.join(format!("{long}/{long}/empty"))).unwrap();
        std::fs::write(src.join(format!("{long}/{long}/{}", "f".repeat(200))), b"deep").unwrap();
        std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), vec![1u8; 300_000]).unwrap();
        std::os::unix::fs::symlink("t".repeat(300), src.join("long-link")).unwrap();
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"\xff"), src.join("odd-link")).unwrap();
        std::fs::hard_link(src.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), src.join("z-link")).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, src.join("fifo"), rustix::fs::FileType::Fifo, 0o640.into(), 0).unwrap();
        let x = |p: &str, n: &str, v: &[u8]| rustix::fs::lsetxattr(src.join(p), n, v, rustix::fs::XattrFlags::empty());
        let have_xattrs = x("fifo", "user.x", b"\0\x01").is_ok();
        if have_xattrs {
            x("z-link", "user.a=b%c", b"").unwrap();
        }
        let old = std::time::UNIX_EPOCH - std::time::Duration::new(100, 250_000_000);
        std::fs::File::open(src.join("z-link")).unwrap().set_modified(old).unwrap();
        let mut store = new_store(t.path());
        capture(&mut store, &src, &opts("a"), &NoProgress).unwrap();
        let a = store.resolve(&"a".parse().unwrap()).unwrap();
        let mut buf = Vec::new();
        let rep = export_tar(&store, &a, &mut buf, &NoProgress).unwrap();
        assert_eq!(rep.archive_bytes, buf.len() as u64);
        assert_eq!(buf.len() as u64 % RECORD, 0);
        assert_eq!((rep.files, rep.hardlinks, rep.others, rep.dirs), (2, 1, 3, 3));
        let r = import_tar(&mut store, &mut &buf[..], &opts("b"), &NoProgress).unwrap();
        assert_eq!(r.stats.new_bytes, 0, "nothing new: the same chunks and trees");
        let b = store.resolve(&"b".parse().unwrap()).unwrap();
        assert_eq!(a.record.root, b.record.root);
        assert_eq!(a.record.stats.files, b.record.stats.files);
        if have_xattrs {
            let root = store.reader().tree(&b.record.root.tree).unwrap();
            assert_eq!(root.get(b"z-link").unwrap().meta.xattrs[0].name, b"user.a=b%c");
        }
    }

    #[test]
    fn numbers_and_times_round_trip() {
        for (sec, nsec, text) in [
            (0i64, 0u32, "0"),
            (5, 250_000_000, "5.25"),
            (-1, 0, "-1"),
            (-2, 250_000_000, "-1.75"),
            (-1, 999_999_999, "-0.000000001"),
            (1_795_379_755, 729_994_079, "1795379755.729994079"),
        ] {
            let t = Timestamp { sec, nsec };
            assert_eq!(pax_time(t), text);
            assert_eq!(parse_pax_time(text.as_bytes()), Some(t), "{text}");
        }
        assert_eq!(parse_pax_time(b"1.1234567899"), Some(Timestamp { sec: 1, nsec: 123_456_789 }));
        for bad in [&b""[..], b"-", b".5", b"1.2.3", b"1e5", b"99999999999999999999"] {
            assert_eq!(parse_pax_time(bad), None, "{bad:?}");
        }
        for v in [0i64, 1, 0o7777777, 1 << 40, -1, -(1 << 40), i64::MAX, i64::MIN] {
            let mut f = [0u8; 12];
            base256(&mut f, v);
            assert_eq!(parse_num(&f), Some(v));
        }
        let mut f = [0u8; 8];
        assert!(!octal(&mut f, 0o10000000));
        base256(&mut f, 3_000_000);
        assert_eq!(parse_num(&f), Some(3_000_000));
        assert_eq!(parse_num(b"  0755 \0"), Some(0o755));
        assert_eq!(parse_num(b"\0\0\0\0\0\0\0\0"), Some(0));
        assert_eq!(parse_num(b"07x5\0\0\0\0"), None);
        for (n, len) in [(93, 99), (94, 101), (95, 102)] {
            let mut r = Vec::new();
            pax_record(&mut r, b"k", &vec![b'v'; n]);
            assert_eq!(r.len(), len);
            assert!(r.starts_with(format!("{len} k=v").as_bytes()));
        }
    }

    #[test]
    fn acl_text_and_xattr_forms_agree() {
        let text = b"user::rw-,user:bob:rwx:1234,group::r--,group:99:r-x,mask::rwx,other::r--";
        let raw = acl_from_text(text).unwrap();
        assert_eq!(
            acl_to_text(&raw).unwrap(),
            "user::rw-\nuser:1234:rwx\ngroup::r--\ngroup:99:r-x\nmask::rwx\nother::r--\n"
        );
        assert_eq!(acl_from_text(acl_to_text(&raw).unwrap().as_bytes()).unwrap(), raw);
        assert!(acl_from_text(b"user::rw-").unwrap_err().contains("group::"));
        assert_eq!(base64_decode(b"AP8="), Some(vec![0, 0xff]));
        assert_eq!(percent_decode(b"user.a%3Db"), b"user.a=b");
    }
}
