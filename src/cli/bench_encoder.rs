//! `ume bench encoder`: seconds per volume of the UME encoder (embedding,
//! keyframe selection and fusion into the keyframe context; and with every
//! frame segmented) on UME's CPU backend at a given thread count, against
//! the PyTorch reference (`scripts/encoder_reference.py bench`, the same
//! modules and sizes) at the same count, in the same run; with `--wgpu`,
//! the wgpu adapter too. The goal is ≥ 1.0× PyTorch at one thread.

use crate::models::{DeviceChoice, describe, device};
use crate::training::bench::encoder_timing;
use crate::training::ume_config::UmeTrainConfig;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Options of `ume bench encoder`.
#[derive(clap::Args, Debug)]
pub(super) struct EncoderBench {
    /// A UME config file (its `model` section is used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames per volume.
    #[arg(long, default_value_t = 128)]
    frames: usize,
    /// Timed runs; the median counts.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Threads, wgpu and the Python with PyTorch.
    #[command(flatten)]
    versus: super::bench::VersusTorch,
}

/// PyTorch's (forward, segment-all) seconds, or why there are none.
fn reference(b: &EncoderBench, config: &Path) -> Result<(f64, f64), String> {
    let args = [
        "--config".to_string(),
        config.display().to_string(),
        "--frames".into(),
        b.frames.to_string(),
        "--threads".into(),
        b.versus.threads.to_string(),
        "--reps".into(),
        b.reps.to_string(),
    ];
    let j = super::bench::python_reference(&b.versus.python, "encoder_reference.py", &args)?;
    let get = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
    say!(
        "PyTorch {} CPU, {} thread(s): {:.3} s per volume to the keyframe context; {:.3} s with all {} frames segmented",
        j["torch"].as_str().unwrap_or("?"),
        b.versus.threads,
        get("forward_s"),
        get("segment_all_s"),
        b.frames
    );
    Ok((get("forward_s"), get("segment_all_s")))
}

pub(super) fn run(b: &EncoderBench) -> Result<()> {
    let (model, config_path) = match &b.config {
        Some(path) => (UmeTrainConfig::load(path)?.model, path.clone()),
        None => {
            let standard: UmeTrainConfig =
                serde_json::from_str(include_str!("../../configs/ume_brats.json"))
                    .context("configs/ume_brats.json")?;
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/ume_brats.json");
            (standard.model, path)
        }
    };
    model.check().map_err(anyhow::Error::msg)?;
    if b.frames == 0 || b.frames > model.max_frames {
        bail!("--frames must be 1 to max_frames {}", model.max_frames);
    }
    let pool = b.versus.pool()?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    say!(
        "UME encoder {} wide, {} layers, {} heads, patch {}, {}x{}, {} modalities x {} frames, {} keyframes; {} thread(s) of {cores}",
        model.embed_dim,
        model.num_layers,
        model.num_heads,
        model.patch_size,
        model.image_size[0],
        model.image_size[1],
        model.input_channels,
        b.frames,
        model.max_keyframes,
        b.versus.threads
    );
    let torch = match reference(b, &config_path) {
        Ok(t) => Some(t),
        Err(why) => {
            say!("PyTorch reference not run ({why}); ratios omitted");
            None
        }
    };
    // A ratio > 1 means UME is faster.
    let ratio = |ours: f64, theirs: Option<f64>| {
        theirs.map_or(String::new(), |t| format!(" ({:.2}x PyTorch)", t / ours))
    };
    let dev = device(DeviceChoice::Cpu);
    let t = pool.install(|| encoder_timing(&model, &dev, b.frames, b.reps));
    say!(
        "{}, {} thread(s): {:.3} s per volume to the keyframe context{}; {:.3} s with all {} frames segmented{}",
        describe(DeviceChoice::Cpu),
        b.versus.threads,
        t.forward_s,
        ratio(t.forward_s, torch.map(|t| t.0)),
        t.segment_all_s,
        b.frames,
        ratio(t.segment_all_s, torch.map(|t| t.1)),
    );
    if b.versus.wgpu {
        let t = encoder_timing(&model, &device(DeviceChoice::Wgpu), b.frames, b.reps);
        say!(
            "{}: {:.3} s per volume to the keyframe context; {:.3} s with all {} frames segmented",
            describe(DeviceChoice::Wgpu),
            t.forward_s,
            t.segment_all_s,
            b.frames
        );
    }
    Ok(())
}
