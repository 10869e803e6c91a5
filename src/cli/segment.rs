//! `ume segment` and `ume train`: the segmenter and the training core from
//! the command line, with progress bars and the seed-004-style validation
//! log.

use crate::models::segment::{load_model, segment};
use crate::models::{DeviceChoice, describe, device};
use crate::training::{Event, RunOptions, TrainConfig, TrainingData, train as run_training};
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::atomic::AtomicBool;

pub(super) fn run(
    input: &Path,
    out: &Path,
    model: Option<&str>,
    choice: DeviceChoice,
    batch: usize,
) -> Result<()> {
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
    let spec = match (model, layout) {
        (Some(m), _) => m.to_string(),
        (None, Some(crate::dataset::Layout::Brats)) => "demo-brats".into(),
        (None, Some(crate::dataset::Layout::TotalSegmentator) | None) => "demo-ct".into(),
        (None, Some(other)) => bail!(
            "no bundled model for {} cases; pass --model CHECKPOINT_DIR",
            other.as_str()
        ),
    };
    let dev = device(choice);
    let (config, net) = load_model(&spec, &dev)?;
    let refs: Vec<&crate::volume::Volume> =
        volumes.iter().take(config.network.in_channels).collect();
    eprintln!("segmenting with {spec} on {}", describe(choice));
    let total = refs.first().map_or(0, |v| v.dims[2] * v.frames.max(1));
    let bar = super::progress_bar(total as u64, "segmenting slices");
    let labels = segment(&config, &net, &refs, &dev, batch, |done, _| {
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    crate::io::save_labels(&labels, out).with_context(|| format!("writing {}", out.display()))?;
    let table = label_table(&config.label_ids);
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

/// The label-table JSON for predicted ids, in the app's table format:
/// names and colours from the built-in table that knows all of them
/// (BraTS, TotalSegmentator, ACDC), else "label N".
fn label_table(ids: &[u16]) -> String {
    use crate::volume::LabelTable;
    let table = ["brats", "totalseg", "acdc"]
        .iter()
        .filter_map(|name| LabelTable::builtin(name).ok())
        .find(|t| ids.iter().all(|&id| t.name_of(id).is_some()))
        .map(|mut t| {
            t.labels.retain(|l| ids.contains(&l.id));
            t
        })
        .unwrap_or_else(|| LabelTable::generic(ids.iter().copied()));
    serde_json::to_string_pretty(&table).unwrap_or_else(|_| "{}".into())
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
    let mut config = TrainConfig::load(config_path)?;
    if let Some(steps) = steps {
        config.training.steps = steps;
        config
            .check()
            .map_err(|e| anyhow::anyhow!("--steps: {e}"))?;
    }
    let ds = crate::dataset::open(data)?;
    let bar = super::progress_bar(ds.cases.len() as u64, "loading cases");
    let mut cases = Vec::new();
    for i in 0..ds.cases.len() {
        let case = ds.load_case(i)?;
        bar.inc(1);
        if case.labels.is_some() || !case.frame_labels.is_empty() {
            cases.push(case);
        }
    }
    bar.finish_and_clear();
    let samples = TrainingData::from_cases(&cases, &config)
        .with_context(|| format!("preparing {}", data.display()))?;
    drop(cases);
    eprintln!("training on {}", describe(choice));
    let opts = RunOptions {
        out: out.to_path_buf(),
        resume,
        device: device(choice),
    };
    let bar = super::progress_bar(config.training.steps as u64, "training");
    let mut names = std::collections::HashMap::new();
    for l in &ds.labels.labels {
        names.insert(l.id, l.name.clone());
    }
    let mut last_loss = f32::NAN;
    let summary = run_training(&config, &samples, &opts, &AtomicBool::new(false), |event| {
        match event {
            Event::Started {
                first_step,
                train_samples,
                val_samples,
                label_ids,
                ..
            } => {
                bar.set_position(first_step as u64);
                log(
                    &bar,
                    format!(
                        "{train_samples} training and {val_samples} validation samples, {} structures{}",
                        label_ids.len(),
                        if first_step > 0 {
                            format!(", resumed at step {first_step}")
                        } else {
                            String::new()
                        }
                    ),
                );
            }
            Event::Step { step, loss, .. } => {
                bar.set_position(step as u64 + 1);
                bar.set_message(format!("loss {loss:.4}"));
                last_loss = loss;
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
                        let name = names
                            .get(id)
                            .cloned()
                            .unwrap_or_else(|| format!("label {id}"));
                        format!(", lowest {name} {d:.3}")
                    })
                    .unwrap_or_default();
                log(
                    &bar,
                    format!(
                        "step {:>6}  loss (batch)={last_loss:.4}  Validation Dice score: {mean_dice:.4}{worst}{}",
                        step + 1,
                        if best { "  (best, saved)" } else { "" }
                    ),
                );
            }
            Event::Checkpointed { .. } | Event::Finished(_) => {}
        }
    });
    bar.finish_and_clear();
    let summary = summary?;
    say!(
        "best validation Dice {:.4} at step {}; model saved in {}",
        summary.best_dice,
        summary.best_step + 1,
        summary.out.display()
    );
    Ok(())
}

/// A line above the progress bar, or on stderr when there is no bar.
fn log(bar: &indicatif::ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
