//! Whole-volume statistics in one pass per channel.
//!
//! Integer data is reduced in its native type (min/max/sum in integers, which
//! vectorises and is exact) and the scaling applied to the results, which is
//! valid because scaling is affine. Float data skips NaN and ±inf, which are
//! counted instead (the convention of the conformance reference).

use super::{DataType, Scaling, Volume};

/// Statistics of one channel over all scaled elements.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Channel name: "value", "R"/"G"/"B", "real"/"imag"/"abs".
    pub channel: &'static str,
    /// Elements looked at.
    pub n_voxels: usize,
    /// Smallest finite value (NaN when none).
    pub min: f64,
    /// Largest finite value (NaN when none).
    pub max: f64,
    /// Mean of finite values (NaN when none).
    pub mean: f64,
    /// Sum of finite values.
    pub sum: f64,
    /// NaN elements.
    pub nan_count: usize,
    /// ±inf elements.
    pub inf_count: usize,
    /// Elements that are not zero (NaN counts as non-zero).
    pub nonzero_count: usize,
}

#[derive(Default)]
struct FloatAcc {
    n: usize,
    min: f64,
    max: f64,
    sum: f64,
    finite: usize,
    nan: usize,
    inf: usize,
    nonzero: usize,
}

impl FloatAcc {
    fn new() -> FloatAcc {
        FloatAcc {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            ..FloatAcc::default()
        }
    }

    #[inline]
    fn push(&mut self, v: f64) {
        self.n += 1;
        if v != 0.0 {
            self.nonzero += 1;
        }
        if v.is_nan() {
            self.nan += 1;
        } else if v.is_infinite() {
            self.inf += 1;
        } else {
            self.finite += 1;
            self.sum += v;
            if v < self.min {
                self.min = v;
            }
            if v > self.max {
                self.max = v;
            }
        }
    }

    fn finish(self, channel: &'static str) -> Stats {
        let none = self.finite == 0;
        Stats {
            channel,
            n_voxels: self.n,
            min: if none { f64::NAN } else { self.min },
            max: if none { f64::NAN } else { self.max },
            mean: if none {
                f64::NAN
            } else {
                self.sum / self.finite as f64
            },
            sum: self.sum,
            nan_count: self.nan,
            inf_count: self.inf,
            nonzero_count: self.nonzero,
        }
    }
}

/// Compute per-channel statistics of a volume.
pub(super) fn compute(v: &Volume) -> Vec<Stats> {
    let bytes = v.raw_bytes();
    match v.dtype {
        DataType::Rgb24 => ["R", "G", "B"]
            .iter()
            .enumerate()
            .map(|(ch, &name)| {
                let mut acc = IntAcc::default();
                for px in bytes.chunks_exact(3) {
                    acc.push(i128::from(px[ch]));
                }
                acc.finish(name, Scaling::IDENTITY)
            })
            .collect(),
        DataType::Complex64 => {
            let mut re = FloatAcc::new();
            let mut im = FloatAcc::new();
            let mut abs = FloatAcc::new();
            for c in bytes.chunks_exact(8) {
                let r = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let i = f32::from_le_bytes([c[4], c[5], c[6], c[7]]);
                re.push(f64::from(r));
                im.push(f64::from(i));
                // numpy's abs of complex64 is computed (and rounded) in f32.
                abs.push(f64::from(r.hypot(i)));
            }
            vec![re.finish("real"), im.finish("imag"), abs.finish("abs")]
        }
        DataType::F32 | DataType::F64 => {
            let mut acc = FloatAcc::new();
            let s = v.scaling;
            if s.is_identity() {
                v.dtype.for_each_f64(bytes, |x| acc.push(x));
            } else {
                v.dtype.for_each_f64(bytes, |x| acc.push(s.apply(x)));
            }
            vec![acc.finish("value")]
        }
        dtype => vec![integer_stats(dtype, bytes, v.scaling)],
    }
}

/// Native-integer accumulator; values fit i128 for every integer dtype.
#[derive(Default)]
struct IntAcc {
    n: usize,
    min: i128,
    max: i128,
    sum: i128,
    zeros: usize,
}

