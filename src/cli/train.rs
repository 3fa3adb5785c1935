//! `splatforge train`: resolve the configuration, prepare the output folder, train.
//!
//! Precedence of the configuration, lowest first:
//! 1. the defaults (the reference trainer's, see `configs/default.ron`);
//! 2. the file given with `--config`;
//! 3. the inria-style flags (`-s`, `-m`, `--iterations`, ...);
//! 4. the `--set section.field=value` assignments, in the order given.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Config, ConfigOverrides, complete_training_config, resolve_training_config};
use crate::train::session::SessionOptions;
use crate::train::{TrainSummary, train_headless};

/// Arguments of `splatforge train`. The flags are those of inria's `train.py`; every other
/// field of the configuration can be set with `--set`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(
    after_help = "Precedence, lowest first: defaults < --config file < the flags above \
    < --set assignments (in order). See configs/default.ron for every field."
)]
pub struct TrainArgs {
    /// RON configuration file; fields it leaves out keep their defaults (configs/default.ron).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Scene folder, COLMAP or Blender layout [model.source_path].
    #[arg(
        short = 's',
        long = "source_path",
        alias = "source-path",
        value_name = "DIR"
    )]
    pub source_path: Option<PathBuf>,
    /// Output folder; default output/<random id> [model.model_path].
    #[arg(
        short = 'm',
        long = "model_path",
        alias = "model-path",
        value_name = "DIR"
    )]
    pub model_path: Option<PathBuf>,
    /// COLMAP image folder, relative to the scene folder [model.images].
    #[arg(short = 'i', long = "images", value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// -1: automatic (at most 1600 wide); 1, 2, 4, 8: divisor; other: width [model.resolution].
    #[arg(
        short = 'r',
        long = "resolution",
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub resolution: Option<i32>,
    /// White background, for NeRF-synthetic scenes [model.white_background = true].
    #[arg(short = 'w', long = "white_background", alias = "white-background")]
    pub white_background: bool,
    /// Highest spherical-harmonics degree, 0..=3 [model.sh_degree].
    #[arg(long = "sh_degree", alias = "sh-degree", value_name = "N")]
    pub sh_degree: Option<u32>,
    /// Hold out test views for evaluation [model.eval = true].
    #[arg(long = "eval")]
    pub eval: bool,
    /// Number of training steps [optimization.iterations].
    #[arg(long = "iterations", value_name = "N")]
    pub iterations: Option<u32>,
    /// Steps at which to evaluate [run.test_iterations].
    #[arg(long = "test_iterations", alias = "test-iterations", num_args = 1.., value_name = "N")]
    pub test_iterations: Option<Vec<u32>>,
    /// Steps at which to save the point cloud; the last step is always saved
    /// [run.save_iterations].
    #[arg(long = "save_iterations", alias = "save-iterations", num_args = 1.., value_name = "N")]
    pub save_iterations: Option<Vec<u32>>,
    /// Steps at which to write a checkpoint [run.checkpoint_iterations].
    #[arg(
        long = "checkpoint_iterations",
        alias = "checkpoint-iterations",
        num_args = 1..,
        value_name = "N"
    )]
    pub checkpoint_iterations: Option<Vec<u32>>,
    /// Checkpoint to resume from [run.start_checkpoint].
    #[arg(
        long = "start_checkpoint",
        alias = "start-checkpoint",
        value_name = "FILE"
    )]
    pub start_checkpoint: Option<PathBuf>,
    /// Print only errors [run.quiet = true].
    #[arg(long = "quiet")]
    pub quiet: bool,
    /// Turn on pipeline.debug from this step; -1: never [run.debug_from].
    #[arg(
        long = "debug_from",
        alias = "debug-from",
        allow_negative_numbers = true,
        value_name = "N"
    )]
    pub debug_from: Option<i64>,
    /// Stop at the first non-finite value [run.detect_anomaly = true].
    #[arg(long = "detect_anomaly", alias = "detect-anomaly")]
    pub detect_anomaly: bool,
    /// Set any field: section.field=value, the value in RON (0.3, [100,200], "x", Some("x"));
    /// string and path fields also take a bare word. Repeatable; applied last, in order.
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub set: Vec<String>,
    /// Replay the live edits of an editor session (its edits.ron) at their iterations; start
    /// from the session's config.ron to re-run it headless.
    #[arg(long = "edits", value_name = "FILE")]
    pub edits: Option<PathBuf>,
}

