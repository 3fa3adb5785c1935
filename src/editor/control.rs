//! Carrying out the run panel's requests and watching the run, once per frame.
//!
//! Before the trainer's update: how many steps this frame may run (none while paused, one per
//! queued single step, otherwise `run.steps_per_frame` or as many as keep the target frame
//! rate). After it: the status line, the history for the plots, per-view losses, evaluations
//! and failures into the log.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bevy::prelude::*;

use super::log::EditorLog;
use super::plots::RunHistory;
use super::run::{self, EditorRun, OpenRequest, PendingOpen};
use super::run_panel::{RunControl, RunPhase, RunRequest, RunStatus};
use crate::app::Gpu;
use crate::train::optimize::learning_rates;
use crate::train::{
    StepBuffers, StepsPerUpdate, StopRequest, TrainConfig, TrainFailure, TrainGpuState,
    TrainMetrics, TrainState,
};
use crate::views::{SceneInfo, TrainView, ViewImage};

/// The status line's figures, refreshed after the trainer's update.
#[derive(Resource, Clone, Debug, Default)]
pub struct CurrentStatus(pub RunStatus);

/// Picks the steps per frame that keep a target frame rate: training gets the frame time the
/// rest of the frame (drawing the viewport and the panels) leaves.
///
/// The GPU runs a frame or two behind the CPU, so one frame's time says little about the
/// steps that frame submitted: scaling each frame's steps by its own time oscillates (a short
/// frame doubles the work, the queue fills, long frames halve it again, and the mean frame
/// rate ends far below the target). The budget follows the mean frame time over the last
/// frames instead (exponential, about eight frames) and moves by at most 25% per frame.
#[derive(Resource, Clone, Debug)]
pub struct StepBudget {
    /// Steps for the next frame.
    pub steps: u32,
    last_frame: Option<Instant>,
    /// Mean seconds per frame over recent frames.
    mean_frame_s: Option<f64>,
    /// The budget before rounding (so that small budgets can grow by less than one step).
    wanted: f64,
}

impl Default for StepBudget {
    fn default() -> Self {
        Self {
            steps: 1,
            last_frame: None,
            mean_frame_s: None,
            wanted: 1.0,
        }
    }
}

impl StepBudget {
    /// Weight of the newest frame in the averages.
    const WEIGHT: f64 = 0.125;

    /// Adjusts the steps after a frame that ran `ran` steps and took `frame` in all: scaled by
    /// target / recent mean frame time, by 0.8 to 1.25.
    pub fn update(&mut self, ran: u32, frame: Duration, target_fps: f32) {
        if ran == 0 || frame.is_zero() {
            return;
        }
        let seconds = frame.as_secs_f64();
        let mean = self
            .mean_frame_s
            .map_or(seconds, |mean| mean + Self::WEIGHT * (seconds - mean));
        self.mean_frame_s = Some(mean);
        let target = 1.0 / f64::from(target_fps.max(0.1));
        let ratio = (target / mean).clamp(0.8, 1.25);
        self.wanted = (self.wanted * ratio).clamp(1.0, 100_000.0);
        self.steps = self.wanted.round() as u32;
    }
}

/// Measured rates over the last second or so.
#[derive(Resource, Clone, Debug, Default)]
pub struct RateMeter {
    /// `(when, iteration)` per frame, the oldest first.
    samples: VecDeque<(Instant, u32)>,
    /// Steps run in the last frame.
    pub steps_last_frame: u32,
}

impl RateMeter {
    fn record(&mut self, now: Instant, iteration: u32) {
        if let Some(&(_, last)) = self.samples.back() {
            self.steps_last_frame = iteration.saturating_sub(last);
        }
        self.samples.push_back((now, iteration));
        // Keep about two seconds, and always the frame before this one (slow frames).
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(2))
        {
            self.samples.pop_front();
        }
    }

    /// (iterations per second, frames per second) over the window.
    pub fn rates(&self) -> (f64, f64) {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return (0.0, 0.0);
        };
        let seconds = last.0.duration_since(first.0).as_secs_f64();
        if seconds <= 0.0 {
            return (0.0, 0.0);
        }
        (
            f64::from(last.1.saturating_sub(first.1)) / seconds,
            (self.samples.len() - 1) as f64 / seconds,
        )
    }
}

