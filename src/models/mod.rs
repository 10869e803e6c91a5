//! Burn models (feature `ml`). Models are backend-free `Config` + `Module`
//! pairs; where they run is a runtime [`burn::tensor::Device`]: the wgpu
//! backend on a GPU, or the pure-Rust `flex` CPU backend.

pub mod demos;
pub mod encoder;
pub mod engine;
pub mod pytorch;
pub mod segment;
pub mod suggest;
pub mod tokenize;
pub mod tokenizer;
pub mod unet2d;
pub mod vit;

pub use unet2d::{OutputMode, UNet2d, UNet2dConfig};

use burn::tensor::Device;

/// Where a model comes from: a demo bundled in the binary, or a checkpoint
/// folder. Parsed once from what the user typed (the CLI's `--model`, the
/// app's model field), so no code guesses later whether a string names a
/// demo or a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A bundled demo (`demo-ct`, `demo-brats`, `demo-brain`).
    Demo(&'static str),
    /// A checkpoint folder (`config.json` + `model.bpk`).
    Checkpoint(std::path::PathBuf),
}

impl ModelSource {
    /// A checkpoint folder when one exists at `spec`, else a bundled demo of
    /// that name; anything else is an error naming both possibilities.
    pub fn parse(spec: &str) -> Result<ModelSource, segment::SegmentError> {
        let spec = spec.trim();
        let path = std::path::Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSource::Checkpoint(path.to_path_buf()));
        }
        if let Some((name, _, _)) = demos::DEMOS.iter().find(|d| d.0 == spec) {
            return Ok(ModelSource::Demo(name));
        }
        Err(segment::SegmentError::Checkpoint {
            path: path.to_path_buf(),
            problem: format!(
                "no such checkpoint folder, and not a bundled model ({})",
                ModelSource::demos().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// The bundled demos' names.
    pub fn demos() -> impl Iterator<Item = &'static str> {
        demos::DEMOS.iter().map(|d| d.0)
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Demo(name) => f.write_str(name),
            ModelSource::Checkpoint(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What a checkpoint folder holds, from the `kind` tag of its
/// `config.json` (not guessed from its fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A 2D U-Net (`"kind": "unet2d"`; folders written before the tag
    /// existed have none and are U-Nets).
    Unet2d,
    /// A UME encoder (`"kind": "ume_encoder"`).
    UmeEncoder,
}

impl CheckpointKind {
    /// The tag written into `config.json`.
    pub fn tag(self) -> &'static str {
        match self {
            CheckpointKind::Unet2d => "unet2d",
            CheckpointKind::UmeEncoder => "ume_encoder",
        }
    }

    /// Read the tag of the checkpoint in `dir`.
    pub fn of(dir: &std::path::Path) -> Result<CheckpointKind, segment::SegmentError> {
        let cfg = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg).map_err(|source| segment::SegmentError::Io {
            path: cfg.clone(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| segment::SegmentError::Checkpoint {
                path: cfg.clone(),
                problem: format!("not JSON: {e}"),
            })?;
        match v.get("kind").and_then(serde_json::Value::as_str) {
            None | Some("unet2d") => Ok(CheckpointKind::Unet2d),
            Some("ume_encoder") => Ok(CheckpointKind::UmeEncoder),
            Some(other) => Err(segment::SegmentError::Checkpoint {
                path: cfg,
                problem: format!("unknown checkpoint kind {other:?} (known: unet2d, ume_encoder)"),
            }),
        }
    }
}

/// A model that segments: a 2D U-Net (slice by slice) or a UME encoder
/// (frame by frame from its keyframe context).
pub enum Segmenter {
    /// A U-Net checkpoint or bundled demo (boxed, as the encoder).
    Unet(segment::SegmenterConfig, Box<UNet2d>),
    /// A UME encoder checkpoint (boxed: the encoder is a large struct).
    Encoder(encoder::UmeConfig, Box<encoder::UmeEncoder>),
}

impl Segmenter {
    /// Load a checkpoint folder of either kind, or a bundled demo name.
    pub fn load(spec: &str, device: &Device) -> Result<Segmenter, segment::SegmentError> {
        Segmenter::open(&ModelSource::parse(spec)?, device)
    }

    /// Load a model from its source; a checkpoint's kind is its tag.
    pub fn open(source: &ModelSource, device: &Device) -> Result<Segmenter, segment::SegmentError> {
        match source {
            ModelSource::Checkpoint(dir)
                if CheckpointKind::of(dir)? == CheckpointKind::UmeEncoder =>
            {
                let (c, m) = encoder::load_encoder(dir, device)?;
                Ok(Segmenter::Encoder(c, Box::new(m)))
            }
            ModelSource::Checkpoint(dir) => {
                let (c, m) = segment::load_checkpoint(dir, device)?;
                Ok(Segmenter::Unet(c, Box::new(m)))
            }
            ModelSource::Demo(name) => {
                let (c, m) = demos::load_model(name, device)?;
                Ok(Segmenter::Unet(c, Box::new(m)))
            }
        }
    }

    /// Image channels (modalities) the model takes.
    pub fn in_channels(&self) -> usize {
        match self {
            Segmenter::Unet(c, _) => c.input_volumes(),
            Segmenter::Encoder(c, _) => c.input_channels,
        }
    }

    /// Label ids the model writes.
    pub fn label_ids(&self) -> Vec<u16> {
        match self {
            Segmenter::Unet(c, _) => c.label_ids.clone(),
            Segmenter::Encoder(c, _) if !c.label_ids.is_empty() => c.label_ids.clone(),
            Segmenter::Encoder(c, _) => (1..c.num_classes)
                .filter_map(|i| u16::try_from(i).ok())
                .collect(),
        }
    }

    /// Segment one case (`in_channels` volumes on one grid); `progress`
    /// returns whether to go on.
    pub fn segment(
        &self,
        volumes: &[&crate::volume::Volume],
        device: &Device,
        batch: usize,
        progress: impl FnMut(usize, usize) -> bool,
    ) -> Result<crate::volume::LabelVolume, segment::SegmentError> {
        match self {
            Segmenter::Unet(c, m) => segment::segment(c, m, volumes, device, batch, progress),
            Segmenter::Encoder(c, m) => encoder::segment_volume(c, m, volumes, device, progress),
        }
    }
}

/// Tests that seed the backend's global random stream and then draw from
/// it hold this lock, so parallel tests cannot interleave draws.
#[cfg(test)]
pub(crate) static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The largest magnitude in `v` (tests scale their tolerances by it).
#[cfg(test)]
pub(crate) fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

/// The largest element-wise difference of two equally long slices.
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Where to run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU through wgpu when there is one, else the CPU backend
    /// (a software adapter such as lavapipe is slower than `flex`).
    Auto,
    /// The wgpu backend (any adapter, lavapipe included).
    Wgpu,
    /// The pure-Rust CPU backend.
    Cpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<DeviceChoice, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            other => Err(format!("unknown device {other:?} (auto, wgpu, cpu)")),
        }
    }
}

