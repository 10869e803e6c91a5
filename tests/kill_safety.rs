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

const DIMS: [usize; 3] = [384, 384, 160];

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

/// Save and autosave in a loop; after the first full cycle, create
/// `ready`, so the parent knows every moment from then on is mid-write.
fn writer(target: &Path, dir: &Path, ready: &Path) -> ! {
    let maps = [Arc::new(map(0)), Arc::new(map(1))];
    let table = LabelTable::generic(1..300);
    let g = Geometry::identity();
    for n in 0usize.. {
        let m = &maps[n % 2];
        ume::io::save_label_map(m, &g, target).unwrap();
        // Autosave (compressed, slower) every third save, so most of the
        // time goes to writing the target file.
        if n % 3 != 0 {
            continue;
        }
        autosave::write(
            dir,
            &[target.to_path_buf()],
            &[(None, m.clone())],
            &[],
            &g,
            &table,
            &|| false,
        )
        .unwrap();
        if n == 0 {
            std::fs::write(ready, b"").unwrap();
        }
    }
    unreachable!()
}

fn is_a_or_b(l: &LabelVolume, a: &LabelVolume, b: &LabelVolume) -> bool {
    l.data == a.compacted().data || l.data == b.compacted().data
}

#[test]
fn sigkill_mid_save_leaves_the_file_and_the_autosave_whole() {
    if let Ok(paths) = std::env::var("UME_KILL_CHILD") {
        let parts: Vec<&str> = paths.split('\n').collect();
        writer(
            Path::new(parts[0]),
            Path::new(parts[1]),
            Path::new(parts[2]),
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    // Uncompressed and large (47 MB of u16): the file write itself takes
    // long enough that kills land inside it.
    let target = tmp.path().join("labels.nii");
    let dir = tmp.path().join("autosave");
    let (a, b) = (map(0), map(1));
    let mut interrupted = 0;
    let ready = tmp.path().join("ready");
    for round in 0..10u64 {
        let _ = std::fs::remove_file(&ready);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sigkill_mid_save_leaves_the_file_and_the_autosave_whole",
                "--exact",
                "--nocapture",
            ])
            .env(
                "UME_KILL_CHILD",
                format!(
                    "{}\n{}\n{}",
                    target.display(),
                    dir.display(),
                    ready.display()
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has saved and autosaved once (from then on
        // it is always writing one or the other), then a while more,
        // different each round, and kill.
        for _ in 0..3000 {
            if ready.is_file() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(ready.is_file(), "the writer never finished a first save");
        // Kill the moment a save's temporary file appears (a varying
        // number of saves in), so the kill lands inside the write.
        let saves_in = round % 3;
        let mut seen = 0;
        let mut was_temp = false;
        for _ in 0..20_000 {
            let temp = std::fs::read_dir(tmp.path())
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"));
            if temp && !was_temp {
                seen += 1;
                if seen > saves_in {
                    break;
                }
            }
            was_temp = temp;
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
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
    eprintln!("{interrupted} of 10 kills landed in the middle of a write");
    assert!(
        interrupted >= 1,
        "no kill landed in the middle of a write: the test proved nothing"
    );
}
