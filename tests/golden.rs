//! splatforge against an outside oracle: clouds trained by gsplat 1.6.0 (CUDA), gsplat's own
//! renders of the test views and the PSNR/SSIM of those renders, computed in float64 with
//! inria's SSIM (tests/data/golden/README.md). Nothing there was produced by splatforge.
//!
//! - Rendering each gsplat cloud with splatforge's rasterizer reproduces gsplat's 8-bit
//!   renders at >= 50 dB PSNR on every test view.
//! - `splatforge metrics` on gsplat's renders against the ground truth reproduces gsplat's
//!   metrics: PSNR within 1e-3 dB and SSIM within 2e-4 per view, for PNG and for JPEG ground
//!   truth (decoded with libjpeg-turbo's code as gsplat's PIL does, see `dataset::jpeg`).
//!
//! The PLYs are stored xz-compressed (1.4 MB instead of 5.9 MB) and decompressed here with the
//! lzma-rs dev-dependency.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use splatforge::cli::render::planar_to_rgb8;
use splatforge::dataset::{Dataset, DatasetOptions, load_view_image};
use splatforge::fsutil::TempDir;
use splatforge::gpu::raster::{RasterFrame, Rasterizer};
use splatforge::gpu::{GpuContext, GpuOptions};
use splatforge::model::{GaussianCloud, Gaussians, ply};
use splatforge::render_settings::RenderSettings;

/// One golden scene: its folder under tests/data/golden and the dataset it was trained on.
struct Golden {
    name: &'static str,
    scene: &'static str,
    white_background: bool,
    test_views: usize,
    /// How close `splatforge metrics` must come to gsplat's PSNR (dB) and SSIM.
    metrics_tolerance: (f64, f64),
}

/// The tolerances: splatforge's metrics equal gsplat's float64 ones up to rounding.
const EXACT: (f64, f64) = (1e-3, 2e-4);

const SCENES: [Golden; 2] = [
    Golden {
        name: "tiny_blender",
        scene: "tests/data/tiny_blender",
        white_background: true,
        test_views: 8,
        metrics_tolerance: EXACT,
    },
    Golden {
        name: "tiny_colmap",
        scene: "assets/demo",
        white_background: false,
        test_views: 5,
        metrics_tolerance: EXACT,
    },
];

fn manifest(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn golden_dir(golden: &Golden) -> PathBuf {
    manifest("tests/data/golden").join(golden.name)
}

/// The scene's test views at full resolution, as gsplat's trainer split them.
fn dataset(golden: &Golden) -> Dataset {
    let mut options = DatasetOptions::new(manifest(golden.scene));
    options.eval = true;
    options.resolution = 1;
    options.white_background = golden.white_background;
    let dataset = Dataset::load(&options).unwrap();
    assert_eq!(dataset.test_views().count(), golden.test_views);
    dataset
}

fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// gsplat's cloud, decompressed into `dir` and read with splatforge's PLY reader.
fn gsplat_cloud(golden: &Golden, dir: &Path) -> Gaussians {
    let compressed = std::fs::File::open(golden_dir(golden).join("gsplat_1000.ply.xz")).unwrap();
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(&mut BufReader::new(compressed), &mut bytes).unwrap();
    let path = dir.join(format!("{}.ply", golden.name));
    std::fs::write(&path, bytes).unwrap();
    ply::read_gaussians_ply(&path).unwrap()
}

/// An 8-bit RGB image file as bytes.
fn rgb8(path: &Path) -> (Vec<u8>, u32, u32) {
    let image = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let (w, h) = image.dimensions();
    (image.into_raw(), w, h)
}

/// PSNR in dB between two 8-bit images.
fn psnr_8bit(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2) / (255.0 * 255.0))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
    }
}

