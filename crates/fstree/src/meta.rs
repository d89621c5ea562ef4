//! Metadata that slipway keeps for every entry.

/// A point in time with nanosecond precision (seconds since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

/// One extended attribute: raw name and value bytes, as the kernel gives them.
/// POSIX ACLs (`system.posix_acl_access`, `system.posix_acl_default`) and file
/// capabilities (`security.capability`) are xattrs and travel this way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// What every entry carries besides its name and kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    /// Sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
}
