//! The answer file's types: one definition for parsing (serde, unknown keys
//! refused), the JSON Schema (schemars) and the documentation.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretRef;

/// An answer file (`answer.toml`), format version 1.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "slipway answer file", description = "slipway answer file (answer.toml), format 1")]
pub struct Answer {
    /// Format version of the answer file; 1.
    pub version: u32,
    /// The machine's name and identity.
    #[serde(default)]
    pub computer: Computer,
    /// Per-machine overrides, matched by serial number, MAC address or UUID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachineOverride>,
    /// Local groups to create (or add members to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Local users to create or update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<User>,
    /// SSH server settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Ssh>,
    /// Network configuration, rendered for the root's network stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Language and keyboard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// Time zone and NTP servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Files to write into the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    /// Joining a directory domain (Active Directory, FreeIPA) at first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Commands run on the machine at first boot (or every boot), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<Command>,
}

/// The machine's name and identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Computer {
    /// Host name pattern: literal text and tokens `{serial}`, `{mac}`,
    /// `{uuid}`, `{seq}`, `{rand:N}` (N random letters and digits, 1-32),
    /// `{fact:NAME}`. The result must be a valid host name label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// DNS domain; the fully qualified name goes into /etc/hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// When the machine gets its machine-id: `first-boot` (systemd makes it
    /// at first boot; the default) or `specialize` (a new random ID is written
    /// offline, so it is known before the machine boots).
    #[serde(default)]
    pub machine_id: MachineIdPolicy,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MachineIdPolicy {
    #[default]
    FirstBoot,
    Specialize,
}

/// Settings for the machines that match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineOverride {
    /// Which machine: by serial number, MAC address or SMBIOS UUID.
    #[serde(rename = "match")]
    pub matches: MachineMatch,
    /// Host name (pattern) for this machine instead of `computer.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Network interfaces for this machine instead of `network.interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<Interface>>,
    /// Time zone for this machine instead of `time.timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// A machine matcher; every key given must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineMatch {
    /// DMI system serial number (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// A MAC address of the machine (any of its interfaces; case does not
    /// matter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// SMBIOS system UUID (case does not matter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// A local group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    /// Group ID; the next free one from 1000 when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// A system group (ID from 100-999 when not given).
    #[serde(default, skip_serializing_if = "is_false")]
    pub system: bool,
    /// Users added to the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// Sudo rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Sudo {
    /// No sudo rule from slipway.
    None,
    /// All commands, asking for the user's password.
    Password,
    /// All commands without a password.
    Nopasswd,
}

/// A local user.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// User ID; the next free one from 1000 when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Full name (GECOS field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gecos: Option<String>,
    /// Login shell; /bin/bash when the root has it, else /bin/sh (system
    /// users: /usr/sbin/nologin when the root has it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// Home directory; /home/NAME (/root for root) when not given. A
    /// system user without one gets /nonexistent and no directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    /// Primary group name; a group named like the user when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_group: Option<String>,
    /// Supplementary groups (they must exist in the root or in `groups`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// A crypt(3) hash (`$y$` yescrypt, `$6$` SHA-512, `$5$`, `$2b$`), or a
    /// secret reference to one. Plain-text passwords are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<HashOrRef>,
    /// Lock the password (SSH keys still work).
    #[serde(default, skip_serializing_if = "is_false")]
    pub lock_password: bool,
    /// sudo rights: `none` (the default), `password` or `nopasswd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo: Option<Sudo>,
    /// Lines for ~/.ssh/authorized_keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
    /// A system account (ID from 100-999 when not given, no home created).
    #[serde(default, skip_serializing_if = "is_false")]
    pub system: bool,
}

/// A password hash given inline, or a reference to a secret holding one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HashOrRef {
    Hash(String),
    Secret(SecretRef),
}

/// SSH server settings, written to /etc/ssh/sshd_config.d/50-slipway.conf.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// Allow password logins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_authentication: Option<bool>,
    /// `yes`, `no`, `prohibit-password` or `forced-commands-only`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_root_login: Option<String>,
    /// When new host keys are made: `first-boot` (on the machine, by
    /// `slipway firstboot`, when none are there; the default) or
    /// `specialize` (offline, so their fingerprints are known before the
    /// machine boots).
    #[serde(default)]
    pub host_keys: HostKeys,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeys {
    #[default]
    FirstBoot,
    Specialize,
}

/// Which network stack renders the interfaces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Renderer {
    /// Whatever the root uses: NetworkManager, then ifupdown, then
    /// systemd-networkd.
    #[default]
    Auto,
    Networkd,
    NetworkManager,
    Ifupdown,
    /// Leave the root's network configuration alone.
    None,
}

/// Network configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub renderer: Renderer,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
}

/// How an interface is configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddressMode {
    #[default]
    Dhcp,
    Static,
}

/// One network interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Which interface: by MAC address or by name (a glob like `en*`).
    #[serde(rename = "match")]
    pub matches: InterfaceMatch,
    /// `dhcp` (the default) or `static`.
    #[serde(default)]
    pub mode: AddressMode,
    /// Static addresses in CIDR form (`192.0.2.10/24`, `2001:db8::10/64`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Default gateway (static mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// DNS search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// An interface matcher: `mac` or `name`, not both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InterfaceMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Language and keyboard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Locale {
    /// `LANG`, for example `en_US.UTF-8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Console and X11 keyboard layout, for example `us` or `de`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyboard: Option<String>,
}

/// Time settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// IANA time zone, for example `Europe/Berlin` or `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// NTP servers (systemd-timesyncd, or chrony when the root uses it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp: Vec<String>,
}

/// A file to write into the root.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path inside the root.
    pub path: String,
    /// Octal mode as a string, for example `"0644"` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner user name (root by default; it must exist in the root or in
    /// `users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owner group name (the owner's primary group by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The content, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Where to fetch the content (`https://`, `http://` or `file://`);
    /// needs `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// SHA-256 of the content from `source`, in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Joining a directory domain at first boot with realmd (`realm join`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The realm, for example `AD.EXAMPLE.COM`.
    pub realm: String,
    /// The account allowed to join machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Its password or a one-time password: a secret reference only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretRef>,
    /// Organizational unit for the computer account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ou: Option<String>,
    /// Seconds before the join is given up (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// What a failed join does: `continue` (the default), `halt` or `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

/// When a first-boot command runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum When {
    /// Once, at the first boot.
    #[default]
    Once,
    /// At every boot.
    EveryBoot,
}

/// What a failed command does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Log it, go on with the next command; the run's status is "failed".
    #[default]
    Continue,
    /// Stop here; later commands do not run and the run is "failed".
    Halt,
    /// Try again (up to `retries` times, 3 by default), then as `halt`.
    Retry,
}

/// A command run on the machine by `slipway firstboot`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Command {
    /// A short name for logs and status.
    pub name: String,
    /// The program and its arguments (no shell). Give `run` or `shell`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run: Vec<String>,
    /// A shell command line for /bin/sh -c.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// `once` (the default) or `every-boot`.
    #[serde(default)]
    pub when: When,
    /// Seconds before the command is killed (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// `continue` (the default), `halt` or `retry`.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Attempts for `retry` (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Environment variables; values are secret references, resolved on the
    /// machine and never logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, SecretRef>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