/// Per view (index in the dataset's list): the latest training loss (the trainer's
/// [`crate::views::ViewStats`]) and the latest PSNR measured on it (at evaluations, or by the
/// views panel on the selected view), with the iteration each was measured at.
#[derive(Resource, Clone, Debug, Default)]
pub struct ViewStats {
    pub loss: Vec<Option<(u32, f64)>>,
    pub psnr: Vec<Option<(u32, f64)>>,
}

impl ViewStats {
    fn resize(&mut self, views: usize) {
        self.loss.resize(views, None);
        self.psnr.resize(views, None);
    }
}

/// The phase of the run as the panels show it.
pub fn run_phase(world: &World) -> RunPhase {
    let Some(state) = world.get_resource::<TrainState>() else {
        return RunPhase::Idle;
    };
    let run = world.resource::<EditorRun>();
    if let Some(failure) = &world.resource::<TrainFailure>().0 {
        return RunPhase::Failed(failure.to_string());
    }
    if !run.trainable {
        return RunPhase::Idle;
    }
    if run.stopped {
        return RunPhase::Stopped;
    }
    if state.finished {
        return RunPhase::Finished;
    }
    if world.resource::<RunControl>().paused {
        RunPhase::Paused
    } else {
        RunPhase::Running
    }
}

/// Before the trainer's update: how many steps it may run this frame.
pub fn apply_run_control(world: &mut World) {
    let phase = run_phase(world);
    let now = Instant::now();
    let steps = {
        let mut control = world.resource_mut::<RunControl>();
        match phase {
            RunPhase::Running => None, // decided below
            RunPhase::Paused if control.pending_steps > 0 => {
                control.pending_steps -= 1;
                Some(1)
            }
            _ => Some(0),
        }
    };
    let steps = match steps {
        Some(steps) => steps,
        None => {
            let auto = world.resource::<RunControl>().auto_steps;
            if auto {
                world.resource::<StepBudget>().steps
            } else {
                world
                    .get_resource::<TrainConfig>()
                    .map_or(1, |c| c.run.steps_per_frame)
            }
        }
    };
    world
        .resource_mut::<StepBudget>()
        .last_frame
        .get_or_insert(now);
    // The trainer runs while its stop request is clear; the request is the editor's pause
    // switch here (the editor ends runs itself, with the stop button).
    if let Some(stop) = world.get_resource::<StopRequest>() {
        stop.0
            .store(steps == 0, std::sync::atomic::Ordering::Relaxed);
    }
    world.insert_resource(StepsPerUpdate(steps.max(1)));
}

/// After the trainer's update: rates, status line, history, per-view losses, evaluations and
/// failures.
pub fn observe_run(world: &mut World) {
    run::handle_failure(world);
    let now = Instant::now();
    let phase = run_phase(world);
    let Some(state) = world.get_resource::<TrainState>().cloned() else {
        world.resource_mut::<CurrentStatus>().0 = RunStatus { phase, ..default() };
        return;
    };

    // Rates and the step budget.
    let (ran, frame_time) = {
        let mut meter = world.resource_mut::<RateMeter>();
        meter.record(now, state.iteration);
        let ran = meter.steps_last_frame;
        let mut budget = world.resource_mut::<StepBudget>();
        let frame_time = budget.last_frame.map(|t| now.duration_since(t));
        budget.last_frame = Some(now);
        (ran, frame_time)
    };
    let target_fps = world.resource::<RunControl>().target_fps;
    if let Some(frame_time) = frame_time {
        world
            .resource_mut::<StepBudget>()
            .update(ran, frame_time, target_fps);
    }
    let (iterations_per_second, frames_per_second) = world.resource::<RateMeter>().rates();

    // History for the plots.
    if let (Some(config), Some(scene)) = (
        world.get_resource::<TrainConfig>(),
        world.get_resource::<SceneInfo>(),
    ) {
        let lr = learning_rates(config, scene.extent).at(state.iteration.max(1))[0];
        let mut history = world.resource_mut::<RunHistory>();
        history.sample_position_lr(state.iteration, f64::from(lr));
        let due = history
            .speed
            .last()
            .is_none_or(|&[i, _]| f64::from(state.iteration) >= i + 1.0);
        if ran > 0 && due && iterations_per_second > 0.0 {
            history
                .speed
                .push([f64::from(state.iteration), iterations_per_second]);
        }
    }

    credit_view_losses(world);
    log_new_evaluations(world);

    let gaussians = world
        .get_resource::<TrainGpuState>()
        .map_or(0, |t| t.cloud.len);
    let image_bytes: u64 = world
        .query::<&ViewImage>()
        .iter(world)
        .map(|image| image.buffer.size())
        .sum();
    let gpu_bytes = world
        .get_resource::<TrainGpuState>()
        .map_or(0, |t| t.bytes())
        + world
            .get_resource::<StepBuffers>()
            .map_or(0, |b| b.frame.bytes())
        + image_bytes;
    let output = world.resource::<EditorRun>().output.display().to_string();
    let status = RunStatus {
        phase,
        iteration: state.iteration,
        last_iteration: state.last_iteration,
        iterations_per_second,
        frames_per_second,
        steps_last_frame: ran,
        gaussians,
        gpu_bytes,
        ema_loss: state.ema_loss,
        output,
    };
    world.resource_mut::<CurrentStatus>().0 = status;
}

