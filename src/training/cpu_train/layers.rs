//! The U-Net's layers for the hand-written passes: convolution +
//! BatchNorm + ReLU units, their pairs (DoubleConv) and the transposed
//! up-convolution, each with its forward (keeping its tape) and backward.

use super::stack::{
    Stack, bias_grad, channel_sums, conv3, conv3_weight_grad, flipped, sum_partials,
};
use crate::models::engine::kernels::{
    Buffers, Strides, conv_bias, conv_taps, matmul, rows_of, values,
};
use crate::models::unet2d::DoubleConv;
use burn::prelude::*;
use rayon::prelude::*;

/// One convolution + BatchNorm + ReLU, as the backward needs it.
pub(super) struct UnitTape {
    /// The normalised convolution output `x̂`.
    pub(super) xhat: Stack,
    pub(super) inv_std: Vec<f32>,
}

/// A DoubleConv's saved maps: its input, the first unit's output and its
/// own output.
pub(super) struct DoubleTape {
    pub(super) input: Stack,
    pub(super) u1: UnitTape,
    pub(super) mid: Stack,
    pub(super) u2: UnitTape,
    pub(super) out: Stack,
}

/// A convolution + BatchNorm pair's trainable values.
pub(super) struct UnitWeights<'m> {
    pub(super) taps: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) gamma: Vec<f32>,
    pub(super) beta: Vec<f32>,
    pub(super) conv: &'m burn::nn::conv::Conv2d,
    pub(super) bn: &'m burn::nn::BatchNorm,
}

impl<'m> UnitWeights<'m> {
    pub(super) fn new(conv: &'m burn::nn::conv::Conv2d, bn: &'m burn::nn::BatchNorm) -> Self {
        UnitWeights {
            taps: conv_taps(conv),
            bias: conv_bias(conv),
            gamma: values(bn.gamma.val()),
            beta: values(bn.beta.val()),
            conv,
            bn,
        }
    }

    pub(super) fn c_out(&self) -> usize {
        self.bias.len()
    }

    /// Convolution, batch-statistics BatchNorm (the running statistics
    /// updated as Burn's BatchNorm does) and ReLU.
    pub(super) fn forward(&self, x: &Stack, buffers: &Buffers) -> (UnitTape, Stack) {
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

    pub(super) fn update_running(&self, mean: &[f64], var: &[f64]) {
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
    pub(super) fn bn_relu_backward(&self, tape: &UnitTape, d: &mut Stack) -> [Vec<f32>; 3] {
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

/// Gradients of one convolution + BatchNorm pair.
pub(super) struct UnitGrads {
    pub(super) taps: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) gamma: Vec<f32>,
    pub(super) beta: Vec<f32>,
}

pub(super) struct DoubleWeights<'m>(pub(super) UnitWeights<'m>, pub(super) UnitWeights<'m>);

impl<'m> DoubleWeights<'m> {
    pub(super) fn new(d: &'m DoubleConv) -> Self {
        let (c1, b1, c2, b2) = d.parts();
        DoubleWeights(UnitWeights::new(c1, b1), UnitWeights::new(c2, b2))
    }

    pub(super) fn forward(&self, input: Stack, buffers: &Buffers) -> DoubleTape {
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
    pub(super) fn backward(
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

/// A transposed 2×2 convolution's values.
pub(super) struct UpWeights<'m> {
    pub(super) taps: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) up: &'m burn::nn::conv::ConvTranspose2d,
}

impl UpWeights<'_> {
    pub(super) fn c_out(&self) -> usize {
        self.bias.len()
    }

    /// `[up(x), skip]`, the decoder's input.
    pub(super) fn forward_cat(&self, x: &Stack, skip: &Stack, buffers: &Buffers) -> Stack {
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
    pub(super) fn backward(
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
