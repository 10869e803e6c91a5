//! The UME 4D encoder of seed 000: a volume is a sequence of frames (z
//! slices of a 3D multi-modal scan, or time frames of a cine), each frame
//! of each modality cut into patches and embedded separately. A keyframe
//! selector scores the frames three ways — a uniform prior, content (each
//! frame embedding's distance from the sequence mean, the measure the
//! model-free content strategy uses) and learned attention (a query over
//! frame summaries centred on the sequence mean and passed through a small
//! MLP, so a score can peak at both extremes of a cycle, which a linear
//! score of the raw summary cannot) — and fuses the scores with learned
//! softmax weights; the top-`K` frames with temporal non-maximum
//! suppression ([`crate::keyframes::spread_top_k`]) go on, with a
//! straight-through mask so the scores receive gradients. Their tokens are
//! compressed (`compression_ratio` patches averaged), fused within each
//! modality (self-attention), across modalities at each position (attention
//! over modalities plus learned modality gates, exposed for inspection) and
//! globally (a ViT trunk with a class token). Heads: frame-by-frame
//! segmentation (a frame's own tokens query the keyframe context, then a
//! linear patch decoder) and the VoCo projection head.
//!
//! Shapes use `B` batch, `M` modalities, `T` frames, `H×W` frame size, `P`
//! patch size, `N = (H/P)(W/P)` patches per frame, `D` embedding width, `K`
//! keyframes, `N' = N / compression_ratio`.

use burn::module::Param;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderInput};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

mod run;
mod selection;
#[cfg(test)]
mod tests;

pub use run::{
    EncoderCheckpoint, KeyframeReport, case_keyframes, frame_logits, frames_of, input_tensor,
    input_values, keyframe_report, load_encoder, save_encoder, segment_volume,
};
pub use selection::Selection;

/// Encoder hyper-parameters, with the seed's names and defaults
/// (`configs/ume_brats.json`).
#[derive(Config, Debug)]
pub struct UmeConfig {
    /// Modalities (4 for BraTS, 1 for a cine).
    pub input_channels: usize,
    /// Token width.
    #[config(default = 768)]
    pub embed_dim: usize,
    /// Attention heads.
    #[config(default = 12)]
    pub num_heads: usize,
    /// Trunk transformer layers.
    #[config(default = 12)]
    pub num_layers: usize,
    /// Square patch side in pixels.
    #[config(default = 32)]
    pub patch_size: usize,
    /// Frame size `[H, W]` (multiples of the patch size).
    #[config(default = "[256, 256]")]
    pub image_size: [usize; 2],
    /// Segmentation classes (with background).
    #[config(default = 4)]
    pub num_classes: usize,
    /// Keyframes selected.
    #[config(default = 10)]
    pub max_keyframes: usize,
    /// Patches averaged into one context token.
    #[config(default = 4)]
    pub compression_ratio: usize,
    /// Longest frame sequence (frame-position table size).
    #[config(default = 160)]
    pub max_frames: usize,
    /// VoCo projection width.
    #[config(default = 128)]
    pub voco_dim: usize,
    /// Label id written for each non-background class (empty: class c is
    /// label c).
    #[config(default = "Vec::new()")]
    pub label_ids: Vec<u16>,
}

/// The fused keyframe context.
#[derive(Debug, Clone)]
pub struct Context {
    /// Trunk output `[B, 1 + K·N', D]` (class token first).
    pub tokens: Tensor<3>,
    /// Modality gate weights `[B, M]` (softmax over modalities).
    pub gates: Tensor<2>,
}

/// The encoder.
#[derive(Module, Debug)]
pub struct UmeEncoder {
    patch: Vec<Conv2d>,
    modality_embed: Param<Tensor<2>>,
    patch_pos: Param<Tensor<2>>,
    frame_pos: Embedding,
    attn_query: Param<Tensor<1>>,
    attn_hidden: Linear,
    attn_key: Linear,
    fusion_logits: Param<Tensor<1>>,
    intra: TransformerEncoder,
    inter: MultiHeadAttention,
    gate: Linear,
    cls: Param<Tensor<1>>,
    trunk: TransformerEncoder,
    norm: LayerNorm,
    seg_cross: MultiHeadAttention,
    seg_norm: LayerNorm,
    seg_head: Linear,
    voco_hidden: Linear,
    voco_out: Linear,
    patch_size: usize,
    grid: [usize; 2],
    keyframes: usize,
    compression: usize,
    classes: usize,
}

