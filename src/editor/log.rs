//! The log panel: warnings, errors, evaluations, edits and file operations, newest last.

use bevy::prelude::Resource;
use bevy_egui::egui;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub level: LogLevel,
    /// The iteration when it happened.
    pub iteration: u32,
    pub text: String,
}

/// Everything the editor reports to the user.
#[derive(Resource, Clone, Debug, Default)]
pub struct EditorLog {
    pub entries: Vec<LogEntry>,
}

/// At most this many entries are kept (the oldest go first).
const MAX_ENTRIES: usize = 5000;

impl EditorLog {
    pub fn push(&mut self, level: LogLevel, iteration: u32, text: impl Into<String>) {
        let text = text.into();
        match level {
            LogLevel::Error => bevy::log::error!("{text}"),
            LogLevel::Warning => bevy::log::warn!("{text}"),
            LogLevel::Info => bevy::log::info!("{text}"),
        }
        self.entries.push(LogEntry {
            level,
            iteration,
            text,
        });
        if self.entries.len() > MAX_ENTRIES {
            self.entries.drain(..self.entries.len() - MAX_ENTRIES);
        }
    }

    pub fn info(&mut self, iteration: u32, text: impl Into<String>) {
        self.push(LogLevel::Info, iteration, text);
    }

    pub fn warn(&mut self, iteration: u32, text: impl Into<String>) {
        self.push(LogLevel::Warning, iteration, text);
    }

    pub fn error(&mut self, iteration: u32, text: impl Into<String>) {
        self.push(LogLevel::Error, iteration, text);
    }

    /// The latest error, if any.
    pub fn last_error(&self) -> Option<&LogEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.level == LogLevel::Error)
    }
}

/// Which entries the panel shows.
pub struct LogPanel {
    pub min_level: LogLevel,
}

impl Default for LogPanel {
    fn default() -> Self {
        Self {
            min_level: LogLevel::Info,
        }
    }
}

pub fn log_ui(ui: &mut egui::Ui, panel: &mut LogPanel, log: &EditorLog) {
    ui.horizontal(|ui| {
        ui.label("Show");
        ui.radio_value(&mut panel.min_level, LogLevel::Info, "all");
        ui.radio_value(
            &mut panel.min_level,
            LogLevel::Warning,
            "warnings and errors",
        );
        ui.radio_value(&mut panel.min_level, LogLevel::Error, "errors");
    });
    ui.separator();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .stick_to_bottom(true)
        .show(ui, |ui| {
            for entry in log.entries.iter().filter(|e| e.level >= panel.min_level) {
                let color = match entry.level {
                    LogLevel::Info => ui.visuals().text_color(),
                    LogLevel::Warning => ui.visuals().warn_fg_color,
                    LogLevel::Error => ui.visuals().error_fg_color,
                };
                ui.add(
                    egui::Label::new(
                        egui::RichText::new(format!("[{}] {}", entry.iteration, entry.text))
                            .color(color)
                            .monospace(),
                    )
                    .wrap(),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    use super::*;

    #[test]
    fn the_level_filter_hides_lesser_entries() {
        let mut log = EditorLog::default();
        log.info(10, "optimization.opacity_lr = 0.05");
        log.error(20, "cannot open broken.ply: not a PLY file");
        assert_eq!(log.last_error().unwrap().iteration, 20);
        let mut harness = Harness::new_ui_state(
            |ui, panel: &mut LogPanel| log_ui(ui, panel, &log),
            LogPanel::default(),
        );
        harness.run();
        harness.get_by_label("[10] optimization.opacity_lr = 0.05");
        harness.get_by_label("errors").click();
        harness.run();
        assert!(
            harness
                .query_by_label("[10] optimization.opacity_lr = 0.05")
                .is_none()
        );
        harness.get_by_label("[20] cannot open broken.ply: not a PLY file");
    }
}
