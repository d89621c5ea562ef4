//! Users and groups in an offline root, made by editing `etc/passwd`,
//! `etc/shadow`, `etc/group` and `etc/gshadow` directly: no chroot and no
//! `useradd`, because the root may be another distribution (or another
//! architecture) than the machine running slipway.
//!
//! Lines slipway does not change are written back byte for byte, each file
//! keeps its mode, owner and trailing-newline convention, and a `passwd` or
//! `group` line that does not parse is refused (naming the file and line)
//! rather than rewritten. ID allocation follows the root's `login.defs`
//! (`UID_MIN`, `UID_MAX`, `SYS_UID_MIN`, `SYS_UID_MAX` and the `GID_`
//! counterparts): the lowest free ID of the range, as Debian's `adduser`
//! picks it.
//!
//! Ownership of homes, `.ssh` and `authorized_keys` is only set when the
//! process can set owners ([`RootDir::sets_owner`]); symlinks copied from
//! `/etc/skel` keep the caller's owner (there is no `lchown` through
//! [`RootDir`]).

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};

use crate::answer::{Group, Sudo, User};
use crate::rootdir::{Found, Perm, RootDir};

const PASSWD: &str = "etc/passwd";
const SHADOW: &str = "etc/shadow";
const GROUP: &str = "etc/group";
const GSHADOW: &str = "etc/gshadow";

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AccountReport {
    pub groups_created: Vec<String>,
    pub users_created: Vec<String>,
    /// Users that existed in the root and were in the answer file.
    pub users_updated: Vec<String>,
    /// Files written and home directories created (absolute inside the
    /// root, like `/etc/shadow`; directories end with `/`).
    pub written: Vec<String>,
    /// Files removed (a sudo rule of a user whose `sudo` is now `none`).
    pub removed: Vec<String>,
}

/// A user as `etc/passwd` has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub uid: u32,
    /// The primary group's ID.
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// One line of an account file: a parsed entry, or a line kept as it is
/// (blank, or an NIS `+`/`-` line).
#[derive(Clone, Debug)]
enum Line {
    Opaque(String),
    Entry {
        fields: Vec<String>,
        /// The line as read; `None` once changed (or for a new line).
        original: Option<String>,
    },
}

/// An account file: its lines and how it ended.
#[derive(Clone, Debug)]
struct Table {
    rel: &'static str,
    existed: bool,
    lines: Vec<Line>,
    final_newline: bool,
    changed: bool,
}

/// How a file's lines are checked when read.
#[derive(Clone, Copy)]
struct Shape {
    fields: usize,
    /// Fields that must be decimal numbers.
    numeric: &'static [usize],
    /// Refuse a line that does not have this shape (passwd, group); a
    /// shadow line is only checked when slipway changes it.
    strict: bool,
    what: &'static str,
}

const PASSWD_SHAPE: Shape = Shape { fields: 7, numeric: &[2, 3], strict: true, what: "passwd" };
const GROUP_SHAPE: Shape = Shape { fields: 4, numeric: &[2], strict: true, what: "group" };
const SHADOW_SHAPE: Shape = Shape { fields: 9, numeric: &[], strict: false, what: "shadow" };
const GSHADOW_SHAPE: Shape = Shape { fields: 4, numeric: &[], strict: false, what: "gshadow" };

impl Table {
    fn parse(root: &RootDir, rel: &'static str, shape: Shape) -> Result<Table> {
        let Some(text) = root.read_string(rel)? else {
            return Ok(Table { rel, existed: false, lines: Vec::new(), final_newline: true, changed: false });
        };
        let final_newline = text.is_empty() || text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let mut lines = Vec::new();
        if !text.is_empty() {
            for (n, l) in body.split('\n').enumerate() {
                if l.trim().is_empty() || l.starts_with('+') || l.starts_with('-') {
                    lines.push(Line::Opaque(l.to_string()));
                    continue;
                }
                let fields: Vec<String> = l.split(':').map(str::to_string).collect();
                let bad_shape = fields.len() != shape.fields
                    || fields[0].is_empty()
                    || shape.numeric.iter().any(|&i| fields.get(i).is_none_or(|f| f.parse::<u32>().is_err()));
                if shape.strict && bad_shape {
                    bail!(
                        "{} line {} is not a valid {} entry ({l:?}: want {} ':'-separated fields{}); \
                         refusing to rewrite the file: fix or remove that line in the image",
                        root.display(rel).display(),
                        n + 1,
                        shape.what,
                        shape.fields,
                        if shape.numeric.is_empty() { "" } else { " with numeric IDs" },
                    );
                }
                lines.push(Line::Entry { fields, original: Some(l.to_string()) });
            }
        }
        Ok(Table { rel, existed: true, lines, final_newline, changed: false })
    }

    fn entries(&self) -> impl Iterator<Item = &[String]> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry { fields, .. } => Some(fields.as_slice()),
            Line::Opaque(_) => None,
        })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.lines.iter().position(|l| matches!(l, Line::Entry { fields, .. } if fields[0] == name))
    }

    fn get(&self, name: &str) -> Option<&[String]> {
        self.find(name).and_then(|i| match &self.lines[i] {
            Line::Entry { fields, .. } => Some(fields.as_slice()),
            Line::Opaque(_) => None,
        })
    }

    /// Replaces the entry at line index `i` (a no-op when equal).
    fn set(&mut self, i: usize, new: Vec<String>) {
        if let Line::Entry { fields, original } = &mut self.lines[i] {
            if *fields != new {
                *fields = new;
                *original = None;
                self.changed = true;
            }
        }
    }

    fn push(&mut self, fields: Vec<String>) {
        self.lines.push(Line::Entry { fields, original: None });
        self.changed = true;
    }

    /// The entry of `name`, checked to have the full shape before slipway
    /// changes it. The message never quotes the line (shadow lines hold
    /// hashes).
    fn editable(&self, root: &RootDir, name: &str, shape: Shape) -> Result<Option<(usize, Vec<String>)>> {
        let Some(i) = self.find(name) else { return Ok(None) };
        let Line::Entry { fields, .. } = &self.lines[i] else { return Ok(None) };
        if fields.len() != shape.fields {
            bail!(
                "{} line {} (the entry of {name}) has {} fields, not {}; refusing to change it: fix that line in the image",
                root.display(self.rel).display(),
                i + 1,
                fields.len(),
                shape.fields
            );
        }
        Ok(Some((i, fields.clone())))
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (n, l) in self.lines.iter().enumerate() {
            if n > 0 {
                out.push('\n');
            }
            match l {
                Line::Opaque(s) | Line::Entry { original: Some(s), .. } => out.push_str(s),
                Line::Entry { fields, original: None } => out.push_str(&fields.join(":")),
            }
        }
        if self.final_newline && !self.lines.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// The ID ranges and home mode of the root's `etc/login.defs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LoginDefs {
    uid: (u32, u32),
    sys_uid: (u32, u32),
    gid: (u32, u32),
    sys_gid: (u32, u32),
    home_mode: u32,
}

