//! Throughput of the U-Net on a device, measured the way the PyTorch
//! reference (`scripts/unet_reference.py bench`) measures it: eval-mode
//! forward passes (slices/s) and Adam + BCE training steps (images/s), each
//! after one warm-up call, so `ume bench unet` can print ratios.

use super::UNet2dConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use std::time::Instant;

/// One measurement.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Inference slices per second.
    pub inference_slices_per_s: f64,
    /// Training images per second.
    pub train_images_per_s: f64,
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
    sync(model.forward(x.clone())); // warm-up (kernel compilation on wgpu)
    let clock = Instant::now();
    for _ in 0..reps {
        sync(model.forward(x.clone()));
    }
    let inference = (reps * batch) as f64 / clock.elapsed().as_secs_f64();

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
    let mut step = || {
        let loss = crate::training::loss::bce(model.forward(xt.clone()), yt.clone());
        let _ = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model.clone(), grads);
    };
    step(); // warm-up
    let clock = Instant::now();
    for _ in 0..train_reps {
        step();
    }
    let train = (train_reps * train_batch) as f64 / clock.elapsed().as_secs_f64();
    Throughput {
        inference_slices_per_s: inference,
        train_images_per_s: train,
    }
}
