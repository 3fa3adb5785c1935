// The projection backward's outputs with FUSED_ADAM (included by project.wgsl): instead of
// storing dL/d(raw parameter), each gradient is consumed at once by the Adam update of its
// parameter (adam_update.wgsl, the same floats as adam.wgsl). On a plain training step this
// saves writing every gradient, reading it back, and reading the parameters a second time
// (gpu::raster, `ParamGradients::AdamStep`). Every parameter of every live Gaussian is updated,
// culled ones with a zero gradient, as torch's Adam updates the whole tensor.
//
// Each function updates only the parameters of the Gaussian (or the float) it is given, after
// the kernel has read them for that Gaussian's backward: no other invocation reads them.

#include "adam_update.wgsl"

// Adam's first moments, same layout as the parameters.
@group(0) @binding(14) var<storage, read_write> exp_avg_means: array<f32>;
@group(0) @binding(15) var<storage, read_write> exp_avg_log_scales: array<f32>;
@group(0) @binding(16) var<storage, read_write> exp_avg_rotations: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read_write> exp_avg_logit_opacities: array<f32>;
@group(0) @binding(18) var<storage, read_write> exp_avg_sh_dc: array<f32>;
@group(0) @binding(19) var<storage, read_write> exp_avg_sh_rest: array<f32>;
// Second moments.
@group(0) @binding(23) var<storage, read_write> exp_avg_sq_means: array<f32>;
@group(0) @binding(24) var<storage, read_write> exp_avg_sq_log_scales: array<f32>;
@group(0) @binding(25) var<storage, read_write> exp_avg_sq_rotations: array<vec4<f32>>;
@group(0) @binding(26) var<storage, read_write> exp_avg_sq_logit_opacities: array<f32>;
@group(0) @binding(27) var<storage, read_write> exp_avg_sq_sh_dc: array<f32>;
@group(0) @binding(28) var<storage, read_write> exp_avg_sq_sh_rest: array<f32>;
// This update's values per group, in ParamGroup::ALL order (gpu::adam::AdamUpdate).
@group(1) @binding(0) var<storage, read> adam_updates: array<AdamUniforms, 6>;

const GROUP_MEANS: u32 = 0u;
const GROUP_LOG_SCALES: u32 = 1u;
const GROUP_ROTATIONS: u32 = 2u;
const GROUP_OPACITIES: u32 = 3u;
const GROUP_SH_DC: u32 = 4u;
const GROUP_SH_REST: u32 = 5u;

fn output_means(i: u32, g: vec3<f32>) {
    let at = 3u * i;
    let m = vec3<f32>(exp_avg_means[at], exp_avg_means[at + 1u], exp_avg_means[at + 2u]);
    let v = vec3<f32>(exp_avg_sq_means[at], exp_avg_sq_means[at + 1u], exp_avg_sq_means[at + 2u]);
    let p = vec3<f32>(means[at], means[at + 1u], means[at + 2u]);
    let r = adam_update(adam_updates[GROUP_MEANS], vec4<f32>(g, 0.0), vec4<f32>(m, 0.0), vec4<f32>(v, 0.0), vec4<f32>(p, 0.0));
    for (var k = 0u; k < 3u; k++) {
        exp_avg_means[at + k] = r.exp_avg[k];
        exp_avg_sq_means[at + k] = r.exp_avg_sq[k];
        means[at + k] = r.param[k];
    }
}

fn output_log_scales(i: u32, g: vec3<f32>) {
    let at = 3u * i;
    let m = vec3<f32>(exp_avg_log_scales[at], exp_avg_log_scales[at + 1u], exp_avg_log_scales[at + 2u]);
    let v = vec3<f32>(exp_avg_sq_log_scales[at], exp_avg_sq_log_scales[at + 1u], exp_avg_sq_log_scales[at + 2u]);
    let p = vec3<f32>(log_scales[at], log_scales[at + 1u], log_scales[at + 2u]);
    let r = adam_update(adam_updates[GROUP_LOG_SCALES], vec4<f32>(g, 0.0), vec4<f32>(m, 0.0), vec4<f32>(v, 0.0), vec4<f32>(p, 0.0));
    for (var k = 0u; k < 3u; k++) {
        exp_avg_log_scales[at + k] = r.exp_avg[k];
        exp_avg_sq_log_scales[at + k] = r.exp_avg_sq[k];
        log_scales[at + k] = r.param[k];
    }
}

fn output_rotation(i: u32, g: vec4<f32>) {
    let r = adam_update(adam_updates[GROUP_ROTATIONS], g, exp_avg_rotations[i], exp_avg_sq_rotations[i], rotations[i]);
    exp_avg_rotations[i] = r.exp_avg;
    exp_avg_sq_rotations[i] = r.exp_avg_sq;
    rotations[i] = r.param;
}

fn output_logit_opacity(i: u32, g: f32) {
    let r = adam_update(adam_updates[GROUP_OPACITIES], vec4<f32>(g), vec4<f32>(exp_avg_logit_opacities[i]), vec4<f32>(exp_avg_sq_logit_opacities[i]), vec4<f32>(logit_opacities[i]));
    exp_avg_logit_opacities[i] = r.exp_avg.x;
    exp_avg_sq_logit_opacities[i] = r.exp_avg_sq.x;
    logit_opacities[i] = r.param.x;
}

fn output_sh_dc(i: u32, g: vec3<f32>) {
    let at = 3u * i;
    let m = vec3<f32>(exp_avg_sh_dc[at], exp_avg_sh_dc[at + 1u], exp_avg_sh_dc[at + 2u]);
    let v = vec3<f32>(exp_avg_sq_sh_dc[at], exp_avg_sq_sh_dc[at + 1u], exp_avg_sq_sh_dc[at + 2u]);
    let p = vec3<f32>(sh_dc[at], sh_dc[at + 1u], sh_dc[at + 2u]);
    let r = adam_update(adam_updates[GROUP_SH_DC], vec4<f32>(g, 0.0), vec4<f32>(m, 0.0), vec4<f32>(v, 0.0), vec4<f32>(p, 0.0));
    for (var k = 0u; k < 3u; k++) {
        exp_avg_sh_dc[at + k] = r.exp_avg[k];
        exp_avg_sq_sh_dc[at + k] = r.exp_avg_sq[k];
        sh_dc[at + k] = r.param[k];
    }
}

// `index`: the float's, in the group's contiguous layout (the kernel's copy-out loop walks the
// workgroup's block of rows, so these accesses are coalesced).
fn output_sh_rest(index: u32, g: f32) {
    let r = adam_update(adam_updates[GROUP_SH_REST], vec4<f32>(g), vec4<f32>(exp_avg_sh_rest[index]), vec4<f32>(exp_avg_sq_sh_rest[index]), vec4<f32>(sh_rest[index]));
    exp_avg_sh_rest[index] = r.exp_avg.x;
    exp_avg_sq_sh_rest[index] = r.exp_avg_sq.x;
    sh_rest[index] = r.param.x;
}
