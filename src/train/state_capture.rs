//! Copying the training state from the GPU: the blocking capture behind requested checkpoints
//! and failure saves, and the periodic capture of the last good state, which never waits.
//!
//! Every `run.good_state_interval` steps the state (parameters, Adam moments, densification
//! statistics) is copied into mappable buffers in the step's own submission; `collect_delay`
//! steps later, once the copies have arrived, a worker thread reads them and checks them for
//! non-finite values, and a later step keeps the clean ones as [`LastGoodState`] (or stops the
//! run naming the bad parameter). A run that fails saves that state (`train::session`).

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use super::TrainSet;
use super::checkpoint::{Checkpoint, CheckpointMeta, first_non_finite};
use super::state::{StepContext, StepEncoder, TrainFailure, TrainGpuState, TrainState};
use crate::app::Gpu;
use crate::gpu;
use crate::model::{Gaussians, ParamGroup};
use crate::views::SceneIdentity;

/// The last state known to be free of non-finite values, kept in CPU memory so a run that
/// diverges can still save a usable checkpoint.
#[derive(Resource, Default)]
pub struct LastGoodState(pub Option<Checkpoint>);

/// The periodic capture of [`LastGoodState`] on its way from the GPU: copied at the end of
/// step `meta.iteration` into mappable buffers, then (a later step, once the copies arrived)
/// read and checked on a worker thread, and kept when the thread is done. Waiting for it
/// would drain every step the CPU had queued ahead of the GPU (the blocking capture cost
/// 0.2-0.4 s every 1000 steps on bench_tabletop), and reading ~0.4 GB on the step's thread
/// would hold up the next steps (BENCHMARKS.md).
#[derive(Resource, Default)]
pub struct PendingGoodState {
    stage: CaptureStage,
    /// The last capture's staging buffers, for the next one: allocating ~0.4 GB of mappable
    /// memory costs 60-110 ms on the H200, so it is done on a worker thread while training goes
    /// on, and the capture waits for it.
    spare: Vec<Option<wgpu::Buffer>>,
    /// A capture is due as soon as its staging buffers are ready.
    due: bool,
}

/// A worker thread of a capture reads mapped staging memory or allocates it. One left running
/// when the process exits races the driver's own teardown, which unmaps that memory under it:
/// on the H200 that was a segmentation fault after every run whose final step started a
/// capture that fit the spare buffers (BENCHMARKS.md, issue 10's fifth session). So whoever
/// drops the pending capture (the headless run's end, the editor starting a new run) waits for
/// its thread first.
impl Drop for PendingGoodState {
    fn drop(&mut self) {
        std::mem::take(&mut self.stage).join_worker();
    }
}

#[derive(Default)]
enum CaptureStage {
    #[default]
    Idle,
    /// New staging buffers being allocated on a worker thread (the capture waits for them).
    Allocating(std::thread::JoinHandle<Vec<Option<wgpu::Buffer>>>),
    Copying(GoodStateReadback),
    Checking(std::thread::JoinHandle<CheckedCapture>),
}

impl CaptureStage {
    /// Waits for this stage's worker thread, if it has one, and drops what it made.
    fn join_worker(self) {
        match self {
            CaptureStage::Allocating(thread) => drop(thread.join()),
            CaptureStage::Checking(thread) => drop(thread.join()),
            CaptureStage::Idle | CaptureStage::Copying(_) => {}
        }
    }
}

/// A capture read into CPU memory, with its first non-finite parameter, if any.
struct CheckedCapture {
    checkpoint: Checkpoint,
    non_finite: Option<(ParamGroup, usize)>,
    spare: Vec<Option<wgpu::Buffer>>,
}

/// Waits for a capture being checked and keeps it as the last good state if it is clean
/// (before the last good state is saved: the run stopped).
pub fn settle_good_state(world: &mut World) {
    let stage = std::mem::take(&mut world.resource_mut::<PendingGoodState>().stage);
    if let CaptureStage::Checking(thread) = stage
        && let Ok(checked) = thread.join()
        && checked.non_finite.is_none()
    {
        world.resource_mut::<LastGoodState>().0 = Some(checked.checkpoint);
    }
}

