//! Preparing GPU uploads: one frame of intensities as half floats
//! normalised to the layer's range, and the label ids of that frame, both
//! downsampled by an integer stride (with the geometry scaled to match) when
//! the grid exceeds the device's 3D texture limit. The converted frame is
//! the only extra copy of the voxels. `UmeApp::upload` sends them when what
//! is shown changed (the upload key).

use super::document::Layer;
use super::views::TexGrid;
use super::{Layout, evaluation, settings};
use crate::render::{LabelUpload, Renderer, f16_bits};
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

/// The ids of box [lo, hi] of frame `frame`: (origin, size, ids x fastest),
/// in the map's own id width.
pub fn label_box(
    l: &LabelVolume,
    frame: usize,
    lo: [usize; 3],
    hi: [usize; 3],
) -> ([u32; 3], [u32; 3], LabelData) {
    let base = l.frame_offset(frame);
    let size = [0, 1, 2].map(|k| hi[k].min(l.dims[k] - 1) + 1 - lo[k].min(hi[k]));
    let at = |i: usize, j: usize, k: usize| {
        base + (lo[0] + i) + l.dims[0] * ((lo[1] + j) + l.dims[1] * (lo[2] + k))
    };
    fn copy<T: Copy>(
        d: &[T],
        size: [usize; 3],
        at: impl Fn(usize, usize, usize) -> usize,
    ) -> Vec<T> {
        let mut out = Vec::with_capacity(size[0] * size[1] * size[2]);
        for k in 0..size[2] {
            for j in 0..size[1] {
                for i in 0..size[0] {
                    out.push(d[at(i, j, k)]);
                }
            }
        }
        out
    }
    let data = match &l.data {
        LabelData::U8(d) => LabelData::U8(copy(d, size, at)),
        LabelData::U16(d) => LabelData::U16(copy(d, size, at)),
    };
    (lo.map(|x| x as u32), size.map(|x| x as u32), data)
}

/// Upload the labels the overlay shows at `frame` (downsampled by
/// `stride`); returns whether there are any.
fn upload_labels(
    renderer: &mut Renderer,
    rs: &eframe::egui_wgpu::RenderState,
    doc: &super::Document,
    eval: &evaluation::EvalState,
    overlay: settings::Overlay,
    frame: usize,
    stride: usize,
) -> bool {
    match evaluation::shown_labels(doc, eval, overlay, frame).as_deref() {
        Some(l) => {
            let (ldims, data) = label_upload(l, frame, stride);
            let upload = match &data {
                LabelData::U8(d) => LabelUpload::U8(d),
                LabelData::U16(d) => LabelUpload::U16(d),
            };
            renderer.set_labels(&rs.device, &rs.queue, ldims, upload);
            true
        }
        None => {
            renderer.set_labels(&rs.device, &rs.queue, [1, 1, 1], LabelUpload::U8(&[0]));
            false
        }
    }
}

/// What is on the GPU now, to know when to upload again.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct UploadKey {
    pub(super) doc: u64,
    frame: usize,
    layers: Vec<usize>,
    labels: (u64, u64),
    overlay: Option<super::settings::Overlay>,
    difference: bool,
    palette: Vec<[u8; 4]>,
}

