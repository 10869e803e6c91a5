//! The open case's data: images (modalities), labels, a prediction, the
//! label table, where they came from, whether the labels are saved, and a
//! revision per kind of data. The `Document` is the only owner of this
//! state: its fields are private, its methods change them and bump the
//! matching revision, so uploads, metrics and saving key on revisions
//! instead of counters kept by hand elsewhere. How things are shown lives
//! in [`Settings`](super::settings::Settings), where the user is in the case
//! in [`Cursor`](super::views::Cursor).

use crate::dataset::{AcdcInfo, Case};
use crate::volume::{LabelTable, LabelVolume, Volume};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod edit;
mod labels;
mod marks;

pub use edit::Applied;
pub use labels::Labels;
use marks::SliceMarks;
pub use marks::SliceState;

/// One image of the case (a modality, or the only image).
#[derive(Clone)]
pub struct Layer {
    /// Display name ("t1", "flair", "ct", file name...).
    pub name: String,
    /// The voxels, shared with workers.
    pub volume: Arc<Volume>,
    /// Smallest and largest finite scaled value over all frames.
    pub range: (f64, f64),
    /// 0.5 and 99.5 percentiles (the "auto" window).
    pub auto_window: (f64, f64),
}

impl Layer {
    /// A layer with its range and auto window computed (one pass plus a
    /// histogram; run on the loading thread).
    pub fn new(name: impl Into<String>, volume: Arc<Volume>) -> Layer {
        let (range, auto_window) = intensity_summary(&volume);
        Layer {
            name: name.into(),
            volume,
            range,
            auto_window,
        }
    }

    /// Map a scaled value to the [0, 1] range stored in the texture.
    pub fn normalise(&self, v: f64) -> f64 {
        let (lo, hi) = self.range;
        if hi > lo { (v - lo) / (hi - lo) } else { 0.0 }
    }
}

/// Slice marks for freshly opened labels: every map labelled throughout
/// unless it was read with a slice list.
fn marks_of(labels: &Labels) -> SliceMarks {
    let mut marks = SliceMarks::default();
    for (i, (_, map)) in labels.maps().enumerate() {
        match labels.listed(i) {
            Some(ks) => marks.set_listed(i, map.frames, ks),
            None => marks.set_whole(i),
        }
    }
    marks
}

/// Range and 0.5–99.5 percentile window of a volume (channel 0, all frames).
pub fn intensity_summary(v: &Volume) -> ((f64, f64), (f64, f64)) {
    let s = &v.stats()[0];
    let (lo, hi) = if s.min.is_finite() && s.max.is_finite() {
        (s.min, s.max)
    } else {
        (0.0, 1.0)
    };
    if hi <= lo {
        return ((lo, hi), (lo, lo + 1.0));
    }
    const BINS: usize = 4096;
    let mut hist = vec![0u64; BINS];
    let n = v.element_count() / v.components.max(1);
    let step = (n / 4_000_000).max(1); // a sample is enough for percentiles
    let mut total = 0u64;
    for flat in (0..n).step_by(step) {
        let x = v.value_at(flat, 0);
        if x.is_finite() {
            let b = (((x - lo) / (hi - lo)) * (BINS - 1) as f64) as usize;
            hist[b.min(BINS - 1)] += 1;
            total += 1;
        }
    }
    let at = |q: f64| {
        let target = (q * total as f64) as u64;
        let mut acc = 0;
        for (i, &c) in hist.iter().enumerate() {
            acc += c;
            if acc > target {
                return lo + (hi - lo) * i as f64 / (BINS - 1) as f64;
            }
        }
        hi
    };
    let (a, b) = (at(0.005), at(0.995));
    ((lo, hi), if b > a { (a, b) } else { (lo, hi) })
}

/// A model's (or a file's) label map to compare with the labels.
#[derive(Clone)]
pub struct Prediction {
    /// The voxels, shared with workers (never copied on the UI thread).
    pub labels: Arc<LabelVolume>,
    /// Where it came from (a file, or "segmentation by MODEL").
    pub source: String,
    /// Ids present, counted where it was made.
    pub present: Vec<u16>,
}

