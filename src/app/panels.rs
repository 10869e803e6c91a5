//! Menus (built from [`Command`]s), the tool row, the control panel
//! (layers, window/level, colormap, labels, 3D), the cine bar and the
//! status bar (pointer read-out, running jobs, the latest message).

use super::commands::{Command, menu_item};
use super::settings::RayMode;
use super::{Layout, LoadRequest, UmeApp};
use crate::render::colormap::Colormap;
use crate::viewmath::Convention;
use eframe::egui;

/// CT window presets (name, width, level) in HU.
pub const CT_PRESETS: [(&str, f64, f64); 7] = [
    ("brain", 80.0, 40.0),
    ("subdural", 200.0, 75.0),
    ("stroke", 40.0, 40.0),
    ("lung", 1500.0, -600.0),
    ("abdomen", 400.0, 50.0),
    ("liver", 150.0, 30.0),
    ("bone", 1800.0, 400.0),
];

pub(super) fn menu_bar(app: &mut UmeApp, ui: &mut egui::Ui) {
    egui::Panel::top("menu").show(ui, |ui| {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                for c in [
                    Command::Open,
                    Command::OpenFolder,
                    Command::OpenLabels,
                    Command::OpenPrediction,
                ] {
                    menu_item(app, ui, c);
                }
                ui.menu_button("Demo cases", |ui| {
                    if let Some(dir) = app.demo_dir.clone() {
                        if ui
                            .button("Real brain T1 (MNI ICBM152 2009a)")
                            .on_hover_text(
                                "A real T1 MRI with grey/white-matter labels (see Help → About)",
                            )
                            .clicked()
                        {
                            app.open(ui.ctx(), LoadRequest::DemoBrain(dir.clone()));
                            ui.close();
                        }
                        if ui.button("Brain tumour (BraTS phantom)").clicked() {
                            app.open(ui.ctx(), LoadRequest::Demo(dir.clone()));
                            ui.close();
                        }
                        if ui.button("Cardiac cine (ACDC phantom, 4D)").clicked() {
                            app.open(ui.ctx(), LoadRequest::DemoCine(dir));
                            ui.close();
                        }
                    }
                });
                recent_menu(app, ui);
                ui.separator();
                for c in [
                    Command::SaveLabels,
                    Command::SaveLabelsAs,
                    Command::SavePredictionAs,
                    Command::SaveModelAs,
                    Command::ImportLabelTable,
                    Command::ExportLabelTable,
                ] {
                    menu_item(app, ui, c);
                }
                ui.separator();
                menu_item(app, ui, Command::ExportWindow);
                ui.menu_button("Export view as PNG", |ui| {
                    for v in super::views::ViewId::ALL {
                        if ui.button(v.name()).clicked() {
                            let name = format!(
                                "{}_{}.png",
                                app.doc.as_ref().map_or("ume", |d| d.title()),
                                v.name().to_lowercase()
                            );
                            let dir = app
                                .settings
                                .last_folder
                                .clone()
                                .or_else(|| std::env::current_dir().ok())
                                .unwrap_or_default();
                            app.request_export(ui.ctx(), dir.join(name), Some(v));
                            ui.close();
                        }
                    }
                });
                menu_item(app, ui, Command::ExportMetricsCsv);
                menu_item(app, ui, Command::ExportMetricsJson);
                ui.separator();
                menu_item(app, ui, Command::Quit);
            });
            ui.menu_button("Edit", |ui| {
                menu_item(app, ui, Command::Undo);
                menu_item(app, ui, Command::Redo);
                ui.separator();
                ui.horizontal(|ui| {
                    let l = ui.label("Undo memory (MB)");
                    ui.add(
                        egui::DragValue::new(&mut app.settings.undo_budget_mb).range(16..=65_536),
                    )
                    .labelled_by(l.id)
                    .on_hover_text("the oldest steps are dropped beyond this");
                });
            });
            ui.menu_button("View", |ui| {
                let s = &mut app.settings;
                ui.radio_value(
                    &mut s.convention,
                    Convention::Radiological,
                    "Radiological (R on left)",
                );
                ui.radio_value(
                    &mut s.convention,
                    Convention::Neurological,
                    "Neurological (R on right)",
                );
                ui.separator();
                ui.radio_value(&mut s.layout, Layout::Grid, "2×2 views");
                ui.radio_value(&mut s.layout, Layout::Modalities, "Modalities side by side");
                ui.separator();
                for c in [
                    Command::NextSlice,
                    Command::PreviousSlice,
                    Command::NextFrame,
                    Command::PreviousFrame,
                    Command::PlayPause,
                    Command::ResetViews,
                ] {
                    menu_item(app, ui, c);
                }
            });
            ui.menu_button("Tools", |ui| {
                for c in [
                    Command::ToolCrosshair,
                    Command::ToolBrush,
                    Command::ToolEraser,
                    Command::ToolFill,
                    Command::ToolPolygon,
                    Command::BrushSmaller,
                    Command::BrushLarger,
                ] {
                    menu_item(app, ui, c);
                }
                ui.separator();
                for c in [
                    Command::Interpolate,
                    Command::InterpolateAll,
                    Command::AcceptPrediction,
                ] {
                    menu_item(app, ui, c);
                }
            });
            ui.menu_button("Help", |ui| {
                menu_item(app, ui, Command::ShowShortcuts);
                if ui.button("Messages").clicked() {
                    app.show_messages = true;
                    ui.close();
                }
                if ui.button("About UME").clicked() {
                    app.show_about = true;
                    ui.close();
                }
            });
        });
    });
}

