//! Menus, the control panel (layers, window/level, colormap, labels, 3D),
//! the cine bar, the status bar, error dialogs and the in-app file browser.

use super::{Layout, LoadRequest, UmeApp, views::RayMode};
use crate::render::colormap::Colormap;
use crate::viewmath::Convention;
use eframe::egui;
use std::path::{Path, PathBuf};

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
                if ui.button("Open file...").clicked() {
                    app.open_dialog(false, super::Pick::Open);
                    ui.close();
                }
                if ui.button("Open folder...").clicked() {
                    app.open_dialog(true, super::Pick::Open);
                    ui.close();
                }
                if ui.button("Browse...").clicked() {
                    app.pick = super::Pick::Open;
                    app.browser = Some(Browser::new());
                    ui.close();
                }
                if ui
                    .add_enabled(
                        app.doc.is_some(),
                        egui::Button::new("Open prediction labels..."),
                    )
                    .clicked()
                {
                    app.open_dialog(false, super::Pick::Prediction);
                    ui.close();
                }
                ui.menu_button("Demo cases", |ui| {
                    if let Some(dir) = app.demo_dir.clone() {
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
                ui.menu_button("Recent", |ui| {
                    let mut pick = None;
                    for p in &app.recent {
                        if ui.button(p.display().to_string()).clicked() {
                            pick = Some(p.clone());
                        }
                    }
                    if let Some(p) = pick {
                        let req = if p.is_dir() {
                            LoadRequest::Folder(p)
                        } else {
                            LoadRequest::Files {
                                paths: vec![p],
                                labels: None,
                            }
                        };
                        app.open(ui.ctx(), req);
                        ui.close();
                    }
                });
                ui.separator();
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let here = std::env::current_dir().unwrap_or_default();
                if ui.button("Export window as PNG").clicked() {
                    app.request_export(ui.ctx(), here.join(format!("ume-{stamp}.png")), None);
                    ui.close();
                }
                ui.menu_button("Export view as PNG", |ui| {
                    for v in super::views::ViewId::ALL {
                        if ui.button(v.name()).clicked() {
                            let file = format!("ume-{}-{stamp}.png", v.name().to_lowercase());
                            app.request_export(ui.ctx(), here.join(file), Some(v));
                            ui.close();
                        }
                    }
                });
            });
            ui.menu_button("View", |ui| {
                ui.radio_value(
                    &mut app.views.convention,
                    Convention::Radiological,
                    "Radiological (R on left)",
                );
                ui.radio_value(
                    &mut app.views.convention,
                    Convention::Neurological,
                    "Neurological (R on right)",
                );
                ui.separator();
                ui.radio_value(&mut app.layout, Layout::Grid, "2×2 views");
                ui.radio_value(
                    &mut app.layout,
                    Layout::Modalities,
                    "Modalities side by side",
                );
                ui.separator();
                if ui.button("Reset views").clicked() {
                    app.views.zoom = [1.0; 3];
                    app.views.pan_mm = [[0.0; 2]; 3];
                    app.views.maximised = None;
                    app.views.orbit = crate::viewmath::Orbit::default();
                    ui.close();
                }
            });
        });
    });
}

pub(super) fn status_bar(app: &UmeApp, ui: &mut egui::Ui) {
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| {
            if let (Some(doc), Some(h)) = (&app.doc, &app.hover) {
                if let Some(layer) = doc.layer() {
                    let v = &layer.volume;
                    let w = h.world_mm;
                    ui.label(format!("world {:.1}, {:.1}, {:.1} mm", w[0], w[1], w[2]));
                    if let Some([i, j, k]) = crate::viewmath::voxel_at(&v.geometry, v.dims, w) {
                        let t = doc.frame.min(v.frames - 1);
                        let value = v.get(i, j, k, t).unwrap_or(f64::NAN);
                        ui.label(format!("voxel {i}, {j}, {k}  value {value:.4}"));
                        if let Some(l) = doc.labels.at_frame(doc.frame) {
                            let id = l.get(
                                l.frame_offset(doc.frame) + i + l.dims[0] * (j + l.dims[1] * k),
                            );
                            if id != 0 {
                                ui.label(format!(
                                    "label {id} {}",
                                    doc.table.name_of(id).unwrap_or("")
                                ));
                            }
                        }
                    }
                }
            } else if !app.status.is_empty() {
                if app.is_loading() {
                    ui.spinner();
                }
                ui.label(&app.status);
            }
            if let Some(n) = &app.notice {
                ui.colored_label(egui::Color32::YELLOW, n);
            }
        });
    });
}

