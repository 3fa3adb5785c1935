//! The editor app driven frame by frame, offscreen on the test device: run control, live
//! edits reaching the kernels, the replay of the recorded edits, and the screenshot.

use std::path::Path;

use bevy::prelude::*;

use super::app::{DisplayMode, EditorOptions, editor_app};
use super::control::CurrentStatus;
use super::live_config::LiveConfig;
use super::run::{self, EditorRun};
use super::viewport::ViewportOptions;
use super::*;
use crate::app::{HeadlessOptions, finish_setup, headless_app};
use crate::config::Config;
use crate::edits::{EditReplayPlugin, read_edits};
use crate::fsutil::TempDir;
use crate::gpu::test_util::test_context;
use crate::model::ParamGroup;
use crate::train::report::ModelPath;
use crate::train::{StepsPerUpdate, TrainConfig, TrainGpuState, TrainPlugin, TrainState};
use crate::views::{LoadedScene, ScenePlugin};

/// The demo scene at a tenth of its size (32x24 images), SH degree 1, no densification: a
/// few seconds of training on the software driver.
fn tiny_config(output: &Path, iterations: u32) -> Config {
    let mut config = Config::default();
    config.model.source_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    config.model.model_path = output.to_path_buf();
    config.model.resolution = 32;
    config.model.eval = true;
    config.model.sh_degree = 1;
    config.optimization.iterations = iterations;
    config.optimization.densify_from_iter = 1000;
    config.optimization.densify_until_iter = 1000;
    config.run.test_iterations = vec![];
    config.run.save_iterations = vec![iterations];
    config.run.quiet = true;
    config
}

fn offscreen_editor(config: Config, size: [u32; 2]) -> App {
    let first_run = run::prepare_initial(config, test_context()).expect("the demo scene opens");
    let mut app = editor_app(EditorOptions {
        gpu: test_context().clone(),
        first_run: Some(first_run),
        display: DisplayMode::Offscreen { size },
        layout: None,
        paused: true,
        auto_steps: true,
        frames: None,
        quit: QuitSignal::default(),
        log: false,
    });
    app.add_systems(
        crate::train::TrainStep,
        record_config.before(crate::train::sample_view::begin_iteration),
    )
    .init_resource::<SeenConfigs>();
    app
}

/// The configuration each iteration ran with.
#[derive(Resource, Default)]
struct SeenConfigs(Vec<(u32, Config)>);

fn record_config(config: Res<TrainConfig>, state: Res<TrainState>, mut seen: ResMut<SeenConfigs>) {
    seen.0.push((state.iteration + 1, config.0.clone()));
}

fn iteration(app: &App) -> u32 {
    app.world().resource::<TrainState>().iteration
}

fn download(app: &App, group: ParamGroup) -> Vec<f32> {
    let world = app.world();
    let gpu = world.resource::<crate::app::Gpu>();
    let cloud = world.resource::<TrainGpuState>().cloud.download(gpu);
    cloud.group(group).to_vec()
}

/// Applies an edit the way the inspector does and records it as the UI system does.
fn edit(app: &mut App, key: &str, value: &str) {
    let world = app.world_mut();
    let mut config = world.resource::<TrainConfig>().0.clone();
    let mut state = world.resource::<TrainState>().clone();
    let mut made = Vec::new();
    LiveConfig {
        config: &mut config,
        state: Some(&mut state),
        made: &mut made,
    }
    .set(key, value)
    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
    world.resource_mut::<TrainConfig>().0 = config;
    world.insert_resource(state);
    let mut editor_run = std::mem::take(&mut *world.resource_mut::<EditorRun>());
    let mut log = std::mem::take(&mut *world.resource_mut::<log::EditorLog>());
    run::record_edits(&mut editor_run, &mut log, made);
    *world.resource_mut::<EditorRun>() = editor_run;
    *world.resource_mut::<log::EditorLog>() = log;
}

