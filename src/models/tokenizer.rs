//! A TiTok-style 1D tokenizer (seed 001; "An Image is Worth 32 Tokens",
//! arXiv 2406.07550): an MRI frame becomes `K` discrete tokens.
//!
//! - Encoder: the frame's patches (linear patch embedding plus positions)
//!   and `K` learnable latent tokens go through ViT blocks; the latent
//!   tokens' outputs are projected to a small code dimension.
//! - Quantiser: codes and codebook entries are L2-normalised and each code
//!   takes its nearest entry (largest cosine); the straight-through
//!   estimator passes the decoder's gradient to the encoder, the codebook
//!   loss moves the entries and the commitment loss (weight 0.25) keeps the
//!   codes near them. Codebook usage is counted so that dead entries can be
//!   re-seeded from live codes ([`Codebook::reseed`]).
//! - Decoder: the `K` quantised tokens plus one mask token per patch go
//!   through ViT blocks; each mask token's output predicts its patch's
//!   pixels.
//!
//! The ViT blocks are the UME encoder's ([`super::vit`]). Shapes use `B`
//! batch, `H×W` frame size, `P` patch side, `N = (H/P)(W/P)` patches, `K`
//! latent tokens, `C` codebook entries, `c` code dimension, `De`/`Dd` the
//! encoder's and decoder's widths.

use super::vit;
use burn::module::Param;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderInput};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;

/// Tokenizer hyper-parameters (`model` section of `configs/titok_*.json`;
/// defaults: TiTok-S with 32 tokens on 256×256 frames, a 4096 × 12
/// codebook).
#[derive(Config, Debug)]
pub struct TitokConfig {
    /// Frame size `[H, W]` (multiples of the patch size).
    #[config(default = "[256, 256]")]
    pub image_size: [usize; 2],
    /// Square patch side in pixels.
    #[config(default = 16)]
    pub patch_size: usize,
    /// Tokens per frame (`K`).
    #[config(default = 32)]
    pub num_latent_tokens: usize,
    /// Codebook entries (`C`).
    #[config(default = 4096)]
    pub codebook_size: usize,
    /// Code dimension (`c`).
    #[config(default = 12)]
    pub code_dim: usize,
    /// Encoder width (TiTok-S: 512).
    #[config(default = 512)]
    pub encoder_width: usize,
    /// Encoder blocks (TiTok-S: 8).
    #[config(default = 8)]
    pub encoder_depth: usize,
    /// Encoder attention heads (TiTok-S: 8).
    #[config(default = 8)]
    pub encoder_heads: usize,
    /// Decoder width.
    #[config(default = 512)]
    pub decoder_width: usize,
    /// Decoder blocks.
    #[config(default = 8)]
    pub decoder_depth: usize,
    /// Decoder attention heads.
    #[config(default = 8)]
    pub decoder_heads: usize,
    /// Weight of the commitment loss.
    #[config(default = 0.25)]
    pub commitment: f64,
}

impl TitokConfig {
    /// Check the sizes fit together.
    pub fn check(&self) -> Result<(), String> {
        super::vit::check_patches(self.image_size, self.patch_size)?;
        for (name, width, heads) in [
            ("encoder", self.encoder_width, self.encoder_heads),
            ("decoder", self.decoder_width, self.decoder_heads),
        ] {
            if heads == 0 || width % heads != 0 {
                return Err(format!(
                    "{name}_width {width} must be a multiple of {name}_heads {heads}"
                ));
            }
        }
        if self.num_latent_tokens == 0 || self.codebook_size < 2 || self.code_dim == 0 {
            return Err("num_latent_tokens, code_dim ≥ 1 and codebook_size ≥ 2 needed".into());
        }
        Ok(())
    }

    /// Patches per frame (`N`).
    pub fn patches(&self) -> usize {
        (self.image_size[0] / self.patch_size.max(1))
            * (self.image_size[1] / self.patch_size.max(1))
    }

    /// Bits a frame costs: `K · log2(C)`.
    pub fn bits_per_frame(&self) -> f64 {
        self.num_latent_tokens as f64 * (self.codebook_size as f64).log2()
    }

