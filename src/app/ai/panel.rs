//! The "Segment & fine-tune" section of the side panel: model picker
//! (demos and remembered fine-tuned models), segment / cancel, the what-if,
//! the encoder row, fine-tuning settings with live curves, and the Dice
//! before and after.

use super::{TrainSource, default_model, start_encoder, start_segment, start_training};
use crate::app::UmeApp;
use crate::models::DeviceChoice;
use eframe::egui;

/// The "Segment & fine-tune" section of the side panel.
pub fn section(app: &mut UmeApp, ui: &mut egui::Ui) {
    let ctx = ui.ctx().clone();
    let Some(doc) = &app.doc else { return };
    if app.ai.model.is_empty() {
        app.ai.model = default_model(doc).into();
    }
    let layer_names: Vec<String> = doc.layers().iter().map(|l| l.name.clone()).collect();
    let has_gt = !doc.labels().is_empty();
    let models = app.settings.models.clone();
    egui::CollapsingHeader::new("Segment & fine-tune")
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let l = ui.label("Model");
                egui::ComboBox::from_id_salt("model")
                    .selected_text(short(&app.ai.model))
                    .show_ui(ui, |ui| {
                        for demo in crate::models::ModelSource::demos() {
                            ui.selectable_value(&mut app.ai.model, demo.into(), demo);
                        }
                        // Fine-tuned models, remembered across restarts.
                        for m in models.iter().filter(|m| m.join("config.json").is_file()) {
                            let spec = m.display().to_string();
                            ui.selectable_value(&mut app.ai.model, spec.clone(), short(&spec))
                                .on_hover_text(&spec);
                        }
                    })
                    .response
                    .labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                let l = ui.label("or folder");
                ui.text_edit_singleline(&mut app.ai.model).labelled_by(l.id);
            });
            ui.horizontal(|ui| {
                ui.label("Device");
                ui.radio_value(&mut app.ai.device, DeviceChoice::Auto, "auto");
                ui.radio_value(&mut app.ai.device, DeviceChoice::Cpu, "CPU");
                ui.radio_value(&mut app.ai.device, DeviceChoice::Wgpu, "GPU (wgpu)");
            });
            ui.horizontal(|ui| {
                let busy = app.ai.is_busy();
                if ui
                    .add_enabled(!busy, egui::Button::new("Segment"))
                    .clicked()
                {
                    start_segment(app, &ctx, None);
                }
                if busy && ui.button("Cancel").clicked() {
                    app.ai.cancel(&mut app.notes);
                }
            });
            if let Some((done, total)) = app.ai.segment_progress() {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                        .text(format!("slice {done}/{total}")),
                );
            }
            if layer_names.len() > 1 && has_gt {
                ui.horizontal(|ui| {
                    let l = ui.label("What if without");
                    egui::ComboBox::from_id_salt("drop")
                        .selected_text(
                            layer_names
                                .get(app.ai.drop_channel)
                                .cloned()
                                .unwrap_or_default(),
                        )
                        .show_ui(ui, |ui| {
                            for (i, n) in layer_names.iter().enumerate() {
                                ui.selectable_value(&mut app.ai.drop_channel, i, n);
                            }
                        })
                        .response
                        .labelled_by(l.id);
                    let ready = app.ai.full_prediction().is_some() && !app.ai.is_busy();
                    if ui
                        .add_enabled(ready, egui::Button::new("Run"))
                        .on_disabled_hover_text("segment with all modalities first")
                        .clicked()
                    {
                        let k = app.ai.drop_channel;
                        start_segment(app, &ctx, Some(k));
                    }
                });
                if let Some(w) = &app.ai.what_if {
                    ui.label(format!("Dice with all modalities vs without {}", w.dropped));
                    let no_table = crate::volume::LabelTable::default();
                    let table = app.doc.as_ref().map_or(&no_table, |d| d.table());
                    egui::Grid::new("whatif").striped(true).show(ui, |ui| {
                        for (id, with, without) in &w.rows {
                            ui.label(
                                table
                                    .name_of(*id)
                                    .map_or_else(|| id.to_string(), str::to_string),
                            );
                            ui.label(format!("{with:.3}"));
                            ui.label(format!("{without:.3}"));
                            ui.label(format!("{:+.3}", without - with));
                            ui.end_row();
                        }
                    });
                }
            }
            ui.separator();
            encoder_ui(app, ui, &ctx, &layer_names);
            ui.separator();
            training_ui(app, ui, &ctx);
        });
    super::tokenizer::section(app, ui);
}

