//! The render-world half of the plugin: GPU copies of [`Splats`] assets, the clouds and views
//! extracted each frame, and the two systems that draw them with `gpu::raster::view`:
//!
//! - [`prepare_splat_views`] (`Render` schedule, `RenderSystems::PrepareResources`): for each 3D
//!   camera, projects all the clouds it sees into one list, sorts and bins it (its own GPU
//!   submission, which runs before the frame's rendering);
//! - [`draw_splats`] (`Core3d` schedule, after tonemapping): rasterizes that list with a
//!   per-pixel depth test against the camera's depth buffer and composites it over the scene.

use std::any::TypeId;

use bevy::camera::CompositingSpace;
use bevy::camera::visibility::VisibleEntities;
use bevy::ecs::system::SystemParamItem;
use bevy::ecs::system::lifetimeless::SRes;
use bevy::platform::collections::{HashMap, HashSet};
use bevy::prelude::*;
use bevy::render::Extract;
use bevy::render::camera::ExtractedCamera;
use bevy::render::render_asset::{PrepareAssetError, RenderAsset, RenderAssets};
use bevy::render::render_resource::TextureUsages;
use bevy::render::renderer::{
    RenderAdapterInfo, RenderContext, RenderDevice, RenderQueue, ViewQuery,
};
use bevy::render::sync_world::RenderEntity;
use bevy::render::view::{ExtractedView, Msaa, RetainedViewEntity, ViewDepthTexture, ViewTarget};
use glam::DAffine3;

use super::asset::Splats;
use super::cloud::{LiveSplatCloud, SplatCloud, SplatCloudSettings, SplatViewSettings};
use super::coords::{depth_mapping, pinhole_from_clip};
use crate::gpu::GpuContext;
use crate::gpu::raster::view::{
    CloudDrawSettings, CompositeTarget, DepthMapping, SceneDepth, SceneEncoding, SplatRenderer,
    SplatViewFrame, ViewCloud,
};
use crate::model::{GaussianCloud, ParamGroup};

/// Bevy's render device and queue as splatforge's [`GpuContext`] (render world).
#[derive(Resource, Clone, Deref)]
pub struct RenderGpu(pub GpuContext);

/// The splat renderer's pipelines and per-view state (render world).
#[derive(Resource)]
pub struct SplatRenderState {
    pub renderer: SplatRenderer,
    views: HashMap<RetainedViewEntity, PreparedView>,
}

struct PreparedView {
    frame: SplatViewFrame,
    /// Whether this frame's `prepare` succeeded (else the view is drawn without splats).
    ready: bool,
}

/// Creates the render-world resources once Bevy's device exists (and again after device loss).
pub fn init_splat_renderer(
    mut commands: Commands,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    adapter: Res<RenderAdapterInfo>,
) {
    let gpu = GpuContext::from_parts(
        device.wgpu_device().clone(),
        (**queue.0).clone(),
        (*adapter.0).clone(),
    );
    commands.insert_resource(SplatRenderState {
        renderer: SplatRenderer::new(&gpu),
        views: HashMap::default(),
    });
    commands.insert_resource(RenderGpu(gpu));
}

/// The GPU copy of a [`Splats`] asset.
pub struct GpuSplats {
    pub cloud: GaussianCloud,
}

impl RenderAsset for GpuSplats {
    type SourceAsset = Splats;
    type Param = SRes<RenderGpu>;

    fn byte_len(source: &Splats) -> Option<usize> {
        let g = &source.gaussians;
        Some(
            ParamGroup::ALL
                .iter()
                .map(|group| g.group(*group).len() * 4)
                .sum(),
        )
    }

