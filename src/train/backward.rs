//! Step stage: backpropagate the loss gradient through the rasterizer to every parameter, and
//! accumulate the densification statistics (screen-space gradient norm, visibility, radius)
//! while densification is on.

use bevy::prelude::*;

use super::state::{
    StepBuffers, StepEncoder, StepProfiler, TrainConfig, TrainGpuState, TrainKernels, TrainState,
};
use crate::app::Gpu;
use crate::views::SceneInfo;

/// Encodes the rasterizer's backward pass for the current view.
pub fn backpropagate(
    gpu: Res<Gpu>,
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut kernels: ResMut<TrainKernels>,
    buffers: Res<StepBuffers>,
    mut encoder: ResMut<StepEncoder>,
    mut profiler: ResMut<StepProfiler>,
) {
    let view = &scene.views[state.current_view];
    let settings = config.render_settings(state.background, state.active_sh_degree);
    // The reference accumulates statistics only while iteration < densify_until_iter.
    let stats = (state.iteration < config.optimization.densify_until_iter).then_some(&train.stats);
    kernels.rasterizer.backward(
        &gpu,
        encoder.get(&gpu),
        &train.cloud,
        &view.camera,
        &settings,
        &buffers.frame,
        &buffers.d_image,
        &train.grads,
        stats,
        profiler.timer(),
    );
}
