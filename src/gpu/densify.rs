//! Densify and prune on the GPU (`shaders/densify.wgsl`), exactly REFERENCE.md's "Densify and
//! prune", by stream compaction; and the periodic opacity reset.
//!
//! [`Densifier::densify_and_prune`]:
//! 1. a mark kernel decides per Gaussian whether the original, its clone and its two split
//!    children survive, as 0/1 flags in four sections `[originals | clones | first children |
//!    second children]`;
//! 2. an exclusive prefix scan ([`PrefixScan`]) of those `4 N` flags gives each output
//!    Gaussian its index and the total the new count;
//! 3. the counts are read back (**one blocking readback per densification**, every 100 steps
//!    in the reference schedule), to size the result;
//! 4. a scatter kernel per parameter group and array (parameters, then each Adam moment) writes
//!    the result into the gradient buffers, which hold nothing needed at this point (the next
//!    backward pass overwrites them), and the result's buffers and the gradients' are swapped;
//!    a split kernel overwrites the children's means and log-scales.
//!
//! Order of the result: the surviving originals in their original order, then the surviving
//! clones in their parents' order, then the surviving first children of the split Gaussians in
//! their parents' order, then the surviving second children (the reference's order).
//!
//! Memory: no second copy of the cloud. Within the capacity, the gradient buffers serve as the
//! scatter's destination, one array at a time, so nothing is allocated. When the result exceeds
//! the capacity, every per-Gaussian buffer is reallocated with 25% headroom, one array at a
//! time: the gradients are freed first, each array is scattered into a new buffer of the grown
//! capacity, and the old array is freed (and the GPU waited for) before the next one, so the
//! peak is the old state plus one grown array instead of the old state plus a grown copy of it.
//! The statistics are zero afterwards.
//!
//! Screen-size pruning: as REFERENCE.md states it, Gaussians whose `max_radius` exceeds
//! `max_screen_size` are pruned. (In inria's code the radii are zeroed before that test, so the
//! rule never fires there; `max_screen_size: Some(f32::INFINITY)` reproduces that, keeping only
//! the world-size rule.)

use bytemuck::{Pod, Zeroable};

use super::{GpuContext, ShaderDefs};
use crate::gpu;
use crate::gpu::scan::PrefixScan;
pub use crate::model::densify::{DensifyParams, DensifyReport};
use crate::model::densify::{RESET_OPACITY, split_seed_key};
use crate::model::{DensifyStats, GaussianCloud, OptimizerState, ParamBuffers, ParamGroup};

const WORKGROUP_SIZE: u32 = 256;

/// Headroom when the cloud outgrows its buffers: the new capacity is 1.25 x the new count
/// (growing costs three short waits for the GPU, so a small headroom is cheap).
const GROWTH_NUMERATOR: u64 = 5;
const GROWTH_DENOMINATOR: u64 = 4;

/// The cloud would not fit in one storage binding of this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapacityError {
    pub needed: u64,
    pub max: u64,
}

impl std::fmt::Display for CapacityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "densification would grow the cloud to {} Gaussians, but this GPU's storage \
             bindings hold at most {} (lower the densification or the SH degree)",
            self.needed, self.max
        )
    }
}

impl std::error::Error for CapacityError {}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct MarkUniforms {
    count: u32,
    grad_threshold: f32,
    clone_max_scale: f32,
    world_prune_scale: f32,
    min_opacity: f32,
    max_screen_size: f32,
    prune_by_size: u32,
    _padding: u32,
}

/// Uniforms of the scatter, split-children and opacity-reset kernels.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CountUniforms {
    count: u32,
    /// Scatter: the group's width; split children: the seed key; reset: logit(0.01) bits.
    extra: u32,
    /// Scatter: 1 when new Gaussians get zeros (the Adam moments) instead of a copy.
    zero_new: u32,
    _padding: u32,
}

/// The three per-Gaussian arrays densification rearranges, in the order it does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Array {
    Params,
    ExpAvg,
    ExpAvgSq,
}

/// Per-densification scratch sized for a number of Gaussians.
struct Scratch {
    gaussians: u32,
    /// The `4 N` keep flags.
    flags: wgpu::Buffer,
    /// Their exclusive scan, `4 N + 1` entries.
    offsets: wgpu::Buffer,
}

