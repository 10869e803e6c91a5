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
//! globally (a ViT trunk with a class token). Heads: frame-by-frame segmentation (a frame's own tokens
//! query the keyframe context, then a linear patch decoder) and the VoCo
//! projection head.
//!
//! Shapes use `B` batch, `M` modalities, `T` frames, `H×W` frame size, `P`
//! patch size, `N = (H/P)(W/P)` patches per frame, `D` embedding width, `K`
//! keyframes, `N' = N / compression_ratio`.

use crate::keyframes::FrameAxis;
use burn::module::Param;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderInput};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

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

/// Per-frame scores of each strategy, their fusion and the selection.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Selected frames per batch item, ascending.
    pub indices: Vec<Vec<usize>>,
    /// Uniform prior `[B, T]` in [0, 1].
    pub uniform: Tensor<2>,
    /// Content change `[B, T]` in [0, 1].
    pub content: Tensor<2>,
    /// Learned attention `[B, T]` in [0, 1].
    pub attention: Tensor<2>,
    /// Fused score `[B, T]`.
    pub fused: Tensor<2>,
    /// Fusion weights `[3]` (uniform, content, attention), summing to 1.
    pub weights: Tensor<1>,
    /// Straight-through selection mask `[B, T]`: 1 at selected frames in the
    /// forward pass, the gradient of a softmax of the fused scores.
    pub mask: Tensor<2>,
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

