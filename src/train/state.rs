//! The training run's resources: configuration, GPU state, kernels, step state and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use crate::config::Config;
use crate::gpu::adam::Adam;
use crate::gpu::densify::Densifier;
use crate::gpu::loss::LossKernels;
use crate::gpu::raster::{RasterFrame, RasterOptions, Rasterizer};
use crate::gpu::{self, GpuContext};
use crate::model::{DensifyStats, GaussianCloud, OptimizerState, ParamBuffers};
use crate::render_settings::RenderSettings;
use crate::rng::Pcg32;

/// The run's configuration. Systems read it every step, so edits (from the editor's inspector)
/// take effect at the next step.
#[derive(Resource, Clone, Debug, Deref, DerefMut)]
pub struct TrainConfig(pub Config);

impl TrainConfig {
    /// Rasterizer settings for a render on `background`.
    pub fn render_settings(&self, background: [f32; 3], active_sh_degree: u32) -> RenderSettings {
        RenderSettings {
            background,
            active_sh_degree,
            near_plane: self.pipeline.near_plane,
            antialiased: self.pipeline.antialiasing,
            tight_tile_bounds: self.pipeline.tight_tile_bounds,
        }
    }
}

/// Everything on the GPU that training optimises: the cloud (the viewer draws it too), its
/// gradients, Adam's moments and the densification statistics.
#[derive(Resource)]
pub struct TrainGpuState {
    pub cloud: GaussianCloud,
    pub grads: ParamBuffers,
    pub optimizer: OptimizerState,
    pub stats: DensifyStats,
}

impl TrainGpuState {
    /// Bytes of GPU memory held by the cloud and its training state.
    pub fn bytes(&self) -> u64 {
        self.cloud.params.bytes()
            + self.grads.bytes()
            + self.optimizer.exp_avg.bytes()
            + self.optimizer.exp_avg_sq.bytes()
            + 3 * u64::from(self.stats.capacity) * 4
    }
}

/// The kernels of one training run (pipelines and their cached scratch buffers).
#[derive(Resource)]
pub struct TrainKernels {
    pub rasterizer: Rasterizer,
    pub loss: LossKernels,
    pub adam: Adam,
    pub densifier: Densifier,
}

impl TrainKernels {
    /// Compiles every kernel of the training step (an error when a shader does not compile);
    /// `deterministic`: the rasterizer's fixed-order backward pass (`run.deterministic`).
    pub fn new(ctx: &GpuContext, deterministic: bool) -> Result<Self, gpu::GpuError> {
        gpu::build_kernels(ctx, || {
            let mut rasterizer = Rasterizer::with_options(ctx, RasterOptions { deterministic });
            // No blocking readback of the intersection count per step (see the method's docs).
            rasterizer.set_deferred_counts(true);
            Self {
                rasterizer,
                loss: LossKernels::new(ctx),
                adam: Adam::new(ctx),
                densifier: Densifier::new(ctx),
            }
        })
    }
}

/// Per-step GPU buffers: the render, the loss gradient and the loss value.
#[derive(Resource)]
pub struct StepBuffers {
    pub frame: RasterFrame,
    /// dLoss/d(image), planar CHW.
    pub d_image: wgpu::Buffer,
    d_image_pixels: u32,
    /// `[total, L1, SSIM, unused]` of the current step.
    pub loss: wgpu::Buffer,
}

impl StepBuffers {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            frame: RasterFrame::new(ctx),
            d_image: gpu::storage_buffer(ctx, "step.d_image", 16),
            d_image_pixels: 0,
            loss: gpu::storage_buffer(ctx, "step.loss", 16),
        }
    }

    /// Grows `d_image` to hold a `width x height` RGB image.
    pub fn ensure_image_size(&mut self, ctx: &GpuContext, width: u32, height: u32) {
        let pixels = width * height;
        if pixels > self.d_image_pixels {
            self.d_image = gpu::storage_buffer(ctx, "step.d_image", u64::from(pixels) * 3 * 4);
            self.d_image_pixels = pixels;
        }
    }
}

/// The GPU side of a step, for the stages that encode work: the device, the kernels, the
/// step's buffers, its command encoder and the profiler.
#[derive(SystemParam)]
pub struct StepGpu<'w> {
    pub gpu: Res<'w, crate::app::Gpu>,
    pub kernels: ResMut<'w, TrainKernels>,
    pub buffers: ResMut<'w, StepBuffers>,
    pub encoder: ResMut<'w, StepEncoder>,
    pub profiler: ResMut<'w, StepProfiler>,
}

