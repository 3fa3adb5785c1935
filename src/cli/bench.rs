//! `splatforge bench`: GPU benchmarks.
//!
//! `splatforge bench raster` times the rasterizer (`gpu::raster`) on synthetic scenes: per stage
//! (GPU timestamps, median over iterations), and wall clock per render, with each stage's
//! minimum memory traffic and the time that traffic takes at a given bandwidth (the floor no
//! implementation of that stage can beat).

use std::time::Instant;

use anyhow::{Context, bail};
use glam::{DMat3, DVec3};

use crate::camera::Camera;
use crate::gpu::raster::{
    BandGradients, RasterFrame, Rasterizer, WAIT_BEFORE_BACKWARD, WAIT_FOR_COUNT,
};
use crate::gpu::timing::StageTimer;
use crate::gpu::{self, GpuContext, GpuOptions, Recorder};
use crate::model::{GaussianCloud, Gaussians, ParamBuffers, ParamGroup};
use crate::render_settings::{RenderSettings, TILE_SIZE};
use crate::rng::Pcg32;
use crate::sh;

/// Arguments of `splatforge bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// What to benchmark.
#[derive(clap::Subcommand, Debug)]
pub enum BenchTarget {
    /// The differentiable rasterizer, forward and forward + backward, per stage.
    Raster(RasterBenchArgs),
    /// Loading a scene: metadata, then decoding and resizing every image (best of N).
    Load(LoadBenchArgs),
    /// The game plugin's renderer: GPU time per frame (sort, draw, total) of synthetic clouds.
    View(super::bench_view::ViewBenchArgs),
    /// The fixed cost of one compute dispatch (for deciding which kernels to fuse).
    Dispatch(super::bench_dispatch::DispatchBenchArgs),
    /// The radix sort per block shape, each result checked against a stable CPU sort.
    Sort(super::bench_sort::SortBenchArgs),
}

/// Arguments of `splatforge bench load`.
#[derive(clap::Args, Debug)]
pub struct LoadBenchArgs {
    /// The scene folder.
    #[arg(short = 's', long = "source_path", alias = "source-path")]
    pub source_path: std::path::PathBuf,
    /// Resolution, as for training.
    #[arg(short = 'r', long, default_value_t = -1, allow_hyphen_values = true)]
    pub resolution: i32,
    /// Timed repetitions after one warm-up (the file cache); the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
}

/// Arguments of `splatforge bench raster`.
#[derive(clap::Args, Debug)]
pub struct RasterBenchArgs {
    /// Cloud sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000,3000000")]
    pub gaussians: Vec<u32>,
    /// Image sizes WIDTHxHEIGHT, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1280x720,1920x1080")]
    pub sizes: Vec<String>,
    /// Timed iterations per configuration (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub iters: u32,
    /// Untimed iterations first (pipeline warm-up, buffer growth).
    #[arg(long, default_value_t = 3)]
    pub warmup: u32,
    /// Memory bandwidth for the floor column, GB/s (3350: H100 SXM HBM3).
    #[arg(long, default_value_t = 3350.0)]
    pub bandwidth_gbs: f64,
    /// SH degree of the synthetic clouds (all bands active).
    #[arg(long, default_value_t = 3)]
    pub sh_degree: u32,
    /// Average number of Gaussians whose 3-sigma ellipse covers a pixel; sets the projected
    /// sizes (smaller Gaussians in bigger clouds, as in trained scenes).
    #[arg(long, default_value_t = 40.0)]
    pub coverage: f64,
    /// gsplat's opacity-aware tile bounds instead of inria's square ones.
    #[arg(long)]
    pub tight_tile_bounds: bool,
    /// gsplat's antialiased mode.
    #[arg(long)]
    pub antialiased: bool,
    /// Use the fallback kernels (no float atomics, no subgroups).
    #[arg(long)]
    pub fallback: bool,
    /// Seed of the synthetic scenes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Time a trained cloud instead of synthetic ones: a 3DGS PLY file, rendered from the
    /// training views of `--source_path` (`--gaussians` and `--sizes` are then unused).
    #[arg(long, requires = "source_path")]
    pub ply: Option<std::path::PathBuf>,
    /// The dataset whose training cameras render `--ply`.
    #[arg(
        short = 's',
        long = "source_path",
        alias = "source-path",
        requires = "ply"
    )]
    pub source_path: Option<std::path::PathBuf>,
    /// With `--ply`: how many training views, spread evenly over the list (each is timed
    /// `--iters` times).
    #[arg(long, default_value_t = 8)]
    pub views: u32,
    /// Cut tile lists into backward pieces of this many entries (a power of two, at least 128)
    /// instead of the device's default (128 where storage bindings hold 1 GiB or more, else 256).
    #[arg(long)]
    pub chunk_size: Option<u32>,
    /// With `--ply`: resolution, as for training (-1: automatic; 1, 2, 4, 8: divide; else a
    /// width).
    #[arg(short = 'r', long, default_value_t = -1, allow_hyphen_values = true)]
    pub resolution: i32,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        BenchTarget::Raster(args) => bench_raster(&args),
        BenchTarget::Load(args) => bench_load(&args),
        BenchTarget::View(args) => super::bench_view::run(&args),
        BenchTarget::Dispatch(args) => super::bench_dispatch::run(&args),
        BenchTarget::Sort(args) => super::bench_sort::run(&args),
    }
}

