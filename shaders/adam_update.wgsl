// One Adam update, exactly torch.optim.Adam's (no weight decay, no AMSGrad), shared by the
// optimiser kernel (adam.wgsl) and the projection backward that applies it in place of writing
// gradients (project.wgsl, FUSED_ADAM), so both compute the same floats:
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   param -= step_size * m / (sqrt(v) / sqrt_bias2 + eps)
// with step_size = lr / (1 - beta1^t) and sqrt_bias2 = sqrt(1 - beta2^t) computed on the CPU in
// f64 (beta2^t in f32 would lose most digits of 1 - beta2^t early in training). Every operation
// is element-wise: a vec4 is four independent updates.

// One parameter group's values for one update (gpu::adam::AdamUniforms, same field order).
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

struct AdamResult {
    exp_avg: vec4<f32>,
    exp_avg_sq: vec4<f32>,
    param: vec4<f32>,
}

fn adam_update(adam: AdamUniforms, g: vec4<f32>, exp_avg: vec4<f32>, exp_avg_sq: vec4<f32>, param: vec4<f32>) -> AdamResult {
    let m = adam.beta1 * exp_avg + adam.one_minus_beta1 * g;
    let v = adam.beta2 * exp_avg_sq + adam.one_minus_beta2 * g * g;
    let denom = sqrt(v) / adam.sqrt_bias2 + adam.eps;
    return AdamResult(m, v, param - adam.step_size * (m / denom));
}
