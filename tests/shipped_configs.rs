//! Every file in `configs/` works as shipped: each configuration trains (`splatforge train
//! --config`) and each batch file (`configs/batch*.ron`) runs to the end with every run done,
//! with overrides that make the runs short (tiny images, a few steps). A file added to
//! `configs/` is picked up here without changing this test.

use std::path::{Path, PathBuf};
use std::process::Command;

use splatforge::cli::batch::plan::{Plan, PlanOptions};
use splatforge::config::Config;
use splatforge::fsutil::TempDir;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Overrides that turn any run into a few steps on tiny images.
const SHORT: &[&str] = &[
    "model.resolution=8",
    "model.random_init_points=2000",
    "optimization.iterations=8",
    "run.test_iterations=[8]",
    "run.save_iterations=[8]",
    "run.checkpoint_iterations=[]",
    "run.quiet=true",
];

fn shipped_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ron"))
        .collect();
    files.sort();
    files
}

fn is_batch(file: &Path) -> bool {
    file.file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("batch")
}

fn splatforge(args: &[String]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .current_dir(manifest())
        .args(args)
        .output()
        .expect("the splatforge binary starts");
    if !output.status.success() {
        panic!(
            "splatforge {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

fn with_short_overrides(mut args: Vec<String>) -> Vec<String> {
    for assignment in SHORT {
        args.extend(["--set".to_string(), assignment.to_string()]);
    }
    args
}

#[test]
fn every_shipped_config_and_batch_file_runs() {
    let files = shipped_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["default.ron", "demo.ron", "blender.ron", "batch.ron"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing");
    }
    let dir = TempDir::new("shipped-configs").unwrap();
    for file in &files {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let out = dir.path().join(&stem);
        if is_batch(file) {
            let args = vec![
                "batch".into(),
                file.display().to_string(),
                "--output".into(),
                out.display().to_string(),
                "--quiet".into(),
            ];
            splatforge(&with_short_overrides(args));
            let planned = Plan::load(
                file,
                &PlanOptions {
                    output: Some(out.clone()),
                    set: vec![],
                },
            )
            .unwrap()
            .runs;
            let csv = std::fs::read_to_string(out.join("summary_runs.csv")).unwrap();
            let rows: Vec<&str> = csv.lines().skip(1).collect();
            assert_eq!(rows.len(), planned.len(), "{stem}: {csv}");
            for (row, run) in rows.iter().zip(&planned) {
                assert!(
                    row.starts_with(&format!("{},", run.name)) && row.contains(",done,"),
                    "{stem}: {row}"
                );
            }
        } else {
            let config = Config::load(file).unwrap();
            let mut args = vec![
                "train".into(),
                "--config".into(),
                file.display().to_string(),
                "-m".into(),
                out.display().to_string(),
            ];
            // Files without a scene get the shipped scene of their kind.
            if config.model.source_path.as_os_str().is_empty() {
                let scene = if stem.contains("blender") {
                    "tests/data/tiny_blender"
                } else {
                    "assets/demo"
                };
                args.extend(["-s".into(), scene.into()]);
            }
            splatforge(&with_short_overrides(args));
            let ply = out.join("point_cloud/iteration_8/point_cloud.ply");
            assert!(ply.is_file(), "{stem}: no {}", ply.display());
        }
        eprintln!("{stem}: ok");
    }
}

/// The batch file of README.md's "Many scenes, many machines" parses as written and expands to
/// its 9 scenes x 3 seeds (its scenes are not shipped, so nothing trains).
#[test]
fn the_readme_batch_example_expands_to_27_runs() {
    let readme = std::fs::read_to_string(manifest().join("README.md")).unwrap();
    let section = readme
        .split("## Many scenes, many machines")
        .nth(1)
        .expect("the README section");
    let example = section
        .split("```ron\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ron block in the section");
    // Placed at the repository root, where its config path points.
    let dir = TempDir::new("readme-batch").unwrap();
    std::fs::create_dir(dir.path().join("configs")).unwrap();
    std::fs::copy(
        manifest().join("configs/default.ron"),
        dir.path().join("configs/default.ron"),
    )
    .unwrap();
    let file = dir.path().join("study.ron");
    std::fs::write(&file, example).unwrap();
    let plan = Plan::load(&file, &PlanOptions::default()).unwrap();
    assert_eq!(plan.runs.len(), 27);
    assert_eq!(plan.runs[0].name, "bicycle/seed0");
    assert_eq!(plan.runs[26].name, "treehill/seed2");
    assert_eq!(plan.runs[4].group, "bonsai");
    assert_eq!(
        plan.runs[4].model_path(),
        Path::new("output/m360/bonsai/seed1")
    );
    assert!(
        plan.runs
            .iter()
            .all(|r| r.config.model.eval && r.config.model.resolution == 4)
    );
}
