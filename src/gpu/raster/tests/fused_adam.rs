//! The projection backward that applies the Adam step itself (`ParamGradients::AdamStep`).

use super::*;
use crate::gpu::adam::{Adam, AdamStep};
use crate::model::OptimizerState;

/// Random Adam moments for the first `len` Gaussians (second moments non-negative).
fn random_moments(ctx: &GpuContext, rng: &mut Pcg32, len: u32, sh_degree: u32) -> OptimizerState {
    let state = OptimizerState::zeroed(ctx, len, sh_degree);
    for group in ParamGroup::ALL {
        let floats = len as usize * group.width(sh_degree);
        let m: Vec<f32> = (0..floats).map(|_| 0.02 * (rng.next_f32() - 0.5)).collect();
        let v: Vec<f32> = (0..floats).map(|_| 1e-4 * rng.next_f32()).collect();
        gpu::write_buffer(ctx, state.exp_avg.get(group), 0, &m);
        gpu::write_buffer(ctx, state.exp_avg_sq.get(group), 0, &v);
    }
    state
}

/// Parameters and both moments after one update, per group.
fn download_all(ctx: &GpuContext, cloud: &GaussianCloud, state: &OptimizerState) -> [Gaussians; 3] {
    let len = cloud.len as usize;
    [
        cloud.params.download(ctx, len),
        state.exp_avg.download(ctx, len),
        state.exp_avg_sq.download(ctx, len),
    ]
}

/// The fused backward gives the parameters and moments of the backward into gradients followed
/// by Adam's own kernel, for every group, with culled Gaussians (behind the camera, off
/// screen) updated by their zero gradient as torch's Adam updates the whole tensor. The
/// deterministic backward makes both passes see the same 2D gradients, so the only
/// differences left are the compiler's rounding of the same formula in two kernels.
fn fused_matches_separate(ctx: &GpuContext) {
    let mut rng = Pcg32::new(5, 0);
    for (n, sh_degree) in [(900, 3), (300, 1), (1, 0)] {
        let (gaussians, camera) = random_scene(&mut rng, n, sh_degree, 48, 40);
        let settings = random_settings(&mut rng, sh_degree);
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        let d_image = storage_buffer_from(ctx, "d_image", &d_image);
        let moments_seed = rng.next_u64();
        let steps: [AdamStep; 6] = std::array::from_fn(|g| AdamStep {
            lr: [1.6e-4, 5e-3, 1e-3, 5e-2, 2.5e-3, 1.25e-4][g],
            step: 7,
            enabled: true,
        });
        let mut adam = Adam::new(ctx);
        let mut results = Vec::new();
        for fused in [false, true] {
            let mut rasterizer = new_rasterizer(ctx, Binning::Deterministic);
            let mut frame = RasterFrame::new(ctx);
            let cloud = upload(ctx, &gaussians);
            let len = cloud.len;
            let state = random_moments(ctx, &mut Pcg32::new(moments_seed, 0), len, sh_degree);
            render(
                ctx,
                &mut rasterizer,
                &cloud,
                &camera,
                &settings,
                &mut frame,
                Binning::Deterministic,
            );
            if n > 1 {
                let culled = frame.read_radii(ctx).iter().filter(|&&r| r == 0).count();
                assert!(culled > 0 && culled < n, "{culled} of {n} culled");
            }
            let grads = ParamBuffers::zeroed(ctx, "grads", len, sh_degree);
            let update = adam.update(ctx, len, sh_degree, &steps);
            let target = if fused {
                ParamGradients::AdamStep {
                    optimizer: &state,
                    update: &update,
                }
            } else {
                ParamGradients::Write(&grads)
            };
            let mut encoder = new_encoder(ctx, "fused adam test");
            rasterizer.backward(
                ctx,
                &mut encoder,
                &cloud,
                &camera,
                &settings,
                &frame,
                &d_image,
                target,
                None,
                None,
            );
            if !fused {
                adam.encode(
                    ctx,
                    &mut encoder,
                    &cloud.params,
                    &grads,
                    &state,
                    len,
                    &steps,
                );
            }
            ctx.queue.submit([encoder.finish()]);
            results.push(download_all(ctx, &cloud, &state));
        }
        for (k, what) in ["parameter", "first moment", "second moment"]
            .into_iter()
            .enumerate()
        {
            for group in ParamGroup::ALL {
                let (separate, fused) = (results[0][k].group(group), results[1][k].group(group));
                assert_eq!(separate.len(), fused.len());
                for (i, (&a, &b)) in separate.iter().zip(fused).enumerate() {
                    let tolerance = 1e-6 * a.abs().max(1e-3);
                    assert!(
                        (a - b).abs() <= tolerance,
                        "{n} Gaussians, degree {sh_degree}: {what} {} [{i}]: separate {a}, fused {b}",
                        group.name()
                    );
                }
            }
        }
        // The update did happen: every parameter group moved.
        for group in ParamGroup::ALL {
            let moved = gaussians.group(group) != results[1][0].group(group);
            assert!(
                moved || group.width(sh_degree) == 0,
                "{} unchanged",
                group.name()
            );
        }
    }
}

#[test]
fn fused_adam_matches_backward_then_adam() {
    fused_matches_separate(test_context());
}

#[test]
fn fused_adam_matches_backward_then_adam_fallback_path() {
    fused_matches_separate(test_context_fallback());
}
