//! Models in the app (feature `ml`): segment the open case with a bundled
//! demo model or a checkpoint folder, ask what a model loses without one
//! modality, and fine-tune the model on the open case (or a dataset folder)
//! with live curves — then swap the new model in, re-segment, and show the
//! Dice before and after side by side.
//!
//! Every model call runs on a named thread: segmentation reports progress
//! through atomics and stops at the next batch when cancelled; training is
//! the training core's [`spawn_training`] with its events. The UI thread
//! only drains channels.

use super::UmeApp;
use super::document::Document;
use crate::models::encoder::KeyframeReport;
use crate::models::segment::SegmentError;
use crate::models::{DeviceChoice, Segmenter, device};
use crate::training::config::{LossConfig, SchedulerConfig};
use crate::training::data::LabelledCase;
use crate::training::ume::{UmeCase, spawn_ume_training, split_cases};
use crate::training::ume_config::UmeTrainConfig;
use crate::training::{
    Event, RunOptions, TrainConfig, TrainingData, TrainingHandle, spawn_training,
};
use crate::volume::{LabelVolume, Volume};
use eframe::egui;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::time::Instant;

/// A segmentation running in the background.
struct SegmentJob {
    rx: Receiver<Result<LabelVolume, String>>,
    done: Arc<AtomicUsize>,
    total: Arc<AtomicUsize>,
    cancel: Arc<AtomicBool>,
    /// Which model and, for a what-if run, the dropped modality.
    model: String,
    dropped: Option<usize>,
}

/// Dice of a what-if run against the full run.
pub struct WhatIf {
    /// The dropped modality's name.
    pub dropped: String,
    /// (label, Dice with all modalities, Dice without), vs ground truth.
    pub rows: Vec<(u16, f64, f64)>,
}

/// Live curves of a fine-tuning run.
#[derive(Default)]
pub struct Curves {
    /// (step, loss).
    pub loss: Vec<[f64; 2]>,
    /// (step, mean validation Dice).
    pub mean_dice: Vec<[f64; 2]>,
    /// Per label: (step, validation Dice).
    pub dice: BTreeMap<u16, Vec<[f64; 2]>>,
}

/// A fine-tuning run.
struct TrainRun {
    handle: Option<TrainingHandle>,
    prep: Option<Receiver<Result<TrainingHandle, String>>>,
    started: Instant,
    first_step: usize,
    total_steps: usize,
    step: usize,
    out: PathBuf,
}

/// Where fine-tuning data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainSource {
    /// The open case and its labels.
    OpenCase,
    /// Every labelled case of a dataset folder.
    Folder,
}

/// Model state of the app.
pub struct AiState {
    /// Model to run: a bundled demo name or a checkpoint folder.
    pub model: String,
    /// Where models run.
    pub device: DeviceChoice,
    job: Option<SegmentJob>,
    /// Last message (errors, results).
    pub message: String,
    /// Fine-tuning steps.
    pub steps: usize,
    /// Fine-tuning learning rate.
    pub learning_rate: f64,
    /// A training config file to use instead of the quick settings.
    pub config_path: String,
    /// Data source.
    pub source: TrainSource,
    /// Dataset folder when `source` is `Folder`.
    pub data_folder: String,
    run: Option<TrainRun>,
    /// Curves of the current or last run.
    pub curves: Curves,
    /// Per-label Dice before fine-tuning (label, Dice).
    pub before: Option<Vec<(u16, f64)>>,
    /// Prediction generation of the re-segmentation after fine-tuning.
    after_generation: Option<u64>,
    /// The full-modality prediction, kept for what-if comparisons.
    full: Option<Arc<LabelVolume>>,
    /// The latest what-if result.
    pub what_if: Option<WhatIf>,
    /// Modality index to drop in the what-if.
    pub drop_channel: usize,
    /// Where fine-tuned checkpoints go (default: the user cache folder,
    /// `~/.cache/ume/finetune`).
    pub out_root: Option<PathBuf>,
    /// A UME encoder checkpoint folder.
    pub encoder_path: String,
    encoder_job: Option<(u64, Receiver<Result<KeyframeReport, String>>)>,
    /// The encoder's report for a document generation.
    pub encoder_report: Option<(u64, KeyframeReport)>,
}

