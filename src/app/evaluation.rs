//! The metrics panel: per-structure Dice, IoU, HD95, NSD, ASSD and volumes
//! of a prediction against the ground truth of the open case, computed on a
//! background thread whenever either changes, shown as a sortable, filterable
//! table, a ranking bar chart and a Dice distribution, with CSV/JSON export.

use super::commands::Command;
use super::document::{Document, Prediction};
use super::jobs::{Job, Slot};
use super::notify::Notifications;
use crate::metrics::{Confusion, EvalOptions, Evaluation, StructureMetrics};
use crate::volume::LabelVolume;
use eframe::egui;
use std::sync::Arc;

pub use super::overlay::{difference_map, difference_palette, shown_labels};
pub use super::settings::Overlay;

/// Table columns (sort keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Label id.
    Label,
    /// Name.
    Name,
    /// Dice.
    Dice,
    /// IoU.
    Iou,
    /// HD95.
    Hd95,
    /// NSD.
    Nsd,
    /// ASSD.
    Assd,
    /// Ground-truth volume.
    VolumeGt,
    /// Predicted volume.
    VolumePred,
}

impl Column {
    const ALL: [Column; 9] = [
        Column::Label,
        Column::Name,
        Column::Dice,
        Column::Iou,
        Column::Hd95,
        Column::Nsd,
        Column::Assd,
        Column::VolumeGt,
        Column::VolumePred,
    ];

    fn title(self) -> &'static str {
        match self {
            Column::Label => "id",
            Column::Name => "structure",
            Column::Dice => "Dice",
            Column::Iou => "IoU",
            Column::Hd95 => "HD95 mm",
            Column::Nsd => "NSD",
            Column::Assd => "ASSD mm",
            Column::VolumeGt => "GT mL",
            Column::VolumePred => "pred mL",
        }
    }

    fn value(self, s: &StructureMetrics) -> f64 {
        match self {
            Column::Label => f64::from(s.label),
            Column::Name => 0.0,
            Column::Dice => s.dice,
            Column::Iou => s.iou,
            Column::Hd95 => s.hd95_mm,
            Column::Nsd => s.nsd,
            Column::Assd => s.assd_mm,
            Column::VolumeGt => s.volume_gt_ml,
            Column::VolumePred => s.volume_pred_ml,
        }
    }
}

/// What an evaluation or a difference map was computed from: the case,
/// its labels' and prediction's revisions, and the frame.
fn key_of(doc: &Document, frame: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (doc.id(), doc.revisions(), frame).hash(&mut h);
    h.finish()
}

/// Live overlap counts: what they were computed for and the counts.
struct Live {
    /// Document, prediction revision and frame.
    key: u64,
    /// The label map (index) and its frame the counts follow.
    map: (usize, usize),
    confusion: Confusion,
}

/// What the live counts depend on (not the labels: edits update them).
fn live_key(doc: &Document, frame: usize) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let rev = doc.revisions();
    (doc.id(), rev.prediction, rev.maps, frame).hash(&mut h);
    h.finish()
}

/// The prediction's evaluation and the difference overlay, each computed
/// by a job when what it depends on changes.
pub struct EvalState {
    /// Latest result.
    pub result: Option<Evaluation>,
    result_key: Option<u64>,
    job: Slot<Evaluation>,
    /// The difference map (all frames) and what it was made from.
    difference: Option<(u64, Arc<LabelVolume>)>,
    difference_job: Slot<Arc<LabelVolume>>,
    /// Confusion counts of the labels against the prediction, kept current
    /// stroke by stroke from the changed voxels alone.
    live: Option<Live>,
    live_job: Slot<(u64, Confusion)>,
    /// Sort column and descending flag.
    pub sort: (Column, bool),
    /// Name filter.
    pub filter: String,
    /// The structure "Accept structure" takes.
    pub accept_label: u16,
}

impl Default for EvalState {
    fn default() -> EvalState {
        EvalState {
            result: None,
            result_key: None,
            job: Slot::default(),
            difference: None,
            difference_job: Slot::default(),
            live: None,
            live_job: Slot::default(),
            sort: (Column::Dice, true),
            filter: String::new(),
            accept_label: 0,
        }
    }
}

impl EvalState {
    /// Whether metrics or a difference map are being computed.
    pub fn is_computing(&self) -> bool {
        self.job.is_running() || self.difference_job.is_running() || self.live_job.is_running()
    }