impl UmeConfig {
    /// Check the sizes fit together.
    pub fn check(&self) -> Result<(), String> {
        super::vit::check_patches(self.image_size, self.patch_size)?;
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(format!(
                "embed_dim {} must be a multiple of num_heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        let n = self.patches();
        let r = self.compression_ratio;
        if r == 0 || !n.is_multiple_of(r) {
            return Err(format!(
                "compression_ratio {r} must divide the {n} patches of a frame"
            ));
        }
        if self.input_channels == 0 || self.max_keyframes == 0 {
            return Err("input_channels and max_keyframes must be at least 1".into());
        }
        Ok(())
    }

    /// Patches per frame.
    pub fn patches(&self) -> usize {
        (self.image_size[0] / self.patch_size.max(1))
            * (self.image_size[1] / self.patch_size.max(1))
    }

    /// Build the encoder with fresh weights.
    pub fn init(&self, device: &Device) -> UmeEncoder {
        let d = self.embed_dim;
        let p = self.patch_size;
        let normal = |shape: [usize; 2]| super::vit::normal2(shape, device);
        let normal1 = |n: usize| super::vit::normal1(n, 0.02, device);
        let mha = || {
            MultiHeadAttentionConfig::new(d, self.num_heads)
                .with_dropout(0.0)
                .init(device)
        };
        let layers = |n| super::vit::blocks(d, self.num_heads, n, device);
        UmeEncoder {
            patch: (0..self.input_channels)
                .map(|_| {
                    Conv2dConfig::new([1, d], [p, p])
                        .with_stride([p, p])
                        .init(device)
                })
                .collect(),
            modality_embed: normal([self.input_channels, d]),
            patch_pos: normal([self.patches(), d]),
            frame_pos: EmbeddingConfig::new(self.max_frames, d)
                .with_initializer(burn::nn::Initializer::Normal {
                    mean: 0.0,
                    std: 0.02,
                })
                .init(device),
            attn_query: normal1(d),
            attn_hidden: LinearConfig::new(d, d).init(device),
            attn_key: LinearConfig::new(d, d).init(device),
            fusion_logits: Param::from_tensor(Tensor::zeros([3], device)),
            intra: layers(1),
            inter: mha(),
            gate: LinearConfig::new(d, 1).init(device),
            cls: normal1(d),
            trunk: layers(self.num_layers),
            norm: LayerNormConfig::new(d).init(device),
            seg_cross: mha(),
            seg_norm: LayerNormConfig::new(d).init(device),
            seg_head: LinearConfig::new(d, p * p * self.num_classes).init(device),
            voco_hidden: LinearConfig::new(d, d).init(device),
            voco_out: LinearConfig::new(d, self.voco_dim).init(device),
            patch_size: p,
            grid: [self.image_size[0] / p, self.image_size[1] / p],
            keyframes: self.max_keyframes,
            compression: self.compression_ratio,
            classes: self.num_classes,
        }
    }
}

impl UmeEncoder {
    /// Patch tokens of every frame of every modality, with modality and
    /// patch-position embeddings added (frame positions are added to the
    /// selected frames in [`UmeEncoder::context`], so content change is
    /// measured on the images alone).
    ///
    /// # Shapes
    /// `[B, M, T, H, W]` → `[B, M, T, N, D]`
    pub fn embed(&self, x: Tensor<5>) -> Tensor<5> {
        let [b, m, t, h, w] = x.dims();
        let n = self.grid[0] * self.grid[1];
        let per_modality: Vec<Tensor<4>> = (0..m)
            .map(|k| {
                let frames = x.clone().narrow(1, k, 1).reshape([b * t, 1, h, w]);
                let tokens = self.patch_tokens(k, frames); // [B·T, N, D]
                let d = tokens.dims()[2];
                tokens.reshape([b, t, n, d])
            })
            .collect();
        let tokens = Tensor::stack::<5>(per_modality, 1); // [B, M, T, N, D]
        let d = tokens.dims()[4];
        let modality = self.modality_embed.val().reshape([1, m, 1, 1, d]);
        let patch = self.patch_pos.val().reshape([1, 1, 1, n, d]);
        tokens + modality + patch
    }

    /// Modality `k`'s patch tokens of frames, as one matrix product. The
    /// patch convolution has kernel = stride = P and no padding, so each
    /// token is its patch's P·P pixels times the kernel; Burn's convolution
    /// ran it as an unfold, a product and a transpose back to tokens, and
    /// this form (the same weights and sums) skips those copies and feeds
    /// gemm `[N, P·P] · [P·P, D]` products, frames in parallel: the patch embedding
    /// is most of the encoder's work on the standard config.
    ///
    /// # Shapes
    /// `[F, 1, H, W]` → `[F, N, D]`
    fn patch_tokens(&self, k: usize, frames: Tensor<4>) -> Tensor<3> {
        let p = self.patch_size;
        let conv = &self.patch[k];
        let d = conv.weight.dims()[0];
        let patches = super::tokenizer::patchify(frames, p); // [F, N, P·P]
        let weight = conv.weight.val().reshape([d, p * p]).transpose();
        let mut tokens = patches.matmul(weight.reshape([1, p * p, d]));
        if let Some(bias) = &conv.bias {
            tokens = tokens + bias.val().reshape([1, 1, d]);
        }
        tokens
    }

    /// Frame-position embeddings of frame indices, `[len, D]`.
    fn frame_positions(&self, frames: &[usize], device: &Device) -> Tensor<2> {
        let ids: Vec<i64> = frames.iter().map(|&f| f as i64).collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, frames.len()]), device);
        let e = self.frame_pos.forward(ids);
        let d = e.dims()[2];
        e.reshape([frames.len(), d])
    }

    /// Fuse the selected frames into the keyframe context.
    ///
    /// # Shapes
    /// tokens `[B, M, T, N, D]` → context tokens `[B, 1 + K·N', D]`, gates `[B, M]`
    pub fn context(&self, tokens: Tensor<5>, selection: &Selection) -> Context {
        let [b, m, _, n, d] = tokens.dims();
        let device = tokens.device();
        let k = selection.indices.first().map_or(0, Vec::len);
        // Gather the keyframes of each batch item, scaled by the mask.
        let picked: Vec<Tensor<5>> = selection
            .indices
            .iter()
            .enumerate()
            .map(|(bi, idx)| {
                let ids: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [k]), &device);
                let frames = tokens.clone().narrow(0, bi, 1).select(2, ids.clone()) // [1, M, K, N, D]
                    + self.frame_positions(idx, &device).reshape([1, 1, k, 1, d]);
                let t = selection.mask.dims()[1];
                let scale = selection
                    .mask
                    .clone()
                    .narrow(0, bi, 1)
                    .reshape([t])
                    .select(0, ids)
                    .reshape([1, 1, k, 1, 1]);
                frames * scale
            })
            .collect();
        let x = Tensor::cat(picked, 0); // [B, M, K, N, D]
        // Token compression: average groups of `compression` patches.
        let r = self.compression;
        let nc = n / r;
        let x = x
            .reshape([b, m, k, nc, r, d])
            .mean_dim(4)
            .reshape([b, m, k * nc, d]);
        // Intra-modal: self-attention within each modality.
        let x = self
            .intra
            .forward(TransformerEncoderInput::new(x.reshape([b * m, k * nc, d])))
            .reshape([b, m, k * nc, d]);
        // Modality gates from each modality's summary.
        let gates = softmax(
            self.gate
                .forward(x.clone().mean_dim(2).reshape([b, m, d]))
                .reshape([b, m]),
            1,
        );
        // Inter-modal: attention across modalities at each position.
        let per_position = x.swap_dims(1, 2).reshape([b * k * nc, m, d]);
        let mixed = self
            .inter
            .forward(MhaInput::self_attn(per_position.clone()))
            .context
            + per_position;
        let mixed = mixed.reshape([b, k * nc, m, d]);
        let fused = (mixed * gates.clone().reshape([b, 1, m, 1]))
            .sum_dim(2)
            .reshape([b, k * nc, d]);
        // Global: class token + the trunk.
        let cls = self.cls.val().reshape([1, 1, d]).repeat_dim(0, b);
        let seq = Tensor::cat(vec![cls, fused], 1);
        let tokens = self
            .norm
            .forward(self.trunk.forward(TransformerEncoderInput::new(seq)));
        Context { tokens, gates }
    }

    /// Segmentation logits of frame `t` given the keyframe context: the
    /// frame's tokens (summed over modalities, plus its frame position)
    /// attend to the context, then a linear decoder turns each token into a
    /// `P×P` patch of class logits.
    ///
    /// # Shapes
    /// tokens `[B, M, T, N, D]`, context `[B, S, D]` → `[B, C, H, W]`
    pub fn segment_frame(&self, tokens: &Tensor<5>, t: usize, context: &Context) -> Tensor<4> {
        let [b, m, _, n, d] = tokens.dims();
        let frame = tokens.clone().narrow(2, t, 1).reshape([b, m, n, d]);
        let q = frame.sum_dim(1).reshape([b, n, d])
            + self
                .frame_positions(&[t], &tokens.device())
                .reshape([1, 1, d]);
        let attended = self
            .seg_cross
            .forward(MhaInput::new(
                q.clone(),
                context.tokens.clone(),
                context.tokens.clone(),
            ))
            .context;
        let h = self.seg_norm.forward(q + attended);
        let p = self.patch_size;
        let [gh, gw] = self.grid;
        let c = self.classes;
        // [B, N, P·P·C] → [B, C, gh·P, gw·P]
        self.seg_head
            .forward(h)
            .reshape([b, gh, gw, p, p, c])
            .permute([0, 5, 1, 3, 2, 4])
            .reshape([b, c, gh * p, gw * p])
    }

    /// VoCo embedding of crops: every frame of the crop embedded (patch
    /// grid of the crop size), fused without selection, the class token
    /// projected and L2-normalised.
    ///
    /// # Shapes
    /// `[B, M, T, h, w]` (h, w multiples of P; (h/P)(w/P) a multiple of the
    /// compression ratio) → `[B, voco_dim]`
    pub fn voco(&self, crops: Tensor<5>) -> Tensor<2> {
        let [b, m, t, h, w] = crops.dims();
        let d = self.cls.dims()[0];
        let p = self.patch_size;
        let n = (h / p) * (w / p);
        let device = crops.device();
        let per_modality: Vec<Tensor<4>> = (0..m)
            .map(|k| {
                let frames = crops.clone().narrow(1, k, 1).reshape([b * t, 1, h, w]);
                self.patch_tokens(k, frames).reshape([b, t, n, d])
            })
            .collect();
        let tokens = Tensor::stack::<5>(per_modality, 1)
            + self.modality_embed.val().reshape([1, m, 1, 1, d]);
        let all: Vec<usize> = (0..t).collect();
        let selection = Selection {
            indices: vec![all; b],
            uniform: Tensor::ones([b, t], &device),
            content: Tensor::ones([b, t], &device),
            attention: Tensor::ones([b, t], &device),
            fused: Tensor::ones([b, t], &device),
            weights: Tensor::ones([3], &device) / 3.0,
            mask: Tensor::ones([b, t], &device),
        };
        let ctx = self.context(tokens, &selection);
        let cls = ctx.tokens.narrow(1, 0, 1).reshape([b, d]);
        let z = self.voco_out.forward(gelu(self.voco_hidden.forward(cls)));
        let norm = z.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
        z / norm
    }

    /// Number of keyframes this encoder selects by default.
    pub fn max_keyframes(&self) -> usize {
        self.keyframes
    }
}
