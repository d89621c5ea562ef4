//! generalize, specialize, answer check/new/export/schema and firstboot.

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::json;
use slipway_sysprep::answer::{self, Facts};
use slipway_sysprep::rootdir::{Perm, RootDir};
use slipway_sysprep::{firstboot, generalize, specialize};

use crate::args::{AnswerCmd, FactArgs, FirstbootArgs, GeneralizeArgs, Global, SpecializeArgs};
use crate::commands::print_json;
use crate::human::bytes;

/// Exit status when a check finds problems (as `scan`).
const FOUND: i32 = 3;

pub fn generalize(a: GeneralizeArgs) -> anyhow::Result<i32> {
    if a.list_ops {
        let ops = generalize::operations();
        if a.json {
            let v: Vec<_> =
                ops.iter().map(|o| json!({"name": o.name, "default": o.default, "summary": o.summary})).collect();
            print_json(&json!({"schema": "slipway.generalize-ops/1", "operations": v}));
        } else {
            for o in ops {
                println!("{:<24} {:<3} {}", o.name, if o.default { "*" } else { "" }, o.summary);
            }
            println!("\n* = in `defaults`");
        }
        return Ok(0);
    }
    let root = a.root.context("give the ROOT to generalize")?;
    let ops = generalize::select(a.ops.as_deref())?;
    let r = generalize::generalize(&root, &ops, &generalize::Options { dry_run: a.dry_run, force: a.force })?;
    if a.json {
        print_json(&json!({"schema": "slipway.generalize/1", "report": r}));
    } else {
        let verb = if r.dry_run { "would remove" } else { "removed" };
        for o in &r.operations {
            let what = if o.entries == 0 && o.written.is_empty() {
                o.note.clone().unwrap_or_else(|| "nothing to do".into())
            } else {
                let mut s = format!("{verb} {} ({})", entries(o.entries), bytes(o.bytes));
                if !o.written.is_empty() {
                    s.push_str(&format!(
                        ", {} {}",
                        if r.dry_run { "would write" } else { "wrote" },
                        o.written.join(" ")
                    ));
                }
                if let Some(n) = &o.note {
                    s.push_str(&format!("; {n}"));
                }
                s
            };
            println!("{:<24} {what}", o.name);
            for p in o.removed.iter().take(5) {
                println!("  - {p}");
            }
            if o.removed.len() > 5 {
                println!("  … and {} more (--json lists all)", o.removed.len() - 5);
            }
        }
        for f in &r.findings {
            println!("warning: {}: {}\n  what to do: {}", f.path, f.problem, f.advice);
        }
        println!(
            "{} {}: {verb} {}, {}",
            if r.dry_run { "dry run on" } else { "generalized" },
            root.display(),
            entries(r.removed_entries),
            bytes(r.removed_bytes)
        );
    }
    Ok(if r.findings.is_empty() { 0 } else { FOUND })
}

fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".into()
    } else {
        format!("{n} entries")
    }
}

fn facts(f: &FactArgs) -> anyhow::Result<Facts> {
    let mut facts = match &f.machine {
        Some(p) => Facts::load(p)?,
        None => Facts::default(),
    };
    for pair in &f.facts {
        facts.set_pair(pair)?;
    }
    Ok(facts)
}

