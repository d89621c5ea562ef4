//! `slipway iso ...`: build, list, inspect, extract and edit ISO images.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;
use slipway_iso::model::{
    self, Boot, BootEntry, BootImage, CatalogPlace, Content, Entry, Image, Kind, SystemArea, Tree,
};
use slipway_iso::read::IsoImage;
use slipway_iso::write::{write_image, WriteReport};
use slipway_store::{read_file, BlobReader, EntryKind, ImageSpec, Progress, TreeEntry};

use crate::args::{Global, IsoBuildArgs, IsoCmd, IsoEditArgs, VolumeArgs};
use crate::human::{bytes, mode_string};
use crate::progress::CliProgress;

const DEFAULT_HYBRID_MBR: &str = "/usr/lib/ISOLINUX/isohdpfx.bin";

pub fn run(g: &Global, cmd: IsoCmd) -> anyhow::Result<i32> {
    match cmd {
        IsoCmd::Build(a) => build(g, a),
        IsoCmd::Ls(a) => {
            let img = IsoImage::open(&a.iso)?;
            let tree = img.tree()?;
            let path = model::split(a.path.as_deref().map(OsStr::as_bytes).unwrap_or(b"/"))?;
            ls(&img, &tree, &path, a.long, a.recursive, a.json)
        }
        IsoCmd::Info(a) => {
            let img = IsoImage::open(&a.iso)?;
            let info = img.info()?;
            if a.json {
                print_json(&json!({"schema": "slipway.iso-info/1", "info": info}));
            } else {
                print_info(&serde_json::to_value(&info)?);
            }
            Ok(0)
        }
        IsoCmd::Extract(a) => {
            let img = IsoImage::open(&a.iso)?;
            let tree = img.tree()?;
            let paths =
                a.paths.iter().map(|p| model::split(p.as_bytes())).collect::<anyhow::Result<Vec<Vec<Vec<u8>>>>>()?;
            let r = slipway_iso::read::extract(&img, &tree, &a.dest, &paths)?;
            if a.json {
                print_json(&json!({"schema": "slipway.iso-extract/1", "iso": a.iso, "dest": a.dest, "report": r}));
            } else {
                println!(
                    "extracted {} into {}: {} files ({}), {} dirs, {} symlinks, {} hard links, {} other entries",
                    a.iso.display(),
                    a.dest.display(),
                    r.files,
                    bytes(r.bytes),
                    r.dirs,
                    r.symlinks,
                    r.hardlinks,
                    r.specials
                );
                for s in &r.skipped {
                    println!("  skipped {s} (sockets cannot be made)");
                }
            }
            Ok(0)
        }
        IsoCmd::Edit(a) => edit(g, a),
    }
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), the clock otherwise.
fn creation_time() -> anyhow::Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse::<i64>().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)),
    }
}

/// A volume id from a name: upper case d-characters, at most 32.
fn default_volume_id(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' | '_' => c,
            _ => '_',
        })
        .take(32)
        .collect();
    if id.is_empty() {
        "SLIPWAY".into()
    } else {
        id
    }
}

fn check_text(what: &str, s: &str, max: usize) -> anyhow::Result<()> {
    if !s.is_ascii() || s.chars().any(|c| c.is_ascii_control()) {
        bail!("the {what} {s:?} must be printable ASCII");
    }
    if s.len() > max {
        bail!("the {what} {s:?} is {} characters; at most {max} fit", s.len());
    }
    Ok(())
}

fn volume(v: &VolumeArgs, default_id: String, base: Option<&model::Volume>) -> anyhow::Result<model::Volume> {
    let mut out = base.cloned().unwrap_or_else(|| model::Volume {
        volume_id: default_id,
        system_id: "LINUX".into(),
        application: format!("SLIPWAY {}", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    });
    if let Some(id) = &v.volume_id {
        out.volume_id = id.clone();
    }
    if let Some(p) = &v.publisher {
        out.publisher = p.clone();
    }
    if let Some(p) = &v.preparer {
        out.preparer = p.clone();
    }
    check_text("volume id", &out.volume_id, 32)?;
    check_text("publisher", &out.publisher, 128)?;
    check_text("preparer", &out.preparer, 128)?;
    Ok(out)
}

/// Store image files, read through the store's blob reader while writing.
struct StoreContent<'s> {
    reader: BlobReader<'s>,
    files: Vec<TreeEntry>,
    label: String,
}