    fn prepare_asset(
        source: Splats,
        _id: AssetId<Splats>,
        gpu: &mut SystemParamItem<Self::Param>,
        _previous: Option<&Self>,
    ) -> Result<Self, PrepareAssetError<Splats>> {
        let gaussians = &source.gaussians;
        let max = gpu.max_binding_bytes().min(gpu.limits.max_buffer_size);
        let largest = ParamGroup::ALL
            .iter()
            .map(|group| gaussians.group(*group).len() as u64 * 4)
            .max()
            .unwrap_or(0);
        let len = gaussians.len() as u32;
        if largest > max {
            // Drawn as an empty cloud: the game keeps running.
            error!(
                "splatforge: a cloud of {len} Gaussians (SH degree {}) needs {largest} bytes in \
                 one GPU buffer, more than this GPU allows ({max}); it is not drawn",
                gaussians.sh_degree
            );
            return Ok(Self {
                cloud: GaussianCloud::from_gaussians(
                    gpu,
                    &crate::model::Gaussians::empty(gaussians.sh_degree),
                    0,
                ),
            });
        }
        Ok(Self {
            cloud: GaussianCloud::from_gaussians(gpu, gaussians, len),
        })
    }
}

/// The clouds of this frame, by main-world entity.
#[derive(Resource, Default)]
pub struct ExtractedSplatClouds(HashMap<Entity, ExtractedSplatCloud>);

struct ExtractedSplatCloud {
    source: CloudSource,
    world_from_local: DAffine3,
    settings: CloudDrawSettings,
}

enum CloudSource {
    Asset(AssetId<Splats>),
    Live(GaussianCloud),
}

/// On a 3D camera's render entity: the clouds it sees this frame (main-world entities, from
/// Bevy's visibility: hidden, other render layers and outside the frustum are left out) and
/// its settings.
#[derive(Component)]
pub struct ExtractedSplatView {
    clouds: Vec<Entity>,
    near_plane: f32,
}

/// Entities drawn as clouds.
type CloudFilter = Or<(With<SplatCloud>, With<LiveSplatCloud>)>;

type CameraQuery = (
    RenderEntity,
    &'static Camera,
    &'static VisibleEntities,
    Option<&'static SplatViewSettings>,
);

type CloudQuery = (
    Entity,
    Option<&'static SplatCloud>,
    Option<&'static LiveSplatCloud>,
    &'static GlobalTransform,
    &'static SplatCloudSettings,
    &'static ViewVisibility,
);

pub fn extract_splats(
    mut commands: Commands,
    mut extracted: ResMut<ExtractedSplatClouds>,
    clouds: Extract<Query<CloudQuery, CloudFilter>>,
    cameras: Extract<Query<CameraQuery, With<Camera3d>>>,
) {
    extracted.0.clear();
    for (entity, asset, live, transform, settings, visibility) in &clouds {
        if !visibility.get() {
            continue;
        }
        let source = match (live, asset) {
            (Some(live), _) => CloudSource::Live(live.0.clone()),
            (None, Some(asset)) => CloudSource::Asset(asset.id()),
            (None, None) => continue,
        };
        extracted.0.insert(
            entity,
            ExtractedSplatCloud {
                source,
                world_from_local: DAffine3::from_mat4(transform.to_matrix().as_dmat4()),
                settings: (*settings).into(),
            },
        );
    }
    for (render_entity, camera, visible, settings) in &cameras {
        if !camera.is_active {
            commands
                .entity(render_entity)
                .remove::<ExtractedSplatView>();
            continue;
        }
        let clouds = visible
            .get(TypeId::of::<SplatCloud>())
            .iter()
            .copied()
            .filter(|entity| extracted.0.contains_key(entity))
            .collect();
        commands.entity(render_entity).insert(ExtractedSplatView {
            clouds,
            near_plane: settings.copied().unwrap_or_default().near_plane,
        });
    }
}

/// The draw pass reads the camera's depth buffer: ask Bevy to create it bindable (render
/// world only; the main world's camera is untouched).
pub fn request_bindable_depth(mut cameras: Query<&mut Camera3d, With<ExtractedSplatView>>) {
    for mut camera in &mut cameras {
        let usages = TextureUsages::from(camera.depth_texture_usages);
        if !usages.contains(TextureUsages::TEXTURE_BINDING) {
            camera.depth_texture_usages = (usages | TextureUsages::TEXTURE_BINDING).into();
        }
    }
}

