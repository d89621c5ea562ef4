//! The answer file (`answer.toml`): parsing with unknown keys refused,
//! the checks that need no image, and what one machine gets from it.
//!
//! The format is specified in `docs/answer-format.md`; the JSON Schema in
//! `docs/answer.schema.json` is generated from [`model`].

pub mod check;
pub mod model;
pub mod new;
pub mod nocloud;
pub mod pattern;
pub mod schema;
pub mod secret;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

pub use model::*;
pub use pattern::{Facts, Pattern};
pub use secret::{refs_mut as secret_refs_mut, Secret, SecretRef};

/// The answer file format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// One problem in an answer file: the key, what is wrong, how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The key's path, like `users[0].password_hash` (empty for the file).
    pub key: String,
    pub problem: String,
    pub fix: String,
    /// The line in the file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Problem {
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem { key: key.into(), problem: problem.into(), fix: fix.into(), line: None }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.problem)?;
        if !self.fix.is_empty() {
            write!(f, " (fix: {})", self.fix)?;
        }
        Ok(())
    }
}

/// An answer file refused, with every problem found.
#[derive(Debug, thiserror::Error)]
pub struct Refused {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "answer file {} is refused ({} problem", self.file, self.problems.len())?;
        if self.problems.len() != 1 {
            write!(f, "s")?;
        }
        write!(f, ")")?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Reads and checks an answer file (syntax, unknown keys, and every check
/// that needs no image).
pub fn load(path: &Path) -> std::result::Result<Answer, Refused> {
    let name = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| Refused {
        file: name.clone(),
        problems: vec![Problem::new("", format!("cannot read it: {e}"), "check the path")],
    })?;
    let text = String::from_utf8(text).map_err(|_| Refused {
        file: name.clone(),
        problems: vec![Problem::new("", "it is not UTF-8 text", "save it as UTF-8")],
    })?;
    parse(&text, &name)
}

/// Parses answer-file text; `name` is used in messages.
pub fn parse(text: &str, name: &str) -> std::result::Result<Answer, Refused> {
    let answer = parse_only(text).map_err(|p| Refused { file: name.to_string(), problems: vec![p] })?;
    let problems = validate(&answer);
    if problems.is_empty() {
        Ok(answer)
    } else {
        Err(Refused { file: name.to_string(), problems })
    }
}

/// Parses without the semantic checks. The error never quotes the input:
/// a line of an answer file may hold something secret.
fn parse_only(text: &str) -> std::result::Result<Answer, Problem> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1)
    };
    let de = match toml::Deserializer::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let mut p = Problem::new("", format!("not valid TOML: {}", e.message()), "see docs/answer-format.md");
            p.line = line_of(e.span());
            return Err(p);
        }
    };
    let mut track = serde_path_to_error::Track::new();
    let r = serde::Deserialize::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
    match r {
        Ok(a) => {
            let a: Answer = a;
            if a.version != FORMAT_VERSION {
                return Err(Problem::new(
                    "version",
                    format!(
                        "format version {} is not supported (this slipway reads version {FORMAT_VERSION})",
                        a.version
                    ),
                    format!("set version = {FORMAT_VERSION}, or use a slipway that reads this version"),
                ));
            }
            Ok(a)
        }
        Err(e) => {
            let path = track.path().to_string();
            let path = if path == "." { String::new() } else { path };
            let msg = e.message().to_string();
            let mut p = problem_for(&path, &msg);
            p.line = line_of(e.span());
            Err(p)
        }
    }
}

/// Turns a deserializer message into a problem with a fix.
fn problem_for(path: &str, msg: &str) -> Problem {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        // The tracked path already ends with the unknown key.
        let key = if path.is_empty() { field.to_string() } else { path.to_string() };
        if field == "password" && path.starts_with("users") {
            return Problem::new(
                key,
                "plain-text passwords are refused",
                "give password_hash: a crypt hash (`mkpasswd -m yescrypt`) or a reference like { file = \"/path\" }",
            );
        }
        let expected = rest.split_once("expected ").map(|(_, e)| e).unwrap_or("");
        let fix = if expected.is_empty() {
            "remove it; see docs/answer-format.md".to_string()
        } else {
            format!("remove it or correct the spelling; this table takes {expected}")
        };
        return Problem::new(key, "unknown key", fix);
    }
    if msg.starts_with("missing field `") {
        let field = msg.trim_start_matches("missing field `").split('`').next().unwrap_or("");
        let key = if path.is_empty() { field.to_string() } else { format!("{path}.{field}") };
        return Problem::new(key, "missing required key", "add it; see docs/answer-format.md");
    }
    if msg.contains(secret::PLAIN_SECRET) {
        return Problem::new(
            path,
            "a plain-text secret",
            "give a reference: { file = \"/path\" }, { env = \"NAME\" } or { credential = \"NAME\" }",
        );
    }
    if msg.contains("untagged enum HashOrRef") {
        return Problem::new(
            path,
            "not a password hash or a secret reference",
            "give a crypt hash string, or { file = \"/path\" }",
        );
    }
    Problem::new(path, msg.to_string(), "see docs/answer-format.md")
}

