//! Step stage `Densify`: densify and prune on the reference's schedule, and the opacity reset.

use bevy::prelude::*;

use super::TrainSet;
use super::state::{StepGpu, TrainConfig, TrainFailure, TrainGpuState, TrainMetrics, TrainState};
use crate::gpu::densify::DensifyParams;
use crate::views::SceneInfo;

/// Pruning threshold on sigmoid(opacity), hard-coded in the reference's train.py.
pub const MIN_OPACITY: f32 = 0.005;
/// Screen-size pruning threshold in pixels, used after the first opacity reset.
pub const MAX_SCREEN_SIZE: f32 = 20.0;

/// Whether this iteration densifies (REFERENCE.md "Training loop", step 5).
pub fn densifies_at(config: &TrainConfig, iteration: u32) -> bool {
    let o = &config.optimization;
    iteration < o.densify_until_iter
        && iteration > o.densify_from_iter
        && iteration.is_multiple_of(o.densification_interval)
}

/// Whether this iteration resets opacities.
pub fn resets_opacity_at(config: &TrainConfig, iteration: u32) -> bool {
    let o = &config.optimization;
    iteration < o.densify_until_iter
        && (iteration.is_multiple_of(o.opacity_reset_interval)
            || (config.model.white_background && iteration == o.densify_from_iter))
}

/// Runs densify-and-prune and the opacity reset when their intervals come round.
pub fn densify_and_prune(
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    mut state: ResMut<TrainState>,
    mut train: ResMut<TrainGpuState>,
    step: StepGpu,
    mut metrics: ResMut<TrainMetrics>,
    mut failure: ResMut<TrainFailure>,
) {
    let StepGpu {
        gpu,
        mut kernels,
        mut encoder,
        ..
    } = step;
    let iteration = state.iteration;
    if densifies_at(&config, iteration) {
        // The statistics of this step's backward pass must be on the GPU first.
        encoder.flush(&gpu);
        let o = &config.optimization;
        let params = DensifyParams {
            grad_threshold: o.densify_grad_threshold as f32,
            percent_dense: o.percent_dense as f32,
            extent: scene.extent as f32,
            min_opacity: MIN_OPACITY,
            // After the first reset the reference adds size pruning: by world size always, by
            // screen size only where `screen_size_prune` asks for it (see its documentation).
            max_screen_size: (iteration > o.opacity_reset_interval).then_some(
                if o.screen_size_prune {
                    MAX_SCREEN_SIZE
                } else {
                    f32::INFINITY
                },
            ),
            seed: config.run.seed ^ (u64::from(state.densify_count) << 32) ^ 0x5eed_0000_0000,
        };
        let train = &mut *train;
        match kernels.densifier.densify_and_prune(
            &gpu,
            &mut train.cloud,
            &mut train.grads,
            &mut train.optimizer,
            &mut train.stats,
            &params,
        ) {
            Ok(report) => {
                state.densify_count += 1;
                state.densified_this_step = true;
                metrics.densifications.push((iteration, report));
                metrics.gaussians.push((iteration, report.after));
                metrics.peak_gaussians = metrics.peak_gaussians.max(report.after);
                metrics.peak_state_bytes = metrics.peak_state_bytes.max(train.bytes());
                debug!(
                    "iteration {iteration}: densify {} -> {} (+{} cloned, +{} split, -{} pruned)",
                    report.before, report.after, report.cloned, report.split, report.pruned
                );
            }
            Err(error) => {
                failure.record(TrainSet::Densify, iteration, error.to_string());
                return;
            }
        }
    }
    if resets_opacity_at(&config, iteration) {
        let train = &*train;
        let encoder = encoder.get(&gpu);
        kernels
            .densifier
            .reset_opacity(&gpu, encoder, &train.cloud, &train.optimizer);
        state.opacity_reset_this_step = true;
        metrics.opacity_resets.push(iteration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_schedule() {
        let config = TrainConfig(crate::config::Config::default());
        let densify: Vec<u32> = (1..=16_000).filter(|&i| densifies_at(&config, i)).collect();
        assert_eq!(
            densify.first(),
            Some(&600),
            "strictly after densify_from_iter (500)"
        );
        assert_eq!(
            densify.last(),
            Some(&14_900),
            "strictly before densify_until_iter"
        );
        assert_eq!(densify.len(), 144);
        let resets: Vec<u32> = (1..=30_000)
            .filter(|&i| resets_opacity_at(&config, i))
            .collect();
        assert_eq!(resets, [3000, 6000, 9000, 12_000]);
        let mut white = config.clone();
        white.model.white_background = true;
        assert!(resets_opacity_at(&white, 500));
    }
}