pub(super) fn controls(app: &mut UmeApp, ui: &mut egui::Ui) {
    egui::ScrollArea::vertical().show(ui, |ui| {
        image_controls(app, ui);
        #[cfg(feature = "ml")]
        {
            ui.separator();
            super::ai::section(app, ui);
        }
    });
}

fn image_controls(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some(doc) = &mut app.doc else { return };
    {
        ui.heading(&doc.title);
        if doc.layers.len() > 1 {
            ui.label("Modality");
            ui.horizontal_wrapped(|ui| {
                for i in 0..doc.layers.len() {
                    let name = doc.layers[i].name.clone();
                    ui.selectable_value(&mut doc.active, i, name);
                }
            });
        }
        ui.separator();
        if let Some(layer) = doc.layers.get_mut(doc.active) {
            ui.label("Window / level (right-drag in a view)");
            let (mut lo, mut hi) = layer.window;
            let mut width = hi - lo;
            let mut level = (hi + lo) / 2.0;
            let span = (layer.range.1 - layer.range.0).max(1e-9);
            let speed = span / 500.0;
            let mut changed = false;
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
                lo = level - width / 2.0;
                hi = level + width / 2.0;
                layer.window = (lo, hi);
            }
            ui.horizontal_wrapped(|ui| {
                if ui
                    .button("Auto")
                    .on_hover_text("0.5–99.5 percentile")
                    .clicked()
                {
                    layer.window = layer.auto_window;
                }
                if ui.button("Full range").clicked() {
                    layer.window = layer.range;
                }
                // CT presets make sense when values look like Hounsfield units.
                if layer.range.0 <= -500.0 && layer.range.1 >= 300.0 {
                    for (name, w, l) in CT_PRESETS {
                        if ui.small_button(name).clicked() {
                            layer.window = (l - w / 2.0, l + w / 2.0);
                        }
                    }
                }
            });
        }
        egui::ComboBox::from_label("Colormap")
            .selected_text(app.views.colormap.name())
            .show_ui(ui, |ui| {
                for cm in Colormap::ALL {
                    ui.selectable_value(&mut app.views.colormap, cm, cm.name());
                }
            });
        ui.checkbox(&mut app.views.nearest, "Nearest-voxel sampling");
        ui.separator();
        if !doc.labels.is_empty() {
            ui.label("Labels");
            ui.checkbox(&mut app.views.show_labels, "Show overlay");
            ui.add(egui::Slider::new(&mut doc.label_opacity, 0.0..=1.0).text("opacity"));
            ui.checkbox(&mut doc.outline, "Outline");
            let counts = doc.label_counts().to_vec();
            let spacing = doc.layer().map_or([1.0; 3], |l| l.volume.spacing_mm());
            let ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
            let entries: Vec<(u16, String, [u8; 3])> = doc
                .table
                .labels
                .iter()
                .filter(|l| {
                    counts.get(usize::from(l.id)).copied().unwrap_or(0) > 0
                        || doc.table.labels.len() <= 20
                })
                .map(|l| (l.id, l.name.clone(), l.color))
                .collect();
            egui::Grid::new("labels").striped(true).show(ui, |ui| {
                for (id, name, color) in entries {
                    let (r, _) =
                        ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                    ui.painter().rect_filled(
                        r,
                        2.0,
                        egui::Color32::from_rgb(color[0], color[1], color[2]),
                    );
                    let mut visible = doc.is_visible(id);
                    if ui.checkbox(&mut visible, format!("{id} {name}")).changed() {
                        doc.hidden.insert(id, !visible);
                        app.palette_generation += 1;
                    }
                    let n = counts.get(usize::from(id)).copied().unwrap_or(0);
                    ui.label(format!("{n} vox  {:.2} mL", n as f64 * ml));
                    ui.end_row();
                }
            });
            ui.separator();
        }
        ui.label("3D view");
        ui.horizontal(|ui| {
            ui.radio_value(&mut app.views.ray_mode, RayMode::Mip, "MIP");
            ui.radio_value(&mut app.views.ray_mode, RayMode::Dvr, "DVR");
        });
        if app.views.ray_mode == RayMode::Dvr {
            ui.add(
                egui::Slider::new(&mut app.views.opacity, 0.1..=20.0)
                    .logarithmic(true)
                    .text("opacity"),
            );
        }
        ui.horizontal(|ui| {
            ui.label("Clip at crosshair:");
            ui.checkbox(&mut app.views.clip[0], "x");
            ui.checkbox(&mut app.views.clip[1], "y");
            ui.checkbox(&mut app.views.clip[2], "z");
        });
        for w in &doc.warnings {
            ui.colored_label(egui::Color32::YELLOW, w);
        }
    }
}

