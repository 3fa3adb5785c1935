// Projection of one cloud into a view's shared splat list, for the game plugin
// (gpu::raster::view; ARCHITECTURE.md, "Drawing splats in Bevy").
//
// Key choices:
// - The maths is the trainer's: `project_gaussian` from project.wgsl, so a game draws exactly
//   the splats training optimised. Only where the results go differs.
// - Every visible cloud of a view is projected into ONE list (this kernel runs once per cloud,
//   writing at `cloud.base + i`), so one depth sort and one tile sort order all clouds together
//   per pixel: interleaved clouds composite like one merged cloud.
// - The cloud's transform is folded into the uniforms: `render.view_row*` hold camera-from-local
//   (the view matrix times the cloud's world-from-local, which may scale) and
//   `render.camera_centre_near.xyz` is the camera centre in the cloud's local frame, so the SH
//   colour is evaluated for the view direction in the cloud's own frame. Camera-space depths
//   stay those of the real camera, so clouds sort against each other and against meshes.
// - The depth of each splat is kept per slot (`splat_depths`) for the per-pixel depth test of
//   rasterize_view.wgsl: the depth keys are sorted in place and lose their slot order.
// - Depth keys are 24 bits, the float depth's bits 7-30 (the sign bit is 0 for every visible
//   splat): a relative precision of 2^-16 with three radix passes instead of four
//   (VIEW_DEPTH_KEY_BITS in gpu/raster/view.rs). Culled splats get all ones, which no finite
//   depth reaches (its exponent would be 255).

#include "project.wgsl"

// Where this cloud's Gaussians go in the view's list, and its opacity multiplier.
struct ViewCloud {
    base: u32,
    opacity_scale: f32,
    _padding0: u32,
    _padding1: u32,
}

const VIEW_CULLED_DEPTH_KEY: u32 = 0xffffffu;

@group(0) @binding(23) var<uniform> cloud: ViewCloud;
@group(0) @binding(24) var<storage, read_write> splat_depths: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn project_view(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i >= render.num_gaussians {
        return;
    }
    let slot = cloud.base + i;
    // What a culled Gaussian reports: it sorts last and covers no tile.
    depth_ids[slot] = slot;
    depth_keys[slot] = VIEW_CULLED_DEPTH_KEY;
    tile_counts[slot] = 0u;
    tile_rects[slot] = vec2<u32>(0u);

    let p = project_gaussian(i, cloud.opacity_scale);
    if !p.visible {
        return;
    }
    splats[slot] = p.splat;
    splat_depths[slot] = p.depth;
    depth_keys[slot] = (bitcast<u32>(p.depth) >> 7u) & VIEW_CULLED_DEPTH_KEY;
    tile_counts[slot] = reached_tile_count(p.splat, p.tile_min, p.tile_max);
    tile_rects[slot] = pack_tile_rect(p.tile_min, p.tile_max);
}
