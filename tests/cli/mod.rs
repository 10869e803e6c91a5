//! Running the `ume` binary from the ML tests (`training.rs`,
//! `encoder.rs`) as a user runs it, reading its whole log.
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::ffi::OsStr;
use std::path::Path;

/// `ume ARGS…` as on a machine without a display session (no
/// `XDG_RUNTIME_DIR`): whether it succeeded, and its log (stdout, then
/// stderr).
pub fn ume<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), log)
}

/// `ume train --config CONFIG --data DATA --out OUT --steps STEPS --device
/// cpu EXTRA…`.
pub fn train(config: &str, data: &Path, out: &Path, steps: &str, extra: &[&str]) -> (bool, String) {
    let mut args: Vec<&OsStr> = vec![
        "train".as_ref(),
        "--config".as_ref(),
        config.as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--steps".as_ref(),
        steps.as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    ume(args)
}
