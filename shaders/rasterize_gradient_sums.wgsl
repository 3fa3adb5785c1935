// How the backward pass of rasterize.wgsl sums one splat's per-pixel gradients over a tile:
// the subgroup reduce-scatter and the five variants of `gather_splat_gradient` / `flush_batch`
// (atomics with wide subgroups, narrow subgroups, or none; deterministic with or without wide
// subgroups). With subgroups and atomics `add_splat_gradient` does the work, and the
// barrier-free walk of SUBGROUP_SKIPS calls it directly. Only for `#include` by rasterize.wgsl,
// whose declarations it uses (SplatGrad, BackwardIds, backward_targets, add_to_grad_2d,
// intersection_grads, BACKWARD_BATCH).

#ifdef WIDE_SUBGROUPS
// One step of the reduce-scatter: lanes whose `mask` bit is clear keep `low`, the others keep
// `high`, and each receives its partner's copy of the value it keeps.
fn exchange(low: f32, high: f32, upper: bool, mask: u32) -> f32 {
    return select(low, high, upper) + subgroupShuffleXor(select(high, low, upper), mask);
}

// Up to two of the subgroup's nine sums held by one lane after `reduce_scatter`, and which of
// the nine values they are (NO_VALUE: none).
struct ScatteredSums {
    values: vec2<f32>,
    indices: vec2<u32>,
}

const NO_VALUE: u32 = 16u;

// The subgroup's sums of the nine values of `grad`, spread over the lanes (subgroups of 8 lanes
// or more). Halving steps over lane bits 0-3 (9 -> 5 -> 3 -> 2 -> 1 values per lane, 11
// shuffles), then a plain butterfly over the higher bits; with 8 lanes the last halving step
// has no partner, and each lane keeps two sums.
fn reduce_scatter(grad: SplatGrad, lane: u32, size: u32) -> ScatteredSums {
    let b0 = (lane & 1u) != 0u;
    let a0 = exchange(grad.mean.x, grad.opacity, b0, 1u);
    let a1 = exchange(grad.mean.y, grad.colour.x, b0, 1u);
    let a2 = exchange(grad.conic.x, grad.colour.y, b0, 1u);
    let a3 = exchange(grad.conic.y, grad.colour.z, b0, 1u);
    let a4 = exchange(grad.conic.z, 0.0, b0, 1u);
    let b1 = (lane & 2u) != 0u;
    let c0 = exchange(a0, a3, b1, 2u);
    let c1 = exchange(a1, a4, b1, 2u);
    let c2 = exchange(a2, 0.0, b1, 2u);
    let b2 = (lane & 4u) != 0u;
    let d0 = exchange(c0, c2, b2, 4u);
    let d1 = exchange(c1, 0.0, b2, 4u);
    if size < 16u {
        return ScatteredSums(
            vec2<f32>(d0, d1),
            vec2<u32>(scattered_value_index(lane, 0u), scattered_value_index(lane, 1u)),
        );
    }
    let b3 = (lane >> 3u) & 1u;
    var total = exchange(d0, d1, b3 != 0u, 8u);
    for (var mask = 16u; mask < size; mask <<= 1u) {
        total += subgroupShuffleXor(total, mask);
    }
    // Lanes 16.. hold copies of lanes 0-15.
    let index = select(NO_VALUE, scattered_value_index(lane, b3), lane < 16u);
    return ScatteredSums(vec2<f32>(total, 0.0), vec2<u32>(index, NO_VALUE));
}

// Which of the nine values a lane with bits 0-2 of `lane` and last-step half `b3` holds.
// Step 1 keeps 5 of (0-4 | 5-8 + padding), step 2 3 of (0-2 | 3-4 + padding), step 3 2 of
// (0-1 | 2 + padding), step 4 one of two.
fn scattered_value_index(lane: u32, b3: u32) -> u32 {
    let p2 = 2u * ((lane >> 2u) & 1u) + b3;
    let p1 = 3u * ((lane >> 1u) & 1u) + p2;
    let p0 = 5u * (lane & 1u) + p1;
    if p2 == 3u || p1 >= 5u || p0 >= GRAD_2D_STRIDE {
        return NO_VALUE;
    }
    return p0;
}
#endif

// ----- How one splat's per-pixel gradients are gathered: five variants -----

#ifdef DETERMINISTIC
#ifdef WIDE_SUBGROUPS
// Per batch splat and subgroup, the subgroup's nine sums.
override MAX_SUBGROUPS: u32 = 32u;
override SUBGROUP_SUMS: u32 = 4608u; // BACKWARD_BATCH * MAX_SUBGROUPS * 9
var<workgroup> subgroup_sums: array<f32, SUBGROUP_SUMS>;

fn gather_splat_gradient(j: u32, grad: SplatGrad, contributes: bool, ids: BackwardIds) {
    var sums = ScatteredSums(vec2<f32>(0.0), vec2<u32>(NO_VALUE));
    if subgroupAny(contributes) {
        sums = reduce_scatter(grad, ids.lane, ids.subgroup_size);
    } else {
        // Zeros where the reduce-scatter would have put its sums.
        sums = ScatteredSums(vec2<f32>(0.0), reduced_indices(ids.lane, ids.subgroup_size));
    }
    let base = (j * MAX_SUBGROUPS + ids.subgroup) * GRAD_2D_STRIDE;
    for (var h = 0u; h < 2u; h++) {
        if sums.indices[h] < GRAD_2D_STRIDE {
            subgroup_sums[base + sums.indices[h]] = sums.values[h];
        }
    }
}