impl Default for AiState {
    fn default() -> AiState {
        AiState {
            model: String::new(),
            device: DeviceChoice::Auto,
            job: None,
            message: String::new(),
            steps: 60,
            learning_rate: 3e-4,
            config_path: String::new(),
            source: TrainSource::OpenCase,
            data_folder: String::new(),
            run: None,
            curves: Curves::default(),
            before: None,
            after_generation: None,
            full: None,
            what_if: None,
            drop_channel: 1,
            out_root: None,
            encoder_path: String::new(),
            encoder_job: None,
            encoder_report: None,
        }
    }
}

impl AiState {
    /// Whether segmentation, training or an encoder run is in progress.
    pub fn is_busy(&self) -> bool {
        self.job.is_some() || self.run.is_some() || self.encoder_job.is_some()
    }

    /// The encoder's curves for the keyframe inspector, when they belong to
    /// document generation `generation`.
    pub fn learned(&self, generation: u64) -> Option<super::keyframes_ui::Learned<'_>> {
        let (g, r) = self.encoder_report.as_ref()?;
        (*g == generation).then_some(super::keyframes_ui::Learned {
            attention: &r.attention,
            fused: &r.fused,
            weights: &r.weights,
            selected: &r.selected,
        })
    }

    /// Whether a fine-tuning run is in progress.
    pub fn is_training(&self) -> bool {
        self.run.is_some()
    }

    /// Segmentation progress (done, total) while one runs.
    pub fn segment_progress(&self) -> Option<(usize, usize)> {
        self.job.as_ref().map(|j| {
            (
                j.done.load(Ordering::Relaxed),
                j.total.load(Ordering::Relaxed),
            )
        })
    }
}

/// The bundled model that fits a case: four MR channels get the
/// brain-tumour demo, a CT (values in Hounsfield units) the CT demo;
/// anything else needs a checkpoint folder (empty).
pub fn default_model(doc: &Document) -> &'static str {
    if doc.layers.len() >= 4 {
        "demo-brats"
    } else if doc.layers.first().is_some_and(|l| l.range.0 <= -500.0) {
        "demo-ct"
    } else {
        ""
    }
}

