//! Slice-by-slice segmentation with a 2D U-Net checkpoint, and the one place
//! where volumes become tensors: each axial slice of every input channel is
//! resampled (bilinear) to the network's size and normalised (CT: HU window
//! to [0, 1]; MR: z-score over the non-zero voxels of the volume), and the
//! predicted classes are mapped back to the native grid (nearest).
//!
//! A checkpoint is a folder: `config.json` (this file's [`SegmenterConfig`])
//! and `model.bpk` (Burn's native weight format), written atomically.

use super::{OutputMode, UNet2d, UNet2dConfig};
use crate::volume::{LabelVolume, Volume};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How input intensities are normalised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputNorm {
    /// Clamp to [low, high] (e.g. HU [-200, 300]) and scale to [0, 1].
    Window {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Subtract the mean and divide by the standard deviation of the
    /// volume's non-zero voxels (MR; brain voxels of skull-stripped data).
    ZScore,
}

/// Everything needed to run a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmenterConfig {
    /// Network (its fields sit at the top level of the JSON object).
    #[serde(flatten)]
    pub network: UNet2dConfig,
    /// Network input size (square).
    pub size: usize,
    /// Input normalisation, one per channel or one for all.
    pub norm: InputNorm,
    /// Label id written for each output channel (multi-label) or each
    /// non-background class (multi-class).
    pub label_ids: Vec<u16>,
    /// Neighbouring slices on each side given with each slice ("2.5D"):
    /// with `c`, every input volume contributes `2c + 1` network channels
    /// (slices k−c..k+c, repeated at the ends of the volume), so the
    /// network sees where along z a structure begins and ends. 0: plain 2D.
    #[serde(default)]
    pub context_slices: usize,
}

impl SegmenterConfig {
    /// Slices per input volume in the network input (`2 · context + 1`).
    pub fn slices_per_volume(&self) -> usize {
        2 * self.context_slices + 1
    }

    /// Input volumes (modalities) the model takes: the network's input
    /// channels over the slices each contributes.
    pub fn input_volumes(&self) -> usize {
        self.network.in_channels / self.slices_per_volume()
    }
}

/// Errors of checkpoints and segmentation.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The checkpoint is malformed.
    #[error("{}: {problem}", path.display())]
    Checkpoint {
        /// The file or folder.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The inputs do not fit the checkpoint.
    #[error("{0}")]
    Input(String),
    /// The caller's progress callback asked to stop.
    #[error("segmentation cancelled")]
    Cancelled,
}

/// Save a checkpoint folder (`config.json` + `model.bpk`).
pub fn save_checkpoint(
    dir: &Path,
    config: &SegmenterConfig,
    model: &UNet2d,
) -> Result<(), SegmentError> {
    // The kind tag first, so readers know what the folder holds.
    #[derive(Serialize)]
    struct Tagged<'a> {
        kind: &'static str,
        #[serde(flatten)]
        config: &'a SegmenterConfig,
    }
    let tagged = Tagged {
        kind: super::CheckpointKind::Unet2d.tag(),
        config,
    };
    save_folder(dir, &tagged, model)
}

/// Write `config.json` (any serialisable config) and `model.bpk`, each
/// atomically (temporary file + rename).
pub fn save_folder<C: Serialize, M: burn::module::Module>(
    dir: &Path,
    config: &C,
    model: &M,
) -> Result<(), SegmentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SegmentError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let weights = dir.join("model.bpk");
    let tmp = dir.join(format!(".model.{}.bpk", std::process::id()));
    let mut store = BurnpackStore::from_file(&tmp).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| SegmentError::Checkpoint {
            path: weights.clone(),
            problem: e.to_string(),
        })?;
    std::fs::rename(&tmp, &weights).map_err(io(&weights))?;
    let json = serde_json::to_vec_pretty(config).map_err(|e| SegmentError::Checkpoint {
        path: dir.join("config.json"),
        problem: e.to_string(),
    })?;
    crate::io::write_atomic(&dir.join("config.json"), &json).map_err(|e| SegmentError::Checkpoint {
        path: dir.join("config.json"),
        problem: e.to_string(),
    })
}

/// Read a folder's `config.json` as `C` (`what` names the expected kind
/// in the error).
pub fn read_config<C: serde::de::DeserializeOwned>(
    dir: &Path,
    what: &str,
) -> Result<C, SegmentError> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| SegmentError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| SegmentError::Checkpoint {
        path: cfg_path,
        problem: format!("not {what}: {e}"),
    })
}