/// Where the step is and how it is configured: the configuration, the run's state and the
/// failure record (stages record theirs here).
#[derive(SystemParam)]
pub struct StepContext<'w> {
    pub config: Res<'w, TrainConfig>,
    pub state: Res<'w, TrainState>,
    pub failure: ResMut<'w, TrainFailure>,
}

/// The command encoder of the current step: stages record into it and `submit_step` sends it.
/// Stages that must see earlier work finished (evaluation, densification) call
/// [`StepEncoder::flush`] first.
#[derive(Resource, Default)]
pub struct StepEncoder {
    // Declared first, so that it is dropped (the pass ended) before the encoder.
    /// The compute pass left open by the last stage that recorded kernels: the next stage's
    /// kernels continue it (a new pass costs the H200 ~5 us, `splatforge bench dispatch`).
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
}

impl StepEncoder {
    /// The encoder of this step, created on first use, for commands outside compute passes
    /// (the open pass ends first).
    pub fn get(&mut self, ctx: &GpuContext) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        Self::encoder(&mut self.encoder, ctx)
    }

    /// A recorder for kernels that continues the compute pass the previous stage left open
    /// and leaves its own open for the next.
    pub fn recorder(&mut self, ctx: &GpuContext) -> gpu::Recorder<'_> {
        let encoder = Self::encoder(&mut self.encoder, ctx);
        gpu::Recorder::resume(encoder, &mut self.pass)
    }

    /// Submits what was recorded so far (no wait); returns the submission, if there was one.
    pub fn flush(&mut self, ctx: &GpuContext) -> Option<wgpu::SubmissionIndex> {
        self.pass = None;
        let encoder = self.encoder.take()?;
        Some(ctx.queue.submit([encoder.finish()]))
    }

    fn encoder<'a>(
        slot: &'a mut Option<wgpu::CommandEncoder>,
        ctx: &GpuContext,
    ) -> &'a mut wgpu::CommandEncoder {
        slot.get_or_insert_with(|| {
            ctx.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("train step"),
                })
        })
    }
}

/// How many steps the CPU may queue ahead of the GPU. Nothing else holds it back once the
/// cloud stops densifying (a densification waits for the GPU): on the H200 the CPU then ran
/// ~2,500 steps (~6 s of GPU work) ahead, so a stop waited that long for the queue to drain,
/// and the last good state's captures, read `collect_delay` steps after they are taken, were
/// read 2,500 steps late, one in three (BENCHMARKS.md, issue 10's fifth session). 16 steps
/// keep the GPU busy (a step encodes in ~0.2 ms and runs in ~2 ms there).
pub const MAX_STEPS_IN_FLIGHT: usize = 16;

/// The training steps submitted and perhaps not yet finished by the GPU, oldest first.
#[derive(Resource, Default)]
pub struct StepsInFlight(std::collections::VecDeque<wgpu::SubmissionIndex>);

impl StepsInFlight {
    /// Records a step's submission; once more than [`MAX_STEPS_IN_FLIGHT`] are queued, waits
    /// for the oldest to finish (which also runs the callbacks of finished mappings).
    pub fn submitted(&mut self, ctx: &GpuContext, index: wgpu::SubmissionIndex) {
        self.push(index, |oldest| {
            let _ = ctx.device.poll(wgpu::PollType::Wait {
                submission_index: Some(oldest),
                timeout: None,
            });
        });
    }

    /// [`StepsInFlight::submitted`], with `wait` waiting for a submission.
    fn push(&mut self, index: wgpu::SubmissionIndex, mut wait: impl FnMut(wgpu::SubmissionIndex)) {
        self.0.push_back(index);
        while self.0.len() > MAX_STEPS_IN_FLIGHT {
            if let Some(oldest) = self.0.pop_front() {
                wait(oldest);
            }
        }
    }

    /// Submissions recorded and not yet waited for (some may be finished).
    pub fn queued(&self) -> usize {
        self.0.len()
    }
}

