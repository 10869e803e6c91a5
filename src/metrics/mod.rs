//! Segmentation metrics per structure, as MONAI defines them: Dice, IoU,
//! HD95, NSD, ASSD, volumes — spacing-aware, background excluded.
//!
//! Overlap metrics for all labels come from one pass over the voxels that
//! fills a confusion matrix, instead of one pass per structure (the seed
//! prototype's loop). Surface distances are computed per structure inside the
//! bounding box of its two masks with an exact Euclidean distance transform
//! in millimetres.
//!
//! Empty-mask policy (documented, tested):
//! - structure absent from both prediction and ground truth: every metric is
//!   NaN ("not applicable") and the structure is left out of means;
//! - present in only one of them: Dice, IoU and NSD are 0, HD95 and ASSD
//!   are +∞ (JSON `"inf"`; NaN is `null`), and the structure counts in
//!   means as Dice 0.

pub mod confusion;
pub mod edt;
pub mod json;

pub use confusion::{Confusion, LIVE_IDS};
pub use json::{json_float, json_value, to_json};

pub use edt::{squared_edt, surface};

use crate::volume::{LabelTable, LabelVolume};

/// Errors evaluating a pair of label maps.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The maps are not on one grid.
    #[error("prediction and ground truth are not on the same grid: {0}")]
    GridMismatch(String),
}

/// Metrics of one structure.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StructureMetrics {
    /// Label id.
    pub label: u16,
    /// Name from the label table ("label N" if unlisted).
    pub name: String,
    /// 2|P∩G| / (|P| + |G|).
    #[serde(serialize_with = "json::json_float")]
    pub dice: f64,
    /// |P∩G| / |P∪G|.
    #[serde(serialize_with = "json::json_float")]
    pub iou: f64,
    /// Symmetric 95th-percentile Hausdorff distance of the surfaces, mm.
    #[serde(serialize_with = "json::json_float")]
    pub hd95_mm: f64,
    /// Normalised surface Dice at the tolerance.
    #[serde(serialize_with = "json::json_float")]
    pub nsd: f64,
    /// Average symmetric surface distance, mm.
    #[serde(serialize_with = "json::json_float")]
    pub assd_mm: f64,
    /// Ground-truth volume, mL.
    #[serde(serialize_with = "json::json_float")]
    pub volume_gt_ml: f64,
    /// Predicted volume, mL.
    #[serde(serialize_with = "json::json_float")]
    pub volume_pred_ml: f64,
    /// Predicted minus ground-truth volume, mL.
    #[serde(serialize_with = "json::json_float")]
    pub volume_diff_ml: f64,
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Structures to report (`None`: every id present in either map).
    pub labels: Option<Vec<u16>>,
    /// NSD tolerance in mm.
    pub nsd_tolerance_mm: f64,
    /// Compute surface distances (HD95, NSD, ASSD); off for overlap only.
    pub distances: bool,
}

impl Default for EvalOptions {
    fn default() -> EvalOptions {
        EvalOptions {
            labels: None,
            nsd_tolerance_mm: 1.0,
            distances: true,
        }
    }
}

/// Result for one pair of maps.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// Per structure, by id.
    pub structures: Vec<StructureMetrics>,
    /// Mean Dice over structures present in either map.
    #[serde(serialize_with = "json::json_float")]
    pub mean_dice: f64,
}

/// Dice of each id by one pass per structure (the seed prototype's method),
/// kept for the benchmark that compares it with [`Confusion`].
pub fn per_structure_loop_dice(gt: &LabelVolume, pred: &LabelVolume, labels: &[u16]) -> Vec<f64> {
    labels
        .iter()
        .map(|&l| {
            let (mut inter, mut g, mut p) = (0u64, 0u64, 0u64);
            for i in 0..gt.len() {
                let (a, b) = (gt.get(i) == l, pred.get(i) == l);
                inter += u64::from(a && b);
                g += u64::from(a);
                p += u64::from(b);
            }
            if g + p == 0 {
                f64::NAN
            } else {
                2.0 * inter as f64 / (g + p) as f64
            }
        })
        .collect()
}

