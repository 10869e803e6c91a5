//! The four views: axial, coronal, sagittal slices and the 3D rendering.
//! A view turns pointer input into changes of the document (crosshair,
//! window) or of its own camera (zoom, pan, orbit), and emits a paint
//! callback for the renderer plus egui overlays (crosshair, orientation
//! letters).

use super::document::Document;
use crate::render::{
    RayUniforms, SliceUniforms, ViewCallback, ViewDraw, colormap::Colormap, gpu_matrix,
};
use crate::viewmath::{self, Convention, Orbit, SliceAxis, SlicePlane};
use crate::volume::Geometry;
use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};

/// Which view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewId {
    /// A slice view.
    Slice(SliceAxis),
    /// The 3D view.
    ThreeD,
}

impl ViewId {
    /// The four views of the 2×2 layout.
    pub const ALL: [ViewId; 4] = [
        ViewId::Slice(SliceAxis::Axial),
        ViewId::ThreeD,
        ViewId::Slice(SliceAxis::Coronal),
        ViewId::Slice(SliceAxis::Sagittal),
    ];

    /// Stable id for the renderer's per-view uniforms.
    pub fn gpu_id(self, slot: usize) -> u64 {
        let base = match self {
            ViewId::Slice(SliceAxis::Axial) => 1,
            ViewId::Slice(SliceAxis::Coronal) => 2,
            ViewId::Slice(SliceAxis::Sagittal) => 3,
            ViewId::ThreeD => 4,
        };
        base + 16 * slot as u64
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            ViewId::Slice(a) => a.name(),
            ViewId::ThreeD => "3D",
        }
    }
}

/// 3D rendering mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RayMode {
    /// Maximum intensity projection.
    Mip,
    /// Direct volume rendering with an opacity ramp.
    #[default]
    Dvr,
}

/// Camera state of the views (per app, not per document).
#[derive(Debug, Clone)]
pub struct ViewState {
    /// Zoom per slice axis (1 = fit).
    pub zoom: [f64; 3],
    /// Pan per slice axis in mm (screen right, up).
    pub pan_mm: [[f64; 2]; 3],
    /// Left-right convention.
    pub convention: Convention,
    /// Colormap.
    pub colormap: Colormap,
    /// Linear (false) or nearest (true) sampling.
    pub nearest: bool,
    /// 3D camera.
    pub orbit: Orbit,
    /// 3D mode.
    pub ray_mode: RayMode,
    /// DVR opacity scale.
    pub opacity: f32,
    /// Clip the 3D view by the crosshair planes (x, y, z).
    pub clip: [bool; 3],
    /// Show the label overlay.
    pub show_labels: bool,
    /// A maximised view, if any.
    pub maximised: Option<ViewId>,
}

impl Default for ViewState {
    fn default() -> ViewState {
        ViewState {
            zoom: [1.0; 3],
            pan_mm: [[0.0; 2]; 3],
            convention: Convention::Radiological,
            colormap: Colormap::Gray,
            nearest: false,
            orbit: Orbit::default(),
            ray_mode: RayMode::Dvr,
            opacity: 4.0,
            clip: [false; 3],
            show_labels: true,
            maximised: None,
        }
    }
}

/// The grid as uploaded to the GPU (possibly downsampled).
#[derive(Debug, Clone)]
pub struct TexGrid {
    /// Placement of the texture's voxels.
    pub geometry: Geometry,
    /// Texture size.
    pub dims: [usize; 3],
    /// Whether labels are uploaded.
    pub has_labels: bool,
}

/// What a pointer over a view points at, for the status bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hover {
    /// World position (mm).
    pub world_mm: [f64; 3],
}

fn slice_index(axis: SliceAxis) -> usize {
    match axis {
        SliceAxis::Axial => 0,
        SliceAxis::Coronal => 1,
        SliceAxis::Sagittal => 2,
    }
}