/// Every check that needs no image. An empty list means the file is good.
pub fn validate(a: &Answer) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut p = |k: String, what: String, fix: &str| out.push(Problem::new(k, what, fix));
    if let Some(n) = &a.computer.name {
        if let Err(e) = Pattern::parse(n) {
            p(
                "computer.name".into(),
                format!("bad host name pattern: {e}"),
                "use letters, digits, '-' and tokens like web-{serial}",
            );
        }
    }
    if let Some(d) = &a.computer.domain {
        if !valid_domain(d) {
            p(
                "computer.domain".into(),
                format!("{d:?} is not a DNS domain"),
                "use dot-separated labels of letters, digits and '-', like example.com",
            );
        }
    }
    for (i, m) in a.machines.iter().enumerate() {
        let k = format!("machines[{i}]");
        let mm = &m.matches;
        if mm.serial.is_none() && mm.mac.is_none() && mm.uuid.is_none() {
            p(format!("{k}.match"), "matches no machine".into(), "give serial, mac or uuid");
        }
        if let Some(mac) = &mm.mac {
            if !valid_mac(mac) {
                p(format!("{k}.match.mac"), format!("{mac:?} is not a MAC address"), "write it like 52:54:00:12:34:56");
            }
        }
        if let Some(n) = &m.name {
            if let Err(e) = Pattern::parse(n) {
                p(
                    format!("{k}.name"),
                    format!("bad host name pattern: {e}"),
                    "use letters, digits, '-' and tokens like web-{serial}",
                );
            }
        }
        if let Some(ifs) = &m.interfaces {
            check_interfaces(ifs, &format!("{k}.interfaces"), &mut p);
        }
        if let Some(tz) = &m.timezone {
            if !valid_timezone_name(tz) {
                p(
                    format!("{k}.timezone"),
                    format!("{tz:?} is not a time zone name"),
                    "use an IANA name like Europe/Berlin or UTC",
                );
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, g) in a.groups.iter().enumerate() {
        if !valid_account_name(&g.name) {
            p(
                format!("groups[{i}].name"),
                format!("{:?} is not a valid group name", g.name),
                "start with a lower-case letter or '_'; then letters, digits, '_' or '-', at most 32",
            );
        }
        if !names.insert(&g.name) {
            p(format!("groups[{i}].name"), format!("group {:?} is listed twice", g.name), "merge the two entries");
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, u) in a.users.iter().enumerate() {
        let k = format!("users[{i}]");
        if !valid_account_name(&u.name) {
            p(
                format!("{k}.name"),
                format!("{:?} is not a valid user name", u.name),
                "start with a lower-case letter or '_'; then letters, digits, '_' or '-', at most 32",
            );
        }
        if !names.insert(&u.name) {
            p(format!("{k}.name"), format!("user {:?} is listed twice", u.name), "merge the two entries");
        }
        if let Some(HashOrRef::Hash(h)) = &u.password_hash {
            if let Err(e) = check_crypt_hash(h) {
                p(format!("{k}.password_hash"), e, "hash the password: `mkpasswd -m yescrypt` (package whois) or `openssl passwd -6`; or give { file = \"/path\" }");
            }
        }
        if u.password_hash.is_some() && u.lock_password {
            p(
                format!("{k}.lock_password"),
                "a password hash and a locked password together".into(),
                "drop one of them",
            );
        }
        for (j, key) in u.ssh_authorized_keys.iter().enumerate() {
            if let Err(e) = check_ssh_key(key) {
                p(
                    format!("{k}.ssh_authorized_keys[{j}]"),
                    e,
                    "paste one line of a .pub file, like `ssh-ed25519 AAAAC3… user@host`",
                );
            }
        }
        for (key, v) in [("shell", &u.shell), ("home", &u.home)] {
            if let Some(v) = v {
                if !v.starts_with('/') || v.split('/').any(|c| c == "..") {
                    p(
                        format!("{k}.{key}"),
                        format!("{v:?} is not an absolute path"),
                        "give an absolute path like /bin/bash",
                    );
                }
            }
        }
    }
    if let Some(s) = &a.ssh {
        if let Some(r) = &s.permit_root_login {
            if !["yes", "no", "prohibit-password", "forced-commands-only"].contains(&r.as_str()) {
                p(
                    "ssh.permit_root_login".into(),
                    format!("{r:?} is not a PermitRootLogin value"),
                    "use yes, no, prohibit-password or forced-commands-only",
                );
            }
        }
    }
    if let Some(n) = &a.network {
        check_interfaces(&n.interfaces, "network.interfaces", &mut p);
    }
    if let Some(l) = &a.locale {
        if let Some(lang) = &l.lang {
            if !lang.chars().all(|c| c.is_ascii_alphanumeric() || "_.-@".contains(c)) || lang.is_empty() {
                p(
                    "locale.lang".into(),
                    format!("{lang:?} is not a locale name"),
                    "use a name like en_US.UTF-8 or C.UTF-8",
                );
            }
        }
        if let Some(kb) = &l.keyboard {
            if kb.is_empty() || !kb.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) {
                p(
                    "locale.keyboard".into(),
                    format!("{kb:?} is not a keyboard layout name"),
                    "use an XKB layout like us, de or fr",
                );
            }
        }
    }
    if let Some(t) = &a.time {
        if let Some(tz) = &t.timezone {
            if !valid_timezone_name(tz) {
                p(
                    "time.timezone".into(),
                    format!("{tz:?} is not a time zone name"),
                    "use an IANA name like Europe/Berlin or UTC",
                );
            }
        }
        for (i, s) in t.ntp.iter().enumerate() {
            if s.is_empty() || s.parse::<IpAddr>().is_err() && !valid_domain(s) {
                p(
                    format!("time.ntp[{i}]"),
                    format!("{s:?} is not a host name or an address"),
                    "give a server like 0.debian.pool.ntp.org",
                );
            }
        }
    }
    for (i, f) in a.files.iter().enumerate() {
        let k = format!("files[{i}]");
        if !f.path.starts_with('/') || f.path.split('/').any(|c| c == ".." || c == ".") || f.path.ends_with('/') {
            p(
                format!("{k}.path"),
                format!("{:?} is not a plain absolute path", f.path),
                "give an absolute path without '.' or '..', like /etc/motd",
            );
        } else if ["/etc/slipway", "/var/lib/slipway"]
            .iter()
            .any(|d| f.path == *d || f.path.starts_with(&format!("{d}/")))
        {
            p(format!("{k}.path"), format!("{} is slipway's own state", f.path), "write the file somewhere else");
        }
        match (&f.content, &f.source) {
            (Some(_), Some(_)) => p(k.clone(), "both content and source".into(), "give one of them"),
            (None, None) => p(
                k.clone(),
                "neither content nor source".into(),
                "give content = \"…\" or source = \"https://…\" with sha256",
            ),
            (None, Some(src)) => {
                if !(src.starts_with("https://") || src.starts_with("http://") || src.starts_with("file://")) {
                    p(format!("{k}.source"), format!("{src:?} is not an http(s):// or file:// URL"), "give a URL");
                }
                match &f.sha256 {
                    None => p(
                        format!("{k}.sha256"),
                        "a source without its sha256".into(),
                        "add sha256 = \"…\" (sha256sum of the content)",
                    ),
                    Some(h) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                        p(format!("{k}.sha256"), "not 64 hex digits".into(), "give the output of sha256sum")
                    }
                    _ => {}
                }
            }
            (Some(_), None) => {
                if f.sha256.is_some() {
                    p(format!("{k}.sha256"), "sha256 is only for source".into(), "remove it");
                }
            }
        }
        if let Some(m) = &f.mode {
            if parse_mode(m).is_none() {
                p(format!("{k}.mode"), format!("{m:?} is not an octal mode"), "write it as a string like \"0644\"");
            }
        }
    }
    if let Some(d) = &a.domain {
        if d.realm.is_empty() || !valid_domain(&d.realm.to_ascii_lowercase()) {
            p("domain.realm".into(), format!("{:?} is not a realm", d.realm), "give the realm like AD.EXAMPLE.COM");
        }
        if d.timeout == Some(0) {
            p("domain.timeout".into(), "a timeout of 0 seconds".into(), "give seconds > 0, or leave it out (300)");
        }
    }
    let mut command_names = std::collections::BTreeSet::new();
    for (i, c) in a.commands.iter().enumerate() {
        let k = format!("commands[{i}]");
        if c.name.trim().is_empty() {
            p(format!("{k}.name"), "empty".into(), "give the command a short name for logs");
        } else if !command_names.insert(c.name.as_str()) {
            p(
                format!("{k}.name"),
                format!("command name {:?} is used twice; first boot records finished steps by name", c.name),
                "give every command its own name",
            );
        }
        match (c.run.is_empty(), &c.shell) {
            (false, Some(_)) => p(k.clone(), "both run and shell".into(), "give one of them"),
            (true, None) => {
                p(k.clone(), "neither run nor shell".into(), "give run = [\"program\", \"arg\"] or shell = \"…\"")
            }
            _ => {}
        }
        if c.timeout == Some(0) {
            p(format!("{k}.timeout"), "a timeout of 0 seconds".into(), "give seconds > 0, or leave it out (300)");
        }
        if c.retries.is_some() && c.on_failure != OnFailure::Retry {
            p(
                format!("{k}.retries"),
                "retries without on_failure = \"retry\"".into(),
                "set on_failure = \"retry\" or drop retries",
            );
        }
        for name in c.secret_env.keys() {
            if name.is_empty()
                || name.starts_with(|c: char| c.is_ascii_digit())
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                p(
                    format!("{k}.secret_env.{name}"),
                    "not an environment variable name".into(),
                    "use letters, digits and '_'",
                );
            }
        }
    }
    out
}

