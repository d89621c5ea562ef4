//! Crash-safe file writes: stage in the store's `tmp/`, fsync, rename, fsync
//! the directory. A reader sees either nothing or the whole file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A staging file name that no other writer (thread or process) uses.
pub(crate) fn tmp_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}.tmp", std::process::id())
}

/// Writes `data` to `dest` atomically, staging in `tmp_dir` (same
/// filesystem). The destination's directory is created if needed.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, data: &[u8]) -> io::Result<()> {
    stage_and_rename(tmp_dir, dest, data, false)
}

/// Like [`write_atomic`], but fails if `dest` exists (rename with
/// `RENAME_NOREPLACE`), so two writers can never replace each other's file.
pub(crate) fn write_atomic_noclobber(tmp_dir: &Path, dest: &Path, data: &[u8]) -> io::Result<()> {
    stage_and_rename(tmp_dir, dest, data, true)
}

fn stage_and_rename(tmp_dir: &Path, dest: &Path, data: &[u8], noreplace: bool) -> io::Result<()> {
    let tmp = tmp_dir.join(tmp_name("w"));
    let r = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        if noreplace {
            let dir = dest.parent().expect("destination has a parent");
            make_dirs(dir)?;
            let cwd = rustix::fs::CWD;
            rustix::fs::renameat_with(cwd, &tmp, cwd, dest, rustix::fs::RenameFlags::NOREPLACE)?;
            sync_dir(dir)
        } else {
            persist(&tmp, dest)
        }
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Writes a private file (mode 0600) atomically beside `dest`: a staging
/// file in the same directory, fsync, rename, fsync of the directory. For
/// credentials and state files outside a store (the agent's state, the
/// server's TLS key).
pub fn write_private(dest: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = dest.parent().expect("destination has a parent");
    let tmp = dir.join(tmp_name(".private"));
    let r = (|| {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        persist(&tmp, dest)
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Renames a staged, already fsynced file into place and fsyncs the
/// directory that now holds it.
pub(crate) fn persist(tmp: &Path, dest: &Path) -> io::Result<()> {
    let dir = dest.parent().expect("destination has a parent");
    make_dirs(dir)?;
    fs::rename(tmp, dest)?;
    sync_dir(dir)
}

/// Creates `dir` and any missing parents, making each new entry durable in
/// its parent.
fn make_dirs(dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut missing = vec![dir];
    while let Some(p) = missing.last().and_then(|d| d.parent()).filter(|p| !p.exists()) {
        missing.push(p);
    }
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if let Some(pp) = d.parent() {
            sync_dir(pp)?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
