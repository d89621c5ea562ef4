//! `Package::open` on arbitrary files: must return Ok or an error, never
//! panic, hang or exhaust memory. Opened twice: allowing unsigned packages,
//! and requiring a signature by the test key (`fuzz/package-test-key.pub`,
//! whose secret half signs the seeds; see make_seeds). Once open, every
//! full (zstd) file entry must decode (open already checked it), deltas
//! without their base must be refused, and every blob must read back.
//!
//! The file is written to /dev/shm (or the temp directory), one per
//! fuzzing process.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use slipway_package::container::{OpenOptions, Package, PackageError, SignatureStatus};
use slipway_package::keys::{key_id, parse_public, TrustedKey};
use slipway_package::manifest::Node;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        dir.join(format!("slipway-fuzz-package-{}.slwpkg", std::process::id()))
    })
}

fn trusted() -> &'static [TrustedKey] {
    static KEYS: OnceLock<Vec<TrustedKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = parse_public(include_str!("../package-test-key.pub")).expect("the test key parses");
        vec![TrustedKey { id: key_id(key.keynum()), key, source: PathBuf::from("package-test-key.pub") }]
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("writing the scratch package");
    if let Ok(pkg) = Package::open(path, &OpenOptions { trusted: trusted(), allow_unsigned: false }) {
        assert!(matches!(pkg.signature, SignatureStatus::Signed { .. }), "opened unsigned without allow_unsigned");
    }
    let Ok(pkg) = Package::open(path, &OpenOptions { trusted: trusted(), allow_unsigned: true }) else { return };
    for op in &pkg.manifest.ops {
        let Some(entry) = &op.entry else { continue };
        let Node::File { data, .. } = &entry.node else { continue };
        pkg.stored(data).expect("a checked blob reads back");
        let r = pkg.decode_to(&entry.node, None, &mut std::io::sink());
        if data.encoding.is_delta() {
            assert!(matches!(r, Err(PackageError::WrongBase { .. })), "a delta decoded without its base");
        } else {
            r.expect("a checked full entry decodes");
        }
    }
});
