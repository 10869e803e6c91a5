//! Learning from partial labels, headless: training never takes a target
//! from an unlabelled slice, a `.slices.json` beside a dataset's labels
//! limits training to its slices, fine-tuning on 8 labelled slices of a
//! phantom raises the Dice on held-out labelled slices (CPU engine), and
//! `ume suggest --json` scores every slice for U-Net and encoder
//! checkpoints.
#![cfg(feature = "ml")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::atomic::AtomicBool;
use ume::models::segment::{InputNorm, SegmenterConfig, load_checkpoint, save_checkpoint};
use ume::models::{DeviceChoice, OutputMode, UNet2dConfig, device};
use ume::phantom::{Kind, Size, brats_case};
use ume::training::augment::Rng;
use ume::training::data::{LabelledCase, Sample};
use ume::training::{RunOptions, TrainConfig, TrainingData, train, validate};

fn tiny_config(steps: usize) -> TrainConfig {
    let model = SegmenterConfig {
        network: UNet2dConfig::new(4, 4)
            .with_features(vec![8, 16, 32])
            .with_bottleneck(32)
            .with_output(OutputMode::MultiClass),
        size: 48,
        norm: InputNorm::ZScore,
        label_ids: vec![1, 2, 4],
        context_slices: 0,
    };
    let mut c = TrainConfig::fine_tune(&model, steps, 3e-3);
    c.training.val_every = steps;
    c.training.checkpoint_every = steps;
    c
}

fn opts(out: &Path, init: Option<&Path>) -> RunOptions {
    RunOptions {
        out: out.to_path_buf(),
        resume: false,
        device: device(DeviceChoice::Cpu),
        init: init.map(|p| p.display().to_string()),
        cpu_engine: true,
    }
}

#[test]
fn unlabelled_slices_are_never_training_targets() {
    let c = brats_case(5, 1, Size::Small);
    let mut labels = c.labels.clone();
    let [nx, ny, nz] = labels.dims;
    let labelled = [20usize, 28, 36, 44];
    // A structure only in the unlabelled slices: if any of them were drawn
    // as a target, id 9 would appear. Class-balanced sampling asks for it.
    for k in (0..nz).filter(|k| !labelled.contains(k)) {
        for j in 10..30 {
            for i in 10..30 {
                labels.set(i + nx * (j + ny * k), 9);
            }
        }
    }
    let mut config = tiny_config(10);
    config.model.label_ids = vec![1, 2, 4, 9];
    config.model.network.out_channels = 5;
    config.data.labelled_slice_bias = 0.9;
    let channels: Vec<_> = c.images.iter().map(|(_, v)| v).collect();
    let s = Sample::new("case".into(), &channels, 0, labels, &config)
        .unwrap()
        .with_labelled_slices(&labelled)
        .unwrap();
    assert_eq!(s.labelled_slices(), labelled);
    let data = TrainingData {
        train: vec![s],
        val: Vec::new(),
        present: vec![1, 2, 4, 9],
    };
    let mut rng = Rng::new(1);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let (_, ys) = data.batch(&config, &[1, 2, 4, 9], &mut rng);
        seen.extend(ys);
    }
    assert!(
        !seen.contains(&9),
        "an unlabelled slice was a target: {seen:?}"
    );
    assert!(seen.contains(&1) && seen.contains(&2), "{seen:?}");
    // Validation counts the labelled slices only: a model can not be
    // blamed (or credited) for slices nobody labelled.
    let dev = device(DeviceChoice::Cpu);
    let model = config.model.network.init(&dev);
    let dice = validate(&config.model, &model, &data.train, &dev, 8).unwrap();
    let nine = dice.iter().find(|d| d.0 == 9).unwrap().1;
    assert!(
        nine.is_nan() || nine == 0.0,
        "id 9 is absent from labelled slices: {nine}"
    );
    // Bad lists are refused, naming the case.
    let channels: Vec<_> = c.images.iter().map(|(_, v)| v).collect();
    let fresh = || Sample::new("case7".into(), &channels, 0, c.labels.clone(), &config).unwrap();
    assert!(fresh().with_labelled_slices(&[]).is_err());
    let e = fresh()
        .with_labelled_slices(&[nz])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("case7") && e.contains("past"), "{e}");
}

