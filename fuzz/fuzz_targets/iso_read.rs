//! The ISO 9660 reader (`slipway_iso::read`) on arbitrary images: opening,
//! `info()`, `tree()`, `boot()` and `system_area()`, and carrying the
//! system area over to a new layout (`hybrid::CarriedArea`), must return Ok
//! or Err, never panic, hang or exhaust memory.
//!
//! An input is an image without most of its system area, which is zeros in
//! nearly every image and would only dilute the mutations: its first 2048
//! bytes are the image's first 2048 bytes (MBR and GPT header), then 30720
//! zero bytes are put back, then the rest of the input follows from byte
//! 32768 (the volume descriptors at sector 16 on). The seeds in
//! `fuzz/seeds/iso_read/` are real images (xorriso, genisoimage; Rock Ridge,
//! Joliet, plain, El Torito with hidden and appended images, relocated
//! directories) and forged ones, cut this way:
//! `{ head -c 2048 x.iso; tail -c +32769 x.iso; } > seed`.
//!
//! The image is written to a file in /dev/shm (or the temp directory),
//! one per fuzzing process.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use slipway_iso::read::IsoImage;

const HEAD: usize = 2048;
const SYSTEM_AREA: usize = 32768;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        dir.join(format!("slipway-fuzz-iso-{}.iso", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let head = data.len().min(HEAD);
    let mut image = Vec::with_capacity(data.len() + SYSTEM_AREA - HEAD);
    image.extend_from_slice(&data[..head]);
    image.resize(SYSTEM_AREA, 0);
    image.extend_from_slice(&data[head..]);
    let path = scratch();
    std::fs::write(path, &image).expect("writing the scratch image");
    let Ok(img) = IsoImage::open(path) else { return };
    let _ = img.info();
    let tree = img.tree().unwrap_or_default();
    let boot = img.boot(&tree);
    // What `iso edit` does with the input's MBR/GPT: keep it and re-target
    // it to a layout (here the same one, then one moved by 7 sectors).
    if let (Ok(Some((_, layout))), Ok(sa)) = (boot, img.system_area()) {
        if let Ok(carried) = slipway_iso::hybrid::CarriedArea::from_image(&sa, &layout, img.len()) {
            let _ = carried.render(&layout);
            let mut moved = layout.clone();
            moved.fs_sectors += 7;
            moved.end_sectors += 7;
            for (_, e) in &mut moved.boot {
                e.lba += 7;
            }
            let _ = carried.render(&moved);
        }
    }
    let _ = (img.volume(), img.created(), img.volume_id());
});
