//! Models in the app, driven through egui_kittest as a user would: segment
//! the open case and see the metrics table fill, or cancel a running
//! segmentation; drop a modality and see
//! the Dice change; fine-tune with live curves, stop, restart, finish, and
//! see the new model swapped in with before/after Dice, for a U-Net and
//! for a UME encoder. Training runs on
//! the CPU backend; segmentation also on wgpu (lavapipe here).
#![cfg(all(feature = "gui", feature = "ml"))]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::time::{Duration, Instant};
use ume::app::UmeApp;
use ume::models::segment::{InputNorm, SegmenterConfig, save_checkpoint};
use ume::models::{DeviceChoice, OutputMode, UNet2dConfig, device};
use ume::phantom::Kind;

mod common;

fn app_with(kind: Kind) -> (UmeApp, tempfile::TempDir) {
    common::app_with(kind, 3)
}

/// A small random BraTS-style checkpoint (4 channels, labels 1/2/4), quick
/// to run and to train.
fn tiny_checkpoint(dir: &std::path::Path) -> String {
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
    let dev = device(DeviceChoice::Cpu);
    save_checkpoint(dir, &config, &config.network.init(&dev)).unwrap();
    dir.display().to_string()
}

/// A small random UME encoder checkpoint for BraTS-style cases (4
/// modalities, labels 1/2/4).
fn tiny_encoder(dir: &std::path::Path) -> String {
    use ume::models::encoder::{UmeConfig, save_encoder};
    let cfg = UmeConfig::new(4)
        .with_embed_dim(16)
        .with_num_heads(2)
        .with_num_layers(1)
        .with_patch_size(8)
        .with_image_size([32, 32])
        .with_max_keyframes(3)
        .with_max_frames(64)
        .with_voco_dim(8)
        .with_label_ids(vec![1, 2, 4]);
    save_encoder(dir, &cfg, &cfg.init(&device(DeviceChoice::Cpu))).unwrap();
    dir.display().to_string()
}

fn harness(app: UmeApp) -> Harness<'static, UmeApp> {
    common::harness(app, 1400.0, 1000.0)
}

