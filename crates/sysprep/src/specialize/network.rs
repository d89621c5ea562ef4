//! The answer file's interfaces, rendered for the network stack the root
//! uses: systemd-networkd `.network` files, NetworkManager keyfiles, or an
//! ifupdown `interfaces.d` file.
//!
//! Every file slipway writes has `slipway` in its name, and a run first
//! removes those a previous run left (of every stack), so specialize can run
//! again with a changed answer file.
//!
//! Matching an interface by MAC address uses the NIC's *permanent* address
//! where the stack can (networkd `PermanentMACAddress=`, NetworkManager
//! `ethernet.mac-address`): a bond, bridge or VLAN on top of the NIC shares
//! its current MAC address, and would otherwise match too (netplan moved to
//! `PermanentMACAddress=` for the same reason). This needs systemd 245 or
//! later for networkd.
//!
//! ifupdown (0.8) has no "match by MAC" that works for hotplugged
//! interfaces, so a MAC match there is done in two parts, when the root has
//! udev:
//! - a systemd `.link` file (`etc/systemd/network/10-slipway-NN.link`,
//!   read by udev's `net_setup_link`) names the NIC with that permanent MAC
//!   address `slipN` (N being the interface's index in the answer file);
//! - `interfaces.d/50-slipway` configures `slipN` like any named interface
//!   (`allow-hotplug slipN`).
//!
//! Without udev, and for a glob name (`en*`), the ifupdown pattern syntax
//! of interfaces(5) is used instead: `auto mac/ADDR=slipway-NN` or
//! `auto /GLOB=slipway-NN`, with `iface slipway-NN …` stanzas for the
//! logical interface. Patterns are expanded by `ifup -a` (networking.service
//! at boot); they are *not* honoured for `allow-hotplug` (ifupdown's udev
//! hook asks `ifquery --allow hotplug -l IFACE`, which does not expand
//! them), hence `auto`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{bail, Context, Result};

use crate::answer::{parse_cidr, AddressMode, Interface, Renderer};
use crate::rootdir::{Found, Perm, RootDir};

/// A network stack slipway can render for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Stack {
    Networkd,
    NetworkManager,
    Ifupdown,
}

impl Stack {
    fn describe(self) -> &'static str {
        match self {
            Stack::Networkd => "systemd-networkd",
            Stack::NetworkManager => "NetworkManager",
            Stack::Ifupdown => "ifupdown",
        }
    }

    /// The stacks in the order `renderer = "auto"` tries them.
    pub const DETECT_ORDER: [Stack; 3] = [Stack::NetworkManager, Stack::Ifupdown, Stack::Networkd];

    /// The stack an explicit renderer names (`None` for auto and none).
    pub fn of(renderer: Renderer) -> Option<Stack> {
        match renderer {
            Renderer::Networkd => Some(Stack::Networkd),
            Renderer::NetworkManager => Some(Stack::NetworkManager),
            Renderer::Ifupdown => Some(Stack::Ifupdown),
            Renderer::Auto | Renderer::None => None,
        }
    }

    /// Files that show the stack is installed (merged-/usr and classic
    /// spellings); the first is the one to name in messages.
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            Stack::Networkd => &["usr/lib/systemd/systemd-networkd", "lib/systemd/systemd-networkd"],
            Stack::NetworkManager => &["usr/sbin/NetworkManager", "sbin/NetworkManager"],
            Stack::Ifupdown => &["usr/sbin/ifup", "sbin/ifup"],
        }
    }
}

/// What [`render`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NetworkReport {
    pub stack: Option<Stack>,
    /// Files written (absolute inside the root).
    pub written: Vec<String>,
    /// systemd units enabled.
    pub enabled: Vec<String>,
    /// Files a previous run left that this one removed.
    pub removed: Vec<String>,
}

fn present(root: &RootDir, rels: &[&str]) -> Result<bool> {
    root.present(rels)
}

/// The stack the root uses: NetworkManager, then ifupdown, then
/// systemd-networkd; `None` when it has none of them.
pub fn detect(root: &RootDir) -> Result<Option<Stack>> {
    for s in Stack::DETECT_ORDER {
        if present(root, s.programs())? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// The stack to render for: the one asked for (which must be installed in
/// the root), the detected one for `auto`, or `None` for `none`.
pub fn choose(root: &RootDir, renderer: Renderer) -> Result<Option<Stack>> {
    let want = match renderer {
        Renderer::None => return Ok(None),
        Renderer::Auto => {
            return match detect(root)? {
                Some(s) => Ok(Some(s)),
                None => bail!(
                    "no network stack found in {} (none of NetworkManager, ifupdown, systemd-networkd); \
                     set network.renderer = \"none\" or install systemd-networkd/NetworkManager/ifupdown in the image",
                    root.path().display()
                ),
            };
        }
        explicit => Stack::of(explicit).expect("auto and none are handled above"),
    };
    if !present(root, want.programs())? {
        bail!(
            "network.renderer asks for {}, but the root does not have it (no /{}); \
             install it in the image, or set network.renderer = \"auto\"",
            want.describe(),
            want.programs()[0]
        );
    }
    Ok(Some(want))
}

/// How one interface is matched.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// Lower-case MAC address.
    Mac(String),
    Name(String),
    Glob(String),
}

/// One interface, checked: its matcher and its addresses split by family.
struct Iface<'a> {
    index: usize,
    target: Target,
    ifc: &'a Interface,
    v4: Vec<&'a str>,
    v6: Vec<&'a str>,
    gateway: Option<IpAddr>,
}

impl Iface<'_> {
    /// `NN`: the index with two digits.
    fn nn(&self) -> String {
        format!("{:02}", self.index)
    }

    fn dhcp(&self) -> bool {
        self.ifc.mode == AddressMode::Dhcp
    }
}

