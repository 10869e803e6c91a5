//! A labelled case as the encoder trains on it: its frames normalised and
//! resampled to the encoder's size, labels per frame, which frames are
//! labelled and known, and the train/validation split of the cases.

use crate::models::encoder::{frames_of, input_values};
use crate::models::segment::nearest;
use crate::training::data::{DataError, LabelledCase};
use crate::training::ume_config::UmeTrainConfig;
use burn::prelude::*;

/// One labelled case as the encoder reads it: a 3D volume's z slices, or a
/// cine's time frames (of the middle slice).
pub struct UmeCase {
    /// Case id.
    pub id: String,
    /// Normalised frames `[M, T, H, W]`.
    pub(super) input: Vec<f32>,
    /// Label ids per frame at the network size `[T, H, W]`.
    pub(super) labels: Vec<u16>,
    /// Frames with any label.
    pub(super) labelled: Vec<usize>,
    /// Each frame's share of the labelled pixels (sums to 1 when any).
    pub(super) share: Vec<f32>,
    /// Whether a frame's labels are known (a cine labels only ED and ES).
    pub(super) known: Vec<bool>,
    /// Frames `T`.
    pub(super) frames: usize,
    pub(super) axis: crate::keyframes::FrameAxis,
}

impl UmeCase {
    /// Frames of a labelled case, resampled to the encoder's image size
    /// (images bilinear, labels nearest).
    pub fn new(case: &LabelledCase, config: &UmeTrainConfig) -> Result<UmeCase, DataError> {
        let err = |problem: String| DataError {
            case: case.id.to_string(),
            problem,
        };
        let vols: Vec<&crate::volume::Volume> = case.images.iter().map(|(_, v)| *v).collect();
        let Some(first) = vols.first() else {
            return Err(err("no image".into()));
        };
        let [nx, ny, nz] = first.dims;
        // A 3D case: frames are z slices, labelled unless the case lists
        // its labelled slices. A cine: frames are the time frames of the
        // middle slice, labelled where a frame label map exists (ACDC: ED
        // and ES).
        let axis = crate::keyframes::FrameAxis::of(first);
        let cine = axis == crate::keyframes::FrameAxis::Time;
        let frame_count = if cine { first.frames } else { nz };
        let label_slice = |t: usize| -> Option<(&crate::volume::LabelVolume, usize)> {
            if cine {
                // The middle slice, unless its frame lists labelled
                // slices without it.
                let listed = case.frame_slices.iter().find(|(f, _)| *f == t);
                case.frame_labels
                    .iter()
                    .find(|(f, _)| *f == t)
                    .filter(|_| listed.is_none_or(|(_, ks)| ks.contains(&(nz / 2))))
                    .map(|(_, l)| (*l, nz / 2))
            } else {
                case.labels
                    .filter(|_| case.labelled_slices.is_none_or(|ks| ks.contains(&t)))
                    .map(|l| (l, t))
            }
        };
        if !cine && case.labels.is_none() {
            return Err(err("a 3D case needs a label map".into()));
        }
        if cine && case.frame_labels.is_empty() {
            return Err(err("a cine needs labelled frames".into()));
        }
        if let Some(l) = case.labels.filter(|l| l.dims != first.dims) {
            return Err(err(format!(
                "image grid {:?} and label grid {:?} differ",
                first.dims, l.dims
            )));
        }
        let mut frames = frames_of(&vols);
        let m = config.model.input_channels;
        if frames.len() < m {
            return Err(err(format!(
                "{} modalities, the encoder takes {m}",
                frames.len()
            )));
        }
        frames.truncate(m);
        if frame_count > config.model.max_frames {
            return Err(err(format!(
                "{frame_count} frames, more than max_frames {}",
                config.model.max_frames
            )));
        }
        let input = input_values(&config.model, &frames);
        let [h, w] = config.model.image_size;
        let mut ids = Vec::with_capacity(frame_count * h * w);
        let mut labelled = Vec::new();
        let mut share = vec![0.0f32; frame_count];
        let mut known = vec![false; frame_count];
        for t in 0..frame_count {
            let slice = label_slice(t);
            known[t] = slice.is_some();
            let mut n = 0usize;
            for j in 0..h {
                let sj = nearest(j, h, ny);
                for i in 0..w {
                    let id =
                        slice.map_or(0, |(l, k)| l.get(k * nx * ny + sj * nx + nearest(i, w, nx)));
                    n += usize::from(id != 0);
                    ids.push(id);
                }
            }
            if n > 0 {
                labelled.push(t);
            }
            // A cine's few labelled frames (ED, ES) count equally; a
            // volume's slices by their labelled area.
            share[t] = if cine {
                f32::from(u8::from(n > 0))
            } else {
                n as f32
            };
        }
        let total: f32 = share.iter().sum();
        if total > 0.0 {
            share.iter_mut().for_each(|s| *s /= total);
        }
        Ok(UmeCase {
            id: case.id.to_string(),
            input,
            labels: ids,
            labelled,
            share,
            known,
            frames: frame_count,
            axis,
        })
    }

    pub(super) fn tensor(&self, config: &UmeTrainConfig, device: &Device) -> Tensor<5> {
        let [h, w] = config.model.image_size;
        Tensor::from_data(
            TensorData::new(
                self.input.clone(),
                [1, config.model.input_channels, self.frames, h, w],
            ),
            device,
        )
    }
}

/// The label ids of the encoder's classes 1..C.
pub(super) fn class_ids(config: &UmeTrainConfig) -> Vec<u16> {
    if config.model.label_ids.is_empty() {
        (1..config.model.num_classes)
            .filter_map(|c| u16::try_from(c).ok())
            .collect()
    } else {
        config.model.label_ids.clone()
    }
}

/// Hold out the last `val_fraction` of the cases for validation: none with
/// fewer than two cases (training then validates on its own cases), else
/// at least one, leaving at least one to train on.
pub fn split_cases(mut cases: Vec<UmeCase>, val_fraction: f64) -> (Vec<UmeCase>, Vec<UmeCase>) {
    let n_val = if cases.len() < 2 {
        0
    } else {
        ((cases.len() as f64 * val_fraction).round() as usize).clamp(1, cases.len() - 1)
    };
    let val = cases.split_off(cases.len() - n_val);
    (cases, val)
}
