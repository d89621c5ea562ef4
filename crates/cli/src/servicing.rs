//! The servicing commands: keys, packages, integrate, install, uninstall,
//! packages, scan, verify --root, recover. Argument handling and output
//! only; the work is in slipway-package.

use std::fs;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use slipway_package::build::{self, BuildOptions, BuildReport, Header};
use slipway_package::catalog::{self, VerifyOptions};
use slipway_package::container::{OpenOptions, Package, SignatureStatus};
use slipway_package::keys::{self, TrustedKey};
use slipway_package::manifest::{Action, AppliesTo, Kind, Node};
use slipway_package::plan::Plan;
use slipway_package::service::{self, Options, Outcome};
use slipway_package::state::{Mode, State};
use slipway_package::txn::{Progress, Recovered};
use slipway_package::{integrate, rootfs, scan};

use crate::args::*;
use crate::human::bytes;
use crate::progress::CliProgress;

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON"));
}

/// Progress in entries: a bar on a terminal, nothing otherwise.
struct Steps {
    bar: Mutex<Option<ProgressBar>>,
    on: bool,
    quiet: bool,
}

impl Steps {
    fn new(quiet: bool) -> Steps {
        Steps { bar: Mutex::new(None), on: !quiet && std::io::stderr().is_terminal(), quiet }
    }
}

impl Progress for Steps {
    fn phase(&self, name: &str, total: u64) {
        let mut b = self.bar.lock().expect("bar");
        if let Some(old) = b.take() {
            old.finish_and_clear();
        }
        if self.on {
            let bar = ProgressBar::new(total).with_style(
                ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} eta {eta}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_message(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            *b = Some(bar);
        }
    }
    fn advance(&self, n: u64) {
        if let Some(b) = &*self.bar.lock().expect("bar") {
            b.inc(n);
        }
    }
    fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("note: {msg}");
        }
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        if let Some(b) = self.bar.lock().expect("bar").take() {
            b.finish_and_clear();
        }
    }
}

/// Trusted keys: the machine's (ROOT/etc/slipway/trusted.d), optionally the
/// store's, and --trust.
fn trusted(root: &Path, store: Option<&Path>, t: &TrustArgs) -> anyhow::Result<Vec<TrustedKey>> {
    let mut v = keys::trusted_in(&keys::machine_trust_dir(root))?;
    if let Some(s) = store {
        v.extend(keys::trusted_in(&keys::store_trust_dir(s))?);
    }
    for k in &t.keys {
        v.push(keys::load_public(k)?);
    }
    Ok(v)
}

fn note_recovered(r: &Option<Recovered>) {
    if let Some(r) = r {
        eprintln!(
            "note: an interrupted {} of {} (transaction {}) was {}",
            r.action,
            r.package,
            r.txid,
            r.outcome.replace('-', " ")
        );
    }
}

fn signature_text(s: &SignatureStatus) -> String {
    match s {
        SignatureStatus::Signed { key_id, key_source, .. } => {
            format!("signed by key {key_id} (trusted: {})", key_source.display())
        }
        _ => "UNSIGNED (accepted because of --allow-unsigned)".to_string(),
    }
}

fn signature_json(s: &SignatureStatus) -> serde_json::Value {
    match s {
        SignatureStatus::Signed { key_id, key_source, trusted_comment } => {
            json!({"signed": true, "key_id": key_id, "key_file": key_source.to_string_lossy(), "trusted_comment": trusted_comment})
        }
        _ => json!({"signed": false}),
    }
}

fn report_json(r: &BuildReport) -> serde_json::Value {
    json!({"ops": r.ops, "added": r.added, "replaced": r.replaced, "deleted": r.deleted,
        "content_bytes": r.content_bytes, "payload_bytes": r.payload_bytes,
        "full_payload_bytes": r.full_payload_bytes, "deltas": r.deltas, "package_bytes": r.package_bytes})
}

/// The trust directory `key trust`/`key list` work on: the store's when
/// --store was typed and --root was not, else the machine's (default /).
fn trust_dir(g: &Global, root: Option<&Path>) -> std::path::PathBuf {
    match (root, &g.store) {
        (None, Some(store)) if g.store_on_command_line => keys::store_trust_dir(store),
        _ => keys::machine_trust_dir(root.unwrap_or(Path::new("/"))),
    }
}