    /// Build the tokenizer with fresh weights.
    pub fn init(&self, device: &Device) -> Titok {
        let (de, dd) = (self.encoder_width, self.decoder_width);
        // TiTok draws embeddings, positions and the mask token from
        // N(0, 1/width): at small widths ViT's fixed 0.02 leaves the
        // positions nearly equal and training slow to tell patches apart.
        let (se, sd) = ((de as f64).powf(-0.5), (dd as f64).powf(-0.5));
        let (n, k, pp) = (
            self.patches(),
            self.num_latent_tokens,
            self.patch_size.pow(2),
        );
        Titok {
            patch_embed: LinearConfig::new(pp, de).init(device),
            patch_pos: vit::normal2_std([n, de], se, device),
            latents: vit::normal2_std([k, de], se, device),
            latent_pos: vit::normal2_std([k, de], se, device),
            encoder: vit::blocks(de, self.encoder_heads, self.encoder_depth, device),
            encoder_norm: LayerNormConfig::new(de).init(device),
            to_code: LinearConfig::new(de, self.code_dim).init(device),
            codebook: Codebook {
                entries: vit::normal2([self.codebook_size, self.code_dim], device),
            },
            from_code: LinearConfig::new(self.code_dim, dd).init(device),
            mask_token: vit::normal1(dd, sd, device),
            decoder_pos: vit::normal2_std([k + n, dd], sd, device),
            decoder: vit::blocks(dd, self.decoder_heads, self.decoder_depth, device),
            decoder_norm: LayerNormConfig::new(dd).init(device),
            to_pixels: LinearConfig::new(dd, pp).init(device),
            patch_size: self.patch_size,
            grid: [
                self.image_size[0] / self.patch_size,
                self.image_size[1] / self.patch_size,
            ],
            commitment: self.commitment,
        }
    }
}

/// The codebook: `[C, c]` entries, compared after L2 normalisation.
#[derive(Module, Debug)]
pub struct Codebook {
    pub(crate) entries: Param<Tensor<2>>,
}

/// Rows scaled to unit length.
///
/// # Shapes
/// `[R, c]` → `[R, c]`
pub fn l2_normalise(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-6);
    x / norm
}

/// What quantising gives.
#[derive(Debug, Clone)]
pub struct Quantised {
    /// Straight-through codes `[B, K, c]`: the entries forward, the
    /// encoder's codes backward.
    pub codes: Tensor<3>,
    /// Entry ids `[B, K]`.
    pub ids: Tensor<2, Int>,
    /// Codebook loss (entries towards the codes).
    pub codebook_loss: Tensor<1>,
    /// Commitment loss (codes towards the entries), unweighted.
    pub commitment_loss: Tensor<1>,
}

impl Codebook {
    /// Entries, unit length.
    pub fn normalised(&self) -> Tensor<2> {
        l2_normalise(self.entries.val())
    }

    /// Entries `C`.
    pub fn len(&self) -> usize {
        self.entries.dims()[0]
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Quantise codes: each (normalised) takes the nearest normalised entry.
    ///
    /// # Shapes
    /// `[B, K, c]` → codes `[B, K, c]`, ids `[B, K]`
    pub fn quantise(&self, z: Tensor<3>) -> Quantised {
        let [b, k, c] = z.dims();
        let z = l2_normalise(z.reshape([b * k, c]));
        let entries = self.normalised();
        let ids = z.clone().matmul(entries.clone().transpose()).argmax(1); // [B·K, 1]
        let ids = ids.reshape([b * k]);
        let q = entries.select(0, ids.clone());
        let codebook_loss = (q.clone() - z.clone().detach()).powf_scalar(2.0).mean();
        let commitment_loss = (z.clone() - q.clone().detach()).powf_scalar(2.0).mean();
        let straight = z.clone() + (q - z).detach();
        Quantised {
            codes: straight.reshape([b, k, c]),
            ids: ids.reshape([b, k]),
            codebook_loss,
            commitment_loss,
        }
    }

    /// Entries (normalised) of ids.
    ///
    /// # Shapes
    /// `[B, K]` → `[B, K, c]`
    pub fn lookup(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, k] = ids.dims();
        let entries = self.normalised();
        let c = entries.dims()[1];
        entries.select(0, ids.reshape([b * k])).reshape([b, k, c])
    }

