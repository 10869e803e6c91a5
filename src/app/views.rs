//! The four views: axial, coronal, sagittal slices and the 3D rendering.
//! A view reads the document and never changes it: pointer input becomes
//! [`Intent`]s the app applies (crosshair, window, slice steps) or changes
//! of the view's own [`Camera`] (zoom, pan, orbit); it emits a paint
//! callback for the renderer plus egui overlays (crosshair, orientation
//! letters).

use super::document::Document;
use super::input;
use super::settings::{RayMode, Settings, Tool};
use crate::render::{RayUniforms, SliceUniforms, ViewCallback, ViewDraw, gpu_matrix};
use crate::viewmath::{self, Orbit, SliceAxis, SlicePlane};
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

/// Where the user is in the open case: navigation, neither data (undo
/// and saving ignore it) nor a setting (it belongs to this case).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    /// Crosshair in world mm.
    pub crosshair_mm: [f64; 3],
    /// Current frame (4D).
    pub frame: usize,
    /// Index of the shown layer.
    pub active: usize,
}

impl Cursor {
    /// At the first image's centre, on the case's start frame.
    pub fn for_document(doc: &Document) -> Cursor {
        Cursor {
            crosshair_mm: doc.center_mm(),
            frame: doc.start_frame(),
            active: 0,
        }
    }

    /// Move the crosshair `steps` slices along a view's normal (clamped to
    /// the image).
    pub fn step_slice(&mut self, doc: &Document, axis: SliceAxis, steps: i32) {
        let Some(layer) = doc.layer(self.active) else {
            return;
        };
        let v = &layer.volume;
        self.crosshair_mm =
            viewmath::step_along_normal(axis, &v.geometry, v.dims, self.crosshair_mm, steps);
    }
}

/// Camera state of the views (per window, not persisted).
#[derive(Debug, Clone)]
pub struct Camera {
    /// Zoom per slice axis (1 = fit).
    pub zoom: [f64; 3],
    /// Pan per slice axis in mm (screen right, up).
    pub pan_mm: [[f64; 2]; 3],
    /// 3D camera.
    pub orbit: Orbit,
    /// A maximised view, if any.
    pub maximised: Option<ViewId>,
    /// The slice view the pointer was last over (keyboard slice steps go
    /// there).
    pub focus: SliceAxis,
    /// Wheel travel not yet turned into whole slices (points).
    pub(super) wheel_points: f32,
    /// The stroke being painted: its view (axis, slot) and last world
    /// point.
    pub(super) stroke: Option<(SliceAxis, usize, [f64; 3])>,
    /// The outline being drawn: its view (axis, slot), its vertices
    /// (world), and whether it is a lasso (a drag) rather than clicked
    /// vertices.
    pub polygon: Option<(SliceAxis, usize, Vec<[f64; 3]>, bool)>,
}

impl Default for Camera {
    fn default() -> Camera {
        Camera {
            zoom: [1.0; 3],
            pan_mm: [[0.0; 2]; 3],
            orbit: Orbit::default(),
            maximised: None,
            focus: SliceAxis::Axial,
            wheel_points: 0.0,
            stroke: None,
            polygon: None,
        }
    }
}

/// What input in a view asks for; the app applies it.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Move the crosshair within a slice view's plane to a world point.
    MoveCrosshair(SliceAxis, [f64; 3]),
    /// Change the active layer's window: width and level by these fractions
    /// of its range.
    Window {
        /// Width change.
        width: f64,
        /// Level change.
        level: f64,
    },
    /// Step slices along a view's normal.
    StepSlice(SliceAxis, i32),
    /// Paint (or erase) with the brush from one world point to another in
    /// a slice view (a press paints from a point to itself).
    Paint {
        /// The view painted in.
        axis: SliceAxis,
        /// Last pointer position, world mm.
        from: [f64; 3],
        /// This pointer position, world mm.
        to: [f64; 3],
    },
    /// The stroke ended (one undo step).
    EndStroke,
    /// Make the label under this world point the active label (Ctrl+click).
    PickLabel([f64; 3]),
    /// Flood-fill from a world point in a slice view.
    Fill(SliceAxis, [f64; 3]),
    /// Fill a closed outline drawn in a slice view (world points).
    Polygon(SliceAxis, Vec<[f64; 3]>),
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

