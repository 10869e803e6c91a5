//! Fuzz the reader of a DICOM file (header, grouping, pixel decoding) through the real file path: any input must
//! give a result or an error, never a panic or an allocation the bytes
//! cannot justify. Crashes found here become regression tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

static DEFAULT_HOOK: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // UME catches codec panics and reports them as the file's error;
    // libfuzzer-sys's hook would abort on them first. With the default hook
    // back, a panic UME does not catch still unwinds into libFuzzer and is
    // reported as a crash.
    DEFAULT_HOOK.call_once(|| drop(std::panic::take_hook()));
    let path = std::env::temp_dir().join(format!("ume-{}-fuzz.dcm", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(v) = ume::io::load(&path) {
        let _ = v.stats();
    }
});
