//! `ume bench tokenizer`: frames per second of a tokenizer's encode +
//! quantise + decode (frames → tokens → frames, eval mode, random weights)
//! on UME's CPU backend at a given thread count, against the PyTorch
//! reference (`scripts/titok_reference.py bench`, the same modules and
//! sizes) at the same count, in the same run; with `--wgpu`, the wgpu
//! adapter too. The goal is ≥ 1.0× PyTorch at one thread.

use crate::models::{DeviceChoice, describe, device};
use crate::training::bench::{tokenizer_engine_frames_per_s, tokenizer_frames_per_s};
use crate::training::titok::TitokTrainConfig;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Options of `ume bench tokenizer`.
#[derive(clap::Args, Debug)]
pub(super) struct TokenizerBench {
    /// A tokenizer config (its `model` section is used); default: the
    /// seed's `configs/titok_acdc.json` (256×256, patch 16, TiTok-S widths).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames per pass.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Timed passes; the fastest counts.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Threads, wgpu and the Python with PyTorch.
    #[command(flatten)]
    versus: super::bench::VersusTorch,
}

pub(super) fn run(b: &TokenizerBench) -> Result<()> {
    let (config, config_path) = match &b.config {
        Some(path) => (TitokTrainConfig::load(path)?.model, path.clone()),
        None => {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/titok_acdc.json");
            let c: TitokTrainConfig =
                serde_json::from_str(include_str!("../../configs/titok_acdc.json"))
                    .context("configs/titok_acdc.json")?;
            (c.model, path)
        }
    };
    config.check().map_err(anyhow::Error::msg)?;
    anyhow::ensure!(b.batch > 0, "--batch must be at least 1");
    let pool = b.versus.pool()?;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    say!(
        "tokenizer {}x{}, patch {}, {} tokens of a {} x {} codebook, encoder {}x{}, decoder {}x{}; batch {}, {} thread(s) of {cores}",
        config.image_size[0],
        config.image_size[1],
        config.patch_size,
        config.num_latent_tokens,
        config.codebook_size,
        config.code_dim,
        config.encoder_width,
        config.encoder_depth,
        config.decoder_width,
        config.decoder_depth,
        b.batch,
        b.versus.threads,
    );
    let args = [
        "--config".to_string(),
        config_path.display().to_string(),
        "--threads".into(),
        b.versus.threads.to_string(),
        "--batch".into(),
        b.batch.to_string(),
        "--reps".into(),
        b.reps.to_string(),
    ];
    let torch = match super::bench::python_reference(&b.versus.python, "titok_reference.py", &args)
    {
        Ok(j) => {
            let fps = j["frames_per_s"].as_f64().unwrap_or(f64::NAN);
            say!(
                "PyTorch {} CPU, {} thread(s): {fps:.2} frames/s ({:.1} ms a frame)",
                j["torch"].as_str().unwrap_or("?"),
                b.versus.threads,
                1e3 / fps
            );
            Some(fps)
        }
        Err(why) => {
            say!("PyTorch reference not run ({why}); ratios omitted");
            None
        }
    };
    let ratio = |fps: f64| torch.map_or(String::new(), |t| format!(", {:.2}x PyTorch", fps / t));
    let dev = device(DeviceChoice::Cpu);
    let fps = pool.install(|| tokenizer_frames_per_s(&config, &dev, b.batch, b.reps));
    say!(
        "{}, {} thread(s): {fps:.2} frames/s ({:.1} ms a frame){}",
        describe(DeviceChoice::Cpu),
        b.versus.threads,
        1e3 / fps,
        ratio(fps)
    );
    let fps = pool.install(|| tokenizer_engine_frames_per_s(&config, b.batch, b.reps));
    say!(
        "UME CPU engine, {} thread(s): {fps:.2} frames/s ({:.1} ms a frame){}",
        b.versus.threads,
        1e3 / fps,
        ratio(fps)
    );
    if b.versus.wgpu {
        let fps = tokenizer_frames_per_s(&config, &device(DeviceChoice::Wgpu), b.batch, b.reps);
        say!(
            "{}: {fps:.2} frames/s ({:.2} ms a frame)",
            describe(DeviceChoice::Wgpu),
            1e3 / fps
        );
    }
    Ok(())
}
