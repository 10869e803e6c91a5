//! The segmentation losses of [`super::loss`] with their gradients in
//! closed form, on plain slices: what the CPU training engine
//! ([`super::cpu_train`]) uses instead of an autodiff graph.
//!
//! Why: at the seed's size (4 images × 117 channels × 256²) the logits are
//! 123 MB, and Burn's autodiff of the loss expression makes a dozen full
//! passes over them (each operator and its backward), which took longer
//! than the U-Net's own forward. Here each term is one or two passes.
//! The definitions are those of [`super::loss`] (tested equal to its
//! autodiff, value and gradient), which the wgpu path keeps using.
//!
//! Layout: logits, target and gradient are `[B, C, H, W]` row-major.

use super::config::LossConfig;
use crate::models::OutputMode;
use rayon::prelude::*;

const DICE_SMOOTH: f64 = 1e-5;

/// Pixels per block when a pass walks across channels.
const BLOCK: usize = 1024;

/// Buffers [`loss_and_grad`] reuses from call to call: the gradient and
/// the Dice losses' probabilities are each as large as the logits (123 MB
/// at the seed's size), and fresh pages cost more than the arithmetic.
#[derive(Debug, Default)]
pub struct LossBuffers {
    grad: Vec<f32>,
    probs: Vec<f32>,
}

/// The configured loss of `logits` against `target`, times `weight` (e.g.
/// `1 / accumulation`), and its gradient with respect to the logits, which
/// lives in `buffers` until the next call. `dims` is `[B, C, H·W]`.
pub fn loss_and_grad<'b>(
    config: LossConfig,
    mode: OutputMode,
    logits: &[f32],
    target: &[f32],
    dims: [usize; 3],
    weight: f32,
    buffers: &'b mut LossBuffers,
) -> (f32, &'b [f32]) {
    let LossBuffers { grad, probs } = buffers;
    grad.resize(logits.len(), 0.0);
    grad.par_iter_mut().for_each(|g| *g = 0.0);
    let grad = grad.as_mut_slice();
    if matches!(
        config,
        LossConfig::Dice | LossConfig::BceDice | LossConfig::CeDice
    ) {
        probs.resize(logits.len(), 0.0);
        match mode {
            OutputMode::MultiClass => softmax(logits, dims, probs),
            OutputMode::MultiLabel => probs
                .par_iter_mut()
                .zip(logits)
                .for_each(|(p, &z)| *p = sigmoid(z)),
        }
    }
    let value = match config {
        LossConfig::Bce => bce(logits, target, grad),
        LossConfig::Ce => ce(logits, target, dims, grad),
        LossConfig::Dice => dice(mode, probs, target, dims, grad),
        LossConfig::BceDice => bce(logits, target, grad) + dice(mode, probs, target, dims, grad),
        LossConfig::CeDice => {
            ce(logits, target, dims, grad) + dice(mode, probs, target, dims, grad)
        }
        LossConfig::Focal { gamma } => focal(mode, gamma, logits, target, dims, grad),
    };
    if weight != 1.0 {
        grad.par_iter_mut().for_each(|g| *g *= weight);
    }
    ((value * f64::from(weight)) as f32, grad)
}

/// `e^{−a}` for `a ≥ 0` (NaN stays NaN), to about 2e-7 relative, without
/// a library call or a branch, so that loops over it vectorise: the losses
/// take tens of millions of exponentials per step, and the scalar `expf`
/// was a third of the loss's time. `a = n·ln 2 + r` with `|r| ≤ ln2 / 2`;
/// `e^{−r}` by its Taylor series to degree 7; `2^{−n}` from the bits.
fn exp_neg(a: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    // Not `min`, which would turn NaN into 87.
    let a = if a > 87.0 { 87.0 } else { a };
    let t = a * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = -((a - n * LN2_HI) - n * LN2_LO);
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // n ∈ [0, 126] after the clamp sits in t's low mantissa bits; 2^{−n}
    // is a normal float built from it with integer operations only (no
    // float-to-int conversion, which would not vectorise).
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits((127u32 << 23).wrapping_sub(n_bits << 23))
}