/// numpy's default (linear) percentile of unsorted values.
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (values.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
}

/// Bounding boxes (inclusive) of every id in either map, in one pass.
fn bounding_boxes(
    gt: &LabelVolume,
    pred: &LabelVolume,
    size: usize,
) -> Vec<Option<([usize; 3], [usize; 3])>> {
    let [nx, ny, nz] = gt.dims;
    let mut boxes: Vec<Option<([usize; 3], [usize; 3])>> = vec![None; size];
    let mut grow = |id: u16, c: [usize; 3]| {
        let b = &mut boxes[usize::from(id)];
        match b {
            None => *b = Some((c, c)),
            Some((lo, hi)) => {
                for a in 0..3 {
                    lo[a] = lo[a].min(c[a]);
                    hi[a] = hi[a].max(c[a]);
                }
            }
        }
    };
    let mut f = 0;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let (g, p) = (gt.get(f), pred.get(f));
                if g != 0 {
                    grow(g, [i, j, k]);
                }
                if p != 0 && p != g {
                    grow(p, [i, j, k]);
                }
                f += 1;
            }
        }
    }
    boxes
}

/// Surface distances of one structure inside its bounding box:
/// (pred → gt, gt → pred), in mm.
fn surface_distances(
    gt: &LabelVolume,
    pred: &LabelVolume,
    id: u16,
    bbox: ([usize; 3], [usize; 3]),
    spacing: [f64; 3],
) -> (Vec<f64>, Vec<f64>) {
    let [nx, ny, _] = gt.dims;
    // The box of both masks, padded by one voxel of background.
    let (lo, hi) = bbox;
    let bdims: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a] + 3);
    let n = bdims[0] * bdims[1] * bdims[2];
    let (mut g, mut p) = (vec![false; n], vec![false; n]);
    for k in lo[2]..=hi[2] {
        for j in lo[1]..=hi[1] {
            for i in lo[0]..=hi[0] {
                let f = i + nx * (j + ny * k);
                let b = (i - lo[0] + 1) + bdims[0] * ((j - lo[1] + 1) + bdims[1] * (k - lo[2] + 1));
                g[b] = gt.get(f) == id;
                p[b] = pred.get(f) == id;
            }
        }
    }
    let (gs, ps) = (surface(&g, bdims), surface(&p, bdims));
    let (dg, dp) = (
        squared_edt(&gs, bdims, spacing),
        squared_edt(&ps, bdims, spacing),
    );
    let pred_to_gt = (0..n).filter(|&i| ps[i]).map(|i| dg[i].sqrt()).collect();
    let gt_to_pred = (0..n).filter(|&i| gs[i]).map(|i| dp[i].sqrt()).collect();
    (pred_to_gt, gt_to_pred)
}