impl LoginDefs {
    fn parse(text: &str) -> LoginDefs {
        let get = |key: &str| -> Option<u32> {
            let v = text.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.next()).flatten()
            })?;
            match v.strip_prefix('0') {
                Some(oct) if !oct.is_empty() => u32::from_str_radix(oct, 8).ok(),
                _ => v.parse().ok(),
            }
        };
        let uid_min = get("UID_MIN").unwrap_or(1000);
        let gid_min = get("GID_MIN").unwrap_or(1000);
        LoginDefs {
            uid: (uid_min, get("UID_MAX").unwrap_or(60000)),
            sys_uid: (
                get("SYS_UID_MIN").unwrap_or(100),
                get("SYS_UID_MAX").unwrap_or(uid_min.saturating_sub(1).max(100)),
            ),
            gid: (gid_min, get("GID_MAX").unwrap_or(60000)),
            sys_gid: (
                get("SYS_GID_MIN").unwrap_or(100),
                get("SYS_GID_MAX").unwrap_or(gid_min.saturating_sub(1).max(100)),
            ),
            home_mode: get("HOME_MODE").map(|m| m & 0o7777).unwrap_or(0o700),
        }
    }
}

/// The accounts of a root: its passwd, shadow, group and gshadow files and
/// the ID ranges of its `login.defs`.
#[derive(Clone, Debug)]
pub struct Accounts {
    passwd: Table,
    shadow: Table,
    group: Table,
    gshadow: Table,
    defs: LoginDefs,
    /// (group, user) pairs added to member lists by this run.
    added_members: Vec<(String, String)>,
}

impl Accounts {
    /// Reads the root's account files. A malformed `passwd` or `group`
    /// line is an error naming it.
    pub fn load(root: &RootDir) -> Result<Accounts> {
        let defs = LoginDefs::parse(&root.read_string("etc/login.defs")?.unwrap_or_default());
        let passwd = Table::parse(root, PASSWD, PASSWD_SHAPE)?;
        if !passwd.existed {
            bail!("{} does not exist; is this the root of an installed system?", root.display(PASSWD).display());
        }
        Ok(Accounts {
            passwd,
            shadow: Table::parse(root, SHADOW, SHADOW_SHAPE)?,
            group: Table::parse(root, GROUP, GROUP_SHAPE)?,
            gshadow: Table::parse(root, GSHADOW, GSHADOW_SHAPE)?,
            defs,
            added_members: Vec::new(),
        })
    }

    pub fn uid_of(&self, user: &str) -> Option<u32> {
        self.passwd.get(user).and_then(|f| f[2].parse().ok())
    }

    pub fn gid_of(&self, group: &str) -> Option<u32> {
        self.group.get(group).and_then(|f| f[2].parse().ok())
    }

