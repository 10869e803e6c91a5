//! The model runs' bodies, each run as a [`Job`](super::super::jobs::Job)
//! on its own thread: segmentation (and the what-if, whose confusion
//! counts are computed here, not on the UI thread), the encoder's
//! keyframes, and fine-tuning (data preparation, then the training core's
//! run, its events forwarded to the UI; Stop reaches both stages).

use super::WhatIf;
use crate::app::document::{Document, Prediction};
use crate::app::jobs::JobCtx;
use crate::models::encoder::KeyframeReport;
use crate::models::segment::SegmentError;
use crate::models::{DeviceChoice, Segmenter, device};
use crate::training::data::LabelledCase;
use crate::training::ume::{UmeCase, spawn_ume_training, split_cases};
use crate::training::ume_config::UmeTrainConfig;
use crate::training::{Event, RunOptions, Summary, TrainConfig, TrainingData, spawn_training};
use crate::volume::{LabelVolume, Volume};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a what-if run compares against.
pub struct WhatIfInput {
    /// The modality replaced by zeros.
    pub dropped: usize,
    /// Its name.
    pub name: String,
    /// The full-modality prediction.
    pub full: Arc<LabelVolume>,
    /// The ground truth shown at `frame`.
    pub gt: Arc<LabelVolume>,
    /// The frame compared.
    pub frame: usize,
}

/// A segmentation to run.
pub struct SegmentRequest {
    /// Demo name or checkpoint folder.
    pub model: String,
    /// Where to run.
    pub device: DeviceChoice,
    /// The case's images, shared.
    pub volumes: Vec<Arc<Volume>>,
    /// Their names.
    pub names: Vec<String>,
    /// Drop one modality and compare (the what-if).
    pub what_if: Option<WhatIfInput>,
}

/// What a segmentation run gives.
pub enum SegmentOutput {
    /// A prediction of the whole case, ids counted.
    Full(Prediction),
    /// Dice with and without a modality.
    WhatIf(WhatIf),
}

/// Segment (the `segment` job's body). Progress is slices done; a cancel
/// stops at the next batch.
pub fn segment(r: &SegmentRequest, job: &JobCtx<()>) -> Result<SegmentOutput, String> {
    let dev = device(r.device);
    let model = Segmenter::load(&r.model, &dev).map_err(|e| e.to_string())?;
    job.cancel_token().check("segmentation")?;
    let need = model.in_channels();
    if r.volumes.len() < need {
        return Err(format!(
            "{} takes {need} image channel(s) but the case has {} ({})",
            r.model,
            r.volumes.len(),
            r.names.join(", ")
        ));
    }
    let zeros;
    let mut refs: Vec<&Volume> = r.volumes.iter().take(need).map(|v| &**v).collect();
    if let Some(k) = r.what_if.as_ref().map(|w| w.dropped).filter(|&k| k < need) {
        let v = refs[k];
        let blank = vec![0.0f32; v.element_count()];
        zeros = Volume::from_values(v.file_shape.clone(), &blank, v.geometry.clone())
            .map_err(|e| e.to_string())?;
        refs[k] = &zeros;
    }
    let labels = model
        .segment(&refs, &dev, 8, |n, of| {
            job.fraction(n, of);
            !job.is_cancelled()
        })
        .map_err(|e| match e {
            SegmentError::Cancelled => "segmentation cancelled".to_string(),
            other => other.to_string(),
        })?;
    match &r.what_if {
        None => Ok(SegmentOutput::Full(Prediction::new(
            Arc::new(labels),
            format!("segmentation by {}", r.model),
        ))),
        Some(w) => Ok(SegmentOutput::WhatIf(what_if(w, &labels))),
    }
}

