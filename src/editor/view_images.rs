//! The views panel's images: the selected view's ground truth, its render by the trainer's
//! rasterizer from the live cloud, and the per-pixel error, refreshed about once a second
//! while training (each refresh waits for the GPU once).

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};

use super::control::ViewStats;
use super::viewport_cloud::LiveRun;
use super::views_panel::{ViewImages, error_scale, heat_map, pixel_errors};
use crate::gpu::{self, raster::RasterFrame};
use crate::views::{TrainView, ViewImage};

/// How often the selected view is re-rendered while the cloud changes.
const REFRESH: Duration = Duration::from_secs(1);

/// The selected view (set by the views panel) and its latest images.
#[derive(Resource, Default)]
pub struct SelectedView {
    pub index: Option<usize>,
    pub images: Option<ViewImages>,
    frame: Option<RasterFrame>,
    /// The ground truth of `images.view`, downloaded once per selection.
    ground_truth: Option<(usize, Vec<u32>)>,
    refreshed: Option<Instant>,
}

/// Re-renders the selected view when it changed, or a second after the last refresh if the
/// cloud moved on.
pub fn refresh_selected_view(
    mut contexts: EguiContexts,
    mut selected: ResMut<SelectedView>,
    mut stats: ResMut<ViewStats>,
    views: Query<(&TrainView, &ViewImage)>,
    mut run: LiveRun,
) {
    let LiveRun {
        gpu,
        config,
        state,
        train,
        kernels,
        scene,
    } = &mut run;
    let gpu = &**gpu;
    let (Some(index), Some(scene), Some(config), Some(state), Some(train), Some(kernels)) = (
        selected.index,
        scene,
        config,
        state,
        train,
        kernels.as_deref_mut(),
    ) else {
        return;
    };
    let current = selected.images.as_ref().map(|i| (i.view, i.iteration));
    let stale = match current {
        Some((view, iteration)) if view == index => {
            iteration != state.iteration
                && selected.refreshed.is_none_or(|t| t.elapsed() >= REFRESH)
        }
        _ => true,
    };
    if !stale {
        return;
    }
    let Some((view, image)) = views.iter().find(|(v, _)| v.index == index) else {
        return;
    };
    let Ok(ctx) = contexts.ctx_mut() else {
        return;
    };
    let (width, height) = (image.width, image.height);
    let pixels = (width * height) as usize;
    if selected
        .ground_truth
        .as_ref()
        .is_none_or(|(i, _)| *i != index)
    {
        let truth: Vec<u32> = gpu::read_buffer(gpu, &image.buffer, pixels);
        selected.ground_truth = Some((index, truth));
    }
    let camera = view.camera.clone();
    let settings = config.render_settings(scene.background, state.active_sh_degree);
    let frame = selected.frame.get_or_insert_with(|| RasterFrame::new(gpu));
    if kernels
        .rasterizer
        .forward(gpu, &train.cloud, &camera, &settings, frame, None)
        .is_err()
    {
        return;
    }
    let render = frame.read_image(gpu);
    let Some((_, truth)) = &selected.ground_truth else {
        return;
    };
    let (errors, psnr) = pixel_errors(&render, truth);
    let scale = error_scale(&errors);
    let size = [width as usize, height as usize];
    let truth_rgb: Vec<u8> = truth
        .iter()
        .flat_map(|p| {
            let [r, g, b, _] = p.to_le_bytes();
            [r, g, b]
        })
        .collect();
    let render_rgb = crate::cli::render::planar_to_rgb8(&render, width, height);
    let heat: Vec<u8> = heat_map(&errors, scale).into_iter().flatten().collect();
    let options = egui::TextureOptions::LINEAR;
    let texture = |name: &str, rgb: &[u8]| {
        ctx.load_texture(name, egui::ColorImage::from_rgb(size, rgb), options)
    };
    selected.images = Some(ViewImages {
        view: index,
        iteration: state.iteration,
        ground_truth: texture("view ground truth", &truth_rgb),
        render: texture("view render", &render_rgb),
        error: texture("view error", &heat),
        aspect: width as f32 / height as f32,
        psnr,
        error_scale: scale,
    });
    selected.refreshed = Some(Instant::now());
    if stats.psnr.len() <= index {
        stats.psnr.resize(index + 1, None);
    }
    stats.psnr[index] = Some((state.iteration, psnr));
}