/// The plane a slice view currently shows in `rect`.
pub fn plane_for(
    doc: &Document,
    state: &ViewState,
    axis: SliceAxis,
    rect: Rect,
) -> Option<SlicePlane> {
    let layer = doc.layer()?;
    let v = &layer.volume;
    let aspect = f64::from(rect.width() / rect.height().max(1.0));
    let mut plane = viewmath::fit_plane(
        axis,
        state.convention,
        &v.geometry,
        v.dims,
        doc.crosshair_mm,
        aspect,
    );
    let i = slice_index(axis);
    let zoom = state.zoom[i].max(0.05);
    plane.half_extent_mm = plane.half_extent_mm.map(|h| h / zoom);
    let pan = state.pan_mm[i];
    for k in 0..3 {
        plane.center_mm[k] -= pan[0] * plane.right[k] + pan[1] * plane.up[k];
    }
    Some(plane)
}

fn to_screen(rect: Rect, p: Pos2) -> [f64; 2] {
    [
        f64::from((p.x - rect.left()) / rect.width() * 2.0 - 1.0),
        f64::from(1.0 - (p.y - rect.top()) / rect.height() * 2.0),
    ]
}

fn from_screen(rect: Rect, s: [f64; 2]) -> Pos2 {
    Pos2::new(
        rect.left() + ((s[0] + 1.0) / 2.0) as f32 * rect.width(),
        rect.top() + ((1.0 - s[1]) / 2.0) as f32 * rect.height(),
    )
}

