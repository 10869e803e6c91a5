//! The wgpu renderer on a real adapter (Mesa's lavapipe on machines without
//! a GPU): off-screen slice renders must equal the CPU computation of the
//! same window, colormap, labels and orientation, and one volume stored in
//! six orientations must give the same axial image.
#![cfg(feature = "gui")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use ume::app::document::Layer;
use ume::render::cpu::{CpuSource, render_slice};
use ume::render::{LabelUpload, Renderer, SliceUniforms, ViewDraw, f16_bits, gpu_matrix};
use ume::viewmath::{self, Convention, SliceAxis};
use ume::volume::{LabelData, Volume};

fn device() -> (wgpu::Device, wgpu::Queue) {
    let (d, q, name) =
        ume::render::headless_device().expect("a wgpu adapter (install mesa-vulkan-drivers)");
    eprintln!("adapter: {name}");
    (d, q)
}

fn normalised(layer: &Layer) -> Vec<u16> {
    let (lo, hi) = layer.range;
    layer
        .volume
        .frame_f32(0)
        .unwrap()
        .iter()
        .map(|&x| f16_bits(((f64::from(x) - lo) / (hi - lo)) as f32))
        .collect()
}

fn uniforms(
    v: &Volume,
    axis: SliceAxis,
    layer: &Layer,
    window: (f64, f64),
    has_labels: bool,
    size: [u32; 2],
) -> SliceUniforms {
    let center = v
        .geometry
        .world_from_index(v.dims.map(|d| (d as f64 - 1.0) / 2.0));
    let plane = viewmath::fit_plane(
        axis,
        Convention::Radiological,
        &v.geometry,
        v.dims,
        center,
        f64::from(size[0]) / f64::from(size[1]),
    );
    let m = viewmath::tex_from_screen(&plane, &v.geometry, v.dims).unwrap();
    let d = v.dims.map(|x| x as u32);
    SliceUniforms {
        tex_from_screen: gpu_matrix(&m),
        window: [
            layer.normalise(window.0) as f32,
            layer.normalise(window.1) as f32,
            0.5,
            0.0,
        ],
        flags: [0, 1, u32::from(has_labels), u32::from(has_labels)],
        dims: [d[0], d[1], d[2], 1],
        screen: [size[0] as f32, size[1] as f32, 0.0, 0.0],
    }
}

/// Pixels differing by more than 2 levels in any channel.
fn mismatches(a: &[u8], b: &[u8]) -> usize {
    a.chunks(4)
        .zip(b.chunks(4))
        .filter(|(p, q)| p.iter().zip(q.iter()).any(|(x, y)| x.abs_diff(*y) > 2))
        .count()
}

#[test]
fn gpu_slices_match_the_cpu_reference() {
    let (device, queue) = device();
    let mut r = Renderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    let case = ume::phantom::brats_case(5, 1, ume::phantom::Size::Small);
    let v = case.images[3].1.clone(); // FLAIR
    let layer = Layer::new("flair", std::sync::Arc::new(v.clone()));
    let values = normalised(&layer);
    let dims = v.dims.map(|d| d as u32);
    r.set_volume(&device, &queue, 0, dims, &values);
    let LabelData::U8(ids) = &case.labels.data else {
        panic!("u8 labels")
    };
    r.set_labels(&device, &queue, dims, LabelUpload::U8(ids));
    let table = ume::volume::LabelTable::builtin("brats").unwrap();
    let mut palette = vec![[0u8; 4]; 256];
    for l in &table.labels {
        palette[usize::from(l.id)] = [l.color[0], l.color[1], l.color[2], 255];
    }
    r.set_palette(&queue, &palette);
    let size = [160, 120];
    for axis in SliceAxis::ALL {
        let u = uniforms(&v, axis, &layer, layer.auto_window, true, size);
        let gpu = r.render_to_rgba(&device, &queue, &ViewDraw::Slice(u), size);
        let src = CpuSource {
            values: &values,
            dims: v.dims,
            labels: Some(&case.labels),
            palette: &palette,
        };
        let cpu = render_slice(&u, &src, size);
        let bad = mismatches(&gpu, &cpu);
        let non_black = gpu
            .chunks(4)
            .filter(|p| p[0] > 10 || p[1] > 10 || p[2] > 10)
            .count();
        assert!(
            non_black > 3000,
            "{axis:?}: the slice is nearly empty ({non_black} lit pixels)"
        );
        // Voxel boundaries may round differently in the last bit of float math.
        assert!(
            bad * 100 < gpu.len() / 4,
            "{axis:?}: {bad} of {} pixels differ from the CPU reference",
            gpu.len() / 4
        );
        let labelled = gpu.chunks(4).filter(|p| p[1] > p[0] + 40).count();
        if axis == SliceAxis::Axial {
            assert!(
                labelled > 0,
                "edema (green) overlay visible on the axial slice through the volume centre?"
            );
        }
    }
}

