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
//! fusion weights and the attention query. Reports through the same
//! [`Event`]s as the U-Net trainer; VoCo pretraining is still to come.

use super::augment::Rng;
use super::data::{DataError, LabelledCase, one_hot};
use super::loss::{ce, dice};
use super::schedule::Schedule;
use super::ume_config::{UmeMode, UmeTrainConfig};
use super::{Event, RunOptions, Summary, TrainError};
use crate::models::OutputMode;
use crate::models::encoder::{UmeEncoder, frames_of, input_tensor, save_encoder};
use crate::models::segment::nearest;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One labelled 3D case as the encoder reads it.
pub struct UmeCase {
    /// Case id.
    pub id: String,
    /// Normalised frames `[M, T, H, W]`.
    input: Vec<f32>,
    /// Label ids per frame at the network size `[T, H, W]`.
    labels: Vec<u16>,
    /// Frames with any label.
    labelled: Vec<usize>,
    /// Each frame's share of the labelled pixels (sums to 1 when any).
    share: Vec<f32>,
    frames: usize,
}

impl UmeCase {
    /// Frames (z slices) of a labelled 3D case, resampled to the encoder's
    /// image size (images bilinear, labels nearest).
    pub fn new(case: &LabelledCase, config: &UmeTrainConfig) -> Result<UmeCase, DataError> {
        let err = |problem: String| DataError {
            case: case.id.to_string(),
            problem,
        };
        let labels = case
            .labels
            .ok_or_else(|| err("the encoder trains on 3D labels".into()))?;
        let vols: Vec<&crate::volume::Volume> = case.images.iter().map(|(_, v)| *v).collect();
        let mut frames = frames_of(&vols);
        let m = config.model.input_channels;
        if frames.len() < m {
            return Err(err(format!(
                "{} modalities, the encoder takes {m}",
                frames.len()
            )));
        }
        frames.truncate(m);
        let [nx, ny, nz] = labels.dims;
        if vols[0].dims != labels.dims {
            return Err(err("image and label grids differ".into()));
        }
        if nz > config.model.max_frames {
            return Err(err(format!(
                "{nz} frames, more than max_frames {}",
                config.model.max_frames
            )));
        }
        let input = input_tensor(&config.model, &frames, &Device::flex())
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| err(format!("{e:?}")))?;
        let [h, w] = config.model.image_size;
        let mut ids = Vec::with_capacity(nz * h * w);
        let mut labelled = Vec::new();
        let mut share = vec![0.0f32; nz];
        for (k, frame_share) in share.iter_mut().enumerate() {
            let mut n = 0usize;
            for j in 0..h {
                let sj = nearest(j, h, ny);
                for i in 0..w {
                    let id = labels.get(k * nx * ny + sj * nx + nearest(i, w, nx));
                    n += usize::from(id != 0);
                    ids.push(id);
                }
            }
            if n > 0 {
                labelled.push(k);
            }
            *frame_share = n as f32;
        }
        let total: f32 = share.iter().sum();
        if total > 0.0 {
            share.iter_mut().for_each(|s| *s /= total);
        }
        Ok(UmeCase {
            id: case.id.to_string(),
            input,
            labels: ids,
            labelled,
            share,
            frames: nz,
        })
    }

    fn tensor(&self, config: &UmeTrainConfig, device: &Device) -> Tensor<5> {
        let [h, w] = config.model.image_size;
        Tensor::from_data(
            TensorData::new(
                self.input.clone(),
                [1, config.model.input_channels, self.frames, h, w],
            ),
            device,
        )
    }
}

/// The label ids of the encoder's classes 1..C.
fn class_ids(config: &UmeTrainConfig) -> Vec<u16> {
    if config.model.label_ids.is_empty() {
        (1..config.model.num_classes)
            .filter_map(|c| u16::try_from(c).ok())
            .collect()
    } else {
        config.model.label_ids.clone()
    }
}

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

