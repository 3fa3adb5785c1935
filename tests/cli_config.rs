//! `splatforge train` configuration handling, through the built binary: precedence of defaults,
//! config file, inria flags and `--set`; the `config.ron` it writes; its error messages.
//!
//! Training itself is not wired in yet, so every run ends with an error after writing the
//! configuration; the tests check that error too, so they notice when that changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use splatforge::config::Config;
use splatforge::fsutil::TempDir;

/// The outcome of one `splatforge` run.
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `splatforge train ARGS` in `dir`.
fn train(dir: &Path, args: &[&str]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .arg("train")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the splatforge binary runs");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The runs below name a scene folder that does not exist: training gets as far as writing the
/// resolved `config.ron`, then stops loading the scene, with this in its error.
const SCENE_MISSING: &str = "error: loading ";

/// Runs a `train` that must get as far as writing `<model_path>/config.ron`, and returns it.
fn resolved(dir: &Path, model_path: &str, args: &[&str]) -> Config {
    let outcome = train(dir, args);
    assert!(
        outcome.stderr.contains(SCENE_MISSING),
        "unexpected stderr: {}",
        outcome.stderr
    );
    assert!(!outcome.success);
    Config::load(&dir.join(model_path).join("config.ron")).expect("config.ron was written")
}

/// Runs a `train` that must fail before writing anything, and returns its error output.
fn rejected(dir: &Path, args: &[&str]) -> String {
    let outcome = train(dir, args);
    assert!(!outcome.success);
    assert!(
        !outcome.stderr.contains(SCENE_MISSING),
        "accepted: {}",
        outcome.stderr
    );
    assert!(outcome.stderr.starts_with("error: "), "{}", outcome.stderr);
    assert!(!dir.join("out").exists(), "nothing is written on error");
    outcome.stderr
}

fn temp_dir() -> TempDir {
    TempDir::new("cli-config").unwrap()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The defaults completed as `splatforge train -s scene -m out` completes them.
fn base_config() -> Config {
    let mut config = Config::default();
    config.model.source_path = "scene".into();
    config.model.model_path = "out".into();
    config
}

#[test]
fn train_writes_the_resolved_config_before_loading_the_scene() {
    let dir = temp_dir();
    let outcome = train(dir.path(), &["-s", "scene", "-m", "out"]);
    assert!(!outcome.success);
    assert!(
        outcome.stdout.contains("Output folder: out"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("out/config.ron"),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stderr.contains(SCENE_MISSING), "{}", outcome.stderr);
    let written = Config::load(&dir.path().join("out/config.ron")).unwrap();
    assert_eq!(written, base_config());

    // --quiet keeps stdout empty.
    let outcome = train(dir.path(), &["-s", "scene", "-m", "out", "--quiet"]);
    assert_eq!(outcome.stdout, "");
}

#[test]
fn precedence_is_defaults_then_file_then_flags_then_set() {
    let dir = temp_dir();
    write(
        dir.path(),
        "run.ron",
        "(\n  model: (source_path: \"scene\", images: \"file_images\", sh_degree: 1, resolution: 2),\n  \
         optimization: (lambda_dssim: 0.5, iterations: 100),\n)",
    );
    let config = resolved(
        dir.path(),
        "out",
        &[
            "--config",
            "run.ron",
            "-m",
            "out",
            "--sh_degree",
            "2",
            "-r",
            "4",
            "--set",
            "model.resolution=8",
            "--set",
            "optimization.lambda_dssim=0.25",
            "--set",
            "optimization.lambda_dssim=0.75",
        ],
    );
    let mut expected = base_config();
    expected.model.images = "file_images".into(); // file over default
    expected.optimization.iterations = 100; // file over default
    expected.model.sh_degree = 2; // flag over file
    expected.model.resolution = 8; // --set over flag over file
    expected.optimization.lambda_dssim = 0.75; // the last --set wins
    expected.run.save_iterations = vec![7000, 30000, 100]; // the last step is saved
    assert_eq!(config, expected);
}

#[test]
fn every_inria_flag_sets_its_field() {
    let dir = temp_dir();
    let config = resolved(
        dir.path(),
        "out",
        &[
            "-s",
            "scene",
            "-m",
            "out",
            "-i",
            "images_2",
            "-r",
            "2",
            "--white_background",
            "--sh_degree",
            "1",
            "--eval",
            "--iterations",
            "1000",
            "--test_iterations",
            "100",
            "1000",
            "--save_iterations",
            "500",
            "--checkpoint_iterations",
            "200",
            "400",
            "--start_checkpoint",
            "ckpt/chkpnt200.bin",
            "--quiet",
            "--debug_from",
            "5",
            "--detect_anomaly",
        ],
    );
    let mut expected = base_config();
    expected.model.images = "images_2".into();
    expected.model.resolution = 2;
    expected.model.white_background = true;
    expected.model.sh_degree = 1;
    expected.model.eval = true;
    expected.optimization.iterations = 1000;
    expected.run.test_iterations = vec![100, 1000];
    expected.run.save_iterations = vec![500, 1000];
    expected.run.checkpoint_iterations = vec![200, 400];
    expected.run.start_checkpoint = Some("ckpt/chkpnt200.bin".into());
    expected.run.quiet = true;
    expected.run.debug_from = 5;
    expected.run.detect_anomaly = true;
    assert_eq!(config, expected);

    // Long forms of the short flags.
    let config = resolved(
        dir.path(),
        "out2",
        &[
            "--source_path",
            "scene",
            "--model_path",
            "out2",
            "--images",
            "im",
            "--resolution",
            "-1",
            "-w",
        ],
    );
    assert_eq!(config.model.source_path, PathBuf::from("scene"));
    assert_eq!(config.model.images, PathBuf::from("im"));
    assert_eq!(config.model.resolution, -1);
    assert!(config.model.white_background);
}

#[test]
fn set_takes_every_kind_of_value() {
    let dir = temp_dir();
    let config = resolved(
        dir.path(),
        "out",
        &[
            "-s",
            "scene",
            "-m",
            "out",
            "--set",
            "optimization.lambda_dssim=0.3",
            "--set",
            "optimization.densify_until_iter=12000",
            "--set",
            "pipeline.antialiasing=true",
            "--set",
            "run.test_iterations=[100,200]",
            "--set",
            "model.images=\"imgs\"",
            "--set",
            "run.start_checkpoint=Some(\"a.ckpt\")",
            "--set",
            "run.seed=7",
        ],
    );
    let mut expected = base_config();
    expected.optimization.lambda_dssim = 0.3;
    expected.optimization.densify_until_iter = 12000;
    expected.pipeline.antialiasing = true;
    expected.run.test_iterations = vec![100, 200];
    expected.model.images = "imgs".into();
    expected.run.start_checkpoint = Some("a.ckpt".into());
    expected.run.seed = 7;
    assert_eq!(config, expected);

    // Bare words for strings and optional paths; None clears an option; --set can give the
    // scene itself.
    write(
        dir.path(),
        "c.ron",
        "(run: (start_checkpoint: Some(\"from_file\")))",
    );
    let config = resolved(
        dir.path(),
        "out2",
        &[
            "--config",
            "c.ron",
            "--set",
            "model.source_path=my scene",
            "--set",
            "model.model_path=out2",
            "--set",
            "run.start_checkpoint=None",
        ],
    );
    assert_eq!(config.model.source_path, PathBuf::from("my scene"));
    assert_eq!(config.run.start_checkpoint, None);
    let config = resolved(
        dir.path(),
        "out3",
        &[
            "-s",
            "s",
            "-m",
            "out3",
            "--set",
            "run.start_checkpoint=b.ckpt",
        ],
    );
    assert_eq!(config.run.start_checkpoint, Some(PathBuf::from("b.ckpt")));
}

#[test]
fn written_config_resolves_to_itself() {
    let dir = temp_dir();
    let first = resolved(
        dir.path(),
        "out",
        &[
            "-s",
            "scene",
            "-m",
            "out",
            "--iterations",
            "1234",
            "--set",
            "run.seed=3",
        ],
    );
    assert_eq!(first.run.save_iterations, vec![7000, 30000, 1234]);
    std::fs::rename(dir.path().join("out"), dir.path().join("first")).unwrap();
    let second = resolved(dir.path(), "out", &["--config", "first/config.ron"]);
    assert_eq!(second, first);
}

#[test]
fn empty_model_path_becomes_output_and_a_random_id() {
    let dir = temp_dir();
    let outcome = train(dir.path(), &["-s", "scene"]);
    assert!(outcome.stderr.contains(SCENE_MISSING), "{}", outcome.stderr);
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("output"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(runs.len(), 1);
    let id = &runs[0];
    assert!(
        id.len() == 10
            && id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{id}"
    );
    let config = Config::load(&dir.path().join("output").join(id).join("config.ron")).unwrap();
    assert_eq!(config.model.model_path, Path::new("output").join(id));
}

#[test]
fn unknown_field_in_a_file_names_file_line_column_and_field() {
    let dir = temp_dir();
    write(
        dir.path(),
        "bad.ron",
        "(\n    optimization: (\n        iterations: 100,\n        lamda_dssim: 0.3,\n    ),\n)\n",
    );
    let stderr = rejected(
        dir.path(),
        &["--config", "bad.ron", "-s", "scene", "-m", "out"],
    );
    assert!(
        stderr.starts_with(
            "error: bad.ron:4:9: unknown field \"lamda_dssim\" in optimization, expected one of: \
             iterations, position_lr_init,"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("(did you mean \"lambda_dssim\"?)"),
        "{stderr}"
    );
}

#[test]
fn mistyped_value_in_a_file_names_the_field_and_the_expected_type() {
    let dir = temp_dir();
    write(
        dir.path(),
        "bad.ron",
        "(\n  model: (\n    white_background: \"yes\",\n  ),\n)\n",
    );
    let stderr = rejected(
        dir.path(),
        &["--config", "bad.ron", "-s", "scene", "-m", "out"],
    );
    assert!(
        stderr.starts_with(
            "error: bad.ron:3:22: model.white_background: invalid value `\"yes\"`, expected true \
             or false"
        ),
        "{stderr}"
    );
}

#[test]
fn out_of_range_values_name_where_they_came_from() {
    let dir = temp_dir();
    write(
        dir.path(),
        "bad.ron",
        "(\n  optimization: (\n    iterations: 100,\n    lambda_dssim: 1.5,\n  ),\n)\n",
    );
    let stderr = rejected(
        dir.path(),
        &["--config", "bad.ron", "-s", "scene", "-m", "out"],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: bad.ron:4:5: optimization.lambda_dssim = 1.5: must be in [0, 1]"
    );

    let stderr = rejected(
        dir.path(),
        &["-s", "scene", "-m", "out", "--sh_degree", "4"],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: --sh_degree: model.sh_degree = 4: must be in 0..=3"
    );

    let stderr = rejected(
        dir.path(),
        &["-s", "scene", "-m", "out", "--set", "pipeline.near_plane=0"],
    );
    assert_eq!(
        stderr.trim_end(),
        "error: --set pipeline.near_plane=0: pipeline.near_plane = 0.0: must be finite and > 0"
    );
}

#[test]
fn unknown_set_keys_list_the_valid_ones() {
    let dir = temp_dir();
    let stderr = rejected(
        dir.path(),
        &[
            "-s",
            "scene",
            "-m",
            "out",
            "--set",
            "optimization.lamda_dssim=0.3",
        ],
    );
    assert!(
        stderr.starts_with(
            "error: --set optimization.lamda_dssim=0.3: unknown field \"lamda_dssim\" in \
             optimization, expected one of: iterations, position_lr_init,"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("lambda_dssim, densification_interval"),
        "{stderr}"
    );

    let stderr = rejected(
        dir.path(),
        &["-s", "scene", "-m", "out", "--set", "opt.x=1"],
    );
    assert!(
        stderr.contains(
            "--set opt.x=1: unknown section \"opt\", expected one of: model, optimization, \
             pipeline, run"
        ),
        "{stderr}"
    );

    let stderr = rejected(
        dir.path(),
        &["-s", "scene", "-m", "out", "--set", "run.seed"],
    );
    assert!(
        stderr.contains("--set run.seed: expected section.field=value"),
        "{stderr}"
    );

    let stderr = rejected(
        dir.path(),
        &[
            "-s",
            "scene",
            "-m",
            "out",
            "--set",
            "optimization.iterations=lots",
        ],
    );
    assert!(
        stderr.contains(
            "--set optimization.iterations=lots: optimization.iterations: invalid value `lots`, \
             expected a whole number >= 0"
        ),
        "{stderr}"
    );
}

#[test]
fn missing_scene_or_config_file_is_explained() {
    let dir = temp_dir();
    let stderr = rejected(dir.path(), &["-m", "out"]);
    assert!(stderr.contains("model.source_path is empty"), "{stderr}");
    assert!(stderr.contains("-s/--source_path"), "{stderr}");

    let stderr = rejected(
        dir.path(),
        &["--config", "missing.ron", "-s", "scene", "-m", "out"],
    );
    assert!(
        stderr.contains("cannot read configuration missing.ron"),
        "{stderr}"
    );
}
