//! The editor's run: what is open, and its life: starting from a scene, a PLY or a checkpoint
//! (prepared off the main thread, so a slow or broken file never stalls or ends the app),
//! new runs and forks, saving on request, on stop, on failure and on close.
//!
//! Every run writes into its own output folder, as `splatforge train` does: `config.ron` (the
//! configuration it started with), `cameras.json`, `input.ply`, and `edits.ron` (every live
//! edit with its iteration), so `splatforge train --config <out>/config.ron --edits
//! <out>/edits.ron` re-runs the session headless.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use anyhow::{Context, bail};
use bevy::prelude::*;

use super::log::EditorLog;
use crate::app::Gpu;
use crate::config::Config;
use crate::dataset::{Dataset, DatasetOptions};
use crate::edits::{ConfigEdit, write_edits};
use crate::gpu::GpuContext;
use crate::model::ply;
use crate::train::checkpoint::Checkpoint;
use crate::train::report::{ModelPath, ReportTime, write_cloud};
use crate::train::setup::{self, TrainInit};
use crate::train::state_capture::{LastGoodState, PendingGoodState};
use crate::train::{
    StepEncoder, StopRequest, TrainConfig, TrainFailure, TrainGpuState, TrainMetrics, TrainState,
    outputs,
};
use crate::views::{LoadedScene, SceneIdentity, SceneInfo, TrainView, spawn_views};

/// Something to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenRequest {
    /// A scene folder (COLMAP or Blender): a new run from its points.
    Scene(PathBuf),
    /// A 3DGS PLY: a new run continuing from its Gaussians, on the scene already open.
    Ply(PathBuf),
    /// A checkpoint: a new run resuming it, on the scene already open.
    Checkpoint(PathBuf),
    /// A new run of the open scene from its points, with the current configuration (and the
    /// fixed fields of a loaded configuration file).
    NewRun,
}

impl OpenRequest {
    /// What a dropped or picked path opens: a folder is a scene, `.ply` a cloud, `.sfck` a
    /// checkpoint.
    pub fn for_path(path: &Path) -> Option<OpenRequest> {
        if path.is_dir() {
            return Some(OpenRequest::Scene(path.to_path_buf()));
        }
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "ply" => Some(OpenRequest::Ply(path.to_path_buf())),
            "sfck" => Some(OpenRequest::Checkpoint(path.to_path_buf())),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            OpenRequest::Scene(p) => format!("scene {}", p.display()),
            OpenRequest::Ply(p) => format!("PLY {}", p.display()),
            OpenRequest::Checkpoint(p) => format!("checkpoint {}", p.display()),
            OpenRequest::NewRun => "a new run".to_string(),
        }
    }
}

/// A run ready to start: configuration, scene (`None`: keep the open one) and initial state.
pub struct PreparedRun {
    pub config: Config,
    pub scene: Option<LoadedScene>,
    pub init: TrainInit,
    pub description: String,
}

/// Prepares `request` (reads files, decodes images, initialises Gaussians): the slow part of
/// opening, safe to run on another thread. `config` is the configuration to start from and
/// `output` the folder the new run writes to.
pub fn prepare(
    request: &OpenRequest,
    mut config: Config,
    output: PathBuf,
    gpu: &GpuContext,
) -> anyhow::Result<PreparedRun> {
    config.model.model_path = output.clone();
    config.run.start_checkpoint = None;
    let description = request.describe();
    let (scene, init) = match request {
        OpenRequest::Scene(path) => {
            config.model.source_path = path.clone();
            let scene = load_scene(&config)?;
            std::fs::create_dir_all(&output)
                .with_context(|| format!("creating the output folder {}", output.display()))?;
            let init = initial_state(&config, &scene, &output, gpu)?;
            (Some(scene), init)
        }
        OpenRequest::NewRun => {
            let scene = load_scene(&config)?;
            std::fs::create_dir_all(&output)
                .with_context(|| format!("creating the output folder {}", output.display()))?;
            let init = initial_state(&config, &scene, &output, gpu)?;
            (Some(scene), init)
        }
        OpenRequest::Ply(path) => {
            let gaussians = ply::read_gaussians_ply(path)?;
            if gaussians.is_empty() {
                bail!("{}: the file holds no Gaussians", path.display());
            }
            config.model.sh_degree = gaussians.sh_degree;
            (None, TrainInit::Gaussians(gaussians))
        }
        OpenRequest::Checkpoint(path) => {
            let checkpoint = Checkpoint::read(path)?;
            config.model.sh_degree = checkpoint.params.sh_degree;
            config.run.start_checkpoint = Some(path.clone());
            (None, TrainInit::Checkpoint(Box::new(checkpoint)))
        }
    };
    config
        .validate()
        .with_context(|| format!("the configuration for {description}"))?;
    Ok(PreparedRun {
        config,
        scene,
        init,
        description,
    })
}

