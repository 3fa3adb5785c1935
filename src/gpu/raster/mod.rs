//! The differentiable Gaussian rasterizer on the GPU: projection, binning, tile rasterization
//! and their backward passes (ARCHITECTURE.md, "The rasterizer (forward)", "(backward)",
//! "Binning"; the f64 reference is `reference::raster`).
//!
//! ```text
//! forward:  project ─ depth sort ─ scan ─╳─ emit keys ─ tile sort ─ tile ranges ─ rasterize
//!                      (N ids)   (N counts) │  (M pairs)   (M pairs)
//!                                    readback of M (the one blocking wait)
//! backward: rasterize backward (2D gradients, atomics; one workgroup per piece of a tile list)
//!           [─ per-Gaussian sum of per-intersection gradients (deterministic mode)]
//!           ─ project backward (raw parameters) [─ densification statistics]
//! ```
//!
//! Two backward modes ([`RasterOptions::deterministic`]): float atomics add each tile's
//! gradient to its Gaussian in whatever order the tiles finish (fast, not reproducible), or
//! each intersection's gradient is written to its own slot and summed per Gaussian in a fixed
//! order (bit-identical results for identical inputs; 36 more bytes per intersection).
//!
//! Kernels live in `shaders/project.wgsl` (projection forward/backward, densification
//! statistics), `shaders/bin.wgsl` (binning) and `shaders/rasterize.wgsl` (rasterization
//! forward/backward); sorting and scanning are `gpu::sort` and `gpu::scan`.
//!
//! Usage: one [`Rasterizer`] per device (pipelines and cached bind groups), one [`RasterFrame`]
//! per view being rendered (its buffers are reused across renders).

mod backward;
mod composite;
mod frame;
mod kernels;
mod uniforms;
pub mod view;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod view_tests;

pub use frame::RasterFrame;

use kernels::{BindGroups, Kernels, dispatch_elements, dispatch_tiles};
use uniforms::{MIN_CHUNK_SIZE, RenderUniforms, backward_chunk_size};

use crate::camera::Camera;
use crate::gpu::scan::PrefixScan;
use crate::gpu::sort::RadixSort;
use crate::gpu::timing::StageTimer;
use crate::gpu::{self, GpuContext, Recorder};
use crate::model::{DensifyStats, GaussianCloud, ParamBuffers};
use crate::render_settings::RenderSettings;
use crate::sh::MAX_SH_DEGREE;

/// Why a render could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RasterError {
    #[error(
        "invalid camera: focal lengths must be positive, the image non-empty, every number \
         finite and the rotation orthonormal"
    )]
    InvalidCamera,
    #[error("the cloud has SH degree {0}; at most {MAX_SH_DEGREE} is supported")]
    ShDegree(u32),
    #[error("invalid render settings: {0}")]
    InvalidSettings(String),
    #[error(
        "{what} would need {bytes} bytes, more than this GPU allows in one buffer binding \
         ({max} bytes): render fewer Gaussians or a smaller image"
    )]
    TooLarge {
        what: &'static str,
        bytes: u64,
        max: u64,
    },
}

/// Where [`Rasterizer::backward`] leaves the higher SH bands' gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandGradients {
    /// In the gradient buffers, like every other group's ([`crate::model::ParamGroup::ShRest`]).
    Buffer,
    /// Only as its factors in the frame ([`RasterFrame::band_factors`], written in both modes),
    /// which [`crate::gpu::adam::Adam::encode`] turns into the gradient as it updates the
    /// bands: training's choice outside debug mode (the 45-float gradient row per Gaussian is
    /// then neither written nor read).
    Factors,
}

/// Bits of the depth-sort keys (`bitcast<u32>(depth)`, culled = `u32::MAX`).
const DEPTH_KEY_BITS: u32 = 32;

/// Timer labels of the waits between stages, which are not GPU work of the rasterizer. They
/// start with "wait:" so reports can tell them from stages.
pub const WAIT_FOR_COUNT: &str = "wait: intersection count readback";
pub const WAIT_BEFORE_BACKWARD: &str = "wait: before backward";

