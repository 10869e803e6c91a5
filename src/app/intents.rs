//! Applying what the views asked for: the crosshair, the window, slice
//! steps, brush strokes (through the annotation core) and picking a label.

use super::views::Intent;
use super::{UmeApp, settings};
use crate::annotation::brush::voxel_of;
use crate::annotation::{Brush, BrushShape};
use crate::viewmath::SliceAxis;
use crate::volume::Geometry;

impl UmeApp {
    /// Apply what a view asked for.
    pub fn apply(&mut self, ctx: &eframe::egui::Context, intent: Intent) {
        let Some(doc) = &self.doc else { return };
        match intent {
            Intent::MoveCrosshair(axis, world) => {
                if let Some(layer) = doc.layer(self.cursor.active) {
                    let g = &layer.volume.geometry;
                    let on_plane =
                        crate::viewmath::in_view_plane(axis, g, self.cursor.crosshair_mm, world);
                    self.cursor.crosshair_mm =
                        crate::viewmath::snap_to_voxel(g, layer.volume.dims, on_plane);
                }
            }
            Intent::StepSlice(axis, steps) => self.cursor.step_slice(doc, axis, steps),
            Intent::Paint { axis, from, to } => self.paint(axis, from, to),
            Intent::EndStroke => {
                if let Some(doc) = &mut self.doc {
                    doc.end_edit();
                }
            }
            Intent::Fill(axis, world) => self.fill_at(ctx, axis, world),
            Intent::Polygon(axis, points) => self.fill_polygon(axis, &points),
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

    /// The image grid and the voxel slice a slice view shows at the
    /// crosshair: (geometry, dims, voxel axis across the view, its index).
    fn view_slice(&self, axis: SliceAxis) -> Option<(Geometry, [usize; 3], usize, usize)> {
        let layer = self.doc.as_ref()?.layer(0)?;
        let geometry = layer.volume.geometry.clone();
        let dims = layer.volume.dims;
        let across = crate::viewmath::across_axis(&geometry, axis);
        let c = voxel_of(&geometry, self.cursor.crosshair_mm)?;
        // A crosshair outside the grid along this axis: the view is empty,
        // so there is no slice to paint (not the first or last one).
        if !(-0.5..dims[across] as f64 - 0.5).contains(&c[across]) {
            return None;
        }
        let index = c[across].round().max(0.0) as usize;
        Some((geometry, dims, across, index))
    }

    /// Fill a closed outline drawn in a slice view with the active label,
    /// by the paint rule, as one step (bounded by one slice).
    fn fill_polygon(&mut self, axis: SliceAxis, points: &[[f64; 3]]) {
        let Some((geometry, dims, across, index)) = self.view_slice(axis) else {
            return;
        };
        let voxels = crate::annotation::polygon::inside(&geometry, dims, across, index, points);
        let rule = self.settings.paint_rule(false);
        let Some(doc) = &mut self.doc else { return };
        doc.paint(self.cursor.frame, &voxels, &rule, self.cursor.active);
        doc.end_edit();
    }

    /// Paint with the brush (or erase) between two world points in a slice
    /// view: a disc in the voxel slice under the crosshair, or a ball.
    fn paint(&mut self, axis: SliceAxis, from: [f64; 3], to: [f64; 3]) {
        let Some((geometry, dims, across, index)) = self.view_slice(axis) else {
            return;
        };
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
        let rule = self
            .settings
            .paint_rule(self.settings.tool == settings::Tool::Eraser);
        let Some(doc) = &mut self.doc else { return };
        doc.paint(self.cursor.frame, &voxels, &rule, self.cursor.active);
    }
}
