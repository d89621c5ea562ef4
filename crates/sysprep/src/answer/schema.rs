//! The answer file's JSON Schema, generated from the types in [`super::model`]
//! (`docs/answer.schema.json` is this, pretty-printed; `slipway answer
//! schema` prints it). Editors and other tools can check answer files with
//! it; slipway itself parses with the same types, so the two cannot drift.

use super::Answer;

/// The JSON Schema (draft 2020-12) of answer file format 1.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(Answer).to_value()
}

/// [`json_schema`] as the committed file holds it: pretty-printed, with a
/// final newline.
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn docs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
    }

    /// The committed schema is the generated one. `UPDATE_SCHEMA=1 cargo test
    /// -p slipway-sysprep schema` writes it.
    #[test]
    fn the_committed_schema_is_current() {
        let path = docs().join("answer.schema.json");
        let want = json_schema_text();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is not the schema of the answer types; run `cargo run -p slipway -- answer schema > docs/answer.schema.json` \
             (or `UPDATE_SCHEMA=1 cargo test -p slipway-sysprep schema`)",
            path.display()
        );
    }

    #[test]
    fn the_schema_refuses_unknown_keys_and_plain_secrets() {
        let s = json_schema();
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["title"], "slipway answer file");
        let text = s.to_string();
        for key in ["password_hash", "secret_env", "credential", "every-boot", "network-manager"] {
            assert!(text.contains(key), "{key} is missing from the schema");
        }
    }

    /// The first ```toml block of docs/answer-format.md is a good answer
    /// file, and writes back as TOML to the same answer.
    #[test]
    fn the_documented_example_parses() {
        let doc = std::fs::read_to_string(docs().join("answer-format.md")).unwrap();
        let start = doc.find("```toml\n").expect("a ```toml block in docs/answer-format.md") + "```toml\n".len();
        let len = doc[start..].find("```").expect("the end of the ```toml block");
        let example = &doc[start..start + len];
        let a = match crate::answer::parse(example, "docs/answer-format.md") {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(crate::answer::parse(&crate::answer::new::to_toml(&a), "again").unwrap(), a);
    }
}
