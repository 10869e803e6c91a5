//! The UME encoder's VoCo pretext task as a loss ([`super`]'s `voco`
//! mode): one draw of [`crate::training::voco`] cut from a case as five
//! crops, the cosine similarity of the crop's and each base crop's embedding
//! regressing the true overlap shares, a temperature-scaled contrast
//! pushing the base crops apart, and the validation figure (Pearson
//! correlation of predicted and true overlaps on fixed draws).

use super::{Terms, UmeCase};
use crate::models::encoder::UmeEncoder;
use crate::training::augment::Rng;
use crate::training::ume_config::{UmeTrainConfig, VocoConfig};
use burn::prelude::*;

/// One VoCo draw of a case as a batch of five crops `[5, M, cz, cy, cx]`
/// (the random crop first, then its four base crops) and the four overlap
/// targets.
fn voco_batch(
    case: &UmeCase,
    config: &UmeTrainConfig,
    voco: &VocoConfig,
    rng: &mut Rng,
    device: &Device,
) -> Option<(Tensor<5>, [f64; 4])> {
    let [h, w] = config.model.image_size;
    let m = config.model.input_channels;
    let [cx, cy, cz] = voco.crop_size;
    let d = crate::training::voco::draw(rng, [w, h, case.frames], [cx, cy, cz])?;
    let mut data = Vec::with_capacity(5 * m * cz * cy * cx);
    for origin in std::iter::once(d.crop).chain(d.bases) {
        let [x0, y0, z0] = origin;
        for ch in 0..m {
            for z in z0..z0 + cz {
                for y in y0..y0 + cy {
                    let row = ((ch * case.frames + z) * h + y) * w;
                    data.extend_from_slice(&case.input[row + x0..row + x0 + cx]);
                }
            }
        }
    }
    let t = Tensor::from_data(TensorData::new(data, [5, m, cz, cy, cx]), device);
    Some((t, d.ratios))
}

/// The VoCo loss of one draw: predicted overlaps (cosine similarity of the
/// crop's and each base crop's embedding) regress the true area shares, and
/// a temperature-scaled log-sum-exp of the base crops' pairwise
/// similarities pushes distinct places apart.
pub(super) fn voco_loss(
    model: &UmeEncoder,
    case: &UmeCase,
    config: &UmeTrainConfig,
    voco: &VocoConfig,
    rng: &mut Rng,
    device: &Device,
) -> Terms {
    let w = config.training.loss_weights;
    let Some((crops, ratios)) = voco_batch(case, config, voco, rng, device) else {
        return (Tensor::zeros([1], device), Vec::new());
    };
    let z = model.voco(crops); // [5, Dv], unit rows
    let dv = z.dims()[1];
    let crop = z.clone().narrow(0, 0, 1).reshape([1, dv]);
    let bases = z.narrow(0, 1, 4);
    let predicted = bases.clone().matmul(crop.transpose()).reshape([4]);
    let target = Tensor::<1>::from_data(
        TensorData::new(ratios.iter().map(|&r| r as f32).collect::<Vec<_>>(), [4]),
        device,
    );
    let area = (predicted - target).abs().mean();
    let sims = bases.clone().matmul(bases.transpose()) / voco.temperature; // [4, 4]
    let off = Tensor::<2>::from_data(
        TensorData::new(
            (0..16)
                .map(|i| if i % 5 == 0 { -1e4f32 } else { 0.0 })
                .collect::<Vec<_>>(),
            [4, 4],
        ),
        device,
    );
    let contrast = (sims + off).exp().sum().log() - (12f64).ln();
    let total =
        (area.clone() * (w.area * voco.lambda_area) + contrast.clone() * w.contrastive) * w.voco;
    (total, vec![("voco", contrast), ("area", area)])
}

/// Pearson correlation of predicted and true overlaps over `draws` fixed
/// draws from the validation cases.
pub(super) fn voco_correlation(
    model: &UmeEncoder,
    cases: &[UmeCase],
    config: &UmeTrainConfig,
    voco: &VocoConfig,
    draws: usize,
    device: &Device,
) -> f64 {
    let mut rng = Rng::new(0xC0FFEE);
    let (mut p, mut t) = (Vec::new(), Vec::new());
    for i in 0..draws {
        let case = &cases[i % cases.len().max(1)];
        let Some((crops, ratios)) = voco_batch(case, config, voco, &mut rng, device) else {
            continue;
        };
        let z = model.voco(crops);
        let dv = z.dims()[1];
        let crop = z.clone().narrow(0, 0, 1).reshape([1, dv]);
        let pred: Vec<f32> = z
            .narrow(0, 1, 4)
            .matmul(crop.transpose())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        p.extend(pred.iter().map(|&v| f64::from(v)));
        t.extend(ratios);
    }
    pearson(&p, &t)
}

/// Pearson correlation (NaN when either side is constant).
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}
