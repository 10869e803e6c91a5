//! The pre-norm transformer blocks of [`crate::models::vit`] on the CPU,
//! without a tensor framework, for inference. Burn runs a block as a dozen
//! separate ops, each allocating its result and copying the heads apart and
//! back; at the tokenizer's small widths those fixed costs outweigh the
//! arithmetic, and at TiTok-S widths they still cost a tenth of the time.
//! Here a block is four matrix products over the whole sequence (Q, K and V
//! in one), attention head by head on strided views of that product, and
//! layer norm, softmax and GELU done in place. Checked against Burn's
//! forward pass in the tests of [`super::titok`].

use super::kernels::{Strides, matmul, rows_of, values};
use burn::nn::transformer::TransformerEncoder;

/// Burn's `LayerNormConfig` default, which every UME model keeps (the
/// epsilon is private in Burn's `LayerNorm`; the parity tests would see a
/// model built with another).
const LAYER_NORM_EPS: f32 = 1e-5;

/// A linear layer: `y = x · W + b` with `W` as `[in][out]` (Burn's layout).
pub(crate) struct Dense {
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Vec<f32>,
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
}

impl Dense {
    pub(crate) fn new(l: &burn::nn::Linear) -> Dense {
        let [d_in, d_out] = l.weight.dims();
        Dense {
            weight: values(l.weight.val()),
            bias: l
                .bias
                .as_ref()
                .map_or(vec![0.0; d_out], |b| values(b.val())),
            d_in,
            d_out,
        }
    }

    /// Several linear layers on the same input as one wider one (their
    /// outputs side by side).
    fn side_by_side(parts: &[Dense]) -> Dense {
        let d_in = parts[0].d_in;
        let d_out: usize = parts.iter().map(|p| p.d_out).sum();
        let mut weight = Vec::with_capacity(d_in * d_out);
        for r in 0..d_in {
            for p in parts {
                weight.extend_from_slice(&p.weight[r * p.d_out..(r + 1) * p.d_out]);
            }
        }
        Dense {
            weight,
            bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
            d_in,
            d_out,
        }
    }

    /// `rows` rows of `x` (`d_in` wide) through the layer into `out`
    /// (`d_out` wide); `accumulate` adds to what `out` holds (a residual).
    pub(crate) fn forward(&self, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        let n = self.d_out;
        if accumulate {
            for row in out[..rows * n].chunks_exact_mut(n) {
                row.iter_mut().zip(&self.bias).for_each(|(o, b)| *o += b);
            }
        } else {
            for row in out[..rows * n].chunks_exact_mut(n) {
                row.copy_from_slice(&self.bias);
            }
        }
        matmul(
            rows,
            n,
            self.d_in,
            out,
            rows_of(n),
            true,
            x,
            rows_of(self.d_in),
            &self.weight,
            rows_of(n),
        );
    }
}

/// Layer norm's scale and shift.
pub(crate) struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    pub(crate) fn new(n: &burn::nn::LayerNorm) -> Norm {
        let gamma = values(n.gamma.val());
        let beta = n
            .beta
            .as_ref()
            .map_or(vec![0.0; gamma.len()], |b| values(b.val()));
        Norm { gamma, beta }
    }

    /// Each `gamma.len()`-wide row of `x`, normalised, into `out`.
    #[inline(always)]
    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        let w = self.gamma.len();
        for (row, o) in x.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
            let mean = sum(row) / w as f32;
            for (o, v) in o.iter_mut().zip(row) {
                *o = v - mean;
            }
            let var = sum_sq(o);
            let inv = 1.0 / (var / w as f32 + LAYER_NORM_EPS).sqrt();
            for ((o, g), b) in o.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *o = *o * inv * g + b;
            }
        }
    }
}

/// Sum in eight lanes: a plain `iter().sum()` of floats must keep its
/// order and runs one add at a time.
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Sum of squares, in eight lanes as [`sum`].
#[inline(always)]
fn sum_sq(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x * x;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Largest value, in eight lanes as [`sum`].
#[inline(always)]
fn max(v: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l = l.max(*x);
        }
    }
    lanes.iter().copied().fold(tail, f32::max)
}

/// `e^x` to about 2e-7 relative (Cephes' `expf`: a degree-6 polynomial on
/// the reduced argument, then the power of two set in the exponent bits).
/// Branch-free, so loops over it vectorise; `f32::exp` calls libm one value
/// at a time, and softmax and GELU run it on every attention score and
/// hidden unit.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Cephes' limits: above 88.376 the power of two would not fit the
    // exponent bits; below -87.3 the result is under f32's normal range.
    let x = x.clamp(-87.3, 88.376);
    // Round to nearest by adding and taking away 1.5·2^23 (`f32::round`
    // is a libm call that stops the loop vectorising).
    const SHIFT: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + SHIFT) - SHIFT;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The error function to 1.5e-7, plus f32 rounding (Abramowitz and Stegun 7.1.26), so GELU
/// is `x · Φ(x)` as Burn and PyTorch compute it, not the tanh
/// approximation.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp(-z * z)).copysign(x)
}