/// Dice per structure of the full and the without-one-modality prediction,
/// both against the ground truth.
fn what_if(w: &WhatIfInput, without: &LabelVolume) -> WhatIf {
    let t = w.frame;
    let gt = w.gt.frame(t.min(w.gt.frames - 1));
    let full_c = crate::metrics::Confusion::new(&gt, &w.full.frame(t.min(w.full.frames - 1)));
    let without_c = crate::metrics::Confusion::new(&gt, &without.frame(t.min(without.frames - 1)));
    let dice = |c: &crate::metrics::Confusion, id: u16| {
        let (tp, fp, fn_) = c.tp_fp_fn(id);
        crate::metrics::dice_from_counts(tp, fp, fn_)
    };
    WhatIf {
        dropped: w.name.clone(),
        rows: full_c
            .present()
            .into_iter()
            .map(|id| (id, dice(&full_c, id), dice(&without_c, id)))
            .collect(),
    }
}

/// Run a UME encoder on the case (the `encoder` job's body).
pub fn encoder(
    path: &Path,
    volumes: Vec<Arc<Volume>>,
    k: usize,
    choice: DeviceChoice,
    job: &JobCtx<()>,
) -> Result<KeyframeReport, String> {
    use crate::models::encoder::{case_keyframes, load_encoder};
    let dev = device(choice);
    let (config, encoder) = load_encoder(path, &dev).map_err(|e| e.to_string())?;
    job.cancel_token().check("encoder run")?;
    let refs: Vec<&Volume> = volumes.iter().map(|v| &**v).collect();
    case_keyframes(&config, &encoder, &refs, k, &dev).map_err(|e| e.to_string())
}

/// A fine-tuning run to start.
pub struct TrainRequest {
    /// The model to start from.
    pub model: String,
    /// Where to train.
    pub device: DeviceChoice,
    /// Quick settings: steps.
    pub steps: usize,
    /// Quick settings: learning rate.
    pub learning_rate: f64,
    /// A config file instead of the quick settings ("" for none).
    pub config_path: String,
    /// The open case, or `None` for `folder`.
    pub case: Option<OpenCase>,
    /// A dataset folder: the data without `case`, more training data with
    /// it (empty: none).
    pub folder: PathBuf,
    /// Where the new model goes.
    pub out: PathBuf,
}

/// The share of the open case's labelled slices held out of fine-tuning
/// to measure it (stated in the panel).
pub const HELD_OUT_SHARE: f64 = 0.25;

/// The Dice of the model before and after fine-tuning on the open case's
/// labelled slices that training did not see.
#[derive(Debug, Clone)]
pub struct HeldOut {
    /// The held-out slices (z).
    pub slices: Vec<usize>,
    /// (label, Dice) of the model fine-tuning started from.
    pub before: Vec<(u16, f64)>,
    /// (label, Dice) of the fine-tuned model.
    pub after: Vec<(u16, f64)>,
}

/// A finished fine-tuning run.
pub struct FineTuned {
    /// The training core's summary.
    pub summary: Summary,
    /// Before/after on held-out slices (U-Net on the open case).
    pub held_out: Option<HeldOut>,
}

