//! Models in the app (feature `ml`): segment the open case with a bundled
//! demo model or a checkpoint folder, ask what a model loses without one
//! modality, run a UME encoder's keyframes, and fine-tune the model on the
//! open case (or a dataset folder) with live curves — then swap the new
//! model in, re-segment, and show the Dice before and after side by side.
//!
//! `mod.rs` holds the state and starts runs; [`collect`] takes in their
//! results and training events each frame; [`runs`] holds the jobs'
//! bodies (everything that grows with the volume or touches a model, off
//! the UI thread); [`panel`] draws. Every run is a [`Job`]: Cancel and Stop
//! reach every stage, a panic is an error message, and a result for a case
//! no longer open is dropped.

mod collect;
mod panel;
pub mod runs;
pub mod tokenizer;

pub use collect::logic;
pub use panel::{next_slices_ui, section};

use super::UmeApp;
use super::document::Document;
use super::jobs::{Job, Progress, Slot};
use crate::models::DeviceChoice;
use crate::models::encoder::KeyframeReport;
use crate::models::suggest::SliceScores;
use crate::training::Event;
use crate::volume::LabelVolume;
use eframe::egui;
use runs::{FineTuned, HeldOut, SegmentOutput, TrainRequest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Dice of a what-if run against the full run.
#[derive(Debug, Clone)]
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

/// Where fine-tuning data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainSource {
    /// The open case and its labels.
    OpenCase,
    /// Every labelled case of a dataset folder.
    Folder,
}

/// Progress of the fine-tuning run.
struct RunProgress {
    started: Instant,
    first_step: usize,
    total_steps: usize,
    step: usize,
}

/// Model state of the app.
pub struct AiState {
    /// Model to run: a bundled demo name or a checkpoint folder.
    pub model: String,
    /// Where models run.
    pub device: DeviceChoice,
    segment: Slot<SegmentOutput>,
    /// The model the running segmentation uses.
    segment_model: String,
    /// Fine-tuning steps.
    pub steps: usize,
    /// Fine-tuning learning rate.
    pub learning_rate: f64,
    /// A training config file to use instead of the quick settings.
    pub config_path: String,
    /// Data source.
    pub source: TrainSource,
    /// Dataset folder when `source` is `Folder` (or `with_folder`).
    pub data_folder: String,
    /// Train on the open case's labelled slices plus the dataset folder.
    pub with_folder: bool,
    train: Slot<FineTuned, Event>,
    run: Option<RunProgress>,
    /// Curves of the current or last run.
    pub curves: Curves,
    /// Per-label Dice before fine-tuning (label, Dice).
    pub before: Option<Vec<(u16, f64)>>,
    /// The last run's Dice before and after on the held-out slices.
    pub held_out: Option<HeldOut>,
    /// Prediction revision of the re-segmentation after fine-tuning.
    after_revision: Option<u64>,
    /// The full-modality prediction, shared with the document (one copy).
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
    encoder: Slot<KeyframeReport>,
    /// The encoder's report for a document id.
    pub encoder_report: Option<(u64, KeyframeReport)>,
    /// The last fine-tuned model's folder (Save model as… copies it).
    fine_tuned: Option<PathBuf>,
    save_model: Slot<PathBuf>,
    suggest: Slot<SliceScores>,
    /// The model's slice scores for a document id ("label next").
    scores: Option<(u64, SliceScores)>,
    /// The Tokenizer panel.
    pub tokenizer: tokenizer::TokenizerState,
}

impl Default for AiState {
    fn default() -> AiState {
        AiState {
            model: String::new(),
            device: DeviceChoice::Auto,
            segment: Slot::default(),
            segment_model: String::new(),
            steps: 60,
            learning_rate: 3e-4,
            config_path: String::new(),
            source: TrainSource::OpenCase,
            data_folder: String::new(),
            with_folder: false,
            train: Slot::default(),
            run: None,
            curves: Curves::default(),
            before: None,
            held_out: None,
            after_revision: None,
            full: None,
            what_if: None,
            drop_channel: 1,
            out_root: None,
            encoder_path: String::new(),
            encoder: Slot::default(),
            encoder_report: None,
            fine_tuned: None,
            save_model: Slot::default(),
            suggest: Slot::default(),
            scores: None,
            tokenizer: tokenizer::TokenizerState::default(),
        }
    }
}

impl AiState {
    /// Whether segmentation, training or an encoder run is in progress.
    pub fn is_busy(&self) -> bool {
        self.segment.is_running()
            || self.train.is_running()
            || self.encoder.is_running()
            || self.suggest.is_running()
    }

    /// The model's slice scores, when they belong to document `doc_id`.
    pub fn scores_for(&self, doc_id: u64) -> Option<&SliceScores> {
        self.scores
            .as_ref()
            .filter(|(id, _)| *id == doc_id)
            .map(|(_, s)| s)
    }

    /// Whether slices are being ranked.
    pub fn is_ranking(&self) -> bool {
        self.suggest.is_running()
    }

