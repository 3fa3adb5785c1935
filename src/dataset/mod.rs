//! Datasets: COLMAP and Blender scenes, train/test split, resolution rules, camera extent and
//! image loading, following inria's `scene/dataset_readers.py` and `utils/camera_utils.py`.
//!
//! [`Dataset::load`] reads the metadata and the image headers only (fast); [`load_images`]
//! decodes the pixels in parallel. Every problem with the user's files is a [`DatasetError`]
//! naming the file; nothing here panics on bad input or writes into the dataset folder.

mod blender;
pub mod colmap;
mod error;
mod images;
pub mod jpeg;
mod resolution;

#[cfg(test)]
mod bad_input_tests;

use std::fmt;
use std::path::{Path, PathBuf};

use glam::DVec3;

use crate::camera::Camera;

pub use error::DatasetError;
pub use images::{LoadedImage, composite_on_background, load_images, load_view_image};
pub(crate) use images::{decode_image, read_image_size};
pub use resolution::Resolution;

/// The sparse SfM points of a COLMAP scene (initialisation input).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointCloud {
    pub positions: Vec<[f32; 3]>,
    /// 8-bit RGB colours, one per point.
    pub colors: Vec<[u8; 3]>,
}

impl PointCloud {
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }
}

/// What to load and how (inria's ModelParams: `-s`, `--images`, `-r`, `--eval`,
/// `--white_background`).
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetOptions {
    /// The dataset folder.
    pub source: PathBuf,
    /// COLMAP images folder, relative to `source` (ignored for Blender scenes).
    pub images: String,
    /// `-1` (auto), `1`/`2`/`4`/`8` (divide) or a target width; see [`Resolution`].
    pub resolution: i32,
    /// Hold out test views (every 8th COLMAP image, the test frames of a Blender scene).
    pub eval: bool,
    /// White background (Blender compositing and rendering) instead of black.
    pub white_background: bool,
}

impl DatasetOptions {
    /// inria's defaults for the dataset in `source`.
    pub fn new(source: impl Into<PathBuf>) -> Self {
        Self {
            source: source.into(),
            images: "images".into(),
            resolution: -1,
            eval: false,
            white_background: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    Colmap,
    Blender,
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Colmap => "colmap",
            Self::Blender => "blender",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One view: where its image is and the camera it was taken with.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewInfo {
    /// Unique within the dataset: the COLMAP image name (relative to the images folder), or
    /// the Blender image path relative to the scene folder (`train/r_0.png`).
    pub name: String,
    pub image_path: PathBuf,
    /// Intrinsics and pose at the loaded resolution.
    pub camera: Camera,
    pub split: Split,
    /// The image file's size, before the resolution rule.
    pub original_size: (u32, u32),
}

/// A scene, ready for training and evaluation.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub format: DatasetFormat,
    pub source: PathBuf,
    /// COLMAP: `source/<images>`; Blender: `source`.
    pub images_folder: PathBuf,
    /// The metadata files read (COLMAP model files, Blender transforms files).
    pub metadata_files: Vec<PathBuf>,
    /// COLMAP: sorted by image name. Blender: training frames then test frames, in file order
    /// (as inria; names such as `r_10` would not sort numerically anyway).
    pub views: Vec<ViewInfo>,
    /// The SfM points (COLMAP); `None` for Blender scenes.
    pub points: Option<PointCloud>,
    /// inria's `cameras_extent`: 1.1 times the largest distance of a training camera centre
    /// from their mean.
    pub extent: f64,
    pub background: [f32; 3],
}

/// A view before the resolution rule and the split.
pub(crate) struct ViewDraft {
    name: String,
    image_path: PathBuf,
    /// At the image file's size.
    camera: Camera,
    original_size: (u32, u32),
    /// Blender: listed in transforms_test.json.
    from_test_file: bool,
}

/// What a format reader produces.
pub(crate) struct SceneDraft {
    format: DatasetFormat,
    views: Vec<ViewDraft>,
    points: Option<PointCloud>,
    images_folder: PathBuf,
    metadata_files: Vec<PathBuf>,
}

/// The test split of a COLMAP scene with `eval`: every 8th view in name order (LLFF hold-out).
pub const LLFF_HOLD: usize = 8;

/// Where a dataset's metadata is.
enum Detected {
    Colmap { model_folder: PathBuf },
    Blender,
}

fn detect(source: &Path) -> Result<Detected, DatasetError> {
    for model_folder in [source.join("sparse").join("0"), source.join("sparse")] {
        if colmap::looks_like_model(&model_folder) {
            return Ok(Detected::Colmap { model_folder });
        }
    }
    if source.join(blender::TRAIN_FILE).is_file() {
        return Ok(Detected::Blender);
    }
    Err(DatasetError::UnknownFormat(source.to_path_buf()))
}

/// `folder/name` for an image name read from the dataset's metadata (`listed_in`), refused
/// when the name would lead out of `folder`: an absolute path, or one that climbs above it with
/// `..`. (A lexical check: symbolic links inside the folder are the dataset's own business.)
pub(crate) fn path_inside(
    folder: &Path,
    name: &str,
    listed_in: &Path,
) -> Result<PathBuf, DatasetError> {
    use std::path::Component;
    let outside = || {
        DatasetError::invalid(
            listed_in,
            format!(
                "image {name:?} lies outside the folder {} (image names must be relative \
                 paths inside it)",
                folder.display()
            ),
        )
    };
    let mut depth = 0usize;
    for component in Path::new(name).components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(outside()),
            Component::ParentDir => depth = depth.checked_sub(1).ok_or_else(outside)?,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
        }
    }
    if depth == 0 {
        return Err(outside());
    }
    Ok(folder.join(name))
}

