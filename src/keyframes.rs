//! Keyframe selection without a model: the uniform and content-aware
//! strategies of the UME encoder (seed 000), as plain functions over
//! volumes. The attention-guided strategy and the learned fusion of the
//! three need a trained encoder and live with the models.
//!
//! "Frames" are time frames of a 4D cine, or slices along z of a 3D volume
//! (all modalities of a case together). Each frame is summarised by block
//! averages (at most 32×32 per slice) so selection is cheap on large data.
//!
//! - Uniform: evenly spaced frames (`linspace(0, T-1, K)`); its per-frame
//!   score is a triangular prior peaking at those positions.
//! - Content-aware: the per-frame score is the frame's distance from the
//!   sequence mean (normalised to [0, 1]); selection starts from the most
//!   atypical frame and then repeatedly adds the frame farthest from all
//!   frames chosen so far (greedy k-centre), so the keyframes span the
//!   distinct states of the sequence. On a cardiac cycle with K = 2 those
//!   are end-diastole and end-systole, the two extremes of the motion.

use crate::volume::Volume;

/// A selection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Evenly spaced.
    Uniform,
    /// Most distinct frames.
    Content,
    /// Learned frame scores (needs a trained encoder).
    Attention,
    /// Learned fusion of the three (needs a trained encoder).
    Fused,
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "uniform" => Ok(Strategy::Uniform),
            "content" => Ok(Strategy::Content),
            "attention" => Ok(Strategy::Attention),
            "fused" => Ok(Strategy::Fused),
            other => Err(format!(
                "unknown strategy {other:?} (uniform, content, attention, fused)"
            )),
        }
    }
}

/// Frame summaries: one feature vector per frame.
#[derive(Debug, Clone)]
pub struct FrameFeatures {
    /// `features[t]` describes frame t.
    pub features: Vec<Vec<f32>>,
}

impl FrameFeatures {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether there are no frames.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Time frames of a 4D volume (3D volumes: a single frame).
    pub fn from_time_frames(v: &Volume) -> FrameFeatures {
        let [nx, ny, _] = v.dims;
        let (bx, by) = (nx.div_ceil(32).max(1), ny.div_ceil(32).max(1));
        let features = (0..v.frames)
            .map(|t| frame_block_means(v, t, bx, by).concat())
            .collect();
        FrameFeatures { features }
    }

    /// Slices along z of one or more co-registered 3D volumes (modalities
    /// concatenated per slice). Each modality's block means are z-scored so
    /// no modality dominates by its intensity scale. Modalities are
    /// summarised on parallel threads.
    pub fn from_slices(volumes: &[&Volume]) -> FrameFeatures {
        let Some(first) = volumes.first() else {
            return FrameFeatures {
                features: Vec::new(),
            };
        };
        let [nx, ny, nz] = first.dims;
        let (bx, by) = (nx.div_ceil(32).max(1), ny.div_ceil(32).max(1));
        let per_modality: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
            let handles: Vec<_> = volumes
                .iter()
                .map(|v| {
                    std::thread::Builder::new()
                        .name("ume-keyframes".into())
                        .spawn_scoped(s, move || {
                            let mut slices = frame_block_means(v, 0, bx, by);
                            let all: Vec<f64> =
                                slices.iter().flatten().map(|&x| f64::from(x)).collect();
                            let n = all.len().max(1) as f64;
                            let mean = all.iter().sum::<f64>() / n;
                            let sd = (all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
                                .sqrt()
                                .max(1e-9);
                            for x in slices.iter_mut().flatten() {
                                *x = ((f64::from(*x) - mean) / sd) as f32;
                            }
                            slices
                        })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.ok().and_then(|h| h.join().ok()).unwrap_or_default())
                .collect()
        });
        let features = (0..nz)
            .map(|k| {
                per_modality
                    .iter()
                    .filter_map(|m| m.get(k))
                    .flatten()
                    .copied()
                    .collect()
            })
            .collect();
        FrameFeatures { features }
    }
}

/// Block means of every z slice of frame `t`: straight from the voxels for
/// 16-bit data, else through one f32 copy of the frame.
fn frame_block_means(v: &Volume, t: usize, bx: usize, by: usize) -> Vec<Vec<f32>> {
    raw_block_means(v, t, bx, by).unwrap_or_else(|| {
        let [nx, ny, nz] = v.dims;
        let vals = v.frame_f32(t).unwrap_or_default();
        (0..nz)
            .map(|k| {
                let mut f = Vec::new();
                block_means(
                    &vals[k * nx * ny..(k + 1) * nx * ny],
                    nx,
                    ny,
                    bx,
                    by,
                    &mut f,
                );
                f
            })
            .collect()
    })
}

