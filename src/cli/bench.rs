//! `ume bench`: measurements that compare UME with the reference each
//! issue names, side by side in one run, printed as ratios.
//!
//! `ume bench load` times loading a BraTS case (4 × 240×240×155 int16
//! .nii.gz) and a 512×512×300 int16 CT with min/max/mean computed, against
//! nibabel (`bench/nibabel_load.py`, when Python and nibabel are installed)
//! and against single-core libdeflate gunzip of the same bytes, in-process
//! and as whole processes, and reports peak memory relative to raw bytes.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What to measure.
#[derive(Subcommand, Debug)]
pub(super) enum BenchCommand {
    /// Volume loading against nibabel and libdeflate.
    Load {
        /// Where fixtures are generated (reused when present).
        #[arg(long, default_value = "target/bench-data")]
        dir: PathBuf,
        /// Repetitions; the best time counts.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Python interpreter with nibabel for the reference.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// DICOM series loading against pydicom and conversion to NIfTI
    /// against dcm2niix (a 512×512×300 int16 CT, uncompressed and RLE).
    Dicom {
        /// Where the series are written (reused when present).
        #[arg(long, default_value = "target/bench-data/dicom")]
        dir: PathBuf,
        /// Series size (columns, rows, slices).
        #[arg(long, default_values_t = [512, 512, 300], num_args = 3, value_delimiter = ',')]
        dims: Vec<usize>,
        /// Repetitions; the best time counts.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Python interpreter with pydicom for the reference.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Viewer frame costs on the wgpu adapter (slice change, cine).
    Viewer,
    /// Annotation costs on 512×512×300 with 117 labels (brush dab, undo,
    /// history size) and fill between slices against ITK's
    /// MorphologicalContourInterpolator.
    Annotation {
        /// Python interpreter with itk-morphologicalcontourinterpolation
        /// for the reference.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Model-free keyframe selection: speed, and ED/ES hits on cardiac phantoms.
    Keyframes {
        /// Held-out cardiac phantom cases (seeds other than tests').
        #[arg(long, default_value_t = 20)]
        cases: usize,
    },
    /// One-pass overlap metrics of 117 labels vs the per-structure loop.
    Metrics {
        /// Grid size.
        #[arg(long, default_values_t = [512, 512, 300], num_args = 3, value_delimiter = ',')]
        dims: Vec<usize>,
    },
    /// U-Net inference and training throughput at 256×256 (the seed's full
    /// model) on the CPU backend, and on wgpu with --wgpu, against the
    /// PyTorch CPU reference (scripts/unet_reference.py) at the same thread
    /// count when PyTorch is installed.
    #[cfg(feature = "ml")]
    Unet(UnetBench),
    /// UME encoder time per volume (embedding, keyframe selection and
    /// fusion; and with every frame segmented) on the CPU backend, and on
    /// wgpu with --wgpu, against the PyTorch reference
    /// (scripts/encoder_reference.py) at the same thread count. Default:
    /// the seed's standard config (configs/ume_brats.json: 768 wide, 12
    /// layers, 12 heads, patch 32, 256×256) on 128 frames of 4
    /// modalities, random weights.
    #[cfg(feature = "ml")]
    Encoder(super::bench_encoder::EncoderBench),
    /// Slices chosen by `ume suggest` against random and every k-th: a
    /// weak model fine-tuned on N = 2, 4, 8, 16 labelled slices of BraTS
    /// phantoms, Dice on held-out cases against N (table and a PNG plot).
    #[cfg(feature = "ml")]
    Suggest {
        /// Fine-tuning steps per run.
        #[arg(long, default_value_t = 120)]
        steps: usize,
        /// Training steps of the weak starting model.
        #[arg(long, default_value_t = 30)]
        weak_steps: usize,
        /// Annotated cases (results averaged).
        #[arg(long, default_value_t = 3)]
        cases: usize,
        /// Random draws per case and N.
        #[arg(long, default_value_t = 3)]
        random_draws: usize,
        /// Where the plot goes.
        #[arg(long, default_value = "docs/bench_suggest.png")]
        plot: PathBuf,
    },
    /// Tokenizer frames/s (encode, quantise, decode) on the CPU backend,
    /// and on wgpu with --wgpu, against the PyTorch reference
    /// (scripts/titok_reference.py) at the same thread count.
    #[cfg(feature = "ml")]
    Tokenizer(super::bench_tokenizer::TokenizerBench),
    /// (Internal) load one file and print peak memory as JSON.
    #[command(hide = true)]
    Peak {
        /// File to load.
        file: PathBuf,
    },
}

pub(super) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Load {
            dir,
            repeat,
            python,
        } => load(&dir, repeat.max(1), &python),
        BenchCommand::Metrics { dims } => metrics(&dims),
        BenchCommand::Dicom {
            dir,
            dims,
            repeat,
            python,
        } => {
            let d: [usize; 3] = dims
                .try_into()
                .map_err(|_| anyhow::anyhow!("--dims takes three sizes"))?;
            super::bench_dicom::run(&dir, d, repeat, &python)
        }
        #[cfg(feature = "ml")]
        BenchCommand::Unet(b) => unet(&b),
        #[cfg(feature = "ml")]
        BenchCommand::Tokenizer(b) => super::bench_tokenizer::run(&b),
        BenchCommand::Keyframes { cases } => keyframes(cases),
        #[cfg(feature = "ml")]
        BenchCommand::Suggest {
            steps,
            weak_steps,
            cases,
            random_draws,
            plot,
        } => super::bench_suggest::run(&super::bench_suggest::Options {
            steps,
            weak_steps,
            cases,
            random_draws,
            plot,
        }),
        #[cfg(feature = "ml")]
        BenchCommand::Encoder(b) => super::bench_encoder::run(&b),
        #[cfg(feature = "gui")]
        BenchCommand::Viewer => crate::app::bench::viewer(),
        #[cfg(feature = "gui")]
        BenchCommand::Annotation { python } => crate::app::bench_annotation::annotation(&python),
        #[cfg(not(feature = "gui"))]
        BenchCommand::Annotation { .. } => anyhow::bail!("built without the `gui` feature"),
        #[cfg(not(feature = "gui"))]
        BenchCommand::Viewer => anyhow::bail!("built without the `gui` feature"),
        BenchCommand::Peak { file } => {
            let v = crate::io::load(&file)?;
            let stats = v.stats();
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let field = |k: &str| -> u64 {
                status
                    .lines()
                    .find(|l| l.starts_with(k))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|x| x.parse::<u64>().ok())
                    .map_or(0, |kb| kb * 1024)
            };
            say!(
                "{}",
                serde_json::json!({
                    "raw_bytes": v.raw_bytes().len(),
                    "vm_hwm": field("VmHWM:"),
                    "rss_anon": field("RssAnon:"),
                    "rss_file": field("RssFile:"),
                    "mean": stats[0].mean,
                })
            );
            Ok(())
        }
    }
}

