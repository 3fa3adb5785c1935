// Projection of 3D Gaussians to screen-space splats, forward and backward
// (ARCHITECTURE.md, "The rasterizer (forward)" steps 1-11, and "(backward)").
//
// Key choices:
// - One thread per Gaussian, workgroups of 256, 1-D dispatch folded into 2-D for big clouds.
// - The forward writes only what later kernels read: the 48-byte `Splat` the rasterize kernels
//   gather per tile intersection, the depth-sort key and id, the tile rectangle and how many of
//   its tiles the splat reaches (binning), and the public screen radius. The backward
//   RECOMPUTES the intermediates of the projection (camera-space mean, rotation, Jacobian, ...)
//   from the raw parameters instead of storing them: that is ~30 floats per Gaussian the
//   forward would have to write and the backward to read, versus a few hundred FLOPs, and this
//   kernel is memory-bound. The forward's cull decision is NOT recomputed: the backward treats
//   exactly the Gaussians with `radii[i] > 0` as visible. Both passes call the same functions,
//   so the recomputed values match the forward's; only the continuous "clamped" decisions
//   (Jacobian clamp, colour clamp) are re-taken, which can differ only if a compiler contracts
//   the same expression differently in the two pipelines, exactly at a clamp boundary.
// - The 2D covariance is computed as A A^T + 0.3 I with A = J W R S (2x3), so a, c and
//   det(A A^T) = |A_0 x A_1|^2 (Lagrange's identity) are sums of squares: no cancellation in
//   `a c - b^2` for thin, elongated Gaussians, where f32 would otherwise lose the determinant.
//   `mid^2 - det` for the radius is evaluated as ((a - c) / 2)^2 + b^2 for the same reason.
// - Values that overflow f32 in an intermediate (e.g. log-scales above ~44, |q| above ~1e19)
//   cull the Gaussian: every output is checked for finiteness, so NaN/Inf never leave here.

#include "common.wgsl"
#include "raster_types.wgsl"
#include "splat_reach.wgsl"
#include "sh_basis.wgsl"

const WORKGROUP_SIZE: u32 = 256u;
// Gaussians whose quaternion has a squared norm below this are culled (nothing to normalise).
const MIN_QUATERNION_NORM_SQUARED: f32 = 1e-30;
// inria's floor under mid^2 - det in the eigenvalue formula of the screen radius.
const MIN_EIGENVALUE_DISCRIMINANT: f32 = 0.1;
const SQUARE_BOUND_SIGMAS: f32 = 3.0;
const TIGHT_BOUND_MAX_SIGMAS: f32 = 3.33;
// Floats of dL/d(2D quantities) per Gaussian: mean (2), conic (3), opacity (1), colour (3).
const GRAD_2D_STRIDE: u32 = 9u;

