//! U-Net inference on the CPU without a tensor framework: the trained
//! [`UNet2d`]'s weights are copied once into plain `f32` layouts with each
//! BatchNorm folded into its convolution, and the forward pass runs on
//! channels-last buffers through the `gemm` crate.
//!
//! Why it exists: segmenting a scan is the CPU path users wait on, and
//! Burn's flex backend reached 0.46× PyTorch's speed on the seed U-Net
//! (BENCHMARKS.md). Per convolution it converts NCHW to NHWC and back,
//! builds an im2col buffer, and runs BatchNorm, ReLU and the skip
//! concatenations as separate passes over memory. Here activations stay
//! channels-last with a one-pixel zero border, so a 3×3 convolution is nine
//! matrix products whose left operands are the input shifted by a constant
//! offset (no im2col); the products land directly inside the next layer's
//! bordered buffer; bias and ReLU are one in-place pass; the transposed
//! convolution writes straight into the first half of the decoder's
//! concatenated input, the skip into the second half. Layers with ≥ 16
//! input channels on maps ≥ 32 pixels wide take Winograd's F(2×2, 3×3)
//! instead (the `winograd` module): 4/9 of the arithmetic.
//!
//! This is inference (eval-mode BatchNorm), checked against Burn's forward
//! in tests; training's passes live in `training::cpu_train`, which shares
//! the products, weight layouts and buffer pool of [`super::kernels`].
//!
//! Layout: a `Map` of `h`×`w` pixels and `c` channels stores pixel `(y, x)`
//! at `((y + 1)(w + 2) + x + 1) · c` — a zero border all round plus two
//! guard pixels at the end, which the shifted reads of the last row touch.
//!
//! Memory, not arithmetic, is the limit on a small machine: writing a
//! fresh 8 MB map costs more in page faults than its convolution's
//! arithmetic, so activation buffers are recycled (`Buffers`) and only
//! their borders re-zeroed.

use super::kernels::{
    Buffers, Map, Strides, conv_bias, conv_taps, conv3_grid, matmul, rows_of, up_taps, values,
};
use crate::models::UNet2d;
use rayon::prelude::*;

/// A 3×3 convolution with its BatchNorm folded in.
struct Conv3 {
    /// `[tap = ky·3 + kx][c_in][c_out]`.
    weight: Vec<f32>,
    /// The same weights for Winograd's F(2×2, 3×3) ([`super::winograd`]),
    /// `[ξ][c_in][c_out]`; empty for narrow inputs, which stay direct.
    winograd: Vec<f32>,
    bias: Vec<f32>,
    c_in: usize,
    c_out: usize,
}

/// Conv → BN → ReLU, twice.
struct Double(Conv3, Conv3);

/// A 2×2 stride-2 transposed convolution.
struct Up {
    /// `[tap = ky·2 + kx][c_in][c_out]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    c_in: usize,
    c_out: usize,
}

/// The U-Net's weights, ready for [`CpuUnet::forward`].
pub struct CpuUnet {
    encoders: Vec<Double>,
    bottleneck: Double,
    ups: Vec<Up>,
    decoders: Vec<Double>,
    /// 1×1 head `[c_in][c_out]`.
    head: Vec<f32>,
    head_bias: Vec<f32>,
    in_channels: usize,
    out_channels: usize,
    buffers: Buffers,
}

fn conv3(conv: &burn::nn::conv::Conv2d, bn: &burn::nn::BatchNorm) -> Conv3 {
    let [c_out, c_in, kh, kw] = conv.weight.dims();
    debug_assert_eq!((kh, kw), (3, 3));
    let mut weight = conv_taps(conv);
    let b = conv_bias(conv);
    let gamma = values(bn.gamma.val());
    let beta = values(bn.beta.val());
    let mean = values(bn.running_mean.value());
    let var = values(bn.running_var.value());
    let scale: Vec<f32> = (0..c_out)
        .map(|o| gamma[o] / (var[o] + bn.epsilon as f32).sqrt())
        .collect();
    for tap in weight.chunks_exact_mut(c_out) {
        for (v, s) in tap.iter_mut().zip(&scale) {
            *v *= s;
        }
    }
    let bias = (0..c_out)
        .map(|o| (b[o] - mean[o]) * scale[o] + beta[o])
        .collect();
    Conv3 {
        winograd: if super::winograd::worth_it(c_in) {
            super::winograd::weights(&weight, c_in, c_out)
        } else {
            Vec::new()
        },
        weight,
        bias,
        c_in,
        c_out,
    }
}