/// Fixture files: (group name, files).
fn fixtures(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    use crate::phantom::{Size, brats_case, ct_volume};
    let brats_dir = dir.join("BraTS20_Training_001");
    if !brats_dir.join("BraTS20_Training_001_seg.nii.gz").is_file() {
        eprintln!("generating a full-size BraTS phantom in {}", dir.display());
        brats_case(0, 1, Size::Full).write(dir)?;
    }
    let brats: Vec<PathBuf> = ["t1", "t1ce", "t2", "flair"]
        .iter()
        .map(|m| brats_dir.join(format!("BraTS20_Training_001_{m}.nii.gz")))
        .collect();
    let ct = dir.join("ct_512x512x300.nii.gz");
    if !ct.is_file() {
        eprintln!(
            "generating a 512×512×300 int16 CT phantom in {}",
            dir.display()
        );
        crate::io::save_volume(
            &ct_volume(0, [512, 512, 300], [0.78125, 0.78125, 1.25]),
            &ct,
        )?;
    }
    Ok(vec![
        ("brats_case".into(), brats),
        ("ct_512".into(), vec![ct]),
    ])
}

fn best_of(repeat: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeat {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// UME: load the files (in parallel, as a case is loaded) and compute stats.
fn ume_load(files: &[PathBuf]) -> Result<()> {
    for stats in crate::io::load_many_then(files, |v| v.stats()) {
        std::hint::black_box(stats?);
    }
    Ok(())
}

/// Reference: read + single-core libdeflate gunzip of the same bytes.
fn libdeflate_gunzip(files: &[PathBuf]) -> Result<()> {
    let mut d = libdeflater::Decompressor::new();
    for f in files {
        let gz = std::fs::read(f)?;
        let isize = u32::from_le_bytes(gz[gz.len() - 4..].try_into()?) as usize;
        let mut out = vec![0u8; isize];
        d.gzip_decompress(&gz, &mut out)
            .map_err(|e| anyhow::anyhow!("{f:?}: {e:?}"))?;
        std::hint::black_box(&out);
    }
    Ok(())
}

fn nibabel_times(
    python: &str,
    repeat: usize,
    groups: &[(String, Vec<PathBuf>)],
) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/nibabel_load.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(repeat.to_string());
    for (name, files) in groups {
        cmd.arg(name).args(files).arg("--");
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!(
            "nibabel reference unavailable ({}): pip install nibabel",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Wall time of whole processes, one per file, best of `repeat`.
fn process_time(
    repeat: usize,
    files: &[PathBuf],
    mut make: impl FnMut(&Path) -> Command,
) -> Result<f64> {
    best_of(repeat, || {
        for f in files {
            let status = make(f).stdout(std::process::Stdio::null()).status()?;
            if !status.success() {
                bail!("{:?} failed on {}", make(f), f.display());
            }
        }
        Ok(())
    })
}

fn load(dir: &Path, repeat: usize, python: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let groups = fixtures(dir)?;
    let exe = std::env::current_exe()?;
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    say!("ume bench load — best of {repeat}, {threads} hardware threads");
    let nib = nibabel_times(python, repeat, &groups);
    say!(
        "{:<11} {:>7} {:>7} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "case",
        "raw MB",
        "gz MB",
        "libdeflate",
        "ume",
        "nibabel",
        "nib/ume",
        "ume/lib",
        "peak/raw",
        "anon/raw"
    );
    for (name, files) in &groups {
        let raw: u64 = files
            .iter()
            .map(|f| crate::io::load(f).map(|v| v.raw_bytes().len() as u64))
            .sum::<Result<u64, _>>()?;
        let gz: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()))
            .sum::<Result<u64, _>>()?;
        let t_lib = best_of(repeat, || libdeflate_gunzip(files))?;
        let t_ume = best_of(repeat, || ume_load(files))?;
        let t_nib = nib.as_ref().and_then(|n| n[name.as_str()].as_f64());
        // Peak memory of a process that loads the largest file.
        let peak = Command::new(&exe)
            .args(["bench", "peak"])
            .arg(&files[0])
            .output()?;
        let peak: serde_json::Value = serde_json::from_slice(&peak.stdout).unwrap_or_default();
        let ratio =
            |a: Option<f64>, b: f64| a.map_or("-".to_string(), |a| format!("{:.2}×", a / b));
        say!(
            "{:<11} {:>7.1} {:>7.1} {:>10.3}s {:>7.3}s {:>8} {:>8} {:>7.2}× {:>8.2}× {:>8.2}×",
            name,
            raw as f64 / 1e6,
            gz as f64 / 1e6,
            t_lib,
            t_ume,
            t_nib.map_or("-".into(), |t| format!("{t:.3}s")),
            ratio(t_nib, t_ume),
            t_ume / t_lib,
            peak["vm_hwm"].as_f64().unwrap_or(f64::NAN)
                / peak["raw_bytes"].as_f64().unwrap_or(f64::NAN),
            peak["rss_anon"].as_f64().unwrap_or(f64::NAN)
                / peak["raw_bytes"].as_f64().unwrap_or(f64::NAN),
        );
        // Whole processes: `ume info FILE --json` vs a Python process doing the same.
        let p_ume = process_time(repeat, files, |f| {
            let mut c = Command::new(&exe);
            c.arg("info").arg(f).arg("--json");
            c
        })?;
        let p_nib = if nib.is_some() {
            let code = "import sys, numpy as np, nibabel as nib\na = np.asarray(nib.load(sys.argv[1]).dataobj)\nprint(a.min(), a.max(), a.mean())";
            Some(process_time(repeat, files, |f| {
                let mut c = Command::new(python);
                c.args(["-c", code]).arg(f);
                c
            })?)
        } else {
            None
        };
        say!(
            "{:<11} whole process, one per file: ume info {:.3}s, python+nibabel {}, nib/ume {}",
            "",
            p_ume,
            p_nib.map_or("-".into(), |t| format!("{t:.3}s")),
            ratio(p_nib, p_ume)
        );
    }
    say!(
        "nib/ume: speed-up over nibabel (goal ≥ 2); ume/lib: time relative to single-core libdeflate gunzip (goal ≤ 1.3); peak/raw: peak RSS of a process loading the first file over its raw voxel bytes, counting the memory-mapped compressed file; anon/raw: its heap (anonymous memory) after loading over raw bytes"
    );
    Ok(())
}

/// 117 structures on a large grid: the confusion-matrix pass against one
/// pass per structure (seed 003's loop), same results, both timed here.
fn metrics(dims: &[usize]) -> Result<()> {
    use crate::metrics::{EvalOptions, evaluate, per_structure_loop_dice};
    use crate::volume::{Geometry, LabelData, LabelTable, LabelVolume};
    let [nx, ny, nz] =
        <[usize; 3]>::try_from(dims).map_err(|_| anyhow::anyhow!("--dims needs three sizes"))?;
    // 117 compact structures (ellipsoids of random size in a 5×5×5 lattice
    // of cells, as organs are compact), the prediction shifted by 3 voxels.
    let cell = [nx.div_ceil(5), ny.div_ceil(5), nz.div_ceil(5)];
    let label_at = |i: usize, j: usize, k: usize| -> u8 {
        let (ci, cj, ck) = (i / cell[0], j / cell[1], k / cell[2]);
        let id = ci + 5 * (cj + 5 * ck) + 1;
        if id > 117 {
            return 0;
        }
        let h = crate::phantom::mix_cell(ci, cj, ck);
        let r = 0.25 + 0.2 * (h % 100) as f64 / 100.0;
        let d = |x: usize, c: usize| (x % c) as f64 / c as f64 - 0.5;
        let inside =
            (d(i, cell[0]) / r).powi(2) + (d(j, cell[1]) / r).powi(2) + (d(k, cell[2]) / r).powi(2)
                < 1.0;
        if inside { id as u8 } else { 0 }
    };
    let make = |shift: usize| {
        let mut d = Vec::with_capacity(nx * ny * nz);
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    d.push(label_at((i + shift).min(nx - 1), j, k));
                }
            }
        }
        LabelVolume {
            dims: [nx, ny, nz],
            frames: 1,
            geometry: Geometry::identity(),
            data: LabelData::U8(d),
        }
    };
    let (gt, pred) = (make(0), make(3));
    let table = LabelTable::builtin("totalseg")?;
    let opts = EvalOptions {
        distances: false,
        ..EvalOptions::default()
    };
    let t = Instant::now();
    let e = evaluate(&pred, &gt, &table, &opts)?;
    let one_pass = t.elapsed().as_secs_f64();
    let ids: Vec<u16> = e.structures.iter().map(|s| s.label).collect();
    let t = Instant::now();
    let looped = per_structure_loop_dice(&gt, &pred, &ids);
    let per_structure = t.elapsed().as_secs_f64();
    let same = e
        .structures
        .iter()
        .zip(&looped)
        .all(|(s, d)| (s.dice - d).abs() < 1e-12);
    let t = Instant::now();
    let full = evaluate(&pred, &gt, &table, &EvalOptions::default())?;
    let with_distances = t.elapsed().as_secs_f64();
    say!(
        "ume bench metrics — {nx}×{ny}×{nz} labels, {} structures",
        ids.len()
    );
    say!(
        "overlap (Dice, IoU, volumes), one pass: {one_pass:.3} s; per-structure loop: {per_structure:.3} s; speed-up {:.1}× (goal ≥ 20×); identical Dice: {same}",
        per_structure / one_pass
    );
    say!(
        "all metrics incl. HD95/NSD/ASSD (exact EDT per structure box): {with_distances:.3} s, mean Dice {:.4}",
        full.mean_dice
    );
    Ok(())
}

