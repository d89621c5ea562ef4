//! Slipstream: packages applied offline to an image (a new image version
//! that records them) or to a plain directory tree.
//!
//! Both go through the install engine in `integrated` mode: the packages are
//! planned, staged and committed exactly as on a running machine, but
//! without backups (an integrated package is part of the image, as a
//! slipstreamed service pack was). The tree's `var/lib/slipway/state.json`
//! lists them, so a machine deployed from the image knows what it has.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use slipway_store::{apply, capture, ApplyOptions, CaptureOptions, ImageSpec, PackageRef, Store};

use crate::service::{self, Options, Outcome};
use crate::state::{Mode, State};
use crate::txn::Progress;

#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub from: String,
    /// The new version, or `None` when nothing was integrated.
    pub to: Option<String>,
    pub outcomes: Vec<Outcome>,
    pub packages: Vec<PackageRef>,
}

/// Integrates packages into a directory tree.
pub fn tree(dir: &Path, packages: &[PathBuf], opts: &Options, progress: &dyn Progress) -> anyhow::Result<Vec<Outcome>> {
    Ok(service::install(dir, packages, Mode::Integrated, opts, progress)?.0)
}

/// Integrates packages into image `spec`, writing a new version of it.
pub fn image(
    store: &mut Store,
    spec: &ImageSpec,
    packages: &[PathBuf],
    opts: &Options,
    progress: &dyn Progress,
    store_progress: &dyn slipway_store::Progress,
) -> anyhow::Result<ImageReport> {
    let img = store.open_image(spec)?;
    let mut opts = opts.clone();
    opts.image = Some(img.record.name.clone());
    // Packages are opened and checked before the image is touched.
    service::open_packages(packages, &opts)?;
    // The store's own tmp/ is emptied whenever its writer lock is taken, so
    // the working tree lives in work/; trees that killed runs left behind
    // (their process is gone) are removed here.
    let work_dir = store.path().join("work");
    if let Ok(rd) = std::fs::read_dir(&work_dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = n.strip_prefix("integrate-").and_then(|p| p.parse::<u32>().ok()) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let work = work_dir.join(format!("integrate-{}", std::process::id()));
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let result = (|| {
        apply(store, &img, &work, ApplyOptions::default(), store_progress)?;
        let outcomes = tree(&work, packages, &opts, progress)?;
        if opts.dry_run || !outcomes.iter().any(|o| matches!(o, Outcome::Integrated { .. })) {
            return Ok(ImageReport { from: img.label(), to: None, outcomes, packages: img.record.packages.clone() });
        }
        let st = State::load(&work)?;
        let mut refs = img.record.packages.clone();
        for p in st.packages.iter().filter(|p| p.mode == Mode::Integrated) {
            if !refs.iter().any(|r| r.id == p.id) {
                refs.push(PackageRef {
                    id: p.id.clone(),
                    version: p.version.clone(),
                    kind: p.kind.as_str().to_string(),
                    blake3: p.package_blake3.clone(),
                });
            }
        }
        let ids: Vec<&str> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Integrated { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let copts = CaptureOptions {
            name: img.record.name.clone(),
            description: format!("{} + {}", img.label(), ids.join(", ")),
            packages: refs.clone(),
            ..Default::default()
        };
        let r = capture(store, &work, &copts, store_progress)?;
        Ok(ImageReport { from: img.label(), to: Some(r.image), outcomes, packages: refs })
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}
