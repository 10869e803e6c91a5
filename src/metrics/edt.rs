//! Exact Euclidean distance transform with anisotropic spacing
//! (Felzenszwalb & Huttenlocher's lower envelope of parabolas, one pass per
//! axis), and MONAI-style surface extraction.

/// Squared distance (mm²) from every voxel of a `dims` box to the nearest
/// voxel where `feature` is true; `f64::INFINITY` when there is none.
pub fn squared_edt(feature: &[bool], dims: [usize; 3], spacing_mm: [f64; 3]) -> Vec<f64> {
    let mut d: Vec<f64> = feature
        .iter()
        .map(|&f| if f { 0.0 } else { f64::INFINITY })
        .collect();
    let [nx, ny, nz] = dims;
    let strides = [1, nx, nx * ny];
    let lens = [nx, ny, nz];
    let max_len = nx.max(ny).max(nz);
    let mut line = vec![0.0; max_len];
    let mut out = vec![0.0; max_len];
    let mut v = vec![0usize; max_len];
    let mut z = vec![0.0; max_len + 1];
    for axis in 0..3 {
        let n = lens[axis];
        let stride = strides[axis];
        let w2 = spacing_mm[axis] * spacing_mm[axis];
        // Every line along `axis`: iterate over the other two coordinates.
        let (a, b) = match axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        for i in 0..lens[b] {
            for j in 0..lens[a] {
                let start = i * strides[b] + j * strides[a];
                for k in 0..n {
                    line[k] = d[start + k * stride];
                }
                edt_1d(&line[..n], w2, &mut out[..n], &mut v, &mut z);
                for k in 0..n {
                    d[start + k * stride] = out[k];
                }
            }
        }
    }
    d
}

/// 1D lower envelope: `out[q] = min_p (f[p] + w2 (q - p)²)`.
fn edt_1d(f: &[f64], w2: f64, out: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    let mut k = 0usize;
    let mut first = None;
    for (q, &fq) in f.iter().enumerate() {
        if fq.is_finite() {
            first = Some(q);
            break;
        }
    }
    let Some(first) = first else {
        out.fill(f64::INFINITY);
        return;
    };
    v[0] = first;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in first + 1..n {
        if !f[q].is_finite() {
            continue;
        }
        loop {
            let p = v[k];
            let s = ((f[q] + w2 * (q * q) as f64) - (f[p] + w2 * (p * p) as f64))
                / (2.0 * w2 * (q as f64 - p as f64));
            if s <= z[k] && k > 0 {
                k -= 1;
                continue;
            }
            if s <= z[k] {
                // k == 0: q dominates everything so far.
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                break;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
            break;
        }
    }
    let mut k = 0;
    for (q, o) in out.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        let d = q as f64 - p as f64;
        *o = f[p] + w2 * d * d;
    }
}

/// Surface voxels of a mask: voxels of the mask with a 6-neighbour outside
/// it (`mask XOR erosion`, outside the box counting as background — the
/// edges MONAI's `get_mask_edges` finds).
pub fn surface(mask: &[bool], dims: [usize; 3]) -> Vec<bool> {
    let [nx, ny, nz] = dims;
    let at = |i: isize, j: isize, k: isize| -> bool {
        if i < 0 || j < 0 || k < 0 || i >= nx as isize || j >= ny as isize || k >= nz as isize {
            return false;
        }
        mask[i as usize + nx * (j as usize + ny * k as usize)]
    };
    let mut out = vec![false; mask.len()];
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let idx = i + nx * (j + ny * k);
                if !mask[idx] {
                    continue;
                }
                let (i, j, k) = (i as isize, j as isize, k as isize);
                out[idx] = !(at(i - 1, j, k)
                    && at(i + 1, j, k)
                    && at(i, j - 1, k)
                    && at(i, j + 1, k)
                    && at(i, j, k - 1)
                    && at(i, j, k + 1));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // brute-force references index by voxel
mod tests {
    use super::*;

    #[test]
    fn edt_matches_brute_force_with_anisotropic_spacing() {
        let dims = [7, 5, 4];
        let sp = [0.7, 1.3, 2.5];
        let n = dims[0] * dims[1] * dims[2];
        let feature: Vec<bool> = (0..n).map(|i| i % 13 == 0 || i == 57).collect();
        let d = squared_edt(&feature, dims, sp);
        for q in 0..n {
            let (qi, qj, qk) = (q % 7, (q / 7) % 5, q / 35);
            let mut best = f64::INFINITY;
            for p in (0..n).filter(|&p| feature[p]) {
                let (pi, pj, pk) = (p % 7, (p / 7) % 5, p / 35);
                let dd = ((qi as f64 - pi as f64) * sp[0]).powi(2)
                    + ((qj as f64 - pj as f64) * sp[1]).powi(2)
                    + ((qk as f64 - pk as f64) * sp[2]).powi(2);
                best = best.min(dd);
            }
            assert!((d[q] - best).abs() < 1e-9, "voxel {q}: {} vs {best}", d[q]);
        }
        assert!(
            squared_edt(&[false; 8], [2, 2, 2], [1.0; 3])
                .iter()
                .all(|x| x.is_infinite())
        );
    }

    #[test]
    fn surface_of_a_cube_is_its_shell() {
        let dims = [5, 5, 5];
        let mask: Vec<bool> = (0..125)
            .map(|i| {
                let (x, y, z) = (i % 5, (i / 5) % 5, i / 25);
                (1..4).contains(&x) && (1..4).contains(&y) && (1..4).contains(&z)
            })
            .collect();
        let s = surface(&mask, dims);
        assert_eq!(s.iter().filter(|&&b| b).count(), 26); // 27 voxels minus the centre
        assert!(!s[2 + 5 * (2 + 5 * 2)]);
    }
}
