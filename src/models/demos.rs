//! The demo models bundled in the binary, and which of them fits an image:
//! one rule for the app's model field and `ume segment`'s default.

use super::UNet2d;
use super::segment::{SegmentError, SegmenterConfig, load_checkpoint, load_weights};
use crate::volume::Volume;
use burn::prelude::*;
use burn::store::BurnpackStore;
use std::path::Path;

/// 64-byte alignment for embedded weights: Burn reads f32 tensors straight
/// out of the burnpack bytes, and `include_bytes!` alone guarantees no
/// alignment (a misaligned tensor panics inside the backend).
#[repr(C, align(64))]
struct Align64;

/// Bytes placed at a 64-byte boundary.
#[repr(C)]
struct Aligned<B: ?Sized> {
    _align: [Align64; 0],
    bytes: B,
}

static DEMO_CT: &Aligned<[u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!("../../assets/models/demo-ct/model.bpk"),
};
static DEMO_BRATS: &Aligned<[u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!("../../assets/models/demo-brats/model.bpk"),
};
static DEMO_BRAIN: &Aligned<[u8]> = &Aligned {
    _align: [],
    bytes: *include_bytes!("../../assets/models/demo-brain/model.bpk"),
};

/// The demo models bundled in the binary: (name, config.json, model.bpk),
/// trained by `ume train`: `demo-ct` and `demo-brats` on phantoms,
/// `demo-brain` (brain extraction) on real T1 MRI (README: "Demo models").
pub static DEMOS: &[(&str, &str, &[u8])] = &[
    (
        "demo-ct",
        include_str!("../../assets/models/demo-ct/config.json"),
        &DEMO_CT.bytes,
    ),
    (
        "demo-brats",
        include_str!("../../assets/models/demo-brats/config.json"),
        &DEMO_BRATS.bytes,
    ),
    (
        "demo-brain",
        include_str!("../../assets/models/demo-brain/config.json"),
        &DEMO_BRAIN.bytes,
    ),
];

/// Load a checkpoint folder, or a bundled demo by name (`demo-ct`,
/// `demo-brats`, `demo-brain`), onto `device`.
pub fn load_model(spec: &str, device: &Device) -> Result<(SegmenterConfig, UNet2d), SegmentError> {
    let path = Path::new(spec);
    if path.is_dir() {
        return load_checkpoint(path, device);
    }
    let Some((name, config, weights)) = DEMOS.iter().find(|d| d.0 == spec) else {
        return Err(SegmentError::Checkpoint {
            path: path.to_path_buf(),
            problem: format!(
                "no such checkpoint folder, and not a bundled model ({})",
                DEMOS.iter().map(|d| d.0).collect::<Vec<_>>().join(", ")
            ),
        });
    };
    let origin = Path::new(name);
    let config: SegmenterConfig =
        serde_json::from_str(config).map_err(|e| SegmentError::Checkpoint {
            path: origin.to_path_buf(),
            problem: format!("bundled config: {e}"),
        })?;
    let model = load_weights(
        config.network.init(device),
        &mut BurnpackStore::from_static(weights),
        origin,
    )?;
    Ok((config, model))
}

/// The bundled model that fits an image of `channels` volumes whose first
/// is `first` (its smallest value `first_min`, known where the volume was
/// read, so nothing here scans the voxels): four MR channels get the
/// brain-tumour demo, a CT (values in Hounsfield units) the CT demo, one
/// head-sized 3D MR image the brain-extraction demo; anything else (a
/// cine, two or three channels, a cardiac stack) none.
pub fn fitting_demo(channels: usize, first: &Volume, first_min: f64) -> Option<&'static str> {
    if channels >= 4 {
        Some("demo-brats")
    } else if first_min <= -500.0 {
        Some("demo-ct")
    } else if channels == 1 && first.frames <= 1 && head_sized(first) {
        Some("demo-brain")
    } else {
        None
    }
}

/// Whether a volume could be a head scan as the brain demo was trained
/// on: near-isotropic voxels (a cardiac short-axis stack has 10 mm
/// slices) and a head-sized field of view on every axis. The app and
/// `ume segment` guess the brain model only then; a cardiac frame got it
/// before and came back as blobs.
fn head_sized(v: &crate::volume::Volume) -> bool {
    let spacing = v.geometry.spacing_mm();
    let (lo, hi) = spacing
        .iter()
        .fold((f64::INFINITY, 0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let fov_ok = (0..3).all(|a| (100.0..=320.0).contains(&(spacing[a] * v.dims[a] as f64)));
    lo > 0.0 && hi / lo <= 2.0 && fov_ok
}
