//! `ume tokenize` and the tokenizer's `ume train`: frames to tokens and
//! back ([`crate::models::tokenize`]), and training from a dataset folder
//! ([`crate::training::titok`]).

use crate::models::tokenize::{frames_of, load_titok, tokenize_volume};
use crate::models::{DeviceChoice, device};
use crate::training::titok::{TitokEvent, TitokTrainConfig, train_titok};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// `ume tokenize INPUT --model CKPT -o RECON [--tokens T.json] [--json]`.
pub(super) fn run(
    input: &Path,
    model: &Path,
    out: &Path,
    tokens: Option<&Path>,
    json: bool,
    choice: DeviceChoice,
) -> Result<()> {
    let dev = device(choice);
    let (config, titok) = load_titok(model, &dev)?;
    let v = crate::io::load(input)?;
    let total = v.dims[2] * v.frames.max(1);
    let bar = super::progress_bar(total as u64, "tokenizing frames");
    let t = tokenize_volume(&config, &titok, &v, &dev, 16, |done, _| {
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    crate::io::save_volume(&t.reconstruction, out)
        .with_context(|| format!("writing {}", out.display()))?;
    if let Some(path) = tokens {
        let text = serde_json::to_vec(&serde_json::json!({
            "num_latent_tokens": config.num_latent_tokens,
            "codebook_size": config.codebook_size,
            "frames": t.tokens,
        }))?;
        crate::io::write_atomic(path, &text).with_context(|| path.display().to_string())?;
    }
    let finite_mean = |v: &[f64]| {
        let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        f.iter().sum::<f64>() / f.len().max(1) as f64
    };
    let bits = config.bits_per_frame();
    let raw_bits = (v.dims[0] * v.dims[1]) as f64 * v.dtype.bytes_per_voxel() as f64 * 8.0;
    let (psnr, ssim) = (finite_mean(&t.psnr_db), finite_mean(&t.ssim));
    let baseline =
        (!t.temporal_mean_psnr_db.is_empty()).then(|| finite_mean(&t.temporal_mean_psnr_db));
    if json {
        let frames: Vec<serde_json::Value> = t
            .psnr_db
            .iter()
            .zip(&t.ssim)
            .enumerate()
            .map(|(i, (p, s))| serde_json::json!({"frame": i, "psnr_db": p, "ssim": s}))
            .collect();
        let report = serde_json::json!({
            "frames": frames,
            "psnr_db": psnr,
            "ssim": ssim,
            "bits_per_frame": bits,
            "compression_ratio": raw_bits / bits,
            "tokens_per_frame": config.num_latent_tokens,
            "temporal_mean_psnr_db": baseline,
        });
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!(
            "{} frames → {} tokens each ({bits:.0} bits, {:.0}× smaller than the raw {}-bit voxels)",
            t.tokens.len(),
            config.num_latent_tokens,
            raw_bits / bits,
            v.dtype.bytes_per_voxel() * 8
        );
        say!(
            "PSNR {psnr:.2} dB, SSIM {ssim:.4} (means over frames); wrote {}",
            out.display()
        );
        if let Some(b) = baseline {
            say!(
                "each slice's temporal-mean frame: PSNR {b:.2} dB (the tokens {:+.2} dB)",
                psnr - b
            );
        }
    }
    Ok(())
}

/// `ume train` with a `"kind": "titok"` config: the frames of every case's
/// first image, the last `val_fraction` of the cases validating.
pub(super) fn train(
    config_path: &Path,
    data: &Path,
    out: &Path,
    steps: Option<usize>,
    choice: DeviceChoice,
) -> Result<()> {
    let mut config = TitokTrainConfig::load(config_path)?;
    if let Some(steps) = steps {
        config.training.steps = steps;
        config
            .check()
            .map_err(|e| anyhow::anyhow!("--steps: {e}"))?;
    }
    if out.join("config.json").is_file() {
        anyhow::bail!(
            "{} already holds a trained model; choose another output folder",
            out.display()
        );
    }
    let ds = crate::dataset::open(data)?;
    let mut per_case = Vec::new();
    for i in 0..ds.cases.len() {
        let case = ds.load_case(i)?;
        if let Some((_, v)) = case.images.first() {
            per_case.push(frames_of(v, config.model.image_size).0);
        }
    }
    let n = per_case.len();
    let n_val = if n < 2 {
        0
    } else {
        ((n as f64 * config.data.val_fraction).round() as usize).clamp(1, n - 1)
    };
    let val: Vec<Vec<f32>> = per_case
        .split_off(n - n_val)
        .into_iter()
        .flatten()
        .collect();
    let train: Vec<Vec<f32>> = per_case.into_iter().flatten().collect();
    eprintln!(
        "{} training and {} validation frames ({} and {n_val} cases)",
        train.len(),
        val.len(),
        n - n_val
    );
    let bar = super::progress_bar(config.training.steps as u64, "training");
    let summary = train_titok(
        &config,
        &train,
        &val,
        out,
        &device(choice),
        &AtomicBool::new(false),
        |e| match e {
            TitokEvent::Step { step, .. } => bar.set_position(step as u64 + 1),
            TitokEvent::Validated {
                step,
                psnr_db,
                codes_used,
                best,
            } => super::segment::log(
                &bar,
                format!(
                    "step {:>6}  validation PSNR {psnr_db:.2} dB, {codes_used} codes used{}",
                    step + 1,
                    if best { "  (best, saved)" } else { "" }
                ),
            ),
            TitokEvent::Reseeded { step, entries } => super::segment::log(
                &bar,
                format!(
                    "step {:>6}  {entries} dead codebook entries re-seeded",
                    step + 1
                ),
            ),
        },
    )?;
    bar.finish_and_clear();
    say!(
        "best validation PSNR {:.2} dB at step {}; model saved in {}",
        summary.best_psnr_db,
        summary.best_step + 1,
        summary.out.display()
    );
    Ok(())
}
