//! The voxels a round brush covers between two pointer samples.
//!
//! The brush is defined in world millimetres: a voxel is inside when its
//! centre lies within `radius_mm` of the segment between the two samples
//! (a capsule; a ball or a disc when both samples coincide). Working in mm
//! keeps the brush round on anisotropic voxels and on oblique grids, where
//! a radius in voxels would paint ellipses. A 2D brush paints only the
//! voxel slice of the view ([`crate::viewmath::across_axis`], at the
//! slice under the pointer), as ITK-SNAP's and Slicer's do.

use crate::volume::Geometry;

/// 2D (in one voxel slice) or 3D (a ball).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrushShape {
    /// Only voxels with index `index` along voxel axis `axis`.
    Disc {
        /// The voxel axis across the view (0, 1 or 2).
        axis: usize,
        /// The slice along it.
        index: usize,
    },
    /// Every voxel within the radius.
    Ball,
}

/// A round brush.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brush {
    /// Radius in mm.
    pub radius_mm: f64,
    /// Disc or ball.
    pub shape: BrushShape,
}

/// Continuous voxel coordinates of a world point (`None` for a singular
/// geometry).
pub fn voxel_of(geometry: &Geometry, world: [f64; 3]) -> Option<[f64; 3]> {
    geometry.index_from_world(world)
}

