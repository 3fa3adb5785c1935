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
    let mut ply = PlyReader::open(path)?;
    let vertex = ply.vertex_element();
    let sh_degree = sh_degree_of(path, vertex)?;
    let rest_per_channel = sh::rest_coeffs_for_degree(sh_degree);

    let mut wanted = TargetList::new(vertex);
    for (a, name) in ["x", "y", "z"].into_iter().enumerate() {
        wanted.add(name, ParamGroup::Means, a);
    }
    for a in 0..3 {
        wanted.add(&format!("scale_{a}"), ParamGroup::LogScales, a);
    }
    for a in 0..4 {
        wanted.add(&format!("rot_{a}"), ParamGroup::Rotations, a);
    }
    wanted.add("opacity", ParamGroup::Opacities, 0);
    for c in 0..3 {
        wanted.add(&format!("f_dc_{c}"), ParamGroup::ShDc, c);
    }
    for c in 0..3 {
        for k in 0..rest_per_channel {
            let name = format!("f_rest_{}", c * rest_per_channel + k);
            wanted.add(&name, ParamGroup::ShRest, k * 3 + c);
        }
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
                format!(
                    "{count} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0 to 3)"
                ),
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
        _ => Err("expected 'property <type> <name>' or 'property list <type> <type> <name>'".into()),
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
struct PlyReader {
    path: PathBuf,
    reader: BufReader<File>,
    header: Header,
    /// Bytes in the file after the header.
    data_len: u64,
    vertex_index: usize,
}

impl PlyReader {
    fn open(path: &Path) -> Result<Self, PlyError> {
        let file = File::open(path).map_err(|e| PlyError::io(path, "read", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| PlyError::io(path, "read", e))?
            .len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
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
                                    let message = format!(
                                        "{}: '{token}' is not a valid list length",
                                        what()
                                    );
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
        if vertex_index + 1 == elements.len() {
            if let Some(token) = tokens.next_token(&path)? {
                let message = format!(
                    "unexpected '{token}' after the last of the {} vertices the header declares",
                    vertex.count
                );
                return Err(error(&tokens, message));
            }
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
    let is_compressed = header.elements.iter().any(|e| {
        e.name == "chunk" || (e.name == "vertex" && e.find("packed_position").is_some())
    });
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
