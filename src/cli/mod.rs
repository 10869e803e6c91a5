//! The `ume` command line: the same core the app uses, headless.
//! Errors end as one line on stderr and a non-zero exit; `--json` output is
//! for machines, everything else for people; long work shows a progress bar
//! on a terminal.

/// `println!` that does not panic when stdout is a closed pipe (`ume info
/// f | head`): output simply stops, as for any Unix tool.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod bench;
mod bench_dicom;
#[cfg(feature = "ml")]
mod bench_encoder;
#[cfg(feature = "ml")]
mod bench_suggest;
#[cfg(feature = "ml")]
mod bench_tokenizer;
mod eval;
mod info;
mod keyframes;
#[cfg(feature = "ml")]
mod segment;
#[cfg(feature = "ml")]
mod suggest;
#[cfg(feature = "ml")]
mod tokenize;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// UME: view, evaluate and train on 3D/4D medical scans.
#[derive(Parser, Debug)]
#[command(name = "ume", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Describe an image file, a DICOM folder (its series) or a dataset
    /// folder.
    Info {
        /// An image file (NIfTI, Analyze, NRRD, MetaImage, DICOM), a folder
        /// of DICOM files, or a dataset folder.
        path: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// The DICOM series to describe (SeriesInstanceUID, as listed).
        #[arg(long, value_name = "UID")]
        series: Option<String>,
        /// Report the scaled value at voxel i,j,k[,t] (repeatable).
        #[arg(long = "at", value_name = "I,J,K[,T]", value_parser = parse_index)]
        at: Vec<Vec<usize>>,
    },
    /// Per-structure metrics (Dice, IoU, HD95, NSD, ASSD, volumes) of a
    /// prediction against ground truth: two label files, a label file and
    /// a dataset case folder, or two folders.
    Eval(eval::EvalArgs),
    /// Select keyframes: time frames of a cine, or z slices of a volume.
    Keyframes {
        /// A NIfTI file or a dataset case folder.
        input: PathBuf,
        /// How many keyframes.
        #[arg(long, default_value_t = 2)]
        k: usize,
        /// uniform, content, attention or fused (the last two need
        /// --model). Default: fused with --model, content without.
        #[arg(long)]
        strategy: Option<crate::keyframes::Strategy>,
        /// A trained UME encoder checkpoint folder.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Segment a file or dataset case with a U-Net or UME encoder checkpoint
    /// or a bundled demo, slice by slice (frame by frame for 4D), writing
    /// labels on the input's grid.
    #[cfg(feature = "ml")]
    Segment {
        /// A NIfTI file or a dataset case folder (channels in modality order).
        input: PathBuf,
        /// Output label map (.nii.gz); a label table JSON is written beside it.
        #[arg(short, long)]
        out: PathBuf,
        /// Checkpoint folder (config.json + model.bpk) or a bundled demo
        /// model (demo-ct, demo-brats, demo-brain); default: the demo that
        /// fits the input (BraTS case, CT, single 3D MR image).
        #[arg(long)]
        model: Option<String>,
        /// auto (a hardware GPU, else the CPU backend), wgpu or cpu.
        #[arg(long, default_value = "auto")]
        device: crate::models::DeviceChoice,
        /// Slices per forward pass.
        #[arg(long, default_value_t = 8)]
        batch: usize,
    },
    /// Rank the slices of a file or dataset case (along the model's slicing
    /// axis, z) by the model's uncertainty: the ones to label next.
    #[cfg(feature = "ml")]
    Suggest {
        /// A NIfTI file or a dataset case folder.
        input: PathBuf,
        /// Checkpoint folder (U-Net or UME encoder) or a bundled demo
        /// model; default: the demo for the input, as for `ume segment`.
        #[arg(long)]
        model: Option<String>,
        /// How many slices to list (without --json).
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// Print {"axis": A, "slices": [{"index": i, "score": s}, …]} with
        /// every slice.
        #[arg(long)]
        json: bool,
        /// auto (a hardware GPU, else the CPU backend), wgpu or cpu.
        #[arg(long, default_value = "auto")]
        device: crate::models::DeviceChoice,
    },
    /// Encode every frame (z slice of every time frame) of an image to the
    /// tokenizer's K tokens and decode it: the reconstruction on the
    /// input's grid, PSNR / SSIM per frame, bits per frame, compression.
    #[cfg(feature = "ml")]
    Tokenize {
        /// A NIfTI (or other image) file.
        input: PathBuf,
        /// A tokenizer checkpoint folder (`ume train --config configs/titok_*.json`).
        #[arg(long)]
        model: PathBuf,
        /// The reconstruction (.nii.gz, .nrrd, .mha).
        #[arg(short, long)]
        out: PathBuf,
        /// Also write every frame's token ids as JSON.
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// The seed's clinical check: segment the original and the
        /// reconstruction with this model (checkpoint or bundled demo) and
        /// report both Dice scores.
        #[arg(long, value_name = "MODEL")]
        segment_with: Option<String>,
        /// Ground truth for --segment-with (else the model's segmentation
        /// of the original is the reference).
        #[arg(long, requires = "segment_with")]
        labels: Option<PathBuf>,
        /// Print the figures as JSON (frames, psnr_db, ssim, bits_per_frame,
        /// compression_ratio, temporal_mean_psnr_db, segmentation).
        #[arg(long)]
        json: bool,
        /// auto (a hardware GPU, else the CPU backend), wgpu or cpu.
        #[arg(long, default_value = "auto")]
        device: crate::models::DeviceChoice,
    },
    /// Train a U-Net (configs/unet_*.json) or the UME encoder
    /// (configs/ume_*.json) on a labelled dataset folder; the best model is
    /// saved as the checkpoint.
    #[cfg(feature = "ml")]
    Train {
        /// Training configuration (model / data / training sections).
        #[arg(long)]
        config: PathBuf,
        /// Dataset folder (BraTS, ACDC, TotalSegmentator, MSD, nnU-Net layouts).
        #[arg(long)]
        data: PathBuf,
        /// Checkpoint folder to write (a new run refuses one that already
        /// holds a trained model).
        #[arg(long)]
        out: PathBuf,
        /// Continue the run saved in OUT/last (a new run when there is none).
        #[arg(long)]
        resume: bool,
        /// Override the config's step count.
        #[arg(long)]
        steps: Option<usize>,
        /// auto (a hardware GPU, else the CPU backend), wgpu or cpu.
        #[arg(long, default_value = "auto")]
        device: crate::models::DeviceChoice,
    },
    /// Convert a PyTorch state_dict (.pth) of the seed U-Net (enc1..enc4,
    /// bottleneck, up4..up1, dec4..dec1, final_conv) into a checkpoint.
    #[cfg(feature = "ml")]
    ImportPth {
        /// The .pth file.
        pth: PathBuf,
        /// A training config (configs/unet_*.json) or a checkpoint's
        /// config.json describing the network.
        #[arg(long)]
        config: PathBuf,
        /// Checkpoint folder to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write procedural phantom cases with exact ground truth.
    Phantom {
        /// brats, acdc or totalseg.
        #[arg(long)]
        kind: crate::phantom::Kind,
        /// Number of cases.
        #[arg(long, default_value_t = 1)]
        cases: usize,
        /// Random seed (same seed, same files).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// small (tests, quick training) or full (the real datasets' sizes).
        #[arg(long, default_value = "small")]
        size: crate::phantom::Size,
    },
    /// Measure UME against reference tools (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Open files or a dataset folder in the viewer.
    View {
        /// Image files (NIfTI, Analyze, NRRD, MetaImage; shown as layers), a
        /// DICOM file or folder, or one dataset folder.
        paths: Vec<PathBuf>,
        /// A label map for the image.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// A predicted label map to compare with the labels (metrics panel).
        #[arg(long)]
        pred: Option<PathBuf>,
        /// Save a PNG of the window once the data is shown, then exit.
        #[arg(long, value_name = "OUT.png")]
        screenshot: Option<PathBuf>,
        /// Where File → Save labels (Ctrl+S) writes, without a dialog.
        #[arg(long, value_name = "PATH")]
        save_labels_to: Option<PathBuf>,
    },
    /// Generate the built-in demo case (if needed) and describe it in text.
    Demo,
    /// Convert an image (or a DICOM series) to NIfTI, NRRD or MetaImage,
    /// geometry kept (the output format follows the name: .nii, .nii.gz,
    /// .nrrd, .mha).
    Convert {
        /// Any file UME reads, or a folder of DICOM files.
        input: PathBuf,
        /// Output file.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// The DICOM series to convert when the folder holds several.
        #[arg(long, value_name = "UID")]
        series: Option<String>,
    },
}

fn parse_index(s: &str) -> Result<Vec<usize>, String> {
    let v: Result<Vec<usize>, _> = s.split(',').map(|p| p.trim().parse::<usize>()).collect();
    match v {
        Ok(v) if (3..=5).contains(&v.len()) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a voxel index like 10,20,30 or 10,20,30,4"
        )),
    }
}

