// Stable key/value LSD radix sort of u32 pairs (src/gpu/sort.rs), 8-bit digits, reduce-then-scan.
//
// Each pass sorts by one 8-bit digit of the key (ascending, stable), least significant first,
// ping-ponging between the caller's buffers and scratch buffers. A pass is three dispatches over
// blocks of BLOCK_SIZE = WORKGROUP_SIZE * KEYS_PER_THREAD consecutive keys: `upsweep` (one
// workgroup per block) counts each digit in each block into `digit_counts[digit * num_blocks +
// block]`; `digit_scan` (one workgroup per digit) turns each digit's row into an exclusive prefix
// sum over the blocks and appends the digit's total; `downsweep` (one workgroup per block) scans
// the 256 totals itself to find where each digit starts, ranks the block's keys stably by digit
// and scatters keys and values. No workgroup waits on another, so it is correct on any adapter
// (a single-pass "onesweep" sort would need forward-progress guarantees WebGPU does not give),
// and few dispatches (3 per pass, 13 for 32-bit keys) keep small sorts cheap.
//
// Ranking in `downsweep`: the block is split into one contiguous chunk per ranking group (a
// subgroup, or without subgroups a virtual group of FALLBACK_GROUP_SIZE invocations), and each
// group walks its chunk one row of group-size keys at a time. Within a row, the invocations with
// the same digit find each other: with subgroups by 8 ballots (one per digit bit), without by
// reading every digit of the row from workgroup memory. A key's rank in its chunk is its number
// of equal-digit peers to its left plus the group's running count of that digit, kept in
// workgroup memory per group and updated by the row's last peer. Per-group counts are then
// turned into block-local offsets (prefix over groups, then over digits), each key is written to
// its rank in workgroup memory so that the block is locally sorted by digit, and invocations
// store consecutive sorted keys, which makes the global writes of a digit's run coalesce.
// Values follow the same permutation, one array at a time (the workgroup memory holds one).
// Keys past the end of the last block rank as the largest digit, so they land past the valid
// keys and are never stored. Counts and pass parameters live on the GPU (`setup`), so a sort
// can be recorded before the count is known.

#include "common.wgsl"
#include "scan_workgroup.wgsl"

override WORKGROUP_SIZE: u32 = 256u;
override KEYS_PER_THREAD: u32 = 16u;
// WORKGROUP_SIZE * KEYS_PER_THREAD (a workgroup array's size must be a single override).
override BLOCK_SIZE: u32 = 4096u;
// RADIX * the largest number of ranking groups in a workgroup.
override GROUP_HISTOGRAM_WORDS: u32 = 2048u;
// Size of the virtual ranking groups used without subgroups.
override FALLBACK_GROUP_SIZE: u32 = 32u;

const RADIX: u32 = 256u;
const MAX_KEYS_PER_THREAD: u32 = 16u;
// RADIX / the smallest workgroup size (64).
const MAX_DIGITS_PER_THREAD: u32 = 4u;

