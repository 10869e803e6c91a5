//! Running the encoder on volumes: checkpoint folders, the frames it reads
//! from a case (normalised and resampled to its frame size), the keyframe
//! report and frame-by-frame segmentation of a whole case.

use super::{UmeConfig, UmeEncoder};
use crate::keyframes::FrameAxis;
use burn::prelude::*;

/// An encoder checkpoint's `config.json`: the model section plus a kind tag
/// so a U-Net folder is never mistaken for an encoder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EncoderCheckpoint {
    /// Always "ume_encoder".
    pub kind: String,
    /// The encoder's hyper-parameters.
    pub model: UmeConfig,
}

/// Save an encoder checkpoint folder (`config.json` + `model.bpk`).
pub fn save_encoder(
    dir: &std::path::Path,
    config: &UmeConfig,
    model: &UmeEncoder,
) -> Result<(), crate::models::segment::SegmentError> {
    let json = EncoderCheckpoint {
        kind: "ume_encoder".into(),
        model: config.clone(),
    };
    crate::models::segment::save_folder(dir, &json, model)
}

/// Load an encoder checkpoint folder.
pub fn load_encoder(
    dir: &std::path::Path,
    device: &Device,
) -> Result<(UmeConfig, UmeEncoder), crate::models::segment::SegmentError> {
    let ck: EncoderCheckpoint =
        crate::models::segment::read_config(dir, "a UME encoder checkpoint")?;
    if ck.kind != "ume_encoder" {
        return Err(crate::models::segment::SegmentError::Checkpoint {
            path: dir.join("config.json"),
            problem: format!("kind {:?} is not a UME encoder", ck.kind),
        });
    }
    ck.model
        .check()
        .map_err(|problem| crate::models::segment::SegmentError::Checkpoint {
            path: dir.join("config.json"),
            problem,
        })?;
    let model = crate::models::segment::load_folder_weights(ck.model.init(device), dir)?;
    Ok((ck.model, model))
}

/// Modalities × frames of (values, nx, ny) as the encoder reads them: a
/// cine (first volume with several time frames) gives one modality whose
/// frames are the middle z slice of each time frame; 3D volumes give their
/// z slices, one modality per volume.
pub fn frames_of(volumes: &[&crate::volume::Volume]) -> Vec<Vec<(Vec<f32>, usize, usize)>> {
    let Some(first) = volumes.first() else {
        return Vec::new();
    };
    let [nx, ny, nz] = first.dims;
    let plane = nx * ny;
    if first.frames > 1 {
        let mid = nz / 2;
        let frames = (0..first.frames)
            .map(|t| {
                let f = first.frame_f32(t).unwrap_or_default();
                let slice = f
                    .get(mid * plane..(mid + 1) * plane)
                    .unwrap_or(&[])
                    .to_vec();
                (slice, nx, ny)
            })
            .collect();
        return vec![frames];
    }
    volumes
        .iter()
        .filter(|v| v.dims == first.dims)
        .map(|v| {
            let f = v.frame_f32(0).unwrap_or_default();
            (0..nz)
                .map(|k| {
                    (
                        f.get(k * plane..(k + 1) * plane).unwrap_or(&[]).to_vec(),
                        nx,
                        ny,
                    )
                })
                .collect()
        })
        .collect()
}

/// Frames as the encoder reads them: `[1, M, T, H, W]` values, each frame
/// resampled (bilinear) to the image size and z-scored per modality over
/// its non-zero voxels. `frames[m][t]` is frame t of modality m as
/// (values, nx, ny).
pub fn input_tensor(
    config: &UmeConfig,
    frames: &[Vec<(Vec<f32>, usize, usize)>],
    device: &Device,
) -> Tensor<5> {
    let m = frames.len();
    let t = frames.first().map_or(0, Vec::len);
    let [h, w] = config.image_size;
    Tensor::from_data(
        TensorData::new(input_values(config, frames), [1, m, t, h, w]),
        device,
    )
}

