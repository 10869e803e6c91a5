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
//! in tests; training's passes live in [`super::cpu_train`], which shares
//! this module's products, weight layouts and buffer pool.
//!
//! Layout: a `Map` of `h`×`w` pixels and `c` channels stores pixel `(y, x)`
//! at `((y + 1)(w + 2) + x + 1) · c` — a zero border all round plus two
//! guard pixels at the end, which the shifted reads of the last row touch.
//!
//! Memory, not arithmetic, is the limit on a small machine: writing a
//! fresh 8 MB map costs more in page faults than its convolution's
//! arithmetic, so activation buffers are recycled (`Buffers`) and only
//! their borders re-zeroed.

use super::UNet2d;
use burn::prelude::*;
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

/// A channels-last feature map with a zero border (see the module docs).
struct Map {
    h: usize,
    w: usize,
    c: usize,
    data: Vec<f32>,
}

impl Map {
    /// Offset of pixel `(y, x)`'s first channel.
    fn at(&self, y: usize, x: usize) -> usize {
        ((y + 1) * (self.w + 2) + x + 1) * self.c
    }
}

/// Recycled activation buffers, matched by exact length (a forward pass
/// asks for the same sizes every time).
#[derive(Default)]
pub(super) struct Buffers(std::sync::Mutex<Vec<Vec<f32>>>);

impl Buffers {
    /// A buffer of `len` values with unspecified contents.
    pub(super) fn take(&self, len: usize) -> Vec<f32> {
        let mut free = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match free.iter().position(|b| b.len() == len) {
            Some(i) => free.swap_remove(i),
            None => vec![0.0; len],
        }
    }

    /// A map whose border is zero; every interior pixel must be written.
    fn map(&self, h: usize, w: usize, c: usize) -> Map {
        let wp = w + 2;
        let mut data = self.take(((h + 2) * wp + 2) * c);
        data[..(wp + 1) * c].fill(0.0);
        for y in 1..=h {
            data[(y * wp + w + 1) * c..(y * wp + w + 3) * c].fill(0.0);
        }
        data[((h + 1) * wp) * c..].fill(0.0);
        Map { h, w, c, data }
    }

    pub(super) fn give(&self, data: Vec<f32>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(data);
    }
}

pub(super) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// A convolution's weight `[c_out][c_in][k][k]` as `[tap][c_in][c_out]`
/// (tap = ky·k + kx): the right operand of the per-tap products.
pub(super) fn conv_taps(conv: &burn::nn::conv::Conv2d) -> Vec<f32> {
    let [c_out, c_in, kh, kw] = conv.weight.dims();
    let taps = kh * kw;
    let w = values(conv.weight.val());
    let mut out = vec![0.0; w.len()];
    for o in 0..c_out {
        for i in 0..c_in {
            for t in 0..taps {
                out[(t * c_in + i) * c_out + o] = w[(o * c_in + i) * taps + t];
            }
        }
    }
    out
}

/// A convolution's bias (zeros when it has none).
pub(super) fn conv_bias(conv: &burn::nn::conv::Conv2d) -> Vec<f32> {
    conv.bias
        .as_ref()
        .map_or(vec![0.0; conv.weight.dims()[0]], |b| values(b.val()))
}

