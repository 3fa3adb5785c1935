// Exclusive prefix sum of u32 values (src/gpu/scan.rs), reduce-then-scan over tiles.
//
// A tile is WORKGROUP_SIZE * ITEMS_PER_THREAD consecutive values, one workgroup each. For more
// than one tile, `reduce` writes the sum of every tile into a block-sums array, which is
// scanned the same way one level up (recursively, until one tile holds everything: three
// levels cover 2^28 values with 2048-value tiles), and `scan_add` then scans every tile again
// starting from its tile's scanned sum. The top level is a single tile (`scan_top`). That reads
// the input twice and writes it once, with no inter-workgroup communication, so it is correct
// on any adapter (a single-pass "decoupled look-back" scan would need forward-progress
// guarantees that WebGPU does not give).
//
// Inside a tile the loads and stores are striped (consecutive invocations touch consecutive
// words, so they coalesce), the tile is transposed through workgroup memory so that every
// invocation owns ITEMS_PER_THREAD consecutive values, which it sums serially, and the
// per-invocation sums go through one workgroup scan (scan_workgroup.wgsl). The workgroup array
// is padded by one word every 32, which makes the strided "own my consecutive values" accesses
// free of bank conflicts for 8 items per invocation.
//
// Counts live on the GPU: `setup` reads the element count (from the caller's buffer for the
// indirect variant) and writes every level's count, so one recording serves any count up to the
// capacity it was recorded for (the host dispatches each level for that capacity; workgroups
// past the real tile count return at once).

#include "common.wgsl"
#include "scan_workgroup.wgsl"

override WORKGROUP_SIZE: u32 = 256u;
override ITEMS_PER_THREAD: u32 = 8u;

// Largest tile (WORKGROUP_SIZE * ITEMS_PER_THREAD) and its padded workgroup-memory footprint.
const MAX_TILE: u32 = 2048u;
const MAX_TILE_PADDED: u32 = MAX_TILE + MAX_TILE / 32u;

// One scan level. Padded to 16 bytes; each level's copy sits in its own 256-byte slot of the
// level-parameter buffer, bound at that slot's offset.
struct LevelParams {
    // Number of values of this level.
    count: u32,
    // Number of tiles of this level (0 when count is 0).
    num_tiles: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> level: LevelParams;
@group(0) @binding(1) var<storage, read> source: array<u32>;
// `scan_top`/`scan_add`: the scanned values (count + 1 words, the total last);
// `reduce`: one sum per tile.
@group(0) @binding(2) var<storage, read_write> destination: array<u32>;
// `scan_add`: the scanned tile sums of the level above (num_tiles + 1 words).
@group(0) @binding(3) var<storage, read> tile_offsets: array<u32>;

var<workgroup> tile: array<u32, MAX_TILE_PADDED>;

fn tile_size() -> u32 {
    return WORKGROUP_SIZE * ITEMS_PER_THREAD;
}

// Position of tile value `i` in the padded workgroup array.
fn padded(i: u32) -> u32 {
    return i + i / 32u;
}

// The tile index of this workgroup, or none (`num_tiles`, beyond the last) for the extra
// workgroups of a folded dispatch. At least one workgroup runs even for an empty level, so that
// the total still gets written.
fn tile_index(ids: ComputeIds) -> u32 {
    return linear_workgroup_id(ids.workgroup, ids.workgroups);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn reduce(ids: ComputeIds) {
    let t = tile_index(ids);
    if t >= max(level.num_tiles, 1u) {
        return;
    }
    let lane = lane_of(ids, WORKGROUP_SIZE);
    let start = t * tile_size();
    var sum = 0u;
    for (var k = 0u; k < ITEMS_PER_THREAD; k++) {
        let i = start + k * WORKGROUP_SIZE + ids.local_index;
        if i < level.count {
            sum += source[i];
        }
    }
    let scan = workgroup_exclusive_scan(sum, lane);
    if ids.local_index == 0u {
        destination[t] = scan.total;
    }
}

// Scans tile `t` of `source` into `destination`, every value offset by `offset`. Returns the
// tile's total (without the offset).
fn scan_tile(ids: ComputeIds, t: u32, offset: u32) -> u32 {
    let lane = lane_of(ids, WORKGROUP_SIZE);
    let start = t * tile_size();
    // Striped, coalesced load into workgroup memory (zeros past the end).
    for (var k = 0u; k < ITEMS_PER_THREAD; k++) {
        let j = k * WORKGROUP_SIZE + ids.local_index;
        var value = 0u;
        if start + j < level.count {
            value = source[start + j];
        }
        tile[padded(j)] = value;
    }
    workgroupBarrier();
    // Each invocation owns ITEMS_PER_THREAD consecutive values, in logical order.
    let first = lane.index * ITEMS_PER_THREAD;
    var sum = 0u;
    for (var k = 0u; k < ITEMS_PER_THREAD; k++) {
        sum += tile[padded(first + k)];
    }
    let scan = workgroup_exclusive_scan(sum, lane);
    var running = offset + scan.exclusive;
    for (var k = 0u; k < ITEMS_PER_THREAD; k++) {
        let value = tile[padded(first + k)];
        tile[padded(first + k)] = running;
        running += value;
    }
    workgroupBarrier();
    // Striped, coalesced store.
    for (var k = 0u; k < ITEMS_PER_THREAD; k++) {
        let j = k * WORKGROUP_SIZE + ids.local_index;
        if start + j < level.count {
            destination[start + j] = tile[padded(j)];
        }
    }
    return scan.total;
}

// The top level: one workgroup scans the whole (at most one tile) level and writes the total.
@compute @workgroup_size(WORKGROUP_SIZE)
fn scan_top(ids: ComputeIds) {
    let total = scan_tile(ids, 0u, 0u);
    if ids.local_index == 0u {
        destination[level.count] = total;
    }
}

// A lower level: tile `t` starts at the scanned sum of the tiles before it.
@compute @workgroup_size(WORKGROUP_SIZE)
fn scan_add(ids: ComputeIds) {
    let t = tile_index(ids);
    if t >= max(level.num_tiles, 1u) {
        return;
    }
    scan_tile(ids, t, tile_offsets[t]);
    if t == 0u && ids.local_index == 0u {
        destination[level.count] = tile_offsets[level.num_tiles];
    }
}

// ---- setup: GPU-resident count -> level parameters ----

// Written by the host before every scan (through a copy recorded in the same encoder).
struct ScanCall {
    // Where the count is in `count_source`.
    count_index: u32,
    // Counts above this are clamped to it (the scratch buffers were sized for it).
    max_count: u32,
    // Number of levels below the top one.
    levels: u32,
    // WORKGROUP_SIZE * ITEMS_PER_THREAD of the scan pipelines.
    tile_size: u32,
}

// Words per level-parameter slot (256 bytes, the largest uniform offset alignment).
const LEVEL_SLOT_WORDS: u32 = 64u;

@group(0) @binding(10) var<storage, read> call: ScanCall;
@group(0) @binding(11) var<storage, read> count_source: array<u32>;
@group(0) @binding(12) var<storage, read_write> level_slots: array<u32>;

@compute @workgroup_size(1)
fn setup() {
    var count = min(count_source[call.count_index], call.max_count);
    for (var l = 0u; l <= call.levels; l++) {
        let tiles = (count + call.tile_size - 1u) / call.tile_size;
        level_slots[l * LEVEL_SLOT_WORDS] = count;
        level_slots[l * LEVEL_SLOT_WORDS + 1u] = tiles;
        count = tiles;
    }
}