/// Start segmenting the open case with `app.ai.model`; with `drop`, the
/// modality at that index is replaced by zeros (its normalised mean) — the
/// what-if run.
pub fn start_segment(app: &mut UmeApp, ctx: &egui::Context, drop: Option<usize>) {
    let Some(doc) = &app.doc else { return };
    if app.ai.job.is_some() {
        return;
    }
    if app.ai.model.is_empty() {
        app.ai.model = default_model(doc).into();
    }
    if app.ai.model.is_empty() {
        app.ai.message = "no bundled model fits this case: enter a checkpoint folder".into();
        return;
    }
    let model = app.ai.model.clone();
    let choice = app.ai.device;
    let volumes: Vec<Arc<Volume>> = doc.layers.iter().map(|l| l.volume.clone()).collect();
    let names: Vec<String> = doc.layers.iter().map(|l| l.name.clone()).collect();
    let done = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let (d, t, c, spec) = (done.clone(), total.clone(), cancel.clone(), model.clone());
    let wake = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("ume-segment".into())
        .spawn(move || {
            let run = || -> Result<LabelVolume, String> {
                let dev = device(choice);
                let model = Segmenter::load(&spec, &dev).map_err(|e| e.to_string())?;
                let need = model.in_channels();
                if volumes.len() < need {
                    return Err(format!(
                        "{spec} takes {need} image channel(s) but the case has {} ({})",
                        volumes.len(),
                        names.join(", ")
                    ));
                }
                let zeros;
                let mut refs: Vec<&Volume> = volumes.iter().take(need).map(|v| &**v).collect();
                if let Some(k) = drop.filter(|&k| k < need) {
                    let v = refs[k];
                    let blank = vec![0.0f32; v.element_count()];
                    zeros = Volume::from_values(v.file_shape.clone(), &blank, v.geometry.clone())
                        .map_err(|e| e.to_string())?;
                    refs[k] = &zeros;
                }
                model
                    .segment(&refs, &dev, 8, |n, of| {
                        d.store(n, Ordering::Relaxed);
                        t.store(of, Ordering::Relaxed);
                        wake.request_repaint();
                        !c.load(Ordering::Relaxed)
                    })
                    .map_err(|e| match e {
                        SegmentError::Cancelled => "segmentation cancelled".to_string(),
                        other => other.to_string(),
                    })
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or_else(|_| Err("segmentation crashed (see the log)".into()));
            let _ = tx.send(r);
            wake.request_repaint();
        });
    match spawned {
        Ok(_) => {
            app.ai.message = match drop {
                Some(k) => format!(
                    "segmenting without {}...",
                    doc.layers.get(k).map_or("?", |l| l.name.as_str())
                ),
                None => format!("segmenting with {model}..."),
            };
            app.ai.job = Some(SegmentJob {
                rx,
                done,
                total,
                cancel,
                model,
                dropped: drop,
            });
        }
        Err(e) => app.ai.message = format!("could not start segmentation: {e}"),
    }
}

/// Run a UME encoder checkpoint on the open case in the background:
/// keyframe scores of every strategy, fusion weights, modality gates.
pub fn start_encoder(app: &mut UmeApp, ctx: &egui::Context) {
    let Some(doc) = &app.doc else { return };
    if app.ai.encoder_job.is_some() {
        return;
    }
    let path = PathBuf::from(app.ai.encoder_path.trim());
    let volumes: Vec<Arc<Volume>> = doc.layers.iter().map(|l| l.volume.clone()).collect();
    let k = app.keyframes.k;
    let choice = app.ai.device;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let wake = ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("ume-encoder".into())
        .spawn(move || {
            let run = || -> Result<KeyframeReport, String> {
                use crate::models::encoder::{case_keyframes, load_encoder};
                let dev = device(choice);
                let (config, encoder) = load_encoder(&path, &dev).map_err(|e| e.to_string())?;
                let refs: Vec<&Volume> = volumes.iter().map(|v| &**v).collect();
                case_keyframes(&config, &encoder, &refs, k, &dev).map_err(|e| e.to_string())
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                .unwrap_or_else(|_| Err("the encoder crashed (see the log)".into()));
            let _ = tx.send(r);
            wake.request_repaint();
        });
    match spawned {
        Ok(_) => {
            app.ai.encoder_job = Some((app.doc_generation, rx));
            app.ai.message = "running the UME encoder...".into();
        }
        Err(e) => app.ai.message = format!("could not start the encoder: {e}"),
    }
}

/// Drain the segmentation job and the training run (called every frame).
pub fn logic(app: &mut UmeApp, ctx: &egui::Context) {
    if let Some((g, rx)) = &app.ai.encoder_job
        && let Ok(r) = rx.try_recv()
    {
        let g = *g;
        app.ai.encoder_job = None;
        match r {
            Ok(report) => {
                app.ai.message = format!(
                    "encoder selected frames {:?} of {}",
                    report.selected, report.frames
                );
                app.ai.encoder_report = Some((g, report));
            }
            Err(e) => app.ai.message = e,
        }
    }
    if let Some(job) = &app.ai.job
        && let Ok(result) = job.rx.try_recv()
    {
        let job = app.ai.job.take().expect("checked above");
        match (result, job.dropped) {
            (Ok(labels), None) => {
                let labels = Arc::new(labels);
                app.ai.full = Some(labels.clone());
                app.ai.what_if = None;
                install_prediction(app, &job.model, labels);
            }
            (Ok(labels), Some(k)) => what_if(app, k, &labels),
            (Err(e), _) => app.ai.message = e,
        }
    }
    training_logic(app, ctx);
}

/// Show a model's prediction as the overlay.
fn install_prediction(app: &mut UmeApp, model: &str, labels: Arc<LabelVolume>) {
    let ids: Vec<u16> = labels
        .counts()
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, n)| **n > 0)
        .filter_map(|(id, _)| u16::try_from(id).ok())
        .collect();
    let title = PathBuf::from(format!("segmentation by {model}"));
    let labels = Arc::try_unwrap(labels).unwrap_or_else(|a| (*a).clone());
    let had_gt = app.doc.as_ref().is_some_and(|d| !d.labels.is_empty());
    if let Some(doc) = &mut app.doc
        && doc.table.labels.is_empty()
    {
        doc.table = crate::volume::LabelTable::for_ids(&ids);
    }
    match app.set_prediction(&title, labels) {
        Ok(()) => {
            app.ai.message = format!("segmented with {model}: {} structures found", ids.len());
            if let Some(doc) = &mut app.doc {
                doc.overlay = super::evaluation::Overlay::Prediction;
            }
            if !had_gt {
                app.ai
                    .message
                    .push_str(" (no ground truth open: no metrics)");
            }
        }
        Err(e) => app.ai.message = e,
    }
}