/// Step the UI until `done` holds (background threads wake it).
/// The recent messages, for assertion failures.
fn messages(a: &UmeApp) -> String {
    a.notes
        .all()
        .map(|n| n.text.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Whether one of the last messages says `text`.
fn said(a: &UmeApp, text: &str) -> bool {
    a.notes.recent_contains(20, text)
}

fn wait_for(h: &mut Harness<'_, UmeApp>, what: &str, done: impl Fn(&UmeApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "timed out waiting for {what}; messages: {}",
            messages(h.state())
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.step();
}

#[test]
fn segment_the_demo_case_fills_the_table_and_the_what_if_compares_modalities() {
    // The bundled brain-tumour model, chosen by default for a BraTS case.
    let (mut app, _tmp) = app_with(Kind::Brats);
    app.ai.device = DeviceChoice::Cpu;
    let mut h = harness(app);
    h.step();
    h.get_by_label("Segment").click();
    wait_for(&mut h, "segmentation", |a| {
        !a.ai.is_busy() && a.doc.as_ref().unwrap().prediction().is_some()
    });
    wait_for(&mut h, "metrics", |a| {
        !a.eval.is_computing() && a.eval.result.is_some()
    });
    assert_eq!(h.state().ai.model, "demo-brats");
    let result = h.state().eval.result.as_ref().unwrap();
    assert_eq!(result.structures.len(), 3, "the metrics table fills");
    for st in &result.structures {
        assert!(st.dice > 0.9, "{}: Dice {}", st.name, st.dice);
    }
    assert!(said(h.state(), "segmented with demo-brats"));
    // One copy of the prediction, shared by the document and the what-if:
    // nothing deep-copied it on the UI thread.
    let doc_pred = &h.state().doc.as_ref().unwrap().prediction().unwrap().labels;
    assert!(std::sync::Arc::ptr_eq(
        doc_pred,
        h.state().ai.full_prediction().unwrap()
    ));
    h.step();
    h.get_by_label("Run").click();
    wait_for(&mut h, "what-if", |a| a.ai.what_if.is_some());
    let w = h.state().ai.what_if.as_ref().unwrap();
    assert_eq!(w.dropped, "t1ce");
    assert_eq!(w.rows.len(), 3);
    // Without T1ce the enhancing ring (bright only there) is lost.
    let (_, with, without) = w.rows.iter().find(|r| r.0 == 4).copied().unwrap();
    assert!(
        with > 0.9 && without < with,
        "enhancing: {with} -> {without}"
    );
}

#[test]
fn cancel_stops_a_running_segmentation() {
    let (mut app, tmp) = app_with(Kind::Brats);
    // The seed's full-width U-Net at 256×256: a batch takes about a second
    // here, so the run is still going when the click lands.
    let config = SegmenterConfig {
        network: UNet2dConfig::new(4, 4).with_output(OutputMode::MultiClass),
        size: 256,
        norm: InputNorm::ZScore,
        label_ids: vec![1, 2, 4],
        context_slices: 0,
    };
    let dir = tmp.path().join("wide");
    let dev = device(DeviceChoice::Cpu);
    save_checkpoint(&dir, &config, &config.network.init(&dev)).unwrap();
    app.ai.model = dir.display().to_string();
    app.ai.device = DeviceChoice::Cpu;
    let mut h = harness(app);
    h.step();
    h.get_by_label("Segment").click();
    wait_for(&mut h, "the first batch", |a| {
        a.ai.segment_progress().is_some_and(|(done, _)| done > 0)
    });
    h.get_by_label("Cancel").click();
    wait_for(&mut h, "the cancel", |a| !a.ai.is_busy());
    assert!(h.state().ai.segment_progress().is_none(), "the job is over");
    assert!(said(h.state(), "cancelled"), "{}", messages(h.state()));
    assert!(h.state().doc.as_ref().unwrap().prediction().is_none());
}

#[test]
fn segment_on_wgpu_matches_the_cpu_result() {
    let (mut app, tmp) = app_with(Kind::Brats);
    app.ai.model = tiny_checkpoint(&tmp.path().join("ckpt"));
    app.ai.device = DeviceChoice::Cpu;
    let mut h = harness(app);
    h.step();
    h.get_by_label("Segment").click();
    wait_for(&mut h, "CPU segmentation", |a| {
        !a.ai.is_busy() && a.doc.as_ref().unwrap().prediction().is_some()
    });
    let cpu = h
        .state()
        .doc
        .as_ref()
        .unwrap()
        .prediction()
        .unwrap()
        .labels
        .clone();
    let generation = h.state().doc.as_ref().unwrap().revisions().prediction;
    h.get_by_label("GPU (wgpu)").click();
    h.step();
    h.get_by_label("Segment").click();
    wait_for(&mut h, "wgpu segmentation", |a| {
        !a.ai.is_busy() && a.doc.as_ref().unwrap().revisions().prediction > generation
    });
    let gpu = h
        .state()
        .doc
        .as_ref()
        .unwrap()
        .prediction()
        .unwrap()
        .labels
        .clone();
    let differ = (0..cpu.len()).filter(|&i| cpu.get(i) != gpu.get(i)).count();
    assert!(
        differ * 1000 <= cpu.len(),
        "{differ} of {} voxels differ between CPU and wgpu",
        cpu.len()
    );
}

#[test]
fn fine_tune_shows_curves_stops_restarts_and_swaps_the_model() {
    let (mut app, tmp) = app_with(Kind::Brats);
    let original = tiny_checkpoint(&tmp.path().join("ckpt"));
    app.ai.model = original.clone();
    app.ai.device = DeviceChoice::Cpu;
    app.ai.steps = 400;
    let cache = tmp.path().join("finetuned");
    app.ai.out_root = Some(cache.clone());
    let mut h = harness(app);
    h.step();
    // Segment first, so there is a "before".
    h.get_by_label("Segment").click();
    wait_for(&mut h, "segmentation", |a| {
        !a.ai.is_busy() && a.eval.result.is_some() && !a.eval.is_computing()
    });
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "loss curve", |a| a.ai.curves.loss.len() >= 3);
    h.get_by_label("Stop").click();
    wait_for(&mut h, "stop", |a| !a.ai.is_training());
    assert!(said(h.state(), "cancelled"), "{}", messages(h.state()));
    assert_eq!(
        h.state().ai.model,
        original,
        "a stopped run keeps the model"
    );

    // Restart with a short run and let it finish.
    h.state_mut().ai.steps = 10;
    h.step();
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "fine-tuning", |a| {
        !a.ai.is_training() && a.ai.curves.mean_dice.len() >= 2
    });
    let msg = messages(h.state());
    assert!(
        !h.state().ai.curves.dice.is_empty(),
        "per-structure curves: {msg}"
    );
    assert_ne!(
        h.state().ai.model,
        original,
        "the new model is swapped in: {msg}"
    );
    assert!(
        std::path::Path::new(&h.state().ai.model)
            .join("model.bpk")
            .is_file()
    );
    assert!(h.state().ai.model.starts_with(cache.to_str().unwrap()));
    wait_for(&mut h, "re-segmentation and metrics", |a| {
        !a.ai.is_busy() && !a.eval.is_computing() && a.eval.result.is_some()
    });
    h.step();
    h.get_by_label("Dice on the whole scan before / after (it includes the slices trained on)");
    assert!(h.state().ai.before.is_some());
    // The fine-tuned model is remembered (the picker lists it after a
    // restart) and Save model as… copies it.
    let tuned = std::path::PathBuf::from(&h.state().ai.model);
    assert!(h.state().settings.models.contains(&tuned));
    let copy = tmp.path().join("saved-model");
    let ctx = h.ctx.clone();
    h.state_mut()
        .picked(&ctx, ume::app::files::Pick::SaveModel, vec![copy.clone()]);
    wait_for(&mut h, "the model copy", |a| {
        copy.join("model.bpk").is_file() && a.settings.models.contains(&copy)
    });
    assert_eq!(
        std::fs::read(copy.join("config.json")).unwrap(),
        std::fs::read(tuned.join("config.json")).unwrap()
    );
}

