//! Reading: the header (format, elements, properties), with a size limit and clear errors for
//! everything that is not a PLY header.

use std::io::{BufRead, Read};
use std::path::Path;

use super::PlyError;

/// A header longer than this without `end_header` is not a PLY header.
pub(super) const MAX_HEADER_BYTES: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Ascii,
    BinaryLittleEndian,
    BinaryBigEndian,
}

/// The PLY scalar types (both the classic and the sized spellings are accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ScalarType {
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
    pub(super) fn from_name(name: &str) -> Option<Self> {
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

    pub(super) fn name(self) -> &'static str {
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

    pub(super) fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }

    pub(super) fn is_integer(self) -> bool {
        !matches!(self, Self::F32 | Self::F64)
    }

    /// The value of an integer type (None for float types).
    pub(super) fn decode_integer(self, bytes: &[u8], big_endian: bool) -> Option<i64> {
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
    pub(super) fn decode_f32(self, bytes: &[u8], big_endian: bool) -> f32 {
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
    pub(super) fn integer_range(self) -> (i64, i64) {
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
    pub(super) fn parse_ascii(self, token: &str) -> Option<f32> {
        match self {
            Self::F32 => token.parse::<f32>().ok(),
            Self::F64 => token.parse::<f64>().ok().map(|v| v as f32),
            _ => self.parse_ascii_integer(token).map(|v| v as f32),
        }
    }

    pub(super) fn parse_ascii_integer(self, token: &str) -> Option<i64> {
        let value = token.parse::<i64>().ok()?;
        let (lo, hi) = self.integer_range();
        (lo..=hi).contains(&value).then_some(value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PropertyType {
    Scalar(ScalarType),
    /// A length of type `count`, then that many values of type `item`.
    List {
        count: ScalarType,
        item: ScalarType,
    },
}

#[derive(Clone, Debug)]
pub(super) struct Property {
    pub(super) name: String,
    pub(super) ty: PropertyType,
}

#[derive(Clone, Debug)]
pub(super) struct Element {
    pub(super) name: String,
    pub(super) count: u64,
    pub(super) properties: Vec<Property>,
}

impl Element {
    /// Bytes per record in a binary file, or None if the element has list properties.
    pub(super) fn record_size(&self) -> Option<usize> {
        self.properties
            .iter()
            .map(|p| match p.ty {
                PropertyType::Scalar(t) => Some(t.size()),
                PropertyType::List { .. } => None,
            })
            .sum()
    }

    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.properties.iter().position(|p| p.name == name)
    }

    /// Total bytes of the element in a binary file, or None if variable (lists) or overflowing.
    pub(super) fn binary_bytes(&self) -> Option<u64> {
        self.count.checked_mul(self.record_size()? as u64)
    }
}

#[derive(Clone, Debug)]
pub(super) struct Header {
    pub(super) encoding: Encoding,
    pub(super) elements: Vec<Element>,
    /// Number of header lines (ASCII data line numbers continue from here).
    pub(super) lines: usize,
}

/// Parses the header; leaves `reader` at the first byte of data. Returns the header and its
/// length in bytes.
pub(super) fn parse_header(
    path: &Path,
    reader: &mut impl BufRead,
) -> Result<(Header, u64), PlyError> {
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
        if read == 0 && consumed < MAX_HEADER_BYTES {
            return Err(PlyError::invalid(
                path,
                if line_number == 1 {
                    "empty file, not a PLY file".to_string()
                } else {
                    "truncated header: the file ends before 'end_header'".to_string()
                },
            ));
        }
        if !raw_line.ends_with(b"\n") {
            // A line cut off by the size limit, or the file's last bytes.
            return Err(PlyError::invalid(
                path,
                if consumed >= MAX_HEADER_BYTES {
                    "the header is longer than 1 MiB (no 'end_header' within it)".to_string()
                } else {
                    format!("header line {line_number}: the file ends before 'end_header'")
                },
            ));
        }
        let Ok(text) = std::str::from_utf8(&raw_line) else {
            return Err(unterminated(path, line_number));
        };
        let line = text.trim_end_matches(['\n', '\r']);
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(unterminated(path, line_number));
        }
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
                let shown: String = other.chars().take(40).collect();
                return Err(err(line_number, format!("unknown keyword '{shown}'")));
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

/// A header that runs into binary data: `end_header` is missing.
pub(super) fn unterminated(path: &Path, line: usize) -> PlyError {
    PlyError::invalid(
        path,
        format!(
            "header line {line} is not text: the header has no 'end_header' line before the \
             binary data"
        ),
    )
}

/// Parses `property <type> <name>` or `property list <count type> <item type> <name>`.
pub(super) fn parse_property(words: &[&str]) -> Result<Property, String> {
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
