//! Access to paths inside a root directory that never leaves it.
//!
//! Every path is walked one component at a time from an open handle of the
//! root with `O_NOFOLLOW`; a component that is a symlink is an error naming
//! it, so neither a hostile package nor a symlink planted in the target can
//! redirect a write outside the root.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::manifest::Entry;

/// A failure inside the root, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} passes through {}, which is a symlink on the target (to {}); refusing to follow it", path.display(), link.display(), to)]
    ThroughSymlink { path: PathBuf, link: PathBuf, to: String },
    #[error("{} passes through {}, which is not a directory", path.display(), at.display())]
    NotADir { path: PathBuf, at: PathBuf },
}

pub type Result<T> = std::result::Result<T, RootError>;

fn ioerr(action: &'static str, path: &Path) -> impl FnOnce(Errno) -> RootError {
    let path = path.to_owned();
    move |e| RootError::Io { action, path, source: e.into() }
}

/// The root directory of a servicing operation.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    as_root: bool,
}

/// The state of one path as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Absent,
    File { size: u64, dev: u64, ino: u64, nlink: u64 },
    Dir,
    Symlink { target: Vec<u8> },
    Other,
}

/// Metadata as read from disk, in manifest terms.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, u32),
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(String, String)>,
}

impl Meta {
    pub fn of_entry(e: &Entry) -> Meta {
        Meta { mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, xattrs: e.xattrs.clone() }
    }

    /// From the file-tree model's metadata (a scan, a store tree entry).
    pub fn of_metadata(m: &slipway_fstree::Metadata) -> Meta {
        Meta {
            mode: m.mode & 0o7777,
            uid: m.uid,
            gid: m.gid,
            mtime: (m.mtime.sec, m.mtime.nsec),
            xattrs: m.xattrs.iter().map(|x| (hex(&x.name), hex(&x.value))).collect(),
        }
    }

    /// To the file-tree model's metadata (xattrs with bad hex are left out;
    /// manifests are validated before they get here).
    pub fn to_metadata(&self) -> slipway_fstree::Metadata {
        slipway_fstree::Metadata {
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: slipway_fstree::Timestamp { sec: self.mtime.0, nsec: self.mtime.1 },
            xattrs: self
                .xattrs
                .iter()
                .filter_map(|(k, v)| Some(slipway_fstree::Xattr { name: unhex(k)?, value: unhex(v)? }))
                .collect(),
        }
    }
}

/// An open parent directory and the last component of a path.
pub struct Parent {
    pub dir: OwnedFd,
    pub dir_path: PathBuf,
    pub name: Vec<u8>,
}

impl Parent {
    pub fn name(&self) -> &OsStr {
        OsStr::from_bytes(&self.name)
    }
}

impl Root {
    pub fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(ioerr("opening root directory", path))?;
        Ok(Root { fd, path: path.to_owned(), as_root: rustix::process::geteuid().is_root() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The full path of a relative path, for messages.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Opens the directory at `rel` ("" is the root), never through a symlink.
    /// `Ok(None)` when a component is missing.
    pub fn open_dir(&self, rel: &str) -> Result<Option<OwnedFd>> {
        let mut cur =
            rustix::fs::openat(&self.fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(ioerr("opening root directory", &self.path))?;
        let mut at = PathBuf::new();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            at.push(c);
            match rustix::fs::openat(
                &cur,
                c,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => cur = fd,
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let full = self.path.join(rel);
                    return Err(match rustix::fs::readlinkat(&cur, c, Vec::new()) {
                        Ok(t) => RootError::ThroughSymlink {
                            path: full,
                            link: self.path.join(&at),
                            to: t.to_string_lossy().into_owned(),
                        },
                        Err(_) => RootError::NotADir { path: full, at: self.path.join(&at) },
                    });
                }
                Err(e) => return Err(ioerr("opening directory", &self.path.join(&at))(e)),
            }
        }
        Ok(Some(cur))
    }

    /// The parent directory of `rel`, opened; `Ok(None)` when it is missing.
    pub fn parent(&self, rel: &str) -> Result<Option<Parent>> {
        let (dir, name) = match rel.rfind('/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None if rel.is_empty() => ("", "."),
            None => ("", rel),
        };
        Ok(self.open_dir(dir)?.map(|fd| Parent {
            dir: fd,
            dir_path: self.path.join(dir),
            name: name.as_bytes().to_vec(),
        }))
    }

    /// What is at `rel` (not following a final symlink).
    pub fn inspect(&self, rel: &str) -> Result<Found> {
        let Some(p) = self.parent(rel)? else { return Ok(Found::Absent) };
        inspect_at(&p.dir, p.name(), &self.display(rel))
    }

    /// Metadata of the entry at `rel` (which must exist).
    pub fn meta(&self, rel: &str) -> Result<Meta> {
        let full = self.display(rel);
        let p = self.parent(rel)?.ok_or_else(|| RootError::Io {
            action: "reading metadata of",
            path: full.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        meta_at(&p.dir, p.name(), &full)
    }

    /// Opens the regular file at `rel` for reading (never a symlink).
    pub fn open_file(&self, rel: &str) -> Result<File> {
        let full = self.display(rel);
        let p = self.parent(rel)?.ok_or_else(|| RootError::Io {
            action: "opening",
            path: full.clone(),
            source: io::ErrorKind::NotFound.into(),
        })?;
        let fd =
            rustix::fs::openat(&p.dir, p.name(), OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                .map_err(ioerr("opening", &full))?;
        Ok(File::from(fd))
    }

    /// Reads the whole regular file at `rel`.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let mut f = self.open_file(rel)?;
        let mut v = Vec::new();
        f.read_to_end(&mut v).map_err(|e| RootError::Io { action: "reading", path: self.display(rel), source: e })?;
        Ok(v)
    }

    /// BLAKE3 of the regular file at `rel`.
    pub fn hash(&self, rel: &str) -> Result<String> {
        let f = self.open_file(rel)?;
        hash_file(f).map_err(|e| RootError::Io { action: "reading", path: self.display(rel), source: e })
    }

    pub fn sets_owner(&self) -> bool {
        self.as_root
    }
}

/// The directory part of a relative path (`""` for a top-level name).
pub fn parent_of(rel: &str) -> &str {
    rel.rfind('/').map(|i| &rel[..i]).unwrap_or("")
}

/// The last component of a relative path.
pub fn name_of(rel: &str) -> &OsStr {
    OsStr::from_bytes(rel.rsplit('/').next().unwrap_or(rel).as_bytes())
}

pub fn hash_file(mut f: File) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

pub fn inspect_at(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<Found> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Found::Absent),
        Err(e) => return Err(ioerr("inspecting", full)(e)),
    };
    Ok(match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            Found::File { size: st.st_size as u64, dev: st.st_dev, ino: st.st_ino, nlink: st.st_nlink }
        }
        FileType::Directory => Found::Dir,
        FileType::Symlink => Found::Symlink {
            target: rustix::fs::readlinkat(dir, name, Vec::new()).map_err(ioerr("reading symlink", full))?.into_bytes(),
        },
        _ => Found::Other,
    })
}