/// Scale each row of `[B, T]` scores to [0, 1] by its maximum.
fn unit_rows(s: Tensor<2>) -> Tensor<2> {
    let max = s.clone().max_dim(1).clamp_min(1e-12);
    s / max
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

    /// Score and select keyframes.
    ///
    /// # Shapes
    /// tokens `[B, M, T, N, D]`; `k` ≤ T frames are selected.
    pub fn select(&self, tokens: Tensor<5>, k: usize, axis: FrameAxis) -> Selection {
        let [b, _, t, _, d] = tokens.dims();
        let device = tokens.device();
        let k = k.clamp(1, t);
        // Frame summaries [B, T, D]: mean over modalities and patches.
        let summary = tokens.mean_dim(3).mean_dim(1).reshape([b, t, d]);
        // Uniform prior: the model-free strategy's tent around the K evenly
        // spaced frames (1 on them).
        let prior: Vec<f32> = crate::keyframes::uniform_scores(t, k)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let uniform = Tensor::<1>::from_data(TensorData::new(prior, [t]), &device)
            .reshape([1, t])
            .repeat_dim(0, b);
        // Frame summaries relative to the sequence: what changes.
        let centred = summary.clone() - summary.mean_dim(1); // [B, T, D]
        // Content: distance from the sequence mean.
        let content = if t > 1 {
            unit_rows(
                centred
                    .clone()
                    .powi_scalar(2)
                    .sum_dim(2)
                    // A frame at the mean would give sqrt'(0) = ∞ in the
                    // consistency loss's gradient.
                    .clamp_min(1e-12)
                    .sqrt()
                    .reshape([b, t]),
            )
        } else {
            Tensor::ones([b, t], &device)
        };
        // Attention: a learned query over keys of the centred summaries.
        let keys = self
            .attn_key
            .forward(gelu(self.attn_hidden.forward(centred))); // [B, T, D]
        let logits = keys
            .matmul(self.attn_query.val().reshape([1, d, 1]))
            .reshape([b, t])
            / (d as f64).sqrt();
        let attention = unit_rows(softmax(logits, 1));
        let weights = softmax(self.fusion_logits.val(), 0);
        let w = |i: usize| weights.clone().narrow(0, i, 1).reshape([1, 1]);
        let fused =
            uniform.clone() * w(0) + content.clone().detach() * w(1) + attention.clone() * w(2);
        // Hard top-K (spread) on the host; straight-through mask for
        // gradients.
        let scores: Vec<f32> = fused
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let mut indices = Vec::with_capacity(b);
        let mut hard = vec![0.0f32; b * t];
        for bi in 0..b {
            let chosen = crate::keyframes::spread_top_k(&scores[bi * t..(bi + 1) * t], k, axis);
            for &c in &chosen {
                hard[bi * t + c] = 1.0;
            }
            indices.push(chosen);
        }
        let hard = Tensor::<2>::from_data(TensorData::new(hard, [b, t]), &device);
        let soft = softmax(fused.clone() * 10.0, 1) * k as f64;
        let mask = hard + soft.clone() - soft.detach();
        Selection {
            indices,
            uniform,
            content,
            attention,
            fused,
            weights,
            mask,
        }
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

/// An encoder checkpoint's `config.json`: the model section plus a kind tag
/// so a U-Net folder is never mistaken for an encoder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EncoderCheckpoint {
    /// Always "ume_encoder".
    pub kind: String,
    /// The encoder's hyper-parameters.
    pub model: UmeConfig,
}

/// Save an encoder checkpoint folder (`config.json` + `model.bpk`).
pub fn save_encoder(
    dir: &std::path::Path,
    config: &UmeConfig,
    model: &UmeEncoder,
) -> Result<(), super::segment::SegmentError> {
    let json = EncoderCheckpoint {
        kind: "ume_encoder".into(),
        model: config.clone(),
    };
    super::segment::save_folder(dir, &json, model)
}

/// Load an encoder checkpoint folder.
pub fn load_encoder(
    dir: &std::path::Path,
    device: &Device,
) -> Result<(UmeConfig, UmeEncoder), super::segment::SegmentError> {
    let ck: EncoderCheckpoint = super::segment::read_config(dir, "a UME encoder checkpoint")?;
    if ck.kind != "ume_encoder" {
        return Err(super::segment::SegmentError::Checkpoint {
            path: dir.join("config.json"),
            problem: format!("kind {:?} is not a UME encoder", ck.kind),
        });
    }
    ck.model
        .check()
        .map_err(|problem| super::segment::SegmentError::Checkpoint {
            path: dir.join("config.json"),
            problem,
        })?;
    let model = super::segment::load_folder_weights(ck.model.init(device), dir)?;
    Ok((ck.model, model))
}

/// Modalities × frames of (values, nx, ny) as the encoder reads them: a
/// cine (first volume with several time frames) gives one modality whose
/// frames are the middle z slice of each time frame; 3D volumes give their
/// z slices, one modality per volume.
pub fn frames_of(volumes: &[&crate::volume::Volume]) -> Vec<Vec<(Vec<f32>, usize, usize)>> {
    let Some(first) = volumes.first() else {
        return Vec::new();
    };
    let [nx, ny, nz] = first.dims;
    let plane = nx * ny;
    if first.frames > 1 {
        let mid = nz / 2;
        let frames = (0..first.frames)
            .map(|t| {
                let f = first.frame_f32(t).unwrap_or_default();
                let slice = f
                    .get(mid * plane..(mid + 1) * plane)
                    .unwrap_or(&[])
                    .to_vec();
                (slice, nx, ny)
            })
            .collect();
        return vec![frames];
    }
    volumes
        .iter()
        .filter(|v| v.dims == first.dims)
        .map(|v| {
            let f = v.frame_f32(0).unwrap_or_default();
            (0..nz)
                .map(|k| {
                    (
                        f.get(k * plane..(k + 1) * plane).unwrap_or(&[]).to_vec(),
                        nx,
                        ny,
                    )
                })
                .collect()
        })
        .collect()
}

/// Frames as the encoder reads them: `[1, M, T, H, W]` values, each frame
/// resampled (bilinear) to the image size and z-scored per modality over
/// its non-zero voxels. `frames[m][t]` is frame t of modality m as
/// (values, nx, ny).
pub fn input_tensor(
    config: &UmeConfig,
    frames: &[Vec<(Vec<f32>, usize, usize)>],
    device: &Device,
) -> Tensor<5> {
    let m = frames.len();
    let t = frames.first().map_or(0, Vec::len);
    let [h, w] = config.image_size;
    Tensor::from_data(
        TensorData::new(input_values(config, frames), [1, m, t, h, w]),
        device,
    )
}

/// The values of [`input_tensor`], `[M, T, H, W]` flattened. Non-finite
/// voxels count as 0.
pub fn input_values(config: &UmeConfig, frames: &[Vec<(Vec<f32>, usize, usize)>]) -> Vec<f32> {
    use super::segment::{resample, zscore_stats};
    let [h, w] = config.image_size;
    let mut data = Vec::new();
    for modality in frames {
        let (mean, sd) = zscore_stats(modality.iter().flat_map(|(v, _, _)| v.iter().copied()));
        for (vals, nx, ny) in modality {
            let finite: Vec<f32> = vals
                .iter()
                .map(|&v| if v.is_finite() { v } else { 0.0 })
                .collect();
            let start = data.len();
            resample(&finite, *nx, *ny, [w, h], &mut data);
            for v in &mut data[start..] {
                *v = ((f64::from(*v) - mean) / sd) as f32;
            }
        }
    }
    data
}

/// What `ume keyframes --model` reports: per-frame scores of every
/// strategy, the fused score, the fusion weights and the selection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyframeReport {
    /// Frames in the sequence.
    pub frames: usize,
    /// Selected frames, ascending, 0-based.
    pub selected: Vec<usize>,
    /// Per-frame scores of each strategy.
    pub uniform: Vec<f32>,
    /// Content change.
    pub content: Vec<f32>,
    /// Learned attention.
    pub attention: Vec<f32>,
    /// Fused.
    pub fused: Vec<f32>,
    /// Fusion weights (uniform, content, attention).
    pub weights: Vec<f32>,
    /// Modality gate weights of the selected context.
    pub gates: Vec<f32>,
    /// What the frames are (the selection's spacing is cyclic in time).
    pub axis: FrameAxis,
}

