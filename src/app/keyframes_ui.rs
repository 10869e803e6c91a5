//! The keyframe inspector for cine cases: the per-frame scores of the
//! uniform and content-aware strategies over time with the selected frames
//! and ACDC's ED/ES marked, and a filmstrip of the selected frames (click to
//! jump). Frame summaries are computed on a background thread once per case.

use super::document::Document;
use super::jobs::{Job, Slot};
use super::views::Cursor;
use crate::keyframes::{FrameFeatures, Selection, Strategy, select};
use eframe::egui;

/// What the filmstrip thumbnails show: (case generation, frames, axial
/// slice, window in thousandths).
type ThumbKey = (u64, Vec<usize>, usize, (i64, i64));

/// Inspector state.
pub struct KeyframeState {
    /// Number of keyframes.
    pub k: usize,
    /// Strategy shown.
    pub strategy: Strategy,
    /// Current selection.
    pub selection: Option<Selection>,
    features: Option<(u64, FrameFeatures)>,
    job: Slot<FrameFeatures>,
    thumbs: Vec<(usize, egui::TextureHandle)>,
    thumb_key: Option<ThumbKey>,
}

impl Default for KeyframeState {
    fn default() -> KeyframeState {
        KeyframeState {
            k: 2,
            strategy: Strategy::Content,
            selection: None,
            features: None,
            job: Slot::default(),
            thumbs: Vec::new(),
            thumb_key: None,
        }
    }
}

impl KeyframeState {
    /// Whether frame summaries are being computed.
    pub fn is_pending(&self) -> bool {
        self.job.is_running()
    }

    /// Start summarising a new case's frames; collect finished summaries
    /// (a stale one, of a case no longer open, is dropped); recompute the
    /// selection. Returns an error of the job.
    pub fn update(&mut self, doc: &Document, wake: &egui::Context) -> Option<String> {
        let mut error = None;
        if let Some((tag, r)) = self.job.poll() {
            match r {
                Ok(f) if tag == doc.id() => self.features = Some((tag, f)),
                Ok(_) => {}
                Err(e) => error = Some(format!("keyframes: {e}")),
            }
        }
        let have = self.features.as_ref().is_some_and(|(g, _)| *g == doc.id())
            || self.job.job().is_some_and(|j| j.tag() == doc.id());
        if !have
            && error.is_none()
            && let Some(layer) = doc.layer(0)
        {
            let v = layer.volume.clone();
            let w = wake.clone();
            self.job.start(Job::spawn(
                "keyframes",
                doc.id(),
                move || w.request_repaint(),
                move |_| Ok(FrameFeatures::from_time_frames(&v)),
            ));
            self.selection = None;
        }
        if let Some((g, f)) = &self.features
            && *g == doc.id()
        {
            self.selection = select(f, self.k, self.strategy).ok();
        }
        error
    }
}

/// A UME encoder's learned scores for the open case (from the model panel).
pub struct Learned<'a> {
    /// Attention score per frame.
    pub attention: &'a [f32],
    /// Fused score per frame.
    pub fused: &'a [f32],
    /// Fusion weights (uniform, content, attention).
    pub weights: &'a [f32],
    /// Frames the encoder selected.
    pub selected: &'a [usize],
}

