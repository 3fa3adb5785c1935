//! What a run's output folder says about it: done (skip it), stopped (resume it from its
//! latest checkpoint), not started, or broken (report it; never guess).
//!
//! A run is done when its folder's `config.ron` is the run's configuration (up to the fields
//! that do not change the result: `run.start_checkpoint`, `run.quiet`), its final PLY exists
//! and `metrics.jsonl` has the evaluation of its last iteration. Every file of a run is written
//! atomically, so a file that exists is complete; a file that does not parse was damaged after
//! the fact and is reported, with the file and the line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::PlannedRun;
use crate::config::Config;
use crate::train::outputs;

/// One line of `metrics.jsonl` (one evaluation of one split).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricLine {
    pub iteration: u32,
    /// "test" or "train".
    pub split: String,
    pub l1: f64,
    pub psnr: f64,
    pub ssim: f64,
    pub num_gaussians: u32,
    /// Training seconds up to this iteration (evaluation and saving excluded).
    pub elapsed_s: f64,
}

/// The state of one run, read from its output folder.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Nothing of this run in its folder.
    NotStarted,
    /// Stopped before its last iteration.
    Stopped {
        /// How far it got (latest checkpoint, PLY or evaluation).
        iteration: u32,
        /// The latest checkpoint, where training resumes; `None`: it starts over.
        checkpoint: Option<PathBuf>,
        /// The latest evaluation.
        latest: Option<MetricLine>,
    },
    /// Trained to the end; the evaluation of its last iteration (test views if it has any).
    Done(MetricLine),
    /// Something in the folder is damaged or belongs to another configuration.
    Broken(String),
}

/// Reads the state of `run` from its output folder.
pub fn inspect(run: &PlannedRun) -> RunStatus {
    match inspect_folder(run.model_path(), &run.config) {
        Ok(status) => status,
        Err(why) => RunStatus::Broken(why),
    }
}

fn inspect_folder(model: &Path, config: &Config) -> Result<RunStatus, String> {
    let config_path = model.join("config.ron");
    let last = config.optimization.iterations;
    let final_ply = outputs::ply_path(model, last);
    if !config_path.is_file() {
        if final_ply.is_file() {
            return Err(format!(
                "{} is missing: cannot tell which configuration trained {}",
                config_path.display(),
                final_ply.display()
            ));
        }
        return Ok(RunStatus::NotStarted);
    }
    let saved = Config::load(&config_path).map_err(|e| format!("{e}"))?;
    let differences = config_differences(&saved, config);
    if !differences.is_empty() {
        return Err(format!(
            "{} holds a run of another configuration ({}); delete the folder or give the run \
             another model.model_path",
            model.display(),
            differences.join("; ")
        ));
    }
    let metrics = read_metrics(&model.join("metrics.jsonl"))?;
    if final_ply.is_file() {
        let final_record = pick_final(&metrics, last).ok_or_else(|| {
            format!(
                "{} exists but {} has no evaluation of iteration {last}",
                final_ply.display(),
                model.join("metrics.jsonl").display()
            )
        })?;
        return Ok(RunStatus::Done(final_record));
    }
    let checkpoint = outputs::checkpoint_iterations(model)
        .into_iter()
        .filter(|&n| n < last)
        .max();
    let iteration = [
        checkpoint,
        outputs::saved_iterations(model).into_iter().max(),
        metrics.iter().map(|m| m.iteration).max(),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0);
    Ok(RunStatus::Stopped {
        iteration,
        checkpoint: checkpoint.map(|n| outputs::checkpoint_path(model, n)),
        latest: metrics.last().cloned(),
    })
}

/// The fields in which two configurations differ, as `section.field: folder vs batch`,
/// ignoring the fields that do not change what a run produces.
pub fn config_differences(saved: &Config, planned: &Config) -> Vec<String> {
    let normalise = |config: &Config| {
        let mut config = config.clone();
        config.run.start_checkpoint = None;
        config.run.quiet = false;
        serde_json::to_value(config).unwrap_or_default()
    };
    let (saved, planned) = (normalise(saved), normalise(planned));
    let mut differences = Vec::new();
    for section in Config::SECTIONS {
        for field in Config::section_fields(section).unwrap_or_default() {
            let (a, b) = (&saved[section][field], &planned[section][field]);
            if a != b {
                differences.push(format!(
                    "{section}.{field}: {a} in the folder, {b} in the batch"
                ));
            }
        }
    }
    differences
}