impl model::External for StoreContent<'_> {
    fn write_external(&mut self, id: u64, size: u64, out: &mut dyn Write) -> anyhow::Result<()> {
        let e = self.files.get(id as usize).context("unknown store file")?;
        let mut counted = Counted { inner: out, n: 0 };
        read_file(&mut self.reader, e, &mut counted).with_context(|| format!("{}: reading {}", self.label, e.name))?;
        if counted.n != size {
            bail!("{}: {} holds {} bytes, its entry says {size}", self.label, e.name, counted.n);
        }
        Ok(())
    }
}

struct Counted<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Turns a store image's directory into tree entries whose files are read
/// from the store when the ISO is written.
fn store_entries(
    reader: &mut BlobReader<'_>,
    tree: &slipway_store::BlobId,
    files: &mut Vec<TreeEntry>,
    label: &str,
    depth: usize,
) -> anyhow::Result<Vec<Entry>> {
    if depth > 4096 {
        bail!("{label}: directories nest deeper than 4096 levels");
    }
    let t = reader.tree(tree).with_context(|| format!("{label}: reading a directory"))?;
    let mut out = Vec::with_capacity(t.entries.len());
    for e in t.entries {
        let meta = model::Meta::from(&e.meta);
        let kind = match &e.kind {
            EntryKind::Dir { tree } => Kind::Dir(store_entries(reader, tree, files, label, depth + 1)?),
            EntryKind::File { size, .. } => {
                files.push(e.clone());
                Kind::File { size: *size, content: Content::External(files.len() as u64 - 1) }
            }
            EntryKind::Symlink { target } => Kind::Symlink(target.clone()),
            EntryKind::CharDev { rdev } => Kind::CharDev(*rdev),
            EntryKind::BlockDev { rdev } => Kind::BlockDev(*rdev),
            EntryKind::Fifo => Kind::Fifo,
        };
        out.push(Entry { name: e.name.as_bytes().to_vec(), meta, kind, link: e.hardlink });
    }
    Ok(out)
}

