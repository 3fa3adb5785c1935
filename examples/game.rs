//! A Bevy game scene with a trained splat cloud: a lit ground plane, and a cube flying through
//! the cloud, hiding it and hidden by it pixel by pixel. The camera is an ordinary `Camera3d`
//! with Bevy's defaults (MSAA, tonemapping) and an orbit/fly controller.
//!
//! ```text
//! cargo run --release --example game                                   # a window
//! cargo run --release --example game -- --screenshot docs/game.png    # one frame, no window
//! ```
//!
//! The cloud is the one gsplat trained on the demo scene (`tests/data/golden/tiny_colmap`),
//! placed upright using the demo's cameras. In a game of your own, the cloud is an asset:
//! `commands.spawn((SplatCloud(asset_server.load("scene.ply")), transform))`.

use std::io::Read;
use std::path::{Path, PathBuf};

use bevy::prelude::*;
use splatforge::app::{HeadlessOptions, finish_setup, headless_app};
use splatforge::dataset::{Dataset, DatasetOptions};
use splatforge::gpu::{GpuContext, GpuOptions};
use splatforge::model::{Gaussians, ply};
use splatforge::render::controls::{OrbitCamera, OrbitCameraPlugin};
use splatforge::render::offscreen::{offscreen_image, read_image_rgba8};
use splatforge::render::{SplatCloud, SplatPlugin, Splats, bevy_camera, upright_transform};

/// Everything the scene needs, computed before the app starts.
#[derive(Resource, Clone)]
struct Scene {
    cloud: Gaussians,
    /// Places the trained scene upright, centred on what the cameras looked at.
    placement: Transform,
    /// The first demo camera, as a Bevy camera transform and projection.
    camera: (Transform, Projection),
    /// Typical camera distance from the centre (the scene's scale).
    radius: f32,
    /// Height of the trained floor in the placed scene (the ground plane covers it).
    floor: f32,
}

/// The flying cube.
#[derive(Component)]
struct Flyer;

/// Fixed animation time for screenshots (else the clock).
#[derive(Resource)]
struct FixedTime(f32);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let screenshot = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--screenshot" => Some((PathBuf::from(path), -0.6)),
        [flag, path, time_flag, time] if flag == "--screenshot" && time_flag == "--time" => {
            Some((PathBuf::from(path), time.parse()?))
        }
        _ => return Err("usage: game [--screenshot FILE.png [--time SECONDS]]".into()),
    };
    let scene = load_scene()?;
    match screenshot {
        None => {
            App::new()
                .add_plugins((DefaultPlugins, SplatPlugin, OrbitCameraPlugin))
                .insert_resource(scene)
                .insert_resource(ClearColor(Color::srgb(0.55, 0.7, 0.9)))
                .add_systems(Startup, spawn_scene)
                .add_systems(Update, fly_cube)
                .run();
            Ok(())
        }
        Some((path, time)) => take_screenshot(scene, &path, time),
    }
}

fn demo_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

fn load_scene() -> Result<Scene, Box<dyn std::error::Error>> {
    let xz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden/tiny_colmap/gsplat_1000.ply.xz");
    let mut compressed = Vec::new();
    std::fs::File::open(&xz)?.read_to_end(&mut compressed)?;
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut compressed.as_slice(), &mut bytes)?;
    let cloud = ply::read_gaussians_ply_bytes(&xz, &bytes)?;

    let dataset = Dataset::load(&DatasetOptions::new(demo_folder()))?;
    let cameras: Vec<_> = dataset.views.iter().map(|v| v.camera.clone()).collect();
    let placement = upright_transform(&cameras);
    let radius = cameras
        .iter()
        .map(|c| placement.transform_point(c.center().as_vec3()).length())
        .sum::<f32>()
        / cameras.len() as f32;
    // The trained floor is the height most Gaussians near the centre sit at.
    let bin = 0.01 * radius;
    let mut counts = std::collections::HashMap::<i64, usize>::new();
    for m in cloud.means.chunks_exact(3) {
        let p = placement.transform_point(Vec3::new(m[0], m[1], m[2]));
        if p.is_finite() && p.xz().length() < 0.8 * radius {
            *counts.entry((p.y / bin).floor() as i64).or_default() += 1;
        }
    }
    let floor_bin = counts
        .into_iter()
        .max_by_key(|&(_, count)| count)
        .map_or(0, |(bin, _)| bin);
    let floor = (floor_bin as f32 + 1.0) * bin;
    let camera = bevy_camera(&cameras[0], &placement);
    Ok(Scene {
        cloud,
        placement,
        camera,
        radius,
        floor,
    })
}

