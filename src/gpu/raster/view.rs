//! Drawing clouds into a game's view: the trainer's rasterizer with every cloud of the view in
//! one splat list and a depth test against the scene (ARCHITECTURE.md, "Drawing splats in
//! Bevy"). This is the GPU side of the game plugin, in plain wgpu; `crate::render` drives it
//! from Bevy.
//!
//! ```text
//! prepare (its own submission, before the scene is drawn):
//!   project_view per cloud ─ depth sort ─ scan ─╳─ emit keys ─ tile sort ─ tile ranges
//!   (one list: all clouds)  (one sort)        count: read back on the first render of a
//!                                              shape, then deferred (Rasterizer::set_deferred_counts)
//! draw (into the caller's encoder, after the scene's opaque pass):
//!   rasterize_view (per-pixel depth test) ─ composite over the scene in display space
//! ```
//!
//! Kernels: `shaders/project_view.wgsl` (the trainer's `project_gaussian`, written at each
//! cloud's offset in the list), the trainer's binning (`bin.wgsl`, `gpu::sort`, `gpu::scan`),
//! `shaders/rasterize_view.wgsl` (the trainer's tile loop plus the depth test) and
//! `shaders/composite_splats.wgsl` (a full-screen pass, or a compute pass: `composite.rs`).
//!
//! Usage: one [`SplatRenderer`] per device, one [`SplatViewFrame`] per view (camera), reused
//! across frames: [`SplatRenderer::prepare`], then [`SplatRenderer::encode_rasterize`] and
//! [`SplatRenderer::encode_composite`].

use bytemuck::{Pod, Zeroable};
use glam::{DAffine3, DMat3};

use super::composite::{CompositeInputs, CompositeUniforms, Compositor};
pub use super::composite::{CompositePass, CompositeTarget, SceneEncoding};
use super::frame::ListExtras;
use super::kernels::{dispatch_elements, dispatch_tiles};
use super::uniforms::RenderUniforms;
use super::{
    CountMode, RasterError, RasterFrame, Rasterizer, mark, new_encoder, param_bindings,
    projection_output_bindings, submit_and_read_count,
};
use crate::camera::Camera;
use crate::gpu::timing::StageTimer;
use crate::gpu::{self, CachedBindGroup, GpuContext, Recorder, ShaderDefs};

/// Bits of the view's depth keys (project_view.wgsl): the float depth's bits 7-30, so three
/// radix passes instead of the trainer's four. Splats whose depths agree to 1 part in 65,536
/// keep their list order (the sort is stable) instead of being ordered by depth.
const VIEW_DEPTH_KEY_BITS: u32 = 24;
use crate::model::GaussianCloud;
use crate::render_settings::RenderSettings;
use crate::sh::MAX_SH_DEGREE;

/// How one cloud is drawn (the game plugin's `SplatCloudSettings`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloudDrawSettings {
    /// Multiplies every Gaussian's opacity (1: as trained).
    pub opacity: f32,
    /// Highest SH band evaluated (bands above the cloud's own degree do not exist).
    pub max_sh_degree: u32,
    /// The cloud was trained in gsplat's antialiased mode (opacity compensation).
    pub antialiased: bool,
    /// gsplat's opacity-aware tile bounds (fewer tile intersections, nearly the same image).
    pub tight_tile_bounds: bool,
}

impl Default for CloudDrawSettings {
    fn default() -> Self {
        Self {
            opacity: 1.0,
            max_sh_degree: MAX_SH_DEGREE,
            antialiased: false,
            tight_tile_bounds: false,
        }
    }
}

/// One cloud of a view: its GPU buffers and where it is in the world.
#[derive(Clone, Copy)]
pub struct ViewCloud<'a> {
    pub cloud: &'a GaussianCloud,
    /// world = `world_from_local` * local. Any invertible affine map draws the right geometry;
    /// view-dependent colour is evaluated for the view direction in the cloud's own frame,
    /// which is exact for rotations, translations and uniform scales.
    pub world_from_local: DAffine3,
    pub settings: CloudDrawSettings,
}

/// The camera of a view for [`SplatRenderer::prepare`]: a pinhole `Camera` (OpenCV axes,
/// pixel centres at +0.5). Its `rotation` may carry a uniform scale (a Bevy camera whose
/// transform scales), which scales camera-space depths like the scene's.
pub type ViewCamera = Camera;

/// How to turn the values of the scene's depth texture into camera-space depth:
/// `z = numerator / (d + offset)`, infinitely far where `d + offset <= 0`. Bevy's infinite
/// reverse-Z perspective projection has `numerator = near`, `offset = 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthMapping {
    pub numerator: f32,
    pub offset: f32,
}