/// Help → About: the version, UME's licence, and the notices of the data
/// shipped inside it (the demo brain, the demo models' training data).
pub(super) fn about_window(open: &mut bool, ctx: &egui::Context) {
    egui::Window::new("About UME")
        .open(open)
        .default_width(520.0)
        .show(ctx, |ui| {
            ui.label(format!(
                "UME {} — a viewer, annotator and trainer for 3D/4D medical scans. MIT OR Apache-2.0.",
                env!("CARGO_PKG_VERSION")
            ));
            ui.separator();
            egui::ScrollArea::vertical().max_height(420.0).show(ui, |ui| {
                for paragraph in crate::demo::NOTICE.split("\n\n") {
                    let text = paragraph.replace('\n', " ");
                    let text = text.trim_start_matches('#').trim();
                    ui.label(text.replace("> ", ""));
                    ui.add_space(4.0);
                }
            });
        });
}

fn recent_menu(app: &mut UmeApp, ui: &mut egui::Ui) {
    ui.menu_button("Recent", |ui| {
        let mut pick = None;
        for r in &app.settings.recent {
            if !r.paths.iter().all(|p| p.exists()) {
                continue;
            }
            let mut text = r
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            if let Some(l) = &r.labels {
                text.push_str(&format!(
                    "  + {}",
                    l.file_name()
                        .map_or(String::new(), |n| n.to_string_lossy().into())
                ));
            }
            if ui.button(text).clicked() {
                pick = Some(r.clone());
            }
        }
        if let Some(r) = pick {
            let labels = r.labels.filter(|l| l.exists());
            app.open(ui.ctx(), LoadRequest::from_paths(r.paths, labels));
            ui.close();
        }
    });
}

pub(super) fn status_bar(app: &UmeApp, ui: &mut egui::Ui) {
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            if let (Some(doc), Some(h)) = (&app.doc, &app.hover)
                && let Some(layer) = doc.layer(app.cursor.active)
            {
                let v = &layer.volume;
                let w = h.world_mm;
                ui.label(format!("world {:.1}, {:.1}, {:.1} mm", w[0], w[1], w[2]));
                if let Some([i, j, k]) = crate::viewmath::voxel_at(&v.geometry, v.dims, w) {
                    let t = app.cursor.frame.min(v.frames - 1);
                    let value = v.get(i, j, k, t).unwrap_or(f64::NAN);
                    ui.label(format!("voxel {i}, {j}, {k}  value {value:.4}"));
                    if let Some(l) = doc.labels().at_frame(app.cursor.frame) {
                        let t = app.cursor.frame.min(l.frames - 1);
                        let id = l.get(l.frame_offset(t) + i + l.dims[0] * (j + l.dims[1] * k));
                        if id != 0 {
                            ui.label(format!(
                                "label {id} {}",
                                doc.table().name_of(id).unwrap_or("")
                            ));
                        }
                    }
                }
                ui.separator();
            }
            // Long messages are cut to the window: the status bar must
            // never widen the layout.
            let mut parts: Vec<(String, egui::Color32)> = Vec::new();
            let running = app.running_jobs();
            for (name, p) in &running {
                let mut text = if p.message.is_empty() {
                    (*name).to_string()
                } else {
                    p.message.clone()
                };
                if let Some((done, total)) = p.fraction {
                    text.push_str(&format!(" {done}/{total}"));
                }
                parts.push((text, egui::Color32::LIGHT_BLUE));
            }
            // Undismissed errors are in the Problems window, not here.
            if let Some(n) = app.notes.latest().filter(|n| n.dismissed) {
                parts.push((n.text.clone(), super::notify::color(n.level)));
            }
            if !running.is_empty() {
                ui.spinner();
            }
            for (text, color) in parts {
                ui.add(egui::Label::new(egui::RichText::new(text).color(color)).truncate());
            }
        });
    });
}

