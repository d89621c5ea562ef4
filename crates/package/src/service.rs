//! The servicing commands on a root: install, integrate into a tree,
//! uninstall, recover, list. Each takes the root's lock, first finishes or
//! rolls back an interrupted transaction, then plans and runs its own.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::container::{OpenOptions, Package};
use crate::keys::TrustedKey;
use crate::log;
use crate::plan::{self, Plan};
use crate::rootfs::Root;
use crate::state::{self, Mode, State, STATE_DIR};
use crate::txn::{self, Progress, Recovered};

/// Options shared by install, integrate and uninstall.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub trusted: Vec<TrustedKey>,
    /// Excuses a missing signature (never a bad one).
    pub allow_unsigned: bool,
    /// Installs even when files would go down in version.
    pub allow_regress: bool,
    /// Plans and reports, changes nothing.
    pub dry_run: bool,
    /// Uninstall even when another package requires it.
    pub force: bool,
    /// The image name, when integrating into an image (applicability).
    pub image: Option<String>,
}

/// What happened to one package.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Installed {
        id: String,
        plan: Plan,
    },
    Integrated {
        id: String,
        plan: Plan,
    },
    Uninstalled {
        id: String,
        plan: Plan,
    },
    /// `--dry-run`: what would happen.
    Planned {
        id: String,
        plan: Plan,
    },
    Skipped {
        id: String,
        reason: String,
    },
}

/// An exclusive lock on a root's servicing state, held while it lives.
pub struct Lock {
    _file: Option<fs::File>,
}

/// Takes the servicing lock of `root`, waiting for another slipway.
pub fn lock(root: &Root) -> anyhow::Result<Lock> {
    // Refuses a `var/lib` that leads out of the root.
    state::ensure_dir(root, STATE_DIR)?;
    state::ensure_dir(root, state::LOG_DIR)?;
    let dir = root.path().join(STATE_DIR);
    let p = dir.join("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking {}", p.display()))?;
    Ok(Lock { _file: Some(f) })
}

/// Opens a root, takes its lock and recovers an interrupted transaction.
pub fn open_root(path: &Path) -> anyhow::Result<(Root, Lock, Option<Recovered>)> {
    open_root_for(path, true)
}

/// [`open_root`] for commands that only read: a root slipway never serviced
/// (no `var/lib/slipway`) is left exactly as it is.
pub fn open_root_for(path: &Path, write: bool) -> anyhow::Result<(Root, Lock, Option<Recovered>)> {
    let root = Root::open(path)?;
    if !write && root.open_dir(STATE_DIR)?.is_none() {
        return Ok((root, Lock { _file: None }, None));
    }
    let lock = lock(&root)?;
    let rec = txn::recover(&root)?;
    if let Some(r) = &rec {
        log::event(
            &root,
            serde_json::json!({"time": plan::now_rfc3339(), "txid": r.txid, "action": r.action,
                "package": r.package, "event": "recovered", "outcome": r.outcome}),
        )?;
    }
    Ok((root, lock, rec))
}

/// Opens and checks every package before any is used.
pub fn open_packages(paths: &[PathBuf], opts: &Options) -> anyhow::Result<Vec<Package>> {
    let o = OpenOptions { trusted: &opts.trusted, allow_unsigned: opts.allow_unsigned };
    paths.iter().map(|p| Package::open(p, &o).map_err(anyhow::Error::from)).collect()
}

