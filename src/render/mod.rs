//! The game plugin: trained splat clouds as Bevy assets, drawn in any Bevy 3D scene together
//! with its meshes, exactly as the trainer renders them (ARCHITECTURE.md, "Drawing splats in
//! Bevy").
//!
//! ```text
//! app.add_plugins((DefaultPlugins, SplatPlugin));
//! // in a startup system:
//! commands.spawn((
//!     SplatCloud(asset_server.load("garden.ply")),
//!     coords::opencv_scene_transform(),
//! ));
//! ```
//!
//! - [`asset`]: the [`Splats`] asset and its `.ply` loader;
//! - [`cloud`]: the components ([`SplatCloud`], [`LiveSplatCloud`], settings);
//! - [`coords`]: OpenCV/COLMAP axes to Bevy's, upright placement, dataset cameras as Bevy
//!   cameras;
//! - [`offscreen`]: render targets that can be read back (tests, screenshots);
//! - [`render_world`]: extraction, the GPU asset, and the prepare and draw systems.

pub mod asset;
pub mod cloud;
pub mod controls;
pub mod coords;
#[cfg(feature = "train")]
pub mod live;
pub mod offscreen;
pub mod render_world;

use bevy::camera::visibility::VisibilitySystems;
use bevy::camera::{CameraMainTextureUsages, Hdr};
use bevy::core_pipeline::Core3dSystems;
use bevy::core_pipeline::schedule::Core3d;
use bevy::core_pipeline::tonemapping::tonemapping;
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssetPlugin;
use bevy::render::{ExtractSchedule, Render, RenderApp, RenderStartup, RenderSystems};

pub use asset::{Splats, SplatsLoadError, SplatsLoader};
pub use cloud::{LiveSplatCloud, SplatCloud, SplatCloudSettings, SplatViewSettings};
pub use coords::{PinholeProjection, bevy_camera, opencv_scene_transform, upright_transform};
#[cfg(feature = "train")]
pub use live::TrainerSplatCloud;

use render_world::{
    ExtractedSplatClouds, GpuSplats, draw_splats, extract_splats, init_splat_renderer,
    prepare_splat_views, request_bindable_depth,
};

/// Main-world systems of the plugin, for ordering your own around them.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SplatSystems {
    /// Gives each [`SplatCloud`] its asset's bounds (in `PostUpdate`, inside Bevy's
    /// `VisibilitySystems::CalculateBounds`).
    UpdateBounds,
    /// Points trainer-backed clouds at the trainer's current buffers (`PostUpdate`).
    FollowTrainer,
    /// Lets HDR 3D cameras' main textures take storage writes (`PostUpdate`), so the splats
    /// are composited by a compute pass ([`storage_for_hdr_cameras`]).
    CameraTargets,
}

/// Render-world systems of the plugin.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SplatRenderSystems {
    /// `ExtractSchedule`: clouds and each 3D camera's visible clouds.
    Extract,
    /// `Render`, in `RenderSystems::PrepareResources`: projection, sorting and binning per view.
    Prepare,
    /// `Core3d`, after tonemapping: rasterization with the depth test, and the composite.
    Draw,
}

/// Loads `.ply` files as [`Splats`] and draws every [`SplatCloud`] and [`LiveSplatCloud`] in
/// every 3D camera. Needs Bevy's render and core pipeline plugins (`DefaultPlugins`).
pub struct SplatPlugin;

impl Plugin for SplatPlugin {
    fn build(&self, app: &mut App) {
        app.init_asset::<Splats>()
            .init_asset_loader::<SplatsLoader>()
            .register_type::<SplatCloud>()
            .register_type::<SplatCloudSettings>()
            .register_type::<SplatViewSettings>()
            .add_plugins(RenderAssetPlugin::<GpuSplats>::default())
            .add_systems(
                PostUpdate,
                (
                    cloud::update_splat_bounds
                        .in_set(SplatSystems::UpdateBounds)
                        .in_set(VisibilitySystems::CalculateBounds),
                    storage_for_hdr_cameras.in_set(SplatSystems::CameraTargets),
                ),
            );
        #[cfg(feature = "train")]
        app.add_systems(
            PostUpdate,
            live::follow_trainer
                .in_set(SplatSystems::FollowTrainer)
                .before(VisibilitySystems::CheckVisibility),
        );

        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .init_resource::<ExtractedSplatClouds>()
            .add_systems(RenderStartup, init_splat_renderer)
            .add_systems(
                ExtractSchedule,
                extract_splats.in_set(SplatRenderSystems::Extract),
            )
            .add_systems(
                Render,
                (
                    request_bindable_depth.in_set(RenderSystems::PrepareViews),
                    prepare_splat_views
                        .in_set(SplatRenderSystems::Prepare)
                        .in_set(RenderSystems::PrepareResources),
                ),
            )
            .add_systems(
                Core3d,
                draw_splats
                    .in_set(SplatRenderSystems::Draw)
                    .after(tonemapping)
                    .in_set(Core3dSystems::PostProcess),
            );
    }
}

/// 3D cameras with [`Hdr`] that just got it or whose main texture usages changed.
type HdrCameraChanged = (
    With<Camera3d>,
    With<Hdr>,
    Or<(Added<Hdr>, Changed<CameraMainTextureUsages>)>,
);

/// Adds `STORAGE_BINDING` to the main texture usages of 3D cameras with [`Hdr`]
/// (`Rgba16Float` textures, which allow it), so the composite over the scene runs as a compute
/// pass. Either pass gives the same pixels; the compute one is much faster on GPUs with little
/// pixel-shading hardware (data-centre GPUs: `gpu::raster::composite`). Cameras without HDR
/// (`Rgba8UnormSrgb`, which cannot be a storage texture) keep the full-screen fragment pass.
pub fn storage_for_hdr_cameras(mut cameras: Query<&mut CameraMainTextureUsages, HdrCameraChanged>) {
    use bevy::render::render_resource::TextureUsages;
    for mut usages in &mut cameras {
        if !usages.0.contains(TextureUsages::STORAGE_BINDING) {
            usages.0 |= TextureUsages::STORAGE_BINDING;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bevy::render::render_resource::TextureUsages;

    #[test]
    fn hdr_cameras_get_main_textures_the_compute_composite_can_write() {
        let mut app = App::new();
        app.add_systems(Update, storage_for_hdr_cameras);
        let hdr = app.world_mut().spawn((Camera3d::default(), Hdr)).id();
        let ldr = app.world_mut().spawn(Camera3d::default()).id();
        app.update();
        let usages = |app: &App, camera| {
            app.world()
                .get::<CameraMainTextureUsages>(camera)
                .unwrap()
                .0
        };
        assert!(usages(&app, hdr).contains(TextureUsages::STORAGE_BINDING));
        assert!(usages(&app, hdr).contains(TextureUsages::RENDER_ATTACHMENT));
        // Rgba8UnormSrgb main textures cannot be storage textures: left as they are.
        assert!(!usages(&app, ldr).contains(TextureUsages::STORAGE_BINDING));
        // A camera that gets HDR later gets the usage too.
        app.world_mut().entity_mut(ldr).insert(Hdr);
        app.update();
        assert!(usages(&app, ldr).contains(TextureUsages::STORAGE_BINDING));
    }
}
