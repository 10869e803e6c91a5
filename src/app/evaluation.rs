//! The metrics panel: per-structure Dice, IoU, HD95, NSD, ASSD and volumes
//! of a prediction against the ground truth of the open case, computed on a
//! background thread whenever either changes, shown as a sortable, filterable
//! table, a ranking bar chart and a Dice distribution, with CSV/JSON export.

use super::document::Document;
use crate::metrics::{EvalOptions, Evaluation, StructureMetrics};
use crate::volume::LabelVolume;
use eframe::egui;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

/// Which labels the overlay shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlay {
    /// The ground truth.
    #[default]
    GroundTruth,
    /// The prediction.
    Prediction,
    /// False positives (red) and false negatives (blue).
    Difference,
}

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

/// The prediction and its evaluation.
pub struct EvalState {
    /// Latest result.
    pub result: Option<Evaluation>,
    /// Running computation.
    job: Option<Receiver<Result<Evaluation, String>>>,
    /// What the result (or running job) is for.
    key: Option<(u64, u64, usize)>,
    /// Sort column and descending flag.
    pub sort: (Column, bool),
    /// Name filter.
    pub filter: String,
    /// Last message (export, error).
    pub message: String,
}

impl Default for EvalState {
    fn default() -> EvalState {
        EvalState {
            result: None,
            job: None,
            key: None,
            sort: (Column::Dice, true),
            filter: String::new(),
            message: String::new(),
        }
    }
}

impl EvalState {
    /// Whether a computation is running.
    pub fn is_computing(&self) -> bool {
        self.job.is_some()
    }

    /// Collect a finished result; start a new computation when the labels or
    /// the prediction changed (`key` = document generation, prediction
    /// generation, frame).
    pub fn update(
        &mut self,
        doc: &Document,
        key: (u64, u64, usize),
        wake: impl Fn() + Send + 'static,
    ) {
        if let Some(rx) = &self.job
            && let Ok(r) = rx.try_recv()
        {
            self.job = None;
            match r {
                Ok(e) => self.result = Some(e),
                Err(e) => self.message = e,
            }
        }
        let (Some(pred), Some(gt)) = (
            doc.prediction.clone(),
            doc.labels.at_frame(doc.frame).cloned(),
        ) else {
            self.result = None;
            self.key = None;
            return;
        };
        if self.key == Some(key) || self.job.is_some() {
            return;
        }
        self.key = Some(key);
        let table = doc.table.clone();
        let frame = doc.frame;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("ume-metrics".into())
            .spawn(move || {
                let gt3 = gt.frame(frame);
                let r = crate::metrics::evaluate(&pred, &gt3, &table, &EvalOptions::default())
                    .map_err(|e| e.to_string());
                let _ = tx.send(r);
                wake();
            });
        match spawned {
            Ok(_) => self.job = Some(rx),
            Err(e) => self.message = format!("could not start the metrics thread: {e}"),
        }
    }
}

/// Load a prediction label map on a named thread.
pub fn spawn_prediction_load(
    path: PathBuf,
    wake: impl Fn() + Send + 'static,
) -> std::io::Result<Receiver<Result<(PathBuf, LabelVolume), String>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ume-load-prediction".into())
        .spawn(move || {
            let r = crate::io::load_labels(&path)
                .map(|l| (path, l))
                .map_err(|e| e.to_string());
            let _ = tx.send(r);
            wake();
        })?;
    Ok(rx)
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

/// The metrics panel.
pub fn panel_ui(
    state: &mut EvalState,
    doc: &mut Document,
    ui: &mut egui::Ui,
    overlay_changed: &mut bool,
) {
    ui.heading("Metrics");
    ui.horizontal(|ui| {
        ui.label("Overlay");
        for (o, name) in [
            (Overlay::GroundTruth, "ground truth"),
            (Overlay::Prediction, "prediction"),
            (Overlay::Difference, "difference"),
        ] {
            if ui.selectable_value(&mut doc.overlay, o, name).changed() {
                *overlay_changed = true;
            }
        }
    });
    if doc.overlay == Overlay::Difference {
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
        if !state.message.is_empty() {
            ui.colored_label(egui::Color32::YELLOW, &state.message);
        }
        return;
    };
    ui.label(format!("mean Dice {}", fmt(result.mean_dice)));
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
    egui::ScrollArea::vertical()
        .max_height(260.0)
        .show(ui, |ui| {
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
    ui.horizontal(|ui| {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let here = std::env::current_dir().unwrap_or_default();
        if ui.button("Export CSV").clicked() {
            let path = here.join(format!("ume-metrics-{stamp}.csv"));
            let text = crate::metrics::csv(&[(doc.title.as_str(), result)]);
            state.message = match crate::io::write_atomic(&path, text.as_bytes()) {
                Ok(()) => format!("saved {}", path.display()),
                Err(e) => e.to_string(),
            };
        }
        if ui.button("Export JSON").clicked() {
            let path = here.join(format!("ume-metrics-{stamp}.json"));
            state.message = match serde_json::to_vec_pretty(result)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::io::write_atomic(&path, &b).map_err(|e| e.to_string()))
            {
                Ok(()) => format!("saved {}", path.display()),
                Err(e) => e,
            };
        }
    });
    if !state.message.is_empty() {
        ui.label(&state.message);
    }
}

/// The label map the overlay shows at `frame` (difference maps are built
/// here: 1 = false positive, 2 = false negative).
pub fn shown_labels(doc: &Document) -> Option<Arc<LabelVolume>> {
    let gt = doc.labels.at_frame(doc.frame).cloned();
    match (doc.overlay, &doc.prediction) {
        (Overlay::Prediction, Some(p)) => Some(p.clone()),
        (Overlay::Difference, Some(p)) => {
            let g = gt.map(|g| g.frame(doc.frame));
            let mut d = LabelVolume::zeros(p.dims, 1, p.geometry.clone());
            for i in 0..d.len() {
                let (pv, gv) = (p.get(i), g.as_ref().map_or(0, |g| g.get(i)));
                if pv != gv {
                    d.set(i, if pv != 0 { 1 } else { 2 });
                }
            }
            Some(Arc::new(d))
        }
        _ => gt,
    }
}

/// Palette of the difference overlay.
pub fn difference_palette() -> Vec<[u8; 4]> {
    let mut p = vec![[0u8; 4]; 256];
    p[1] = [255, 70, 70, 255];
    p[2] = [70, 150, 255, 255];
    p
}