/// Whether wgpu sees a hardware GPU (integrated, discrete or virtual),
/// not only a CPU/software adapter. Probed once per process.
pub fn hardware_gpu() -> Option<String> {
    static PROBE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            use burn::backend::wgpu::wgpu as w;
            let instance = w::Instance::new(w::InstanceDescriptor::new_without_display_handle());
            let adapters = pollster::block_on(instance.enumerate_adapters(w::Backends::all()));
            adapters.into_iter().map(|a| a.get_info()).find_map(|info| {
                matches!(
                    info.device_type,
                    w::DeviceType::DiscreteGpu
                        | w::DeviceType::IntegratedGpu
                        | w::DeviceType::VirtualGpu
                )
                .then(|| format!("{} ({:?})", info.name, info.backend))
            })
        })
        .clone()
}

/// The device for a choice (`Auto` probes the adapters).
pub fn device(choice: DeviceChoice) -> Device {
    match choice {
        DeviceChoice::Auto if hardware_gpu().is_some() => Device::wgpu(Default::default()),
        DeviceChoice::Wgpu => Device::wgpu(Default::default()),
        DeviceChoice::Auto | DeviceChoice::Cpu => Device::flex(),
    }
}

/// Whether `device` is the CPU backend, where segmentation and U-Net
/// training run UME's own engines ([`engine`], `training::cpu_train`) instead of
/// Burn's kernels.
pub fn is_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// A short description of the device a choice resolves to.
pub fn describe(choice: DeviceChoice) -> String {
    match choice {
        DeviceChoice::Auto => match hardware_gpu() {
            Some(gpu) => format!("wgpu on {gpu}"),
            None => "CPU (flex; no hardware GPU adapter)".into(),
        },
        DeviceChoice::Wgpu => "wgpu (default adapter)".into(),
        DeviceChoice::Cpu => "CPU (flex)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::prelude::*;

    fn tiny() -> UNet2dConfig {
        UNet2dConfig::new(2, 3)
            .with_features(vec![4, 8])
            .with_bottleneck(16)
    }

    #[test]
    fn cpu_and_wgpu_agree() {
        let _serial = SEEDED.lock();
        let cpu = device(DeviceChoice::Cpu);
        let gpu = device(DeviceChoice::Wgpu);
        let model = tiny().init(&cpu);
        let on_gpu = model.clone().to_device(&gpu);
        let x = Tensor::<4>::random(
            [1, 2, 32, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &cpu,
        );
        let a: Vec<f32> = model
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b: Vec<f32> = on_gpu
            .forward(x.to_device(&gpu))
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(a.len(), b.len());
        let scale = max_abs(&a).max(1e-3);
        assert!(
            max_abs_diff(&a, &b) / scale < 1e-3,
            "CPU and wgpu differ by {}",
            max_abs_diff(&a, &b)
        );
    }

    #[test]
    fn loss_decreases_on_a_tiny_problem() {
        let _serial = SEEDED.lock();
        use burn::optim::{AdamConfig, GradientsParams};
        let device = device(DeviceChoice::Cpu).autodiff();
        let mut model = UNet2dConfig::new(1, 1)
            .with_features(vec![4, 8])
            .with_bottleneck(8)
            .init(&device);
        let mut optim = AdamConfig::new().init();
        let x = Tensor::<4>::random(
            [2, 1, 16, 16],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let y = x.clone().greater_elem(0.3).float();
        let mut losses = Vec::new();
        for _ in 0..40 {
            let z = model.forward(x.clone());
            // Binary cross-entropy with logits, numerically stable form.
            let loss = (z.clone().clamp_min(0.0) - z.clone() * y.clone()
                + (z.abs().neg().exp() + 1.0).log())
            .mean();
            losses.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        assert!(
            losses[39] < losses[0] * 0.5,
            "loss {} -> {}",
            losses[0],
            losses[39]
        );
    }

    #[test]
    fn forward_shapes() {
        let _serial = SEEDED.lock();
        let device = device(DeviceChoice::Cpu);
        let model = tiny().init(&device);
        let x = Tensor::<4>::zeros([2, 2, 32, 24], &device);
        assert_eq!(model.forward(x).dims(), [2, 3, 32, 24]);
    }
}
