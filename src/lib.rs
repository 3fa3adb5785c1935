//! splatforge: a 3D Gaussian Splatting trainer on Bevy and wgpu.
//!
//! The crate is organised by what each part is for (see ARCHITECTURE.md):
//!
//! - [`gpu`]: plain wgpu (no Bevy): device, buffers, every WGSL kernel family;
//! - [`model`]: the Gaussian cloud on CPU and GPU, PLY files, `cameras.json`, densification;
//! - [`image_metrics`]: L1, PSNR and SSIM on the CPU (`splatforge metrics`);
//! - `render` (feature "plugin"): the game plugin: `.ply` assets drawn in Bevy's 3D scenes;
//! - `config`, `dataset`, `app`, `views`, `train` (feature "train"): the RON configuration,
//!   COLMAP and Blender scenes, the Bevy app around the GPU, views as entities, and the
//!   training step as Bevy systems;
//! - [`edits`]: live configuration edits, recorded by the editor and replayed headless;
//! - `editor` (feature "editor"): the editor window over the trainer and the plugin;
//! - `cli` (feature "cli"): the `splatforge` command line;
//! - `reference`: small, obviously-correct f64 CPU versions of the GPU kernels, the oracle of
//!   the tests (compiled for tests only).
//!
//! A game depends on splatforge with `default-features = false, features = ["plugin"]`.

pub mod camera;
pub mod fsutil;
pub mod gpu;
pub mod image_metrics;
pub mod model;
pub mod render_settings;
pub mod rng;
pub mod sh;

#[cfg(feature = "train")]
pub mod app;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "train")]
pub mod config;
#[cfg(feature = "train")]
pub mod dataset;
#[cfg(feature = "editor")]
pub mod editor;
#[cfg(feature = "train")]
pub mod edits;
#[cfg(all(test, feature = "train"))]
pub mod reference;
#[cfg(feature = "plugin")]
pub mod render;
#[cfg(feature = "train")]
pub mod train;
#[cfg(feature = "train")]
pub mod views;

pub use camera::Camera;
pub use model::{GaussianCloud, Gaussians, ParamGroup};
pub use render_settings::RenderSettings;
