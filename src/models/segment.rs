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
    /// Network.
    pub model: UNet2dConfig,
    /// Network input size (square).
    pub size: usize,
    /// Input normalisation, one per channel or one for all.
    pub norm: InputNorm,
    /// Label id written for each output channel (multi-label) or each
    /// non-background class (multi-class).
    pub label_ids: Vec<u16>,
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
}

/// Save a checkpoint folder (`config.json` + `model.bpk`).
pub fn save_checkpoint(
    dir: &Path,
    config: &SegmenterConfig,
    model: &UNet2d,
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

/// Load a checkpoint folder onto `device`.
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
) -> Result<(SegmenterConfig, UNet2d), SegmentError> {
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|source| SegmentError::Io {
        path: cfg_path.clone(),
        source,
    })?;
    let config: SegmenterConfig =
        serde_json::from_str(&text).map_err(|e| SegmentError::Checkpoint {
            path: cfg_path.clone(),
            problem: format!("not a segmenter config: {e}"),
        })?;
    let mut model = config.model.init(device);
    let weights = dir.join("model.bpk");
    if !weights.is_file() {
        return Err(SegmentError::Checkpoint {
            path: weights,
            problem: "weights file missing".into(),
        });
    }
    let mut store = BurnpackStore::from_file(&weights);
    let result = model
        .load_from(&mut store)
        .map_err(|e| SegmentError::Checkpoint {
            path: weights.clone(),
            problem: e.to_string(),
        })?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(SegmentError::Checkpoint {
            path: weights,
            problem: format!(
                "weights do not match the config ({} missing, {} errors)",
                result.missing.len(),
                result.errors.len()
            ),
        });
    }
    Ok((config, model))
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
    /// Convert and normalise each volume (first frame) once: HU window to
    /// [0, 1], or z-score over the volume's non-zero voxels.
    pub fn new(volumes: &[&Volume], norm: InputNorm) -> Prepared {
        let dims = volumes.first().map_or([0; 3], |v| v.dims);
        let channels = volumes
            .iter()
            .map(|v| {
                let mut vals = v.frame_f32(0).unwrap_or_default();
                let (off, scale, clamp) = match norm {
                    InputNorm::Window { low, high } => (low, 1.0 / (high - low).max(1e-9), true),
                    InputNorm::ZScore => {
                        let (mut n, mut sum, mut sq) = (0usize, 0f64, 0f64);
                        for &x in vals.iter().filter(|x| **x != 0.0 && x.is_finite()) {
                            n += 1;
                            sum += f64::from(x);
                            sq += f64::from(x) * f64::from(x);
                        }
                        let n = n.max(1) as f64;
                        let mean = sum / n;
                        let sd = (sq / n - mean * mean).max(0.0).sqrt().max(1e-9);
                        (mean, 1.0 / sd, false)
                    }
                };
                for x in &mut vals {
                    let y = (f64::from(*x) - off) * scale;
                    *x = (if clamp { y.clamp(0.0, 1.0) } else { y }) as f32;
                }
                vals
            })
            .collect();
        Prepared { dims, channels }
    }

    /// Network input for slices `ks`: `[B, C, size, size]` values, each
    /// slice resampled bilinearly.
    pub fn slices(&self, ks: &[usize], size: usize) -> Vec<f32> {
        let [nx, ny, _] = self.dims;
        let mut data = Vec::with_capacity(ks.len() * self.channels.len() * size * size);
        for &k in ks {
            for vals in &self.channels {
                resample(
                    &vals[k * nx * ny..(k + 1) * nx * ny],
                    nx,
                    ny,
                    size,
                    &mut data,
                );
            }
        }
        data
    }
}