/// Compare a without-one-modality prediction with the full one, both
/// against the ground truth.
fn what_if(app: &mut UmeApp, k: usize, without: &LabelVolume) {
    let Some(doc) = &app.doc else { return };
    let (Some(full), Some(gt)) = (&app.ai.full, doc.labels.at_frame(doc.frame)) else {
        app.ai.message = "the what-if needs ground truth and a full segmentation first".into();
        return;
    };
    let gt = gt.frame(doc.frame);
    let full_c = crate::metrics::Confusion::new(&gt, &full.frame(doc.frame));
    let without_c = crate::metrics::Confusion::new(&gt, &without.frame(doc.frame));
    let dice = |c: &crate::metrics::Confusion, id: u16| {
        let (tp, fp, fn_) = c.tp_fp_fn(id);
        crate::metrics::dice_from_counts(tp, fp, fn_)
    };
    let ids = full_c.present();
    app.ai.what_if = Some(WhatIf {
        dropped: doc.layers.get(k).map_or("?".into(), |l| l.name.clone()),
        rows: ids
            .into_iter()
            .map(|id| (id, dice(&full_c, id), dice(&without_c, id)))
            .collect(),
    });
    app.ai.message = "what-if done".into();
}

/// The open document's images and labels, shared (no voxel copies), for
/// training on a background thread.
struct OpenCase {
    id: String,
    images: Vec<(String, Arc<Volume>)>,
    labels: Option<Arc<LabelVolume>>,
    frame_labels: Vec<(usize, LabelVolume)>,
}

impl OpenCase {
    fn of(doc: &Document) -> Result<OpenCase, String> {
        if doc.labels.is_empty() {
            return Err("the open case has no labels to fine-tune on (open its label map, or train on a folder)".into());
        }
        let images = doc
            .layers
            .iter()
            .map(|l| (l.name.clone(), l.volume.clone()))
            .collect();
        let (labels, frame_labels) = if doc.frames() > 1 {
            let frames = (0..doc.frames())
                .filter_map(|t| doc.labels.at_frame(t).map(|l| (t, l.frame(t))))
                .collect();
            (None, frames)
        } else {
            (doc.labels.at_frame(0).cloned(), Vec::new())
        };
        Ok(OpenCase {
            id: doc.title.clone(),
            images,
            labels,
            frame_labels,
        })
    }

    fn labelled(&self) -> LabelledCase<'_> {
        LabelledCase {
            id: &self.id,
            images: self
                .images
                .iter()
                .map(|(n, v)| (n.as_str(), &**v))
                .collect(),
            labels: self.labels.as_deref(),
            frame_labels: self.frame_labels.iter().map(|(t, l)| (*t, l)).collect(),
        }
    }
}

/// The fine-tuning configuration: the config file when given, else the
/// current model's network with the quick settings.
fn finetune_config(
    ai: &AiState,
    model: &crate::models::segment::SegmenterConfig,
) -> Result<TrainConfig, String> {
    if !ai.config_path.trim().is_empty() {
        return TrainConfig::load(std::path::Path::new(ai.config_path.trim()))
            .map_err(|e| e.to_string());
    }
    let mut c = TrainConfig {
        model: model.clone(),
        data: Default::default(),
        training: Default::default(),
    };
    let t = &mut c.training;
    t.steps = ai.steps.max(1);
    t.learning_rate = ai.learning_rate;
    t.batch_size = 4;
    t.val_every = (ai.steps / 5).max(1);
    t.checkpoint_every = t.val_every;
    t.loss = match model.network.output {
        crate::models::OutputMode::MultiClass => LossConfig::CeDice,
        crate::models::OutputMode::MultiLabel => LossConfig::BceDice,
    };
    t.scheduler = SchedulerConfig::WarmupCosine {
        warmup_steps: (ai.steps / 10).max(1),
        min_lr: ai.learning_rate / 20.0,
    };
    c.check()?;
    Ok(c)
}