#[test]
fn run_control_live_edits_and_their_headless_replay() {
    let dir = TempDir::new("editor-control").unwrap();
    let output = dir.path().join("run");
    let mut app = offscreen_editor(tiny_config(&output, 30), [480, 320]);
    finish_setup(&mut app);
    app.world_mut().resource_mut::<RunControl>().auto_steps = false;

    // Paused: frames go by, the iteration count does not.
    app.update();
    app.update();
    assert_eq!(iteration(&app), 0);
    // One single step is exactly one iteration.
    app.world_mut().resource_mut::<RunControl>().pending_steps = 1;
    app.update();
    assert_eq!(iteration(&app), 1);
    app.update();
    assert_eq!(iteration(&app), 1, "one step per request");

    // A live edit reaches the kernels at the next step: with the opacity learning rate at
    // zero Adam leaves the opacities alone, while the centres still move.
    let opacities = download(&app, ParamGroup::Opacities);
    let means = download(&app, ParamGroup::Means);
    app.world_mut().resource_mut::<RunControl>().pending_steps = 1;
    app.update();
    assert_ne!(
        download(&app, ParamGroup::Opacities),
        opacities,
        "learning before the edit"
    );
    edit(&mut app, "optimization.opacity_lr", "0");
    let opacities = download(&app, ParamGroup::Opacities);
    app.world_mut().resource_mut::<RunControl>().pending_steps = 1;
    app.update();
    assert_eq!(iteration(&app), 3);
    assert_eq!(
        download(&app, ParamGroup::Opacities),
        opacities,
        "the edit applied at step 3"
    );
    assert_ne!(download(&app, ParamGroup::Means), means);

    // Running: steps_per_frame steps per frame (an edit too), more edits on the way, and an
    // extension of the run after it finished.
    edit(&mut app, "run.steps_per_frame", "4");
    edit(&mut app, "optimization.opacity_lr", "0.05");
    app.world_mut().resource_mut::<RunControl>().paused = false;
    app.update();
    assert_eq!(iteration(&app), 7);
    edit(&mut app, "optimization.lambda_dssim", "0.5");
    while !app.world().resource::<TrainState>().finished {
        app.update();
    }
    assert_eq!(iteration(&app), 30);
    edit(&mut app, "optimization.iterations", "37");
    for _ in 0..3 {
        app.update();
    }
    assert_eq!(iteration(&app), 37);
    assert_eq!(
        app.world().resource::<CurrentStatus>().0.phase,
        RunPhase::Finished
    );
    let editor_configs = std::mem::take(&mut app.world_mut().resource_mut::<SeenConfigs>().0);
    assert_eq!(editor_configs.len(), 37);

    // The edits file replays headless: the same configuration at every iteration.
    let edits = read_edits(&output.join("edits.ron")).unwrap();
    assert_eq!(edits.len(), 5);
    assert_eq!(edits[0].iteration, 2);
    let start = Config::load(&output.join("config.ron")).unwrap();
    let scene = LoadedScene::load(
        &crate::dataset::DatasetOptions {
            source: start.model.source_path.clone(),
            images: "images".into(),
            resolution: start.model.resolution,
            eval: start.model.eval,
            white_background: false,
        },
        true,
    )
    .unwrap();
    let replay_dir = dir.path().join("replay");
    std::fs::create_dir_all(&replay_dir).unwrap();
    let init = crate::train::session::initial_state(
        &start,
        &scene,
        &crate::views::SceneIdentity::of(&scene.dataset),
        &replay_dir,
        test_context(),
        None,
    )
    .unwrap();
    let mut headless = headless_app(test_context(), &HeadlessOptions::default());
    headless
        .add_plugins(ScenePlugin::new(scene))
        .add_plugins(TrainPlugin)
        .add_plugins(EditReplayPlugin(edits))
        .insert_resource(TrainConfig(start))
        .insert_resource(ModelPath(replay_dir))
        .insert_resource(init)
        .insert_resource(StepsPerUpdate(100))
        .init_resource::<SeenConfigs>()
        .add_systems(
            crate::train::TrainStep,
            record_config.before(crate::train::sample_view::begin_iteration),
        );
    finish_setup(&mut headless);
    for _ in 0..5 {
        headless.update();
    }
    assert_eq!(headless.world().resource::<TrainState>().iteration, 37);
    let replayed = &headless.world().resource::<SeenConfigs>().0;
    assert_eq!(replayed.len(), editor_configs.len());
    for ((i, a), (j, b)) in editor_configs.iter().zip(replayed) {
        assert_eq!(i, j);
        assert_eq!(a, b, "configuration of iteration {i}");
    }
}