/// Draw one slice view and handle its input. Returns what the pointer is over.
#[allow(clippy::too_many_arguments)]
pub fn slice_view_ui(
    ui: &mut egui::Ui,
    rect: Rect,
    axis: SliceAxis,
    doc: &mut Document,
    state: &mut ViewState,
    grid: Option<&TexGrid>,
    slot: usize,
    gpu: bool,
) -> Option<Hover> {
    let id = egui::Id::unique(("ume slice view", axis, slot));
    let response = ui.interact(rect, id, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    let plane = plane_for(doc, state, axis, rect)?;
    let i = slice_index(axis);

    // Input: left click/drag moves the crosshair; right drag windows;
    // middle drag pans; wheel steps slices (ctrl+wheel zooms); double click maximises.
    if let Some(p) = response.interact_pointer_pos()
        && (response.dragged_by(egui::PointerButton::Primary) || response.clicked())
    {
        let w = plane.world_from_screen(to_screen(rect, p));
        let n = axis.normal_axis();
        for (k, (c, wk)) in doc.crosshair_mm.iter_mut().zip(w).enumerate() {
            if k != n {
                *c = wk;
            }
        }
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        let d = response.drag_delta();
        if let Some(layer) = doc.layers.get_mut(doc.active) {
            let (lo, hi) = layer.window;
            let span = (layer.range.1 - layer.range.0).max(1e-9);
            let width = ((hi - lo) + f64::from(d.x) * span / 400.0).max(span * 1e-4);
            let level = (lo + hi) / 2.0 - f64::from(d.y) * span / 400.0;
            layer.window = (level - width / 2.0, level + width / 2.0);
        }
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        let d = response.drag_delta();
        state.pan_mm[i][0] -=
            f64::from(d.x) / f64::from(rect.width()) * 2.0 * plane.half_extent_mm[0];
        state.pan_mm[i][1] +=
            f64::from(d.y) / f64::from(rect.height()) * 2.0 * plane.half_extent_mm[1];
    }
    if response.double_clicked() {
        let me = ViewId::Slice(axis);
        state.maximised = if state.maximised == Some(me) {
            None
        } else {
            Some(me)
        };
    }
    if response.hovered() {
        let (scroll, ctrl, page) = ui.input(|inp| {
            let page = i32::from(
                inp.key_pressed(egui::Key::PageUp) || inp.key_pressed(egui::Key::ArrowUp),
            ) - i32::from(
                inp.key_pressed(egui::Key::PageDown) || inp.key_pressed(egui::Key::ArrowDown),
            );
            (
                inp.smooth_scroll_delta.y,
                inp.modifiers.command || inp.modifiers.ctrl,
                page,
            )
        });
        if ctrl && scroll != 0.0 {
            state.zoom[i] = (state.zoom[i] * f64::from((scroll / 200.0).exp())).clamp(0.1, 50.0);
        } else {
            let steps = if scroll != 0.0 {
                scroll.signum() as i32
            } else {
                page
            };
            if steps != 0
                && let Some(layer) = doc.layer()
            {
                let step = viewmath::slice_step_mm(&layer.volume.geometry, axis);
                let n = axis.normal_axis();
                let (lo, hi) = viewmath::world_bounds(&layer.volume.geometry, layer.volume.dims);
                doc.crosshair_mm[n] =
                    (doc.crosshair_mm[n] + f64::from(steps) * step).clamp(lo[n], hi[n]);
            }
        }
    }

    // Draw: the GPU slice, then overlays.
    let plane = plane_for(doc, state, axis, rect)?;
    if gpu && let Some(grid) = grid {
        if let Some(u) = slice_uniforms(doc, state, &plane, grid, rect, ui.ctx().pixels_per_point())
        {
            painter.add(eframe::egui_wgpu::Callback::new_paint_callback(
                rect,
                ViewCallback {
                    view_id: ViewId::Slice(axis).gpu_id(slot),
                    volume_slot: slot,
                    draw: ViewDraw::Slice(u),
                },
            ));
        }
    } else if !gpu {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no GPU renderer",
            egui::FontId::proportional(14.0),
            Color32::GRAY,
        );
    }
    let c = from_screen(rect, plane.screen_from_world(doc.crosshair_mm));
    let stroke = Stroke::new(1.0, Color32::from_rgb(60, 160, 255));
    let gap = 6.0;
    painter.line_segment(
        [Pos2::new(rect.left(), c.y), Pos2::new(c.x - gap, c.y)],
        stroke,
    );
    painter.line_segment(
        [Pos2::new(c.x + gap, c.y), Pos2::new(rect.right(), c.y)],
        stroke,
    );
    painter.line_segment(
        [Pos2::new(c.x, rect.top()), Pos2::new(c.x, c.y - gap)],
        stroke,
    );
    painter.line_segment(
        [Pos2::new(c.x, c.y + gap), Pos2::new(c.x, rect.bottom())],
        stroke,
    );
    let letters = viewmath::edge_letters(axis, state.convention);
    let font = egui::FontId::proportional(14.0);
    let col = Color32::from_rgb(255, 210, 80);
    painter.text(
        Pos2::new(rect.left() + 4.0, rect.center().y),
        egui::Align2::LEFT_CENTER,
        letters[0],
        font.clone(),
        col,
    );
    painter.text(
        Pos2::new(rect.right() - 4.0, rect.center().y),
        egui::Align2::RIGHT_CENTER,
        letters[1],
        font.clone(),
        col,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.top() + 4.0),
        egui::Align2::CENTER_TOP,
        letters[2],
        font.clone(),
        col,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.bottom() - 4.0),
        egui::Align2::CENTER_BOTTOM,
        letters[3],
        font,
        col,
    );
    let name = if slot > 0 || doc.layers.len() > 1 {
        format!(
            "{} · {}",
            axis.name(),
            doc.layers.get(slot).map_or("", |l| l.name.as_str())
        )
    } else {
        axis.name().to_string()
    };
    painter.text(
        rect.left_top() + Vec2::new(6.0, 6.0),
        egui::Align2::LEFT_TOP,
        name,
        egui::FontId::proportional(13.0),
        Color32::WHITE,
    );

    response.hover_pos().map(|p| Hover {
        world_mm: plane.world_from_screen(to_screen(rect, p)),
    })
}

/// Uniforms of a slice view.
pub fn slice_uniforms(
    doc: &Document,
    state: &ViewState,
    plane: &SlicePlane,
    grid: &TexGrid,
    rect: Rect,
    ppp: f32,
) -> Option<SliceUniforms> {
    let layer = doc.layer()?;
    let m = viewmath::tex_from_screen(plane, &grid.geometry, grid.dims)?;
    let lo = layer.normalise(layer.window.0) as f32;
    let hi = layer.normalise(layer.window.1) as f32;
    let dims = grid.dims.map(|d| d as u32);
    Some(SliceUniforms {
        tex_from_screen: gpu_matrix(&m),
        window: [lo, hi, doc.label_opacity, state.colormap.row() as f32],
        flags: [
            u32::from(doc.outline),
            u32::from(state.nearest),
            u32::from(state.show_labels),
            u32::from(grid.has_labels),
        ],
        dims: [dims[0], dims[1], dims[2], 1],
        screen: [rect.width() * ppp, rect.height() * ppp, 0.0, 0.0],
    })
}

