//! The tensor-file readers (safetensors and Arrow IPC, memory-mapped) on arbitrary file
//! contents: no panic, and every view of an accepted file lies inside the file and reads in
//! full (the copy touches each of its bytes).
#![no_main]

use std::sync::OnceLock;

use dlbridge::{files, Order};
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("dlbridge-fuzz-tensor-file-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    static QUIET: OnceLock<()> = OnceLock::new();
    QUIET.get_or_init(|| {
        // arrow-ipc panics on some malformed files, and dlbridge catches those panics (they
        // come back as errors): replace libFuzzer's abort-on-panic hook by a silent one. A
        // panic that escapes still aborts (libfuzzer-sys catches it around this closure).
        std::panic::set_hook(Box::new(|_| {}));
    });
    let path = scratch();
    std::fs::write(path, data).unwrap();
    // SAFETY: this process alone writes the scratch file, and only between iterations, after
    // every view of the previous contents is gone.
    if let Ok(views) = unsafe { files::map(path) } {
        for (_, view) in views {
            assert!(view.byte_span().len() <= data.len().max(1) || view.is_copied());
            let _ = view.to_contiguous(Order::C);
        }
    }
});
