//! `ume info`: what a file or dataset folder holds.

use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::path::Path;

use crate::dataset::{self, LabelSource};
use crate::io::dicom;
use crate::volume::{Stats, Volume};

/// Describe `path` (a file or a folder), as text or JSON.
pub(super) fn run(
    path: &Path,
    as_json: bool,
    at: &[Vec<usize>],
    series: Option<&str>,
) -> Result<()> {
    if (path.is_dir() && dicom::folder_has_dicom(path))
        || (series.is_some() && dicom::is_dicom_file(path))
    {
        let scan = dicom::scan(&[path.to_path_buf()]);
        if series.is_none() && scan.series.len() != 1 {
            return list_series(path, &scan, as_json);
        }
        let s = scan.pick(path, series)?;
        let v = dicom::load_series(path, s)?;
        return describe(path, &v, as_json, at);
    }
    if path.is_dir() {
        if !at.is_empty() {
            bail!("{}: --at needs an image file, not a folder", path.display());
        }
        return folder(path, as_json);
    }
    let v = crate::io::load(path)?;
    describe(path, &v, as_json, at)
}

/// Print what a loaded image holds, and its values at `at`.
fn describe(path: &Path, v: &Volume, as_json: bool, at: &[Vec<usize>]) -> Result<()> {
    let mut samples = Vec::new();
    for index in at {
        let Some(flat) = v.flat_index_of(index) else {
            bail!(
                "{}: index {index:?} is outside the image (shape {:?})",
                path.display(),
                v.file_shape
            );
        };
        let value = if v.dtype.channels() > 1 {
            json!(
                (0..v.dtype.channels())
                    .map(|c| v.value_at(flat, c))
                    .collect::<Vec<_>>()
            )
        } else {
            json!(v.value_at(flat, 0))
        };
        samples.push(json!({"index": index, "value": value}));
    }
    let stats = v.stats();
    if as_json {
        say!(
            "{}",
            serde_json::to_string_pretty(&file_json(path, v, &stats, samples))?
        );
    } else {
        print_file(path, v, &stats, &samples);
    }
    Ok(())
}

/// The series of a DICOM folder (headers only: no pixel data is read).
fn list_series(path: &Path, scan: &dicom::Scan, as_json: bool) -> Result<()> {
    if scan.series.is_empty() {
        scan.pick(path, None)?;
    }
    let rows: Vec<Value> = scan
        .series
        .iter()
        .map(|s| {
            let (shape, warnings) = match s.shape() {
                Ok((shape, w)) => (json!(shape), w),
                Err(e) => (Value::Null, vec![e]),
            };
            json!({
                "uid": s.id, "description": s.description, "modality": s.modality,
                "series_number": s.number, "size": [s.cols, s.rows], "shape": shape,
                "slices": shape.get(2), "images": s.images, "files": s.files,
                "note": s.note, "warnings": warnings,
            })
        })
        .collect();
    if as_json {
        let out = json!({
            "path": path.display().to_string(), "format": "dicom",
            "series": rows, "skipped_files": scan.skipped.len(),
        });
        say!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    say!("{}: {} DICOM series", path.display(), rows.len());
    for r in &rows {
        say!(
            "  {}  {} {:?}  {}×{}  {} slices  {} images{}",
            r["uid"].as_str().unwrap_or(""),
            r["modality"].as_str().unwrap_or(""),
            r["description"].as_str().unwrap_or(""),
            r["size"][0],
            r["size"][1],
            r["slices"],
            r["images"],
            r["note"]
                .as_str()
                .map(|n| format!("  (set apart: {n})"))
                .unwrap_or_default()
        );
    }
    if !scan.skipped.is_empty() {
        say!(
            "  {} file(s) passed over (not DICOM images)",
            scan.skipped.len()
        );
    }
    say!(
        "  describe one with: ume info {} --series UID",
        path.display()
    );
    Ok(())
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "channel": s.channel, "min": num(s.min), "max": num(s.max), "mean": num(s.mean),
        "nan_count": s.nan_count, "inf_count": s.inf_count, "n_voxels": s.n_voxels,
    })
}

/// JSON has no NaN: an empty statistic is null.
fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

