//! `splatforge info` end to end: runs the built binary on the shipped scenes (and on the shared
//! datasets when they are present) and checks the JSON summary, then a damaged scene.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn run_info(source: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .arg("info")
        .arg("-s")
        .arg(source)
        .args(extra)
        .output()
        .expect("cannot run the splatforge binary")
}

/// Runs `info --json` and parses its stdout.
fn info_json(source: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let output = run_info(source, &args);
    assert!(
        output.status.success(),
        "info failed on {}: {}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is not one JSON object")
}

/// What a scene should report.
struct Expected {
    format: &'static str,
    views: u64,
    eval_train: u64,
    eval_test: u64,
    size: (u64, u64),
    points: u64,
}

fn check_scene(source: &Path, expected: &Expected) {
    let all = info_json(source, &[]);
    assert_eq!(all["format"], expected.format, "{}", source.display());
    assert_eq!(all["train_views"], expected.views);
    assert_eq!(all["test_views"], 0);
    assert_eq!(
        (all["width"].as_u64(), all["height"].as_u64()),
        (Some(expected.size.0), Some(expected.size.1))
    );
    assert_eq!(all["uniform_size"], true);
    assert_eq!(all["points"], expected.points);
    let extent = all["extent"].as_f64().unwrap();
    assert!(extent.is_finite() && extent > 0.0, "extent {extent}");
    let cameras = all["cameras"].as_array().unwrap();
    assert_eq!(cameras.len(), 1, "one shared camera");
    assert_eq!(cameras[0]["views"], expected.views);

    let eval = info_json(source, &["--eval"]);
    assert_eq!(eval["train_views"], expected.eval_train);
    assert_eq!(eval["test_views"], expected.eval_test);
}

const TINY_COLMAP: Expected = Expected {
    format: "colmap",
    views: 40,
    eval_train: 35,
    eval_test: 5,
    size: (320, 240),
    points: 1457,
};

const TINY_BLENDER: Expected = Expected {
    format: "blender",
    views: 40,
    eval_train: 32,
    eval_test: 8,
    size: (128, 128),
    points: 0,
};

#[test]
fn shipped_scenes() {
    check_scene(&manifest_path("assets/demo"), &TINY_COLMAP);
    check_scene(&manifest_path("tests/data/tiny_blender"), &TINY_BLENDER);
    // Resolution and image folder flags reach the loader.
    let half = info_json(
        &manifest_path("assets/demo"),
        &["-r", "2", "--images", "images"],
    );
    assert_eq!(
        (half["width"].as_u64(), half["height"].as_u64()),
        (Some(160), Some(120))
    );
    assert_eq!(half["original_width"], 320);
}

/// The shared datasets next to the checkout (CI always has them: a missing folder fails the
/// test rather than skipping it).
#[test]
fn shared_datasets() {
    let candidates = ["../shared/datasets", "../../shared/datasets"].map(manifest_path);
    let shared = candidates
        .iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("the shared datasets are missing: looked in {candidates:?}"));
    check_scene(&shared.join("tiny_colmap"), &TINY_COLMAP);
    check_scene(&shared.join("tiny_blender"), &TINY_BLENDER);
    check_scene(
        &shared.join("bench_tabletop"),
        &Expected {
            format: "colmap",
            views: 120,
            eval_train: 105,
            eval_test: 15,
            size: (960, 640),
            points: 16_509,
        },
    );
}

#[test]
fn text_output_names_the_essentials() {
    let output = run_info(&manifest_path("assets/demo"), &[]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "colmap",
        "40 train, 0 test",
        "320x240",
        "1457",
        "extent",
        "fx 275.3777",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
}

#[test]
fn bad_input_fails_naming_the_file() {
    let dir = splatforge::fsutil::TempDir::new("cli-info-bad").unwrap();
    let demo = manifest_path("assets/demo");
    std::fs::create_dir_all(dir.path().join("sparse/0")).unwrap();
    for name in ["cameras.bin", "points3D.bin"] {
        std::fs::copy(
            demo.join("sparse/0").join(name),
            dir.path().join("sparse/0").join(name),
        )
        .unwrap();
    }
    // images.bin cut in the middle of its first record.
    let images = std::fs::read(demo.join("sparse/0/images.bin")).unwrap();
    std::fs::write(dir.path().join("sparse/0/images.bin"), &images[..50]).unwrap();
    std::fs::create_dir(dir.path().join("images")).unwrap();

    let output = run_info(dir.path(), &["--json"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no JSON on failure");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("images.bin"), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");

    let output = run_info(&dir.path().join("missing"), &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));

    let output = run_info(&demo, &["-r", "0"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid resolution 0"));
}
