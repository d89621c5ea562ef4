//! Every command teaches: `--help` exists, fits 80 columns, and man pages
//! are generated for every command.

use std::process::Command;

const COMMANDS: &[&[&str]] = &[
    &[],
    &["store"],
    &["store", "init"],
    &["store", "info"],
    &["store", "rebuild-index"],
    &["capture"],
    &["images"],
    &["info"],
    &["ls"],
    &["cat"],
    &["apply"],
    &["verify"],
    &["diff"],
    &["delete"],
    &["gc"],
    &["export"],
    &["import-tar"],
    &["iso"],
    &["iso", "build"],
    &["iso", "ls"],
    &["iso", "info"],
    &["iso", "extract"],
    &["iso", "edit"],
    &["key"],
    &["key", "new"],
    &["key", "trust"],
    &["key", "list"],
    &["package"],
    &["package", "build"],
    &["package", "info"],
    &["package", "verify"],
    &["package", "extract"],
    &["integrate"],
    &["install"],
    &["uninstall"],
    &["packages"],
    &["scan"],
    &["recover"],
    &["generalize"],
    &["specialize"],
    &["answer"],
    &["answer", "check"],
    &["answer", "new"],
    &["answer", "export"],
    &["answer", "schema"],
    &["firstboot"],
    &["serve"],
    &["server"],
    &["server", "token"],
    &["server", "token", "new"],
    &["agent"],
    &["machines"],
    &["machines", "show"],
    &["machines", "facts"],
    &["machines", "events"],
    &["machines", "approve"],
    &["machines", "reject"],
    &["collection"],
    &["collection", "list"],
    &["collection", "show"],
    &["collection", "new"],
    &["collection", "set"],
    &["collection", "delete"],
    &["deploy"],
    &["status"],
];

#[test]
fn every_command_has_help_within_80_columns() {
    for cmd in COMMANDS {
        for flag in ["-h", "--help"] {
            let o = Command::new(env!("CARGO_BIN_EXE_slipway")).args(*cmd).arg(flag).output().unwrap();
            assert!(o.status.success(), "slipway {cmd:?} {flag}");
            let text = String::from_utf8(o.stdout).unwrap();
            assert!(text.contains("Usage: slipway"), "slipway {cmd:?} {flag}:\n{text}");
            for line in text.lines() {
                assert!(line.chars().count() <= 80, "slipway {cmd:?} {flag}: line over 80 columns:\n{line}");
            }
        }
    }
}

#[test]
fn man_pages_are_generated_for_every_command() {
    let t = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_slipway")).arg("man").arg(t.path()).output().unwrap();
    assert!(o.status.success());
    for cmd in COMMANDS {
        let name = std::iter::once("slipway").chain(cmd.iter().copied()).collect::<Vec<_>>().join("-");
        let page = std::fs::read_to_string(t.path().join(format!("{name}.1")))
            .unwrap_or_else(|_| panic!("no man page {name}.1"));
        assert!(page.contains(".TH"), "{name}.1 is not a man page");
    }
}

#[test]
fn missing_store_says_what_to_do() {
    let t = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--store")
        .arg(t.path().join("none"))
        .arg("images")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("slipway store init"), "{err}");
}
