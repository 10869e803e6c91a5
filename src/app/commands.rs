//! Every user action as one [`Command`] carrying its label, tooltip and
//! shortcuts. Menus, the keyboard, the toolbar and the tests all go through
//! [`UmeApp::run_command`], so a shortcut cannot drift from its menu item
//! and Help → Keyboard shortcuts is generated from this list
//! ([`super::keyboard`] turns key presses into commands and draws it).
//!
//! The shortcuts named in the app-core issue are a contract with scripted
//! tests outside the project: Ctrl+O, Ctrl+S, Ctrl+Shift+S, Ctrl+Z, Ctrl+Y,
//! Ctrl+Shift+Z, Ctrl+Q, PageUp/PageDown and the arrow keys, Space, C, B,
//! E, F, P, `[` and `]`; the learning-from-labels issue adds D (mark the
//! slice done).

use super::UmeApp;
use super::settings::Tool;
use eframe::egui::{self, Key, KeyboardShortcut, Modifiers};

/// A user action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Open image files.
    Open,
    /// Open a dataset or case folder.
    OpenFolder,
    /// Open a label map onto the open image.
    OpenLabels,
    /// Open a prediction to compare with the labels.
    OpenPrediction,
    /// Save the labels where they came from (or where `--save-labels-to`
    /// says); asks where when neither is known.
    SaveLabels,
    /// Save the labels to a new file.
    SaveLabelsAs,
    /// Save the prediction as a label map.
    SavePredictionAs,
    /// Copy the fine-tuned model to a folder.
    SaveModelAs,
    /// Read a label table (ITK-SNAP label description or JSON).
    ImportLabelTable,
    /// Write the label table (ITK-SNAP label description or JSON).
    ExportLabelTable,
    /// Save the window as PNG.
    ExportWindow,
    /// Save the metrics table as CSV.
    ExportMetricsCsv,
    /// Save the metrics as JSON.
    ExportMetricsJson,
    /// Undo the last change of the labels.
    Undo,
    /// Redo.
    Redo,
    /// Close UME.
    Quit,
    /// One slice up in the view under the pointer.
    NextSlice,
    /// One slice down.
    PreviousSlice,
    /// Next frame of a 4D case.
    NextFrame,
    /// Previous frame.
    PreviousFrame,
    /// Play or pause the cine.
    PlayPause,
    /// Left click moves the crosshair.
    ToolCrosshair,
    /// Left drag paints the active label.
    ToolBrush,
    /// Left drag erases.
    ToolEraser,
    /// Left click flood-fills.
    ToolFill,
    /// Left clicks draw a closed outline.
    ToolPolygon,
    /// Smaller brush.
    BrushSmaller,
    /// Larger brush.
    BrushLarger,
    /// Fill the slices between annotated slices of the active label.
    Interpolate,
    /// The same for every label.
    InterpolateAll,
    /// Take the whole prediction into the labels (one undo step).
    AcceptPrediction,
    /// Mark the crosshair's slice labelled (done), or take the mark back.
    MarkSliceDone,
    /// Make the table's n-th label (1–9) active: the digit keys.
    Label(u8),
    /// Zoom, pan and 3D camera back to fit.
    ResetViews,
    /// The keyboard shortcuts window.
    ShowShortcuts,
}

const fn key(k: Key) -> KeyboardShortcut {
    KeyboardShortcut::new(Modifiers::NONE, k)
}

const fn cmd(k: Key) -> KeyboardShortcut {
    KeyboardShortcut::new(Modifiers::COMMAND, k)
}

const fn cmd_shift(k: Key) -> KeyboardShortcut {
    KeyboardShortcut::new(Modifiers::COMMAND.plus(Modifiers::SHIFT), k)
}

