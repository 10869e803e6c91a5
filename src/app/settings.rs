//! What the user set about *how* things are shown and edited, kept apart
//! from the case's data (the [`Document`](super::Document)): undo and
//! saving cover the document, never these. Persisted through eframe's
//! storage (`serde(default)`, so a settings file from an older UME still
//! loads) and restored on the next start.

use crate::render::colormap::Colormap;
use crate::viewmath::Convention;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The key of the settings in eframe's storage.
pub const STORAGE_KEY: &str = "ume.settings";

/// Which labels the overlay shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Overlay {
    /// The ground truth (the user's labels).
    #[default]
    GroundTruth,
    /// The prediction.
    Prediction,
    /// False positives (red) and false negatives (blue).
    Difference,
}

/// Side-by-side modalities or the 2×2 layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Layout {
    /// Axial, 3D, coronal, sagittal.
    #[default]
    Grid,
    /// The axial slice of every modality side by side, one crosshair.
    Modalities,
}

/// 3D rendering mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RayMode {
    /// Maximum intensity projection.
    Mip,
    /// Direct volume rendering with an opacity ramp.
    #[default]
    Dvr,
}

/// What a left click in a slice view does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Tool {
    /// Move the crosshair (navigate).
    #[default]
    Crosshair,
    /// Paint the active label.
    Brush,
    /// Paint background.
    Eraser,
    /// Flood fill.
    Fill,
    /// Closed outline, filled on release.
    Polygon,
}

impl Tool {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Crosshair => "Crosshair",
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Polygon => "Polygon",
        }
    }
}

/// Which labels painting may overwrite (ITK-SNAP's draw-over mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DrawOver {
    /// Any label.
    #[default]
    All,
    /// Background only.
    Background,
    /// Only this label.
    Label(u16),
}

impl DrawOver {
    /// The annotation core's rule.
    pub fn rule(self) -> crate::annotation::DrawOver {
        match self {
            DrawOver::All => crate::annotation::DrawOver::All,
            DrawOver::Background => crate::annotation::DrawOver::Background,
            DrawOver::Label(l) => crate::annotation::DrawOver::Label(l),
        }
    }
}

/// A recently opened case: what was opened and the labels opened onto it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    /// Image files, or one dataset folder.
    pub paths: Vec<PathBuf>,
    /// The label map that was open on them.
    #[serde(default)]
    pub labels: Option<PathBuf>,
}

/// Smallest and largest brush radius.
pub const BRUSH_RANGE_MM: (f64, f64) = (0.5, 100.0);

/// Display and tool settings, persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Intensity colormap.
    pub colormap: Colormap,
    /// Nearest-voxel (true) or linear sampling.
    pub nearest: bool,
    /// Which labels the overlay shows.
    pub overlay: Overlay,
    /// Show the label overlay at all.
    pub show_labels: bool,
    /// Label overlay opacity.
    pub label_opacity: f32,
    /// Outline instead of filled labels.
    pub outline: bool,
    /// Label ids hidden from the overlay.
    pub hidden: BTreeSet<u16>,
    /// Views layout.
    pub layout: Layout,
    /// Left-right convention.
    pub convention: Convention,
    /// 3D mode.
    pub ray_mode: RayMode,
    /// DVR opacity scale.
    pub volume_opacity: f32,
    /// Clip the 3D view by the crosshair planes (x, y, z).
    pub clip: [bool; 3],
    /// Left-click tool in slice views.
    pub tool: Tool,
    /// Brush radius.
    pub brush_radius_mm: f64,
    /// 3D brush (a ball) instead of a disc in the view's slice.
    pub brush_ball: bool,
    /// The label id the brush paints.
    pub active_label: u16,
    /// What painting and filling may overwrite.
    pub draw_over: DrawOver,
    /// Paint and fill only where the image value lies in [low, high]
    /// (values of the open case's image: not persisted).
    #[serde(skip)]
    pub paint_range: Option<(f64, f64)>,
    /// A fill reaches at most this far from the click, mm.
    pub fill_max_mm: Option<f64>,
    /// Labels nothing may change (ids of the open case: not persisted).
    #[serde(skip)]
    pub locked: BTreeSet<u16>,
    /// Memory the undo history may hold, MB (oldest steps go first).
    pub undo_budget_mb: usize,
    /// Cine speed.
    pub cine_fps: f32,
    /// Window (low, high) per layer of the open case: display state, reset
    /// to each layer's auto window when a case opens, so not persisted.
    #[serde(skip)]
    pub windows: Vec<(f64, f64)>,
    /// Recently opened cases, newest first.
    pub recent: Vec<Recent>,
    /// Fine-tuned models saved by the app (shown in the model picker).
    pub models: Vec<PathBuf>,
    /// The folder the last export or save went to.
    pub last_folder: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            colormap: Colormap::Gray,
            nearest: false,
            overlay: Overlay::GroundTruth,
            show_labels: true,
            label_opacity: 0.5,
            outline: false,
            hidden: BTreeSet::new(),
            layout: Layout::Grid,
            convention: Convention::Radiological,
            ray_mode: RayMode::Dvr,
            volume_opacity: 4.0,
            clip: [false; 3],
            tool: Tool::Crosshair,
            brush_radius_mm: 3.0,
            brush_ball: false,
            active_label: 1,
            draw_over: DrawOver::All,
            paint_range: None,
            fill_max_mm: None,
            locked: BTreeSet::new(),
            undo_budget_mb: 512,
            cine_fps: 15.0,
            windows: Vec::new(),
            recent: Vec::new(),
            models: Vec::new(),
            last_folder: None,
        }
    }
}

