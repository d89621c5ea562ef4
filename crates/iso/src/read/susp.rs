//! System Use Sharing Protocol areas (SUSP 1.12) and the Rock Ridge fields
//! (RRIP 1.12) slipway reads from them.
//!
//! A directory record's system use field holds entries of the form
//! `signature(2) length(1) version(1) data`; a `CE` entry continues the area
//! in a block elsewhere. Every length is checked against the area it sits
//! in, continuation chains are capped, and names and link targets are
//! bounded, so a crafted image can neither read outside its buffers nor make
//! the reader loop or allocate without bound.

use anyhow::{bail, Result};
use slipway_fstree::{display_bytes, Timestamp};

use crate::spec;

/// Continuation areas one record may chain (the Linux kernel stops at 32 too).
const MAX_CE_HOPS: usize = 32;
/// Bytes one continuation area may hold.
pub(crate) const MAX_CE_BYTES: u32 = 64 * 1024;
/// Bytes an NM name may grow to before it is refused (names are at most 255
/// bytes when checked; this only stops the collection early).
const MAX_NAME: usize = 1024;
/// A symbolic link's target, as Linux limits it (`PATH_MAX` - 1).
pub(crate) const MAX_LINK_TARGET: usize = 4095;
/// Path components one SL target may have.
const MAX_LINK_COMPONENTS: usize = 2048;

/// Extension identifiers of Rock Ridge in an ER entry.
const RRIP_IDS: [&[u8]; 3] = [b"RRIP_1991A", b"IEEE_P1282", b"IEEE_1282"];

/// The `PX` entry: POSIX file attributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Px {
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    /// The file serial number (RRIP 1.12 only; 1.10 writers leave it out).
    pub serial: Option<u32>,
}

/// The fields of one record's system use area (and its continuations).
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    /// `SP`: SUSP is in use; the value is LEN_SKP.
    pub sp: Option<u8>,
    /// An `ER` entry names Rock Ridge.
    pub rrip_er: bool,
    pub px: Option<Px>,
    /// `PN`: device number, high and low halves.
    pub pn: Option<(u32, u32)>,
    /// `NM`: the Rock Ridge name.
    pub nm: Option<Vec<u8>>,
    /// An `NM` entry with the CURRENT or PARENT flag (a name of `.` or `..`).
    pub nm_dot: bool,
    /// `SL`: the symbolic link target, assembled.
    pub link: Option<Vec<u8>>,
    /// `CL`: this entry is a directory relocated to this block.
    pub cl: Option<u32>,
    /// `RE`: this entry is a relocated directory (listed through a `CL`).
    pub re: bool,
    /// `TF`: modification time.
    pub mtime: Option<Timestamp>,
    /// `ZF` or `SF`: the content is stored in an encoding slipway cannot read.
    pub encoded: Option<&'static str>,
    /// SL components being collected; a component flagged CONTINUE is
    /// finished by the next component record.
    components: Vec<Vec<u8>>,
    component_open: bool,
    link_bytes: usize,
}

/// A continuation area: block, offset in the block, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Continuation {
    pub lba: u32,
    pub offset: u32,
    pub len: u32,
}

/// Parses a system use area and the continuation areas it chains to;
/// `read_ce` fetches a continuation area (checking it against the image).
pub(crate) fn parse(area: &[u8], read_ce: &mut dyn FnMut(Continuation) -> Result<Vec<u8>>) -> Result<Fields> {
    let mut f = Fields::default();
    let mut next = parse_area(area, &mut f)?;
    let mut hops = 0;
    while let Some(ce) = next {
        hops += 1;
        if hops > MAX_CE_HOPS {
            bail!("more than {MAX_CE_HOPS} SUSP continuation areas (CE) are chained; the chain loops or is corrupt");
        }
        if ce.len > MAX_CE_BYTES {
            bail!(
                "SUSP continuation area (CE) at sector {} claims {} bytes; at most {MAX_CE_BYTES} are accepted",
                ce.lba,
                ce.len
            );
        }
        let buf = read_ce(ce)?;
        next = parse_area(&buf, &mut f)?;
    }
    f.finish_link()?;
    Ok(f)
}

