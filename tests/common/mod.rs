//! Helpers shared by the app tests (`app_ui.rs`, `app_ai.rs`): a phantom
//! case opened in the app, and an egui_kittest harness that runs the app
//! as eframe does (logic, then the UI).
#![allow(dead_code)] // each test binary uses its own subset
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use eframe::egui;
use egui_kittest::Harness;
use ume::app::{LoadRequest, UmeApp, ViewOptions};
use ume::phantom::{Kind, Size, generate};

/// The app with one small generated phantom case (of `kind`, from `seed`)
/// open; the folder lives as long as the returned guard.
pub fn app_with(kind: Kind, seed: u64) -> (UmeApp, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = generate(kind, Size::Small, seed, 1, tmp.path(), |_, _| {}).unwrap();
    let doc = ume::app::loader::load(&LoadRequest::Folder(dirs[0].clone()), &|_| {}).unwrap();
    let mut app = UmeApp::new(&egui::Context::default(), None, &ViewOptions::default());
    app.set_document(doc);
    (app, tmp)
}

/// A harness of `width`×`height` points that has not been run yet.
pub fn harness(app: UmeApp, width: f32, height: f32) -> Harness<'static, UmeApp> {
    Harness::builder()
        .with_size(egui::vec2(width, height))
        // A background thread finishing wakes the UI once more; allow it.
        .with_max_steps(12)
        .build_ui_state(
            |ui, app: &mut UmeApp| {
                // As eframe does: logic (jobs, cine clock), then the UI.
                let ctx = ui.ctx().clone();
                app.logic(&ctx);
                app.show(ui);
            },
            app,
        )
}

/// A harness of 1200×800 points with background work finished.
pub fn settled(app: UmeApp) -> Harness<'static, UmeApp> {
    let mut h = harness(app, 1200.0, 800.0);
    settle(&mut h);
    h
}

/// Step until loading, metrics, keyframe summaries and file jobs are done
/// (the spinners keep asking for repaints, so step, not run), then absorb
/// the wake-ups the finished threads send.
pub fn settle(h: &mut Harness<'_, UmeApp>) {
    for _ in 0..2000 {
        h.step();
        let s = h.state();
        if !s.is_loading()
            && !s.eval.is_computing()
            && !s.keyframes.is_pending()
            && !s.is_busy_with_files()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    h.step();
    h.step();
}

/// The world point (mm) under screen point `at` of the axial view drawn
/// in `rect`.
pub fn world_at(h: &Harness<'_, UmeApp>, rect: egui::Rect, at: egui::Pos2) -> [f64; 3] {
    let s = h.state();
    let plane = ume::app::views::plane_for(
        s.doc.as_ref().unwrap(),
        &s.cursor,
        &s.settings,
        &s.camera,
        ume::viewmath::SliceAxis::Axial,
        rect,
    )
    .unwrap();
    plane.world_from_screen(ume::app::views::to_screen(rect, at))
}

/// Where a view was drawn last frame.
pub fn rect_of(h: &Harness<'_, UmeApp>, view: ume::app::views::ViewId) -> egui::Rect {
    h.state()
        .view_rects
        .iter()
        .find(|(v, _)| *v == view)
        .map(|(_, r)| *r)
        .unwrap()
}

/// A key press (with modifiers) through the real input path, then a frame.
pub fn press(h: &mut Harness<'_, UmeApp>, modifiers: egui::Modifiers, key: egui::Key) {
    h.key_press_modifiers(modifiers, key);
    h.step();
}

/// Press `button` at `from`, move by `by` in ten steps, release: a user's
/// drag; then two frames so what it changed is shown.
pub fn drag(
    h: &mut Harness<'_, UmeApp>,
    from: egui::Pos2,
    by: egui::Vec2,
    button: egui::PointerButton,
) {
    h.hover_at(from);
    let event = |pos, pressed| egui::Event::PointerButton {
        pos,
        button,
        pressed,
        modifiers: egui::Modifiers::NONE,
    };
    h.event(event(from, true));
    h.step();
    for i in 1..=10 {
        h.event(egui::Event::PointerMoved(from + by * (i as f32 / 10.0)));
        h.step();
    }
    h.event(event(from + by, false));
    h.step();
    h.step();
}

/// The open case's labels (frame 0).
pub fn labels_of(app: &UmeApp) -> std::sync::Arc<ume::volume::LabelVolume> {
    app.doc
        .as_ref()
        .unwrap()
        .labels()
        .at_frame(0)
        .unwrap()
        .clone()
}

/// A label map moved `dx` voxels along x (background enters at x < dx):
/// a prediction that is close to the truth but not equal.
pub fn shifted(gt: &ume::volume::LabelVolume, dx: usize) -> ume::volume::LabelVolume {
    let mut out = gt.clone();
    let [nx, ny, nz] = gt.dims;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let v = if i >= dx {
                    gt.get(i - dx + nx * (j + ny * k))
                } else {
                    0
                };
                out.set(i + nx * (j + ny * k), v);
            }
        }
    }
    out
}