/// Where the run is: the iteration, the active SH degree, view sampling and the smoothed loss.
#[derive(Resource, Clone, Debug)]
pub struct TrainState {
    /// The iteration being run (1-based, as the reference counts); after a step, the last one
    /// completed.
    pub iteration: u32,
    /// Iterations to run in all (`optimization.iterations`).
    pub last_iteration: u32,
    pub active_sh_degree: u32,
    /// View sampling: a seeded RNG popping from a stack of training views refilled per epoch
    /// (view entities; checkpoints store their dataset indices).
    pub rng: Pcg32,
    pub view_stack: Vec<Entity>,
    /// The view entity of the current step (a [`crate::views::TrainView`]); `None` before the
    /// first step.
    pub current_view: Option<Entity>,
    /// The background the current step renders on.
    pub background: [f32; 3],
    /// Smoothed loss (0.4 new + 0.6 old at each readback), for the progress display.
    pub ema_loss: Option<f64>,
    /// Training time so far, evaluation and saving excluded.
    pub elapsed: Duration,
    /// Densifications so far (seeds the split RNG so resumed runs draw the same numbers).
    pub densify_count: u32,
    /// This step densified / reset opacities: the reference's optimiser then skips the
    /// replaced parameters (they have no gradient in PyTorch).
    pub densified_this_step: bool,
    pub opacity_reset_this_step: bool,
    /// All iterations ran.
    pub finished: bool,
}

impl TrainState {
    pub fn new(seed: u64, last_iteration: u32) -> Self {
        Self {
            iteration: 0,
            last_iteration,
            active_sh_degree: 0,
            // Stream 1: view sampling (the split RNG on the GPU is seeded separately).
            rng: Pcg32::new(seed, 1),
            view_stack: Vec::new(),
            current_view: None,
            background: [0.0; 3],
            ema_loss: None,
            elapsed: Duration::ZERO,
            densify_count: 0,
            densified_this_step: false,
            opacity_reset_this_step: false,
            finished: last_iteration == 0,
        }
    }
}

/// Asks a run to stop after the current step (Ctrl-C, the editor's stop button).
#[derive(Resource, Clone, Debug, Default)]
pub struct StopRequest(pub Arc<AtomicBool>);

impl StopRequest {
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// One evaluation of one split.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EvalRecord {
    pub iteration: u32,
    /// "test" or "train".
    pub split: &'static str,
    pub views: usize,
    pub l1: f64,
    pub psnr: f64,
    pub ssim: f64,
    pub num_gaussians: u32,
    /// Training seconds so far (evaluation excluded).
    pub elapsed_s: f64,
}

/// History of the run, for logs, plots and the final summary.
#[derive(Resource, Clone, Debug, Default)]
pub struct TrainMetrics {
    /// `(iteration, loss)` at every loss readback.
    pub loss: Vec<(u32, f64)>,
    /// `(iteration, live Gaussians)` at the start and after every densification.
    pub gaussians: Vec<(u32, u32)>,
    /// What each densification did.
    pub densifications: Vec<(u32, crate::gpu::densify::DensifyReport)>,
    /// Iterations at which opacities were reset.
    pub opacity_resets: Vec<u32>,
    pub evaluations: Vec<EvalRecord>,
    /// Largest number of live Gaussians seen.
    pub peak_gaussians: u32,
    /// Largest GPU memory of the training state seen, bytes.
    pub peak_state_bytes: u64,
}

/// Why a run stopped with an error: the stage and iteration it happened in, and what went
/// wrong. The first failure of a run is kept; no stage runs after it (see [`super::TrainSet`]).
#[derive(Clone, Debug, PartialEq)]
pub struct StepFailure {
    pub iteration: u32,
    pub stage: super::TrainSet,
    pub kind: FailureKind,
    pub message: String,
}

/// What a failure says about the training state on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A stage could not do its work (a render too large for the device, a missing image, a
    /// file that could not be written); the state is what the earlier stages left.
    Error,
    /// Values became non-finite: the state on the GPU is not worth keeping.
    NonFinite,
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "iteration {}, stage {}: {}",
            self.iteration,
            self.stage.name(),
            self.message
        )
    }
}

/// The first failure of the run, if any. Stages record one with [`TrainFailure::record`]; the
/// driver stops the run, saves the last good state and reports it.
#[derive(Resource, Clone, Debug, Default)]
pub struct TrainFailure(pub Option<StepFailure>);

