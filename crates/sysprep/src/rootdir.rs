//! Reading and writing inside a root directory without ever leaving it.
//!
//! Built on the servicing engine's [`Root`]: every path is walked one
//! component at a time with `O_NOFOLLOW`, so a symlink planted in the target
//! (`etc -> /etc` on the build host) is an error naming it, never a way out.
//! Writes are atomic: a temporary file in the destination directory, fsync,
//! rename. A final symlink is replaced, not followed; removal never descends
//! through a symlink.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use slipway_package::rootfs::{self, Root};

pub use slipway_package::rootfs::Found;

/// Mode and owner of a file or directory to create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Perm {
    /// Owned by root with this mode.
    pub const fn root(mode: u32) -> Perm {
        Perm { mode, uid: 0, gid: 0 }
    }
}

/// What a removal took away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    /// Files, symlinks and directories removed (a directory counts itself).
    pub entries: u64,
    /// Bytes of regular files removed.
    pub bytes: u64,
}

impl std::ops::AddAssign for Removed {
    fn add_assign(&mut self, o: Removed) {
        self.entries += o.entries;
        self.bytes += o.bytes;
    }
}

/// A root directory (an image applied to a directory, a mounted disk).
#[derive(Debug)]
pub struct RootDir {
    root: Root,
}

fn rel_ok(rel: &str) -> Result<&str> {
    let rel = rel.trim_start_matches('/');
    if rel.split('/').any(|c| c == ".." || c == ".") {
        bail!("path {rel:?} has a '.' or '..' component; paths inside a root must be plain");
    }
    Ok(rel.trim_end_matches('/'))
}

impl RootDir {
    pub fn open(path: &Path) -> Result<RootDir> {
        let root = Root::open(path)?;
        Ok(RootDir { root })
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The full path of `rel`, for messages.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.root.display(rel.trim_start_matches('/'))
    }

    /// Whether the calling process can set owners (runs as root).
    pub fn sets_owner(&self) -> bool {
        self.root.sets_owner()
    }

    /// What is at `rel`, not following a final symlink. A symlink on the way
    /// there is an error.
    pub fn inspect(&self, rel: &str) -> Result<Found> {
        Ok(self.root.inspect(rel_ok(rel)?)?)
    }