/// Copies each view's latest loss and evaluation PSNR from the trainer's per-view statistics
/// (a PSNR the views panel measured later stays).
fn credit_view_losses(world: &mut World) {
    let mut views = world.query::<(&TrainView, &crate::views::ViewStats)>();
    type Measured = Option<(u32, f64)>;
    let latest: Vec<(usize, Measured, Measured)> = views
        .iter(world)
        .map(|(view, stats)| {
            (
                view.index,
                stats.last_loss.map(|l| (l.iteration, l.loss)),
                stats.last_eval.map(|e| (e.iteration, e.psnr)),
            )
        })
        .collect();
    let count = latest
        .iter()
        .map(|(index, ..)| index + 1)
        .max()
        .unwrap_or(0);
    let mut stats = world.resource_mut::<ViewStats>();
    stats.resize(count);
    for (index, loss, eval) in latest {
        if loss.is_some() {
            stats.loss[index] = loss;
        }
        if let Some(eval) = eval
            && stats.psnr[index].is_none_or(|(at, _)| at < eval.0)
        {
            stats.psnr[index] = Some(eval);
        }
    }
}

/// Evaluations reach the log as they happen.
#[derive(Resource, Default)]
pub struct EvaluationsLogged(pub usize);

fn log_new_evaluations(world: &mut World) {
    let Some(metrics) = world.get_resource::<TrainMetrics>() else {
        return;
    };
    let logged = world
        .resource::<EvaluationsLogged>()
        .0
        .min(metrics.evaluations.len());
    let new: Vec<String> = metrics.evaluations[logged..]
        .iter()
        .map(|r| {
            format!(
                "evaluation {} ({} views): L1 {:.4}, PSNR {:.2} dB, SSIM {:.4}, {} Gaussians",
                r.split, r.views, r.l1, r.psnr, r.ssim, r.num_gaussians
            )
        })
        .collect();
    let total = metrics.evaluations.len();
    let iteration = world
        .get_resource::<TrainState>()
        .map_or(0, |s| s.iteration);
    world.resource_mut::<EvaluationsLogged>().0 = total;
    let mut log = world.resource_mut::<EditorLog>();
    for line in new {
        log.info(iteration, line);
    }
}

