//! The servicing log of a root: `var/log/slipway/servicing.jsonl` (one JSON
//! object per action, for machines) and `var/log/slipway/servicing.log` (a
//! readable summary per transaction).

use std::fs::{self, OpenOptions};
use std::io::Write;

use anyhow::Context;
use serde_json::json;

use crate::plan::{now_rfc3339, Plan};
use crate::rootfs::Root;
use crate::state::LOG_DIR;

fn open(root: &Root, name: &str) -> anyhow::Result<fs::File> {
    // Refuses a log directory reached through a symlink.
    root.open_dir("var/log")?;
    let dir = root.path().join(LOG_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let p = dir.join(name);
    OpenOptions::new().create(true).append(true).open(&p).with_context(|| format!("opening {}", p.display()))
}

/// Appends one event.
pub fn event(root: &Root, value: serde_json::Value) -> anyhow::Result<()> {
    let mut f = open(root, "servicing.jsonl")?;
    let mut line = serde_json::to_vec(&value)?;
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_data()?;
    Ok(())
}

/// Logs a finished transaction: every change, then a summary.
pub fn transaction(root: &Root, txid: &str, plan: &Plan) -> anyhow::Result<()> {
    let time = now_rfc3339();
    let mut lines = Vec::new();
    for it in plan.items.iter().filter(|i| i.change != "unchanged") {
        let v = json!({"time": time, "txid": txid, "action": plan.action, "package": plan.package,
            "event": "change", "path": it.path, "change": it.change, "kind": it.kind, "bytes": it.bytes,
            "from_version": it.from_version, "to_version": it.to_version, "note": it.note});
        lines.extend(serde_json::to_vec(&v)?);
        lines.push(b'\n');
    }
    for w in &plan.warnings {
        lines.extend(serde_json::to_vec(&json!({"time": time, "txid": txid, "action": plan.action,
            "package": plan.package, "event": "warning", "message": w}))?);
        lines.push(b'\n');
    }
    lines.extend(serde_json::to_vec(&json!({"time": time, "txid": txid, "action": plan.action,
        "package": plan.package, "version": plan.version, "event": "done", "adds": plan.adds,
        "replaces": plan.replaces, "deletes": plan.deletes, "unchanged": plan.unchanged,
        "skipped": plan.skipped, "write_bytes": plan.write_bytes, "backup_bytes": plan.backup_bytes}))?);
    lines.push(b'\n');
    let mut f = open(root, "servicing.jsonl")?;
    f.write_all(&lines)?;
    f.sync_data()?;
    let mut s = open(root, "servicing.log")?;
    writeln!(
        s,
        "{time} {} {} {}: {} added, {} replaced, {} deleted, {} unchanged, {} skipped; {} bytes written, {} backed up (transaction {txid})",
        plan.action,
        plan.package,
        plan.version,
        plan.adds,
        plan.replaces,
        plan.deletes,
        plan.unchanged,
        plan.skipped,
        plan.write_bytes,
        plan.backup_bytes
    )?;
    for w in &plan.warnings {
        writeln!(s, "{time}   warning: {w}")?;
    }
    for d in &plan.downgrades {
        writeln!(s, "{time}   down in version: {} {} ({}) -> {}", d.path, d.installed, d.owner, d.brings)?;
    }
    s.sync_data()?;
    Ok(())
}
