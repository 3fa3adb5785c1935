//! [`RasterFrame`]: the buffers of one render, grown as needed and reused across renders.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::RasterError;
use super::uniforms::{RenderUniforms, tile_grid};
use crate::gpu::{self, GpuContext};

/// Bytes of one projected splat (`Splat` in `shaders/raster_types.wgsl`).
pub(super) const SPLAT_BYTES: u64 = 48;
/// Floats of dL/d(2D quantities) per Gaussian: mean (2), conic (3), opacity (1), colour (3).
pub(super) const GRAD_2D_STRIDE: u64 = 9;

/// The per-render state of the rasterizer: projected splats, binning buffers, the image and what
/// the backward pass needs from the forward.
///
/// Buffers are sized by capacity and only grow (with 25% headroom for the per-Gaussian and
/// per-intersection ones, so a training run with a growing cloud reallocates rarely); only their
/// first elements are meaningful:
/// - `image`: `3 * height * width` floats, planar CHW (channel `c` of pixel `(x, y)` at
///   `c * H * W + y * W + x`);
/// - `final_transmittance`: `height * width` floats;
/// - `radii`: `num_gaussians` u32 screen radii in pixels (0 = culled).
///
/// A frame holds the result of its last [`super::Rasterizer::forward`]; the backward pass of
/// that render reads it, so render each view that needs a backward into its own frame (or run
/// the backward before the next forward).
pub struct RasterFrame {
    pub width: u32,
    pub height: u32,
    /// Number of Gaussians of the last render.
    pub num_gaussians: u32,
    /// Number of (tile, Gaussian) intersections of the last render.
    pub num_intersections: u32,
    pub image: wgpu::Buffer,
    pub final_transmittance: wgpu::Buffer,
    pub radii: wgpu::Buffer,
    /// Per pixel: the number of entries of its tile's list up to its last composited splat.
    pub(super) last_counts: wgpu::Buffer,
    pub(super) uniforms: wgpu::Buffer,
    /// What `uniforms` holds: the backward pass checks it was given the forward's inputs.
    pub(super) uniforms_value: RenderUniforms,
    /// Per Gaussian.
    pub(super) splats: wgpu::Buffer,
    pub(super) depth_keys: wgpu::Buffer,
    pub(super) depth_ids: wgpu::Buffer,
    pub(super) tile_counts: wgpu::Buffer,
    pub(super) tile_rects: wgpu::Buffer,
    pub(super) depth_order_counts: wgpu::Buffer,
    /// `num_gaussians + 1` entries: the exclusive scan and the total.
    pub(super) offsets: wgpu::Buffer,
    pub(super) grad_2d: wgpu::Buffer,
    /// The factors of the higher SH bands' gradient, 32 bytes (sh_basis.wgsl, "Band factors"):
    /// [`RasterFrame::band_factors`].
    pub(super) band_factors: wgpu::Buffer,
    /// Per intersection.
    pub(super) intersection_tiles: wgpu::Buffer,
    pub(super) intersection_gaussians: wgpu::Buffer,
    /// Deterministic backward only (else one element): per intersection, its emission slot
    /// (the tile sort's values), and per slot the 9 gradient values of the backward pass.
    pub(super) intersection_slots: wgpu::Buffer,
    pub(super) intersection_grads: wgpu::Buffer,
    /// Per cut of the tile lists (every `chunk_size` entries) and pixel of a tile: the
    /// forward's (T, colour so far) there, 16 bytes (rasterize.wgsl, "Pieces").
    pub(super) checkpoints: wgpu::Buffer,
    /// The forward in pieces only (else one element): per work item (tiles + cuts) and pixel
    /// of a tile, the piece's (transmittance product, colour) and last composited entry.
    pub(super) piece_sums: wgpu::Buffer,
    pub(super) piece_last: wgpu::Buffer,
    /// Per tile.
    pub(super) tile_ranges: wgpu::Buffer,
    /// 4 bytes, mappable: the intersection count on its way to the CPU.
    count_readback: wgpu::Buffer,
    /// Deferred counts: asynchronous readbacks of the intersection count in flight.
    count_slots: Vec<CountSlot>,
    /// Deferred counts: (Gaussians, width, height) of the last render whose count was read
    /// back before binning; deferred renders are allowed while the inputs keep this shape.
    exact_basis: Option<(u32, u32, u32)>,
    /// Largest intersection count seen (exact or read back later).
    pub max_seen_intersections: u32,
    /// Renders whose intersection list overflowed its capacity (farthest entries dropped).
    pub intersection_overflows: u32,
    overflow_pending: bool,
    gaussian_capacity: u32,
    intersection_capacity: u32,
    /// Cuts the checkpoint buffer has room for.
    checkpoint_cuts: u32,
    /// Intersections the deterministic buffers have room for (0: not allocated).
    deterministic_capacity: u32,
    /// Work items the piece buffers have room for (0: not allocated).
    piece_items: u32,
    pixel_capacity: u32,
    tile_capacity: u32,
    /// Renders of this frame never run the backward pass (the viewer's frames): the buffers
    /// only the backward reads (`grad_2d`) and the radii stay unallocated.
    forward_only: bool,
}

