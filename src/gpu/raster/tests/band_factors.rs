//! The backward pass that leaves the higher SH bands' gradient as factors (training's choice,
//! `BandGradients::Factors`): every other gradient as in the buffer mode, the bands' gradient
//! buffer untouched, and an Adam step from the factors equal to one from the buffer mode's
//! gradient (which the reference tests check against f64 and finite differences).

use super::*;
use crate::gpu::adam::{Adam, advance_steps};
use crate::model::OptimizerState;

/// Adam state with random moments, as after some training.
fn random_state(ctx: &GpuContext, rng: &mut Pcg32, len: usize, sh_degree: u32) -> OptimizerState {
    let state = OptimizerState::zeroed(ctx, len as u32, sh_degree);
    let mut m = Gaussians::empty(sh_degree);
    let mut v = Gaussians::empty(sh_degree);
    for group in ParamGroup::ALL {
        let n = len * group.width(sh_degree);
        *m.group_mut(group) = (0..n).map(|_| (rng.normal() * 1e-3) as f32).collect();
        *v.group_mut(group) = (0..n)
            .map(|_| (rng.normal() * 1e-3).powi(2) as f32)
            .collect();
    }
    state.exp_avg.upload(ctx, &m);
    state.exp_avg_sq.upload(ctx, &v);
    state
}

fn factors_match_buffer_gradients(ctx: &GpuContext) {
    // Deterministic: two backward passes of one scene give bit-identical gradients.
    let mut rasterizer = new_rasterizer(ctx, Binning::Deterministic);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(31, 5);
    for (scene, sh_degree) in [3, 3, 2, 1].into_iter().enumerate() {
        let (gaussians, camera) = random_scene(&mut rng, 400, sh_degree, 48, 40);
        let mut settings = random_settings(&mut rng, sh_degree);
        // Once with bands above the evaluated degree (their gradient is zero).
        settings.active_sh_degree = if scene == 1 { 1 } else { sh_degree };
        let cloud = upload(ctx, &gaussians);
        let binning = Binning::Deterministic;
        render(
            ctx,
            &mut rasterizer,
            &cloud,
            &camera,
            &settings,
            &mut frame,
            binning,
        );
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        let d_image = storage_buffer_from(ctx, "d_image", &d_image);
        let (cam, set) = (&camera, &settings);
        let with_factors = backward_into_garbage(
            ctx,
            &mut rasterizer,
            &cloud,
            cam,
            set,
            &frame,
            &d_image,
            BandGradients::Factors,
            None,
        );
        let with_buffer = backward_into_garbage(
            ctx,
            &mut rasterizer,
            &cloud,
            cam,
            set,
            &frame,
            &d_image,
            BandGradients::Buffer,
            None,
        );
        let len = cloud.len as usize;
        let (factors_cpu, buffer_cpu) = (
            with_factors.download(ctx, len),
            with_buffer.download(ctx, len),
        );
        for group in ParamGroup::ALL {
            if group == ParamGroup::ShRest {
                let untouched = factors_cpu.group(group).iter().all(|&x| x == 123.0);
                assert!(
                    untouched,
                    "scene {scene}: the bands' gradient buffer was written"
                );
            } else {
                assert_eq!(
                    factors_cpu.group(group),
                    buffer_cpu.group(group),
                    "{}",
                    group.name()
                );
            }
        }
        let rest = buffer_cpu.group(ParamGroup::ShRest);
        assert!(rest.iter().all(|x| x.is_finite()));
        if sh_degree > 0 {
            assert!(
                rest.iter().any(|&x| x != 0.0),
                "scene {scene}: no band gradient at all"
            );
        }

        // One Adam step each way from the same parameters and moments: from the buffer
        // mode's gradient, and from the factors that pass left in the frame.
        let learning_rates = [1e-3; 6];
        let mut results = Vec::new();
        for factors in [None, Some(frame.band_factors())] {
            let mut state_rng = Pcg32::new(7, scene as u64);
            let mut state = random_state(ctx, &mut state_rng, len, sh_degree);
            let params = ParamBuffers::zeroed(ctx, "params", cloud.len, sh_degree);
            params.upload(ctx, &gaussians);
            let steps = advance_steps(&mut state, learning_rates);
            let mut adam = Adam::new(ctx);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            adam.encode(
                ctx,
                &mut Recorder::new(&mut encoder),
                &params,
                &with_buffer,
                factors,
                &state,
                cloud.len,
                &steps,
            );
            ctx.queue.submit([encoder.finish()]);
            results
                .push([&params, &state.exp_avg, &state.exp_avg_sq].map(|b| b.download(ctx, len)));
        }
        let [from_buffer, from_factors] = [&results[0], &results[1]];
        for (what, (a, b)) in ["params", "exp_avg", "exp_avg_sq"]
            .iter()
            .zip(from_buffer.iter().zip(from_factors))
        {
            for group in ParamGroup::ALL {
                let worst = a
                    .group(group)
                    .iter()
                    .zip(b.group(group))
                    .map(|(&x, &y)| {
                        (f64::from(x) - f64::from(y)).abs() / (f64::from(x).abs() + 1e-12)
                    })
                    .fold(0.0, f64::max);
                assert!(
                    worst <= 1e-6,
                    "scene {scene}, {what} of {}: {worst:e}",
                    group.name()
                );
            }
        }
    }
}

#[test]
fn band_factors_match_buffer_gradients_fast_path() {
    factors_match_buffer_gradients(test_context());
}

#[test]
fn band_factors_match_buffer_gradients_fallback_path() {
    factors_match_buffer_gradients(test_context_fallback());
}
