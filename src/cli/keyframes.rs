//! `ume keyframes`: which frames (time frames of a cine, or z slices of a
//! volume) the model-free strategies select.

use crate::keyframes::{FrameFeatures, Strategy, select};
use anyhow::{Result, bail};
use serde_json::json;
use std::path::Path;

/// Frame summaries of a file or dataset case, and ACDC's ED/ES (0-based) if known.
pub(super) fn features_of(input: &Path) -> Result<(FrameFeatures, Option<(usize, usize)>)> {
    if input.is_dir() {
        let ds = crate::dataset::open(input)?;
        let case = ds.load_case(0)?;
        let reference = case.acdc.as_ref().map(|a| (a.ed_index(), a.es_index()));
        let first = &case
            .images
            .first()
            .ok_or_else(|| anyhow::anyhow!("{}: the case has no image", input.display()))?
            .1;
        if first.frames > 1 {
            return Ok((FrameFeatures::from_time_frames(first), reference));
        }
        let vols: Vec<&crate::volume::Volume> = case.images.iter().map(|(_, v)| v).collect();
        return Ok((FrameFeatures::from_slices(&vols), reference));
    }
    let v = crate::io::load(input)?;
    if v.frames > 1 {
        Ok((FrameFeatures::from_time_frames(&v), None))
    } else {
        Ok((FrameFeatures::from_slices(&[&v]), None))
    }
}

pub(super) fn run(
    input: &Path,
    k: usize,
    strategy: Option<Strategy>,
    model: Option<&Path>,
    as_json: bool,
) -> Result<()> {
    if let Some(m) = model {
        return with_model(input, k, strategy.unwrap_or(Strategy::Fused), m, as_json);
    }
    let strategy = strategy.unwrap_or(Strategy::Content);
    let (features, reference) = features_of(input)?;
    if features.is_empty() {
        bail!("{}: no frames", input.display());
    }
    let sel = select(&features, k, strategy).map_err(anyhow::Error::msg)?;
    if as_json {
        let mut out = json!({
            "frames": sel.frames,
            "selected": sel.selected,
            "scores": {"uniform": sel.uniform, "content": sel.content, "attention": null, "fused": null},
            "weights": null,
        });
        if let Some((ed, es)) = reference {
            out["reference"] = json!({"ed": ed, "es": es});
        }
        say!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    say!(
        "{} frames, {k} keyframes ({strategy:?}): {:?}",
        sel.frames,
        sel.selected
    );
    if let Some((ed, es)) = reference {
        say!("ACDC reference: ED frame {ed}, ES frame {es} (0-based)");
    }
    Ok(())
}

/// The volumes of a file or a dataset case.
fn volumes_of(input: &Path) -> Result<Vec<crate::volume::Volume>> {
    Ok(if input.is_dir() {
        let ds = crate::dataset::open(input)?;
        ds.load_case(0)?
            .images
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    } else {
        vec![crate::io::load(input)?]
    })
}

#[cfg(feature = "ml")]
fn with_model(
    input: &Path,
    k: usize,
    strategy: Strategy,
    model: &Path,
    as_json: bool,
) -> Result<()> {
    use crate::models::encoder::{case_keyframes, load_encoder};
    use crate::models::{DeviceChoice, device};
    let dev = device(DeviceChoice::Auto);
    let (config, encoder) = load_encoder(model, &dev)?;
    let volumes = volumes_of(input)?;
    let refs: Vec<&crate::volume::Volume> = volumes.iter().collect();
    let report = case_keyframes(&config, &encoder, &refs, k, &dev)
        .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let selected = report.selection(strategy, k);
    if as_json {
        let out = json!({
            "frames": report.frames,
            "strategy": format!("{strategy:?}").to_lowercase(),
            "selected": selected,
            "scores": {
                "uniform": report.uniform,
                "content": report.content,
                "attention": report.attention,
                "fused": report.fused,
            },
            "weights": report.weights,
            "modality_gates": report.gates,
        });
        say!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        say!(
            "{} frames, {k} keyframes ({strategy:?}): {selected:?}; fusion weights uniform {:.2}, content {:.2}, attention {:.2}",
            report.frames,
            report.weights.first().copied().unwrap_or(f32::NAN),
            report.weights.get(1).copied().unwrap_or(f32::NAN),
            report.weights.get(2).copied().unwrap_or(f32::NAN)
        );
    }
    Ok(())
}

#[cfg(not(feature = "ml"))]
fn with_model(_: &Path, _: usize, _: Strategy, model: &Path, _: bool) -> Result<()> {
    let _ = volumes_of;
    bail!(
        "{}: this ume was built without the `ml` feature; encoder checkpoints need it",
        model.display()
    )
}