/// The densification and opacity-reset kernels, with their scratch buffers.
pub struct Densifier {
    mark: wgpu::ComputePipeline,
    scatter: wgpu::ComputePipeline,
    split_children: wgpu::ComputePipeline,
    reset: wgpu::ComputePipeline,
    scan: PrefixScan,
    scratch: Option<Scratch>,
    /// Clones and splits selected (u32 x 2), before pruning.
    selected: wgpu::Buffer,
    /// [new count, clones selected, splits selected], read back once per densification.
    counts: wgpu::Buffer,
}

impl Densifier {
    pub fn new(ctx: &GpuContext) -> Self {
        let constants = [("WORKGROUP_SIZE", f64::from(WORKGROUP_SIZE))];
        let pipeline = |define: &str, entry: &str| {
            let defs = ShaderDefs::new().with(define);
            gpu::compute_pipeline(ctx, "densify.wgsl", entry, &defs, &constants)
        };
        Self {
            mark: pipeline("MARK", "mark_gaussians"),
            scatter: pipeline("SCATTER", "scatter_group"),
            split_children: pipeline("SPLIT_CHILDREN", "split_children"),
            reset: pipeline("RESET_OPACITY", "reset_opacity"),
            scan: PrefixScan::new(ctx),
            scratch: None,
            selected: gpu::storage_buffer(ctx, "densify.selected", 8),
            counts: gpu::storage_buffer(ctx, "densify.counts", 12),
        }
    }

