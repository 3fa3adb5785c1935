//! `splatforge view`: look at a trained cloud through the game plugin.
//!
//! `view <file.ply>` or `view <model folder>` (its latest `point_cloud.ply`, and the dataset
//! cameras of its `cameras.json`). A window with an orbit/fly camera (mouse + W A S D, see
//! `render::controls`); with a model folder, `[` and `]` (or 1-9) jump to the dataset cameras
//! and show exactly what training saw from there. `--offscreen out.png` renders one frame to a
//! PNG instead, with no window (tests, screenshots, machines without a display).
//!
//! The scene is placed upright: from its cameras when there are some
//! (`render::coords::upright_transform`), else assuming OpenCV axes (y down).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::render::view::Msaa;

use crate::app::{HeadlessOptions, finish_setup, headless_app};
use crate::camera::Camera as PinholeCamera;
use crate::gpu::{GpuContext, GpuOptions};
use crate::model::cameras_json::{NamedCamera, read_cameras_json};
use crate::model::{Gaussians, ply};
use crate::render::controls::OrbitCamera;
#[cfg(feature = "editor")]
use crate::render::controls::OrbitCameraPlugin;
use crate::render::offscreen::{offscreen_image, read_image_rgba8};
use crate::render::{
    SplatCloud, SplatCloudSettings, SplatPlugin, SplatViewSettings, Splats, bevy_camera,
    opencv_scene_transform, upright_transform,
};
use crate::train::outputs;

/// Arguments of `splatforge view`.
#[derive(clap::Args, Debug)]
pub struct ViewArgs {
    /// A 3DGS .ply file, or a trained model folder (its latest point_cloud.ply, and the
    /// cameras of its cameras.json).
    pub path: PathBuf,
    /// Model folder: the iteration to show (default: the latest saved).
    #[arg(long)]
    pub iteration: Option<u32>,
    /// Render one frame to this PNG file instead of opening a window.
    #[arg(long, value_name = "FILE.png")]
    pub offscreen: Option<PathBuf>,
    /// Image size WIDTHxHEIGHT (default: the start camera's image size, else 1280x720).
    #[arg(long)]
    pub size: Option<String>,
    /// Start at this dataset camera (its index in cameras.json).
    #[arg(long)]
    pub camera: Option<usize>,
    /// Highest SH band drawn (default: all the cloud has).
    #[arg(long = "sh_degree", alias = "sh-degree")]
    pub sh_degree: Option<u32>,
    /// Background colour R,G,B in 0..1 (sRGB, as the trainer's).
    #[arg(long, value_delimiter = ',', default_value = "0,0,0")]
    pub background: Vec<f32>,
    /// Splats closer to the camera than this are not drawn (the trainer's default).
    #[arg(long, default_value_t = 0.2)]
    pub near: f32,
}

/// What the viewer shows: the cloud, its placement and the dataset cameras.
#[derive(Resource, Clone)]
struct ViewerScene {
    gaussians: std::sync::Arc<Gaussians>,
    scene_transform: Transform,
    cameras: Vec<NamedCamera>,
    start_camera: Option<usize>,
    cloud_settings: SplatCloudSettings,
    near_plane: f32,
}

/// The dataset camera shown now (window mode).
#[derive(Resource, Default)]
struct CurrentCamera(Option<usize>);

pub fn run(args: ViewArgs) -> anyhow::Result<()> {
    let scene = load_scene(&args)?;
    let background = match args.background.as_slice() {
        [r, g, b] if [r, g, b].iter().all(|c| c.is_finite()) => Color::srgb(*r, *g, *b),
        _ => bail!(
            "--background needs three numbers R,G,B, got {:?}",
            args.background
        ),
    };
    let size = match &args.size {
        Some(text) => Some(super::bench::parse_size(text)?),
        None => None,
    };
    match &args.offscreen {
        Some(path) => render_offscreen(scene, background, size, path),
        None => open_window(scene, background, size),
    }
}