fn build(g: &Global, a: IsoBuildArgs) -> anyhow::Result<i32> {
    let created = creation_time()?;
    let progress = CliProgress::new(g.quiet);
    let store;
    let mut source_content;
    let (tree, default_id, source) = match (&a.dir, &a.image) {
        (Some(dir), _) => {
            progress.phase("scanning the source", None);
            let (tree, stats) = slipway_iso::source::tree_from_dir(dir)?;
            for (p, why) in &stats.skipped {
                progress.note(&format!("left out {}: {why}", p.display()));
            }
            let name = std::fs::canonicalize(dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            source_content = None;
            (tree, default_volume_id(&name), dir.display().to_string())
        }
        (None, Some(spec)) => {
            store = crate::commands::open(g)?;
            let spec: ImageSpec = spec.parse()?;
            let img = store.resolve(&spec)?;
            let label = img.label();
            let mut reader = store.reader();
            let mut files = Vec::new();
            let entries = store_entries(&mut reader, &img.record.root.tree, &mut files, &label, 0)?;
            let r = &img.record.root;
            let root = model::Meta {
                mode: r.mode & 0o7777,
                uid: r.uid,
                gid: r.gid,
                mtime: slipway_fstree::Timestamp { sec: r.mtime.0, nsec: r.mtime.1 },
            };
            let tree = Tree { root, entries };
            source_content = Some(StoreContent { reader, files, label: label.clone() });
            (tree, default_volume_id(&spec.name), label)
        }
        (None, None) => bail!("give a directory or --image NAME"),
    };
    let mut image =
        Image { volume: volume(&a.volume, default_id, None)?, created, joliet: !a.no_joliet, ..Default::default() };

    let mut entries = Vec::new();
    if let Some(p) = &a.bios_boot {
        let path = model::split(p.as_bytes())?;
        let mut e = BootEntry::bios(path.clone());
        e.info_table = !a.no_boot_info_table;
        e.load_sectors = Some(a.boot_load_size);
        entries.push(e);
    }
    if let Some(p) = &a.efi_boot {
        entries.push(BootEntry::efi(BootImage::File(model::split(p.as_bytes())?)));
    }
    if let Some(p) = &a.efi_dir {
        let path = model::split(p.as_bytes())?;
        let Some(top) = path.last() else { bail!("--efi-dir needs a directory inside the source, such as EFI") };
        let children = match tree.get(&path) {
            Some(Entry { kind: Kind::Dir(c), .. }) => c,
            Some(e) => bail!("--efi-dir {}: that is a {}, not a directory", model::join(&path), e.kind.type_name()),
            None => bail!("--efi-dir {}: no such directory in {source}", model::join(&path)),
        };
        progress.phase("making the EFI system partition image", None);
        let ext = source_content.as_mut().map(|c| c as &mut dyn model::External);
        let fat = slipway_iso::fat::esp_image(top, children, ext, created)
            .with_context(|| format!("making an EFI system partition from {}", model::join(&path)))?;
        let size = fat.len() as u64;
        entries.push(BootEntry::efi(BootImage::Hidden { size, content: Content::Bytes(fat.into()), appended: false }));
    }
    if !entries.is_empty() {
        image.boot = Some(Boot { catalog: CatalogPlace::File(model::split(a.catalog.as_bytes())?), entries });
    }
    if a.hybrid {
        let bios = image.boot.as_ref().is_some_and(|b| b.entries.iter().any(|e| e.platform == 0));
        let mbr_code = if bios {
            let path = a.hybrid_mbr.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_HYBRID_MBR));
            let code = std::fs::read(&path).with_context(|| {
                format!(
                    "reading the hybrid MBR boot code {}; install isolinux (Debian: apt install isolinux) or pass --hybrid-mbr FILE",
                    path.display()
                )
            })?;
            if code.len() < 432 {
                bail!("{} is {} bytes; MBR boot code is at least 432", path.display(), code.len());
            }
            check_isohybrid(&tree, image.boot.as_ref())?;
            Some(code[..432].to_vec())
        } else {
            None
        };
        if image.boot.is_none() {
            bail!("--hybrid needs a boot image: give --bios-boot and/or --efi-boot/--efi-dir");
        }
        image.system_area = SystemArea::Hybrid(slipway_iso::hybrid::HybridOptions { mbr_code, gpt: true });
    }

    let report = write_with_progress(
        tree,
        &image,
        source_content.as_mut().map(|c| c as &mut dyn model::External),
        &a.output,
        &progress,
    )?;
    print_build("built", &source, &a.output, &report, a.json);
    Ok(0)
}

/// isolinux's hybrid MBR code only works with an isolinux.bin that carries
/// the isohybrid signature (0x7078c0fb at byte 64).
fn check_isohybrid(tree: &Tree, boot: Option<&Boot>) -> anyhow::Result<()> {
    let Some(b) = boot else { return Ok(()) };
    for e in &b.entries {
        if let (0, BootImage::File(path)) = (e.platform, &e.image) {
            if let Some(Entry { kind: Kind::File { content: Content::Path(p), .. }, .. }) = tree.get(path) {
                let mut head = [0u8; 68];
                let n = std::fs::File::open(p).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
                if n < 68 || head[64..68] != [0xfb, 0xc0, 0x78, 0x70] {
                    bail!(
                        "--hybrid: {} has no isohybrid signature, so the MBR code could not start it; \
                         use isolinux.bin from syslinux 4 or later, or drop --hybrid",
                        model::join(path)
                    );
                }
            }
        }
    }
    Ok(())
}

fn write_with_progress(
    tree: Tree,
    image: &Image,
    external: Option<&mut dyn model::External>,
    out: &Path,
    progress: &CliProgress,
) -> anyhow::Result<WriteReport> {
    progress.phase("laying out the image", None);
    let last = Cell::new(0u64);
    let started = Cell::new(false);
    let report = write_image(tree, image, external, out, &|done, total| {
        if !started.get() {
            progress.phase("writing the image", Some(total));
            started.set(true);
        }
        progress.advance(done - last.get());
        last.set(done);
    })?;
    progress.finish();
    Ok(report)
}