#[test]
fn six_storage_orders_render_the_same_axial_slice() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/github-niivue/nifti_space");
    if !dir.is_dir() {
        eprintln!("../shared/testdata not present");
        return;
    }
    let (device, queue) = device();
    let mut r = Renderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    let size = [96, 96];
    let mut images = Vec::new();
    // One world-space plane for all six: the RAS file's.
    let ras = ume::io::load(&dir.join("RAS.nii.gz")).unwrap();
    let center = ras
        .geometry
        .world_from_index(ras.dims.map(|d| (d as f64 - 1.0) / 2.0));
    let plane = viewmath::fit_plane(
        SliceAxis::Axial,
        Convention::Radiological,
        &ras.geometry,
        ras.dims,
        center,
        1.0,
    );
    for name in ["RAS", "LPS", "PIL", "SRA", "IPR", "AIL"] {
        let v = ume::io::load(&dir.join(format!("{name}.nii.gz"))).unwrap();
        let layer = Layer::new(name, std::sync::Arc::new(v.clone()));
        r.set_volume(
            &device,
            &queue,
            0,
            v.dims.map(|d| d as u32),
            &normalised(&layer),
        );
        let m = viewmath::tex_from_screen(&plane, &v.geometry, v.dims).unwrap();
        let mut u = uniforms(&v, SliceAxis::Axial, &layer, layer.range, false, size);
        u.tex_from_screen = gpu_matrix(&m);
        images.push((
            name,
            r.render_to_rgba(&device, &queue, &ViewDraw::Slice(u), size),
        ));
    }
    let reference = &images[0].1;
    assert!(
        reference.chunks(4).filter(|p| p[0] > 10).count() > 500,
        "the RAS slice shows anatomy"
    );
    for (name, img) in &images[1..] {
        let bad = mismatches(reference, img);
        assert!(
            bad * 200 < reference.len() / 4,
            "{name}: {bad} pixels differ from RAS"
        );
    }
}

#[test]
fn ray_caster_projects_a_bright_cube_and_clips_it() {
    use ume::render::RayUniforms;
    let (device, queue) = device();
    let mut r = Renderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    let n = 16usize;
    let vals: Vec<u16> = (0..n * n * n)
        .map(|i| {
            let (x, y, z) = (i % n, (i / n) % n, i / (n * n));
            let inside = (5..11).contains(&x) && (5..11).contains(&y) && (5..11).contains(&z);
            f16_bits(if inside { 1.0 } else { 0.0 })
        })
        .collect();
    r.set_volume(&device, &queue, 0, [16, 16, 16], &vals);
    let g = ume::volume::Geometry::identity();
    let dims = [n; 3];
    let bounds = viewmath::world_bounds(&g, dims);
    let wfc = viewmath::orbit_world_from_clip(&viewmath::Orbit::default(), bounds, 1.0).unwrap();
    let tfw = viewmath::tex_from_world(&g, dims).unwrap();
    let mut u = RayUniforms {
        world_from_clip: gpu_matrix(&wfc),
        tex_from_world: gpu_matrix(&tfw),
        window: [0.0, 1.0, 4.0, 0.0],
        params: [0, 0, 0, 128],
        clip: [0.5, 0.5, 0.5, 1.0],
        dims: [16, 16, 16, 0],
    };
    let size = [64, 64];
    let lit = |img: &[u8]| img.chunks(4).filter(|p| p[0] > 200).count();
    let mip = r.render_to_rgba(&device, &queue, &ViewDraw::Ray(u), size);
    let centre = &mip[(32 * 64 + 32) * 4..(32 * 64 + 32) * 4 + 4];
    assert!(
        centre[0] > 200,
        "the cube is bright in the MIP centre: {centre:?}"
    );
    assert_eq!(&mip[..4], &[0, 0, 0, 255], "the corner is background");
    // Clipping away everything above the crosshair's x plane hides part of the cube.
    u.params[2] = 1;
    let clipped = r.render_to_rgba(&device, &queue, &ViewDraw::Ray(u), size);
    assert!(
        lit(&clipped) < lit(&mip),
        "clipping removes lit pixels ({} vs {})",
        lit(&clipped),
        lit(&mip)
    );
    // DVR of the same data also shows the cube.
    u.params = [1, 0, 0, 128];
    let dvr = r.render_to_rgba(&device, &queue, &ViewDraw::Ray(u), size);
    let c = &dvr[(32 * 64 + 32) * 4..(32 * 64 + 32) * 4 + 4];
    // Front-to-back compositing through the filtered surface gives grey, not white.
    assert!(c[0] > 50, "DVR shows the cube: centre {c:?}");
    assert_eq!(&dvr[..4], &[0, 0, 0, 255], "DVR background stays black");
}