    /// Runs densify-and-prune now: submits the marking and the scan, waits once for the counts
    /// (a blocking readback), then submits the scatter without waiting. Work that writes the
    /// statistics or parameters must have been submitted before the call.
    ///
    /// On success `cloud`, `optimizer` (moments; step counts are kept), `grads` (when grown)
    /// and `stats` (zeroed, reallocated when grown) describe the new cloud. When the result
    /// would not fit in one storage binding of the device, nothing changes and the error says
    /// so.
    pub fn densify_and_prune(
        &mut self,
        ctx: &GpuContext,
        cloud: &mut GaussianCloud,
        grads: &mut ParamBuffers,
        optimizer: &mut OptimizerState,
        stats: &mut DensifyStats,
        params: &DensifyParams,
    ) -> Result<DensifyReport, CapacityError> {
        let n = cloud.len;
        let sh_degree = cloud.sh_degree();
        for buffers in [&*grads, &optimizer.exp_avg, &optimizer.exp_avg_sq] {
            assert!(
                buffers.capacity >= n && buffers.sh_degree == sh_degree,
                "densify: gradient and moment buffers must match the cloud"
            );
        }
        assert!(
            stats.capacity >= n,
            "densify: statistics smaller than the cloud"
        );

        // 1-2. Mark and scan, then read the counts back.
        let (after, cloned, split) = if n == 0 {
            (0, 0, 0)
        } else {
            self.mark_and_count(ctx, cloud, stats, params)
        };
        let report = DensifyReport {
            before: n,
            cloned,
            split,
            pruned: n + cloned + split - after,
            after,
        };

        // 3. Capacity: grow with headroom only when the result does not fit.
        let max_gaussians = max_gaussians_per_binding(ctx, sh_degree);
        if u64::from(after) > max_gaussians {
            return Err(CapacityError {
                needed: u64::from(after),
                max: max_gaussians,
            });
        }
        let grown = after > cloud.capacity();
        let capacity = if grown {
            let with_headroom = u64::from(after) * GROWTH_NUMERATOR / GROWTH_DENOMINATOR;
            with_headroom.min(max_gaussians) as u32
        } else {
            cloud.capacity()
        };

        // 4. Rearrange each array through the gradient buffers (see the module docs).
        if grown {
            grads.destroy();
            *grads = ParamBuffers::zeroed(ctx, "grads", capacity, sh_degree);
            stats.destroy();
            *stats = DensifyStats::zeroed(ctx, capacity);
        }
        for array in [Array::Params, Array::ExpAvg, Array::ExpAvgSq] {
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("densify scatter"),
                });
            if array == Array::Params && !grown {
                stats.clear(&mut encoder);
            }
            let source = match array {
                Array::Params => &mut cloud.params,
                Array::ExpAvg => &mut optimizer.exp_avg,
                Array::ExpAvgSq => &mut optimizer.exp_avg_sq,
            };
            if n > 0 && after > 0 {
                self.encode_scatter(ctx, &mut encoder, n, source, grads, array, params);
            }
            ctx.queue.submit([encoder.finish()]);
            // `grads` now holds the rearranged array and `source` the old one.
            std::mem::swap(source, grads);
            if grown {
                // The old array is smaller than the new capacity: free it before the next
                // array's buffer is allocated.
                grads.destroy();
                if array != Array::ExpAvgSq {
                    ctx.wait_idle();
                }
                *grads = ParamBuffers::zeroed(ctx, "grads", capacity, sh_degree);
            }
        }
        cloud.len = after;
        Ok(report)
    }

    /// Marks, scans and reads back `(new count, clones selected, splits selected)`.
    fn mark_and_count(
        &mut self,
        ctx: &GpuContext,
        cloud: &GaussianCloud,
        stats: &DensifyStats,
        params: &DensifyParams,
    ) -> (u32, u32, u32) {
        let n = cloud.len;
        self.ensure_scratch(ctx, n);
        let scratch = self.scratch.as_ref().expect("just ensured");
        let uniforms = MarkUniforms {
            count: n,
            grad_threshold: params.grad_threshold,
            clone_max_scale: params.percent_dense * params.extent,
            world_prune_scale: 0.1 * params.extent,
            min_opacity: params.min_opacity,
            max_screen_size: params.max_screen_size.unwrap_or(0.0),
            prune_by_size: u32::from(params.max_screen_size.is_some()),
            _padding: 0,
        };
        let uniform = gpu::uniform_buffer_from(ctx, "densify.mark", &uniforms);
        let mark_bindings = gpu::bind_buffers(
            ctx,
            "densify.mark",
            &self.mark,
            0,
            &[
                &uniform,
                cloud.params.get(ParamGroup::LogScales),
                cloud.params.get(ParamGroup::Opacities),
                &stats.grad_norm_sum,
                &stats.visible_count,
                &stats.max_radius,
                &scratch.flags,
                &self.selected,
            ],
        );
        let flag_count = 4 * n;

        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("densify mark"),
            });
        encoder.clear_buffer(&self.selected, 0, None);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("densify mark"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.mark);
            pass.set_bind_group(0, &mark_bindings, &[]);
            gpu::dispatch_1d(ctx, &mut pass, n, WORKGROUP_SIZE);
        }
        self.scan.encode(
            ctx,
            &mut encoder,
            &scratch.flags,
            &scratch.offsets,
            flag_count,
        );
        encoder.copy_buffer_to_buffer(
            &scratch.offsets,
            u64::from(flag_count) * 4,
            &self.counts,
            0,
            4,
        );
        encoder.copy_buffer_to_buffer(&self.selected, 0, &self.counts, 4, 8);
        ctx.queue.submit([encoder.finish()]);
        let counts: Vec<u32> = gpu::read_buffer(ctx, &self.counts, 3);
        (counts[0], counts[1], counts[2])
    }

    /// Encodes the scatter of one array (`source`, `n` Gaussians) into `target`, every group;
    /// for the parameters also the split children's means and scales.
    #[allow(clippy::too_many_arguments)]
    fn encode_scatter(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        n: u32,
        source: &ParamBuffers,
        target: &ParamBuffers,
        array: Array,
        params: &DensifyParams,
    ) {
        let offsets = &self.scratch.as_ref().expect("marked before").offsets;
        let sh_degree = source.sh_degree;
        let zero_new = u32::from(array != Array::Params);
        let mut dispatches = Vec::new();
        for group in ParamGroup::ALL {
            let width = group.width(sh_degree) as u32;
            if width == 0 {
                continue;
            }
            let uniforms = CountUniforms {
                zero_new,
                ..count_uniforms(n, width)
            };
            let uniform = gpu::uniform_buffer_from(ctx, "densify.scatter", &uniforms);
            let bindings = gpu::bind_buffers(
                ctx,
                &format!("densify.scatter.{}", group.name()),
                &self.scatter,
                0,
                &[&uniform, offsets, source.get(group), target.get(group)],
            );
            dispatches.push((bindings, n * width));
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("densify scatter"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.scatter);
        for (bindings, floats) in &dispatches {
            pass.set_bind_group(0, bindings, &[]);
            gpu::dispatch_1d(ctx, &mut pass, *floats, WORKGROUP_SIZE);
        }
        if array != Array::Params {
            return;
        }
        // After the scatter (which copied the parents' means and scales to the children).
        let child_uniform = gpu::uniform_buffer_from(
            ctx,
            "densify.split_children",
            &count_uniforms(n, split_seed_key(params.seed)),
        );
        let child_bindings = gpu::bind_buffers(
            ctx,
            "densify.split_children",
            &self.split_children,
            0,
            &[
                &child_uniform,
                offsets,
                source.get(ParamGroup::Means),
                source.get(ParamGroup::LogScales),
                source.get(ParamGroup::Rotations),
                target.get(ParamGroup::Means),
                target.get(ParamGroup::LogScales),
            ],
        );
        pass.set_pipeline(&self.split_children);
        pass.set_bind_group(0, &child_bindings, &[]);
        gpu::dispatch_1d(ctx, &mut pass, 2 * n, WORKGROUP_SIZE);
    }

    /// Scratch buffers for at least `n` Gaussians (grown by the same rule as the cloud).
    fn ensure_scratch(&mut self, ctx: &GpuContext, n: u32) {
        if self.scratch.as_ref().is_none_or(|s| s.gaussians < n) {
            let with_headroom = u64::from(n) * GROWTH_NUMERATOR / GROWTH_DENOMINATOR;
            let gaussians = with_headroom
                .min(max_gaussians_per_binding(ctx, 0))
                .max(u64::from(n)) as u32;
            let flags = u64::from(gaussians) * 4;
            self.scratch = Some(Scratch {
                gaussians,
                flags: gpu::storage_buffer(ctx, "densify.flags", flags * 4),
                offsets: gpu::storage_buffer(ctx, "densify.offsets", (flags + 1) * 4),
            });
        }
    }

    /// Encodes the opacity reset: `opacity = logit(min(sigmoid(opacity), 0.01))` for the live
    /// Gaussians and zero Adam moments for the opacity group (step counts are kept, as in the
    /// reference, which swaps the tensor and zeroes its state).
    pub fn reset_opacity(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        cloud: &GaussianCloud,
        optimizer: &OptimizerState,
    ) {
        let group = ParamGroup::Opacities;
        encoder.clear_buffer(optimizer.exp_avg.get(group), 0, None);
        encoder.clear_buffer(optimizer.exp_avg_sq.get(group), 0, None);
        if cloud.len == 0 {
            return;
        }
        let max_logit = (RESET_OPACITY / (1.0 - RESET_OPACITY)).ln() as f32;
        // A fresh uniform per call (every 3000 steps): several resets may share a submission.
        let uniform = gpu::uniform_buffer_from(
            ctx,
            "densify.reset_opacity",
            &count_uniforms(cloud.len, max_logit.to_bits()),
        );
        let bindings = gpu::bind_buffers(
            ctx,
            "densify.reset_opacity",
            &self.reset,
            0,
            &[&uniform, cloud.params.get(group)],
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("reset opacity"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.reset);
        pass.set_bind_group(0, &bindings, &[]);
        gpu::dispatch_1d(ctx, &mut pass, cloud.len, WORKGROUP_SIZE);
    }
}

fn count_uniforms(count: u32, extra: u32) -> CountUniforms {
    CountUniforms {
        count,
        extra,
        zero_new: 0,
        _padding: 0,
    }
}

/// The most Gaussians whose widest parameter group fits in one storage binding.
fn max_gaussians_per_binding(ctx: &GpuContext, sh_degree: u32) -> u64 {
    let widest = ParamGroup::ALL
        .iter()
        .map(|g| g.width(sh_degree) as u64)
        .max()
        .unwrap_or(1)
        .max(4); // the flags hold 4 entries per Gaussian
    (ctx.max_binding_bytes() / (widest * 4)).min(u64::from(u32::MAX / 8))
}

#[cfg(test)]
mod tests;
