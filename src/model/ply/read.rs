//! Reading: the data of a parsed file, ASCII or binary of either byte order, into `f32` arrays.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::PlyError;
use super::header::{Element, Encoding, Header, PropertyType, ScalarType, parse_header};
/// Bytes of vertex data read per read call.
const READ_CHUNK_BYTES: usize = 8 << 20;

/// One wanted vertex property: its value goes to `arrays[array][vertex * width + offset]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    pub(super) property: usize,
    pub(super) array: usize,
    pub(super) offset: usize,
}

/// An open PLY file with its parsed header, positioned at the start of the data.
pub(super) struct PlyReader<R> {
    /// The file's path (or, for bytes read elsewhere, the name errors give it).
    pub(super) path: PathBuf,
    pub(super) reader: BufReader<R>,
    pub(super) header: Header,
    /// Bytes in the file after the header.
    pub(super) data_len: u64,
    pub(super) vertex_index: usize,
}

impl PlyReader<File> {
    pub(super) fn open(path: &Path) -> Result<Self, PlyError> {
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
    pub(super) fn from_bytes(path: &Path, bytes: &'a [u8]) -> Result<Self, PlyError> {
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

    pub(super) fn vertex_element(&self) -> &Element {
        &self.header.elements[self.vertex_index]
    }

    pub(super) fn invalid(&self, message: impl Into<String>) -> PlyError {
        PlyError::invalid(&self.path, message)
    }

    /// An I/O error while reading data; running out of data is reported as truncation.
    pub(super) fn read_error(&self, error: io::Error) -> PlyError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            self.invalid("truncated: the file ends before the data the header declares")
        } else {
            PlyError::io(&self.path, "read", error)
        }
    }

    /// Reads the vertex element into `widths.len()` arrays (array `a` has `widths[a]` values
    /// per vertex), placing each target property as it says.
    pub(super) fn read_vertices(
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

    pub(super) fn read_vertices_binary(
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
    pub(super) fn check_binary_size(&self) -> Result<(), PlyError> {
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
    pub(super) fn skip_binary_element(
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

    pub(super) fn skip_bytes(&mut self, bytes: u64) -> Result<(), PlyError> {
        let result = match i64::try_from(bytes) {
            Ok(offset) => self.reader.seek_relative(offset),
            Err(_) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        };
        result.map_err(|e| self.read_error(e))
    }

    pub(super) fn read_vertices_ascii(
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

pub(super) fn truncated_ascii(path: &Path, element: &str, record: u64, count: u64) -> PlyError {
    PlyError::invalid(
        path,
        format!(
            "truncated: the file ends in {element} {record} of the {count} the header declares"
        ),
    )
}

/// Whitespace-separated tokens of the ASCII data, with line numbers for error messages.
pub(super) struct AsciiTokens<'a, R> {
    pub(super) reader: &'a mut R,
    pub(super) line: String,
    pub(super) pos: usize,
    pub(super) line_number: usize,
}

impl<R: BufRead> AsciiTokens<'_, R> {
    /// The next token, or None at the end of the file.
    pub(super) fn next_token(&mut self, path: &Path) -> Result<Option<&str>, PlyError> {
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
pub(super) fn find_vertex_element(path: &Path, header: &Header) -> Result<usize, PlyError> {
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
