//! Paths in JSON reports: shown as text, with bytes that are not UTF-8
//! replaced (U+FFFD), so a report never fails to serialize.

use std::path::{Path, PathBuf};

use serde::ser::{SerializeSeq, Serializer};

pub(crate) fn path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

pub(crate) fn opt_path<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

pub(crate) fn paths<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for p in v {
        seq.serialize_element(&p.to_string_lossy())?;
    }
    seq.end()
}

pub(crate) fn path_pairs<S: Serializer>(v: &[(PathBuf, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (p, why) in v {
        seq.serialize_element(&(p.to_string_lossy(), why))?;
    }
    seq.end()
}
