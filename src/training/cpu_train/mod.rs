//! U-Net training passes on the CPU without autodiff: a train-mode forward
//! (BatchNorm on batch statistics) that keeps what the backward needs, and
//! a hand-written backward that returns every parameter's gradient as
//! Burn's [`GradientsParams`]. Gradient clipping, accumulation, the
//! optimiser and checkpoints stay Burn's; the loss and its gradient with
//! respect to the logits come from [`crate::training::loss_grad`].
//!
//! Why it exists: a training step through Burn's flex autodiff ran at
//! 0.4× PyTorch's speed on the seed U-Net (BENCHMARKS.md) — every
//! convolution and its two backward products convert layouts and build
//! im2col buffers, and BatchNorm, ReLU, pooling and concatenation are
//! separate passes, each with its own saved tensors. Here, as in the
//! inference engine ([`crate::models::engine`]), maps stay channels-last with a
//! zero border, so each 3×3 product is nine matrix products on shifted
//! views:
//! - forward `Z = Σ_t X_t · W_t`;
//! - input gradient: the same convolution of `dZ` with the taps flipped
//!   and transposed (`W_{8−t}ᵀ`), because the zero border plays the role
//!   of the padding in both directions;
//! - weight gradient `dW_t = X_tᵀ · dZ`, one long product per tap.
//!
//! The images of a batch are stacked in one buffer, each with its own
//! border, so one product covers the whole batch; grid positions that fall
//! on a border are zeroed after each product and excluded from the
//! BatchNorm statistics. Checked against Burn's autodiff gradients in the
//! tests.

mod layers;
mod stack;
#[cfg(test)]
mod tests;

use crate::models::UNet2d;
use crate::models::engine::kernels::{
    Buffers, Strides, conv_bias, conv_taps, matmul, rows_of, up_taps,
};
use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use layers::{DoubleTape, DoubleWeights, UnitGrads, UnitWeights, UpWeights};
use rayon::prelude::*;
use stack::{Stack, pool, pool_backward, sum_partials};

/// The network's values for one pass, borrowed from the Burn model whose
/// parameter ids receive the gradients.
struct Weights<'m> {
    encoders: Vec<DoubleWeights<'m>>,
    bottleneck: DoubleWeights<'m>,
    ups: Vec<UpWeights<'m>>,
    decoders: Vec<DoubleWeights<'m>>,
    head: Vec<f32>,
    head_bias: Vec<f32>,
    head_conv: &'m burn::nn::conv::Conv2d,
    in_channels: usize,
}

impl<'m> Weights<'m> {
    fn new(model: &'m UNet2d) -> Self {
        let (encoders, bottleneck, ups, decoders, head) = model.parts();
        Weights {
            in_channels: encoders.first().map_or(0, |d| d.parts().0.weight.dims()[1]),
            encoders: encoders.iter().map(DoubleWeights::new).collect(),
            bottleneck: DoubleWeights::new(bottleneck),
            ups: ups
                .iter()
                .map(|up| {
                    let (taps, bias) = up_taps(up);
                    UpWeights { taps, bias, up }
                })
                .collect(),
            decoders: decoders.iter().map(DoubleWeights::new).collect(),
            head: conv_taps(head),
            head_bias: conv_bias(head),
            head_conv: head,
        }
    }
}

/// Activation buffers recycled across steps (a step at 256×256 touches
/// about a gigabyte; fresh pages would cost more than the arithmetic).
#[derive(Default)]
pub struct CpuTrainer {
    buffers: Buffers,
}

/// A forward pass waiting for its backward.
pub struct Pass<'m> {
    weights: Weights<'m>,
    encoders: Vec<DoubleTape>,
    bottleneck: DoubleTape,
    decoders: Vec<DoubleTape>,
    buffers: &'m Buffers,
}

impl CpuTrainer {
    /// A trainer with an empty buffer pool.
    pub fn new() -> CpuTrainer {
        CpuTrainer::default()
    }

