//! `splatforge batch` end to end: a batch stopped by SIGTERM (what Slurm sends before it
//! preempts a job) saves its run, and running it again resumes that run to the same result as
//! an uninterrupted one and skips what is done; the summary reports missing and damaged
//! outputs instead of failing.
//!
//! The Slurm job array itself is tested by `scripts/slurm-test.sh` (it needs root and a
//! cluster started for the test; `.ci/run` runs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use splatforge::fsutil::TempDir;
use splatforge::train::checkpoint::Checkpoint;
use splatforge::train::outputs;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Iterations of the run that gets interrupted.
const LONG: u32 = 120;

/// Two runs of the demo scene: `long` (quarter size, densifying, evaluated at the end; the
/// schedule of the resume test in train_e2e.rs) and `short`. `long` saves a PLY at iteration
/// 10: the marker that it is training.
fn write_batch(dir: &Path) -> PathBuf {
    let demo = manifest().join("assets/demo");
    let text = format!(
        r#"(
            output: "{out}",
            runs: [
                (
                    name: "long",
                    set: [
                        "model.source_path=\"{demo}\"",
                        "model.resolution=4",
                        "model.eval=true",
                        "optimization.iterations={LONG}",
                        "optimization.position_lr_max_steps={LONG}",
                        "optimization.densify_from_iter=40",
                        "optimization.densify_until_iter=100",
                        "optimization.densification_interval=20",
                        "run.save_iterations=[10]",
                    ],
                ),
                (
                    name: "short",
                    set: [
                        "model.source_path=\"{demo}\"",
                        "model.resolution=8",
                        "optimization.iterations=20",
                    ],
                ),
            ],
        )"#,
        out = dir.join("out").display(),
        demo = demo.display(),
    );
    let path = dir.join("study.ron");
    std::fs::write(&path, text).unwrap();
    path
}

fn batch(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_splatforge"));
    command.arg("batch").args(args);
    command
}

fn finished(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    format!("{stdout}{stderr}")
}

/// Waits for `path` to exist while `child` runs (the marker that training is under way).
fn wait_for_file(path: &Path, child: &mut Child) {
    let started = Instant::now();
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the batch exited ({status}) before writing {}",
                path.display()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no {} after 5 minutes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The final test evaluation of a run, from its metrics.jsonl: (PSNR, Gaussians).
fn final_test_metrics(model: &Path, iteration: u32) -> (f64, u64) {
    let text = std::fs::read_to_string(model.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = text
        .lines()
        .rev()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["split"] == "test" && l["iteration"] == iteration)
        .unwrap_or_else(|| panic!("no test evaluation at {iteration} in {text}"));
    (
        line["psnr"].as_f64().unwrap(),
        line["num_gaussians"].as_u64().unwrap(),
    )
}

#[test]
fn sigterm_saves_the_run_and_the_batch_resumes_it_then_skips_what_is_done() {
    let dir = TempDir::new("batch-sigterm").unwrap();
    let file = write_batch(dir.path());
    let file_arg = file.to_str().unwrap();
    let long = dir.path().join("out/long");

    // 1. SIGTERM while `long` trains: it finishes the step, saves, and no other run starts.
    let mut child = batch(&[file_arg, "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&outputs::ply_path(&long, 10), &mut child);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let log = finished(&output);
    assert_eq!(output.status.code(), Some(143), "{log}");
    assert!(
        log.contains("Terminated (SIGTERM): finishing this step"),
        "{log}"
    );
    let checkpoints = outputs::checkpoint_iterations(&long);
    assert_eq!(checkpoints.len(), 1, "one checkpoint: {log}");
    let stopped_at = checkpoints[0];
    assert!(
        (10..LONG).contains(&stopped_at),
        "stopped at {stopped_at}: the run must be interrupted before its end; {log}"
    );
    Checkpoint::read(&outputs::checkpoint_path(&long, stopped_at)).expect("a whole checkpoint");
    assert!(outputs::ply_path(&long, stopped_at).is_file(), "{log}");
    assert!(
        !dir.path().join("out/short").exists(),
        "no run starts after SIGTERM"
    );
    assert!(
        log.contains("| long | demo | 0 | stopped: resumes from"),
        "{log}"
    );
    assert!(log.contains("| short | demo | 0 | not started |"), "{log}");

    // 2. Again: `long` resumes from its checkpoint, `short` trains.
    let output = batch(&[file_arg, "--quiet"]).output().unwrap();
    let log = finished(&output);
    assert!(output.status.success(), "{log}");
    let resumed = format!(
        "long: resuming from {}",
        outputs::checkpoint_path(&long, stopped_at).display()
    );
    assert!(log.contains(&resumed), "{log}");
    assert!(
        log.contains("| long | demo | 0 | done |") && log.contains("| short | demo | 0 | done |"),
        "{log}"
    );

    // 3. The same run without interruption (only `long`: shard 0 of 2) ends the same, within
    // the tolerance of the resume test in train_e2e.rs (float atomics sum in varying order).
    let reference_out = dir.path().join("reference");
    let output = batch(&[
        file_arg,
        "--quiet",
        "--shard",
        "0/2",
        "--output",
        reference_out.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", finished(&output));
    assert!(
        !reference_out.join("short").exists(),
        "shard 0/2 is `long` alone"
    );
    let (psnr_resumed, gaussians_resumed) = final_test_metrics(&long, LONG);
    let (psnr_reference, gaussians_reference) =
        final_test_metrics(&reference_out.join("long"), LONG);
    eprintln!(
        "stopped at {stopped_at}; PSNR resumed {psnr_resumed:.4} vs uninterrupted \
         {psnr_reference:.4}, Gaussians {gaussians_resumed} vs {gaussians_reference}"
    );
    assert!(
        (psnr_resumed - psnr_reference).abs() < 0.05,
        "PSNR {psnr_resumed} vs {psnr_reference}"
    );
    assert!(
        gaussians_resumed.abs_diff(gaussians_reference) * 100 <= gaussians_reference,
        "Gaussians {gaussians_resumed} vs {gaussians_reference}"
    );

    // 4. Again: everything is done; nothing trains, and the summary files list both runs.
    let output = batch(&[file_arg]).output().unwrap();
    let log = finished(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("long: done, skipped"), "{log}");
    assert!(log.contains("short: done, skipped"), "{log}");
    let csv = std::fs::read_to_string(dir.path().join("out/summary_runs.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.contains(&format!("\nlong,long,demo,,0,done,,{LONG},{LONG},test,")),
        "{csv}"
    );
}

#[test]
fn the_summary_reports_missing_and_damaged_runs_without_failing() {
    let dir = TempDir::new("batch-summary-cli").unwrap();
    let file = write_batch(dir.path());
    let long = dir.path().join("out/long");
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(long.join("config.ron"), "(model: (sh_degree: ").unwrap();

    let output = batch(&[file.to_str().unwrap(), "--summary"])
        .output()
        .unwrap();
    let log = finished(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("| long | demo | 0 | error: "), "{log}");
    assert!(log.contains("config.ron"), "{log}");
    assert!(log.contains("| short | demo | 0 | not started |"), "{log}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/summary.json")).unwrap())
            .unwrap();
    assert_eq!(json["runs"][0]["status"], "error");
    assert_eq!(json["runs"][1]["status"], "not started");

    // Training the batch reports the damaged run, trains the other, and fails at the end.
    let output = batch(&[file.to_str().unwrap(), "--quiet", "--shard", "0/1"])
        .output()
        .unwrap();
    let log = finished(&output);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("1 of 2 runs failed"), "{log}");
    assert!(log.contains("| short | demo | 0 | done |"), "{log}");
}
