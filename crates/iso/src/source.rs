//! Making a [`Tree`] from a directory on the host.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use slipway_fstree::{scan, Node, NodeKind, ScanOptions, ScanStats};

use crate::model::{Content, Entry, Kind, Meta, Tree};

/// Scans `root` (never following symlinks) into a tree whose files are
/// read from the host when the image is written.
pub fn tree_from_dir(root: &Path) -> anyhow::Result<(Tree, ScanStats)> {
    let (meta, nodes, stats) =
        scan(root, &ScanOptions::default()).with_context(|| format!("scanning {}", root.display()))?;
    let entries = convert(root, nodes);
    Ok((Tree { root: Meta::from(&meta), entries }, stats))
}

fn convert(dir: &Path, nodes: Vec<Node>) -> Vec<Entry> {
    nodes
        .into_iter()
        .map(|n| {
            let path = dir.join(n.name.as_os_str());
            let kind = match n.kind {
                NodeKind::Dir(children) => Kind::Dir(convert(&path, children)),
                NodeKind::File { size, .. } => Kind::File { size, content: Content::Path(Arc::from(path.as_path())) },
                NodeKind::Symlink(t) => Kind::Symlink(t),
                NodeKind::CharDev(r) => Kind::CharDev(r),
                NodeKind::BlockDev(r) => Kind::BlockDev(r),
                NodeKind::Fifo => Kind::Fifo,
            };
            Entry { name: n.name.into_bytes(), meta: Meta::from(&n.meta), kind, link: n.hardlink }
        })
        .collect()
}
