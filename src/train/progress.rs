//! The loss reaches the CPU asynchronously: every `run.loss_readback_interval` steps the step
//! copies its loss into a small mappable buffer, maps it after submission, and a later step
//! picks the value up once the GPU has finished. No step ever waits for the GPU here.
//!
//! The smoothed loss follows the reference (0.4 new + 0.6 old), updated at each readback, and
//! each loss is also kept on its view's [`ViewStats`]; a non-finite loss stops the run.
//!
//! Progress shows as a bar on a terminal; without one (a log file, CI) as a plain line every
//! `run.progress_log_interval_s` seconds; with `run.quiet` not at all.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::TrainSet;
use super::state::{
    StepBuffers, StepEncoder, TrainConfig, TrainFailure, TrainGpuState, TrainMetrics, TrainState,
};
use crate::app::Gpu;
use crate::views::{ViewLoss, ViewStats};

const IDLE: u8 = 0;
const RECORDED: u8 = 1;
const MAPPING: u8 = 2;
const READY: u8 = 3;
const FAILED: u8 = 4;

/// How many readbacks may be in flight at once; when all are busy a readback is skipped.
const SLOTS: usize = 4;

struct Slot {
    buffer: wgpu::Buffer,
    iteration: u32,
    /// The view the step trained on.
    view: Option<Entity>,
    status: Arc<AtomicU8>,
}

/// One loss value that reached the CPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossSample {
    pub iteration: u32,
    pub view: Option<Entity>,
    pub loss: f64,
}

/// Staging buffers for asynchronous loss readbacks.
#[derive(Resource)]
pub struct LossReadback {
    slots: Vec<Slot>,
}

impl LossReadback {
    pub fn new(gpu: &Gpu) -> Self {
        let slots = (0..SLOTS)
            .map(|i| Slot {
                buffer: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("loss readback {i}")),
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                iteration: 0,
                view: None,
                status: Arc::new(AtomicU8::new(IDLE)),
            })
            .collect();
        Self { slots }
    }

    /// Waits for every readback in flight (end of run, before the final summary).
    pub fn drain(&mut self, gpu: &Gpu) -> Vec<LossSample> {
        self.map_recorded();
        if self
            .slots
            .iter()
            .any(|s| s.status.load(Ordering::Acquire) == MAPPING)
        {
            gpu.wait_idle();
        }
        self.collect()
    }

    /// Starts mapping the slots whose copy was just submitted.
    fn map_recorded(&mut self) {
        for slot in &self.slots {
            if slot.status.load(Ordering::Acquire) == RECORDED {
                slot.status.store(MAPPING, Ordering::Release);
                let status = slot.status.clone();
                slot.buffer
                    .slice(..)
                    .map_async(wgpu::MapMode::Read, move |result| {
                        status.store(
                            if result.is_ok() { READY } else { FAILED },
                            Ordering::Release,
                        );
                    });
            }
        }
    }

    /// Losses whose mapping completed, in iteration order; their slots become free.
    fn collect(&mut self) -> Vec<LossSample> {
        let mut out = Vec::new();
        for slot in &mut self.slots {
            match slot.status.load(Ordering::Acquire) {
                READY => {
                    let value = {
                        let view = slot.buffer.slice(..).get_mapped_range();
                        bytemuck::cast_slice::<u8, f32>(&view)[0]
                    };
                    slot.buffer.unmap();
                    slot.status.store(IDLE, Ordering::Release);
                    out.push(LossSample {
                        iteration: slot.iteration,
                        view: slot.view,
                        loss: f64::from(value),
                    });
                }
                FAILED => slot.status.store(IDLE, Ordering::Release),
                _ => {}
            }
        }
        out.sort_by_key(|sample| sample.iteration);
        out
    }
}

