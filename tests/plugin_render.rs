//! The game plugin in headless Bevy apps (software Vulkan), rendering into images that are read
//! back and compared by PSNR:
//!
//! - gsplat's trained clouds (tests/data/golden) seen by Bevy cameras at the dataset's test
//!   cameras, against gsplat's renders and the trainer's (`splatforge render`'s) renders, with
//!   MSAA and HDR on and off and with Bevy's default tonemapping;
//! - meshes hiding splats, and splats over meshes;
//! - one cloud split into two entities; a transformed cloud seen by a camera moved alike;
//!   two cameras sharing one target (split screen);
//! - bad `.ply` assets (errors that name the file, the app keeps running) and hot reload.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use bevy::camera::Hdr;
use bevy::camera::primitives::Aabb;
use bevy::camera::visibility::RenderLayers;
use bevy::camera::{RenderTarget, Viewport};
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::render::view::Msaa;
use glam::{DMat3, DVec3};

use splatforge::Camera as PinholeCamera;
use splatforge::RenderSettings;
use splatforge::app::{HeadlessOptions, finish_setup, headless_app};
use splatforge::cli::render::planar_to_rgb8;
use splatforge::dataset::{Dataset, DatasetOptions, Split};
use splatforge::fsutil::TempDir;
use splatforge::gpu::raster::{RasterFrame, Rasterizer};
use splatforge::gpu::{GpuContext, GpuOptions};
use splatforge::model::{GaussianCloud, Gaussians, ply};
use splatforge::render::offscreen::{offscreen_image, read_image_rgba8};
use splatforge::render::{SplatCloud, SplatPlugin, SplatViewSettings, Splats, bevy_camera};
use splatforge::rng::Pcg32;

