//! Training as Bevy systems: graphdeco-inria's train.py loop, one system per stage.
//!
//! One iteration is one run of the [`TrainStep`] schedule. Its systems sit in the public
//! [`TrainSet`]s, which run in this order (the reference's):
//!
//! ```text
//! Begin ─ Forward ─ Loss ─ Backward ─ Report ─ Densify ─ Optimize ─ Checkpoint ─ Finish
//! ```
//!
//! Stages record GPU work into the step's [`StepEncoder`]; the `Optimize` set ends by sending
//! it, so a plain step is one submission (the forward pass submits early only where it must
//! wait for the number of tile intersections); evaluation, saving, densification and
//! checkpoints flush the encoder first because they need the step's earlier work on the GPU.
//! The loss reaches the CPU asynchronously ([`progress`]).
//!
//! A stage that fails records a [`StepFailure`] in [`TrainFailure`]; every set is gated on
//! there being none, so no later stage runs in that step (ARCHITECTURE.md, "The training
//! step"). [`TrainPlugin`] runs `run.steps_per_frame` iterations per Bevy update (the editor);
//! the headless driver ([`session`]) runs a large batch per update and turns a failure into an
//! error after saving the last good state.

pub mod backward;
pub mod checkpoint;
pub mod debug;
pub mod densify;
pub mod forward;
pub mod limits;
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
pub mod state_capture;

use bevy::ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};
use bevy::prelude::*;

pub use report::ModelPath;
pub use session::{TrainSummary, train_headless};
pub use state::{
    FailureKind, MAX_STEPS_IN_FLIGHT, StepBuffers, StepEncoder, StepFailure, StepProfiler,
    StepStart, StepsInFlight, StopRequest, TrainConfig, TrainFailure, TrainGpuState, TrainKernels,
    TrainMetrics, TrainState,
};

use crate::app::Gpu;

/// One training iteration.
#[derive(ScheduleLabel, Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrainStep;

/// The stages of one training step, in the order they run: the extension points of the
/// trainer. Add a system to the [`TrainStep`] schedule `.in_set(..)` one of them, or
/// `.after(..)` / `.before(..)` one.
///
/// Every set runs only while [`train_healthy`] holds, so once a stage has recorded a failure no
/// later set runs in that step. (Bevy evaluates a set's condition once, before the set's first
/// system: a system of yours inside a set that should also skip after a failure earlier in the
/// same set can add `.run_if(train_healthy)` itself, as splatforge's own systems do.)
///
/// What a system ordered after each set can rely on is documented per variant.
#[derive(SystemSet, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrainSet {
    /// Counts the iteration, raises the active SH degree, picks the background and the view.
    /// After it: [`TrainState::iteration`] is this step's (1-based) and
    /// [`TrainState::current_view`] its view entity.
    Begin,
    /// Renders the current view. After it: the render is submitted into
    /// [`StepBuffers::frame`].
    Forward,
    /// The photometric loss and dL/d(image). After it: both are encoded into the step's
    /// encoder (not yet submitted).
    Loss,
    /// The rasterizer's backward pass into the gradients (and the densification statistics).
    /// After it (encoded, not yet submitted): [`TrainGpuState::grads`] holds dL/d(every
    /// parameter group) but the higher SH bands', which the Adam step forms from their factors
    /// in [`StepBuffers::frame`] (`RasterFrame::band_factors`); only on steps that debug mode
    /// checks are they written into `grads` too ([`backward::band_gradients`]).
    Backward,
    /// Evaluation at `run.test_iterations` and PLY snapshots at `run.save_iterations`; they see
    /// the parameters this step's loss was computed with, as in the reference.
    Report,
    /// Densify and prune, and the opacity reset, on the reference's schedule. After it:
    /// [`TrainGpuState::cloud`] may hold other buffers and another count (see
    /// [`crate::model::GaussianCloud::generation`]).
    Densify,
    /// The Adam step; then the step's GPU work is submitted. After it: the cloud holds this
    /// step's parameters for any GPU work submitted later on the same queue (a renderer's
    /// draw, a readback): read [`TrainGpuState::cloud`] from a system ordered
    /// `.after(TrainSet::Optimize)`.
    Optimize,
    /// Checkpoints at `run.checkpoint_iterations` and the periodic capture of the last good
    /// state (which also checks the parameters for non-finite values).
    Checkpoint,
    /// Picks up finished loss readbacks, updates the progress display and marks the run
    /// finished after its last iteration.
    Finish,
}