#[inline(always)]
fn gelu(v: &mut [f32]) {
    for x in v {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

struct Block {
    norm_attn: Norm,
    /// Q (pre-scaled by 1/√d_k), K and V side by side.
    qkv: Dense,
    out: Dense,
    norm_ff: Norm,
    inner: Dense,
    outer: Dense,
    heads: usize,
}

/// A stack of pre-norm transformer blocks (Burn's `TransformerEncoder`
/// built by `vit::blocks`).
///
/// # Panics
/// [`Blocks::new`] panics on a Burn encoder that `vit::blocks` would not
/// build (post-norm, quiet softmax, another activation).
pub(crate) struct Blocks {
    blocks: Vec<Block>,
    width: usize,
}

/// Scratch space for one sequence, reused across blocks and calls.
#[derive(Default)]
pub(crate) struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    scores: Vec<f32>,
    hidden: Vec<f32>,
}

impl Blocks {
    pub(crate) fn new(encoder: &TransformerEncoder) -> Blocks {
        let width = encoder.d_model;
        let blocks = encoder
            .layers
            .iter()
            .map(|layer| {
                let mha = &layer.mha;
                // What this engine computes; `vit::blocks` builds exactly
                // this, and a change there must fail here, not drift.
                assert!(!mha.quiet_softmax, "the engine has no quiet softmax");
                assert!(
                    matches!(&layer.pwff.activation, burn::nn::activation::Activation::Gelu(g) if !g.approximate),
                    "the engine's feed-forward is exact GELU"
                );
                assert!(encoder.norm_first, "the engine's blocks are pre-norm");
                let scale = 1.0 / (mha.d_k as f32).sqrt();
                let mut q = Dense::new(&mha.query);
                q.weight
                    .iter_mut()
                    .chain(&mut q.bias)
                    .for_each(|v| *v *= scale);
                Block {
                    // With norm_first, Burn's norm_2 precedes attention and
                    // norm_1 the feed-forward.
                    norm_attn: Norm::new(&layer.norm_2),
                    qkv: Dense::side_by_side(&[q, Dense::new(&mha.key), Dense::new(&mha.value)]),
                    out: Dense::new(&mha.output),
                    norm_ff: Norm::new(&layer.norm_1),
                    inner: Dense::new(&layer.pwff.linear_inner),
                    outer: Dense::new(&layer.pwff.linear_outer),
                    heads: mha.n_heads,
                }
            })
            .collect();
        Blocks { blocks, width }
    }

    /// One sequence `x` (`[S, width]`, row-major) through every block, in
    /// place.
    pub(crate) fn forward(&self, x: &mut [f32], scratch: &mut Scratch) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            #[allow(unsafe_code)]
            unsafe {
                self.forward_avx2(x, scratch);
            }
            return;
        }
        self.forward_any(x, scratch);
    }

    /// [`Blocks::forward`] compiled for AVX2 (the release build targets
    /// plain x86-64, whose 4-wide SSE2 halves the element-wise loops'
    /// speed); gemm picks its own kernels at run time either way.
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn forward_avx2(&self, x: &mut [f32], scratch: &mut Scratch) {
        self.forward_any(x, scratch);
    }

    #[inline(always)]
    fn forward_any(&self, x: &mut [f32], scratch: &mut Scratch) {
        let w = self.width;
        let s = x.len() / w;
        let grow = |v: &mut Vec<f32>, n: usize| {
            if v.len() < n {
                v.resize(n, 0.0);
            }
        };
        for b in &self.blocks {
            let (heads, dk, ff) = (b.heads, w / b.heads, b.inner.d_out);
            grow(&mut scratch.normed, s * w);
            grow(&mut scratch.qkv, s * 3 * w);
            grow(&mut scratch.context, s * w);
            grow(&mut scratch.scores, s * s);
            grow(&mut scratch.hidden, s * ff);
            b.norm_attn.forward(x, &mut scratch.normed[..s * w]);
            b.qkv.forward(&scratch.normed, s, &mut scratch.qkv, false);
            let qkv = &scratch.qkv[..s * 3 * w];
            let row = Strides { row: 3 * w, col: 1 };
            for h in 0..heads {
                let scores = &mut scratch.scores[..s * s];
                // scores = Q_h · K_hᵀ (K_h read transposed through strides).
                matmul(
                    s,
                    s,
                    dk,
                    scores,
                    rows_of(s),
                    false,
                    &qkv[h * dk..],
                    row,
                    &qkv[w + h * dk..],
                    Strides { row: 1, col: 3 * w },
                );
                for r in scores.chunks_exact_mut(s) {
                    let top = max(r);
                    r.iter_mut().for_each(|v| *v = exp(*v - top));
                    let inv = 1.0 / sum(r);
                    r.iter_mut().for_each(|v| *v *= inv);
                }
                matmul(
                    s,
                    dk,
                    s,
                    &mut scratch.context[h * dk..],
                    rows_of(w),
                    false,
                    scores,
                    rows_of(s),
                    &qkv[2 * w + h * dk..],
                    row,
                );
            }
            b.out.forward(&scratch.context, s, x, true);
            b.norm_ff.forward(x, &mut scratch.normed[..s * w]);
            b.inner
                .forward(&scratch.normed, s, &mut scratch.hidden, false);
            gelu(&mut scratch.hidden[..s * ff]);
            b.outer.forward(&scratch.hidden, s, x, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{erf, exp};

    #[test]
    fn exp_matches_the_standard_library() {
        for i in -873..=883 {
            let x = i as f32 * 0.1;
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 3e-7 * want,
                "exp({x}) = {got}, not {want}"
            );
        }
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
    }

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-1.5, -0.966_105_1),
            (3.0, 0.999_977_9),
        ] {
            assert!((erf(x) - want).abs() < 5e-7, "erf({x}) = {}", erf(x));
        }
    }
}
