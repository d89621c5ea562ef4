//! The command line: one clap definition for parsing, `--help` and man pages.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

/// Build, service and deploy operating-system images.
///
/// slipway keeps master images in a content-addressed, deduplicated store
/// (the successor of WIM's single-instance storage): capture a root
/// directory as an image version, list and inspect images, apply one to a
/// new directory with every piece of metadata intact, and verify the store.
#[derive(Parser, Debug)]
#[command(name = "slipway", version, max_term_width = 80, propagate_version = true)]
#[command(after_help = "Quick start:\n  slipway store init\n  slipway capture /srv/master --name web\n  \
slipway images\n  slipway apply web /mnt/target\n  slipway verify")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// The image store directory [default: $XDG_DATA_HOME/slipway/store,
    /// or ~/.local/share/slipway/store]
    #[arg(long, global = true, env = "SLIPWAY_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Print no progress (errors and results still go out)
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create or inspect the image store
    #[command(subcommand)]
    Store(StoreCmd),
    /// Capture a directory tree as a new image version
    ///
    /// Every capture of an existing NAME adds a version (NAME@1, NAME@2,
    /// ...). Identical files and chunks are stored once across every image
    /// and version. Keeps owners, full modes, nanosecond times, xattrs
    /// (ACLs, capabilities), hard links, devices, FIFOs and sparse files.
    Capture(CaptureArgs),
    /// List images: versions, file counts, sizes and dedup ratios
    Images(JsonArg),
    /// Show one image version's record
    Info(InfoArgs),
    /// List a directory inside an image
    Ls(LsArgs),
    /// Write a file from an image to standard output
    Cat(CatArgs),
    /// Write an image version into a directory
    ///
    /// Writes only inside TARGET: names that climb out, absolute paths and
    /// paths through symlinks are refused, and nothing is ever written
    /// through a symlink. Every chunk is checked against its hash as it is
    /// read.
    Apply(ApplyArgs),
    /// Re-read and re-hash everything in the store
    ///
    /// Checks every pack, chunk, index file, record and ref, and names the
    /// images and paths that use anything damaged or missing. Exits 1 when
    /// it finds a problem.
    Verify(JsonArg),
    /// Show what differs between two image versions, path by path
    ///
    /// Lists every path added, removed, changed in content (file data,
    /// symlink target, device number), changed in metadata only (owner,
    /// mode, mtime, xattrs) or changed in type.
    Diff(DiffArgs),
    /// Remove one image version (its data stays until `slipway gc`)
    Delete(DeleteArgs),
    /// Drop data no image version uses, and repack mostly-empty packs
    ///
    /// Safe while other processes apply images or capture: gc waits for a
    /// running capture (the writer lock), and readers that lose a pack to gc
    /// find its blobs again in the new index.
    Gc(GcArgs),
    /// Copy an image version to another store or into a tar archive
    ///
    /// --to-store copies only the chunks the other store lacks (a USB stick,
    /// a distribution point). --tar writes a POSIX pax archive that GNU tar
    /// and bsdtar extract with owners, modes, nanosecond mtimes, xattrs
    /// (ACLs, capabilities), hard links, devices and FIFOs; sparse files are
    /// written in full (holes become zeros).
    Export(ExportArgs),
    /// Import a tar archive as a new image version
    ///
    /// Reads POSIX pax, ustar and GNU tar archives (uncompressed) with
    /// numeric owners, modes, nanosecond mtimes and xattrs (SCHILY.xattr,
    /// and ACLs). Refuses, naming the entry, archives that are damaged or
    /// truncated, absolute names, '..', entries below a symlink, duplicate
    /// names and hard links to anything but an earlier entry; nothing is
    /// committed then.
    ImportTar(ImportTarArgs),
    /// Build, inspect, extract and edit bootable ISO images
    ///
    /// ISO 9660 with Rock Ridge and Joliet, El Torito BIOS and UEFI boot,
    /// and hybrid MBR/GPT images that also boot from a USB stick. Written in
    /// slipway itself; xorriso, bsdtar, the Linux kernel and firmware read
    /// the result.
    #[command(subcommand)]
    Iso(IsoCmd),
    /// Write man pages for every command into a directory
    #[command(hide = true)]
    Man {
        /// Output directory
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum StoreCmd {
    /// Create an empty store (at --store, $SLIPWAY_STORE or the default)
    Init(JsonArg),
    /// Show the store's location, format and totals
    Info(JsonArg),
    /// Rebuild the index from the packs (repairs a damaged index file)
    RebuildIndex(JsonArg),
}

#[derive(Args, Debug)]
pub struct JsonArg {
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// The directory to capture (a master root)
    pub src: PathBuf,
    /// The image name (letters, digits, '.', '_', '+', '-')
    #[arg(long, short)]
    pub name: String,
    /// A description kept in the image record
    #[arg(long, short, default_value = "")]
    pub description: String,
    /// Do not descend into other filesystems (mount points are kept empty)
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read every file; by default files whose size, mtime, ctime and inode
    /// are unchanged since the previous version are not read again
    #[arg(long)]
    pub rehash: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// NAME (newest version) or NAME@VERSION
    pub image: String,
    /// Print the record as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// NAME (newest version) or NAME@VERSION
    pub image: String,
    /// A path inside the image [default: /]
    pub path: Option<OsString>,
    /// List subdirectories too
    #[arg(long, short = 'R')]
    pub recursive: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CatArgs {
    /// NAME (newest version) or NAME@VERSION
    pub image: String,
    /// The path of a regular file inside the image
    pub path: OsString,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The older image version (NAME or NAME@VERSION)
    pub from: String,
    /// The newer image version (NAME or NAME@VERSION)
    pub to: String,
    /// Also report the bytes a store holding FROM still needs to get TO
    #[arg(long)]
    pub bytes: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("destination").required(true).args(["to_store", "tar"])))]
