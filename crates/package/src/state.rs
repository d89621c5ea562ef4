//! What is installed on a root: `var/lib/slipway/state.json`, the backup
//! objects, and the package cache.
//!
//! Packages are kept in install order, each with one [`Change`] per path it
//! touched: what was there before it (`below`, the uninstall backup) and what
//! it wrote (`above`). Stacked packages on the same path form layers; the
//! top layer is what should be on disk.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::manifest::Kind;
use crate::rootfs::Meta;

pub const STATE_FORMAT: u32 = 1;

/// The servicing directory of a root, relative to it.
pub const STATE_DIR: &str = "var/lib/slipway";
/// The log directory of a root, relative to it.
pub const LOG_DIR: &str = "var/log/slipway";

/// Paths packages may not write: slipway's own state, logs and trust
/// (`var/lib/slipway`, `var/log/slipway`, `etc/slipway` and below).
pub fn is_reserved(rel: &str) -> bool {
    [STATE_DIR, LOG_DIR, "etc/slipway"].iter().any(|r| rel == *r || rel.starts_with(&format!("{r}/")))
}

/// Directories that hold slipway's own: a package may set their metadata
/// but not delete them or turn them into something else.
pub fn holds_reserved(rel: &str) -> bool {
    [STATE_DIR, LOG_DIR, "etc/slipway"].iter().any(|r| rel.is_empty() || r.starts_with(&format!("{rel}/")))
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    pub packages: Vec<Installed>,
}

/// How a package came onto the root.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `slipway install`: backed up, can be uninstalled.
    Installed,
    /// `slipway integrate`: part of the image, no backup.
    Integrated,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Installed {
    pub id: String,
    pub title: String,
    pub version: String,
    pub kind: Kind,
    pub mode: Mode,
    /// RFC 3339 time of the install.
    pub when: String,
    /// The package file it was installed from, as given.
    pub source: String,
    /// Key id of the signer, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
    /// BLAKE3 of the package file (its copy in the package cache).
    pub package_blake3: String,
    #[serde(default)]
    pub supersedes: Vec<String>,
    #[serde(default)]
    pub requires: Vec<String>,
    pub changes: Vec<Change>,
    /// Files the package replaces that were not on the root when it was
    /// installed: the package cache keeps them, and `verify --repair`
    /// services them once they appear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

/// One path a package changed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub path: String,
    /// What was there before this package (restored by uninstall).
    /// `None` for integrated packages (no backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<Snapshot>,
    /// What this package put there.
    pub above: Snapshot,
    /// The file version this package brought, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version that was there before, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_version: Option<String>,
}

/// The state of one path: absent, or an entry with its metadata. File
/// content is named by BLAKE3 (an object in `var/lib/slipway/objects`
/// when it is a backup).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Snapshot {
    Absent,
    File {
        blake3: String,
        size: u64,
        #[serde(flatten)]
        meta: Meta,
        /// Another path of the same change set that shared this file's inode.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    Dir {
        #[serde(flatten)]
        meta: Meta,
    },
    Symlink {
        target: String,
        #[serde(flatten)]
        meta: Meta,
    },
}

impl Snapshot {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Snapshot::Absent => "absent",
            Snapshot::File { .. } => "file",
            Snapshot::Dir { .. } => "dir",
            Snapshot::Symlink { .. } => "symlink",
        }
    }
}

impl State {
    pub fn load(root: &Path) -> anyhow::Result<State> {
        let p = root.join(STATE_DIR).join("state.json");
        match fs::read(&p) {
            Ok(b) => {
                let s: State = serde_json::from_slice(&b)
                    .with_context(|| format!("{} is damaged; restore it from a backup", p.display()))?;
                if s.format != STATE_FORMAT {
                    anyhow::bail!(
                        "{}: state format {} is not supported (this slipway knows {STATE_FORMAT})",
                        p.display(),
                        s.format
                    );
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State { format: STATE_FORMAT, packages: vec![] }),
            Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
        }
    }

    pub fn find(&self, id: &str) -> Option<usize> {
        self.packages.iter().position(|p| p.id == id)
    }

    /// The installed package that supersedes `id`, if any.
    pub fn superseded_by(&self, id: &str) -> Option<&Installed> {
        self.packages.iter().find(|p| p.supersedes.iter().any(|s| s == id))
    }

    /// The top layer for `path` (index into packages, change index).
    pub fn top(&self, path: &str) -> Option<(usize, usize)> {
        self.packages
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, p)| p.changes.iter().position(|c| c.path == path).map(|j| (i, j)))
    }

    /// Every backup object the state refers to.
    pub fn objects(&self) -> std::collections::HashSet<String> {
        let mut s = std::collections::HashSet::new();
        for p in &self.packages {
            for c in &p.changes {
                if let Some(Snapshot::File { blake3, .. }) = &c.below {
                    s.insert(blake3.clone());
                }
            }
        }
        s
    }
}

