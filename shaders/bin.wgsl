// Binning: from per-Gaussian tile rectangles to per-tile lists of Gaussians in depth order
// (ARCHITECTURE.md, "Binning"). The host runs, in order:
//   1. project_forward (project.wgsl): depth key + id and tile count per Gaussian;
//   2. radix sort of (depth key, id) over the N Gaussians (gpu::sort; culled ones sort last);
//   3. `gather_depth_order_counts`: per Gaussian in depth order, the number of tiles of its
//      rectangle that it can reach (the projection counted them: `reached_tile_count`);
//   4. exclusive scan of those counts (gpu::scan) -> each Gaussian's first slot in the
//      intersection list, and the total M at offsets[N] (the one value read back to the CPU);
//   5. `emit_intersections`: one (tile id, Gaussian id) pair per reached tile, written in depth
//      order, so within each tile the list is already sorted by depth;
//   6. stable radix sort of the pairs on the ceil(log2(tiles)) bits of the tile id (gpu::sort):
//      the result equals one sort on (tile << 32 | depth) keys with far fewer passes over the
//      long list;
//   7. `clear_tile_ranges`, then `tile_ranges`: [start, end) of each tile's run in the sorted
//      list (tiles without intersections keep (0, 0)).
//
// Key choices: every kernel here is one pass with one thread per element; emission writes each
// Gaussian's pairs contiguously, one thread per Gaussian as gsplat does, except that with
// subgroups a Gaussian of more than COOPERATIVE_ENTRIES entries is written by its whole
// subgroup, a row of tiles at a time (the same list, faster: one thread per large splat held
// its subgroup up).
//
// Exact tile culling: the projection's tile rectangle (inria's square bound) contains many tiles
// where the splat's alpha stays below 1/255 at every pixel centre (the corners of the square
// around an elongated or faint splat). Such a tile would skip the splat at every pixel, so it
// is left out of the list: the images and gradients are the same as with the whole rectangle
// (bit for bit in the forward pass), with fewer entries to sort, walk and reduce. The test is
// the minimum of the splat's quadratic form over the tile's pixel centres against the alpha
// threshold, with a margin far above f32 rounding (splat_reach.wgsl, shared with the backward).
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
#include "splat_reach.wgsl"

const WORKGROUP_SIZE: u32 = 256u;

@group(0) @binding(0) var<uniform> render: RenderUniforms;
// Gaussian ids sorted by depth (the values of the depth sort).
@group(0) @binding(1) var<storage, read> depth_ids: array<u32>;
// Reached tiles per Gaussian (`reached_tile_count`), indexed by Gaussian id.
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
    depth_order_counts[k] = tile_counts[depth_ids[k]];
}

// Writes the entries of the Gaussian at depth position `k` with slots [start, end), row by
// row of its rectangle, each row's reached columns left to right: one invocation alone
// (`lane` 0 of 1) or a whole subgroup, whose lanes take every `lanes`-th column of a row. The
// slots are the same either way (a row's entries are contiguous, in column order).
fn emit_gaussian(k: u32, start: u32, end: u32, lane: u32, lanes: u32) {
    let gaussian = depth_ids[k];
    let s = splats[gaussian];
    let reach = splat_reach(s);
    let rect = tile_rects[gaussian];
    let tile_min = unpack_tile_corner(rect.x);
    let tile_max = unpack_tile_corner(rect.y);
    let slot_end = min(end, render.intersection_capacity);
    var row_start = start;
    for (var y = tile_min.y; y < tile_max.y && row_start < slot_end; y++) {
        let columns = reached_columns(s, reach, y, tile_min, tile_max);
        let width = columns.y - columns.x;
        for (var column = lane; column < width; column += lanes) {
            let slot = row_start + column;
            if slot >= slot_end {
                break;
            }
            intersection_tiles[slot] = y * render.tile_grid.x + columns.x + column;
            intersection_gaussians[slot] = gaussian;
#ifdef DETERMINISTIC
            intersection_slots[slot] = slot;
#endif
        }
        row_start += width;
    }
}

// Gaussians with more entries than this are written by their whole subgroup (SUBGROUPS): one
// thread per Gaussian leaves a subgroup waiting on its largest splat (hundreds of tiles on
// real scenes, against a few for most), and its writes land 32 cache lines apart.
const COOPERATIVE_ENTRIES: u32 = 16u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn emit_intersections(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
#endif
) {
    // k: position in depth order.
    let k = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    var start = 0u;
    var end = 0u;
    if k < render.num_gaussians {
        start = offsets[k];
        end = offsets[k + 1u];
    }
    let listed = start < end && start < render.intersection_capacity;
#ifdef SUBGROUPS
    // No early return: every lane takes part in writing the subgroup's large splats.
    let cooperative = listed && end - start > COOPERATIVE_ENTRIES;
    if listed && !cooperative {
        emit_gaussian(k, start, end, 0u, 1u);
    }
    let ballot = subgroupBallot(cooperative);
    for (var word = 0u; word < 4u; word++) {
        var bits = ballot[word];
        while bits != 0u {
            let owner = 32u * word + firstTrailingBit(bits);
            bits &= bits - 1u;
            let owner_k = subgroupShuffle(k, owner);
            emit_gaussian(owner_k, subgroupShuffle(start, owner), subgroupShuffle(end, owner), lane, lanes);
        }
    }
#else
    if listed {
        emit_gaussian(k, start, end, 0u, 1u);
    }
#endif
}

// The number of entries of the intersection list that the tile ranges read: the total, or the
// capacity if the list overflowed.
fn listed_intersections() -> u32 {
    return min(offsets[render.num_gaussians], render.intersection_capacity);
}

// Empty ranges for every tile (tiles without intersections keep them).
@compute @workgroup_size(WORKGROUP_SIZE)
fn clear_tile_ranges(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i < render.tile_grid.x * render.tile_grid.y {
        ranges[i] = vec2<u32>(0u);
    }
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
