//! Fuzz the single-file NIfTI/Analyze reader (plain and gzipped bytes):
//! any input must give a volume or an error, never a panic or an
//! allocation the bytes cannot justify. Crashes found here become cases in
//! `tests/bad_input.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = ume::io::load_from_bytes(Path::new("fuzz.nii"), data) {
        let _ = v.stats();
        let _ = v.geometry.orientation();
    }
    let _ = ume::io::header::parse(data);
});