#[test]
fn a_slices_json_beside_dataset_labels_limits_training_to_its_slices() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs =
        ume::phantom::generate(Kind::Brats, Size::Small, 3, 1, tmp.path(), |_, _| {}).unwrap();
    let name = dirs[0].file_name().unwrap().to_string_lossy().to_string();
    let sidecar = dirs[0].join(format!("{name}_seg.slices.json"));
    std::fs::write(&sidecar, r#"{"axis": 2, "slices": [30, 12, 30]}"#).unwrap();
    let ds = ume::dataset::open(tmp.path()).unwrap();
    let case = ds.load_case(0).unwrap();
    assert_eq!(case.labelled_slices, Some(vec![12, 30]));
    let data = TrainingData::from_cases(&[case], &tiny_config(5)).unwrap();
    assert_eq!(data.train[0].labelled_slices(), [12, 30]);
    // Without it, every slice counts, as before.
    std::fs::remove_file(&sidecar).unwrap();
    let case = ds.load_case(0).unwrap();
    let nz = case.labels.as_ref().unwrap().dims[2];
    let data = TrainingData::from_cases(&[case], &tiny_config(5)).unwrap();
    assert_eq!(data.train[0].labelled_slices().len(), nz);
    // A list past the volume is an error naming the file.
    std::fs::write(&sidecar, "[1, 999]").unwrap();
    let e = ds.load_case(0).unwrap_err().to_string();
    assert!(e.contains(".slices.json") && e.contains("999"), "{e}");
}

#[test]
fn fine_tuning_on_eight_labelled_slices_raises_held_out_dice() {
    let tmp = tempfile::tempdir().unwrap();
    // A weak model: a short training on another case.
    let weak = tmp.path().join("weak");
    let config = tiny_config(30);
    let other = brats_case(900, 1, Size::Small);
    let channels: Vec<_> = other.images.iter().map(|(_, v)| v).collect();
    let data = TrainingData {
        train: vec![
            Sample::new("other".into(), &channels, 0, other.labels.clone(), &config).unwrap(),
        ],
        val: Vec::new(),
        present: vec![1, 2, 4],
    };
    train(
        &config,
        &data,
        &opts(&weak, None),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();

    // The user labels 8 slices through the tumour of a new case.
    let c = brats_case(901, 1, Size::Small);
    let nz = c.labels.dims[2];
    let plane = c.labels.dims[0] * c.labels.dims[1];
    let tumour: Vec<usize> = (0..nz)
        .filter(|k| (0..plane).any(|p| c.labels.get(k * plane + p) != 0))
        .collect();
    let slices: Vec<usize> = (0..8)
        .map(|i| tumour[(2 * i + 1) * tumour.len() / 16])
        .collect();
    let case = LabelledCase {
        id: &c.id,
        images: c.images.iter().map(|(m, v)| (m.as_str(), v)).collect(),
        labels: Some(&c.labels),
        frame_labels: Vec::new(),
        labelled_slices: Some(&slices),
        frame_slices: Vec::new(),
    };
    let tune = tiny_config(80);
    // One labelled slice cannot both train and measure: said, not run.
    let one = LabelledCase {
        labelled_slices: Some(&slices[..1]),
        images: case.images.clone(),
        ..case
    };
    let e = TrainingData::held_out(&one, &tune, 0.25)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("1 labelled slice") && e.contains("at least 2"),
        "{e}"
    );
    let case = LabelledCase {
        labelled_slices: Some(&slices),
        ..one
    };
    let (data, held) = TrainingData::held_out(&case, &tune, 0.25).unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|k| slices.contains(k)));
    assert!(
        data.train[0]
            .labelled_slices()
            .iter()
            .all(|k| !held.contains(k))
    );
    assert_eq!(data.val[0].labelled_slices(), held);
    let dev = device(DeviceChoice::Cpu);
    let mean = |d: Vec<(u16, f64)>| {
        let f: Vec<f64> = d
            .into_iter()
            .map(|x| x.1)
            .filter(|x| x.is_finite())
            .collect();
        f.iter().sum::<f64>() / f.len().max(1) as f64
    };
    let (wc, wm) = load_checkpoint(&weak, &dev).unwrap();
    let before = mean(validate(&wc, &wm, &data.val, &dev, 8).unwrap());
    let out = tmp.path().join("tuned");
    train(
        &tune,
        &data,
        &opts(&out, Some(&weak)),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    let (tc, tm) = load_checkpoint(&out, &dev).unwrap();
    let after = mean(validate(&tc, &tm, &data.val, &dev, 8).unwrap());
    assert!(
        after > before + 0.05,
        "held-out Dice {before:.3} → {after:.3} on slices {held:?}"
    );
}

