//! slipway's boot media: ISO 9660 images with Rock Ridge, Joliet, El Torito
//! (BIOS and UEFI) and hybrid MBR/GPT system areas.
//!
//! - [`model`] is the tree an image is written from and read back into, with
//!   the boot configuration; it is what `build`, `edit` and `extract` share.
//! - [`mod@write`] lays out and streams an image from a [`model::Tree`]: metadata
//!   is planned in memory, file content is copied straight to the output.
//! - [`read`] opens an image, checks every length and extent against the
//!   file, and gives back the tree, the boot catalog and the system area.
//! - [`hybrid`] reads and writes the MBR/GPT system area of hybrid images.
//! - [`fat`] makes the FAT EFI system partition image from a directory.
//!
//! The on-disk contract is `docs/iso-format.md`.

pub mod fat;
pub mod hybrid;
pub mod model;
pub mod read;
pub mod source;
pub mod spec;
pub mod write;
