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
//! `out/last/` keeps the resumable state (weights, Adam's moments, the
//! sampler's stream, the best score) at every validation and on cancel, as
//! for the segmenters. Not yet: the app's fine-tuning panel for it.

use super::augment::Rng;
use super::config::{ConfigError, ConfigKind, SchedulerConfig};
use super::schedule::Schedule;
use super::{RunOptions, TrainError};
use crate::models::tokenize::{load_titok, save_titok};
use crate::models::tokenizer::{Titok, TitokConfig, Usage};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
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
    /// Adam's (peak) learning rate.
    pub learning_rate: f64,
    /// Learning-rate schedule (as for the segmenters).
    pub scheduler: SchedulerConfig,
    /// Steps per codebook-usage window (dead entries re-seeded after each).
    pub reseed_every: usize,
    /// Steps trained without quantising before the codebook is seeded
    /// from the encoder's codes and quantisation starts (0: from the
    /// start). From a random start the quantiser maps nearly equal codes to
    /// one entry, the decoder learns to ignore its tokens and training
    /// stalls at the mean frame; a short continuous warm-up opens the path
    /// first.
    pub quantiser_warmup_steps: usize,
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
            scheduler: SchedulerConfig::Constant,
            reseed_every: 200,
            quantiser_warmup_steps: 0,
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
        if t.quantiser_warmup_steps >= t.steps {
            return Err(format!(
                "quantiser_warmup_steps {} must be below steps {}",
                t.quantiser_warmup_steps, t.steps
            ));
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
    /// The run began, or resumed at `first_step`.
    Started {
        /// Step the run starts at (0 unless resumed).
        first_step: usize,
    },
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
        /// PSNR of the training batches' mean squared error since the
        /// last validation (dB, data range 1): far above `psnr_db` means
        /// over-fitting, close to it under-fitting.
        train_psnr_db: f64,
        /// Codebook entries used by the held-out frames.
        codes_used: usize,
        /// Whether it is the best so far (then saved).
        best: bool,
    },
    /// The warm-up ended: every codebook entry was seeded from the
    /// encoder's codes and quantisation began.
    Quantising {
        /// The first quantised 0-based step.
        step: usize,
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

/// The resumable state, saved with the weights and the optimiser in
/// `out/last/` at every validation and on cancel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TitokState {
    next_step: usize,
    rng: Rng,
    /// Codebook use in the current re-seeding window.
    usage: Usage,
    /// The learning-rate schedule (a plateau schedule's cuts).
    schedule: Schedule,
    best_psnr_db: f64,
    best_step: usize,
}

/// The model, optimiser and state a run starts from: `out/last/` when
/// resuming (refused if it holds another tokenizer), else fresh — or the
/// `init` checkpoint's weights, fine-tuning — at step 0.
fn starting_point(
    config: &TitokTrainConfig,
    run: &RunOptions,
    device: &Device,
) -> Result<(Titok, ModuleOptimizer, TitokState), TrainError> {
    // PyTorch's epsilon: Burn's default (1e-5) is larger than many of the
    // second-moment roots of a pixel MSE's gradients, and damps their steps.
    let optim = AdamConfig::new().with_epsilon(1e-8).init();
    let last = run.out.join("last");
    super::check_out(run)?;
    // A checkpoint's tokenizer, which must be the config's.
    let saved = |dir: &Path, hint: &str| -> Result<Titok, TrainError> {
        let (saved, model) =
            load_titok(dir, device).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        if serde_json::to_value(&saved).ok() != serde_json::to_value(&config.model).ok() {
            return Err(TrainError::Config(format!(
                "{} holds another tokenizer configuration; {hint}",
                dir.display()
            )));
        }
        Ok(model)
    };
    if run.resume && super::resumable(&run.out) {
        let mut state: TitokState = super::read_state(&last)?;
        let t = &config.training;
        state.schedule = state
            .schedule
            .retarget(t.scheduler, t.learning_rate, t.steps);
        let model = saved(&last, "start a new output folder or drop --resume")?;
        return Ok((model, super::load_optim(optim, &last)?, state));
    }
    device.seed(config.training.seed);
    let state = TitokState {
        next_step: 0,
        rng: Rng::new(config.training.seed),
        usage: Usage::new(config.model.codebook_size),
        schedule: Schedule::new(
            config.training.scheduler,
            config.training.learning_rate,
            config.training.steps,
        ),
        best_psnr_db: -1.0, // below any PSNR seen, and JSON-representable
        best_step: 0,
    };
    let model = match &run.init {
        Some(dir) => saved(Path::new(dir), "fine-tuning keeps the architecture")?,
        None => config.model.init(device),
    };
    Ok((model, optim, state))
}

