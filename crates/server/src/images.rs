//! Images in the server's store, and what a machine needs to take one (the
//! old HAL check): the architecture its programs are built for, read from
//! their ELF headers, and the space its files take.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use slipway_api::{Firmware, ImageInfo, Requirements};
use slipway_store::{lookup, read_file, BlobReader, Found, ImageVersion, Store};

use crate::auth::Admin;
use crate::error::ApiResult;
use crate::AppState;

/// Programs whose ELF header tells the image's architecture, in the order
/// tried.
const PROBES: &[&str] =
    &["usr/bin/env", "bin/sh", "usr/bin/sh", "usr/bin/busybox", "bin/busybox", "usr/lib/systemd/systemd", "sbin/init"];

/// `uname -m` for an ELF `e_machine` (and class, for 32/64-bit x86 and ARM).
fn elf_arch(head: &[u8]) -> Option<&'static str> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let class64 = head[4] == 2;
    let le = head[5] == 1;
    let m = if le { u16::from_le_bytes([head[18], head[19]]) } else { u16::from_be_bytes([head[18], head[19]]) };
    Some(match (m, class64) {
        (62, _) => "x86_64",
        (3, _) => "i686",
        (183, _) => "aarch64",
        (40, _) => "armv7l",
        (243, true) => "riscv64",
        (21, true) => "ppc64le",
        (22, _) => "s390x",
        (258, _) => "loongarch64",
        _ => return None,
    })
}

fn probe_arch(r: &mut BlobReader<'_>, img: &ImageVersion) -> Option<String> {
    for p in PROBES {
        let Ok(Found::Entry(e)) = lookup(r, img, p.as_bytes()) else { continue };
        let mut buf = Vec::new();
        if read_file(r, &e, &mut buf).is_ok() {
            if let Some(a) = elf_arch(&buf) {
                return Some(a.to_string());
            }
        }
    }
    None
}

/// What `img` asks of a machine, plus the firmware the deployment names.
pub fn requirements(store: &Store, img: &ImageVersion, firmware: &[Firmware]) -> Requirements {
    let mut r = store.reader();
    let s = &img.record.stats;
    // File data plus a block per entry for metadata, rounded up to a MiB.
    let entries = s.dirs + s.files + s.symlinks + s.specials;
    let need = (s.logical_bytes + entries * 4096).div_ceil(1 << 20) << 20;
    let mut fw = firmware.to_vec();
    fw.sort_by_key(|f| f.as_str());
    fw.dedup();
    Requirements { arch: probe_arch(&mut r, img), firmware: fw, min_disk_bytes: need }
}

/// Whether a machine with `facts` can take an image with `req`; the reason
/// when it cannot.
pub fn check(req: &Requirements, facts: &serde_json::Value) -> Result<(), String> {
    if let Some(want) = &req.arch {
        match facts.get("arch").and_then(|v| v.as_str()) {
            Some(have) if have == want => {}
            Some(have) => return Err(format!("the image is built for {want}; this machine is {have}")),
            None => return Err(format!("the image is built for {want}; this machine did not report its architecture")),
        }
    }
    if !req.firmware.is_empty() {
        let names: Vec<&str> = req.firmware.iter().map(|f| f.as_str()).collect();
        match facts.get("firmware").and_then(|v| v.as_str()) {
            Some(have) if names.contains(&have) => {}
            Some(have) => {
                return Err(format!("the image boots with {} firmware; this machine has {have}", names.join(" or ")))
            }
            None => {
                return Err(format!(
                    "the image boots with {} firmware; this machine did not report its firmware",
                    names.join(" or ")
                ))
            }
        }
    }
    let free = facts
        .get("target")
        .and_then(|t| t.get("free_bytes"))
        .and_then(|v| v.as_u64())
        .or_else(|| facts.get("disk")?.as_array()?.iter().filter_map(|d| d.get("size_bytes")?.as_u64()).max());
    match free {
        Some(f) if f >= req.min_disk_bytes => Ok(()),
        Some(f) => Err(format!(
            "the image needs {} MiB on the target; this machine has {} MiB",
            req.min_disk_bytes >> 20,
            f >> 20
        )),
        None => Err("this machine reported neither a target nor a disk".into()),
    }
}

/// Every image version in the server's store.
#[utoipa::path(get, path = "/v1/images", operation_id = "list_images", tag = "images",
    responses((status = 200, body = [ImageInfo])), security(("admin" = [])))]
pub async fn list(State(st): State<Arc<AppState>>, _a: Admin) -> ApiResult<Json<Vec<ImageInfo>>> {
    let st2 = st.clone();
    let out = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<ImageInfo>> {
        let mut store = st2.store.write().expect("store lock");
        store.reload_index()?;
        let mut out = Vec::new();
        for img in store.images()? {
            out.push(ImageInfo {
                image: img.label(),
                record: img.record_id.to_string(),
                created: slipway_store::rfc3339(img.record.created),
                files: img.record.stats.files,
                logical_bytes: img.record.stats.logical_bytes,
                requirements: requirements(&store, &img, &[]),
            });
        }
        Ok(out)
    })
    .await
    .map_err(anyhow::Error::from)??;
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_from_elf_headers() {
        let mut h = vec![0u8; 20];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 62;
        assert_eq!(elf_arch(&h), Some("x86_64"));
        h[18] = 183;
        assert_eq!(elf_arch(&h), Some("aarch64"));
        assert_eq!(elf_arch(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn requirements_are_checked_against_facts() {
        let req = Requirements { arch: Some("x86_64".into()), firmware: vec![Firmware::Uefi], min_disk_bytes: 1 << 30 };
        let ok = serde_json::json!({"arch": "x86_64", "firmware": "uefi", "target": {"free_bytes": 2u64 << 30}});
        assert_eq!(check(&req, &ok), Ok(()));
        let arm = serde_json::json!({"arch": "aarch64", "firmware": "uefi", "target": {"free_bytes": 2u64 << 30}});
        assert!(check(&req, &arm).unwrap_err().contains("this machine is aarch64"));
        let bios = serde_json::json!({"arch": "x86_64", "firmware": "bios", "target": {"free_bytes": 2u64 << 30}});
        assert!(check(&req, &bios).unwrap_err().contains("has bios"));
        let small = serde_json::json!({"arch": "x86_64", "firmware": "uefi", "disk": [{"size_bytes": 1u64 << 20}]});
        assert!(check(&req, &small).unwrap_err().contains("needs 1024 MiB"));
    }
}
