//! The training core: supervised 2D U-Net training on labelled samples,
//! UI-agnostic. [`train`] is the synchronous loop (the CLI and tests call
//! it); [`spawn_training`] runs it on a named thread and reports through
//! [`Event`]s, with a cancel flag checked between steps — the app's
//! fine-tuning panel drives exactly this. A NaN loss, a cancel or a panic
//! ends the run with an error event; none of them is ever silent. On the
//! CPU the U-Net's gradients come from UME's training engine
//! ([`cpu_train`]) and the losses' closed-form gradients
//! ([`loss_grad`]); elsewhere from Burn's autodiff of [`loss`]. Either way
//! Burn's optimisers apply them.
//!
//! Output folder layout (all writes atomic):
//! - `config.json` + `model.bpk`: the best model so far (highest validation
//!   mean Dice) — a checkpoint `ume segment --model` reads directly;
//! - `last/`: the resumable state of the latest step (weights, optimiser
//!   moments, schedule, sampler stream, history);
//! - `train_config.json`: the configuration the run was started with.

pub mod augment;
pub mod bench;
pub mod config;
pub mod cpu_train;
pub mod data;
pub mod loss;
pub mod loss_grad;
pub mod schedule;
pub mod titok;
pub mod ume;
pub mod ume_config;
pub mod voco;

pub use config::TrainConfig;
pub use data::TrainingData;

use crate::models::UNet2d;
use crate::models::segment::{
    Network, SegmentError, SegmenterConfig, load_checkpoint, save_checkpoint, segment_slices,
};
use augment::Rng;
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer,
};
use burn::prelude::*;
use schedule::Schedule;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What a training run reports, in order: one `Started`, then `Step`s with
/// `Validated` and `Checkpointed` in between, and one `Finished`.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run began (or resumed at `first_step`).
    Started {
        /// Step the run starts at (0 unless resumed).
        first_step: usize,
        /// Steps in the whole run.
        total_steps: usize,
        /// Training samples (labelled 3D grids).
        train_samples: usize,
        /// Validation samples; 0 means the training samples validate.
        val_samples: usize,
        /// The label ids the model predicts.
        label_ids: Vec<u16>,
    },
    /// One optimiser step done.
    Step {
        /// 0-based step.
        step: usize,
        /// Mean loss of the step's batches.
        loss: f32,
        /// Learning rate used.
        lr: f64,
        /// Training images (slices) per second over this step.
        images_per_s: f64,
        /// The loss's named terms before weighting, as the seed's training
        /// log shows them (the encoder: `seg`, `div`, … or `voco`, `area`;
        /// empty for the U-Net, whose loss is one term).
        terms: Vec<(&'static str, f32)>,
    },
    /// A validation pass.
    Validated {
        /// After this 0-based step.
        step: usize,
        /// Dice per predicted label id (NaN when the structure is absent
        /// from both ground truth and prediction).
        dice: Vec<(u16, f64)>,
        /// Mean over the finite values.
        mean_dice: f64,
        /// Whether this is the best so far (then saved as the model).
        best: bool,
    },
    /// A checkpoint was written.
    Checkpointed {
        /// After this 0-based step.
        step: usize,
        /// The folder.
        path: PathBuf,
    },
    /// The run ended.
    Finished(Result<Summary, TrainError>),
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Steps done in total.
    pub steps: usize,
    /// Best validation mean Dice and its step.
    pub best_dice: f64,
    /// Step of the best model.
    pub best_step: usize,
    /// Loss of the last step.
    pub final_loss: f32,
    /// The output folder (best model at its top level).
    pub out: PathBuf,
}

/// Why a run ended early.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TrainError {
    /// The configuration does not fit the data.
    #[error("configuration: {0}")]
    Config(String),
    /// A sample is unusable.
    #[error("data: {0}")]
    Data(String),
    /// A checkpoint could not be read or written.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged: loss {loss} at step {step} (lower the learning rate or enable grad_clip_norm)"
    )]
    Diverged {
        /// 0-based step.
        step: usize,
        /// The loss value.
        loss: f32,
    },
    /// The user cancelled; the state of the last finished step is saved.
    #[error("cancelled after {steps} steps (resumable from {})", out.join("last").display())]
    Cancelled {
        /// Steps done.
        steps: usize,
        /// Output folder.
        out: PathBuf,
    },
    /// The training thread panicked.
    #[error("training crashed: {0}")]
    Panicked(String),
}

