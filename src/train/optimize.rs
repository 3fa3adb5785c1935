//! Step stage `Optimize`: the Adam update, with one learning rate per parameter group.

use bevy::prelude::*;

use super::debug::debug_at;
use super::densify::{densifies_at, resets_opacity_at};
use super::schedule::{ExponentialLr, GroupLearningRates};
use super::state::{StepGpu, TrainConfig, TrainGpuState, TrainState};
use crate::gpu::adam::AdamStep;
use crate::model::{OptimizerState, ParamGroup};
use crate::views::SceneInfo;

/// The learning rates of a run's configuration for a scene of the given extent.
pub fn learning_rates(config: &TrainConfig, extent: f64) -> GroupLearningRates {
    let o = &config.optimization;
    GroupLearningRates {
        position: ExponentialLr {
            delay_mult: o.position_lr_delay_mult,
            ..ExponentialLr::new(
                o.position_lr_init,
                o.position_lr_final,
                o.position_lr_max_steps,
            )
        },
        spatial_lr_scale: extent,
        feature: o.feature_lr,
        opacity: o.opacity_lr,
        scaling: o.scaling_lr,
        rotation: o.rotation_lr,
    }
}

/// Which groups the reference's optimiser updates this iteration. It steps only while
/// `iteration < iterations`, and a parameter tensor that densification or the opacity reset
/// replaced during this iteration has no gradient, so PyTorch's Adam skips it (moments and
/// step count untouched).
pub fn enabled_groups(state: &TrainState) -> [bool; 6] {
    if state.iteration >= state.last_iteration || state.densified_this_step {
        return [false; 6];
    }
    ParamGroup::ALL.map(|g| !(state.opacity_reset_this_step && g == ParamGroup::Opacities))
}

/// Whether iteration `state.iteration` applies its Adam update inside the backward pass
/// (`run.fused_adam`): only where every group steps and nothing between `Backward` and
/// `Optimize` needs the gradients or the parameters before the update. Not where the step
/// densifies or resets opacities (both change the cloud, and the reference then skips groups),
/// evaluates or saves a snapshot (both see the parameters the loss was computed with), runs the
/// debug checks of the gradients, or is the last (which does not step).
pub fn adam_in_backward(config: &TrainConfig, state: &TrainState) -> bool {
    let iteration = state.iteration;
    let run = &config.run;
    run.fused_adam
        && iteration < state.last_iteration
        && !densifies_at(config, iteration)
        && !resets_opacity_at(config, iteration)
        && !run.test_iterations.contains(&iteration)
        && !run.save_iterations.contains(&iteration)
        && !debug_at(config, iteration)
}

/// This iteration's Adam update of the `enabled` groups at the configured learning rates;
/// advances those groups' step counts.
pub fn adam_steps(
    config: &TrainConfig,
    extent: f64,
    state: &TrainState,
    enabled: [bool; 6],
    optimizer: &mut OptimizerState,
) -> [AdamStep; 6] {
    let rates = learning_rates(config, extent).at(state.iteration);
    std::array::from_fn(|g| {
        if enabled[g] {
            optimizer.steps[g] += 1;
        }
        AdamStep {
            lr: rates[g],
            step: optimizer.steps[g].max(1),
            enabled: enabled[g],
        }
    })
}

/// Encodes the Adam step of this iteration (unless `Backward` applied it).
pub fn optimize(
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    state: Res<TrainState>,
    mut train: ResMut<TrainGpuState>,
    step: StepGpu,
) {
    let StepGpu {
        gpu,
        mut kernels,
        mut encoder,
        mut profiler,
        ..
    } = step;
    let enabled = enabled_groups(&state);
    if state.adam_in_backward || !enabled.iter().any(|&e| e) {
        return;
    }
    let train = &mut *train;
    let steps = adam_steps(&config, scene.extent, &state, enabled, &mut train.optimizer);
    let encoder = encoder.get(&gpu);
    kernels.adam.encode(
        &gpu,
        encoder,
        &train.cloud.params,
        &train.grads,
        &train.optimizer,
        train.cloud.len,
        &steps,
    );
    profiler.mark(encoder, "adam");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_skip_rules() {
        let mut state = TrainState::new(0, 10);
        state.iteration = 5;
        assert_eq!(enabled_groups(&state), [true; 6]);
        state.opacity_reset_this_step = true;
        assert_eq!(
            enabled_groups(&state),
            [true, true, true, false, true, true]
        );
        state.densified_this_step = true;
        assert_eq!(enabled_groups(&state), [false; 6]);
        let mut last = TrainState::new(0, 10);
        last.iteration = 10;
        assert_eq!(
            enabled_groups(&last),
            [false; 6],
            "no step at the final iteration"
        );
    }

    #[test]
    fn adam_runs_in_backward_only_on_plain_steps() {
        let mut config = TrainConfig(crate::config::Config::default());
        config.run.test_iterations = vec![7000];
        config.run.save_iterations = vec![7001];
        let at = |config: &TrainConfig, iteration: u32| {
            let mut state = TrainState::new(0, 30_000);
            state.iteration = iteration;
            adam_in_backward(config, &state)
        };
        // Plain steps, before, during and after the densification window.
        for iteration in [1, 499, 501, 2999, 7002, 15_000, 29_999] {
            assert!(at(&config, iteration), "iteration {iteration}");
        }
        // Densification (every 100 from 600), opacity resets, evaluation, snapshot, the end.
        for iteration in [600, 3000, 7000, 7001, 30_000] {
            assert!(!at(&config, iteration), "iteration {iteration}");
        }
        let mut debug = config.clone();
        debug.run.debug_from = 10;
        assert!(at(&debug, 9) && !at(&debug, 10));
        config.run.fused_adam = false;
        assert!(!at(&config, 1));
    }

    #[test]
    fn default_config_gives_the_reference_rates() {
        let config = TrainConfig(crate::config::Config::default());
        let ours = learning_rates(&config, 2.5).at(1234);
        let reference = GroupLearningRates::reference_defaults(2.5).at(1234);
        assert_eq!(ours, reference);
    }
}