/// The scene's depth buffer, for the per-pixel depth test.
pub struct SceneDepth<'a> {
    /// A `Depth32Float` texture view (multisampled or not).
    pub view: &'a wgpu::TextureView,
    pub multisampled: bool,
    pub mapping: DepthMapping,
    /// The view's pixel (0, 0) in the texture (the camera's viewport origin).
    pub origin: [u32; 2],
}

/// `ViewDepth` in rasterize_view.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct DepthUniforms {
    numerator: f32,
    offset: f32,
    enabled: u32,
    _padding: u32,
    origin: [u32; 2],
    _padding1: [u32; 2],
}

/// `ViewCloud` in project_view.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct CloudUniforms {
    base: u32,
    opacity_scale: f32,
    _padding: [u32; 2],
}

/// The per-view state: the splat list and its binning (a forward-only [`RasterFrame`]), the
/// splat depths, and the rasterized image (premultiplied colour and transmittance per pixel).
/// Buffers only grow.
pub struct SplatViewFrame {
    raster: RasterFrame,
    splat_depths: wgpu::Buffer,
    depth_capacity: u32,
    /// `vec4<f32>` per pixel: (premultiplied rgb, final transmittance), row-major.
    image: wgpu::Buffer,
    pixel_capacity: u32,
    depth_uniforms: wgpu::Buffer,
    composite_uniforms: wgpu::Buffer,
    clouds: Vec<CloudSlot>,
}

/// The uniforms and cached projection bind group of the k-th cloud of a view.
struct CloudSlot {
    render: wgpu::Buffer,
    placement: wgpu::Buffer,
    bind: CachedBindGroup,
}

impl SplatViewFrame {
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            raster: RasterFrame::new_forward_only(ctx),
            splat_depths: gpu::storage_buffer(ctx, "splat_view.splat_depths", 16),
            depth_capacity: 0,
            image: gpu::storage_buffer(ctx, "splat_view.image", 16),
            pixel_capacity: 0,
            depth_uniforms: gpu::uniform_buffer_from(
                ctx,
                "splat_view.depth",
                &DepthUniforms::default(),
            ),
            composite_uniforms: gpu::uniform_buffer_from(
                ctx,
                "splat_view.composite",
                &CompositeUniforms::default(),
            ),
            clouds: Vec::new(),
        }
    }

    /// Width and height of the last prepared view.
    pub fn size(&self) -> [u32; 2] {
        [self.raster.width, self.raster.height]
    }

    /// Gaussians in the last prepared list (all clouds).
    pub fn num_gaussians(&self) -> u32 {
        self.raster.num_gaussians
    }

    /// Tile intersections of the last prepared list (exact renders only; deferred renders
    /// report 0 here and their count reaches [`SplatViewFrame::max_seen_intersections`]).
    pub fn num_intersections(&self) -> u32 {
        self.raster.num_intersections
    }

    /// The largest intersection count seen by this view.
    pub fn max_seen_intersections(&self) -> u32 {
        self.raster.max_seen_intersections
    }

    /// Renders whose intersection list overflowed (their farthest splats were dropped).
    pub fn intersection_overflows(&self) -> u32 {
        self.raster.intersection_overflows
    }

    /// Downloads the rasterized image: (premultiplied rgb, transmittance) per pixel,
    /// row-major (blocking; for tests and tools).
    pub fn read_image(&self, ctx: &GpuContext) -> Vec<[f32; 4]> {
        let [w, h] = self.size();
        gpu::read_buffer(ctx, &self.image, (w * h) as usize)
    }

    /// Bytes of GPU memory held by this view.
    pub fn bytes(&self) -> u64 {
        self.raster.bytes() + self.splat_depths.size() + self.image.size()
    }

    fn prepare_buffers(&mut self, ctx: &GpuContext, splats: u32) -> Result<(), RasterError> {
        if splats > self.depth_capacity {
            let bytes = u64::from(splats) * 4;
            check_binding(ctx, "the splat depths", bytes)?;
            self.splat_depths = gpu::storage_buffer(ctx, "splat_view.splat_depths", bytes);
            self.depth_capacity = splats;
        }
        let pixels = self.raster.width * self.raster.height;
        if pixels > self.pixel_capacity {
            let bytes = u64::from(pixels) * 16;
            check_binding(ctx, "the view image", bytes)?;
            self.image = gpu::storage_buffer(ctx, "splat_view.image", bytes);
            self.pixel_capacity = pixels;
        }
        Ok(())
    }
}