fn check_interfaces(ifs: &[Interface], at: &str, p: &mut impl FnMut(String, String, &str)) {
    for (i, f) in ifs.iter().enumerate() {
        let k = format!("{at}[{i}]");
        match (&f.matches.mac, &f.matches.name) {
            (Some(_), Some(_)) => p(format!("{k}.match"), "both mac and name".into(), "match by one of them"),
            (None, None) => p(
                format!("{k}.match"),
                "matches no interface".into(),
                "give mac = \"52:54:00:…\" or name = \"eth0\" (globs like en* work)",
            ),
            (Some(m), None) if !valid_mac(m) => {
                p(format!("{k}.match.mac"), format!("{m:?} is not a MAC address"), "write it like 52:54:00:12:34:56")
            }
            (None, Some(n)) if n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace) => p(
                format!("{k}.match.name"),
                format!("{n:?} is not an interface name"),
                "interface names have 1-15 characters, no '/' or spaces",
            ),
            _ => {}
        }
        match f.mode {
            AddressMode::Static => {
                if f.addresses.is_empty() {
                    p(
                        format!("{k}.addresses"),
                        "static mode without addresses".into(),
                        "add addresses = [\"192.0.2.10/24\"], or use mode = \"dhcp\"",
                    );
                }
            }
            AddressMode::Dhcp => {
                if !f.addresses.is_empty() || f.gateway.is_some() {
                    p(
                        format!("{k}.mode"),
                        "addresses or a gateway with mode = \"dhcp\"".into(),
                        "set mode = \"static\", or drop addresses and gateway",
                    );
                }
            }
        }
        for (j, a) in f.addresses.iter().enumerate() {
            if parse_cidr(a).is_none() {
                p(
                    format!("{k}.addresses[{j}]"),
                    format!("{a:?} is not an address with a prefix length"),
                    "write it like 192.0.2.10/24 or 2001:db8::10/64",
                );
            }
        }
        if let Some(g) = &f.gateway {
            if g.parse::<IpAddr>().is_err() {
                p(format!("{k}.gateway"), format!("{g:?} is not an IP address"), "give an address like 192.0.2.1");
            }
        }
        for (j, d) in f.dns.iter().enumerate() {
            if d.parse::<IpAddr>().is_err() {
                p(format!("{k}.dns[{j}]"), format!("{d:?} is not an IP address"), "give DNS servers as addresses");
            }
        }
        for (j, d) in f.search.iter().enumerate() {
            if !valid_domain(d) {
                p(format!("{k}.search[{j}]"), format!("{d:?} is not a DNS domain"), "give a domain like example.com");
            }
        }
        if let Some(m) = f.mtu {
            if !(68..=65535).contains(&m) {
                p(format!("{k}.mtu"), format!("{m} is out of range"), "give an MTU from 68 to 65535");
            }
        }
    }
}