fn print_build(verb: &str, source: &str, out: &Path, r: &WriteReport, as_json: bool) {
    if as_json {
        print_json(&json!({"schema": "slipway.iso-build/1", "source": source, "output": out, "report": r}));
        return;
    }
    println!(
        "{verb} {} from {source}: {} ({} files, {} dirs, {} symlinks, {} other entries)",
        out.display(),
        bytes(r.bytes),
        r.files,
        r.dirs,
        r.symlinks,
        r.specials
    );
    for b in &r.boot {
        println!(
            "  boot: {} image {} at sector {} ({})",
            b.platform,
            b.path.as_deref().unwrap_or("(hidden)"),
            b.lba,
            bytes(b.bytes)
        );
    }
}

/// Splits `SRC[:DEST]` at the last ':' whose left side exists on the host.
fn src_dest(arg: &OsStr, need_dest: bool) -> anyhow::Result<(PathBuf, Option<Vec<u8>>)> {
    let b = arg.as_bytes();
    for (i, _) in b.iter().enumerate().rev().filter(|(_, &c)| c == b':') {
        let src = Path::new(OsStr::from_bytes(&b[..i]));
        if src.symlink_metadata().is_ok() {
            return Ok((src.to_path_buf(), Some(b[i + 1..].to_vec())));
        }
    }
    if need_dest {
        bail!("{} is not SRC:DEST with an existing SRC", arg.to_string_lossy());
    }
    let src = Path::new(arg);
    if src.symlink_metadata().is_err() {
        bail!("{}: no such file or directory", src.display());
    }
    Ok((src.to_path_buf(), None))
}

/// Reads a host file or directory as one tree entry named `name`.
fn host_entry(src: &Path, name: Vec<u8>) -> anyhow::Result<Entry> {
    let md = std::fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    if md.is_dir() {
        let (tree, _) = slipway_iso::source::tree_from_dir(src)?;
        return Ok(Entry { name, meta: tree.root, kind: Kind::Dir(tree.entries), link: None });
    }
    // A single entry: the metadata the tree model keeps (ISO images hold
    // no xattrs), read with lstat so a symlink is added as a symlink.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = model::Meta {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: slipway_fstree::Timestamp { sec: md.mtime(), nsec: md.mtime_nsec() as u32 },
    };
    let ft = md.file_type();
    let kind = if ft.is_file() {
        Kind::File { size: md.len(), content: Content::Path(std::sync::Arc::from(src)) }
    } else if ft.is_symlink() {
        Kind::Symlink(std::fs::read_link(src)?.as_os_str().as_bytes().to_vec())
    } else if ft.is_char_device() {
        Kind::CharDev(md.rdev())
    } else if ft.is_block_device() {
        Kind::BlockDev(md.rdev())
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        bail!("{} is a socket; it cannot go into an image", src.display());
    };
    Ok(Entry { name, meta, kind, link: None })
}

fn edit(g: &Global, a: IsoEditArgs) -> anyhow::Result<i32> {
    let progress = CliProgress::new(g.quiet);
    let input = IsoImage::open(&a.input)?;
    let mut tree = input.tree()?;
    let boot = input.boot(&tree)?;
    let mut image = Image {
        created: creation_time()?,
        joliet: input.joliet_level().is_some(),
        volume: volume(&a.volume, input.volume_id(), Some(&input.volume()))?,
        ..Default::default()
    };
    let dir_meta = tree.root.clone();
    for p in &a.rm {
        let path = model::split(p.as_bytes())?;
        tree.remove(&path).with_context(|| format!("--rm {}", p.to_string_lossy()))?;
    }
    for r in &a.replace {
        let (src, dest) = src_dest(r, true)?;
        let dest = model::split(&dest.unwrap_or_default())?;
        let Some((name, dir)) = dest.split_last() else { bail!("--replace {}: DEST cannot be /", r.to_string_lossy()) };
        if tree.get(&dest).is_none() {
            bail!(
                "--replace {}: {} is not in {}; use --add",
                r.to_string_lossy(),
                model::join(&dest),
                a.input.display()
            );
        }
        tree.remove(&dest)?;
        tree.insert(dir, host_entry(&src, name.clone())?, true, &dir_meta)?;
    }
    for add in &a.add {
        let (src, dest) = src_dest(add, false)?;
        let base = src
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .with_context(|| format!("--add {}: give SRC:DEST", add.to_string_lossy()))?;
        let (dir, name) = match dest {
            None => (Vec::new(), base),
            Some(d) if d.ends_with(b"/") || d.is_empty() => (model::split(&d)?, base),
            Some(d) => {
                let mut p = model::split(&d)?;
                let name = p.pop().unwrap_or(base);
                (p, name)
            }
        };
        tree.insert(&dir, host_entry(&src, name)?, false, &dir_meta)
            .with_context(|| format!("--add {}", add.to_string_lossy()))?;
    }
    if let Some((b, old_layout)) = boot {
        for e in &b.entries {
            if let BootImage::File(p) = &e.image {
                if tree.get(p).is_none() {
                    bail!(
                        "{} is a boot image of {}; removing it would leave the image unbootable",
                        model::join(p),
                        a.input.display()
                    );
                }
            }
        }
        let sa = input.system_area()?;
        if sa.iter().any(|&b| b != 0) {
            image.system_area =
                SystemArea::Carried(slipway_iso::hybrid::CarriedArea::from_image(&sa, &old_layout, input.len())?);
        }
        image.boot = Some(b);
    }
    let report = write_with_progress(tree, &image, None, &a.output, &progress)?;
    print_build("wrote", &a.input.display().to_string(), &a.output, &report, a.json);
    Ok(0)
}

