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
pub mod bench;
pub mod commands;
pub mod document;
pub mod evaluation;
pub mod files;
pub mod jobs;
pub mod keyframes_ui;
pub mod loader;
pub mod notify;
mod panels;
pub mod screenshot;
pub mod settings;
pub mod upload;
pub mod views;

pub use commands::Command;
pub use document::Document;
pub use loader::LoadRequest;
pub use settings::{Layout, Settings};

use crate::render::{LabelUpload, Renderer};
use crate::volume::LabelData;
use document::{Labels, Prediction};
use eframe::egui;
use eframe::egui_wgpu::RenderState;
use jobs::{Job, Slot};
use std::path::PathBuf;
use views::{Camera, Cursor, Intent, TexGrid, ViewCtx, ViewId};

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
            return self.demo_dir.clone().map(LoadRequest::Demo);
        }
        Some(LoadRequest::from_paths(
            self.paths.clone(),
            self.labels.clone(),
        ))
    }
}

/// What is on the GPU now, to know when to upload again.
#[derive(Debug, Clone, Default, PartialEq)]
struct UploadKey {
    doc: u64,
    frame: usize,
    layers: Vec<usize>,
    labels: (u64, u64),
    overlay: Option<settings::Overlay>,
    difference: bool,
    palette: Vec<[u8; 4]>,
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
    /// Help → Messages is open.
    pub show_messages: bool,
    /// Quit was asked (the window closes).
    pub quit_requested: bool,
    /// The window title last set ("UME — case *" with unsaved labels).
    pub title: String,
    render_state: Option<RenderState>,
    uploaded: UploadKey,
    grid: Option<TexGrid>,
    notice: Option<String>,
    load: Slot<Box<Document>>,
    load_request: Option<LoadRequest>,
    label_job: Slot<(PathBuf, Labels)>,
    prediction_job: Slot<Prediction>,
    save_job: Slot<PathBuf>,
    save_prediction_job: Slot<PathBuf>,
    pending_prediction: Option<PathBuf>,
    pending_labels: Option<PathBuf>,
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
            show_messages: false,
            quit_requested: false,
            title: String::new(),
            render_state,
            uploaded: UploadKey::default(),
            grid: None,
            notice: None,
            load: Slot::default(),
            load_request: None,
            label_job: Slot::default(),
            prediction_job: Slot::default(),
            save_job: Slot::default(),
            save_prediction_job: Slot::default(),
            pending_prediction: options.prediction.clone(),
            pending_labels: None,
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

    /// Start loading in the background. Labels given with images are read
    /// after the images open, so labels on another grid are an error while
    /// the image still opens.
    pub fn open(&mut self, ctx: &egui::Context, request: LoadRequest) {
        let request = match request {
            LoadRequest::Files { paths, labels } => {
                self.pending_labels = labels;
                LoadRequest::Files {
                    paths,
                    labels: None,
                }
            }
            other => {
                self.pending_labels = None;
                other
            }
        };
        let wake = ctx.clone();
        let req = request.clone();
        self.load.start(Job::spawn(
            "load",
            0,
            move || wake.request_repaint(),
            move |job| {
                job.message("loading…");
                loader::load(&req, &|m| job.message(m)).map(Box::new)
            },
        ));
        self.load_request = Some(request);
    }

    /// Install a loaded document (also used by tests): the cursor, camera,
    /// windows and everything computed for the previous case start afresh.
    pub fn set_document(&mut self, doc: Document) {
        self.cursor = Cursor::for_document(&doc);
        self.camera = Camera::default();
        self.settings.windows = doc.layers().iter().map(|l| l.auto_window).collect();
        let sort = self.eval.sort;
        self.eval = evaluation::EvalState::default();
        self.eval.sort = sort;
        let (k, strategy) = (self.keyframes.k, self.keyframes.strategy);
        self.keyframes = keyframes_ui::KeyframeState::default();
        self.keyframes.k = k;
        self.keyframes.strategy = strategy;
        #[cfg(feature = "ml")]
        self.ai.reset_for_case(&doc);
        self.playing = false;
        self.label_job.abandon();
        self.prediction_job.abandon();
        self.doc = Some(doc);
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
    }

