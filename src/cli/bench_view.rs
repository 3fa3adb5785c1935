//! `splatforge bench view`: the game plugin's renderer (`gpu::raster::view`) on synthetic
//! clouds, frame after frame as a game draws them: GPU time per frame for sorting (projection,
//! depth sort, binning), for drawing (rasterization with the depth test, and the composite
//! over the scene), and their total, from GPU timestamps (median over frames).
//!
//! The scene is the synthetic one of `bench raster` (Gaussians spread over the view, depths 2 to
//! 10, `--coverage` Gaussians per pixel); the depth buffer is cleared (nothing occludes), so
//! every splat is drawn.

use std::time::Instant;

use anyhow::{Context, bail};

use super::bench::{median, parse_size, synthetic_scene};
use crate::gpu::raster::view::{
    CloudDrawSettings, CompositeTarget, DepthMapping, SceneDepth, SceneEncoding, SplatRenderer,
    SplatViewFrame, ViewCloud,
};
use crate::gpu::raster::{WAIT_FOR_COUNT, view::ViewCamera};
use crate::gpu::timing::StageTimer;
use crate::gpu::{GpuContext, GpuOptions};
use crate::model::{GaussianCloud, Gaussians};
use crate::rng::Pcg32;
use crate::sh;

/// Arguments of `splatforge bench view`.
#[derive(clap::Args, Debug)]
pub struct ViewBenchArgs {
    /// Splat counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000000,3000000,6000000")]
    pub sizes: Vec<u32>,
    /// View size WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080")]
    pub resolution: String,
    /// Number of clouds the splats are split into (drawn together, as one list).
    #[arg(long, default_value_t = 1)]
    pub clouds: u32,
    /// Timed frames per size (the median is reported).
    #[arg(long, default_value_t = 30)]
    pub iters: u32,
    /// Untimed frames first (the first one reads the intersection count back; the GPU also
    /// needs a few frames to reach its clocks).
    #[arg(long, default_value_t = 30)]
    pub warmup: u32,
    /// The render target: `hdr` (Rgba16Float with storage usage, as the plugin sets up HDR
    /// cameras: the composite is a compute pass) or `srgb8` (Rgba8UnormSrgb, Bevy's default
    /// without HDR: a full-screen fragment pass).
    #[arg(long, value_enum, default_value_t = BenchTarget::Hdr)]
    pub target: BenchTarget,
    /// SH degree of the synthetic clouds (all bands drawn).
    #[arg(long, default_value_t = 3)]
    pub sh_degree: u32,
    /// Average number of Gaussians whose 3-sigma ellipse covers a pixel.
    #[arg(long, default_value_t = 40.0)]
    pub coverage: f64,
    /// Use the fallback kernels (no float atomics, no subgroups).
    #[arg(long)]
    pub fallback: bool,
    /// Seed of the synthetic scenes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The render target's format (and so the composite pass) of `bench view`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchTarget {
    Hdr,
    Srgb8,
}

impl BenchTarget {
    fn format(self) -> wgpu::TextureFormat {
        match self {
            BenchTarget::Hdr => wgpu::TextureFormat::Rgba16Float,
            BenchTarget::Srgb8 => wgpu::TextureFormat::Rgba8UnormSrgb,
        }
    }

    fn usage(self) -> wgpu::TextureUsages {
        let base = wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::RENDER_ATTACHMENT;
        match self {
            BenchTarget::Hdr => base | wgpu::TextureUsages::STORAGE_BINDING,
            BenchTarget::Srgb8 => base,
        }
    }
}

/// Labels of marks that are not GPU work of the renderer.
const GAP_BETWEEN_SUBMISSIONS: &str = "gap: between submissions";

/// Stages recorded after the scene is drawn; every other stage is sorting.
const DRAW_STAGES: [&str; 2] = ["rasterize", "composite"];

