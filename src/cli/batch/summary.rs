//! The batch summary: one row per run, read from its output folder, and one row per group of
//! runs that differ only in their seed, with the mean and the sample standard deviation over
//! the seeds. Printed as markdown tables and written as CSV and JSON:
//! `<output>/summary.json` (runs and groups), `<output>/summary_runs.csv`,
//! `<output>/summary_groups.csv`.
//!
//! A run whose outputs are missing or damaged is a row that says so; it never stops the
//! summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::plan::PlannedRun;
use super::status::{MetricLine, RunStatus, inspect};
use crate::fsutil::write_atomic;

/// One run's line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub name: String,
    pub group: String,
    pub scene: String,
    pub variant: Option<String>,
    pub seed: u64,
    /// `done`, `stopped`, `not started`, `failed` or `error`.
    pub status: &'static str,
    /// Why a run failed or is in error, or where a stopped run resumes.
    pub detail: String,
    /// The iteration the metrics are from, and the run's last iteration.
    pub iteration: u32,
    pub iterations: u32,
    /// The views evaluated: "test", or "train" for a run without test views.
    pub split: Option<String>,
    pub psnr: Option<f64>,
    pub ssim: Option<f64>,
    pub l1: Option<f64>,
    pub gaussians: Option<u32>,
    /// Training seconds (evaluation and saving excluded).
    pub train_time_s: Option<f64>,
    pub model_path: PathBuf,
}

/// Mean and sample standard deviation (0 for a single value).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(Spread { mean, std })
    }
}

/// The runs of one group (same entry, scene and variant; different seeds).
#[derive(Clone, Debug, Serialize)]
pub struct GroupRow {
    pub group: String,
    pub scene: String,
    pub variant: Option<String>,
    pub runs: usize,
    /// Runs that are done; the spreads are over these.
    pub done: usize,
    pub seeds: Vec<u64>,
    pub psnr: Option<Spread>,
    pub ssim: Option<Spread>,
    pub gaussians: Option<Spread>,
    pub train_time_s: Option<Spread>,
}

/// The whole summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub runs: Vec<RunRow>,
    pub groups: Vec<GroupRow>,
}