/// inria's `getNerfppNorm` radius: 1.1 x the largest distance of a centre from their mean.
pub fn camera_extent(centres: &[DVec3]) -> f64 {
    if centres.is_empty() {
        return 0.0;
    }
    let mean = centres.iter().sum::<DVec3>() / centres.len() as f64;
    let farthest = centres.iter().map(|c| c.distance(mean)).fold(0.0, f64::max);
    1.1 * farthest
}

impl Dataset {
    /// Reads the scene's metadata and image headers, applies the resolution rule and the
    /// split, and computes the camera extent. Does not decode images (see [`load_images`]).
    pub fn load(options: &DatasetOptions) -> Result<Self, DatasetError> {
        let resolution = Resolution::from_arg(options.resolution)?;
        let source = &options.source;
        if !source.exists() {
            return Err(DatasetError::MissingSource(source.clone()));
        }
        if !source.is_dir() {
            return Err(DatasetError::SourceNotAFolder(source.clone()));
        }
        let scene = match detect(source)? {
            Detected::Colmap { model_folder } => {
                colmap::load_scene(&model_folder, &source.join(&options.images))?
            }
            Detected::Blender => blender::load_scene(source)?,
        };
        let format = scene.format;
        let views = scene
            .views
            .into_iter()
            .enumerate()
            .map(|(index, draft)| {
                let split = match format {
                    _ if !options.eval => Split::Train,
                    DatasetFormat::Colmap if index % LLFF_HOLD == 0 => Split::Test,
                    DatasetFormat::Blender if draft.from_test_file => Split::Test,
                    _ => Split::Train,
                };
                let (width, height) = resolution.apply(draft.original_size).ok_or_else(|| {
                    DatasetError::invalid(
                        &draft.image_path,
                        format!(
                            "image of {}x{} is too small for resolution {}",
                            draft.original_size.0, draft.original_size.1, options.resolution
                        ),
                    )
                })?;
                let camera = draft.camera.resized(width, height);
                if let Some(problem) = camera.intrinsics_problem() {
                    return Err(DatasetError::invalid(
                        &scene.metadata_files[0],
                        format!(
                            "the camera of {} at resolution {} ({width}x{height}): {problem}",
                            draft.name, options.resolution
                        ),
                    ));
                }
                Ok(ViewInfo {
                    name: draft.name,
                    image_path: draft.image_path,
                    camera,
                    split,
                    original_size: draft.original_size,
                })
            })
            .collect::<Result<Vec<_>, DatasetError>>()?;
        let train_centres: Vec<DVec3> = views
            .iter()
            .filter(|v| v.split == Split::Train)
            .map(|v| v.camera.center())
            .collect();
        if train_centres.is_empty() {
            return Err(DatasetError::Empty {
                path: scene.metadata_files[0].clone(),
                what: "training views (every view is a test view)",
            });
        }
        let background = if options.white_background {
            [1.0; 3]
        } else {
            [0.0; 3]
        };
        Ok(Self {
            format,
            source: source.clone(),
            images_folder: scene.images_folder,
            metadata_files: scene.metadata_files,
            views,
            points: scene.points,
            extent: camera_extent(&train_centres),
            background,
        })
    }

