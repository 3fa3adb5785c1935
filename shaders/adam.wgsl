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
//
// `adam_step_band_factors` updates the higher SH bands from their gradient's factors
// (sh_basis.wgsl, "Band factors") instead of a gradient buffer: the projection backward then
// does not write the 45-float gradient row per Gaussian, nor does Adam read it. Each thread
// still takes one vec4 of the parameters and forms its four gradients (one thread per
// coefficient and its three floats took 0.193 ms per step against 0.128, BENCHMARKS.md).

#include "common.wgsl"
#include "sh_basis.wgsl"

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
    // The group's width: floats per Gaussian.
    width: u32,
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
// `adam_step_band_factors` only (instead of `grads`): the band factors of the step's backward.
@group(0) @binding(5) var<storage, read> band_factors: array<vec4<f32>>;
@group(1) @binding(0) var<storage, read> updates: array<AdamUniforms, 6>;

override WORKGROUP_SIZE: u32 = 256u;

// Updates the group's vec4 number i with gradient g.
fn update_vec4(adam: AdamUniforms, i: u32, g: vec4<f32>) {
    let old_m = exp_avg[i];
    let old_v = exp_avg_sq[i];
    let old_param = params[i];
    let m = adam.beta1 * old_m + adam.one_minus_beta1 * g;
    let v = adam.beta2 * old_v + adam.one_minus_beta2 * g * g;
    let denom = sqrt(v) / adam.sqrt_bias2 + adam.eps;
    let param = old_param - adam.step_size * (m / denom);
    // Lanes at or past `count` (only in the group's last vec4) keep their values.
    let first = 4u * i;
    let live = vec4<bool>(first < adam.count, first + 1u < adam.count, first + 2u < adam.count, first + 3u < adam.count);
    exp_avg[i] = select(old_m, m, live);
    exp_avg_sq[i] = select(old_v, v, live);
    params[i] = select(old_param, param, live);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let adam = updates[group.index];
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i < (adam.count + 3u) / 4u {
        update_vec4(adam, i, grads[i]);
    }
}

// The higher SH bands, their gradient formed from the band factors: float f of the group is
// channel c of coefficient j of Gaussian f / width (coefficient-major rows of `width` floats).
@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step_band_factors(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let adam = updates[group.index];
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i >= (adam.count + 3u) / 4u {
        return;
    }
    var g = vec4<f32>(0.0);
    for (var lane = 0u; lane < 4u; lane++) {
        // Lanes past `count` repeat the last float (update_vec4 leaves them as they were).
        let f = min(4u * i + lane, adam.count - 1u);
        let gaussian = f / adam.width;
        let row = f - gaussian * adam.width;
        let j = row / 3u + 1u;
        let c = row % 3u;
        let d_coeff = band_gradient(band_factors[2u * gaussian], band_factors[2u * gaussian + 1u], j);
        g[lane] = d_coeff[c];
    }
    update_vec4(adam, i, g);
}
