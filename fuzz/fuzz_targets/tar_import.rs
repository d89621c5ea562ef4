//! `import_tar` on arbitrary bytes: must import or refuse with an error,
//! never panic, hang or exhaust memory. One scratch store is shared by all
//! inputs (in the system's temp directory, made anew per fuzzing process).
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use slipway_store::{import_tar, CaptureOptions, NoProgress, Store};

fn store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("slipway-fuzz-tar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Mutex::new(Store::init(&dir).expect("scratch store"))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut s = store().lock().unwrap_or_else(|e| e.into_inner());
    let opts = CaptureOptions { name: "fuzz".into(), ..Default::default() };
    let _ = import_tar(&mut s, &mut &data[..], &opts, &NoProgress);
});
