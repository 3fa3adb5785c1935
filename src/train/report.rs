//! Step stage `Report`: evaluation at `run.test_iterations` and PLY snapshots at `run.save_iterations`.
//!
//! Both run after the backward pass and before densification and the optimiser step, as in the
//! reference, so they see the parameters the step's loss was computed with. Their time is not
//! training time: it is measured and left out of `elapsed_s`.

use std::path::PathBuf;
use std::time::Instant;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;

use super::TrainSet;
use super::outputs;
use super::state::{EvalRecord, StepContext, StepGpu, TrainGpuState, TrainMetrics};
use crate::app::Gpu;
use crate::image_metrics::ImageMetrics;
use crate::model::ply;
use crate::views::{SceneInfo, TestSplit, TrainView, ViewEval, ViewImage, ViewStats};

/// Where the run writes its outputs.
#[derive(Resource, Clone, Debug)]
pub struct ModelPath(pub PathBuf);

/// Time spent in evaluation and saving during the current step (subtracted from the training
/// time by the driver).
#[derive(Resource, Default, Debug)]
pub struct ReportTime(pub std::time::Duration);

/// Where reports go: the output folder, the metrics history, and the time spent (which is not
/// training time).
#[derive(SystemParam)]
pub struct ReportOutputs<'w> {
    pub model: Res<'w, ModelPath>,
    pub metrics: ResMut<'w, TrainMetrics>,
    pub report_time: ResMut<'w, ReportTime>,
}

/// The views the reference evaluates at a test iteration: every test view, and the training
/// views at positions 5, 10, 15, 20, 25 (modulo their count), both in dataset order.
/// `views` yields each view entity, its view and whether it is a test view.
pub fn evaluation_views<'a>(
    views: impl Iterator<Item = (Entity, &'a TrainView, bool)>,
) -> (Vec<Entity>, Vec<Entity>) {
    let mut all: Vec<(usize, Entity, bool)> =
        views.map(|(e, v, test)| (v.index, e, test)).collect();
    all.sort_unstable_by_key(|(index, ..)| *index);
    let test: Vec<Entity> = all.iter().filter(|v| v.2).map(|v| v.1).collect();
    let train: Vec<Entity> = all.iter().filter(|v| !v.2).map(|v| v.1).collect();
    let train_subset = if train.is_empty() {
        Vec::new()
    } else {
        (5..30).step_by(5).map(|i| train[i % train.len()]).collect()
    };
    (test, train_subset)
}

/// The view entities [`evaluate`] reads: the view, its image, its split, and its stats (which
/// get the view's metrics).
pub type EvalViews<'w, 's> = Query<
    'w,
    's,
    (
        Entity,
        &'static TrainView,
        Option<&'static ViewImage>,
        Has<TestSplit>,
        Option<&'static mut ViewStats>,
    ),
>;

/// Evaluates the test views and 5 training views at the configured iterations: L1, PSNR and
/// SSIM, printed, appended to `<model>/metrics.jsonl` and set on each view's [`ViewStats`].
pub fn evaluate(
    mut ctx: StepContext,
    step: StepGpu,
    scene: Res<SceneInfo>,
    train: Res<TrainGpuState>,
    mut out: ReportOutputs,
    mut views: EvalViews,
) {
    let (config, state) = (&ctx.config, &ctx.state);
    if !config.run.test_iterations.contains(&state.iteration) {
        return;
    }
    let StepGpu {
        gpu,
        mut kernels,
        mut buffers,
        mut encoder,
        ..
    } = step;
    // The step's backward pass reads the frame this evaluation is about to overwrite. The
    // training steps still queued on the GPU are training time: the clock stops once they are
    // done (unbounded, the queue once hid ~2,500 steps of a 30k run's work in here).
    encoder.flush(&gpu);
    gpu.wait_idle();
    let started = Instant::now();
    let (test, train_subset) =
        evaluation_views(views.iter().map(|(e, v, _, test, _)| (e, v, test)));
    let settings = config.render_settings(scene.background, state.active_sh_degree);
    let mut records = Vec::new();
    for (split, entities) in [("test", test), ("train", train_subset)] {
        if entities.is_empty() {
            continue;
        }
        let mut sum = ImageMetrics::default();
        for &entity in &entities {
            let (_, view, image, _, stats) = views.get_mut(entity).expect("entity from the query");
            let Some(image) = image else {
                let message = format!("view {} has no ground-truth image (ViewImage)", view.name);
                ctx.failure
                    .record(TrainSet::Report, state.iteration, message);
                return;
            };
            if let Err(error) = kernels.rasterizer.forward(
                &gpu,
                &train.cloud,
                &view.camera,
                &settings,
                &mut buffers.frame,
                None,
            ) {
                let message = format!("evaluating view {}: {error}", view.name);
                ctx.failure
                    .record(TrainSet::Report, state.iteration, message);
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
            if let Some(mut stats) = stats {
                stats.last_eval = Some(ViewEval {
                    iteration: state.iteration,
                    l1: m.l1,
                    psnr: m.psnr,
                    ssim: m.ssim,
                });
            }
            sum.l1 += m.l1;
            sum.psnr += m.psnr;
            sum.ssim += m.ssim;
        }
        let n = entities.len() as f64;
        records.push(EvalRecord {
            iteration: state.iteration,
            split,
            views: entities.len(),
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
    if let Err(error) = outputs::append_metrics(&out.model.0, &records) {
        ctx.failure
            .record(TrainSet::Report, state.iteration, format!("{error:#}"));
    }
    out.metrics.evaluations.extend(records);
    out.report_time.0 += started.elapsed();
}

/// Writes `point_cloud/iteration_N/point_cloud.ply` at the configured iterations.
pub fn save_ply(
    mut ctx: StepContext,
    step: StepGpu,
    train: Res<TrainGpuState>,
    mut out: ReportOutputs,
) {
    let iteration = ctx.state.iteration;
    if !ctx.config.run.save_iterations.contains(&iteration) {
        return;
    }
    let StepGpu {
        gpu, mut encoder, ..
    } = step;
    // The steps still queued on the GPU are training time (see `evaluate`).
    encoder.flush(&gpu);
    gpu.wait_idle();
    let started = Instant::now();
    let quiet = ctx.config.run.quiet;
    if let Err(error) = write_cloud(&gpu, &train, &out.model.0, iteration, quiet) {
        ctx.failure
            .record(TrainSet::Report, iteration, format!("{error:#}"));
    }
    out.report_time.0 += started.elapsed();
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
