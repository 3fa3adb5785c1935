//! The offscreen editor: the same app drawn into an image for a number of frames, with the
//! frame rate and training speed it reached and, optionally, a screenshot.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy_egui::egui;

use super::app::OffscreenImage;
use super::layout::Tab;
use super::ui::{DrawnTabs, UiRequests};
use super::viewport_scene::ViewportTarget;
use crate::app::finish_setup;
use crate::train::TrainState;

/// What an offscreen run measured and drew.
#[derive(Debug)]
pub struct OffscreenReport {
    pub frames: u32,
    /// Frames and iterations of the measured window (after the warm-up frames).
    pub measured_frames: u32,
    pub measured_iterations: u32,
    pub measured_seconds: f64,
    /// The iteration reached.
    pub iteration: u32,
    /// The whole image after the last frame, when asked for.
    pub screenshot: Option<image::RgbImage>,
    /// Where the viewport image was drawn, in pixels of the screenshot `[x, y, width, height]`.
    pub viewport: Option<[u32; 4]>,
    /// The panels drawn in the last frame, with their areas in pixels.
    pub drawn: Vec<(Tab, egui::Rect)>,
}

impl OffscreenReport {
    pub fn frames_per_second(&self) -> f64 {
        f64::from(self.measured_frames) / self.measured_seconds.max(1e-9)
    }

    pub fn iterations_per_second(&self) -> f64 {
        f64::from(self.measured_iterations) / self.measured_seconds.max(1e-9)
    }

    /// The line the command prints.
    pub fn summary(&self) -> String {
        format!(
            "editor offscreen: {} frames; measured over {} frames in {:.2} s: {:.1} frames/s, \
             {} iterations, {:.1} it/s (wall clock, viewport drawn every frame); reached \
             iteration {}",
            self.frames,
            self.measured_frames,
            self.measured_seconds,
            self.frames_per_second(),
            self.measured_iterations,
            self.iterations_per_second(),
            self.iteration
        )
    }
}

/// Runs an offscreen editor app (see [`super::editor_app`]) for `frames` frames, then quits it
/// as closing the window does (saving the run). The first `warmup` frames (shader compilation,
/// first uploads) are left out of the measurement.
pub fn run_offscreen(
    mut app: App,
    frames: u32,
    warmup: u32,
    screenshot: bool,
) -> anyhow::Result<OffscreenReport> {
    finish_setup(&mut app);
    let iteration = |app: &App| {
        app.world()
            .get_resource::<TrainState>()
            .map_or(0, |s| s.iteration)
    };
    let warmup = warmup.min(frames.saturating_sub(1));
    let mut start = (Instant::now(), 0);
    for frame in 0..frames {
        if frame == warmup {
            crate::editor::control::wait_for_gpu(app.world());
            start = (Instant::now(), iteration(&app));
        }
        app.update();
        if app.should_exit().is_some() {
            bail!("the editor quit after {frame} frames");
        }
    }
    crate::editor::control::wait_for_gpu(app.world());
    let measured_seconds = start.0.elapsed().as_secs_f64();
    let last_iteration = iteration(&app);

    let captured = if screenshot {
        Some(capture(&mut app)?)
    } else {
        None
    };
    let world = app.world();
    let viewport = world.resource::<ViewportTarget>().rect.map(|r| {
        // egui draws the offscreen image at one pixel per point.
        [
            r.min.x.round() as u32,
            r.min.y.round() as u32,
            r.width().round() as u32,
            r.height().round() as u32,
        ]
    });
    let drawn = world.resource::<DrawnTabs>().0.clone();

    // Quit as the window's close button does.
    app.world_mut().resource_mut::<UiRequests>().quit = true;
    app.update();
    Ok(OffscreenReport {
        frames,
        measured_frames: frames - warmup,
        measured_iterations: last_iteration - start.1,
        measured_seconds,
        iteration: last_iteration,
        screenshot: captured,
        viewport,
        drawn,
    })
}

/// Takes a screenshot of the offscreen image (it arrives a frame or two later).
pub fn capture(app: &mut App) -> anyhow::Result<image::RgbImage> {
    let image = app.world().resource::<OffscreenImage>().0.clone();
    let slot: Arc<Mutex<Option<Image>>> = Arc::default();
    let receiver = slot.clone();
    app.world_mut().spawn(Screenshot::image(image)).observe(
        move |captured: On<ScreenshotCaptured>| {
            *receiver.lock().unwrap_or_else(|p| p.into_inner()) = Some(captured.image.clone());
        },
    );
    for _ in 0..30 {
        app.update();
        if let Some(image) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let dynamic = image
                .try_into_dynamic()
                .context("the screenshot's format cannot be read")?;
            return Ok(dynamic.to_rgb8());
        }
    }
    bail!("the screenshot did not arrive within 30 frames")
}

/// Writes an RGB image as PNG, atomically.
pub fn write_png(image: &image::RgbImage, path: &Path) -> anyhow::Result<()> {
    crate::fsutil::write_atomic_with(path, |w| {
        image
            .write_to(w, image::ImageFormat::Png)
            .map_err(std::io::Error::other)
    })
    .with_context(|| format!("writing {}", path.display()))
}
