//! `ume segment` and `ume train`: the segmenter and the training core from
//! the command line, with progress bars and the seed-004-style validation
//! log.

use crate::models::{DeviceChoice, describe, device};
use crate::training::{Event, RunOptions, TrainConfig, TrainingData, train as run_training};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// The images of INPUT (a file, or a dataset folder's first case) and the
/// model to run: `--model`, else the bundled demo for the input.
pub(super) fn input_and_model(
    input: &Path,
    model: Option<&str>,
) -> Result<(Vec<crate::volume::Volume>, String)> {
    let (volumes, layout) = if input.is_dir() {
        let ds = crate::dataset::open(input)?;
        let case = ds.load_case(0)?;
        (
            case.images.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            Some(ds.layout),
        )
    } else {
        (vec![crate::io::load(input)?], None)
    };
    let spec: String = match (model, layout) {
        (Some(m), _) => m.to_string(),
        (None, Some(crate::dataset::Layout::Brats)) => "demo-brats".into(),
        (None, Some(crate::dataset::Layout::TotalSegmentator)) => "demo-ct".into(),
        // A single file: the demo that fits it (CT by Hounsfield units, a
        // head-sized 3D MR image), as the app guesses.
        (None, None)
            if let Some(demo) = volumes.first().and_then(|v| {
                crate::models::demos::fitting_demo(volumes.len(), v, v.stats()[0].min)
            }) =>
        {
            demo.into()
        }
        (None, None) => bail!(
            "{}: no bundled model for this image (not a CT in Hounsfield units nor a head-sized 3D MR image); pass --model CHECKPOINT_DIR",
            input.display()
        ),
        (None, Some(other)) => bail!(
            "no bundled model for {} cases; pass --model CHECKPOINT_DIR",
            other.as_str()
        ),
    };
    Ok((volumes, spec))
}

pub(super) fn run(
    input: &Path,
    out: &Path,
    model: Option<&str>,
    choice: DeviceChoice,
    batch: usize,
) -> Result<()> {
    // The output's folder first, so a bad -o fails before the slices run.
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (volumes, spec) = input_and_model(input, model)?;
    let dev = device(choice);
    let model = crate::models::Segmenter::load(&spec, &dev)?;
    let refs: Vec<&crate::volume::Volume> = volumes.iter().take(model.in_channels()).collect();
    let on = match &model {
        crate::models::Segmenter::Unet(..) if crate::models::is_cpu(&dev) => {
            "the CPU (UME's inference engine)".to_string()
        }
        _ => describe(choice),
    };
    eprintln!("segmenting with {spec} on {on}");
    let total = refs.first().map_or(0, |v| v.dims[2] * v.frames.max(1));
    let bar = super::progress_bar(total as u64, "segmenting slices");
    let labels = model.segment(&refs, &dev, batch, |done, _| {
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    crate::io::save_labels(&labels, out).with_context(|| format!("writing {}", out.display()))?;
    let table =
        serde_json::to_string_pretty(&crate::volume::LabelTable::for_ids(&model.label_ids()))
            .unwrap_or_else(|_| "{}".into());
    let table_path = out.with_file_name(format!(
        "{}.labels.json",
        out.file_name()
            .and_then(|n| n.to_str())
            .map_or("labels", |n| n
                .trim_end_matches(".gz")
                .trim_end_matches(".nii"))
    ));
    crate::io::write_atomic(&table_path, table.as_bytes())
        .with_context(|| format!("writing {}", table_path.display()))?;
    let counts = labels.counts();
    say!(
        "wrote {} ({} labelled voxels) and {}",
        out.display(),
        counts.iter().skip(1).sum::<usize>(),
        table_path.display()
    );
    Ok(())
}

/// `ume train`: every labelled case of the folder, split by the config.
pub(super) fn train(
    config_path: &Path,
    data: &Path,
    out: &Path,
    resume: bool,
    steps: Option<usize>,
    choice: DeviceChoice,
) -> Result<()> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let kind = crate::training::config::ConfigKind::of(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config_path.display()))?;
    if resume && !crate::training::resumable(out) {
        eprintln!(
            "{}: nothing to resume (no last/ run state); starting a new run",
            out.display()
        );
    }
    if kind == crate::training::config::ConfigKind::Titok {
        return super::tokenize::train(config_path, data, out, resume, steps, choice);
    }
    let is_ume = kind == crate::training::config::ConfigKind::UmeEncoder;
    if is_ume {
        return train_ume(config_path, data, out, resume, steps, choice);
    }
    let mut config = TrainConfig::load(config_path)?;
    if let Some(steps) = steps {
        config.training.steps = steps;
        config
            .check()
            .map_err(|e| anyhow::anyhow!("--steps: {e}"))?;
    }
    let ds = crate::dataset::open(data)?;
    let mut cases = Vec::new();
    for_labelled_cases(&ds, |case| {
        cases.push(case);
        Ok(())
    })?;
    let samples = TrainingData::from_cases(&cases, &config)
        .with_context(|| format!("preparing {}", data.display()))?;
    drop(cases);
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume,
        device: device(choice),
        init: None,
        cpu_engine: true,
    };
    if crate::models::is_cpu(&opts.device) {
        eprintln!("training on the CPU (UME's training engine; optimiser on flex)");
    } else {
        eprintln!("training on {}", describe(choice));
    }
    run_logged(&ds, config.training.steps, "Dice score", "model", |emit| {
        run_training(&config, &samples, &opts, &AtomicBool::new(false), emit)
    })
}