/// The encoder row: checkpoint folder, run, fusion weights and modality
/// gates.
fn encoder_ui(app: &mut UmeApp, ui: &mut egui::Ui, ctx: &egui::Context, layers: &[String]) {
    ui.horizontal(|ui| {
        let l = ui.label("UME encoder");
        ui.text_edit_singleline(&mut app.ai.encoder_path)
            .labelled_by(l.id)
            .on_hover_text("an encoder checkpoint folder (config.json + model.bpk)");
    });
    let ready = !app.ai.encoder_path.trim().is_empty() && !app.ai.is_busy();
    if ui
        .add_enabled(ready, egui::Button::new("Keyframes and modality gates"))
        .clicked()
    {
        start_encoder(app, ctx);
    }
    if let Some((g, r)) = &app.ai.encoder_report
        && Some(*g) == app.doc.as_ref().map(crate::app::Document::id)
    {
        ui.label(format!(
            "fusion weights: uniform {:.2} · content {:.2} · attention {:.2}",
            r.weights.first().copied().unwrap_or(f32::NAN),
            r.weights.get(1).copied().unwrap_or(f32::NAN),
            r.weights.get(2).copied().unwrap_or(f32::NAN)
        ));
        let gates: Vec<String> = r
            .gates
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{} {w:.2}", layers.get(i).map_or("?", String::as_str)))
            .collect();
        ui.label(format!("modality gates: {}", gates.join(" · ")));
        let frames: Vec<usize> = r.selected.iter().map(|t| t + 1).collect();
        ui.label(format!("selected frames: {frames:?}"));
    }
}

/// A model name short enough for the picker: the last 25 characters of a
/// long path (characters, not bytes: a non-ASCII path once panicked here).
pub fn short(spec: &str) -> String {
    let n = spec.chars().count();
    if n > 28 {
        let tail: String = spec.chars().skip(n - 25).collect();
        format!("…{tail}")
    } else {
        spec.to_string()
    }
}

