//! The desktop app (feature `gui`): eframe with the wgpu renderer.
//!
//! Who owns what:
//! - [`Document`]: the open case's data (layers, labels, prediction,
//!   table, sources, dirty flag, revisions); changed only by its methods.
//! - [`Settings`]: how things are shown and the tools, persisted through
//!   eframe's storage.
//! - [`views::Cursor`] (crosshair, frame, layer) and [`views::Camera`]
//!   (zoom, pan, orbit): where the user is, per window.
//! - [`notify::Notifications`]: every message.
//! - Jobs ([`jobs::Job`]): every background task.
//!
//! Input flows one way: views turn pointer input into [`views::Intent`]s,
//! menus and the keyboard into [`Command`]s; `UmeApp` applies both.
//! `App::logic` drains jobs and advances the cine; `App::ui` draws and
//! uploads the current frame to the GPU when the data it shows changed.

#[cfg(feature = "ml")]
pub mod ai;
pub mod autosave;
pub mod bench;
pub mod bench_annotation;
mod browser;
mod case;
pub mod commands;
pub mod document;
pub mod evaluation;
pub mod files;
mod input;
mod intents;
pub mod jobs;
pub mod keyboard;
pub mod keyframes_ui;
mod layout;
pub mod loader;
pub mod notify;
mod overlay;
mod panels;
pub mod safety;
pub mod screenshot;
pub mod settings;
pub mod slices_ui;
mod tool_panel;
mod tools;
pub mod upload;
pub mod views;

pub use commands::Command;
pub use document::Document;
pub use loader::LoadRequest;
pub use settings::{Layout, Settings};

use crate::render::Renderer;
use crate::volume::LabelTable;
use document::{Labels, Prediction};
use eframe::egui;
use eframe::egui_wgpu::RenderState;
use jobs::Slot;
use std::path::PathBuf;
use std::time::Instant;
use views::{Camera, Cursor, TexGrid, ViewId};

/// How the app was asked to start.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// Files or folders to open (none: the built-in demo).
    pub paths: Vec<PathBuf>,
    /// A label map for the opened image.
    pub labels: Option<PathBuf>,
    /// Save a screenshot of the window here once the data is shown, then exit.
    pub screenshot: Option<PathBuf>,
    /// Folder for the demo phantoms.
    pub demo_dir: Option<PathBuf>,
    /// A prediction label map to load once the case is open.
    pub prediction: Option<PathBuf>,
    /// Where Save labels (Ctrl+S) writes, without a dialog.
    pub save_labels_to: Option<PathBuf>,
}

impl ViewOptions {
    /// The first load request these options ask for.
    pub fn request(&self) -> Option<LoadRequest> {
        if self.paths.is_empty() {
            return self.demo_dir.clone().map(LoadRequest::DemoBrain);
        }
        Some(LoadRequest::from_paths(
            self.paths.clone(),
            self.labels.clone(),
        ))
    }
}