impl RasterFrame {
    /// An empty frame; buffers grow on the first render.
    pub fn new(ctx: &GpuContext) -> Self {
        // Room for one element of every array (bindings must hold at least one: a splat is 48
        // bytes), so an empty cloud can be rendered before anything has grown.
        let small = |label: &str| gpu::storage_buffer(ctx, label, 64);
        Self {
            width: 0,
            height: 0,
            num_gaussians: 0,
            num_intersections: 0,
            image: small("raster.image"),
            final_transmittance: small("raster.final_transmittance"),
            radii: small("raster.radii"),
            last_counts: small("raster.last_counts"),
            uniforms: gpu::uniform_buffer_from(ctx, "raster.uniforms", &RenderUniforms::default()),
            uniforms_value: RenderUniforms::default(),
            splats: small("raster.splats"),
            depth_keys: small("raster.depth_keys"),
            depth_ids: small("raster.depth_ids"),
            tile_counts: small("raster.tile_counts"),
            tile_rects: small("raster.tile_rects"),
            depth_order_counts: small("raster.depth_order_counts"),
            offsets: small("raster.offsets"),
            grad_2d: small("raster.grad_2d"),
            band_factors: small("raster.band_factors"),
            intersection_tiles: small("raster.intersection_tiles"),
            intersection_gaussians: small("raster.intersection_gaussians"),
            intersection_slots: small("raster.intersection_slots"),
            intersection_grads: small("raster.intersection_grads"),
            checkpoints: small("raster.checkpoints"),
            piece_sums: small("raster.piece_sums"),
            piece_last: small("raster.piece_last"),
            tile_ranges: small("raster.tile_ranges"),
            count_readback: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("raster.count_readback"),
                size: 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            count_slots: Vec::new(),
            exact_basis: None,
            max_seen_intersections: 0,
            intersection_overflows: 0,
            overflow_pending: false,
            gaussian_capacity: 0,
            intersection_capacity: 0,
            checkpoint_cuts: 0,
            deterministic_capacity: 0,
            piece_items: 0,
            pixel_capacity: 0,
            tile_capacity: 0,
            forward_only: false,
        }
    }

    /// An empty frame whose renders never run the backward pass (the game plugin's views): it
    /// does not allocate the backward's per-Gaussian buffers (36 of its 116 bytes per Gaussian).
    pub fn new_forward_only(ctx: &GpuContext) -> Self {
        Self {
            forward_only: true,
            ..Self::new(ctx)
        }
    }

    /// Number of tiles per row and column of the last render.
    pub fn tile_grid(&self) -> [u32; 2] {
        tile_grid(self.width, self.height)
    }

    /// Per Gaussian of the last backward pass, the factors of its higher SH bands' gradient
    /// (two vec4s: dL/d(colour before the clamp) and the view direction with the evaluated
    /// degree; `shaders/sh_basis.wgsl`, "Band factors"), for [`crate::gpu::adam::Adam`].
    pub fn band_factors(&self) -> &wgpu::Buffer {
        &self.band_factors
    }

