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

/// Fast paths per integer width: 16 independent lanes of min/max/sum/zero
/// count in the native type (the shape LLVM turns into SIMD), reduced per
/// block so narrow accumulators never overflow, then a scalar tail.
fn integer_stats(dtype: DataType, bytes: &[u8], s: Scaling) -> Stats {
    const L: usize = 16;
    macro_rules! ints {
        ($t:ty, $n:expr, $wide:ty) => {{
            let read = |c: &[u8]| {
                let mut a = [0u8; $n];
                a.copy_from_slice(c);
                <$t>::from_le_bytes(a)
            };
            let count = bytes.len() / $n;
            let body = count / L * L;
            let mut mn = [<$t>::MAX; L];
            let mut mx = [<$t>::MIN; L];
            let mut sum: i128 = 0;
            let mut zeros = 0usize;
            for block in bytes[..body * $n].chunks(4096 * L * $n) {
                let mut part = [0 as $wide; L];
                let mut z = [0u32; L];
                for group in block.chunks_exact(L * $n) {
                    for l in 0..L {
                        let x = read(&group[l * $n..(l + 1) * $n]);
                        mn[l] = mn[l].min(x);
                        mx[l] = mx[l].max(x);
                        part[l] += x as $wide;
                        z[l] += u32::from(x == 0);
                    }
                }
                sum += part.iter().map(|&p| i128::from(p)).sum::<i128>();
                zeros += z.iter().map(|&c| c as usize).sum::<usize>();
            }
            let mut min = mn.iter().copied().min().unwrap_or(<$t>::MAX);
            let mut max = mx.iter().copied().max().unwrap_or(<$t>::MIN);
            for c in bytes[body * $n..count * $n].chunks_exact($n) {
                let x = read(c);
                min = min.min(x);
                max = max.max(x);
                sum += x as i128;
                zeros += usize::from(x == 0);
            }
            finish_int("value", count, min as f64, max as f64, sum as f64, zeros, s)
        }};
    }
    match dtype {
        DataType::U8 => ints!(u8, 1, i32),
        DataType::I8 => ints!(i8, 1, i32),
        DataType::U16 => ints!(u16, 2, i64),
        DataType::I16 => ints!(i16, 2, i32),
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
    fn lanes_and_tail_agree_with_a_plain_loop() {
        // 16-lane body plus a 7-element tail, extreme values in both.
        let vals: Vec<i16> = (0..4096 * 16 + 16 * 3 + 7)
            .map(|i| ((i * 7919) % 65536) as u16 as i16)
            .collect();
        let v = Volume::from_values(vec![vals.len()], &vals, Geometry::identity()).unwrap();
        let s = v.stats()[0];
        let sum: i64 = vals.iter().map(|&x| i64::from(x)).sum();
        assert_eq!(s.min, f64::from(*vals.iter().min().unwrap()));
        assert_eq!(s.max, f64::from(*vals.iter().max().unwrap()));
        assert_eq!(s.mean, sum as f64 / vals.len() as f64);
        assert_eq!(s.nonzero_count, vals.iter().filter(|&&x| x != 0).count());
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