/// What a view draws from: the case, where the user is, the settings, the
/// camera and the uploaded grid.
pub struct ViewCtx<'a> {
    /// The case.
    pub doc: &'a Document,
    /// Crosshair, frame, layer.
    pub cursor: &'a Cursor,
    /// Display settings.
    pub settings: &'a Settings,
    /// The GPU grid, when uploaded.
    pub grid: Option<&'a TexGrid>,
    /// Whether a GPU renderer exists.
    pub gpu: bool,
}

/// The plane a slice view currently shows in `rect`.
pub fn plane_for(
    doc: &Document,
    cursor: &Cursor,
    settings: &Settings,
    camera: &Camera,
    axis: SliceAxis,
    rect: Rect,
) -> Option<SlicePlane> {
    let layer = doc.layer(cursor.active).or_else(|| doc.layer(0))?;
    let v = &layer.volume;
    let aspect = f64::from(rect.width() / rect.height().max(1.0));
    let mut plane = viewmath::fit_plane(
        axis,
        settings.convention,
        &v.geometry,
        v.dims,
        cursor.crosshair_mm,
        aspect,
    );
    let i = slice_index(axis);
    let zoom = camera.zoom[i].max(0.05);
    plane.half_extent_mm = plane.half_extent_mm.map(|h| h / zoom);
    let pan = camera.pan_mm[i];
    for k in 0..3 {
        plane.center_mm[k] -= pan[0] * plane.right[k] + pan[1] * plane.up[k];
    }
    Some(plane)
}

/// Screen coordinates ([-1, 1], y up) of a point in a view's rectangle.
pub fn to_screen(rect: Rect, p: Pos2) -> [f64; 2] {
    [
        f64::from((p.x - rect.left()) / rect.width() * 2.0 - 1.0),
        f64::from(1.0 - (p.y - rect.top()) / rect.height() * 2.0),
    ]
}

pub(super) fn from_screen(rect: Rect, s: [f64; 2]) -> Pos2 {
    Pos2::new(
        rect.left() + ((s[0] + 1.0) / 2.0) as f32 * rect.width(),
        rect.top() + ((1.0 - s[1]) / 2.0) as f32 * rect.height(),
    )
}

