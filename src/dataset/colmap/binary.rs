//! COLMAP's binary model format (`cameras.bin`, `images.bin`, `points3D.bin`), little endian.
//!
//! Layout (COLMAP `src/colmap/scene/reconstruction_io.cc`):
//! - cameras.bin: `u64 count`, then per camera `u32 camera_id, i32 model_id, u64 width,
//!   u64 height, f64 params[n(model)]`.
//! - images.bin: `u64 count`, then per image `u32 image_id, f64 qvec[4] (w, x, y, z),
//!   f64 tvec[3], u32 camera_id, name bytes + NUL, u64 num_points2D`, then per 2D point
//!   `f64 x, f64 y, u64 point3D_id` (24 bytes, skipped here).
//! - points3D.bin: `u64 count`, then per point `u64 point3D_id, f64 xyz[3], u8 rgb[3],
//!   f64 error, u64 track_length`, then per track element `u32 image_id, u32 point2D_idx`.
//!
//! Every count is checked against the bytes left in the file before anything is allocated or
//! read, so a corrupt count (say 2^60) is an error, not an allocation; trailing bytes after the
//! last record are an error too (they mean a count is wrong).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{ColmapCamera, ColmapImage, ColmapPoint, camera_model_from_id};
use crate::dataset::DatasetError;

/// Bytes of one camera record before its parameters.
const CAMERA_HEADER_BYTES: u64 = 4 + 4 + 8 + 8;
/// Smallest image record: ids, pose, a one-byte name plus NUL, the 2D point count.
const MIN_IMAGE_BYTES: u64 = 4 + 8 * 7 + 4 + 2 + 8;
/// Bytes of one 2D point in images.bin.
const POINT2D_BYTES: u64 = 8 + 8 + 8;
/// Bytes of one point record before its track.
const POINT_HEADER_BYTES: u64 = 8 + 8 * 3 + 3 + 8 + 8;
/// Bytes of one track element in points3D.bin.
const TRACK_ELEMENT_BYTES: u64 = 4 + 4;

/// A bounds-checked little-endian reader over one file.
struct BinaryReader {
    reader: BufReader<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
}

