//! Configuration files of the UME encoder (`configs/ume_*.json`), with the
//! seed's sections: `model` (the encoder's hyper-parameters), `data`,
//! `training` (mode, optimisation, the seed's `loss_weights`) and `voco`
//! (crop size, temperature). Unknown fields are rejected.

use super::config::ConfigError;
use crate::models::encoder::UmeConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A UME training configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UmeTrainConfig {
    /// `ume_encoder` (optional for files written before the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<super::config::ConfigKind>,
    /// The encoder.
    pub model: UmeConfig,
    /// Data preparation.
    #[serde(default)]
    pub data: UmeDataConfig,
    /// Optimisation.
    #[serde(default)]
    pub training: UmeTrainingConfig,
    /// VoCo self-supervision (mode `voco`).
    #[serde(default)]
    pub voco: Option<VocoConfig>,
}

/// The `data` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UmeDataConfig {
    /// Volumes are resampled to this `[x, y, frames]` (the seed reads
    /// 256×256×128 whole).
    pub target_size: [usize; 3],
    /// Volumes per step: their losses are averaged (gradients accumulated
    /// one volume at a time, so memory stays that of one volume).
    pub batch_size: usize,
    /// Share of cases held out.
    pub val_fraction: f64,
}

impl Default for UmeDataConfig {
    fn default() -> UmeDataConfig {
        UmeDataConfig {
            target_size: [256, 256, 128],
            batch_size: 2,
            val_fraction: 0.2,
        }
    }
}

/// What the run optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UmeMode {
    /// Frame-by-frame segmentation with labels.
    Supervised,
    /// VoCo self-supervised pretraining, no labels.
    Voco,
}

/// The seed's loss weights (only those of the run's mode are used).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossWeights {
    /// CE + Dice of the predicted frames.
    pub segmentation: f64,
    /// Keyframe diversity (penalises similar selected frames).
    pub diversity: f64,
    /// Agreement between strategies' scores.
    pub consistency: f64,
    /// Smoothness of the fused score over frames.
    pub temporal: f64,
    /// VoCo total.
    pub voco: f64,
    /// Contrast between base crops.
    pub contrastive: f64,
    /// Overlap-area regression.
    pub area: f64,
    /// Label guidance of the selection (not in the seed): cross-entropy
    /// between the frames' share of labelled voxels and a softmax of the
    /// fused scores, so keyframes land where the structures are.
    pub coverage: f64,
}

impl Default for LossWeights {
    fn default() -> LossWeights {
        LossWeights {
            segmentation: 1.0,
            diversity: 0.1,
            consistency: 0.05,
            temporal: 0.03,
            voco: 1.0,
            contrastive: 0.5,
            area: 0.3,
            coverage: 0.0,
        }
    }
}

/// The `training` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UmeTrainingConfig {
    /// Supervised or VoCo.
    pub mode: UmeMode,
    /// Optimiser steps.
    pub steps: usize,
    /// Peak learning rate (AdamW).
    pub learning_rate: f64,
    /// AdamW decay.
    pub weight_decay: f64,
    /// Linear warm-up steps before cosine decay.
    pub warmup_steps: usize,
    /// Loss weights.
    pub loss_weights: LossWeights,
    /// Validate every this many steps.
    pub val_every: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for UmeTrainingConfig {
    fn default() -> UmeTrainingConfig {
        UmeTrainingConfig {
            mode: UmeMode::Supervised,
            steps: 10_000,
            learning_rate: 1e-4,
            weight_decay: 1e-5,
            warmup_steps: 500,
            loss_weights: LossWeights::default(),
            val_every: 500,
            seed: 0,
        }
    }
}

/// The `voco` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocoConfig {
    /// Crop size `[x, y, frames]` (seed: 64×64×32).
    pub crop_size: [usize; 3],
    /// Contrastive temperature (seed: 0.07).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Weight of the area loss inside VoCo.
    #[serde(default = "default_lambda")]
    pub lambda_area: f64,
}

fn default_temperature() -> f64 {
    0.07
}

fn default_lambda() -> f64 {
    1.0
}