fn file_json(path: &Path, v: &Volume, stats: &[Stats], at: Vec<Value>) -> Value {
    // The headline statistic: the value itself, or the magnitude of complex data.
    let main = if stats.len() == 3 && stats[2].channel == "abs" {
        &stats[2]
    } else {
        &stats[0]
    };
    json!({
        "path": path.display().to_string(),
        "format": v.format.as_str(),
        "shape": v.file_shape,
        "datatype": v.dtype.name(),
        "scl_slope": v.scaling.slope,
        "scl_inter": v.scaling.inter,
        "affine": v.geometry.world_from_voxel,
        "spacing_mm": v.spacing_mm(),
        "orientation": v.geometry.orientation(),
        "time_step_s": v.geometry.time_step,
        "stats": stats_json(main),
        "channel_stats": stats.iter().map(stats_json).collect::<Vec<_>>(),
        "at": at,
        "warnings": v.warnings,
    })
}

fn print_file(path: &Path, v: &Volume, stats: &[Stats], at: &[Value]) {
    say!("{}", path.display());
    say!("  format       {}", v.format.as_str());
    say!("  shape        {:?}  {}", v.file_shape, v.dtype);
    let sp = v.spacing_mm();
    say!(
        "  spacing      {:.4} × {:.4} × {:.4} mm",
        sp[0],
        sp[1],
        sp[2]
    );
    if let Some(dt) = v.geometry.time_step {
        say!("  frame step   {dt:.4} s");
    }
    say!("  orientation  {}", v.geometry.orientation());
    if !v.scaling.is_identity() {
        say!("  scaling      × {} + {}", v.scaling.slope, v.scaling.inter);
    }
    say!("  world_from_voxel (RAS mm)");
    for row in &v.geometry.world_from_voxel[..3] {
        say!(
            "    [{:>10.4} {:>10.4} {:>10.4} {:>10.4}]",
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    for s in stats {
        say!(
            "  {:<6} min {:.6} max {:.6} mean {:.6} ({} NaN, {} inf)",
            s.channel,
            s.min,
            s.max,
            s.mean,
            s.nan_count,
            s.inf_count
        );
    }
    for a in at {
        say!("  at {} = {}", a["index"], a["value"]);
    }
    for w in &v.warnings {
        say!("  warning: {w}");
    }
}

fn folder(path: &Path, as_json: bool) -> Result<()> {
    let ds = dataset::open(path)?;
    let labels_of = |l: &LabelSource| match l {
        LabelSource::None => json!(null),
        LabelSource::File(p) => json!(p.display().to_string()),
        LabelSource::Masks(m) => json!({"masks": m.len()}),
        LabelSource::Frames(f) => json!(
            f.iter()
                .map(|(t, p)| json!({"frame": t, "file": p.display().to_string()}))
                .collect::<Vec<_>>()
        ),
    };
    let modalities: Vec<String> = ds
        .cases
        .first()
        .map(|c| c.images.iter().map(|(m, _)| m.clone()).collect())
        .unwrap_or_default();
    if as_json {
        let cases: Vec<Value> = ds
            .cases
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "images": c.images.iter().map(|(m, p)| json!({"modality": m, "file": p.display().to_string()})).collect::<Vec<_>>(),
                    "labels": labels_of(&c.labels),
                    "acdc": c.acdc,
                })
            })
            .collect();
        let out = json!({
            "path": path.display().to_string(),
            "layout": ds.layout.as_str(),
            "case_count": ds.cases.len(),
            "modalities": modalities,
            "labels": ds.labels.labels.iter().map(|l| json!({"id": l.id, "name": l.name})).collect::<Vec<_>>(),
            "cases": cases,
        });
        say!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    say!("{}", path.display());
    say!("  layout      {}", ds.layout.as_str());
    say!("  cases       {}", ds.cases.len());
    say!("  modalities  {}", modalities.join(", "));
    let names: Vec<String> = ds
        .labels
        .labels
        .iter()
        .take(12)
        .map(|l| format!("{} {}", l.id, l.name))
        .collect();
    let more = ds.labels.labels.len().saturating_sub(12);
    say!(
        "  labels      {}{}",
        names.join(", "),
        if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        }
    );
    for c in ds.cases.iter().take(20) {
        let extra = c
            .acdc
            .as_ref()
            .map(|a| format!("  ED {} ES {} ({})", a.ed, a.es, a.group))
            .unwrap_or_default();
        say!("  - {} ({} images){extra}", c.id, c.images.len());
    }
    if ds.cases.len() > 20 {
        say!("  ... {} more", ds.cases.len() - 20);
    }
    Ok(())
}