/// Prepares the run a command line describes: its scene, from its points or from
/// `run.start_checkpoint`, into `model.model_path`.
pub fn prepare_initial(config: Config, gpu: &GpuContext) -> anyhow::Result<PreparedRun> {
    let scene = load_scene(&config)?;
    let output = config.model.model_path.clone();
    std::fs::create_dir_all(&output)
        .with_context(|| format!("creating the output folder {}", output.display()))?;
    let init = initial_state(&config, &scene, &output, gpu)?;
    let description = format!("scene {}", config.model.source_path.display());
    Ok(PreparedRun {
        config,
        scene: Some(scene),
        init,
        description,
    })
}

/// The trainer's starting point for `scene` (checked against the device and the memory, as a
/// headless run does).
fn initial_state(
    config: &Config,
    scene: &LoadedScene,
    output: &Path,
    gpu: &GpuContext,
) -> anyhow::Result<TrainInit> {
    crate::train::session::initial_state(
        config,
        scene,
        &SceneIdentity::of(&scene.dataset),
        output,
        gpu,
        crate::train::limits::available_memory(),
    )
}

fn load_scene(config: &Config) -> anyhow::Result<LoadedScene> {
    let options = DatasetOptions {
        source: config.model.source_path.clone(),
        images: config.model.images.to_string_lossy().into_owned(),
        resolution: config.model.resolution,
        eval: config.model.eval,
        white_background: config.model.white_background,
    };
    Ok(LoadedScene::load(&options, true)?)
}

/// The output folder of the run after the one writing to `current`: `<current>-2`, `-3`, ...
/// (the first that does not exist).
pub fn next_output(current: &Path) -> PathBuf {
    let name = current
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".to_string());
    let stem = match name.rsplit_once('-') {
        Some((stem, suffix)) if suffix.chars().all(|c| c.is_ascii_digit()) && !stem.is_empty() => {
            stem.to_string()
        }
        _ => name,
    };
    (2..)
        .map(|k| current.with_file_name(format!("{stem}-{k}")))
        .find(|candidate| !candidate.exists())
        .expect("some folder name is free")
}

/// The open run as the editor tracks it.
#[derive(Resource, Debug, Default)]
pub struct EditorRun {
    /// Where the run writes.
    pub output: PathBuf,
    /// The iteration the run started at (0, or a checkpoint's).
    pub first_iteration: u32,
    /// The last iteration whose state is saved (checkpoint or final PLY).
    pub saved_iteration: u32,
    /// Ended by the stop button.
    pub stopped: bool,
    /// The failure has been reported and the last good state saved.
    pub failure_handled: bool,
    /// Live edits so far, written to `<output>/edits.ron`.
    pub edits: Vec<ConfigEdit>,
    /// A loaded configuration whose fixed fields wait for a new run.
    pub staged: Option<Config>,
    /// Set when a run has just started: the editor's views of it reset.
    pub just_started: bool,
    /// The scene has views to train on.
    pub trainable: bool,
}

/// A run being prepared on another thread.
/// The dataset of the open scene (its cameras go into every run's `cameras.json`, also of runs
/// opened from a PLY or a checkpoint on this scene).
#[derive(Resource, Clone, Debug)]
pub struct OpenDataset(pub Dataset);

