//! What a paint operation may change, and the record of what it changed.
//!
//! A [`LabelEdit`] keeps, for each voxel it changed, the flat index with the
//! id before and after (sparse: a stroke touches a few thousand voxels of
//! millions). Undo writes the "before" ids back, redo the "after" ones; a
//! voxel painted twice in one stroke keeps its first "before". Its size in
//! bytes is what the history budgets.

use crate::volume::LabelVolume;
use std::collections::{BTreeSet, HashMap};

/// Which existing labels a paint may overwrite (ITK-SNAP's draw-over mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrawOver {
    /// Any voxel.
    #[default]
    All,
    /// Only background voxels.
    Background,
    /// Only voxels of this label.
    Label(u16),
}

/// The rule for one paint operation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PaintRule {
    /// The id written (0 erases).
    pub value: u16,
    /// Which voxels may change.
    pub draw_over: DrawOver,
    /// Paint only where the image value lies in [low, high].
    pub intensity: Option<(f64, f64)>,
    /// Labels that are never changed.
    pub locked: BTreeSet<u16>,
}

impl PaintRule {
    /// Whether a voxel holding `current`, of image value `value`, may become
    /// `self.value`.
    pub fn allows(&self, current: u16, value: f64) -> bool {
        if current == self.value || self.locked.contains(&current) {
            return false;
        }
        let over = match self.draw_over {
            DrawOver::All => true,
            DrawOver::Background => current == 0,
            DrawOver::Label(l) => current == l,
        };
        over && self
            .intensity
            .is_none_or(|(lo, hi)| value >= lo && value <= hi)
    }
}

/// The ids a step wrote: one for all (a brush stroke, a fill) or one per
/// voxel (an accepted prediction).
#[derive(Debug, Clone, PartialEq)]
enum After {
    Same(u16),
    Each(Vec<u16>),
}

/// The voxels one step changed, by index: stored as columns (index,
/// before, and the after ids once when they are all the same), 6 bytes a
/// voxel for a stroke.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEdit {
    /// Which frame of the map (0 for 3D).
    pub frame: usize,
    index: Vec<u32>,
    before: Vec<u16>,
    after: After,
}

impl Default for LabelEdit {
    fn default() -> LabelEdit {
        LabelEdit {
            frame: 0,
            index: Vec::new(),
            before: Vec::new(),
            after: After::Same(0),
        }
    }
}

impl LabelEdit {
    /// Number of voxels changed.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Memory it holds.
    pub fn bytes(&self) -> usize {
        let after = match &self.after {
            After::Same(_) => 0,
            After::Each(v) => v.capacity() * 2,
        };
        self.index.capacity() * 4 + self.before.capacity() * 2 + after + std::mem::size_of::<Self>()
    }

    fn after_at(&self, k: usize) -> u16 {
        match &self.after {
            After::Same(a) => *a,
            After::Each(v) => v[k],
        }
    }

    /// The changes: (flat index in the frame, id before, id after).
    pub fn changes(&self) -> impl Iterator<Item = (usize, u16, u16)> + '_ {
        (0..self.index.len()).map(|k| (self.index[k] as usize, self.before[k], self.after_at(k)))
    }

    /// Write the "before" ids back.
    pub fn undo(&self, map: &mut LabelVolume) {
        let off = map.frame_offset(self.frame);
        for (i, before) in self.index.iter().zip(&self.before) {
            map.set(off + *i as usize, *before);
        }
    }

    /// Write the "after" ids again.
    pub fn redo(&self, map: &mut LabelVolume) {
        let off = map.frame_offset(self.frame);
        for (k, i) in self.index.iter().enumerate() {
            map.set(off + *i as usize, self.after_at(k));
        }
    }

    /// The bounding box of the changed voxels ([min, max] per axis) on a
    /// grid of `dims`, for a partial upload.
    pub fn bounds(&self, dims: [usize; 3]) -> Option<([usize; 3], [usize; 3])> {
        let mut lo = [usize::MAX; 3];
        let mut hi = [0usize; 3];
        for &i in &self.index {
            let i = i as usize;
            let p = [
                i % dims[0],
                (i / dims[0]) % dims[1],
                i / (dims[0] * dims[1]),
            ];
            for k in 0..3 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        (!self.index.is_empty()).then_some((lo, hi))
    }

    /// The changes per label id: (voxels gained, voxels lost).
    pub fn count_changes(&self) -> HashMap<u16, (usize, usize)> {
        let mut m: HashMap<u16, (usize, usize)> = HashMap::new();
        for (_, before, after) in self.changes() {
            m.entry(after).or_default().0 += 1;
            m.entry(before).or_default().1 += 1;
        }
        m
    }
}

/// Paints into a label map while recording a [`LabelEdit`] (one stroke or
/// one fill = one painter = one undo step).
pub struct Painter {
    frame: usize,
    /// (index, before, after) while the step is open, in the order painted;
    /// a voxel painted twice appears twice and `finish` merges it (first
    /// "before", last "after").
    changes: Vec<(u32, u16, u16)>,
}

impl Painter {
    /// Start a step on `frame`.
    pub fn new(frame: usize) -> Painter {
        Painter {
            frame,
            changes: Vec::new(),
        }
    }