impl TrainSet {
    /// Every set, in the order they run.
    pub const ALL: [TrainSet; 9] = [
        TrainSet::Begin,
        TrainSet::Forward,
        TrainSet::Loss,
        TrainSet::Backward,
        TrainSet::Report,
        TrainSet::Densify,
        TrainSet::Optimize,
        TrainSet::Checkpoint,
        TrainSet::Finish,
    ];

    /// The stage's name in messages ("forward", "densify", ...).
    pub const fn name(self) -> &'static str {
        match self {
            TrainSet::Begin => "begin",
            TrainSet::Forward => "forward",
            TrainSet::Loss => "loss",
            TrainSet::Backward => "backward",
            TrainSet::Report => "report",
            TrainSet::Densify => "densify",
            TrainSet::Optimize => "optimize",
            TrainSet::Checkpoint => "checkpoint",
            TrainSet::Finish => "finish",
        }
    }

    /// Whether this stage changes the cloud or the optimiser state: a failure before it
    /// leaves the parameters of the previous step intact.
    pub const fn changes_parameters(self) -> bool {
        matches!(self, TrainSet::Densify | TrainSet::Optimize)
    }
}

/// How many iterations [`run_train_steps`] runs per Bevy update.
#[derive(Resource, Clone, Copy, Debug)]
pub struct StepsPerUpdate(pub u32);

/// Adds the training schedule and its resources. Needs [`Gpu`], the scene (`views::ScenePlugin`),
/// a [`TrainConfig`] and a [`ModelPath`]; `setup::TrainInit` says where the cloud starts from.
///
/// Run control from outside: [`StopRequest`] stops after the current step; [`TrainPaused`]
/// holds the run (and [`TrainPaused::step_once`] runs one step while paused);
/// `run.steps_per_frame` in [`TrainConfig`] sets the pace.
pub struct TrainPlugin;

impl Plugin for TrainPlugin {
    fn build(&self, app: &mut App) {
        let mut schedule = Schedule::new(TrainStep);
        // The stages all touch the GPU in order: a single thread avoids scheduling overhead.
        schedule.set_executor(SingleThreadedExecutor::new());
        schedule.configure_sets(
            (
                TrainSet::Begin,
                TrainSet::Forward,
                TrainSet::Loss,
                TrainSet::Backward,
                TrainSet::Report,
                TrainSet::Densify,
                TrainSet::Optimize,
                TrainSet::Checkpoint,
                TrainSet::Finish,
            )
                .chain(),
        );
        for set in TrainSet::ALL {
            schedule.configure_sets(set.run_if(train_healthy));
        }
        schedule.add_systems(
            (
                (sample_view::begin_iteration, sample_view::sample_view)
                    .chain()
                    .in_set(TrainSet::Begin),
                forward::render_view.in_set(TrainSet::Forward),
                loss::compute_loss.in_set(TrainSet::Loss),
                backward::backpropagate.in_set(TrainSet::Backward),
                (report::evaluate, report::save_ply)
                    .chain()
                    .in_set(TrainSet::Report),
                densify::densify_and_prune.in_set(TrainSet::Densify),
                (
                    optimize::optimize,
                    progress::record_loss_readback,
                    submit_step,
                )
                    .chain()
                    .in_set(TrainSet::Optimize),
                checkpoint::save_checkpoint.in_set(TrainSet::Checkpoint),
                (finish_iteration, progress::update_progress)
                    .chain()
                    .in_set(TrainSet::Finish),
            )
                // Each system also checks, so a failure stops the rest of its own set too.
                .distributive_run_if(train_healthy),
        );
        debug::add_checks(&mut schedule);
        app.add_schedule(schedule)
            .init_resource::<StepEncoder>()
            .init_resource::<StepsInFlight>()
            .init_resource::<TrainMetrics>()
            .init_resource::<TrainFailure>()
            .init_resource::<StopRequest>()
            .init_resource::<TrainPaused>()
            .init_resource::<report::ReportTime>()
            .init_resource::<state_capture::LastGoodState>()
            .init_resource::<state_capture::PendingGoodState>()
            .add_systems(Startup, setup::setup_training)
            .add_systems(Update, run_train_steps);
    }
}

