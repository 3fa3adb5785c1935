//! Edge cases against the reference: Gaussians placed at image borders, behind the camera,
//! degenerate or huge; empty clouds; every Gaussian covering every tile.

use super::*;
use crate::gpu::raster::uniforms::SHORT_BACKWARD_CHUNK_SIZE;

// ---------------------------------------------------------------------------------------------
// Edge cases

/// Appends a Gaussian placed in camera space: pixel `(u, v)` at view depth `depth`.
#[allow(clippy::too_many_arguments)]
fn push_gaussian(
    g: &mut Gaussians,
    camera: &Camera,
    (u, v, depth): (f64, f64, f64),
    log_scales: [f32; 3],
    rotation: [f32; 4],
    logit: f32,
    dc: [f32; 3],
) {
    let camera_space = glam::DVec3::new(
        (u - camera.cx) * depth / camera.fx,
        (v - camera.cy) * depth / camera.fy,
        depth,
    );
    let world = camera.world_from_camera_rotation() * (camera_space - camera.translation);
    g.means.extend(world.to_array().map(|x| x as f32));
    g.log_scales.extend(log_scales);
    g.rotations.extend(rotation);
    g.logit_opacities.push(logit);
    g.sh_dc.extend(dc);
    let rest = 3 * crate::sh::rest_coeffs_for_degree(g.sh_degree);
    g.sh_rest
        .extend((0..rest).map(|k| 0.05 * ((k % 7) as f32 - 3.0)));
}

