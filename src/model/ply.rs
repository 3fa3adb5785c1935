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

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Gaussians, ParamGroup};
#[cfg(feature = "train")]
use crate::dataset::PointCloud;
use crate::fsutil;
use crate::sh;

/// Why a PLY file could not be read or written. Every message starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum PlyError {
    /// The operating system refused (file missing, permission denied, disk full, ...).
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// "read" or "write".
        action: &'static str,
        source: io::Error,
    },
    /// The file (or the data to write) is not what it should be.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl PlyError {
    fn invalid(path: &Path, message: impl Into<String>) -> Self {
        PlyError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        PlyError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PlyError::Io { path, .. } | PlyError::Invalid { path, .. } => path,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Reading: public entry points
// ---------------------------------------------------------------------------------------------

/// Reads a 3DGS PLY as written by inria, gsplat, SuperSplat (uncompressed), Brush, nerfstudio
/// and similar tools.
///
/// Required vertex properties: `x y z f_dc_0..2 opacity scale_0..2 rot_0..3`; `f_rest_*` must
/// number 0, 9, 24 or 45 (SH degree 0 to 3). Everything else (normals, colours, filter values,
/// other elements) is ignored. Values of any scalar type are converted to `f32`.
pub fn read_gaussians_ply(path: &Path) -> Result<Gaussians, PlyError> {
    gaussians_from_reader(PlyReader::open(path)?)
}

/// [`read_gaussians_ply`] for a file already in memory (the game plugin's asset loader reads
/// through Bevy's asset sources); `path` names the file in errors.
pub fn read_gaussians_ply_bytes(path: &Path, bytes: &[u8]) -> Result<Gaussians, PlyError> {
    gaussians_from_reader(PlyReader::from_bytes(path, bytes)?)
}

fn gaussians_from_reader<R: Read + io::Seek>(mut ply: PlyReader<R>) -> Result<Gaussians, PlyError> {
    let path = ply.path.clone();
    let path = path.as_path();
    let vertex = ply.vertex_element();
    let sh_degree = sh_degree_of(path, vertex)?;
    let rest_per_channel = sh::rest_coeffs_for_degree(sh_degree);

    // In the reference order, so missing properties are listed in that order.
    let mut wanted = TargetList::new(vertex);
    for (a, name) in ["x", "y", "z"].into_iter().enumerate() {
        wanted.add(name, ParamGroup::Means, a);
    }
    for c in 0..3 {
        wanted.add(&format!("f_dc_{c}"), ParamGroup::ShDc, c);
    }
    for c in 0..3 {
        for k in 0..rest_per_channel {
            let name = format!("f_rest_{}", c * rest_per_channel + k);
            wanted.add(&name, ParamGroup::ShRest, k * 3 + c);
        }
    }
    wanted.add("opacity", ParamGroup::Opacities, 0);
    for a in 0..3 {
        wanted.add(&format!("scale_{a}"), ParamGroup::LogScales, a);
    }
    for a in 0..4 {
        wanted.add(&format!("rot_{a}"), ParamGroup::Rotations, a);
    }
    if !wanted.missing.is_empty() {
        let hint = if vertex.find("red").is_some() && vertex.find("opacity").is_none() {
            " (this looks like a plain point cloud, not a 3D Gaussian Splatting PLY)"
        } else {
            ""
        };
        return Err(PlyError::invalid(
            path,
            format!(
                "missing required vertex properties: {}{hint}",
                wanted.missing.join(", ")
            ),
        ));
    }

    let widths = ParamGroup::ALL.map(|g| g.width(sh_degree));
    let targets = wanted.targets;
    let mut arrays = ply.read_vertices(&targets, &widths)?.into_iter();
    let mut next = || arrays.next().unwrap_or_default();
    // Same order as ParamGroup::ALL.
    Ok(Gaussians {
        sh_degree,
        means: next(),
        log_scales: next(),
        rotations: next(),
        logit_opacities: next(),
        sh_dc: next(),
        sh_rest: next(),
    })
}

/// Reads a coloured point set (`x y z` and `red green blue`; any scalar types, any order, other
/// properties ignored), e.g. inria's `input.ply` or a Blender scene's `points3d.ply`.
///
/// Colours are taken on the 0..255 scale whatever their type (as inria's `fetchPly`, which
/// divides by 255): values are rounded to the nearest integer and clamped to 0..255.
#[cfg(feature = "train")]
pub fn read_points_ply(path: &Path) -> Result<PointCloud, PlyError> {
    let mut ply = PlyReader::open(path)?;
    let vertex = ply.vertex_element();
    const POSITIONS: usize = 0;
    const COLORS: usize = 1;
    let mut wanted = TargetList::new(vertex);
    for (a, name) in ["x", "y", "z"].into_iter().enumerate() {
        wanted.add_to(name, POSITIONS, a);
    }
    for (c, name) in ["red", "green", "blue"].into_iter().enumerate() {
        wanted.add_to(name, COLORS, c);
    }
    if !wanted.missing.is_empty() {
        return Err(PlyError::invalid(
            path,
            format!(
                "missing required vertex properties: {}",
                wanted.missing.join(", ")
            ),
        ));
    }
    let targets = wanted.targets;
    let arrays = ply.read_vertices(&targets, &[3, 3])?;
    let positions = arrays[POSITIONS]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    // `as u8` saturates (and maps NaN to 0), which is the clamp we want.
    let colors = arrays[COLORS]
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]].map(|v| v.round() as u8))
        .collect();
    Ok(PointCloud { positions, colors })
}

/// The SH degree implied by the `f_rest_*` properties, which must be exactly
/// `f_rest_0 .. f_rest_{N-1}` with N in {0, 9, 24, 45}.
fn sh_degree_of(path: &Path, vertex: &Element) -> Result<u32, PlyError> {
    let rest_indices: Vec<usize> = vertex
        .properties
        .iter()
        .filter_map(|p| p.name.strip_prefix("f_rest_"))
        .map(|suffix| {
            suffix
                .parse::<usize>()
                .ok()
                .filter(|i| i.to_string() == suffix)
                .ok_or_else(|| {
                    PlyError::invalid(path, format!("unexpected property name 'f_rest_{suffix}'"))
                })
        })
        .collect::<Result<_, _>>()?;
    let count = rest_indices.len();
    let degree = (0..=sh::MAX_SH_DEGREE)
        .find(|&d| 3 * sh::rest_coeffs_for_degree(d) == count)
        .ok_or_else(|| {
            PlyError::invalid(
                path,
                format!("{count} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0 to 3)"),
            )
        })?;
    if let Some(bad) = rest_indices.iter().find(|&&i| i >= count) {
        let missing: Vec<String> = (0..count)
            .filter(|i| !rest_indices.contains(i))
            .map(|i| format!("f_rest_{i}"))
            .collect();
        return Err(PlyError::invalid(
            path,
            format!(
                "f_rest properties are not numbered 0..{}: found f_rest_{bad}, missing {}",
                count - 1,
                missing.join(", ")
            ),
        ));
    }
    Ok(degree)
}

/// Collects where each wanted vertex property goes, and which ones are missing.
struct TargetList<'a> {
    vertex: &'a Element,
    targets: Vec<Target>,
    missing: Vec<String>,
}

impl<'a> TargetList<'a> {
    fn new(vertex: &'a Element) -> Self {
        Self {
            vertex,
            targets: Vec::new(),
            missing: Vec::new(),
        }
    }

    fn add_to(&mut self, name: &str, array: usize, offset: usize) {
        match self.vertex.find(name) {
            Some(property) => self.targets.push(Target {
                property,
                array,
                offset,
            }),
            None => self.missing.push(name.to_string()),
        }
    }

