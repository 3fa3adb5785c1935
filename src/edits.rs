//! Live configuration edits, recorded against the iteration they follow, and their replay.
//!
//! The editor changes the configuration between training steps. Each change is one
//! [`ConfigEdit`]: after iteration `iteration` completed, field `key` took the value `value`
//! (written in RON, as `--set` takes it). The editor writes the list to `<output>/edits.ron`;
//! `splatforge train --config <output>/config.ron --edits <output>/edits.ron` applies the same
//! edits at the same iterations ([`EditReplay`]), so an editor session can be re-run headless
//! and every iteration sees the configuration it saw in the editor.
//!
//! Both sides apply an edit with [`apply_edit`], which also keeps the run state in step with
//! the fields it depends on (the last iteration follows `optimization.iterations`).

use std::path::{Path, PathBuf};

use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, Mutability};
use crate::train::{TrainConfig, TrainState};

/// One live change of a configuration field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigEdit {
    /// The last iteration completed before the edit: it applies from `iteration + 1` on.
    pub iteration: u32,
    /// `section.field`, e.g. `optimization.opacity_lr`.
    pub key: String,
    /// The new value written in RON, e.g. `0.05`, `[7000, 30000]`.
    pub value: String,
}

/// Why an edits file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EditsError {
    #[error("cannot read the edits file {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the edits file {path}: {source}", path = path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}", path = path.display())]
    Invalid { path: PathBuf, message: String },
}

/// The header of an edits file: what it is and how to replay it.
const FILE_HEADER: &str = "// splatforge editor: live configuration edits; each applies after its iteration.\n\
     // Replay headless: splatforge train --config config.ron --edits edits.ron (paths in the run folder)\n";

/// The edits as the text of an edits file (RON).
pub fn edits_to_ron(edits: &[ConfigEdit]) -> String {
    let pretty = ron::ser::PrettyConfig::new().struct_names(false);
    // A list of plain structs of strings and integers always serialises.
    let body = ron::ser::to_string_pretty(edits, pretty).unwrap_or_else(|_| "[]".to_string());
    format!("{FILE_HEADER}{body}\n")
}

