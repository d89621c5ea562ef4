//! Apply: an image version becomes a directory tree, written only inside the
//! target (see [`slipway_fstree::Target`] for how that is enforced).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use slipway_fstree::{ApplyOptions, DirHandle, EntryName, SpecialKind, Target};

use crate::id::BlobId;
use crate::progress::Progress;
use crate::store::{BlobReader, ImageVersion, Store};
use crate::tree::{ChunkRef, EntryKind, TreeEntry};

/// The outcome of an apply.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ApplyReport {
    pub image: String,
    pub target: PathBuf,
    pub dirs: u64,
    pub files: u64,
    pub hardlinks: u64,
    pub others: u64,
    pub bytes: u64,
    pub seconds: f64,
}

struct Ctx<'a> {
    reader: BlobReader<'a>,
    target: &'a Target,
    progress: &'a dyn Progress,
    /// First path (directory components, name) written for each hard-link group.
    links: HashMap<u64, (Vec<EntryName>, EntryName)>,
    report: ApplyReport,
    label: String,
}

/// Writes `image` into `target`.
pub fn apply(
    store: &Store,
    image: &ImageVersion,
    target: &Path,
    opts: ApplyOptions,
    progress: &dyn Progress,
) -> anyhow::Result<ApplyReport> {
    let started = Instant::now();
    let root_meta = image.record.root.metadata().map_err(|e| anyhow::anyhow!("image {}: {e}", image.label()))?;
    let t = Target::open(target, opts)?;
    progress.phase("applying", Some(image.record.stats.data_bytes));
    let mut cx = Ctx {
        reader: store.reader(),
        target: &t,
        progress,
        links: HashMap::new(),
        report: ApplyReport { image: image.label(), target: target.to_owned(), ..Default::default() },
        label: image.label(),
    };
    let mut comps = Vec::new();
    apply_dir(&mut cx, t.root(), &image.record.root.tree, &mut comps)?;
    let mut report = std::mem::take(&mut cx.report);
    drop(cx);
    let root = t.root();
    // The root's own metadata last, after every child is in.
    let fd = t.open_dir(&[])?;
    fd.finish(&root_meta).with_context(|| format!("setting metadata of {}", root.path().display()))?;
    progress.finish();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn show(comps: &[EntryName], name: &EntryName) -> String {
    let mut s = String::new();
    for c in comps.iter().chain(std::iter::once(name)) {
        s.push('/');
        s.push_str(&c.to_string());
    }
    s
}

fn apply_dir(cx: &mut Ctx<'_>, dir: &DirHandle, tree_id: &BlobId, comps: &mut Vec<EntryName>) -> anyhow::Result<()> {
    let tree = cx.reader.tree(tree_id).with_context(|| {
        let at =
            if comps.is_empty() { "/".to_string() } else { show(&comps[..comps.len() - 1], &comps[comps.len() - 1]) };
        format!("image {}: reading directory {at}", cx.label)
    })?;
    for e in &tree.entries {
        apply_entry(cx, dir, e, comps).with_context(|| format!("image {}: {}", cx.label, show(comps, &e.name)))?;
    }
    Ok(())
}

fn apply_entry(cx: &mut Ctx<'_>, dir: &DirHandle, e: &TreeEntry, comps: &mut Vec<EntryName>) -> anyhow::Result<()> {
    if let EntryKind::Dir { tree } = &e.kind {
        let child = dir.create_dir(&e.name)?;
        comps.push(e.name.clone());
        let r = apply_dir(cx, &child, tree, comps);
        comps.pop();
        r?;
        child.finish(&e.meta)?;
        cx.report.dirs += 1;
        return Ok(());
    }
    if let Some(g) = e.hardlink {
        if let Some((from_comps, from_name)) = cx.links.get(&g) {
            let from = cx.target.open_dir(from_comps)?;
            dir.hardlink(&e.name, &from, from_name)?;
            cx.report.hardlinks += 1;
            return Ok(());
        }
        cx.links.insert(g, (comps.clone(), e.name.clone()));
    }
    match &e.kind {
        EntryKind::File { size, chunks, extents } => {
            let mut f = dir.create_file(&e.name)?;
            write_content(cx, &mut f, *size, chunks, extents.as_deref())?;
            dir.finish_file(&e.name, &f, &e.meta)?;
            cx.report.files += 1;
        }
        EntryKind::Symlink { target } => {
            dir.symlink(&e.name, target, &e.meta)?;
            cx.report.others += 1;
        }
        EntryKind::CharDev { rdev } => {
            dir.special(&e.name, SpecialKind::CharDev(*rdev), &e.meta)?;
            cx.report.others += 1;
        }
        EntryKind::BlockDev { rdev } => {
            dir.special(&e.name, SpecialKind::BlockDev(*rdev), &e.meta)?;
            cx.report.others += 1;
        }
        EntryKind::Fifo => {
            dir.special(&e.name, SpecialKind::Fifo, &e.meta)?;
            cx.report.others += 1;
        }
        EntryKind::Dir { .. } => unreachable!("handled above"),
    }
    Ok(())
}

fn write_content(
    cx: &mut Ctx<'_>,
    f: &mut std::fs::File,
    size: u64,
    chunks: &[ChunkRef],
    extents: Option<&[(u64, u64)]>,
) -> anyhow::Result<()> {
    match extents {
        None => {
            let mut w = std::io::BufWriter::with_capacity(256 << 10, &mut *f);
            for c in chunks {
                cx.reader.with_blob(&c.id, |d| w.write_all(d))?.context("writing")?;
                cx.progress.advance(c.len as u64);
            }
            w.flush().context("writing")?;
        }
        Some(extents) => {
            // Data goes to the extents in order; the gaps stay holes.
            let mut ext = extents.iter().copied();
            let (mut off, mut left) = ext.next().unwrap_or((0, 0));
            for c in chunks {
                cx.reader
                    .with_blob(&c.id, |mut d| -> std::io::Result<()> {
                        while !d.is_empty() {
                            while left == 0 {
                                (off, left) = ext
                                    .next()
                                    .ok_or_else(|| std::io::Error::other("content longer than its extents"))?;
                            }
                            let n = d.len().min(left as usize);
                            f.write_all_at(&d[..n], off)?;
                            off += n as u64;
                            left -= n as u64;
                            d = &d[n..];
                        }
                        Ok(())
                    })?
                    .context("writing")?;
                cx.progress.advance(c.len as u64);
            }
            f.set_len(size).context("setting size")?;
        }
    }
    cx.report.bytes += size;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::BlobKind;
    use crate::packer::Packer;
    use crate::record::{ImageRecord, ImageStats, RootDir, RECORD_FORMAT, RECORD_VERSION};
    use crate::NoProgress;
    use ciborium::Value;

    /// A tree blob as an attacker would write it, bypassing `EntryName`.
    fn forged_tree(name: &[u8], chunk: BlobId, len: u32) -> Vec<u8> {
        let entry = Value::Map(vec![
            (Value::Text("name".into()), Value::Bytes(name.to_vec())),
            (Value::Text("type".into()), Value::Text("file".into())),
            (Value::Text("mode".into()), Value::Integer(0o644.into())),
            (Value::Text("uid".into()), Value::Integer(0.into())),
            (Value::Text("gid".into()), Value::Integer(0.into())),
            (Value::Text("mtime".into()), Value::Array(vec![Value::Integer(0.into()), Value::Integer(0.into())])),
            (Value::Text("size".into()), Value::Integer(len.into())),
            (
                Value::Text("chunks".into()),
                Value::Array(vec![Value::Array(vec![Value::Bytes(chunk.0.to_vec()), Value::Integer(len.into())])]),
            ),
        ]);
        let tree = Value::Map(vec![
            (Value::Text("v".into()), Value::Integer(1.into())),
            (Value::Text("entries".into()), Value::Array(vec![entry])),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&tree, &mut out).unwrap();
        out
    }

    fn store_with_forged_image(dir: &Path, name: &[u8]) -> (Store, ImageVersion) {
        let mut store = Store::init(&dir.join("store")).unwrap();
        let _lock = store.lock(&|_| {}).unwrap();
        let data = b"owned\n";
        let chunk = BlobId::of(data);
        let tree = forged_tree(name, chunk, data.len() as u32);
        let tree_id = BlobId::of(&tree);
        let mut p = Packer::new(&store);
        p.add(store.index(), chunk, BlobKind::Data, data).unwrap();
        p.add(store.index(), tree_id, BlobKind::Tree, &tree).unwrap();
        p.finish().unwrap();
        store.reload_index().unwrap();
        let meta = slipway_fstree::Metadata { mode: 0o755, ..Default::default() };
        let record = ImageRecord {
            format: RECORD_FORMAT.into(),
            format_version: RECORD_VERSION,
            name: "evil".into(),
            version: 1,
            description: String::new(),
            created: 0,
            parent: None,
            root: RootDir::new(&meta, tree_id),
            stats: ImageStats::default(),
        };
        store.commit_image(&record).unwrap();
        let img = store.resolve(&"evil".parse().unwrap()).unwrap();
        (store, img)
    }

    #[test]
    fn forged_tree_with_climbing_or_absolute_names_is_refused_and_nothing_escapes() {
        for name in [&b"../escaped"[..], b"/tmp/escaped-abs", b"..", b"a\0b", b"sub/../../escaped"] {
            let t = tempfile::tempdir().unwrap();
            let (store, img) = store_with_forged_image(t.path(), name);
            let target = t.path().join("deep/target");
            let opts = ApplyOptions { force: false, restore_owner: false };
            let err = apply(&store, &img, &target, opts, &NoProgress).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains("evil@1") && msg.contains("invalid tree"), "{msg}");
            assert!(!t.path().join("deep/escaped").exists() && !t.path().join("escaped").exists());
            assert!(!Path::new("/tmp/escaped-abs").exists());
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "nothing written for {name:?}");
            // verify reports the image as damaged too.
            let rep = crate::verify(&store, &NoProgress).unwrap();
            assert!(!rep.ok(), "verify must reject a forged tree");
        }
    }
}