impl From<SegmentError> for TrainError {
    fn from(e: SegmentError) -> TrainError {
        TrainError::Checkpoint(e.to_string())
    }
}

impl From<data::DataError> for TrainError {
    fn from(e: data::DataError) -> TrainError {
        TrainError::Data(e.to_string())
    }
}

/// Where and how a run goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Continue from `out/last` when it exists.
    pub resume: bool,
    /// Device (not autodiff; the trainer adds it).
    pub device: Device,
    /// Start from these weights (a checkpoint folder or bundled demo name)
    /// instead of a random initialisation — fine-tuning. Its network must
    /// match the config's.
    pub init: Option<String>,
    /// On the CPU device, compute U-Net gradients with UME's CPU training
    /// engine ([`cpu_train`], 2.9× faster) rather than
    /// Burn's autodiff; the two agree within float tolerance (tested).
    /// Ignored on wgpu and by the encoder's training.
    pub cpu_engine: bool,
}

/// The resumable state saved with the last weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    next_step: usize,
    rng: Rng,
    schedule: Schedule,
    best_dice: f64,
    best_step: usize,
}

/// The checkpoint configuration of a run: empty `label_ids` become the
/// labels present in the training data, and the network's output channels
/// must fit them.
pub fn resolve_model(
    config: &TrainConfig,
    data: &TrainingData,
) -> Result<SegmenterConfig, TrainError> {
    let mut model = config.model.clone();
    if model.label_ids.is_empty() {
        model.label_ids = data.present.clone();
    }
    let need = TrainConfig::channels_for(model.network.output, model.label_ids.len());
    if model.network.out_channels != need {
        return Err(TrainError::Config(format!(
            "the network has {} output channels but {} label ids need {need} ({:?} output)",
            model.network.out_channels,
            model.label_ids.len(),
            model.network.output
        )));
    }
    Ok(model)
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let clip = config
        .training
        .grad_clip_norm
        .map(GradientClippingConfig::Norm);
    match config.training.optimizer {
        config::OptimizerConfig::Adam { weight_decay } => AdamConfig::new()
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
            .with_grad_clipping(clip)
            .init(),
        config::OptimizerConfig::AdamW { weight_decay } => AdamWConfig::new()
            .with_weight_decay(weight_decay as f32)
            .with_grad_clipping(clip)
            .init(),
    }
}

/// Run training to the end (or to a cancel, NaN or error), calling `emit`
/// for every event including the final `Finished`, which is also returned.
pub fn train(
    config: &TrainConfig,
    data: &TrainingData,
    opts: &RunOptions,
    cancel: &AtomicBool,
    mut emit: impl FnMut(Event),
) -> Result<Summary, TrainError> {
    let result = train_inner(config, data, opts, cancel, &mut emit);
    emit(Event::Finished(result.clone()));
    result
}