const SC_OPEN: &[KeyboardShortcut] = &[cmd(Key::O)];
const SC_SAVE_LABELS: &[KeyboardShortcut] = &[cmd(Key::S)];
const SC_SAVE_LABELS_AS: &[KeyboardShortcut] = &[cmd_shift(Key::S)];
const SC_UNDO: &[KeyboardShortcut] = &[cmd(Key::Z)];
const SC_REDO: &[KeyboardShortcut] = &[cmd(Key::Y), cmd_shift(Key::Z)];
const SC_QUIT: &[KeyboardShortcut] = &[cmd(Key::Q)];
const SC_NEXT_SLICE: &[KeyboardShortcut] = &[key(Key::PageUp), key(Key::ArrowUp)];
const SC_PREVIOUS_SLICE: &[KeyboardShortcut] = &[key(Key::PageDown), key(Key::ArrowDown)];
const SC_NEXT_FRAME: &[KeyboardShortcut] = &[key(Key::ArrowRight)];
const SC_PREVIOUS_FRAME: &[KeyboardShortcut] = &[key(Key::ArrowLeft)];
const SC_PLAY_PAUSE: &[KeyboardShortcut] = &[key(Key::Space)];
const SC_TOOL_CROSSHAIR: &[KeyboardShortcut] = &[key(Key::C)];
const SC_TOOL_BRUSH: &[KeyboardShortcut] = &[key(Key::B)];
const SC_TOOL_ERASER: &[KeyboardShortcut] = &[key(Key::E)];
const SC_TOOL_FILL: &[KeyboardShortcut] = &[key(Key::F)];
const SC_TOOL_POLYGON: &[KeyboardShortcut] = &[key(Key::P)];
const SC_BRUSH_SMALLER: &[KeyboardShortcut] = &[key(Key::OpenBracket)];
const SC_BRUSH_LARGER: &[KeyboardShortcut] = &[key(Key::CloseBracket)];
const SC_SHOW_SHORTCUTS: &[KeyboardShortcut] = &[key(Key::F1)];

const SC_INTERPOLATE: &[KeyboardShortcut] = &[key(Key::I)];
const SC_MARK_SLICE_DONE: &[KeyboardShortcut] = &[key(Key::D)];
const SC_LABEL1: &[KeyboardShortcut] = &[key(Key::Num1)];
const SC_LABEL2: &[KeyboardShortcut] = &[key(Key::Num2)];
const SC_LABEL3: &[KeyboardShortcut] = &[key(Key::Num3)];
const SC_LABEL4: &[KeyboardShortcut] = &[key(Key::Num4)];
const SC_LABEL5: &[KeyboardShortcut] = &[key(Key::Num5)];
const SC_LABEL6: &[KeyboardShortcut] = &[key(Key::Num6)];
const SC_LABEL7: &[KeyboardShortcut] = &[key(Key::Num7)];
const SC_LABEL8: &[KeyboardShortcut] = &[key(Key::Num8)];
const SC_LABEL9: &[KeyboardShortcut] = &[key(Key::Num9)];

impl Command {
    /// Every command, in menu order.
    pub const ALL: [Command; 43] = [
        Command::Open,
        Command::OpenFolder,
        Command::OpenLabels,
        Command::OpenPrediction,
        Command::SaveLabels,
        Command::SaveLabelsAs,
        Command::SavePredictionAs,
        Command::SaveModelAs,
        Command::ImportLabelTable,
        Command::ExportLabelTable,
        Command::ExportWindow,
        Command::ExportMetricsCsv,
        Command::ExportMetricsJson,
        Command::Undo,
        Command::Redo,
        Command::Quit,
        Command::NextSlice,
        Command::PreviousSlice,
        Command::NextFrame,
        Command::PreviousFrame,
        Command::PlayPause,
        Command::ToolCrosshair,
        Command::ToolBrush,
        Command::ToolEraser,
        Command::ToolFill,
        Command::ToolPolygon,
        Command::BrushSmaller,
        Command::BrushLarger,
        Command::Interpolate,
        Command::InterpolateAll,
        Command::AcceptPrediction,
        Command::MarkSliceDone,
        Command::Label(1),
        Command::Label(2),
        Command::Label(3),
        Command::Label(4),
        Command::Label(5),
        Command::Label(6),
        Command::Label(7),
        Command::Label(8),
        Command::Label(9),
        Command::ResetViews,
        Command::ShowShortcuts,
    ];

