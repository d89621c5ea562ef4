//! slipway's image store: content-addressed, deduplicated, compressed,
//! crash-safe. The successor of WIM's single-instance storage.
//!
//! - Blobs (file chunks and directory trees) are named by their BLAKE3 hash.
//! - Files are cut by content-defined chunking (FastCDC 2020), so identical
//!   files, and identical runs inside large files, are stored once.
//! - Blobs are gathered into zstd frames of a few MiB, one frame per pack
//!   file; index files say which pack holds which blob.
//! - An image version is a JSON record naming its root tree; a ref
//!   `refs/NAME/VERSION` makes it visible. Every file is staged, fsynced and
//!   renamed, and the ref is written last, so a killed capture leaves only
//!   unreferenced data behind.
//!
//! The byte-level format is specified in `docs/store-format.md`.

mod apply;
mod atomic;
mod browse;
mod capture;
mod config;
mod diff;
mod export;
mod gc;
mod id;
mod import;
mod index;
mod lock;
mod pack;
mod packer;
mod progress;
mod rebuild;
mod record;
mod serde_path;
mod source_cache;
mod store;
mod tar;
mod tree;
mod verify;

pub use apply::{apply, ApplyReport};
pub use atomic::write_private;
pub use browse::{lookup, read_file, split_path, Found};
pub use capture::{capture, CaptureOptions, CaptureReport};
pub use config::Config;
pub use diff::{diff, Change, DiffEntry, DiffReport};
pub use export::{export_to_store, ExportReport};
pub use gc::{delete, gc, GcOptions, GcReport};
pub use id::BlobId;
pub use import::{image_blobs, Import, ImportReport};
pub use index::{decode_index, Index, Location};
pub use lock::WriteLock;
pub use pack::{decompress_frame, parse_pack, BlobKind, Corrupt, PackEntry};
pub use progress::{NoProgress, Progress};
pub use rebuild::{rebuild_index, RebuildReport};
pub use record::{check_name, rfc3339, ImageRecord, ImageSpec, ImageStats, PackageRef, RootDir};
pub use slipway_fstree::ApplyOptions;
pub use source_cache::{Seen, SourceCache};
pub use store::{pack_id_of, BlobReader, ImageVersion, ReadError, Store};
pub use tar::{export_tar, import_tar, TarReport};
pub use tree::{ChunkRef, EntryKind, Tree, TreeEntry};
pub use verify::{verify, DamagedUse, Problem, VerifyReport};