impl BinaryReader {
    fn open(path: &Path) -> Result<Self, DatasetError> {
        let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| DatasetError::io(path, e))?
            .len();
        Ok(Self {
            reader: BufReader::new(file),
            path: path.to_path_buf(),
            offset: 0,
            len,
        })
    }

    fn remaining(&self) -> u64 {
        self.len - self.offset
    }

    fn corrupt(&self, message: impl Into<String>) -> DatasetError {
        DatasetError::CorruptBinary {
            path: self.path.clone(),
            offset: self.offset,
            message: message.into(),
        }
    }

    fn truncated(&self, what: &str, needed: u64) -> DatasetError {
        self.corrupt(format!(
            "file ends while reading {what} ({needed} bytes needed, {} left)",
            self.remaining()
        ))
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DatasetError> {
        if self.remaining() < N as u64 {
            return Err(self.truncated(what, N as u64));
        }
        let mut buffer = [0u8; N];
        self.reader
            .read_exact(&mut buffer)
            .map_err(|e| DatasetError::io(&self.path, e))?;
        self.offset += N as u64;
        Ok(buffer)
    }

    fn u8(&mut self, what: &str) -> Result<u8, DatasetError> {
        Ok(self.bytes::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, DatasetError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    fn i32(&mut self, what: &str) -> Result<i32, DatasetError> {
        Ok(i32::from_le_bytes(self.bytes(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, DatasetError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    fn f64(&mut self, what: &str) -> Result<f64, DatasetError> {
        Ok(f64::from_le_bytes(self.bytes(what)?))
    }

    fn f64s<const N: usize>(&mut self, what: &str) -> Result<[f64; N], DatasetError> {
        let mut values = [0.0; N];
        for value in &mut values {
            *value = self.f64(what)?;
        }
        Ok(values)
    }

    /// Reads a record count and checks that `count` records of at least `min_record_bytes`
    /// each fit in what is left of the file.
    fn count(&mut self, what: &str, min_record_bytes: u64) -> Result<usize, DatasetError> {
        let count = self.u64(&format!("the number of {what}"))?;
        self.check_fits(count, min_record_bytes, what)?;
        usize::try_from(count).map_err(|_| self.corrupt(format!("{count} {what} is too many")))
    }

    fn check_fits(&self, count: u64, record_bytes: u64, what: &str) -> Result<(), DatasetError> {
        match count.checked_mul(record_bytes) {
            Some(bytes) if bytes <= self.remaining() => Ok(()),
            _ => Err(self.corrupt(format!(
                "{count} {what} cannot fit in the {} bytes left",
                self.remaining()
            ))),
        }
    }

    /// Skips `count` records of `record_bytes` each, after checking they are all there.
    fn skip_records(
        &mut self,
        count: u64,
        record_bytes: u64,
        what: &str,
    ) -> Result<(), DatasetError> {
        self.check_fits(count, record_bytes, what)?;
        let bytes = count * record_bytes;
        let skipped = std::io::copy(&mut (&mut self.reader).take(bytes), &mut std::io::sink())
            .map_err(|e| DatasetError::io(&self.path, e))?;
        if skipped != bytes {
            return Err(self.truncated(what, bytes));
        }
        self.offset += bytes;
        Ok(())
    }

    /// A NUL-terminated UTF-8 string.
    fn c_string(&mut self, what: &str) -> Result<String, DatasetError> {
        let mut buffer = Vec::new();
        let limit = self.remaining();
        (&mut self.reader)
            .take(limit)
            .read_until(0, &mut buffer)
            .map_err(|e| DatasetError::io(&self.path, e))?;
        if buffer.last() != Some(&0) {
            return Err(self.corrupt(format!("file ends inside {what} (no terminating NUL)")));
        }
        let start = self.offset;
        self.offset += buffer.len() as u64;
        buffer.pop();
        String::from_utf8(buffer).map_err(|_| DatasetError::CorruptBinary {
            path: self.path.clone(),
            offset: start,
            message: format!("{what} is not valid UTF-8"),
        })
    }

    /// Fails when bytes are left after the last record.
    fn finish(self) -> Result<(), DatasetError> {
        if self.remaining() != 0 {
            return Err(self.corrupt(format!(
                "{} unexpected bytes after the last record (a count is wrong)",
                self.remaining()
            )));
        }
        Ok(())
    }
}

pub(super) fn read_cameras(path: &Path) -> Result<Vec<ColmapCamera>, DatasetError> {
    let mut reader = BinaryReader::open(path)?;
    let count = reader.count("cameras", CAMERA_HEADER_BYTES)?;
    let mut cameras = Vec::with_capacity(count);
    for _ in 0..count {
        let id = reader.u32("a camera id")?;
        let model_id = reader.i32("a camera model id")?;
        let width = reader.u64("a camera width")?;
        let height = reader.u64("a camera height")?;
        let model = camera_model_from_id(model_id)
            .ok_or_else(|| reader.corrupt(format!("camera {id}: unknown model id {model_id}")))?;
        let param_count = model.param_count();
        reader.check_fits(param_count as u64, 8, "camera parameters")?;
        let params = (0..param_count)
            .map(|_| reader.f64("a camera parameter"))
            .collect::<Result<Vec<_>, _>>()?;
        cameras.push(ColmapCamera {
            id,
            model,
            width,
            height,
            params,
        });
    }
    reader.finish()?;
    Ok(cameras)
}

pub(super) fn read_images(path: &Path) -> Result<Vec<ColmapImage>, DatasetError> {
    let mut reader = BinaryReader::open(path)?;
    let count = reader.count("images", MIN_IMAGE_BYTES)?;
    let mut images = Vec::with_capacity(count);
    for _ in 0..count {
        let id = reader.u32("an image id")?;
        let qvec = reader.f64s::<4>("an image rotation")?;
        let tvec = reader.f64s::<3>("an image translation")?;
        let camera_id = reader.u32("an image's camera id")?;
        let name = reader.c_string(&format!("the name of image {id}"))?;
        let point_count = reader.u64(&format!("the number of 2D points of image {id}"))?;
        reader.skip_records(
            point_count,
            POINT2D_BYTES,
            &format!("2D points of image {id}"),
        )?;
        images.push(ColmapImage {
            id,
            qvec,
            tvec,
            camera_id,
            name,
        });
    }
    reader.finish()?;
    Ok(images)
}

pub(super) fn read_points(path: &Path) -> Result<Vec<ColmapPoint>, DatasetError> {
    let mut reader = BinaryReader::open(path)?;
    let count = reader.count("points", POINT_HEADER_BYTES)?;
    let mut points = Vec::with_capacity(count);
    for _ in 0..count {
        let id = reader.u64("a point id")?;
        let position = reader.f64s::<3>("a point position")?;
        let color = [
            reader.u8("a point colour")?,
            reader.u8("a point colour")?,
            reader.u8("a point colour")?,
        ];
        let error = reader.f64("a point error")?;
        let track_length = reader.u64(&format!("the track length of point {id}"))?;
        reader.skip_records(
            track_length,
            TRACK_ELEMENT_BYTES,
            &format!("track elements of point {id}"),
        )?;
        points.push(ColmapPoint {
            id,
            position,
            color,
            error,
            track_length,
        });
    }
    reader.finish()?;
    Ok(points)
}
