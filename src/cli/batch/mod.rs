//! `splatforge batch <file.ron>`: many training runs, on one machine or over a Slurm job array.
//!
//! - [`plan`]: the batch file (runs, and matrices of scenes x variants x seeds) expanded into
//!   an ordered list of runs, each with its resolved configuration and output folder;
//! - [`shard`]: which runs one process trains (`--shard I/N`, or the Slurm array task's);
//! - [`status`]: what a run's output folder says: done (skipped), stopped (resumed from its
//!   latest checkpoint), not started, or broken (reported);
//! - [`summary`]: every run's final metrics in one table, with means and spreads over seeds,
//!   printed and written as CSV and JSON;
//! - [`slurm`]: the sbatch scripts of a job array over the shards.
//!
//! A process trains its runs one after another. A failing run is reported and the next one
//! starts; the command fails at the end if any run failed. Ctrl-C or SIGTERM stops the current
//! run after its step (checkpoint and PLY saved) and starts no other; running the batch again
//! skips the finished runs and resumes the stopped one.

pub mod plan;
pub mod shard;
pub mod slurm;
pub mod status;
pub mod summary;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::interrupt::{Interrupted, stop_on_interrupt};
use crate::gpu::{GpuContext, GpuOptions};
use crate::train::session::SessionOptions;
use crate::train::{TrainSummary, train_headless};
use plan::{Plan, PlanOptions, PlannedRun};
use shard::Shard;
use status::{RunStatus, inspect};
use summary::Summary;

/// Arguments of `splatforge batch`.
#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    /// The batch file (RON).
    pub batch: PathBuf,
    /// Train shard I of N (from 0): the runs whose index is I modulo N. Default: in a Slurm
    /// job array, the array task's shard; otherwise every run.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Root of the runs' output folders (replaces the file's `output`).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Set a field of every run, after the batch file's overrides (section.field=value, as
    /// `train --set`; repeatable).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub set: Vec<String>,
    /// List the runs with their index, status and output folder, and exit.
    #[arg(long)]
    pub list: bool,
    /// Summarise every run's outputs (printed, and written as CSV and JSON in the output root),
    /// and exit.
    #[arg(long, conflicts_with = "list")]
    pub summary: bool,
    /// Print only errors and the summary.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub slurm: slurm::SlurmArgs,
}

pub fn run(args: BatchArgs) -> anyhow::Result<()> {
    let options = PlanOptions {
        output: args.output.clone(),
        set: args.set.clone(),
    };
    let plan = Plan::load(&args.batch, &options)?;
    if args.summary {
        return write_summary(&plan);
    }
    if args.slurm.slurm {
        return write_slurm_scripts(&plan, &args);
    }
    let shard = match args.shard {
        Some(shard) => shard,
        None => Shard::from_slurm_env(|name| std::env::var(name).ok())?.unwrap_or(Shard::ALL),
    };
    if args.list {
        print_list(&plan, shard);
        return Ok(());
    }
    train_shard(&plan, shard, args.quiet)
}

/// `--summary`: every run of the plan, whichever shard trained it.
fn write_summary(plan: &Plan) -> anyhow::Result<()> {
    let summary = Summary::gather(&plan.runs, &HashMap::new());
    println!("{}", summary.tables());
    for path in summary.write(&plan.output)? {
        eprintln!("Wrote {}", path.display());
    }
    Ok(())
}

fn print_list(plan: &Plan, shard: Shard) {
    println!("| # | run | status | output |\n|---|---|---|---|");
    for run in plan.runs.iter().filter(|r| shard.contains(r.index)) {
        let status = match inspect(run) {
            RunStatus::NotStarted => "not started".to_string(),
            RunStatus::Done(_) => "done".into(),
            RunStatus::Stopped {
                iteration,
                checkpoint,
                ..
            } => match checkpoint {
                Some(_) => format!("stopped at {iteration}, resumable"),
                None => format!("stopped at {iteration}, no checkpoint"),
            },
            RunStatus::Broken(why) => format!("error: {why}"),
        };
        println!(
            "| {} | {} | {status} | {} |",
            run.index,
            run.name,
            run.model_path().display()
        );
    }
}

