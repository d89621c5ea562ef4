//! Checking an answer file against the image it will be applied to: does the
//! image have the shells, groups, programs, time zones, locales and network
//! stack the answer asks for? (The checks that need no image are
//! [`super::validate`].)
//!
//! The image is seen through [`RootView`]: a root directory ([`RootDir`]) or
//! an image version in a store ([`StoreImage`]), read without applying it.
//! Neither follows a symlink by itself; [`resolve`] follows them inside the
//! image, as the image's own programs would see them (`/bin -> usr/bin`), and
//! never out of it.

use crate::specialize::network::Stack;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use slipway_store::{BlobId, BlobReader, EntryKind, ImageSpec, ImageVersion, Store, Tree};

use super::{Answer, Problem, Renderer, Sudo};
use crate::rootdir::{Found, RootDir};

/// What is at a path in an image, without following a symlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Absent,
    File,
    Dir,
    /// A symlink and its target.
    Symlink(String),
    /// A device, fifo or socket.
    Other,
}

/// Read-only access to the files of an image or root.
///
/// Paths are relative to the image's top directory, without a leading `/`
/// (`etc/passwd`). Implementations never follow symlinks: a symlink before
/// the last component may be an error; use [`resolve`] to follow them inside
/// the image.
pub trait RootView {
    /// What is at `path` (a final symlink is reported, not followed).
    fn kind(&self, path: &str) -> Result<Kind>;
    /// The content of the regular file at `path`; `None` when nothing is
    /// there.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>>;
}

impl RootView for RootDir {
    fn kind(&self, path: &str) -> Result<Kind> {
        Ok(match self.inspect(path)? {
            Found::Absent => Kind::Absent,
            Found::File { .. } => Kind::File,
            Found::Dir => Kind::Dir,
            Found::Symlink { target } => Kind::Symlink(String::from_utf8_lossy(&target).into_owned()),
            Found::Other => Kind::Other,
        })
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        RootDir::read(self, path)
    }
}

/// Symlinks followed in one lookup before giving up (as Linux's 40).
const MAX_SYMLINKS: usize = 40;

/// Follows symlinks inside the image: `path` is looked up one component at
/// a time, and a symlink's target is read as a path inside the image (an
/// absolute target starts again from the image's top, `..` stops there).
/// Returns the path with every symlink resolved and what is there; a path
/// through a missing directory or a file is `Absent`.
pub fn resolve(view: &dyn RootView, path: &str) -> Result<(String, Kind)> {
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0usize;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(c);
        let here = cur.join("/");
        let last = todo.iter().all(|c| c.is_empty() || c == ".");
        match view.kind(&here)? {
            Kind::Symlink(target) => {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    bail!("too many levels of symlinks looking up /{path} in the image");
                }
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                todo.extend(target.split('/').rev().map(str::to_string));
            }
            Kind::Absent => return Ok((here, Kind::Absent)),
            k if last => return Ok((here, k)),
            Kind::Dir => {}
            // A file or device where a directory should be.
            _ => return Ok((here, Kind::Absent)),
        }
    }
    Ok((cur.join("/"), Kind::Dir))
}

/// What is at `path` once symlinks inside the image are followed.
fn kind_of(view: &dyn RootView, path: &str) -> Result<Kind> {
    Ok(resolve(view, path)?.1)
}

