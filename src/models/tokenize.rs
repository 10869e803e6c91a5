//! Using a trained tokenizer on a volume: its frames (the 2D z slices of
//! every time frame) normalised per volume to [0, 1] and resampled to the
//! tokenizer's size, encoded to token ids, decoded, and put back on the
//! input's grid and value range; with the figures `ume tokenize` reports
//! (PSNR with the input's max − min as data range, SSIM, bits per frame and
//! the compression ratio against the raw voxels). Also the checkpoint
//! folder (`config.json` tagged `"titok"` + `model.bpk`).

use super::segment::{SegmentError, read_config, resample};
use super::tokenizer::{Titok, TitokConfig};
use crate::volume::Volume;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `config.json` of a tokenizer checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TitokCheckpoint {
    /// Always "titok".
    pub kind: String,
    /// The tokenizer's hyper-parameters.
    pub model: TitokConfig,
}

/// Save a tokenizer checkpoint folder.
pub fn save_titok(dir: &Path, config: &TitokConfig, model: &Titok) -> Result<(), SegmentError> {
    let json = TitokCheckpoint {
        kind: "titok".into(),
        model: config.clone(),
    };
    super::segment::save_folder(dir, &json, model)
}

/// Load a tokenizer checkpoint folder.
pub fn load_titok(dir: &Path, device: &Device) -> Result<(TitokConfig, Titok), SegmentError> {
    let ck: TitokCheckpoint = read_config(dir, "a tokenizer checkpoint")?;
    let bad = |problem: String| SegmentError::Checkpoint {
        path: dir.join("config.json"),
        problem,
    };
    if ck.kind != "titok" {
        return Err(bad(format!("kind {:?} is not a tokenizer", ck.kind)));
    }
    ck.model.check().map_err(bad)?;
    let model = super::segment::load_folder_weights(ck.model.init(device), dir)?;
    Ok((ck.model, model))
}

/// The frames of a volume (channel 0) at the tokenizer's size: per time
/// frame, per z slice, values scaled by the volume's finite min and max to
/// [0, 1] (non-finite values become 0). Returns the frames (`[H·W]` each,
/// time-major) and the (min, max) used.
pub fn frames_of(v: &Volume, [h, w]: [usize; 2]) -> (Vec<Vec<f32>>, (f64, f64)) {
    let s = &v.stats()[0];
    let (lo, hi) = if s.min.is_finite() && s.max.is_finite() && s.max > s.min {
        (s.min, s.max)
    } else {
        (0.0, 1.0)
    };
    let [nx, ny, nz] = v.dims;
    let mut out = Vec::with_capacity(v.frames.max(1) * nz);
    for t in 0..v.frames.max(1) {
        let vals = v.frame_f32(t).unwrap_or_default();
        for z in 0..nz {
            let slice: Vec<f32> = vals[z * nx * ny..(z + 1) * nx * ny]
                .iter()
                .map(|&x| {
                    let y = (f64::from(x) - lo) / (hi - lo);
                    if y.is_finite() { y as f32 } else { 0.0 }
                })
                .collect();
            let mut frame = Vec::with_capacity(h * w);
            resample(&slice, nx, ny, [w, h], &mut frame);
            out.push(frame);
        }
    }
    (out, (lo, hi))
}

/// A volume through the tokenizer.
pub struct Tokenized {
    /// The reconstruction on the input's grid and value range (f32).
    pub reconstruction: Volume,
    /// Token ids per frame (time-major, then z).
    pub tokens: Vec<Vec<u32>>,
    /// PSNR per frame in dB (data range: the input's max − min).
    pub psnr_db: Vec<f64>,
    /// SSIM per frame.
    pub ssim: Vec<f64>,
    /// For a cine: PSNR per frame of the slice's temporal-mean frame (a
    /// baseline costing a whole frame of voxels per slice: tokens that do
    /// not beat it do not carry the motion); empty for a 3D volume.
    pub temporal_mean_psnr_db: Vec<f64>,
}

