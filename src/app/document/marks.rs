//! Which slices of the label maps are labelled, along the models' slicing
//! axis (z, [`crate::annotation::slices::AXIS`]). A slice counts when the
//! user painted in it (an edit that still stands: undoing the stroke
//! takes the mark back), marked it done (D: "this slice is labelled, even
//! where it is background"), or when its map came from a file without a
//! `.slices.json` (every slice). Training on the open case takes its
//! targets from these slices only; the slice slider shows them. Accepting
//! a prediction or filling between slices counts as painting the slices it
//! changes: the user chose to take those labels (review them first — the
//! model then learns from what was accepted). Marking is undoable like a
//! stroke (a `Mark` step in the history).

use std::collections::{BTreeMap, BTreeSet};

/// How a slice came to count as labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceState {
    /// Not labelled: never a training target.
    Unlabelled,
    /// Its map came from a file that labels every slice.
    FromFile,
    /// The user marked it done.
    Done,
    /// The user painted in it.
    Painted,
}

/// A slice of a map: (map index, frame of the map, z).
type Key = (usize, usize, usize);

/// The labelled slices of every map; owned by the
/// [`Document`](super::Document), which updates it on every edit.
#[derive(Debug, Clone, Default)]
pub struct SliceMarks {
    /// Maps labelled on every slice (from a file without a slice list).
    whole: BTreeSet<usize>,
    /// Slices marked done (or listed by a `.slices.json`).
    done: BTreeSet<Key>,
    /// Slices touched by standing edits, with how many.
    painted: BTreeMap<Key, u32>,
}

impl SliceMarks {
    /// Map `map` is labelled throughout (read from a file).
    pub fn set_whole(&mut self, map: usize) {
        self.forget(map);
        self.whole.insert(map);
    }

    /// Map `map` is labelled on `slices` of each of its frames only (a
    /// file with a `.slices.json`).
    pub fn set_listed(&mut self, map: usize, frames: usize, slices: &[usize]) {
        self.forget(map);
        for t in 0..frames.max(1) {
            self.done.extend(slices.iter().map(|&z| (map, t, z)));
        }
    }

    fn forget(&mut self, map: usize) {
        self.whole.remove(&map);
        self.done.retain(|k| k.0 != map);
        self.painted.retain(|k, _| k.0 != map);
    }

    /// How slice `z` of frame `t` of map `map` counts.
    pub fn state(&self, map: usize, t: usize, z: usize) -> SliceState {
        if self.painted.contains_key(&(map, t, z)) {
            SliceState::Painted
        } else if self.done.contains(&(map, t, z)) {
            SliceState::Done
        } else if self.whole.contains(&map) {
            SliceState::FromFile
        } else {
            SliceState::Unlabelled
        }
    }

    /// Whether every slice of map `map` counts.
    pub fn is_whole(&self, map: usize) -> bool {
        self.whole.contains(&map)
    }

    /// The labelled slices of frame `t` of map `map` (`nz` slices), sorted.
    pub fn labelled(&self, map: usize, t: usize, nz: usize) -> Vec<usize> {
        if self.whole.contains(&map) {
            return (0..nz).collect();
        }
        let range = (map, t, 0)..(map, t, nz);
        let mut out: BTreeSet<usize> = self.done.range(range.clone()).map(|k| k.2).collect();
        out.extend(self.painted.range(range).map(|(k, _)| k.2));
        out.into_iter().collect()
    }

    /// Mark slice `z` done, or take the mark back; returns whether it is
    /// marked now. A painted slice stays labelled either way.
    pub fn toggle_done(&mut self, map: usize, t: usize, z: usize) -> bool {
        let key = (map, t, z);
        if self.done.remove(&key) {
            false
        } else {
            self.done.insert(key);
            true
        }
    }

    /// An edit of frame `t` of map `map` touching slices `zs` was applied
    /// (`forward`) or undone.
    pub fn edited(&mut self, map: usize, t: usize, zs: &BTreeSet<usize>, forward: bool) {
        for &z in zs {
            let key = (map, t, z);
            if forward {
                *self.painted.entry(key).or_insert(0) += 1;
            } else if let Some(n) = self.painted.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.painted.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn painting_marking_and_undo() {
        let mut m = SliceMarks::default();
        assert_eq!(m.labelled(0, 0, 10), Vec::<usize>::new());
        let zs: BTreeSet<usize> = [2, 3].into();
        m.edited(0, 0, &zs, true);
        m.edited(0, 0, &[3].into(), true);
        assert!(m.toggle_done(0, 0, 7));
        assert_eq!(m.labelled(0, 0, 10), vec![2, 3, 7]);
        assert_eq!(m.state(0, 0, 2), SliceState::Painted);
        assert_eq!(m.state(0, 0, 7), SliceState::Done);
        // Undo the first stroke: slice 2 is no longer labelled, slice 3
        // still is (the second stroke stands).
        m.edited(0, 0, &zs, false);
        assert_eq!(m.labelled(0, 0, 10), vec![3, 7]);
        assert!(!m.toggle_done(0, 0, 7));
        assert_eq!(m.labelled(0, 0, 10), vec![3]);
        assert_eq!(m.labelled(0, 1, 10), Vec::<usize>::new());
        m.set_whole(0);
        assert_eq!(m.state(0, 0, 9), SliceState::FromFile);
        assert_eq!(m.labelled(0, 0, 4), vec![0, 1, 2, 3]);
        m.set_listed(0, 1, &[1, 5]);
        assert_eq!(m.labelled(0, 0, 10), vec![1, 5]);
    }
}