pub(super) fn controls(app: &mut UmeApp, ui: &mut egui::Ui) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        super::tool_panel::tools_ui(app, ui);
        super::tool_panel::table_ui(app, ui);
        image_controls(app, ui);
        #[cfg(feature = "ml")]
        {
            ui.separator();
            super::ai::section(app, ui);
        }
    });
}

fn image_controls(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some(doc) = &app.doc else { return };
    ui.heading(doc.title());
    if doc.layers().len() > 1 {
        ui.label("Modality");
        ui.horizontal_wrapped(|ui| {
            for (i, l) in doc.layers().iter().enumerate() {
                ui.selectable_value(&mut app.cursor.active, i, &l.name);
            }
        });
    }
    ui.separator();
    if let (Some(layer), Some((lo, hi))) = (doc.layer(app.cursor.active), app.window()) {
        ui.label("Window / level (right-drag in a view)");
        let mut width = hi - lo;
        let mut level = (hi + lo) / 2.0;
        let span = (layer.range.1 - layer.range.0).max(1e-9);
        let speed = span / 500.0;
        let mut changed = false;
        let mut set = None;
        ui.horizontal(|ui| {
            let w = ui.label("Width");
            changed |= ui
                .add(egui::DragValue::new(&mut width).speed(speed))
                .labelled_by(w.id)
                .changed();
            let l = ui.label("Level");
            changed |= ui
                .add(egui::DragValue::new(&mut level).speed(speed))
                .labelled_by(l.id)
                .changed();
        });
        if changed {
            width = width.max(span * 1e-4);
            set = Some((level - width / 2.0, level + width / 2.0));
        }
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Auto")
                .on_hover_text("0.5–99.5 percentile")
                .clicked()
            {
                set = Some(layer.auto_window);
            }
            if ui.button("Full range").clicked() {
                set = Some(layer.range);
            }
            // CT presets make sense when values look like Hounsfield units.
            if layer.range.0 <= -500.0 && layer.range.1 >= 300.0 {
                for (name, w, l) in CT_PRESETS {
                    if ui.small_button(name).clicked() {
                        set = Some((l - w / 2.0, l + w / 2.0));
                    }
                }
            }
        });
        if let Some(w) = set {
            app.set_window(w);
        }
    }
    let Some(doc) = &app.doc else { return };
    let s = &mut app.settings;
    egui::ComboBox::from_label("Colormap")
        .selected_text(s.colormap.name())
        .show_ui(ui, |ui| {
            for cm in Colormap::ALL {
                ui.selectable_value(&mut s.colormap, cm, cm.name());
            }
        });
    ui.checkbox(&mut s.nearest, "Nearest-voxel sampling");
    ui.separator();
    if !doc.labels().is_empty() {
        ui.label("Labels");
        ui.checkbox(&mut s.show_labels, "Show overlay");
        ui.add(egui::Slider::new(&mut s.label_opacity, 0.0..=1.0).text("opacity"));
        ui.checkbox(&mut s.outline, "Outline");
        let counts = doc.label_counts(app.cursor.frame);
        let spacing = doc.layer(0).map_or([1.0; 3], |l| l.volume.spacing_mm());
        let ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
        let table = doc.table();
        egui::Grid::new("labels").striped(true).show(ui, |ui| {
            for l in table.labels.iter().filter(|l| {
                counts.get(usize::from(l.id)).copied().unwrap_or(0) > 0 || table.labels.len() <= 20
            }) {
                let (r, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                let [cr, cg, cb] = l.color;
                ui.painter()
                    .rect_filled(r, 2.0, egui::Color32::from_rgb(cr, cg, cb));
                let mut visible = s.is_visible(l.id);
                if ui
                    .checkbox(&mut visible, format!("{} {}", l.id, l.name))
                    .changed()
                {
                    s.set_visible(l.id, visible);
                }
                let n = counts.get(usize::from(l.id)).copied().unwrap_or(0);
                ui.label(format!("{n} vox  {:.2} mL", n as f64 * ml));
                let mut locked = s.locked.contains(&l.id);
                if ui
                    .checkbox(&mut locked, "lock")
                    .on_hover_text(format!("painting never changes {}", l.name))
                    .changed()
                {
                    if locked {
                        s.locked.insert(l.id);
                    } else {
                        s.locked.remove(&l.id);
                    }
                }
                ui.end_row();
            }
        });
        ui.separator();
    }
    ui.label("3D view");
    ui.horizontal(|ui| {
        ui.radio_value(&mut s.ray_mode, RayMode::Mip, "MIP");
        ui.radio_value(&mut s.ray_mode, RayMode::Dvr, "DVR");
    });
    if s.ray_mode == RayMode::Dvr {
        ui.add(
            egui::Slider::new(&mut s.volume_opacity, 0.1..=20.0)
                .logarithmic(true)
                .text("opacity"),
        );
    }
    ui.horizontal(|ui| {
        ui.label("Clip at crosshair:");
        ui.checkbox(&mut s.clip[0], "x");
        ui.checkbox(&mut s.clip[1], "y");
        ui.checkbox(&mut s.clip[2], "z");
    });
    for w in doc.warnings() {
        ui.colored_label(egui::Color32::YELLOW, w);
    }
}

