//! `splatforge batch <file> --slurm`: a Slurm job array over the batch's shards.
//!
//! Two scripts go to `<output>/slurm/`: `<stem>.sbatch`, the array (task `I` of `N` runs
//! `splatforge batch <file>`, which reads its shard from `SLURM_ARRAY_TASK_ID` and
//! `SLURM_ARRAY_TASK_COUNT`), and `<stem>_summary.sbatch`, which writes the summary once the
//! array has ended (submitted with `--dependency=afterany:<array job>`). Logs go to
//! `<output>/slurm/logs/`. Tasks are `--requeue`able: a preempted task gets SIGTERM, saves its
//! run's checkpoint, and when Slurm starts it again it skips finished runs and resumes the
//! stopped one. With `--time`, Slurm sends SIGTERM two minutes before the limit, so a task that
//! runs out of time saves too (submit the array again to continue).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::plan::Plan;

/// Seconds between the SIGTERM that precedes a time limit and the limit.
const TIME_LIMIT_WARNING_S: u32 = 120;

/// Options of `--slurm`.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Slurm job array (--slurm)")]
pub struct SlurmArgs {
    /// Write an sbatch script for a Slurm job array over the shards (and one for the summary
    /// after it) and print the commands that submit them.
    #[arg(long)]
    pub slurm: bool,
    /// Submit them too (needs `sbatch` on PATH).
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// Array tasks, one shard each [default: one per run].
    #[arg(long, value_name = "N", requires = "slurm")]
    pub shards: Option<usize>,
    /// GPUs per task; 0 requests none (a cluster without GPU scheduling).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub gpus_per_task: u32,
    /// CPUs per task.
    #[arg(long, value_name = "N", requires = "slurm")]
    pub cpus_per_task: Option<u32>,
    /// Memory per task, in Slurm's format (e.g. 32G).
    #[arg(long, value_name = "SIZE", requires = "slurm")]
    pub mem: Option<String>,
    /// Time limit per task, in Slurm's format (e.g. 4:00:00).
    #[arg(long, value_name = "TIME", requires = "slurm")]
    pub time: Option<String>,
    /// Partition.
    #[arg(long, value_name = "NAME", requires = "slurm")]
    pub partition: Option<String>,
    /// Run at most this many tasks at once (`--array=...%N`).
    #[arg(long, value_name = "N", requires = "slurm")]
    pub max_parallel: Option<usize>,
    /// Another `#SBATCH` option for both scripts, e.g. `--sbatch-option=--account=lab`.
    #[arg(long = "sbatch-option", value_name = "OPTION", requires = "slurm")]
    pub sbatch_options: Vec<String>,
}

/// The scripts of a batch, written.
#[derive(Debug)]
pub struct SlurmScripts {
    pub array: PathBuf,
    pub summary: PathBuf,
    pub tasks: usize,
}

/// What the scripts run: this binary, on the batch file, with the batch's own options.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub exe: PathBuf,
    /// The working directory the batch was planned in (relative paths in it resolve there).
    pub workdir: PathBuf,
    /// `batch <file> --output <dir> [--set ...] [--quiet]`, absolute paths.
    pub batch_args: Vec<String>,
}

