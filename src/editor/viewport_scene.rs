//! The viewport's Bevy side: the camera that renders the viewport image (shown by the
//! viewport panel), the dataset cameras as gizmo frustums and the SfM points.
//!
//! The cloud itself is drawn into the same image by the game plugin's renderer (see
//! [`super::viewport_cloud`]).

use bevy::asset::RenderAssetUsages;
use bevy::camera::RenderTarget;
use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
use bevy::prelude::*;
use bevy::render::render_resource::{
    Extent3d, TextureDescriptor, TextureDimension, TextureFormat, TextureUsages,
};
use bevy_egui::{EguiTextureHandle, EguiUserTextures, egui};

use super::control::ViewStats;
use super::run::EditorRun;
use super::view_list::ViewList;
use super::viewport::{FrustumColor, ViewportCamera, ViewportOptions, bevy_pose, estimate_up};
use crate::views::{SceneInfo, SfmPoints};

/// The viewport image (what the viewport camera renders) and where the panel drew it.
#[derive(Resource, Debug, Default)]
pub struct ViewportTarget {
    pub image: Handle<Image>,
    pub texture: Option<egui::TextureId>,
    /// Requested size in physical pixels (from the panel; 0 until it is first drawn).
    pub size: [u32; 2],
    /// Where the panel drew the image, in points (for tests and screenshots).
    pub rect: Option<egui::Rect>,
}

/// Marks the viewport's camera.
#[derive(Component)]
pub struct ViewportCameraMarker;

fn viewport_image(size: [u32; 2]) -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width: size[0].max(1),
            height: size[1].max(1),
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 0],
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    image.texture_descriptor = TextureDescriptor {
        usage: TextureUsages::TEXTURE_BINDING
            | TextureUsages::COPY_DST
            | TextureUsages::COPY_SRC
            | TextureUsages::RENDER_ATTACHMENT,
        ..image.texture_descriptor
    };
    image
}

/// Creates the viewport image and camera.
pub fn spawn_viewport_camera(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut user_textures: ResMut<EguiUserTextures>,
    mut target: ResMut<ViewportTarget>,
) {
    let handle = images.add(viewport_image([64, 64]));
    target.texture = Some(user_textures.add_image(EguiTextureHandle::Strong(handle.clone())));
    target.image = handle.clone();
    commands.spawn((
        ViewportCameraMarker,
        Camera3d::default(),
        Camera {
            // Before the window's (egui) camera, which shows this image.
            order: -1,
            // The run's background (sync_viewport_camera keeps it).
            clear_color: ClearColorConfig::Custom(Color::BLACK),
            ..default()
        },
        RenderTarget::Image(handle.into()),
        Msaa::Off,
        // The splat renderer's colours are the trainer's (display space) without tonemapping.
        Tonemapping::None,
        DebandDither::Disabled,
        Transform::default(),
        Projection::Perspective(PerspectiveProjection::default()),
    ));
}

/// What the viewport camera was last set up for: the free camera, the image size, the
/// background.
type AppliedView = (ViewportCamera, [u32; 2], [f32; 3]);

/// Follows the panel: image size, background, camera pose and projection (a dataset
/// camera's own intrinsics while looking through it, else the free camera's field of view).
pub fn sync_viewport_camera(
    mut images: ResMut<Assets<Image>>,
    target: Res<ViewportTarget>,
    camera: Res<ViewportCamera>,
    views: Res<ViewList>,
    options: Res<ViewportOptions>,
    mut cameras: Query<(&mut Camera, &mut Transform, &mut Projection), With<ViewportCameraMarker>>,
    mut applied: Local<Option<AppliedView>>,
) {
    let [width, height] = target.size;
    if width == 0 || height == 0 {
        return;
    }
    // Most frames change none of it: leave the camera untouched then (its change detection
    // would recompute the view's matrices and re-extract it).
    let key = (camera.clone(), target.size, options.background);
    if applied.as_ref() == Some(&key) && !views.is_changed() {
        return;
    }
    *applied = Some(key);
    if let Some(image) = images.get(&target.image)
        && (image.width() != width || image.height() != height)
        && let Some(mut image) = images.get_mut(&target.image)
    {
        image.resize(Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        });
    }
    let [r, g, b] = options.background;
    let clear = ClearColorConfig::Custom(Color::srgb(r, g, b));
    let through = camera.looking_through.and_then(|i| views.get(i));
    for (mut bevy_camera, mut transform, mut projection) in &mut cameras {
        bevy_camera.clear_color = clear;
        let (wanted_transform, wanted_projection) = match through {
            Some(view) => crate::render::bevy_camera(
                &view.camera.resized(width, height),
                &Transform::IDENTITY,
            ),
            None => (
                camera.transform(),
                Projection::Perspective(PerspectiveProjection {
                    fov: camera.fov_y,
                    aspect_ratio: width as f32 / height as f32,
                    near: (camera.scale * 1e-3).max(1e-4),
                    ..default()
                }),
            ),
        };
        if *transform != wanted_transform {
            *transform = wanted_transform;
        }
        *projection = wanted_projection;
    }
}