/// Load every case of `ds` that has labels (a 3D map or labelled frames),
/// one at a time behind a progress bar, handing each to `take`.
fn for_labelled_cases(
    ds: &crate::dataset::Dataset,
    mut take: impl FnMut(crate::dataset::Case) -> Result<()>,
) -> Result<()> {
    let bar = super::progress_bar(ds.cases.len() as u64, "loading cases");
    for i in 0..ds.cases.len() {
        let case = ds.load_case(i)?;
        bar.inc(1);
        if case.labels.is_some() || !case.frame_labels.is_empty() {
            take(case)?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// Run a training loop with the progress bar and log, then print where the
/// best model went. `score` names what validation measures, `what` the
/// saved thing ("model", "encoder").
fn run_logged(
    ds: &crate::dataset::Dataset,
    steps: usize,
    score: &'static str,
    what: &str,
    run: impl FnOnce(
        &mut dyn FnMut(Event),
    ) -> Result<crate::training::Summary, crate::training::TrainError>,
) -> Result<()> {
    let names = ds
        .labels
        .labels
        .iter()
        .map(|l| (l.id, l.name.clone()))
        .collect();
    let mut log = TrainLog::new(steps, score, names);
    let summary = run(&mut |e| log.event(&e));
    log.bar.finish_and_clear();
    let summary = summary?;
    say!(
        "best validation {score} {:.4} at step {}; {what} saved in {}",
        summary.best_dice,
        summary.best_step + 1,
        summary.out.display()
    );
    Ok(())
}

/// `ume train --config configs/ume_*.json`: the encoder, supervised.
fn train_ume(
    config_path: &Path,
    data: &Path,
    out: &Path,
    resume: bool,
    steps: Option<usize>,
    choice: DeviceChoice,
) -> Result<()> {
    use crate::training::data::LabelledCase;
    use crate::training::ume::{UmeCase, train_ume as run};
    use crate::training::ume_config::UmeTrainConfig;
    let mut config = UmeTrainConfig::load(config_path)?;
    if let Some(steps) = steps {
        config.training.steps = steps;
    }
    let ds = crate::dataset::open(data)?;
    let mut cases = Vec::new();
    // Each case is reduced to the encoder's frames as it loads, so the
    // volumes are not all held at once.
    for_labelled_cases(&ds, |case| {
        cases.push(UmeCase::new(&LabelledCase::from(&case), &config)?);
        Ok(())
    })?;
    if cases.is_empty() {
        bail!(
            "{}: no case has labels to train the encoder on",
            data.display()
        );
    }
    let (cases, val) = crate::training::ume::split_cases(cases, config.data.val_fraction);
    eprintln!("training the UME encoder on {}", describe(choice));
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume,
        device: device(choice),
        init: None,
        cpu_engine: true,
    };
    let score = match config.training.mode {
        crate::training::ume_config::UmeMode::Voco => "overlap correlation",
        crate::training::ume_config::UmeMode::Supervised => "Dice score",
    };
    run_logged(&ds, config.training.steps, score, "encoder", |emit| {
        run(&config, &cases, &val, &opts, &AtomicBool::new(false), emit)
    })
}

/// `ume import-pth`: a seed U-Net `.pth` becomes a checkpoint folder.
pub(super) fn import_pth(pth: &Path, config: &Path, out: &Path) -> Result<()> {
    use crate::models::segment::{SegmenterConfig, save_checkpoint};
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    let mut model: SegmenterConfig = match serde_json::from_str::<TrainConfig>(&text) {
        Ok(tc) => tc.model,
        Err(_) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: neither a training config nor a checkpoint config.json",
                config.display()
            )
        })?,
    };
    if model.label_ids.is_empty() {
        // Channel c predicts label c + 1 (after background for multi-class).
        let n = match model.network.output {
            crate::models::OutputMode::MultiLabel => model.network.out_channels,
            crate::models::OutputMode::MultiClass => model.network.out_channels.saturating_sub(1),
        };
        model.label_ids = (1..=n as u16).collect();
    }
    let net = crate::models::pytorch::load_pth(pth, &model.network, &device(DeviceChoice::Cpu))?;
    save_checkpoint(out, &model, &net)?;
    say!(
        "wrote {} ({} structures)",
        out.display(),
        model.label_ids.len()
    );
    Ok(())
}

