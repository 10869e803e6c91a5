//! The open case: images (modalities), labels and what the user set about
//! them. The `Document` is the only mutable owner of this state; views and
//! panels read it and change it through its methods.

use crate::dataset::{AcdcInfo, Case};
use crate::volume::{LabelTable, LabelVolume, Volume};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Current window (low, high) in scaled units.
    pub window: (f64, f64),
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
            window: auto_window,
        }
    }

    /// Map a scaled value to the [0, 1] range stored in the texture.
    pub fn normalise(&self, v: f64) -> f64 {
        let (lo, hi) = self.range;
        if hi > lo { (v - lo) / (hi - lo) } else { 0.0 }
    }
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

/// A label map, the frame it belongs to (`None`: every frame), and its voxel
/// counts per frame.
type LabelMapEntry = (Option<usize>, Arc<LabelVolume>, Vec<Vec<usize>>);

/// Labels: one map for 3D cases (or a 4D map following the frames), or
/// maps of some frames of a 4D case. Voxel counts are computed once per map
/// when it is added, not on every repaint of the labels panel.
#[derive(Clone, Default)]
pub struct Labels {
    /// (frame, labels, voxel counts per frame of the map); frame `None`
    /// means "every frame".
    maps: Vec<LabelMapEntry>,
}

impl Labels {
    /// Add a map for one frame, or for every frame (`None`).
    pub fn push(&mut self, frame: Option<usize>, map: Arc<LabelVolume>) {
        let counts = (0..map.frames).map(|t| map.frame_counts(t)).collect();
        self.maps.push((frame, map, counts));
    }

    /// Whether there are no label maps.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    fn entry(&self, frame: usize) -> Option<&LabelMapEntry> {
        self.maps
            .iter()
            .find(|(f, _, _)| *f == Some(frame))
            .or_else(|| self.maps.iter().find(|(f, _, _)| f.is_none()))
    }

    /// The map to show at `frame`.
    pub fn at_frame(&self, frame: usize) -> Option<&Arc<LabelVolume>> {
        self.entry(frame).map(|(_, l, _)| l)
    }

    /// Voxel counts per id of what is shown at `frame`.
    pub fn counts_at(&self, frame: usize) -> &[usize] {
        self.entry(frame)
            .and_then(|(_, l, c)| c.get(frame.min(l.frames.saturating_sub(1))))
            .map_or(&[], Vec::as_slice)
    }
}

/// The open case and the user's settings for it.
#[derive(Clone)]
pub struct Document {
    /// Title (case id or file name).
    pub title: String,
    /// Images.
    pub layers: Vec<Layer>,
    /// Index of the shown layer.
    pub active: usize,
    /// Label maps.
    pub labels: Labels,
    /// Label names and colours.
    pub table: LabelTable,
    /// Per-id visibility (missing = visible).
    pub hidden: BTreeMap<u16, bool>,
    /// Label overlay opacity.
    pub label_opacity: f32,
    /// Outline instead of filled labels.
    pub outline: bool,
    /// Current frame (4D).
    pub frame: usize,
    /// ACDC metadata (ED/ES markers).
    pub acdc: Option<AcdcInfo>,
    /// Crosshair in world mm.
    pub crosshair_mm: [f64; 3],
    /// Non-fatal notes from loading.
    pub warnings: Vec<String>,
    /// A predicted label map to compare with the labels (same grid).
    pub prediction: Option<Arc<LabelVolume>>,
    /// Which labels the overlay shows.
    pub overlay: super::evaluation::Overlay,
}

impl Document {
    /// A document from layers and labels; the crosshair starts at the
    /// volume's centre.
    pub fn new(title: String, layers: Vec<Layer>, labels: Labels, table: LabelTable) -> Document {
        let crosshair_mm = layers
            .first()
            .map(|l| {
                let v = &l.volume;
                v.geometry
                    .world_from_index(v.dims.map(|d| (d as f64 - 1.0) / 2.0))
            })
            .unwrap_or([0.0; 3]);
        Document {
            title,
            layers,
            active: 0,
            labels,
            table,
            hidden: BTreeMap::new(),
            label_opacity: 0.5,
            outline: false,
            frame: 0,
            acdc: None,
            crosshair_mm,
            warnings: Vec::new(),
            prediction: None,
            overlay: super::evaluation::Overlay::GroundTruth,
        }
    }

    /// From a loaded dataset case.
    pub fn from_case(case: Case) -> Document {
        let layers: Vec<Layer> = case
            .images
            .into_iter()
            .map(|(n, v)| Layer::new(n, Arc::new(v)))
            .collect();
        let mut labels = Labels::default();
        if let Some(l) = case.labels {
            labels.push(None, Arc::new(l));
        }
        for (t, l) in case.frame_labels {
            labels.push(Some(t), Arc::new(l));
        }
        let mut doc = Document::new(case.id, layers, labels, case.table);
        if let Some(info) = &case.acdc {
            doc.frame = info.ed_index();
        }
        doc.acdc = case.acdc;
        doc.warnings = case.warnings;
        doc
    }

    /// The shown layer.
    pub fn layer(&self) -> Option<&Layer> {
        self.layers.get(self.active)
    }

    /// Number of frames of the shown layer.
    pub fn frames(&self) -> usize {
        self.layer().map_or(1, |l| l.volume.frames)
    }

    /// Whether a label id is shown.
    pub fn is_visible(&self, id: u16) -> bool {
        !self.hidden.get(&id).copied().unwrap_or(false)
    }

    /// Voxel counts per label id of the labels shown at the current frame.
    pub fn label_counts(&self) -> &[usize] {
        self.labels.counts_at(self.frame)
    }

    /// RGBA palette for the GPU: table colours, alpha 0 for hidden or
    /// unlisted ids.
    pub fn palette(&self) -> Vec<[u8; 4]> {
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
            if self.is_visible(id) {
                out[usize::from(id)] = [c[0], c[1], c[2], 255];
            }
        }
        out
    }
}
