//! `ume suggest`: which slices to label next, by the model's per-slice
//! uncertainty ([`crate::models::suggest`]).

use crate::models::{DeviceChoice, device};
use anyhow::Result;
use std::path::Path;

pub(super) fn run(
    input: &Path,
    model: Option<&str>,
    k: usize,
    json: bool,
    choice: DeviceChoice,
) -> Result<()> {
    let (volumes, spec) = super::segment::input_and_model(input, model)?;
    let dev = device(choice);
    let model = crate::models::Segmenter::load(&spec, &dev)?;
    let refs: Vec<&crate::volume::Volume> = volumes.iter().collect();
    let total = refs.first().map_or(0, |v| v.dims[2] * v.frames.max(1));
    let bar = super::progress_bar(total as u64, "scoring slices");
    let scores = crate::models::suggest::score_slices(&model, &refs, &dev, |done, _| {
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    if json {
        let slices: Vec<serde_json::Value> = scores
            .scores
            .iter()
            .enumerate()
            .map(|(i, s)| serde_json::json!({"index": i, "score": s}))
            .collect();
        let out = serde_json::json!({"axis": scores.axis, "slices": slices});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "slices to label next with {spec} (axis {}, of {}; higher = more uncertain):",
        scores.axis,
        scores.scores.len()
    );
    for (rank, (index, score)) in scores.top(k).into_iter().enumerate() {
        println!("{:>3}. slice {index:>4}  score {score:.4}", rank + 1);
    }
    Ok(())
}
