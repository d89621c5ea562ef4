//! One function per command: open the store, call the library, print.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::json;
use slipway_store::{
    apply, capture, lookup, read_file, rfc3339, verify, ApplyOptions, CaptureOptions, EntryKind, Found, ImageSpec,
    ImageVersion, Store, TreeEntry,
};

use crate::args::{Cli, Cmd, Global, StoreCmd};
use crate::human::{bytes, mode_string};
use crate::progress::CliProgress;

/// Runs the command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let g = cli.global;
    match cli.cmd {
        Cmd::Store(StoreCmd::Init(a)) => {
            let path = store_path(&g)?;
            let s = Store::init(&path)?;
            if a.json {
                print_json(
                    &json!({"schema": "slipway.store-init/1", "store": s.path().to_string_lossy(), "id": s.config().id}),
                );
            } else {
                println!("created store {}", s.path().display());
            }
        }
        Cmd::Store(StoreCmd::Info(a)) => store_info(&open(&g)?, a.json)?,
        Cmd::Store(StoreCmd::RebuildIndex(a)) => {
            let path = store_path(&g)?;
            let mut s = Store::open_without_index(&path)?;
            let r = slipway_store::rebuild_index(&mut s, &CliProgress::new(g.quiet))?;
            if a.json {
                print_json(&json!({"schema": "slipway.rebuild-index/1", "report": r}));
            } else {
                for (p, why) in &r.skipped {
                    println!("skipped {}: {why}", p.display());
                }
                println!(
                    "rebuilt the index: {} blobs in {} packs ({} other index files removed)",
                    r.blobs, r.packs, r.index_files_removed
                );
            }
        }
        Cmd::Capture(a) => {
            let mut s = open(&g)?;
            let p = CliProgress::new(g.quiet);
            let opts = CaptureOptions {
                name: a.name,
                description: a.description,
                one_file_system: a.one_file_system,
                rehash: a.rehash,
                packages: vec![],
            };
            let r = capture(&mut s, &a.src, &opts, &p)?;
            print_capture("captured", &a.src.display().to_string(), &r, a.json);
        }
        Cmd::Iso(c) => return crate::iso::run(&g, c),
        Cmd::Key(c) => return crate::servicing::key(&g, c),
        Cmd::Package(c) => return crate::servicing::package(&g, c),
        Cmd::Integrate(a) => return crate::servicing::integrate(&g, a),
        Cmd::Install(a) => return crate::servicing::install(&g, a),
        Cmd::Uninstall(a) => return crate::servicing::uninstall(&g, a),
        Cmd::Packages(a) => return crate::servicing::packages(a),
        Cmd::Scan(a) => return crate::servicing::scan(&g, a),
        Cmd::Recover(a) => return crate::servicing::recover(a),
        Cmd::Generalize(a) => return crate::sysprep::generalize(a),
        Cmd::Specialize(a) => return crate::sysprep::specialize(a),
        Cmd::Answer(c) => return crate::sysprep::answer(&g, c),
        Cmd::Firstboot(a) => return crate::sysprep::firstboot(a),
        Cmd::Serve(a) => return crate::server::serve(&g, a),
        Cmd::Server(c) => return crate::server::server(&g, c),
        Cmd::Agent(a) => return crate::server::agent(a),
        Cmd::Machines(a) => return crate::server::machines(a),
        Cmd::Collection(c) => return crate::server::collection(c),
        Cmd::Deploy(a) => return crate::server::deploy(a),
        Cmd::Status(a) => return crate::server::status(a),
        Cmd::Images(a) => images(&open(&g)?, a.json)?,
        Cmd::Info(a) => {
            let mut s = open(&g)?;
            let img = resolve(&mut s, &a.image)?;
            info(&img, a.json);
        }
        Cmd::Ls(a) => {
            let mut s = open(&g)?;
            let img = resolve(&mut s, &a.image)?;
            ls(&s, &img, a.path.as_deref().map(os_bytes).unwrap_or(b"/"), a.recursive, a.json)?;
        }
        Cmd::Cat(a) => {
            let mut s = open(&g)?;
            let img = resolve(&mut s, &a.image)?;
            let mut r = s.reader();
            let e = match lookup(&mut r, &img, os_bytes(&a.path))? {
                Found::Root => bail!("/ is a directory; use `slipway ls {}`", a.image),
                Found::Entry(e) => e,
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            read_file(&mut r, &e, &mut out)
                .with_context(|| format!("reading {} from {}", a.path.to_string_lossy(), img.label()))?;
            out.flush()?;
        }
        Cmd::Apply(a) => {
            let mut s = open(&g)?;
            let img = resolve(&mut s, &a.image)?;
            let mut opts = ApplyOptions { force: a.force, ..Default::default() };
            if a.no_same_owner {
                opts.restore_owner = false;
            }
            let p = CliProgress::new(g.quiet);
            let r = apply(&s, &img, &a.target, opts, &p)?;
            if a.json {
                print_json(&json!({"schema": "slipway.apply/1", "report": r}));
            } else {
                println!(
                    "applied {} to {}: {} files, {} dirs, {} hard links, {} other entries, {} in {:.1} s",
                    r.image,
                    r.target.display(),
                    r.files,
                    r.dirs,
                    r.hardlinks,
                    r.others,
                    bytes(r.bytes),
                    r.seconds
                );
            }
        }
        Cmd::Verify(a) if a.root.is_some() => {
            let root = a.root.clone().expect("checked");
            return crate::servicing::verify_root(&g, &a, &root);
        }
        Cmd::Verify(a) => {
            let mut s = open(&g)?;
            let p = CliProgress::new(g.quiet);
            let r = verify(&mut s, &p)?;
            if a.json {
                print_json(&json!({"schema": "slipway.verify/1", "ok": r.ok(), "report": r}));
            } else {
                for pr in &r.problems {
                    let at = pr.path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default();
                    println!("damaged {} {}{at}: {}", pr.object, pr.id, pr.message);
                }
                for u in &r.damaged_uses {
                    println!("  used by {} {} (chunk {}): {}", u.image, u.path, u.blob, u.problem);
                }
                for p in &r.unindexed_packs {
                    println!(
                        "note: pack {} is not in any index (left by an interrupted capture; harmless)",
                        p.display()
                    );
                }
                println!(
                    "{}: {} packs, {} blobs ({}), {} image versions checked",
                    if r.ok() { "ok" } else { "DAMAGED" },
                    r.packs,
                    r.blobs,
                    bytes(r.bytes),
                    r.images
                );
                if !r.ok() {
                    eprintln!(
                        "error: the store has damaged or missing data; images listed above cannot be applied \
                         in full. Recapture them from their source, or copy the store from a good replica."
                    );
                }
            }
            return Ok(if r.ok() { 0 } else { 1 });
        }
        Cmd::Diff(a) => {
            let mut s = open(&g)?;
            let from = resolve(&mut s, &a.from)?;
            let to = resolve(&mut s, &a.to)?;
            let r = slipway_store::diff(&s, &from, &to, a.bytes)?;
            if a.json {
                print_json(&json!({"schema": "slipway.diff/1", "report": r}));
            } else {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::new(stdout.lock());
                for e in &r.entries {
                    let tag = match e.change {
                        slipway_store::Change::Added => "+",
                        slipway_store::Change::Removed => "-",
                        slipway_store::Change::Content if e.metadata_too => "M",
                        slipway_store::Change::Content => "C",
                        slipway_store::Change::Metadata => "m",
                        slipway_store::Change::Type => "T",
                    };
                    writeln!(w, "{tag} {}", e.path)?;
                }
                w.flush()?;
                let count = |c| r.entries.iter().filter(|e| e.change == c).count();
                use slipway_store::Change as K;
                eprintln!(
                    "{} -> {}: {} added, {} removed, {} content changed, {} metadata changed, {} type changed",
                    r.from,
                    r.to,
                    count(K::Added),
                    count(K::Removed),
                    count(K::Content),
                    count(K::Metadata),
                    count(K::Type)
                );
                if let (Some(n), Some(raw), Some(st)) = (r.new_blobs, r.new_bytes, r.new_stored_bytes) {
                    eprintln!(
                        "a store holding {} needs {} more to hold {}: {n} blobs, {} before compression",
                        r.from,
                        bytes(st),
                        r.to,
                        bytes(raw)
                    );
                }
            }
        }
        Cmd::Delete(a) => {
            let mut s = open(&g)?;
            let label = slipway_store::delete(&mut s, &a.image.parse()?, &CliProgress::new(g.quiet))?;
            if a.json {
                print_json(&json!({"schema": "slipway.delete/1", "deleted": label}));
            } else {
                println!("deleted {label}; run `slipway gc` to free the space only it used");
            }
        }
        Cmd::Gc(a) => {
            if !(0.0..=1.0).contains(&a.repack_below) {
                bail!("--repack-below must be between 0 and 1");
            }
            let mut s = open(&g)?;
            let opts = slipway_store::GcOptions { repack_below: a.repack_below, dry_run: a.dry_run };
            let r = slipway_store::gc(&mut s, &opts, &CliProgress::new(g.quiet))?;
            if a.json {
                print_json(&json!({"schema": "slipway.gc/1", "report": r}));
            } else {
                let verb = if r.dry_run { "would remove" } else { "removed" };
                println!(
                    "{} image versions, {} live blobs; {verb} {} packs with nothing live, repacked {} mostly-empty packs \
                     into {}, {verb} {} records and {} caches",
                    r.images,
                    r.live_blobs,
                    r.packs_removed,
                    r.packs_repacked,
                    r.packs_written,
                    r.records_removed,
                    r.caches_removed
                );
                if !r.dry_run {
                    println!(
                        "packs: {} ({}) -> {} ({})",
                        r.packs_before,
                        bytes(r.bytes_before),
                        r.packs_after,
                        bytes(r.bytes_after)
                    );
                }
            }
        }
        Cmd::Export(a) => {
            let mut s = open(&g)?;
            let img = resolve(&mut s, &a.image)?;
            let p = CliProgress::new(g.quiet);
            if let Some(file) = &a.tar {
                export_tar(&s, &img, file, a.json, g.quiet, &p)?;
            } else if let Some(dest) = &a.to_store {
                let r = slipway_store::export_to_store(&s, &img, dest, &p)?;
                if a.json {
                    print_json(&json!({"schema": "slipway.export/1", "report": r}));
                } else {
                    println!(
                        "exported {} to {} as {}: copied {} of {} blobs ({}, {} of packs); {} were there already",
                        r.image,
                        dest.display(),
                        r.exported_as,
                        r.blobs_copied,
                        r.blobs,
                        bytes(r.bytes_copied),
                        bytes(r.pack_bytes_written),
                        r.blobs_present
                    );
                }
            }
        }
        Cmd::ImportTar(a) => {
            let mut s = open(&g)?;
            let p = CliProgress::new(g.quiet);
            let opts = CaptureOptions { name: a.name, description: a.description, ..Default::default() };
            let from_stdin = a.source.as_os_str() == "-";
            let source = if from_stdin { "standard input".to_string() } else { a.source.display().to_string() };
            let r = if from_stdin {
                let mut input = std::io::BufReader::with_capacity(256 << 10, std::io::stdin().lock());
                slipway_store::import_tar(&mut s, &mut input, &opts, &p)
            } else {
                let f = std::fs::File::open(&a.source).with_context(|| format!("opening {}", a.source.display()))?;
                let mut input = std::io::BufReader::with_capacity(256 << 10, f);
                slipway_store::import_tar(&mut s, &mut input, &opts, &p)
            };
            let r = r.with_context(|| format!("importing {source}"))?;
            print_capture("imported", &source, &r, a.json);
        }
        Cmd::Man { dir } => man(&dir)?,
    }
    Ok(0)
}