@group(0) @binding(0) var<uniform> render: RenderUniforms;
// Raw parameters (layout in ARCHITECTURE.md, "Gaussian parameters").
@group(0) @binding(1) var<storage, read> means: array<f32>;
@group(0) @binding(2) var<storage, read> log_scales: array<f32>;
@group(0) @binding(3) var<storage, read> rotations: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> logit_opacities: array<f32>;
@group(0) @binding(5) var<storage, read> sh_dc: array<f32>;
@group(0) @binding(6) var<storage, read> sh_rest: array<f32>;
// Forward outputs.
@group(0) @binding(7) var<storage, read_write> splats: array<Splat>;
@group(0) @binding(8) var<storage, read_write> depth_keys: array<u32>;
@group(0) @binding(9) var<storage, read_write> depth_ids: array<u32>;
@group(0) @binding(10) var<storage, read_write> tile_counts: array<u32>;
@group(0) @binding(11) var<storage, read_write> tile_rects: array<vec2<u32>>;
@group(0) @binding(12) var<storage, read_write> radii: array<u32>;
// Backward input: dL/d(mean2d, conic, opacity, colour), GRAD_2D_STRIDE floats per Gaussian.
@group(0) @binding(13) var<storage, read> grad_2d: array<f32>;
// Backward outputs: dL/d(raw parameters), same layout as the parameters.
@group(0) @binding(14) var<storage, read_write> grad_means: array<f32>;
@group(0) @binding(15) var<storage, read_write> grad_log_scales: array<f32>;
@group(0) @binding(16) var<storage, read_write> grad_rotations: array<vec4<f32>>;
@group(0) @binding(17) var<storage, read_write> grad_logit_opacities: array<f32>;
@group(0) @binding(18) var<storage, read_write> grad_sh_dc: array<f32>;
@group(0) @binding(19) var<storage, read_write> grad_sh_rest: array<f32>;
// Per Gaussian, the factors of its higher SH bands' gradient (sh_basis.wgsl, "Band factors"):
// written by `project_backward`, read by `project_backward_sh_rest` or by Adam's fused step.
@group(0) @binding(23) var<storage, read_write> band_factors: array<vec4<f32>>;
// Densification statistics (DensifyStats), accumulated across views.
@group(0) @binding(20) var<storage, read_write> stat_grad_norm_sum: array<f32>;
@group(0) @binding(21) var<storage, read_write> stat_visible_count: array<u32>;
@group(0) @binding(22) var<storage, read_write> stat_max_radius: array<f32>;

// ---------------------------------------------------------------------------------------------
// Parameters and camera

fn rest_coeff_count(degree: u32) -> u32 {
    return (degree + 1u) * (degree + 1u) - 1u;
}

// SH coefficients (DC included) that the render evaluates: bands up to eval_sh_degree.
fn eval_coeff_count() -> u32 {
    return (render.eval_sh_degree + 1u) * (render.eval_sh_degree + 1u);
}

// Floats of `sh_rest` per Gaussian.
fn sh_rest_width() -> u32 {
    return 3u * rest_coeff_count(render.sh_degree);
}

fn load_mean(i: u32) -> vec3<f32> {
    return vec3<f32>(means[3u * i], means[3u * i + 1u], means[3u * i + 2u]);
}

fn load_log_scale(i: u32) -> vec3<f32> {
    return vec3<f32>(log_scales[3u * i], log_scales[3u * i + 1u], log_scales[3u * i + 2u]);
}

// SH coefficient `j` (0 = DC) of Gaussian `i`, one value per colour channel.
fn sh_coefficient(i: u32, j: u32) -> vec3<f32> {
    if j == 0u {
        return vec3<f32>(sh_dc[3u * i], sh_dc[3u * i + 1u], sh_dc[3u * i + 2u]);
    }
    let base = i * sh_rest_width() + (j - 1u) * 3u;
    return vec3<f32>(sh_rest[base], sh_rest[base + 1u], sh_rest[base + 2u]);
}

// Step 1: every stored parameter finite, including SH bands above the active degree.
// `&`, not `&&`: a short-circuit makes each load wait for the previous test, and 60 loads in a
// row were most of the projection's time.
fn parameters_finite(i: u32) -> bool {
    var finite = is_finite(logit_opacities[i]);
    let q = rotations[i];
    finite = finite & is_finite(q.x) & is_finite(q.y) & is_finite(q.z) & is_finite(q.w);
    for (var k = 0u; k < 3u; k++) {
        finite = finite & is_finite(means[3u * i + k]) & is_finite(log_scales[3u * i + k])
            & is_finite(sh_dc[3u * i + k]);
    }
    let width = sh_rest_width();
    // Nine loads in flight at once (the last index repeats past the row's end): a plain loop
    // issued them one after another (projection 0.114 -> 0.104 ms on a trained 30k cloud).
    for (var k0 = 0u; k0 < width; k0 += 9u) {
        var values: array<f32, 9>;
        for (var m = 0u; m < 9u; m++) {
            values[m] = sh_rest[i * width + min(k0 + m, width - 1u)];
        }
        for (var m = 0u; m < 9u; m++) {
            finite = finite & is_finite(values[m]);
        }
    }
    return finite;
}

