//! Changing the labels: a paint step (one stroke, one fill) records only
//! the voxels it changed; undo and redo replay them. The history lives
//! with the labels it undoes, bounded by bytes; the voxel counts follow each
//! change instead of being recounted.

use super::Document;
use crate::annotation::history::StepSize;
use crate::annotation::{LabelEdit, PaintRule, Painter};
use crate::volume::{LabelEntry, LabelTable, LabelVolume};
use std::sync::Arc;

/// One undoable step: voxels of a map, or the label table.
#[derive(Debug, Clone)]
pub enum Step {
    /// Which map changed and how.
    Voxels {
        /// The map's index.
        map: usize,
        /// The changed voxels.
        edit: LabelEdit,
    },
    /// The table before and after (add, rename, recolour, import).
    Table {
        /// Before.
        before: LabelTable,
        /// After.
        after: LabelTable,
    },
    /// A slice marked done or unmarked (D): its own inverse.
    Mark {
        /// The map's index.
        map: usize,
        /// The frame of that map.
        frame: usize,
        /// The slice (z).
        z: usize,
    },
}

impl StepSize for Step {
    fn bytes(&self) -> usize {
        match self {
            Step::Voxels { edit, .. } => edit.bytes(),
            Step::Table { before, after } => {
                let size = |t: &LabelTable| {
                    t.labels
                        .iter()
                        .map(|l| l.name.len() + std::mem::size_of::<LabelEntry>())
                        .sum::<usize>()
                };
                size(before) + size(after)
            }
            Step::Mark { .. } => std::mem::size_of::<Step>(),
        }
    }
}

/// A change applied to the labels (a closed step, an undo or a redo), for
/// whoever follows the labels voxel by voxel (the live Dice).
#[derive(Debug, Clone)]
pub struct Applied {
    /// The map changed (see [`Labels::index_at`]).
    pub map: usize,
    /// The frame of that map.
    pub frame: usize,
    /// (flat index in the frame, id before, id after).
    pub changes: Vec<(usize, u16, u16)>,
}

impl Applied {
    fn of(map: usize, edit: &LabelEdit, forward: bool) -> Applied {
        Applied {
            map,
            frame: edit.frame,
            changes: edit
                .changes()
                .map(|(i, b, a)| if forward { (i, b, a) } else { (i, a, b) })
                .collect(),
        }
    }
}

/// A paint step in progress.
pub(super) struct OpenStep {
    map: usize,
    painter: Painter,
}

/// Move counts by an edit (forward: after gains, before loses).
fn apply_counts(counts: &mut Vec<usize>, edit: &LabelEdit, forward: bool) {
    for (id, (gained, lost)) in edit.count_changes() {
        let i = usize::from(id);
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        let (add, sub) = if forward {
            (gained, lost)
        } else {
            (lost, gained)
        };
        counts[i] = (counts[i] + add).saturating_sub(sub);
    }
}

/// The slices (z) an edit touches, on maps of `nz` slices with `plane`
/// voxels a slice (a flag per slice: an accepted prediction changes
/// millions of voxels).
fn slices_of(edit: &LabelEdit, plane: usize, nz: usize) -> std::collections::BTreeSet<usize> {
    let mut hit = vec![false; nz];
    for (i, _, _) in edit.changes() {
        if let Some(h) = hit.get_mut(i / plane.max(1)) {
            *h = true;
        }
    }
    (0..nz).filter(|&z| hit[z]).collect()
}

impl Document {
    /// The map to paint at `frame`, made when there is none: an empty map
    /// on the image grid, for every frame of a 3D case, or for this frame
    /// of a 4D one (as ACDC labels its ED and ES frames).
    pub(super) fn paintable_map(&mut self, frame: usize) -> Option<usize> {
        if let Some(i) = self.labels.index_at(frame) {
            return Some(i);
        }
        let image = self.layers.first()?;
        let v = &image.volume;
        let map = Arc::new(LabelVolume::zeros(v.dims, 1, v.geometry.clone()));
        let for_frame = (v.frames > 1).then_some(frame);
        self.labels.push(for_frame, map);
        self.rev.labels += 1;
        self.rev.maps += 1;
        self.labels.index_at(frame)
    }

    /// Whether a paint step is open.
    pub fn is_editing(&self) -> bool {
        self.open_step.is_some()
    }

