//! Step stage: render the current view (projection, binning, rasterization on the GPU).

use bevy::prelude::*;

use super::state::{
    StepBuffers, StepProfiler, TrainConfig, TrainFailure, TrainGpuState, TrainKernels, TrainState,
};
use crate::app::Gpu;
use crate::views::SceneInfo;

/// Renders the sampled view into the step's frame. The rasterizer submits its own work and
/// waits once, for the number of tile intersections.
pub fn render_view(
    gpu: Res<Gpu>,
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut kernels: ResMut<TrainKernels>,
    mut buffers: ResMut<StepBuffers>,
    mut failure: ResMut<TrainFailure>,
    mut profiler: ResMut<StepProfiler>,
) {
    let view = &scene.views[state.current_view];
    let settings = config.render_settings(state.background, state.active_sh_degree);
    let result = kernels.rasterizer.forward(
        &gpu,
        &train.cloud,
        &view.camera,
        &settings,
        &mut buffers.frame,
        profiler.timer(),
    );
    if let Err(error) = result {
        failure.0 = Some(format!(
            "iteration {}: rendering view {}: {error}",
            state.iteration, view.name
        ));
    }
}
