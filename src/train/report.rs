//! Step stage: evaluation at `run.test_iterations` and PLY snapshots at `run.save_iterations`.
//!
//! Both run after the backward pass and before densification and the optimiser step, as in the
//! reference, so they see the parameters the step's loss was computed with. Their time is not
//! training time: it is measured and left out of `elapsed_s`.

use std::path::PathBuf;
use std::time::Instant;

use bevy::prelude::*;

use super::outputs;
use super::state::{
    EvalRecord, StepBuffers, StepEncoder, TrainConfig, TrainFailure, TrainGpuState, TrainKernels,
    TrainMetrics, TrainState,
};
use crate::app::Gpu;
use crate::gpu::loss::ImageMetrics;
use crate::model::ply;
use crate::views::{SceneInfo, TrainView, ViewImage};

/// Where the run writes its outputs.
#[derive(Resource, Clone, Debug)]
pub struct ModelPath(pub PathBuf);

/// Time spent in evaluation and saving during the current step (subtracted from the training
/// time by the driver).
#[derive(Resource, Default, Debug)]
pub struct ReportTime(pub std::time::Duration);

/// The views the reference evaluates at a test iteration: every test view, and the training
/// views at positions 5, 10, 15, 20, 25 (modulo their count).
pub fn evaluation_views(scene: &SceneInfo) -> (Vec<usize>, Vec<usize>) {
    let test: Vec<usize> = scene.test_views().map(|v| v.index).collect();
    let train: Vec<usize> = scene.train_views().map(|v| v.index).collect();
    let train_subset = if train.is_empty() {
        Vec::new()
    } else {
        (5..30).step_by(5).map(|i| train[i % train.len()]).collect()
    };
    (test, train_subset)
}

/// Evaluates the test views and 5 training views at the configured iterations: L1, PSNR and
/// SSIM, printed and appended to `<model>/metrics.jsonl`.
pub fn evaluate(
    gpu: Res<Gpu>,
    config: Res<TrainConfig>,
    scene: Res<SceneInfo>,
    model: Res<ModelPath>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    views: Query<(&TrainView, &ViewImage)>,
    mut kernels: ResMut<TrainKernels>,
    mut buffers: ResMut<StepBuffers>,
    mut encoder: ResMut<StepEncoder>,
    mut metrics: ResMut<TrainMetrics>,
    mut failure: ResMut<TrainFailure>,
    mut report_time: ResMut<ReportTime>,
) {
    if !config.run.test_iterations.contains(&state.iteration) {
        return;
    }
    let started = Instant::now();
    // The step's backward pass reads the frame this evaluation is about to overwrite.
    encoder.flush(&gpu);
    let (test, train_subset) = evaluation_views(&scene);
    let mut records = Vec::new();
    for (split, indices) in [("test", test), ("train", train_subset)] {
        if indices.is_empty() {
            continue;
        }
        let mut sum = ImageMetrics {
            l1: 0.0,
            psnr: 0.0,
            ssim: 0.0,
        };
        for &index in &indices {
            let view = &scene.views[index];
            let Some((_, image)) = views.iter().find(|(v, _)| v.index == index) else {
                continue;
            };
            let settings = config.render_settings(scene.background, state.active_sh_degree);
            if let Err(error) = kernels.rasterizer.forward(
                &gpu,
                &train.cloud,
                &view.camera,
                &settings,
                &mut buffers.frame,
                None,
            ) {
                failure.0 = Some(format!("evaluating view {}: {error}", view.name));
                return;
            }
            let m = kernels.loss.metrics(
                &gpu,
                &buffers.frame.image,
                &image.buffer,
                image.width,
                image.height,
                config.run.eval_quantize_8bit,
            );
            sum.l1 += m.l1;
            sum.psnr += m.psnr;
            sum.ssim += m.ssim;
        }
        let n = indices.len() as f64;
        records.push(EvalRecord {
            iteration: state.iteration,
            split,
            views: indices.len(),
            l1: sum.l1 / n,
            psnr: sum.psnr / n,
            ssim: sum.ssim / n,
            num_gaussians: train.cloud.len,
            elapsed_s: state.elapsed.as_secs_f64(),
        });
    }
    for r in &records {
        let line = format!(
            "[ITER {}] Evaluating {}: L1 {:.6} PSNR {:.4} SSIM {:.4} ({} views, {} Gaussians)",
            r.iteration, r.split, r.l1, r.psnr, r.ssim, r.views, r.num_gaussians
        );
        if config.run.quiet {
            debug!("{line}");
        } else {
            eprintln!("\n{line}");
        }
    }
    if let Err(error) = outputs::append_metrics(&model.0, &records) {
        failure.0 = Some(format!("{error:#}"));
    }
    metrics.evaluations.extend(records);
    report_time.0 += started.elapsed();
}

/// Writes `point_cloud/iteration_N/point_cloud.ply` at the configured iterations.
pub fn save_ply(
    gpu: Res<Gpu>,
    config: Res<TrainConfig>,
    model: Res<ModelPath>,
    state: Res<TrainState>,
    train: Res<TrainGpuState>,
    mut encoder: ResMut<StepEncoder>,
    mut failure: ResMut<TrainFailure>,
    mut report_time: ResMut<ReportTime>,
) {
    if !config.run.save_iterations.contains(&state.iteration) {
        return;
    }
    let started = Instant::now();
    encoder.flush(&gpu);
    if let Err(error) = write_cloud(&gpu, &train, &model.0, state.iteration, config.run.quiet) {
        failure.0 = Some(format!("{error:#}"));
    }
    report_time.0 += started.elapsed();
}

/// Downloads the cloud and writes its PLY for `iteration`.
pub fn write_cloud(
    gpu: &Gpu,
    train: &TrainGpuState,
    model: &std::path::Path,
    iteration: u32,
    quiet: bool,
) -> anyhow::Result<PathBuf> {
    let gaussians = train.cloud.download(gpu);
    let path = outputs::ply_path(model, iteration);
    ply::write_gaussians_ply(&path, &gaussians)?;
    if !quiet {
        eprintln!(
            "\n[ITER {iteration}] Saved {} Gaussians to {}",
            gaussians.len(),
            path.display()
        );
    }
    Ok(path)
}
