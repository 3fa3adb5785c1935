//! The training step in Bevy apps driven frame by frame, as the editor and the game plugin
//! drive it: the public sets (order, gating, hooks), run control and the view entities.

use bevy::prelude::*;

use super::*;
use crate::app::{HeadlessOptions, finish_setup, headless_app};
use crate::config::Config;
use crate::dataset::DatasetOptions;
use crate::fsutil::TempDir;
use crate::gpu::test_util::{one_app_at_a_time, test_context};
use crate::model::{Gaussians, init};
use crate::views::{
    LoadedScene, ScenePlugin, SfmPoints, TestSplit, TrainSplit, TrainView, ViewImage, ViewStats,
};

/// A configuration for short runs on the demo scene at 1/8 size.
fn short_config(iterations: u32) -> Config {
    let mut config = Config::default();
    config.model.sh_degree = 1;
    config.optimization.iterations = iterations;
    config.run.test_iterations = vec![];
    config.run.save_iterations = vec![];
    config
}

/// The demo scene (tiny_colmap at 1/8 size, 5 test views) with the plugin, set up but not yet
/// updated. The output folder lives as long as the returned `TempDir`.
fn demo_app(config: Config) -> (App, TempDir) {
    let gpu = test_context();
    let dir = TempDir::new("train-plugin").unwrap();
    let mut options =
        DatasetOptions::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
    options.resolution = 8;
    options.eval = true;
    let scene = LoadedScene::load(&options, true).unwrap();
    let gaussians = init::gaussians_from_points(
        scene.dataset.points.as_ref().unwrap(),
        config.model.sh_degree,
    );
    let mut app = headless_app(gpu, &HeadlessOptions::default());
    app.add_plugins(ScenePlugin::new(scene))
        .add_plugins(TrainPlugin)
        .insert_resource(TrainConfig(config))
        .insert_resource(ModelPath(dir.path().to_path_buf()))
        .insert_resource(setup::TrainInit::Gaussians(gaussians));
    (app, dir)
}

/// Sets the app up and runs its first update paused: the view entities and the training state
/// exist, no step has run.
fn start_paused(app: &mut App) {
    finish_setup(app);
    app.world_mut().resource_mut::<TrainPaused>().paused = true;
    app.update();
    assert_eq!(iteration(app), 0);
}

fn iteration_after_update(app: &mut App) -> u32 {
    app.update();
    iteration(app)
}

fn iteration(app: &App) -> u32 {
    app.world().resource::<TrainState>().iteration
}

fn failure(app: &App) -> Option<StepFailure> {
    app.world().resource::<TrainFailure>().0.clone()
}

/// The plugin in an app driven frame by frame, as the editor drives it: each update runs
/// `run.steps_per_frame` iterations of the `TrainStep` schedule; the configuration can change
/// between frames; the view entities collect what training learns about them.
#[test]
fn each_update_runs_steps_per_frame_iterations() {
    let _turn = one_app_at_a_time();
    let mut config = short_config(20);
    config.run.steps_per_frame = 3;
    config.run.loss_readback_interval = 1;
    config.run.test_iterations = vec![6];
    let (mut app, _dir) = demo_app(config);
    finish_setup(&mut app);
    app.update();
    assert_eq!(iteration(&app), 3);
    app.update();
    assert_eq!(iteration(&app), 6);
    assert_eq!(failure(&app), None);
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

    // Per-view results on the view entities.
    let world = app.world_mut();
    let mut views = world.query::<(&TrainView, &ViewStats, Has<TrainSplit>, Has<TestSplit>)>();
    let mut trained = 0;
    let mut with_loss = 0;
    for (view, stats, train, test) in views.iter(world) {
        assert!(train != test, "{}: one split", view.name);
        trained += stats.times_trained;
        if test {
            assert_eq!(
                stats.times_trained, 0,
                "{}: a test view is never trained",
                view.name
            );
            let eval = stats.last_eval.expect("every test view was evaluated at 6");
            assert_eq!(eval.iteration, 6);
            assert!(eval.psnr.is_finite() && eval.psnr > 5.0, "{eval:?}");
        }
        if let Some(loss) = stats.last_loss {
            assert!(train && loss.loss.is_finite() && loss.loss > 0.0);
            with_loss += 1;
        }
    }
    assert_eq!(trained, 20, "one view per step");
    assert!(
        with_loss >= 10,
        "readbacks every step reach their views: {with_loss}"
    );
}