    fn add(&mut self, name: &str, group: ParamGroup, offset: usize) {
        self.add_to(name, group.index(), offset);
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: header
// ---------------------------------------------------------------------------------------------

/// A header longer than this without `end_header` is not a PLY header.
const MAX_HEADER_BYTES: u64 = 1 << 20;

/// Bytes of vertex data read per read call.
const READ_CHUNK_BYTES: usize = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Ascii,
    BinaryLittleEndian,
    BinaryBigEndian,
}

/// The PLY scalar types (both the classic and the sized spellings are accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScalarType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl ScalarType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "char" | "int8" => Self::I8,
            "uchar" | "uint8" => Self::U8,
            "short" | "int16" => Self::I16,
            "ushort" | "uint16" => Self::U16,
            "int" | "int32" => Self::I32,
            "uint" | "uint32" => Self::U32,
            "float" | "float32" => Self::F32,
            "double" | "float64" => Self::F64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::I8 => "char",
            Self::U8 => "uchar",
            Self::I16 => "short",
            Self::U16 => "ushort",
            Self::I32 => "int",
            Self::U32 => "uint",
            Self::F32 => "float",
            Self::F64 => "double",
        }
    }

    fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }

    /// The value of an integer type (None for float types).
    fn decode_integer(self, bytes: &[u8], big_endian: bool) -> Option<i64> {
        macro_rules! int {
            ($t:ty) => {{
                const SIZE: usize = std::mem::size_of::<$t>();
                let mut raw = [0u8; SIZE];
                raw.copy_from_slice(&bytes[..SIZE]);
                i64::from(if big_endian {
                    <$t>::from_be_bytes(raw)
                } else {
                    <$t>::from_le_bytes(raw)
                })
            }};
        }
        Some(match self {
            Self::I8 => int!(i8),
            Self::U8 => int!(u8),
            Self::I16 => int!(i16),
            Self::U16 => int!(u16),
            Self::I32 => int!(i32),
            Self::U32 => int!(u32),
            Self::F32 | Self::F64 => return None,
        })
    }

    /// Decodes one value from the first `self.size()` bytes and converts it to `f32`
    /// (`float` values keep their exact bit pattern, NaN payloads included).
    fn decode_f32(self, bytes: &[u8], big_endian: bool) -> f32 {
        match self {
            Self::F32 => {
                let raw = [bytes[0], bytes[1], bytes[2], bytes[3]];
                if big_endian {
                    f32::from_be_bytes(raw)
                } else {
                    f32::from_le_bytes(raw)
                }
            }
            Self::F64 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&bytes[..8]);
                (if big_endian {
                    f64::from_be_bytes(raw)
                } else {
                    f64::from_le_bytes(raw)
                }) as f32
            }
            _ => self.decode_integer(bytes, big_endian).unwrap_or(0) as f32,
        }
    }

    /// The inclusive range of an integer type.
    fn integer_range(self) -> (i64, i64) {
        match self {
            Self::I8 => (i8::MIN.into(), i8::MAX.into()),
            Self::U8 => (0, u8::MAX.into()),
            Self::I16 => (i16::MIN.into(), i16::MAX.into()),
            Self::U16 => (0, u16::MAX.into()),
            Self::I32 => (i32::MIN.into(), i32::MAX.into()),
            Self::U32 => (0, u32::MAX.into()),
            Self::F32 | Self::F64 => (i64::MIN, i64::MAX),
        }
    }

    /// Parses an ASCII token of this type into `f32`; None if it is not a valid value.
    fn parse_ascii(self, token: &str) -> Option<f32> {
        match self {
            Self::F32 => token.parse::<f32>().ok(),
            Self::F64 => token.parse::<f64>().ok().map(|v| v as f32),
            _ => self.parse_ascii_integer(token).map(|v| v as f32),
        }
    }

    fn parse_ascii_integer(self, token: &str) -> Option<i64> {
        let value = token.parse::<i64>().ok()?;
        let (lo, hi) = self.integer_range();
        (lo..=hi).contains(&value).then_some(value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PropertyType {
    Scalar(ScalarType),
    /// A length of type `count`, then that many values of type `item`.
    List {
        count: ScalarType,
        item: ScalarType,
    },
}

#[derive(Clone, Debug)]
struct Property {
    name: String,
    ty: PropertyType,
}

#[derive(Clone, Debug)]
struct Element {
    name: String,
    count: u64,
    properties: Vec<Property>,
}

impl Element {
    /// Bytes per record in a binary file, or None if the element has list properties.
    fn record_size(&self) -> Option<usize> {
        self.properties
            .iter()
            .map(|p| match p.ty {
                PropertyType::Scalar(t) => Some(t.size()),
                PropertyType::List { .. } => None,
            })
            .sum()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.properties.iter().position(|p| p.name == name)
    }

    /// Total bytes of the element in a binary file, or None if variable (lists) or overflowing.
    fn binary_bytes(&self) -> Option<u64> {
        self.count.checked_mul(self.record_size()? as u64)
    }
}

#[derive(Clone, Debug)]
struct Header {
    encoding: Encoding,
    elements: Vec<Element>,
    /// Number of header lines (ASCII data line numbers continue from here).
    lines: usize,
}

/// Parses the header; leaves `reader` at the first byte of data. Returns the header and its
/// length in bytes.
fn parse_header(path: &Path, reader: &mut impl BufRead) -> Result<(Header, u64), PlyError> {
    let err = |line: usize, message: String| {
        PlyError::invalid(path, format!("header line {line}: {message}"))
    };
    let mut consumed: u64 = 0;
    let mut line_number = 0;
    let mut raw_line = Vec::new();
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    loop {
        raw_line.clear();
        let limit = MAX_HEADER_BYTES - consumed;
        let read = reader
            .by_ref()
            .take(limit)
            .read_until(b'\n', &mut raw_line)
            .map_err(|e| PlyError::io(path, "read", e))?;
        consumed += read as u64;
        line_number += 1;
        if read == 0 {
            if consumed >= MAX_HEADER_BYTES {
                return Err(PlyError::invalid(
                    path,
                    "no 'end_header' in the first 1 MiB: not a PLY file",
                ));
            }
            return Err(PlyError::invalid(
                path,
                if line_number == 1 {
                    "empty file, not a PLY file".to_string()
                } else {
                    "truncated header: the file ends before 'end_header'".to_string()
                },
            ));
        }
        let text = String::from_utf8_lossy(&raw_line);
        let line = text.trim_end_matches(['\n', '\r']);
        if line_number == 1 {
            if line.trim_end() != "ply" {
                let shown: String = line.chars().take(40).collect();
                return Err(PlyError::invalid(
                    path,
                    format!("not a PLY file: the first line is '{shown}', expected 'ply'"),
                ));
            }
            continue;
        }
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(&keyword) = words.first() else {
            continue; // tolerate blank lines
        };
        match keyword {
            "comment" | "obj_info" => {}
            "format" => {
                if encoding.is_some() {
                    return Err(err(line_number, "second 'format' line".into()));
                }
                if words.len() != 3 {
                    return Err(err(
                        line_number,
                        format!("expected 'format <encoding> 1.0', found '{line}'"),
                    ));
                }
                encoding = Some(match words[1] {
                    "ascii" => Encoding::Ascii,
                    "binary_little_endian" => Encoding::BinaryLittleEndian,
                    "binary_big_endian" => Encoding::BinaryBigEndian,
                    other => {
                        return Err(err(line_number, format!("unknown format '{other}'")));
                    }
                });
            }
            "element" => {
                if words.len() != 3 {
                    return Err(err(
                        line_number,
                        format!("expected 'element <name> <count>', found '{line}'"),
                    ));
                }
                let count = words[2].parse::<u64>().map_err(|_| {
                    err(
                        line_number,
                        format!(
                            "element '{}' has count '{}', not a non-negative integer",
                            words[1], words[2]
                        ),
                    )
                })?;
                if elements.iter().any(|e| e.name == words[1]) {
                    return Err(err(
                        line_number,
                        format!("element '{}' is declared twice", words[1]),
                    ));
                }
                elements.push(Element {
                    name: words[1].to_string(),
                    count,
                    properties: Vec::new(),
                });
            }
            "property" => {
                let Some(element) = elements.last_mut() else {
                    return Err(err(line_number, "'property' before any 'element'".into()));
                };
                let property = parse_property(&words)
                    .map_err(|message| err(line_number, format!("{message} in '{line}'")))?;
                if element.find(&property.name).is_some() {
                    return Err(err(
                        line_number,
                        format!(
                            "property '{}' of element '{}' is declared twice",
                            property.name, element.name
                        ),
                    ));
                }
                element.properties.push(property);
            }
            "end_header" => break,
            other => {
                return Err(err(line_number, format!("unknown keyword '{other}'")));
            }
        }
    }
    let encoding =
        encoding.ok_or_else(|| PlyError::invalid(path, "the header has no 'format' line"))?;
    let header = Header {
        encoding,
        elements,
        lines: line_number,
    };
    Ok((header, consumed))
}

/// Parses `property <type> <name>` or `property list <count type> <item type> <name>`.
fn parse_property(words: &[&str]) -> Result<Property, String> {
    let scalar = |name: &str| {
        ScalarType::from_name(name).ok_or_else(|| format!("unknown property type '{name}'"))
    };
    match words {
        ["property", "list", count, item, name] => {
            let count = scalar(count)?;
            if !count.is_integer() {
                return Err(format!(
                    "list length type '{}' is not an integer type",
                    count.name()
                ));
            }
            Ok(Property {
                name: name.to_string(),
                ty: PropertyType::List {
                    count,
                    item: scalar(item)?,
                },
            })
        }
        ["property", ty, name] => Ok(Property {
            name: name.to_string(),
            ty: PropertyType::Scalar(scalar(ty)?),
        }),
        _ => {
            Err("expected 'property <type> <name>' or 'property list <type> <type> <name>'".into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: data
// ---------------------------------------------------------------------------------------------

/// One wanted vertex property: its value goes to `arrays[array][vertex * width + offset]`.
#[derive(Clone, Copy, Debug)]
struct Target {
    property: usize,
    array: usize,
    offset: usize,
}

/// An open PLY file with its parsed header, positioned at the start of the data.
struct PlyReader<R> {
    /// The file's path (or, for bytes read elsewhere, the name errors give it).
    path: PathBuf,
    reader: BufReader<R>,
    header: Header,
    /// Bytes in the file after the header.
    data_len: u64,
    vertex_index: usize,
}

impl PlyReader<File> {
    fn open(path: &Path) -> Result<Self, PlyError> {
        let file = File::open(path).map_err(|e| PlyError::io(path, "read", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| PlyError::io(path, "read", e))?
            .len();
        Self::new(path, file, file_len)
    }
}

impl<'a> PlyReader<io::Cursor<&'a [u8]>> {
    /// Reads a PLY held in memory; `path` names it in errors.
    fn from_bytes(path: &Path, bytes: &'a [u8]) -> Result<Self, PlyError> {
        Self::new(path, io::Cursor::new(bytes), bytes.len() as u64)
    }
}

impl<R: Read + io::Seek> PlyReader<R> {
    fn new(path: &Path, source: R, file_len: u64) -> Result<Self, PlyError> {
        let mut reader = BufReader::with_capacity(1 << 20, source);
        let (header, header_len) = parse_header(path, &mut reader)?;
        let vertex_index = find_vertex_element(path, &header)?;
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            header,
            data_len: file_len.saturating_sub(header_len),
            vertex_index,
        })
    }

    fn vertex_element(&self) -> &Element {
        &self.header.elements[self.vertex_index]
    }

    fn invalid(&self, message: impl Into<String>) -> PlyError {
        PlyError::invalid(&self.path, message)
    }

    /// An I/O error while reading data; running out of data is reported as truncation.
    fn read_error(&self, error: io::Error) -> PlyError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            self.invalid("truncated: the file ends before the data the header declares")
        } else {
            PlyError::io(&self.path, "read", error)
        }
    }

    /// Reads the vertex element into `widths.len()` arrays (array `a` has `widths[a]` values
    /// per vertex), placing each target property as it says.
    fn read_vertices(
        &mut self,
        targets: &[Target],
        widths: &[usize],
    ) -> Result<Vec<Vec<f32>>, PlyError> {
        let vertex = &self.header.elements[self.vertex_index];
        if let Some(list) = vertex
            .properties
            .iter()
            .find(|p| matches!(p.ty, PropertyType::List { .. }))
        {
            return Err(self.invalid(format!(
                "vertex property '{}' is a list; lists in the vertex element are not supported",
                list.name
            )));
        }
        match self.header.encoding {
            Encoding::Ascii => self.read_vertices_ascii(targets, widths),
            Encoding::BinaryLittleEndian => self.read_vertices_binary(targets, widths, false),
            Encoding::BinaryBigEndian => self.read_vertices_binary(targets, widths, true),
        }
    }

    fn read_vertices_binary(
        &mut self,
        targets: &[Target],
        widths: &[usize],
        big_endian: bool,
    ) -> Result<Vec<Vec<f32>>, PlyError> {
        self.check_binary_size()?;
        let mut position: u64 = 0;
        for e in 0..self.vertex_index {
            self.skip_binary_element(e, big_endian, &mut position)?;
        }
        let vertex = &self.header.elements[self.vertex_index];
        let record_size = vertex.record_size().unwrap_or(0);
        let available = self.data_len.saturating_sub(position);
        let count = match vertex.binary_bytes() {
            Some(bytes) if bytes <= available => vertex.count as usize,
            _ => {
                return Err(self.invalid(format!(
                    "truncated: header declares {} vertices of {record_size} bytes but only \
                     {available} bytes of data follow",
                    vertex.count
                )));
            }
        };

        // Byte offset of each property within a record.
        let mut offsets = Vec::with_capacity(vertex.properties.len());
        let mut at = 0;
        for p in &vertex.properties {
            offsets.push(at);
            if let PropertyType::Scalar(t) = p.ty {
                at += t.size();
            }
        }
        let plan: Vec<(usize, ScalarType, Target)> = targets
            .iter()
            .map(|t| {
                let ty = match vertex.properties[t.property].ty {
                    PropertyType::Scalar(ty) => ty,
                    PropertyType::List { .. } => unreachable!("lists rejected above"),
                };
                (offsets[t.property], ty, *t)
            })
            .collect();

        let mut arrays: Vec<Vec<f32>> = widths.iter().map(|w| vec![0.0; count * w]).collect();
        let records_per_chunk = (READ_CHUNK_BYTES / record_size.max(1)).max(1);
        let mut chunk = vec![0u8; records_per_chunk.min(count) * record_size];
        let mut start = 0;
        while start < count {
            let records = (count - start).min(records_per_chunk);
            let bytes = &mut chunk[..records * record_size];
            if let Err(e) = self.reader.read_exact(bytes) {
                return Err(self.read_error(e));
            }
            for (r, record) in bytes.chunks_exact(record_size).enumerate() {
                let i = start + r;
                for &(offset, ty, target) in &plan {
                    arrays[target.array][i * widths[target.array] + target.offset] =
                        ty.decode_f32(&record[offset..], big_endian);
                }
            }
            start += records;
        }
        Ok(arrays)
    }

    /// When every element has a fixed record size, the data must be exactly as long as the
    /// header says: shorter is truncation, longer means the header does not describe the data.
    fn check_binary_size(&self) -> Result<(), PlyError> {
        let sizes: Option<Vec<u64>> = self
            .header
            .elements
            .iter()
            .map(|e| e.binary_bytes())
            .collect();
        let Some(sizes) = sizes else {
            return Ok(()); // variable-size elements: checked while reading
        };
        let before_vertex: u64 = sizes[..self.vertex_index].iter().sum();
        let vertex = &self.header.elements[self.vertex_index];
        let available = self.data_len.saturating_sub(before_vertex);
        if sizes[self.vertex_index] > available {
            return Err(self.invalid(format!(
                "truncated: header declares {} vertices of {} bytes but only {available} bytes \
                 of data follow",
                vertex.count,
                vertex.record_size().unwrap_or(0)
            )));
        }
        let expected = sizes
            .iter()
            .try_fold(0u64, |total, &s| total.checked_add(s));
        match expected {
            Some(expected) if expected == self.data_len => Ok(()),
            Some(expected) if expected < self.data_len => Err(self.invalid(format!(
                "{} bytes of data after the {expected} bytes the header declares (wrong element \
                 counts or property types?)",
                self.data_len - expected
            ))),
            _ => Err(self.invalid(format!(
                "truncated: header declares more data than the {} bytes that follow it",
                self.data_len
            ))),
        }
    }

    /// Skips the records of element `e` (before the vertex element), handling list properties.
    fn skip_binary_element(
        &mut self,
        e: usize,
        big_endian: bool,
        position: &mut u64,
    ) -> Result<(), PlyError> {
        let element = self.header.elements[e].clone();
        let truncated = |path: &Path| {
            PlyError::invalid(
                path,
                format!(
                    "truncated: the file ends inside element '{}' ({} records declared)",
                    element.name, element.count
                ),
            )
        };
        if let Some(bytes) = element.binary_bytes() {
            if bytes > self.data_len.saturating_sub(*position) {
                return Err(truncated(&self.path));
            }
            self.skip_bytes(bytes)?;
            *position += bytes;
            return Ok(());
        }
        if element.record_size().is_some() {
            // Fixed size but the total overflows u64: certainly larger than the file.
            return Err(truncated(&self.path));
        }
        for _ in 0..element.count {
            for property in &element.properties {
                let skip = match property.ty {
                    PropertyType::Scalar(t) => t.size() as u64,
                    PropertyType::List { count, item } => {
                        let mut raw = [0u8; 8];
                        let raw = &mut raw[..count.size()];
                        if let Err(e) = self.reader.read_exact(raw) {
                            return Err(self.read_error(e));
                        }
                        *position += raw.len() as u64;
                        let length = count.decode_integer(raw, big_endian).unwrap_or(-1);
                        if length < 0 {
                            return Err(self.invalid(format!(
                                "negative list length {length} in element '{}'",
                                element.name
                            )));
                        }
                        length as u64 * item.size() as u64
                    }
                };
                if skip > self.data_len.saturating_sub(*position) {
                    return Err(truncated(&self.path));
                }
                self.skip_bytes(skip)?;
                *position += skip;
            }
        }
        Ok(())
    }

    fn skip_bytes(&mut self, bytes: u64) -> Result<(), PlyError> {
        let result = match i64::try_from(bytes) {
            Ok(offset) => self.reader.seek_relative(offset),
            Err(_) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        };
        result.map_err(|e| self.read_error(e))
    }

    fn read_vertices_ascii(
        &mut self,
        targets: &[Target],
        widths: &[usize],
    ) -> Result<Vec<Vec<f32>>, PlyError> {
        let path = self.path.clone();
        let elements = self.header.elements.clone();
        let vertex_index = self.vertex_index;
        let mut tokens = AsciiTokens {
            reader: &mut self.reader,
            line: String::new(),
            pos: 0,
            line_number: self.header.lines,
        };
        let error = |tokens: &AsciiTokens<_>, message: String| {
            PlyError::invalid(&path, format!("line {}: {message}", tokens.line_number))
        };

        // Skip the elements before the vertices, checking that their values parse.
        for element in &elements[..vertex_index] {
            for record in 0..element.count {
                for property in &element.properties {
                    let (count_type, item_type) = match property.ty {
                        PropertyType::Scalar(t) => (None, t),
                        PropertyType::List { count, item } => (Some(count), item),
                    };
                    let what = || format!("{} {record} property '{}'", element.name, property.name);
                    let repeat = match count_type {
                        None => 1,
                        Some(t) => {
                            let token = tokens.next_token(&path)?.ok_or_else(|| {
                                truncated_ascii(&path, &element.name, record, element.count)
                            })?;
                            match t.parse_ascii_integer(token) {
                                Some(n) if n >= 0 => n as u64,
                                _ => {
                                    let message =
                                        format!("{}: '{token}' is not a valid list length", what());
                                    return Err(error(&tokens, message));
                                }
                            }
                        }
                    };
                    for _ in 0..repeat {
                        let token = tokens.next_token(&path)?.ok_or_else(|| {
                            truncated_ascii(&path, &element.name, record, element.count)
                        })?;
                        if item_type.parse_ascii(token).is_none() {
                            let message = format!(
                                "{}: '{token}' is not a valid {}",
                                what(),
                                item_type.name()
                            );
                            return Err(error(&tokens, message));
                        }
                    }
                }
            }
        }

        let vertex = &elements[vertex_index];
        // Where each property of a record goes (None: ignored).
        let mut destination: Vec<Option<(usize, usize)>> = vec![None; vertex.properties.len()];
        for t in targets {
            destination[t.property] = Some((t.array, t.offset));
        }
        // Do not trust the declared count for allocation: each vertex needs at least two bytes
        // per property in an ASCII file.
        let plausible = self.data_len / (2 * vertex.properties.len().max(1) as u64);
        let reserve = vertex.count.min(plausible) as usize;
        let mut arrays: Vec<Vec<f32>> = widths
            .iter()
            .map(|w| Vec::with_capacity(reserve * w))
            .collect();
        for i in 0..vertex.count {
            for (array, width) in arrays.iter_mut().zip(widths) {
                array.resize(array.len() + width, 0.0);
            }
            for (p, property) in vertex.properties.iter().enumerate() {
                let PropertyType::Scalar(ty) = property.ty else {
                    unreachable!("lists rejected in read_vertices");
                };
                let token = tokens
                    .next_token(&path)?
                    .ok_or_else(|| truncated_ascii(&path, "vertex", i, vertex.count))?;
                let Some(value) = ty.parse_ascii(token) else {
                    let message = format!(
                        "vertex {i} property '{}': '{token}' is not a valid {}",
                        property.name,
                        ty.name()
                    );
                    return Err(error(&tokens, message));
                };
                if let Some((array, offset)) = destination[p] {
                    arrays[array][i as usize * widths[array] + offset] = value;
                }
            }
        }
        if vertex_index + 1 == elements.len()
            && let Some(token) = tokens.next_token(&path)?
        {
            let message = format!(
                "unexpected '{token}' after the last of the {} vertices the header declares",
                vertex.count
            );
            return Err(error(&tokens, message));
        }
        Ok(arrays)
    }
}

fn truncated_ascii(path: &Path, element: &str, record: u64, count: u64) -> PlyError {
    PlyError::invalid(
        path,
        format!(
            "truncated: the file ends in {element} {record} of the {count} the header declares"
        ),
    )
}

/// Whitespace-separated tokens of the ASCII data, with line numbers for error messages.
struct AsciiTokens<'a, R> {
    reader: &'a mut R,
    line: String,
    pos: usize,
    line_number: usize,
}

impl<R: BufRead> AsciiTokens<'_, R> {
    /// The next token, or None at the end of the file.
    fn next_token(&mut self, path: &Path) -> Result<Option<&str>, PlyError> {
        loop {
            let rest = &self.line[self.pos..];
            let trimmed = rest.trim_start();
            if !trimmed.is_empty() {
                let start = self.pos + (rest.len() - trimmed.len());
                let end = trimmed
                    .find(|c: char| c.is_whitespace())
                    .map_or(self.line.len(), |n| start + n);
                self.pos = end;
                return Ok(Some(&self.line[start..end]));
            }
            self.line.clear();
            self.pos = 0;
            let read = self.reader.read_line(&mut self.line).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    PlyError::invalid(
                        path,
                        format!("line {}: ASCII data is not text", self.line_number + 1),
                    )
                } else {
                    PlyError::io(path, "read", e)
                }
            })?;
            if read == 0 {
                return Ok(None);
            }
            self.line_number += 1;
        }
    }
}

