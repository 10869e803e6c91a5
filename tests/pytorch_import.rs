//! PyTorch weight import: a `.pth` written by `scripts/unet_reference.py
//! parity` (random weights and BatchNorm statistics of the seed 003 U-Net,
//! with its output for a fixed input) loads into `UNet2d` and gives the same
//! output within 1e-4 relative. The fixture was made with real PyTorch
//! 2.15; `UME_PYTHON=PY cargo test --release --test pytorch_import --
//! --ignored` (PY: a Python with torch, default python3) makes a
//! fresh one (another shape) with the installed PyTorch and checks again.
//! The same for the references of the tokenizer and the UME encoder
//! (`scripts/titok_reference.py`, `scripts/encoder_reference.py`): codes,
//! token ids, frames, keyframe scores and choice, context, gates,
//! segmentation logits and VoCo embeddings match PyTorch's.
#![cfg(feature = "ml")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use burn::prelude::*;
use std::path::Path;
use ume::models::pytorch::load_pth;
use ume::models::{DeviceChoice, OutputMode, UNet2dConfig, device};

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn check(dir: &Path) {
    let meta: serde_json::Value = json(&dir.join("meta.json"));
    let dims = |k: &str| -> Vec<usize> {
        meta[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    let config = UNet2dConfig::new(
        meta["in_channels"].as_u64().unwrap() as usize,
        meta["out_channels"].as_u64().unwrap() as usize,
    )
    .with_features(dims("features"))
    .with_bottleneck(meta["bottleneck"].as_u64().unwrap() as usize)
    .with_output(OutputMode::MultiLabel);
    let dev = device(DeviceChoice::Cpu);
    let model = load_pth(&dir.join("model.pth"), &config, &dev).unwrap();
    let (xs, x) = fixture_input(dir);
    let x = Tensor::<4>::from_data(TensorData::new(x, [xs[0], xs[1], xs[2], xs[3]]), &dev);
    assert_matches(values(model.forward(x)), dir, "y");
}

#[test]
fn seed_unet_pth_matches_pytorch_output() {
    check(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unet_pth"
    )));
}

#[test]
fn a_pth_of_another_shape_is_refused_clearly() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unet_pth"
    ));
    let config = UNet2dConfig::new(2, 3)
        .with_features(vec![8, 16, 32, 64])
        .with_bottleneck(16);
    let e = load_pth(&dir.join("model.pth"), &config, &device(DeviceChoice::Cpu))
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.pth"), "{e}");
    let e = load_pth(&dir.join("x.bin"), &config, &device(DeviceChoice::Cpu))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x.bin"), "{e}");
}

#[test]
#[ignore = "needs PyTorch: UME_PYTHON=… cargo test --release --test pytorch_import -- --ignored"]
fn live_pytorch_parity() {
    let tmp = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/unet_reference.py");
    let python = std::env::var("UME_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(python)
        .args([script, "parity"])
        .arg(tmp.path())
        .args([
            "--in-channels",
            "4",
            "--out-channels",
            "4",
            "--features",
            "8,16,32,64",
        ])
        .args([
            "--bottleneck",
            "128",
            "--size",
            "64",
            "--batch",
            "2",
            "--seed",
            "11",
        ])
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "the PyTorch script failed (is torch installed?)"
    );
    check(tmp.path());
}

#[test]
fn import_pth_writes_a_checkpoint_that_segments() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/unet_pth"
    ));
    let tmp = tempfile::tempdir().unwrap();
    // The network of the fixture, as a checkpoint config.
    let config = tmp.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"in_channels": 2, "out_channels": 3, "features": [4, 8, 8, 16], "bottleneck": 16,
            "output": "MultiLabel", "size": 32, "norm": "z_score", "label_ids": []}"#,
    )
    .unwrap();
    let out = tmp.path().join("ckpt");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .arg("import-pth")
        .arg(dir.join("model.pth"))
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("3 structures"));
    // The checkpoint holds PyTorch's weights: same output as the direct import.
    let dev = device(DeviceChoice::Cpu);
    let (cfg, model) = ume::models::segment::load_checkpoint(&out, &dev).unwrap();
    assert_eq!(cfg.label_ids, vec![1, 2, 3]);
    let direct = load_pth(&dir.join("model.pth"), &cfg.network, &dev).unwrap();
    let x = Tensor::<4>::from_data(
        TensorData::new(read_f32(&dir.join("x.bin")), [2, 2, 32, 32]),
        &dev,
    );
    let a = model
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b = direct.forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}

