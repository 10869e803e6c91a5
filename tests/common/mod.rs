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
