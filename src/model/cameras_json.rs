//! Reading a trained model's `cameras.json` (the reference's `camera_to_JSON` layout, written
//! by `train::outputs::write_cameras_json`): the training and test cameras, so a viewer or a
//! game can look at a trained scene from where it was photographed.
//!
//! The file has no principal point: the reference assumes it at the image centre, and so does
//! this reader.

use std::path::{Path, PathBuf};

use glam::{DMat3, DVec3};
use serde::Deserialize;

use crate::camera::Camera;

/// One camera of `cameras.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedCamera {
    /// The image name (without extension).
    pub name: String,
    pub camera: Camera,
}

/// Why `cameras.json` could not be read; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CamerasJsonError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
struct Entry {
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

/// Reads every camera of a `cameras.json`, in file order.
pub fn read_cameras_json(path: &Path) -> Result<Vec<NamedCamera>, CamerasJsonError> {
    let bytes = std::fs::read(path).map_err(|source| CamerasJsonError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| CamerasJsonError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let entries: Vec<Entry> =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not a cameras.json: {e}")))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let rows = entry.rotation.map(DVec3::from_array);
            let world_from_camera = DMat3::from_cols(rows[0], rows[1], rows[2]).transpose();
            let camera = Camera::from_world_pose(
                entry.width,
                entry.height,
                entry.fx,
                entry.fy,
                f64::from(entry.width) / 2.0,
                f64::from(entry.height) / 2.0,
                world_from_camera,
                DVec3::from_array(entry.position),
            );
            if !camera.is_valid() {
                return Err(invalid(format!(
                    "camera {index} ({}): not a valid camera (positive focal lengths, a \
                     non-empty image, finite numbers and an orthonormal rotation are needed)",
                    entry.img_name
                )));
            }
            Ok(NamedCamera {
                name: entry.img_name,
                camera,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    #[test]
    fn reads_the_reference_layout_and_names_the_file_in_errors() {
        let dir = TempDir::new("cameras-json").unwrap();
        let path = dir.path().join("cameras.json");
        // A camera at (1, 2, 3) rotated 90 degrees about y (camera z = world x).
        let json = r#"[{"id": 0, "img_name": "a", "width": 64, "height": 48,
            "position": [1.0, 2.0, 3.0],
            "rotation": [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]],
            "fy": 50.0, "fx": 40.0}]"#;
        std::fs::write(&path, json).unwrap();
        let cameras = read_cameras_json(&path).unwrap();
        assert_eq!(cameras.len(), 1);
        let c = &cameras[0].camera;
        assert_eq!(cameras[0].name, "a");
        assert!((c.center() - DVec3::new(1.0, 2.0, 3.0)).length() < 1e-12);
        assert_eq!((c.fx, c.fy, c.cx, c.cy), (40.0, 50.0, 32.0, 24.0));
        // A point one unit along world x from the centre is straight ahead.
        let ahead = c.to_camera(DVec3::new(2.0, 2.0, 3.0));
        assert!((ahead - DVec3::new(0.0, 0.0, 1.0)).length() < 1e-12);

        std::fs::write(&path, "[{\"img_name\": 3}]").unwrap();
        let error = read_cameras_json(&path).unwrap_err().to_string();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        let missing = read_cameras_json(&dir.path().join("none.json")).unwrap_err();
        assert!(missing.to_string().contains("none.json"));
    }
}
