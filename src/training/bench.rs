//! Throughput of the U-Net on a device, measured the way the PyTorch
//! reference (`scripts/unet_reference.py bench`) measures it: eval-mode
//! forward passes (slices/s) and Adam + BCE training steps (images/s), each
//! after one warm-up call, so `ume bench unet` can print ratios.

use crate::models::UNet2dConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use std::time::Instant;

/// One measurement.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Inference slices per second.
    pub inference_slices_per_s: f64,
    /// Inference slices per second of the CPU engine that segmentation
    /// uses on the CPU backend ([`crate::models::engine`]); `None` on wgpu.
    pub engine_slices_per_s: Option<f64>,
    /// Training images per second.
    pub train_images_per_s: f64,
    /// Training images per second through the CPU training engine that
    /// `ume train` uses on the CPU backend ([`super::cpu_train`]); `None`
    /// on wgpu.
    pub engine_train_images_per_s: Option<f64>,
}

/// Items per second of `f` (each call handling `items`) over `reps` calls
/// after one warm-up call (kernel compilation on wgpu, first-touch pages).
fn per_second(items: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let clock = Instant::now();
    for _ in 0..reps {
        f();
    }
    (reps * items) as f64 / clock.elapsed().as_secs_f64()
}

/// Time `reps` forwards of `batch` slices and `train_reps` training steps
/// of `train_batch` images at `size`×`size`.
pub fn unet_throughput(
    config: &UNet2dConfig,
    device: &Device,
    size: usize,
    batch: usize,
    reps: usize,
    train_batch: usize,
    train_reps: usize,
) -> Throughput {
    let model = config.init(device);
    let x = Tensor::<4>::random(
        [batch, config.in_channels, size, size],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let sync = |t: Tensor<4>| {
        let _ = t.into_data();
    };
    let inference = per_second(batch, reps, || sync(model.forward(x.clone())));
    let engine = crate::models::is_cpu(device).then(|| {
        let engine = crate::models::engine::CpuUnet::new(&model);
        let values: Vec<f32> = x
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        per_second(batch, reps, || {
            engine.recycle(engine.forward(&values, batch, size, size));
        })
    });

    let ad = device.clone().autodiff();
    let mut model = config.init(&ad);
    let mut optim = AdamConfig::new().init();
    let xt = Tensor::<4>::random(
        [train_batch, config.in_channels, size, size],
        Distribution::Normal(0.0, 1.0),
        &ad,
    );
    let yt = Tensor::<4>::random(
        [train_batch, config.out_channels, size, size],
        Distribution::Uniform(0.0, 1.0),
        &ad,
    )
    .greater_elem(0.5)
    .float();
    let step = || {
        let loss = crate::training::loss::bce(model.forward(xt.clone()), yt.clone());
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model.clone(), grads);
    };
    let train = per_second(train_batch, train_reps, step);
    let engine_train = crate::models::is_cpu(device).then(|| {
        let trainer = super::cpu_train::CpuTrainer::new();
        let xs: Vec<f32> = xt.clone().into_data().try_to_vec().unwrap_or_default();
        let ys: Vec<f32> = yt.clone().into_data().try_to_vec().unwrap_or_default();
        let mut buffers = crate::training::loss_grad::LossBuffers::default();
        let step = || {
            let (_, grads) = trainer.step(
                &model,
                &xs,
                [train_batch, size, size],
                |logits| {
                    crate::training::loss_grad::loss_and_grad(
                        crate::training::config::LossConfig::Bce,
                        config.output,
                        logits,
                        &ys,
                        [train_batch, config.out_channels, size * size],
                        1.0,
                        &mut buffers,
                    )
                },
                device,
            );
            model = optim.step(1e-3, model.clone(), grads);
        };
        per_second(train_batch, train_reps, step)
    });
    Throughput {
        inference_slices_per_s: inference,
        engine_slices_per_s: engine,
        train_images_per_s: train,
        engine_train_images_per_s: engine_train,
    }
}

/// Time of the UME encoder on one volume.
#[derive(Debug, Clone, Copy)]
pub struct EncoderTiming {
    /// Embedding, keyframe selection and the three fusion levels (the
    /// keyframe context), in seconds.
    pub forward_s: f64,
    /// The same plus the segmentation of every frame from that context.
    pub segment_all_s: f64,
}

/// Time the encoder on a random `[1, M, frames, H, W]` volume: `reps` runs
/// of each measurement after one warm-up; the median counts.
pub fn encoder_timing(
    config: &crate::models::encoder::UmeConfig,
    device: &Device,
    frames: usize,
    reps: usize,
) -> EncoderTiming {
    use crate::keyframes::FrameAxis;
    let encoder = config.init(device);
    let [h, w] = config.image_size;
    let x = Tensor::<5>::random(
        [1, config.input_channels, frames, h, w],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let k = config.max_keyframes;
    let forward = || {
        let tokens = encoder.embed(x.clone());
        let selection = encoder.select(tokens.clone(), k, FrameAxis::Slices);
        let context = encoder.context(tokens.clone(), &selection);
        (tokens, context)
    };
    let median = |mut f: Box<dyn FnMut() + '_>| {
        f(); // warm-up (kernel compilation on wgpu)
        let mut times: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let clock = Instant::now();
                f();
                clock.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let forward_s = median(Box::new(|| {
        let (_, context) = forward();
        let _ = context.tokens.into_data();
    }));
    let segment_all_s = median(Box::new(|| {
        let (tokens, context) = forward();
        for t in 0..frames {
            let _ = encoder.segment_frame(&tokens, t, &context).into_data();
        }
    }));
    EncoderTiming {
        forward_s,
        segment_all_s,
    }
}

/// Frames per second of a tokenizer of `config` (random weights) turning
/// `batch` random frames into tokens and back: the fastest of `reps`
/// passes after one warm-up.
pub fn tokenizer_frames_per_s(
    config: &crate::models::tokenizer::TitokConfig,
    device: &Device,
    batch: usize,
    reps: usize,
) -> f64 {
    let model = config.init(device);
    let [h, w] = config.image_size;
    let x = Tensor::<4>::random([batch, 1, h, w], Distribution::Uniform(0.0, 1.0), device);
    let pass = || {
        // Reading the result waits for an asynchronous backend.
        let _ = model.detokenize(model.tokenize(x.clone())).into_data();
    };
    pass();
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let clock = Instant::now();
        pass();
        best = best.min(clock.elapsed().as_secs_f64());
    }
    batch as f64 / best
}

/// Frames per second of the tokenizer's CPU engine
/// ([`crate::models::engine::CpuTitok`]) on random weights as in
/// [`tokenizer_frames_per_s`] and frames of values in [0, 1): tokens and
/// back (the work does not depend on the values), fastest of
/// `reps` passes after one warm-up, in the caller's thread pool.
pub fn tokenizer_engine_frames_per_s(
    config: &crate::models::tokenizer::TitokConfig,
    batch: usize,
    reps: usize,
) -> f64 {
    let device = Device::flex();
    let engine = crate::models::engine::CpuTitok::new(&config.init(&device));
    let [h, w] = config.image_size;
    let x: Vec<f32> = (0..batch * h * w)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let pass = || std::hint::black_box(engine.detokenize(&engine.tokenize(&x)));
    pass();
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let clock = Instant::now();
        pass();
        best = best.min(clock.elapsed().as_secs_f64());
    }
    batch as f64 / best
}