    pub fn user(&self, name: &str) -> Option<UserInfo> {
        let f = self.passwd.get(name)?;
        Some(UserInfo { uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5].clone(), shell: f[6].clone() })
    }

    fn user_with_uid(&self, uid: u32) -> Option<&str> {
        self.passwd.entries().find(|f| f[2].parse() == Ok(uid)).map(|f| f[0].as_str())
    }

    fn group_with_gid(&self, gid: u32) -> Option<&str> {
        self.group.entries().find(|f| f[2].parse() == Ok(gid)).map(|f| f[0].as_str())
    }

    fn used_uids(&self) -> BTreeSet<u32> {
        self.passwd.entries().filter_map(|f| f[2].parse().ok()).collect()
    }

    fn used_gids(&self) -> BTreeSet<u32> {
        self.group.entries().filter_map(|f| f[2].parse().ok()).collect()
    }

    /// The lowest free UID of the range; with `gid_too`, preferably one
    /// that is free as a GID as well (for the user's own group).
    fn next_uid(&self, system: bool, gid_too: bool) -> Result<u32> {
        let (lo, hi) = if system { self.defs.sys_uid } else { self.defs.uid };
        let uids = self.used_uids();
        let gids = self.used_gids();
        let pick = match gid_too {
            true => (lo..=hi).find(|u| !uids.contains(u) && !gids.contains(u)),
            false => None,
        };
        match pick.or_else(|| (lo..=hi).find(|u| !uids.contains(u))) {
            Some(u) => Ok(u),
            None => bail!(
                "no free {}UID left in {lo}-{hi} (login.defs of the root); give the user a uid",
                if system { "system " } else { "" }
            ),
        }
    }

    fn next_gid(&self, system: bool) -> Result<u32> {
        let (lo, hi) = if system { self.defs.sys_gid } else { self.defs.gid };
        let gids = self.used_gids();
        match (lo..=hi).find(|g| !gids.contains(g)) {
            Some(g) => Ok(g),
            None => bail!(
                "no free {}GID left in {lo}-{hi} (login.defs of the root); give the group a gid",
                if system { "system " } else { "" }
            ),
        }
    }

    /// Creates the group (with its gshadow line when the root has a
    /// gshadow file).
    fn create_group(&mut self, name: &str, gid: u32, members: &[String]) {
        let m = members.join(",");
        self.group.push(vec![name.into(), "x".into(), gid.to_string(), m.clone()]);
        if self.gshadow.existed {
            self.gshadow.push(vec![name.into(), "!".into(), String::new(), m]);
        }
    }

    /// Adds `user` to the member lists of `group` in group and gshadow.
    fn add_member(&mut self, root: &RootDir, group: &str, user: &str) -> Result<()> {
        let Some((i, mut f)) = self.group.editable(root, group, GROUP_SHAPE)? else {
            bail!("group {group} does not exist in the root");
        };
        if add_to_list(&mut f[3], user) {
            self.group.set(i, f);
            self.added_members.push((group.to_string(), user.to_string()));
        }
        if self.gshadow.existed {
            match self.gshadow.editable(root, group, GSHADOW_SHAPE)? {
                Some((i, mut f)) => {
                    if add_to_list(&mut f[3], user) {
                        self.gshadow.set(i, f);
                    }
                }
                None => self.gshadow.push(vec![group.into(), "!".into(), String::new(), user.into()]),
            }
        }
        Ok(())
    }

    fn apply_group(&mut self, root: &RootDir, g: &Group, report: &mut AccountReport) -> Result<()> {
        check_field(&g.name, "group name")?;
        if let Some(have) = self.gid_of(&g.name) {
            if let Some(want) = g.gid {
                if want != have {
                    bail!(
                        "group {} exists in the root with GID {have}, but the answer file asks for {want}; \
                         slipway does not renumber groups: drop gid or set it to {have}",
                        g.name
                    );
                }
            }
        } else {
            let gid = match g.gid {
                Some(gid) => {
                    if let Some(other) = self.group_with_gid(gid) {
                        bail!("GID {gid} asked for group {} is already the GID of group {other} in the root", g.name);
                    }
                    gid
                }
                None => self.next_gid(g.system)?,
            };
            self.create_group(&g.name, gid, &[]);
            report.groups_created.push(g.name.clone());
        }
        for m in &g.members {
            check_field(m, "group member")?;
            self.add_member(root, &g.name, m)?;
        }
        Ok(())
    }

    /// Sets the password field of `user` in shadow (making the entry if it
    /// has none) and, for a new password (not a lock), its last-change day.
    fn set_shadow_password(
        &mut self,
        root: &RootDir,
        user: &str,
        pw: &str,
        today: u64,
        new_password: bool,
    ) -> Result<()> {
        match self.shadow.editable(root, user, SHADOW_SHAPE)? {
            Some((i, mut f)) => {
                if f[1] != pw {
                    f[1] = pw.to_string();
                    if new_password {
                        f[2] = today.to_string();
                    }
                    self.shadow.set(i, f);
                }
            }
            None => self.shadow.push(shadow_line(user, pw, today)),
        }
        // A hash in passwd itself would win over shadow: point it there.
        if let Some((i, mut f)) = self.passwd.editable(root, user, PASSWD_SHAPE)? {
            if f[1] != "x" {
                f[1] = "x".into();
                self.passwd.set(i, f);
            }
        }
        Ok(())
    }

    /// Creates or updates one user in the tables; true when it is new.
    fn apply_user(
        &mut self,
        root: &RootDir,
        u: &User,
        hash: Option<&str>,
        today: u64,
        report: &mut AccountReport,
    ) -> Result<bool> {
        check_field(&u.name, "user name")?;
        for (what, v) in
            [("gecos", &u.gecos), ("shell", &u.shell), ("home", &u.home), ("primary_group", &u.primary_group)]
        {
            if let Some(v) = v {
                check_field(v, what).with_context(|| format!("user {}", u.name))?;
            }
        }
        if let Some(h) = hash {
            if h.contains([':', '\n']) || h.is_empty() {
                bail!(
                    "the password hash for user {} has a ':' or a newline, or is empty; it cannot go into shadow",
                    u.name
                );
            }
        }
        let new = match self.passwd.editable(root, &u.name, PASSWD_SHAPE)? {
            Some((i, mut f)) => {
                let have_uid: u32 = f[2].parse().unwrap_or(u32::MAX);
                if let Some(want) = u.uid {
                    if want != have_uid {
                        bail!(
                            "user {} exists in the root with UID {have_uid}, but the answer file asks for {want}; \
                             slipway does not renumber users: drop uid or set it to {have_uid}",
                            u.name
                        );
                    }
                }
                if let Some(h) = &u.home {
                    if *h != f[5] {
                        bail!(
                            "user {} exists in the root with home {}, but the answer file asks for {h}; \
                             slipway does not move home directories: drop home or set it to {}",
                            u.name,
                            f[5],
                            f[5]
                        );
                    }
                }
                if let Some(pg) = &u.primary_group {
                    let gid = self
                        .gid_of(pg)
                        .with_context(|| format!("primary group {pg} of user {} does not exist", u.name))?;
                    if gid.to_string() != f[3] {
                        bail!(
                            "user {} exists in the root with primary GID {}, but the answer file asks for group {pg} ({gid}); \
                             slipway does not change primary groups of existing users: drop primary_group",
                            u.name,
                            f[3]
                        );
                    }
                }
                if let Some(g) = &u.gecos {
                    f[4] = g.clone();
                }
                if let Some(s) = &u.shell {
                    f[6] = s.clone();
                }
                self.passwd.set(i, f);
                let current = self.shadow.get(&u.name).and_then(|f| f.get(1).cloned());
                // Locking (like `passwd -l`) keeps the last-change day.
                let pw = match (hash, u.lock_password) {
                    (Some(h), false) => Some((h.to_string(), true)),
                    (Some(h), true) => Some((format!("!{h}"), true)),
                    (None, true) => match current.as_deref() {
                        Some(c) if c.starts_with('!') => None,
                        Some(c) => Some((format!("!{c}"), false)),
                        None => Some(("!".into(), false)),
                    },
                    (None, false) => None,
                };
                if let Some((pw, new_password)) = pw {
                    self.set_shadow_password(root, &u.name, &pw, today, new_password)?;
                }
                false
            }
            None => {
                if let Some(uid) = u.uid {
                    if let Some(other) = self.user_with_uid(uid) {
                        bail!("UID {uid} asked for user {} is already the UID of user {other} in the root", u.name);
                    }
                }
                let (uid, gid) = match (&u.primary_group, self.gid_of(&u.name)) {
                    (Some(pg), _) => {
                        let gid = self.gid_of(pg).with_context(|| {
                            format!(
                                "primary group {pg} of user {} does not exist in the root; add it under [[groups]]",
                                u.name
                            )
                        })?;
                        (u.uid.map_or_else(|| self.next_uid(u.system, false), Ok)?, gid)
                    }
                    // A group named like the user already exists: it is
                    // the user's own group.
                    (None, Some(gid)) => (u.uid.map_or_else(|| self.next_uid(u.system, false), Ok)?, gid),
                    (None, None) => {
                        let uid = u.uid.map_or_else(|| self.next_uid(u.system, true), Ok)?;
                        let gid = if self.group_with_gid(uid).is_none() { uid } else { self.next_gid(u.system)? };
                        self.create_group(&u.name, gid, &[]);
                        report.groups_created.push(u.name.clone());
                        (uid, gid)
                    }
                };
                let home = match &u.home {
                    Some(h) => h.clone(),
                    None if u.name == "root" => "/root".into(),
                    None if u.system => "/nonexistent".into(),
                    None => format!("/home/{}", u.name),
                };
                let shell = match &u.shell {
                    Some(s) => s.clone(),
                    None => default_shell(root, u.system)?,
                };
                let gecos = u.gecos.clone().unwrap_or_default();
                self.passwd.push(vec![
                    u.name.clone(),
                    "x".into(),
                    uid.to_string(),
                    gid.to_string(),
                    gecos,
                    home,
                    shell,
                ]);
                let pw = match (hash, u.lock_password) {
                    (Some(h), false) => h.to_string(),
                    (Some(h), true) => format!("!{h}"),
                    (None, _) => "!".into(),
                };
                self.set_shadow_password(root, &u.name, &pw, today, true)?;
                true
            }
        };
        let primary = self.user(&u.name).map(|i| i.gid);
        for g in &u.groups {
            check_field(g, "group")?;
            let gid = self.gid_of(g).with_context(|| {
                format!("group {g} of user {} does not exist in the root; add it under [[groups]]", u.name)
            })?;
            if Some(gid) != primary {
                self.add_member(root, g, &u.name)?;
            }
        }
        Ok(new)
    }

    /// Every member this run added must be a user (grpck refuses unknown
    /// ones); members the image already had are its own business.
    fn check_members(&self) -> Result<()> {
        for (g, m) in &self.added_members {
            if self.passwd.get(m).is_none() {
                bail!("group {g} is to get member {m}, who is not a user of the root; add the user under [[users]] or drop the member");
            }
        }
        Ok(())
    }

    /// Writes the changed files: gshadow and group first, then shadow and
    /// passwd, so a user never exists without its groups and password line.
    fn save(&self, root: &RootDir, written: &mut Vec<String>) -> Result<()> {
        let shadow_gid = self.gid_of("shadow").unwrap_or(0);
        let secret = Perm { mode: 0o640, uid: 0, gid: shadow_gid };
        for (t, perm) in [
            (&self.gshadow, secret),
            (&self.group, Perm::root(0o644)),
            (&self.shadow, secret),
            (&self.passwd, Perm::root(0o644)),
        ] {
            if t.changed {
                root.write_keeping(t.rel, t.render().as_bytes(), perm)
                    .with_context(|| format!("writing {}", root.display(t.rel).display()))?;
                written.push(format!("/{}", t.rel));
            }
        }
        Ok(())
    }
}