/// The encoder's fine-tuning configuration: the config file when given
/// (a `configs/ume_*.json`), else the checkpoint's encoder with the quick
/// settings.
fn encoder_finetune_config(
    ai: &AiState,
    model: &crate::models::encoder::UmeConfig,
) -> Result<UmeTrainConfig, String> {
    if !ai.config_path.trim().is_empty() {
        return UmeTrainConfig::load(std::path::Path::new(ai.config_path.trim()))
            .map_err(|e| e.to_string());
    }
    let c = UmeTrainConfig::fine_tune(model, ai.steps, ai.learning_rate);
    c.check()?;
    Ok(c)
}

/// Every case of a dataset folder, loaded.
fn folder_cases(folder: &std::path::Path) -> Result<Vec<crate::dataset::Case>, String> {
    let ds = crate::dataset::open(folder).map_err(|e| e.to_string())?;
    (0..ds.cases.len())
        .map(|i| ds.load_case(i).map_err(|e| e.to_string()))
        .collect()
}

/// Start fine-tuning the current model (data preparation and training on
/// background threads).
pub fn start_training(app: &mut UmeApp, ctx: &egui::Context) {
    if app.ai.run.is_some() {
        return;
    }
    let Some(doc) = &app.doc else { return };
    if app.ai.model.is_empty() {
        app.ai.model = default_model(doc).into();
    }
    if app.ai.model.is_empty() {
        app.ai.message = "no bundled model fits this case: enter a checkpoint folder".into();
        return;
    }
    let case = match app.ai.source {
        TrainSource::OpenCase => match OpenCase::of(doc) {
            Ok(c) => Some(c),
            Err(e) => {
                app.ai.message = e;
                return;
            }
        },
        TrainSource::Folder => None,
    };
    let folder = PathBuf::from(app.ai.data_folder.trim());
    let spec = app.ai.model.clone();
    let choice = app.ai.device;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let root = app.ai.out_root.clone().unwrap_or_else(finetune_root);
    let out = root.join(format!("{}-{stamp}", sanitize(&spec)));
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let wake = ctx.clone();
    let ai = &app.ai;
    let quick = (ai.steps, ai.learning_rate, ai.config_path.clone());
    let out2 = out.clone();
    let spawned = std::thread::Builder::new()
        .name("ume-finetune-prep".into())
        .spawn(move || {
            let prep = || -> Result<TrainingHandle, String> {
                let dev = device(choice);
                let settings = AiState {
                    steps: quick.0,
                    learning_rate: quick.1,
                    config_path: quick.2,
                    ..AiState::default()
                };
                let w = wake.clone();
                let repaint = move || w.request_repaint();
                let spawned = match Segmenter::load(&spec, &dev).map_err(|e| e.to_string())? {
                    Segmenter::Unet(model_config, _) => {
                        let config = finetune_config(&settings, &model_config)?;
                        let data = match case {
                            Some(c) => TrainingData::from_labelled(&[c.labelled()], &config),
                            None => TrainingData::from_cases(&folder_cases(&folder)?, &config),
                        }
                        .map_err(|e| e.to_string())?;
                        let same_net = serde_json::to_value(&config.model.network).ok()
                            == serde_json::to_value(&model_config.network).ok();
                        let opts = RunOptions {
                            out: out2,
                            resume: false,
                            device: dev,
                            init: same_net.then_some(spec),
                            cpu_engine: true,
                        };
                        spawn_training(config, Arc::new(data), opts, repaint)
                    }
                    Segmenter::Encoder(model_config, _) => {
                        let config = encoder_finetune_config(&settings, &model_config)?;
                        let cases = match case {
                            Some(c) => vec![UmeCase::new(&c.labelled(), &config)],
                            None => folder_cases(&folder)?
                                .iter()
                                .map(LabelledCase::from)
                                .filter(|c| c.labels.is_some() || !c.frame_labels.is_empty())
                                .map(|c| UmeCase::new(&c, &config))
                                .collect(),
                        }
                        .into_iter()
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| e.to_string())?;
                        if cases.is_empty() {
                            return Err(format!("{}: no case has labels", folder.display()));
                        }
                        let (train, val) = split_cases(cases, config.data.val_fraction);
                        let opts = RunOptions {
                            out: out2,
                            resume: false,
                            device: dev,
                            init: Some(spec),
                            cpu_engine: true,
                        };
                        spawn_ume_training(config, train, val, opts, repaint)
                    }
                };
                spawned.map_err(|e| format!("could not start training: {e}"))
            };
            let _ = tx.send(prep());
            wake.request_repaint();
        });
    match spawned {
        Ok(_) => {
            app.ai.before = app
                .eval
                .result
                .as_ref()
                .map(|e| e.structures.iter().map(|s| (s.label, s.dice)).collect());
            app.ai.after_generation = None;
            app.ai.curves = Curves::default();
            app.ai.message = "preparing training data...".into();
            app.ai.run = Some(TrainRun {
                handle: None,
                prep: Some(rx),
                started: Instant::now(),
                first_step: 0,
                total_steps: app.ai.steps,
                step: 0,
                out,
            });
        }
        Err(e) => app.ai.message = format!("could not start: {e}"),
    }
}

