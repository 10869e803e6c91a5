//! `ume bench annotation`: what painting costs on a 512×512×300 image with
//! 117 labels, measured through the same code the app runs.
//!
//! - A 5 mm brush dab and a 10 mm 3D ball dab, from pointer sample to frame
//!   submitted: the covered voxels, the paint into the document, closing the
//!   step, the live Dice update from the changed voxels, the dirty box
//!   extracted and written to the label texture, and the submit. Goal:
//!   ≤ 4 ms median CPU side.
//! - Undo and redo of a 20-dab stroke, with its box upload. Goal: ≤ 16 ms.
//! - History bytes per changed voxel. Goal: ≤ 8.
//! - Fill between slices of one label across 20 slices of 512² when every
//!   5th slice is given: time and Dice of the filled slices against the
//!   phantom's truth, beside ITK's MorphologicalContourInterpolator on the
//!   same data in the same run (`bench/itk_interpolate.py`). Goal: at least
//!   as accurate and ≥ 5× faster.

use super::document::{Document, Labels, Layer};
use super::upload::label_box;
use crate::annotation::{Brush, BrushShape, PaintRule};
use crate::metrics::Confusion;
use crate::render::{LabelUpload, Renderer};
use crate::volume::{Geometry, LabelData, LabelTable, LabelVolume, Volume};
use std::sync::Arc;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 117 labels as slabs of blocks, on 0.8 × 0.8 × 1.5 mm voxels.
fn case(dims: [usize; 3]) -> (Volume, LabelVolume, Geometry) {
    let mut m = Geometry::identity().world_from_voxel;
    m[0][0] = 0.8;
    m[1][1] = 0.8;
    m[2][2] = 1.5;
    let g = Geometry::from_affine(m);
    let n = dims[0] * dims[1] * dims[2];
    let vals: Vec<i16> = (0..n).map(|i| ((i * 7919) % 2000) as i16 - 1000).collect();
    let v = Volume::from_values(dims.to_vec(), &vals, g.clone()).expect("shape matches");
    let mut l = LabelVolume::zeros(dims, 1, g.clone());
    for i in 0..n {
        let (x, y, z) = (
            i % dims[0],
            (i / dims[0]) % dims[1],
            i / (dims[0] * dims[1]),
        );
        let id = (x / 48 + 11 * (y / 48) + 3 * (z / 30)) % 118;
        l.set(i, id as u16);
    }
    (v, l, g)
}

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    renderer: Renderer,
    dims: [u32; 3],
}

/// Write the document's dirty box to the label texture and submit.
fn upload_box(gpu: &mut Gpu, doc: &mut Document) {
    if let Some((lo, hi)) = doc.take_dirty_box()
        && let Some(l) = doc.labels().at_frame(0)
    {
        let (origin, size, data) = label_box(l, 0, lo, hi);
        let ids = match &data {
            LabelData::U8(d) => LabelUpload::U8(d),
            LabelData::U16(d) => LabelUpload::U16(d),
        };
        let written = gpu
            .renderer
            .update_labels(&gpu.queue, gpu.dims, origin, size, ids);
        assert!(written, "the box upload was refused");
    }
    gpu.queue.submit([]);
}

/// Follow the document's applied changes in the live counts.
fn live(doc: &mut Document, confusion: &mut Confusion, pred: &LabelVolume) {
    for a in doc.take_applied() {
        for (v, before, after) in a.changes {
            let _ = confusion.move_voxel(before, after, pred.get(v));
        }
    }
}