/// `ln(1 + e)` for `e ∈ [0, 1]`, to about 1e-7 absolute, branch-free:
/// `2 atanh(s)` with `s = e / (2 + e) ≤ 1/3`, its odd series to `s¹¹`.
fn ln_1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let mut p = 1.0 / 11.0;
    for c in [1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = p * s2 + c;
    }
    2.0 * s * p
}

/// `σ(z)` and `e^{−|z|}` (from which the losses also take softplus).
fn sigmoid_parts(z: f32) -> (f32, f32) {
    let e = exp_neg(z.abs());
    let r = 1.0 / (1.0 + e);
    (if z >= 0.0 { r } else { e * r }, e)
}

fn sigmoid(z: f32) -> f32 {
    sigmoid_parts(z).0
}

/// Sum of `f` over chunks of the three slices, in parallel.
fn par_sum(
    grad: &mut [f32],
    a: &[f32],
    b: &[f32],
    f: impl Fn(&mut [f32], &[f32], &[f32]) -> f64 + Sync + Send,
) -> f64 {
    const CHUNK: usize = 1 << 14;
    ordered_sum(
        grad.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .zip(b.par_chunks(CHUNK))
            .map(|((g, a), b)| f(g, a, b)),
    )
}

/// The parts' sum, added in order: rayon's own `sum` adds in an order
/// that depends on scheduling, which would make the same seed give
/// (slightly) different runs.
fn ordered_sum(parts: impl IndexedParallelIterator<Item = f64>) -> f64 {
    parts.collect::<Vec<f64>>().iter().sum()
}

/// Binary cross-entropy with logits, mean over every element.
fn bce(z: &[f32], y: &[f32], grad: &mut [f32]) -> f64 {
    let inv = 1.0 / z.len().max(1) as f32;
    par_sum(grad, z, y, |g, z, y| {
        let mut s = 0.0f64;
        for ((g, &z), &y) in g.iter_mut().zip(z).zip(y) {
            // One exponential serves both: e = exp(−|z|).
            let (sig, e) = sigmoid_parts(z);
            s += f64::from(z.max(0.0) - z * y + ln_1p_unit(e));
            *g += (sig - y) * inv;
        }
        s
    }) / z.len().max(1) as f64
}

/// Per pixel of each image, `log Σ_c exp(z_c)`: `[B, H·W]`. Walks the
/// channel planes a block of pixels at a time, so the block stays in cache.
fn log_sum_exp(z: &[f32], [b, c, plane]: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0.0f32; b * plane];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(bi, image)| {
            let mut max = vec![0.0f32; BLOCK];
            for (blk, lse) in image.chunks_mut(BLOCK).enumerate() {
                let (p, len) = (blk * BLOCK, lse.len());
                let max = &mut max[..len];
                max.fill(f32::NEG_INFINITY);
                let row = |ch: usize| &z[(bi * c + ch) * plane + p..][..len];
                for ch in 0..c {
                    max.iter_mut()
                        .zip(row(ch))
                        .for_each(|(m, &v)| *m = m.max(v));
                }
                lse.fill(0.0);
                for ch in 0..c {
                    for ((s, &v), m) in lse.iter_mut().zip(row(ch)).zip(&*max) {
                        *s += exp_neg(m - v);
                    }
                }
                lse.iter_mut().zip(&*max).for_each(|(s, m)| *s = s.ln() + m);
            }
        });
    out
}

/// Softmax over channels, `[B, C, H·W]`, into `out`.
fn softmax(z: &[f32], dims: [usize; 3], out: &mut [f32]) {
    let [_, c, plane] = dims;
    let lse = log_sum_exp(z, dims);
    out.par_chunks_mut(plane)
        .zip(z.par_chunks(plane))
        .enumerate()
        .for_each(|(i, (p, z))| {
            let lse = &lse[(i / c) * plane..][..plane];
            for ((p, &z), &l) in p.iter_mut().zip(z).zip(lse) {
                *p = exp_neg(l - z);
            }
        });
}

