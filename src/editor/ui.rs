//! The editor's window content: the menu bar and the docked panels. Each panel is a plain
//! function over `egui::Ui` in its own file; this system gathers what they show from the
//! world, calls them through the dock's tab viewer, and hands what they asked for on.

use std::path::PathBuf;

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, egui};
use egui_dock::{DockArea, TabViewer};
use egui_file_dialog::FileDialog;

use super::control::{CurrentStatus, ViewStats};
use super::inspector::{InspectorAction, InspectorPanel, PanelMessage, inspector_ui};
use super::layout::{DockLayout, Tab, default_layout};
use super::live_config::LiveConfig;
use super::log::{EditorLog, LogPanel, log_ui};
use super::plots::{PlotSeries, PlotsPanel, RunHistory, plots_ui};
use super::run::{EditorRun, OpenRequest, PendingOpen};
use super::run_panel::{RunControl, RunPanel, RunPhase, run_panel_ui};
use super::view_images::SelectedView;
use super::view_list::ViewList;
use super::viewport::{ViewMarker, ViewportCamera, ViewportOptions, viewport_ui};
use super::viewport_scene::ViewportTarget;
use super::views_panel::{ViewRow, ViewsAction, ViewsPanel, views_ui};
use crate::config::Config;
use crate::edits::ConfigEdit;
use crate::train::{TrainConfig, TrainMetrics, TrainState};

/// The panels' own state between frames.
#[derive(Resource, Default)]
pub struct Panels {
    pub inspector: InspectorPanel,
    pub run: RunPanel,
    pub plots: PlotsPanel,
    pub views: ViewsPanel,
    pub log: LogPanel,
}

/// What a file dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPurpose {
    OpenScene,
    OpenPly,
    OpenCheckpoint,
    LoadConfig,
    SaveConfig,
}

/// The file dialog and what it is for.
#[derive(Resource, Default)]
pub struct Dialogs {
    pub dialog: Option<(DialogPurpose, FileDialog)>,
}

impl Dialogs {
    fn open(&mut self, purpose: DialogPurpose) {
        let mut dialog = FileDialog::new().title(match purpose {
            DialogPurpose::OpenScene => "Open a scene folder (COLMAP or Blender)",
            DialogPurpose::OpenPly => "Open a 3DGS PLY",
            DialogPurpose::OpenCheckpoint => "Open a checkpoint (.sfck)",
            DialogPurpose::LoadConfig => "Load a configuration (.ron)",
            DialogPurpose::SaveConfig => "Save the configuration (.ron)",
        });
        match purpose {
            DialogPurpose::OpenScene => dialog.pick_directory(),
            DialogPurpose::SaveConfig => {
                dialog = dialog.default_file_name("config.ron");
                dialog.save_file();
            }
            _ => dialog.pick_file(),
        }
        self.dialog = Some((purpose, dialog));
    }
}

/// What the panels asked for that needs the whole world (carried out in the next update).
#[derive(Resource, Default)]
pub struct UiRequests {
    pub open: Vec<OpenRequest>,
    /// Configuration files to load into the run.
    pub load_config: Vec<PathBuf>,
    pub quit: bool,
}

/// Where each panel was drawn in the last frame (tests, screenshots).
#[derive(Resource, Default, Debug)]
pub struct DrawnTabs(pub Vec<(Tab, egui::Rect)>);

#[derive(SystemParam)]
pub struct EditorState<'w> {
    panels: ResMut<'w, Panels>,
    layout: ResMut<'w, DockLayout>,
    control: ResMut<'w, RunControl>,
    status: Res<'w, CurrentStatus>,
    log: ResMut<'w, EditorLog>,
    run: ResMut<'w, EditorRun>,
    dialogs: ResMut<'w, Dialogs>,
    pending: Res<'w, PendingOpen>,
    requests: ResMut<'w, UiRequests>,
    drawn: ResMut<'w, DrawnTabs>,
}

