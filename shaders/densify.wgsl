// Densification (REFERENCE.md, "Densify and prune") by stream compaction, and the periodic
// opacity reset. One kernel per define (each has its own bindings at 0, 1, 2, ...):
//
// MARK: per Gaussian i of the N live ones, decides what survives and writes 0/1 flags into four
//   sections of one array: flags[c * N + i] for c = 0 the original, 1 its clone, 2 its first
//   split child, 3 its second split child. The exclusive scan of that array gives every output
//   Gaussian its destination, in the documented order (survivors, clones, first children,
//   second children), and its total is the new count. Also counts the selected clones and
//   splits (before pruning) for the report.
// SCATTER: per float of one parameter group of one array (parameters or an Adam moment), copies
//   the value to every destination of its Gaussian (moments: zero for clones and children).
// SPLIT_CHILDREN: per (child, parent), overwrites the scattered copy's mean with
//   R(q) s + mean, s ~ Normal(0, scale) per axis, and its log-scale with log(scale / 1.6).
// RESET_OPACITY: opacity = logit(min(sigmoid(opacity), 0.01)), written min(opacity, logit(0.01))
//   (the same value without the round trip through sigmoid, which overflows for very negative
//   logits).
//
// The random numbers for split children are a counter-based hash of (seed, parent, child, axis);
// `crate::reference::densify::split_normal` is the same function in Rust.

#include "common.wgsl"

override WORKGROUP_SIZE: u32 = 256u;

// Children's scales are their parent's divided by 0.8 * N, with N = 2 children.
const SPLIT_SCALE_DIVISOR: f32 = 1.6;

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// A bit test, because WGSL implementations may assume comparisons never see NaN.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

#ifdef MARK
struct MarkUniforms {
    // Live Gaussians before densification (N).
    count: u32,
    grad_threshold: f32,
    // percent_dense * extent: larger Gaussians are split, smaller ones cloned.
    clone_max_scale: f32,
    // 0.1 * extent: larger Gaussians are pruned when pruning by size.
    world_prune_scale: f32,
    min_opacity: f32,
    max_screen_size: f32,
    // 1 when the screen-size threshold is given (and with it the world-size rule).
    prune_by_size: u32,
    _padding: u32,
}

@group(0) @binding(0) var<uniform> mark: MarkUniforms;
@group(0) @binding(1) var<storage, read> log_scales: array<f32>;
@group(0) @binding(2) var<storage, read> opacities: array<f32>;
@group(0) @binding(3) var<storage, read> grad_norm_sum: array<f32>;
@group(0) @binding(4) var<storage, read> visible_count: array<u32>;
@group(0) @binding(5) var<storage, read> max_radius: array<f32>;
@group(0) @binding(6) var<storage, read_write> flags: array<u32>;
// [clones selected, splits selected], before pruning.
@group(0) @binding(7) var<storage, read_write> selected: array<atomic<u32>, 2>;

var<workgroup> workgroup_selected: array<atomic<u32>, 2>;

