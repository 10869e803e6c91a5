//! The annotation part of the side panel: the tool row (every tool command
//! as a toggle), brush size and shape, the active label, the paint options
//! (draw-over, intensity range, fill distance), fill between slices, and
//! the label table (name, colour, new labels, built-in tables).

use super::UmeApp;
use super::commands::Command;
use eframe::egui;

/// Draw-over mode, intensity range and fill distance (ITK-SNAP's paint
/// options).
fn paint_options_ui(app: &mut UmeApp, ui: &mut egui::Ui) {
    use super::settings::DrawOver;
    let s = &mut app.settings;
    ui.horizontal(|ui| {
        let l = ui.label("Draw over");
        let text = match s.draw_over {
            DrawOver::All => "all labels".to_string(),
            DrawOver::Background => "background only".to_string(),
            DrawOver::Label(id) => format!("label {id} only"),
        };
        egui::ComboBox::from_id_salt("draw over")
            .selected_text(text)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.draw_over, DrawOver::All, "all labels");
                ui.selectable_value(&mut s.draw_over, DrawOver::Background, "background only");
                let id = s.active_label;
                ui.selectable_value(
                    &mut s.draw_over,
                    DrawOver::Label(id),
                    format!("label {id} only"),
                );
            })
            .response
            .labelled_by(l.id);
    });
    let window = app.window().unwrap_or((0.0, 1.0));
    let s = &mut app.settings;
    let mut ranged = s.paint_range.is_some();
    ui.horizontal(|ui| {
        if ui
            .checkbox(&mut ranged, "Only intensities")
            .on_hover_text("paint and fill only where the image value is in the range")
            .changed()
        {
            s.paint_range = ranged.then_some(window);
        }
        if let Some((lo, hi)) = &mut s.paint_range {
            let speed = ((window.1 - window.0).abs() / 200.0).max(1e-6);
            let l = ui.label("from");
            ui.add(egui::DragValue::new(lo).speed(speed))
                .labelled_by(l.id);
            let l = ui.label("to");
            ui.add(egui::DragValue::new(hi).speed(speed))
                .labelled_by(l.id);
        }
    });
    if s.tool == super::settings::Tool::Fill {
        let mut bounded = s.fill_max_mm.is_some();
        ui.horizontal(|ui| {
            if ui.checkbox(&mut bounded, "Fill at most (mm)").changed() {
                s.fill_max_mm = bounded.then_some(20.0);
            }
            if let Some(d) = &mut s.fill_max_mm {
                ui.add(egui::DragValue::new(d).speed(0.5).range(0.5..=1000.0));
            }
        });
    }
}

/// The label table: the active label's name and colour, new labels, the
/// built-in tables. Every change is one undoable step.
pub(super) fn table_ui(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some(doc) = &mut app.doc else { return };
    let id = app.settings.active_label;
    let mut table = doc.table().clone();
    // The typed name follows the table (undo, import) unless it is being
    // typed.
    let rev = doc.revisions().table;
    if app.label_name.0 != (id, rev) {
        app.label_name = ((id, rev), table.name_of(id).unwrap_or("").to_string());
    }
    egui::CollapsingHeader::new("Label table")
        .default_open(false)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let l = ui.label(format!("Label {id} name"));
                let r = ui
                    .text_edit_singleline(&mut app.label_name.1)
                    .labelled_by(l.id);
                let commit = r.lost_focus() && !app.label_name.1.trim().is_empty();
                if commit {
                    let name = app.label_name.1.trim().to_string();
                    match table.labels.iter_mut().find(|e| e.id == id) {
                        Some(e) => e.name = name,
                        None => table.labels.push(crate::volume::LabelEntry {
                            id,
                            name,
                            color: crate::volume::palette(id),
                        }),
                    }
                }
            });
            if let Some(e) = table.labels.iter_mut().find(|e| e.id == id) {
                ui.horizontal(|ui| {
                    ui.label("Colour");
                    ui.color_edit_button_srgb(&mut e.color);
                });
            }
            ui.horizontal(|ui| {
                if ui.button("Add label").clicked() {
                    let next = table.labels.iter().map(|e| e.id).max().unwrap_or(0) + 1;
                    table.labels.push(crate::volume::LabelEntry {
                        id: next,
                        name: format!("label {next}"),
                        color: crate::volume::palette(next),
                    });
                    table.labels.sort_by_key(|e| e.id);
                    app.settings.active_label = next;
                }
                for (name, key) in [
                    ("BraTS", "brats"),
                    ("ACDC", "acdc"),
                    ("TotalSegmentator (117)", "totalseg"),
                ] {
                    if ui
                        .small_button(name)
                        .on_hover_text("use this built-in table")
                        .clicked()
                        && let Ok(t) = crate::volume::LabelTable::builtin(key)
                    {
                        table = t;
                    }
                }
            });
        });
    // Only a real change is a step (edit_table ignores an equal table).
    doc.edit_table(table);
}