/// How progress is shown: a bar on a terminal, plain lines in a log, or nothing (`quiet`).
#[derive(Resource)]
pub struct TrainProgress {
    /// The bar (hidden unless stderr is a terminal and the run is not quiet).
    pub bar: ProgressBar,
    /// Without a terminal: the interval between progress lines (`None`: no lines).
    log_interval: Option<Duration>,
    last_log: Instant,
    /// Iteration and time of the last line (for the rate).
    last_log_iteration: u32,
}

impl TrainProgress {
    /// Progress of a run of `total` iterations starting after `start`. A bar when stderr is a
    /// terminal, else a line every `log_interval_s` seconds (0: never); nothing when `quiet`.
    pub fn new(total: u32, start: u32, quiet: bool, log_interval_s: f64) -> Self {
        Self::with_terminal(
            total,
            start,
            quiet,
            log_interval_s,
            std::io::stderr().is_terminal(),
        )
    }

    /// [`TrainProgress::new`] with the terminal test decided by the caller.
    pub fn with_terminal(
        total: u32,
        start: u32,
        quiet: bool,
        log_interval_s: f64,
        terminal: bool,
    ) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(u64::from(total)),
            if quiet || !terminal {
                ProgressDrawTarget::hidden()
            } else {
                ProgressDrawTarget::stderr_with_hz(4)
            },
        );
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
            )
            .expect("valid template"),
        );
        bar.set_prefix("Training");
        bar.set_position(u64::from(start));
        let log_interval = (!quiet && !terminal && log_interval_s > 0.0)
            .then(|| Duration::from_secs_f64(log_interval_s));
        Self {
            bar,
            log_interval,
            last_log: Instant::now(),
            last_log_iteration: start,
        }
    }

    /// The progress line due now, if one is (without a terminal, every interval).
    pub fn due_line(&mut self, state: &TrainState, gaussians: u32) -> Option<String> {
        let interval = self.log_interval?;
        let now = Instant::now();
        let since = now.duration_since(self.last_log);
        if since < interval && !state.finished {
            return None;
        }
        let rate = f64::from(state.iteration - self.last_log_iteration.min(state.iteration))
            / since.as_secs_f64().max(1e-9);
        self.last_log = now;
        self.last_log_iteration = state.iteration;
        Some(progress_line(state, rate, gaussians))
    }
}

/// `[ITER 1200/30000] 85.3 it/s, loss 0.08123, 123456 Gaussians`: the plain progress line.
pub fn progress_line(state: &TrainState, iterations_per_second: f64, gaussians: u32) -> String {
    let loss = state
        .ema_loss
        .map(|l| format!("loss {l:.5}"))
        .unwrap_or_else(|| "loss -".into());
    format!(
        "[ITER {}/{}] {iterations_per_second:.1} it/s, {loss}, {gaussians} Gaussians",
        state.iteration, state.last_iteration
    )
}

/// Whether this step's loss value is read back (every `run.loss_readback_interval` steps and
/// at the last one): the loss stage reduces it only then.
pub fn loss_read_back_at(config: &TrainConfig, state: &TrainState) -> bool {
    let interval = config.run.loss_readback_interval.max(1);
    state.iteration.is_multiple_of(interval) || state.iteration == state.last_iteration
}

/// Records a copy of this step's loss into a free readback slot (every N steps).
pub fn record_loss_readback(
    gpu: Res<Gpu>,
    config: Res<TrainConfig>,
    state: Res<TrainState>,
    buffers: Res<StepBuffers>,
    mut readback: ResMut<LossReadback>,
    mut encoder: ResMut<StepEncoder>,
) {
    if !loss_read_back_at(&config, &state) {
        return;
    }
    let Some(slot) = readback
        .slots
        .iter_mut()
        .find(|s| s.status.load(Ordering::Acquire) == IDLE)
    else {
        return; // the GPU is far behind; skip this readback rather than wait
    };
    encoder
        .get(&gpu)
        .copy_buffer_to_buffer(&buffers.loss, 0, &slot.buffer, 0, 16);
    slot.iteration = state.iteration;
    slot.view = state.current_view;
    slot.status.store(RECORDED, Ordering::Release);
}

