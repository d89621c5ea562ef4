//! Secrets by reference: an answer file never holds a secret inline.
//!
//! A reference names where the secret is: a file, an environment variable,
//! or a systemd credential. Values are read only when needed, are never
//! printed (their `Debug` is redacted), and error messages never quote them.

use std::fmt;

use anyhow::{bail, Context, Result};
use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// Where a secret is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretRef {
    /// A file (on the machine that runs `slipway specialize`); its content,
    /// without a final newline.
    File(String),
    /// An environment variable of the `slipway specialize` process.
    Env(String),
    /// A systemd credential, read on the machine at first boot from
    /// `$CREDENTIALS_DIRECTORY` (passed with SMBIOS type 11, the kernel
    /// command line, or `systemd-creds`).
    Credential(String),
}

impl SecretRef {
    /// A short, non-secret description: `file /run/keys/join`.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::File(p) => format!("file {p}"),
            SecretRef::Env(v) => format!("environment variable {v}"),
            SecretRef::Credential(c) => format!("systemd credential {c}"),
        }
    }

    /// Reads the secret now (file and env references). A credential is read
    /// from `$CREDENTIALS_DIRECTORY`, as on the machine at first boot.
    pub fn resolve(&self) -> Result<Secret> {
        let v = match self {
            SecretRef::File(p) => {
                let mut s = std::fs::read_to_string(p).with_context(|| format!("reading secret from file {p}"))?;
                trim_newline(&mut s);
                s
            }
            SecretRef::Env(v) => match std::env::var(v) {
                Ok(s) => s,
                Err(_) => bail!("the secret's environment variable {v} is not set (or not UTF-8)"),
            },
            SecretRef::Credential(c) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").with_context(|| {
                    format!("systemd credential {c} asked for, but no credentials were passed ($CREDENTIALS_DIRECTORY is unset)")
                })?;
                let p = std::path::Path::new(&dir).join(c);
                let mut s = std::fs::read_to_string(&p).with_context(|| format!("reading systemd credential {c}"))?;
                trim_newline(&mut s);
                s
            }
        };
        if v.is_empty() {
            bail!("the secret from {} is empty", self.describe());
        }
        Ok(Secret(v))
    }
}

/// Every secret reference in an answer, with its key (`users[0].password_hash`,
/// `domain.password`, `commands[2].secret_env.TOKEN`), for whoever must
/// resolve or move them (the deployment server resolves file and env
/// references at render time; the agent points them at the files it wrote).
pub fn refs_mut(a: &mut super::Answer) -> Vec<(String, &mut SecretRef)> {
    let mut out = Vec::new();
    for (i, u) in a.users.iter_mut().enumerate() {
        if let Some(super::HashOrRef::Secret(r)) = &mut u.password_hash {
            out.push((format!("users[{i}].password_hash"), r));
        }
    }
    if let Some(d) = &mut a.domain {
        if let Some(r) = &mut d.password {
            out.push(("domain.password".to_string(), r));
        }
    }
    for (i, c) in a.commands.iter_mut().enumerate() {
        for (k, r) in c.secret_env.iter_mut() {
            out.push((format!("commands[{i}].secret_env.{k}"), r));
        }
    }
    out
}

fn trim_newline(s: &mut String) {
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
}

/// A secret's value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The message for a plain value where a reference belongs. It never quotes
/// the value.
pub const PLAIN_SECRET: &str = "a plain-text secret is refused here; give a reference instead: \
     { file = \"/path\" }, { env = \"NAME\" } or { credential = \"NAME\" }";

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a secret reference: { file = \"/path\" }, { env = \"NAME\" } or { credential = \"NAME\" }")
            }
            // Plain values: refused without echoing them.
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<SecretRef, E> {
                Err(E::custom(PLAIN_SECRET))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<SecretRef, E> {
                Err(E::custom(PLAIN_SECRET))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<SecretRef, E> {
                Err(E::custom(PLAIN_SECRET))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<SecretRef, A::Error> {
                let mut out: Option<SecretRef> = None;
                while let Some(k) = m.next_key::<String>()? {
                    let v: String = m.next_value()?;
                    let r = match k.as_str() {
                        "file" => SecretRef::File(v),
                        "env" => SecretRef::Env(v),
                        "credential" => SecretRef::Credential(v),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "unknown secret reference kind `{k}`; use file, env or credential"
                            )))
                        }
                    };
                    if out.replace(r).is_some() {
                        return Err(de::Error::custom("a secret reference names exactly one of file, env, credential"));
                    }
                }
                out.ok_or_else(|| de::Error::custom("an empty secret reference; give file, env or credential"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[allow(dead_code)]
        s: SecretRef,
    }

    #[test]
    fn plain_values_are_refused_without_echoing_them() {
        let e = toml::from_str::<T>("s = \"hunter2\"").unwrap_err();
        assert!(e.message().contains("plain-text secret is refused"), "{}", e.message());
        assert!(!e.message().contains("hunter2"));
        let r: T = toml::from_str("s = { env = \"JOIN\" }").unwrap();
        assert_eq!(r.s, SecretRef::Env("JOIN".into()));
        assert!(toml::from_str::<T>("s = { env = \"A\", file = \"B\" }").is_err());
        assert!(toml::from_str::<T>("s = { vault = \"A\" }").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
    }
}
