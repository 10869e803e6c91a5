//! Opening and closing cases: loading, installing a document (everything
//! of the last case starts afresh), labels and predictions read onto it,
//! and saving them; the recent list.

use super::document::{Document, Prediction};
use super::jobs::Job;
use super::safety::Pending;
use super::views::{Camera, Cursor};
use super::{LoadRequest, UmeApp, autosave, evaluation, keyframes_ui, loader, settings};
use eframe::egui;
use std::path::PathBuf;

impl UmeApp {
    /// Start loading in the background. Labels given with images are read
    /// after the images open, so labels on another grid are an error while
    /// the image still opens.
    pub fn open(&mut self, ctx: &egui::Context, request: LoadRequest) {
        if self.doc.as_ref().is_some_and(Document::is_dirty) {
            // Opening another case would drop unsaved labels: ask first.
            self.confirm = Some(Pending::Open(request));
            return;
        }
        self.open_now(ctx, request);
    }

    /// Open without asking about unsaved labels.
    fn open_now(&mut self, ctx: &egui::Context, request: LoadRequest) {
        let request = match request {
            LoadRequest::Files { paths, labels } => {
                self.pending_labels = labels;
                LoadRequest::Files {
                    paths,
                    labels: None,
                }
            }
            other => {
                self.pending_labels = None;
                other
            }
        };
        let wake = ctx.clone();
        let req = request.clone();
        self.load.start(Job::spawn(
            "load",
            0,
            move || wake.request_repaint(),
            move |job| {
                job.message("loading…");
                loader::load_or_pick(&req, &|m| job.message(m))
            },
        ));
        self.load_request = Some(request);
    }

    /// Install a loaded document (also used by tests): the cursor, camera,
    /// windows and everything computed for the previous case start afresh.
    pub fn set_document(&mut self, doc: Document) {
        // The active label follows the case's table: an id kept from a case
        // with another table (ACDC's 3 is the LV, TotalSegmentator's a
        // kidney) would paint the wrong structure.
        let same_table = self.doc.as_ref().is_some_and(|d| d.table() == doc.table());
        if !same_table && let Some(first) = doc.table().labels.first() {
            self.settings.active_label = first.id;
        }
        self.cursor = Cursor::for_document(&doc);
        self.camera = Camera::default();
        self.settings.windows = doc.layers().iter().map(|l| l.auto_window).collect();
        let sort = self.eval.sort;
        self.eval = evaluation::EvalState::default();
        self.eval.sort = sort;
        let (k, strategy) = (self.keyframes.k, self.keyframes.strategy);
        self.keyframes = keyframes_ui::KeyframeState::default();
        self.keyframes.k = k;
        self.keyframes.strategy = strategy;
        #[cfg(feature = "ml")]
        self.ai.reset_for_case(&doc);
        self.playing = false;
        self.label_job.abandon();
        self.prediction_job.abandon();
        self.restore_job.abandon();
        self.autosave_job.abandon();
        self.autosaved = None;
        self.dirty_since = None;
        self.confirm = None;
        self.recovery = self.autosave_root.as_ref().and_then(|root| {
            let dir = autosave::folder(root, &doc.identity());
            autosave::find(&dir).map(|meta| (dir, meta))
        });
        self.doc = Some(doc);
    }