    /// Paint `voxels` (flat indices within one frame) by `rule`; `image`
    /// gives a voxel's intensity for the rule's range. Returns how many
    /// voxels changed.
    pub fn paint(
        &mut self,
        map: &mut LabelVolume,
        voxels: &[usize],
        rule: &PaintRule,
        image: impl Fn(usize) -> f64,
    ) -> usize {
        let off = map.frame_offset(self.frame);
        let n = map.frame_len();
        let mut changed = 0;
        for &v in voxels {
            if v >= n {
                continue;
            }
            let current = map.get(off + v);
            if !rule.allows(
                current,
                if rule.intensity.is_some() {
                    image(v)
                } else {
                    0.0
                },
            ) {
                continue;
            }
            map.set(off + v, rule.value);
            self.changes.push((v as u32, current, rule.value));
            changed += 1;
        }
        changed
    }

    /// Give voxels the ids listed (an accepted prediction, an
    /// interpolation): (flat index within the frame, id). Locked labels are
    /// kept. Returns how many voxels changed.
    pub fn assign(
        &mut self,
        map: &mut LabelVolume,
        changes: &[(usize, u16)],
        locked: &std::collections::BTreeSet<u16>,
    ) -> usize {
        let off = map.frame_offset(self.frame);
        let n = map.frame_len();
        let mut changed = 0;
        for &(v, id) in changes {
            if v >= n {
                continue;
            }
            let current = map.get(off + v);
            if current == id || locked.contains(&current) {
                continue;
            }
            map.set(off + v, id);
            self.changes.push((v as u32, current, id));
            changed += 1;
        }
        changed
    }

    /// The finished step (voxels whose id ended where it began are left
    /// out).
    pub fn finish(mut self) -> LabelEdit {
        // Stable: a voxel's records stay in painting order; merge them.
        self.changes.sort_by_key(|c| c.0);
        let mut merged: Vec<(u32, u16, u16)> = Vec::with_capacity(self.changes.len());
        for c in self.changes.drain(..) {
            match merged.last_mut() {
                Some(last) if last.0 == c.0 => last.2 = c.2,
                _ => merged.push(c),
            }
        }
        self.changes = merged;
        self.changes.retain(|&(_, b, a)| a != b);
        let same = self.changes.first().map(|c| c.2);
        let after = match same {
            Some(a) if self.changes.iter().all(|c| c.2 == a) => After::Same(a),
            Some(_) => After::Each(self.changes.iter().map(|c| c.2).collect()),
            None => After::Same(0),
        };
        LabelEdit {
            frame: self.frame,
            index: self.changes.iter().map(|c| c.0).collect(),
            before: self.changes.iter().map(|c| c.1).collect(),
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn draw_over_intensity_and_locks_limit_what_changes() {
        let mut map = LabelVolume::zeros([4, 1, 1], 1, Geometry::identity());
        map.set(1, 2);
        map.set(2, 3);
        let image = |i: usize| i as f64 * 10.0;
        let mut p = Painter::new(0);
        let only_bg = PaintRule {
            value: 5,
            draw_over: DrawOver::Background,
            ..PaintRule::default()
        };
        assert_eq!(p.paint(&mut map, &[0, 1, 2, 3], &only_bg, image), 2);
        let over3 = PaintRule {
            value: 5,
            draw_over: DrawOver::Label(3),
            intensity: Some((15.0, 25.0)),
            ..PaintRule::default()
        };
        assert_eq!(p.paint(&mut map, &[0, 1, 2, 3], &over3, image), 1);
        let locked = PaintRule {
            value: 0,
            locked: [2].into(),
            ..PaintRule::default()
        };
        p.paint(&mut map, &[1], &locked, image);
        assert_eq!(map.get(1), 2, "a locked label is kept");
        let edit = p.finish();
        assert_eq!(edit.len(), 3);
        edit.undo(&mut map);
        assert_eq!((0..4).map(|i| map.get(i)).collect::<Vec<_>>(), [0, 2, 3, 0]);
        edit.redo(&mut map);
        assert_eq!((0..4).map(|i| map.get(i)).collect::<Vec<_>>(), [5, 2, 5, 5]);
    }

    #[test]
    fn a_voxel_painted_twice_undoes_to_its_first_value() {
        let mut map = LabelVolume::zeros([3, 1, 1], 2, Geometry::identity());
        let mut p = Painter::new(1);
        let a = PaintRule {
            value: 1,
            ..PaintRule::default()
        };
        let b = PaintRule {
            value: 2,
            ..PaintRule::default()
        };
        p.paint(&mut map, &[0, 1], &a, |_| 0.0);
        p.paint(&mut map, &[1], &b, |_| 0.0);
        let erase = PaintRule::default();
        p.paint(&mut map, &[0], &erase, |_| 0.0);
        let edit = p.finish();
        assert_eq!(edit.len(), 1, "voxel 0 is back to 0: not a change");
        assert_eq!(map.get(3 + 1), 2, "frame 1 painted");
        assert_eq!(map.get(1), 0, "frame 0 untouched");
        edit.undo(&mut map);
        assert_eq!(map.get(3 + 1), 0);
        assert_eq!(edit.bounds([3, 1, 1]), Some(([1, 0, 0], [1, 0, 0])));
    }
}
