//! The rules of densification shared by the GPU kernels (`gpu::densify`) and their f64
//! reference: thresholds, constants, what a densification reports, and how the split
//! children's random numbers are keyed (`shaders/densify.wgsl` implements the same hash).

/// Children per split Gaussian (the reference's `N = 2`).
pub const SPLIT_CHILDREN: usize = 2;

/// Children's scales are their parent's divided by this (`0.8 * N` in the reference).
pub const SPLIT_SCALE_DIVISOR: f64 = 0.8 * SPLIT_CHILDREN as f64;

/// Opacity ceiling of the periodic opacity reset.
pub const RESET_OPACITY: f64 = 0.01;

/// The thresholds of one densification (REFERENCE.md; inria passes
/// `densify_grad_threshold`, 0.005, the camera extent and 20 px after the first opacity reset).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DensifyParams {
    /// Average screen-space gradient (NDC units) at or above which a Gaussian is densified.
    pub grad_threshold: f32,
    /// Gaussians with largest scale up to `percent_dense * extent` are cloned, larger ones split.
    pub percent_dense: f32,
    /// The scene extent (camera extent, `spatial_lr_scale`).
    pub extent: f32,
    /// Gaussians with sigmoid(opacity) below this are pruned.
    pub min_opacity: f32,
    /// When given, Gaussians whose screen radius exceeded it (pixels) or whose largest scale
    /// exceeds `0.1 * extent` are pruned too.
    pub max_screen_size: Option<f32>,
    /// Seed of the split children's random offsets.
    pub seed: u64,
}

/// What one densification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DensifyReport {
    /// Live Gaussians before.
    pub before: u32,
    /// Gaussians selected for cloning (each added one copy).
    pub cloned: u32,
    /// Gaussians selected for splitting (each replaced by two children).
    pub split: u32,
    /// Gaussians removed by pruning, counted over the densified cloud (new ones included).
    pub pruned: u32,
    /// Live Gaussians after: `before + cloned + split - pruned`.
    pub after: u32,
}

/// Mixes the 64-bit densification seed into the 32-bit key the per-child hashes start from.
pub fn split_seed_key(seed: u64) -> u32 {
    pcg_hash(pcg_hash(seed as u32) ^ (seed >> 32) as u32)
}

/// The PCG-based integer hash of Jarzynski and Olano ("Hash Functions for GPU Rendering", 2020).
pub fn pcg_hash(input: u32) -> u32 {
    let state = input.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}