impl Summary {
    /// Reads every run's folder. `failures` holds errors of runs this process tried to train
    /// (by plan index); they are shown for runs that are not done.
    pub fn gather<'a>(
        runs: impl IntoIterator<Item = &'a PlannedRun>,
        failures: &HashMap<usize, String>,
    ) -> Summary {
        let rows: Vec<RunRow> = runs
            .into_iter()
            .map(|run| {
                let mut row = run_row(run, inspect(run));
                if let Some(error) = failures.get(&run.index).filter(|_| row.status != "done") {
                    row.status = "failed";
                    row.detail = error.lines().next().unwrap_or_default().to_string();
                }
                row
            })
            .collect();
        let groups = group_rows(&rows);
        Summary { runs: rows, groups }
    }

    /// Runs that are not done.
    pub fn unfinished(&self) -> usize {
        self.runs.iter().filter(|r| r.status != "done").count()
    }

    /// Markdown tables: the runs, then the groups if any group has several runs.
    pub fn tables(&self) -> String {
        let mut out = String::from(
            "| run | scene | seed | status | iteration | PSNR | SSIM | Gaussians | train time (s) |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &self.runs {
            let status = if r.detail.is_empty() {
                r.status.to_string()
            } else {
                format!("{}: {}", r.status, r.detail.replace('|', "/"))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {status} | {}/{} | {} | {} | {} | {} |",
                r.name,
                r.scene,
                r.seed,
                r.iteration,
                r.iterations,
                fixed(r.psnr, 2),
                fixed(r.ssim, 4),
                r.gaussians.map(|g| g.to_string()).unwrap_or("-".into()),
                fixed(r.train_time_s, 1),
            );
        }
        if self.groups.iter().any(|g| g.runs > 1) {
            out.push_str(
                "\n| group | seeds | done | PSNR | SSIM | Gaussians | train time (s) |\n\
                 |---|---|---|---|---|---|---|\n",
            );
            for g in &self.groups {
                let _ = writeln!(
                    out,
                    "| {} | {} | {}/{} | {} | {} | {} | {} |",
                    g.group,
                    g.seeds
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                    g.done,
                    g.runs,
                    spread(g.psnr, 2),
                    spread(g.ssim, 4),
                    spread(g.gaussians, 0),
                    spread(g.train_time_s, 1),
                );
            }
        }
        out
    }

    /// One line per run.
    pub fn runs_csv(&self) -> String {
        let mut out = String::from(
            "name,group,scene,variant,seed,status,detail,iteration,iterations,split,psnr,ssim,l1,\
             gaussians,train_time_s,model_path\n",
        );
        for r in &self.runs {
            let fields = [
                r.name.clone(),
                r.group.clone(),
                r.scene.clone(),
                r.variant.clone().unwrap_or_default(),
                r.seed.to_string(),
                r.status.to_string(),
                r.detail.clone(),
                r.iteration.to_string(),
                r.iterations.to_string(),
                r.split.clone().unwrap_or_default(),
                number(r.psnr),
                number(r.ssim),
                number(r.l1),
                r.gaussians.map(|g| g.to_string()).unwrap_or_default(),
                number(r.train_time_s),
                r.model_path.display().to_string(),
            ];
            out += &csv_line(&fields);
        }
        out
    }

    /// One line per group: mean and standard deviation of each measure over the seeds.
    pub fn groups_csv(&self) -> String {
        let mut out = String::from(
            "group,scene,variant,runs,done,seeds,psnr_mean,psnr_std,ssim_mean,ssim_std,\
             gaussians_mean,gaussians_std,train_time_s_mean,train_time_s_std\n",
        );
        for g in &self.groups {
            let seeds: Vec<String> = g.seeds.iter().map(u64::to_string).collect();
            let mut fields = vec![
                g.group.clone(),
                g.scene.clone(),
                g.variant.clone().unwrap_or_default(),
                g.runs.to_string(),
                g.done.to_string(),
                seeds.join(" "),
            ];
            for s in [g.psnr, g.ssim, g.gaussians, g.train_time_s] {
                fields.push(number(s.map(|s| s.mean)));
                fields.push(number(s.map(|s| s.std)));
            }
            out += &csv_line(&fields);
        }
        out
    }

    /// Writes `summary.json`, `summary_runs.csv` and `summary_groups.csv` into `dir`
    /// (atomically); returns their paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let json = serde_json::to_string_pretty(self)? + "\n";
        let files = [
            ("summary.json", json),
            ("summary_runs.csv", self.runs_csv()),
            ("summary_groups.csv", self.groups_csv()),
        ];
        let mut written = Vec::new();
        for (name, content) in files {
            let path = dir.join(name);
            write_atomic(&path, content.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

fn run_row(run: &PlannedRun, status: RunStatus) -> RunRow {
    let mut row = RunRow {
        name: run.name.clone(),
        group: run.group.clone(),
        scene: run.scene.clone(),
        variant: run.variant.clone(),
        seed: run.seed(),
        status: "",
        detail: String::new(),
        iteration: 0,
        iterations: run.config.optimization.iterations,
        split: None,
        psnr: None,
        ssim: None,
        l1: None,
        gaussians: None,
        train_time_s: None,
        model_path: run.model_path().to_path_buf(),
    };
    let with_metrics = |row: &mut RunRow, m: &MetricLine| {
        row.split = Some(m.split.clone());
        row.psnr = Some(m.psnr);
        row.ssim = Some(m.ssim);
        row.l1 = Some(m.l1);
        row.gaussians = Some(m.num_gaussians);
        row.train_time_s = Some(m.elapsed_s);
    };
    match status {
        RunStatus::NotStarted => row.status = "not started",
        RunStatus::Done(m) => {
            row.status = "done";
            row.iteration = m.iteration;
            with_metrics(&mut row, &m);
        }
        RunStatus::Stopped {
            iteration,
            checkpoint,
            latest,
        } => {
            row.status = "stopped";
            row.iteration = iteration;
            row.detail = match checkpoint {
                Some(path) => format!("resumes from {}", path.display()),
                None => "no checkpoint: starts over".into(),
            };
            if let Some(m) = latest {
                // The metrics are those of an earlier iteration than the one reached.
                row.iteration = m.iteration;
                with_metrics(&mut row, &m);
            }
        }
        RunStatus::Broken(why) => {
            row.status = "error";
            row.detail = why;
        }
    }
    row
}

fn group_rows(rows: &[RunRow]) -> Vec<GroupRow> {
    let mut order: Vec<&str> = Vec::new();
    let mut members: HashMap<&str, Vec<&RunRow>> = HashMap::new();
    for row in rows {
        let list = members.entry(&row.group).or_default();
        if list.is_empty() {
            order.push(&row.group);
        }
        list.push(row);
    }
    order
        .into_iter()
        .map(|group| {
            let runs = &members[group];
            let done: Vec<&&RunRow> = runs.iter().filter(|r| r.status == "done").collect();
            let values = |f: fn(&RunRow) -> Option<f64>| {
                Spread::of(&done.iter().filter_map(|r| f(r)).collect::<Vec<f64>>())
            };
            GroupRow {
                group: group.to_string(),
                scene: runs[0].scene.clone(),
                variant: runs[0].variant.clone(),
                runs: runs.len(),
                done: done.len(),
                seeds: runs.iter().map(|r| r.seed).collect(),
                psnr: values(|r| r.psnr),
                ssim: values(|r| r.ssim),
                gaussians: values(|r| r.gaussians.map(f64::from)),
                train_time_s: values(|r| r.train_time_s),
            }
        })
        .collect()
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value
        .map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "-".into())
}

fn spread(value: Option<Spread>, decimals: usize) -> String {
    value
        .map(|s| format!("{:.decimals$} ± {:.decimals$}", s.mean, s.std))
        .unwrap_or_else(|| "-".into())
}

/// A number for CSV: full precision, empty when absent.
fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// One CSV record (RFC 4180: fields with a comma, quote or line break are quoted).
fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::plan::{Plan, PlanOptions};
    use super::super::status::tests::{finish, line, write_metrics};
    use super::*;
    use crate::fsutil::TempDir;
    use crate::train::outputs;

    /// Two scenes x three seeds, as the batch would plan them, writing under `dir`.
    fn plan(dir: &Path) -> Plan {
        let path = dir.join("study.ron");
        std::fs::write(
            &path,
            r#"(runs: [(
                scenes: ["data/garden", "data/room"],
                seeds: [0, 1, 2],
                set: ["optimization.iterations=100", "run.test_iterations=[50]"],
            )])"#,
        )
        .unwrap();
        let options = PlanOptions {
            output: Some(dir.join("out")),
            set: vec![],
        };
        Plan::load(&path, &options).unwrap()
    }

    #[test]
    fn means_and_spreads_over_seeds_and_damaged_runs_reported() {
        let dir = TempDir::new("batch-summary").unwrap();
        let plan = plan(dir.path());
        let model = |i: usize| plan.runs[i].model_path().to_path_buf();
        let prepare = |i: usize| {
            std::fs::create_dir_all(model(i)).unwrap();
            plan.runs[i].config.clone()
        };
        // garden: three runs done, PSNR 24, 25, 26.
        for (i, psnr) in [(0, 24.0), (1, 25.0), (2, 26.0)] {
            let c = prepare(i);
            finish(&model(i), &c, psnr);
        }
        // room seed 0: done; seed 1: damaged metrics; seed 2: stopped with a checkpoint.
        let c = prepare(3);
        finish(&model(3), &c, 30.0);
        let c = prepare(4);
        finish(&model(4), &c, 31.0);
        std::fs::write(model(4).join("metrics.jsonl"), "{\"iteration\":\n").unwrap();
        let c = prepare(5);
        c.write_atomic(&model(5).join("config.ron")).unwrap();
        write_metrics(&model(5), &[line(50, "test", 22.0)]);
        std::fs::write(outputs::checkpoint_path(&model(5), 60), b"").unwrap();

        let mut failures = HashMap::new();
        failures.insert(1, "should not show: the run is done".to_string());
        let summary = Summary::gather(&plan.runs, &failures);
        let status: Vec<&str> = summary.runs.iter().map(|r| r.status).collect();
        assert_eq!(status, ["done", "done", "done", "done", "error", "stopped"]);
        assert!(
            summary.runs[4].detail.contains("metrics.jsonl line 1"),
            "{:?}",
            summary.runs[4]
        );
        assert_eq!(summary.runs[5].iteration, 50);
        assert!(summary.runs[5].detail.contains("chkpnt60.sfck"));
        assert_eq!(summary.unfinished(), 2);

        assert_eq!(summary.groups.len(), 2);
        let garden = &summary.groups[0];
        assert_eq!(
            (garden.group.as_str(), garden.runs, garden.done),
            ("garden", 3, 3)
        );
        assert_eq!(garden.seeds, [0, 1, 2]);
        let psnr = garden.psnr.unwrap();
        assert!(
            (psnr.mean - 25.0).abs() < 1e-12 && (psnr.std - 1.0).abs() < 1e-12,
            "{psnr:?}"
        );
        let room = &summary.groups[1];
        assert_eq!((room.runs, room.done), (3, 1));
        assert_eq!(
            room.psnr,
            Some(Spread {
                mean: 30.0,
                std: 0.0
            })
        );

        let tables = summary.tables();
        assert!(
            tables.contains("| garden/seed1 | garden | 1 | done | 100/100 | 25.00 |"),
            "{tables}"
        );
        assert!(
            tables.contains("| garden | 0 1 2 | 3/3 | 25.00 ± 1.00 |"),
            "{tables}"
        );
        assert!(
            tables.contains("| room/seed1 | room | 1 | error: "),
            "{tables}"
        );

        // The files: every run and group, parseable.
        let written = summary.write(&dir.path().join("out")).unwrap();
        assert_eq!(written.len(), 3);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&written[0]).unwrap()).unwrap();
        assert_eq!(json["runs"].as_array().unwrap().len(), 6);
        assert_eq!(json["groups"][0]["psnr"]["mean"], 25.0);
        assert_eq!(json["runs"][4]["status"], "error");
        let runs_csv = std::fs::read_to_string(&written[1]).unwrap();
        assert_eq!(runs_csv.lines().count(), 7);
        assert!(
            runs_csv
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("garden/seed0,garden,garden,,0,done,,100,100,test,24,")
        );
        let groups_csv = std::fs::read_to_string(&written[2]).unwrap();
        assert!(
            groups_csv
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("garden,garden,,3,3,0 1 2,25,1,"),
            "{groups_csv}"
        );
    }

    #[test]
    fn failures_of_this_process_and_missing_runs_are_rows() {
        let dir = TempDir::new("batch-summary").unwrap();
        let plan = plan(dir.path());
        let mut failures = HashMap::new();
        failures.insert(
            2,
            "loading data/garden: no such folder\ndetails".to_string(),
        );
        let summary = Summary::gather(&plan.runs, &failures);
        assert_eq!(summary.runs[0].status, "not started");
        assert_eq!(summary.runs[2].status, "failed");
        assert_eq!(
            summary.runs[2].detail,
            "loading data/garden: no such folder"
        );
        assert_eq!(summary.groups[0].psnr, None);
        assert!(summary.tables().contains("| garden | 0 1 2 | 0/3 | - |"));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let line = csv_line(&["a".into(), "b,c".into(), "say \"x\"".into(), String::new()]);
        assert_eq!(line, "a,\"b,c\",\"say \"\"x\"\"\",\n");
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