fn dist2_to_segment(p: [f64; 3], a: [f64; 3], b: [f64; 3]) -> f64 {
    let ab = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let ap = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
    let len2 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
    let t = if len2 > 0.0 {
        ((ap[0] * ab[0] + ap[1] * ab[1] + ap[2] * ab[2]) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let d = [ap[0] - t * ab[0], ap[1] - t * ab[1], ap[2] - t * ab[2]];
    d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
}

impl Brush {
    /// Flat indices (x fastest, one 3D frame) of the voxels the brush
    /// covers moving from world point `a` to `b` on a grid of `dims`. Only
    /// the capsule's bounding box is visited, so the cost grows with the
    /// brush, not the volume.
    pub fn covered(
        &self,
        geometry: &Geometry,
        dims: [usize; 3],
        a: [f64; 3],
        b: [f64; 3],
    ) -> Vec<usize> {
        let (Some(va), Some(vb)) = (voxel_of(geometry, a), voxel_of(geometry, b)) else {
            return Vec::new();
        };
        let spacing = geometry.spacing_mm();
        // Index-space box: the two samples ± the radius in voxels per axis.
        let mut lo = [0usize; 3];
        let mut hi = [0usize; 3];
        for k in 0..3 {
            if dims[k] == 0 {
                return Vec::new();
            }
            let r = self.radius_mm / spacing[k].max(1e-9) + 1.0;
            let min = va[k].min(vb[k]) - r;
            let max = va[k].max(vb[k]) + r;
            if max < 0.0 || min > (dims[k] - 1) as f64 {
                return Vec::new();
            }
            lo[k] = min.max(0.0).floor() as usize;
            hi[k] = (max.ceil() as usize).min(dims[k] - 1);
        }
        if let BrushShape::Disc { axis, index } = self.shape {
            if axis > 2 || index >= dims[axis] {
                return Vec::new();
            }
            lo[axis] = index;
            hi[axis] = index;
        }
        let r2 = self.radius_mm * self.radius_mm;
        let (va, vb) = match self.shape {
            BrushShape::Disc { axis, index } => {
                let (mut pa, mut pb) = (va, vb);
                pa[axis] = index as f64;
                pb[axis] = index as f64;
                (pa, pb)
            }
            BrushShape::Ball => (va, vb),
        };
        let (a, b) = match self.shape {
            // A disc measures distance within its slice: project the
            // samples onto it so a pointer slightly off the slice centre
            // still paints the full radius.
            BrushShape::Disc { .. } => {
                (geometry.world_from_index(va), geometry.world_from_index(vb))
            }
            BrushShape::Ball => (a, b),
        };
        let mut out = Vec::new();
        for k in lo[2]..=hi[2] {
            for j in lo[1]..=hi[1] {
                for i in lo[0]..=hi[0] {
                    let w = geometry.world_from_index([i as f64, j as f64, k as f64]);
                    if dist2_to_segment(w, a, b) <= r2 {
                        out.push(i + dims[0] * (j + dims[1] * k));
                    }
                }
            }
        }
        // The voxels the pointer passes through are always painted, so a
        // brush thinner than a voxel still draws an unbroken line under
        // the pointer (ITK-SNAP's smallest brush is one voxel).
        let steps = (0..3)
            .map(|k| (vb[k] - va[k]).abs())
            .fold(0.0, f64::max)
            .mul_add(2.0, 1.0)
            .ceil()
            .min(1e6) as usize;
        for s in 0..=steps {
            let t = s as f64 / steps as f64;
            let v: [f64; 3] = std::array::from_fn(|k| (va[k] + t * (vb[k] - va[k])).round());
            if (0..3).all(|k| v[k] >= 0.0 && v[k] < dims[k] as f64) {
                out.push(v[0] as usize + dims[0] * (v[1] as usize + dims[1] * v[2] as usize));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(spacing: [f64; 3]) -> Geometry {
        let mut m = crate::volume::Geometry::identity().world_from_voxel;
        for (c, s) in spacing.iter().enumerate() {
            m[c][c] = *s;
        }
        Geometry::from_affine(m)
    }

    #[test]
    fn a_5mm_disc_is_round_in_mm_on_anisotropic_voxels() {
        // 0.7 × 0.7 × 3 mm voxels: the disc spans ±7 voxels in x and y.
        let g = grid([0.7, 0.7, 3.0]);
        let dims = [64, 64, 10];
        let c = g.world_from_index([32.0, 32.0, 5.0]);
        let brush = Brush {
            radius_mm: 5.0,
            shape: BrushShape::Disc { axis: 2, index: 5 },
        };
        let v = brush.covered(&g, dims, c, c);
        let area = v.len() as f64 * 0.7 * 0.7;
        let disc = std::f64::consts::PI * 25.0;
        assert!((area - disc).abs() / disc < 0.08, "{area} mm² vs {disc}");
        assert!(v.iter().all(|&f| f / (64 * 64) == 5), "one slice only");
        let xs: Vec<usize> = v.iter().map(|f| f % 64).collect();
        assert_eq!(
            (xs.iter().min(), xs.iter().max()),
            (Some(&25), Some(&39)),
            "±5 mm = ±7 voxels of 0.7 mm"
        );
    }

    #[test]
    fn a_fast_stroke_is_a_capsule_without_gaps() {
        let g = grid([1.0, 1.0, 1.0]);
        let dims = [100, 20, 3];
        let brush = Brush {
            radius_mm: 2.0,
            shape: BrushShape::Disc { axis: 2, index: 1 },
        };
        // Two samples 60 mm apart (one frame of a fast drag).
        let v = brush.covered(&g, dims, [10.0, 10.0, 1.0], [70.0, 10.0, 1.0]);
        for x in 10..=70 {
            assert!(v.contains(&(x + 100 * (10 + 20))), "gap at x = {x}");
        }
        // A ball reaches the neighbouring slices; a disc does not.
        let ball = Brush {
            radius_mm: 2.0,
            shape: BrushShape::Ball,
        };
        let b = ball.covered(&g, dims, [10.0, 10.0, 1.0], [10.0, 10.0, 1.0]);
        assert!(b.iter().any(|&f| f / 2000 == 0) && b.iter().any(|&f| f / 2000 == 2));
        // Outside the grid: nothing, no panic.
        assert!(ball.covered(&g, dims, [-50.0; 3], [-40.0; 3]).is_empty());
    }

    #[test]
    fn a_brush_thinner_than_a_voxel_paints_an_unbroken_line_under_the_pointer() {
        // 0.2 mm on 1 mm voxels: no voxel centre lies within the radius of
        // most points of the path, yet every voxel it crosses is painted.
        let g = grid([1.0, 1.0, 1.0]);
        let dims = [40, 20, 3];
        let brush = Brush {
            radius_mm: 0.2,
            shape: BrushShape::Disc { axis: 2, index: 1 },
        };
        let at = |x: usize, y: usize| x + 40 * (y + 20);
        let dot = brush.covered(&g, dims, [10.4, 10.4, 1.3], [10.4, 10.4, 1.3]);
        assert_eq!(dot, vec![at(10, 10)], "the voxel under a click");
        let v = brush.covered(&g, dims, [10.4, 10.4, 1.0], [30.4, 15.4, 1.0]);
        assert!(v.contains(&at(10, 10)) && v.contains(&at(30, 15)));
        // Unbroken: each x from 10 to 30 has a painted voxel, and each
        // step to the next column moves at most one row.
        let rows: Vec<usize> = (10..=30)
            .map(|x| {
                (0..20)
                    .find(|&y| v.contains(&at(x, y)))
                    .expect("a voxel in every column")
            })
            .collect();
        assert!(
            rows.windows(2).all(|w| w[1].abs_diff(w[0]) <= 1),
            "{rows:?}"
        );
    }
}
