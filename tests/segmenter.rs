//! The 2D U-Net segmenter end to end on the CPU backend: checkpoints round
//! trip, a short training run on brain phantoms learns the tumour, and
//! segmentation writes labels on the input grid.
#![cfg(feature = "ml")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use burn::prelude::*;
use ume::models::segment::{InputNorm, SegmenterConfig, load_checkpoint, save_checkpoint, segment};
use ume::models::{DeviceChoice, OutputMode, UNet2dConfig, device};
use ume::phantom::{Size, brats_case};

/// Tests that draw from the backend's global random stream run one at a
/// time, so a seeded run always draws the same numbers.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config() -> SegmenterConfig {
    SegmenterConfig {
        network: UNet2dConfig::new(2, 4)
            .with_features(vec![8, 16, 32])
            .with_bottleneck(32)
            .with_output(OutputMode::MultiClass),
        size: 48,
        norm: InputNorm::ZScore,
        label_ids: vec![1, 2, 4],
        context_slices: 0,
    }
}

#[test]
fn checkpoints_round_trip() {
    let _serial = SEEDED.lock();
    let tmp = tempfile::tempdir().unwrap();
    let dev = device(DeviceChoice::Cpu);
    let cfg = config();
    let model = cfg.network.init(&dev);
    save_checkpoint(tmp.path(), &cfg, &model).unwrap();
    let (cfg2, loaded) = load_checkpoint(tmp.path(), &dev).unwrap();
    assert_eq!(cfg2.label_ids, cfg.label_ids);
    let x = Tensor::<4>::random(
        [1, 2, 48, 48],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &dev,
    );
    let a = model
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b = loaded.forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    std::fs::remove_file(tmp.path().join("model.bpk")).unwrap();
    let e = load_checkpoint(tmp.path(), &dev).unwrap_err().to_string();
    assert!(e.contains("model.bpk"), "{e}");
}

#[test]
fn short_training_learns_the_tumour() {
    let _serial = SEEDED.lock();
    use ume::training::{RunOptions, TrainConfig, TrainingData, train};
    let dev = device(DeviceChoice::Cpu);
    let mut tc = TrainConfig::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/unet_tiny_brats.json"
    )))
    .unwrap();
    tc.training.steps = 150;
    tc.training.val_every = 150;
    tc.training.checkpoint_every = 150;
    let cases: Vec<_> = (1..=3).map(|n| brats_dataset_case(31, n)).collect();
    let data = TrainingData::from_cases(&cases, &tc).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: tmp.path().to_path_buf(),
        resume: false,
        device: dev.clone(),
        init: None,
        cpu_engine: true,
    };
    let mut losses = Vec::new();
    train(&tc, &data, &opts, &Default::default(), |e| {
        if let ume::training::Event::Step { loss, .. } = e {
            losses.push(loss);
        }
    })
    .unwrap();
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last < first * 0.5, "loss {first} -> {last}");
    // Held-out case (another seed): whole-tumour Dice with the best model.
    let (cfg, model) = load_checkpoint(tmp.path(), &dev).unwrap();
    let test = brats_case(99, 1, Size::Small);
    let pred = segment(
        &cfg,
        &model,
        &[&test.images[1].1, &test.images[3].1],
        &dev,
        8,
        |_, _| true,
    )
    .unwrap();
    assert_eq!(pred.dims, test.labels.dims);
    let (mut inter, mut p, mut g) = (0usize, 0usize, 0usize);
    for i in 0..pred.len() {
        let (a, b) = (pred.get(i) != 0, test.labels.get(i) != 0);
        inter += usize::from(a && b);
        p += usize::from(a);
        g += usize::from(b);
    }
    let dice = 2.0 * inter as f64 / (p + g).max(1) as f64;
    eprintln!("held-out whole-tumour Dice after 150 steps: {dice:.3}");
    assert!(dice > 0.6, "whole-tumour Dice {dice:.3}");
    assert!((0..pred.len()).all(|i| [0, 1, 2, 4].contains(&pred.get(i))));
}

