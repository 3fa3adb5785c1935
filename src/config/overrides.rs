//! Overrides on top of a configuration file, and the resolution of a training configuration.
//!
//! Both `splatforge train` (its flags and `--set`) and a batch entry ("a config file plus
//! overrides") turn what they were given into a [`ConfigOverrides`]: an ordered list of
//! `section.field = value` assignments, values written in RON. Later assignments win, so the
//! order of the list is the precedence order.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::locate::position_of_field;
use super::{Config, ConfigError};

/// One `section.field = value` assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// `section.field`, e.g. `optimization.lambda_dssim`.
    pub key: String,
    /// The value in RON, e.g. `0.3`, `[100, 200]`, `"data/x"`, `Some("ckpt")`; string and
    /// path fields also accept a bare word.
    pub value: String,
    /// Where it came from, for error messages (e.g. `--set optimization.lambda_dssim=0.3`,
    /// `--sh_degree`).
    pub origin: String,
}

/// An ordered list of assignments applied on top of a configuration; later ones win.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigOverrides {
    assignments: Vec<Assignment>,
}

impl ConfigOverrides {
    pub fn new() -> Self {
        Self::default()
    }

    /// The assignments in the order they are applied.
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    pub fn is_empty(&self) -> bool {
        self.assignments.is_empty()
    }

    /// Adds `key = value` with the value already written in RON.
    pub fn push(
        &mut self,
        key: impl Into<String>,
        value_ron: impl Into<String>,
        origin: impl Into<String>,
    ) {
        self.assignments.push(Assignment {
            key: key.into(),
            value: value_ron.into(),
            origin: origin.into(),
        });
    }

    /// Adds `key = value` for a typed value (it is written in RON here), e.g. from a parsed
    /// command-line flag.
    pub fn push_value<T: Serialize>(
        &mut self,
        key: &str,
        value: &T,
        origin: impl Into<String>,
    ) -> Result<(), ConfigError> {
        let origin = origin.into();
        let text = ron::to_string(value).map_err(|error| ConfigError::Override {
            origin: origin.clone(),
            message: format!("{key}: cannot write the value as RON: {error}"),
        })?;
        self.push(key, text, origin);
        Ok(())
    }

    /// Adds an assignment written `section.field=value` (the form of `--set`). The key is
    /// checked when the overrides are applied.
    pub fn push_set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(ConfigError::Override {
                origin: format!("--set {assignment}"),
                message: "expected section.field=value (the value in RON syntax)".to_string(),
            });
        };
        self.push(key.trim(), value.trim(), format!("--set {assignment}"));
        Ok(())
    }

    /// Applies every assignment in order. Errors name the assignment's origin and key.
    pub fn apply(&self, config: &mut Config) -> Result<(), ConfigError> {
        for assignment in &self.assignments {
            config
                .set(&assignment.key, &assignment.value)
                .map_err(|error| match error {
                    ConfigError::Override { message, .. } => ConfigError::Override {
                        origin: assignment.origin.clone(),
                        message,
                    },
                    other => other,
                })?;
        }
        Ok(())
    }

    /// The origin of the last assignment to `key`, if any assigns it.
    pub fn origin_of(&self, key: &str) -> Option<&str> {
        self.assignments
            .iter()
            .rev()
            .find(|assignment| assignment.key == key)
            .map(|assignment| assignment.origin.as_str())
    }
}

/// The configuration of a training run, from lowest to highest precedence: the defaults, the
/// file (if any), then `overrides` in order. Then, as inria's `train.py` does: the final
/// iteration is added to `run.save_iterations`, and an empty `model.model_path` becomes
/// `output/<10 random hex characters>`. Errors if the result is invalid (each problem names
/// the file position or the override it came from) or has no `model.source_path`.
pub fn resolve_training_config(
    file: Option<&Path>,
    overrides: &ConfigOverrides,
) -> Result<Config, ConfigError> {
    let (mut config, file_text) = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.to_path_buf(),
                error,
            })?;
            (
                Config::from_ron_str(&text, &path.display().to_string())?,
                Some((path, text)),
            )
        }
        None => (Config::default(), None),
    };
    overrides.apply(&mut config)?;

    let mut problems = config.problems();
    for problem in &mut problems {
        problem.origin = overrides
            .origin_of(&problem.field)
            .map(str::to_string)
            .or_else(|| {
                let (path, text) = file_text.as_ref()?;
                let position = position_of_field(text, &problem.field)?;
                Some(format!("{}:{position}", path.display()))
            });
    }
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    complete_training_config(config)
}

/// Validates a configuration built in code and completes it as train.py does: `source_path` is
/// required, an empty `model_path` becomes `output/<10 hex>`, and the final iteration is saved.
pub fn complete_training_config(mut config: Config) -> Result<Config, ConfigError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(ConfigError::Invalid(problems));
    }
    if config.model.source_path.as_os_str().is_empty() {
        return Err(ConfigError::MissingSourcePath);
    }
    if config.model.model_path.as_os_str().is_empty() {
        config.model.model_path = PathBuf::from("output").join(random_run_id());
    }
    let last = config.optimization.iterations;
    if !config.run.save_iterations.contains(&last) {
        config.run.save_iterations.push(last);
    }
    Ok(config)
}

/// 10 random lowercase hex characters, like the reference's `uuid4()[:10]` run folder names.
pub fn random_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per process; the clock separates calls.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    let mut rng = crate::rng::Pcg32::new(hasher.finish(), 0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..10)
        .map(|_| char::from(HEX[rng.below(16) as usize]))
        .collect()
}