impl IntAcc {
    #[inline]
    fn push(&mut self, x: i128) {
        if self.n == 0 {
            self.min = x;
            self.max = x;
        }
        self.n += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        self.sum += x;
        self.zeros += usize::from(x == 0);
    }

    fn finish(self, channel: &'static str, s: Scaling) -> Stats {
        finish_int(
            channel,
            self.n,
            self.min as f64,
            self.max as f64,
            self.sum as f64,
            self.zeros,
            s,
        )
    }
}

fn finish_int(
    channel: &'static str,
    n: usize,
    min_raw: f64,
    max_raw: f64,
    sum_raw: f64,
    raw_zeros: usize,
    s: Scaling,
) -> Stats {
    if n == 0 {
        return FloatAcc::new().finish(channel);
    }
    let (a, b) = (s.apply(min_raw), s.apply(max_raw));
    let mean = s.apply(sum_raw / n as f64);
    // A scaled value is zero only where raw == -inter/slope; with no
    // intercept that is raw == 0. Otherwise count exactly by rescanning is
    // not worth it: report the raw-zero complement only when it is exact.
    let nonzero = if s.inter == 0.0 { n - raw_zeros } else { n };
    Stats {
        channel,
        n_voxels: n,
        min: a.min(b),
        max: a.max(b),
        mean,
        sum: mean * n as f64,
        nan_count: 0,
        inf_count: 0,
        nonzero_count: nonzero,
    }
}

/// Fast paths per integer width: min/max/sum in the native type, widened
/// once per chunk so the inner loop stays in registers.
fn integer_stats(dtype: DataType, bytes: &[u8], s: Scaling) -> Stats {
    macro_rules! ints {
        ($t:ty, $n:expr, $wide:ty) => {{
            let mut min = <$t>::MAX;
            let mut max = <$t>::MIN;
            let mut sum: i128 = 0;
            let mut zeros = 0usize;
            let mut count = 0usize;
            // Chunks of 4096 elements keep a narrow accumulator from overflowing.
            for block in bytes.chunks(4096 * $n) {
                let mut part: $wide = 0;
                for c in block.chunks_exact($n) {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    let x = <$t>::from_le_bytes(a);
                    min = min.min(x);
                    max = max.max(x);
                    part += x as $wide;
                    zeros += usize::from(x == 0);
                }
                sum += i128::from(part);
                count += block.len() / $n;
            }
            finish_int("value", count, min as f64, max as f64, sum as f64, zeros, s)
        }};
    }
    match dtype {
        DataType::U8 => ints!(u8, 1, i64),
        DataType::I8 => ints!(i8, 1, i64),
        DataType::U16 => ints!(u16, 2, i64),
        DataType::I16 => ints!(i16, 2, i64),
        DataType::U32 => ints!(u32, 4, i64),
        DataType::I32 => ints!(i32, 4, i64),
        DataType::U64 => ints!(u64, 8, i128),
        DataType::I64 => ints!(i64, 8, i128),
        _ => unreachable!("integer_stats called with {dtype}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::volume::{Geometry, Scaling, Volume};

    #[test]
    fn integer_stats_with_negative_slope() {
        let vals: Vec<i16> = vec![-3, 0, 5, 10];
        let mut v = Volume::from_values(vec![4, 1, 1], &vals, Geometry::identity()).unwrap();
        v.scaling = Scaling {
            slope: -2.0,
            inter: 0.0,
        };
        let s = v.stats()[0];
        assert_eq!((s.min, s.max), (-20.0, 6.0));
        assert_eq!(s.mean, -6.0);
        assert_eq!(s.nonzero_count, 3);
    }

    #[test]
    fn float_stats_skip_nan_and_inf() {
        let vals = vec![1.0f32, f32::NAN, f32::INFINITY, 3.0];
        let v = Volume::from_values(vec![4], &vals, Geometry::identity()).unwrap();
        let s = v.stats()[0];
        assert_eq!((s.min, s.max, s.mean), (1.0, 3.0, 2.0));
        assert_eq!((s.nan_count, s.inf_count), (1, 1));
    }
}