fn training_ui(app: &mut UmeApp, ui: &mut egui::Ui, ctx: &egui::Context) {
    ui.label("Fine-tune the model");
    ui.horizontal(|ui| {
        ui.radio_value(&mut app.ai.source, TrainSource::OpenCase, "open case");
        ui.radio_value(&mut app.ai.source, TrainSource::Folder, "dataset folder");
    });
    if app.ai.source == TrainSource::OpenCase
        && let Some(doc) = &app.doc
    {
        let n = doc.labelled_slices(app.cursor.frame).len();
        let held = (n as f64 * super::runs::HELD_OUT_SHARE).round().max(1.0) as usize;
        let text = if n < 2 {
            format!("{n} labelled slice(s) here: label at least 2 (paint, or D)")
        } else {
            format!("Learns from {n} labelled slices; {held} held out to measure it")
        };
        ui.label(text)
        .on_hover_text(format!(
            "Labelled slices: painted, marked done (D), or every slice of labels opened from a file. {:.0}% of them are held out of training and measured before and after.",
            super::runs::HELD_OUT_SHARE * 100.0
        ));
    }
    if app.ai.source == TrainSource::OpenCase {
        ui.checkbox(&mut app.ai.with_folder, "plus a dataset folder")
            .on_hover_text("Train on the open case's labelled slices and on every labelled case of a folder; the open case's held-out slices still measure");
    }
    if app.ai.source == TrainSource::Folder || app.ai.with_folder {
        ui.horizontal(|ui| {
            let l = ui.label("Dataset folder");
            ui.text_edit_singleline(&mut app.ai.data_folder)
                .labelled_by(l.id);
        });
    }
    ui.horizontal(|ui| {
        let l = ui.label("Steps");
        ui.add(egui::DragValue::new(&mut app.ai.steps).range(1..=100_000))
            .labelled_by(l.id);
        let l = ui.label("LR");
        ui.add(
            egui::DragValue::new(&mut app.ai.learning_rate)
                .speed(1e-5)
                .range(1e-7..=1.0),
        )
        .labelled_by(l.id);
    });
    ui.horizontal(|ui| {
        let l = ui.label("Config file");
        ui.text_edit_singleline(&mut app.ai.config_path)
            .labelled_by(l.id)
            .on_hover_text("a configs/*.json training config; empty: the quick settings above");
    });
    ui.horizontal(|ui| {
        let training = app.ai.is_training();
        if ui
            .add_enabled(!app.ai.is_busy(), egui::Button::new("Start fine-tuning"))
            .clicked()
        {
            start_training(app, ctx);
        }
        if training && ui.button("Stop").clicked() {
            app.ai.cancel(&mut app.notes);
        }
    });
    if let Some(run) = &app.ai.run {
        let done = run.step.saturating_sub(run.first_step);
        let left = run.total_steps.saturating_sub(run.step);
        let per = run.started.elapsed().as_secs_f64() / done.max(1) as f64;
        let eta = if done > 0 {
            format!(", about {:.0} s left", per * left as f64)
        } else {
            String::new()
        };
        ui.add(
            egui::ProgressBar::new(run.step as f32 / run.total_steps.max(1) as f32)
                .text(format!("step {}/{}{eta}", run.step, run.total_steps)),
        );
    }
    let curves = &app.ai.curves;
    if !curves.loss.is_empty() {
        egui_plot::Plot::new("loss curve")
            .height(110.0)
            .legend(egui_plot::Legend::default())
            .show(ui, |plot| {
                plot.line(egui_plot::Line::new("loss", curves.loss.clone()));
            });
    }
    if !curves.mean_dice.is_empty() {
        let no_table = crate::volume::LabelTable::default();
        let table = app.doc.as_ref().map_or(&no_table, |d| d.table());
        egui_plot::Plot::new("dice curve")
            .height(110.0)
            .include_y(0.0)
            .include_y(1.0)
            .legend(egui_plot::Legend::default())
            .show(ui, |plot| {
                plot.line(egui_plot::Line::new("mean Dice", curves.mean_dice.clone()));
                for (id, points) in &curves.dice {
                    let name = table
                        .name_of(*id)
                        .map_or_else(|| format!("label {id}"), str::to_string);
                    plot.line(egui_plot::Line::new(name, points.clone()));
                }
            });
    }
    held_out_ui(app, ui);
    before_after(app, ui);
}

/// Dice per structure on the held-out labelled slices, before and after.
fn held_out_ui(app: &UmeApp, ui: &mut egui::Ui) {
    let Some(h) = &app.ai.held_out else { return };
    if h.after.is_empty() {
        return;
    }
    let no_table = crate::volume::LabelTable::default();
    let table = app.doc.as_ref().map_or(&no_table, |d| d.table());
    let slices: Vec<String> = h.slices.iter().map(usize::to_string).collect();
    ui.label(format!(
        "Dice on the held-out slices {} (not trained on)",
        slices.join(", ")
    ));
    egui::Grid::new("held out").striped(true).show(ui, |ui| {
        ui.label("structure");
        ui.label("before");
        ui.label("after");
        ui.end_row();
        for (id, after) in &h.after {
            let before = h
                .before
                .iter()
                .find(|(b, _)| b == id)
                .map_or(f64::NAN, |(_, d)| *d);
            ui.label(
                table
                    .name_of(*id)
                    .map_or_else(|| id.to_string(), str::to_string),
            );
            ui.label(format!("{before:.3}"));
            ui.label(format!("{after:.3}"));
            ui.end_row();
        }
    });
}

