//! `splatforge gpu`: which device splatforge opens, what it granted, and its copy bandwidth
//! (the memory-bandwidth ceiling the benchmarks compare their floors against).

use std::time::Instant;

use anyhow::Context;

use crate::gpu::{self, GpuContext, GpuOptions, timing::StageTimer};

/// Arguments of `splatforge gpu`.
#[derive(clap::Args, Debug)]
pub struct GpuArgs {
    /// Size of the buffer copied in the bandwidth test, in MiB (0 skips the test).
    #[arg(long, default_value_t = 1024)]
    pub copy_mib: u64,
}

pub fn run(args: GpuArgs) -> anyhow::Result<()> {
    let ctx = GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?;
    println!("device: {}", ctx.describe());
    println!(
        "driver: {} {}",
        ctx.adapter_info.driver, ctx.adapter_info.driver_info
    );
    let l = &ctx.limits;
    println!(
        "limits: max storage binding {} MiB, max buffer {} MiB, {} storage buffers per stage, \
         {} B workgroup memory, {} invocations per workgroup",
        l.max_storage_buffer_binding_size >> 20,
        l.max_buffer_size >> 20,
        l.max_storage_buffers_per_shader_stage,
        l.max_compute_workgroup_storage_size,
        l.max_compute_invocations_per_workgroup
    );
    if args.copy_mib > 0 {
        for method in [CopyMethod::CopyCommand, CopyMethod::ComputeShader] {
            let gbs = copy_bandwidth(&ctx, args.copy_mib, method)?;
            println!(
                "{}: {gbs:.0} GB/s (bytes read + written, {} MiB buffer, median of 10)",
                method.label(),
                args.copy_mib
            );
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum CopyMethod {
    /// `copy_buffer_to_buffer` (the driver's copy path).
    CopyCommand,
    /// A vec4 compute kernel (what our kernels can reach).
    ComputeShader,
}

impl CopyMethod {
    fn label(self) -> &'static str {
        match self {
            CopyMethod::CopyCommand => "buffer copy command",
            CopyMethod::ComputeShader => "compute-shader copy",
        }
    }
}

/// Median bandwidth of a device-local buffer-to-buffer copy, counting bytes read and written.
fn copy_bandwidth(ctx: &GpuContext, mib: u64, method: CopyMethod) -> anyhow::Result<f64> {
    let bytes = (mib << 20)
        .min(ctx.limits.max_buffer_size)
        .min(ctx.limits.max_storage_buffer_binding_size)
        / 16
        * 16;
    let src = gpu::storage_buffer(ctx, "copy src", bytes);
    let dst = gpu::storage_buffer(ctx, "copy dst", bytes);
    let pipeline = gpu::compute_pipeline(
        ctx,
        "bandwidth.wgsl",
        "copy_vec4",
        &gpu::ShaderDefs::new(),
        &[],
    );
    let bind = gpu::bind_buffers(ctx, "copy", &pipeline, 0, &[&src, &dst]);
    let mut timer = StageTimer::new(ctx, 2);
    let mut samples = Vec::new();
    for round in 0..13 {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        if let Some(t) = timer.as_mut() {
            t.reset();
            t.mark(&mut encoder, "start");
        }
        match method {
            CopyMethod::CopyCommand => encoder.copy_buffer_to_buffer(&src, 0, &dst, 0, bytes),
            CopyMethod::ComputeShader => {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                // Enough workgroups to fill any GPU; each thread loops over the rest.
                let workgroups = (bytes / 16).div_ceil(256).min(65_535 * 4) as u32;
                pass.dispatch_workgroups(workgroups.min(65_535), workgroups.div_ceil(65_535), 1);
            }
        }
        if let Some(t) = timer.as_mut() {
            t.mark(&mut encoder, "copy");
            t.resolve(&mut encoder);
        }
        let start = Instant::now();
        ctx.queue.submit([encoder.finish()]);
        ctx.wait_idle();
        let wall_ms = start.elapsed().as_secs_f64() * 1e3;
        let ms = match timer.as_ref() {
            Some(t) => t.read_ms(ctx).first().map(|(_, ms)| *ms).unwrap_or(wall_ms),
            None => wall_ms,
        };
        if round >= 3 {
            samples.push(ms);
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let median_ms = samples[samples.len() / 2];
    Ok(2.0 * bytes as f64 / (median_ms * 1e-3) / 1e9)
}