/// Encode every frame of `v` to tokens and decode it, `batch` frames at a
/// time; `progress(done, total)` returns whether to go on.
pub fn tokenize_volume(
    config: &TitokConfig,
    model: &Titok,
    v: &Volume,
    device: &Device,
    batch: usize,
    mut progress: impl FnMut(usize, usize) -> bool,
) -> Result<Tokenized, SegmentError> {
    let [h, w] = config.image_size;
    let [nx, ny, nz] = v.dims;
    let (frames, (lo, hi)) = frames_of(v, [h, w]);
    let total = frames.len();
    let mut tokens = Vec::with_capacity(total);
    let mut values = Vec::with_capacity(total * nx * ny);
    // On the CPU the engine runs the same computation without Burn's
    // per-op costs (engine::titok); Burn keeps the GPU.
    let engine = super::is_cpu(device).then(|| super::engine::CpuTitok::new(model));
    for (start, chunk) in frames.chunks(batch.max(1)).enumerate() {
        let n = chunk.len();
        let flat: Vec<f32> = chunk.concat();
        let (ids, decoded) = match &engine {
            Some(engine) => {
                let ids = engine.tokenize(&flat);
                let decoded = engine.detokenize(&ids);
                (ids, decoded)
            }
            None => burn_round_trip(model, flat, [n, h, w], device)?,
        };
        let k = config.num_latent_tokens;
        for f in 0..n {
            tokens.push(ids[f * k..(f + 1) * k].to_vec());
            let mut native = Vec::with_capacity(nx * ny);
            resample(
                &decoded[f * h * w..(f + 1) * h * w],
                w,
                h,
                [nx, ny],
                &mut native,
            );
            values.extend(
                native
                    .into_iter()
                    .map(|y| (f64::from(y) * (hi - lo) + lo) as f32),
            );
        }
        if !progress((start * batch.max(1) + n).min(total), total) {
            return Err(SegmentError::Cancelled);
        }
    }
    let mut shape = vec![nx, ny, nz];
    if v.frames > 1 {
        shape.push(v.frames);
    }
    let reconstruction = Volume::from_values(shape, &values, v.geometry.clone())
        .map_err(|e| SegmentError::Input(e.to_string()))?;
    let original: Vec<f32> = (0..v.frames.max(1))
        .flat_map(|t| v.frame_f32(t).unwrap_or_default())
        .collect();
    let range = hi - lo;
    let plane = nx * ny;
    let (psnr_db, ssim) = (0..total)
        .map(|f| {
            let a = &original[f * plane..(f + 1) * plane];
            let b = &values[f * plane..(f + 1) * plane];
            (psnr(a, b, range), ssim(a, b, nx, ny, range))
        })
        .unzip();
    let temporal_mean_psnr_db = if v.frames > 1 {
        let frames = v.frames;
        let mut mean = vec![0f64; nz * plane];
        for t in 0..frames {
            for (m, x) in mean
                .iter_mut()
                .zip(&original[t * nz * plane..(t + 1) * nz * plane])
            {
                *m += f64::from(*x) / frames as f64;
            }
        }
        let mean: Vec<f32> = mean.into_iter().map(|m| m as f32).collect();
        (0..total)
            .map(|f| {
                let z = f % nz;
                psnr(
                    &original[f * plane..(f + 1) * plane],
                    &mean[z * plane..(z + 1) * plane],
                    range,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Tokenized {
        reconstruction,
        tokens,
        psnr_db,
        ssim,
        temporal_mean_psnr_db,
    })
}

/// Token ids and decoded frames of `[n, h, w]` frames through Burn.
fn burn_round_trip(
    model: &Titok,
    flat: Vec<f32>,
    [n, h, w]: [usize; 3],
    device: &Device,
) -> Result<(Vec<u32>, Vec<f32>), SegmentError> {
    let x = Tensor::<4>::from_data(TensorData::new(flat, [n, 1, h, w]), device);
    let ids = model.tokenize(x);
    let decoded: Vec<f32> = model
        .detokenize(ids.clone())
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| SegmentError::Input(format!("{e:?}")))?;
    let ids: Vec<i64> = ids
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .map_err(|e| SegmentError::Input(format!("{e:?}")))?;
    let ids = ids
        .into_iter()
        .map(|i| u32::try_from(i).unwrap_or(0))
        .collect();
    Ok((ids, decoded))
}

/// Peak signal-to-noise ratio in dB with data range `range` (∞ when equal).
pub fn psnr(a: &[f32], b: &[f32], range: f64) -> f64 {
    let n = a.len().max(1) as f64;
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / n;
    10.0 * (range * range / mse).log10()
}

/// Mean structural similarity over 7×7 windows (uniform, as scikit-image's
/// default), constants K1 = 0.01, K2 = 0.03 of the data range.
pub fn ssim(a: &[f32], b: &[f32], nx: usize, ny: usize, range: f64) -> f64 {
    const R: usize = 3;
    if nx <= 2 * R || ny <= 2 * R {
        return f64::NAN;
    }
    let (c1, c2) = ((0.01 * range).powi(2), (0.03 * range).powi(2));
    let mut total = 0.0;
    let mut count = 0usize;
    let n = ((2 * R + 1) * (2 * R + 1)) as f64;
    for j in R..ny - R {
        for i in R..nx - R {
            let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for y in j - R..=j + R {
                for x in i - R..=i + R {
                    let (p, q) = (f64::from(a[y * nx + x]), f64::from(b[y * nx + x]));
                    sa += p;
                    sb += q;
                    saa += p * p;
                    sbb += q * q;
                    sab += p * q;
                }
            }
            let (ma, mb) = (sa / n, sb / n);
            // Sample (co)variances, as scikit-image.
            let k = n / (n - 1.0);
            let va = (saa / n - ma * ma) * k;
            let vb = (sbb / n - mb * mb) * k;
            let cov = (sab / n - ma * mb) * k;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            count += 1;
        }
    }
    total / count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_and_ssim_of_known_images() {
        let a: Vec<f32> = (0..100).map(|i| (i % 10) as f32).collect();
        assert!(psnr(&a, &a, 9.0).is_infinite());
        assert!((ssim(&a, &a, 10, 10, 9.0) - 1.0).abs() < 1e-12);
        let b: Vec<f32> = a.iter().map(|x| x + 0.9).collect();
        // MSE 0.81 with range 9: 10·log10(81 / 0.81) = 20 dB (within
        // f32's rounding of the 0.9 offsets).
        assert!((psnr(&a, &b, 9.0) - 20.0).abs() < 1e-4);
        let noise: Vec<f32> = (0..100).map(|i| ((i * 37) % 10) as f32).collect();
        assert!(ssim(&a, &noise, 10, 10, 9.0) < 0.5);
    }
}