/// How a [`Rasterizer`] computes its backward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RasterOptions {
    /// Sum the gradients in a fixed order (no float atomics), so identical inputs give
    /// bit-identical gradients; costs 36 bytes of GPU memory per tile intersection.
    pub deterministic: bool,
}

/// The rasterizer's pipelines (one variant, chosen by the device's capabilities and the
/// options), its sort and scan helpers, and cached bind groups.
pub struct Rasterizer {
    kernels: Kernels,
    binds: BindGroups,
    depth_sort: RadixSort,
    tile_sort: RadixSort,
    scan: PrefixScan,
    deferred_counts: bool,
    deterministic: bool,
    /// Entries per backward piece: the device's [`backward_chunk_size`] unless a test or
    /// `bench raster --chunk-size` set another.
    chunk_size: u32,
    /// Tests: force the forward in pieces on or off (default: by the number of tiles).
    pieces_override: Option<bool>,
}

impl Rasterizer {
    /// A rasterizer with the default options (float atomics in the backward pass).
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_options(ctx, RasterOptions::default())
    }

    pub fn with_options(ctx: &GpuContext, options: RasterOptions) -> Self {
        Self {
            kernels: Kernels::new(ctx, options.deterministic),
            binds: BindGroups::default(),
            depth_sort: RadixSort::new(ctx),
            tile_sort: RadixSort::new(ctx),
            scan: PrefixScan::new(ctx),
            deferred_counts: false,
            deterministic: options.deterministic,
            chunk_size: backward_chunk_size(ctx.max_binding_bytes()),
            pieces_override: None,
        }
    }

    /// Whether the backward pass is the deterministic one.
    pub fn is_deterministic(&self) -> bool {
        self.deterministic
    }

    /// Tests and `bench raster --chunk-size`: cut tile lists into backward pieces of
    /// `chunk_size` entries instead of the device's default (`backward_chunk_size`). Fails
    /// unless it is a power of two of at least 128 (`MIN_CHUNK_SIZE`).
    #[cfg(any(test, feature = "cli"))]
    pub(crate) fn set_chunk_size(&mut self, chunk_size: u32) -> Result<(), RasterError> {
        if !(chunk_size.is_power_of_two() && chunk_size >= MIN_CHUNK_SIZE) {
            return Err(RasterError::InvalidSettings(format!(
                "backward pieces of {chunk_size} entries: need a power of two of at least \
                 {MIN_CHUNK_SIZE}"
            )));
        }
        self.chunk_size = chunk_size;
        Ok(())
    }

    /// Lets renders skip the blocking readback of the intersection count (training).
    ///
    /// Off (the default), every render reads the count back before binning, so the list is
    /// sized exactly. On, a render of the same cloud size and image size as an earlier exact
    /// one sizes the list from the largest count seen so far (times two) and submits everything
    /// at once; the count reaches the CPU asynchronously. Should a view ever need more entries,
    /// the farthest Gaussians' entries of that render are dropped, the frame counts the event
    /// ([`RasterFrame::intersection_overflows`]) and the next render is exact again.
    pub fn set_deferred_counts(&mut self, deferred: bool) {
        self.deferred_counts = deferred;
    }

    /// Tests: render the forward in pieces (`true`) or in one pass per tile (`false`) whatever
    /// the image size.
    #[cfg(test)]
    pub(crate) fn set_forward_in_pieces(&mut self, pieces: bool) {
        self.pieces_override = Some(pieces);
    }

    /// Whether a render of this size runs the forward in pieces.
    fn forward_in_pieces(&self, width: u32, height: u32) -> bool {
        self.pieces_override
            .unwrap_or_else(|| forward_in_pieces(width, height))
    }

    /// Renders `cloud` from `camera` into `frame.image` (and the final transmittance, radii and
    /// what the backward pass needs).
    ///
    /// Submits its GPU work and returns once it is submitted (not finished). It blocks once, to
    /// read the number of tile intersections back and size the list, unless deferred counts
    /// are on and allow skipping it ([`Rasterizer::set_deferred_counts`]). With a `timer`,
    /// marks each stage; the caller resets the timer before and resolves it after its last
    /// mark (the backward pass may add more).
    pub fn forward(
        &mut self,
        ctx: &GpuContext,
        cloud: &GaussianCloud,
        camera: &Camera,
        settings: &RenderSettings,
        frame: &mut RasterFrame,
        timer: Option<&mut StageTimer>,
    ) -> Result<(), RasterError> {
        let mut encoder = new_encoder(ctx, "raster forward");
        let mut rec = Recorder::new(&mut encoder);
        self.forward_into(ctx, &mut rec, cloud, camera, settings, frame, timer)?;
        drop(rec);
        ctx.queue.submit([encoder.finish()]);
        frame.map_deferred_counts();
        Ok(())
    }

    /// [`Rasterizer::forward`] recorded through the caller's `rec` (after what its encoder
    /// holds, continuing its open pass), so that the render and the work after it go to the
    /// GPU in one submission (each submission costs the H200 ~25 us of idle time) and share
    /// compute passes. The caller submits the encoder and then calls
    /// [`RasterFrame::map_deferred_counts`]. Where the forward must wait for the intersection
    /// count, it submits what the encoder holds so far and continues in a fresh encoder.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_into(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        cloud: &GaussianCloud,
        camera: &Camera,
        settings: &RenderSettings,
        frame: &mut RasterFrame,
        mut timer: Option<&mut StageTimer>,
    ) -> Result<(), RasterError> {
        validate(cloud, camera, settings)?;
        if self.deferred_counts {
            // Pick up the counts of earlier deferred renders (never waits).
            let _ = ctx.device.poll(wgpu::PollType::Poll);
            frame.collect_deferred_counts();
        }
        frame.prepare(ctx, cloud.len, camera.width, camera.height)?;
        let mut uniforms = RenderUniforms::new(camera, settings, cloud.len, cloud.sh_degree());
        uniforms.chunk_size = self.chunk_size;
        debug_assert!(uniforms.chunk_size >= MIN_CHUNK_SIZE);
        let (chunk_size, deterministic) = (uniforms.chunk_size, self.deterministic);
        let pieces = self.forward_in_pieces(camera.width, camera.height);
        let extras = frame::ListExtras {
            chunk_size: Some(chunk_size),
            deterministic,
            pieces,
        };
        let deferred_capacity = (self.deferred_counts
            && cloud.len > 0
            && frame.can_defer(cloud.len, camera.width, camera.height))
        .then(|| frame.deferred_capacity(ctx, extras))
        .flatten();
        let deferred = deferred_capacity.is_some();
        if let Some(capacity) = deferred_capacity {
            frame.prepare_intersections(ctx, capacity, extras)?;
            frame.num_intersections = 0;
            uniforms.intersection_capacity = frame.intersection_capacity();
        }
        frame.write_uniforms(ctx, uniforms);

        mark(&mut timer, rec, "begin");
        if cloud.len > 0 {
            self.encode_project(ctx, rec, cloud, frame);
            mark(&mut timer, rec, "project");
            self.encode_depth_sort(ctx, rec, frame);
            mark(&mut timer, rec, "depth sort");
            self.scan.record(
                ctx,
                rec,
                &frame.depth_order_counts,
                &frame.offsets,
                cloud.len,
            );
            mark(&mut timer, rec, "scan");
        }
        if deferred {
            self.encode_binning(ctx, rec, frame, CountMode::Deferred, timer.as_deref_mut());
            frame.encode_deferred_count_copy(ctx, rec.encoder());
        } else {
            let count = if cloud.len == 0 {
                0
            } else {
                submit_and_read_count(ctx, rec, frame, &mut timer, "raster forward: rasterization")
            };
            frame.prepare_intersections(ctx, count, extras)?;
            frame.record_exact_count(count);
            self.encode_binning(ctx, rec, frame, CountMode::Exact, timer.as_deref_mut());
        }
        self.encode_rasterize(ctx, rec, frame);
        mark(&mut timer, rec, "rasterize");
        Ok(())
    }

    /// Records the backward pass of the last [`Rasterizer::forward`] into `frame` for
    /// dL/d(image) = `d_image` (planar CHW f32, like the image) through `rec`; submits nothing.
    ///
    /// Overwrites (does not accumulate) `grads` with dL/d(every raw parameter) of the first
    /// `cloud.len` Gaussians (zero for culled ones), the higher SH bands' only with
    /// [`BandGradients::Buffer`] (their factors in `frame` in both cases). With `stats`, adds
    /// the densification statistics of the Gaussians visible in this view: `grad_norm_sum +=
    /// |(dL/du W/2, dL/dv H/2)|`, `visible_count += 1`, `max_radius = max(max_radius, radius)`.
    ///
    /// `cloud`, `camera` and `settings` must be those of the forward (its uniforms are reused).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        cloud: &GaussianCloud,
        camera: &Camera,
        settings: &RenderSettings,
        frame: &RasterFrame,
        d_image: &wgpu::Buffer,
        grads: &ParamBuffers,
        bands: BandGradients,
        stats: Option<&DensifyStats>,
        mut timer: Option<&mut StageTimer>,
    ) {
        // The forward's uniforms are reused: the inputs must be the forward's.
        let mut expected = RenderUniforms::new(camera, settings, cloud.len, cloud.sh_degree());
        expected.intersection_capacity = frame.uniforms_value.intersection_capacity;
        expected.chunk_size = frame.uniforms_value.chunk_size;
        assert!(
            frame.uniforms_value == expected,
            "Rasterizer::backward: camera, settings or cloud size differ from the forward's"
        );
        assert!(
            grads.capacity >= cloud.len && grads.sh_degree == cloud.sh_degree(),
            "Rasterizer::backward: the gradient buffers do not match the cloud"
        );
        mark(&mut timer, rec, WAIT_BEFORE_BACKWARD);
        if let Some(clear) = &self.kernels.clear_grad_2d {
            // The atomics add to it; the deterministic sum overwrites it.
            let bind = self.binds.clear_grad_2d.get(
                ctx,
                "clear_grad_2d",
                clear,
                &[(0, &frame.uniforms), (8, &frame.grad_2d)],
            );
            let floats = cloud.len * frame::GRAD_2D_STRIDE as u32;
            dispatch_elements(ctx, rec, clear, bind, floats);
        }
        self.encode_rasterize_backward(ctx, rec, frame, d_image);
        if self.deterministic {
            self.encode_sum_intersection_gradients(ctx, rec, frame);
        }
        mark(&mut timer, rec, "rasterize backward");
        self.encode_project_backward(ctx, rec, cloud, frame, grads, bands);
        mark(&mut timer, rec, "project backward");
        if let Some(stats) = stats {
            assert!(
                stats.capacity >= cloud.len,
                "DensifyStats smaller than the cloud"
            );
            self.encode_densify_stats(ctx, rec, frame, stats);
            mark(&mut timer, rec, "densify stats");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Stages

    fn encode_project(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        cloud: &GaussianCloud,
        frame: &RasterFrame,
    ) {
        let entries = [
            &[(0, &frame.uniforms)][..],
            &param_bindings(1, &cloud.params),
            &projection_output_bindings(frame),
            &[(12, &frame.radii)],
        ]
        .concat();
        let bind = self.binds.project_forward.get(
            ctx,
            "project_forward",
            &self.kernels.project_forward,
            &entries,
        );
        dispatch_elements(ctx, rec, &self.kernels.project_forward, bind, cloud.len);
    }

    /// Sorts the Gaussian ids by depth and counts, in that order, the tiles each one reaches.
    fn encode_depth_sort(&mut self, ctx: &GpuContext, rec: &mut Recorder, frame: &RasterFrame) {
        self.encode_depth_sort_bits(ctx, rec, frame, DEPTH_KEY_BITS);
    }

    /// The depth sort by the low `key_bits` bits of the depth keys (the game plugin's keys are
    /// shorter: `view.rs`), then the per-slot tile counts in depth order.
    pub(super) fn encode_depth_sort_bits(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
        key_bits: u32,
    ) {
        self.depth_sort.record(
            ctx,
            rec,
            &frame.depth_keys,
            &frame.depth_ids,
            frame.num_gaussians,
            key_bits,
        );
        self.encode_gather_depth_order_counts(ctx, rec, frame);
    }

    fn encode_gather_depth_order_counts(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
    ) {
        let bind = self.binds.gather_depth_order_counts.get(
            ctx,
            "gather_depth_order_counts",
            &self.kernels.gather_depth_order_counts,
            &[
                (0, &frame.uniforms),
                (1, &frame.depth_ids),
                (2, &frame.tile_counts),
                (3, &frame.depth_order_counts),
            ],
        );
        dispatch_elements(
            ctx,
            rec,
            &self.kernels.gather_depth_order_counts,
            bind,
            frame.num_gaussians,
        );
    }

    /// Emits the intersection list, sorts it by tile and finds each tile's range.
    fn encode_binning(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
        count_mode: CountMode,
        mut timer: Option<&mut StageTimer>,
    ) {
        let [gx, gy] = frame.tile_grid();
        let tile_bits = tile_key_bits(gx * gy);
        match count_mode {
            CountMode::Exact if frame.num_intersections == 0 => {}
            CountMode::Exact => {
                self.encode_emit(ctx, rec, frame);
                mark(&mut timer, rec, "emit keys");
                if tile_bits > 0 {
                    self.tile_sort.record(
                        ctx,
                        rec,
                        &frame.intersection_tiles,
                        self.tile_sort_values(frame),
                        frame.num_intersections,
                        tile_bits,
                    );
                }
                mark(&mut timer, rec, "tile sort");
            }
            CountMode::Deferred => {
                self.encode_emit(ctx, rec, frame);
                mark(&mut timer, rec, "emit keys");
                if tile_bits > 0 {
                    // The count is the scan's total, offsets[N], read on the GPU.
                    self.tile_sort.record_indirect(
                        ctx,
                        rec,
                        &frame.intersection_tiles,
                        self.tile_sort_values(frame),
                        &frame.offsets,
                        frame.num_gaussians,
                        frame.intersection_capacity(),
                        tile_bits,
                    );
                }
                mark(&mut timer, rec, "tile sort");
            }
        }
        self.encode_tile_ranges(ctx, rec, frame, count_mode);
        mark(&mut timer, rec, "tile ranges");
    }

    /// What the tile sort carries along with the tile ids: the Gaussian ids, or in
    /// deterministic mode the emission slots (the Gaussian ids stay in emission order).
    fn tile_sort_values<'a>(&self, frame: &'a RasterFrame) -> &'a wgpu::Buffer {
        if self.deterministic {
            &frame.intersection_slots
        } else {
            &frame.intersection_gaussians
        }
    }

    fn encode_emit(&mut self, ctx: &GpuContext, rec: &mut Recorder, frame: &RasterFrame) {
        let mut entries = vec![
            (0, &frame.uniforms),
            (1, &frame.depth_ids),
            (4, &frame.offsets),
            (5, &frame.tile_rects),
            (6, &frame.intersection_tiles),
            (7, &frame.intersection_gaussians),
            (13, &frame.splats),
        ];
        if self.deterministic {
            entries.push((10, &frame.intersection_slots));
        }
        let bind = self.binds.emit_intersections.get(
            ctx,
            "emit_intersections",
            &self.kernels.emit_intersections,
            &entries,
        );
        dispatch_elements(
            ctx,
            rec,
            &self.kernels.emit_intersections,
            bind,
            frame.num_gaussians,
        );
    }

    /// Clears the tile ranges and marks each tile's run of the sorted list.
    fn encode_tile_ranges(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
        count_mode: CountMode,
    ) {
        let [gx, gy] = frame.tile_grid();
        // Cleared by a kernel in the open pass: a clear command would end it.
        let bind = self.binds.clear_tile_ranges.get(
            ctx,
            "clear_tile_ranges",
            &self.kernels.clear_tile_ranges,
            &[(0, &frame.uniforms), (8, &frame.tile_ranges)],
        );
        dispatch_elements(ctx, rec, &self.kernels.clear_tile_ranges, bind, gx * gy);
        let bind = self.binds.tile_ranges.get(
            ctx,
            "tile_ranges",
            &self.kernels.tile_ranges,
            &[
                (0, &frame.uniforms),
                (4, &frame.offsets),
                (6, &frame.intersection_tiles),
                (8, &frame.tile_ranges),
            ],
        );
        // A deferred count is only known on the GPU: cover the list's capacity (entries past
        // the count return at once; cheaper than an indirect dispatch, `bench dispatch`).
        let entries = match count_mode {
            CountMode::Exact => frame.num_intersections,
            CountMode::Deferred => frame.intersection_capacity(),
        };
        dispatch_elements(ctx, rec, &self.kernels.tile_ranges, bind, entries);
    }

    fn encode_rasterize(&mut self, ctx: &GpuContext, rec: &mut Recorder, frame: &RasterFrame) {
        if self.forward_in_pieces(frame.width, frame.height) {
            self.encode_rasterize_in_pieces(ctx, rec, frame);
            return;
        }
        let mut entries = vec![
            (0, &frame.uniforms),
            (1, &frame.tile_ranges),
            (2, &frame.intersection_gaussians),
            (3, &frame.splats),
            (4, &frame.image),
            (5, &frame.final_transmittance),
            (6, &frame.last_counts),
            (10, &frame.checkpoints),
        ];
        if self.deterministic {
            entries.push((11, &frame.intersection_slots));
        }
        let bind = self.binds.rasterize_forward.get(
            ctx,
            "rasterize_forward",
            &self.kernels.rasterize_forward,
            &entries,
        );
        dispatch_tiles(
            rec,
            &self.kernels.rasterize_forward,
            bind,
            frame.tile_grid(),
        );
    }

    /// The forward for images of few tiles: per-piece sums, then one pass per tile combining
    /// them (rasterize.wgsl, "Forward in pieces").
    fn encode_rasterize_in_pieces(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
    ) {
        let mut entries = vec![
            (0, &frame.uniforms),
            (1, &frame.tile_ranges),
            (2, &frame.intersection_gaussians),
            (3, &frame.splats),
            (9, &frame.intersection_tiles),
            (13, &frame.piece_sums),
            (14, &frame.piece_last),
        ];
        if self.deterministic {
            entries.push((11, &frame.intersection_slots));
        }
        let bind = self.binds.rasterize_pieces.get(
            ctx,
            "rasterize_pieces",
            &self.kernels.rasterize_pieces,
            &entries,
        );
        {
            let pass = rec.pass();
            pass.set_pipeline(&self.kernels.rasterize_pieces);
            pass.set_bind_group(0, bind, &[]);
            let (x, y, z) = gpu::dispatch_size_1d(
                piece_items(frame),
                ctx.limits.max_compute_workgroups_per_dimension,
            );
            pass.dispatch_workgroups(x, y, z);
        }
        let mut entries = vec![
            (0, &frame.uniforms),
            (1, &frame.tile_ranges),
            (2, &frame.intersection_gaussians),
            (3, &frame.splats),
            (4, &frame.image),
            (5, &frame.final_transmittance),
            (6, &frame.last_counts),
            (10, &frame.checkpoints),
            (13, &frame.piece_sums),
            (14, &frame.piece_last),
        ];
        if self.deterministic {
            entries.push((11, &frame.intersection_slots));
        }
        let bind = self.binds.combine_pieces.get(
            ctx,
            "combine_pieces",
            &self.kernels.combine_pieces,
            &entries,
        );
        dispatch_tiles(rec, &self.kernels.combine_pieces, bind, frame.tile_grid());
    }
}