fn check_binding(ctx: &GpuContext, what: &'static str, bytes: u64) -> Result<(), RasterError> {
    let max = ctx.max_binding_bytes().min(ctx.limits.max_buffer_size);
    if bytes > max {
        return Err(RasterError::TooLarge { what, bytes, max });
    }
    Ok(())
}

/// The game plugin's renderer: the trainer's binning (a [`Rasterizer`] with deferred counts)
/// plus the view kernels and the composite pipelines.
pub struct SplatRenderer {
    rasterizer: Rasterizer,
    defs: ShaderDefs,
    project_view: wgpu::ComputePipeline,
    rasterize_view: wgpu::ComputePipeline,
    /// Compiled on first use (MSAA depth).
    rasterize_view_multisampled: Option<wgpu::ComputePipeline>,
    compositor: Compositor,
    /// Bound in place of the scene's depth when there is none.
    no_depth: wgpu::TextureView,
}

impl SplatRenderer {
    pub fn new(ctx: &GpuContext) -> Self {
        let mut rasterizer = Rasterizer::new(ctx);
        // A view is redrawn every frame: read the intersection count back only on the first
        // render of each shape (and after an overflow), as training does.
        rasterizer.set_deferred_counts(true);
        let defs = ShaderDefs::for_capabilities(&ctx.capabilities);
        let compute = |file: &str, entry: &str, defs: &ShaderDefs| {
            gpu::compute_pipeline(ctx, file, entry, defs, &[])
        };
        let no_depth = ctx
            .device
            .create_texture(&wgpu::TextureDescriptor {
                label: Some("splat_view.no_depth"),
                size: wgpu::Extent3d {
                    width: 1,
                    height: 1,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Depth32Float,
                usage: wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            })
            .create_view(&wgpu::TextureViewDescriptor::default());
        Self {
            rasterizer,
            project_view: compute("project_view.wgsl", "project_view", &defs),
            rasterize_view: compute("rasterize_view.wgsl", "rasterize_view", &defs),
            rasterize_view_multisampled: None,
            compositor: Compositor::new(ctx, defs.clone()),
            defs,
            no_depth,
        }
    }

    /// Projects every cloud into `frame`'s list, sorts it and bins it by tile for `camera`
    /// (the view's size is the camera's). Submits its own GPU work: it does not depend on the
    /// scene, so it can run before the scene is drawn. Blocks once (to read the intersection
    /// count back) on the first render of a given list size and view size and after an
    /// overflow; later renders of that shape do not wait.
    ///
    /// With a `timer`, marks "project", "depth sort", "scan", binning's stages (see
    /// [`Rasterizer::forward`]); the caller resets and resolves the timer.
    pub fn prepare(
        &mut self,
        ctx: &GpuContext,
        camera: &ViewCamera,
        near_plane: f32,
        clouds: &[ViewCloud],
        frame: &mut SplatViewFrame,
        mut timer: Option<&mut StageTimer>,
    ) -> Result<(), RasterError> {
        validate(camera, near_plane, clouds)?;
        let total = clouds
            .iter()
            .try_fold(0u32, |sum, c| sum.checked_add(c.cloud.len));
        let total = total.ok_or(RasterError::TooLarge {
            what: "the splat list of this view",
            bytes: clouds.iter().map(|c| u64::from(c.cloud.len) * 48).sum(),
            max: u64::from(u32::MAX),
        })?;
        let raster = &mut frame.raster;
        // Pick up the counts of earlier deferred renders (never waits).
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        raster.collect_deferred_counts();
        raster.prepare(ctx, total, camera.width, camera.height)?;
        frame.prepare_buffers(ctx, total)?;
        let raster = &mut frame.raster;
        let deferred_capacity = (total > 0 && raster.can_defer(total, camera.width, camera.height))
            .then(|| raster.deferred_capacity(ctx, ListExtras::NONE))
            .flatten();
        let deferred = deferred_capacity.is_some();
        let view_settings = RenderSettings {
            near_plane,
            ..RenderSettings::default()
        };
        let mut uniforms = RenderUniforms::new(camera, &view_settings, total, 0);
        if let Some(capacity) = deferred_capacity {
            // A forward-only render: no backward checkpoints, no pieces.
            raster.prepare_intersections(ctx, capacity, ListExtras::NONE)?;
            raster.num_intersections = 0;
            uniforms.intersection_capacity = raster.intersection_capacity();
        }
        raster.write_uniforms(ctx, uniforms);

        let mut encoder = new_encoder(ctx, "splat view: prepare");
        {
            let rec = &mut Recorder::new(&mut encoder);
            mark(&mut timer, rec, "begin");
            if total > 0 {
                self.encode_projections(ctx, rec, camera, near_plane, clouds, frame);
                mark(&mut timer, rec, "project");
                let raster = &frame.raster;
                self.rasterizer
                    .encode_depth_sort_bits(ctx, rec, raster, VIEW_DEPTH_KEY_BITS);
                mark(&mut timer, rec, "depth sort");
                self.rasterizer.scan.record(
                    ctx,
                    rec,
                    &raster.depth_order_counts,
                    &raster.offsets,
                    total,
                );
                mark(&mut timer, rec, "scan");
            }
            let raster = &mut frame.raster;
            if deferred {
                self.rasterizer.encode_binning(
                    ctx,
                    rec,
                    raster,
                    CountMode::Deferred,
                    timer.as_deref_mut(),
                );
                raster.encode_deferred_count_copy(ctx, rec.encoder());
            } else {
                let count = if total == 0 {
                    0
                } else {
                    submit_and_read_count(ctx, rec, raster, &mut timer, "splat view: binning")
                };
                raster.prepare_intersections(ctx, count, ListExtras::NONE)?;
                raster.record_exact_count(count);
                self.rasterizer
                    .encode_binning(ctx, rec, raster, CountMode::Exact, timer);
            }
        }
        ctx.queue.submit([encoder.finish()]);
        if deferred {
            frame.raster.map_deferred_counts();
        }
        Ok(())
    }

    /// One `project_view` dispatch per cloud, each writing its own range of the list.
    fn encode_projections(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        camera: &ViewCamera,
        near_plane: f32,
        clouds: &[ViewCloud],
        frame: &mut SplatViewFrame,
    ) {
        let camera_from_world = DAffine3 {
            matrix3: camera.rotation,
            translation: camera.translation,
        };
        let mut base = 0;
        for (index, view_cloud) in clouds.iter().enumerate() {
            let cloud = view_cloud.cloud;
            if cloud.len == 0 {
                continue;
            }
            let uniforms = cloud_uniforms(camera, camera_from_world, near_plane, view_cloud);
            let placement = CloudUniforms {
                base,
                opacity_scale: view_cloud.settings.opacity,
                _padding: [0; 2],
            };
            while frame.clouds.len() <= index {
                frame.clouds.push(CloudSlot {
                    render: gpu::uniform_buffer_from(
                        ctx,
                        "splat_view.cloud_render",
                        &RenderUniforms::default(),
                    ),
                    placement: gpu::uniform_buffer_from(
                        ctx,
                        "splat_view.cloud_placement",
                        &CloudUniforms::default(),
                    ),
                    bind: CachedBindGroup::default(),
                });
            }
            let raster = &frame.raster;
            let slot = &mut frame.clouds[index];
            ctx.queue
                .write_buffer(&slot.render, 0, bytemuck::bytes_of(&uniforms));
            ctx.queue
                .write_buffer(&slot.placement, 0, bytemuck::bytes_of(&placement));
            let entries = [
                &[(0, &slot.render)][..],
                &param_bindings(1, &cloud.params),
                &projection_output_bindings(raster),
                &[(23, &slot.placement), (24, &frame.splat_depths)],
            ]
            .concat();
            let bind = slot
                .bind
                .get(ctx, "project_view", &self.project_view, &entries);
            dispatch_elements(ctx, rec, &self.project_view, bind, cloud.len);
            base += cloud.len;
        }
    }

    /// Rasterizes the prepared list into `frame`'s image, hiding splats behind the scene's
    /// opaque surfaces (`depth`; `None`: nothing is hidden). Encodes one compute pass.
    pub fn encode_rasterize(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        frame: &SplatViewFrame,
        depth: Option<&SceneDepth>,
    ) {
        let uniforms = match depth {
            Some(depth) => DepthUniforms {
                numerator: depth.mapping.numerator,
                offset: depth.mapping.offset,
                enabled: 1,
                origin: depth.origin,
                ..DepthUniforms::default()
            },
            None => DepthUniforms::default(),
        };
        ctx.queue
            .write_buffer(&frame.depth_uniforms, 0, bytemuck::bytes_of(&uniforms));
        let multisampled = depth.is_some_and(|d| d.multisampled);
        if multisampled && self.rasterize_view_multisampled.is_none() {
            let defs = self.defs.clone().with("MULTISAMPLED_DEPTH");
            self.rasterize_view_multisampled = Some(gpu::compute_pipeline(
                ctx,
                "rasterize_view.wgsl",
                "rasterize_view",
                &defs,
                &[],
            ));
        }
        let pipeline = if multisampled {
            self.rasterize_view_multisampled
                .as_ref()
                .expect("compiled above")
        } else {
            &self.rasterize_view
        };
        let depth_view = depth.map_or(&self.no_depth, |d| d.view);
        let raster = &frame.raster;
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("rasterize_view"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                buffer(0, &raster.uniforms),
                buffer(1, &raster.tile_ranges),
                buffer(2, &raster.intersection_gaussians),
                buffer(3, &raster.splats),
                buffer(9, &frame.depth_uniforms),
                buffer(10, &frame.splat_depths),
                wgpu::BindGroupEntry {
                    binding: 11,
                    resource: wgpu::BindingResource::TextureView(depth_view),
                },
                buffer(12, &frame.image),
            ],
        });
        dispatch_tiles(
            &mut Recorder::new(encoder),
            pipeline,
            &bind,
            raster.tile_grid(),
        );
    }

    /// Composites `frame`'s image over `scene` into `target` (both textures are the size of
    /// the whole render target, the view covers `origin` and its own size; `scene` must not be
    /// multisampled). A compute pass where the target takes storage writes, else a full-screen
    /// render pass (`gpu::raster::composite`); returns which.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_composite(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        frame: &SplatViewFrame,
        scene: &wgpu::TextureView,
        encoding: SceneEncoding,
        target: CompositeTarget,
        origin: [u32; 2],
    ) -> CompositePass {
        let uniforms = CompositeUniforms {
            origin,
            size: frame.size(),
        };
        ctx.queue
            .write_buffer(&frame.composite_uniforms, 0, bytemuck::bytes_of(&uniforms));
        let inputs = CompositeInputs {
            uniforms: &frame.composite_uniforms,
            image: &frame.image,
            scene,
            encoding,
        };
        self.compositor.encode(ctx, encoder, inputs, target)
    }
}