    /// Collect finished jobs (stale results are dropped); start new ones
    /// when the labels, the prediction or the frame changed. Errors go to
    /// `notes`.
    pub fn update(
        &mut self,
        doc: &mut Document,
        frame: usize,
        overlay: Overlay,
        notes: &mut Notifications,
        wake: &egui::Context,
    ) {
        self.live_update(doc, frame, wake);
        let key = key_of(doc, frame);
        if let Some((tag, r)) = self.job.poll() {
            match r {
                Ok(e) if tag == key => self.result = Some(e),
                Ok(_) => {}
                Err(e) => notes.error(format!("metrics: {e}")),
            }
        }
        let (Some(pred), Some(gt)) = (doc.prediction(), doc.labels().at_frame(frame).cloned())
        else {
            self.result = None;
            self.result_key = None;
            self.difference = None;
            return;
        };
        // Debounced: surface distances are recomputed once a stroke ends.
        if self.result_key != Some(key) && !doc.is_editing() {
            self.result_key = Some(key);
            let table = doc.table().clone();
            let pred = pred.labels.clone();
            let w = wake.clone();
            self.job.start(Job::spawn(
                "metrics",
                key,
                move || w.request_repaint(),
                move |_| {
                    // Copy the frames and let go of the shared maps at once,
                    // so painting meanwhile never has to copy the labels.
                    let gt3 = gt.frame(frame);
                    let p3 = pred.frame(frame.min(pred.frames.saturating_sub(1)));
                    drop((gt, pred));
                    crate::metrics::evaluate(&p3, &gt3, &table, &EvalOptions::default())
                        .map_err(|e| e.to_string())
                },
            ));
        }
        // The difference overlay for every frame at once, so playing a cine
        // only slices it.
        let dkey = key_of(doc, usize::MAX);
        if let Some((tag, r)) = self.difference_job.poll() {
            match r {
                Ok(d) if tag == dkey => self.difference = Some((tag, d)),
                Ok(_) => {}
                Err(e) => notes.error(format!("difference overlay: {e}")),
            }
        }
        let have = self.difference.as_ref().is_some_and(|(k, _)| *k == dkey)
            || self.difference_job.job().is_some_and(|j| j.tag() == dkey);
        if overlay == Overlay::Difference && !have && !doc.is_editing() {
            let labels = doc.labels().clone();
            let pred = pred.labels.clone();
            let frames = doc.frames();
            let w = wake.clone();
            self.difference_job.start(Job::spawn(
                "difference",
                dkey,
                move || w.request_repaint(),
                move |ctx| difference_map(&labels, &pred, frames, ctx.cancel_token()).map(Arc::new),
            ));
        }
    }

    /// Follow the labels' edits in the live counts (O(changed voxels)); a
    /// new case, prediction or frame recounts on a job. The table's Dice,
    /// IoU and volumes follow the live counts.
    fn live_update(&mut self, doc: &mut Document, frame: usize, wake: &egui::Context) {
        let applied = doc.take_applied();
        let key = live_key(doc, frame);
        let (Some(pred), Some(map)) = (doc.prediction(), doc.map_at(frame)) else {
            self.live = None;
            return;
        };
        if let Some((tag, r)) = self.live_job.poll() {
            // Counts taken before later edits are stale: count again.
            match r {
                Ok((rev, c)) if tag == key && rev == doc.revisions().labels => {
                    self.live = Some(Live {
                        key,
                        map,
                        confusion: c,
                    });
                }
                Ok(_) | Err(_) => self.live = None,
            }
        }
        if let Some(live) = &mut self.live
            && live.key == key
            && live.map == map
        {
            let p = &pred.labels;
            let off = p.frame_offset(frame.min(p.frames.saturating_sub(1)));
            let mut kept = true;
            for a in applied.iter().filter(|a| (a.map, a.frame) == map) {
                for &(v, before, after) in &a.changes {
                    kept &= live.confusion.move_voxel(before, after, p.get(off + v));
                }
            }
            if kept {
                if !applied.is_empty() {
                    self.refresh_from_live(doc);
                }
                return;
            }
        }
        self.live = None;
        if doc.is_editing() || self.live_job.job().is_some_and(|j| j.tag() == key) {
            return;
        }
        let Some(gt) = doc.labels().at_frame(frame).cloned() else {
            return;
        };
        let (pred, rev) = (pred.labels.clone(), doc.revisions().labels);
        let w = wake.clone();
        self.live_job.start(Job::spawn(
            "live-counts",
            key,
            move || w.request_repaint(),
            move |_| {
                let g = gt.frame(frame.min(gt.frames - 1));
                let p = pred.frame(frame.min(pred.frames - 1));
                Ok((rev, Confusion::new(&g, &p)))
            },
        ));
    }