use slipway_fstree::hex::{decode as unhex, encode as hex};

/// The path of an entry through `/proc/self/fd`, for the xattr calls that
/// must not follow a final symlink.
fn proc_path(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

pub fn meta_at(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<Meta> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(ioerr("reading metadata of", full))?;
    let pp = proc_path(dir, name);
    let mut xattrs = Vec::new();
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(&pp, &mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(Errno::NOTSUP) => break 0,
            Err(e) => return Err(ioerr("listing xattrs of", full)(e)),
        }
    };
    for xn in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let xname = OsStr::from_bytes(xn);
        let mut val = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(&pp, xname, &mut val[..]) {
                Ok(l) => break l,
                Err(Errno::RANGE) => val.resize(val.len() * 4, 0),
                Err(e) => return Err(ioerr("reading xattrs of", full)(e)),
            }
        };
        xattrs.push((hex(xn), hex(&val[..len])));
    }
    xattrs.sort();
    Ok(Meta {
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: (st.st_mtime, st.st_mtime_nsec as u32),
        xattrs,
    })
}

/// Sets metadata on an open file or directory.
pub fn set_meta_fd(fd: impl AsFd, meta: &Meta, owner: bool, full: &Path) -> Result<()> {
    let fd = fd.as_fd();
    if owner {
        rustix::fs::fchown(fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(ioerr("setting owner of", full))?;
    }
    // Extended attributes: those listed, and no others (an inherited
    // default ACL or a stale attribute must not survive).
    let mut names = vec![0u8; 4096];
    if let Ok(n) = rustix::fs::flistxattr(fd, &mut names[..]) {
        for xn in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
            if !meta.xattrs.iter().any(|(k, _)| unhex(k).as_deref() == Some(xn)) {
                let _ = rustix::fs::fremovexattr(fd, OsStr::from_bytes(xn));
            }
        }
    }
    for (k, v) in &meta.xattrs {
        let (Some(k), Some(v)) = (unhex(k), unhex(v)) else { continue };
        rustix::fs::fsetxattr(fd, OsStr::from_bytes(&k), &v, XattrFlags::empty())
            .map_err(ioerr("setting xattrs of", full))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777)).map_err(ioerr("setting mode of", full))?;
    let t = Timespec { tv_sec: meta.mtime.0, tv_nsec: meta.mtime.1 as _ };
    rustix::fs::futimens(fd, &Timestamps { last_access: t, last_modification: t })
        .map_err(ioerr("setting mtime of", full))?;
    Ok(())
}

/// Sets metadata on a symlink by name (owner, xattrs, mtime; symlinks have
/// no mode of their own).
pub fn set_meta_symlink(dir: &OwnedFd, name: &OsStr, meta: &Meta, owner: bool, full: &Path) -> Result<()> {
    if owner {
        rustix::fs::chownat(
            dir,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(ioerr("setting owner of", full))?;
    }
    let pp = proc_path(dir, name);
    for (k, v) in &meta.xattrs {
        let (Some(k), Some(v)) = (unhex(k), unhex(v)) else { continue };
        rustix::fs::lsetxattr(&pp, OsStr::from_bytes(&k), &v, XattrFlags::empty())
            .map_err(ioerr("setting xattrs of", full))?;
    }
    let t = Timespec { tv_sec: meta.mtime.0, tv_nsec: meta.mtime.1 as _ };
    rustix::fs::utimensat(dir, name, &Timestamps { last_access: t, last_modification: t }, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(ioerr("setting mtime of", full))?;
    Ok(())
}

/// Opens a directory entry below an open directory, never following a symlink.
pub fn open_child_dir(dir: &OwnedFd, name: &OsStr) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `fsync` of a directory, so renames and unlinks inside it are durable.
pub fn sync_dir(dir: &OwnedFd, full: &Path) -> Result<()> {
    rustix::fs::fsync(dir).map_err(ioerr("syncing directory", full))
}

/// Names in a directory, without `.` and `..`.
pub fn list_dir(dir: &OwnedFd, full: &Path) -> Result<Vec<Vec<u8>>> {
    let d = rustix::fs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(ioerr("listing", full))?;
    let mut out = Vec::new();
    let it = rustix::fs::Dir::read_from(&d).map_err(ioerr("listing", full))?;
    for e in it {
        let e = e.map_err(ioerr("listing", full))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}