fn sig_name(sig: &[u8]) -> String {
    display_bytes(sig)
}

/// Parses the entries of one area into `f`; returns the continuation, if any.
fn parse_area(area: &[u8], f: &mut Fields) -> Result<Option<Continuation>> {
    let mut pos = 0usize;
    let mut ce = None;
    while pos + 4 <= area.len() {
        let sig = [area[pos], area[pos + 1]];
        let len = area[pos + 2] as usize;
        if sig == [0, 0] {
            // Zero padding at the end of the area.
            break;
        }
        if len < 4 {
            bail!("SUSP entry {} at byte {pos} of its area has length {len}, less than 4", sig_name(&sig));
        }
        let Some(e) = area.get(pos..pos + len) else {
            bail!(
                "SUSP entry {} at byte {pos} ({len} bytes) runs past the end of its system use area ({} bytes)",
                sig_name(&sig),
                area.len()
            );
        };
        match &sig {
            b"ST" => break,
            b"SP" => {
                need(e, 7)?;
                if e[4] == 0xBE && e[5] == 0xEF {
                    f.sp = Some(e[6]);
                }
            }
            b"CE" => {
                need(e, 28)?;
                ce = Some(Continuation {
                    lba: spec::read_both32(&e[4..12]),
                    offset: spec::read_both32(&e[12..20]),
                    len: spec::read_both32(&e[20..28]),
                });
            }
            b"ER" => {
                need(e, 8)?;
                let id_len = e[4] as usize;
                let Some(id) = e.get(8..8 + id_len) else {
                    bail!("SUSP ER entry of {len} bytes is too short for its {id_len}-byte identifier");
                };
                if RRIP_IDS.contains(&id) {
                    f.rrip_er = true;
                }
            }
            b"PX" => {
                need(e, 36)?;
                f.px = Some(Px {
                    mode: spec::read_both32(&e[4..12]),
                    nlink: spec::read_both32(&e[12..20]),
                    uid: spec::read_both32(&e[20..28]),
                    gid: spec::read_both32(&e[28..36]),
                    serial: e.get(36..44).map(spec::read_both32),
                });
            }
            b"PN" => {
                need(e, 20)?;
                f.pn = Some((spec::read_both32(&e[4..12]), spec::read_both32(&e[12..20])));
            }
            b"NM" => {
                need(e, 5)?;
                let flags = e[4];
                if flags & 0x06 != 0 {
                    f.nm_dot = true;
                } else {
                    let nm = f.nm.get_or_insert_with(Vec::new);
                    nm.extend_from_slice(&e[5..]);
                    if nm.len() > MAX_NAME {
                        bail!("Rock Ridge name (NM) is longer than {MAX_NAME} bytes");
                    }
                }
            }
            b"SL" => {
                need(e, 5)?;
                f.add_link_components(&e[5..])?;
            }
            b"CL" => {
                need(e, 12)?;
                f.cl = Some(spec::read_both32(&e[4..12]));
            }
            b"RE" => f.re = true,
            b"TF" => {
                need(e, 5)?;
                if let Some(t) = tf_mtime(e)? {
                    f.mtime = Some(t);
                }
            }
            b"ZF" => f.encoded = Some("ZF (zisofs compression)"),
            b"SF" => f.encoded = Some("SF (sparse file)"),
            // RR (RRIP 1.09 flags), PL, PD, ES, AA/AL (xattrs, ACLs) and
            // anything unknown: nothing slipway keeps.
            _ => {}
        }
        pos += len;
    }
    Ok(ce)
}

/// Refuses an entry shorter than its fixed fields.
fn need(e: &[u8], min: usize) -> Result<()> {
    if e.len() < min {
        bail!("SUSP entry {} is {} bytes; it needs at least {min}", sig_name(&e[..2]), e.len());
    }
    Ok(())
}