pub fn prepare_splat_views(
    gpu: Res<RenderGpu>,
    mut state: ResMut<SplatRenderState>,
    clouds: Res<ExtractedSplatClouds>,
    assets: Res<RenderAssets<GpuSplats>>,
    views: Query<(&ExtractedView, &ExtractedSplatView)>,
) {
    let SplatRenderState {
        renderer,
        views: prepared,
    } = &mut *state;
    let mut seen = HashSet::new();
    for (view, splat_view) in &views {
        let view_clouds: Vec<ViewCloud> = splat_view
            .clouds
            .iter()
            .filter_map(|entity| clouds.0.get(entity))
            .filter_map(|cloud| {
                let gpu_cloud = match &cloud.source {
                    CloudSource::Asset(id) => &assets.get(*id)?.cloud,
                    CloudSource::Live(live) => live,
                };
                Some(ViewCloud {
                    cloud: gpu_cloud,
                    world_from_local: cloud.world_from_local,
                    settings: cloud.settings,
                })
            })
            .collect();
        if view_clouds.is_empty() {
            continue;
        }
        let size = view.viewport.zw();
        let Some(camera) =
            pinhole_from_clip(view.clip_from_view, &view.world_from_view, size.x, size.y)
        else {
            warn_once!(
                "splatforge: a camera with a non-pinhole projection (orthographic?) sees splat \
                 clouds; they are only drawn by perspective cameras"
            );
            continue;
        };
        seen.insert(view.retained_view_entity);
        let entry = prepared
            .entry(view.retained_view_entity)
            .or_insert_with(|| PreparedView {
                frame: SplatViewFrame::new(&gpu),
                ready: false,
            });
        let result = renderer.prepare(
            &gpu,
            &camera,
            splat_view.near_plane,
            &view_clouds,
            &mut entry.frame,
            None,
        );
        entry.ready = match result {
            Ok(()) => true,
            Err(error) => {
                error_once!("splatforge: splat clouds not drawn: {error}");
                false
            }
        };
    }
    // Views that drew no splats this frame give their buffers back.
    prepared.retain(|view, _| seen.contains(view));
}

pub fn draw_splats(
    view: ViewQuery<(
        &ExtractedView,
        &ExtractedCamera,
        &ViewTarget,
        &ViewDepthTexture,
        &Msaa,
    )>,
    gpu: Res<RenderGpu>,
    mut state: ResMut<SplatRenderState>,
    mut ctx: RenderContext,
) {
    let (extracted, camera, target, depth, msaa) = view.into_inner();
    let SplatRenderState { renderer, views } = &mut *state;
    let Some(prepared) = views
        .get(&extracted.retained_view_entity)
        .filter(|p| p.ready)
    else {
        return;
    };
    let encoding = match camera.compositing_space {
        Some(CompositingSpace::Srgb) if !camera.hdr => SceneEncoding::Srgb,
        Some(CompositingSpace::Oklab) => {
            warn_once!(
                "splatforge: splat clouds are not drawn by cameras with CompositingSpace::Oklab; \
                 use the default (linear) or Srgb compositing space"
            );
            return;
        }
        _ => SceneEncoding::Linear,
    };
    let (numerator, offset) = depth_mapping(extracted.clip_from_view);
    let origin = [extracted.viewport.x, extracted.viewport.y];
    let scene_depth = SceneDepth {
        view: depth.view(),
        multisampled: msaa.samples() > 1,
        mapping: DepthMapping { numerator, offset },
        origin,
    };
    let encoder = ctx.command_encoder();
    renderer.encode_rasterize(&gpu, encoder, &prepared.frame, Some(&scene_depth));
    let post_process = target.post_process_write();
    renderer.encode_composite(
        &gpu,
        encoder,
        &prepared.frame,
        post_process.source,
        encoding,
        CompositeTarget {
            texture: post_process.destination_texture,
            view: post_process.destination,
        },
        origin,
    );
}
