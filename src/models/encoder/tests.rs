//! The encoder's shapes, selection gradients and checkpoints.

use super::*;
use crate::keyframes::{FrameAxis, Strategy};
use crate::models::{DeviceChoice, device};
use burn::tensor::Distribution;

fn tiny() -> UmeConfig {
    UmeConfig::new(2)
        .with_embed_dim(16)
        .with_num_heads(2)
        .with_num_layers(1)
        .with_patch_size(8)
        .with_image_size([32, 32])
        .with_num_classes(3)
        .with_max_keyframes(3)
        .with_compression_ratio(4)
        .with_max_frames(16)
        .with_voco_dim(8)
}

#[test]
fn shapes_through_the_whole_encoder() {
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu);
    let cfg = tiny();
    cfg.check().unwrap();
    let enc = cfg.init(&dev);
    let x = Tensor::<5>::random([2, 2, 10, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
    let tokens = enc.embed(x);
    assert_eq!(tokens.dims(), [2, 2, 10, 16, 16]);
    let sel = enc.select(tokens.clone(), 3, FrameAxis::Slices);
    assert_eq!(sel.indices.len(), 2);
    assert!(
        sel.indices
            .iter()
            .all(|i| i.len() == 3 && i.windows(2).all(|w| w[0] < w[1]))
    );
    for s in [
        &sel.uniform,
        &sel.content,
        &sel.attention,
        &sel.fused,
        &sel.mask,
    ] {
        assert_eq!(s.dims(), [2, 10]);
    }
    let w: Vec<f32> = sel.weights.clone().into_data().try_to_vec::<f32>().unwrap();
    assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let ctx = enc.context(tokens.clone(), &sel);
    assert_eq!(ctx.tokens.dims(), [2, 1 + 3 * 4, 16]);
    assert_eq!(ctx.gates.dims(), [2, 2]);
    assert_eq!(enc.segment_frame(&tokens, 4, &ctx).dims(), [2, 3, 32, 32]);
    let crops = Tensor::<5>::random([3, 2, 4, 16, 16], Distribution::Normal(0.0, 1.0), &dev);
    let z = enc.voco(crops);
    assert_eq!(z.dims(), [3, 8]);
    let norms: Vec<f32> = z
        .powi_scalar(2)
        .sum_dim(1)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4));
}

#[test]
fn uniform_prior_is_exact_and_content_finds_the_odd_frames() {
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu);
    let enc = tiny().init(&dev);
    // Frames constant except a jump between frames 6 and 7.
    let mut data = vec![0.0f32; 2 * 10 * 32 * 32];
    for m in 0..2 {
        for t in 7..10 {
            let base = (m * 10 + t) * 32 * 32;
            data[base..base + 32 * 32].fill(3.0);
        }
    }
    let x = Tensor::<5>::from_data(TensorData::new(data, [1, 2, 10, 32, 32]), &dev);
    let sel = enc.select(enc.embed(x), 2, FrameAxis::Slices);
    let u: Vec<f32> = sel.uniform.into_data().try_to_vec::<f32>().unwrap();
    let ones: Vec<usize> = (0..10).filter(|&t| u[t] == 1.0).collect();
    assert_eq!(ones, crate::keyframes::uniform_indices(10, 2));
    // The three frames after the jump are the farthest from the mean
    // (7 of 10 frames are dark).
    let c: Vec<f32> = sel.content.into_data().try_to_vec::<f32>().unwrap();
    assert!((7..10).all(|t| (c[t] - 1.0).abs() < 1e-4), "{c:?}");
    assert!((0..7).all(|t| c[t] < 0.6), "{c:?}");
    // Keyframes are spread: never two neighbours.
    let picked = &sel.indices[0];
    assert!(picked[1] - picked[0] >= crate::keyframes::min_gap(10, 2));
}

