//! Step stage `Loss`: the photometric loss (1 - λ) L1 + λ (1 - SSIM) and its gradient, on the
//! GPU.

use bevy::prelude::*;

use super::state::{StepContext, StepGpu};
use super::{TrainSet, debug, progress};
use crate::views::{TrainView, ViewImage};

/// Encodes the loss of the rendered view against its ground truth; writes dL/d(image) into the
/// step's buffers, and the loss value on the steps that read it back (or check it under
/// `pipeline.debug`). A view without its image is a failure of the step
/// (never a skipped loss: the step would train on the previous gradient).
pub fn compute_loss(
    mut ctx: StepContext,
    step: StepGpu,
    views: Query<(&TrainView, Option<&ViewImage>)>,
) {
    let iteration = ctx.state.iteration;
    let view = ctx.state.current_view.and_then(|e| views.get(e).ok());
    let Some((view, image)) = view else {
        ctx.failure
            .record(TrainSet::Loss, iteration, "the current view entity is gone");
        return;
    };
    let Some(image) = image else {
        ctx.failure.record(
            TrainSet::Loss,
            iteration,
            format!("view {} has no ground-truth image (ViewImage)", view.name),
        );
        return;
    };
    let frame = &step.buffers.frame;
    if (frame.width, frame.height) != (image.width, image.height) {
        ctx.failure.record(
            TrainSet::Loss,
            iteration,
            format!(
                "view {}: the render is {}x{} but the ground-truth image is {}x{}",
                view.name, frame.width, frame.height, image.width, image.height
            ),
        );
        return;
    }
    let StepGpu {
        gpu,
        mut kernels,
        mut buffers,
        mut encoder,
        mut profiler,
    } = step;
    buffers.ensure_image_size(&gpu, image.width, image.height);
    let buffers = &*buffers;
    // The scalar loss is reduced only on steps that read it (one dispatch fewer elsewhere).
    let value_read = progress::loss_read_back_at(&ctx.config, &ctx.state)
        || debug::debug_at(&ctx.config, iteration);
    kernels.loss.encode(
        &gpu,
        &mut encoder.recorder(&gpu),
        &buffers.frame.image,
        &image.buffer,
        image.width,
        image.height,
        ctx.config.optimization.lambda_dssim as f32,
        &buffers.d_image,
        value_read.then_some(&buffers.loss),
    );
    profiler.mark(&mut encoder, &gpu, "loss");
}
