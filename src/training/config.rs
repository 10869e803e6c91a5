//! The training configuration file: one JSON object with the seed's three
//! sections — `model` (the checkpoint's [`SegmenterConfig`]: network, input
//! size, normalisation, label ids), `data` (split, sampling, augmentation)
//! and `training` (steps, optimiser, loss, schedule, validation). Every
//! field but the network's channel counts has a default, so a config says
//! only what differs; unknown fields are rejected so a typo never trains
//! silently with a default.

use crate::models::OutputMode;
use crate::models::segment::SegmenterConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a training config trains: the `kind` tag at the top of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigKind {
    /// A 2D U-Net (`"kind": "unet2d"`).
    Unet2d,
    /// A UME encoder (`"kind": "ume_encoder"`).
    UmeEncoder,
    /// A TiTok-style tokenizer (`"kind": "titok"`).
    Titok,
}

impl ConfigKind {
    /// The kind of a config file's text: its `kind` tag (an unknown one is
    /// an error); a file without the tag (written before it existed) is an
    /// encoder config when its model section has `embed_dim`.
    pub fn of(text: &str) -> Result<ConfigKind, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match v.get("kind") {
            Some(k) => serde_json::from_value(k.clone()).map_err(|_| {
                format!("unknown config kind {k} (known: \"unet2d\", \"ume_encoder\", \"titok\")")
            }),
            None if v["model"].get("embed_dim").is_some() => Ok(ConfigKind::UmeEncoder),
            None => Ok(ConfigKind::Unet2d),
        }
    }
}

/// A whole training configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// `unet2d` (optional for files written before the tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ConfigKind>,
    /// The network and how inputs are prepared (written as the
    /// checkpoint's `config.json`). Empty `label_ids` means "every label of
    /// the dataset's table".
    pub model: SegmenterConfig,
    /// Which samples and how they are drawn.
    #[serde(default)]
    pub data: DataConfig,
    /// Optimisation.
    #[serde(default)]
    pub training: TrainingConfig,
}

/// The `data` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Share of the cases held out for validation (at least one case when
    /// there are two or more; the last cases in id order).
    pub val_fraction: f64,
    /// Probability that a slice is drawn class-balanced (a structure
    /// uniformly, then a slice containing it) instead of uniformly.
    pub labelled_slice_bias: f64,
    /// Image channels to use, by modality name, in this order (e.g. `["t1ce",
    /// "flair"]`); empty means all of the case's images in file order.
    pub channels: Vec<String>,
    /// Augmentation of training slices.
    pub augment: AugmentConfig,
}

impl Default for DataConfig {
    fn default() -> DataConfig {
        DataConfig {
            val_fraction: 0.2,
            labelled_slice_bias: 0.8,
            channels: Vec::new(),
            augment: AugmentConfig::default(),
        }
    }
}

/// Random changes applied to each training slice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Mirror left-right and up-down, each with probability 1/2.
    pub flip: bool,
    /// Rotate by a uniform angle in ±this many degrees.
    pub rotate_deg: f64,
    /// Multiply intensities by a uniform factor in 1 ± this.
    pub intensity_scale: f64,
    /// Add a uniform offset in ± this (normalised units).
    pub intensity_shift: f64,
}

impl Default for AugmentConfig {
    fn default() -> AugmentConfig {
        AugmentConfig {
            flip: false,
            rotate_deg: 0.0,
            intensity_scale: 0.0,
            intensity_shift: 0.0,
        }
    }
}

/// The `training` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Optimiser steps (each of `batch_size × accumulation` slices).
    pub steps: usize,
    /// Slices per forward pass.
    pub batch_size: usize,
    /// Forward passes whose gradients are summed into one step.
    pub accumulation: usize,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
    /// Loss.
    pub loss: LossConfig,
    /// Learning-rate schedule.
    pub scheduler: SchedulerConfig,
    /// Clip the global gradient norm to this (none when absent).
    pub grad_clip_norm: Option<f32>,
    /// Validate every this many steps (and at the end).
    pub val_every: usize,
    /// Save the resumable last state every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// Seed of initial weights, sampling and augmentation.
    pub seed: u64,
    /// Slices per forward pass during validation.
    pub val_batch: usize,
}