fn train_inner(
    config: &TrainConfig,
    data: &TrainingData,
    opts: &RunOptions,
    cancel: &AtomicBool,
    emit: &mut dyn FnMut(Event),
) -> Result<Summary, TrainError> {
    config.check().map_err(TrainError::Config)?;
    if data.train.is_empty() {
        return Err(TrainError::Data("no training samples".into()));
    }
    let model_config = resolve_model(config, data)?;
    let t = &config.training;
    let device = opts.device.clone().autodiff();
    let last_dir = opts.out.join("last");
    let io =
        |path: &Path, e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", path.display()));
    check_out(opts)?;
    std::fs::create_dir_all(&opts.out).map_err(|e| io(&opts.out, e))?;
    let (mut model, mut optim, mut state) = if opts.resume && resumable(&opts.out) {
        let mut state: State = read_state(&last_dir)?;
        state.schedule = state
            .schedule
            .retarget(t.scheduler, t.learning_rate, t.steps);
        let (saved, model) = load_checkpoint(&last_dir, &device)?;
        if serde_json::to_value(&saved).ok() != serde_json::to_value(&model_config).ok() {
            return Err(TrainError::Config(format!(
                "{} was trained with another model configuration; start a new output folder or drop --resume",
                last_dir.display()
            )));
        }
        let optim = load_optim(optimizer(config), &last_dir)?;
        (model, optim, state)
    } else {
        device.seed(t.seed);
        let state = State {
            next_step: 0,
            rng: Rng::new(t.seed),
            schedule: Schedule::new(t.scheduler, t.learning_rate, t.steps),
            best_dice: -1.0, // below any Dice, and JSON-representable
            best_step: 0,
        };
        let model = match &opts.init {
            Some(spec) => {
                let (from, model) = crate::models::demos::load_model(spec, &device)?;
                if serde_json::to_value(&from.network).ok()
                    != serde_json::to_value(&model_config.network).ok()
                {
                    return Err(TrainError::Config(format!(
                        "{spec}: its network differs from the config's; fine-tuning keeps the architecture"
                    )));
                }
                model
            }
            None => model_config.network.init(&device),
        };
        (model, optimizer(config), state)
    };
    let json = serde_json::to_vec_pretty(config).map_err(|e| TrainError::Config(e.to_string()))?;
    crate::io::write_atomic(&opts.out.join("train_config.json"), &json)
        .map_err(|e| TrainError::Checkpoint(e.to_string()))?;

    let val = if data.val.is_empty() {
        &data.train
    } else {
        &data.val
    };
    emit(Event::Started {
        first_step: state.next_step,
        total_steps: t.steps,
        train_samples: data.train.len(),
        val_samples: data.val.len(),
        label_ids: model_config.label_ids.clone(),
    });
    let size = config.model.size;
    let channels = model_config.network.in_channels;
    let out_channels = model_config.network.out_channels;
    let mut final_loss = f32::NAN;
    let start = state.next_step;
    let engine =
        (opts.cpu_engine && crate::models::is_cpu(&opts.device)).then(cpu_train::CpuTrainer::new);
    let mut loss_buffers = loss_grad::LossBuffers::default();
    for step in start..t.steps {
        if cancel.load(Ordering::Relaxed) {
            if step > start {
                save_last(&last_dir, &model_config, &model, &optim, &state)?;
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
        let mut accumulator = GradientsAccumulator::new();
        let mut loss_sum = 0.0f32;
        let mode = model_config.network.output;
        let share = 1.0 / t.accumulation as f32;
        for _ in 0..t.accumulation {
            let (xs, ys) = data.batch(config, &model_config.label_ids, &mut state.rng);
            let b = t.batch_size;
            let target = data::one_hot(&ys, &model_config.label_ids, mode, size * size);
            let (value, grads) = match &engine {
                Some(engine) => engine.step(
                    &model,
                    &xs,
                    [b, size, size],
                    |logits| {
                        let dims = [b, out_channels, size * size];
                        let buffers = &mut loss_buffers;
                        loss_grad::loss_and_grad(
                            t.loss, mode, logits, &target, dims, share, buffers,
                        )
                    },
                    &opts.device,
                ),
                None => {
                    let x = Tensor::<4>::from_data(
                        TensorData::new(xs, [b, channels, size, size]),
                        &device,
                    );
                    let y = Tensor::<4>::from_data(
                        TensorData::new(target, [b, out_channels, size, size]),
                        &device,
                    );
                    let loss = loss::loss(t.loss, mode, model.forward(x), y) * f64::from(share);
                    let value = loss.clone().into_scalar::<f32>();
                    let grads = if value.is_finite() {
                        GradientsParams::from_grads(loss.backward(), &model)
                    } else {
                        GradientsParams::new()
                    };
                    (value, grads)
                }
            };
            if !value.is_finite() {
                return Err(TrainError::Diverged { step, loss: value });
            }
            loss_sum += value;
            accumulator.accumulate(&model, grads);
        }
        let lr = state.schedule.lr(step);
        model = optim.step(lr, model, accumulator.grads());
        final_loss = loss_sum;
        state.next_step = step + 1;
        let images = (t.batch_size * t.accumulation) as f64;
        emit(Event::Step {
            step,
            loss: loss_sum,
            lr,
            images_per_s: images / clock.elapsed().as_secs_f64().max(1e-9),
            terms: Vec::new(),
        });
        let last = step + 1 == t.steps;
        if (step + 1) % t.val_every == 0 || last {
            let inference = model.valid(); // running statistics synced, no autodiff
            let dice = validate(&model_config, &inference, val, &opts.device, t.val_batch)?;
            let finite: Vec<f64> = dice.iter().map(|d| d.1).filter(|d| d.is_finite()).collect();
            let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
            state.schedule.observe(mean);
            let best = mean > state.best_dice;
            if best {
                state.best_dice = mean;
                state.best_step = step;
                save_checkpoint(&opts.out, &model_config, &inference)?;
            }
            emit(Event::Validated {
                step,
                dice,
                mean_dice: mean,
                best,
            });
            if best {
                emit(Event::Checkpointed {
                    step,
                    path: opts.out.clone(),
                });
            }
        }
        if (step + 1) % t.checkpoint_every == 0 || last {
            save_last(&last_dir, &model_config, &model, &optim, &state)?;
            emit(Event::Checkpointed {
                step,
                path: last_dir.clone(),
            });
        }
    }
    Ok(Summary {
        steps: state.next_step,
        best_dice: state.best_dice,
        best_step: state.best_step,
        final_loss,
        out: opts.out.clone(),
    })
}

/// Dice per label id over all validation samples (voxel counts summed over
/// the samples, so small cases weigh by their size), on each sample's
/// labelled slices only. NaN where a structure is absent from both ground
/// truth and prediction.
pub fn validate(
    config: &SegmenterConfig,
    model: &UNet2d,
    samples: &[data::Sample],
    device: &Device,
    batch: usize,
) -> Result<Vec<(u16, f64)>, TrainError> {
    let mut counts = vec![(0u64, 0u64, 0u64); config.label_ids.len()];
    let network = Network::new(model, device);
    for s in samples {
        let plane = s.labels.dims[0] * s.labels.dims[1];
        segment_slices(
            config,
            &network,
            &s.input,
            s.labelled_slices(),
            batch,
            |k, ids| {
                for (p, &pred) in ids.iter().enumerate() {
                    let truth = s.labels.get(k * plane + p);
                    for (c, &id) in config.label_ids.iter().enumerate() {
                        match (truth == id, pred == id) {
                            (true, true) => counts[c].0 += 1,
                            (false, true) => counts[c].1 += 1,
                            (true, false) => counts[c].2 += 1,
                            (false, false) => {}
                        }
                    }
                }
                true
            },
        )?;
    }
    Ok(config
        .label_ids
        .iter()
        .zip(counts)
        .map(|(&id, (tp, fp, fn_))| (id, crate::metrics::dice_from_counts(tp, fp, fn_)))
        .collect())
}

/// Write `last/` atomically: into a temporary sibling folder, then swap.
fn save_last(
    dir: &Path,
    config: &SegmenterConfig,
    model: &UNet2d,
    optim: &ModuleOptimizer,
    state: &State,
) -> Result<(), TrainError> {
    write_last(
        dir,
        |tmp| Ok(save_checkpoint(tmp, config, model)?),
        optim,
        state,
    )
}

/// Whether `out` holds a run that `RunOptions::resume` can continue
/// (`out/last/state.json`).
pub fn resumable(out: &Path) -> bool {
    out.join("last").join("state.json").is_file()
}

/// Where a run may write: resuming needs nothing; a new run refuses an
/// output folder that already holds a trained model or a resumable run,
/// which it would overwrite (a typo in `--out` must not cost a training).
/// Shared by the U-Net's and the encoder's training.
pub(crate) fn check_out(opts: &RunOptions) -> Result<(), TrainError> {
    if !opts.resume && (opts.out.join("config.json").is_file() || resumable(&opts.out)) {
        return Err(TrainError::Config(format!(
            "{} already holds a trained model; continue it with --resume, or choose another output folder",
            opts.out.display()
        )));
    }
    Ok(())
}

/// Write a resumable state folder atomically: `save_model` writes the
/// weights into a temporary sibling folder, then the optimiser and `state`
/// (as `state.json`) join them, and the folder replaces `dir`. Shared by the
/// U-Net's and the encoder's training.
pub(crate) fn write_last(
    dir: &Path,
    save_model: impl FnOnce(&Path) -> Result<(), TrainError>,
    optim: &ModuleOptimizer,
    state: &impl Serialize,
) -> Result<(), TrainError> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".last.{}", std::process::id()));
    let old = parent.join(format!(".last.old.{}", std::process::id()));
    let io =
        |path: &Path, e: std::io::Error| TrainError::Checkpoint(format!("{}: {e}", path.display()));
    let _ = std::fs::remove_dir_all(&tmp);
    save_model(&tmp)?;
    optim.save(tmp.join("optim.bpk")).map_err(|e| {
        TrainError::Checkpoint(format!("{}: {e:?}", tmp.join("optim.bpk").display()))
    })?;
    let json =
        serde_json::to_vec_pretty(state).map_err(|e| TrainError::Checkpoint(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), json).map_err(|e| io(&tmp, e))?;
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