    /// Paint `voxels` (flat indices of one 3D frame) at case frame `frame`
    /// by `rule`, the intensity range read from layer `layer`. Opens a step
    /// when none is open; [`Document::end_edit`] closes it. Returns the
    /// voxels changed.
    pub fn paint(
        &mut self,
        frame: usize,
        voxels: &[usize],
        rule: &PaintRule,
        layer: usize,
    ) -> usize {
        let Some(index) = self
            .open_step
            .as_ref()
            .map(|s| s.map)
            .or_else(|| self.paintable_map(frame))
        else {
            return 0;
        };
        let map_frame = self.labels.map_frame(index, frame);
        let step = self.open_step.get_or_insert_with(|| OpenStep {
            map: index,
            painter: Painter::new(map_frame),
        });
        let image = self.layers.get(layer).map(|l| l.volume.clone());
        let Some((map, _)) = self.labels.edit_map(index) else {
            return 0;
        };
        let per_frame = map.frame_len();
        let value_at = |v: usize| {
            image.as_ref().map_or(0.0, |img| {
                let t = frame.min(img.frames.saturating_sub(1));
                img.value_at(t * per_frame + v, 0)
            })
        };
        let dims = map.dims;
        let n = step.painter.paint(map, voxels, rule, value_at);
        if n > 0 {
            self.rev.labels += 1;
            self.grow_dirty_box(voxels.iter().copied(), dims);
        }
        n
    }

    /// Give voxels of case frame `frame` the listed ids as one step
    /// (accepting a prediction, interpolating, filling): the open step, if
    /// any, is closed first. Returns the voxels changed.
    pub fn assign(
        &mut self,
        frame: usize,
        changes: &[(usize, u16)],
        locked: &std::collections::BTreeSet<u16>,
    ) -> usize {
        self.end_edit();
        let Some(index) = self.paintable_map(frame) else {
            return 0;
        };
        let mut painter = Painter::new(self.labels.map_frame(index, frame));
        let Some((map, _)) = self.labels.edit_map(index) else {
            return 0;
        };
        let n = painter.assign(map, changes, locked);
        self.open_step = Some(OpenStep {
            map: index,
            painter,
        });
        self.end_edit();
        n
    }

    /// Close the open paint step: it becomes one undo step, the counts
    /// follow it, and the labels are unsaved. Returns the changed voxels'
    /// box, `None` when nothing changed.
    pub fn end_edit(&mut self) -> Option<([usize; 3], [usize; 3])> {
        let step = self.open_step.take()?;
        let edit = step.painter.finish();
        if edit.is_empty() {
            return None;
        }
        let (map, counts) = self.labels.edit_map(step.map)?;
        let bounds = edit.bounds(map.dims);
        let plane = map.dims[0] * map.dims[1];
        if let Some(c) = counts.get_mut(edit.frame) {
            apply_counts(c, &edit, true);
        }
        self.marks.edited(
            step.map,
            edit.frame,
            &slices_of(&edit, plane, map.dims[2]),
            true,
        );
        for (id, _) in edit.count_changes() {
            self.name_label(id);
        }
        self.applied.push(Applied::of(step.map, &edit, true));
        self.history.push(Step::Voxels {
            map: step.map,
            edit,
        });
        self.dirty = true;
        self.rev.labels += 1;
        bounds
    }

    /// Extend the box of voxels changed since the last upload.
    fn grow_dirty_box(&mut self, voxels: impl Iterator<Item = usize>, dims: [usize; 3]) {
        for v in voxels {
            let p = [
                v % dims[0],
                (v / dims[0]) % dims[1],
                v / (dims[0] * dims[1]),
            ];
            let (lo, hi) = self.dirty_box.get_or_insert((p, p));
            for ((l, h), x) in lo.iter_mut().zip(hi.iter_mut()).zip(p) {
                *l = (*l).min(x);
                *h = (*h).max(x);
            }
        }
    }

    /// The box ([min, max] voxel per axis) changed since the last call, for
    /// a partial texture upload; `None` when nothing is known to have
    /// changed that way (the caller uploads whole frames then).
    pub fn take_dirty_box(&mut self) -> Option<([usize; 3], [usize; 3])> {
        self.dirty_box.take()
    }

    /// Give an id painted for the first time a table entry.
    fn name_label(&mut self, id: u16) {
        if id != 0 && self.table.name_of(id).is_none() {
            let mut table = self.table.clone();
            table.labels.push(LabelEntry {
                id,
                name: format!("label {id}"),
                color: crate::volume::palette(id),
            });
            table.labels.sort_by_key(|l| l.id);
            self.set_table(table);
        }
    }