    /// Downloads the image (planar CHW, `3 * height * width` floats; blocking, for tests and
    /// tools).
    pub fn read_image(&self, ctx: &GpuContext) -> Vec<f32> {
        gpu::read_buffer(ctx, &self.image, 3 * self.pixel_count())
    }

    /// Downloads the final transmittance per pixel (blocking).
    pub fn read_final_transmittance(&self, ctx: &GpuContext) -> Vec<f32> {
        gpu::read_buffer(ctx, &self.final_transmittance, self.pixel_count())
    }

    /// Downloads the screen radius per Gaussian (blocking).
    pub fn read_radii(&self, ctx: &GpuContext) -> Vec<u32> {
        gpu::read_buffer(ctx, &self.radii, self.num_gaussians as usize)
    }

    /// Downloads each tile's entry range `[start, end)` of the sorted intersection list,
    /// row-major over the tile grid (blocking, for tools).
    pub fn read_tile_ranges(&self, ctx: &GpuContext) -> Vec<[u32; 2]> {
        let [gx, gy] = self.tile_grid();
        gpu::read_buffer(ctx, &self.tile_ranges, (gx * gy) as usize)
    }

    /// Downloads each pixel's last-contributor count (the entries of its tile's list up to its
    /// last composited splat; blocking, for tools).
    pub fn read_last_counts(&self, ctx: &GpuContext) -> Vec<u32> {
        gpu::read_buffer(ctx, &self.last_counts, self.pixel_count())
    }

    /// Bytes of GPU memory held by this frame.
    pub fn bytes(&self) -> u64 {
        [
            &self.image,
            &self.final_transmittance,
            &self.radii,
            &self.last_counts,
            &self.splats,
            &self.depth_keys,
            &self.depth_ids,
            &self.tile_counts,
            &self.tile_rects,
            &self.depth_order_counts,
            &self.offsets,
            &self.grad_2d,
            &self.band_factors,
            &self.intersection_tiles,
            &self.intersection_gaussians,
            &self.intersection_slots,
            &self.intersection_grads,
            &self.checkpoints,
            &self.piece_sums,
            &self.piece_last,
            &self.tile_ranges,
        ]
        .iter()
        .map(|b| b.size())
        .sum()
    }

    pub(super) fn pixel_count(&self) -> usize {
        (self.width * self.height) as usize
    }

    /// Writes the uniforms of a render (applied at the next submission).
    pub(super) fn write_uniforms(&mut self, ctx: &GpuContext, uniforms: RenderUniforms) {
        ctx.queue
            .write_buffer(&self.uniforms, 0, bytemuck::bytes_of(&uniforms));
        self.uniforms_value = uniforms;
    }

    /// Sizes the per-Gaussian, per-pixel and per-tile buffers for a render.
    pub(super) fn prepare(
        &mut self,
        ctx: &GpuContext,
        num_gaussians: u32,
        width: u32,
        height: u32,
    ) -> Result<(), RasterError> {
        self.width = width;
        self.height = height;
        self.num_gaussians = num_gaussians;
        self.num_intersections = 0;
        if num_gaussians > self.gaussian_capacity {
            // The splats are the largest per-Gaussian buffer.
            let capacity = grown_capacity(ctx, "the projected splats", num_gaussians, SPLAT_BYTES)?;
            let n = u64::from(capacity);
            let buffer = |label: &str, bytes: u64| gpu::storage_buffer(ctx, label, bytes);
            self.splats = buffer("raster.splats", n * SPLAT_BYTES);
            self.depth_keys = buffer("raster.depth_keys", n * 4);
            self.depth_ids = buffer("raster.depth_ids", n * 4);
            self.tile_counts = buffer("raster.tile_counts", n * 4);
            self.tile_rects = buffer("raster.tile_rects", n * 8);
            self.depth_order_counts = buffer("raster.depth_order_counts", (n + 1) * 4);
            self.offsets = buffer("raster.offsets", (n + 1) * 4);
            if !self.forward_only {
                self.radii = buffer("raster.radii", n * 4);
                self.grad_2d = buffer("raster.grad_2d", n * GRAD_2D_STRIDE * 4);
                self.band_factors = buffer("raster.band_factors", n * 32);
            }
            self.gaussian_capacity = capacity;
        }
        let pixels = width * height;
        if pixels > self.pixel_capacity {
            let p = u64::from(pixels);
            grown_capacity(ctx, "the image", pixels, 3 * 4)?;
            self.image = gpu::storage_buffer(ctx, "raster.image", 3 * p * 4);
            self.final_transmittance =
                gpu::storage_buffer(ctx, "raster.final_transmittance", p * 4);
            self.last_counts = gpu::storage_buffer(ctx, "raster.last_counts", p * 4);
            self.pixel_capacity = pixels;
        }
        let [gx, gy] = tile_grid(width, height);
        if gx * gy > self.tile_capacity {
            self.tile_ranges =
                gpu::storage_buffer(ctx, "raster.tile_ranges", u64::from(gx * gy) * 8);
            self.tile_capacity = gx * gy;
        }
        Ok(())
    }

