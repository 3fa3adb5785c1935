//! Drawing the live cloud in the viewport: the seam between the editor and the renderer.
//!
//! The cloud is drawn by the game plugin's renderer ([`crate::render::SplatPlugin`]) from the
//! trainer's own buffers: one [`TrainerSplatCloud`] entity, seen by the viewport camera
//! together with the frustum and point gizmos. No copy through the CPU; the plugin follows
//! the trainer's buffers when densification replaces them, and its draw composites exactly as
//! the trainer's rasterizer does, so the viewport shows what training optimises.

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use super::view_list::ViewList;
use super::viewport::ViewportCamera;
use crate::app::Gpu;
use crate::camera::Camera;
use crate::render::{SplatCloudSettings, TrainerSplatCloud};
use crate::train::{TrainConfig, TrainGpuState, TrainKernels, TrainState};
use crate::views::SceneInfo;

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
pub fn viewport_render_camera(camera: &ViewportCamera, views: &ViewList, size: [u32; 2]) -> Camera {
    match camera.looking_through.and_then(|i| views.get(i)) {
        Some(view) => view.camera.resized(size[0], size[1]),
        None => camera.to_camera(size[0], size[1]),
    }
}

/// The trained cloud, in the scene's own frame (the viewport's world frame is the dataset's).
pub fn spawn_trainer_cloud(mut commands: Commands) {
    commands.spawn((
        TrainerSplatCloud,
        Transform::IDENTITY,
        Name::new("trained cloud"),
    ));
}

/// Draws the cloud as the trainer renders it now: its active SH degree (it rises during the
/// first iterations) and the run's rasterizer options.
pub fn sync_trainer_cloud_settings(
    config: Option<Res<TrainConfig>>,
    state: Option<Res<TrainState>>,
    mut clouds: Query<&mut SplatCloudSettings, With<TrainerSplatCloud>>,
) {
    let (Some(config), Some(state)) = (config, state) else {
        return;
    };
    let wanted = SplatCloudSettings {
        opacity: 1.0,
        max_sh_degree: state.active_sh_degree,
        antialiased: config.pipeline.antialiasing,
        tight_tile_bounds: config.pipeline.tight_tile_bounds,
    };
    for mut settings in &mut clouds {
        if *settings != wanted {
            *settings = wanted;
        }
    }
}
