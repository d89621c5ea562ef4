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
    /// --store was given on the command line (not only in $SLIPWAY_STORE).
    #[arg(skip)]
    pub store_on_command_line: bool,
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
    /// Re-read and re-hash everything in the store, or check a root
    ///
    /// Without --root: checks every pack, chunk, index file, record and ref,
    /// and names the images and paths that use anything damaged or missing.
    /// With --root: checks every file the installed packages own (and, with
    /// --image, every file of the image the root came from) against the
    /// signed catalog: kind, content, mode and owner; --repair restores what
    /// differs from the package cache or the store. Exits 1 when it finds a
    /// problem (that it did not repair).
    Verify(VerifyArgs),
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
    /// Make and trust Ed25519 signing keys for update packages
    ///
    /// Keys are minisign-compatible: `minisign -V -p KEY.pub` checks what
    /// slipway signs with KEY.key.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Build, inspect, check and unpack update packages
    ///
    /// An update package (hotfix, rollup or service pack) is a signed
    /// manifest of file operations with a compressed payload, optionally
    /// binary deltas against the files it replaces. Format:
    /// docs/package-format.md.
    #[command(subcommand)]
    Package(PackageCmd),
    /// Apply update packages offline to an image or a directory (slipstream)
    ///
    /// With --image, writes a new version of the image with the packages
    /// applied and recorded in it (`slipway info` lists them), so machines
    /// deployed from it know what they have. With --tree, services a plain
    /// directory (a distribution folder or an unpacked root) in place.
    /// Superseded packages are skipped, with a message.
    Integrate(IntegrateArgs),
    /// Install update packages on a running system or a mounted root
    ///
    /// Checks signature, hashes and applicability, then plans: every change,
    /// the bytes to write, the free space needed (staging plus backups), and
    /// every file that would go down in version. Backs up what it changes,
    /// stages new files, and commits through a write-ahead journal with
    /// atomic renames (a running program keeps its old file). After a crash,
    /// the next slipway command (or `slipway recover`) finishes or rolls
    /// back, so the root is wholly old or wholly new. Logs to
    /// ROOT/var/log/slipway/.
    Install(InstallArgs),
    /// Remove an installed update package, restoring what it changed
    ///
    /// Restores content and metadata bit for bit. When later packages sit on
    /// the same files, their files stay and will restore the version from
    /// below this package when they are uninstalled in turn.
    Uninstall(UninstallArgs),
    /// List the update packages installed or integrated on a root
    Packages(RootJsonArgs),
    /// Find installed hotfixes that packages would regress (or did)
    ///
    /// Compares per-file versions: lists every file of an installed package
    /// (or of the root's Debian packages) that is newer than what the given
    /// packages bring. `install` refuses such packages unless
    /// --allow-regress. With --installed, lists installed packages whose
    /// files a later package took down in version. Exits 3 when it finds
    /// something.
    Scan(ScanArgs),
    /// Finish or roll back an interrupted install or uninstall
    Recover(RootJsonArgs),
    /// Remove a root's machine identity before it is captured (Sysprep)
    ///
    /// Runs named operations on an offline root: machine-id to
    /// `uninitialized` (so systemd sees a first boot), SSH host keys (with
    /// new ones guaranteed at first boot), random seed and credential
    /// secret, host name, logs and the journal, shell histories, tmp, DHCP
    /// leases, package caches, persistent net rules, cloud-init state,
    /// MAC-bound NetworkManager profiles, passwd backups, crash dumps.
    /// Each reports what it removed. What cannot be generalized safely (a
    /// domain keytab, encrypted homes) is reported, not kept silently.
    #[command(after_help = "Examples:\n  slipway generalize /srv/master --dry-run\n  \
slipway generalize /srv/master --ops defaults,-logfiles\n  slipway generalize --list-ops")]
    Generalize(GeneralizeArgs),
    /// Apply an answer file to an applied image before its first boot
    ///
    /// Sets the host name (from the answer's pattern and the machine's
    /// facts), /etc/hosts, a fresh machine-id when asked, users and groups,
    /// SSH keys and settings, network files for the root's own stack,
    /// locale, keyboard, time zone, NTP and files. What must run on the
    /// machine (SSH host keys if absent, domain join, commands) goes to
    /// slipway-firstboot.service, which runs `slipway firstboot` once.
    #[command(after_help = "Example:\n  slipway specialize /mnt/target --answer answer.toml \\\n    \
