// Tile rasterization of a view's splat list with a per-pixel depth test against the scene's
// depth buffer, for the game plugin (gpu::raster::view; ARCHITECTURE.md, "Drawing splats in
// Bevy").
//
// Key choices:
// - The trainer's forward rasterizer (rasterize.wgsl: same tiles, batches, `footprint` and
//   front-to-back compositing), plus one test: a pixel stops at the first splat whose depth is
//   at or beyond the opaque surface in that pixel. The list is in depth order, so everything
//   after it is hidden too. Splats in front of a mesh blend over it; splats write no depth.
// - The output is the composite WITHOUT a background: premultiplied colour and the final
//   transmittance per pixel (rgb, T). The composite pass (composite_splats.wgsl) adds the scene
//   behind as `rgb + T * scene`, which is the trainer's `C + T * background` with the scene in
//   place of the background colour.
// - Depth texture values are Bevy's (reverse Z): camera-space depth z = numerator / (d + offset)
//   (numerator = near, offset = 0 for Bevy's infinite perspective); d + offset <= 0 is
//   infinitely far (cleared depth). With MSAA the FARTHEST of the pixel's samples is used, so a
//   mesh edge that only partly covers a pixel does not hide the splats behind it (its colour was
//   already resolved with the background; hiding the splats there would leave a halo of clear
//   colour around meshes in front of splats).
// - As in the trainer's kernels, a pixel skips the splats whose alpha stays below 1/255 in its
//   row (`visible_rows`, computed once per batch splat): the same image, less work.

#include "rasterize.wgsl"

struct ViewDepth {
    numerator: f32,
    offset: f32,
    // 1: test against `depth_texture`; 0: no opaque geometry (nothing is hidden).
    enabled: u32,
    _padding: u32,
    // Pixel (0, 0) of this view in the depth texture (the camera's viewport origin).
    origin: vec2<u32>,
    _padding1: vec2<u32>,
}

@group(0) @binding(9) var<uniform> view_depth: ViewDepth;
// Camera-space depth per slot of the splat list (project_view.wgsl).
@group(0) @binding(10) var<storage, read> splat_depths: array<f32>;
#ifdef MULTISAMPLED_DEPTH
@group(0) @binding(11) var depth_texture: texture_depth_multisampled_2d;
#else
@group(0) @binding(11) var depth_texture: texture_depth_2d;
#endif
// Output: (premultiplied rgb, final transmittance) per pixel, row-major.
@group(0) @binding(12) var<storage, read_write> view_image: array<vec4<f32>>;

var<workgroup> batch_depths: array<f32, BATCH_SIZE>;

const FAR_AWAY: f32 = 3.40282347e38;

// The camera-space depth of the opaque surface at `pixel`, FAR_AWAY where there is none.
fn opaque_depth(pixel: vec2<u32>) -> f32 {
    if view_depth.enabled == 0u {
        return FAR_AWAY;
    }
    let texel = vec2<i32>(view_depth.origin + pixel);
#ifdef MULTISAMPLED_DEPTH
    // Reverse Z: the farthest sample has the smallest value.
    var d = textureLoad(depth_texture, texel, 0);
    let samples = i32(textureNumSamples(depth_texture));
    for (var s = 1; s < samples; s++) {
        d = min(d, textureLoad(depth_texture, texel, s));
    }
#else
    let d = textureLoad(depth_texture, texel, 0);
#endif
    let denominator = d + view_depth.offset;
    if !(denominator > 0.0) {
        return FAR_AWAY;
    }
    return view_depth.numerator / denominator;
}

@compute @workgroup_size(256)
fn rasterize_view(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let px = pixel_setup(workgroup_id.xy, local_index);
    if local_index == 0u {
        tile_range = ranges[workgroup_id.y * render.tile_grid.x + workgroup_id.x];
        atomicStore(&tile_counter, 0u);
    }
    let range = workgroupUniformLoad(&tile_range);
    var done = !px.inside;
    if done {
        atomicAdd(&tile_counter, 1u);
    }
    var depth_limit = FAR_AWAY;
    if px.inside {
        depth_limit = opaque_depth(px.pixel);
    }

    var transmittance = 1.0;
    var colour = vec3<f32>(0.0);
    let batch_count = (range.y - range.x + BATCH_SIZE - 1u) / BATCH_SIZE;
    for (var batch = 0u; batch < batch_count; batch++) {
        // The uniform load is also a barrier: every thread is done with the previous batch.
        if workgroupUniformLoad(&tile_counter) == TILE_THREADS {
            break;
        }
        let first = range.x + batch * BATCH_SIZE;
        if first + local_index < range.y {
            let slot = intersection_gaussians[first + local_index];
            let s = splats[slot];
            batch_splats[local_index] = s;
            batch_depths[local_index] = splat_depths[slot];
            batch_rows[local_index] = visible_rows(s);
        }
        workgroupBarrier();
        if !done {
            let in_batch = min(BATCH_SIZE, range.y - first);
            for (var k = 0u; k < in_batch; k++) {
                if batch_depths[k] >= depth_limit {
                    done = true;
                    break;
                }
                if outside_rows(batch_rows[k], px.centre) {
                    continue;
                }
                let s = batch_splats[k];
                let fp = footprint(s, px.centre);
                if fp.alpha == 0.0 {
                    continue;
                }
                let next_transmittance = transmittance * (1.0 - fp.alpha);
                if next_transmittance < MIN_TRANSMITTANCE {
                    done = true;
                    break;
                }
                colour += s.color * (fp.alpha * transmittance);
                transmittance = next_transmittance;
            }
            if done {
                atomicAdd(&tile_counter, 1u);
            }
        }
    }

    if px.inside {
        view_image[px.index] = vec4<f32>(colour, transmittance);
    }
}