fn type_char(k: &Kind) -> char {
    match k {
        Kind::Dir(_) => 'd',
        Kind::File { .. } => '-',
        Kind::Symlink(_) => 'l',
        Kind::CharDev(_) => 'c',
        Kind::BlockDev(_) => 'b',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
    }
}

fn entry_json(path: &str, e: &Entry) -> serde_json::Value {
    let m = &e.meta;
    let mut v = json!({
        "path": path, "type": e.kind.type_name(), "mode": format!("{:04o}", m.mode),
        "uid": m.uid, "gid": m.gid, "mtime": m.mtime.sec,
    });
    if let Some(l) = e.link {
        v["hardlink_group"] = json!(l);
    }
    match &e.kind {
        Kind::File { size, content } => {
            v["size"] = json!(size);
            if let Content::Region { ranges, .. } = content {
                v["extents"] = json!(ranges.iter().map(|(o, l)| json!({"offset": o, "bytes": l})).collect::<Vec<_>>());
            }
        }
        Kind::Symlink(t) => v["target"] = json!(slipway_fstree::display_bytes(t)),
        Kind::CharDev(r) | Kind::BlockDev(r) => {
            v["major"] = json!(rustix::fs::major(*r));
            v["minor"] = json!(rustix::fs::minor(*r));
        }
        _ => {}
    }
    v
}

