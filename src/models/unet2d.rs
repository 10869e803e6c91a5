//! The 2D U-Net of seeds 002/003: four encoder levels of DoubleConv (3×3
//! conv, BatchNorm, ReLU, twice) with 2×2 max-pooling, a bottleneck, four
//! decoder levels of 2×2 transposed-conv upsampling + skip concatenation +
//! DoubleConv, and a 1×1 head. Channels, widths and the output mode are
//! configurable; the seed's defaults are features [32, 64, 128, 256] and a
//! 512-channel bottleneck.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

/// How the head's logits are read.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// One sigmoid per channel (overlapping structures; seeds 002/003, BCE).
    MultiLabel,
    /// Softmax over channels, channel 0 background (CE).
    MultiClass,
}

/// U-Net hyper-parameters.
#[derive(Config, Debug)]
pub struct UNet2dConfig {
    /// Input channels (1 for CT, 4 for the BraTS modalities).
    pub in_channels: usize,
    /// Output channels (structures, or classes with background).
    pub out_channels: usize,
    /// Encoder widths, shallow to deep.
    #[config(default = "vec![32, 64, 128, 256]")]
    pub features: Vec<usize>,
    /// Bottleneck width.
    #[config(default = 512)]
    pub bottleneck: usize,
    /// Output mode.
    #[config(default = "OutputMode::MultiLabel")]
    pub output: OutputMode,
}

/// Two 3×3 convolutions, each followed by BatchNorm and ReLU.
#[derive(Module, Debug)]
pub struct DoubleConv {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    relu: Relu,
}

impl DoubleConv {
    /// The layers, for the CPU inference engine.
    pub(crate) fn parts(&self) -> (&Conv2d, &BatchNorm, &Conv2d, &BatchNorm) {
        (&self.conv1, &self.bn1, &self.conv2, &self.bn2)
    }

    fn new(c_in: usize, c_out: usize, device: &Device) -> DoubleConv {
        let conv = |a, b| {
            Conv2dConfig::new([a, b], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        DoubleConv {
            conv1: conv(c_in, c_out),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv(c_out, c_out),
            bn2: BatchNormConfig::new(c_out).init(device),
            relu: Relu::new(),
        }
    }

    /// # Shapes
    /// `[B, c_in, H, W]` → `[B, c_out, H, W]`
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.relu.forward(self.bn1.forward(self.conv1.forward(x)));
        self.relu.forward(self.bn2.forward(self.conv2.forward(x)))
    }
}

/// The U-Net.
#[derive(Module, Debug)]
pub struct UNet2d {
    encoders: Vec<DoubleConv>,
    pool: MaxPool2d,
    bottleneck: DoubleConv,
    ups: Vec<ConvTranspose2d>,
    decoders: Vec<DoubleConv>,
    head: Conv2d,
}

impl UNet2dConfig {
    /// Build the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> UNet2d {
        let mut encoders = Vec::new();
        let mut c = self.in_channels;
        for &f in &self.features {
            encoders.push(DoubleConv::new(c, f, device));
            c = f;
        }
        let bottleneck = DoubleConv::new(c, self.bottleneck, device);
        let mut ups = Vec::new();
        let mut decoders = Vec::new();
        let mut c = self.bottleneck;
        for &f in self.features.iter().rev() {
            ups.push(
                ConvTranspose2dConfig::new([c, f], [2, 2])
                    .with_stride([2, 2])
                    .init(device),
            );
            decoders.push(DoubleConv::new(2 * f, f, device));
            c = f;
        }
        let model = UNet2d {
            encoders,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            bottleneck,
            ups,
            decoders,
            head: Conv2dConfig::new([c, self.out_channels], [1, 1]).init(device),
        };
        model.materialise();
        model
    }
}

impl UNet2d {
    /// Draw every lazily initialised parameter now, in the order of the
    /// forward pass. Burn draws a parameter's random values on its first
    /// use, so without this the same seed would give different weights to
    /// code that reads the parameters in another order (the CPU engines
    /// read all up-convolutions before the decoders).
    fn materialise(&self) {
        fn conv(c: &Conv2d) {
            let _ = c.weight.val();
            let _ = c.bias.as_ref().map(burn::module::Param::val);
        }
        let double = |d: &DoubleConv| {
            conv(&d.conv1);
            conv(&d.conv2);
        };
        self.encoders.iter().for_each(double);
        double(&self.bottleneck);
        for (up, dec) in self.ups.iter().zip(&self.decoders) {
            let _ = up.weight.val();
            let _ = up.bias.as_ref().map(burn::module::Param::val);
            double(dec);
        }
        conv(&self.head);
    }

    /// Encoders, bottleneck, up-convolutions, decoders and head, for the
    /// CPU inference engine.
    pub(crate) fn parts(
        &self,
    ) -> (
        &[DoubleConv],
        &DoubleConv,
        &[ConvTranspose2d],
        &[DoubleConv],
        &Conv2d,
    ) {
        (
            &self.encoders,
            &self.bottleneck,
            &self.ups,
            &self.decoders,
            &self.head,
        )
    }

    /// Logits per output channel.
    ///
    /// # Shapes
    /// `[B, in_channels, H, W]` → `[B, out_channels, H, W]`; H and W must be
    /// multiples of 2^levels (16 for four levels).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut skips = Vec::with_capacity(self.encoders.len());
        let mut x = x;
        for enc in &self.encoders {
            x = enc.forward(x);
            skips.push(x.clone());
            x = self.pool.forward(x);
        }
        x = self.bottleneck.forward(x);
        for (up, dec) in self.ups.iter().zip(&self.decoders) {
            x = up.forward(x);
            let skip = skips.pop().expect("one skip per level");
            x = dec.forward(Tensor::cat(vec![x, skip], 1));
        }
        self.head.forward(x)
    }
}