    /// Rewrite the table's overlap figures from the live counts.
    fn refresh_from_live(&mut self, doc: &Document) {
        let (Some(live), Some(result)) = (&self.live, &mut self.result) else {
            return;
        };
        let spacing = doc.layer(0).map_or([1.0; 3], |l| l.volume.spacing_mm());
        let ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
        for s in &mut result.structures {
            let (tp, fp, fn_) = live.confusion.tp_fp_fn(s.label);
            s.dice = crate::metrics::dice_from_counts(tp, fp, fn_);
            s.iou = if tp + fp + fn_ == 0 {
                f64::NAN
            } else {
                tp as f64 / (tp + fp + fn_) as f64
            };
            s.volume_gt_ml = (tp + fn_) as f64 * ml;
            s.volume_pred_ml = (tp + fp) as f64 * ml;
            s.volume_diff_ml = s.volume_pred_ml - s.volume_gt_ml;
        }
        let finite: Vec<f64> = result
            .structures
            .iter()
            .map(|s| s.dice)
            .filter(|d| d.is_finite())
            .collect();
        result.mean_dice = if finite.is_empty() {
            f64::NAN
        } else {
            finite.iter().sum::<f64>() / finite.len() as f64
        };
    }

    /// Live Dice of `id` (labels vs prediction), when the counts are ready.
    pub fn live_dice(&self, id: u16) -> Option<f64> {
        let (tp, fp, fn_) = self.live.as_ref()?.confusion.tp_fp_fn(id);
        Some(crate::metrics::dice_from_counts(tp, fp, fn_))
    }

