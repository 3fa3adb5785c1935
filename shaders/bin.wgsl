// Binning: from per-Gaussian tile rectangles to per-tile lists of Gaussians in depth order
// (ARCHITECTURE.md, "Binning"). The host runs, in order:
//   1. project_forward (project.wgsl): depth key + id and tile count per Gaussian;
//   2. radix sort of (depth key, id) over the N Gaussians (gpu::sort; culled ones sort last);
//   3. `gather_depth_order_counts`: the tile counts in depth order;
//   4. exclusive scan of those counts (gpu::scan) -> each Gaussian's first slot in the
//      intersection list, and the total M at offsets[N] (the one value read back to the CPU);
//   5. `emit_intersections`: one (tile id, Gaussian id) pair per intersection, written in depth
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
            intersection_tiles[slot] = y * render.tile_grid.x + x;
            intersection_gaussians[slot] = gaussian;
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
