//! The dpkg database of a root: which Debian package owns a path, and its
//! version. Used for per-file versions (packages built from two roots) and
//! for the version a file has on a machine before slipway touches it.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// Owner and version of every path the dpkg database of `root` lists,
/// relative to the root (no leading `/`). Empty when there is no database.
pub fn owners(root: &Path) -> HashMap<String, Owner> {
    let mut versions = HashMap::new();
    if let Ok(status) = fs::read_to_string(root.join("var/lib/dpkg/status")) {
        for para in status.split("\n\n") {
            let (mut name, mut ver, mut arch, mut installed) = (None, None, None, false);
            for line in para.lines() {
                if let Some(v) = line.strip_prefix("Package: ") {
                    name = Some(v.trim());
                } else if let Some(v) = line.strip_prefix("Version: ") {
                    ver = Some(v.trim());
                } else if let Some(v) = line.strip_prefix("Architecture: ") {
                    arch = Some(v.trim());
                } else if let Some(v) = line.strip_prefix("Status: ") {
                    installed = v.trim().ends_with(" installed");
                }
            }
            if let (Some(n), Some(v), true) = (name, ver, installed) {
                versions.insert(n.to_string(), v.to_string());
                if let Some(a) = arch {
                    versions.insert(format!("{n}:{a}"), v.to_string());
                }
            }
        }
    }
    let mut out = HashMap::new();
    let Ok(rd) = fs::read_dir(root.join("var/lib/dpkg/info")) else { return out };
    let mut lists: Vec<_> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    lists.sort();
    for f in lists {
        let Some(pkg) = f.strip_suffix(".list") else { continue };
        let Some(version) = versions.get(pkg) else { continue };
        let name = pkg.split(':').next().unwrap_or(pkg).to_string();
        let Ok(text) = fs::read_to_string(root.join("var/lib/dpkg/info").join(&f)) else { continue };
        for line in text.lines() {
            let p = line.trim_start_matches('/');
            if p.is_empty() || p == "." {
                continue;
            }
            out.entry(p.to_string()).or_insert_with(|| Owner { package: name.clone(), version: version.clone() });
        }
    }
    out
}

/// The Debian package that owns a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub package: String,
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_lists() {
        let d = tempfile::tempdir().unwrap();
        let info = d.path().join("var/lib/dpkg/info");
        fs::create_dir_all(&info).unwrap();
        fs::write(
            d.path().join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u7\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
        )
        .unwrap();
        fs::write(info.join("libc6:amd64.list"), "/.\n/usr\n/usr/lib/x86_64-linux-gnu/libc.so.6\n").unwrap();
        fs::write(info.join("gone.list"), "/etc/gone.conf\n").unwrap();
        let o = owners(d.path());
        assert_eq!(o["usr/lib/x86_64-linux-gnu/libc.so.6"].version, "2.36-9+deb12u7");
        assert_eq!(o["usr/lib/x86_64-linux-gnu/libc.so.6"].package, "libc6");
        assert!(!o.contains_key("etc/gone.conf"));
    }
}
