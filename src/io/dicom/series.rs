//! From images to series and from a series to a volume's layout.
//!
//! Grouping: by SeriesInstanceUID, then within a series by image size and
//! orientation, with localizers apart, so a scout or a reformatted plane
//! never gets stacked into the volume (the largest part keeps the UID, the
//! others get `UID#2`, `UID#3` …).
//!
//! Planning (dcm2niix is the reference for the choices): images are sorted
//! by their position along the slice normal (ImagePositionPatient · (row ×
//! column cosines)), never by InstanceNumber or file name; images sharing a
//! position are time points (a 4D series, ordered by temporal position or
//! trigger time). The slice axis of the affine is (last − first position) /
//! (n − 1): that places the first and last slice exactly, averages rounding
//! jitter (noted), and shears the affine when the gantry was tilted. Real
//! gaps or uneven steps are warned about by name, and the volume is shown as
//! it is.

use super::meta::{FileInfo, FrameInfo};
use crate::io::rawdata;
use crate::volume::Geometry;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One 2D image of a series.
#[derive(Debug, Clone)]
pub(super) struct Image {
    pub file: Arc<FileInfo>,
    pub frame: FrameInfo,
}

/// A series found in the files: what `ume info DIR` lists and what can be
/// loaded as one volume.
#[derive(Debug, Clone)]
pub struct Series {
    /// SeriesInstanceUID, with `#k` for a part set apart from it.
    pub id: String,
    /// SeriesDescription.
    pub description: String,
    /// Modality (CT, MR …).
    pub modality: String,
    /// SeriesNumber.
    pub number: Option<i64>,
    /// Image width and height in pixels.
    pub cols: usize,
    /// Image height.
    pub rows: usize,
    /// 2D images (slices × time points).
    pub images: usize,
    /// Number of files.
    pub files: usize,
    /// Why this part was set apart from its series, if it was.
    pub note: Option<String>,
    pub(super) parts: Vec<Image>,
    /// Warnings for whoever opens it: parts set apart, unreadable files.
    pub(super) notes: Vec<String>,
}

impl Series {
    /// Whether one of this series' images comes from `path`.
    pub fn contains(&self, path: &std::path::Path) -> bool {
        self.parts.iter().any(|i| i.file.path == path)
    }

    /// The volume's shape in NIfTI order (columns, rows, slices[, time
    /// points]) and the layout's warnings, from the headers alone.
    pub fn shape(&self) -> Result<(Vec<usize>, Vec<String>), String> {
        let p = plan(self)?;
        let mut shape = p.dims.to_vec();
        if p.frames > 1 {
            shape.push(p.frames);
        }
        Ok((shape, p.warnings))
    }
}