/// Writes the array and summary scripts for `plan` under `<output>/slurm/`.
pub fn write_scripts(
    plan: &Plan,
    args: &SlurmArgs,
    invocation: &Invocation,
) -> anyhow::Result<SlurmScripts> {
    if args.shards == Some(0) {
        bail!("--shards must be at least 1");
    }
    let runs = plan.runs.len();
    let tasks = args.shards.unwrap_or(runs).clamp(1, runs.max(1));
    let dir = invocation.workdir.join(&plan.output).join("slurm");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    for path in [&invocation.workdir, &logs] {
        if path.to_string_lossy().contains(char::is_whitespace) {
            bail!(
                "{}: #SBATCH lines cannot hold a path with spaces; run from another folder \
                 or choose another --output",
                path.display()
            );
        }
    }
    let stem = plan
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    let name = format!("splatforge-{stem}");

    let mut array = vec![
        format!("--job-name={name}"),
        match args.max_parallel {
            Some(m) => format!("--array=0-{}%{m}", tasks - 1),
            None => format!("--array=0-{}", tasks - 1),
        },
        "--ntasks=1".into(),
    ];
    if args.gpus_per_task > 0 {
        array.push(format!("--gpus-per-task={}", args.gpus_per_task));
    }
    array.extend(args.cpus_per_task.map(|c| format!("--cpus-per-task={c}")));
    array.extend(args.mem.as_ref().map(|m| format!("--mem={m}")));
    if let Some(time) = &args.time {
        array.push(format!("--time={time}"));
        array.push(format!("--signal=B:TERM@{TIME_LIMIT_WARNING_S}"));
    }
    let common = |options: &mut Vec<String>| {
        options.extend(args.partition.as_ref().map(|p| format!("--partition={p}")));
        options.push(format!("--chdir={}", invocation.workdir.display()));
        options.extend(args.sbatch_options.iter().cloned());
    };
    common(&mut array);
    array.push("--requeue".into());
    array.push("--open-mode=append".into());
    array.push(format!("--output={}/%A_%a.log", logs.display()));

    let command = shell_words(
        std::iter::once(invocation.exe.display().to_string())
            .chain(invocation.batch_args.iter().cloned()),
    );
    let array_text = script(
        &[
            format!(
                "Slurm job array for {}: {runs} runs in {tasks} shards, one task per shard.",
                plan.file.display()
            ),
            "Written by `splatforge batch --slurm`; submit with `sbatch` and this file.".into(),
            "Task I trains the runs whose index is I modulo the task count, skipping runs that"
                .into(),
            "are done and resuming stopped ones from their latest checkpoint. SIGTERM (preemption,"
                .into(),
            "or the time limit) saves a checkpoint; a requeued task resumes from it.".into(),
        ],
        &array,
        &format!("exec {command}"),
    );

    let mut summary = vec![
        format!("--job-name={name}-summary"),
        "--ntasks=1".into(),
        format!("--output={}/summary_%j.log", logs.display()),
    ];
    common(&mut summary);
    let summary_text = script(
        &[
            format!(
                "The summary of {} once its job array has ended.",
                plan.file.display()
            ),
            "Submit with `sbatch --dependency=afterany:<array job id>` and this file.".into(),
        ],
        &summary,
        &format!("exec {command} --summary"),
    );

    let array_path = dir.join(format!("{stem}.sbatch"));
    let summary_path = dir.join(format!("{stem}_summary.sbatch"));
    for (path, text) in [(&array_path, array_text), (&summary_path, summary_text)] {
        crate::fsutil::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(SlurmScripts {
        array: array_path,
        summary: summary_path,
        tasks,
    })
}

fn script(comments: &[String], options: &[String], command: &str) -> String {
    let mut text = String::from("#!/bin/bash\n");
    for line in comments {
        text += &format!("# {line}\n");
    }
    for option in options {
        text += &format!("#SBATCH {option}\n");
    }
    text + command + "\n"
}

/// Submits the array, then the summary after it; returns both job ids.
pub fn submit(scripts: &SlurmScripts) -> anyhow::Result<(String, String)> {
    submit_with("sbatch", scripts)
}

/// [`submit`] with another `sbatch` program (tests).
fn submit_with(program: &str, scripts: &SlurmScripts) -> anyhow::Result<(String, String)> {
    let array = sbatch(program, &[], &scripts.array)?;
    let dependency = format!("--dependency=afterany:{array}");
    let summary = sbatch(program, &[dependency], &scripts.summary)?;
    Ok((array, summary))
}

/// `sbatch --parsable [options] script`; returns the job id.
fn sbatch(program: &str, options: &[String], script: &Path) -> anyhow::Result<String> {
    let output = Command::new(program)
        .arg("--parsable")
        .args(options)
        .arg(script)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "sbatch is not on PATH: submit {} from a Slurm login node",
                    script.display()
                )
            } else {
                anyhow::anyhow!("running sbatch: {e}")
            }
        })?;
    if !output.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // `--parsable` prints `<job id>` or `<job id>;<cluster>`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed no job id: {stdout}");
    }
    Ok(id)
}

