// Workgroup-level building blocks shared by the prefix scan (scan.wgsl) and the radix sort
// (radix_sort.wgsl): the invocation ids every kernel takes, an exclusive prefix sum over the
// invocations of one workgroup, and the folding of large dispatch sizes into two dimensions.
//
// Both kernels order the invocations of a workgroup "logically": with subgroups, invocation
// `subgroup_id * subgroup_size + subgroup_invocation_id` (so a subgroup scan follows that order
// whatever numbering the driver gives `local_invocation_index`); without, the local index.
// The workgroup scan is then: with subgroups, a subgroup exclusive scan plus the totals of the
// earlier subgroups (each invocation adds them up itself: at most a few dozen broadcast reads of
// workgroup memory, one barrier); without, a Hillis-Steele scan in workgroup memory (log2 of the
// workgroup size barrier-separated steps). The subgroup path assumes full subgroups, which the
// host guarantees by choosing workgroup sizes that are multiples of the largest subgroup size.
//
// The includer must declare `override WORKGROUP_SIZE: u32` (at most MAX_WORKGROUP_SIZE). (naga 29
// takes subgroup builtins without, and rejects, WGSL's `enable subgroups;`.)

const MAX_WORKGROUP_SIZE: u32 = 256u;

// The builtins every scan/sort kernel takes (one struct, so the entry points read the same with
// and without subgroups).
struct ComputeIds {
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
#ifdef SUBGROUPS
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroup_count: u32,
    @builtin(subgroup_invocation_id) subgroup_lane: u32,
    @builtin(subgroup_size) subgroup_size: u32,
#endif
}

// Where an invocation sits in its workgroup, in the logical order described above. `group` is
// the subgroup (or, for the sort's fallback, a virtual group of invocations).
struct Lane {
    index: u32,
    group: u32,
    lane: u32,
    group_size: u32,
    group_count: u32,
}

// The logical position of an invocation; `fallback_group_size` gives the size of the virtual
// groups used when there are no subgroups.
fn lane_of(ids: ComputeIds, fallback_group_size: u32) -> Lane {
#ifdef SUBGROUPS
    return Lane(
        ids.subgroup * ids.subgroup_size + ids.subgroup_lane,
        ids.subgroup,
        ids.subgroup_lane,
        ids.subgroup_size,
        ids.subgroup_count,
    );
#else
    return Lane(
        ids.local_index,
        ids.local_index / fallback_group_size,
        ids.local_index % fallback_group_size,
        fallback_group_size,
        WORKGROUP_SIZE / fallback_group_size,
    );
#endif
}

struct WorkgroupScan {
    // Sum of the values of the invocations before this one (logical order).
    exclusive: u32,
    // Sum over the whole workgroup.
    total: u32,
}

#ifdef SUBGROUPS
var<workgroup> subgroup_totals: array<u32, MAX_WORKGROUP_SIZE>;

// Exclusive prefix sum of `value` over the workgroup. Call from uniform control flow.
fn workgroup_exclusive_scan(value: u32, lane: Lane) -> WorkgroupScan {
    let within = subgroupExclusiveAdd(value);
    let subgroup_total = subgroupAdd(value);
    if lane.lane == 0u {
        subgroup_totals[lane.group] = subgroup_total;
    }
    workgroupBarrier();
    var before = 0u;
    var total = 0u;
    for (var group = 0u; group < lane.group_count; group++) {
        let t = subgroup_totals[group];
        if group < lane.group {
            before += t;
        }
        total += t;
    }
    // The next call overwrites subgroup_totals: everybody must have read it first.
    workgroupBarrier();
    return WorkgroupScan(before + within, total);
}
#else
var<workgroup> scan_ping: array<u32, MAX_WORKGROUP_SIZE>;
var<workgroup> scan_pong: array<u32, MAX_WORKGROUP_SIZE>;

// Exclusive prefix sum of `value` over the workgroup. Call from uniform control flow.
fn workgroup_exclusive_scan(value: u32, lane: Lane) -> WorkgroupScan {
    // Inclusive Hillis-Steele scan, reading one buffer and writing the other at each step.
    scan_ping[lane.index] = value;
    workgroupBarrier();
    var from_ping = true;
    for (var stride = 1u; stride < WORKGROUP_SIZE; stride *= 2u) {
        if from_ping {
            var sum = scan_ping[lane.index];
            if lane.index >= stride {
                sum += scan_ping[lane.index - stride];
            }
            scan_pong[lane.index] = sum;
        } else {
            var sum = scan_pong[lane.index];
            if lane.index >= stride {
                sum += scan_pong[lane.index - stride];
            }
            scan_ping[lane.index] = sum;
        }
        from_ping = !from_ping;
        workgroupBarrier();
    }
    var inclusive = 0u;
    var total = 0u;
    if from_ping {
        inclusive = scan_ping[lane.index];
        total = scan_ping[WORKGROUP_SIZE - 1u];
    } else {
        inclusive = scan_pong[lane.index];
        total = scan_pong[WORKGROUP_SIZE - 1u];
    }
    workgroupBarrier();
    return WorkgroupScan(inclusive - value, total);
}
#endif