#[test]
fn offscreen_screenshot_shows_the_panels_and_the_view_as_the_trainer_renders_it() {
    let dir = TempDir::new("editor-screenshot").unwrap();
    let mut config = tiny_config(&dir.path().join("run"), 200);
    config.model.resolution = 4; // 80x60
    let mut app = offscreen_editor(config, [1024, 640]);
    finish_setup(&mut app);
    app.world_mut()
        .resource_mut::<ViewportOptions>()
        .show_frustums = false;
    app.world_mut().resource_mut::<RunControl>().paused = false;
    for _ in 0..6 {
        app.update();
    }
    // While training, the viewport shows the cloud (redrawn every frame), not its background.
    let running = offscreen::capture(&mut app).unwrap();
    let rect = app
        .world()
        .resource::<viewport_scene::ViewportTarget>()
        .rect
        .unwrap();
    let colours = distinct_colours(&running, rect);
    assert!(
        colours > 200,
        "the viewport shows {colours} colours while training"
    );
    // Pause so that the picture and the reference show the same cloud.
    app.world_mut().resource_mut::<RunControl>().paused = true;
    app.update();
    app.update();
    let trained = iteration(&app);
    assert!(trained > 0);
    let image = offscreen::capture(&mut app).unwrap();
    assert_eq!(image.dimensions(), (1024, 640));
    assert_eq!(iteration(&app), trained);

    // Every panel of the default layout's front tabs was drawn, and holds something (text,
    // buttons, plots) rather than a flat fill.
    let drawn = app.world().resource::<ui::DrawnTabs>().0.clone();
    for tab in [
        layout::Tab::Viewport,
        layout::Tab::Run,
        layout::Tab::Inspector,
        layout::Tab::Plots,
    ] {
        let (_, rect) = drawn
            .iter()
            .find(|(t, _)| *t == tab)
            .unwrap_or_else(|| panic!("{tab:?} not drawn"));
        let colours = distinct_colours(&image, *rect);
        assert!(colours > 8, "{tab:?} shows {colours} colours");
    }

    // The viewport, at the first training view, shows what the trainer renders there.
    let world = app.world();
    let camera = world.resource::<viewport::ViewportCamera>().clone();
    assert!(camera.looking_through.is_some());
    let rect = world
        .resource::<viewport_scene::ViewportTarget>()
        .rect
        .unwrap();
    let [x, y, w, h] =
        [rect.min.x, rect.min.y, rect.width(), rect.height()].map(|v| v.round() as u32);
    let views = world.resource::<view_list::ViewList>();
    let reference_camera = viewport_cloud::viewport_render_camera(&camera, views, [w, h]);
    let gpu = world.resource::<crate::app::Gpu>().clone();
    let config = world.resource::<TrainConfig>().clone();
    let state = world.resource::<TrainState>().clone();
    let settings = config.render_settings(
        world.resource::<ViewportOptions>().background,
        state.active_sh_degree,
    );
    let train = world.resource::<TrainGpuState>();
    let mut rasterizer = crate::gpu::raster::Rasterizer::new(&gpu);
    let mut frame = crate::gpu::raster::RasterFrame::new(&gpu);
    rasterizer
        .forward(
            &gpu,
            &train.cloud,
            &reference_camera,
            &settings,
            &mut frame,
            None,
        )
        .unwrap();
    let reference = crate::cli::render::planar_to_rgb8(&frame.read_image(&gpu), w, h);
    let shown: Vec<u8> = (0..h)
        .flat_map(|row| (0..w).map(move |col| (col, row)))
        .flat_map(|(col, row)| image.get_pixel(x + col, y + row).0)
        .collect();
    let psnr = psnr_u8(&shown, &reference);
    assert!(psnr >= 35.0, "viewport vs trainer render: {psnr:.2} dB");
}

