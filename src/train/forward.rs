//! Step stage `Forward`: render the current view (projection, binning, rasterization on the
//! GPU).

use bevy::prelude::*;

use super::TrainSet;
use super::state::{StepContext, StepGpu, TrainGpuState};
use crate::views::TrainView;

/// Renders the sampled view into the step's frame, recorded into the step's encoder (the
/// rasterizer submits early only where it waits for the number of tile intersections, when it
/// cannot use the deferred count).
pub fn render_view(
    mut ctx: StepContext,
    step: StepGpu,
    train: Res<TrainGpuState>,
    views: Query<&TrainView>,
) {
    let iteration = ctx.state.iteration;
    let Some(view) = ctx.state.current_view.and_then(|e| views.get(e).ok()) else {
        ctx.failure.record(
            TrainSet::Forward,
            iteration,
            "no training view to render (the scene has no training views, or the current \
             view entity was despawned)",
        );
        return;
    };
    let settings = ctx
        .config
        .render_settings(ctx.state.background, ctx.state.active_sh_degree);
    let StepGpu {
        gpu,
        mut kernels,
        mut buffers,
        mut profiler,
        mut encoder,
    } = step;
    let result = kernels.rasterizer.forward_into(
        &gpu,
        &mut encoder.recorder(&gpu),
        &train.cloud,
        &view.camera,
        &settings,
        &mut buffers.frame,
        profiler.timer(),
    );
    if let Err(error) = result {
        ctx.failure.record(
            TrainSet::Forward,
            iteration,
            format!("rendering view {}: {error}", view.name),
        );
    }
}
