//! Step stage `Optimize`: the Adam update, with one learning rate per parameter group.

use bevy::prelude::*;

use super::schedule::{ExponentialLr, GroupLearningRates};
use super::state::{StepGpu, TrainConfig, TrainGpuState, TrainState};
use crate::gpu::adam::AdamStep;
use crate::model::ParamGroup;
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

/// Encodes the Adam step of this iteration.
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
        buffers,
        mut encoder,
        mut profiler,
    } = step;
    let enabled = enabled_groups(&state);
    if !enabled.iter().any(|&e| e) {
        return;
    }
    let rates = learning_rates(&config, scene.extent).at(state.iteration);
    let train = &mut *train;
    let steps: [AdamStep; 6] = std::array::from_fn(|g| {
        if enabled[g] {
            train.optimizer.steps[g] += 1;
        }
        AdamStep {
            lr: rates[g],
            step: train.optimizer.steps[g].max(1),
            enabled: enabled[g],
        }
    });
    // The higher bands' gradient from the factors the backward always leaves in the frame
    // (debug mode has it written into `grads` too, for its check).
    let band_factors = Some(buffers.frame.band_factors());
    kernels.adam.encode(
        &gpu,
        &mut encoder.recorder(&gpu),
        &train.cloud.params,
        &train.grads,
        band_factors,
        &train.optimizer,
        train.cloud.len,
        &steps,
    );
    profiler.mark(&mut encoder, &gpu, "adam");
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
    fn default_config_gives_the_reference_rates() {
        let config = TrainConfig(crate::config::Config::default());
        let ours = learning_rates(&config, 2.5).at(1234);
        let reference = GroupLearningRates::reference_defaults(2.5).at(1234);
        assert_eq!(ours, reference);
    }
}