/// Adds `item` to a comma-separated list; false when it was there.
fn add_to_list(list: &mut String, item: &str) -> bool {
    if list.split(',').any(|m| m == item) {
        return false;
    }
    if !list.is_empty() {
        list.push(',');
    }
    list.push_str(item);
    true
}

/// A value that goes into a ':'-separated line.
fn check_field(v: &str, what: &str) -> Result<()> {
    if v.contains([':', '\n']) {
        bail!("{what} {v:?} has a ':' or a newline, which cannot go into the account files");
    }
    Ok(())
}

fn shadow_line(user: &str, pw: &str, today: u64) -> Vec<String> {
    [user, pw, &today.to_string(), "0", "99999", "7", "", "", ""].iter().map(|s| s.to_string()).collect()
}

/// Today as days since 1970-01-01 (shadow's "last change"), from
/// `SOURCE_DATE_EPOCH` when set, as shadow's own tools do.
fn today() -> u64 {
    let secs = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    });
    secs / 86400
}

/// Whether `abs` (like `/bin/bash`) is in the root; a symlinked directory
/// on the way (merged /usr) counts as not there on that spelling.
fn has(root: &RootDir, abs: &str) -> Result<bool> {
    root.present(&[abs])
}

/// /bin/bash when the root has it, else /bin/sh; for a system account
/// nologin when the root has it.
fn default_shell(root: &RootDir, system: bool) -> Result<String> {
    if system {
        for s in ["/usr/sbin/nologin", "/sbin/nologin"] {
            if has(root, s)? {
                return Ok(s.into());
            }
        }
    }
    Ok(if has(root, "/bin/bash")? || has(root, "/usr/bin/bash")? { "/bin/bash" } else { "/bin/sh" }.into())
}

/// Copies the tree at `from` into `to` (regular files, directories and
/// symlinks; never following a symlink), owned by `uid`:`gid`.
fn copy_tree(root: &RootDir, from: &str, to: &str, uid: u32, gid: u32) -> Result<()> {
    for name in root.list_utf8(from)? {
        let src = format!("{from}/{name}");
        let dst = format!("{to}/{name}");
        match root.inspect(&src)? {
            Found::File { .. } => {
                let data = root.read(&src)?.unwrap_or_default();
                let mode = root.meta(&src)?.mode & 0o777;
                root.write(&dst, &data, Perm { mode, uid, gid })?;
            }
            Found::Dir => {
                let mode = root.meta(&src)?.mode & 0o777;
                root.mkdir_all(&dst, Perm { mode, uid, gid })?;
                copy_tree(root, &src, &dst, uid, gid)?;
            }
            Found::Symlink { target } => {
                if let Ok(t) = std::str::from_utf8(&target) {
                    root.symlink(&dst, t)?;
                }
            }
            Found::Absent | Found::Other => {}
        }
    }
    Ok(())
}

/// Makes the home directory from /etc/skel; false when it was there.
fn make_home(root: &RootDir, home: &str, uid: u32, gid: u32, mode: u32) -> Result<bool> {
    let rel = home.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(false);
    }
    match root.inspect(rel)? {
        Found::Dir => return Ok(false),
        Found::Absent => {}
        _ => bail!("home {home} exists in the root and is not a directory"),
    }
    let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    root.mkdir_all(parent, Perm::root(0o755))?;
    root.mkdir_all(rel, Perm { mode, uid, gid })?;
    if root.is_dir("etc/skel")? {
        copy_tree(root, "etc/skel", rel, uid, gid).with_context(|| format!("copying /etc/skel into {home}"))?;
    }
    Ok(true)
}

/// Appends the keys that are missing to HOME/.ssh/authorized_keys; the
/// file's path when it was written.
fn add_keys(root: &RootDir, user: &str, info: &UserInfo, keys: &[String]) -> Result<Option<String>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let home = info.home.trim_start_matches('/');
    if !root.is_dir(home)? || home.is_empty() {
        bail!(
            "cannot write SSH keys for user {user}: its home {} is not a directory in the root; give the user a home",
            info.home
        );
    }
    let (uid, gid) = (info.uid, info.gid);
    let ssh = format!("{home}/.ssh");
    root.mkdir_all(&ssh, Perm { mode: 0o700, uid, gid })?;
    let ak = format!("{ssh}/authorized_keys");
    let old = root.read_string(&ak)?.unwrap_or_default();
    let mut have: BTreeSet<String> = old.lines().map(|l| l.trim().to_string()).collect();
    let mut out = old.clone();
    for k in keys {
        let k = k.trim();
        if k.contains('\n') {
            bail!("an SSH key of user {user} has a line break; give one key per entry");
        }
        if have.insert(k.to_string()) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(k);
            out.push('\n');
        }
    }
    if out == old {
        return Ok(None);
    }
    root.write_keeping(&ak, out.as_bytes(), Perm { mode: 0o600, uid, gid })?;
    Ok(Some(format!("/{ak}")))
}