fn load_scene(args: &ViewArgs) -> anyhow::Result<ViewerScene> {
    let (ply_path, cameras) = if args.path.is_dir() {
        let iteration = match args.iteration {
            Some(n) => n,
            None => *outputs::saved_iterations(&args.path)
                .last()
                .with_context(|| {
                    format!(
                        "{}: no point_cloud/iteration_*/point_cloud.ply found (is it a trained \
                         model folder?)",
                        args.path.display()
                    )
                })?,
        };
        let cameras_path = args.path.join("cameras.json");
        let cameras = if cameras_path.is_file() {
            read_cameras_json(&cameras_path)?
        } else {
            Vec::new()
        };
        (outputs::ply_path(&args.path, iteration), cameras)
    } else {
        (args.path.clone(), Vec::new())
    };
    let gaussians = ply::read_gaussians_ply(&ply_path)?;
    if let Some(index) = args.camera
        && index >= cameras.len()
    {
        bail!(
            "--camera {index}: {} has {} dataset cameras",
            args.path.display(),
            cameras.len()
        );
    }
    let scene_transform = if cameras.is_empty() {
        opencv_scene_transform()
    } else {
        let pinholes: Vec<PinholeCamera> = cameras.iter().map(|c| c.camera.clone()).collect();
        upright_transform(&pinholes)
    };
    let sh_degree = args.sh_degree.unwrap_or(gaussians.sh_degree);
    println!(
        "{}: {} Gaussians, SH degree {}{}",
        ply_path.display(),
        gaussians.len(),
        gaussians.sh_degree,
        if cameras.is_empty() {
            String::new()
        } else {
            format!(", {} dataset cameras", cameras.len())
        }
    );
    Ok(ViewerScene {
        gaussians: std::sync::Arc::new(gaussians),
        scene_transform,
        start_camera: args
            .camera
            .or(if cameras.is_empty() { None } else { Some(0) }),
        cameras,
        cloud_settings: SplatCloudSettings {
            max_sh_degree: sh_degree,
            ..SplatCloudSettings::default()
        },
        near_plane: args.near,
    })
}

/// Size of the start camera's image, or 1280x720.
fn default_size(scene: &ViewerScene) -> (u32, u32) {
    scene
        .start_camera
        .map(|i| {
            (
                scene.cameras[i].camera.width,
                scene.cameras[i].camera.height,
            )
        })
        .unwrap_or((1280, 720))
}

fn open_window(
    scene: ViewerScene,
    background: Color,
    size: Option<(u32, u32)>,
) -> anyhow::Result<()> {
    #[cfg(feature = "editor")]
    {
        #[cfg(target_os = "linux")]
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            bail!(
                "no display to open a window on (neither DISPLAY nor WAYLAND_DISPLAY is set); \
                 use --offscreen <file.png> to render without a window"
            );
        }
        let (width, height) = size.unwrap_or_else(|| default_size(&scene));
        println!(
            "mouse: left drag orbits, right drag pans, wheel zooms; W A S D Q E fly (Shift: \
             faster){}",
            if scene.cameras.is_empty() {
                ""
            } else {
                "; [ and ] or 1-9: dataset cameras"
            }
        );
        App::new()
            .add_plugins(DefaultPlugins.set(WindowPlugin {
                primary_window: Some(Window {
                    title: "splatforge view".into(),
                    resolution: bevy::window::WindowResolution::new(width, height),
                    ..default()
                }),
                ..default()
            }))
            .add_plugins((SplatPlugin, OrbitCameraPlugin))
            .insert_resource(ClearColor(background))
            .insert_resource(scene)
            .init_resource::<CurrentCamera>()
            .add_systems(Startup, spawn_viewer)
            .add_systems(Update, switch_dataset_camera)
            .run();
        Ok(())
    }
    #[cfg(not(feature = "editor"))]
    {
        let _ = (scene, background, size);
        bail!("this splatforge was built without a window (feature \"editor\"); use --offscreen")
    }
}