    /// The train-mode forward pass of `model` on `[n, in, h, w]` input
    /// values: logits `[n, out, h, w]` (row-major) and the pass to run
    /// backward. Updates the BatchNorm running statistics as Burn's
    /// train-mode forward does. `h` and `w` must be multiples of 2^levels.
    pub fn forward<'m>(
        &'m self,
        model: &'m UNet2d,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> (Vec<f32>, Pass<'m>) {
        let buffers = &self.buffers;
        let weights = Weights::new(model);
        let c_in = weights.in_channels;
        let plane = h * w;
        let mut x = Stack::new(buffers, n, h, w, c_in);
        for b in 0..n {
            for y in 0..h {
                for xx in 0..w {
                    let o = x.at(b, y, xx);
                    for c in 0..c_in {
                        x.data[o + c] = input[((b * c_in + c) * h + y) * w + xx];
                    }
                }
            }
        }
        let mut encoders: Vec<DoubleTape> = Vec::with_capacity(weights.encoders.len());
        for enc in &weights.encoders {
            let tape = enc.forward(x, buffers);
            x = pool(&tape.out, buffers);
            encoders.push(tape);
        }
        let bottleneck = weights.bottleneck.forward(x, buffers);
        let mut decoders: Vec<DoubleTape> = Vec::with_capacity(weights.decoders.len());
        for ((up, dec), skip) in weights
            .ups
            .iter()
            .zip(&weights.decoders)
            .zip(encoders.iter().rev())
        {
            let low = decoders.last().map_or(&bottleneck.out, |d| &d.out);
            let cat = up.forward_cat(low, &skip.out, buffers);
            decoders.push(dec.forward(cat, buffers));
        }
        let last = decoders.last().map_or(&bottleneck.out, |d| &d.out);
        let out = weights.head_bias.len();
        // Every value is written below.
        let mut logits = buffers.take(n * out * plane);
        logits
            .par_chunks_mut(out * plane)
            .enumerate()
            .for_each(|(b, image)| {
                for y in 0..h {
                    matmul(
                        w,
                        out,
                        last.c,
                        &mut image[y * w..],
                        Strides { row: 1, col: plane },
                        false,
                        &last.data[last.at(b, y, 0)..],
                        rows_of(last.c),
                        &weights.head,
                        rows_of(out),
                    );
                }
                for (o, bias) in weights.head_bias.iter().enumerate() {
                    image[o * plane..(o + 1) * plane]
                        .iter_mut()
                        .for_each(|v| *v += bias);
                }
            });
        let pass = Pass {
            weights,
            encoders,
            bottleneck,
            decoders,
            buffers,
        };
        (logits, pass)
    }
}

impl CpuTrainer {
    /// One batch's loss and parameter gradients: the engine's forward,
    /// `loss` (the loss of the `[n, out, h, w]` logits and its gradient
    /// with respect to them, e.g. [`crate::training::loss_grad`]) and the
    /// engine's backward. When the loss is not finite the backward is
    /// skipped and the gradients are empty.
    pub fn step<'g>(
        &self,
        model: &UNet2d,
        input: &[f32],
        [n, h, w]: [usize; 3],
        loss: impl FnOnce(&[f32]) -> (f32, &'g [f32]),
        device: &Device,
    ) -> (f32, GradientsParams) {
        let (logits, pass) = self.forward(model, input, n, h, w);
        let (value, dlogits) = loss(&logits);
        self.buffers.give(logits);
        if !value.is_finite() {
            return (value, GradientsParams::new());
        }
        (value, pass.backward(dlogits, device))
    }
}