#[derive(SystemParam)]
pub struct TrainingData<'w> {
    config: Option<ResMut<'w, TrainConfig>>,
    state: Option<ResMut<'w, TrainState>>,
    metrics: Option<Res<'w, TrainMetrics>>,
    history: Res<'w, RunHistory>,
    views: Res<'w, ViewList>,
    stats: Res<'w, ViewStats>,
    selected: ResMut<'w, SelectedView>,
}

#[derive(SystemParam)]
pub struct ViewportData<'w> {
    camera: ResMut<'w, ViewportCamera>,
    options: ResMut<'w, ViewportOptions>,
    target: ResMut<'w, ViewportTarget>,
}

/// Draws the menu bar and the dock, and routes what the panels asked for.
pub fn editor_ui(
    mut contexts: EguiContexts,
    mut editor: EditorState,
    mut training: TrainingData,
    mut viewport: ViewportData,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "splatforge editor".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let mut menu_action = None;
    egui::Panel::top("menu bar").show(&mut root, |ui| {
        menu_action = menu_bar(ui, &mut editor);
    });

    let mut scratch_config = Config::default();
    let mut made: Vec<ConfigEdit> = Vec::new();
    let running = training.state.is_some();
    let rows = view_rows(&training.views, &training.stats);
    let markers: Vec<ViewMarker> = training
        .views
        .0
        .iter()
        .map(|v| ViewMarker {
            index: v.index,
            camera: v.camera.clone(),
        })
        .collect();
    // The viewport camera's image: the live cloud (the game plugin's renderer) and gizmos.
    let layers: Vec<egui::TextureId> = viewport.target.texture.into_iter().collect();
    let mut actions = Vec::new();
    editor.drawn.0.clear();
    {
        let EditorState {
            panels,
            layout,
            control,
            status,
            log,
            drawn,
            ..
        } = &mut editor;
        let live = LiveConfig {
            config: training
                .config
                .as_deref_mut()
                .map_or(&mut scratch_config, |c| &mut c.0),
            state: training.state.as_deref_mut(),
            made: &mut made,
        };
        let metrics = training.metrics.as_deref();
        let mut tabs = Tabs {
            panels,
            control,
            status: &status.0,
            live,
            running,
            plots: PlotSeries {
                loss: metrics.map_or(&[], |m| &m.loss),
                evaluations: metrics.map_or(&[], |m| &m.evaluations),
                gaussians: metrics.map_or(&[], |m| &m.gaussians),
                history: &training.history,
            },
            log,
            rows: &rows,
            selected: &mut training.selected,
            viewport: &mut viewport,
            layers: &layers,
            markers: &markers,
            actions: &mut actions,
            drawn,
        };
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(&mut root, |ui| {
                DockArea::new(&mut layout.state)
                    .style(egui_dock::Style::from_egui(ui.style().as_ref()))
                    .show_leaf_collapse_buttons(false)
                    .show_inside(ui, &mut tabs);
            });
    }

    // Where the selection is, the view images follow.
    training.selected.index = editor.panels.views.selected;
    if let Some(action) = menu_action {
        actions.push(action);
    }
    for action in actions {
        carry_out(action, &mut editor, &mut viewport, &training.views);
    }
    let iteration = training.state.as_ref().map_or(0, |s| s.iteration);
    super::run::record_edits(&mut editor.run, &mut editor.log, made);

    // The file dialog, and what was picked in it.
    if let Some((purpose, dialog)) = &mut editor.dialogs.dialog {
        let purpose = *purpose;
        dialog.update(&ctx);
        if let Some(path) = dialog.take_picked() {
            editor.dialogs.dialog = None;
            picked(
                purpose,
                path,
                &mut editor,
                training.config.as_deref_mut(),
                iteration,
            );
        } else if matches!(
            dialog.state(),
            egui_file_dialog::DialogState::Closed | egui_file_dialog::DialogState::Cancelled
        ) {
            editor.dialogs.dialog = None;
        }
    }
    Ok(())
}

/// The rows of the views panel.
fn view_rows(views: &ViewList, stats: &ViewStats) -> Vec<ViewRow> {
    views
        .0
        .iter()
        .map(|v| ViewRow {
            index: v.index,
            name: v.name.clone(),
            split: v.split,
            loss: stats.loss.get(v.index).copied().flatten(),
            psnr: stats.psnr.get(v.index).copied().flatten(),
        })
        .collect()
}