/// `export --tar FILE|-`: the archive goes to FILE (removed again if the
/// export fails) or to standard output (the summary then goes to standard
/// error, and --json is refused).
fn export_tar(
    s: &Store,
    img: &ImageVersion,
    file: &std::path::Path,
    as_json: bool,
    quiet: bool,
    p: &CliProgress,
) -> anyhow::Result<()> {
    let to_stdout = file.as_os_str() == "-";
    if to_stdout && as_json {
        bail!("--json cannot be used with --tar - (the archive goes to standard output)");
    }
    let r = if to_stdout {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        slipway_store::export_tar(s, img, &mut out, p)?
    } else {
        let mut f = std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?;
        match slipway_store::export_tar(s, img, &mut f, p) {
            Ok(r) => r,
            Err(e) => {
                drop(f);
                let _ = std::fs::remove_file(file);
                return Err(e.context(format!("writing {}", file.display())));
            }
        }
    };
    if as_json {
        print_json(&json!({"schema": "slipway.export-tar/1", "archive": file.to_string_lossy(), "report": r}));
        return Ok(());
    }
    let line = format!(
        "exported {} to {}: {} entries ({} files, {} dirs, {} hard links, {} other), {} of file data, {} archive, {:.1} s",
        r.image,
        if to_stdout { "standard output".into() } else { file.display().to_string() },
        r.entries,
        r.files,
        r.dirs,
        r.hardlinks,
        r.others,
        bytes(r.bytes),
        bytes(r.archive_bytes),
        r.seconds
    );
    if !to_stdout {
        println!("{line}");
    } else if !quiet {
        eprintln!("{line}");
    }
    if r.sparse_files > 0 {
        use slipway_store::Progress;
        p.note(&format!("{} sparse files were written in full (tar export does not keep holes)", r.sparse_files));
    }
    Ok(())
}