/// Run the benchmark and print its table.
pub fn annotation(python: &str) -> anyhow::Result<()> {
    let dims = [512, 512, 300];
    println!("ume bench annotation — 512×512×300, 117 labels");
    let (image, labels, g) = case(dims);
    let mut pred = labels.clone();
    for i in 0..pred.len() {
        if i % 13 == 0 {
            pred.set(i, 0);
        }
    }
    let (device, queue, adapter) = crate::render::headless_device().map_err(anyhow::Error::msg)?;
    println!("adapter: {adapter}");
    let mut renderer = Renderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    let d32 = dims.map(|d| d as u32);
    if let LabelData::U8(ids) = &labels.data {
        renderer.set_labels(&device, &queue, d32, LabelUpload::U8(ids));
    }
    let mut gpu = Gpu {
        device,
        queue,
        renderer,
        dims: d32,
    };
    let mut confusion = Confusion::new(&labels, &pred);
    let mut doc = Document::new(
        "bench".into(),
        vec![Layer::new("ct", Arc::new(image))],
        Labels::single(Arc::new(labels)),
        LabelTable::generic(1..118),
    );
    let rule = PaintRule {
        value: 42,
        ..PaintRule::default()
    };
    let mut dab = |doc: &mut Document, confusion: &mut Confusion, brush: &Brush, k: usize| {
        let c = g.world_from_index([
            (97 * k % 400 + 50) as f64,
            (61 * k % 400 + 50) as f64,
            150.0,
        ]);
        let t0 = Instant::now();
        let voxels = brush.covered(&g, dims, c, c);
        doc.paint(0, &voxels, &rule, 0);
        doc.end_edit();
        live(doc, confusion, &pred);
        upload_box(&mut gpu, doc);
        t0.elapsed().as_secs_f64() * 1e3
    };
    let disc = Brush {
        radius_mm: 5.0,
        shape: BrushShape::Disc {
            axis: 2,
            index: 150,
        },
    };
    let ball = Brush {
        radius_mm: 10.0,
        shape: BrushShape::Ball,
    };
    let t_disc: Vec<f64> = (0..200)
        .map(|k| dab(&mut doc, &mut confusion, &disc, k))
        .collect();
    let t_ball: Vec<f64> = (0..100)
        .map(|k| dab(&mut doc, &mut confusion, &ball, k + 7))
        .collect();
    let (m_disc, m_ball) = (median(t_disc), median(t_ball));
    println!(
        "5 mm brush dab (paint, step, live Dice, box upload, submit): {m_disc:.3} ms median (goal ≤ 4 ms; {:.1}×)",
        4.0 / m_disc
    );
    println!(
        "10 mm 3D ball dab, likewise: {m_ball:.3} ms median (goal ≤ 4 ms; {:.1}×)",
        4.0 / m_ball
    );

    // A 20-dab stroke: one step; undo and redo it.
    let history_before = doc.history_len();
    for k in 0..20 {
        let c = g.world_from_index([100.0 + 12.0 * k as f64, 300.0, 150.0]);
        let v = disc.covered(&g, dims, c, c);
        doc.paint(
            0,
            &v,
            &PaintRule {
                value: 77,
                ..PaintRule::default()
            },
            0,
        );
    }
    doc.end_edit();
    live(&mut doc, &mut confusion, &pred);
    upload_box(&mut gpu, &mut doc);
    assert!(
        doc.history_len().0 > history_before.0,
        "the stroke is a step"
    );
    let mut undo = Vec::new();
    let mut redo = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        doc.undo();
        live(&mut doc, &mut confusion, &pred);
        upload_box(&mut gpu, &mut doc);
        undo.push(t0.elapsed().as_secs_f64() * 1e3);
        let t0 = Instant::now();
        doc.redo();
        live(&mut doc, &mut confusion, &pred);
        upload_box(&mut gpu, &mut doc);
        redo.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (mu, mr) = (median(undo), median(redo));
    println!(
        "undo / redo of a 20-dab stroke with its box upload: {mu:.2} / {mr:.2} ms median (goal ≤ 16 ms; {:.1}×)",
        16.0 / mu.max(mr)
    );
    let (bytes, changed) = doc.history_bytes();
    println!(
        "undo history: {:.2} bytes per changed voxel over {changed} voxels (goal ≤ 8)",
        bytes as f64 / changed.max(1) as f64
    );
    // The live counts are exact (checked, not assumed).
    let now = doc.labels().at_frame(0).expect("labels").clone();
    let recount = Confusion::new(&now, &pred);
    anyhow::ensure!(
        (1..118).all(|id| recount.tp_fp_fn(id) == confusion.tp_fp_fn(id)),
        "live counts differ from a recount"
    );
    drop(gpu.device);
    interpolation(python)
}

