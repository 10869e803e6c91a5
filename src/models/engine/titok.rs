//! The tokenizer's inference on the CPU engine: frames to token ids and
//! token ids to frames, the same computation as [`Titok::tokenize`] and
//! [`Titok::detokenize`] on the ViT blocks of [`super::vit`], one frame
//! per task in parallel. `ume tokenize` and the app's Tokenizer panel use
//! it whenever the model runs on the CPU; Burn keeps training and the GPU.

use super::kernels::{Strides, matmul, rows_of, values};
use super::vit::{Blocks, Dense, Norm, Scratch};
use crate::models::tokenizer::Titok;
use rayon::prelude::*;

/// A trained tokenizer's weights, laid out for the CPU engine.
pub struct CpuTitok {
    patch: usize,
    grid: [usize; 2],
    latents: usize,
    patch_embed: Dense,
    /// Patch positions, then latent tokens plus their positions:
    /// `[N + K, encoder width]`, added to the embedded sequence.
    encoder_start: Vec<f32>,
    encoder: Blocks,
    encoder_norm: Norm,
    to_code: Dense,
    /// Normalised codebook entries `[entries, code]`.
    entries: Vec<f32>,
    code_dim: usize,
    from_code: Dense,
    /// Decoder positions with the mask token added to the patch rows.
    decoder_start: Vec<f32>,
    decoder: Blocks,
    decoder_norm: Norm,
    to_pixels: Dense,
}

/// Calls `row(frame_at, patch_at)` for every pixel row of every patch:
/// the offsets of its `p` pixels in the row-major frame (`gw` patches
/// wide) and in the patch-major layout ([`crate::models::tokenizer::patchify`]'s).
fn for_patch_rows(p: usize, gw: usize, patches: usize, mut row: impl FnMut(usize, usize)) {
    let width = gw * p;
    for i in 0..patches {
        let (gy, gx) = (i / gw, i % gw);
        for py in 0..p {
            row((gy * p + py) * width + gx * p, (i * p + py) * p);
        }
    }
}

fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= norm);
}

impl CpuTitok {
    /// Copy a tokenizer's weights.
    pub fn new(model: &Titok) -> CpuTitok {
        let p = model.patch_size;
        let k = model.latents.dims()[0];
        let mut encoder_start = values(model.patch_pos.val());
        let latents = values(model.latents.val());
        let latent_pos = values(model.latent_pos.val());
        encoder_start.extend(latents.iter().zip(&latent_pos).map(|(a, b)| a + b));
        let [_, code_dim] = model.codebook.entries.dims();
        let mut entries = values(model.codebook.entries.val());
        entries.chunks_exact_mut(code_dim).for_each(normalise);
        let mask = values(model.mask_token.val());
        let mut decoder_start = values(model.decoder_pos.val());
        let dd = mask.len();
        for row in decoder_start[k * dd..].chunks_exact_mut(dd) {
            row.iter_mut().zip(&mask).for_each(|(r, m)| *r += m);
        }
        CpuTitok {
            patch: p,
            grid: model.grid,
            latents: k,
            patch_embed: Dense::new(&model.patch_embed),
            encoder_start,
            encoder: Blocks::new(&model.encoder),
            encoder_norm: Norm::new(&model.encoder_norm),
            to_code: Dense::new(&model.to_code),
            entries,
            code_dim,
            from_code: Dense::new(&model.from_code),
            decoder_start,
            decoder: Blocks::new(&model.decoder),
            decoder_norm: Norm::new(&model.decoder_norm),
            to_pixels: Dense::new(&model.to_pixels),
        }
    }

    fn frame_len(&self) -> usize {
        self.grid[0] * self.grid[1] * self.patch * self.patch
    }

    /// Token ids `[B, K]` of `B` frames (`[B, H, W]`, row-major, values as
    /// the model was trained on).
    ///
    /// # Panics
    /// When `frames` is not a whole number of frames of the model's size.
    pub fn tokenize(&self, frames: &[f32]) -> Vec<u32> {
        let k = self.latents;
        assert!(
            frames.len().is_multiple_of(self.frame_len()),
            "{} values are not whole {}-value frames",
            frames.len(),
            self.frame_len()
        );
        let mut ids = vec![0u32; frames.len() / self.frame_len() * k];
        frames
            .par_chunks_exact(self.frame_len())
            .zip(ids.par_chunks_exact_mut(k))
            .for_each_init(Scratch::default, |scratch, (frame, ids)| {
                self.tokenize_one(frame, ids, scratch);
            });
        ids
    }

