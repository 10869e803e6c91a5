//! "Which slice should I label next?": a score per slice along the models'
//! slicing axis (z), higher = label first. The score is the model's
//! uncertainty: the voxel entropy of its output (softmax over classes, or
//! the binary entropy of each sigmoid channel) averaged over the slice,
//! each voxel weighted by its probability of being foreground
//! ([`slice_uncertainty`]) — MONAI Label's epistemic strategy, per slice
//! instead of per volume. [`SliceScores::top`] spreads its picks so that
//! k slices are not k neighbours saying the same thing. Whether this beats
//! random choice is measured by `ume bench suggest`, not assumed.

use super::segment::{Network, Prepared, SegmentError, slice_logits};
use super::{OutputMode, Segmenter};
use crate::volume::Volume;
use burn::prelude::Device;

/// Scores of every slice of a case.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SliceScores {
    /// The voxel axis scored along (2: z).
    pub axis: usize,
    /// One score per slice, in [0, 1] (1: a uniform output everywhere; a
    /// 4D case: the mean over frames).
    pub scores: Vec<f64>,
}

impl SliceScores {
    /// The `k` slices to label, best first: (index, score). Greedy by
    /// score, skipping slices within `nz / (2k)` of one already chosen
    /// (neighbours look alike); when that leaves fewer than `k`, the best
    /// of the skipped fill up.
    pub fn top(&self, k: usize) -> Vec<(usize, f64)> {
        self.top_among(k, |_| true)
    }

    /// [`SliceScores::top`] among the slices `eligible` accepts (the app
    /// lists unlabelled slices only).
    pub fn top_among(&self, k: usize, eligible: impl Fn(usize) -> bool) -> Vec<(usize, f64)> {
        let mut order: Vec<(usize, f64)> = self
            .scores
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| eligible(*i))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let gap = self.scores.len() / (2 * k.max(1));
        let mut chosen: Vec<(usize, f64)> = Vec::with_capacity(k);
        let mut skipped = Vec::new();
        for (i, s) in order {
            if chosen.len() == k {
                break;
            }
            if chosen.iter().any(|(c, _)| c.abs_diff(i) <= gap) {
                skipped.push((i, s));
            } else {
                chosen.push((i, s));
            }
        }
        let missing = k.saturating_sub(chosen.len());
        chosen.extend(skipped.into_iter().take(missing));
        chosen
    }
}

/// The uncertainty of `[C, P]` logits over the P pixels of a slice, in
/// [0, 1]: the mean of each pixel's entropy (scaled by that of a uniform
/// output) weighted by the probability that the pixel is foreground. A
/// weak model is unsure everywhere, the empty slices at the ends of a scan
/// included; labelling those teaches it nothing about the structures, so
/// the weight keeps the ranking on slices where a structure may be.
pub fn slice_uncertainty(logits: &[f32], channels: usize, mode: OutputMode) -> f64 {
    let c = channels.max(1);
    let pixels = logits.len() / c;
    if pixels == 0 {
        return 0.0;
    }
    let at = |ch: usize, p: usize| f64::from(logits[ch * pixels + p]);
    let plogp = |v: f64| if v > 0.0 { -v * v.ln() } else { 0.0 };
    let mut sum = 0.0;
    for p in 0..pixels {
        sum += match mode {
            OutputMode::MultiClass if c > 1 => {
                let max = (0..c).map(|ch| at(ch, p)).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = (0..c).map(|ch| (at(ch, p) - max).exp()).sum();
                let q = |ch: usize| (at(ch, p) - max).exp() / z;
                let h: f64 = (0..c).map(|ch| plogp(q(ch))).sum();
                h / (c as f64).ln() * (1.0 - q(0))
            }
            _ => {
                let qs: Vec<f64> = (0..c).map(|ch| 1.0 / (1.0 + (-at(ch, p)).exp())).collect();
                let h: f64 = qs.iter().map(|&q| plogp(q) + plogp(1.0 - q)).sum::<f64>()
                    / (c as f64 * std::f64::consts::LN_2);
                h * qs.iter().copied().fold(0.0, f64::max)
            }
        };
    }
    let mean = sum / pixels as f64;
    if mean.is_finite() { mean } else { 0.0 }
}