/// A capture's copies on their way to the CPU, and what its checkpoint keeps besides them.
struct GoodStateReadback {
    meta: CheckpointMeta,
    sh_degree: u32,
    readback: gpu::readback::BatchReadback,
}

/// The buffers of a capture, in the order `GoodStateReadback::checkpoint` reads them: the
/// parameters, both Adam moments (each group by group) and the three statistics.
fn state_sources(train: &TrainGpuState) -> Vec<(&wgpu::Buffer, u64)> {
    let n = u64::from(train.cloud.len);
    let sh_degree = train.cloud.sh_degree();
    let mut sources = Vec::new();
    for buffers in [
        &train.cloud.params,
        &train.optimizer.exp_avg,
        &train.optimizer.exp_avg_sq,
    ] {
        for group in ParamGroup::ALL {
            sources.push((buffers.get(group), n * group.width(sh_degree) as u64 * 4));
        }
    }
    for stat in [
        &train.stats.grad_norm_sum,
        &train.stats.visible_count,
        &train.stats.max_radius,
    ] {
        sources.push((stat, n * 4));
    }
    sources
}

impl GoodStateReadback {
    /// Encodes the copies of the state into `encoder`, into the `spare` staging buffers of an
    /// earlier capture where they fit; map them once it is submitted.
    fn encode_reusing(
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        train: &TrainGpuState,
        state: &TrainState,
        scene: &SceneIdentity,
        view_index: impl Fn(Entity) -> Option<u32>,
        spare: Vec<Option<wgpu::Buffer>>,
    ) -> Self {
        let sources = state_sources(train);
        Self {
            meta: capture_meta(train, state, scene, view_index),
            sh_degree: train.cloud.sh_degree(),
            readback: gpu::readback::BatchReadback::encode_reusing(gpu, encoder, &sources, spare),
        }
    }

    /// Reads the copies (on a worker thread: ~0.4 GB for a large cloud), finds the first
    /// non-finite parameter and unmaps the staging buffers for the next capture.
    fn check(self) -> CheckedCapture {
        let checkpoint = self.checkpoint();
        CheckedCapture {
            non_finite: first_non_finite(&checkpoint.params),
            checkpoint,
            spare: self.readback.into_spare(),
        }
    }

    fn checkpoint(&self) -> Checkpoint {
        let groups = |first: usize| {
            let mut out = Gaussians::empty(self.sh_degree);
            for (k, group) in ParamGroup::ALL.into_iter().enumerate() {
                *out.group_mut(group) = self.readback.read(first + k);
            }
            out
        };
        let groups_per_set = ParamGroup::ALL.len();
        Checkpoint {
            params: groups(0),
            exp_avg: groups(groups_per_set),
            exp_avg_sq: groups(2 * groups_per_set),
            grad_norm_sum: self.readback.read(3 * groups_per_set),
            visible_count: self.readback.read(3 * groups_per_set + 1),
            max_radius: self.readback.read(3 * groups_per_set + 2),
            meta: self.meta.clone(),
        }
    }
}

/// Steps between a periodic capture and reading it on the CPU (tens of milliseconds of copying
/// and checking for a large cloud): by then the CPU has queued that many steps ahead of the
/// GPU, which keeps working meanwhile. Half the interval for short ones (tests).
fn collect_delay(interval: u32) -> u32 {
    (interval / 2).clamp(1, 50)
}

/// Whether every parameter of `checkpoint` is finite; if not, the run stops with an error
/// naming the parameter, the Gaussian and the checkpoint's iteration.
pub(super) fn all_finite(failure: &mut TrainFailure, checkpoint: &Checkpoint) -> bool {
    let Some(at) = first_non_finite(&checkpoint.params) else {
        return true;
    };
    report_non_finite(failure, checkpoint.meta.iteration, at);
    false
}

