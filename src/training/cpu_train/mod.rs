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

use crate::models::UNet2d;
use crate::models::engine::kernels::{
    Buffers, Strides, conv_bias, conv_taps, conv3_grid, matmul, rows_of, up_taps, values,
};
use crate::models::engine::winograd;
use crate::models::unet2d::DoubleConv;
use burn::module::Param;
use burn::optim::GradientsParams;
use burn::prelude::*;
use rayon::prelude::*;

/// The feature maps of a batch: image `b`'s pixel `(y, x)` at bordered
/// pixel `(b(h + 2) + y + 1)(w + 2) + x + 1`, channels-last, every border
/// pixel zero, two guard pixels at the end.
struct Stack {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

impl Stack {
    /// A stack whose border pixels are zero; interiors unspecified.
    fn new(buffers: &Buffers, n: usize, h: usize, w: usize, c: usize) -> Stack {
        let wp = w + 2;
        let rows = n * (h + 2);
        let mut data = buffers.take((rows * wp + 2) * c);
        for (r, row) in data[..rows * wp * c].chunks_exact_mut(wp * c).enumerate() {
            if Stack::image_row(h, r).is_none() {
                row.fill(0.0);
            } else {
                row[..c].fill(0.0);
                row[(w + 1) * c..].fill(0.0);
            }
        }
        data[rows * wp * c..].fill(0.0);
        Stack { n, h, w, c, data }
    }

    fn wp(&self) -> usize {
        self.w + 2
    }

    /// Pixels of the convolution grid: every bordered pixel from the first
    /// interior one to the last (grid pixel `r` is bordered pixel
    /// `r + wp + 1`).
    fn grid(&self) -> usize {
        (self.n * (self.h + 2) - 2) * self.wp()
    }

    /// Offset of image `b`'s pixel `(y, x)`.
    fn at(&self, b: usize, y: usize, x: usize) -> usize {
        ((b * (self.h + 2) + y + 1) * self.wp() + x + 1) * self.c
    }

    /// Whether bordered pixel `q` is inside an image.
    fn inside(&self, q: usize) -> bool {
        let wp = self.wp();
        let (row, col) = ((q / wp) % (self.h + 2), q % wp);
        (1..=self.w).contains(&col) && (1..=self.h).contains(&row)
    }

    /// The image and row of bordered row `r` of a stack of `h`-row
    /// images, or `None` on a border row.
    fn image_row(h: usize, r: usize) -> Option<(usize, usize)> {
        let k = r % (h + 2);
        (1..=h).contains(&k).then(|| (r / (h + 2), k - 1))
    }

    /// `f(b, y, row)` on every image row, in parallel; `row` is the whole
    /// bordered row (`(w + 2)·c` values, its two border pixels included).
    fn par_image_rows(&mut self, f: impl Fn(usize, usize, &mut [f32]) + Sync + Send) {
        let (h, wpc) = (self.h, self.wp() * self.c);
        let rows = self.n * (h + 2);
        self.data[..rows * wpc]
            .par_chunks_mut(wpc)
            .enumerate()
            .for_each(|(r, row)| {
                if let Some((b, y)) = Stack::image_row(h, r) {
                    f(b, y, row);
                }
            });
    }

    /// `f(pixel, other's pixel, acc)` on every pixel inside the images, in
    /// parallel by rows; `f` may rewrite the pixel and adds to `width`
    /// accumulators, which are summed in f32 within a row and in f64
    /// across rows. `other` has the same layout, any channel count.
    fn fold_pixels_mut(
        &mut self,
        other: &Stack,
        width: usize,
        f: impl Fn(&mut [f32], &[f32], &mut [f32]) + Sync + Send,
    ) -> Vec<f64> {
        let (h, w, c, co) = (self.h, self.w, self.c, other.c);
        let (wpc, wpo) = (self.wp() * c, other.wp() * co);
        let rows = self.n * (h + 2);
        sum_rows(
            width,
            self.data[..rows * wpc]
                .par_chunks_mut(wpc)
                .zip(other.data[..rows * wpo].par_chunks(wpo))
                .enumerate()
                .map(|(r, (row, other_row))| {
                    Stack::image_row(h, r)?;
                    let mut acc = vec![0.0f32; width];
                    for (px, opx) in row[c..(w + 1) * c]
                        .chunks_exact_mut(c)
                        .zip(other_row[co..(w + 1) * co].chunks_exact(co))
                    {
                        f(px, opx, &mut acc);
                    }
                    Some(acc)
                }),
        )
    }