fn training_logic(app: &mut UmeApp, ctx: &egui::Context) {
    let Some(run) = &mut app.ai.run else { return };
    if let Some(rx) = &run.prep
        && let Ok(r) = rx.try_recv()
    {
        run.prep = None;
        match r {
            Ok(h) => run.handle = Some(h),
            Err(e) => {
                app.ai.message = e;
                app.ai.run = None;
                return;
            }
        }
    }
    let Some(handle) = &run.handle else { return };
    let mut finished = None;
    for event in handle.poll() {
        match event {
            Event::Started {
                first_step,
                total_steps,
                ..
            } => {
                run.first_step = first_step;
                run.total_steps = total_steps;
                run.started = Instant::now();
                app.ai.message = "fine-tuning...".into();
            }
            Event::Step { step, loss, .. } => {
                run.step = step + 1;
                app.ai
                    .curves
                    .loss
                    .push([step as f64 + 1.0, f64::from(loss)]);
            }
            Event::Validated {
                step,
                dice,
                mean_dice,
                ..
            } => {
                let x = step as f64 + 1.0;
                app.ai.curves.mean_dice.push([x, mean_dice]);
                for (id, d) in dice {
                    if d.is_finite() {
                        app.ai.curves.dice.entry(id).or_default().push([x, d]);
                    }
                }
            }
            Event::Checkpointed { .. } => {}
            Event::Finished(r) => finished = Some(r),
        }
    }
    if let Some(r) = finished {
        let out = run.out.clone();
        app.ai.run = None;
        match r {
            Ok(summary) => {
                app.ai.message = format!(
                    "fine-tuned: best validation Dice {:.3} at step {}; model saved in {}",
                    summary.best_dice,
                    summary.best_step + 1,
                    out.display()
                );
                // Swap the new model in and re-segment the open scan.
                app.ai.model = out.display().to_string();
                start_segment(app, ctx, None);
                app.ai.after_generation = Some(app.prediction_generation + 1);
            }
            Err(e) => app.ai.message = e.to_string(),
        }
    }
}

/// Ask the running segmentation or training to stop.
pub fn cancel(app: &mut UmeApp) {
    if let Some(job) = &app.ai.job {
        job.cancel.store(true, Ordering::Relaxed);
    }
    if let Some(run) = &app.ai.run
        && let Some(h) = &run.handle
    {
        h.cancel();
    }
}

fn finetune_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("ume")
        .join("finetune")
}

