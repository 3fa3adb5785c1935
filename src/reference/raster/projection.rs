//! Per-Gaussian projection, forward and backward: ARCHITECTURE.md, "The rasterizer (forward)",
//! steps 1-11. The forward keeps its intermediate values so the backward can apply the chain rule
//! step by step, in reverse order.

use super::colour::{basis_gradients, raw_colour, sh_coefficient, sh_coefficient_mut};
use super::composite::Grad2d;
use super::{Params64, Projected};
use crate::camera::Camera;
use crate::model::ParamGroup;
use crate::render_settings::{COVARIANCE_BLUR, MIN_ALPHA, RenderSettings, TILE_SIZE};
use crate::sh;
use glam::{DMat3, DVec3};

/// The low-pass blur added to the 2D covariance diagonal (the f32 constant, widened exactly).
const BLUR: f64 = COVARIANCE_BLUR as f64;
/// Extra field of view allowed by the Jacobian clamp, as a fraction of the image size (gsplat).
const JACOBIAN_CLAMP_MARGIN: f64 = 0.3;
/// Quaternions with a squared norm below this are culled: they have no rotation to normalise.
const MIN_QUATERNION_NORM_SQUARED: f64 = 1e-30;
/// inria's floor under `mid^2 - det` in the eigenvalue formula of the screen radius.
const MIN_EIGENVALUE_DISCRIMINANT: f64 = 0.1;
/// Sigmas of the square screen bound (inria) and the cap of the tight bound's sigmas (gsplat).
const SQUARE_BOUND_SIGMAS: f64 = 3.0;
const TIGHT_BOUND_MAX_SIGMAS: f64 = 3.33;

/// Why a Gaussian was culled (the tests check the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cull {
    /// Step 1: a stored parameter is NaN or infinite.
    NonFinite,
    /// Step 2: view-space depth at or below the near plane.
    NearPlane,
    /// Step 3: the quaternion is (almost) zero.
    DegenerateRotation,
    /// Step 6: `det(Σ2D)` is not positive and finite.
    DegenerateCovariance,
    /// Step 7: opacity below 1/255.
    LowOpacity,
    /// Step 10: empty tile rectangle.
    OffScreen,
}

/// A visible Gaussian's projection with the intermediates of the forward pass.
#[derive(Clone, Debug)]
pub(super) struct GaussianProjection {
    pub projected: Projected,
    /// Camera-space mean `t = R mean + T`.
    pub t: DVec3,
    /// `|q|` of the stored quaternion and the normalised quaternion `(w, x, y, z)`.
    pub quaternion_norm: f64,
    pub quaternion: [f64; 4],
    /// `R(q)` and `exp(log_scale)`.
    pub rotation: DMat3,
    pub scales: DVec3,
    /// Camera-space 3D covariance `W Σ W^T`.
    pub cov_camera: DMat3,
    /// The two rows of the EWA Jacobian.
    pub jacobian_rows: [DVec3; 2],
    /// Whether `t.x / t.z` (resp. `t.y / t.z`) was clamped, and the clamped ratio.
    pub jacobian_clamped: [bool; 2],
    pub clamped_ratio: [f64; 2],
    /// Blurred 2D covariance `(a, b, c)` = `(xx, xy, yy)` and its determinant.
    pub cov2d: [f64; 3],
    pub det: f64,
    /// `sigmoid(logit)` and the antialiasing factor (1 when not antialiased).
    pub sigmoid: f64,
    pub compensation: f64,
    /// Unit view direction `normalize(mean - camera centre)` and the distance it was divided by.
    pub view_dir: DVec3,
    pub view_distance: f64,
}

/// The SH degree actually evaluated: the active degree, at most the stored one.
pub(super) fn evaluated_degree(params: &Params64, settings: &RenderSettings) -> u32 {
    settings.active_sh_degree.min(params.sh_degree)
}