/// Block means of every z slice straight from 16-bit integer voxels (no
/// float copy of the volume); scaling is affine, so it is applied to the
/// means. `None` for other types.
fn raw_block_means(v: &Volume, t: usize, bx: usize, by: usize) -> Option<Vec<Vec<f32>>> {
    let signed = match v.dtype {
        crate::volume::DataType::I16 => true,
        crate::volume::DataType::U16 => false,
        _ => return None,
    };
    let [nx, ny, nz] = v.dims;
    let (gx, gy) = (nx.div_ceil(bx), ny.div_ceil(by));
    let bytes = v.frame(t)?.raw_bytes();
    let s = v.scaling;
    let out = (0..nz)
        .map(|k| {
            let mut sums = vec![0i64; gx * gy];
            let mut counts = vec![0u32; gx * gy];
            let slice = &bytes[k * nx * ny * 2..(k + 1) * nx * ny * 2];
            for (j, row) in slice.chunks_exact(nx * 2).enumerate() {
                let base = (j / by) * gx;
                for (c, chunk) in row.chunks(bx * 2).enumerate() {
                    let sum: i64 = if signed {
                        chunk
                            .chunks_exact(2)
                            .map(|b| i64::from(i16::from_le_bytes([b[0], b[1]])))
                            .sum()
                    } else {
                        chunk
                            .chunks_exact(2)
                            .map(|b| i64::from(u16::from_le_bytes([b[0], b[1]])))
                            .sum()
                    };
                    sums[base + c] += sum;
                    counts[base + c] += (chunk.len() / 2) as u32;
                }
            }
            sums.iter()
                .zip(&counts)
                .map(|(&t, &n)| {
                    if n > 0 {
                        s.apply(t as f64 / f64::from(n)) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    Some(out)
}

/// Append the means of `bx`×`by` blocks of one slice (NaN/inf ignored).
fn block_means(slice: &[f32], nx: usize, ny: usize, bx: usize, by: usize, out: &mut Vec<f32>) {
    let (gx, gy) = (nx.div_ceil(bx), ny.div_ceil(by));
    let mut sums = vec![0f32; gx * gy];
    let mut counts = vec![0u32; gx * gy];
    for (j, row) in slice.chunks_exact(nx).enumerate().take(ny) {
        let base = (j / by) * gx;
        for (c, chunk) in row.chunks(bx).enumerate() {
            let (mut s, mut n) = (0f32, 0u32);
            for &x in chunk {
                if x.is_finite() {
                    s += x;
                    n += 1;
                }
            }
            sums[base + c] += s;
            counts[base + c] += n;
        }
    }
    out.extend(
        sums.iter()
            .zip(&counts)
            .map(|(&s, &c)| if c > 0 { s / c as f32 } else { 0.0 }),
    );
}

fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x - y).powi(2))
        .sum()
}

/// Evenly spaced frame indices, `linspace(0, T-1, K)` rounded (K ≥ T: all).
pub fn uniform_indices(frames: usize, k: usize) -> Vec<usize> {
    if frames == 0 || k == 0 {
        return Vec::new();
    }
    if k >= frames {
        return (0..frames).collect();
    }
    if k == 1 {
        return vec![(frames - 1) / 2];
    }
    let mut v: Vec<usize> = (0..k)
        .map(|i| ((i * (frames - 1)) as f64 / (k - 1) as f64).round() as usize)
        .collect();
    v.dedup();
    v
}

/// The uniform prior: 1 at the evenly spaced positions, falling linearly to
/// 0 halfway to the next one.
pub fn uniform_scores(frames: usize, k: usize) -> Vec<f64> {
    let pos = uniform_indices(frames, k);
    let spacing = if pos.len() > 1 {
        (frames - 1) as f64 / (pos.len() - 1) as f64
    } else {
        frames as f64
    };
    (0..frames)
        .map(|t| {
            pos.iter()
                .map(|&p| (1.0 - (t as f64 - p as f64).abs() / (spacing / 2.0).max(1e-9)).max(0.0))
                .fold(0.0, f64::max)
        })
        .collect()
}

/// Content score of every frame: distance from the sequence mean,
/// normalised so the most atypical frame scores 1.
pub fn content_scores(f: &FrameFeatures) -> Vec<f64> {
    let n = f.len();
    if n == 0 {
        return Vec::new();
    }
    let dim = f.features[0].len();
    let mut mean = vec![0f32; dim];
    for feat in &f.features {
        for (m, &x) in mean.iter_mut().zip(feat) {
            *m += x / n as f32;
        }
    }
    let d: Vec<f64> = f
        .features
        .iter()
        .map(|feat| dist2(feat, &mean).sqrt())
        .collect();
    let max = d.iter().copied().fold(0.0, f64::max);
    d.iter()
        .map(|&x| if max > 0.0 { x / max } else { 0.0 })
        .collect()
}

/// Content-aware selection: the most atypical frame, then greedily the
/// frame farthest from everything chosen (ties: lower index). Sorted.
pub fn content_indices(f: &FrameFeatures, k: usize) -> Vec<usize> {
    let n = f.len();
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let scores = content_scores(f);
    let first = (0..n)
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    let mut chosen = vec![first];
    let mut nearest: Vec<f64> = f
        .features
        .iter()
        .map(|x| dist2(x, &f.features[first]))
        .collect();
    while chosen.len() < k.min(n) {
        let next = (0..n)
            .filter(|t| !chosen.contains(t))
            .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then(b.cmp(&a)));
        let Some(next) = next else { break };
        chosen.push(next);
        for (t, d) in nearest.iter_mut().enumerate() {
            *d = d.min(dist2(&f.features[t], &f.features[next]));
        }
    }
    chosen.sort_unstable();
    chosen
}

/// What a sequence's frames are: z slices of a volume, or time frames of a
/// cine — a cardiac cycle, so its last frame neighbours its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FrameAxis {
    /// Slices along z (3D volumes).
    Slices,
    /// Time frames of a 4D cine (cyclic).
    Time,
}