// The world-to-camera rotation W.
fn camera_rotation() -> mat3x3<f32> {
    return transpose(mat3x3<f32>(render.view_row0.xyz, render.view_row1.xyz, render.view_row2.xyz));
}

// W^T, whose columns are the rows of W.
fn camera_rotation_transposed() -> mat3x3<f32> {
    return mat3x3<f32>(render.view_row0.xyz, render.view_row1.xyz, render.view_row2.xyz);
}

fn to_camera(m: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(
        dot(render.view_row0.xyz, m) + render.view_row0.w,
        dot(render.view_row1.xyz, m) + render.view_row1.w,
        dot(render.view_row2.xyz, m) + render.view_row2.w,
    );
}

// ---------------------------------------------------------------------------------------------
// Geometry (steps 2-6), shared by forward and backward

// The rotation matrix of a unit quaternion (w, x, y, z) stored as q = (q.x, q.y, q.z, q.w).
fn rotation_from_quaternion(q: vec4<f32>) -> mat3x3<f32> {
    let w = q.x;
    let x = q.y;
    let y = q.z;
    let z = q.w;
    // Columns of R.
    return mat3x3<f32>(
        vec3<f32>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z), 2.0 * (x * z - w * y)),
        vec3<f32>(2.0 * (x * y - w * z), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z + w * x)),
        vec3<f32>(2.0 * (x * z + w * y), 2.0 * (y * z - w * x), 1.0 - 2.0 * (x * x + y * y)),
    );
}

// dL/d(w, x, y, z) of `rotation_from_quaternion` given dL/dR.
fn rotation_from_quaternion_backward(q: vec4<f32>, d_r: mat3x3<f32>) -> vec4<f32> {
    let w = q.x;
    let x = q.y;
    let y = q.z;
    let z = q.w;
    // g(row, col) = d_r[col][row]
    let g00 = d_r[0][0];
    let g10 = d_r[0][1];
    let g20 = d_r[0][2];
    let g01 = d_r[1][0];
    let g11 = d_r[1][1];
    let g21 = d_r[1][2];
    let g02 = d_r[2][0];
    let g12 = d_r[2][1];
    let g22 = d_r[2][2];
    return vec4<f32>(
        2.0 * (z * (g10 - g01) + y * (g02 - g20) + x * (g21 - g12)),
        2.0 * (y * (g01 + g10) + z * (g02 + g20) + w * (g21 - g12)) - 4.0 * x * (g11 + g22),
        2.0 * (x * (g01 + g10) + w * (g02 - g20) + z * (g12 + g21)) - 4.0 * y * (g00 + g22),
        2.0 * (w * (g10 - g01) + x * (g02 + g20) + y * (g12 + g21)) - 4.0 * z * (g00 + g11),
    );
}

// A Gaussian's projection geometry, with the intermediates the backward needs.
struct Geometry {
    valid: bool,
    // Camera-space mean.
    t: vec3<f32>,
    // |q| and q / |q|, stored (w, x, y, z) in (x, y, z, w).
    quaternion_norm: f32,
    quaternion: vec4<f32>,
    rotation: mat3x3<f32>,
    scales: vec3<f32>,
    // M = W R S: camera-space covariance is M M^T.
    m: mat3x3<f32>,
    // Clamped t.x / t.z, t.y / t.z and whether each clamp was active.
    ratio: vec2<f32>,
    ratio_clamped: vec2<bool>,
    // Rows of the EWA Jacobian and of A = J M.
    j0: vec3<f32>,
    j1: vec3<f32>,
    a0: vec3<f32>,
    a1: vec3<f32>,
    // Blurred 2D covariance (a, b, c), its determinant, and the determinant before the blur.
    cov: vec3<f32>,
    det: f32,
    det0: f32,
}

