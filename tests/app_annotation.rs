//! The label tools in the app, driven as a user would: fill with a click
//! (bounded by the slice and by another label), fill between slices,
//! accepting a prediction whole or one structure, the digit keys, and
//! undo/redo restoring the labels byte for byte after each.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use eframe::egui::{self, Key, Modifiers};
use egui_kittest::Harness;
use std::sync::Arc;
use ume::app::views::ViewId;
use ume::app::{Command, UmeApp};
use ume::phantom::Kind;
use ume::viewmath::SliceAxis;
use ume::volume::{LabelData, LabelVolume};

mod common;

fn labels(h: &Harness<'_, UmeApp>) -> LabelData {
    h.state()
        .doc
        .as_ref()
        .unwrap()
        .labels()
        .at_frame(h.state().cursor.frame)
        .unwrap()
        .data
        .clone()
}

fn map(h: &Harness<'_, UmeApp>) -> Arc<LabelVolume> {
    h.state()
        .doc
        .as_ref()
        .unwrap()
        .labels()
        .at_frame(0)
        .unwrap()
        .clone()
}

/// Undo then redo: the labels are back byte for byte each way.
fn undo_redo_exact(h: &mut Harness<'_, UmeApp>, before: &LabelData) {
    let after = labels(h);
    assert_ne!(&after, before, "the step changed something");
    common::press(h, Modifiers::COMMAND, Key::Z);
    assert_eq!(&labels(h), before, "undo restores the labels exactly");
    common::press(h, Modifiers::COMMAND, Key::Y);
    assert_eq!(labels(h), after, "redo restores the step exactly");
}

#[test]
fn fill_with_a_click_stays_in_its_region_and_slice() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let before = labels(&h);
    common::press(&mut h, Modifiers::NONE, Key::F);
    h.state_mut().settings.active_label = 7;
    // Click voxel (3, 3) of the crosshair's axial slice: background
    // outside the head.
    let p = {
        let s = h.state();
        let doc = s.doc.as_ref().unwrap();
        let g = &doc.layer(0).unwrap().volume.geometry;
        let k = ume::annotation::brush::voxel_of(g, s.cursor.crosshair_mm).unwrap()[2];
        let w = g.world_from_index([3.0, 3.0, k]);
        let plane = ume::app::views::plane_for(
            doc,
            &s.cursor,
            &s.settings,
            &s.camera,
            SliceAxis::Axial,
            rect,
        )
        .unwrap();
        let sc = plane.screen_from_world(w);
        egui::pos2(
            rect.left() + ((sc[0] + 1.0) / 2.0) as f32 * rect.width(),
            rect.top() + ((1.0 - sc[1]) / 2.0) as f32 * rect.height(),
        )
    };
    click(&mut h, p);
    common::settle(&mut h);
    let m = map(&h);
    let [nx, ny, _] = m.dims;
    let filled: Vec<usize> = (0..m.len()).filter(|&i| m.get(i) == 7).collect();
    assert!(!filled.is_empty(), "{}", h.state().notes.latest_text());
    let slices: std::collections::BTreeSet<usize> = filled.iter().map(|i| i / (nx * ny)).collect();
    assert_eq!(slices.len(), 1, "a 2D fill stays in the view's slice");
    // It replaced background only (the seed's id), never a tumour label.
    let old = match &before {
        LabelData::U8(d) => d.iter().map(|&x| u16::from(x)).collect::<Vec<_>>(),
        LabelData::U16(d) => d.clone(),
    };
    assert!(filled.iter().all(|&i| old[i] == 0));
    assert_eq!(h.state().doc.as_ref().unwrap().history_len(), (1, 0));
    undo_redo_exact(&mut h, &before);
}