    /// Sizes the intersection list for `count` entries and what `extras` keeps beside it: the
    /// checkpoints for its cuts, the deterministic slots and per-slot gradients, and the
    /// per-piece sums of the forward in pieces.
    pub(super) fn prepare_intersections(
        &mut self,
        ctx: &GpuContext,
        count: u32,
        extras: ListExtras,
    ) -> Result<(), RasterError> {
        let ListExtras {
            chunk_size,
            deterministic,
            pieces,
        } = extras;
        self.num_intersections = count;
        if count > self.intersection_capacity {
            let fitting = self.fitting_intersections(ctx, extras);
            if count > fitting {
                return Err(RasterError::TooLarge {
                    what: "the tile intersection list",
                    bytes: u64::from(count) * extras.bytes_per_entry(),
                    max: max_binding(ctx),
                });
            }
            // 25% headroom where the binding limit allows it.
            let capacity = count.saturating_add(count / 4).min(fitting).max(count);
            let bytes = u64::from(capacity) * INTERSECTION_BYTES;
            self.intersection_tiles = gpu::storage_buffer(ctx, "raster.intersection_tiles", bytes);
            self.intersection_gaussians =
                gpu::storage_buffer(ctx, "raster.intersection_gaussians", bytes);
            self.intersection_capacity = capacity;
        }
        let capacity = self.intersection_capacity;
        let cuts = chunk_size.map_or(0, |chunk_size| capacity / chunk_size + 1);
        if cuts > self.checkpoint_cuts {
            let bytes = u64::from(cuts) * CHECKPOINT_BYTES_PER_CUT;
            check_binding(ctx, "the backward checkpoints", bytes)?;
            self.checkpoints = gpu::storage_buffer(ctx, "raster.checkpoints", bytes);
            self.checkpoint_cuts = cuts;
        }
        if deterministic && capacity > self.deterministic_capacity {
            let n = u64::from(capacity);
            check_binding(
                ctx,
                "the per-intersection gradients",
                n * GRAD_2D_STRIDE * 4,
            )?;
            self.intersection_slots = gpu::storage_buffer(ctx, "raster.intersection_slots", n * 4);
            self.intersection_grads =
                gpu::storage_buffer(ctx, "raster.intersection_grads", n * GRAD_2D_STRIDE * 4);
            self.deterministic_capacity = capacity;
        }
        let [gx, gy] = self.tile_grid();
        let items = gx * gy + cuts;
        if pieces && items > self.piece_items {
            let slots = u64::from(items) * 256;
            check_binding(ctx, "the forward's piece sums", slots * 16)?;
            self.piece_sums = gpu::storage_buffer(ctx, "raster.piece_sums", slots * 16);
            self.piece_last = gpu::storage_buffer(ctx, "raster.piece_last", slots * 4);
            self.piece_items = items;
        }
        Ok(())
    }

    /// Encodes the copy of the scan total (`offsets[num_gaussians]`) to the readback buffer.
    pub(super) fn encode_count_copy(&self, encoder: &mut wgpu::CommandEncoder) {
        let offset = u64::from(self.num_gaussians) * 4;
        encoder.copy_buffer_to_buffer(&self.offsets, offset, &self.count_readback, 0, 4);
    }