#[test]
fn fine_tune_runs_on_wgpu() {
    let (mut app, tmp) = app_with(Kind::Brats);
    let original = tiny_checkpoint(&tmp.path().join("ckpt"));
    app.ai.model = original.clone();
    app.ai.device = DeviceChoice::Wgpu;
    app.ai.steps = 3;
    app.ai.out_root = Some(tmp.path().join("finetuned"));
    let mut h = harness(app);
    h.step();
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "fine-tuning on wgpu", |a| {
        !a.ai.is_training() && a.ai.model != original
    });
    assert_eq!(h.state().ai.curves.loss.len(), 3);
    assert!(h.state().ai.curves.loss.iter().all(|p| p[1].is_finite()));
    wait_for(&mut h, "re-segmentation on wgpu", |a| {
        !a.ai.is_busy() && a.doc.as_ref().unwrap().prediction().is_some()
    });
}

#[test]
fn fine_tune_a_ume_encoder_and_swap_it_in() {
    let (mut app, tmp) = app_with(Kind::Brats);
    let original = tiny_encoder(&tmp.path().join("encoder"));
    app.ai.model = original.clone();
    app.ai.device = DeviceChoice::Cpu;
    app.ai.steps = 5;
    app.ai.out_root = Some(tmp.path().join("finetuned"));
    let mut h = harness(app);
    h.step();
    h.get_by_label("Start fine-tuning").click();
    wait_for(&mut h, "encoder fine-tuning", |a| {
        !a.ai.is_training() && a.ai.model != original
    });
    let msg = messages(h.state());
    assert_eq!(h.state().ai.curves.loss.len(), 5, "{msg}");
    assert!(h.state().ai.curves.loss.iter().all(|p| p[1].is_finite()));
    assert!(
        !h.state().ai.curves.dice.is_empty(),
        "validation Dice: {msg}"
    );
    // The swapped-in model is an encoder checkpoint that segments the scan.
    let (saved, _) = ume::models::encoder::load_encoder(
        std::path::Path::new(&h.state().ai.model),
        &device(DeviceChoice::Cpu),
    )
    .unwrap();
    assert_eq!(saved.label_ids, vec![1, 2, 4]);
    wait_for(&mut h, "re-segmentation with the fine-tuned encoder", |a| {
        !a.ai.is_busy() && a.doc.as_ref().unwrap().prediction().is_some()
    });
}

