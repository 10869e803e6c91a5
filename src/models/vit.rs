//! The ViT building blocks the UME encoder and the tokenizer share, so the
//! two models cannot drift apart in how a transformer block is made:
//! pre-norm blocks with a 4× MLP and no dropout, and parameters drawn from
//! N(0, 0.02) as ViT and TiTok initialise embeddings.

use burn::module::Param;
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

/// `depth` pre-norm transformer blocks of `width` with `heads` heads.
///
/// # Shapes
/// `[B, S, width]` → `[B, S, width]`
pub fn blocks(width: usize, heads: usize, depth: usize, device: &Device) -> TransformerEncoder {
    TransformerEncoderConfig::new(width, 4 * width, heads, depth)
        .with_dropout(0.0)
        .with_norm_first(true)
        .init(device)
}

/// A `[rows, cols]` parameter drawn from N(0, 0.02).
pub fn normal2(shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    normal2_std(shape, 0.02, device)
}

/// A `[rows, cols]` parameter drawn from N(0, std²).
pub fn normal2_std(shape: [usize; 2], std: f64, device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::<2>::random(
        shape,
        Distribution::Normal(0.0, std),
        device,
    ))
}

/// A `[n]` parameter drawn from N(0, std²).
pub fn normal1(n: usize, std: f64, device: &Device) -> Param<Tensor<1>> {
    Param::from_tensor(Tensor::<1>::random(
        [n],
        Distribution::Normal(0.0, std),
        device,
    ))
}

/// A frame size and a patch side that fit: positive multiples.
pub fn check_patches(image_size: [usize; 2], patch: usize) -> Result<(), String> {
    if patch == 0 || image_size.iter().any(|&s| s == 0 || s % patch != 0) {
        return Err(format!(
            "image_size {image_size:?} must be positive multiples of patch_size {patch}"
        ));
    }
    Ok(())
}