/// Stops the run: parameter `group` of Gaussian `index` is not finite at `iteration`.
fn report_non_finite(
    failure: &mut TrainFailure,
    iteration: u32,
    (group, index): (ParamGroup, usize),
) {
    let message = format!(
        "parameter {} of Gaussian {index} is not finite at iteration {iteration}",
        group.name()
    );
    failure.record_non_finite(TrainSet::Checkpoint, iteration, message);
}

/// The last good state and the capture on its way.
#[derive(SystemParam)]
pub struct GoodStates<'w> {
    last: ResMut<'w, LastGoodState>,
    pending: ResMut<'w, PendingGoodState>,
}

impl GoodStates<'_> {
    /// Whether a periodic capture is waiting for its staging buffers: take it as soon as they
    /// are ready, whatever the step.
    pub fn capture_due(&self) -> bool {
        self.pending.due
    }

    /// Starts a periodic capture at the end of this step's work in `encoder` (submitting it),
    /// unless one is still on its way (then this one is skipped). When the state has outgrown
    /// the staging buffers, new ones are allocated on a worker thread first and the capture
    /// happens at the first step after they are ready ([`GoodStates::capture_due`]).
    pub fn start_capture(
        &mut self,
        gpu: &Gpu,
        encoder: &mut StepEncoder,
        train: &TrainGpuState,
        state: &TrainState,
        scene: &SceneIdentity,
        view_index: impl Fn(Entity) -> Option<u32>,
    ) {
        let pending = &mut *self.pending;
        if !matches!(pending.stage, CaptureStage::Idle) {
            return;
        }
        let needs = gpu::readback::staging_needs(&state_sources(train));
        if !gpu::readback::staging_fits(&needs, &pending.spare) {
            let device = gpu.device.clone();
            let spare = std::mem::take(&mut pending.spare);
            let thread = std::thread::Builder::new()
                .name("good state staging".into())
                .spawn(move || gpu::readback::allocate_staging(&device, spare, &needs));
            // Without a thread to spare, the capture allocates on this one.
            if let Ok(thread) = thread {
                pending.stage = CaptureStage::Allocating(thread);
                pending.due = true;
                return;
            }
        }
        pending.due = false;
        let mut capture = GoodStateReadback::encode_reusing(
            gpu,
            encoder.get(gpu),
            train,
            state,
            scene,
            view_index,
            std::mem::take(&mut pending.spare),
        );
        encoder.flush(gpu);
        capture.readback.map();
        pending.stage = CaptureStage::Copying(capture);
    }

    /// Moves the periodic capture along: once its copies have arrived (and `collect_delay` steps
    /// have passed) a worker thread reads and checks it; once the thread is done, a clean capture
    /// becomes the last good state and a non-finite one stops the run.
    pub fn collect(&mut self, ctx: &mut StepContext) {
        let pending = &mut *self.pending;
        let delay = collect_delay(ctx.config.run.good_state_interval);
        pending.stage = match std::mem::take(&mut pending.stage) {
            CaptureStage::Allocating(thread) if thread.is_finished() => {
                // (A thread that panicked leaves no buffers: the capture allocates them.)
                pending.spare = thread.join().unwrap_or_default();
                CaptureStage::Idle
            }
            CaptureStage::Copying(capture)
                if ctx.state.iteration >= capture.meta.iteration + delay
                    && capture.readback.is_ready() =>
            {
                if capture.readback.failed() {
                    return; // the copy is lost; the previous good state stands
                }
                let thread = std::thread::Builder::new()
                    .name("good state check".into())
                    .spawn(move || capture.check());
                match thread {
                    Ok(thread) => CaptureStage::Checking(thread),
                    Err(_) => CaptureStage::Idle, // no thread to spare: skip this capture
                }
            }
            CaptureStage::Checking(thread) if thread.is_finished() => {
                if let Ok(checked) = thread.join() {
                    pending.spare = checked.spare;
                    let iteration = checked.checkpoint.meta.iteration;
                    match checked.non_finite {
                        None => self.last.0 = Some(checked.checkpoint),
                        Some(at) => report_non_finite(&mut ctx.failure, iteration, at),
                    }
                }
                CaptureStage::Idle
            }
            stage => stage,
        };
    }

    /// Keeps `checkpoint` (checked clean) as the last good state.
    pub fn keep(&mut self, checkpoint: Checkpoint) {
        self.last.0 = Some(checkpoint);
    }
}