#[test]
fn encoder_reports_keyframes_fusion_weights_and_modality_gates() {
    let (mut app, tmp) = app_with(Kind::Brats);
    let dir = tmp.path().join("encoder");
    app.ai.encoder_path = tiny_encoder(&dir);
    app.ai.device = DeviceChoice::Cpu;
    let mut h = harness(app);
    h.step();
    h.get_by_label("Keyframes and modality gates").click();
    wait_for(&mut h, "encoder", |a| a.ai.encoder_report.is_some());
    let (_, r) = h.state().ai.encoder_report.as_ref().unwrap();
    assert_eq!(r.frames, 62, "z slices are the frames of a 3D case");
    assert_eq!(r.gates.len(), 4);
    assert!((r.gates.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    h.step();
    h.get_by_label_contains("modality gates: t1");
    let doc_id = h.state().doc.as_ref().unwrap().id();
    assert!(h.state().ai.learned(doc_id).is_some());

    // The same checkpoint segments frame by frame from the model panel.
    h.state_mut().ai.model = dir.display().to_string();
    h.step();
    h.get_by_label("Segment").click();
    wait_for(&mut h, "encoder segmentation", |a| {
        !a.ai.is_busy() && a.doc.as_ref().unwrap().prediction().is_some()
    });
    assert!(said(h.state(), "segmented with"), "{}", messages(h.state()));
}

#[test]
fn a_cardiac_frame_opened_alone_gets_no_brain_model() {
    // One 3D MR file is not enough to guess the brain model: a short-axis
    // frame (10 mm slices) opened on its own got it and came back as blobs.
    let tmp = tempfile::tempdir().unwrap();
    let dirs = ume::phantom::generate(
        Kind::Acdc,
        ume::phantom::Size::Small,
        3,
        1,
        tmp.path(),
        |_, _| {},
    )
    .unwrap();
    let frame = dirs[0].join("patient001_frame01.nii.gz");
    let request = ume::app::LoadRequest::Files {
        paths: vec![frame],
        labels: None,
    };
    let doc = ume::app::loader::load(&request, &|_| {}).unwrap();
    assert_eq!(ume::app::ai::default_model(&doc), "");
}

#[test]
fn a_case_no_demo_fits_asks_for_a_checkpoint() {
    // A cardiac cine is neither 4-channel MR nor CT: no model is guessed.
    let (app, _tmp) = app_with(Kind::Acdc);
    let mut h = harness(app);
    h.step();
    h.get_by_label("Segment").click();
    h.step();
    assert!(h.state().ai.model.is_empty());
    assert!(h.state().doc.as_ref().unwrap().prediction().is_none());
    assert!(
        said(h.state(), "no bundled model fits"),
        "{}",
        messages(h.state())
    );
}

#[test]
fn cancel_stops_an_encoder_run() {
    // Before, Cancel was shown during an encoder run and did nothing: the
    // report still arrived.
    let (mut app, tmp) = app_with(Kind::Brats);
    // Wide enough that the run is still going when Cancel lands.
    let dir = tmp.path().join("encoder");
    {
        use ume::models::encoder::{UmeConfig, save_encoder};
        let cfg = UmeConfig::new(4)
            .with_embed_dim(192)
            .with_num_heads(4)
            .with_num_layers(6)
            .with_patch_size(8)
            .with_image_size([128, 128])
            .with_max_keyframes(3)
            .with_max_frames(64)
            .with_voco_dim(8)
            .with_label_ids(vec![1, 2, 4]);
        save_encoder(&dir, &cfg, &cfg.init(&device(DeviceChoice::Cpu))).unwrap();
    }
    app.ai.encoder_path = dir.display().to_string();
    app.ai.device = DeviceChoice::Cpu;
    let mut h = harness(app);
    h.step();
    h.get_by_label("Keyframes and modality gates").click();
    h.step();
    h.step();
    assert!(h.state().ai.is_busy(), "{}", messages(h.state()));
    h.get_by_label("Cancel").click();
    h.step();
    assert!(!h.state().ai.is_busy(), "cancel ends the run at once");
    assert!(said(h.state(), "encoder run cancelled"));
    // The abandoned run's result never lands.
    for _ in 0..200 {
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(h.state().ai.encoder_report.is_none());
}

#[test]
fn stop_during_preparation_means_training_never_starts() {
    // Before, Stop while the data was being prepared was ignored and the
    // whole run trained anyway.
    let (mut app, tmp) = app_with(Kind::Brats);
    let original = tiny_checkpoint(&tmp.path().join("ckpt"));
    let data = tmp.path().join("data");
    ume::phantom::generate(
        Kind::Brats,
        ume::phantom::Size::Small,
        5,
        3,
        &data,
        |_, _| {},
    )
    .unwrap();
    app.ai.model = original.clone();
    app.ai.device = DeviceChoice::Cpu;
    app.ai.steps = 400;
    app.ai.source = ume::app::ai::TrainSource::Folder;
    app.ai.data_folder = data.display().to_string();
    app.ai.out_root = Some(tmp.path().join("finetuned"));
    let mut h = harness(app);
    h.step();
    h.get_by_label("Start fine-tuning").click();
    h.step();
    h.step();
    assert!(h.state().ai.is_training());
    h.get_by_label("Stop").click();
    wait_for(&mut h, "the stop", |a| !a.ai.is_training());
    assert!(said(h.state(), "cancelled"), "{}", messages(h.state()));
    assert!(
        h.state().ai.curves.loss.len() < 400,
        "the run did not train to the end"
    );
    assert_eq!(h.state().ai.model, original, "the model is kept");
}
