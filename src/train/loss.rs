//! Step stage: the photometric loss (1 - λ) L1 + λ (1 - SSIM) and its gradient, on the GPU.

use bevy::prelude::*;

use super::state::{StepBuffers, StepEncoder, StepProfiler, TrainConfig, TrainKernels, TrainState};
use crate::app::Gpu;
use crate::views::{TrainView, ViewImage};

/// Encodes the loss of the rendered view against its ground truth; writes dL/d(image) and the
/// loss value into the step's buffers.
pub fn compute_loss(
    gpu: Res<Gpu>,
    config: Res<TrainConfig>,
    state: Res<TrainState>,
    views: Query<(&TrainView, &ViewImage)>,
    mut kernels: ResMut<TrainKernels>,
    mut buffers: ResMut<StepBuffers>,
    mut encoder: ResMut<StepEncoder>,
    mut profiler: ResMut<StepProfiler>,
) {
    let Some((_, image)) = views.iter().find(|(v, _)| v.index == state.current_view) else {
        return;
    };
    buffers.ensure_image_size(&gpu, image.width, image.height);
    let buffers = &*buffers;
    let encoder = encoder.get(&gpu);
    // The gap between the forward's last submission and this encoder's start is CPU time.
    profiler.mark(encoder, "wait: encode step");
    kernels.loss.encode(
        &gpu,
        encoder,
        &buffers.frame.image,
        &image.buffer,
        image.width,
        image.height,
        config.optimization.lambda_dssim as f32,
        &buffers.d_image,
        &buffers.loss,
    );
    profiler.mark(encoder, "loss");
}
