//! The app core driven as a user would, through egui_kittest's real input
//! path: every contracted keyboard shortcut, Ctrl+wheel zoom, middle-drag
//! pan, settings that survive a restart, saving labels (Ctrl+S to
//! `--save-labels-to`, Save labels as… through UME's own browser) that
//! read back with the image's exact geometry, opening labels onto an image
//! (a wrong grid is an error, the image stays), and a new case starting
//! afresh.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use eframe::egui::{self, Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::collections::HashMap;
use std::path::Path;
use ume::app::settings::{Settings, Tool};
use ume::app::views::ViewId;
use ume::app::{Command, UmeApp, autosave};
use ume::phantom::Kind;
use ume::viewmath::SliceAxis;

mod common;

#[test]
fn every_contracted_shortcut_runs_its_command() {
    let (app, case_dir) = common::app_with(Kind::Acdc, 2);
    let mut h = common::settled(app);
    let axial = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    h.hover_at(axial.center());
    h.step();

    // Tools and brush size.
    for (key, tool) in [
        (Key::B, Tool::Brush),
        (Key::E, Tool::Eraser),
        (Key::F, Tool::Fill),
        (Key::P, Tool::Polygon),
        (Key::C, Tool::Crosshair),
    ] {
        common::press(&mut h, Modifiers::NONE, key);
        assert_eq!(h.state().settings.tool, tool, "{key:?}");
    }
    let r0 = h.state().settings.brush_radius_mm;
    common::press(&mut h, Modifiers::NONE, Key::CloseBracket);
    assert!(h.state().settings.brush_radius_mm > r0, "] grows the brush");
    common::press(&mut h, Modifiers::NONE, Key::OpenBracket);
    common::press(&mut h, Modifiers::NONE, Key::OpenBracket);
    assert!(h.state().settings.brush_radius_mm < r0, "[ shrinks it");

    // Slices: PageUp/PageDown and the arrows, one slice each, in the view
    // under the pointer (this cine is oblique: a slice step is along the
    // stack's axis, which the axial view follows).
    let (step, normal) = {
        let doc = h.state().doc.as_ref().unwrap();
        let g = &doc.layer(0).unwrap().volume.geometry;
        let (_, _, normal) =
            ume::viewmath::view_axes(SliceAxis::Axial, ume::viewmath::Convention::Radiological, g);
        (ume::viewmath::slice_step_mm(g, SliceAxis::Axial), normal)
    };
    let depth = |h: &Harness<'_, UmeApp>| {
        let c = h.state().cursor.crosshair_mm;
        c[0] * normal[0] + c[1] * normal[1] + c[2] * normal[2]
    };
    for (key, sign) in [
        (Key::PageUp, 1.0),
        (Key::PageDown, -1.0),
        (Key::ArrowUp, 1.0),
        (Key::ArrowDown, -1.0),
    ] {
        let z0 = depth(&h);
        common::press(&mut h, Modifiers::NONE, key);
        let z1 = depth(&h);
        assert!(
            (z1 - z0 - sign * step).abs() < 1e-9,
            "{key:?}: {z0} -> {z1}"
        );
    }

    // Presses that arrive within one frame all count: a held key repeats,
    // and a slow frame (software rendering) queues several.
    let z0 = depth(&h);
    for pressed in [true, false, true, false, true, false] {
        h.input_mut().events.push(egui::Event::Key {
            key: Key::PageUp,
            physical_key: None,
            pressed,
            repeat: false,
            modifiers: Modifiers::NONE,
        });
    }
    h.step();
    let z1 = depth(&h);
    assert!(
        (z1 - z0 - 3.0 * step).abs() < 1e-6,
        "three PageUps in one frame: {z0} -> {z1}"
    );
    for _ in 0..3 {
        h.input_mut().events.push(egui::Event::Key {
            key: Key::PageDown,
            physical_key: None,
            pressed: true,
            repeat: true,
            modifiers: Modifiers::NONE,
        });
    }
    h.input_mut().events.push(egui::Event::Key {
        key: Key::PageDown,
        physical_key: None,
        pressed: false,
        repeat: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    let z2 = depth(&h);
    assert!(
        (z1 - z2 - 3.0 * step).abs() < 1e-6,
        "a held PageDown repeating three times: {z1} -> {z2}"
    );

    // Space plays and pauses the cine.
    common::press(&mut h, Modifiers::NONE, Key::Space);
    assert!(h.state().playing);
    common::press(&mut h, Modifiers::NONE, Key::Space);
    assert!(!h.state().playing);

    // Undo / redo with nothing painted say so.
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(h.state().notes.latest_text(), "nothing to undo");
    common::press(&mut h, Modifiers::COMMAND, Key::Y);
    assert_eq!(h.state().notes.latest_text(), "nothing to redo");
    common::press(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    assert_eq!(h.state().notes.latest_text(), "nothing to redo");

    // Ctrl+O opens the file picker (UME's browser here), Ctrl+Shift+S the
    // save picker, not Save.
    h.state_mut().picker.native = false;
    common::press(&mut h, Modifiers::COMMAND, Key::O);
    assert_eq!(
        h.state().picker.browser().map(|b| b.pick),
        Some(ume::app::files::Pick::Open)
    );
    h.state_mut().picker = Default::default();
    h.state_mut().picker.native = false;
    // It opens in the case's own folder, not the last one used (another
    // patient's, maybe).
    let elsewhere = tempfile::tempdir().unwrap();
    h.state_mut().settings.last_folder = Some(elsewhere.path().to_path_buf());
    common::press(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    assert_eq!(
        h.state().picker.browser().map(|b| b.pick),
        Some(ume::app::files::Pick::SaveLabels)
    );
    let dir = h.state().picker.browser().unwrap().dir().to_path_buf();
    assert!(dir.starts_with(case_dir.path()), "saves start in {dir:?}");
    h.state_mut().picker = Default::default();

    // Ctrl+Q quits.
    common::press(&mut h, Modifiers::COMMAND, Key::Q);
    assert!(h.state().quit_requested);
}

#[test]
fn help_lists_the_shortcuts_from_the_commands() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    h.state_mut().show_shortcuts = true;
    h.step();
    h.step();
    for c in Command::ALL {
        if !c.shortcuts().is_empty() {
            assert!(h.get_all_by_label(c.label()).next().is_some(), "{c:?}");
        }
    }
    h.get_by_label("Ctrl+S");
    h.get_by_label("Ctrl+wheel");
}

#[test]
fn ctrl_wheel_zooms_and_middle_drag_pans_with_the_pointer() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let p = rect.center();
    h.hover_at(p);
    h.step();
    let z0 = h.state().cursor.crosshair_mm[2];
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: egui::vec2(0.0, 1.0),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: Modifiers::COMMAND,
    });
    h.run_steps(20);
    assert!(
        h.state().camera.zoom[0] > 1.05,
        "Ctrl+wheel zooms: {}",
        h.state().camera.zoom[0]
    );
    assert_eq!(h.state().cursor.crosshair_mm[2], z0, "and does not step");

    // Middle drag: the world point under the pointer stays under it.
    let from = rect.center() + egui::vec2(-30.0, 20.0);
    let by = egui::vec2(60.0, -40.0);
    let before = common::world_at(&h, rect, from);
    h.hover_at(from);
    h.event(egui::Event::PointerButton {
        pos: from,
        button: egui::PointerButton::Middle,
        pressed: true,
        modifiers: Modifiers::NONE,
    });
    h.step();
    for i in 1..=10 {
        h.event(egui::Event::PointerMoved(from + by * (i as f32 / 10.0)));
        h.step();
    }
    h.event(egui::Event::PointerButton {
        pos: from + by,
        button: egui::PointerButton::Middle,
        pressed: false,
        modifiers: Modifiers::NONE,
    });
    h.step();
    let after = common::world_at(&h, rect, from + by);
    for k in 0..2 {
        assert!(
            (after[k] - before[k]).abs() < 0.5,
            "the image follows the pointer: {before:?} vs {after:?}"
        );
    }
}

