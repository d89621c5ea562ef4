//! A machine's hardware and software inventory, as the agent reports it.
//!
//! The server keeps the report as a JSON document (with history) and
//! collection rules address it by dotted paths: `arch`, `memory_mb`,
//! `cpu.cores`, `nic.mac`, `disk.size_bytes`, `dmi.serial`, `os.id`,
//! `target.free_bytes`, plus any `--fact KEY=VALUE` the agent was given.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Firmware the machine booted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    Bios,
    Uefi,
}

impl Firmware {
    pub fn as_str(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// The processor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cpu {
    /// `model name` from /proc/cpuinfo.
    pub model: String,
    /// Physical cores (distinct `physical id`/`core id` pairs; logical CPUs
    /// when the kernel does not say).
    pub cores: u32,
    /// Logical CPUs (hardware threads).
    pub threads: u32,
}

/// A block device (whole disks only: no partitions, loop, ram or zram).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Disk {
    /// Kernel name: `sda`, `nvme0n1`, `vda`.
    pub name: String,
    pub size_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Spinning disk (`queue/rotational`).
    pub rotational: bool,
    pub removable: bool,
}

/// A network interface with a hardware address (no loopback, no virtual
/// interfaces without a device).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Nic {
    pub name: String,
    /// Lower case, colon separated: `52:54:00:12:34:56`.
    pub mac: String,
    /// Link speed when the link is up and the driver says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// SMBIOS/DMI identity (`/sys/class/dmi/id`). Serial and UUID are often
/// readable by root only; missing values are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Dmi {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
}

/// `/etc/os-release` of the running system (the preinstall environment or
/// the installed system the agent runs on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OsRelease {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
}

/// A slipway update package installed on the running system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstalledPackage {
    pub id: String,
    pub name: String,
    pub version: String,
}

/// Where the agent puts images (in this version, a directory).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Target {
    pub path: String,
    /// Bytes available to the agent on the target's filesystem.
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// Everything the agent reports about its machine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Inventory {
    /// `uname -m`: `x86_64`, `aarch64`.
    pub arch: String,
    pub firmware: Option<Firmware>,
    pub hostname: String,
    pub cpu: Cpu,
    pub memory_mb: u64,
    #[serde(default)]
    pub disk: Vec<Disk>,
    #[serde(default)]
    pub nic: Vec<Nic>,
    #[serde(default)]
    pub dmi: Dmi,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsRelease>,
    #[serde(default)]
    pub packages: Vec<InstalledPackage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// `--fact KEY=VALUE` given to the agent, kept as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Inventory {
    /// The JSON document collection rules and the console see: the report
    /// itself, with each `--fact KEY=VALUE` set at its dotted path (so
    /// `--fact memory_mb=2048` overrides the measured value and
    /// `--fact rack=r1` adds `rack`). A value that reads as an integer or
    /// `true`/`false` becomes a number or a boolean.
    pub fn facts(&self) -> serde_json::Value {
        let mut doc = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = doc.as_object_mut() {
            o.remove("extra");
        }
        for (k, v) in &self.extra {
            set_path(&mut doc, k, typed(v));
        }
        doc
    }
}

fn typed(v: &str) -> serde_json::Value {
    if let Ok(n) = v.parse::<i64>() {
        return n.into();
    }
    match v {
        "true" => true.into(),
        "false" => false.into(),
        _ => v.into(),
    }
}

fn set_path(doc: &mut serde_json::Value, path: &str, v: serde_json::Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let Some((last, dirs)) = parts.split_last() else { return };
    for p in dirs {
        if !cur.get(*p).is_some_and(|x| x.is_object()) {
            if let Some(o) = cur.as_object_mut() {
                o.insert((*p).to_string(), serde_json::json!({}));
            }
        }
        match cur.get_mut(*p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(o) = cur.as_object_mut() {
        o.insert((*last).to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_facts_override_and_extend_the_report() {
        let mut inv = Inventory { arch: "x86_64".into(), memory_mb: 8192, ..Default::default() };
        inv.extra.insert("memory_mb".into(), "2048".into());
        inv.extra.insert("rack".into(), "r1".into());
        inv.extra.insert("dmi.serial".into(), "A1".into());
        inv.extra.insert("site.pxe".into(), "true".into());
        let f = inv.facts();
        assert_eq!(f["memory_mb"], 2048);
        assert_eq!(f["rack"], "r1");
        assert_eq!(f["dmi"]["serial"], "A1");
        assert_eq!(f["site"]["pxe"], true);
        assert!(f.get("extra").is_none());
    }
}
