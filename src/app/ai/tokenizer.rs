//! The Tokenizer panel: a TiTok checkpoint turns every frame of the open
//! image into its tokens and back, in a background job; the panel shows
//! the crosshair's slice at the current frame as original, reconstruction
//! and difference side by side, PSNR and SSIM per frame as curves, and the
//! frame's token ids.

use crate::app::UmeApp;
use crate::app::jobs::{Job, Slot};
use crate::models::tokenize::{Tokenized, load_titok, tokenize_volume};
use eframe::egui;
use std::sync::Arc;

/// The panel's state.
#[derive(Default)]
pub struct TokenizerState {
    /// A tokenizer checkpoint folder.
    pub model: String,
    job: Slot<Arc<Tokenized>>,
    /// The last result and the document it belongs to.
    result: Option<(u64, Arc<Tokenized>)>,
    /// Textures of (key, original, reconstruction, difference).
    thumbs: Option<(ThumbKey, [egui::TextureHandle; 3])>,
}

/// What the thumbnails show: document, frame index, window.
type ThumbKey = (u64, usize, (i64, i64));

impl TokenizerState {
    /// The result for document `doc`, if any.
    pub fn result_for(&self, doc: u64) -> Option<&Tokenized> {
        self.result
            .as_ref()
            .filter(|(d, _)| *d == doc)
            .map(|(_, r)| &**r)
    }

    /// Whether a reconstruction is running.
    pub fn is_running(&self) -> bool {
        self.job.is_running()
    }

    /// The running job, for the status bar.
    pub fn describe(&self) -> Option<(&'static str, crate::app::jobs::Progress)> {
        self.job.describe()
    }

    /// A new case: the last one's result goes.
    pub fn reset(&mut self) {
        self.job.abandon();
        self.result = None;
        self.thumbs = None;
    }
}

/// Start reconstructing the open image with the chosen tokenizer.
pub fn start(app: &mut UmeApp, ctx: &egui::Context) {
    let Some(doc) = &app.doc else { return };
    let Some(layer) = doc.layer(0) else { return };
    let path = std::path::PathBuf::from(app.ai.tokenizer.model.trim());
    let volume = layer.volume.clone();
    let choice = app.ai.device;
    let wake = ctx.clone();
    app.ai.tokenizer.job.start(Job::spawn(
        "tokenize",
        doc.id(),
        move || wake.request_repaint(),
        move |job| {
            let dev = crate::models::device(choice);
            let (config, model) = load_titok(&path, &dev).map_err(|e| e.to_string())?;
            job.cancel_token().check("tokenizing")?;
            tokenize_volume(&config, &model, &volume, &dev, 16, |n, of| {
                job.fraction(n, of);
                !job.is_cancelled()
            })
            .map(Arc::new)
            .map_err(|e| e.to_string())
        },
    ));
    app.notes.info("tokenizing the open image…");
}

/// Collect a finished reconstruction (every frame).
pub fn logic(app: &mut UmeApp) {
    let doc_id = app.doc.as_ref().map_or(0, crate::app::Document::id);
    if let Some((tag, r)) = app.ai.tokenizer.job.poll() {
        match r {
            Ok(t) if tag == doc_id => {
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
                app.notes.info(format!(
                    "tokenized {} frames: PSNR {:.2} dB, SSIM {:.3}",
                    t.tokens.len(),
                    mean(&t.psnr_db),
                    mean(&t.ssim)
                ));
                app.ai.tokenizer.result = Some((tag, t));
                app.ai.tokenizer.thumbs = None;
            }
            Ok(_) => {}
            Err(e) => app.notes.error(e),
        }
    }
}

/// A slice of `values` (`nx`×`ny`, x fastest) as a grey image through the
/// window, rows from anterior as the views show them.
fn image(values: &[f32], nx: usize, ny: usize, map: impl Fn(f32) -> u8) -> egui::ColorImage {
    let mut pixels = Vec::with_capacity(nx * ny);
    for j in (0..ny).rev() {
        for i in (0..nx).rev() {
            pixels.push(egui::Color32::from_gray(map(values[j * nx + i])));
        }
    }
    egui::ColorImage::new([nx, ny], pixels)
}

/// The panel.
pub fn section(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some(doc) = &app.doc else { return };
    let doc_id = doc.id();
    egui::CollapsingHeader::new("Tokenizer")
        .default_open(false)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("Tokenizer folder");
                ui.text_edit_singleline(&mut app.ai.tokenizer.model)
                    .labelled_by(l.id)
                    .on_hover_text("a checkpoint of `ume train --config configs/titok_*.json`");
            });
            let busy = app.ai.tokenizer.is_running();
            if ui
                .add_enabled(
                    !busy && !app.ai.tokenizer.model.trim().is_empty(),
                    egui::Button::new(if busy { "Tokenizing…" } else { "Reconstruct" }),
                )
                .clicked()
            {
                start(app, ui.ctx());
            }
            result_ui(app, doc_id, ui);
        });
}

