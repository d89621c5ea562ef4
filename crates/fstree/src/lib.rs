//! slipway's file-tree model.
//!
//! Two halves, both built for hostile input:
//! - [`scan`] reads a directory into an in-memory [`Node`] tree with every piece
//!   of metadata a Linux root carries (owner, full mode, nanosecond mtime, every
//!   xattr, device numbers, hard-link groups, sparse extents, non-UTF-8 names).
//! - [`Target`] writes entries *only* inside a target directory. Every write is
//!   made relative to an open directory handle with `O_NOFOLLOW`, so neither a
//!   crafted name nor a symlink created earlier in the same tree can redirect it.

pub mod hex;
mod meta;
mod name;
mod scan;
mod target;

pub use meta::{Metadata, Timestamp, Xattr};
pub use name::{display_bytes, EntryName, NameError};
pub use scan::{data_extents, open_source_file, scan, Node, NodeKind, ScanError, ScanOptions, ScanStats};
pub use target::{ApplyError, ApplyOptions, DirHandle, SpecialKind, Target};