pub struct ExportArgs {
    /// NAME (newest version) or NAME@VERSION
    pub image: String,
    /// The store to copy into (created if missing); the image becomes the
    /// next version of its name there
    #[arg(long, value_name = "DIR")]
    pub to_store: Option<PathBuf>,
    /// Write a POSIX pax tar archive to FILE ('-' for standard output)
    #[arg(long, value_name = "FILE")]
    pub tar: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ImportTarArgs {
    /// The tar archive to read ('-' for standard input)
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// The image name (letters, digits, '.', '_', '+', '-')
    #[arg(long, short)]
    pub name: String,
    /// A description kept in the image record
    #[arg(long, short, default_value = "")]
    pub description: String,
    /// Print the result as JSON (the capture schema)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The version to remove, as NAME@VERSION
    pub image: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Show what would be removed, change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Repack a pack when less than this share of it is live (0 to 1)
    #[arg(long, default_value_t = 0.5, value_name = "SHARE")]
    pub repack_below: f64,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// NAME (newest version) or NAME@VERSION
    pub image: String,
    /// The directory to write into (created if missing; must be empty)
    pub target: PathBuf,
    /// Write into a non-empty target, replacing entries the image has
    #[arg(long)]
    pub force: bool,
    /// Do not set owners (the default when not running as root)
    #[arg(long)]
    pub no_same_owner: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum IsoCmd {
    /// Build an ISO image from a directory or a store image
    ///
    /// Writes ISO 9660 (level 3: files over 4 GiB as multi-extent), Rock
    /// Ridge (modes, owners, times, symlinks, devices, hard links, long
    /// names) and Joliet. Boot: --bios-boot for an El Torito no-emulation
    /// image such as isolinux.bin (the boot info table is patched in),
    /// --efi-boot for a FAT ESP image or --efi-dir to have one made from a
    /// directory, --hybrid for an MBR and GPT that boot the same file from a
    /// USB stick. Paths are inside the source. With SOURCE_DATE_EPOCH set,
    /// the same input gives the same bytes.
    #[command(after_help = "Examples:\n  slipway iso build ./cd -o cd.iso --bios-boot isolinux/isolinux.bin \\\n    \
--efi-dir EFI --hybrid --volume-id DEBIAN_12\n  slipway iso build --image web@3 -o web.iso")]
    Build(IsoBuildArgs),
    /// List a directory inside an ISO image
    Ls(IsoLsArgs),
    /// Show volume descriptors, boot catalog entries and the MBR/GPT
    Info(IsoInfoArgs),
    /// Write files from an ISO image into a directory
    ///
    /// Keeps Rock Ridge metadata: modes, owners (as root), mtimes, symlinks,
    /// devices, FIFOs and hard links. Writes only inside DEST: nothing is
    /// written through a symlink, and names that climb out are refused.
    Extract(IsoExtractArgs),
    /// Write a changed copy of an ISO image, keeping it bootable
    ///
    /// Removes (--rm), replaces (--replace) and adds (--add) files and
    /// folders, in that order. The boot catalog, boot images (hidden ones
    /// too) and the hybrid MBR/GPT layout carry over to the new image, with
    /// every address they hold updated.
    #[command(
        after_help = "Example (the WinISO workflow):\n  slipway iso edit vendor.iso -o serviced.iso --rm /pool/updates \\\n    \
--add ./serviced/updates:/pool/updates --volume-id VENDOR_SP2"
    )]
    Edit(IsoEditArgs),
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["dir", "image"])))]
pub struct IsoBuildArgs {
    /// The directory that becomes the image's top directory
    pub dir: Option<PathBuf>,
    /// Build from a store image (NAME or NAME@VERSION) without applying it
    #[arg(long, value_name = "NAME[@V]")]
    pub image: Option<String>,
    /// The ISO file to write (replaced atomically when complete)
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub volume: VolumeArgs,
    /// El Torito BIOS no-emulation boot image inside the source, e.g.
    /// isolinux/isolinux.bin
    #[arg(long, value_name = "PATH")]
    pub bios_boot: Option<OsString>,
    /// Do not patch the boot info table into the BIOS boot image
    #[arg(long, requires = "bios_boot")]
    pub no_boot_info_table: bool,
    /// 512-byte sectors the BIOS loads from the boot image
    #[arg(long, value_name = "N", default_value_t = 4, requires = "bios_boot")]
    pub boot_load_size: u16,
    /// A FAT EFI system partition image inside the source, booted by UEFI
    #[arg(long, value_name = "PATH", conflicts_with = "efi_dir")]
    pub efi_boot: Option<OsString>,
    /// A directory inside the source (such as EFI) that slipway puts into a
    /// new FAT EFI system partition image, booted by UEFI
    #[arg(long, value_name = "PATH")]
    pub efi_dir: Option<OsString>,
    /// Where the boot catalog goes inside the image
    #[arg(long, value_name = "PATH", default_value = "boot.catalog")]
    pub catalog: OsString,
    /// Add an MBR and a GPT so the image also boots from a disk or USB stick
    #[arg(long)]
    pub hybrid: bool,
    /// MBR boot code for --hybrid with --bios-boot [default:
    /// /usr/lib/ISOLINUX/isohdpfx.bin]
    #[arg(long, value_name = "FILE", requires = "hybrid")]
    pub hybrid_mbr: Option<PathBuf>,
    /// Write no Joliet tree (Rock Ridge and ISO 9660 only)
    #[arg(long)]
    pub no_joliet: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeArgs {
    /// Volume id, up to 32 characters (A-Z, 0-9, _ for strict readers)
    /// [default: from the source's name]
    #[arg(long, value_name = "ID")]
    pub volume_id: Option<String>,
    /// Publisher, up to 128 characters
    #[arg(long, value_name = "TEXT")]
    pub publisher: Option<String>,
    /// Data preparer, up to 128 characters
    #[arg(long, value_name = "TEXT")]
    pub preparer: Option<String>,
}

#[derive(Args, Debug)]
pub struct IsoLsArgs {
    /// The ISO image
    pub iso: PathBuf,
    /// A path inside the image [default: /]
    pub path: Option<OsString>,
    /// Show type, mode, owner, size and time
    #[arg(long, short)]
    pub long: bool,
    /// List subdirectories too
    #[arg(long, short = 'R')]
    pub recursive: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IsoInfoArgs {
    /// The ISO image
    pub iso: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IsoExtractArgs {
    /// The ISO image
    pub iso: PathBuf,
    /// The directory to write into (created if missing)
    pub dest: PathBuf,
    /// Paths inside the image to extract [default: everything]
    pub paths: Vec<OsString>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IsoEditArgs {
    /// The ISO image to start from (left unchanged)
    pub input: PathBuf,
    /// The ISO file to write
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Add a file or folder from the host at DEST [default: /NAME]; a DEST
    /// ending in / puts it inside that folder; folders merge
    #[arg(long, value_name = "SRC[:DEST]")]
    pub add: Vec<OsString>,
    /// Remove a file or folder (with everything in it)
    #[arg(long, value_name = "PATH")]
    pub rm: Vec<OsString>,
    /// Replace the existing DEST with SRC from the host
    #[arg(long, value_name = "SRC:DEST")]
    pub replace: Vec<OsString>,
    #[command(flatten)]
    pub volume: VolumeArgs,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}
