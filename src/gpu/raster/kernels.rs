//! The rasterizer's compute pipelines and their cached bind groups.

use crate::gpu::{self, CachedBindGroup, GpuContext, Recorder, ShaderDefs};

/// Threads per workgroup of the one-thread-per-element kernels (project.wgsl, bin.wgsl).
pub(super) const ELEMENT_WORKGROUP: u32 = 256;

/// Every pipeline of the rasterizer, specialised for the device's capabilities and for the
/// deterministic backward pass or the one with float atomics.
pub(super) struct Kernels {
    pub project_forward: wgpu::ComputePipeline,
    pub project_backward: wgpu::ComputePipeline,
    /// The higher SH bands' gradients, one thread per Gaussian and band coefficient.
    pub project_backward_sh_rest: wgpu::ComputePipeline,
    pub densify_stats: wgpu::ComputePipeline,
    pub gather_depth_order_counts: wgpu::ComputePipeline,
    pub emit_intersections: wgpu::ComputePipeline,
    pub clear_tile_ranges: wgpu::ComputePipeline,
    pub tile_ranges: wgpu::ComputePipeline,
    pub rasterize_forward: wgpu::ComputePipeline,
    /// The forward in pieces, for images of few tiles.
    pub rasterize_pieces: wgpu::ComputePipeline,
    pub combine_pieces: wgpu::ComputePipeline,
    pub rasterize_backward: wgpu::ComputePipeline,
    /// Deterministic mode only: the per-Gaussian sum of the per-intersection gradients.
    pub sum_intersection_gradients: Option<wgpu::ComputePipeline>,
    /// Not in deterministic mode: zeroes the per-Gaussian sums the backward's atomics add to.
    pub clear_grad_2d: Option<wgpu::ComputePipeline>,
}

impl Kernels {
    pub fn new(ctx: &GpuContext, deterministic: bool) -> Self {
        let caps = &ctx.capabilities;
        let mut defs = ShaderDefs::for_capabilities(caps);
        // The reduce-scatter of rasterize.wgsl needs 8 lanes or more.
        let wide = caps.subgroups && caps.subgroup_min_size >= 8;
        if wide {
            defs.define("WIDE_SUBGROUPS");
        }
        if deterministic {
            defs.define("DETERMINISTIC");
        } else if caps.subgroups {
            // The backward's subgroups skip the splats none of their pixels sees (the fixed
            // order of the deterministic sums needs every splat walked).
            defs.define("SUBGROUP_SKIPS");
        }
        let raster_constants = rasterize_constants(deterministic, wide, caps.subgroup_min_size);
        let pipeline = |file: &str, entry: &str| {
            let constants: &[(&str, f64)] = if file == "rasterize.wgsl" {
                &raster_constants
            } else {
                &[]
            };
            gpu::compute_pipeline(ctx, file, entry, &defs, constants)
        };
        Self {
            project_forward: pipeline("project.wgsl", "project_forward"),
            project_backward: pipeline("project.wgsl", "project_backward"),
            project_backward_sh_rest: pipeline("project.wgsl", "project_backward_sh_rest"),
            densify_stats: pipeline("project.wgsl", "accumulate_densify_stats"),
            gather_depth_order_counts: pipeline("bin.wgsl", "gather_depth_order_counts"),
            emit_intersections: pipeline("bin.wgsl", "emit_intersections"),
            clear_tile_ranges: pipeline("bin.wgsl", "clear_tile_ranges"),
            tile_ranges: pipeline("bin.wgsl", "tile_ranges"),
            rasterize_forward: pipeline("rasterize.wgsl", "rasterize_forward"),
            rasterize_pieces: pipeline("rasterize.wgsl", "rasterize_pieces"),
            combine_pieces: pipeline("rasterize.wgsl", "combine_pieces"),
            rasterize_backward: pipeline("rasterize.wgsl", "rasterize_backward"),
            sum_intersection_gradients: deterministic
                .then(|| pipeline("bin.wgsl", "sum_intersection_gradients")),
            clear_grad_2d: (!deterministic).then(|| pipeline("rasterize.wgsl", "clear_grad_2d")),
        }
    }
}

/// The override constants of rasterize.wgsl: the backward batch size and, for the deterministic
/// backward with subgroups, the workgroup memory of its per-subgroup sums (9 floats per batch
/// splat and subgroup, for as many subgroups as 256 threads make with the smallest subgroups).
fn rasterize_constants(
    deterministic: bool,
    wide: bool,
    subgroup_min_size: u32,
) -> Vec<(&'static str, f64)> {
    if !deterministic {
        return vec![("BACKWARD_BATCH", 256.0)];
    }
    if !wide {
        return vec![("BACKWARD_BATCH", 32.0)];
    }
    let max_subgroups = 256 / subgroup_min_size;
    let batch = if max_subgroups <= 16 { 32 } else { 16 };
    vec![
        ("BACKWARD_BATCH", f64::from(batch)),
        ("MAX_SUBGROUPS", f64::from(max_subgroups)),
        ("SUBGROUP_SUMS", f64::from(batch * max_subgroups * 9)),
    ]
}

/// One cached bind group per kernel.
#[derive(Default)]
pub(super) struct BindGroups {
    pub project_forward: CachedBindGroup,
    pub project_backward: CachedBindGroup,
    pub project_backward_sh_rest: CachedBindGroup,
    pub densify_stats: CachedBindGroup,
    pub gather_depth_order_counts: CachedBindGroup,
    pub emit_intersections: CachedBindGroup,
    pub clear_tile_ranges: CachedBindGroup,
    pub tile_ranges: CachedBindGroup,
    pub rasterize_forward: CachedBindGroup,
    pub rasterize_pieces: CachedBindGroup,
    pub combine_pieces: CachedBindGroup,
    pub rasterize_backward: CachedBindGroup,
    pub sum_intersection_gradients: CachedBindGroup,
    pub clear_grad_2d: CachedBindGroup,
}

/// Records `pipeline` over `items` elements (one thread each) into the open pass.
pub(super) fn dispatch_elements(
    ctx: &GpuContext,
    rec: &mut Recorder,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    items: u32,
) {
    if items == 0 {
        return;
    }
    let pass = rec.pass();
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    gpu::dispatch_1d(ctx, pass, items, ELEMENT_WORKGROUP);
}

/// Records `pipeline` with one workgroup per tile into the open pass.
pub(super) fn dispatch_tiles(
    rec: &mut Recorder,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    tile_grid: [u32; 2],
) {
    let pass = rec.pass();
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(tile_grid[0], tile_grid[1], 1);
}
