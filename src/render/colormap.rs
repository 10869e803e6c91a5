//! Colormaps as 256-entry tables, shared by the GPU (one texture row each)
//! and the CPU reference renderer, so both produce the same colours.

/// A colormap for intensities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Colormap {
    /// Black to white.
    #[default]
    Gray,
    /// Black, red, yellow, white.
    Hot,
    /// Perceptually uniform blue–green–yellow.
    Viridis,
    /// Perceptually uniform black–purple–orange–yellow.
    Inferno,
    /// Gray with a blue tint in the darks (bone CT).
    Bone,
}

/// Anchor colours (evenly spaced) of the perceptual maps, interpolated linearly.
#[allow(clippy::approx_constant)] // colour values, not π
const VIRIDIS: [[f64; 3]; 9] = [
    [0.267, 0.005, 0.329],
    [0.283, 0.141, 0.458],
    [0.254, 0.265, 0.530],
    [0.207, 0.372, 0.553],
    [0.164, 0.471, 0.558],
    [0.128, 0.567, 0.551],
    [0.135, 0.659, 0.518],
    [0.478, 0.821, 0.318],
    [0.993, 0.906, 0.144],
];
const INFERNO: [[f64; 3]; 9] = [
    [0.001, 0.000, 0.014],
    [0.122, 0.047, 0.283],
    [0.316, 0.071, 0.485],
    [0.496, 0.136, 0.507],
    [0.665, 0.203, 0.459],
    [0.832, 0.285, 0.351],
    [0.961, 0.451, 0.196],
    [0.988, 0.706, 0.131],
    [0.988, 0.998, 0.645],
];

fn ramp(anchors: &[[f64; 3]], t: f64) -> [f64; 3] {
    let x = t * (anchors.len() - 1) as f64;
    let i = (x.floor() as usize).min(anchors.len() - 2);
    let f = x - i as f64;
    std::array::from_fn(|c| anchors[i][c] * (1.0 - f) + anchors[i + 1][c] * f)
}

impl Colormap {
    /// All maps, in texture-row order.
    pub const ALL: [Colormap; 5] = [
        Colormap::Gray,
        Colormap::Hot,
        Colormap::Viridis,
        Colormap::Inferno,
        Colormap::Bone,
    ];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Gray => "gray",
            Colormap::Hot => "hot",
            Colormap::Viridis => "viridis",
            Colormap::Inferno => "inferno",
            Colormap::Bone => "bone",
        }
    }

    /// Row in the colormap texture.
    pub fn row(self) -> u32 {
        Colormap::ALL.iter().position(|&c| c == self).unwrap_or(0) as u32
    }

    /// Colour of entry `i` of 256.
    pub fn rgb(self, i: u8) -> [u8; 3] {
        let t = f64::from(i) / 255.0;
        let c = match self {
            Colormap::Gray => [t, t, t],
            Colormap::Hot => [
                (3.0 * t).min(1.0),
                (3.0 * t - 1.0).clamp(0.0, 1.0),
                (3.0 * t - 2.0).clamp(0.0, 1.0),
            ],
            Colormap::Viridis => ramp(&VIRIDIS, t),
            Colormap::Inferno => ramp(&INFERNO, t),
            Colormap::Bone => {
                let b = [t * 7.0 / 8.0, t * 7.0 / 8.0, t * 7.0 / 8.0 + t / 8.0];
                [
                    b[0] + (t - 0.75).max(0.0) * 0.5,
                    b[1] + (t - 0.375).clamp(0.0, 0.375) / 3.0,
                    b[2],
                ]
            }
        };
        c.map(|x| (x.clamp(0.0, 1.0) * 255.0).round() as u8)
    }
}

/// All colormaps as RGBA rows of 256 entries.
pub fn table_rgba() -> Vec<u8> {
    let mut out = Vec::with_capacity(Colormap::ALL.len() * 256 * 4);
    for cm in Colormap::ALL {
        for i in 0..=255u8 {
            let [r, g, b] = cm.rgb(i);
            out.extend_from_slice(&[r, g, b, 255]);
        }
    }
    out
}