impl Prediction {
    /// A prediction with its present ids counted (call off the UI thread).
    pub fn new(labels: Arc<LabelVolume>, source: impl Into<String>) -> Prediction {
        let present = labels
            .counts()
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, n)| **n > 0)
            .filter_map(|(id, _)| u16::try_from(id).ok())
            .collect();
        Prediction {
            labels,
            source: source.into(),
            present,
        }
    }
}

/// Where the case's files came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    /// Image files (empty for a dataset case).
    pub images: Vec<PathBuf>,
    /// The dataset or case folder.
    pub folder: Option<PathBuf>,
    /// The label map file the labels were read from or last saved to.
    pub labels: Option<PathBuf>,
}

/// A revision per kind of data, bumped by the `Document` when it changes
/// that data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Revisions {
    /// The labels (maps and voxels).
    pub labels: u64,
    /// The prediction.
    pub prediction: u64,
    /// The label table (names, colours).
    pub table: u64,
    /// Bumped when label maps are replaced or added as a whole (opened,
    /// restored, made for a frame), not by edits.
    pub maps: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The open case.
pub struct Document {
    id: u64,
    title: String,
    layers: Vec<Layer>,
    labels: Labels,
    marks: SliceMarks,
    table: LabelTable,
    prediction: Option<Prediction>,
    acdc: Option<AcdcInfo>,
    warnings: Vec<String>,
    sources: Sources,
    dirty: bool,
    rev: Revisions,
    history: crate::annotation::History<edit::Step>,
    open_step: Option<edit::OpenStep>,
    applied: Vec<edit::Applied>,
    dirty_box: Option<([usize; 3], [usize; 3])>,
}

impl Document {
    /// A document from layers and labels.
    pub fn new(title: String, layers: Vec<Layer>, labels: Labels, table: LabelTable) -> Document {
        Document {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            title,
            layers,
            marks: marks_of(&labels),
            labels,
            table,
            prediction: None,
            acdc: None,
            warnings: Vec::new(),
            sources: Sources::default(),
            dirty: false,
            rev: Revisions::default(),
            history: crate::annotation::History::default(),
            open_step: None,
            applied: Vec::new(),
            dirty_box: None,
        }
    }

    /// From a loaded dataset case (read from `folder`).
    pub fn from_case(case: Case, folder: Option<PathBuf>) -> Document {
        let layers: Vec<Layer> = case
            .images
            .into_iter()
            .map(|(n, v)| Layer::new(n, Arc::new(v)))
            .collect();
        let mut labels = Labels::default();
        let mut listed = Vec::new();
        if let Some(l) = case.labels {
            labels.push(None, Arc::new(l));
            listed.push(case.labelled_slices);
        }
        for (t, l) in case.frame_labels {
            labels.push(Some(t), Arc::new(l));
            let ks = case.frame_slices.iter().find(|(f, _)| *f == t);
            listed.push(ks.map(|(_, ks)| ks.clone()));
        }
        for (i, ks) in listed.into_iter().enumerate() {
            labels = labels.with_listed(i, ks);
        }
        let mut doc = Document::new(case.id, layers, labels, case.table);
        doc.acdc = case.acdc;
        doc.warnings = case.warnings;
        doc.sources.folder = folder;
        doc
    }

    /// Record where the files came from (the loader).
    pub fn with_sources(mut self, sources: Sources) -> Document {
        self.sources = sources;
        self
    }

