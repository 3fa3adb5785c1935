//! Training as Bevy systems: graphdeco-inria's train.py loop, one system per stage.
//!
//! One iteration is one run of the [`TrainStep`] schedule, its systems chained in the
//! reference's order:
//!
//! ```text
//! begin_iteration ─ sample_view ─ render_view ─ compute_loss ─ backpropagate
//!   ─ evaluate ─ save_ply ─ densify_and_prune ─ optimize ─ record_loss_readback
//!   ─ submit_step ─ save_checkpoint ─ update_progress ─ finish_iteration
//! ```
//!
//! Stages record GPU work into the step's [`StepEncoder`]; `submit_step` sends it. The forward
//! pass submits on its own and waits once (for the number of tile intersections); evaluation,
//! saving, densification and checkpoints flush the encoder first because they need the step's
//! earlier work on the GPU. The loss reaches the CPU asynchronously ([`progress`]).
//!
//! [`TrainPlugin`] runs `run.steps_per_frame` iterations per Bevy update (the editor); the
//! headless driver ([`session`]) runs a large batch per update. A [`TrainFailure`] stops the
//! run: every stage is skipped once it is set.

// Bevy systems take one parameter per resource they use.
#![allow(clippy::too_many_arguments)]

pub mod backward;
pub mod checkpoint;
pub mod densify;
pub mod forward;
pub mod loss;
pub mod optimize;
pub mod outputs;
pub mod progress;
pub mod report;
pub mod sample_view;
pub mod schedule;
pub mod session;
pub mod setup;
pub mod state;

use bevy::ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};
use bevy::prelude::*;

pub use report::ModelPath;
pub use session::{TrainSummary, train_headless};
pub use state::{
    StepBuffers, StepEncoder, StepProfiler, StopRequest, TrainConfig, TrainFailure, TrainGpuState,
    TrainKernels, TrainMetrics, TrainState,
};

use crate::app::Gpu;

/// One training iteration.
#[derive(ScheduleLabel, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrainStep;

/// How many iterations [`run_train_steps`] runs per Bevy update.
#[derive(Resource, Clone, Copy, Debug)]
pub struct StepsPerUpdate(pub u32);

/// Adds the training schedule and its resources. Needs [`Gpu`], the scene (`views::ScenePlugin`),
/// a [`TrainConfig`] and a [`ModelPath`]; `setup::TrainInit` says where the cloud starts from.
pub struct TrainPlugin;

impl Plugin for TrainPlugin {
    fn build(&self, app: &mut App) {
        let mut schedule = Schedule::new(TrainStep);
        // The stages form one chain and all touch the GPU: a single thread avoids scheduling
        // overhead per iteration.
        schedule.set_executor(SingleThreadedExecutor::new());
        schedule.add_systems(
            (
                sample_view::begin_iteration,
                sample_view::sample_view,
                forward::render_view,
                loss::compute_loss,
                backward::backpropagate,
                report::evaluate,
                report::save_ply,
                densify::densify_and_prune,
                optimize::optimize,
                progress::record_loss_readback,
                submit_step,
                checkpoint::save_checkpoint,
                progress::update_progress,
                finish_iteration,
            )
                .chain()
                .run_if(healthy),
        );
        app.add_schedule(schedule)
            .init_resource::<StepEncoder>()
            .init_resource::<TrainMetrics>()
            .init_resource::<TrainFailure>()
            .init_resource::<StopRequest>()
            .init_resource::<report::ReportTime>()
            .init_resource::<checkpoint::LastGoodState>()
            .add_systems(Startup, setup::setup_training)
            .add_systems(Update, run_train_steps);
    }
}

/// Stages run only while nothing has failed.
fn healthy(failure: Res<TrainFailure>) -> bool {
    failure.0.is_none()
}

/// Sends the step's GPU work (and, on a profiled step, waits for its timings).
fn submit_step(
    gpu: Res<Gpu>,
    mut encoder: ResMut<StepEncoder>,
    mut profiler: ResMut<StepProfiler>,
) {
    if profiler.active {
        profiler.resolve(encoder.get(&gpu));
        encoder.flush(&gpu);
        profiler.collect(&gpu);
    } else {
        encoder.flush(&gpu);
    }
}

/// Marks the run finished after its last iteration.
fn finish_iteration(mut state: ResMut<TrainState>) {
    if state.iteration >= state.last_iteration {
        state.finished = true;
    }
}

/// Runs up to `StepsPerUpdate` (else `run.steps_per_frame`) iterations, stopping early when
/// the run finishes, fails or is asked to stop. Training time excludes evaluation and saving.
pub fn run_train_steps(world: &mut World) {
    let Some(state) = world.get_resource::<TrainState>() else {
        return; // setup has not run (or failed)
    };
    if state.finished {
        return;
    }
    let steps = world
        .get_resource::<StepsPerUpdate>()
        .map(|s| s.0)
        .unwrap_or_else(|| world.resource::<TrainConfig>().run.steps_per_frame)
        .max(1);
    for _ in 0..steps {
        let done = world.resource::<TrainState>().finished
            || world.resource::<TrainFailure>().0.is_some()
            || world.resource::<StopRequest>().is_requested();
        if done {
            break;
        }
        let started = std::time::Instant::now();
        world.resource_mut::<report::ReportTime>().0 = std::time::Duration::ZERO;
        world.run_schedule(TrainStep);
        let reporting = world.resource::<report::ReportTime>().0;
        world.resource_mut::<TrainState>().elapsed += started.elapsed().saturating_sub(reporting);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{HeadlessOptions, finish_setup, headless_app};
    use crate::config::Config;
    use crate::dataset::DatasetOptions;
    use crate::fsutil::TempDir;
    use crate::gpu::test_util::test_context;
    use crate::model::init;
    use crate::views::{LoadedScene, ScenePlugin, SfmPoints};

    /// The plugin in an app driven frame by frame, as the editor drives it: each update runs
    /// `run.steps_per_frame` iterations of the `TrainStep` schedule.
    #[test]
    fn each_update_runs_steps_per_frame_iterations() {
        let gpu = test_context();
        let dir = TempDir::new("train-plugin").unwrap();
        let mut options = DatasetOptions::new(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"),
        );
        options.resolution = 8;
        let scene = LoadedScene::load(&options, true).unwrap();
        let gaussians = init::gaussians_from_points(scene.dataset.points.as_ref().unwrap(), 1);
        let mut config = Config::default();
        config.model.sh_degree = 1;
        config.optimization.iterations = 20;
        config.run.steps_per_frame = 3;
        config.run.test_iterations = vec![];
        config.run.save_iterations = vec![];

        let mut app = headless_app(gpu, &HeadlessOptions::default());
        app.add_plugins(ScenePlugin::new(scene))
            .add_plugins(TrainPlugin)
            .insert_resource(TrainConfig(config))
            .insert_resource(ModelPath(dir.path().to_path_buf()))
            .insert_resource(setup::TrainInit::Gaussians(gaussians));
        finish_setup(&mut app);
        app.update();
        assert_eq!(app.world().resource::<TrainState>().iteration, 3);
        app.update();
        assert_eq!(app.world().resource::<TrainState>().iteration, 6);
        assert!(app.world().resource::<TrainFailure>().0.is_none());
        assert!(app.world().resource::<SfmPoints>().0.is_some());

        // The editor can change the configuration between frames.
        app.world_mut()
            .resource_mut::<TrainConfig>()
            .run
            .steps_per_frame = 10;
        app.update();
        app.update();
        let state = app.world().resource::<TrainState>();
        assert_eq!(state.iteration, 20, "stops at the last iteration");
        assert!(state.finished);
    }
}
