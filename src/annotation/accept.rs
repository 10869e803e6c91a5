//! Accepting a prediction into the labels, whole or one structure: the
//! changes that make the labels equal the prediction (or make one
//! structure's voxels equal the prediction's, leaving other structures as
//! they are). The caller applies them as one undoable step.

use crate::volume::LabelVolume;

/// (flat index within the frame, new id) for each voxel that changes.
/// `which`: `None` takes the whole prediction; `Some(id)` only structure
/// `id` (its predicted voxels get `id`, its labelled voxels the prediction
/// does not have become background).
pub fn accept(
    labels: &LabelVolume,
    frame: usize,
    prediction: &LabelVolume,
    which: Option<u16>,
) -> Vec<(usize, u16)> {
    let lo = labels.frame_offset(frame.min(labels.frames.saturating_sub(1)));
    let po = prediction.frame_offset(frame.min(prediction.frames.saturating_sub(1)));
    let n = labels.frame_len().min(prediction.frame_len());
    let mut out = Vec::new();
    for v in 0..n {
        let (l, p) = (labels.get(lo + v), prediction.get(po + v));
        match which {
            None if l != p => out.push((v, p)),
            Some(id) if p == id && l != id => out.push((v, id)),
            Some(id) if l == id && p != id => out.push((v, 0)),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    #[test]
    fn one_structure_or_the_whole_prediction() {
        let g = Geometry::identity();
        let mut l = LabelVolume::zeros([6, 1, 1], 1, g.clone());
        let mut p = LabelVolume::zeros([6, 1, 1], 1, g);
        for (i, (a, b)) in [(0, 1), (1, 1), (1, 0), (2, 1), (2, 2), (0, 2)]
            .iter()
            .enumerate()
        {
            l.set(i, *a);
            p.set(i, *b);
        }
        assert_eq!(accept(&l, 0, &p, Some(1)), vec![(0, 1), (2, 0), (3, 1)]);
        assert_eq!(
            accept(&l, 0, &p, None),
            vec![(0, 1), (2, 0), (3, 1), (5, 2)]
        );
    }
}