/// Evaluate a predicted label map against the ground truth.
pub fn evaluate(
    pred: &LabelVolume,
    gt: &LabelVolume,
    table: &LabelTable,
    opts: &EvalOptions,
) -> Result<Evaluation, MetricsError> {
    if pred.dims != gt.dims || pred.frames != gt.frames {
        return Err(MetricsError::GridMismatch(format!(
            "dims {:?}×{} vs {:?}×{}",
            pred.dims, pred.frames, gt.dims, gt.frames
        )));
    }
    let spacing = gt.geometry.spacing_mm();
    let voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
    let confusion = Confusion::new(gt, pred);
    let labels = opts.labels.clone().unwrap_or_else(|| confusion.present());
    let boxes = if opts.distances {
        bounding_boxes(gt, pred, confusion.size)
    } else {
        Vec::new()
    };
    let mut structures = Vec::with_capacity(labels.len());
    for id in labels {
        let (tp, fp, fn_) = confusion.tp_fp_fn(id);
        let (g, p) = (tp + fn_, tp + fp);
        let name = table
            .name_of(id)
            .map_or_else(|| format!("label {id}"), str::to_string);
        let (dice, iou) = if g + p == 0 {
            (f64::NAN, f64::NAN)
        } else {
            (
                2.0 * tp as f64 / (g + p) as f64,
                tp as f64 / (tp + fp + fn_) as f64,
            )
        };
        let (hd95, nsd, assd) = match (g, p, opts.distances) {
            (_, _, false) => (f64::NAN, f64::NAN, f64::NAN),
            (0, 0, _) => (f64::NAN, f64::NAN, f64::NAN),
            (0, _, _) | (_, 0, _) => (f64::INFINITY, 0.0, f64::INFINITY),
            _ => {
                let Some(bbox) = boxes.get(usize::from(id)).copied().flatten() else {
                    unreachable!("a structure present in a map has a bounding box")
                };
                let (mut pg, mut gp) = surface_distances(gt, pred, id, bbox, spacing);
                let tol = opts.nsd_tolerance_mm;
                let within = pg.iter().chain(&gp).filter(|&&d| d <= tol).count();
                let total = pg.len() + gp.len();
                let assd = pg.iter().chain(&gp).sum::<f64>() / total as f64;
                let hd = percentile(&mut pg, 95.0).max(percentile(&mut gp, 95.0));
                (hd, within as f64 / total as f64, assd)
            }
        };
        structures.push(StructureMetrics {
            label: id,
            name,
            dice,
            iou,
            hd95_mm: hd95,
            nsd,
            assd_mm: assd,
            volume_gt_ml: g as f64 * voxel_ml,
            volume_pred_ml: p as f64 * voxel_ml,
            volume_diff_ml: (p as f64 - g as f64) * voxel_ml,
        });
    }
    let finite: Vec<f64> = structures
        .iter()
        .map(|s| s.dice)
        .filter(|d| d.is_finite())
        .collect();
    let mean_dice = if finite.is_empty() {
        f64::NAN
    } else {
        finite.iter().sum::<f64>() / finite.len() as f64
    };
    Ok(Evaluation {
        structures,
        mean_dice,
    })
}

fn csv_num(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.is_infinite() {
        "inf".into()
    } else {
        format!("{x:.6}")
    }
}

/// A CSV table of (case, evaluation) rows, one line per structure; empty
/// cells for NaN ("not applicable"), `inf` for infinite distances.
pub fn csv(cases: &[(&str, &Evaluation)]) -> String {
    let mut out = String::from(
        "case,label,name,dice,iou,hd95_mm,nsd,assd_mm,volume_gt_ml,volume_pred_ml,volume_diff_ml\n",
    );
    for (case, e) in cases {
        let case = case.replace(',', ";");
        for s in &e.structures {
            let cells = [
                s.dice,
                s.iou,
                s.hd95_mm,
                s.nsd,
                s.assd_mm,
                s.volume_gt_ml,
                s.volume_pred_ml,
                s.volume_diff_ml,
            ]
            .map(csv_num);
            out.push_str(&format!(
                "{case},{},{},{}\n",
                s.label,
                s.name.replace(',', ";"),
                cells.join(",")
            ));
        }
    }
    out
}

/// Dice from voxel counts; NaN when the structure is in neither map (the
/// empty-mask policy of this module).
pub fn dice_from_counts(tp: u64, fp: u64, fn_: u64) -> f64 {
    let denom = 2 * tp + fp + fn_;
    if denom == 0 {
        f64::NAN
    } else {
        2.0 * tp as f64 / denom as f64
    }
}

