//! Segmentation losses on logits `[B, C, H, W]` against a one-hot target of
//! the same shape. Multi-label models read channels as independent sigmoids,
//! multi-class models as a softmax whose channel 0 is background. Soft Dice
//! excludes that background channel, as MONAI's `include_background=False`.

use super::config::LossConfig;
use crate::models::OutputMode;
use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax};

const DICE_SMOOTH: f64 = 1e-5;

/// The configured loss, a scalar tensor.
pub fn loss(
    config: LossConfig,
    mode: OutputMode,
    logits: Tensor<4>,
    target: Tensor<4>,
) -> Tensor<1> {
    match config {
        LossConfig::Bce => bce(logits, target),
        LossConfig::Ce => ce(logits, target),
        LossConfig::Dice => dice(mode, logits, target),
        LossConfig::BceDice => bce(logits.clone(), target.clone()) + dice(mode, logits, target),
        LossConfig::CeDice => ce(logits.clone(), target.clone()) + dice(mode, logits, target),
        LossConfig::Focal { gamma } => focal(mode, gamma, logits, target),
    }
}

/// Binary cross-entropy with logits, mean over every element
/// (`max(z,0) − z·y + log(1 + e^−|z|)`, stable for large |z|).
pub fn bce(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (logits.clone().clamp_min(0.0) - logits.clone() * target
        + (logits.abs().neg().exp() + 1.0).log())
    .mean()
}

/// Cross-entropy over channels, mean over pixels.
pub fn ce(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (log_softmax(logits, 1) * target).sum_dim(1).mean().neg()
}

/// Soft Dice loss: 1 − mean over structures of
/// `(2 Σ p·t + s) / (Σ p + Σ t + s)`, sums over the batch and pixels.
pub fn dice(mode: OutputMode, logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let [b, c, h, w] = logits.dims();
    let (probs, target, c) = match mode {
        OutputMode::MultiLabel => (burn::tensor::activation::sigmoid(logits), target, c),
        OutputMode::MultiClass if c > 1 => (
            burn::tensor::activation::softmax(logits, 1).narrow(1, 1, c - 1),
            target.narrow(1, 1, c - 1),
            c - 1,
        ),
        OutputMode::MultiClass => (burn::tensor::activation::softmax(logits, 1), target, c),
    };
    // [C, B*H*W] per structure.
    let flat = |t: Tensor<4>| t.swap_dims(0, 1).reshape([c, b * h * w]);
    let (p, t) = (flat(probs), flat(target));
    let inter = (p.clone() * t.clone()).sum_dim(1);
    let denom = p.sum_dim(1) + t.sum_dim(1);
    let score = (inter * 2.0 + DICE_SMOOTH) / (denom + DICE_SMOOTH);
    score.mean().neg() + 1.0
}

/// Focal loss `−(1 − p_t)^γ log p_t`, mean over pixels (multi-class) or
/// over every channel and pixel (multi-label).
pub fn focal(mode: OutputMode, gamma: f64, logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let logp_t = match mode {
        OutputMode::MultiClass => (log_softmax(logits, 1) * target).sum_dim(1),
        OutputMode::MultiLabel => {
            // log σ(z) where the target is 1, log σ(−z) where it is 0.
            log_sigmoid(logits.clone()) * target.clone()
                + log_sigmoid(logits.neg()) * (target.neg() + 1.0)
        }
    };
    let p_t = logp_t.clone().exp();
    ((p_t.neg() + 1.0).powf_scalar(gamma) * logp_t).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: &[f32], shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape), &Device::flex())
    }

    fn scalar(x: Tensor<1>) -> f64 {
        f64::from(x.into_scalar::<f32>())
    }

    #[test]
    fn bce_matches_the_formula() {
        // z = 0 → log 2 whatever the target; z = 2, y = 1 → log(1 + e^-2).
        let z = t(&[0.0, 2.0], [1, 2, 1, 1]);
        let y = t(&[1.0, 1.0], [1, 2, 1, 1]);
        let expect = (2f64.ln() + (1.0 + (-2f64).exp()).ln()) / 2.0;
        assert!((scalar(bce(z, y)) - expect).abs() < 1e-6);
    }

    #[test]
    fn ce_of_uniform_logits_is_log_c() {
        let z = t(&[0.0; 4 * 3], [1, 3, 2, 2]);
        let mut y = vec![0.0; 12];
        y[..4].fill(1.0); // class 0 everywhere
        assert!((scalar(ce(z, t(&y, [1, 3, 2, 2]))) - 3f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn dice_is_zero_for_perfect_and_one_for_disjoint() {
        // Multi-class, 2 classes, 2 pixels: perfect confident logits.
        let y = t(&[1.0, 0.0, 0.0, 1.0], [1, 2, 1, 2]);
        let good = t(&[20.0, -20.0, -20.0, 20.0], [1, 2, 1, 2]);
        assert!(scalar(dice(OutputMode::MultiClass, good, y.clone())) < 1e-4);
        let bad = t(&[-20.0, 20.0, 20.0, -20.0], [1, 2, 1, 2]);
        assert!(scalar(dice(OutputMode::MultiClass, bad, y)) > 0.99);
    }

    #[test]
    fn focal_with_gamma_zero_is_ce_and_down_weights_easy_pixels() {
        let z = t(&[1.0, -1.0, 0.5, 0.2], [1, 2, 1, 2]);
        let y = t(&[1.0, 0.0, 0.0, 1.0], [1, 2, 1, 2]);
        let f0 = scalar(focal(OutputMode::MultiClass, 0.0, z.clone(), y.clone()));
        assert!((f0 - scalar(ce(z.clone(), y.clone()))).abs() < 1e-6);
        let f2 = scalar(focal(OutputMode::MultiClass, 2.0, z.clone(), y.clone()));
        assert!(f2 < f0 && f2 > 0.0);
        let bl0 = scalar(focal(OutputMode::MultiLabel, 0.0, z.clone(), y.clone()));
        assert!((bl0 - scalar(bce(z, y))).abs() < 1e-6);
    }
}
