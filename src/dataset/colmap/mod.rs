//! COLMAP scenes: the sparse model (binary or text, parsers in [`binary`] and [`text`]) and its
//! conversion to views.
//!
//! Only pinhole cameras (PINHOLE, SIMPLE_PINHOLE) are usable: 3DGS renders with an ideal
//! pinhole, so distorted images must be undistorted first. COLMAP 4 may write extra files next
//! to the model (rigs.bin, frames.bin); they are not read.

mod binary;
mod text;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use glam::{DMat3, DQuat, DVec3};
use rayon::prelude::*;

use super::{
    DatasetError, DatasetFormat, PointCloud, SceneDraft, ViewDraft, path_inside, read_image_size,
};
use crate::camera::Camera;

/// COLMAP camera models by id (`src/colmap/sensor/models.h`): name and parameter count.
const CAMERA_MODELS: [(&str, usize); 12] = [
    ("SIMPLE_PINHOLE", 3),
    ("PINHOLE", 4),
    ("SIMPLE_RADIAL", 4),
    ("RADIAL", 5),
    ("OPENCV", 8),
    ("OPENCV_FISHEYE", 8),
    ("FULL_OPENCV", 12),
    ("FOV", 5),
    ("SIMPLE_RADIAL_FISHEYE", 4),
    ("RADIAL_FISHEYE", 5),
    ("THIN_PRISM_FISHEYE", 12),
    ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
];

/// A COLMAP camera model, by its index in [`CAMERA_MODELS`] (= COLMAP's model id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CameraModel(usize);

impl CameraModel {
    pub fn name(self) -> &'static str {
        CAMERA_MODELS[self.0].0
    }

    pub fn param_count(self) -> usize {
        CAMERA_MODELS[self.0].1
    }
}

fn camera_model_from_id(id: i32) -> Option<CameraModel> {
    usize::try_from(id)
        .ok()
        .filter(|&i| i < CAMERA_MODELS.len())
        .map(CameraModel)
}

fn camera_model_from_name(name: &str) -> Option<CameraModel> {
    CAMERA_MODELS
        .iter()
        .position(|(model, _)| *model == name)
        .map(CameraModel)
}

/// One entry of cameras.bin / cameras.txt.
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapCamera {
    pub id: u32,
    pub model: CameraModel,
    pub width: u64,
    pub height: u64,
    pub params: Vec<f64>,
}

/// One entry of images.bin / images.txt (the 2D points are skipped).
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapImage {
    pub id: u32,
    /// World-to-camera rotation as a quaternion (w, x, y, z).
    pub qvec: [f64; 4],
    /// World-to-camera translation.
    pub tvec: [f64; 3],
    pub camera_id: u32,
    pub name: String,
}

/// One entry of points3D.bin / points3D.txt (the track is counted, not kept).
#[derive(Clone, Debug, PartialEq)]
pub struct ColmapPoint {
    pub id: u64,
    pub position: [f64; 3],
    pub color: [u8; 3],
    pub error: f64,
    pub track_length: u64,
}

/// A sparse model as stored, plus the files it came from (for messages).
#[derive(Clone, Debug)]
pub struct ColmapModel {
    pub cameras: Vec<ColmapCamera>,
    pub images: Vec<ColmapImage>,
    pub points: Vec<ColmapPoint>,
    pub cameras_file: PathBuf,
    pub images_file: PathBuf,
    pub points_file: PathBuf,
}

/// The file holding `stem` in `folder`: `stem.bin` if it exists, else `stem.txt`.
pub(super) fn model_file(folder: &Path, stem: &str) -> Option<PathBuf> {
    ["bin", "txt"]
        .iter()
        .map(|ext| folder.join(format!("{stem}.{ext}")))
        .find(|path| path.is_file())
}

const MODEL_STEMS: [&str; 3] = ["cameras", "images", "points3D"];

/// True when `folder` holds at least one COLMAP model file.
pub(super) fn looks_like_model(folder: &Path) -> bool {
    MODEL_STEMS
        .iter()
        .any(|stem| model_file(folder, stem).is_some())
}

fn is_binary(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "bin")
}