/// The application.
pub struct UmeApp {
    /// The open case.
    pub doc: Option<Document>,
    /// Crosshair, frame and layer in the open case.
    pub cursor: Cursor,
    /// Display and tool settings (persisted).
    pub settings: Settings,
    /// View cameras.
    pub camera: Camera,
    /// Every message.
    pub notes: notify::Notifications,
    /// Prediction metrics and the difference overlay.
    pub eval: evaluation::EvalState,
    /// Keyframe inspector (cine cases).
    pub keyframes: keyframes_ui::KeyframeState,
    /// Models: segmentation, what-if, fine-tuning.
    #[cfg(feature = "ml")]
    pub ai: ai::AiState,
    /// Cine playback.
    pub playing: bool,
    cine_clock: f64,
    /// Pointer read-out.
    pub hover: Option<views::Hover>,
    /// Where each view was drawn last frame (for tests and exports).
    pub view_rects: Vec<(ViewId, egui::Rect)>,
    /// Where demo phantoms live.
    pub demo_dir: Option<PathBuf>,
    /// Where Save labels writes (`--save-labels-to`), before the labels'
    /// own file.
    pub save_labels_to: Option<PathBuf>,
    /// Help → Keyboard shortcuts is open.
    pub show_shortcuts: bool,
    /// Help → About is open.
    pub show_about: bool,
    /// Help → Messages is open.
    pub show_messages: bool,
    /// Quit was asked (the window closes).
    pub quit_requested: bool,
    /// The window title last set ("UME — case *" with unsaved labels).
    pub title: String,
    /// The active label's name as being typed (committed on Enter or when
    /// the field loses focus).
    label_name: ((u16, u64), String),
    render_state: Option<RenderState>,
    uploaded: upload::UploadKey,
    grid: Option<TexGrid>,
    notice: Option<String>,
    load: Slot<loader::Loaded>,
    /// A DICOM folder's series to choose from (the picker window).
    series_choice: Option<(PathBuf, Vec<(String, String)>)>,
    load_request: Option<LoadRequest>,
    label_job: Slot<(PathBuf, Labels, Option<LabelTable>)>,
    prediction_job: Slot<Prediction>,
    /// The save target and the map files written there.
    save_job: Slot<(PathBuf, Vec<PathBuf>)>,
    save_prediction_job: Slot<PathBuf>,
    pending_prediction: Option<PathBuf>,
    pending_labels: Option<PathBuf>,
    /// Where autosaves go (`None`: no autosave; tests use a temporary
    /// folder).
    pub autosave_root: Option<PathBuf>,
    /// Seconds labels stay unsaved before an autosave.
    pub autosave_interval_secs: f64,
    autosave_job: Slot<()>,
    /// (document, labels revision) last autosaved.
    autosaved: Option<(u64, u64)>,
    /// When the labels became unsaved since the last autosave.
    dirty_since: Option<Instant>,
    /// An autosave of this image found on opening: offered to restore.
    pub recovery: Option<(PathBuf, autosave::Meta)>,
    restore_job: Slot<autosave::Recovered>,
    tool_job: Slot<tools::ToolResult>,
    /// Waiting for the user's answer about unsaved labels.
    pub confirm: Option<safety::Pending>,
    after_save: Option<safety::Pending>,
    allow_close: bool,
    /// The open file pick (dialog or browser).
    pub picker: files::Picker,
    shot: screenshot::Screenshot,
}

impl UmeApp {
    /// An app with an optional renderer (egui-wgpu's render state) and the
    /// settings from eframe's storage; starts loading what `options` asks.
    pub fn new(
        ctx: &egui::Context,
        render_state: Option<RenderState>,
        options: &ViewOptions,
    ) -> UmeApp {
        if let Some(rs) = &render_state {
            let renderer = Renderer::new(&rs.device, &rs.queue, rs.target_format);
            rs.renderer.write().callback_resources.insert(renderer);
        }
        let mut app = UmeApp {
            doc: None,
            cursor: Cursor {
                crosshair_mm: [0.0; 3],
                frame: 0,
                active: 0,
            },
            settings: Settings::default(),
            camera: Camera::default(),
            notes: notify::Notifications::default(),
            eval: evaluation::EvalState::default(),
            keyframes: keyframes_ui::KeyframeState::default(),
            #[cfg(feature = "ml")]
            ai: ai::AiState::default(),
            playing: false,
            cine_clock: 0.0,
            hover: None,
            view_rects: Vec::new(),
            demo_dir: options.demo_dir.clone(),
            save_labels_to: options.save_labels_to.clone(),
            show_shortcuts: false,
            show_about: false,
            show_messages: false,
            quit_requested: false,
            title: String::new(),
            label_name: ((0, 0), String::new()),
            render_state,
            uploaded: upload::UploadKey::default(),
            grid: None,
            notice: None,
            load: Slot::default(),
            series_choice: None,
            load_request: None,
            label_job: Slot::default(),
            prediction_job: Slot::default(),
            save_job: Slot::default(),
            save_prediction_job: Slot::default(),
            pending_prediction: options.prediction.clone(),
            pending_labels: None,
            autosave_root: autosave::root(),
            autosave_interval_secs: 60.0,
            autosave_job: Slot::default(),
            autosaved: None,
            dirty_since: None,
            recovery: None,
            restore_job: Slot::default(),
            tool_job: Slot::default(),
            confirm: None,
            after_save: None,
            allow_close: false,
            picker: files::Picker::default(),
            shot: screenshot::Screenshot::on_start(options.screenshot.clone()),
        };
        if let Some(req) = options.request() {
            app.open(ctx, req);
        }
        app
    }

    /// Use these settings (restored from storage), keeping the open case's
    /// windows.
    pub fn restore_settings(&mut self, settings: Settings) {
        let windows = std::mem::take(&mut self.settings.windows);
        self.settings = Settings {
            windows,
            ..settings
        };
    }

    /// Whether a load is running.
    pub fn is_loading(&self) -> bool {
        self.load.is_running()
    }