    /// Blocks until the submitted work finished and returns the copied intersection count.
    pub(super) fn read_count(&self, ctx: &GpuContext) -> u32 {
        let slice = self.count_readback.slice(..);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        ctx.wait_idle();
        receiver
            .recv()
            .expect("map_async callback runs during poll")
            .expect("mapping the intersection count failed");
        let count = bytemuck::pod_read_unaligned::<u32>(&slice.get_mapped_range()[..4]);
        self.count_readback.unmap();
        count
    }
}

/// One asynchronous readback of a deferred render's intersection count.
struct CountSlot {
    buffer: wgpu::Buffer,
    /// List capacity the render had.
    capacity: u32,
    status: Arc<AtomicU8>,
}

const SLOT_FREE: u8 = 0;
const SLOT_RECORDED: u8 = 1;
const SLOT_MAPPING: u8 = 2;
const SLOT_READY: u8 = 3;
const SLOT_FAILED: u8 = 4;

/// Headroom of the intersection list over the largest count seen, for deferred renders: views
/// of one scene differ in how many intersections they have.
const DEFERRED_HEADROOM: u32 = 2;
/// Bytes per entry of each intersection buffer (tile ids, Gaussian ids).
const INTERSECTION_BYTES: u64 = 4;

impl RasterFrame {
    /// Whether the next render of this shape may skip the blocking count readback: an exact
    /// render of the same cloud size and image size came first and no overflow is pending.
    pub(super) fn can_defer(&self, num_gaussians: u32, width: u32, height: u32) -> bool {
        !self.overflow_pending && self.exact_basis == Some((num_gaussians, width, height))
    }

    /// Records the count of an exact render: later renders of this shape may be deferred.
    pub(super) fn record_exact_count(&mut self, count: u32) {
        self.max_seen_intersections = self.max_seen_intersections.max(count);
        self.exact_basis = Some((self.num_gaussians, self.width, self.height));
        self.overflow_pending = false;
    }

    /// The list capacity for a deferred render: headroom over the largest count seen, but no
    /// more than the device can bind. `None` when that leaves no headroom at all: the render
    /// must then count exactly.
    pub(super) fn deferred_capacity(&self, ctx: &GpuContext, extras: ListExtras) -> Option<u32> {
        let wanted = self
            .max_seen_intersections
            .saturating_mul(DEFERRED_HEADROOM)
            .max(1024);
        let fitting = self.fitting_intersections(ctx, extras);
        let capacity = wanted.min(fitting);
        (capacity > self.max_seen_intersections).then_some(capacity)
    }

    /// How many intersection-list entries fit the binding limit with `extras`: the largest
    /// buffer sized by the list grows by [`ListExtras::bytes_per_entry`] per entry, plus a
    /// fixed part (one spare cut; the piece sums also hold every tile).
    fn fitting_intersections(&self, ctx: &GpuContext, extras: ListExtras) -> u32 {
        let [gx, gy] = self.tile_grid();
        let fixed = match extras.chunk_size {
            Some(_) if extras.pieces => CHECKPOINT_BYTES_PER_CUT * (1 + u64::from(gx * gy)),
            Some(_) => CHECKPOINT_BYTES_PER_CUT,
            None => 0,
        };
        let max = max_binding(ctx).saturating_sub(fixed);
        u32::try_from(max / extras.bytes_per_entry()).unwrap_or(u32::MAX)
    }

    /// Capacity of the intersection list now.
    pub(super) fn intersection_capacity(&self) -> u32 {
        self.intersection_capacity
    }

    /// Folds in the counts of deferred renders that have reached the CPU (non-blocking: the
    /// caller polls the device first).
    pub(super) fn collect_deferred_counts(&mut self) {
        for slot in &self.count_slots {
            match slot.status.load(Ordering::Acquire) {
                SLOT_READY => {
                    let count = {
                        let view = slot.buffer.slice(..).get_mapped_range();
                        bytemuck::pod_read_unaligned::<u32>(&view[..4])
                    };
                    slot.buffer.unmap();
                    slot.status.store(SLOT_FREE, Ordering::Release);
                    self.max_seen_intersections = self.max_seen_intersections.max(count);
                    if count > slot.capacity {
                        self.intersection_overflows += 1;
                        self.overflow_pending = true;
                    }
                }
                SLOT_FAILED => slot.status.store(SLOT_FREE, Ordering::Release),
                _ => {}
            }
        }
    }