/// Words quoted for a POSIX shell (single quotes where needed).
pub fn shell_words(words: impl IntoIterator<Item = String>) -> String {
    words
        .into_iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c));
            if plain {
                w
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::plan::PlanOptions;
    use super::*;
    use crate::fsutil::TempDir;

    fn plan(dir: &Path) -> Plan {
        let file = dir.join("study.ron");
        std::fs::write(
            &file,
            r#"(runs: [(scenes: ["a", "b", "c"], seeds: [0, 1], set: ["optimization.iterations=10"])])"#,
        )
        .unwrap();
        Plan::load(
            &file,
            &PlanOptions {
                output: Some("out".into()),
                set: vec![],
            },
        )
        .unwrap()
    }

    fn invocation(dir: &Path) -> Invocation {
        Invocation {
            exe: "/opt/splat forge/splatforge".into(),
            workdir: dir.to_path_buf(),
            batch_args: vec![
                "batch".into(),
                dir.join("study.ron").display().to_string(),
                "--set".into(),
                "model.source_path=\"it's\"".into(),
            ],
        }
    }

    #[test]
    fn the_array_script_covers_every_shard_and_requeues() {
        let dir = TempDir::new("batch-slurm").unwrap();
        let plan = plan(dir.path());
        let args = SlurmArgs {
            slurm: true,
            shards: Some(4),
            time: Some("1:00:00".into()),
            partition: Some("gpu".into()),
            max_parallel: Some(2),
            sbatch_options: vec!["--account=lab".into()],
            gpus_per_task: 1,
            ..Default::default()
        };
        let scripts = write_scripts(&plan, &args, &invocation(dir.path())).unwrap();
        assert_eq!(scripts.tasks, 4);
        let text = std::fs::read_to_string(&scripts.array).unwrap();
        let logs = dir.path().join("out/slurm/logs");
        assert!(logs.is_dir(), "sbatch needs the log folder to exist");
        for line in [
            "#SBATCH --array=0-3%2".to_string(),
            "#SBATCH --gpus-per-task=1".into(),
            "#SBATCH --ntasks=1".into(),
            "#SBATCH --time=1:00:00".into(),
            "#SBATCH --signal=B:TERM@120".into(),
            "#SBATCH --partition=gpu".into(),
            "#SBATCH --account=lab".into(),
            "#SBATCH --requeue".into(),
            format!("#SBATCH --chdir={}", dir.path().display()),
            format!("#SBATCH --output={}/%A_%a.log", logs.display()),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        let exec = text.lines().last().unwrap();
        assert_eq!(
            exec,
            format!(
                "exec '/opt/splat forge/splatforge' batch {}/study.ron --set \
                 'model.source_path=\"it'\\''s\"'",
                dir.path().display()
            )
        );
        let summary = std::fs::read_to_string(&scripts.summary).unwrap();
        assert!(summary.ends_with(" --summary\n"), "{summary}");
        assert!(
            !summary.contains("--array") && !summary.contains("--gpus"),
            "{summary}"
        );
        assert!(summary.contains("#SBATCH --account=lab"));
    }

    #[test]
    fn defaults_one_task_per_run_and_no_gpu_request_when_zero() {
        let dir = TempDir::new("batch-slurm").unwrap();
        let plan = plan(dir.path());
        let args = SlurmArgs {
            slurm: true,
            gpus_per_task: 0,
            shards: Some(50),
            ..Default::default()
        };
        let scripts = write_scripts(&plan, &args, &invocation(dir.path())).unwrap();
        assert_eq!(scripts.tasks, 6, "never more tasks than runs");
        let text = std::fs::read_to_string(&scripts.array).unwrap();
        assert!(text.contains("#SBATCH --array=0-5\n"));
        assert!(!text.contains("gpus") && !text.contains("--time"), "{text}");
    }

    #[test]
    fn submits_the_array_then_the_summary_after_it() {
        let dir = TempDir::new("batch-slurm").unwrap();
        let scripts = SlurmScripts {
            array: dir.path().join("a.sbatch"),
            summary: dir.path().join("s.sbatch"),
            tasks: 2,
        };
        // A stand-in for sbatch that records its arguments and answers like `--parsable`.
        let fake = dir.path().join("sbatch");
        let calls = dir.path().join("calls");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> {calls}\nn=$(wc -l < {calls})\necho \"$((41 + n));cluster\"\n",
            calls = calls.display()
        );
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let ids = submit_with(fake.to_str().unwrap(), &scripts).unwrap();
        assert_eq!(ids, ("42".to_string(), "43".to_string()));
        let recorded = std::fs::read_to_string(&calls).unwrap();
        let lines: Vec<&str> = recorded.lines().collect();
        assert_eq!(lines[0], format!("--parsable {}", scripts.array.display()));
        assert_eq!(
            lines[1],
            format!(
                "--parsable --dependency=afterany:42 {}",
                scripts.summary.display()
            )
        );

        let missing = dir.path().join("no-sbatch-here");
        let error = submit_with(missing.to_str().unwrap(), &scripts).unwrap_err();
        assert!(
            error.to_string().contains("sbatch is not on PATH"),
            "{error}"
        );
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'error: invalid partition' >&2\nexit 1\n",
        )
        .unwrap();
        let error = submit_with(fake.to_str().unwrap(), &scripts).unwrap_err();
        assert!(error.to_string().contains("invalid partition"), "{error}");
    }

    #[test]
    fn shell_words_survive_quotes_and_spaces() {
        let words = ["a b", "it's", "", "plain-1/x=y"].map(String::from);
        assert_eq!(shell_words(words), r#"'a b' 'it'\''s' '' plain-1/x=y"#);
    }
}
