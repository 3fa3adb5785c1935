//! `splatforge view --offscreen` (the viewer without a window) and `splatforge bench view` (with
//! tiny sizes, as CI can afford on the software driver).

use std::io::Read;
use std::path::Path;
use std::process::Command;

use splatforge::cli::render::planar_to_rgb8;
use splatforge::dataset::{Dataset, DatasetOptions};
use splatforge::fsutil::TempDir;
use splatforge::gpu::raster::{RasterFrame, Rasterizer};
use splatforge::gpu::{GpuContext, GpuOptions};
use splatforge::model::cameras_json::read_cameras_json;
use splatforge::model::{GaussianCloud, ply};
use splatforge::train::outputs;
use splatforge::{Camera, Gaussians, RenderSettings};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn splatforge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_splatforge"))
        .args(args)
        .output()
        .expect("the splatforge binary runs")
}

fn golden_colmap_cloud() -> Gaussians {
    let xz = root().join("tests/data/golden/tiny_colmap/gsplat_1000.ply.xz");
    let mut compressed = Vec::new();
    std::fs::File::open(&xz)
        .unwrap()
        .read_to_end(&mut compressed)
        .unwrap();
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut compressed.as_slice(), &mut bytes).unwrap();
    ply::read_gaussians_ply_bytes(&xz, &bytes).unwrap()
}

/// A trained model folder as `splatforge train` writes it: the golden cloud as iteration
/// 1000's PLY, and the demo's cameras in `cameras.json`.
fn model_folder(dir: &Path) -> Gaussians {
    let cloud = golden_colmap_cloud();
    let ply_path = outputs::ply_path(dir, 1000);
    std::fs::create_dir_all(ply_path.parent().unwrap()).unwrap();
    ply::write_gaussians_ply(&ply_path, &cloud).unwrap();
    let mut options = DatasetOptions::new(root().join("assets/demo"));
    options.eval = true;
    let dataset = Dataset::load(&options).unwrap();
    outputs::write_cameras_json(dir, &dataset).unwrap();
    cloud
}

fn trainer_render(gaussians: &Gaussians, camera: &Camera) -> Vec<u8> {
    let ctx = GpuContext::new_headless(&GpuOptions::default()).unwrap();
    let cloud = GaussianCloud::from_gaussians(&ctx, gaussians, gaussians.len() as u32);
    let mut frame = RasterFrame::new(&ctx);
    Rasterizer::new(&ctx)
        .forward(
            &ctx,
            &cloud,
            camera,
            &RenderSettings::default(),
            &mut frame,
            None,
        )
        .unwrap();
    planar_to_rgb8(&frame.read_image(&ctx), camera.width, camera.height)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
fn view_offscreen_shows_a_model_folder_from_a_dataset_camera_as_the_trainer_renders_it() {
    let dir = TempDir::new("cli-view").unwrap();
    let cloud = model_folder(dir.path());
    let out = dir.path().join("view.png");
    let output = splatforge(&[
        "view",
        dir.path().to_str().unwrap(),
        "--offscreen",
        out.to_str().unwrap(),
        "--camera",
        "7",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("40 dataset cameras"), "{stdout}");
    let got = image::open(&out).unwrap().to_rgb8();
    // cameras.json keeps no principal point: the camera it describes is the reference.
    let cameras = read_cameras_json(&dir.path().join("cameras.json")).unwrap();
    let camera = &cameras[7].camera;
    assert_eq!(got.dimensions(), (camera.width, camera.height));
    let expected = trainer_render(&cloud, camera);
    let quality = psnr(got.as_raw(), &expected);
    eprintln!(
        "view --camera 7 ({}): {quality:.1} dB against the trainer",
        cameras[7].name
    );
    assert!(quality >= 40.0, "{quality} dB");
}

#[test]
fn view_names_a_bad_file_and_a_missing_camera() {
    let dir = TempDir::new("cli-view-bad").unwrap();
    let bad = dir.path().join("broken.ply");
    std::fs::write(&bad, b"ply\nformat ascii 1.0\nend_header\n").unwrap();
    let out = dir.path().join("x.png");
    let output = splatforge(&[
        "view",
        bad.to_str().unwrap(),
        "--offscreen",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.ply"), "{stderr}");
    assert!(!out.exists());

    let ply_path = dir.path().join("cloud.ply");
    ply::write_gaussians_ply(&ply_path, &golden_colmap_cloud()).unwrap();
    let output = splatforge(&[
        "view",
        ply_path.to_str().unwrap(),
        "--offscreen",
        out.to_str().unwrap(),
        "--camera",
        "0",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--camera 0") && stderr.contains("0 dataset cameras"),
        "{stderr}"
    );
}

#[test]
fn bench_view_prints_its_table_for_tiny_sizes() {
    let output = splatforge(&[
        "bench",
        "view",
        "--sizes",
        "3000,6000",
        "--resolution",
        "96x64",
        "--clouds",
        "2",
        "--iters",
        "2",
        "--warmup",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("| splats | resolution |"), "{stdout}");
    for n in ["3000", "6000"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {n} | 96x64 |")))
            .unwrap_or_else(|| panic!("no row for {n}: {stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // intersections, then sort, draw, total (GPU ms or "-" without timestamps), wall ms.
        let intersections: u64 = cells[3].parse().unwrap();
        assert!(intersections > 0, "{row}");
        let wall: f64 = cells[7].parse().unwrap();
        assert!(wall > 0.0, "{row}");
        if cells[6] != "-" {
            let (sort, draw, total): (f64, f64, f64) = (
                cells[4].parse().unwrap(),
                cells[5].parse().unwrap(),
                cells[6].parse().unwrap(),
            );
            assert!(
                sort > 0.0 && draw > 0.0 && (sort + draw - total).abs() < 2e-3,
                "{row}"
            );
        }
    }
}
