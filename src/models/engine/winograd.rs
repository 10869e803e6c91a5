//! 3×3 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin &
//! Gray, 2016) for the CPU inference engine: each 2×2 block of outputs is
//! computed from a 4×4 block of inputs with 16 products per channel pair
//! instead of 36, so the matrix products of a convolution shrink to 4/9.
//!
//! Why: the engine's convolutions were already matrix products at about
//! three quarters of this machine's peak (BENCHMARKS.md), so only less
//! arithmetic could make inference clearly faster than PyTorch's. F(2×2,
//! 3×3) is the variant whose transforms use only ±1 and ½, so its error
//! stays near a direct convolution's (checked against Burn in
//! `infer`'s tests).
//!
//! Per tile row (2 output rows) the inputs are transformed into 16 small
//! matrices `V_ξ` (tiles × c_in), multiplied by the transformed weights
//! `U_ξ` (c_in × c_out), and the products transformed back — all in a
//! buffer that stays in cache. Layout as the engine's maps: channels-last
//! with a one-pixel zero border.

use super::kernels::{Buffers, matmul, rows_of};
use rayon::prelude::*;

/// `U = G g Gᵀ` of every (input, output) channel pair, `[ξ][c_in][c_out]`
/// with `ξ = 4·row + column`, from taps `[ky·3 + kx][c_in][c_out]`.
pub(crate) fn weights(taps: &[f32], c_in: usize, c_out: usize) -> Vec<f32> {
    let mut u = vec![0.0; 16 * c_in * c_out];
    let n = c_in * c_out;
    // G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]] applied to three
    // values.
    let g4 = |a: f32, b: f32, c: f32| [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
    for p in 0..n {
        let g = |ky: usize, kx: usize| taps[(ky * 3 + kx) * n + p];
        // Rows: G g (4×3), then columns: (G g) Gᵀ (4×4).
        let rows: Vec<[f32; 4]> = (0..3).map(|kx| g4(g(0, kx), g(1, kx), g(2, kx))).collect();
        for i in 0..4 {
            let cols = g4(rows[0][i], rows[1][i], rows[2][i]);
            for (j, v) in cols.into_iter().enumerate() {
                u[(i * 4 + j) * n + p] = v;
            }
        }
    }
    u
}

/// Whether a convolution with `c_in` input channels is worth its
/// transforms (measured: the 1-channel input layer is not).
pub(crate) fn worth_it(c_in: usize) -> bool {
    c_in >= 16
}

/// Whether an `h`×`w` map gets the Winograd path: even sides and tile rows
/// long enough for the products to run efficiently.
pub(crate) fn suits(h: usize, w: usize) -> bool {
    h.is_multiple_of(2) && w.is_multiple_of(2) && w >= 32
}

/// `out = conv3×3(input) + bias`, then ReLU when `relu`, for one bordered
/// `h`×`w` map; `u` from [`weights`]. Writes every interior pixel of `out`;
/// its border must already be zero.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3(
    input: &[f32],
    [h, w, c_in]: [usize; 3],
    u: &[f32],
    bias: &[f32],
    relu: bool,
    c_out: usize,
    out: &mut [f32],
    buffers: &Buffers,
) {
    let wp = w + 2;
    let tw = w / 2;
    out[wp * c_out..(h + 1) * wp * c_out]
        .par_chunks_mut(2 * wp * c_out)
        .enumerate()
        .for_each(|(ty, rows)| {
            let mut v = buffers.take(16 * tw * c_in);
            let mut m = buffers.take(16 * tw * c_out);
            // Input transform V = Bᵀ d B on the 4×4 block at bordered
            // (2ty, 2tx); Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]].
            // Every step is a whole-channel-row operation, so it vectorises.
            let mut t = vec![0.0f32; 16 * c_in];
            for tx in 0..tw {
                let d = |k: usize, l: usize| {
                    let at = ((2 * ty + k) * wp + 2 * tx + l) * c_in;
                    &input[at..at + c_in]
                };
                // Rows first: t[i][l] = (Bᵀ d)[i][l].
                for l in 0..4 {
                    let (d0, d1, d2, d3) = (d(0, l), d(1, l), d(2, l), d(3, l));
                    let row = |i: usize| (i * 4 + l) * c_in..(i * 4 + l + 1) * c_in;
                    let r = row(0);
                    combine(&mut t[r], d0, d2, -1.0);
                    let r = row(1);
                    combine(&mut t[r], d1, d2, 1.0);
                    let r = row(2);
                    combine(&mut t[r], d2, d1, -1.0);
                    let r = row(3);
                    combine(&mut t[r], d1, d3, -1.0);
                }
                // Then columns, into V_ξ's row tx.
                for i in 0..4 {
                    let r = |l: usize| &t[(i * 4 + l) * c_in..(i * 4 + l + 1) * c_in];
                    let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                    let at = |j: usize| {
                        ((i * 4 + j) * tw + tx) * c_in..((i * 4 + j) * tw + tx + 1) * c_in
                    };
                    combine(&mut v[at(0)], r0, r2, -1.0);
                    combine(&mut v[at(1)], r1, r2, 1.0);
                    combine(&mut v[at(2)], r2, r1, -1.0);
                    combine(&mut v[at(3)], r1, r3, -1.0);
                }
            }
            for xi in 0..16 {
                matmul(
                    tw,
                    c_out,
                    c_in,
                    &mut m[xi * tw * c_out..],
                    rows_of(c_out),
                    false,
                    &v[xi * tw * c_in..],
                    rows_of(c_in),
                    &u[xi * c_in * c_out..],
                    rows_of(c_out),
                );
            }
            // Output transform Y = Aᵀ M A, Aᵀ = [[1,1,1,0],[0,1,−1,−1]],
            // then bias and ReLU into the two output rows.
            let mut s = vec![0.0f32; 8 * c_out];
            for tx in 0..tw {
                let mm = |xi: usize| &m[(xi * tw + tx) * c_out..(xi * tw + tx + 1) * c_out];
                for j in 0..4 {
                    let (m0, m1, m2, m3) = (mm(j), mm(4 + j), mm(8 + j), mm(12 + j));
                    let (top, bottom) = s.split_at_mut(4 * c_out);
                    let (top, bottom) = (
                        &mut top[j * c_out..(j + 1) * c_out],
                        &mut bottom[j * c_out..(j + 1) * c_out],
                    );
                    for (o, ((a, b), c)) in top.iter_mut().zip(m0.iter().zip(m1).zip(m2)) {
                        *o = a + b + c;
                    }
                    for (o, ((a, b), c)) in bottom.iter_mut().zip(m1.iter().zip(m2).zip(m3)) {
                        *o = a - b - c;
                    }
                }
                for i in 0..2 {
                    let sr = |j: usize| &s[(i * 4 + j) * c_out..(i * 4 + j + 1) * c_out];
                    let (s0, s1, s2, s3) = (sr(0), sr(1), sr(2), sr(3));
                    let px = (i * wp + 2 * tx + 1) * c_out;
                    let (left, right) = rows[px..px + 2 * c_out].split_at_mut(c_out);
                    let lanes = s0.iter().zip(s1).zip(s2.iter().zip(s3)).zip(bias);
                    let pairs = left.iter_mut().zip(right.iter_mut()).zip(lanes);
                    if relu {
                        for ((l, r), (((a, b), (c, d)), bias)) in pairs {
                            *l = (a + b + c + bias).max(0.0);
                            *r = (b - c - d + bias).max(0.0);
                        }
                    } else {
                        for ((l, r), (((a, b), (c, d)), bias)) in pairs {
                            *l = a + b + c + bias;
                            *r = b - c - d + bias;
                        }
                    }
                }
            }
            buffers.give(v);
            buffers.give(m);
        });
}

