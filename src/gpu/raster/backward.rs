//! The backward half of [`Rasterizer`]'s encoding (its entry point is `Rasterizer::backward`
//! in the parent module): the rasterizer's backward pass over the pieces of each tile list,
//! the fixed-order per-Gaussian sums of the deterministic mode, the projection's backward pass
//! into the raw parameters, and the densification statistics.

use super::kernels::dispatch_elements;
use super::{BandGradients, RasterFrame, Rasterizer, param_bindings, piece_items};
use crate::gpu::{self, GpuContext, Recorder};
use crate::model::{DensifyStats, GaussianCloud, ParamBuffers, ParamGroup};

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

    pub(super) fn encode_project_backward(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        cloud: &GaussianCloud,
        frame: &RasterFrame,
        grads: &ParamBuffers,
        bands: BandGradients,
    ) {
        let entries = [
            &[(0, &frame.uniforms)][..],
            &param_bindings(1, &cloud.params),
            &[(12, &frame.radii), (13, &frame.grad_2d)],
            // Every gradient but the higher bands' (the last group).
            &param_bindings(14, grads)[..5],
            &[(23, &frame.band_factors)],
        ]
        .concat();
        let bind = self.binds.project_backward.get(
            ctx,
            "project_backward",
            &self.kernels.project_backward,
            &entries,
        );
        dispatch_elements(ctx, rec, &self.kernels.project_backward, bind, cloud.len);

        // Then the higher bands' gradient from their factors, where it is wanted: one thread per
        // Gaussian and coefficient (none at degree 0).
        if bands == BandGradients::Factors {
            return;
        }
        let coefficients = crate::sh::rest_coeffs_for_degree(cloud.sh_degree()) as u32;
        let bind = self.binds.project_backward_sh_rest.get(
            ctx,
            "project_backward_sh_rest",
            &self.kernels.project_backward_sh_rest,
            &[
                (0, &frame.uniforms),
                (19, grads.get(ParamGroup::ShRest)),
                (23, &frame.band_factors),
            ],
        );
        dispatch_elements(
            ctx,
            rec,
            &self.kernels.project_backward_sh_rest,
            bind,
            cloud.len * coefficients,
        );
    }

    pub(super) fn encode_densify_stats(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        frame: &RasterFrame,
        stats: &DensifyStats,
    ) {
        let bind = self.binds.densify_stats.get(
            ctx,
            "accumulate_densify_stats",
            &self.kernels.densify_stats,
            &[
                (0, &frame.uniforms),
                (12, &frame.radii),
                (13, &frame.grad_2d),
                (20, &stats.grad_norm_sum),
                (21, &stats.visible_count),
                (22, &stats.max_radius),
            ],
        );
        dispatch_elements(
            ctx,
            rec,
            &self.kernels.densify_stats,
            bind,
            frame.num_gaussians,
        );
    }
}