/// Load a folder's `model.bpk` into `model`.
pub fn load_folder_weights<M: burn::module::Module>(
    model: M,
    dir: &Path,
) -> Result<M, SegmentError> {
    let weights = dir.join("model.bpk");
    if !weights.is_file() {
        return Err(SegmentError::Checkpoint {
            path: weights,
            problem: "weights file missing".into(),
        });
    }
    load_weights(model, &mut BurnpackStore::from_file(&weights), &weights)
}

/// Load a checkpoint folder onto `device`.
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
) -> Result<(SegmenterConfig, UNet2d), SegmentError> {
    let config: SegmenterConfig = read_config(dir, "a segmenter config")?;
    let model = load_folder_weights(config.network.init(device), dir)?;
    Ok((config, model))
}

/// Apply stored weights, requiring every tensor to be present and fit.
pub(super) fn load_weights<M: burn::module::Module>(
    mut model: M,
    store: &mut BurnpackStore,
    origin: &Path,
) -> Result<M, SegmentError> {
    let result = model
        .load_from(store)
        .map_err(|e| SegmentError::Checkpoint {
            path: origin.to_path_buf(),
            problem: e.to_string(),
        })?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(SegmentError::Checkpoint {
            path: origin.to_path_buf(),
            problem: format!(
                "weights do not match the config ({} missing, {} errors)",
                result.missing.len(),
                result.errors.len()
            ),
        });
    }
    Ok(model)
}

/// A case's input channels converted to f32 and normalised once, ready to
/// be cut into network inputs slice by slice.
pub struct Prepared {
    /// Grid size of every channel.
    pub dims: [usize; 3],
    /// Normalised values of each channel, file order.
    pub channels: Vec<Vec<f32>>,
}

impl Prepared {
    /// Convert and normalise the first frame of each volume once.
    pub fn new(volumes: &[&Volume], norm: InputNorm) -> Prepared {
        Prepared::frame(volumes, 0, norm)
    }

    /// Convert and normalise frame `t` of each volume once: HU window to
    /// [0, 1], or z-score over the frame's non-zero voxels. Non-finite
    /// values become 0 so one NaN voxel cannot poison a whole batch.
    pub fn frame(volumes: &[&Volume], t: usize, norm: InputNorm) -> Prepared {
        let dims = volumes.first().map_or([0; 3], |v| v.dims);
        let channels = volumes
            .iter()
            .map(|v| {
                let mut vals = v.frame_f32(t).unwrap_or_default();
                let (off, scale, clamp) = match norm {
                    InputNorm::Window { low, high } => (low, 1.0 / (high - low).max(1e-9), true),
                    InputNorm::ZScore => {
                        let (mean, sd) = zscore_stats(vals.iter().copied());
                        (mean, 1.0 / sd, false)
                    }
                };
                for x in &mut vals {
                    let y = (f64::from(*x) - off) * scale;
                    let y = if clamp { y.clamp(0.0, 1.0) } else { y };
                    *x = if y.is_finite() { y as f32 } else { 0.0 };
                }
                vals
            })
            .collect();
        Prepared { dims, channels }
    }

    /// Network input for slices `ks`: `[B, C·(2·context+1), size, size]`
    /// values — per channel the slices `k − context ..= k + context`
    /// (clamped to the volume) — each resampled bilinearly.
    pub fn slices(&self, ks: &[usize], size: usize, context: usize) -> Vec<f32> {
        let [nx, ny, nz] = self.dims;
        let per = 2 * context + 1;
        let mut data = Vec::with_capacity(ks.len() * self.channels.len() * per * size * size);
        for &k in ks {
            for vals in &self.channels {
                for o in 0..per {
                    let z = (k + o).saturating_sub(context).min(nz.saturating_sub(1));
                    resample(
                        &vals[z * nx * ny..(z + 1) * nx * ny],
                        nx,
                        ny,
                        [size, size],
                        &mut data,
                    );
                }
            }
        }
        data
    }
}

/// Bilinear resample of one slice (`nx`×`ny`, x fastest) to `w`×`h`,
/// appended to `out`.
pub(crate) fn resample(
    slice: &[f32],
    nx: usize,
    ny: usize,
    [w, h]: [usize; 2],
    out: &mut Vec<f32>,
) {
    for j in 0..h {
        let y = ((j as f64 + 0.5) * ny as f64 / h as f64 - 0.5).clamp(0.0, (ny - 1) as f64);
        let (y0, fy) = (y.floor() as usize, y - y.floor());
        let y1 = (y0 + 1).min(ny - 1);
        for i in 0..w {
            let x = ((i as f64 + 0.5) * nx as f64 / w as f64 - 0.5).clamp(0.0, (nx - 1) as f64);
            let (x0, fx) = (x.floor() as usize, x - x.floor());
            let x1 = (x0 + 1).min(nx - 1);
            let at = |xx: usize, yy: usize| f64::from(slice[xx + nx * yy]);
            let v = at(x0, y0) * (1.0 - fx) * (1.0 - fy)
                + at(x1, y0) * fx * (1.0 - fy)
                + at(x0, y1) * (1.0 - fx) * fy
                + at(x1, y1) * fx * fy;
            out.push(v as f32);
        }
    }
}

