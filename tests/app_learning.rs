//! Learning from the user's labels in the app, driven through
//! egui_kittest as a user would: paint a slice, mark two others done with
//! D, rank the slices, fine-tune on the labelled slices (a share held out
//! and measured before and after), see the list re-ranked, jump to a
//! suggested slice, undo a stroke and a mark (their slices are no longer
//! labelled), and save: the labelled slices go beside the labels as
//! `.slices.json`; then fine-tune again with a dataset folder added.
#![cfg(all(feature = "gui", feature = "ml"))]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use eframe::egui::{self, Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::time::{Duration, Instant};
use ume::app::document::SliceState;
use ume::app::slices_ui::{crosshair_z, go_to_slice};
use ume::app::views::ViewId;
use ume::app::{LoadRequest, UmeApp, ViewOptions};
use ume::models::segment::{InputNorm, SegmenterConfig, save_checkpoint};
use ume::models::{DeviceChoice, OutputMode, UNet2dConfig, device};
use ume::viewmath::SliceAxis;

mod common;

fn wait_for(h: &mut Harness<'_, UmeApp>, what: &str, done: impl Fn(&UmeApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        let notes: Vec<&str> = h.state().notes.all().map(|n| n.text.as_str()).collect();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}; messages: {notes:?}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

/// A short brush stroke through the middle of the axial view.
fn stroke(h: &mut Harness<'_, UmeApp>) {
    let rect = common::rect_of(h, ViewId::Slice(SliceAxis::Axial));
    common::drag(
        h,
        rect.center(),
        egui::vec2(20.0, 10.0),
        egui::PointerButton::Primary,
    );
}

fn state(h: &Harness<'_, UmeApp>, z: usize) -> SliceState {
    h.state().doc.as_ref().unwrap().slice_state(0, z)
}

#[test]
fn paint_mark_done_fine_tune_rerank_jump_undo_and_save() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = ume::phantom::generate(
        ume::phantom::Kind::Brats,
        ume::phantom::Size::Small,
        6,
        1,
        &tmp.path().join("data"),
        |_, _| {},
    )
    .unwrap();
    let name = dirs[0].file_name().unwrap().to_string_lossy().to_string();
    let paths = ["t1", "t1ce", "t2", "flair"]
        .map(|m| dirs[0].join(format!("{name}_{m}.nii.gz")))
        .to_vec();
    // The images alone: no labels yet.
    let doc = ume::app::loader::load(
        &LoadRequest::Files {
            paths,
            labels: None,
        },
        &|_| {},
    )
    .unwrap();
    let mut app = UmeApp::new(&egui::Context::default(), None, &ViewOptions::default());
    app.set_document(doc);
    let config = SegmenterConfig {
        network: UNet2dConfig::new(4, 4)
            .with_features(vec![4, 8])
            .with_bottleneck(8)
            .with_output(OutputMode::MultiClass),
        size: 32,
        norm: InputNorm::ZScore,
        label_ids: vec![1, 2, 4],
        context_slices: 0,
    };
    let ckpt = tmp.path().join("ckpt");
    save_checkpoint(
        &ckpt,
        &config,
        &config.network.init(&device(DeviceChoice::Cpu)),
    )
    .unwrap();
    let original = ckpt.display().to_string();
    app.ai.model = original.clone();
    app.ai.device = DeviceChoice::Cpu;
    app.ai.steps = 20;
    app.ai.out_root = Some(tmp.path().join("finetuned"));
    let mut h = common::harness(app, 1400.0, 1300.0);
    common::settle(&mut h);

    // Paint a stroke in the axial view: its slice is labelled.
    let (z0, nz) = crosshair_z(h.state()).unwrap();
    assert_eq!(state(&h, z0), SliceState::Unlabelled);
    common::press(&mut h, Modifiers::NONE, Key::B);
    h.state_mut().settings.active_label = 1;
    h.state_mut().settings.brush_radius_mm = 6.0;
    stroke(&mut h);
    assert_eq!(state(&h, z0), SliceState::Painted);
    h.get_by_label(&format!("slice {z0}: painted · 1 of {nz} labelled"));

    // Two more slices marked done with D (background is an answer too).
    let (z1, z2) = (z0 - 12, z0 + 12);
    for z in [z1, z2] {
        go_to_slice(h.state_mut(), z);
        h.step();
        common::press(&mut h, Modifiers::NONE, Key::D);
        assert_eq!(state(&h, z), SliceState::Done, "slice {z}");
    }
    let doc = h.state().doc.as_ref().unwrap();
    assert_eq!(doc.labelled_slices(0), vec![z1, z0, z2]);
    let doc_id = doc.id();
    // D again takes the mark back; once more puts it back.
    common::press(&mut h, Modifiers::NONE, Key::D);
    assert_eq!(state(&h, z2), SliceState::Unlabelled);
    common::press(&mut h, Modifiers::NONE, Key::D);
    assert_eq!(state(&h, z2), SliceState::Done);
    // Marking is undoable like a stroke.
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(state(&h, z2), SliceState::Unlabelled);
    common::press(&mut h, Modifiers::COMMAND, Key::Y);
    assert_eq!(state(&h, z2), SliceState::Done);
    // A held D marks once: key repeats re-run only stepping, undo and
    // brush size, not toggles (it would flicker done, undone, done…).
    for (pressed, repeat) in [(true, false), (true, true), (false, false)] {
        h.input_mut().events.push(egui::Event::Key {
            key: Key::D,
            physical_key: None,
            pressed,
            repeat,
            modifiers: Modifiers::NONE,
        });
    }
    h.step();
    assert_eq!(state(&h, z2), SliceState::Unlabelled, "one toggle");
    common::press(&mut h, Modifiers::NONE, Key::D);
    assert_eq!(state(&h, z2), SliceState::Done);

    // Rank the slices with the model.
    h.get_by_label("Rank slices").click();
    wait_for(&mut h, "ranking", |a| {
        !a.ai.is_ranking() && a.ai.scores_for(doc_id).is_some()
    });
    let first = h.state().ai.scores_for(doc_id).unwrap().clone();
    assert_eq!(first.scores.len(), nz);
    // The status names the best slice not yet labelled, as the list does.
    let best = first.top_among(1, |k| ![z1, z0, z2].contains(&k))[0].0;
    assert_eq!(
        h.state().notes.latest_text(),
        format!("slices ranked: label slice {best} next")
    );

    // Fine-tune on the labelled slices: one of the three is held out.
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "fine-tuning", |a| {
        !a.ai.is_training() && a.ai.model != original
    });
    let held = h.state().ai.held_out.clone().expect("held-out Dice");
    assert_eq!(held.slices.len(), 1);
    assert!([z1, z0, z2].contains(&held.slices[0]));
    assert_eq!(held.after.len(), 3, "Dice per structure after");
    assert_eq!(held.before.len(), 3, "and before");
    // The new model re-ranks the slices.
    wait_for(&mut h, "re-segmentation and re-ranking", |a| {
        !a.ai.is_busy()
    });
    let second = h.state().ai.scores_for(doc_id).unwrap().clone();
    assert_ne!(
        second.scores, first.scores,
        "re-ranked by the fine-tuned model"
    );
    h.step();
    h.get_by_label(&format!(
        "Dice on the held-out slices {} (not trained on)",
        held.slices[0]
    ));

    // The list jumps to its first suggestion.
    let labelled = [z1, z0, z2];
    let best = second.top_among(8, |k| !labelled.contains(&k))[0].0;
    h.get_by_label(&format!("slice {best}")).click();
    h.step();
    assert_eq!(crosshair_z(h.state()).unwrap().0, best);

    // A stroke on another slice, undone: that slice is no longer labelled.
    let z3 = z0 + 5;
    go_to_slice(h.state_mut(), z3);
    h.step();
    common::press(&mut h, Modifiers::NONE, Key::B);
    stroke(&mut h);
    assert_eq!(state(&h, z3), SliceState::Painted);
    common::press(&mut h, Modifiers::COMMAND, Key::Z);
    assert_eq!(state(&h, z3), SliceState::Unlabelled);

    // Save: the labelled slices go beside the labels.
    let out = tmp.path().join("saved_seg.nii.gz");
    let ctx = h.ctx.clone();
    h.state_mut().save_labels_to(&ctx, out.clone());
    wait_for(&mut h, "the save", |a| {
        !a.is_busy_with_files() && !a.doc.as_ref().unwrap().is_dirty()
    });
    let listed = ume::annotation::slices::for_labels(&out, nz).unwrap();
    assert_eq!(listed, Some(vec![z1, z0, z2]));
    assert!(tmp.path().join("saved_seg.nii.gz.slices.json").is_file());

    // Fine-tune again on the labelled slices plus a dataset folder.
    let tuned = h.state().ai.model.clone();
    h.state_mut().ai.with_folder = true;
    h.state_mut().ai.data_folder = tmp.path().join("data").display().to_string();
    h.step();
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "fine-tuning with a folder", |a| {
        !a.ai.is_busy() && a.ai.model != tuned
    });
    assert!(
        h.state().ai.held_out.is_some(),
        "the open case still measures"
    );
}