    /// Running jobs, for the status bar.
    pub fn running(&self) -> Vec<(&'static str, super::jobs::Progress)> {
        [
            self.job.describe(),
            self.difference_job.describe(),
            self.live_job.describe(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The difference map for the open case, when computed and current.
    pub fn difference(&self, doc: &Document) -> Option<&Arc<LabelVolume>> {
        let dkey = key_of(doc, usize::MAX);
        self.difference
            .as_ref()
            .filter(|(k, _)| *k == dkey)
            .map(|(_, d)| d)
    }
}

/// Load a prediction label map and count its ids (a job's body).
pub fn load_prediction(path: &std::path::Path) -> Result<Prediction, String> {
    let l = crate::io::load_labels(path).map_err(|e| e.to_string())?;
    Ok(Prediction::new(Arc::new(l), path.display().to_string()))
}

fn fmt(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x.is_infinite() {
        "∞".into()
    } else {
        format!("{x:.3}")
    }
}

/// What the metrics panel asks the app to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PanelAction {
    /// Run a command (exports, accept the whole prediction).
    Run(Command),
    /// Accept one predicted structure into the labels.
    Accept(u16),
}

/// The metrics panel; returns what the user asked for.
pub fn panel_ui(
    state: &mut EvalState,
    overlay: &mut Overlay,
    ui: &mut egui::Ui,
) -> Option<PanelAction> {
    ui.heading("Metrics");
    ui.horizontal(|ui| {
        ui.label("Overlay");
        for (o, name) in [
            (Overlay::GroundTruth, "ground truth"),
            (Overlay::Prediction, "prediction"),
            (Overlay::Difference, "difference"),
        ] {
            ui.selectable_value(overlay, o, name);
        }
    });
    if *overlay == Overlay::Difference {
        ui.horizontal(|ui| {
            ui.colored_label(egui::Color32::from_rgb(255, 70, 70), "false positive");
            ui.colored_label(egui::Color32::from_rgb(70, 150, 255), "false negative");
        });
    }
    if state.is_computing() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("computing metrics");
        });
    }
    let Some(result) = &state.result else {
        return None;
    };
    let all = result
        .structures
        .iter()
        .filter(|s| s.dice.is_finite())
        .count();
    ui.label(format!(
        "mean Dice {} over {all} structures",
        fmt(result.mean_dice)
    ))
    .on_hover_text("MONAI's mean: a structure of the ground truth the prediction misses counts 0");
    // A model that knows a few of the structures (a 6-organ model on a
    // 104-structure ground truth) scores low on the mean of all; say what
    // it scores on the ones it predicts.
    let predicted: Vec<f64> = result
        .structures
        .iter()
        .filter(|s| s.volume_pred_ml > 0.0 && s.dice.is_finite())
        .map(|s| s.dice)
        .collect();
    if !predicted.is_empty() && predicted.len() < all {
        ui.label(format!(
            "mean Dice {} over the {} structures the prediction contains",
            fmt(predicted.iter().sum::<f64>() / predicted.len() as f64),
            predicted.len()
        ));
    }
    ui.horizontal(|ui| {
        let l = ui.label("Filter");
        ui.text_edit_singleline(&mut state.filter).labelled_by(l.id);
    });
    let filter = state.filter.to_lowercase();
    let mut rows: Vec<&StructureMetrics> = result
        .structures
        .iter()
        .filter(|s| s.name.to_lowercase().contains(&filter))
        .collect();
    let (col, desc) = state.sort;
    rows.sort_by(|a, b| {
        let o = if col == Column::Name {
            a.name.cmp(&b.name)
        } else {
            col.value(a).total_cmp(&col.value(b))
        };
        if desc { o.reverse() } else { o }
    });
    // Both ways: the table is wider than the panel, which must never grow
    // past its width (the views would shrink or be covered).
    egui::ScrollArea::both().max_height(260.0).show(ui, |ui| {
        egui::Grid::new("metrics table")
            .striped(true)
            .show(ui, |ui| {
                for c in Column::ALL {
                    let arrow = if state.sort.0 == c {
                        if state.sort.1 { " v" } else { " ^" }
                    } else {
                        ""
                    };
                    if ui.button(format!("{}{arrow}", c.title())).clicked() {
                        state.sort = if state.sort.0 == c {
                            (c, !state.sort.1)
                        } else {
                            (c, true)
                        };
                    }
                }
                ui.end_row();
                for s in &rows {
                    ui.label(s.label.to_string());
                    ui.label(&s.name);
                    for c in &Column::ALL[2..] {
                        ui.label(fmt(c.value(s)));
                    }
                    ui.end_row();
                }
            });
    });
    // Ranking (best Dice first) and the distribution of Dice.
    let mut ranked: Vec<&StructureMetrics> = result
        .structures
        .iter()
        .filter(|s| s.dice.is_finite())
        .collect();
    ranked.sort_by(|a, b| b.dice.total_cmp(&a.dice));
    let bars: Vec<egui_plot::Bar> = ranked
        .iter()
        .enumerate()
        .map(|(i, s)| {
            egui_plot::Bar::new(i as f64, s.dice)
                .name(&s.name)
                .width(0.8)
        })
        .collect();
    ui.label("Ranking by Dice");
    egui_plot::Plot::new("dice ranking")
        .height(140.0)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(
                egui_plot::BarChart::new("Dice", bars).color(egui::Color32::from_rgb(90, 170, 250)),
            );
        });
    let mut hist = [0usize; 10];
    for s in &ranked {
        hist[((s.dice * 10.0) as usize).min(9)] += 1;
    }
    let bins: Vec<egui_plot::Bar> = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| egui_plot::Bar::new(i as f64 / 10.0 + 0.05, n as f64).width(0.09))
        .collect();
    ui.label("Dice distribution (structures per 0.1 bin)");
    egui_plot::Plot::new("dice distribution")
        .height(110.0)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(
                egui_plot::BarChart::new("structures", bins)
                    .color(egui::Color32::from_rgb(120, 200, 120)),
            );
        });
    let mut action = None;
    ui.horizontal(|ui| {
        let c = Command::AcceptPrediction;
        if ui.button("Accept all").on_hover_text(c.tooltip()).clicked() {
            action = Some(PanelAction::Run(c));
        }
        let names: Vec<(u16, String)> = result
            .structures
            .iter()
            .map(|s| (s.label, s.name.clone()))
            .collect();
        if !names.iter().any(|(id, _)| *id == state.accept_label) {
            state.accept_label = names.first().map_or(0, |n| n.0);
        }
        let l = ui.label("or");
        let current = names
            .iter()
            .find(|(id, _)| *id == state.accept_label)
            .map_or(String::new(), |(_, n)| n.clone());
        egui::ComboBox::from_id_salt("accept structure")
            .selected_text(current)
            .show_ui(ui, |ui| {
                for (id, name) in &names {
                    ui.selectable_value(&mut state.accept_label, *id, name);
                }
            })
            .response
            .labelled_by(l.id);
        if ui
            .button("Accept structure")
            .on_hover_text("make this structure's labels the prediction's (one undo step)")
            .clicked()
        {
            action = Some(PanelAction::Accept(state.accept_label));
        }
    });
    ui.horizontal(|ui| {
        for c in [Command::ExportMetricsCsv, Command::ExportMetricsJson] {
            if ui.button(c.label()).on_hover_text(c.tooltip()).clicked() {
                action = Some(PanelAction::Run(c));
            }
        }
    });
    action
}