    /// Whether anything (even a dangling symlink) is at `rel`.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        Ok(self.inspect(rel)? != Found::Absent)
    }

    /// Whether anything is at one of `rels`, tried in turn. A spelling that
    /// passes through a symlink (merged /usr: `sbin -> usr/sbin`) counts as
    /// not there, so give both spellings: `["usr/sbin/sshd", "sbin/sshd"]`.
    pub fn present(&self, rels: &[&str]) -> Result<bool> {
        for rel in rels {
            match self.inspect(rel) {
                Ok(Found::Absent) => {}
                Ok(_) => return Ok(true),
                Err(e) if matches!(e.downcast_ref(), Some(rootfs::RootError::ThroughSymlink { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// Whether `rel` is a directory (not a symlink to one).
    pub fn is_dir(&self, rel: &str) -> Result<bool> {
        Ok(self.inspect(rel)? == Found::Dir)
    }

    /// Mode, owner and time of the entry at `rel`.
    pub fn meta(&self, rel: &str) -> Result<rootfs::Meta> {
        Ok(self.root.meta(rel_ok(rel)?)?)
    }

    /// The contents of the regular file at `rel`; `None` when nothing is
    /// there. A symlink or a directory at `rel` is an error.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        let rel = rel_ok(rel)?;
        match self.root.inspect(rel)? {
            Found::Absent => Ok(None),
            Found::File { .. } => Ok(Some(self.root.read(rel)?)),
            Found::Symlink { target } => bail!(
                "{} is a symlink (to {}); refusing to follow it",
                self.display(rel).display(),
                String::from_utf8_lossy(&target)
            ),
            _ => bail!("{} is not a regular file", self.display(rel).display()),
        }
    }

    /// Like [`read`](Self::read), as UTF-8 text.
    pub fn read_string(&self, rel: &str) -> Result<Option<String>> {
        match self.read(rel)? {
            None => Ok(None),
            Some(b) => String::from_utf8(b)
                .map(Some)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", self.display(rel).display())),
        }
    }

    /// Names in the directory at `rel`, sorted; empty when it is missing or
    /// is not a directory (a symlink to a directory is not listed).
    pub fn list(&self, rel: &str) -> Result<Vec<OsString>> {
        let rel = rel_ok(rel)?;
        if self.root.inspect(rel)? != Found::Dir && !rel.is_empty() {
            return Ok(Vec::new());
        }
        let Some(dir) = self.root.open_dir(rel)? else { return Ok(Vec::new()) };
        let mut names: Vec<OsString> =
            rootfs::list_dir(&dir, &self.display(rel))?.into_iter().map(OsString::from_vec).collect();
        names.sort();
        Ok(names)
    }

    /// Names in the directory at `rel` that are UTF-8 (others are skipped).
    pub fn list_utf8(&self, rel: &str) -> Result<Vec<String>> {
        Ok(self.list(rel)?.into_iter().filter_map(|n| n.into_string().ok()).collect())
    }

    /// Creates the directory `rel` and any missing parents with `perm`
    /// (existing directories are left as they are).
    pub fn mkdir_all(&self, rel: &str, perm: Perm) -> Result<()> {
        let rel = rel_ok(rel)?;
        let mut at = String::new();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            let parent = at.clone();
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(c);
            match self.root.inspect(&at)? {
                Found::Dir => continue,
                Found::Absent => {}
                Found::Symlink { target } => bail!(
                    "{} is a symlink on the target (to {}); refusing to create a directory through it",
                    self.display(&at).display(),
                    String::from_utf8_lossy(&target)
                ),
                _ => bail!("{} exists and is not a directory", self.display(&at).display()),
            }
            let dir = self.open_dir(&parent)?;
            match rustix::fs::mkdirat(&dir, c, Mode::from_raw_mode(perm.mode)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e).with_context(|| format!("creating directory {}", self.display(&at).display())),
            }
            let fd = self.open_dir(&at)?;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(perm.mode))
                .with_context(|| format!("setting mode of {}", self.display(&at).display()))?;
            if self.sets_owner() {
                rustix::fs::fchown(&fd, Some(Uid::from_raw(perm.uid)), Some(Gid::from_raw(perm.gid)))
                    .with_context(|| format!("setting owner of {}", self.display(&at).display()))?;
            }
        }
        Ok(())
    }

    fn open_dir(&self, rel: &str) -> Result<OwnedFd> {
        self.root.open_dir(rel)?.with_context(|| format!("{} does not exist", self.display(rel).display()))
    }

    /// Writes `data` to `rel` atomically with `perm` (temporary file in the
    /// same directory, fsync, rename over whatever was there, including a
    /// symlink, which is replaced and not followed). Missing parent
    /// directories are created, owned by root, mode 0755.
    pub fn write(&self, rel: &str, data: &[u8], perm: Perm) -> Result<()> {
        let rel = rel_ok(rel)?;
        if rel.is_empty() {
            bail!("cannot write a file over the root directory itself");
        }
        let parent = rootfs::parent_of(rel);
        self.mkdir_all(parent, Perm::root(0o755))?;
        if self.root.inspect(rel)? == Found::Dir {
            bail!("{} is a directory; cannot write a file there", self.display(rel).display());
        }
        let dir = self.open_dir(parent)?;
        let name = rootfs::name_of(rel);
        let full = self.display(rel);
        let tmp = temp_name(name);
        let fd = rustix::fs::openat(
            &dir,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .with_context(|| format!("creating a temporary file beside {}", full.display()))?;
        let result = (|| -> Result<()> {
            let mut f = File::from(fd);
            f.write_all(data).with_context(|| format!("writing {}", full.display()))?;
            if self.sets_owner() {
                rustix::fs::fchown(&f, Some(Uid::from_raw(perm.uid)), Some(Gid::from_raw(perm.gid)))
                    .with_context(|| format!("setting owner of {}", full.display()))?;
            }
            rustix::fs::fchmod(&f, Mode::from_raw_mode(perm.mode & 0o7777))
                .with_context(|| format!("setting mode of {}", full.display()))?;
            f.sync_all().with_context(|| format!("syncing {}", full.display()))?;
            rustix::fs::renameat(&dir, &tmp, &dir, name)
                .with_context(|| format!("renaming into {}", full.display()))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
        }
        result?;
        rootfs::sync_dir(&dir, &self.display(parent))?;
        Ok(())
    }

    /// Opens the regular file at `rel` for appending, creating it with
    /// `perm` (and its parents, root-owned 0755) when it is missing; a
    /// symlink at `rel` is refused, not followed.
    pub fn open_append(&self, rel: &str, perm: Perm) -> Result<File> {
        let rel = rel_ok(rel)?;
        let parent = rootfs::parent_of(rel);
        self.mkdir_all(parent, Perm::root(0o755))?;
        let dir = self.open_dir(parent)?;
        let full = self.display(rel);
        let fd = rustix::fs::openat(
            &dir,
            rootfs::name_of(rel),
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(perm.mode),
        )
        .with_context(|| format!("opening {} to append (a symlink there is refused)", full.display()))?;
        Ok(File::from(fd))
    }

    /// Writes `data` to `rel`, keeping the mode and owner of the file that is
    /// there (or `perm` when there is none).
    pub fn write_keeping(&self, rel: &str, data: &[u8], perm: Perm) -> Result<()> {
        let perm = match self.inspect(rel)? {
            Found::File { .. } => {
                let m = self.meta(rel)?;
                Perm { mode: m.mode, uid: m.uid, gid: m.gid }
            }
            _ => perm,
        };
        self.write(rel, data, perm)
    }

    /// Makes `rel` a symlink to `target`, atomically replacing what is there
    /// (not a directory). Parents are created as in [`write`](Self::write).
    pub fn symlink(&self, rel: &str, target: &str) -> Result<()> {
        let rel = rel_ok(rel)?;
        let parent = rootfs::parent_of(rel);
        self.mkdir_all(parent, Perm::root(0o755))?;
        if self.root.inspect(rel)? == Found::Dir {
            bail!("{} is a directory; cannot replace it with a symlink", self.display(rel).display());
        }
        let dir = self.open_dir(parent)?;
        let name = rootfs::name_of(rel);
        let tmp = temp_name(name);
        let full = self.display(rel);
        rustix::fs::symlinkat(target, &dir, &tmp).with_context(|| format!("creating symlink {}", full.display()))?;
        if let Err(e) = rustix::fs::renameat(&dir, &tmp, &dir, name) {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            return Err(e).with_context(|| format!("renaming into {}", full.display()));
        }
        rootfs::sync_dir(&dir, &self.display(parent))?;
        Ok(())
    }

    /// Removes whatever is at `rel`: a file, a symlink (not what it points
    /// to) or a whole directory tree (never descending through a symlink).
    /// Nothing there is not an error.
    pub fn remove(&self, rel: &str) -> Result<Removed> {
        let rel = rel_ok(rel)?;
        if rel.is_empty() {
            bail!("refusing to remove the root directory itself");
        }
        let Some(p) = self.root.parent(rel)? else { return Ok(Removed::default()) };
        let full = self.display(rel);
        remove_at(&p.dir, p.name(), &full)
    }

    /// Empties the directory at `rel`, keeping the directory itself.
    pub fn remove_children(&self, rel: &str) -> Result<Removed> {
        let rel = rel_ok(rel)?;
        if self.root.inspect(rel)? != Found::Dir && !rel.is_empty() {
            return Ok(Removed::default());
        }
        let dir = self.open_dir(rel)?;
        let full = self.display(rel);
        let mut r = Removed::default();
        for n in rootfs::list_dir(&dir, &full)? {
            let n = OsString::from_vec(n);
            r += remove_at(&dir, &n, &full.join(&n))?;
        }
        Ok(r)
    }

    /// Flushes everything written to the root's filesystem (`syncfs`).
    pub fn sync(&self) -> Result<()> {
        let dir = self.open_dir("")?;
        rustix::fs::syncfs(&dir).with_context(|| format!("syncing the filesystem of {}", self.path().display()))
    }
}

fn temp_name(name: &OsStr) -> OsString {
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(".slipway-tmp-{}", std::process::id()));
    t
}

fn remove_at(dir: &OwnedFd, name: &OsStr, full: &Path) -> Result<Removed> {
    let found = rootfs::inspect_at(dir, name, full)?;
    let mut r = Removed::default();
    match found {
        Found::Absent => {}
        Found::Dir => {
            let child = rootfs::open_child_dir(dir, name).with_context(|| format!("opening {}", full.display()))?;
            for n in rootfs::list_dir(&child, full)? {
                let n = OsString::from_vec(n);
                r += remove_at(&child, &n, &full.join(&n))?;
            }
            rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
                .with_context(|| format!("removing directory {}", full.display()))?;
            r.entries += 1;
        }
        Found::File { size, .. } => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())
                .with_context(|| format!("removing {}", full.display()))?;
            r.entries += 1;
            r.bytes += size;
        }
        Found::Symlink { .. } | Found::Other => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())
                .with_context(|| format!("removing {}", full.display()))?;
            r.entries += 1;
        }
    }
    Ok(r)
}

