//! The rasterizer's compute pipelines and their cached bind groups.

use crate::gpu::{self, CachedBindGroup, GpuContext, ShaderDefs};

/// Threads per workgroup of the one-thread-per-element kernels (project.wgsl, bin.wgsl).
pub(super) const ELEMENT_WORKGROUP: u32 = 256;

/// Every pipeline of the rasterizer, specialised for the device's capabilities.
pub(super) struct Kernels {
    pub project_forward: wgpu::ComputePipeline,
    pub project_backward: wgpu::ComputePipeline,
    pub densify_stats: wgpu::ComputePipeline,
    pub gather_depth_order_counts: wgpu::ComputePipeline,
    pub emit_intersections: wgpu::ComputePipeline,
    pub tile_ranges: wgpu::ComputePipeline,
    pub tile_ranges_dispatch_args: wgpu::ComputePipeline,
    pub rasterize_forward: wgpu::ComputePipeline,
    pub rasterize_backward: wgpu::ComputePipeline,
}

impl Kernels {
    pub fn new(ctx: &GpuContext) -> Self {
        let defs = ShaderDefs::for_capabilities(&ctx.capabilities);
        let pipeline =
            |file: &str, entry: &str| gpu::compute_pipeline(ctx, file, entry, &defs, &[]);
        Self {
            project_forward: pipeline("project.wgsl", "project_forward"),
            project_backward: pipeline("project.wgsl", "project_backward"),
            densify_stats: pipeline("project.wgsl", "accumulate_densify_stats"),
            gather_depth_order_counts: pipeline("bin.wgsl", "gather_depth_order_counts"),
            emit_intersections: pipeline("bin.wgsl", "emit_intersections"),
            tile_ranges: pipeline("bin.wgsl", "tile_ranges"),
            tile_ranges_dispatch_args: pipeline("bin.wgsl", "tile_ranges_dispatch_args"),
            rasterize_forward: pipeline("rasterize.wgsl", "rasterize_forward"),
            rasterize_backward: pipeline("rasterize.wgsl", "rasterize_backward"),
        }
    }
}

/// One cached bind group per kernel.
#[derive(Default)]
pub(super) struct BindGroups {
    pub project_forward: CachedBindGroup,
    pub project_backward: CachedBindGroup,
    pub densify_stats: CachedBindGroup,
    pub gather_depth_order_counts: CachedBindGroup,
    pub emit_intersections: CachedBindGroup,
    pub tile_ranges: CachedBindGroup,
    pub tile_ranges_dispatch_args: CachedBindGroup,
    pub rasterize_forward: CachedBindGroup,
    pub rasterize_backward: CachedBindGroup,
}

/// Encodes one compute pass running `pipeline` over `items` elements (one thread each).
pub(super) fn dispatch_elements(
    ctx: &GpuContext,
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    items: u32,
) {
    if items == 0 {
        return;
    }
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    gpu::dispatch_1d(ctx, &mut pass, items, ELEMENT_WORKGROUP);
}

/// Encodes one compute pass running `pipeline` with one workgroup per tile.
pub(super) fn dispatch_tiles(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    tile_grid: [u32; 2],
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(tile_grid[0], tile_grid[1], 1);
}
