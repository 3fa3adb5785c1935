//! Step stage `Begin`: begin the iteration (SH degree schedule, background) and pick its view.

use bevy::prelude::*;

use super::densify::densifies_at;
use super::state::{StepProfiler, StepStart, TrainConfig, TrainState};
use crate::views::{SceneInfo, TrainSplit, TrainView, ViewStats, views_in_order};

/// Starts an iteration: remembers the state it starts from ([`StepStart`]), counts it, raises
/// the active SH degree every 1000 iterations (up to `model.sh_degree`), and chooses the
/// render background.
pub fn begin_iteration(
    mut commands: Commands,
    mut state: ResMut<TrainState>,
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    profiler: Option<ResMut<StepProfiler>>,
) {
    commands.insert_resource(StepStart(state.clone()));
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

/// Pops a random training view from the stack, refilling it with every training view (in
/// dataset order) when it is empty: each epoch sees every view once, in a seeded random order
/// (as the reference).
pub fn sample_view(
    mut state: ResMut<TrainState>,
    train_views: Query<(Entity, &TrainView), With<TrainSplit>>,
    mut stats: Query<&mut ViewStats>,
) {
    if state.view_stack.is_empty() {
        state.view_stack = views_in_order(train_views.iter());
    }
    let count = state.view_stack.len() as u32;
    if count == 0 {
        return; // no training views: the forward stage reports it
    }
    let pick = state.rng.below(count) as usize;
    let view = state.view_stack.remove(pick);
    state.current_view = Some(view);
    if let Ok(mut stats) = stats.get_mut(view) {
        stats.times_trained += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Camera;
    use crate::dataset::{DatasetFormat, Split};
    use bevy::ecs::system::RunSystemOnce;
    use glam::{DMat3, DVec3};

    fn scene() -> SceneInfo {
        SceneInfo {
            format: DatasetFormat::Colmap,
            source: Default::default(),
            extent: 1.0,
            background: [0.0; 3],
            identity: crate::views::SceneIdentity {
                source: Default::default(),
                views: Vec::new(),
                train_views: Vec::new(),
            },
        }
    }

    /// Spawns one view entity per split, in dataset order or the reverse; returns them in
    /// dataset order.
    fn spawn_views_ordered(world: &mut World, splits: &[Split], reverse: bool) -> Vec<Entity> {
        let camera =
            Camera::from_world_pose(8, 8, 8.0, 8.0, 4.0, 4.0, DMat3::IDENTITY, DVec3::ZERO);
        let mut order: Vec<usize> = (0..splits.len()).collect();
        if reverse {
            order.reverse();
        }
        let mut entities: Vec<(usize, Entity)> = order
            .into_iter()
            .map(|index| {
                let split = splits[index];
                let mut e = world.spawn((
                    TrainView {
                        index,
                        name: format!("v{index}"),
                        camera: camera.clone(),
                    },
                    ViewStats::default(),
                ));
                if split == Split::Train {
                    e.insert(TrainSplit);
                }
                (index, e.id())
            })
            .collect();
        entities.sort_unstable_by_key(|(index, _)| *index);
        entities.into_iter().map(|(_, e)| e).collect()
    }

    fn spawn_views(world: &mut World, splits: &[Split]) -> Vec<Entity> {
        spawn_views_ordered(world, splits, true)
    }

    #[test]
    fn every_epoch_visits_every_training_view_once_in_a_new_order() {
        use Split::{Test, Train};
        let mut world = World::new();
        world.insert_resource(scene());
        let views = spawn_views(&mut world, &[Test, Train, Train, Test, Train, Train, Train]);
        world.insert_resource(TrainState::new(7, 100));
        let mut picks = Vec::new();
        for _ in 0..15 {
            world.run_system_once(sample_view).unwrap();
            let current = world.resource::<TrainState>().current_view.unwrap();
            picks.push(views.iter().position(|&e| e == current).unwrap());
        }
        for epoch in picks.chunks(5) {
            let mut sorted = epoch.to_vec();
            sorted.sort();
            assert_eq!(sorted, [1, 2, 4, 5, 6]);
        }
        assert!(picks[..5] != picks[5..10] || picks[5..10] != picks[10..]);
        // The view entities count their steps.
        for (index, &view) in views.iter().enumerate() {
            let times = world.get::<ViewStats>(view).unwrap().times_trained;
            assert_eq!(times, if [0, 3].contains(&index) { 0 } else { 3 });
        }
    }

    /// The order of the draws depends only on the seed and the dataset order of the views
    /// (not on the order entities were spawned in), so checkpoints resume the same sequence.
    #[test]
    fn draws_follow_dataset_order_not_spawn_order() {
        let first = |reverse: bool| {
            let mut world = World::new();
            spawn_views_ordered(&mut world, &[Split::Train; 6], reverse);
            world.insert_resource(TrainState::new(3, 100));
            (0..6)
                .map(|_| {
                    world.run_system_once(sample_view).unwrap();
                    let e = world.resource::<TrainState>().current_view.unwrap();
                    world.get::<TrainView>(e).unwrap().index
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(first(false), first(true));
    }

    #[test]
    fn sh_degree_rises_every_thousand_iterations_up_to_the_maximum() {
        let mut world = World::new();
        world.insert_resource(scene());
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
