//! Reading a directory into a tree of [`Node`]s with full metadata.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::SeekFrom;

use crate::meta::{Metadata, Timestamp, Xattr};
use crate::name::{display_bytes, EntryName};

/// What the scan should do at the edges.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Do not descend into directories on another filesystem (mount points
    /// are kept as empty directories).
    pub one_file_system: bool,
}

/// An entry found by [`scan`].
#[derive(Clone, Debug)]
pub struct Node {
    pub name: EntryName,
    pub meta: Metadata,
    pub kind: NodeKind,
    /// Hard-link group: entries of the scanned tree that share an inode share
    /// this number. Numbers count up from 0 in scan order; `None` for entries
    /// with a single link inside the tree.
    pub hardlink: Option<u64>,
    /// Where the entry came from, for incremental captures and messages.
    pub dev: u64,
    pub ino: u64,
    pub ctime: Timestamp,
}

/// The kind of an entry, with what only that kind has.
#[derive(Clone, Debug)]
pub enum NodeKind {
    Dir(Vec<Node>),
    /// A regular file; `sparse` is set when it has fewer blocks than its size
    /// needs, so the reader should look for holes.
    File {
        size: u64,
        sparse: bool,
    },
    Symlink(Vec<u8>),
    CharDev(u64),
    BlockDev(u64),
    Fifo,
}

/// Totals of a scan.
#[derive(Clone, Debug, Default)]
pub struct ScanStats {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    pub specials: u64,
    /// Sum of the sizes of regular files (apparent size, holes included).
    pub file_bytes: u64,
    /// Entries left out, each with the reason (sockets, other filesystems).
    pub skipped: Vec<(PathBuf, &'static str)>,
}

/// A failure while reading the source tree, naming the path.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct ScanError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ScanError + 'a {
    move |source| ScanError { action, path: path.to_owned(), source }
}

/// Reads the tree at `root`. Returns the root directory's own metadata, its
/// children (sorted by name bytes, so the result is deterministic) and totals.
pub fn scan(root: &Path, opts: &ScanOptions) -> Result<(Metadata, Vec<Node>, ScanStats), ScanError> {
    let md = fs::symlink_metadata(root).map_err(err("reading", root))?;
    if !md.is_dir() {
        return Err(ScanError {
            action: "capturing",
            path: root.to_owned(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "the source must be a directory"),
        });
    }
    let mut stats = ScanStats::default();
    let root_meta = metadata_of(root, &md)?;
    let mut links: HashMap<(u64, u64), u32> = HashMap::new();
    let mut children = scan_dir(root, md.dev(), opts, &mut stats, &mut links)?;
    // Number the hard-link groups that have more than one member in the tree.
    let mut groups: HashMap<(u64, u64), u64> = HashMap::new();
    number_links(&mut children, &links, &mut groups);
    Ok((root_meta, children, stats))
}

fn number_links(nodes: &mut [Node], counts: &HashMap<(u64, u64), u32>, groups: &mut HashMap<(u64, u64), u64>) {
    for n in nodes {
        match &mut n.kind {
            NodeKind::Dir(children) => number_links(children, counts, groups),
            _ => {
                let key = (n.dev, n.ino);
                if counts.get(&key).copied().unwrap_or(0) > 1 {
                    let next = groups.len() as u64;
                    n.hardlink = Some(*groups.entry(key).or_insert(next));
                }
            }
        }
    }
}