pub(super) fn cine_bar(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some(doc) = &app.doc else { return };
    let frames = doc.frames();
    ui.horizontal(|ui| {
        let label = if app.playing { "Pause" } else { "Play" };
        if ui
            .button(label)
            .on_hover_text(Command::PlayPause.shortcut_text(ui.ctx()))
            .clicked()
        {
            app.playing = !app.playing;
        }
        ui.add(egui::Slider::new(&mut app.settings.cine_fps, 1.0..=60.0).text("fps"));
        // Frames are numbered from 1 on screen, as ITK-SNAP, ACDC's Info.cfg
        // and the saved `_frameNN` files number them.
        let mut shown = app.cursor.frame + 1;
        let slider = ui.add(egui::Slider::new(&mut shown, 1..=frames).text("frame"));
        app.cursor.frame = shown.clamp(1, frames) - 1;
        if let Some(info) = doc.acdc() {
            // ED/ES markers under the slider (ACDC frames are 1-based in Info.cfg).
            let r = slider.rect;
            let width = r.width() - 60.0; // the slider's track, without its value box
            for (t, name, color) in [
                (info.ed_index(), "ED", egui::Color32::LIGHT_GREEN),
                (info.es_index(), "ES", egui::Color32::LIGHT_RED),
            ] {
                let x = r.left() + width * t as f32 / (frames - 1).max(1) as f32;
                ui.painter().text(
                    egui::pos2(x, r.bottom() + 1.0),
                    egui::Align2::CENTER_TOP,
                    name,
                    egui::FontId::proportional(10.0),
                    color,
                );
            }
            ui.label(format!(
                "ED {} · ES {}",
                info.ed_index() + 1,
                info.es_index() + 1
            ));
        }
    });
    ui.add_space(10.0);
    let window = app.window().unwrap_or((0.0, 1.0));
    egui::CollapsingHeader::new("Keyframe inspector")
        .default_open(true)
        .show(ui, |ui| {
            #[cfg(feature = "ml")]
            let learned = app.ai.learned(doc.id());
            #[cfg(not(feature = "ml"))]
            let learned = None;
            super::keyframes_ui::inspector_ui(
                &mut app.keyframes,
                doc,
                &mut app.cursor,
                window,
                learned,
                ui,
            );
        });
}