/// Writes `edits` to `path` atomically.
pub fn write_edits(path: &Path, edits: &[ConfigEdit]) -> Result<(), EditsError> {
    crate::fsutil::write_atomic(path, edits_to_ron(edits).as_bytes()).map_err(|source| {
        EditsError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Reads an edits file and checks it: every key names a field that may change during a run,
/// every value parses as that field's type, and the iterations never go back.
pub fn read_edits(path: &Path) -> Result<Vec<ConfigEdit>, EditsError> {
    let text = std::fs::read_to_string(path).map_err(|source| EditsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| EditsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let edits: Vec<ConfigEdit> = ron::Options::default().from_str(&text).map_err(|error| {
        invalid(format!(
            "{}:{}: {} (expected a list of (iteration: N, key: \"section.field\", value: \"RON\"))",
            error.span.start.line, error.span.start.col, error.code
        ))
    })?;
    let mut scratch = Config::default();
    let mut previous = 0;
    for (index, edit) in edits.iter().enumerate() {
        let entry = format!(
            "edit {} (iteration {}, {})",
            index + 1,
            edit.iteration,
            edit.key
        );
        check_live(&edit.key).map_err(|why| invalid(format!("{entry}: {why}")))?;
        scratch
            .set(&edit.key, &edit.value)
            .map_err(|error| invalid(format!("{entry}: {error}")))?;
        if edit.iteration < previous {
            return Err(invalid(format!(
                "{entry}: the iterations must not decrease (the edit before is at {previous})"
            )));
        }
        previous = edit.iteration;
    }
    Ok(edits)
}

/// `Ok` if field `key` exists and may change during a run; otherwise why not.
pub fn check_live(key: &str) -> Result<(), String> {
    match Config::field(key).map(|field| field.mutability) {
        Some(Mutability::Live) => Ok(()),
        Some(Mutability::Restart(why)) => Err(format!("{key} cannot change during a run: {why}")),
        None => Err(format!("unknown field {key}")),
    }
}

/// Applies `edit` to the run's configuration (the value must be valid for the field and leave
/// the configuration valid) and keeps the run state in step: a new `optimization.iterations`
/// moves the last iteration and, as `train.py` always saves the final step, adds it to
/// `run.save_iterations`.
pub fn apply_edit(
    config: &mut Config,
    state: Option<&mut TrainState>,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let mut changed = config.clone();
    changed.set(key, value)?;
    changed.validate()?;
    if key == "optimization.iterations" {
        let last = changed.optimization.iterations;
        if !changed.run.save_iterations.contains(&last) {
            changed.run.save_iterations.push(last);
        }
        if let Some(state) = state {
            state.last_iteration = last;
            state.finished = state.iteration >= last;
        }
    }
    *config = changed;
    Ok(())
}

/// The edits still to replay, in order.
#[derive(Resource, Clone, Debug, Default)]
pub struct EditReplay {
    pending: std::collections::VecDeque<ConfigEdit>,
    /// Edits applied so far.
    pub applied: usize,
}

impl EditReplay {
    pub fn new(edits: Vec<ConfigEdit>) -> Self {
        Self {
            pending: edits.into(),
            applied: 0,
        }
    }

    /// Edits not applied yet.
    pub fn remaining(&self) -> usize {
        self.pending.len()
    }
}

/// Replays a list of edits in a training app: each edit is applied at the end of the step of
/// its iteration (edits at the starting iteration before the first step), where the editor
/// applies it between frames. Add with `train::TrainPlugin`.
pub struct EditReplayPlugin(pub Vec<ConfigEdit>);

impl Plugin for EditReplayPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(EditReplay::new(self.0.clone()))
            .add_systems(
                Startup,
                replay_due_edits.after(crate::train::setup::setup_training),
            )
            // After every stage that reads the configuration. `finish_iteration` may run on
            // either side: `apply_edit` decides whether the run is finished from the new
            // last iteration itself.
            .add_systems(
                crate::train::TrainStep,
                replay_due_edits
                    .in_set(crate::train::TrainSet::Finish)
                    .after(crate::train::progress::update_progress),
            );
    }
}

/// Applies the edits whose iteration has been completed. A replayed edit was valid in the
/// editor, so a failure here means the file was changed by hand: the run stops with the error.
pub fn replay_due_edits(
    mut replay: ResMut<EditReplay>,
    mut config: ResMut<TrainConfig>,
    state: Option<ResMut<TrainState>>,
    mut failure: ResMut<crate::train::TrainFailure>,
) {
    let Some(mut state) = state else {
        return; // training did not start
    };
    while replay
        .pending
        .front()
        .is_some_and(|edit| edit.iteration <= state.iteration)
    {
        let Some(edit) = replay.pending.pop_front() else {
            break;
        };
        if let Err(error) = apply_edit(&mut config, Some(&mut state), &edit.key, &edit.value) {
            failure.record(
                crate::train::TrainSet::Finish,
                state.iteration,
                format!(
                    "replaying the edit after iteration {} ({} = {}): {error}",
                    edit.iteration, edit.key, edit.value
                ),
            );
            return;
        }
        replay.applied += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    fn edit(iteration: u32, key: &str, value: &str) -> ConfigEdit {
        ConfigEdit {
            iteration,
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    #[test]
    fn edits_round_trip_through_the_file() {
        let dir = TempDir::new("edits").unwrap();
        let path = dir.path().join("edits.ron");
        let edits = vec![
            edit(0, "optimization.opacity_lr", "0.05"),
            edit(120, "run.test_iterations", "[200, 300]"),
            edit(120, "optimization.lambda_dssim", "0.3"),
        ];
        write_edits(&path, &edits).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("// splatforge editor"));
        assert_eq!(read_edits(&path).unwrap(), edits);
    }

    #[test]
    fn bad_edits_files_are_refused_with_the_file_and_the_edit_named() {
        let dir = TempDir::new("edits-bad").unwrap();
        let path = dir.path().join("edits.ron");
        let message = |edits: &[ConfigEdit]| {
            write_edits(&path, edits).unwrap();
            read_edits(&path).unwrap_err().to_string()
        };
        let m = message(&[edit(5, "model.sh_degree", "1")]);
        assert!(m.contains("edits.ron") && m.contains("edit 1 (iteration 5, model.sh_degree)"));
        assert!(m.contains("cannot change during a run"), "{m}");
        let m = message(&[edit(5, "optimization.opacity_lr", "fast")]);
        assert!(m.contains("expected a number"), "{m}");
        let m = message(&[edit(5, "optimization.nope", "1")]);
        assert!(m.contains("unknown field optimization.nope"), "{m}");
        let m = message(&[
            edit(5, "optimization.opacity_lr", "0.1"),
            edit(4, "optimization.opacity_lr", "0.2"),
        ]);
        assert!(
            m.contains("edit 2") && m.contains("must not decrease"),
            "{m}"
        );
        std::fs::write(&path, "[(iteration: 1, key: 3)]").unwrap();
        let m = read_edits(&path).unwrap_err().to_string();
        assert!(
            m.contains("edits.ron: 1:") && m.contains("expected a list"),
            "{m}"
        );
        let m = read_edits(&dir.path().join("missing.ron"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("cannot read the edits file") && m.contains("missing.ron"));
    }

    #[test]
    fn apply_edit_validates_and_moves_the_last_iteration() {
        let mut config = Config::default();
        config.optimization.iterations = 100;
        config.run.save_iterations = vec![100];
        let mut state = TrainState::new(0, 100);
        state.iteration = 100;
        state.finished = true;

        let error = apply_edit(
            &mut config,
            Some(&mut state),
            "optimization.opacity_lr",
            "-1",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("must be finite and >= 0"), "{error}");
        let error = apply_edit(&mut config, None, "optimization.densify_from_iter", "20000")
            .unwrap_err()
            .to_string();
        assert!(error.contains("densify_until_iter"), "{error}");
        assert_eq!(
            config.optimization.opacity_lr, 0.025,
            "refused edits change nothing"
        );

        apply_edit(
            &mut config,
            Some(&mut state),
            "optimization.iterations",
            "250",
        )
        .unwrap();
        assert_eq!(config.optimization.iterations, 250);
        assert_eq!(config.run.save_iterations, [100, 250]);
        assert_eq!(state.last_iteration, 250);
        assert!(!state.finished, "a finished run continues to the new end");
    }
}
