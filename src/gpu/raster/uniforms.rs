//! The per-render uniform block shared by every rasterizer kernel (`RenderUniforms` in
//! `shaders/raster_types.wgsl`; same field order, WGSL uniform layout).

use bytemuck::{Pod, Zeroable};

use crate::camera::Camera;
use crate::render_settings::{RenderSettings, TILE_SIZE};

/// Extra field of view the Jacobian clamp allows, as a fraction of the image size (gsplat's 0.3,
/// equal to inria's `1.3 tan(fov / 2)` for centred principal points).
const JACOBIAN_CLAMP_MARGIN: f64 = 0.3;

pub(super) const FLAG_ANTIALIASED: u32 = 1;
pub(super) const FLAG_TIGHT_TILE_BOUNDS: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub(super) struct RenderUniforms {
    view_row0: [f32; 4],
    view_row1: [f32; 4],
    view_row2: [f32; 4],
    camera_centre_near: [f32; 4],
    focal: [f32; 2],
    principal: [f32; 2],
    clamp_positive: [f32; 2],
    clamp_negative: [f32; 2],
    background: [f32; 4],
    image_size: [u32; 2],
    tile_grid: [u32; 2],
    pub num_gaussians: u32,
    sh_degree: u32,
    eval_sh_degree: u32,
    flags: u32,
    /// Slots of the intersection list: emission and tile ranges ignore entries beyond it (only
    /// reached when a render with a deferred count overflows; `u32::MAX` otherwise).
    pub intersection_capacity: u32,
    /// Entries per piece of the backward pass (`chunk_size` in `shaders/raster_types.wgsl`).
    pub chunk_size: u32,
    _padding: [u32; 2],
}

impl RenderUniforms {
    pub fn new(
        camera: &Camera,
        settings: &RenderSettings,
        num_gaussians: u32,
        sh_degree: u32,
    ) -> Self {
        let row = |r: usize| {
            let rotation = camera.rotation.row(r);
            [
                rotation.x as f32,
                rotation.y as f32,
                rotation.z as f32,
                camera.translation[r] as f32,
            ]
        };
        let centre = camera.center();
        let (width, height) = (f64::from(camera.width), f64::from(camera.height));
        let margin_x = JACOBIAN_CLAMP_MARGIN * width / (2.0 * camera.fx);
        let margin_y = JACOBIAN_CLAMP_MARGIN * height / (2.0 * camera.fy);
        let mut flags = 0;
        if settings.antialiased {
            flags |= FLAG_ANTIALIASED;
        }
        if settings.tight_tile_bounds {
            flags |= FLAG_TIGHT_TILE_BOUNDS;
        }
        Self {
            view_row0: row(0),
            view_row1: row(1),
            view_row2: row(2),
            camera_centre_near: [
                centre.x as f32,
                centre.y as f32,
                centre.z as f32,
                settings.near_plane,
            ],
            focal: [camera.fx as f32, camera.fy as f32],
            principal: [camera.cx as f32, camera.cy as f32],
            clamp_positive: [
                ((width - camera.cx) / camera.fx + margin_x) as f32,
                ((height - camera.cy) / camera.fy + margin_y) as f32,
            ],
            clamp_negative: [
                (camera.cx / camera.fx + margin_x) as f32,
                (camera.cy / camera.fy + margin_y) as f32,
            ],
            background: [
                settings.background[0],
                settings.background[1],
                settings.background[2],
                0.0,
            ],
            image_size: [camera.width, camera.height],
            tile_grid: tile_grid(camera.width, camera.height),
            num_gaussians,
            sh_degree,
            eval_sh_degree: settings.active_sh_degree.min(sh_degree),
            flags,
            intersection_capacity: u32::MAX,
            chunk_size: BACKWARD_CHUNK_SIZE,
            _padding: [0; 2],
        }
    }
}

/// The smallest piece of a tile list the backward pass works on (the forward's subgroup walk
/// needs cuts at multiples of the subgroup size, at most 128).
pub const MIN_CHUNK_SIZE: u32 = 128;

/// Entries per piece of the backward pass (rasterize.wgsl, "Pieces") on devices with small
/// storage bindings (see [`backward_chunk_size`]). Shorter pieces spread long tile lists over
/// more workgroups (on a trained 30k bench_tabletop cloud, pieces of 256 take the backward
/// from 0.972 to 0.910 ms against 512; 1024: 1.075, BENCHMARKS.md); every cut costs 16 bytes
/// per pixel of the tile in checkpoints: 4096 / chunk bytes per listed intersection.
pub const BACKWARD_CHUNK_SIZE: u32 = 256;

/// Pieces where bindings are large: 0.821 -> 0.801 ms against 256 on that cloud (three device
/// calls, BENCHMARKS.md), at 32 bytes of checkpoints per intersection.
pub const SHORT_BACKWARD_CHUNK_SIZE: u32 = MIN_CHUNK_SIZE;

/// The backward's piece size on a device whose storage bindings hold `max_binding_bytes`:
/// short pieces unless their checkpoints would cap the intersection list (one binding) below
/// ~33M entries. One size per device, whatever the image, so the summation order (and with it
/// the rounding) of a view never changes on that device.
pub fn backward_chunk_size(max_binding_bytes: u64) -> u32 {
    if max_binding_bytes >= 1 << 30 {
        SHORT_BACKWARD_CHUNK_SIZE
    } else {
        BACKWARD_CHUNK_SIZE
    }
}

impl RenderUniforms {
    /// Replaces the camera centre (where SH view directions start). The game plugin projects a
    /// cloud with its transform folded into the view rows, so the rows are not a rotation and
    /// the centre cannot be derived from them as `-Rᵀ t`; it passes the centre in the cloud's
    /// own frame instead.
    pub fn set_camera_centre(&mut self, centre: glam::DVec3) {
        self.camera_centre_near[0] = centre.x as f32;
        self.camera_centre_near[1] = centre.y as f32;
        self.camera_centre_near[2] = centre.z as f32;
    }
}

/// Tiles per row and per column.
pub fn tile_grid(width: u32, height: u32) -> [u32; 2] {
    [width.div_ceil(TILE_SIZE), height.div_ceil(TILE_SIZE)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_wgsl() {
        // 4 vec4 + 4 vec2 + vec4 + 2 vec2<u32> + 8 u32 = 160 bytes, no implicit padding.
        assert_eq!(std::mem::size_of::<RenderUniforms>(), 160);
    }

    #[test]
    fn short_pieces_only_where_bindings_are_large() {
        // wgpu's default limit and lavapipe's: 128 MiB.
        assert_eq!(backward_chunk_size(128 << 20), BACKWARD_CHUNK_SIZE);
        assert_eq!(backward_chunk_size((1 << 30) - 1), BACKWARD_CHUNK_SIZE);
        assert_eq!(backward_chunk_size(1 << 30), SHORT_BACKWARD_CHUNK_SIZE);
        assert_eq!(
            backward_chunk_size(u64::from(u32::MAX)),
            SHORT_BACKWARD_CHUNK_SIZE
        );
    }
}
