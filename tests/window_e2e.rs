//! End to end: the real `ume` binary opens a real window under Xvfb (wgpu
//! on Mesa's lavapipe where there is no GPU), shows data, saves a
//! screenshot with `--screenshot` and exits. The picture must show the
//! three slice views and the 3D view.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// A private X server for one test. `xvfb-run -a` picks its display by
/// looking for a free lock file in /tmp, which cannot see a server another
/// container or test started on the same number (the abstract socket is
/// shared): CI saw the app fail with "Failed to open connection to X
/// server". Xvfb's own `-displayfd` binds the first number that is really
/// free and reports it, so there is no race. The tests still take turns:
/// two lavapipe windows at once on two cores only slow each other down.
struct Xvfb {
    server: std::process::Child,
    display: String,
    _turn: MutexGuard<'static, ()>,
}

static XVFB: Mutex<()> = Mutex::new(());

impl Xvfb {
    fn start() -> Self {
        use std::io::BufRead;
        let turn = XVFB
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let server = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1400x900x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Xvfb (package xvfb; the README's test command installs it)");
        // Owned before anything can fail, so the server is killed on drop.
        let mut x = Self {
            display: String::new(),
            server,
            _turn: turn,
        };
        let stdout = x.server.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("xvfb-display".into())
            .spawn(move || {
                let mut line = String::new();
                let _ = std::io::BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            })
            .unwrap();
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("Xvfb reported no display within 60 s");
        let number = line.trim();
        assert!(
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
            "Xvfb reported no display ({line:?})"
        );
        x.display = format!(":{number}");
        x
    }

    /// `program` with this server's display and a clean session around it.
    fn command(&self, program: &str, runtime: &Path, home: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DISPLAY", &self.display)
            .env("XDG_RUNTIME_DIR", runtime)
            .env("HOME", home)
            .env_remove("XAUTHORITY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        cmd
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Runs `session` on a fresh X server. About one start in fifteen here (and
/// both scripted sessions of one CI run) the app's first connection to a
/// server that has just reported itself ready fails ("Failed to open
/// connection to X server") while a plain X client never does; the cause is
/// not found. When `session` says the app never got its window (`None`),
/// it runs again on a new server, at most three times. Only the window's
/// opening is retried: what the session checks once the window is up is
/// asserted on the first try.
fn on_fresh_display<T>(mut session: impl FnMut(&Xvfb) -> Option<T>) -> T {
    for attempt in 1..=3 {
        let x = Xvfb::start();
        if let Some(done) = session(&x) {
            return done;
        }
        eprintln!(
            "attempt {attempt}: the app could not connect to Xvfb {}; again on a new server",
            x.display
        );
    }
    panic!("the app never opened its window on a fresh Xvfb (3 attempts)");
}

/// What winit says when the app could not connect to the X server (the
/// one failure retried; any other failure to open the window is the app's
/// and fails the test).
const NO_WINDOW: &str = "Failed to open connection to X server";

fn screenshot(args: &[&Path], out: &Path) -> image::RgbaImage {
    on_fresh_display(|x| {
        let runtime = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let run = x
            .command(env!("CARGO_BIN_EXE_ume"), runtime.path(), home.path())
            .arg("view")
            .args(args)
            .arg("--screenshot")
            .arg(out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        eprint!("{stderr}");
        if !run.status.success() && stderr.contains(NO_WINDOW) {
            return None;
        }
        assert!(run.status.success(), "ume view exited with {}", run.status);
        Some(image::open(out).unwrap().to_rgba8())
    })
}

/// Share of pixels in a region that are neither black nor panel grey.
fn lit_share(img: &image::RgbaImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
    let mut lit = 0;
    let mut n = 0;
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel(x, y);
            let max = p[0].max(p[1]).max(p[2]);
            if max > 60 {
                lit += 1;
            }
            n += 1;
        }
    }
    f64::from(lit) / f64::from(n.max(1))
}

fn assert_four_views(img: &image::RgbaImage, what: &str) {
    let (w, h) = img.dimensions();
    assert!(w >= 800 && h >= 600, "{what}: window {w}×{h}");
    // The views fill the area right of the control panel: check each quadrant.
    let (x0, x1, y0, y1) = (w * 35 / 100, w - 10, h * 6 / 100, h * 88 / 100);
    let (mx, my) = ((x0 + x1) / 2, (y0 + y1) / 2);
    for (name, q) in [
        ("axial", (x0, y0, mx, my)),
        ("3D", (mx, y0, x1, my)),
        ("coronal", (x0, my, mx, y1)),
        ("sagittal", (mx, my, x1, y1)),
    ] {
        let share = lit_share(img, q.0, q.1, q.2, q.3);
        assert!(
            share > 0.03,
            "{what}: the {name} view looks empty ({:.1}% lit)",
            share * 100.0
        );
    }
}

#[test]
fn window_shows_a_real_nifti_with_labels() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/github-niivue");
    if !data.is_dir() {
        eprintln!("../shared/testdata not present");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("flair.png");
    let img = screenshot(
        &[
            &data.join("FLAIR.nii.gz"),
            Path::new("--labels"),
            &data.join("lesion.nii.gz"),
        ],
        &out,
    );
    assert_four_views(&img, "FLAIR + lesion");
}

#[test]
fn window_shows_a_brats_phantom_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = ume::phantom::generate(
        ume::phantom::Kind::Brats,
        ume::phantom::Size::Small,
        4,
        1,
        tmp.path(),
        |_, _| {},
    )
    .unwrap();
    let out = tmp.path().join("brats.png");
    let img = screenshot(&[&dirs[0]], &out);
    assert_four_views(&img, "BraTS phantom");
    // The tumour overlay colours (edema green) appear somewhere.
    let green = img
        .pixels()
        .filter(|p| p[1] > 120 && p[1] > p[0] + 40 && p[1] > p[2] + 40)
        .count();
    assert!(green > 200, "edema overlay visible ({green} green pixels)");
}

/// Run `ume view IMAGE --labels LABELS --save-labels-to OUT` on a fresh Xvfb;
/// once its window is up, `keys` (a shell snippet of xdotool commands) is
/// typed into it, then Ctrl+S until OUT appears, then Ctrl+Q.
fn scripted_session(image: &Path, labels: &Path, out: &Path, keys: &str) {
    let script = r#"
        "$UME" view "$IMAGE" --labels "$LABELS" --save-labels-to "$OUT" 2>"$ERR" &
        pid=$!
        win=""
        for i in $(seq 1 120); do
            win=$(xdotool search --name '^UME' 2>/dev/null | head -n1)
            [ -n "$win" ] && break
            if ! kill -0 $pid 2>/dev/null; then
                cat "$ERR" >&2
                grep -q "$NO_WINDOW" "$ERR" && exit 4
                echo "ume view exited before its window appeared"; exit 2
            fi
            sleep 0.5
        done
        [ -n "$win" ] || { cat "$ERR" >&2; echo "no UME window"; kill $pid; exit 2; }
        sleep 4
        # No window manager under Xvfb: focus the window, then type and
        # move the mouse through XTEST as a user would.
        xdotool windowfocus --sync "$win" 2>/dev/null || xdotool windowfocus "$win"
        eval "$KEYS"
        for i in $(seq 1 20); do
            xdotool windowfocus "$win" 2>/dev/null
            xdotool key --clearmodifiers ctrl+s
            for j in $(seq 1 10); do
                [ -s "$OUT" ] && break 2
                sleep 0.5
            done
        done
        xdotool windowfocus "$win" 2>/dev/null
        xdotool key --clearmodifiers ctrl+q
        for i in $(seq 1 40); do
            kill -0 $pid 2>/dev/null || exit 0
            sleep 0.5
        done
        cat "$ERR" >&2; echo "UME did not quit on Ctrl+Q"; kill $pid; exit 3
    "#;
    on_fresh_display(|x| {
        let runtime = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let status = x
            .command("sh", runtime.path(), home.path())
            .args(["-c", script])
            .env("UME", env!("CARGO_BIN_EXE_ume"))
            .env("IMAGE", image)
            .env("LABELS", labels)
            .env("OUT", out)
            .env("KEYS", keys)
            .env("ERR", home.path().join("ume.stderr"))
            .env("NO_WINDOW", NO_WINDOW)
            .status()
            .expect("sh");
        // 4: the app could not connect to the server.
        if status.code() == Some(4) {
            return None;
        }
        assert!(status.success(), "the scripted session failed: {status}");
        Some(())
    });
    assert!(out.is_file(), "Ctrl+S wrote {}", out.display());
}

/// A BraTS phantom case: (t1 image, seg labels) in `dir`.
fn brats_case(dir: &Path) -> (PathBuf, PathBuf) {
    let dirs = ume::phantom::generate(
        ume::phantom::Kind::Brats,
        ume::phantom::Size::Small,
        6,
        1,
        dir,
        |_, _| {},
    )
    .unwrap();
    let name = dirs[0].file_name().unwrap().to_string_lossy().to_string();
    (
        dirs[0].join(format!("{name}_t1.nii.gz")),
        dirs[0].join(format!("{name}_seg.nii.gz")),
    )
}

#[test]
fn ctrl_s_in_the_real_window_saves_the_labels_to_save_labels_to() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, labels) = brats_case(tmp.path());
    let out = tmp.path().join("out").join("saved_seg.nii.gz");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    scripted_session(&image, &labels, &out, "true");
    let saved = ume::io::load_labels(&out).unwrap();
    let original = ume::io::load_labels(&labels).unwrap();
    assert_eq!(saved.data, original.compacted().data);
    let (img, back) = (ume::io::load(&image).unwrap(), ume::io::load(&out).unwrap());
    assert_eq!(
        back.geometry.nifti, img.geometry.nifti,
        "the image's header geometry"
    );
}

/// nibabel's affine, codes and values of a file (None without nibabel).
fn nibabel(path: &Path) -> Option<serde_json::Value> {
    let script = "import sys, json, nibabel as nib, numpy as np\n\
        i = nib.load(sys.argv[1])\n\
        h = i.header\n\
        print(json.dumps({'affine': i.affine.tolist(), 'qform_code': int(h['qform_code']), \
        'sform_code': int(h['sform_code']), 'values': np.asanyarray(i.dataobj).astype(np.int64).ravel(order='F').tolist()}))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 with nibabel not found: cross-check not run");
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn b_and_a_left_drag_paint_a_stroke_that_ctrl_s_saves() {
    let tmp = tempfile::tempdir().unwrap();
    let (image, labels) = brats_case(tmp.path());
    let out = tmp.path().join("painted_seg.nii.gz");
    // B, then a left-drag across the axial view (top-left quadrant of the
    // views, right of the control panel).
    let keys = "xdotool key b; sleep 0.5; \
        xdotool mousemove 520 200; sleep 0.3; xdotool mousedown 1; \
        for x in 530 545 560 575 590 605 620; do xdotool mousemove $x 205; sleep 0.1; done; \
        xdotool mouseup 1; sleep 0.5";
    scripted_session(&image, &labels, &out, keys);
    let saved = ume::io::load_labels(&out).unwrap();
    let original = ume::io::load_labels(&labels).unwrap();
    let changed: Vec<usize> = (0..saved.len())
        .filter(|&i| saved.get(i) != original.get(i))
        .collect();
    assert!(
        changed.len() > 20,
        "a stroke was painted ({} voxels)",
        changed.len()
    );
    assert!(
        changed.iter().all(|&i| saved.get(i) == 1),
        "the change is the active label (1) only"
    );
    let [nx, ny, _] = saved.dims;
    let slices: std::collections::BTreeSet<usize> = changed.iter().map(|i| i / (nx * ny)).collect();
    assert_eq!(slices.len(), 1, "one axial slice: {slices:?}");
    if let (Some(ours), Some(theirs)) = (nibabel(&out), nibabel(&image)) {
        for key in ["affine", "qform_code", "sform_code"] {
            assert_eq!(ours[key], theirs[key], "{key}");
        }
        let values: Vec<i64> = serde_json::from_value(ours["values"].clone()).unwrap();
        let want: Vec<i64> = (0..saved.len()).map(|i| i64::from(saved.get(i))).collect();
        assert!(values == want, "nibabel reads exactly the painted labels");
    }
}