#[derive(Resource, Default)]
pub struct PendingOpen(pub Mutex<Option<(String, JoinHandle<anyhow::Result<PreparedRun>>)>>);

impl PendingOpen {
    /// Starts preparing `request` unless another open is under way (then says so).
    pub fn start(
        &self,
        request: OpenRequest,
        config: Config,
        output: PathBuf,
        gpu: GpuContext,
    ) -> Result<(), String> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((what, _)) = slot.as_ref() {
            return Err(format!("still opening {what}"));
        }
        let what = request.describe();
        let handle = std::thread::spawn(move || prepare(&request, config, output, &gpu));
        *slot = Some((what, handle));
        Ok(())
    }

    /// What is being opened, if anything.
    pub fn busy(&self) -> Option<String> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|(what, _)| what.clone())
    }

    /// The prepared run (or its error) once the thread finished.
    fn take_finished(&self) -> Option<(String, anyhow::Result<PreparedRun>)> {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            return None;
        }
        let (what, handle) = slot.take()?;
        let result = handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("opening {what} crashed")));
        Some((what, result))
    }
}

/// Starts a prepared run: replaces the views (if the run brings a scene), writes the run's
/// outputs and sets up training. With `setup_now` false the trainer's own startup system sets
/// it up (the first run of the app).
pub fn start_run(world: &mut World, run: PreparedRun, setup_now: bool) -> anyhow::Result<()> {
    let gpu = world.resource::<Gpu>().0.clone();
    let PreparedRun {
        config,
        scene,
        init,
        description,
    } = run;
    let output = config.model.model_path.clone();
    std::fs::create_dir_all(&output)
        .with_context(|| format!("creating the output folder {}", output.display()))?;
    crate::fsutil::remove_stale_temp_files(&output);
    config.write_atomic(&output.join("config.ron"))?;
    if let Some(scene) = scene {
        outputs::write_cameras_json(&output, &scene.dataset)?;
        world.insert_resource(OpenDataset(scene.dataset.clone()));
        let old: Vec<Entity> = world
            .query_filtered::<Entity, With<TrainView>>()
            .iter(world)
            .collect();
        for entity in old {
            world.despawn(entity);
        }
        spawn_views(world, &gpu, scene);
    }
    let Some(dataset) = world.get_resource::<OpenDataset>() else {
        bail!("open a scene first: {description} needs the scene's cameras");
    };
    outputs::write_cameras_json(&output, &dataset.0)?;
    let trainable = dataset.0.train_views().count() > 0;
    let first_iteration = match &init {
        TrainInit::Checkpoint(c) => c.meta.iteration,
        TrainInit::Gaussians(_) => 0,
    };

    world.insert_resource(TrainConfig(config));
    world.insert_resource(ModelPath(output.clone()));
    world.insert_resource(init);
    world.insert_resource(TrainFailure::default());
    world.insert_resource(StopRequest::default());
    world.insert_resource(LastGoodState::default());
    world.insert_resource(PendingGoodState::default());
    world.insert_resource(StepEncoder::default());
    world.insert_resource(ReportTime::default());
    world.insert_resource(TrainMetrics::default());
    if setup_now {
        setup::setup_training(world);
    }
    let mut editor_run = world.resource_mut::<EditorRun>();
    *editor_run = EditorRun {
        output: output.clone(),
        first_iteration,
        saved_iteration: first_iteration,
        trainable,
        just_started: true,
        ..default()
    };
    let iteration = first_iteration;
    world.resource_mut::<EditorLog>().info(
        iteration,
        format!("opened {description}; output {}", output.display()),
    );
    Ok(())
}

/// Starts the run whose preparation finished (or logs why it could not be opened; the
/// previous run stays).
pub fn finish_pending_open(world: &mut World) {
    let Some((what, result)) = world.resource::<PendingOpen>().take_finished() else {
        return;
    };
    let iteration = world
        .get_resource::<TrainState>()
        .map_or(0, |s| s.iteration);
    let outcome = result.and_then(|run| start_run(world, run, true));
    if let Err(error) = outcome {
        world
            .resource_mut::<EditorLog>()
            .error(iteration, format!("cannot open {what}: {error:#}"));
    }
}

