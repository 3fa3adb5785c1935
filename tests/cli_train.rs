//! `splatforge train` and `render -m` end to end, for what the command line promises: quiet
//! runs are quiet, errors say their cause once, and `render -m` renders with the model's own
//! rasterizer settings.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use splatforge::cli::render::planar_to_rgb8;
use splatforge::dataset::{Dataset, DatasetOptions, Split};
use splatforge::fsutil::TempDir;
use splatforge::gpu::raster::{RasterFrame, Rasterizer};
use splatforge::gpu::{GpuContext, GpuOptions};
use splatforge::model::{GaussianCloud, init, ply};
use splatforge::render_settings::RenderSettings;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

fn splatforge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .args(args)
        .output()
        .expect("the splatforge binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn quiet_runs_print_nothing() {
    let dir = TempDir::new("cli-quiet").unwrap();
    let model = dir.path().join("model");
    let output = splatforge(&[
        "train",
        "-s",
        demo().to_str().unwrap(),
        "-m",
        model.to_str().unwrap(),
        "-r",
        "8",
        "--iterations",
        "3",
        "--quiet",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "", "stdout");
    // (Mesa's software driver announces itself on stderr; that line is not ours.)
    let stderr = text(&output.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("lavapipe") && !l.starts_with("MESA"))
        .collect();
    assert!(ours.is_empty(), "stderr: {stderr}");
    assert!(
        model
            .join("point_cloud/iteration_3/point_cloud.ply")
            .is_file()
    );
}

/// A missing configuration file used to print "No such file or directory (os error 2)" twice
/// (once in the message, once as its source).
#[test]
fn errors_say_their_cause_once() {
    let dir = TempDir::new("cli-cause-once").unwrap();
    let missing = dir.path().join("missing.ron");
    let output = splatforge(&["train", "--config", missing.to_str().unwrap(), "-s", "x"]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("missing.ron"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");

    let output = splatforge(&[
        "render",
        "-s",
        demo().to_str().unwrap(),
        "--ply",
        dir.path().join("absent.ply").to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("absent.ply"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}

/// `render -m` renders with the model's `config.ron` pipeline settings: an antialiased model
/// renders exactly as the trainer renders it (antialiasing on, its near plane), not with the
/// defaults.
#[test]
fn render_model_uses_the_models_pipeline_settings() {
    let dir = TempDir::new("cli-render-aa").unwrap();
    let model = dir.path().join("model");
    let dataset = {
        let mut options = DatasetOptions::new(demo());
        options.resolution = 4;
        options.eval = true;
        Dataset::load(&options).unwrap()
    };
    let gaussians = init::gaussians_from_points(dataset.points.as_ref().unwrap(), 1);
    ply::write_gaussians_ply(
        &model.join("point_cloud/iteration_5/point_cloud.ply"),
        &gaussians,
    )
    .unwrap();
    let config = format!(
        "(model: (source_path: {:?}, model_path: {:?}, resolution: 4, eval: true, sh_degree: 1), \
         pipeline: (antialiasing: true, near_plane: 0.5))",
        demo(),
        model
    );
    std::fs::write(model.join("config.ron"), config).unwrap();
    let output = splatforge(&["render", "-m", model.to_str().unwrap(), "--skip_train"]);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // The first test view, rendered here with the model's settings and with the defaults.
    let gpu = GpuContext::new_headless(&GpuOptions::default()).unwrap();
    let cloud = GaussianCloud::from_gaussians(&gpu, &gaussians, gaussians.len() as u32);
    let view = dataset
        .views
        .iter()
        .find(|v| v.split == Split::Test)
        .unwrap();
    let render = |settings: RenderSettings| {
        let mut rasterizer = Rasterizer::new(&gpu);
        let mut frame = RasterFrame::new(&gpu);
        rasterizer
            .forward(&gpu, &cloud, &view.camera, &settings, &mut frame, None)
            .unwrap();
        planar_to_rgb8(
            &frame.read_image(&gpu),
            view.camera.width,
            view.camera.height,
        )
    };
    let defaults = RenderSettings {
        active_sh_degree: 1,
        ..RenderSettings::default()
    };
    let trained = render(RenderSettings {
        antialiased: true,
        near_plane: 0.5,
        ..defaults.clone()
    });
    assert_ne!(
        trained,
        render(defaults),
        "the settings matter for this cloud"
    );
    let written = image::open(model.join("test/ours_5/renders/00000.png"))
        .unwrap()
        .to_rgb8()
        .into_raw();
    assert_eq!(written, trained, "render -m used the model's settings");
}