/// Prepare the data and train (the `fine-tune` job's body). The training
/// core's events are forwarded to the UI; Stop before training starts
/// means it never starts, during training it stops after the step. On the
/// open case a U-Net trains on its labelled slices (painted, marked done,
/// or every slice of a map read from a file) less a held-out
/// [`HELD_OUT_SHARE`], on which the Dice before and after is measured.
pub fn fine_tune(r: TrainRequest, job: &JobCtx<Event>) -> Result<FineTuned, String> {
    let dev = device(r.device);
    job.message("preparing training data…");
    let cancel = job.cancel_token();
    let mut held_out = None;
    let mut held_samples = Vec::new();
    let handle = match Segmenter::load(&r.model, &dev).map_err(|e| e.to_string())? {
        Segmenter::Unet(model_config, model) => {
            let config = finetune_config(&r, &model_config)?;
            cancel.check("fine-tuning")?;
            let data = match &r.case {
                Some(c) => {
                    let (mut data, slices) =
                        TrainingData::held_out(&c.labelled(), &config, HELD_OUT_SHARE)
                            .map_err(|e| e.to_string())?;
                    // The held-out slices only measure: training validates
                    // (and keeps its best model) on its own slices, so
                    // nothing about the held-out slices picks the model.
                    held_samples = std::mem::take(&mut data.val);
                    job.message("measuring the model on the held-out slices…");
                    let before = crate::training::validate(
                        &model_config,
                        &model,
                        &held_samples,
                        &dev,
                        config.training.val_batch,
                    )
                    .map_err(|e| e.to_string())?;
                    held_out = Some(HeldOut {
                        slices,
                        before,
                        after: Vec::new(),
                    });
                    if !r.folder.as_os_str().is_empty() {
                        // Every case of the folder trains; the held-out
                        // slices of the open case still measure.
                        let more =
                            TrainingData::from_cases(&folder_cases(&r.folder, job)?, &config)
                                .map_err(|e| e.to_string())?;
                        data.train.extend(more.train);
                        data.train.extend(more.val);
                    }
                    data
                }
                None => TrainingData::from_cases(&folder_cases(&r.folder, job)?, &config)
                    .map_err(|e| e.to_string())?,
            };
            let data = Arc::new(data);
            let dev_after = dev.clone();
            cancel.check("fine-tuning")?;
            let same_net = serde_json::to_value(&config.model.network).ok()
                == serde_json::to_value(&model_config.network).ok();
            let opts = RunOptions {
                out: r.out.clone(),
                resume: false,
                device: dev,
                init: same_net.then(|| r.model.clone()),
                cpu_engine: true,
            };
            let batch = config.training.val_batch;
            let handle = spawn_training(config, data, opts, || {});
            return follow(handle, job).and_then(|summary| {
                if let Some(h) = &mut held_out {
                    job.message("measuring the fine-tuned model on the held-out slices…");
                    let (c, m) = crate::models::segment::load_checkpoint(&summary.out, &dev_after)
                        .map_err(|e| e.to_string())?;
                    h.after = crate::training::validate(&c, &m, &held_samples, &dev_after, batch)
                        .map_err(|e| e.to_string())?;
                }
                Ok(FineTuned { summary, held_out })
            });
        }
        Segmenter::Encoder(model_config, _) => {
            let config = encoder_finetune_config(&r, &model_config)?;
            cancel.check("fine-tuning")?;
            let cases = match &r.case {
                Some(c) => vec![UmeCase::new(&c.labelled(), &config)],
                None => folder_cases(&r.folder, job)?
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
                return Err(format!("{}: no case has labels", r.folder.display()));
            }
            cancel.check("fine-tuning")?;
            let (train, val) = split_cases(cases, config.data.val_fraction);
            let opts = RunOptions {
                out: r.out.clone(),
                resume: false,
                device: dev,
                init: Some(r.model.clone()),
                cpu_engine: true,
            };
            spawn_ume_training(config, train, val, opts, || {})
        }
    };
    follow(handle, job).map(|summary| FineTuned {
        summary,
        held_out: None,
    })
}