impl TrainArgs {
    /// The flags and `--set` assignments as overrides, in precedence order (flags, then
    /// `--set`). Flags that were not given override nothing.
    pub fn overrides(&self) -> anyhow::Result<ConfigOverrides> {
        let mut overrides = ConfigOverrides::new();
        let o = &mut overrides;
        set_if(o, "model.source_path", &self.source_path, "--source_path")?;
        set_if(o, "model.model_path", &self.model_path, "--model_path")?;
        set_if(o, "model.images", &self.images, "--images")?;
        set_if(o, "model.resolution", &self.resolution, "--resolution")?;
        set_if(
            o,
            "model.white_background",
            &switch(self.white_background),
            "--white_background",
        )?;
        set_if(o, "model.sh_degree", &self.sh_degree, "--sh_degree")?;
        set_if(o, "model.eval", &switch(self.eval), "--eval")?;
        set_if(
            o,
            "optimization.iterations",
            &self.iterations,
            "--iterations",
        )?;
        set_if(
            o,
            "run.test_iterations",
            &self.test_iterations,
            "--test_iterations",
        )?;
        set_if(
            o,
            "run.save_iterations",
            &self.save_iterations,
            "--save_iterations",
        )?;
        let checkpoints = &self.checkpoint_iterations;
        set_if(
            o,
            "run.checkpoint_iterations",
            checkpoints,
            "--checkpoint_iterations",
        )?;
        let resume = self.start_checkpoint.as_ref().map(Some);
        set_if(o, "run.start_checkpoint", &resume, "--start_checkpoint")?;
        set_if(o, "run.quiet", &switch(self.quiet), "--quiet")?;
        set_if(o, "run.debug_from", &self.debug_from, "--debug_from")?;
        set_if(
            o,
            "run.detect_anomaly",
            &switch(self.detect_anomaly),
            "--detect_anomaly",
        )?;
        for assignment in &self.set {
            overrides.push_set(assignment)?;
        }
        Ok(overrides)
    }
}

/// A switch flag as an override: given sets the field to `true`; absent leaves it alone (as in
/// `train.py`, a switch cannot turn a field off: use `--set section.field=false`).
fn switch(given: bool) -> Option<bool> {
    given.then_some(true)
}

/// Adds `key = value` to `overrides` if the flag was given.
fn set_if<T: serde::Serialize>(
    overrides: &mut ConfigOverrides,
    key: &str,
    value: &Option<T>,
    flag: &str,
) -> anyhow::Result<()> {
    if let Some(value) = value {
        overrides.push_value(key, value, flag)?;
    }
    Ok(())
}

/// The validated configuration of the run described by `args` (see the module documentation
/// for the precedence), with `model_path` and `save_iterations` completed as `train.py` does.
pub fn resolve_config(args: &TrainArgs) -> anyhow::Result<Config> {
    let overrides = args.overrides()?;
    Ok(resolve_training_config(args.config.as_deref(), &overrides)?)
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = resolve_config(&args)?;
    let edits = match &args.edits {
        Some(path) => crate::edits::read_edits(path)?,
        None => Vec::new(),
    };
    let model_path = &config.model.model_path;
    std::fs::create_dir_all(model_path)
        .with_context(|| format!("cannot create the output folder {}", model_path.display()))?;
    let config_path = model_path.join("config.ron");
    config.write_atomic(&config_path)?;
    if !config.run.quiet {
        println!("Output folder: {}", model_path.display());
        println!("Configuration: {}", config_path.display());
    }
    train(&config, edits)
}

/// Runs the training described by `config` (its output folder exists and holds `config.ron`),
/// replaying `edits` at their iterations.
fn train(config: &Config, edits: Vec<crate::edits::ConfigEdit>) -> anyhow::Result<()> {
    let options = SessionOptions {
        stop: super::interrupt::stop_on_interrupt(),
        gpu: None,
        edits,
    };
    let summary = train_headless(config, options)?;
    if !config.run.quiet {
        print_summary(&summary);
    }
    if summary.interrupted {
        let saved = [&summary.checkpoint, &summary.ply]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        return Err(super::interrupt::Interrupted {
            iteration: summary.iteration,
            saved,
        }
        .into());
    }
    Ok(())
}

/// The shipped demo configuration (`configs/demo.ron`), embedded so the binary needs no
/// source tree to find it.
const DEMO_CONFIG: &str = include_str!("../../configs/demo.ron");

/// `splatforge` with no arguments: train the shipped demo scene with the short demo config and
/// say where the result went.
pub fn run_demo() -> anyhow::Result<()> {
    let mut config = Config::from_ron_str(DEMO_CONFIG, "configs/demo.ron")?;
    // The demo scene is `assets/demo` next to the working directory (a checkout) or, for a
    // binary run from elsewhere, in the checkout it was built from.
    if !config.model.source_path.exists() {
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join(&config.model.source_path);
        if built_from.exists() {
            config.model.source_path = built_from;
        } else {
            anyhow::bail!(
                "the demo scene {} is not here: run `splatforge` from the splatforge checkout, \
                 or `splatforge train -s <scene>`",
                config.model.source_path.display()
            );
        }
    }
    let config = complete_training_config(config)?;
    eprintln!(
        "Training the demo scene {} into {} (configs/demo.ron)",
        config.model.source_path.display(),
        config.model.model_path.display()
    );
    train(&config, Vec::new())
}