    /// Replace the label table as one undoable step (add, rename,
    /// recolour, import a table).
    pub fn edit_table(&mut self, table: LabelTable) {
        if table == self.table {
            return;
        }
        self.end_edit();
        let before = std::mem::replace(&mut self.table, table.clone());
        // A colour dragged in the picker changes the table every frame:
        // one step, not hundreds: a colour-only change following a
        // colour-only step extends it.
        let same_but_colour = |a: &LabelTable, b: &LabelTable| {
            a.labels.len() == b.labels.len()
                && a.labels
                    .iter()
                    .zip(&b.labels)
                    .all(|(x, y)| x.id == y.id && x.name == y.name)
        };
        match self.history.last_mut() {
            Some(Step::Table {
                before: first,
                after,
            }) if *after == before
                && same_but_colour(first, after)
                && same_but_colour(after, &table) =>
            {
                *after = table;
            }
            _ => self.history.push(Step::Table {
                before,
                after: table,
            }),
        }
        self.rev.table += 1;
        self.dirty = true;
    }

    /// Play a step backwards or forwards.
    fn replay(&mut self, step: &Step, forward: bool) {
        match step {
            Step::Voxels { map: index, edit } => {
                let mut changed_box = None;
                if let Some((map, counts)) = self.labels.edit_map(*index) {
                    let dims = map.dims;
                    let zs = slices_of(edit, dims[0] * dims[1], dims[2]);
                    self.marks.edited(*index, edit.frame, &zs, forward);
                    if let Some((lo, hi)) = edit.bounds(dims) {
                        let corners = [lo, hi].map(|p| p[0] + dims[0] * (p[1] + dims[1] * p[2]));
                        changed_box = Some((corners, dims));
                    }
                    if forward {
                        edit.redo(map);
                    } else {
                        edit.undo(map);
                    }
                    if let Some(c) = counts.get_mut(edit.frame) {
                        apply_counts(c, edit, forward);
                    }
                }
                if let Some((corners, dims)) = changed_box {
                    self.grow_dirty_box(corners.into_iter(), dims);
                }
                self.applied.push(Applied::of(*index, edit, forward));
                self.rev.labels += 1;
            }
            Step::Table { before, after } => {
                self.table = if forward { after } else { before }.clone();
                self.rev.table += 1;
            }
            Step::Mark { map, frame, z } => {
                self.marks.toggle_done(*map, *frame, *z);
                self.rev.labels += 1;
            }
        }
        self.dirty = true;
    }

    /// Undo the last step; `false` when there is none.
    pub fn undo(&mut self) -> bool {
        self.end_edit();
        let Some(step) = self.history.undo().cloned() else {
            return false;
        };
        self.replay(&step, false);
        true
    }

    /// Redo the last undone step; `false` when there is none.
    pub fn redo(&mut self) -> bool {
        self.end_edit();
        let Some(step) = self.history.redo().cloned() else {
            return false;
        };
        self.replay(&step, true);
        true
    }

    /// The changes applied since the last call (the metrics drain them
    /// every frame).
    pub fn take_applied(&mut self) -> Vec<Applied> {
        std::mem::take(&mut self.applied)
    }

    /// The index of the map shown at `frame` and that map's frame.
    pub fn map_at(&self, frame: usize) -> Option<(usize, usize)> {
        let i = self.labels.index_at(frame)?;
        Some((i, self.labels.map_frame(i, frame)))
    }

    /// Bytes the undo history holds and the voxels its steps changed.
    pub fn history_bytes(&self) -> (usize, usize) {
        let voxels = self
            .history
            .steps()
            .map(|s| match s {
                Step::Voxels { edit, .. } => edit.len(),
                Step::Table { .. } | Step::Mark { .. } => 0,
            })
            .sum();
        (self.history.bytes(), voxels)
    }

    /// Bound the undo history to `bytes` (the setting).
    pub fn set_history_budget(&mut self, bytes: usize) {
        if self.history.budget() != bytes {
            self.history.set_budget(bytes);
        }
    }