impl Default for TrainingConfig {
    fn default() -> TrainingConfig {
        TrainingConfig {
            steps: 1000,
            batch_size: 4,
            accumulation: 1,
            learning_rate: 1e-3,
            optimizer: OptimizerConfig::default(),
            loss: LossConfig::default(),
            scheduler: SchedulerConfig::Constant,
            grad_clip_norm: None,
            val_every: 100,
            checkpoint_every: 100,
            seed: 0,
            val_batch: 8,
        }
    }
}

/// Optimiser and its decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Adam with L2 weight decay added to the gradient (seed 003: 1e-5).
    Adam {
        /// L2 penalty.
        #[serde(default)]
        weight_decay: f64,
    },
    /// AdamW: decoupled weight decay.
    AdamW {
        /// Decoupled decay rate.
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
}

fn default_adamw_decay() -> f64 {
    1e-2
}

impl Default for OptimizerConfig {
    fn default() -> OptimizerConfig {
        OptimizerConfig::Adam { weight_decay: 0.0 }
    }
}

/// Loss function. Multi-label models take the sigmoid family, multi-class
/// models the softmax family; Dice and Focal work with both.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum LossConfig {
    /// Binary cross-entropy per channel (multi-label; seeds 002/003).
    Bce,
    /// Cross-entropy over classes (multi-class).
    Ce,
    /// Soft Dice, mean over structures (background excluded).
    Dice,
    /// BCE + Dice (multi-label).
    BceDice,
    /// CE + Dice (multi-class).
    #[default]
    CeDice,
    /// Focal loss.
    Focal {
        /// Focusing exponent (2 in the paper).
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
}

fn default_gamma() -> f64 {
    2.0
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SchedulerConfig {
    /// The learning rate throughout.
    Constant,
    /// Multiply by `factor` when the validation mean Dice has not improved
    /// for `patience` validations (seed 003: 0.5, 3).
    Plateau {
        /// Multiplier.
        factor: f64,
        /// Validations without improvement before a cut.
        patience: usize,
        /// Floor.
        #[serde(default)]
        min_lr: f64,
    },
    /// Linear warm-up from 0, then cosine decay to `min_lr` at the last step.
    WarmupCosine {
        /// Warm-up steps.
        warmup_steps: usize,
        /// Final learning rate.
        #[serde(default)]
        min_lr: f64,
    },
}

/// A configuration problem, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct ConfigError {
    /// The config file (or `"<config>"` for one built in code).
    pub path: std::path::PathBuf,
    /// What is wrong.
    pub problem: String,
}

