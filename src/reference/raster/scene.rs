//! Random scenes and settings for rasterizer tests (shared by the reference's own tests and the
//! GPU kernel tests).

use crate::camera::Camera;
use crate::model::Gaussians;
use crate::render_settings::RenderSettings;
use crate::rng::Pcg32;
use crate::sh;
use glam::{DMat3, DQuat, DVec3};

fn uniform(rng: &mut Pcg32, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.next_f64()
}

/// A random camera and `n` random Gaussians of SH degree `sh_degree`, built to exercise every
/// branch of the rasterizer:
/// - the camera has a random pose, focal lengths around the image width (`fx != fy`) and a
///   principal point off the image centre;
/// - about 1 in 12 Gaussians lies behind the camera or in front of the near plane; the others are
///   at depths 0.5 to 6 with pixel positions in `[-0.25, 1.25]` times the image size, so some
///   straddle the border and some trigger the Jacobian clamp;
/// - projected sizes from 0.3 pixels to 40% of the image, anisotropic, with random unnormalised
///   quaternions (norms 0.3 to 3);
/// - opacity logits uniform in `[-4, 6]` (some alphas reach the 0.99 cap, and dense overlaps
///   reach the transmittance stop);
/// - SH DC coefficients giving raw colours in about `[-0.2, 1.2]` (some channels clamp), higher
///   bands `~ N(0, 0.25)`.
pub fn random_scene(
    rng: &mut Pcg32,
    n: usize,
    sh_degree: u32,
    width: u32,
    height: u32,
) -> (Gaussians, Camera) {
    let (w, h) = (f64::from(width), f64::from(height));
    let fx = w * uniform(rng, 0.7, 1.4);
    let fy = fx * uniform(rng, 0.9, 1.1);
    let cx = w * uniform(rng, 0.4, 0.6);
    let cy = h * uniform(rng, 0.4, 0.6);
    let orientation =
        DQuat::from_xyzw(rng.normal(), rng.normal(), rng.normal(), rng.normal()).normalize();
    let centre = DVec3::new(
        uniform(rng, -2.0, 2.0),
        uniform(rng, -2.0, 2.0),
        uniform(rng, -2.0, 2.0),
    );
    let camera = Camera::from_world_pose(
        width,
        height,
        fx,
        fy,
        cx,
        cy,
        DMat3::from_quat(orientation),
        centre,
    );

    let mut g = Gaussians::empty(sh_degree);
    let rest_count = 3 * sh::rest_coeffs_for_degree(sh_degree);
    for _ in 0..n {
        let depth = if rng.below(12) == 0 {
            uniform(rng, -1.0, 0.25)
        } else {
            uniform(rng, 0.5, 6.0)
        };
        let u = uniform(rng, -0.25, 1.25) * w;
        let v = uniform(rng, -0.25, 1.25) * h;
        let camera_space = DVec3::new((u - cx) * depth / fx, (v - cy) * depth / fy, depth);
        let world = camera.world_from_camera_rotation() * (camera_space - camera.translation);
        g.means.extend(world.to_array().map(|x| x as f32));

        let size_pixels = uniform(rng, 0.3f64.ln(), (0.4 * w.min(h)).ln()).exp();
        let size_world = size_pixels * depth.abs().max(0.5) / fx;
        for _ in 0..3 {
            g.log_scales
                .push((size_world.ln() + 0.5 * rng.normal()) as f32);
        }

        let quaternion_norm = uniform(rng, 0.3, 3.0);
        let q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
        let length = q.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-6);
        g.rotations
            .extend(q.map(|v| (v / length * quaternion_norm) as f32));

        g.logit_opacities.push(uniform(rng, -4.0, 6.0) as f32);
        for _ in 0..3 {
            g.sh_dc.push(uniform(rng, -2.5, 2.5) as f32);
        }
        for _ in 0..rest_count {
            g.sh_rest.push((0.25 * rng.normal()) as f32);
        }
    }
    (g, camera)
}

/// Random render settings: non-black background, an active SH degree up to `max_sh_degree`,
/// antialiasing and tight tile bounds on or off.
pub fn random_settings(rng: &mut Pcg32, max_sh_degree: u32) -> RenderSettings {
    RenderSettings {
        background: [rng.next_f32(), rng.next_f32(), rng.next_f32()],
        active_sh_degree: rng.below(max_sh_degree + 1),
        near_plane: 0.2,
        antialiased: rng.below(2) == 1,
        tight_tile_bounds: rng.below(2) == 1,
    }
}
