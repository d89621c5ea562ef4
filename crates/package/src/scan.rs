//! The regression scan (the old Hotfix Scan Tool): which installed hotfixes
//! have files newer than what a package brings, before it is installed; and,
//! after the fact, which installed packages were regressed by later ones.
//!
//! Versions are per file (`version` of an operation; for files no slipway
//! package brought, the version of the Debian package that owns them), in
//! Debian version order. Files without a version are not compared.

use serde::Serialize;

use crate::container::Package;
use crate::dpkg;
use crate::manifest::Node;
use crate::plan::current_version;
use crate::rootfs::Root;
use crate::state::{Snapshot, State};
use crate::version;

/// A file that would go (or went) down in version.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub path: String,
    /// Who holds the newer version: an installed package id, or `dpkg:NAME`.
    pub newer_owner: String,
    pub newer_version: String,
    /// The package that brings (or brought) the older version.
    pub older_package: String,
    pub older_version: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanReport {
    /// Packages scanned (for `--installed`, the installed ones).
    pub packages: Vec<String>,
    /// Files with a version on both sides that were compared.
    pub compared: usize,
    /// Every comparison, when asked for (`--verbose`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<Checked>,
    pub findings: Vec<Finding>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    pub path: String,
    pub installed: String,
    pub brings: String,
    pub package: String,
}

/// Before install: the files of `pkgs` that would go down in version.
pub fn before(root: &Root, state: &State, pkgs: &[Package], verbose: bool) -> ScanReport {
    let owners = dpkg::owners(root.path());
    let mut r = ScanReport::default();
    for p in pkgs {
        r.packages.push(p.manifest.id.clone());
        if state.find(&p.manifest.id).is_some() || state.superseded_by(&p.manifest.id).is_some() {
            continue; // would be skipped by install
        }
        for op in &p.manifest.ops {
            // Versions of files only (a directory's version says nothing).
            if !matches!(op.entry.as_ref().map(|e| &e.node), Some(Node::File { .. } | Node::Hardlink { .. })) {
                continue;
            }
            let (Some(brings), Some((have, owner))) = (&op.version, current_version(state, &owners, &op.path)) else {
                continue;
            };
            r.compared += 1;
            if verbose {
                r.checked.push(Checked {
                    path: op.path.clone(),
                    installed: have.clone(),
                    brings: brings.clone(),
                    package: p.manifest.id.clone(),
                });
            }
            if version::compare(brings, &have).is_lt() {
                r.findings.push(Finding {
                    path: op.path.clone(),
                    newer_owner: owner,
                    newer_version: have,
                    older_package: p.manifest.id.clone(),
                    older_version: brings.clone(),
                });
            }
        }
    }
    r
}

/// After the fact: installed packages whose files a later package took down
/// in version.
pub fn installed(state: &State, verbose: bool) -> ScanReport {
    let mut r = ScanReport { packages: state.packages.iter().map(|p| p.id.clone()).collect(), ..Default::default() };
    for (k, p) in state.packages.iter().enumerate() {
        for c in &p.changes {
            let Some(mine) = c.version.as_ref().filter(|_| matches!(c.above, Snapshot::File { .. })) else { continue };
            for q in &state.packages[k + 1..] {
                let Some(theirs) = q.changes.iter().find(|x| x.path == c.path).and_then(|x| x.version.as_ref()) else {
                    continue;
                };
                r.compared += 1;
                if verbose {
                    r.checked.push(Checked {
                        path: c.path.clone(),
                        installed: mine.clone(),
                        brings: theirs.clone(),
                        package: q.id.clone(),
                    });
                }
                if version::compare(theirs, mine).is_lt() {
                    r.findings.push(Finding {
                        path: c.path.clone(),
                        newer_owner: p.id.clone(),
                        newer_version: mine.clone(),
                        older_package: q.id.clone(),
                        older_version: theirs.clone(),
                    });
                }
            }
        }
    }
    r
}