/// The modification time of a `TF` entry, if it records one.
fn tf_mtime(e: &[u8]) -> Result<Option<Timestamp>> {
    let flags = e[4];
    if flags & 0x02 == 0 {
        return Ok(None);
    }
    let size = if flags & 0x80 != 0 { 17 } else { 7 };
    let start = 5 + if flags & 0x01 != 0 { size } else { 0 };
    let Some(b) = e.get(start..start + size) else {
        bail!("Rock Ridge TF entry of {} bytes is too short for its flags 0x{flags:02x}", e.len());
    };
    Ok(if size == 7 {
        spec::read_date7(b).map(|sec| Timestamp { sec, nsec: 0 })
    } else {
        spec::read_date17(b).map(|sec| {
            let centis = if b[14].is_ascii_digit() && b[15].is_ascii_digit() {
                u32::from(b[14] - b'0') * 10 + u32::from(b[15] - b'0')
            } else {
                0
            };
            Timestamp { sec, nsec: centis * 10_000_000 }
        })
    })
}

impl Fields {
    /// Adds the component records of one SL entry.
    fn add_link_components(&mut self, mut c: &[u8]) -> Result<()> {
        self.link.get_or_insert_with(Vec::new);
        while !c.is_empty() {
            let (Some(&flags), Some(&len)) = (c.first(), c.get(1)) else {
                bail!("Rock Ridge SL entry ends inside a component record");
            };
            let Some(content) = c.get(2..2 + len as usize) else {
                bail!("Rock Ridge SL component of {len} bytes runs past the end of its SL entry");
            };
            let piece: &[u8] = if flags & 0x02 != 0 {
                b"."
            } else if flags & 0x04 != 0 {
                b".."
            } else if flags & 0x08 != 0 {
                b""
            } else {
                content
            };
            if self.component_open {
                if let Some(last) = self.components.last_mut() {
                    last.extend_from_slice(piece);
                }
            } else {
                if self.components.len() >= MAX_LINK_COMPONENTS {
                    bail!("Rock Ridge symlink target has more than {MAX_LINK_COMPONENTS} components");
                }
                self.components.push(piece.to_vec());
            }
            self.link_bytes += piece.len() + 1;
            if self.link_bytes > MAX_LINK_TARGET + 1 {
                bail!("Rock Ridge symlink target is longer than {MAX_LINK_TARGET} bytes");
            }
            self.component_open = flags & 0x01 != 0;
            c = &c[2 + len as usize..];
        }
        Ok(())
    }

    /// Joins the SL components: a ROOT component (empty) at the start makes
    /// the target absolute.
    fn finish_link(&mut self) -> Result<()> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        let comps = std::mem::take(&mut self.components);
        if comps.len() == 1 && comps[0].is_empty() {
            link.push(b'/');
        } else {
            for (i, c) in comps.iter().enumerate() {
                if i > 0 {
                    link.push(b'/');
                }
                link.extend_from_slice(c);
            }
        }
        if link.len() > MAX_LINK_TARGET {
            bail!("Rock Ridge symlink target is longer than {MAX_LINK_TARGET} bytes");
        }
        if link.contains(&0) {
            bail!("Rock Ridge symlink target contains a NUL byte");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sig: &[u8; 2], data: &[u8]) -> Vec<u8> {
        let mut e = vec![sig[0], sig[1], (4 + data.len()) as u8, 1];
        e.extend_from_slice(data);
        e
    }

    fn no_ce(_: Continuation) -> Result<Vec<u8>> {
        bail!("no continuation expected")
    }

    #[test]
    fn symlink_components_join_across_sl_entries_and_continuations() {
        // "/usr/lo" + "cal" (component continued in the next SL entry) + "/../x"
        let mut area = entry(b"SL", &[1, 0x08, 0, 0, 3, b'u', b's', b'r', 0x01, 2, b'l', b'o']);
        area.extend(entry(b"SL", &[0, 0, 3, b'c', b'a', b'l', 0x04, 0, 0, 1, b'x']));
        let f = parse(&area, &mut no_ce).unwrap();
        assert_eq!(f.link.as_deref(), Some(&b"/usr/local/../x"[..]));
        let f = parse(&entry(b"SL", &[0, 0x08, 0]), &mut no_ce).unwrap();
        assert_eq!(f.link.as_deref(), Some(&b"/"[..]));
        let f = parse(&entry(b"SL", &[0, 0x02, 0]), &mut no_ce).unwrap();
        assert_eq!(f.link.as_deref(), Some(&b"."[..]));
    }

