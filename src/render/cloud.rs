//! The components a game puts on entities: [`SplatCloud`] (a loaded `.ply`), [`LiveSplatCloud`]
//! (GPU buffers someone else updates, e.g. the trainer's), per-cloud [`SplatCloudSettings`] and
//! per-camera [`SplatViewSettings`].
//!
//! Clouds behave like meshes: `Transform`/`GlobalTransform` place them, `Visibility` and
//! `RenderLayers` hide them, Bevy's frustum culling skips them (the bounds come from the asset).
//! Every 3D camera draws every cloud it sees; no marker component is needed on cameras.

use bevy::camera::primitives::Aabb;
use bevy::camera::visibility::{self, VisibilityClass};
use bevy::prelude::*;

use super::asset::Splats;
use crate::gpu::raster::view::CloudDrawSettings;
use crate::model::GaussianCloud;
use crate::sh::MAX_SH_DEGREE;

/// A trained splat cloud in the scene, from a [`Splats`] asset:
/// `commands.spawn((SplatCloud(asset_server.load("scene.ply")), Transform::from_xyz(..)))`.
#[derive(Component, Clone, Debug, Default, Deref, DerefMut, PartialEq, Eq, Reflect)]
#[reflect(Component, Default, Clone, PartialEq)]
#[require(Transform, Visibility, VisibilityClass, SplatCloudSettings)]
#[component(on_add = visibility::add_visibility_class::<SplatCloud>)]
pub struct SplatCloud(pub Handle<Splats>);

/// A splat cloud drawn straight from GPU buffers that something else owns and updates, such as
/// the trainer's `TrainGpuState::cloud`: no copy through the CPU. Replace the component's value
/// when the buffers change (densification reallocates them); the renderer binds whatever
/// buffers the component holds in each frame. It has no bounds, so it is never frustum-culled.
#[derive(Component, Clone)]
#[require(Transform, Visibility, VisibilityClass, SplatCloudSettings)]
#[component(on_add = visibility::add_visibility_class::<SplatCloud>)]
pub struct LiveSplatCloud(pub GaussianCloud);

/// How a cloud is drawn.
#[derive(Component, Clone, Copy, Debug, PartialEq, Reflect)]
#[reflect(Component, Default, Clone, PartialEq)]
pub struct SplatCloudSettings {
    /// Multiplies every Gaussian's opacity (1: as trained; 0: invisible).
    pub opacity: f32,
    /// Highest SH band evaluated (0: view-independent colour; 3: all of a standard cloud).
    pub max_sh_degree: u32,
    /// The cloud was trained in gsplat's antialiased mode (`pipeline.antialiasing`): its
    /// opacities are compensated as training did.
    pub antialiased: bool,
    /// gsplat's opacity-aware tile bounds: fewer tile intersections, nearly the same image.
    pub tight_tile_bounds: bool,
}

impl Default for SplatCloudSettings {
    fn default() -> Self {
        Self {
            opacity: 1.0,
            max_sh_degree: MAX_SH_DEGREE,
            antialiased: false,
            tight_tile_bounds: false,
        }
    }
}

impl From<SplatCloudSettings> for CloudDrawSettings {
    fn from(s: SplatCloudSettings) -> Self {
        CloudDrawSettings {
            opacity: s.opacity,
            max_sh_degree: s.max_sh_degree,
            antialiased: s.antialiased,
            tight_tile_bounds: s.tight_tile_bounds,
        }
    }
}

/// Optional per-camera settings of the splat renderer.
#[derive(Component, Clone, Copy, Debug, PartialEq, Reflect)]
#[reflect(Component, Default, Clone, PartialEq)]
pub struct SplatViewSettings {
    /// Gaussians whose camera-space depth is at or below this are not drawn. The default is the
    /// trainer's (0.2, as inria), so a dataset camera sees exactly what training saw; lower it
    /// for cameras that go very close to a cloud.
    pub near_plane: f32,
}

impl Default for SplatViewSettings {
    fn default() -> Self {
        Self {
            near_plane: crate::RenderSettings::default().near_plane,
        }
    }
}

/// Gives each [`SplatCloud`] the [`Aabb`] of its asset (for frustum culling), when the entity
/// gets its handle and when the asset (re)loads.
pub fn update_splat_bounds(
    mut commands: Commands,
    mut events: MessageReader<AssetEvent<Splats>>,
    splats: Res<Assets<Splats>>,
    clouds: Query<(Entity, Ref<SplatCloud>, Has<Aabb>)>,
) {
    let reloaded: Vec<AssetId<Splats>> = events
        .read()
        .filter_map(|event| match event {
            AssetEvent::Added { id } | AssetEvent::Modified { id } => Some(*id),
            _ => None,
        })
        .collect();
    for (entity, cloud, has_bounds) in &clouds {
        let stale = !has_bounds || cloud.is_changed() || reloaded.contains(&cloud.id());
        if !stale {
            continue;
        }
        if let Some(asset) = splats.get(&cloud.0) {
            commands.entity(entity).insert(asset.bounds);
        }
    }
}