--fact serial=ABC123 --fact mac=52:54:00:12:34:56")]
    Specialize(SpecializeArgs),
    /// Write, check and export answer files (the Setup Manager)
    #[command(subcommand)]
    Answer(AnswerCmd),
    /// Run the first-boot steps specialize left (from the first-boot unit)
    ///
    /// Runs once per machine: SSH host keys when there are none, passwords
    /// from systemd credentials, the domain join, then the answer file's
    /// commands, logging to /var/log/slipway/firstboot.log. Exit status: 0
    /// all done, 1 a step failed and the run went on, 2 a step failed and
    /// stopped the run, 3 the run could not start (no readable plan).
    Firstboot(FirstbootArgs),
    /// Run the deployment server (API, web console, content)
    ///
    /// Machines enroll and report inventory, collections choose them by
    /// rules, deployments put image versions from the store on them, and
    /// every machine's state and events are kept in the database (SQLite
    /// in STORE.server/ by default, or PostgreSQL with --db). TLS by
    /// default, with a self-signed certificate made on first start. The
    /// console is at https://ADDR/console/, the OpenAPI document at
    /// /v1/openapi.json.
    #[command(after_help = "Example:\n  slipway server token new --name me       # the first admin token\n  \
slipway serve --listen 0.0.0.0:8443\n  slipway server token new --enrollment --name lab --uses 50")]
    Serve(ServeArgs),
    /// Server administration that needs no running server (tokens)
    #[command(subcommand)]
    Server(ServerCmd),
    /// Run the deployment agent: enroll, report inventory, deploy
    ///
    /// Enrolls with the server once (with an enrollment token, or waiting
    /// for an admin's approval), reports the machine's inventory from /sys
    /// and /proc, then waits for work. A deployment is fetched into the
    /// agent's cache (only blobs it lacks, each checked against its id),
    /// applied to the target directory, specialized with the machine's
    /// rendered answer file, and every step is reported. State survives
    /// restarts of the agent and of the server.
    #[command(after_help = "Example:\n  slipway agent --server https://deploy:8443 --ca server.pem \\\n    \