    /// Replace the entries `dead` (unused for a while) by live codes
    /// `codes` (`[R, c]`, e.g. a batch's encoder outputs), cycling through
    /// them: a dead entry can never win a nearest-neighbour contest, so
    /// without this the usable codebook only shrinks.
    pub fn reseed(self, dead: &[usize], codes: Tensor<2>) -> Codebook {
        if dead.is_empty() || codes.dims()[0] == 0 {
            return self;
        }
        let rows = codes.dims()[0];
        let device = codes.device();
        let codes = codes.detach();
        let entries = self.entries.map(|mut entries| {
            let require_grad = entries.is_require_grad();
            for (i, &d) in dead.iter().enumerate() {
                let idx = Tensor::<1, Int>::from_data(
                    TensorData::new(vec![(i % rows) as i64], [1]),
                    &device,
                );
                let row = codes.clone().select(0, idx);
                let c = row.dims()[1];
                entries = entries.slice_assign([d..d + 1, 0..c], row);
            }
            entries.detach().set_require_grad(require_grad)
        });
        Codebook { entries }
    }
}

/// The tokenizer.
#[derive(Module, Debug)]
pub struct Titok {
    pub(crate) patch_embed: Linear,
    pub(crate) patch_pos: Param<Tensor<2>>,
    pub(crate) latents: Param<Tensor<2>>,
    pub(crate) latent_pos: Param<Tensor<2>>,
    pub(crate) encoder: TransformerEncoder,
    pub(crate) encoder_norm: LayerNorm,
    pub(crate) to_code: Linear,
    /// The codebook.
    pub codebook: Codebook,
    pub(crate) from_code: Linear,
    pub(crate) mask_token: Param<Tensor<1>>,
    pub(crate) decoder_pos: Param<Tensor<2>>,
    pub(crate) decoder: TransformerEncoder,
    pub(crate) decoder_norm: LayerNorm,
    pub(crate) to_pixels: Linear,
    pub(crate) patch_size: usize,
    pub(crate) grid: [usize; 2],
    pub(crate) commitment: f64,
}

/// Frames cut into flattened patches.
///
/// # Shapes
/// `[B, 1, H, W]` → `[B, N, P·P]`
pub fn patchify(x: Tensor<4>, p: usize) -> Tensor<3> {
    let [b, _, h, w] = x.dims();
    let (gh, gw) = (h / p, w / p);
    x.reshape([b, gh, p, gw, p])
        .permute([0, 1, 3, 2, 4])
        .reshape([b, gh * gw, p * p])
}

/// Patches put back into frames (the inverse of [`patchify`]).
///
/// # Shapes
/// `[B, N, P·P]` → `[B, 1, gh·P, gw·P]`
pub fn unpatchify(x: Tensor<3>, p: usize, [gh, gw]: [usize; 2]) -> Tensor<4> {
    let b = x.dims()[0];
    x.reshape([b, gh, gw, p, p])
        .permute([0, 1, 3, 2, 4])
        .reshape([b, 1, gh * p, gw * p])
}

/// A forward pass for training.
#[derive(Debug, Clone)]
pub struct Reconstruction {
    /// Decoded frames `[B, 1, H, W]`.
    pub frames: Tensor<4>,
    /// Token ids `[B, K]`.
    pub ids: Tensor<2, Int>,
    /// Codebook + commitment-weighted loss.
    pub quantiser_loss: Tensor<1>,
    /// Encoder codes before quantisation, normalised `[B·K, c]` (for
    /// re-seeding dead entries).
    pub codes: Tensor<2>,
}

impl Titok {
    /// Continuous codes of frames.
    ///
    /// # Shapes
    /// `[B, 1, H, W]` → `[B, K, c]`
    pub fn encode(&self, x: Tensor<4>) -> Tensor<3> {
        let b = x.dims()[0];
        let patches = self.patch_embed.forward(patchify(x, self.patch_size));
        let [_, n, de] = patches.dims();
        let patches = patches + self.patch_pos.val().reshape([1, n, de]);
        let k = self.latents.dims()[0];
        let latents = (self.latents.val() + self.latent_pos.val())
            .reshape([1, k, de])
            .repeat_dim(0, b);
        let tokens = Tensor::cat(vec![patches, latents], 1);
        let out = self
            .encoder_norm
            .forward(self.encoder.forward(TransformerEncoderInput::new(tokens)));
        self.to_code.forward(out.narrow(1, n, k))
    }

