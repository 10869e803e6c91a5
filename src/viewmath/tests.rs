//! The views' geometry: letters, planes, oblique and sheared grids, the
//! orbit camera.

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
    let rot: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| rz[r][k] * rx[k][c]).sum()));
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
            // A slice step moves to the next slice of that same axis.
            let c = g.world_from_index([20.0; 3]);
            let v = voxel_of(g, step_along_normal(axis, g, [40; 3], c, 1));
            assert!((v[a] - 21.0).abs() < 1e-9, "{axis:?}: {v:?}");
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
    g.index_from_world(w).unwrap()
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
