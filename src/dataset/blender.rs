//! Blender ("NeRF synthetic") scenes: `transforms_train.json` and `transforms_test.json`.
//!
//! Each file has `camera_angle_x` (horizontal field of view, radians) and `frames`, each with a
//! `file_path` relative to the scene folder (`.png` implied when the file has no extension) and
//! a 4x4 camera-to-world `transform_matrix` in OpenGL camera axes (x right, y up, looking down
//! -z). Flipping the camera's y and z axes gives OpenCV axes. The focal length follows from the
//! field of view and each image's width; the principal point is the image centre.
//!
//! Other keys (instant-ngp's `fl_x`, `w`, ...) are ignored, as inria does.

use std::path::{Path, PathBuf};

use glam::{DMat3, DVec3};
use rayon::prelude::*;
use serde::Deserialize;

use super::{DatasetError, DatasetFormat, SceneDraft, ViewDraft, path_inside, read_image_size};
use crate::camera::Camera;

pub(super) const TRAIN_FILE: &str = "transforms_train.json";
pub(super) const TEST_FILE: &str = "transforms_test.json";

#[derive(Deserialize)]
struct TransformsFile {
    camera_angle_x: f64,
    frames: Vec<Frame>,
}

#[derive(Deserialize)]
struct Frame {
    file_path: String,
    transform_matrix: [[f64; 4]; 4],
}

fn read_transforms(path: &Path) -> Result<TransformsFile, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, e))?;
    let transforms: TransformsFile =
        serde_json::from_str(&text).map_err(|e| DatasetError::MalformedJson {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let angle = transforms.camera_angle_x;
    if !angle.is_finite() {
        return Err(DatasetError::NonFinite {
            path: path.to_path_buf(),
            what: "camera_angle_x".into(),
        });
    }
    if !(angle > 0.0 && angle < std::f64::consts::PI) {
        return Err(DatasetError::invalid(
            path,
            format!("camera_angle_x = {angle} is not a field of view in (0, pi) radians"),
        ));
    }
    Ok(transforms)
}

/// The image file of a frame: `file_path` as given when that file exists, otherwise with
/// `.png` appended (the NeRF-synthetic convention leaves the extension out). A path leading out
/// of the scene folder is an error naming `listed_in`.
fn frame_image_path(
    source: &Path,
    file_path: &str,
    listed_in: &Path,
) -> Result<PathBuf, DatasetError> {
    let as_given = path_inside(source, file_path, listed_in)?;
    if as_given.is_file() {
        Ok(as_given)
    } else {
        path_inside(source, &format!("{file_path}.png"), listed_in)
    }
}

/// The view name: the image path relative to the scene folder (train and test frames of
/// NeRF-synthetic scenes share file names such as `r_0`, so the folder is kept).
fn frame_name(source: &Path, image_path: &Path) -> String {
    let relative = image_path.strip_prefix(source).unwrap_or(image_path);
    relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn frame_camera(
    frame: &Frame,
    camera_angle_x: f64,
    size: (u32, u32),
    path: &Path,
    index: usize,
) -> Result<Camera, DatasetError> {
    let m = &frame.transform_matrix;
    if !m.iter().flatten().all(|v| v.is_finite()) {
        return Err(DatasetError::NonFinite {
            path: path.to_path_buf(),
            what: format!("transform_matrix of frame {index} ({})", frame.file_path),
        });
    }
    let column = |j: usize| DVec3::new(m[0][j], m[1][j], m[2][j]);
    // OpenGL -> OpenCV camera axes: keep x, flip y and z.
    let world_from_camera = DMat3::from_cols(column(0), -column(1), -column(2));
    let (width, height) = size;
    let focal = 0.5 * f64::from(width) / (0.5 * camera_angle_x).tan();
    let camera = Camera::from_world_pose(
        width,
        height,
        focal,
        focal,
        0.5 * f64::from(width),
        0.5 * f64::from(height),
        world_from_camera,
        column(3),
    );
    if !camera.is_valid() {
        return Err(DatasetError::invalid(
            path,
            format!(
                "transform_matrix of frame {index} ({}) is not a rotation plus translation",
                frame.file_path
            ),
        ));
    }
    Ok(camera)
}

fn load_frames(
    source: &Path,
    transforms_path: &Path,
    from_test_file: bool,
) -> Result<Vec<ViewDraft>, DatasetError> {
    let transforms = read_transforms(transforms_path)?;
    transforms
        .frames
        .par_iter()
        .enumerate()
        .map(|(index, frame)| {
            let image_path = frame_image_path(source, &frame.file_path, transforms_path)?;
            let size = read_image_size(&image_path, transforms_path)?;
            let camera = frame_camera(
                frame,
                transforms.camera_angle_x,
                size,
                transforms_path,
                index,
            )?;
            Ok(ViewDraft {
                name: frame_name(source, &image_path),
                image_path,
                camera,
                original_size: size,
                from_test_file,
            })
        })
        .collect()
}

/// Reads a Blender scene: training frames, then test frames (in file order, as inria does).
/// `transforms_test.json` is optional.
pub(super) fn load_scene(source: &Path) -> Result<SceneDraft, DatasetError> {
    let train_path = source.join(TRAIN_FILE);
    let test_path = source.join(TEST_FILE);
    let mut views = load_frames(source, &train_path, false)?;
    let mut metadata_files = vec![train_path.clone()];
    if test_path.is_file() {
        views.extend(load_frames(source, &test_path, true)?);
        metadata_files.push(test_path);
    }
    if views.is_empty() {
        return Err(DatasetError::Empty {
            path: train_path,
            what: "frames",
        });
    }
    Ok(SceneDraft {
        format: DatasetFormat::Blender,
        views,
        points: None,
        images_folder: source.to_path_buf(),
        metadata_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opengl_pose_becomes_opencv() {
        // A camera at (0, 0, 4) looking down -z with +y up (identity rotation in OpenGL axes):
        // in OpenCV axes it looks along world -z with image y pointing along world -y.
        let frame = Frame {
            file_path: "r_0".into(),
            transform_matrix: [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 4.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
        };
        let angle = 2.0 * (0.5f64).atan(); // tan(angle / 2) = 0.5
        let camera = frame_camera(&frame, angle, (100, 80), Path::new("t.json"), 0).unwrap();
        assert!((camera.fx - 100.0).abs() < 1e-12 && camera.fx == camera.fy);
        assert_eq!((camera.cx, camera.cy), (50.0, 40.0));
        assert!((camera.center() - DVec3::new(0.0, 0.0, 4.0)).length() < 1e-12);
        // The origin is straight ahead at depth 4 and projects to the principal point.
        let origin = camera.to_camera(DVec3::ZERO);
        assert!((origin - DVec3::new(0.0, 0.0, 4.0)).length() < 1e-12);
        // A point above the origin (world +y) appears above the centre: smaller v.
        let (_, v) = camera.project(camera.to_camera(DVec3::new(0.0, 1.0, 0.0)));
        assert!(v < 40.0);
    }

    #[test]
    fn names_keep_the_split_folder() {
        let source = Path::new("/data/lego");
        let path = frame_image_path(source, "./train/r_0", Path::new("t.json")).unwrap();
        assert_eq!(path, source.join("./train/r_0.png"));
        assert_eq!(frame_name(source, &path), "train/r_0.png");
    }
}