/// Run control from outside the plugin: pause holds the run, a single step runs one
/// iteration, resume continues; a stop request ends it.
#[test]
fn pause_single_step_resume_and_stop() {
    let _turn = one_app_at_a_time();
    let mut config = short_config(50);
    config.run.steps_per_frame = 2;
    let (mut app, _dir) = demo_app(config);
    finish_setup(&mut app);
    app.update();
    assert_eq!(iteration(&app), 2);
    app.world_mut().resource_mut::<TrainPaused>().paused = true;
    app.update();
    app.update();
    assert_eq!(iteration(&app), 2, "paused");
    app.world_mut().resource_mut::<TrainPaused>().step_once();
    app.update();
    assert_eq!(iteration(&app), 3, "one single step");
    app.update();
    assert_eq!(iteration(&app), 3, "still paused");
    app.world_mut().resource_mut::<TrainPaused>().paused = false;
    app.update();
    assert_eq!(iteration(&app), 5, "resumed");
    app.world().resource::<StopRequest>().request();
    app.update();
    assert_eq!(iteration(&app), 5, "stopped");
    assert!(!app.world().resource::<TrainState>().finished);
}

/// In a run without densification (nothing else waits for the GPU), the last good state keeps
/// its schedule: a capture every `good_state_interval` steps, read `interval / 2` steps later.
#[test]
fn without_densification_the_last_good_state_keeps_its_schedule() {
    let _turn = one_app_at_a_time();
    // 300 steps end before densification starts (densify_from_iter, 500).
    let mut config = short_config(300);
    config.run.good_state_interval = 100;
    config.run.steps_per_frame = 50;
    let (mut app, _dir) = demo_app(config);
    finish_setup(&mut app);
    while iteration_after_update(&mut app) < 300 {
        assert_eq!(failure(&app), None);
    }
    let good = app.world().resource::<state_capture::LastGoodState>();
    let good_at = good.0.as_ref().map(|c| c.meta.iteration);
    // 300 is captured at the last step, to be read after the run if it fails.
    assert_eq!(good_at, Some(200), "the last good state read by the end");
}

/// Parameters as a hook sees them, per iteration.
#[derive(Resource, Default)]
struct Seen {
    /// Before the forward pass.
    before: Vec<(u32, Gaussians, u64)>,
    /// After the optimiser.
    after: Vec<(u32, Gaussians, u64)>,
}

fn download(gpu: &Gpu, train: &TrainGpuState, state: &TrainState) -> (u32, Gaussians, u64) {
    let cloud = &train.cloud;
    (state.iteration, cloud.download(gpu), cloud.generation())
}

fn before_forward(
    gpu: Res<Gpu>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut seen: ResMut<Seen>,
) {
    seen.before.push(download(&gpu, &train, &state));
}

fn after_optimize(
    gpu: Res<Gpu>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut seen: ResMut<Seen>,
) {
    seen.after.push(download(&gpu, &train, &state));
}

/// A system ordered after `TrainSet::Optimize` sees, every step, the parameters that step
/// produced (what the game plugin draws): nothing changes them before the next step's forward
/// pass, and each ordinary step did change them. A densification replaces the buffers and
/// says so through the cloud's generation.
#[test]
fn a_hook_after_optimize_sees_each_steps_parameters() {
    let _turn = one_app_at_a_time();
    let mut config = short_config(12);
    config.model.sh_degree = 0;
    config.run.steps_per_frame = 12;
    // One densification, at iteration 8.
    config.optimization.densify_from_iter = 4;
    config.optimization.densify_until_iter = 10;
    config.optimization.densification_interval = 8;
    let (mut app, _dir) = demo_app(config);
    app.init_resource::<Seen>().add_systems(
        TrainStep,
        (
            before_forward
                .after(TrainSet::Begin)
                .before(TrainSet::Forward),
            after_optimize.after(TrainSet::Optimize),
        ),
    );
    finish_setup(&mut app);
    app.update();
    assert_eq!(iteration(&app), 12);
    assert_eq!(failure(&app), None);
    let seen = app.world().resource::<Seen>();
    let iterations = |list: &[(u32, Gaussians, u64)]| list.iter().map(|s| s.0).collect::<Vec<_>>();
    assert_eq!(
        iterations(&seen.after),
        (1..=12).collect::<Vec<_>>(),
        "every step"
    );
    assert_eq!(iterations(&seen.before), (1..=12).collect::<Vec<_>>());
    for k in 0..11 {
        assert!(
            seen.after[k].1 == seen.before[k + 1].1,
            "iteration {}: the parameters changed after the hook ran",
            k + 1
        );
    }
    for (before, after) in seen.before.iter().zip(&seen.after) {
        let iteration = before.0;
        if iteration == 8 {
            assert!(after.2 > before.2, "densification replaced the buffers");
        } else if iteration < 12 {
            // (The reference's optimiser does not step at the last iteration.)
            assert_eq!(before.2, after.2, "iteration {iteration}: same buffers");
            assert!(
                before.1 != after.1,
                "iteration {iteration}: the hook saw the parameters before the update"
            );
        }
    }
}

