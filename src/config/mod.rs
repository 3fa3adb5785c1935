//! The training configuration: a RON file with four sections, `model`, `optimization`,
//! `pipeline` and `run`, whose fields and defaults are those of the reference trainer
//! (graphdeco-inria's `ModelParams`, `OptimizationParams`, `PipelineParams` and the options of
//! `train.py`), plus a few of our own, each defaulting to the reference behaviour.
//!
//! A configuration file only needs the fields that differ from the defaults:
//!
//! ```ron
//! (
//!     model: (source_path: "data/garden", resolution: 4),
//!     optimization: (lambda_dssim: 0.3),
//! )
//! ```
//!
//! `configs/default.ron` spells out every field with its default. Unknown fields, wrong types
//! and out-of-range values are errors that name the file, line, column and field.
//!
//! How a training run gets its configuration (see [`resolve_training_config`]), lowest
//! precedence first: the defaults, then the config file, then the inria-style command-line
//! flags, then `--set section.field=value` assignments.

mod error;
mod locate;
mod overrides;
mod schema;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde::de::DeserializeOwned;

pub use error::{ConfigError, Problem};
pub use locate::TextPosition;
pub use overrides::{
    Assignment, ConfigOverrides, complete_training_config, random_run_id, resolve_training_config,
};
pub use schema::{
    Config, FieldInfo, ModelParams, Mutability, OptimizationParams, PipelineParams, RunParams,
};

/// The RON dialect of configuration files and `--set` values: standard RON with the
/// `implicit_some` extension, so an optional field may be written `"x"` as well as `Some("x")`.
pub(crate) fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// Parses the value of one field, written in RON (e.g. `0.3`, `[100, 200]`, `"x"`, `Some("x")`).
///
/// With `bare_words`, a convenience for string and path fields: text that is not valid RON for
/// the field's type is taken as the string itself (`model.source_path=data/garden`).
fn parse_field_value<T: DeserializeOwned>(text: &str, bare_words: bool) -> Result<T, String> {
    let options = ron_options();
    match options.from_str::<T>(text) {
        Ok(value) => Ok(value),
        Err(error) if !bare_words => Err(lowercase_first(&error.code.to_string())),
        Err(error) => {
            let as_string = ron::to_string(text).map_err(|e| e.to_string())?;
            options
                .from_str::<T>(&as_string)
                .map_err(|_| lowercase_first(&error.code.to_string()))
        }
    }
}

/// `"Expected float"` -> `"expected float"`: ron's messages start a sentence, ours continue one.
fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The name in `candidates` closest to a mistyped `name`, if it is close enough to be a
/// plausible typo (at most a third of its characters differ).
fn closest_name<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|&candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance (insertions, deletions and substitutions of characters).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// `unknown field "x" in section, expected one of: a, b, c (did you mean "y"?)`, shared by
/// file errors and `--set` errors so both read the same.
fn unknown_name_message(kind: &str, found: &str, scope: &str, expected: &[&str]) -> String {
    let mut message = format!("unknown {kind} \"{found}\"");
    if !scope.is_empty() {
        message += &format!(" in {scope}");
    }
    message += &format!(", expected one of: {}", expected.join(", "));
    if let Some(suggestion) = closest_name(found, expected) {
        message += &format!(" (did you mean \"{suggestion}\"?)");
    }
    message
}

impl Config {
    /// Reads and parses a configuration file (missing fields take their defaults). Does not
    /// validate: call [`Config::validate`] once all overrides are applied.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::from_ron_str(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` (usually the file name) starts every error message.
    pub fn from_ron_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        ron_options()
            .from_str(text)
            .map_err(|error| error::parse_error(text, origin, error))
    }

    /// The configuration as pretty RON, every field spelled out; [`Config::from_ron_str`]
    /// reads it back equal.
    pub fn to_ron_string(&self) -> Result<String, ConfigError> {
        let pretty = ron::ser::PrettyConfig::new()
            .struct_names(false)
            .compact_arrays(true);
        ron::ser::to_string_pretty(self, pretty)
            .map(|text| text + "\n")
            .map_err(|error| ConfigError::Serialize(error.to_string()))
    }

    /// Writes the configuration to `path` atomically (a run writes `<model_path>/config.ron`),
    /// creating missing parent folders.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ConfigError> {
        let text = format!(
            "// splatforge configuration (sections and fields: configs/default.ron)\n{}",
            self.to_ron_string()?
        );
        crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|error| ConfigError::Write {
            path: path.to_path_buf(),
            error,
        })
    }
}