impl Conv3 {
    /// Convolve `input` into a new map, with bias and ReLU.
    ///
    /// Output row `r` of the padded-width grid is pixel `(r / wp, r % wp)`
    /// (`wp = w + 2`); it reads bordered input pixels `r + ky·wp + kx` and is
    /// written at bordered position `r + wp + 1`. Columns `w` and `w + 1` of
    /// each row land on border pixels and are zeroed after the products
    /// ([`conv3_grid`]); wide layers take Winograd's F(2×2, 3×3) instead.
    fn forward(&self, input: &Map, buffers: &Buffers) -> Map {
        let (h, w, c_in, c_out) = (input.h, input.w, self.c_in, self.c_out);
        let wp = w + 2;
        let mut out = buffers.map(h, w, c_out);
        if !self.winograd.is_empty() && super::winograd::suits(h, w) {
            super::winograd::conv3(
                &input.data,
                [h, w, c_in],
                &self.winograd,
                &self.bias,
                true,
                c_out,
                &mut out.data,
                buffers,
            );
            return out;
        }
        let (rows, first) = (h * wp, (wp + 1) * c_out);
        conv3_grid(
            &input.data,
            [h, wp, c_in],
            &self.weight,
            c_out,
            &mut out.data[first..first + rows * c_out],
            buffers,
            |r, px| {
                if r % wp >= w {
                    px.fill(0.0);
                } else {
                    for (v, b) in px.iter_mut().zip(&self.bias) {
                        *v = (*v + b).max(0.0);
                    }
                }
            },
        );
        out
    }
}

impl Double {
    fn forward(&self, x: &Map, buffers: &Buffers) -> Map {
        let mid = self.0.forward(x, buffers);
        let out = self.1.forward(&mid, buffers);
        buffers.give(mid.data);
        out
    }
}

/// 2×2 max-pooling, stride 2.
fn pool(x: &Map, buffers: &Buffers) -> Map {
    let (h, w, c) = (x.h / 2, x.w / 2, x.c);
    let mut out = buffers.map(h, w, c);
    let wp = w + 2;
    // One output row (from its left border pixel) per task.
    out.data[wp * c..(h + 1) * wp * c]
        .par_chunks_mut(wp * c)
        .enumerate()
        .for_each(|(y, row)| {
            for xx in 0..w {
                let o = (xx + 1) * c;
                let (a, b) = (x.at(2 * y, 2 * xx), x.at(2 * y, 2 * xx + 1));
                let (d, e) = (x.at(2 * y + 1, 2 * xx), x.at(2 * y + 1, 2 * xx + 1));
                for k in 0..c {
                    row[o + k] = x.data[a + k]
                        .max(x.data[b + k])
                        .max(x.data[d + k])
                        .max(x.data[e + k]);
                }
            }
        });
    out
}

impl Up {
    /// Upsample `x` into channels `0..c_out` of a new map of twice the size
    /// whose channels `c_out..` hold `skip`: the decoder's concatenated
    /// input `[up, skip]`.
    fn forward_cat(&self, x: &Map, skip: &Map, buffers: &Buffers) -> Map {
        let (h, w) = (2 * x.h, 2 * x.w);
        let f = self.c_out;
        let c = f + skip.c;
        let mut out = buffers.map(h, w, c);
        let wp = w + 2;
        // One output row at a time, in parallel: the bias in the upsampled
        // half and the skip in the other, then the products accumulate.
        let first = wp * c;
        out.data[first..first + h * wp * c]
            .par_chunks_mut(wp * c)
            .enumerate()
            .for_each(|(y, row)| {
                for xx in 0..w {
                    let o = (xx + 1) * c;
                    row[o..o + f].copy_from_slice(&self.bias);
                    let s = skip.at(y, xx);
                    row[o + f..o + c].copy_from_slice(&skip.data[s..s + skip.c]);
                }
                let (iy, ky) = (y / 2, y % 2);
                for kx in 0..2 {
                    // Input row iy, pixels 0..x.w, go to output pixels
                    // 2·ix + kx of this row: a row stride of 2·c.
                    matmul(
                        x.w,
                        f,
                        self.c_in,
                        &mut row[(kx + 1) * c..],
                        Strides { row: 2 * c, col: 1 },
                        true,
                        &x.data[x.at(iy, 0)..],
                        rows_of(x.c),
                        &self.weight[(ky * 2 + kx) * self.c_in * f..],
                        rows_of(f),
                    );
                }
            });
        out
    }
}

impl CpuUnet {
    /// Copy a trained network's weights (BatchNorm folded, eval mode).
    pub fn new(model: &UNet2d) -> CpuUnet {
        let double = |d: &crate::models::unet2d::DoubleConv| {
            let (c1, b1, c2, b2) = d.parts();
            Double(conv3(c1, b1), conv3(c2, b2))
        };
        let (encoders, bottleneck, ups, decoders, head) = model.parts();
        let ups = ups
            .iter()
            .map(|u| {
                let [c_in, c_out, _, _] = u.weight.dims();
                let (weight, bias) = up_taps(u);
                Up {
                    weight,
                    bias,
                    c_in,
                    c_out,
                }
            })
            .collect();
        let c_out = head.weight.dims()[0];
        let head_w = conv_taps(head);
        CpuUnet {
            in_channels: encoders.first().map_or(0, |d| d.parts().0.weight.dims()[1]),
            encoders: encoders.iter().map(double).collect(),
            bottleneck: double(bottleneck),
            ups,
            decoders: decoders.iter().map(double).collect(),
            head: head_w,
            head_bias: conv_bias(head),
            out_channels: c_out,
            buffers: Buffers::default(),
        }
    }

