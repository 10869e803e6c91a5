//! Supervised training of the UME encoder (seed 000): for each step one
//! case is embedded whole, its keyframes selected and fused into the
//! context, and a few frames predicted from that context. The loss is the
//! seed's weighted sum: segmentation (CE + Dice of the predicted frames),
//! keyframe diversity (mean cosine similarity between the selected frames'
//! summaries), consistency (attention scores agreeing with content change)
//! and temporal smoothness of the fused score — plus one term the seed does
//! not have, label-guided coverage (the fused scores as a distribution over
//! frames should follow where the labelled voxels are), without which the
//! learned selection drifted away from the tumour. The selection's
//! straight-through mask carries the segmentation gradient back to the
//! fusion weights and the attention query. In `voco` mode (no labels) each
//! step draws a random crop and its four base crops ([`super::voco`]); the
//! cosine similarity of their embeddings regresses the overlap shares and a
//! temperature-scaled contrast pushes the base crops apart; validation
//! reports the correlation of predicted and true overlaps on fixed held-out
//! draws (in `Validated::mean_dice`). A VoCo checkpoint initialises
//! supervised fine-tuning through `RunOptions::init`. Reports through the
//! same [`Event`]s as the U-Net trainer, and like it keeps a resumable
//! `out/last/` (weights, optimiser moments, sampler stream, best score),
//! written at each validation and on cancel, which `RunOptions::resume`
//! continues exactly.

mod case;
mod voco_loss;

use case::class_ids;
pub use case::{UmeCase, split_cases};

use super::augment::Rng;
use super::data::one_hot;
use super::loss::{ce, dice};
use super::schedule::Schedule;
use super::ume_config::{UmeMode, UmeTrainConfig};
use super::{Event, RunOptions, Summary, TrainError};
use crate::models::OutputMode;
use crate::models::encoder::{UmeEncoder, save_encoder};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use voco_loss::{voco_correlation, voco_loss};

/// Train the encoder (supervised mode) to the end, a cancel or an error;
/// the best validation model is saved in `opts.out`.
pub fn train_ume(
    config: &UmeTrainConfig,
    train: &[UmeCase],
    val: &[UmeCase],
    opts: &RunOptions,
    cancel: &AtomicBool,
    mut emit: impl FnMut(Event),
) -> Result<Summary, TrainError> {
    let result = train_inner(config, train, val, opts, cancel, &mut emit);
    emit(Event::Finished(result.clone()));
    result
}

