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
    strategy: Strategy,
    model: Option<&Path>,
    as_json: bool,
) -> Result<()> {
    if let Some(m) = model {
        bail!(
            "{}: loading UME encoder checkpoints is not available yet (the encoder is still to be built); uniform and content work without --model",
            m.display()
        );
    }
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
