//! `splatforge bench dispatch`: what one compute dispatch costs on this device, apart from its
//! work. A training step is ~50 dispatches; whether fusing two kernels pays depends on this.
//!
//! Each case records `--count` dispatches of a trivial kernel (`data[i] = data[i] * 0.5 + 1`)
//! into one encoder between two GPU timestamps and reports the time per dispatch:
//! - `same buffer`: every dispatch reads and writes one buffer, so each must wait for the one
//!   before it (the barrier the kernels of a step have between them);
//! - `distinct buffers`: dispatches cycle over eight buffers, so neighbours are independent;
//! - `pass each`: as `same buffer`, with every dispatch in its own compute pass;
//! - `pass each, labelled`: the same with a label on every pass (as the kernel wrappers do);
//! - `copy each`: as `pass each`, with a 16-byte buffer copy between the passes (the way the
//!   sort and the scan upload their per-call parameters);
//! - `indirect`: as `same buffer`, with the workgroup count read from a buffer.
//!
//! Each case runs with one workgroup per dispatch (pure overhead) and with `--elements` floats
//! (the overhead plus a memory-bound pass; compare with `--elements` / bandwidth).

use anyhow::bail;

use crate::gpu::timing::StageTimer;
use crate::gpu::{self, GpuContext, GpuOptions};

const WORKGROUP_SIZE: u32 = 256;
const BUFFERS: usize = 8;

const KERNEL: &str = "
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
override COUNT: u32 = 256u;
@compute @workgroup_size(256)
fn touch(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = id.y * groups.x * 256u + id.x;
    if i < COUNT {
        data[i] = data[i] * 0.5 + 1.0;
    }
}
";

/// Arguments of `splatforge bench dispatch`.
#[derive(clap::Args, Debug)]
pub struct DispatchBenchArgs {
    /// Dispatches per timed encoder.
    #[arg(long, default_value_t = 200)]
    pub count: u32,
    /// Floats each dispatch touches in the larger cases, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256,500000,4000000")]
    pub elements: Vec<u32>,
    /// Timed repetitions (the median is reported), after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub iters: u32,
}

#[derive(Clone, Copy, Debug)]
enum Case {
    SameBuffer,
    DistinctBuffers,
    PassEach,
    PassEachLabelled,
    CopyEach,
    Indirect,
}

impl Case {
    const ALL: [Case; 6] = [
        Case::SameBuffer,
        Case::DistinctBuffers,
        Case::PassEach,
        Case::PassEachLabelled,
        Case::CopyEach,
        Case::Indirect,
    ];

    fn name(self) -> &'static str {
        match self {
            Case::SameBuffer => "same buffer",
            Case::DistinctBuffers => "distinct buffers",
            Case::PassEach => "pass each",
            Case::PassEachLabelled => "pass each, labelled",
            Case::CopyEach => "copy each",
            Case::Indirect => "indirect",
        }
    }
}

pub fn run(args: &DispatchBenchArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.iters == 0 || args.elements.contains(&0) {
        bail!("--count, --iters and every --elements value must be at least 1");
    }
    let ctx = GpuContext::new_headless(&GpuOptions::default())?;
    println!("# splatforge bench dispatch\n");
    println!("device: {}", ctx.describe());
    println!(
        "{} dispatches per encoder, median of {} runs; microseconds per dispatch\n",
        args.count, args.iters
    );
    println!("| floats per dispatch | case | us per dispatch |");
    println!("|---:|---|---:|");
    for row in measure(&ctx, args)? {
        println!("| {} | {} | {:.2} |", row.elements, row.case, row.us);
    }
    Ok(())
}

/// One case's result.
struct Row {
    elements: u32,
    case: &'static str,
    /// Median GPU microseconds per dispatch.
    us: f64,
}

