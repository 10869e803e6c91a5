//! The CPU reference of the slice shader: the same uniforms, the same
//! nearest-voxel lookup, window, colormap table and label blend, computed
//! per pixel on the CPU. Tests compare the GPU's pixels with it.

use super::{SliceUniforms, colormap::Colormap, f16_to_f32};
use crate::volume::LabelVolume;

/// What the CPU renderer samples.
pub struct CpuSource<'a> {
    /// Intensity frame as f16 bits (normalised), as uploaded to the GPU.
    pub values: &'a [u16],
    /// Its grid size.
    pub dims: [usize; 3],
    /// Labels on the same grid.
    pub labels: Option<&'a LabelVolume>,
    /// RGBA per label id.
    pub palette: &'a [[u8; 4]],
}

fn tex_at(u: &SliceUniforms, s: [f32; 2]) -> [f32; 3] {
    let m = &u.tex_from_screen; // column-major
    std::array::from_fn(|r| m[0][r] * s[0] + m[1][r] * s[1] + m[3][r])
}

fn voxel(tex: [f32; 3], dims: [usize; 3]) -> Option<usize> {
    if tex.iter().any(|&t| !(0.0..=1.0).contains(&t)) {
        return None;
    }
    let i: [usize; 3] =
        std::array::from_fn(|a| ((tex[a] * dims[a] as f32).floor() as usize).min(dims[a] - 1));
    Some(i[0] + dims[0] * (i[1] + dims[1] * i[2]))
}

/// Render a slice view (nearest sampling; outline not modelled) to RGBA8.
pub fn render_slice(u: &SliceUniforms, src: &CpuSource<'_>, size: [u32; 2]) -> Vec<u8> {
    let mut out = Vec::with_capacity((size[0] * size[1] * 4) as usize);
    let cm = Colormap::ALL
        .get(u.window[3] as usize)
        .copied()
        .unwrap_or_default();
    let span = (u.window[1] - u.window[0]).max(1e-6);
    for py in 0..size[1] {
        for px in 0..size[0] {
            let s = [
                (px as f32 + 0.5) / size[0] as f32 * 2.0 - 1.0,
                1.0 - (py as f32 + 0.5) / size[1] as f32 * 2.0,
            ];
            let tex = tex_at(u, s);
            let Some(flat) = voxel(tex, src.dims).filter(|_| u.dims[3] != 0) else {
                out.extend_from_slice(&[0, 0, 0, 255]);
                continue;
            };
            let v = f16_to_f32(src.values[flat]);
            let t = ((v - u.window[0]) / span).clamp(0.0, 1.0);
            let c = cm.rgb((t * 255.0).round() as u8).map(f32::from);
            let mut rgb = c.map(|x| x / 255.0);
            if u.flags[2] == 1
                && let Some(l) = src.labels
            {
                let id = l.get(flat);
                if id != 0 {
                    let lc = src.palette.get(usize::from(id)).copied().unwrap_or([0; 4]);
                    if lc[3] > 0 {
                        let a = u.window[2];
                        for k in 0..3 {
                            rgb[k] = rgb[k] * (1.0 - a) + f32::from(lc[k]) / 255.0 * a;
                        }
                    }
                }
            }
            out.extend(rgb.iter().map(|x| (x * 255.0).round() as u8));
            out.push(255);
        }
    }
    out
}
