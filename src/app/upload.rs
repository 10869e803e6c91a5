//! Preparing GPU uploads: one frame of intensities as half floats
//! normalised to the layer's range, and the label ids of that frame, both
//! downsampled by an integer stride (with the geometry scaled to match) when
//! the grid exceeds the device's 3D texture limit. The converted frame is
//! the only extra copy of the voxels.

use super::document::Layer;
use super::views::TexGrid;
use crate::render::f16_bits;
use crate::volume::{DataType, Geometry, LabelData, LabelVolume};

/// Smallest integer stride that brings every side within `limit`.
pub fn stride_for(dims: [usize; 3], limit: usize) -> usize {
    dims.iter()
        .map(|&d| d.div_ceil(limit.max(1)))
        .max()
        .unwrap_or(1)
        .max(1)
}

/// One frame of a layer as normalised f16 bits, its texture size, and the
/// grid the texture represents.
pub fn frame_upload(layer: &Layer, frame: usize, limit: usize) -> ([u32; 3], Vec<u16>, TexGrid) {
    let v = &layer.volume;
    let stride = stride_for(v.dims, limit);
    let dims = v.dims.map(|d| d.div_ceil(stride));
    let (lo, hi) = layer.range;
    let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
    let mut values = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    let frame = frame.min(v.frames.saturating_sub(1));
    if stride == 1 {
        // Straight from the native bytes: no intermediate f32 copy.
        let s = if v.dtype.is_scalable() {
            v.scaling
        } else {
            crate::volume::Scaling::IDENTITY
        };
        let convert = |raw: f64| f16_bits(((s.apply(raw) - lo) * scale) as f32);
        if let Some(f) = v.frame(frame) {
            let bytes = f.raw_bytes();
            match v.dtype {
                // 8/16-bit data: one table lookup per voxel instead of a float conversion.
                DataType::U8 | DataType::I8 => {
                    let lut: Vec<u16> = (0..=255u8)
                        .map(|b| {
                            convert(if v.dtype == DataType::I8 {
                                f64::from(b as i8)
                            } else {
                                f64::from(b)
                            })
                        })
                        .collect();
                    values.extend(bytes.iter().map(|&b| lut[usize::from(b)]));
                }
                DataType::U16 | DataType::I16 => {
                    let lut: Vec<u16> = (0..=u16::MAX)
                        .map(|c| {
                            convert(if v.dtype == DataType::I16 {
                                f64::from(c as i16)
                            } else {
                                f64::from(c)
                            })
                        })
                        .collect();
                    values.extend(
                        bytes
                            .chunks_exact(2)
                            .map(|c| lut[usize::from(u16::from_le_bytes([c[0], c[1]]))]),
                    );
                }
                _ => v.dtype.for_each_f64(bytes, |raw| values.push(convert(raw))),
            }
        }
    } else {
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let x = v
                        .get(i * stride, j * stride, k * stride, frame)
                        .unwrap_or(lo);
                    values.push(f16_bits(((x - lo) * scale) as f32));
                }
            }
        }
    }
    let mut m = v.geometry.world_from_voxel;
    for row in m.iter_mut().take(3) {
        for c in row.iter_mut().take(3) {
            *c *= stride as f64;
        }
    }
    let grid = TexGrid {
        geometry: Geometry::from_affine(m),
        dims,
        has_labels: false,
    };
    (dims.map(|d| d as u32), values, grid)
}

/// The ids of frame `frame` of a label map (3D maps: the map), downsampled
/// by `stride`.
pub fn label_upload(l: &LabelVolume, frame: usize, stride: usize) -> ([u32; 3], LabelData) {
    let base = l.frame_offset(frame);
    let dims = l.dims.map(|d| d.div_ceil(stride));
    let dims32 = dims.map(|d| d as u32);
    if stride == 1 {
        return (dims32, l.frame(frame).data);
    }
    let mut ids = Vec::with_capacity(dims[0] * dims[1] * dims[2]);
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                ids.push(
                    l.get(base + i * stride + l.dims[0] * (j * stride + l.dims[1] * k * stride)),
                );
            }
        }
    }
    let data = if ids.iter().all(|&x| x <= 255) {
        LabelData::U8(ids.iter().map(|&x| x as u8).collect())
    } else {
        LabelData::U16(ids)
    };
    (dims32, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::f16_to_f32;
    use crate::volume::Volume;
    use std::sync::Arc;

    #[test]
    fn too_large_grids_are_downsampled_with_matching_geometry() {
        let vals: Vec<i16> = (0..40 * 30 * 20).map(|i| (i % 1000) as i16).collect();
        let g = Geometry::from_affine([
            [2.0, 0.0, 0.0, 1.0],
            [0.0, 2.0, 0.0, 2.0],
            [0.0, 0.0, 3.0, 3.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        let v = Volume::from_values(vec![40, 30, 20], &vals, g).unwrap();
        let layer = Layer::new("x", Arc::new(v));
        let (dims, values, grid) = frame_upload(&layer, 0, 16);
        assert_eq!(dims, [14, 10, 7]); // stride 3
        assert_eq!(values.len(), 14 * 10 * 7);
        assert_eq!(grid.geometry.world_from_voxel[0][0], 6.0);
        assert_eq!(grid.geometry.world_from_voxel[0][3], 1.0);
        // Texture voxel (1, 0, 0) is source voxel (3, 0, 0): value 3 of range 0..999.
        assert!((f16_to_f32(values[1]) - 3.0 / 999.0).abs() < 1e-3);
        let (full, _, g1) = frame_upload(&layer, 0, 2048);
        assert_eq!((full, g1.dims), ([40, 30, 20], [40, 30, 20]));
    }

    #[test]
    fn four_d_labels_follow_the_frame() {
        let mut l = LabelVolume::zeros([2, 2, 1], 3, Geometry::identity());
        l.set(4 * 2 + 1, 7); // frame 2, voxel 1
        let (_, d0) = label_upload(&l, 0, 1);
        let (_, d2) = label_upload(&l, 2, 1);
        assert_eq!(d0, LabelData::U8(vec![0, 0, 0, 0]));
        assert_eq!(d2, LabelData::U8(vec![0, 7, 0, 0]));
    }
}
