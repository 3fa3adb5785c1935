//! Drawing the live cloud in the viewport: the seam between the editor and the renderer.
//!
//! The cloud is rendered with the trainer's own rasterizer from the trainer's own buffers
//! (`TrainGpuState::cloud`) for the viewport camera, into a texture the viewport panel shows
//! under the viewport camera's image (frustums, points). The renders are exactly what
//! training optimises; the price is one readback per redraw, so the layer is redrawn only
//! when the camera, the size, the background or the cloud changed.
//!
//! This is the one place that will draw through the game plugin's renderer instead (a live
//! `SplatCloud` on the trainer's buffers, seen by the viewport camera) once it lands; nothing
//! else in the editor depends on how the cloud is drawn.

use bevy::asset::RenderAssetUsages;
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_egui::{EguiTextureHandle, EguiUserTextures, egui};

use super::log::EditorLog;
use super::viewport::{ViewportCamera, ViewportOptions};
use super::viewport_scene::ViewportTarget;
use crate::app::Gpu;
use crate::camera::Camera;
use crate::gpu::raster::RasterFrame;
use crate::train::{TrainConfig, TrainGpuState, TrainKernels, TrainState};
use crate::views::SceneInfo;

/// The cloud layer of the viewport: an image (shown by the panel as an egui user texture)
/// rewritten in place at each redraw.
#[derive(Resource, Default)]
pub struct CloudLayer {
    pub image: Option<Handle<Image>>,
    pub texture: Option<egui::TextureId>,
    frame: Option<RasterFrame>,
    /// What the current texture shows, to skip identical redraws.
    drawn: Option<DrawnKey>,
    failed: bool,
}

#[derive(Clone, Debug, PartialEq)]
struct DrawnKey {
    camera: (Transform, [u32; 2], u32),
    background: [f32; 3],
    iteration: u32,
    gaussians: u32,
}

/// The live run as the viewport and the views panel render it: the trainer's cloud, kernels
/// and settings.
#[derive(SystemParam)]
pub struct LiveRun<'w> {
    pub gpu: Res<'w, Gpu>,
    pub config: Option<Res<'w, TrainConfig>>,
    pub state: Option<Res<'w, TrainState>>,
    pub train: Option<Res<'w, TrainGpuState>>,
    pub kernels: Option<ResMut<'w, TrainKernels>>,
    pub scene: Option<Res<'w, SceneInfo>>,
}

/// The camera the viewport shows at `size`: exactly the dataset camera (intrinsics included)
/// while looking through one, else the free camera.
pub fn viewport_render_camera(
    camera: &ViewportCamera,
    scene: Option<&SceneInfo>,
    size: [u32; 2],
) -> Camera {
    let through = camera
        .looking_through
        .and_then(|i| scene.and_then(|s| s.views.get(i)));
    match through {
        Some(view) => view.camera.resized(size[0], size[1]),
        None => camera.to_camera(size[0], size[1]),
    }
}

/// Renders the live cloud for the viewport camera when something changed.
pub fn draw_cloud_layer(
    mut images: ResMut<Assets<Image>>,
    mut user_textures: ResMut<EguiUserTextures>,
    mut layer: ResMut<CloudLayer>,
    target: Res<ViewportTarget>,
    view: (Res<ViewportCamera>, Res<ViewportOptions>),
    mut run: LiveRun,
    mut log: ResMut<EditorLog>,
) {
    let (camera, options) = view;
    let LiveRun {
        gpu,
        config,
        state,
        train,
        kernels,
        scene,
    } = &mut run;
    let (Some(config), Some(state), Some(train), Some(kernels)) =
        (config, state, train, kernels.as_deref_mut())
    else {
        return;
    };
    let size = target.size;
    if size[0] < 2 || size[1] < 2 {
        return;
    }
    let key = DrawnKey {
        camera: (
            camera.transform(),
            size,
            camera.looking_through.map_or(u32::MAX, |i| i as u32),
        ),
        background: options.background,
        iteration: state.iteration,
        gaussians: train.cloud.len,
    };
    if layer.drawn.as_ref() == Some(&key) {
        return;
    }
    let render_camera = viewport_render_camera(&camera, scene.as_deref(), size);
    let gpu = &**gpu;
    let settings = config.render_settings(options.background, state.active_sh_degree);
    let layer = &mut *layer;
    let frame = layer.frame.get_or_insert_with(|| RasterFrame::new(gpu));
    if let Err(error) =
        kernels
            .rasterizer
            .forward(gpu, &train.cloud, &render_camera, &settings, frame, None)
    {
        if !layer.failed {
            log.error(state.iteration, format!("viewport: {error}"));
            layer.failed = true;
        }
        return;
    }
    layer.failed = false;
    let planar = frame.read_image(gpu);
    let rgba: Vec<u8> = crate::cli::render::planar_to_rgb8(&planar, size[0], size[1])
        .chunks_exact(3)
        .flat_map(|rgb| [rgb[0], rgb[1], rgb[2], 255])
        .collect();
    let same_size = layer
        .image
        .as_ref()
        .and_then(|handle| images.get(handle))
        .is_some_and(|image| image.width() == size[0] && image.height() == size[1]);
    if same_size && let Some(mut image) = layer.image.as_ref().and_then(|h| images.get_mut(h)) {
        image.data = Some(rgba);
    } else {
        {
            let image = Image::new(
                Extent3d {
                    width: size[0],
                    height: size[1],
                    depth_or_array_layers: 1,
                },
                TextureDimension::D2,
                rgba,
                TextureFormat::Rgba8UnormSrgb,
                RenderAssetUsages::default(),
            );
            let handle = images.add(image);
            if let Some(old) = layer.image.replace(handle.clone()) {
                user_textures.remove_image(&old);
            }
            layer.texture = Some(user_textures.add_image(EguiTextureHandle::Strong(handle)));
        }
    }
    layer.drawn = Some(key);
}