/// Whether any of `paths` is a file (or a symlink to one) in the image.
fn any_file(view: &dyn RootView, paths: &[&str]) -> Result<bool> {
    for p in paths {
        if kind_of(view, p)? == Kind::File {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_dir(view: &dyn RootView, path: &str) -> Result<bool> {
    Ok(kind_of(view, path)? == Kind::Dir)
}

/// Reads a file, following symlinks inside the image.
fn read_resolved(view: &dyn RootView, path: &str) -> Result<Option<Vec<u8>>> {
    match resolve(view, path)? {
        (p, Kind::File) => view.read(&p),
        _ => Ok(None),
    }
}

/// The network stack `renderer = "auto"` uses in this image: the rule of
/// `specialize::network::detect` ([`Stack::DETECT_ORDER`] and each stack's
/// programs), read through a [`RootView`].
pub fn detect_renderer(view: &dyn RootView) -> Result<Option<Renderer>> {
    for s in Stack::DETECT_ORDER {
        if any_present(view, s.programs())? {
            return Ok(Some(match s {
                Stack::NetworkManager => Renderer::NetworkManager,
                Stack::Ifupdown => Renderer::Ifupdown,
                _ => Renderer::Networkd,
            }));
        }
    }
    Ok(None)
}

fn any_present(view: &dyn RootView, paths: &[&str]) -> Result<bool> {
    for p in paths {
        if kind_of(view, p)? != Kind::Absent {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Users and groups of the image, from etc/passwd and etc/group.
#[derive(Default)]
struct Accounts {
    /// (name, uid)
    users: Vec<(String, u32)>,
    /// (name, gid)
    groups: Vec<(String, u32)>,
    has_passwd: bool,
}

impl Accounts {
    fn load(view: &dyn RootView) -> Result<Accounts> {
        let mut a = Accounts::default();
        if let Some(b) = read_resolved(view, "etc/passwd")? {
            a.has_passwd = true;
            a.users = colon_records(&b);
        }
        if let Some(b) = read_resolved(view, "etc/group")? {
            a.groups = colon_records(&b);
        }
        Ok(a)
    }
}

/// `name:x:ID:…` lines → (name, ID); lines that do not parse are skipped.
fn colon_records(b: &[u8]) -> Vec<(String, u32)> {
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let id = f.nth(1)?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (name.to_string(), id))
        })
        .collect()
}

/// Directories searched for a command given without a path.
const PATH_DIRS: [&str; 6] = ["usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"];

/// Checks `answer` against the image seen through `view`: only what needs
/// the image (the rest is [`super::validate`]). Each problem names the key
/// and a fix. An image that cannot be read is one problem with key "".
pub fn check(answer: &Answer, view: &dyn RootView) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Err(e) = check_into(answer, view, &mut out) {
        out.push(Problem::new(
            "",
            format!("cannot read the image: {e:#}"),
            "check the image (`slipway verify` for a store) and try again",
        ));
    }
    out
}

fn check_into(a: &Answer, view: &dyn RootView, out: &mut Vec<Problem>) -> Result<()> {
    let mut p = |k: String, what: String, fix: &str| out.push(Problem::new(k, what, fix));
    let acc = Accounts::load(view)?;
    let needs_accounts =
        !a.users.is_empty() || !a.groups.is_empty() || a.files.iter().any(|f| f.owner.is_some() || f.group.is_some());
    if needs_accounts && !acc.has_passwd {
        p(
            String::new(),
            "the image has no /etc/passwd".into(),
            "check the image with an answer file only for a whole OS root (base-passwd/shadow installed)",
        );
    }
    // Names known after specialize: the image's and the answer's. A user
    // without primary_group gets a group named like itself.
    let mut users: BTreeSet<&str> = acc.users.iter().map(|(n, _)| n.as_str()).collect();
    users.extend(a.users.iter().map(|u| u.name.as_str()));
    let mut groups: BTreeSet<&str> = acc.groups.iter().map(|(n, _)| n.as_str()).collect();
    groups.extend(a.groups.iter().map(|g| g.name.as_str()));
    groups.extend(a.users.iter().filter(|u| u.primary_group.is_none()).map(|u| u.name.as_str()));

    for (i, u) in a.users.iter().enumerate() {
        let k = format!("users[{i}]");
        match &u.shell {
            Some(sh) => {
                if kind_of(view, sh.trim_start_matches('/'))? != Kind::File {
                    p(
                        format!("{k}.shell"),
                        format!("{sh} is not in the image"),
                        "install the package that provides it, or give a shell the image has (see its /etc/shells)",
                    );
                }
            }
            None => {
                if !any_file(view, &["bin/bash", "usr/bin/bash", "bin/sh", "usr/bin/sh"])? {
                    p(
                        format!("{k}.shell"),
                        "no shell given, and the image has neither /bin/bash nor /bin/sh".into(),
                        "give shell = \"/path\" of a shell in the image, or install bash",
                    );
                }
            }
        }
        if let Some(uid) = u.uid {
            if let Some((other, _)) = acc.users.iter().find(|(n, id)| *id == uid && *n != u.name) {
                p(
                    format!("{k}.uid"),
                    format!("user ID {uid} is already used by {other:?} in the image"),
                    "pick a free user ID, or leave uid out to get the next free one",
                );
            }
        }
        if let Some(g) = &u.primary_group {
            if !groups.contains(g.as_str()) {
                p(
                    format!("{k}.primary_group"),
                    format!("group {g:?} is neither in the image nor in the answer's groups"),
                    "add it to [[groups]], or name a group the image has (its /etc/group)",
                );
            }
        }
        for (j, g) in u.groups.iter().enumerate() {
            if !groups.contains(g.as_str()) {
                p(
                    format!("{k}.groups[{j}]"),
                    format!("group {g:?} is neither in the image nor in the answer's groups"),
                    "add it to [[groups]], or name a group the image has (its /etc/group)",
                );
            }
        }
        if matches!(u.sudo, Some(Sudo::Password | Sudo::Nopasswd))
            && !(any_file(view, &["usr/bin/sudo", "bin/sudo"])? && any_file(view, &["etc/sudoers"])?)
        {
            p(
                format!("{k}.sudo"),
                "sudo rights asked for, but the image has no sudo (/usr/bin/sudo and /etc/sudoers)".into(),
                "install the sudo package in the image, or set sudo = \"none\"",
            );
        }
        if !u.ssh_authorized_keys.is_empty() && !has_sshd(view)? {
            p(
                format!("{k}.ssh_authorized_keys"),
                "SSH keys given, but the image has no SSH server (/usr/sbin/sshd)".into(),
                "install openssh-server in the image",
            );
        }
    }
    for (i, g) in a.groups.iter().enumerate() {
        if let Some(gid) = g.gid {
            if let Some((other, _)) = acc.groups.iter().find(|(n, id)| *id == gid && *n != g.name) {
                p(
                    format!("groups[{i}].gid"),
                    format!("group ID {gid} is already used by {other:?} in the image"),
                    "pick a free group ID, or leave gid out to get the next free one",
                );
            }
        }
        for (j, m) in g.members.iter().enumerate() {
            if !users.contains(m.as_str()) {
                p(
                    format!("groups[{i}].members[{j}]"),
                    format!("user {m:?} is neither in the image nor in the answer's users"),
                    "add it to [[users]], or name a user the image has (its /etc/passwd)",
                );
            }
        }
    }
    if a.ssh.is_some() && !has_sshd(view)? {
        p(
            "ssh".into(),
            "SSH settings given, but the image has no SSH server (/usr/sbin/sshd)".into(),
            "install openssh-server in the image, or drop [ssh]",
        );
    }

    let renderer = a.network.as_ref().map(|n| n.renderer).unwrap_or_default();
    let has_interfaces = a.network.as_ref().is_some_and(|n| !n.interfaces.is_empty())
        || a.machines.iter().any(|m| m.interfaces.as_ref().is_some_and(|i| !i.is_empty()));
    match renderer {
        Renderer::None => {}
        Renderer::Auto => {
            if has_interfaces && detect_renderer(view)?.is_none() {
                p(
                    "network.renderer".into(),
                    "the image has no network stack slipway can configure (systemd-networkd, NetworkManager, ifupdown)"
                        .into(),
                    "set network.renderer = \"none\" or install one",
                );
            }
        }
        explicit => {
            let stack = Stack::of(explicit).expect("auto and none are handled above");
            let path = stack.programs()[0];
            let package = match stack {
                Stack::NetworkManager => "network-manager",
                Stack::Ifupdown => "ifupdown",
                _ => "systemd (systemd-networkd)",
            };
            if !any_present(view, stack.programs())? {
                p(
                    "network.renderer".into(),
                    format!("renderer {} asked for, but the image has no /{path}", renderer_name(explicit)),
                    &format!("install {package} in the image, or set network.renderer = \"auto\""),
                );
            }
        }
    }

    let mut zones: Vec<(String, &str)> = Vec::new();
    if let Some(tz) = a.time.as_ref().and_then(|t| t.timezone.as_deref()) {
        zones.push(("time.timezone".into(), tz));
    }
    for (i, m) in a.machines.iter().enumerate() {
        if let Some(tz) = &m.timezone {
            zones.push((format!("machines[{i}].timezone"), tz));
        }
    }
    for (k, tz) in zones {
        // Even UTC: specialize links /etc/localtime to the image's zone file.
        if !is_dir(view, "usr/share/zoneinfo")? {
            p(
                k,
                format!("time zone {tz:?} asked for, but the image has no time zone data (/usr/share/zoneinfo)"),
                "install tzdata in the image",
            );
        } else if kind_of(view, &format!("usr/share/zoneinfo/{tz}"))? != Kind::File {
            p(
                k,
                format!("time zone {tz:?} is not in the image's tzdata"),
                "use a name from the image's /usr/share/zoneinfo, like Europe/Berlin",
            );
        }
    }

    if let Some(l) = &a.locale {
        if let Some(lang) = &l.lang {
            if !has_locale(view, lang)? {
                p(
                    "locale.lang".into(),
                    format!("locale {lang:?} is neither supported (/usr/share/i18n/SUPPORTED) nor generated (/usr/lib/locale) in the image"),
                    "install locales and generate it in the image (locale-gen), or use C.UTF-8",
                );
            }
        }
        if let Some(kb) = &l.keyboard {
            if is_dir(view, "usr/share/X11/xkb/symbols")? {
                if kind_of(view, &format!("usr/share/X11/xkb/symbols/{kb}"))? != Kind::File {
                    p(
                        "locale.keyboard".into(),
                        format!("keyboard layout {kb:?} is not in the image's XKB data"),
                        "use a layout from the image's /usr/share/X11/xkb/symbols, like us or de",
                    );
                }
            } else if !(is_dir(view, "usr/share/keymaps")?
                || is_dir(view, "usr/share/console-setup")?
                || any_file(
                    view,
                    &["etc/default/keyboard", "bin/setupcon", "usr/bin/setupcon", "bin/loadkeys", "usr/bin/loadkeys"],
                )?)
            {
                p(
                    "locale.keyboard".into(),
                    "the image has no keyboard data".into(),
                    "install keyboard-configuration / console-setup in the image",
                );
            }
        }
    }

    if let Some(t) = &a.time {
        if !t.ntp.is_empty()
            && !any_file(
                view,
                &[
                    "lib/systemd/systemd-timesyncd",
                    "usr/lib/systemd/systemd-timesyncd",
                    "usr/sbin/chronyd",
                    "sbin/chronyd",
                ],
            )?
        {
            p(
                "time.ntp".into(),
                "NTP servers given, but the image has neither systemd-timesyncd nor chrony".into(),
                "install systemd-timesyncd or chrony in the image",
            );
        }
    }

    if a.domain.is_some() && !any_file(view, &["usr/sbin/realm", "sbin/realm"])? {
        p(
            "domain".into(),
            "a domain join asked for, but the image has no realm (/usr/sbin/realm)".into(),
            "install realmd, sssd, adcli in the image",
        );
    }

    for (i, f) in a.files.iter().enumerate() {
        if let Some(o) = &f.owner {
            if !users.contains(o.as_str()) {
                p(
                    format!("files[{i}].owner"),
                    format!("user {o:?} is neither in the image nor in the answer's users"),
                    "add it to [[users]], or name a user the image has",
                );
            }
        }
        if let Some(g) = &f.group {
            if !groups.contains(g.as_str()) {
                p(
                    format!("files[{i}].group"),
                    format!("group {g:?} is neither in the image nor in the answer's groups"),
                    "add it to [[groups]], or name a group the image has",
                );
            }
        }
    }

    for (i, c) in a.commands.iter().enumerate() {
        let k = format!("commands[{i}]");
        if let Some(prog) = c.run.first() {
            if prog.starts_with('/') {
                if kind_of(view, prog.trim_start_matches('/'))? != Kind::File {
                    p(
                        format!("{k}.run[0]"),
                        format!("{prog} is not in the image"),
                        "install the package that provides it, or fix the path",
                    );
                }
            } else if prog.contains('/') {
                p(
                    format!("{k}.run[0]"),
                    format!("{prog:?} is a relative path; commands run from an unspecified directory"),
                    "give an absolute path, or a bare program name found in PATH",
                );
            } else {
                let mut found = false;
                for d in PATH_DIRS {
                    if kind_of(view, &format!("{d}/{prog}"))? == Kind::File {
                        found = true;
                        break;
                    }
                }
                if !found {
                    p(
                        format!("{k}.run[0]"),
                        format!(
                            "{prog:?} is not in the image's PATH ({})",
                            PATH_DIRS.map(|d| format!("/{d}")).join(" ")
                        ),
                        "install the package that provides it, or give its absolute path",
                    );
                }
            }
        }
        if c.shell.is_some() && !any_file(view, &["bin/sh", "usr/bin/sh"])? {
            p(
                format!("{k}.shell"),
                "a shell command, but the image has no /bin/sh".into(),
                "install dash or bash in the image, or use run = [\"program\", \"arg\"]",
            );
        }
    }
    Ok(())
}

fn renderer_name(r: Renderer) -> &'static str {
    match r {
        Renderer::Auto => "auto",
        Renderer::Networkd => "networkd",
        Renderer::NetworkManager => "network-manager",
        Renderer::Ifupdown => "ifupdown",
        Renderer::None => "none",
    }
}

fn has_sshd(view: &dyn RootView) -> Result<bool> {
    any_file(view, &["usr/sbin/sshd", "sbin/sshd"])
}

/// `en_US.UTF-8` → `en_US.utf8` (glibc's normalized codeset, the name of
/// the directory under /usr/lib/locale).
fn normalize_locale(lang: &str) -> String {
    let (base, modifier) = match lang.split_once('@') {
        Some((b, m)) => (b, Some(m)),
        None => (lang, None),
    };
    let mut out = match base.split_once('.') {
        Some((l, cs)) => {
            let cs: String = cs.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect();
            format!("{l}.{cs}")
        }
        None => base.to_string(),
    };
    if let Some(m) = modifier {
        out.push('@');
        out.push_str(m);
    }
    out
}

fn has_locale(view: &dyn RootView, lang: &str) -> Result<bool> {
    if ["C", "POSIX"].contains(&lang) || normalize_locale(lang) == "C.utf8" {
        return Ok(true);
    }
    if let Some(b) = read_resolved(view, "usr/share/i18n/SUPPORTED")? {
        if String::from_utf8_lossy(&b).lines().any(|l| l.split_whitespace().next() == Some(lang)) {
            return Ok(true);
        }
    }
    for name in [lang.to_string(), normalize_locale(lang)] {
        if kind_of(view, &format!("usr/lib/locale/{name}"))? != Kind::Absent {
            return Ok(true);
        }
    }
    Ok(false)
}

/// An image version in a store, read without applying it.
pub struct StoreImage<'a> {
    image: ImageVersion,
    reader: RefCell<BlobReader<'a>>,
    trees: RefCell<HashMap<BlobId, Rc<Tree>>>,
}

