//! The batch's feature maps as one channels-last buffer with a zero
//! border per image (so a 3×3 convolution is nine products on shifted
//! views, and the border is the padding in both directions), and the
//! convolution, pooling and reduction kernels on it.

use crate::models::engine::kernels::{Buffers, Strides, conv3_grid, matmul, rows_of};
use crate::models::engine::winograd;
use rayon::prelude::*;

/// The feature maps of a batch: image `b`'s pixel `(y, x)` at bordered
/// pixel `(b(h + 2) + y + 1)(w + 2) + x + 1`, channels-last, every border
/// pixel zero, two guard pixels at the end.
pub(super) struct Stack {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) c: usize,
    pub(super) data: Vec<f32>,
}

impl Stack {
    /// A stack whose border pixels are zero; interiors unspecified.
    pub(super) fn new(buffers: &Buffers, n: usize, h: usize, w: usize, c: usize) -> Stack {
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

    pub(super) fn wp(&self) -> usize {
        self.w + 2
    }

    /// Pixels of the convolution grid: every bordered pixel from the first
    /// interior one to the last (grid pixel `r` is bordered pixel
    /// `r + wp + 1`).
    pub(super) fn grid(&self) -> usize {
        (self.n * (self.h + 2) - 2) * self.wp()
    }

    /// Offset of image `b`'s pixel `(y, x)`.
    pub(super) fn at(&self, b: usize, y: usize, x: usize) -> usize {
        ((b * (self.h + 2) + y + 1) * self.wp() + x + 1) * self.c
    }

    /// Whether bordered pixel `q` is inside an image.
    pub(super) fn inside(&self, q: usize) -> bool {
        let wp = self.wp();
        let (row, col) = ((q / wp) % (self.h + 2), q % wp);
        (1..=self.w).contains(&col) && (1..=self.h).contains(&row)
    }

    /// The image and row of bordered row `r` of a stack of `h`-row
    /// images, or `None` on a border row.
    pub(super) fn image_row(h: usize, r: usize) -> Option<(usize, usize)> {
        let k = r % (h + 2);
        (1..=h).contains(&k).then(|| (r / (h + 2), k - 1))
    }

    /// `f(b, y, row)` on every image row, in parallel; `row` is the whole
    /// bordered row (`(w + 2)·c` values, its two border pixels included).
    pub(super) fn par_image_rows(&mut self, f: impl Fn(usize, usize, &mut [f32]) + Sync + Send) {
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
    pub(super) fn fold_pixels_mut(
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
    pub(super) fn count(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// The pixels of each image row, `w · c` values, of every image in `s`.
pub(super) fn interior_rows(s: &Stack) -> impl IndexedParallelIterator<Item = &[f32]> {
    let (h, w, c) = (s.h, s.w, s.c);
    let wpc = s.wp() * c;
    (0..s.n * h).into_par_iter().map(move |i| {
        let r = (i / h) * (h + 2) + i % h + 1;
        &s.data[r * wpc + c..r * wpc + (w + 1) * c]
    })
}

/// Per-channel sums of `f(value, channel)` over the pixels inside the
/// images (f32 within a row, f64 across rows).
pub(super) fn channel_sums(s: &Stack, f: impl Fn(f32, usize) -> f32 + Sync + Send) -> Vec<f64> {
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
pub(super) fn conv3(
    x: &Stack,
    taps: &[f32],
    c_out: usize,
    bias: Option<&[f32]>,
    buffers: &Buffers,
) -> Stack {
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
pub(super) fn flipped(taps: &[f32], c_in: usize, c_out: usize) -> Vec<f32> {
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
pub(super) const GROUPS: usize = 16;

/// Element-wise sum over `0..count` of what `add(part, i)` accumulates
/// into a zeroed `part` of `len` values. The items fall into at most
/// [`GROUPS`] contiguous groups fixed by `count` alone; each group
/// accumulates in item order and the groups are added in group order, so
/// the floating-point sum does not depend on the thread count or on how
/// rayon schedules the work: the same seed gives the same run, bit for bit.
pub(super) fn sum_partials(
    len: usize,
    count: usize,
    add: impl Fn(&mut [f32], usize) + Sync,
) -> Vec<f32> {
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
pub(super) fn conv3_weight_grad(x: &Stack, dz: &Stack) -> Vec<f32> {
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
pub(super) fn bias_grad(s: &Stack, c0: usize, k: usize) -> Vec<f32> {
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

/// 2×2 max-pooling, stride 2.
pub(super) fn pool(x: &Stack, buffers: &Buffers) -> Stack {
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
pub(super) fn pool_backward(x: &Stack, dp: &Stack, dx: &mut Stack) {
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

/// Per-row partial sums (f32) added up in f64, in row order, so the
/// result does not depend on the thread count or on scheduling (see
/// [`sum_partials`]). Rows given as `None` add nothing.
pub(super) fn sum_rows(
    width: usize,
    rows: impl IndexedParallelIterator<Item = Option<Vec<f32>>>,
) -> Vec<f64> {
    let rows: Vec<Option<Vec<f32>>> = rows.collect();
    let mut acc = vec![0.0f64; width];
    for row in rows.into_iter().flatten() {
        acc.iter_mut()
            .zip(row)
            .for_each(|(a, v)| *a += f64::from(v));
    }
    acc
}
