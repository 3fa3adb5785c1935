//! A whole training run without a window: what `splatforge train`, `splatforge batch` and the
//! bare `splatforge` command run.
//!
//! It loads the scene, writes the run's static outputs, builds a headless Bevy app with the
//! scene and the [`TrainPlugin`](super::TrainPlugin), and updates it until the last iteration.
//! A stop request (Ctrl-C) finishes the current step, then saves a checkpoint and the PLY.
//! A failure (non-finite values, an unwritable file) saves the last good state and returns
//! the error.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use super::checkpoint::{Checkpoint, LastGoodState};
use super::outputs;
use super::progress::{LossReadback, TrainProgress, record_loss};
use super::report::{ModelPath, write_cloud};
use super::setup::TrainInit;
use super::state::{
    EvalRecord, StopRequest, TrainConfig, TrainFailure, TrainGpuState, TrainMetrics, TrainState,
};
use super::{StepsPerUpdate, TrainPlugin};
use crate::app::{Gpu, HeadlessOptions, finish_setup, headless_app};
use crate::config::Config;
use crate::dataset::{DatasetFormat, DatasetOptions, PointCloud};
use crate::gpu::{GpuContext, GpuOptions};
use crate::model::{Gaussians, init, ply};
use crate::views::{LoadedScene, ScenePlugin};

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
    let quiet = config.run.quiet;
    let model = config.model.model_path.clone();
    let dataset_options = DatasetOptions {
        source: config.model.source_path.clone(),
        images: config.model.images.to_string_lossy().into_owned(),
        resolution: config.model.resolution,
        eval: config.model.eval,
        white_background: config.model.white_background,
    };
    let load_started = Instant::now();
    let scene = LoadedScene::load(&dataset_options, quiet)
        .with_context(|| format!("loading {}", config.model.source_path.display()))?;
    let load_s = load_started.elapsed().as_secs_f64();
    let gpu = match options.gpu {
        Some(gpu) => gpu,
        None => GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?,
    };
    if !quiet {
        eprintln!("GPU: {}", gpu.describe());
    }

    std::fs::create_dir_all(&model)
        .with_context(|| format!("creating the output folder {}", model.display()))?;
    // A run killed while writing leaves hidden temporary files (never a partial file under a
    // final name); clear them.
    crate::fsutil::remove_stale_temp_files(&model);
    config.write_atomic(&model.join("config.ron"))?;
    outputs::write_cameras_json(&model, &scene.info())?;
    let init = initial_state(config, &scene, &model)?;
    let first_iteration = match &init {
        TrainInit::Checkpoint(c) => c.meta.iteration,
        TrainInit::Gaussians(_) => 0,
    };
    if !quiet {
        eprintln!(
            "Scene: {} ({} training / {} test views, loaded in {load_s:.2} s), output: {}",
            config.model.source_path.display(),
            scene.info().train_views().count(),
            scene.info().test_views().count(),
            model.display()
        );
    }

    let mut app = headless_app(&gpu, &HeadlessOptions { log: false });
    app.add_plugins(ScenePlugin::new(scene))
        .add_plugins(TrainPlugin)
        .insert_resource(TrainConfig(config.clone()))
        .insert_resource(ModelPath(model.clone()))
        .insert_resource(init)
        .insert_resource(StepsPerUpdate(HEADLESS_STEPS_PER_UPDATE))
        .insert_resource(options.stop.clone())
        .insert_resource(TrainProgress::new(
            config.optimization.iterations,
            first_iteration,
            quiet,
        ));
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
            || world.resource::<TrainFailure>().0.is_some()
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
    world.resource_scope(|world, mut state: bevy::prelude::Mut<TrainState>| {
        let mut failure = world.resource::<TrainFailure>().clone();
        let mut metrics = world.resource_mut::<TrainMetrics>();
        for (iteration, loss) in late_losses {
            record_loss(&mut state, &mut metrics, &mut failure, iteration, loss);
        }
        if failure.0.is_some() {
            world.insert_resource(failure);
        }
    });
    if let Some(progress) = world.get_resource::<TrainProgress>() {
        progress.bar.finish_and_clear();
    }

    let state = world.resource::<TrainState>().clone();
    if let Some(mut failure) = world.resource::<TrainFailure>().0.clone() {
        // Name the parameter that went bad, if one did (a non-finite loss usually follows one).
        if !failure.starts_with("parameter") {
            let params = world.resource::<TrainGpuState>().cloud.download(&gpu);
            if let Some((group, index)) = super::checkpoint::first_non_finite(&params) {
                failure.push_str(&format!(
                    " (parameter {} of Gaussian {index} is not finite)",
                    group.name()
                ));
            }
        }
        let saved = world
            .resource::<LastGoodState>()
            .0
            .as_ref()
            .map(|good| save_last_good(&model, good));
        return Err(match saved {
            Some(Ok(path)) => anyhow::anyhow!(
                "{failure}; the last good state (iteration {}) is saved in {}",
                path.1,
                path.0.display()
            ),
            Some(Err(e)) => anyhow::anyhow!("{failure}; saving the last good state failed: {e:#}"),
            None => anyhow::anyhow!("{failure}; no good state was captured before it"),
        });
    }

    let interrupted = !state.finished;
    let mut summary_ply = None;
    let mut summary_checkpoint = None;
    let train = world.resource::<TrainGpuState>();
    if interrupted && state.iteration > first_iteration {
        let checkpoint = super::checkpoint::capture(&gpu, train, &state);
        let path = outputs::checkpoint_path(&model, state.iteration);
        checkpoint.write(&path)?;
        summary_checkpoint = Some(path);
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
    Ok(TrainSummary {
        model_path: model,
        iteration: state.iteration,
        interrupted,
        elapsed_s: state.elapsed.as_secs_f64(),
        num_gaussians: train.cloud.len,
        peak_gaussians: metrics.peak_gaussians.max(train.cloud.len),
        evaluations: metrics.evaluations.clone(),
        ply: summary_ply,
        checkpoint: summary_checkpoint,
        final_loss: (!tail.is_empty()).then(|| tail.iter().sum::<f64>() / tail.len() as f64),
        profile: world.resource::<super::StepProfiler>().table(),
        peak_state_bytes: metrics.peak_state_bytes.max(train.bytes()),
        intersection_overflows: world
            .resource::<super::StepBuffers>()
            .frame
            .intersection_overflows,
        render_bytes: world.resource::<super::StepBuffers>().frame.bytes(),
        image_bytes,
    })
}