impl KeyframeReport {
    /// The keyframes one strategy selects: the fused selection is the
    /// encoder's own; a single strategy picks from its own scores the same
    /// way (spread top-K), uniform exactly as the model-free strategy.
    pub fn selection(&self, strategy: crate::keyframes::Strategy, k: usize) -> Vec<usize> {
        use crate::keyframes::{Strategy, spread_top_k, uniform_indices};
        match strategy {
            Strategy::Fused => self.selected.clone(),
            Strategy::Uniform => uniform_indices(self.frames, k),
            Strategy::Content => spread_top_k(&self.content, k, self.axis),
            Strategy::Attention => spread_top_k(&self.attention, k, self.axis),
        }
    }
}

/// Keyframes of a case (its volumes in modality order, on one grid): the
/// inputs are checked against the encoder (enough modalities, 1 to
/// `max_frames` frames), then [`keyframe_report`] runs on its frames — z
/// slices of a volume, or the time frames of a cine's middle slice.
pub fn case_keyframes(
    config: &UmeConfig,
    encoder: &UmeEncoder,
    volumes: &[&crate::volume::Volume],
    k: usize,
    device: &Device,
) -> Result<KeyframeReport, super::segment::SegmentError> {
    use super::segment::SegmentError;
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no image".into()));
    };
    let mut frames = frames_of(volumes);
    if frames.len() < config.input_channels {
        return Err(SegmentError::Input(format!(
            "the encoder takes {} modalities but the case has {}",
            config.input_channels,
            frames.len()
        )));
    }
    frames.truncate(config.input_channels);
    let t = frames.first().map_or(0, Vec::len);
    if t == 0 || t > config.max_frames {
        return Err(SegmentError::Input(format!(
            "{t} frames; the encoder takes 1 to {} (max_frames)",
            config.max_frames
        )));
    }
    let x = input_tensor(config, &frames, device);
    Ok(keyframe_report(encoder, x, k, FrameAxis::of(first)))
}

/// Run the selector (and the modal fusion, for the gates) on one sequence.
pub fn keyframe_report(
    encoder: &UmeEncoder,
    x: Tensor<5>,
    k: usize,
    axis: FrameAxis,
) -> KeyframeReport {
    let tokens = encoder.embed(x);
    let frames = tokens.dims()[2];
    let sel = encoder.select(tokens.clone(), k, axis);
    let ctx = encoder.context(tokens, &sel);
    let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
    KeyframeReport {
        frames,
        selected: sel.indices.first().cloned().unwrap_or_default(),
        uniform: v(sel.uniform),
        content: v(sel.content),
        attention: v(sel.attention),
        fused: v(sel.fused),
        weights: sel
            .weights
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default(),
        gates: v(ctx.gates),
        axis,
    }
}