impl TrainFailure {
    /// Records a failure of `stage` at `iteration` (an error: see [`FailureKind`]), unless
    /// one was recorded already.
    pub fn record(&mut self, stage: super::TrainSet, iteration: u32, message: impl Into<String>) {
        self.record_kind(stage, iteration, FailureKind::Error, message);
    }

    /// Records that values became non-finite (the state is not kept), unless a failure was
    /// recorded already.
    pub fn record_non_finite(
        &mut self,
        stage: super::TrainSet,
        iteration: u32,
        message: impl Into<String>,
    ) {
        self.record_kind(stage, iteration, FailureKind::NonFinite, message);
    }

    fn record_kind(
        &mut self,
        stage: super::TrainSet,
        iteration: u32,
        kind: FailureKind,
        message: impl Into<String>,
    ) {
        if self.0.is_none() {
            self.0 = Some(StepFailure {
                iteration,
                stage,
                kind,
                message: message.into(),
            });
        }
    }

    pub fn is_failed(&self) -> bool {
        self.0.is_some()
    }
}

/// The training state as it was when the current step began (the end of the previous step):
/// what a checkpoint holds when a step fails before it changed the parameters.
#[derive(Resource, Clone, Debug)]
pub struct StepStart(pub TrainState);

/// GPU timestamps per stage on every `run.profile_interval`-th step (`splatforge train` prints
/// the medians at the end). Stages mark the step's encoders; waits between submissions carry
/// labels starting with "wait:".
#[derive(Resource)]
pub struct StepProfiler {
    timer: Option<crate::gpu::timing::StageTimer>,
    /// `run.profile_interval > 0`: step times are recorded (with or without timestamps).
    enabled: bool,
    /// This step is being profiled.
    pub active: bool,
    /// A profile is due at the next plain step.
    pending: bool,
    samples: Vec<(String, Vec<f64>)>,
    /// CPU milliseconds spent encoding each stage, by the same labels.
    cpu_samples: Vec<(String, Vec<f64>)>,
    totals: Vec<f64>,
    /// CPU milliseconds of every step that neither evaluated nor saved (encoding and
    /// submission; a step waits only where it densifies or is profiled).
    step_cpu: Vec<f64>,
    /// (iteration, milliseconds, Gaussians after it) of every step, reporting excluded.
    step_times: Vec<(u32, f64, u32)>,
}

impl StepProfiler {
    /// A profiler when `interval > 0` and the device has timestamps; otherwise inert.
    pub fn new(ctx: &GpuContext, interval: u32) -> Self {
        let mut profiler = Self::without_timestamps(interval);
        if interval > 0 {
            profiler.timer = crate::gpu::timing::StageTimer::new(ctx, 64);
        }
        profiler
    }

    /// A profiler of the CPU side only (devices without timestamp queries, tests): step times,
    /// no stages. Inert when `interval` is 0.
    pub fn without_timestamps(interval: u32) -> Self {
        Self {
            timer: None,
            enabled: interval > 0,
            active: false,
            pending: false,
            samples: Vec::new(),
            cpu_samples: Vec::new(),
            totals: Vec::new(),
            step_cpu: Vec::new(),
            step_times: Vec::new(),
        }
    }

    /// Starts profiling this step (resets the timer) when a profile is due (now or passed on
    /// from an earlier step) and the step is a plain one (`quiet`): steps that densify,
    /// evaluate or save wait for the GPU and would distort the times.
    pub fn begin(&mut self, due: bool, quiet: bool) {
        self.pending |= due;
        self.active = self.pending && quiet && self.timer.is_some();
        if self.active {
            self.pending = false;
        }
        if let (true, Some(timer)) = (self.active, self.timer.as_mut()) {
            timer.reset();
        }
    }

    /// The timer, while this step is profiled.
    pub fn timer(&mut self) -> Option<&mut crate::gpu::timing::StageTimer> {
        if self.active {
            self.timer.as_mut()
        } else {
            None
        }
    }

    /// Marks the end of stage `label` in the step's encoder (no-op unless profiling this step;
    /// a mark ends the open compute pass).
    pub fn mark(&mut self, encoder: &mut StepEncoder, ctx: &GpuContext, label: &str) {
        if let Some(timer) = self.timer() {
            timer.mark(encoder.get(ctx), label);
        }
    }

