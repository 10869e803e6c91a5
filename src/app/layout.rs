//! Laying out the views: the 2×2 grid (or one maximised view) or the
//! modalities side by side, each drawn by [`views`](super::views) with the
//! intents it returns applied afterwards.

use super::views::{self, Cursor, ViewCtx, ViewId};
use super::{Layout, UmeApp};
use eframe::egui;

impl UmeApp {
    pub(super) fn views_ui(&mut self, ui: &mut egui::Ui) {
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
            self.apply(ui.ctx(), i);
        }
    }
}