pub fn specialize(a: SpecializeArgs) -> anyhow::Result<i32> {
    let answer = answer::load(&a.answer)?;
    let facts = facts(&a.facts)?;
    let opts = specialize::Options { facts, slipway_binary: a.slipway_binary, force: a.force };
    let r = specialize::specialize(&a.root, &answer, &opts)?;
    if a.json {
        print_json(&json!({"schema": "slipway.specialize/1", "report": r}));
        return Ok(0);
    }
    println!("specialized {}", a.root.display());
    if let Some(h) = &r.hostname {
        println!("  host name     {h}");
    }
    match &r.machine_id {
        Some(id) => println!("  machine-id    {id}"),
        None => println!("  machine-id    made at first boot"),
    }
    let acc = &r.accounts;
    if !acc.users_created.is_empty() || !acc.users_updated.is_empty() || !acc.groups_created.is_empty() {
        println!(
            "  accounts      users created: {}; updated: {}; groups created: {}",
            list(&acc.users_created),
            list(&acc.users_updated),
            list(&acc.groups_created)
        );
    }
    if let Some(s) = &r.network.stack {
        println!(
            "  network       {} files for {}",
            r.network.written.len(),
            serde_json::to_value(s)?.as_str().unwrap_or("")
        );
    }
    for k in &r.ssh_host_keys {
        println!("  ssh host key  {k}");
    }
    println!("  files written {}", r.written.len());
    println!(
        "  first boot    {}",
        if r.firstboot_steps.is_empty() { "-".into() } else { r.firstboot_steps.join(", ") }
    );
    Ok(0)
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

pub fn answer(g: &Global, c: AnswerCmd) -> anyhow::Result<i32> {
    match c {
        AnswerCmd::Schema => {
            print_json(&answer::schema::json_schema());
            Ok(0)
        }
        AnswerCmd::Check(a) => {
            let file = a.file.display().to_string();
            let mut problems = match answer::load(&a.file) {
                Ok(ans) => {
                    if let Some(root) = &a.root {
                        let r = RootDir::open(root)?;
                        answer::check::check(&ans, &r)
                    } else if let Some(img) = &a.image {
                        let mut store = crate::commands::open(g)?;
                        let view = answer::check::StoreImage::open(&mut store, img)?;
                        answer::check::check(&ans, &view)
                    } else {
                        Vec::new()
                    }
                }
                Err(refused) => refused.problems,
            };
            problems.sort_by_key(|p| p.line.unwrap_or(0));
            let against = a
                .root
                .as_ref()
                .map(|r| format!("root {}", r.display()))
                .or(a.image.as_ref().map(|i| format!("image {i}")));
            if a.json {
                print_json(&json!({
                    "schema": "slipway.answer-check/1",
                    "file": file,
                    "against": against,
                    "ok": problems.is_empty(),
                    "problems": problems,
                }));
            } else if problems.is_empty() {
                match &against {
                    Some(x) => println!("{file}: ok, and the {x} can satisfy it"),
                    None => println!("{file}: ok (give --image or --root to check it against an image)"),
                }
            } else {
                eprintln!("{file}: {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" });
                for p in &problems {
                    eprintln!("  {p}");
                }
            }
            Ok(if problems.is_empty() { 0 } else { FOUND })
        }
        AnswerCmd::New(a) => {
            if let Some(o) = &a.output {
                if o.exists() && !a.force {
                    bail!("{} exists; pass --force to overwrite it", o.display());
                }
            }
            let preset = a.hostname.is_some()
                || a.domain.is_some()
                || a.user.is_some()
                || a.password_hash.is_some()
                || !a.ssh_keys.is_empty()
                || a.timezone.is_some()
                || a.no_sudo
                || a.dhcp;
            if preset && !a.non_interactive {
                bail!(
                    "--hostname, --user, --password-hash and the other settings are for --non-interactive; \
                     add --non-interactive, or leave them out to be asked"
                );
            }
            let ans = if a.non_interactive {
                answer::new::from_options(&answer::new::NewOptions {
                    hostname: a.hostname,
                    user: a.user,
                    password_hash: a.password_hash,
                    ssh_keys: a.ssh_keys,
                    timezone: a.timezone,
                    sudo: !a.no_sudo,
                    domain: a.domain,
                    network_dhcp: a.dhcp,
                })?
            } else {
                let stdin = std::io::stdin();
                let mut input = stdin.lock();
                let mut err = std::io::stderr();
                answer::new::interactive(&mut input, &mut err)?
            };
            let text = answer::new::to_toml(&ans);
            match &a.output {
                Some(o) => {
                    write_atomic(o, text.as_bytes())?;
                    eprintln!(
                        "wrote {} (check it against an image: slipway answer check {} --image NAME)",
                        o.display(),
                        o.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        AnswerCmd::Export(a) => {
            let ans = answer::load(&a.file)?;
            let facts = facts(&a.facts)?;
            let seed = answer::nocloud::export(&ans, &facts, a.instance_id.as_deref())?;
            let files = answer::nocloud::write_seed(&seed, &a.nocloud)?;
            if a.json {
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                print_json(&json!({"schema": "slipway.answer-export/1", "dir": a.nocloud, "files": names}));
            } else {
                for f in &files {
                    println!("wrote {}", f.display());
                }
                println!(
                    "a NoCloud seed: put these files on a volume labelled CIDATA, or serve them over HTTP and boot with \
                     ds=nocloud-net;s=http://HOST/PATH/ (cloud-init 24.1 and later also take ds=nocloud;s=)"
                );
            }
            Ok(0)
        }
    }
}

/// Writes a file that may hold password hashes: mode 0600, owned by the
/// caller, atomically (the same staged write specialize uses in a root).
fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{}: give a file name in UTF-8", path.display()))?;
    let me = Perm { mode: 0o600, uid: rustix::process::geteuid().as_raw(), gid: rustix::process::getegid().as_raw() };
    RootDir::open(dir)?.write(name, data, me)
}

pub fn firstboot(a: FirstbootArgs) -> anyhow::Result<i32> {
    let r = match firstboot::run(&firstboot::RunOptions { root: a.root.clone(), every_boot: a.every_boot }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(3);
        }
    };
    if a.json {
        print_json(&json!({"schema": "slipway.firstboot/1", "report": r}));
    }
    Ok(r.exit_code())
}