pub fn key(g: &Global, c: KeyCmd) -> anyhow::Result<i32> {
    match c {
        KeyCmd::New { prefix, json } => {
            let k = keys::new_key(&prefix)?;
            if json {
                print_json(&json!({"schema": "slipway.key-new/1", "id": k.id,
                    "secret": k.secret.to_string_lossy(), "public": k.public.to_string_lossy()}));
            } else {
                println!("key {}: secret {} (keep it safe), public {}", k.id, k.secret.display(), k.public.display());
                println!("trust it on a machine with `slipway key trust {}`", k.public.display());
            }
        }
        KeyCmd::Trust { public, root, json } => {
            let dir = trust_dir(g, root.as_deref());
            let (path, k) = keys::trust(&public, &dir)?;
            if json {
                print_json(&json!({"schema": "slipway.key-trust/1", "id": k.id, "file": path.to_string_lossy()}));
            } else {
                println!("trusted key {} ({})", k.id, path.display());
            }
        }
        KeyCmd::List { root, json } => {
            let dir = trust_dir(g, root.as_deref());
            let ks = keys::trusted_in(&dir)?;
            if json {
                let v: Vec<_> = ks.iter().map(|k| json!({"id": k.id, "file": k.source.to_string_lossy()})).collect();
                print_json(&json!({"schema": "slipway.key-list/1", "dir": dir.to_string_lossy(), "keys": v}));
            } else if ks.is_empty() {
                println!("no trusted keys in {}", dir.display());
            } else {
                for k in ks {
                    println!("{}  {}", k.id, k.source.display());
                }
            }
        }
    }
    Ok(0)
}

fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    Ok(match s {
        "hotfix" => Kind::Hotfix,
        "rollup" => Kind::Rollup,
        "service-pack" | "servicepack" | "sp" => Kind::ServicePack,
        _ => bail!("--kind must be hotfix, rollup or service-pack, not {s:?}"),
    })
}

fn open_package(p: &Path, root: Option<&Path>, t: &TrustArgs) -> anyhow::Result<Package> {
    let keys = trusted(root.unwrap_or(Path::new("/")), None, t)?;
    Ok(Package::open(p, &OpenOptions { trusted: &keys, allow_unsigned: t.allow_unsigned })?)
}