/// The result of `capture` and `import-tar`.
fn print_capture(verb: &str, source: &str, r: &slipway_store::CaptureReport, as_json: bool) {
    if as_json {
        print_json(&json!({"schema": "slipway.capture/1", "report": r}));
        return;
    }
    let st = &r.stats;
    println!(
        "{verb} {} from {source}: {} files, {} dirs, {} hard links, {} logical, {} new in store, {:.1} s",
        r.image,
        st.files,
        st.dirs,
        st.hardlinks,
        bytes(st.logical_bytes),
        bytes(st.new_bytes),
        r.seconds
    );
    if r.files_reused > 0 {
        println!(
            "read {} files ({}); {} unchanged files taken from the previous version without reading",
            r.files_read,
            bytes(r.bytes_read),
            r.files_reused
        );
    }
}

fn os_bytes(s: &std::ffi::OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    s.as_bytes()
}

pub(crate) fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
}

/// --store, else $SLIPWAY_STORE (clap reads it), else the XDG data directory.
pub(crate) fn store_path(g: &Global) -> anyhow::Result<PathBuf> {
    if let Some(p) = &g.store {
        return Ok(p.clone());
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("slipway/store"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/slipway/store")),
        None => bail!("no store given: pass --store DIR or set SLIPWAY_STORE"),
    }
}

pub(crate) fn open(g: &Global) -> anyhow::Result<Store> {
    Store::open(&store_path(g)?)
}

fn resolve(s: &mut Store, spec: &str) -> anyhow::Result<ImageVersion> {
    s.open_image(&spec.parse::<ImageSpec>()?)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn pack_bytes(s: &Store) -> u64 {
    s.index().packs().iter().filter_map(|p| std::fs::metadata(s.pack_path(p)).ok()).map(|m| m.len()).sum()
}

fn images(s: &Store, as_json: bool) -> anyhow::Result<()> {
    let imgs = s.images()?;
    let total_logical: u64 = imgs.iter().map(|i| i.record.stats.logical_bytes).sum();
    let packs = pack_bytes(s);
    if as_json {
        let list: Vec<_> = imgs
            .iter()
            .map(|i| {
                let st = &i.record.stats;
                json!({
                    "image": i.label(), "name": i.record.name, "version": i.record.version,
                    "record": i.record_id, "created": rfc3339(i.record.created),
                    "description": i.record.description,
                    "files": st.files, "hardlinks": st.hardlinks, "dirs": st.dirs,
                    "logical_bytes": st.logical_bytes, "unique_bytes": st.unique_bytes,
                    "stored_bytes": st.stored_bytes, "new_bytes": st.new_bytes,
                    "dedup_ratio": ratio(st.data_bytes, st.unique_bytes),
                })
            })
            .collect();
        print_json(&json!({
            "schema": "slipway.images/1", "images": list,
            "store": {"path": s.path().to_string_lossy(), "logical_bytes": total_logical, "pack_bytes": packs,
                      "ratio": ratio(total_logical, packs)}
        }));
        return Ok(());
    }
    if imgs.is_empty() {
        println!("no images yet; capture one with `slipway capture DIR --name NAME`");
        return Ok(());
    }
    println!("{:<24} {:>8} {:>10} {:>10} {:>10} {:>7}  created", "IMAGE", "FILES", "LOGICAL", "STORED", "NEW", "DEDUP");
    for i in &imgs {
        let st = &i.record.stats;
        println!(
            "{:<24} {:>8} {:>10} {:>10} {:>10} {:>6.2}x  {}",
            i.label(),
            st.files,
            bytes(st.logical_bytes),
            bytes(st.stored_bytes),
            bytes(st.new_bytes),
            ratio(st.data_bytes, st.unique_bytes),
            rfc3339(i.record.created)
        );
    }
    println!(
        "store: {} logical in {} image versions held in {} of packs ({:.2}x)",
        bytes(total_logical),
        imgs.len(),
        bytes(packs),
        ratio(total_logical, packs)
    );
    Ok(())
}

fn store_info(s: &Store, as_json: bool) -> anyhow::Result<()> {
    let packs = pack_bytes(s);
    let n = s.images()?.len();
    if as_json {
        print_json(&json!({
            "schema": "slipway.store-info/1", "path": s.path().to_string_lossy(), "config": s.config(),
            "packs": s.index().packs().len(), "blobs": s.index().len(), "pack_bytes": packs, "image_versions": n,
        }));
    } else {
        let c = s.config();
        println!("store     {}", s.path().display());
        println!("format    {} version {} (id {})", c.format, c.version, c.id);
        println!(
            "chunking  {} min {} avg {} max {}",
            c.chunking.algorithm, c.chunking.min_size, c.chunking.avg_size, c.chunking.max_size
        );
        println!("packing   zstd level {}, frames of {}", c.packing.zstd_level, bytes(c.packing.frame_size as u64));
        println!(
            "contents  {n} image versions, {} blobs in {} packs, {}",
            s.index().len(),
            s.index().packs().len(),
            bytes(packs)
        );
    }
    Ok(())
}

fn info(img: &ImageVersion, as_json: bool) {
    let r = &img.record;
    if as_json {
        print_json(&json!({"schema": "slipway.info/1", "image": img.label(), "record_id": img.record_id, "record": r}));
        return;
    }
    let st = &r.stats;
    println!("image        {}", img.label());
    println!("record       {}", img.record_id);
    if !r.description.is_empty() {
        println!("description  {}", r.description);
    }
    println!("created      {}", rfc3339(r.created));
    println!("parent       {}", r.parent.map(|p| p.to_hex()).unwrap_or_else(|| "(none)".into()));
    println!("root tree    {}", r.root.tree);
    for (i, p) in r.packages.iter().enumerate() {
        let label = if i == 0 { "packages" } else { "" };
        println!("{label:<12} {} {} ({})", p.id, p.version, p.kind);
    }
    println!(
        "entries      {} files, {} hard links, {} dirs, {} symlinks, {} devices/FIFOs",
        st.files, st.hardlinks, st.dirs, st.symlinks, st.specials
    );
    println!("logical      {} ({} of data, holes left out)", bytes(st.logical_bytes), bytes(st.data_bytes));
    println!(
        "unique       {} in {} chunks (dedup {:.2}x)",
        bytes(st.unique_bytes),
        st.chunks,
        ratio(st.data_bytes, st.unique_bytes)
    );
    println!("stored       {} (this image's share of the packs)", bytes(st.stored_bytes));
    println!("new          {} added to the store by this capture", bytes(st.new_bytes));
}

fn type_char(k: &EntryKind) -> char {
    match k {
        EntryKind::Dir { .. } => 'd',
        EntryKind::File { .. } => '-',
        EntryKind::Symlink { .. } => 'l',
        EntryKind::CharDev { .. } => 'c',
        EntryKind::BlockDev { .. } => 'b',
        EntryKind::Fifo => 'p',
    }
}

fn entry_json(path: &str, e: &TreeEntry) -> serde_json::Value {
    let m = &e.meta;
    let mut v = json!({
        "path": path, "type": e.kind.type_name(), "mode": format!("{:04o}", m.mode),
        "uid": m.uid, "gid": m.gid, "mtime": {"sec": m.mtime.sec, "nsec": m.mtime.nsec},
        "xattrs": m.xattrs.iter().map(|x| slipway_fstree::display_bytes(&x.name)).collect::<Vec<_>>(),
    });
    if let Some(h) = e.hardlink {
        v["hardlink_group"] = json!(h);
    }
    match &e.kind {
        EntryKind::File { size, chunks, extents } => {
            v["size"] = json!(size);
            v["chunks"] = json!(chunks.len());
            if let Some(x) = extents {
                v["sparse_extents"] = json!(x);
            }
        }
        EntryKind::Symlink { target } => v["target"] = json!(slipway_fstree::display_bytes(target)),
        EntryKind::CharDev { rdev } | EntryKind::BlockDev { rdev } => {
            v["major"] = json!(rustix::fs::major(*rdev));
            v["minor"] = json!(rustix::fs::minor(*rdev));
        }
        _ => {}
    }
    v
}

fn ls(s: &Store, img: &ImageVersion, path: &[u8], recursive: bool, as_json: bool) -> anyhow::Result<()> {
    let mut r = s.reader();
    let found = lookup(&mut r, img, path)?;
    let base = slipway_store::split_path(path)?.iter().map(|n| format!("/{n}")).collect::<String>();
    let mut out: Vec<(String, TreeEntry)> = Vec::new();
    let tree = match found {
        Found::Root => Some(img.record.root.tree),
        Found::Entry(e) => match &e.kind {
            EntryKind::Dir { tree } => Some(*tree),
            _ => {
                out.push((base.clone(), e));
                None
            }
        },
    };
    if let Some(t) = tree {
        let mut stack = vec![(base.clone(), t)];
        while let Some((dir, t)) = stack.pop() {
            let tree = r.tree(&t).with_context(|| format!("{}: reading directory {dir}/", img.label()))?;
            let mut subdirs = Vec::new();
            for e in tree.entries {
                let p = format!("{dir}/{}", e.name);
                if let (true, EntryKind::Dir { tree }) = (recursive, &e.kind) {
                    subdirs.push((p.clone(), *tree));
                }
                out.push((p, e));
            }
            stack.extend(subdirs.into_iter().rev());
        }
    }
    if as_json {
        let list: Vec<_> = out.iter().map(|(p, e)| entry_json(p, e)).collect();
        print_json(&json!({"schema": "slipway.ls/1", "image": img.label(), "entries": list}));
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for (p, e) in &out {
        let m = &e.meta;
        let size = match &e.kind {
            EntryKind::File { size, .. } => size.to_string(),
            EntryKind::CharDev { rdev } | EntryKind::BlockDev { rdev } => {
                format!("{},{}", rustix::fs::major(*rdev), rustix::fs::minor(*rdev))
            }
            _ => "0".into(),
        };
        let shown = if recursive { p.as_str() } else { p.rsplit('/').next().unwrap_or(p) };
        let link = match &e.kind {
            EntryKind::Symlink { target } => format!(" -> {}", slipway_fstree::display_bytes(target)),
            _ => String::new(),
        };
        let plus = if m.xattrs.is_empty() { ' ' } else { '+' };
        writeln!(
            w,
            "{}{plus} {:>5} {:>5} {:>10} {} {shown}{link}",
            mode_string(type_char(&e.kind), m.mode),
            m.uid,
            m.gid,
            size,
            rfc3339(m.mtime.sec)
        )?;
    }
    w.flush()?;
    Ok(())
}

fn man(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    fn walk(cmd: &clap::Command, file: &str, dir: &std::path::Path) -> anyhow::Result<()> {
        // The page's title is the file name; the synopsis uses the full
        // command line ("slipway store init"), which build() filled in.
        let page = cmd.clone().name(file.to_string());
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        std::fs::write(dir.join(format!("{file}.1")), buf)?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
            walk(sub, &format!("{file}-{}", sub.get_name()), dir)?;
        }
        Ok(())
    }
    let mut root = Cli::command();
    root.build(); // propagates global options (--store, --quiet) to every subcommand
    walk(&root, "slipway", dir)
}
