//! `splatforge editor` as a user runs it, offscreen (no display needed): the screenshot and
//! the speed figures, a broken scene, and `splatforge train --edits` replaying an edits file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use splatforge::fsutil::TempDir;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn splatforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .args(args)
        .current_dir(manifest())
        .output()
        .expect("splatforge runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn demo() -> String {
    manifest().join("assets/demo").display().to_string()
}

/// Flags for a tiny run of the demo scene (32x24 images, SH degree 1, no evaluation).
fn tiny(output: &Path) -> Vec<String> {
    [
        "-s",
        &demo(),
        "-m",
        &output.display().to_string(),
        "-r",
        "32",
        "--sh_degree",
        "1",
        "--iterations",
        "400",
        "--set",
        "run.test_iterations=[]",
    ]
    .map(str::to_string)
    .to_vec()
}

#[test]
fn offscreen_editor_writes_a_screenshot_and_reports_frame_rate_and_speed() {
    let dir = TempDir::new("editor-cli").unwrap();
    let output = dir.path().join("run");
    let shot = dir.path().join("shot.png");
    let mut args = vec!["editor".to_string()];
    args.extend(tiny(&output));
    args.extend(
        [
            "--offscreen",
            "--frames",
            "12",
            "--size",
            "640x400",
            "--screenshot",
            &shot.display().to_string(),
        ]
        .map(str::to_string),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = splatforge(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("frames/s") && stdout.contains("it/s"),
        "{stdout}"
    );
    let image = image::open(&shot).expect("the screenshot is a PNG");
    assert_eq!((image.width(), image.height()), (640, 400));
    assert!(output.join("config.ron").is_file());
    // Quitting saved the run it trained.
    let saved: Vec<PathBuf> = std::fs::read_dir(&output)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sfck"))
        .collect();
    assert_eq!(saved.len(), 1, "{stdout}");
}

#[test]
fn a_broken_scene_is_an_error_naming_it() {
    let dir = TempDir::new("editor-cli-broken").unwrap();
    let missing = dir.path().join("no-such-scene");
    let out = splatforge(&[
        "editor",
        "-s",
        &missing.display().to_string(),
        "--offscreen",
        "--frames",
        "1",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no-such-scene"), "{stderr}");
    let out = splatforge(&["editor", "--offscreen"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--offscreen needs --frames N"));
}

#[test]
fn train_replays_an_edits_file_and_refuses_a_bad_one() {
    let dir = TempDir::new("editor-cli-edits").unwrap();
    let edits = dir.path().join("edits.ron");
    std::fs::write(
        &edits,
        "[(iteration: 5, key: \"optimization.opacity_lr\", value: \"0.05\"),\n \
         (iteration: 8, key: \"optimization.lambda_dssim\", value: \"0.4\")]",
    )
    .unwrap();
    let mut args = vec!["train".to_string()];
    args.extend(tiny(&dir.path().join("run")));
    args.extend(["--set", "optimization.iterations=10", "--quiet", "--edits"].map(str::to_string));
    args.push(edits.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = splatforge(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));

    std::fs::write(
        &edits,
        "[(iteration: 5, key: \"model.sh_degree\", value: \"2\")]",
    )
    .unwrap();
    let out = splatforge(&args);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("edits.ron") && stderr.contains("cannot change during a run"),
        "{stderr}"
    );
}
