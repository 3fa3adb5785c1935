//! A whole training run without a window: what `splatforge train`, `splatforge batch` and the
//! bare `splatforge` command run.
//!
//! It reads the scene's metadata, checks the sizes it implies against the machine and the
//! device ([`super::limits`]), decodes the images, writes the run's static outputs, builds a
//! headless Bevy app with the scene and the [`TrainPlugin`](super::TrainPlugin), and updates it
//! until the last iteration. A stop request (Ctrl-C) finishes the current step, then saves a
//! checkpoint and the PLY. A failure (a stage that could not do its work, non-finite values,
//! an unwritable file) saves the last good state as a checkpoint and a PLY and returns an
//! error naming the stage and the iteration.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use bevy::ecs::system::SystemState;
use bevy::prelude::{App, Entity, World};

use super::checkpoint::{self, Checkpoint};
use super::limits;
use super::outputs;
use super::progress::{LossReadback, LossRecords, TrainProgress};
use super::report::{ModelPath, write_cloud};
use super::setup::TrainInit;
use super::state::{
    EvalRecord, FailureKind, StepFailure, StepStart, StopRequest, TrainConfig, TrainFailure,
    TrainGpuState, TrainKernels, TrainMetrics, TrainState,
};
use super::state_capture::{self, LastGoodState};
use super::{StepsPerUpdate, TrainPlugin};
use crate::app::{Gpu, HeadlessOptions, finish_setup, headless_app};
use crate::config::Config;
use crate::dataset::{Dataset, DatasetFormat, DatasetOptions, PointCloud, load_images};
use crate::gpu::{GpuContext, GpuOptions};
use crate::model::{Gaussians, init, ply};
use crate::views::{LoadedScene, SceneIdentity, ScenePlugin, TrainView};

/// Iterations per Bevy update in headless runs (the stop request is still checked every
/// iteration).
const HEADLESS_STEPS_PER_UPDATE: u32 = 100;

/// How a run ended and what it produced.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub model_path: PathBuf,
    /// The last iteration completed.
    pub iteration: u32,
    /// Stopped by a stop request (Ctrl-C) before the last iteration.
    pub interrupted: bool,
    /// Training seconds (evaluation and saving excluded).
    pub elapsed_s: f64,
    /// Live Gaussians at the end, and the most seen.
    pub num_gaussians: u32,
    pub peak_gaussians: u32,
    /// Every evaluation of the run.
    pub evaluations: Vec<EvalRecord>,
    /// Iterations at which opacities were reset.
    pub opacity_resets: Vec<u32>,
    /// Every densification: its iteration and what it did.
    pub densifications: Vec<(u32, crate::gpu::densify::DensifyReport)>,
    /// The PLY written last.
    pub ply: Option<PathBuf>,
    /// The checkpoint written when interrupted.
    pub checkpoint: Option<PathBuf>,
    /// Mean loss of the last readbacks.
    pub final_loss: Option<f64>,
    /// Median GPU milliseconds per stage (markdown), when `run.profile_interval` was set.
    pub profile: String,
    /// Largest GPU memory held by the cloud and its training state, bytes.
    pub peak_state_bytes: u64,
    /// GPU memory of the render buffers and of the ground-truth images at the end, bytes.
    pub render_bytes: u64,
    pub image_bytes: u64,
    /// Renders whose tile-intersection list overflowed (see
    /// `gpu::raster::Rasterizer::set_deferred_counts`); expected to be 0.
    pub intersection_overflows: u32,
}

impl TrainSummary {
    /// The latest evaluation of a split ("test" or "train").
    pub fn last_eval(&self, split: &str) -> Option<&EvalRecord> {
        self.evaluations.iter().rev().find(|r| r.split == split)
    }

    /// Iterations per second of training time (a resumed run counts the iterations and the
    /// training time before its checkpoint too, so the rate is the whole run's).
    pub fn iterations_per_second(&self) -> f64 {
        f64::from(self.iteration) / self.elapsed_s.max(1e-9)
    }
}

/// Options of a headless run besides its configuration.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Set to stop after the current iteration (the CLI's Ctrl-C handler sets it).
    pub stop: StopRequest,
    /// Use this device instead of opening one (tests share one).
    pub gpu: Option<GpuContext>,
    /// Live edits to replay at their iterations (an editor session's `edits.ron`).
    pub edits: Vec<crate::edits::ConfigEdit>,
}

/// Trains the scene of `config` to `optimization.iterations`; see the module documentation.
pub fn train_headless(config: &Config, options: SessionOptions) -> anyhow::Result<TrainSummary> {
    train_headless_with(config, options, |_| {})
}