/// Draw one slice view and turn its input into intents (crosshair, window,
/// slices) or camera changes (zoom, pan, maximise). Returns what the
/// pointer is over.
pub fn slice_view_ui(
    ui: &mut egui::Ui,
    rect: Rect,
    axis: SliceAxis,
    slot: usize,
    view: &ViewCtx,
    camera: &mut Camera,
    intents: &mut Vec<Intent>,
) -> Option<Hover> {
    let doc = view.doc;
    let id = egui::Id::unique(("ume slice view", axis, slot));
    let response = ui.interact(rect, id, Sense::click_and_drag());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    let plane = plane_for(doc, view.cursor, view.settings, camera, axis, rect)?;
    let i = slice_index(axis);

    // Left click/drag moves the crosshair or paints (brush, eraser;
    // Ctrl+click picks the label under the pointer); right drag windows;
    // middle drag pans; wheel steps slices; Ctrl+wheel zooms; double click
    // maximises.
    let painting = matches!(view.settings.tool, Tool::Brush | Tool::Eraser);
    if painting
        && input::paint_input(
            ui,
            &response,
            (rect, &plane),
            (axis, slot),
            view.settings.brush_radius_mm,
            camera,
            intents,
        )
    {
        // The pointer painted (or picked a label).
    } else if view.settings.tool == Tool::Polygon {
        input::polygon_input(ui, &response, rect, &plane, (axis, slot), camera, intents);
    } else if view.settings.tool == Tool::Fill
        && response.clicked_by(egui::PointerButton::Primary)
        && let Some(p) = response.interact_pointer_pos()
    {
        let w = plane.world_from_screen(to_screen(rect, p));
        let ctrl = ui.input(|i| i.modifiers.command || i.modifiers.ctrl);
        intents.push(if ctrl {
            Intent::PickLabel(w)
        } else {
            Intent::Fill(axis, w)
        });
    } else if let Some(p) = response.interact_pointer_pos()
        && (response.dragged_by(egui::PointerButton::Primary) || response.clicked())
    {
        intents.push(Intent::MoveCrosshair(
            axis,
            plane.world_from_screen(to_screen(rect, p)),
        ));
    }
    if response.dragged_by(egui::PointerButton::Secondary) {
        let d = response.drag_delta();
        intents.push(Intent::Window {
            width: f64::from(d.x) / 400.0,
            level: -f64::from(d.y) / 400.0,
        });
    }
    if response.dragged_by(egui::PointerButton::Middle) {
        // The image follows the pointer: the world point under it stays
        // under it.
        let d = response.drag_delta();
        camera.pan_mm[i][0] +=
            f64::from(d.x) / f64::from(rect.width()) * 2.0 * plane.half_extent_mm[0];
        camera.pan_mm[i][1] -=
            f64::from(d.y) / f64::from(rect.height()) * 2.0 * plane.half_extent_mm[1];
    }
    // A double click closes a polygon outline; elsewhere it maximises.
    if response.double_clicked() && view.settings.tool != Tool::Polygon {
        toggle_maximised(camera, ViewId::Slice(axis));
    }
    if response.hovered() {
        camera.focus = axis;
        let (notches, zoom) = ui.input(|inp| {
            (
                input::wheel_notches(inp, &mut camera.wheel_points),
                inp.zoom_delta(),
            )
        });
        if zoom != 1.0 {
            camera.zoom[i] = (camera.zoom[i] * f64::from(zoom)).clamp(0.1, 50.0);
        }
        if notches != 0 {
            intents.push(Intent::StepSlice(axis, notches));
        }
    }

    // Draw: the GPU slice, then overlays.
    let plane = plane_for(doc, view.cursor, view.settings, camera, axis, rect)?;
    if view.gpu
        && let Some(grid) = view.grid
    {
        if let Some(u) = slice_uniforms(view, &plane, grid, rect, ui.ctx().pixels_per_point()) {
            painter.add(eframe::egui_wgpu::Callback::new_paint_callback(
                rect,
                ViewCallback {
                    view_id: ViewId::Slice(axis).gpu_id(slot),
                    volume_slot: slot,
                    draw: ViewDraw::Slice(u),
                },
            ));
        }
    } else if !view.gpu {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no GPU renderer",
            egui::FontId::proportional(14.0),
            Color32::GRAY,
        );
    }
    draw_crosshair(
        &painter,
        rect,
        from_screen(rect, plane.screen_from_world(view.cursor.crosshair_mm)),
    );
    draw_letters(&painter, rect, viewmath::letters_of(plane.right, plane.up));
    input::draw_polygon(&painter, (rect, &plane), (axis, slot), camera);
    let name = if slot > 0 || doc.layers().len() > 1 {
        format!(
            "{} · {}",
            axis.name(),
            doc.layer(slot).map_or("", |l| l.name.as_str())
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

fn toggle_maximised(camera: &mut Camera, me: ViewId) {
    camera.maximised = if camera.maximised == Some(me) {
        None
    } else {
        Some(me)
    };
}

fn draw_crosshair(painter: &egui::Painter, rect: Rect, c: Pos2) {
    let stroke = Stroke::new(1.0, Color32::from_rgb(60, 160, 255));
    let gap = 6.0;
    for seg in [
        [Pos2::new(rect.left(), c.y), Pos2::new(c.x - gap, c.y)],
        [Pos2::new(c.x + gap, c.y), Pos2::new(rect.right(), c.y)],
        [Pos2::new(c.x, rect.top()), Pos2::new(c.x, c.y - gap)],
        [Pos2::new(c.x, c.y + gap), Pos2::new(c.x, rect.bottom())],
    ] {
        painter.line_segment(seg, stroke);
    }
}

fn draw_letters(painter: &egui::Painter, rect: Rect, letters: [char; 4]) {
    let font = egui::FontId::proportional(14.0);
    let col = Color32::from_rgb(255, 210, 80);
    let places = [
        (
            Pos2::new(rect.left() + 4.0, rect.center().y),
            egui::Align2::LEFT_CENTER,
        ),
        (
            Pos2::new(rect.right() - 4.0, rect.center().y),
            egui::Align2::RIGHT_CENTER,
        ),
        (
            Pos2::new(rect.center().x, rect.top() + 4.0),
            egui::Align2::CENTER_TOP,
        ),
        (
            Pos2::new(rect.center().x, rect.bottom() - 4.0),
            egui::Align2::CENTER_BOTTOM,
        ),
    ];
    for ((pos, align), letter) in places.into_iter().zip(letters) {
        painter.text(pos, align, letter.to_string(), font.clone(), col);
    }
}

/// Uniforms of a slice view.
pub fn slice_uniforms(
    view: &ViewCtx,
    plane: &SlicePlane,
    grid: &TexGrid,
    rect: Rect,
    ppp: f32,
) -> Option<SliceUniforms> {
    let layer = view.doc.layer(view.cursor.active)?;
    let window = view
        .settings
        .windows
        .get(view.cursor.active)
        .copied()
        .unwrap_or(layer.auto_window);
    let m = viewmath::tex_from_screen(plane, &grid.geometry, grid.dims)?;
    let lo = layer.normalise(window.0) as f32;
    let hi = layer.normalise(window.1) as f32;
    let dims = grid.dims.map(|d| d as u32);
    let s = view.settings;
    Some(SliceUniforms {
        tex_from_screen: gpu_matrix(&m),
        window: [lo, hi, s.label_opacity, s.colormap.row() as f32],
        flags: [
            u32::from(s.outline),
            u32::from(s.nearest),
            u32::from(s.show_labels),
            u32::from(grid.has_labels),
        ],
        dims: [dims[0], dims[1], dims[2], 1],
        screen: [rect.width() * ppp, rect.height() * ppp, 0.0, 0.0],
    })
}

/// Draw the 3D view and handle orbit (left drag) and zoom (wheel).
pub fn three_d_view_ui(ui: &mut egui::Ui, rect: Rect, view: &ViewCtx, camera: &mut Camera) {
    let response = ui.interact(
        rect,
        egui::Id::unique("ume 3d view"),
        Sense::click_and_drag(),
    );
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    if response.dragged_by(egui::PointerButton::Primary) {
        let d = response.drag_delta();
        camera.orbit.yaw += f64::from(d.x) * 0.01;
        camera.orbit.pitch = (camera.orbit.pitch + f64::from(d.y) * 0.01).clamp(-1.5, 1.5);
    }
    if response.hovered() {
        let (notches, zoom) = ui.input(|i| {
            (
                input::wheel_notches(i, &mut camera.wheel_points),
                i.zoom_delta(),
            )
        });
        let factor = 0.9f64.powi(notches) / f64::from(zoom);
        if factor != 1.0 {
            camera.orbit.zoom = (camera.orbit.zoom * factor).clamp(0.2, 5.0);
        }
    }
    if response.double_clicked() {
        toggle_maximised(camera, ViewId::ThreeD);
    }
    if view.gpu
        && let (Some(grid), Some(layer)) = (view.grid, view.doc.layer(view.cursor.active))
        && let Some(u) = ray_uniforms(view, camera, grid, layer, rect)
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
    let mode = match view.settings.ray_mode {
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
    view: &ViewCtx,
    camera: &Camera,
    grid: &TexGrid,
    layer: &super::document::Layer,
    rect: Rect,
) -> Option<RayUniforms> {
    let s = view.settings;
    let bounds = viewmath::world_bounds(&grid.geometry, grid.dims);
    let aspect = f64::from(rect.width() / rect.height().max(1.0));
    let wfc = viewmath::orbit_world_from_clip(&camera.orbit, bounds, aspect)?;
    let tfw = viewmath::tex_from_world(&grid.geometry, grid.dims)?;
    let c = view.cursor.crosshair_mm;
    let clip_tex: [f64; 3] =
        std::array::from_fn(|r| tfw[r][0] * c[0] + tfw[r][1] * c[1] + tfw[r][2] * c[2] + tfw[r][3]);
    let mask = u32::from(s.clip[0]) | u32::from(s.clip[1]) << 1 | u32::from(s.clip[2]) << 2;
    let dims = grid.dims.map(|d| d as u32);
    let window = s
        .windows
        .get(view.cursor.active)
        .copied()
        .unwrap_or(layer.auto_window);
    Some(RayUniforms {
        world_from_clip: gpu_matrix(&wfc),
        tex_from_world: gpu_matrix(&tfw),
        window: [
            layer.normalise(window.0) as f32,
            layer.normalise(window.1) as f32,
            s.volume_opacity,
            s.colormap.row() as f32,
        ],
        params: [
            u32::from(s.ray_mode == RayMode::Dvr),
            u32::from(s.show_labels),
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
