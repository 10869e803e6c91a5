//! `ume bench suggest`: does labelling the slices `ume suggest` ranks first
//! teach a model more than labelling random slices, or every k-th? An
//! annotator is simulated on BraTS phantoms: a weak model (a short training
//! on one case) is fine-tuned on N = 2, 4, 8, 16 slices of another case,
//! their ground truth copied, chosen by each strategy; every fine-tune runs
//! the same steps with the same seed; the Dice of the result on held-out
//! cases (never labelled) is reported against N. Random choice is averaged
//! over several draws. Research often finds per-slice uncertainty sampling
//! no better than random; this measures it rather than assuming either.

use crate::models::segment::{InputNorm, SegmenterConfig, load_checkpoint};
use crate::models::suggest::score_slices;
use crate::models::{DeviceChoice, OutputMode, Segmenter, UNet2dConfig, device};
use crate::phantom::{Size, brats_case};
use crate::training::augment::Rng;
use crate::training::data::Sample;
use crate::training::{RunOptions, TrainConfig, TrainingData, train, validate};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// How slices are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pick {
    Suggest,
    Random,
    EveryK,
}

impl Pick {
    fn name(self) -> &'static str {
        match self {
            Pick::Suggest => "suggest",
            Pick::Random => "random",
            Pick::EveryK => "every-k",
        }
    }
}

/// What to run.
pub(super) struct Options {
    pub steps: usize,
    pub weak_steps: usize,
    pub cases: usize,
    pub random_draws: usize,
    pub plot: PathBuf,
}

/// `n` slices of `nz`: the top scores, a random draw, or evenly spaced.
fn pick(how: Pick, scores: &[f64], n: usize, rng: &mut Rng) -> Vec<usize> {
    let nz = scores.len();
    let n = n.min(nz);
    let mut out: Vec<usize> = match how {
        Pick::Suggest => crate::models::suggest::SliceScores {
            axis: crate::annotation::slices::AXIS,
            scores: scores.to_vec(),
        }
        .top(n)
        .into_iter()
        .map(|(k, _)| k)
        .collect(),
        Pick::Random => {
            let mut all: Vec<usize> = (0..nz).collect();
            for i in 0..n {
                let j = i + rng.below(nz - i);
                all.swap(i, j);
            }
            all.truncate(n);
            all
        }
        Pick::EveryK => (0..n).map(|i| (2 * i + 1) * nz / (2 * n)).collect(),
    };
    out.sort_unstable();
    out
}

fn config(steps: usize) -> TrainConfig {
    let model = SegmenterConfig {
        network: UNet2dConfig::new(4, 4)
            .with_features(vec![8, 16, 32])
            .with_bottleneck(32)
            .with_output(OutputMode::MultiClass),
        size: 48,
        norm: InputNorm::ZScore,
        label_ids: vec![1, 2, 4],
        context_slices: 0,
    };
    let mut c = TrainConfig::fine_tune(&model, steps, 3e-3);
    // Validate (and so keep the model) once, at the end: no strategy gets
    // to pick its best step on the held-out cases.
    c.training.val_every = steps;
    c.training.checkpoint_every = steps;
    c.training.seed = 11;
    c
}

/// Train `samples` for the config's steps from `init` (or from scratch)
/// into `out`; the held-out Dice (mean over structures) of the result.
fn fine_tune(
    config: &TrainConfig,
    init: Option<&Path>,
    samples: Vec<Sample>,
    eval: &[Sample],
    out: &Path,
) -> Result<f64> {
    let _ = std::fs::remove_dir_all(out);
    let data = TrainingData {
        train: samples,
        val: Vec::new(),
        present: vec![1, 2, 4],
    };
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume: false,
        device: device(DeviceChoice::Cpu),
        init: init.map(|p| p.display().to_string()),
        cpu_engine: true,
    };
    train(config, &data, &opts, &AtomicBool::new(false), |_| {})?;
    let (c, m) = load_checkpoint(out, &opts.device)?;
    let dice = validate(&c, &m, eval, &opts.device, 16)?;
    let finite: Vec<f64> = dice.iter().map(|d| d.1).filter(|d| d.is_finite()).collect();
    Ok(finite.iter().sum::<f64>() / finite.len().max(1) as f64)
}