/// Reads the model in `folder` (each file as .bin when present, else .txt).
pub fn read_model(folder: &Path) -> Result<ColmapModel, DatasetError> {
    let [cameras_file, images_file, points_file] = MODEL_STEMS.map(|stem| {
        model_file(folder, stem).ok_or_else(|| DatasetError::MissingModelFile {
            folder: folder.to_path_buf(),
            name: stem,
        })
    });
    let (cameras_file, images_file, points_file) = (cameras_file?, images_file?, points_file?);
    let cameras = if is_binary(&cameras_file) {
        binary::read_cameras(&cameras_file)?
    } else {
        text::read_cameras(&cameras_file)?
    };
    let images = if is_binary(&images_file) {
        binary::read_images(&images_file)?
    } else {
        text::read_images(&images_file)?
    };
    let points = if is_binary(&points_file) {
        binary::read_points(&points_file)?
    } else {
        text::read_points(&points_file)?
    };
    Ok(ColmapModel {
        cameras,
        images,
        points,
        cameras_file,
        images_file,
        points_file,
    })
}

impl ColmapModel {
    /// The points as a [`PointCloud`], after checking that every coordinate is finite.
    pub fn point_cloud(&self) -> Result<PointCloud, DatasetError> {
        let mut cloud = PointCloud {
            positions: Vec::with_capacity(self.points.len()),
            colors: Vec::with_capacity(self.points.len()),
        };
        for point in &self.points {
            if !point.position.iter().all(|v| v.is_finite()) {
                return Err(DatasetError::NonFinite {
                    path: self.points_file.clone(),
                    what: format!("the position of point {}", point.id),
                });
            }
            cloud.positions.push(point.position.map(|v| v as f32));
            cloud.colors.push(point.color);
        }
        Ok(cloud)
    }

    /// Checks that camera ids are unique and returns them by id.
    fn cameras_by_id(&self) -> Result<HashMap<u32, &ColmapCamera>, DatasetError> {
        let mut by_id = HashMap::with_capacity(self.cameras.len());
        for camera in &self.cameras {
            if by_id.insert(camera.id, camera).is_some() {
                return Err(DatasetError::invalid(
                    &self.cameras_file,
                    format!("camera id {} is defined twice", camera.id),
                ));
            }
        }
        Ok(by_id)
    }

    /// The camera of `image` at COLMAP's image size, with its pose, after validation.
    fn view_camera(
        &self,
        image: &ColmapImage,
        cameras: &HashMap<u32, &ColmapCamera>,
    ) -> Result<(Camera, u32), DatasetError> {
        let colmap_camera =
            cameras
                .get(&image.camera_id)
                .ok_or_else(|| DatasetError::UndefinedCamera {
                    images_file: self.images_file.clone(),
                    cameras_file: self.cameras_file.clone(),
                    image: image.name.clone(),
                    camera_id: image.camera_id,
                })?;
        let (fx, fy, cx, cy) = pinhole_intrinsics(colmap_camera, &self.cameras_file)?;
        let side = |what: &str, value: u64| {
            u32::try_from(value).ok().filter(|&v| v > 0).ok_or_else(|| {
                DatasetError::invalid(
                    &self.cameras_file,
                    format!(
                        "camera {}: {what} {value} is not a valid image size",
                        colmap_camera.id
                    ),
                )
            })
        };
        let width = side("width", colmap_camera.width)?;
        let height = side("height", colmap_camera.height)?;
        let rotation = image_rotation(image, &self.images_file)?;
        let camera = Camera {
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            rotation,
            translation: DVec3::from_array(image.tvec),
        };
        Ok((camera, colmap_camera.id))
    }
}

/// `(fx, fy, cx, cy)` of a pinhole camera; any other model is an error saying to undistort.
fn pinhole_intrinsics(
    camera: &ColmapCamera,
    cameras_file: &Path,
) -> Result<(f64, f64, f64, f64), DatasetError> {
    let p = &camera.params;
    let intrinsics = match camera.model.name() {
        "SIMPLE_PINHOLE" => (p[0], p[0], p[1], p[2]),
        "PINHOLE" => (p[0], p[1], p[2], p[3]),
        other => {
            return Err(DatasetError::UnsupportedCameraModel {
                path: cameras_file.to_path_buf(),
                camera_id: camera.id,
                model: other.to_string(),
            });
        }
    };
    let (fx, fy, cx, cy) = intrinsics;
    if ![fx, fy, cx, cy].iter().all(|v| v.is_finite()) {
        return Err(DatasetError::NonFinite {
            path: cameras_file.to_path_buf(),
            what: format!("an intrinsic parameter of camera {}", camera.id),
        });
    }
    if fx <= 0.0 || fy <= 0.0 {
        return Err(DatasetError::invalid(
            cameras_file,
            format!(
                "camera {}: focal length ({fx}, {fy}) must be positive",
                camera.id
            ),
        ));
    }
    Ok(intrinsics)
}

