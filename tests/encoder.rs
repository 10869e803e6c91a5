//! The UME encoder from the command line: `ume keyframes --model` on a
//! cardiac cine (time frames) and a brain case (z slices of 4 modalities)
//! prints every strategy's per-frame scores, the fused score, the fusion
//! weights and the modality gates; mismatched inputs are refused clearly.
#![cfg(feature = "ml")]
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use ume::models::encoder::{UmeConfig, save_encoder};
use ume::models::{DeviceChoice, device};
use ume::phantom::{Kind, Size, generate};

mod cli;

fn tiny(channels: usize) -> UmeConfig {
    UmeConfig::new(channels)
        .with_embed_dim(16)
        .with_num_heads(2)
        .with_num_layers(1)
        .with_patch_size(8)
        .with_image_size([32, 32])
        .with_max_keyframes(2)
        .with_compression_ratio(4)
        .with_max_frames(64)
        .with_voco_dim(8)
}

fn keyframes(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .arg("keyframes")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keyframes_with_an_encoder_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = device(DeviceChoice::Cpu);
    let ck1 = tmp.path().join("enc1");
    save_encoder(&ck1, &tiny(1), &tiny(1).init(&dev)).unwrap();
    let ck4 = tmp.path().join("enc4");
    save_encoder(&ck4, &tiny(4), &tiny(4).init(&dev)).unwrap();
    let acdc = generate(
        Kind::Acdc,
        Size::Small,
        3,
        1,
        &tmp.path().join("a"),
        |_, _| {},
    )
    .unwrap();
    let o = keyframes(&[
        acdc[0].as_os_str(),
        "--model".as_ref(),
        ck1.as_os_str(),
        "--k".as_ref(),
        "2".as_ref(),
        "--json".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = j["frames"].as_u64().unwrap() as usize;
    assert!(t > 2);
    assert_eq!(j["selected"].as_array().unwrap().len(), 2);
    for s in ["uniform", "content", "attention", "fused"] {
        assert_eq!(j["scores"][s].as_array().unwrap().len(), t, "{s}");
    }
    let w: Vec<f64> = j["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(w.len(), 3);
    assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    assert_eq!(j["strategy"], "fused");
    // A single strategy with the model picks from its own scores: the
    // attention peak is selected; uniform is exact.
    let with = |s: &str| {
        let o = keyframes(&[
            acdc[0].as_os_str(),
            "--model".as_ref(),
            ck1.as_os_str(),
            "--strategy".as_ref(),
            s.as_ref(),
            "--json".as_ref(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let a = with("attention");
    let scores: Vec<f64> = a["scores"]["attention"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let peak = (0..t)
        .max_by(|&p, &q| scores[p].total_cmp(&scores[q]))
        .unwrap();
    let picked: Vec<usize> = a["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert!(picked.contains(&peak), "{picked:?} misses the peak {peak}");
    let u = with("uniform");
    assert_eq!(
        u["selected"],
        serde_json::json!(ume::keyframes::uniform_indices(t, 2))
    );

    // A brain case: 4 modalities, z slices as frames, 4 modality gates.
    let brats = generate(
        Kind::Brats,
        Size::Small,
        3,
        1,
        &tmp.path().join("b"),
        |_, _| {},
    )
    .unwrap();
    let o = keyframes(&[
        brats[0].as_os_str(),
        "--model".as_ref(),
        ck4.as_os_str(),
        "--json".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["modality_gates"].as_array().unwrap().len(), 4);
    assert_eq!(j["frames"].as_u64().unwrap(), 62);

    // Frame-by-frame segmentation with the encoder checkpoint.
    let out = tmp.path().join("pred.nii.gz");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .arg("segment")
        .arg(&brats[0])
        .arg("-o")
        .arg(&out)
        .arg("--model")
        .arg(&ck4)
        .args(["--device", "cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let labels = ume::io::load_labels(&out).unwrap();
    assert_eq!(labels.dims, [96, 96, 62]);

    // The cine has one modality: the 4-channel encoder says so.
    let o = keyframes(&[acdc[0].as_os_str(), "--model".as_ref(), ck4.as_os_str()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("4 modalities"));
    // Attention without a model: a clear message.
    let o = keyframes(&[
        acdc[0].as_os_str(),
        "--strategy".as_ref(),
        "attention".as_ref(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("trained UME encoder"));
}

/// The tiny supervised encoder config at 32×32 and three BraTS phantom
/// cases of `seed`, ready for `train_ume`.
/// Training seeds the backend's global random stream; tests that train
/// run one at a time so their draws cannot interleave.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tiny_supervised(
    seed: u64,
    steps: usize,
    val_every: usize,
) -> (
    ume::training::ume_config::UmeTrainConfig,
    Vec<ume::training::ume::UmeCase>,
) {
    use ume::training::data::LabelledCase;
    let mut config = ume::training::ume_config::UmeTrainConfig::load(std::path::Path::new(
        concat!(env!("CARGO_MANIFEST_DIR"), "/configs/ume_tiny.json"),
    ))
    .unwrap();
    config.model.image_size = [32, 32];
    config.data.target_size = [32, 32, 62];
    config.model.max_keyframes = 6;
    config.training.steps = steps;
    config.training.val_every = val_every;
    let cases = (1..=3)
        .map(|n| {
            let c = ume::phantom::brats_case(seed, n, Size::Small);
            let images: Vec<(&str, &ume::volume::Volume)> =
                c.images.iter().map(|(m, v)| (m.as_str(), v)).collect();
            let case = LabelledCase {
                id: "case",
                images,
                labels: Some(&c.labels),
                frame_labels: Vec::new(),
                labelled_slices: None,
                frame_slices: Vec::new(),
            };
            ume::training::ume::UmeCase::new(&case, &config).unwrap()
        })
        .collect();
    (config, cases)
}

#[test]
fn supervised_encoder_training_lowers_the_loss_and_saves_a_usable_checkpoint() {
    let _serial = SEEDED.lock();
    use std::sync::atomic::AtomicBool;
    use ume::training::ume::train_ume;
    use ume::training::{Event, RunOptions};
    let (mut config, cases) = tiny_supervised(300, 120, 60);
    config.training.warmup_steps = 5;
    let tmp = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: tmp.path().join("enc"),
        resume: false,
        device: device(DeviceChoice::Cpu),
        init: None,
        cpu_engine: true,
    };
    let mut losses = Vec::new();
    let mut validated = 0;
    train_ume(
        &config,
        &cases[..2],
        &cases[2..],
        &opts,
        &AtomicBool::new(false),
        |e| match e {
            Event::Step { loss, terms, .. } => {
                // The seed's per-step figures: seg, div (and the rest).
                let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
                assert!(names.starts_with(&["seg", "div"]), "{names:?}");
                assert!(terms.iter().all(|t| t.1.is_finite()));
                losses.push(loss);
            }
            Event::Validated { dice, .. } => {
                validated += 1;
                assert_eq!(dice.len(), 3);
            }
            _ => {}
        },
    )
    .unwrap();
    assert_eq!((losses.len(), validated), (120, 2));
    let first: f32 = losses[..20].iter().sum::<f32>() / 20.0;
    let last: f32 = losses[100..].iter().sum::<f32>() / 20.0;
    assert!(last < first * 0.8, "loss {first} -> {last}");
    // The saved encoder segments a case frame by frame.
    let model = ume::models::Segmenter::load(opts.out.to_str().unwrap(), &opts.device).unwrap();
    let c = ume::phantom::brats_case(301, 1, Size::Small);
    let vols: Vec<&ume::volume::Volume> = c.images.iter().map(|(_, v)| v).collect();
    let pred = model.segment(&vols, &opts.device, 8, |_, _| true).unwrap();
    assert_eq!(pred.dims, c.labels.dims);
    assert!((0..pred.len()).all(|i| [0, 1, 2, 4].contains(&pred.get(i))));
}

/// A cancelled encoder run saves `last/`, and `--resume` continues it to
/// the same losses and the same best score as one uninterrupted run.
#[test]
fn a_step_averages_data_batch_size_volumes() {
    let _serial = SEEDED.lock();
    use std::sync::atomic::AtomicBool;
    use ume::training::ume::train_ume;
    use ume::training::{Event, RunOptions};
    let (mut config, cases) = tiny_supervised(320, 4, 100);
    // No update (learning rate 0), so the losses depend on the draws only:
    // two volumes per step see the draws of two one-volume steps.
    config.training.learning_rate = 0.0;
    config.training.weight_decay = 0.0;
    let tmp = tempfile::tempdir().unwrap();
    let losses = |config: &ume::training::ume_config::UmeTrainConfig, dir: &str| {
        let o = RunOptions {
            out: tmp.path().join(dir),
            resume: false,
            device: device(DeviceChoice::Cpu),
            init: None,
            cpu_engine: true,
        };
        let mut losses = Vec::new();
        train_ume(config, &cases, &[], &o, &AtomicBool::new(false), |e| {
            if let Event::Step { loss, .. } = e {
                losses.push(loss);
            }
        })
        .unwrap();
        losses
    };
    config.data.batch_size = 1;
    let single = losses(&config, "one");
    config.data.batch_size = 2;
    config.training.steps = 2;
    let paired = losses(&config, "two");
    assert_eq!((single.len(), paired.len()), (4, 2));
    for (k, &p) in paired.iter().enumerate() {
        let mean = (single[2 * k] + single[2 * k + 1]) / 2.0;
        assert!(
            (p - mean).abs() <= 1e-5 * mean.abs(),
            "{paired:?} vs {single:?}"
        );
    }
    assert!(single[0] != single[1], "the two draws differ: {single:?}");
}

#[test]
fn encoder_training_cancels_resumably_and_resumes_exactly() {
    let _serial = SEEDED.lock();
    use std::sync::atomic::{AtomicBool, Ordering};
    use ume::training::ume::train_ume;
    use ume::training::{Event, RunOptions, TrainError};
    let (config, cases) = tiny_supervised(310, 8, 3);
    let tmp = tempfile::tempdir().unwrap();
    let opts = |dir: &str, resume: bool| RunOptions {
        out: tmp.path().join(dir),
        resume,
        device: device(DeviceChoice::Cpu),
        init: None,
        cpu_engine: true,
    };
    // Losses, first step and the result of a run, cancelled after
    // `stop_after` steps when given.
    let run = |o: &RunOptions, stop_after: Option<usize>| {
        let cancel = AtomicBool::new(false);
        let (mut losses, mut first) = (Vec::new(), None);
        let result = train_ume(&config, &cases[..2], &cases[2..], o, &cancel, |e| match e {
            Event::Started { first_step, .. } => first = Some(first_step),
            Event::Step { loss, .. } => {
                losses.push(loss);
                if Some(losses.len()) == stop_after {
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        });
        (losses, first, result)
    };
    let (whole, _, done) = run(&opts("whole", false), None);
    let done = done.unwrap();
    assert_eq!(whole.len(), 8);

    let (head, _, stopped) = run(&opts("split", false), Some(5));
    assert!(
        matches!(stopped, Err(TrainError::Cancelled { steps: 5, .. })),
        "{stopped:?}"
    );
    assert!(tmp.path().join("split/last/state.json").is_file());
    let (tail, first, resumed) = run(&opts("split", true), None);
    assert_eq!(first, Some(5));
    let joined: Vec<f32> = head.into_iter().chain(tail).collect();
    assert_eq!(joined.len(), 8);
    for (a, b) in joined.iter().zip(&whole) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{joined:?} vs {whole:?}"
        );
    }
    let resumed = resumed.unwrap();
    assert!((resumed.best_dice - done.best_dice).abs() < 1e-6);
    assert_eq!(resumed.best_step, done.best_step);

    // Resuming with another model is refused, naming the folder.
    let mut other = config.clone();
    other.model.num_layers += 1;
    let err = train_ume(
        &other,
        &cases[..2],
        &cases[2..],
        &opts("split", true),
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("last"), "{err}");
}

#[test]
fn voco_pretraining_learns_overlaps_and_initialises_fine_tuning() {
    let _serial = SEEDED.lock();
    use std::sync::atomic::AtomicBool;
    use ume::training::data::LabelledCase;
    use ume::training::ume::{UmeCase, train_ume};
    use ume::training::ume_config::{UmeMode, UmeTrainConfig};
    use ume::training::{Event, RunOptions};
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/configs"));
    let mut voco = UmeTrainConfig::load(&dir.join("ume_tiny_voco.json")).unwrap();
    voco.training.steps = 150;
    voco.training.val_every = 150;
    let cases: Vec<UmeCase> = (1..=3)
        .map(|n| {
            let c = ume::phantom::brats_case(400, n, Size::Small);
            let images = c.images.iter().map(|(m, v)| (m.as_str(), v)).collect();
            let case = LabelledCase {
                id: "case",
                images,
                labels: Some(&c.labels),
                frame_labels: Vec::new(),
                labelled_slices: None,
                frame_slices: Vec::new(),
            };
            UmeCase::new(&case, &voco).unwrap()
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: tmp.path().join("voco"),
        resume: false,
        device: device(DeviceChoice::Cpu),
        init: None,
        cpu_engine: true,
    };
    let mut correlation = f64::NAN;
    train_ume(
        &voco,
        &cases[..2],
        &cases[2..],
        &opts,
        &AtomicBool::new(false),
        |e| match e {
            Event::Validated { mean_dice, .. } => correlation = mean_dice,
            Event::Step { terms, .. } => {
                let names: Vec<&str> = terms.iter().map(|t| t.0).collect();
                assert_eq!(names, ["voco", "area"]);
            }
            _ => {}
        },
    )
    .unwrap();
    eprintln!("held-out overlap correlation after 150 VoCo steps: {correlation:.3}");
    assert!(correlation > 0.5, "correlation {correlation}");
    // Supervised fine-tuning starts from the pretrained encoder.
    let mut sup = voco.clone();
    sup.training.mode = UmeMode::Supervised;
    sup.training.steps = 4;
    let fine = RunOptions {
        out: tmp.path().join("fine"),
        init: Some(opts.out.display().to_string()),
        ..opts.clone()
    };
    train_ume(
        &sup,
        &cases[..2],
        &cases[2..],
        &fine,
        &AtomicBool::new(false),
        |_| {},
    )
    .unwrap();
    assert!(fine.out.join("model.bpk").is_file());
}

#[test]
fn ume_train_logs_the_seeds_figures_and_bench_encoder_times_a_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("acdc");
    generate(Kind::Acdc, Size::Small, 21, 3, &data, |_, _| {}).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/ume_tiny_acdc.json");
    let out = tmp.path().join("enc");
    // `ume train` for `steps` steps (and `extra` flags): its whole log.
    let train = |steps: &str, extra: &[&str]| {
        let (ok, log) = cli::train(config, &data, &out, steps, extra);
        assert!(ok, "{log}");
        log
    };
    let log = train("6", &[]);
    // The validation line carries the step's terms, as seed 000's log.
    for term in ["loss=", "seg=", "div=", "cons=", "temp=", "cover="] {
        assert!(log.contains(term), "{term} missing from:\n{log}");
    }
    assert!(log.contains("encoder saved in"), "{log}");
    assert!(out.join("model.bpk").is_file());
    // `--resume` continues the encoder's run from `last/`.
    let log = train("8", &["--resume"]);
    assert!(log.contains("resumed at step 6"), "{log}");
    // The encoder benchmark on a small config: one line per device.
    let (ok, text) = cli::ume([
        "bench", "encoder", "--config", config, "--frames", "8", "--reps", "1",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("CPU (flex)") && text.contains("s per volume"),
        "{text}"
    );
    // Frames beyond the config's max_frames are refused.
    let (ok, text) = cli::ume(["bench", "encoder", "--config", config, "--frames", "999"]);
    assert!(!ok && text.contains("max_frames"), "{text}");
}