impl FrameAxis {
    /// The axis the encoder and the selectors read from this volume.
    pub fn of(volume: &Volume) -> FrameAxis {
        if volume.frames > 1 {
            FrameAxis::Time
        } else {
            FrameAxis::Slices
        }
    }

    /// Frames between `a` and `b` in a sequence of `n` (cyclic in time).
    pub fn distance(self, a: usize, b: usize, n: usize) -> usize {
        let d = a.abs_diff(b);
        match self {
            FrameAxis::Slices => d,
            FrameAxis::Time => d.min(n.saturating_sub(d)),
        }
    }
}

/// The smallest spacing between keyframes chosen from scores: half the
/// spacing of `k` evenly spaced frames (at least 1, i.e. no constraint).
pub fn min_gap(frames: usize, k: usize) -> usize {
    (frames / (2 * k.max(1))).max(1)
}

/// Top-`k` frames by score with temporal non-maximum suppression: the best
/// frame first, then repeatedly the best frame at least [`min_gap`] frames
/// (cyclically, for time frames) from every frame chosen so far, so
/// neighbours of a peak (near-identical
/// frames of a cine, adjacent slices) do not crowd out a second peak. When
/// the gap leaves too few candidates the rest are filled by score. Ties go
/// to the lower index; the result is sorted.
pub fn spread_top_k(scores: &[f32], k: usize, axis: FrameAxis) -> Vec<usize> {
    let n = scores.len();
    let k = k.min(n);
    let gap = min_gap(n, k);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&p, &q| scores[q].total_cmp(&scores[p]).then(p.cmp(&q)));
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    for &t in &order {
        if chosen.len() == k {
            break;
        }
        if chosen.iter().all(|&c| axis.distance(c, t, n) >= gap) {
            chosen.push(t);
        }
    }
    for &t in &order {
        if chosen.len() == k {
            break;
        }
        if !chosen.contains(&t) {
            chosen.push(t);
        }
    }
    chosen.sort_unstable();
    chosen
}

/// A selection with every strategy's per-frame scores.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Selection {
    /// Number of frames.
    pub frames: usize,
    /// Selected frames (0-based, ascending).
    pub selected: Vec<usize>,
    /// Uniform prior per frame.
    pub uniform: Vec<f64>,
    /// Content score per frame.
    pub content: Vec<f64>,
}