/// Mean and standard deviation of the non-zero finite values (MR brain
/// voxels of skull-stripped data): the z-score of the segmenter and the
/// encoder.
pub(crate) fn zscore_stats(values: impl IntoIterator<Item = f32>) -> (f64, f64) {
    let (mut n, mut sum, mut sq) = (0usize, 0f64, 0f64);
    for x in values.into_iter().filter(|x| *x != 0.0 && x.is_finite()) {
        n += 1;
        sum += f64::from(x);
        sq += f64::from(x) * f64::from(x);
    }
    let n = n.max(1) as f64;
    let mean = sum / n;
    (mean, (sq / n - mean * mean).max(0.0).sqrt().max(1e-9))
}

/// Network pixel of native index `i` along an axis of `n` voxels (nearest),
/// or native voxel of network pixel `i` (swap the sizes).
pub fn nearest(i: usize, from: usize, to: usize) -> usize {
    (((i as f64 + 0.5) * to as f64 / from as f64) as usize).min(to.saturating_sub(1))
}

/// Segment a 3D case (one volume per input channel, all on one grid; 4D
/// inputs frame by frame) slice by slice, `batch` slices at a time.
/// `progress(done, total)` counts slices over all frames and returns
/// whether to go on (false cancels).
pub fn segment(
    config: &SegmenterConfig,
    model: &UNet2d,
    volumes: &[&Volume],
    device: &Device,
    batch: usize,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<LabelVolume, SegmentError> {
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no input volume".into()));
    };
    if config.input_volumes() == 0
        || config.network.in_channels != config.input_volumes() * config.slices_per_volume()
    {
        return Err(SegmentError::Input(format!(
            "the model's in_channels {} is not a whole number of {}-slice stacks (context_slices {})",
            config.network.in_channels,
            config.slices_per_volume(),
            config.context_slices
        )));
    }
    if volumes.len() != config.input_volumes() {
        return Err(SegmentError::Input(format!(
            "the model takes {} channel(s) but {} volume(s) were given",
            config.input_volumes(),
            volumes.len()
        )));
    }
    if let Some(v) = volumes.iter().find(|v| v.dims != first.dims) {
        return Err(SegmentError::Input(format!(
            "input channels differ in size ({:?} and {:?})",
            first.dims, v.dims
        )));
    }
    let frames = volumes.iter().map(|v| v.frames).min().unwrap_or(1).max(1);
    let nz = first.dims[2];
    let mut out = LabelVolume::zeros(first.dims, frames, first.geometry.clone());
    let per_frame = first.dims.iter().product::<usize>();
    let network = Network::new(model, device);
    for t in 0..frames {
        let prepared = Prepared::frame(volumes, t, config.norm);
        let labels = segment_prepared(config, &network, &prepared, batch, |done, _| {
            progress(t * nz + done, frames * nz)
        })?;
        for (flat, id) in labels.into_iter().enumerate() {
            if id != 0 {
                out.set(t * per_frame + flat, id);
            }
        }
    }
    Ok(out)
}

/// A trained network ready to run slices on a device: on the CPU backend
/// the framework-free engine ([`super::engine`], same results, about
/// twice as fast), built once so its weights are copied and its buffers
/// recycled once per run, not per volume or frame.
pub struct Network<'a> {
    model: &'a UNet2d,
    device: Device,
    engine: Option<super::engine::CpuUnet>,
}