/// `192.0.2.10/24` → (address, prefix).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = s.split_once('/')?;
    let a: IpAddr = a.parse().ok()?;
    let l: u8 = l.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (l <= max).then_some((a, l))
}

/// `"0644"` → 0o644.
pub fn parse_mode(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|m| *m <= 0o7777)
}

pub fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn valid_account_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f == '_')
        && n.len() <= 32
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn valid_timezone_name(tz: &str) -> bool {
    !tz.is_empty()
        && !tz.starts_with('/')
        && tz.split('/').all(|c| !c.is_empty() && c != ".." && c != ".")
        && tz.chars().all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c))
}

/// Checks that a string is a crypt(3) hash and not a plain password. The
/// message never quotes the value.
pub fn check_crypt_hash(h: &str) -> std::result::Result<(), String> {
    const KNOWN: [&str; 8] = ["$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$", "$2a$"];
    if h == "!" || h == "*" {
        return Err("a locked marker, not a hash".into());
    }
    let Some(prefix) = KNOWN.iter().find(|p| h.starts_with(**p)) else {
        if h.starts_with("$1$") {
            return Err("an MD5 crypt hash ($1$), which is too weak".into());
        }
        if h.starts_with('$') {
            return Err("a hash of a kind this file does not take".into());
        }
        return Err("not a crypt hash: this looks like a plain-text password, which is refused".into());
    };
    let rest = &h[prefix.len()..];
    if rest.len() < 8 || h.contains(char::is_whitespace) || !rest.contains('$') {
        return Err(format!("a truncated or damaged {prefix} hash"));
    }
    Ok(())
}