/// Run the CLI; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text
/// the message already holds (core errors name their cause in their own
/// text, so anyhow's `{:#}` printed "No such file or directory" twice).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn run(cli: Cli) -> Result<()> {
    // No subcommand: the app on the built-in demo (text demo without the GUI).
    let default = if cfg!(feature = "gui") {
        Command::View {
            paths: Vec::new(),
            labels: None,
            pred: None,
            screenshot: None,
            save_labels_to: None,
        }
    } else {
        Command::Demo
    };
    match cli.command.unwrap_or(default) {
        Command::View {
            paths,
            labels,
            pred,
            screenshot,
            save_labels_to,
        } => view(paths, labels, pred, screenshot, save_labels_to),
        Command::Info {
            path,
            json,
            at,
            series,
        } => info::run(&path, json, &at, series.as_deref()),
        #[cfg(feature = "ml")]
        Command::Train {
            config,
            data,
            out,
            resume,
            steps,
            device,
        } => segment::train(&config, &data, &out, resume, steps, device),
        #[cfg(feature = "ml")]
        Command::ImportPth { pth, config, out } => segment::import_pth(&pth, &config, &out),
        #[cfg(feature = "ml")]
        Command::Segment {
            input,
            out,
            model,
            device,
            batch,
        } => segment::run(&input, &out, model.as_deref(), device, batch),
        #[cfg(feature = "ml")]
        Command::Tokenize {
            input,
            model,
            out,
            tokens,
            segment_with,
            labels,
            json,
            device,
        } => tokenize::run(
            &tokenize::TokenizeArgs {
                input: &input,
                model: &model,
                out: &out,
                tokens: tokens.as_deref(),
                segment_with: segment_with.as_deref(),
                labels: labels.as_deref(),
                json,
            },
            device,
        ),
        #[cfg(feature = "ml")]
        Command::Suggest {
            input,
            model,
            k,
            json,
            device,
        } => suggest::run(&input, model.as_deref(), k, json, device),
        Command::Keyframes {
            input,
            k,
            strategy,
            model,
            json,
        } => keyframes::run(&input, k, strategy, model.as_deref(), json),
        Command::Eval(args) => eval::run(&args),
        Command::Phantom {
            kind,
            cases,
            seed,
            out,
            size,
        } => {
            let bar = progress_bar(cases as u64, "writing phantom cases");
            let dirs = crate::phantom::generate(kind, size, seed, cases, &out, |done, _| {
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            for d in dirs {
                say!("{}", d.display());
            }
            Ok(())
        }
        Command::Bench { what } => bench::run(what),
        Command::Convert { input, out, series } => {
            let v = crate::io::load_with(&input, series.as_deref())?;
            for w in &v.warnings {
                say!("warning: {w}");
            }
            crate::io::save_any(&v, &out)?;
            say!(
                "{} → {} ({:?}, {})",
                input.display(),
                out.display(),
                v.file_shape,
                v.geometry.orientation()
            );
            Ok(())
        }
        Command::Demo => {
            let dir = demo_dir()?;
            let (t1, tissue) = crate::demo::brain(&dir)?;
            info::run(&t1, false, &[], None)?;
            let labels = crate::io::load_labels(&tissue)?;
            let sp = labels.geometry.spacing_mm();
            let ml = sp[0] * sp[1] * sp[2] / 1000.0;
            let counts = labels.counts();
            say!("labels {}:", tissue.display());
            for (id, name) in [(1, "grey matter"), (2, "white matter")] {
                let n = counts.get(id).copied().unwrap_or(0);
                say!("  {id} {name:<13} {:>8.1} mL", n as f64 * ml);
            }
            say!(
                "open it with: ume view (no arguments), or ume view {} --labels {}",
                t1.display(),
                tissue.display()
            );
            Ok(())
        }
    }
}

#[cfg(feature = "gui")]
fn view(
    paths: Vec<PathBuf>,
    labels: Option<PathBuf>,
    prediction: Option<PathBuf>,
    screenshot: Option<PathBuf>,
    save_labels_to: Option<PathBuf>,
) -> Result<()> {
    for p in paths.iter().chain(labels.iter()).chain(prediction.iter()) {
        if !p.exists() {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
    }
    crate::app::run(crate::app::ViewOptions {
        paths,
        labels,
        screenshot,
        demo_dir: Some(demo_dir()?),
        prediction,
        save_labels_to,
    })
}

#[cfg(not(feature = "gui"))]
fn view(
    _: Vec<PathBuf>,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
    _: Option<PathBuf>,
) -> Result<()> {
    anyhow::bail!(
        "this ume was built without the `gui` feature; rebuild with default features to open the viewer"
    )
}

/// The per-user cache folder for the demo case.
fn demo_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(base.join("ume").join("demo"))
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(crate) fn progress_bar(len: u64, msg: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(msg);
    bar
}
