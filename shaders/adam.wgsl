// Adam optimiser step, exactly torch.optim.Adam (no weight decay, no AMSGrad) as the reference
// uses it. One dispatch per parameter group updates its first `count` floats:
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   param -= step_size * m / (sqrt(v) / sqrt_bias2 + eps)
// with step_size = lr / (1 - beta1^t) and sqrt_bias2 = sqrt(1 - beta2^t) computed on the CPU in
// f64 (beta2^t in f32 would lose most digits of 1 - beta2^t early in training).
//
// The kernel is memory-bound, so the bulk of each group goes through the VEC4 variant (one vec4
// per invocation, floats [0, 4 * floor(count / 4))); the scalar variant finishes the at most
// three floats left over. Every operation below is element-wise, so one body serves both.

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

#ifdef VEC4
alias Chunk = vec4<f32>;
#else
alias Chunk = f32;
#endif

@group(0) @binding(0) var<uniform> adam: AdamUniforms;
@group(0) @binding(1) var<storage, read_write> params: array<Chunk>;
@group(0) @binding(2) var<storage, read> grads: array<Chunk>;
@group(0) @binding(3) var<storage, read_write> exp_avg: array<Chunk>;
@group(0) @binding(4) var<storage, read_write> exp_avg_sq: array<Chunk>;

override WORKGROUP_SIZE: u32 = 256u;

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let id = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
#ifdef VEC4
    // Chunk index = vec4 index.
    let i = id;
    let end = adam.count / 4u;
#else
    // Chunk index = float index, starting after the last whole vec4.
    let i = (adam.count / 4u) * 4u + id;
    let end = adam.count;
#endif
    if i >= end {
        return;
    }
    let g = grads[i];
    let m = adam.beta1 * exp_avg[i] + adam.one_minus_beta1 * g;
    let v = adam.beta2 * exp_avg_sq[i] + adam.one_minus_beta2 * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    let denom = sqrt(v) / adam.sqrt_bias2 + adam.eps;
    params[i] = params[i] - adam.step_size * (m / denom);
}