    /// Collect label, prediction and save jobs.
    pub(super) fn file_jobs_logic(&mut self, ctx: &egui::Context) {
        let doc_id = self.doc.as_ref().map_or(0, Document::id);
        if let Some((tag, r)) = self.label_job.poll()
            && tag == doc_id
            && let Some(doc) = &mut self.doc
        {
            match r.and_then(|(path, labels, table)| {
                doc.open_labels(&path, labels, self.cursor.frame)?;
                if let Some(t) = table {
                    doc.set_table(t);
                }
                Ok(path)
            }) {
                Ok(path) => {
                    self.notes.info(format!("opened labels {}", path.display()));
                    self.remember_labels(path);
                }
                Err(e) => self.notes.error(e),
            }
        }
        if let Some((tag, r)) = self.prediction_job.poll()
            && tag == doc_id
            && let Some(doc) = &mut self.doc
        {
            match r.and_then(|p| doc.set_prediction(p)) {
                Ok(()) => {}
                Err(e) => self.notes.error(e),
            }
        }
        if let Some((tag, r)) = self.save_job.poll() {
            let current = self.doc.as_ref().map(super::tools::labels_state);
            match r {
                Ok((path, files)) if current == Some(tag) => {
                    if let Some(doc) = &mut self.doc {
                        doc.mark_saved(&path);
                        // Saved: the autosave is no longer needed.
                        self.autosave_job.abandon();
                        if let Some(root) = &self.autosave_root {
                            autosave::discard(&autosave::folder(root, &doc.identity()));
                        }
                        self.autosaved = None;
                        self.dirty_since = None;
                    }
                    if let Some(p) = self.after_save.take() {
                        self.proceed(ctx, p);
                    }
                    self.notes.info(super::files::saved_message(&path, &files));
                    // Per-frame files: `path` itself is not a file to reopen
                    // from Recent (the case's folder finds the frames).
                    if files.len() == 1 && files[0] == path {
                        self.remember_labels(path);
                    }
                }
                Ok((path, _)) => {
                    // The labels changed while they were written: what is on
                    // disk is the earlier state; they stay unsaved.
                    self.after_save = None;
                    self.notes.warn(format!(
                        "saved labels to {} as they were when saving began; later changes are not saved yet",
                        path.display()
                    ));
                }
                Err(e) => {
                    self.after_save = None;
                    self.notes.error(format!("labels not saved: {e}"));
                }
            }
        }
        if let Some((_, r)) = self.save_prediction_job.poll() {
            match r {
                Ok(path) => self
                    .notes
                    .info(format!("saved the prediction to {}", path.display())),
                Err(e) => self.notes.error(format!("prediction not saved: {e}")),
            }
        }
    }

    /// The open case's recent entry remembers its labels file.
    fn remember_labels(&mut self, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let s = doc.sources();
        let paths = if s.images.is_empty() {
            s.folder.iter().cloned().collect()
        } else {
            s.images.clone()
        };
        if !paths.is_empty() {
            self.settings.remember(settings::Recent {
                paths,
                labels: Some(path),
            });
        }
    }

    /// Read a label map onto the open image in the background.
    pub fn load_labels(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        if doc.is_dirty() {
            // They would replace unsaved labels: ask first.
            self.confirm = Some(Pending::OpenLabels(path));
            return;
        }
        let wake = ctx.clone();
        self.label_job.start(Job::spawn(
            "load-labels",
            doc.id(),
            move || wake.request_repaint(),
            move |_| loader::load_labels(&path).map(|(l, t)| (path, l, t)),
        ));
    }

    /// Load a prediction label map in the background.
    pub fn load_prediction(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let wake = ctx.clone();
        self.prediction_job.start(Job::spawn(
            "load-prediction",
            doc.id(),
            move || wake.request_repaint(),
            move |_| evaluation::load_prediction(&path),
        ));
    }

    /// Install a prediction for the open case (tests; the app's jobs call
    /// the document directly); it must be on the labels' grid.
    pub fn set_prediction(&mut self, prediction: Prediction) -> Result<(), String> {
        let Some(doc) = &mut self.doc else {
            return Err("open a case before its prediction".into());
        };
        doc.set_prediction(prediction)
    }
}

impl UmeApp {
    /// The DICOM folder's series to choose from, while the picker is open.
    pub fn series_choice(&self) -> Option<&[(String, String)]> {
        self.series_choice.as_ref().map(|(_, s)| s.as_slice())
    }

    /// The series picker: a DICOM folder with several series asks which
    /// one to open (as Slicer's DICOM browser and ITK-SNAP do).
    pub(super) fn series_picker_ui(&mut self, ctx: &egui::Context) {
        let Some((path, series)) = &self.series_choice else {
            return;
        };
        let mut chosen = None;
        let mut open = true;
        egui::Window::new("Open DICOM series")
            .collapsible(false)
            .open(&mut open)
            .show(ctx, |ui| {
                ui.label(format!("{} holds {} series:", path.display(), series.len()));
                egui::ScrollArea::vertical()
                    .max_height(320.0)
                    .show(ui, |ui| {
                        for (id, line) in series {
                            if ui.button(line).on_hover_text(id).clicked() {
                                chosen = Some(id.clone());
                            }
                        }
                    });
            });
        if let Some(id) = chosen {
            let path = path.clone();
            self.series_choice = None;
            self.open(
                ctx,
                LoadRequest::Dicom {
                    path,
                    series: Some(id),
                },
            );
        } else if !open {
            self.series_choice = None;
        }
    }
}
