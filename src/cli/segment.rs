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
