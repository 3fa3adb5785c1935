//! The GPU binning (gpu::sort, gpu::scan) against the CPU stand-in, and deferred
//! intersection counts.

use super::edge_cases::{all_cover_all, edge_cases_match_reference, empty_and_single};
use super::frames::densify_stats_two_views;
use super::*;

// ---------------------------------------------------------------------------------------------
// GPU binning (gpu::sort, gpu::scan)

#[test]
fn random_scenes_match_reference_fast_path() {
    random_scenes_match_reference(test_context(), Binning::Gpu, 3);
}

#[test]
fn random_scenes_match_reference_fallback_path() {
    random_scenes_match_reference(test_context_fallback(), Binning::Gpu, 4);
}

#[test]
fn edge_cases_with_gpu_binning() {
    edge_cases_match_reference(test_context(), Binning::Gpu);
    empty_and_single(test_context(), Binning::Gpu);
    all_cover_all(test_context(), Binning::Gpu, None);
    densify_stats_two_views(test_context(), Binning::Gpu);
}

/// The GPU's depth order, intersection list and tile ranges equal the ones built on the CPU
/// from the same projection: sorted by (tile, depth, index), exactly.
#[test]
fn gpu_binning_equals_cpu_binning() {
    let ctx = test_context();
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(51, 0);
    // 320x192 (240 tiles): Gaussians reaching far more tiles than a thread usually writes.
    for (n, width, height) in [(3000, 96, 80), (500, 33, 17), (1, 16, 16), (2000, 320, 192)] {
        let (mut g, camera) = random_scene(&mut rng, n, 1, width, height);
        // Equal depths: the sort must keep index order among them.
        if n > 10 {
            for i in 0..5 {
                let (a, b) = (3 * i, 3 * (i + 5));
                g.means.copy_within(a..a + 3, b);
            }
        }
        let cloud = upload(ctx, &g);
        let settings = RenderSettings::default();
        rasterizer
            .forward(ctx, &cloud, &camera, &settings, &mut frame, None)
            .unwrap();
        let keys: Vec<u32> = read_buffer(ctx, &frame.depth_keys, n);
        let ids: Vec<u32> = read_buffer(ctx, &frame.depth_ids, n);
        let mut seen = vec![false; n];
        for &id in &ids {
            assert!(!seen[id as usize], "depth ids are not a permutation");
            seen[id as usize] = true;
        }
        for k in 1..n {
            assert!(
                (keys[k - 1], ids[k - 1]) < (keys[k], ids[k]),
                "depth order broken at {k}: ({}, {}) then ({}, {})",
                keys[k - 1],
                ids[k - 1],
                keys[k],
                ids[k]
            );
        }
        let splats = read_splats(ctx, &frame);
        let [gx, gy] = frame.tile_grid();
        let mut expected: Vec<(u32, u32)> = Vec::new();
        let mut rect_entries = 0;
        for &id in &ids {
            let s = &splats[id as usize];
            if s.radius == 0 {
                continue;
            }
            for y in s.tile_min[1]..s.tile_max[1] {
                for x in s.tile_min[0]..s.tile_max[0] {
                    rect_entries += 1;
                    if splat_reaches_tile(s, x, y) {
                        expected.push((y * gx + x, id));
                    }
                }
            }
        }
        let most_tiles = ids
            .iter()
            .map(|id| expected.iter().filter(|p| p.1 == *id).count())
            .max()
            .unwrap_or(0);
        if width >= 320 {
            assert!(most_tiles > 64, "{most_tiles} tiles at most per Gaussian");
        }
        expected.sort_by_key(|p| p.0);
        let m = frame.num_intersections as usize;
        assert_eq!(m, expected.len());
        let tiles: Vec<u32> = read_buffer(ctx, &frame.intersection_tiles, m);
        let gaussians: Vec<u32> = read_buffer(ctx, &frame.intersection_gaussians, m);
        let actual: Vec<(u32, u32)> = tiles.into_iter().zip(gaussians).collect();
        assert!(actual == expected, "intersection lists differ");
        let ranges: Vec<[u32; 2]> = read_buffer(ctx, &frame.tile_ranges, (gx * gy) as usize);
        for tile in 0..gx * gy {
            let start = expected.partition_point(|p| p.0 < tile) as u32;
            let end = expected.partition_point(|p| p.0 <= tile) as u32;
            let expected_range = if start == end { [0, 0] } else { [start, end] };
            assert_eq!(
                ranges[tile as usize], expected_range,
                "range of tile {tile}"
            );
        }
        eprintln!(
            "{n} Gaussians {width}x{height}: {m} intersections binned exactly \
             ({rect_entries} tiles in the rectangles, at most {most_tiles} per Gaussian)"
        );
    }
}