    /// Hand back a logits buffer from [`CpuUnet::forward`] for the next
    /// call to reuse (117 channels at 256×256 are 31 MB whose first touch
    /// costs page faults).
    pub fn recycle(&self, logits: Vec<f32>) {
        self.buffers.give(logits);
    }

    /// Logits `[B, out, H, W]` (row-major) of `[B, in, H, W]` input values.
    /// H and W must be multiples of 2^levels.
    pub fn forward(&self, input: &[f32], batch: usize, h: usize, w: usize) -> Vec<f32> {
        let (c_in, c_out) = (self.in_channels, self.out_channels);
        let buffers = &self.buffers;
        let plane = h * w;
        // Every value is written below.
        let mut logits = buffers.take(batch * c_out * plane);
        for b in 0..batch {
            let image = &input[b * c_in * plane..(b + 1) * c_in * plane];
            let mut x = buffers.map(h, w, c_in);
            for y in 0..h {
                for xx in 0..w {
                    let o = x.at(y, xx);
                    for c in 0..c_in {
                        x.data[o + c] = image[(c * h + y) * w + xx];
                    }
                }
            }
            let mut skips = Vec::with_capacity(self.encoders.len());
            for enc in &self.encoders {
                let y = enc.forward(&x, buffers);
                buffers.give(std::mem::replace(&mut x, pool(&y, buffers)).data);
                skips.push(y);
            }
            let mut x_up = self.bottleneck.forward(&x, buffers);
            buffers.give(x.data);
            for (up, dec) in self.ups.iter().zip(&self.decoders) {
                let Some(skip) = skips.pop() else { break };
                let cat = up.forward_cat(&x_up, &skip, buffers);
                buffers.give(skip.data);
                buffers.give(std::mem::replace(&mut x_up, dec.forward(&cat, buffers)).data);
                buffers.give(cat.data);
            }
            let x = x_up;
            // The 1×1 head one image row at a time into a small
            // channel-major buffer that stays in cache, then copied into
            // the NCHW logits with the bias; the output channels are split
            // into one group per thread (their planes are contiguous).
            let dst = &mut logits[b * c_out * plane..(b + 1) * c_out * plane];
            let group = c_out.div_ceil(rayon::current_num_threads().max(1));
            dst.par_chunks_mut(group * plane)
                .enumerate()
                .for_each(|(g, planes)| {
                    let (o0, n) = (g * group, planes.len() / plane);
                    let mut row = buffers.take(w * n);
                    for y in 0..h {
                        matmul(
                            w,
                            n,
                            x.c,
                            &mut row,
                            Strides { row: 1, col: w },
                            false,
                            &x.data[x.at(y, 0)..],
                            rows_of(x.c),
                            &self.head[o0..],
                            rows_of(c_out),
                        );
                        for (o, bias) in self.head_bias[o0..o0 + n].iter().enumerate() {
                            let line = &mut planes[o * plane + y * w..o * plane + (y + 1) * w];
                            for (v, r) in line.iter_mut().zip(&row[o * w..(o + 1) * w]) {
                                *v = r + bias;
                            }
                        }
                    }
                    buffers.give(row);
                });
            buffers.give(x.data);
        }
        logits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{DeviceChoice, UNet2dConfig, device};
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// Both convolution paths: the small config runs every 3×3
    /// convolution directly; the wider one takes Winograd's F(2×2, 3×3)
    /// wherever a layer has ≥ 16 input channels and ≥ 32 columns.
    #[test]
    fn matches_burns_forward() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu);
        dev.seed(7);
        for (features, [h, w]) in [(vec![4, 8, 16], [32, 48]), (vec![16, 32], [64, 96])] {
            let config = UNet2dConfig::new(3, 5)
                .with_features(features)
                .with_bottleneck(32);
            // Train-mode BatchNorm statistics are not what inference uses:
            // give the running statistics non-trivial values by running a
            // few forwards on an autodiff device, then compare in eval mode.
            let ad = dev.clone().autodiff();
            let model = config.init(&ad);
            for _ in 0..3 {
                let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.5, 2.0), &ad);
                let _ = model.forward(x);
            }
            let model = model.valid();
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
            let want = values(model.forward(x.clone()));
            let fast = CpuUnet::new(&model).forward(&values(x), 2, h, w);
            assert_eq!(fast.len(), want.len());
            let scale = crate::models::max_abs(&want);
            assert!(scale > 0.01, "a non-trivial output: {scale}");
            let worst = crate::models::max_abs_diff(&fast, &want);
            assert!(
                worst <= 1e-4 * scale.max(1.0),
                "{h}x{w}: max |diff| {worst}, scale {scale}"
            );
        }
    }
}
