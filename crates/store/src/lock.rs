//! The writer lock: one process at a time adds to or removes from a store.
//! Readers never take it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use rustix::fs::FlockOperation;

/// Held while a process writes to the store; released on drop (or when the
/// process dies, since it is an `flock`).
#[derive(Debug)]
pub struct WriteLock {
    _file: File,
}

impl WriteLock {
    /// Takes the lock, waiting for another writer if there is one (and saying
    /// so through `waiting`).
    pub fn acquire(path: &Path, waiting: &dyn Fn(&str)) -> std::io::Result<Self> {
        let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            waiting(&format!(
                "waiting for the store's writer lock ({}held by process {})",
                path.display().to_string() + ", ",
                if holder.is_empty() { "?" } else { holder }
            ));
            rustix::fs::flock(&f, FlockOperation::LockExclusive)?;
        }
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        Ok(Self { _file: f })
    }
}
