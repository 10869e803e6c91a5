//! `ume segment`: run a U-Net checkpoint slice by slice on a file or a
//! dataset case and write the label map on the input's grid.

use crate::models::segment::{load_checkpoint, segment};
use crate::models::{DeviceChoice, device};
use anyhow::{Context, Result, bail};
use std::path::Path;

pub(super) fn run(
    input: &Path,
    out: &Path,
    model: &Path,
    device_name: &str,
    batch: usize,
) -> Result<()> {
    let choice = match device_name {
        "cpu" | "auto" => DeviceChoice::Cpu,
        "wgpu" => DeviceChoice::Wgpu,
        other => bail!("unknown device {other:?} (auto, wgpu, cpu)"),
    };
    let dev = device(choice);
    let (config, net) = load_checkpoint(model, &dev)?;
    let volumes: Vec<crate::volume::Volume> = if input.is_dir() {
        let ds = crate::dataset::open(input)?;
        ds.load_case(0)?
            .images
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    } else {
        vec![crate::io::load(input)?]
    };
    let refs: Vec<&crate::volume::Volume> = volumes.iter().take(config.model.in_channels).collect();
    let bar = super::progress_bar(
        refs.first().map_or(0, |v| v.dims[2]) as u64,
        "segmenting slices",
    );
    let labels = segment(&config, &net, &refs, &dev, batch, |done, _| {
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    crate::io::save_labels(&labels, out).with_context(|| format!("writing {}", out.display()))?;
    let counts = labels.counts();
    say!(
        "wrote {} ({} labelled voxels)",
        out.display(),
        counts.iter().skip(1).sum::<usize>()
    );
    Ok(())
}

/// Options of `ume train`.
pub(super) struct TrainArgs {
    pub data: std::path::PathBuf,
    pub out: std::path::PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub size: usize,
    pub seed: u64,
    pub features: Vec<usize>,
}

/// Train a multi-class U-Net on every labelled case of a dataset folder and
/// save the checkpoint.
pub(super) fn train(a: &TrainArgs) -> Result<()> {
    use crate::models::segment::{
        InputNorm, SegmenterConfig, TrainOptions, save_checkpoint, train_multiclass,
    };
    use crate::models::{OutputMode, UNet2dConfig};
    let ds = crate::dataset::open(&a.data)?;
    let bar = super::progress_bar(ds.cases.len() as u64, "loading cases");
    let mut cases = Vec::new();
    for i in 0..ds.cases.len() {
        let c = ds.load_case(i)?;
        bar.inc(1);
        if let Some(l) = c.labels {
            cases.push((c.images.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), l));
        }
    }
    bar.finish_and_clear();
    if cases.is_empty() {
        bail!("{}: no case has labels to train on", a.data.display());
    }
    let label_ids: Vec<u16> = ds.labels.labels.iter().map(|l| l.id).collect();
    if label_ids.is_empty() {
        bail!("{}: the dataset's label table is empty", a.data.display());
    }
    let channels = cases[0].0.len();
    let norm = if ds.layout == crate::dataset::Layout::TotalSegmentator {
        InputNorm::Window {
            low: -200.0,
            high: 300.0,
        }
    } else {
        InputNorm::ZScore
    };
    let config = SegmenterConfig {
        model: UNet2dConfig::new(channels, label_ids.len() + 1)
            .with_features(a.features.clone())
            .with_bottleneck(a.features.last().copied().unwrap_or(32) * 2)
            .with_output(OutputMode::MultiClass),
        size: a.size,
        norm,
        label_ids,
    };
    let refs: Vec<(Vec<&crate::volume::Volume>, &crate::volume::LabelVolume)> =
        cases.iter().map(|(v, l)| (v.iter().collect(), l)).collect();
    let opts = TrainOptions {
        steps: a.steps,
        batch: a.batch,
        learning_rate: a.lr,
        seed: a.seed,
    };
    let bar = super::progress_bar(a.steps as u64, "training");
    let model = train_multiclass(
        &config,
        &refs,
        &opts,
        &device(DeviceChoice::Cpu),
        |step, loss| {
            bar.set_position(step as u64 + 1);
            if step % 10 == 0 {
                bar.println(format!("step {step:>5}  loss {loss:.4}"));
            }
        },
    )?;
    bar.finish_and_clear();
    save_checkpoint(&a.out, &config, &model)?;
    say!("saved {}", a.out.display());
    Ok(())
}
