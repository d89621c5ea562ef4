//! Writing entries inside a target directory, and nowhere else.
//!
//! Every operation is relative to an open directory handle and never follows
//! a symlink: directories are opened with `O_NOFOLLOW | O_DIRECTORY`, files are
//! created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and names are [`EntryName`]s,
//! which cannot contain `/` or be `..`. A symlink written earlier in the same
//! apply (or left in the target) can therefore never redirect a later write.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::meta::{Metadata, Timestamp, Xattr};
use crate::name::EntryName;

/// How to write into the target.
#[derive(Clone, Copy, Debug)]
pub struct ApplyOptions {
    /// Replace entries already in the target (a file where the image has a
    /// file, a directory where it has a symlink, ...). Directories the image
    /// also has are kept and written into; entries the image does not name
    /// are left alone.
    pub force: bool,
    /// Set owner and group (needs root). Defaults to "running as root".
    pub restore_owner: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self { force: false, restore_owner: rustix::process::geteuid().is_root() }
    }
}

/// A failure while writing into the target, naming the path and the action.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("target {} is not empty; apply into an empty directory, or pass --force to overwrite what is there", .0.display())]
    NotEmpty(PathBuf),
}

fn io_err(action: &'static str, path: PathBuf) -> impl FnOnce(Errno) -> ApplyError {
    move |e| ApplyError::Io { action, path, source: e.into() }
}

/// Device nodes and FIFOs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialKind {
    CharDev(u64),
    BlockDev(u64),
    Fifo,
}

/// The target directory of an apply.
#[derive(Debug)]
pub struct Target {
    root: DirHandle,
}

impl Target {
    /// Opens (creating it if missing) the target directory. A target that is
    /// not empty is refused unless `opts.force`.
    pub fn open(path: &Path, opts: ApplyOptions) -> Result<Self, ApplyError> {
        let ioe = |action| move |source| ApplyError::Io { action, path: path.to_owned(), source };
        fs::create_dir_all(path).map_err(ioe("creating target directory"))?;
        let empty = fs::read_dir(path).map_err(ioe("listing target directory"))?.next().is_none();
        if !empty && !opts.force {
            return Err(ApplyError::NotEmpty(path.to_owned()));
        }
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_err("opening target directory", path.to_owned()))?;
        let inherits = has_default_acl(&fd);
        Ok(Self { root: DirHandle { fd, path: path.to_owned(), opts, preexisting: true, inherits } })
    }

    /// The target's top directory.
    pub fn root(&self) -> &DirHandle {
        &self.root
    }

    /// Opens the directory at `components` below the root, one component at a
    /// time and never through a symlink (for linking to an entry written
    /// earlier).
    pub fn open_dir(&self, components: &[EntryName]) -> Result<DirHandle, ApplyError> {
        let mut cur = self.root.reopen()?;
        for c in components {
            let fd = open_dir_nofollow(&cur.fd, c).map_err(io_err("opening directory", cur.child_path(c)))?;
            cur = DirHandle { fd, path: cur.child_path(c), opts: cur.opts, preexisting: true, inherits: false };
        }
        Ok(cur)
    }
}

fn open_dir_nofollow(dir: &OwnedFd, name: &EntryName) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name.as_os_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn has_default_acl(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 0];
    matches!(rustix::fs::fgetxattr(fd, "system.posix_acl_default", &mut buf[..]), Ok(_) | Err(Errno::RANGE))
}

/// An open directory inside the target.
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    path: PathBuf,
    opts: ApplyOptions,
    /// The directory was there before this apply (not created by it).
    preexisting: bool,
    /// New entries here inherit a default ACL, which must be cleaned off.
    inherits: bool,
}

impl DirHandle {
    /// The path of this directory, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a child, for messages.
    pub fn child_path(&self, name: &EntryName) -> PathBuf {
        self.path.join(name.as_os_str())
    }