fn gpu() -> &'static GpuContext {
    static GPU: OnceLock<GpuContext> = OnceLock::new();
    GPU.get_or_init(|| GpuContext::new_headless(&GpuOptions::default()).expect("a GPU device"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A golden scene: gsplat's cloud, the dataset's test cameras and gsplat's renders of them.
struct Golden {
    cloud: Gaussians,
    views: Vec<(PinholeCamera, Vec<u8>)>,
    background: [f32; 3],
}

fn golden(name: &str, dataset: &Path, white_background: bool) -> Golden {
    let folder = root().join("tests/data/golden").join(name);
    let xz = folder.join("gsplat_1000.ply.xz");
    let mut compressed = Vec::new();
    std::fs::File::open(&xz)
        .unwrap()
        .read_to_end(&mut compressed)
        .unwrap();
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut compressed.as_slice(), &mut bytes).unwrap();
    let cloud = ply::read_gaussians_ply_bytes(&xz, &bytes).unwrap();
    let mut options = DatasetOptions::new(dataset);
    options.eval = true;
    options.white_background = white_background;
    let dataset = Dataset::load(&options).unwrap();
    let views = dataset
        .views
        .iter()
        .filter(|v| v.split == Split::Test)
        .map(|view| {
            let stem = Path::new(&view.name).file_stem().unwrap().to_string_lossy();
            let png = folder.join("renders").join(format!("{stem}.png"));
            let render = image::open(&png).unwrap().to_rgb8().into_raw();
            (view.camera.clone(), render)
        })
        .collect();
    Golden {
        cloud,
        views,
        background: dataset.background,
    }
}

/// The trainer's render (what `splatforge render` writes): RGB8.
fn trainer_render(gaussians: &Gaussians, camera: &PinholeCamera, background: [f32; 3]) -> Vec<u8> {
    // One rasterizer for the whole test binary: building its pipelines is slow on lavapipe.
    static RASTERIZER: OnceLock<Mutex<(Rasterizer, RasterFrame)>> = OnceLock::new();
    let ctx = gpu();
    let cloud = GaussianCloud::from_gaussians(ctx, gaussians, gaussians.len() as u32);
    let mut guard = RASTERIZER
        .get_or_init(|| Mutex::new((Rasterizer::new(ctx), RasterFrame::new(ctx))))
        .lock()
        .unwrap();
    let (rasterizer, frame) = &mut *guard;
    let settings = RenderSettings {
        background,
        ..RenderSettings::default()
    };
    rasterizer
        .forward(ctx, &cloud, camera, &settings, frame, None)
        .unwrap();
    planar_to_rgb8(&frame.read_image(ctx), camera.width, camera.height)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10()
}

fn rgba_to_rgb(rgba: &[u8]) -> Vec<u8> {
    rgba.chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

/// A headless app on the shared device with the plugin, set up and ready to update.
fn new_app(asset_root: Option<PathBuf>) -> App {
    let mut app = headless_app(
        gpu(),
        &HeadlessOptions {
            asset_root,
            ..HeadlessOptions::default()
        },
    );
    app.add_plugins(SplatPlugin);
    app
}

fn add_cloud(app: &mut App, gaussians: Gaussians) -> Handle<Splats> {
    app.world_mut()
        .resource_mut::<Assets<Splats>>()
        .add(Splats::new(gaussians))
}

fn add_target(app: &mut App, width: u32, height: u32) -> Handle<Image> {
    app.world_mut()
        .resource_mut::<Assets<Image>>()
        .add(offscreen_image(width, height))
}

/// How a test camera is configured.
#[derive(Clone, Copy, Debug)]
enum CameraStyle {
    /// No MSAA, LDR, no tonemapping or dithering: the plain case.
    Plain,
    /// 4x MSAA and HDR, no tonemapping.
    MsaaHdr,
    /// Bevy's default `Camera3d` (4x MSAA, LDR, TonyMcMapface, deband dithering).
    Default,
    /// HDR with Bevy's default tonemapping (TonyMcMapface) and dithering.
    HdrTonemapped,
}

fn spawn_camera(
    app: &mut App,
    target: &Handle<Image>,
    (transform, projection): (Transform, Projection),
    background: [f32; 3],
    style: CameraStyle,
    layer: usize,
) -> Entity {
    let [r, g, b] = background;
    let mut camera = app.world_mut().spawn((
        Camera3d::default(),
        Camera {
            clear_color: ClearColorConfig::Custom(Color::srgb(r, g, b)),
            ..default()
        },
        RenderTarget::Image(target.clone().into()),
        transform,
        projection,
        RenderLayers::layer(layer),
    ));
    match style {
        CameraStyle::Plain => {
            camera.insert((Msaa::Off, Tonemapping::None, DebandDither::Disabled));
        }
        CameraStyle::MsaaHdr => {
            camera.insert((Msaa::Sample4, Hdr, Tonemapping::None));
        }
        CameraStyle::Default => {}
        CameraStyle::HdrTonemapped => {
            camera.insert(Hdr);
        }
    }
    camera.id()
}

fn render(app: &mut App, frames: usize) {
    for _ in 0..frames {
        app.update();
    }
}

fn read(app: &App, target: &Handle<Image>) -> Vec<u8> {
    rgba_to_rgb(&read_image_rgba8(app, target).expect("the target is on the GPU"))
}

#[test]
fn golden_clouds_at_dataset_cameras_match_gsplat_and_the_trainer() {
    let scenes = [
        golden("tiny_colmap", &root().join("assets/demo"), false),
        golden(
            "tiny_blender",
            &root().join("tests/data/tiny_blender"),
            true,
        ),
    ];
    let mut app = new_app(None);
    let styles = [
        CameraStyle::Plain,
        CameraStyle::MsaaHdr,
        CameraStyle::Default,
        CameraStyle::HdrTonemapped,
    ];
    let mut cameras = Vec::new();
    for (index, scene) in scenes.iter().enumerate() {
        let layer = index + 1;
        let handle = add_cloud(&mut app, scene.cloud.clone());
        app.world_mut()
            .spawn((SplatCloud(handle), RenderLayers::layer(layer)));
        for (k, (camera, _)) in scene.views.iter().enumerate() {
            let target = add_target(&mut app, camera.width, camera.height);
            let style = styles[k % styles.len()];
            let bevy = bevy_camera(camera, &Transform::IDENTITY);
            spawn_camera(&mut app, &target, bevy, scene.background, style, layer);
            cameras.push((index, k, style, target));
        }
    }
    finish_setup(&mut app);
    render(&mut app, 3);
    let mut worst: f64 = f64::INFINITY;
    for (index, k, style, target) in cameras {
        let scene = &scenes[index];
        let (camera, gsplat) = &scene.views[k];
        let got = read(&app, &target);
        if let CameraStyle::HdrTonemapped = style {
            // Tonemapping runs before the splats are composited: it changes the scene behind
            // them (here the clear colour), not the splats. Against the trainer's render on
            // the tonemapped clear colour, the splats are exact.
            let background =
                tonemapped_background(&got, &scene.cloud, camera).unwrap_or_else(|| {
                    // Every pixel has splats; black is black after tonemapping anyway.
                    assert_eq!(scene.background, [0.0; 3]);
                    scene.background
                });
            let trainer = trainer_render(&scene.cloud, camera, background);
            let against_trainer = psnr(&got, &trainer);
            eprintln!(
                "scene {index} view {k} ({style:?}): {against_trainer:.1} dB against the \
                 trainer on the tonemapped background {background:?}"
            );
            assert!(against_trainer >= 40.0, "view {k}: {against_trainer} dB");
            worst = worst.min(against_trainer);
            continue;
        }
        let trainer = trainer_render(&scene.cloud, camera, scene.background);
        let against_gsplat = psnr(&got, gsplat);
        let against_trainer = psnr(&got, &trainer);
        eprintln!(
            "scene {index} view {k} ({style:?}): {against_gsplat:.1} dB against gsplat, \
             {against_trainer:.1} dB against the trainer"
        );
        assert!(against_gsplat >= 40.0, "view {k}: {against_gsplat} dB");
        assert!(against_trainer >= 40.0, "view {k}: {against_trainer} dB");
        worst = worst.min(against_trainer);
    }
    eprintln!("worst against the trainer: {worst:.1} dB");
}

/// The background colour a Bevy render shows where no splat covers a pixel (found where the
/// trainer's renders on black and on white differ by the full range: transmittance 1).
fn tonemapped_background(
    image: &[u8],
    cloud: &Gaussians,
    camera: &PinholeCamera,
) -> Option<[f32; 3]> {
    let black = trainer_render(cloud, camera, [0.0; 3]);
    let white = trainer_render(cloud, camera, [1.0; 3]);
    let pixel = (0..black.len() / 3)
        .find(|&i| (0..3).all(|c| black[3 * i + c] == 0 && white[3 * i + c] == 255))?;
    Some([0, 1, 2].map(|c| f32::from(image[3 * pixel + c]) / 255.0))
}

fn colmap_scene() -> Golden {
    golden("tiny_colmap", &root().join("assets/demo"), false)
}

/// An unlit, two-sided material of one sRGB colour: what a camera without tonemapping shows
/// exactly.
fn flat_material(app: &mut App, colour: [u8; 3]) -> Handle<StandardMaterial> {
    app.world_mut()
        .resource_mut::<Assets<StandardMaterial>>()
        .add(StandardMaterial {
            base_color: Color::srgb_u8(colour[0], colour[1], colour[2]),
            unlit: true,
            cull_mode: None,
            ..default()
        })
}

#[test]
fn meshes_hide_splats_per_pixel_and_splats_blend_over_meshes() {
    // The Blender scene: an object in the middle, background (transmittance 1) around it.
    let scene = golden(
        "tiny_blender",
        &root().join("tests/data/tiny_blender"),
        true,
    );
    let (camera, _) = scene.views[0].clone();
    let (width, height) = (camera.width, camera.height);
    let mut app = new_app(None);
    let handle = add_cloud(&mut app, scene.cloud.clone());
    app.world_mut()
        .spawn((SplatCloud(handle), RenderLayers::from_layers(&[1, 2])));
    let bevy = bevy_camera(&camera, &Transform::IDENTITY);
    let forward = bevy.0.forward();
    // Layer 1: a small cube 0.6 in front of the camera, before every splat.
    let cube_colour = [200u8, 40, 30];
    let cube_material = flat_material(&mut app, cube_colour);
    let cube_mesh = app
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::new(0.2, 0.2, 0.2));
    app.world_mut().spawn((
        Mesh3d(cube_mesh.clone()),
        MeshMaterial3d(cube_material),
        Transform::from_translation(bevy.0.translation + forward * 0.6)
            .with_rotation(bevy.0.rotation),
        RenderLayers::layer(1),
    ));
    // Layer 2: a huge box around the whole scene: a backdrop behind every splat.
    let backdrop_colour = [40u8, 90, 160];
    let backdrop_material = flat_material(&mut app, backdrop_colour);
    app.world_mut().spawn((
        Mesh3d(cube_mesh),
        MeshMaterial3d(backdrop_material),
        Transform::from_translation(bevy.0.translation).with_scale(Vec3::splat(500.0)),
        RenderLayers::layer(2),
    ));
    let front = add_target(&mut app, width, height);
    let behind = add_target(&mut app, width, height);
    spawn_camera(
        &mut app,
        &front,
        bevy.clone(),
        [0.0; 3],
        CameraStyle::Plain,
        1,
    );
    spawn_camera(&mut app, &behind, bevy, [0.0; 3], CameraStyle::MsaaHdr, 2);
    finish_setup(&mut app);
    render(&mut app, 3);

    // In front: the cube's centre region shows exactly its colour.
    let got = read(&app, &front);
    let trainer = trainer_render(&scene.cloud, &camera, [0.0; 3]);
    // The cube's front face, 0.5 away, spans fx * 0.1 / 0.5 pixels around the principal point.
    let half = (camera.fx * 0.1 / 0.5 * 0.8) as i64;
    let (cx, cy) = (camera.cx as i64, camera.cy as i64);
    let mut inside = 0;
    let mut hidden_splats = 0;
    for y in cy - half..cy + half {
        for x in cx - half..cx + half {
            let at = 3 * (y as usize * width as usize + x as usize);
            let pixel = &got[at..at + 3];
            for c in 0..3 {
                assert!(
                    (i32::from(pixel[c]) - i32::from(cube_colour[c])).abs() <= 1,
                    "pixel ({x}, {y}): {pixel:?}, the cube is {cube_colour:?}"
                );
            }
            inside += 1;
            if trainer[at..at + 3].iter().any(|&v| v > 8) {
                hidden_splats += 1;
            }
        }
    }
    eprintln!("{inside} cube pixels checked, {hidden_splats} of them hide splats");
    assert!(
        hidden_splats > inside / 2,
        "the cube must hide splats to test anything"
    );
    // Outside the cube the splats are drawn as the trainer draws them.
    let outside: Vec<usize> = (0..(width * height) as usize)
        .filter(|&i| {
            let (x, y) = ((i % width as usize) as i64, (i / width as usize) as i64);
            (x - cx).abs() > 3 * half && (y - cy).abs() > 3 * half
        })
        .collect();
    let pick = |image: &[u8]| -> Vec<u8> {
        outside
            .iter()
            .flat_map(|&i| image[3 * i..3 * i + 3].to_vec())
            .collect()
    };
    let outside_psnr = psnr(&pick(&got), &pick(&trainer));
    eprintln!("around the cube: {outside_psnr:.1} dB against the trainer");
    assert!(outside_psnr >= 40.0);

    // Behind: the backdrop shows through the splats like the trainer's background colour.
    let got = read(&app, &behind);
    let background = backdrop_colour.map(|c| f32::from(c) / 255.0);
    let trainer = trainer_render(&scene.cloud, &camera, background);
    let behind_psnr = psnr(&got, &trainer);
    eprintln!("backdrop behind the cloud: {behind_psnr:.1} dB against the trainer on its colour");
    assert!(behind_psnr >= 40.0);
    let black = trainer_render(&scene.cloud, &camera, [0.0; 3]);
    assert!(
        psnr(&got, &black) < 30.0,
        "the backdrop must show through somewhere"
    );
}

/// A similarity transform: rotation, translation and uniform scale.
fn similarity() -> Transform {
    Transform {
        translation: Vec3::new(2.0, -1.5, 4.0),
        rotation: Quat::from_euler(EulerRot::YXZ, 0.8, -0.5, 1.2),
        scale: Vec3::splat(1.7),
    }
}

#[test]
fn clouds_sort_together_transform_consistently_and_share_a_target() {
    let scene = colmap_scene();
    let (camera, _) = scene.views[1].clone();
    let (width, height) = (camera.width, camera.height);
    let mut app = new_app(None);
    // Layer 1: the whole cloud.
    let whole = add_cloud(&mut app, scene.cloud.clone());
    app.world_mut()
        .spawn((SplatCloud(whole.clone()), RenderLayers::layer(1)));
    // Layer 2: the same Gaussians split at random into two entities.
    let mut rng = Pcg32::new(4, 4);
    let mut halves = [
        Gaussians::empty(scene.cloud.sh_degree),
        Gaussians::empty(scene.cloud.sh_degree),
    ];
    for i in 0..scene.cloud.len() {
        halves[rng.below(2) as usize].push_from(&scene.cloud, i);
    }
    for half in halves {
        let handle = add_cloud(&mut app, half);
        app.world_mut()
            .spawn((SplatCloud(handle), RenderLayers::layer(2)));
    }
    // Layer 3: the whole cloud moved by a similarity, to be seen by a camera moved alike.
    let moved = similarity();
    let moved_entity = app
        .world_mut()
        .spawn((SplatCloud(whole.clone()), moved, RenderLayers::layer(3)))
        .id();
    // Layer 4: a hidden cloud, and one behind the camera (outside its frustum).
    app.world_mut().spawn((
        SplatCloud(whole.clone()),
        Visibility::Hidden,
        RenderLayers::layer(4),
    ));
    let behind_camera = app
        .world_mut()
        .spawn((
            SplatCloud(whole),
            Transform::from_translation(Vec3::new(0.0, 0.0, 1000.0)),
            RenderLayers::layer(4),
        ))
        .id();

    let bevy = bevy_camera(&camera, &Transform::IDENTITY);
    let reference = add_target(&mut app, width, height);
    let split = add_target(&mut app, width, height);
    let transformed = add_target(&mut app, width, height);
    let nothing = add_target(&mut app, width, height);
    spawn_camera(
        &mut app,
        &nothing,
        bevy.clone(),
        [0.0; 3],
        CameraStyle::Plain,
        4,
    );
    spawn_camera(
        &mut app,
        &reference,
        bevy.clone(),
        [0.0; 3],
        CameraStyle::Plain,
        1,
    );
    spawn_camera(
        &mut app,
        &split,
        bevy.clone(),
        [0.0; 3],
        CameraStyle::Plain,
        2,
    );
    let moved_camera = (moved.mul_transform(bevy.0), bevy.1.clone());
    spawn_camera(
        &mut app,
        &transformed,
        moved_camera,
        [0.0; 3],
        CameraStyle::Plain,
        3,
    );

    // Split screen: two cameras, left and right halves of one target, two dataset views.
    let screen = add_target(&mut app, width, height);
    let half_width = width / 2;
    let other = scene.views[2].0.clone();
    for (side, view) in [(0u32, &camera), (1, &other)] {
        let entity = spawn_camera(
            &mut app,
            &screen,
            bevy_camera(view, &Transform::IDENTITY),
            [0.0; 3],
            CameraStyle::Plain,
            1,
        );
        let mut camera_component = app.world_mut().get_mut::<Camera>(entity).unwrap();
        camera_component.viewport = Some(Viewport {
            physical_position: UVec2::new(side * half_width, 0),
            physical_size: UVec2::new(half_width, height),
            ..default()
        });
        camera_component.order = side as isize + 1;
    }
    finish_setup(&mut app);
    render(&mut app, 3);

    let whole_image = read(&app, &reference);
    let trainer = trainer_render(&scene.cloud, &camera, [0.0; 3]);
    eprintln!(
        "whole cloud: {:.1} dB against the trainer",
        psnr(&whole_image, &trainer)
    );
    let split_psnr = psnr(&read(&app, &split), &whole_image);
    eprintln!("split into two entities: {split_psnr:.1} dB against the whole cloud");
    assert!(split_psnr >= 40.0);
    let transformed_psnr = psnr(&read(&app, &transformed), &whole_image);
    eprintln!(
        "transformed cloud and camera: {transformed_psnr:.1} dB against the untransformed pair"
    );
    assert!(transformed_psnr >= 40.0);
    // Hidden clouds and clouds outside the frustum (by their asset's bounds) are not drawn.
    assert!(read(&app, &nothing).iter().all(|&v| v == 0));
    let bounds = app
        .world()
        .get::<Aabb>(moved_entity)
        .expect("bounds from the asset");
    assert!(bounds.half_extents.min_element() > 0.0);
    assert!(
        app.world()
            .get::<ViewVisibility>(behind_camera)
            .is_some_and(|v| !v.get())
    );

    // Each half of the split screen is the middle half of its dataset view (same vertical
    // field of view, same focal length).
    let screen_image = read(&app, &screen);
    for (side, view) in [(0u32, &camera), (1, &other)] {
        let mut cropped = view.clone();
        cropped.width = half_width;
        cropped.cx -= f64::from(width - half_width) / 2.0;
        let expected = trainer_render(&scene.cloud, &cropped, [0.0; 3]);
        let got: Vec<u8> = (0..height as usize)
            .flat_map(|y| {
                let start = 3 * (y * width as usize + (side * half_width) as usize);
                screen_image[start..start + 3 * half_width as usize].to_vec()
            })
            .collect();
        let half_psnr = psnr(&got, &expected);
        eprintln!("split screen, side {side}: {half_psnr:.1} dB against the trainer");
        assert!(half_psnr >= 40.0);
    }
}

/// Waits (updating the app) until `handle` has finished loading or failed.
fn settle(app: &mut App, handles: &[UntypedHandle]) {
    for _ in 0..500 {
        app.update();
        let server = app.world().resource::<AssetServer>();
        let done = handles.iter().all(|h| {
            matches!(
                server.load_state(h.id()),
                bevy::asset::LoadState::Loaded | bevy::asset::LoadState::Failed(_)
            )
        });
        if done {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("assets did not finish loading");
}

fn small_cloud(colour_logit: f32) -> Gaussians {
    // A grid of opaque Gaussians in front of the origin camera, one SH DC colour.
    let mut g = Gaussians::empty(0);
    for i in 0..64 {
        let (x, y) = ((i % 8) as f32 - 3.5, (i / 8) as f32 - 3.5);
        g.means.extend([0.15 * x, 0.15 * y, 3.0]);
        g.log_scales.extend([0.08f32.ln(); 3]);
        g.rotations.extend([1.0, 0.0, 0.0, 0.0]);
        g.logit_opacities.push(4.0);
        g.sh_dc.extend([colour_logit, 0.0, -colour_logit]);
    }
    g
}

#[test]
fn bad_ply_assets_fail_with_the_file_name_and_reloads_update_the_cloud() {
    let dir = TempDir::new("plugin-assets").unwrap();
    let good = dir.path().join("good.ply");
    ply::write_gaussians_ply(&good, &small_cloud(1.5)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(
        dir.path().join("truncated.ply"),
        &bytes[..bytes.len() - 100],
    )
    .unwrap();
    std::fs::write(dir.path().join("garbage.ply"), b"not a ply file at all\n").unwrap();

    let mut app = new_app(Some(dir.path().to_path_buf()));
    let server = app.world().resource::<AssetServer>().clone();
    let cloud: Handle<Splats> = server.load("good.ply");
    let truncated: Handle<Splats> = server.load("truncated.ply");
    let garbage: Handle<Splats> = server.load("garbage.ply");
    for handle in [&cloud, &truncated, &garbage] {
        app.world_mut().spawn(SplatCloud(handle.clone()));
    }
    let (width, height) = (64, 48);
    let target = add_target(&mut app, width, height);
    let camera = PinholeCamera::from_world_pose(
        width,
        height,
        60.0,
        60.0,
        32.0,
        24.0,
        DMat3::IDENTITY,
        DVec3::ZERO,
    );
    let projection = bevy_camera(&camera, &Transform::IDENTITY);
    let view = spawn_camera(
        &mut app,
        &target,
        projection,
        [0.0; 3],
        CameraStyle::Plain,
        0,
    );
    app.world_mut()
        .entity_mut(view)
        .insert(SplatViewSettings::default());
    finish_setup(&mut app);
    settle(
        &mut app,
        &[
            cloud.clone().untyped(),
            truncated.clone().untyped(),
            garbage.clone().untyped(),
        ],
    );
    let server = app.world().resource::<AssetServer>();
    for (handle, name) in [(&truncated, "truncated.ply"), (&garbage, "garbage.ply")] {
        match server.load_state(handle) {
            bevy::asset::LoadState::Failed(error) => {
                let message = error.to_string();
                eprintln!("{name}: {message}");
                assert!(message.contains(name), "{message}");
            }
            state => panic!("{name} should fail to load, got {state:?}"),
        }
    }
    // The app runs on and draws the good cloud: reddish (DC +1.5 red, -1.5 blue).
    render(&mut app, 2);
    let first = read(&app, &target);
    let centre = 3 * ((height / 2 * width + width / 2) as usize);
    let pixel = &first[centre..centre + 3];
    eprintln!("centre pixel of the good cloud: {pixel:?}");
    assert!(pixel[0] > 200 && pixel[2] < 60, "{pixel:?}");
    assert_eq!(
        trainer_pixel(&small_cloud(1.5), &camera, width / 2, height / 2),
        pixel
    );

    // Rewrite the file with the opposite colour and reload it (what Bevy's file watcher does
    // on a change): the cloud on screen follows.
    ply::write_gaussians_ply(&good, &small_cloud(-1.5)).unwrap();
    app.world().resource::<AssetServer>().reload("good.ply");
    let mut changed = None;
    for _ in 0..200 {
        app.update();
        let image = read(&app, &target);
        if image[centre + 2] > 200 {
            changed = Some(image);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let changed = changed.expect("the reloaded cloud is drawn");
    assert_eq!(
        trainer_pixel(&small_cloud(-1.5), &camera, width / 2, height / 2),
        &changed[centre..centre + 3]
    );
}

fn trainer_pixel(gaussians: &Gaussians, camera: &PinholeCamera, x: u32, y: u32) -> Vec<u8> {
    let image = trainer_render(gaussians, camera, [0.0; 3]);
    let at = 3 * (y * camera.width + x) as usize;
    image[at..at + 3].to_vec()
}