/// The final lines of a run (not with `--quiet`: errors only, then).
pub fn print_summary(summary: &TrainSummary) {
    let eval = |split: &str| {
        summary
            .last_eval(split)
            .map(|r| format!(", {split} PSNR {:.2} SSIM {:.3}", r.psnr, r.ssim))
            .unwrap_or_default()
    };
    let rate = if summary.elapsed_s > 0.0 {
        format!(" ({:.0} it/s)", summary.iterations_per_second())
    } else {
        String::new()
    };
    println!(
        "Training {}: iteration {} in {:.1} s{rate}, {} Gaussians{}{}",
        if summary.interrupted {
            "stopped"
        } else {
            "complete"
        },
        summary.iteration,
        summary.elapsed_s,
        summary.num_gaussians,
        eval("test"),
        eval("train"),
    );
    if let Some(ply) = &summary.ply {
        println!("Model: {}", ply.display());
    }
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "GPU buffers: training state {:.0} MiB (peak), render {:.0} MiB, images {:.0} MiB",
        mib(summary.peak_state_bytes),
        mib(summary.render_bytes),
        mib(summary.image_bytes)
    );
    if summary.intersection_overflows > 0 {
        println!(
            "Note: {} render(s) dropped far tile intersections (the list outgrew its estimate).",
            summary.intersection_overflows
        );
    }
    if !summary.profile.is_empty() {
        println!("GPU time per stage:\n{}", summary.profile);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `splatforge train` alone, to parse argument lists in tests.
    #[derive(Parser)]
    struct TrainCommand {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn parse(args: &[&str]) -> TrainArgs {
        let argv = std::iter::once("train").chain(args.iter().copied());
        TrainCommand::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{e}"))
            .args
    }

    #[test]
    fn flags_parse_like_train_py() {
        let args = parse(&[
            "-s",
            "scene",
            "-r",
            "-1",
            "--test_iterations",
            "10",
            "20",
            "30",
            "--eval",
            "-w",
            "--debug_from",
            "-1",
            "--set",
            "run.seed=1",
            "--set",
            "run.seed=2",
        ]);
        assert_eq!(args.source_path, Some(PathBuf::from("scene")));
        assert_eq!(args.resolution, Some(-1));
        assert_eq!(args.test_iterations, Some(vec![10, 20, 30]));
        assert!(args.eval && args.white_background);
        assert_eq!(args.debug_from, Some(-1));
        assert_eq!(args.set, ["run.seed=1", "run.seed=2"]);
        // Kebab-case spellings are accepted too.
        let args = parse(&["--source-path", "x", "--sh-degree", "2"]);
        assert_eq!(args.source_path, Some(PathBuf::from("x")));
        assert_eq!(args.sh_degree, Some(2));
    }

    #[test]
    fn flags_become_overrides_before_set_assignments() {
        let args = parse(&["--set", "model.sh_degree=0", "--sh_degree", "2", "--quiet"]);
        let overrides = args.overrides().unwrap();
        let keys: Vec<_> = overrides
            .assignments()
            .iter()
            .map(|a| (a.key.as_str(), a.value.as_str(), a.origin.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("model.sh_degree", "2", "--sh_degree"),
                ("run.quiet", "true", "--quiet"),
                ("model.sh_degree", "0", "--set model.sh_degree=0"),
            ]
        );
        assert!(
            parse(&[]).overrides().unwrap().is_empty(),
            "absent flags set nothing"
        );
    }

    #[test]
    fn resolve_config_applies_every_flag() {
        let args = parse(&[
            "-s",
            "scene",
            "-m",
            "out/x",
            "-i",
            "imgs",
            "-r",
            "2",
            "-w",
            "--sh_degree",
            "1",
            "--eval",
            "--iterations",
            "500",
            "--test_iterations",
            "100",
            "500",
            "--save_iterations",
            "250",
            "--checkpoint_iterations",
            "300",
            "--start_checkpoint",
            "c.ckpt",
            "--quiet",
            "--debug_from",
            "7",
            "--detect_anomaly",
        ]);
        let config = resolve_config(&args).unwrap();
        let mut expected = Config::default();
        expected.model.source_path = "scene".into();
        expected.model.model_path = "out/x".into();
        expected.model.images = "imgs".into();
        expected.model.resolution = 2;
        expected.model.white_background = true;
        expected.model.sh_degree = 1;
        expected.model.eval = true;
        expected.optimization.iterations = 500;
        expected.run.test_iterations = vec![100, 500];
        expected.run.save_iterations = vec![250, 500];
        expected.run.checkpoint_iterations = vec![300];
        expected.run.start_checkpoint = Some("c.ckpt".into());
        expected.run.quiet = true;
        expected.run.debug_from = 7;
        expected.run.detect_anomaly = true;
        assert_eq!(config, expected);
    }
}
