//! The files of a run in `<model_path>` (REFERENCE.md "Files"), all written atomically:
//! `point_cloud/iteration_N/point_cloud.ply`, `cameras.json`, `input.ply`, `config.ron`,
//! `metrics.jsonl` and `chkpnt<N>.sfck`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::state::EvalRecord;
use crate::dataset::Split;
use crate::fsutil;
use crate::views::SceneInfo;

/// `<model>/point_cloud/iteration_<N>/point_cloud.ply`.
pub fn ply_path(model: &Path, iteration: u32) -> PathBuf {
    model
        .join("point_cloud")
        .join(format!("iteration_{iteration}"))
        .join("point_cloud.ply")
}

/// `<model>/chkpnt<N>.sfck`.
pub fn checkpoint_path(model: &Path, iteration: u32) -> PathBuf {
    model.join(format!("chkpnt{iteration}.sfck"))
}

/// The iterations for which `<model>/point_cloud/iteration_<N>/point_cloud.ply` exists,
/// ascending.
pub fn saved_iterations(model: &Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir(model.join("point_cloud"))
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let n: u32 = entry
                .file_name()
                .to_str()?
                .strip_prefix("iteration_")?
                .parse()
                .ok()?;
            entry.path().join("point_cloud.ply").is_file().then_some(n)
        })
        .collect();
    found.sort_unstable();
    found
}

/// The iterations for which a checkpoint `<model>/chkpnt<N>.sfck` exists, ascending (what a
/// batch resumes from).
pub fn checkpoint_iterations(model: &Path) -> Vec<u32> {
    let mut found: Vec<u32> = std::fs::read_dir(model)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let n: u32 = name
                .to_str()?
                .strip_prefix("chkpnt")?
                .strip_suffix(".sfck")?
                .parse()
                .ok()?;
            entry.path().is_file().then_some(n)
        })
        .collect();
    found.sort_unstable();
    found
}

/// One entry of `cameras.json`, as the reference's `camera_to_JSON` writes it.
#[derive(Serialize)]
struct CameraEntry {
    id: usize,
    img_name: String,
    width: u32,
    height: u32,
    /// Camera centre in world coordinates.
    position: [f64; 3],
    /// Camera-to-world rotation, row by row.
    rotation: [[f64; 3]; 3],
    fy: f64,
    fx: f64,
}

/// Writes `cameras.json`: test views first, then training views (the reference's order), with
/// image names without extension.
pub fn write_cameras_json(model: &Path, scene: &SceneInfo) -> anyhow::Result<()> {
    let ordered = scene
        .views
        .iter()
        .filter(|v| v.split == Split::Test)
        .chain(scene.views.iter().filter(|v| v.split == Split::Train));
    let entries: Vec<CameraEntry> = ordered
        .enumerate()
        .map(|(id, view)| {
            let c = &view.camera;
            let r = c.world_from_camera_rotation();
            let stem = Path::new(&view.name)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| view.name.clone());
            CameraEntry {
                id,
                img_name: stem,
                width: c.width,
                height: c.height,
                position: c.center().to_array(),
                rotation: [0, 1, 2].map(|row| [r.x_axis[row], r.y_axis[row], r.z_axis[row]]),
                fy: c.fy,
                fx: c.fx,
            }
        })
        .collect();
    let path = model.join("cameras.json");
    let json = serde_json::to_vec(&entries)?;
    fsutil::write_atomic(&path, &json).with_context(|| format!("writing {}", path.display()))
}

/// Appends evaluation records to `<model>/metrics.jsonl` (one JSON object per line).
///
/// The file is rewritten atomically with the old lines plus the new ones, so a crash never
/// leaves a half line.
pub fn append_metrics(model: &Path, records: &[EvalRecord]) -> anyhow::Result<()> {
    let path = model.join("metrics.jsonl");
    let mut content = std::fs::read(&path).unwrap_or_default();
    for record in records {
        serde_json::to_writer(&mut content, record)?;
        content.write_all(b"\n")?;
    }
    fsutil::write_atomic(&path, &content).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::Camera;
    use crate::dataset::DatasetFormat;
    use crate::fsutil::TempDir;
    use crate::views::TrainView;
    use glam::{DMat3, DVec3};

    #[test]
    fn cameras_json_matches_the_reference_layout() {
        let dir = TempDir::new("outputs").unwrap();
        let rotation = DMat3::from_rotation_z(0.5);
        let camera = |x: f64| {
            Camera::from_world_pose(
                64,
                48,
                50.0,
                51.0,
                32.0,
                24.0,
                rotation,
                DVec3::new(x, 2.0, 3.0),
            )
        };
        let scene = SceneInfo {
            format: DatasetFormat::Colmap,
            source: PathBuf::new(),
            extent: 1.0,
            background: [0.0; 3],
            views: vec![
                TrainView {
                    index: 0,
                    name: "a.jpg".into(),
                    camera: camera(1.0),
                    split: Split::Test,
                },
                TrainView {
                    index: 1,
                    name: "b.jpg".into(),
                    camera: camera(4.0),
                    split: Split::Train,
                },
            ],
        };
        write_cameras_json(dir.path(), &scene).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("cameras.json")).unwrap())
                .unwrap();
        assert_eq!(json[0]["img_name"], "a");
        assert_eq!(json[1]["id"], 1);
        assert_eq!(json[1]["position"][0], 4.0);
        assert_eq!(json[0]["fx"], 50.0);
        // Row 0 of the camera-to-world rotation.
        let r01 = json[0]["rotation"][0][1].as_f64().unwrap();
        assert!((r01 - rotation.y_axis.x).abs() < 1e-12);
    }

    #[test]
    fn lists_checkpoints_by_iteration() {
        let dir = TempDir::new("outputs").unwrap();
        assert!(checkpoint_iterations(dir.path()).is_empty());
        for name in [
            "chkpnt300.sfck",
            "chkpnt20.sfck",
            ".chkpnt40.sfck.tmp-1-0",
            "chkpntx.sfck",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(dir.path().join("chkpnt5.sfck")).unwrap();
        assert_eq!(checkpoint_iterations(dir.path()), [20, 300]);
        assert_eq!(
            checkpoint_path(dir.path(), 300),
            dir.path().join("chkpnt300.sfck")
        );
    }

    #[test]
    fn metrics_lines_accumulate() {
        let dir = TempDir::new("outputs").unwrap();
        let record = |iteration| EvalRecord {
            iteration,
            split: "test",
            views: 5,
            l1: 0.1,
            psnr: 20.0,
            ssim: 0.5,
            num_gaussians: 10,
            elapsed_s: 1.5,
        };
        append_metrics(dir.path(), &[record(100)]).unwrap();
        append_metrics(dir.path(), &[record(200)]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["iteration"], 200);
        assert_eq!(lines[0]["split"], "test");
    }
}
