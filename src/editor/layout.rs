//! The docked layout of the panels (egui_dock), saved between sessions as RON.

use std::path::{Path, PathBuf};

use bevy::prelude::Resource;
use egui_dock::{DockState, NodeIndex};
use serde::{Deserialize, Serialize};

/// The editor's panels, one dock tab each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Tab {
    Viewport,
    Run,
    Inspector,
    Plots,
    Views,
    Log,
}

impl Tab {
    pub const ALL: [Tab; 6] = [
        Tab::Viewport,
        Tab::Run,
        Tab::Inspector,
        Tab::Plots,
        Tab::Views,
        Tab::Log,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Viewport => "Viewport",
            Tab::Run => "Run",
            Tab::Inspector => "Inspector",
            Tab::Plots => "Plots",
            Tab::Views => "Views",
            Tab::Log => "Log",
        }
    }
}

/// The default layout: the viewport large on the left with plots and log under it; the run
/// panel top right over the inspector and the views.
pub fn default_layout() -> DockState<Tab> {
    let mut state = DockState::new(vec![Tab::Viewport]);
    let surface = state.main_surface_mut();
    let [left, right] = surface.split_right(NodeIndex::root(), 0.64, vec![Tab::Run]);
    surface.split_below(left, 0.68, vec![Tab::Plots, Tab::Log]);
    surface.split_below(right, 0.27, vec![Tab::Inspector, Tab::Views]);
    state
}

/// The dock state and where it is saved.
#[derive(Resource)]
pub struct DockLayout {
    pub state: DockState<Tab>,
    /// The layout file; `None`: not saved (offscreen runs, tests).
    pub path: Option<PathBuf>,
    /// The text last written, to write only when the layout changed.
    saved: String,
}

impl DockLayout {
    /// The layout saved in `path`, or the default one (with the reason when the file exists
    /// but cannot be used: a layout from another version, say).
    pub fn load(path: Option<PathBuf>) -> (Self, Option<String>) {
        let mut problem = None;
        let state = match &path {
            Some(path) if path.exists() => match read_layout(path) {
                Ok(state) => Some(state),
                Err(why) => {
                    problem = Some(format!(
                        "ignoring the saved layout {}: {why}",
                        path.display()
                    ));
                    None
                }
            },
            _ => None,
        };
        let state = state.unwrap_or_else(default_layout);
        let saved = to_ron(&state).unwrap_or_default();
        (Self { state, path, saved }, problem)
    }

    /// Every tab that is open somewhere in the layout.
    pub fn open_tabs(&self) -> Vec<Tab> {
        self.state.iter_all_tabs().map(|(_, tab)| *tab).collect()
    }

    /// Opens `tab` again (in the first leaf) if it was closed.
    pub fn reopen(&mut self, tab: Tab) {
        if self.state.find_tab(&tab).is_none() {
            self.state.push_to_first_leaf(tab);
        }
    }

    /// Writes the layout if it changed since it was last written.
    pub fn save_if_changed(&mut self) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = to_ron(&self.state)?;
        if text == self.saved {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        crate::fsutil::write_atomic(path, text.as_bytes())
            .map_err(|e| format!("cannot save the layout {}: {e}", path.display()))?;
        self.saved = text;
        Ok(())
    }
}

fn to_ron(state: &DockState<Tab>) -> Result<String, String> {
    ron::ser::to_string_pretty(state, ron::ser::PrettyConfig::default()).map_err(|e| e.to_string())
}

fn read_layout(path: &Path) -> Result<DockState<Tab>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let state: DockState<Tab> = ron::from_str(&text).map_err(|e| e.to_string())?;
    // A layout missing a panel is repaired rather than refused.
    let mut layout = DockLayout {
        state,
        path: None,
        saved: String::new(),
    };
    for tab in Tab::ALL {
        layout.reopen(tab);
    }
    Ok(layout.state)
}

/// Where the layout is kept: `$XDG_CONFIG_HOME/splatforge/editor-layout.ron`, else
/// `~/.config/splatforge/editor-layout.ron`.
pub fn default_layout_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("splatforge").join("editor-layout.ron"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    #[test]
    fn the_default_layout_holds_every_panel() {
        let (layout, problem) = DockLayout::load(None);
        assert!(problem.is_none());
        let mut tabs = layout.open_tabs();
        tabs.sort_by_key(|t| Tab::ALL.iter().position(|a| a == t));
        assert_eq!(tabs, Tab::ALL);
    }

    #[test]
    fn a_changed_layout_is_saved_and_restored_and_a_bad_file_is_ignored() {
        let dir = TempDir::new("layout").unwrap();
        let path = dir.path().join("sub").join("layout.ron");
        let (mut layout, _) = DockLayout::load(Some(path.clone()));
        layout.save_if_changed().unwrap();
        assert!(!path.exists(), "an unchanged default layout is not written");
        let log = layout.state.find_tab(&Tab::Log).unwrap();
        layout.state.remove_tab(log);
        layout.state.push_to_first_leaf(Tab::Log);
        layout.save_if_changed().unwrap();
        let (again, problem) = DockLayout::load(Some(path.clone()));
        assert!(problem.is_none());
        assert_eq!(to_ron(&again.state), to_ron(&layout.state));
        assert_ne!(to_ron(&again.state), to_ron(&default_layout()));

        std::fs::write(&path, "not a layout").unwrap();
        let (fallback, problem) = DockLayout::load(Some(path.clone()));
        assert!(problem.unwrap().contains("layout.ron"));
        assert_eq!(fallback.open_tabs().len(), Tab::ALL.len());
    }
}
