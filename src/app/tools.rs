//! The label tools that work on the whole map — flood fill, fill between
//! slices, accepting a prediction — as jobs: the worker computes which
//! voxels change from a snapshot of the labels (it grows with the volume),
//! the UI applies them as one undoable step. A result computed from labels
//! that changed meanwhile is dropped, never applied.

use super::UmeApp;
use super::jobs::Job;
use crate::annotation::brush::voxel_of;
use crate::annotation::fill::{FillBounds, flood};
use crate::viewmath::SliceAxis;
use eframe::egui;

/// What a tool job computed: the label changes and what to call the step.
pub struct ToolResult {
    /// (flat index within the frame, new id).
    pub changes: Vec<(usize, u16)>,
    /// The case frame they are for.
    pub frame: usize,
    /// "fill", "interpolation", "accepted prediction".
    pub what: &'static str,
}

/// The labels' state (case and labels revision) a job starts from: a
/// result for another state is stale.
pub(super) fn labels_state(doc: &super::Document) -> u64 {
    doc.id().wrapping_mul(1_000_003) ^ doc.revisions().labels
}

fn state_tag(app: &UmeApp) -> u64 {
    app.doc.as_ref().map_or(0, labels_state)
}

impl UmeApp {
    fn start_tool(
        &mut self,
        ctx: &egui::Context,
        name: &'static str,
        work: impl FnOnce() -> Result<ToolResult, String> + Send + 'static,
    ) {
        let wake = ctx.clone();
        let tag = state_tag(self);
        self.tool_job.start(Job::spawn(
            name,
            tag,
            move || wake.request_repaint(),
            move |_| work(),
        ));
    }

    /// Apply a finished tool job.
    pub(super) fn tool_logic(&mut self) {
        let Some((tag, r)) = self.tool_job.poll() else {
            return;
        };
        match r {
            Ok(_) if tag != state_tag(self) => self
                .notes
                .warn("the labels changed while the tool ran: nothing applied, try again"),
            Ok(res) => {
                let locked = self.settings.locked.clone();
                if let Some(doc) = &mut self.doc {
                    let n = doc.assign(res.frame, &res.changes, &locked);
                    self.notes.info(format!("{}: {n} voxels changed", res.what));
                }
            }
            Err(e) => self.notes.error(e),
        }
    }

    /// Flood-fill from a world point in a slice view (2D in the view's
    /// voxel slice, or 3D with the 3D option), with the active label.
    pub fn fill_at(&mut self, ctx: &egui::Context, axis: SliceAxis, world: [f64; 3]) {
        let Some(doc) = &self.doc else { return };
        let Some(layer) = doc.layer(self.cursor.active) else {
            return;
        };
        let volume = layer.volume.clone();
        let geometry = volume.geometry.clone();
        let dims = volume.dims;
        let Some(p) = voxel_of(&geometry, world) else {
            return;
        };
        if (0..3).any(|k| p[k] < -0.5 || p[k] > dims[k] as f64 - 0.5) {
            return;
        }
        let seed = p.map(|x| x.round().max(0.0) as usize);
        let across = crate::viewmath::across_axis(&geometry, axis);
        let bounds = FillBounds {
            plane: (!self.settings.brush_ball).then_some((across, seed[across])),
            intensity: self.settings.paint_range,
            max_distance_mm: self.settings.fill_max_mm,
        };
        let frame = self.cursor.frame;
        let labels = doc.labels().at_frame(frame).cloned();
        let rule = self.settings.paint_rule(false);
        let what = "fill";
        self.start_tool(ctx, "fill", move || {
            let n = dims[0] * dims[1] * dims[2];
            let t = frame.min(volume.frames.saturating_sub(1));
            let image = |v: usize| volume.value_at(t * n + v, 0);
            let voxels = match &labels {
                Some(l) => flood(l, frame, &geometry, seed, &bounds, image, || false),
                None => {
                    let empty = crate::volume::LabelVolume::zeros(dims, 1, geometry.clone());
                    flood(&empty, 0, &geometry, seed, &bounds, image, || false)
                }
            };
            let current = |v: usize| {
                labels
                    .as_ref()
                    .map_or(0, |l| l.get(l.frame_offset(frame.min(l.frames - 1)) + v))
            };
            let changes = voxels
                .into_iter()
                .filter(|&v| rule.allows(current(v), image(v)))
                .map(|v| (v, rule.value))
                .collect();
            Ok(ToolResult {
                changes,
                frame,
                what,
            })
        });
    }

    /// Fill between annotated slices along the focused view's axis, for
    /// the active label (`all`: every label), on background only.
    pub fn interpolate(&mut self, ctx: &egui::Context, all: bool) {
        let Some(doc) = &self.doc else { return };
        let frame = self.cursor.frame;
        let Some(labels) = doc.labels().at_frame(frame).cloned() else {
            self.notes
                .error("interpolation needs labels on at least two slices");
            return;
        };
        let Some(layer) = doc.layer(0) else { return };
        let geometry = layer.volume.geometry.clone();
        let axis = crate::viewmath::across_axis(&geometry, self.camera.focus);
        let ids: Vec<u16> = if all {
            doc.labels().present()
        } else {
            vec![self.settings.active_label]
        };
        let spacing = geometry.spacing_mm();
        self.start_tool(ctx, "interpolate", move || {
            let mut changes = Vec::new();
            let off = labels.frame_offset(frame.min(labels.frames - 1));
            for id in ids {
                for v in crate::annotation::interpolate::between_slices(
                    &labels, frame, id, axis, spacing,
                ) {
                    if labels.get(off + v) == 0 {
                        changes.push((v, id));
                    }
                }
            }
            Ok(ToolResult {
                changes,
                frame,
                what: "fill between slices",
            })
        });
    }

    /// Accept the prediction into the labels: whole (`None`) or one
    /// structure.
    pub fn accept_prediction(&mut self, ctx: &egui::Context, which: Option<u16>) {
        let Some(doc) = &self.doc else { return };
        let Some(pred) = doc.prediction().map(|p| p.labels.clone()) else {
            self.notes.error("there is no prediction to accept");
            return;
        };
        let frame = self.cursor.frame;
        let labels = doc.labels().at_frame(frame).cloned();
        let Some(layer) = doc.layer(0) else { return };
        let (dims, geometry) = (layer.volume.dims, layer.volume.geometry.clone());
        self.start_tool(ctx, "accept", move || {
            let empty;
            let l = match &labels {
                Some(l) => l.as_ref(),
                None => {
                    empty = crate::volume::LabelVolume::zeros(dims, 1, geometry);
                    &empty
                }
            };
            Ok(ToolResult {
                changes: crate::annotation::accept::accept(l, frame, &pred, which),
                frame,
                what: "accepted prediction",
            })
        });
    }

    /// Whether a tool job runs.
    pub fn tool_running(&self) -> bool {
        self.tool_job.is_running()
    }

    /// Select the `n`-th label of the table (1-based, the digit keys).
    pub(super) fn select_label(&mut self, n: usize) {
        if let Some(e) = self
            .doc
            .as_ref()
            .and_then(|d| d.table().labels.get(n.saturating_sub(1)))
        {
            self.settings.active_label = e.id;
        }
    }
}
