//! splatforge: a 3D Gaussian Splatting trainer on Bevy and wgpu.
//!
//! The crate is organised by what each part is for (see ARCHITECTURE.md):
//!
//! - [`config`]: the RON configuration (inria's defaults) and command-line overrides;
//! - [`dataset`]: COLMAP and Blender scenes, splits, image loading;
//! - [`gpu`]: plain wgpu (no Bevy): device, buffers, every WGSL kernel family;
//! - [`model`]: the Gaussian cloud on CPU and GPU, PLY files, initialisation;
//! - [`reference`]: small, obviously-correct f64 CPU versions of the GPU kernels, for tests;
//! - [`app`]: the Bevy side: the GPU device as a resource, views as entities;
//! - [`train`]: the training step as Bevy systems;
//! - [`edits`]: live configuration edits, recorded by the editor and replayed headless;
//! - `editor` (feature `editor`): the interactive editor (egui panels over the trainer);
//! - [`cli`]: the `splatforge` command line.

pub mod app;
pub mod camera;
pub mod cli;
pub mod config;
pub mod dataset;
#[cfg(feature = "editor")]
pub mod editor;
pub mod edits;
pub mod fsutil;
pub mod gpu;
pub mod model;
pub mod reference;
pub mod render_settings;
pub mod rng;
pub mod sh;
pub mod train;
pub mod views;

pub use camera::Camera;
pub use model::{GaussianCloud, Gaussians, ParamGroup};
pub use render_settings::RenderSettings;