/// Records which sets ran, per iteration.
#[derive(Resource, Default)]
struct SetsRun(Vec<(u32, TrainSet)>);

fn record_set(set: TrainSet) -> impl FnMut(Res<TrainState>, ResMut<SetsRun>) {
    move |state: Res<TrainState>, mut run: ResMut<SetsRun>| run.0.push((state.iteration, set))
}

/// Fails the forward stage at iteration 3.
fn fail_at_three(state: Res<TrainState>, mut failure: ResMut<TrainFailure>) {
    if state.iteration == 3 {
        failure.record(TrainSet::Forward, 3, "injected");
    }
}

/// Once a stage fails, no later set runs in that step (a chained tuple with one `run_if`
/// evaluated the condition once, before the whole chain, and ran the rest anyway), and the
/// run stops.
#[test]
fn no_set_runs_after_a_failure_in_the_same_step() {
    let _turn = one_app_at_a_time();
    let mut config = short_config(10);
    config.run.steps_per_frame = 10;
    let (mut app, _dir) = demo_app(config);
    app.init_resource::<SetsRun>();
    app.add_systems(
        TrainStep,
        fail_at_three
            .in_set(TrainSet::Forward)
            .after(forward::render_view),
    );
    for set in TrainSet::ALL {
        let marker = record_set(set).in_set(set);
        match set {
            // After the iteration count moved on.
            TrainSet::Begin => app.add_systems(TrainStep, marker.after(sample_view::sample_view)),
            // In the failing set itself, after the failure: skipped by its own condition (the
            // set's condition was evaluated before the set's first system).
            TrainSet::Forward => {
                app.add_systems(TrainStep, marker.after(fail_at_three).run_if(train_healthy))
            }
            _ => app.add_systems(TrainStep, marker),
        };
    }
    finish_setup(&mut app);
    app.update();
    assert_eq!(iteration(&app), 3, "the run stopped at the failure");
    let failure = failure(&app).expect("the failure is kept");
    assert_eq!((failure.stage, failure.iteration), (TrainSet::Forward, 3));
    assert_eq!(failure.to_string(), "iteration 3, stage forward: injected");
    let run = &app.world().resource::<SetsRun>().0;
    let at = |i: u32| {
        run.iter()
            .filter(|r| r.0 == i)
            .map(|r| r.1)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        at(2),
        TrainSet::ALL,
        "a healthy step runs every set, in order"
    );
    assert_eq!(at(3), [TrainSet::Begin], "nothing after the failed stage");
}

/// A camera the rasterizer refuses fails the forward stage with its reason; the loss and the
/// backward pass do not run on the stale render (the loss used to panic on a buffer of the
/// wrong size, the backward pass on stale uniforms).
#[test]
fn a_refused_camera_fails_the_forward_stage_without_panicking() {
    let _turn = one_app_at_a_time();
    let (mut app, _dir) = demo_app(short_config(10));
    start_paused(&mut app);
    let world = app.world_mut();
    let mut views = world.query::<&mut TrainView>();
    for mut view in views.iter_mut(world) {
        view.camera.fx = 0.0;
    }
    world.resource_mut::<TrainPaused>().paused = false;
    app.update();
    let failure = failure(&app).expect("the step fails");
    assert_eq!((failure.stage, failure.iteration), (TrainSet::Forward, 1));
    assert!(failure.message.contains("invalid camera"), "{failure}");
}

/// A view without its ground-truth image is an error of the loss stage, never a skipped loss.
#[test]
fn a_view_without_its_image_fails_the_loss_stage() {
    let _turn = one_app_at_a_time();
    let (mut app, _dir) = demo_app(short_config(10));
    start_paused(&mut app);
    let world = app.world_mut();
    let train_views: Vec<Entity> = world
        .query_filtered::<Entity, With<TrainSplit>>()
        .iter(world)
        .collect();
    for view in train_views {
        world.entity_mut(view).remove::<ViewImage>();
    }
    world.resource_mut::<TrainPaused>().paused = false;
    app.update();
    let failure = failure(&app).expect("the step fails");
    assert_eq!((failure.stage, failure.iteration), (TrainSet::Loss, 1));
    assert!(
        failure.message.contains("no ground-truth image"),
        "{failure}"
    );
}