// Steps 2-6 for Gaussian i. `valid` is false when it is culled by them.
fn project_geometry(i: u32) -> Geometry {
    var g: Geometry;
    g.valid = false;
    g.t = to_camera(load_mean(i));
    if !(g.t.z > render.camera_centre_near.w) || !is_finite(g.t.x) || !is_finite(g.t.y)
        || !is_finite(g.t.z) {
        return g;
    }
    let q = rotations[i];
    let norm_squared = dot(q, q);
    if !(norm_squared >= MIN_QUATERNION_NORM_SQUARED) || !is_finite(norm_squared) {
        return g;
    }
    g.quaternion_norm = sqrt(norm_squared);
    g.quaternion = q / g.quaternion_norm;
    g.rotation = rotation_from_quaternion(g.quaternion);
    g.scales = exp(load_log_scale(i));
    let wr = camera_rotation() * g.rotation;
    g.m = mat3x3<f32>(wr[0] * g.scales.x, wr[1] * g.scales.y, wr[2] * g.scales.z);

    // Step 5: Jacobian at the clamped view ratios.
    let ratio = g.t.xy / g.t.z;
    g.ratio_clamped = (ratio < -render.clamp_negative) | (ratio > render.clamp_positive);
    g.ratio = clamp(ratio, -render.clamp_negative, render.clamp_positive);
    let txy = g.t.z * g.ratio;
    let tz2 = g.t.z * g.t.z;
    let f = render.focal;
    g.j0 = vec3<f32>(f.x / g.t.z, 0.0, -f.x * txy.x / tz2);
    g.j1 = vec3<f32>(0.0, f.y / g.t.z, -f.y * txy.y / tz2);

    // Step 6: Σ2D = A A^T + blur I with A = J M.
    g.a0 = g.j0 * g.m;
    g.a1 = g.j1 * g.m;
    let a0 = dot(g.a0, g.a0);
    let c0 = dot(g.a1, g.a1);
    let b = dot(g.a0, g.a1);
    g.cov = vec3<f32>(a0 + COVARIANCE_BLUR, b, c0 + COVARIANCE_BLUR);
    let normal = cross(g.a0, g.a1);
    g.det0 = dot(normal, normal);
    g.det = g.det0 + COVARIANCE_BLUR * (a0 + c0) + COVARIANCE_BLUR * COVARIANCE_BLUR;
    g.valid = is_finite(g.det) && g.det > 0.0 && is_finite(g.det0);
    return g;
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// The antialiasing compensation sqrt(det before blur / det), or 1.
fn opacity_compensation(g: Geometry) -> f32 {
    if (render.flags & FLAG_ANTIALIASED) != 0u {
        return sqrt(max(0.0, g.det0 / g.det));
    }
    return 1.0;
}

// Unit view direction from the camera centre to the mean, and the distance.
struct ViewDirection {
    dir: vec3<f32>,
    distance: f32,
}

fn view_direction(i: u32) -> ViewDirection {
    let to_mean = load_mean(i) - render.camera_centre_near.xyz;
    // Scaled by the largest component first: |v|^2 overflows f32 beyond ~1e19.
    let largest = max(abs(to_mean.x), max(abs(to_mean.y), abs(to_mean.z)));
    let scaled = to_mean / largest;
    let scaled_length = length(scaled);
    return ViewDirection(scaled / scaled_length, scaled_length * largest);
}

// Step 11 before the clamp: sum of basis * coefficient + 0.5 per channel.
fn raw_colour(i: u32, basis: array<f32, 16>) -> vec3<f32> {
    let count = eval_coeff_count();
    var sum = vec3<f32>(0.0);
    for (var j = 0u; j < count; j++) {
        sum += basis[j] * sh_coefficient(i, j);
    }
    return sum + 0.5;
}

// ---------------------------------------------------------------------------------------------
// Forward

// Screen extent per axis in pixels (step 9), already rounded up.
fn screen_extent(cov: vec3<f32>, det: f32, opacity: f32) -> vec2<f32> {
    if (render.flags & FLAG_TIGHT_TILE_BOUNDS) != 0u {
        let sigmas = min(TIGHT_BOUND_MAX_SIGMAS, sqrt(max(0.0, 2.0 * log(255.0 * opacity))));
        return ceil(sigmas * sqrt(cov.xz));
    }
    let mid = 0.5 * (cov.x + cov.z);
    let half_difference = 0.5 * (cov.x - cov.z);
    // mid^2 - det = ((a - c) / 2)^2 + b^2, written without cancellation.
    let discriminant = max(MIN_EIGENVALUE_DISCRIMINANT, half_difference * half_difference + cov.y * cov.y);
    let lambda_max = mid + sqrt(discriminant);
    return vec2<f32>(ceil(SQUARE_BOUND_SIGMAS * sqrt(lambda_max)));
}

// A Gaussian's splat (steps 1-11), or `visible = false` when it is culled. Shared by the
// trainer's `project_forward` below and the viewer's `project_view` (project_view.wgsl), so a
// game draws exactly what training optimised. `opacity_scale` multiplies the opacity before the
// culling test (the viewer's per-cloud opacity; 1 for training).
struct ProjectedGaussian {
    visible: bool,
    splat: Splat,
    // Camera-space depth t.z.
    depth: f32,
    tile_min: vec2<u32>,
    tile_max: vec2<u32>,
    // max(extent.x, extent.y) in pixels.
    radius: f32,
}

fn project_gaussian(i: u32, opacity_scale: f32) -> ProjectedGaussian {
    var out: ProjectedGaussian;
    out.visible = false;
    if !parameters_finite(i) {
        return out;
    }
    let g = project_geometry(i);
    if !g.valid {
        return out;
    }

    // Step 7: opacity.
    let opacity = sigmoid(logit_opacities[i]) * opacity_compensation(g) * opacity_scale;
    if !(opacity >= MIN_ALPHA) {
        return out;
    }

    // Step 8: pixel-space mean.
    let mean2d = render.focal * g.t.xy / g.t.z + render.principal;

    // Steps 9-10: extent and tile rectangle.
    let extent = screen_extent(g.cov, g.det, opacity);
    let grid = vec2<f32>(render.tile_grid);
    let tile = f32(TILE_SIZE);
    out.tile_min = vec2<u32>(clamp(floor((mean2d - extent) / tile), vec2<f32>(0.0), grid));
    out.tile_max = vec2<u32>(
        clamp(floor((mean2d + extent + (tile - 1.0)) / tile), vec2<f32>(0.0), grid),
    );
    if out.tile_min.x >= out.tile_max.x || out.tile_min.y >= out.tile_max.y {
        return out;
    }

    // Step 11: colour.
    let view = view_direction(i);
    let colour = max(raw_colour(i, sh_basis(render.eval_sh_degree, view.dir)), vec3<f32>(0.0));

    let conic = vec3<f32>(g.cov.z, -g.cov.y, g.cov.x) / g.det;
    let outputs_finite = is_finite(mean2d.x) && is_finite(mean2d.y) && is_finite(conic.x)
        && is_finite(conic.y) && is_finite(conic.z) && is_finite(colour.x)
        && is_finite(colour.y) && is_finite(colour.z);
    if !outputs_finite {
        return out;
    }
    out.visible = true;
    out.splat = Splat(mean2d, conic, opacity, colour);
    out.depth = g.t.z;
    out.radius = max(extent.x, extent.y);
    return out;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn project_forward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i >= render.num_gaussians {
        return;
    }
    // What a culled Gaussian reports.
    depth_ids[i] = i;
    depth_keys[i] = CULLED_DEPTH_KEY;
    tile_counts[i] = 0u;
    radii[i] = 0u;
    tile_rects[i] = vec2<u32>(0u);

    let p = project_gaussian(i, 1.0);
    if !p.visible {
        return;
    }
    splats[i] = p.splat;
    depth_keys[i] = bitcast<u32>(p.depth);
    tile_counts[i] = reached_tile_count(p.splat, p.tile_min, p.tile_max);
    tile_rects[i] = pack_tile_rect(p.tile_min, p.tile_max);
    radii[i] = select(u32(p.radius), 0xffffffffu, p.radius >= 4294967296.0);
}

// ---------------------------------------------------------------------------------------------
// Backward

// `project_backward`, one thread per Gaussian, writes every gradient but the higher SH bands',
// and those bands' factors (dL/d(colour before the clamp) and the view direction) to
// `band_factors`. Training hands the factors to Adam, which forms each band gradient as it
// updates the coefficient (adam.wgsl): the 180-byte gradient row per Gaussian is then neither
// written nor read. `project_backward_sh_rest`, one thread per Gaussian and band coefficient,
// also writes the gradient rows where someone reads them (debug mode, tests). One thread
// writing its own 45 band gradients made each warp-wide store touch 32 sectors 180 bytes
// apart, and staging the rows in workgroup memory serialised the staging with the maths
// (0.265 ms on a trained 30k cloud; `project_backward` alone now takes 0.121, BENCHMARKS.md).
// Reading the coefficients row by row (for the colour and the view-direction gradient) is as
// cheap as in the forward: nearby loads share cache lines.

fn write_zero_gradients(i: u32) {
    for (var k = 0u; k < 3u; k++) {
        grad_means[3u * i + k] = 0.0;
        grad_log_scales[3u * i + k] = 0.0;
        grad_sh_dc[3u * i + k] = 0.0;
    }
    grad_rotations[i] = vec4<f32>(0.0);
    grad_logit_opacities[i] = 0.0;
    band_factors[2u * i] = vec4<f32>(0.0);
    band_factors[2u * i + 1u] = vec4<f32>(0.0);
}

// dL/d(raw parameters) of Gaussian i from dL/d(mean2d, conic, opacity, colour), but the higher
// SH bands: overwrites the gradient buffers (zero for Gaussians the forward culled).
@compute @workgroup_size(WORKGROUP_SIZE)
fn project_backward(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i < render.num_gaussians {
        gaussian_backward(i);
    }
}

// dL/d(coefficient j, all three channels) of Gaussian i from its band factors, one thread per
// (i, j) for j in 1..=rest_coeff_count(sh_degree) (zero for culled Gaussians and for bands
// above the evaluated degree).
@compute @workgroup_size(WORKGROUP_SIZE)
fn project_backward_sh_rest(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let item = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    let coefficients = rest_coeff_count(render.sh_degree);
    if item >= render.num_gaussians * coefficients {
        return;
    }
    let i = item / coefficients;
    let j = item - i * coefficients + 1u;
    let d_coeff = band_gradient(band_factors[2u * i], band_factors[2u * i + 1u], j);
    // = i * sh_rest_width() + (j - 1) * 3: the items' floats are contiguous, in item order.
    let base = 3u * item;
    grad_sh_rest[base] = d_coeff.x;
    grad_sh_rest[base + 1u] = d_coeff.y;
    grad_sh_rest[base + 2u] = d_coeff.z;
}

// The backward of Gaussian i (its higher SH bands: `project_backward_sh_rest`).
fn gaussian_backward(i: u32) {
    if radii[i] == 0u {
        write_zero_gradients(i);
        return;
    }
    let g = project_geometry(i);
    if !g.valid {
        // Unreachable: the forward computed the same geometry and found it valid.
        write_zero_gradients(i);
        return;
    }
    let base = GRAD_2D_STRIDE * i;
    let d_mean2d = vec2<f32>(grad_2d[base], grad_2d[base + 1u]);
    let d_conic = vec3<f32>(grad_2d[base + 2u], grad_2d[base + 3u], grad_2d[base + 4u]);
    let d_opacity = grad_2d[base + 5u];
    let d_colour = vec3<f32>(grad_2d[base + 6u], grad_2d[base + 7u], grad_2d[base + 8u]);

    var d_mean = vec3<f32>(0.0); // dL/d(world mean)
    var d_t = vec3<f32>(0.0); // dL/d(camera-space mean)

    // Step 11: colour. Clamped channels pass nothing; bands above the evaluated degree get 0.
    let view = view_direction(i);
    let basis = sh_basis(render.eval_sh_degree, view.dir);
    let eval_count = eval_coeff_count();
    let raw = raw_colour(i, basis);
    let d_raw = select(d_colour, vec3<f32>(0.0), raw < vec3<f32>(0.0));
    band_factors[2u * i] = vec4<f32>(d_raw, 0.0);
    band_factors[2u * i + 1u] = vec4<f32>(view.dir, f32(render.eval_sh_degree));
    let d_dc = basis[0] * d_raw;
    grad_sh_dc[3u * i] = d_dc.x;
    grad_sh_dc[3u * i + 1u] = d_dc.y;
    grad_sh_dc[3u * i + 2u] = d_dc.z;
    var d_dir = vec3<f32>(0.0);
    for (var j = 1u; j < eval_count; j++) {
        d_dir += sh_basis_gradient(j, view.dir) * dot(sh_coefficient(i, j), d_raw);
    }
    // dir = v / |v| with v = mean - camera centre.
    d_mean += (d_dir - view.dir * dot(view.dir, d_dir)) / view.distance;

    // Step 8: mean2d = f * t.xy / t.z + principal (unclamped).
    let t = g.t;
    let f = render.focal;
    d_t.x += f.x / t.z * d_mean2d.x;
    d_t.y += f.y / t.z * d_mean2d.y;
    d_t.z -= (f.x * t.x * d_mean2d.x + f.y * t.y * d_mean2d.y) / (t.z * t.z);

    // Step 7: opacity = sigmoid(logit) * compensation.
    let s = sigmoid(logit_opacities[i]);
    let compensation = opacity_compensation(g);
    grad_logit_opacities[i] = d_opacity * compensation * s * (1.0 - s);
    let a = g.cov.x;
    let b = g.cov.y;
    let c = g.cov.z;
    var d_a = 0.0;
    var d_b = 0.0;
    var d_c = 0.0;
    if (render.flags & FLAG_ANTIALIASED) != 0u {
        // compensation = sqrt(det0 / det), det0 = (a - blur)(c - blur) - b^2, det = a c - b^2.
        // (Visible implies opacity >= 1/255, so compensation > 0.)
        let d_compensation = d_opacity * s;
        let d_det0 = d_compensation * 0.5 / (compensation * g.det);
        let d_det = -d_compensation * 0.5 * compensation / g.det;
        d_a += d_det0 * (c - COVARIANCE_BLUR) + d_det * c;
        d_c += d_det0 * (a - COVARIANCE_BLUR) + d_det * a;
        d_b += -2.0 * b * (d_det0 + d_det);
    }

    // Step 6: conic K = Σ2D^-1, so dL/dΣ2D = -K G K with G the symmetric gradient of K
    // (the off-diagonal conic entry stands for both K01 and K10). Written with K itself rather
    // than 1/det^2, which overflows for very large Gaussians.
    let k = mat2x2<f32>(c / g.det, -b / g.det, -b / g.det, a / g.det);
    let g_k = mat2x2<f32>(d_conic.x, 0.5 * d_conic.y, 0.5 * d_conic.y, d_conic.z);
    let kgk = k * g_k * k;
    d_a -= kgk[0][0];
    d_b -= 2.0 * kgk[0][1];
    d_c -= kgk[1][1];

    // Σ2D = A A^T + blur I: a = A0.A0, b = A0.A1, c = A1.A1.
    let d_a0 = 2.0 * d_a * g.a0 + d_b * g.a1;
    let d_a1 = 2.0 * d_c * g.a1 + d_b * g.a0;
    // A = J M: dJ_r = M dA_r, dM = sum_r J_r dA_r^T.
    let d_j0 = g.m * d_a0;
    let d_j1 = g.m * d_a1;
    let d_m = mat3x3<f32>(
        g.j0 * d_a0.x + g.j1 * d_a1.x,
        g.j0 * d_a0.y + g.j1 * d_a1.y,
        g.j0 * d_a0.z + g.j1 * d_a1.z,
    );

    // Step 5: J = [[fx/tz, 0, -fx tx/tz^2], [0, fy/tz, -fy ty/tz^2]], tx = tz * clamped ratio.
    let txy = t.z * g.ratio;
    let tz2 = t.z * t.z;
    let tz3 = tz2 * t.z;
    d_t.z += -f.x / tz2 * d_j0.x - f.y / tz2 * d_j1.y + 2.0 * f.x * txy.x / tz3 * d_j0.z
        + 2.0 * f.y * txy.y / tz3 * d_j1.z;
    let d_txy = vec2<f32>(-f.x / tz2 * d_j0.z, -f.y / tz2 * d_j1.z);
    // Unclamped, tx = t.x; clamped, tx = t.z * limit (no t.x dependence, slope `limit` in t.z).
    if g.ratio_clamped.x {
        d_t.z += d_txy.x * g.ratio.x;
    } else {
        d_t.x += d_txy.x;
    }
    if g.ratio_clamped.y {
        d_t.z += d_txy.y * g.ratio.y;
    } else {
        d_t.y += d_txy.y;
    }

    // Step 2: t = W mean + T.
    d_mean += camera_rotation_transposed() * d_t;
    grad_means[3u * i] = d_mean.x;
    grad_means[3u * i + 1u] = d_mean.y;
    grad_means[3u * i + 2u] = d_mean.z;

    // Steps 3-4: M = W (R S). dL/d(R S) = W^T dM.
    let d_rs = camera_rotation_transposed() * d_m;
    let d_log_scale = g.scales * vec3<f32>(
        dot(d_rs[0], g.rotation[0]),
        dot(d_rs[1], g.rotation[1]),
        dot(d_rs[2], g.rotation[2]),
    );
    grad_log_scales[3u * i] = d_log_scale.x;
    grad_log_scales[3u * i + 1u] = d_log_scale.y;
    grad_log_scales[3u * i + 2u] = d_log_scale.z;
    let d_rotation = mat3x3<f32>(d_rs[0] * g.scales.x, d_rs[1] * g.scales.y, d_rs[2] * g.scales.z);
    let d_unit_q = rotation_from_quaternion_backward(g.quaternion, d_rotation);
    // q̂ = q / |q|: dL/dq = (dL/dq̂ - q̂ (q̂ . dL/dq̂)) / |q|.
    grad_rotations[i] = (d_unit_q - g.quaternion * dot(g.quaternion, d_unit_q)) / g.quaternion_norm;
}

// Densification statistics of the Gaussians visible in this view (REFERENCE.md, "Densify and
// prune"): |dL/d(mean2d)| in NDC units, a visit count, and the largest screen radius.
@compute @workgroup_size(WORKGROUP_SIZE)
fn accumulate_densify_stats(
    @builtin(workgroup_id) workgroup_id: vec3<u32>,
    @builtin(num_workgroups) num_workgroups: vec3<u32>,
    @builtin(local_invocation_index) local_index: u32,
) {
    let i = linear_invocation_id(workgroup_id, num_workgroups, local_index, WORKGROUP_SIZE);
    if i >= render.num_gaussians {
        return;
    }
    let radius = radii[i];
    if radius == 0u {
        return;
    }
    let half_size = 0.5 * vec2<f32>(render.image_size);
    let d_ndc = vec2<f32>(grad_2d[GRAD_2D_STRIDE * i], grad_2d[GRAD_2D_STRIDE * i + 1u]) * half_size;
    stat_grad_norm_sum[i] += length(d_ndc);
    stat_visible_count[i] += 1u;
    stat_max_radius[i] = max(stat_max_radius[i], f32(radius));
}