/// A random scene plus hand-made edge cases (see the comments), and a second list of Gaussians
/// whose parameters overflow f32 inside the projection (the GPU culls them; the f64 reference
/// would not).
fn edge_case_scene(seed: u64) -> (Gaussians, Gaussians, Camera, RenderSettings) {
    let mut rng = Pcg32::new(seed, 99);
    let (mut g, camera) = random_scene(&mut rng, 150, 3, 70, 45);
    let settings = RenderSettings {
        background: [0.2, 0.5, 0.9],
        active_sh_degree: 1,
        ..RenderSettings::default()
    };
    let q = [0.9, 0.1, -0.3, 0.2];
    let id = [1.0, 0.0, 0.0, 0.0];
    let grey = [0.3, 0.3, 0.3];
    let px = |pixels: f64, depth: f64| ((pixels * depth / camera.fx).ln()) as f32;
    // Pixel positions avoid integers: an extent is an integer, so an integer position puts the
    // tile rectangle's edge exactly on a floor() boundary, where f32 and f64 may round apart.
    let cx = camera.cx.floor() + 0.37;
    let cy = camera.cy.floor() + 0.21;
    // Behind the camera, and in front of the near plane.
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, -1.0),
        [px(5.0, 1.0); 3],
        q,
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 0.1),
        [px(5.0, 0.1); 3],
        q,
        2.0,
        grey,
    );
    // Just beyond the near plane, large.
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 0.25),
        [px(9.0, 0.25); 3],
        q,
        0.0,
        grey,
    );
    // Straddling the borders; centred far outside but huge.
    push_gaussian(
        &mut g,
        &camera,
        (-3.63, 20.21, 2.0),
        [px(6.0, 2.0); 3],
        q,
        1.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (72.37, 47.21, 2.0),
        [px(6.0, 2.0); 3],
        q,
        1.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (-199.63, 10.21, 3.0),
        [px(150.0, 3.0); 3],
        q,
        1.0,
        grey,
    );
    // Huge (covers every tile), tiny, and a needle (scale ratio e^15).
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 3.0),
        [px(400.0, 3.0); 3],
        q,
        -2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (20.37, 20.21, 2.0),
        [-20.0; 3],
        q,
        3.0,
        grey,
    );
    let needle = px(30.0, 2.0);
    push_gaussian(
        &mut g,
        &camera,
        (40.37, 15.21, 2.0),
        [needle, needle - 15.0, needle - 15.0],
        q,
        3.0,
        grey,
    );
    // Zero opacity (logit -100), and opacity just above the 1/255 cull.
    push_gaussian(
        &mut g,
        &camera,
        (30.37, 30.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        -100.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (30.37, 30.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        -5.0,
        grey,
    );
    // A stack of opaque splats: the alpha cap and the transmittance stop.
    for k in 0..8 {
        let depth = 1.0 + 0.1 * f64::from(k);
        push_gaussian(
            &mut g,
            &camera,
            (50.37, 30.21, depth),
            [px(4.0, depth); 3],
            id,
            8.0,
            [0.5, 1.0, -0.5],
        );
    }
    // Very far away (depth 1e20).
    push_gaussian(&mut g, &camera, (cx, cy, 1e20), [0.0; 3], q, 2.0, grey);
    // Non-finite parameters, a zero quaternion and a tiny one.
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [nan, 0.0, 0.0, 1.0],
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [inf, 0.0, 0.0],
        q,
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        q,
        -inf,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        q,
        2.0,
        [0.1, nan, 0.1],
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [0.0; 4],
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [1e-20, 0.0, 0.0, 0.0],
        2.0,
        grey,
    );
    let n = g.len();
    push_gaussian(
        &mut g,
        &camera,
        (10.37, 10.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        2.0,
        grey,
    );
    g.means[3 * n] = nan; // NaN mean
    let n = g.len();
    push_gaussian(
        &mut g,
        &camera,
        (10.37, 10.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        2.0,
        grey,
    );
    let last = g.sh_rest.len() - 1;
    g.sh_rest[last] = inf; // Inf in an SH band above the active degree: still culled
    assert_eq!(g.len(), n + 1);
    g.check_shapes().unwrap();

    // Overflowing f32 inside the projection: log-scale 50 (exp(50)^2 > f32::MAX) and |q| = 1e20.
    let mut overflow = Gaussians::empty(3);
    push_gaussian(
        &mut overflow,
        &camera,
        (cx, cy, 2.0),
        [50.0; 3],
        q,
        2.0,
        grey,
    );
    push_gaussian(
        &mut overflow,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [1e20, 0.0, 0.0, 0.0],
        2.0,
        grey,
    );
    (g, overflow, camera, settings)
}

fn concat(a: &Gaussians, b: &Gaussians) -> Gaussians {
    let mut out = a.clone();
    for i in 0..b.len() {
        out.push_from(b, i);
    }
    out
}

pub(super) fn edge_cases_match_reference(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut frame = RasterFrame::new(ctx);
    for (seed, antialiased, tight) in [(5, false, false), (6, true, true)] {
        let (base, overflow, camera, mut settings) = edge_case_scene(seed);
        settings.antialiased = antialiased;
        settings.tight_tile_bounds = tight;
        let all = concat(&base, &overflow);
        let cloud = upload(ctx, &all);
        render(
            ctx,
            &mut rasterizer,
            &cloud,
            &camera,
            &settings,
            &mut frame,
            binning,
        );
        // The reference renders the cloud without the f32-overflow Gaussians, which the GPU
        // must cull: the images are then the same.
        let params = Params64::from(&base);
        let rendered = reference::render(&params, &camera, &settings);
        let gpu_splats = read_splats(ctx, &frame);
        let label = format!("{binning:?} edge cases (aa {antialiased}, tight {tight})");
        let boundary = compare_projection(
            &label,
            &gpu_splats[..base.len()],
            &rendered.projected,
            &base,
            &camera,
        );
        assert!(
            boundary.is_empty(),
            "{label}: boundary mismatches {boundary:?}"
        );
        assert!(gpu_splats[base.len()..].iter().all(|s| s.radius == 0));
        let (image_err, t_err, _) = compare_image(&label, ctx, &frame, &rendered, &gpu_splats, &[]);

        let mut rng = Pcg32::new(seed, 3);
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        let (grads, grad_2d) = backward(
            ctx,
            &mut rasterizer,
            &cloud,
            &camera,
            &settings,
            &frame,
            &d_image,
            None,
        );
        let d_image64: Vec<f64> = d_image.iter().map(|&v| f64::from(v)).collect();
        let reference = reference::render_backward(&params, &camera, &settings, &d_image64);
        // Gradients of the base Gaussians against the reference; exactly zero for the others.
        let mut base_grads = Gaussians::empty(3);
        for i in 0..base.len() {
            base_grads.push_from(&grads, i);
        }
        for group in ParamGroup::ALL {
            let w = group.width(3);
            assert!(
                grads.group(group)[base.len() * w..]
                    .iter()
                    .all(|&v| v == 0.0),
                "{label}: culled Gaussians must get zero {} gradients",
                group.name()
            );
        }
        let rel = compare_gradients(&label, &base_grads, &grad_2d[..9 * base.len()], &reference);
        // The culled ones (NaN, behind, ...) have zero gradients in the reference too, which the
        // elementwise check above enforced; say how many there were.
        let culled = rendered.projected.iter().filter(|p| !p.visible).count();
        eprintln!(
            "{label}: image {image_err:.2e}, T {t_err:.2e}, grad rel {rel:.2e}; {culled} of {} \
             culled, {} more culled for f32 overflow",
            base.len(),
            overflow.len()
        );
    }
}

#[test]
fn edge_cases_match_reference_fast_path() {
    edge_cases_match_reference(test_context(), Binning::Cpu);
}

#[test]
fn edge_cases_match_reference_fallback_path() {
    edge_cases_match_reference(test_context_fallback(), Binning::Cpu);
}

/// An empty cloud renders the background, and its backward pass does nothing (and does not
/// crash); a render of a cloud of one Gaussian afterwards still works.
pub(super) fn empty_and_single(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(11, 0);
    let (one, camera) = random_scene(&mut rng, 1, 1, 33, 21);
    let settings = RenderSettings {
        background: [0.25, 0.5, 0.75],
        ..RenderSettings::default()
    };
    let empty = Gaussians::empty(1);
    let cloud = GaussianCloud::from_gaussians(ctx, &empty, 4);
    render(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &mut frame,
        binning,
    );
    assert_eq!(frame.num_intersections, 0);
    let image = frame.read_image(ctx);
    let plane = 33 * 21;
    for c in 0..3 {
        assert!(
            image[c * plane..(c + 1) * plane]
                .iter()
                .all(|&v| v == settings.background[c])
        );
    }
    assert!(
        frame
            .read_final_transmittance(ctx)
            .iter()
            .all(|&t| t == 1.0)
    );
    let d_image = random_d_image(&mut rng, 33, 21);
    let (grads, _) = backward(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &frame,
        &d_image,
        None,
    );
    assert_eq!(grads.len(), 0);

    // One Gaussian, placed in the middle so it is visible.
    let mut single = Gaussians::empty(1);
    push_gaussian(
        &mut single,
        &camera,
        (16.37, 10.21, 2.0),
        // Anisotropic: an isotropic Gaussian's rotation gradient is exactly zero in the
        // reference and f32 noise on the GPU, which no relative metric can compare.
        [-2.1, -1.6, -1.9],
        one.rotations[..4].try_into().unwrap(),
        1.0,
        [0.4, -0.2, 1.0],
    );
    let result = check_scene(
        ctx,
        &mut rasterizer,
        &mut frame,
        &format!("{binning:?} single Gaussian"),
        &single,
        &camera,
        &settings,
        &d_image,
        binning,
    );
    assert!(frame.num_intersections > 0);
    assert!(result.grad_rel.is_some());
}

#[test]
fn empty_and_single_gaussian_fast_path() {
    empty_and_single(test_context(), Binning::Cpu);
}

#[test]
fn empty_and_single_gaussian_fallback_path() {
    empty_and_single(test_context_fallback(), Binning::Cpu);
}

/// Every Gaussian covers every tile: the longest possible tile lists (more than one batch of
/// 256), and every workgroup sees every splat. `chunk_size`: the backward's pieces, else the
/// device's default.
pub(super) fn all_cover_all(ctx: &GpuContext, binning: Binning, chunk_size: Option<u32>) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    if let Some(chunk_size) = chunk_size {
        rasterizer.set_chunk_size(chunk_size).unwrap();
    }
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(21, 0);
    let (_, camera) = random_scene(&mut rng, 0, 0, 50, 35);
    let mut g = Gaussians::empty(0);
    let n = 600;
    for _ in 0..n {
        let depth = 2.0 + 2.0 * rng.next_f64();
        let u = 25.0 + 10.0 * (rng.next_f64() - 0.5);
        let v = 17.0 + 10.0 * (rng.next_f64() - 0.5);
        let size = 40.0 + 20.0 * rng.next_f64();
        let q = [
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
        ];
        let dc = [
            rng.next_f32() - 0.5,
            rng.next_f32(),
            2.0 * rng.next_f32() - 1.0,
        ];
        push_gaussian(
            &mut g,
            &camera,
            (u, v, depth),
            // Anisotropic, so the rotation gradient is not zero (for an isotropic Gaussian it is
            // exactly zero in the reference and f32 noise on the GPU).
            std::array::from_fn(|_| ((size * depth / camera.fx).ln() + 0.3 * rng.normal()) as f32),
            q,
            -4.0 + rng.next_f32(),
            dc,
        );
    }
    let settings = RenderSettings {
        background: [1.0, 1.0, 1.0],
        active_sh_degree: 0,
        ..RenderSettings::default()
    };
    let d_image = random_d_image(&mut rng, camera.width, camera.height);
    let result = check_scene(
        ctx,
        &mut rasterizer,
        &mut frame,
        &format!("{binning:?} all cover all"),
        &g,
        &camera,
        &settings,
        &d_image,
        binning,
    );
    let [gx, gy] = frame.tile_grid();
    assert_eq!(frame.num_intersections, n as u32 * gx * gy);
    eprintln!(
        "{binning:?} all cover all: image {:.2e}, grad rel {:?}",
        result.image_err, result.grad_rel
    );
}

#[test]
fn every_gaussian_covers_every_tile_fast_path() {
    all_cover_all(test_context(), Binning::Cpu, None);
}

#[test]
fn every_gaussian_covers_every_tile_fallback_path() {
    all_cover_all(test_context_fallback(), Binning::Cpu, None);
}

/// Lists of 600 in the short pieces of devices with large bindings (cut at 128, 256, 384, 512).
#[test]
fn every_gaussian_covers_every_tile_in_short_pieces_fast_path() {
    all_cover_all(
        test_context(),
        Binning::Cpu,
        Some(SHORT_BACKWARD_CHUNK_SIZE),
    );
}

#[test]
fn every_gaussian_covers_every_tile_in_short_pieces_fallback_path() {
    all_cover_all(
        test_context_fallback(),
        Binning::Cpu,
        Some(SHORT_BACKWARD_CHUNK_SIZE),
    );
}
