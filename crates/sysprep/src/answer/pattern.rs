//! Host name patterns (`web-{serial}`, `node-{mac}`, `{fact:rack}-{seq}`)
//! and the machine facts they are rendered from.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Facts about one machine: serial, mac, uuid, seq and anything else the
/// inventory knows. Keys are lower case.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Facts {
    values: BTreeMap<String, String>,
    macs: Vec<String>,
}

impl Facts {
    /// Reads a facts file: a JSON object whose values are strings, numbers,
    /// booleans, or (for `macs`) a list of strings.
    pub fn load(path: &Path) -> Result<Facts> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading machine facts {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let serde_json::Value::Object(map) = v else {
            bail!(
                "{}: machine facts must be a JSON object like {{\"serial\": \"X1\", \"mac\": \"52:54:00:12:34:56\"}}",
                path.display()
            );
        };
        let mut f = Facts::default();
        for (k, v) in map {
            match (k.as_str(), v) {
                ("macs", serde_json::Value::Array(a)) => {
                    for m in a {
                        let serde_json::Value::String(m) = m else {
                            bail!("{}: \"macs\" must be a list of strings", path.display());
                        };
                        f.add_mac(&m);
                    }
                }
                (_, serde_json::Value::String(s)) => f.set(&k, &s),
                (_, serde_json::Value::Number(n)) => f.set(&k, &n.to_string()),
                (_, serde_json::Value::Bool(b)) => f.set(&k, &b.to_string()),
                (_, serde_json::Value::Null) => {}
                _ => bail!(
                    "{}: fact {k:?} must be a string, a number or a boolean (only \"macs\" may be a list)",
                    path.display()
                ),
            }
        }
        Ok(f)
    }

    /// Facts from a deployment inventory document (the agent's report, as
    /// `slipway_api::Inventory::facts` gives it): `serial` and `uuid` from
    /// `dmi` unless set at the top, the MACs of `nic`, and every other
    /// top-level string, number or boolean under its own name (for
    /// `{fact:NAME}`).
    pub fn from_document(doc: &serde_json::Value) -> Facts {
        let mut f = Facts::default();
        let scalar = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        if let Some(o) = doc.as_object() {
            for (k, v) in o {
                if let Some(s) = scalar(v) {
                    f.set(k, &s);
                }
            }
        }
        for key in ["serial", "uuid"] {
            if f.get(key).is_none() {
                if let Some(s) = doc.get("dmi").and_then(|d| d.get(key)).and_then(scalar) {
                    f.set(key, &s);
                }
            }
        }
        if let Some(nics) = doc.get("nic").and_then(|n| n.as_array()) {
            for n in nics {
                if let Some(m) = n.get("mac").and_then(|m| m.as_str()) {
                    f.add_mac(m);
                }
            }
        }
        f
    }

    /// Sets one fact (`--fact KEY=VALUE`); `mac` also joins the MAC list.
    pub fn set(&mut self, key: &str, value: &str) {
        let key = key.trim().to_ascii_lowercase();
        if key == "mac" {
            self.add_mac(value);
        }
        self.values.insert(key, value.trim().to_string());
    }

    /// Parses `KEY=VALUE`.
    pub fn set_pair(&mut self, pair: &str) -> Result<()> {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--fact {pair:?}: expected KEY=VALUE, for example --fact serial=ABC123");
        };
        if k.trim().is_empty() {
            bail!("--fact {pair:?}: the key is empty");
        }
        self.set(k, v);
        Ok(())
    }

    fn add_mac(&mut self, m: &str) {
        let m = m.trim().to_ascii_lowercase();
        if !self.macs.contains(&m) {
            self.macs.push(m);
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The machine's MAC addresses (lower case), the primary one first.
    pub fn macs(&self) -> &[String] {
        &self.macs
    }

    /// The primary MAC: the `mac` fact, else the first of `macs`.
    pub fn mac(&self) -> Option<&str> {
        self.get("mac").or(self.macs.first().map(String::as_str))
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.macs.is_empty()
    }
}

/// One piece of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(String),
    Fact(String),
    Mac,
    Rand(usize),
}

/// A parsed host name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

const TOKENS: &str = "{serial}, {mac}, {uuid}, {seq}, {rand:N} or {fact:NAME}";