    /// Frames from quantised codes.
    ///
    /// # Shapes
    /// `[B, K, c]` → `[B, 1, H, W]`
    pub fn decode(&self, codes: Tensor<3>) -> Tensor<4> {
        let [b, k, _] = codes.dims();
        let n = self.grid[0] * self.grid[1];
        let tokens = self.from_code.forward(codes);
        let dd = tokens.dims()[2];
        let masks = self
            .mask_token
            .val()
            .reshape([1, 1, dd])
            .repeat_dim(1, n)
            .repeat_dim(0, b);
        let all =
            Tensor::cat(vec![tokens, masks], 1) + self.decoder_pos.val().reshape([1, k + n, dd]);
        let out = self
            .decoder_norm
            .forward(self.decoder.forward(TransformerEncoderInput::new(all)));
        let pixels = self.to_pixels.forward(out.narrow(1, k, n));
        unpatchify(pixels, self.patch_size, self.grid)
    }

    /// Encode, quantise and decode (training).
    ///
    /// # Shapes
    /// `[B, 1, H, W]` → frames `[B, 1, H, W]`, ids `[B, K]`
    pub fn forward(&self, x: Tensor<4>) -> Reconstruction {
        let z = self.encode(x);
        let [b, k, c] = z.dims();
        let codes = l2_normalise(z.clone().reshape([b * k, c])).detach();
        let q = self.codebook.quantise(z);
        let quantiser_loss = q.codebook_loss + q.commitment_loss * self.commitment;
        Reconstruction {
            frames: self.decode(q.codes),
            ids: q.ids,
            quantiser_loss,
            codes,
        }
    }

    /// Encode and decode without quantising: the decoder reads the
    /// normalised continuous codes (the quantiser's warm-up in training).
    ///
    /// # Shapes
    /// `[B, 1, H, W]` → `[B, 1, H, W]`
    pub fn forward_unquantised(&self, x: Tensor<4>) -> Tensor<4> {
        let z = self.encode(x);
        let [b, k, c] = z.dims();
        self.decode(l2_normalise(z.reshape([b * k, c])).reshape([b, k, c]))
    }

    /// Normalised continuous codes of frames, one row per token (for
    /// seeding the codebook from data).
    ///
    /// # Shapes
    /// `[B, 1, H, W]` → `[B·K, c]`
    pub fn codes(&self, x: Tensor<4>) -> Tensor<2> {
        let z = self.encode(x);
        let [b, k, c] = z.dims();
        l2_normalise(z.reshape([b * k, c])).detach()
    }

    /// Token ids of frames.
    ///
    /// # Shapes
    /// `[B, 1, H, W]` → `[B, K]`
    pub fn tokenize(&self, x: Tensor<4>) -> Tensor<2, Int> {
        self.codebook.quantise(self.encode(x)).ids
    }

    /// Frames from token ids.
    ///
    /// # Shapes
    /// `[B, K]` → `[B, 1, H, W]`
    pub fn detokenize(&self, ids: Tensor<2, Int>) -> Tensor<4> {
        self.decode(self.codebook.lookup(ids))
    }
}

/// How often each codebook entry was chosen, over a window of steps; the
/// entries never chosen in a full window are dead.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    counts: Vec<u64>,
}

impl Usage {
    /// A window over `entries` entries.
    pub fn new(entries: usize) -> Usage {
        Usage {
            counts: vec![0; entries],
        }
    }

    /// Count the ids of a batch.
    pub fn add(&mut self, ids: &[i64]) {
        for &i in ids {
            if let Some(c) = usize::try_from(i).ok().and_then(|i| self.counts.get_mut(i)) {
                *c += 1;
            }
        }
    }

    /// Entries used at least once.
    pub fn used(&self) -> usize {
        self.counts.iter().filter(|&&c| c > 0).count()
    }