/// The tile culling of binning (`reached_columns` in splat_reach.wgsl), in the
/// same f32 operations: whether `s` reaches tile (`tile_x`, `tile_y`) of its rectangle.
pub(super) fn splat_reaches_tile(s: &GpuSplat, tile_x: u32, tile_y: u32) -> bool {
    const CULL_MARGIN: f32 = 1e-4;
    const MIN_CONIC_CONDITION: f32 = 1e-3;
    const STRIP_SLACK: f32 = 0.05;
    let [a, b, c] = s.conic;
    let det = a * c - b * b;
    let t = 2.0 * (255.0 * s.opacity).ln();
    let extent = [(c * t / det).sqrt(), (a * t / det).sqrt()];
    let scale = a * extent[0] * extent[0]
        + c * extent[1] * extent[1]
        + 2.0 * b.abs() * extent[0] * extent[1];
    let threshold = t + CULL_MARGIN * (scale + 1.0);
    if !(det >= MIN_CONIC_CONDITION * a * c && scale.is_finite()) {
        return true;
    }
    let extent = [(c * threshold / det).sqrt(), (a * threshold / det).sqrt()];
    let tile = TILE_SIZE as f32;
    let low = tile_y as f32 * tile + 0.5 - s.mean2d[1];
    let high = low + tile - 1.0;
    let y_reach = extent[1] * (1.0 + STRIP_SLACK) + 0.05;
    let (y0, y1) = (low.max(-y_reach), high.min(y_reach));
    // Empty strip (or NaN).
    if !matches!(
        y0.partial_cmp(&y1),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    ) {
        return false;
    }
    let root0 = (a * threshold - det * y0 * y0).max(0.0).sqrt();
    let root1 = (a * threshold - det * y1 * y1).max(0.0).sqrt();
    let peak = b * extent[0] / c;
    let mut right = (-b * y0 + root0).max(-b * y1 + root1) / a;
    if y0 <= -peak && -peak <= y1 {
        right = extent[0];
    }
    let mut left = (-b * y0 - root0).min(-b * y1 - root1) / a;
    if y0 <= peak && peak <= y1 {
        left = -extent[0];
    }
    let slack = STRIP_SLACK * extent[0] + 0.05;
    let (left, right) = (left - slack, right + slack);
    let first = ((left + s.mean2d[0] - (tile - 0.5)) / tile).ceil();
    let last = ((right + s.mean2d[0] - 0.5) / tile).floor();
    if first.is_nan() || last.is_nan() {
        return true;
    }
    first <= tile_x as f32 && tile_x as f32 <= last
}