/// The values of [`input_tensor`], `[M, T, H, W]` flattened. Non-finite
/// voxels count as 0.
pub fn input_values(config: &UmeConfig, frames: &[Vec<(Vec<f32>, usize, usize)>]) -> Vec<f32> {
    use crate::models::segment::{resample, zscore_stats};
    let [h, w] = config.image_size;
    let mut data = Vec::new();
    for modality in frames {
        let (mean, sd) = zscore_stats(modality.iter().flat_map(|(v, _, _)| v.iter().copied()));
        for (vals, nx, ny) in modality {
            let finite: Vec<f32> = vals
                .iter()
                .map(|&v| if v.is_finite() { v } else { 0.0 })
                .collect();
            let start = data.len();
            resample(&finite, *nx, *ny, [w, h], &mut data);
            for v in &mut data[start..] {
                *v = ((f64::from(*v) - mean) / sd) as f32;
            }
        }
    }
    data
}

/// What `ume keyframes --model` reports: per-frame scores of every
/// strategy, the fused score, the fusion weights and the selection.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyframeReport {
    /// Frames in the sequence.
    pub frames: usize,
    /// Selected frames, ascending, 0-based.
    pub selected: Vec<usize>,
    /// Per-frame scores of each strategy.
    pub uniform: Vec<f32>,
    /// Content change.
    pub content: Vec<f32>,
    /// Learned attention.
    pub attention: Vec<f32>,
    /// Fused.
    pub fused: Vec<f32>,
    /// Fusion weights (uniform, content, attention).
    pub weights: Vec<f32>,
    /// Modality gate weights of the selected context.
    pub gates: Vec<f32>,
    /// What the frames are (the selection's spacing is cyclic in time).
    pub axis: FrameAxis,
}

impl KeyframeReport {
    /// The keyframes one strategy selects: the fused selection is the
    /// encoder's own; a single strategy picks from its own scores the same
    /// way (spread top-K), uniform exactly as the model-free strategy.
    pub fn selection(&self, strategy: crate::keyframes::Strategy, k: usize) -> Vec<usize> {
        use crate::keyframes::{Strategy, spread_top_k, uniform_indices};
        match strategy {
            Strategy::Fused => self.selected.clone(),
            Strategy::Uniform => uniform_indices(self.frames, k),
            Strategy::Content => spread_top_k(&self.content, k, self.axis),
            Strategy::Attention => spread_top_k(&self.attention, k, self.axis),
        }
    }
}

/// Keyframes of a case (its volumes in modality order, on one grid): the
/// inputs are checked against the encoder (enough modalities, 1 to
/// `max_frames` frames), then [`keyframe_report`] runs on its frames — z
/// slices of a volume, or the time frames of a cine's middle slice.
pub fn case_keyframes(
    config: &UmeConfig,
    encoder: &UmeEncoder,
    volumes: &[&crate::volume::Volume],
    k: usize,
    device: &Device,
) -> Result<KeyframeReport, crate::models::segment::SegmentError> {
    use crate::models::segment::SegmentError;
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no image".into()));
    };
    let mut frames = frames_of(volumes);
    if frames.len() < config.input_channels {
        return Err(SegmentError::Input(format!(
            "the encoder takes {} modalities but the case has {}",
            config.input_channels,
            frames.len()
        )));
    }
    frames.truncate(config.input_channels);
    let t = frames.first().map_or(0, Vec::len);
    if t == 0 || t > config.max_frames {
        return Err(SegmentError::Input(format!(
            "{t} frames; the encoder takes 1 to {} (max_frames)",
            config.max_frames
        )));
    }
    let x = input_tensor(config, &frames, device);
    Ok(keyframe_report(encoder, x, k, FrameAxis::of(first)))
}

/// Run the selector (and the modal fusion, for the gates) on one sequence.
pub fn keyframe_report(
    encoder: &UmeEncoder,
    x: Tensor<5>,
    k: usize,
    axis: FrameAxis,
) -> KeyframeReport {
    let tokens = encoder.embed(x);
    let frames = tokens.dims()[2];
    let sel = encoder.select(tokens.clone(), k, axis);
    let ctx = encoder.context(tokens, &sel);
    let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
    KeyframeReport {
        frames,
        selected: sel.indices.first().cloned().unwrap_or_default(),
        uniform: v(sel.uniform),
        content: v(sel.content),
        attention: v(sel.attention),
        fused: v(sel.fused),
        weights: sel
            .weights
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default(),
        gates: v(ctx.gates),
        axis,
    }
}

