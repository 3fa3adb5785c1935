//! What a render needs besides the cloud and the camera. Shared by the GPU rasterizer
//! (`gpu::raster`) and its f64 reference (`reference::raster`), so both follow one convention.

/// Per-render settings. Defaults are the reference rasterizer's.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderSettings {
    /// Colour where no Gaussian covers a pixel (black by default, white for Blender scenes
    /// trained with `white_background`).
    pub background: [f32; 3],
    /// Highest SH band evaluated (0..=3); bands above it contribute nothing and get no gradient.
    pub active_sh_degree: u32,
    /// Gaussians whose view-space depth is at or below this are culled (inria: 0.2).
    pub near_plane: f32,
    /// gsplat's "antialiased" mode: opacity multiplied by `sqrt(det(Σ2D) / det(Σ2D + 0.3 I))`.
    pub antialiased: bool,
    /// Tile rectangles from per-axis, opacity-aware extents (gsplat) instead of inria's
    /// `ceil(3 sqrt(λmax))` square: fewer tile intersections, nearly the same image (it reaches
    /// about 3.33 sigma instead of 3 for opaque Gaussians).
    pub tight_tile_bounds: bool,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            background: [0.0; 3],
            active_sh_degree: 3,
            near_plane: 0.2,
            antialiased: false,
            tight_tile_bounds: false,
        }
    }
}

/// Tile edge in pixels (16 x 16 tiles, as in the reference rasterizer).
pub const TILE_SIZE: u32 = 16;

/// The low-pass filter added to the 2D covariance diagonal.
pub const COVARIANCE_BLUR: f32 = 0.3;

/// Contributions with alpha below this are skipped.
pub const MIN_ALPHA: f32 = 1.0 / 255.0;

/// Alpha is capped here so a single Gaussian never makes a pixel fully opaque.
pub const MAX_ALPHA: f32 = 0.99;

/// Compositing stops before the transmittance would fall below this.
pub const MIN_TRANSMITTANCE: f32 = 1e-4;