/// Writes or removes the user's sudo rule.
fn sudo_rule(root: &RootDir, u: &User, report: &mut AccountReport) -> Result<()> {
    let rel = format!("etc/sudoers.d/50-slipway-{}", u.name);
    let rule = match u.sudo.unwrap_or(Sudo::None) {
        Sudo::None => {
            if root.exists(&rel)? {
                root.remove(&rel)?;
                report.removed.push(format!("/{rel}"));
            }
            return Ok(());
        }
        Sudo::Password => format!("{} ALL=(ALL:ALL) ALL\n", u.name),
        Sudo::Nopasswd => format!("{} ALL=(ALL:ALL) NOPASSWD: ALL\n", u.name),
    };
    if !root.exists("etc/sudoers")? {
        bail!(
            "user {} is to get sudo rights, but the root has no /etc/sudoers (sudo is not installed); \
             install sudo in the image, or set sudo = \"none\"",
            u.name
        );
    }
    root.mkdir_all("etc/sudoers.d", Perm::root(0o750))?;
    root.write(&rel, rule.as_bytes(), Perm::root(0o440))?;
    report.written.push(format!("/{rel}"));
    Ok(())
}

/// Creates or updates `groups` and then `users` in the root.
///
/// `hashes[i]` is the resolved password hash for `users[i]`; `None` leaves
/// an existing password alone (or locks it with `lock_password`) and gives
/// a new user a locked one (`!`).
pub fn apply(root: &RootDir, groups: &[Group], users: &[User], hashes: &[Option<String>]) -> Result<AccountReport> {
    apply_on(root, groups, users, hashes, today())
}

/// [`apply`] with "today" (days since 1970) given.
fn apply_on(
    root: &RootDir,
    groups: &[Group],
    users: &[User],
    hashes: &[Option<String>],
    today: u64,
) -> Result<AccountReport> {
    if hashes.len() != users.len() {
        bail!("{} password hashes for {} users", hashes.len(), users.len());
    }
    let mut acc = Accounts::load(root)?;
    let mut report = AccountReport::default();
    for (i, g) in groups.iter().enumerate() {
        acc.apply_group(root, g, &mut report).with_context(|| format!("groups[{i}] ({})", g.name))?;
    }
    let mut new = Vec::new();
    for (i, (u, h)) in users.iter().zip(hashes).enumerate() {
        let created = acc
            .apply_user(root, u, h.as_deref(), today, &mut report)
            .with_context(|| format!("users[{i}] ({})", u.name))?;
        if created {
            report.users_created.push(u.name.clone());
        } else {
            report.users_updated.push(u.name.clone());
        }
        new.push(created);
    }
    acc.check_members()?;
    acc.save(root, &mut report.written)?;

    for (i, (u, created)) in users.iter().zip(new).enumerate() {
        let ctx = || format!("users[{i}] ({})", u.name);
        let info = acc.user(&u.name).with_context(|| format!("{} is not in passwd after writing it", ctx()))?;
        // A system account gets a home only when the answer names one.
        if created && (!u.system || u.home.is_some()) {
            let made = make_home(root, &info.home, info.uid, info.gid, acc.defs.home_mode)
                .with_context(|| format!("{}: making home {}", ctx(), info.home))?;
            if made {
                report.written.push(format!("{}/", info.home.trim_end_matches('/')));
            }
        }
        if let Some(p) = add_keys(root, &u.name, &info, &u.ssh_authorized_keys).with_context(ctx)? {
            report.written.push(p);
        }
        sudo_rule(root, u, &mut report).with_context(ctx)?;
    }
    Ok(report)
}

