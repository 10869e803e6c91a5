//! Import of a PyTorch `state_dict` (`.pth`) through Burn's PyTorch store:
//! the seed 003 U-Net, and the references of the tokenizer and the UME
//! encoder (`scripts/titok_reference.py`, `scripts/encoder_reference.py`,
//! whose modules carry Burn's names). The
//! seed names the U-Net's layers `enc1..enc4`,
//! `bottleneck`, `up4..up1`, `dec4..dec1`, `final_conv`, with each
//! DoubleConv an `nn.Sequential` (`conv.0` conv, `conv.1` BatchNorm,
//! `conv.3` conv, `conv.4` BatchNorm); ours are vectors ordered shallow to
//! deep for the encoder and deep to shallow for the decoder. Burn's adapter
//! renames norms' `weight/bias` to `gamma/beta` and transposes linear
//! weights; conv weights already share PyTorch's layout. `num_batches_tracked` has no counterpart and is
//! ignored.

use super::encoder::{UmeConfig, UmeEncoder};
use super::segment::SegmentError;
use super::tokenizer::{Titok, TitokConfig};
use super::{UNet2d, UNet2dConfig};
use burn::prelude::*;
use burn::store::{KeyRemapper, ModuleSnapshot, PytorchStore};
use std::path::Path;

/// The regex renames from the seed's module names to [`UNet2d`]'s.
pub fn seed_key_map(levels: usize) -> Vec<(String, String)> {
    let mut map = Vec::new();
    for l in 1..=levels {
        map.push((format!(r"^enc{l}\."), format!("encoders.{}.", l - 1)));
        map.push((format!(r"^up{l}\."), format!("ups.{}.", levels - l)));
        map.push((format!(r"^dec{l}\."), format!("decoders.{}.", levels - l)));
    }
    map.push((r"^final_conv\.".into(), "head.".into()));
    for (from, to) in [("0", "conv1"), ("1", "bn1"), ("3", "conv2"), ("4", "bn2")] {
        map.push((format!(r"\.conv\.{from}\."), format!(".{to}.")));
    }
    map
}

/// Load a seed-003 U-Net `.pth` into a network of `config` on `device`.
/// Every parameter of the network must be found with the right shape.
pub fn load_pth(
    path: &Path,
    config: &UNet2dConfig,
    device: &Device,
) -> Result<UNet2d, SegmentError> {
    let what = format!("the seed U-Net with features {:?}", config.features);
    load_state_dict(
        path,
        config.init(device),
        seed_key_map(config.features.len()),
        &what,
    )
}

/// Load a `.pth` of `scripts/titok_reference.py` (its modules carry Burn's
/// names) into a tokenizer of `config` on `device`.
pub fn load_titok_pth(
    path: &Path,
    config: &TitokConfig,
    device: &Device,
) -> Result<Titok, SegmentError> {
    load_state_dict(
        path,
        config.init(device),
        Vec::new(),
        "the tokenizer's config",
    )
}

/// Load a `.pth` of `scripts/encoder_reference.py` (its modules carry
/// Burn's names) into a UME encoder of `config` on `device`.
pub fn load_encoder_pth(
    path: &Path,
    config: &UmeConfig,
    device: &Device,
) -> Result<UmeEncoder, SegmentError> {
    load_state_dict(
        path,
        config.init(device),
        Vec::new(),
        "the encoder's config",
    )
}

/// Load a PyTorch `state_dict` into `model`, renaming keys by the regex
/// pairs `key_map`; every parameter must be found with the right shape
/// (`what` names the model in the error).
fn load_state_dict<M: Module>(
    path: &Path,
    mut model: M,
    key_map: Vec<(String, String)>,
    what: &str,
) -> Result<M, SegmentError> {
    let err = |problem: String| SegmentError::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    if !path.is_file() {
        return Err(err("no such file".into()));
    }
    let remapper = KeyRemapper::from_patterns(key_map).map_err(|e| err(format!("key map: {e}")))?;
    let mut store = PytorchStore::from_file(path)
        .map_indices_contiguous(false)
        .allow_partial(true)
        .remap(remapper);
    let result = model
        .load_from(&mut store)
        .map_err(|e| err(format!("not a readable PyTorch state_dict: {e}")))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        let missing: Vec<String> = result
            .missing
            .iter()
            .take(5)
            .map(|m| format!("{m:?}"))
            .collect();
        return Err(err(format!(
            "does not fit {what} ({} tensors missing, e.g. {}; {} errors{})",
            result.missing.len(),
            missing.join(", "),
            result.errors.len(),
            result
                .errors
                .first()
                .map(|e| format!(", first: {e:?}"))
                .unwrap_or_default()
        )));
    }
    Ok(model)
}
