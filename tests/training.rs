//! The training core as the CLI and the app drive it: seeded determinism,
//! resume equals an uninterrupted run, cancel saves a resumable state, a
//! diverging run and a panicking one end as errors, every shipped config
//! parses and passes its checks, the CPU training engine trains as Burn's
//! autodiff does, and `ume train` trains, saves, resumes and refuses to
//! overwrite a trained model.
#![cfg(feature = "ml")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use ume::models::{DeviceChoice, device};
use ume::phantom::{Size, totalseg_case};
use ume::training::{
    Event, RunOptions, TrainConfig, TrainError, TrainingData, spawn_training, train,
};

mod cli;

/// Training seeds the backend's global random stream; tests that train
/// run one at a time so their draws cannot interleave.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_config() -> TrainConfig {
    let mut c = TrainConfig::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/unet_tiny_ct.json"
    )))
    .unwrap();
    c.training.steps = 12;
    c.training.val_every = 6;
    c.training.checkpoint_every = 6;
    c.model.size = 32;
    c
}

fn data(config: &TrainConfig) -> TrainingData {
    let cases: Vec<_> = (1..=3)
        .map(|n| {
            let c = totalseg_case(5, n, Size::Small);
            ume::dataset::Case {
                id: format!("s{n:04}"),
                layout: ume::dataset::Layout::TotalSegmentator,
                images: vec![("ct".into(), c.ct.clone())],
                labels: Some(c.labels.clone()),
                frame_labels: Vec::new(),
                labelled_slices: None,
                frame_slices: Vec::new(),
                table: c.table.clone(),
                acdc: None,
                warnings: Vec::new(),
            }
        })
        .collect();
    TrainingData::from_cases(&cases, config).unwrap()
}

fn opts(out: &Path, resume: bool) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        resume,
        device: device(DeviceChoice::Cpu),
        init: None,
        cpu_engine: true,
    }
}

fn losses(config: &TrainConfig, data: &TrainingData, o: &RunOptions) -> (Vec<f32>, Vec<Event>) {
    let mut events = Vec::new();
    let mut losses = Vec::new();
    let _ = train(config, data, o, &AtomicBool::new(false), |e| {
        if let Event::Step { loss, .. } = e {
            losses.push(loss);
        }
        events.push(e);
    });
    (losses, events)
}

#[test]
fn same_seed_same_run_and_resume_continues_exactly() {
    let _serial = SEEDED.lock();
    let config = tiny_config();
    let data = data(&config);
    assert_eq!((data.train.len(), data.val.len()), (2, 1));
    let tmp = tempfile::tempdir().unwrap();
    let (a, events) = losses(&config, &data, &opts(&tmp.path().join("a"), false));
    // The second run on another number of threads: the engine's sums are
    // ordered, so the thread count and scheduling change nothing.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let (b, _) = pool.install(|| losses(&config, &data, &opts(&tmp.path().join("b"), false)));
    assert_eq!(a.len(), 12);
    assert_eq!(a, b, "same seed, same losses, whatever the thread count");
    // Event order: Started first, Finished last, validation every 6 steps.
    assert!(matches!(events[0], Event::Started { first_step: 0, .. }));
    assert!(matches!(events.last(), Some(Event::Finished(Ok(_)))));
    let validated: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Validated { step, dice, .. } => {
                assert_eq!(dice.len(), 3);
                Some(*step)
            }
            _ => None,
        })
        .collect();
    assert_eq!(validated, vec![5, 11]);
    for f in [
        "config.json",
        "model.bpk",
        "train_config.json",
        "last/state.json",
        "last/optim.bpk",
    ] {
        assert!(tmp.path().join("a").join(f).is_file(), "{f}");
    }

    // Half the steps, then resume to the end: the same losses as one run.
    let mut half = config.clone();
    half.training.steps = 6;
    let c = tmp.path().join("c");
    let (first, _) = losses(&half, &data, &opts(&c, false));
    let (rest, events) = losses(&config, &data, &opts(&c, true));
    assert!(
        matches!(events[0], Event::Started { first_step: 6, .. }),
        "{:?}",
        events[0]
    );
    let joined: Vec<f32> = first.into_iter().chain(rest).collect();
    assert_eq!(joined.len(), 12);
    for (x, y) in joined.iter().zip(&a) {
        assert!(
            (x - y).abs() <= 1e-4 * y.abs().max(1.0),
            "{joined:?} vs {a:?}"
        );
    }

    // Resuming with another network is refused, naming the folder.
    let mut other = config.clone();
    other.model.network.features = vec![4, 8, 16];
    let err = train(
        &other,
        &data,
        &opts(&c, true),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    assert!(err.to_string().contains("last"), "{err}");
}

