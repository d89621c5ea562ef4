//! The Setup Manager: making a new answer file from command-line flags
//! ([`from_options`]) or by asking questions ([`interactive`]), and writing
//! it out as TOML ([`to_toml`]).

use std::io::{BufRead, Write};

use anyhow::{bail, Context, Result};

use super::{
    check_crypt_hash, valid_account_name, valid_domain, validate, AddressMode, Answer, Computer, HashOrRef, Interface,
    InterfaceMatch, Network, Pattern, Problem, Sudo, Time, User, FORMAT_VERSION,
};

/// The host name pattern a new answer file gets when none is given.
pub const DEFAULT_NAME: &str = "host-{rand:6}";
/// The user a new answer file gets in [`interactive`] when none is given.
pub const DEFAULT_USER: &str = "admin";

/// What `slipway answer new` was told with flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOptions {
    /// `--hostname`: host name pattern; [`DEFAULT_NAME`] when not given.
    pub hostname: Option<String>,
    /// `--user`: the user to create.
    pub user: Option<String>,
    /// `--password-hash`: its crypt(3) hash; the password is locked without.
    pub password_hash: Option<String>,
    /// `--ssh-key` (repeatable): its authorized keys.
    pub ssh_keys: Vec<String>,
    /// `--timezone`.
    pub timezone: Option<String>,
    /// Sudo rights for the user (true by default; `--no-sudo`): `password`
    /// with a password hash, `nopasswd` without one (a locked password
    /// cannot be typed).
    pub sudo: bool,
    /// `--domain`: the DNS domain.
    pub domain: Option<String>,
    /// `--dhcp`: DHCP on every Ethernet interface (names `e*`).
    pub network_dhcp: bool,
}

impl Default for NewOptions {
    fn default() -> NewOptions {
        NewOptions {
            hostname: None,
            user: None,
            password_hash: None,
            ssh_keys: Vec::new(),
            timezone: None,
            sudo: true,
            domain: None,
            network_dhcp: false,
        }
    }
}

/// The flag a key of a new answer file comes from.
fn flag_of(key: &str) -> &'static str {
    if key.starts_with("computer.name") {
        "--hostname"
    } else if key.starts_with("computer.domain") {
        "--domain"
    } else if key.contains("password_hash") {
        "--password-hash"
    } else if key.contains("ssh_authorized_keys") {
        "--ssh-key"
    } else if key.starts_with("users") {
        "--user"
    } else if key.starts_with("time.timezone") {
        "--timezone"
    } else if key.starts_with("network") {
        "--dhcp"
    } else {
        "answer"
    }
}

/// Makes an answer file from flags and checks it; an error names the flag
/// and the fix.
pub fn from_options(o: &NewOptions) -> Result<Answer> {
    if o.user.is_none() {
        if o.password_hash.is_some() {
            bail!("--password-hash is given without --user; add --user NAME");
        }
        if !o.ssh_keys.is_empty() {
            bail!("--ssh-key is given without --user; add --user NAME");
        }
    }
    let a = build(o);
    let problems = validate(&a);
    if let Some(p) = problems.first() {
        bail!("{}", describe(p));
    }
    if let Some(u) = &o.user {
        if o.password_hash.is_none() && o.ssh_keys.is_empty() {
            bail!(
                "--user {u}: the user would have no way to log in; give --password-hash (made with `mkpasswd -m yescrypt`) or --ssh-key"
            );
        }
    }
    Ok(a)
}

fn describe(p: &Problem) -> String {
    let flag = flag_of(&p.key);
    let mut s = format!("{flag}: {}", p.problem);
    if !p.fix.is_empty() {
        s.push_str(&format!(" (fix: {})", p.fix));
    }
    s
}

