//! The wgpu renderer: slice views and the 3D ray caster, drawn by our own
//! WGSL shaders (`shaders/`). It knows nothing about the viewer: it holds
//! GPU textures (the current frame's intensities as R16Float normalised to
//! the volume's range, labels as R8Uint/R16Uint read with `textureLoad`, a
//! label palette and the colormaps) and one uniform buffer per view, and it
//! draws a view into whatever render pass it is given: egui's (through a
//! paint callback) or an off-screen texture (tests, exports).
//!
//! All `prepare` calls of a frame happen before any `paint`, so each view
//! owns its uniform buffer and views never overwrite each other's uniforms.

pub mod colormap;
pub mod cpu;
mod half;

pub use half::{f16_bits, f16_to_f32};

use bytemuck::{Pod, Zeroable};
use eframe::egui_wgpu;
use std::collections::HashMap;

/// Uniforms of one slice view. Keep in sync with `slice.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct SliceUniforms {
    /// Normalised screen (x, y, 0, 1) → texture coordinates; column-major.
    pub tex_from_screen: [[f32; 4]; 4],
    /// Window low/high (normalised intensity), label opacity, colormap row.
    pub window: [f32; 4],
    /// Outline labels, nearest sampling, show labels, has labels.
    pub flags: [u32; 4],
    /// Label grid dims, has volume.
    pub dims: [u32; 4],
    /// Viewport size in pixels.
    pub screen: [f32; 4],
}
const _: () = assert!(std::mem::size_of::<SliceUniforms>() == 128);

/// Uniforms of the 3D view. Keep in sync with `raycast.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, PartialEq)]
pub struct RayUniforms {
    /// Clip space → world mm (inverse view-projection); column-major.
    pub world_from_clip: [[f32; 4]; 4],
    /// World mm → texture coordinates; column-major.
    pub tex_from_world: [[f32; 4]; 4],
    /// Window low/high (normalised), opacity scale, colormap row.
    pub window: [f32; 4],
    /// Mode (0 MIP, 1 DVR), show labels, clip mask, steps.
    pub params: [u32; 4],
    /// Crosshair in texture space, has volume.
    pub clip: [f32; 4],
    /// Label grid dims, has labels.
    pub dims: [u32; 4],
}
const _: () = assert!(std::mem::size_of::<RayUniforms>() == 192);

/// Convert a row-major f64 matrix to the column-major f32 layout of WGSL.
pub fn gpu_matrix(m: &[[f64; 4]; 4]) -> [[f32; 4]; 4] {
    std::array::from_fn(|c| std::array::from_fn(|r| m[r][c] as f32))
}

/// What a view draws.
#[derive(Debug, Clone, Copy)]
pub enum ViewDraw {
    /// A slice.
    Slice(SliceUniforms),
    /// The 3D rendering.
    Ray(RayUniforms),
}

struct ViewSlot {
    buffer: wgpu::Buffer,
    bind_group: Option<wgpu::BindGroup>,
    generation: u64,
    is_ray: bool,
    volume_slot: usize,
}