fn check_ssh_key(k: &str) -> std::result::Result<(), String> {
    const TYPES: [&str; 8] = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-dss",
    ];
    if k.contains('\n') {
        return Err("more than one line; give one key per entry".into());
    }
    let mut f = k.split_whitespace();
    // Options (from="…",no-pty) may come first.
    let first = f.next().ok_or("an empty key")?;
    let (ty, blob) = if TYPES.contains(&first) { (first, f.next()) } else { (f.next().unwrap_or(""), f.next()) };
    if !TYPES.contains(&ty) {
        return Err("not an OpenSSH public key (no key type like ssh-ed25519)".into());
    }
    if ty == "ssh-dss" {
        return Err("a DSA key, which OpenSSH no longer accepts".into());
    }
    let blob = blob.ok_or("the key type without its key")?;
    if blob.len() < 16 || !blob.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') {
        return Err("the key data is not base64".into());
    }
    Ok(())
}

/// What one machine gets from the answer file once its overrides are
/// applied.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ForMachine {
    /// The rendered host name (None when the answer names none).
    pub hostname: Option<String>,
    pub interfaces: Vec<Interface>,
    pub timezone: Option<String>,
    /// Indexes of the `machines` entries that matched.
    pub matched: Vec<usize>,
}

impl Answer {
    /// The settings for the machine with these facts: later matching
    /// overrides win over earlier ones and over the defaults.
    pub fn for_machine(&self, facts: &Facts, random: &mut dyn FnMut(&mut [u8])) -> anyhow::Result<ForMachine> {
        let mut name = self.computer.name.clone();
        let mut name_key = "computer.name".to_string();
        let mut interfaces = self.network.as_ref().map(|n| n.interfaces.clone()).unwrap_or_default();
        let mut timezone = self.time.as_ref().and_then(|t| t.timezone.clone());
        let mut matched = Vec::new();
        for (i, m) in self.machines.iter().enumerate() {
            if machine_matches(&m.matches, facts) {
                matched.push(i);
                if let Some(n) = &m.name {
                    name = Some(n.clone());
                    name_key = format!("machines[{i}].name");
                }
                if let Some(ifs) = &m.interfaces {
                    interfaces = ifs.clone();
                }
                if let Some(tz) = &m.timezone {
                    timezone = Some(tz.clone());
                }
            }
        }
        let hostname = match name {
            None => None,
            Some(n) => {
                let p = Pattern::parse(&n).map_err(|e| anyhow::anyhow!("{name_key}: {e}"))?;
                Some(p.render(facts, random).map_err(|e| anyhow::anyhow!("{name_key} ({n:?}): {e}"))?)
            }
        };
        Ok(ForMachine { hostname, interfaces, timezone, matched })
    }
}

