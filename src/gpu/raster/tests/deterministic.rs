//! The deterministic backward pass and tile culling.

use super::binning::splat_reaches_tile;
use super::edge_cases::{all_cover_all, edge_cases_match_reference, empty_and_single};
use super::frames::densify_stats_two_views;
use super::*;

// ---------------------------------------------------------------------------------------------
// The deterministic backward pass

#[test]
fn deterministic_backward_matches_reference() {
    let ctx = test_context();
    random_scenes_match_reference(ctx, Binning::Deterministic, 5);
    edge_cases_match_reference(ctx, Binning::Deterministic);
    empty_and_single(ctx, Binning::Deterministic);
    // The pieces of large images: lists of 600 cut once, at 512.
    all_cover_all(ctx, Binning::Deterministic, Some(512));
    densify_stats_two_views(ctx, Binning::Deterministic);
}

#[test]
fn deterministic_backward_matches_reference_fallback_path() {
    let ctx = test_context_fallback();
    random_scenes_match_reference(ctx, Binning::Deterministic, 6);
    // The pieces of large images: lists of 600 cut once, at 512.
    all_cover_all(ctx, Binning::Deterministic, Some(512));
}

/// Repeated backward passes of one scene give bit-identical gradients in deterministic mode,
/// on both device paths, with tile lists long enough to be cut into several pieces.
#[test]
fn deterministic_backward_is_bit_identical() {
    for ctx in [test_context(), test_context_fallback()] {
        let mut rasterizer = new_rasterizer(ctx, Binning::Deterministic);
        let mut frame = RasterFrame::new(ctx);
        let mut rng = Pcg32::new(77, 0);
        let (gaussians, camera) = random_scene(&mut rng, 4000, 1, 48, 40);
        let settings = random_settings(&mut rng, 1);
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        let cloud = upload(ctx, &gaussians);
        let mut runs = Vec::new();
        for _ in 0..3 {
            render(
                ctx,
                &mut rasterizer,
                &cloud,
                &camera,
                &settings,
                &mut frame,
                Binning::Deterministic,
            );
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
            let bits: Vec<u32> = ParamGroup::ALL
                .iter()
                .flat_map(|&g| grads.group(g).to_vec())
                .chain(grad_2d)
                .map(f32::to_bits)
                .collect();
            runs.push(bits);
        }
        let [gx, gy] = frame.tile_grid();
        let ranges: Vec<u32> = read_buffer(ctx, &frame.tile_ranges, 2 * (gx * gy) as usize);
        let longest = ranges.chunks(2).map(|r| r[1] - r[0]).max().unwrap();
        assert!(
            longest > 2 * frame.uniforms_value.chunk_size,
            "the scene should cut lists into pieces (longest list {longest})"
        );
        assert!(runs[0].iter().any(|&b| b != 0));
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0], runs[2]);
    }
}

/// The tile culling of bin.wgsl (mirrored by `binning::splat_reaches_tile`, which
/// `gpu_binning_equals_cpu_binning` shows to agree with the shader) drops a tile only where
/// every pixel centre has alpha below 1/255 (f64), and drops many tiles of the rectangle.
#[test]
fn culled_tiles_receive_no_alpha() {
    let mut rng = Pcg32::new(8, 0);
    let (mut culled, mut kept) = (0, 0);
    for _ in 0..3000 {
        // A random 2D covariance (blur included), opacity and mean.
        let sx = (0.5 + 40.0 * rng.next_f64()).powi(2);
        let sy = (0.5 + 40.0 * rng.next_f64()).powi(2);
        let angle = std::f64::consts::PI * rng.next_f64();
        let (sin, cos) = angle.sin_cos();
        let cov = [
            cos * cos * sx + sin * sin * sy + 0.3,
            cos * sin * (sx - sy),
            sin * sin * sx + cos * cos * sy + 0.3,
        ];
        let det = cov[0] * cov[2] - cov[1] * cov[1];
        let conic = [cov[2] / det, -cov[1] / det, cov[0] / det];
        let opacity = 1.0 / 255.0 + (1.0 - 1.0 / 255.0) * rng.next_f64().powi(3);
        let mean = [200.0 * rng.next_f64(), 200.0 * rng.next_f64()];
        let splat = GpuSplat {
            mean2d: mean.map(|v| v as f32),
            conic: conic.map(|v| v as f32),
            opacity: opacity as f32,
            color: [0.0; 3],
            radius: 1,
            tile_min: [0, 0],
            tile_max: [0, 0],
        };
        let tx = (mean[0] / 16.0) as i64 + (rng.next_f64() * 12.0) as i64 - 6;
        let ty = (mean[1] / 16.0) as i64 + (rng.next_f64() * 12.0) as i64 - 6;
        if tx < 0 || ty < 0 {
            continue;
        }
        if splat_reaches_tile(&splat, tx as u32, ty as u32) {
            kept += 1;
            continue;
        }
        culled += 1;
        let (a, b, c) = (
            f64::from(splat.conic[0]),
            f64::from(splat.conic[1]),
            f64::from(splat.conic[2]),
        );
        for py in 0..16 {
            for px in 0..16 {
                let dx = (tx * 16 + px) as f64 + 0.5 - f64::from(splat.mean2d[0]);
                let dy = (ty * 16 + py) as f64 + 0.5 - f64::from(splat.mean2d[1]);
                let power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy;
                let alpha = f64::from(splat.opacity) * power.exp();
                assert!(
                    alpha < 1.0 / 255.0,
                    "tile ({tx}, {ty}) culled but pixel ({px}, {py}) has alpha {alpha}"
                );
            }
        }
    }
    eprintln!("tiles culled {culled}, kept {kept}");
    assert!(culled > 500 && kept > 500);
}