pub(super) fn buffer(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// The uniforms projecting one cloud: the view with the cloud's transform folded in.
fn cloud_uniforms(
    camera: &ViewCamera,
    camera_from_world: DAffine3,
    near_plane: f32,
    view_cloud: &ViewCloud,
) -> RenderUniforms {
    let camera_from_local = camera_from_world * view_cloud.world_from_local;
    let local_camera = Camera {
        rotation: camera_from_local.matrix3,
        translation: camera_from_local.translation,
        ..camera.clone()
    };
    let settings = RenderSettings {
        background: [0.0; 3],
        active_sh_degree: view_cloud.settings.max_sh_degree,
        near_plane,
        antialiased: view_cloud.settings.antialiased,
        tight_tile_bounds: view_cloud.settings.tight_tile_bounds,
    };
    let cloud = view_cloud.cloud;
    let mut uniforms = RenderUniforms::new(&local_camera, &settings, cloud.len, cloud.sh_degree());
    // The camera centre in the cloud's frame: where camera_from_local maps to the origin.
    uniforms.set_camera_centre(camera_from_local.inverse().translation);
    uniforms
}

fn validate(camera: &ViewCamera, near_plane: f32, clouds: &[ViewCloud]) -> Result<(), RasterError> {
    let finite = [camera.fx, camera.fy, camera.cx, camera.cy]
        .iter()
        .all(|v| v.is_finite())
        && camera.rotation.is_finite()
        && camera.translation.is_finite();
    let invertible = |m: DMat3| m.determinant().abs() > 1e-12;
    if !finite
        || camera.fx <= 0.0
        || camera.fy <= 0.0
        || camera.width == 0
        || camera.height == 0
        || !invertible(camera.rotation)
    {
        return Err(RasterError::InvalidCamera);
    }
    if !(near_plane.is_finite() && near_plane >= 0.0) {
        return Err(RasterError::InvalidSettings(format!(
            "the near plane must be finite and not negative, got {near_plane}"
        )));
    }
    for cloud in clouds {
        if cloud.cloud.sh_degree() > MAX_SH_DEGREE {
            return Err(RasterError::ShDegree(cloud.cloud.sh_degree()));
        }
        let placement = cloud.world_from_local;
        if !placement.is_finite() || !invertible(placement.matrix3) {
            return Err(RasterError::InvalidSettings(format!(
                "a cloud's transform must be finite and invertible, got {placement:?}"
            )));
        }
        if !cloud.settings.opacity.is_finite() || cloud.settings.opacity < 0.0 {
            return Err(RasterError::InvalidSettings(format!(
                "a cloud's opacity multiplier must be finite and not negative, got {}",
                cloud.settings.opacity
            )));
        }
    }
    Ok(())
}