/// Unit normal of a plane from its row and column cosines.
pub(super) fn normal(o: &[f64; 6]) -> [f64; 3] {
    let (r, c) = ([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
    let n = [
        r[1] * c[2] - r[2] * c[1],
        r[2] * c[0] - r[0] * c[2],
        r[0] * c[1] - r[1] * c[0],
    ];
    let len = dot(&n, &n).sqrt();
    if len > 0.0 {
        n.map(|x| x / len)
    } else {
        [0.0, 0.0, 1.0]
    }
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Group images into series (see the module docs), largest first within a
/// UID, series in SeriesNumber order.
pub(super) fn group(files: Vec<FileInfo>) -> Vec<Series> {
    type Key = (String, usize, usize, Option<[i64; 6]>, bool);
    let mut by_key: BTreeMap<Key, Vec<Image>> = BTreeMap::new();
    for f in files {
        let f = Arc::new(f);
        for fr in &f.frames {
            let o = fr.orientation.map(|o| o.map(|x| (x * 1e3).round() as i64));
            let key = (f.series_uid.clone(), f.rows, f.cols, o, f.localizer);
            by_key.entry(key).or_default().push(Image {
                file: f.clone(),
                frame: fr.clone(),
            });
        }
    }
    let mut by_uid: BTreeMap<String, Vec<(Key, Vec<Image>)>> = BTreeMap::new();
    for (k, v) in by_key {
        by_uid.entry(k.0.clone()).or_default().push((k, v));
    }
    let mut out = Vec::new();
    for (uid, mut parts) in by_uid {
        parts.sort_by_key(|(k, v)| (k.4, std::cmp::Reverse(v.len())));
        let main_key = parts[0].0.clone();
        let mut group: Vec<Series> = Vec::new();
        for (i, (k, images)) in parts.into_iter().enumerate() {
            let note = (i > 0).then(|| {
                if k.4 {
                    "localizer (scout) images".to_string()
                } else if (k.1, k.2) != (main_key.1, main_key.2) {
                    format!("another image size ({} × {})", k.2, k.1)
                } else {
                    "another orientation".to_string()
                }
            });
            let first = images[0].file.clone();
            let mut paths: Vec<&std::path::Path> = images.iter().map(|i| &*i.file.path).collect();
            paths.dedup();
            group.push(Series {
                id: if i == 0 {
                    uid.clone()
                } else {
                    format!("{uid}#{}", i + 1)
                },
                description: first.description.clone(),
                modality: first.modality.clone(),
                number: first.series_number,
                cols: k.2,
                rows: k.1,
                images: images.len(),
                files: paths.len(),
                note,
                parts: images,
                notes: Vec::new(),
            });
        }
        let notes: Vec<String> = group
            .iter()
            .skip(1)
            .map(|s| {
                format!(
                    "{} image(s) of this series were set apart as {} ({})",
                    s.images,
                    s.id,
                    s.note.as_deref().unwrap_or("")
                )
            })
            .collect();
        group[0].notes = notes;
        out.extend(group);
    }
    out.sort_by(|a, b| (a.number, &a.id).cmp(&(b.number, &b.id)));
    out
}

/// How a series' images fill a volume.
#[derive(Debug)]
pub(super) struct Plan {
    /// Images in volume order: slice fastest, then time point.
    pub order: Vec<Image>,
    /// Columns, rows, slices.
    pub dims: [usize; 3],
    /// Time points.
    pub frames: usize,
    pub geometry: Geometry,
    pub warnings: Vec<String>,
}

/// Lay out a series (see the module docs).
pub(super) fn plan(series: &Series) -> Result<Plan, String> {
    let images = &series.parts;
    let mut warnings = series.notes.clone();
    let first = &images[0].frame;
    let orientation = first.orientation.unwrap_or_else(|| {
        warnings.push("no ImageOrientationPatient: rows taken as L→R, columns as A→P".into());
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    });
    let spacing = first.spacing.unwrap_or_else(|| {
        warnings.push("no PixelSpacing: pixels taken as 1 mm".into());
        [1.0, 1.0]
    });
    let n = normal(&orientation);
    let all_placed = images.iter().all(|i| i.frame.position.is_some());
    let (order, slices, frames, slice_vec, origin) = if all_placed {
        by_position(images, &n, &mut warnings)?
    } else {
        let mut order = images.to_vec();
        order.sort_by_key(|i| (i.frame.instance, i.file.path.clone(), i.frame.index));
        if order.len() > 1 {
            warnings.push(format!(
                "no ImagePositionPatient: {} images stacked by InstanceNumber and frame order",
                order.len()
            ));
        }
        let step = first.thickness.unwrap_or(1.0);
        let origin = first.position.unwrap_or([0.0; 3]);
        let count = order.len();
        (order, count, 1, n.map(|x| x * step), origin)
    };
    let row = [orientation[0], orientation[1], orientation[2]];
    let col = [orientation[3], orientation[4], orientation[5]];
    // Voxel i runs along a row (spacing between columns), j down a column.
    let axes = [
        row.map(|x| x * spacing[1]),
        col.map(|x| x * spacing[0]),
        slice_vec,
    ];
    let mut geometry = rawdata::geometry(axes, origin, false);
    if frames > 1 {
        geometry.time_step = time_step(&order, slices, frames);
    }
    Ok(Plan {
        order,
        dims: [series.cols, series.rows, slices],
        frames,
        geometry,
        warnings,
    })
}

type Layout = (Vec<Image>, usize, usize, [f64; 3], [f64; 3]);

/// Sort placed images along the normal; images at one position are time
/// points.
fn by_position(
    images: &[Image],
    n: &[f64; 3],
    warnings: &mut Vec<String>,
) -> Result<Layout, String> {
    let pos = |i: &Image| i.frame.position.unwrap_or([0.0; 3]);
    let mut sorted: Vec<(f64, &Image)> = images.iter().map(|i| (dot(&pos(i), n), i)).collect();
    sorted.sort_by(|a, b| {
        a.0.total_cmp(&b.0).then_with(|| {
            let t = |i: &Image| i.frame.temporal.or(i.frame.trigger_ms).unwrap_or(0.0);
            t(a.1)
                .total_cmp(&t(b.1))
                .then(a.1.frame.instance.cmp(&b.1.frame.instance))
        })
    });
    // Positions closer than 0.01 mm are one slice position.
    let mut stacks: Vec<(f64, Vec<&Image>)> = Vec::new();
    for (d, img) in sorted {
        match stacks.last_mut() {
            Some((d0, v)) if (d - *d0).abs() < 0.01 => v.push(img),
            _ => stacks.push((d, vec![img])),
        }
    }
    let frames = stacks[0].1.len();
    if let Some(bad) = stacks.iter().find(|s| s.1.len() != frames) {
        let (lo, hi) = stacks.iter().fold((usize::MAX, 0), |(lo, hi), s| {
            (lo.min(s.1.len()), hi.max(s.1.len()))
        });
        return Err(format!(
            "slice positions hold between {lo} and {hi} images (e.g. {} at {:.2} mm along the normal): \
             not a regular series (duplicate files or missing time points?)",
            bad.1.len(),
            bad.0
        ));
    }
    let slices = stacks.len();
    let origin = pos(stacks[0].1[0]);
    let slice_vec = if slices > 1 {
        let last = pos(stacks[slices - 1].1[0]);
        let steps: Vec<f64> = stacks.windows(2).map(|w| w[1].0 - w[0].0).collect();
        spacing_notes(&steps, &stacks, warnings);
        std::array::from_fn(|k| (last[k] - origin[k]) / (slices - 1) as f64)
    } else {
        let step = stacks[0].1[0].frame.thickness.unwrap_or(1.0);
        n.map(|x| x * step)
    };
    let along = dot(&slice_vec, n);
    let len = dot(&slice_vec, &slice_vec).sqrt();
    if slices > 1 && len > 0.0 {
        let tilt = (along / len).clamp(-1.0, 1.0).acos().to_degrees();
        if tilt > 0.05 {
            warnings.push(format!(
                "gantry tilt: slices are offset {tilt:.2}° from the plane normal; \
                 the affine is sheared to place them where they were acquired"
            ));
        }
    }
    let order = (0..frames)
        .flat_map(|t| stacks.iter().map(move |s| s.1[t].clone()))
        .collect();
    Ok((order, slices, frames, slice_vec, origin))
}

/// Warn about uneven slice steps: rounding jitter gets a note, real gaps a
/// warning naming the slices.
fn spacing_notes(steps: &[f64], stacks: &[(f64, Vec<&Image>)], warnings: &mut Vec<String>) {
    let mean = (stacks[stacks.len() - 1].0 - stacks[0].0) / steps.len() as f64;
    let (worst, dev) = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (i, (s - mean).abs()))
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
    let jitter = (0.02 * mean).max(0.11).min(0.4 * mean);
    if dev <= 1e-4 {
        return;
    }
    if dev <= jitter {
        warnings.push(format!(
            "slice positions jitter by up to {dev:.3} mm (rounded positions): using the mean spacing {mean:.4} mm"
        ));
    } else {
        warnings.push(format!(
            "uneven slice spacing: {:.3} mm between slices {} and {} where the mean is {mean:.3} mm \
             (a gap or missing slices?); the volume is shown as stacked, positions in between are off \
             by up to {:.3} mm",
            steps[worst],
            worst,
            worst + 1,
            dev
        ));
    }
}

/// Seconds between time points, from the trigger times of the first slice.
fn time_step(order: &[Image], slices: usize, frames: usize) -> Option<f64> {
    let first = order[0].frame.trigger_ms?;
    let last = order[(frames - 1) * slices].frame.trigger_ms?;
    let dt = (last - first) / (frames - 1) as f64 / 1000.0;
    (dt > 0.0).then_some(dt)
}
