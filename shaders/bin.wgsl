// Binning: from per-Gaussian tile rectangles to per-tile lists of Gaussians in depth order
// (ARCHITECTURE.md, "Binning"). The host runs, in order:
//   1. project_forward (project.wgsl): depth key + id and tile count per Gaussian;
//   2. radix sort of (depth key, id) over the N Gaussians (gpu::sort; culled ones sort last);
//   3. `gather_depth_order_counts`: per Gaussian in depth order, the number of tiles of its
//      rectangle that it can reach (`splat_reaches_tile`);
//   4. exclusive scan of those counts (gpu::scan) -> each Gaussian's first slot in the
//      intersection list, and the total M at offsets[N] (the one value read back to the CPU);
//   5. `emit_intersections`: one (tile id, Gaussian id) pair per reached tile, written in depth
//      order, so within each tile the list is already sorted by depth;
//   6. stable radix sort of the pairs on the ceil(log2(tiles)) bits of the tile id (gpu::sort):
//      the result equals one sort on (tile << 32 | depth) keys with far fewer passes over the
//      long list;
//   7. `tile_ranges`: [start, end) of each tile's run in the sorted list (the host clears the
//      ranges to (0, 0) first, so tiles without intersections stay empty).
//
// Key choices: every kernel here is one pass with one thread per element; emission writes each
// Gaussian's pairs contiguously (one thread per Gaussian, as gsplat does: Gaussians covering many
// tiles cost that thread more, but the writes of one thread are sequential).
//
// Exact tile culling: the projection's tile rectangle (inria's square bound) contains many tiles
// where the splat's alpha stays below 1/255 at every pixel centre (the corners of the square
// around an elongated or faint splat). Such a tile would skip the splat at every pixel, so it
// is left out of the list: the images and gradients are the same as with the whole rectangle
// (bit for bit in the forward pass), with fewer entries to sort, walk and reduce. The test is
// the minimum of the splat's quadratic form over the tile's pixel centres against the alpha
// threshold, with a margin far above f32 rounding.
//
// DETERMINISTIC (rasterize.wgsl): emission also writes each entry's own slot index into
// `intersection_slots`, and the tile sort carries those slots instead of the Gaussian ids, so
// `intersection_gaussians` stays in emission order (indexed by slot). The backward pass writes
// one gradient per slot; `sum_intersection_gradients` adds each Gaussian's slots, which are
// contiguous in emission order, in a fixed order.
//
// Deferred counts: in training the host does not wait for M; it sizes the list from the
// largest M seen so far (with headroom) and the kernels below ignore entries at or beyond
// `render.intersection_capacity`. Emission runs in depth order, so if the list ever overflows
// it is the farthest Gaussians' entries that are dropped; the host reads M back later, notices,
// grows the list and counts the event.

#include "common.wgsl"
#include "raster_types.wgsl"

const WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> render: RenderUniforms;
// Gaussian ids sorted by depth (the values of the depth sort).
@group(0) @binding(1) var<storage, read> depth_ids: array<u32>;
// Tile count per Gaussian, indexed by Gaussian id.
@group(0) @binding(2) var<storage, read> tile_counts: array<u32>;
// Tile counts in depth order (input of the scan).
@group(0) @binding(3) var<storage, read_write> depth_order_counts: array<u32>;
// Exclusive scan of depth_order_counts; offsets[N] is the total.
@group(0) @binding(4) var<storage, read> offsets: array<u32>;
// Packed tile rectangle per Gaussian id.
@group(0) @binding(5) var<storage, read> tile_rects: array<vec2<u32>>;
// The intersection list: keys (tile id) and values (Gaussian id).
@group(0) @binding(6) var<storage, read_write> intersection_tiles: array<u32>;
@group(0) @binding(7) var<storage, read_write> intersection_gaussians: array<u32>;
// [start, end) into the sorted intersection list, per tile.
@group(0) @binding(8) var<storage, read_write> ranges: array<vec2<u32>>;
// The projected splats, by Gaussian id.
@group(0) @binding(13) var<storage, read> splats: array<Splat>;
#ifdef DETERMINISTIC
// The emission slot of each entry (the tile sort's values).
@group(0) @binding(10) var<storage, read_write> intersection_slots: array<u32>;
// Per slot, the backward pass's GRAD_2D_STRIDE gradient values.
@group(0) @binding(11) var<storage, read> intersection_grads: array<f32>;
// Per Gaussian: the sum over its slots.
@group(0) @binding(12) var<storage, read_write> grad_2d: array<f32>;

const GRAD_2D_STRIDE: u32 = 9u;
#endif

// Relative slack of the culling test, in units of the quadratic form's largest term: f32
// rounding of those terms (in here and in the rasterizer) is ~1e-7 of it.
const CULL_MARGIN: f32 = 1e-4;

