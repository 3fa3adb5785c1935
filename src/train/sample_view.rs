//! Step stage 1: begin the iteration (SH degree schedule, background) and pick its view.

use bevy::prelude::*;

use super::densify::densifies_at;
use super::state::{StepProfiler, TrainConfig, TrainState};
use crate::views::SceneInfo;

/// Starts an iteration: counts it, raises the active SH degree every 1000 iterations (up to
/// `model.sh_degree`), and chooses the render background.
pub fn begin_iteration(
    mut state: ResMut<TrainState>,
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    profiler: Option<ResMut<StepProfiler>>,
) {
    state.iteration += 1;
    if let Some(mut profiler) = profiler {
        let interval = config.run.profile_interval;
        // Steps that densify, evaluate or save wait for the GPU and would distort the times.
        let run = &config.run;
        let reports = [
            &run.test_iterations,
            &run.save_iterations,
            &run.checkpoint_iterations,
        ]
        .iter()
        .any(|list| list.contains(&state.iteration));
        // Half an interval off the multiples, which densification and reports favour.
        let due = interval > 0 && state.iteration % interval == interval / 2;
        // A due step that densifies or reports hands the profile on to the next plain step.
        let quiet_step = !densifies_at(&config, state.iteration) && !reports;
        profiler.begin(due, quiet_step);
    }
    state.densified_this_step = false;
    state.opacity_reset_this_step = false;
    if state.iteration.is_multiple_of(1000) && state.active_sh_degree < config.model.sh_degree {
        state.active_sh_degree += 1;
    }
    state.background = if config.optimization.random_background {
        [
            state.rng.next_f32(),
            state.rng.next_f32(),
            state.rng.next_f32(),
        ]
    } else {
        scene.background
    };
}

/// Pops a random training view from the stack, refilling it with every training view when it
/// is empty: each epoch sees every view once, in a seeded random order (as the reference).
pub fn sample_view(mut state: ResMut<TrainState>, scene: Res<SceneInfo>) {
    if state.view_stack.is_empty() {
        state.view_stack = scene.train_views().map(|v| v.index as u32).collect();
    }
    let count = state.view_stack.len() as u32;
    let pick = state.rng.below(count) as usize;
    state.current_view = state.view_stack.remove(pick) as usize;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Camera;
    use crate::dataset::{DatasetFormat, Split};
    use crate::views::TrainView;
    use bevy::ecs::system::RunSystemOnce;
    use glam::{DMat3, DVec3};

    fn scene(splits: &[Split]) -> SceneInfo {
        let camera =
            Camera::from_world_pose(8, 8, 8.0, 8.0, 4.0, 4.0, DMat3::IDENTITY, DVec3::ZERO);
        SceneInfo {
            format: DatasetFormat::Colmap,
            source: Default::default(),
            extent: 1.0,
            background: [0.0; 3],
            views: splits
                .iter()
                .enumerate()
                .map(|(index, &split)| TrainView {
                    index,
                    name: format!("v{index}"),
                    camera: camera.clone(),
                    split,
                })
                .collect(),
        }
    }

    #[test]
    fn every_epoch_visits_every_training_view_once_in_a_new_order() {
        use Split::{Test, Train};
        let mut world = World::new();
        world.insert_resource(scene(&[Test, Train, Train, Test, Train, Train, Train]));
        world.insert_resource(TrainState::new(7, 100));
        let mut picks = Vec::new();
        for _ in 0..15 {
            world.run_system_once(sample_view).unwrap();
            picks.push(world.resource::<TrainState>().current_view);
        }
        for epoch in picks.chunks(5) {
            let mut sorted = epoch.to_vec();
            sorted.sort();
            assert_eq!(sorted, [1, 2, 4, 5, 6]);
        }
        assert!(picks[..5] != picks[5..10] || picks[5..10] != picks[10..]);
    }

    #[test]
    fn sh_degree_rises_every_thousand_iterations_up_to_the_maximum() {
        let mut world = World::new();
        world.insert_resource(scene(&[Split::Train]));
        world.insert_resource(TrainState::new(0, 10_000));
        let mut config = crate::config::Config::default();
        config.model.sh_degree = 2;
        world.insert_resource(TrainConfig(config));
        let mut degree_at = Vec::new();
        for _ in 0..3500 {
            world.run_system_once(begin_iteration).unwrap();
            let state = world.resource::<TrainState>();
            if [999, 1000, 1999, 2000, 3000].contains(&state.iteration) {
                degree_at.push(state.active_sh_degree);
            }
        }
        assert_eq!(degree_at, [0, 1, 1, 2, 2]);
    }
}
