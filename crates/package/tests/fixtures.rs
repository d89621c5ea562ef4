//! Packages written by released versions of the format must keep opening
//! and decoding. `fixtures/v1/v1-hotfix.slwpkg` is a format 1 package built
//! with `package build --diff` and signed with the fuzz test key
//! (`signer.pub`); `base-prog` and `base-table` are the files its deltas were
//! made against.

use std::path::Path;

use slipway_package::container::{OpenOptions, Package, SignatureStatus};
use slipway_package::keys;
use slipway_package::manifest::{Action, Encoding, Kind, Node};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1").join(name)
}

fn sha256(bytes: &[u8]) -> String {
    // An independent check of the decoded bytes: sha256sum, not our BLAKE3.
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut c = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn format_1_package_opens_verifies_and_decodes() {
    let key = keys::load_public(&fixture("signer.pub")).unwrap();
    let trusted = [key];
    let p = Package::open(&fixture("v1-hotfix.slwpkg"), &OpenOptions { trusted: &trusted, allow_unsigned: false })
        .expect("a format 1 package opens");
    let m = &p.manifest;
    assert_eq!((m.format, m.id.as_str(), m.version.as_str(), m.kind), (1, "FIXTURE-V1", "1.0", Kind::Hotfix));
    assert!(matches!(&p.signature, SignatureStatus::Signed { key_id, .. } if key_id == "F3862FCD677C4200"));
    let paths: Vec<(&str, Action)> = m.ops.iter().map(|o| (o.path.as_str(), o.action)).collect();
    assert_eq!(
        paths,
        [
            ("bin/prog", Action::Replace),
            ("etc/link", Action::Add),
            ("etc/table", Action::Replace),
            ("etc/gone", Action::Delete)
        ]
    );
    for (path, base, encoding, want) in [
        (
            "bin/prog",
            "base-prog",
            Encoding::BidiffZstd,
            "456d3bc603b31639e7f3680e85ad3abe370ed137d92a9690bfb32cc25eef8e1b",
        ),
        (
            "etc/table",
            "base-table",
            Encoding::ZstdRef,
            "772618511bb64fc62338a403612f6f94bee7bd593887a7bc7250885e590c26ac",
        ),
    ] {
        let op = m.ops.iter().find(|o| o.path == path).unwrap();
        let node = &op.entry.as_ref().unwrap().node;
        let Node::File { data, .. } = node else { panic!("{path} is a file") };
        assert_eq!(data.encoding, encoding, "{path}");
        let base = std::fs::read(fixture(base)).unwrap();
        let mut out = vec![];
        p.decode_to(node, Some(&base), &mut out).unwrap();
        assert_eq!(sha256(&out), want, "{path}");
        // The wrong base is refused.
        assert!(p.decode_to(node, Some(b"not the base"), &mut vec![]).is_err());
    }
    // Without the signer's key it does not open.
    assert!(Package::open(&fixture("v1-hotfix.slwpkg"), &OpenOptions { trusted: &[], allow_unsigned: true }).is_err());
}

/// The package's signature is a plain minisign signature over the manifest
/// bytes: the minisign tool itself accepts it, and refuses a changed manifest.
#[test]
fn minisign_verifies_a_package_signature() {
    use std::process::Command;
    if Command::new("minisign").arg("-v").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "minisign is required in CI; scripts/install-deps.sh installs it");
        eprintln!("SKIPPED: minisign not installed (run scripts/install-deps.sh)");
        return;
    }
    let key = keys::load_public(&fixture("signer.pub")).unwrap();
    let p =
        Package::open(&fixture("v1-hotfix.slwpkg"), &OpenOptions { trusted: &[key], allow_unsigned: false }).unwrap();
    let t = tempfile::tempdir().unwrap();
    let (m, sig) = (t.path().join("manifest.json"), t.path().join("manifest.json.minisig"));
    std::fs::write(&m, p.manifest_bytes()).unwrap();
    std::fs::write(&sig, p.signature_text().expect("signed")).unwrap();
    let verify = || {
        Command::new("minisign")
            .arg("-V")
            .arg("-p")
            .arg(fixture("signer.pub"))
            .arg("-m")
            .arg(&m)
            .arg("-x")
            .arg(&sig)
            .output()
            .unwrap()
    };
    let o = verify();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let mut changed = p.manifest_bytes().to_vec();
    let at = changed.iter().position(|&b| b == b'1').unwrap();
    changed[at] = b'2';
    std::fs::write(&m, changed).unwrap();
    assert!(!verify().status.success());
}
