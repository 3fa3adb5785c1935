//! The inspector: every field of the RON configuration, grouped by section, built from the
//! schema's field table (`Config::fields`), so each field shows its doc comment as a tooltip
//! and whether it can change during a run.
//!
//! Live fields apply at the next step; fields fixed for the run are read-only with the reason
//! shown. Values are typed as in a config file (RON) and checked by the same validation; a
//! refused value stays in its box, marked, with the message above the fields.

use std::collections::HashMap;

use bevy_egui::egui;

use super::live_config::LiveConfig;
use crate::config::{Config, FieldInfo, Mutability};

/// A message shown at the top of a panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanelMessage {
    pub error: bool,
    pub text: String,
}

impl PanelMessage {
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            error: false,
            text: text.into(),
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            error: true,
            text: text.into(),
        }
    }

    pub fn show(&self, ui: &mut egui::Ui) {
        let color = if self.error {
            ui.visuals().error_fg_color
        } else {
            ui.visuals().weak_text_color()
        };
        ui.add(egui::Label::new(egui::RichText::new(&self.text).color(color)).wrap());
    }
}

/// What the inspector asks of the app (file dialogs live outside the panel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectorAction {
    SaveConfig,
    LoadConfig,
}

/// The inspector's own state between frames.
#[derive(Default)]
pub struct InspectorPanel {
    /// Text being typed per field (`section.field`), until applied.
    drafts: HashMap<&'static str, String>,
    /// Fields whose last typed value was refused.
    refused: HashMap<&'static str, String>,
    /// Only fields whose name contains this are shown.
    pub filter: String,
    pub message: Option<PanelMessage>,
}

impl InspectorPanel {
    /// Forgets typed text (after the configuration was replaced, e.g. by loading a file).
    pub fn reset_drafts(&mut self) {
        self.drafts.clear();
        self.refused.clear();
    }
}

/// Draws the inspector. `running`: a run exists, so fixed fields are read-only.
pub fn inspector_ui(
    ui: &mut egui::Ui,
    panel: &mut InspectorPanel,
    live: &mut LiveConfig,
    running: bool,
) -> Option<InspectorAction> {
    let mut action = None;
    ui.horizontal(|ui| {
        if ui.button("Save config…").clicked() {
            action = Some(InspectorAction::SaveConfig);
        }
        if ui.button("Load config…").clicked() {
            action = Some(InspectorAction::LoadConfig);
        }
        let label = ui.label("Filter");
        ui.add(egui::TextEdit::singleline(&mut panel.filter).desired_width(120.0))
            .labelled_by(label.id);
    });
    if let Some(message) = &panel.message {
        message.show(ui);
    }
    ui.separator();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for &section in Config::SECTIONS {
                let fields: Vec<FieldInfo> = Config::fields()
                    .filter(|f| f.section == section && f.name.contains(panel.filter.trim()))
                    .collect();
                if fields.is_empty() {
                    continue;
                }
                egui::CollapsingHeader::new(section)
                    .default_open(true)
                    .show(ui, |ui| {
                        egui::Grid::new(("inspector", section))
                            .num_columns(2)
                            .striped(true)
                            .show(ui, |ui| {
                                for field in &fields {
                                    field_row(ui, panel, live, field, running);
                                    ui.end_row();
                                }
                            });
                    });
            }
        });
    action
}

/// One field: its name (tooltip: the doc comment) and its value.
fn field_row(
    ui: &mut egui::Ui,
    panel: &mut InspectorPanel,
    live: &mut LiveConfig,
    field: &FieldInfo,
    running: bool,
) {
    let current = live.config.get(field.key).unwrap_or_default();
    let fixed_reason = match field.mutability {
        Mutability::Restart(why) if running => Some(why),
        _ => None,
    };
    let tooltip = format!(
        "{}\n\n{}: {}. {}",
        field.doc_text(),
        field.key,
        field.expected(),
        match field.mutability {
            Mutability::Live => "Changes apply at the next step.".to_string(),
            Mutability::Restart(why) => format!("Fixed during a run: {why}."),
        }
    );
    if field.rust_type == "bool" && fixed_reason.is_none() {
        // A switch is its own label: the name beside the box, the value in the second column.
        let mut value = current == "true";
        let response = ui.checkbox(&mut value, field.name).on_hover_text(&tooltip);
        ui.label(egui::RichText::new(&current).monospace().weak());
        if response.changed() {
            let result = live.set(field.key, if value { "true" } else { "false" });
            report(panel, live, field, result);
        }
        return;
    }
    let label = ui.label(field.name).on_hover_text(&tooltip);

    if let Some(reason) = fixed_reason {
        ui.vertical(|ui| {
            ui.add(egui::Label::new(egui::RichText::new(&current).monospace()).truncate())
                .labelled_by(label.id)
                .on_hover_text(&tooltip);
            ui.add(
                egui::Label::new(
                    egui::RichText::new(format!("fixed: {reason}"))
                        .weak()
                        .small(),
                )
                .wrap(),
            );
        });
        return;
    }

    let mut result = None;
    let draft = panel
        .drafts
        .entry(field.key)
        .or_insert_with(|| current.clone());
    let refused = panel.refused.contains_key(field.key);
    let mut edit = egui::TextEdit::singleline(draft)
        .font(egui::TextStyle::Monospace)
        .desired_width(f32::INFINITY);
    if refused {
        edit = edit.text_color(ui.visuals().error_fg_color);
    }
    let response = ui.add(edit).labelled_by(label.id).on_hover_text(&tooltip);
    if response.lost_focus() {
        if *draft != current || refused {
            let value = draft.clone();
            result = Some(live.set(field.key, &value));
        }
    } else if !response.has_focus() && !refused {
        // Follow changes made elsewhere (a loaded file, the run panel).
        *draft = current;
    }
    if let Some(result) = result {
        report(panel, live, field, result);
    }
}

