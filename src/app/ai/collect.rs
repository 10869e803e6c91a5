//! Taking in what the model runs finished, once a frame: a segmentation
//! becomes the overlay (and its metrics), an encoder report, a ranking, a
//! saved model, and fine-tuning's events become curves and, at the end, the
//! swapped-in model with its Dice before and after.

use super::runs::{FineTuned, SegmentOutput};
use super::tokenizer;
use super::{start_segment, start_suggest};
use crate::app::UmeApp;
use crate::app::document::{Document, Prediction};
use crate::training::Event;
use eframe::egui;
use std::time::Instant;

/// Collect finished runs and training events (called every frame).
pub fn logic(app: &mut UmeApp, ctx: &egui::Context) {
    let doc_id = app.doc.as_ref().map_or(0, Document::id);
    if let Some((tag, r)) = app.ai.encoder.poll() {
        match r {
            Ok(report) if tag == doc_id => {
                app.notes.info(format!(
                    "encoder selected frames {:?} of {}",
                    report.selected, report.frames
                ));
                app.ai.encoder_report = Some((tag, report));
            }
            Ok(_) => {}
            Err(e) => app.notes.error(e),
        }
    }
    if let Some((tag, r)) = app.ai.segment.poll() {
        match r {
            Ok(_) if tag != doc_id => {}
            Ok(SegmentOutput::Full(p)) => install_prediction(app, p),
            Ok(SegmentOutput::WhatIf(w)) => {
                app.notes
                    .info(format!("what-if without {} done", w.dropped));
                app.ai.what_if = Some(w);
            }
            Err(e) => report_failure(&mut app.notes, e),
        }
    }
    if let Some((tag, r)) = app.ai.suggest.poll() {
        match r {
            Ok(scores) if tag == doc_id => {
                // The best slice not yet labelled, as the panel lists them.
                let frame = app.cursor.frame;
                let next = app.doc.as_ref().and_then(|doc| {
                    scores
                        .top_among(1, |k| {
                            doc.slice_state(frame, k)
                                == crate::app::document::SliceState::Unlabelled
                        })
                        .first()
                        .map(|b| b.0)
                });
                app.notes.info(match next {
                    Some(k) => format!("slices ranked: label slice {k} next"),
                    None => "slices ranked: every slice is labelled".to_string(),
                });
                app.ai.scores = Some((tag, scores));
            }
            Ok(_) => {}
            Err(e) => report_failure(&mut app.notes, e),
        }
    }
    if let Some((_, r)) = app.ai.save_model.poll() {
        match r {
            Ok(dir) => {
                app.notes
                    .info(format!("saved the model to {}", dir.display()));
                app.settings.remember_model(dir);
            }
            Err(e) => app.notes.error(format!("model not saved: {e}")),
        }
    }
    training_logic(app, ctx);
    tokenizer::logic(app);
}

/// Show a model's prediction as the overlay; the document and the what-if
/// share one copy of it.
fn install_prediction(app: &mut UmeApp, p: Prediction) {
    let Some(doc) = &mut app.doc else { return };
    let had_gt = !doc.labels().is_empty();
    let n = p.present.len();
    let labels = p.labels.clone();
    match doc.set_prediction(p) {
        Ok(()) => {
            app.ai.full = Some(labels);
            app.ai.what_if = None;
            app.settings.overlay = crate::app::settings::Overlay::Prediction;
            let found = crate::app::notify::count(n, "structure");
            let mut msg = format!("segmented with {}: {found} found", app.ai.segment_model);
            if !had_gt {
                msg.push_str(" (no ground truth open: no metrics)");
            } else if app.ai.segment_model == "demo-brain"
                && !doc.table().labels.iter().any(|l| l.name.contains("brain"))
            {
                // The built-in demo's labels are grey and white matter.
                msg.push_str(
                    "; it outlines the whole brain as label 1, and this case's labels are other \
                     structures, so the Dice against them does not measure it",
                );
            }
            app.notes.info(msg);
        }
        Err(e) => report_failure(&mut app.notes, e),
    }
}

fn training_logic(app: &mut UmeApp, ctx: &egui::Context) {
    if let Some(job) = app.ai.train.job() {
        for event in job.events() {
            let Some(run) = &mut app.ai.run else { break };
            match event {
                Event::Started {
                    first_step,
                    total_steps,
                    ..
                } => {
                    run.first_step = first_step;
                    run.total_steps = total_steps;
                    run.started = Instant::now();
                    app.notes.info("fine-tuning…");
                }
                Event::Step { step, loss, .. } => {
                    run.step = step + 1;
                    app.ai
                        .curves
                        .loss
                        .push([step as f64 + 1.0, f64::from(loss)]);
                }
                Event::Validated {
                    step,
                    dice,
                    mean_dice,
                    ..
                } => {
                    let x = step as f64 + 1.0;
                    app.ai.curves.mean_dice.push([x, mean_dice]);
                    for (id, d) in dice {
                        if d.is_finite() {
                            app.ai.curves.dice.entry(id).or_default().push([x, d]);
                        }
                    }
                }
                Event::Checkpointed { .. } | Event::Finished(_) => {}
            }
        }
    }
    let Some((tag, r)) = app.ai.train.poll() else {
        return;
    };
    app.ai.run = None;
    match r {
        Ok(FineTuned { summary, held_out }) => {
            app.ai.held_out = held_out;
            app.notes.info(format!(
                "fine-tuned: best validation Dice {:.3} at step {}; model saved in {}",
                summary.best_dice,
                summary.best_step + 1,
                summary.out.display()
            ));
            app.settings.remember_model(summary.out.clone());
            app.ai.fine_tuned = Some(summary.out.clone());
            // Swap the new model in and re-segment the open scan.
            app.ai.model = summary.out.display().to_string();
            let doc_id = app.doc.as_ref().map_or(0, Document::id);
            if tag == doc_id {
                start_segment(app, ctx, None);
                app.ai.after_revision = app.doc.as_ref().map(|d| d.revisions().prediction + 1);
                // Re-rank with the new model.
                start_suggest(app, ctx);
            }
        }
        Err(e) => report_failure(&mut app.notes, e),
    }
}

/// A run that ended without a result: cancelled (the user asked) is news,
/// anything else an error.
fn report_failure(notes: &mut crate::app::notify::Notifications, e: String) {
    if e.contains("cancelled") {
        notes.info(e);
    } else {
        notes.error(e);
    }
}
