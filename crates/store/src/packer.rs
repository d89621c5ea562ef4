//! Writing new blobs: gather them into frames, compress frames on worker
//! threads, write each frame as a pack into `tmp/`, and at checkpoints hand
//! the finished packs to a committer thread, which makes them durable, moves
//! them into place and writes an index file naming them. A blob becomes
//! visible to other processes only once an index file naming it is in place,
//! and an index file is written only after every pack it names is durable.
//! The committer works while the capture goes on reading and compressing.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use anyhow::Context;

use crate::atomic::tmp_name;
use crate::id::BlobId;
use crate::index::{write_index_files, Index, MAX_INDEX_ENTRIES};
use crate::pack::{build_pack, compress_frame, BlobKind, Frame, PackEntry};
use crate::store::Store;

/// Packs written since the last index file before a new one is written, so an
/// interrupted capture keeps most of its work.
const CHECKPOINT_PACKS: usize = 16;

struct Job {
    data: Vec<u8>,
    blobs: Vec<(BlobId, BlobKind, u32, u32)>,
}

/// A pack written to `tmp/` (not yet durable): id, entries, size, staging
/// path, final path.
type Done = anyhow::Result<(BlobId, Vec<PackEntry>, u64, PathBuf, PathBuf)>;

/// Packs to publish and the index entries to write once they are durable.
struct Checkpoint {
    staged: Vec<(PathBuf, PathBuf)>,
    entries: Vec<(BlobId, PackEntry)>,
}

struct Committer {
    tx: mpsc::Sender<Checkpoint>,
    handle: JoinHandle<anyhow::Result<()>>,
}

#[derive(Default)]
struct Lane {
    data: Vec<u8>,
    blobs: Vec<(BlobId, BlobKind, u32, u32)>,
}

pub(crate) struct Packer {
    frame_size: usize,
    lanes: [Lane; 2],
    seen: HashSet<BlobId>,
    tx: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
    unindexed: Vec<(BlobId, PackEntry)>,
    unindexed_packs: usize,
    /// Every blob this packer wrote, with where it went.
    pub written: HashMap<BlobId, PackEntry>,
    pub pack_bytes: u64,
    pub packs_written: u64,
    /// Packs written to tmp/ and not yet handed to the committer.
    staged: Vec<(PathBuf, PathBuf)>,
    committer: Option<Committer>,
    finishing: bool,
}