#[test]
fn seeded_init_is_deterministic_and_config_errors_are_clear() {
    let dev = device(DeviceChoice::Cpu);
    let x = Tensor::<5>::random([1, 2, 5, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
    let _serial = crate::models::SEEDED.lock();
    let run = || {
        dev.seed(42);
        let enc = tiny().init(&dev);
        let sel = enc.select(enc.embed(x.clone()), 2, FrameAxis::Slices);
        let ctx = enc.context(enc.embed(x.clone()), &sel);
        ctx.tokens.into_data().try_to_vec::<f32>().unwrap()
    };
    assert_eq!(run(), run());
    let bad = tiny().with_image_size([30, 32]);
    assert!(bad.check().unwrap_err().contains("patch_size"));
    let bad = tiny().with_compression_ratio(3);
    assert!(bad.check().unwrap_err().contains("compression_ratio"));
}

#[test]
fn checkpoint_round_trip_and_report() {
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu);
    let cfg = tiny();
    let enc = cfg.init(&dev);
    let tmp = tempfile::tempdir().unwrap();
    save_encoder(tmp.path(), &cfg, &enc).unwrap();
    let (cfg2, enc2) = load_encoder(tmp.path(), &dev).unwrap();
    assert_eq!(cfg2.embed_dim, 16);
    let frames: Vec<Vec<(Vec<f32>, usize, usize)>> = (0..2)
        .map(|m| {
            (0..7)
                .map(|t| {
                    (
                        (0..40 * 24).map(|i| (i * (t + 1) + m) as f32).collect(),
                        40,
                        24,
                    )
                })
                .collect()
        })
        .collect();
    let x = input_tensor(&cfg, &frames, &dev);
    assert_eq!(x.dims(), [1, 2, 7, 32, 32]);
    let a = keyframe_report(&enc, x.clone(), 3, FrameAxis::Slices);
    let b = keyframe_report(&enc2, x, 3, FrameAxis::Slices);
    assert_eq!(a.fused, b.fused);
    assert_eq!(a.selected, b.selected);
    assert_eq!(
        (a.frames, a.selected.len(), a.uniform.len(), a.gates.len()),
        (7, 3, 7, 2)
    );
    // A U-Net folder is refused clearly.
    let unet = tempfile::tempdir().unwrap();
    let sc = crate::models::segment::SegmenterConfig {
        network: crate::models::UNet2dConfig::new(1, 2)
            .with_features(vec![4])
            .with_bottleneck(4),
        size: 16,
        norm: crate::models::segment::InputNorm::ZScore,
        label_ids: vec![1],
        context_slices: 0,
    };
    crate::models::segment::save_checkpoint(unet.path(), &sc, &sc.network.init(&dev)).unwrap();
    let e = load_encoder(unet.path(), &dev).unwrap_err().to_string();
    assert!(e.contains("UME encoder"), "{e}");
}

#[test]
fn frame_by_frame_segmentation_on_the_native_grid() {
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu);
    let cfg = tiny().with_label_ids(vec![1, 4]).with_max_frames(64);
    let enc = cfg.init(&dev);
    let case = crate::phantom::brats_case(5, 1, crate::phantom::Size::Small);
    let vols: Vec<&crate::volume::Volume> = case.images.iter().take(2).map(|(_, v)| v).collect();
    let mut calls = 0;
    let labels = segment_volume(&cfg, &enc, &vols, &dev, |_, _| {
        calls += 1;
        true
    })
    .unwrap();
    assert_eq!(labels.dims, vols[0].dims);
    assert_eq!(calls, vols[0].dims[2]);
    assert!((0..labels.len()).all(|i| [0, 1, 4].contains(&labels.get(i))));
    let stop = segment_volume(&cfg, &enc, &vols, &dev, |_, _| false);
    assert!(matches!(
        stop,
        Err(crate::models::segment::SegmentError::Cancelled)
    ));
}

#[test]
fn case_keyframes_checks_the_case_and_selects_per_strategy() {
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu);
    let cfg = tiny().with_max_frames(64);
    let enc = cfg.init(&dev);
    let case = crate::phantom::brats_case(5, 1, crate::phantom::Size::Small);
    let vols: Vec<&crate::volume::Volume> = case.images.iter().map(|(_, v)| v).collect();
    let r = case_keyframes(&cfg, &enc, &vols[..2], 3, &dev).unwrap();
    assert_eq!((r.frames, r.axis), (vols[0].dims[2], FrameAxis::Slices));
    assert_eq!(r.selection(Strategy::Fused, 3), r.selected);
    assert_eq!(
        r.selection(Strategy::Uniform, 3),
        crate::keyframes::uniform_indices(r.frames, 3)
    );
    let att = r.selection(Strategy::Attention, 3);
    let peak = (0..r.frames)
        .max_by(|&p, &q| r.attention[p].total_cmp(&r.attention[q]).then(q.cmp(&p)))
        .unwrap();
    assert!(att.contains(&peak), "{att:?} misses {peak}");
    // Too few modalities, too many frames: clear refusals.
    let e = case_keyframes(&cfg, &enc, &vols[..1], 3, &dev).unwrap_err();
    assert!(e.to_string().contains("takes 2 modalities"), "{e}");
    let short = tiny().with_max_frames(16);
    let e = case_keyframes(&short, &short.init(&dev), &vols[..2], 3, &dev).unwrap_err();
    assert!(e.to_string().contains("max_frames"), "{e}");
}