/// How a render learns its number of tile intersections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CountMode {
    /// Read back before binning: the list is sized exactly.
    Exact,
    /// Read on the GPU; the list has room for the largest count seen, with headroom.
    Deferred,
}

/// Images with fewer tiles than this render the forward in pieces too (rasterize.wgsl,
/// "Forward in pieces"): one workgroup per tile would leave most of the GPU idle.
const PIECEWISE_FORWARD_MAX_TILES: u32 = 1024;

fn forward_in_pieces(width: u32, height: u32) -> bool {
    let [gx, gy] = uniforms::tile_grid(width, height);
    gx * gy < PIECEWISE_FORWARD_MAX_TILES
}

/// Work items of the passes that run one workgroup per piece: the first piece of every tile,
/// then one per cut of the list (rasterize.wgsl, "Pieces"); those without a piece exit at once.
fn piece_items(frame: &RasterFrame) -> u32 {
    let [gx, gy] = frame.tile_grid();
    gx * gy + frame.intersection_capacity() / frame.uniforms_value.chunk_size + 1
}

/// Bits of the tile id that the tile sort must order: `ceil(log2(tiles))`.
fn tile_key_bits(tiles: u32) -> u32 {
    if tiles <= 1 {
        0
    } else {
        u32::BITS - (tiles - 1).leading_zeros()
    }
}