impl Packer {
    pub(crate) fn new(store: &Store) -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (done_tx, done) = mpsc::channel::<Done>();
        let level = store.config().packing.zstd_level;
        let mut workers = Vec::new();
        for _ in 0..threads {
            let rx = rx.clone();
            let done_tx = done_tx.clone();
            let tmp_dir = store.tmp_dir();
            let packs = store.path().join("packs");
            workers.push(std::thread::spawn(move || loop {
                let job = match rx.lock().expect("job queue").recv() {
                    Ok(j) => j,
                    Err(_) => return,
                };
                let r = write_pack(job, level, &tmp_dir, &packs);
                if done_tx.send(r).is_err() {
                    return;
                }
            }));
        }
        Self {
            frame_size: store.config().packing.frame_size as usize,
            lanes: [Lane::default(), Lane::default()],
            seen: HashSet::new(),
            tx: Some(tx),
            done,
            workers,
            in_flight: 0,
            unindexed: Vec::new(),
            unindexed_packs: 0,
            written: HashMap::new(),
            pack_bytes: 0,
            packs_written: 0,
            staged: Vec::new(),
            committer: Some(spawn_committer(store.tmp_dir(), store.index_dir())),
            finishing: false,
        }
    }

    /// True when the blob is in the store or already queued by this packer.
    pub(crate) fn has(&self, index: &Index, id: &BlobId) -> bool {
        self.seen.contains(id) || index.contains(id)
    }

    /// Queues a blob unless the store or this packer has it. Returns whether
    /// it was new.
    pub(crate) fn add(&mut self, index: &Index, id: BlobId, kind: BlobKind, data: &[u8]) -> anyhow::Result<bool> {
        if self.has(index, &id) {
            return Ok(false);
        }
        let lane = kind as usize;
        if !self.lanes[lane].data.is_empty() && self.lanes[lane].data.len() + data.len() > self.frame_size {
            self.flush_lane(lane)?;
        }
        let l = &mut self.lanes[lane];
        l.blobs.push((id, kind, l.data.len() as u32, data.len() as u32));
        l.data.extend_from_slice(data);
        self.seen.insert(id);
        Ok(true)
    }

    fn flush_lane(&mut self, lane: usize) -> anyhow::Result<()> {
        if self.lanes[lane].blobs.is_empty() {
            return Ok(());
        }
        // The next frame's buffer is allocated at full size once, not grown
        // (and copied) step by step.
        let fresh = Lane { data: Vec::with_capacity(self.frame_size), blobs: Vec::new() };
        let l = std::mem::replace(&mut self.lanes[lane], fresh);
        self.tx
            .as_ref()
            .expect("packer not finished")
            .send(Job { data: l.data, blobs: l.blobs })
            .map_err(|_| anyhow::anyhow!("pack writer threads stopped"))?;
        self.in_flight += 1;
        while let Ok(r) = self.done.try_recv() {
            self.collect(r)?;
        }
        if !self.finishing && (self.unindexed_packs >= CHECKPOINT_PACKS || self.unindexed.len() >= MAX_INDEX_ENTRIES) {
            self.write_index()?;
        }
        Ok(())
    }

    fn collect(&mut self, r: Done) -> anyhow::Result<()> {
        self.in_flight -= 1;
        let (pack, entries, size, tmp, dest) = r?;
        self.staged.push((tmp, dest));
        self.pack_bytes += size;
        self.packs_written += 1;
        self.unindexed_packs += 1;
        for e in entries {
            self.written.insert(e.id, e);
            self.unindexed.push((pack, e));
        }
        Ok(())
    }

    /// Hands the packs finished since the last checkpoint, and their index
    /// entries, to the committer.
    fn write_index(&mut self) -> anyhow::Result<()> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let c = self.committer.as_ref().expect("packer not finished");
        if c.handle.is_finished() {
            // It stops only on an error: report it now.
            return self.join_committer();
        }
        let cp = Checkpoint { staged: std::mem::take(&mut self.staged), entries: std::mem::take(&mut self.unindexed) };
        if c.tx.send(cp).is_err() {
            return self.join_committer();
        }
        self.unindexed_packs = 0;
        Ok(())
    }

    fn join_committer(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.committer.take() else { return Ok(()) };
        drop(c.tx);
        c.handle.join().map_err(|_| anyhow::anyhow!("the pack committer thread panicked"))?
    }

    /// Writes what is queued, waits for every pack, and writes the last index
    /// file. Returns the bytes of packs written.
    pub(crate) fn finish(mut self) -> anyhow::Result<Self> {
        // No checkpoint from here on: the last blobs (the root tree among
        // them) go into the final index file together, so a reader that
        // finds the root tree in the index finds everything the image uses.
        self.finishing = true;
        self.flush_lane(BlobKind::Data as usize)?;
        self.flush_lane(BlobKind::Tree as usize)?;
        self.tx = None;
        let mut first_err = None;
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(r) => {
                    if let Err(e) = self.collect(r) {
                        first_err.get_or_insert(e);
                    }
                }
                Err(_) => break,
            }
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(e) = first_err {
            let _ = self.join_committer();
            return Err(e);
        }
        self.write_index()?;
        self.join_committer()?;
        Ok(self)
    }
}

fn spawn_committer(tmp_dir: PathBuf, index_dir: PathBuf) -> Committer {
    let (tx, rx) = mpsc::channel::<Checkpoint>();
    let handle = std::thread::spawn(move || -> anyhow::Result<()> {
        for cp in rx {
            publish(&tmp_dir, cp.staged)?;
            write_index_files(&tmp_dir, &index_dir, &cp.entries)?;
        }
        Ok(())
    });
    Committer { tx, handle }
}

/// Makes staged packs durable and moves them into place: one `syncfs` for
/// all their data, the renames, one `syncfs` for the new directory entries
/// (instead of two fsyncs per pack).
fn publish(tmp_dir: &std::path::Path, staged: Vec<(PathBuf, PathBuf)>) -> anyhow::Result<()> {
    if staged.is_empty() {
        return Ok(());
    }
    let tmp = File::open(tmp_dir).with_context(|| format!("opening {}", tmp_dir.display()))?;
    rustix::fs::syncfs(&tmp).context("flushing new packs to disk")?;
    for (from, to) in staged {
        let dir = to.parent().expect("pack path has a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::rename(&from, &to).with_context(|| format!("moving pack into place at {}", to.display()))?;
    }
    rustix::fs::syncfs(&tmp).context("flushing the store's directories to disk")?;
    Ok(())
}

fn write_pack(job: Job, level: i32, tmp_dir: &std::path::Path, packs: &std::path::Path) -> Done {
    let compressed = compress_frame(&job.data, level).context("compressing a frame")?;
    let frame = Frame { compressed, ulen: job.data.len() as u32, blobs: job.blobs };
    let (bytes, entries) = build_pack(std::slice::from_ref(&frame));
    let id = BlobId::of(&bytes);
    let hex = id.to_hex();
    let dest = packs.join(&hex[..2]).join(format!("{hex}.pack"));
    let tmp = tmp_dir.join(tmp_name("pack"));
    // Durability comes later, for all staged packs at once (publish_staged).
    let r = File::create(&tmp).and_then(|mut f| f.write_all(&bytes));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing pack {}", dest.display()));
    }
    Ok((id, entries, bytes.len() as u64, tmp, dest))
}
