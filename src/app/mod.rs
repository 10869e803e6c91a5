//! The desktop app (feature `gui`): eframe with the wgpu renderer.
//!
//! `UmeApp` owns the open [`Document`], the views' camera state and the
//! background jobs. `App::logic` drains job channels and advances the cine;
//! `App::ui` draws panels and views and uploads the current frame to the GPU
//! when it changed. Nothing slow runs on the UI thread: loading is a job,
//! and a frame upload converts one frame (tens of ms at most).

#[cfg(feature = "ml")]
pub mod ai;
pub mod bench;
pub mod document;
pub mod evaluation;
pub mod keyframes_ui;
pub mod loader;
mod panels;
pub mod upload;
pub mod views;

pub use document::Document;
pub use loader::LoadRequest;

use crate::render::{LabelUpload, Renderer};
use crate::volume::LabelData;
use eframe::egui;
use eframe::egui_wgpu::RenderState;
use std::path::PathBuf;
use views::{TexGrid, ViewId, ViewState};

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
}

impl ViewOptions {
    /// The first load request these options ask for.
    pub fn request(&self) -> Option<LoadRequest> {
        if self.paths.is_empty() {
            return self.demo_dir.clone().map(LoadRequest::Demo);
        }
        if self.paths.len() == 1 && self.paths[0].is_dir() {
            return Some(LoadRequest::Folder(self.paths[0].clone()));
        }
        Some(LoadRequest::Files {
            paths: self.paths.clone(),
            labels: self.labels.clone(),
        })
    }
}

/// What is on the GPU now, to know when to upload again.
#[derive(Debug, Clone, Default, PartialEq)]
struct UploadKey {
    doc: u64,
    frame: usize,
    layers: Vec<usize>,
    palette: u64,
    prediction: u64,
    overlay: u8,
}

/// What a file pick is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Open images or a folder as the case.
    Open,
    /// Load a prediction label map for the open case.
    Prediction,
}

/// Screenshot-and-exit progress.
#[derive(Debug, Clone, PartialEq)]
enum Shot {
    Idle,
    /// Frames drawn since the data appeared.
    Waiting(u32),
    Requested,
}

/// Side-by-side modalities or the 2×2 layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Axial, 3D, coronal, sagittal.
    #[default]
    Grid,
    /// The axial slice of every modality side by side, one crosshair.
    Modalities,
}

/// The application.
pub struct UmeApp {
    /// The open case.
    pub doc: Option<Document>,
    /// Bumped when a new document is opened.
    pub doc_generation: u64,
    /// View cameras and display settings.
    pub views: ViewState,
    /// Layout.
    pub layout: Layout,
    render_state: Option<RenderState>,
    uploaded: UploadKey,
    grid: Option<TexGrid>,
    /// Bumped when label visibility or colours change.
    pub palette_generation: u64,
    load: Option<loader::LoadJob>,
    /// Last loading message.
    pub status: String,
    /// Last error, shown until dismissed.
    pub error: Option<String>,
    /// A notice (e.g. downsampled display).
    pub notice: Option<String>,
    /// Cine playback.
    pub playing: bool,
    /// Cine speed.
    pub fps: f32,
    cine_clock: f64,
    /// Pointer read-out.
    pub hover: Option<views::Hover>,
    /// Where each view was drawn last frame (for tests and exports).
    pub view_rects: Vec<(ViewId, egui::Rect)>,
    shot: Shot,
    shot_rx: Option<std::sync::mpsc::Receiver<std::sync::Arc<egui::ColorImage>>>,
    screenshot_path: Option<PathBuf>,
    /// Crop the next screenshot to this view's rectangle (points).
    shot_crop: Option<egui::Rect>,
    /// Close the window after the screenshot (the `--screenshot` option).
    exit_after_shot: bool,
    /// Where demo phantoms live.
    pub demo_dir: Option<PathBuf>,
    /// Recently opened paths.
    pub recent: Vec<PathBuf>,
    browser: Option<panels::Browser>,
    dialog: Option<std::sync::mpsc::Receiver<Option<Vec<PathBuf>>>>,
    /// What the open dialog or browser is picking.
    pub pick: Pick,
    /// Prediction and metrics.
    pub eval: evaluation::EvalState,
    /// Keyframe inspector (cine cases).
    pub keyframes: keyframes_ui::KeyframeState,
    /// Bumped when the prediction changes.
    pub prediction_generation: u64,
    prediction_job:
        Option<std::sync::mpsc::Receiver<Result<(PathBuf, crate::volume::LabelVolume), String>>>,
    pending_prediction: Option<PathBuf>,
    /// Models: segmentation, what-if, fine-tuning.
    #[cfg(feature = "ml")]
    pub ai: ai::AiState,
}