#[test]
fn a_stroke_box_upload_draws_what_a_full_upload_draws() {
    let (device, queue) = device();
    let mut r = Renderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    let case = ume::phantom::brats_case(5, 1, ume::phantom::Size::Small);
    let v = case.images[3].1.clone();
    let layer = Layer::new("flair", std::sync::Arc::new(v.clone()));
    let dims = v.dims.map(|d| d as u32);
    r.set_volume(&device, &queue, 0, dims, &normalised(&layer));
    let mut palette = vec![[0u8; 4]; 256];
    palette[1] = [255, 0, 0, 255];
    palette[2] = [0, 255, 0, 255];
    palette[4] = [0, 0, 255, 255];
    palette[9] = [255, 255, 0, 255];
    r.set_palette(&queue, &palette);
    let mut labels = case.labels.clone();
    let LabelData::U8(ids) = &labels.data else {
        panic!("u8 labels")
    };
    r.set_labels(&device, &queue, dims, LabelUpload::U8(ids));
    // A "stroke": label 9 in a box around the centre of the axial slice.
    let [nx, ny, nz] = labels.dims;
    let (lo, hi) = ([nx / 3, ny / 3, nz / 2 - 1], [nx / 2, ny / 2, nz / 2]);
    for k in lo[2]..=hi[2] {
        for j in lo[1]..=hi[1] {
            for i in lo[0]..=hi[0] {
                labels.set(i + nx * (j + ny * k), 9);
            }
        }
    }
    let (origin, size, data) = ume::app::upload::label_box(&labels, 0, lo, hi);
    let LabelData::U8(b) = &data else { panic!() };
    assert!(r.update_labels(&queue, dims, origin, size, LabelUpload::U8(b)));
    let view = [160, 120];
    let u = uniforms(&v, SliceAxis::Axial, &layer, layer.auto_window, true, view);
    let partial = r.render_to_rgba(&device, &queue, &ViewDraw::Slice(u), view);
    let LabelData::U8(all) = &labels.data else {
        panic!()
    };
    r.set_labels(&device, &queue, dims, LabelUpload::U8(all));
    let full = r.render_to_rgba(&device, &queue, &ViewDraw::Slice(u), view);
    assert_eq!(partial, full, "the box upload shows the stroke exactly");
    let yellow = partial
        .chunks(4)
        .filter(|p| p[0] > p[2] + 40 && p[1] > p[2] + 40)
        .count();
    assert!(
        yellow > 50,
        "the stroke is visible ({yellow} yellow pixels)"
    );
    // A box that does not fit, or a wrong width, is refused (full upload then).
    assert!(!r.update_labels(&queue, dims, [nx as u32, 0, 0], size, LabelUpload::U8(b)));
    let wide: Vec<u16> = b.iter().map(|&x| u16::from(x)).collect();
    assert!(!r.update_labels(&queue, dims, origin, size, LabelUpload::U16(&wide)));
}
