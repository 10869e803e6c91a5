//! Slice-view geometry as pure functions, shared by the GPU renderer, the
//! CPU reference renderer and the input handling of the app.
//!
//! A slice view shows a plane of world space (RAS+ mm) through the crosshair.
//! Its screen axes are anatomical directions, so the same anatomy looks the
//! same whatever the file's storage order, snapped to the image's own axes
//! when it is oblique ([`view_axes`]): the view then shows one acquired
//! slice, which is what the brush paints. Resampling is in world space, so
//! oblique or sheared data are shown correctly either way. Screen
//! coordinates here are normalised: x and y in [-1, 1], x to the right, y
//! up.

// Matrix code reads best with explicit row/column indices.
#![allow(clippy::needless_range_loop)]

use crate::volume::{Geometry, mat4_mul};

mod oblique;
mod orbit;
#[cfg(test)]
mod tests;

pub use oblique::{
    across_axis, in_view_plane, slice_step_mm, snap_to_voxel, step_along_normal, view_axes,
    voxel_axes,
};
pub use orbit::{Orbit, orbit_world_from_clip};

/// Which anatomical plane a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SliceAxis {
    /// Horizontal plane (normal superior).
    Axial,
    /// Frontal plane (normal anterior).
    Coronal,
    /// Side plane (normal right).
    Sagittal,
}

impl SliceAxis {
    /// All three, in the usual layout order.
    pub const ALL: [SliceAxis; 3] = [SliceAxis::Axial, SliceAxis::Coronal, SliceAxis::Sagittal];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            SliceAxis::Axial => "Axial",
            SliceAxis::Coronal => "Coronal",
            SliceAxis::Sagittal => "Sagittal",
        }
    }

    /// World index (0 x, 1 y, 2 z) of the plane normal.
    pub fn normal_axis(self) -> usize {
        match self {
            SliceAxis::Axial => 2,
            SliceAxis::Coronal => 1,
            SliceAxis::Sagittal => 0,
        }
    }
}

/// Left-right display convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Convention {
    /// Patient's right on the screen's left (radiology).
    #[default]
    Radiological,
    /// Patient's right on the screen's right (neurology).
    Neurological,
}

/// A view's in-plane screen directions in world space: (right, up).
pub fn screen_axes(axis: SliceAxis, convention: Convention) -> ([f64; 3], [f64; 3]) {
    let lr = match convention {
        Convention::Radiological => -1.0,
        Convention::Neurological => 1.0,
    };
    match axis {
        SliceAxis::Axial => ([lr, 0.0, 0.0], [0.0, 1.0, 0.0]),
        SliceAxis::Coronal => ([lr, 0.0, 0.0], [0.0, 0.0, 1.0]),
        // Anterior on the left, as ITK-SNAP and most viewers show sagittal slices.
        SliceAxis::Sagittal => ([0.0, -1.0, 0.0], [0.0, 0.0, 1.0]),
    }
}

/// Orientation letters on the edges of a view whose screen-right and
/// screen-up are these world directions: each edge names the anatomical
/// direction nearest to it (as ITK-SNAP labels an oblique image's views).
pub fn letters_of(right: [f64; 3], up: [f64; 3]) -> [char; 4] {
    let letter = |d: [f64; 3]| {
        let (i, v) = d.iter().enumerate().fold((0, 0.0), |best, (i, &v)| {
            if v.abs() > f64::abs(best.1) {
                (i, v)
            } else {
                best
            }
        });
        match (i, v > 0.0) {
            (0, true) => 'R',
            (0, false) => 'L',
            (1, true) => 'A',
            (1, false) => 'P',
            (_, true) => 'S',
            (_, false) => 'I',
        }
    };
    let neg = |d: [f64; 3]| d.map(|x| -x);
    [
        letter(neg(right)),
        letter(right),
        letter(up),
        letter(neg(up)),
    ]
}

/// The plane a slice view shows and how it maps to the screen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicePlane {
    /// World point at the centre of the view (mm).
    pub center_mm: [f64; 3],
    /// World direction of screen-right (unit).
    pub right: [f64; 3],
    /// World direction of screen-up (unit).
    pub up: [f64; 3],
    /// Half the view's width and height in mm.
    pub half_extent_mm: [f64; 2],
}

impl SlicePlane {
    /// World position of a normalised screen point.
    pub fn world_from_screen(&self, s: [f64; 2]) -> [f64; 3] {
        std::array::from_fn(|i| {
            self.center_mm[i]
                + s[0] * self.half_extent_mm[0] * self.right[i]
                + s[1] * self.half_extent_mm[1] * self.up[i]
        })
    }

    /// Normalised screen position of a world point (its projection on the plane).
    pub fn screen_from_world(&self, w: [f64; 3]) -> [f64; 2] {
        let d: [f64; 3] = std::array::from_fn(|i| w[i] - self.center_mm[i]);
        let dot = |a: [f64; 3]| a[0] * d[0] + a[1] * d[1] + a[2] * d[2];
        [
            dot(self.right) / self.half_extent_mm[0],
            dot(self.up) / self.half_extent_mm[1],
        ]
    }