    /// Running jobs' names and progress (the status bar shows them).
    pub fn running_jobs(&self) -> Vec<(&'static str, jobs::Progress)> {
        let mut out: Vec<_> = [
            self.load.describe(),
            self.label_job.describe(),
            self.prediction_job.describe(),
            self.save_job.describe(),
            self.save_prediction_job.describe(),
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

    /// Apply what a view asked for.
    pub fn apply(&mut self, intent: Intent) {
        let Some(doc) = &self.doc else { return };
        match intent {
            Intent::MoveCrosshair(axis, world) => {
                let n = axis.normal_axis();
                for (k, (c, w)) in self.cursor.crosshair_mm.iter_mut().zip(world).enumerate() {
                    if k != n {
                        *c = w;
                    }
                }
            }
            Intent::StepSlice(axis, steps) => self.cursor.step_slice(doc, axis, steps),
            Intent::Paint { axis, from, to } => self.paint(axis, from, to),
            Intent::EndStroke => {
                if let Some(doc) = &mut self.doc {
                    doc.end_edit();
                }
            }
            Intent::PickLabel(world) => {
                let Some(layer) = doc.layer(0) else { return };
                let v = &layer.volume;
                if let Some([i, j, k]) = crate::viewmath::voxel_at(&v.geometry, v.dims, world)
                    && let Some(l) = doc.labels().at_frame(self.cursor.frame)
                {
                    let t = self.cursor.frame.min(l.frames - 1);
                    let id = l.get(l.frame_offset(t) + i + l.dims[0] * (j + l.dims[1] * k));
                    if id != 0 {
                        self.settings.active_label = id;
                    }
                }
            }
            Intent::Window { width, level } => {
                let Some(layer) = doc.layer(self.cursor.active) else {
                    return;
                };
                let span = (layer.range.1 - layer.range.0).max(1e-9);
                let Some((lo, hi)) = self.window() else {
                    return;
                };
                let w = ((hi - lo) + width * span).max(span * 1e-4);
                let l = (lo + hi) / 2.0 + level * span;
                self.set_window((l - w / 2.0, l + w / 2.0));
            }
        }
    }

    /// Paint with the brush (or erase) between two world points in a slice
    /// view: a disc in the voxel slice under the crosshair, or a ball.
    fn paint(&mut self, axis: crate::viewmath::SliceAxis, from: [f64; 3], to: [f64; 3]) {
        use crate::annotation::brush::{axis_along, voxel_of};
        use crate::annotation::{Brush, BrushShape, PaintRule};
        let Some(doc) = &mut self.doc else { return };
        let Some(layer) = doc.layer(0) else { return };
        let geometry = layer.volume.geometry.clone();
        let dims = layer.volume.dims;
        let mut normal = [0.0; 3];
        normal[axis.normal_axis()] = 1.0;
        let across = axis_along(&geometry, normal);
        let Some(c) = voxel_of(&geometry, self.cursor.crosshair_mm) else {
            return;
        };
        let index = c[across]
            .round()
            .clamp(0.0, (dims[across].max(1) - 1) as f64) as usize;
        let brush = Brush {
            radius_mm: self.settings.brush_radius_mm,
            shape: if self.settings.brush_ball {
                BrushShape::Ball
            } else {
                BrushShape::Disc {
                    axis: across,
                    index,
                }
            },
        };
        let voxels = brush.covered(&geometry, dims, from, to);
        let rule = PaintRule {
            value: if self.settings.tool == settings::Tool::Eraser {
                0
            } else {
                self.settings.active_label
            },
            ..PaintRule::default()
        };
        doc.paint(self.cursor.frame, &voxels, &rule, self.cursor.active);
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
                Ok(doc) => {
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
        self.file_jobs_logic();
        if let Some(doc) = &self.doc {
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

    /// Collect label, prediction and save jobs.
    fn file_jobs_logic(&mut self) {
        let doc_id = self.doc.as_ref().map_or(0, Document::id);
        if let Some((tag, r)) = self.label_job.poll()
            && tag == doc_id
            && let Some(doc) = &mut self.doc
        {
            match r.and_then(|(path, labels)| {
                doc.open_labels(&path, labels)?;
                Ok(path)
            }) {
                Ok(path) => {
                    self.notes.info(format!("opened labels {}", path.display()));
                    self.remember_labels(path);
                }
                Err(e) => self.notes.error(e),
            }
        }
        if let Some((tag, r)) = self.prediction_job.poll()
            && tag == doc_id
            && let Some(doc) = &mut self.doc
        {
            match r.and_then(|p| doc.set_prediction(p)) {
                Ok(()) => {}
                Err(e) => self.notes.error(e),
            }
        }
        if let Some((tag, r)) = self.save_job.poll() {
            match r {
                Ok(path) => {
                    if tag == doc_id
                        && let Some(doc) = &mut self.doc
                    {
                        doc.mark_saved(&path);
                    }
                    self.notes
                        .info(format!("saved labels to {}", path.display()));
                    self.remember_labels(path);
                }
                Err(e) => self.notes.error(format!("labels not saved: {e}")),
            }
        }
        if let Some((_, r)) = self.save_prediction_job.poll() {
            match r {
                Ok(path) => self
                    .notes
                    .info(format!("saved the prediction to {}", path.display())),
                Err(e) => self.notes.error(format!("prediction not saved: {e}")),
            }
        }
    }

    /// The open case's recent entry remembers its labels file.
    fn remember_labels(&mut self, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let s = doc.sources();
        let paths = if s.images.is_empty() {
            s.folder.iter().cloned().collect()
        } else {
            s.images.clone()
        };
        if !paths.is_empty() {
            self.settings.remember(settings::Recent {
                paths,
                labels: Some(path),
            });
        }
    }

    /// Read a label map onto the open image in the background.
    pub fn load_labels(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let wake = ctx.clone();
        self.label_job.start(Job::spawn(
            "load-labels",
            doc.id(),
            move || wake.request_repaint(),
            move |_| loader::load_labels(&path).map(|l| (path, l)),
        ));
    }

    /// Load a prediction label map in the background.
    pub fn load_prediction(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let wake = ctx.clone();
        self.prediction_job.start(Job::spawn(
            "load-prediction",
            doc.id(),
            move || wake.request_repaint(),
            move |_| evaluation::load_prediction(&path),
        ));
    }

    /// Install a prediction for the open case (tests; the app's jobs call
    /// the document directly); it must be on the labels' grid.
    pub fn set_prediction(&mut self, prediction: Prediction) -> Result<(), String> {
        let Some(doc) = &mut self.doc else {
            return Err("open a case before its prediction".into());
        };
        doc.set_prediction(prediction)
    }

    /// Upload the current frame(s), labels and palette if they changed.
    fn upload(&mut self) {
        let (Some(rs), Some(doc)) = (&self.render_state, &self.doc) else {
            return;
        };
        let slots: Vec<usize> = match self.settings.layout {
            Layout::Grid => vec![self.cursor.active],
            Layout::Modalities => (0..doc.layers().len()).collect(),
        };
        let overlay = self.settings.overlay;
        let difference = overlay == settings::Overlay::Difference && doc.prediction().is_some();
        let palette = if difference {
            evaluation::difference_palette()
        } else {
            doc.palette(&self.settings.hidden)
        };
        let rev = doc.revisions();
        let key = UploadKey {
            doc: doc.id(),
            frame: self.cursor.frame,
            layers: slots.clone(),
            labels: (rev.labels, rev.prediction),
            overlay: Some(overlay),
            difference: difference && self.eval.difference(doc).is_some(),
            palette,
        };
        if key == self.uploaded {
            return;
        }
        let mut guard = rs.renderer.write();
        let Some(renderer) = guard.callback_resources.get_mut::<Renderer>() else {
            return;
        };
        let limit = renderer.max_texture_3d as usize;
        let mut notice = None;
        let frame = self.cursor.frame;
        for (slot, &li) in slots.iter().enumerate() {
            let Some(layer) = doc.layer(li) else {
                continue;
            };
            let t = frame.min(layer.volume.frames - 1);
            let (dims, values, grid) = upload::frame_upload(layer, t, limit);
            if grid.dims != layer.volume.dims {
                notice = Some(format!(
                    "{} is larger than the GPU's 3D texture limit ({limit}); shown downsampled to {:?}",
                    layer.name, grid.dims
                ));
            }
            renderer.set_volume(&rs.device, &rs.queue, slot, dims, &values);
            if slot == 0 {
                let stride = layer.volume.dims[0].div_ceil(grid.dims[0]).max(1);
                let labels = evaluation::shown_labels(doc, &self.eval, overlay, frame);
                let has = labels.is_some();
                match labels.as_deref() {
                    Some(l) => {
                        let (ldims, data) = upload::label_upload(l, frame, stride);
                        let upload = match &data {
                            LabelData::U8(d) => LabelUpload::U8(d),
                            LabelData::U16(d) => LabelUpload::U16(d),
                        };
                        renderer.set_labels(&rs.device, &rs.queue, ldims, upload);
                    }
                    None => {
                        renderer.set_labels(
                            &rs.device,
                            &rs.queue,
                            [1, 1, 1],
                            LabelUpload::U8(&[0]),
                        );
                    }
                }
                self.grid = Some(TexGrid {
                    has_labels: has,
                    ..grid
                });
            }
        }
        renderer.set_palette(&rs.queue, &key.palette);
        if notice.is_some() && notice != self.notice {
            self.notes.warn(notice.clone().unwrap_or_default());
        }
        self.notice = notice;
        self.uploaded = key;
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
            if let Some(c) = export {
                self.run_command(&ctx, c);
            }
        }
        egui::CentralPanel::default().show(ui, |ui| self.views_ui(ui));
        self.notes.errors_ui(&ctx);
        commands::shortcuts_window(&mut self.show_shortcuts, &ctx);
        let mut open = self.show_messages;
        self.notes.history_ui(&mut open, &ctx);
        self.show_messages = open;
    }

    fn views_ui(&mut self, ui: &mut egui::Ui) {
        let rect = ui.available_rect_before_wrap();
        ui.allocate_rect(rect, egui::Sense::hover());
        let Some(doc) = &self.doc else {
            let msg = match self.load.job() {
                Some(j) => j.progress().message,
                None => "File > Open, or drop a NIfTI file or dataset folder here".into(),
            };
            ui.painter().text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                msg,
                egui::FontId::proportional(18.0),
                egui::Color32::GRAY,
            );
            return;
        };
        let mut intents = Vec::new();
        let mut hover = None;
        self.view_rects.clear();
        match self.settings.layout {
            Layout::Modalities => {
                let n = doc.layers().len().max(1);
                let w = rect.width() / n as f32;
                for slot in 0..n {
                    let r = egui::Rect::from_min_size(
                        rect.min + egui::vec2(w * slot as f32, 0.0),
                        egui::vec2(w - 2.0, rect.height()),
                    );
                    let cursor = Cursor {
                        active: slot,
                        ..self.cursor
                    };
                    let view = ViewCtx {
                        doc,
                        cursor: &cursor,
                        settings: &self.settings,
                        grid: self.grid.as_ref(),
                        gpu: self.render_state.is_some(),
                    };
                    let h = views::slice_view_ui(
                        ui,
                        r,
                        crate::viewmath::SliceAxis::Axial,
                        slot,
                        &view,
                        &mut self.camera,
                        &mut intents,
                    );
                    hover = hover.or(h);
                }
            }
            Layout::Grid => {
                let view = ViewCtx {
                    doc,
                    cursor: &self.cursor,
                    settings: &self.settings,
                    grid: self.grid.as_ref(),
                    gpu: self.render_state.is_some(),
                };
                let cells: Vec<(ViewId, egui::Rect)> = match self.camera.maximised {
                    Some(v) => vec![(v, rect)],
                    None => {
                        let half = rect.size() / 2.0;
                        ViewId::ALL
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| {
                                let min = rect.min
                                    + egui::vec2((i % 2) as f32 * half.x, (i / 2) as f32 * half.y);
                                (
                                    v,
                                    egui::Rect::from_min_size(min, half - egui::vec2(2.0, 2.0)),
                                )
                            })
                            .collect()
                    }
                };
                for (v, r) in cells {
                    self.view_rects.push((v, r));
                    match v {
                        ViewId::Slice(axis) => {
                            let h = views::slice_view_ui(
                                ui,
                                r,
                                axis,
                                0,
                                &view,
                                &mut self.camera,
                                &mut intents,
                            );
                            hover = hover.or(h);
                        }
                        ViewId::ThreeD => {
                            views::three_d_view_ui(ui, r, &view, &mut self.camera);
                        }
                    }
                }
            }
        }
        self.hover = hover;
        for i in intents {
            self.apply(i);
        }
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