/// The starting point of a run: a checkpoint, or Gaussians initialised from the scene's points
/// (SfM points, a Blender scene's `points3d.ply`, or the reference's 100,000 random points).
/// Writes `input.ply` with the points used.
pub fn initial_state(
    config: &Config,
    scene: &LoadedScene,
    model: &Path,
) -> anyhow::Result<TrainInit> {
    if let Some(path) = &config.run.start_checkpoint {
        let checkpoint = Checkpoint::read(path)?;
        if checkpoint.params.sh_degree != config.model.sh_degree && !checkpoint.params.is_empty() {
            bail!(
                "{}: the checkpoint has SH degree {}, the configuration {}",
                path.display(),
                checkpoint.params.sh_degree,
                config.model.sh_degree
            );
        }
        return Ok(TrainInit::Checkpoint(Box::new(checkpoint)));
    }
    let points = initial_points(config, scene)?;
    ply::write_points_ply(&model.join("input.ply"), &points)?;
    let gaussians: Gaussians = init::gaussians_from_points(&points, config.model.sh_degree);
    if gaussians.is_empty() {
        bail!(
            "{}: the scene has no points to initialise the Gaussians from",
            config.model.source_path.display()
        );
    }
    Ok(TrainInit::Gaussians(gaussians))
}

fn initial_points(config: &Config, scene: &LoadedScene) -> anyhow::Result<PointCloud> {
    if let Some(points) = scene.dataset.points.clone().filter(|p| !p.is_empty()) {
        return Ok(points);
    }
    let ply_path = scene.dataset.source.join("points3d.ply");
    if scene.dataset.format == DatasetFormat::Blender && ply_path.is_file() {
        return Ok(ply::read_points_ply(&ply_path)?);
    }
    // inria draws random points and trains from their round trip through a PLY file, which
    // stores every colour as 8-bit grey 127 (see model::init::random_points).
    Ok(init::random_points(
        config.model.random_init_points as usize,
        config.run.seed,
    ))
}

fn save_last_good(model: &Path, good: &Checkpoint) -> anyhow::Result<(PathBuf, u32)> {
    let path = outputs::checkpoint_path(model, good.meta.iteration);
    good.write(&path)?;
    Ok((path, good.meta.iteration))
}