impl UmeApp {
    /// An app with an optional renderer (egui-wgpu's render state); starts
    /// loading what `options` asks for.
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
            doc_generation: 0,
            views: ViewState::default(),
            layout: Layout::Grid,
            render_state,
            uploaded: UploadKey::default(),
            grid: None,
            palette_generation: 0,
            load: None,
            status: String::new(),
            error: None,
            notice: None,
            playing: false,
            fps: 15.0,
            cine_clock: 0.0,
            hover: None,
            view_rects: Vec::new(),
            shot: if options.screenshot.is_some() {
                Shot::Waiting(0)
            } else {
                Shot::Idle
            },
            shot_rx: None,
            exit_after_shot: options.screenshot.is_some(),
            shot_crop: None,
            screenshot_path: options.screenshot.clone(),
            recent: panels::load_recent(),
            demo_dir: options.demo_dir.clone(),
            browser: None,
            dialog: None,
            pick: Pick::Open,
            eval: evaluation::EvalState::default(),
            keyframes: keyframes_ui::KeyframeState::default(),
            prediction_generation: 0,
            prediction_job: None,
            pending_prediction: options.prediction.clone(),
            #[cfg(feature = "ml")]
            ai: ai::AiState::default(),
        };
        if let Some(req) = options.request() {
            app.open(ctx, req);
        }
        app
    }

    /// Start loading in the background.
    pub fn open(&mut self, ctx: &egui::Context, request: LoadRequest) {
        let ctx2 = ctx.clone();
        self.status = "loading...".into();
        match loader::spawn(request, move || ctx2.request_repaint()) {
            Ok(job) => self.load = Some(job),
            Err(e) => self.error = Some(format!("could not start loading: {e}")),
        }
    }

    /// Install a loaded document (also used by tests).
    pub fn set_document(&mut self, doc: Document) {
        self.doc = Some(doc);
        self.doc_generation += 1;
        self.views.zoom = [1.0; 3];
        self.views.pan_mm = [[0.0; 2]; 3];
        self.playing = false;
    }

    /// Whether a load is running.
    pub fn is_loading(&self) -> bool {
        self.load.is_some()
    }

    /// Drain background jobs and advance the cine (no drawing).
    pub fn logic(&mut self, ctx: &egui::Context) {
        if let Some(job) = &self.load {
            let mut finished = None;
            while let Ok(ev) = job.events.try_recv() {
                match ev {
                    loader::LoadEvent::Progress(m) => self.status = m,
                    loader::LoadEvent::Done(r) => finished = Some(r),
                }
            }
            if let Some(r) = finished {
                let req = job.request.clone();
                self.load = None;
                match r {
                    Ok(doc) => {
                        self.status = format!("opened {}", doc.title);
                        if let LoadRequest::Files { paths, .. } = &req {
                            panels::remember(&mut self.recent, paths.first().cloned());
                        } else if let LoadRequest::Folder(p) = &req {
                            panels::remember(&mut self.recent, Some(p.clone()));
                        }
                        self.set_document(*doc);
                    }
                    Err(e) => {
                        self.status.clear();
                        self.error = Some(e);
                    }
                }
            }
        }
        if let Some(rx) = &self.dialog
            && let Ok(picked) = rx.try_recv()
        {
            self.dialog = None;
            match picked {
                Some(paths) if !paths.is_empty() && self.pick == Pick::Prediction => {
                    self.load_prediction(ctx, paths[0].clone());
                }
                Some(paths) if !paths.is_empty() => {
                    let req = if paths.len() == 1 && paths[0].is_dir() {
                        LoadRequest::Folder(paths[0].clone())
                    } else {
                        LoadRequest::Files {
                            paths,
                            labels: None,
                        }
                    };
                    self.open(ctx, req);
                }
                Some(_) => {}
                // The dialog could not be shown (no portal, no zenity): use ours.
                None => self.browser = Some(panels::Browser::new()),
            }
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            let req = if dropped.len() == 1 && dropped[0].is_dir() {
                LoadRequest::Folder(dropped[0].clone())
            } else {
                LoadRequest::Files {
                    paths: dropped,
                    labels: None,
                }
            };
            self.open(ctx, req);
        }
        if self.doc.is_some()
            && let Some(p) = self.pending_prediction.take()
        {
            self.load_prediction(ctx, p);
        }
        if let Some(rx) = &self.prediction_job
            && let Ok(r) = rx.try_recv()
        {
            self.prediction_job = None;
            match r.and_then(|(path, l)| self.set_prediction(&path, l)) {
                Ok(()) => {}
                Err(e) => self.error = Some(e),
            }
        }
        if let Some(doc) = &self.doc {
            let wake = ctx.clone();
            let key = (self.doc_generation, self.prediction_generation, doc.frame);
            self.eval.update(doc, key, move || wake.request_repaint());
            if doc.frames() > 1 {
                let wake = ctx.clone();
                self.keyframes
                    .update(doc, self.doc_generation, move || wake.request_repaint());
            }
        }
        #[cfg(feature = "ml")]
        ai::logic(self, ctx);
        if self.playing
            && let Some(doc) = &mut self.doc
        {
            let frames = doc.frames();
            self.cine_clock += f64::from(ctx.input(|i| i.stable_dt).min(0.25));
            let period = 1.0 / f64::from(self.fps.max(0.5));
            while self.cine_clock >= period {
                self.cine_clock -= period;
                doc.frame = (doc.frame + 1) % frames.max(1);
            }
            ctx.request_repaint();
        }
    }

    /// Load a prediction label map in the background.
    pub fn load_prediction(&mut self, ctx: &egui::Context, path: PathBuf) {
        let wake = ctx.clone();
        match evaluation::spawn_prediction_load(path, move || wake.request_repaint()) {
            Ok(rx) => self.prediction_job = Some(rx),
            Err(e) => self.error = Some(format!("could not start loading: {e}")),
        }
    }

    /// Install a prediction for the open case; it must be on the labels' grid.
    pub fn set_prediction(
        &mut self,
        path: &std::path::Path,
        labels: crate::volume::LabelVolume,
    ) -> Result<(), String> {
        let Some(doc) = &mut self.doc else {
            return Err("open a case before its prediction".into());
        };
        let Some(layer) = doc.layer() else {
            return Err("the case has no image".into());
        };
        let v = &layer.volume;
        crate::dataset::check_same_grid(
            std::path::Path::new(&layer.name),
            v.dims,
            &v.geometry,
            path,
            labels.dims,
            &labels.geometry,
        )
        .map_err(|e| e.to_string())?;
        if doc.table.labels.is_empty() {
            let counts = labels.counts();
            doc.table = crate::volume::LabelTable::generic(
                (1..counts.len())
                    .filter(|&i| counts[i] > 0)
                    .filter_map(|i| u16::try_from(i).ok()),
            );
        }
        doc.prediction = Some(std::sync::Arc::new(labels));
        self.prediction_generation += 1;
        Ok(())
    }

    /// Upload the current frame(s), labels and palette if they changed.
    fn upload(&mut self) {
        let (Some(rs), Some(doc)) = (&self.render_state, &self.doc) else {
            return;
        };
        let slots: Vec<usize> = match self.layout {
            Layout::Grid => vec![doc.active],
            Layout::Modalities => (0..doc.layers.len()).collect(),
        };
        let key = UploadKey {
            doc: self.doc_generation,
            frame: doc.frame,
            layers: slots.clone(),
            palette: self.palette_generation,
            prediction: self.prediction_generation,
            overlay: doc.overlay as u8,
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
        for (slot, &li) in slots.iter().enumerate() {
            let Some(layer) = doc.layers.get(li) else {
                continue;
            };
            let frame = doc.frame.min(layer.volume.frames - 1);
            let (dims, values, grid) = upload::frame_upload(layer, frame, limit);
            if grid.dims != layer.volume.dims {
                notice = Some(format!(
                    "{} is larger than the GPU's 3D texture limit ({limit}); shown downsampled to {:?}",
                    layer.name, grid.dims
                ));
            }
            renderer.set_volume(&rs.device, &rs.queue, slot, dims, &values);
            if slot == 0 {
                let stride = layer.volume.dims[0].div_ceil(grid.dims[0]).max(1);
                let labels = evaluation::shown_labels(doc);
                let has = labels.is_some();
                match labels.as_deref() {
                    Some(l) => {
                        let (ldims, data) = upload::label_upload(l, doc.frame, stride);
                        match &data {
                            LabelData::U8(d) => renderer.set_labels(
                                &rs.device,
                                &rs.queue,
                                ldims,
                                LabelUpload::U8(d),
                            ),
                            LabelData::U16(d) => renderer.set_labels(
                                &rs.device,
                                &rs.queue,
                                ldims,
                                LabelUpload::U16(d),
                            ),
                        }
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
        let palette = if doc.overlay == evaluation::Overlay::Difference && doc.prediction.is_some()
        {
            evaluation::difference_palette()
        } else {
            doc.palette()
        };
        renderer.set_palette(&rs.queue, &palette);
        self.notice = notice;
        self.uploaded = key;
    }

    /// Draw everything (the body of `App::ui`; tests call it through kittest).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.logic_screenshot(&ctx);
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
        if let Some(doc) = &mut self.doc
            && doc.prediction.is_some()
        {
            let mut changed = false;
            let eval = &mut self.eval;
            egui::Panel::right("metrics")
                .default_size(380.0)
                .show(ui, |ui| evaluation::panel_ui(eval, doc, ui, &mut changed));
        }
        egui::CentralPanel::default().show(ui, |ui| self.views_ui(ui));
        panels::dialogs(self, ui);
        if let Some(b) = &mut self.browser {
            match b.ui(&ctx) {
                panels::BrowserResult::Open(req) => {
                    self.browser = None;
                    match (self.pick, req) {
                        (Pick::Prediction, LoadRequest::Files { paths, .. })
                            if !paths.is_empty() =>
                        {
                            self.load_prediction(&ctx, paths[0].clone());
                        }
                        (_, req) => self.open(&ctx, req),
                    }
                }
                panels::BrowserResult::Close => self.browser = None,
                panels::BrowserResult::Stay => {}
            }
        }
    }

    fn views_ui(&mut self, ui: &mut egui::Ui) {
        let rect = ui.available_rect_before_wrap();
        ui.allocate_rect(rect, egui::Sense::hover());
        let Some(doc) = &mut self.doc else {
            let msg = if self.is_loading() {
                self.status.as_str()
            } else {
                "File > Open, or drop a NIfTI file or dataset folder here"
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
        let gpu = self.render_state.is_some();
        let grid = self.grid.as_ref();
        let mut hover = None;
        self.view_rects.clear();
        match self.layout {
            Layout::Modalities => {
                let n = doc.layers.len().max(1);
                let w = rect.width() / n as f32;
                let active = doc.active;
                for slot in 0..n {
                    let r = egui::Rect::from_min_size(
                        rect.min + egui::vec2(w * slot as f32, 0.0),
                        egui::vec2(w - 2.0, rect.height()),
                    );
                    doc.active = slot;
                    let h = views::slice_view_ui(
                        ui,
                        r,
                        crate::viewmath::SliceAxis::Axial,
                        doc,
                        &mut self.views,
                        grid,
                        slot,
                        gpu,
                    );
                    hover = hover.or(h);
                }
                doc.active = active;
            }
            Layout::Grid => {
                let cells: Vec<(ViewId, egui::Rect)> = match self.views.maximised {
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
                                doc,
                                &mut self.views,
                                grid,
                                0,
                                gpu,
                            );
                            hover = hover.or(h);
                        }
                        ViewId::ThreeD => {
                            views::three_d_view_ui(ui, r, doc, &mut self.views, grid, gpu);
                        }
                    }
                }
            }
        }
        self.hover = hover;
    }

    /// Screenshot-and-exit: wait until the data has been drawn a few times,
    /// ask eframe for a screenshot, save it when it arrives, then close.
    fn logic_screenshot(&mut self, ctx: &egui::Context) {
        let Some(path) = self.screenshot_path.clone() else {
            return;
        };
        let shot = self.shot_rx.as_ref().and_then(|rx| rx.try_recv().ok());
        if let Some(image) = shot {
            let ppp = ctx.pixels_per_point();
            if let Err(e) = save_png(&path, &image, self.shot_crop.take().map(|r| r * ppp)) {
                eprintln!("error: {e:#}");
            } else {
                eprintln!("saved {}", path.display());
            }
            self.shot_rx = None;
            if self.exit_after_shot {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                self.screenshot_path = None;
                self.shot = Shot::Idle;
            }
            return;
        }
        if self.exit_after_shot && self.error.is_some() && self.doc.is_none() && !self.is_loading()
        {
            eprintln!("error: {}", self.error.clone().unwrap_or_default());
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        match self.shot {
            Shot::Waiting(n)
                if self.doc.is_some()
                    && self.uploaded.doc == self.doc_generation
                    && self.pending_prediction.is_none()
                    && self.prediction_job.is_none()
                    && !self.eval.is_computing() =>
            {
                if n >= 3 {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    let wake = ctx.clone();
                    let callback = egui::ScreenshotCallback::new(move |image| {
                        let _ = tx.send(image);
                        wake.request_repaint();
                    });
                    self.shot_rx = Some(rx);
                    ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
                    self.shot = Shot::Requested;
                } else {
                    self.shot = Shot::Waiting(n + 1);
                }
                ctx.request_repaint();
            }
            _ => ctx.request_repaint_after(std::time::Duration::from_millis(50)),
        }
    }

    /// Save the window, or one view of it, as PNG (File → Export).
    pub fn request_export(&mut self, ctx: &egui::Context, path: PathBuf, view: Option<ViewId>) {
        self.shot_crop = view.and_then(|v| {
            self.view_rects
                .iter()
                .find(|(id, _)| *id == v)
                .map(|(_, r)| *r)
        });
        self.status = format!("saving {}", path.display());
        self.screenshot_path = Some(path);
        self.shot = Shot::Waiting(3);
        ctx.request_repaint();
    }

    /// Open the native file dialog on its own thread (it blocks), falling
    /// back to the in-app browser when no dialog can be shown.
    pub fn open_dialog(&mut self, folder: bool, pick: Pick) {
        self.pick = pick;
        if !panels::native_dialog_available() {
            self.browser = Some(panels::Browser::new());
            return;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("ume-dialog".into())
            .spawn(move || {
                let dialog = rfd::FileDialog::new();
                let picked = if folder {
                    dialog.pick_folder().map(|p| vec![p])
                } else {
                    dialog
                        .add_filter("NIfTI / Analyze", &["nii", "gz", "hdr", "img"])
                        .pick_files()
                };
                let _ = tx.send(picked);
            });
        match spawned {
            Ok(_) => self.dialog = Some(rx),
            Err(_) => self.browser = Some(panels::Browser::new()),
        }
    }
}

fn save_png(
    path: &std::path::Path,
    image: &egui::ColorImage,
    crop_px: Option<egui::Rect>,
) -> anyhow::Result<()> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(egui::Color32::to_array)
        .collect();
    let mut img = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| anyhow::anyhow!("screenshot has a wrong size"))?;
    if let Some(r) = crop_px {
        let x = (r.left().max(0.0) as u32).min(w as u32 - 1);
        let y = (r.top().max(0.0) as u32).min(h as u32 - 1);
        let cw = (r.width() as u32).min(w as u32 - x).max(1);
        let ch = (r.height() as u32).min(h as u32 - y).max(1);
        img = image::imageops::crop_imm(&img, x, y, cw, ch).to_image();
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    crate::io::write_atomic(path, &bytes)?;
    Ok(())
}

impl eframe::App for UmeApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        UmeApp::logic(self, ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
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
            Ok(Box::new(UmeApp::new(
                &cc.egui_ctx,
                cc.wgpu_render_state.clone(),
                &options,
            )))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open the UME window: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_views_are_cropped_from_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let mut img = egui::ColorImage::filled([40, 30], egui::Color32::BLACK);
        img.pixels[12 * 40 + 21] = egui::Color32::RED; // inside the crop, at (1, 2) of it
        let path = tmp.path().join("view.png");
        save_png(
            &path,
            &img,
            Some(egui::Rect::from_min_size(
                egui::pos2(20.0, 10.0),
                egui::vec2(15.0, 10.0),
            )),
        )
        .unwrap();
        let back = image::open(&path).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (15, 10));
        assert_eq!(back.get_pixel(1, 2).0, [255, 0, 0, 255]);
        save_png(&path, &img, None).unwrap();
        assert_eq!(
            image::open(&path).unwrap().to_rgba8().dimensions(),
            (40, 30)
        );
    }
}