/// Train on `train` frames (each `[H·W]` in [0, 1]), validating on `val`
/// (the training frames when empty); `cancel` stops after the current step
/// (the state is saved in `out/last/` for `--resume`). A NaN loss ends
/// the run with an error. `run.cpu_engine` does not apply.
pub fn train_titok(
    config: &TitokTrainConfig,
    train: &[Vec<f32>],
    val: &[Vec<f32>],
    run: &RunOptions,
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
    let out = run.out.as_path();
    std::fs::create_dir_all(out)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", out.display())))?;
    let ad = run.device.clone().autodiff();
    let (mut model, mut optim, mut state) = starting_point(config, run, &ad)?;
    emit(TitokEvent::Started {
        first_step: state.next_step,
    });
    let (mut window_mse, mut window_steps) = (0.0f64, 0usize);
    let last = out.join("last");
    let save_last = |model: &Titok, optim: &ModuleOptimizer, state: &TitokState| {
        super::write_last(
            &last,
            |tmp| {
                save_titok(tmp, m, &model.valid())
                    .map_err(|e| TrainError::Checkpoint(e.to_string()))
            },
            optim,
            state,
        )
    };
    for step in state.next_step..t.steps {
        if cancel.load(Ordering::Relaxed) {
            state.next_step = step;
            save_last(&model, &optim, &state)?;
            return Err(TrainError::Cancelled {
                steps: step,
                out: out.to_path_buf(),
            });
        }
        let warming = step < t.quantiser_warmup_steps;
        if step > 0 && step == t.quantiser_warmup_steps {
            model.codebook = seeded_codebook(&model, train, m, &mut state.rng, &ad);
            state.usage = Usage::new(m.codebook_size);
            emit(TitokEvent::Quantising { step });
        }
        let ids: Vec<usize> = (0..t.batch_size)
            .map(|_| state.rng.below(train.len()))
            .collect();
        let x = batch(train, &ids, size, &ad);
        let (loss, mse_v, q_v, codes) = if warming {
            let mse = (model.forward_unquantised(x.clone()) - x)
                .powf_scalar(2.0)
                .mean();
            let v: f32 = mse.clone().into_scalar();
            (mse, v, 0.0, None)
        } else {
            let r = model.forward(x.clone());
            let mse = (r.frames - x).powf_scalar(2.0).mean();
            let loss = mse.clone() + r.quantiser_loss.clone();
            let used: Vec<i64> = r
                .ids
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default();
            state.usage.add(&used);
            let q: f32 = r.quantiser_loss.into_scalar();
            (loss, mse.into_scalar(), q, Some(r.codes))
        };
        if !(mse_v + q_v).is_finite() {
            return Err(TrainError::Diverged {
                step,
                loss: mse_v + q_v,
            });
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(state.schedule.lr(step), model, grads);
        window_mse += f64::from(mse_v);
        window_steps += 1;
        emit(TitokEvent::Step {
            step,
            mse: mse_v,
            quantiser: q_v,
        });
        if let Some(codes) = codes.filter(|_| (step + 1) % t.reseed_every == 0) {
            let dead = state.usage.take_dead();
            if !dead.is_empty() {
                let entries = dead.len();
                model.codebook = model.codebook.reseed(&dead, codes);
                emit(TitokEvent::Reseeded { step, entries });
            }
        }
        // Only a quantising model is scored: the warm-up's is not a
        // tokenizer yet.
        if !warming && ((step + 1) % t.val_every == 0 || step + 1 == t.steps) {
            let inference = model.valid();
            let (psnr_db, codes_used) = validate(m, &inference, val, &run.device, t.batch_size)?;
            let train_psnr_db = -10.0 * (window_mse / window_steps.max(1) as f64).log10();
            (window_mse, window_steps) = (0.0, 0);
            state.schedule.observe(psnr_db);
            let is_best = psnr_db > state.best_psnr_db;
            if is_best {
                state.best_psnr_db = psnr_db;
                state.best_step = step;
                save_titok(out, m, &inference)
                    .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
            }
            state.next_step = step + 1;
            save_last(&model, &optim, &state)?;
            emit(TitokEvent::Validated {
                step,
                psnr_db,
                train_psnr_db,
                codes_used,
                best: is_best,
            });
        }
    }
    Ok(TitokSummary {
        best_psnr_db: state.best_psnr_db,
        best_step: state.best_step,
        out: out.to_path_buf(),
    })
}

/// A codebook whose every entry is the normalised code of a token of a
/// random training frame.
fn seeded_codebook(
    model: &Titok,
    train: &[Vec<f32>],
    config: &TitokConfig,
    rng: &mut Rng,
    device: &Device,
) -> crate::models::tokenizer::Codebook {
    let n = config
        .codebook_size
        .div_ceil(config.num_latent_tokens)
        .clamp(1, 256);
    let ids: Vec<usize> = (0..n).map(|_| rng.below(train.len())).collect();
    let codes = model.codes(batch(train, &ids, config.image_size, device));
    let all: Vec<usize> = (0..config.codebook_size).collect();
    model.codebook.clone().reseed(&all, codes)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{DeviceChoice, device};

    fn config() -> TitokTrainConfig {
        let text = r#"{"kind": "titok",
            "model": {"image_size": [16, 16], "patch_size": 8, "num_latent_tokens": 4,
                      "codebook_size": 16, "code_dim": 4, "encoder_width": 16,
                      "encoder_depth": 1, "encoder_heads": 2, "decoder_width": 16,
                      "decoder_depth": 1, "decoder_heads": 2, "commitment": 0.25},
            "training": {"steps": 12, "batch_size": 4, "learning_rate": 0.003,
                         "scheduler": {"kind": "warmup_cosine", "warmup_steps": 3},
                         "reseed_every": 3, "val_every": 4, "quantiser_warmup_steps": 2,
                         "seed": 3}}"#;
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Smooth frames with a bright disc at different places.
    fn frames(n: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|f| {
                let (cx, cy) = (4.0 + (f % 8) as f32, 5.0 + (f % 5) as f32);
                (0..256)
                    .map(|i| {
                        let (x, y) = ((i % 16) as f32, (i / 16) as f32);
                        let r2 = (x - cx).powi(2) + (y - cy).powi(2);
                        if r2 < 9.0 { 0.9 } else { 0.1 + 0.02 * x }
                    })
                    .collect()
            })
            .collect()
    }

    fn run(out: &Path, resume: bool) -> RunOptions {
        RunOptions {
            out: out.to_path_buf(),
            resume,
            device: device(DeviceChoice::Cpu),
            init: None,
            cpu_engine: false,
        }
    }

    fn decoded(dir: &Path) -> Vec<f32> {
        let dev = device(DeviceChoice::Cpu);
        let (c, m) = load_titok(dir, &dev).unwrap_or_else(|e| panic!("{e}"));
        let x = batch(&frames(3), &[0, 1, 2], c.image_size, &dev);
        m.detokenize(m.tokenize(x))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default()
    }

    #[test]
    fn a_cancelled_run_resumes_where_it_stopped() {
        let _seeded = crate::models::SEEDED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (c, data) = (config(), frames(24));
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let whole = tmp.path().join("whole");
        let never = AtomicBool::new(false);
        let (mut quantising, mut validated) = (Vec::new(), Vec::new());
        let events = |e: TitokEvent| match e {
            TitokEvent::Quantising { step } => quantising.push(step),
            TitokEvent::Validated { step, .. } => validated.push(step),
            _ => {}
        };
        train_titok(
            &c,
            &data[..18],
            &data[18..],
            &run(&whole, false),
            &never,
            events,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Quantising starts after the warm-up, and only quantising models
        // are scored.
        assert_eq!(quantising, [2]);
        assert_eq!(validated, [3, 7, 11]);

        // The same run stopped after step 6, then resumed.
        let parts = tmp.path().join("parts");
        let cancel = AtomicBool::new(false);
        let stop = |e: TitokEvent| {
            if matches!(e, TitokEvent::Step { step: 5, .. }) {
                cancel.store(true, Ordering::Relaxed);
            }
        };
        let e = train_titok(
            &c,
            &data[..18],
            &data[18..],
            &run(&parts, false),
            &cancel,
            stop,
        );
        assert!(
            matches!(e, Err(TrainError::Cancelled { steps: 6, .. })),
            "{e:?}"
        );
        // A new run into the folder is refused; resuming goes on at step 6.
        assert!(
            train_titok(
                &c,
                &data[..18],
                &data[18..],
                &run(&parts, false),
                &never,
                |_| {}
            )
            .is_err()
        );
        let mut first = None;
        let summary = train_titok(
            &c,
            &data[..18],
            &data[18..],
            &run(&parts, true),
            &never,
            |e| {
                if let TitokEvent::Started { first_step } = e {
                    first = Some(first_step);
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first, Some(6));
        assert_eq!(summary.out, parts);
        let (a, b) = (decoded(&whole.join("last")), decoded(&parts.join("last")));
        let worst = crate::models::max_abs_diff(&a, &b);
        assert!(
            !a.is_empty() && worst < 1e-4,
            "resumed run differs by {worst}"
        );

        // Fine-tuning starts from a checkpoint of the same tokenizer only.
        let mut opts = run(&tmp.path().join("tuned"), false);
        opts.init = Some(whole.display().to_string());
        train_titok(&c, &data[..18], &data[18..], &opts, &never, |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
        let mut other = c.clone();
        other.model.code_dim = 5;
        opts.out = tmp.path().join("other");
        let e = train_titok(&other, &data[..18], &data[18..], &opts, &never, |_| {});
        assert!(
            matches!(&e, Err(TrainError::Config(m)) if m.contains("another tokenizer configuration")),
            "{e:?}"
        );
    }
}