    /// Encodes the copy of this deferred render's count into a free readback slot (a new one
    /// when all are busy); [`RasterFrame::map_deferred_counts`] maps it after submission.
    pub(super) fn encode_deferred_count_copy(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
    ) {
        let index = match self
            .count_slots
            .iter()
            .position(|s| s.status.load(Ordering::Acquire) == SLOT_FREE)
        {
            Some(index) => index,
            None => {
                self.count_slots.push(CountSlot {
                    buffer: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("raster.deferred_count"),
                        size: 4,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }),
                    capacity: 0,
                    status: Arc::new(AtomicU8::new(SLOT_FREE)),
                });
                self.count_slots.len() - 1
            }
        };
        let capacity = self.intersection_capacity;
        let slot = &mut self.count_slots[index];
        slot.capacity = capacity;
        slot.status.store(SLOT_RECORDED, Ordering::Release);
        let offset = u64::from(self.num_gaussians) * 4;
        encoder.copy_buffer_to_buffer(&self.offsets, offset, &slot.buffer, 0, 4);
    }

    /// Starts mapping the intersection-count readbacks of deferred renders; call it after
    /// submitting the encoder a [`super::Rasterizer::forward_into`] recorded into.
    pub fn map_deferred_counts(&self) {
        for slot in &self.count_slots {
            if slot.status.load(Ordering::Acquire) == SLOT_RECORDED {
                slot.status.store(SLOT_MAPPING, Ordering::Release);
                let status = slot.status.clone();
                slot.buffer
                    .slice(..)
                    .map_async(wgpu::MapMode::Read, move |result| {
                        let next = if result.is_ok() {
                            SLOT_READY
                        } else {
                            SLOT_FAILED
                        };
                        status.store(next, Ordering::Release);
                    });
            }
        }
    }
}

/// Bytes of checkpoints per cut: (T, colour) for the 256 pixels of a tile.
const CHECKPOINT_BYTES_PER_CUT: u64 = 256 * 16;

/// What a render keeps beside its intersection list, sized by the list.
#[derive(Clone, Copy, Debug)]
pub(super) struct ListExtras {
    /// Backward checkpoints: one cut every this many entries (`None`: a forward-only render,
    /// like the game plugin's, keeps none).
    pub chunk_size: Option<u32>,
    /// The deterministic backward's per-entry slots and gradients.
    pub deterministic: bool,
    /// The forward in pieces: per-piece sums (one item per tile and per cut).
    pub pieces: bool,
}

impl ListExtras {
    /// A forward-only render: the list alone.
    pub const NONE: Self = Self {
        chunk_size: None,
        deterministic: false,
        pieces: false,
    };

    /// The largest number of bytes one entry of the list costs in any one buffer sized by the
    /// list: the list itself, the checkpoints or piece sums (4 KiB per cut), or the
    /// deterministic per-entry gradients.
    pub fn bytes_per_entry(self) -> u64 {
        let mut bytes = INTERSECTION_BYTES;
        if let Some(chunk_size) = self.chunk_size {
            bytes = bytes.max(CHECKPOINT_BYTES_PER_CUT.div_ceil(u64::from(chunk_size.max(1))));
        }
        if self.deterministic {
            bytes = bytes.max(GRAD_2D_STRIDE * 4);
        }
        bytes
    }
}

/// The largest buffer one storage binding can hold on this device.
fn max_binding(ctx: &GpuContext) -> u64 {
    ctx.max_binding_bytes().min(ctx.limits.max_buffer_size)
}

/// An error when one buffer of `bytes` would not fit in a storage binding.
fn check_binding(ctx: &GpuContext, what: &'static str, bytes: u64) -> Result<(), RasterError> {
    let max = max_binding(ctx);
    if bytes > max {
        return Err(RasterError::TooLarge { what, bytes, max });
    }
    Ok(())
}

