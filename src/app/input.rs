//! Pointer input in a slice view turned into intents: the wheel counted in
//! notches (one notch, one slice), brush strokes (press, moves, release),
//! and polygon outlines (clicked vertices or a dragged lasso).

use super::views::{Camera, Intent, from_screen, to_screen};
use crate::viewmath::{SliceAxis, SlicePlane};
use eframe::egui::{self, Color32, Pos2, Rect, Stroke};

/// Points of smooth (touchpad) scrolling that count as one wheel notch.
const POINTS_PER_NOTCH: f32 = 50.0;

/// Whole wheel notches in this frame's raw wheel events (Ctrl/Cmd+wheel is
/// zoom, not counted). A notch is one line; smooth scrolling adds up points
/// in `carry` until they make a notch. Raw events, not egui's smoothed
/// delta, which spreads one notch over several frames (one notch moved
/// about four slices).
pub(super) fn wheel_notches(input: &egui::InputState, carry: &mut f32) -> i32 {
    for e in &input.events {
        if let egui::Event::MouseWheel {
            unit,
            delta,
            modifiers,
            ..
        } = e
        {
            if modifiers.ctrl || modifiers.command {
                continue;
            }
            *carry += match unit {
                egui::MouseWheelUnit::Line => delta.y * POINTS_PER_NOTCH,
                egui::MouseWheelUnit::Page => delta.y * POINTS_PER_NOTCH * 10.0,
                egui::MouseWheelUnit::Point => delta.y,
            };
        }
    }
    let notches = (*carry / POINTS_PER_NOTCH).trunc();
    *carry -= notches * POINTS_PER_NOTCH;
    notches as i32
}

/// Brush input in a slice view: press starts a stroke, moves extend it,
/// release ends it; Ctrl+click picks the label under the pointer. Returns
/// whether the left button was used here.
///
/// The frame's pointer events are replayed in order, not sampled once a
/// frame: on a slow frame (software rendering, a big volume) a fast stroke
/// delivers several moves, and a quick click its press and release, within
/// one frame. Sampling drew a corner-cutting chord instead of the path and
/// ran two clicks together into one undo step.
pub(super) fn paint_input(
    ui: &egui::Ui,
    response: &egui::Response,
    (rect, plane): (Rect, &SlicePlane),
    (axis, slot): (SliceAxis, usize),
    brush_mm: f64,
    camera: &mut Camera,
    intents: &mut Vec<Intent>,
) -> bool {
    let world = |p: Pos2| plane.world_from_screen(to_screen(rect, p));
    // Moves shorter than a quarter of the brush add nothing a capsule to
    // the next one does not cover; a fast mouse on a slow frame sends
    // dozens, each a pass over the brush's box.
    let min_step_mm = brush_mm / 4.0;
    let ours = |camera: &Camera| {
        camera
            .stroke
            .is_some_and(|(a, s, _)| a == axis && s == slot)
    };
    // The view is what egui has under the pointer or gave the press (not a
    // panel's resize handle reaching over its edge, not a window above
    // it), and the press fell inside it.
    let pressed_here =
        response.hovered() || response.is_pointer_button_down_on() || response.clicked();
    let on_view = |p: Pos2| {
        pressed_here
            && rect.contains(p)
            && ui
                .ctx()
                .layer_id_at(p)
                .is_none_or(|l| l == response.layer_id)
    };
    let events = ui.input(|i| i.events.clone());
    let mut used = false;
    for event in events {
        match event {
            egui::Event::PointerButton {
                pos,
                button: egui::PointerButton::Primary,
                pressed: true,
                modifiers,
            } if on_view(pos) => {
                used = true;
                // Any stroke still open (this view's or another's) ends
                // here, so two strokes are never one undo step.
                if camera.stroke.is_some() {
                    intents.push(Intent::EndStroke);
                    camera.stroke = None;
                }
                if modifiers.command || modifiers.ctrl {
                    intents.push(Intent::PickLabel(world(pos)));
                    continue;
                }
                let w = world(pos);
                intents.push(Intent::Paint {
                    axis,
                    from: w,
                    to: w,
                });
                camera.stroke = Some((axis, slot, w));
            }
            egui::Event::PointerMoved(pos) if ours(camera) => {
                used = true;
                extend_stroke(camera, world(pos), min_step_mm, intents);
            }
            egui::Event::PointerButton {
                pos,
                button: egui::PointerButton::Primary,
                pressed: false,
                ..
            } if ours(camera) => {
                used = true;
                extend_stroke(camera, world(pos), 0.0, intents);
                intents.push(Intent::EndStroke);
                camera.stroke = None;
            }
            _ => {}
        }
    }
    // A release the view never saw (outside the window) still ends it.
    if ours(camera) && !ui.input(|i| i.pointer.primary_down()) {
        intents.push(Intent::EndStroke);
        camera.stroke = None;
    }
    used || ours(camera)
}

