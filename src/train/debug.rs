//! `pipeline.debug` and `run.debug_from`: the reference's rasterizer debug mode. From the
//! iteration `run.debug_from` on (or from the start with `pipeline.debug`), every stage's
//! output buffers are downloaded after it ran and checked for non-finite values; the first one
//! found stops the run with a failure naming the buffer, the element, the stage and the
//! iteration. Slow (each check waits for the GPU and copies the buffer): for hunting a NaN.
//!
//! Checked after each stage: `Forward` the render, `Loss` the loss and dL/d(image), `Backward`
//! the gradient of every parameter group, `Optimize` the parameters.

use bevy::prelude::*;

use super::state::{
    StepBuffers, StepEncoder, TrainConfig, TrainFailure, TrainGpuState, TrainState,
};
use super::{TrainSet, backward, forward, loss, submit_step, train_healthy};
use crate::app::Gpu;
use crate::gpu;
use crate::model::{ParamBuffers, ParamGroup};

/// Adds the checks to the step's schedule (each after its stage's systems, in its set).
pub fn add_checks(schedule: &mut Schedule) {
    schedule.add_systems(
        (
            check_render
                .in_set(TrainSet::Forward)
                .after(forward::render_view),
            check_loss_gradient
                .in_set(TrainSet::Loss)
                .after(loss::compute_loss),
            check_gradients
                .in_set(TrainSet::Backward)
                .after(backward::backpropagate),
            check_parameters
                .in_set(TrainSet::Optimize)
                .after(submit_step),
        )
            .distributive_run_if(debugging)
            .distributive_run_if(train_healthy),
    );
}

/// Whether this step is checked: `pipeline.debug`, or `run.debug_from` reached.
pub fn debugging(config: Res<TrainConfig>, state: Res<TrainState>) -> bool {
    debug_at(&config, state.iteration)
}

/// Whether iteration `iteration` is checked under `config`.
pub fn debug_at(config: &TrainConfig, iteration: u32) -> bool {
    config.pipeline.debug
        || (config.run.debug_from >= 0 && i64::from(iteration) >= config.run.debug_from)
}

/// The first non-finite value of `values`, as (element, component) for elements of `width`
/// values each, and the value.
pub fn first_non_finite(values: &[f32], width: usize) -> Option<(usize, usize, f32)> {
    let width = width.max(1);
    values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| (i / width, i % width, values[i]))
}

/// Records a non-finite failure of `stage` when `message` is `Some`.
fn report(failure: &mut TrainFailure, stage: TrainSet, iteration: u32, message: Option<String>) {
    if let Some(message) = message {
        failure.record_non_finite(stage, iteration, format!("pipeline.debug: {message}"));
    }
}

/// Where a non-finite value sits in a planar CHW image of `width` pixels per row.
fn pixel_message(what: &str, values: &[f32], width: u32, height: u32) -> Option<String> {
    let plane = (width as usize * height as usize).max(1);
    let (channel, pixel, value) = first_non_finite(values, plane)?;
    let (x, y) = (pixel % width.max(1) as usize, pixel / width.max(1) as usize);
    Some(format!(
        "{what} holds {value} at pixel ({x}, {y}), channel {channel}"
    ))
}

/// The first non-finite value among the first `len` Gaussians of `buffers`, named as
/// "`what` <group> of Gaussian i".
fn params_message(gpu: &Gpu, what: &str, buffers: &ParamBuffers, len: u32) -> Option<String> {
    let downloaded = buffers.download(gpu, len as usize);
    ParamGroup::ALL.into_iter().find_map(|group| {
        let width = group.width(buffers.sh_degree);
        let (index, component, value) = first_non_finite(downloaded.group(group), width)?;
        Some(format!(
            "{what} {} of Gaussian {index} (component {component}) is {value}",
            group.name()
        ))
    })
}

