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
    let gaussian = depth_ids[k];
    let rect = tile_rects[gaussian];
    let tile_min = unpack_tile_corner(rect.x);
    let tile_max = unpack_tile_corner(rect.y);
    var slot = start;
    for (var y = tile_min.y; y < tile_max.y; y++) {
        for (var x = tile_min.x; x < tile_max.x; x++) {
            intersection_tiles[slot] = y * render.tile_grid.x + x;
            intersection_gaussians[slot] = gaussian;
            slot++;
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn tile_ranges(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    let count = offsets[render.num_gaussians];
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