    fn tokenize_one(&self, frame: &[f32], ids: &mut [u32], scratch: &mut Scratch) {
        let (p, [gh, gw]) = (self.patch, self.grid);
        let (n, k, de, c) = (gh * gw, self.latents, self.patch_embed.d_out, self.code_dim);
        let mut patches = vec![0.0; n * p * p];
        for_patch_rows(p, gw, n, |frame_at, patch_at| {
            patches[patch_at..patch_at + p].copy_from_slice(&frame[frame_at..frame_at + p]);
        });
        let mut seq = self.encoder_start.clone();
        self.patch_embed.forward(&patches, n, &mut seq, true);
        self.encoder.forward(&mut seq, scratch);
        let mut normed = vec![0.0; k * de];
        self.encoder_norm.forward(&seq[n * de..], &mut normed);
        let mut codes = vec![0.0; k * c];
        self.to_code.forward(&normed, k, &mut codes, false);
        codes.chunks_exact_mut(c).for_each(normalise);
        // Nearest normalised entry = largest dot product: [K, c]·[c, E].
        let e = self.entries.len() / c;
        let mut dots = vec![0.0; k * e];
        matmul(
            k,
            e,
            c,
            &mut dots,
            rows_of(e),
            false,
            &codes,
            rows_of(c),
            &self.entries,
            Strides { row: 1, col: c },
        );
        for (row, id) in dots.chunks_exact(e).zip(ids.iter_mut()) {
            let mut best = (f32::NEG_INFINITY, 0);
            for (j, &dot) in row.iter().enumerate() {
                if dot > best.0 {
                    best = (dot, j);
                }
            }
            *id = best.1 as u32;
        }
    }

    /// Frames `[B, H, W]` decoded from token ids `[B, K]` (ids beyond the
    /// codebook read its last entry).
    ///
    /// # Panics
    /// When `ids` is not a whole number of frames' `K` tokens.
    pub fn detokenize(&self, ids: &[u32]) -> Vec<f32> {
        let k = self.latents;
        assert!(
            ids.len().is_multiple_of(k),
            "{} ids are not whole frames of {k} tokens",
            ids.len()
        );
        let mut frames = vec![0.0; ids.len() / k * self.frame_len()];
        ids.par_chunks_exact(k)
            .zip(frames.par_chunks_exact_mut(self.frame_len()))
            .for_each_init(Scratch::default, |scratch, (ids, frame)| {
                self.detokenize_one(ids, frame, scratch);
            });
        frames
    }

    fn detokenize_one(&self, ids: &[u32], frame: &mut [f32], scratch: &mut Scratch) {
        let (p, [gh, gw]) = (self.patch, self.grid);
        let (n, k, dd, c) = (gh * gw, self.latents, self.from_code.d_out, self.code_dim);
        let last = self.entries.len() / c - 1;
        let mut codes = Vec::with_capacity(k * c);
        for &id in ids {
            let e = (id as usize).min(last);
            codes.extend_from_slice(&self.entries[e * c..(e + 1) * c]);
        }
        let mut seq = self.decoder_start.clone();
        self.from_code.forward(&codes, k, &mut seq, true);
        self.decoder.forward(&mut seq, scratch);
        let mut normed = vec![0.0; n * dd];
        self.decoder_norm.forward(&seq[k * dd..], &mut normed);
        let mut pixels = vec![0.0; n * p * p];
        self.to_pixels.forward(&normed, n, &mut pixels, false);
        for_patch_rows(p, gw, n, |frame_at, patch_at| {
            frame[frame_at..frame_at + p].copy_from_slice(&pixels[patch_at..patch_at + p]);
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::CpuTitok;
    use crate::models::tokenizer::TitokConfig;
    use burn::prelude::*;
    use burn::tensor::Distribution;

    /// The engine gives Burn's token ids and frames for a random
    /// tokenizer with two heads per block and a non-square frame.
    #[test]
    fn the_engine_matches_burn() {
        let device = Device::flex();
        let config = TitokConfig {
            image_size: [32, 16],
            patch_size: 8,
            num_latent_tokens: 5,
            codebook_size: 64,
            code_dim: 6,
            encoder_width: 32,
            encoder_depth: 2,
            encoder_heads: 2,
            decoder_width: 24,
            decoder_depth: 2,
            decoder_heads: 3,
            commitment: 0.25,
        };
        let model = config.init(&device);
        let engine = CpuTitok::new(&model);
        let x = Tensor::<4>::random([3, 1, 32, 16], Distribution::Uniform(0.0, 1.0), &device);
        let ids = model.tokenize(x.clone());
        let want_ids: Vec<u32> = ids
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|i| i as u32)
            .collect();
        let frames = x.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(engine.tokenize(&frames), want_ids, "token ids");
        let want = model
            .detokenize(ids)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let got = engine.detokenize(&want_ids);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * scale,
            "decoded frames differ by {worst} (scale {scale})"
        );
    }
}