/// Where loss values go when they reach the CPU: the smoothed loss, the history, the failure
/// record (a non-finite loss) and the views' [`ViewStats`].
#[derive(SystemParam)]
pub struct LossRecords<'w, 's> {
    pub state: ResMut<'w, TrainState>,
    pub metrics: ResMut<'w, TrainMetrics>,
    pub failure: ResMut<'w, TrainFailure>,
    pub views: Query<'w, 's, &'static mut ViewStats>,
}

impl LossRecords<'_, '_> {
    /// Folds one loss value into the smoothed loss, the history and its view's stats.
    pub fn record(&mut self, sample: LossSample) {
        let LossSample {
            iteration, loss, ..
        } = sample;
        if !loss.is_finite() {
            self.failure.record_non_finite(
                TrainSet::Finish,
                iteration,
                format!("the loss became {loss}"),
            );
        }
        self.state.ema_loss = Some(match self.state.ema_loss {
            Some(old) => 0.4 * loss + 0.6 * old,
            None => loss,
        });
        self.metrics.loss.push((iteration, loss));
        if let Some(mut stats) = sample.view.and_then(|view| self.views.get_mut(view).ok()) {
            stats.last_loss = Some(ViewLoss { iteration, loss });
        }
    }
}

/// After submission: starts the mappings, collects finished readbacks, updates the smoothed
/// loss, the views' latest losses and the progress display, and flags a non-finite loss.
pub fn update_progress(
    gpu: Res<Gpu>,
    train: Res<TrainGpuState>,
    mut readback: ResMut<LossReadback>,
    mut records: LossRecords,
    progress: Option<ResMut<TrainProgress>>,
) {
    readback.map_recorded();
    // Non-blocking: runs the callbacks of mappings that have completed.
    let _ = gpu.device.poll(wgpu::PollType::Poll);
    for sample in readback.collect() {
        records.record(sample);
    }
    let Some(mut progress) = progress else {
        return;
    };
    let state = &records.state;
    progress.bar.set_position(u64::from(state.iteration));
    if state.iteration.is_multiple_of(10) || state.finished {
        let loss = state
            .ema_loss
            .map(|l| format!("loss {l:.5}"))
            .unwrap_or_default();
        progress
            .bar
            .set_message(format!("{loss}  {} Gaussians", train.cloud.len));
    }
    if let Some(line) = progress.due_line(state, train.cloud.len) {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_only_without_a_terminal_and_not_quiet() {
        let mut state = TrainState::new(0, 100);
        state.iteration = 40;
        state.ema_loss = Some(0.125);
        // An interval of a microsecond: every call is due.
        let mut log = TrainProgress::with_terminal(100, 0, false, 1e-6, false);
        std::thread::sleep(Duration::from_millis(2));
        let line = log.due_line(&state, 1234).expect("a line is due");
        assert!(line.starts_with("[ITER 40/100] "), "{line}");
        assert!(
            line.contains("it/s, loss 0.12500, 1234 Gaussians"),
            "{line}"
        );
        let mut terminal = TrainProgress::with_terminal(100, 0, false, 1e-6, true);
        let mut quiet = TrainProgress::with_terminal(100, 0, true, 1e-6, false);
        let mut never = TrainProgress::with_terminal(100, 0, false, 0.0, false);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(terminal.due_line(&state, 1), None);
        assert_eq!(quiet.due_line(&state, 1), None);
        assert_eq!(never.due_line(&state, 1), None);
        // A long interval: not due again right away, but always at the end of the run.
        let mut hourly = TrainProgress::with_terminal(100, 0, false, 3600.0, false);
        assert_eq!(hourly.due_line(&state, 1), None);
        state.finished = true;
        assert!(hourly.due_line(&state, 1).is_some());
    }
}
