//! The app's panels and views driven through egui_kittest, as a user would:
//! click to move the crosshair, right-drag to window, use the frame slider,
//! toggle a label, play the cine. These run without a GPU renderer (state
//! checks); pixels are checked in `render_gpu.rs` and `window_e2e.rs`.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::sync::Arc;
use ume::app::document::Prediction;
use ume::app::views::ViewId;
use ume::app::{LoadRequest, UmeApp, ViewOptions};
use ume::phantom::Kind;
use ume::viewmath::SliceAxis;

mod common;

fn app_with(kind: Kind) -> (UmeApp, tempfile::TempDir) {
    common::app_with(kind, 2)
}

fn harness(app: UmeApp) -> Harness<'static, UmeApp> {
    let mut h = harness_unsettled(app);
    settle(&mut h);
    h
}

/// Let background work finish, then run the UI until it is idle.
fn settle(h: &mut Harness<'_, UmeApp>) {
    common::settle(h);
    h.run();
}

/// A harness that has not been run yet (for UIs with background work whose
/// spinners keep repainting).
fn harness_unsettled(app: UmeApp) -> Harness<'static, UmeApp> {
    common::harness(app, 1200.0, 800.0)
}

fn rect_of(h: &Harness<'_, UmeApp>, view: ViewId) -> egui::Rect {
    h.state()
        .view_rects
        .iter()
        .find(|(v, _)| *v == view)
        .map(|(_, r)| *r)
        .unwrap()
}

fn press(h: &Harness<'_, UmeApp>, pos: egui::Pos2, button: egui::PointerButton, pressed: bool) {
    h.event(egui::Event::PointerButton {
        pos,
        button,
        pressed,
        modifiers: egui::Modifiers::NONE,
    });
}

/// Press at `from`, move by `by` in ten steps, release: a user's drag.
fn drag(
    h: &mut Harness<'_, UmeApp>,
    from: egui::Pos2,
    by: egui::Vec2,
    button: egui::PointerButton,
) {
    h.hover_at(from);
    press(h, from, button, true);
    h.run();
    for i in 1..=10 {
        h.event(egui::Event::PointerMoved(from + by * (i as f32 / 10.0)));
        h.run();
    }
    press(h, from + by, button, false);
    h.run();
}

#[test]
fn click_moves_the_crosshair_in_world_space() {
    let (app, _tmp) = app_with(Kind::Brats);
    let mut h = harness(app);
    let rect = rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let before = h.state().cursor.crosshair_mm;
    // A point left of and above the centre of the axial view: in the
    // radiological convention that is towards the patient's right (+x) and anterior (+y).
    let p = rect.center() + egui::vec2(-rect.width() * 0.2, -rect.height() * 0.2);
    h.hover_at(p);
    press(&h, p, egui::PointerButton::Primary, true);
    h.run();
    press(&h, p, egui::PointerButton::Primary, false);
    h.run();
    let after = h.state().cursor.crosshair_mm;
    assert!(
        after[0] > before[0] + 5.0,
        "x should move to the patient's right: {before:?} -> {after:?}"
    );
    assert!(
        after[1] > before[1] + 5.0,
        "y should move anterior: {before:?} -> {after:?}"
    );
    assert_eq!(after[2], before[2], "an axial click keeps the slice");
}

#[test]
fn right_drag_changes_window_and_one_wheel_notch_is_one_slice() {
    let (app, _tmp) = app_with(Kind::Brats);
    let mut h = harness(app);
    let rect = rect_of(&h, ViewId::Slice(SliceAxis::Coronal));
    let w0 = h.state().window().unwrap();
    let p = rect.center();
    drag(
        &mut h,
        p,
        egui::vec2(80.0, 0.0),
        egui::PointerButton::Secondary,
    );
    let w1 = h.state().window().unwrap();
    assert!(
        w1.1 - w1.0 > w0.1 - w0.0,
        "dragging right widens the window: {w0:?} -> {w1:?}"
    );

    let y0 = h.state().cursor.crosshair_mm[1];
    let step = {
        let doc = h.state().doc.as_ref().unwrap();
        ume::viewmath::slice_step_mm(&doc.layer(0).unwrap().volume.geometry, SliceAxis::Coronal)
    };
    h.hover_at(p);
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: egui::vec2(0.0, 1.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: egui::Modifiers::NONE,
    });
    h.run();
    let y1 = h.state().cursor.crosshair_mm[1];
    // Before, egui's smoothed delta stepped once per frame while it lasted:
    // one notch moved about four slices.
    assert!(
        ((y1 - y0).abs() - step).abs() < 1e-9,
        "one notch, one coronal slice ({step} mm): {y0} -> {y1}"
    );
}