    /// Menu text.
    pub fn label(self) -> &'static str {
        match self {
            Command::Open => "Open file…",
            Command::OpenFolder => "Open folder…",
            Command::OpenLabels => "Open labels…",
            Command::OpenPrediction => "Open prediction labels…",
            Command::SaveLabels => "Save labels",
            Command::SaveLabelsAs => "Save labels as…",
            Command::SavePredictionAs => "Save prediction as…",
            Command::SaveModelAs => "Save model as…",
            Command::ImportLabelTable => "Import label table…",
            Command::ExportLabelTable => "Export label table…",
            Command::ExportWindow => "Export window as PNG…",
            Command::ExportMetricsCsv => "Export metrics as CSV…",
            Command::ExportMetricsJson => "Export metrics as JSON…",
            Command::Undo => "Undo",
            Command::Redo => "Redo",
            Command::Quit => "Quit",
            Command::NextSlice => "Next slice",
            Command::PreviousSlice => "Previous slice",
            Command::NextFrame => "Next frame",
            Command::PreviousFrame => "Previous frame",
            Command::PlayPause => "Play / pause",
            Command::ToolCrosshair => "Crosshair",
            Command::ToolBrush => "Brush",
            Command::ToolEraser => "Eraser",
            Command::ToolFill => "Fill",
            Command::ToolPolygon => "Polygon",
            Command::BrushSmaller => "Smaller brush",
            Command::BrushLarger => "Larger brush",
            Command::Interpolate => "Fill between slices",
            Command::InterpolateAll => "Fill between slices, all labels",
            Command::AcceptPrediction => "Accept prediction",
            Command::MarkSliceDone => "Mark slice done",
            Command::Label(_) => "Table label (digit)",
            Command::ResetViews => "Reset views",
            Command::ShowShortcuts => "Keyboard shortcuts",
        }
    }

    /// Hover text.
    pub fn tooltip(self) -> &'static str {
        match self {
            Command::Open => "Open NIfTI / Analyze images (several files: one layer each)",
            Command::OpenFolder => "Open a BraTS, ACDC, TotalSegmentator, MSD or nnU-Net folder",
            Command::OpenLabels => "Open a label map onto the open image (same grid)",
            Command::OpenPrediction => "Open a predicted label map to compare with the labels",
            Command::SaveLabels => {
                "Save the labels to the file they came from, or to --save-labels-to"
            }
            Command::SaveLabelsAs => "Save the labels as NIfTI, with the label table beside them",
            Command::SavePredictionAs => "Save the prediction as a NIfTI label map",
            Command::SaveModelAs => "Copy the fine-tuned model (config.json + model.bpk)",
            Command::ImportLabelTable => {
                "Names and colours from an ITK-SNAP label description file (.txt) or UME's JSON"
            }
            Command::ExportLabelTable => {
                "Write the table as an ITK-SNAP label description file (.txt) or JSON (.json)"
            }
            Command::ExportWindow => "Save a PNG of the window",
            Command::ExportMetricsCsv => "Save the metrics table as CSV",
            Command::ExportMetricsJson => "Save the metrics as JSON (∞ as \"inf\", NaN as null)",
            Command::Undo => "Undo the last change of the labels",
            Command::Redo => "Redo what was undone",
            Command::Quit => "Close UME",
            Command::NextSlice => "One slice up in the view under the pointer",
            Command::PreviousSlice => "One slice down in the view under the pointer",
            Command::NextFrame => "Next time frame of a 4D case",
            Command::PreviousFrame => "Previous time frame of a 4D case",
            Command::PlayPause => "Play or pause the cine",
            Command::ToolCrosshair => "Left click moves the crosshair (navigate)",
            Command::ToolBrush => "Left drag paints the active label",
            Command::ToolEraser => "Left drag erases labels",
            Command::ToolFill => {
                "Left click fills the connected region (bounded by the intensity range and distance)"
            }
            Command::ToolPolygon => {
                "Click vertices or drag a lasso in a slice: the outline is filled when closed"
            }
            Command::BrushSmaller => "Brush radius ÷ 1.25",
            Command::BrushLarger => "Brush radius × 1.25",
            Command::Interpolate => {
                "Shape-based interpolation of the active label between annotated slices (along the view under the pointer)"
            }
            Command::InterpolateAll => "Fill between slices for every label",
            Command::AcceptPrediction => "Make the labels the prediction (one undo step)",
            Command::MarkSliceDone => {
                "The crosshair's slice (z) is labelled, even where it is background: fine-tuning learns from labelled slices only (press again to unmark)"
            }
            Command::Label(_) => "Make this label of the table the active one",
            Command::ResetViews => "Zoom, pan and the 3D camera back to fit",
            Command::ShowShortcuts => "List every keyboard shortcut",
        }
    }

    /// Keyboard shortcuts (the first is shown in menus).
    pub fn shortcuts(self) -> &'static [KeyboardShortcut] {
        match self {
            Command::Open => SC_OPEN,
            Command::SaveLabels => SC_SAVE_LABELS,
            Command::SaveLabelsAs => SC_SAVE_LABELS_AS,
            Command::Undo => SC_UNDO,
            Command::Redo => SC_REDO,
            Command::Quit => SC_QUIT,
            Command::NextSlice => SC_NEXT_SLICE,
            Command::PreviousSlice => SC_PREVIOUS_SLICE,
            Command::NextFrame => SC_NEXT_FRAME,
            Command::PreviousFrame => SC_PREVIOUS_FRAME,
            Command::PlayPause => SC_PLAY_PAUSE,
            Command::ToolCrosshair => SC_TOOL_CROSSHAIR,
            Command::ToolBrush => SC_TOOL_BRUSH,
            Command::ToolEraser => SC_TOOL_ERASER,
            Command::ToolFill => SC_TOOL_FILL,
            Command::ToolPolygon => SC_TOOL_POLYGON,
            Command::BrushSmaller => SC_BRUSH_SMALLER,
            Command::BrushLarger => SC_BRUSH_LARGER,
            Command::ShowShortcuts => SC_SHOW_SHORTCUTS,
            Command::Interpolate => SC_INTERPOLATE,
            Command::MarkSliceDone => SC_MARK_SLICE_DONE,
            Command::Label(1) => SC_LABEL1,
            Command::Label(2) => SC_LABEL2,
            Command::Label(3) => SC_LABEL3,
            Command::Label(4) => SC_LABEL4,
            Command::Label(5) => SC_LABEL5,
            Command::Label(6) => SC_LABEL6,
            Command::Label(7) => SC_LABEL7,
            Command::Label(8) => SC_LABEL8,
            Command::Label(9) => SC_LABEL9,
            _ => &[],
        }
    }

    /// The first shortcut as text ("Ctrl+S").
    pub fn shortcut_text(self, ctx: &egui::Context) -> String {
        self.shortcuts()
            .iter()
            .map(|s| {
                // egui spells the bracket keys out ("OpenBracket").
                ctx.format_shortcut(s)
                    .replace("OpenBracket", "[")
                    .replace("CloseBracket", "]")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The tool a tool command selects.
    pub fn tool(self) -> Option<Tool> {
        match self {
            Command::ToolCrosshair => Some(Tool::Crosshair),
            Command::ToolBrush => Some(Tool::Brush),
            Command::ToolEraser => Some(Tool::Eraser),
            Command::ToolFill => Some(Tool::Fill),
            Command::ToolPolygon => Some(Tool::Polygon),
            _ => None,
        }
    }
}

/// A menu entry for `command`: its label, shortcut and tooltip, greyed out
/// when it cannot run now.
pub fn menu_item(app: &mut UmeApp, ui: &mut egui::Ui, command: Command) {
    let enabled = app.can_run(command);
    let unsaved = command == Command::SaveLabels
        && app
            .doc
            .as_ref()
            .is_some_and(super::document::Document::is_dirty);
    let text = if unsaved {
        format!("{} (unsaved changes)", command.label())
    } else {
        command.label().to_string()
    };
    let button = egui::Button::new(text).shortcut_text(command.shortcut_text(ui.ctx()));
    if ui
        .add_enabled(enabled, button)
        .on_hover_text(command.tooltip())
        .clicked()
    {
        app.run_command(ui.ctx(), command);
        ui.close();
    }
}

impl UmeApp {
    /// Whether `command` can run now (menus grey it out otherwise).
    pub fn can_run(&self, command: Command) -> bool {
        let doc = self.doc.as_ref();
        let has_doc = doc.is_some();
        match command {
            Command::OpenLabels
            | Command::ImportLabelTable
            | Command::ExportLabelTable
            | Command::OpenPrediction
            | Command::NextSlice
            | Command::PreviousSlice
            | Command::ExportWindow
            | Command::MarkSliceDone
            | Command::ResetViews => has_doc,
            Command::SaveLabels | Command::SaveLabelsAs => {
                doc.is_some_and(|d| !d.labels().is_empty())
            }
            Command::Undo => doc.is_some_and(|d| d.history_len().0 > 0 || d.is_editing()),
            Command::Redo => doc.is_some_and(|d| d.history_len().1 > 0),
            Command::SavePredictionAs | Command::AcceptPrediction => {
                doc.is_some_and(|d| d.prediction().is_some())
            }
            Command::Interpolate | Command::InterpolateAll => {
                doc.is_some_and(|d| !d.labels().is_empty()) && !self.tool_running()
            }
            Command::ExportMetricsCsv | Command::ExportMetricsJson => self.eval.result.is_some(),
            Command::NextFrame | Command::PreviousFrame | Command::PlayPause => {
                doc.is_some_and(|d| d.frames() > 1)
            }
            #[cfg(feature = "ml")]
            Command::SaveModelAs => self.ai.fine_tuned().is_some(),
            #[cfg(not(feature = "ml"))]
            Command::SaveModelAs => false,
            _ => true,
        }
    }

    /// Run a command (menus, keyboard, toolbar and tests all come here).
    pub fn run_command(&mut self, ctx: &egui::Context, command: Command) {
        if !self.can_run(command) {
            // Say why a shortcut did nothing.
            match command {
                Command::SaveLabels | Command::SaveLabelsAs if self.doc.is_some() => self
                    .notes
                    .error("there are no labels to save: open or paint labels first"),
                Command::Undo => self.notes.info("nothing to undo"),
                Command::Redo => self.notes.info("nothing to redo"),
                _ => {}
            }
            return;
        }
        if let Some(tool) = command.tool() {
            self.settings.tool = tool;
            return;
        }
        use super::files::{MetricsFormat, Pick};
        match command {
            Command::Open => self.pick(ctx, Pick::Open),
            Command::OpenFolder => self.pick(ctx, Pick::OpenFolder),
            Command::OpenLabels => self.pick(ctx, Pick::Labels),
            Command::OpenPrediction => self.pick(ctx, Pick::Prediction),
            Command::SaveLabels => {
                let target = self.save_labels_to.clone().or_else(|| {
                    self.doc
                        .as_ref()
                        .and_then(|d| d.sources().labels.clone())
                        .filter(|p| crate::io::is_image_file_name(p))
                });
                match target {
                    Some(path) => self.save_labels_to(ctx, path),
                    None => self.pick(ctx, Pick::SaveLabels),
                }
            }
            Command::SaveLabelsAs => self.pick(ctx, Pick::SaveLabels),
            Command::SavePredictionAs => self.pick(ctx, Pick::SavePrediction),
            Command::SaveModelAs => self.pick(ctx, Pick::SaveModel),
            Command::ImportLabelTable => self.pick(ctx, Pick::ImportTable),
            Command::ExportLabelTable => self.pick(ctx, Pick::ExportTable),
            Command::ExportWindow => self.pick(ctx, Pick::ExportWindow),
            Command::ExportMetricsCsv => self.pick(ctx, Pick::ExportMetrics(MetricsFormat::Csv)),
            Command::ExportMetricsJson => {
                self.pick(ctx, Pick::ExportMetrics(MetricsFormat::Json));
            }
            Command::Undo => {
                if !self.doc.as_mut().is_some_and(super::Document::undo) {
                    self.notes.info("nothing to undo");
                }
            }
            Command::Redo => {
                if !self.doc.as_mut().is_some_and(super::Document::redo) {
                    self.notes.info("nothing to redo");
                }
            }
            Command::Quit => {
                self.quit_requested = true;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            Command::NextSlice | Command::PreviousSlice => {
                let steps = if command == Command::NextSlice { 1 } else { -1 };
                self.apply(
                    ctx,
                    super::views::Intent::StepSlice(self.camera.focus, steps),
                );
            }
            Command::NextFrame | Command::PreviousFrame => {
                let frames = self
                    .doc
                    .as_ref()
                    .map_or(1, super::document::Document::frames)
                    .max(1);
                self.cursor.frame = if command == Command::NextFrame {
                    (self.cursor.frame + 1) % frames
                } else {
                    (self.cursor.frame + frames - 1) % frames
                };
            }
            Command::PlayPause => self.playing = !self.playing,
            Command::BrushSmaller => self.settings.scale_brush(1.0 / 1.25),
            Command::BrushLarger => self.settings.scale_brush(1.25),
            Command::ResetViews => self.camera = super::views::Camera::default(),
            Command::ShowShortcuts => self.show_shortcuts = true,
            Command::Interpolate => self.interpolate(ctx, false),
            Command::InterpolateAll => self.interpolate(ctx, true),
            Command::AcceptPrediction => self.accept_prediction(ctx, None),
            Command::MarkSliceDone => super::slices_ui::toggle_done(self),
            Command::Label(n) => self.select_label(usize::from(n)),
            Command::ToolCrosshair
            | Command::ToolBrush
            | Command::ToolEraser
            | Command::ToolFill
            | Command::ToolPolygon => {}
        }
    }
}
