//! `ume tokenize` and the tokenizer's `ume train`: frames to tokens and
//! back ([`crate::models::tokenize`]), and training from a dataset folder
//! ([`crate::training::titok`]).

use crate::models::tokenize::{frames_of, load_titok, tokenize_volume};
use crate::models::{DeviceChoice, device};
use crate::training::RunOptions;
use crate::training::titok::{TitokEvent, TitokTrainConfig, train_titok};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// What `ume tokenize` was asked for.
pub(super) struct TokenizeArgs<'a> {
    pub input: &'a Path,
    pub model: &'a Path,
    pub out: &'a Path,
    pub tokens: Option<&'a Path>,
    pub segment_with: Option<&'a str>,
    pub labels: Option<&'a Path>,
    pub json: bool,
}

/// `ume tokenize INPUT --model CKPT -o RECON [--tokens T.json]
/// [--segment-with MODEL [--labels GT]] [--json]`.
pub(super) fn run(a: &TokenizeArgs, choice: DeviceChoice) -> Result<()> {
    let TokenizeArgs {
        input,
        model,
        out,
        tokens,
        json,
        ..
    } = *a;
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
    let check = match a.segment_with {
        Some(spec) => Some(segmentation_check(
            &v,
            &t.reconstruction,
            spec,
            a.labels,
            choice,
        )?),
        None => None,
    };
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
            "segmentation": check.as_ref().map(SegmentationCheck::to_json),
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
        if let Some(c) = &check {
            c.print();
        }
    }
    Ok(())
}

/// The seed's clinical check: a segmenter's Dice on the reconstruction
/// against its Dice on the original.
struct SegmentationCheck {
    model: String,
    /// "labels" (a ground truth file) or "original" (the model's own
    /// segmentation of the original, so the reconstruction's Dice is the
    /// agreement and the original's is 1).
    reference: &'static str,
    /// (label id, Dice on the original, Dice on the reconstruction).
    structures: Vec<(u16, f64, f64)>,
}

impl SegmentationCheck {
    fn means(&self) -> (f64, f64) {
        let mean = |f: &dyn Fn(&(u16, f64, f64)) -> f64| {
            let v: Vec<f64> = self
                .structures
                .iter()
                .map(f)
                .filter(|d| d.is_finite())
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        (mean(&|s| s.1), mean(&|s| s.2))
    }

    fn to_json(&self) -> serde_json::Value {
        use crate::metrics::json::json_value;
        let (o, r) = self.means();
        serde_json::json!({
            "model": self.model,
            "reference": self.reference,
            "structures": self.structures.iter().map(|&(label, o, r)| serde_json::json!({
                "label": label,
                "dice_original": json_value(o),
                "dice_reconstruction": json_value(r),
            })).collect::<Vec<_>>(),
            "mean_dice_original": json_value(o),
            "mean_dice_reconstruction": json_value(r),
        })
    }

    fn print(&self) {
        let (o, r) = self.means();
        let against = match self.reference {
            "labels" => "the given labels",
            _ => "its segmentation of the original",
        };
        say!(
            "{} against {against}: mean Dice {o:.4} on the original, {r:.4} on the reconstruction ({:+.4})",
            self.model,
            r - o
        );
        for &(label, o, r) in &self.structures {
            say!("  label {label}: {o:.4} → {r:.4}");
        }
    }
}

/// Segment the original and the reconstruction with `spec` and score both
/// against `labels` (or against the original's segmentation).
fn segmentation_check(
    original: &crate::volume::Volume,
    reconstruction: &crate::volume::Volume,
    spec: &str,
    labels: Option<&Path>,
    choice: DeviceChoice,
) -> Result<SegmentationCheck> {
    use crate::metrics::confusion::Confusion;
    use crate::metrics::dice_from_counts;
    let dev = &device(choice);
    let segmenter = crate::models::Segmenter::load(spec, dev)?;
    if segmenter.in_channels() != 1 {
        anyhow::bail!(
            "--segment-with {spec}: the model takes {} images; the tokenizer reconstructs one",
            segmenter.in_channels()
        );
    }
    let total = 2 * original.dims[2] * original.frames.max(1);
    let bar = super::progress_bar(total as u64, "segmenting original and reconstruction");
    let seg = |v: &crate::volume::Volume, offset: usize| {
        segmenter.segment(&[v], dev, 8, |done, _| {
            bar.set_position((offset + done) as u64);
            true
        })
    };
    let on_original = seg(original, 0)?;
    let on_reconstruction = seg(reconstruction, total / 2)?;
    bar.finish_and_clear();
    let (reference, name) = match labels {
        Some(path) => {
            let gt = crate::io::load_labels(path)?;
            if gt.dims != original.dims || gt.frames.max(1) != original.frames.max(1) {
                anyhow::bail!(
                    "{}: labels of {:?} × {} frame(s) do not fit the image's {:?} × {}",
                    path.display(),
                    gt.dims,
                    gt.frames.max(1),
                    original.dims,
                    original.frames.max(1)
                );
            }
            (gt, "labels")
        }
        None => (on_original.clone(), "original"),
    };
    let (a, b) = (
        Confusion::new(&reference, &on_original),
        Confusion::new(&reference, &on_reconstruction),
    );
    let mut ids = a.present();
    ids.extend(b.present());
    ids.sort_unstable();
    ids.dedup();
    let dice = |c: &Confusion, id| {
        let (tp, fp, fn_) = c.tp_fp_fn(id);
        dice_from_counts(tp, fp, fn_)
    };
    Ok(SegmentationCheck {
        model: spec.to_string(),
        reference: name,
        structures: ids
            .into_iter()
            .map(|id| (id, dice(&a, id), dice(&b, id)))
            .collect(),
    })
}

/// `ume train` with a `"kind": "titok"` config: the frames of every case's
/// first image, the last `val_fraction` of the cases validating;
/// `resume` continues `out/last/`.
pub(super) fn train(
    config_path: &Path,
    data: &Path,
    out: &Path,
    resume: bool,
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
    let run = RunOptions {
        out: out.to_path_buf(),
        resume,
        device: device(choice),
        init: None,
        cpu_engine: false,
    };
    let summary = train_titok(
        &config,
        &train,
        &val,
        &run,
        &AtomicBool::new(false),
        |e| match e {
            TitokEvent::Started { first_step } if first_step > 0 => {
                bar.set_position(first_step as u64);
                super::segment::log(&bar, format!("resumed at step {first_step}"));
            }
            TitokEvent::Started { .. } => {}
            TitokEvent::Step { step, .. } => bar.set_position(step as u64 + 1),
            TitokEvent::Validated {
                step,
                psnr_db,
                train_psnr_db,
                codes_used,
                best,
            } => super::segment::log(
                &bar,
                format!(
                    "step {:>6}  validation PSNR {psnr_db:.2} dB (training {train_psnr_db:.2} dB), {codes_used} codes used{}",
                    step + 1,
                    if best { "  (best, saved)" } else { "" }
                ),
            ),
            TitokEvent::Quantising { step } => super::segment::log(
                &bar,
                format!(
                    "step {:>6}  warm-up done: codebook seeded from the encoder's codes, quantising",
                    step + 1
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
