// Tile rasterization of the depth-sorted splats, forward and backward (ARCHITECTURE.md,
// "Rasterization" and "The rasterizer (backward)").
//
// Key choices:
// - One workgroup of 256 threads per 16 x 16 tile, one thread per pixel, row-major (declared
//   1-D because subgroup builtins need 1-D workgroups). Threads outside the image
//   (images need not be multiples of 16) still help load batches but write nothing.
// - The tile's list is consumed in batches of 256: each thread gathers one splat (48 bytes) of
//   the batch into workgroup memory, then every thread reads the whole batch from there, so each
//   intersection is read from global memory once per tile instead of once per pixel.
// - Forward: front to back; a thread stops when its transmittance would fall below 1e-4, and the
//   whole tile stops loading batches once every thread has stopped (a workgroup counter read
//   with workgroupUniformLoad, the only way to branch uniformly on shared state). Per pixel it
//   writes the colour (planar CHW), the final transmittance, and the number of tile-list entries
//   up to its last composited splat ("last contributor count").
// - Backward: back to front from the largest last-contributor count of the tile. T in front of
//   each splat is recovered by division by (1 - alpha) (as inria and gsplat do) instead of being
//   stored per (pixel, splat). Per-splat gradients (mean 2, conic 3, opacity 1, colour 3) are
//   reduced across the subgroup first (SUBGROUPS: subgroupAdd, skipped when no lane of the
//   subgroup touched the splat) so one lane per subgroup issues the global atomics. Without
//   subgroups, threads accumulate into per-batch workgroup slots (compare-and-swap on u32, as
//   float atomics on workgroup memory are not part of SHADER_FLOAT32_ATOMIC) and one thread per
//   splat flushes them to global memory after the batch. Global accumulation uses atomicAdd on
//   atomic<f32> with FLOAT_ATOMICS, and a compare-and-swap loop on atomic<u32> otherwise.
// - Only the memory traffic the maths needs: per pixel, the forward reads nothing but the batch
//   and writes 5 values; the backward reads d_image (3), final T and the count.

#include "raster_types.wgsl"

const BATCH_SIZE: u32 = 256u;
// Threads per workgroup (one per pixel of a tile).
const TILE_THREADS: u32 = TILE_SIZE * TILE_SIZE;
// Floats of dL/d(2D quantities) per Gaussian: mean (2), conic (3), opacity (1), colour (3).
const GRAD_2D_STRIDE: u32 = 9u;

@group(0) @binding(0) var<uniform> render: RenderUniforms;
@group(0) @binding(1) var<storage, read> ranges: array<vec2<u32>>;
// Gaussian ids of the sorted intersection list.
@group(0) @binding(2) var<storage, read> intersection_gaussians: array<u32>;
@group(0) @binding(3) var<storage, read> splats: array<Splat>;
// Forward outputs (the backward reads the last two).
@group(0) @binding(4) var<storage, read_write> image: array<f32>;
@group(0) @binding(5) var<storage, read_write> final_transmittance: array<f32>;
@group(0) @binding(6) var<storage, read_write> last_counts: array<u32>;
// Backward input, planar CHW like the image.
@group(0) @binding(7) var<storage, read> d_image: array<f32>;
// Backward output, GRAD_2D_STRIDE floats per Gaussian (cleared by the host).
#ifdef FLOAT_ATOMICS
@group(0) @binding(8) var<storage, read_write> grad_2d: array<atomic<f32>>;

fn add_to_grad_2d(index: u32, value: f32) {
    atomicAdd(&grad_2d[index], value);
}
#else
@group(0) @binding(8) var<storage, read_write> grad_2d: array<atomic<u32>>;

fn add_to_grad_2d(index: u32, value: f32) {
    var old = atomicLoad(&grad_2d[index]);
    loop {
        let swapped = atomicCompareExchangeWeak(&grad_2d[index], old, bitcast<u32>(bitcast<f32>(old) + value));
        if swapped.exchanged {
            break;
        }
        old = swapped.old_value;
    }
}
#endif

var<workgroup> batch_splats: array<Splat, BATCH_SIZE>;
var<workgroup> tile_range: vec2<u32>;
// Forward: threads that have finished. Backward: largest last-contributor count of the tile.
var<workgroup> tile_counter: atomic<u32>;

struct PixelSetup {
    tile_id: u32,
    pixel: vec2<u32>,
    inside: bool,
    // Index into a plane of the image (valid when inside).
    index: u32,
    centre: vec2<f32>,
}

fn pixel_setup(workgroup_id: vec3<u32>, local_index: u32) -> PixelSetup {
    // Row-major within the tile, so a subgroup covers whole rows of 16 pixels.
    let pixel = workgroup_id.xy * TILE_SIZE
        + vec2<u32>(local_index % TILE_SIZE, local_index / TILE_SIZE);
    let inside = pixel.x < render.image_size.x && pixel.y < render.image_size.y;
    return PixelSetup(
        workgroup_id.y * render.tile_grid.x + workgroup_id.x,
        pixel,
        inside,
        pixel.y * render.image_size.x + pixel.x,
        vec2<f32>(pixel) + 0.5,
    );
}

