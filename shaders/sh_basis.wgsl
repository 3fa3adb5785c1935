// Real spherical harmonics up to degree 3, as the reference evaluates them (REFERENCE.md, "SH
// colour"): the basis values and their gradients with respect to the direction. Shared by the
// projection (project.wgsl) and Adam's fused step of the higher bands (adam.wgsl). Include with
// `#include "sh_basis.wgsl"`.

const SH_C0: f32 = 0.28209479177387814;
const SH_C1: f32 = 0.4886025119029199;
const SH_C2_0: f32 = 1.0925484305920792;
const SH_C2_1: f32 = -1.0925484305920792;
const SH_C2_2: f32 = 0.31539156525252005;
const SH_C2_3: f32 = -1.0925484305920792;
const SH_C2_4: f32 = 0.5462742152960396;
const SH_C3_0: f32 = -0.5900435899266435;
const SH_C3_1: f32 = 2.890611442640554;
const SH_C3_2: f32 = -0.4570457994644658;
const SH_C3_3: f32 = 0.3731763325901154;
const SH_C3_4: f32 = -0.4570457994644658;
const SH_C3_5: f32 = 1.445305721320277;
const SH_C3_6: f32 = -0.5900435899266435;

// Basis values up to `degree` (the others are left at 0).
fn sh_basis(degree: u32, d: vec3<f32>) -> array<f32, 16> {
    var b: array<f32, 16>;
    for (var j = 0u; j < 16u; j++) {
        b[j] = 0.0;
    }
    b[0] = SH_C0;
    if degree >= 1u {
        b[1] = -SH_C1 * d.y;
        b[2] = SH_C1 * d.z;
        b[3] = -SH_C1 * d.x;
    }
    let xx = d.x * d.x;
    let yy = d.y * d.y;
    let zz = d.z * d.z;
    if degree >= 2u {
        b[4] = SH_C2_0 * d.x * d.y;
        b[5] = SH_C2_1 * d.y * d.z;
        b[6] = SH_C2_2 * (2.0 * zz - xx - yy);
        b[7] = SH_C2_3 * d.x * d.z;
        b[8] = SH_C2_4 * (xx - yy);
    }
    if degree >= 3u {
        b[9] = SH_C3_0 * d.y * (3.0 * xx - yy);
        b[10] = SH_C3_1 * d.x * d.y * d.z;
        b[11] = SH_C3_2 * d.y * (4.0 * zz - xx - yy);
        b[12] = SH_C3_3 * d.z * (2.0 * zz - 3.0 * xx - 3.0 * yy);
        b[13] = SH_C3_4 * d.x * (4.0 * zz - xx - yy);
        b[14] = SH_C3_5 * d.z * (xx - yy);
        b[15] = SH_C3_6 * d.x * (xx - 3.0 * yy);
    }
    return b;
}

// Gradient of basis function j (1..15) with respect to the direction's components, treated as
// independent (the caller differentiates the normalisation).
fn sh_basis_gradient(j: u32, d: vec3<f32>) -> vec3<f32> {
    let x = d.x;
    let y = d.y;
    let z = d.z;
    switch j {
        case 1u: { return vec3<f32>(0.0, -SH_C1, 0.0); }
        case 2u: { return vec3<f32>(0.0, 0.0, SH_C1); }
        case 3u: { return vec3<f32>(-SH_C1, 0.0, 0.0); }
        case 4u: { return SH_C2_0 * vec3<f32>(y, x, 0.0); }
        case 5u: { return SH_C2_1 * vec3<f32>(0.0, z, y); }
        case 6u: { return SH_C2_2 * vec3<f32>(-2.0 * x, -2.0 * y, 4.0 * z); }
        case 7u: { return SH_C2_3 * vec3<f32>(z, 0.0, x); }
        case 8u: { return SH_C2_4 * vec3<f32>(2.0 * x, -2.0 * y, 0.0); }
        case 9u: { return SH_C3_0 * vec3<f32>(6.0 * x * y, 3.0 * x * x - 3.0 * y * y, 0.0); }
        case 10u: { return SH_C3_1 * vec3<f32>(y * z, x * z, x * y); }
        case 11u: {
            return SH_C3_2 * vec3<f32>(-2.0 * x * y, 4.0 * z * z - x * x - 3.0 * y * y, 8.0 * y * z);
        }
        case 12u: {
            return SH_C3_3 * vec3<f32>(-6.0 * x * z, -6.0 * y * z, 6.0 * z * z - 3.0 * x * x - 3.0 * y * y);
        }
        case 13u: {
            return SH_C3_4 * vec3<f32>(4.0 * z * z - 3.0 * x * x - y * y, -2.0 * x * y, 8.0 * x * z);
        }
        case 14u: { return SH_C3_5 * vec3<f32>(2.0 * x * z, -2.0 * y * z, x * x - y * y); }
        case 15u: { return SH_C3_6 * vec3<f32>(3.0 * x * x - 3.0 * y * y, -6.0 * x * y, 0.0); }
        default: { return vec3<f32>(0.0); }
    }
}

// Basis value j (1..15) at unit direction d, 0 above `degree`: `sh_basis`'s polynomials, every
// one evaluated and then selected, so that it stays in registers where neighbouring threads
// take different j (indexing the array of `sh_basis` by a per-thread j puts the array in local
// memory). The f64 tests of both (the projection's and Adam's) hold them to the reference.
fn sh_basis_value(degree: u32, j: u32, d: vec3<f32>) -> f32 {
    if j >= (degree + 1u) * (degree + 1u) {
        return 0.0;
    }
    let x = d.x;
    let y = d.y;
    let z = d.z;
    let xx = x * x;
    let yy = y * y;
    let zz = z * z;
    var b = -SH_C1 * y;
    b = select(b, SH_C1 * z, j == 2u);
    b = select(b, -SH_C1 * x, j == 3u);
    b = select(b, SH_C2_0 * x * y, j == 4u);
    b = select(b, SH_C2_1 * y * z, j == 5u);
    b = select(b, SH_C2_2 * (2.0 * zz - xx - yy), j == 6u);
    b = select(b, SH_C2_3 * x * z, j == 7u);
    b = select(b, SH_C2_4 * (xx - yy), j == 8u);
    b = select(b, SH_C3_0 * y * (3.0 * xx - yy), j == 9u);
    b = select(b, SH_C3_1 * x * y * z, j == 10u);
    b = select(b, SH_C3_2 * y * (4.0 * zz - xx - yy), j == 11u);
    b = select(b, SH_C3_3 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy), j == 12u);
    b = select(b, SH_C3_4 * x * (4.0 * zz - xx - yy), j == 13u);
    b = select(b, SH_C3_5 * z * (xx - yy), j == 14u);
    b = select(b, SH_C3_6 * x * (xx - 3.0 * yy), j == 15u);
    return b;
}

// Band factors. The gradient of the higher SH bands is an outer product: dL/d(coefficient j,
// channel c) = basis_j(view direction) * dL/d(colour_c before the clamp). The projection's
// backward stores it in that form, two vec4s per Gaussian i:
//   [2i]     = (dL/d(colour before the clamp), 0): zero where the forward culled i, and per
//              channel where the colour clamp cut the gradient;
//   [2i + 1] = (unit view direction, evaluated SH degree as a float).
// 32 bytes instead of 45 floats, and whoever needs a coefficient's gradient forms it here.
fn band_gradient(colour_grad: vec4<f32>, direction: vec4<f32>, j: u32) -> vec3<f32> {
    return sh_basis_value(u32(direction.w), j, direction.xyz) * colour_grad.xyz;
}
