//! Annotation tools, pure: no GUI, GPU or ML imports (the dependency check
//! in `scripts/test.sh` enforces it). The app only turns pointer input into
//! calls here.
//!
//! - [`brush`]: which voxels a round brush covers, radius in mm (so a 5 mm
//!   brush is round on 0.7×0.7×3 mm voxels), in the view's plane or as a
//!   ball, with consecutive pointer samples joined as a capsule so a fast
//!   stroke leaves no gaps.
//! - [`edit`]: what a paint operation may change (draw-over mode, an
//!   intensity range, locked labels) and the [`edit::LabelEdit`] that
//!   records only the voxels it changed, so it can be undone and redone.
//! - [`fill`]: flood fill bounded by intensity and distance, 2D or 3D.
//! - [`interpolate`]: fill between annotated slices (signed distances).
//! - [`polygon`]: a closed outline in a slice, filled.
//! - [`accept`]: a prediction into the labels, whole or one structure.
//! - [`history`]: undo/redo bounded by bytes, never by a small count.
//! - [`slices`]: which slices are labelled, and their `.slices.json`.

pub mod accept;
pub mod brush;
pub mod edit;
pub mod fill;
pub mod history;
pub mod interpolate;
pub mod polygon;
pub mod slices;

pub use brush::{Brush, BrushShape};
pub use edit::{DrawOver, LabelEdit, PaintRule, Painter};
pub use history::History;