    #[test]
    fn continuation_areas_are_followed_and_capped() {
        let mut area = entry(b"NM", b"\0ab");
        let mut ce = vec![0u8; 24];
        spec::both32(&mut ce[0..8], 20);
        spec::both32(&mut ce[16..24], 9);
        area.extend(entry(b"CE", &ce));
        let mut calls = 0;
        let f = parse(&area, &mut |c| {
            calls += 1;
            assert_eq!((c.lba, c.offset, c.len), (20, 0, 9));
            Ok(entry(b"NM", b"\0cdefg"))
        })
        .unwrap();
        assert_eq!(f.nm.as_deref(), Some(&b"abcdefg"[..]));
        assert_eq!(calls, 1);
        // A CE that points at itself forever.
        let err = parse(&area, &mut |_| Ok(area.clone())).unwrap_err().to_string();
        assert!(err.contains("continuation"), "{err}");
    }

    #[test]
    fn bad_lengths_are_errors() {
        let err = parse(&[b'P', b'X', 2, 1, 0, 0], &mut no_ce).unwrap_err().to_string();
        assert!(err.contains("less than 4"), "{err}");
        let err = parse(&[b'N', b'M', 40, 1, 0, b'a'], &mut no_ce).unwrap_err().to_string();
        assert!(err.contains("runs past"), "{err}");
        let err = parse(&entry(b"PX", &[0; 8]), &mut no_ce).unwrap_err().to_string();
        assert!(err.contains("at least 36"), "{err}");
        let err = parse(&entry(b"SL", &[0, 0, 9, b'a']), &mut no_ce).unwrap_err().to_string();
        assert!(err.contains("runs past"), "{err}");
        let err = parse(&entry(b"SL", &[0, 0, 3, b'a', 0, b'b']), &mut no_ce).unwrap_err().to_string();
        assert!(err.contains("NUL"), "{err}");
        // Zero padding after the entries is not an error.
        let mut area = entry(b"RE", &[]);
        area.extend([0u8; 6]);
        assert!(parse(&area, &mut no_ce).unwrap().re);
    }

    #[test]
    fn px_with_and_without_serial_and_tf_forms() {
        let mut px = vec![0u8; 40];
        spec::both32(&mut px[0..8], 0o104755);
        spec::both32(&mut px[8..16], 2);
        spec::both32(&mut px[16..24], 1000);
        spec::both32(&mut px[24..32], 100);
        spec::both32(&mut px[32..40], 77);
        let f = parse(&entry(b"PX", &px), &mut no_ce).unwrap();
        assert_eq!(f.px, Some(Px { mode: 0o104755, nlink: 2, uid: 1000, gid: 100, serial: Some(77) }));
        let f = parse(&entry(b"PX", &px[..32]), &mut no_ce).unwrap();
        assert_eq!(f.px.unwrap().serial, None);
        // TF with creation + modification, short form.
        let mut tf = vec![0x03];
        tf.extend(spec::date7(1000));
        tf.extend(spec::date7(1_700_000_000));
        let f = parse(&entry(b"TF", &tf), &mut no_ce).unwrap();
        assert_eq!(f.mtime, Some(Timestamp { sec: 1_700_000_000, nsec: 0 }));
        // Long form, modification only, with centiseconds.
        let mut tf = vec![0x82];
        let mut d = spec::date17(1_700_000_000);
        d[14] = b'4';
        d[15] = b'2';
        tf.extend(d);
        let f = parse(&entry(b"TF", &tf), &mut no_ce).unwrap();
        assert_eq!(f.mtime, Some(Timestamp { sec: 1_700_000_000, nsec: 420_000_000 }));
        let err = parse(&entry(b"TF", &[0x03, 1, 2]), &mut no_ce).unwrap_err().to_string();
        assert!(err.contains("too short"), "{err}");
    }
}
