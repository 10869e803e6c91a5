//! Keyframe selection: each frame scored three ways (uniform prior,
//! content change, learned attention), the scores fused with learned
//! softmax weights, and the top `K` frames picked with temporal
//! non-maximum suppression behind a straight-through mask, so the scores
//! receive gradients although the pick is discrete.

use super::UmeEncoder;
use crate::keyframes::FrameAxis;
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

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

/// Scale each row of `[B, T]` scores to [0, 1] by its maximum.
fn unit_rows(s: Tensor<2>) -> Tensor<2> {
    let max = s.clone().max_dim(1).clamp_min(1e-12);
    s / max
}

impl UmeEncoder {
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
}
