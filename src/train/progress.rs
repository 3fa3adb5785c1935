//! The loss reaches the CPU asynchronously: every `run.loss_readback_interval` steps the step
//! copies its loss into a small mappable buffer, maps it after submission, and a later step
//! picks the value up once the GPU has finished. No step ever waits for the GPU here.
//!
//! The smoothed loss follows the reference (0.4 new + 0.6 old), updated at each readback; a
//! non-finite loss stops the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bevy::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::state::{
    StepBuffers, StepEncoder, TrainConfig, TrainFailure, TrainGpuState, TrainMetrics, TrainState,
};
use crate::app::Gpu;

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
    status: Arc<AtomicU8>,
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
                status: Arc::new(AtomicU8::new(IDLE)),
            })
            .collect();
        Self { slots }
    }

    /// Waits for every readback in flight (end of run, before the final summary).
    pub fn drain(&mut self, gpu: &Gpu) -> Vec<(u32, f64)> {
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
    fn collect(&mut self) -> Vec<(u32, f64)> {
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
                    out.push((slot.iteration, f64::from(value)));
                }
                FAILED => slot.status.store(IDLE, Ordering::Release),
                _ => {}
            }
        }
        out.sort_by_key(|(iteration, _)| *iteration);
        out
    }
}

/// The progress bar (hidden with `run.quiet` or when stderr is not a terminal).
#[derive(Resource)]
pub struct TrainProgress {
    pub bar: ProgressBar,
}

impl TrainProgress {
    pub fn new(total: u32, start: u32, quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(
            Some(u64::from(total)),
            if quiet {
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
        Self { bar }
    }
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
    let interval = config.run.loss_readback_interval.max(1);
    if !state.iteration.is_multiple_of(interval) && state.iteration != state.last_iteration {
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
    slot.status.store(RECORDED, Ordering::Release);
}

/// After submission: starts the mappings, collects finished readbacks, updates the smoothed
/// loss and the progress bar, and flags a non-finite loss.
pub fn update_progress(
    gpu: Res<Gpu>,
    mut state: ResMut<TrainState>,
    mut readback: ResMut<LossReadback>,
    mut metrics: ResMut<TrainMetrics>,
    mut failure: ResMut<TrainFailure>,
    progress: Option<Res<TrainProgress>>,
    train: Res<TrainGpuState>,
) {
    readback.map_recorded();
    // Non-blocking: runs the callbacks of mappings that have completed.
    let _ = gpu.device.poll(wgpu::PollType::Poll);
    for (iteration, loss) in readback.collect() {
        record_loss(&mut state, &mut metrics, &mut failure, iteration, loss);
    }
    if let Some(progress) = progress {
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
    }
}

/// Folds one loss value into the smoothed loss and the history.
pub fn record_loss(
    state: &mut TrainState,
    metrics: &mut TrainMetrics,
    failure: &mut TrainFailure,
    iteration: u32,
    loss: f64,
) {
    if !loss.is_finite() && failure.0.is_none() {
        failure.0 = Some(format!("the loss became {loss} at iteration {iteration}"));
    }
    state.ema_loss = Some(match state.ema_loss {
        Some(old) => 0.4 * loss + 0.6 * old,
        None => loss,
    });
    metrics.loss.push((iteration, loss));
}