/// Every case for every `--elements` value, in table order.
fn measure(ctx: &GpuContext, args: &DispatchBenchArgs) -> anyhow::Result<Vec<Row>> {
    let Some(mut timer) = StageTimer::new(ctx, 4) else {
        bail!("this device has no timestamp queries inside encoders");
    };
    let mut rows = Vec::new();
    for &elements in &args.elements {
        let pipeline = gpu::pipeline::compute_pipeline_from_wgsl(
            ctx,
            "bench dispatch",
            KERNEL,
            "touch",
            &[("COUNT", f64::from(elements))],
        );
        let buffers: Vec<wgpu::Buffer> = (0..BUFFERS)
            .map(|_| gpu::storage_buffer(ctx, "bench dispatch data", u64::from(elements) * 4))
            .collect();
        let bindings: Vec<wgpu::BindGroup> = buffers
            .iter()
            .map(|b| gpu::bind_buffers(ctx, "bench dispatch", &pipeline, 0, &[b]))
            .collect();
        let groups = elements.div_ceil(WORKGROUP_SIZE);
        let (x, y, z) =
            gpu::dispatch_size_1d(groups, ctx.limits.max_compute_workgroups_per_dimension);
        let args_buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("bench dispatch arguments"),
            size: 12,
            usage: wgpu::BufferUsages::INDIRECT | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let copy_source = gpu::storage_buffer(ctx, "bench dispatch copy source", 16);
        let copy_target = gpu::storage_buffer(ctx, "bench dispatch copy target", 16);
        ctx.queue
            .write_buffer(&args_buffer, 0, bytemuck::cast_slice(&[x, y, z]));
        for case in Case::ALL {
            let mut times = Vec::new();
            for iteration in 0..=args.iters {
                timer.reset();
                let mut encoder = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
                timer.mark(&mut encoder, "begin");
                let record = |pass: &mut wgpu::ComputePass<'_>, k: usize| {
                    pass.set_pipeline(&pipeline);
                    let binding = match case {
                        Case::DistinctBuffers => &bindings[k % BUFFERS],
                        _ => &bindings[0],
                    };
                    pass.set_bind_group(0, binding, &[]);
                    match case {
                        Case::Indirect => pass.dispatch_workgroups_indirect(&args_buffer, 0),
                        _ => pass.dispatch_workgroups(x, y, z),
                    }
                };
                if matches!(
                    case,
                    Case::PassEach | Case::PassEachLabelled | Case::CopyEach
                ) {
                    for k in 0..args.count as usize {
                        if matches!(case, Case::CopyEach) {
                            encoder.copy_buffer_to_buffer(&copy_source, 0, &copy_target, 0, 16);
                        }
                        let label = matches!(case, Case::PassEachLabelled).then_some("bench pass");
                        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label,
                            timestamp_writes: None,
                        });
                        record(&mut pass, k);
                    }
                } else {
                    let mut pass = encoder.begin_compute_pass(&Default::default());
                    for k in 0..args.count as usize {
                        record(&mut pass, k);
                    }
                }
                timer.mark(&mut encoder, "dispatches");
                timer.resolve(&mut encoder);
                ctx.queue.submit([encoder.finish()]);
                let ms = timer.read_ms(ctx);
                if iteration > 0 {
                    times.push(ms[0].1 * 1e3 / f64::from(args.count));
                }
            }
            rows.push(Row {
                elements,
                case: case.name(),
                us: super::bench::median(&mut times),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::test_context;

    #[test]
    fn every_case_is_timed_for_every_size() {
        let args = DispatchBenchArgs {
            count: 3,
            elements: vec![256, 1000],
            iters: 1,
        };
        let rows = measure(test_context(), &args).unwrap();
        let cases: Vec<&str> = Case::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(rows.len(), 2 * cases.len());
        for (row, (elements, case)) in rows.iter().zip(
            [256, 1000]
                .into_iter()
                .flat_map(|e| cases.iter().map(move |&c| (e, c))),
        ) {
            assert_eq!((row.elements, row.case), (elements, case));
            assert!(
                row.us > 0.0 && row.us.is_finite(),
                "{} {}: {}",
                row.elements,
                row.case,
                row.us
            );
        }
    }
}