    /// Add loading notes.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Document {
        self.warnings.extend(warnings);
        self
    }

    /// Unique per opened case (a reopened file gets a new id).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Title (case id or file name).
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Images.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Image `i`.
    pub fn layer(&self, i: usize) -> Option<&Layer> {
        self.layers.get(i)
    }

    /// The label maps.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Label names and colours.
    pub fn table(&self) -> &LabelTable {
        &self.table
    }

    /// The prediction, if any.
    pub fn prediction(&self) -> Option<&Prediction> {
        self.prediction.as_ref()
    }

    /// ACDC metadata (ED/ES markers).
    pub fn acdc(&self) -> Option<&AcdcInfo> {
        self.acdc.as_ref()
    }

    /// Non-fatal notes from loading.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Where the files came from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Whether the labels changed since they were opened or saved.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The data revisions.
    pub fn revisions(&self) -> Revisions {
        self.rev
    }

    /// Number of frames of the first image.
    pub fn frames(&self) -> usize {
        self.layers.first().map_or(1, |l| l.volume.frames)
    }

    /// The frame to show first: ED for ACDC cases, else 0.
    pub fn start_frame(&self) -> usize {
        self.acdc.as_ref().map_or(0, AcdcInfo::ed_index)
    }

    /// The centre voxel of the first image (where the crosshair starts).
    pub fn center_mm(&self) -> [f64; 3] {
        self.layers
            .first()
            .map(|l| {
                let v = &l.volume;
                // A voxel centre, so each view starts on one whole slice.
                v.geometry.world_from_index(v.dims.map(|d| (d / 2) as f64))
            })
            .unwrap_or([0.0; 3])
    }

    /// Voxel counts per label id of the labels shown at `frame`.
    pub fn label_counts(&self, frame: usize) -> &[usize] {
        self.labels.counts_at(frame)
    }

    /// Check that a label map read from `path` lies on the images' grid.
    pub fn check_grid(&self, path: &Path, labels: &LabelVolume) -> Result<(), String> {
        let Some(first) = self.layers.first() else {
            return Err("the case has no image".into());
        };
        let image = self
            .sources
            .images
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(&first.name));
        crate::dataset::check_same_grid(
            &image,
            first.volume.dims,
            &first.volume.geometry,
            path,
            labels.dims,
            &labels.geometry,
        )
        .map_err(|e| e.to_string())
    }

    /// Replace the labels with a map read from `path` (Open labels…); it
    /// must lie on the images' grid. On a 4D image a 3D map labels frame
    /// `frame`. The table is kept when it names the map's ids, else a
    /// generic one is made.
    pub fn open_labels(&mut self, path: &Path, labels: Labels, frame: usize) -> Result<(), String> {
        let Some(map) = labels.at_frame(0).cloned() else {
            return Err(format!("{}: no label map", path.display()));
        };
        self.check_grid(path, &map)?;
        let frames = self.frames();
        if map.frames > 1 && map.frames != frames {
            return Err(format!(
                "{}: the labels have {} frames, the image {frames}",
                path.display(),
                map.frames
            ));
        }
        let present = labels.present();
        if present.iter().any(|id| self.table.name_of(*id).is_none()) {
            self.set_table(LabelTable::generic(present));
        }
        if frames > 1 && map.frames == 1 {
            // A 3D map on a cine labels the frame shown (as ACDC's ED/ES
            // files do), keeping the other frames' maps.
            let listed = labels.listed(0).map(<[usize]>::to_vec);
            self.labels.set_frame(frame, labels);
            if let Some(i) = self.labels.index_at(frame) {
                match listed {
                    Some(ks) => self.marks.set_listed(i, 1, &ks),
                    None => self.marks.set_whole(i),
                }
            }
        } else {
            self.marks = marks_of(&labels);
            self.labels = labels;
            self.sources.labels = Some(path.to_path_buf());
        }
        self.history.clear();
        self.open_step = None;
        self.dirty_box = None;
        self.dirty = false;
        self.rev.labels += 1;
        self.rev.maps += 1;
        Ok(())
    }

    /// Put back labels recovered from an autosave: they replace the labels
    /// and stay unsaved (the user has not saved them anywhere yet).
    pub fn restore_labels(&mut self, labels: Labels, table: LabelTable) -> Result<(), String> {
        if let Some(map) = labels
            .at_frame(0)
            .or_else(|| labels.maps().next().map(|(_, m)| m))
        {
            self.check_grid(Path::new("the autosave"), map)?;
        }
        self.marks = marks_of(&labels);
        self.labels = labels;
        self.history.clear();
        self.open_step = None;
        self.dirty_box = None;
        if !table.labels.is_empty() {
            self.set_table(table);
        }
        self.dirty = true;
        self.rev.labels += 1;
        self.rev.maps += 1;
        Ok(())
    }

    /// How slice `z` (along the models' slicing axis) of the labels shown
    /// at `frame` counts as labelled.
    pub fn slice_state(&self, frame: usize, z: usize) -> SliceState {
        self.map_at(frame)
            .map_or(SliceState::Unlabelled, |(i, t)| self.marks.state(i, t, z))
    }

    /// The labelled slices of the labels shown at `frame`, sorted.
    pub fn labelled_slices(&self, frame: usize) -> Vec<usize> {
        let nz = self.layers.first().map_or(0, |l| l.volume.dims[2]);
        self.map_at(frame)
            .map_or_else(Vec::new, |(i, t)| self.marks.labelled(i, t, nz))
    }

    /// The labelled slices of the labels shown at `frame` when they are
    /// partly labelled; `None` when labelled throughout (or absent).
    pub fn slice_list(&self, frame: usize) -> Option<Vec<usize>> {
        let (i, _) = self.map_at(frame)?;
        (!self.marks.is_whole(i)).then(|| self.labelled_slices(frame))
    }

    /// Whether some map is labelled on some slices only (painted or
    /// marked, not read whole from a file).
    pub fn is_partly_labelled(&self) -> bool {
        (0..self.labels.maps().count()).any(|i| !self.marks.is_whole(i))
    }

    /// Per map (in [`Labels::maps`] order), the labelled slices to save
    /// beside it as `.slices.json` (all its frames together); `None` for a
    /// map labelled throughout.
    pub fn slice_lists(&self) -> Vec<Option<Vec<usize>>> {
        let nz = self.layers.first().map_or(0, |l| l.volume.dims[2]);
        self.labels
            .maps()
            .enumerate()
            .map(|(i, (_, map))| {
                (!self.marks.is_whole(i)).then(|| {
                    let mut all: BTreeSet<usize> = BTreeSet::new();
                    for t in 0..map.frames.max(1) {
                        all.extend(self.marks.labelled(i, t, nz));
                    }
                    all.into_iter().collect()
                })
            })
            .collect()
    }

    /// Mark slice `z` of the labels at `frame` done ("labelled, even where
    /// it is background"), or take the mark back (the D key). An image
    /// without labels gets an empty map. Returns whether it is marked now.
    pub fn toggle_slice_done(&mut self, frame: usize, z: usize) -> Option<bool> {
        self.end_edit();
        let index = self.paintable_map(frame)?;
        let t = self.labels.map_frame(index, frame);
        if self.marks.is_whole(index) {
            // A file labelled every slice: D cannot add to that.
            return Some(true);
        }
        let marked = self.marks.toggle_done(index, t, z);
        // Undoable like a stroke: Ctrl+Z after D takes the mark back.
        self.history.push(edit::Step::Mark {
            map: index,
            frame: t,
            z,
        });
        self.dirty = true;
        self.rev.labels += 1;
        Some(marked)
    }

    /// The paths that identify this case's image (the image files, else the
    /// dataset folder): the key of its autosave.
    pub fn identity(&self) -> Vec<PathBuf> {
        if self.sources.images.is_empty() {
            self.sources.folder.iter().cloned().collect()
        } else {
            self.sources.images.clone()
        }
    }

    /// Install a prediction; it must lie on the images' grid. Ids the table
    /// does not name get generic entries.
    pub fn set_prediction(&mut self, prediction: Prediction) -> Result<(), String> {
        self.check_grid(Path::new(&prediction.source), &prediction.labels)?;
        if self.table.labels.is_empty() {
            self.set_table(LabelTable::for_ids(&prediction.present));
        }
        self.prediction = Some(prediction);
        self.rev.prediction += 1;
        Ok(())
    }

    /// Replace the label table.
    pub fn set_table(&mut self, table: LabelTable) {
        self.table = table;
        self.rev.table += 1;
    }

    /// The user chose to drop the unsaved changes (the case is closing).
    pub fn discard_changes(&mut self) {
        self.dirty = false;
    }

    /// The labels were written to `path`: it is where Save writes next, and
    /// they are no longer unsaved.
    pub fn mark_saved(&mut self, path: &Path) {
        self.sources.labels = Some(path.to_path_buf());
        self.dirty = false;
    }

    /// RGBA palette for the GPU: table colours, alpha 0 for `hidden` or
    /// unlisted ids.
    pub fn palette(&self, hidden: &BTreeSet<u16>) -> Vec<[u8; 4]> {
        let max = self
            .table
            .labels
            .iter()
            .map(|l| l.id)
            .max()
            .unwrap_or(0)
            .max(255);
        let mut out = vec![[0u8; 4]; usize::from(max) + 1];
        for id in 1..=max {
            let c = self
                .table
                .labels
                .iter()
                .find(|l| l.id == id)
                .map_or(crate::volume::palette(id), |l| l.color);
            if !hidden.contains(&id) {
                out[usize::from(id)] = [c[0], c[1], c[2], 255];
            }
        }
        out
    }
}