/// Whether no stage has failed: the run condition of every [`TrainSet`].
pub fn train_healthy(failure: Res<TrainFailure>) -> bool {
    !failure.is_failed()
}

/// Holds the run between steps (the editor's pause button). While paused, [`run_train_steps`]
/// runs nothing, except one step for each [`TrainPaused::step_once`].
#[derive(Resource, Clone, Debug, Default)]
pub struct TrainPaused {
    pub paused: bool,
    /// Single steps asked for while paused.
    pub pending_steps: u32,
}

impl TrainPaused {
    /// Runs one more step at the next update, while paused.
    pub fn step_once(&mut self) {
        self.pending_steps += 1;
    }
}

/// Sends the step's GPU work (and, on a profiled step, waits for its timings); then the
/// render's intersection count can be read back.
fn submit_step(
    gpu: Res<Gpu>,
    mut encoder: ResMut<StepEncoder>,
    mut in_flight: ResMut<StepsInFlight>,
    mut profiler: ResMut<StepProfiler>,
    buffers: Res<StepBuffers>,
) {
    if profiler.active {
        profiler.resolve(encoder.get(&gpu));
    }
    if let Some(submission) = encoder.flush(&gpu) {
        in_flight.submitted(&gpu, submission);
    }
    buffers.frame.map_deferred_counts();
    if profiler.active {
        profiler.collect(&gpu);
    }
}

/// Marks the run finished after its last iteration.
fn finish_iteration(mut state: ResMut<TrainState>) {
    if state.iteration >= state.last_iteration {
        state.finished = true;
    }
}

/// Runs up to `StepsPerUpdate` (else `run.steps_per_frame`) iterations, stopping early when
/// the run finishes, fails or is asked to stop; nothing while [`TrainPaused`] (but the single
/// steps asked for). Training time excludes evaluation and saving.
pub fn run_train_steps(world: &mut World) {
    let Some(state) = world.get_resource::<TrainState>() else {
        return; // setup has not run (or failed)
    };
    if state.finished {
        return;
    }
    let mut steps = world
        .get_resource::<StepsPerUpdate>()
        .map(|s| s.0)
        .unwrap_or_else(|| world.resource::<TrainConfig>().run.steps_per_frame)
        .max(1);
    if let Some(mut paused) = world.get_resource_mut::<TrainPaused>()
        && paused.paused
    {
        steps = std::mem::take(&mut paused.pending_steps);
    }
    for _ in 0..steps {
        let done = world.resource::<TrainState>().finished
            || world.resource::<TrainFailure>().is_failed()
            || world.resource::<StopRequest>().is_requested();
        if done {
            break;
        }
        let started = std::time::Instant::now();
        world.resource_mut::<report::ReportTime>().0 = std::time::Duration::ZERO;
        world.run_schedule(TrainStep);
        let step_time = started.elapsed();
        let reporting = world.resource::<report::ReportTime>().0;
        world.resource_mut::<TrainState>().elapsed += step_time.saturating_sub(reporting);
        let iteration = world.resource::<TrainState>().iteration;
        let gaussians = world
            .get_resource::<TrainGpuState>()
            .map_or(0, |train| train.cloud.len);
        if let Some(mut profiler) = world.get_resource_mut::<StepProfiler>() {
            let ms = step_time.saturating_sub(reporting).as_secs_f64() * 1e3;
            profiler.record_step(iteration, ms, reporting.is_zero(), gaussians);
        }
    }
}

#[cfg(test)]
mod tests;