/// Carries out the requests of the last frame's panels: save, stop, fork, new run.
pub fn carry_out_requests(world: &mut World) {
    let requests = std::mem::take(&mut world.resource_mut::<RunControl>().requests);
    for request in requests {
        let iteration = world
            .get_resource::<TrainState>()
            .map_or(0, |s| s.iteration);
        let outcome: anyhow::Result<String> = match request {
            RunRequest::SavePly => {
                run::save_ply_now(world).map(|p| format!("saved {}", p.display()))
            }
            RunRequest::SaveCheckpoint => {
                run::save_checkpoint_now(world).map(|p| format!("saved {}", p.display()))
            }
            RunRequest::Stop => run::save_unsaved(world).map(|files| {
                world.resource_mut::<EditorRun>().stopped = true;
                let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                if names.is_empty() {
                    "stopped".to_string()
                } else {
                    format!("stopped; saved {}", names.join(" and "))
                }
            }),
            RunRequest::Fork => run::fork(world).map(|_| String::new()),
            RunRequest::NewRun => start_new_run(world).map(|what| format!("opening {what}…")),
        };
        let mut log = world.resource_mut::<EditorLog>();
        match outcome {
            Ok(message) if message.is_empty() => {}
            Ok(message) => log.info(iteration, message),
            Err(error) => log.error(iteration, format!("{request:?}: {error:#}")),
        }
    }
}

/// Opens a new run of the open scene with the current configuration and any staged fixed
/// fields, into the next output folder.
fn start_new_run(world: &mut World) -> anyhow::Result<String> {
    let config = {
        let run = world.resource::<EditorRun>();
        let current = world.resource::<TrainConfig>().0.clone();
        run.staged.clone().unwrap_or(current)
    };
    open(world, OpenRequest::NewRun, config)
}

/// Starts opening `request` with `config` in the background, into a new output folder.
pub fn open(world: &mut World, request: OpenRequest, config: Config) -> anyhow::Result<String> {
    let output = run::next_output(&world.resource::<EditorRun>().output);
    let what = format!("{request:?}");
    let gpu = world.resource::<Gpu>().0.clone();
    world
        .resource::<PendingOpen>()
        .start(request, config, output, gpu)
        .map_err(|e| anyhow::anyhow!(e))?;
    world.resource_mut::<EditorRun>().staged = None;
    Ok(what)
}

use crate::config::Config;

/// Waits for the GPU (used before measurements and at exit).
pub fn wait_for_gpu(world: &World) {
    if let Some(gpu) = world.get_resource::<Gpu>() {
        gpu.wait_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_budget_moves_towards_the_target_frame_time() {
        let mut budget = StepBudget::default();
        for _ in 0..10 {
            budget.update(budget.steps, Duration::from_millis(25), 20.0); // half the target
        }
        assert_eq!(budget.steps, 9, "at most 25% more per frame: 1.25^10");
        budget.update(0, Duration::from_millis(1), 20.0);
        assert_eq!(budget.steps, 9, "frames without steps say nothing");

        // A GPU that takes 5 ms per step plus 10 ms per frame, seen one frame late (each
        // frame's time is the previous frame's work): the budget settles around the 8 steps
        // that fill 50 ms, and the mean frame time is the target.
        let mut budget = StepBudget::default();
        let mut previous = 1;
        let mut late = Vec::new();
        for frame in 0..300 {
            let ran = budget.steps;
            let time = Duration::from_millis(10 + 5 * u64::from(previous));
            budget.update(ran, time, 20.0);
            previous = ran;
            if frame >= 200 {
                late.push(time.as_secs_f64());
            }
        }
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        assert!((mean - 0.05).abs() < 0.003, "mean frame {mean} s");
        assert!(late.iter().all(|&t| (0.04..=0.06).contains(&t)), "{late:?}");

        let mut budget = StepBudget::default();
        for _ in 0..50 {
            budget.update(1, Duration::from_secs(1), 20.0);
        }
        assert_eq!(budget.steps, 1, "never below one");
    }

    #[test]
    fn rates_over_the_window() {
        let mut meter = RateMeter::default();
        let t0 = Instant::now();
        meter.record(t0, 0);
        meter.record(t0 + Duration::from_millis(500), 100);
        meter.record(t0 + Duration::from_millis(1000), 200);
        assert_eq!(meter.steps_last_frame, 100);
        let (its, fps) = meter.rates();
        assert!((its - 200.0).abs() < 1e-9 && (fps - 2.0).abs() < 1e-9);
        // Frames slower than the window still give a rate.
        meter.record(t0 + Duration::from_secs(10), 300);
        let (its, _) = meter.rates();
        assert!((its - 100.0 / 9.0).abs() < 1e-9, "{its}");
    }
}