pub fn run(args: &ViewBenchArgs) -> anyhow::Result<()> {
    let (width, height) = parse_size(&args.resolution)?;
    if args.sh_degree > sh::MAX_SH_DEGREE {
        bail!(
            "--sh-degree {} is above {}",
            args.sh_degree,
            sh::MAX_SH_DEGREE
        );
    }
    if args.iters == 0 || args.clouds == 0 {
        bail!("--iters and --clouds must be at least 1");
    }
    if args.coverage.is_nan() || args.coverage <= 0.0 {
        bail!("--coverage must be positive");
    }
    let ctx = GpuContext::new_headless(&GpuOptions {
        force_fallbacks: args.fallback,
    })?;
    println!("# splatforge bench view\n");
    println!("device: {}", ctx.describe());
    println!(
        "settings: {width}x{height}, SH degree {} (all bands drawn), {} cloud(s) per view, \
         coverage {} Gaussians per pixel (3 sigma), {} warm-up + {} timed frames, median, \
         target {:?}",
        args.sh_degree,
        args.clouds,
        args.coverage,
        args.warmup,
        args.iters,
        args.target.format()
    );
    let mut timer = StageTimer::new(&ctx, 32);
    if timer.is_none() {
        println!("(this device has no timestamp queries inside encoders: wall clock only)");
    }
    let mut renderer = SplatRenderer::new(&ctx);
    let targets = Targets::new(&ctx, width, height, args.target);
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for &n in &args.sizes {
        let (row, stages) = bench_size(&ctx, &mut renderer, timer.as_mut(), &targets, args, n)
            .with_context(|| format!("{n} splats at {width}x{height}"))?;
        rows.push(row);
        details.push((n, stages));
    }
    println!(
        "\n| splats | resolution | tile intersections | sort ms | draw ms | total GPU ms | \
         wall ms per frame | GPU memory MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {width}x{height} | {} | {} | {} | {} | {:.3} | {:.0} |",
            row.splats,
            row.intersections,
            ms(row.sort),
            ms(row.draw),
            ms(row.sort.zip(row.draw).map(|(s, d)| s + d)),
            row.wall,
            row.memory_mb
        );
    }
    for (n, stages) in details {
        if stages.is_empty() {
            continue;
        }
        println!("\n{n} splats, per stage (median ms):\n");
        println!("| stage | ms |");
        println!("|---|---:|");
        for (label, value) in stages {
            println!("| {label} | {value:.3} |");
        }
    }
    Ok(())
}

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.3}"))
}

struct Row {
    splats: u32,
    intersections: u32,
    sort: Option<f64>,
    draw: Option<f64>,
    wall: f64,
    memory_mb: f64,
}

/// The scene colour, the output and the depth buffer of the benchmark's view.
struct Targets {
    scene: wgpu::TextureView,
    output: wgpu::Texture,
    output_view: wgpu::TextureView,
    depth: wgpu::TextureView,
}