/// Copies the whole training state from the GPU into a checkpoint (blocking: one submission,
/// one wait). `view_index` gives the dataset index of a view entity (checkpoints store
/// indices, not entities).
pub fn capture(
    gpu: &Gpu,
    train: &TrainGpuState,
    state: &TrainState,
    scene: &SceneIdentity,
    view_index: impl Fn(Entity) -> Option<u32>,
) -> Checkpoint {
    // Mapping failed once in CI on the software driver, under the load of the whole test suite
    // (cause not found: issue 10's fifth session): copy again into new buffers before giving up.
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("checkpoint capture"),
            });
        let mut capture = GoodStateReadback::encode_reusing(
            gpu,
            &mut encoder,
            train,
            state,
            scene,
            &view_index,
            Vec::new(),
        );
        gpu.queue.submit([encoder.finish()]);
        capture.readback.map();
        if capture.readback.wait(gpu) {
            return capture.checkpoint();
        }
        warn!("mapping a checkpoint's copies failed (attempt {attempt} of {ATTEMPTS})");
    }
    panic!("mapping the checkpoint's copies failed {ATTEMPTS} times");
}

/// What a checkpoint keeps besides the GPU buffers.
fn capture_meta(
    train: &TrainGpuState,
    state: &TrainState,
    scene: &SceneIdentity,
    view_index: impl Fn(Entity) -> Option<u32>,
) -> CheckpointMeta {
    CheckpointMeta {
        iteration: state.iteration,
        active_sh_degree: state.active_sh_degree,
        adam_steps: train.optimizer.steps,
        rng: state.rng.clone(),
        view_stack: state
            .view_stack
            .iter()
            .filter_map(|&e| view_index(e))
            .collect(),
        ema_loss: state.ema_loss.unwrap_or(0.0),
        elapsed_s: state.elapsed.as_secs_f64(),
        densify_count: state.densify_count,
        scene: Some(scene.clone()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    /// A worker that takes a while and says when it is done.
    fn slow_worker<T: Send + 'static>(
        done: &Arc<AtomicBool>,
        result: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            done.store(true, Ordering::Release);
            result()
        })
    }

    #[test]
    fn dropping_a_pending_capture_waits_for_its_check() {
        let done = Arc::new(AtomicBool::new(false));
        let thread = slow_worker(&done, || CheckedCapture {
            checkpoint: crate::train::checkpoint::tests::sample(3, 1, 7),
            non_finite: None,
            spare: Vec::new(),
        });
        let mut pending = PendingGoodState::default();
        pending.stage = CaptureStage::Checking(thread);
        drop(pending);
        assert!(
            done.load(Ordering::Acquire),
            "the check thread outlived the pending capture"
        );
    }

    #[test]
    fn dropping_a_pending_capture_waits_for_its_allocation() {
        let done = Arc::new(AtomicBool::new(false));
        let thread = slow_worker(&done, Vec::new);
        let mut world = World::new();
        let mut pending = PendingGoodState::default();
        pending.stage = CaptureStage::Allocating(thread);
        world.insert_resource(pending);
        // As the editor does when a new run starts.
        world.insert_resource(PendingGoodState::default());
        assert!(
            done.load(Ordering::Acquire),
            "the staging thread outlived the pending capture it was replaced by"
        );
    }
}