/// The progress bar and the seed-004-style log of a training run (U-Net or
/// encoder): position and loss per step, one line per validation.
struct TrainLog {
    bar: indicatif::ProgressBar,
    /// The last step's figures ("loss=…, seg=…, div=…").
    last_step: String,
    /// What validation measures ("Dice score", "overlap correlation").
    score: &'static str,
    names: std::collections::HashMap<u16, String>,
}

impl TrainLog {
    fn new(
        steps: usize,
        score: &'static str,
        names: std::collections::HashMap<u16, String>,
    ) -> TrainLog {
        TrainLog {
            bar: super::progress_bar(steps as u64, "training"),
            last_step: String::new(),
            score,
            names,
        }
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::Started {
                first_step,
                train_samples,
                val_samples,
                label_ids,
                ..
            } => {
                self.bar.set_position(*first_step as u64);
                let resumed = if *first_step > 0 {
                    format!(", resumed at step {first_step}")
                } else {
                    String::new()
                };
                log(
                    &self.bar,
                    format!(
                        "{train_samples} training and {val_samples} validation samples, {} structures{resumed}",
                        label_ids.len()
                    ),
                );
            }
            Event::Step {
                step, loss, terms, ..
            } => {
                self.bar.set_position(*step as u64 + 1);
                // As the seed's log: loss=1.8245, voco=1.2150, area=0.4200
                let mut message = format!("loss={loss:.4}");
                for (name, value) in terms {
                    message.push_str(&format!(", {name}={value:.4}"));
                }
                self.bar.set_message(message.clone());
                self.last_step = message;
            }
            Event::Validated {
                step,
                dice,
                mean_dice,
                best,
            } => {
                let worst = dice
                    .iter()
                    .filter(|d| d.1.is_finite())
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(id, d)| {
                        let name = self
                            .names
                            .get(id)
                            .cloned()
                            .unwrap_or_else(|| format!("label {id}"));
                        format!(", lowest {name} {d:.3}")
                    })
                    .unwrap_or_default();
                log(
                    &self.bar,
                    format!(
                        "step {:>6}  {}  Validation {}: {mean_dice:.4}{worst}{}",
                        step + 1,
                        self.last_step,
                        self.score,
                        if *best { "  (best, saved)" } else { "" }
                    ),
                );
            }
            Event::Checkpointed { .. } | Event::Finished(_) => {}
        }
    }
}

/// A line above the progress bar, or on stderr when there is no bar.
pub(super) fn log(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