#[test]
fn interpolation_accept_and_digits() {
    let (mut app, _tmp) = common::app_with(Kind::Brats, 2);
    // Keep label 2 (edema) on every 4th axial slice only, then fill
    // between them.
    let gt = common::labels_of(&app);
    let [nx, ny, nz] = gt.dims;
    let mut sparse = (*gt).clone();
    for k in (0..nz).filter(|k| k % 4 != 0) {
        for i in 0..nx * ny {
            let f = i + nx * ny * k;
            if sparse.get(f) == 2 {
                sparse.set(f, 0);
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sparse.nii.gz");
    ume::io::save_labels(&sparse, &path).unwrap();
    let ctx = egui::Context::default();
    app.load_labels(&ctx, path);
    // The prediction: the full ground truth.
    app.set_prediction(ume::app::document::Prediction::new(gt.clone(), "truth"))
        .unwrap();
    let mut h = common::settled(app);
    let dice_vs_gt = |m: &LabelVolume| {
        let c = ume::metrics::Confusion::new(m, &gt);
        let (tp, fp, fn_) = c.tp_fp_fn(2);
        ume::metrics::dice_from_counts(tp, fp, fn_)
    };
    let d0 = dice_vs_gt(&map(&h));
    // Digits pick the table's labels: BraTS' table is 1, 2, 4.
    common::press(&mut h, Modifiers::NONE, Key::Num2);
    assert_eq!(h.state().settings.active_label, 2);
    common::press(&mut h, Modifiers::NONE, Key::Num3);
    assert_eq!(h.state().settings.active_label, 4);
    common::press(&mut h, Modifiers::NONE, Key::Num2);
    // Fill between slices along the axial view (I).
    h.state_mut().camera.focus = SliceAxis::Axial;
    let before = labels(&h);
    common::press(&mut h, Modifiers::NONE, Key::I);
    common::settle(&mut h);
    let d1 = dice_vs_gt(&map(&h));
    assert!(d1 > d0 + 0.1 && d1 > 0.85, "edema Dice {d0:.3} -> {d1:.3}");
    undo_redo_exact(&mut h, &before);

    // Accept one structure, then the whole prediction.
    let before = labels(&h);
    let ctx = h.ctx.clone();
    h.state_mut().accept_prediction(&ctx, Some(2));
    common::settle(&mut h);
    assert_eq!(dice_vs_gt(&map(&h)), 1.0, "edema is the prediction's");
    undo_redo_exact(&mut h, &before);
    h.state_mut().run_command(&ctx, Command::AcceptPrediction);
    common::settle(&mut h);
    assert_eq!(map(&h).data, gt.data, "the labels are the prediction");
}

#[test]
fn label_table_import_export_and_undo() {
    let (app, tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    assert!(
        !h.state().doc.as_ref().unwrap().is_dirty(),
        "showing the table changes nothing"
    );
    // An ITK-SNAP label description file as ITK-SNAP writes it.
    let snap = tmp.path().join("labels.txt");
    std::fs::write(
        &snap,
        "################################################\n\
         # ITK-SnAP Label Description File\n\
         ################################################\n\
             0     0    0    0        0  0  0    \"Clear Label\"\n\
             1   255    0    0        1  1  1    \"necrosis\"\n\
             2     0  255    0        1  1  1    \"peritumoral oedema\"\n\
             4     0    0  255     0.50  1  0    \"enhancing\"\n",
    )
    .unwrap();
    h.state_mut().import_table(&snap);
    h.step();
    let t = h.state().doc.as_ref().unwrap().table().clone();
    assert_eq!(
        t.labels.iter().map(|l| (l.id, l.color)).collect::<Vec<_>>(),
        vec![(1, [255, 0, 0]), (2, [0, 255, 0]), (4, [0, 0, 255])]
    );
    assert_eq!(t.name_of(4), Some("enhancing"));
    // Export as ITK-SNAP and as JSON; both read back to the same table.
    let out_txt = tmp.path().join("out.txt");
    let out_json = tmp.path().join("out.json");
    h.state_mut().export_table(&out_txt);
    h.state_mut().export_table(&out_json);
    let txt = std::fs::read_to_string(&out_txt).unwrap();
    assert!(
        txt.contains("    1   255    0    0        1  1  1    \"necrosis\""),
        "{txt}"
    );
    assert_eq!(
        ume::volume::LabelTable::from_itksnap(&txt).unwrap().labels,
        t.labels
    );
    let json =
        ume::volume::LabelTable::from_json(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
    assert_eq!(json.labels, t.labels);
    // The import is one undo step.
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(
        h.state().doc.as_ref().unwrap().table().name_of(4),
        Some("enhancing_tumor")
    );
    common::press(&mut h, Modifiers::COMMAND, Key::Y);
    assert_eq!(
        h.state().doc.as_ref().unwrap().table().name_of(4),
        Some("enhancing")
    );
    // A malformed file is an error naming it, the table is kept.
    let bad = tmp.path().join("bad.txt");
    std::fs::write(&bad, "1 2 3\n").unwrap();
    h.state_mut().import_table(&bad);
    assert!(h.state().notes.errors().any(|n| n.text.contains("bad.txt")));
    assert_eq!(h.state().doc.as_ref().unwrap().table().labels, t.labels);
}

fn click(h: &mut Harness<'_, UmeApp>, p: egui::Pos2) {
    h.hover_at(p);
    h.step();
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos: p,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        });
        h.step();
    }
    // Past the double-click interval, so clicks stay single.
    for _ in 0..25 {
        h.step();
    }
}

fn count(h: &Harness<'_, UmeApp>, id: u16) -> usize {
    let m = map(h);
    (0..m.len()).filter(|&i| m.get(i) == id).count()
}

#[test]
fn polygon_by_clicks_and_lasso_by_drag_fill_their_outline() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let c = rect.center();
    let before = labels(&h);
    common::press(&mut h, Modifiers::NONE, Key::P);
    h.state_mut().settings.active_label = 8;
    for d in [(-40.0, -40.0), (40.0, -40.0), (40.0, 40.0), (-40.0, 40.0)] {
        click(&mut h, c + egui::vec2(d.0, d.1));
    }
    assert_eq!(count(&h, 8), 0, "nothing until the outline closes");
    click(&mut h, c + egui::vec2(-39.0, -39.0));
    let square = count(&h, 8);
    assert!(square > 100, "the square is filled: {square}");
    let m = map(&h);
    let [nx, ny, _] = m.dims;
    let slices: std::collections::BTreeSet<usize> = (0..m.len())
        .filter(|&i| m.get(i) == 8)
        .map(|i| i / (nx * ny))
        .collect();
    assert_eq!(slices.len(), 1);
    undo_redo_exact(&mut h, &before);

    // A lasso: a drag around a smaller square, filled on release.
    h.state_mut().settings.active_label = 9;
    let from = c + egui::vec2(60.0, -20.0);
    h.hover_at(from);
    h.event(egui::Event::PointerButton {
        pos: from,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for p in [
        (80.0, -20.0),
        (80.0, 0.0),
        (80.0, 20.0),
        (60.0, 20.0),
        (60.0, 0.0),
    ] {
        h.event(egui::Event::PointerMoved(c + egui::vec2(p.0, p.1)));
        h.step();
    }
    h.event(egui::Event::PointerButton {
        pos: c + egui::vec2(60.0, 0.0),
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    h.step();
    let lasso = count(&h, 9);
    assert!(lasso > 10 && lasso < square, "the lasso is filled: {lasso}");
}

#[test]
fn a_stroke_in_side_by_side_modalities_paints_only_under_the_pointer() {
    // Four views share the axial axis; before, each continued the stroke
    // from its own rectangle and painted bands across the image.
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    h.state_mut().settings.layout = ume::app::Layout::Modalities;
    h.step();
    h.step();
    common::press(&mut h, Modifiers::NONE, Key::B);
    h.state_mut().settings.active_label = 5;
    h.state_mut().settings.brush_radius_mm = 2.0;
    // The first (leftmost) modality view spans the left quarter.
    let p = egui::pos2(450.0, 350.0);
    common::drag(
        &mut h,
        p,
        egui::vec2(30.0, 0.0),
        egui::PointerButton::Primary,
    );
    let n = count(&h, 5);
    // A 30-point drag with a 2 mm brush covers tens of voxels, not a band.
    assert!(n > 5 && n < 400, "{n} voxels painted");
}

/// The label under a screen point of the axial view.
fn label_under(h: &Harness<'_, UmeApp>, rect: egui::Rect, p: egui::Pos2) -> u16 {
    let w = common::world_at(h, rect, p);
    let s = h.state();
    let doc = s.doc.as_ref().unwrap();
    let v = &doc.layer(0).unwrap().volume;
    let [i, j, k] = ume::viewmath::voxel_at(&v.geometry, v.dims, w).unwrap();
    let m = doc.labels().at_frame(s.cursor.frame).unwrap();
    m.get(m.frame_offset(s.cursor.frame.min(m.frames - 1)) + i + m.dims[0] * (j + m.dims[1] * k))
}

/// The brush with `label` and `radius_mm`.
fn brush(h: &mut Harness<'_, UmeApp>, label: u16, radius_mm: f64) {
    common::press(h, Modifiers::NONE, Key::B);
    h.state_mut().settings.active_label = label;
    h.state_mut().settings.brush_radius_mm = radius_mm;
}

#[test]
fn a_fast_stroke_follows_its_path_and_quick_clicks_stay_apart() {
    // On a slow frame (software rendering) a stroke's moves, and a click's
    // press and release, arrive within one frame. Sampling the pointer
    // once a frame cut the corner below with a chord, and ran two clicks
    // together into one undo step.
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    brush(&mut h, 5, 1.0);
    let button = |pos, pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: Modifiers::NONE,
    };
    // A first dot, so the label table already lists label 5 and the
    // views keep their place below.
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let dot = rect.center() + egui::vec2(-60.0, -60.0);
    h.hover_at(dot);
    h.input_mut().events.push(button(dot, true));
    h.input_mut().events.push(button(dot, false));
    for _ in 0..4 {
        h.step();
    }
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let c = rect.center() - egui::vec2(20.0, 20.0);
    let corner = c + egui::vec2(40.0, 0.0);
    let end = c + egui::vec2(40.0, 40.0);
    h.hover_at(c);
    h.input_mut().events.push(button(c, true));
    for i in 1..=4 {
        h.input_mut().events.push(egui::Event::PointerMoved(
            c + egui::vec2(10.0 * i as f32, 0.0),
        ));
    }
    for i in 1..=4 {
        h.input_mut().events.push(egui::Event::PointerMoved(
            corner + egui::vec2(0.0, 10.0 * i as f32),
        ));
    }
    h.input_mut().events.push(button(end, false));
    h.step();
    h.step();
    for p in [c, corner, end] {
        assert_eq!(label_under(&h, rect, p), 5, "painted under {p:?}");
    }
    let chord_middle = c + (end - c) / 2.0;
    assert_eq!(
        label_under(&h, rect, chord_middle),
        0,
        "the stroke did not cut the corner"
    );

    // Two clicks within one frame: two dots, two undo steps.
    let (a, b) = (
        rect.center() + egui::vec2(-60.0, 40.0),
        rect.center() + egui::vec2(-30.0, 40.0),
    );
    let before = labels(&h);
    for p in [a, b] {
        h.input_mut().events.push(egui::Event::PointerMoved(p));
        h.input_mut().events.push(button(p, true));
        h.input_mut().events.push(button(p, false));
    }
    h.step();
    h.step();
    assert_eq!((label_under(&h, rect, a), label_under(&h, rect, b)), (5, 5));
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(
        (label_under(&h, rect, a), label_under(&h, rect, b)),
        (5, 0),
        "one undo takes back the second click only"
    );
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(labels(&h), before, "the second undo the first click");

    // Keys run in the order pressed: Ctrl+Y then Ctrl+Z within one frame
    // is redo then undo (the first click painted again, then taken back).
    for (key, modifiers) in [(Key::Y, Modifiers::COMMAND), (Key::Z, Modifiers::COMMAND)] {
        for pressed in [true, false] {
            h.input_mut().events.push(egui::Event::Key {
                key,
                physical_key: None,
                pressed,
                repeat: false,
                modifiers,
            });
        }
    }
    h.step();
    assert_eq!(labels(&h), before, "redo, then undo");
}

#[test]
fn on_an_oblique_stack_the_brush_paints_what_the_view_shows() {
    // ACDC case 1 is a double-oblique short-axis stack (34° off the world
    // axes). The views show its own voxel slices, so a stroke lands under
    // the pointer, in the slice on screen; before, the axial view cut
    // across the slices and showed a sliver of the stroke.
    let (app, _tmp) = common::app_with(Kind::Acdc, 2);
    let mut h = common::settled(app);
    brush(&mut h, 7, 3.0);
    // A first dot, so the label table lists label 7 and the views keep
    // their place below.
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    common::drag(
        &mut h,
        rect.center() + egui::vec2(-60.0, -60.0),
        egui::vec2(0.0, 0.0),
        egui::PointerButton::Primary,
    );
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let start = rect.center() + egui::vec2(-40.0, 10.0);
    common::drag(
        &mut h,
        start,
        egui::vec2(80.0, 0.0),
        egui::PointerButton::Primary,
    );
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    for i in 0..=8 {
        let p = start + egui::vec2(10.0 * i as f32, 0.0);
        assert_eq!(label_under(&h, rect, p), 7, "under the stroke at {p:?}");
    }
    // All in one voxel slice of the stack.
    let s = h.state();
    let m = s
        .doc
        .as_ref()
        .unwrap()
        .labels()
        .at_frame(s.cursor.frame)
        .unwrap();
    let plane = m.dims[0] * m.dims[1];
    let base = m.frame_offset(s.cursor.frame.min(m.frames - 1));
    let slices: std::collections::BTreeSet<usize> = (0..plane * m.dims[2])
        .filter(|&i| m.get(base + i) == 7)
        .map(|i| i / plane)
        .collect();
    assert_eq!(slices.len(), 1, "painted slices {slices:?}");
}
