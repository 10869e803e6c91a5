//! Voxel counts of every (ground truth, prediction) id pair from one pass
//! over the maps — overlap metrics of all structures at once — and kept
//! current in place while the ground truth is painted (the live Dice).

use crate::volume::LabelVolume;

/// The largest id (plus one) live counts follow in place.
pub const LIVE_IDS: usize = 4096;

/// Voxel counts of every (ground truth, prediction) id pair, from one pass.
pub struct Confusion {
    pub(super) size: usize,
    counts: Vec<u64>,
}

impl Confusion {
    /// Count all voxels of two maps of equal length.
    pub fn new(gt: &LabelVolume, pred: &LabelVolume) -> Confusion {
        use crate::volume::LabelData::{U8, U16};
        let max = |l: &LabelVolume| match &l.data {
            U8(d) => usize::from(d.iter().copied().max().unwrap_or(0)),
            U16(d) => usize::from(d.iter().copied().max().unwrap_or(0)),
        };
        let size = max(gt).max(max(pred)) + 1;
        let mut counts = vec![0u64; size * size];
        match (&gt.data, &pred.data) {
            (U8(g), U8(p)) => {
                for (&a, &b) in g.iter().zip(p) {
                    counts[usize::from(a) * size + usize::from(b)] += 1;
                }
            }
            _ => {
                for i in 0..gt.len().min(pred.len()) {
                    counts[usize::from(gt.get(i)) * size + usize::from(pred.get(i))] += 1;
                }
            }
        }
        Confusion { size, counts }
    }

    /// (true positives, false positives, false negatives) of one id.
    pub fn tp_fp_fn(&self, id: u16) -> (u64, u64, u64) {
        let l = usize::from(id);
        if l >= self.size {
            return (0, 0, 0);
        }
        let tp = self.counts[l * self.size + l];
        let pred: u64 = (0..self.size).map(|g| self.counts[g * self.size + l]).sum();
        let gt: u64 = self.counts[l * self.size..(l + 1) * self.size].iter().sum();
        (tp, pred - tp, gt - tp)
    }

    /// One voxel changed its ground-truth id from `before` to `after`
    /// where the prediction holds `pred`: adjust the counts in place (the
    /// live Dice while painting, O(1) per changed voxel).
    pub fn move_voxel(&mut self, before: u16, after: u16, pred: u16) -> bool {
        let need = usize::from(before.max(after).max(pred)) + 1;
        if need > LIVE_IDS {
            // A dense table for such ids would take gigabytes: the caller
            // recounts instead.
            return false;
        }
        if need > self.size {
            let mut counts = vec![0u64; need * need];
            for g in 0..self.size {
                for p in 0..self.size {
                    counts[g * need + p] = self.counts[g * self.size + p];
                }
            }
            self.counts = counts;
            self.size = need;
        }
        let (b, a, p) = (usize::from(before), usize::from(after), usize::from(pred));
        self.counts[b * self.size + p] = self.counts[b * self.size + p].saturating_sub(1);
        self.counts[a * self.size + p] += 1;
        true
    }

    /// Voxels of `id` in the ground truth and in the prediction.
    pub fn volumes(&self, id: u16) -> (u64, u64) {
        let (tp, fp, fn_) = self.tp_fp_fn(id);
        (tp + fn_, tp + fp)
    }

    /// Ids present in either map, background excluded.
    pub fn present(&self) -> Vec<u16> {
        (1..self.size)
            .filter(|&l| {
                let (tp, fp, fn_) = self.tp_fp_fn(l as u16);
                tp + fp + fn_ > 0
            })
            .map(|l| l as u16)
            .collect()
    }
}
