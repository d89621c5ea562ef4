//! Fetching an image version into the agent's cache store: only the blobs
//! the cache lacks move. A pack the cache needs most of comes whole
//! (`/v1/content/packs/{id}`, one request, as stored); otherwise blobs come
//! one by one (`/v1/content/blobs/{id}`). Every blob is checked against its
//! BLAKE3 id before it is kept, so the server, a cache or a distribution
//! point in between need not be trusted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::stream::{self, StreamExt};
use slipway_api::Manifest;
use slipway_store::{decompress_frame, parse_pack, BlobId, BlobKind, ImageRecord, ImageVersion, Import, Store};

use crate::client::Client;
use crate::retry::retrying;

/// Requests in flight at once.
const PARALLEL: usize = 8;

/// What a fetch moved.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FetchReport {
    pub image: String,
    pub blobs: u64,
    pub blobs_cached: u64,
    pub blobs_fetched: u64,
    pub packs_fetched: u64,
    /// Bytes received over HTTP.
    pub bytes_received: u64,
    pub seconds: f64,
}

/// Progress callback: bytes done of total.
pub type OnProgress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

fn kind_of(k: &str) -> Result<BlobKind> {
    match k {
        "data" => Ok(BlobKind::Data),
        "tree" => Ok(BlobKind::Tree),
        other => bail!("the manifest names a blob kind {other:?} this agent does not know"),
    }
}

enum Job {
    Pack(String, Vec<(BlobId, BlobKind)>),
    Blob(BlobId, BlobKind),
}

/// Fetches image record `record` into `cache`, verifying everything, and
/// returns it as an image version of the cache.
pub async fn fetch_image(
    client: &Client,
    cache: &mut Store,
    record: &str,
    on_progress: OnProgress<'_>,
) -> Result<(ImageVersion, FetchReport)> {
    let started = Instant::now();
    let rid: BlobId =
        record.parse().map_err(|_| anyhow::anyhow!("the server named record {record:?}, which is not a BLAKE3 id"))?;
    let path = format!("/v1/content/records/{record}");

    let bytes = retrying(|| client.get_bytes(&path)).await?;
    if BlobId::of(&bytes) != rid {
        bail!("image record {record} arrived damaged or forged (its bytes hash to {})", BlobId::of(&bytes));
    }
    let rec = ImageRecord::decode(&bytes).map_err(|e| anyhow::anyhow!("image record {record}: {e}"))?;
    let path = format!("/v1/content/manifests/{record}");

    let manifest: Manifest = retrying(|| client.get(&path)).await?;
    if manifest.tree != rec.root.tree.to_string() {
        bail!("the manifest of {record} is for another tree than the record's");
    }
    let mut wanted = Vec::with_capacity(manifest.blobs.len());
    let mut sizes = BTreeMap::new();
    for b in &manifest.blobs {
        let id: BlobId =
            b.id.parse().map_err(|_| anyhow::anyhow!("the manifest names blob {:?}, not a BLAKE3 id", b.id))?;
        wanted.push((id, kind_of(&b.kind)?));
        sizes.insert(id, (b.size, b.pack));
    }
    let mut rep = FetchReport {
        image: format!("{}@{}", rec.name, rec.version),
        blobs: wanted.len() as u64,
        ..Default::default()
    };
    let mut imp = Import::begin(cache, &|m| eprintln!("slipway agent: {m}"))?;
    let missing = imp.missing(&wanted);
    rep.blobs_cached = rep.blobs - missing.len() as u64;
    // Group what is missing by pack, and take a pack whole when what we
    // need from it is at least half of its (compressed) size.
    let mut by_pack: BTreeMap<u32, Vec<(BlobId, BlobKind)>> = BTreeMap::new();
    for (id, k) in &missing {
        by_pack.entry(sizes[id].1).or_default().push((*id, *k));
    }
    let total: u64 = missing.iter().map(|(id, _)| sizes[id].0).sum();
    let mut jobs = Vec::new();
    for (pos, blobs) in by_pack {
        let pack = manifest
            .packs
            .get(pos as usize)
            .with_context(|| format!("the manifest names pack {pos}, which it does not list"))?;
        let need: u64 = blobs.iter().map(|(id, _)| sizes[id].0).sum();
        if need * 2 >= pack.size {
            jobs.push(Job::Pack(pack.id.clone(), blobs));
        } else {
            jobs.extend(blobs.into_iter().map(|(id, k)| Job::Blob(id, k)));
        }
    }
    let mut done = 0u64;
    on_progress(0, total);
    let mut last = Instant::now();
    let mut results = stream::iter(jobs.into_iter().map(|job| async move {
        match job {
            Job::Pack(id, blobs) => {
                let path = format!("/v1/content/packs/{id}");

                let bytes = retrying(|| client.get_bytes(&path)).await?;
                Ok::<_, anyhow::Error>((bytes.len() as u64, unpack(&id, &bytes, &blobs)?, true))
            }
            Job::Blob(id, k) => {
                let path = format!("/v1/content/blobs/{id}");

                let bytes = retrying(|| client.get_bytes(&path)).await?;
                Ok((bytes.len() as u64, vec![(id, k, bytes)], false))
            }
        }
    }))
    .buffer_unordered(PARALLEL);
    while let Some(r) = results.next().await {
        let (received, blobs, was_pack) = r?;
        rep.bytes_received += received;
        if was_pack {
            rep.packs_fetched += 1;
        }
        tokio::task::block_in_place(|| -> Result<()> {
            for (id, k, data) in &blobs {
                imp.add(*id, *k, data)?;
                done += data.len() as u64;
                rep.blobs_fetched += 1;
            }
            Ok(())
        })?;
        if last.elapsed() > Duration::from_millis(500) {
            on_progress(done, total);
            last = Instant::now();
        }
    }
    drop(results);
    on_progress(done, total);
    let (img, _) = tokio::task::block_in_place(|| imp.finish(&rec))?;
    rep.seconds = started.elapsed().as_secs_f64();
    Ok((img, rep))
}

/// The wanted blobs out of a pack file.
fn unpack(id: &str, bytes: &[u8], wanted: &[(BlobId, BlobKind)]) -> Result<Vec<(BlobId, BlobKind, Vec<u8>)>> {
    let entries = parse_pack(bytes).map_err(|e| anyhow::anyhow!("pack {id}: {e}"))?;
    let by_id: std::collections::HashMap<BlobId, &slipway_store::PackEntry> =
        entries.iter().map(|e| (e.id, e)).collect();
    let mut frames: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut out = Vec::with_capacity(wanted.len());
    for (bid, kind) in wanted {
        let e =
            by_id.get(bid).with_context(|| format!("pack {id} does not hold blob {bid} the manifest placed there"))?;
        if let std::collections::btree_map::Entry::Vacant(v) = frames.entry(e.frame_off) {
            let end = e.frame_off as usize + e.frame_clen as usize;
            let comp = bytes.get(e.frame_off as usize..end).with_context(|| format!("pack {id} is truncated"))?;
            v.insert(decompress_frame(comp, e.frame_ulen).map_err(|err| anyhow::anyhow!("pack {id}: {err}"))?);
        }
        let f = &frames[&e.frame_off];
        let data = f
            .get(e.off as usize..e.off as usize + e.len as usize)
            .with_context(|| format!("pack {id} places blob {bid} past the end of its frame"))?;
        out.push((*bid, *kind, data.to_vec()));
    }
    Ok(out)
}