    /// Resolves the marks into `encoder` (call before submitting the step's last encoder).
    pub fn resolve(&mut self, encoder: &mut wgpu::CommandEncoder) {
        if let Some(timer) = self.timer() {
            timer.resolve(encoder);
        }
    }

    /// Reads this step's timings (blocking) and adds them to the samples.
    pub fn collect(&mut self, ctx: &GpuContext) {
        let Some(timer) = self.timer() else {
            return;
        };
        let cpu = timer.cpu_ms();
        let stages = timer.read_ms(ctx);
        self.totals.push(stages.iter().map(|(_, ms)| ms).sum());
        for (label, ms) in stages {
            push_sample(&mut self.samples, label, ms);
        }
        for (label, ms) in cpu {
            push_sample(&mut self.cpu_samples, label, ms);
        }
        self.active = false;
    }

    /// Records the time of step `iteration` (reporting excluded; when profiling) and the
    /// cloud's size after it, and as a plain step's CPU time when it did not evaluate or save.
    pub fn record_step(&mut self, iteration: u32, ms: f64, plain: bool, gaussians: u32) {
        if self.enabled {
            self.step_times.push((iteration, ms, gaussians));
            if plain {
                self.step_cpu.push(ms);
            }
        }
    }

    /// Every recorded step as CSV lines `iteration,ms,gaussians` (with a header; empty when
    /// nothing was recorded). The sum over a run of steps that ends at a step which waited for
    /// the GPU (a densification, a profiled step) is that run's wall time.
    pub fn step_times_csv(&self) -> String {
        if self.step_times.is_empty() {
            return String::new();
        }
        let mut out = String::from("iteration,ms,gaussians\n");
        for (iteration, ms, gaussians) in &self.step_times {
            out.push_str(&format!("{iteration},{ms:.4},{gaussians}\n"));
        }
        out
    }

    /// Step time per 1000 iterations, split into steps at multiples of 100 (where densification
    /// runs and waits for the GPU) and the others.
    fn windows_table(&self) -> String {
        if self.step_times.is_empty() {
            return String::new();
        }
        // Per window: (sum, count) of steps at multiples of 100 and of the others, and the
        // cloud's size after its last step.
        let mut windows: std::collections::BTreeMap<u32, ([(f64, u32); 2], u32)> =
            Default::default();
        for &(iteration, ms, gaussians) in &self.step_times {
            let window = windows.entry((iteration.max(1) - 1) / 1000).or_default();
            let slot = &mut window.0[usize::from(iteration % 100 != 0)];
            slot.0 += ms;
            slot.1 += 1;
            window.1 = gaussians;
        }
        let mean = |(sum, n): (f64, u32)| if n == 0 { 0.0 } else { sum / f64::from(n) };
        let mut out = String::from(
            "\n| iterations | ms per step | steps at multiples of 100: ms each | other steps: ms each | Gaussians at the end |\n|---|---|---|---|---|\n",
        );
        for (window, ([hundreds, others], gaussians)) in windows {
            let all = (hundreds.0 + others.0, hundreds.1 + others.1);
            out.push_str(&format!(
                "| {}-{} | {:.3} | {:.3} | {:.3} | {gaussians} |\n",
                window * 1000 + 1,
                window * 1000 + 1000,
                mean(all),
                mean(hundreds),
                mean(others)
            ));
        }
        out
    }

    /// Median milliseconds per stage as a markdown table (empty when nothing was profiled).
    pub fn table(&self) -> String {
        let median = |values: &[f64]| {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            sorted[sorted.len() / 2]
        };
        let mut out = String::new();
        if !self.totals.is_empty() {
            out.push_str(&format!(
                "| stage | median GPU ms ({} profiled steps) | median CPU ms (encoding) |\n|---|---|---|\n",
                self.totals.len()
            ));
            for (label, values) in &self.samples {
                let cpu = self
                    .cpu_samples
                    .iter()
                    .find(|(l, _)| l == label)
                    .map_or(String::new(), |(_, v)| format!("{:.3}", median(v)));
                out.push_str(&format!("| {label} | {:.3} | {cpu} |\n", median(values)));
            }
            // The views differ in cost: the mean is what the run's wall time sees.
            let mean = self.totals.iter().sum::<f64>() / self.totals.len() as f64;
            out.push_str(&format!(
                "| **step, first to last mark** | {:.3} | |\n\
                 | **step, first to last mark: mean** | {mean:.3} | |\n",
                median(&self.totals)
            ));
        }
        if !self.step_cpu.is_empty() {
            if out.is_empty() {
                out.push_str("| stage | median GPU ms | median CPU ms |\n|---|---|---|\n");
            }
            out.push_str(&format!(
                "| **CPU per step (median of {} steps)** | | {:.3} |\n",
                self.step_cpu.len(),
                median(&self.step_cpu)
            ));
        }
        out.push_str(&self.windows_table());
        out
    }
}

