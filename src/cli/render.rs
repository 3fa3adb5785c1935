//! `splatforge render`: render a dataset's cameras from a trained cloud, to PNG files.
//!
//! Two forms:
//! - `render -s <dataset> --ply <file.ply> --out <dir> [--split test|train|all] [-r N]
//!   [--white_background]` writes `<dir>/<image stem>.png` for each camera of the split;
//! - `render -m <model> [--iteration N] [--skip_train] [--skip_test]` does what the reference's
//!   render.py does: `<model>/{train,test}/ours_<N>/{renders,gt}/<00000>.png`, with the scene
//!   and the rasterizer settings of `<model>/config.ron` (`pipeline.antialiasing`,
//!   `near_plane`, `tight_tile_bounds`, the background), so renders match what training saw,
//!   and the PLY of iteration N (the latest by default).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::Config;
use crate::dataset::{Dataset, DatasetOptions, Split, load_view_image};
use crate::fsutil;
use crate::gpu::raster::{RasterFrame, Rasterizer};
use crate::gpu::{GpuContext, GpuOptions};
use crate::model::{GaussianCloud, Gaussians, ply};
use crate::render_settings::RenderSettings;
use crate::train::outputs;

/// Which cameras to render in the dataset form.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitChoice {
    Train,
    Test,
    All,
}

/// Arguments of `splatforge render`.
#[derive(clap::Args, Debug)]
pub struct RenderArgs {
    /// A trained model folder (render.py form).
    #[arg(short = 'm', long = "model_path", alias = "model-path")]
    pub model_path: Option<PathBuf>,
    /// Iteration of the PLY to render (model form); default: the latest saved.
    #[arg(long)]
    pub iteration: Option<u32>,
    /// Model form: do not render the training views.
    #[arg(long = "skip_train", alias = "skip-train")]
    pub skip_train: bool,
    /// Model form: do not render the test views.
    #[arg(long = "skip_test", alias = "skip-test")]
    pub skip_test: bool,

    /// Dataset folder (COLMAP or Blender) whose cameras to render (dataset form).
    #[arg(short = 's', long = "source_path", alias = "source-path")]
    pub source_path: Option<PathBuf>,
    /// A 3DGS PLY file (dataset form).
    #[arg(long)]
    pub ply: Option<PathBuf>,
    /// Output folder for the PNG files (dataset form).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cameras to render: the eval split's test or train views (every 8th image is a test view
    /// for COLMAP; transforms_test.json for Blender), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub split: SplitChoice,
    /// Render on white (and composite Blender images on white).
    #[arg(short = 'w', long = "white_background", alias = "white-background")]
    pub white_background: bool,
    /// Resolution, as for training (-1: automatic; 1, 2, 4, 8: divide; else a width).
    #[arg(short = 'r', long, default_value_t = -1, allow_hyphen_values = true)]
    pub resolution: i32,
    /// COLMAP images folder, relative to the dataset.
    #[arg(short = 'i', long, default_value = "images")]
    pub images: String,
    /// Highest SH band used (default: all the cloud has).
    #[arg(long = "sh_degree", alias = "sh-degree")]
    pub sh_degree: Option<u32>,
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    if let Some(model) = args.model_path.clone() {
        if args.source_path.is_some() || args.ply.is_some() || args.out.is_some() {
            bail!("use either -m <model> or -s <dataset> --ply <file> --out <dir>, not both");
        }
        return render_model(&args, &model);
    }
    let (Some(source), Some(ply_path), Some(out)) = (&args.source_path, &args.ply, &args.out)
    else {
        bail!("give -m <model>, or all of -s <dataset>, --ply <file.ply> and --out <dir>");
    };
    let options = DatasetOptions {
        source: source.clone(),
        images: args.images.clone(),
        resolution: args.resolution,
        eval: args.split != SplitChoice::All,
        white_background: args.white_background,
    };
    let dataset = Dataset::load(&options)?;
    let gaussians = ply::read_gaussians_ply(ply_path)?;
    let wanted = |split: Split| match args.split {
        SplitChoice::All => true,
        SplitChoice::Train => split == Split::Train,
        SplitChoice::Test => split == Split::Test,
    };
    let settings = RenderSettings {
        background: dataset.background,
        ..RenderSettings::default()
    };
    let mut renderer = Renderer::new(&gaussians, settings, args.sh_degree)?;
    let mut count = 0;
    for view in dataset.views.iter().filter(|v| wanted(v.split)) {
        let stem = Path::new(&view.name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| view.name.clone());
        let path = out.join(format!("{stem}.png"));
        renderer.render_to_png(&view.camera, &path)?;
        count += 1;
    }
    println!("Rendered {count} views to {}", out.display());
    Ok(())
}

