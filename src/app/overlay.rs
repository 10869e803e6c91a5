//! The label maps the overlay shows: the labels, the prediction, or the
//! difference between them (false positives and negatives), and the
//! difference map's palette. The difference map is built by a job in
//! [`evaluation`](super::evaluation) for every frame at once.

use super::document::Document;
use super::evaluation::EvalState;
use super::jobs::CancelToken;
use super::settings::Overlay;
use crate::volume::LabelVolume;
use std::sync::Arc;

/// Per voxel and frame: 1 = false positive (predicted, not in the labels),
/// 2 = false negative, else 0.
pub fn difference_map(
    labels: &super::document::Labels,
    pred: &LabelVolume,
    frames: usize,
    cancel: &CancelToken,
) -> Result<LabelVolume, String> {
    let frames = frames.max(1);
    let mut d = LabelVolume::zeros(pred.dims, frames, pred.geometry.clone());
    let n = d.frame_len();
    for t in 0..frames {
        cancel.check("difference overlay")?;
        let gt = labels.at_frame(t);
        let g_off = gt.map(|g| g.frame_offset(t.min(g.frames - 1)));
        let p_off = pred.frame_offset(t.min(pred.frames - 1));
        for i in 0..n {
            let pv = pred.get(p_off + i);
            let gv = match (gt, g_off) {
                (Some(g), Some(o)) => g.get(o + i),
                _ => 0,
            };
            if pv != gv {
                d.set(t * n + i, if pv != 0 { 1 } else { 2 });
            }
        }
    }
    Ok(d)
}

/// The label map the overlay shows at `frame` and whether it is the
/// difference map (whose frames follow the case's).
pub fn shown_labels(
    doc: &Document,
    eval: &EvalState,
    overlay: Overlay,
    frame: usize,
) -> Option<Arc<LabelVolume>> {
    let gt = doc.labels().at_frame(frame).cloned();
    match (overlay, doc.prediction()) {
        (Overlay::Prediction, Some(p)) => Some(p.labels.clone()),
        (Overlay::Difference, Some(_)) => eval.difference(doc).cloned(),
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
