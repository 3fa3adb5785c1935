//! PLY files: the standard 3D Gaussian Splatting layout (inria's `point_cloud.ply`) and plain
//! coloured point sets (inria's `input.ply` / `points3D.ply`).
//!
//! Writing produces exactly what inria writes through `plyfile`: binary little endian, one
//! `vertex` element, every property `float`, in the reference order (REFERENCE.md, "Files").
//!
//! Reading is tolerant of what other tools write: ASCII and both binary byte orders, properties
//! in any order and of any scalar type (converted to `f32`), extra properties and extra elements
//! (ignored), and optional normals. It is strict about everything that would otherwise make it
//! guess: truncated files, counts that do not fit the file size, unknown keywords, malformed
//! numbers and missing required properties are all errors that name the file and the problem.
//!
//! Memory layout conversion: the file's `f_rest_{c * R + k}` (channel-major, `R` coefficients
//! per channel) is `Gaussians::sh_rest[k * 3 + c]` in memory (coefficient-major).
//!
//! Layout: [`header`] parses the header, [`read`] the data (ASCII and binary), [`layout`] maps
//! the vertex properties to [`Gaussians`] and point sets, [`write`] writes both.

mod header;
mod layout;
mod read;
mod write;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

#[cfg(feature = "train")]
pub use layout::read_points_ply;
pub use layout::{read_gaussians_ply, read_gaussians_ply_bytes};
#[cfg(feature = "train")]
pub use write::write_points_ply;
pub use write::{gaussian_property_names, write_gaussians_ply};

/// Why a PLY file could not be read or written. Every message starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum PlyError {
    /// The operating system refused (file missing, permission denied, disk full, ...). The
    /// I/O error is part of the message (not a `source`, which would print it twice).
    #[error("{}: cannot {action}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// "read" or "write".
        action: &'static str,
        error: io::Error,
    },
    /// The file (or the data to write) is not what it should be.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl PlyError {
    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        PlyError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, error: io::Error) -> Self {
        PlyError::Io {
            path: path.to_path_buf(),
            action,
            error,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PlyError::Io { path, .. } | PlyError::Invalid { path, .. } => path,
        }
    }
}