/// Steps 1-11 for Gaussian `i`.
pub(super) fn project_gaussian(
    params: &Params64,
    i: usize,
    camera: &Camera,
    settings: &RenderSettings,
) -> Result<GaussianProjection, Cull> {
    // 1. Every stored parameter must be finite.
    let all_finite = ParamGroup::ALL
        .iter()
        .all(|&g| params.of(g, i).iter().all(|v| v.is_finite()));
    if !all_finite {
        return Err(Cull::NonFinite);
    }

    // 2. Camera space; near-plane cull.
    let mean = DVec3::from_slice(params.of(ParamGroup::Means, i));
    let t = camera.to_camera(mean);
    if t.z <= f64::from(settings.near_plane) {
        return Err(Cull::NearPlane);
    }

    // 3. World covariance Σ = R S S R^T from the normalised quaternion and exp(log-scale).
    let q = params.of(ParamGroup::Rotations, i);
    let norm_squared: f64 = q.iter().map(|v| v * v).sum();
    if norm_squared < MIN_QUATERNION_NORM_SQUARED {
        return Err(Cull::DegenerateRotation);
    }
    let quaternion_norm = norm_squared.sqrt();
    let quaternion: [f64; 4] = std::array::from_fn(|k| q[k] / quaternion_norm);
    let rotation = rotation_matrix(quaternion);
    let scales = DVec3::from_slice(params.of(ParamGroup::LogScales, i)).exp();
    let rs = rotation * DMat3::from_diagonal(scales);
    let cov_world = rs * rs.transpose();

    // 4. Camera-space covariance.
    let cov_camera = camera.rotation * cov_world * camera.rotation.transpose();

    // 5. EWA Jacobian at the clamped view ratios.
    let (width, height) = (f64::from(camera.width), f64::from(camera.height));
    let (ratio_x, clamped_x) = clamp_view_ratio(t.x / t.z, width, camera.cx, camera.fx);
    let (ratio_y, clamped_y) = clamp_view_ratio(t.y / t.z, height, camera.cy, camera.fy);
    let (tx, ty) = (t.z * ratio_x, t.z * ratio_y);
    let jacobian_rows = [
        DVec3::new(camera.fx / t.z, 0.0, -camera.fx * tx / (t.z * t.z)),
        DVec3::new(0.0, camera.fy / t.z, -camera.fy * ty / (t.z * t.z)),
    ];

    // 6. Blurred 2D covariance, its determinant and the conic (its inverse).
    let [j0, j1] = jacobian_rows;
    let a = j0.dot(cov_camera * j0) + BLUR;
    let b = j0.dot(cov_camera * j1);
    let c = j1.dot(cov_camera * j1) + BLUR;
    let det = a * c - b * b;
    if !(det > 0.0 && det.is_finite()) {
        return Err(Cull::DegenerateCovariance);
    }
    let conic = [c / det, -b / det, a / det];

    // 7. Opacity, with the antialiasing compensation sqrt(det before blur / det).
    let logit = params.of(ParamGroup::Opacities, i)[0];
    let sigmoid = 1.0 / (1.0 + (-logit).exp());
    let det_before_blur = (a - BLUR) * (c - BLUR) - b * b;
    let compensation = if settings.antialiased {
        (det_before_blur / det).max(0.0).sqrt()
    } else {
        1.0
    };
    let opacity = sigmoid * compensation;
    if opacity < f64::from(MIN_ALPHA) {
        return Err(Cull::LowOpacity);
    }

    // 8. Pixel-space mean (unclamped) and depth.
    let (u, v) = camera.project(t);
    let mean2d = [u, v];

    // 9. Screen extent per axis.
    let extent = if settings.tight_tile_bounds {
        let sigmas = (2.0 * (255.0 * opacity).ln())
            .max(0.0)
            .sqrt()
            .min(TIGHT_BOUND_MAX_SIGMAS);
        [(sigmas * a.sqrt()).ceil(), (sigmas * c.sqrt()).ceil()]
    } else {
        let mid = 0.5 * (a + c);
        let lambda_max = mid + (mid * mid - det).max(MIN_EIGENVALUE_DISCRIMINANT).sqrt();
        let radius = (SQUARE_BOUND_SIGMAS * lambda_max.sqrt()).ceil();
        [radius, radius]
    };

    // 10. Tile rectangle, min inclusive and max exclusive, clamped to the tile grid.
    let tile = f64::from(TILE_SIZE);
    let grid = [
        camera.width.div_ceil(TILE_SIZE),
        camera.height.div_ceil(TILE_SIZE),
    ];
    let to_tile =
        |value: f64, k: usize| (value / tile).floor().max(0.0).min(f64::from(grid[k])) as u32;
    let tile_min = [to_tile(u - extent[0], 0), to_tile(v - extent[1], 1)];
    let tile_max = [
        to_tile(u + extent[0] + tile - 1.0, 0),
        to_tile(v + extent[1] + tile - 1.0, 1),
    ];
    if tile_min[0] >= tile_max[0] || tile_min[1] >= tile_max[1] {
        return Err(Cull::OffScreen);
    }
    // `as u32` saturates, so an enormous extent reports u32::MAX.
    let radius = extent[0].max(extent[1]) as u32;

    // 11. SH colour in the direction from the camera centre, clamped at 0.
    let to_mean = mean - camera.center();
    let view_distance = to_mean.length();
    let view_dir = to_mean / view_distance;
    let raw = raw_colour(params, i, evaluated_degree(params, settings), view_dir);
    let clamped = raw.map(|v| v < 0.0);
    let color = raw.map(|v| v.max(0.0));

    Ok(GaussianProjection {
        projected: Projected {
            visible: true,
            mean2d,
            conic,
            opacity,
            color,
            clamped,
            depth: t.z,
            radius,
            tile_min,
            tile_max,
        },
        t,
        quaternion_norm,
        quaternion,
        rotation,
        scales,
        cov_camera,
        jacobian_rows,
        jacobian_clamped: [clamped_x, clamped_y],
        clamped_ratio: [ratio_x, ratio_y],
        cov2d: [a, b, c],
        det,
        sigmoid,
        compensation,
        view_dir,
        view_distance,
    })
}