#[test]
fn label_visibility_toggles() {
    let (app, _tmp) = app_with(Kind::Brats);
    let mut h = harness(app);
    assert!(h.state().settings.is_visible(2));
    h.get_by_label("2 edema").click();
    h.run();
    assert!(!h.state().settings.is_visible(2), "edema hidden");
    let s = h.state();
    assert_eq!(s.doc.as_ref().unwrap().palette(&s.settings.hidden)[2][3], 0);
}

#[test]
fn frame_slider_and_cine_change_the_frame() {
    let (app, _tmp) = app_with(Kind::Acdc);
    let mut h = harness(app);
    let doc = h.state().doc.as_ref().unwrap();
    assert!(doc.frames() >= 20);
    assert_eq!(h.state().cursor.frame, doc.acdc().unwrap().ed_index());
    // The slider (not its text label) is the node that has a value; it
    // numbers frames from 1, as Info.cfg and the `_frameNN` files do.
    h.get_all_by_label("frame")
        .find(|n| n.value().is_some())
        .unwrap()
        .set_value_accesskit(6.0);
    h.run();
    assert_eq!(h.state().cursor.frame, 5);
    h.get_by_label("Play").click();
    h.run_steps(30);
    assert!(h.state().playing);
    assert_ne!(h.state().cursor.frame, 5, "playing advances frames");
    h.get_by_label("Pause").click();
    h.run_steps(2);
    assert!(!h.state().playing);
}

#[test]
fn a_rejected_file_shows_its_error_and_the_app_lives_on() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken_scan.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00 this is not a gzip stream").unwrap();
    let app = UmeApp::new(&egui::Context::default(), None, &ViewOptions::default());
    let mut h = harness(app);
    let ctx = h.ctx.clone();
    h.state_mut().open(
        &ctx,
        LoadRequest::Files {
            paths: vec![bad],
            labels: None,
        },
    );
    // The load runs on its own thread; the UI keeps drawing meanwhile.
    for _ in 0..200 {
        // step, not run: the loading spinner keeps asking for repaints.
        h.step();
        if !h.state().is_loading() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.run();
    let err = h
        .state()
        .notes
        .errors()
        .next()
        .expect("an error is shown")
        .text
        .clone();
    assert!(
        err.contains("broken_scan.nii.gz") && err.contains("gzip"),
        "{err}"
    );
    h.get_by_label_contains("broken_scan.nii.gz");
    h.get_by_label("OK").click();
    h.run();
    assert!(!h.state().notes.has_error());
    assert!(h.state().doc.is_none());
}

#[test]
fn modalities_side_by_side_share_one_crosshair() {
    let (app, _tmp) = app_with(Kind::Brats);
    let mut h = harness(app);
    h.get_by_label("View").click();
    h.run();
    h.get_by_label("Modalities side by side").click();
    h.run();
    assert_eq!(h.state().settings.layout, ume::app::Layout::Modalities);
    assert!(h.state().view_rects.is_empty() || h.state().view_rects.len() == 4);
}

#[test]
fn drag_rotates_the_3d_view() {
    let (app, _tmp) = app_with(Kind::Brats);
    let mut h = harness(app);
    let rect = rect_of(&h, ViewId::ThreeD);
    let yaw0 = h.state().camera.orbit.yaw;
    let p = rect.center();
    drag(
        &mut h,
        p,
        egui::vec2(100.0, 0.0),
        egui::PointerButton::Primary,
    );
    assert!(
        h.state().camera.orbit.yaw > yaw0 + 0.5,
        "orbit yaw {yaw0} -> {}",
        h.state().camera.orbit.yaw
    );
}