/// Frame-by-frame segmentation of a case with an encoder: the keyframe
/// context is built once per sequence and every frame is predicted from it.
/// A 3D case is one sequence (its z slices); a cine is one sequence per z
/// slice (its time frames). Labels go back to the native grid (nearest).
/// `progress(done, total)` counts predicted frames and returns whether to
/// go on.
pub fn segment_volume(
    config: &UmeConfig,
    encoder: &UmeEncoder,
    volumes: &[&crate::volume::Volume],
    device: &Device,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<crate::volume::LabelVolume, super::segment::SegmentError> {
    use super::segment::nearest;
    let Some(first) = volumes.first() else {
        return Err(super::segment::SegmentError::Input(
            "no input volume".into(),
        ));
    };
    let [nx, ny, nz] = first.dims;
    let class_id = |c: usize| -> u16 {
        if c == 0 {
            0
        } else {
            config
                .label_ids
                .get(c - 1)
                .copied()
                .unwrap_or_else(|| u16::try_from(c).unwrap_or(0))
        }
    };
    let [h, w] = config.image_size;
    let c = config.num_classes;
    let si: Vec<usize> = (0..nx).map(|i| nearest(i, nx, w)).collect();
    let sj: Vec<usize> = (0..ny).map(|j| nearest(j, ny, h)).collect();
    let mut out =
        crate::volume::LabelVolume::zeros(first.dims, first.frames.max(1), first.geometry.clone());
    let plane = nx * ny;
    frame_logits(
        config,
        encoder,
        volumes,
        device,
        |z, t, logits, (done, total)| {
            let base = t * plane * nz + z * plane;
            for j in 0..ny {
                for i in 0..nx {
                    let at = |ch: usize| logits[(ch * h + sj[j]) * w + si[i]];
                    // The first of equal maxima, as argmax takes it.
                    let best = (1..c).fold(0, |b, ch| if at(ch) > at(b) { ch } else { b });
                    let id = class_id(best);
                    if id != 0 {
                        out.set(base + j * nx + i, id);
                    }
                }
            }
            progress(done, total)
        },
    )?;
    Ok(out)
}

/// The encoder's class logits of every frame of a case:
/// `each(z, t, logits, (done, total))` gets slice z of time frame t (t = 0
/// for a 3D case) as `[C, H, W]` values at the encoder's image size, and
/// returns whether to go on (false: `Cancelled`).
pub fn frame_logits(
    config: &UmeConfig,
    encoder: &UmeEncoder,
    volumes: &[&crate::volume::Volume],
    device: &Device,
    mut each: impl FnMut(usize, usize, &[f32], (usize, usize)) -> bool,
) -> Result<(), super::segment::SegmentError> {
    use super::segment::SegmentError;
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no input volume".into()));
    };
    let [nx, ny, nz] = first.dims;
    let axis = FrameAxis::of(first);
    let cine = axis == FrameAxis::Time;
    let (sequences, length) = if cine { (nz, first.frames) } else { (1, nz) };
    if length > config.max_frames {
        return Err(SegmentError::Input(format!(
            "{length} frames, more than the encoder's max_frames {}",
            config.max_frames
        )));
    }
    let plane = nx * ny;
    let total = sequences * length;
    for z in 0..sequences {
        let frames: Vec<Vec<(Vec<f32>, usize, usize)>> = if cine {
            vec![
                (0..first.frames)
                    .map(|t| {
                        let f = first.frame_f32(t).unwrap_or_default();
                        (
                            f.get(z * plane..(z + 1) * plane).unwrap_or(&[]).to_vec(),
                            nx,
                            ny,
                        )
                    })
                    .collect(),
            ]
        } else {
            frames_of(volumes)
        };
        if frames.len() < config.input_channels {
            return Err(SegmentError::Input(format!(
                "the encoder takes {} modalities but the case has {}",
                config.input_channels,
                frames.len()
            )));
        }
        let frames = &frames[..config.input_channels];
        let tokens = encoder.embed(input_tensor(config, frames, device));
        let selection = encoder.select(tokens.clone(), config.max_keyframes, axis);
        let context = encoder.context(tokens.clone(), &selection);
        for t in 0..length {
            let logits: Vec<f32> = encoder
                .segment_frame(&tokens, t, &context)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| SegmentError::Input(format!("{e:?}")))?;
            // A 3D case: frame t is slice t; a cine: time frame t at slice z.
            let (slice, frame) = if cine { (z, t) } else { (t, 0) };
            if !each(slice, frame, &logits, (z * length + t + 1, total)) {
                return Err(SegmentError::Cancelled);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyframes::Strategy;
    use crate::models::{DeviceChoice, device};
    use burn::tensor::Distribution;

    fn tiny() -> UmeConfig {
        UmeConfig::new(2)
            .with_embed_dim(16)
            .with_num_heads(2)
            .with_num_layers(1)
            .with_patch_size(8)
            .with_image_size([32, 32])
            .with_num_classes(3)
            .with_max_keyframes(3)
            .with_compression_ratio(4)
            .with_max_frames(16)
            .with_voco_dim(8)
    }

    #[test]
    fn shapes_through_the_whole_encoder() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu);
        let cfg = tiny();
        cfg.check().unwrap();
        let enc = cfg.init(&dev);
        let x = Tensor::<5>::random([2, 2, 10, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let tokens = enc.embed(x);
        assert_eq!(tokens.dims(), [2, 2, 10, 16, 16]);
        let sel = enc.select(tokens.clone(), 3, FrameAxis::Slices);
        assert_eq!(sel.indices.len(), 2);
        assert!(
            sel.indices
                .iter()
                .all(|i| i.len() == 3 && i.windows(2).all(|w| w[0] < w[1]))
        );
        for s in [
            &sel.uniform,
            &sel.content,
            &sel.attention,
            &sel.fused,
            &sel.mask,
        ] {
            assert_eq!(s.dims(), [2, 10]);
        }
        let w: Vec<f32> = sel.weights.clone().into_data().try_to_vec::<f32>().unwrap();
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let ctx = enc.context(tokens.clone(), &sel);
        assert_eq!(ctx.tokens.dims(), [2, 1 + 3 * 4, 16]);
        assert_eq!(ctx.gates.dims(), [2, 2]);
        assert_eq!(enc.segment_frame(&tokens, 4, &ctx).dims(), [2, 3, 32, 32]);
        let crops = Tensor::<5>::random([3, 2, 4, 16, 16], Distribution::Normal(0.0, 1.0), &dev);
        let z = enc.voco(crops);
        assert_eq!(z.dims(), [3, 8]);
        let norms: Vec<f32> = z
            .powi_scalar(2)
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4));
    }

    #[test]
    fn uniform_prior_is_exact_and_content_finds_the_odd_frames() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu);
        let enc = tiny().init(&dev);
        // Frames constant except a jump between frames 6 and 7.
        let mut data = vec![0.0f32; 2 * 10 * 32 * 32];
        for m in 0..2 {
            for t in 7..10 {
                let base = (m * 10 + t) * 32 * 32;
                data[base..base + 32 * 32].fill(3.0);
            }
        }
        let x = Tensor::<5>::from_data(TensorData::new(data, [1, 2, 10, 32, 32]), &dev);
        let sel = enc.select(enc.embed(x), 2, FrameAxis::Slices);
        let u: Vec<f32> = sel.uniform.into_data().try_to_vec::<f32>().unwrap();
        let ones: Vec<usize> = (0..10).filter(|&t| u[t] == 1.0).collect();
        assert_eq!(ones, crate::keyframes::uniform_indices(10, 2));
        // The three frames after the jump are the farthest from the mean
        // (7 of 10 frames are dark).
        let c: Vec<f32> = sel.content.into_data().try_to_vec::<f32>().unwrap();
        assert!((7..10).all(|t| (c[t] - 1.0).abs() < 1e-4), "{c:?}");
        assert!((0..7).all(|t| c[t] < 0.6), "{c:?}");
        // Keyframes are spread: never two neighbours.
        let picked = &sel.indices[0];
        assert!(picked[1] - picked[0] >= crate::keyframes::min_gap(10, 2));
    }

    #[test]
    fn seeded_init_is_deterministic_and_config_errors_are_clear() {
        let dev = device(DeviceChoice::Cpu);
        let x = Tensor::<5>::random([1, 2, 5, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let _serial = crate::models::SEEDED.lock();
        let run = || {
            dev.seed(42);
            let enc = tiny().init(&dev);
            let sel = enc.select(enc.embed(x.clone()), 2, FrameAxis::Slices);
            let ctx = enc.context(enc.embed(x.clone()), &sel);
            ctx.tokens.into_data().try_to_vec::<f32>().unwrap()
        };
        assert_eq!(run(), run());
        let bad = tiny().with_image_size([30, 32]);
        assert!(bad.check().unwrap_err().contains("patch_size"));
        let bad = tiny().with_compression_ratio(3);
        assert!(bad.check().unwrap_err().contains("compression_ratio"));
    }

    #[test]
    fn checkpoint_round_trip_and_report() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu);
        let cfg = tiny();
        let enc = cfg.init(&dev);
        let tmp = tempfile::tempdir().unwrap();
        save_encoder(tmp.path(), &cfg, &enc).unwrap();
        let (cfg2, enc2) = load_encoder(tmp.path(), &dev).unwrap();
        assert_eq!(cfg2.embed_dim, 16);
        let frames: Vec<Vec<(Vec<f32>, usize, usize)>> = (0..2)
            .map(|m| {
                (0..7)
                    .map(|t| {
                        (
                            (0..40 * 24).map(|i| (i * (t + 1) + m) as f32).collect(),
                            40,
                            24,
                        )
                    })
                    .collect()
            })
            .collect();
        let x = input_tensor(&cfg, &frames, &dev);
        assert_eq!(x.dims(), [1, 2, 7, 32, 32]);
        let a = keyframe_report(&enc, x.clone(), 3, FrameAxis::Slices);
        let b = keyframe_report(&enc2, x, 3, FrameAxis::Slices);
        assert_eq!(a.fused, b.fused);
        assert_eq!(a.selected, b.selected);
        assert_eq!(
            (a.frames, a.selected.len(), a.uniform.len(), a.gates.len()),
            (7, 3, 7, 2)
        );
        // A U-Net folder is refused clearly.
        let unet = tempfile::tempdir().unwrap();
        let sc = crate::models::segment::SegmenterConfig {
            network: crate::models::UNet2dConfig::new(1, 2)
                .with_features(vec![4])
                .with_bottleneck(4),
            size: 16,
            norm: crate::models::segment::InputNorm::ZScore,
            label_ids: vec![1],
            context_slices: 0,
        };
        crate::models::segment::save_checkpoint(unet.path(), &sc, &sc.network.init(&dev)).unwrap();
        let e = load_encoder(unet.path(), &dev).unwrap_err().to_string();
        assert!(e.contains("UME encoder"), "{e}");
    }

    #[test]
    fn frame_by_frame_segmentation_on_the_native_grid() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu);
        let cfg = tiny().with_label_ids(vec![1, 4]).with_max_frames(64);
        let enc = cfg.init(&dev);
        let case = crate::phantom::brats_case(5, 1, crate::phantom::Size::Small);
        let vols: Vec<&crate::volume::Volume> =
            case.images.iter().take(2).map(|(_, v)| v).collect();
        let mut calls = 0;
        let labels = segment_volume(&cfg, &enc, &vols, &dev, |_, _| {
            calls += 1;
            true
        })
        .unwrap();
        assert_eq!(labels.dims, vols[0].dims);
        assert_eq!(calls, vols[0].dims[2]);
        assert!((0..labels.len()).all(|i| [0, 1, 4].contains(&labels.get(i))));
        let stop = segment_volume(&cfg, &enc, &vols, &dev, |_, _| false);
        assert!(matches!(
            stop,
            Err(crate::models::segment::SegmentError::Cancelled)
        ));
    }

    #[test]
    fn case_keyframes_checks_the_case_and_selects_per_strategy() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu);
        let cfg = tiny().with_max_frames(64);
        let enc = cfg.init(&dev);
        let case = crate::phantom::brats_case(5, 1, crate::phantom::Size::Small);
        let vols: Vec<&crate::volume::Volume> = case.images.iter().map(|(_, v)| v).collect();
        let r = case_keyframes(&cfg, &enc, &vols[..2], 3, &dev).unwrap();
        assert_eq!((r.frames, r.axis), (vols[0].dims[2], FrameAxis::Slices));
        assert_eq!(r.selection(Strategy::Fused, 3), r.selected);
        assert_eq!(
            r.selection(Strategy::Uniform, 3),
            crate::keyframes::uniform_indices(r.frames, 3)
        );
        let att = r.selection(Strategy::Attention, 3);
        let peak = (0..r.frames)
            .max_by(|&p, &q| r.attention[p].total_cmp(&r.attention[q]).then(q.cmp(&p)))
            .unwrap();
        assert!(att.contains(&peak), "{att:?} misses {peak}");
        // Too few modalities, too many frames: clear refusals.
        let e = case_keyframes(&cfg, &enc, &vols[..1], 3, &dev).unwrap_err();
        assert!(e.to_string().contains("takes 2 modalities"), "{e}");
        let short = tiny().with_max_frames(16);
        let e = case_keyframes(&short, &short.init(&dev), &vols[..2], 3, &dev).unwrap_err();
        assert!(e.to_string().contains("max_frames"), "{e}");
    }

    #[test]
    fn cpu_and_wgpu_agree() {
        let _serial = crate::models::SEEDED.lock();
        let cpu = device(DeviceChoice::Cpu);
        let gpu = device(DeviceChoice::Wgpu);
        let enc = tiny().init(&cpu);
        let on_gpu = enc.clone().to_device(&gpu);
        let x = Tensor::<5>::random([1, 2, 6, 32, 32], Distribution::Normal(0.0, 1.0), &cpu);
        let run = |e: &UmeEncoder, x: Tensor<5>| {
            let tokens = e.embed(x);
            let sel = e.select(tokens.clone(), 3, FrameAxis::Slices);
            let ctx = e.context(tokens.clone(), &sel);
            let seg = e.segment_frame(&tokens, 2, &ctx);
            (
                sel.indices,
                seg.into_data().try_to_vec::<f32>().unwrap(),
                ctx.gates.into_data().try_to_vec::<f32>().unwrap(),
            )
        };
        let (ia, a, ga) = run(&enc, x.clone());
        let (ib, b, gb) = run(&on_gpu, x.to_device(&gpu));
        assert_eq!(ia, ib, "same keyframes");
        let scale = crate::models::max_abs(&a).max(1e-3);
        let worst = crate::models::max_abs_diff(&a, &b);
        assert!(
            worst / scale < 1e-3,
            "segmentation logits differ by {worst}"
        );
        for (p, q) in ga.iter().zip(&gb) {
            assert!((p - q).abs() < 1e-4);
        }
    }

    #[test]
    fn selection_scores_receive_gradients() {
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu).autodiff();
        let enc = tiny().init(&dev);
        let x = Tensor::<5>::random([1, 2, 6, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
        let tokens = enc.embed(x);
        let sel = enc.select(tokens.clone(), 2, FrameAxis::Slices);
        let ctx = enc.context(tokens, &sel);
        // A random weighting of the tokens: their plain sum (or sum of
        // squares) is constant through a layer norm with unit gain, so its
        // gradient would be rounding noise.
        let w = Tensor::random(ctx.tokens.shape(), Distribution::Normal(0.0, 1.0), &dev);
        let loss = (ctx.tokens * w).sum();
        let grads = loss.backward();
        let g = enc
            .fusion_logits
            .val()
            .grad(&grads)
            .expect("fusion weights get a gradient");
        let g: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
        assert!(g.iter().any(|v| v.abs() > 1e-4), "{g:?}");
    }

    #[test]
    fn identical_frames_keep_gradients_finite() {
        // Every frame at the sequence mean: the content distance is 0, where
        // an unguarded square root has an infinite derivative.
        let _serial = crate::models::SEEDED.lock();
        let dev = device(DeviceChoice::Cpu).autodiff();
        let enc = tiny().init(&dev);
        // Two equal frames: their mean is exactly each of them.
        let x = Tensor::<5>::ones([1, 2, 2, 32, 32], &dev);
        let sel = enc.select(enc.embed(x), 1, FrameAxis::Slices);
        let loss = (sel.attention.clone() - sel.content.clone())
            .powi_scalar(2)
            .mean()
            + sel.fused.sum();
        let grads = loss.backward();
        let g = enc.attn_query.val().grad(&grads).expect("a gradient");
        let g: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        let w = enc.patch_pos.val().grad(&grads).expect("a gradient");
        let w: Vec<f32> = w.into_data().try_to_vec::<f32>().unwrap();
        assert!(w.iter().all(|v| v.is_finite()));
    }
}