    /// Pixels inside the images.
    fn count(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// The pixels of each image row, `w · c` values, of every image in `s`.
fn interior_rows(s: &Stack) -> impl IndexedParallelIterator<Item = &[f32]> {
    let (h, w, c) = (s.h, s.w, s.c);
    let wpc = s.wp() * c;
    (0..s.n * h).into_par_iter().map(move |i| {
        let r = (i / h) * (h + 2) + i % h + 1;
        &s.data[r * wpc + c..r * wpc + (w + 1) * c]
    })
}

/// Per-channel sums of `f(value, channel)` over the pixels inside the
/// images (f32 within a row, f64 across rows).
fn channel_sums(s: &Stack, f: impl Fn(f32, usize) -> f32 + Sync + Send) -> Vec<f64> {
    let c = s.c;
    sum_rows(
        c,
        interior_rows(s).map(|row| {
            let mut acc = vec![0.0f32; c];
            for px in row.chunks_exact(c) {
                for (o, (a, &v)) in acc.iter_mut().zip(px).enumerate() {
                    *a += f(v, o);
                }
            }
            Some(acc)
        }),
    )
}

/// `out = conv3×3(x) (+ bias)` over every image of the stack with `taps`
/// `[tap][c_in][c_out]`; zero at every border pixel. Wide layers go through
/// Winograd's F(2×2, 3×3) an image at a time (each image of the stack is a
/// bordered map of its own), the rest as nine shifted products over the
/// whole stack.
fn conv3(x: &Stack, taps: &[f32], c_out: usize, bias: Option<&[f32]>, buffers: &Buffers) -> Stack {
    let (c_in, wp) = (x.c, x.wp());
    let mut out = Stack::new(buffers, x.n, x.h, x.w, c_out);
    if winograd::worth_it(c_in) && winograd::suits(x.h, x.w) {
        let u = winograd::weights(taps, c_in, c_out);
        let zeros;
        let bias = match bias {
            Some(b) => b,
            None => {
                zeros = vec![0.0; c_out];
                &zeros
            }
        };
        let (image_in, image_out) = ((x.h + 2) * wp * c_in, (x.h + 2) * wp * c_out);
        for b in 0..x.n {
            winograd::conv3(
                &x.data[b * image_in..(b + 1) * image_in],
                [x.h, x.w, c_in],
                &u,
                bias,
                false,
                c_out,
                &mut out.data[b * image_out..(b + 1) * image_out],
                buffers,
            );
        }
        return out;
    }
    let (rows, first) = (x.grid(), (wp + 1) * c_out);
    conv3_grid(
        &x.data,
        [x.h, wp, c_in],
        taps,
        c_out,
        &mut out.data[first..first + rows * c_out],
        buffers,
        |r, px| {
            if !x.inside(r + wp + 1) {
                px.fill(0.0);
            } else if let Some(bias) = bias {
                px.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
            }
        },
    );
    out
}

/// The taps of the input-gradient convolution: `W_{8−t}ᵀ`.
fn flipped(taps: &[f32], c_in: usize, c_out: usize) -> Vec<f32> {
    let mut out = vec![0.0; taps.len()];
    for t in 0..9 {
        for i in 0..c_in {
            for o in 0..c_out {
                out[((8 - t) * c_out + o) * c_in + i] = taps[(t * c_in + i) * c_out + o];
            }
        }
    }
    out
}

/// Groups a deterministic reduction splits its items into, at most.
const GROUPS: usize = 16;

/// Element-wise sum over `0..count` of what `add(part, i)` accumulates
/// into a zeroed `part` of `len` values. The items fall into at most
/// [`GROUPS`] contiguous groups fixed by `count` alone; each group
/// accumulates in item order and the groups are added in group order, so
/// the floating-point sum does not depend on the thread count or on how
/// rayon schedules the work: the same seed gives the same run, bit for bit.
fn sum_partials(len: usize, count: usize, add: impl Fn(&mut [f32], usize) + Sync) -> Vec<f32> {
    let per = count.div_ceil(GROUPS).max(1);
    let parts: Vec<Vec<f32>> = (0..count.div_ceil(per))
        .into_par_iter()
        .map(|g| {
            let mut part = vec![0.0; len];
            for i in g * per..((g + 1) * per).min(count) {
                add(&mut part, i);
            }
            part
        })
        .collect();
    let mut total = vec![0.0f32; len];
    total
        .par_chunks_mut(1 << 12)
        .enumerate()
        .for_each(|(k, chunk)| {
            for part in &parts {
                let part = &part[k << 12..][..chunk.len()];
                chunk.iter_mut().zip(part).for_each(|(t, p)| *t += p);
            }
        });
    total
}

/// `dW_t = X_tᵀ · dZ` for the nine taps (`[tap][c_in][c_out]`), a tile
/// of grid rows at a time so that the nine products reread the tile from
/// cache rather than memory.
fn conv3_weight_grad(x: &Stack, dz: &Stack) -> Vec<f32> {
    let (c_in, c_out, wp) = (x.c, dz.c, x.wp());
    let rows = x.grid();
    let tile = ((1usize << 17) / (c_in + c_out)).clamp(128, 4096);
    let len = 9 * c_in * c_out;
    sum_partials(len, rows.div_ceil(tile), |part, ti| {
        let r0 = ti * tile;
        let k = tile.min(rows - r0);
        for t in 0..9 {
            let shift = (t / 3) * wp + t % 3;
            matmul(
                c_in,
                c_out,
                k,
                &mut part[t * c_in * c_out..],
                rows_of(c_out),
                true,
                &x.data[(r0 + shift) * c_in..],
                Strides { row: 1, col: c_in },
                &dz.data[(r0 + wp + 1) * c_out..],
                rows_of(c_out),
            );
        }
    })
}

/// `Σ` over the pixels of channels `c0..c0 + k` of `s`.
fn bias_grad(s: &Stack, c0: usize, k: usize) -> Vec<f32> {
    let c = s.c;
    sum_rows(
        k,
        interior_rows(s).map(|row| {
            let mut acc = vec![0.0f32; k];
            for px in row.chunks_exact(c) {
                acc.iter_mut()
                    .zip(&px[c0..c0 + k])
                    .for_each(|(a, v)| *a += v);
            }
            Some(acc)
        }),
    )
    .into_iter()
    .map(|v| v as f32)
    .collect()
}

/// One convolution + BatchNorm + ReLU, as the backward needs it.
struct UnitTape {
    /// The normalised convolution output `x̂`.
    xhat: Stack,
    inv_std: Vec<f32>,
}

/// A DoubleConv's saved maps: its input, the first unit's output and its
/// own output.
struct DoubleTape {
    input: Stack,
    u1: UnitTape,
    mid: Stack,
    u2: UnitTape,
    out: Stack,
}

/// A convolution + BatchNorm pair's trainable values.
struct UnitWeights<'m> {
    taps: Vec<f32>,
    bias: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    conv: &'m burn::nn::conv::Conv2d,
    bn: &'m burn::nn::BatchNorm,
}

impl<'m> UnitWeights<'m> {
    fn new(conv: &'m burn::nn::conv::Conv2d, bn: &'m burn::nn::BatchNorm) -> Self {
        UnitWeights {
            taps: conv_taps(conv),
            bias: conv_bias(conv),
            gamma: values(bn.gamma.val()),
            beta: values(bn.beta.val()),
            conv,
            bn,
        }
    }

