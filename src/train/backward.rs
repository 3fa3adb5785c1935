//! Step stage `Backward`: backpropagate the loss gradient through the rasterizer to every
//! parameter, and accumulate the densification statistics (screen-space gradient norm,
//! visibility, radius) while densification is on. On plain steps (`run.fused_adam`,
//! [`super::optimize::adam_in_backward`]) the gradients go straight into this step's Adam
//! update instead of the gradient buffers.

use bevy::prelude::*;

use super::TrainSet;
use super::optimize::adam_steps;
use super::state::{StepContext, StepGpu, TrainGpuState};
use crate::gpu::raster::ParamGradients;
use crate::views::{SceneInfo, TrainView};

/// Encodes the rasterizer's backward pass for the current view.
pub fn backpropagate(
    mut ctx: StepContext,
    step: StepGpu,
    mut train: ResMut<TrainGpuState>,
    scene: Res<SceneInfo>,
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
    let StepGpu {
        gpu,
        mut kernels,
        buffers,
        mut encoder,
        mut profiler,
    } = step;
    let train = &mut *train;
    let update = ctx.state.adam_in_backward.then(|| {
        let steps = adam_steps(
            config,
            scene.extent,
            &ctx.state,
            [true; 6],
            &mut train.optimizer,
        );
        let (len, degree) = (train.cloud.len, train.cloud.sh_degree());
        kernels.adam.update(&gpu, len, degree, &steps)
    });
    let grads = match &update {
        Some(update) => ParamGradients::AdamStep {
            optimizer: &train.optimizer,
            update,
        },
        None => ParamGradients::Write(&train.grads),
    };
    // The reference accumulates statistics only while iteration < densify_until_iter.
    let stats = (iteration < config.optimization.densify_until_iter).then_some(&train.stats);
    kernels.rasterizer.backward(
        &gpu,
        encoder.get(&gpu),
        &train.cloud,
        &view.camera,
        &settings,
        &buffers.frame,
        &buffers.d_image,
        grads,
        stats,
        profiler.timer(),
    );
}
