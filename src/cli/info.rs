//! `splatforge info`: what a dataset holds, as text or as one JSON object (`--json`).

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;

use crate::dataset::{Dataset, DatasetFormat, DatasetOptions};

/// Arguments of `splatforge info` (the dataset flags are inria's).
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// Dataset folder: a COLMAP scene (sparse/0 + images) or a Blender scene
    /// (transforms_train.json).
    #[arg(
        short = 's',
        long = "source_path",
        alias = "source-path",
        alias = "source"
    )]
    pub source_path: PathBuf,
    /// COLMAP images folder, relative to the dataset folder.
    #[arg(short = 'i', long, default_value = "images")]
    pub images: String,
    /// -1: shrink images wider than 1600 px; 1, 2, 4, 8: divide; other: target width.
    #[arg(short = 'r', long, default_value_t = -1, allow_negative_numbers = true)]
    pub resolution: i32,
    /// Hold out test views (every 8th COLMAP image; the test frames of a Blender scene).
    #[arg(long)]
    pub eval: bool,
    /// White background (Blender compositing).
    #[arg(short = 'w', long = "white_background", alias = "white-background")]
    pub white_background: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One distinct set of intrinsics and how many views use it.
#[derive(Serialize, Debug, PartialEq)]
struct Intrinsics {
    width: u32,
    height: u32,
    fx: f64,
    fy: f64,
    cx: f64,
    cy: f64,
    views: usize,
}

/// Everything `info` reports; serialised as is for `--json`.
#[derive(Serialize, Debug)]
struct Summary {
    format: DatasetFormat,
    source: PathBuf,
    images_folder: PathBuf,
    metadata_files: Vec<PathBuf>,
    train_views: usize,
    test_views: usize,
    /// The loaded image size shared by all views (the largest when sizes differ).
    width: u32,
    height: u32,
    uniform_size: bool,
    min_width: u32,
    min_height: u32,
    /// The image files' size before the resolution rule (largest).
    original_width: u32,
    original_height: u32,
    resolution: i32,
    eval: bool,
    /// SfM points (0 for Blender scenes, which have none).
    points: usize,
    extent: f64,
    background: [f32; 3],
    cameras: Vec<Intrinsics>,
}

fn summarise(dataset: &Dataset, args: &InfoArgs) -> Summary {
    let views = &dataset.views;
    let widths = views.iter().map(|v| v.camera.width);
    let heights = views.iter().map(|v| v.camera.height);
    let mut cameras: Vec<Intrinsics> = Vec::new();
    for view in views {
        let c = &view.camera;
        let key = (c.width, c.height, c.fx, c.fy, c.cx, c.cy);
        match cameras
            .iter_mut()
            .find(|k| (k.width, k.height, k.fx, k.fy, k.cx, k.cy) == key)
        {
            Some(known) => known.views += 1,
            None => cameras.push(Intrinsics {
                width: c.width,
                height: c.height,
                fx: c.fx,
                fy: c.fy,
                cx: c.cx,
                cy: c.cy,
                views: 1,
            }),
        }
    }
    let width = widths.clone().max().unwrap_or(0);
    let height = heights.clone().max().unwrap_or(0);
    let min_width = widths.min().unwrap_or(0);
    let min_height = heights.min().unwrap_or(0);
    Summary {
        format: dataset.format,
        source: dataset.source.clone(),
        images_folder: dataset.images_folder.clone(),
        metadata_files: dataset.metadata_files.clone(),
        train_views: dataset.train_views().count(),
        test_views: dataset.test_views().count(),
        width,
        height,
        uniform_size: views
            .iter()
            .all(|v| (v.camera.width, v.camera.height) == (width, height)),
        min_width,
        min_height,
        original_width: views.iter().map(|v| v.original_size.0).max().unwrap_or(0),
        original_height: views.iter().map(|v| v.original_size.1).max().unwrap_or(0),
        resolution: args.resolution,
        eval: args.eval,
        points: dataset.points.as_ref().map_or(0, |p| p.len()),
        extent: dataset.extent,
        background: dataset.background,
        cameras,
    }
}

fn print_text(summary: &Summary) {
    println!(
        "dataset      {} ({})",
        summary.source.display(),
        summary.format
    );
    for file in &summary.metadata_files {
        println!("metadata     {}", file.display());
    }
    println!("images       {}", summary.images_folder.display());
    println!(
        "views        {} train, {} test{}",
        summary.train_views,
        summary.test_views,
        if summary.eval { "" } else { " (no --eval)" }
    );
    let resized =
        if (summary.original_width, summary.original_height) != (summary.width, summary.height) {
            format!(
                " (files {}x{}, resolution {})",
                summary.original_width, summary.original_height, summary.resolution
            )
        } else {
            String::new()
        };
    if summary.uniform_size {
        println!(
            "image size   {}x{}, all views{resized}",
            summary.width, summary.height
        );
    } else {
        println!(
            "image size   differs between views: width {}-{}, height {}-{}{resized}",
            summary.min_width, summary.width, summary.min_height, summary.height
        );
    }
    match summary.format {
        DatasetFormat::Colmap => println!("points       {}", summary.points),
        DatasetFormat::Blender => {
            println!("points       none (Blender scene: random initialisation)")
        }
    }
    println!("extent       {:.6}", summary.extent);
    println!("cameras      {} distinct intrinsics", summary.cameras.len());
    const LISTED: usize = 8;
    for camera in summary.cameras.iter().take(LISTED) {
        println!(
            "             {}x{}  fx {:.4}  fy {:.4}  cx {:.4}  cy {:.4}  ({} views)",
            camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy, camera.views
        );
    }
    if summary.cameras.len() > LISTED {
        println!("             ... {} more", summary.cameras.len() - LISTED);
    }
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let options = DatasetOptions {
        source: args.source_path.clone(),
        images: args.images.clone(),
        resolution: args.resolution,
        eval: args.eval,
        white_background: args.white_background,
    };
    let dataset = Dataset::load(&options)
        .with_context(|| format!("cannot load the dataset in {}", args.source_path.display()))?;
    let summary = summarise(&dataset, &args);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_text(&summary);
    }
    Ok(())
}
