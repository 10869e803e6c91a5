//! `ume bench viewer`: the viewer's CPU cost per frame, measured on the
//! device wgpu offers (lavapipe on machines without a GPU).
//!
//! - Slice change at 512×512 in-plane: crosshair moves one slice, the three
//!   slice views' uniforms are recomputed and written, and a frame that
//!   draws them is encoded and submitted. Goal: ≤ 8 ms CPU side.
//! - Cine: switching frames of a 256×256×128×30 volume: convert the frame to
//!   half floats, upload it, draw and wait for the device. Goal: ≥ 20 fps.

use super::document::Layer;
use super::settings::Settings;
use super::upload::frame_upload;
use super::views::{Camera, Cursor, TexGrid, ViewCtx, slice_uniforms};
use super::{Document, document::Labels};
use crate::render::{Renderer, ViewDraw};
use crate::viewmath::SliceAxis;
use crate::volume::{Geometry, LabelTable, Volume};
use std::sync::Arc;
use std::time::Instant;

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn synthetic(dims: [usize; 3], frames: usize) -> Volume {
    let n = dims[0] * dims[1] * dims[2];
    let mut vals = Vec::with_capacity(n * frames);
    for t in 0..frames {
        for idx in 0..n {
            let (i, j, k) = (
                idx % dims[0],
                (idx / dims[0]) % dims[1],
                idx / (dims[0] * dims[1]),
            );
            let r = ((i as f64 - dims[0] as f64 / 2.0).powi(2)
                + (j as f64 - dims[1] as f64 / 2.0).powi(2))
            .sqrt();
            vals.push(((r * 0.3 + k as f64 + t as f64 * 3.0).sin() * 800.0) as i16);
        }
    }
    let mut shape = dims.to_vec();
    if frames > 1 {
        shape.push(frames);
    }
    Volume::from_values(shape, &vals, Geometry::identity()).expect("shape matches")
}

/// Run the viewer benchmark and print its table.
pub fn viewer() -> anyhow::Result<()> {
    let (device, queue, adapter) = crate::render::headless_device().map_err(anyhow::Error::msg)?;
    let mut r = Renderer::new(&device, &queue, wgpu::TextureFormat::Rgba8Unorm);
    println!("ume bench viewer — adapter: {adapter}");

    // 1. Slice change at 512×512 in-plane.
    let layer = Layer::new("ct", Arc::new(synthetic([512, 512, 96], 1)));
    let (dims, values, grid) = frame_upload(&layer, 0, r.max_texture_3d as usize);
    r.set_volume(&device, &queue, 0, dims, &values);
    let doc = Document::new(
        "bench".into(),
        vec![layer],
        Labels::default(),
        LabelTable::default(),
    );
    let settings = Settings {
        windows: vec![doc.layers()[0].auto_window],
        ..Settings::default()
    };
    let camera = Camera::default();
    let mut cursor = Cursor::for_document(&doc);
    let grid = TexGrid {
        has_labels: false,
        ..grid
    };
    let rect = eframe::egui::Rect::from_min_size(
        eframe::egui::Pos2::ZERO,
        eframe::egui::vec2(512.0, 512.0),
    );
    let target = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("bench target"),
        size: wgpu::Extent3d {
            width: 1024,
            height: 1024,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let view = target.create_view(&wgpu::TextureViewDescriptor::default());
    let mut cpu = Vec::new();
    let mut total = Vec::new();
    for step in 0..120 {
        let t0 = Instant::now();
        cursor.crosshair_mm[2] = (step % 90) as f64;
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        for (id, axis) in SliceAxis::ALL.iter().enumerate() {
            let plane = super::views::plane_for(&doc, &cursor, &settings, &camera, *axis, rect)
                .ok_or_else(|| anyhow::anyhow!("no plane"))?;
            let view = ViewCtx {
                doc: &doc,
                cursor: &cursor,
                settings: &settings,
                grid: Some(&grid),
                gpu: true,
            };
            let u = slice_uniforms(&view, &plane, &grid, rect, 1.0)
                .ok_or_else(|| anyhow::anyhow!("no uniforms"))?;
            r.prepare(&device, &queue, id as u64, 0, &ViewDraw::Slice(u));
        }
        {
            let mut pass = crate::render::clear_pass(&mut encoder, &view);
            for (id, _) in SliceAxis::ALL.iter().enumerate() {
                let x = (id % 2) as f32 * 512.0;
                let y = (id / 2) as f32 * 512.0;
                pass.set_viewport(x, y, 512.0, 512.0, 0.0, 1.0);
                r.paint(&mut pass, id as u64);
            }
        }
        queue.submit([encoder.finish()]);
        cpu.push(t0.elapsed().as_secs_f64() * 1e3);
        let _ = device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        });
        total.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "slice change, 512×512×96 int16, three 512×512 views: CPU {:.2} ms median, {:.2} ms p95 (goal ≤ 8 ms; {:.1}× headroom); with the GPU draw on this adapter {:.1} ms median",
        percentile(cpu.clone(), 0.5),
        percentile(cpu.clone(), 0.95),
        8.0 / percentile(cpu, 0.95),
        percentile(total, 0.5)
    );

    // 2. Cine: 256×256×128×30.
    let cine = Layer::new("cine", Arc::new(synthetic([256, 256, 128], 30)));
    let mut per_frame = Vec::new();
    let mut convert = Vec::new();
    for t in 0..60 {
        let t0 = Instant::now();
        let (dims, values, _) = frame_upload(&cine, t % 30, r.max_texture_3d as usize);
        convert.push(t0.elapsed().as_secs_f64() * 1e3);
        r.set_volume(&device, &queue, 0, dims, &values);
        queue.submit([]);
        let _ = device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        });
        per_frame.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let median = percentile(per_frame.clone(), 0.5);
    println!(
        "cine frame switch, 256×256×128×30 int16: {:.1} ms median ({:.1} ms converting to f16, the rest uploading) → {:.0} fps (goal ≥ 20 fps; {:.1}×)",
        median,
        percentile(convert, 0.5),
        1000.0 / median,
        1000.0 / median / 20.0
    );
    Ok(())
}