fn validate(
    cloud: &GaussianCloud,
    camera: &Camera,
    settings: &RenderSettings,
) -> Result<(), RasterError> {
    if !camera.is_valid() {
        return Err(RasterError::InvalidCamera);
    }
    if cloud.sh_degree() > MAX_SH_DEGREE {
        return Err(RasterError::ShDegree(cloud.sh_degree()));
    }
    if !(settings.near_plane.is_finite() && settings.near_plane >= 0.0) {
        return Err(RasterError::InvalidSettings(format!(
            "the near plane must be finite and not negative, got {}",
            settings.near_plane
        )));
    }
    if !settings.background.iter().all(|c| c.is_finite()) {
        return Err(RasterError::InvalidSettings(format!(
            "the background colour must be finite, got {:?}",
            settings.background
        )));
    }
    Ok(())
}

/// Submits what `rec` holds with a copy of the intersection count, waits for the count and
/// goes on in a fresh encoder (labelled `label`).
fn submit_and_read_count(
    ctx: &GpuContext,
    rec: &mut Recorder,
    frame: &RasterFrame,
    timer: &mut Option<&mut StageTimer>,
    label: &str,
) -> u32 {
    frame.encode_count_copy(rec.encoder());
    let fresh = new_encoder(ctx, label);
    ctx.queue.submit([rec.swap_encoder(fresh).finish()]);
    let count = frame.read_count(ctx);
    mark(timer, rec, WAIT_FOR_COUNT);
    count
}

