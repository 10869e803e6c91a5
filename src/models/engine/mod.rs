//! UME's CPU engines for the U-Net, without a tensor framework (see
//! [`infer`] for why they exist and how they are checked against Burn):
//! [`kernels`] at the bottom, [`winograd`] on top of it, [`infer`] on top
//! of both. The tokenizer's engine ([`titok`]) runs the ViT blocks of
//! [`vit`] on the same kernels. The training engine's backward lives in `training::cpu_train`,
//! so `models` never imports `training`.

pub mod infer;
pub(crate) mod kernels;
pub mod titok;
pub(crate) mod vit;
pub(crate) mod winograd;

pub use infer::CpuUnet;
pub use titok::CpuTitok;