/// Dice per structure before fine-tuning and after the swap, on the whole
/// scan (labels read whole from a file only: partial labels are no ground
/// truth for the slices nobody labelled).
fn before_after(app: &UmeApp, ui: &mut egui::Ui) {
    let Some(before) = &app.ai.before else { return };
    if app
        .doc
        .as_ref()
        .is_some_and(super::super::document::Document::is_partly_labelled)
    {
        return;
    }
    let revision = app.doc.as_ref().map(|d| d.revisions().prediction);
    let after = match (app.ai.after_revision, &app.eval.result) {
        (Some(g), Some(e)) if Some(g) == revision && !app.eval.is_computing() => {
            Some(&e.structures)
        }
        _ => None,
    };
    let Some(after) = after else { return };
    let no_table = crate::volume::LabelTable::default();
    let table = app.doc.as_ref().map_or(&no_table, |d| d.table());
    ui.label("Dice on the whole scan before / after (it includes the slices trained on)");
    egui::Grid::new("before after")
        .striped(true)
        .show(ui, |ui| {
            ui.label("structure");
            ui.label("before");
            ui.label("after");
            ui.end_row();
            for s in after {
                let b = before
                    .iter()
                    .find(|(id, _)| *id == s.label)
                    .map_or(f64::NAN, |(_, d)| *d);
                ui.label(
                    table
                        .name_of(s.label)
                        .map_or_else(|| s.label.to_string(), str::to_string),
                );
                ui.label(format!("{b:.3}"));
                ui.label(format!("{:.3}", s.dice));
                ui.end_row();
            }
        });
}

/// "Next slices to label", in the slice bar: a button to rank and the best
/// unlabelled slices (spread out), each a button; returns a slice clicked.
pub fn next_slices_ui(app: &mut UmeApp, ui: &mut egui::Ui) -> Option<usize> {
    let doc = app.doc.as_ref()?;
    let (doc_id, frame) = (doc.id(), app.cursor.frame);
    let mut jump = None;
    ui.horizontal_wrapped(|ui| {
        ui.label(egui::RichText::new("Next slices to label:").strong());
        let busy = app.ai.is_ranking();
        let text = if busy { "Ranking…" } else { "Rank slices" };
        let model = if app.ai.model.is_empty() {
            "the model".to_string()
        } else {
            app.ai.model.clone()
        };
        if ui
            .add_enabled(!busy, egui::Button::new(text))
            .on_hover_text(format!(
                "Score every slice by the uncertainty of {model} (foreground-weighted entropy); fine-tuning re-ranks"
            ))
            .clicked()
        {
            super::start_suggest(app, ui.ctx());
        }
        let Some(doc) = app.doc.as_ref() else { return };
        let Some(scores) = app.ai.scores_for(doc_id) else {
            return;
        };
        let next = scores.top_among(8, |k| {
            doc.slice_state(frame, k) == crate::app::document::SliceState::Unlabelled
        });
        if next.is_empty() {
            ui.label("every slice is labelled");
        }
        for (k, score) in next {
            if ui
                .button(format!("slice {k}"))
                .on_hover_text(format!("score {score:.4}: go to this slice"))
                .clicked()
            {
                jump = Some(k);
            }
        }
    });
    jump
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_names_cut_characters_not_bytes() {
        let path = "/home/jos\u{e9}/mod\u{e8}les/\u{5206}\u{5272}/\u{fc}ber-fine-tuned-1234";
        let s = super::short(path);
        assert!(s.starts_with('\u{2026}') && s.chars().count() == 26, "{s}");
        assert_eq!(super::short("demo-ct"), "demo-ct");
    }
}