/// The world-to-camera rotation of an image from its quaternion (normalised: COLMAP writes
/// unit quaternions, normalising only removes rounding).
fn image_rotation(image: &ColmapImage, images_file: &Path) -> Result<DMat3, DatasetError> {
    let [w, x, y, z] = image.qvec;
    if !image.qvec.iter().chain(&image.tvec).all(|v| v.is_finite()) {
        return Err(DatasetError::NonFinite {
            path: images_file.to_path_buf(),
            what: format!("the pose of image {}", image.name),
        });
    }
    let quaternion = DQuat::from_xyzw(x, y, z, w);
    let norm = quaternion.length();
    // Finite here: the components were checked above.
    if norm <= 1e-6 {
        return Err(DatasetError::invalid(
            images_file,
            format!(
                "image {}: rotation quaternion has length {norm}",
                image.name
            ),
        ));
    }
    Ok(DMat3::from_quat(quaternion / norm))
}

/// Shortest side a scaled copy of a camera's image may have: below it, the one-pixel rounding
/// allowance cannot tell a scaled copy from a different image (a 1x1 image would pass as a
/// copy of any camera).
const MIN_SCALED_SIDE: u32 = 16;

/// True when an image of `image` size is the camera's image, or a copy of it scaled by one
/// factor in both directions (to within a pixel of rounding), as with inria's `-i images_4`.
fn is_scaled_copy(image: (u32, u32), camera: (u32, u32)) -> bool {
    if image == camera {
        return true;
    }
    if image.0.min(image.1) < MIN_SCALED_SIDE {
        return false;
    }
    let (iw, ih) = (f64::from(image.0), f64::from(image.1));
    let (cw, ch) = (f64::from(camera.0), f64::from(camera.1));
    (ih - ch * iw / cw).abs() <= 1.0 && (iw - cw * ih / ch).abs() <= 1.0
}