/// Finds the `vertex` element, rejecting formats we know we cannot read.
fn find_vertex_element(path: &Path, header: &Header) -> Result<usize, PlyError> {
    let is_compressed = header
        .elements
        .iter()
        .any(|e| e.name == "chunk" || (e.name == "vertex" && e.find("packed_position").is_some()));
    if is_compressed {
        return Err(PlyError::invalid(
            path,
            "this is a SuperSplat/PlayCanvas compressed PLY (packed_* properties), which is not \
             supported: export or convert it to a standard uncompressed PLY first",
        ));
    }
    header
        .elements
        .iter()
        .position(|e| e.name == "vertex")
        .ok_or_else(|| {
            let names: Vec<&str> = header.elements.iter().map(|e| e.name.as_str()).collect();
            PlyError::invalid(
                path,
                format!(
                    "no 'vertex' element (the header declares: {})",
                    if names.is_empty() {
                        "no elements".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::TempDir;
    use crate::rng::Pcg32;
    use std::fs;

    // ---- building PLY files the way other tools write them ----------------------------------

    /// One element of a hand-built PLY: properties as `(type, name)` where the type is a
    /// scalar type name or `list <count type> <item type>`; each row has one `Vec` per property
    /// (one value for scalars, the items for lists).
    struct TestElement {
        name: String,
        properties: Vec<(String, String)>,
        rows: Vec<Vec<Vec<f64>>>,
    }

    fn encode_scalar(ty: ScalarType, v: f64, big_endian: bool, out: &mut Vec<u8>) {
        macro_rules! put {
            ($x:expr) => {{
                let x = $x;
                out.extend_from_slice(&if big_endian {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                })
            }};
        }
        match ty {
            ScalarType::I8 => put!(v as i8),
            ScalarType::U8 => put!(v as u8),
            ScalarType::I16 => put!(v as i16),
            ScalarType::U16 => put!(v as u16),
            ScalarType::I32 => put!(v as i32),
            ScalarType::U32 => put!(v as u32),
            ScalarType::F32 => put!(v as f32),
            ScalarType::F64 => put!(v),
        }
    }

    fn ascii_scalar(ty: ScalarType, v: f64) -> String {
        match ty {
            ScalarType::F32 => format!("{}", v as f32),
            ScalarType::F64 => format!("{v}"),
            _ => format!("{}", v as i64),
        }
    }

    /// Encodes a whole file. `crlf` ends header lines (and ASCII data lines) with "\r\n".
    fn encode_ply(format: &str, elements: &[TestElement], crlf: bool) -> Vec<u8> {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut header = format!("ply{eol}format {format} 1.0{eol}comment made by a test{eol}");
        header.push_str(&format!("obj_info nothing to see{eol}"));
        for e in elements {
            header.push_str(&format!("element {} {}{eol}", e.name, e.rows.len()));
            for (ty, name) in &e.properties {
                header.push_str(&format!("property {ty} {name}{eol}"));
            }
        }
        header.push_str(&format!("end_header{eol}"));
        let mut out = header.into_bytes();
        let big_endian = format == "binary_big_endian";
        for e in elements {
            let types: Vec<Vec<ScalarType>> = e
                .properties
                .iter()
                .map(|(ty, _)| {
                    ty.split_whitespace()
                        .filter(|w| *w != "list")
                        .map(|w| ScalarType::from_name(w).unwrap())
                        .collect()
                })
                .collect();
            for row in &e.rows {
                let mut line = Vec::new();
                for (values, types) in row.iter().zip(&types) {
                    let item = *types.last().unwrap();
                    if types.len() == 2 {
                        // A list: its length first.
                        if format == "ascii" {
                            line.push(values.len().to_string());
                        } else {
                            encode_scalar(types[0], values.len() as f64, big_endian, &mut out);
                        }
                    }
                    for &v in values {
                        if format == "ascii" {
                            line.push(ascii_scalar(item, v));
                        } else {
                            encode_scalar(item, v, big_endian, &mut out);
                        }
                    }
                }
                if format == "ascii" {
                    out.extend_from_slice(line.join(" ").as_bytes());
                    out.extend_from_slice(eol.as_bytes());
                }
            }
        }
        out
    }

    /// A deterministic value for vertex `i`'s property `name`, exactly representable in `ty`.
    fn sample(i: usize, name: &str, ty: ScalarType) -> f64 {
        let h = name.bytes().map(usize::from).sum::<usize>() * 31 + i * 13;
        match ty {
            ScalarType::I8 => (h % 200) as f64 - 100.0,
            ScalarType::F32 | ScalarType::F64 => (h % 1000) as f64 / 8.0 - 60.0,
            _ => (h % 250) as f64,
        }
    }

    fn vertex_element(n: usize, properties: &[(&str, &str)]) -> TestElement {
        let rows = (0..n)
            .map(|i| {
                properties
                    .iter()
                    .map(|(ty, name)| vec![sample(i, name, ScalarType::from_name(ty).unwrap())])
                    .collect()
            })
            .collect();
        TestElement {
            name: "vertex".into(),
            properties: properties
                .iter()
                .map(|(t, n)| (t.to_string(), n.to_string()))
                .collect(),
            rows,
        }
    }

    /// The cloud a reader must produce from `vertex_element(n, properties)`, assembled
    /// property by property (f_rest: file index `c * R + k` is memory index `k * 3 + c`).
    fn expected_gaussians(n: usize, degree: u32, properties: &[(&str, &str)]) -> Gaussians {
        let value = |i: usize, name: &str| {
            let ty = properties.iter().find(|p| p.1 == name).unwrap().0;
            sample(i, name, ScalarType::from_name(ty).unwrap()) as f32
        };
        let r = sh::rest_coeffs_for_degree(degree);
        let mut g = Gaussians::empty(degree);
        for i in 0..n {
            for name in ["x", "y", "z"] {
                g.means.push(value(i, name));
            }
            for a in 0..3 {
                g.log_scales.push(value(i, &format!("scale_{a}")));
                g.sh_dc.push(value(i, &format!("f_dc_{a}")));
            }
            for a in 0..4 {
                g.rotations.push(value(i, &format!("rot_{a}")));
            }
            g.logit_opacities.push(value(i, "opacity"));
            for k in 0..r {
                for c in 0..3 {
                    g.sh_rest.push(value(i, &format!("f_rest_{}", c * r + k)));
                }
            }
        }
        g
    }

    /// The standard property list of a degree with every property of type `ty`.
    fn standard_properties(degree: u32, ty: &'static str) -> Vec<(&'static str, String)> {
        gaussian_property_names(degree)
            .into_iter()
            .map(|name| (ty, name))
            .collect()
    }

    fn as_refs<'a>(properties: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        properties.iter().map(|(t, n)| (*t, n.as_str())).collect()
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    fn assert_same_bits(actual: &Gaussians, expected: &Gaussians, what: &str) {
        assert_eq!(actual.sh_degree, expected.sh_degree, "{what}: SH degree");
        for group in ParamGroup::ALL {
            assert_eq!(
                bits(actual.group(group)),
                bits(expected.group(group)),
                "{what}: group {}",
                group.name()
            );
        }
    }

    /// Writes `bytes` to `dir/name` and reads it as a Gaussian PLY.
    fn read_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> Result<Gaussians, PlyError> {
        let path = dir.path().join(name);
        fs::write(&path, bytes).unwrap();
        read_gaussians_ply(&path)
    }

    // ---- writing and round trips -------------------------------------------------------------

    /// Every f32 bit pattern that must survive: signed zeros, subnormals, extremes,
    /// infinities, quiet and signalling NaNs with payloads.
    const SPECIAL_BITS: [u32; 13] = [
        0x0000_0000,
        0x8000_0000,
        0x0000_0001,
        0x807f_ffff,
        0x7f7f_ffff,
        0xff7f_ffff,
        0x0080_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0001,
        0xffc1_2345,
        0x7f80_0001,
        0x3f80_0000,
    ];

    fn random_bit_gaussians(n: usize, degree: u32, rng: &mut Pcg32) -> Gaussians {
        let mut g = Gaussians::empty(degree);
        for group in ParamGroup::ALL {
            let len = n * group.width(degree);
            *g.group_mut(group) = (0..len).map(|_| f32::from_bits(rng.next_u32())).collect();
        }
        // The first values of every group take the special patterns.
        for group in ParamGroup::ALL {
            for (v, &b) in g.group_mut(group).iter_mut().zip(SPECIAL_BITS.iter()) {
                *v = f32::from_bits(b);
            }
        }
        g
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = TempDir::new("ply-roundtrip").unwrap();
        let mut rng = Pcg32::new(1, 0);
        for degree in 0..=3 {
            for n in [0, 1, 2, 7, 300] {
                let g = random_bit_gaussians(n, degree, &mut rng);
                let path = dir.path().join(format!("d{degree}_n{n}.ply"));
                write_gaussians_ply(&path, &g).unwrap();
                let back = read_gaussians_ply(&path).unwrap();
                assert_same_bits(&back, &g, &format!("degree {degree}, {n} Gaussians"));
                // 17 floats besides f_rest (62 - 45 at degree 3).
                let record = 4 * (17 + 3 * sh::rest_coeffs_for_degree(degree));
                let header_len = fs::read(&path)
                    .unwrap()
                    .windows(11)
                    .position(|w| w == b"end_header\n")
                    .unwrap()
                    + 11;
                let expected_len = header_len + n * record;
                assert_eq!(fs::metadata(&path).unwrap().len() as usize, expected_len);
            }
        }
    }

    #[test]
    fn header_is_exactly_what_inria_writes() {
        let dir = TempDir::new("ply-header").unwrap();
        let path = dir.path().join("point_cloud.ply");
        // Degree 1, written out in full.
        let mut g = random_bit_gaussians(2, 1, &mut Pcg32::new(2, 0));
        write_gaussians_ply(&path, &g).unwrap();
        let expected = "ply\nformat binary_little_endian 1.0\nelement vertex 2\n\
            property float x\nproperty float y\nproperty float z\n\
            property float nx\nproperty float ny\nproperty float nz\n\
            property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\n\
            property float f_rest_0\nproperty float f_rest_1\nproperty float f_rest_2\n\
            property float f_rest_3\nproperty float f_rest_4\nproperty float f_rest_5\n\
            property float f_rest_6\nproperty float f_rest_7\nproperty float f_rest_8\n\
            property float opacity\n\
            property float scale_0\nproperty float scale_1\nproperty float scale_2\n\
            property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n\
            end_header\n";
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..expected.len()], expected.as_bytes());
        assert_eq!(bytes.len(), expected.len() + 2 * 26 * 4);

        // The record layout, read straight from the bytes: Gaussian 1, f_rest channel-major.
        g.sh_rest = (0..18).map(|v| v as f32).collect();
        write_gaussians_ply(&path, &g).unwrap();
        let bytes = fs::read(&path).unwrap();
        let record = &bytes[expected.len() + 26 * 4..];
        let float = |j: usize| f32::from_le_bytes(record[4 * j..4 * j + 4].try_into().unwrap());
        assert_eq!(bits(&[float(0), float(1), float(2)]), bits(&g.means[3..6]));
        assert_eq!([float(3), float(4), float(5)], [0.0; 3]);
        assert_eq!(bits(&[float(6), float(7), float(8)]), bits(&g.sh_dc[3..6]));
        // In memory Gaussian 1's f_rest is 9..18 with index k * 3 + c; the file holds channel 0
        // (coefficients 1, 2, 3), then channel 1, then channel 2.
        let file_rest: Vec<f32> = (9..18).map(float).collect();
        assert_eq!(
            file_rest,
            [9.0, 12.0, 15.0, 10.0, 13.0, 16.0, 11.0, 14.0, 17.0]
        );
        assert_eq!(float(18).to_bits(), g.logit_opacities[1].to_bits());
        assert_eq!(
            bits(&(19..22).map(float).collect::<Vec<_>>()),
            bits(&g.log_scales[3..6])
        );
        assert_eq!(
            bits(&(22..26).map(float).collect::<Vec<_>>()),
            bits(&g.rotations[4..8])
        );

        // Degree 3: the 62 reference properties in order.
        let g3 = random_bit_gaussians(1, 3, &mut Pcg32::new(3, 0));
        write_gaussians_ply(&path, &g3).unwrap();
        let bytes = fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let names: Vec<&str> = text
            .lines()
            .take_while(|l| *l != "end_header")
            .filter_map(|l| l.strip_prefix("property float "))
            .collect();
        let mut reference = vec![
            "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        reference.extend((0..45).map(|j| format!("f_rest_{j}")));
        for name in [
            "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2",
        ] {
            reference.push(name.to_string());
        }
        reference.push("rot_3".to_string());
        assert_eq!(names.len(), 62);
        assert_eq!(names, reference);
        assert!(text.starts_with("ply\nformat binary_little_endian 1.0\nelement vertex 1\n"));
    }

    #[test]
    fn f_rest_channel_major_in_the_file_is_coefficient_major_in_memory() {
        let dir = TempDir::new("ply-rest").unwrap();
        let mut properties = standard_properties(1, "float");
        properties.retain(|p| !p.1.starts_with("f_rest"));
        let mut element = vertex_element(1, &as_refs(&properties));
        for j in 0..9 {
            element
                .properties
                .push(("float".into(), format!("f_rest_{j}")));
            element.rows[0].push(vec![j as f64]);
        }
        let bytes = encode_ply("binary_little_endian", &[element], false);
        let g = read_bytes(&dir, "rest.ply", &bytes).unwrap();
        assert_eq!(g.sh_degree, 1);
        assert_eq!(g.sh_rest, [0.0, 3.0, 6.0, 1.0, 4.0, 7.0, 2.0, 5.0, 8.0]);
    }

    // ---- reading what other tools write ------------------------------------------------------

    #[test]
    fn reads_shuffled_mixed_type_files_in_every_encoding() {
        let dir = TempDir::new("ply-foreign").unwrap();
        let mut rng = Pcg32::new(4, 0);
        let case_types = ["float", "double", "float32", "float64"];
        for degree in 0..=3 {
            for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
                // Standard names, no normals, shuffled, every property a random float type,
                // plus extras other tools add.
                let mut properties: Vec<(&'static str, String)> = standard_properties(degree, "")
                    .into_iter()
                    .filter(|(_, n)| !n.starts_with('n'))
                    .map(|(_, n)| (case_types[rng.below(4) as usize], n))
                    .collect();
                for (ty, name) in [
                    ("uchar", "red"),
                    ("uint8", "green"),
                    ("uchar", "blue"),
                    ("float", "filter_1"),
                    ("int", "segment_id"),
                    ("short", "flags"),
                ] {
                    properties.push((ty, name.to_string()));
                }
                for i in (1..properties.len()).rev() {
                    properties.swap(i, rng.below(i as u32 + 1) as usize);
                }
                let refs = as_refs(&properties);
                let n = 5;
                let bytes = encode_ply(format, &[vertex_element(n, &refs)], format == "ascii");
                let what = format!("{format}, degree {degree}");
                let g = read_bytes(&dir, "foreign.ply", &bytes)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_same_bits(&g, &expected_gaussians(n, degree, &refs), &what);
            }
        }
    }

    #[test]
    fn reads_integer_typed_properties() {
        let dir = TempDir::new("ply-ints").unwrap();
        let mut properties = standard_properties(1, "float");
        let types = [
            "char", "uchar", "short", "ushort", "int", "uint", "int8", "uint16",
        ];
        for (j, p) in properties.iter_mut().enumerate() {
            p.0 = types[j % types.len()];
        }
        let refs = as_refs(&properties);
        for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
            let bytes = encode_ply(format, &[vertex_element(4, &refs)], false);
            let g = read_bytes(&dir, "ints.ply", &bytes).unwrap();
            assert_same_bits(&g, &expected_gaussians(4, 1, &refs), format);
            // Negative char values survive.
            let all = ParamGroup::ALL
                .iter()
                .flat_map(|&group| g.group(group).iter());
            assert!(all.clone().any(|&v| v < 0.0) && all.clone().any(|&v| v > 100.0));
        }
    }

    /// Elements before and after `vertex` (fixed-size and with lists) are skipped.
    #[test]
    fn skips_other_elements() {
        let dir = TempDir::new("ply-elements").unwrap();
        let properties = standard_properties(2, "float");
        let refs = as_refs(&properties);
        let camera = TestElement {
            name: "camera".into(),
            properties: vec![
                ("float".into(), "fx".into()),
                ("double".into(), "fy".into()),
            ],
            rows: vec![vec![vec![1.5], vec![2.5]]; 3],
        };
        let tags = TestElement {
            name: "tags".into(),
            properties: vec![
                ("uchar".into(), "kind".into()),
                ("list uchar int".into(), "ids".into()),
                ("list ushort float".into(), "weights".into()),
            ],
            rows: vec![
                vec![vec![1.0], vec![4.0, 5.0, 6.0], vec![]],
                vec![vec![2.0], vec![], vec![0.5; 300]],
            ],
        };
        let faces = TestElement {
            name: "face".into(),
            properties: vec![("list uchar int".into(), "vertex_indices".into())],
            rows: vec![vec![vec![0.0, 1.0, 2.0]], vec![vec![2.0, 1.0, 0.0]]],
        };
        let expected = expected_gaussians(6, 2, &refs);
        for format in ["binary_little_endian", "binary_big_endian", "ascii"] {
            let elements = [
                camera.clone_element(),
                tags.clone_element(),
                vertex_element(6, &refs),
                faces.clone_element(),
            ];
            let bytes = encode_ply(format, &elements, false);
            let g = read_bytes(&dir, "elements.ply", &bytes)
                .unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_same_bits(&g, &expected, format);
        }
    }

    impl TestElement {
        fn clone_element(&self) -> TestElement {
            TestElement {
                name: self.name.clone(),
                properties: self.properties.clone(),
                rows: self.rows.clone(),
            }
        }
    }

    // ---- malformed files ---------------------------------------------------------------------

    fn standard_header(format: &str, count: &str, degree: u32) -> String {
        let mut h = format!("ply\nformat {format} 1.0\nelement vertex {count}\n");
        for name in gaussian_property_names(degree) {
            h.push_str(&format!("property float {name}\n"));
        }
        h + "end_header\n"
    }

    fn assert_error(dir: &TempDir, bytes: &[u8], expected: &[&str], what: &str) {
        let err = match read_bytes(dir, "bad.ply", bytes) {
            Ok(_) => panic!("{what}: read succeeded"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("bad.ply: "),
            "{what}: '{err}' does not name the file"
        );
        for part in expected {
            assert!(err.contains(part), "{what}: '{err}' does not say '{part}'");
        }
    }

    #[test]
    fn malformed_headers_are_errors_that_name_the_file() {
        let dir = TempDir::new("ply-bad-header").unwrap();
        let valid = standard_header("binary_little_endian", "0", 0);
        let with = |from: &str, to: &str| valid.replacen(from, to, 1);
        let cases: Vec<(&str, String, Vec<&str>)> =
            vec![
            ("empty", String::new(), vec!["empty file"]),
            ("not ply", "hello\nworld\n".into(), vec!["not a PLY file", "hello"]),
            (
                "no end_header",
                "ply\nformat ascii 1.0\nelement vertex 1\n".into(),
                vec!["truncated header"],
            ),
            (
                "unknown format",
                with("binary_little_endian", "binary_middle_endian"),
                vec!["line 2", "unknown format 'binary_middle_endian'"],
            ),
            (
                "format line without version",
                with("format binary_little_endian 1.0", "format ascii"),
                vec!["line 2", "format <encoding> 1.0"],
            ),
            (
                "no format",
                with("format binary_little_endian 1.0\n", ""),
                vec!["no 'format' line"],
            ),
            (
                "negative count",
                with("element vertex 0", "element vertex -5"),
                vec!["line 3", "'-5', not a non-negative integer"],
            ),
            (
                "non-numeric count",
                with("element vertex 0", "element vertex lots"),
                vec!["'lots'"],
            ),
            (
                "count above u64",
                with("element vertex 0", "element vertex 99999999999999999999"),
                vec!["not a non-negative integer"],
            ),
            (
                "element without count",
                with("element vertex 0", "element vertex"),
                vec!["element <name> <count>"],
            ),
            (
                "property before element",
                with("element vertex 0\n", "property float q\nelement vertex 0\n"),
                vec!["line 3", "before any 'element'"],
            ),
            (
                "unknown type",
                with("property float x\n", "property float128 x\n"),
                vec!["line 4", "unknown property type 'float128'"],
            ),
            (
                "float list length",
                with("property float x\n", "property list float int x\n"),
                vec!["not an integer type"],
            ),
            (
                "malformed property",
                with("property float x\n", "property float\n"),
                vec!["expected 'property <type> <name>'"],
            ),
            (
                "unknown keyword",
                with("end_header", "frobnicate 3\nend_header"),
                vec!["unknown keyword 'frobnicate'"],
            ),
            (
                "binary junk line",
                with("end_header", "\u{1}\u{2}\u{3}\nend_header"),
                vec!["unknown keyword"],
            ),
            (
                "duplicate property",
                with("property float y\n", "property float x\n"),
                vec!["property 'x' of element 'vertex' is declared twice"],
            ),
            (
                "duplicate element",
                with("end_header", "element vertex 0\nend_header"),
                vec!["element 'vertex' is declared twice"],
            ),
            (
                "no vertex element",
                "ply\nformat ascii 1.0\nelement face 0\nproperty list uchar int vertex_indices\n\
                 end_header\n"
                    .into(),
                vec!["no 'vertex' element", "face"],
            ),
            (
                "compressed",
                "ply\nformat binary_little_endian 1.0\nelement chunk 0\nproperty float min_x\n\
                 element vertex 0\nproperty uint packed_position\nend_header\n"
                    .into(),
                vec!["compressed"],
            ),
            (
                "list in vertex",
                with("end_header", "property list uchar float extra\nend_header"),
                vec!["'extra' is a list"],
            ),
        ];
        for (what, text, expected) in cases {
            assert_error(&dir, text.as_bytes(), &expected, what);
        }
        // A header that never ends within 1 MiB.
        let mut long = "ply\nformat ascii 1.0\n".to_string();
        while long.len() < (1 << 20) + 100 {
            long.push_str("comment padding padding padding padding padding\n");
        }
        assert_error(&dir, long.as_bytes(), &["1 MiB"], "endless header");
        // A file that does not exist.
        let missing = dir.path().join("missing.ply");
        let err = read_gaussians_ply(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.ply: cannot read"), "{err}");
    }

    #[test]
    fn missing_and_misnumbered_properties_are_named() {
        let dir = TempDir::new("ply-bad-props").unwrap();
        let mut properties = standard_properties(0, "float");
        properties.retain(|p| p.1 != "opacity" && p.1 != "rot_3");
        let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
        assert_error(
            &dir,
            &bytes,
            &["missing required vertex properties: opacity, rot_3"],
            "missing",
        );

        let mut properties = standard_properties(1, "float");
        properties.push(("float", "f_rest_9".into()));
        let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
        assert_error(
            &dir,
            &bytes,
            &["10 f_rest properties", "0, 9, 24 or 45"],
            "10 f_rest",
        );

        let mut properties = standard_properties(1, "float");
        properties.retain(|p| p.1 != "f_rest_4");
        properties.push(("float", "f_rest_12".into()));
        let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
        assert_error(
            &dir,
            &bytes,
            &["found f_rest_12", "missing f_rest_4"],
            "misnumbered",
        );

        let mut properties = standard_properties(0, "float");
        properties.push(("float", "f_rest_x".into()));
        let bytes = encode_ply("ascii", &[vertex_element(1, &as_refs(&properties))], false);
        assert_error(&dir, &bytes, &["'f_rest_x'"], "odd f_rest name");

        // A plain point cloud gets a hint.
        let points = vertex_element(
            2,
            &[
                ("float", "x"),
                ("float", "y"),
                ("float", "z"),
                ("uchar", "red"),
            ],
        );
        let bytes = encode_ply("binary_little_endian", &[points], false);
        assert_error(
            &dir,
            &bytes,
            &["f_dc_0", "plain point cloud"],
            "point cloud",
        );
    }

    #[test]
    fn data_that_does_not_match_the_header_is_an_error() {
        let dir = TempDir::new("ply-bad-data").unwrap();
        // The example from the brief: 1000 degree-3 vertices declared, 1200 bytes present.
        let mut bytes = standard_header("binary_little_endian", "1000", 3).into_bytes();
        bytes.extend(vec![0u8; 1200]);
        assert_error(
            &dir,
            &bytes,
            &[
                "truncated: header declares 1000 vertices of 248 bytes but only 1200 bytes of \
               data follow",
            ],
            "truncated binary",
        );
        // Same, big endian, and with a count whose byte size overflows u64.
        let mut bytes =
            standard_header("binary_big_endian", "18446744073709551615", 0).into_bytes();
        bytes.extend(vec![0u8; 100]);
        assert_error(
            &dir,
            &bytes,
            &["truncated", "18446744073709551615"],
            "huge count",
        );
        // Too much data.
        let mut bytes = standard_header("binary_little_endian", "1", 0).into_bytes();
        bytes.extend(vec![0u8; 68 + 3]);
        assert_error(
            &dir,
            &bytes,
            &["3 bytes of data after the 68 bytes"],
            "trailing bytes",
        );
        // A list element before the vertices that runs past the end.
        let header = "ply\nformat binary_little_endian 1.0\nelement tags 2\n\
                      property list uchar int ids\n"
            .to_string()
            + standard_header("binary_little_endian", "0", 0)
                .split_once("1.0\n")
                .unwrap()
                .1;
        let mut bytes = header.clone().into_bytes();
        bytes.extend([3u8, 0, 0, 0, 0]);
        assert_error(&dir, &bytes, &["truncated", "tags"], "truncated list");
        // A negative list length.
        let header_char = header.replace("list uchar int", "list char int");
        let mut bytes = header_char.into_bytes();
        bytes.push(0xff);
        assert_error(&dir, &bytes, &["negative list length -1"], "negative list");

        // ASCII: non-numeric, out of range, too few values, too many.
        let properties = standard_properties(0, "float");
        let mut refs = as_refs(&properties);
        refs.push(("uchar", "red"));
        let good =
            String::from_utf8(encode_ply("ascii", &[vertex_element(2, &refs)], false)).unwrap();
        let last_line = good.lines().last().unwrap().to_string();
        let first_value = last_line.split(' ').next().unwrap();
        let replace_last = |new_line: String| good.replace(&last_line, &new_line);
        // 24 header lines (with the comment and obj_info lines), data on lines 25 and 26.
        let non_numeric = replace_last(last_line.replacen(first_value, "abc", 1));
        assert_error(
            &dir,
            non_numeric.as_bytes(),
            &[
                "line 26",
                "vertex 1 property 'x': 'abc' is not a valid float",
            ],
            "ascii non-numeric",
        );
        let red = last_line.rsplit(' ').next().unwrap();
        let out_of_range = replace_last(format!("{}300", last_line.strip_suffix(red).unwrap()));
        assert_error(
            &dir,
            out_of_range.as_bytes(),
            &["'300' is not a valid uchar"],
            "range",
        );
        let short = replace_last(last_line.rsplitn(3, ' ').last().unwrap().to_string());
        assert_error(
            &dir,
            short.as_bytes(),
            &["truncated", "vertex 1 of the 2"],
            "short",
        );
        let long = good.clone() + "1 2 3\n";
        assert_error(
            &dir,
            long.as_bytes(),
            &["unexpected '1' after the last of the 2"],
            "long",
        );
        let not_text = good.replacen(first_value, "\u{ff}", 1).into_bytes();
        let mut not_utf8 = not_text.clone();
        let at = not_utf8
            .windows(2)
            .position(|w| w == "\u{ff}".as_bytes())
            .unwrap();
        not_utf8[at] = 0xff;
        not_utf8[at + 1] = 0xfe;
        assert_error(&dir, &not_utf8, &["not text"], "ascii not utf-8");
    }

    /// Every truncation of a valid binary file is an error; random corruption never panics.
    #[test]
    fn truncated_and_corrupted_files_never_panic() {
        let dir = TempDir::new("ply-fuzz").unwrap();
        let path = dir.path().join("fuzz.ply");
        let mut rng = Pcg32::new(8, 0);
        let g = random_bit_gaussians(3, 1, &mut rng);
        write_gaussians_ply(&path, &g).unwrap();
        let binary = fs::read(&path).unwrap();
        for len in 0..binary.len() {
            let result = read_bytes(&dir, "fuzz.ply", &binary[..len]);
            let err = result
                .expect_err("a truncated file must not load")
                .to_string();
            assert!(err.contains("fuzz.ply: "), "{err}");
        }
        let properties = standard_properties(1, "double");
        let list_tags = TestElement {
            name: "tags".into(),
            properties: vec![("list uchar int".into(), "ids".into())],
            rows: vec![vec![vec![1.0, 2.0]], vec![vec![3.0]]],
        };
        let ascii = encode_ply(
            "ascii",
            &[
                list_tags.clone_element(),
                vertex_element(3, &as_refs(&properties)),
            ],
            false,
        );
        let big = encode_ply(
            "binary_big_endian",
            &[list_tags, vertex_element(3, &as_refs(&properties))],
            false,
        );
        for len in 0..ascii.len() {
            // A cut inside the last number may still parse; only the absence of panics counts.
            let _ = read_bytes(&dir, "fuzz.ply", &ascii[..len]);
        }
        for original in [&binary, &ascii, &big] {
            for _ in 0..700 {
                let mut bytes = original.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() as u32) as usize;
                    bytes[at] = rng.below(256) as u8;
                }
                if rng.below(4) == 0 {
                    bytes.truncate(rng.below(bytes.len() as u32) as usize);
                }
                let _ = read_bytes(&dir, "fuzz.ply", &bytes);
                let _ = {
                    fs::write(&path, &bytes).unwrap();
                    read_points_ply(&path)
                };
            }
        }
    }

    // ---- atomic writes -----------------------------------------------------------------------

    #[test]
    fn failed_writes_leave_the_old_file_and_no_temp_file() {
        let dir = TempDir::new("ply-atomic").unwrap();
        let path = dir.path().join("point_cloud.ply");
        let good = random_bit_gaussians(4, 2, &mut Pcg32::new(9, 0));
        write_gaussians_ply(&path, &good).unwrap();
        let before = fs::read(&path).unwrap();

        let mut bad = good.clone();
        bad.rotations.pop();
        let err = write_gaussians_ply(&path, &bad).unwrap_err().to_string();
        assert!(
            err.contains("point_cloud.ply: cannot write: parameter group rotation"),
            "{err}"
        );
        let mut bad_degree = good.clone();
        bad_degree.sh_degree = 4;
        assert!(write_gaussians_ply(&path, &bad_degree).is_err());
        assert_eq!(fs::read(&path).unwrap(), before);

        // The final rename fails (a directory is in the way): the temp file is cleaned up.
        let blocked = dir.path().join("blocked.ply");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("keep"), b"x").unwrap();
        let err = write_gaussians_ply(&blocked, &good)
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocked.ply: cannot write"), "{err}");
        let err = write_points_ply(&blocked, &PointCloud::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("blocked.ply: cannot write"), "{err}");
        assert!(blocked.join("keep").exists());
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["blocked.ply", "point_cloud.ply"]);
    }

    // ---- point clouds ------------------------------------------------------------------------

    #[test]
    fn points_round_trip_with_inria_header() {
        let dir = TempDir::new("ply-points").unwrap();
        let path = dir.path().join("input.ply");
        let mut rng = Pcg32::new(10, 0);
        for n in [0, 1, 1000] {
            let points = PointCloud {
                positions: (0..n)
                    .map(|_| [(); 3].map(|_| f32::from_bits(rng.next_u32() & 0x3fff_ffff)))
                    .collect(),
                colors: (0..n)
                    .map(|_| [(); 3].map(|_| rng.below(256) as u8))
                    .collect(),
            };
            write_points_ply(&path, &points).unwrap();
            let bytes = fs::read(&path).unwrap();
            let header = format!(
                "ply\nformat binary_little_endian 1.0\nelement vertex {n}\n\
                 property float x\nproperty float y\nproperty float z\n\
                 property float nx\nproperty float ny\nproperty float nz\n\
                 property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
            );
            assert_eq!(&bytes[..header.len()], header.as_bytes());
            assert_eq!(bytes.len(), header.len() + 27 * n);
            assert_eq!(read_points_ply(&path).unwrap(), points);
        }
        let mismatched = PointCloud {
            positions: vec![[0.0; 3]; 2],
            colors: vec![[0; 3]],
        };
        let err = write_points_ply(&path, &mismatched)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input.ply: cannot write: 2 positions but 1 colours"),
            "{err}"
        );
    }

    #[test]
    fn reads_points_from_other_writers() {
        let dir = TempDir::new("ply-points-foreign").unwrap();
        let path = dir.path().join("points3d.ply");
        let element = TestElement {
            name: "vertex".into(),
            properties: [
                ("uchar", "blue"),
                ("double", "z"),
                ("float", "red"),
                ("double", "x"),
                ("int", "green"),
                ("float", "y"),
                ("float", "nx"),
            ]
            .iter()
            .map(|(t, n)| (t.to_string(), n.to_string()))
            .collect(),
            rows: vec![
                vec![
                    vec![7.0],
                    vec![3.5],
                    vec![12.6],
                    vec![1.25],
                    vec![300.0],
                    vec![-2.0],
                    vec![0.0],
                ],
                vec![
                    vec![255.0],
                    vec![0.0],
                    vec![-5.0],
                    vec![0.5],
                    vec![0.0],
                    vec![8.0],
                    vec![1.0],
                ],
            ],
        };
        for format in ["ascii", "binary_big_endian", "binary_little_endian"] {
            fs::write(&path, encode_ply(format, &[element.clone_element()], false)).unwrap();
            let points = read_points_ply(&path).unwrap_or_else(|e| panic!("{format}: {e}"));
            assert_eq!(
                points.positions,
                [[1.25, -2.0, 3.5], [0.5, 8.0, 0.0]],
                "{format}"
            );
            // Rounded and clamped to 0..255.
            assert_eq!(points.colors, [[13, 255, 7], [0, 0, 255]], "{format}");
        }
        let no_colour = vertex_element(1, &[("float", "x"), ("float", "y"), ("float", "z")]);
        fs::write(&path, encode_ply("ascii", &[no_colour], false)).unwrap();
        let err = read_points_ply(&path).unwrap_err().to_string();
        assert!(
            err.contains("points3d.ply: missing required vertex properties: red, green, blue"),
            "{err}"
        );
    }
}