fn bench_load(args: &LoadBenchArgs) -> anyhow::Result<()> {
    use crate::dataset::{Dataset, DatasetOptions, load_images};
    use std::time::Instant;
    let mut options = DatasetOptions::new(&args.source_path);
    options.resolution = args.resolution;
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let start = Instant::now();
        f()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    let mut dataset = None;
    let mut images = 0;
    let mut best_metadata = f64::INFINITY;
    let mut best_images = f64::INFINITY;
    for round in 0..=args.repeat {
        let metadata_ms = time(&mut || {
            dataset = Some(Dataset::load(&options)?);
            Ok(())
        })?;
        let loaded = dataset.as_ref().expect("loaded above");
        let images_ms = time(&mut || {
            images = load_images(loaded, true)?.len();
            Ok(())
        })?;
        if round > 0 {
            best_metadata = best_metadata.min(metadata_ms);
            best_images = best_images.min(images_ms);
        }
    }
    let dataset = dataset.expect("loaded above");
    let (w, h) = dataset
        .views
        .first()
        .map(|v| (v.camera.width, v.camera.height))
        .unwrap_or((0, 0));
    println!(
        "{}: {} views ({w}x{h}), best of {}: metadata and image headers {best_metadata:.1} ms, \
         decoding {images} images {best_images:.1} ms ({:.2} ms per image, {} threads)",
        args.source_path.display(),
        dataset.views.len(),
        args.repeat,
        best_images / images.max(1) as f64,
        rayon::current_num_threads()
    );
    Ok(())
}

pub(super) fn parse_size(text: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .with_context(|| format!("image size {text:?} is not WIDTHxHEIGHT (e.g. 1920x1080)"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&v| v > 0)
            .with_context(|| format!("image size {text:?}: {v:?} is not a positive integer"))
    };
    Ok((parse(w)?, parse(h)?))
}