/// Clamps a view ratio `t.x / t.z` to `[-lim-, lim+]` with `lim+ = (size - principal) / focal +
/// 0.3 size / (2 focal)` and `lim- = principal / focal + 0.3 size / (2 focal)`; returns the
/// clamped ratio and whether the clamp was active.
fn clamp_view_ratio(ratio: f64, size: f64, principal: f64, focal: f64) -> (f64, bool) {
    let margin = JACOBIAN_CLAMP_MARGIN * size / (2.0 * focal);
    let limit_positive = (size - principal) / focal + margin;
    let limit_negative = principal / focal + margin;
    if ratio < -limit_negative {
        (-limit_negative, true)
    } else if ratio > limit_positive {
        (limit_positive, true)
    } else {
        (ratio, false)
    }
}

/// The rotation matrix of a unit quaternion `(w, x, y, z)`.
fn rotation_matrix(q: [f64; 4]) -> DMat3 {
    mat3_from_rows(crate::reference::unit_quaternion_rotation(q))
}

fn mat3_from_rows(rows: [[f64; 3]; 3]) -> DMat3 {
    DMat3::from_cols_array_2d(&rows).transpose()
}

/// `u v^T`.
fn outer(u: DVec3, v: DVec3) -> DMat3 {
    DMat3::from_cols(u * v.x, u * v.y, u * v.z)
}