/// Start [`train_ume`] on a thread named `ume-training`, as
/// [`super::spawn_training`] does for the U-Net (the app's fine-tuning).
pub fn spawn_ume_training(
    config: UmeTrainConfig,
    train: Vec<UmeCase>,
    val: Vec<UmeCase>,
    opts: RunOptions,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<super::TrainingHandle> {
    super::spawn_run(
        move |cancel, emit| {
            let _ = train_ume(&config, &train, &val, &opts, cancel, emit);
        },
        wake,
    )
}

fn train_inner(
    config: &UmeTrainConfig,
    train: &[UmeCase],
    val: &[UmeCase],
    opts: &RunOptions,
    cancel: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<Summary, TrainError> {
    config.check().map_err(TrainError::Config)?;
    if train.is_empty() {
        return Err(TrainError::Data("no training cases".into()));
    }
    let t = &config.training;
    let ids = class_ids(config);
    if ids.len() + 1 != config.model.num_classes {
        return Err(TrainError::Config(format!(
            "model.num_classes {} needs {} label_ids, got {}",
            config.model.num_classes,
            config.model.num_classes - 1,
            ids.len()
        )));
    }
    let device = opts.device.clone().autodiff();
    let (mut model, mut optim, mut state) = starting_point(config, opts, &device)?;
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", opts.out.display())))?;
    let last_dir = opts.out.join("last");
    let save_last = |model: &UmeEncoder, optim: &ModuleOptimizer, state: &UmeState| {
        super::write_last(
            &last_dir,
            |tmp| Ok(save_encoder(tmp, &config.model, model)?),
            optim,
            state,
        )
    };
    let schedule = Schedule::new(
        super::config::SchedulerConfig::WarmupCosine {
            warmup_steps: t.warmup_steps,
            min_lr: t.learning_rate / 100.0,
        },
        t.learning_rate,
        t.steps,
    );
    let val = if val.is_empty() { train } else { val };
    let first = state.next_step;
    emit(Event::Started {
        first_step: first,
        total_steps: t.steps,
        train_samples: train.len(),
        val_samples: val.len(),
        label_ids: ids.clone(),
    });
    let mut final_loss = f32::NAN;
    for step in first..t.steps {
        if cancel.load(Ordering::Relaxed) {
            if step > first {
                save_last(&model, &optim, &state)?;
                emit(Event::Checkpointed {
                    step: step - 1,
                    path: last_dir.clone(),
                });
            }
            return Err(TrainError::Cancelled {
                steps: step,
                out: opts.out.clone(),
            });
        }
        let clock = Instant::now();
        // `data.batch_size` volumes, their losses averaged: one backward
        // per volume, the gradients accumulated.
        let batch = config.data.batch_size.max(1);
        let share = 1.0 / batch as f64;
        let mut accumulator = GradientsAccumulator::new();
        let mut value = 0.0f32;
        let mut terms: Vec<(&'static str, f32)> = Vec::new();
        for _ in 0..batch {
            let rng = &mut state.rng;
            let case = &train[rng.below(train.len())];
            let (loss, case_terms) = match (&config.training.mode, &config.voco) {
                (UmeMode::Voco, Some(v)) => voco_loss(&model, case, config, v, rng, &device),
                _ => supervised_loss(&model, case, config, &ids, rng, &device),
            };
            let loss = if batch > 1 { loss * share } else { loss };
            let case_value = loss.clone().into_scalar::<f32>();
            if !case_value.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    loss: case_value,
                });
            }
            value += case_value;
            for (i, (name, t)) in case_terms.into_iter().enumerate() {
                let t = t.into_scalar::<f32>() * share as f32;
                match terms.get_mut(i) {
                    Some((_, sum)) => *sum += t,
                    None => terms.push((name, t)),
                }
            }
            accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
        }
        final_loss = value;
        let lr = schedule.lr(step);
        model = optim.step(lr, model, accumulator.grads());
        state.next_step = step + 1;
        emit(Event::Step {
            step,
            loss: value,
            lr,
            images_per_s: batch as f64 / clock.elapsed().as_secs_f64().max(1e-9),
            terms,
        });
        let last = step + 1 == t.steps;
        if (step + 1) % t.val_every.max(1) == 0 || last {
            let inference = model.valid();
            let (dice, mean) = match (&config.training.mode, &config.voco) {
                // VoCo: the score is the correlation of predicted and true
                // overlaps on fixed held-out draws.
                (UmeMode::Voco, Some(v)) => (
                    Vec::new(),
                    voco_correlation(&inference, val, config, v, 32, &opts.device),
                ),
                _ => {
                    let dice = validate_ume(config, &inference, val, &ids, &opts.device);
                    let finite: Vec<f64> =
                        dice.iter().map(|d| d.1).filter(|d| d.is_finite()).collect();
                    let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
                    (dice, mean)
                }
            };
            let is_best = mean > state.best_dice;
            if is_best {
                (state.best_dice, state.best_step) = (mean, step);
                save_encoder(&opts.out, &config.model, &inference)?;
            }
            emit(Event::Validated {
                step,
                dice,
                mean_dice: mean,
                best: is_best,
            });
            if is_best {
                emit(Event::Checkpointed {
                    step,
                    path: opts.out.clone(),
                });
            }
            save_last(&model, &optim, &state)?;
            emit(Event::Checkpointed {
                step,
                path: last_dir.clone(),
            });
        }
    }
    Ok(Summary {
        steps: t.steps,
        best_dice: state.best_dice,
        best_step: state.best_step,
        final_loss,
        out: opts.out.clone(),
    })
}

