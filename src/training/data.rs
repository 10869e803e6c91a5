//! Training samples: every labelled 3D grid of the dataset (a 3D case, or
//! one labelled frame of a 4D case such as ACDC's ED and ES), with its
//! channels normalised once. Cases, not slices, are split into training and
//! validation so no patient is on both sides.

use super::augment::{Rng, augment};
use super::config::{DataConfig, TrainConfig};
use crate::dataset::Case;
use crate::models::OutputMode;
use crate::models::segment::{Prepared, nearest};
use crate::volume::{LabelVolume, Volume};

/// One labelled 3D grid.
pub struct Sample {
    /// Case id (and frame, for 4D cases).
    pub id: String,
    /// Normalised input channels.
    pub input: Prepared,
    /// Labels on the same grid (one frame).
    pub labels: LabelVolume,
    /// Axial slices containing each label id present (sorted by id).
    slices_by_label: Vec<(u16, Vec<usize>)>,
}

/// The samples of a run, split.
pub struct TrainingData {
    /// Drawn for training.
    pub train: Vec<Sample>,
    /// Segmented whole at every validation.
    pub val: Vec<Sample>,
    /// Label ids found in the label maps (sorted, no background).
    pub present: Vec<u16>,
}

/// A data problem, naming the case.
#[derive(Debug, thiserror::Error)]
#[error("{case}: {problem}")]
pub struct DataError {
    /// Case id.
    pub case: String,
    /// What is wrong.
    pub problem: String,
}

impl Sample {
    /// A sample from input channels (first frame `frame`) and labels.
    pub fn new(
        id: String,
        channels: &[&Volume],
        frame: usize,
        labels: LabelVolume,
        config: &TrainConfig,
    ) -> Result<Sample, DataError> {
        let err = |problem: String| DataError {
            case: id.clone(),
            problem,
        };
        if channels.len() != config.model.input_volumes() {
            return Err(err(format!(
                "the model takes {} channel(s) but the case has {}",
                config.model.input_volumes(),
                channels.len()
            )));
        }
        for v in channels {
            if v.dims != labels.dims {
                return Err(err(format!(
                    "image grid {:?} differs from the label grid {:?}",
                    v.dims, labels.dims
                )));
            }
        }
        let input = Prepared::frame(channels, frame, config.model.norm);
        let [nx, ny, nz] = labels.dims;
        let mut by_label = std::collections::BTreeMap::<u16, Vec<usize>>::new();
        for k in 0..nz {
            let mut seen = std::collections::BTreeSet::new();
            for i in 0..nx * ny {
                seen.insert(labels.get(k * nx * ny + i));
            }
            for id in seen.into_iter().filter(|&id| id != 0) {
                by_label.entry(id).or_default().push(k);
            }
        }
        Ok(Sample {
            id,
            input,
            labels,
            slices_by_label: by_label.into_iter().collect(),
        })
    }

    /// Labels of slice `k` resampled (nearest) to `size`×`size`.
    fn label_slice(&self, k: usize, size: usize) -> Vec<u16> {
        let [nx, ny, _] = self.labels.dims;
        let mut out = Vec::with_capacity(size * size);
        for j in 0..size {
            let sj = nearest(j, size, ny);
            for i in 0..size {
                out.push(
                    self.labels
                        .get(k * nx * ny + sj * nx + nearest(i, size, nx)),
                );
            }
        }
        out
    }
}

/// A labelled case by reference: what training needs of a loaded dataset
/// case or of the case open in the app.
pub struct LabelledCase<'a> {
    /// Case id.
    pub id: &'a str,
    /// (modality name, image), one grid.
    pub images: Vec<(&'a str, &'a Volume)>,
    /// 3D labels.
    pub labels: Option<&'a LabelVolume>,
    /// Labelled frames of a 4D case: (0-based frame, 3D labels).
    pub frame_labels: Vec<(usize, &'a LabelVolume)>,
}

impl<'a> From<&'a Case> for LabelledCase<'a> {
    fn from(c: &'a Case) -> LabelledCase<'a> {
        LabelledCase {
            id: &c.id,
            images: c.images.iter().map(|(n, v)| (n.as_str(), v)).collect(),
            labels: c.labels.as_ref(),
            frame_labels: c.frame_labels.iter().map(|(t, l)| (*t, l)).collect(),
        }
    }
}

impl TrainingData {
    /// Samples of loaded dataset cases; see [`TrainingData::from_labelled`].
    pub fn from_cases(cases: &[Case], config: &TrainConfig) -> Result<TrainingData, DataError> {
        let cases: Vec<LabelledCase> = cases.iter().map(LabelledCase::from).collect();
        TrainingData::from_labelled(&cases, config)
    }