/// Paint from the stroke's last point to `w` and move it there, unless it
/// is closer than `min_step_mm`.
fn extend_stroke(camera: &mut Camera, w: [f64; 3], min_step_mm: f64, intents: &mut Vec<Intent>) {
    let Some((axis, slot, last)) = camera.stroke else {
        return;
    };
    let d2: f64 = (0..3).map(|i| (w[i] - last[i]).powi(2)).sum();
    if w != last && d2 >= min_step_mm * min_step_mm {
        intents.push(Intent::Paint {
            axis,
            from: last,
            to: w,
        });
        camera.stroke = Some((axis, slot, w));
    }
}

/// Polygon input: clicks add vertices (a double click, or a click near
/// the first vertex, closes the outline); a drag draws a lasso, closed on
/// release; Escape drops it. The outline is drawn over the view.
pub(super) fn polygon_input(
    ui: &egui::Ui,
    response: &egui::Response,
    rect: Rect,
    plane: &SlicePlane,
    (axis, slot): (SliceAxis, usize),
    camera: &mut Camera,
    intents: &mut Vec<Intent>,
) {
    let world = |p: Pos2| plane.world_from_screen(to_screen(rect, p));
    let screen = |w: [f64; 3]| from_screen(rect, plane.screen_from_world(w));
    if ui.input(|i| i.key_pressed(egui::Key::Escape)) {
        camera.polygon = None;
    }
    let ours = camera
        .polygon
        .as_ref()
        .is_some_and(|(a, s, _, _)| (*a, *s) == (axis, slot));
    let pos = response.interact_pointer_pos();
    if response.drag_started_by(egui::PointerButton::Primary)
        && let Some(p) = pos
    {
        camera.polygon = Some((axis, slot, vec![world(p)], true));
    } else if response.dragged_by(egui::PointerButton::Primary)
        && ours
        && let (Some(p), Some((_, _, pts, true))) = (pos, camera.polygon.as_mut())
        && pts.last().is_none_or(|l| screen(*l).distance(p) > 3.0)
    {
        pts.push(world(p));
    } else if response.drag_stopped_by(egui::PointerButton::Primary) && ours {
        if let Some((_, _, pts, true)) = camera.polygon.take()
            && pts.len() >= 3
        {
            intents.push(Intent::Polygon(axis, pts));
        }
    } else if response.clicked_by(egui::PointerButton::Primary)
        && let Some(p) = pos
    {
        let pts = match camera.polygon.as_mut() {
            Some((a, s, pts, false)) if (*a, *s) == (axis, slot) => pts,
            _ => {
                camera.polygon = Some((axis, slot, Vec::new(), false));
                &mut camera.polygon.as_mut().expect("just set").2
            }
        };
        let closes =
            pts.len() >= 3 && (response.double_clicked() || screen(pts[0]).distance(p) < 8.0);
        if closes {
            let (_, _, pts, _) = camera.polygon.take().expect("open outline");
            intents.push(Intent::Polygon(axis, pts));
        } else {
            pts.push(world(p));
        }
    }
}

/// The open outline of a polygon over its view, drawn after the slice
/// (drawn before it, the GPU slice covered it: the vertices were
/// invisible while clicking them).
pub(super) fn draw_polygon(
    painter: &egui::Painter,
    (rect, plane): (Rect, &SlicePlane),
    (axis, slot): (SliceAxis, usize),
    camera: &Camera,
) {
    if let Some((a, s, pts, _)) = &camera.polygon
        && (*a, *s) == (axis, slot)
    {
        let screen = |w: [f64; 3]| from_screen(rect, plane.screen_from_world(w));
        let line: Vec<Pos2> = pts.iter().map(|w| screen(*w)).collect();
        painter.add(egui::Shape::line(
            line.clone(),
            Stroke::new(1.5, Color32::from_rgb(255, 220, 0)),
        ));
        for p in line {
            painter.circle_filled(p, 2.5, Color32::from_rgb(255, 220, 0));
        }
    }
}