/// Installs (`Mode::Installed`) or integrates (`Mode::Integrated`) packages
/// on a root, one transaction each, in the order given.
pub fn install(
    root_path: &Path,
    packages: &[PathBuf],
    mode: Mode,
    opts: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<(Vec<Outcome>, Option<Recovered>)> {
    let pkgs = open_packages(packages, opts)?;
    let (root, _lock, rec) = open_root(root_path)?;
    let mut st = State::load(root.path())?;
    let mut out = vec![];
    for (i, (pkg, path)) in pkgs.iter().zip(packages).enumerate() {
        let m = &pkg.manifest;
        if st.find(&m.id).is_some() {
            out.push(Outcome::Skipped { id: m.id.clone(), reason: "already installed".into() });
            continue;
        }
        if let Some(by) = st.superseded_by(&m.id) {
            out.push(Outcome::Skipped {
                id: m.id.clone(),
                reason: format!("superseded by {}, which is installed", by.id),
            });
            continue;
        }
        if let Some(later) = pkgs[i + 1..].iter().find(|q| q.manifest.supersedes.iter().any(|s| s == &m.id)) {
            out.push(Outcome::Skipped {
                id: m.id.clone(),
                reason: format!("superseded by {}, given in the same command", later.manifest.id),
            });
            continue;
        }
        if let Some(why) = plan::applicability(&root, &st, pkg, opts.image.as_deref()) {
            bail!("package {} ({}) does not apply to {}: {why}", m.id, path.display(), root.path().display());
        }
        let planned = plan::install(&root, &st, pkg, path, mode)?;
        if opts.dry_run {
            // Later packages of the same run see this one as installed.
            st = planned.journal.state_after;
            out.push(Outcome::Planned { id: m.id.clone(), plan: planned.plan });
            continue;
        }
        if !planned.plan.downgrades.is_empty() && !opts.allow_regress {
            let list: Vec<String> = planned
                .plan
                .downgrades
                .iter()
                .take(10)
                .map(|d| format!("  {}: {} ({}) -> {}", d.path, d.installed, d.owner, d.brings))
                .collect();
            bail!(
                "package {} would take {} file(s) down in version:\n{}\n`slipway scan {} --root {}` shows them all; pass --allow-regress to install anyway",
                m.id,
                planned.plan.downgrades.len(),
                list.join("\n"),
                path.display(),
                root.path().display()
            );
        }
        check_space(&planned.plan)?;
        let txid = planned.journal.txid.clone();
        let after = planned.journal.state_after.clone();
        txn::run(&root, planned.journal, Some(pkg), progress)?;
        log::transaction(&root, &txid, &planned.plan)?;
        st = after;
        out.push(match mode {
            Mode::Installed => Outcome::Installed { id: m.id.clone(), plan: planned.plan },
            Mode::Integrated => Outcome::Integrated { id: m.id.clone(), plan: planned.plan },
        });
    }
    Ok((out, rec))
}

fn check_space(plan: &Plan) -> anyhow::Result<()> {
    if let Some(s) = plan.space.iter().find(|s| s.needed > s.available) {
        bail!(
            "not enough free space on the filesystem of {}: {} needs {} bytes (staging plus backups), {} are free; \
             free some space and run it again",
            s.at,
            plan.package,
            s.needed,
            s.available
        );
    }
    Ok(())
}

/// Uninstalls package `id`, restoring what it changed (or, where a later
/// package sits on top, handing that package the version from below).
pub fn uninstall(
    root_path: &Path,
    id: &str,
    opts: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<(Outcome, Option<Recovered>)> {
    let (root, _lock, rec) = open_root(root_path)?;
    let st = State::load(root.path())?;
    let planned = plan::uninstall(&root, &st, id, opts.force)?;
    if opts.dry_run {
        return Ok((Outcome::Planned { id: id.to_string(), plan: planned.plan }, rec));
    }
    check_space(&planned.plan)?;
    let txid = planned.journal.txid.clone();
    txn::run(&root, planned.journal, None, progress)?;
    log::transaction(&root, &txid, &planned.plan)?;
    Ok((Outcome::Uninstalled { id: id.to_string(), plan: planned.plan }, rec))
}

/// Finishes or rolls back an interrupted transaction.
pub fn recover(root_path: &Path) -> anyhow::Result<Option<Recovered>> {
    Ok(open_root_for(root_path, false)?.2)
}

/// The packages on a root, in install order.
pub fn list(root_path: &Path) -> anyhow::Result<(State, Option<Recovered>)> {
    let (root, _lock, rec) = open_root_for(root_path, false)?;
    Ok((State::load(root.path())?, rec))
}
