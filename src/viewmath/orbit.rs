//! The 3D view's orbit camera: yaw, pitch and zoom around the volume's
//! bounding box, as a clip → world matrix for the ray caster.

use super::{cross, dot, invert4, normalize};
use crate::volume::mat4_mul;

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