/// Spawns the cloud and a camera, at the start dataset camera if there is one, else framing
/// the cloud from the front.
fn spawn_viewer(
    mut commands: Commands,
    scene: Res<ViewerScene>,
    mut splats: ResMut<Assets<Splats>>,
    mut current: ResMut<CurrentCamera>,
    target: Option<Res<OffscreenTarget>>,
) {
    let asset = Splats::from_shared(scene.gaussians.clone());
    let bounds = asset.bounds;
    let centre = scene
        .scene_transform
        .transform_point(Vec3::from(bounds.center));
    let radius =
        Vec3::from(bounds.half_extents).length() * scene.scene_transform.scale.max_element();
    commands.spawn((
        SplatCloud(splats.add(asset)),
        scene.scene_transform,
        scene.cloud_settings,
    ));
    let (transform, projection) = match scene.start_camera {
        Some(index) => bevy_camera(&scene.cameras[index].camera, &scene.scene_transform),
        None => (
            Transform::from_translation(centre + Vec3::new(0.0, 0.3, 1.0) * radius.max(0.1) * 1.2)
                .looking_at(centre, Vec3::Y),
            Projection::Perspective(PerspectiveProjection::default()),
        ),
    };
    current.0 = scene.start_camera;
    let focus_distance = (transform.translation - centre).length().max(0.05);
    let mut camera = commands.spawn((
        Camera3d::default(),
        transform,
        projection,
        Tonemapping::None,
        Msaa::Off,
        SplatViewSettings {
            near_plane: scene.near_plane,
        },
        OrbitCamera::looking_from(&transform, focus_distance),
    ));
    if let Some(target) = target {
        camera.insert(bevy::camera::RenderTarget::Image(target.0.clone().into()));
    }
}

/// `[` / `]` step through the dataset cameras, 1-9 pick one.
#[cfg(feature = "editor")]
fn switch_dataset_camera(
    keys: Res<ButtonInput<KeyCode>>,
    scene: Res<ViewerScene>,
    mut current: ResMut<CurrentCamera>,
    mut cameras: Query<(&mut Transform, &mut Projection, &mut OrbitCamera), With<Camera3d>>,
) {
    let count = scene.cameras.len();
    if count == 0 {
        return;
    }
    let digits = [
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
        KeyCode::Digit9,
    ];
    let mut next = None;
    if keys.just_pressed(KeyCode::BracketRight) {
        next = Some(current.0.map_or(0, |i| (i + 1) % count));
    }
    if keys.just_pressed(KeyCode::BracketLeft) {
        next = Some(current.0.map_or(0, |i| (i + count - 1) % count));
    }
    for (digit, key) in digits.iter().enumerate() {
        if keys.just_pressed(*key) && digit < count {
            next = Some(digit);
        }
    }
    let Some(index) = next else {
        return;
    };
    current.0 = Some(index);
    let named = &scene.cameras[index];
    println!("dataset camera {index}: {}", named.name);
    let (transform, projection) = bevy_camera(&named.camera, &scene.scene_transform);
    for (mut camera_transform, mut camera_projection, mut orbit) in &mut cameras {
        let distance = orbit.distance;
        *camera_transform = transform;
        *camera_projection = projection.clone();
        *orbit = OrbitCamera::looking_from(&transform, distance);
    }
}

/// The image the offscreen camera renders into.
#[derive(Resource)]
struct OffscreenTarget(Handle<Image>);

fn render_offscreen(
    scene: ViewerScene,
    background: Color,
    size: Option<(u32, u32)>,
    path: &Path,
) -> anyhow::Result<()> {
    let (width, height) = size.unwrap_or_else(|| default_size(&scene));
    let gpu = GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?;
    let mut app = headless_app(&gpu, &HeadlessOptions::default());
    app.add_plugins(SplatPlugin);
    let target = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(offscreen_image(width, height));
    app.insert_resource(ClearColor(background))
        .insert_resource(scene)
        .insert_resource(OffscreenTarget(target.clone()))
        .init_resource::<CurrentCamera>()
        .add_systems(Startup, spawn_viewer);
    finish_setup(&mut app);
    // The cloud reaches the GPU in the first frame; a few more let every pipeline settle.
    for _ in 0..3 {
        app.update();
    }
    let rgba = read_image_rgba8(&app, &target).context("reading the rendered image back")?;
    let rgb: Vec<u8> = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    super::render::save_png(rgb, width, height, path)?;
    println!("Rendered {width}x{height} to {}", path.display());
    Ok(())
}