/// Detection rate (seed 002): the share of values above each threshold
/// (0.1, 0.3, 0.5, 0.7), NaNs excluded.
pub fn detection_rates(dice: &[f64]) -> [f64; 4] {
    let valid: Vec<f64> = dice.iter().copied().filter(|d| d.is_finite()).collect();
    [0.1, 0.3, 0.5, 0.7].map(|t| {
        if valid.is_empty() {
            f64::NAN
        } else {
            valid.iter().filter(|&&d| d > t).count() as f64 / valid.len() as f64
        }
    })
}

/// Dice of one structure on every axial slice where the ground truth or the
/// prediction has it (for the per-slice detection rate of a single case).
pub fn slice_dice(gt: &LabelVolume, pred: &LabelVolume, id: u16) -> Vec<f64> {
    let [nx, ny, nz] = gt.dims;
    (0..nz)
        .filter_map(|k| {
            let (mut inter, mut g, mut p) = (0u64, 0u64, 0u64);
            for f in k * nx * ny..(k + 1) * nx * ny {
                let (a, b) = (gt.get(f) == id, pred.get(f) == id);
                inter += u64::from(a && b);
                g += u64::from(a);
                p += u64::from(b);
            }
            (g + p > 0).then(|| 2.0 * inter as f64 / (g + p) as f64)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // small fixtures index by axis
mod tests {
    use super::*;
    use crate::volume::{Geometry, LabelData};

    fn map(
        dims: [usize; 3],
        spacing: [f64; 3],
        f: impl Fn(usize, usize, usize) -> u8,
    ) -> LabelVolume {
        let mut d = Vec::new();
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    d.push(f(i, j, k));
                }
            }
        }
        let mut g = Geometry::identity();
        for a in 0..3 {
            g.world_from_voxel[a][a] = spacing[a];
        }
        LabelVolume {
            dims,
            frames: 1,
            geometry: g,
            data: LabelData::U8(d),
        }
    }

    #[test]
    fn hand_computed_overlap_and_volumes() {
        // GT: label 1 on x < 4 (4×2×1 = 8 voxels); pred: x in 2..6 (8 voxels); overlap 4.
        let gt = map([8, 2, 1], [1.0, 1.0, 2.0], |i, _, _| u8::from(i < 4));
        let pred = map([8, 2, 1], [1.0, 1.0, 2.0], |i, _, _| {
            u8::from((2..6).contains(&i))
        });
        let e = evaluate(&pred, &gt, &LabelTable::default(), &EvalOptions::default()).unwrap();
        let s = &e.structures[0];
        assert_eq!(s.dice, 0.5);
        assert_eq!(s.iou, 4.0 / 12.0);
        assert!((s.volume_gt_ml - 8.0 * 2.0 / 1000.0).abs() < 1e-12);
        assert_eq!(s.volume_diff_ml, 0.0);
        assert_eq!(s.name, "label 1");
    }

    #[test]
    fn hd95_is_symmetric_and_spacing_aware() {
        // Two one-voxel-thick planes 3 voxels apart along z with 2.5 mm slices:
        // every surface point is 7.5 mm from the other surface.
        let gt = map([4, 4, 8], [0.8, 0.8, 2.5], |_, _, k| u8::from(k == 2));
        let pred = map([4, 4, 8], [0.8, 0.8, 2.5], |_, _, k| u8::from(k == 5));
        let s = &evaluate(&pred, &gt, &LabelTable::default(), &EvalOptions::default())
            .unwrap()
            .structures[0];
        assert!((s.hd95_mm - 7.5).abs() < 1e-9, "{}", s.hd95_mm);
        assert!((s.assd_mm - 7.5).abs() < 1e-9);
        assert_eq!(s.nsd, 0.0);
        assert_eq!(s.dice, 0.0);
        // Identical masks: zero distance, NSD 1.
        let same = &evaluate(&gt, &gt, &LabelTable::default(), &EvalOptions::default())
            .unwrap()
            .structures[0];
        assert_eq!(
            (same.dice, same.hd95_mm, same.assd_mm, same.nsd),
            (1.0, 0.0, 0.0, 1.0)
        );
    }

    #[test]
    fn one_voxel_structures_and_touching_labels() {
        // GT: label 1 one voxel at (1,1,1); pred: same voxel; label 2 touches label 1.
        let gt = map([4, 4, 4], [1.0; 3], |i, j, k| {
            if (i, j, k) == (1, 1, 1) {
                1
            } else if (i, j, k) == (2, 1, 1) {
                2
            } else {
                0
            }
        });
        let pred = map([4, 4, 4], [1.0; 3], |i, j, k| {
            if (i, j, k) == (1, 1, 1) {
                1
            } else if (i, j, k) == (3, 1, 1) {
                2
            } else {
                0
            }
        });
        let e = evaluate(&pred, &gt, &LabelTable::default(), &EvalOptions::default()).unwrap();
        assert_eq!(e.structures[0].dice, 1.0);
        assert_eq!(e.structures[0].hd95_mm, 0.0);
        assert_eq!(e.structures[1].dice, 0.0);
        assert_eq!(e.structures[1].hd95_mm, 1.0);
        assert_eq!(e.mean_dice, 0.5);
    }

    #[test]
    fn empty_mask_policy() {
        let gt = map([4, 4, 2], [1.0; 3], |i, _, _| u8::from(i == 0));
        let pred = map([4, 4, 2], [1.0; 3], |_, _, _| 0);
        let opts = EvalOptions {
            labels: Some(vec![1, 2]),
            ..EvalOptions::default()
        };
        let e = evaluate(&pred, &gt, &LabelTable::default(), &opts).unwrap();
        let (missed, absent) = (&e.structures[0], &e.structures[1]);
        assert_eq!((missed.dice, missed.nsd), (0.0, 0.0));
        assert!(missed.hd95_mm.is_infinite() && missed.assd_mm.is_infinite());
        assert!(absent.dice.is_nan() && absent.hd95_mm.is_nan());
        assert_eq!(
            e.mean_dice, 0.0,
            "absent structures are left out of the mean"
        );
        let json = serde_json::to_value(missed).unwrap();
        assert_eq!(
            json["hd95_mm"], "inf",
            "a missed structure's HD95 is infinite"
        );
        assert_eq!(json["dice"], 0.0);
        let json = serde_json::to_value(absent).unwrap();
        assert!(
            json["hd95_mm"].is_null() && json["dice"].is_null(),
            "absent: does not apply"
        );
        assert_eq!(json_value(f64::NEG_INFINITY), "-inf");
        let other = map([4, 4, 3], [1.0; 3], |_, _, _| 0);
        assert!(evaluate(&other, &gt, &LabelTable::default(), &opts).is_err());
    }

    #[test]
    fn one_pass_equals_the_per_structure_loop() {
        let gt = map([9, 7, 5], [1.0; 3], |i, j, k| {
            ((i + 2 * j + 3 * k) % 5) as u8
        });
        let pred = map([9, 7, 5], [1.0; 3], |i, j, k| {
            ((i + 2 * j + 3 * k + usize::from(i % 3 == 0)) % 5) as u8
        });
        let e = evaluate(
            &pred,
            &gt,
            &LabelTable::default(),
            &EvalOptions {
                distances: false,
                ..EvalOptions::default()
            },
        )
        .unwrap();
        let ids: Vec<u16> = e.structures.iter().map(|s| s.label).collect();
        let loop_dice = per_structure_loop_dice(&gt, &pred, &ids);
        for (s, d) in e.structures.iter().zip(loop_dice) {
            assert!((s.dice - d).abs() < 1e-12);
        }
        assert_eq!(
            detection_rates(&[0.05, 0.2, 0.6, f64::NAN]),
            [2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 0.0]
        );
        assert!((percentile(&mut [1.0, 2.0, 3.0, 4.0], 95.0) - 3.85).abs() < 1e-12);
    }
}