/// Shows the outcome of an edit: the new value and from when it applies, or why it was
/// refused (the refused text stays in its box).
fn report(
    panel: &mut InspectorPanel,
    live: &LiveConfig,
    field: &FieldInfo,
    result: Result<(), String>,
) {
    match result {
        Ok(()) => {
            panel.refused.remove(field.key);
            let value = live.config.get(field.key).unwrap_or_default();
            panel.drafts.insert(field.key, value.clone());
            panel.message = Some(PanelMessage::info(format!(
                "{} = {value} from iteration {}",
                field.key,
                live.iteration() + 1
            )));
        }
        Err(message) => {
            panel.refused.insert(field.key, message.clone());
            panel.message = Some(PanelMessage::error(message));
        }
    }
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    use super::*;
    use crate::edits::ConfigEdit;
    use crate::train::TrainState;

    struct Inspected {
        panel: InspectorPanel,
        config: Config,
        state: TrainState,
        made: Vec<ConfigEdit>,
        action: Option<InspectorAction>,
    }

    fn harness() -> Harness<'static, Inspected> {
        let mut state = TrainState::new(0, 30_000);
        state.iteration = 250;
        let inspected = Inspected {
            panel: InspectorPanel::default(),
            config: Config::default(),
            state,
            made: Vec::new(),
            action: None,
        };
        Harness::builder()
            .with_size(egui::vec2(700.0, 3000.0))
            .build_ui_state(
                |ui, s: &mut Inspected| {
                    let mut live = LiveConfig {
                        config: &mut s.config,
                        state: Some(&mut s.state),
                        made: &mut s.made,
                    };
                    if let Some(action) = inspector_ui(ui, &mut s.panel, &mut live, true) {
                        s.action = Some(action);
                    }
                },
                inspected,
            )
    }

    /// Focuses the field, replaces its text and presses Enter, as a user does.
    fn type_into(harness: &mut Harness<'_, Inspected>, label: &str, text: &str) {
        harness.get_by_label(label).focus();
        harness.run();
        harness.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
        harness.run();
        harness.get_by_label(label).type_text(text);
        harness.run();
        harness.key_press(egui::Key::Enter);
        harness.run();
    }

    #[test]
    fn editing_a_learning_rate_applies_it_and_records_the_edit() {
        let mut harness = harness();
        harness.run();
        type_into(&mut harness, "opacity_lr", "0.05");
        let s = harness.state();
        assert_eq!(s.config.optimization.opacity_lr, 0.05);
        assert_eq!(
            s.made,
            [ConfigEdit {
                iteration: 250,
                key: "optimization.opacity_lr".into(),
                value: "0.05".into(),
            }]
        );
        let message = s.panel.message.clone().unwrap();
        assert!(!message.error);
        assert_eq!(
            message.text,
            "optimization.opacity_lr = 0.05 from iteration 251"
        );
    }

    #[test]
    fn an_invalid_value_is_refused_with_the_validation_message() {
        let mut harness = harness();
        harness.run();
        type_into(&mut harness, "scaling_lr", "-0.5");
        let s = harness.state();
        assert_eq!(s.config.optimization.scaling_lr, 0.005, "config unchanged");
        assert!(s.made.is_empty());
        let message = s.panel.message.clone().unwrap();
        assert!(message.error);
        assert_eq!(
            message.text,
            "optimization.scaling_lr = -0.5: must be finite and >= 0"
        );
        // The message is on screen and the refused text stays in the box.
        harness.get_by_label(&message.text);
        assert_eq!(
            harness.get_by_label("scaling_lr").value().as_deref(),
            Some("-0.5")
        );

        type_into(&mut harness, "densify_until_iter", "100");
        let s = harness.state();
        assert_eq!(s.config.optimization.densify_until_iter, 15_000);
        assert!(
            s.panel
                .message
                .as_ref()
                .unwrap()
                .text
                .contains("densify_from_iter = 500: must be <= optimization.densify_until_iter")
        );
        type_into(&mut harness, "position_lr_max_steps", "many");
        let text = harness.state().panel.message.clone().unwrap().text;
        assert!(text.contains("expected a whole number >= 0"), "{text}");
    }

    #[test]
    fn fixed_fields_are_read_only_with_their_reason_and_booleans_toggle() {
        let mut harness = harness();
        harness.run();
        // sh_degree is shown as text with the reason, not as an editable box.
        harness
            .get_by_label_contains("fixed: the colour buffers of every Gaussian are sized for it");
        assert!(
            harness
                .query_by_role_and_label(egui::accesskit::Role::TextInput, "sh_degree")
                .is_none()
        );
        harness.get_by_label("random_background").click();
        harness.run();
        let s = harness.state();
        assert!(s.config.optimization.random_background);
        assert_eq!(s.made.len(), 1);
        assert_eq!(s.made[0].key, "optimization.random_background");
        assert_eq!(s.made[0].value, "true");
        harness.get_by_label("Load config…").click();
        harness.run();
        assert_eq!(harness.state().action, Some(InspectorAction::LoadConfig));
    }

    #[test]
    fn every_field_of_the_schema_has_a_row() {
        let mut harness = harness();
        harness.run();
        for field in Config::fields() {
            harness.get_by_label(field.name);
        }
    }
}