/// `Σ_c y_c` per pixel, `[B, H·W]`.
fn target_mass(y: &[f32], [b, c, plane]: [usize; 3]) -> Vec<f32> {
    let mut out = vec![0.0f32; b * plane];
    out.par_chunks_mut(plane).enumerate().for_each(|(bi, m)| {
        for ch in 0..c {
            let row = &y[(bi * c + ch) * plane..][..plane];
            m.iter_mut().zip(row).for_each(|(m, &v)| *m += v);
        }
    });
    out
}

/// Cross-entropy over channels, mean over pixels:
/// `−Σ_c y_c log p_c`, gradient `(p_c Σy − y_c) / N`.
fn ce(z: &[f32], y: &[f32], dims: [usize; 3], grad: &mut [f32]) -> f64 {
    let [b, c, plane] = dims;
    let n = (b * plane).max(1) as f32;
    let lse = log_sum_exp(z, dims);
    let mass = target_mass(y, dims);
    ordered_sum(
        grad.par_chunks_mut(plane)
            .zip(z.par_chunks(plane))
            .zip(y.par_chunks(plane))
            .enumerate()
            .map(|(i, ((g, z), y))| {
                let bi = i / c;
                let (lse, mass) = (&lse[bi * plane..][..plane], &mass[bi * plane..][..plane]);
                let mut s = 0.0f64;
                for ((((g, &z), &y), &l), &m) in g.iter_mut().zip(z).zip(y).zip(lse).zip(mass) {
                    let logp = z - l;
                    s -= f64::from(y * logp);
                    *g += (exp_neg(-logp) * m - y) / n;
                }
                s
            }),
    ) / f64::from(n)
}

/// Soft Dice over the structures (all channels for multi-label; channels
/// 1.. for multi-class, as MONAI's `include_background=False`), given the
/// probabilities `p`.
fn dice(mode: OutputMode, p: &[f32], y: &[f32], dims: [usize; 3], grad: &mut [f32]) -> f64 {
    let [_, c, plane] = dims;
    let first = usize::from(mode == OutputMode::MultiClass && c > 1);
    let structures = c - first;
    // Per channel: Σ p·t, Σ p + Σ t.
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let mut inter = 0.0f64;
            let mut denom = 0.0f64;
            for (pp, yy) in p.chunks(plane).zip(y.chunks(plane)).skip(ch).step_by(c) {
                for (&a, &b) in pp.iter().zip(yy) {
                    inter += f64::from(a * b);
                    denom += f64::from(a + b);
                }
            }
            (inter, denom)
        })
        .collect();
    let value = 1.0
        - sums[first..]
            .iter()
            .map(|(i, d)| (2.0 * i + DICE_SMOOTH) / (d + DICE_SMOOTH))
            .sum::<f64>()
            / structures.max(1) as f64;
    // dL/dp_c = −(2 t (D + s) − (2 I + s)) / ((D + s)² · structures).
    let coef: Vec<(f32, f32)> = sums
        .iter()
        .enumerate()
        .map(|(ch, &(i, d))| {
            if ch < first {
                return (0.0, 0.0);
            }
            let ds = d + DICE_SMOOTH;
            let k = structures.max(1) as f64 * ds * ds;
            ((-2.0 * ds / k) as f32, ((2.0 * i + DICE_SMOOTH) / k) as f32)
        })
        .collect();
    let dp = |ch: usize, t: f32| coef[ch].0 * t + coef[ch].1;
    match mode {
        OutputMode::MultiLabel => {
            grad.par_chunks_mut(plane)
                .zip(p.par_chunks(plane))
                .zip(y.par_chunks(plane))
                .enumerate()
                .for_each(|(i, ((g, p), y))| {
                    let ch = i % c;
                    for ((g, &p), &t) in g.iter_mut().zip(p).zip(y) {
                        *g += dp(ch, t) * p * (1.0 - p);
                    }
                });
        }
        OutputMode::MultiClass => {
            // Softmax backward: dz_k = p_k (g_k − Σ_j p_j g_j).
            grad.par_chunks_mut(c * plane)
                .zip(p.par_chunks(c * plane))
                .zip(y.par_chunks(c * plane))
                .for_each(|((g, p), y)| {
                    let mut dot = vec![0.0f32; plane];
                    for ch in 0..c {
                        let (pr, yr) = (&p[ch * plane..][..plane], &y[ch * plane..][..plane]);
                        for ((d, &p), &t) in dot.iter_mut().zip(pr).zip(yr) {
                            *d += p * dp(ch, t);
                        }
                    }
                    for ch in 0..c {
                        let (pr, yr) = (&p[ch * plane..][..plane], &y[ch * plane..][..plane]);
                        let gr = &mut g[ch * plane..][..plane];
                        for (((g, &p), &t), &d) in gr.iter_mut().zip(pr).zip(yr).zip(&dot) {
                            *g += p * (dp(ch, t) - d);
                        }
                    }
                });
        }
    }
    value
}