/// Renders with deferred intersection counts equal exact ones (same image bit for bit, same
/// gradients up to the order of float atomics), on both device paths.
#[test]
fn deferred_counts_render_like_exact_counts() {
    for ctx in [test_context(), test_context_fallback()] {
        let mut rng = Pcg32::new(77, 0);
        let (g, camera) = random_scene(&mut rng, 800, 2, 61, 47);
        let (_, other_camera) = random_scene(&mut rng, 1, 2, 61, 47);
        let cloud = upload(ctx, &g);
        let settings = RenderSettings::default();
        let mut exact = Rasterizer::new(ctx);
        let mut deferred = Rasterizer::new(ctx);
        deferred.set_deferred_counts(true);
        let mut exact_frame = RasterFrame::new(ctx);
        let mut deferred_frame = RasterFrame::new(ctx);
        let d_image = random_d_image(&mut rng, 61, 47);
        let d_image = storage_buffer_from(ctx, "d_image", &d_image);
        // The first deferred render is exact (it sets the basis); the next two are deferred.
        for (round, cam) in [&camera, &camera, &other_camera].into_iter().enumerate() {
            let mut images = Vec::new();
            let mut grads = Vec::new();
            for (r, frame) in [
                (&mut exact, &mut exact_frame),
                (&mut deferred, &mut deferred_frame),
            ] {
                r.forward(ctx, &cloud, cam, &settings, frame, None).unwrap();
                images.push(frame.read_image(ctx));
                let g = ParamBuffers::zeroed(ctx, "grads", cloud.len, cloud.sh_degree());
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                r.backward(
                    ctx,
                    &mut Recorder::new(&mut encoder),
                    &cloud,
                    cam,
                    &settings,
                    frame,
                    &d_image,
                    &g,
                    BandGradients::Buffer,
                    None,
                    None,
                );
                ctx.queue.submit([encoder.finish()]);
                grads.push(g.download(ctx, cloud.len as usize));
            }
            assert_eq!(images[0], images[1], "round {round}: images differ");
            for group in ParamGroup::ALL {
                let (a, b) = (grads[0].group(group), grads[1].group(group));
                let norm: f64 = a.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                let diff: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(x - y).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    diff <= 1e-5 * norm.max(1e-12),
                    "round {round}: {group:?} differs"
                );
            }
        }
        assert_eq!(deferred_frame.intersection_overflows, 0);
        // Only the first render of the shape waited for its count.
        assert_eq!(
            deferred_frame.num_intersections, 0,
            "the last render was deferred"
        );
    }
}

/// A deferred render whose view has more intersections than the list holds drops the farthest
/// entries, is counted as an overflow once its count reaches the CPU, and the next render is
/// exact again.
#[test]
fn deferred_count_overflow_is_detected_and_recovered() {
    let ctx = test_context();
    let mut rng = Pcg32::new(78, 0);
    let (mut g, camera) = random_scene(&mut rng, 1500, 0, 64, 48);
    // Small Gaussians first, then the same number 50 times larger: far more tiles each (the
    // deferred list is sized from the counts of earlier renders of the same shape).
    let mut grown = g.clone();
    for (small, large) in g.log_scales.iter_mut().zip(&mut grown.log_scales) {
        *small -= 2.0;
        *large += 2.0;
    }
    let (small, large) = (upload(ctx, &g), upload(ctx, &grown));
    let settings = RenderSettings::default();
    let mut exact = Rasterizer::new(ctx);
    let mut exact_frame = RasterFrame::new(ctx);
    let mut count = |cloud: &GaussianCloud| {
        exact
            .forward(ctx, cloud, &camera, &settings, &mut exact_frame, None)
            .unwrap();
        exact_frame.num_intersections
    };
    let (small_count, large_count) = (count(&small), count(&large));
    assert!(
        large_count > 2 * small_count.max(1024),
        "the scene must overflow the deferred list: {small_count} vs {large_count}"
    );
    let expected_large = exact_frame.read_image(ctx);

    let mut deferred = Rasterizer::new(ctx);
    deferred.set_deferred_counts(true);
    let mut frame = RasterFrame::new(ctx);
    for cloud in [&small, &large] {
        deferred
            .forward(ctx, cloud, &camera, &settings, &mut frame, None)
            .unwrap();
    }
    assert_eq!(frame.num_intersections, 0, "the second render was deferred");
    ctx.wait_idle();
    // The next render notices the overflow and waits for its count.
    deferred
        .forward(ctx, &large, &camera, &settings, &mut frame, None)
        .unwrap();
    assert_eq!(frame.intersection_overflows, 1);
    assert_eq!(
        frame.num_intersections, large_count,
        "exact again after the overflow"
    );
    assert_eq!(frame.read_image(ctx), expected_large);
}