fn sample(config: &TrainConfig, seed: u64, n: usize) -> Result<Sample> {
    let c = brats_case(seed, n, Size::Small);
    let channels: Vec<&crate::volume::Volume> = c.images.iter().map(|(_, v)| v).collect();
    Ok(Sample::new(
        c.id.clone(),
        &channels,
        0,
        c.labels.clone(),
        config,
    )?)
}

pub(super) fn run(o: &Options) -> Result<()> {
    const NS: [usize; 4] = [2, 4, 8, 16];
    let tmp = std::env::temp_dir().join(format!("ume-bench-suggest-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| tmp.display().to_string())?;
    let dev = device(DeviceChoice::Cpu);
    // The weak model: a short training on one case.
    let weak = tmp.join("weak");
    let weak_config = config(o.weak_steps);
    let eval: Vec<Sample> = (1..=3)
        .map(|n| sample(&weak_config, 950, n))
        .collect::<Result<_>>()?;
    let weak_dice = fine_tune(
        &weak_config,
        None,
        vec![sample(&weak_config, 900, 1)?],
        &eval,
        &weak,
    )?;
    say!(
        "weak model: {} steps on one BraTS phantom, held-out Dice {weak_dice:.3}",
        o.weak_steps
    );
    let tune = config(o.steps);
    let model = Segmenter::load(&weak.display().to_string(), &dev)?;
    let picks = [Pick::Suggest, Pick::Random, Pick::EveryK];
    // dice[p][i]: summed over cases (and draws), then averaged.
    let mut sums = vec![vec![0.0f64; NS.len()]; picks.len()];
    let mut counts = vec![vec![0usize; NS.len()]; picks.len()];
    let clock = std::time::Instant::now();
    for case in 1..=o.cases {
        let c = brats_case(901, case, Size::Small);
        let refs: Vec<&crate::volume::Volume> = c.images.iter().map(|(_, v)| v).collect();
        let scores = score_slices(&model, &refs, &dev, |_, _| true)?.scores;
        for (p, &how) in picks.iter().enumerate() {
            let draws = if how == Pick::Random {
                o.random_draws
            } else {
                1
            };
            for draw in 0..draws {
                let mut rng = Rng::new(1000 * case as u64 + draw as u64);
                for (i, &n) in NS.iter().enumerate() {
                    let slices = pick(how, &scores, n, &mut rng);
                    let s = sample(&tune, 901, case)?.with_labelled_slices(&slices)?;
                    let d = fine_tune(&tune, Some(&weak), vec![s], &eval, &tmp.join("tuned"))?;
                    sums[p][i] += d;
                    counts[p][i] += 1;
                    eprintln!(
                        "case {case} {} N={n} slices {slices:?}: held-out Dice {d:.3}",
                        how.name()
                    );
                }
            }
        }
    }
    let mean: Vec<Vec<f64>> = sums
        .iter()
        .zip(&counts)
        .map(|(s, c)| s.iter().zip(c).map(|(s, &c)| s / c.max(1) as f64).collect())
        .collect();
    say!(
        "held-out Dice after fine-tuning {} steps on N labelled slices ({} annotated cases, random averaged over {} draws; {:.0} s):",
        o.steps,
        o.cases,
        o.random_draws,
        clock.elapsed().as_secs_f64()
    );
    say!("| N | suggest | random | every-k | suggest − random |");
    say!("|---|---|---|---|---|");
    for (i, n) in NS.iter().enumerate() {
        say!(
            "| {n} | {:.3} | {:.3} | {:.3} | {:+.3} |",
            mean[0][i],
            mean[1][i],
            mean[2][i],
            mean[0][i] - mean[1][i]
        );
    }
    let behind: Vec<usize> = NS
        .iter()
        .enumerate()
        .filter(|(i, _)| mean[0][*i] < mean[1][*i])
        .map(|(_, n)| *n)
        .collect();
    if behind.is_empty() {
        say!("suggest ≥ random at every N");
    } else {
        say!("suggest < random at N = {behind:?}");
    }
    #[cfg(feature = "gui")]
    {
        plot(&mean, &NS, weak_dice, &o.plot)?;
        say!("plot: {}", o.plot.display());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

/// Dice against N as a PNG: suggest magenta, random grey, every-k cyan,
/// the weak model's Dice a dashed line; N on a log₂ axis, Dice 0–1.
#[cfg(feature = "gui")]
fn plot(mean: &[Vec<f64>], ns: &[usize], weak: f64, path: &Path) -> Result<()> {
    let (w, h, m) = (480u32, 320u32, 30.0f64);
    let mut img = image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    let x_of = |i: usize| m + (f64::from(w) - 2.0 * m) * i as f64 / (ns.len() - 1).max(1) as f64;
    let y_of = |d: f64| f64::from(h) - m - (f64::from(h) - 2.0 * m) * d.clamp(0.0, 1.0);
    let mut dot = |x: f64, y: f64, c: [u8; 3], r: i64| {
        for dy in -r..=r {
            for dx in -r..=r {
                let (px, py) = (x as i64 + dx, y as i64 + dy);
                if px >= 0 && py >= 0 && (px as u32) < w && (py as u32) < h {
                    img.put_pixel(px as u32, py as u32, image::Rgb(c));
                }
            }
        }
    };
    // Axes and grid (Dice 0, 0.25, …, 1).
    for g in 0..=4 {
        let y = y_of(f64::from(g) / 4.0);
        for x in (m as i64)..(i64::from(w) - m as i64) {
            dot(x as f64, y, [220, 220, 220], 0);
        }
    }
    for i in 0..ns.len() {
        for y in (m as i64)..(i64::from(h) - m as i64) {
            dot(x_of(i), y as f64, [235, 235, 235], 0);
        }
    }
    for x in (m as i64)..(i64::from(w) - m as i64) {
        if (x / 6) % 2 == 0 {
            dot(x as f64, y_of(weak), [120, 120, 120], 0);
        }
    }
    let colours = [[210, 40, 190], [110, 110, 110], [20, 170, 200]];
    for (series, c) in mean.iter().zip(colours) {
        for i in 0..series.len() {
            if i + 1 < series.len() {
                for s in 0..=100 {
                    let t = f64::from(s) / 100.0;
                    let x = x_of(i) + (x_of(i + 1) - x_of(i)) * t;
                    let y = y_of(series[i]) + (y_of(series[i + 1]) - y_of(series[i])) * t;
                    dot(x, y, c, 1);
                }
            }
            dot(x_of(i), y_of(series[i]), c, 3);
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    }
    img.save(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_pick_n_distinct_slices() {
        let scores: Vec<f64> = (0..20).map(|k| f64::from((k * 7) % 20)).collect();
        let mut rng = Rng::new(3);
        for how in [Pick::Suggest, Pick::Random, Pick::EveryK] {
            let s = pick(how, &scores, 4, &mut rng);
            let mut d = s.clone();
            d.dedup();
            assert_eq!((s.len(), d.len()), (4, 4), "{how:?}: {s:?}");
            assert!(s.iter().all(|&k| k < 20));
        }
        assert_eq!(pick(Pick::EveryK, &scores, 4, &mut rng), vec![2, 7, 12, 17]);
        // The highest of (7k mod 20), 19, 18, 17, 16 at k = 17, 14, 11, 8,
        // at least 20 / 8 = 2 apart: all four qualify.
        assert_eq!(
            pick(Pick::Suggest, &scores, 4, &mut rng),
            vec![8, 11, 14, 17]
        );
    }
}
