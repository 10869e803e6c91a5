//! One place for messages: errors, warnings and results from every part of
//! the app go here and are shown in one area (the latest in the status
//! bar, errors as a dismissable list, the history in Help → Messages).
//! Progress of running jobs is drawn beside them from the jobs themselves.

use eframe::egui;
use std::collections::VecDeque;

/// How serious a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A result or a step done.
    Info,
    /// Something the user should know (data shown differently, etc.).
    Warning,
    /// Something failed; shown until dismissed.
    Error,
}

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Unique id (for dismissing).
    pub id: u64,
    /// Seriousness.
    pub level: Level,
    /// The text, naming the file and the problem.
    pub text: String,
    /// Errors stay until dismissed; others are history.
    pub dismissed: bool,
}

/// How many messages are kept.
const KEEP: usize = 200;

/// The app's messages.
#[derive(Debug, Default)]
pub struct Notifications {
    notes: VecDeque<Note>,
    next: u64,
}

impl Notifications {
    fn push(&mut self, level: Level, text: String) {
        self.next += 1;
        self.notes.push_back(Note {
            id: self.next,
            level,
            text,
            dismissed: level != Level::Error,
        });
        while self.notes.len() > KEEP {
            self.notes.pop_front();
        }
    }

    /// A result or a step done.
    pub fn info(&mut self, text: impl Into<String>) {
        self.push(Level::Info, text.into());
    }

    /// A warning.
    pub fn warn(&mut self, text: impl Into<String>) {
        self.push(Level::Warning, text.into());
    }

    /// An error, shown until dismissed.
    pub fn error(&mut self, text: impl Into<String>) {
        self.push(Level::Error, text.into());
    }

    /// The newest message.
    pub fn latest(&self) -> Option<&Note> {
        self.notes.back()
    }

    /// The newest message's text ("" when none).
    pub fn latest_text(&self) -> &str {
        self.latest().map_or("", |n| n.text.as_str())
    }

    /// Errors not yet dismissed, oldest first.
    pub fn errors(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter().filter(|n| !n.dismissed)
    }

    /// Whether an undismissed error exists.
    pub fn has_error(&self) -> bool {
        self.errors().next().is_some()
    }

    /// Whether any of the last `n` messages contains `text`.
    pub fn recent_contains(&self, n: usize, text: &str) -> bool {
        self.notes
            .iter()
            .rev()
            .take(n)
            .any(|m| m.text.contains(text))
    }

    /// Every kept message, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter()
    }

    /// Dismiss an error.
    pub fn dismiss(&mut self, id: u64) {
        if let Some(n) = self.notes.iter_mut().find(|n| n.id == id) {
            n.dismissed = true;
        }
    }

    /// The undismissed errors, each with an OK button.
    pub fn errors_ui(&mut self, ctx: &egui::Context) {
        let open: Vec<(u64, String)> = self.errors().map(|n| (n.id, n.text.clone())).collect();
        if open.is_empty() {
            return;
        }
        egui::Window::new("Problems")
            .collapsible(false)
            .anchor(egui::Align2::CENTER_TOP, egui::vec2(0.0, 40.0))
            .show(ctx, |ui| {
                for (id, text) in open {
                    ui.horizontal(|ui| {
                        ui.colored_label(egui::Color32::LIGHT_RED, text);
                        if ui.button("OK").clicked() {
                            self.dismiss(id);
                        }
                    });
                }
            });
    }

    /// The message history window.
    pub fn history_ui(&self, open: &mut bool, ctx: &egui::Context) {
        egui::Window::new("Messages").open(open).show(ctx, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                for n in &self.notes {
                    ui.colored_label(color(n.level), &n.text);
                }
            });
        });
    }
}

/// The colour of a level's text.
pub fn color(level: Level) -> egui::Color32 {
    match level {
        Level::Info => egui::Color32::GRAY,
        Level::Warning => egui::Color32::YELLOW,
        Level::Error => egui::Color32::LIGHT_RED,
    }
}

/// "1 image", "3 images": a count and its noun for a message.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
