//! Configuration errors. Every message names where the problem is (file, line and column, or
//! the command-line option) and which field, in the form `section.field`.

use std::fmt;
use std::path::PathBuf;

use ron::error::{Error as RonError, SpannedError};

use super::locate::{TextPosition, field_at};
use super::{Config, lowercase_first, unknown_name_message};

/// Why a configuration could not be read, parsed, overridden or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The I/O error is part of the message, not a `source`: printing the chain would say the
    // cause twice.
    #[error("cannot read configuration {path}: {error}", path = path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write configuration {path}: {error}", path = path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The text is not valid RON for the schema. `origin` is usually the file name.
    #[error("{origin}:{}:{}: {message}", position.line, position.column)]
    Parse {
        origin: String,
        position: TextPosition,
        message: String,
    },
    /// A `section.field = value` assignment (from `--set`, a flag or a batch entry) was not
    /// accepted. `origin` says where it came from (e.g. `--set optimization.iterations=x`);
    /// `message` names the field.
    #[error("{origin}: {message}")]
    Override { origin: String, message: String },
    /// Values outside their limits, one per line.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
    /// Training needs a scene.
    #[error(
        "model.source_path is empty: give the scene folder with -s/--source_path, \
         --set model.source_path=DIR or in the configuration file"
    )]
    MissingSourcePath,
    #[error("cannot write the configuration as RON: {0}")]
    Serialize(String),
}

/// One value outside its limits: `origin: field = value: rule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `section.field`.
    pub field: String,
    /// The offending value, as Rust's `Debug` writes it.
    pub value: String,
    /// What the value must be.
    pub rule: String,
    /// Where the value came from (`file.ron:12:5`, `--set ...`, a flag), when known.
    pub origin: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        write!(f, "{} = {}: {}", self.field, self.value, self.rule)
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Turns ron's error into one that names the field, found by scanning `text` around the error
/// position (ron itself reports only the position and, for unknown fields, the struct's Rust
/// name).
pub(super) fn parse_error(text: &str, origin: &str, error: SpannedError) -> ConfigError {
    let position = TextPosition {
        line: error.span.start.line,
        column: error.span.start.col,
    };
    let located = field_at(text, position);
    // The section or field whose value holds the error ("" at top level).
    let scope = located.as_ref().map_or("", |field| field.path.as_str());
    let message = match &error.code {
        RonError::NoSuchStructField { found, .. } => match Config::section_fields(scope) {
            Some(fields) => unknown_name_message("field", found, scope, fields),
            None if scope.is_empty() => {
                unknown_name_message("section", found, "", Config::SECTIONS)
            }
            None => format!("unknown field \"{found}\" in {scope}"),
        },
        RonError::DuplicateStructField { field, .. } if scope.is_empty() => {
            format!("{field} is given more than once")
        }
        RonError::DuplicateStructField { field, .. } => {
            format!("{scope}.{field} is given more than once")
        }
        code => {
            let why = lowercase_first(&code.to_string());
            match located {
                // A field's value: say what the field expects, unless the value is fine on its
                // own (then the problem is around it, e.g. a missing comma).
                Some(field) if Config::field_type(&field.path).is_some() => {
                    match Config::default().set_from_ron(&field.path, &field.value_text, false) {
                        Err(ConfigError::Override { message, .. }) => message,
                        _ => format!("{}: {why}", field.path),
                    }
                }
                Some(section) => format!("{}: {why}", section.path),
                None => why,
            }
        }
    };
    ConfigError::Parse {
        origin: origin.to_string(),
        position,
        message,
    }
}