#[test]
fn cpu_and_wgpu_agree() {
    let _serial = crate::models::SEEDED.lock();
    let cpu = device(DeviceChoice::Cpu);
    let gpu = device(DeviceChoice::Wgpu);
    let enc = tiny().init(&cpu);
    let on_gpu = enc.clone().to_device(&gpu);
    let x = Tensor::<5>::random([1, 2, 6, 32, 32], Distribution::Normal(0.0, 1.0), &cpu);
    let run = |e: &UmeEncoder, x: Tensor<5>| {
        let tokens = e.embed(x);
        let sel = e.select(tokens.clone(), 3, FrameAxis::Slices);
        let ctx = e.context(tokens.clone(), &sel);
        let seg = e.segment_frame(&tokens, 2, &ctx);
        (
            sel.indices,
            seg.into_data().try_to_vec::<f32>().unwrap(),
            ctx.gates.into_data().try_to_vec::<f32>().unwrap(),
        )
    };
    let (ia, a, ga) = run(&enc, x.clone());
    let (ib, b, gb) = run(&on_gpu, x.to_device(&gpu));
    assert_eq!(ia, ib, "same keyframes");
    let scale = crate::models::max_abs(&a).max(1e-3);
    let worst = crate::models::max_abs_diff(&a, &b);
    assert!(
        worst / scale < 1e-3,
        "segmentation logits differ by {worst}"
    );
    for (p, q) in ga.iter().zip(&gb) {
        assert!((p - q).abs() < 1e-4);
    }
}

#[test]
fn selection_scores_receive_gradients() {
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu).autodiff();
    let enc = tiny().init(&dev);
    let x = Tensor::<5>::random([1, 2, 6, 32, 32], Distribution::Normal(0.0, 1.0), &dev);
    let tokens = enc.embed(x);
    let sel = enc.select(tokens.clone(), 2, FrameAxis::Slices);
    let ctx = enc.context(tokens, &sel);
    // A random weighting of the tokens: their plain sum (or sum of
    // squares) is constant through a layer norm with unit gain, so its
    // gradient would be rounding noise.
    let w = Tensor::random(ctx.tokens.shape(), Distribution::Normal(0.0, 1.0), &dev);
    let loss = (ctx.tokens * w).sum();
    let grads = loss.backward();
    let g = enc
        .fusion_logits
        .val()
        .grad(&grads)
        .expect("fusion weights get a gradient");
    let g: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
    assert!(g.iter().any(|v| v.abs() > 1e-4), "{g:?}");
}

#[test]
fn identical_frames_keep_gradients_finite() {
    // Every frame at the sequence mean: the content distance is 0, where
    // an unguarded square root has an infinite derivative.
    let _serial = crate::models::SEEDED.lock();
    let dev = device(DeviceChoice::Cpu).autodiff();
    let enc = tiny().init(&dev);
    // Two equal frames: their mean is exactly each of them.
    let x = Tensor::<5>::ones([1, 2, 2, 32, 32], &dev);
    let sel = enc.select(enc.embed(x), 1, FrameAxis::Slices);
    let loss = (sel.attention.clone() - sel.content.clone())
        .powi_scalar(2)
        .mean()
        + sel.fused.sum();
    let grads = loss.backward();
    let g = enc.attn_query.val().grad(&grads).expect("a gradient");
    let g: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    let w = enc.patch_pos.val().grad(&grads).expect("a gradient");
    let w: Vec<f32> = w.into_data().try_to_vec::<f32>().unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
}