/// Score every z slice of a case (`in_channels` volumes on one grid) with
/// a U-Net or encoder; `progress(done, total)` returns whether to go on.
pub fn score_slices(
    model: &Segmenter,
    volumes: &[&Volume],
    device: &Device,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<SliceScores, SegmentError> {
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no input volume".into()));
    };
    if volumes.len() < model.in_channels() {
        return Err(SegmentError::Input(format!(
            "the model takes {} channel(s) but {} volume(s) were given",
            model.in_channels(),
            volumes.len()
        )));
    }
    let volumes = &volumes[..model.in_channels()];
    if let Some(v) = volumes.iter().find(|v| v.dims != first.dims) {
        return Err(SegmentError::Input(format!(
            "input channels differ in size ({:?} and {:?})",
            first.dims, v.dims
        )));
    }
    let nz = first.dims[2];
    let mut sum = vec![0.0f64; nz];
    let mut n = vec![0usize; nz];
    match model {
        Segmenter::Unet(config, unet) => {
            let frames = volumes.iter().map(|v| v.frames).min().unwrap_or(1).max(1);
            let network = Network::new(unet, device);
            let ks: Vec<usize> = (0..nz).collect();
            let channels = config.network.out_channels;
            for t in 0..frames {
                let prepared = Prepared::frame(volumes, t, config.norm);
                slice_logits(config, &network, &prepared, &ks, 8, |k, logits| {
                    sum[k] += slice_uncertainty(logits, channels, config.network.output);
                    n[k] += 1;
                    progress(t * nz + k + 1, frames * nz)
                })?;
            }
        }
        Segmenter::Encoder(config, encoder) => {
            let channels = config.num_classes;
            super::encoder::frame_logits(
                config,
                encoder,
                volumes,
                device,
                |z, _, logits, (done, total)| {
                    sum[z] += slice_uncertainty(logits, channels, OutputMode::MultiClass);
                    n[z] += 1;
                    progress(done, total)
                },
            )?;
        }
    }
    Ok(SliceScores {
        axis: crate::annotation::slices::AXIS,
        scores: sum
            .iter()
            .zip(&n)
            .map(|(s, &k)| if k > 0 { s / k as f64 } else { 0.0 })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sure_pixels_score_zero_and_undecided_foreground_scores() {
        // Two pixels, three classes: a sure pixel and an undecided one
        // (entropy 1, foreground probability 2/3).
        let logits = [50.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let h = slice_uncertainty(&logits, 3, OutputMode::MultiClass);
        assert!((h - 1.0 / 3.0).abs() < 1e-6, "{h}");
        // Sure background scores nothing, however the model hesitates
        // between structures elsewhere.
        assert!(slice_uncertainty(&[40.0, 0.0, 0.0], 3, OutputMode::MultiClass) < 1e-9);
        let sure = slice_uncertainty(&[-40.0, 40.0], 1, OutputMode::MultiLabel);
        assert!(sure < 1e-6);
        let coin = slice_uncertainty(&[0.0], 1, OutputMode::MultiLabel);
        assert!((coin - 0.5).abs() < 1e-9);
    }

    #[test]
    fn top_spreads_its_picks() {
        let s = SliceScores {
            axis: 2,
            scores: vec![0.1, 0.5, 0.5, 0.9],
        };
        // k = 4: no gap, plain order.
        assert_eq!(s.top(4), vec![(3, 0.9), (1, 0.5), (2, 0.5), (0, 0.1)]);
        // k = 1 over 4 slices: gap 2; k = 2: gap 1, so 2 (next to 3) waits.
        assert_eq!(s.top(2), vec![(3, 0.9), (1, 0.5)]);
        let peak = SliceScores {
            axis: 2,
            scores: vec![0.0, 0.0, 0.1, 0.8, 0.9, 0.8, 0.1, 0.0, 0.2, 0.0],
        };
        assert_eq!(peak.top(2), vec![(4, 0.9), (8, 0.2)]);
        assert_eq!(peak.top_among(1, |i| i != 4), vec![(3, 0.8)]);
    }
}