    fn c_out(&self) -> usize {
        self.bias.len()
    }

    /// Convolution, batch-statistics BatchNorm (the running statistics
    /// updated as Burn's BatchNorm does) and ReLU.
    fn forward(&self, x: &Stack, buffers: &Buffers) -> (UnitTape, Stack) {
        let c = self.c_out();
        let mut z = conv3(x, &self.taps, c, Some(&self.bias), buffers);
        let count = z.count() as f64;
        // Two passes (mean, then squared deviations), as Burn computes them.
        let mean: Vec<f64> = channel_sums(&z, |v, _| v)
            .iter()
            .map(|s| s / count)
            .collect();
        let meanf: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let squares = channel_sums(&z, |v, o| (v - meanf[o]).powi(2));
        let var: Vec<f64> = squares.iter().map(|s| s / count).collect();
        let eps = self.bn.epsilon;
        let inv_std: Vec<f32> = var
            .iter()
            .map(|v| (1.0 / (v + eps).sqrt()) as f32)
            .collect();
        self.update_running(&mean, &var);
        let mut y = Stack::new(buffers, z.n, z.h, z.w, c);
        let wpc = z.wp() * c;
        z.data[..z.n * (z.h + 2) * wpc]
            .par_chunks_mut(wpc)
            .zip(y.data.par_chunks_mut(wpc))
            .enumerate()
            .for_each(|(r, (zr, yr))| {
                if Stack::image_row(z.h, r).is_none() {
                    return;
                }
                for (zp, yp) in zr[c..(z.w + 1) * c]
                    .chunks_exact_mut(c)
                    .zip(yr[c..(z.w + 1) * c].chunks_exact_mut(c))
                {
                    for o in 0..c {
                        let xh = (zp[o] - meanf[o]) * inv_std[o];
                        zp[o] = xh;
                        yp[o] = (self.gamma[o] * xh + self.beta[o]).max(0.0);
                    }
                }
            });
        (UnitTape { xhat: z, inv_std }, y)
    }