#[derive(Default)]
struct MemStorage(HashMap<String, String>);

impl eframe::Storage for MemStorage {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.into(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[test]
fn settings_survive_a_restart() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    common::press(&mut h, Modifiers::NONE, Key::B);
    common::press(&mut h, Modifiers::NONE, Key::CloseBracket);
    h.get_by_label("2 edema").click();
    h.step();
    h.get_by_label("Outline").click();
    h.step();
    let saved = h.state().settings.clone();
    let mut storage = MemStorage::default();
    eframe::App::save(h.state_mut(), &mut storage);

    // A new app, as eframe starts it: the settings from storage.
    let mut app = UmeApp::new(&egui::Context::default(), None, &Default::default());
    app.restore_settings(Settings::load(&storage));
    assert_eq!(app.settings.tool, Tool::Brush);
    assert_eq!(app.settings.brush_radius_mm, saved.brush_radius_mm);
    assert!(!app.settings.is_visible(2));
    assert!(app.settings.outline);
    assert_eq!(app.settings.recent, saved.recent);
}

/// nibabel's reading of a NIfTI file: affine, pixdim, codes, dtype, sum.
fn nibabel(path: &Path) -> Option<serde_json::Value> {
    let script = "import sys, json, nibabel as nib, numpy as np\n\
        i = nib.load(sys.argv[1])\n\
        h = i.header\n\
        print(json.dumps({'affine': i.affine.tolist(), 'pixdim': [float(x) for x in h['pixdim'][1:4]], \
        'qform_code': int(h['qform_code']), 'sform_code': int(h['sform_code']), \
        'dtype': str(h.get_data_dtype()), 'shape': list(i.shape), \
        'values': np.asanyarray(i.dataobj).astype(np.int64).ravel(order='F').tolist()}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python3 with nibabel not found: cross-check not run ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn ctrl_s_saves_the_labels_to_save_labels_to_with_the_image_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = ume::phantom::generate(
        Kind::Brats,
        ume::phantom::Size::Small,
        4,
        1,
        tmp.path(),
        |_, _| {},
    )
    .unwrap();
    let case = &dirs[0];
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let image = case.join(format!("{name}_flair.nii.gz"));
    let labels = case.join(format!("{name}_seg.nii.gz"));
    let out = tmp.path().join("saved").join("edited_seg.nii.gz");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let options = ume::app::ViewOptions {
        paths: vec![image.clone()],
        labels: Some(labels.clone()),
        save_labels_to: Some(out.clone()),
        ..Default::default()
    };
    let app = UmeApp::new(&egui::Context::default(), None, &options);
    let mut h = common::settled(app);
    assert!(
        !h.state().doc.as_ref().unwrap().labels().is_empty(),
        "{}",
        h.state().notes.latest_text()
    );
    common::press(&mut h, Modifiers::COMMAND, Key::S);
    common::settle(&mut h);
    assert!(out.is_file(), "{}", h.state().notes.latest_text());
    assert!(h.state().notes.latest_text().contains("saved labels"));
    assert_eq!(
        h.state().doc.as_ref().unwrap().sources().labels.as_deref(),
        Some(out.as_path())
    );

