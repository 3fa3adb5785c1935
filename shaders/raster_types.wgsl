// Types and constants shared by the rasterizer's kernels (project.wgsl, bin.wgsl,
// rasterize.wgsl). Include with `#include "raster_types.wgsl"`. The Rust mirror of
// `RenderUniforms` is `gpu::raster::RenderUniforms`; keep the two in the same order.

// Everything a render needs besides the cloud, written once per render.
struct RenderUniforms {
    // World-to-camera rotation rows; `w` is that row's translation component, so
    // t = (dot(row0.xyz, m) + row0.w, ...).
    view_row0: vec4<f32>,
    view_row1: vec4<f32>,
    view_row2: vec4<f32>,
    // Camera centre in world space (xyz) and the near plane (w).
    camera_centre_near: vec4<f32>,
    focal: vec2<f32>,
    principal: vec2<f32>,
    // Jacobian clamp of t.x / t.z and t.y / t.z: the ratio is clamped to
    // [-clamp_negative, clamp_positive] per axis (ARCHITECTURE.md step 5).
    clamp_positive: vec2<f32>,
    clamp_negative: vec2<f32>,
    // Background colour (rgb), w unused.
    background: vec4<f32>,
    image_size: vec2<u32>,
    // Tiles per row and per column: ceil(size / 16).
    tile_grid: vec2<u32>,
    num_gaussians: u32,
    // SH degree of the stored coefficients (sets the width of `sh_rest`).
    sh_degree: u32,
    // SH degree evaluated: min(active degree, stored degree).
    eval_sh_degree: u32,
    // FLAG_* bits below.
    flags: u32,
    // Slots of the intersection list; emission and tile ranges ignore entries beyond it (a
    // render whose intersection count was not read back first can overflow; see bin.wgsl).
    intersection_capacity: u32,
    // Entries per piece of a tile's list for the backward pass (a power of two, at least 128,
    // so a multiple of any subgroup size): pieces start at the list positions that are
    // multiples of it, and the forward saves each pixel's state there (rasterize.wgsl,
    // "Pieces").
    chunk_size: u32,
    _padding1: u32,
    _padding2: u32,
}

const FLAG_ANTIALIASED: u32 = 1u;
const FLAG_TIGHT_TILE_BOUNDS: u32 = 2u;

// One projected Gaussian, as the rasterize kernels read it (48 bytes: one gather of three
// 16-byte vectors per tile intersection).
struct Splat {
    // Pixel-space mean (ARCHITECTURE.md step 8).
    mean: vec2<f32>,
    // Inverse 2D covariance (xx, xy, yy).
    conic: vec3<f32>,
    // sigmoid(logit), times the antialiasing compensation in antialiased mode.
    opacity: f32,
    // SH colour after the clamp at 0.
    color: vec3<f32>,
}

const TILE_SIZE: u32 = 16u;
// The 2D low-pass filter added to the covariance diagonal.
const COVARIANCE_BLUR: f32 = 0.3;
// Contributions below this alpha are skipped; Gaussians below this opacity are culled.
const MIN_ALPHA: f32 = 1.0 / 255.0;
const MAX_ALPHA: f32 = 0.99;
const MIN_TRANSMITTANCE: f32 = 1e-4;
// Depth-sort key of culled Gaussians: after every visible one (positive depths compare like
// their bit patterns, and no finite positive f32 has this pattern).
const CULLED_DEPTH_KEY: u32 = 0xffffffffu;

// True unless `x` is NaN or infinite. A bit test, immune to fast-math assumptions.
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

// Tile rectangles are packed as (min.x | min.y << 16, max.x | max.y << 16), max exclusive.
fn pack_tile_rect(tile_min: vec2<u32>, tile_max: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(tile_min.x | (tile_min.y << 16u), tile_max.x | (tile_max.y << 16u));
}

fn unpack_tile_corner(packed: u32) -> vec2<u32> {
    return vec2<u32>(packed & 0xffffu, packed >> 16u);
}
