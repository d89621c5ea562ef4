//! Generalize and specialize (the Sysprep and Mini-Setup of slipway).
//!
//! - [`generalize`]: named operations that remove a root's machine identity
//!   (machine-id to `uninitialized`, SSH host keys, seeds, logs, leases, …),
//!   each reporting what it removed.
//! - [`answer`]: the answer file (`answer.toml`), its schema and checks.
//! - [`specialize`]: applies an answer file to a root offline, before first
//!   boot, and installs the first-boot unit.
//! - [`firstboot`]: what runs once on the machine itself.
//! - [`rootdir`]: reading and writing inside a root without ever leaving it.

pub mod answer;
pub mod firstboot;
pub mod generalize;
pub mod rootdir;
pub mod specialize;