fn suggest_json(input: &Path, model: &str) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(["suggest"])
        .arg(input)
        .args(["--model", model, "--json", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn suggest_scores_every_slice_for_unet_and_encoder_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ume::phantom::generate(Kind::Brats, Size::Small, 4, 1, &data, |_, _| {}).unwrap();
    let nz = 62;
    let dev = device(DeviceChoice::Cpu);
    let unet = tmp.path().join("unet");
    let config = tiny_config(1).model;
    save_checkpoint(&unet, &config, &config.network.init(&dev)).unwrap();
    let encoder = tmp.path().join("encoder");
    let cfg = ume::models::encoder::UmeConfig::new(4)
        .with_embed_dim(16)
        .with_num_heads(2)
        .with_num_layers(1)
        .with_patch_size(8)
        .with_image_size([32, 32])
        .with_max_keyframes(3)
        .with_max_frames(64)
        .with_voco_dim(8)
        .with_label_ids(vec![1, 2, 4]);
    ume::models::encoder::save_encoder(&encoder, &cfg, &cfg.init(&dev)).unwrap();
    for model in [&unet, &encoder] {
        let j = suggest_json(&data, &model.display().to_string());
        assert_eq!(j["axis"], 2);
        let slices = j["slices"].as_array().unwrap();
        assert_eq!(slices.len(), nz, "{}", model.display());
        for (i, s) in slices.iter().enumerate() {
            assert_eq!(s["index"].as_u64(), Some(i as u64));
            let score = s["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score), "{score}");
        }
        assert!(
            slices.iter().any(|s| s["score"].as_f64().unwrap() > 0.0),
            "a random model is unsure somewhere"
        );
    }
    // Without --json: the top K, one line each, best first.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(["suggest"])
        .arg(&data)
        .args([
            "--model",
            &unet.display().to_string(),
            "--k",
            "3",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.lines().filter(|l| l.contains(". slice")).count(),
        3,
        "{text}"
    );
}

#[cfg(feature = "gui")] // the plot is drawn with the GUI's image crate
#[test]
fn bench_suggest_runs_and_reports_the_three_strategies() {
    let tmp = tempfile::tempdir().unwrap();
    let plot = tmp.path().join("suggest.png");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(["bench", "suggest", "--steps", "2", "--weak-steps", "2"])
        .args(["--cases", "1", "--random-draws", "1", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("| N | suggest | random | every-k |"),
        "{text}"
    );
    for n in [2, 4, 8, 16] {
        assert!(text.contains(&format!("\n| {n} | ")), "row N = {n}: {text}");
    }
    assert!(text.contains("suggest ≥ random") || text.contains("suggest < random"));
    let img = image::open(&plot).unwrap();
    assert!(img.width() > 100 && img.height() > 100);
}

#[test]
fn each_labelled_frame_of_a_cine_keeps_its_own_slices() {
    // An ACDC-style case: ED labelled whole, ES with a slice list beside
    // its file. The ES list must not leak into ED, nor ED's "every slice"
    // into ES.
    let tmp = tempfile::tempdir().unwrap();
    ume::phantom::generate(Kind::Acdc, Size::Small, 3, 1, tmp.path(), |_, _| {}).unwrap();
    let ds = ume::dataset::open(tmp.path()).unwrap();
    let spec = &ds.cases[0];
    let ume::dataset::LabelSource::Frames(frames) = &spec.labels else {
        panic!("ACDC labels are per frame: {:?}", spec.labels)
    };
    let (es_frame, es_path) = frames[1].clone();
    let sidecar = ume::annotation::slices::sidecar_path(&es_path);
    std::fs::write(&sidecar, "[1, 3]").unwrap();
    let case = ds.load_case(0).unwrap();
    assert_eq!(case.frame_slices, vec![(es_frame, vec![1, 3])]);
    let mut config = tiny_config(5);
    config.model.network.in_channels = 1;
    config.model.label_ids = vec![1, 2, 3];
    let data = TrainingData::from_cases(&[case], &config).unwrap();
    let nz = data.train[0].labels.dims[2];
    let lists: Vec<usize> = data
        .train
        .iter()
        .map(|s| s.labelled_slices().len())
        .collect();
    assert_eq!(lists, vec![nz, 2], "ED whole, ES on its two slices");
    // Held out per map: ES keeps one slice to train and one to measure.
    let case = ds.load_case(0).unwrap();
    let (data, held) = TrainingData::held_out(&LabelledCase::from(&case), &config, 0.25).unwrap();
    assert!(held.iter().all(|&k| k < nz));
    let es: Vec<&Sample> = data
        .train
        .iter()
        .chain(&data.val)
        .filter(|s| s.id.ends_with(&format!("frame {es_frame}")))
        .collect();
    let mut es_slices: Vec<usize> = es
        .iter()
        .flat_map(|s| s.labelled_slices().to_vec())
        .collect();
    es_slices.sort_unstable();
    assert_eq!(
        es_slices,
        vec![1, 3],
        "ES's slices split between train and held out"
    );
}