/// The CPU training engine (the default on the CPU) and Burn's autodiff
/// train the same network: equal losses step after step (each step's loss
/// depends on every update before it) and equal validation Dice, with
/// gradient accumulation, clipping and both output modes.
#[test]
fn cpu_engine_trains_as_burns_autodiff_does() {
    let _serial = SEEDED.lock();
    let mut multi_label = tiny_config();
    multi_label.training.steps = 6;
    multi_label.training.val_every = 3;
    multi_label.training.batch_size = 2;
    multi_label.training.accumulation = 2;
    let mut multi_class = multi_label.clone();
    multi_class.model.network.output = ume::models::OutputMode::MultiClass;
    multi_class.model.network.out_channels = 4;
    multi_class.training.loss = ume::training::config::LossConfig::CeDice;
    for config in [multi_label, multi_class] {
        let data = data(&config);
        let tmp = tempfile::tempdir().unwrap();
        let engine = opts(&tmp.path().join("engine"), false);
        let autodiff = RunOptions {
            out: tmp.path().join("autodiff"),
            cpu_engine: false,
            ..engine.clone()
        };
        let (a, ea) = losses(&config, &data, &engine);
        let (b, eb) = losses(&config, &data, &autodiff);
        assert_eq!(a.len(), 6);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-3 * y.abs().max(1.0), "{a:?} vs {b:?}");
        }
        let dice = |events: &[Event]| -> Vec<f64> {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Validated { dice, .. } => Some(dice.iter().map(|d| d.1)),
                    _ => None,
                })
                .flatten()
                .collect()
        };
        let (da, db) = (dice(&ea), dice(&eb));
        assert_eq!(da.len(), 2 * 3);
        for (x, y) in da.iter().zip(&db) {
            assert!(
                (x - y).abs() <= 0.01 || (x.is_nan() && y.is_nan()),
                "{da:?} vs {db:?}"
            );
        }
    }
}

#[test]
fn a_diverging_run_ends_with_an_error_not_silence() {
    let _serial = SEEDED.lock();
    let mut config = tiny_config();
    config.training.learning_rate = 1e30;
    config.training.grad_clip_norm = None;
    config.training.scheduler = ume::training::config::SchedulerConfig::Constant;
    let data = data(&config);
    let tmp = tempfile::tempdir().unwrap();
    let (_, events) = losses(&config, &data, &opts(tmp.path(), false));
    match events.last() {
        Some(Event::Finished(Err(TrainError::Diverged { step, loss }))) => {
            assert!(*step > 0 && !loss.is_finite());
        }
        other => panic!("expected a divergence error, got {other:?}"),
    }
}

#[test]
fn background_run_reports_cancels_and_survives_a_panic() {
    let _serial = SEEDED.lock();
    let mut config = tiny_config();
    config.training.steps = 10_000;
    config.training.checkpoint_every = 10_000;
    let data = Arc::new(data(&config));
    let tmp = tempfile::tempdir().unwrap();
    let handle =
        spawn_training(config.clone(), data.clone(), opts(tmp.path(), false), || {}).unwrap();
    let mut steps = 0;
    let finished = loop {
        match handle.next().unwrap() {
            Event::Step { .. } => {
                steps += 1;
                if steps == 3 {
                    handle.cancel();
                }
            }
            Event::Finished(r) => break r,
            _ => {}
        }
    };
    match finished {
        Err(TrainError::Cancelled { steps: done, .. }) => assert!((3..=4).contains(&done)),
        other => panic!("expected a cancel, got {other:?}"),
    }
    assert!(
        tmp.path().join("last/state.json").is_file(),
        "cancel saves a resumable state"
    );
    assert!(handle.next().is_none(), "nothing after Finished");

    // A panic inside the run (here: in the wake-up callback) becomes an
    // error event; the caller lives on.
    let handle = spawn_training(config, data, opts(&tmp.path().join("p"), false), || {
        panic!("boom")
    })
    .unwrap();
    let mut last = None;
    while let Some(e) = handle.next() {
        last = Some(e);
    }
    match last {
        Some(Event::Finished(Err(TrainError::Panicked(msg)))) => assert!(msg.contains("boom")),
        other => panic!("expected a panic report, got {other:?}"),
    }
}

#[test]
fn every_shipped_config_parses_and_checks() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") && (name.starts_with("unet_") || name.starts_with("demo_")) {
            TrainConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 5, "{n} configs");
    // The seed's TotalSegmentator defaults.
    let c = TrainConfig::load(&dir.join("unet_totalseg.json")).unwrap();
    assert_eq!(c.model.size, 256);
    assert_eq!(c.model.network.features, vec![32, 64, 128, 256]);
    assert_eq!(c.training.learning_rate, 1e-3);
    // Typos and mismatched losses are refused with the file's name.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    let text = std::fs::read_to_string(dir.join("unet_tiny_ct.json")).unwrap();
    std::fs::write(&bad, text.replace("\"steps\"", "\"stepz\"")).unwrap();
    let e = TrainConfig::load(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.json") && e.contains("stepz"), "{e}");
    std::fs::write(&bad, text.replace("bce_dice", "ce")).unwrap();
    let e = TrainConfig::load(&bad).unwrap_err().to_string();
    assert!(e.contains("multi-class"), "{e}");
}