fn new_encoder(ctx: &GpuContext, label: &str) -> wgpu::CommandEncoder {
    ctx.device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
}

/// A timestamp after a stage (when profiling: it ends the open pass, so profiled renders run
/// a pass per stage).
fn mark(timer: &mut Option<&mut StageTimer>, rec: &mut Recorder, label: &str) {
    if let Some(timer) = timer.as_deref_mut() {
        timer.mark(rec.encoder(), label);
    }
}

/// Bindings `first..first + 6` of project.wgsl: the six parameter groups of `buffers` in
/// `ParamGroup::ALL` order (the cloud's parameters at 1, their gradients at 14).
fn param_bindings(first: u32, buffers: &ParamBuffers) -> [(u32, &wgpu::Buffer); 6] {
    let all = buffers.all();
    std::array::from_fn(|k| (first + k as u32, &all[k]))
}

/// Bindings 7-11 of project.wgsl: where the projection writes the list's splats, depth keys
/// and ids, tile counts and tile rectangles.
fn projection_output_bindings(frame: &RasterFrame) -> [(u32, &wgpu::Buffer); 5] {
    [
        (7, &frame.splats),
        (8, &frame.depth_keys),
        (9, &frame.depth_ids),
        (10, &frame.tile_counts),
        (11, &frame.tile_rects),
    ]
}
