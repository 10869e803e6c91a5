//! Slice views that follow an image's own axes. An oblique image (a
//! cardiac short-axis stack, a tilted MR) is shown one acquired slice per
//! view, as ITK-SNAP shows it, so the brush, which paints voxel slices,
//! paints what the view shows; slice steps move one slice and the
//! crosshair sits on voxel centres. For an axis-aligned image in any
//! storage order these are exactly the anatomical planes.

// Matrix code reads best with explicit row/column indices.
#![allow(clippy::needless_range_loop)]

use super::{Convention, SliceAxis, cross, dot, normalize, screen_axes};
use crate::volume::Geometry;

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
    let Some(v) = geometry.index_from_world(world) else {
        return world;
    };
    let v: [f64; 3] = std::array::from_fn(|r| v[r].round().clamp(0.0, dims[r].max(1) as f64 - 1.0));
    geometry.world_from_index(v)
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
    let Some(v) = geometry.index_from_world(crosshair) else {
        return crosshair;
    };
    // The same voxel axis the view shows (one assignment for all views).
    let across = across_axis(geometry, axis);
    let m = &geometry.world_from_voxel;
    let col = |c: usize| [m[0][c], m[1][c], m[2][c]];
    let now = v[across];
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

/// The distance between a view's voxel slices along its normal.
pub fn slice_step_mm(geometry: &Geometry, axis: SliceAxis) -> f64 {
    let (_, _, normal) = view_axes(axis, Convention::Radiological, geometry);
    let m = &geometry.world_from_voxel;
    // The voxel axis across the view moves the plane by its component
    // along the normal (its length, unless sheared).
    let c = across_axis(geometry, axis);
    dot([m[0][c], m[1][c], m[2][c]], normal).abs().max(1e-3)
}