fn machine_matches(m: &MachineMatch, f: &Facts) -> bool {
    let any = m.serial.is_some() || m.mac.is_some() || m.uuid.is_some();
    any && m.serial.as_ref().is_none_or(|s| f.get("serial") == Some(s.as_str()))
        && m.mac.as_ref().is_none_or(|mac| f.macs().iter().any(|x| x.eq_ignore_ascii_case(mac)))
        && m.uuid.as_ref().is_none_or(|u| f.get("uuid").is_some_and(|x| x.eq_ignore_ascii_case(u)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 1
[computer]
name = "web-{serial}"
domain = "example.com"

[[machines]]
match = { mac = "52:54:00:00:00:02" }
name = "db-1"

[[users]]
name = "admin"
password_hash = "$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDE"
sudo = "nopasswd"
groups = ["adm"]
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2 admin@example"]

[network]
[[network.interfaces]]
match = { name = "en*" }
mode = "dhcp"

[time]
timezone = "Europe/Berlin"

[[commands]]
name = "hello"
shell = "echo hello"
secret_env = { TOKEN = { env = "TOKEN" } }
"#;

    #[test]
    fn a_good_file_parses_and_renders_per_machine() {
        let a = parse(GOOD, "good.toml").unwrap();
        let mut f = Facts::default();
        f.set("serial", "S1");
        let mut r = |b: &mut [u8]| b.fill(1);
        assert_eq!(a.for_machine(&f, &mut r).unwrap().hostname.as_deref(), Some("web-s1"));
        f.set("mac", "52:54:00:00:00:02");
        let m = a.for_machine(&f, &mut r).unwrap();
        assert_eq!(m.hostname.as_deref(), Some("db-1"));
        assert_eq!(m.matched, vec![0]);
    }

    fn refused(text: &str) -> Vec<Problem> {
        parse(text, "t.toml").unwrap_err().problems
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_line() {
        let p = refused("version = 1\n[computer]\nhostname = \"x\"\n");
        assert_eq!(p[0].key, "computer.hostname");
        assert_eq!(p[0].line, Some(3));
        assert!(p[0].fix.contains("name"), "{p:?}");
    }

    #[test]
    fn plain_text_passwords_are_refused_without_echo() {
        let p = refused("version = 1\n[[users]]\nname = \"a\"\npassword = \"hunter2\"\n");
        assert_eq!(p[0].key, "users[0].password");
        assert!(p[0].fix.contains("password_hash"));
        let p = refused("version = 1\n[[users]]\nname = \"a\"\npassword_hash = \"hunter2\"\n");
        assert_eq!(p[0].key, "users[0].password_hash");
        assert!(p[0].problem.contains("plain-text"));
        assert!(!format!("{p:?}").contains("hunter2"));
        let p = refused("version = 1\n[domain]\nrealm = \"AD.EXAMPLE.COM\"\npassword = \"hunter2\"\n");
        assert_eq!(p[0].key, "domain.password");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_are_refused_with_key_and_fix() {
        let p = refused("version = 1\n[computer]\nname = \"web_{serial\"\n");
        assert_eq!(p[0].key, "computer.name");
        let p = refused("version = 2\n");
        assert_eq!(p[0].key, "version");
        let p = refused(
            "version = 1\n[[network.interfaces]]\nmatch = { mac = \"zz\" }\nmode = \"static\"\n[[files]]\npath = \"../x\"\ncontent = \"a\"\n",
        );
        let keys: Vec<&str> = p.iter().map(|x| x.key.as_str()).collect();
        let dup = refused(
            "version = 1\n[[commands]]\nname = \"a\"\nshell = \"x\"\n[[commands]]\nname = \"a\"\nshell = \"y\"\n",
        );
        assert_eq!(dup[0].key, "commands[1].name");
        let own = refused("version = 1\n[[files]]\npath = \"/etc/slipway/x\"\ncontent = \"\"\n");
        assert_eq!(own[0].key, "files[0].path");
        assert!(keys.contains(&"network.interfaces[0].match.mac"), "{keys:?}");
        assert!(keys.contains(&"network.interfaces[0].addresses"), "{keys:?}");
        assert!(keys.contains(&"files[0].path"), "{keys:?}");
    }
}