#[test]
fn reported_validation_dice_is_the_saved_models_dice() {
    let _serial = SEEDED.lock();
    let mut config = tiny_config();
    config.training.steps = 30;
    config.training.val_every = 10;
    let data = data(&config);
    let tmp = tempfile::tempdir().unwrap();
    let (_, events) = losses(&config, &data, &opts(tmp.path(), false));
    let best = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Validated {
                dice, best: true, ..
            } => Some(dice.clone()),
            _ => None,
        })
        .unwrap();
    // The checkpoint on disk, loaded afresh, scores exactly what was reported.
    let dev = device(DeviceChoice::Cpu);
    let (cfg, model) = ume::models::segment::load_checkpoint(tmp.path(), &dev).unwrap();
    let again = ume::training::validate(&cfg, &model, &data.val, &dev, 8).unwrap();
    for ((id, a), (id2, b)) in best.iter().zip(&again) {
        assert_eq!(id, id2);
        assert!(
            (a - b).abs() < 1e-9 || (a.is_nan() && b.is_nan()),
            "label {id}: reported {a}, saved model {b}"
        );
    }
}

#[test]
fn context_slices_train_and_segment_with_neighbouring_slices() {
    let _serial = SEEDED.lock();
    let mut config = tiny_config();
    // One CT volume, one slice either side: three network channels.
    config.model.context_slices = 1;
    config.model.network.in_channels = 3;
    config.check().unwrap();
    let data = data(&config);
    let tmp = tempfile::tempdir().unwrap();
    let (losses, events) = losses(&config, &data, &opts(tmp.path(), false));
    assert_eq!(losses.len(), config.training.steps, "{:?}", events.last());
    assert!(matches!(events.last(), Some(Event::Finished(Ok(_)))));
    // The checkpoint remembers the context and segments a one-volume case.
    let dev = device(DeviceChoice::Cpu);
    let (saved, model) = ume::models::segment::load_checkpoint(tmp.path(), &dev).unwrap();
    assert_eq!((saved.context_slices, saved.input_volumes()), (1, 1));
    let case = totalseg_case(9, 1, Size::Small);
    let labels =
        ume::models::segment::segment(&saved, &model, &[&case.ct], &dev, 4, |_, _| true).unwrap();
    assert_eq!(labels.dims, case.ct.dims);
    // A width that is not a whole number of slice stacks is refused, by
    // the config check and by segmentation (a hand-edited checkpoint).
    config.model.network.in_channels = 2;
    let e = config.check().unwrap_err();
    assert!(e.contains("context_slices"), "{e}");
    let mut edited = saved.clone();
    edited.network.in_channels = 2;
    let e = ume::models::segment::segment(&edited, &model, &[&case.ct], &dev, 4, |_, _| true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("context_slices"), "{e}");
}

/// `ume train` on a dataset folder: the CPU run names its engine, logs the
/// validation Dice, saves a model `ume segment` reads, and `--resume`
/// continues from `last/`.
#[test]
fn ume_train_cli_trains_saves_resumes_and_keeps_a_trained_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ct");
    ume::phantom::generate(
        ume::phantom::Kind::TotalSeg,
        Size::Small,
        5,
        3,
        &data,
        |_, _| {},
    )
    .unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/unet_tiny_ct.json");
    let out = tmp.path().join("model");
    let run = |out: &Path, steps: &str, resume: bool| {
        let extra: &[&str] = if resume { &["--resume"] } else { &[] };
        cli::train(config, &data, out, steps, extra)
    };
    let train = |steps: &str, resume: bool| {
        let (ok, log) = run(&out, steps, resume);
        assert!(ok, "{log}");
        log
    };
    let log = train("4", false);
    assert!(log.contains("UME's training engine"), "{log}");
    assert!(log.contains("Dice score"), "{log}");
    assert!(out.join("model.bpk").is_file() && out.join("last/state.json").is_file());
    // A new run into a folder holding a model is refused, the model kept.
    let weights = std::fs::read(out.join("model.bpk")).unwrap();
    let (ok, log) = run(&out, "2", false);
    assert!(
        !ok && log.contains("already holds a trained model"),
        "{log}"
    );
    assert_eq!(std::fs::read(out.join("model.bpk")).unwrap(), weights);
    let log = train("6", true);
    assert!(log.contains("resumed at step 4"), "{log}");
    // Resuming on the CPU starts no GPU context (which, on a machine
    // without a display, printed Vulkan errors).
    assert!(!log.contains("error"), "{log}");
    // --resume with nothing to resume says so and starts a new run.
    let (ok, log) = run(&tmp.path().join("fresh"), "1", true);
    assert!(ok && log.contains("nothing to resume"), "{log}");
    assert!(!log.contains("resumed at step"), "{log}");
    // Into a folder that does not exist yet: it is created.
    let pred = tmp.path().join("predictions/ct/pred.nii.gz");
    let (ok, log) = cli::ume([
        "segment".as_ref(),
        data.join("s0001").as_os_str(),
        "-o".as_ref(),
        pred.as_os_str(),
        "--model".as_ref(),
        out.as_os_str(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    assert!(ok, "{log}");
    assert!(log.contains("UME's inference engine"), "{log}");
    assert!(pred.is_file());
}