fn check(index: usize, ifc: &Interface) -> Result<Iface<'_>> {
    let target = match (&ifc.matches.mac, &ifc.matches.name) {
        (Some(m), None) => {
            let m = m.to_ascii_lowercase();
            if !crate::answer::valid_mac(&m) {
                bail!("{m:?} is not a MAC address");
            }
            Target::Mac(m)
        }
        (None, Some(n)) => {
            if n.is_empty()
                || n.len() > 15
                || n.chars().any(|c| c.is_whitespace() || c.is_control() || "/=;:#\\\"'".contains(c))
            {
                bail!("{n:?} is not an interface name or pattern");
            }
            if n.contains(['*', '?', '[']) {
                Target::Glob(n.clone())
            } else {
                Target::Name(n.clone())
            }
        }
        _ => bail!("an interface must be matched by mac or by name (one of them)"),
    };
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for a in &ifc.addresses {
        match parse_cidr(a) {
            Some((IpAddr::V4(_), _)) => v4.push(a.as_str()),
            Some((IpAddr::V6(_), _)) => v6.push(a.as_str()),
            None => bail!("{a:?} is not an address with a prefix length"),
        }
    }
    let gateway = match &ifc.gateway {
        None => None,
        Some(g) => Some(g.parse::<IpAddr>().ok().with_context(|| format!("gateway {g:?} is not an IP address"))?),
    };
    if ifc.mode == AddressMode::Dhcp && (!ifc.addresses.is_empty() || gateway.is_some()) {
        bail!("addresses or a gateway with mode = \"dhcp\"; set mode = \"static\"");
    }
    if ifc.mode == AddressMode::Static && ifc.addresses.is_empty() {
        bail!("static mode without addresses");
    }
    match gateway {
        Some(IpAddr::V4(g)) if v4.is_empty() => bail!("gateway {g} is IPv4, but no IPv4 address is given"),
        Some(IpAddr::V6(g)) if v6.is_empty() => bail!("gateway {g} is IPv6, but no IPv6 address is given"),
        _ => {}
    }
    for d in &ifc.dns {
        d.parse::<IpAddr>().ok().with_context(|| format!("DNS server {d:?} is not an IP address"))?;
    }
    for s in &ifc.search {
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ';') {
            bail!("search domain {s:?} is not a domain");
        }
    }
    Ok(Iface { index, target, ifc, v4, v6, gateway })
}

const NETWORKD_DIR: &str = "etc/systemd/network";
const NM_DIR: &str = "etc/NetworkManager/system-connections";
const IFUPDOWN_FILE: &str = "etc/network/interfaces.d/50-slipway";

