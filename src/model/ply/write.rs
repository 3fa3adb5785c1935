//! Writing: exactly what inria writes through `plyfile` (binary little endian, one `vertex`
//! element, every property `float`, in the reference order).

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::PlyError;
#[cfg(feature = "train")]
use crate::dataset::PointCloud;
use crate::fsutil;
use crate::model::{Gaussians, ParamGroup};
use crate::sh;

/// Bytes of vertex data assembled in memory before each write call.
const WRITE_CHUNK_BYTES: usize = 8 << 20;

/// The vertex property names of a Gaussian PLY of SH degree `sh_degree`, in the reference order:
/// `x y z nx ny nz f_dc_0..2 f_rest_0..N-1 opacity scale_0..2 rot_0..3`.
pub fn gaussian_property_names(sh_degree: u32) -> Vec<String> {
    let rest = 3 * sh::rest_coeffs_for_degree(sh_degree);
    let mut names: Vec<String> = ["x", "y", "z", "nx", "ny", "nz"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    names.extend((0..3).map(|c| format!("f_dc_{c}")));
    names.extend((0..rest).map(|j| format!("f_rest_{j}")));
    names.push("opacity".to_string());
    names.extend((0..3).map(|a| format!("scale_{a}")));
    names.extend((0..4).map(|a| format!("rot_{a}")));
    names
}

/// A binary little-endian header with one `vertex` element, laid out as `plyfile` writes it.
fn binary_header<'a>(
    vertex_count: usize,
    properties: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut header =
        format!("ply\nformat binary_little_endian 1.0\nelement vertex {vertex_count}\n");
    for (ty, name) in properties {
        header.push_str(&format!("property {ty} {name}\n"));
    }
    header.push_str("end_header\n");
    header
}

/// Writes `count` fixed-size records after `header`, atomically. `fill(i, record)` encodes
/// record `i` into its `record_size` bytes; chunks of records are encoded in parallel.
fn write_binary_file(
    path: &Path,
    header: &str,
    count: usize,
    record_size: usize,
    fill: impl Fn(usize, &mut [u8]) + Sync,
) -> Result<(), PlyError> {
    let records_per_chunk = (WRITE_CHUNK_BYTES / record_size).max(1);
    fsutil::write_atomic_with(path, |writer| {
        writer.write_all(header.as_bytes())?;
        let mut chunk = vec![0u8; records_per_chunk.min(count) * record_size];
        let mut start = 0;
        while start < count {
            let records = (count - start).min(records_per_chunk);
            let bytes = &mut chunk[..records * record_size];
            bytes
                .par_chunks_mut(record_size)
                .enumerate()
                .for_each(|(r, record)| fill(start + r, record));
            writer.write_all(bytes)?;
            start += records;
        }
        Ok(())
    })
    .map_err(|e| PlyError::io(path, "write", e))
}

/// Appends little-endian `f32`s to a record being encoded.
struct RecordWriter<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl RecordWriter<'_> {
    fn f32s(&mut self, values: impl IntoIterator<Item = f32>) {
        for v in values {
            self.bytes[self.at..self.at + 4].copy_from_slice(&v.to_le_bytes());
            self.at += 4;
        }
    }

    #[cfg(feature = "train")] // point clouds only
    fn u8s(&mut self, values: &[u8]) {
        self.bytes[self.at..self.at + values.len()].copy_from_slice(values);
        self.at += values.len();
    }
}

/// Writes `gaussians` as a standard 3DGS PLY (binary little endian, all `float`, reference
/// property order, zero normals), atomically: on failure an existing file is left untouched.
///
/// The values are written bit for bit (raw parameters: log-scales, opacity logits,
/// unnormalised quaternions), so [`read_gaussians_ply`] gives back the identical cloud.
pub fn write_gaussians_ply(path: &Path, gaussians: &Gaussians) -> Result<(), PlyError> {
    if gaussians.sh_degree > sh::MAX_SH_DEGREE {
        return Err(PlyError::invalid(
            path,
            format!(
                "cannot write SH degree {} (at most {})",
                gaussians.sh_degree,
                sh::MAX_SH_DEGREE
            ),
        ));
    }
    gaussians
        .check_shapes()
        .map_err(|message| PlyError::invalid(path, format!("cannot write: {message}")))?;

    let names = gaussian_property_names(gaussians.sh_degree);
    let header = binary_header(
        gaussians.len(),
        names.iter().map(|name| ("float", name.as_str())),
    );
    let rest_per_channel = sh::rest_coeffs_for_degree(gaussians.sh_degree);
    let rest_width = ParamGroup::ShRest.width(gaussians.sh_degree);
    let g = gaussians;
    write_binary_file(path, &header, g.len(), names.len() * 4, |i, bytes| {
        let mut record = RecordWriter { bytes, at: 0 };
        record.f32s(g.means[3 * i..3 * i + 3].iter().copied());
        record.f32s([0.0; 3]);
        record.f32s(g.sh_dc[3 * i..3 * i + 3].iter().copied());
        // Channel-major in the file, coefficient-major in memory.
        let rest = &g.sh_rest[i * rest_width..(i + 1) * rest_width];
        for c in 0..3 {
            record.f32s((0..rest_per_channel).map(|k| rest[k * 3 + c]));
        }
        record.f32s([g.logit_opacities[i]]);
        record.f32s(g.log_scales[3 * i..3 * i + 3].iter().copied());
        record.f32s(g.rotations[4 * i..4 * i + 4].iter().copied());
    })
}

/// Writes a coloured point set like inria's `storePly` (used for `input.ply`): binary little
/// endian, `float x y z nx ny nz` (normals zero) and `uchar red green blue`. Atomic.
#[cfg(feature = "train")]
pub fn write_points_ply(path: &Path, points: &PointCloud) -> Result<(), PlyError> {
    if points.colors.len() != points.positions.len() {
        return Err(PlyError::invalid(
            path,
            format!(
                "cannot write: {} positions but {} colours",
                points.positions.len(),
                points.colors.len()
            ),
        ));
    }
    let header = binary_header(
        points.len(),
        [
            ("float", "x"),
            ("float", "y"),
            ("float", "z"),
            ("float", "nx"),
            ("float", "ny"),
            ("float", "nz"),
            ("uchar", "red"),
            ("uchar", "green"),
            ("uchar", "blue"),
        ],
    );
    write_binary_file(path, &header, points.len(), 6 * 4 + 3, |i, bytes| {
        let mut record = RecordWriter { bytes, at: 0 };
        record.f32s(points.positions[i]);
        record.f32s([0.0; 3]);
        record.u8s(&points.colors[i]);
    })
}