    /// Whether a fine-tuning run (or its preparation) is in progress.
    pub fn is_training(&self) -> bool {
        self.train.is_running()
    }

    /// Segmentation progress (done, total) while one runs.
    pub fn segment_progress(&self) -> Option<(usize, usize)> {
        self.segment
            .job()
            .map(|j| j.progress().fraction.unwrap_or((0, 0)))
    }

    /// The last fine-tuned model's folder.
    pub fn fine_tuned(&self) -> Option<&PathBuf> {
        self.fine_tuned.as_ref()
    }

    /// The full-modality prediction kept for what-if runs.
    pub fn full_prediction(&self) -> Option<&Arc<LabelVolume>> {
        self.full.as_ref()
    }

    /// The encoder's curves for the keyframe inspector, when they belong to
    /// document `doc_id`.
    pub fn learned(&self, doc_id: u64) -> Option<super::keyframes_ui::Learned<'_>> {
        let (g, r) = self.encoder_report.as_ref()?;
        (*g == doc_id).then_some(super::keyframes_ui::Learned {
            attention: &r.attention,
            fused: &r.fused,
            weights: &r.weights,
            selected: &r.selected,
        })
    }

    /// Running jobs, for the status bar.
    pub fn running(&self) -> Vec<(&'static str, Progress)> {
        [
            self.segment.describe(),
            self.encoder.describe(),
            self.train.describe(),
            self.suggest.describe(),
            self.tokenizer.describe(),
            self.save_model.describe(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// A new case is open: what belonged to the last one goes (runs on it
    /// are cancelled; the model choice returns to the default for the case
    /// unless the user picked a checkpoint folder).
    pub fn reset_for_case(&mut self, doc: &Document) {
        self.segment.abandon();
        self.encoder.abandon();
        self.train.abandon();
        self.suggest.abandon();
        self.scores = None;
        self.tokenizer.reset();
        self.run = None;
        self.curves = Curves::default();
        self.before = None;
        self.held_out = None;
        self.after_revision = None;
        self.full = None;
        self.what_if = None;
        self.encoder_report = None;
        if self.model.is_empty() || self.model.starts_with("demo-") {
            self.model = default_model(doc).into();
        }
    }

    /// Ask the running segmentation, encoder or training to stop. A
    /// segmentation and an encoder run are dropped at once (their result
    /// will not be used); training stops after its current step and keeps
    /// its last state.
    pub fn cancel(&mut self, notes: &mut super::notify::Notifications) {
        if self.segment.is_running() {
            self.segment.abandon();
            notes.info("segmentation cancelled");
        }
        if self.encoder.is_running() {
            self.encoder.abandon();
            notes.info("encoder run cancelled");
        }
        if let Some(j) = self.train.job() {
            j.cancel();
        }
    }
}

/// The bundled model that fits the case
/// ([`crate::models::demos::fitting_demo`]), none for an ACDC case (a
/// cardiac stack); empty when a checkpoint folder is needed.
pub fn default_model(doc: &Document) -> &'static str {
    let Some(first) = doc.layers().first().filter(|_| doc.acdc().is_none()) else {
        return "";
    };
    crate::models::demos::fitting_demo(doc.layers().len(), &first.volume, first.range.0)
        .unwrap_or("")
}

/// The model to run: the one chosen, else the bundled one that fits the
/// case; `false` (and an error saying what to do) when there is none.
fn ensure_model(
    ai: &mut AiState,
    doc: &Document,
    notes: &mut super::notify::Notifications,
) -> bool {
    if ai.model.is_empty() {
        ai.model = default_model(doc).into();
    }
    if ai.model.is_empty() {
        notes.error("no bundled model fits this case: enter a checkpoint folder");
        return false;
    }
    true
}

/// Start segmenting the open case with `app.ai.model`; with `drop`, the
/// modality at that index is replaced by zeros — the what-if run.
pub fn start_segment(app: &mut UmeApp, ctx: &egui::Context, drop: Option<usize>) {
    let Some(doc) = &app.doc else { return };
    if app.ai.segment.is_running() {
        return;
    }
    if !ensure_model(&mut app.ai, doc, &mut app.notes) {
        return;
    }
    let what_if = match drop {
        None => None,
        Some(k) => {
            let (Some(full), Some(gt)) = (&app.ai.full, doc.labels().at_frame(app.cursor.frame))
            else {
                app.notes
                    .error("the what-if needs ground truth and a full segmentation first");
                return;
            };
            Some(runs::WhatIfInput {
                dropped: k,
                name: doc.layer(k).map_or("?".into(), |l| l.name.clone()),
                full: full.clone(),
                gt: gt.clone(),
                frame: app.cursor.frame,
            })
        }
    };
    let request = runs::SegmentRequest {
        model: app.ai.model.clone(),
        device: app.ai.device,
        volumes: doc.layers().iter().map(|l| l.volume.clone()).collect(),
        names: doc.layers().iter().map(|l| l.name.clone()).collect(),
        what_if,
    };
    app.notes.info(match drop {
        Some(k) => format!(
            "segmenting without {}…",
            doc.layer(k).map_or("?", |l| l.name.as_str())
        ),
        None => format!("segmenting with {}…", app.ai.model),
    });
    app.ai.segment_model = app.ai.model.clone();
    let wake = ctx.clone();
    app.ai.segment.start(Job::spawn(
        "segment",
        doc.id(),
        move || wake.request_repaint(),
        move |job| runs::segment(&request, job),
    ));
}

/// Run a UME encoder checkpoint on the open case in the background:
/// keyframe scores of every strategy, fusion weights, modality gates.
pub fn start_encoder(app: &mut UmeApp, ctx: &egui::Context) {
    let Some(doc) = &app.doc else { return };
    if app.ai.encoder.is_running() {
        return;
    }
    let path = PathBuf::from(app.ai.encoder_path.trim());
    let volumes = doc.layers().iter().map(|l| l.volume.clone()).collect();
    let k = app.keyframes.k;
    let choice = app.ai.device;
    let wake = ctx.clone();
    app.ai.encoder.start(Job::spawn(
        "encoder",
        doc.id(),
        move || wake.request_repaint(),
        move |job| runs::encoder(&path, volumes, k, choice, job),
    ));
    app.notes.info("running the UME encoder…");
}

/// Start fine-tuning the current model (data preparation and training in
/// one job; Stop reaches both).
pub fn start_training(app: &mut UmeApp, ctx: &egui::Context) {
    let Some(doc) = &app.doc else { return };
    if app.ai.train.is_running() {
        return;
    }
    if !ensure_model(&mut app.ai, doc, &mut app.notes) {
        return;
    }
    let case = match app.ai.source {
        TrainSource::OpenCase => match runs::OpenCase::of(doc, app.cursor.frame) {
            Ok(c) => Some(c),
            Err(e) => {
                app.notes.error(e);
                return;
            }
        },
        TrainSource::Folder => None,
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let root = app.ai.out_root.clone().unwrap_or_else(runs::finetune_root);
    let out = root.join(format!("{}-{stamp}", runs::sanitize(&app.ai.model)));
    let request = TrainRequest {
        model: app.ai.model.clone(),
        device: app.ai.device,
        steps: app.ai.steps,
        learning_rate: app.ai.learning_rate,
        config_path: app.ai.config_path.trim().to_string(),
        case,
        folder: match app.ai.source {
            TrainSource::OpenCase if !app.ai.with_folder => PathBuf::new(),
            _ => PathBuf::from(app.ai.data_folder.trim()),
        },
        out,
    };
    app.ai.before = app
        .eval
        .result
        .as_ref()
        .map(|e| e.structures.iter().map(|s| (s.label, s.dice)).collect());
    app.ai.after_revision = None;
    app.ai.held_out = None;
    app.ai.curves = Curves::default();
    app.ai.run = Some(RunProgress {
        started: Instant::now(),
        first_step: 0,
        total_steps: app.ai.steps,
        step: 0,
    });
    let wake = ctx.clone();
    app.ai.train.start(Job::spawn(
        "fine-tune",
        doc.id(),
        move || wake.request_repaint(),
        move |job| runs::fine_tune(request, job),
    ));
    app.notes.info("preparing training data…");
}

/// Rank the open case's slices by the model's uncertainty in the
/// background ("Next slices to label").
pub fn start_suggest(app: &mut UmeApp, ctx: &egui::Context) {
    let Some(doc) = &app.doc else { return };
    if app.ai.suggest.is_running() || !ensure_model(&mut app.ai, doc, &mut app.notes) {
        return;
    }
    let model = app.ai.model.clone();
    let choice = app.ai.device;
    let volumes: Vec<Arc<crate::volume::Volume>> =
        doc.layers().iter().map(|l| l.volume.clone()).collect();
    let wake = ctx.clone();
    app.ai.suggest.start(Job::spawn(
        "rank-slices",
        doc.id(),
        move || wake.request_repaint(),
        move |job| {
            let dev = crate::models::device(choice);
            let m = crate::models::Segmenter::load(&model, &dev).map_err(|e| e.to_string())?;
            job.cancel_token().check("ranking")?;
            let refs: Vec<&crate::volume::Volume> = volumes.iter().map(|v| &**v).collect();
            crate::models::suggest::score_slices(&m, &refs, &dev, |n, of| {
                job.fraction(n, of);
                !job.is_cancelled()
            })
            .map_err(|e| e.to_string())
        },
    ));
}

/// Copy the fine-tuned model to `dir` in the background.
pub fn save_model_to(app: &mut UmeApp, ctx: &egui::Context, dir: PathBuf) {
    let Some(src) = app.ai.fine_tuned.clone() else {
        app.notes.error("no fine-tuned model to save yet");
        return;
    };
    let wake = ctx.clone();
    app.ai.save_model.start(Job::spawn(
        "save-model",
        0,
        move || wake.request_repaint(),
        move |_| runs::copy_model(&src, &dir).map(|()| dir),
    ));
}