// Whether splat `s` can reach alpha >= 1/255 at some pixel centre of tile `tile`: the minimum
// of q(d) = d^T conic d over the tile's rectangle of pixel centres (d = centre - mean) against
// 2 ln(255 opacity), the largest q at which opacity * exp(-q / 2) >= 1/255. NaN keeps the tile.
fn splat_reaches_tile(s: Splat, tile: vec2<u32>) -> bool {
    let lo = vec2<f32>(tile * TILE_SIZE) + 0.5 - s.mean;
    let hi = lo + f32(TILE_SIZE - 1u);
    if all(lo <= vec2<f32>(0.0)) && all(hi >= vec2<f32>(0.0)) {
        return true;
    }
    let a = s.conic.x;
    let b = s.conic.y;
    let c = s.conic.z;
    // q is convex and its minimum (d = 0) lies outside: the box minimum is on an edge, at the
    // edge's own minimum clamped to the edge.
    let on_bottom = vec2<f32>(clamp(-b * lo.y / a, lo.x, hi.x), lo.y);
    let on_top = vec2<f32>(clamp(-b * hi.y / a, lo.x, hi.x), hi.y);
    let on_left = vec2<f32>(lo.x, clamp(-b * lo.x / c, lo.y, hi.y));
    let on_right = vec2<f32>(hi.x, clamp(-b * hi.x / c, lo.y, hi.y));
    let least = min(
        min(quadratic_form(s.conic, on_bottom), quadratic_form(s.conic, on_top)),
        min(quadratic_form(s.conic, on_left), quadratic_form(s.conic, on_right)),
    );
    let far = max(abs(lo), abs(hi));
    let scale = a * far.x * far.x + c * far.y * far.y + 2.0 * abs(b) * far.x * far.y;
    let threshold = 2.0 * log(255.0 * s.opacity);
    return !(least > threshold + CULL_MARGIN * (scale + 1.0));
}

fn quadratic_form(conic: vec3<f32>, d: vec2<f32>) -> f32 {
    return conic.x * d.x * d.x + 2.0 * conic.y * d.x * d.y + conic.z * d.y * d.y;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_depth_order_counts(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let k = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if k >= render.num_gaussians {
        return;
    }
    let gaussian = depth_ids[k];
    var count = 0u;
    if tile_counts[gaussian] > 0u {
        let s = splats[gaussian];
        let rect = tile_rects[gaussian];
        let tile_min = unpack_tile_corner(rect.x);
        let tile_max = unpack_tile_corner(rect.y);
        for (var y = tile_min.y; y < tile_max.y; y++) {
            for (var x = tile_min.x; x < tile_max.x; x++) {
                count += u32(splat_reaches_tile(s, vec2<u32>(x, y)));
            }
        }
    }
    depth_order_counts[k] = count;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn emit_intersections(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    // k: position in depth order.
    let k = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if k >= render.num_gaussians {
        return;
    }
    let start = offsets[k];
    let end = offsets[k + 1u];
    if start == end {
        return;
    }
    if start >= render.intersection_capacity {
        return;
    }
    let gaussian = depth_ids[k];
    let s = splats[gaussian];
    let rect = tile_rects[gaussian];
    let tile_min = unpack_tile_corner(rect.x);
    let tile_max = unpack_tile_corner(rect.y);
    let slot_end = min(end, render.intersection_capacity);
    var slot = start;
    for (var y = tile_min.y; y < tile_max.y; y++) {
        for (var x = tile_min.x; x < tile_max.x; x++) {
            if slot >= slot_end {
                return;
            }
            if !splat_reaches_tile(s, vec2<u32>(x, y)) {
                continue;
            }
            intersection_tiles[slot] = y * render.tile_grid.x + x;
            intersection_gaussians[slot] = gaussian;
#ifdef DETERMINISTIC
            intersection_slots[slot] = slot;
#endif
            slot++;
        }
    }
}

// The number of entries of the intersection list that the tile ranges read: the total, or the
// capacity if the list overflowed.
fn listed_intersections() -> u32 {
    return min(offsets[render.num_gaussians], render.intersection_capacity);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn tile_ranges(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    let count = listed_intersections();
    if i >= count {
        return;
    }
    let tile = intersection_tiles[i];
    if i == 0u || intersection_tiles[i - 1u] != tile {
        ranges[tile].x = i;
    }
    if i + 1u == count || intersection_tiles[i + 1u] != tile {
        ranges[tile].y = i + 1u;
    }
}

// Indirect dispatch arguments of `tile_ranges` for a count that is only known on the GPU:
// ceil(count / WORKGROUP_SIZE) workgroups, folded into two dimensions like the host's
// `dispatch_size_1d` when they exceed the per-dimension limit.
@group(0) @binding(9) var<storage, read_write> dispatch_args: array<u32, 3>;

const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65535u;

@compute @workgroup_size(1)
fn tile_ranges_dispatch_args() {
    let groups = (listed_intersections() + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
    if groups <= MAX_WORKGROUPS_PER_DIMENSION {
        dispatch_args[0] = groups;
        dispatch_args[1] = 1u;
    } else {
        let y = (groups + MAX_WORKGROUPS_PER_DIMENSION - 1u) / MAX_WORKGROUPS_PER_DIMENSION;
        dispatch_args[0] = (groups + y - 1u) / y;
        dispatch_args[1] = y;
    }
    dispatch_args[2] = 1u;
}

#ifdef DETERMINISTIC
// dL/d(2D quantities) per Gaussian: the sum of its intersections' gradients in list order
// (every Gaussian is written; those without intersections get zeros).
@compute @workgroup_size(WORKGROUP_SIZE)
fn sum_intersection_gradients(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    // k: position in depth order.
    let k = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if k >= render.num_gaussians {
        return;
    }
    let start = min(offsets[k], render.intersection_capacity);
    let end = min(offsets[k + 1u], render.intersection_capacity);
    var sums: array<f32, GRAD_2D_STRIDE>;
    for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
        sums[c] = 0.0;
    }
    for (var slot = start; slot < end; slot++) {
        for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
            sums[c] += intersection_grads[slot * GRAD_2D_STRIDE + c];
        }
    }
    let base = depth_ids[k] * GRAD_2D_STRIDE;
    for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
        grad_2d[base + c] = sums[c];
    }
}
#endif
