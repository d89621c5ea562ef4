//! The store's `config` file: format version and the parameters every writer
//! of this store must use, so that equal content always gets equal chunks.

use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "slipway-store";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Always `"slipway-store"`.
    pub format: String,
    /// The store format version this store is written in (1).
    pub version: u32,
    /// A random id, to tell stores apart.
    pub id: String,
    pub chunking: Chunking,
    pub packing: Packing,
}

/// FastCDC (2020) parameters, in bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Chunking {
    pub algorithm: String,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Packing {
    /// Uncompressed bytes gathered into one zstd frame (and one pack).
    pub frame_size: u32,
    /// zstd compression level.
    pub zstd_level: i32,
}

impl Config {
    pub fn new_default() -> Self {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        Self {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            id: blake3::hash(seed.as_bytes()).to_hex()[..32].to_string(),
            chunking: Chunking {
                algorithm: "fastcdc-2020".into(),
                min_size: 16 << 10,
                avg_size: 64 << 10,
                max_size: 256 << 10,
            },
            packing: Packing { frame_size: 4 << 20, zstd_level: 3 },
        }
    }

    /// Parses and checks a config file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let c: Config = serde_json::from_slice(bytes).map_err(|e| format!("not a slipway store config: {e}"))?;
        if c.format != FORMAT {
            return Err(format!("format is {:?}, expected {FORMAT:?}", c.format));
        }
        if c.version != FORMAT_VERSION {
            return Err(format!(
                "store format version {} is not supported by this slipway (it reads version {FORMAT_VERSION}); use a slipway that does",
                c.version
            ));
        }
        let k = &c.chunking;
        if k.algorithm != "fastcdc-2020" {
            return Err(format!("unknown chunking algorithm {:?}", k.algorithm));
        }
        // Bounds of the fastcdc crate, and sanity.
        let sizes_ok = (64..=1 << 20).contains(&k.min_size)
            && (256..=4 << 20).contains(&k.avg_size)
            && (1024..=16 << 20).contains(&k.max_size)
            && k.min_size % 2 == 0
            && k.avg_size % 2 == 0
            && k.max_size % 2 == 0
            && k.min_size <= k.avg_size
            && k.avg_size <= k.max_size;
        if !sizes_ok {
            return Err(format!("chunk sizes out of range: {k:?}"));
        }
        if !(64 << 10..=64 << 20).contains(&c.packing.frame_size) || !(1..=22).contains(&c.packing.zstd_level) {
            return Err(format!("packing parameters out of range: {:?}", c.packing));
        }
        Ok(c)
    }
}