/// render.py: renders and ground truths of the train and test views of a trained model.
fn render_model(args: &RenderArgs, model: &Path) -> anyhow::Result<()> {
    let config_path = model.join("config.ron");
    let config = Config::load(&config_path)?;
    let iteration = match args.iteration {
        Some(n) => n,
        None => *outputs::saved_iterations(model).last().with_context(|| {
            format!(
                "{}: no point_cloud/iteration_*/point_cloud.ply found",
                model.display()
            )
        })?,
    };
    let ply_path = outputs::ply_path(model, iteration);
    let gaussians = ply::read_gaussians_ply(&ply_path)?;
    let options = DatasetOptions {
        source: config.model.source_path.clone(),
        images: config.model.images.to_string_lossy().into_owned(),
        resolution: config.model.resolution,
        eval: config.model.eval,
        white_background: config.model.white_background,
    };
    let dataset = Dataset::load(&options)
        .with_context(|| format!("loading the scene named in {}", config_path.display()))?;
    let mut renderer = Renderer::new(&gaussians, model_settings(&config), args.sh_degree)?;
    for (split, name, skip) in [
        (Split::Train, "train", args.skip_train),
        (Split::Test, "test", args.skip_test),
    ] {
        if skip {
            continue;
        }
        let folder = model.join(name).join(format!("ours_{iteration}"));
        let views: Vec<_> = dataset.views.iter().filter(|v| v.split == split).collect();
        for (index, view) in views.iter().enumerate() {
            let file = format!("{index:05}.png");
            renderer.render_to_png(&view.camera, &folder.join("renders").join(&file))?;
            let gt = load_view_image(&dataset, view)?;
            save_rgba_as_png(
                &gt.pixels,
                gt.width,
                gt.height,
                &folder.join("gt").join(&file),
            )?;
        }
        println!(
            "Rendered {} {name} views to {}",
            views.len(),
            folder.display()
        );
    }
    Ok(())
}

/// The rasterizer settings a trained model was trained (and evaluated) with, from its
/// `config.ron`; the SH degree is set per cloud.
pub fn model_settings(config: &Config) -> RenderSettings {
    let pipeline = &config.pipeline;
    RenderSettings {
        background: if config.model.white_background {
            [1.0; 3]
        } else {
            [0.0; 3]
        },
        near_plane: pipeline.near_plane,
        antialiased: pipeline.antialiasing,
        tight_tile_bounds: pipeline.tight_tile_bounds,
        ..RenderSettings::default()
    }
}

/// One GPU, one cloud, one rasterizer: renders cameras to PNG files.
struct Renderer {
    ctx: GpuContext,
    cloud: GaussianCloud,
    rasterizer: Rasterizer,
    frame: RasterFrame,
    settings: RenderSettings,
}

impl Renderer {
    /// A renderer of `gaussians` with `settings` (their SH degree: `sh_degree`, at most the
    /// cloud's).
    fn new(
        gaussians: &Gaussians,
        settings: RenderSettings,
        sh_degree: Option<u32>,
    ) -> anyhow::Result<Self> {
        let ctx = GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?;
        let count = gaussians.len() as u64;
        crate::train::limits::check_gaussian_count(
            &ctx,
            count,
            gaussians.sh_degree,
            "the PLY",
            None,
        )
        .map_err(anyhow::Error::msg)?;
        let cloud = GaussianCloud::from_gaussians(&ctx, gaussians, gaussians.len() as u32);
        let settings = RenderSettings {
            active_sh_degree: sh_degree
                .unwrap_or(gaussians.sh_degree)
                .min(gaussians.sh_degree),
            ..settings
        };
        Ok(Self {
            rasterizer: crate::gpu::build_kernels(&ctx, || Rasterizer::new(&ctx))?,
            frame: RasterFrame::new(&ctx),
            ctx,
            cloud,
            settings,
        })
    }

    fn render_to_png(&mut self, camera: &crate::Camera, path: &Path) -> anyhow::Result<()> {
        self.rasterizer.forward(
            &self.ctx,
            &self.cloud,
            camera,
            &self.settings,
            &mut self.frame,
            None,
        )?;
        let planar = self.frame.read_image(&self.ctx);
        let (w, h) = (camera.width, camera.height);
        let rgb = planar_to_rgb8(&planar, w, h);
        save_png(rgb, w, h, path)
    }
}

/// Planar f32 CHW to interleaved 8-bit RGB, clamped and rounded like torchvision's
/// `save_image` (`x * 255 + 0.5`, truncated).
pub fn planar_to_rgb8(planar: &[f32], width: u32, height: u32) -> Vec<u8> {
    let pixels = (width * height) as usize;
    let mut out = Vec::with_capacity(pixels * 3);
    for i in 0..pixels {
        for c in 0..3 {
            let v = planar[c * pixels + i].clamp(0.0, 1.0);
            out.push((v * 255.0 + 0.5) as u8);
        }
    }
    out
}

fn save_rgba_as_png(pixels: &[u32], width: u32, height: u32, path: &Path) -> anyhow::Result<()> {
    let rgb: Vec<u8> = pixels
        .iter()
        .flat_map(|p| {
            let [r, g, b, _] = p.to_le_bytes();
            [r, g, b]
        })
        .collect();
    save_png(rgb, width, height, path)
}

/// Writes an RGB8 PNG atomically.
pub fn save_png(rgb: Vec<u8>, width: u32, height: u32, path: &Path) -> anyhow::Result<()> {
    let image = image::RgbImage::from_raw(width, height, rgb)
        .context("image buffer does not match its size")?;
    fsutil::write_atomic_with(path, |w| {
        image
            .write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_renders_use_the_models_pipeline_settings() {
        let mut config = Config::default();
        assert_eq!(
            model_settings(&config),
            RenderSettings::default(),
            "a default model renders with the defaults"
        );
        config.pipeline.antialiasing = true;
        config.pipeline.near_plane = 0.05;
        config.pipeline.tight_tile_bounds = true;
        config.model.white_background = true;
        let settings = model_settings(&config);
        assert!(settings.antialiased && settings.tight_tile_bounds);
        assert_eq!(settings.near_plane, 0.05);
        assert_eq!(settings.background, [1.0; 3]);
    }

    #[test]
    fn planar_conversion_clamps_and_rounds() {
        // 2 pixels: channel planes [r0 r1][g0 g1][b0 b1].
        let planar = [0.0, 1.5, 0.5, -0.2, 0.999, 0.0018];
        assert_eq!(planar_to_rgb8(&planar, 2, 1), [0, 128, 255, 255, 0, 0]);
    }
}