pub fn package(g: &Global, c: PackageCmd) -> anyhow::Result<i32> {
    match c {
        PackageCmd::Build(a) => {
            let key = match &a.sign {
                Some(k) => Some(keys::load_secret(k)?.0),
                None => None,
            };
            let opts = BuildOptions { deltas: !a.no_deltas, level: a.level };
            let r = if let Some(dir) = &a.from {
                build::from_dir(dir, a.manifest.as_deref().expect("clap requires it"), &opts, key.as_ref(), &a.output)?
            } else {
                let d = a.diff.as_ref().expect("clap: from or diff");
                let id = a.id.clone().expect("clap requires --id");
                let header = Header {
                    title: a.title.clone().unwrap_or_else(|| id.clone()),
                    id,
                    version: a.pkg_version.clone(),
                    kind: parse_kind(&a.kind)?,
                    description: a.description.clone(),
                    applies_to: AppliesTo { images: a.images.clone(), os_id: a.os_id.clone(), ..Default::default() },
                    requires: a.requires.clone(),
                    supersedes: a.supersedes.clone(),
                };
                build::from_diff(&d[0], &d[1], header, &opts, key.as_ref(), &a.output)?
            };
            if a.json {
                print_json(&json!({"schema": "slipway.package-build/1", "package": a.output.to_string_lossy(),
                    "signed": key.is_some(), "report": report_json(&r)}));
            } else {
                println!(
                    "built {}: {} operations ({} added, {} replaced, {} deleted), {} of content in a {} payload \
                     ({} as full files; {} deltas), package {}{}",
                    a.output.display(),
                    r.ops,
                    r.added,
                    r.replaced,
                    r.deleted,
                    bytes(r.content_bytes),
                    bytes(r.payload_bytes),
                    bytes(r.full_payload_bytes),
                    r.deltas,
                    bytes(r.package_bytes),
                    if key.is_some() { ", signed" } else { ", UNSIGNED" }
                );
            }
        }
        PackageCmd::Info(a) => {
            let p = open_package(&a.package, a.root.as_deref(), &a.trust)?;
            let m = &p.manifest;
            if a.json {
                print_json(&json!({"schema": "slipway.package-info/1", "package": a.package.to_string_lossy(),
                    "signature": signature_json(&p.signature), "manifest": m}));
                return Ok(0);
            }
            println!("{} {} ({}): {}", m.id, m.version, m.kind.as_str(), m.title);
            if !m.description.is_empty() {
                println!("  {}", m.description);
            }
            println!("  built {}; {}", m.created, signature_text(&p.signature));
            let at = &m.applies_to;
            if !at.images.is_empty() {
                println!("  applies to images: {}", at.images.join(", "));
            }
            if let Some(os) = &at.os_id {
                println!(
                    "  applies to: {os} {}..{}",
                    at.version_min.as_deref().unwrap_or(""),
                    at.version_max.as_deref().unwrap_or("")
                );
            }
            if !m.requires.is_empty() {
                println!("  requires: {}", m.requires.join(", "));
            }
            if !m.supersedes.is_empty() {
                println!("  supersedes: {}", m.supersedes.join(", "));
            }
            let count = |act: Action| m.ops.iter().filter(|o| o.action == act).count();
            let deltas = m
                .ops
                .iter()
                .filter(|o| matches!(o.entry.as_ref().map(|e| &e.node), Some(Node::File { data, .. }) if data.encoding.is_delta()))
                .count();
            println!(
                "  {} operations: {} add, {} replace, {} delete; payload {} ({} deltas)",
                m.ops.len(),
                count(Action::Add),
                count(Action::Replace),
                count(Action::Delete),
                bytes(m.payload.size),
                deltas
            );
            if a.verbose {
                for o in &m.ops {
                    let what = match o.entry.as_ref().map(|e| &e.node) {
                        Some(Node::File { size, data, .. }) => {
                            format!("file {} ({})", bytes(*size), data.encoding.as_str())
                        }
                        Some(Node::Hardlink { target }) => format!("hard link to {target}"),
                        Some(Node::Dir) => "dir".into(),
                        Some(Node::Symlink { target }) => format!("symlink to {target}"),
                        None => String::new(),
                    };
                    let action = match o.action {
                        Action::Add => "add",
                        Action::Replace => "replace",
                        Action::Delete => "delete",
                    };
                    println!(
                        "  {action:<8} {} {what}{}",
                        o.path,
                        o.version.as_ref().map(|v| format!(" [{v}]")).unwrap_or_default()
                    );
                }
            }
        }
        PackageCmd::Verify(a) => {
            let p = open_package(&a.package, a.root.as_deref(), &a.trust)?;
            if a.json {
                print_json(&json!({"schema": "slipway.package-verify/1", "package": a.package.to_string_lossy(),
                    "id": p.manifest.id, "ok": true, "signature": signature_json(&p.signature),
                    "ops": p.manifest.ops.len(), "payload_bytes": p.manifest.payload.size}));
            } else {
                println!(
                    "{}: {} {} is intact: {}; every hash of its {} operations checks",
                    a.package.display(),
                    p.manifest.id,
                    p.manifest.version,
                    signature_text(&p.signature),
                    p.manifest.ops.len()
                );
            }
        }
        PackageCmd::Extract(a) => {
            let p = open_package(&a.package, a.root.as_deref(), &a.trust)?;
            let r = extract(&p, &a.dest, a.base.as_deref())?;
            if a.json {
                print_json(&json!({"schema": "slipway.package-extract/1", "dest": a.dest.to_string_lossy(),
                    "written": r.0, "skipped_deltas": r.1}));
            } else {
                println!("extracted {} entries of {} into {}", r.0, p.manifest.id, a.dest.display());
                if !r.1.is_empty() {
                    println!(
                        "skipped {} delta entries (give --base OLD_TREE to rebuild them), first: {}",
                        r.1.len(),
                        r.1[0]
                    );
                }
            }
        }
    }
    let _ = g;
    Ok(0)
}