fn push_sample(samples: &mut Vec<(String, Vec<f64>)>, label: String, ms: f64) {
    match samples.iter_mut().find(|(l, _)| *l == label) {
        Some((_, values)) => values.push(ms),
        None => samples.push((label, vec![ms])),
    }
}

#[cfg(test)]
mod profiler_tests {
    use super::StepProfiler;

    #[test]
    fn step_times_give_the_cpu_median_and_the_windows() {
        let mut profiler = StepProfiler::without_timestamps(100);
        for iteration in 1..=2000u32 {
            // Plain steps take 1 ms, densifying ones (multiples of 100) 50 ms; the
            // 1500th evaluated (not plain).
            let ms = if iteration % 100 == 0 { 50.0 } else { 1.0 };
            profiler.record_step(iteration, ms, iteration != 1500, 10 * iteration);
        }
        let table = profiler.table();
        assert!(
            table.contains("| **CPU per step (median of 1999 steps)** | | 1.000 |"),
            "{table}"
        );
        // 990 steps of 1 ms and 10 of 50 ms per window.
        assert!(
            table.contains("| 1-1000 | 1.490 | 50.000 | 1.000 | 10000 |"),
            "{table}"
        );
        assert!(
            table.contains("| 1001-2000 | 1.490 | 50.000 | 1.000 | 20000 |"),
            "{table}"
        );
    }

    #[test]
    fn the_step_row_has_the_median_and_the_mean() {
        let mut profiler = StepProfiler::without_timestamps(100);
        profiler.totals = vec![1.0, 2.0, 9.0];
        let table = profiler.table();
        assert!(
            table.contains("| **step, first to last mark** | 2.000 | |"),
            "{table}"
        );
        assert!(
            table.contains("| **step, first to last mark: mean** | 4.000 | |"),
            "{table}"
        );
    }

    #[test]
    fn step_times_are_listed_as_csv() {
        let mut profiler = StepProfiler::without_timestamps(100);
        profiler.record_step(1, 1.5, true, 300);
        profiler.record_step(2, 0.25, false, 310);
        assert_eq!(
            profiler.step_times_csv(),
            "iteration,ms,gaussians\n1,1.5000,300\n2,0.2500,310\n"
        );
    }

    #[test]
    fn nothing_is_recorded_without_an_interval() {
        let mut profiler = StepProfiler::without_timestamps(0);
        profiler.record_step(1, 1.0, true, 1);
        assert_eq!(profiler.table(), "");
        assert_eq!(profiler.step_times_csv(), "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::test_context;

    /// Past the bound, each new step's submission waits for the oldest one, in order (the
    /// software driver of the tests finishes every submission before the next, so the wait
    /// itself is checked here, not its effect).
    #[test]
    fn steps_beyond_the_bound_wait_for_the_oldest_in_order() {
        let ctx = test_context();
        let mut in_flight = StepsInFlight::default();
        let mut submissions = Vec::new();
        let mut waited = Vec::new();
        for step in 0..3 * MAX_STEPS_IN_FLIGHT {
            let encoder = ctx.device.create_command_encoder(&Default::default());
            let index = ctx.queue.submit([encoder.finish()]);
            submissions.push(index.clone());
            in_flight.push(index, |oldest| waited.push(oldest));
            assert_eq!(in_flight.queued(), (step + 1).min(MAX_STEPS_IN_FLIGHT));
            let expected = (step + 1).saturating_sub(MAX_STEPS_IN_FLIGHT);
            assert_eq!(waited.len(), expected, "after step {step}");
        }
        let expected = &submissions[..waited.len()];
        assert!(
            waited
                .iter()
                .zip(expected)
                .all(|(a, b)| format!("{a:?}") == format!("{b:?}")),
            "the oldest first: {waited:?}"
        );
    }
}