    fn update_running(&self, mean: &[f64], var: &[f64]) {
        let m = self.bn.momentum;
        let blend = |state: &burn::module::RunningState<Tensor<1>>, batch: &[f64]| {
            let old = state.value_sync();
            let device = old.device();
            let new: Vec<f32> = values(old)
                .iter()
                .zip(batch)
                .map(|(&o, &b)| (f64::from(o) * (1.0 - m) + b * m) as f32)
                .collect();
            state.update(Tensor::from_data(
                TensorData::new(new, [batch.len()]),
                &device,
            ));
        };
        blend(&self.bn.running_mean, mean);
        blend(&self.bn.running_var, var);
    }

    /// Turn `d` (the gradient of the unit's output) into the gradient of
    /// the convolution output, in place; returns the gradients of γ, β and
    /// the convolution's bias.
    fn bn_relu_backward(&self, tape: &UnitTape, d: &mut Stack) -> [Vec<f32>; 3] {
        let c = d.c;
        let (gamma, beta) = (&self.gamma[..c], &self.beta[..c]);
        // Pass 1: the ReLU's mask applied, Σ g and Σ g·x̂ per channel.
        let sums = d.fold_pixels_mut(&tape.xhat, 2 * c, |g, x, acc| {
            let (sb, sg) = acc.split_at_mut(c);
            // Branch-free, so that it vectorises.
            let lanes = g.iter_mut().zip(x).zip(gamma.iter().zip(beta));
            for (((g, &x), (&ga, &be)), (sb, sg)) in lanes.zip(sb.iter_mut().zip(sg.iter_mut())) {
                *g *= f32::from(u8::from(ga * x + be > 0.0));
                *sb += *g;
                *sg += *g * x;
            }
        });
        let count = d.count() as f64;
        let mean_b: Vec<f32> = sums[..c].iter().map(|s| (s / count) as f32).collect();
        let mean_g: Vec<f32> = sums[c..].iter().map(|s| (s / count) as f32).collect();
        let scale: Vec<f32> = (0..c).map(|o| gamma[o] * tape.inv_std[o]).collect();
        // Pass 2: dz = γ/σ · (g − mean g − x̂ · mean g·x̂), and Σ dz.
        let dbias = d.fold_pixels_mut(&tape.xhat, c, |g, x, acc| {
            let (g, x, acc) = (&mut g[..c], &x[..c], &mut acc[..c]);
            let (scale, mean_b, mean_g) = (&scale[..c], &mean_b[..c], &mean_g[..c]);
            for o in 0..c {
                let v = scale[o] * (g[o] - mean_b[o] - x[o] * mean_g[o]);
                g[o] = v;
                acc[o] += v;
            }
        });
        let f32s = |v: &[f64]| v.iter().map(|&s| s as f32).collect::<Vec<f32>>();
        [f32s(&sums[c..]), f32s(&sums[..c]), f32s(&dbias)]
    }
}

/// Per-row partial sums (f32) added up in f64, in row order, so the
/// result does not depend on the thread count or on scheduling (see
/// [`sum_partials`]). Rows given as `None` add nothing.
fn sum_rows(width: usize, rows: impl IndexedParallelIterator<Item = Option<Vec<f32>>>) -> Vec<f64> {
    let rows: Vec<Option<Vec<f32>>> = rows.collect();
    let mut acc = vec![0.0f64; width];
    for row in rows.into_iter().flatten() {
        acc.iter_mut()
            .zip(row)
            .for_each(|(a, v)| *a += f64::from(v));
    }
    acc
}

/// Gradients of one convolution + BatchNorm pair.
struct UnitGrads {
    taps: Vec<f32>,
    bias: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct DoubleWeights<'m>(UnitWeights<'m>, UnitWeights<'m>);

impl<'m> DoubleWeights<'m> {
    fn new(d: &'m DoubleConv) -> Self {
        let (c1, b1, c2, b2) = d.parts();
        DoubleWeights(UnitWeights::new(c1, b1), UnitWeights::new(c2, b2))
    }