/// Writes every entry of a package below `dest` (a new, empty directory),
/// through the fstree target that never follows a symlink.
fn extract(p: &Package, dest: &Path, base: Option<&Path>) -> anyhow::Result<(usize, Vec<String>)> {
    use slipway_fstree::{ApplyOptions, EntryName, Target};
    if fs::read_dir(dest).map(|mut d| d.next().is_some()).unwrap_or(false) {
        bail!("{} is not empty; extract into a new or empty directory", dest.display());
    }
    let t = Target::open(dest, ApplyOptions::default())?;
    let base_root = base.map(rootfs::Root::open).transpose()?;
    let mut written = 0;
    let mut skipped = vec![];
    let mut dirs_meta = vec![];
    for op in &p.manifest.ops {
        let Some(e) = &op.entry else { continue };
        let comps: Vec<EntryName> =
            op.path.split('/').map(|c| EntryName::new(c.as_bytes().to_vec())).collect::<Result<_, _>>()?;
        let (name, parents) = comps.split_last().context("empty path")?;
        // Parents the package does not list are made as plain directories.
        let mut dir = t.open_dir(&[])?;
        for (i, c) in parents.iter().enumerate() {
            dir = match t.open_dir(&parents[..=i]) {
                Ok(d) => d,
                Err(_) => dir.create_dir(c)?,
            };
        }
        let meta = rootfs::Meta::of_entry(e).to_metadata();
        match &e.node {
            Node::File { data, .. } => {
                let base_bytes = if data.encoding.is_delta() {
                    match &base_root {
                        Some(r) => Some(r.read(&op.path)?),
                        None => {
                            skipped.push(op.path.clone());
                            continue;
                        }
                    }
                } else {
                    None
                };
                let mut f = dir.create_file(name)?;
                {
                    let mut w = std::io::BufWriter::new(&mut f);
                    p.decode_to(&e.node, base_bytes.as_deref(), &mut w)?;
                    std::io::Write::flush(&mut w)?;
                }
                dir.finish_file(name, &f, &meta)?;
            }
            Node::Hardlink { target } => {
                let tc: Vec<EntryName> =
                    target.split('/').map(|c| EntryName::new(c.as_bytes().to_vec())).collect::<Result<_, _>>()?;
                let (tn, tp) = tc.split_last().context("empty path")?;
                let from = t.open_dir(tp)?;
                dir.hardlink(name, &from, tn)?;
            }
            Node::Dir => {
                let d = match t.open_dir(&comps) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(name)?,
                };
                drop(d);
                dirs_meta.push((comps.clone(), meta));
            }
            Node::Symlink { target } => dir.symlink(name, target.as_bytes(), &meta)?,
        }
        written += 1;
    }
    // Directory metadata last, deepest first.
    dirs_meta.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
    for (comps, meta) in dirs_meta {
        t.open_dir(&comps)?.finish(&meta)?;
    }
    Ok((written, skipped))
}

fn plan_text(p: &Plan, verbose: bool) {
    println!(
        "{} {} {}: {} to add, {} to replace, {} to delete, {} unchanged, {} skipped",
        p.action, p.package, p.version, p.adds, p.replaces, p.deletes, p.unchanged, p.skipped
    );
    println!("  writes {}, backs up {} by copy (hard links cost nothing)", bytes(p.write_bytes), bytes(p.backup_bytes));
    for s in &p.space {
        println!(
            "  space on {}: needs {}, {} free{}",
            s.at,
            bytes(s.needed),
            bytes(s.available),
            if s.needed > s.available { "  NOT ENOUGH" } else { "" }
        );
    }
    for d in &p.downgrades {
        println!("  DOWN IN VERSION: {} {} ({}) -> {}", d.path, d.installed, d.owner, d.brings);
    }
    for w in &p.warnings {
        println!("  warning: {w}");
    }
    if verbose {
        for i in &p.items {
            let v = match (&i.from_version, &i.to_version) {
                (Some(a), Some(b)) => format!(" [{a} -> {b}]"),
                (None, Some(b)) => format!(" [{b}]"),
                _ => String::new(),
            };
            println!(
                "  {:<9} {:<7} {}{}{}{}",
                i.change,
                i.kind,
                i.path,
                if i.bytes > 0 { format!(" ({})", bytes(i.bytes)) } else { String::new() },
                v,
                i.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default()
            );
        }
    }
}

fn outcomes_text(out: &[Outcome]) {
    for o in out {
        match o {
            Outcome::Installed { plan, .. } | Outcome::Integrated { plan, .. } | Outcome::Uninstalled { plan, .. } => {
                plan_text(plan, false)
            }
            Outcome::Planned { plan, .. } => plan_text(plan, true),
            Outcome::Skipped { id, reason } => println!("skipped {id}: {reason}"),
        }
    }
}