/// Sets the password hash of an existing user (at first boot, for hashes
/// held as credentials).
pub fn set_password_hash(root: &RootDir, user: &str, hash: &str) -> Result<()> {
    if hash.is_empty() || hash.contains([':', '\n']) {
        bail!("the password hash for user {user} has a ':' or a newline, or is empty; it cannot go into shadow");
    }
    let mut acc = Accounts::load(root)?;
    if acc.passwd.find(user).is_none() {
        bail!("user {user} does not exist in {}", root.display(PASSWD).display());
    }
    acc.set_shadow_password(root, user, hash, today(), true)?;
    acc.save(root, &mut Vec::new())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    const DAY: u64 = 20_000;

    /// A Debian 12 root's account files (base-passwd and a first user).
    const PASSWD_TXT: &str = "\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin
proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin
irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
debian:x:1000:1000:Debian,,,:/home/debian:/bin/bash
";
    const SHADOW_TXT: &str = "\
root:*:19500:0:99999:7:::
daemon:*:19500:0:99999:7:::
bin:*:19500:0:99999:7:::
sys:*:19500:0:99999:7:::
sync:*:19500:0:99999:7:::
games:*:19500:0:99999:7:::
man:*:19500:0:99999:7:::
lp:*:19500:0:99999:7:::
mail:*:19500:0:99999:7:::
news:*:19500:0:99999:7:::
uucp:*:19500:0:99999:7:::
proxy:*:19500:0:99999:7:::
www-data:*:19500:0:99999:7:::
backup:*:19500:0:99999:7:::
list:*:19500:0:99999:7:::
irc:*:19500:0:99999:7:::
_apt:*:19500:0:99999:7:::
nobody:*:19500:0:99999:7:::
debian:$y$j9T$olduser$0123456789abcdefghijklmnopqrstuvwxyzABCDE:19501:0:99999:7:::
";
    const GROUP_TXT: &str = "\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:debian
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
news:x:9:
uucp:x:10:
man:x:12:
proxy:x:13:
kmem:x:15:
dialout:x:20:
fax:x:21:
voice:x:22:
cdrom:x:24:debian
floppy:x:25:
tape:x:26:
sudo:x:27:
audio:x:29:
dip:x:30:
www-data:x:33:
backup:x:34:
operator:x:37:
list:x:38:
irc:x:39:
src:x:40:
shadow:x:42:
utmp:x:43:
video:x:44:
sasl:x:45:
plugdev:x:46:
staff:x:50:
games:x:60:
users:x:100:
nogroup:x:65534:
debian:x:1000:
";
    const GSHADOW_TXT: &str = "\
root:*::
daemon:*::
bin:*::
sys:*::
adm:*::debian
tty:*::
disk:*::
lp:*::
mail:*::
news:*::
uucp:*::
man:*::
proxy:*::
kmem:*::
dialout:*::
fax:*::
voice:*::
cdrom:*::debian
floppy:*::
tape:*::
sudo:*::
audio:*::
dip:*::
www-data:*::
backup:*::
operator:*::
list:*::
irc:*::
src:*::
shadow:*::
utmp:*::
video:*::
sasl:*::
plugdev:*::
staff:*::
games:*::
users:*::
nogroup:*::
debian:!::
";
    const LOGIN_DEFS: &str = "\
# /etc/login.defs - Configuration control definitions for the login package.
MAIL_DIR        /var/mail
UMASK\t\t022
PASS_MAX_DAYS\t99999
UID_MIN\t\t\t 1000
UID_MAX\t\t\t60000
GID_MIN\t\t\t 1000
GID_MAX\t\t\t60000
ENCRYPT_METHOD SHA512
";
    const HASH: &str = "$y$j9T$newsalt$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    const KEY1: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEIQczXkVx9q alice@laptop";
    const KEY2: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@desk";

    fn put(t: &Path, rel: &str, data: &str, mode: u32) {
        let p = t.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn debian_root() -> (tempfile::TempDir, RootDir) {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        put(p, "etc/passwd", PASSWD_TXT, 0o644);
        put(p, "etc/shadow", SHADOW_TXT, 0o640);
        put(p, "etc/group", GROUP_TXT, 0o644);
        put(p, "etc/gshadow", GSHADOW_TXT, 0o640);
        put(p, "etc/login.defs", LOGIN_DEFS, 0o644);
        put(p, "etc/sudoers", "@includedir /etc/sudoers.d\n", 0o440);
        put(p, "etc/skel/.bashrc", "# ~/.bashrc\n", 0o644);
        put(p, "etc/skel/.profile", "# ~/.profile\n", 0o644);
        put(p, "etc/skel/.config/app/settings", "x=1\n", 0o600);
        std::os::unix::fs::symlink(".profile", p.join("etc/skel/.bash_profile")).unwrap();
        put(p, "usr/bin/bash", "", 0o755);
        put(p, "usr/sbin/nologin", "", 0o755);
        // Merged /usr, as on Debian 12.
        std::os::unix::fs::symlink("usr/bin", p.join("bin")).unwrap();
        std::os::unix::fs::symlink("usr/sbin", p.join("sbin")).unwrap();
        std::fs::create_dir_all(p.join("home/debian/.ssh")).unwrap();
        put(p, "home/debian/.ssh/authorized_keys", &format!("{KEY1}\n"), 0o600);
        let r = RootDir::open(p).unwrap();
        (t, r)
    }

    fn read(t: &Path, rel: &str) -> String {
        std::fs::read_to_string(t.join(rel)).unwrap()
    }

    fn mode(t: &Path, rel: &str) -> u32 {
        std::fs::symlink_metadata(t.join(rel)).unwrap().permissions().mode() & 0o7777
    }

    fn line<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines()
            .find(|l| l.split(':').next() == Some(name))
            .unwrap_or_else(|| panic!("no line for {name} in\n{text}"))
    }

    /// The real shadow tools (pwck, grpck) accept the root's files. They
    /// chroot into the root, so they need root; skipped otherwise.
    fn shadow_tools_accept(t: &Path) {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        for (tool, args) in [("pwck", &["-r", "-q"][..]), ("grpck", &["-r"][..])] {
            let out = match std::process::Command::new(tool).args(args).arg("-R").arg(t).output() {
                Ok(o) => o,
                Err(_) => continue, // not installed on this host
            };
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "{tool} refused the files:\n{text}");
        }
        // Warnings that are not about this test root lacking real
        // programs and directories.
        if let Ok(out) = std::process::Command::new("pwck").args(["-r", "-R"]).arg(t).output() {
            let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
            assert!(!text.contains("no group"), "{text}");
        }
    }

    fn alice() -> User {
        User {
            name: "alice".into(),
            gecos: Some("Alice Example".into()),
            groups: vec!["sudo".into(), "users".into()],
            sudo: Some(Sudo::Nopasswd),
            ssh_authorized_keys: vec![KEY1.into(), KEY2.into()],
            ..Default::default()
        }
    }

    #[test]
    fn creates_a_user_with_hash_keys_sudo_groups_and_home_from_skel() {
        let (t, r) = debian_root();
        let p = t.path();
        let rep = apply_on(&r, &[], &[alice()], &[Some(HASH.into())], DAY).unwrap();
        assert_eq!(rep.users_created, ["alice"]);
        assert_eq!(rep.groups_created, ["alice"]);
        let passwd = read(p, "etc/passwd");
        assert_eq!(passwd, format!("{PASSWD_TXT}alice:x:1001:1001:Alice Example:/home/alice:/bin/bash\n"));
        assert_eq!(read(p, "etc/shadow"), format!("{SHADOW_TXT}alice:{HASH}:{DAY}:0:99999:7:::\n"));
        let group = read(p, "etc/group");
        assert_eq!(line(&group, "sudo"), "sudo:x:27:alice");
        assert_eq!(line(&group, "users"), "users:x:100:alice");
        assert_eq!(line(&group, "alice"), "alice:x:1001:");
        let gshadow = read(p, "etc/gshadow");
        assert_eq!(line(&gshadow, "sudo"), "sudo:*::alice");
        assert_eq!(line(&gshadow, "alice"), "alice:!::");
        // Untouched lines are kept byte for byte, in order.
        let expect_group =
            GROUP_TXT.replace("sudo:x:27:\n", "sudo:x:27:alice\n").replace("users:x:100:\n", "users:x:100:alice\n");
        assert_eq!(group, format!("{expect_group}alice:x:1001:\n"));
        assert_eq!(mode(p, "etc/shadow"), 0o640);
        assert_eq!(mode(p, "etc/gshadow"), 0o640);

        assert_eq!(mode(p, "home/alice"), 0o700);
        assert_eq!(read(p, "home/alice/.bashrc"), "# ~/.bashrc\n");
        assert_eq!(read(p, "home/alice/.config/app/settings"), "x=1\n");
        assert_eq!(mode(p, "home/alice/.config/app/settings"), 0o600);
        assert_eq!(std::fs::read_link(p.join("home/alice/.bash_profile")).unwrap(), Path::new(".profile"));
        assert_eq!(mode(p, "home/alice/.ssh"), 0o700);
        assert_eq!(mode(p, "home/alice/.ssh/authorized_keys"), 0o600);
        assert_eq!(read(p, "home/alice/.ssh/authorized_keys"), format!("{KEY1}\n{KEY2}\n"));
        assert_eq!(read(p, "etc/sudoers.d/50-slipway-alice"), "alice ALL=(ALL:ALL) NOPASSWD: ALL\n");
        assert_eq!(mode(p, "etc/sudoers.d/50-slipway-alice"), 0o440);
        if r.sets_owner() {
            use std::os::unix::fs::MetadataExt;
            for rel in ["home/alice", "home/alice/.bashrc", "home/alice/.ssh", "home/alice/.ssh/authorized_keys"] {
                let m = std::fs::metadata(p.join(rel)).unwrap();
                assert_eq!((m.uid(), m.gid()), (1001, 1001), "{rel}");
            }
        }
        for f in [
            "/etc/gshadow",
            "/etc/group",
            "/etc/shadow",
            "/etc/passwd",
            "/home/alice/",
            "/home/alice/.ssh/authorized_keys",
        ] {
            assert!(rep.written.contains(&f.to_string()), "{f} not in {:?}", rep.written);
        }
        shadow_tools_accept(p);

        // Running again changes nothing.
        let before: Vec<String> =
            ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"].iter().map(|f| read(p, f)).collect();
        let again = apply_on(&r, &[], &[alice()], &[Some(HASH.into())], DAY + 5).unwrap();
        assert_eq!(again.users_updated, ["alice"]);
        let after: Vec<String> =
            ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"].iter().map(|f| read(p, f)).collect();
        assert_eq!(before, after);
        assert!(
            !again.written.iter().any(|w| w.starts_with("/etc/passwd") || w.ends_with("authorized_keys")),
            "{:?}",
            again.written
        );
    }

    #[test]
    fn updates_an_existing_user_in_place() {
        let (t, r) = debian_root();
        let p = t.path();
        let u = User {
            name: "debian".into(),
            gecos: Some("Debian Admin".into()),
            shell: Some("/bin/sh".into()),
            groups: vec!["audio".into(), "cdrom".into()],
            ssh_authorized_keys: vec![KEY1.into(), KEY2.into()],
            sudo: Some(Sudo::Password),
            ..Default::default()
        };
        let rep = apply_on(&r, &[], &[u], &[Some(HASH.into())], DAY).unwrap();
        assert_eq!(rep.users_updated, ["debian"]);
        assert!(rep.users_created.is_empty() && rep.groups_created.is_empty());
        assert_eq!(
            read(p, "etc/passwd"),
            PASSWD_TXT.replace(
                "debian:x:1000:1000:Debian,,,:/home/debian:/bin/bash",
                "debian:x:1000:1000:Debian Admin:/home/debian:/bin/sh"
            )
        );
        assert_eq!(line(&read(p, "etc/shadow"), "debian"), format!("debian:{HASH}:{DAY}:0:99999:7:::"));
        let group = read(p, "etc/group");
        assert_eq!(line(&group, "audio"), "audio:x:29:debian");
        assert_eq!(line(&group, "cdrom"), "cdrom:x:24:debian");
        // The key already there is not added twice.
        assert_eq!(read(p, "home/debian/.ssh/authorized_keys"), format!("{KEY1}\n{KEY2}\n"));
        assert_eq!(read(p, "etc/sudoers.d/50-slipway-debian"), "debian ALL=(ALL:ALL) ALL\n");
        shadow_tools_accept(p);

        // sudo = none takes slipway's rule away again.
        let u = User { name: "debian".into(), sudo: Some(Sudo::None), ..Default::default() };
        let rep = apply_on(&r, &[], &[u], &[None], DAY).unwrap();
        assert_eq!(rep.removed, ["/etc/sudoers.d/50-slipway-debian"]);
        assert!(!p.join("etc/sudoers.d/50-slipway-debian").exists());
        // No hash and no lock: the password stays.
        assert_eq!(line(&read(p, "etc/shadow"), "debian"), format!("debian:{HASH}:{DAY}:0:99999:7:::"));
    }

    #[test]
    fn existing_user_with_another_uid_or_home_is_refused() {
        let (t, r) = debian_root();
        let u = User { name: "debian".into(), uid: Some(1005), ..Default::default() };
        let e = apply_on(&r, &[], &[u], &[None], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("exists in the root with UID 1000"), "{e:#}");
        let u = User { name: "debian".into(), home: Some("/srv/debian".into()), ..Default::default() };
        let e = apply_on(&r, &[], &[u], &[None], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("does not move home directories"), "{e:#}");
        assert_eq!(read(t.path(), "etc/passwd"), PASSWD_TXT);
    }

    #[test]
    fn system_user_gets_a_system_id_nologin_and_no_home() {
        let (t, r) = debian_root();
        let p = t.path();
        let u = User { name: "svc".into(), system: true, ..Default::default() };
        let rep = apply_on(&r, &[], &[u], &[None], DAY).unwrap();
        assert_eq!(rep.users_created, ["svc"]);
        // 100 is free as a UID but is the GID of "users": 101 is free as both.
        assert_eq!(line(&read(p, "etc/passwd"), "svc"), "svc:x:101:101::/nonexistent:/usr/sbin/nologin");
        assert_eq!(line(&read(p, "etc/group"), "svc"), "svc:x:101:");
        assert_eq!(line(&read(p, "etc/shadow"), "svc"), format!("svc:!:{DAY}:0:99999:7:::"));
        assert!(!p.join("nonexistent").exists());
        shadow_tools_accept(p);
    }

    #[test]
    fn ids_are_allocated_from_login_defs_ranges() {
        let (t, r) = debian_root();
        let p = t.path();
        let groups = [
            Group { name: "devs".into(), members: vec!["debian".into()], ..Default::default() },
            Group { name: "svcgrp".into(), system: true, ..Default::default() },
            Group { name: "fixed".into(), gid: Some(2500), ..Default::default() },
        ];
        let users = [
            // 1001 is free as a UID but devs took GID 1001.
            User { name: "bob".into(), ..Default::default() },
            // Its own number is taken as a GID: the group gets the next free.
            User { name: "carol".into(), uid: Some(1001), ..Default::default() },
            User { name: "dave".into(), primary_group: Some("devs".into()), ..Default::default() },
        ];
        let rep = apply_on(&r, &groups, &users, &[None, None, None], DAY).unwrap();
        assert_eq!(rep.groups_created, ["devs", "svcgrp", "fixed", "bob", "carol"]);
        let group = read(p, "etc/group");
        assert_eq!(line(&group, "devs"), "devs:x:1001:debian");
        assert_eq!(line(&group, "svcgrp"), "svcgrp:x:101:");
        assert_eq!(line(&group, "fixed"), "fixed:x:2500:");
        let passwd = read(p, "etc/passwd");
        assert_eq!(line(&passwd, "bob"), "bob:x:1002:1002::/home/bob:/bin/bash");
        assert_eq!(line(&passwd, "carol"), "carol:x:1001:1003::/home/carol:/bin/bash");
        assert_eq!(line(&passwd, "dave"), "dave:x:1003:1001::/home/dave:/bin/bash");
        assert_eq!(line(&read(p, "etc/gshadow"), "devs"), "devs:!::debian");
        shadow_tools_accept(p);

        let acc = Accounts::load(&r).unwrap();
        assert_eq!(acc.uid_of("carol"), Some(1001));
        assert_eq!(acc.gid_of("fixed"), Some(2500));
        assert_eq!(
            acc.user("dave"),
            Some(UserInfo { uid: 1003, gid: 1001, home: "/home/dave".into(), shell: "/bin/bash".into() })
        );
        assert_eq!(acc.user("nobody-here"), None);
    }

    #[test]
    fn ids_in_use_and_missing_groups_are_refused() {
        let (t, r) = debian_root();
        let e = apply_on(&r, &[], &[User { name: "eve".into(), uid: Some(1000), ..Default::default() }], &[None], DAY)
            .unwrap_err();
        assert!(format!("{e:#}").contains("UID 1000 asked for user eve is already the UID of user debian"), "{e:#}");
        let g = Group { name: "ops".into(), gid: Some(27), ..Default::default() };
        let e = apply_on(&r, &[g], &[], &[], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("already the GID of group sudo"), "{e:#}");
        let u = User { name: "eve".into(), primary_group: Some("nope".into()), ..Default::default() };
        let e = apply_on(&r, &[], &[u], &[None], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("primary group nope of user eve does not exist"), "{e:#}");
        let u = User { name: "eve".into(), groups: vec!["wheel".into()], ..Default::default() };
        let e = apply_on(&r, &[], &[u], &[None], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("group wheel of user eve does not exist"), "{e:#}");
        let g = Group { name: "ops".into(), members: vec!["ghost".into()], ..Default::default() };
        let e = apply_on(&r, &[g], &[], &[], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("member ghost, who is not a user"), "{e:#}");
        let u = User { name: "eve".into(), gecos: Some("a:b".into()), ..Default::default() };
        assert!(apply_on(&r, &[], &[u], &[None], DAY).is_err());
        // Nothing was written by any of these.
        assert_eq!(read(t.path(), "etc/passwd"), PASSWD_TXT);
        assert_eq!(read(t.path(), "etc/group"), GROUP_TXT);
    }

    #[test]
    fn a_malformed_passwd_or_group_line_is_refused_naming_it() {
        let (t, r) = debian_root();
        let p = t.path();
        let bad = format!("{PASSWD_TXT}broken:x:abc:1000::/home/broken:/bin/sh\n");
        put(p, "etc/passwd", &bad, 0o644);
        let e = apply_on(&r, &[], &[alice()], &[None], DAY).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("etc/passwd line 20") && msg.contains("broken:x:abc"), "{msg}");
        assert_eq!(read(p, "etc/passwd"), bad);

        put(p, "etc/passwd", PASSWD_TXT, 0o644);
        put(p, "etc/group", &format!("{GROUP_TXT}half:x\n"), 0o644);
        let e = apply_on(&r, &[], &[alice()], &[None], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("etc/group line 40"), "{e:#}");
        assert_eq!(read(p, "etc/passwd"), PASSWD_TXT);
    }

    #[test]
    fn lock_password_marks_the_hash_once() {
        let (t, r) = debian_root();
        let p = t.path();
        let users = [
            User { name: "debian".into(), lock_password: true, ..Default::default() },
            User { name: "frank".into(), lock_password: true, ..Default::default() },
        ];
        apply_on(&r, &[], &users, &[None, None], DAY).unwrap();
        let shadow = read(p, "etc/shadow");
        assert_eq!(
            line(&shadow, "debian"),
            "debian:!$y$j9T$olduser$0123456789abcdefghijklmnopqrstuvwxyzABCDE:19501:0:99999:7:::"
        );
        assert_eq!(line(&shadow, "frank"), format!("frank:!:{DAY}:0:99999:7:::"));
        apply_on(&r, &[], &users, &[None, None], DAY + 1).unwrap();
        assert_eq!(read(p, "etc/shadow"), shadow);
        // A hash given with a lock is stored locked.
        let u = User { name: "frank".into(), lock_password: true, ..Default::default() };
        apply_on(&r, &[], &[u], &[Some(HASH.into())], DAY).unwrap();
        assert_eq!(line(&read(p, "etc/shadow"), "frank"), format!("frank:!{HASH}:{DAY}:0:99999:7:::"));
    }

    #[test]
    fn set_password_hash_changes_only_that_line() {
        let (t, r) = debian_root();
        let p = t.path();
        set_password_hash(&r, "debian", HASH).unwrap();
        let shadow = read(p, "etc/shadow");
        let l = line(&shadow, "debian");
        assert!(l.starts_with(&format!("debian:{HASH}:")) && l.ends_with(":0:99999:7:::"), "{l}");
        assert_eq!(shadow.replace(l, ""), SHADOW_TXT.replace(line(SHADOW_TXT, "debian"), ""));
        assert_eq!(mode(p, "etc/shadow"), 0o640);
        let e = set_password_hash(&r, "nobody-here", HASH).unwrap_err();
        assert!(format!("{e:#}").contains("user nobody-here does not exist"), "{e:#}");
        assert!(set_password_hash(&r, "debian", "a:b").is_err());
        shadow_tools_accept(p);
    }

    #[test]
    fn a_file_without_a_final_newline_stays_so() {
        let (t, r) = debian_root();
        let p = t.path();
        put(p, "etc/passwd", PASSWD_TXT.trim_end(), 0o644);
        let u = User { name: "gina".into(), ..Default::default() };
        apply_on(&r, &[], &[u], &[None], DAY).unwrap();
        assert_eq!(read(p, "etc/passwd"), format!("{PASSWD_TXT}gina:x:1001:1001::/home/gina:/bin/bash"));
    }

    #[test]
    fn sudo_needs_sudo_in_the_root() {
        let (t, r) = debian_root();
        std::fs::remove_file(t.path().join("etc/sudoers")).unwrap();
        let e = apply_on(&r, &[], &[alice()], &[None], DAY).unwrap_err();
        assert!(format!("{e:#}").contains("no /etc/sudoers"), "{e:#}");
    }

    #[test]
    fn login_defs_ranges_and_home_mode_are_read() {
        let d = LoginDefs::parse("UID_MIN 2000\nUID_MAX 3000\nSYS_UID_MIN 200\n#GID_MIN 5\nHOME_MODE\t0750\n");
        assert_eq!(d.uid, (2000, 3000));
        assert_eq!(d.sys_uid, (200, 1999));
        assert_eq!(d.gid, (1000, 60000));
        assert_eq!(d.sys_gid, (100, 999));
        assert_eq!(d.home_mode, 0o750);
        assert_eq!(LoginDefs::parse("").home_mode, 0o700);
    }
}