/// Bilinear resample of one slice (`nx`×`ny`, x fastest) to `size`×`size`.
fn resample(slice: &[f32], nx: usize, ny: usize, size: usize, out: &mut Vec<f32>) {
    for j in 0..size {
        let y = ((j as f64 + 0.5) * ny as f64 / size as f64 - 0.5).clamp(0.0, (ny - 1) as f64);
        let (y0, fy) = (y.floor() as usize, y - y.floor());
        let y1 = (y0 + 1).min(ny - 1);
        for i in 0..size {
            let x = ((i as f64 + 0.5) * nx as f64 / size as f64 - 0.5).clamp(0.0, (nx - 1) as f64);
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

/// Segment a 3D case (one volume per input channel, all on one grid)
/// slice by slice, `batch` slices at a time. `progress(done, total)` is
/// called after each batch.
pub fn segment(
    config: &SegmenterConfig,
    model: &UNet2d,
    volumes: &[&Volume],
    device: &Device,
    batch: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<LabelVolume, SegmentError> {
    let Some(first) = volumes.first() else {
        return Err(SegmentError::Input("no input volume".into()));
    };
    if volumes.len() != config.model.in_channels {
        return Err(SegmentError::Input(format!(
            "the model takes {} channel(s) but {} volume(s) were given",
            config.model.in_channels,
            volumes.len()
        )));
    }
    let [nx, ny, nz] = first.dims;
    let size = config.size;
    let prepared = Prepared::new(volumes, config.norm);
    let mut out = LabelVolume::zeros(first.dims, 1, first.geometry.clone());
    let ks: Vec<usize> = (0..nz).collect();
    for (done, chunk) in ks.chunks(batch.max(1)).enumerate() {
        let data = prepared.slices(chunk, size);
        let x = Tensor::<4>::from_data(
            TensorData::new(data, [chunk.len(), volumes.len(), size, size]),
            device,
        );
        let logits = model.forward(x);
        let c = config.model.out_channels;
        let probs: Vec<f32> = match config.model.output {
            OutputMode::MultiClass => burn::tensor::activation::softmax(logits, 1),
            OutputMode::MultiLabel => burn::tensor::activation::sigmoid(logits),
        }
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| SegmentError::Input(format!("{e:?}")))?;
        for (b, &k) in chunk.iter().enumerate() {
            for j in 0..ny {
                let sj = ((j as f64 + 0.5) * size as f64 / ny as f64) as usize;
                for i in 0..nx {
                    let si = ((i as f64 + 0.5) * size as f64 / nx as f64) as usize;
                    let at = |ch: usize| {
                        probs[((b * c + ch) * size + sj.min(size - 1)) * size + si.min(size - 1)]
                    };
                    let best = (0..c).max_by(|&p, &q| at(p).total_cmp(&at(q))).unwrap_or(0);
                    let id = match config.model.output {
                        OutputMode::MultiClass if best > 0 => {
                            config.label_ids.get(best - 1).copied().unwrap_or(0)
                        }
                        OutputMode::MultiLabel if at(best) > 0.5 => {
                            config.label_ids.get(best).copied().unwrap_or(0)
                        }
                        _ => 0,
                    };
                    if id != 0 {
                        out.set(i + nx * (j + ny * k), id);
                    }
                }
            }
        }
        progress(((done + 1) * batch.max(1)).min(nz), nz);
    }
    Ok(out)
}

/// Settings of [`train_multiclass`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Optimiser steps.
    pub steps: usize,
    /// Slices per step.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the initial weights and of slice sampling.
    pub seed: u64,
}

/// Supervised training on labelled 3D cases (one volume per channel plus a
/// label map), multi-class cross-entropy on random axial slices with Adam.
/// A small, synchronous core: the background-thread driver with events,
/// cancel and checkpoints builds on it. `on_step(step, loss)` is called
/// after every step; a NaN loss stops training with an error.
pub fn train_multiclass(
    config: &SegmenterConfig,
    cases: &[(Vec<&Volume>, &LabelVolume)],
    opts: &TrainOptions,
    device: &Device,
    mut on_step: impl FnMut(usize, f32),
) -> Result<UNet2d, SegmentError> {
    let TrainOptions {
        steps,
        batch,
        learning_rate,
        seed,
    } = *opts;
    use burn::optim::{AdamConfig, GradientsParams};
    if config.model.output != OutputMode::MultiClass {
        return Err(SegmentError::Input(
            "train_multiclass needs a multi-class model".into(),
        ));
    }
    if cases.is_empty() {
        return Err(SegmentError::Input("no training cases".into()));
    }
    let device = device.clone().autodiff();
    // Seeded initialisation: the same seed trains the same model.
    device.seed(seed);
    let mut model = config.model.init(&device);
    let mut optim = AdamConfig::new().init();
    let size = config.size;
    let classes = config.model.out_channels;
    let prepared: Vec<Prepared> = cases
        .iter()
        .map(|(vols, _)| Prepared::new(vols, config.norm))
        .collect();
    // Deterministic slice sampling, biased towards slices with labels.
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = crate::phantom::mix_cell(state as usize, 7, 11);
        state
    };
    for step in 0..steps {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..batch.max(1) {
            let c = (next() % cases.len() as u64) as usize;
            let (_, labels) = &cases[c];
            let [nx, ny, nz] = labels.dims;
            let mut k = (next() % nz as u64) as usize;
            for _ in 0..8 {
                if (0..nx * ny).any(|i| labels.get(k * nx * ny + i) != 0) {
                    break;
                }
                k = (next() % nz as u64) as usize;
            }
            xs.extend(prepared[c].slices(&[k], size));
            // Class index per network pixel (nearest from the native grid).
            for j in 0..size {
                let sj = ((j as f64 + 0.5) * ny as f64 / size as f64) as usize;
                for i in 0..size {
                    let si = ((i as f64 + 0.5) * nx as f64 / size as f64) as usize;
                    let id = labels.get(k * nx * ny + sj.min(ny - 1) * nx + si.min(nx - 1));
                    let class = config
                        .label_ids
                        .iter()
                        .position(|&l| l == id)
                        .map_or(0, |p| p + 1);
                    ys.push(class as i64);
                }
            }
        }
        let b = batch.max(1);
        let x = Tensor::<4>::from_data(
            TensorData::new(xs, [b, config.model.in_channels, size, size]),
            &device,
        );
        let y = Tensor::<3, Int>::from_data(TensorData::new(ys, [b, size, size]), &device);
        let logits = model.forward(x);
        let logp = burn::tensor::activation::log_softmax(logits, 1);
        let onehot = y.one_hot::<4>(classes).permute([0, 3, 1, 2]).float();
        let loss = (logp * onehot).sum_dim(1).mean().neg();
        let value = loss.clone().into_scalar::<f32>();
        if !value.is_finite() {
            return Err(SegmentError::Input(format!(
                "training diverged: loss {value} at step {step}"
            )));
        }
        on_step(step, value);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(learning_rate, model, grads);
    }
    Ok(model.to_device(&device.without_autodiff()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resample_identity_and_upscale() {
        let s: Vec<f32> = (0..16).map(|x| x as f32).collect();
        let mut same = Vec::new();
        resample(&s, 4, 4, 4, &mut same);
        assert_eq!(same, s);
        let mut up = Vec::new();
        resample(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, &mut up);
        assert_eq!(up.len(), 16);
        assert_eq!((up[0], up[15]), (0.0, 3.0));
        assert!((up[5] - 0.75).abs() < 1e-6); // inner point, 1/4 of the way
    }
}
