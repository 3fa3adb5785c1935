//! `splatforge render` (both forms) and `splatforge metrics`, on the demo scene with a cloud
//! initialised from its SfM points.

use std::path::Path;
use std::process::Command;

use splatforge::dataset::{Dataset, DatasetOptions};
use splatforge::fsutil::TempDir;
use splatforge::model::{init, ply};

fn demo() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
}

fn splatforge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .args(args)
        .output()
        .expect("the splatforge binary runs")
}

/// A cloud initialised from the demo's SfM points, written as a PLY.
fn write_initial_cloud(path: &Path) {
    let dataset = Dataset::load(&DatasetOptions::new(demo())).unwrap();
    let gaussians = init::gaussians_from_points(dataset.points.as_ref().unwrap(), 1);
    ply::write_gaussians_ply(path, &gaussians).unwrap();
}

fn png_size(path: &Path) -> (u32, u32) {
    image::image_dimensions(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn render_dataset_cameras_from_a_ply() {
    let dir = TempDir::new("cli-render").unwrap();
    let cloud = dir.path().join("cloud.ply");
    write_initial_cloud(&cloud);
    let out = dir.path().join("renders");
    let output = splatforge(&[
        "render",
        "-s",
        demo().to_str().unwrap(),
        "--ply",
        cloud.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--split",
        "test",
        "-r",
        "4",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // llffhold 8 over 40 sorted names: images 0, 8, 16, 24, 32.
    assert_eq!(
        names,
        [
            "img_0000.png",
            "img_0008.png",
            "img_0016.png",
            "img_0024.png",
            "img_0032.png"
        ]
    );
    let first = image::open(out.join("img_0000.png")).unwrap().to_rgb8();
    assert_eq!(first.dimensions(), (80, 60));
    // The SfM points are in view: the render is not just the black background.
    let lit = first
        .pixels()
        .filter(|p| p.0.iter().any(|&c| c > 10))
        .count();
    assert!(lit > 80 * 60 / 4, "only {lit} lit pixels");
}

#[test]
fn render_model_then_metrics_like_render_py_and_metrics_py() {
    let dir = TempDir::new("cli-render-model").unwrap();
    let model = dir.path().join("model");
    write_initial_cloud(&model.join("point_cloud/iteration_7/point_cloud.ply"));
    let config = format!(
        "(model: (source_path: {:?}, model_path: {:?}, resolution: 4, eval: true, sh_degree: 1))",
        demo(),
        model
    );
    std::fs::write(model.join("config.ron"), config).unwrap();

    let output = splatforge(&["render", "-m", model.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (split, count) in [("train", 35), ("test", 5)] {
        for kind in ["renders", "gt"] {
            let folder = model.join(split).join("ours_7").join(kind);
            let files = std::fs::read_dir(&folder).unwrap().count();
            assert_eq!(files, count, "{}", folder.display());
            assert_eq!(png_size(&folder.join("00000.png")), (80, 60));
        }
    }

    let output = splatforge(&["metrics", "-m", model.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("results.json")).unwrap()).unwrap();
    let psnr = results["ours_7"]["PSNR"].as_f64().unwrap();
    let ssim = results["ours_7"]["SSIM"].as_f64().unwrap();
    // An untrained cloud: far from the images, but a real comparison of real renders.
    assert!(psnr > 5.0 && psnr < 25.0, "PSNR {psnr}");
    assert!(ssim > 0.0 && ssim < 0.9, "SSIM {ssim}");
    let per_view: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("per_view.json")).unwrap()).unwrap();
    assert_eq!(per_view["ours_7"]["PSNR"].as_object().unwrap().len(), 5);
}

/// `splatforge metrics` reads a JPEG ground truth (whatever its name) with libjpeg, as the
/// dataset loader does, and reports a corrupt one by name instead of panicking.
#[test]
fn metrics_reads_jpeg_ground_truth_and_reports_a_corrupt_one() {
    let dir = TempDir::new("cli-metrics-jpeg").unwrap();
    let method = dir.path().join("model/test/ours_1");
    for kind in ["renders", "gt"] {
        std::fs::create_dir_all(method.join(kind)).unwrap();
    }
    let jpeg = std::fs::read(demo().join("images/img_0000.jpg")).unwrap();
    let decoded = splatforge::dataset::jpeg::decode_rgb(&jpeg).unwrap();
    decoded.save(method.join("renders/a.png")).unwrap();
    std::fs::write(method.join("gt/a.png"), &jpeg).unwrap();
    let model = dir.path().join("model");
    let output = splatforge(&["metrics", "-m", model.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("results.json")).unwrap()).unwrap();
    // The render is the ground truth's own decode: identical images (an infinite PSNR is
    // written as null).
    assert!(results["ours_1"]["PSNR"].is_null(), "{results}");
    assert!(
        results["ours_1"]["SSIM"].as_f64().unwrap() > 1.0 - 1e-9,
        "{results}"
    );

    std::fs::write(
        method.join("gt/a.png"),
        b"\xFF\xD8\xFFthis is not a JPEG\xFF\xD9",
    )
    .unwrap();
    let output = splatforge(&["metrics", "-m", model.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gt/a.png"), "{stderr}");
    assert!(stderr.contains("libjpeg: Unsupported marker"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn render_reports_a_malformed_ply_by_name() {
    let dir = TempDir::new("cli-render-bad").unwrap();
    let bad = dir.path().join("broken.ply");
    std::fs::write(
        &bad,
        b"ply\nformat binary_little_endian 1.0\nelement vertex 10\n",
    )
    .unwrap();
    let output = splatforge(&[
        "render",
        "-s",
        demo().to_str().unwrap(),
        "--ply",
        bad.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.ply"), "{stderr}");
}

#[test]
fn bench_raster_times_a_trained_cloud_from_the_datasets_cameras() {
    let dir = TempDir::new("cli-bench-raster").unwrap();
    let cloud = dir.path().join("cloud.ply");
    write_initial_cloud(&cloud);
    let scene = demo();
    let bench = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "raster",
            "--ply",
            cloud.to_str().unwrap(),
            "-s",
            scene.to_str().unwrap(),
            "-r",
            "4",
            "--views",
            "2",
            "--iters",
            "1",
            "--warmup",
            "0",
        ];
        args.extend_from_slice(extra);
        splatforge(&args)
    };
    let output = bench(&["--chunk-size", "256"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("2 training views of"), "{stdout}");
    assert!(
        stdout.contains("backward pieces of 256 entries"),
        "{stdout}"
    );
    assert!(stdout.contains("| rasterize backward |"), "{stdout}");
    // Every pixel stops at or before its tile's end: the walked share is at most 100%.
    let tiles = stdout
        .lines()
        .find(|l| l.starts_with("tile lists ("))
        .unwrap_or_else(|| panic!("no tile list line in {stdout}"));
    let share: f64 = tiles
        .rsplit_once(", ")
        .and_then(|(_, tail)| tail.strip_suffix("% of all entries"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{tiles}"));
    assert!(share > 0.0 && share <= 100.0, "{tiles}");

    let bad = bench(&["--chunk-size", "300"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && stderr.contains("300"), "{stderr}");
    let missing = dir.path().join("missing.ply");
    let output = splatforge(&[
        "bench",
        "raster",
        "--ply",
        missing.to_str().unwrap(),
        "-s",
        demo().to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("missing.ply"),
        "{stderr}"
    );
}
