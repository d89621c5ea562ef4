//! Writing ISO 9660 images. (Layout and streaming writer in progress.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{bail, Context};

use crate::model::{Content, External};

/// Copies exactly `size` bytes of `content` to `out`. A source that is
/// shorter or longer than `size` is an error naming it (a file that changed
/// while the image was written).
pub fn copy_content(content: &Content, size: u64, external: Option<&mut dyn External>, out: &mut dyn Write) -> anyhow::Result<()> {
    match content {
        Content::Bytes(b) => {
            if b.len() as u64 != size {
                bail!("in-memory content is {} bytes, expected {size}", b.len());
            }
            out.write_all(b)?;
        }
        Content::Path(p) => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let n = std::io::copy(&mut f.take(size), out).with_context(|| format!("reading {}", p.display()))?;
            if n != size {
                bail!("{} is {n} bytes now, {size} when it was scanned; it changed during the build", p.display());
            }
        }
        Content::Region { file, ranges } => {
            let mut f = File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let mut total = 0u64;
            for &(off, len) in ranges {
                f.seek(SeekFrom::Start(off))?;
                let n = std::io::copy(&mut (&mut f).take(len), out).with_context(|| format!("reading {}", file.display()))?;
                if n != len {
                    bail!("{}: extent at byte {off} ({len} bytes) runs past the end of the file", file.display());
                }
                total += n;
            }
            if total != size {
                bail!("{}: extents hold {total} bytes, the entry says {size}", file.display());
            }
        }
        Content::External(id) => match external {
            Some(x) => x.write_external(*id, size, out)?,
            None => bail!("content {id} comes from an external source, and none was given"),
        },
    }
    Ok(())
}