fn sanitize(spec: &str) -> String {
    let name = std::path::Path::new(spec)
        .file_name()
        .map_or_else(|| spec.to_string(), |n| n.to_string_lossy().into_owned());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The "Segment & fine-tune" section of the side panel.
pub fn section(app: &mut UmeApp, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    let Some(doc) = &app.doc else { return };
    if app.ai.model.is_empty() {
        app.ai.model = default_model(doc).into();
    }
    let layer_names: Vec<String> = doc.layers.iter().map(|l| l.name.clone()).collect();
    let has_gt = !doc.labels.is_empty();
    egui::CollapsingHeader::new("Segment & fine-tune")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("Model");
                egui::ComboBox::from_id_salt("model")
                    .selected_text(short(&app.ai.model))
                    .show_ui(ui, |ui| {
                        for demo in ["demo-ct", "demo-brats"] {
                            ui.selectable_value(&mut app.ai.model, demo.into(), demo);
                        }
                    })
                    .response
                    .labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                let l = ui.label("or folder");
                ui.text_edit_singleline(&mut app.ai.model).labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                ui.label("Device");
                ui.radio_value(&mut app.ai.device, DeviceChoice::Auto, "auto");
                ui.radio_value(&mut app.ai.device, DeviceChoice::Cpu, "CPU");
                ui.radio_value(&mut app.ai.device, DeviceChoice::Wgpu, "GPU (wgpu)");
            });
            ui.horizontal(|ui| {
                let busy = app.ai.is_busy();
                if ui
                    .add_enabled(!busy, egui::Button::new("Segment"))
                    .clicked()
                {
                    start_segment(app, &ctx, None);
                }
                if busy && ui.button("Cancel").clicked() {
                    cancel(app);
                }
            });
            if let Some((done, total)) = app.ai.segment_progress() {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .text(format!("slice {done}/{total}")),
                );
            }
            if layer_names.len() > 1 && has_gt {
                ui.horizontal(|ui| {
                    let l = ui.label("What if without");
                    egui::ComboBox::from_id_salt("drop")
                        .selected_text(
                            layer_names
                                .get(app.ai.drop_channel)
                                .cloned()
                                .unwrap_or_default(),
                        )
                        .show_ui(ui, |ui| {
                            for (i, n) in layer_names.iter().enumerate() {
                                ui.selectable_value(&mut app.ai.drop_channel, i, n);
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    let ready = app.ai.full.is_some() && !app.ai.is_busy();
                    if ui
                        .add_enabled(ready, egui::Button::new("Run"))
                        .on_disabled_hover_text("segment with all modalities first")
                        .clicked()
                    {
                        let k = app.ai.drop_channel;
                        start_segment(app, &ctx, Some(k));
                    }
                });
                if let Some(w) = &app.ai.what_if {
                    ui.label(format!("Dice with all modalities vs without {}", w.dropped));
                    let no_table = crate::volume::LabelTable::default();
                    let table = app.doc.as_ref().map_or(&no_table, |d| &d.table);
                    egui::Grid::new("whatif").striped(true).show(ui, |ui| {
                        for (id, with, without) in &w.rows {
                            ui.label(
                                table
                                    .name_of(*id)
                                    .map_or_else(|| id.to_string(), str::to_string),
                            );
                            ui.label(format!("{with:.3}"));
                            ui.label(format!("{without:.3}"));
                            ui.label(format!("{:+.3}", without - with));
                            ui.end_row();
                        }
                    });
                }
            }
            ui.separator();
            encoder_ui(app, ui, &ctx, &layer_names);
            ui.separator();
            training_ui(app, ui, &ctx);
            if !app.ai.message.is_empty() {
                ui.label(&app.ai.message);
            }
        });
}

/// The encoder row: checkpoint folder, run, fusion weights and modality
/// gates.
fn encoder_ui(app: &mut UmeApp, ui: &mut egui::Ui, ctx: &egui::Context, layers: &[String]) {
    ui.horizontal(|ui| {
        let l = ui.label("UME encoder");
        ui.text_edit_singleline(&mut app.ai.encoder_path)
            .labelled_by(l.id)
            .on_hover_text("an encoder checkpoint folder (config.json + model.bpk)");
    });
    let ready = !app.ai.encoder_path.trim().is_empty() && !app.ai.is_busy();
    if ui
        .add_enabled(ready, egui::Button::new("Keyframes and modality gates"))
        .clicked()
    {
        start_encoder(app, ctx);
    }
    if let Some((g, r)) = &app.ai.encoder_report
        && *g == app.doc_generation
    {
        ui.label(format!(
            "fusion weights: uniform {:.2} · content {:.2} · attention {:.2}",
            r.weights.first().copied().unwrap_or(f32::NAN),
            r.weights.get(1).copied().unwrap_or(f32::NAN),
            r.weights.get(2).copied().unwrap_or(f32::NAN)
        ));
        let gates: Vec<String> = r
            .gates
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{} {w:.2}", layers.get(i).map_or("?", String::as_str)))
            .collect();
        ui.label(format!("modality gates: {}", gates.join(" · ")));
        ui.label(format!("selected frames: {:?}", r.selected));
    }
}

fn short(spec: &str) -> String {
    if spec.len() > 28 {
        format!("...{}", &spec[spec.len().saturating_sub(25)..])
    } else {
        spec.to_string()
    }
}

