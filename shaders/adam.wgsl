// Adam optimiser step (adam_update.wgsl has the formula). One dispatch per parameter group
// updates its first `count` floats.
//
// The kernel is memory-bound: one vec4 per invocation. The group's last vec4 may reach past
// `count` (the buffers are padded to whole vec4s); its floats past `count` are written back
// unchanged. Every operation is element-wise, so a vec4 is four independent updates.
//
// Bindings: group 0 is the parameter group's (its index and its four arrays, fixed while the
// buffers are); group 1 the values of this update for all six groups, in a buffer of their own
// per update (so several updates in one encoder each see theirs, without a copy command).

#include "common.wgsl"
#include "adam_update.wgsl"

struct AdamGroup {
    // Index of this parameter group in `updates` (ParamGroup::ALL order).
    index: u32,
}

@group(0) @binding(0) var<uniform> group: AdamGroup;
@group(0) @binding(1) var<storage, read_write> params: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grads: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;
@group(1) @binding(0) var<storage, read> updates: array<AdamUniforms, 6>;

override WORKGROUP_SIZE: u32 = 256u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let adam = updates[group.index];
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i >= (adam.count + 3u) / 4u {
        return;
    }
    let g = grads[i];
    let old_m = exp_avg[i];
    let old_v = exp_avg_sq[i];
    let old_param = params[i];
    let updated = adam_update(adam, g, old_m, old_v, old_param);
    // Lanes at or past `count` (only in the group's last vec4) keep their values.
    let first = 4u * i;
    let live = vec4<bool>(first < adam.count, first + 1u < adam.count, first + 2u < adam.count, first + 3u < adam.count);
    exp_avg[i] = select(old_m, updated.exp_avg, live);
    exp_avg_sq[i] = select(old_v, updated.exp_avg_sq, live);
    params[i] = select(old_param, updated.param, live);
}