/// Select `k` keyframes with a model-free strategy.
pub fn select(f: &FrameFeatures, k: usize, strategy: Strategy) -> Result<Selection, String> {
    let n = f.len();
    let selected = match strategy {
        Strategy::Uniform => uniform_indices(n, k),
        Strategy::Content => content_indices(f, k),
        Strategy::Attention | Strategy::Fused => {
            return Err("the attention-guided and fused strategies need a trained UME encoder (--model DIR); uniform and content work without one".into());
        }
    };
    Ok(Selection {
        frames: n,
        selected,
        uniform: uniform_scores(n, k),
        content: content_scores(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(values: &[f32]) -> FrameFeatures {
        FrameFeatures {
            features: values.iter().map(|&v| vec![v; 4]).collect(),
        }
    }

    #[test]
    fn integer_fast_path_equals_the_float_path() {
        use crate::volume::{Geometry, Scaling};
        let dims = [70usize, 40, 3];
        let vals: Vec<i16> = (0..70 * 40 * 3)
            .map(|i| ((i * 37) % 2000) as i16 - 1000)
            .collect();
        let mut v = Volume::from_values(dims.to_vec(), &vals, Geometry::identity()).unwrap();
        v.scaling = Scaling {
            slope: 0.5,
            inter: 10.0,
        };
        let fast = raw_block_means(&v, 0, 3, 2).unwrap();
        let floats = v.frame_f32(0).unwrap();
        for k in 0..3 {
            let mut slow = Vec::new();
            block_means(&floats[k * 2800..(k + 1) * 2800], 70, 40, 3, 2, &mut slow);
            assert_eq!(fast[k].len(), slow.len());
            for (a, b) in fast[k].iter().zip(&slow) {
                assert!((a - b).abs() < 1e-3, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn uniform_indices_are_exact() {
        assert_eq!(uniform_indices(10, 4), vec![0, 3, 6, 9]);
        assert_eq!(
            uniform_indices(128, 10),
            vec![0, 14, 28, 42, 56, 71, 85, 99, 113, 127]
        );
        assert_eq!(uniform_indices(5, 1), vec![2]);
        assert_eq!(uniform_indices(3, 8), vec![0, 1, 2]);
        let s = uniform_scores(10, 4);
        assert_eq!((s[0], s[3], s[9]), (1.0, 1.0, 1.0));
        assert!(s[1] < 1.0 && s[1] > 0.0);
    }

    #[test]
    fn content_picks_the_distinct_states() {
        // A plateau sequence with two abrupt changes: frames 0-3 at 0, 4-7 at
        // 10, 8-11 at 3. The three states are found, one frame each.
        let f = seq(&[
            0.0, 0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0, 3.0, 3.0, 3.0, 3.0,
        ]);
        let sel = content_indices(&f, 3);
        let states: Vec<i32> = sel.iter().map(|&t| f.features[t][0] as i32).collect();
        assert_eq!(states.len(), 3);
        assert!(
            states.contains(&0) && states.contains(&10) && states.contains(&3),
            "{sel:?}"
        );
        // A cycle: K = 2 returns the two extremes.
        let cycle: Vec<f32> = (0..20)
            .map(|t| (std::f32::consts::TAU * t as f32 / 20.0).cos())
            .collect();
        assert_eq!(content_indices(&seq(&cycle), 2), vec![0, 10]);
        let scores = content_scores(&seq(&cycle));
        assert_eq!(scores[0], 1.0);
        assert!(
            select(&seq(&cycle), 2, Strategy::Fused)
                .unwrap_err()
                .contains("trained")
        );
    }

    #[test]
    fn spread_top_k_suppresses_neighbours_of_a_peak() {
        // Two peaks, the higher one with a high neighbour: plain top-2 would
        // return 7 and 8; the spread selection returns both peaks.
        let mut s = vec![0.1f32; 20];
        s[7] = 1.0;
        s[8] = 0.96;
        s[0] = 0.94;
        assert_eq!(min_gap(20, 2), 5);
        assert_eq!(spread_top_k(&s, 2, FrameAxis::Slices), vec![0, 7]);
        // Too many keyframes for the gap: the rest are filled by score.
        let all = spread_top_k(&s, 20, FrameAxis::Slices);
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        assert_eq!(spread_top_k(&[0.5, 0.5, 0.5], 1, FrameAxis::Time), vec![0]);
        assert!(spread_top_k(&[], 3, FrameAxis::Slices).is_empty());
        // A cine is a cycle: its last frame neighbours the first, so with
        // peaks at 0, 19 and 9 the second keyframe is 9 in time but 19
        // across slices.
        let mut c = vec![0.0f32; 20];
        c[0] = 1.0;
        c[19] = 0.9;
        c[9] = 0.5;
        assert_eq!(spread_top_k(&c, 2, FrameAxis::Time), vec![0, 9]);
        assert_eq!(spread_top_k(&c, 2, FrameAxis::Slices), vec![0, 19]);
        assert_eq!(FrameAxis::Time.distance(1, 19, 20), 2);
    }
}
