//! Training samples: every labelled 3D grid of the dataset (a 3D case, or
//! one labelled frame of a 4D case such as ACDC's ED and ES), with its
//! channels normalised once. Cases, not slices, are split into training and
//! validation so no patient is on both sides.
//!
//! A sample may be partly labelled ([`Sample::with_labelled_slices`]): only
//! its labelled slices are drawn as targets and validated, the others
//! serving only as 2.5D context. A case painted in the app on a few slices
//! trains on some of them and validates on the rest
//! ([`TrainingData::held_out`]).

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
    /// The slices (along z) whose labels are targets, sorted.
    slices: Vec<usize>,
    /// Labelled slices containing each label id present (sorted by id).
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
            slices: (0..nz).collect(),
            slices_by_label: by_label.into_iter().collect(),
        })
    }

    /// Only the slices `ks` (along z) are labelled: the others are never
    /// drawn as targets nor validated. Empty or out-of-range lists are
    /// errors naming the case.
    pub fn with_labelled_slices(mut self, ks: &[usize]) -> Result<Sample, DataError> {
        let nz = self.labels.dims[2];
        let mut ks = ks.to_vec();
        ks.sort_unstable();
        ks.dedup();
        if ks.is_empty() {
            return Err(DataError {
                case: self.id.clone(),
                problem: "no labelled slice".into(),
            });
        }
        if let Some(bad) = ks.iter().find(|&&k| k >= nz) {
            return Err(DataError {
                case: self.id.clone(),
                problem: format!("labelled slice {bad} is past the {nz} slices"),
            });
        }
        for (_, by) in &mut self.slices_by_label {
            by.retain(|k| ks.binary_search(k).is_ok());
        }
        self.slices_by_label.retain(|(_, by)| !by.is_empty());
        self.slices = ks;
        Ok(self)
    }

    /// The slices whose labels are targets (all unless partly labelled).
    pub fn labelled_slices(&self) -> &[usize] {
        &self.slices
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
    /// The labelled slices of `labels` (`None`: all).
    pub labelled_slices: Option<&'a [usize]>,
    /// The labelled slices of the frames in `frame_labels` that are partly
    /// labelled: (frame, slices); a frame not listed counts whole.
    pub frame_slices: Vec<(usize, &'a [usize])>,
}

impl<'a> From<&'a Case> for LabelledCase<'a> {
    fn from(c: &'a Case) -> LabelledCase<'a> {
        LabelledCase {
            id: &c.id,
            images: c.images.iter().map(|(n, v)| (n.as_str(), v)).collect(),
            labels: c.labels.as_ref(),
            frame_labels: c.frame_labels.iter().map(|(t, l)| (*t, l)).collect(),
            labelled_slices: c.labelled_slices.as_deref(),
            frame_slices: c
                .frame_slices
                .iter()
                .map(|(t, ks)| (*t, ks.as_slice()))
                .collect(),
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
            // A map whose list is empty has nothing to teach.
            let samples =
                case_samples(case, config, |_, ks| (!ks.is_empty()).then(|| ks.to_vec()))?;
            if !samples.is_empty() {
                per_case.push(samples);
            }
        }
        TrainingData::split(per_case, config.data.val_fraction)
    }

    /// One partly labelled case: of each labelled map (the 3D labels or
    /// each labelled frame), a `share` of its labelled slices (spread
    /// evenly, at least one) is held out, the rest trains. Returns the
    /// data (`val` holds the held-out samples) and the held-out slices
    /// (all maps together). Needs two labelled slices in some map.
    pub fn held_out(
        case: &LabelledCase,
        config: &TrainConfig,
        share: f64,
    ) -> Result<(TrainingData, Vec<usize>), DataError> {
        // A map with one labelled slice trains; none is held out of it.
        let train = case_samples(case, config, |_, ks| {
            let (t, _) = split_slices(ks, share);
            (!t.is_empty()).then_some(t)
        })?;
        let val = case_samples(case, config, |_, ks| {
            let (_, h) = split_slices(ks, share);
            (!h.is_empty()).then_some(h)
        })?;
        let mut held = std::collections::BTreeSet::new();
        for s in &val {
            held.extend(s.labelled_slices().iter().copied());
        }
        if train.is_empty() || val.is_empty() {
            // The longest list, for the message (no sample is built).
            let nz = case.images.first().map_or(0, |(_, v)| v.dims[2]);
            let whole = |listed: Option<&[usize]>| listed.map_or(nz, <[usize]>::len);
            let most = case
                .labels
                .map(|_| whole(case.labelled_slices))
                .into_iter()
                .chain(case.frame_labels.iter().map(|(t, _)| {
                    whole(
                        case.frame_slices
                            .iter()
                            .find(|(f, _)| f == t)
                            .map(|(_, ks)| *ks),
                    )
                }))
                .max()
                .unwrap_or(0);
            return Err(DataError {
                case: case.id.to_string(),
                problem: format!(
                    "{most} labelled slice(s): label at least 2 (paint, or mark slices done with D)"
                ),
            });
        }
        let data = TrainingData::split(vec![train, val], 0.5)?;
        Ok((data, held.into_iter().collect()))
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
                s.slices[rng.below(s.slices.len())]
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

/// The samples of one case (its 3D labels or each labelled frame). Each
/// sample's labelled slices are its map's list (every slice when the map
/// has none) passed through `choose(frame, list)`: `Some(slices)` keeps
/// the sample on those slices, `None` leaves it out.
fn case_samples(
    case: &LabelledCase,
    config: &TrainConfig,
    choose: impl Fn(usize, &[usize]) -> Option<Vec<usize>>,
) -> Result<Vec<Sample>, DataError> {
    let channels = pick_channels(case, &config.data)?;
    let mut samples = Vec::new();
    let labelled = case
        .labels
        .map(|l| (case.id.to_string(), 0, l, case.labelled_slices))
        .into_iter()
        .chain(case.frame_labels.iter().map(|(t, l)| {
            let listed = case
                .frame_slices
                .iter()
                .find(|(f, _)| f == t)
                .map(|(_, ks)| *ks);
            (format!("{} frame {t}", case.id), *t, *l, listed)
        }));
    for (id, t, labels, listed) in labelled {
        let all: Vec<usize> = match listed {
            Some(ks) => ks.to_vec(),
            None => (0..labels.dims[2]).collect(),
        };
        let Some(ks) = choose(t, &all) else { continue };
        let whole = listed.is_none() && ks.len() == labels.dims[2];
        let sample = Sample::new(id, &channels, t, labels.clone(), config)?;
        samples.push(if whole {
            sample
        } else {
            sample.with_labelled_slices(&ks)?
        });
    }
    Ok(samples)
}

/// Split sorted slices into (train, held out): `share` of them (rounded,
/// at least one when there are two or more) spread evenly through the
/// list, so the held-out slices span the labelled range.
pub fn split_slices(all: &[usize], share: f64) -> (Vec<usize>, Vec<usize>) {
    let n = all.len();
    if n < 2 {
        return (all.to_vec(), Vec::new());
    }
    let h = ((n as f64 * share).round() as usize).clamp(1, n - 1);
    let held_at: Vec<usize> = (0..h)
        .map(|i| (((i as f64 + 0.5) * n as f64 / h as f64) as usize).min(n - 1))
        .collect();
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, &k) in all.iter().enumerate() {
        if held_at.contains(&i) {
            held.push(k);
        } else {
            train.push(k);
        }
    }
    (train, held)
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

    #[test]
    fn held_out_slices_are_spread_and_disjoint() {
        let all = [3, 5, 8, 9, 12, 20, 21, 30];
        let (train, held) = split_slices(&all, 0.25);
        assert_eq!(held, vec![8, 21]);
        assert_eq!(train.len() + held.len(), all.len());
        assert!(train.iter().all(|k| !held.contains(k)));
        assert_eq!(split_slices(&[4, 6], 0.1), (vec![4], vec![6]));
        assert_eq!(split_slices(&[4], 0.5), (vec![4], vec![]));
    }
}
