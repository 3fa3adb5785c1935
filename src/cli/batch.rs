//! `splatforge batch <batch.ron>`: train many scenes one after another, headless.
//!
//! The batch file lists runs, each a config file plus overrides (the same `section.field =
//! value` assignments as `train --set`):
//!
//! ```ron
//! (
//!     runs: [
//!         (name: "tabletop", config: "configs/default.ron",
//!          set: ["model.source_path=\"data/tabletop\"", "model.eval=true"]),
//!         (config: "configs/blender.ron", set: ["model.source_path=\"data/lego\""]),
//!     ],
//! )
//! ```
//!
//! Relative config paths are relative to the batch file. A failing run is reported and the
//! next one starts; the command fails at the end if any run failed. A summary table (test
//! PSNR, SSIM, training time, Gaussians) ends the output.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use super::interrupt::{Interrupted, stop_on_ctrl_c};
use crate::config::{ConfigOverrides, resolve_training_config};
use crate::train::session::SessionOptions;
use crate::train::{TrainSummary, train_headless};

/// Arguments of `splatforge batch`.
#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    /// The batch file (RON).
    pub batch: PathBuf,
    /// Print only errors and the summary.
    #[arg(long)]
    pub quiet: bool,
}

/// The batch file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    pub runs: Vec<BatchRun>,
}

/// One run of a batch.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct BatchRun {
    /// Label in the summary (default: the scene folder's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Config file; `None`: the defaults.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// `section.field=value` overrides, applied in order after the file.
    #[serde(default)]
    pub set: Vec<String>,
}

/// Reads and checks a batch file.
pub fn read_batch(path: &Path) -> anyhow::Result<BatchFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let batch: BatchFile = ron::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: {}",
            path.display(),
            e.span.start.line,
            e.span.start.col,
            e.code
        )
    })?;
    if batch.runs.is_empty() {
        anyhow::bail!("{}: the batch lists no runs", path.display());
    }
    Ok(batch)
}

pub fn run(args: BatchArgs) -> anyhow::Result<()> {
    let batch = read_batch(&args.batch)?;
    let base = args.batch.parent().unwrap_or(Path::new("."));
    let stop = stop_on_ctrl_c();
    let mut rows: Vec<(String, Result<TrainSummary, String>)> = Vec::new();
    for (index, entry) in batch.runs.iter().enumerate() {
        let label = entry
            .name
            .clone()
            .unwrap_or_else(|| format!("run {}", index + 1));
        if stop.is_requested() {
            rows.push((label, Err("not started (interrupted)".into())));
            continue;
        }
        eprintln!("== [{}/{}] {label}", index + 1, batch.runs.len());
        let outcome = run_one(entry, base, args.quiet, &stop);
        if let Err(error) = &outcome {
            eprintln!("error in {label}: {error:#}");
        }
        let label = match (&entry.name, &outcome) {
            (None, Ok(s)) => s
                .model_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(label),
            _ => label,
        };
        rows.push((label, outcome.map_err(|e| format!("{e:#}"))));
    }
    println!("{}", summary_table(&rows));
    let failed = rows.iter().filter(|(_, r)| r.is_err()).count();
    if stop.is_requested() {
        let last = rows
            .iter()
            .rev()
            .find_map(|(_, r)| r.as_ref().ok())
            .map(|s| s.iteration)
            .unwrap_or(0);
        return Err(Interrupted {
            iteration: last,
            saved: "the interrupted run's checkpoint".into(),
        }
        .into());
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} runs failed", rows.len());
    }
    Ok(())
}

fn run_one(
    entry: &BatchRun,
    base: &Path,
    quiet: bool,
    stop: &crate::train::StopRequest,
) -> anyhow::Result<TrainSummary> {
    let config_path = entry.config.as_ref().map(|p| {
        if p.is_relative() {
            base.join(p)
        } else {
            p.clone()
        }
    });
    let mut overrides = ConfigOverrides::default();
    for assignment in &entry.set {
        overrides.push_set(assignment)?;
    }
    if quiet {
        overrides.push("run.quiet", "true", "batch --quiet");
    }
    let config = resolve_training_config(config_path.as_deref(), &overrides)?;
    let summary = train_headless(
        &config,
        SessionOptions {
            stop: stop.clone(),
            ..Default::default()
        },
    )?;
    Ok(summary)
}

/// The final table: one row per run.
pub fn summary_table(rows: &[(String, Result<TrainSummary, String>)]) -> String {
    let mut out = String::from(
        "| run | status | iterations | test PSNR | test SSIM | train time (s) | Gaussians |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for (label, result) in rows {
        let line = match result {
            Ok(s) => {
                let test = s.last_eval("test");
                format!(
                    "| {label} | {} | {} | {} | {} | {:.1} | {} |\n",
                    if s.interrupted { "stopped" } else { "done" },
                    s.iteration,
                    test.map(|r| format!("{:.2}", r.psnr)).unwrap_or("-".into()),
                    test.map(|r| format!("{:.3}", r.ssim)).unwrap_or("-".into()),
                    s.elapsed_s,
                    s.num_gaussians
                )
            }
            Err(error) => {
                let first_line = error.lines().next().unwrap_or_default();
                format!("| {label} | failed: {first_line} | - | - | - | - | - |\n")
            }
        };
        out.push_str(&line);
    }
    out
}
