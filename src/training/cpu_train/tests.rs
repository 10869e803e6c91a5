//! The hand-written passes against Burn's autodiff.

use super::*;
use crate::models::engine::kernels::values;
use crate::models::{DeviceChoice, UNet2dConfig, device, max_abs, max_abs_diff};
use crate::training::loss::bce;
use burn::module::ModuleVisitor;
use burn::optim::AdamConfig;
use burn::tensor::Distribution;

/// Every float parameter's gradient (or value, for running
/// statistics, which have none), in visiting order.
struct Collect<'a>(&'a GradientsParams, Vec<(String, Option<Vec<f32>>)>);

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let grad = self.0.get::<D>(param.id).map(values);
        self.1.push((format!("{:?}", param.dims()), grad));
    }
}

#[test]
fn gradients_and_running_statistics_match_burns_autodiff() {
    let _serial = crate::models::SEEDED.lock();
    // Narrow layers (direct convolutions only), then layers wide enough
    // for Winograd's F(2×2, 3×3) in the forward and input-gradient
    // convolutions.
    check_against_autodiff(vec![4, 8], 16, [2, 16, 24]);
    check_against_autodiff(vec![16, 32], 32, [2, 16, 64]);
}

fn check_against_autodiff(features: Vec<usize>, bottleneck: usize, [n, h, w]: [usize; 3]) {
    let dev = device(DeviceChoice::Cpu);
    dev.seed(11);
    let ad = dev.clone().autodiff();
    let config = UNet2dConfig::new(3, 5)
        .with_features(features)
        .with_bottleneck(bottleneck);
    let x = Tensor::<4>::random([n, 3, h, w], Distribution::Normal(0.5, 2.0), &ad);
    let y = Tensor::<4>::random([n, 5, h, w], Distribution::Uniform(0.0, 1.0), &ad)
        .greater_elem(0.5)
        .float();
    // One optimiser step first, so that γ, β and the biases are not at
    // their initial ones and zeros.
    // Two identical models: the second loads the first's initial record
    // (a clone would share its running statistics; re-seeding is not
    // enough while other tests draw from the same generator), then both
    // take the same step.
    dev.seed(5);
    let init = config.init(&ad);
    let copy = config.init(&ad).load_record(init.clone().into_record());
    let step = |m: UNet2d| {
        let grads =
            GradientsParams::from_grads(bce(m.forward(x.clone()), y.clone()).backward(), &m);
        AdamConfig::new().init().step(0.05, m, grads)
    };
    let (a, b) = (step(init), step(copy));

    let want_logits = a.forward(x.clone());
    let want = GradientsParams::from_grads(bce(want_logits.clone(), y.clone()).backward(), &a);

    let trainer = CpuTrainer::new();
    let (logits, pass) = trainer.forward(&b, &values(x.clone()), n, h, w);
    let want_logits = values(want_logits);
    let scale = max_abs(&want_logits);
    let worst = max_abs_diff(&logits, &want_logits);
    assert!(worst <= 1e-4 * scale.max(1.0), "logits differ by {worst}");
    let lt = Tensor::<4>::from_data(TensorData::new(logits, [n, 5, h, w]), &ad).require_grad();
    let dl = lt
        .grad(&bce(lt.clone(), y).backward())
        .expect("logits gradient");
    let got = pass.backward(&values(dl), &dev);

    let mut ca = Collect(&want, Vec::new());
    a.visit(&mut ca);
    let mut cb = Collect(&got, Vec::new());
    b.visit(&mut cb);
    assert_eq!(ca.1.len(), cb.1.len());
    let mut checked = 0;
    for ((shape, ga), (_, gb)) in ca.1.iter().zip(&cb.1) {
        match (ga, gb) {
            (Some(ga), Some(gb)) => {
                let scale = max_abs(ga);
                let worst = max_abs_diff(ga, gb);
                assert!(
                    worst <= 1e-3 * scale + 1e-6,
                    "gradient of a {shape} parameter: max |diff| {worst}, scale {scale}"
                );
                checked += 1;
            }
            (None, None) => {}
            _ => panic!("a {shape} parameter has a gradient in one pass only"),
        }
    }
    // 2 encoders + bottleneck + 2 decoders: 5 × (2 × 4) + 2 ups × 2 + head 2.
    assert_eq!(checked, 46);

    // The running statistics moved the same way: equal eval outputs.
    let probe = Tensor::<4>::random([1, 3, h, w], Distribution::Normal(0.0, 1.0), &dev);
    let ea = values(a.valid().forward(probe.clone()));
    let eb = values(b.valid().forward(probe));
    let worst = max_abs_diff(&ea, &eb);
    assert!(
        worst <= 1e-4 * max_abs(&ea).max(1.0),
        "eval outputs differ by {worst}"
    );
}