#[test]
fn segment_cli_writes_labels_on_the_input_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = device(DeviceChoice::Cpu);
    let cfg = config();
    save_checkpoint(&tmp.path().join("ckpt"), &cfg, &cfg.network.init(&dev)).unwrap();
    let dirs = ume::phantom::generate(
        ume::phantom::Kind::Brats,
        Size::Small,
        5,
        1,
        &tmp.path().join("data"),
        |_, _| {},
    )
    .unwrap();
    let out = tmp.path().join("pred.nii.gz");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(["segment"])
        .arg(&dirs[0])
        .arg("-o")
        .arg(&out)
        .arg("--model")
        .arg(tmp.path().join("ckpt"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let labels = ume::io::load_labels(&out).unwrap();
    let t1 = ume::io::load(&dirs[0].join("BraTS20_Training_001_t1.nii.gz")).unwrap();
    assert_eq!(labels.dims, t1.dims);
    ume::dataset::check_same_grid(
        &out,
        labels.dims,
        &labels.geometry,
        &dirs[0],
        t1.dims,
        &t1.geometry,
    )
    .unwrap();
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .arg("segment")
        .arg(&dirs[0])
        .args(["-o", "y.nii.gz", "--model"])
        .arg(tmp.path().join("nope"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("nope") && msg.contains("bundled"), "{msg}");
}

#[test]
fn train_segment_eval_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ume::phantom::generate(
        ume::phantom::Kind::Brats,
        Size::Small,
        12,
        2,
        &data,
        |_, _| {},
    )
    .unwrap();
    let ume = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
            .args(args)
            .output()
            .unwrap()
    };
    let ck = tmp.path().join("ckpt");
    let o = ume(&[
        "train".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        ck.as_os_str(),
        "--config".as_ref(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/unet_tiny_brats.json").as_ref(),
        "--steps".as_ref(),
        "20".as_ref(),
        "--device".as_ref(),
        "cpu".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(ck.join("config.json").is_file() && ck.join("model.bpk").is_file());
    let case = data.join("BraTS20_Training_001");
    let pred = tmp.path().join("pred.nii.gz");
    let o = ume(&[
        "segment".as_ref(),
        case.as_os_str(),
        "-o".as_ref(),
        pred.as_os_str(),
        "--model".as_ref(),
        ck.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let gt = case.join("BraTS20_Training_001_seg.nii.gz");
    let o = ume(&[
        "eval".as_ref(),
        "--pred".as_ref(),
        pred.as_os_str(),
        "--gt".as_ref(),
        gt.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["structures"].is_array());
}

/// A loaded BraTS phantom case as the dataset reader returns it.
fn brats_dataset_case(seed: u64, n: usize) -> ume::dataset::Case {
    let c = brats_case(seed, n, Size::Small);
    ume::dataset::Case {
        id: format!("case{n}"),
        layout: ume::dataset::Layout::Brats,
        images: c.images.clone(),
        labels: Some(c.labels.clone()),
        frame_labels: Vec::new(),
        labelled_slices: None,
        frame_slices: Vec::new(),
        table: ume::volume::LabelTable::builtin("brats").unwrap(),
        acdc: None,
        warnings: Vec::new(),
    }
}

#[test]
fn bench_unet_reports_both_sides_or_says_why_not() {
    // A small network so the command runs in seconds; a Python that does
    // not exist stands for "PyTorch not installed".
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(["bench", "unet", "--size", "32", "--out-channels", "2"])
        .args(["--reps", "1", "--train-batch", "1", "--train-reps", "1"])
        .args(["--python", "/nonexistent/python3"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("PyTorch reference not run"), "{text}");
    assert!(
        text.contains("slices/s inference") && text.contains("img/s training"),
        "{text}"
    );
    // The CPU engines that segmentation and training run on each get a line.
    assert!(text.contains("UME CPU inference engine"), "{text}");
    assert!(text.contains("UME CPU training engine"), "{text}");
}