impl Pass<'_> {
    /// Backward from the logits' gradient (`[n, out, h, w]`, row-major) to
    /// every parameter's gradient, as tensors on `device` (the non-autodiff
    /// device the optimiser works on).
    pub fn backward(self, dlogits: &[f32], device: &Device) -> GradientsParams {
        let Pass {
            weights,
            encoders,
            bottleneck,
            mut decoders,
            buffers,
        } = self;
        let mut grads = GradientsParams::new();
        let last = decoders.last().map_or(&bottleneck.out, |d| &d.out);
        let (n, h, w, c) = (last.n, last.h, last.w, last.c);
        let out = weights.head_bias.len();
        let plane = h * w;
        // Head: dX = dL · Hᵀ per image row, dH = Xᵀ · dL, db = Σ dL.
        let mut d = Stack::new(buffers, n, h, w, c);
        d.par_image_rows(|b, y, row| {
            matmul(
                w,
                c,
                out,
                &mut row[c..],
                rows_of(c),
                false,
                &dlogits[b * out * plane + y * w..],
                Strides { row: 1, col: plane },
                &weights.head,
                Strides { row: 1, col: out },
            );
        });
        let len = c * out;
        let dhead = sum_partials(len, n * h, |part, r| {
            let (b, y) = (r / h, r % h);
            matmul(
                c,
                out,
                w,
                part,
                rows_of(out),
                true,
                &last.data[last.at(b, y, 0)..],
                Strides { row: 1, col: c },
                &dlogits[b * out * plane + y * w..],
                Strides { row: 1, col: plane },
            );
        });
        let dhead_bias: Vec<f32> = (0..out)
            .into_par_iter()
            .map(|o| {
                (0..n)
                    .map(|b| {
                        let p = &dlogits[(b * out + o) * plane..(b * out + o + 1) * plane];
                        p.iter().map(|&v| f64::from(v)).sum::<f64>()
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        register_conv(&mut grads, weights.head_conv, dhead, dhead_bias, 1, device);

        // Decoders, deepest last in `decoders`: walk them from the top.
        let mut skip_grads: Vec<Stack> = Vec::with_capacity(encoders.len());
        let levels = weights.decoders.len();
        for j in (0..levels).rev() {
            let tape = decoders.pop().expect("one tape per decoder");
            let ([u1, u2], dcat) = weights.decoders[j].backward(tape, d, true, buffers);
            register_unit(&mut grads, &weights.decoders[j].0, u1, device);
            register_unit(&mut grads, &weights.decoders[j].1, u2, device);
            let dcat = dcat.expect("decoder input gradient");
            let low = decoders.last().map_or(&bottleneck.out, |t| &t.out);
            let up = &weights.ups[j];
            let (dlow, dw, db, dskip) = up.backward(low, &dcat, buffers);
            buffers.give(dcat.data);
            register_up(&mut grads, up, dw, db, device);
            skip_grads.push(dskip);
            d = dlow;
        }
        // `skip_grads` now runs shallow to deep.
        let ([u1, u2], dpooled) = weights.bottleneck.backward(bottleneck, d, true, buffers);
        register_unit(&mut grads, &weights.bottleneck.0, u1, device);
        register_unit(&mut grads, &weights.bottleneck.1, u2, device);
        let mut dp = dpooled.expect("bottleneck input gradient");
        let mut encoders = encoders;
        for i in (0..encoders.len()).rev() {
            let tape = encoders.pop().expect("one tape per encoder");
            let mut dout = skip_grads.pop().expect("one skip gradient per level");
            pool_backward(&tape.out, &dp, &mut dout);
            buffers.give(dp.data);
            let (units, dinput) = weights.encoders[i].backward(tape, dout, i > 0, buffers);
            let [u1, u2] = units;
            register_unit(&mut grads, &weights.encoders[i].0, u1, device);
            register_unit(&mut grads, &weights.encoders[i].1, u2, device);
            match dinput {
                Some(next) => dp = next,
                None => break,
            }
        }
        grads
    }
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn register_param<const D: usize>(
    grads: &mut GradientsParams,
    param: &Param<Tensor<D>>,
    v: Vec<f32>,
    device: &Device,
) {
    grads.register(param.id, tensor(v, param.dims(), device));
}

/// A convolution's gradients from `[tap][c_in][c_out]` to Burn's
/// `[c_out][c_in][k][k]`.
fn register_conv(
    grads: &mut GradientsParams,
    conv: &burn::nn::conv::Conv2d,
    taps: Vec<f32>,
    bias: Vec<f32>,
    k2: usize,
    device: &Device,
) {
    let [c_out, c_in, _, _] = conv.weight.dims();
    let mut w = vec![0.0; taps.len()];
    for t in 0..k2 {
        for i in 0..c_in {
            for o in 0..c_out {
                w[(o * c_in + i) * k2 + t] = taps[(t * c_in + i) * c_out + o];
            }
        }
    }
    register_param(grads, &conv.weight, w, device);
    if let Some(b) = &conv.bias {
        register_param(grads, b, bias, device);
    }
}

fn register_unit(grads: &mut GradientsParams, u: &UnitWeights, g: UnitGrads, device: &Device) {
    register_conv(grads, u.conv, g.taps, g.bias, 9, device);
    register_param(grads, &u.bn.gamma, g.gamma, device);
    register_param(grads, &u.bn.beta, g.beta, device);
}

fn register_up(
    grads: &mut GradientsParams,
    up: &UpWeights,
    taps: Vec<f32>,
    bias: Vec<f32>,
    device: &Device,
) {
    let [c_in, c_out, _, _] = up.up.weight.dims();
    let mut w = vec![0.0; taps.len()];
    for t in 0..4 {
        for i in 0..c_in {
            for o in 0..c_out {
                w[(i * c_out + o) * 4 + t] = taps[(t * c_in + i) * c_out + o];
            }
        }
    }
    register_param(grads, &up.up.weight, w, device);
    if let Some(b) = &up.up.bias {
        register_param(grads, b, bias, device);
    }
}