/// Something a panel or the menu asked for.
enum UiAction {
    Dialog(DialogPurpose),
    LookThrough(usize),
    ResetLayout,
    Reopen(Tab),
    Quit,
    Run(super::run_panel::RunRequest),
}

fn menu_bar(ui: &mut egui::Ui, editor: &mut EditorState) -> Option<UiAction> {
    let mut action = None;
    egui::MenuBar::new().ui(ui, |ui| {
        ui.menu_button("File", |ui| {
            for (label, purpose) in [
                ("Open scene…", DialogPurpose::OpenScene),
                ("Open PLY…", DialogPurpose::OpenPly),
                ("Open checkpoint…", DialogPurpose::OpenCheckpoint),
                ("Load config…", DialogPurpose::LoadConfig),
                ("Save config…", DialogPurpose::SaveConfig),
            ] {
                if ui.button(label).clicked() {
                    action = Some(UiAction::Dialog(purpose));
                }
            }
            ui.separator();
            use super::run_panel::RunRequest;
            for (label, request) in [
                ("Save PLY", RunRequest::SavePly),
                ("Save checkpoint", RunRequest::SaveCheckpoint),
                ("Fork", RunRequest::Fork),
                ("New run", RunRequest::NewRun),
            ] {
                if ui.button(label).clicked() {
                    action = Some(UiAction::Run(request));
                }
            }
            ui.separator();
            if ui.button("Quit").clicked() {
                action = Some(UiAction::Quit);
            }
        });
        ui.menu_button("Window", |ui| {
            for tab in Tab::ALL {
                if ui.button(tab.title()).clicked() {
                    action = Some(UiAction::Reopen(tab));
                }
            }
            ui.separator();
            if ui.button("Reset layout").clicked() {
                action = Some(UiAction::ResetLayout);
            }
        });
        if let Some(what) = editor.pending.busy() {
            ui.spinner();
            ui.label(format!("opening {what}…"));
        }
        if editor.status.0.phase != RunPhase::Idle {
            ui.label(egui::RichText::new(super::run_panel::status_line(&editor.status.0)).weak());
        }
    });
    action
}

fn carry_out(
    action: UiAction,
    editor: &mut EditorState,
    viewport: &mut ViewportData,
    views: &ViewList,
) {
    match action {
        UiAction::Dialog(purpose) => editor.dialogs.open(purpose),
        UiAction::LookThrough(index) => {
            if let Some(view) = views.get(index) {
                viewport.camera.look_through(index, &view.camera);
            }
        }
        UiAction::ResetLayout => editor.layout.state = default_layout(),
        UiAction::Reopen(tab) => editor.layout.reopen(tab),
        UiAction::Quit => editor.requests.quit = true,
        UiAction::Run(request) => editor.control.requests.push(request),
    }
}

/// A path was picked in the file dialog.
fn picked(
    purpose: DialogPurpose,
    path: PathBuf,
    editor: &mut EditorState,
    config: Option<&mut TrainConfig>,
    iteration: u32,
) {
    match purpose {
        DialogPurpose::OpenScene => editor.requests.open.push(OpenRequest::Scene(path)),
        DialogPurpose::OpenPly => editor.requests.open.push(OpenRequest::Ply(path)),
        DialogPurpose::OpenCheckpoint => editor.requests.open.push(OpenRequest::Checkpoint(path)),
        DialogPurpose::SaveConfig => {
            let Some(config) = config else { return };
            let message = match config.write_atomic(&path) {
                Ok(()) => PanelMessage::info(format!("saved {}", path.display())),
                Err(error) => PanelMessage::error(error.to_string()),
            };
            if message.error {
                editor.log.error(iteration, &message.text);
            } else {
                editor.log.info(iteration, &message.text);
            }
            editor.panels.inspector.message = Some(message);
        }
        DialogPurpose::LoadConfig => editor.requests.load_config.push(path),
    }
}