fn train_inner(
    config: &UmeTrainConfig,
    train: &[UmeCase],
    val: &[UmeCase],
    opts: &RunOptions,
    cancel: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<Summary, TrainError> {
    config.check().map_err(TrainError::Config)?;
    if config.training.mode == UmeMode::Voco {
        return Err(TrainError::Config(
            "VoCo pretraining is not available yet; use training.mode \"supervised\"".into(),
        ));
    }
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
    device.seed(t.seed);
    let mut model: UmeEncoder = config.model.init(&device);
    let mut optim = AdamWConfig::new()
        .with_weight_decay(t.weight_decay as f32)
        .init();
    let schedule = Schedule::new(
        super::config::SchedulerConfig::WarmupCosine {
            warmup_steps: t.warmup_steps,
            min_lr: t.learning_rate / 100.0,
        },
        t.learning_rate,
        t.steps,
    );
    let mut rng = Rng::new(t.seed);
    let val = if val.is_empty() { train } else { val };
    emit(Event::Started {
        first_step: 0,
        total_steps: t.steps,
        train_samples: train.len(),
        val_samples: val.len(),
        label_ids: ids.clone(),
    });
    let w = t.loss_weights;
    let [h, wd] = config.model.image_size;
    let c = config.model.num_classes;
    let mut best = (-1.0f64, 0usize);
    let mut final_loss = f32::NAN;
    for step in 0..t.steps {
        if cancel.load(Ordering::Relaxed) {
            return Err(TrainError::Cancelled {
                steps: step,
                out: opts.out.clone(),
            });
        }
        let clock = Instant::now();
        let case = &train[rng.below(train.len())];
        let tokens = model.embed(case.tensor(config, &device));
        let sel = model.select(tokens.clone(), config.model.max_keyframes);
        let ctx = model.context(tokens.clone(), &sel);
        // Two frames to predict: one with labels when there is one.
        let picks: Vec<usize> = (0..2)
            .map(|i| {
                if i == 0 && !case.labelled.is_empty() {
                    case.labelled[rng.below(case.labelled.len())]
                } else {
                    rng.below(case.frames)
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
                one_hot(&frame_ids, &ids, OutputMode::MultiClass, h * wd),
                [picks.len(), c, h, wd],
            ),
            &device,
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
                &device,
            );
            let s = summary.select(0, idx);
            let s = s.clone() / s.powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-6);
            let gram = s.clone().matmul(s.transpose());
            (gram.sum() - k as f64) / (k * (k - 1)) as f64
        } else {
            Tensor::zeros([1], &device)
        };
        let cons = (sel.attention.clone() - sel.content.clone())
            .powi_scalar(2)
            .mean();
        let temporal = if frames > 1 {
            (sel.fused.clone().narrow(1, 1, frames - 1)
                - sel.fused.clone().narrow(1, 0, frames - 1))
            .powi_scalar(2)
            .mean()
        } else {
            Tensor::zeros([1], &device)
        };
        // Coverage: the fused scores, as a distribution over frames, should
        // put their mass where the labelled voxels are.
        let coverage = if w.coverage > 0.0 && !case.labelled.is_empty() {
            let q =
                Tensor::<2>::from_data(TensorData::new(case.share.clone(), [1, frames]), &device);
            let logp = burn::tensor::activation::log_softmax(sel.fused.clone() * 10.0, 1);
            (logp * q).sum().neg()
        } else {
            Tensor::zeros([1], &device)
        };
        let loss = seg * w.segmentation
            + div * w.diversity
            + cons * w.consistency
            + temporal * w.temporal
            + coverage * w.coverage;
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            return Err(TrainError::Diverged { step, loss: value });
        }
        final_loss = value;
        let lr = schedule.lr(step);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
        emit(Event::Step {
            step,
            loss: value,
            lr,
            images_per_s: 1.0 / clock.elapsed().as_secs_f64().max(1e-9),
        });
        let last = step + 1 == t.steps;
        if (step + 1) % t.val_every.max(1) == 0 || last {
            let inference = model.valid();
            let dice = validate_ume(config, &inference, val, &ids, &opts.device);
            let finite: Vec<f64> = dice.iter().map(|d| d.1).filter(|d| d.is_finite()).collect();
            let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
            let is_best = mean > best.0;
            if is_best {
                best = (mean, step);
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
        }
    }
    Ok(Summary {
        steps: t.steps,
        best_dice: best.0,
        best_step: best.1,
        final_loss,
        out: opts.out.clone(),
    })
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
        let sel = model.select(tokens.clone(), config.model.max_keyframes);
        let ctx = model.context(tokens.clone(), &sel);
        for f in 0..case.frames {
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
