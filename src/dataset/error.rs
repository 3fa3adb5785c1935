//! The one error type of dataset loading. Every message names the file (or folder) at fault and
//! says what is wrong with it, so the command line can print it as is. Underlying errors are
//! part of the message and never a `source` as well, so that a printed chain says each cause
//! once.

use std::io;
use std::path::PathBuf;

/// Why a dataset could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("dataset folder {} does not exist", .0.display())]
    MissingSource(PathBuf),

    #[error("{} is not a folder (give the dataset folder with -s)", .0.display())]
    SourceNotAFolder(PathBuf),

    #[error(
        "no dataset found in {}: looked for a COLMAP model (cameras, images and points3D as \
         .bin or .txt in sparse/0/ or sparse/) and for a Blender scene (transforms_train.json)",
        .0.display()
    )]
    UnknownFormat(PathBuf),

    #[error(
        "COLMAP model in {} has no {name} file (looked for {name}.bin and {name}.txt)",
        .folder.display()
    )]
    MissingModelFile { folder: PathBuf, name: &'static str },

    #[error("images folder {} does not exist (choose another one with --images)", .0.display())]
    MissingImagesFolder(PathBuf),

    #[error("{}: cannot read: {error}", .path.display())]
    Io { path: PathBuf, error: io::Error },

    /// A binary file that is truncated or whose content makes no sense.
    #[error("{}: corrupt file at byte {offset}: {message}", .path.display())]
    CorruptBinary {
        path: PathBuf,
        offset: u64,
        message: String,
    },

    /// A line of a text file (COLMAP text model) that cannot be parsed.
    #[error("{}:{line}: {message}", .path.display())]
    MalformedLine {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// A JSON file (Blender transforms) that cannot be parsed.
    #[error("{}: {message}", .path.display())]
    MalformedJson { path: PathBuf, message: String },

    #[error(
        "{}: camera {camera_id} uses the {model} camera model, but only PINHOLE and \
         SIMPLE_PINHOLE are supported; undistort the images first, e.g. with \
         `colmap image_undistorter`",
        .path.display()
    )]
    UnsupportedCameraModel {
        path: PathBuf,
        camera_id: u32,
        model: String,
    },

    #[error(
        "{}: image {image} refers to camera {camera_id}, which is not defined in {}",
        .images_file.display(),
        .cameras_file.display()
    )]
    UndefinedCamera {
        images_file: PathBuf,
        cameras_file: PathBuf,
        image: String,
        camera_id: u32,
    },

    #[error("{}: image file is missing (listed in {})", .path.display(), .listed_in.display())]
    MissingImage { path: PathBuf, listed_in: PathBuf },

    #[error(
        "{}: image is {}x{} but its camera {camera_id} in {} is {}x{} (and the image is not a \
         uniformly scaled copy of it)",
        .path.display(), .image_size.0, .image_size.1, .cameras_file.display(),
        .camera_size.0, .camera_size.1
    )]
    ImageSizeMismatch {
        path: PathBuf,
        image_size: (u32, u32),
        cameras_file: PathBuf,
        camera_id: u32,
        camera_size: (u64, u64),
    },

    #[error("{}: the dataset has no {what}", .path.display())]
    Empty { path: PathBuf, what: &'static str },

    #[error("{}: {what} is not a finite number", .path.display())]
    NonFinite { path: PathBuf, what: String },

    /// A value that parses but is not usable (duplicate ids, a degenerate rotation, ...).
    #[error("{}: {message}", .path.display())]
    Invalid { path: PathBuf, message: String },

    #[error(
        "invalid resolution {0}: use -1 (shrink images wider than 1600 px to 1600 px), 1, 2, 4 \
         or 8 (divide the size), or a target width in pixels"
    )]
    InvalidResolution(i32),

    #[error("{}: cannot decode image: {message}", .path.display())]
    Image { path: PathBuf, message: String },
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>, error: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error,
        }
    }

    /// An image that cannot be decoded. The decoder's message, once: its own `source` chain
    /// repeats it.
    pub(crate) fn image(path: impl Into<PathBuf>, error: impl std::fmt::Display) -> Self {
        Self::Image {
            path: path.into(),
            message: error.to_string(),
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}