fn is_pruned(logit_opacity: f32, radius: f32, largest_scale: f32) -> bool {
    var prune = sigmoid(logit_opacity) < mark.min_opacity;
    if mark.prune_by_size != 0u {
        prune = prune || radius > mark.max_screen_size || largest_scale > mark.world_prune_scale;
    }
    return prune;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn mark_gaussians(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    if local_index < 2u {
        atomicStore(&workgroup_selected[local_index], 0u);
    }
    workgroupBarrier();

    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    let n = mark.count;
    if i < n {
        let views = visible_count[i];
        var avg_grad = 0.0;
        if views > 0u {
            avg_grad = grad_norm_sum[i] / f32(views);
        }
        if is_nan(avg_grad) {
            avg_grad = 0.0;
        }
        let log_scale = vec3(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
        let largest_scale = exp(max(log_scale.x, max(log_scale.y, log_scale.z)));
        let high_grad = avg_grad >= mark.grad_threshold;
        let clone = high_grad && largest_scale <= mark.clone_max_scale;
        let split = high_grad && largest_scale > mark.clone_max_scale;

        // Clones and children share the parent's opacity; new Gaussians have screen radius 0.
        let opacity = opacities[i];
        let keep_original = !split && !is_pruned(opacity, max_radius[i], largest_scale);
        let keep_clone = clone && !is_pruned(opacity, 0.0, largest_scale);
        let keep_children = split && !is_pruned(opacity, 0.0, largest_scale / SPLIT_SCALE_DIVISOR);
        flags[i] = u32(keep_original);
        flags[n + i] = u32(keep_clone);
        flags[2u * n + i] = u32(keep_children);
        flags[3u * n + i] = u32(keep_children);
        if clone {
            atomicAdd(&workgroup_selected[0], 1u);
        }
        if split {
            atomicAdd(&workgroup_selected[1], 1u);
        }
    }

    workgroupBarrier();
    if local_index < 2u {
        let count = atomicLoad(&workgroup_selected[local_index]);
        if count > 0u {
            atomicAdd(&selected[local_index], count);
        }
    }
}
#endif

#ifdef SCATTER
struct ScatterUniforms {
    // Live Gaussians before densification (N).
    count: u32,
    // Floats per Gaussian in this parameter group.
    width: u32,
    // 1 for the Adam moments: clones and children start at zero instead of a copy.
    zero_new: u32,
    _padding: u32,
}

@group(0) @binding(0) var<uniform> scatter: ScatterUniforms;
// Exclusive scan of the MARK flags: 4 N + 1 entries, the last one the new count.
@group(0) @binding(1) var<storage, read> offsets: array<u32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn scatter_group(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    // One float per invocation: neighbouring invocations read neighbouring source floats.
    let f = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    let n = scatter.count;
    let width = scatter.width;
    if f >= n * width {
        return;
    }
    let i = f / width;
    let k = f - i * width;
    let value = src[f];
    for (var section = 0u; section < 4u; section++) {
        let slot = section * n + i;
        let destination = offsets[slot];
        if offsets[slot + 1u] == destination {
            continue; // not kept
        }
        dst[destination * width + k] = select(value, 0.0, section > 0u && scatter.zero_new != 0u);
    }
}
#endif

#ifdef SPLIT_CHILDREN
struct ChildUniforms {
    // Live Gaussians before densification (N).
    count: u32,
    // `split_seed_key(seed)`, computed on the CPU.
    seed_key: u32,
    _padding0: u32,
    _padding1: u32,
}

@group(0) @binding(0) var<uniform> children: ChildUniforms;
@group(0) @binding(1) var<storage, read> offsets: array<u32>;
@group(0) @binding(2) var<storage, read> src_means: array<f32>;
@group(0) @binding(3) var<storage, read> src_log_scales: array<f32>;
@group(0) @binding(4) var<storage, read> src_rotations: array<f32>;
@group(0) @binding(5) var<storage, read_write> dst_means: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst_log_scales: array<f32>;

// The PCG-based integer hash of Jarzynski and Olano ("Hash Functions for GPU Rendering", 2020).
fn pcg_hash(input: u32) -> u32 {
    let state = input * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

const UNIT_24_BITS: f32 = 5.9604644775390625e-8; // 2^-24
const TAU: f32 = 6.283185307179586;

// Standard normal for (parent, child, axis): two 24-bit uniforms, then Box-Muller.
fn split_normal(parent: u32, child: u32, axis: u32) -> f32 {
    let stream = (child * 3u + axis) * 2u;
    let base = pcg_hash(children.seed_key ^ parent);
    let u1 = 1.0 - f32(pcg_hash(base ^ stream) >> 8u) * UNIT_24_BITS; // (0, 1]
    let u2 = f32(pcg_hash(base ^ (stream + 1u)) >> 8u) * UNIT_24_BITS; // [0, 1)
    return sqrt(-2.0 * log(u1)) * cos(TAU * u2);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn split_children(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let id = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    let n = children.count;
    if id >= 2u * n {
        return;
    }
    let child = id / n;
    let parent = id - child * n;
    let slot = (2u + child) * n + parent;
    let destination = offsets[slot];
    if offsets[slot + 1u] == destination {
        return; // not split, or pruned
    }

    let scale = exp(vec3(
        src_log_scales[3u * parent],
        src_log_scales[3u * parent + 1u],
        src_log_scales[3u * parent + 2u],
    ));
    let s = scale * vec3(
        split_normal(parent, child, 0u),
        split_normal(parent, child, 1u),
        split_normal(parent, child, 2u),
    );
    let q = normalize(vec4(
        src_rotations[4u * parent],
        src_rotations[4u * parent + 1u],
        src_rotations[4u * parent + 2u],
        src_rotations[4u * parent + 3u],
    ));
    let w = q.x;
    let x = q.y;
    let y = q.z;
    let z = q.w;
    // Rows of R(q).
    let r0 = vec3(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - w * z), 2.0 * (x * z + w * y));
    let r1 = vec3(2.0 * (x * y + w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - w * x));
    let r2 = vec3(2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y));
    let offset = vec3(dot(r0, s), dot(r1, s), dot(r2, s));
    let child_log_scale = log(scale / SPLIT_SCALE_DIVISOR);
    for (var k = 0u; k < 3u; k++) {
        dst_means[3u * destination + k] = src_means[3u * parent + k] + offset[k];
        dst_log_scales[3u * destination + k] = child_log_scale[k];
    }
}
#endif

#ifdef RESET_OPACITY
struct ResetUniforms {
    count: u32,
    // logit(0.01), computed on the CPU in f64.
    max_logit: f32,
    _padding0: u32,
    _padding1: u32,
}

@group(0) @binding(0) var<uniform> reset: ResetUniforms;
@group(0) @binding(1) var<storage, read_write> opacities: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn reset_opacity(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i < reset.count {
        opacities[i] = min(opacities[i], reset.max_logit);
    }
}
#endif