/// Forward a training run's events to the job until it finishes; Stop
/// reaches it.
fn follow(
    handle: std::io::Result<crate::training::TrainingHandle>,
    job: &JobCtx<Event>,
) -> Result<Summary, String> {
    let handle = handle.map_err(|e| format!("could not start training: {e}"))?;
    let cancel = job.cancel_token();
    job.message("fine-tuning…");
    loop {
        if cancel.is_cancelled() {
            handle.cancel();
        }
        for event in handle.poll() {
            if let Event::Finished(result) = event {
                return result.map_err(|e| e.to_string());
            }
            job.emit(event);
        }
        if handle.is_finished() && handle.poll().is_empty() {
            // The thread ended; a last Finished may still sit in the queue.
            return match handle.next() {
                Some(Event::Finished(result)) => result.map_err(|e| e.to_string()),
                _ => Err("training stopped without a result".into()),
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The open document's images and labels, shared (no voxel copies), for
/// training on a background thread.
pub struct OpenCase {
    id: String,
    images: Vec<(String, Arc<Volume>)>,
    labels: Option<Arc<LabelVolume>>,
    frame_labels: Vec<(usize, LabelVolume)>,
    /// The labelled slices of `labels` when partial; `None`: every slice.
    labelled_slices: Option<Vec<usize>>,
    /// The same for each partly labelled frame: (frame, slices).
    frame_slices: Vec<(usize, Vec<usize>)>,
}

impl OpenCase {
    /// The open case; `frame` is unused for 3D cases.
    pub fn of(doc: &Document, _frame: usize) -> Result<OpenCase, String> {
        if doc.labels().is_empty() {
            return Err("the open case has no labels to fine-tune on (open its label map, or train on a folder)".into());
        }
        let images = doc
            .layers()
            .iter()
            .map(|l| (l.name.clone(), l.volume.clone()))
            .collect();
        let (labels, frame_labels) = if doc.frames() > 1 {
            let frames = (0..doc.frames())
                .filter_map(|t| doc.labels().at_frame(t).map(|l| (t, l.frame(t))))
                .collect();
            (None, frames)
        } else {
            (doc.labels().at_frame(0).cloned(), Vec::new())
        };
        // Each map keeps its own labelled slices (a cine's ED may be whole
        // and its ES painted on three slices).
        let labelled_slices = labels.as_ref().and_then(|_| doc.slice_list(0));
        let frame_slices = frame_labels
            .iter()
            .filter_map(|(t, _)| doc.slice_list(*t).map(|ks| (*t, ks)))
            .collect();
        Ok(OpenCase {
            id: doc.title().to_string(),
            images,
            labels,
            frame_labels,
            labelled_slices,
            frame_slices,
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
            labelled_slices: self.labelled_slices.as_deref(),
            frame_slices: self
                .frame_slices
                .iter()
                .map(|(t, ks)| (*t, ks.as_slice()))
                .collect(),
        }
    }
}

/// The fine-tuning configuration: the config file when given, else the
/// current model's network with the quick settings.
fn finetune_config(
    ai: &TrainRequest,
    model: &crate::models::segment::SegmenterConfig,
) -> Result<TrainConfig, String> {
    if !ai.config_path.trim().is_empty() {
        return TrainConfig::load(std::path::Path::new(ai.config_path.trim()))
            .map_err(|e| e.to_string());
    }
    let c = TrainConfig::fine_tune(model, ai.steps, ai.learning_rate);
    c.check()?;
    Ok(c)
}

/// The encoder's fine-tuning configuration: the config file when given
/// (a `configs/ume_*.json`), else the checkpoint's encoder with the quick
/// settings.
fn encoder_finetune_config(
    ai: &TrainRequest,
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

/// Every case of a dataset folder, loaded (cancel is checked between
/// cases).
fn folder_cases(folder: &Path, job: &JobCtx<Event>) -> Result<Vec<crate::dataset::Case>, String> {
    let ds = crate::dataset::open(folder).map_err(|e| e.to_string())?;
    (0..ds.cases.len())
        .map(|i| {
            job.cancel_token().check("fine-tuning")?;
            job.message(format!("loading case {}/{}", i + 1, ds.cases.len()));
            ds.load_case(i).map_err(|e| e.to_string())
        })
        .collect()
}

/// The default folder for fine-tuned models: `~/.cache/ume/finetune`.
pub fn finetune_root() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("ume")
        .join("finetune")
}

/// A folder-name-safe version of a model name.
pub fn sanitize(spec: &str) -> String {
    let name = Path::new(spec)
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

/// Copy a checkpoint (its top-level files: config.json, model.bpk, …) into
/// a new folder, each file atomically.
pub fn copy_model(src: &Path, dst: &Path) -> Result<(), String> {
    if !src.join("config.json").is_file() {
        return Err(format!(
            "{}: not a model folder (no config.json)",
            src.display()
        ));
    }
    std::fs::create_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    let entries = std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() {
            let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            crate::io::write_atomic(&dst.join(e.file_name()), &bytes).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