fn bench_raster(args: &RasterBenchArgs) -> anyhow::Result<()> {
    let sizes = args
        .sizes
        .iter()
        .map(|s| parse_size(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.sh_degree > sh::MAX_SH_DEGREE {
        bail!(
            "--sh-degree {} is above {}",
            args.sh_degree,
            sh::MAX_SH_DEGREE
        );
    }
    if args.iters == 0 || args.views == 0 {
        bail!("--iters and --views must be at least 1");
    }
    if !(args.coverage > 0.0 && args.bandwidth_gbs > 0.0) {
        bail!("--coverage and --bandwidth-gbs must be positive");
    }
    // Load the trained scene before starting the GPU: bad input fails fast.
    let trained = match (&args.ply, &args.source_path) {
        (Some(ply_path), Some(source)) => Some(load_trained_scene(args, ply_path, source)?),
        _ => None,
    };
    let ctx = GpuContext::new_headless(&GpuOptions {
        force_fallbacks: args.fallback,
    })?;
    println!("# splatforge bench raster\n");
    println!("device: {}", ctx.describe());
    let scene = match &args.ply {
        Some(path) => format!("the trained cloud {}", path.display()),
        None => format!(
            "synthetic clouds, SH degree {} (all bands active), coverage {} Gaussians per pixel \
             (3 sigma)",
            args.sh_degree, args.coverage
        ),
    };
    println!(
        "settings: {scene}, {} tile bounds, antialiased {}, {} warm-up + {} timed iterations, \
         floor at {} GB/s",
        if args.tight_tile_bounds {
            "tight"
        } else {
            "inria square"
        },
        args.antialiased,
        args.warmup,
        args.iters,
        args.bandwidth_gbs
    );
    let mut timer = StageTimer::new(&ctx, 32);
    if timer.is_none() {
        println!("(this device has no timestamp queries inside encoders: wall clock only)");
    }
    let mut rasterizer = crate::gpu::build_kernels(&ctx, || Rasterizer::new(&ctx))?;
    if let Some(chunk_size) = args.chunk_size {
        rasterizer.set_chunk_size(chunk_size)?;
        println!("backward pieces of {chunk_size} entries");
    }
    let settings = RenderSettings {
        antialiased: args.antialiased,
        tight_tile_bounds: args.tight_tile_bounds,
        ..RenderSettings::default()
    };
    if let Some(scene) = trained {
        let cloud =
            GaussianCloud::from_gaussians(&ctx, &scene.gaussians, scene.gaussians.len() as u32);
        let settings = RenderSettings {
            active_sh_degree: scene.gaussians.sh_degree,
            background: scene.background,
            ..settings
        };
        let mut rng = Pcg32::new(args.seed, 0);
        let title = format!(
            "{} Gaussians, {} training views of {}",
            scene.gaussians.len(),
            scene.cameras.len(),
            scene.source.display()
        );
        let bench = BenchCloud {
            cloud: &cloud,
            settings,
            cameras: &scene.cameras,
        };
        return bench_cloud(
            &ctx,
            &mut rasterizer,
            timer.as_mut(),
            args,
            &bench,
            &mut rng,
            &title,
        );
    }
    for &n in &args.gaussians {
        for &(width, height) in &sizes {
            let mut rng = Pcg32::new(args.seed, u64::from(n) ^ (u64::from(width) << 32));
            let (gaussians, camera) =
                synthetic_scene(&mut rng, n, width, height, args.sh_degree, args.coverage);
            let cloud = GaussianCloud::from_gaussians(&ctx, &gaussians, n);
            drop(gaussians);
            let bench = BenchCloud {
                cloud: &cloud,
                settings: RenderSettings {
                    active_sh_degree: args.sh_degree,
                    ..settings
                },
                cameras: std::slice::from_ref(&camera),
            };
            let title = format!("{n} Gaussians, {width}x{height}");
            bench_cloud(
                &ctx,
                &mut rasterizer,
                timer.as_mut(),
                args,
                &bench,
                &mut rng,
                &title,
            )
            .with_context(|| title.clone())?;
        }
    }
    Ok(())
}

/// A trained cloud and the training cameras that render it (`--ply`, `--source_path`).
struct TrainedScene {
    gaussians: Gaussians,
    cameras: Vec<Camera>,
    background: [f32; 3],
    source: std::path::PathBuf,
}

fn load_trained_scene(
    args: &RasterBenchArgs,
    ply_path: &std::path::Path,
    source: &std::path::Path,
) -> anyhow::Result<TrainedScene> {
    use crate::dataset::{Dataset, DatasetOptions};
    let mut options = DatasetOptions::new(source);
    options.resolution = args.resolution;
    options.eval = true;
    let dataset = Dataset::load(&options)?;
    let train: Vec<&Camera> = dataset.train_views().map(|v| &v.camera).collect();
    if train.is_empty() {
        bail!("{}: the dataset has no training views", source.display());
    }
    // `--views` cameras spread evenly over the training views.
    let count = (args.views as usize).min(train.len());
    let cameras = (0..count)
        .map(|k| train[k * train.len() / count].clone())
        .collect();
    let gaussians = crate::model::ply::read_gaussians_ply(ply_path)?;
    Ok(TrainedScene {
        gaussians,
        cameras,
        background: dataset.background,
        source: source.to_path_buf(),
    })
}

/// A camera at the origin looking down +z, and `n` Gaussians in a box in front of it: depths 2
/// to 10, positions spread over the image plus a 5% margin, random rotations, anisotropic
/// log-normal sizes whose median projected sigma gives `coverage` Gaussians per pixel, opacity
/// logits uniform in [-3, 4], random SH colours.
pub(super) fn synthetic_scene(
    rng: &mut Pcg32,
    n: u32,
    width: u32,
    height: u32,
    sh_degree: u32,
    coverage: f64,
) -> (Gaussians, Camera) {
    let (w, h) = (f64::from(width), f64::from(height));
    let focal = 0.9 * w;
    let camera = Camera::from_world_pose(
        width,
        height,
        focal,
        focal,
        w / 2.0,
        h / 2.0,
        DMat3::IDENTITY,
        DVec3::ZERO,
    );
    // Pixels covered by one 3-sigma disc: 9 pi sigma^2 (times e^{2 s^2} for log-sd s).
    let log_sd: f64 = 0.5;
    let median_sigma = (coverage * w * h
        / (f64::from(n.max(1)) * 9.0 * std::f64::consts::PI * (2.0 * log_sd * log_sd).exp()))
    .sqrt();
    let uniform = |rng: &mut Pcg32, low: f64, high: f64| low + (high - low) * rng.next_f64();
    let mut g = Gaussians::empty(sh_degree);
    let rest = 3 * sh::rest_coeffs_for_degree(sh_degree);
    let capacity = n as usize;
    g.means.reserve(3 * capacity);
    g.log_scales.reserve(3 * capacity);
    g.rotations.reserve(4 * capacity);
    g.logit_opacities.reserve(capacity);
    g.sh_dc.reserve(3 * capacity);
    g.sh_rest.reserve(rest * capacity);
    for _ in 0..n {
        let depth = uniform(rng, 2.0, 10.0);
        let u = uniform(rng, -0.05, 1.05) * w;
        let v = uniform(rng, -0.05, 1.05) * h;
        g.means.extend([
            ((u - w / 2.0) * depth / focal) as f32,
            ((v - h / 2.0) * depth / focal) as f32,
            depth as f32,
        ]);
        let sigma = median_sigma * (log_sd * rng.normal()).exp();
        let world = (sigma * depth / focal).ln();
        for _ in 0..3 {
            g.log_scales.push((world + 0.3 * rng.normal()) as f32);
        }
        g.rotations.extend([
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
        ]);
        g.logit_opacities.push(uniform(rng, -3.0, 4.0) as f32);
        for _ in 0..3 {
            g.sh_dc.push(sh::rgb_to_sh_dc(rng.next_f64()) as f32);
        }
        for _ in 0..rest {
            g.sh_rest.push((0.1 * rng.normal()) as f32);
        }
    }
    (g, camera)
}

/// Minimum bytes each stage must move (every input read once, every output written once), for
/// the layout the kernels use.
struct Traffic {
    n: f64,
    visible: f64,
    intersections: f64,
    tiles: f64,
    pixels: f64,
    params_per_gaussian: f64,
    /// Floats of the higher SH bands per Gaussian (their gradient is left as factors).
    band_floats: f64,
}

impl Traffic {
    fn stage_bytes(&self, stage: &str) -> Option<f64> {
        let Traffic {
            n,
            visible,
            intersections: m,
            tiles,
            pixels,
            params_per_gaussian: params,
            band_floats,
        } = *self;
        Some(match stage {
            // All raw parameters (finiteness check); splat 48 B, depth key + id, tile count,
            // rectangle, radius.
            "project" => n * params * 4.0 + n * (48.0 + 4.0 + 4.0 + 4.0 + 8.0 + 4.0),
            // One pass over the (key, id) pairs in and out, then the gather of counts.
            "depth sort" => n * 16.0 + n * 12.0,
            "scan" => n * 8.0,
            // Ids, offsets, rectangles of visible Gaussians; (tile, id) pairs out.
            "emit keys" => n * 8.0 + visible * 8.0 + m * 8.0,
            "tile sort" => m * 16.0,
            "tile ranges" => m * 4.0 + tiles * 8.0,
            // Per intersection an id and a 48-byte splat; per pixel 3 colours, T and a count.
            "rasterize" => m * (4.0 + 48.0) + tiles * 8.0 + pixels * 20.0,
            // The same reads, d_image, T and count per pixel; 2D gradients written once.
            "rasterize backward" => m * (4.0 + 48.0) + tiles * 8.0 + pixels * 20.0 + n * 36.0,
            // Parameters, 2D gradients and radius in; the gradients of every parameter but the
            // higher SH bands out, and the bands' 32 bytes of factors.
            "project backward" => {
                n * params * 4.0 + n * (params - band_floats) * 4.0 + n * (36.0 + 4.0 + 32.0)
            }
            "densify stats" => n * (4.0 + 8.0 + 24.0),
            _ => return None,
        })
    }
}

/// How long the tiles' lists are, and how far into them the pixels composite: the forward
/// walks a tile until its last pixel stops, the backward from there back to the front.
#[derive(Default)]
struct TileListStats {
    /// Per tile with a non-empty list: its length.
    lengths: Vec<f64>,
    /// Per such tile: the largest last-contributor count of its pixels.
    walked: Vec<f64>,
}

impl TileListStats {
    /// One render's tile ranges (row-major over the tile grid) and per-pixel last-contributor
    /// counts (row-major over an image `width` pixels wide).
    fn add(&mut self, ranges: &[[u32; 2]], last_counts: &[u32], width: u32) {
        let tiles_per_row = width.div_ceil(TILE_SIZE);
        let mut walked = vec![0u32; ranges.len()];
        for (pixel, &count) in last_counts.iter().enumerate() {
            let (x, y) = (pixel as u32 % width, pixel as u32 / width);
            let tile = ((y / TILE_SIZE) * tiles_per_row + x / TILE_SIZE) as usize;
            walked[tile] = walked[tile].max(count);
        }
        for (range, walked) in ranges.iter().zip(walked) {
            if range[1] > range[0] {
                self.lengths.push(f64::from(range[1] - range[0]));
                self.walked.push(f64::from(walked));
            }
        }
    }

    fn print(&self) {
        if let Some(line) = self.summary() {
            println!("{line}\n");
        }
    }

    fn summary(&self) -> Option<String> {
        if self.lengths.is_empty() {
            return None;
        }
        let describe = |values: &[f64]| {
            let mut sorted = values.to_vec();
            sorted.sort_by(f64::total_cmp);
            let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
            format!(
                "mean {:.0}, median {:.0}, p90 {:.0}, p99 {:.0}, max {:.0}",
                sorted.iter().sum::<f64>() / sorted.len() as f64,
                at(0.5),
                at(0.9),
                at(0.99),
                at(1.0)
            )
        };
        let total: f64 = self.lengths.iter().sum();
        let walked: f64 = self.walked.iter().sum();
        Some(format!(
            "tile lists ({} non-empty): length {}; walked (up to the last pixel's last \
             contributor) {}, {:.1}% of all entries",
            self.lengths.len(),
            describe(&self.lengths),
            describe(&self.walked),
            100.0 * walked / total.max(1.0)
        ))
    }
}

pub(super) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        0.5 * (values[mid - 1] + values[mid])
    }
}

