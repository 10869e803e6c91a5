//! Keys to commands, and the keyboard shortcuts window. Every press of a
//! frame counts, in the order pressed (a slow frame under software
//! rendering can hold several), and a held key repeats only the commands
//! where repeating makes sense.

use super::commands::Command;
use eframe::egui::{self, KeyboardShortcut};

impl Command {
    /// Whether holding the key runs the command again (stepping, undo,
    /// brush size); a held Ctrl+S or Ctrl+O runs once.
    pub fn repeats(self) -> bool {
        matches!(
            self,
            Command::NextSlice
                | Command::PreviousSlice
                | Command::NextFrame
                | Command::PreviousFrame
                | Command::Undo
                | Command::Redo
                | Command::BrushSmaller
                | Command::BrushLarger
        )
    }

    /// Commands whose shortcut was pressed this frame, once per press and
    /// in the order pressed (Ctrl+Z then Ctrl+Shift+Z in one slow frame is
    /// undo, then redo), key repeats only for [`Command::repeats`]; the key
    /// events are consumed. Shortcuts with more modifiers are matched
    /// first, since egui's Ctrl+S also matches Ctrl+Shift+S; plain keys are
    /// left to a text field that has the keyboard.
    pub fn from_keyboard(ctx: &egui::Context) -> Vec<Command> {
        let typing = ctx.egui_wants_keyboard_input();
        let mut all: Vec<(Command, &KeyboardShortcut)> = Command::ALL
            .iter()
            .flat_map(|&c| c.shortcuts().iter().map(move |s| (c, s)))
            .filter(|(_, s)| !typing || s.modifiers.command || s.modifiers.ctrl)
            .collect();
        all.sort_by_key(|(_, s)| {
            std::cmp::Reverse(
                u8::from(s.modifiers.command || s.modifiers.ctrl)
                    + u8::from(s.modifiers.shift)
                    + u8::from(s.modifiers.alt),
            )
        });
        let mut out = Vec::new();
        ctx.input_mut(|i| {
            // egui's consume_shortcut takes every press of a key in the
            // frame at once and reports one: held keys and quick taps on a
            // slow frame lost slice steps and undos.
            i.events.retain(|event| {
                let egui::Event::Key {
                    key,
                    pressed: true,
                    repeat,
                    modifiers,
                    ..
                } = event
                else {
                    return true;
                };
                let Some((c, _)) = all.iter().find(|(_, s)| {
                    s.logical_key == *key && modifiers.matches_logically(s.modifiers)
                }) else {
                    return true;
                };
                if !*repeat || c.repeats() {
                    out.push(*c);
                }
                false
            });
        });
        out
    }
}

/// Help → Keyboard shortcuts, generated from [`Command::ALL`], plus the
/// pointer gestures of the views.
pub fn shortcuts_window(open: &mut bool, ctx: &egui::Context) {
    egui::Window::new("Keyboard shortcuts")
        .open(open)
        .collapsible(false)
        .show(ctx, |ui| {
            // Taller than a small window: scroll rather than cut it off.
            egui::ScrollArea::vertical().show(ui, |ui| shortcuts_grid(ui, ctx));
        });
}

fn shortcuts_grid(ui: &mut egui::Ui, ctx: &egui::Context) {
    egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
        for c in Command::ALL {
            if c.shortcuts().is_empty() {
                continue;
            }
            ui.label(c.shortcut_text(ctx));
            ui.label(c.label());
            ui.end_row();
        }
        for (gesture, what) in POINTER_GESTURES {
            ui.label(*gesture);
            ui.label(*what);
            ui.end_row();
        }
    });
}

/// Pointer gestures in the views (not commands: they carry a position).
pub const POINTER_GESTURES: &[(&str, &str)] = &[
    ("Left click / drag", "Move the crosshair (or use the tool)"),
    ("Right drag", "Window / level"),
    ("Middle drag", "Pan"),
    ("Wheel", "One slice per notch"),
    ("Ctrl+wheel", "Zoom"),
    ("Double click", "Maximise the view / back to the grid"),
    ("Left drag in 3D", "Orbit"),
];