/// Whether `path` is the running system's root directory (the same
/// directory as `/`, or as PID 1's root when that can be read).
pub fn is_running_system(path: &Path) -> Result<bool> {
    let st = rustix::fs::stat(path).with_context(|| format!("reading {}", path.display()))?;
    for sys in ["/", "/proc/1/root"] {
        if let Ok(s) = rustix::fs::stat(sys) {
            if s.st_dev == st.st_dev && s.st_ino == st.st_ino {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_a_symlink_instead_of_following_it() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("etc/hostname")).unwrap();
        let r = RootDir::open(t.path()).unwrap();
        r.write("etc/hostname", b"web-1\n", Perm::root(0o644)).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(t.path().join("etc/hostname")).unwrap(), "web-1\n");
    }

    #[test]
    fn a_symlinked_directory_is_refused_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("etc")).unwrap();
        let r = RootDir::open(t.path()).unwrap();
        let e = r.write("etc/hostname", b"x", Perm::root(0o644)).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        let e = r.read("etc/passwd").unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert!(r.write("../x", b"x", Perm::root(0o644)).is_err());
    }

    #[test]
    fn append_refuses_a_symlinked_log() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::create_dir_all(t.path().join("var/log")).unwrap();
        std::os::unix::fs::symlink(&victim, t.path().join("var/log/x.log")).unwrap();
        let r = RootDir::open(t.path()).unwrap();
        assert!(r.open_append("var/log/x.log", Perm::root(0o640)).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        use std::io::Write;
        let mut f = r.open_append("var/log/new/y.log", Perm::root(0o640)).unwrap();
        f.write_all(b"one\n").unwrap();
        let mut f = r.open_append("var/log/new/y.log", Perm::root(0o640)).unwrap();
        f.write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("var/log/new/y.log")).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn remove_does_not_descend_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), "x").unwrap();
        std::fs::create_dir_all(t.path().join("tmp/a")).unwrap();
        std::fs::write(t.path().join("tmp/a/one"), "12345").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("tmp/link")).unwrap();
        let r = RootDir::open(t.path()).unwrap();
        let gone = r.remove_children("tmp").unwrap();
        assert_eq!(gone, Removed { entries: 3, bytes: 5 });
        assert!(outside.path().join("f").exists());
        assert!(t.path().join("tmp").is_dir());
        assert_eq!(r.remove("nothing/here").unwrap(), Removed::default());
    }
}