impl Pattern {
    /// Parses a pattern, checking its literal text and tokens.
    pub fn parse(s: &str) -> std::result::Result<Pattern, String> {
        if s.is_empty() {
            return Err("the pattern is empty".into());
        }
        let mut pieces = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(i) = rest.find(['{', '}']) {
                if rest.as_bytes()[i] == b'}' {
                    return Err(format!("a '}}' without its '{{' in {s:?}; tokens are {TOKENS}"));
                }
                if i > 0 {
                    pieces.push(Piece::Text(rest[..i].to_string()));
                }
                let Some(end) = rest[i..].find('}') else {
                    return Err(format!("a '{{' without its '}}' in {s:?}; tokens are {TOKENS}"));
                };
                let tok = &rest[i + 1..i + end];
                pieces.push(parse_token(tok)?);
                rest = &rest[i + end + 1..];
            } else {
                pieces.push(Piece::Text(rest.to_string()));
                rest = "";
            }
        }
        for p in &pieces {
            if let Piece::Text(t) = p {
                if let Some(c) = t.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
                    return Err(format!(
                        "{c:?} cannot be in a host name (letters, digits and '-' only; a domain goes in computer.domain)"
                    ));
                }
            }
        }
        if let Some(Piece::Text(t)) = pieces.first() {
            if t.starts_with('-') {
                return Err("a host name cannot start with '-'".into());
            }
        }
        if let Some(Piece::Text(t)) = pieces.last() {
            if t.ends_with('-') {
                return Err("a host name cannot end with '-'".into());
            }
        }
        let fixed: usize = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                Piece::Rand(n) => *n,
                _ => 0,
            })
            .sum();
        if fixed > 63 {
            return Err(format!("the pattern makes names of at least {fixed} characters; a host name has at most 63"));
        }
        Ok(Pattern { pieces })
    }

    /// The facts the pattern needs (`serial`, `mac`, `seq`, …).
    pub fn needs(&self) -> Vec<String> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Fact(f) => Some(f.clone()),
                Piece::Mac => Some("mac".into()),
                _ => None,
            })
            .collect()
    }

    /// Renders the host name for one machine. Fact values are lower-cased
    /// and anything but letters and digits becomes '-' (a MAC loses its
    /// colons). `random` gives the bytes for `{rand:N}`.
    pub fn render(&self, facts: &Facts, random: &mut dyn FnMut(&mut [u8])) -> std::result::Result<String, String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(&t.to_ascii_lowercase()),
                Piece::Mac => {
                    let m = facts.mac().ok_or("the pattern uses {mac} but the machine has no mac fact")?;
                    out.extend(m.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()));
                }
                Piece::Fact(f) => {
                    let v = facts.get(f).ok_or_else(|| format!("the pattern uses the {f} fact, which this machine does not have; give it with --fact {f}=VALUE or in the facts file"))?;
                    out.push_str(&sanitize(v));
                }
                Piece::Rand(n) => {
                    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
                    let mut b = vec![0u8; *n];
                    random(&mut b);
                    out.extend(b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char));
                }
            }
        }
        let out = out.trim_matches('-').to_string();
        if out.is_empty() {
            return Err("the rendered host name is empty".into());
        }
        if out.len() > 63 {
            return Err(format!("the rendered host name {out:?} is longer than 63 characters"));
        }
        Ok(out)
    }
}

fn sanitize(v: &str) -> String {
    let mut s: String =
        v.trim().chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_string()
}

fn parse_token(tok: &str) -> std::result::Result<Piece, String> {
    match tok {
        "serial" | "uuid" | "seq" => Ok(Piece::Fact(tok.to_string())),
        "mac" => Ok(Piece::Mac),
        _ => {
            if let Some(n) = tok.strip_prefix("rand:") {
                let n: usize = n
                    .parse()
                    .map_err(|_| format!("{{{tok}}}: the length of {{rand:N}} must be a number from 1 to 32"))?;
                if !(1..=32).contains(&n) {
                    return Err(format!("{{{tok}}}: the length of {{rand:N}} must be from 1 to 32"));
                }
                Ok(Piece::Rand(n))
            } else if let Some(f) = tok.strip_prefix("fact:") {
                if f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
                    return Err(format!("{{{tok}}}: a fact name is letters, digits, '_', '-' and '.'"));
                }
                Ok(Piece::Fact(f.to_ascii_lowercase()))
            } else {
                Err(format!("unknown token {{{tok}}}; tokens are {TOKENS}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let mut f = Facts::default();
        f.set("serial", "VMW 42/Ab");
        f.set("mac", "52:54:00:AB:CD:EF");
        f.set("seq", "7");
        f
    }

    #[test]
    fn patterns_render_from_facts() {
        let mut zero = |b: &mut [u8]| b.fill(0);
        let p = Pattern::parse("web-{serial}").unwrap();
        assert_eq!(p.render(&facts(), &mut zero).unwrap(), "web-vmw-42-ab");
        let p = Pattern::parse("n{seq}-{mac}").unwrap();
        assert_eq!(p.render(&facts(), &mut zero).unwrap(), "n7-525400abcdef");
        let p = Pattern::parse("Box-{rand:4}").unwrap();
        assert_eq!(p.render(&facts(), &mut zero).unwrap(), "box-aaaa");
        let p = Pattern::parse("x-{uuid}").unwrap();
        assert!(p.render(&facts(), &mut zero).unwrap_err().contains("--fact uuid="));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for (p, why) in [
            ("web-{serial", "without its '}'"),
            ("web-}", "without its '{'"),
            ("web-{name}", "unknown token {name}"),
            ("web_{seq}", "cannot be in a host name"),
            ("web.example.com", "computer.domain"),
            ("{rand:0}", "from 1 to 32"),
            ("{rand:x}", "must be a number"),
            ("-{seq}", "cannot start with '-'"),
            ("", "empty"),
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }
}

#[cfg(test)]
mod document_tests {
    use super::*;

    #[test]
    fn facts_from_an_inventory_document() {
        let doc = serde_json::json!({
            "arch": "x86_64", "memory_mb": 2048, "rack": "r1",
            "dmi": {"serial": "S-1", "uuid": "u-1"},
            "nic": [{"name": "ens3", "mac": "52:54:00:AA:00:01"}, {"name": "ens4", "mac": "52:54:00:aa:00:02"}],
        });
        let f = Facts::from_document(&doc);
        assert_eq!(f.get("serial"), Some("S-1"));
        assert_eq!(f.get("uuid"), Some("u-1"));
        assert_eq!(f.get("rack"), Some("r1"));
        assert_eq!(f.get("memory_mb"), Some("2048"));
        assert_eq!(f.macs(), ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]);
        assert_eq!(f.mac(), Some("52:54:00:aa:00:01"));
        let top = Facts::from_document(&serde_json::json!({"serial": "OVR", "dmi": {"serial": "S-1"}}));
        assert_eq!(top.get("serial"), Some("OVR"));
    }
}