    pub fn train_views(&self) -> impl Iterator<Item = &ViewInfo> {
        self.views.iter().filter(|v| v.split == Split::Train)
    }

    pub fn test_views(&self) -> impl Iterator<Item = &ViewInfo> {
        self.views.iter().filter(|v| v.split == Split::Test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn manifest_path(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    }

    fn demo_options() -> DatasetOptions {
        DatasetOptions::new(manifest_path("assets/demo"))
    }

    fn blender_options() -> DatasetOptions {
        DatasetOptions::new(manifest_path("tests/data/tiny_blender"))
    }

    #[test]
    fn colmap_demo_loads_with_inria_defaults() {
        let dataset = Dataset::load(&demo_options()).unwrap();
        assert_eq!(dataset.format, DatasetFormat::Colmap);
        assert_eq!(dataset.views.len(), 40);
        assert_eq!(dataset.test_views().count(), 0);
        assert_eq!(dataset.points.as_ref().unwrap().len(), 1457);
        assert!(dataset.views.windows(2).all(|w| w[0].name < w[1].name));
        let first = &dataset.views[0];
        assert_eq!(first.name, "img_0000.jpg");
        assert_eq!(first.original_size, (320, 240));
        assert_eq!((first.camera.width, first.camera.height), (320, 240));
        assert_eq!((first.camera.cx, first.camera.cy), (160.0, 120.0));
        assert!(dataset.views.iter().all(|v| v.camera.is_valid()));
        assert_eq!(dataset.background, [0.0; 3]);
    }

    /// The SfM frame is arbitrary, but DATASET.md gives the scale to the true frame (0.5862
    /// world metres per SfM unit) and the true orbit radius (2.15 +- 0.15 m, centre heights
    /// 0.55-1.45 m): the extent, 1.1 x the largest distance from the mean centre, must come
    /// out as 1.1 x (2.0..2.5 m) / 0.5862.
    #[test]
    fn colmap_extent_matches_the_documented_orbit() {
        let dataset = Dataset::load(&demo_options()).unwrap();
        let metres = dataset.extent / 1.1 * 0.5862;
        assert!((2.0..2.5).contains(&metres), "{metres}");
    }

    #[test]
    fn extent_is_inria_nerfpp_radius() {
        let centres = [
            DVec3::new(1.0, 0.0, 0.0),
            DVec3::new(-1.0, 0.0, 0.0),
            DVec3::new(0.0, 3.0, 0.0),
        ];
        // Mean (0, 1, 0); distances sqrt(2), sqrt(2), 2.
        assert!((camera_extent(&centres) - 2.2).abs() < 1e-12);
    }

    #[test]
    fn eval_holds_out_every_eighth_view_by_name() {
        let mut options = demo_options();
        options.eval = true;
        let dataset = Dataset::load(&options).unwrap();
        let test: Vec<&str> = dataset.test_views().map(|v| v.name.as_str()).collect();
        assert_eq!(
            test,
            [
                "img_0000.jpg",
                "img_0008.jpg",
                "img_0016.jpg",
                "img_0024.jpg",
                "img_0032.jpg"
            ]
        );
        assert_eq!(dataset.train_views().count(), 35);
        // The extent uses the training cameras only.
        let train: Vec<DVec3> = dataset.train_views().map(|v| v.camera.center()).collect();
        assert_eq!(dataset.extent, camera_extent(&train));
    }

    #[test]
    fn resolution_scales_cameras() {
        let full = Dataset::load(&demo_options()).unwrap();
        for (resolution, size) in [(2, (160, 120)), (4, (80, 60)), (100, (100, 75))] {
            let mut options = demo_options();
            options.resolution = resolution;
            let dataset = Dataset::load(&options).unwrap();
            for (view, full_view) in dataset.views.iter().zip(&full.views) {
                let camera = &view.camera;
                assert_eq!((camera.width, camera.height), size);
                assert_eq!(view.original_size, (320, 240));
                let sx = f64::from(size.0) / 320.0;
                let sy = f64::from(size.1) / 240.0;
                assert!((camera.fx - full_view.camera.fx * sx).abs() < 1e-9);
                assert!((camera.fy - full_view.camera.fy * sy).abs() < 1e-9);
                assert!((camera.cx - full_view.camera.cx * sx).abs() < 1e-9);
                assert_eq!(camera.rotation, full_view.camera.rotation);
            }
            // The extent does not depend on the image size.
            assert_eq!(dataset.extent, full.extent);
        }
    }

    #[test]
    fn blender_scene_loads_train_then_test() {
        let dataset = Dataset::load(&blender_options()).unwrap();
        assert_eq!(dataset.format, DatasetFormat::Blender);
        assert!(dataset.points.is_none());
        assert_eq!(dataset.views.len(), 40);
        assert_eq!(dataset.train_views().count(), 40);
        assert_eq!(dataset.views[0].name, "train/r_0.png");
        assert_eq!(dataset.views[32].name, "test/r_0.png");
        // DATASET.md: focal 177.7778 px, principal point at the centre, cameras at radius 4
        // looking at the origin (which therefore projects near the image centre).
        for view in &dataset.views {
            let camera = &view.camera;
            assert!((camera.fx - 177.7778).abs() < 1e-3 && camera.fx == camera.fy);
            assert_eq!((camera.cx, camera.cy), (64.0, 64.0));
            assert!(
                (camera.center().length() - 4.0).abs() < 1e-4,
                "{}",
                view.name
            );
            let origin = camera.to_camera(DVec3::ZERO);
            assert!(origin.z > 3.9, "{}: origin behind the camera", view.name);
            let (u, v) = camera.project(origin);
            assert!(
                (u - 64.0).abs() < 2.0 && (v - 64.0).abs() < 2.0,
                "{}",
                view.name
            );
        }
        let mut options = blender_options();
        options.eval = true;
        let dataset = Dataset::load(&options).unwrap();
        assert_eq!(dataset.train_views().count(), 32);
        assert!(dataset.test_views().all(|v| v.name.starts_with("test/")));
        assert_eq!(dataset.test_views().count(), 8);
    }

    #[test]
    fn colmap_images_load_at_the_camera_size() {
        let mut options = demo_options();
        options.resolution = 4;
        let dataset = Dataset::load(&options).unwrap();
        let images = load_images(&dataset, true).unwrap();
        assert_eq!(images.len(), 40);
        for image in &images {
            assert_eq!((image.width, image.height), (80, 60));
            assert_eq!(image.pixels.len(), 80 * 60);
            assert!(image.pixels.iter().all(|p| p >> 24 == 255));
        }
        // Full size: the packed pixels are the decoded JPEG's bytes (libjpeg's decode).
        let full = Dataset::load(&demo_options()).unwrap();
        let view = &full.views[3];
        let loaded = load_view_image(&full, view).unwrap();
        let decoded = jpeg::decode_rgb(&std::fs::read(&view.image_path).unwrap()).unwrap();
        for (x, y) in [(0, 0), (319, 0), (17, 200), (319, 239)] {
            let p = decoded.get_pixel(x, y).0;
            assert_eq!(loaded.rgba(x, y), [p[0], p[1], p[2], 255]);
        }
    }

    /// A smooth image resized by 1/2 stays close to a 2x2 box average (Catmull-Rom weights
    /// differ from a box, so the bound is loose; it catches swapped axes or shifted pixels).
    #[test]
    fn resized_images_follow_the_original() {
        let mut options = demo_options();
        options.resolution = 2;
        let dataset = Dataset::load(&options).unwrap();
        let view = &dataset.views[5];
        let half = load_view_image(&dataset, view).unwrap();
        let full = jpeg::decode_rgb(&std::fs::read(&view.image_path).unwrap()).unwrap();
        let mut total_error = 0.0;
        for y in 0..120 {
            for x in 0..160 {
                for c in 0..3 {
                    let mean = (0..4)
                        .map(|k| f64::from(full.get_pixel(2 * x + k % 2, 2 * y + k / 2)[c]))
                        .sum::<f64>()
                        / 4.0;
                    total_error += (f64::from(half.rgba(x, y)[c]) - mean).abs();
                }
            }
        }
        let mean_error = total_error / (160.0 * 120.0 * 3.0);
        assert!(
            mean_error < 4.0,
            "mean |resized - box average| = {mean_error}"
        );
    }

    #[test]
    fn blender_images_are_composited_on_the_background() {
        for white in [false, true] {
            let mut options = blender_options();
            options.white_background = white;
            let dataset = Dataset::load(&options).unwrap();
            let view = &dataset.views[0];
            let loaded = load_view_image(&dataset, view).unwrap();
            let raw = image::open(&view.image_path).unwrap().into_rgba8();
            let background = if white { 255 } else { 0 };
            let (mut transparent, mut opaque, mut partial) = (0, 0, 0);
            for (x, y, p) in raw.enumerate_pixels() {
                let got = loaded.rgba(x, y);
                assert_eq!(got[3], 255);
                match p[3] {
                    0 => {
                        transparent += 1;
                        assert_eq!(&got[..3], &[background; 3]);
                    }
                    255 => {
                        opaque += 1;
                        assert_eq!(&got[..3], &p.0[..3]);
                    }
                    alpha => {
                        partial += 1;
                        // Between the colour and the background, within the truncation.
                        for c in 0..3 {
                            let exact = f64::from(p[c]) * f64::from(alpha) / 255.0
                                + f64::from(background) * (1.0 - f64::from(alpha) / 255.0);
                            assert!((f64::from(got[c]) - exact.floor()).abs() <= 1.0);
                        }
                    }
                }
            }
            assert!(transparent > 0 && opaque > 0 && partial > 0);
        }
    }

    #[test]
    fn blender_images_resize() {
        let mut options = blender_options();
        options.resolution = 2;
        let dataset = Dataset::load(&options).unwrap();
        assert!(
            dataset
                .views
                .iter()
                .all(|v| (v.camera.width, v.camera.height) == (64, 64))
        );
        assert!((dataset.views[0].camera.fx - 177.7778 / 2.0).abs() < 1e-3);
        let image = load_view_image(&dataset, &dataset.views[1]).unwrap();
        assert_eq!((image.width, image.height), (64, 64));
    }

    #[test]
    fn image_names_must_stay_inside_their_folder() {
        let folder = Path::new("/data/scene/images");
        let listed = Path::new("/data/scene/sparse/0/images.txt");
        for good in ["a.jpg", "sub/b.png", "./c.png", "sub/../d.png"] {
            assert_eq!(
                path_inside(folder, good, listed).unwrap(),
                folder.join(good),
                "{good}"
            );
        }
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "..",
            "sub/../../x.png",
            "",
            ".",
        ] {
            let error = path_inside(folder, bad, listed).unwrap_err().to_string();
            assert!(
                error.contains("images.txt") && error.contains("outside"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn format_names() {
        assert_eq!(DatasetFormat::Colmap.to_string(), "colmap");
        assert_eq!(DatasetFormat::Blender.to_string(), "blender");
    }
}