/// Whether `name` in `dir` is a file slipway writes.
fn ours(dir: &str, name: &str) -> bool {
    let between = |pre: &str, suf: &str| {
        name.strip_prefix(pre)
            .and_then(|r| r.strip_suffix(suf))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match dir {
        NETWORKD_DIR => between("50-slipway-", ".network") || between("10-slipway-", ".link"),
        NM_DIR => between("slipway-", ".nmconnection"),
        _ => false,
    }
}

/// Writes the interfaces for `stack`, removing what an earlier run wrote.
pub fn render(root: &RootDir, stack: Stack, interfaces: &[Interface]) -> Result<NetworkReport> {
    let ifaces = interfaces
        .iter()
        .enumerate()
        .map(|(i, f)| check(i, f).with_context(|| format!("network interface {i}")))
        .collect::<Result<Vec<_>>>()?;
    let mut files: Vec<(String, String, Perm)> = Vec::new();
    let mut report = NetworkReport { stack: Some(stack), ..Default::default() };
    match stack {
        Stack::Networkd => {
            for f in &ifaces {
                files.push((
                    format!("{NETWORKD_DIR}/50-slipway-{}.network", f.nn()),
                    networkd_file(f),
                    Perm::root(0o644),
                ));
            }
        }
        Stack::NetworkManager => {
            for f in &ifaces {
                let text = keyfile(f).with_context(|| format!("network interface {}", f.index))?;
                files.push((format!("{NM_DIR}/slipway-{}.nmconnection", f.nn()), text, Perm::root(0o600)));
            }
        }
        Stack::Ifupdown => {
            let udev = present(root, &["usr/lib/systemd/systemd-udevd", "lib/systemd/systemd-udevd"])?;
            let (text, links) = interfaces_file(&ifaces, udev);
            for (rel, link) in links {
                files.push((rel, link, Perm::root(0o644)));
            }
            if !ifaces.is_empty() {
                files.push((IFUPDOWN_FILE.to_string(), text, Perm::root(0o644)));
            }
        }
    }

    // What an earlier run left and this one does not write again.
    let keep: BTreeSet<&str> = files.iter().map(|(rel, _, _)| rel.as_str()).collect();
    for dir in [NETWORKD_DIR, NM_DIR] {
        for name in root.list_utf8(dir)? {
            let rel = format!("{dir}/{name}");
            if ours(dir, &name) && !keep.contains(rel.as_str()) {
                root.remove(&rel)?;
                report.removed.push(format!("/{rel}"));
            }
        }
    }
    if !keep.contains(IFUPDOWN_FILE) && root.exists(IFUPDOWN_FILE)? {
        root.remove(IFUPDOWN_FILE)?;
        report.removed.push(format!("/{IFUPDOWN_FILE}"));
    }

    for (rel, text, perm) in &files {
        root.write(rel, text.as_bytes(), *perm).with_context(|| format!("writing {}", root.display(rel).display()))?;
        report.written.push(format!("/{rel}"));
    }

    let static_dns = ifaces.iter().any(|f| !f.ifc.dns.is_empty());
    let resolved = present(root, &["usr/lib/systemd/systemd-resolved", "lib/systemd/systemd-resolved"])?;
    match stack {
        Stack::Networkd => {
            let mut seen = BTreeSet::new();
            if !enable_unit(root, "systemd-networkd.service", Some("multi-user.target"), &mut seen, &mut report)? {
                bail!(
                    "systemd-networkd.service is not in {} or /lib/systemd/system of the root; is systemd-networkd installed?",
                    root.display("usr/lib/systemd/system").display()
                );
            }
            enable_unit(root, "systemd-networkd.socket", Some("sockets.target"), &mut seen, &mut report)?;
            enable_unit(
                root,
                "systemd-networkd-wait-online.service",
                Some("network-online.target"),
                &mut seen,
                &mut report,
            )?;
            // networkd hands DNS servers to systemd-resolved only.
            if static_dns && !resolved {
                write_resolv_conf(root, &ifaces, &mut report)?;
            }
        }
        Stack::Ifupdown => {
            if !ifaces.is_empty() {
                source_interfaces_d(root, &mut report)?;
            }
            // dns-nameservers is read by resolvconf (or systemd-resolved's
            // if-up hook); without either it does nothing.
            let resolvconf = present(root, &["usr/sbin/resolvconf", "sbin/resolvconf"])?;
            if static_dns && !resolved && !resolvconf {
                write_resolv_conf(root, &ifaces, &mut report)?;
            }
        }
        // NetworkManager writes resolv.conf itself.
        Stack::NetworkManager => {}
    }
    Ok(report)
}

const HEADER: &str = "# Written by slipway specialize from the answer file; a new run replaces it.\n";

/// A systemd-networkd `.network` file (systemd.network(5)).
fn networkd_file(f: &Iface) -> String {
    let mut s = format!("{HEADER}# Interface {} of the answer file.\n\n[Match]\n", f.index);
    match &f.target {
        Target::Mac(m) => s.push_str(&format!("PermanentMACAddress={m}\n")),
        Target::Name(n) | Target::Glob(n) => s.push_str(&format!("Name={n}\n")),
    }
    if let Some(mtu) = f.ifc.mtu {
        s.push_str(&format!("\n[Link]\nMTUBytes={mtu}\n"));
    }
    s.push_str("\n[Network]\n");
    if f.dhcp() {
        s.push_str("DHCP=yes\n");
    }
    for a in &f.ifc.addresses {
        s.push_str(&format!("Address={a}\n"));
    }
    if let Some(g) = f.gateway {
        s.push_str(&format!("Gateway={g}\n"));
    }
    for d in &f.ifc.dns {
        s.push_str(&format!("DNS={d}\n"));
    }
    if !f.ifc.search.is_empty() {
        s.push_str(&format!("Domains={}\n", f.ifc.search.join(" ")));
    }
    s
}

/// A UUID shaped like a random (version 4) one, made from `seed`, so the
/// same answer file gives the same connection UUID.
fn uuid_from(seed: &str) -> String {
    let h = blake3::hash(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = slipway_fstree::hex::encode(&b);
    format!("{}-{}-{}-{}-{}", &x[0..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32])
}

/// A NetworkManager keyfile (nm-settings-keyfile(5)), sections in the
/// order NetworkManager itself writes them.
fn keyfile(f: &Iface) -> Result<String> {
    let id = format!("slipway-{}", f.nn());
    let matcher = match &f.target {
        Target::Mac(m) => format!("mac={m}"),
        Target::Name(n) | Target::Glob(n) => format!("name={n}"),
    };
    let mut s = format!(
        "{HEADER}\n[connection]\nid={id}\nuuid={}\ntype=ethernet\nautoconnect=true\n",
        uuid_from(&format!("slipway-nm\0{id}\0{matcher}"))
    );
    if let Target::Name(n) = &f.target {
        s.push_str(&format!("interface-name={n}\n"));
    }
    let mut eth = String::new();
    if let Target::Mac(m) = &f.target {
        eth.push_str(&format!("mac-address={m}\n"));
    }
    if let Some(mtu) = f.ifc.mtu {
        eth.push_str(&format!("mtu={mtu}\n"));
    }
    if !eth.is_empty() {
        s.push_str(&format!("\n[ethernet]\n{eth}"));
    }
    if let Target::Glob(g) = &f.target {
        s.push_str(&format!("\n[match]\ninterface-name={g};\n"));
    }
    let dns4: Vec<&str> =
        f.ifc.dns.iter().filter(|d| d.parse::<IpAddr>().is_ok_and(|a| a.is_ipv4())).map(String::as_str).collect();
    let dns6: Vec<&str> =
        f.ifc.dns.iter().filter(|d| d.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6())).map(String::as_str).collect();
    let list = |v: &[&str]| v.iter().map(|x| format!("{x};")).collect::<String>();
    let search: Vec<&str> = f.ifc.search.iter().map(String::as_str).collect();
    let v4_on = f.dhcp() || !f.v4.is_empty();
    if !v4_on && !dns4.is_empty() {
        bail!(
            "IPv4 DNS servers on an interface with IPv6 addresses only, which NetworkManager refuses \
             (ipv4.dns with ipv4.method=disabled); give IPv6 DNS servers or an IPv4 address"
        );
    }
    for (family, addrs, dns, is_v4) in [("ipv4", &f.v4, &dns4, true), ("ipv6", &f.v6, &dns6, false)] {
        s.push_str(&format!("\n[{family}]\n"));
        let method = match (f.dhcp(), addrs.is_empty(), is_v4) {
            (true, _, _) => "auto",
            (false, false, _) => "manual",
            // Static with addresses of the other family only.
            (false, true, true) => "disabled",
            (false, true, false) => "auto",
        };
        for (n, a) in addrs.iter().enumerate() {
            let gw = match f.gateway {
                Some(g) if n == 0 && g.is_ipv4() == is_v4 => format!(",{g}"),
                _ => String::new(),
            };
            s.push_str(&format!("address{}={a}{gw}\n", n + 1));
        }
        if !dns.is_empty() {
            s.push_str(&format!("dns={}\n", list(dns)));
        }
        // Search domains go with the first family that is on.
        if !search.is_empty() && (is_v4 == v4_on) {
            s.push_str(&format!("dns-search={}\n", list(&search)));
        }
        s.push_str(&format!("method={method}\n"));
    }
    Ok(s)
}

/// The ifupdown file for all interfaces (interfaces(5)) and the `.link`
/// files that name MAC-matched NICs (with udev).
fn interfaces_file(ifaces: &[Iface], udev: bool) -> (String, Vec<(String, String)>) {
    let mut s = String::from(HEADER);
    let mut links = Vec::new();
    for f in ifaces {
        s.push('\n');
        let logical = match &f.target {
            Target::Name(n) => {
                s.push_str(&format!("# Interface {}: {n}.\nallow-hotplug {n}\n", f.index));
                n.clone()
            }
            Target::Mac(m) if udev => {
                let name = format!("slip{}", f.index);
                let rel = format!("{NETWORKD_DIR}/10-slipway-{}.link", f.nn());
                links.push((
                    rel.clone(),
                    format!(
                        "{HEADER}# Names the NIC of interface {} of the answer file for ifupdown (/{IFUPDOWN_FILE}).\n\n\
                         [Match]\nPermanentMACAddress={m}\n\n[Link]\nName={name}\n",
                        f.index
                    ),
                ));
                s.push_str(&format!(
                    "# Interface {}: MAC {m}, named {name} by /{rel}.\nallow-hotplug {name}\n",
                    f.index
                ));
                name
            }
            Target::Mac(m) => {
                let logical = format!("slipway-{}", f.nn());
                s.push_str(&format!("# Interface {}: MAC {m}.\nauto mac/{m}={logical}\n", f.index));
                logical
            }
            Target::Glob(g) => {
                let logical = format!("slipway-{}", f.nn());
                s.push_str(&format!("# Interface {}: names matching {g}.\nauto /{g}={logical}\n", f.index));
                logical
            }
        };
        s.push_str(&stanzas(&logical, f));
    }
    (s, links)
}

/// The `iface` stanzas of one logical interface: one per address (ifupdown
/// takes one address per stanza), the first carrying DNS and MTU.
fn stanzas(logical: &str, f: &Iface) -> String {
    let mut extra = String::new();
    for d in [("dns-nameservers", &f.ifc.dns), ("dns-search", &f.ifc.search)] {
        if !d.1.is_empty() {
            extra.push_str(&format!("    {} {}\n", d.0, d.1.join(" ")));
        }
    }
    if f.dhcp() {
        let mut s = format!("iface {logical} inet dhcp\n{extra}");
        if let Some(mtu) = f.ifc.mtu {
            // The dhcp method has no mtu option.
            s.push_str(&format!("    pre-up ip link set dev \"$IFACE\" mtu {mtu}\n"));
        }
        return s;
    }
    if let Some(mtu) = f.ifc.mtu {
        extra.push_str(&format!("    mtu {mtu}\n"));
    }
    let mut out = Vec::new();
    for (family, addrs) in [("inet", &f.v4), ("inet6", &f.v6)] {
        for (n, a) in addrs.iter().enumerate() {
            let mut s = format!("iface {logical} {family} static\n    address {a}\n");
            if n == 0 {
                if let Some(g) = f.gateway.filter(|g| g.is_ipv4() == (family == "inet")) {
                    s.push_str(&format!("    gateway {g}\n"));
                }
            }
            if out.is_empty() {
                s.push_str(&extra);
            }
            out.push(s);
        }
    }
    out.join("\n")
}

/// Makes etc/network/interfaces read interfaces.d (appending a `source`
/// line when it does not already).
fn source_interfaces_d(root: &RootDir, report: &mut NetworkReport) -> Result<()> {
    const REL: &str = "etc/network/interfaces";
    const LINE: &str = "source /etc/network/interfaces.d/*\n";
    let text = match root.read_string(REL)? {
        None => format!(
            "# interfaces(5) file used by ifup(8) and ifdown(8)\n# Written by slipway specialize.\n{LINE}\n\
             auto lo\niface lo inet loopback\n"
        ),
        Some(t) if sources_ours(&t) => return Ok(()),
        Some(mut t) => {
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            t.push_str("\n# Added by slipway specialize.\n");
            t.push_str(LINE);
            t
        }
    };
    root.write_keeping(REL, text.as_bytes(), Perm::root(0o644))?;
    report.written.push(format!("/{REL}"));
    Ok(())
}

/// Whether an interfaces file includes /etc/network/interfaces.d/50-slipway
/// (`source` with a matching pattern, or `source-directory` of that
/// directory; relative paths are under /etc/network).
fn sources_ours(text: &str) -> bool {
    let ours = format!("/{IFUPDOWN_FILE}");
    let abs = |p: &str| if p.starts_with('/') { p.to_string() } else { format!("/etc/network/{p}") };
    text.lines().any(|l| {
        let mut w = l.split_whitespace();
        match (w.next(), w.next()) {
            (Some("source"), Some(p)) => glob_match(abs(p).as_bytes(), ours.as_bytes()),
            (Some(k), Some(d)) if k.starts_with("source-dir") => {
                abs(d).trim_end_matches('/') == "/etc/network/interfaces.d"
            }
            _ => false,
        }
    })
}

/// Shell-style `*` and `?` matching (a `[` class never matches).
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob_match(p, &s[1..])),
        (Some(b'['), _) => false,
        (Some(b'?'), Some(&c)) => c != b'/' && glob_match(&p[1..], &s[1..]),
        (Some(a), Some(b)) => a == b && glob_match(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Writes etc/resolv.conf from the interfaces' DNS servers and search
/// domains (replacing a symlink there).
fn write_resolv_conf(root: &RootDir, ifaces: &[Iface], report: &mut NetworkReport) -> Result<()> {
    let mut servers: Vec<&str> = Vec::new();
    let mut search: Vec<&str> = Vec::new();
    for f in ifaces {
        for d in &f.ifc.dns {
            if !servers.contains(&d.as_str()) {
                servers.push(d);
            }
        }
        for d in &f.ifc.search {
            if !search.contains(&d.as_str()) {
                search.push(d);
            }
        }
    }
    let mut s = String::from(HEADER);
    for d in servers {
        s.push_str(&format!("nameserver {d}\n"));
    }
    if !search.is_empty() {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    root.write("etc/resolv.conf", s.as_bytes(), Perm::root(0o644))?;
    report.written.push("/etc/resolv.conf".into());
    Ok(())
}

/// A unit's `[Install]` section.
#[derive(Debug, Default, PartialEq, Eq)]
struct Install {
    wanted_by: Vec<String>,
    required_by: Vec<String>,
    upheld_by: Vec<String>,
    alias: Vec<String>,
    also: Vec<String>,
}

fn parse_install(unit: &str) -> Install {
    let mut inst = Install::default();
    let mut in_install = false;
    for l in unit.lines().map(str::trim) {
        if l.starts_with('[') {
            in_install = l == "[Install]";
            continue;
        }
        if !in_install || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else { continue };
        let list = match k.trim() {
            "WantedBy" => &mut inst.wanted_by,
            "RequiredBy" => &mut inst.required_by,
            "UpheldBy" => &mut inst.upheld_by,
            "Alias" => &mut inst.alias,
            "Also" => &mut inst.also,
            _ => continue,
        };
        // Names with specifiers (%i, …) are left to systemctl.
        list.extend(v.split_whitespace().filter(|n| !n.contains(['%', '/'])).map(str::to_string));
    }
    inst
}

/// Where a unit's file is in the root: (its path in the root, the path
/// the enablement symlinks point to).
fn find_unit(root: &RootDir, name: &str) -> Result<Option<(String, String)>> {
    for dir in ["usr/lib/systemd/system", "lib/systemd/system"] {
        let rel = format!("{dir}/{name}");
        if present(root, &[&rel])? {
            return Ok(Some((rel.clone(), format!("/{rel}"))));
        }
    }
    Ok(None)
}

/// Enables a unit as `systemctl enable` would from its `[Install]`
/// section (WantedBy, RequiredBy, UpheldBy, Alias, then Also), or into
/// `fallback`'s wants when the section names no target. False when the
/// unit is not in the root.
fn enable_unit(
    root: &RootDir,
    name: &str,
    fallback: Option<&str>,
    seen: &mut BTreeSet<String>,
    report: &mut NetworkReport,
) -> Result<bool> {
    let Some((rel, target)) = find_unit(root, name)? else { return Ok(false) };
    if !seen.insert(name.to_string()) {
        return Ok(true);
    }
    let text = match root.inspect(&rel)? {
        Found::File { .. } => root.read_string(&rel)?.unwrap_or_default(),
        _ => String::new(),
    };
    let inst = parse_install(&text);
    let mut links = Vec::new();
    for (list, dir) in [(&inst.wanted_by, "wants"), (&inst.required_by, "requires"), (&inst.upheld_by, "upholds")] {
        links.extend(list.iter().map(|t| format!("etc/systemd/system/{t}.{dir}/{name}")));
    }
    if links.is_empty() {
        if let Some(t) = fallback {
            links.push(format!("etc/systemd/system/{t}.wants/{name}"));
        }
    }
    links.extend(inst.alias.iter().map(|a| format!("etc/systemd/system/{a}")));
    for l in &links {
        root.symlink(l, &target).with_context(|| format!("enabling {name}"))?;
    }
    report.enabled.push(name.to_string());
    for also in &inst.also {
        enable_unit(root, also, None, seen, report)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;
    use crate::answer::InterfaceMatch;

    fn put(t: &Path, rel: &str, data: &str) {
        let p = t.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn read(t: &Path, rel: &str) -> String {
        std::fs::read_to_string(t.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// A root with Debian 12's merged /usr (`lib -> usr/lib`, `sbin ->
    /// usr/sbin`) and these files.
    fn merged_usr_root(files: &[&str]) -> (tempfile::TempDir, RootDir) {
        let t = tempfile::tempdir().unwrap();
        for d in ["usr/lib", "usr/sbin", "usr/bin"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for (l, to) in [("lib", "usr/lib"), ("sbin", "usr/sbin"), ("bin", "usr/bin")] {
            std::os::unix::fs::symlink(to, t.path().join(l)).unwrap();
        }
        for f in files {
            put(t.path(), f, "");
        }
        let r = RootDir::open(t.path()).unwrap();
        (t, r)
    }

    /// A classic root (no merged /usr) with these files.
    fn plain_root(files: &[&str]) -> (tempfile::TempDir, RootDir) {
        let t = tempfile::tempdir().unwrap();
        for f in files {
            put(t.path(), f, "");
        }
        let r = RootDir::open(t.path()).unwrap();
        (t, r)
    }

    fn by_mac(mac: &str) -> InterfaceMatch {
        InterfaceMatch { mac: Some(mac.into()), name: None }
    }

    fn by_name(name: &str) -> InterfaceMatch {
        InterfaceMatch { mac: None, name: Some(name.into()) }
    }

    /// DHCP by MAC with an MTU; static by glob with both families, DNS and
    /// search; DHCP by exact name.
    fn interfaces() -> Vec<Interface> {
        vec![
            Interface { matches: by_mac("52:54:00:AB:cd:01"), mtu: Some(9000), ..Default::default() },
            Interface {
                matches: by_name("en*"),
                mode: AddressMode::Static,
                addresses: vec!["192.0.2.10/24".into(), "2001:db8::10/64".into(), "198.51.100.7/25".into()],
                gateway: Some("192.0.2.1".into()),
                dns: vec!["192.0.2.53".into(), "2001:db8::53".into()],
                search: vec!["example.com".into(), "lab.example.com".into()],
                ..Default::default()
            },
            Interface { matches: by_name("eth1"), ..Default::default() },
        ]
    }

    #[test]
    fn detect_finds_each_stack_on_merged_and_classic_roots() {
        let (_t, r) = plain_root(&[]);
        assert_eq!(detect(&r).unwrap(), None);
        let (_t, r) = merged_usr_root(&["usr/lib/systemd/systemd-networkd"]);
        assert_eq!(detect(&r).unwrap(), Some(Stack::Networkd));
        let (_t, r) = plain_root(&["lib/systemd/systemd-networkd"]);
        assert_eq!(detect(&r).unwrap(), Some(Stack::Networkd));
        let (_t, r) = merged_usr_root(&["usr/sbin/ifup", "usr/lib/systemd/systemd-networkd"]);
        assert_eq!(detect(&r).unwrap(), Some(Stack::Ifupdown));
        let (_t, r) = plain_root(&["sbin/ifup"]);
        assert_eq!(detect(&r).unwrap(), Some(Stack::Ifupdown));
        let (_t, r) =
            merged_usr_root(&["usr/sbin/NetworkManager", "usr/sbin/ifup", "usr/lib/systemd/systemd-networkd"]);
        assert_eq!(detect(&r).unwrap(), Some(Stack::NetworkManager));
    }

    #[test]
    fn choose_checks_the_stack_is_installed() {
        let (_t, r) = merged_usr_root(&[]);
        let e = choose(&r, Renderer::Auto).unwrap_err();
        assert!(format!("{e:#}").contains("set network.renderer = \"none\""), "{e:#}");
        let e = choose(&r, Renderer::NetworkManager).unwrap_err();
        assert!(format!("{e:#}").contains("does not have it"), "{e:#}");
        assert_eq!(choose(&r, Renderer::None).unwrap(), None);
        let (_t, r) = merged_usr_root(&["usr/lib/systemd/systemd-networkd", "usr/sbin/ifup"]);
        assert_eq!(choose(&r, Renderer::Auto).unwrap(), Some(Stack::Ifupdown));
        assert_eq!(choose(&r, Renderer::Networkd).unwrap(), Some(Stack::Networkd));
    }

    const NETWORKD_SERVICE: &str = "[Unit]\nDescription=Network Configuration\n\n[Service]\nType=notify\n\n\
        [Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n\
        Also=systemd-network-generator.service\nAlso=systemd-networkd-wait-online.service\n";

    fn networkd_root() -> (tempfile::TempDir, RootDir) {
        let (t, r) = merged_usr_root(&["usr/lib/systemd/systemd-networkd"]);
        let p = t.path();
        put(p, "usr/lib/systemd/system/systemd-networkd.service", NETWORKD_SERVICE);
        put(p, "usr/lib/systemd/system/systemd-networkd.socket", "[Socket]\n\n[Install]\nWantedBy=sockets.target\n");
        put(
            p,
            "usr/lib/systemd/system/systemd-networkd-wait-online.service",
            "[Install]\nWantedBy=network-online.target\n",
        );
        put(p, "usr/lib/systemd/system/systemd-network-generator.service", "[Install]\nWantedBy=sysinit.target\n");
        std::fs::create_dir_all(p.join("run/systemd/resolve")).unwrap();
        std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", p.join("etc/resolv.conf"))
            .unwrap_or_else(|_| {
                std::fs::create_dir_all(p.join("etc")).unwrap();
                std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", p.join("etc/resolv.conf"))
                    .unwrap();
            });
        (t, r)
    }

    #[test]
    fn networkd_files_units_and_resolv_conf() {
        let (t, r) = networkd_root();
        let p = t.path();
        put(p, "etc/systemd/network/50-slipway-07.network", "stale");
        put(p, "etc/systemd/network/10-slipway-00.link", "stale, from an ifupdown run");
        put(p, "etc/systemd/network/20-wired.network", "[Match]\nName=*\n");
        let rep = render(&r, Stack::Networkd, &interfaces()).unwrap();
        assert_eq!(
            read(p, "etc/systemd/network/50-slipway-00.network"),
            format!("{HEADER}# Interface 0 of the answer file.\n\n[Match]\nPermanentMACAddress=52:54:00:ab:cd:01\n\n[Link]\nMTUBytes=9000\n\n[Network]\nDHCP=yes\n")
        );
        assert_eq!(
            read(p, "etc/systemd/network/50-slipway-01.network"),
            format!(
                "{HEADER}# Interface 1 of the answer file.\n\n[Match]\nName=en*\n\n[Network]\nAddress=192.0.2.10/24\n\
                 Address=2001:db8::10/64\nAddress=198.51.100.7/25\nGateway=192.0.2.1\nDNS=192.0.2.53\nDNS=2001:db8::53\n\
                 Domains=example.com lab.example.com\n"
            )
        );
        assert_eq!(
            read(p, "etc/systemd/network/50-slipway-02.network"),
            format!("{HEADER}# Interface 2 of the answer file.\n\n[Match]\nName=eth1\n\n[Network]\nDHCP=yes\n")
        );
        assert_eq!(
            rep.removed,
            ["/etc/systemd/network/10-slipway-00.link", "/etc/systemd/network/50-slipway-07.network"]
        );
        assert_eq!(read(p, "etc/systemd/network/20-wired.network"), "[Match]\nName=*\n");
        assert_eq!(
            rep.enabled,
            [
                "systemd-networkd.service",
                "systemd-networkd.socket",
                "systemd-network-generator.service",
                "systemd-networkd-wait-online.service"
            ]
        );
        let unit = |n: &str| std::path::PathBuf::from(format!("/usr/lib/systemd/system/{n}"));
        for (link, to) in [
            ("multi-user.target.wants/systemd-networkd.service", "systemd-networkd.service"),
            ("dbus-org.freedesktop.network1.service", "systemd-networkd.service"),
            ("sockets.target.wants/systemd-networkd.socket", "systemd-networkd.socket"),
            (
                "network-online.target.wants/systemd-networkd-wait-online.service",
                "systemd-networkd-wait-online.service",
            ),
            ("sysinit.target.wants/systemd-network-generator.service", "systemd-network-generator.service"),
        ] {
            assert_eq!(std::fs::read_link(p.join("etc/systemd/system").join(link)).unwrap(), unit(to), "{link}");
        }
        // No systemd-resolved in the root: resolv.conf replaces the stub link.
        assert_eq!(
            read(p, "etc/resolv.conf"),
            format!("{HEADER}nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.com lab.example.com\n")
        );
        assert!(!std::fs::symlink_metadata(p.join("etc/resolv.conf")).unwrap().file_type().is_symlink());
        assert!(rep.written.contains(&"/etc/resolv.conf".to_string()));

        // With systemd-resolved, resolv.conf is its business.
        let (t, r) = networkd_root();
        put(t.path(), "usr/lib/systemd/systemd-resolved", "");
        let rep = render(&r, Stack::Networkd, &interfaces()).unwrap();
        assert!(std::fs::symlink_metadata(t.path().join("etc/resolv.conf")).unwrap().file_type().is_symlink());
        assert!(!rep.written.contains(&"/etc/resolv.conf".to_string()));
    }

    #[test]
    fn networkd_units_under_classic_lib_are_linked_there() {
        let (t, r) = plain_root(&["lib/systemd/systemd-networkd", "lib/systemd/systemd-resolved"]);
        put(t.path(), "lib/systemd/system/systemd-networkd.service", "[Install]\nWantedBy=multi-user.target\n");
        let rep = render(&r, Stack::Networkd, &interfaces()[2..]).unwrap();
        assert_eq!(rep.enabled, ["systemd-networkd.service"]);
        assert_eq!(
            std::fs::read_link(t.path().join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service"))
                .unwrap(),
            Path::new("/lib/systemd/system/systemd-networkd.service")
        );
        let (_t, r) = plain_root(&["lib/systemd/systemd-networkd"]);
        let e = render(&r, Stack::Networkd, &interfaces()).unwrap_err();
        assert!(format!("{e:#}").contains("systemd-networkd.service is not in"), "{e:#}");
    }

    fn nm_expected() -> [String; 3] {
        let u = |id: &str, m: &str| uuid_from(&format!("slipway-nm\0{id}\0{m}"));
        [
            format!(
                "{HEADER}\n[connection]\nid=slipway-00\nuuid={}\ntype=ethernet\nautoconnect=true\n\n\
                 [ethernet]\nmac-address=52:54:00:ab:cd:01\nmtu=9000\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n",
                u("slipway-00", "mac=52:54:00:ab:cd:01")
            ),
            format!(
                "{HEADER}\n[connection]\nid=slipway-01\nuuid={}\ntype=ethernet\nautoconnect=true\n\n\
                 [match]\ninterface-name=en*;\n\n\
                 [ipv4]\naddress1=192.0.2.10/24,192.0.2.1\naddress2=198.51.100.7/25\ndns=192.0.2.53;\n\
                 dns-search=example.com;lab.example.com;\nmethod=manual\n\n\
                 [ipv6]\naddress1=2001:db8::10/64\ndns=2001:db8::53;\nmethod=manual\n",
                u("slipway-01", "name=en*")
            ),
            format!(
                "{HEADER}\n[connection]\nid=slipway-02\nuuid={}\ntype=ethernet\nautoconnect=true\ninterface-name=eth1\n\n\
                 [ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n",
                u("slipway-02", "name=eth1")
            ),
        ]
    }

    #[test]
    fn network_manager_keyfiles() {
        let (t, r) = merged_usr_root(&["usr/sbin/NetworkManager"]);
        let p = t.path();
        put(p, "etc/NetworkManager/system-connections/slipway-04.nmconnection", "stale");
        put(p, "etc/NetworkManager/system-connections/Wired connection 1.nmconnection", "keep");
        let rep = render(&r, Stack::NetworkManager, &interfaces()).unwrap();
        for (i, want) in nm_expected().iter().enumerate() {
            let rel = format!("etc/NetworkManager/system-connections/slipway-0{i}.nmconnection");
            assert_eq!(&read(p, &rel), want, "{rel}");
            assert_eq!(std::fs::metadata(p.join(&rel)).unwrap().permissions().mode() & 0o7777, 0o600);
            nmcli_accepts(&p.join(&rel));
        }
        assert_eq!(rep.removed, ["/etc/NetworkManager/system-connections/slipway-04.nmconnection"]);
        assert_eq!(read(p, "etc/NetworkManager/system-connections/Wired connection 1.nmconnection"), "keep");
        assert!(rep.enabled.is_empty());
        assert!(!p.join("etc/resolv.conf").exists());
    }

    #[test]
    fn keyfile_for_ipv6_only_static_disables_ipv4() {
        let ifc = Interface {
            matches: by_name("eth0"),
            mode: AddressMode::Static,
            addresses: vec!["2001:db8::10/64".into()],
            gateway: Some("2001:db8::1".into()),
            search: vec!["example.com".into()],
            ..Default::default()
        };
        let text = keyfile(&check(3, &ifc).unwrap()).unwrap();
        assert!(
            text.ends_with(
                "[ipv4]\nmethod=disabled\n\n[ipv6]\naddress1=2001:db8::10/64,2001:db8::1\ndns-search=example.com;\nmethod=manual\n"
            ),
            "{text}"
        );
        let t = tempfile::tempdir().unwrap();
        put(t.path(), "c.nmconnection", &text);
        nmcli_accepts(&t.path().join("c.nmconnection"));
        // IPv4 DNS servers cannot go with ipv4.method=disabled.
        let ifc = Interface { dns: vec!["192.0.2.53".into()], ..ifc };
        let e = keyfile(&check(3, &ifc).unwrap()).unwrap_err();
        assert!(format!("{e:#}").contains("IPv6 addresses only"), "{e:#}");
    }

    #[test]
    fn connection_uuids_are_stable_and_v4_shaped() {
        let a = uuid_from("slipway-nm\0slipway-00\0name=eth0");
        assert_eq!(a, uuid_from("slipway-nm\0slipway-00\0name=eth0"));
        assert_ne!(a, uuid_from("slipway-nm\0slipway-00\0name=eth1"));
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
    }

    /// NetworkManager's own parser accepts a keyfile (`nmcli --offline`,
    /// NetworkManager 1.40 or later); skipped where nmcli is not installed.
    fn nmcli_accepts(path: &Path) {
        let Ok(file) = std::fs::File::open(path) else { return };
        let out = std::process::Command::new("nmcli")
            .args(["--offline", "connection", "modify", "connection.autoconnect", "yes"])
            .stdin(file)
            .output();
        if let Ok(out) = out {
            assert!(
                out.status.success(),
                "nmcli refused {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn ifupdown_with_udev_names_mac_matched_nics() {
        let (t, r) = merged_usr_root(&["usr/sbin/ifup", "usr/lib/systemd/systemd-udevd"]);
        let p = t.path();
        put(p, "etc/network/interfaces", "auto lo\niface lo inet loopback");
        let rep = render(&r, Stack::Ifupdown, &interfaces()).unwrap();
        let want = format!(
            "{HEADER}\n\
             # Interface 0: MAC 52:54:00:ab:cd:01, named slip0 by /etc/systemd/network/10-slipway-00.link.\n\
             allow-hotplug slip0\n\
             iface slip0 inet dhcp\n    pre-up ip link set dev \"$IFACE\" mtu 9000\n\n\
             # Interface 1: names matching en*.\n\
             auto /en*=slipway-01\n\
             iface slipway-01 inet static\n    address 192.0.2.10/24\n    gateway 192.0.2.1\n\
             \x20   dns-nameservers 192.0.2.53 2001:db8::53\n    dns-search example.com lab.example.com\n\n\
             iface slipway-01 inet static\n    address 198.51.100.7/25\n\n\
             iface slipway-01 inet6 static\n    address 2001:db8::10/64\n\n\
             # Interface 2: eth1.\n\
             allow-hotplug eth1\n\
             iface eth1 inet dhcp\n"
        );
        assert_eq!(read(p, IFUPDOWN_FILE), want);
        assert_eq!(
            read(p, "etc/systemd/network/10-slipway-00.link"),
            format!(
                "{HEADER}# Names the NIC of interface 0 of the answer file for ifupdown (/{IFUPDOWN_FILE}).\n\n\
                 [Match]\nPermanentMACAddress=52:54:00:ab:cd:01\n\n[Link]\nName=slip0\n"
            )
        );
        // The file had no final newline; the source line goes on its own.
        assert_eq!(
            read(p, "etc/network/interfaces"),
            "auto lo\niface lo inet loopback\n\n# Added by slipway specialize.\nsource /etc/network/interfaces.d/*\n"
        );
        assert_eq!(
            rep.written,
            [
                "/etc/systemd/network/10-slipway-00.link",
                "/etc/network/interfaces.d/50-slipway",
                "/etc/network/interfaces",
                "/etc/resolv.conf"
            ]
        );
        // No resolvconf and no resolved: dns-nameservers alone would do nothing.
        assert!(read(p, "etc/resolv.conf").contains("nameserver 192.0.2.53\n"));
        ifquery_accepts(&p.join(IFUPDOWN_FILE));

        // Again, by name only: the .link file goes, interfaces is not touched.
        let rep = render(&r, Stack::Ifupdown, &interfaces()[2..]).unwrap();
        assert_eq!(rep.removed, ["/etc/systemd/network/10-slipway-00.link"]);
        assert_eq!(rep.written, ["/etc/network/interfaces.d/50-slipway"]);
        // And with nothing to configure, its file goes too.
        let rep = render(&r, Stack::Ifupdown, &[]).unwrap();
        assert_eq!(rep.removed, [format!("/{IFUPDOWN_FILE}")]);
    }

    #[test]
    fn ifupdown_without_udev_matches_mac_by_pattern() {
        let (t, r) = plain_root(&["sbin/ifup", "sbin/resolvconf"]);
        let p = t.path();
        let rep = render(&r, Stack::Ifupdown, &interfaces()[..2]).unwrap();
        let text = read(p, IFUPDOWN_FILE);
        assert!(
            text.contains("# Interface 0: MAC 52:54:00:ab:cd:01.\nauto mac/52:54:00:ab:cd:01=slipway-00\niface slipway-00 inet dhcp\n"),
            "{text}"
        );
        assert!(!p.join("etc/systemd/network").exists());
        // A missing interfaces file is created, reading interfaces.d.
        let main = read(p, "etc/network/interfaces");
        assert!(
            main.contains("source /etc/network/interfaces.d/*\n") && main.contains("iface lo inet loopback\n"),
            "{main}"
        );
        // resolvconf handles dns-nameservers.
        assert!(!p.join("etc/resolv.conf").exists());
        assert!(rep.written.contains(&"/etc/network/interfaces".to_string()));
        ifquery_accepts(&p.join(IFUPDOWN_FILE));
    }

    /// ifupdown's own parser accepts the file; skipped where ifquery is not
    /// installed.
    fn ifquery_accepts(path: &Path) {
        let state = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("ifquery")
            .arg("-i")
            .arg(path)
            .arg("--state-dir")
            .arg(state.path())
            .args(["--list", "--allow=hotplug"])
            .output();
        if let Ok(out) = out {
            assert!(
                out.status.success(),
                "ifquery refused {}:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn an_interfaces_file_that_reads_interfaces_d_is_left_alone() {
        for (text, reads) in [
            ("source /etc/network/interfaces.d/*\n", true),
            ("source-directory /etc/network/interfaces.d\n", true),
            ("source-directory interfaces.d/\n", true),
            ("source interfaces.d/*\n", true),
            ("source /etc/network/interfaces.d/50-slipway\n", true),
            ("source /etc/network/interfaces.d/*.cfg\n", false),
            ("# source /etc/network/interfaces.d/*\n", false),
            ("auto lo\n", false),
        ] {
            assert_eq!(sources_ours(text), reads, "{text}");
        }
        let (t, r) = plain_root(&["sbin/ifup"]);
        let orig = "# Debian\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n";
        put(t.path(), "etc/network/interfaces", orig);
        let rep = render(&r, Stack::Ifupdown, &interfaces()[2..]).unwrap();
        assert_eq!(read(t.path(), "etc/network/interfaces"), orig);
        assert_eq!(rep.written, [format!("/{IFUPDOWN_FILE}")]);
    }

    #[test]
    fn unit_install_sections_parse() {
        let i = parse_install(NETWORKD_SERVICE);
        assert_eq!(i.wanted_by, ["multi-user.target"]);
        assert_eq!(i.alias, ["dbus-org.freedesktop.network1.service"]);
        assert_eq!(
            i.also,
            ["systemd-networkd.socket", "systemd-network-generator.service", "systemd-networkd-wait-online.service"]
        );
        let i = parse_install("[Unit]\nWantedBy=nope.target\n[Install]\n# WantedBy=x.target\nRequiredBy=a.target b.target\nAlias=%N-x.service\n");
        assert_eq!(i.wanted_by, Vec::<String>::new());
        assert_eq!(i.required_by, ["a.target", "b.target"]);
        assert!(i.alias.is_empty());
    }

    #[test]
    fn bad_interfaces_are_refused_before_anything_is_written() {
        let (t, r) = merged_usr_root(&["usr/sbin/NetworkManager"]);
        let bad = [
            Interface { matches: InterfaceMatch::default(), ..Default::default() },
            Interface { matches: by_name("eth0"), mode: AddressMode::Static, ..Default::default() },
            Interface {
                matches: by_name("eth0"),
                mode: AddressMode::Static,
                addresses: vec!["192.0.2.2/24".into()],
                gateway: Some("2001:db8::1".into()),
                ..Default::default()
            },
            Interface { matches: by_name("eth 0"), ..Default::default() },
        ];
        for b in bad {
            let ifs = [interfaces()[2].clone(), b];
            let e = render(&r, Stack::NetworkManager, &ifs).unwrap_err();
            assert!(format!("{e:#}").contains("network interface 1"), "{e:#}");
        }
        assert!(!t.path().join("etc/NetworkManager").exists());
    }
}
