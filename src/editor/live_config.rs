//! The run's configuration as the panels edit it: every change is checked like a config file
//! (the same validation), refused with a message if invalid or if the field cannot change
//! during a run, and otherwise applied at once (the trainer reads it at its next step) and
//! recorded as a [`ConfigEdit`] against the last completed iteration.

use crate::config::{Config, Mutability};
use crate::edits::{ConfigEdit, apply_edit};
use crate::train::TrainState;

/// A panel's view of the configuration for one frame.
pub struct LiveConfig<'a> {
    pub config: &'a mut Config,
    /// The run's state (`None` when no run is loaded): edits are recorded at its iteration,
    /// and a new `optimization.iterations` moves its last iteration.
    pub state: Option<&'a mut TrainState>,
    /// Edits made this frame, for the edit log.
    pub made: &'a mut Vec<ConfigEdit>,
}

impl LiveConfig<'_> {
    /// The iteration an edit made now follows.
    pub fn iteration(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.iteration)
    }

    /// Sets field `key` to `value` (RON, or a bare word for paths). Returns a message for the
    /// user when refused; a value equal to the current one is accepted and not recorded.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let field = Config::field(key).ok_or_else(|| format!("unknown field {key}"))?;
        if let Mutability::Restart(why) = field.mutability {
            return Err(format!(
                "{key} cannot change during a run: {why}. Use File > New run."
            ));
        }
        let before = self.config.get(key).map_err(|e| e.to_string())?;
        if key == "optimization.iterations"
            && let Some(state) = &self.state
            && let Ok(iterations) = value.trim().parse::<u32>()
            && iterations < state.iteration
        {
            return Err(format!(
                "{key} = {iterations}: the run is already at iteration {}",
                state.iteration
            ));
        }
        apply_edit(self.config, self.state.as_deref_mut(), key, value)
            .map_err(|error| error.to_string())?;
        let after = self.config.get(key).map_err(|e| e.to_string())?;
        if after != before {
            let iteration = self.iteration();
            self.made.push(ConfigEdit {
                iteration,
                key: key.to_string(),
                value: after,
            });
        }
        Ok(())
    }

    /// Applies every live field of `loaded` that differs (each recorded as an edit) and returns
    /// the fields that need a new run to take effect. Nothing is applied if the live values
    /// together are invalid.
    pub fn apply_loaded(&mut self, loaded: &Config) -> Result<Vec<&'static str>, String> {
        let differing = self.config.differing_fields(loaded);
        let (live, restart): (Vec<&'static str>, Vec<&'static str>) = differing
            .into_iter()
            .partition(|key| Config::field(key).is_some_and(|f| f.mutability == Mutability::Live));
        // Check the live values together first, so that a file is applied whole or not at all.
        let mut candidate = self.config.clone();
        for key in &live {
            let value = loaded.get(key).map_err(|e| e.to_string())?;
            candidate.set(key, &value).map_err(|e| e.to_string())?;
        }
        candidate.validate().map_err(|e| e.to_string())?;
        // Fields are applied one at a time; an ordering problem between two of them (e.g.
        // densify_from_iter raised above the old densify_until_iter) is solved by retrying
        // the ones refused once the others are in.
        let mut pending = live;
        while !pending.is_empty() {
            let before = pending.len();
            let mut refused = Vec::new();
            for key in pending {
                let value = loaded.get(key).map_err(|e| e.to_string())?;
                if self.set(key, &value).is_err() {
                    refused.push(key);
                }
            }
            if refused.len() == before {
                return Err(format!("cannot apply {}", refused.join(", ")));
            }
            pending = refused;
        }
        Ok(restart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_validated_recorded_and_refused_for_fixed_fields() {
        let mut config = Config::default();
        let mut state = TrainState::new(0, 30_000);
        state.iteration = 42;
        let mut made = Vec::new();
        let mut live = LiveConfig {
            config: &mut config,
            state: Some(&mut state),
            made: &mut made,
        };
        live.set("optimization.opacity_lr", "0.05").unwrap();
        live.set("optimization.opacity_lr", "0.05").unwrap(); // unchanged: not recorded
        let error = live.set("optimization.opacity_lr", "-1").unwrap_err();
        assert!(error.contains("must be finite and >= 0"), "{error}");
        let error = live.set("model.sh_degree", "1").unwrap_err();
        assert!(error.contains("cannot change during a run"), "{error}");
        let error = live.set("optimization.iterations", "10").unwrap_err();
        assert!(error.contains("already at iteration 42"), "{error}");
        assert_eq!(config.optimization.opacity_lr, 0.05);
        assert_eq!(config.model.sh_degree, 3);
        assert_eq!(
            made,
            [ConfigEdit {
                iteration: 42,
                key: "optimization.opacity_lr".into(),
                value: "0.05".into()
            }]
        );
    }

    #[test]
    fn a_loaded_config_applies_its_live_fields_and_names_the_others() {
        let mut config = Config::default();
        let mut loaded = Config::default();
        loaded.optimization.densify_from_iter = 20_000;
        loaded.optimization.densify_until_iter = 25_000;
        loaded.model.sh_degree = 1;
        let mut made = Vec::new();
        let mut live = LiveConfig {
            config: &mut config,
            state: None,
            made: &mut made,
        };
        let restart = live.apply_loaded(&loaded).unwrap();
        assert_eq!(restart, ["model.sh_degree"]);
        assert_eq!(config.optimization.densify_from_iter, 20_000);
        assert_eq!(config.optimization.densify_until_iter, 25_000);
        assert_eq!(made.len(), 2);

        let mut bad = Config::default();
        bad.optimization.lambda_dssim = 2.0;
        let mut live = LiveConfig {
            config: &mut config,
            state: None,
            made: &mut made,
        };
        let error = live.apply_loaded(&bad).unwrap_err();
        assert!(error.contains("lambda_dssim"), "{error}");
        assert_eq!(config.optimization.lambda_dssim, 0.2);
    }
}
