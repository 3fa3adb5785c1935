// Adam optimiser step, exactly torch.optim.Adam (no weight decay, no AMSGrad) as the reference
// uses it. One dispatch per parameter group updates its first `count` floats:
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   param -= step_size * m / (sqrt(v) / sqrt_bias2 + eps)
// with step_size = lr / (1 - beta1^t) and sqrt_bias2 = sqrt(1 - beta2^t) computed on the CPU in
// f64 (beta2^t in f32 would lose most digits of 1 - beta2^t early in training).
//
// The kernel is memory-bound: one vec4 per invocation. The group's last vec4 may reach past
// `count` (the buffers are padded to whole vec4s); its floats past `count` are written back
// unchanged. Every operation is element-wise, so a vec4 is four independent updates.
//
// Bindings: group 0 is the parameter group's (its index and its four arrays, fixed while the
// buffers are); group 1 the values of this update for all six groups, in a buffer of their own
// per update (so several updates in one encoder each see theirs, without a copy command).

#include "common.wgsl"

struct AdamUniforms {
    step_size: f32,
    sqrt_bias2: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    // Floats of the group to update: live Gaussians times the group's width.
    count: u32,
}

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
    var m = adam.beta1 * old_m + adam.one_minus_beta1 * g;
    var v = adam.beta2 * old_v + adam.one_minus_beta2 * g * g;
    let denom = sqrt(v) / adam.sqrt_bias2 + adam.eps;
    var param = old_param - adam.step_size * (m / denom);
    // Lanes at or past `count` (only in the group's last vec4) keep their values.
    let first = 4u * i;
    let live = vec4<bool>(first < adam.count, first + 1u < adam.count, first + 2u < adam.count, first + 3u < adam.count);
    m = select(old_m, m, live);
    v = select(old_v, v, live);
    param = select(old_param, param, live);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    params[i] = param;
}
