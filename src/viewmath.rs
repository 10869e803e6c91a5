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

/// A slice view's world directions for a grid: (screen right, screen up,
/// plane normal). The anatomical directions of [`screen_axes`] are snapped
/// to the grid's own axes, so a view of an oblique grid (a cardiac
/// short-axis stack, a tilted MR) shows exactly one of its voxel slices,
/// as ITK-SNAP shows oblique images and Slicer after "rotate to volume
/// plane": what the brush paints (a voxel slice) is what the view shows,
/// and the slices are seen as acquired, not cut across. For a grid whose
/// axes are the world's (in any order or sign) these are exactly the
/// anatomical directions. Sheared axes (a gantry tilt) keep their slice
/// plane; screen-up is made perpendicular to screen-right within it. The
/// normal points along the anatomical normal (superior, anterior, right).
pub fn view_axes(
    axis: SliceAxis,
    convention: Convention,
    geometry: &Geometry,
) -> ([f64; 3], [f64; 3], [f64; 3]) {
    let (r0, u0) = screen_axes(axis, convention);
    let mut n0 = [0.0; 3];
    n0[axis.normal_axis()] = 1.0;
    let Some(columns) = voxel_axes(geometry) else {
        return (r0, u0, n0);
    };
    let m = &geometry.world_from_voxel;
    let col = |w: [f64; 3]| {
        let world_axis = (0..3).find(|&i| w[i] != 0.0).unwrap_or(0);
        let c = columns[world_axis];
        normalize([m[0][c], m[1][c], m[2][c]])
    };
    let signed = |d: [f64; 3], target: [f64; 3]| {
        if dot(d, target) < 0.0 {
            d.map(|x| -x)
        } else {
            d
        }
    };
    let right = signed(col(r0), r0);
    let up = col(u0);
    let along = dot(up, right);
    // Perpendicular to screen-right within the slice (a sheared grid), and
    // only then turned to point up, so shear cannot flip the view.
    let up = signed(
        normalize(std::array::from_fn(|i| up[i] - along * right[i])),
        u0,
    );
    let normal = signed(normalize(cross(right, up)), n0);
    (right, up, normal)
}

/// Which voxel axis (column of `world_from_voxel`) each world axis (x, y,
/// z) follows: one permutation for the whole grid, the one whose axes are
/// closest to the world's (largest sum of |cos|), so the three views always
/// show three different voxel slices; picking per view, two views of a
/// strongly oblique grid could pick the same axis. `None` for a singular
/// geometry.
pub fn voxel_axes(geometry: &Geometry) -> Option<[usize; 3]> {
    geometry.voxel_from_world()?;
    let m = &geometry.world_from_voxel;
    let cos = |w: usize, c: usize| {
        let len = (0..3).map(|r| m[r][c] * m[r][c]).sum::<f64>().sqrt();
        if len > 0.0 { m[w][c].abs() / len } else { 0.0 }
    };
    const PERMUTATIONS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    PERMUTATIONS.into_iter().max_by(|a, b| {
        let score = |p: &[usize; 3]| (0..3).map(|w| cos(w, p[w])).sum::<f64>();
        score(a).total_cmp(&score(b))
    })
}

/// The voxel axis across a slice view (its slices are what the view and
/// the brush show), from [`voxel_axes`]; 2 for a singular geometry.
pub fn across_axis(geometry: &Geometry, axis: SliceAxis) -> usize {
    voxel_axes(geometry).map_or(2, |p| p[axis.normal_axis()])
}