fn options(t: &TrustArgs, keys: Vec<TrustedKey>, dry_run: bool, allow_regress: bool) -> Options {
    Options { trusted: keys, allow_unsigned: t.allow_unsigned, allow_regress, dry_run, force: false, image: None }
}

pub fn install(g: &Global, a: InstallArgs) -> anyhow::Result<i32> {
    let keys = trusted(&a.root, None, &a.trust)?;
    let opts = options(&a.trust, keys, a.dry_run, a.allow_regress);
    let (out, rec) = service::install(&a.root, &a.packages, Mode::Installed, &opts, &Steps::new(g.quiet))?;
    note_recovered(&rec);
    if a.json {
        print_json(&json!({"schema": "slipway.install/1", "root": a.root.to_string_lossy(), "dry_run": a.dry_run,
            "recovered": rec, "packages": out}));
    } else {
        outcomes_text(&out);
    }
    Ok(0)
}

pub fn integrate(g: &Global, a: IntegrateArgs) -> anyhow::Result<i32> {
    let steps = Steps::new(g.quiet);
    if let Some(dir) = &a.tree {
        let keys = trusted(Path::new("/"), None, &a.trust)?;
        let opts = options(&a.trust, keys, a.dry_run, a.allow_regress);
        let out = integrate::tree(dir, &a.packages, &opts, &steps)?;
        if a.json {
            print_json(&json!({"schema": "slipway.integrate/1", "tree": dir.to_string_lossy(), "packages": out}));
        } else {
            outcomes_text(&out);
        }
        return Ok(0);
    }
    let spec = a.image.as_deref().expect("clap: image or tree");
    let mut s = crate::commands::open(g)?;
    let keys = trusted(Path::new("/"), Some(s.path()), &a.trust)?;
    let opts = options(&a.trust, keys, a.dry_run, a.allow_regress);
    let p = CliProgress::new(g.quiet);
    let r = integrate::image(&mut s, &spec.parse()?, &a.packages, &opts, &steps, &p)?;
    if a.json {
        print_json(&json!({"schema": "slipway.integrate/1", "image": r}));
    } else {
        outcomes_text(&r.outcomes);
        match &r.to {
            Some(to) => println!(
                "wrote {to} from {} with {} package(s) recorded: {}",
                r.from,
                r.packages.len(),
                r.packages.iter().map(|p| format!("{} {}", p.id, p.version)).collect::<Vec<_>>().join(", ")
            ),
            None => println!("{} unchanged: nothing to integrate", r.from),
        }
    }
    Ok(0)
}

pub fn uninstall(g: &Global, a: UninstallArgs) -> anyhow::Result<i32> {
    let opts = Options { dry_run: a.dry_run, force: a.force, ..Default::default() };
    let (out, rec) = service::uninstall(&a.root, &a.id, &opts, &Steps::new(g.quiet))?;
    note_recovered(&rec);
    if a.json {
        print_json(&json!({"schema": "slipway.uninstall/1", "root": a.root.to_string_lossy(), "recovered": rec,
            "result": out}));
    } else {
        outcomes_text(std::slice::from_ref(&out));
    }
    Ok(0)
}

pub fn packages(a: RootJsonArgs) -> anyhow::Result<i32> {
    let (st, rec) = service::list(&a.root)?;
    note_recovered(&rec);
    if a.json {
        let v: Vec<_> = st
            .packages
            .iter()
            .map(|p| {
                json!({"id": p.id, "title": p.title, "version": p.version, "kind": p.kind, "mode": p.mode,
                "when": p.when, "source": p.source, "signer": p.signer, "files": p.changes.len(),
                "pending": p.pending.len(), "supersedes": p.supersedes, "requires": p.requires})
            })
            .collect();
        print_json(&json!({"schema": "slipway.packages/1", "root": a.root.to_string_lossy(), "packages": v}));
        return Ok(0);
    }
    if st.packages.is_empty() {
        println!("no update packages on {}", a.root.display());
    }
    for p in &st.packages {
        let by = st.superseded_by(&p.id).map(|s| format!(", superseded by {}", s.id)).unwrap_or_default();
        println!(
            "{:<20} {:<12} {:<12} {:<10} {}  {} files, from {} ({}){by}",
            p.id,
            p.version,
            p.kind.as_str(),
            match p.mode {
                Mode::Installed => "installed",
                Mode::Integrated => "integrated",
            },
            p.when,
            p.changes.len(),
            p.source,
            p.signer.as_deref().map(|s| format!("signed by {s}")).unwrap_or_else(|| "unsigned".into()),
        );
    }
    Ok(0)
}

