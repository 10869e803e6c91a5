//! Fuzz the reader of a Slicer segmentation (segments, layers) through the real file path: any input must
//! give a result or an error, never a panic or an allocation the bytes
//! cannot justify. Crashes found here become regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ume-{}-fuzz.seg.nrrd", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = ume::io::load_labels_and_table(&path);
});