/// [`train_headless`], with `extend` called on the app before it starts: add systems to the
/// `TrainStep` schedule (ordered by the public `TrainSet`s), resources or plugins.
pub fn train_headless_with(
    config: &Config,
    options: SessionOptions,
    extend: impl FnOnce(&mut App),
) -> anyhow::Result<TrainSummary> {
    let quiet = config.run.quiet;
    let model = config.model.model_path.clone();
    let source = &config.model.source_path;
    let dataset_options = DatasetOptions {
        source: source.clone(),
        images: config.model.images.to_string_lossy().into_owned(),
        resolution: config.model.resolution,
        eval: config.model.eval,
        white_background: config.model.white_background,
    };
    let load_started = Instant::now();
    let dataset =
        Dataset::load(&dataset_options).with_context(|| format!("loading {}", source.display()))?;
    let available_memory = limits::available_memory();
    let resolution = limits::resolution_setting(config.model.resolution, source);
    // Before opening the GPU and decoding anything: do the images fit in memory at all?
    limits::check_images(&dataset, &resolution, u64::MAX, available_memory)
        .map_err(anyhow::Error::msg)?;
    let gpu = match options.gpu {
        Some(gpu) => gpu,
        None => GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?,
    };
    if !quiet {
        eprintln!("GPU: {}", gpu.describe());
    }
    limits::check_images(&dataset, &resolution, gpu.max_binding_bytes(), None)
        .map_err(anyhow::Error::msg)?;
    let images =
        load_images(&dataset, quiet).with_context(|| format!("loading {}", source.display()))?;
    let scene = LoadedScene { dataset, images };
    let load_s = load_started.elapsed().as_secs_f64();
    let info = scene.info();

    std::fs::create_dir_all(&model)
        .with_context(|| format!("creating the output folder {}", model.display()))?;
    // A run killed while writing leaves hidden temporary files (never a partial file under a
    // final name); clear them.
    crate::fsutil::remove_stale_temp_files(&model);
    config.write_atomic(&model.join("config.ron"))?;
    outputs::write_cameras_json(&model, &scene.dataset)?;
    let init = initial_state(
        config,
        &scene,
        &info.identity,
        &model,
        &gpu,
        available_memory,
    )?;
    let first_iteration = match &init {
        TrainInit::Checkpoint(c) => c.meta.iteration,
        TrainInit::Gaussians(_) => 0,
    };
    let kernels = TrainKernels::new(&gpu, config.run.deterministic)?;
    if !quiet {
        eprintln!(
            "Scene: {} ({} training / {} test views, loaded in {load_s:.2} s), output: {}",
            source.display(),
            scene.dataset.train_views().count(),
            scene.dataset.test_views().count(),
            model.display()
        );
    }

    let mut app = headless_app(&gpu, &HeadlessOptions::default());
    app.add_plugins(ScenePlugin::new(scene))
        .add_plugins(TrainPlugin)
        .insert_resource(TrainConfig(config.clone()))
        .insert_resource(ModelPath(model.clone()))
        .insert_resource(init)
        .insert_resource(kernels)
        .insert_resource(StepsPerUpdate(HEADLESS_STEPS_PER_UPDATE))
        .insert_resource(options.stop.clone())
        .insert_resource(TrainProgress::new(
            config.optimization.iterations,
            first_iteration,
            quiet,
            config.run.progress_log_interval_s,
        ));
    extend(&mut app);
    if !options.edits.is_empty() {
        app.add_plugins(crate::edits::EditReplayPlugin(options.edits.clone()));
    }
    finish_setup(&mut app);

    loop {
        app.update();
        let world = app.world();
        let Some(state) = world.get_resource::<TrainState>() else {
            bail!("training did not start (see the log above)");
        };
        if state.finished
            || world.resource::<TrainFailure>().is_failed()
            || options.stop.is_requested()
        {
            break;
        }
    }

    // Let the GPU finish; its time is training time.
    let world = app.world_mut();
    let wait_started = Instant::now();
    let gpu = world.resource::<Gpu>().clone();
    gpu.wait_idle();
    world.resource_mut::<TrainState>().elapsed += wait_started.elapsed();
    let late_losses = world.resource_mut::<LossReadback>().drain(&gpu);
    let mut records = SystemState::<LossRecords>::new(world);
    let mut loss_records = records
        .get_mut(world)
        .expect("the run's resources exist after it ran");
    for sample in late_losses {
        loss_records.record(sample);
    }
    records.apply(world);
    if let Some(progress) = world.get_resource::<TrainProgress>() {
        progress.bar.finish_and_clear();
    }

    if let Some(failure) = world.resource::<TrainFailure>().0.clone() {
        return Err(failure_error(
            world,
            &gpu,
            &model,
            &info.identity,
            failure,
            quiet,
        ));
    }

    let state = world.resource::<TrainState>().clone();
    let interrupted = !state.finished;
    let mut summary_ply = None;
    let mut summary_checkpoint = None;
    if interrupted && state.iteration > first_iteration {
        let checkpoint = capture_world(world, &gpu, &state, &info.identity);
        let path = outputs::checkpoint_path(&model, state.iteration);
        checkpoint.write(&path)?;
        summary_checkpoint = Some(path);
        let train = world.resource::<TrainGpuState>();
        summary_ply = Some(write_cloud(&gpu, train, &model, state.iteration, quiet)?);
    } else if !interrupted {
        summary_ply = outputs::saved_iterations(&model)
            .last()
            .map(|&n| outputs::ply_path(&model, n));
    }
    let image_bytes: u64 = world
        .query::<&crate::views::ViewImage>()
        .iter(world)
        .map(|image| image.buffer.size())
        .sum();
    let train = world.resource::<TrainGpuState>();
    let metrics = world.resource::<TrainMetrics>();
    let tail: Vec<f64> = metrics
        .loss
        .iter()
        .rev()
        .take(10)
        .map(|(_, l)| *l)
        .collect();
    let profiler = world.resource::<super::StepProfiler>();
    let profile = profiler.table();
    if !profile.is_empty() {
        // Also in the model folder: `--quiet` runs (batch, benchmarks) print no summary.
        let path = model.join("profile.md");
        crate::fsutil::write_atomic(&path, profile.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let step_times = profiler.step_times_csv();
    if !step_times.is_empty() {
        let path = model.join("step_times.csv");
        crate::fsutil::write_atomic(&path, step_times.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(TrainSummary {
        model_path: model,
        iteration: state.iteration,
        interrupted,
        elapsed_s: state.elapsed.as_secs_f64(),
        num_gaussians: train.cloud.len,
        peak_gaussians: metrics.peak_gaussians.max(train.cloud.len),
        evaluations: metrics.evaluations.clone(),
        opacity_resets: metrics.opacity_resets.clone(),
        densifications: metrics.densifications.clone(),
        ply: summary_ply,
        checkpoint: summary_checkpoint,
        final_loss: (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64),
        profile,
        peak_state_bytes: metrics.peak_state_bytes.max(train.bytes()),
        intersection_overflows: world
            .resource::<super::StepBuffers>()
            .frame
            .intersection_overflows,
        render_bytes: world.resource::<super::StepBuffers>().frame.bytes(),
        image_bytes,
    })
}

/// A checkpoint of the GPU state with the scalar state `state` (blocking).
pub fn capture_world(
    world: &mut World,
    gpu: &Gpu,
    state: &TrainState,
    scene: &SceneIdentity,
) -> Checkpoint {
    let mut views = world.query::<(Entity, &TrainView)>();
    let index: std::collections::HashMap<Entity, u32> = views
        .iter(world)
        .map(|(e, v)| (e, v.index as u32))
        .collect();
    let train = world.resource::<TrainGpuState>();
    state_capture::capture(gpu, train, state, scene, |e| index.get(&e).copied())
}

/// The error of a failed run, after saving the last good state: where the failure left the
/// GPU state intact, that state (as of the end of the last complete step), else the last
/// state captured clean ([`LastGoodState`]).
fn failure_error(
    world: &mut World,
    gpu: &Gpu,
    model: &Path,
    scene: &SceneIdentity,
    mut failure: StepFailure,
    quiet: bool,
) -> anyhow::Error {
    if failure.kind == FailureKind::NonFinite && !failure.message.contains("parameter ") {
        // Name the parameter that went bad, if one did (a non-finite loss usually follows one).
        let params = world.resource::<TrainGpuState>().cloud.download(gpu);
        if let Some((group, index)) = checkpoint::first_non_finite(&params) {
            failure.message.push_str(&format!(
                " (parameter {} of Gaussian {index} is not finite)",
                group.name()
            ));
        }
    }
    let intact = match failure.kind {
        FailureKind::NonFinite => None,
        FailureKind::Error if failure.stage.changes_parameters() => None,
        // Failed before the parameters changed: the state the step started from.
        FailureKind::Error if failure.stage < super::TrainSet::Densify => {
            world.get_resource::<StepStart>().map(|s| s.0.clone())
        }
        // Failed after the step's update: the state at its end.
        FailureKind::Error => Some(world.resource::<TrainState>().clone()),
    };
    let current = intact
        .map(|state| capture_world(world, gpu, &state, scene))
        .filter(|c| checkpoint::first_non_finite(&c.params).is_none());
    let good = current.or_else(|| {
        state_capture::settle_good_state(world);
        world.resource::<LastGoodState>().0.clone()
    });
    let Some(good) = good else {
        return anyhow::anyhow!("{failure}; no good state was captured before it");
    };
    match save_good_state(model, &good, quiet) {
        Ok((checkpoint, ply)) => anyhow::anyhow!(
            "{failure}; the last good state (iteration {}) is saved in {} and {}",
            good.meta.iteration,
            checkpoint.display(),
            ply.display()
        ),
        Err(error) => anyhow::anyhow!("{failure}; saving the last good state failed: {error:#}"),
    }
}

/// Writes a checkpoint and the PLY of its cloud; returns both paths.
fn save_good_state(
    model: &Path,
    good: &Checkpoint,
    quiet: bool,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let iteration = good.meta.iteration;
    let checkpoint = outputs::checkpoint_path(model, iteration);
    good.write(&checkpoint)?;
    let ply_path = outputs::ply_path(model, iteration);
    ply::write_gaussians_ply(&ply_path, &good.params)?;
    if !quiet {
        eprintln!(
            "Saved the last good state (iteration {iteration}): {} and {}",
            checkpoint.display(),
            ply_path.display()
        );
    }
    Ok((checkpoint, ply_path))
}

/// The starting point of a run: a checkpoint (checked to belong to this scene), or Gaussians
/// initialised from the scene's points (SfM points, a Blender scene's `points3d.ply`, or the
/// reference's 100,000 random points). Writes `input.ply` with the points used. Counts are
/// checked against the device and the memory before anything of their size is allocated.
pub fn initial_state(
    config: &Config,
    scene: &LoadedScene,
    identity: &SceneIdentity,
    model: &Path,
    gpu: &GpuContext,
    available_memory: Option<u64>,
) -> anyhow::Result<TrainInit> {
    let sh_degree = config.model.sh_degree;
    if let Some(path) = &config.run.start_checkpoint {
        let checkpoint = Checkpoint::read(path)?;
        checkpoint
            .check_resumable(identity, sh_degree)
            .map_err(|why| anyhow::anyhow!("{}: cannot resume from it: {why}", path.display()))?;
        let setting = format!("run.start_checkpoint ({})", path.display());
        let n = checkpoint.params.len() as u64;
        limits::check_gaussian_count(gpu, n, sh_degree, &setting, None)
            .map_err(anyhow::Error::msg)?;
        return Ok(TrainInit::Checkpoint(Box::new(checkpoint)));
    }
    let points = initial_points(config, scene, gpu, available_memory)?;
    ply::write_points_ply(&model.join("input.ply"), &points)?;
    let gaussians: Gaussians = init::gaussians_from_points(&points, sh_degree);
    if gaussians.is_empty() {
        bail!(
            "{}: the scene has no points to initialise the Gaussians from",
            config.model.source_path.display()
        );
    }
    Ok(TrainInit::Gaussians(gaussians))
}

fn initial_points(
    config: &Config,
    scene: &LoadedScene,
    gpu: &GpuContext,
    available_memory: Option<u64>,
) -> anyhow::Result<PointCloud> {
    let sh_degree = config.model.sh_degree;
    let check = |count: usize, setting: &str| {
        limits::check_gaussian_count(gpu, count as u64, sh_degree, setting, available_memory)
            .map_err(anyhow::Error::msg)
    };
    if let Some(points) = scene.dataset.points.clone().filter(|p| !p.is_empty()) {
        let setting = format!("the SfM points of {}", scene.dataset.source.display());
        check(points.len(), &setting)?;
        return Ok(points);
    }
    let ply_path = scene.dataset.source.join("points3d.ply");
    if scene.dataset.format == DatasetFormat::Blender && ply_path.is_file() {
        let points = ply::read_points_ply(&ply_path)?;
        check(points.len(), &ply_path.display().to_string())?;
        return Ok(points);
    }
    // inria draws random points and trains from their round trip through a PLY file, which
    // stores every colour as 8-bit grey 127 (see model::init::random_points).
    let count = config.model.random_init_points as usize;
    check(count, "model.random_init_points")?;
    Ok(init::random_points(count, config.run.seed))
}