/// The servicing directory of a root.
pub fn state_dir(root: &Path) -> PathBuf {
    root.join(STATE_DIR)
}

pub fn object_path(root: &Path, blake3: &str) -> PathBuf {
    root.join(STATE_DIR).join("objects").join(&blake3[..2]).join(blake3)
}

pub fn cache_path(root: &Path, id: &str) -> PathBuf {
    root.join(STATE_DIR).join("packages").join(format!("{id}.slwpkg"))
}

/// Writes `bytes` to `path` atomically: temporary file beside it, fsync,
/// rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("path has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let mut f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// Copies `src` to `dest` atomically (streamed: temporary file, fsync,
/// rename).
pub fn copy_atomic(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().context("path has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}", dest.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let mut from = fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut to = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::io::copy(&mut from, &mut to).with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    to.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, dest).with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    Ok(())
}

pub fn save(root: &Path, state: &State) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(state)?;
    write_atomic(&root.join(STATE_DIR).join("state.json"), &bytes)
}

/// Creates `rel` (slipway's own state or log directory) inside the root,
/// putting back the mtime of the existing directory it is created in, so
/// the root's own tree is unchanged apart from slipway's directories.
pub fn ensure_dir(root: &crate::rootfs::Root, rel: &str) -> anyhow::Result<()> {
    if root.open_dir(rel)?.is_some() {
        return Ok(());
    }
    let mut existing = rel;
    while let Some(i) = existing.rfind('/') {
        existing = &existing[..i];
        if root.open_dir(existing)?.is_some() {
            break;
        }
    }
    if !rel.contains('/') || root.open_dir(existing)?.is_none() {
        existing = "";
    }
    let before = root.meta(existing)?.mtime;
    let full = root.path().join(rel);
    fs::create_dir_all(&full).with_context(|| format!("creating {}", full.display()))?;
    let fd = root.open_dir(existing)?.context("directory vanished")?;
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
        last_modification: rustix::fs::Timespec { tv_sec: before.0, tv_nsec: before.1 as _ },
    };
    rustix::fs::futimens(&fd, &ts).with_context(|| format!("setting mtime of {}", root.display(existing).display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slipway_state_is_off_limits_to_packages() {
        for p in ["var/lib/slipway", "var/lib/slipway/state.json", "var/log/slipway/x", "etc/slipway/trusted.d/k.pub"] {
            assert!(is_reserved(p), "{p}");
        }
        for p in ["var", "var/lib", "var/lib/slipwayx", "etc/slipwayrc", "usr/bin/slipway"] {
            assert!(!is_reserved(p), "{p}");
        }
        // Their parents may get new metadata but not be deleted or replaced.
        for p in ["var", "var/lib", "var/log", "etc", ""] {
            assert!(holds_reserved(p), "{p}");
        }
        assert!(!holds_reserved("usr") && !holds_reserved("var/lib/apt"));
    }

    #[test]
    fn layers_find_the_top_change_and_who_supersedes() {
        let change = |p: &str| Change {
            path: p.into(),
            below: Some(Snapshot::Absent),
            above: Snapshot::Absent,
            version: None,
            below_version: None,
        };
        let pkg = |id: &str, paths: &[&str], sup: &[&str]| Installed {
            id: id.into(),
            title: id.into(),
            version: "1".into(),
            kind: Kind::Hotfix,
            mode: Mode::Installed,
            when: String::new(),
            source: String::new(),
            signer: None,
            package_blake3: String::new(),
            supersedes: sup.iter().map(|s| s.to_string()).collect(),
            requires: vec![],
            changes: paths.iter().map(|p| change(p)).collect(),
            pending: vec![],
        };
        let st = State {
            format: STATE_FORMAT,
            packages: vec![pkg("A", &["x", "y"], &[]), pkg("B", &["y"], &["A"]), pkg("C", &["z"], &[])],
        };
        assert_eq!(st.top("x"), Some((0, 0)));
        assert_eq!(st.top("y"), Some((1, 0)));
        assert_eq!(st.top("w"), None);
        assert_eq!(st.superseded_by("A").map(|p| p.id.as_str()), Some("B"));
        assert!(st.superseded_by("C").is_none());
    }
}
