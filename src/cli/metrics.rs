//! `splatforge metrics -m <model>...`: the reference's metrics.py. For every method folder
//! `<model>/test/<method>/` (e.g. `ours_30000`, written by `splatforge render -m`), compares each
//! `renders/<name>.png` with `gt/<name>.png` and writes `<model>/results.json` (mean SSIM and
//! PSNR per method) and `<model>/per_view.json` (per image).
//!
//! LPIPS, which metrics.py also reports, needs a pretrained VGG/AlexNet network and is not
//! computed; its key is absent from the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde::Serialize;

use crate::image_metrics as ssim;
use crate::{dataset, fsutil};

/// Arguments of `splatforge metrics`.
#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// Model folders (each with `test/<method>/{renders,gt}`).
    #[arg(short = 'm', long = "model_paths", alias = "model-paths", num_args = 1.., required = true)]
    pub model_paths: Vec<PathBuf>,
}

#[derive(Serialize)]
struct MethodResult {
    #[serde(rename = "SSIM")]
    ssim: f64,
    #[serde(rename = "PSNR")]
    psnr: f64,
}

#[derive(Serialize, Default)]
struct PerView {
    #[serde(rename = "SSIM")]
    ssim: BTreeMap<String, f64>,
    #[serde(rename = "PSNR")]
    psnr: BTreeMap<String, f64>,
}

pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    for model in &args.model_paths {
        evaluate_model(model)?;
    }
    Ok(())
}

fn evaluate_model(model: &Path) -> anyhow::Result<()> {
    let test_dir = model.join("test");
    let mut methods: Vec<PathBuf> = std::fs::read_dir(&test_dir)
        .with_context(|| {
            format!(
                "{}: no renders (run `splatforge render -m {}` first)",
                test_dir.display(),
                model.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    methods.sort();
    if methods.is_empty() {
        bail!("{}: no method folders", test_dir.display());
    }
    println!("Scene: {}", model.display());
    let mut results = BTreeMap::new();
    let mut per_view = BTreeMap::new();
    for method in methods {
        let name = method
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mean, views) = evaluate_method(&method)?;
        println!("Method: {name}");
        println!("  SSIM : {:>12.7}", mean.ssim);
        println!("  PSNR : {:>12.7}", mean.psnr);
        println!("  LPIPS: not computed (needs a pretrained network)");
        results.insert(name.clone(), mean);
        per_view.insert(name, views);
    }
    write_json(&model.join("results.json"), &results)?;
    write_json(&model.join("per_view.json"), &per_view)?;
    Ok(())
}

/// Mean and per-image SSIM and PSNR of one method folder.
fn evaluate_method(method: &Path) -> anyhow::Result<(MethodResult, PerView)> {
    let renders = method.join("renders");
    let gt = method.join("gt");
    let mut names: Vec<String> = std::fs::read_dir(&renders)
        .with_context(|| format!("reading {}", renders.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("{}: no PNG renders", renders.display());
    }
    let scores: Vec<(String, f64, f64)> = names
        .par_iter()
        .map(|name| {
            let (a, w, h) = load_planar(&renders.join(name))?;
            let (b, gw, gh) = load_planar(&gt.join(name))?;
            if (w, h) != (gw, gh) {
                bail!(
                    "{}: {w}x{h}, but its ground truth is {gw}x{gh}",
                    renders.join(name).display()
                );
            }
            Ok((name.clone(), ssim::ssim(&a, &b, w, h), ssim::psnr(&a, &b)))
        })
        .collect::<anyhow::Result<_>>()?;
    let n = scores.len() as f64;
    let mut views = PerView::default();
    for (name, s, p) in &scores {
        views.ssim.insert(name.clone(), *s);
        views.psnr.insert(name.clone(), *p);
    }
    Ok((
        MethodResult {
            ssim: scores.iter().map(|s| s.1).sum::<f64>() / n,
            psnr: scores.iter().map(|s| s.2).sum::<f64>() / n,
        },
        views,
    ))
}

/// An 8-bit image as planar f64 RGB in [0, 1]. Decoded as the dataset's images are (a JPEG
/// ground truth as PIL decodes it, see `dataset::jpeg`).
fn load_planar(path: &Path) -> anyhow::Result<(Vec<f64>, usize, usize)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let image = dataset::decode_image(&bytes)
        .with_context(|| format!("{}: cannot decode image", path.display()))?
        .to_rgb8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    let mut planar = vec![0.0; 3 * w * h];
    for (i, pixel) in image.pixels().enumerate() {
        for c in 0..3 {
            planar[c * w * h + i] = f64::from(pixel[c]) / 255.0;
        }
    }
    Ok((planar, w, h))
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    fsutil::write_atomic(path, &json).with_context(|| format!("writing {}", path.display()))
}