fn build(o: &NewOptions) -> Answer {
    let mut a = Answer {
        version: FORMAT_VERSION,
        computer: Computer {
            name: Some(o.hostname.clone().unwrap_or_else(|| DEFAULT_NAME.to_string())),
            domain: o.domain.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    if let Some(name) = &o.user {
        let sudo = match (o.sudo, o.password_hash.is_some()) {
            (false, _) => None,
            (true, true) => Some(Sudo::Password),
            (true, false) => Some(Sudo::Nopasswd),
        };
        a.users.push(User {
            name: name.clone(),
            password_hash: o.password_hash.clone().map(HashOrRef::Hash),
            lock_password: o.password_hash.is_none(),
            sudo,
            ssh_authorized_keys: o.ssh_keys.clone(),
            ..Default::default()
        });
    }
    if let Some(tz) = &o.timezone {
        a.time = Some(Time { timezone: Some(tz.clone()), ..Default::default() });
    }
    if o.network_dhcp {
        a.network = Some(Network {
            interfaces: vec![Interface {
                matches: InterfaceMatch { name: Some("e*".into()), ..Default::default() },
                mode: AddressMode::Dhcp,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    a
}

/// The first problem [`validate`] finds at `key` (or under it) in `a`.
fn problem_at(a: &Answer, key: &str) -> std::result::Result<(), String> {
    match validate(a).into_iter().find(|p| p.key.starts_with(key)) {
        Some(p) if p.fix.is_empty() => Err(p.problem),
        Some(p) => Err(format!("{} ({})", p.problem, p.fix)),
        None => Ok(()),
    }
}

/// Tries per question before giving up.
const TRIES: usize = 3;

struct Asker<'a> {
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
}

impl Asker<'_> {
    /// One line of input without its line ending; `None` at the end.
    fn line(&mut self, what: &str) -> Result<Option<String>> {
        let mut s = String::new();
        let n = self.input.read_line(&mut s).with_context(|| format!("reading the answer to: {what}"))?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(s.trim_end_matches(['\n', '\r']).trim().to_string()))
    }

    fn say(&mut self, text: &str) -> Result<()> {
        writeln!(self.output, "{text}").context("writing the question")
    }

    /// Asks `question` (showing `default`), returning the first answer
    /// `check` takes; an empty answer is the default. After [`TRIES`]
    /// refused answers, or at the end of the input, an error.
    fn ask<T>(
        &mut self,
        question: &str,
        default: Option<&str>,
        check: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        for _ in 0..TRIES {
            match default {
                Some(d) => write!(self.output, "{question} [{d}]: "),
                None => write!(self.output, "{question}: "),
            }
            .and_then(|_| self.output.flush())
            .context("writing the question")?;
            let Some(a) = self.line(question)? else {
                bail!("the input ended before the question {question:?} was answered");
            };
            let a = if a.is_empty() { default.unwrap_or("").to_string() } else { a };
            match check(&a) {
                Ok(v) => return Ok(v),
                Err(why) => self.say(&format!("  refused: {why}"))?,
            }
        }
        bail!("no acceptable answer to {question:?} after {TRIES} tries")
    }

    fn yes_no(&mut self, question: &str, default: bool) -> Result<bool> {
        let shown = if default { format!("{question}? [Y/n]") } else { format!("{question}? [y/N]") };
        self.ask(&shown, None, |a| match a.to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "y" | "yes" => Ok(true),
            "n" | "no" => Ok(false),
            _ => Err("answer y or n".into()),
        })
    }
}

/// Asks for the settings of a new answer file on `output`, reading the
/// answers line by line from `input` (a terminal or a pipe). A refused
/// answer is asked again with the reason, up to three times.
pub fn interactive(input: &mut dyn BufRead, output: &mut dyn Write) -> Result<Answer> {
    let mut q = Asker { input, output };
    q.say("slipway answer file: press Enter to take the [default].")?;
    q.say("Host names are patterns: literal letters, digits and '-' with tokens {serial}, {mac}, {uuid}, {seq}, {rand:N} (N random letters and digits) and {fact:NAME}.")?;
    let hostname = q.ask("Host name pattern", Some(DEFAULT_NAME), |a| Pattern::parse(a).map(|_| a.to_string()))?;
    let domain = q.ask("DNS domain (empty for none)", None, |a| {
        if a.is_empty() {
            Ok(None)
        } else if valid_domain(a) {
            Ok(Some(a.to_string()))
        } else {
            Err(format!("{a:?} is not a DNS domain; use dot-separated labels like example.com"))
        }
    })?;
    let user = q.ask("User name", Some(DEFAULT_USER), |a| {
        if valid_account_name(a) {
            Ok(a.to_string())
        } else {
            Err(format!("{a:?} is not a valid user name: start with a lower-case letter or '_', then letters, digits, '_' or '-', at most 32"))
        }
    })?;
    let mut password_hash = None;
    let mut ssh_keys = Vec::new();
    for round in 0..TRIES {
        q.say("A password is given as a hash: paste one made with `mkpasswd -m yescrypt` (package whois), or leave it empty to lock the password and log in with SSH keys. Plain text is refused.")?;
        password_hash = q.ask("Password hash", None, |a| {
            if a.is_empty() {
                Ok(None)
            } else {
                check_crypt_hash(a).map(|_| Some(a.to_string()))
            }
        })?;
        q.say("SSH public keys, one line of a .pub file each; an empty line ends the list.")?;
        ssh_keys.clear();
        loop {
            let n = ssh_keys.len() + 1;
            let key = q.ask(&format!("SSH key {n}"), None, |a| {
                if a.is_empty() {
                    return Ok(None);
                }
                let probe = Answer {
                    version: FORMAT_VERSION,
                    users: vec![User {
                        name: "x".into(),
                        ssh_authorized_keys: vec![a.to_string()],
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                problem_at(&probe, "users[0].ssh_authorized_keys").map(|_| Some(a.to_string()))
            })?;
            match key {
                Some(k) => ssh_keys.push(k),
                None => break,
            }
        }
        if password_hash.is_some() || !ssh_keys.is_empty() {
            break;
        }
        q.say(&format!("  refused: {user} would have no way to log in; give a password hash or at least one SSH key"))?;
        if round + 1 == TRIES {
            bail!("no password hash and no SSH key for {user} after {TRIES} tries");
        }
    }
    let sudo = q.yes_no(&format!("May {user} use sudo"), true)?;
    let timezone = q.ask("Time zone", Some("UTC"), |a| {
        let probe = Answer {
            version: FORMAT_VERSION,
            time: Some(Time { timezone: Some(a.to_string()), ..Default::default() }),
            ..Default::default()
        };
        problem_at(&probe, "time.timezone").map(|_| a.to_string())
    })?;
    let network_dhcp = q.yes_no("Configure every Ethernet interface with DHCP", true)?;
    let o = NewOptions {
        hostname: Some(hostname),
        user: Some(user),
        password_hash,
        ssh_keys,
        timezone: Some(timezone),
        sudo,
        domain,
        network_dhcp,
    };
    from_options(&o)
}

/// The answer file as TOML, with a header naming the format; it parses back
/// to the same answer.
pub fn to_toml(a: &Answer) -> String {
    let body = toml::to_string_pretty(a).unwrap_or_else(|e| format!("# cannot be written as TOML: {e}\n"));
    format!("# slipway answer file, format {FORMAT_VERSION} — see docs/answer-format.md\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::parse;

    const HASH: &str = "$y$j9T$abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDE";
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk2 admin@example";

    #[test]
    fn flags_make_a_valid_answer() {
        let o = NewOptions {
            hostname: Some("web-{serial}".into()),
            user: Some("ops".into()),
            password_hash: Some(HASH.into()),
            ssh_keys: vec![KEY.into()],
            timezone: Some("Europe/Berlin".into()),
            domain: Some("example.com".into()),
            network_dhcp: true,
            ..Default::default()
        };
        let a = from_options(&o).unwrap();
        assert_eq!(a.users[0].sudo, Some(Sudo::Password));
        assert!(!a.users[0].lock_password);
        assert_eq!(a.network.as_ref().unwrap().interfaces[0].matches.name.as_deref(), Some("e*"));
        let a =
            from_options(&NewOptions { user: Some("ops".into()), ssh_keys: vec![KEY.into()], ..Default::default() })
                .unwrap();
        assert_eq!(a.users[0].sudo, Some(Sudo::Nopasswd));
        assert!(a.users[0].lock_password);
        assert_eq!(a.computer.name.as_deref(), Some(DEFAULT_NAME));
    }

    #[test]
    fn bad_flags_are_named_with_a_fix() {
        let e = |o: NewOptions| format!("{:#}", from_options(&o).unwrap_err());
        let base = NewOptions { user: Some("ops".into()), ssh_keys: vec![KEY.into()], ..Default::default() };
        let m = e(NewOptions { password_hash: Some("hunter2".into()), ..base.clone() });
        assert!(m.starts_with("--password-hash: ") && m.contains("mkpasswd"), "{m}");
        assert!(!m.contains("hunter2"));
        assert!(e(NewOptions { hostname: Some("a_b".into()), ..base.clone() }).starts_with("--hostname: "));
        assert!(e(NewOptions { timezone: Some("../x".into()), ..base.clone() }).starts_with("--timezone: "));
        assert!(e(NewOptions { domain: Some("-x".into()), ..base.clone() }).starts_with("--domain: "));
        assert!(e(NewOptions { user: Some("Root".into()), ..base.clone() }).starts_with("--user: "));
        assert!(e(NewOptions { ssh_keys: vec!["nonsense".into()], ..base.clone() }).starts_with("--ssh-key: "));
        assert!(e(NewOptions { user: None, ..base.clone() }).contains("add --user"));
        assert!(e(NewOptions { ssh_keys: vec![], ..base }).contains("no way to log in"));
    }

    fn run(input: &str) -> (Result<Answer>, String) {
        let mut out = Vec::new();
        let r = interactive(&mut input.as_bytes(), &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn interactive_defaults_with_one_key() {
        // host, domain, user, hash, key 1, end of keys, sudo, tz, dhcp
        let (a, out) = run(&format!("\n\n\n\n{KEY}\n\n\n\n\n"));
        let a = a.unwrap();
        assert_eq!(a.computer.name.as_deref(), Some(DEFAULT_NAME));
        assert_eq!(a.computer.domain, None);
        assert_eq!(a.users[0].name, "admin");
        assert_eq!(a.users[0].ssh_authorized_keys, [KEY]);
        assert_eq!(a.users[0].sudo, Some(Sudo::Nopasswd));
        assert_eq!(a.time.as_ref().unwrap().timezone.as_deref(), Some("UTC"));
        assert_eq!(a.network.as_ref().unwrap().interfaces.len(), 1);
        assert!(out.contains("{rand:N}"), "{out}");
        assert!(out.contains("mkpasswd -m yescrypt"), "{out}");
    }

    #[test]
    fn interactive_reasks_with_the_reason() {
        let input = format!(
            "web_1\nweb-{{serial}}\nexample.com\nops\nhunter2\n{HASH}\n\nmaybe\nn\nMars/../x\nEurope/Berlin\nno\n"
        );
        let (a, out) = run(&input);
        let a = a.unwrap();
        assert_eq!(a.computer.name.as_deref(), Some("web-{serial}"));
        assert_eq!(a.computer.domain.as_deref(), Some("example.com"));
        assert_eq!(a.users[0].password_hash, Some(HashOrRef::Hash(HASH.into())));
        assert_eq!(a.users[0].sudo, None);
        assert_eq!(a.network, None);
        assert_eq!(out.matches("refused:").count(), 4, "{out}");
        assert!(out.contains("plain-text password"), "{out}");
        assert!(!out.contains("hunter2"), "the refused password is echoed: {out}");
    }

    #[test]
    fn interactive_gives_up_after_three_tries_or_at_the_end() {
        let (r, _) = run("a_\nb_\nc_\n");
        assert!(format!("{:#}", r.unwrap_err()).contains("after 3 tries"));
        let (r, _) = run("\n\n");
        assert!(format!("{:#}", r.unwrap_err()).contains("input ended"));
        // No hash and no key three times over.
        let (r, out) = run("\n\n\n\n\n\n\n\n\n");
        assert!(format!("{:#}", r.unwrap_err()).contains("no password hash and no SSH key"));
        assert!(out.contains("no way to log in"));
    }

    #[test]
    fn toml_parses_back_to_the_same_answer() {
        let o = NewOptions {
            user: Some("ops".into()),
            password_hash: Some(HASH.into()),
            ssh_keys: vec![KEY.into()],
            timezone: Some("Europe/Berlin".into()),
            domain: Some("example.com".into()),
            network_dhcp: true,
            ..Default::default()
        };
        let a = from_options(&o).unwrap();
        let text = to_toml(&a);
        assert!(text.starts_with("# slipway answer file, format 1 — see docs/answer-format.md\n"), "{text}");
        assert_eq!(parse(&text, "new.toml").unwrap(), a);
    }
}