fn check_render(
    gpu: Res<Gpu>,
    state: Res<TrainState>,
    buffers: Res<StepBuffers>,
    mut failure: ResMut<TrainFailure>,
) {
    let frame = &buffers.frame;
    let image = frame.read_image(&gpu);
    let message = pixel_message("the render", &image, frame.width, frame.height);
    report(&mut failure, TrainSet::Forward, state.iteration, message);
}

fn check_loss_gradient(
    gpu: Res<Gpu>,
    state: Res<TrainState>,
    buffers: Res<StepBuffers>,
    mut encoder: ResMut<StepEncoder>,
    mut failure: ResMut<TrainFailure>,
) {
    encoder.flush(&gpu);
    let loss: Vec<f32> = gpu::read_buffer(&gpu, &buffers.loss, 3);
    let message = first_non_finite(&loss, 1)
        .map(|(i, _, v)| {
            let term = ["the loss", "the L1 term", "the SSIM term"][i];
            format!("{term} is {v}")
        })
        .or_else(|| {
            let (w, h) = (buffers.frame.width, buffers.frame.height);
            let d_image: Vec<f32> = gpu::read_buffer(&gpu, &buffers.d_image, 3 * (w * h) as usize);
            pixel_message("dL/d(image)", &d_image, w, h)
        });
    report(&mut failure, TrainSet::Loss, state.iteration, message);
}

fn check_gradients(
    gpu: Res<Gpu>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut encoder: ResMut<StepEncoder>,
    mut failure: ResMut<TrainFailure>,
) {
    encoder.flush(&gpu);
    let message = params_message(&gpu, "the gradient of", &train.grads, train.cloud.len);
    report(&mut failure, TrainSet::Backward, state.iteration, message);
}

fn check_parameters(
    gpu: Res<Gpu>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut failure: ResMut<TrainFailure>,
) {
    let message = params_message(&gpu, "parameter", &train.cloud.params, train.cloud.len);
    report(&mut failure, TrainSet::Optimize, state.iteration, message);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::gpu::test_util::test_context;
    use crate::model::Gaussians;

    #[test]
    fn debug_from_switches_the_checks_on_at_its_iteration() {
        let mut config = TrainConfig(Config::default());
        assert!(!debug_at(&config, 1) && !debug_at(&config, 5000));
        config.run.debug_from = 7;
        assert!(!debug_at(&config, 6) && debug_at(&config, 7) && debug_at(&config, 8));
        config.run.debug_from = -1;
        config.pipeline.debug = true;
        assert!(debug_at(&config, 1));
    }

    #[test]
    fn the_first_non_finite_value_is_named_with_its_place() {
        // A 4x3 planar image with a NaN in channel 2 at pixel (1, 2).
        let mut image = vec![0.5f32; 3 * 12];
        image[2 * 12 + 2 * 4 + 1] = f32::NAN;
        let message = pixel_message("the render", &image, 4, 3).unwrap();
        assert_eq!(message, "the render holds NaN at pixel (1, 2), channel 2");
        assert_eq!(pixel_message("x", &[0.0; 36], 4, 3), None);

        // Parameters on the GPU: an infinite scale of Gaussian 3.
        let gpu = Gpu(test_context().clone());
        let mut gaussians = Gaussians::empty(1);
        for group in ParamGroup::ALL {
            *gaussians.group_mut(group) = vec![0.25; 5 * group.width(1)];
        }
        gaussians.group_mut(ParamGroup::LogScales)[3 * 3 + 2] = f32::INFINITY;
        let cloud = crate::model::GaussianCloud::from_gaussians(&gpu, &gaussians, 8);
        let message = params_message(&gpu, "parameter", &cloud.params, 5).unwrap();
        assert_eq!(
            message,
            "parameter scaling of Gaussian 3 (component 2) is inf"
        );
        // Beyond the live count nothing is looked at.
        assert_eq!(params_message(&gpu, "parameter", &cloud.params, 3), None);
    }
}