// One pass. Each pass's copy sits in its own 256-byte slot, bound at that slot's offset.
struct PassParams {
    count: u32,
    num_blocks: u32,
    // The digit is (key >> shift) & digit_mask, with digit_bits bits (fewer than 8 in the last
    // pass when key_bits is not a multiple of 8: the bits above key_bits are ignored).
    shift: u32,
    digit_mask: u32,
    digit_bits: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: PassParams;
@group(0) @binding(1) var<storage, read> keys_in: array<u32>;
@group(0) @binding(2) var<storage, read> values_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(4) var<storage, read_write> values_out: array<u32>;
// Per (digit, block) counts (upsweep), then their exclusive prefix sums over the blocks of each
// digit followed by the RADIX digit totals (digit_scan).
@group(0) @binding(5) var<storage, read_write> digit_counts: array<u32>;

fn digit_of(key: u32) -> u32 {
    return (key >> params.shift) & params.digit_mask;
}

// ---- upsweep: digit counts per block ----

var<workgroup> block_counts: array<atomic<u32>, RADIX>;

#ifdef SUBGROUPS
fn count_digit(ids: ComputeIds, digit: u32, valid: bool) {
    // Sorted or nearly constant keys (the top byte of float depths, the high digits of short
    // tile keys) give whole subgroups one digit: one atomic then instead of one per invocation.
    let first = subgroupBroadcastFirst(digit);
    if subgroupAll(valid && digit == first) {
        if ids.subgroup_lane == 0u {
            atomicAdd(&block_counts[digit], ids.subgroup_size);
        }
    } else if valid {
        atomicAdd(&block_counts[digit], 1u);
    }
}
#else
fn count_digit(ids: ComputeIds, digit: u32, valid: bool) {
    if valid {
        atomicAdd(&block_counts[digit], 1u);
    }
}
#endif

@compute @workgroup_size(WORKGROUP_SIZE)
fn upsweep(ids: ComputeIds) {
    let block = linear_workgroup_id(ids.workgroup, ids.workgroups);
    if block >= params.num_blocks {
        return;
    }
    for (var d = ids.local_index; d < RADIX; d += WORKGROUP_SIZE) {
        atomicStore(&block_counts[d], 0u);
    }
    workgroupBarrier();
    // All loads first, so they are in flight together (the counting loop has subgroup
    // operations and atomics the compiler will not move loads across).
    let start = block * BLOCK_SIZE;
    var digits: array<u32, MAX_KEYS_PER_THREAD>;
    for (var k = 0u; k < KEYS_PER_THREAD; k++) {
        let i = start + k * WORKGROUP_SIZE + ids.local_index;
        digits[k] = RADIX;
        if i < params.count {
            digits[k] = digit_of(keys_in[i]);
        }
    }
    for (var k = 0u; k < KEYS_PER_THREAD; k++) {
        count_digit(ids, digits[k], digits[k] < RADIX);
    }
    workgroupBarrier();
    for (var d = ids.local_index; d < RADIX; d += WORKGROUP_SIZE) {
        digit_counts[d * params.num_blocks + block] = atomicLoad(&block_counts[d]);
    }
}

// ---- digit_scan: for each digit, exclusive prefix sum of its counts over the blocks ----

// Counts per invocation per step: a step scans WORKGROUP_SIZE * DIGIT_SCAN_ITEMS blocks.
const DIGIT_SCAN_ITEMS: u32 = 8u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn digit_scan(ids: ComputeIds) {
    let digit = linear_workgroup_id(ids.workgroup, ids.workgroups);
    let lane = lane_of(ids, FALLBACK_GROUP_SIZE);
    let blocks = params.num_blocks;
    let row = digit * blocks;
    var carry = 0u;
    for (var step = 0u; step < blocks; step += WORKGROUP_SIZE * DIGIT_SCAN_ITEMS) {
        // Each invocation scans DIGIT_SCAN_ITEMS consecutive counts, in place.
        let first = step + lane.index * DIGIT_SCAN_ITEMS;
        var counts: array<u32, DIGIT_SCAN_ITEMS>;
        var sum = 0u;
        for (var k = 0u; k < DIGIT_SCAN_ITEMS; k++) {
            counts[k] = 0u;
            if first + k < blocks {
                counts[k] = digit_counts[row + first + k];
            }
            sum += counts[k];
        }
        let scan = workgroup_exclusive_scan(sum, lane);
        var running = carry + scan.exclusive;
        for (var k = 0u; k < DIGIT_SCAN_ITEMS; k++) {
            if first + k < blocks {
                digit_counts[row + first + k] = running;
            }
            running += counts[k];
        }
        carry += scan.total;
    }
    if ids.local_index == 0u {
        digit_counts[RADIX * blocks + digit] = carry;
    }
}

// ---- downsweep: stable rank within the block, then scatter ----

// The block's keys (then values) in locally sorted order; during ranking without subgroups,
// the digits of the current row.
var<workgroup> staging: array<u32, BLOCK_SIZE>;
// Per ranking group, per digit: a running count while ranking, then the block-local offset of
// the group's first key of that digit; finally (first RADIX words) global minus local offsets.
var<workgroup> group_histograms: array<u32, GROUP_HISTOGRAM_WORDS>;

// Offset in the block of a ranking group's key in row `row` (the order that ranks follow).
fn key_offset(lane: Lane, row: u32) -> u32 {
    return (lane.group * KEYS_PER_THREAD + row) * lane.group_size + lane.lane;
}

#ifdef SUBGROUPS
// Bit mask (as subgroupBallot lays it out) of the lanes below `lane`.
fn lanes_below(lane: u32) -> vec4<u32> {
    var mask = vec4<u32>(0u);
    for (var i = 0u; i < 4u; i++) {
        let first = i * 32u;
        if lane >= first + 32u {
            mask[i] = 0xffffffffu;
        } else if lane > first {
            mask[i] = (1u << (lane - first)) - 1u;
        }
    }
    return mask;
}

fn count_lanes(mask: vec4<u32>) -> u32 {
    let c = countOneBits(mask);
    return c.x + c.y + c.z + c.w;
}

fn highest_lane(mask: vec4<u32>) -> u32 {
    for (var i = 3i; i >= 0i; i--) {
        if mask[i] != 0u {
            return u32(i) * 32u + firstLeadingBit(mask[i]);
        }
    }
    return 0u;
}

// Rank of this row's key among the keys with the same digit in the group's chunk so far; counts
// the row into the group's histogram. Call from uniform control flow, followed by a barrier.
fn rank_in_group(digit: u32, lane: Lane) -> u32 {
    // The lanes whose digit equals ours: intersect, bit by bit, the lanes that agree on it.
    var peers = subgroupBallot(true);
    for (var bit = 0u; bit < params.digit_bits; bit++) {
        let bit_set = ((digit >> bit) & 1u) != 0u;
        let voters = subgroupBallot(bit_set);
        peers &= select(~voters, voters, bit_set);
    }
    // The highest peer alone updates the running count (so no two lanes write one word) and
    // hands the count before this row to the others.
    let leader = highest_lane(peers);
    var before = 0u;
    if lane.lane == leader {
        let slot = lane.group * RADIX + digit;
        before = group_histograms[slot];
        group_histograms[slot] = before + count_lanes(peers);
    }
    return subgroupShuffle(before, leader) + count_lanes(peers & lanes_below(lane.lane));
}
#else
// As above, the row's digits exchanged through workgroup memory.
fn rank_in_group(digit: u32, lane: Lane) -> u32 {
    staging[lane.index] = digit;
    workgroupBarrier();
    let first = lane.group * lane.group_size;
    var below = 0u;
    var peers = 0u;
    var is_last = true;
    for (var j = 0u; j < lane.group_size; j++) {
        if staging[first + j] == digit {
            peers += 1u;
            if j < lane.lane {
                below += 1u;
            } else if j > lane.lane {
                is_last = false;
            }
        }
    }
    let slot = lane.group * RADIX + digit;
    let before = group_histograms[slot];
    // Everybody has read the count (and the row's digits) before the last peer updates it.
    workgroupBarrier();
    if is_last {
        group_histograms[slot] = before + peers;
    }
    return before + below;
}
#endif

@compute @workgroup_size(WORKGROUP_SIZE)
fn downsweep(ids: ComputeIds) {
    let block = linear_workgroup_id(ids.workgroup, ids.workgroups);
    if block >= params.num_blocks {
        return;
    }
    let lane = lane_of(ids, FALLBACK_GROUP_SIZE);
    let start = block * BLOCK_SIZE;
    let valid = min(params.count - start, BLOCK_SIZE);

    // Each invocation owns `digits_per_thread` consecutive digits for the digit-level steps.
    // Where this block's keys of each digit go: the digit's start (an exclusive scan of the
    // digit totals, redone by every block: 256 words) plus the earlier blocks' keys of that
    // digit (digit_scan's result).
    let digits_per_thread = RADIX / WORKGROUP_SIZE;
    let first_digit = lane.index * digits_per_thread;
    var global_offsets: array<u32, MAX_DIGITS_PER_THREAD>;
    var totals: array<u32, MAX_DIGITS_PER_THREAD>;
    var thread_digits_total = 0u;
    for (var j = 0u; j < digits_per_thread; j++) {
        let digit = first_digit + j;
        global_offsets[j] = digit_counts[digit * params.num_blocks + block];
        totals[j] = digit_counts[RADIX * params.num_blocks + digit];
        thread_digits_total += totals[j];
    }
    for (var i = ids.local_index; i < GROUP_HISTOGRAM_WORDS; i += WORKGROUP_SIZE) {
        group_histograms[i] = 0u;
    }
    // (The scan's barriers also order the histogram clearing before the ranking.)
    let digit_starts = workgroup_exclusive_scan(thread_digits_total, lane);
    var digit_start = digit_starts.exclusive;
    for (var j = 0u; j < digits_per_thread; j++) {
        global_offsets[j] += digit_start;
        digit_start += totals[j];
    }

    // 1. Rank every key within its group's chunk, row by row. The loads come first, so that
    // they are all in flight at once rather than one per barrier-separated row.
    var keys: array<u32, MAX_KEYS_PER_THREAD>;
    for (var row = 0u; row < KEYS_PER_THREAD; row++) {
        let offset = key_offset(lane, row);
        keys[row] = 0xffffffffu;
        if offset < valid {
            keys[row] = keys_in[start + offset];
        }
    }
    var positions: array<u32, MAX_KEYS_PER_THREAD>;
    for (var row = 0u; row < KEYS_PER_THREAD; row++) {
        positions[row] = rank_in_group(digit_of(keys[row]), lane);
        // The next row reads the counts this row wrote.
        workgroupBarrier();
    }

    // 2. Block-local offsets: for each digit, prefix over the groups, then over the digits.
    var digit_totals: array<u32, MAX_DIGITS_PER_THREAD>;
    var thread_total = 0u;
    for (var j = 0u; j < digits_per_thread; j++) {
        var running = 0u;
        for (var group = 0u; group < lane.group_count; group++) {
            let slot = group * RADIX + first_digit + j;
            let count = group_histograms[slot];
            group_histograms[slot] = running;
            running += count;
        }
        digit_totals[j] = running;
        thread_total += running;
    }
    let scan = workgroup_exclusive_scan(thread_total, lane);
    var local_offsets: array<u32, MAX_DIGITS_PER_THREAD>;
    var local_start = scan.exclusive;
    for (var j = 0u; j < digits_per_thread; j++) {
        local_offsets[j] = local_start;
        for (var group = 0u; group < lane.group_count; group++) {
            group_histograms[group * RADIX + first_digit + j] += local_start;
        }
        local_start += digit_totals[j];
    }
    workgroupBarrier();

    // 3. Sort the block locally by digit.
    for (var row = 0u; row < KEYS_PER_THREAD; row++) {
        let key = keys[row];
        positions[row] += group_histograms[lane.group * RADIX + digit_of(key)];
        staging[positions[row]] = key;
    }
    workgroupBarrier();
    // Local position i of digit d goes to global position (global - local offset of d) + i.
    for (var j = 0u; j < digits_per_thread; j++) {
        group_histograms[first_digit + j] = global_offsets[j] - local_offsets[j];
    }
    workgroupBarrier();

    // 4. Scatter keys: consecutive invocations store consecutive keys of a digit's run.
    var destinations: array<u32, MAX_KEYS_PER_THREAD>;
    for (var k = 0u; k < KEYS_PER_THREAD; k++) {
        let i = k * WORKGROUP_SIZE + ids.local_index;
        let key = staging[i];
        let destination = group_histograms[digit_of(key)] + i;
        destinations[k] = destination;
        if i < valid {
            keys_out[destination] = key;
        }
    }
    workgroupBarrier();

    // 5. Values, through the same permutation.
    for (var row = 0u; row < KEYS_PER_THREAD; row++) {
        let offset = key_offset(lane, row);
        if offset < valid {
            staging[positions[row]] = values_in[start + offset];
        }
    }
    workgroupBarrier();
    for (var k = 0u; k < KEYS_PER_THREAD; k++) {
        let i = k * WORKGROUP_SIZE + ids.local_index;
        if i < valid {
            values_out[destinations[k]] = staging[i];
        }
    }
}

// ---- copy_back: after an odd number of passes (only 1 with 8-bit digits) ----

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy_back(ids: ComputeIds) {
    let i = linear_invocation_id(ids.workgroup, ids.workgroups, ids.local_index, WORKGROUP_SIZE);
    if i < params.count {
        keys_out[i] = keys_in[i];
        values_out[i] = values_in[i];
    }
}

// ---- setup: GPU-resident count -> pass parameters ----

// Written by the host before every sort (through a copy recorded in the same encoder).
struct SortCall {
    count_index: u32,
    // Counts above this are clamped to it (the scratch buffers were sized for it).
    max_count: u32,
    key_bits: u32,
    // BLOCK_SIZE of the sort pipelines.
    block_size: u32,
}

const PASS_SLOT_WORDS: u32 = 64u;
const MAX_PASSES: u32 = 4u;
const DIGIT_BITS: u32 = 8u;

@group(0) @binding(10) var<storage, read> call: SortCall;
@group(0) @binding(11) var<storage, read> count_source: array<u32>;
// Slots 0..MAX_PASSES: PassParams.
@group(0) @binding(12) var<storage, read_write> pass_slots: array<u32>;

@compute @workgroup_size(1)
fn setup() {
    let count = min(count_source[call.count_index], call.max_count);
    let blocks = (count + call.block_size - 1u) / call.block_size;
    for (var p = 0u; p < MAX_PASSES; p++) {
        let shift = p * DIGIT_BITS;
        var bits = 0u;
        if call.key_bits > shift {
            bits = min(DIGIT_BITS, call.key_bits - shift);
        }
        let slot = p * PASS_SLOT_WORDS;
        pass_slots[slot] = count;
        pass_slots[slot + 1u] = blocks;
        pass_slots[slot + 2u] = shift;
        pass_slots[slot + 3u] = (1u << bits) - 1u;
        pass_slots[slot + 4u] = bits;
    }
}