// The `indices` of `reduce_scatter` without the shuffles.
fn reduced_indices(lane: u32, size: u32) -> vec2<u32> {
    if size < 16u {
        return vec2<u32>(scattered_value_index(lane, 0u), scattered_value_index(lane, 1u));
    }
    let index = select(NO_VALUE, scattered_value_index(lane, (lane >> 3u) & 1u), lane < 16u);
    return vec2<u32>(index, NO_VALUE);
}

// After a batch: each (splat, value) summed over the subgroups in index order.
fn flush_batch(in_batch: u32, ids: BackwardIds) {
    workgroupBarrier();
    for (var u = ids.local_index; u < in_batch * GRAD_2D_STRIDE; u += TILE_THREADS) {
        let j = u / GRAD_2D_STRIDE;
        let c = u - j * GRAD_2D_STRIDE;
        var sum = 0.0;
        for (var s = 0u; s < ids.subgroup_count; s++) {
            sum += subgroup_sums[(j * MAX_SUBGROUPS + s) * GRAD_2D_STRIDE + c];
        }
        intersection_grads[backward_targets[j] * GRAD_2D_STRIDE + c] = sum;
    }
}
#else
// A two-level tree per splat: 16 groups of 16 pixels, then the 16 group sums, in fixed order.
var<workgroup> pixel_grads: array<f32, 2304>; // TILE_THREADS * 9
var<workgroup> group_sums: array<f32, 144>; // 16 * 9

fn gather_splat_gradient(j: u32, grad: SplatGrad, contributes: bool, ids: BackwardIds) {
    for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
        pixel_grads[ids.local_index * GRAD_2D_STRIDE + c] = grad_value(grad, c);
    }
    workgroupBarrier();
    if ids.local_index < 16u * GRAD_2D_STRIDE {
        let group = ids.local_index / GRAD_2D_STRIDE;
        let c = ids.local_index - group * GRAD_2D_STRIDE;
        var sum = 0.0;
        for (var p = group * 16u; p < group * 16u + 16u; p++) {
            sum += pixel_grads[p * GRAD_2D_STRIDE + c];
        }
        group_sums[group * GRAD_2D_STRIDE + c] = sum;
    }
    workgroupBarrier();
    if ids.local_index < GRAD_2D_STRIDE {
        var sum = 0.0;
        for (var group = 0u; group < 16u; group++) {
            sum += group_sums[group * GRAD_2D_STRIDE + ids.local_index];
        }
        intersection_grads[backward_targets[j] * GRAD_2D_STRIDE + ids.local_index] = sum;
    }
}

fn flush_batch(in_batch: u32, ids: BackwardIds) {}
#endif
#else
#ifdef SUBGROUPS
fn gather_splat_gradient(j: u32, grad: SplatGrad, contributes: bool, ids: BackwardIds) {
    add_splat_gradient(backward_targets[j], grad, contributes, ids);
}

// The subgroup's sum of one splat's gradient, added to Gaussian `id`'s nine sums.
fn add_splat_gradient(id: u32, grad: SplatGrad, contributes: bool, ids: BackwardIds) {
    if !subgroupAny(contributes) {
        return;
    }
    let base = GRAD_2D_STRIDE * id;
#ifdef WIDE_SUBGROUPS
    let sums = reduce_scatter(grad, ids.lane, ids.subgroup_size);
    for (var h = 0u; h < 2u; h++) {
        if sums.indices[h] < GRAD_2D_STRIDE {
            add_to_grad_2d(base + sums.indices[h], sums.values[h]);
        }
    }
#else
    let mean = subgroupAdd(grad.mean);
    let conic = subgroupAdd(grad.conic);
    let opacity = subgroupAdd(grad.opacity);
    let colour = subgroupAdd(grad.colour);
    if ids.lane == 0u {
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
#endif
}

fn flush_batch(in_batch: u32, ids: BackwardIds) {}
#else
// Per-batch accumulators in workgroup memory, GRAD_2D_STRIDE per batch slot, as f32 bits.
var<workgroup> batch_grads: array<atomic<u32>, 2304>; // 256 (BACKWARD_BATCH) * GRAD_2D_STRIDE

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

fn gather_splat_gradient(j: u32, grad: SplatGrad, contributes: bool, ids: BackwardIds) {
    if !contributes {
        return;
    }
    let base = GRAD_2D_STRIDE * j;
    for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
        add_to_batch_grad(base + c, grad_value(grad, c));
    }
}

fn flush_batch(in_batch: u32, ids: BackwardIds) {
    workgroupBarrier();
    if ids.local_index < in_batch {
        let base = GRAD_2D_STRIDE * backward_targets[ids.local_index];
        for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
            let value = bitcast<f32>(atomicLoad(&batch_grads[GRAD_2D_STRIDE * ids.local_index + c]));
            if value != 0.0 {
                add_to_grad_2d(base + c, value);
            }
        }
    }
}
#endif
#endif

// Clears what the next batch accumulates into (only the per-batch workgroup slots need it).
fn start_batch_slot(slot: u32) {
#ifndef DETERMINISTIC
#ifndef SUBGROUPS
    for (var c = 0u; c < GRAD_2D_STRIDE; c++) {
        atomicStore(&batch_grads[GRAD_2D_STRIDE * slot + c], 0u);
    }
#endif
#endif
}
