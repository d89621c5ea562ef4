//! slipway's update packages and servicing engine.
//!
//! - [`manifest`]: what a package is and every file operation it makes.
//! - [`container`]: the package file (manifest, Ed25519 signature, payload);
//!   opening one checks the signature and every hash before anything is used.
//! - [`keys`]: minisign-compatible Ed25519 keys and the trust directories.
//! - [`delta`]: payload encodings (zstd, bidiff+zstd, zstd with a reference
//!   prefix) and the choice between them.
//! - [`build`]: packages from a directory and a manifest, or from two trees.
//! - the servicing engine: plans, transactions with a write-ahead journal,
//!   backups, uninstall of stacked packages, regression scan, verify and repair.
//!
//! Formats are specified in `docs/package-format.md`.

pub mod build;
pub mod catalog;
pub mod container;
pub mod delta;
pub mod dpkg;
pub mod integrate;
pub mod keys;
pub mod log;
pub mod manifest;
pub mod plan;
pub mod rootfs;
pub mod scan;
pub mod service;
pub mod state;
pub mod txn;
pub mod version;