impl UmeTrainConfig {
    /// Supervised fine-tuning of an encoder with `model`'s configuration
    /// (the app's quick settings): `steps` AdamW steps of one volume at
    /// `learning_rate` after a warm-up of a tenth of the run, validation
    /// five times a run, the seed's loss weights.
    pub fn fine_tune(model: &UmeConfig, steps: usize, learning_rate: f64) -> UmeTrainConfig {
        let steps = steps.max(1);
        let [x, y] = model.image_size;
        UmeTrainConfig {
            kind: Some(super::config::ConfigKind::UmeEncoder),
            model: model.clone(),
            data: UmeDataConfig {
                target_size: [x, y, model.max_frames],
                batch_size: 1,
                ..UmeDataConfig::default()
            },
            training: UmeTrainingConfig {
                mode: UmeMode::Supervised,
                steps,
                learning_rate,
                warmup_steps: (steps / 10).max(1),
                val_every: (steps / 5).max(1),
                ..UmeTrainingConfig::default()
            },
            voco: None,
        }
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<UmeTrainConfig, ConfigError> {
        super::config::load_checked(path, "a UME config", UmeTrainConfig::check)
    }

    /// Consistency checks.
    pub fn check(&self) -> Result<(), String> {
        if self
            .kind
            .is_some_and(|k| k != super::config::ConfigKind::UmeEncoder)
        {
            return Err("kind: this is not a UME encoder config (kind \"unet2d\")".into());
        }
        self.model.check().map_err(|e| format!("model: {e}"))?;
        let [x, y, t] = self.data.target_size;
        if [x, y] != self.model.image_size {
            return Err(format!(
                "data.target_size {x}×{y} must equal model.image_size {:?}",
                self.model.image_size
            ));
        }
        if t > self.model.max_frames {
            return Err(format!(
                "data.target_size has {t} frames, more than model.max_frames {}",
                self.model.max_frames
            ));
        }
        if self.training.mode == UmeMode::Voco {
            let Some(v) = &self.voco else {
                return Err("training.mode voco needs a voco section".into());
            };
            let p = self.model.patch_size;
            let [cx, cy, cz] = v.crop_size;
            if !cx.is_multiple_of(p)
                || !cy.is_multiple_of(p)
                || !((cx / p) * (cy / p)).is_multiple_of(self.model.compression_ratio)
            {
                return Err(format!(
                    "voco.crop_size {cx}×{cy} must be multiples of patch_size {p} with a patch count divisible by compression_ratio {}",
                    self.model.compression_ratio
                ));
            }
            if x < 2 * cx || y < 2 * cy || t < cz {
                return Err(format!(
                    "voco.crop_size {:?} needs a volume of at least 2×2 crops in plane",
                    v.crop_size
                ));
            }
            if v.temperature <= 0.0 {
                return Err("voco.temperature must be positive".into());
            }
        }
        if self.data.batch_size == 0 || self.training.steps == 0 {
            return Err("data.batch_size and training.steps must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_ume_configs_parse_and_check() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
        let names = [
            "ume_brats.json",
            "ume_brats_fast.json",
            "ume_brats_voco.json",
            "ume_acdc.json",
            "ume_tiny.json",
            "ume_tiny_voco.json",
            "ume_tiny_acdc.json",
        ];
        for n in names {
            UmeTrainConfig::load(&dir.join(n)).unwrap_or_else(|e| panic!("{e}"));
        }
        let seed = UmeTrainConfig::load(&dir.join("ume_brats.json")).unwrap();
        assert_eq!(
            (
                seed.model.embed_dim,
                seed.model.num_heads,
                seed.model.num_layers,
                seed.model.patch_size
            ),
            (768, 12, 12, 32)
        );
        let voco = UmeTrainConfig::load(&dir.join("ume_brats_voco.json")).unwrap();
        assert_eq!(voco.training.mode, UmeMode::Voco);
        assert_eq!(voco.voco.unwrap().crop_size, [64, 64, 32]);
        assert_eq!(voco.voco.unwrap().temperature, 0.07);
    }

    #[test]
    fn fine_tune_settings_check_and_an_empty_batch_is_refused() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
        let tiny = UmeTrainConfig::load(&dir.join("ume_tiny.json")).unwrap();
        let c = UmeTrainConfig::fine_tune(&tiny.model, 40, 1e-4);
        c.check().unwrap();
        assert_eq!(c.data.batch_size, 1);
        assert_eq!((c.training.warmup_steps, c.training.val_every), (4, 8));
        let mut empty = c.clone();
        empty.data.batch_size = 0;
        let e = empty.check().unwrap_err();
        assert!(e.contains("batch_size"), "{e}");
    }
}