/// Read a JSON config file as `T` and run its checks; errors name the file
/// (`what` says what it should have been).
pub(crate) fn load_checked<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    check: impl FnOnce(&T) -> Result<(), String>,
) -> Result<T, ConfigError> {
    let err = |problem: String| ConfigError {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let config: T = serde_json::from_str(&text).map_err(|e| err(format!("not {what}: {e}")))?;
    check(&config).map_err(err)?;
    Ok(config)
}

impl TrainConfig {
    /// Fine-tuning of a U-Net with `model`'s configuration (the app's quick
    /// settings): `steps` steps of four slices at `learning_rate` after a
    /// warm-up of a tenth of the run, cosine decay to a twentieth, the loss
    /// that fits the output (CE+Dice or BCE+Dice), validation and a
    /// checkpoint five times a run.
    pub fn fine_tune(
        model: &crate::models::segment::SegmenterConfig,
        steps: usize,
        learning_rate: f64,
    ) -> TrainConfig {
        let steps = steps.max(1);
        let mut c = TrainConfig {
            kind: Some(ConfigKind::Unet2d),
            model: model.clone(),
            data: DataConfig::default(),
            training: TrainingConfig::default(),
        };
        let t = &mut c.training;
        t.steps = steps;
        t.learning_rate = learning_rate;
        t.batch_size = 4;
        t.val_every = (steps / 5).max(1);
        t.checkpoint_every = t.val_every;
        t.loss = match model.network.output {
            crate::models::OutputMode::MultiClass => LossConfig::CeDice,
            crate::models::OutputMode::MultiLabel => LossConfig::BceDice,
        };
        t.scheduler = SchedulerConfig::WarmupCosine {
            warmup_steps: (steps / 10).max(1),
            min_lr: learning_rate / 20.0,
        };
        c
    }

    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<TrainConfig, ConfigError> {
        load_checked(path, "a training config", TrainConfig::check)
    }

    /// Consistency checks that need no data.
    pub fn check(&self) -> Result<(), String> {
        if self.kind.is_some_and(|k| k != ConfigKind::Unet2d) {
            return Err("kind: this is not a U-Net config (kind \"ume_encoder\")".into());
        }
        let net = &self.model.network;
        let t = &self.training;
        let levels = net.features.len() as u32;
        if net.in_channels == 0 || net.out_channels == 0 {
            return Err("model: in_channels and out_channels must be at least 1".into());
        }
        if !net
            .in_channels
            .is_multiple_of(self.model.slices_per_volume())
        {
            return Err(format!(
                "model: in_channels {} must be a multiple of 2 * context_slices + 1 = {} (each input volume gives that many slices)",
                net.in_channels,
                self.model.slices_per_volume()
            ));
        }
        if self.model.size == 0 || !self.model.size.is_multiple_of(1usize << levels) {
            return Err(format!(
                "model.size {} must be a positive multiple of 2^{levels} (one halving per encoder level)",
                self.model.size
            ));
        }
        if t.steps == 0 || t.batch_size == 0 || t.accumulation == 0 || t.val_batch == 0 {
            return Err(
                "training: steps, batch_size, accumulation and val_batch must be at least 1".into(),
            );
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            return Err(format!(
                "training.learning_rate {} must be positive",
                t.learning_rate
            ));
        }
        if !(0.0..1.0).contains(&self.data.val_fraction) {
            return Err("data.val_fraction must be in [0, 1)".into());
        }
        match (t.loss, net.output) {
            (LossConfig::Bce | LossConfig::BceDice, OutputMode::MultiClass) => {
                Err("training.loss: BCE needs a multi-label model (output MultiLabel); use ce or ce_dice".into())
            }
            (LossConfig::Ce | LossConfig::CeDice, OutputMode::MultiLabel) => {
                Err("training.loss: CE needs a multi-class model (output MultiClass); use bce or bce_dice".into())
            }
            _ => Ok(()),
        }
    }

    /// Output channels the network needs for `label_ids` structures.
    pub fn channels_for(output: OutputMode, labels: usize) -> usize {
        match output {
            OutputMode::MultiLabel => labels,
            OutputMode::MultiClass => labels + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_tag_says_what_a_config_trains() {
        let of = ConfigKind::of;
        assert_eq!(
            of(r#"{"kind": "ume_encoder", "model": {}}"#),
            Ok(ConfigKind::UmeEncoder)
        );
        assert_eq!(
            of(r#"{"kind": "unet2d", "model": {"embed_dim": 8}}"#),
            Ok(ConfigKind::Unet2d),
            "the tag wins"
        );
        assert_eq!(
            of(r#"{"model": {"embed_dim": 8}}"#),
            Ok(ConfigKind::UmeEncoder)
        );
        assert_eq!(
            of(r#"{"model": {"in_channels": 1}}"#),
            Ok(ConfigKind::Unet2d)
        );
        assert_eq!(of(r#"{"kind": "titok"}"#), Ok(ConfigKind::Titok));
        let e = of(r#"{"kind": "vqgan"}"#).unwrap_err();
        assert!(e.contains("vqgan") && e.contains("titok"), "{e}");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/");
        let text = std::fs::read_to_string(format!("{dir}ume_tiny.json")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["kind"] = "unet2d".into();
        let wrong: super::super::ume_config::UmeTrainConfig = serde_json::from_value(v).unwrap();
        assert!(wrong.check().unwrap_err().contains("kind"));
        assert_eq!(
            TrainConfig::load(Path::new(&format!("{dir}unet_tiny_ct.json")))
                .unwrap()
                .kind,
            Some(ConfigKind::Unet2d)
        );
    }
}