fn result_ui(app: &mut UmeApp, doc_id: u64, ui: &mut egui::Ui) {
    let Some((z, _)) = crate::app::slices_ui::crosshair_z(app) else {
        return;
    };
    let window = app.window().unwrap_or((0.0, 1.0));
    let frame = app.cursor.frame;
    let (Some(doc), Some(result)) = (&app.doc, app.ai.tokenizer.result.clone()) else {
        return;
    };
    if result.0 != doc_id {
        return;
    }
    let t = &result.1;
    let Some(layer) = doc.layer(0) else { return };
    let v = &layer.volume;
    let [nx, ny, nz] = v.dims;
    let f = frame.min(v.frames.saturating_sub(1)) * nz + z;
    let Some(tokens) = t.tokens.get(f) else {
        return;
    };
    ui.label(format!(
        "frame {f}: PSNR {:.2} dB, SSIM {:.3}",
        t.psnr_db.get(f).copied().unwrap_or(f64::NAN),
        t.ssim.get(f).copied().unwrap_or(f64::NAN)
    ));
    let key: ThumbKey = (
        doc_id,
        f,
        ((window.0 * 1000.0) as i64, (window.1 * 1000.0) as i64),
    );
    let state = &mut app.ai.tokenizer;
    if state.thumbs.as_ref().is_none_or(|(k, _)| *k != key) {
        // One slice, read voxel by voxel: converting the whole frame here
        // would grow with the volume on the UI thread.
        let slice = |vol: &crate::volume::Volume| -> Vec<f32> {
            if vol.dims != [nx, ny, nz] {
                return Vec::new();
            }
            let t = frame.min(vol.frames.saturating_sub(1));
            let base = t * vol.voxels_per_frame() + z * nx * ny;
            (0..nx * ny)
                .map(|i| vol.value_at(base + i, 0) as f32)
                .collect()
        };
        let (a, b) = (slice(v), slice(&t.reconstruction));
        if a.len() == nx * ny && b.len() == nx * ny {
            let win = |x: f32| {
                (crate::viewmath::apply_window(f64::from(x), window.0, window.1) * 255.0) as u8
            };
            let diff: Vec<f32> = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).collect();
            let width = (window.1 - window.0).abs().max(1e-9);
            let dmap = |x: f32| ((f64::from(x) / width * 2.0).min(1.0) * 255.0) as u8;
            let ctx = ui.ctx();
            let tex = |name: &str, img| ctx.load_texture(name, img, egui::TextureOptions::LINEAR);
            state.thumbs = Some((
                key,
                [
                    tex("tok-original", image(&a, nx, ny, win)),
                    tex("tok-recon", image(&b, nx, ny, win)),
                    tex("tok-diff", image(&diff, nx, ny, dmap)),
                ],
            ));
        }
    }
    if let Some((_, [a, b, d])) = &state.thumbs {
        let side = ((ui.available_width() - 12.0) / 3.0).clamp(40.0, 160.0);
        let size = egui::vec2(side, side * ny as f32 / nx.max(1) as f32);
        ui.horizontal(|ui| {
            for (tex, what) in [(a, "original"), (b, "reconstruction"), (d, "difference")] {
                ui.vertical(|ui| {
                    ui.add(egui::Image::new(tex).fit_to_exact_size(size));
                    ui.small(what);
                });
            }
        });
    }
    let psnr: Vec<[f64; 2]> = t
        .psnr_db
        .iter()
        .enumerate()
        .filter(|(_, p)| p.is_finite())
        .map(|(i, p)| [i as f64, *p])
        .collect();
    let ssim: Vec<[f64; 2]> = t
        .ssim
        .iter()
        .enumerate()
        .map(|(i, s)| [i as f64, *s * 40.0])
        .collect();
    egui_plot::Plot::new("tokenizer curves")
        .height(100.0)
        .legend(egui_plot::Legend::default())
        .show(ui, |plot| {
            plot.line(egui_plot::Line::new("PSNR dB", psnr));
            plot.line(egui_plot::Line::new("SSIM × 40", ssim));
        });
    let ids: Vec<String> = tokens.iter().map(u32::to_string).collect();
    ui.label(format!("tokens: {}", ids.join(" ")));
}