/// Backward of [`project_gaussian`] for a visible Gaussian: adds `dL/d(raw parameters)` of
/// Gaussian `i` to `out`, given `dL/d(mean2d, conic, opacity, colour)`. Every matrix gradient
/// below treats all nine (or four) entries as independent, so no symmetry factors are needed.
pub(super) fn projection_backward(
    params: &Params64,
    i: usize,
    camera: &Camera,
    settings: &RenderSettings,
    p: &GaussianProjection,
    grad: &Grad2d,
    out: &mut Params64,
) {
    let mut d_mean = DVec3::ZERO; // dL/d(world mean)
    let mut d_t = DVec3::ZERO; // dL/d(camera-space mean)

    // 11. Colour: clamped channels pass nothing; the rest reach the SH coefficients of the
    // evaluated bands (higher bands keep their zero) and the view direction.
    let degree = evaluated_degree(params, settings);
    let d_raw: [f64; 3] = std::array::from_fn(|c| {
        if p.projected.clamped[c] {
            0.0
        } else {
            grad.color[c]
        }
    });
    let basis = sh::basis(degree, p.view_dir.to_array());
    let basis_grads = basis_gradients(degree, p.view_dir);
    let mut d_dir = DVec3::ZERO;
    for j in 0..sh::coeffs_for_degree(degree) {
        for (c, d_raw_c) in d_raw.iter().enumerate() {
            *sh_coefficient_mut(out, i, j, c) += basis[j] * d_raw_c;
            d_dir += basis_grads[j] * (sh_coefficient(params, i, j, c) * d_raw_c);
        }
    }
    // dir = v / |v| with v = mean - camera centre.
    d_mean += (d_dir - p.view_dir * p.view_dir.dot(d_dir)) / p.view_distance;

    // 8. mean2d = (fx t.x / t.z + cx, fy t.y / t.z + cy).
    let t = p.t;
    let [d_u, d_v] = grad.mean2d;
    d_t.x += camera.fx / t.z * d_u;
    d_t.y += camera.fy / t.z * d_v;
    d_t.z -= (camera.fx * t.x * d_u + camera.fy * t.y * d_v) / (t.z * t.z);

    // 7. opacity = sigmoid(logit) * compensation.
    let d_opacity = grad.opacity;
    out.of_mut(ParamGroup::Opacities, i)[0] +=
        d_opacity * p.compensation * p.sigmoid * (1.0 - p.sigmoid);
    let [a, b, c] = p.cov2d;
    let (mut d_a, mut d_b, mut d_c) = (0.0, 0.0, 0.0);
    if settings.antialiased {
        // compensation = sqrt(det0 / det), det0 = (a - blur)(c - blur) - b², det = a c - b².
        // (Visible implies opacity >= 1/255 > 0, so compensation > 0 here.)
        let d_compensation = d_opacity * p.sigmoid;
        let d_det0 = d_compensation * 0.5 / (p.compensation * p.det);
        let d_det = -d_compensation * 0.5 * p.compensation / p.det;
        d_a += d_det0 * (c - BLUR) + d_det * c;
        d_c += d_det0 * (a - BLUR) + d_det * a;
        d_b += -2.0 * b * (d_det0 + d_det);
    }

    // 6. conic = (c, -b, a) / det.
    let [d_conic_a, d_conic_b, d_conic_c] = grad.conic;
    let det2 = p.det * p.det;
    d_a += (-c * c * d_conic_a + b * c * d_conic_b - b * b * d_conic_c) / det2;
    d_b += (2.0 * b * c * d_conic_a - (a * c + b * b) * d_conic_b + 2.0 * a * b * d_conic_c) / det2;
    d_c += (-b * b * d_conic_a + a * b * d_conic_b - a * a * d_conic_c) / det2;

    // Σ2D = J Σc J^T + blur I, entries a = j0·Σc j0, b = j0·Σc j1, c = j1·Σc j1.
    let [j0, j1] = p.jacobian_rows;
    let sigma = p.cov_camera;
    let d_cov_camera = outer(j0, j0) * d_a + outer(j0, j1) * d_b + outer(j1, j1) * d_c;
    let d_j0 = (sigma + sigma.transpose()) * j0 * d_a + sigma * j1 * d_b;
    let d_j1 = (sigma + sigma.transpose()) * j1 * d_c + sigma.transpose() * j0 * d_b;

    // 5. J = [[fx/tz, 0, -fx tx/tz²], [0, fy/tz, -fy ty/tz²]] with tx = tz * clamped ratio.
    let (fx, fy) = (camera.fx, camera.fy);
    let [ratio_x, ratio_y] = p.clamped_ratio;
    let (tx, ty) = (t.z * ratio_x, t.z * ratio_y);
    let tz2 = t.z * t.z;
    let tz3 = tz2 * t.z;
    d_t.z += -fx / tz2 * d_j0.x - fy / tz2 * d_j1.y
        + 2.0 * fx * tx / tz3 * d_j0.z
        + 2.0 * fy * ty / tz3 * d_j1.z;
    let d_tx = -fx / tz2 * d_j0.z;
    let d_ty = -fy / tz2 * d_j1.z;
    // Unclamped, tx = t.x exactly. Clamped, tx = t.z * limit: no t.x dependence, slope `limit`
    // in t.z.
    if p.jacobian_clamped[0] {
        d_t.z += d_tx * ratio_x;
    } else {
        d_t.x += d_tx;
    }
    if p.jacobian_clamped[1] {
        d_t.z += d_ty * ratio_y;
    } else {
        d_t.y += d_ty;
    }

    // 2. t = W mean + T.
    d_mean += camera.rotation.transpose() * d_t;
    for (k, dst) in out.of_mut(ParamGroup::Means, i).iter_mut().enumerate() {
        *dst += d_mean[k];
    }

    // 4. Σc = W Σ W^T.
    let d_cov_world = camera.rotation.transpose() * d_cov_camera * camera.rotation;

    // 3. Σ = M M^T with M = R S, S = diag(exp(log_scale)).
    let m = p.rotation * DMat3::from_diagonal(p.scales);
    let d_m = (d_cov_world + d_cov_world.transpose()) * m;
    let d_rotation = d_m * DMat3::from_diagonal(p.scales);
    for (k, dst) in out.of_mut(ParamGroup::LogScales, i).iter_mut().enumerate() {
        // d/d(log s) = s d/ds, and dM_ik/ds_k = R_ik.
        *dst += d_m.col(k).dot(p.rotation.col(k)) * p.scales[k];
    }
    let d_unit_quaternion = rotation_matrix_backward(p.quaternion, d_rotation);
    // q̂ = q / |q|: dL/dq = (dL/dq̂ - q̂ (q̂ · dL/dq̂)) / |q|.
    let q_hat = p.quaternion;
    let along: f64 = (0..4).map(|k| q_hat[k] * d_unit_quaternion[k]).sum();
    for (k, dst) in out.of_mut(ParamGroup::Rotations, i).iter_mut().enumerate() {
        *dst += (d_unit_quaternion[k] - q_hat[k] * along) / p.quaternion_norm;
    }
}

/// `dL/d(w, x, y, z)` of [`rotation_matrix`] given `dL/dR`.
fn rotation_matrix_backward([w, x, y, z]: [f64; 4], d_r: DMat3) -> [f64; 4] {
    let g = |row: usize, col: usize| d_r.col(col)[row];
    [
        2.0 * (z * (g(1, 0) - g(0, 1)) + y * (g(0, 2) - g(2, 0)) + x * (g(2, 1) - g(1, 2))),
        2.0 * (y * (g(0, 1) + g(1, 0)) + z * (g(0, 2) + g(2, 0)) + w * (g(2, 1) - g(1, 2)))
            - 4.0 * x * (g(1, 1) + g(2, 2)),
        2.0 * (x * (g(0, 1) + g(1, 0)) + w * (g(0, 2) - g(2, 0)) + z * (g(1, 2) + g(2, 1)))
            - 4.0 * y * (g(0, 0) + g(2, 2)),
        2.0 * (w * (g(1, 0) - g(0, 1)) + x * (g(0, 2) + g(2, 0)) + y * (g(1, 2) + g(2, 1)))
            - 4.0 * z * (g(0, 0) + g(1, 1)),
    ]
}
