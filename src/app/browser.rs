//! UME's own file browser, for where no native dialog can appear (no
//! desktop portal, no zenity): folders to walk, the files a pick is for,
//! and for a save a file name to type.

use super::files::Pick;
use eframe::egui;
use std::path::{Path, PathBuf};

/// UME's own file browser (where no native dialog can appear): folders to
/// walk, image files to pick, and for a save a file name to type.
pub struct Browser {
    /// What the pick is for.
    pub pick: Pick,
    dir: PathBuf,
    entries: Vec<(PathBuf, bool)>,
    /// The file name typed for a save.
    pub name: String,
}

impl Browser {
    /// The folder shown.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// What the browser asks for.
pub enum BrowserResult {
    /// These paths were chosen.
    Picked(Vec<PathBuf>),
    /// Closed without a choice.
    Close,
    /// Still open.
    Stay,
}

impl Browser {
    /// A browser in `folder` (else the working directory).
    pub fn new(pick: Pick, folder: Option<PathBuf>, name: String) -> Browser {
        // Absolute, so Up can climb past where a relative path began.
        let dir = folder
            .filter(|d| d.is_dir())
            .and_then(|d| std::fs::canonicalize(d).ok())
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("/"));
        let mut b = Browser {
            pick,
            dir,
            entries: Vec::new(),
            name,
        };
        b.refresh();
        b
    }

    fn refresh(&mut self) {
        let files = !self.pick.is_folder();
        self.entries = std::fs::read_dir(&self.dir)
            .map(|rd| {
                let mut v: Vec<(PathBuf, bool)> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    })
                    .filter(|p| p.is_dir() || (files && self.shows(p)))
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

    /// Whether a file is one this pick is for.
    fn shows(&self, p: &Path) -> bool {
        match self.pick {
            Pick::ImportTable | Pick::ExportTable => p
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("txt") || e.eq_ignore_ascii_case("json")),
            Pick::ExportWindow | Pick::ExportMetrics(_) => true,
            _ => crate::io::is_image_file_name(p),
        }
    }

    fn go(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
        self.refresh();
    }

    /// Draw the browser.
    pub fn ui(&mut self, ctx: &egui::Context) -> BrowserResult {
        let mut result = BrowserResult::Stay;
        let mut open = true;
        egui::Window::new(self.pick.title())
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
                if self.pick.is_save() {
                    ui.horizontal(|ui| {
                        let l = ui.label("File name");
                        let field = ui.text_edit_singleline(&mut self.name).labelled_by(l.id);
                        // Enter in the name field saves, as in every file dialog.
                        let enter =
                            field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                        if (ui.button("Save").clicked() || enter) && !self.name.trim().is_empty() {
                            result = BrowserResult::Picked(vec![self.dir.join(self.name.trim())]);
                        }
                    });
                } else if ui.button("Open this folder").clicked() {
                    result = BrowserResult::Picked(vec![self.dir.clone()]);
                }
                ui.separator();
                let mut go_to = None;
                egui::ScrollArea::vertical().show(ui, |ui| {
                    for (p, is_dir) in &self.entries {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default();
                        let text = if *is_dir {
                            format!("[{name}]")
                        } else {
                            name.clone()
                        };
                        if ui.selectable_label(false, text).clicked() {
                            if *is_dir {
                                go_to = Some(p.clone());
                            } else if self.pick.is_save() {
                                self.name = name;
                            } else {
                                result = BrowserResult::Picked(vec![p.clone()]);
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