/// What one table of `bench raster` times: a cloud on the GPU and the cameras it is rendered
/// from (each timed `--iters` times; the table's medians run over all of them).
struct BenchCloud<'a> {
    cloud: &'a GaussianCloud,
    settings: RenderSettings,
    cameras: &'a [Camera],
}

fn bench_cloud(
    ctx: &GpuContext,
    rasterizer: &mut Rasterizer,
    mut timer: Option<&mut StageTimer>,
    args: &RasterBenchArgs,
    bench: &BenchCloud,
    rng: &mut Pcg32,
    title: &str,
) -> anyhow::Result<()> {
    let BenchCloud {
        cloud,
        ref settings,
        cameras,
    } = *bench;
    let sh_degree = cloud.sh_degree();
    let n = cloud.len;
    let mut frame = RasterFrame::new(ctx);
    // One d_image for every camera: the backward reads the first 3 * width * height values.
    let max_pixels = cameras
        .iter()
        .map(|c| c.width * c.height)
        .max()
        .unwrap_or(0);
    let d_image_values: Vec<f32> = (0..3 * max_pixels).map(|_| rng.next_f32() - 0.5).collect();
    let d_image = gpu::storage_buffer_from(ctx, "bench d_image", &d_image_values);
    let grads = ParamBuffers::zeroed(ctx, "bench grads", n, sh_degree);
    let mut lists = TileListStats::default();
    let mut visible = 0usize;
    let mut intersections = 0u64;
    let (mut tiles, mut pixels) = (0u32, 0u32);

    let mut forward_wall = Vec::new();
    let mut full_wall = Vec::new();
    let mut stage_samples: Vec<(String, Vec<f64>)> = Vec::new();
    for iteration in 0..args.warmup + args.iters {
        let timed = iteration >= args.warmup;
        for camera in cameras {
            // Forward only.
            let start = Instant::now();
            rasterizer.forward(ctx, cloud, camera, settings, &mut frame, None)?;
            ctx.wait_idle();
            if timed {
                forward_wall.push(start.elapsed().as_secs_f64() * 1e3);
            }
            // Forward + backward, with stage timestamps.
            if let Some(t) = timer.as_deref_mut() {
                t.reset();
            }
            let start = Instant::now();
            rasterizer.forward(
                ctx,
                cloud,
                camera,
                settings,
                &mut frame,
                timer.as_deref_mut(),
            )?;
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("bench backward"),
                });
            rasterizer.backward(
                ctx,
                &mut Recorder::new(&mut encoder),
                cloud,
                camera,
                settings,
                &frame,
                &d_image,
                &grads,
                // Training's choice: the bands' gradient is formed by the Adam step.
                BandGradients::Factors,
                None,
                timer.as_deref_mut(),
            );
            if let Some(t) = timer.as_deref() {
                t.resolve(&mut encoder);
            }
            ctx.queue.submit([encoder.finish()]);
            ctx.wait_idle();
            if !timed {
                continue;
            }
            full_wall.push(start.elapsed().as_secs_f64() * 1e3);
            if let Some(t) = timer.as_deref() {
                for (label, ms) in t.read_ms(ctx) {
                    match stage_samples.iter_mut().find(|(l, _)| *l == label) {
                        Some((_, samples)) => samples.push(ms),
                        None => stage_samples.push((label, vec![ms])),
                    }
                }
            }
            if iteration + 1 == args.warmup + args.iters {
                // The last round: what each camera's render holds.
                visible += frame.read_radii(ctx).iter().filter(|&&r| r > 0).count();
                intersections += u64::from(frame.num_intersections);
                let [gx, gy] = frame.tile_grid();
                tiles += gx * gy;
                pixels += camera.width * camera.height;
                lists.add(
                    &frame.read_tile_ranges(ctx),
                    &frame.read_last_counts(ctx),
                    frame.width,
                );
            }
        }
    }

    // Per camera, averaged over the cameras.
    let views = cameras.len().max(1) as f64;
    let visible = visible as f64 / views;
    let m = intersections as f64 / views;
    let params_per_gaussian: usize = ParamGroup::ALL.iter().map(|g| g.width(sh_degree)).sum();
    let traffic = Traffic {
        n: f64::from(n),
        visible,
        intersections: m,
        tiles: f64::from(tiles) / views,
        pixels: f64::from(pixels) / views,
        params_per_gaussian: params_per_gaussian as f64,
        band_floats: ParamGroup::ShRest.width(sh_degree) as f64,
    };

    println!("\n## {title}\n");
    println!(
        "visible: {visible:.0} ({:.1}%); tile intersections: {m:.0} = {:.2} per Gaussian ({:.2} \
         per visible one), {:.0} per tile; GPU memory: cloud {:.1} MB, frame {:.1} MB{}\n",
        100.0 * visible / f64::from(n.max(1)),
        m / f64::from(n.max(1)),
        m / visible.max(1.0),
        m / traffic.tiles.max(1.0),
        cloud.params.bytes() as f64 / 1e6,
        frame.bytes() as f64 / 1e6,
        if cameras.len() > 1 {
            " (per view, mean over the views)"
        } else {
            ""
        },
    );
    lists.print();
    println!("| stage | median ms | min traffic MB | floor ms | floor / median |");
    println!("|---|---:|---:|---:|---:|");
    let mut gpu_forward = 0.0;
    let mut gpu_backward = 0.0;
    let mut in_backward = false;
    for (label, samples) in &mut stage_samples {
        let ms = median(samples);
        if label == WAIT_BEFORE_BACKWARD {
            in_backward = true;
            continue;
        }
        if label == WAIT_FOR_COUNT {
            println!("| ({label}) | {ms:.3} | | | |");
            continue;
        }
        if in_backward {
            gpu_backward += ms;
        } else {
            gpu_forward += ms;
        }
        match traffic.stage_bytes(label) {
            Some(bytes) => {
                let floor = bytes / (args.bandwidth_gbs * 1e9) * 1e3;
                println!(
                    "| {label} | {ms:.3} | {:.2} | {floor:.4} | {:.1}% |",
                    bytes / 1e6,
                    100.0 * floor / ms.max(1e-9)
                );
            }
            None => println!("| {label} | {ms:.3} | | | |"),
        }
    }
    if !stage_samples.is_empty() {
        println!("| **forward, GPU stages** | {gpu_forward:.3} | | | |");
        println!("| **backward, GPU stages** | {gpu_backward:.3} | | | |");
    }
    println!(
        "| **forward, wall clock** | {:.3} | | | |",
        median(&mut forward_wall)
    );
    println!(
        "| **forward + backward, wall clock** | {:.3} | | | |",
        median(&mut full_wall)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_are_named() {
        assert_eq!(parse_size("1920x1080").unwrap(), (1920, 1080));
        assert_eq!(parse_size("64X48").unwrap(), (64, 48));
        let error = format!("{:#}", parse_size("1920*1080").unwrap_err());
        assert!(error.contains("1920*1080"), "{error}");
        assert!(parse_size("0x10").is_err());
    }

    #[test]
    fn tile_list_stats_take_each_tiles_longest_walk() {
        // A 40 x 20 image: 3 x 2 tiles; tile 1 and the bottom row's tiles have empty lists.
        let ranges = [[0, 10], [10, 10], [10, 40], [40, 40], [40, 40], [40, 40]];
        let mut counts = vec![0u32; 40 * 20];
        counts[3] = 7; // tile 0
        counts[5 * 40 + 15] = 4; // tile 0
        counts[2 * 40 + 35] = 30; // tile 2
        counts[40 * 17 + 2] = 9; // tile 3: empty list, ignored
        let mut stats = TileListStats::default();
        stats.add(&ranges, &counts, 40);
        assert_eq!(stats.lengths, [10.0, 30.0]);
        assert_eq!(stats.walked, [7.0, 30.0]);
        let line = stats.summary().unwrap();
        assert!(
            line.starts_with("tile lists (2 non-empty): length mean 20,"),
            "{line}"
        );
        assert!(line.contains("max 30"), "{line}");
        // (7 + 30) / (10 + 30)
        assert!(line.ends_with("92.5% of all entries"), "{line}");
        assert!(TileListStats::default().summary().is_none());
    }

    #[test]
    fn synthetic_scene_is_in_front_of_the_camera() {
        let mut rng = Pcg32::new(0, 0);
        let (g, camera) = synthetic_scene(&mut rng, 1000, 320, 240, 3, 40.0);
        g.check_shapes().unwrap();
        for i in 0..g.len() {
            let z = camera.to_camera(DVec3::new(
                f64::from(g.means[3 * i]),
                f64::from(g.means[3 * i + 1]),
                f64::from(g.means[3 * i + 2]),
            ));
            assert!(z.z >= 2.0 - 1e-5 && z.z <= 10.0 + 1e-5);
        }
    }
}
