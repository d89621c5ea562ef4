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
    #[serde(serialize_with = "crate::serde_path::path")]
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
    links: HashMap<u64, (Vec<EntryName>, EntryName, TreeEntry)>,
    report: ApplyReport,
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
    };
    let mut comps = Vec::new();
    apply_dir(&mut cx, t.root(), &image.record.root.tree, &mut comps)
        .with_context(|| format!("applying image {} to {}", image.label(), target.display()))?;
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
        format!("reading directory {at}")
    })?;
    for e in &tree.entries {
        let r = apply_entry(cx, dir, e, comps);
        // A directory's own errors already name their path, and deeper ones
        // name the entry that failed: add the path once, at the leaf.
        if matches!(e.kind, EntryKind::Dir { .. }) {
            r?;
        } else {
            r.with_context(|| show(comps, &e.name))?;
        }
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
        if let Some((from_comps, from_name, first)) = cx.links.get(&g) {
            if first.kind != e.kind || first.meta != e.meta {
                anyhow::bail!(
                    "hard-link group {g} mixes entries of different content or metadata ({} and this one): \
                     the tree is damaged or forged",
                    show(from_comps, from_name)
                );
            }
            let from = cx.target.open_dir(from_comps)?;
            dir.hardlink(&e.name, &from, from_name)?;
            cx.report.hardlinks += 1;
            return Ok(());
        }
        cx.links.insert(g, (comps.clone(), e.name.clone(), e.clone()));
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
                cx.reader.with_chunk(c, |d| w.write_all(d))?.context("writing")?;
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
                    .with_chunk(c, |mut d| -> std::io::Result<()> {
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

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// A file entry as an attacker would write it, bypassing `EntryName`.
    fn file_entry(name: &[u8], chunks: &[(BlobId, u32)], size: u64, hardlink: Option<u64>) -> Value {
        let mut m = vec![
            (text("name"), Value::Bytes(name.to_vec())),
            (text("type"), text("file")),
            (text("mode"), Value::Integer(0o644.into())),
            (text("uid"), Value::Integer(0.into())),
            (text("gid"), Value::Integer(0.into())),
            (text("mtime"), Value::Array(vec![Value::Integer(0.into()), Value::Integer(0.into())])),
        ];
        if let Some(h) = hardlink {
            m.push((text("hardlink"), Value::Integer(h.into())));
        }
        m.push((text("size"), Value::Integer(size.into())));
        let cs = chunks
            .iter()
            .map(|(id, len)| Value::Array(vec![Value::Bytes(id.0.to_vec()), Value::Integer((*len).into())]));
        m.push((text("chunks"), Value::Array(cs.collect())));
        Value::Map(m)
    }

    fn tree_bytes(entries: Vec<Value>) -> Vec<u8> {
        let tree = Value::Map(vec![(text("v"), Value::Integer(1.into())), (text("entries"), Value::Array(entries))]);
        let mut out = Vec::new();
        ciborium::into_writer(&tree, &mut out).unwrap();
        out
    }

    /// A store holding one image `evil@1` whose root tree is `tree` and
    /// whose data blobs are `data`.
    fn store_with_forged_image(dir: &Path, data: &[&[u8]], tree: Vec<u8>) -> (Store, ImageVersion) {
        let mut store = Store::init(&dir.join("store")).unwrap();
        let _lock = store.lock(&|_| {}).unwrap();
        let tree_id = BlobId::of_tree(&tree);
        let mut p = Packer::new(&store);
        for d in data {
            p.add(store.index(), BlobId::of(d), BlobKind::Data, d).unwrap();
        }
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
            packages: vec![],
        };
        store.commit_image(&record).unwrap();
        let img = store.resolve(&"evil".parse().unwrap()).unwrap();
        (store, img)
    }

    fn apply_err(store: &Store, img: &ImageVersion, target: &Path) -> String {
        let opts = ApplyOptions { force: false, restore_owner: false };
        format!("{:#}", apply(store, img, target, opts, &NoProgress).unwrap_err())
    }

    #[test]
    fn forged_tree_with_climbing_or_absolute_names_is_refused_and_nothing_escapes() {
        let data: &[u8] = b"owned\n";
        for name in [&b"../escaped"[..], b"/tmp/escaped-abs", b"..", b"a\0b", b"sub/../../escaped"] {
            let t = tempfile::tempdir().unwrap();
            let tree = tree_bytes(vec![file_entry(name, &[(BlobId::of(data), 6)], 6, None)]);
            let (mut store, img) = store_with_forged_image(t.path(), &[data], tree);
            let target = t.path().join("deep/target");
            let msg = apply_err(&store, &img, &target);
            assert!(msg.contains("evil@1") && msg.contains("invalid tree"), "{msg}");
            assert!(!t.path().join("deep/escaped").exists() && !t.path().join("escaped").exists());
            assert!(!Path::new("/tmp/escaped-abs").exists());
            assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0, "nothing written for {name:?}");
            let rep = crate::verify(&mut store, &NoProgress).unwrap();
            assert!(!rep.ok(), "verify must reject a forged tree");
        }
    }

    #[test]
    fn forged_chunk_lengths_are_refused_by_apply_and_verify() {
        // Lengths swapped: the sum matches the size, each one is wrong.
        let (a, b): (&[u8], &[u8]) = (b"aaaaa", b"bbb");
        let tree = tree_bytes(vec![file_entry(b"f", &[(BlobId::of(a), 3), (BlobId::of(b), 5)], 8, None)]);
        let t = tempfile::tempdir().unwrap();
        let (mut store, img) = store_with_forged_image(t.path(), &[a, b], tree);
        let msg = apply_err(&store, &img, &t.path().join("target"));
        assert!(msg.contains("/f") && msg.contains("damaged") && msg.contains("3 bytes"), "{msg}");
        let rep = crate::verify(&mut store, &NoProgress).unwrap();
        assert!(rep.damaged_uses.iter().any(|u| u.path == "/f"), "{rep:?}");
    }

    #[test]
    fn forged_hard_link_group_with_different_contents_is_refused() {
        let (a, b): (&[u8], &[u8]) = (b"first", b"other");
        let tree = tree_bytes(vec![
            file_entry(b"x", &[(BlobId::of(a), 5)], 5, Some(0)),
            file_entry(b"y", &[(BlobId::of(b), 5)], 5, Some(0)),
        ]);
        let t = tempfile::tempdir().unwrap();
        let (mut store, img) = store_with_forged_image(t.path(), &[a, b], tree);
        let msg = apply_err(&store, &img, &t.path().join("target"));
        assert!(msg.contains("hard-link group 0") && msg.contains("/y"), "{msg}");
        let rep = crate::verify(&mut store, &NoProgress).unwrap();
        assert!(rep.damaged_uses.iter().any(|u| u.path == "/y" && u.problem.contains("hard-link group 0")), "{rep:?}");
    }
}