// alpha of a splat at a pixel centre, with the falloff exp(power) and whether the 0.99 cap was
// active. `alpha` is 0 when the splat is skipped there (power > 0, NaN, or alpha < 1/255).
struct Footprint {
    alpha: f32,
    falloff: f32,
    capped: bool,
    // mean - pixel centre.
    d: vec2<f32>,
}

fn footprint(s: Splat, centre: vec2<f32>) -> Footprint {
    var out: Footprint;
    out.d = s.mean - centre;
    let power = -0.5 * (s.conic.x * out.d.x * out.d.x + s.conic.z * out.d.y * out.d.y)
        - s.conic.y * out.d.x * out.d.y;
    out.alpha = 0.0;
    out.falloff = 0.0;
    out.capped = false;
    // `!(power <= 0)` also skips NaN, which far-away pixels of huge splats could produce.
    if !(power <= 0.0) {
        return out;
    }
    out.falloff = exp(power);
    let unclamped = s.opacity * out.falloff;
    out.capped = unclamped > MAX_ALPHA;
    out.alpha = min(MAX_ALPHA, unclamped);
    if out.alpha < MIN_ALPHA {
        out.alpha = 0.0;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Forward

@compute @workgroup_size(256)
fn rasterize_forward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let px = pixel_setup(workgroup_id, local_index);
    if local_index == 0u {
        tile_range = ranges[px.tile_id];
        atomicStore(&tile_counter, 0u);
    }
    let range = workgroupUniformLoad(&tile_range);
    var done = !px.inside;
    if done {
        atomicAdd(&tile_counter, 1u);
    }

    var transmittance = 1.0;
    var colour = vec3<f32>(0.0);
    var last_count = 0u;
    let batch_count = (range.y - range.x + BATCH_SIZE - 1u) / BATCH_SIZE;
    for (var batch = 0u; batch < batch_count; batch++) {
        // The uniform load is also a barrier: every thread is done with the previous batch.
        if workgroupUniformLoad(&tile_counter) == TILE_THREADS {
            break;
        }
        let first = range.x + batch * BATCH_SIZE;
        if first + local_index < range.y {
            batch_splats[local_index] = splats[intersection_gaussians[first + local_index]];
        }
        workgroupBarrier();
        if !done {
            let in_batch = min(BATCH_SIZE, range.y - first);
            for (var k = 0u; k < in_batch; k++) {
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
                last_count = batch * BATCH_SIZE + k + 1u;
            }
            if done {
                atomicAdd(&tile_counter, 1u);
            }
        }
    }

    if px.inside {
        let plane = render.image_size.x * render.image_size.y;
        let out = colour + transmittance * render.background.rgb;
        image[px.index] = out.r;
        image[plane + px.index] = out.g;
        image[2u * plane + px.index] = out.b;
        final_transmittance[px.index] = transmittance;
        last_counts[px.index] = last_count;
    }
}

// ---------------------------------------------------------------------------------------------
// Backward

var<workgroup> batch_ids: array<u32, BATCH_SIZE>;

// Gradient of one pixel with respect to one splat's 2D quantities.
struct SplatGrad {
    mean: vec2<f32>,
    conic: vec3<f32>,
    opacity: f32,
    colour: vec3<f32>,
}

#ifdef SUBGROUPS
// Sums `grad` over the subgroup; one lane adds the sums to the splat's global accumulators.
fn accumulate_splat_gradient(
    batch_index: u32,
    grad: SplatGrad,
    contributes: bool,
    subgroup_lane: u32,
) {
    if !subgroupAny(contributes) {
        return;
    }
    let mean = subgroupAdd(grad.mean);
    let conic = subgroupAdd(grad.conic);
    let opacity = subgroupAdd(grad.opacity);
    let colour = subgroupAdd(grad.colour);
    if subgroup_lane == 0u {
        let base = GRAD_2D_STRIDE * batch_ids[batch_index];
        add_to_grad_2d(base, mean.x);
        add_to_grad_2d(base + 1u, mean.y);
        add_to_grad_2d(base + 2u, conic.x);
        add_to_grad_2d(base + 3u, conic.y);
        add_to_grad_2d(base + 4u, conic.z);
        add_to_grad_2d(base + 5u, opacity);
        add_to_grad_2d(base + 6u, colour.x);
        add_to_grad_2d(base + 7u, colour.y);
        add_to_grad_2d(base + 8u, colour.z);
    }
}
#else
// Per-batch accumulators in workgroup memory, GRAD_2D_STRIDE per batch slot, as f32 bits.
var<workgroup> batch_grads: array<atomic<u32>, 2304>; // BATCH_SIZE * GRAD_2D_STRIDE

fn add_to_batch_grad(index: u32, value: f32) {
    var old = atomicLoad(&batch_grads[index]);
    loop {
        let swapped = atomicCompareExchangeWeak(&batch_grads[index], old, bitcast<u32>(bitcast<f32>(old) + value));
        if swapped.exchanged {
            break;
        }
        old = swapped.old_value;
    }
}

fn accumulate_splat_gradient(
    batch_index: u32,
    grad: SplatGrad,
    contributes: bool,
    subgroup_lane: u32,
) {
    if !contributes {
        return;
    }
    let base = GRAD_2D_STRIDE * batch_index;
    add_to_batch_grad(base, grad.mean.x);
    add_to_batch_grad(base + 1u, grad.mean.y);
    add_to_batch_grad(base + 2u, grad.conic.x);
    add_to_batch_grad(base + 3u, grad.conic.y);
    add_to_batch_grad(base + 4u, grad.conic.z);
    add_to_batch_grad(base + 5u, grad.opacity);
    add_to_batch_grad(base + 6u, grad.colour.x);
    add_to_batch_grad(base + 7u, grad.colour.y);
    add_to_batch_grad(base + 8u, grad.colour.z);
}
#endif

@compute @workgroup_size(256)
fn rasterize_backward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
#endif
) {
#ifndef SUBGROUPS
    let subgroup_lane = 0u;
#endif
    let px = pixel_setup(workgroup_id, local_index);
    if local_index == 0u {
        tile_range = ranges[px.tile_id];
        atomicStore(&tile_counter, 0u);
    }
    workgroupBarrier();

    // Per-pixel state: T behind the current splat, the colour composited behind it (background
    // included), and dL/d(pixel colour).
    var transmittance = 0.0;
    var last_count = 0u;
    var d_pixel = vec3<f32>(0.0);
    if px.inside {
        let plane = render.image_size.x * render.image_size.y;
        transmittance = final_transmittance[px.index];
        last_count = last_counts[px.index];
        d_pixel = vec3<f32>(
            d_image[px.index],
            d_image[plane + px.index],
            d_image[2u * plane + px.index],
        );
    }
    var behind = render.background.rgb * transmittance;
    atomicMax(&tile_counter, last_count);
    let range = workgroupUniformLoad(&tile_range);
    let entries = workgroupUniformLoad(&tile_counter);

    // Entries [range.x, range.x + entries), consumed back to front in batches.
    let batch_count = (entries + BATCH_SIZE - 1u) / BATCH_SIZE;
    for (var batch = 0u; batch < batch_count; batch++) {
        // This batch: relative positions [batch_end - in_batch, batch_end) of the tile's list.
        let batch_end = entries - batch * BATCH_SIZE;
        let in_batch = min(BATCH_SIZE, batch_end);
        workgroupBarrier();
        if local_index < in_batch {
            // Slot j holds relative position batch_end - 1 - j: back to front.
            let id = intersection_gaussians[range.x + batch_end - 1u - local_index];
            batch_ids[local_index] = id;
            batch_splats[local_index] = splats[id];
#ifndef SUBGROUPS
            for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
                atomicStore(&batch_grads[GRAD_2D_STRIDE * local_index + c], 0u);
            }
#endif
        }
        workgroupBarrier();
        for (var j = 0u; j < in_batch; j++) {
            let position = batch_end - 1u - j;
            var grad = SplatGrad(vec2<f32>(0.0), vec3<f32>(0.0), 0.0, vec3<f32>(0.0));
            var contributes = false;
            if position < last_count {
                let s = batch_splats[j];
                let fp = footprint(s, px.centre);
                if fp.alpha > 0.0 {
                    contributes = true;
                    let one_minus_alpha = 1.0 - fp.alpha;
                    // T in front of this splat.
                    transmittance = transmittance / one_minus_alpha;
                    let weight = fp.alpha * transmittance;
                    grad.colour = d_pixel * weight;
                    let d_alpha = dot(d_pixel, s.color * transmittance - behind / one_minus_alpha);
                    behind += s.color * weight;
                    // At the 0.99 cap alpha is a constant: no opacity or position gradient.
                    if !fp.capped {
                        grad.opacity = d_alpha * fp.falloff;
                        let d_power = d_alpha * fp.alpha;
                        let d = fp.d;
                        grad.mean = d_power * vec2<f32>(
                            -s.conic.x * d.x - s.conic.y * d.y,
                            -s.conic.z * d.y - s.conic.y * d.x,
                        );
                        grad.conic = d_power * vec3<f32>(-0.5 * d.x * d.x, -d.x * d.y, -0.5 * d.y * d.y);
                    }
                }
            }
            accumulate_splat_gradient(j, grad, contributes, subgroup_lane);
        }
#ifndef SUBGROUPS
        workgroupBarrier();
        if local_index < in_batch {
            let base = GRAD_2D_STRIDE * batch_ids[local_index];
            for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
                let value = bitcast<f32>(atomicLoad(&batch_grads[GRAD_2D_STRIDE * local_index + c]));
                if value != 0.0 {
                    add_to_grad_2d(base + c, value);
                }
            }
        }
#endif
    }
}
