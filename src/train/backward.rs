//! Step stage `Backward`: backpropagate the loss gradient through the rasterizer to every
//! parameter, and accumulate the densification statistics (screen-space gradient norm,
//! visibility, radius) while densification is on.

use bevy::prelude::*;

use super::TrainSet;
use super::debug::debug_at;
use super::state::{StepContext, StepGpu, TrainConfig, TrainGpuState};
use crate::gpu::raster::BandGradients;
use crate::views::TrainView;

/// Where iteration `iteration`'s backward pass leaves the higher SH bands' gradient: also in
/// [`TrainGpuState::grads`] where debug mode checks it, else only as factors in the step's
/// frame. The Adam step forms the gradient from the factors in both cases, so the 45-float
/// gradient row per Gaussian is written only for the check and never read by training.
pub fn band_gradients(config: &TrainConfig, iteration: u32) -> BandGradients {
    if debug_at(config, iteration) {
        BandGradients::Buffer
    } else {
        BandGradients::Factors
    }
}

/// Encodes the rasterizer's backward pass for the current view.
pub fn backpropagate(
    mut ctx: StepContext,
    step: StepGpu,
    train: Res<TrainGpuState>,
    views: Query<&TrainView>,
) {
    let iteration = ctx.state.iteration;
    let Some(view) = ctx.state.current_view.and_then(|e| views.get(e).ok()) else {
        ctx.failure.record(
            TrainSet::Backward,
            iteration,
            "the current view entity is gone",
        );
        return;
    };
    let config = &ctx.config;
    let settings = config.render_settings(ctx.state.background, ctx.state.active_sh_degree);
    // The reference accumulates statistics only while iteration < densify_until_iter.
    let stats = (iteration < config.optimization.densify_until_iter).then_some(&train.stats);
    let StepGpu {
        gpu,
        mut kernels,
        buffers,
        mut encoder,
        mut profiler,
    } = step;
    kernels.rasterizer.backward(
        &gpu,
        &mut encoder.recorder(&gpu),
        &train.cloud,
        &view.camera,
        &settings,
        &buffers.frame,
        &buffers.d_image,
        &train.grads,
        band_gradients(config, iteration),
        stats,
        profiler.timer(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Debug mode reads the bands' gradient from `grads` after the backward: exactly the
    /// checked iterations write it.
    #[test]
    fn the_bands_gradient_is_written_where_debug_mode_checks_it() {
        let mut config = TrainConfig(Config::default());
        assert_eq!(band_gradients(&config, 1), BandGradients::Factors);
        config.run.debug_from = 7;
        assert_eq!(band_gradients(&config, 6), BandGradients::Factors);
        assert_eq!(band_gradients(&config, 7), BandGradients::Buffer);
        config.run.debug_from = -1;
        config.pipeline.debug = true;
        assert_eq!(band_gradients(&config, 1), BandGradients::Buffer);
    }
}