/// Read a resumable state folder's `state.json`.
pub(crate) fn read_state<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<T, TrainError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", path.display())))
}

/// Load a resumable state folder's optimiser into `optim`.
pub(crate) fn load_optim(
    optim: ModuleOptimizer,
    dir: &Path,
) -> Result<ModuleOptimizer, TrainError> {
    let path = dir.join("optim.bpk");
    optim
        .load(&path)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e:?}", path.display())))
}

/// A training run on its own thread.
pub struct TrainingHandle {
    events: std::sync::mpsc::Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrainingHandle {
    /// Ask the run to stop after the current step (it saves `last/`).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Events that arrived since the last call, without waiting.
    pub fn poll(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    /// The next event, waiting for it; `None` once the run is over and
    /// every event was taken.
    pub fn next(&self) -> Option<Event> {
        self.events.recv().ok()
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread
            .as_ref()
            .is_none_or(std::thread::JoinHandle::is_finished)
    }
}

impl Drop for TrainingHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Start [`train`] on a thread named `ume-training`. `wake` is called after
/// every event (the app repaints). A panic in the run arrives as
/// `Finished(Err(Panicked))`.
pub fn spawn_training(
    config: TrainConfig,
    data: Arc<TrainingData>,
    opts: RunOptions,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<TrainingHandle> {
    spawn_run(
        move |cancel, emit| {
            let _ = train(&config, &data, &opts, cancel, emit);
        },
        wake,
    )
}

/// Run `run(cancel, emit)` on a thread named `ume-training`, its events
/// sent to the handle and each followed by `wake()`. A panic arrives as
/// `Finished(Err(Panicked))`. Shared by the U-Net's and the encoder's
/// trainers, which emit `Finished` themselves.
pub(crate) fn spawn_run(
    run: impl FnOnce(&AtomicBool, &dyn Fn(Event)) + Send + 'static,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<TrainingHandle> {
    // Bounded only to satisfy the house rule; a run emits far fewer events
    // between two UI frames.
    let (tx, rx) = std::sync::mpsc::sync_channel(1 << 16);
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let thread = std::thread::Builder::new()
        .name("ume-training".into())
        .spawn(move || {
            let send = |e: Event| {
                let _ = tx.send(e);
                wake();
            };
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&flag, &send)));
            if let Err(panic) = ran {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let _ = tx.send(Event::Finished(Err(TrainError::Panicked(msg))));
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&wake));
            }
        })?;
    Ok(TrainingHandle {
        events: rx,
        cancel,
        thread: Some(thread),
    })
}
