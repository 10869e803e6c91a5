//! A user's labels survive a kill: a process killed with SIGKILL in the
//! middle of saving leaves the previous file intact (temp file + rename),
//! and the autosave it was writing restorable (its `meta.json` names only
//! complete files). The child is this test binary re-run in a writer mode,
//! saving and autosaving two different label maps in a loop; the parent
//! kills it at varying moments and checks what is on disk each time.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;
use ume::app::autosave;
use ume::volume::{Geometry, LabelTable, LabelVolume};

const DIMS: [usize; 3] = [192, 192, 96];

/// Map `which` (0 or 1): distinguishable, large enough that a save takes a
/// while.
fn map(which: u16) -> LabelVolume {
    let mut l = LabelVolume::zeros(DIMS, 1, Geometry::identity());
    for i in 0..l.len() {
        // Noise-like ids so compression takes real time.
        let h = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 59;
        l.set(i, (h as u16 + which * 40) % 300);
    }
    l
}

fn writer(target: &Path, dir: &Path) -> ! {
    let maps = [Arc::new(map(0)), Arc::new(map(1))];
    let table = LabelTable::generic(1..300);
    let g = Geometry::identity();
    for n in 0usize.. {
        let m = &maps[n % 2];
        ume::io::save_label_map(m, &g, target).unwrap();
        autosave::write(
            dir,
            &[target.to_path_buf()],
            &[(None, m.clone())],
            &g,
            &table,
        )
        .unwrap();
    }
    unreachable!()
}

fn is_a_or_b(l: &LabelVolume, a: &LabelVolume, b: &LabelVolume) -> bool {
    l.data == a.compacted().data || l.data == b.compacted().data
}

#[test]
fn sigkill_mid_save_leaves_the_file_and_the_autosave_whole() {
    if let Ok(paths) = std::env::var("UME_KILL_CHILD") {
        let (t, d) = paths.split_once('\n').unwrap();
        writer(Path::new(t), Path::new(d));
    }
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("labels.nii.gz");
    let dir = tmp.path().join("autosave");
    let (a, b) = (map(0), map(1));
    let mut interrupted = 0;
    for round in 0..6u64 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sigkill_mid_save_leaves_the_file_and_the_autosave_whole",
                "--exact",
                "--nocapture",
            ])
            .env(
                "UME_KILL_CHILD",
                format!("{}\n{}", target.display(), dir.display()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait for a first complete save and autosave, then a while more,
        // different each round, and kill.
        for _ in 0..600 {
            if target.is_file() && autosave::find(&dir).is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(37 + 71 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let temps: Vec<PathBuf> = [tmp.path(), dir.as_path()]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                n.ends_with(".tmp")
                    || (n.starts_with("labels-")
                        && !autosave::find(&dir)
                            .unwrap()
                            .maps
                            .iter()
                            .any(|(_, m)| *m == n))
            })
            .collect();
        if !temps.is_empty() {
            interrupted += 1;
        }
        let saved = ume::io::load_labels(&target).unwrap();
        assert!(
            is_a_or_b(&saved, &a, &b),
            "round {round}: the saved file is whole"
        );
        let back = autosave::read(&dir).unwrap();
        assert!(
            is_a_or_b(&back.maps[0].1, &a, &b),
            "round {round}: the autosave is restorable"
        );
        for t in temps {
            let _ = std::fs::remove_file(t);
        }
    }
    assert!(
        interrupted >= 1,
        "no kill landed in the middle of a write: the test proved nothing"
    );
}