--enroll slw_enroll_... --target /mnt/target --fact rack=r12")]
    Agent(AgentArgs),
    /// List enrolled machines, show one, approve or reject
    Machines(MachinesArgs),
    /// Make and change collections (machines chosen by rules over facts)
    #[command(subcommand)]
    Collection(CollectionCmd),
    /// Deploy an image version to a collection
    ///
    /// Pins the image version, checks the answer file against it, and
    /// makes every machine of the collection pending (or incompatible,
    /// with the reason, when its facts do not meet the image's
    /// requirements). Agents pick the work up on their next poll.
    #[command(after_help = "Example:\n  slipway deploy web@3 --to lab --answer answer.toml --max-parallel 10")]
    Deploy(DeployArgs),
    /// Show deployments, or one deployment with every machine's state
    Status(StatusArgs),
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

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Check this root against its installed packages instead of the store
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// With --root: restore changed or missing files
    #[arg(long, requires = "root")]
    pub repair: bool,
    /// With --root: also check the files of this image (NAME or NAME@VERSION)
    #[arg(long, requires = "root", value_name = "IMAGE")]
    pub image: Option<String>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// Trust this public key for this command (besides the trusted keys)
    #[arg(long = "trust", value_name = "PUB")]
    pub keys: Vec<PathBuf>,
    /// Accept packages without a signature (a bad signature is never
    /// accepted)
    #[arg(long)]
    pub allow_unsigned: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Make a key pair: PREFIX.key (secret, mode 0600) and PREFIX.pub
    New {
        /// Path prefix of the two files
        prefix: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Trust a public key: on a machine (ROOT/etc/slipway/trusted.d, default
    /// /), or in a store (STORE/trusted.d) with --store
    Trust {
        /// The public key file (PREFIX.pub)
        public: PathBuf,
        /// The machine root whose trust to change
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List trusted keys of a machine root (or of the store with --store)
    List {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum PackageCmd {
    /// Build a package from a directory and a manifest, or from two trees
    ///
    /// --from DIR --manifest FILE: every entry below DIR is written by the
    /// package; FILE (TOML) gives id, title, version, kind, applies_to,
    /// requires, supersedes, deletes and per-file versions. --diff OLD NEW:
    /// the operations that turn tree OLD into tree NEW, with binary deltas
    /// against OLD's files where they are smaller, and per-file versions
    /// from NEW's dpkg database.
    Build(Box<PackageBuildArgs>),
    /// Show a package's manifest summary, signature and operations
    Info(PackageFileArgs),
    /// Check a package's signature and every hash, writing nothing
    Verify(PackageFileArgs),
    /// Unpack a package's files into a directory (the old `-x`)
    Extract(PackageExtractArgs),
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["from", "diff"])))]
#[command(override_usage = "slipway package build --from DIR --manifest FILE --sign KEY -o PKG\n       \
slipway package build --diff OLD NEW --id ID --sign KEY -o PKG [OPTIONS]")]
pub struct PackageBuildArgs {
    /// Directory holding the files the package writes (with --manifest)
    #[arg(long, value_name = "DIR", requires = "manifest")]
    pub from: Option<PathBuf>,
    /// The package manifest (TOML; see docs/package-format.md)
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Derive the operations from two trees: OLD and NEW
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"], requires = "id", conflicts_with = "manifest")]
    pub diff: Option<Vec<PathBuf>>,
    /// Package id (with --diff)
    #[arg(long)]
    pub id: Option<String>,
    /// Title (with --diff) [default: the id]
    #[arg(long)]
    pub title: Option<String>,
    /// Package version (with --diff)
    #[arg(long = "pkg-version", value_name = "VERSION", default_value = "1")]
    pub pkg_version: String,
    /// hotfix, rollup or service-pack (with --diff)
    #[arg(long, default_value = "hotfix")]
    pub kind: String,
    /// Description (with --diff)
    #[arg(long, default_value = "")]
    pub description: String,
    /// Required os-release ID of the target (with --diff)
    #[arg(long, value_name = "ID")]
    pub os_id: Option<String>,
    /// Image names it applies to (with --diff; repeatable)
    #[arg(long = "for-image", value_name = "NAME")]
    pub images: Vec<String>,
    /// Packages that must be installed first (with --diff; repeatable)
    #[arg(long, value_name = "ID")]
    pub requires: Vec<String>,
    /// Packages this one supersedes (with --diff; repeatable)
    #[arg(long, value_name = "ID")]
    pub supersedes: Vec<String>,
    /// Sign with this secret key (PREFIX.key)
    #[arg(long, value_name = "KEY", required_unless_present = "unsigned")]
    pub sign: Option<PathBuf>,
    /// Build an unsigned package (installs only with --allow-unsigned)
    #[arg(long, conflicts_with = "sign")]
    pub unsigned: bool,
    /// Store full files only, no binary deltas
    #[arg(long)]
    pub no_deltas: bool,
    /// zstd level (1-22)
    #[arg(long, default_value_t = 19)]
    pub level: i32,
    /// Output package file
    #[arg(long, short)]
    pub output: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PackageFileArgs {
    /// The package file
    pub package: PathBuf,
    /// Machine root whose trusted keys to use [default: /]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// List every operation (info)
    #[arg(long, short)]
    pub verbose: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PackageExtractArgs {
    /// The package file
    pub package: PathBuf,
    /// Directory to write the files into (created; must be empty)
    pub dest: PathBuf,
    /// Tree holding the base files for delta entries (else they are skipped)
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Machine root whose trusted keys to use [default: /]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("into").required(true).args(["image", "tree"])))]
pub struct IntegrateArgs {
    /// Package files, applied in this order
    #[arg(required = true)]
    pub packages: Vec<PathBuf>,
    /// The image to service (NAME or NAME@VERSION); writes a new version
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// A directory to service in place
    #[arg(long, value_name = "DIR")]
    pub tree: Option<PathBuf>,
    /// Show the plan, change nothing
    #[arg(long, alias = "plan")]
    pub dry_run: bool,
    /// Integrate even when files would go down in version
    #[arg(long)]
    pub allow_regress: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Package files, installed in this order (one transaction each)
    #[arg(required = true)]
    pub packages: Vec<PathBuf>,
    /// The root to service
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the plan (every change, bytes, space, downgrades), change
    /// nothing
    #[arg(long, alias = "plan")]
    pub dry_run: bool,
    /// Install even when files would go down in version
    #[arg(long)]
    pub allow_regress: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UninstallArgs {
    /// The package id
    pub id: String,
    /// The root to service
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print the plan, change nothing
    #[arg(long, alias = "plan")]
    pub dry_run: bool,
    /// Uninstall even if another installed package requires it
    #[arg(long)]
    pub force: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RootJsonArgs {
    /// The root
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("what").required(true).args(["packages", "installed"])))]
pub struct ScanArgs {
    /// Packages to check before installing them
    pub packages: Vec<PathBuf>,
    /// Check what is installed: packages a later one regressed
    #[arg(long)]
    pub installed: bool,
    /// The root
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// List every file compared
    #[arg(long, short)]
    pub verbose: bool,
    /// Also write the report to this file
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct GeneralizeArgs {
    /// The root to generalize (offline: an applied image or a mounted disk)
    #[arg(required_unless_present = "list_ops")]
    pub root: Option<PathBuf>,
    /// Operations: `defaults`, `all`, `none`, NAME, +NAME, -NAME, comma
    /// separated, applied left to right [default: defaults]
    #[arg(long, value_name = "LIST")]
    pub ops: Option<String>,
    /// Report what would be removed; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Allow generalizing the running system's own root
    #[arg(long)]
    pub force: bool,
    /// List the operations and exit
    #[arg(long)]
    pub list_ops: bool,
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FactArgs {
    /// Machine facts from a JSON object file ({"serial": "X1", "mac": "..."})
    #[arg(long, value_name = "FACTS.json")]
    pub machine: Option<PathBuf>,
    /// A machine fact (serial, mac, uuid, seq, or any name); repeatable,
    /// wins over --machine
    #[arg(long = "fact", value_name = "KEY=VALUE")]
    pub facts: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SpecializeArgs {
    /// The root (an applied image, before its first boot)
    pub root: PathBuf,
    /// The answer file (answer.toml; see docs/answer-format.md)
    #[arg(long, short, value_name = "FILE")]
    pub answer: PathBuf,
    #[command(flatten)]
    pub facts: FactArgs,
    /// The slipway binary to copy into the root for the first-boot unit
    /// [default: this one]
    #[arg(long, value_name = "PATH")]
    pub slipway_binary: Option<PathBuf>,
    /// Allow specializing the running system's own root
    #[arg(long)]
    pub force: bool,
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AnswerCmd {
    /// Check an answer file, and against an image or root when given
    ///
    /// Refuses unknown keys, plain-text passwords, bad host name patterns
    /// and bad values; with --image or --root, also settings the image
    /// cannot satisfy (missing shells, groups, network stack, time zone,
    /// locale, sudo, sshd). Every problem names the key and the fix. Exits
    /// 3 when there are problems.
    Check(AnswerCheckArgs),
    /// Write a new answer file, asking for the common settings
    ///
    /// Interactive by default (reads answers from standard input); with
    /// --non-interactive the settings come from the flags.
    #[command(after_help = "Example:\n  slipway answer new --non-interactive -o answer.toml \\\n    \
--hostname 'web-{serial}' --user admin \\\n    --password-hash \"$(mkpasswd -m yescrypt)\" \\\n    \
--ssh-key \"$(cat ~/.ssh/id_ed25519.pub)\" --timezone Europe/Berlin")]
    New(AnswerNewArgs),
    /// Export an answer file as a cloud-init NoCloud seed
    Export(AnswerExportArgs),
    /// Print the answer file's JSON Schema
    Schema,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("against").args(["image", "root"])))]
pub struct AnswerCheckArgs {
    /// The answer file
    pub file: PathBuf,
    /// Check against this image in the store (NAME or NAME@VERSION)
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// Check against this root directory
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AnswerNewArgs {
    /// Take every setting from the flags; ask nothing
    #[arg(long)]
    pub non_interactive: bool,
    /// Write here instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Host name pattern, like web-{serial} (tokens: {serial} {mac} {uuid}
    /// {seq} {rand:N} {fact:NAME})
    #[arg(long, value_name = "PATTERN")]
    pub hostname: Option<String>,
    /// DNS domain
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// A user to create
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// The user's password as a crypt hash (mkpasswd -m yescrypt)
    #[arg(long, value_name = "HASH")]
    pub password_hash: Option<String>,
    /// An SSH public key line for the user; repeatable
    #[arg(long = "ssh-key", value_name = "KEY")]
    pub ssh_keys: Vec<String>,
    /// Do not give the user sudo rights
    #[arg(long)]
    pub no_sudo: bool,
    /// Time zone, like Europe/Berlin
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// Configure DHCP on every Ethernet interface
    #[arg(long)]
    pub dhcp: bool,
    /// Overwrite FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct AnswerExportArgs {
    /// The answer file
    pub file: PathBuf,
    /// Write a NoCloud seed (user-data, meta-data, network-config) here
    #[arg(long, value_name = "DIR")]
    pub nocloud: PathBuf,
    /// The seed's instance-id [default: derived from the answer and facts]
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    #[command(flatten)]
    pub facts: FactArgs,
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FirstbootArgs {
    /// The machine's root (for tests; on a machine it is /)
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Run the every-boot commands (from slipway-everyboot.service)
    #[arg(long)]
    pub every_boot: bool,
    /// Print JSON (schemas in docs/cli-json.md)
    #[arg(long)]
    pub json: bool,
}

/// How to reach a running server (admin commands).
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The server's URL
    #[arg(long, global = true, env = "SLIPWAY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// An admin token (slw_admin_...; make one with `slipway server token new`)
    #[arg(long, global = true, env = "SLIPWAY_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's certificate to trust (STORE.server/tls/cert.pem for a
    /// self-signed server)
    #[arg(long, global = true, env = "SLIPWAY_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Database URL: sqlite:PATH or postgres://USER:PASS@HOST/DB
    /// [default: SQLite in the data directory]
    #[arg(long, env = "SLIPWAY_DB", value_name = "URL", hide_env_values = true)]
    pub db: Option<String>,
    /// The server's own directory: database, TLS files, secrets
    /// [default: STORE.server]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// TLS certificate chain (PEM) instead of the self-signed one
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (behind a TLS proxy, or on loopback)
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// Where answer files' `file` secrets are read [default: DATA/secrets]
    #[arg(long, value_name = "DIR")]
    pub secrets: Option<PathBuf>,
    /// Print the startup line as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ServerCmd {
    /// Make tokens
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Make an admin token (default) or an enrollment token
    ///
    /// Writes straight to the server's database, so it works before the
    /// server first runs. The token is printed once; only its hash is kept.
    New(TokenNewArgs),
}

#[derive(Args, Debug)]
pub struct TokenNewArgs {
    /// A name saying who or what uses the token
    #[arg(long, default_value = "admin")]
    pub name: String,
    /// An enrollment token (machines that enroll with it are approved)
    #[arg(long)]
    pub enrollment: bool,
    /// Enrollment token: how many machines may use it
    #[arg(long, requires = "enrollment")]
    pub uses: Option<u32>,
    /// Enrollment token: seconds until it expires
    #[arg(long, requires = "enrollment", value_name = "SECS")]
    pub expires: Option<u64>,
    /// The server's data directory [default: STORE.server]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Database URL, as for `slipway serve`
    #[arg(long, env = "SLIPWAY_DB", value_name = "URL", hide_env_values = true)]
    pub db: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The server's URL
    #[arg(long, env = "SLIPWAY_SERVER", value_name = "URL")]
    pub server: String,
    /// An enrollment token; without one the machine waits for approval
    #[arg(long, value_name = "TOKEN")]
    pub enroll: Option<String>,
    /// The directory the image is applied to
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// A fact to add to the inventory or override in it; repeatable
    /// (rack=r12, memory_mb=4096, dmi.serial=X1)
    #[arg(long = "fact", value_name = "KEY=VALUE")]
    pub facts: Vec<String>,
    /// The agent's own directory: credential, event queue, content cache
    #[arg(long, default_value = "/var/lib/slipway/agent", value_name = "DIR")]
    pub state: PathBuf,
    /// The server's certificate to trust
    #[arg(long, env = "SLIPWAY_CA", value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// Exit after one deployment ended (status 0 if it succeeded)
    #[arg(long)]
    pub once: bool,
    /// Empty a target that is not empty before writing to it
    #[arg(long)]
    pub wipe_target: bool,
    /// Print the inventory as JSON and exit (nothing is sent)
    #[arg(long)]
    pub inventory: bool,
    /// Read /sys, /proc and /etc under this directory (for tests)
    #[arg(long, default_value = "/", value_name = "DIR", hide = true)]
    pub sys_root: PathBuf,
    /// The slipway binary specialize copies into the target for first boot
    /// [default: this one]
    #[arg(long, value_name = "FILE")]
    pub slipway_binary: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct MachinesArgs {
    #[command(subcommand)]
    pub cmd: Option<MachinesCmd>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum MachinesCmd {
    /// One machine: facts, collections, deployments
    Show {
        /// Machine id or name
        machine: String,
    },
    /// Every version of a machine's facts, with what changed
    Facts {
        /// Machine id or name
        machine: String,
    },
    /// A machine's events (its log)
    Events {
        /// Machine id or name
        machine: String,
    },
    /// Let a machine that enrolled without a token receive work
    Approve {
        /// Machine id or name
        machine: String,
    },
    /// Refuse a machine; its credential stops working
    Reject {
        /// Machine id or name
        machine: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CollectionCmd {
    /// List collections
    List(RemoteArgs),
    /// Show one collection and its machines
    Show {
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Make a collection (see docs/rule-language.md for rules)
    #[command(
        after_help = "Example:\n  slipway collection new lab --rule 'arch == \"x86_64\" and memory_mb >= 4096 \\\n    \
and any(nic.mac, \"52:54:00:*\")'"
    )]
    New(CollectionArgs),
    /// Replace a collection's rule and explicit members
    Set(CollectionArgs),
    /// Delete a collection no deployment uses
    Delete {
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Args, Debug)]
pub struct CollectionArgs {
    pub name: String,
    /// A rule over facts: arch == "x86_64" and memory_mb >= 4096
    #[arg(long)]
    pub rule: Option<String>,
    /// A machine that belongs whatever the rule says (id or name); repeatable
    #[arg(long = "member", value_name = "MACHINE")]
    pub members: Vec<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug)]
pub struct DeployArgs {
    /// NAME@VERSION, or NAME for the newest version (pinned now)
    pub image: String,
    /// The collection to deploy to
    #[arg(long, value_name = "COLLECTION")]
    pub to: String,
    /// The answer file for specialize (secrets are read on the server)
    #[arg(long, value_name = "FILE")]
    pub answer: Option<PathBuf>,
    /// A name for the deployment [default: IMAGE to COLLECTION]
    #[arg(long)]
    pub name: Option<String>,
    /// An update package to install after the image, before specialize
    /// (uploaded to the server; the image must trust its signer); repeatable
    #[arg(long = "package", value_name = "FILE")]
    pub packages: Vec<PathBuf>,
    /// No machine starts before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// No machine starts after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// At most this many machines at once (0: no limit)
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_parallel: u32,
    /// Firmware the image needs (bios, uefi); repeatable
    #[arg(long, value_name = "FIRMWARE")]
    pub firmware: Vec<String>,
    /// Wait until every machine is in a final state, showing progress
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A deployment (id or name); without one, every deployment
    pub deployment: Option<String>,
    /// Refresh until every machine is in a final state
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}