impl super::UmeApp {
    /// Upload the current frame(s), labels and palette if they changed.
    pub(super) fn upload(&mut self) {
        let dirty_box = self.doc.as_mut().and_then(super::Document::take_dirty_box);
        let (Some(rs), Some(doc)) = (&self.render_state, &self.doc) else {
            return;
        };
        let slots: Vec<usize> = match self.settings.layout {
            Layout::Grid => vec![self.cursor.active],
            Layout::Modalities => (0..doc.layers().len()).collect(),
        };
        let overlay = self.settings.overlay;
        let difference = overlay == settings::Overlay::Difference && doc.prediction().is_some();
        let palette = if difference {
            evaluation::difference_palette()
        } else {
            doc.palette(&self.settings.hidden)
        };
        let rev = doc.revisions();
        let key = UploadKey {
            doc: doc.id(),
            frame: self.cursor.frame,
            layers: slots.clone(),
            labels: (rev.labels, rev.prediction),
            overlay: Some(overlay),
            difference: difference && self.eval.difference(doc).is_some(),
            palette,
        };
        if key == self.uploaded {
            return;
        }
        let mut guard = rs.renderer.write();
        let Some(renderer) = guard.callback_resources.get_mut::<Renderer>() else {
            return;
        };
        // Only the labels changed, by a stroke: write its box, not the frame.
        let only_labels = UploadKey {
            labels: self.uploaded.labels,
            ..key.clone()
        } == self.uploaded;
        if only_labels
            && overlay == settings::Overlay::GroundTruth
            && let (Some((lo, hi)), Some(grid)) = (dirty_box, &self.grid)
            && grid.has_labels
            && let Some(l) = doc.labels().at_frame(self.cursor.frame)
            && grid.dims == l.dims
        {
            let t = self.cursor.frame.min(l.frames - 1);
            let (origin, dims, data) = label_box(l, t, lo, hi);
            let ids = match &data {
                LabelData::U8(d) => LabelUpload::U8(d),
                LabelData::U16(d) => LabelUpload::U16(d),
            };
            if renderer.update_labels(&rs.queue, grid.dims.map(|d| d as u32), origin, dims, ids) {
                self.uploaded = key;
                return;
            }
        }
        // The intensities did not change (a stroke outside the partial path,
        // a tool, undo, the overlay, the palette): labels and palette only.
        let volumes_same = (key.doc, key.frame, &key.layers)
            == (
                self.uploaded.doc,
                self.uploaded.frame,
                &self.uploaded.layers,
            );
        if volumes_same
            && let (Some(grid), Some(layer)) = (self.grid.clone(), doc.layer(self.cursor.active))
        {
            let labels_same = (key.labels, key.overlay, key.difference)
                == (
                    self.uploaded.labels,
                    self.uploaded.overlay,
                    self.uploaded.difference,
                );
            if !labels_same {
                let stride = layer.volume.dims[0].div_ceil(grid.dims[0]).max(1);
                let has = upload_labels(
                    renderer,
                    rs,
                    doc,
                    &self.eval,
                    overlay,
                    self.cursor.frame,
                    stride,
                );
                self.grid = Some(TexGrid {
                    has_labels: has,
                    ..grid
                });
            }
            renderer.set_palette(&rs.queue, &key.palette);
            self.uploaded = key;
            return;
        }
        let limit = renderer.max_texture_3d as usize;
        let mut notice = None;
        let frame = self.cursor.frame;
        for (slot, &li) in slots.iter().enumerate() {
            let Some(layer) = doc.layer(li) else {
                continue;
            };
            let t = frame.min(layer.volume.frames - 1);
            let (dims, values, grid) = frame_upload(layer, t, limit);
            if grid.dims != layer.volume.dims {
                notice = Some(format!(
                    "{} is larger than the GPU's 3D texture limit ({limit}); shown downsampled to {:?}",
                    layer.name, grid.dims
                ));
            }
            renderer.set_volume(&rs.device, &rs.queue, slot, dims, &values);
            if slot == 0 {
                let stride = layer.volume.dims[0].div_ceil(grid.dims[0]).max(1);
                let has = upload_labels(renderer, rs, doc, &self.eval, overlay, frame, stride);
                self.grid = Some(TexGrid {
                    has_labels: has,
                    ..grid
                });
            }
        }
        renderer.set_palette(&rs.queue, &key.palette);
        if notice.is_some() && notice != self.notice {
            self.notes.warn(notice.clone().unwrap_or_default());
        }
        self.notice = notice;
        self.uploaded = key;
    }
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