    fn reopen(&self) -> Result<DirHandle, ApplyError> {
        let fd = rustix::fs::openat(&self.fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_err("opening directory", self.path.clone()))?;
        Ok(DirHandle {
            fd,
            path: self.path.clone(),
            opts: self.opts,
            preexisting: self.preexisting,
            inherits: self.inherits,
        })
    }

    /// With `force`, clears the way for a new entry called `name`. Returns
    /// true when a directory is there and `keep_dir` asked to keep it.
    fn make_room(&self, name: &EntryName, keep_dir: bool) -> Result<bool, ApplyError> {
        if !self.opts.force || !self.preexisting {
            return Ok(false);
        }
        let st = match rustix::fs::statat(&self.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(io_err("inspecting existing entry", self.child_path(name))(e)),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if keep_dir {
                return Ok(true);
            }
            remove_tree_at(&self.fd, name).map_err(io_err("removing existing directory", self.child_path(name)))?;
        } else {
            rustix::fs::unlinkat(&self.fd, name.as_os_str(), AtFlags::empty())
                .map_err(io_err("removing existing entry", self.child_path(name)))?;
        }
        Ok(false)
    }

    /// Creates (or, with `force`, reuses) the directory `name` and opens it.
    /// Its metadata is set by [`DirHandle::finish`] once its children are in.
    pub fn create_dir(&self, name: &EntryName) -> Result<DirHandle, ApplyError> {
        let kept = self.make_room(name, true)?;
        if !kept {
            rustix::fs::mkdirat(&self.fd, name.as_os_str(), Mode::from_raw_mode(0o700))
                .map_err(io_err("creating directory", self.child_path(name)))?;
        }
        let fd = open_dir_nofollow(&self.fd, name).map_err(io_err("opening directory", self.child_path(name)))?;
        // A new directory inside one with a default ACL inherits it, and
        // passes it on to what is created inside before its own xattrs are
        // set; so it must be cleaned like its parent.
        let inherits = if kept { has_default_acl(&fd) } else { self.inherits };
        Ok(DirHandle { fd, path: self.child_path(name), opts: self.opts, preexisting: kept, inherits })
    }

    /// Sets this directory's own metadata; call after its children are written
    /// (adding children changes a directory's mtime).
    pub fn finish(self, meta: &Metadata) -> Result<(), ApplyError> {
        set_meta_fd(&self.fd, meta, self.opts, self.preexisting || self.inherits, &self.path)
    }

    /// Creates the regular file `name` for writing (mode 0600 until
    /// [`DirHandle::finish_file`]).
    pub fn create_file(&self, name: &EntryName) -> Result<File, ApplyError> {
        self.make_room(name, false)?;
        let fd = rustix::fs::openat(
            &self.fd,
            name.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io_err("creating file", self.child_path(name)))?;
        Ok(File::from(fd))
    }

    /// Sets owner, mode, xattrs and mtime of a file written by
    /// [`DirHandle::create_file`].
    pub fn finish_file(&self, name: &EntryName, file: &File, meta: &Metadata) -> Result<(), ApplyError> {
        set_meta_fd(file, meta, self.opts, self.inherits, &self.child_path(name))
    }

    /// Creates the symlink `name` pointing at `target` (any bytes; it is never
    /// followed by slipway).
    pub fn symlink(&self, name: &EntryName, target: &[u8], meta: &Metadata) -> Result<(), ApplyError> {
        self.make_room(name, false)?;
        let path = self.child_path(name);
        rustix::fs::symlinkat(OsStr::from_bytes(target), &self.fd, name.as_os_str())
            .map_err(io_err("creating symlink", path.clone()))?;
        self.set_meta_at(name, meta, false)
    }

    /// Creates a device node or FIFO.
    pub fn special(&self, name: &EntryName, kind: SpecialKind, meta: &Metadata) -> Result<(), ApplyError> {
        self.make_room(name, false)?;
        let (ft, dev) = match kind {
            SpecialKind::CharDev(d) => (FileType::CharacterDevice, d),
            SpecialKind::BlockDev(d) => (FileType::BlockDevice, d),
            SpecialKind::Fifo => (FileType::Fifo, 0),
        };
        rustix::fs::mknodat(&self.fd, name.as_os_str(), ft, Mode::from_raw_mode(0o600), dev)
            .map_err(io_err("creating device node or FIFO", self.child_path(name)))?;
        self.set_meta_at(name, meta, true)
    }