    /// Matrix taking (screen x, screen y, 0, 1) to world mm.
    pub fn world_from_screen_matrix(&self) -> [[f64; 4]; 4] {
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            m[r][0] = self.right[r] * self.half_extent_mm[0];
            m[r][1] = self.up[r] * self.half_extent_mm[1];
            m[r][3] = self.center_mm[r];
        }
        m[3][3] = 1.0;
        m
    }
}

/// Matrix from world mm to normalised texture coordinates of a grid
/// (`tex = (voxel + 0.5) / dims`, the GPU convention).
pub fn tex_from_world(geometry: &Geometry, dims: [usize; 3]) -> Option<[[f64; 4]; 4]> {
    let vfw = geometry.voxel_from_world()?;
    let mut scale = [[0.0; 4]; 4];
    for a in 0..3 {
        scale[a][a] = 1.0 / dims[a] as f64;
        scale[a][3] = 0.5 / dims[a] as f64;
    }
    scale[3][3] = 1.0;
    Some(mat4_mul(&scale, &vfw))
}

/// Matrix from normalised screen coordinates to texture coordinates.
pub fn tex_from_screen(
    plane: &SlicePlane,
    geometry: &Geometry,
    dims: [usize; 3],
) -> Option<[[f64; 4]; 4]> {
    Some(mat4_mul(
        &tex_from_world(geometry, dims)?,
        &plane.world_from_screen_matrix(),
    ))
}

/// The view that fits the whole volume: its plane through the crosshair
/// along [`view_axes`], centred in-plane on the centroid of the voxel
/// corners, spanning their extent along screen right and up, with the
/// aspect ratio of the screen rectangle.
pub fn fit_plane(
    axis: SliceAxis,
    convention: Convention,
    geometry: &Geometry,
    dims: [usize; 3],
    crosshair: [f64; 3],
    aspect: f64,
) -> SlicePlane {
    let (right, up, normal) = view_axes(axis, convention, geometry);
    let corners = corners(geometry, dims);
    let extent = |d: [f64; 3]| {
        let (lo, hi) = span(&corners, d);
        (hi - lo) / 2.0
    };
    let (ew, eh) = (extent(right).max(1e-3), extent(up).max(1e-3));
    let aspect = if aspect.is_finite() && aspect > 0.0 {
        aspect
    } else {
        1.0
    };
    let (w, h) = if ew / eh > aspect {
        (ew, ew / aspect)
    } else {
        (eh * aspect, eh)
    };
    // Centre in-plane on the volume, through-plane on the crosshair.
    let mid: [f64; 3] = std::array::from_fn(|i| corners.iter().map(|c| c[i]).sum::<f64>() / 8.0);
    let through = dot(normal, crosshair) - dot(normal, mid);
    let center = std::array::from_fn(|i| mid[i] + through * normal[i]);
    SlicePlane {
        center_mm: center,
        right,
        up,
        half_extent_mm: [w * 1.05, h * 1.05],
    }
}

/// World positions of a grid's eight outer voxel corners.
fn corners(geometry: &Geometry, dims: [usize; 3]) -> [[f64; 3]; 8] {
    std::array::from_fn(|corner| {
        let ijk: [f64; 3] = std::array::from_fn(|a| {
            if corner >> a & 1 == 1 {
                dims[a] as f64 - 0.5
            } else {
                -0.5
            }
        });
        geometry.world_from_index(ijk)
    })
}

/// The range of `points` along direction `d`.
fn span(points: &[[f64; 3]], d: [f64; 3]) -> (f64, f64) {
    points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            let t = dot(*p, d);
            (lo.min(t), hi.max(t))
        })
}

/// World-space bounding box of a grid's voxel corners.
pub fn world_bounds(geometry: &Geometry, dims: [usize; 3]) -> ([f64; 3], [f64; 3]) {
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for w in corners(geometry, dims) {
        for i in 0..3 {
            lo[i] = lo[i].min(w[i]);
            hi[i] = hi[i].max(w[i]);
        }
    }
    (lo, hi)
}

/// Index of the voxel containing a world point, if inside the grid.
pub fn voxel_at(geometry: &Geometry, dims: [usize; 3], w: [f64; 3]) -> Option<[usize; 3]> {
    let m = geometry.voxel_from_world()?;
    let mut out = [0usize; 3];
    for r in 0..3 {
        let x = m[r][0] * w[0] + m[r][1] * w[1] + m[r][2] * w[2] + m[r][3];
        let i = x.round();
        if !(0.0..dims[r] as f64).contains(&i) {
            return None;
        }
        out[r] = i as usize;
    }
    Some(out)
}

/// Window (level ± width/2) mapping of a value to [0, 1].
#[inline]
pub fn apply_window(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else if v >= hi {
        1.0
    } else {
        0.0
    }
}

/// Inverse of a general 4×4 matrix (Gauss–Jordan with partial pivoting);
/// `None` if singular.
pub fn invert4(m: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let mut a = *m;
    let mut inv = [[0.0; 4]; 4];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for c in 0..4 {
            a[col][c] /= d;
            inv[col][c] /= d;
        }
        for r in 0..4 {
            if r != col {
                let f = a[r][col];
                for c in 0..4 {
                    a[r][c] -= f * a[col][c];
                    inv[r][c] -= f * inv[col][c];
                }
            }
        }
    }
    Some(inv)
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalize(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    if n > 0.0 {
        a.map(|x| x / n)
    } else {
        [0.0, 0.0, 1.0]
    }
}
