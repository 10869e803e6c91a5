//! The slice strip: the crosshair's slice along the models' slicing axis
//! (z) as a slider, with which slices are labelled under it (painted,
//! marked done with D, or read whole from a file) — what fine-tuning will
//! learn from — and, when a model has ranked them, its "label next" scores
//! as a curve above and the best ones as a list that jumps there.

use super::UmeApp;
use super::document::SliceState;
use eframe::egui;

/// The crosshair's z slice and the slice count, on the first image's grid.
pub fn crosshair_z(app: &UmeApp) -> Option<(usize, usize)> {
    let v = &app.doc.as_ref()?.layer(0)?.volume;
    let [_, _, z] = crate::viewmath::voxel_at(&v.geometry, v.dims, app.cursor.crosshair_mm)?;
    Some((z, v.dims[2]))
}

/// Move the crosshair to slice `z`, keeping its place in the slice.
pub fn go_to_slice(app: &mut UmeApp, z: usize) {
    let Some(v) = app
        .doc
        .as_ref()
        .and_then(|d| d.layer(0))
        .map(|l| l.volume.clone())
    else {
        return;
    };
    let [i, j, _] = crate::viewmath::voxel_at(&v.geometry, v.dims, app.cursor.crosshair_mm)
        .unwrap_or([v.dims[0] / 2, v.dims[1] / 2, 0]);
    let z = z.min(v.dims[2].saturating_sub(1));
    app.cursor.crosshair_mm = v.geometry.world_from_index([i as f64, j as f64, z as f64]);
}

/// D: mark the crosshair's slice done, or take the mark back.
pub fn toggle_done(app: &mut UmeApp) {
    let Some((z, _)) = crosshair_z(app) else {
        return;
    };
    let frame = app.cursor.frame;
    let Some(doc) = &mut app.doc else { return };
    match doc.toggle_slice_done(frame, z) {
        Some(true) if doc.slice_state(frame, z) == SliceState::FromFile => app.notes.info(format!(
            "slice {z} is labelled already: its labels came from a file"
        )),
        Some(true) => app.notes.info(format!("slice {z} marked done (labelled)")),
        Some(false) => app.notes.info(format!("slice {z} no longer marked done")),
        None => {}
    }
}

fn colour(state: SliceState) -> egui::Color32 {
    match state {
        SliceState::Unlabelled => egui::Color32::from_gray(45),
        SliceState::FromFile => egui::Color32::from_rgb(90, 110, 150),
        SliceState::Done => egui::Color32::from_rgb(80, 190, 100),
        SliceState::Painted => egui::Color32::from_rgb(240, 160, 40),
    }
}

fn describe(state: SliceState) -> &'static str {
    match state {
        SliceState::Unlabelled => "not labelled",
        SliceState::FromFile => "labelled (from the file)",
        SliceState::Done => "marked done",
        SliceState::Painted => "painted",
    }
}

/// The slice bar under the views: slider, labelled-slice strip with the
/// score curve, the D button and the "Next slices to label" list.
pub fn bar(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some((z, nz)) = crosshair_z(app) else {
        return;
    };
    let Some(doc) = &app.doc else { return };
    let frame = app.cursor.frame;
    let states: Vec<SliceState> = (0..nz).map(|k| doc.slice_state(frame, k)).collect();
    let labelled = states
        .iter()
        .filter(|s| **s != SliceState::Unlabelled)
        .count();
    #[cfg(feature = "ml")]
    let scores = app.ai.scores_for(doc.id()).map(|s| s.scores.clone());
    #[cfg(not(feature = "ml"))]
    let scores: Option<Vec<f64>> = None;
    let mut jump = None;
    ui.horizontal(|ui| {
        ui.spacing_mut().slider_width = (ui.available_width() * 0.35).max(120.0);
        let mut k = z;
        if ui
            .add(egui::Slider::new(&mut k, 0..=nz.saturating_sub(1)).text("slice (z)"))
            .changed()
        {
            jump = Some(k);
        }
        ui.label(format!(
            "slice {z}: {} · {labelled} of {nz} labelled",
            describe(states[z])
        ));
        let text = if states[z] == SliceState::Done {
            "Unmark slice (D)"
        } else {
            "Mark slice done (D)"
        };
        if ui
            .button(text)
            .on_hover_text(
                "This slice is labelled, even where it is background: fine-tuning learns from labelled slices only",
            )
            .clicked()
        {
            app.run_command(ui.ctx(), super::commands::Command::MarkSliceDone);
        }
    });
    strip(ui, &states, scores.as_deref(), z, &mut jump);
    #[cfg(feature = "ml")]
    if let Some(k) = super::ai::next_slices_ui(app, ui) {
        jump = Some(k);
    }
    if let Some(k) = jump {
        go_to_slice(app, k);
    }
}

/// One tick per slice coloured by how it is labelled, the crosshair's
/// slice marked, and the scores (when ranked) as a curve above; a click
/// jumps to the slice under the pointer.
fn strip(
    ui: &mut egui::Ui,
    states: &[SliceState],
    scores: Option<&[f64]>,
    z: usize,
    jump: &mut Option<usize>,
) {
    let nz = states.len().max(1);
    let width = ui.available_width().max(60.0);
    let curve_h = if scores.is_some() { 24.0 } else { 0.0 };
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(width, curve_h + 10.0), egui::Sense::click());
    let painter = ui.painter_at(rect);
    let x_of = |k: usize| rect.left() + width * (k as f32 + 0.5) / nz as f32;
    let w = (width / nz as f32).max(1.0);
    for (k, s) in states.iter().enumerate() {
        painter.rect_filled(
            egui::Rect::from_center_size(
                egui::pos2(x_of(k), rect.bottom() - 5.0),
                egui::vec2(w, 10.0),
            ),
            0.0,
            colour(*s),
        );
    }
    if let Some(scores) = scores {
        let max = scores.iter().copied().fold(0.0f64, f64::max).max(1e-12);
        let points: Vec<egui::Pos2> = scores
            .iter()
            .enumerate()
            .map(|(k, s)| egui::pos2(x_of(k), rect.top() + curve_h * (1.0 - (s / max) as f32)))
            .collect();
        painter.add(egui::Shape::line(
            points,
            egui::Stroke::new(1.5, egui::Color32::from_rgb(230, 90, 200)),
        ));
    }
    painter.vline(
        x_of(z),
        rect.y_range(),
        egui::Stroke::new(1.5, egui::Color32::WHITE),
    );
    if response.clicked()
        && let Some(p) = response.interact_pointer_pos()
    {
        let k = ((p.x - rect.left()) / width * nz as f32) as usize;
        *jump = Some(k.min(nz - 1));
    }
    response.on_hover_text(
        "Orange: painted · green: marked done (D) · blue: labelled in the file · dark: not labelled (never a training target). Pink: the model's uncertainty (label where it peaks).",
    );
}