    /// Makes `name` a hard link to `from_name` in `from` (an entry written
    /// earlier in this apply).
    pub fn hardlink(&self, name: &EntryName, from: &DirHandle, from_name: &EntryName) -> Result<(), ApplyError> {
        self.make_room(name, false)?;
        rustix::fs::linkat(&from.fd, from_name.as_os_str(), &self.fd, name.as_os_str(), AtFlags::empty())
            .map_err(io_err("creating hard link", self.child_path(name)))
    }

    /// Metadata of a symlink or special file, by name, never following it.
    fn set_meta_at(&self, name: &EntryName, meta: &Metadata, chmod: bool) -> Result<(), ApplyError> {
        let path = self.child_path(name);
        let n = name.as_os_str();
        if self.opts.restore_owner {
            rustix::fs::chownat(
                &self.fd,
                n,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(io_err("setting owner of", path.clone()))?;
        }
        if chmod {
            // Not a symlink (we just made it), so following is harmless.
            rustix::fs::chmodat(&self.fd, n, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(io_err("setting mode of", path.clone()))?;
        }
        if !meta.xattrs.is_empty() || self.inherits {
            // Path through this process's handle of the directory: no
            // component of it can be swapped for a symlink.
            let mut p = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
            p.push(n);
            if self.inherits {
                strip_xattrs_path(&p, &meta.xattrs)
                    .map_err(io_err("clearing inherited attributes of", path.clone()))?;
            }
            for x in &meta.xattrs {
                rustix::fs::lsetxattr(&p, OsStr::from_bytes(&x.name), &x.value, XattrFlags::empty())
                    .map_err(xattr_err(&path, x))?;
            }
        }
        rustix::fs::utimensat(&self.fd, n, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(io_err("setting modification time of", path))
    }
}

fn xattr_err<'a>(path: &'a Path, x: &'a Xattr) -> impl FnOnce(Errno) -> ApplyError + 'a {
    move |e| ApplyError::Io {
        action: "setting extended attribute of",
        path: path.to_owned(),
        source: io::Error::new(io::Error::from(e).kind(), format!("{}: {e}", crate::name::display_bytes(&x.name))),
    }
}

fn times(t: Timestamp) -> Timestamps {
    let ts = Timespec { tv_sec: t.sec, tv_nsec: t.nsec as _ };
    Timestamps { last_access: ts, last_modification: ts }
}

fn set_meta_fd(fd: impl AsFd, meta: &Metadata, opts: ApplyOptions, strip: bool, path: &Path) -> Result<(), ApplyError> {
    let fd = fd.as_fd();
    if opts.restore_owner {
        rustix::fs::fchown(fd, Some(Uid::from_raw(meta.uid)), Some(Gid::from_raw(meta.gid)))
            .map_err(io_err("setting owner of", path.to_owned()))?;
    }
    // After chown, which clears setuid/setgid bits and file capabilities.
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(io_err("setting mode of", path.to_owned()))?;
    if strip {
        strip_xattrs_fd(fd, &meta.xattrs).map_err(io_err("clearing attributes of", path.to_owned()))?;
    }
    for x in &meta.xattrs {
        rustix::fs::fsetxattr(fd, OsStr::from_bytes(&x.name), &x.value, XattrFlags::empty())
            .map_err(xattr_err(path, x))?;
    }
    rustix::fs::futimens(fd, &times(meta.mtime)).map_err(io_err("setting modification time of", path.to_owned()))
}

/// Removes xattrs not in `keep` (an inherited default ACL, or ones left on an
/// entry reused with `--force`).
fn strip_xattrs_fd(fd: std::os::fd::BorrowedFd<'_>, keep: &[Xattr]) -> Result<(), Errno> {
    let mut buf = vec![0u8; 4096];
    let n = match rustix::fs::flistxattr(fd, &mut buf[..]) {
        Ok(n) => n,
        Err(Errno::RANGE) => {
            buf.resize(rustix::fs::flistxattr_query(fd)?, 0);
            rustix::fs::flistxattr(fd, &mut buf[..])?
        }
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        if !keep.iter().any(|x| x.name == name) {
            rustix::fs::fremovexattr(fd, OsStr::from_bytes(name))?;
        }
    }
    Ok(())
}

fn strip_xattrs_path(p: &Path, keep: &[Xattr]) -> Result<(), Errno> {
    let mut buf = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(p, &mut buf[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        if !keep.iter().any(|x| x.name == name) {
            rustix::fs::lremovexattr(p, OsStr::from_bytes(name))?;
        }
    }
    Ok(())
}

/// Removes the directory `name` in `dir` and everything below it, never
/// following a symlink.
fn remove_tree_at(dir: &OwnedFd, name: &EntryName) -> Result<(), Errno> {
    let fd = open_dir_nofollow(dir, name)?;
    let mut children = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push((n.to_vec(), e.file_type()));
    }
    for (n, ft) in children {
        let child = EntryName::new(n).map_err(|_| Errno::INVAL)?;
        if ft == FileType::Directory {
            remove_tree_at(&fd, &child)?;
        } else if ft == FileType::Unknown {
            let st = rustix::fs::statat(&fd, child.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                remove_tree_at(&fd, &child)?;
            } else {
                rustix::fs::unlinkat(&fd, child.as_os_str(), AtFlags::empty())?;
            }
        } else {
            rustix::fs::unlinkat(&fd, child.as_os_str(), AtFlags::empty())?;
        }
    }
    rustix::fs::unlinkat(dir, name.as_os_str(), AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn meta(mode: u32) -> Metadata {
        Metadata { mode, uid: 0, gid: 0, mtime: Timestamp { sec: 1_000_000_000, nsec: 123_456_789 }, xattrs: vec![] }
    }

    #[test]
    fn symlink_in_tree_never_redirects_a_later_write() {
        let outside = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let opts = ApplyOptions { force: false, restore_owner: false };
        let target = Target::open(t.path(), opts).unwrap();
        let link = EntryName::new("etc").unwrap();
        target.root().symlink(&link, outside.path().as_os_str().as_bytes(), &meta(0o777)).unwrap();
        // The image then names a directory "etc" and a file in it: the
        // directory cannot be opened through the symlink.
        let err = target.root().create_dir(&link).unwrap_err();
        assert!(err.to_string().contains("etc"), "{err}");
        // And a file of the same name is not written through it either.
        let err = target.root().create_file(&link).unwrap_err();
        assert!(err.to_string().contains("etc"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuses_non_empty_target_without_force() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("x"), b"1").unwrap();
        let err = Target::open(t.path(), ApplyOptions { force: false, restore_owner: false }).unwrap_err();
        assert!(matches!(err, ApplyError::NotEmpty(_)));
        assert!(err.to_string().contains("--force"));
    }

    #[test]
    fn force_replaces_a_symlink_to_outside_instead_of_following_it() {
        let outside = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("etc")).unwrap();
        let opts = ApplyOptions { force: true, restore_owner: false };
        let target = Target::open(t.path(), opts).unwrap();
        let etc = EntryName::new("etc").unwrap();
        let d = target.root().create_dir(&etc).unwrap();
        let f = EntryName::new("passwd").unwrap();
        let mut file = d.create_file(&f).unwrap();
        file.write_all(b"root").unwrap();
        d.finish_file(&f, &file, &meta(0o644)).unwrap();
        d.finish(&meta(0o755)).unwrap();
        assert!(t.path().join("etc").symlink_metadata().unwrap().is_dir());
        assert_eq!(fs::read(t.path().join("etc/passwd")).unwrap(), b"root");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
