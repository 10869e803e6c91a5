//! Fuzz the reader of an NRRD file (header, gzip, byte order, geometry) through the real file path: any input must
//! give a result or an error, never a panic or an allocation the bytes
//! cannot justify. Crashes found here become regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ume-{}-fuzz.nrrd", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(v) = ume::io::load(&path) {
        let _ = v.stats();
    }
});