/// An ellipsoid-like blob whose cross-section shrinks and drifts along z:
/// 512 × 512 × 21 slices, label 1.
fn blob() -> LabelVolume {
    let dims = [512, 512, 21];
    let mut l = LabelVolume::zeros(dims, 1, Geometry::identity());
    for k in 0..21 {
        let t = k as f64 / 20.0;
        let (cx, cy) = (256.0 + 60.0 * t, 240.0 - 30.0 * t);
        let (a, b) = (150.0 - 70.0 * t, 110.0 + 20.0 * (t * 3.0).sin());
        for j in 0..512 {
            for i in 0..512 {
                let (x, y) = ((i as f64 - cx) / a, (j as f64 - cy) / b);
                if x * x + y * y <= 1.0 {
                    l.set(i + 512 * (j + 512 * k), 1);
                }
            }
        }
    }
    l
}

/// Dice of label 1 over the slices not given (k % 5 != 0).
fn dice_between(result: &LabelVolume, truth: &LabelVolume) -> f64 {
    let n = 512 * 512;
    let (mut inter, mut a, mut b) = (0u64, 0u64, 0u64);
    for k in (0..21).filter(|k| k % 5 != 0) {
        for i in 0..n {
            let (r, t) = (result.get(k * n + i) == 1, truth.get(k * n + i) == 1);
            inter += u64::from(r && t);
            a += u64::from(r);
            b += u64::from(t);
        }
    }
    2.0 * inter as f64 / (a + b).max(1) as f64
}

fn interpolation(python: &str) -> anyhow::Result<()> {
    let truth = blob();
    let mut sparse = truth.clone();
    let n = 512 * 512;
    for k in (0..21).filter(|k| k % 5 != 0) {
        for i in 0..n {
            sparse.set(k * n + i, 0);
        }
    }
    let mut times = Vec::new();
    let mut filled = sparse.clone();
    for _ in 0..3 {
        let t0 = Instant::now();
        let v = crate::annotation::interpolate::between_slices(&sparse, 0, 1, 2, [1.0; 3]);
        times.push(t0.elapsed().as_secs_f64());
        filled = sparse.clone();
        for f in v {
            filled.set(f, 1);
        }
    }
    let ours = times.iter().copied().fold(f64::INFINITY, f64::min);
    let our_dice = dice_between(&filled, &truth);
    println!(
        "fill between slices, one label, 20 slices of 512², every 5th given: {:.1} ms, Dice {our_dice:.4} on the filled slices",
        ours * 1e3
    );
    let dir = tempfile_dir()?;
    let input = dir.join("sparse.nii.gz");
    let output = dir.join("itk.nii.gz");
    crate::io::save_labels(&sparse, &input)?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/itk_interpolate.py");
    let run = std::process::Command::new(python)
        .arg(&script)
        .arg(&input)
        .arg(&output)
        .args(["2", "3"])
        .output();
    match run {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
            let theirs = v["seconds"].as_f64().unwrap_or(f64::NAN);
            let itk = crate::io::load_labels(&output)?;
            let itk_dice = dice_between(&itk, &truth);
            println!(
                "ITK MorphologicalContourInterpolator, same data: {:.1} ms, Dice {itk_dice:.4} → UME {:.1}× faster (goal ≥ 5×), Dice {:+.4} (goal ≥ 0)",
                theirs * 1e3,
                theirs / ours,
                our_dice - itk_dice
            );
        }
        Ok(o) => println!(
            "ITK reference not run ({}): pip install itk-morphologicalcontourinterpolation",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        ),
        Err(e) => println!("ITK reference not run: {e}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ume-bench-annotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