/// Records `edits` in the run's edit list and rewrites `<output>/edits.ron`.
pub fn record_edits(run: &mut EditorRun, log: &mut EditorLog, edits: Vec<ConfigEdit>) {
    if edits.is_empty() {
        return;
    }
    for edit in &edits {
        log.info(
            edit.iteration,
            format!(
                "edit: {} = {} from iteration {}",
                edit.key,
                edit.value,
                edit.iteration + 1
            ),
        );
    }
    run.edits.extend(edits);
    let path = run.output.join("edits.ron");
    if let Err(error) = write_edits(&path, &run.edits) {
        let iteration = run.edits.last().map_or(0, |e| e.iteration);
        log.error(iteration, format!("{error}"));
    }
}

/// Writes a checkpoint of the current state; returns its path.
pub fn save_checkpoint_now(world: &mut World) -> anyhow::Result<PathBuf> {
    let gpu = world.resource::<Gpu>().clone();
    let (Some(state), Some(scene), true) = (
        world.get_resource::<TrainState>().cloned(),
        world
            .get_resource::<SceneInfo>()
            .map(|s| s.identity.clone()),
        world.contains_resource::<TrainGpuState>(),
    ) else {
        bail!("no run to save");
    };
    let model = world.resource::<ModelPath>().0.clone();
    let path = outputs::checkpoint_path(&model, state.iteration);
    crate::train::session::capture_world(world, &gpu, &state, &scene).write(&path)?;
    let iteration = state.iteration;
    let mut run = world.resource_mut::<EditorRun>();
    run.saved_iteration = run.saved_iteration.max(iteration);
    Ok(path)
}

/// Writes the cloud as `point_cloud/iteration_<N>/point_cloud.ply`; returns its path.
pub fn save_ply_now(world: &mut World) -> anyhow::Result<PathBuf> {
    let gpu = world.resource::<Gpu>().clone();
    let (Some(state), Some(train)) = (
        world.get_resource::<TrainState>(),
        world.get_resource::<TrainGpuState>(),
    ) else {
        bail!("no run to save");
    };
    let model = world.resource::<ModelPath>().0.clone();
    write_cloud(&gpu, train, &model, state.iteration, true)
}

/// Saves what a user would lose on closing or stopping: a checkpoint and the PLY, if the run
/// advanced since it was last saved. Returns the files written.
pub fn save_unsaved(world: &mut World) -> anyhow::Result<Vec<PathBuf>> {
    let Some(iteration) = world.get_resource::<TrainState>().map(|s| s.iteration) else {
        return Ok(Vec::new());
    };
    let run = world.resource::<EditorRun>();
    let failed = world.resource::<TrainFailure>().0.is_some();
    if failed || iteration <= run.saved_iteration {
        return Ok(Vec::new());
    }
    Ok(vec![save_checkpoint_now(world)?, save_ply_now(world)?])
}

/// After a failed step: report it once and save the last good state, as a headless run does.
pub fn handle_failure(world: &mut World) {
    let Some(failure) = world.resource::<TrainFailure>().0.clone() else {
        return;
    };
    if world.resource::<EditorRun>().failure_handled {
        return;
    }
    world.resource_mut::<EditorRun>().failure_handled = true;
    let iteration = world
        .get_resource::<TrainState>()
        .map_or(0, |s| s.iteration);
    let model = world.resource::<ModelPath>().0.clone();
    crate::train::state_capture::settle_good_state(world);
    let saved = world.resource::<LastGoodState>().0.as_ref().map(|good| {
        let path = outputs::checkpoint_path(&model, good.meta.iteration);
        good.write(&path).map(|_| path)
    });
    let message = match saved {
        Some(Ok(path)) => format!(
            "training stopped: {failure}; the last good state is saved in {}",
            path.display()
        ),
        Some(Err(error)) => {
            format!("training stopped: {failure}; saving the last good state failed: {error}")
        }
        None => format!("training stopped: {failure}"),
    };
    world.resource_mut::<EditorLog>().error(iteration, message);
}