    /// Whether labels or a prediction are being read or written.
    pub fn is_busy_with_files(&self) -> bool {
        self.label_job.is_running()
            || self.prediction_job.is_running()
            || self.save_job.is_running()
            || self.save_prediction_job.is_running()
            || self.autosave_job.is_running()
            || self.restore_job.is_running()
            || self.tool_job.is_running()
    }

    /// Running jobs' names and progress (the status bar shows them).
    pub fn running_jobs(&self) -> Vec<(&'static str, jobs::Progress)> {
        let mut out: Vec<_> = [
            self.load.describe(),
            self.label_job.describe(),
            self.prediction_job.describe(),
            self.save_job.describe(),
            self.save_prediction_job.describe(),
            self.autosave_job.describe(),
            self.restore_job.describe(),
            self.tool_job.describe(),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.extend(self.eval.running());
        #[cfg(feature = "ml")]
        out.extend(self.ai.running());
        out
    }

    /// The shown layer's window.
    pub fn window(&self) -> Option<(f64, f64)> {
        let auto = self.doc.as_ref()?.layer(self.cursor.active)?.auto_window;
        Some(
            self.settings
                .windows
                .get(self.cursor.active)
                .copied()
                .unwrap_or(auto),
        )
    }

    /// Set the shown layer's window.
    pub fn set_window(&mut self, window: (f64, f64)) {
        let n = self.doc.as_ref().map_or(0, |d| d.layers().len());
        if self.settings.windows.len() < n {
            let autos: Vec<(f64, f64)> = self
                .doc
                .as_ref()
                .map(|d| d.layers().iter().map(|l| l.auto_window).collect())
                .unwrap_or_default();
            self.settings.windows = autos;
        }
        if let Some(w) = self.settings.windows.get_mut(self.cursor.active) {
            *w = window;
        }
    }

    /// Drain background jobs, run keyboard commands and advance the cine
    /// (no drawing).
    pub fn logic(&mut self, ctx: &egui::Context) {
        for c in Command::from_keyboard(ctx) {
            self.run_command(ctx, c);
        }
        if let Some((_, r)) = self.load.poll() {
            let req = self.load_request.take();
            match r {
                // Labels painted while it loaded are never dropped silently.
                Ok(loader::Loaded::PickSeries { path, series }) => {
                    self.series_choice = Some((path, series));
                }
                Ok(loader::Loaded::Doc(doc))
                    if self.doc.as_ref().is_some_and(Document::is_dirty) =>
                {
                    self.notes.error(format!(
                        "{} loaded, but the open case has unsaved labels: save or discard them, then open it again",
                        doc.title()
                    ));
                }
                Ok(loader::Loaded::Doc(doc)) => {
                    self.notes.info(format!("opened {}", doc.title()));
                    if let Some(recent) = req.as_ref().and_then(LoadRequest::recent) {
                        self.settings.remember(recent);
                    }
                    self.set_document(*doc);
                    if let Some(labels) = self.pending_labels.take() {
                        self.load_labels(ctx, labels);
                    }
                }
                Err(e) => self.notes.error(e),
            }
        }
        self.picker_logic(ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            self.open(ctx, LoadRequest::from_paths(dropped, None));
        }
        if self.doc.is_some()
            && let Some(p) = self.pending_prediction.take()
        {
            self.load_prediction(ctx, p);
        }
        self.file_jobs_logic(ctx);
        self.guard_close(ctx);
        self.autosave_logic(ctx);
        self.restore_logic();
        self.tool_logic();
        if let Some(doc) = &mut self.doc {
            doc.set_history_budget(self.settings.undo_budget_mb.saturating_mul(1 << 20));
            let overlay = self.settings.overlay;
            self.eval
                .update(doc, self.cursor.frame, overlay, &mut self.notes, ctx);
            if doc.frames() > 1
                && let Some(e) = self.keyframes.update(doc, ctx)
            {
                self.notes.error(e);
            }
        }
        #[cfg(feature = "ml")]
        ai::logic(self, ctx);
        if self.playing
            && let Some(doc) = &self.doc
        {
            let frames = doc.frames().max(1);
            self.cine_clock += f64::from(ctx.input(|i| i.stable_dt).min(0.25));
            let period = 1.0 / f64::from(self.settings.cine_fps.max(0.5));
            while self.cine_clock >= period {
                self.cine_clock -= period;
                self.cursor.frame = (self.cursor.frame + 1) % frames;
            }
            ctx.request_repaint();
        }
    }

    /// Draw everything (the body of `App::ui`; tests call it through kittest).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        let title = match &self.doc {
            Some(d) if d.is_dirty() => format!("UME — {} * (unsaved labels)", d.title()),
            Some(d) => format!("UME — {}", d.title()),
            None => "UME".into(),
        };
        if title != self.title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.title = title;
        }
        self.screenshot_logic(&ctx);
        self.upload();
        panels::menu_bar(self, ui);
        panels::status_bar(self, ui);
        if self.doc.is_some() {
            egui::Panel::left("controls")
                .default_size(260.0)
                .show(ui, |ui| panels::controls(self, ui));
            egui::Panel::bottom("slices").show(ui, |ui| slices_ui::bar(self, ui));
            if self.doc.as_ref().is_some_and(|d| d.frames() > 1) {
                egui::Panel::bottom("cine").show(ui, |ui| panels::cine_bar(self, ui));
            }
        }
        if self.doc.as_ref().is_some_and(|d| d.prediction().is_some()) {
            // Resizable, and never more than ~40% of the window, so the
            // views stay usable.
            let max = (ui.available_width() * 0.4).max(240.0);
            let export = egui::Panel::right("metrics")
                .resizable(true)
                .default_size(340.0_f32.min(max))
                .max_size(max)
                .show(ui, |ui| {
                    evaluation::panel_ui(&mut self.eval, &mut self.settings.overlay, ui)
                })
                .inner;
            match export {
                Some(evaluation::PanelAction::Run(c)) => self.run_command(&ctx, c),
                Some(evaluation::PanelAction::Accept(id)) => self.accept_prediction(&ctx, Some(id)),
                None => {}
            }
        }
        egui::CentralPanel::default().show(ui, |ui| self.views_ui(ui));
        self.notes.errors_ui(&ctx);
        self.safety_ui(&ctx);
        self.series_picker_ui(&ctx);
        keyboard::shortcuts_window(&mut self.show_shortcuts, &ctx);
        panels::about_window(&mut self.show_about, &ctx);
        let mut open = self.show_messages;
        self.notes.history_ui(&mut open, &ctx);
        self.show_messages = open;
    }

    fn screenshot_logic(&mut self, ctx: &egui::Context) {
        let ready = self.doc.is_some()
            && self.uploaded.doc == self.doc.as_ref().map_or(0, Document::id)
            && self.pending_prediction.is_none()
            && self.pending_labels.is_none()
            && !self.prediction_job.is_running()
            && !self.label_job.is_running()
            && !self.eval.is_computing();
        if self.shot.exits_after()
            && self.notes.has_error()
            && self.doc.is_none()
            && !self.is_loading()
        {
            for e in self.notes.errors() {
                eprintln!("error: {}", e.text);
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        match self.shot.logic(ctx, ready) {
            Some(screenshot::ShotEvent::Saved(p)) => {
                eprintln!("saved {}", p.display());
                self.notes.info(format!("saved {}", p.display()));
            }
            Some(screenshot::ShotEvent::Failed(e)) => {
                eprintln!("error: {e}");
                self.notes.error(e);
            }
            None => {}
        }
    }

    /// Save the window, or one view of it, as PNG.
    pub fn request_export(&mut self, ctx: &egui::Context, path: PathBuf, view: Option<ViewId>) {
        let crop = view.and_then(|v| {
            self.view_rects
                .iter()
                .find(|(id, _)| *id == v)
                .map(|(_, r)| *r)
        });
        self.shot.request(path, crop);
        ctx.request_repaint();
    }
}

impl eframe::App for UmeApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        UmeApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        self.settings.store(storage);
    }
}

/// Open the app window (blocks until it is closed).
pub fn run(options: ViewOptions) -> anyhow::Result<()> {
    // Model work on the CPU backend runs on rayon's pool: leave the UI
    // thread a core of its own.
    #[cfg(feature = "ml")]
    {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(cores.saturating_sub(1).max(1))
            .thread_name(|i| format!("ume-compute-{i}"))
            .build_global();
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_inner_size([1280.0, 860.0])
            .with_title("UME")
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "UME",
        native,
        Box::new(move |cc| {
            let mut app = UmeApp::new(&cc.egui_ctx, cc.wgpu_render_state.clone(), &options);
            if let Some(storage) = cc.storage {
                app.restore_settings(Settings::load(storage));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the UME window: {e}"))
}