    /// Steps that can be undone and redone.
    pub fn history_len(&self) -> (usize, usize) {
        (self.history.undo_len(), self.history.redo_len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::document::{Labels, Layer};
    use crate::volume::{Geometry, LabelTable, Volume};

    fn doc(frames: usize) -> Document {
        let mut shape = vec![4, 4, 2];
        if frames > 1 {
            shape.push(frames);
        }
        let n: usize = shape.iter().product();
        let vals: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let v = Volume::from_values(shape, &vals, Geometry::identity()).unwrap();
        Document::new(
            "t".into(),
            vec![Layer::new("img", Arc::new(v))],
            Labels::default(),
            LabelTable::default(),
        )
    }

    fn rule(value: u16) -> PaintRule {
        PaintRule {
            value,
            ..PaintRule::default()
        }
    }

    #[test]
    fn a_stroke_is_one_step_that_undoes_and_redoes_with_its_counts() {
        let mut d = doc(1);
        assert!(d.labels().is_empty());
        let r0 = d.revisions().labels;
        d.paint(0, &[0, 1, 2], &rule(3), 0);
        d.paint(0, &[2, 3], &rule(3), 0);
        assert!(d.revisions().labels > r0, "uploads follow the stroke");
        assert!(!d.is_dirty(), "unsaved once the step closes");
        d.end_edit();
        assert!(d.is_dirty());
        assert_eq!(d.history_len(), (1, 0));
        assert_eq!(d.label_counts(0)[3], 4);
        assert_eq!(d.table().name_of(3), Some("label 3"));
        assert!(d.undo());
        assert_eq!(d.label_counts(0).get(3).copied().unwrap_or(0), 0);
        assert_eq!(d.labels().at_frame(0).unwrap().get(2), 0);
        assert!(d.redo());
        assert_eq!(d.label_counts(0)[3], 4);
        assert!(!d.redo(), "nothing more to redo");
        d.paint(0, &[0], &rule(0), 0);
        d.end_edit();
        assert_eq!(d.label_counts(0)[3], 3);
        assert_eq!(d.label_counts(0)[0], 4 * 4 * 2 - 3);
    }

    #[test]
    fn painting_a_cine_frame_without_labels_gives_it_a_map() {
        let mut d = doc(5);
        d.paint(3, &[5], &rule(1), 0);
        d.end_edit();
        assert!(
            d.labels().at_frame(0).is_none(),
            "other frames stay unlabelled"
        );
        assert_eq!(d.labels().at_frame(3).unwrap().get(5), 1);
        // An intensity range: the image value at voxel v of frame 3 is 3·32 + v.
        let ranged = PaintRule {
            value: 2,
            intensity: Some((100.0, 101.0)),
            ..PaintRule::default()
        };
        d.paint(3, &[0, 4, 5, 6], &ranged, 0);
        d.end_edit();
        let m = d.labels().at_frame(3).unwrap();
        assert_eq!((m.get(4), m.get(5), m.get(6)), (2, 2, 0));
    }

    #[test]
    fn a_colour_drag_is_one_table_step_and_a_3d_map_labels_one_cine_frame() {
        let mut d = doc(5);
        let mut t = LabelTable::generic([1, 2]);
        d.edit_table(t.clone());
        for shade in [10u8, 20, 30] {
            t.labels[0].color = [shade, 0, 0];
            d.edit_table(t.clone());
        }
        assert_eq!(
            d.history_len(),
            (2, 0),
            "the add, then one recolour for the whole drag"
        );
        assert!(d.undo());
        assert_ne!(d.table().labels[0].color, [30, 0, 0]);
        assert_eq!(d.table().labels.len(), 2, "undo took the colours back only");
        // A 3D map opened onto a cine labels the frame shown.
        let mut map = LabelVolume::zeros([4, 4, 2], 1, crate::volume::Geometry::identity());
        map.set(3, 2);
        d.open_labels(
            std::path::Path::new("es.nii.gz"),
            Labels::single(Arc::new(map)),
            3,
        )
        .unwrap();
        assert!(d.labels().at_frame(0).is_none());
        assert_eq!(d.labels().at_frame(3).unwrap().get(3), 2);
        let cine = LabelVolume::zeros([4, 4, 2], 2, crate::volume::Geometry::identity());
        let e = d
            .open_labels(
                std::path::Path::new("x.nii"),
                Labels::single(Arc::new(cine)),
                0,
            )
            .unwrap_err();
        assert!(e.contains("2 frames") && e.contains("image 5"), "{e}");
    }
}