/// Label ids for upload.
pub enum LabelUpload<'a> {
    /// Ids up to 255.
    U8(&'a [u8]),
    /// Ids up to 65535.
    U16(&'a [u16]),
}

/// GPU state of the renderer.
pub struct Renderer {
    slice_pipeline: wgpu::RenderPipeline,
    ray_pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    sampler: wgpu::Sampler,
    /// One intensity texture per slot (a modality each, for side-by-side views).
    volumes: Vec<wgpu::Texture>,
    labels: wgpu::Texture,
    palette: wgpu::Texture,
    colormaps: wgpu::Texture,
    views: HashMap<u64, ViewSlot>,
    /// Bumped whenever a texture is replaced, so bind groups are rebuilt.
    generation: u64,
    /// Largest 3D texture side the device accepts.
    pub max_texture_3d: u32,
}

fn texture_3d(
    device: &wgpu::Device,
    label: &str,
    dims: [u32; 3],
    format: wgpu::TextureFormat,
) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: dims[0].max(1),
            height: dims[1].max(1),
            depth_or_array_layers: dims[2].max(1),
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

fn texture_2d(device: &wgpu::Device, label: &str, size: [u32; 2]) -> wgpu::Texture {
    device.create_texture(&wgpu::TextureDescriptor {
        label: Some(label),
        size: wgpu::Extent3d {
            width: size[0],
            height: size[1],
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Rgba8Unorm,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    })
}

fn write_3d(
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
    dims: [u32; 3],
    bytes_per_voxel: u32,
    data: &[u8],
) {
    queue.write_texture(
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        data,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(dims[0] * bytes_per_voxel),
            rows_per_image: Some(dims[1]),
        },
        wgpu::Extent3d {
            width: dims[0],
            height: dims[1],
            depth_or_array_layers: dims[2],
        },
    );
}

fn write_2d(queue: &wgpu::Queue, texture: &wgpu::Texture, size: [u32; 2], rgba: &[u8]) {
    write_3d(queue, texture, [size[0], size[1], 1], 4, rgba);
}

/// The slice shader as compiled: `common.wgsl` followed by `slice.wgsl`
/// (WGSL has no includes; module-scope declarations may come in any order).
pub const SLICE_WGSL: &str = concat!(
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/slice.wgsl")
);
/// The ray-casting shader: `common.wgsl` followed by `raycast.wgsl`.
pub const RAYCAST_WGSL: &str = concat!(
    include_str!("../../shaders/common.wgsl"),
    include_str!("../../shaders/raycast.wgsl")
);

impl Renderer {
    /// Build pipelines for views drawn into `target_format`.
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        target_format: wgpu::TextureFormat,
    ) -> Renderer {
        let tex_entry = |binding, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: if binding == 1 || binding == 3 {
                    wgpu::TextureViewDimension::D3
                } else {
                    wgpu::TextureViewDimension::D2
                },
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("ume view"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                tex_entry(1, wgpu::TextureSampleType::Float { filterable: true }),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Sampler(wgpu::SamplerBindingType::Filtering),
                    count: None,
                },
                tex_entry(3, wgpu::TextureSampleType::Uint),
                tex_entry(4, wgpu::TextureSampleType::Float { filterable: false }),
                tex_entry(5, wgpu::TextureSampleType::Float { filterable: false }),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("ume view"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |name: &str, source: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                vertex: wgpu::VertexState {
                    module: &module,
                    entry_point: Some("vs_main"),
                    buffers: &[],
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                },
                primitive: wgpu::PrimitiveState::default(),
                depth_stencil: None,
                multisample: wgpu::MultisampleState::default(),
                fragment: Some(wgpu::FragmentState {
                    module: &module,
                    entry_point: Some("fs_main"),
                    targets: &[Some(wgpu::ColorTargetState {
                        format: target_format,
                        blend: None,
                        write_mask: wgpu::ColorWrites::ALL,
                    })],
                    compilation_options: wgpu::PipelineCompilationOptions::default(),
                }),
                multiview_mask: None,
                cache: None,
            })
        };
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor {
            label: Some("ume volume"),
            address_mode_u: wgpu::AddressMode::ClampToEdge,
            address_mode_v: wgpu::AddressMode::ClampToEdge,
            address_mode_w: wgpu::AddressMode::ClampToEdge,
            mag_filter: wgpu::FilterMode::Linear,
            min_filter: wgpu::FilterMode::Linear,
            ..Default::default()
        });
        let colormaps = texture_2d(
            device,
            "ume colormaps",
            [256, colormap::Colormap::ALL.len() as u32],
        );
        write_2d(
            queue,
            &colormaps,
            [256, colormap::Colormap::ALL.len() as u32],
            &colormap::table_rgba(),
        );
        let palette = texture_2d(device, "ume palette", [256, 256]);
        write_2d(queue, &palette, [256, 256], &vec![0u8; 256 * 256 * 4]);
        Renderer {
            slice_pipeline: pipeline("ume slice", SLICE_WGSL),
            ray_pipeline: pipeline("ume raycast", RAYCAST_WGSL),
            layout,
            sampler,
            volumes: vec![texture_3d(
                device,
                "ume volume",
                [1, 1, 1],
                wgpu::TextureFormat::R16Float,
            )],
            labels: texture_3d(device, "ume labels", [1, 1, 1], wgpu::TextureFormat::R8Uint),
            palette,
            colormaps,
            views: HashMap::new(),
            generation: 1,
            max_texture_3d: device.limits().max_texture_dimension_3d,
        }
    }

    /// Upload one frame of intensities (f16 bits, normalised to [0, 1])
    /// into volume slot `slot`.
    pub fn set_volume(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        slot: usize,
        dims: [u32; 3],
        f16: &[u16],
    ) {
        while self.volumes.len() <= slot {
            self.volumes.push(texture_3d(
                device,
                "ume volume",
                [1, 1, 1],
                wgpu::TextureFormat::R16Float,
            ));
        }
        let size = self.volumes[slot].size();
        if [size.width, size.height, size.depth_or_array_layers] != dims {
            self.volumes[slot] =
                texture_3d(device, "ume volume", dims, wgpu::TextureFormat::R16Float);
            self.generation += 1;
        }
        write_3d(
            queue,
            &self.volumes[slot],
            dims,
            2,
            bytemuck::cast_slice(f16),
        );
    }

    /// Upload a label map (one frame).
    pub fn set_labels(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        dims: [u32; 3],
        ids: LabelUpload<'_>,
    ) {
        let (format, bytes, bpv): (_, &[u8], u32) = match ids {
            LabelUpload::U8(d) => (wgpu::TextureFormat::R8Uint, d, 1),
            LabelUpload::U16(d) => (wgpu::TextureFormat::R16Uint, bytemuck::cast_slice(d), 2),
        };
        let size = self.labels.size();
        if [size.width, size.height, size.depth_or_array_layers] != dims
            || self.labels.format() != format
        {
            self.labels = texture_3d(device, "ume labels", dims, format);
            self.generation += 1;
        }
        write_3d(queue, &self.labels, dims, bpv, bytes);
    }

    /// Write a box of the label texture (a brush stroke's changed voxels):
    /// `origin` and `dims` in voxels, `ids` the box's ids (x fastest).
    /// Returns `false`, writing nothing, when the texture is not the size
    /// given or not of that id width: the caller uploads the whole frame.
    pub fn update_labels(
        &mut self,
        queue: &wgpu::Queue,
        texture_dims: [u32; 3],
        origin: [u32; 3],
        dims: [u32; 3],
        ids: LabelUpload<'_>,
    ) -> bool {
        let (format, bytes, bpv): (_, &[u8], u32) = match ids {
            LabelUpload::U8(d) => (wgpu::TextureFormat::R8Uint, d, 1),
            LabelUpload::U16(d) => (wgpu::TextureFormat::R16Uint, bytemuck::cast_slice(d), 2),
        };
        let size = self.labels.size();
        let fits = (0..3).all(|k| origin[k] + dims[k] <= texture_dims[k]);
        if [size.width, size.height, size.depth_or_array_layers] != texture_dims
            || self.labels.format() != format
            || !fits
            || bytes.len() != (dims[0] * dims[1] * dims[2] * bpv) as usize
        {
            return false;
        }
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.labels,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: origin[0],
                    y: origin[1],
                    z: origin[2],
                },
                aspect: wgpu::TextureAspect::All,
            },
            bytes,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(dims[0] * bpv),
                rows_per_image: Some(dims[1]),
            },
            wgpu::Extent3d {
                width: dims[0],
                height: dims[1],
                depth_or_array_layers: dims[2],
            },
        );
        true
    }

    /// Upload the label palette: RGBA per id (alpha 0 hides a label).
    pub fn set_palette(&mut self, queue: &wgpu::Queue, rgba: &[[u8; 4]]) {
        let mut data = vec![0u8; 256 * 256 * 4];
        for (i, c) in rgba.iter().take(65536).enumerate() {
            data[i * 4..i * 4 + 4].copy_from_slice(c);
        }
        write_2d(queue, &self.palette, [256, 256], &data);
    }

    /// Write a view's uniforms (call for every view before painting any);
    /// the view samples volume slot `volume_slot`.
    pub fn prepare(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        view_id: u64,
        volume_slot: usize,
        draw: &ViewDraw,
    ) {
        let volume_slot = volume_slot.min(self.volumes.len() - 1);
        let (bytes, is_ray): (&[u8], bool) = match draw {
            ViewDraw::Slice(u) => (bytemuck::bytes_of(u), false),
            ViewDraw::Ray(u) => (bytemuck::bytes_of(u), true),
        };
        let slot = self.views.entry(view_id).or_insert_with(|| ViewSlot {
            buffer: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ume view uniforms"),
                size: 192,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            bind_group: None,
            generation: 0,
            is_ray,
            volume_slot,
        });
        slot.is_ray = is_ray;
        if slot.volume_slot != volume_slot {
            slot.volume_slot = volume_slot;
            slot.bind_group = None;
        }
        queue.write_buffer(&slot.buffer, 0, bytes);
        if slot.generation != self.generation || slot.bind_group.is_none() {
            let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
            let (v, l, p, c) = (
                view(&self.volumes[volume_slot]),
                view(&self.labels),
                view(&self.palette),
                view(&self.colormaps),
            );
            slot.bind_group = Some(device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("ume view"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: slot.buffer.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&v),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::Sampler(&self.sampler),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::TextureView(&l),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: wgpu::BindingResource::TextureView(&p),
                    },
                    wgpu::BindGroupEntry {
                        binding: 5,
                        resource: wgpu::BindingResource::TextureView(&c),
                    },
                ],
            }));
            slot.generation = self.generation;
        }
    }

    /// Draw a prepared view into the pass (its viewport already set).
    pub fn paint(&self, pass: &mut wgpu::RenderPass<'_>, view_id: u64) {
        let Some(slot) = self.views.get(&view_id) else {
            return;
        };
        let Some(bind_group) = &slot.bind_group else {
            return;
        };
        pass.set_pipeline(if slot.is_ray {
            &self.ray_pipeline
        } else {
            &self.slice_pipeline
        });
        pass.set_bind_group(0, bind_group, &[]);
        pass.draw(0..3, 0..1);
    }

    /// Render one view off-screen into an RGBA8 image of `size` pixels
    /// (the renderer must have been built for `Rgba8Unorm`).
    pub fn render_to_rgba(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        draw: &ViewDraw,
        size: [u32; 2],
    ) -> Vec<u8> {
        const OFFSCREEN: u64 = u64::MAX;
        self.prepare(device, queue, OFFSCREEN, 0, draw);
        let target = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("ume offscreen"),
            size: wgpu::Extent3d {
                width: size[0],
                height: size[1],
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let view = target.create_view(&wgpu::TextureViewDescriptor::default());
        let row = (size[0] * 4).div_ceil(256) * 256;
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("ume readback"),
            size: u64::from(row * size[1]),
            usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("ume offscreen"),
        });
        {
            let mut pass = clear_pass(&mut encoder, &view).forget_lifetime();
            self.paint(&mut pass, OFFSCREEN);
        }
        encoder.copy_texture_to_buffer(
            wgpu::TexelCopyTextureInfo {
                texture: &target,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            wgpu::TexelCopyBufferInfo {
                buffer: &buffer,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row),
                    rows_per_image: Some(size[1]),
                },
            },
            wgpu::Extent3d {
                width: size[0],
                height: size[1],
                depth_or_array_layers: 1,
            },
        );
        queue.submit([encoder.finish()]);
        let slice = buffer.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        let _ = device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        });
        let mut out = Vec::with_capacity((size[0] * size[1] * 4) as usize);
        if let Ok(mapped) = slice.get_mapped_range() {
            for y in 0..size[1] as usize {
                let start = y * row as usize;
                out.extend_from_slice(&mapped[start..start + size[0] as usize * 4]);
            }
        }
        buffer.unmap();
        out
    }
}