#[test]
fn splatforge_renders_gsplat_clouds_like_gsplat() {
    let gpu = GpuContext::new_headless(&GpuOptions::default()).expect("a GPU device");
    let dir = TempDir::new("golden-render").unwrap();
    let mut rasterizer = Rasterizer::new(&gpu);
    let mut frame = RasterFrame::new(&gpu);
    for golden in &SCENES {
        let gaussians = gsplat_cloud(golden, dir.path());
        assert_eq!(gaussians.sh_degree, 3);
        let cloud = GaussianCloud::from_gaussians(&gpu, &gaussians, gaussians.len() as u32);
        let dataset = dataset(golden);
        // gsplat's "classic" settings: near plane 0.01, eps2d 0.3 (our fixed blur), all bands.
        let settings = RenderSettings {
            background: dataset.background,
            active_sh_degree: 3,
            near_plane: 0.01,
            antialiased: false,
            tight_tile_bounds: false,
        };
        for view in dataset.test_views() {
            let camera = &view.camera;
            rasterizer
                .forward(&gpu, &cloud, camera, &settings, &mut frame, None)
                .unwrap();
            let ours = planar_to_rgb8(&frame.read_image(&gpu), camera.width, camera.height);
            let reference = golden_dir(golden)
                .join("renders")
                .join(format!("{}.png", stem(&view.name)));
            let (theirs, w, h) = rgb8(&reference);
            assert_eq!((w, h), (camera.width, camera.height), "{}", view.name);
            let psnr = psnr_8bit(&ours, &theirs);
            eprintln!(
                "{} {}: {} Gaussians, PSNR vs gsplat {psnr:.2} dB",
                golden.name,
                view.name,
                gaussians.len()
            );
            assert!(
                psnr >= 50.0,
                "{} {}: {psnr:.2} dB against gsplat's render",
                golden.name,
                view.name
            );
        }
    }
}

/// Writes an RGBA8-packed image (as the dataset loads it) as an RGB PNG.
fn save_packed_rgb(pixels: &[u32], width: u32, height: u32, path: &Path) {
    let rgb: Vec<u8> = pixels
        .iter()
        .flat_map(|p| {
            let [r, g, b, _] = p.to_le_bytes();
            [r, g, b]
        })
        .collect();
    image::RgbImage::from_raw(width, height, rgb)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn splatforge_metrics_reproduces_gsplats_metrics() {
    let dir = TempDir::new("golden-metrics").unwrap();
    for golden in &SCENES {
        // A model folder as `splatforge render -m` writes it: gsplat's renders and the ground
        // truth the dataset loads (Blender composited on white in 8 bits, as inria does).
        let model = dir.path().join(golden.name);
        let method = model.join("test").join("gsplat_1000");
        std::fs::create_dir_all(method.join("renders")).unwrap();
        std::fs::create_dir_all(method.join("gt")).unwrap();
        let dataset = dataset(golden);
        for view in dataset.test_views() {
            let file = format!("{}.png", stem(&view.name));
            std::fs::copy(
                golden_dir(golden).join("renders").join(&file),
                method.join("renders").join(&file),
            )
            .unwrap();
            let gt = load_view_image(&dataset, view).unwrap();
            save_packed_rgb(
                &gt.pixels,
                gt.width,
                gt.height,
                &method.join("gt").join(&file),
            );
        }
        let output = Command::new(env!("CARGO_BIN_EXE_splatforge"))
            .args(["metrics", "-m"])
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let ours: serde_json::Value =
            serde_json::from_slice(&std::fs::read(model.join("per_view.json")).unwrap()).unwrap();
        let theirs: serde_json::Value = serde_json::from_slice(
            &std::fs::read(golden_dir(golden).join("metrics.json")).unwrap(),
        )
        .unwrap();
        let expected: BTreeMap<String, (f64, f64)> = theirs["views"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    format!("{}.png", v["view"].as_str().unwrap()),
                    (v["psnr"].as_f64().unwrap(), v["ssim"].as_f64().unwrap()),
                )
            })
            .collect();
        assert_eq!(expected.len(), golden.test_views);
        let (psnr_tolerance, ssim_tolerance) = golden.metrics_tolerance;
        let mut worst = (0.0f64, 0.0f64);
        for (file, (psnr, ssim)) in &expected {
            let our_psnr = ours["gsplat_1000"]["PSNR"][file].as_f64().unwrap();
            let our_ssim = ours["gsplat_1000"]["SSIM"][file].as_f64().unwrap();
            eprintln!(
                "{} {file}: PSNR {our_psnr:.6} vs {psnr:.6}, SSIM {our_ssim:.6} vs {ssim:.6}",
                golden.name
            );
            worst.0 = worst.0.max((our_psnr - psnr).abs());
            worst.1 = worst.1.max((our_ssim - ssim).abs());
        }
        eprintln!(
            "{}: worst differences PSNR {:.2e} dB, SSIM {:.2e}",
            golden.name, worst.0, worst.1
        );
        assert!(
            worst.0 <= psnr_tolerance && worst.1 <= ssim_tolerance,
            "{}: metrics differ from gsplat's by {worst:?}",
            golden.name
        );
    }
}
