//! Entry names: one path component, validated so it can never climb out.

use std::fmt;

/// One component of a path inside a tree: never empty, never `.` or `..`,
/// never containing `/` or NUL, at most 255 bytes. May be any other bytes,
/// including ones that are not UTF-8.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryName(Vec<u8>);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty entry name")]
    Empty,
    #[error("entry name {0:?} refers to a directory itself or its parent")]
    Dot(String),
    #[error("entry name {0} contains '/' (a path, not a name)")]
    Slash(String),
    #[error("entry name {0} contains a NUL byte")]
    Nul(String),
    #[error("entry name {0} is longer than 255 bytes")]
    TooLong(String),
}

impl EntryName {
    /// Validates `bytes` as a single path component.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, NameError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes == b"." || bytes == b".." {
            return Err(NameError::Dot(display_bytes(&bytes)));
        }
        if bytes.contains(&b'/') {
            return Err(NameError::Slash(display_bytes(&bytes)));
        }
        if bytes.contains(&0) {
            return Err(NameError::Nul(display_bytes(&bytes)));
        }
        if bytes.len() > 255 {
            return Err(NameError::TooLong(display_bytes(&bytes)));
        }
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The name as an `OsStr`, for system calls.
    pub fn as_os_str(&self) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(&self.0)
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&display_bytes(&self.0))
    }
}

impl fmt::Debug for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", display_bytes(&self.0))
    }
}

/// Shows bytes as text for people: valid UTF-8 as is, anything else (and
/// control characters) as `\xNN`, so names that are not UTF-8 stay readable
/// and unambiguous in messages.
pub fn display_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' {
                if c == '\\' {
                    out.push_str("\\\\");
                } else {
                    for b in c.to_string().bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_names_that_climb_or_are_paths() {
        assert_eq!(EntryName::new(""), Err(NameError::Empty));
        assert!(matches!(EntryName::new(".."), Err(NameError::Dot(_))));
        assert!(matches!(EntryName::new("."), Err(NameError::Dot(_))));
        assert!(matches!(EntryName::new("a/b"), Err(NameError::Slash(_))));
        assert!(matches!(EntryName::new("/etc"), Err(NameError::Slash(_))));
        assert!(matches!(EntryName::new(&b"a\0b"[..]), Err(NameError::Nul(_))));
        assert!(matches!(EntryName::new(vec![b'x'; 256]), Err(NameError::TooLong(_))));
        assert!(EntryName::new("...").is_ok());
        assert!(EntryName::new(&b"caf\xe9"[..]).is_ok());
    }

    #[test]
    fn displays_non_utf8_and_controls_escaped() {
        assert_eq!(display_bytes(b"caf\xe9"), "caf\\xe9");
        assert_eq!(display_bytes(b"a\nb"), "a\\x0ab");
        assert_eq!(display_bytes("é".as_bytes()), "é");
    }
}