/// A 2×2 transposed convolution's weight `[c_in][c_out][2][2]` as
/// `[tap][c_in][c_out]`, and its bias.
pub(super) fn up_taps(up: &burn::nn::conv::ConvTranspose2d) -> (Vec<f32>, Vec<f32>) {
    let [c_in, c_out, _, _] = up.weight.dims();
    let w = values(up.weight.val());
    let mut weight = vec![0.0; 4 * c_in * c_out];
    for i in 0..c_in {
        for o in 0..c_out {
            for t in 0..4 {
                weight[(t * c_in + i) * c_out + o] = w[(i * c_out + o) * 4 + t];
            }
        }
    }
    let bias = up
        .bias
        .as_ref()
        .map_or(vec![0.0; c_out], |b| values(b.val()));
    (weight, bias)
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

/// Row and column strides of a matrix inside a slice.
#[derive(Clone, Copy)]
pub(super) struct Strides {
    pub(super) row: usize,
    pub(super) col: usize,
}

/// Dense row-major strides with `n` columns.
pub(super) fn rows_of(n: usize) -> Strides {
    Strides { row: n, col: 1 }
}

/// Whether an `r`×`c` matrix with strides `s` lies inside `len` elements.
fn fits(len: usize, r: usize, c: usize, s: Strides) -> bool {
    r == 0 || c == 0 || (r - 1) * s.row + (c - 1) * s.col < len
}

/// `dst[m×n] (+)= lhs[m×k] · rhs[k×n]` with arbitrary strides. Checks that
/// every element it touches lies inside the slices, so the one `unsafe`
/// call below is sound.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ds: Strides,
    accumulate: bool,
    lhs: &[f32],
    ls: Strides,
    rhs: &[f32],
    rs: Strides,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(fits(dst.len(), m, n, ds), "dst too short");
    assert!(fits(lhs.len(), m, k, ls), "lhs too short");
    assert!(fits(rhs.len(), k, n, rs), "rhs too short");
    // SAFETY: the extents were checked above; dst does not alias lhs or
    // rhs (a `&mut` and two `&` slices).
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            ds.col as isize,
            ds.row as isize,
            accumulate,
            lhs.as_ptr(),
            ls.col as isize,
            ls.row as isize,
            rhs.as_ptr(),
            rs.col as isize,
            rs.row as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Rows of the padded-width output grid each parallel task computes.
fn tile_rows(c_out: usize) -> usize {
    (32_768 / c_out.max(1)).clamp(256, 2048)
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

/// A 3×3 convolution over the padded-width grid of a bordered map (or a
/// stack of them): `grid` (`rows · c_out` values, grid row `r` being
/// bordered pixel `r + wp + 1`) gets `input` (`c_in` channels, `wp`
/// pixels a row, images of `h` rows) times `taps`, in parallel tiles;
/// `finish(r, pixel)` then runs on every grid pixel of the tile while it
/// is in cache (bias, ReLU, zeroing the border). Small grids and
/// single-channel inputs gather the nine taps into one product (im2col);
/// elsewhere nine products with shifted operands accumulate, which
/// measured faster. Shared by the inference and the training engine.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv3_grid(
    input: &[f32],
    [h, wp, c_in]: [usize; 3],
    taps: &[f32],
    c_out: usize,
    grid: &mut [f32],
    buffers: &Buffers,
    finish: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let im2col = use_im2col(h, wp, c_in);
    let tile = conv_tile(c_in, c_out, im2col);
    grid.par_chunks_mut(tile * c_out)
        .enumerate()
        .for_each(|(ti, chunk)| {
            let r0 = ti * tile;
            conv3_tile(input, c_in, wp, taps, c_out, r0, chunk, im2col, buffers);
            for (local, px) in chunk.chunks_exact_mut(c_out).enumerate() {
                finish(r0 + local, px);
            }
        });
}

/// Whether a 3×3 convolution over images of `h` rows of `wp` bordered
/// pixels with `c_in` input channels gathers its taps (im2col).
fn use_im2col(h: usize, wp: usize, c_in: usize) -> bool {
    h * wp <= 512 || c_in < 4
}

/// Rows per parallel task of a 3×3 convolution.
fn conv_tile(c_in: usize, c_out: usize, im2col: bool) -> usize {
    if im2col {
        (1usize << 20) / (9 * c_in)
    } else {
        tile_rows(c_out)
    }
    .clamp(256, 2048)
}

/// One tile of a 3×3 convolution: rows `r0..` of the padded-width grid
/// (`chunk.len() / c_out` of them) of `input` (bordered, `c_in` channels,
/// `wp` pixels a row) times `taps` (`[tap][c_in][c_out]`) into `chunk`,
/// overwriting it. Grid row `r` reads bordered pixels `r + ky·wp + kx`.
#[allow(clippy::too_many_arguments)]
fn conv3_tile(
    input: &[f32],
    c_in: usize,
    wp: usize,
    taps: &[f32],
    c_out: usize,
    r0: usize,
    chunk: &mut [f32],
    im2col: bool,
    buffers: &Buffers,
) {
    let m = chunk.len() / c_out;
    if im2col {
        let k = 9 * c_in;
        let mut col = buffers.take(m * k);
        for (local, row) in col.chunks_exact_mut(k).enumerate() {
            for t in 0..9 {
                let at = (r0 + local + (t / 3) * wp + t % 3) * c_in;
                row[t * c_in..(t + 1) * c_in].copy_from_slice(&input[at..at + c_in]);
            }
        }
        matmul(
            m,
            c_out,
            k,
            chunk,
            rows_of(c_out),
            false,
            &col,
            rows_of(k),
            taps,
            rows_of(c_out),
        );
        buffers.give(col);
    } else {
        for t in 0..9 {
            // The two guard pixels cover the last row's reads.
            let shift = (t / 3) * wp + t % 3;
            matmul(
                m,
                c_out,
                c_in,
                chunk,
                rows_of(c_out),
                t > 0,
                &input[(r0 + shift) * c_in..],
                rows_of(c_in),
                &taps[t * c_in * c_out..],
                rows_of(c_out),
            );
        }
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
        let double = |d: &super::unet2d::DoubleConv| {
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