pub(super) fn cine_bar(app: &mut UmeApp, ui: &mut egui::Ui) {
    let Some(doc) = &mut app.doc else { return };
    let frames = doc.frames();
    ui.horizontal(|ui| {
        let label = if app.playing { "Pause" } else { "Play" };
        if ui.button(label).clicked() {
            app.playing = !app.playing;
        }
        ui.add(egui::Slider::new(&mut app.fps, 1.0..=60.0).text("fps"));
        let slider = ui.add(egui::Slider::new(&mut doc.frame, 0..=frames - 1).text("frame"));
        if let Some(info) = &doc.acdc {
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
            ui.label(format!("ED {} · ES {}", info.ed_index(), info.es_index()));
        }
    });
    ui.add_space(10.0);
    egui::CollapsingHeader::new("Keyframe inspector")
        .default_open(true)
        .show(ui, |ui| {
            #[cfg(feature = "ml")]
            let learned = app.ai.learned(app.doc_generation);
            #[cfg(not(feature = "ml"))]
            let learned = None;
            super::keyframes_ui::inspector_ui(&mut app.keyframes, doc, learned, ui);
        });
}

pub(super) fn dialogs(app: &mut UmeApp, ui: &mut egui::Ui) {
    if let Some(err) = app.error.clone() {
        egui::Window::new("Could not open")
            .collapsible(false)
            .show(ui.ctx(), |ui| {
                ui.label(err);
                if ui.button("OK").clicked() {
                    app.error = None;
                }
            });
    }
}

/// Whether a native dialog can appear: rfd needs an XDG desktop portal
/// (on the session bus) or zenity; without them it silently returns None.
pub(super) fn native_dialog_available() -> bool {
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
    let zenity = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("zenity").is_file()));
    bus || zenity
}

fn recent_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ume").join("recent.txt"))
}

pub(super) fn load_recent() -> Vec<PathBuf> {
    recent_file()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|t| {
            t.lines()
                .map(PathBuf::from)
                .filter(|p| p.exists())
                .take(10)
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn remember(recent: &mut Vec<PathBuf>, path: Option<PathBuf>) {
    let Some(p) = path else { return };
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    recent.retain(|x| x != &p);
    recent.insert(0, p);
    recent.truncate(10);
    if let Some(f) = recent_file() {
        let text: String = recent
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        if let Some(dir) = f.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::io::write_atomic(&f, text.as_bytes());
    }
}

/// The in-app file browser (when no native dialog is available).
pub(super) struct Browser {
    dir: PathBuf,
    entries: Vec<(PathBuf, bool)>,
}

/// What the browser asks for.
pub(super) enum BrowserResult {
    Open(LoadRequest),
    Close,
    Stay,
}

impl Browser {
    pub(super) fn new() -> Browser {
        let dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let mut b = Browser {
            dir,
            entries: Vec::new(),
        };
        b.refresh();
        b
    }

    fn refresh(&mut self) {
        self.entries = std::fs::read_dir(&self.dir)
            .map(|rd| {
                let mut v: Vec<(PathBuf, bool)> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .filter(|p| p.is_dir() || crate::io::is_image_file_name(p))
                    .map(|p| {
                        let d = p.is_dir();
                        (p, d)
                    })
                    .collect();
                v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                v
            })
            .unwrap_or_default();
    }

    fn go(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
        self.refresh();
    }

    pub(super) fn ui(&mut self, ctx: &egui::Context) -> BrowserResult {
        let mut result = BrowserResult::Stay;
        let mut open = true;
        egui::Window::new("Open")
            .open(&mut open)
            .default_size([520.0, 420.0])
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    if ui.button("Up").clicked()
                        && let Some(parent) = self.dir.parent().map(Path::to_path_buf)
                    {
                        self.go(&parent);
                    }
                    ui.label(self.dir.display().to_string());
                });
                if ui.button("Open this folder as a dataset").clicked() {
                    result = BrowserResult::Open(LoadRequest::Folder(self.dir.clone()));
                }
                ui.separator();
                let mut go_to = None;
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for (p, is_dir) in &self.entries {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        let text = if *is_dir { format!("[{name}]") } else { name };
                        if ui.selectable_label(false, text).clicked() {
                            if *is_dir {
                                go_to = Some(p.clone());
                            } else {
                                result = BrowserResult::Open(LoadRequest::Files {
                                    paths: vec![p.clone()],
                                    labels: None,
                                });
                            }
                        }
                    }
                });
                if let Some(d) = go_to {
                    self.go(&d);
                }
            });
        if !open {
            result = BrowserResult::Close;
        }
        result
    }
}