/// Draw the inspector; `learned` adds an encoder's attention and fused
/// curves, its selection and its fusion weights.
pub fn inspector_ui(
    state: &mut KeyframeState,
    doc: &Document,
    cursor: &mut Cursor,
    window: (f64, f64),
    learned: Option<Learned>,
    ui: &mut egui::Ui,
) {
    ui.horizontal(|ui| {
        ui.label("Keyframes");
        let k = ui.label("K");
        ui.add(egui::DragValue::new(&mut state.k).range(1..=16))
            .labelled_by(k.id);
        ui.selectable_value(&mut state.strategy, Strategy::Content, "content");
        ui.selectable_value(&mut state.strategy, Strategy::Uniform, "uniform");
        if learned.is_none() {
            ui.add_enabled(false, egui::Button::new("attention / fused"))
                .on_disabled_hover_text("run a UME encoder in the model panel");
        }
    });
    if let Some(l) = &learned {
        ui.label(format!(
            "encoder: fusion weights uniform {:.2} · content {:.2} · attention {:.2}; selected frames {:?}",
            l.weights.first().copied().unwrap_or(f32::NAN),
            l.weights.get(1).copied().unwrap_or(f32::NAN),
            l.weights.get(2).copied().unwrap_or(f32::NAN),
            l.selected.iter().map(|t| t + 1).collect::<Vec<_>>()
        ));
    }
    let Some(sel) = state.selection.clone() else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("summarising frames");
        });
        return;
    };
    // Frames are numbered from 1 on screen, as on the cine bar.
    let line = |name: &str, v: &[f64]| {
        let points: Vec<[f64; 2]> = v
            .iter()
            .enumerate()
            .map(|(t, &y)| [t as f64 + 1.0, y])
            .collect();
        egui_plot::Line::new(name, egui_plot::PlotPoints::from(points))
    };
    let marks: Vec<f64> = sel.selected.iter().map(|&t| t as f64 + 1.0).collect();
    let acdc = doc.acdc().cloned();
    egui_plot::Plot::new("keyframe scores")
        .height(110.0)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .legend(egui_plot::Legend::default())
        .show(ui, |plot| {
            plot.line(line("uniform", &sel.uniform));
            plot.line(line("content", &sel.content));
            if let Some(l) = &learned {
                let f64s = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
                plot.line(line("attention", &f64s(l.attention)));
                plot.line(line("fused", &f64s(l.fused)));
            }
            for x in &marks {
                plot.vline(egui_plot::VLine::new("selected", *x).color(egui::Color32::YELLOW));
            }
            if let Some(a) = &acdc {
                plot.vline(
                    egui_plot::VLine::new("ED", a.ed_index() as f64 + 1.0)
                        .color(egui::Color32::LIGHT_GREEN),
                );
                plot.vline(
                    egui_plot::VLine::new("ES", a.es_index() as f64 + 1.0)
                        .color(egui::Color32::LIGHT_RED),
                );
            }
        });
    filmstrip_ui(state, doc, cursor, window, &sel.selected, ui);
}

/// Thumbnails of the selected frames at the crosshair's axial slice.
fn filmstrip_ui(
    state: &mut KeyframeState,
    doc: &Document,
    cursor: &mut Cursor,
    window: (f64, f64),
    selected: &[usize],
    ui: &mut egui::Ui,
) {
    let Some(layer) = doc.layer(cursor.active) else {
        return;
    };
    let v = layer.volume.clone();
    let Some([_, _, kz]) = crate::viewmath::voxel_at(&v.geometry, v.dims, cursor.crosshair_mm)
    else {
        return;
    };
    let key = (
        state.features.as_ref().map_or(0, |(g, _)| *g),
        selected.to_vec(),
        kz,
        ((window.0 * 1000.0) as i64, (window.1 * 1000.0) as i64),
    );
    if state.thumb_key.as_ref() != Some(&key) {
        state.thumbs = selected
            .iter()
            .map(|&t| {
                let [nx, ny, _] = v.dims;
                let step = (nx.max(ny) / 96).max(1);
                let (w, h) = (nx.div_ceil(step), ny.div_ceil(step));
                let mut pixels = Vec::with_capacity(w * h);
                // Rows from anterior (top) to posterior; radiological left-right.
                for jj in (0..h).rev() {
                    for ii in (0..w).rev() {
                        let x = v.get(ii * step, jj * step, kz, t).unwrap_or(0.0);
                        let g =
                            (crate::viewmath::apply_window(x, window.0, window.1) * 255.0) as u8;
                        pixels.push(egui::Color32::from_gray(g));
                    }
                }
                let image = egui::ColorImage::new([w, h], pixels);
                (
                    t,
                    ui.ctx().load_texture(
                        format!("keyframe {t}"),
                        image,
                        egui::TextureOptions::LINEAR,
                    ),
                )
            })
            .collect();
        state.thumb_key = Some(key);
    }
    ui.horizontal(|ui| {
        for (t, tex) in &state.thumbs {
            let label = match doc.acdc() {
                Some(a) if a.ed_index() == *t => format!("frame {} (ED)", t + 1),
                Some(a) if a.es_index() == *t => format!("frame {} (ES)", t + 1),
                _ => format!("frame {}", t + 1),
            };
            ui.vertical(|ui| {
                let img = egui::Image::new(tex)
                    .fit_to_exact_size(egui::vec2(72.0, 72.0))
                    .sense(egui::Sense::click());
                if ui.add(img).on_hover_text("show this frame").clicked() {
                    cursor.frame = *t;
                }
                if ui.small_button(&label).clicked() {
                    cursor.frame = *t;
                }
            });
        }
    });
}