/// The tool row: every tool command as a toggle, and the brush size.
pub(super) fn tools_ui(app: &mut UmeApp, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        for c in [
            Command::ToolCrosshair,
            Command::ToolBrush,
            Command::ToolEraser,
            Command::ToolFill,
            Command::ToolPolygon,
        ] {
            let on = c.tool() == Some(app.settings.tool);
            let tip = format!("{} ({})", c.tooltip(), c.shortcut_text(ui.ctx()));
            if ui
                .selectable_label(on, c.label())
                .on_hover_text(tip)
                .clicked()
            {
                app.run_command(ui.ctx(), c);
            }
        }
    });
    use super::settings::Tool;
    let tool = app.settings.tool;
    if tool == Tool::Fill {
        ui.checkbox(&mut app.settings.brush_ball, "3D fill")
            .on_hover_text("fill in 3D instead of in the view's slice");
    }
    if matches!(tool, Tool::Brush | Tool::Eraser) {
        ui.horizontal(|ui| {
            let l = ui.label("Radius (mm)");
            ui.add(
                egui::DragValue::new(&mut app.settings.brush_radius_mm)
                    .speed(0.1)
                    .range(super::settings::BRUSH_RANGE_MM.0..=super::settings::BRUSH_RANGE_MM.1),
            )
            .labelled_by(l.id);
            ui.checkbox(&mut app.settings.brush_ball, "3D")
                .on_hover_text("paint a ball instead of a disc in the view's slice");
        });
    }
    if matches!(tool, Tool::Brush | Tool::Fill | Tool::Polygon)
        && let Some(doc) = &app.doc
    {
        let table = doc.table();
        let active = app.settings.active_label;
        let name = table.name_of(active).map_or_else(
            || format!("{active} (new label)"),
            |n| format!("{active} {n}"),
        );
        ui.horizontal(|ui| {
            let l = ui.label("Label");
            egui::ComboBox::from_id_salt("active label")
                .selected_text(name)
                .show_ui(ui, |ui| {
                    for e in &table.labels {
                        ui.selectable_value(
                            &mut app.settings.active_label,
                            e.id,
                            format!("{} {}", e.id, e.name),
                        );
                    }
                })
                .response
                .labelled_by(l.id)
                .on_hover_text("Ctrl+click in a view picks the label under the pointer");
            ui.add(egui::DragValue::new(&mut app.settings.active_label).range(1..=4095))
                .on_hover_text("any id: a new one gets a table entry when painted");
        });
    }
    if matches!(
        tool,
        Tool::Brush | Tool::Eraser | Tool::Fill | Tool::Polygon
    ) {
        paint_options_ui(app, ui);
    }
    if tool == Tool::Polygon {
        ui.label("Click vertices (double click or click the first to close) or drag a lasso; Esc drops it.");
    }
    ui.horizontal(|ui| {
        for c in [Command::Interpolate, Command::InterpolateAll] {
            let enabled = app.can_run(c);
            if ui
                .add_enabled(enabled, egui::Button::new(c.label()))
                .on_hover_text(c.tooltip())
                .clicked()
            {
                app.run_command(ui.ctx(), c);
            }
        }
    });
    ui.separator();
}