/// The crosshair for a click at `world` in a view: on the voxel centre
/// nearest to it within the grid (ITK-SNAP's cursor is always on one), so
/// every view then shows one whole slice.
pub fn snap_to_voxel(geometry: &Geometry, dims: [usize; 3], world: [f64; 3]) -> [f64; 3] {
    let Some(inv) = geometry.voxel_from_world() else {
        return world;
    };
    let v: [f64; 3] = std::array::from_fn(|r| {
        let x = (0..3).map(|c| inv[r][c] * world[c]).sum::<f64>() + inv[r][3];
        x.round().clamp(0.0, dims[r].max(1) as f64 - 1.0)
    });
    geometry.world_from_index(v)
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

/// The crosshair moved `steps` voxel slices along a view's normal, onto
/// a slice centre (so the view shows one whole slice, never the boundary
/// between two) and no further than the first or last slice.
pub fn step_along_normal(
    axis: SliceAxis,
    geometry: &Geometry,
    dims: [usize; 3],
    crosshair: [f64; 3],
    steps: i32,
) -> [f64; 3] {
    let (_, _, normal) = view_axes(axis, Convention::Radiological, geometry);
    let Some(inv) = geometry.voxel_from_world() else {
        return crosshair;
    };
    let m = &geometry.world_from_voxel;
    let col = |c: usize| [m[0][c], m[1][c], m[2][c]];
    let across = (0..3)
        .max_by(|&a, &b| {
            dot(col(a), normal)
                .abs()
                .total_cmp(&dot(col(b), normal).abs())
        })
        .unwrap_or(2);
    let now: f64 = (0..3).map(|c| inv[across][c] * crosshair[c]).sum::<f64>() + inv[across][3];
    let last = dims[across].max(1) as f64 - 1.0;
    let to = (now.round() + f64::from(steps)).clamp(0.0, last);
    let by = (to - now) * dot(col(across), normal);
    std::array::from_fn(|i| crosshair[i] + by * normal[i])
}

/// A world point moved onto the plane through `crosshair` with a view's
/// normal: where a click in that view puts the crosshair, its depth kept.
pub fn in_view_plane(
    axis: SliceAxis,
    geometry: &Geometry,
    crosshair: [f64; 3],
    world: [f64; 3],
) -> [f64; 3] {
    let (_, _, normal) = view_axes(axis, Convention::Radiological, geometry);
    let off = dot(normal, crosshair) - dot(normal, world);
    std::array::from_fn(|i| world[i] + off * normal[i])
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

/// The distance between a view's voxel slices along its normal.
pub fn slice_step_mm(geometry: &Geometry, axis: SliceAxis) -> f64 {
    let (_, _, normal) = view_axes(axis, Convention::Radiological, geometry);
    let m = &geometry.world_from_voxel;
    // The voxel axis across the view moves the plane by its component
    // along the normal (its length, unless sheared).
    let c = across_axis(geometry, axis);
    dot([m[0][c], m[1][c], m[2][c]], normal).abs().max(1e-3)
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

/// An orbit camera around a volume.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orbit {
    /// Rotation about the superior axis, radians (0: looking from anterior).
    pub yaw: f64,
    /// Elevation, radians.
    pub pitch: f64,
    /// Distance as a multiple of the fitting distance (1 = volume fills the view).
    pub zoom: f64,
}

impl Default for Orbit {
    fn default() -> Orbit {
        Orbit {
            yaw: 0.0,
            pitch: 0.3,
            zoom: 1.0,
        }
    }
}

/// Clip space → world matrix of an orbit camera looking at the centre of a
/// box of the given bounds (perspective, 30° vertical field of view; clip z
/// in [0, 1] as wgpu).
pub fn orbit_world_from_clip(
    orbit: &Orbit,
    bounds: ([f64; 3], [f64; 3]),
    aspect: f64,
) -> Option<[[f64; 4]; 4]> {
    let (lo, hi) = bounds;
    let center: [f64; 3] = std::array::from_fn(|i| (lo[i] + hi[i]) / 2.0);
    let radius = (0..3).map(|i| (hi[i] - lo[i]).powi(2)).sum::<f64>().sqrt() / 2.0;
    let fov = 30f64.to_radians();
    let dist = radius / (fov / 2.0).sin() * orbit.zoom.max(0.05);
    let (cp, sp) = (orbit.pitch.cos(), orbit.pitch.sin());
    let (cy, sy) = (orbit.yaw.cos(), orbit.yaw.sin());
    // Yaw 0 looks from the patient's front (anterior, +y) towards the back.
    let eye = [
        center[0] + dist * cp * sy,
        center[1] + dist * cp * cy,
        center[2] + dist * sp,
    ];
    let f = normalize([center[0] - eye[0], center[1] - eye[1], center[2] - eye[2]]);
    let up0 = [0.0, 0.0, 1.0];
    let s = normalize(cross(f, up0));
    let u = cross(s, f);
    let view = [
        [s[0], s[1], s[2], -dot(s, eye)],
        [u[0], u[1], u[2], -dot(u, eye)],
        [-f[0], -f[1], -f[2], dot(f, eye)],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let near = (dist - radius * 1.5).max(dist * 0.01);
    let far = dist + radius * 1.5;
    let t = 1.0 / (fov / 2.0).tan();
    let aspect = if aspect > 0.0 && aspect.is_finite() {
        aspect
    } else {
        1.0
    };
    let proj = [
        [t / aspect, 0.0, 0.0, 0.0],
        [0.0, t, 0.0, 0.0],
        [0.0, 0.0, far / (near - far), near * far / (near - far)],
        [0.0, 0.0, -1.0, 0.0],
    ];
    invert4(&mat4_mul(&proj, &view))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn letters(axis: SliceAxis, convention: Convention) -> [char; 4] {
        let (right, up) = screen_axes(axis, convention);
        letters_of(right, up)
    }

    #[test]
    fn radiological_axial_puts_patient_right_on_screen_left() {
        assert_eq!(
            letters(SliceAxis::Axial, Convention::Radiological),
            ['R', 'L', 'A', 'P']
        );
        assert_eq!(
            letters(SliceAxis::Axial, Convention::Neurological),
            ['L', 'R', 'A', 'P']
        );
        assert_eq!(
            letters(SliceAxis::Coronal, Convention::Radiological),
            ['R', 'L', 'S', 'I']
        );
        assert_eq!(
            letters(SliceAxis::Sagittal, Convention::Radiological),
            ['A', 'P', 'S', 'I']
        );
    }

    #[test]
    fn views_follow_the_grids_own_axes() {
        // Axis-aligned grids in any storage order or sign: the anatomical
        // directions exactly.
        for m in [
            [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
            ],
            [
                [-0.9, 0.0, 0.0, 0.0],
                [0.0, -0.9, 0.0, 0.0],
                [0.0, 0.0, 3.0, 0.0],
            ],
            [
                [0.0, 0.0, 2.0, 0.0],
                [1.0, 0.0, 0.0, 0.0],
                [0.0, -1.5, 0.0, 0.0],
            ],
        ] {
            let g = Geometry::from_affine([m[0], m[1], m[2], [0.0, 0.0, 0.0, 1.0]]);
            for axis in SliceAxis::ALL {
                for convention in [Convention::Radiological, Convention::Neurological] {
                    let (r, u, n) = view_axes(axis, convention, &g);
                    assert_eq!((r, u), screen_axes(axis, convention), "{axis:?} {m:?}");
                    assert_eq!(n[axis.normal_axis()], 1.0);
                }
            }
        }
        // A short-axis stack: rotated 30° about x, then 20° about z.
        let (a, b) = (30f64.to_radians(), 20f64.to_radians());
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, a.cos(), -a.sin()],
            [0.0, a.sin(), a.cos()],
        ];
        let rz = [
            [b.cos(), -b.sin(), 0.0],
            [b.sin(), b.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let rot: [[f64; 3]; 3] = std::array::from_fn(|r| {
            std::array::from_fn(|c| (0..3).map(|k| rz[r][k] * rx[k][c]).sum())
        });
        let spacing = [1.5, 1.5, 8.0];
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] = rot[r][c] * spacing[c];
            }
            m[r][3] = [10.0, -20.0, 5.0][r];
        }
        m[3][3] = 1.0;
        let g = Geometry::from_affine(m);
        let dims = [40, 40, 9];
        let (right, up, normal) = view_axes(SliceAxis::Axial, Convention::Radiological, &g);
        assert!(dot(right, up).abs() < 1e-12 && dot(normal, right).abs() < 1e-12);
        // The axial view is the voxel slice: its normal is the stack's axis
        // (superior-ish), and moving in the plane keeps the slice index.
        assert!(normal[2] > 0.8);
        let c = g.world_from_index([20.0, 20.0, 4.0]);
        let plane = fit_plane(SliceAxis::Axial, Convention::Radiological, &g, dims, c, 1.0);
        for s in [[-0.8, 0.3], [0.5, 0.9], [0.0, -0.6]] {
            let v = voxel_of(&g, plane.world_from_screen(s));
            assert!((v[2] - 4.0).abs() < 1e-9, "{s:?} -> {v:?}");
        }
        // The letters name the nearest anatomical directions.
        assert_eq!(letters_of(right, up), ['R', 'L', 'A', 'P']);
        // Slice steps move one voxel slice; the crosshair stays in the grid.
        assert!((slice_step_mm(&g, SliceAxis::Axial) - 8.0).abs() < 1e-9);
        let next = step_along_normal(SliceAxis::Axial, &g, dims, c, 1);
        let v = voxel_of(&g, next);
        assert!(
            (v[2] - 5.0).abs() < 1e-9 && (v[0] - 20.0).abs() < 1e-9,
            "{v:?}"
        );
        let top = step_along_normal(SliceAxis::Axial, &g, dims, c, 100);
        assert!((voxel_of(&g, top)[2] - 8.0).abs() < 1e-9);
        // A click moves the crosshair within the view's plane (a point
        // off the plane is brought back onto it), then onto a voxel centre.
        let w = plane.world_from_screen([0.4, -0.2]);
        let off: [f64; 3] = std::array::from_fn(|i| w[i] + 3.0 * normal[i]);
        let moved = in_view_plane(SliceAxis::Axial, &g, c, off);
        assert!((voxel_of(&g, moved)[2] - 4.0).abs() < 1e-9);
        let snapped = voxel_of(&g, snap_to_voxel(&g, dims, moved));
        assert!(
            snapped.iter().all(|x| (x - x.round()).abs() < 1e-9),
            "{snapped:?}"
        );
        assert!((snapped[2] - 4.0).abs() < 1e-9);
    }

    /// A grid of `spacing` whose voxel axes are the columns of `rot`.
    fn rotated(rot: [[f64; 3]; 3], spacing: [f64; 3]) -> Geometry {
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                m[r][c] = rot[r][c] * spacing[c];
            }
        }
        m[3][3] = 1.0;
        Geometry::from_affine(m)
    }

    #[test]
    fn the_three_views_show_three_different_slices() {
        // Per view, the axial and sagittal views of this grid both picked
        // column 1, and no view showed the plane across column 2.
        let s = 0.5f64.sqrt();
        let cols = [[0.41, 0.82, -0.41], [-s, 0.0, -s], [-0.58, 0.58, 0.57]];
        let rot: [[f64; 3]; 3] = std::array::from_fn(|r| std::array::from_fn(|c| cols[c][r]));
        let mut grids = vec![rotated(rot, [1.0, 1.0, 1.0])];
        // And pseudo-random rotations (products of three axis rotations).
        let mut x = 0.123f64;
        for _ in 0..500 {
            let mut angle = || {
                x = (x * 9301.0 + 0.49297).fract();
                x * std::f64::consts::TAU
            };
            let (a, b, c) = (angle(), angle(), angle());
            let rx = [
                [1.0, 0.0, 0.0],
                [0.0, a.cos(), -a.sin()],
                [0.0, a.sin(), a.cos()],
            ];
            let ry = [
                [b.cos(), 0.0, b.sin()],
                [0.0, 1.0, 0.0],
                [-b.sin(), 0.0, b.cos()],
            ];
            let rz = [
                [c.cos(), -c.sin(), 0.0],
                [c.sin(), c.cos(), 0.0],
                [0.0, 0.0, 1.0],
            ];
            let mul = |p: [[f64; 3]; 3], q: [[f64; 3]; 3]| -> [[f64; 3]; 3] {
                std::array::from_fn(|r| {
                    std::array::from_fn(|c| (0..3).map(|k| p[r][k] * q[k][c]).sum())
                })
            };
            grids.push(rotated(mul(rz, mul(ry, rx)), [1.2, 0.8, 5.0]));
        }
        for g in &grids {
            let across: std::collections::BTreeSet<usize> =
                SliceAxis::ALL.iter().map(|&a| across_axis(g, a)).collect();
            assert_eq!(across.len(), 3, "{:?}", g.world_from_voxel);
            for axis in SliceAxis::ALL {
                // Each view's plane is its voxel slice: right and up lie in it.
                let (right, up, normal) = view_axes(axis, Convention::Radiological, g);
                let inv = g.voxel_from_world().unwrap();
                let a = across_axis(g, axis);
                let moved = |d: [f64; 3]| (0..3).map(|c| inv[a][c] * d[c]).sum::<f64>();
                assert!(moved(right).abs() < 1e-9 && moved(up).abs() < 1e-9);
                assert!(normal[axis.normal_axis()] > 0.0);
            }
        }
    }

    #[test]
    fn a_sheared_grid_keeps_its_slices_and_stays_upright() {
        // A CT with a 25° gantry tilt: slices step along a sheared z axis.
        let t = 25f64.to_radians();
        let g = Geometry::from_affine([
            [0.7, 0.0, 0.0, 0.0],
            [0.0, 0.7, 2.5 * t.sin(), 0.0],
            [0.0, 0.0, 2.5 * t.cos(), 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let dims = [64, 64, 20];
        for axis in SliceAxis::ALL {
            let (right, up, _) = view_axes(axis, Convention::Radiological, &g);
            let (r0, u0) = screen_axes(axis, Convention::Radiological);
            assert!(dot(right, r0) > 0.8 && dot(up, u0) > 0.8, "{axis:?}");
        }
        // The axial view is the acquired (tilted) slice; steps move one.
        let c = g.world_from_index([10.0, 20.0, 7.0]);
        let next = step_along_normal(SliceAxis::Axial, &g, dims, c, 1);
        let v = voxel_of(&g, next);
        assert!((v[2] - 8.0).abs() < 1e-9, "{v:?}");
        // It moves along the normal: what is under the crosshair in the
        // axial view stays there.
        let (right, up, _) = view_axes(SliceAxis::Axial, Convention::Radiological, &g);
        let d: [f64; 3] = std::array::from_fn(|i| next[i] - c[i]);
        assert!(dot(d, right).abs() < 1e-9 && dot(d, up).abs() < 1e-9);
        assert!((slice_step_mm(&g, SliceAxis::Axial) - 2.5 * t.cos()).abs() < 1e-9);
        // From between two slices, a step lands on the next centre; at
        // the first slice, a step down stays there.
        let between = g.world_from_index([10.0, 20.0, 4.3]);
        let v = voxel_of(
            &g,
            step_along_normal(SliceAxis::Axial, &g, dims, between, 1),
        );
        assert!((v[2] - 5.0).abs() < 1e-9, "{v:?}");
        let first = g.world_from_index([10.0, 20.0, 0.0]);
        let v = voxel_of(&g, step_along_normal(SliceAxis::Axial, &g, dims, first, -3));
        assert!(v[2].abs() < 1e-9, "{v:?}");
    }

    #[test]
    fn the_axis_across_a_view_follows_the_storage_order() {
        // Voxel axis 0 runs along world z (a sagittal-stored volume).
        let mut m = Geometry::identity().world_from_voxel;
        m[0] = [0.0, 0.0, 1.0, 0.0];
        m[2] = [1.0, 0.0, 0.0, 0.0];
        let g = Geometry::from_affine(m);
        assert_eq!(across_axis(&g, SliceAxis::Axial), 0);
        assert_eq!(across_axis(&g, SliceAxis::Sagittal), 2);
        assert_eq!(across_axis(&g, SliceAxis::Coronal), 1);
    }

    fn voxel_of(g: &Geometry, w: [f64; 3]) -> [f64; 3] {
        let m = g.voxel_from_world().unwrap();
        std::array::from_fn(|r| m[r][0] * w[0] + m[r][1] * w[1] + m[r][2] * w[2] + m[r][3])
    }

    #[test]
    fn screen_world_round_trip_and_texture_mapping() {
        let g = Geometry::from_affine([
            [-2.0, 0.0, 0.0, 50.0],
            [0.0, 2.0, 0.0, -20.0],
            [0.0, 0.0, 3.0, 5.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let dims = [10, 20, 30];
        let plane = fit_plane(
            SliceAxis::Axial,
            Convention::Radiological,
            &g,
            dims,
            [0.0, 0.0, 11.0],
            1.0,
        );
        let w = plane.world_from_screen([0.3, -0.7]);
        let s = plane.screen_from_world(w);
        assert!((s[0] - 0.3).abs() < 1e-12 && (s[1] + 0.7).abs() < 1e-12);
        // Voxel (0,0,2) centre is at world (50, -20, 11): texture (0.5/10, 0.5/20, 2.5/30).
        let t = tex_from_world(&g, dims).unwrap();
        let p = [50.0, -20.0, 11.0];
        let tex: Vec<f64> = (0..3)
            .map(|r| t[r][0] * p[0] + t[r][1] * p[1] + t[r][2] * p[2] + t[r][3])
            .collect();
        assert!(
            (tex[0] - 0.05).abs() < 1e-12
                && (tex[1] - 0.025).abs() < 1e-12
                && (tex[2] - 2.5 / 30.0).abs() < 1e-12
        );
        assert_eq!(voxel_at(&g, dims, p), Some([0, 0, 2]));
        assert_eq!(voxel_at(&g, dims, [60.0, -20.0, 11.0]), None);
        assert_eq!(slice_step_mm(&g, SliceAxis::Axial), 3.0);
    }

    #[test]
    fn orbit_rays_hit_the_box_centre() {
        let bounds = ([-10.0, -20.0, -30.0], [10.0, 20.0, 30.0]);
        let m = orbit_world_from_clip(&Orbit::default(), bounds, 1.5).unwrap();
        let at = |z: f64| {
            let h: Vec<f64> = (0..4)
                .map(|r| m[r][0] * 0.0 + m[r][1] * 0.0 + m[r][2] * z + m[r][3])
                .collect();
            [h[0] / h[3], h[1] / h[3], h[2] / h[3]]
        };
        // The centre pixel's ray passes through the box centre.
        let (a, b) = (at(0.0), at(1.0));
        let d = normalize([b[0] - a[0], b[1] - a[1], b[2] - a[2]]);
        let to_c = [-a[0], -a[1], -a[2]];
        let along = dot(to_c, d);
        let miss = (0..3)
            .map(|i| (to_c[i] - along * d[i]).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(miss < 1e-6, "{miss}");
        let id = mat4_mul(&m, &invert4(&m).unwrap());
        assert!((id[2][2] - 1.0).abs() < 1e-9 && id[0][3].abs() < 1e-9);
    }

    #[test]
    fn fit_keeps_aspect_and_covers_the_volume() {
        let g = Geometry::identity();
        let p = fit_plane(
            SliceAxis::Axial,
            Convention::Radiological,
            &g,
            [100, 50, 10],
            [0.0; 3],
            2.0,
        );
        assert!((p.half_extent_mm[0] / p.half_extent_mm[1] - 2.0).abs() < 1e-12);
        assert!(p.half_extent_mm[0] >= 50.0);
        assert!((p.center_mm[0] - 49.5).abs() < 1e-12);
    }
}