    /// The entries never chosen; the window starts again.
    pub fn take_dead(&mut self) -> Vec<usize> {
        let dead = (0..self.counts.len())
            .filter(|&i| self.counts[i] == 0)
            .collect();
        self.counts.iter_mut().for_each(|c| *c = 0);
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{DeviceChoice, device};

    fn tiny() -> TitokConfig {
        TitokConfig::new()
            .with_image_size([32, 32])
            .with_patch_size(8)
            .with_num_latent_tokens(4)
            .with_codebook_size(16)
            .with_code_dim(6)
            .with_encoder_width(16)
            .with_encoder_depth(1)
            .with_encoder_heads(2)
            .with_decoder_width(16)
            .with_decoder_depth(1)
            .with_decoder_heads(2)
    }

    #[test]
    fn shapes_and_patches_round_trip() {
        let dev = device(DeviceChoice::Cpu);
        let c = tiny();
        c.check().unwrap();
        assert_eq!(c.patches(), 16);
        assert_eq!(c.bits_per_frame(), 16.0);
        let m = c.init(&dev);
        let x = Tensor::<4>::random([3, 1, 32, 32], burn::tensor::Distribution::Default, &dev);
        let back = unpatchify(patchify(x.clone(), 8), 8, [4, 4]);
        let diff: f32 = (back - x.clone()).abs().max().into_scalar();
        assert_eq!(diff, 0.0, "patchify and unpatchify are inverses");
        assert_eq!(m.encode(x.clone()).dims(), [3, 4, 6]);
        let r = m.forward(x.clone());
        assert_eq!(r.frames.dims(), [3, 1, 32, 32]);
        assert_eq!(r.ids.dims(), [3, 4]);
        let ids = m.tokenize(x);
        assert_eq!(m.detokenize(ids).dims(), [3, 1, 32, 32]);
        assert!(TitokConfig::new().with_patch_size(15).check().is_err());
        assert!(tiny().with_encoder_heads(3).check().is_err());
    }

    #[test]
    fn the_quantiser_picks_the_nearest_entry_and_passes_gradients_through() {
        let dev = device(DeviceChoice::Cpu).autodiff();
        let m = tiny().init(&dev);
        // Codes next to entries 3 and 7 (up to scale) pick them. Not equal
        // to them: an exact match has a codebook loss of zero and no
        // gradient, which made this test fail now and then.
        let entries = m.codebook.normalised();
        let pick = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 7], [2]), &dev);
        let picked: Vec<f32> = (entries.select(0, pick) * 5.0 + 0.05)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let z = Tensor::<3>::from_data(TensorData::new(picked, [1, 2, 6]), &dev).require_grad();
        let q = m.codebook.quantise(z.clone());
        let ids: Vec<i64> = q
            .ids
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(ids, vec![3, 7]);
        // Straight through: the loss on the quantised codes reaches the
        // encoder's codes (and the codebook loss reaches the entries).
        let loss = q.codes.powf_scalar(2.0).sum() + q.codebook_loss;
        let grads = loss.backward();
        let gz = z.grad(&grads).expect("gradient at the codes");
        let gz: f32 = gz.abs().sum().into_scalar();
        assert!(gz > 0.0, "no gradient passed the quantiser");
        let ge = m
            .codebook
            .entries
            .val()
            .grad(&grads)
            .expect("gradient at the codebook");
        let ge: f32 = ge.abs().sum().into_scalar();
        assert!(ge > 0.0, "the codebook loss moves the entries");
    }

    #[test]
    fn dead_entries_are_reseeded_from_live_codes() {
        let dev = device(DeviceChoice::Cpu);
        let m = tiny().init(&dev);
        let mut usage = Usage::new(16);
        usage.add(&[0, 1, 1, 5, 99, -1]);
        assert_eq!(usage.used(), 3);
        let dead = usage.take_dead();
        assert_eq!(dead.len(), 13);
        assert!(!dead.contains(&1) && dead.contains(&2));
        assert_eq!(usage.used(), 0, "a new window");
        // As many live codes as dead entries, all different.
        let codes = l2_normalise(Tensor::<2>::random(
            [13, 6],
            burn::tensor::Distribution::Default,
            &dev,
        ));
        let before = m.codebook.normalised();
        let book = m.codebook.reseed(&dead, codes.clone());
        let after = book.normalised();
        let row = |t: &Tensor<2>, i: usize| -> Vec<f32> {
            t.clone()
                .narrow(0, i, 1)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        // Dead entry 2 (the first dead) is now live code 0; entry 1 kept.
        let close = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5);
        assert!(close(row(&after, 2), row(&codes, 0)));
        assert!(close(row(&after, 3), row(&codes, 1)));
        assert!(close(row(&after, 1), row(&before, 1)));
        // A code equal to a re-seeded entry now picks it.
        let q = book.quantise(codes.narrow(0, 0, 1).reshape([1, 1, 6]));
        let id: Vec<i64> = q
            .ids
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(id, vec![2]);
    }
}