/// Loads a configuration file into the running configuration: live fields apply now (each an
/// edit), fixed ones are staged for the next new run.
pub fn load_config_file(
    path: &std::path::Path,
    config: &mut Config,
    state: Option<&mut TrainState>,
    made: &mut Vec<ConfigEdit>,
    run: &mut EditorRun,
) -> PanelMessage {
    let loaded = match Config::load(path) {
        Ok(loaded) => loaded,
        Err(error) => return PanelMessage::error(error.to_string()),
    };
    let mut live = LiveConfig {
        config,
        state,
        made,
    };
    let applied_before = live.made.len();
    match live.apply_loaded(&loaded) {
        Ok(restart) => {
            let applied = live.made.len() - applied_before;
            if restart.is_empty() {
                run.staged = None;
                PanelMessage::info(format!(
                    "loaded {}: {applied} field(s) changed",
                    path.display()
                ))
            } else {
                let mut staged = live.config.clone();
                for key in &restart {
                    if let Ok(value) = loaded.get(key) {
                        let _ = staged.set(key, &value);
                    }
                }
                if staged.model.source_path.as_os_str().is_empty() {
                    staged.model.source_path = live.config.model.source_path.clone();
                }
                run.staged = Some(staged);
                PanelMessage::info(format!(
                    "loaded {}: {applied} field(s) changed now; {} need a new run (File > New \
                     run): {}",
                    path.display(),
                    restart.len(),
                    restart.join(", ")
                ))
            }
        }
        Err(error) => PanelMessage::error(format!("{}: {error}", path.display())),
    }
}

/// The dock's view of the panels.
struct Tabs<'a, 'w> {
    panels: &'a mut Panels,
    control: &'a mut RunControl,
    status: &'a super::run_panel::RunStatus,
    live: LiveConfig<'a>,
    running: bool,
    plots: PlotSeries<'a>,
    log: &'a mut EditorLog,
    rows: &'a [ViewRow],
    selected: &'a mut SelectedView,
    viewport: &'a mut ViewportData<'w>,
    layers: &'a [egui::TextureId],
    markers: &'a [ViewMarker],
    actions: &'a mut Vec<UiAction>,
    drawn: &'a mut DrawnTabs,
}

impl TabViewer for Tabs<'_, '_> {
    type Tab = Tab;

    fn id(&mut self, tab: &mut Tab) -> egui::Id {
        egui::Id::new(("splatforge tab", tab.title()))
    }

    fn title(&mut self, tab: &mut Tab) -> egui::WidgetText {
        tab.title().into()
    }

    fn ui(&mut self, ui: &mut egui::Ui, tab: &mut Tab) {
        self.drawn.0.push((*tab, ui.max_rect()));
        match tab {
            Tab::Viewport => {
                let response = viewport_ui(
                    ui,
                    &mut self.viewport.camera,
                    &mut self.viewport.options,
                    self.layers,
                    self.markers,
                );
                self.viewport.target.size = response.size;
                self.viewport.target.rect = response.rect;
            }
            Tab::Run => run_panel_ui(
                ui,
                &mut self.panels.run,
                self.control,
                self.status,
                &mut self.live,
            ),
            Tab::Inspector => {
                match inspector_ui(ui, &mut self.panels.inspector, &mut self.live, self.running) {
                    Some(InspectorAction::SaveConfig) => self
                        .actions
                        .push(UiAction::Dialog(DialogPurpose::SaveConfig)),
                    Some(InspectorAction::LoadConfig) => self
                        .actions
                        .push(UiAction::Dialog(DialogPurpose::LoadConfig)),
                    None => {}
                }
            }
            Tab::Plots => plots_ui(ui, &mut self.panels.plots, &self.plots),
            Tab::Views => {
                let images = self.selected.images.as_ref();
                if let Some(ViewsAction::LookThrough(index)) =
                    views_ui(ui, &mut self.panels.views, self.rows, images)
                {
                    self.actions.push(UiAction::LookThrough(index));
                }
            }
            Tab::Log => log_ui(ui, &mut self.panels.log, self.log),
        }
    }

    fn clear_background(&self, tab: &Tab) -> bool {
        *tab != Tab::Viewport
    }

    fn allowed_in_windows(&self, _tab: &mut Tab) -> bool {
        false
    }
}