    /// Samples of labelled cases: the channels named in `data.channels` (or
    /// all), the 3D labels or each labelled frame. The last
    /// `val_fraction` of the cases (at least one when there are two or
    /// more) validate; a single case both trains and validates.
    pub fn from_labelled(
        cases: &[LabelledCase],
        config: &TrainConfig,
    ) -> Result<TrainingData, DataError> {
        let mut per_case = Vec::new();
        for case in cases {
            let channels = pick_channels(case, &config.data)?;
            let mut samples = Vec::new();
            if let Some(labels) = case.labels {
                samples.push(Sample::new(
                    case.id.to_string(),
                    &channels,
                    0,
                    labels.clone(),
                    config,
                )?);
            }
            for (t, labels) in &case.frame_labels {
                samples.push(Sample::new(
                    format!("{} frame {t}", case.id),
                    &channels,
                    *t,
                    (*labels).clone(),
                    config,
                )?);
            }
            if !samples.is_empty() {
                per_case.push(samples);
            }
        }
        TrainingData::split(per_case, config.data.val_fraction)
    }
    /// Split samples grouped by case.
    pub fn split(
        mut per_case: Vec<Vec<Sample>>,
        val_fraction: f64,
    ) -> Result<TrainingData, DataError> {
        if per_case.is_empty() {
            return Err(DataError {
                case: "dataset".into(),
                problem: "no case has labels to train on".into(),
            });
        }
        let n = per_case.len();
        let n_val = if n < 2 {
            0
        } else {
            ((n as f64 * val_fraction).round() as usize)
                .clamp(usize::from(val_fraction > 0.0), n - 1)
        };
        let val_cases = per_case.split_off(n - n_val);
        let train: Vec<Sample> = per_case.into_iter().flatten().collect();
        let mut present = std::collections::BTreeSet::new();
        for s in &train {
            for (id, &count) in s.labels.counts().iter().enumerate().skip(1) {
                if count > 0 {
                    present.insert(id as u16);
                }
            }
        }
        Ok(TrainingData {
            train,
            val: val_cases.into_iter().flatten().collect(),
            present: present.into_iter().collect(),
        })
    }

    /// Draw one training batch: network inputs `[B, C, S, S]` and label ids
    /// `[B, S, S]`, augmented. With probability `labelled_slice_bias` a
    /// slice is drawn class-balanced — a structure of `label_ids` uniformly,
    /// then a slice containing it (nnU-Net's foreground oversampling), so
    /// small structures are seen as often as large ones — else uniformly.
    pub fn batch(
        &self,
        config: &TrainConfig,
        label_ids: &[u16],
        rng: &mut Rng,
    ) -> (Vec<f32>, Vec<u16>) {
        let size = config.model.size;
        let b = config.training.batch_size;
        let mut xs = Vec::with_capacity(b * config.model.network.in_channels * size * size);
        let mut ys = Vec::with_capacity(b * size * size);
        for _ in 0..b {
            let s = &self.train[rng.below(self.train.len())];
            let nz = s.labels.dims[2];
            let wanted: Vec<&Vec<usize>> = s
                .slices_by_label
                .iter()
                .filter(|(id, _)| label_ids.contains(id))
                .map(|(_, ks)| ks)
                .collect();
            let k = if !wanted.is_empty() && rng.unit() < config.data.labelled_slice_bias {
                let ks = wanted[rng.below(wanted.len())];
                ks[rng.below(ks.len())]
            } else {
                rng.below(nz)
            };
            let mut x = s.input.slices(&[k], size, config.model.context_slices);
            let mut y = s.label_slice(k, size);
            augment(&config.data.augment, rng, &mut x, &mut y, size);
            xs.extend(x);
            ys.extend(y);
        }
        (xs, ys)
    }
}

/// One-hot targets `[B, C, S, S]` of label ids for a model's channels:
/// channel c is `label_ids[c]` (multi-label) or class c with 0 background
/// and class c ≥ 1 = `label_ids[c − 1]` (multi-class). Ids the model does not
/// predict count as background.
pub fn one_hot(ids: &[u16], label_ids: &[u16], mode: OutputMode, pixels: usize) -> Vec<f32> {
    let channels = TrainConfig::channels_for(mode, label_ids.len());
    let mut lut = vec![None; usize::from(u16::MAX) + 1];
    for (c, &id) in label_ids.iter().enumerate() {
        lut[usize::from(id)] = Some(c);
    }
    let b = ids.len() / pixels.max(1);
    let mut out = vec![0.0f32; b * channels * pixels];
    for (n, &id) in ids.iter().enumerate() {
        let (bi, p) = (n / pixels, n % pixels);
        let channel = match (lut[usize::from(id)], mode) {
            (Some(c), OutputMode::MultiLabel) => Some(c),
            (None, OutputMode::MultiLabel) => None,
            (Some(c), OutputMode::MultiClass) => Some(c + 1),
            (None, OutputMode::MultiClass) => Some(0),
        };
        if let Some(c) = channel {
            out[(bi * channels + c) * pixels + p] = 1.0;
        }
    }
    out
}

fn pick_channels<'a>(
    case: &LabelledCase<'a>,
    data: &DataConfig,
) -> Result<Vec<&'a Volume>, DataError> {
    if data.channels.is_empty() {
        return Ok(case.images.iter().map(|(_, v)| *v).collect());
    }
    data.channels
        .iter()
        .map(|want| {
            case.images
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(want))
                .map(|(_, v)| *v)
                .ok_or_else(|| DataError {
                    case: case.id.to_string(),
                    problem: format!(
                        "no {want:?} image (has {})",
                        case.images
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_per_mode() {
        let ids = [0u16, 4, 2, 9];
        let ml = one_hot(&ids, &[2, 4], OutputMode::MultiLabel, 4);
        assert_eq!(ml, vec![0., 0., 1., 0., 0., 1., 0., 0.]);
        let mc = one_hot(&ids, &[2, 4], OutputMode::MultiClass, 4);
        assert_eq!(mc, vec![1., 0., 0., 1., 0., 0., 1., 0., 0., 1., 0., 0.]);
    }
}