#[test]
fn a_prediction_fills_the_metrics_table() {
    let (mut app, _tmp) = app_with(Kind::Brats);
    // The prediction: the ground truth moved two voxels along x.
    let pred = common::shifted(&common::labels_of(&app), 2);
    app.set_prediction(Prediction::new(Arc::new(pred), "pred.nii.gz"))
        .unwrap();
    let mut h = harness(app);
    for _ in 0..300 {
        h.step();
        if h.state().eval.result.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.step();
    let result = h
        .state()
        .eval
        .result
        .clone()
        .expect("metrics computed in the background");
    assert_eq!(result.structures.len(), 3);
    assert!(result.mean_dice > 0.3 && result.mean_dice < 1.0);
    h.get_by_label("edema");
    h.get_by_label_contains("mean Dice");
    // Sort by structure name, then show the difference overlay.
    // The metrics panel leaves the views usable: inside the window, each
    // at least a fifth of its width (before, they shrank to thumbnails).
    for (v, r) in &h.state().view_rects {
        assert!(r.right() <= 1200.5 && r.width() >= 240.0, "{v:?} at {r:?}");
    }
    h.get_by_label("structure").click();
    h.step();
    assert_eq!(h.state().eval.sort.0, ume::app::evaluation::Column::Name);
    h.get_by_label("difference").click();
    h.step();
    assert_eq!(
        h.state().settings.overlay,
        ume::app::evaluation::Overlay::Difference
    );
    // The difference map is built by a job, for every frame at once.
    for _ in 0..300 {
        h.step();
        let s = h.state();
        if s.eval.difference(s.doc.as_ref().unwrap()).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let s = h.state();
    let doc = s.doc.as_ref().unwrap();
    let diff = ume::app::evaluation::shown_labels(doc, &s.eval, s.settings.overlay, 0).unwrap();
    let counts = diff.counts();
    assert!(
        counts[1] > 0 && counts[2] > 0,
        "false positives and negatives: {counts:?}"
    );
}

#[test]
fn keyframe_filmstrip_jumps_to_a_selected_frame() {
    let (app, _tmp) = app_with(Kind::Acdc);
    let mut h = harness(app);
    for _ in 0..300 {
        h.step();
        if h.state().keyframes.selection.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    h.step();
    let sel = h
        .state()
        .keyframes
        .selection
        .clone()
        .expect("keyframes selected in the background");
    assert_eq!(sel.selected.len(), 2);
    let es = h.state().doc.as_ref().unwrap().acdc().unwrap().es_index();
    let target = *sel
        .selected
        .iter()
        .find(|&&t| t != h.state().cursor.frame)
        .unwrap();
    let ed = h.state().doc.as_ref().unwrap().acdc().unwrap().ed_index();
    // Frames are numbered from 1 on screen.
    let shown = target + 1;
    let label = if target == es {
        format!("frame {shown} (ES)")
    } else if target == ed {
        format!("frame {shown} (ED)")
    } else {
        format!("frame {shown}")
    };
    h.get_by_label(&label).click();
    h.step();
    assert_eq!(h.state().cursor.frame, target);
    assert!(
        sel.selected.iter().any(|&t| t.abs_diff(es) <= 1),
        "{:?} vs ES {es}",
        sel.selected
    );
}

#[test]
fn every_shared_testdata_image_opens_and_uploads() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    if !dir.is_dir() {
        eprintln!("../shared/testdata not present");
        return;
    }
    let mut opened = 0;
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.to_string_lossy().to_string();
            if !(name.ends_with(".nii")
                || name.ends_with(".nii.gz")
                || name.ends_with(".hdr")
                || name.ends_with(".hdr.gz"))
            {
                continue;
            }
            let doc = ume::app::loader::load(
                &LoadRequest::Files {
                    paths: vec![p.clone()],
                    labels: None,
                },
                &|_| {},
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let layer = doc.layer(0).unwrap();
            for t in [0, layer.volume.frames - 1] {
                let (dims, values, grid) = ume::app::upload::frame_upload(layer, t, 2048);
                assert_eq!(
                    values.len(),
                    dims.iter().map(|&d| d as usize).product::<usize>(),
                    "{name}"
                );
                assert!(
                    viewmath_ok(&grid),
                    "{name}: texture grid has a singular affine"
                );
            }
            // The whole UI draws it without panicking.
            let mut app = UmeApp::new(&egui::Context::default(), None, &ViewOptions::default());
            app.set_document(doc);
            let mut h = harness_unsettled(app);
            h.run_steps(5);
            opened += 1;
        }
    }
    assert!(opened >= 25, "opened {opened}");
}

fn viewmath_ok(grid: &ume::app::views::TexGrid) -> bool {
    ume::viewmath::tex_from_world(&grid.geometry, grid.dims).is_some()
}