/// Frame-by-frame segmentation of a case with an encoder: the keyframe
/// context is built once per sequence and every frame is predicted from it.
/// A 3D case is one sequence (its z slices); a cine is one sequence per z
/// slice (its time frames). Labels go back to the native grid (nearest).
/// `progress(done, total)` counts predicted frames and returns whether to
/// go on.
pub fn segment_volume(
    config: &UmeConfig,
    encoder: &UmeEncoder,
    volumes: &[&crate::volume::Volume],
    device: &Device,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<crate::volume::LabelVolume, crate::models::segment::SegmentError> {
    use crate::models::segment::nearest;
    let Some(first) = volumes.first() else {
        return Err(crate::models::segment::SegmentError::Input(
            "no input volume".into(),
        ));
    };
    let [nx, ny, nz] = first.dims;
    let class_id = |c: usize| -> u16 {
        if c == 0 {
            0
        } else {
            config
                .label_ids
                .get(c - 1)
                .copied()
                .unwrap_or_else(|| u16::try_from(c).unwrap_or(0))
        }
    };
    let [h, w] = config.image_size;
    let c = config.num_classes;
    let si: Vec<usize> = (0..nx).map(|i| nearest(i, nx, w)).collect();
    let sj: Vec<usize> = (0..ny).map(|j| nearest(j, ny, h)).collect();
    let mut out =
        crate::volume::LabelVolume::zeros(first.dims, first.frames.max(1), first.geometry.clone());
    let plane = nx * ny;
    frame_logits(
        config,
        encoder,
        volumes,
        device,
        |z, t, logits, (done, total)| {
            let base = t * plane * nz + z * plane;
            for j in 0..ny {
                for i in 0..nx {
                    let at = |ch: usize| logits[(ch * h + sj[j]) * w + si[i]];
                    // The first of equal maxima, as argmax takes it.
                    let best = (1..c).fold(0, |b, ch| if at(ch) > at(b) { ch } else { b });
                    let id = class_id(best);
                    if id != 0 {
                        out.set(base + j * nx + i, id);
                    }
                }
            }
            progress(done, total)
        },
    )?;
    Ok(out)
}

/// The encoder's class logits of every frame of a case:
/// `each(z, t, logits, (done, total))` gets slice z of time frame t (t = 0
/// for a 3D case) as `[C, H, W]` values at the encoder's image size, and
/// returns whether to go on (false: `Cancelled`).
pub fn frame_logits(
    config: &UmeConfig,
    encoder: &UmeEncoder,
    volumes: &[&crate::volume::Volume],
    device: &Device,
    mut each: impl FnMut(usize, usize, &[f32], (usize, usize)) -> bool,
) -> Result<(), crate::models::segment::SegmentError> {
    use crate::models::segment::SegmentError;
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no input volume".into()));
    };
    let [nx, ny, nz] = first.dims;
    let axis = FrameAxis::of(first);
    let cine = axis == FrameAxis::Time;
    let (sequences, length) = if cine { (nz, first.frames) } else { (1, nz) };
    if length > config.max_frames {
        return Err(SegmentError::Input(format!(
            "{length} frames, more than the encoder's max_frames {}",
            config.max_frames
        )));
    }
    let plane = nx * ny;
    let total = sequences * length;
    for z in 0..sequences {
        let frames: Vec<Vec<(Vec<f32>, usize, usize)>> = if cine {
            vec![
                (0..first.frames)
                    .map(|t| {
                        let f = first.frame_f32(t).unwrap_or_default();
                        (
                            f.get(z * plane..(z + 1) * plane).unwrap_or(&[]).to_vec(),
                            nx,
                            ny,
                        )
                    })
                    .collect(),
            ]
        } else {
            frames_of(volumes)
        };
        if frames.len() < config.input_channels {
            return Err(SegmentError::Input(format!(
                "the encoder takes {} modalities but the case has {}",
                config.input_channels,
                frames.len()
            )));
        }
        let frames = &frames[..config.input_channels];
        let tokens = encoder.embed(input_tensor(config, frames, device));
        let selection = encoder.select(tokens.clone(), config.max_keyframes, axis);
        let context = encoder.context(tokens.clone(), &selection);
        for t in 0..length {
            let logits: Vec<f32> = encoder
                .segment_frame(&tokens, t, &context)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| SegmentError::Input(format!("{e:?}")))?;
            // A 3D case: frame t is slice t; a cine: time frame t at slice z.
            let (slice, frame) = if cine { (z, t) } else { (t, 0) };
            if !each(slice, frame, &logits, (z * length + t + 1, total)) {
                return Err(SegmentError::Cancelled);
            }
        }
    }
    Ok(())
}