/// Keyframe selection speed on a 256×256×128×4 case, and how often the
/// content-aware K = 2 selection lands within ±1 frame of ED and ES on
/// held-out cardiac phantoms.
fn keyframes(cases: usize) -> Result<()> {
    use crate::keyframes::{FrameFeatures, Strategy, select};
    use crate::volume::{Geometry, Volume};
    let dims = [256usize, 256, 128];
    let n = dims[0] * dims[1] * dims[2];
    let vols: Vec<Volume> = (0..4)
        .map(|m| {
            let vals: Vec<i16> = (0..n).map(|i| ((i / 97 + m * 31) % 1000) as i16).collect();
            Volume::from_values(dims.to_vec(), &vals, Geometry::identity())
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&Volume> = vols.iter().collect();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let f = FrameFeatures::from_slices(&refs);
        let s = select(&f, 10, Strategy::Content).map_err(anyhow::Error::msg)?;
        std::hint::black_box(s);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    say!("ume bench keyframes");
    say!(
        "uniform + content scores and content selection (K=10) on 256×256×128×4 int16: {:.1} ms median (goal ≤ 100 ms)",
        times[2]
    );
    let near = |a: usize, b: usize, n: usize| {
        let d = a.abs_diff(b);
        d.min(n - d) <= 1
    };
    let mut hits = 0;
    let bar = super::progress_bar(cases as u64, "cardiac phantoms");
    for c in 0..cases {
        let p = crate::phantom::acdc_case(1000, c + 1, crate::phantom::Size::Small);
        let f = FrameFeatures::from_time_frames(&p.cine);
        let s = select(&f, 2, Strategy::Content).map_err(anyhow::Error::msg)?;
        let (ed, es, n) = (p.info.ed_index(), p.info.es_index(), p.info.nb_frame);
        if s.selected.iter().any(|&t| near(t, ed, n)) && s.selected.iter().any(|&t| near(t, es, n))
        {
            hits += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    say!(
        "content-aware K=2 within ±1 frame of both ED and ES: {hits}/{cases} held-out cardiac phantoms ({:.0}%; goal ≥ 90%)",
        100.0 * f64::from(hits) / cases.max(1) as f64
    );
    Ok(())
}

#[cfg(feature = "ml")]
/// Options of `ume bench unet`.
#[derive(clap::Args, Debug)]
pub(super) struct UnetBench {
    /// Slice size.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Output channels (117 as TotalSegmentator).
    #[arg(long, default_value_t = 117)]
    out_channels: usize,
    /// Timed forward passes (batch 1).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Images per training step.
    #[arg(long, default_value_t = 4)]
    train_batch: usize,
    /// Timed training steps.
    #[arg(long, default_value_t = 3)]
    train_reps: usize,
    /// PyTorch threads (UME's CPU backend is measured as it runs).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Also measure the wgpu backend (slow on a software adapter).
    #[arg(long)]
    wgpu: bool,
    /// Python interpreter with PyTorch for the reference.
    #[arg(long, default_value = "python3")]
    python: String,
}

/// `ume bench unet`: UME's backends and the PyTorch reference, one table.
#[cfg(feature = "ml")]
fn unet(b: &UnetBench) -> Result<()> {
    use crate::models::{DeviceChoice, UNet2dConfig, describe, device};
    use crate::training::bench::unet_throughput;
    let config = UNet2dConfig::new(1, b.out_channels);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    say!(
        "U-Net {:?} + {} bottleneck, 1 -> {} channels, {}x{}; machine threads: {cores}",
        config.features,
        config.bottleneck,
        b.out_channels,
        b.size,
        b.size
    );
    let args = [
        "--out-channels".to_string(),
        b.out_channels.to_string(),
        "--size".into(),
        b.size.to_string(),
        "--threads".into(),
        b.threads.to_string(),
        "--reps".into(),
        b.reps.to_string(),
        "--train-batch".into(),
        b.train_batch.to_string(),
        "--train-reps".into(),
        b.train_reps.to_string(),
        "--channels-last".into(),
    ];
    let torch = match python_reference(&b.python, "unet_reference.py", &args) {
        Ok(j) => {
            let get = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
            say!(
                "PyTorch {} CPU, {} thread(s): {:.2} slices/s inference, {:.2} img/s training",
                j["torch"].as_str().unwrap_or("?"),
                b.threads,
                get("inference_slices_per_s"),
                get("train_images_per_s")
            );
            Some((get("inference_slices_per_s"), get("train_images_per_s")))
        }
        Err(why) => {
            say!("PyTorch reference not run ({why}); ratios omitted");
            None
        }
    };
    let mut choices = vec![DeviceChoice::Cpu];
    if b.wgpu {
        choices.push(DeviceChoice::Wgpu);
    }
    for choice in choices {
        let t = unet_throughput(
            &config,
            &device(choice),
            b.size,
            1,
            b.reps,
            b.train_batch,
            b.train_reps,
        );
        let ratio = |ours: f64, theirs: Option<f64>| {
            theirs.map_or(String::new(), |r| format!(" ({:.2}x PyTorch)", ours / r))
        };
        say!(
            "UME {}: {:.2} slices/s inference{}, {:.2} img/s training{}",
            describe(choice),
            t.inference_slices_per_s,
            ratio(t.inference_slices_per_s, torch.map(|t| t.0)),
            t.train_images_per_s,
            ratio(t.train_images_per_s, torch.map(|t| t.1)),
        );
        if let Some(engine) = t.engine_slices_per_s {
            say!(
                "UME CPU inference engine (what `ume segment` and the app run on the CPU): {engine:.2} slices/s inference{}",
                ratio(engine, torch.map(|t| t.0)),
            );
        }
        if let Some(engine) = t.engine_train_images_per_s {
            say!(
                "UME CPU training engine (what `ume train` and the app run on the CPU): {engine:.2} img/s training{}",
                ratio(engine, torch.map(|t| t.1)),
            );
        }
    }
    Ok(())
}

/// Options of the benches measured against a PyTorch reference at the
/// same thread count (`ume bench tokenizer`, `ume bench encoder`).
#[cfg(feature = "ml")]
#[derive(clap::Args, Debug)]
pub(super) struct VersusTorch {
    /// Threads for both UME's CPU backend and PyTorch.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also measure the wgpu backend (slow on a software adapter).
    #[arg(long)]
    pub wgpu: bool,
    /// Python interpreter with PyTorch for the reference.
    #[arg(long, default_value = "python3")]
    pub python: String,
}

#[cfg(feature = "ml")]
impl VersusTorch {
    /// A pool of `--threads` threads for UME's CPU backend.
    pub fn pool(&self) -> Result<rayon::ThreadPool> {
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .context("thread pool")
    }
}

/// Run `scripts/SCRIPT bench ARGS` under `python` (a PyTorch reference)
/// and parse the JSON line it prints; the error says why there is none.
#[cfg(feature = "ml")]
pub(super) fn python_reference(
    python: &str,
    script: &str,
    args: &[String],
) -> Result<serde_json::Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let o = Command::new(python)
        .arg(&script)
        .arg("bench")
        .args(args)
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    serde_json::from_slice(&o.stdout).map_err(|_| format!("{} printed no JSON", script.display()))
}