impl Targets {
    fn new(ctx: &GpuContext, width: u32, height: u32, target: BenchTarget) -> Self {
        let texture = |label: &str, format: wgpu::TextureFormat, usage: wgpu::TextureUsages| {
            ctx.device.create_texture(&wgpu::TextureDescriptor {
                label: Some(label),
                size: wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format,
                usage,
                view_formats: &[],
            })
        };
        let view = |t: &wgpu::Texture| t.create_view(&wgpu::TextureViewDescriptor::default());
        let output = texture("bench output", target.format(), target.usage());
        let targets = Self {
            scene: view(&texture("bench scene", target.format(), target.usage())),
            output_view: view(&output),
            output,
            depth: view(&texture(
                "bench depth",
                wgpu::TextureFormat::Depth32Float,
                wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::RENDER_ATTACHMENT,
            )),
        };
        // Clear the scene to grey and the depth to "infinitely far" (reverse Z).
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("bench clear"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &targets.scene,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color {
                        r: 0.2,
                        g: 0.2,
                        b: 0.2,
                        a: 1.0,
                    }),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &targets.depth,
                depth_ops: Some(wgpu::Operations {
                    load: wgpu::LoadOp::Clear(0.0),
                    store: wgpu::StoreOp::Store,
                }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        ctx.queue.submit([encoder.finish()]);
        targets
    }
}

/// Splits `gaussians` into `parts` clouds of nearly equal size.
fn split_clouds(ctx: &GpuContext, gaussians: &Gaussians, parts: u32) -> Vec<GaussianCloud> {
    let n = gaussians.len();
    let parts = (parts as usize).clamp(1, n.max(1));
    (0..parts)
        .map(|p| {
            let (start, end) = (p * n / parts, (p + 1) * n / parts);
            let mut part = Gaussians::empty(gaussians.sh_degree);
            for i in start..end {
                part.push_from(gaussians, i);
            }
            GaussianCloud::from_gaussians(ctx, &part, part.len() as u32)
        })
        .collect()
}

fn bench_size(
    ctx: &GpuContext,
    renderer: &mut SplatRenderer,
    mut timer: Option<&mut StageTimer>,
    targets: &Targets,
    args: &ViewBenchArgs,
    n: u32,
) -> anyhow::Result<(Row, Vec<(String, f64)>)> {
    let (width, height) = parse_size(&args.resolution)?;
    let mut rng = Pcg32::new(args.seed, u64::from(n));
    let (gaussians, camera): (Gaussians, ViewCamera) =
        synthetic_scene(&mut rng, n, width, height, args.sh_degree, args.coverage);
    let clouds = split_clouds(ctx, &gaussians, args.clouds);
    drop(gaussians);
    let settings = CloudDrawSettings {
        max_sh_degree: args.sh_degree,
        ..CloudDrawSettings::default()
    };
    let views: Vec<ViewCloud> = clouds
        .iter()
        .map(|cloud| ViewCloud {
            cloud,
            world_from_local: glam::DAffine3::IDENTITY,
            settings,
        })
        .collect();
    let depth = SceneDepth {
        view: &targets.depth,
        multisampled: false,
        mapping: DepthMapping {
            numerator: 0.01,
            offset: 0.0,
        },
        origin: [0, 0],
    };
    let near_plane = crate::RenderSettings::default().near_plane;
    let mut frame = SplatViewFrame::new(ctx);
    let mut wall = Vec::new();
    let mut samples: Vec<(String, Vec<f64>)> = Vec::new();
    for iteration in 0..args.warmup + args.iters {
        let timed = iteration >= args.warmup;
        if let Some(t) = timer.as_deref_mut() {
            t.reset();
        }
        let start = Instant::now();
        renderer.prepare(
            ctx,
            &camera,
            near_plane,
            &views,
            &mut frame,
            timer.as_deref_mut(),
        )?;
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("bench view draw"),
            });
        if let Some(t) = timer.as_deref_mut() {
            t.mark(&mut encoder, GAP_BETWEEN_SUBMISSIONS);
        }
        renderer.encode_rasterize(ctx, &mut encoder, &frame, Some(&depth));
        if let Some(t) = timer.as_deref_mut() {
            t.mark(&mut encoder, DRAW_STAGES[0]);
        }
        let pass = renderer.encode_composite(
            ctx,
            &mut encoder,
            &frame,
            &targets.scene,
            SceneEncoding::Linear,
            CompositeTarget {
                texture: &targets.output,
                view: &targets.output_view,
            },
            [0, 0],
        );
        if iteration == 0 {
            println!("{n} splats: composite as a {pass:?} pass");
        }
        if let Some(t) = timer.as_deref_mut() {
            t.mark(&mut encoder, DRAW_STAGES[1]);
            t.resolve(&mut encoder);
        }
        ctx.queue.submit([encoder.finish()]);
        ctx.wait_idle();
        if !timed {
            continue;
        }
        wall.push(start.elapsed().as_secs_f64() * 1e3);
        if let Some(t) = timer.as_deref() {
            for (label, value) in t.read_ms(ctx) {
                match samples.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, values)) => values.push(value),
                    None => samples.push((label, vec![value])),
                }
            }
        }
    }
    let stages: Vec<(String, f64)> = samples
        .into_iter()
        .filter(|(label, _)| label != GAP_BETWEEN_SUBMISSIONS && label != WAIT_FOR_COUNT)
        .map(|(label, mut values)| {
            let value = median(&mut values);
            (label, value)
        })
        .collect();
    let (mut sort, mut draw) = (None, None);
    for (label, value) in &stages {
        let total = if DRAW_STAGES.contains(&label.as_str()) {
            &mut draw
        } else {
            &mut sort
        };
        *total = Some(total.unwrap_or(0.0) + value);
    }
    let cloud_bytes: u64 = clouds.iter().map(|c| c.params.bytes()).sum();
    let row = Row {
        splats: n,
        intersections: frame.max_seen_intersections(),
        sort,
        draw,
        wall: median(&mut wall),
        memory_mb: (cloud_bytes + frame.bytes()) as f64 / 1e6,
    };
    Ok((row, stages))
}
