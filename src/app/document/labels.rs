//! The case's label maps: one map for every frame, or maps of some frames
//! of a 4D case (ACDC's ED and ES), each with its voxel counts per frame,
//! kept current by edits instead of recounted.

use crate::volume::LabelVolume;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A label map, the frame it belongs to (`None`: every frame), and its voxel
/// counts per frame.
type LabelMapEntry = (Option<usize>, Arc<LabelVolume>, Vec<Vec<usize>>);

/// Labels: one map for 3D cases (or a 4D map following the frames), or
/// maps of some frames of a 4D case. Voxel counts are computed once per map
/// when it is added (on the thread that loads it), not on every repaint.
#[derive(Clone, Default)]
pub struct Labels {
    /// (frame, labels, voxel counts per frame of the map); frame `None`
    /// means "every frame".
    maps: Vec<LabelMapEntry>,
    /// Labelled-slice lists read with maps (`.slices.json`): map index →
    /// slices. A map without one was labelled on every slice.
    listed: BTreeMap<usize, Vec<usize>>,
}

impl Labels {
    /// One map for every frame.
    pub fn single(map: Arc<LabelVolume>) -> Labels {
        let mut l = Labels::default();
        l.push(None, map);
        l
    }

    /// Add a map for one frame, or for every frame (`None`).
    pub fn push(&mut self, frame: Option<usize>, map: Arc<LabelVolume>) {
        let counts = (0..map.frames).map(|t| map.frame_counts(t)).collect();
        self.maps.push((frame, map, counts));
    }

    /// Map `index` is labelled on `slices` only (its `.slices.json`);
    /// `None` leaves it labelled throughout.
    pub fn with_listed(mut self, index: usize, slices: Option<Vec<usize>>) -> Labels {
        if let Some(ks) = slices {
            self.listed.insert(index, ks);
        }
        self
    }

    /// The slice list map `index` was read with, if any.
    pub fn listed(&self, index: usize) -> Option<&[usize]> {
        self.listed.get(&index).map(Vec::as_slice)
    }

    /// Make the first map of `other` (counted where it was read) the labels
    /// of frame `frame`: it replaces that frame's map, or is added for it.
    pub fn set_frame(&mut self, frame: usize, other: Labels) {
        let Some((_, map, counts)) = other.maps.into_iter().next() else {
            return;
        };
        match self.maps.iter_mut().find(|(f, _, _)| *f == Some(frame)) {
            Some(entry) => *entry = (Some(frame), map, counts),
            None => self.maps.push((Some(frame), map, counts)),
        }
    }

    /// Whether there are no label maps.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    fn entry(&self, frame: usize) -> Option<&LabelMapEntry> {
        self.maps
            .iter()
            .find(|(f, _, _)| *f == Some(frame))
            .or_else(|| self.maps.iter().find(|(f, _, _)| f.is_none()))
    }

    /// The map to show at `frame`.
    pub fn at_frame(&self, frame: usize) -> Option<&Arc<LabelVolume>> {
        self.entry(frame).map(|(_, l, _)| l)
    }

    /// Voxel counts per id of what is shown at `frame`.
    pub fn counts_at(&self, frame: usize) -> &[usize] {
        self.entry(frame)
            .and_then(|(_, l, c)| c.get(frame.min(l.frames.saturating_sub(1))))
            .map_or(&[], Vec::as_slice)
    }

    /// Ids present in any map.
    pub fn present(&self) -> Vec<u16> {
        let mut ids = std::collections::BTreeSet::new();
        for (_, _, counts) in &self.maps {
            for c in counts {
                ids.extend(
                    c.iter()
                        .enumerate()
                        .skip(1)
                        .filter(|(_, n)| **n > 0)
                        .filter_map(|(id, _)| u16::try_from(id).ok()),
                );
            }
        }
        ids.into_iter().collect()
    }

    /// Index of the map shown at `frame`.
    pub(super) fn index_at(&self, frame: usize) -> Option<usize> {
        self.maps
            .iter()
            .position(|(f, _, _)| *f == Some(frame))
            .or_else(|| self.maps.iter().position(|(f, _, _)| f.is_none()))
    }

    /// Map `index` to edit (copied first if a job still shares it) and its
    /// counts.
    pub(super) fn edit_map(
        &mut self,
        index: usize,
    ) -> Option<(&mut LabelVolume, &mut Vec<Vec<usize>>)> {
        let (_, map, counts) = self.maps.get_mut(index)?;
        Some((Arc::make_mut(map), counts))
    }

    /// The frame of map `index` that case frame `frame` shows.
    pub(super) fn map_frame(&self, index: usize, frame: usize) -> usize {
        self.maps
            .get(index)
            .map_or(0, |(_, m, _)| frame.min(m.frames.saturating_sub(1)))
    }

    /// The maps as stored: the frame each is for (`None`: every frame).
    pub fn maps(&self) -> impl Iterator<Item = (Option<usize>, &Arc<LabelVolume>)> {
        self.maps.iter().map(|(f, l, _)| (*f, l))
    }
}