    // Same voxels and exactly the image's geometry (qform/sform codes,
    // pixdim, affine), in the smallest type (u8 for BraTS' ids).
    let img = ume::io::load(&image).unwrap();
    let back = ume::io::load(&out).unwrap();
    assert_eq!(back.dtype, ume::volume::DataType::U8);
    assert_eq!(back.geometry.nifti, img.geometry.nifti);
    assert_eq!(
        back.geometry.world_from_voxel,
        img.geometry.world_from_voxel
    );
    assert_eq!(
        ume::io::load_labels(&out).unwrap().data,
        ume::io::load_labels(&labels).unwrap().compacted().data
    );
    let (txt, json) = ume::io::label_table_paths(&out);
    let table =
        ume::volume::LabelTable::from_itksnap(&std::fs::read_to_string(txt).unwrap()).unwrap();
    assert_eq!(
        table.labels.iter().map(|l| l.id).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    assert!(json.is_file());

    if let (Some(ours), Some(theirs)) = (nibabel(&out), nibabel(&image)) {
        for key in ["affine", "pixdim", "qform_code", "sform_code", "shape"] {
            assert_eq!(ours[key], theirs[key], "{key}");
        }
        assert_eq!(ours["dtype"], "uint8");
        let want: Vec<i64> = match ume::io::load_labels(&labels).unwrap().data {
            ume::volume::LabelData::U8(d) => d.iter().map(|&x| i64::from(x)).collect(),
            ume::volume::LabelData::U16(d) => d.iter().map(|&x| i64::from(x)).collect(),
        };
        let got: Vec<i64> = serde_json::from_value(ours["values"].clone()).unwrap();
        assert!(got == want, "nibabel reads the same label values");
    }

    // The recent list remembers the labels with the image.
    let recent = &h.state().settings.recent[0];
    assert_eq!(
        recent
            .labels
            .as_deref()
            .map(std::fs::canonicalize)
            .map(Result::unwrap),
        Some(std::fs::canonicalize(&out).unwrap())
    );
}

#[test]
fn save_labels_as_through_the_browser_and_labels_on_another_grid_are_refused() {
    let (app, tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    h.state_mut().picker.native = false;
    h.state_mut().settings.last_folder = Some(tmp.path().to_path_buf());
    common::press(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    h.step();
    // The browser opens in the case's folder.
    let folder = h.state().picker.browser().unwrap().dir().to_path_buf();
    assert!(folder.starts_with(tmp.path()) && folder != tmp.path());
    h.get_by_label("File name").focus();
    h.step();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_label("File name").type_text("mine.nii.gz");
    h.step();
    h.get_by_label("Save").click();
    h.step();
    common::settle(&mut h);
    let saved = folder.join("mine.nii.gz");
    assert!(saved.is_file(), "{}", h.state().notes.latest_text());
    assert!(folder.join("mine_labels.txt").is_file());
    assert_eq!(
        h.state().doc.as_ref().unwrap().sources().labels.as_deref(),
        Some(saved.as_path()),
        "Save now writes there"
    );

    // Labels on another grid: an error naming the file, the image stays.
    let other = tmp.path().join("other_grid.nii.gz");
    let l = ume::volume::LabelVolume::zeros([5, 6, 7], 1, ume::volume::Geometry::identity());
    ume::io::save_labels(&l, &other).unwrap();
    let ctx = h.ctx.clone();
    let labels_before = h.state().doc.as_ref().unwrap().revisions().labels;
    h.state_mut().load_labels(&ctx, other);
    common::settle(&mut h);
    let err = h.state().notes.errors().next().unwrap().text.clone();
    assert!(err.contains("other_grid.nii.gz"), "{err}");
    let doc = h.state().doc.as_ref().unwrap();
    assert_eq!(doc.revisions().labels, labels_before, "labels kept");
    assert!(!doc.labels().is_empty());
}

#[test]
fn enter_in_the_file_name_saves() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    h.state_mut().picker.native = false;
    common::press(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    h.step();
    let folder = h.state().picker.browser().unwrap().dir().to_path_buf();
    h.get_by_label("File name").focus();
    h.step();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_label("File name").type_text("entered.nii.gz");
    h.step();
    h.key_press(Key::Enter);
    h.step();
    common::settle(&mut h);
    assert!(
        folder.join("entered.nii.gz").is_file(),
        "{}",
        h.state().notes.latest_text()
    );
    assert!(h.state().picker.browser().is_none(), "the browser closed");
}

#[test]
fn a_new_case_starts_afresh() {
    let (app, _tmp) = common::app_with(Kind::Brats, 2);
    let mut h = common::settled(app);
    h.state_mut().camera.zoom = [3.0; 3];
    #[cfg(feature = "ml")]
    {
        h.state_mut().ai.curves.loss.push([1.0, 0.5]);
        h.state_mut().ai.before = Some(vec![(1, 0.5)]);
        assert_eq!(h.state().ai.model, "demo-brats");
    }
    let (other, _tmp2) = common::app_with(Kind::Acdc, 3);
    let doc = other.doc.unwrap();
    h.state_mut().set_document(doc);
    h.step();
    let s = h.state();
    assert_eq!(s.camera.zoom, [1.0; 3]);
    assert!(s.eval.result.is_none());
    assert_eq!(
        s.settings.windows.len(),
        1,
        "one window per layer of the new case"
    );
    assert_eq!(
        s.cursor.frame,
        s.doc.as_ref().unwrap().acdc().unwrap().ed_index()
    );
    #[cfg(feature = "ml")]
    {
        assert!(
            s.ai.curves.loss.is_empty(),
            "the last case's curves are gone"
        );
        assert!(s.ai.before.is_none());
        assert_eq!(
            s.ai.model, "",
            "no demo model fits a cine: not the brain model"
        );
    }
}

fn count_of(h: &Harness<'_, UmeApp>, id: u16) -> usize {
    let s = h.state();
    s.doc
        .as_ref()
        .unwrap()
        .label_counts(s.cursor.frame)
        .get(usize::from(id))
        .copied()
        .unwrap_or(0)
}

#[test]
fn a_brush_stroke_is_one_undo_step_that_saves() {
    let (mut app, tmp) = common::app_with(Kind::Brats, 2);
    let out = tmp.path().join("painted.nii.gz");
    app.save_labels_to = Some(out.clone());
    let mut h = common::settled(app);
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let z0 = h.state().cursor.crosshair_mm;
    common::press(&mut h, Modifiers::NONE, Key::B);
    h.state_mut().settings.active_label = 5;
    h.state_mut().settings.brush_radius_mm = 4.0;
    common::drag(
        &mut h,
        rect.center() - egui::vec2(60.0, 0.0),
        egui::vec2(120.0, 0.0),
        egui::PointerButton::Primary,
    );
    let painted = count_of(&h, 5);
    assert!(painted > 50, "the stroke painted label 5: {painted} voxels");
    assert_eq!(
        h.state().cursor.crosshair_mm,
        z0,
        "painting does not move the crosshair"
    );
    let doc = h.state().doc.as_ref().unwrap();
    assert_eq!(doc.history_len(), (1, 0), "one drag, one undo step");
    assert!(doc.is_dirty());
    assert!(h.state().title.contains('*'), "{}", h.state().title);
    // Every painted voxel lies in the crosshair's axial slice.
    let l = doc.labels().at_frame(0).unwrap();
    let [nx, ny, _] = l.dims;
    let slices: std::collections::BTreeSet<usize> = (0..l.len())
        .filter(|&i| l.get(i) == 5)
        .map(|i| i / (nx * ny))
        .collect();
    assert_eq!(slices.len(), 1, "a 2D brush paints one slice: {slices:?}");

    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(count_of(&h, 5), 0, "Ctrl+Z undoes the stroke");
    common::press(&mut h, Modifiers::COMMAND, Key::Y);
    assert_eq!(count_of(&h, 5), painted, "Ctrl+Y redoes it");
    common::press(&mut h, Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    assert_eq!(h.state().notes.latest_text(), "nothing to redo");

    // The eraser takes part of it back.
    common::press(&mut h, Modifiers::NONE, Key::E);
    common::drag(
        &mut h,
        rect.center(),
        egui::vec2(60.0, 0.0),
        egui::PointerButton::Primary,
    );
    let left = count_of(&h, 5);
    assert!(
        left > 0 && left < painted,
        "erased some: {painted} -> {left}"
    );

    common::press(&mut h, Modifiers::COMMAND, Key::S);
    common::settle(&mut h);
    assert!(!h.state().doc.as_ref().unwrap().is_dirty(), "saved");
    assert!(!h.state().title.contains('*'));
    let saved = ume::io::load_labels(&out).unwrap();
    assert_eq!(saved.counts().get(5).copied(), Some(left));
    let table = ume::volume::LabelTable::from_itksnap(
        &std::fs::read_to_string(ume::io::label_table_paths(&out).0).unwrap(),
    )
    .unwrap();
    assert_eq!(
        table.name_of(5),
        Some("label 5"),
        "a new id gets a table entry"
    );
}

#[test]
fn unsaved_labels_are_asked_about_autosaved_and_restored() {
    let (mut app, tmp) = common::app_with(Kind::Brats, 2);
    let autosaves = tmp.path().join("autosave");
    app.autosave_root = Some(autosaves.clone());
    app.autosave_interval_secs = 0.0;
    let folder = app.doc.as_ref().unwrap().sources().folder.clone().unwrap();
    let mut h = common::settled(app);
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    common::press(&mut h, Modifiers::NONE, Key::B);
    h.state_mut().settings.active_label = 6;
    common::drag(
        &mut h,
        rect.center(),
        egui::vec2(40.0, 0.0),
        egui::PointerButton::Primary,
    );
    let painted = count_of(&h, 6);
    assert!(painted > 0);
    common::settle(&mut h);
    h.step();
    common::settle(&mut h);
    let dir = autosave::folder(&autosaves, std::slice::from_ref(&folder));
    assert!(autosave::find(&dir).is_some(), "autosaved while unsaved");

    // Opening another case asks; Cancel keeps the labels.
    let ctx = h.ctx.clone();
    h.state_mut()
        .open(&ctx, ume::app::LoadRequest::Folder(folder.clone()));
    h.step();
    h.step();
    assert!(
        h.state().confirm.is_some(),
        "asked about the unsaved labels"
    );
    h.get_by_label("Cancel").click();
    h.step();
    assert!(h.state().confirm.is_none() && !h.state().is_loading());
    assert_eq!(count_of(&h, 6), painted);

    // A close request is held too.
    h.input_mut()
        .viewports
        .get_mut(&egui::ViewportId::ROOT)
        .unwrap()
        .events
        .push(egui::ViewportEvent::Close);
    h.step();
    assert_eq!(h.state().confirm, Some(ume::app::safety::Pending::Quit));
    h.get_by_label("Cancel").click();
    h.step();

    // So is opening a label map in their place.
    let other = folder.join("other_labels.nii.gz");
    h.state_mut().load_labels(&ctx, other.clone());
    h.step();
    assert_eq!(
        h.state().confirm,
        Some(ume::app::safety::Pending::OpenLabels(other))
    );
    h.get_by_label("Cancel").click();
    h.step();
    assert_eq!(count_of(&h, 6), painted);

    // As after a crash: the same image opens in a new app, which offers the
    // autosave; Restore brings the painted labels back, unsaved.
    let doc = ume::app::loader::load(&ume::app::LoadRequest::Folder(folder), &|_| {}).unwrap();
    let mut app = UmeApp::new(&egui::Context::default(), None, &Default::default());
    app.autosave_root = Some(autosaves);
    app.set_document(doc);
    assert!(app.recovery.is_some(), "the autosave is offered");
    let mut h2 = common::settled(app);
    assert_eq!(count_of(&h2, 6), 0);
    h2.get_by_label("Restore").click();
    h2.step();
    common::settle(&mut h2);
    assert_eq!(count_of(&h2, 6), painted, "restored");
    assert!(h2.state().doc.as_ref().unwrap().is_dirty());
}

#[test]
fn live_dice_follows_every_stroke_and_equals_a_recount() {
    let (mut app, _tmp) = common::app_with(Kind::Brats, 2);
    // The prediction: the labels moved three voxels along x.
    let pred = common::shifted(&common::labels_of(&app), 3);
    let pred = std::sync::Arc::new(pred);
    app.set_prediction(ume::app::document::Prediction::new(pred.clone(), "shifted"))
        .unwrap();
    let mut h = common::settled(app);
    common::settle(&mut h);
    let rect = common::rect_of(&h, ViewId::Slice(SliceAxis::Axial));
    let recount = |h: &Harness<'_, UmeApp>| {
        let labels = h
            .state()
            .doc
            .as_ref()
            .unwrap()
            .labels()
            .at_frame(0)
            .unwrap()
            .clone();
        ume::metrics::Confusion::new(&labels, &pred)
    };
    let strokes: [(Key, u16, egui::Vec2, egui::Vec2); 4] = [
        (Key::B, 2, egui::vec2(-50.0, 0.0), egui::vec2(100.0, 10.0)),
        (Key::B, 4, egui::vec2(-20.0, -30.0), egui::vec2(30.0, 60.0)),
        (Key::E, 0, egui::vec2(-40.0, 5.0), egui::vec2(80.0, 0.0)),
        (Key::B, 9, egui::vec2(10.0, 10.0), egui::vec2(5.0, 5.0)),
    ];
    for (n, (tool, id, at, by)) in strokes.into_iter().enumerate() {
        common::press(&mut h, Modifiers::NONE, tool);
        h.state_mut().settings.active_label = id.max(1);
        common::drag(&mut h, rect.center() + at, by, egui::PointerButton::Primary);
        let full = recount(&h);
        for label in [1u16, 2, 4, 9] {
            let (tp, fp, fn_) = full.tp_fp_fn(label);
            let want = ume::metrics::dice_from_counts(tp, fp, fn_);
            let got = h.state().eval.live_dice(label).expect("live counts ready");
            assert!(
                got == want || (got.is_nan() && want.is_nan()),
                "stroke {n}, label {label}: live {got} vs recount {want}"
            );
        }
    }
    // Undo and redo are followed too.
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    let full = recount(&h);
    let (tp, fp, fn_) = full.tp_fp_fn(2);
    assert_eq!(
        h.state().eval.live_dice(2),
        Some(ume::metrics::dice_from_counts(tp, fp, fn_))
    );
}

#[test]
fn labels_changed_while_saving_or_loading_are_never_dropped() {
    let (mut app, tmp) = common::app_with(Kind::Brats, 2);
    app.autosave_root = None;
    let folder = app.doc.as_ref().unwrap().sources().folder.clone().unwrap();
    let mut h = common::settled(app);
    let ctx = h.ctx.clone();
    let rule = ume::annotation::PaintRule {
        value: 7,
        ..Default::default()
    };
    let paint = |h: &mut Harness<'_, UmeApp>, v: usize| {
        let doc = h.state_mut().doc.as_mut().unwrap();
        doc.paint(0, &[v], &rule, 0);
        doc.end_edit();
    };
    // A stroke lands while the save job writes: the file holds the state
    // when saving began, and the labels stay unsaved.
    paint(&mut h, 0);
    let out = tmp.path().join("saved.nii.gz");
    h.state_mut().save_labels_to(&ctx, out.clone());
    paint(&mut h, 1);
    common::settle(&mut h);
    assert!(out.is_file());
    assert!(
        h.state().doc.as_ref().unwrap().is_dirty(),
        "later changes are unsaved"
    );
    assert!(
        h.state()
            .notes
            .latest_text()
            .contains("later changes are not saved")
    );
    // A case that finishes loading while labels were painted does not
    // replace them.
    h.state_mut().save_labels_to(&ctx, out.clone());
    common::settle(&mut h);
    assert!(!h.state().doc.as_ref().unwrap().is_dirty());
    let id = h.state().doc.as_ref().unwrap().id();
    h.state_mut()
        .open(&ctx, ume::app::LoadRequest::Folder(folder));
    paint(&mut h, 2);
    common::settle(&mut h);
    assert_eq!(
        h.state().doc.as_ref().unwrap().id(),
        id,
        "the painted case stays"
    );
    assert!(
        h.state()
            .notes
            .errors()
            .any(|n| n.text.contains("unsaved labels"))
    );
}

#[test]
fn the_active_label_follows_the_cases_table() {
    // Another ACDC patient keeps the label being painted; a case with
    // another table starts on its first label (ACDC's 3 is the LV,
    // TotalSegmentator's 3 a kidney).
    let (mut app, _a) = common::app_with(Kind::Acdc, 2);
    app.settings.active_label = 3;
    let (next, _b) = common::app_with(Kind::Acdc, 3);
    app.set_document(next.doc.unwrap());
    assert_eq!(app.settings.active_label, 3);
    let (ct, _c) = common::app_with(Kind::TotalSeg, 2);
    let first = ct.doc.as_ref().unwrap().table().labels[0].id;
    app.set_document(ct.doc.unwrap());
    assert_eq!(app.settings.active_label, first);
}