fn write_slurm_scripts(plan: &Plan, args: &BatchArgs) -> anyhow::Result<()> {
    let workdir = std::env::current_dir().context("reading the working directory")?;
    let file = std::fs::canonicalize(&plan.file)
        .with_context(|| format!("resolving {}", plan.file.display()))?;
    let mut batch_args = vec![
        "batch".to_string(),
        file.display().to_string(),
        "--output".into(),
        workdir.join(&plan.output).display().to_string(),
    ];
    for assignment in &args.set {
        batch_args.extend(["--set".to_string(), assignment.clone()]);
    }
    if args.quiet {
        batch_args.push("--quiet".into());
    }
    let invocation = slurm::Invocation {
        exe: std::env::current_exe().context("locating the splatforge binary")?,
        workdir,
        batch_args,
    };
    let scripts = slurm::write_scripts(plan, &args.slurm, &invocation)?;
    println!(
        "Slurm job array: {} runs in {} tasks: {}",
        plan.runs.len(),
        scripts.tasks,
        scripts.array.display()
    );
    println!("Summary job: {}", scripts.summary.display());
    if args.slurm.submit {
        let (array, summary) = slurm::submit(&scripts)?;
        println!("Submitted job array {array} and summary job {summary}");
    } else {
        println!(
            "Submit with:\n  job=$(sbatch --parsable {}) && sbatch --dependency=afterany:$job {}",
            scripts.array.display(),
            scripts.summary.display()
        );
    }
    Ok(())
}

/// What to do with a run, from its output folder.
enum Next {
    Skip,
    Train { resume_from: Option<PathBuf> },
    Report(String),
}

fn next_step(run: &PlannedRun) -> Next {
    match inspect(run) {
        RunStatus::Done(_) => Next::Skip,
        RunStatus::NotStarted => Next::Train { resume_from: None },
        RunStatus::Stopped { checkpoint, .. } => Next::Train {
            resume_from: checkpoint,
        },
        RunStatus::Broken(why) => Next::Report(why),
    }
}

/// Trains the runs of `shard` that are not done, then prints their summary (and writes the
/// summary files when the shard is the whole plan).
fn train_shard(plan: &Plan, shard: Shard, quiet: bool) -> anyhow::Result<()> {
    let runs: Vec<&PlannedRun> = plan
        .runs
        .iter()
        .filter(|r| shard.contains(r.index))
        .collect();
    if shard == Shard::ALL {
        eprintln!("Batch {}: {} runs", plan.file.display(), runs.len());
    } else {
        eprintln!(
            "Batch {}: shard {shard}, {} of {} runs",
            plan.file.display(),
            runs.len(),
            plan.runs.len()
        );
    }
    let stop = stop_on_interrupt();
    let mut gpu: Option<GpuContext> = None;
    let mut failures: HashMap<usize, String> = HashMap::new();
    let mut stopped: Option<TrainSummary> = None;
    for (position, run) in runs.iter().enumerate() {
        if stop.is_requested() {
            break;
        }
        let label = format!("[{}/{}] {}", position + 1, runs.len(), run.name);
        let resume_from = match next_step(run) {
            Next::Skip => {
                eprintln!("== {label}: done, skipped");
                continue;
            }
            Next::Report(why) => {
                eprintln!("== {label}: error: {why}");
                failures.insert(run.index, why);
                continue;
            }
            Next::Train { resume_from } => resume_from,
        };
        match &resume_from {
            Some(checkpoint) => eprintln!("== {label}: resuming from {}", checkpoint.display()),
            None => eprintln!("== {label}"),
        }
        let mut config = run.config.clone();
        config.run.quiet |= quiet;
        if resume_from.is_some() {
            config.run.start_checkpoint = resume_from;
        }
        let device = match &gpu {
            Some(device) => device.clone(),
            None => {
                let opened =
                    GpuContext::new_headless(&GpuOptions::default()).context("opening the GPU")?;
                gpu.insert(opened).clone()
            }
        };
        let options = SessionOptions {
            stop: stop.clone(),
            gpu: Some(device),
            ..Default::default()
        };
        match train_headless(&config, options) {
            Ok(summary) if summary.interrupted => stopped = Some(summary),
            Ok(_) => {}
            Err(error) => {
                eprintln!("error in {}: {error:#}", run.name);
                failures.insert(run.index, format!("{error:#}"));
            }
        }
    }

    let summary = Summary::gather(runs.iter().copied(), &failures);
    println!("{}", summary.tables());
    if shard == Shard::ALL {
        for path in summary.write(&plan.output)? {
            eprintln!("Wrote {}", path.display());
        }
    }
    if stop.is_requested() {
        let (iteration, saved) = match &stopped {
            Some(s) => {
                let files: Vec<String> = [&s.checkpoint, &s.ply]
                    .into_iter()
                    .flatten()
                    .map(|p| p.display().to_string())
                    .collect();
                if files.is_empty() {
                    (
                        s.iteration,
                        "nothing (stopped before its first step)".into(),
                    )
                } else {
                    (s.iteration, files.join(" and "))
                }
            }
            None => (0, "nothing (no run was training)".into()),
        };
        return Err(Interrupted { iteration, saved }.into());
    }
    if !failures.is_empty() {
        bail!("{} of {} runs failed", failures.len(), runs.len());
    }
    Ok(())
}