/// `−(1 − p_t)^γ log p_t` and its derivative with respect to `log p_t`.
fn focal_term(gamma: f64, logp_t: f64) -> (f64, f64) {
    let p_t = logp_t.exp();
    let q = (1.0 - p_t).max(0.0);
    let value = -q.powf(gamma) * logp_t;
    let slope = if q > 0.0 {
        gamma * q.powf(gamma - 1.0) * p_t * logp_t
    } else {
        0.0
    };
    (value, slope - q.powf(gamma))
}

/// Focal loss, mean over pixels (multi-class) or over every channel and
/// pixel (multi-label).
fn focal(
    mode: OutputMode,
    gamma: f64,
    z: &[f32],
    y: &[f32],
    dims: [usize; 3],
    grad: &mut [f32],
) -> f64 {
    let [b, c, plane] = dims;
    match mode {
        OutputMode::MultiLabel => {
            let n = z.len().max(1) as f64;
            par_sum(grad, z, y, |g, z, y| {
                let mut s = 0.0f64;
                for ((g, &z), &y) in g.iter_mut().zip(z).zip(y) {
                    // log σ(z) = −softplus(−z), log σ(−z) = −softplus(z).
                    let softplus = |v: f32| f64::from(v.max(0.0) + ln_1p_unit(exp_neg(v.abs())));
                    let logp_t = -f64::from(y) * softplus(-z) - f64::from(1.0 - y) * softplus(z);
                    let (v, d) = focal_term(gamma, logp_t);
                    s += v;
                    *g += ((d / n) * f64::from(y - sigmoid(z))) as f32;
                }
                s
            }) / n
        }
        OutputMode::MultiClass => {
            let n = (b * plane).max(1) as f64;
            let lse = log_sum_exp(z, dims);
            let mass = target_mass(y, dims);
            ordered_sum(
                grad.par_chunks_mut(c * plane)
                    .zip(z.par_chunks(c * plane))
                    .zip(y.par_chunks(c * plane))
                    .enumerate()
                    .map(|(bi, ((g, z), y))| {
                        let lse = &lse[bi * plane..][..plane];
                        let mass = &mass[bi * plane..][..plane];
                        // log p_t = Σ_c y_c (z_c − lse) per pixel.
                        let mut logp_t = vec![0.0f32; plane];
                        for ch in 0..c {
                            let (zr, yr) = (&z[ch * plane..][..plane], &y[ch * plane..][..plane]);
                            for (((l, &z), &y), &s) in logp_t.iter_mut().zip(zr).zip(yr).zip(lse) {
                                *l += y * (z - s);
                            }
                        }
                        let mut value = 0.0f64;
                        let slope: Vec<f32> = logp_t
                            .iter()
                            .map(|&l| {
                                let (v, d) = focal_term(gamma, f64::from(l));
                                value += v;
                                (d / n) as f32
                            })
                            .collect();
                        // d log p_t / dz_k = y_k − p_k Σ_c y_c.
                        for ch in 0..c {
                            let (zr, yr) = (&z[ch * plane..][..plane], &y[ch * plane..][..plane]);
                            let gr = &mut g[ch * plane..][..plane];
                            for (i, g) in gr.iter_mut().enumerate() {
                                let p = exp_neg(lse[i] - zr[i]);
                                *g += slope[i] * (yr[i] - p * mass[i]);
                            }
                        }
                        value
                    }),
            ) / n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// Value and gradient through Burn's autodiff of [`super::super::loss`].
    fn reference(
        config: LossConfig,
        mode: OutputMode,
        z: &[f32],
        y: &[f32],
        shape: [usize; 4],
    ) -> (f32, Vec<f32>) {
        let dev = Device::flex().autodiff();
        let zt = Tensor::<4>::from_data(TensorData::new(z.to_vec(), shape), &dev).require_grad();
        let yt = Tensor::<4>::from_data(TensorData::new(y.to_vec(), shape), &dev);
        let loss = super::super::loss::loss(config, mode, zt.clone(), yt);
        let value = loss.clone().into_scalar::<f32>();
        let grad = zt.grad(&loss.backward()).expect("gradient");
        (
            value,
            grad.into_data().try_to_vec::<f32>().unwrap_or_default(),
        )
    }

    #[test]
    fn fast_exp_and_log_match_the_standard_library() {
        for i in 0..=200_000 {
            let a = i as f32 * 1e-3; // 0 ..= 200
            let (want, got) = ((-a).exp(), exp_neg(a));
            if a <= 87.0 {
                assert!((got - want).abs() <= 3e-7 * want, "e^-{a}: {got} vs {want}");
            } else {
                // Clamped: a value below 2e-38 that keeps divisions finite.
                assert!(got > 0.0 && got < 2e-38, "e^-{a}: {got}");
            }
            if a <= 1.0 {
                let (want, got) = (a.ln_1p(), ln_1p_unit(a));
                assert!((got - want).abs() <= 2e-7, "ln(1+{a}): {got} vs {want}");
            }
        }
        assert!(exp_neg(f32::NAN).is_nan());
        assert_eq!(exp_neg(f32::INFINITY), exp_neg(87.0));
    }

    #[test]
    fn every_loss_matches_burns_autodiff() {
        let dev = Device::flex();
        let shape = [2, 4, 3, 5];
        let z: Vec<f32> = Tensor::<4>::random(shape, Distribution::Normal(0.0, 3.0), &dev)
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let plane = 15;
        // Multi-label: random bits; multi-class: one-hot of a random class.
        let bits: Vec<f32> = Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), &dev)
            .greater_elem(0.6)
            .float()
            .into_data()
            .try_to_vec()
            .unwrap_or_default();
        let mut onehot = vec![0.0f32; z.len()];
        for b in 0..2 {
            for p in 0..plane {
                let class = (b * 7 + p * 3) % 4;
                onehot[(b * 4 + class) * plane + p] = 1.0;
            }
        }
        let configs = [
            LossConfig::Bce,
            LossConfig::Ce,
            LossConfig::Dice,
            LossConfig::BceDice,
            LossConfig::CeDice,
            LossConfig::Focal { gamma: 2.0 },
            LossConfig::Focal { gamma: 0.5 },
        ];
        let mut checked = 0;
        for config in configs {
            for mode in [OutputMode::MultiLabel, OutputMode::MultiClass] {
                let y = if mode == OutputMode::MultiClass {
                    &onehot
                } else {
                    &bits
                };
                let (want, want_grad) = reference(config, mode, &z, y, shape);
                let mut buffers = LossBuffers::default();
                let (got, got_grad) =
                    loss_and_grad(config, mode, &z, y, [2, 4, plane], 1.0, &mut buffers);
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{config:?} {mode:?}: value {got} vs {want}"
                );
                let scale = crate::models::max_abs(&want_grad);
                let worst = crate::models::max_abs_diff(got_grad, &want_grad);
                assert!(
                    worst <= 1e-4 * scale + 1e-7,
                    "{config:?} {mode:?}: gradient differs by {worst} (scale {scale})"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 14);
    }
}
