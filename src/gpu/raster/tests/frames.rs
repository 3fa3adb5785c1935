//! Densification statistics over two views, frame buffers reused across renders, and
//! invalid inputs.

use super::*;

// ---------------------------------------------------------------------------------------------
// Densification statistics and buffer reuse

/// Two consecutive views accumulate into one `DensifyStats`: the sums of the reference's
/// `screen_grad_ndc_norm`, the visit counts, and the largest radius.
pub(super) fn densify_stats_two_views(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut rng = Pcg32::new(31, 0);
    let (g, camera_a) = random_scene(&mut rng, 400, 1, 48, 40);
    // The second view: turned a little and moved sideways.
    let turn = glam::DMat3::from_rotation_y(0.15) * camera_a.world_from_camera_rotation();
    let camera_b = Camera::from_world_pose(
        48,
        40,
        camera_a.fx,
        camera_a.fy,
        camera_a.cx,
        camera_a.cy,
        turn,
        camera_a.center() + glam::DVec3::new(0.2, -0.1, 0.05),
    );
    let settings = RenderSettings::default();
    let cloud = upload(ctx, &g);
    let stats = DensifyStats::zeroed(ctx, cloud.capacity());
    let params = Params64::from(&g);
    let n = g.len();
    let mut expected_norm = vec![0.0f64; n];
    let mut expected_count = vec![0u32; n];
    let mut expected_radius = vec![0u32; n];
    for camera in [&camera_a, &camera_b] {
        let mut frame = RasterFrame::new(ctx);
        render(
            ctx,
            &mut rasterizer,
            &cloud,
            camera,
            &settings,
            &mut frame,
            binning,
        );
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        backward(
            ctx,
            &mut rasterizer,
            &cloud,
            camera,
            &settings,
            &frame,
            &d_image,
            Some(&stats),
        );
        let d_image64: Vec<f64> = d_image.iter().map(|&v| f64::from(v)).collect();
        let reference = reference::render_backward(&params, camera, &settings, &d_image64);
        let gpu_radii = frame.read_radii(ctx);
        for i in 0..n {
            expected_norm[i] += reference.screen_grad_ndc_norm[i];
            expected_count[i] += u32::from(reference.radii[i] > 0);
            expected_radius[i] = expected_radius[i].max(reference.radii[i]);
            assert_eq!(gpu_radii[i], reference.radii[i], "radius of Gaussian {i}");
        }
    }
    let norm: Vec<f32> = read_buffer(ctx, &stats.grad_norm_sum, n);
    let count: Vec<u32> = read_buffer(ctx, &stats.visible_count, n);
    let radius: Vec<f32> = read_buffer(ctx, &stats.max_radius, n);
    assert_eq!(count, expected_count);
    let expected_radius: Vec<f32> = expected_radius.iter().map(|&r| r as f32).collect();
    assert_eq!(radius, expected_radius);
    let rel = compare_gradient(
        &format!("{binning:?} densify stats"),
        "grad_norm_sum",
        &norm,
        &expected_norm,
    );
    let visible_twice = count.iter().filter(|&&c| c == 2).count();
    eprintln!(
        "{binning:?} densify stats: grad norm rel {rel:.2e}; {visible_twice} of {n} visible in both views"
    );
    assert!(
        visible_twice > n / 4,
        "the two views should share many Gaussians"
    );
}

#[test]
fn densify_stats_accumulate_over_two_views_fast_path() {
    densify_stats_two_views(test_context(), Binning::Cpu);
}

#[test]
fn densify_stats_accumulate_over_two_views_fallback_path() {
    densify_stats_two_views(test_context_fallback(), Binning::Cpu);
}

/// Rendering again at the same sizes reuses every buffer (no per-render allocation once sizes
/// are stable), and gives the same image.
#[test]
fn frame_buffers_are_reused() {
    let ctx = test_context();
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(41, 0);
    let (g, camera) = random_scene(&mut rng, 300, 2, 40, 30);
    let cloud = upload(ctx, &g);
    let settings = RenderSettings::default();
    render(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &mut frame,
        Binning::Cpu,
    );
    let first = frame.read_image(ctx);
    let buffers = [
        frame.image.clone(),
        frame.splats.clone(),
        frame.intersection_tiles.clone(),
        frame.tile_ranges.clone(),
    ];
    render(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &mut frame,
        Binning::Cpu,
    );
    assert_eq!(frame.read_image(ctx), first);
    let again = [
        &frame.image,
        &frame.splats,
        &frame.intersection_tiles,
        &frame.tile_ranges,
    ];
    assert!(buffers.iter().zip(again).all(|(a, b)| a == b));
}

#[test]
fn tile_key_bits_cover_every_tile_id() {
    assert_eq!(tile_key_bits(1), 0);
    assert_eq!(tile_key_bits(2), 1);
    assert_eq!(tile_key_bits(3), 2);
    assert_eq!(tile_key_bits(4), 2);
    assert_eq!(tile_key_bits(5), 3);
    assert_eq!(tile_key_bits(120 * 68), 13);
    assert_eq!(tile_key_bits(8192), 13);
    assert_eq!(tile_key_bits(8193), 14);
}

#[test]
fn invalid_inputs_are_errors() {
    let ctx = test_context();
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(1, 0);
    let (g, mut camera) = random_scene(&mut rng, 5, 0, 16, 16);
    let cloud = upload(ctx, &g);
    let mut settings = RenderSettings {
        near_plane: f32::NAN,
        ..RenderSettings::default()
    };
    let err = rasterizer.forward(ctx, &cloud, &camera, &settings, &mut frame, None);
    assert!(matches!(err, Err(RasterError::InvalidSettings(_))));
    settings.near_plane = 0.2;
    camera.fx = -1.0;
    let err = rasterizer.forward(ctx, &cloud, &camera, &settings, &mut frame, None);
    assert!(matches!(err, Err(RasterError::InvalidCamera)));
}
