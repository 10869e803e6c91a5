//! VoCo's self-supervision targets (seed 000): the in-plane area of a
//! volume is tiled by non-overlapping base crops of `crop_size`; a random
//! crop of the same size lands so that it intersects a 2×2 block of them,
//! and the share of its area inside each of the four is the target the
//! encoder predicts from feature similarity. Pure geometry, exact, no
//! tensors.

use super::augment::Rng;

/// One VoCo draw: a random crop and its four neighbouring base crops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VocoDraw {
    /// Voxel origin of the random crop `[x, y, z]`.
    pub crop: [usize; 3],
    /// Voxel origins of the four base crops it intersects (same z).
    pub bases: [[usize; 3]; 4],
    /// Share of the crop's in-plane area inside each base crop; sums to 1.
    pub ratios: [f64; 4],
}

/// Overlap shares of a crop at in-plane `origin` with the 2×2 block of base
/// crops of the tiling whose top-left base contains the origin:
/// (base grid index `[i, j]`, area share), in the order (i, j), (i+1, j),
/// (i, j+1), (i+1, j+1).
pub fn neighbour_overlaps(origin: [usize; 2], crop: [usize; 2]) -> [([usize; 2], f64); 4] {
    let [cx, cy] = crop.map(|c| c.max(1));
    let (i, j) = (origin[0] / cx, origin[1] / cy);
    // Length of the crop inside the first base along each axis.
    let ax = (cx - origin[0] % cx) as f64 / cx as f64;
    let ay = (cy - origin[1] % cy) as f64 / cy as f64;
    [
        ([i, j], ax * ay),
        ([i + 1, j], (1.0 - ax) * ay),
        ([i, j + 1], ax * (1.0 - ay)),
        ([i + 1, j + 1], (1.0 - ax) * (1.0 - ay)),
    ]
}

/// Draw a crop of `crop` voxels in a volume of `dims` voxels. The volume
/// must hold at least 2×2 base crops in plane and one crop in depth.
pub fn draw(rng: &mut Rng, dims: [usize; 3], crop: [usize; 3]) -> Option<VocoDraw> {
    let tiles = [dims[0] / crop[0].max(1), dims[1] / crop[1].max(1)];
    if tiles[0] < 2 || tiles[1] < 2 || dims[2] < crop[2] {
        return None;
    }
    // Origins anywhere such that the 2×2 block stays inside the tiling.
    let x = rng.below((tiles[0] - 1) * crop[0]);
    let y = rng.below((tiles[1] - 1) * crop[1]);
    let z = rng.below(dims[2] - crop[2] + 1);
    let o = neighbour_overlaps([x, y], [crop[0], crop[1]]);
    Some(VocoDraw {
        crop: [x, y, z],
        bases: o.map(|([i, j], _)| [i * crop[0], j * crop[1], z]),
        ratios: o.map(|(_, r)| r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_checked_overlaps() {
        // On a base corner: entirely inside one base.
        let o = neighbour_overlaps([64, 128], [64, 64]);
        assert_eq!(o[0], ([1, 2], 1.0));
        assert_eq!((o[1].1, o[2].1, o[3].1), (0.0, 0.0, 0.0));
        // Half-way both ways: a quarter each.
        let o = neighbour_overlaps([32, 32], [64, 64]);
        assert!(o.iter().all(|(_, r)| *r == 0.25));
        // 16 px into x, 48 px into y of a 64×64 tiling:
        // x shares 48/64 and 16/64, y shares 16/64 and 48/64.
        let o = neighbour_overlaps([16, 48], [64, 64]);
        let want = [0.75 * 0.25, 0.25 * 0.25, 0.75 * 0.75, 0.25 * 0.75];
        for (got, w) in o.iter().zip(want) {
            assert!((got.1 - w).abs() < 1e-12);
        }
        assert_eq!(o.map(|x| x.0), [[0, 0], [1, 0], [0, 1], [1, 1]]);
        // Anisotropic crops.
        let o = neighbour_overlaps([10, 5], [40, 20]);
        assert!((o[0].1 - 0.75 * 0.75).abs() < 1e-12);
    }

    #[test]
    fn draws_stay_inside_and_shares_sum_to_one() {
        let mut rng = Rng::new(9);
        for _ in 0..500 {
            let d = draw(&mut rng, [256, 256, 128], [64, 64, 32]).unwrap();
            assert!((d.ratios.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(d.crop[0] + 64 <= 256 && d.crop[1] + 64 <= 256 && d.crop[2] + 32 <= 128);
            for b in d.bases {
                assert!(b[0] + 64 <= 256 && b[1] + 64 <= 256);
                assert_eq!((b[0] % 64, b[1] % 64, b[2]), (0, 0, d.crop[2]));
            }
            // The crop's top-left lies in the first base.
            assert!(d.bases[0][0] <= d.crop[0] && d.crop[0] < d.bases[0][0] + 64);
        }
        assert!(draw(&mut rng, [100, 256, 128], [64, 64, 32]).is_none());
    }
}
