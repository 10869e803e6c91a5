//! The kernels UME's CPU engines share: the recycled buffer pool, the
//! weight layouts read from Burn modules, the strided matrix product over
//! `gemm`, and the 3×3 convolution's tiling over bordered channels-last
//! maps. Inference ([`super::infer`]), Winograd ([`super::winograd`]) and
//! the training engine (`training::cpu_train`) all build on this module,
//! which depends on none of them: no cycles.

use burn::prelude::*;
use rayon::prelude::*;

/// A channels-last feature map with a zero border (see the module docs).
pub(crate) struct Map {
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) c: usize,
    pub(crate) data: Vec<f32>,
}

impl Map {
    /// Offset of pixel `(y, x)`'s first channel.
    pub(crate) fn at(&self, y: usize, x: usize) -> usize {
        ((y + 1) * (self.w + 2) + x + 1) * self.c
    }
}

/// Rows of the padded-width output grid each parallel task computes.
pub(crate) fn tile_rows(c_out: usize) -> usize {
    (32_768 / c_out.max(1)).clamp(256, 2048)
}

/// Recycled activation buffers, matched by exact length (a forward pass
/// asks for the same sizes every time).
#[derive(Default)]
pub(crate) struct Buffers(std::sync::Mutex<Vec<Vec<f32>>>);

impl Buffers {
    /// A buffer of `len` values with unspecified contents.
    pub(crate) fn take(&self, len: usize) -> Vec<f32> {
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
    pub(crate) fn map(&self, h: usize, w: usize, c: usize) -> Map {
        let wp = w + 2;
        let mut data = self.take(((h + 2) * wp + 2) * c);
        data[..(wp + 1) * c].fill(0.0);
        for y in 1..=h {
            data[(y * wp + w + 1) * c..(y * wp + w + 3) * c].fill(0.0);
        }
        data[((h + 1) * wp) * c..].fill(0.0);
        Map { h, w, c, data }
    }

    pub(crate) fn give(&self, data: Vec<f32>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(data);
    }
}

pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap_or_default()
}

/// A convolution's weight `[c_out][c_in][k][k]` as `[tap][c_in][c_out]`
/// (tap = ky·k + kx): the right operand of the per-tap products.
pub(crate) fn conv_taps(conv: &burn::nn::conv::Conv2d) -> Vec<f32> {
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
pub(crate) fn conv_bias(conv: &burn::nn::conv::Conv2d) -> Vec<f32> {
    conv.bias
        .as_ref()
        .map_or(vec![0.0; conv.weight.dims()[0]], |b| values(b.val()))
}

/// A 2×2 transposed convolution's weight `[c_in][c_out][2][2]` as
/// `[tap][c_in][c_out]`, and its bias.
pub(crate) fn up_taps(up: &burn::nn::conv::ConvTranspose2d) -> (Vec<f32>, Vec<f32>) {
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

/// Row and column strides of a matrix inside a slice.
#[derive(Clone, Copy)]
pub(crate) struct Strides {
    pub(crate) row: usize,
    pub(crate) col: usize,
}

/// Dense row-major strides with `n` columns.
pub(crate) fn rows_of(n: usize) -> Strides {
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
pub(crate) fn matmul(
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
pub(crate) fn conv3_grid(
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
