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
//! - [`history`]: undo/redo bounded by bytes, never by a small count.

pub mod brush;
pub mod edit;
pub mod history;

pub use brush::{Brush, BrushShape};
pub use edit::{DrawOver, LabelEdit, PaintRule, Painter};
pub use history::History;