/// Reads the COLMAP scene: model in `model_folder`, images in `images_folder`. Views come out
/// sorted by image name (as inria does before splitting).
pub(super) fn load_scene(
    model_folder: &Path,
    images_folder: &Path,
) -> Result<SceneDraft, DatasetError> {
    let model = read_model(model_folder)?;
    if model.images.is_empty() {
        return Err(DatasetError::Empty {
            path: model.images_file.clone(),
            what: "images",
        });
    }
    if !images_folder.is_dir() {
        return Err(DatasetError::MissingImagesFolder(
            images_folder.to_path_buf(),
        ));
    }
    let cameras = model.cameras_by_id()?;
    let mut images: Vec<&ColmapImage> = model.images.iter().collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let mut names = HashSet::with_capacity(images.len());
    for image in &images {
        if !names.insert(image.name.as_str()) {
            return Err(DatasetError::invalid(
                &model.images_file,
                format!("image name {} appears twice", image.name),
            ));
        }
    }
    let views = images
        .par_iter()
        .map(|image| {
            let (camera, camera_id) = model.view_camera(image, &cameras)?;
            let image_path = path_inside(images_folder, &image.name, &model.images_file)?;
            let size = read_image_size(&image_path, &model.images_file)?;
            let camera_size = (camera.width, camera.height);
            if !is_scaled_copy(size, camera_size) {
                return Err(DatasetError::ImageSizeMismatch {
                    path: image_path,
                    image_size: size,
                    cameras_file: model.cameras_file.clone(),
                    camera_id,
                    camera_size: (u64::from(camera.width), u64::from(camera.height)),
                });
            }
            Ok(ViewDraft {
                name: image.name.clone(),
                image_path,
                camera: camera.resized(size.0, size.1),
                original_size: size,
                from_test_file: false,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SceneDraft {
        format: DatasetFormat::Colmap,
        views,
        points: Some(model.point_cloud()?),
        images_folder: images_folder.to_path_buf(),
        metadata_files: vec![
            model.cameras_file.clone(),
            model.images_file.clone(),
            model.points_file.clone(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
    }

    #[test]
    fn demo_binary_model_has_the_documented_content() {
        let model = read_model(&demo().join("sparse/0")).unwrap();
        assert_eq!(model.cameras.len(), 1);
        let camera = &model.cameras[0];
        assert_eq!(camera.model.name(), "PINHOLE");
        assert_eq!((camera.width, camera.height), (320, 240));
        // DATASET.md: fx = 275.38, fy = 269.55, cx = 160.0, cy = 120.0.
        assert!((camera.params[0] - 275.38).abs() < 0.005);
        assert!((camera.params[1] - 269.55).abs() < 0.005);
        assert_eq!((camera.params[2], camera.params[3]), (160.0, 120.0));
        assert_eq!(model.images.len(), 40);
        assert_eq!(model.points.len(), 1457);
        // DATASET.md: mean track length 3.95.
        let tracks: u64 = model.points.iter().map(|p| p.track_length).sum();
        assert!((tracks as f64 / 1457.0 - 3.954).abs() < 0.001);
        for image in &model.images {
            let norm = image.qvec.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-9, "{}", image.name);
        }
    }

    /// COLMAP writes text models with `std::setprecision(17)`, which round-trips every double,
    /// so the two models should agree bit for bit. The tolerance below (1e-12 relative) still
    /// leaves room for a writer that prints 15 significant digits, and is far below anything
    /// that matters for training (f32 has 7 digits).
    #[test]
    fn binary_and_text_models_agree() {
        let binary = read_model(&demo().join("sparse/0")).unwrap();
        let text = read_model(&demo().join("sparse_txt/0")).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
        assert_eq!(binary.cameras.len(), text.cameras.len());
        for (b, t) in binary.cameras.iter().zip(&text.cameras) {
            assert_eq!(
                (b.id, b.model, b.width, b.height),
                (t.id, t.model, t.width, t.height)
            );
            assert!(b.params.iter().zip(&t.params).all(|(x, y)| close(*x, *y)));
        }
        assert_eq!(binary.images.len(), text.images.len());
        let mut max_difference = 0.0f64;
        for (b, t) in binary.images.iter().zip(&text.images) {
            assert_eq!((b.id, b.camera_id, &b.name), (t.id, t.camera_id, &t.name));
            for (x, y) in b
                .qvec
                .iter()
                .chain(&b.tvec)
                .zip(t.qvec.iter().chain(&t.tvec))
            {
                assert!(close(*x, *y), "{}: {x} vs {y}", b.name);
                max_difference = max_difference.max((x - y).abs());
            }
        }
        assert_eq!(binary.points.len(), text.points.len());
        for (b, t) in binary.points.iter().zip(&text.points) {
            assert_eq!(
                (b.id, b.color, b.track_length),
                (t.id, t.color, t.track_length)
            );
            assert!(close(b.error, t.error));
            for (x, y) in b.position.iter().zip(&t.position) {
                assert!(close(*x, *y), "point {}: {x} vs {y}", b.id);
                max_difference = max_difference.max((x - y).abs());
            }
        }
        eprintln!("largest binary/text difference: {max_difference:e}");
    }

    #[test]
    fn camera_model_table_matches_colmap_ids() {
        assert_eq!(camera_model_from_id(0).unwrap().name(), "SIMPLE_PINHOLE");
        assert_eq!(camera_model_from_id(1).unwrap().name(), "PINHOLE");
        assert_eq!(camera_model_from_id(4).unwrap().name(), "OPENCV");
        assert_eq!(camera_model_from_id(4).unwrap().param_count(), 8);
        assert_eq!(camera_model_from_id(12), None);
        assert_eq!(camera_model_from_id(-1), None);
        assert_eq!(camera_model_from_name("SIMPLE_RADIAL").unwrap().0, 2);
    }

    #[test]
    fn scaled_copies_are_recognised() {
        assert!(is_scaled_copy((320, 240), (320, 240)));
        assert!(is_scaled_copy((160, 120), (320, 240)));
        // Odd sizes divided by 4 and rounded either way.
        assert!(is_scaled_copy((1245, 831), (4978, 3323)));
        assert!(is_scaled_copy((1244, 830), (4978, 3323)));
        assert!(!is_scaled_copy((240, 320), (320, 240)));
        assert!(!is_scaled_copy((320, 200), (320, 240)));
        // Tiny images pass the one-pixel rounding test for any camera: refused.
        assert!(!is_scaled_copy((1, 1), (800, 544)));
        assert!(!is_scaled_copy((12, 8), (800, 544)));
        assert!(
            is_scaled_copy((8, 6), (8, 6)),
            "the camera's own size, however small"
        );
    }

    #[test]
    fn quaternion_convention_is_world_to_camera() {
        // 90 degrees about z: (w, z) = (cos 45, sin 45) maps world x to camera y.
        let half = std::f64::consts::FRAC_1_SQRT_2;
        let image = ColmapImage {
            id: 1,
            qvec: [half, 0.0, 0.0, half],
            tvec: [0.0; 3],
            camera_id: 1,
            name: "a".into(),
        };
        let r = image_rotation(&image, Path::new("images.bin")).unwrap();
        assert!((r * DVec3::X - DVec3::Y).length() < 1e-12);
    }
}