/// Every line of a `metrics.jsonl`; a missing file has none. A line that does not parse is an
/// error naming the file and the line.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricLine>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// The evaluation of iteration `last`: the test views' if there are any, else the training
/// views'. A run that was restarted may have evaluated an iteration twice: the latest counts.
fn pick_final(metrics: &[MetricLine], last: u32) -> Option<MetricLine> {
    let of_split = |split: &str| {
        metrics
            .iter()
            .rev()
            .find(|m| m.iteration == last && m.split == split)
            .cloned()
    };
    of_split("test").or_else(|| of_split("train"))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    pub fn line(iteration: u32, split: &str, psnr: f64) -> MetricLine {
        MetricLine {
            iteration,
            split: split.into(),
            l1: 0.05,
            psnr,
            ssim: psnr / 40.0,
            num_gaussians: 1000 + iteration,
            elapsed_s: f64::from(iteration) / 10.0,
        }
    }

    pub fn write_metrics(model: &Path, lines: &[MetricLine]) {
        let text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        std::fs::write(model.join("metrics.jsonl"), text).unwrap();
    }

    pub fn config(model: &Path) -> Config {
        let mut config = Config::default();
        config.model.source_path = "scene".into();
        config.model.model_path = model.to_path_buf();
        config.optimization.iterations = 100;
        config.run.test_iterations = vec![50, 100];
        config.run.save_iterations = vec![100];
        config
    }

    /// A folder as a finished run leaves it (the PLY's content does not matter here).
    pub fn finish(model: &Path, config: &Config, psnr: f64) {
        config.write_atomic(&model.join("config.ron")).unwrap();
        write_metrics(
            model,
            &[
                line(50, "test", psnr - 2.0),
                line(100, "train", psnr + 5.0),
                line(100, "test", psnr),
            ],
        );
        let ply = outputs::ply_path(model, 100);
        std::fs::create_dir_all(ply.parent().unwrap()).unwrap();
        std::fs::write(ply, b"ply").unwrap();
    }

    #[test]
    fn a_finished_run_is_done_with_its_final_test_metrics() {
        let dir = TempDir::new("batch-status").unwrap();
        let config = config(dir.path());
        assert_eq!(
            inspect_folder(dir.path(), &config),
            Ok(RunStatus::NotStarted)
        );
        assert_eq!(
            inspect_folder(&dir.path().join("absent"), &config),
            Ok(RunStatus::NotStarted)
        );
        finish(dir.path(), &config, 25.0);
        assert_eq!(
            inspect_folder(dir.path(), &config),
            Ok(RunStatus::Done(line(100, "test", 25.0)))
        );
        // A resumed run's config.ron names its checkpoint and may be quiet: still the same run.
        let mut resumed = config.clone();
        resumed.run.start_checkpoint = Some(dir.path().join("chkpnt40.sfck"));
        resumed.run.quiet = true;
        resumed
            .write_atomic(&dir.path().join("config.ron"))
            .unwrap();
        assert!(matches!(
            inspect_folder(dir.path(), &config),
            Ok(RunStatus::Done(_))
        ));
    }

    #[test]
    fn a_stopped_run_resumes_from_its_latest_checkpoint() {
        let dir = TempDir::new("batch-status").unwrap();
        let model = dir.path();
        let config = config(model);
        config.write_atomic(&model.join("config.ron")).unwrap();
        write_metrics(model, &[line(50, "test", 20.0)]);
        assert_eq!(
            inspect_folder(model, &config),
            Ok(RunStatus::Stopped {
                iteration: 50,
                checkpoint: None,
                latest: Some(line(50, "test", 20.0))
            })
        );
        for n in [30, 70] {
            std::fs::write(outputs::checkpoint_path(model, n), b"").unwrap();
        }
        let ply = outputs::ply_path(model, 70);
        std::fs::create_dir_all(ply.parent().unwrap()).unwrap();
        std::fs::write(ply, b"ply").unwrap();
        let RunStatus::Stopped {
            iteration,
            checkpoint,
            ..
        } = inspect_folder(model, &config).unwrap()
        else {
            panic!("not stopped");
        };
        assert_eq!(iteration, 70);
        assert_eq!(checkpoint, Some(outputs::checkpoint_path(model, 70)));
    }

    #[test]
    fn damaged_or_foreign_outputs_are_reported() {
        let dir = TempDir::new("batch-status").unwrap();
        let model = dir.path();
        let config = config(model);
        finish(model, &config, 25.0);

        let mut other = config.clone();
        other.optimization.iterations = 200;
        other.run.seed = 3;
        let Err(why) = inspect_folder(model, &other) else {
            panic!("accepted another config")
        };
        assert!(
            why.contains("optimization.iterations: 100 in the folder, 200 in the batch"),
            "{why}"
        );
        assert!(
            why.contains("run.seed: 0 in the folder, 3 in the batch"),
            "{why}"
        );

        std::fs::write(
            model.join("metrics.jsonl"),
            "{\"iteration\": 50}\nnot json\n",
        )
        .unwrap();
        let Err(why) = inspect_folder(model, &config) else {
            panic!("accepted damaged metrics")
        };
        assert!(why.contains("metrics.jsonl line 1"), "{why}");

        write_metrics(model, &[line(50, "test", 20.0)]);
        let Err(why) = inspect_folder(model, &config) else {
            panic!("no final metrics accepted")
        };
        assert!(why.contains("no evaluation of iteration 100"), "{why}");

        std::fs::write(model.join("config.ron"), "(model: (sh_degree: \"three\"))").unwrap();
        let Err(why) = inspect_folder(model, &config) else {
            panic!("damaged config accepted")
        };
        assert!(why.contains("config.ron"), "{why}");

        std::fs::remove_file(model.join("config.ron")).unwrap();
        let Err(why) = inspect_folder(model, &config) else {
            panic!("missing config accepted")
        };
        assert!(why.contains("config.ron is missing"), "{why}");
    }

    #[test]
    fn the_final_evaluation_prefers_test_views_and_the_latest_line() {
        let lines = [
            line(100, "train", 30.0),
            line(100, "test", 20.0),
            line(100, "test", 21.0),
        ];
        assert_eq!(pick_final(&lines, 100), Some(line(100, "test", 21.0)));
        assert_eq!(pick_final(&lines[..1], 100), Some(line(100, "train", 30.0)));
        assert_eq!(pick_final(&lines, 50), None);
    }
}