/// A capacity of at least `needed` elements of `element_bytes` each, with 25% headroom where
/// the device's binding limit allows it; an error when even `needed` does not fit.
fn grown_capacity(
    ctx: &GpuContext,
    what: &'static str,
    needed: u32,
    element_bytes: u64,
) -> Result<u32, RasterError> {
    let max = max_binding(ctx);
    let bytes = u64::from(needed) * element_bytes;
    if bytes > max {
        return Err(RasterError::TooLarge { what, bytes, max });
    }
    let headroom = needed.saturating_add(needed / 4);
    let fitting = u32::try_from(max / element_bytes).unwrap_or(u32::MAX);
    Ok(headroom.min(fitting).max(needed))
}

#[cfg(test)]
mod tests {
    use super::super::Rasterizer;
    use crate::gpu::test_util::test_context;
    use crate::model::GaussianCloud;
    use crate::reference::raster::random_scene;
    use crate::render_settings::RenderSettings;
    use crate::rng::Pcg32;

    /// On a device whose binding limit is below twice the intersection count, deferred renders
    /// size the list within the limit (they used to ask for twice the count and fail).
    #[test]
    fn deferred_capacity_stays_within_the_binding_limit() {
        let mut rng = Pcg32::new(78, 0);
        let (mut g, camera) = random_scene(&mut rng, 1500, 0, 96, 64);
        for s in g.log_scales.iter_mut() {
            *s += 3.0; // large Gaussians: many of the 24 tiles each
        }
        let settings = RenderSettings::default();
        let full = test_context();
        let cloud = GaussianCloud::from_gaussians(full, &g, g.len() as u32);
        let mut exact = Rasterizer::new(full);
        let mut exact_frame = super::RasterFrame::new(full);
        exact
            .forward(full, &cloud, &camera, &settings, &mut exact_frame, None)
            .unwrap();
        let count = u64::from(exact_frame.num_intersections);
        let expected = exact_frame.read_image(full);

        // The largest buffer the list sizes is the backward checkpoints (one cut of 4 KiB
        // per 256 entries on this small image).
        let extras = super::ListExtras {
            chunk_size: Some(256),
            deterministic: false,
            pieces: true,
        };
        let per_entry = extras.bytes_per_entry();
        assert_eq!(per_entry, 16);
        // The piece sums also hold one 4 KiB item per tile (24 here), and one spare cut.
        let fixed = 25 * super::CHECKPOINT_BYTES_PER_CUT;
        // Room for 1.5 times the count, not twice; the other buffers (the splats with their
        // 25% headroom, the image) fit below that.
        let limit = count * per_entry * 3 / 2 + fixed;
        assert!(
            limit > 1500 * super::SPLAT_BYTES * 5 / 4,
            "{count} intersections"
        );
        let mut small = full.clone();
        small.limits.max_storage_buffer_binding_size = limit;
        let mut deferred = Rasterizer::new(&small);
        deferred.set_deferred_counts(true);
        let mut frame = super::RasterFrame::new(&small);
        for round in 0..3 {
            deferred
                .forward(&small, &cloud, &camera, &settings, &mut frame, None)
                .unwrap_or_else(|e| panic!("render {round}: {e}"));
            assert_eq!(frame.read_image(&small), expected, "render {round}");
            let capacity = u64::from(frame.intersection_capacity());
            assert!(capacity * per_entry + fixed <= limit, "render {round}");
        }
        assert_eq!(frame.num_intersections, 0, "the last render was deferred");

        // With no room above the count itself, renders stay exact instead of failing (the
        // splats and the image still fit).
        let exact = count * per_entry + fixed;
        assert!(exact > 1500 * super::SPLAT_BYTES);
        let mut tight = full.clone();
        tight.limits.max_storage_buffer_binding_size = exact;
        let mut rasterizer = Rasterizer::new(&tight);
        rasterizer.set_deferred_counts(true);
        let mut frame = super::RasterFrame::new(&tight);
        for round in 0..2 {
            rasterizer
                .forward(&tight, &cloud, &camera, &settings, &mut frame, None)
                .unwrap_or_else(|e| panic!("tight render {round}: {e}"));
            assert_eq!(u64::from(frame.num_intersections), count, "exact: {round}");
        }
        assert_eq!(frame.read_image(&tight), expected);
    }
}