    fn forward(&self, input: Stack, buffers: &Buffers) -> DoubleTape {
        let (u1, mid) = self.0.forward(&input, buffers);
        let (u2, out) = self.1.forward(&mid, buffers);
        DoubleTape {
            input,
            u1,
            mid,
            u2,
            out,
        }
    }

    /// From the gradient of the output to the parameters' and (when
    /// `input_grad`) the input's.
    fn backward(
        &self,
        tape: DoubleTape,
        mut d: Stack,
        input_grad: bool,
        buffers: &Buffers,
    ) -> ([UnitGrads; 2], Option<Stack>) {
        let [g2, b2, c2] = self.1.bn_relu_backward(&tape.u2, &mut d);
        let w2 = conv3_weight_grad(&tape.mid, &d);
        let c_mid = self.0.c_out();
        let mut dmid = conv3(
            &d,
            &flipped(&self.1.taps, c_mid, self.1.c_out()),
            c_mid,
            None,
            buffers,
        );
        buffers.give(d.data);
        let [g1, b1, c1] = self.0.bn_relu_backward(&tape.u1, &mut dmid);
        let w1 = conv3_weight_grad(&tape.input, &dmid);
        let c_in = tape.input.c;
        let dinput = input_grad.then(|| {
            conv3(
                &dmid,
                &flipped(&self.0.taps, c_in, c_mid),
                c_in,
                None,
                buffers,
            )
        });
        buffers.give(dmid.data);
        for s in [tape.input, tape.mid, tape.out, tape.u1.xhat, tape.u2.xhat] {
            buffers.give(s.data);
        }
        let unit = |taps, bias, gamma, beta| UnitGrads {
            taps,
            bias,
            gamma,
            beta,
        };
        ([unit(w1, c1, g1, b1), unit(w2, c2, g2, b2)], dinput)
    }
}

/// 2×2 max-pooling, stride 2.
fn pool(x: &Stack, buffers: &Buffers) -> Stack {
    let (h, w, c) = (x.h / 2, x.w / 2, x.c);
    let mut out = Stack::new(buffers, x.n, h, w, c);
    out.par_image_rows(|b, y, row| {
        for xx in 0..w {
            let o = (xx + 1) * c;
            let a = x.at(b, 2 * y, 2 * xx);
            let d = x.at(b, 2 * y + 1, 2 * xx);
            for k in 0..c {
                row[o + k] = x.data[a + k]
                    .max(x.data[a + c + k])
                    .max(x.data[d + k])
                    .max(x.data[d + c + k]);
            }
        }
    });
    out
}

/// Add the pooled map's gradient `dp` to `dx` at each window's maximum of
/// `x` (the first one on ties).
fn pool_backward(x: &Stack, dp: &Stack, dx: &mut Stack) {
    let (h, w, c) = (dp.h, dp.w, dp.c);
    let image = (x.h + 2) * x.wp() * c;
    dx.data[..x.n * image]
        .par_chunks_mut(image)
        .enumerate()
        .for_each(|(b, dxi)| {
            let base = b * image;
            for y in 0..h {
                for xx in 0..w {
                    let p = dp.at(b, y, xx);
                    let a = x.at(b, 2 * y, 2 * xx);
                    let d = x.at(b, 2 * y + 1, 2 * xx);
                    for k in 0..c {
                        let window = [a + k, a + c + k, d + k, d + c + k];
                        let at = window
                            .into_iter()
                            .reduce(|best, i| if x.data[i] > x.data[best] { i } else { best })
                            .unwrap_or(a + k);
                        dxi[at - base] += dp.data[p + k];
                    }
                }
            }
        });
}

/// A transposed 2×2 convolution's values.
struct UpWeights<'m> {
    taps: Vec<f32>,
    bias: Vec<f32>,
    up: &'m burn::nn::conv::ConvTranspose2d,
}

impl UpWeights<'_> {
    fn c_out(&self) -> usize {
        self.bias.len()
    }