/// The model, optimiser and state a run starts from: `out/last/` when
/// resuming (refused if it holds another model), else a fresh or
/// `RunOptions::init` encoder at step 0.
fn starting_point(
    config: &UmeTrainConfig,
    opts: &RunOptions,
    device: &Device,
) -> Result<(UmeEncoder, ModuleOptimizer, UmeState), TrainError> {
    let t = &config.training;
    let new_optim = || {
        AdamWConfig::new()
            .with_weight_decay(t.weight_decay as f32)
            .init()
    };
    let last_dir = opts.out.join("last");
    super::check_out(opts)?;
    Ok(if opts.resume && super::resumable(&opts.out) {
        let state: UmeState = super::read_state(&last_dir)?;
        let (saved, model) = crate::models::encoder::load_encoder(&last_dir, device)?;
        if serde_json::to_value(&saved).ok() != serde_json::to_value(&config.model).ok() {
            return Err(TrainError::Config(format!(
                "{} was trained with another model configuration; start a new output folder or drop --resume",
                last_dir.display()
            )));
        }
        (model, super::load_optim(new_optim(), &last_dir)?, state)
    } else {
        device.seed(t.seed);
        let model: UmeEncoder = match &opts.init {
            // Fine-tuning, e.g. from a VoCo-pretrained encoder.
            Some(dir) => {
                let (from, m) =
                    crate::models::encoder::load_encoder(std::path::Path::new(dir), device)?;
                if from.embed_dim != config.model.embed_dim
                    || from.num_layers != config.model.num_layers
                    || from.patch_size != config.model.patch_size
                    || from.input_channels != config.model.input_channels
                {
                    return Err(TrainError::Config(format!(
                        "{dir}: its encoder differs from the config's model"
                    )));
                }
                m
            }
            None => config.model.init(device),
        };
        let state = UmeState {
            next_step: 0,
            rng: Rng::new(t.seed),
            best_dice: -1.0, // below any score, and JSON-representable
            best_step: 0,
        };
        (model, new_optim(), state)
    })
}

/// The encoder's resumable state, saved with its weights and optimiser in
/// `out/last/` at every validation and on cancel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UmeState {
    next_step: usize,
    rng: Rng,
    best_dice: f64,
    best_step: usize,
}

