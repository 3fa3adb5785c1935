//! `splatforge editor`: train live in a window (or offscreen, into an image).
//!
//! Takes `splatforge train`'s flags for the configuration (`-s`, `-m`, `--config`, `--set`,
//! `--start_checkpoint`, ...); without a scene it opens the shipped demo scene with
//! `configs/demo.ron`. `--ply` starts from a trained cloud instead of the scene's points.
//! `--offscreen --frames N [--screenshot out.png]` runs the same app without a window and
//! prints the frame rate and training speed it reached.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::train::TrainArgs;
use crate::config::{Config, complete_training_config};
use crate::editor::offscreen::{run_offscreen, write_png};
use crate::editor::{DisplayMode, EditorOptions, OpenRequest, QuitSignal, editor_app};
use crate::gpu::{GpuContext, GpuOptions};

/// Arguments of `splatforge editor`.
#[derive(clap::Args, Debug)]
pub struct EditorArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Start from the Gaussians of this 3DGS PLY (on the scene) instead of its points.
    #[arg(long, value_name = "FILE")]
    pub ply: Option<PathBuf>,
    /// Draw into an image instead of a window (no display needed).
    #[arg(long)]
    pub offscreen: bool,
    /// Quit after this many frames, saving as closing the window does (required offscreen).
    #[arg(long, value_name = "N")]
    pub frames: Option<u32>,
    /// Offscreen: write the last frame to this PNG file.
    #[arg(long, value_name = "FILE", requires = "offscreen")]
    pub screenshot: Option<PathBuf>,
    /// Window or offscreen image size, WIDTHxHEIGHT [default: 1600x1000 for a window,
    /// 1920x1080 offscreen].
    #[arg(long, value_name = "WxH")]
    pub size: Option<String>,
    /// Open paused (press Start to train).
    #[arg(long)]
    pub paused: bool,
    /// Run exactly run.steps_per_frame steps per frame instead of as many as keep the frame
    /// rate at the run panel's target.
    #[arg(long = "fixed_steps", alias = "fixed-steps")]
    pub fixed_steps: bool,
    /// Where the docked layout is saved; default: ~/.config/splatforge/editor-layout.ron
    /// (offscreen runs use the default layout and save none).
    #[arg(long, value_name = "FILE")]
    pub layout: Option<PathBuf>,
}

/// The shipped demo configuration; its scene is `assets/demo` of the checkout.
const DEMO_CONFIG: &str = include_str!("../../configs/demo.ron");

pub fn run(args: EditorArgs) -> anyhow::Result<()> {
    if args.train.edits.is_some() {
        bail!("--edits replays a session headless: use `splatforge train --edits`");
    }
    let default_size = if args.offscreen {
        "1920x1080"
    } else {
        "1600x1000"
    };
    let size = parse_size(args.size.as_deref().unwrap_or(default_size))?;
    if args.offscreen && args.frames.is_none() {
        bail!("--offscreen needs --frames N");
    }
    let config = editor_config(&args.train)?;
    eprintln!(
        "Opening {} (output {})",
        config.model.source_path.display(),
        config.model.model_path.display()
    );
    let gpu = GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?;
    eprintln!("GPU: {}", gpu.describe());
    // The first run opens before the window does: a broken scene is a plain error here.
    let mut first_run = crate::editor::run::prepare_initial(config.clone(), &gpu)?;
    if let Some(ply) = &args.ply {
        let output = config.model.model_path.clone();
        let from_ply =
            crate::editor::run::prepare(&OpenRequest::Ply(ply.clone()), config, output, &gpu)?;
        first_run.config = from_ply.config;
        first_run.init = from_ply.init;
        first_run.description = from_ply.description;
    }
    let quit = QuitSignal(super::interrupt::stop_on_interrupt());
    let display = if args.offscreen {
        DisplayMode::Offscreen { size }
    } else {
        DisplayMode::Window { size }
    };
    let layout = match (args.offscreen, args.layout) {
        (true, _) => None,
        (false, Some(path)) => Some(path),
        (false, None) => crate::editor::layout::default_layout_path(),
    };
    let app = editor_app(EditorOptions {
        gpu,
        first_run: Some(first_run),
        display,
        layout,
        paused: args.paused,
        auto_steps: !args.fixed_steps,
        frames: if args.offscreen { None } else { args.frames },
        quit,
        log: true,
    });
    if args.offscreen {
        let frames = args.frames.unwrap_or(1);
        let warmup = (frames / 10).clamp(1, 30);
        let report = run_offscreen(app, frames, warmup, args.screenshot.is_some())?;
        if let (Some(path), Some(image)) = (&args.screenshot, &report.screenshot) {
            write_png(image, path)?;
            println!("Screenshot: {}", path.display());
        }
        println!("{}", report.summary());
        return Ok(());
    }
    let mut app = app;
    match app.run() {
        bevy::app::AppExit::Success => Ok(()),
        bevy::app::AppExit::Error(code) => bail!("the editor exited with code {code}"),
    }
}

/// The configuration the editor starts with: `train`'s resolution, or the demo scene with
/// `configs/demo.ron` when no scene is given.
fn editor_config(args: &TrainArgs) -> anyhow::Result<Config> {
    let overrides = args.overrides()?;
    let has_scene = args.source_path.is_some()
        || overrides
            .assignments()
            .iter()
            .any(|a| a.key == "model.source_path")
        || match &args.config {
            Some(path) => !Config::load(path)?.model.source_path.as_os_str().is_empty(),
            None => false,
        };
    if has_scene {
        return super::train::resolve_config(args);
    }
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::from_ron_str(DEMO_CONFIG, "configs/demo.ron")?,
    };
    config.model.source_path = demo_scene()?;
    overrides.apply(&mut config)?;
    Ok(complete_training_config(config)?)
}

/// `assets/demo` of the working directory (a checkout) or of the checkout the binary was built
/// from.
fn demo_scene() -> anyhow::Result<PathBuf> {
    let here = Path::new("assets/demo");
    if here.exists() {
        return Ok(here.to_path_buf());
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo");
    if built_from.exists() {
        return Ok(built_from);
    }
    bail!(
        "the demo scene assets/demo is not here: run from the splatforge checkout or give -s <scene>"
    )
}

/// `1920x1080` -> `[1920, 1080]`.
fn parse_size(text: &str) -> anyhow::Result<[u32; 2]> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some([w.trim().parse().ok()?, h.trim().parse().ok()?]));
    match parsed {
        Some([w, h]) if (16..=16384).contains(&w) && (16..=16384).contains(&h) => Ok([w, h]),
        _ => bail!("--size {text}: expected WIDTHxHEIGHT, each 16 to 16384, like 1920x1080"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(parse_size("1920x1080").unwrap(), [1920, 1080]);
        assert_eq!(parse_size("640X480").unwrap(), [640, 480]);
        for bad in ["1920", "0x10", "axb", "99999x10"] {
            let message = parse_size(bad).unwrap_err().to_string();
            assert!(message.contains("expected WIDTHxHEIGHT"), "{message}");
        }
    }
}