fn training_ui(app: &mut UmeApp, ui: &mut egui::Ui, ctx: &egui::Context) {
    ui.label("Fine-tune the model");
    ui.horizontal(|ui| {
        ui.radio_value(&mut app.ai.source, TrainSource::OpenCase, "open case");
        ui.radio_value(&mut app.ai.source, TrainSource::Folder, "dataset folder");
    });
    if app.ai.source == TrainSource::Folder {
        ui.text_edit_singleline(&mut app.ai.data_folder);
    }
    ui.horizontal(|ui| {
        let l = ui.label("Steps");
        ui.add(egui::DragValue::new(&mut app.ai.steps).range(1..=100_000))
            .labelled_by(l.id);
        let l = ui.label("LR");
        ui.add(
            egui::DragValue::new(&mut app.ai.learning_rate)
                .speed(1e-5)
                .range(1e-7..=1.0),
        )
        .labelled_by(l.id);
    });
    ui.horizontal(|ui| {
        let l = ui.label("Config file");
        ui.text_edit_singleline(&mut app.ai.config_path)
            .labelled_by(l.id)
            .on_hover_text("a configs/*.json training config; empty: the quick settings above");
    });
    ui.horizontal(|ui| {
        let training = app.ai.is_training();
        if ui
            .add_enabled(!app.ai.is_busy(), egui::Button::new("Start fine-tuning"))
            .clicked()
        {
            start_training(app, ctx);
        }
        if training && ui.button("Stop").clicked() {
            cancel(app);
        }
    });
    if let Some(run) = &app.ai.run {
        let done = run.step.saturating_sub(run.first_step);
        let left = run.total_steps.saturating_sub(run.step);
        let per = run.started.elapsed().as_secs_f64() / done.max(1) as f64;
        let eta = if done > 0 {
            format!(", about {:.0} s left", per * left as f64)
        } else {
            String::new()
        };
        ui.add(
            egui::ProgressBar::new(run.step as f32 / run.total_steps.max(1) as f32)
                .text(format!("step {}/{}{eta}", run.step, run.total_steps)),
        );
    }
    let curves = &app.ai.curves;
    if !curves.loss.is_empty() {
        egui_plot::Plot::new("loss curve")
            .height(110.0)
            .legend(egui_plot::Legend::default())
            .show(ui, |plot| {
                plot.line(egui_plot::Line::new("loss", curves.loss.clone()));
            });
    }
    if !curves.mean_dice.is_empty() {
        let no_table = crate::volume::LabelTable::default();
        let table = app.doc.as_ref().map_or(&no_table, |d| &d.table);
        egui_plot::Plot::new("dice curve")
            .height(110.0)
            .include_y(0.0)
            .include_y(1.0)
            .legend(egui_plot::Legend::default())
            .show(ui, |plot| {
                plot.line(egui_plot::Line::new("mean Dice", curves.mean_dice.clone()));
                for (id, points) in &curves.dice {
                    let name = table
                        .name_of(*id)
                        .map_or_else(|| format!("label {id}"), str::to_string);
                    plot.line(egui_plot::Line::new(name, points.clone()));
                }
            });
    }
    before_after(app, ui);
}

/// Dice per structure before fine-tuning and after the swap.
fn before_after(app: &UmeApp, ui: &mut egui::Ui) {
    let Some(before) = &app.ai.before else { return };
    let after = match (app.ai.after_generation, &app.eval.result) {
        (Some(g), Some(e)) if g == app.prediction_generation && !app.eval.is_computing() => {
            Some(&e.structures)
        }
        _ => None,
    };
    let Some(after) = after else { return };
    let no_table = crate::volume::LabelTable::default();
    let table = app.doc.as_ref().map_or(&no_table, |d| &d.table);
    ui.label("Dice before / after fine-tuning");
    egui::Grid::new("before after")
        .striped(true)
        .show(ui, |ui| {
            ui.label("structure");
            ui.label("before");
            ui.label("after");
            ui.end_row();
            for s in after {
                let b = before
                    .iter()
                    .find(|(id, _)| *id == s.label)
                    .map_or(f64::NAN, |(_, d)| *d);
                ui.label(
                    table
                        .name_of(s.label)
                        .map_or_else(|| s.label.to_string(), str::to_string),
                );
                ui.label(format!("{b:.3}"));
                ui.label(format!("{:.3}", s.dice));
                ui.end_row();
            }
        });
}