/// A step's weighted loss and its named terms before weighting.
type Terms = (Tensor<1>, Vec<(&'static str, Tensor<1>)>);

/// The supervised loss of one step on one case: segmentation of two frames
/// from the keyframe context, plus diversity, consistency, temporal and
/// coverage terms.
fn supervised_loss(
    model: &UmeEncoder,
    case: &UmeCase,
    config: &UmeTrainConfig,
    ids: &[u16],
    rng: &mut Rng,
    device: &Device,
) -> Terms {
    let w = config.training.loss_weights;
    let [h, wd] = config.model.image_size;
    let c = config.model.num_classes;
    let tokens = model.embed(case.tensor(config, device));
    let sel = model.select(tokens.clone(), config.model.max_keyframes, case.axis);
    let ctx = model.context(tokens.clone(), &sel);
    // Two frames to predict: one with labels when there is one.
    let known: Vec<usize> = (0..case.frames).filter(|&f| case.known[f]).collect();
    let picks: Vec<usize> = (0..2)
        .map(|i| {
            if i == 0 && !case.labelled.is_empty() {
                case.labelled[rng.below(case.labelled.len())]
            } else {
                known[rng.below(known.len())]
            }
        })
        .collect();
    let logits = Tensor::cat(
        picks
            .iter()
            .map(|&f| model.segment_frame(&tokens, f, &ctx))
            .collect(),
        0,
    );
    let frame_ids: Vec<u16> = picks
        .iter()
        .flat_map(|&f| case.labels[f * h * wd..(f + 1) * h * wd].iter().copied())
        .collect();
    let target = Tensor::<4>::from_data(
        TensorData::new(
            one_hot(&frame_ids, ids, OutputMode::MultiClass, h * wd),
            [picks.len(), c, h, wd],
        ),
        device,
    );
    let seg = ce(logits.clone(), target.clone()) + dice(OutputMode::MultiClass, logits, target);
    // Diversity: mean cosine similarity of the selected frames' summaries.
    let [_, _, frames, _, d] = tokens.dims();
    let summary = tokens.mean_dim(3).mean_dim(1).reshape([frames, d]);
    let chosen = sel.indices.first().cloned().unwrap_or_default();
    let k = chosen.len();
    let div = if k > 1 {
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(chosen.iter().map(|&i| i as i64).collect::<Vec<_>>(), [k]),
            device,
        );
        let s = summary.select(0, idx);
        let s = s.clone() / s.powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-6);
        let gram = s.clone().matmul(s.transpose());
        (gram.sum() - k as f64) / (k * (k - 1)) as f64
    } else {
        Tensor::zeros([1], device)
    };
    let cons = (sel.attention.clone() - sel.content.clone())
        .powi_scalar(2)
        .mean();
    let temporal = if frames > 1 {
        (sel.fused.clone().narrow(1, 1, frames - 1) - sel.fused.clone().narrow(1, 0, frames - 1))
            .powi_scalar(2)
            .mean()
    } else {
        Tensor::zeros([1], device)
    };
    // Coverage: the fused scores, as a distribution over frames, should
    // put their mass where the labelled voxels are.
    let coverage = if w.coverage > 0.0 && !case.labelled.is_empty() {
        let q = Tensor::<2>::from_data(TensorData::new(case.share.clone(), [1, frames]), device);
        let logp = burn::tensor::activation::log_softmax(sel.fused.clone() * 10.0, 1);
        (logp * q).sum().neg()
    } else {
        Tensor::zeros([1], device)
    };
    let total = seg.clone() * w.segmentation
        + div.clone() * w.diversity
        + cons.clone() * w.consistency
        + temporal.clone() * w.temporal
        + coverage.clone() * w.coverage;
    let mut terms = vec![
        ("seg", seg),
        ("div", div),
        ("cons", cons),
        ("temp", temporal),
    ];
    if w.coverage > 0.0 {
        terms.push(("cover", coverage));
    }
    (total, terms)
}

/// Dice per label id over every frame of the validation cases (counts
/// summed), each frame predicted from its case's keyframe context.
fn validate_ume(
    config: &UmeTrainConfig,
    model: &UmeEncoder,
    cases: &[UmeCase],
    ids: &[u16],
    device: &Device,
) -> Vec<(u16, f64)> {
    let mut counts = vec![(0u64, 0u64, 0u64); ids.len()];
    let [h, w] = config.model.image_size;
    for case in cases {
        let tokens = model.embed(case.tensor(config, device));
        let sel = model.select(tokens.clone(), config.model.max_keyframes, case.axis);
        let ctx = model.context(tokens.clone(), &sel);
        for f in (0..case.frames).filter(|&f| case.known[f]) {
            let classes: Vec<i64> = model
                .segment_frame(&tokens, f, &ctx)
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default();
            for (p, &cls) in classes.iter().enumerate() {
                let truth = case.labels[f * h * w + p];
                let pred = usize::try_from(cls)
                    .ok()
                    .filter(|&c| c > 0)
                    .and_then(|c| ids.get(c - 1).copied())
                    .unwrap_or(0);
                for (i, &id) in ids.iter().enumerate() {
                    match (pred == id, truth == id) {
                        (true, true) => counts[i].0 += 1,
                        (true, false) => counts[i].1 += 1,
                        (false, true) => counts[i].2 += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    ids.iter()
        .zip(counts)
        .map(|(&id, (tp, fp, fn_))| (id, crate::metrics::dice_from_counts(tp, fp, fn_)))
        .collect()
}