impl<'a> Network<'a> {
    /// Prepare `model` to run on `device`.
    pub fn new(model: &'a UNet2d, device: &Device) -> Network<'a> {
        Network {
            model,
            device: device.clone(),
            engine: super::is_cpu(device).then(|| super::engine::CpuUnet::new(model)),
        }
    }
}

/// Label ids of one prepared 3D grid (x fastest), slice by slice;
/// `progress` as for [`segment`].
pub fn segment_prepared(
    config: &SegmenterConfig,
    network: &Network<'_>,
    prepared: &Prepared,
    batch: usize,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<Vec<u16>, SegmentError> {
    let [nx, ny, nz] = prepared.dims;
    let mut out = vec![0u16; nx * ny * nz];
    let ks: Vec<usize> = (0..nz).collect();
    segment_slices(config, network, prepared, &ks, batch, |k, ids| {
        out[k * nx * ny..(k + 1) * nx * ny].copy_from_slice(ids);
        progress(k + 1, nz)
    })?;
    Ok(out)
}

/// Label ids of the slices `ks` of a prepared grid: `each(k, ids)` gets
/// slice k's ids on the native grid (x fastest) and returns whether to go
/// on. Validation on the labelled slices of a partly labelled case runs
/// only those.
pub fn segment_slices(
    config: &SegmenterConfig,
    network: &Network<'_>,
    prepared: &Prepared,
    ks: &[usize],
    batch: usize,
    mut each: impl FnMut(usize, &[u16]) -> bool,
) -> Result<(), SegmentError> {
    let [nx, ny, _] = prepared.dims;
    let size = config.size;
    let c = config.network.out_channels;
    let si: Vec<usize> = (0..nx).map(|i| nearest(i, nx, size)).collect();
    let sj: Vec<usize> = (0..ny).map(|j| nearest(j, ny, size)).collect();
    let mut ids = vec![0u16; nx * ny];
    slice_logits(config, network, prepared, ks, batch, |k, logits| {
        // Logits decide alone: softmax and sigmoid keep the order of the
        // channels, and sigmoid(x) > 0.5 exactly when x > 0.
        for j in 0..ny {
            for i in 0..nx {
                let at = |ch: usize| logits[(ch * size + sj[j]) * size + si[i]];
                let best = (0..c).max_by(|&p, &q| at(p).total_cmp(&at(q))).unwrap_or(0);
                ids[i + nx * j] = match config.network.output {
                    OutputMode::MultiClass if best > 0 => {
                        config.label_ids.get(best - 1).copied().unwrap_or(0)
                    }
                    OutputMode::MultiLabel if at(best) > 0.0 => {
                        config.label_ids.get(best).copied().unwrap_or(0)
                    }
                    _ => 0,
                };
            }
        }
        each(k, &ids)
    })
}

/// The network's logits for the slices `ks` of a prepared grid, `batch`
/// slices at a time: `each(k, logits)` gets slice k's `[C, size, size]`
/// logits and returns whether to go on (false: `Cancelled`).
pub fn slice_logits(
    config: &SegmenterConfig,
    network: &Network<'_>,
    prepared: &Prepared,
    ks: &[usize],
    batch: usize,
    mut each: impl FnMut(usize, &[f32]) -> bool,
) -> Result<(), SegmentError> {
    let size = config.size;
    let per = config.network.out_channels * size * size;
    let engine = network.engine.as_ref();
    for chunk in ks.chunks(batch.max(1)) {
        let data = prepared.slices(chunk, size, config.context_slices);
        let logits: Vec<f32> = match engine {
            Some(engine) => engine.forward(&data, chunk.len(), size, size),
            None => network
                .model
                .forward(Tensor::<4>::from_data(
                    TensorData::new(data, [chunk.len(), config.network.in_channels, size, size]),
                    &network.device,
                ))
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| SegmentError::Input(format!("{e:?}")))?,
        };
        let mut go_on = true;
        for (b, &k) in chunk.iter().enumerate() {
            go_on = go_on && each(k, &logits[b * per..(b + 1) * per]);
        }
        if let Some(engine) = engine {
            engine.recycle(logits);
        }
        if !go_on {
            return Err(SegmentError::Cancelled);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_slices_stack_neighbours_clamped_at_the_ends() {
        // 2×2 slices; slice z holds the value z.
        let p = Prepared {
            dims: [2, 2, 3],
            channels: vec![(0..12).map(|v| (v / 4) as f32).collect()],
        };
        let x = p.slices(&[0, 2], 2, 1);
        assert_eq!(x.len(), 2 * 3 * 4);
        let per_slice: Vec<f32> = x.chunks(4).map(|c| c[0]).collect();
        assert_eq!(per_slice, vec![0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
        assert_eq!(p.slices(&[1], 2, 0), vec![1.0; 4]);
    }

    #[test]
    fn resample_identity_and_upscale() {
        let s: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let mut same = Vec::new();
        resample(&s, 4, 4, [4, 4], &mut same);
        assert_eq!(same, s);
        let mut up = Vec::new();
        resample(&[0.0, 1.0, 2.0, 3.0], 2, 2, [4, 4], &mut up);
        assert_eq!(up.len(), 16);
        assert_eq!((up[0], up[15]), (0.0, 3.0));
        assert!((up[5] - 0.75).abs() < 1e-6); // inner point, 1/4 of the way
    }
}
