//! Training the tokenizer (`configs/titok_*.json`, `"kind": "titok"`):
//! single-stage on pixels, as TiTok's first stage without the proxy codes —
//! the loss is the mean squared error of the reconstruction (an L2 loss is
//! what PSNR, the figure the issue sets, measures) plus the quantiser's
//! codebook and commitment terms. Every `reseed_every` steps the codebook
//! entries no frame chose in that window are re-seeded from the current
//! batch's codes. Validation is the mean PSNR (data range 1: frames are
//! normalised to [0, 1]) on held-out cases' frames; the best model is
//! saved as the checkpoint (`config.json` + `model.bpk`, atomic).
//!
//! Not yet: resuming a run, and the app's fine-tuning panel (the U-Net's
//! and the encoder's trainers have both).

use super::TrainError;
use super::augment::Rng;
use super::config::{ConfigError, ConfigKind};
use crate::models::tokenize::save_titok;
use crate::models::tokenizer::{TitokConfig, Usage};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A tokenizer training configuration file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TitokTrainConfig {
    /// `titok`.
    pub kind: ConfigKind,
    /// The tokenizer.
    pub model: TitokConfig,
    /// Data.
    #[serde(default)]
    pub data: TitokDataConfig,
    /// Optimisation.
    #[serde(default)]
    pub training: TitokTrainingConfig,
}

/// The `data` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TitokDataConfig {
    /// Share of the cases held out for validation (at least one when
    /// there are two or more).
    pub val_fraction: f64,
}

impl Default for TitokDataConfig {
    fn default() -> TitokDataConfig {
        TitokDataConfig { val_fraction: 0.2 }
    }
}

/// The `training` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TitokTrainingConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Frames per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Steps per codebook-usage window (dead entries re-seeded after each).
    pub reseed_every: usize,
    /// Steps between validations.
    pub val_every: usize,
    /// Random seed (weights and frame order).
    pub seed: u64,
}

impl Default for TitokTrainingConfig {
    fn default() -> TitokTrainingConfig {
        TitokTrainingConfig {
            steps: 10_000,
            batch_size: 16,
            learning_rate: 1e-4,
            reseed_every: 200,
            val_every: 500,
            seed: 0,
        }
    }
}

impl TitokTrainConfig {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<TitokTrainConfig, ConfigError> {
        super::config::load_checked(path, "a tokenizer config", TitokTrainConfig::check)
    }

    /// Consistency checks.
    pub fn check(&self) -> Result<(), String> {
        if self.kind != ConfigKind::Titok {
            return Err("kind must be \"titok\"".into());
        }
        self.model.check()?;
        let t = &self.training;
        if t.steps == 0 || t.batch_size == 0 || t.val_every == 0 || t.reseed_every == 0 {
            return Err("steps, batch_size, val_every and reseed_every must be at least 1".into());
        }
        if !(t.learning_rate > 0.0 && t.learning_rate.is_finite()) {
            return Err(format!(
                "learning_rate {} must be positive",
                t.learning_rate
            ));
        }
        Ok(())
    }
}