    /// `[up(x), skip]`, the decoder's input.
    fn forward_cat(&self, x: &Stack, skip: &Stack, buffers: &Buffers) -> Stack {
        let (h, w, f) = (2 * x.h, 2 * x.w, self.c_out());
        let c = f + skip.c;
        let c_in = x.c;
        let mut out = Stack::new(buffers, x.n, h, w, c);
        out.par_image_rows(|b, y, row| {
            for xx in 0..w {
                let o = (xx + 1) * c;
                row[o..o + f].copy_from_slice(&self.bias);
                let s = skip.at(b, y, xx);
                row[o + f..o + c].copy_from_slice(&skip.data[s..s + skip.c]);
            }
            let (iy, ky) = (y / 2, y % 2);
            for kx in 0..2 {
                matmul(
                    x.w,
                    f,
                    c_in,
                    &mut row[(kx + 1) * c..],
                    Strides { row: 2 * c, col: 1 },
                    true,
                    &x.data[x.at(b, iy, 0)..],
                    rows_of(c_in),
                    &self.taps[(ky * 2 + kx) * c_in * f..],
                    rows_of(f),
                );
            }
        });
        out
    }

    /// From the gradient of the concatenated map to the gradients of `x`
    /// (the low-resolution input), the weights, the bias and the skip.
    fn backward(
        &self,
        x: &Stack,
        dcat: &Stack,
        buffers: &Buffers,
    ) -> (Stack, Vec<f32>, Vec<f32>, Stack) {
        let (f, c, c_in) = (self.c_out(), dcat.c, x.c);
        let (h, w) = (dcat.h, dcat.w);
        let mut dskip = Stack::new(buffers, x.n, h, w, c - f);
        let s = c - f;
        dskip.par_image_rows(|b, y, row| {
            for xx in 0..w {
                let at = dcat.at(b, y, xx);
                row[(xx + 1) * s..(xx + 2) * s].copy_from_slice(&dcat.data[at + f..at + c]);
            }
        });
        let mut dx = Stack::new(buffers, x.n, x.h, x.w, c_in);
        dx.par_image_rows(|b, iy, row| {
            for t in 0..4 {
                let (ky, kx) = (t / 2, t % 2);
                matmul(
                    x.w,
                    c_in,
                    f,
                    &mut row[c_in..],
                    rows_of(c_in),
                    t > 0,
                    &dcat.data[dcat.at(b, 2 * iy + ky, kx)..],
                    Strides { row: 2 * c, col: 1 },
                    &self.taps[t * c_in * f..],
                    Strides { row: 1, col: f },
                );
            }
        });
        let len = 4 * c_in * f;
        let dw = sum_partials(len, x.n * x.h, |part, r| {
            let (b, iy) = (r / x.h, r % x.h);
            for t in 0..4 {
                let (ky, kx) = (t / 2, t % 2);
                matmul(
                    c_in,
                    f,
                    x.w,
                    &mut part[t * c_in * f..],
                    rows_of(f),
                    true,
                    &x.data[x.at(b, iy, 0)..],
                    Strides { row: 1, col: c_in },
                    &dcat.data[dcat.at(b, 2 * iy + ky, kx)..],
                    Strides { row: 2 * c, col: 1 },
                );
            }
        });
        (dx, dw, bias_grad(dcat, 0, f), dskip)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{DeviceChoice, UNet2dConfig, device, max_abs, max_abs_diff};
    use crate::training::loss::bce;
    use burn::module::ModuleVisitor;
    use burn::optim::AdamConfig;
    use burn::tensor::Distribution;

    /// Every float parameter's gradient (or value, for running
    /// statistics, which have none), in visiting order.
    struct Collect<'a>(&'a GradientsParams, Vec<(String, Option<Vec<f32>>)>);

    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let grad = self.0.get::<D>(param.id).map(values);
            self.1.push((format!("{:?}", param.dims()), grad));
        }
    }

    #[test]
    fn gradients_and_running_statistics_match_burns_autodiff() {
        let _serial = crate::models::SEEDED.lock();
        // Narrow layers (direct convolutions only), then layers wide enough
        // for Winograd's F(2×2, 3×3) in the forward and input-gradient
        // convolutions.
        check_against_autodiff(vec![4, 8], 16, [2, 16, 24]);
        check_against_autodiff(vec![16, 32], 32, [2, 16, 64]);
    }

    fn check_against_autodiff(features: Vec<usize>, bottleneck: usize, [n, h, w]: [usize; 3]) {
        let dev = device(DeviceChoice::Cpu);
        dev.seed(11);
        let ad = dev.clone().autodiff();
        let config = UNet2dConfig::new(3, 5)
            .with_features(features)
            .with_bottleneck(bottleneck);
        let x = Tensor::<4>::random([n, 3, h, w], Distribution::Normal(0.5, 2.0), &ad);
        let y = Tensor::<4>::random([n, 5, h, w], Distribution::Uniform(0.0, 1.0), &ad)
            .greater_elem(0.5)
            .float();
        // One optimiser step first, so that γ, β and the biases are not at
        // their initial ones and zeros.
        // Two identical models: the second loads the first's initial record
        // (a clone would share its running statistics; re-seeding is not
        // enough while other tests draw from the same generator), then both
        // take the same step.
        dev.seed(5);
        let init = config.init(&ad);
        let copy = config.init(&ad).load_record(init.clone().into_record());
        let step = |m: UNet2d| {
            let grads =
                GradientsParams::from_grads(bce(m.forward(x.clone()), y.clone()).backward(), &m);
            AdamConfig::new().init().step(0.05, m, grads)
        };
        let (a, b) = (step(init), step(copy));

        let want_logits = a.forward(x.clone());
        let want = GradientsParams::from_grads(bce(want_logits.clone(), y.clone()).backward(), &a);

        let trainer = CpuTrainer::new();
        let (logits, pass) = trainer.forward(&b, &values(x.clone()), n, h, w);
        let want_logits = values(want_logits);
        let scale = max_abs(&want_logits);
        let worst = max_abs_diff(&logits, &want_logits);
        assert!(worst <= 1e-4 * scale.max(1.0), "logits differ by {worst}");
        let lt = Tensor::<4>::from_data(TensorData::new(logits, [n, 5, h, w]), &ad).require_grad();
        let dl = lt
            .grad(&bce(lt.clone(), y).backward())
            .expect("logits gradient");
        let got = pass.backward(&values(dl), &dev);

        let mut ca = Collect(&want, Vec::new());
        a.visit(&mut ca);
        let mut cb = Collect(&got, Vec::new());
        b.visit(&mut cb);
        assert_eq!(ca.1.len(), cb.1.len());
        let mut checked = 0;
        for ((shape, ga), (_, gb)) in ca.1.iter().zip(&cb.1) {
            match (ga, gb) {
                (Some(ga), Some(gb)) => {
                    let scale = max_abs(ga);
                    let worst = max_abs_diff(ga, gb);
                    assert!(
                        worst <= 1e-3 * scale + 1e-6,
                        "gradient of a {shape} parameter: max |diff| {worst}, scale {scale}"
                    );
                    checked += 1;
                }
                (None, None) => {}
                _ => panic!("a {shape} parameter has a gradient in one pass only"),
            }
        }
        // 2 encoders + bottleneck + 2 decoders: 5 × (2 × 4) + 2 ups × 2 + head 2.
        assert_eq!(checked, 46);

        // The running statistics moved the same way: equal eval outputs.
        let probe = Tensor::<4>::random([1, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
        let ea = values(a.valid().forward(probe.clone()));
        let eb = values(b.valid().forward(probe));
        let worst = max_abs_diff(&ea, &eb);
        assert!(
            worst <= 1e-4 * max_abs(&ea).max(1.0),
            "eval outputs differ by {worst}"
        );
    }
}