fn scan_dir(
    dir: &Path,
    root_dev: u64,
    opts: &ScanOptions,
    stats: &mut ScanStats,
    links: &mut HashMap<(u64, u64), u32>,
) -> Result<Vec<Node>, ScanError> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in fs::read_dir(dir).map_err(err("listing directory", dir))? {
        let e = e.map_err(err("listing directory", dir))?;
        names.push(e.file_name().as_bytes().to_vec());
    }
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for raw in names {
        let path = dir.join(OsStr::from_bytes(&raw));
        let name = EntryName::new(raw).map_err(|e| ScanError {
            action: "reading name of",
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        let md = fs::symlink_metadata(&path).map_err(err("reading metadata of", &path))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            stats.dirs += 1;
            if opts.one_file_system && md.dev() != root_dev {
                stats.skipped.push((path.clone(), "on another filesystem (kept as an empty directory)"));
                NodeKind::Dir(Vec::new())
            } else {
                NodeKind::Dir(scan_dir(&path, root_dev, opts, stats, links)?)
            }
        } else if ft.is_file() {
            stats.files += 1;
            stats.file_bytes += md.size();
            NodeKind::File { size: md.size(), sparse: md.blocks().saturating_mul(512) < md.size() }
        } else if ft.is_symlink() {
            stats.symlinks += 1;
            let t = fs::read_link(&path).map_err(err("reading symlink", &path))?;
            NodeKind::Symlink(t.as_os_str().as_bytes().to_vec())
        } else if ft.is_char_device() {
            stats.specials += 1;
            NodeKind::CharDev(md.rdev())
        } else if ft.is_block_device() {
            stats.specials += 1;
            NodeKind::BlockDev(md.rdev())
        } else if ft.is_fifo() {
            stats.specials += 1;
            NodeKind::Fifo
        } else {
            stats.skipped.push((path.clone(), "a socket (recreated by the program that owns it)"));
            continue;
        };
        if !ft.is_dir() && md.nlink() > 1 {
            *links.entry((md.dev(), md.ino())).or_insert(0) += 1;
        }
        let meta = metadata_of(&path, &md)?;
        out.push(Node {
            name,
            meta,
            kind,
            hardlink: None,
            dev: md.dev(),
            ino: md.ino(),
            ctime: Timestamp { sec: md.ctime(), nsec: md.ctime_nsec() as u32 },
        });
    }
    Ok(out)
}

fn metadata_of(path: &Path, md: &fs::Metadata) -> Result<Metadata, ScanError> {
    Ok(Metadata {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime: Timestamp { sec: md.mtime(), nsec: md.mtime_nsec() as u32 },
        xattrs: read_xattrs(path).map_err(err("reading extended attributes of", path))?,
    })
}

/// Every xattr of `path` (not following a final symlink), sorted by name.
fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let mut list = vec![0u8; 1024];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path)?;
                list.resize(need.max(list.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in list[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name_os = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, name_os, &mut value[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr_query(path, name_os)?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!("xattr {}: {e}", display_bytes(name)),
                    ))
                }
            }
        };
        if len == usize::MAX {
            continue; // removed between list and get
        }
        value.truncate(len);
        out.push(Xattr { name: name.to_vec(), value });
    }
    out.sort();
    Ok(out)
}

/// Opens a regular file of the source tree for reading, refusing to follow a
/// symlink that replaced it since the scan, and without touching its atime
/// where the caller may do so.
pub fn open_source_file(path: &Path) -> io::Result<File> {
    let open = |flags: i32| fs::OpenOptions::new().read(true).custom_flags(libc_nofollow() | flags).open(path);
    match open(libc_noatime()) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => open(0),
        r => r,
    }
}

fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn libc_noatime() -> i32 {
    rustix::fs::OFlags::NOATIME.bits() as i32
}

/// The data regions of an open file as `(offset, length)` pairs, found with
/// `SEEK_DATA`/`SEEK_HOLE`. A file without holes gives one region covering it.
pub fn data_extents(file: &File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break, // only a hole is left
            Err(rustix::io::Errno::INVAL) => return Ok(vec![(0, size)]), // no SEEK_DATA support
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = rustix::fs::seek(file, SeekFrom::Hole(start))?.min(size);
        out.push((start, end - start));
        pos = end;
    }
    rustix::fs::seek(file, SeekFrom::Start(0))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn finds_holes_in_a_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let mut f = File::create(&p).unwrap();
        f.seek(io::SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        f.set_len(4 << 20).unwrap();
        drop(f);
        let f = File::open(&p).unwrap();
        let ext = data_extents(&f, 4 << 20).unwrap();
        // Filesystems may round the data region to their block size.
        assert_eq!(ext.len(), 1, "{ext:?}");
        assert!(ext[0].0 <= 1 << 20 && ext[0].0 + ext[0].1 >= (1 << 20) + 4096);
        assert!(ext[0].1 < 1 << 20);
    }

    #[test]
    fn numbers_hard_link_groups_and_sorts_names() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        fs::write(r.join("b"), b"x").unwrap();
        fs::hard_link(r.join("b"), r.join("a")).unwrap();
        fs::write(r.join("c"), b"y").unwrap();
        let (_, nodes, stats) = scan(r, &ScanOptions::default()).unwrap();
        let names: Vec<_> = nodes.iter().map(|n| n.name.to_string()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(nodes[0].hardlink, Some(0));
        assert_eq!(nodes[1].hardlink, Some(0));
        assert_eq!(nodes[2].hardlink, None);
        assert_eq!(stats.files, 3);
    }
}