impl<'a> StoreImage<'a> {
    /// Opens `NAME` or `NAME@VERSION` (the newest version when none is
    /// given), as `slipway cat` and `slipway ls` do.
    pub fn open(store: &'a mut Store, spec: &str) -> Result<StoreImage<'a>> {
        let spec: ImageSpec = spec.parse()?;
        let image = store.open_image(&spec)?;
        let store: &'a Store = store;
        Ok(StoreImage::new(store, image))
    }

    /// A view of an image version already resolved in `store`.
    pub fn new(store: &'a Store, image: ImageVersion) -> StoreImage<'a> {
        StoreImage { image, reader: RefCell::new(store.reader()), trees: RefCell::new(HashMap::new()) }
    }

    /// `NAME@VERSION` of the image.
    pub fn label(&self) -> String {
        self.image.label()
    }

    fn tree(&self, id: &BlobId) -> Result<Rc<Tree>> {
        if let Some(t) = self.trees.borrow().get(id) {
            return Ok(t.clone());
        }
        let t = Rc::new(self.reader.borrow_mut().tree(id).with_context(|| format!("image {}", self.label()))?);
        let mut cache = self.trees.borrow_mut();
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(*id, t.clone());
        Ok(t)
    }

    /// The entry at `path`: `Ok(None)` when nothing is there or a directory
    /// on the way is missing; a symlink or a file on the way is an error.
    fn entry(&self, path: &str) -> Result<Option<(Rc<Tree>, usize)>> {
        let names: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        if names.contains(&"..") {
            bail!("path {path:?} has a '..' component; paths inside an image must be plain");
        }
        let mut tree = self.tree(&self.image.record.root.tree)?;
        for (i, n) in names.iter().enumerate() {
            let Some(idx) = tree.entries.binary_search_by(|e| e.name.as_bytes().cmp(n.as_bytes())).ok() else {
                return Ok(None);
            };
            if i + 1 == names.len() {
                return Ok(Some((tree, idx)));
            }
            let next = match &tree.entries[idx].kind {
                EntryKind::Dir { tree } => *tree,
                EntryKind::Symlink { .. } => {
                    bail!(
                        "{}: /{} is a symlink; look it up with answer::check::resolve",
                        self.label(),
                        names[..=i].join("/")
                    )
                }
                _ => return Ok(None),
            };
            tree = self.tree(&next)?;
        }
        Ok(None)
    }
}

impl RootView for StoreImage<'_> {
    fn kind(&self, path: &str) -> Result<Kind> {
        if path.split('/').all(|c| c.is_empty() || c == ".") {
            return Ok(Kind::Dir);
        }
        Ok(match self.entry(path)? {
            None => Kind::Absent,
            Some((t, i)) => match &t.entries[i].kind {
                EntryKind::Dir { .. } => Kind::Dir,
                EntryKind::File { .. } => Kind::File,
                EntryKind::Symlink { target } => Kind::Symlink(String::from_utf8_lossy(target).into_owned()),
                _ => Kind::Other,
            },
        })
    }

    fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let Some((t, i)) = self.entry(path)? else { return Ok(None) };
        let e = &t.entries[i];
        if !matches!(e.kind, EntryKind::File { .. }) {
            bail!("{}: /{path} is a {}, not a regular file", self.label(), e.kind.type_name());
        }
        let mut out = Vec::new();
        slipway_store::read_file(&mut self.reader.borrow_mut(), e, &mut out)
            .with_context(|| format!("reading /{path} from image {}", self.label()))?;
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::parse;
    use std::fs;
    use std::path::Path;

    /// A Debian-like root with merged /usr (bin -> usr/bin, …).
    fn debian_root(dir: &Path) {
        for d in [
            "usr/bin",
            "usr/sbin",
            "usr/lib/systemd",
            "etc/sudoers.d",
            "usr/share/zoneinfo/Europe",
            "usr/share/i18n",
            "usr/share/X11/xkb/symbols",
        ] {
            fs::create_dir_all(dir.join(d)).unwrap();
        }
        for (l, t) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
            std::os::unix::fs::symlink(t, dir.join(l)).unwrap();
        }
        for f in [
            "usr/bin/bash",
            "usr/bin/dash",
            "usr/bin/sudo",
            "usr/sbin/sshd",
            "usr/lib/systemd/systemd-networkd",
            "usr/lib/systemd/systemd-timesyncd",
            "usr/bin/true",
            "usr/share/zoneinfo/Europe/Berlin",
            "usr/share/X11/xkb/symbols/de",
            "etc/sudoers",
        ] {
            fs::write(dir.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink("dash", dir.join("usr/bin/sh")).unwrap();
        // tzdata's compatibility names are symlinks (absolute or relative).
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Europe/Berlin", dir.join("usr/share/zoneinfo/CET")).unwrap();
        fs::write(dir.join("usr/share/i18n/SUPPORTED"), "en_US.UTF-8 UTF-8\nde_DE.UTF-8 UTF-8\n").unwrap();
        fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n")
            .unwrap();
        fs::write(dir.join("etc/group"), "root:x:0:\nadm:x:4:\nsudo:x:27:\nuser:x:1000:\n").unwrap();
    }

    fn keys(a: &str, dir: &Path) -> Vec<String> {
        let a = parse(&format!("version = 1\n{a}"), "t.toml").unwrap();
        let root = RootDir::open(dir).unwrap();
        check(&a, &root).into_iter().map(|p| p.key).collect()
    }

    fn root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        debian_root(t.path());
        t
    }

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2 a@b";

    #[test]
    fn a_matching_image_passes_every_check() {
        let t = root();
        let a = format!(
            r#"
[[users]]
name = "admin"
groups = ["adm", "sudo", "ops"]
sudo = "nopasswd"
ssh_authorized_keys = ["{KEY}"]
[[groups]]
name = "ops"
members = ["admin", "user"]
[ssh]
password_authentication = false
[[network.interfaces]]
match = {{ name = "en*" }}
[locale]
lang = "en_US.UTF-8"
keyboard = "de"
[time]
timezone = "CET"
ntp = ["pool.ntp.org"]
[[files]]
path = "/etc/motd"
content = "hi"
owner = "admin"
group = "ops"
[[commands]]
name = "a"
run = ["true"]
[[commands]]
name = "b"
run = ["/bin/true"]
[[commands]]
name = "c"
shell = "echo hi"
"#
        );
        assert_eq!(keys(&a, t.path()), Vec::<String>::new());
    }

    #[test]
    fn missing_shells_are_reported() {
        let t = root();
        assert_eq!(keys("[[users]]\nname = \"a\"\nshell = \"/usr/bin/zsh\"\n", t.path()), ["users[0].shell"]);
        assert!(keys("[[users]]\nname = \"a\"\nshell = \"/bin/bash\"\n", t.path()).is_empty());
        fs::remove_file(t.path().join("usr/bin/bash")).unwrap();
        fs::remove_file(t.path().join("usr/bin/dash")).unwrap();
        assert_eq!(keys("[[users]]\nname = \"a\"\n", t.path()), ["users[0].shell"]);
    }

    #[test]
    fn unknown_groups_and_members_are_reported() {
        let t = root();
        let k = keys(
            "[[users]]\nname = \"a\"\nprimary_group = \"nope\"\ngroups = [\"adm\", \"wheel\"]\n[[groups]]\nname = \"g\"\nmembers = [\"a\", \"user\", \"ghost\"]\n",
            t.path(),
        );
        assert_eq!(k, ["users[0].primary_group", "users[0].groups[1]", "groups[0].members[2]"]);
    }

    #[test]
    fn sudo_and_ssh_need_their_packages() {
        let t = root();
        fs::remove_file(t.path().join("usr/bin/sudo")).unwrap();
        fs::remove_file(t.path().join("usr/sbin/sshd")).unwrap();
        let k = keys(
            &format!("[[users]]\nname = \"a\"\nsudo = \"password\"\nssh_authorized_keys = [\"{KEY}\"]\n[ssh]\n"),
            t.path(),
        );
        assert_eq!(k, ["users[0].sudo", "users[0].ssh_authorized_keys", "ssh"]);
        assert!(keys("[[users]]\nname = \"a\"\nsudo = \"none\"\n", t.path()).is_empty());
    }

    #[test]
    fn network_needs_a_stack() {
        let t = root();
        let ifs = "[[network.interfaces]]\nmatch = { name = \"en*\" }\n";
        assert!(keys(ifs, t.path()).is_empty());
        let root = RootDir::open(t.path()).unwrap();
        assert_eq!(detect_renderer(&root).unwrap(), Some(Renderer::Networkd));
        let k = keys(&format!("[network]\nrenderer = \"network-manager\"\n{ifs}"), t.path());
        assert_eq!(k, ["network.renderer"]);
        fs::remove_file(t.path().join("usr/lib/systemd/systemd-networkd")).unwrap();
        let a = parse(&format!("version = 1\n{ifs}"), "t").unwrap();
        let p = check(&a, &root);
        assert_eq!(p[0].key, "network.renderer");
        assert!(p[0].fix.contains("network.renderer = \"none\""), "{p:?}");
        assert!(keys(&format!("[network]\nrenderer = \"none\"\n{ifs}"), t.path()).is_empty());
        // Per-machine interfaces count too.
        let k = keys(
            "[[machines]]\nmatch = { serial = \"S\" }\ninterfaces = [{ match = { name = \"eth0\" } }]\n",
            t.path(),
        );
        assert_eq!(k, ["network.renderer"]);
        // NetworkManager wins over the others; ifupdown's /sbin/ifup via the sbin symlink.
        fs::write(t.path().join("usr/sbin/ifup"), "x").unwrap();
        assert_eq!(detect_renderer(&root).unwrap(), Some(Renderer::Ifupdown));
        fs::write(t.path().join("usr/sbin/NetworkManager"), "x").unwrap();
        assert_eq!(detect_renderer(&root).unwrap(), Some(Renderer::NetworkManager));
    }

    #[test]
    fn time_zones_must_be_in_tzdata() {
        let t = root();
        assert!(keys("[time]\ntimezone = \"Europe/Berlin\"\n", t.path()).is_empty());
        let k = keys("[time]\ntimezone = \"Mars/Olympus\"\n[[machines]]\nmatch = { serial = \"S\" }\ntimezone = \"Europe/Nowhere\"\n", t.path());
        assert_eq!(k, ["time.timezone", "machines[0].timezone"]);
        fs::remove_dir_all(t.path().join("usr/share/zoneinfo")).unwrap();
        // Even UTC: specialize links /etc/localtime to the zone file.
        assert_eq!(keys("[time]\ntimezone = \"UTC\"\n", t.path()), ["time.timezone"]);
        let a = parse("version = 1\n[time]\ntimezone = \"Europe/Berlin\"\n", "t").unwrap();
        let p = check(&a, &RootDir::open(t.path()).unwrap());
        assert!(p[0].fix.contains("tzdata"), "{p:?}");
    }

    #[test]
    fn locales_and_keyboards_must_be_in_the_image() {
        let t = root();
        assert!(keys("[locale]\nlang = \"C.UTF-8\"\n", t.path()).is_empty());
        assert!(keys("[locale]\nlang = \"POSIX\"\n", t.path()).is_empty());
        assert_eq!(
            keys("[locale]\nlang = \"xx_YY.UTF-8\"\nkeyboard = \"zz\"\n", t.path()),
            ["locale.lang", "locale.keyboard"]
        );
        fs::create_dir_all(t.path().join("usr/lib/locale/xx_YY.utf8")).unwrap();
        assert!(keys("[locale]\nlang = \"xx_YY.UTF-8\"\n", t.path()).is_empty());
        fs::remove_dir_all(t.path().join("usr/share/X11")).unwrap();
        let a = parse("version = 1\n[locale]\nkeyboard = \"de\"\n", "t").unwrap();
        let p = check(&a, &RootDir::open(t.path()).unwrap());
        assert_eq!(p[0].fix, "install keyboard-configuration / console-setup in the image");
        fs::create_dir_all(t.path().join("usr/share/keymaps")).unwrap();
        assert!(keys("[locale]\nkeyboard = \"de\"\n", t.path()).is_empty());
    }

    #[test]
    fn domain_ntp_and_owners_need_the_image() {
        let t = root();
        let k = keys("[domain]\nrealm = \"AD.EXAMPLE.COM\"\n", t.path());
        assert_eq!(k, ["domain"]);
        fs::write(t.path().join("usr/sbin/realm"), "x").unwrap();
        assert!(keys("[domain]\nrealm = \"AD.EXAMPLE.COM\"\n", t.path()).is_empty());
        fs::remove_file(t.path().join("usr/lib/systemd/systemd-timesyncd")).unwrap();
        assert_eq!(keys("[time]\nntp = [\"pool.ntp.org\"]\n", t.path()), ["time.ntp"]);
        fs::write(t.path().join("usr/sbin/chronyd"), "x").unwrap();
        assert!(keys("[time]\nntp = [\"pool.ntp.org\"]\n", t.path()).is_empty());
        let k = keys("[[files]]\npath = \"/x\"\ncontent = \"\"\nowner = \"nobody2\"\ngroup = \"nogroup2\"\n", t.path());
        assert_eq!(k, ["files[0].owner", "files[0].group"]);
    }

    #[test]
    fn commands_must_be_in_the_image() {
        let t = root();
        let k = keys(
            "[[commands]]\nname = \"a\"\nrun = [\"frobnicate\"]\n[[commands]]\nname = \"b\"\nrun = [\"/opt/x/bin/y\"]\n[[commands]]\nname = \"c\"\nrun = [\"sudo\", \"-v\"]\n",
            t.path(),
        );
        assert_eq!(k, ["commands[0].run[0]", "commands[1].run[0]"]);
        fs::remove_file(t.path().join("usr/bin/sh")).unwrap();
        assert_eq!(keys("[[commands]]\nname = \"a\"\nshell = \"true\"\n", t.path()), ["commands[0].shell"]);
    }

    #[test]
    fn ids_used_by_another_account_are_reported() {
        let t = root();
        let k = keys("[[users]]\nname = \"a\"\nuid = 1000\n[[users]]\nname = \"user\"\nuid = 1000\n[[groups]]\nname = \"g\"\ngid = 27\n", t.path());
        assert_eq!(k, ["users[0].uid", "groups[0].gid"]);
    }

    #[test]
    fn symlinks_resolve_inside_the_image_only() {
        let t = root();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("zsh"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path().join("zsh"), t.path().join("usr/bin/zsh")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../usr/bin/bash", t.path().join("usr/bin/deep")).unwrap();
        std::os::unix::fs::symlink("loop", t.path().join("usr/bin/loop")).unwrap();
        let root = RootDir::open(t.path()).unwrap();
        // An absolute target is read inside the image, where it is missing.
        assert_eq!(resolve(&root, "bin/zsh").unwrap().1, Kind::Absent);
        assert_eq!(resolve(&root, "bin/deep").unwrap(), ("usr/bin/bash".to_string(), Kind::File));
        assert_eq!(resolve(&root, "sbin/../bin/sh").unwrap(), ("usr/bin/dash".to_string(), Kind::File));
        assert!(format!("{:#}", resolve(&root, "bin/loop").unwrap_err()).contains("too many levels"));
    }

    #[test]
    fn a_captured_image_is_checked_from_the_store() {
        let t = root();
        let s = tempfile::tempdir().unwrap();
        let mut store = Store::init(&s.path().join("store")).unwrap();
        let opts = slipway_store::CaptureOptions { name: "deb".into(), ..Default::default() };
        slipway_store::capture(&mut store, t.path(), &opts, &slipway_store::NoProgress).unwrap();
        let img = StoreImage::open(&mut store, "deb").unwrap();
        assert_eq!(img.label(), "deb@1");
        assert_eq!(img.kind("bin").unwrap(), Kind::Symlink("usr/bin".into()));
        assert_eq!(resolve(&img, "bin/sh").unwrap(), ("usr/bin/dash".to_string(), Kind::File));
        assert_eq!(img.read("etc/group").unwrap().unwrap(), fs::read(t.path().join("etc/group")).unwrap());
        assert_eq!(img.read("etc/nothing").unwrap(), None);
        let a = parse(
            &format!("version = 1\n[[users]]\nname = \"admin\"\ngroups = [\"adm\", \"wheel\"]\nsudo = \"nopasswd\"\nssh_authorized_keys = [\"{KEY}\"]\n[time]\ntimezone = \"CET\"\n[locale]\nlang = \"de_DE.UTF-8\"\nkeyboard = \"fr\"\n"),
            "t",
        )
        .unwrap();
        let keys: Vec<String> = check(&a, &img).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["users[0].groups[1]", "locale.keyboard"]);
    }
}