/// A render pass into `view` that clears it to black first (off-screen
/// renders and benchmarks).
pub fn clear_pass<'e>(
    encoder: &'e mut wgpu::CommandEncoder,
    view: &wgpu::TextureView,
) -> wgpu::RenderPass<'e> {
    encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
        label: Some("ume clear pass"),
        color_attachments: &[Some(wgpu::RenderPassColorAttachment {
            view,
            depth_slice: None,
            resolve_target: None,
            ops: wgpu::Operations {
                load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                store: wgpu::StoreOp::Store,
            },
        })],
        ..Default::default()
    })
}

/// An egui paint callback that draws one view with the [`Renderer`] stored
/// in egui-wgpu's callback resources.
pub struct ViewCallback {
    /// Stable id of the view (one uniform buffer each).
    pub view_id: u64,
    /// Volume slot sampled.
    pub volume_slot: usize,
    /// What to draw.
    pub draw: ViewDraw,
}

impl egui_wgpu::CallbackTrait for ViewCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(r) = resources.get_mut::<Renderer>() {
            r.prepare(device, queue, self.view_id, self.volume_slot, &self.draw);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: eframe::egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        if let Some(r) = resources.get::<Renderer>() {
            r.paint(pass, self.view_id);
        }
    }
}

/// A headless device for tests and exports: the first adapter wgpu offers
/// (lavapipe on machines without a GPU).
pub fn headless_device() -> Result<(wgpu::Device, wgpu::Queue, String), String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .map_err(|e| {
                format!("no wgpu adapter: {e} (install mesa-vulkan-drivers for a software one)")
            })?;
    let name = adapter.get_info().name;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("ume headless"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| format!("wgpu device: {e}"))?;
    Ok((device, queue, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(name: &str, source: &str) {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }

    #[test]
    fn shaders_parse_and_validate() {
        validate("slice.wgsl", SLICE_WGSL);
        validate("raycast.wgsl", RAYCAST_WGSL);
    }

    #[test]
    fn matrices_are_column_major() {
        let mut m = [[0.0; 4]; 4];
        m[0][3] = 7.0; // row 0, column 3: translation x
        assert_eq!(gpu_matrix(&m)[3][0], 7.0);
    }
}
