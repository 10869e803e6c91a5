//! Keeping the user's labels: closing the window or opening another case
//! with unsaved labels asks first (save, discard, cancel); unsaved labels
//! are autosaved every minute on a job ([`autosave`](super::autosave)); and
//! when an image whose autosave was never saved opens again, the app
//! offers to restore it.

use super::document::Labels;
use super::jobs::Job;
use super::{Command, LoadRequest, UmeApp, autosave};
use eframe::egui;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What waits for the user's answer about unsaved labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    /// Close the window.
    Quit,
    /// Open another case.
    Open(LoadRequest),
    /// Open a label map in place of the labels.
    OpenLabels(std::path::PathBuf),
}

impl UmeApp {
    /// Do what was waiting (the labels are saved or discarded).
    pub(super) fn proceed(&mut self, ctx: &egui::Context, pending: Pending) {
        match pending {
            Pending::Quit => {
                self.allow_close = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Pending::Open(request) => {
                if let Some(doc) = &mut self.doc {
                    doc.discard_changes();
                }
                self.open(ctx, request);
            }
            Pending::OpenLabels(path) => {
                if let Some(doc) = &mut self.doc {
                    doc.discard_changes();
                }
                self.load_labels(ctx, path);
            }
        }
    }

    /// Discard the unsaved labels' autosave (the user chose to drop them).
    fn discard_autosave(&mut self) {
        if let (Some(root), Some(doc)) = (&self.autosave_root, &self.doc) {
            autosave::discard(&autosave::folder(root, &doc.identity()));
        }
    }

    /// A close request with unsaved labels is held until the user answers.
    pub(super) fn guard_close(&mut self, ctx: &egui::Context) {
        let asked = ctx.input(|i| i.viewport().close_requested());
        if asked && !self.allow_close && self.doc.as_ref().is_some_and(super::Document::is_dirty) {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm = Some(Pending::Quit);
        }
    }

    /// Start an autosave when labels have been unsaved for the interval.
    pub(super) fn autosave_logic(&mut self, ctx: &egui::Context) {
        if let Some((_, r)) = self.autosave_job.poll()
            && let Err(e) = r
        {
            self.notes.warn(format!("autosave failed: {e}"));
        }
        let (Some(doc), Some(root)) = (&self.doc, &self.autosave_root) else {
            return;
        };
        let state = (doc.id(), doc.revisions().labels);
        if !doc.is_dirty() || self.autosaved == Some(state) {
            self.dirty_since = None;
            return;
        }
        let since = *self.dirty_since.get_or_insert_with(Instant::now);
        // Mid-stroke or with a recovery offer unanswered (its files must
        // not be overwritten), the autosave waits; the clock keeps running.
        if doc.is_editing() || self.recovery.is_some() {
            ctx.request_repaint_after(Duration::from_millis(500));
            return;
        }
        let interval = Duration::from_secs_f64(self.autosave_interval_secs.max(0.0));
        let elapsed = since.elapsed();
        if elapsed < interval {
            ctx.request_repaint_after(interval - elapsed);
            return;
        }
        if self.autosave_job.is_running() {
            return;
        }
        let dir = autosave::folder(root, &doc.identity());
        let sources = doc.identity();
        let maps: Vec<_> = doc.labels().maps().map(|(f, l)| (f, l.clone())).collect();
        let slices = doc.slice_lists();
        let Some(image) = doc.layer(0) else { return };
        let geometry = image.volume.geometry.clone();
        let table = doc.table().clone();
        let wake = ctx.clone();
        self.autosave_job.start(Job::spawn(
            "autosave",
            doc.id(),
            move || wake.request_repaint(),
            move |job| {
                job.cancel_token().check("autosave")?;
                autosave::write(&dir, &sources, &maps, &slices, &geometry, &table, &|| {
                    job.is_cancelled()
                })
            },
        ));
        self.autosaved = Some(state);
        self.dirty_since = None;
    }

    /// Collect a restored autosave.
    pub(super) fn restore_logic(&mut self) {
        let Some((tag, r)) = self.restore_job.poll() else {
            return;
        };
        let Some(doc) = &mut self.doc else { return };
        if tag != doc.id() {
            return;
        }
        let result = r.and_then(|rec| {
            let mut labels = Labels::default();
            for (i, (frame, map)) in rec.maps.into_iter().enumerate() {
                labels.push(frame, Arc::new(map));
                let listed = rec.meta.slices.get(i).cloned().flatten();
                labels = labels.with_listed(i, listed);
            }
            doc.restore_labels(labels, rec.meta.table)
        });
        match result {
            Ok(()) => self
                .notes
                .info("restored the autosaved labels (not yet saved)"),
            Err(e) => self
                .notes
                .error(format!("could not restore the autosave: {e}")),
        }
    }

    /// The unsaved-labels question and the recovery offer.
    pub(super) fn safety_ui(&mut self, ctx: &egui::Context) {
        if let Some(pending) = self.confirm.clone() {
            let what = match &pending {
                Pending::Quit => "before closing",
                Pending::Open(_) => "before opening another case",
                Pending::OpenLabels(_) => "before opening other labels in their place",
            };
            let mut answer = None;
            egui::Modal::new(egui::Id::unique("unsaved labels")).show(ctx, |ui| {
                ui.heading("Unsaved labels");
                ui.label(format!("Save the labels {what}?"));
                ui.horizontal(|ui| {
                    if ui.button("Save").clicked() {
                        answer = Some(0);
                    }
                    if ui.button("Discard changes").clicked() {
                        answer = Some(1);
                    }
                    if ui.button("Cancel").clicked() {
                        answer = Some(2);
                    }
                });
            });
            match answer {
                Some(0) => {
                    self.confirm = None;
                    self.after_save = Some(pending);
                    self.run_command(ctx, Command::SaveLabels);
                }
                Some(1) => {
                    self.confirm = None;
                    self.autosave_job.abandon();
                    self.discard_autosave();
                    self.proceed(ctx, pending);
                }
                Some(2) => self.confirm = None,
                _ => {}
            }
        }
        let Some((dir, meta)) = self.recovery.clone() else {
            return;
        };
        let mut answer = None;
        egui::Window::new("Recover labels")
            .collapsible(false)
            .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, 0.0))
            .show(ctx, |ui| {
                let age = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    .saturating_sub(meta.saved_at_secs);
                ui.label(format!(
                    "Labels of this image were autosaved {} ago but never saved.",
                    human_age(age)
                ));
                ui.horizontal(|ui| {
                    if ui.button("Restore").clicked() {
                        answer = Some(true);
                    }
                    if ui.button("Discard autosave").clicked() {
                        answer = Some(false);
                    }
                });
            });
        match answer {
            Some(true) => {
                self.recovery = None;
                let tag = self.doc.as_ref().map_or(0, super::Document::id);
                let wake = ctx.clone();
                self.restore_job.start(Job::spawn(
                    "restore",
                    tag,
                    move || wake.request_repaint(),
                    move |_| autosave::read(&dir),
                ));
            }
            Some(false) => {
                self.recovery = None;
                autosave::discard(&dir);
            }
            None => {}
        }
    }
}

/// "40 s", "3 min", "2 h", "5 days".
fn human_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}