impl Settings {
    /// The paint rule of the brush (`erase`: write background).
    pub fn paint_rule(&self, erase: bool) -> crate::annotation::PaintRule {
        crate::annotation::PaintRule {
            value: if erase { 0 } else { self.active_label },
            draw_over: self.draw_over.rule(),
            intensity: self.paint_range,
            locked: self.locked.clone(),
        }
    }

    /// Whether a label id is shown.
    pub fn is_visible(&self, id: u16) -> bool {
        !self.hidden.contains(&id)
    }

    /// Show or hide a label id.
    pub fn set_visible(&mut self, id: u16, visible: bool) {
        if visible {
            self.hidden.remove(&id);
        } else {
            self.hidden.insert(id);
        }
    }

    /// Grow (factor > 1) or shrink the brush, within [`BRUSH_RANGE_MM`].
    pub fn scale_brush(&mut self, factor: f64) {
        self.brush_radius_mm =
            (self.brush_radius_mm * factor).clamp(BRUSH_RANGE_MM.0, BRUSH_RANGE_MM.1);
    }

    /// Put a case first in the recent list (at most ten; gone files are
    /// dropped when the list is shown).
    pub fn remember(&mut self, entry: Recent) {
        let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let entry = Recent {
            paths: entry.paths.iter().map(canon).collect(),
            labels: entry.labels.as_ref().map(canon),
        };
        self.recent.retain(|r| r.paths != entry.paths);
        self.recent.insert(0, entry);
        self.recent.truncate(10);
    }

    /// Remember a fine-tuned model folder.
    pub fn remember_model(&mut self, dir: PathBuf) {
        self.models.retain(|m| m != &dir);
        self.models.insert(0, dir);
        self.models.truncate(20);
    }

    /// Read from eframe's storage (defaults when absent or unreadable).
    pub fn load(storage: &dyn eframe::Storage) -> Settings {
        storage
            .get_string(STORAGE_KEY)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    /// Write into eframe's storage (eframe flushes it to disk).
    pub fn store(&self, storage: &mut dyn eframe::Storage) {
        if let Ok(s) = serde_json::to_string(self) {
            storage.set_string(STORAGE_KEY, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Mem(HashMap<String, String>);

    impl eframe::Storage for Mem {
        fn get_string(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
        fn set_string(&mut self, key: &str, value: String) {
            self.0.insert(key.into(), value);
        }
        fn remove_string(&mut self, key: &str) {
            self.0.remove(key);
        }
        fn flush(&mut self) {}
    }

    #[test]
    fn settings_round_trip_and_old_files_load() {
        let mut s = Settings {
            tool: Tool::Brush,
            colormap: Colormap::ALL[1],
            windows: vec![(1.0, 2.0)],
            ..Settings::default()
        };
        s.set_visible(3, false);
        s.scale_brush(1e9);
        s.remember_model(PathBuf::from("/models/a"));
        let mut m = Mem::default();
        s.store(&mut m);
        let back = Settings::load(&m);
        assert_eq!(back.windows, Vec::new(), "windows belong to the open case");
        assert_eq!(
            back,
            Settings {
                windows: Vec::new(),
                ..s
            }
        );
        assert_eq!(back.brush_radius_mm, BRUSH_RANGE_MM.1);
        eframe::Storage::set_string(
            &mut m,
            STORAGE_KEY,
            r#"{"tool":"Eraser","future_field":1}"#.into(),
        );
        let old = Settings::load(&m);
        assert_eq!(old.tool, Tool::Eraser);
        assert_eq!(old.cine_fps, Settings::default().cine_fps);
    }
}