pub fn scan(g: &Global, a: ScanArgs) -> anyhow::Result<i32> {
    let r = if a.installed {
        let (st, rec) = service::list(&a.root)?;
        note_recovered(&rec);
        scan::installed(&st, a.verbose)
    } else {
        let keys = trusted(&a.root, None, &a.trust)?;
        let opts = options(&a.trust, keys, true, false);
        let pkgs = service::open_packages(&a.packages, &opts)?;
        let (root, _lock, rec) = service::open_root_for(&a.root, false)?;
        note_recovered(&rec);
        let st = State::load(root.path())?;
        scan::before(&root, &st, &pkgs, a.verbose)
    };
    let mut text = String::new();
    for c in &r.checked {
        text.push_str(&format!("checked {}: installed {}, {} brings {}\n", c.path, c.installed, c.package, c.brings));
    }
    for f in &r.findings {
        text.push_str(&format!(
            "REGRESSES {}: {} has {}, {} brings {}\n",
            f.path, f.newer_owner, f.newer_version, f.older_package, f.older_version
        ));
    }
    text.push_str(&format!(
        "{} package(s) scanned, {} file version(s) compared, {} regression(s)\n",
        r.packages.len(),
        r.compared,
        r.findings.len()
    ));
    let value =
        json!({"schema": "slipway.scan/1", "root": a.root.to_string_lossy(), "installed": a.installed, "report": r});
    if let Some(log) = &a.log {
        let body = if a.json { serde_json::to_string_pretty(&value)? + "\n" } else { text.clone() };
        fs::write(log, body).with_context(|| format!("writing {}", log.display()))?;
    }
    if !g.quiet {
        if a.json {
            print_json(&value);
        } else {
            print!("{text}");
        }
    }
    Ok(if r.findings.is_empty() { 0 } else { 3 })
}

pub fn verify_root(g: &Global, a: &VerifyArgs, root: &Path) -> anyhow::Result<i32> {
    let keys = trusted(root, None, &a.trust)?;
    let mut store = match &a.image {
        Some(_) => Some(crate::commands::open(g)?),
        None => None,
    };
    let image = match (&mut store, &a.image) {
        (Some(s), Some(spec)) => Some(s.open_image(&spec.parse()?)?),
        _ => None,
    };
    let opts = VerifyOptions {
        trusted: &keys,
        allow_unsigned: a.trust.allow_unsigned,
        repair: a.repair,
        image: store.as_mut().zip(image),
    };
    let r = catalog::verify(root, opts, &Steps::new(g.quiet))?;
    let bad = r.problems.iter().filter(|p| !p.repaired).count();
    if a.json {
        print_json(&json!({"schema": "slipway.verify-root/1", "root": root.to_string_lossy(), "report": r}));
    } else {
        for p in &r.problems {
            println!(
                "{}{}: {} ({}): expected {}, found {}",
                if p.repaired { "repaired " } else { "" },
                p.path,
                p.problem,
                p.owner,
                p.expected,
                p.found
            );
        }
        for (path, why) in &r.unrepaired {
            println!("cannot repair {path}: {why}");
        }
        println!(
            "{} path(s) checked against {} package(s){}: {} problem(s), {} repaired",
            r.checked,
            r.packages.len(),
            r.image.as_ref().map(|i| format!(" and image {i}")).unwrap_or_default(),
            r.problems.len(),
            r.repaired
        );
        if bad > 0 && !a.repair {
            println!("run again with --repair to restore them");
        }
    }
    Ok(if bad > 0 { 1 } else { 0 })
}

pub fn recover(a: RootJsonArgs) -> anyhow::Result<i32> {
    let r = service::recover(&a.root)?;
    if a.json {
        print_json(&json!({"schema": "slipway.recover/1", "root": a.root.to_string_lossy(), "recovered": r}));
    } else {
        match r {
            Some(r) => {
                println!("{} of {} (transaction {}): {}", r.action, r.package, r.txid, r.outcome.replace('-', " "))
            }
            None => println!("nothing to recover on {}", a.root.display()),
        }
    }
    Ok(0)
}