/// `meta.json`'s `x_shape` and the input `x.bin` of a reference fixture.
fn fixture_input(dir: &Path) -> (Vec<usize>, Vec<f32>) {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    let shape = meta["x_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    (shape, read_f32(&dir.join("x.bin")))
}

/// `got` equals the fixture's `NAME.bin` within 1e-4 of its scale.
fn assert_matches(got: Vec<f32>, dir: &Path, name: &str) {
    let want = read_f32(&dir.join(format!("{name}.bin")));
    assert_eq!(got.len(), want.len(), "{name}");
    let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{name}: max difference {worst} vs scale {scale}"
    );
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Run `scripts/SCRIPT parity DIR --seed SEED` with `UME_PYTHON` (or
/// python3) into a fresh folder.
fn live_fixture(script: &str, seed: u32) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let python = std::env::var("UME_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(python)
        .arg(script)
        .arg("parity")
        .arg(tmp.path())
        .args(["--seed", &seed.to_string()])
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "the PyTorch script failed (is torch installed?)"
    );
    tmp
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The tokenizer of `scripts/titok_reference.py parity` loads and gives
/// PyTorch's codes (1e-4 of their scale), the same token ids and the same
/// decoded frames.
fn check_titok(dir: &Path) {
    use ume::models::pytorch::load_titok_pth;
    use ume::models::tokenizer::TitokConfig;
    let config: TitokConfig = json(&dir.join("config.json"));
    let (xs, x) = fixture_input(dir);
    let dev = device(DeviceChoice::Cpu);
    let model = load_titok_pth(&dir.join("model.pth"), &config, &dev).unwrap();
    let x = Tensor::<4>::from_data(TensorData::new(x, [xs[0], xs[1], xs[2], xs[3]]), &dev);
    assert_matches(values(model.encode(x.clone())), dir, "z");
    let ids = model.tokenize(x);
    let got: Vec<i64> = ids
        .clone()
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .unwrap();
    let want: Vec<Vec<i64>> = json(&dir.join("ids.json"));
    assert_eq!(got, want.concat(), "token ids");
    assert_matches(values(model.detokenize(ids)), dir, "y");
}

#[test]
fn tokenizer_pth_matches_pytorch_output() {
    check_titok(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/titok_pth"
    )));
}

#[test]
#[ignore = "needs PyTorch: UME_PYTHON=… cargo test --release --test pytorch_import -- --ignored"]
fn live_pytorch_tokenizer_parity() {
    check_titok(live_fixture("titok_reference.py", 12).path());
}

/// The encoder of `scripts/encoder_reference.py parity` loads and gives
/// PyTorch's fused keyframe scores, the same keyframes, and PyTorch's
/// context tokens, modality gates, segmentation logits and VoCo embedding
/// (1e-4 of their scale).
fn check_encoder(dir: &Path) {
    use ume::keyframes::FrameAxis;
    use ume::models::encoder::UmeConfig;
    use ume::models::pytorch::load_encoder_pth;
    let config: UmeConfig = json(&dir.join("config.json"));
    let (xs, x) = fixture_input(dir);
    let dev = device(DeviceChoice::Cpu);
    let model = load_encoder_pth(&dir.join("model.pth"), &config, &dev).unwrap();
    let x = Tensor::<5>::from_data(
        TensorData::new(x, [xs[0], xs[1], xs[2], xs[3], xs[4]]),
        &dev,
    );
    let tokens = model.embed(x.clone());
    let selection = model.select(tokens.clone(), config.max_keyframes, FrameAxis::Slices);
    assert_matches(values(selection.fused.clone()), dir, "fused");
    let want: Vec<Vec<usize>> = json(&dir.join("keyframes.json"));
    assert_eq!(selection.indices, want, "keyframes");
    let context = model.context(tokens.clone(), &selection);
    assert_matches(values(context.tokens.clone()), dir, "context");
    assert_matches(values(context.gates.clone()), dir, "gates");
    assert_matches(
        values(model.segment_frame(&tokens, 2, &context)),
        dir,
        "seg",
    );
    assert_matches(values(model.voco(x)), dir, "voco");
}

#[test]
fn encoder_pth_matches_pytorch_output() {
    check_encoder(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/encoder_pth"
    )));
}

#[test]
#[ignore = "needs PyTorch: UME_PYTHON=… cargo test --release --test pytorch_import -- --ignored"]
fn live_pytorch_encoder_parity() {
    check_encoder(live_fixture("encoder_reference.py", 40).path());
}