/// Saves a checkpoint and continues from it in a new output folder (whose `config.ron`
/// resumes that checkpoint): the run forks, the original folder keeps its history.
pub fn fork(world: &mut World) -> anyhow::Result<PathBuf> {
    let checkpoint_path = save_checkpoint_now(world)?;
    let old_output = world.resource::<EditorRun>().output.clone();
    let new_output = next_output(&old_output);
    let mut config = world.resource::<TrainConfig>().0.clone();
    config.model.model_path = new_output.clone();
    config.run.start_checkpoint = Some(checkpoint_path.clone());
    std::fs::create_dir_all(&new_output)
        .with_context(|| format!("creating the output folder {}", new_output.display()))?;
    config.write_atomic(&new_output.join("config.ron"))?;
    if let Some(dataset) = world.get_resource::<OpenDataset>() {
        outputs::write_cameras_json(&new_output, &dataset.0)?;
    }
    let iteration = world.resource::<TrainState>().iteration;
    world.resource_mut::<TrainConfig>().0 = config;
    world.resource_mut::<ModelPath>().0 = new_output.clone();
    let mut run = world.resource_mut::<EditorRun>();
    run.output = new_output.clone();
    run.first_iteration = iteration;
    run.saved_iteration = iteration;
    run.edits.clear();
    world.resource_mut::<EditorLog>().info(
        iteration,
        format!(
            "forked at iteration {iteration} (checkpoint {}); now writing to {}",
            checkpoint_path.display(),
            new_output.display()
        ),
    );
    Ok(new_output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    #[test]
    fn next_output_counts_up_from_the_current_folder() {
        let dir = TempDir::new("next-output").unwrap();
        let run = dir.path().join("abc");
        assert_eq!(next_output(&run), dir.path().join("abc-2"));
        std::fs::create_dir_all(dir.path().join("abc-2")).unwrap();
        assert_eq!(next_output(&run), dir.path().join("abc-3"));
        assert_eq!(
            next_output(&dir.path().join("abc-2")),
            dir.path().join("abc-3")
        );
        assert_eq!(
            next_output(&dir.path().join("x-y")),
            dir.path().join("x-y-2")
        );
    }

    #[test]
    fn paths_open_by_kind() {
        let dir = TempDir::new("open-kind").unwrap();
        assert_eq!(
            OpenRequest::for_path(dir.path()),
            Some(OpenRequest::Scene(dir.path().to_path_buf()))
        );
        assert!(matches!(
            OpenRequest::for_path(Path::new("a/b.PLY")),
            Some(OpenRequest::Ply(_))
        ));
        assert!(matches!(
            OpenRequest::for_path(Path::new("chkpnt7000.sfck")),
            Some(OpenRequest::Checkpoint(_))
        ));
        assert_eq!(OpenRequest::for_path(Path::new("notes.txt")), None);
    }

    #[test]
    fn broken_files_are_errors_naming_the_file() {
        let dir = TempDir::new("open-broken").unwrap();
        let ply_path = dir.path().join("broken.ply");
        std::fs::write(&ply_path, b"ply\nformat ascii 1.0\nelement vertex 3\n").unwrap();
        let error = prepare(
            &OpenRequest::Ply(ply_path.clone()),
            Config::default(),
            dir.path().join("out"),
            crate::gpu::test_util::test_context(),
        )
        .err()
        .unwrap();
        assert!(format!("{error:#}").contains("broken.ply"), "{error:#}");
        let error = prepare(
            &OpenRequest::Scene(dir.path().join("no-scene")),
            Config::default(),
            dir.path().join("out"),
            crate::gpu::test_util::test_context(),
        )
        .err()
        .unwrap();
        assert!(format!("{error:#}").contains("no-scene"), "{error:#}");
    }
}
