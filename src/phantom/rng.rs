//! Deterministic randomness for phantoms: a SplitMix64 stream for case
//! parameters and a counter-based hash for per-voxel noise (so noise does
//! not depend on evaluation order or thread count). Our own few lines rather
//! than a crate, so a dependency update can never change a phantom.

/// SplitMix64 finaliser: a good 64-bit mix of one word.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded stream of case parameters.
pub(crate) struct Rng(u64);

impl Rng {
    /// Stream for (seed, case, purpose).
    pub(crate) fn new(seed: u64, case: usize, purpose: u64) -> Rng {
        Rng(mix(seed ^ mix(case as u64 ^ mix(purpose))))
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        (mix(self.0) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub(crate) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// Standard normal noise for voxel `index` of stream `key` (Box–Muller on
/// two hashed uniforms).
#[inline]
pub(crate) fn gauss(key: u64, index: usize) -> f64 {
    let h = mix(key ^ (index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let u1 = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (mix(h) >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<f64> = (0..4).map(|_| Rng::new(1, 2, 3).unit()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(1, 2, 3).unit(), Rng::new(1, 3, 3).unit());
        let n = 20_000;
        let mean = (0..n).map(|i| gauss(7, i)).sum::<f64>() / n as f64;
        let var = (0..n).map(|i| gauss(7, i).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