fn spawn_scene(
    mut commands: Commands,
    scene: Res<Scene>,
    mut splats: ResMut<Assets<Splats>>,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<StandardMaterial>>,
    target: Option<Res<ScreenshotTarget>>,
) {
    let r = scene.radius;
    commands.spawn((
        SplatCloud(splats.add(Splats::new(scene.cloud.clone()))),
        scene.placement,
    ));
    // A lit ground plane just above the trained floor: the objects stand on it.
    commands.spawn((
        Mesh3d(meshes.add(Plane3d::default().mesh().size(6.0 * r, 6.0 * r))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.32, 0.42, 0.3),
            perceptual_roughness: 0.9,
            ..default()
        })),
        Transform::from_xyz(0.0, scene.floor, 0.0),
    ));
    let size = 0.18 * r;
    commands.spawn((
        Flyer,
        Mesh3d(meshes.add(Cuboid::new(size, size, size))),
        MeshMaterial3d(materials.add(StandardMaterial {
            base_color: Color::srgb(0.9, 0.25, 0.1),
            metallic: 0.2,
            perceptual_roughness: 0.4,
            ..default()
        })),
        Transform::from_xyz(0.0, scene.floor + 0.7 * size, 0.0),
    ));
    commands.spawn((
        DirectionalLight {
            illuminance: 8000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        Transform::from_xyz(1.0, 2.0, 0.5).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    let (transform, projection) = scene.camera.clone();
    let mut camera = commands.spawn((
        Camera3d::default(),
        transform,
        projection,
        OrbitCamera::looking_from(&transform, transform.translation.length()),
    ));
    if let Some(target) = target {
        camera.insert(bevy::camera::RenderTarget::Image(target.0.clone().into()));
    }
}

/// The cube crosses the scene back and forth through its centre, turning as it goes.
fn fly_cube(
    time: Res<Time>,
    fixed: Option<Res<FixedTime>>,
    scene: Res<Scene>,
    mut cubes: Query<&mut Transform, With<Flyer>>,
) {
    let t = fixed.map_or(time.elapsed_secs(), |f| f.0);
    for mut transform in &mut cubes {
        let x = 0.6 * scene.radius * (0.5 * t).sin();
        transform.translation.x = x;
        transform.translation.z = 0.15 * scene.radius * (0.5 * t).cos();
        transform.rotation = Quat::from_rotation_y(0.7 * t);
    }
}

#[derive(Resource)]
struct ScreenshotTarget(Handle<Image>);

/// Renders one frame offscreen (no window) and writes it as a PNG.
fn take_screenshot(scene: Scene, path: &Path, time: f32) -> Result<(), Box<dyn std::error::Error>> {
    let (width, height) = (960, 720);
    let gpu = GpuContext::new_headless(&GpuOptions::default())?;
    let mut app = headless_app(&gpu, &HeadlessOptions::default());
    app.add_plugins(SplatPlugin);
    let target = app
        .world_mut()
        .resource_mut::<Assets<Image>>()
        .add(offscreen_image(width, height));
    app.insert_resource(scene)
        .insert_resource(ClearColor(Color::srgb(0.55, 0.7, 0.9)))
        .insert_resource(ScreenshotTarget(target.clone()))
        .insert_resource(FixedTime(time))
        .add_systems(Startup, spawn_scene)
        .add_systems(Update, fly_cube);
    finish_setup(&mut app);
    for _ in 0..4 {
        app.update();
    }
    let rgba = read_image_rgba8(&app, &target).ok_or("the image never reached the GPU")?;
    image::RgbaImage::from_raw(width, height, rgba)
        .ok_or("image size mismatch")?
        .save(path)?;
    println!("wrote {}", path.display());
    Ok(())
}