fn ls(
    img: &IsoImage,
    tree: &Tree,
    path: &[Vec<u8>],
    long: bool,
    recursive: bool,
    as_json: bool,
) -> anyhow::Result<i32> {
    let base = if path.is_empty() { String::new() } else { model::join(path) };
    let mut out: Vec<(String, &Entry)> = Vec::new();
    let top: &[Entry] = if path.is_empty() {
        &tree.entries
    } else {
        match tree.get(path) {
            Some(Entry { kind: Kind::Dir(c), .. }) => c,
            Some(e) => {
                out.push((base.clone(), e));
                &[]
            }
            None => bail!("{}: no {} in the image", img.path().display(), model::join(path)),
        }
    };
    let mut stack: Vec<(String, &[Entry])> = vec![(base, top)];
    while let Some((dir, entries)) = stack.pop() {
        let mut subdirs = Vec::new();
        for e in entries {
            let p = format!("{dir}/{}", slipway_fstree::display_bytes(&e.name));
            if let (true, Kind::Dir(c)) = (recursive, &e.kind) {
                subdirs.push((p.clone(), c.as_slice()));
            }
            out.push((p, e));
        }
        stack.extend(subdirs.into_iter().rev());
    }
    if as_json {
        let list: Vec<_> = out.iter().map(|(p, e)| entry_json(p, e)).collect();
        print_json(&json!({"schema": "slipway.iso-ls/1", "iso": img.path(), "entries": list}));
        return Ok(0);
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for (p, e) in &out {
        let shown = if recursive { p.as_str() } else { p.rsplit('/').next().unwrap_or(p) };
        if !long {
            writeln!(w, "{shown}")?;
            continue;
        }
        let m = &e.meta;
        let size = match &e.kind {
            Kind::File { size, .. } => size.to_string(),
            Kind::CharDev(r) | Kind::BlockDev(r) => format!("{},{}", rustix::fs::major(*r), rustix::fs::minor(*r)),
            _ => "0".into(),
        };
        let link = match &e.kind {
            Kind::Symlink(t) => format!(" -> {}", slipway_fstree::display_bytes(t)),
            _ => String::new(),
        };
        writeln!(
            w,
            "{} {:>5} {:>5} {:>10} {} {shown}{link}",
            mode_string(type_char(&e.kind), m.mode),
            m.uid,
            m.gid,
            size,
            slipway_store::rfc3339(m.mtime.sec)
        )?;
    }
    w.flush()?;
    Ok(0)
}

/// Human output of `iso info`: one line per descriptor, boot entry and
/// partition (the JSON form has every field).
fn print_info(v: &serde_json::Value) {
    let t = |x: &serde_json::Value| -> String {
        match x {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            x => x.to_string(),
        }
    };
    let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0);
    let mut head = format!(
        "{}: {}, volume {:?}, {} sectors",
        t(&v["file"]),
        bytes(n(&v["size"])),
        t(&v["volume_id"]),
        n(&v["volume_space_sectors"])
    );
    if v["rock_ridge"].as_bool() == Some(true) {
        head.push_str(", Rock Ridge");
    }
    if !v["joliet"].is_null() {
        head.push_str(&format!(", Joliet level {}", t(&v["joliet"])));
    }
    println!("{head}");
    println!("volume descriptors:");
    for d in v["volume_descriptors"].as_array().into_iter().flatten() {
        let mut line = format!("  {:>4} {:<14}", n(&d["lba"]), t(&d["type"]));
        if let Some(id) = d["volume_id"].as_str() {
            line.push_str(&format!(" {id:?}"));
        }
        if let Some(c) = d["created"].as_i64() {
            line.push_str(&format!(" created {}", slipway_store::rfc3339(c)));
        }
        if let Some(a) = d["application"].as_str().filter(|a| !a.is_empty()) {
            line.push_str(&format!(" by {a:?}"));
        }
        if let Some(b) = d["boot_system_id"].as_str() {
            line.push_str(&format!(" {b}, catalog at sector {}", t(&d["boot_catalog_lba"])));
        }
        println!("{line}");
    }
    match v["el_torito"].as_object() {
        None => println!("El Torito: none (not bootable from CD)"),
        Some(e) => {
            println!("El Torito catalog at sector {} ({}):", t(&e["catalog_lba"]), t(&e["catalog_path"]));
            for (i, b) in e["entries"].as_array().into_iter().flatten().enumerate() {
                let mut opts = Vec::new();
                if b["info_table"].as_bool() == Some(true) {
                    opts.push("boot-info-table");
                }
                if b["grub2_boot_info"].as_bool() == Some(true) {
                    opts.push("grub2-boot-info");
                }
                if b["appended"].as_bool() == Some(true) {
                    opts.push("appended");
                }
                println!(
                    "  {} {:<5} {:<12} {} sector {} {} load {} {} {}",
                    i + 1,
                    t(&b["platform"]),
                    t(&b["emulation"]),
                    if b["bootable"].as_bool() == Some(true) { "bootable" } else { "not-bootable" },
                    n(&b["lba"]),
                    bytes(n(&b["bytes"])),
                    n(&b["load_sectors"]),
                    b["path"].as_str().unwrap_or("(hidden)"),
                    opts.join(",")
                );
            }
        }
    }
    let sa = &v["system_area"];
    println!("system area: {}", t(&sa["kind"]));
    for p in sa["partitions"].as_array().into_iter().flatten() {
        println!(
            "  MBR {}: status 0x{:02x} type 0x{:02x} start {} blocks {}",
            n(&p["number"]),
            n(&p["status"]),
            n(&p["type"]),
            n(&p["start"]),
            n(&p["blocks"])
        );
    }
    for p in sa["gpt"]["partitions"].as_array().into_iter().flatten() {
        println!(
            "  GPT {}: {:?} {} sectors {}..{}",
            n(&p["number"]),
            t(&p["name"]),
            t(&p["type_name"]),
            n(&p["first_lba"]),
            n(&p["last_lba"])
        );
    }
    for p in v["problems"].as_array().into_iter().flatten() {
        println!("problem: {}", t(p));
    }
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values always serialize"));
}