/// Draw the 3D view and handle orbit (left drag) and zoom (wheel).
pub fn three_d_view_ui(
    ui: &mut egui::Ui,
    rect: Rect,
    doc: &Document,
    state: &mut ViewState,
    grid: Option<&TexGrid>,
    gpu: bool,
) {
    let response = ui.interact(
        rect,
        egui::Id::unique("ume 3d view"),
        Sense::click_and_drag(),
    );
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    if response.dragged_by(egui::PointerButton::Primary) {
        let d = response.drag_delta();
        state.orbit.yaw += f64::from(d.x) * 0.01;
        state.orbit.pitch = (state.orbit.pitch + f64::from(d.y) * 0.01).clamp(-1.5, 1.5);
    }
    if response.hovered() {
        let scroll = ui.input(|i| i.smooth_scroll_delta.y);
        if scroll != 0.0 {
            state.orbit.zoom =
                (state.orbit.zoom * f64::from((-scroll / 300.0).exp())).clamp(0.2, 5.0);
        }
    }
    if response.double_clicked() {
        state.maximised = if state.maximised == Some(ViewId::ThreeD) {
            None
        } else {
            Some(ViewId::ThreeD)
        };
    }
    if gpu
        && let (Some(grid), Some(layer)) = (grid, doc.layer())
        && let Some(u) = ray_uniforms(doc, state, grid, layer, rect)
    {
        painter.add(eframe::egui_wgpu::Callback::new_paint_callback(
            rect,
            ViewCallback {
                view_id: ViewId::ThreeD.gpu_id(0),
                volume_slot: 0,
                draw: ViewDraw::Ray(u),
            },
        ));
    }
    let mode = match state.ray_mode {
        RayMode::Mip => "3D · MIP",
        RayMode::Dvr => "3D · DVR",
    };
    painter.text(
        rect.left_top() + Vec2::new(6.0, 6.0),
        egui::Align2::LEFT_TOP,
        mode,
        egui::FontId::proportional(13.0),
        Color32::WHITE,
    );
}

fn ray_uniforms(
    doc: &Document,
    state: &ViewState,
    grid: &TexGrid,
    layer: &super::document::Layer,
    rect: Rect,
) -> Option<RayUniforms> {
    let bounds = viewmath::world_bounds(&grid.geometry, grid.dims);
    let aspect = f64::from(rect.width() / rect.height().max(1.0));
    let wfc = viewmath::orbit_world_from_clip(&state.orbit, bounds, aspect)?;
    let tfw = viewmath::tex_from_world(&grid.geometry, grid.dims)?;
    let c = doc.crosshair_mm;
    let clip_tex: [f64; 3] =
        std::array::from_fn(|r| tfw[r][0] * c[0] + tfw[r][1] * c[1] + tfw[r][2] * c[2] + tfw[r][3]);
    let mask =
        u32::from(state.clip[0]) | u32::from(state.clip[1]) << 1 | u32::from(state.clip[2]) << 2;
    let dims = grid.dims.map(|d| d as u32);
    Some(RayUniforms {
        world_from_clip: gpu_matrix(&wfc),
        tex_from_world: gpu_matrix(&tfw),
        window: [
            layer.normalise(layer.window.0) as f32,
            layer.normalise(layer.window.1) as f32,
            state.opacity,
            state.colormap.row() as f32,
        ],
        params: [
            u32::from(state.ray_mode == RayMode::Dvr),
            u32::from(state.show_labels),
            mask,
            dims.iter().copied().max().unwrap_or(64).clamp(64, 384),
        ],
        clip: [
            clip_tex[0] as f32,
            clip_tex[1] as f32,
            clip_tex[2] as f32,
            1.0,
        ],
        dims: [dims[0], dims[1], dims[2], u32::from(grid.has_labels)],
    })
}