/// Puts the camera at the first training view of a run that just started, scaled to the
/// scene.
pub fn frame_new_run(
    mut run: ResMut<EditorRun>,
    scene: Option<Res<SceneInfo>>,
    views: Res<ViewList>,
    mut camera: ResMut<ViewportCamera>,
) {
    if !run.just_started {
        return;
    }
    run.just_started = false;
    let Some(scene) = scene else {
        return;
    };
    camera.scale = (scene.extent as f32).max(1e-3);
    camera.up = estimate_up(views.train_views().map(|v| &v.camera));
    let first = views.train_views().next().or(views.0.first());
    if let Some(view) = first {
        camera.look_through(view.index, &view.camera);
    }
}

/// Draws the dataset cameras as frustums coloured by their latest loss (or PSNR): green is
/// the best of the views, red the worst, grey not measured yet; the view looked through is
/// not drawn, the others' image planes sit at a size proportional to the scene.
pub fn draw_frustums(
    mut gizmos: Gizmos,
    views: Res<ViewList>,
    stats: Res<ViewStats>,
    camera: Res<ViewportCamera>,
    options: Res<ViewportOptions>,
) {
    if !options.show_frustums {
        return;
    }
    let values: Vec<Option<f64>> = (0..views.0.last().map_or(0, |v| v.index + 1))
        .map(|i| match options.color_by {
            FrustumColor::Loss => stats.loss.get(i).copied().flatten().map(|(_, l)| l),
            // Higher PSNR is better: negate so that "low is good" holds for both.
            FrustumColor::Psnr => stats.psnr.get(i).copied().flatten().map(|(_, p)| -p),
        })
        .collect();
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let (low, high) = known
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let depth = 0.08 * camera.scale;
    for view in &views.0 {
        if camera.looking_through == Some(view.index) {
            continue;
        }
        let color = match values[view.index] {
            Some(v) => {
                let t = if high > low {
                    ((v - low) / (high - low)) as f32
                } else {
                    0.0
                };
                Color::srgb(0.2 + 0.8 * t, 0.9 - 0.7 * t, 0.2)
            }
            None => Color::srgb(0.6, 0.6, 0.6),
        };
        let (rotation, centre) = bevy_pose(&view.camera);
        let half_w = depth * (view.camera.width as f32 / 2.0) / view.camera.fx as f32;
        let half_h = depth * (view.camera.height as f32 / 2.0) / view.camera.fy as f32;
        let corner = |x: f32, y: f32| centre + rotation * Vec3::new(x * half_w, y * half_h, -depth);
        let corners = [
            corner(-1.0, -1.0),
            corner(1.0, -1.0),
            corner(1.0, 1.0),
            corner(-1.0, 1.0),
        ];
        for (i, &c) in corners.iter().enumerate() {
            gizmos.line(centre, c, color);
            gizmos.line(c, corners[(i + 1) % 4], color);
        }
        // The up side of the image plane, so orientation reads at a glance.
        gizmos.line(
            corners[2],
            (corners[2] + corners[3]) / 2.0 + rotation * Vec3::Y * half_h * 0.5,
            color,
        );
    }
}

/// Draws the SfM points as small crosses (at most 50,000, evenly picked).
pub fn draw_sfm_points(
    mut gizmos: Gizmos,
    points: Option<Res<SfmPoints>>,
    camera: Res<ViewportCamera>,
    options: Res<ViewportOptions>,
) {
    let (Some(points), true) = (points, options.show_points) else {
        return;
    };
    let Some(cloud) = &points.0 else {
        return;
    };
    const MAX_POINTS: usize = 50_000;
    let stride = cloud.len().div_ceil(MAX_POINTS).max(1);
    let size = 0.003 * camera.scale;
    for i in (0..cloud.len()).step_by(stride) {
        let p = Vec3::from(cloud.positions[i]);
        let [r, g, b] = cloud.colors[i];
        let color = Color::srgb_u8(r, g, b);
        gizmos.line(p - Vec3::X * size, p + Vec3::X * size, color);
        gizmos.line(p - Vec3::Y * size, p + Vec3::Y * size, color);
    }
}
