//! The `splatforge` command line. One file per command; this file only dispatches.
//!
//! Commands return `anyhow::Result`; [`main`] prints the error chain (each layer names what it
//! was doing, e.g. the file) and exits non-zero. User data never causes a panic.

pub mod batch;
pub mod bench;
pub mod bench_dispatch;
pub mod bench_sort;
pub mod bench_view;
#[cfg(feature = "editor")]
pub mod editor;
pub mod gpu;
pub mod info;
pub mod interrupt;
pub mod metrics;
pub mod render;
pub mod train;
pub mod view;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// 3D Gaussian Splatting trainer on Bevy + wgpu.
#[derive(Parser, Debug)]
#[command(name = "splatforge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once at startup: its size does not matter
pub enum Command {
    /// Describe a dataset: format, views, image size, points, camera extent.
    Info(info::InfoArgs),
    /// Train a scene (inria-style flags and/or a RON config).
    Train(train::TrainArgs),
    /// Train live in a window: 3D viewport, inspector, plots, views, run control.
    #[cfg(feature = "editor")]
    Editor(editor::EditorArgs),
    /// Train many runs from a batch file (RON): matrices of scenes x seeds, shards, Slurm job
    /// arrays, resuming, one summary.
    Batch(batch::BatchArgs),
    /// Render a dataset's cameras from a trained .ply (or a model, like render.py).
    Render(render::RenderArgs),
    /// Look at a trained .ply or model folder through the game plugin (a window, or
    /// --offscreen to a PNG).
    View(view::ViewArgs),
    /// PSNR and SSIM of a model's renders against ground truth (like metrics.py).
    Metrics(metrics::MetricsArgs),
    /// GPU benchmarks.
    Bench(bench::BenchArgs),
    /// Show the GPU splatforge uses and measure its copy bandwidth.
    Gpu(gpu::GpuArgs),
}

/// Entry point of the `splatforge` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Info(args)) => info::run(args),
        Some(Command::Train(args)) => train::run(args),
        #[cfg(feature = "editor")]
        Some(Command::Editor(args)) => editor::run(args),
        Some(Command::Batch(args)) => batch::run(args),
        Some(Command::Render(args)) => render::run(args),
        Some(Command::View(args)) => view::run(args),
        Some(Command::Metrics(args)) => metrics::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Gpu(args)) => gpu::run(args),
        None => train::run_demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(interrupted) = error.downcast_ref::<interrupt::Interrupted>() {
                eprintln!("{interrupted}");
                return ExitCode::from(interrupt::exit_code());
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