/// What a run reports.
#[derive(Debug, Clone, PartialEq)]
pub enum TitokEvent {
    /// One step: its loss terms.
    Step {
        /// 0-based step.
        step: usize,
        /// Reconstruction MSE.
        mse: f32,
        /// Codebook + weighted commitment loss.
        quantiser: f32,
    },
    /// A validation.
    Validated {
        /// After this 0-based step.
        step: usize,
        /// Mean PSNR of the held-out frames in dB (data range 1).
        psnr_db: f64,
        /// Codebook entries used by the held-out frames.
        codes_used: usize,
        /// Whether it is the best so far (then saved).
        best: bool,
    },
    /// Dead codebook entries were re-seeded.
    Reseeded {
        /// After this 0-based step.
        step: usize,
        /// How many.
        entries: usize,
    },
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct TitokSummary {
    /// Best validation PSNR (dB) and its step.
    pub best_psnr_db: f64,
    /// Step of the best model.
    pub best_step: usize,
    /// The checkpoint folder.
    pub out: PathBuf,
}

/// Frames `[n, 1, H, W]` of `frames[ids]`.
fn batch(frames: &[Vec<f32>], ids: &[usize], [h, w]: [usize; 2], device: &Device) -> Tensor<4> {
    let flat: Vec<f32> = ids
        .iter()
        .flat_map(|&i| frames[i].iter().copied())
        .collect();
    Tensor::<4>::from_data(TensorData::new(flat, [ids.len(), 1, h, w]), device)
}

/// Train on `train` frames (each `[H·W]` in [0, 1]), validating on `val`
/// (the training frames when empty), into `out`; `cancel` stops after the
/// current step. A NaN loss ends the run with an error.
pub fn train_titok(
    config: &TitokTrainConfig,
    train: &[Vec<f32>],
    val: &[Vec<f32>],
    out: &Path,
    device: &Device,
    cancel: &AtomicBool,
    mut emit: impl FnMut(TitokEvent),
) -> Result<TitokSummary, TrainError> {
    config.check().map_err(TrainError::Config)?;
    if train.is_empty() {
        return Err(TrainError::Data("no frames to train on".into()));
    }
    let m = &config.model;
    let t = &config.training;
    let size = m.image_size;
    let check = |f: &Vec<f32>| f.len() == size[0] * size[1];
    if !train.iter().chain(val).all(check) {
        return Err(TrainError::Data(format!(
            "frames must be {}×{}",
            size[0], size[1]
        )));
    }
    let val = if val.is_empty() { train } else { val };
    let ad = device.clone().autodiff();
    ad.seed(t.seed);
    let mut model = m.init(&ad);
    let mut optim = AdamConfig::new().init();
    let mut rng = Rng::new(t.seed);
    let mut usage = Usage::new(m.codebook_size);
    let (mut best, mut best_step) = (f64::NEG_INFINITY, 0);
    std::fs::create_dir_all(out)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", out.display())))?;
    for step in 0..t.steps {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled {
                steps: step,
                out: out.to_path_buf(),
            });
        }
        let ids: Vec<usize> = (0..t.batch_size).map(|_| rng.below(train.len())).collect();
        let x = batch(train, &ids, size, &ad);
        let r = model.forward(x.clone());
        let mse = (r.frames - x).powf_scalar(2.0).mean();
        let loss = mse.clone() + r.quantiser_loss.clone();
        let (mse_v, q_v): (f32, f32) = (mse.into_scalar(), r.quantiser_loss.into_scalar());
        if !(mse_v + q_v).is_finite() {
            return Err(TrainError::Diverged {
                step,
                loss: mse_v + q_v,
            });
        }
        let used: Vec<i64> = r
            .ids
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap_or_default();
        usage.add(&used);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(t.learning_rate, model, grads);
        emit(TitokEvent::Step {
            step,
            mse: mse_v,
            quantiser: q_v,
        });
        if (step + 1) % t.reseed_every == 0 {
            let dead = usage.take_dead();
            if !dead.is_empty() {
                let entries = dead.len();
                model.codebook = model.codebook.reseed(&dead, r.codes.clone());
                emit(TitokEvent::Reseeded { step, entries });
            }
        }
        if (step + 1) % t.val_every == 0 || step + 1 == t.steps {
            let inference = model.valid();
            let (psnr_db, codes_used) = validate(m, &inference, val, device, t.batch_size)?;
            let is_best = psnr_db > best;
            if is_best {
                best = psnr_db;
                best_step = step;
                save_titok(out, m, &inference)
                    .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
            }
            emit(TitokEvent::Validated {
                step,
                psnr_db,
                codes_used,
                best: is_best,
            });
        }
    }
    Ok(TitokSummary {
        best_psnr_db: best,
        best_step,
        out: out.to_path_buf(),
    })
}

/// Mean PSNR (data range 1) of `frames` through the tokenizer, and the
/// codebook entries they use.
fn validate(
    config: &TitokConfig,
    model: &crate::models::tokenizer::Titok,
    frames: &[Vec<f32>],
    device: &Device,
    batch_size: usize,
) -> Result<(f64, usize), TrainError> {
    let mut usage = Usage::new(config.codebook_size);
    let mut sum = 0.0;
    let ids: Vec<usize> = (0..frames.len()).collect();
    for chunk in ids.chunks(batch_size.max(1)) {
        let x = batch(frames, chunk, config.image_size, device);
        let tokens = model.tokenize(x);
        let got: Vec<i64> = tokens
            .clone()
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .map_err(|e| TrainError::Data(format!("{e:?}")))?;
        usage.add(&got);
        let y: Vec<f32> = model
            .detokenize(tokens)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| TrainError::Data(format!("{e:?}")))?;
        let per = config.image_size[0] * config.image_size[1];
        for (k, &i) in chunk.iter().enumerate() {
            sum += crate::models::tokenize::psnr(&frames[i], &y[k * per..(k + 1) * per], 1.0);
        }
    }
    Ok((sum / frames.len().max(1) as f64, usage.used()))
}
