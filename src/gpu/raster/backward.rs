//! The backward half of [`Rasterizer`]'s encoding (its entry point is `Rasterizer::backward`
//! in the parent module): the rasterizer's backward pass over the pieces of each tile list,
//! the fixed-order per-Gaussian sums of the deterministic mode, and the projection's backward
//! pass into the raw parameters (which also adds the densification statistics).

use super::kernels::{PROJECT_BACKWARD_WORKGROUP, dispatch_elements, dispatch_elements_in};
use super::{RasterFrame, Rasterizer, param_bindings, piece_items};
use crate::gpu::{self, GpuContext, Recorder};
use crate::model::{DensifyStats, GaussianCloud, ParamBuffers};

impl Rasterizer {
    pub(super) fn encode_rasterize_backward(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
        d_image: &wgpu::Buffer,
    ) {
        let mut entries = vec![
            (0, &frame.uniforms),
            (1, &frame.tile_ranges),
            (2, &frame.intersection_gaussians),
            (3, &frame.splats),
            (4, &frame.image),
            (5, &frame.final_transmittance),
            (6, &frame.last_counts),
            (7, d_image),
            (9, &frame.intersection_tiles),
            (10, &frame.checkpoints),
        ];
        if self.deterministic {
            entries.push((11, &frame.intersection_slots));
            entries.push((12, &frame.intersection_grads));
        } else {
            entries.push((8, &frame.grad_2d));
        }
        let bind = self.binds.rasterize_backward.get(
            ctx,
            "rasterize_backward",
            &self.kernels.rasterize_backward,
            &entries,
        );
        let items = piece_items(frame);
        let pass = rec.pass();
        pass.set_pipeline(&self.kernels.rasterize_backward);
        pass.set_bind_group(0, bind, &[]);
        let (x, y, z) =
            gpu::dispatch_size_1d(items, ctx.limits.max_compute_workgroups_per_dimension);
        pass.dispatch_workgroups(x, y, z);
    }

    /// Deterministic mode: dL/d(2D quantities) per Gaussian, summing its intersections'
    /// gradients in list order.
    pub(super) fn encode_sum_intersection_gradients(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
    ) {
        let pipeline = self
            .kernels
            .sum_intersection_gradients
            .as_ref()
            .expect("deterministic rasterizer");
        let bind = self.binds.sum_intersection_gradients.get(
            ctx,
            "sum_intersection_gradients",
            pipeline,
            &[
                (0, &frame.uniforms),
                (1, &frame.depth_ids),
                (4, &frame.offsets),
                (11, &frame.intersection_grads),
                (12, &frame.grad_2d),
            ],
        );
        dispatch_elements(ctx, rec, pipeline, bind, frame.num_gaussians);
    }

    /// The projection backward into `grads`, adding the densification statistics to `stats`.
    pub(super) fn encode_project_backward(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        cloud: &GaussianCloud,
        frame: &RasterFrame,
        grads: &ParamBuffers,
        stats: Option<&DensifyStats>,
    ) {
        let mut entries = [
            &[(0, &frame.uniforms)][..],
            &param_bindings(1, &cloud.params),
            &[(12, &frame.radii), (13, &frame.grad_2d)],
            &param_bindings(14, grads),
        ]
        .concat();
        let (pipeline, cache, label) = match stats {
            Some(stats) => {
                entries.extend([
                    (20, &stats.grad_norm_sum),
                    (21, &stats.visible_count),
                    (22, &stats.max_radius),
                ]);
                let k = &self.kernels;
                let cache = &mut self.binds.project_backward_stats;
                (&k.project_backward_stats, cache, "project_backward_stats")
            }
            None => {
                let k = &self.kernels;
                let cache = &mut self.binds.project_backward;
                (&k.project_backward, cache, "project_backward")
            }
        };
        let bind = cache.get(ctx, label, pipeline, &entries);
        dispatch_elements_in(
            ctx,
            rec,
            pipeline,
            bind,
            cloud.len,
            PROJECT_BACKWARD_WORKGROUP,
        );
    }
}