fn distinct_colours(image: &image::RgbImage, rect: bevy_egui::egui::Rect) -> usize {
    let mut seen = std::collections::HashSet::new();
    let (x0, y0) = (rect.min.x.max(0.0) as u32, rect.min.y.max(0.0) as u32);
    let x1 = (rect.max.x as u32).min(image.width());
    let y1 = (rect.max.y as u32).min(image.height());
    for y in y0..y1 {
        for x in x0..x1 {
            seen.insert(image.get_pixel(x, y).0);
        }
    }
    seen.len()
}

fn psnr_u8(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

/// Updates until what was dropped has been opened (or refused): at most `frames` frames.
fn until_opened(app: &mut App, frames: u32) {
    app.update(); // the drop becomes an open request, and the opening starts
    for _ in 0..frames {
        if app.world().resource::<run::PendingOpen>().busy().is_none() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        app.update();
    }
    panic!("still opening after {frames} frames");
}

fn drop_file(app: &mut App, path: &Path) {
    app.world_mut()
        .write_message(bevy::window::FileDragAndDrop::DroppedFile {
            window: Entity::PLACEHOLDER,
            path_buf: path.to_path_buf(),
        });
}

#[test]
fn views_broken_and_good_files_dropped_and_a_fork() {
    let dir = TempDir::new("editor-open").unwrap();
    let output = dir.path().join("run");
    let mut config = tiny_config(&output, 200);
    config.run.steps_per_frame = 6;
    let mut app = offscreen_editor(config, [480, 320]);
    finish_setup(&mut app);
    {
        let mut control = app.world_mut().resource_mut::<RunControl>();
        control.auto_steps = false;
        control.paused = false;
    }
    // A view selected in the views panel gets its ground truth, render and error images.
    app.world_mut().resource_mut::<ui::Panels>().views.selected = Some(2);
    for _ in 0..4 {
        app.update();
    }
    let selected = app.world().resource::<view_images::SelectedView>();
    let images = selected
        .images
        .as_ref()
        .expect("the selected view is rendered");
    assert_eq!(images.view, 2);
    assert!(
        images.psnr.is_finite() && images.psnr > 5.0,
        "{}",
        images.psnr
    );
    let stats = app.world().resource::<control::ViewStats>();
    assert!(stats.psnr[2].is_some());
    assert!(
        stats.loss.iter().flatten().count() > 0,
        "losses read back are credited to their views"
    );

    // A broken PLY dropped on the window: its error in the log, the run goes on.
    let broken = dir.path().join("broken.ply");
    std::fs::write(
        &broken,
        b"ply\nformat binary_little_endian 1.0\nelement vertex 9\n",
    )
    .unwrap();
    let before = iteration(&app);
    drop_file(&mut app, &broken);
    until_opened(&mut app, 200);
    let error = app
        .world()
        .resource::<log::EditorLog>()
        .last_error()
        .unwrap()
        .text
        .clone();
    assert!(error.contains("broken.ply"), "{error}");
    assert_eq!(app.world().resource::<EditorRun>().output, output);
    assert!(iteration(&app) > before, "training went on");

    // Fork: a checkpoint here, and the run continues from it in a new folder.
    app.world_mut()
        .resource_mut::<RunControl>()
        .requests
        .push(run_panel::RunRequest::Fork);
    app.update();
    let forked_at = iteration(&app);
    let fork = dir.path().join("run-2");
    assert_eq!(app.world().resource::<EditorRun>().output, fork);
    let fork_config = Config::load(&fork.join("config.ron")).unwrap();
    let checkpoint = fork_config.run.start_checkpoint.clone().unwrap();
    assert!(checkpoint.starts_with(&output) && checkpoint.is_file());
    assert_eq!(fork_config.model.model_path, fork);
    app.update();
    assert!(iteration(&app) > forked_at);

    // A good PLY dropped: a new run from its Gaussians, in the next folder.
    let ply = run::save_ply_now(app.world_mut()).unwrap();
    let count = app.world().resource::<TrainGpuState>().cloud.len;
    drop_file(&mut app, &ply);
    until_opened(&mut app, 200);
    assert_eq!(
        app.world().resource::<EditorRun>().output,
        dir.path().join("run-3")
    );
    assert_eq!(app.world().resource::<TrainGpuState>().cloud.len, count);
    assert!(
        iteration(&app) < forked_at,
        "the new run starts from the PLY"
    );
}