/// `out = a + sign · b`, lane by lane.
fn combine(out: &mut [f32], a: &[f32], b: &[f32], sign: f32) {
    for (o, (a, b)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = a + sign * b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` deterministic values in [−0.5, 0.5).
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|k| ((k ^ seed).wrapping_mul(2_654_435_761) >> 8) as f32 / (1 << 24) as f32 - 0.5)
            .collect()
    }

    /// A bordered map of noise.
    fn map(h: usize, w: usize, c: usize, seed: u32) -> Vec<f32> {
        let wp = w + 2;
        let mut data = vec![0.0; ((h + 2) * wp + 2) * c];
        let values = noise(h * w * c, seed);
        for y in 0..h {
            let at = ((y + 1) * wp + 1) * c;
            data[at..at + w * c].copy_from_slice(&values[y * w * c..(y + 1) * w * c]);
        }
        data
    }

    #[test]
    fn winograd_equals_the_direct_convolution() {
        let (h, w, c_in, c_out) = (6, 34, 16, 5);
        assert!(suits(h, w));
        let input = map(h, w, c_in, 0x51ed);
        let taps = noise(9 * c_in * c_out, 0x9e37);
        let bias: Vec<f32> = (0..c_out).map(|o| o as f32 * 0.05 - 0.1).collect();
        let wp = w + 2;
        let mut out = vec![0.0; ((h + 2) * wp + 2) * c_out];
        let buffers = Buffers::default();
        let u = weights(&taps, c_in, c_out);
        conv3(
            &input,
            [h, w, c_in],
            &u,
            &bias,
            true,
            c_out,
            &mut out,
            &buffers,
        );
        let mut worst = 0.0f32;
        for y in 0..h {
            for x in 0..w {
                for o in 0..c_out {
                    let mut sum = bias[o];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            for i in 0..c_in {
                                let at = ((y + ky) * wp + x + kx) * c_in + i;
                                sum += input[at] * taps[((ky * 3 + kx) * c_in + i) * c_out + o];
                            }
                        }
                    }
                    let got = out[((y + 1) * wp + x + 1) * c_out + o];
                    worst = worst.max((got - sum.max(0.0)).abs());
                }
            }
        }
        assert!(worst < 1e-5, "max |diff| {worst}");
        // The border stays zero.
        assert!(out[..(wp + 1) * c_out].iter().all(|&v| v == 0.0));
    }
}
