//! The editor: train live in a window with a 3D viewport, an inspector over every field of the
//! configuration, plots, the dataset's views and run control (feature `editor`).
//!
//! It is the headless trainer's app ([`TrainPlugin`]) with egui panels around it: what the
//! viewport shows is rendered from the very buffers training updates. Each panel is a plain
//! function over `egui::Ui` in its own file (tested with egui_kittest); the systems here feed
//! them and carry out what they ask. Live edits of the configuration apply at the next step and
//! are recorded against their iteration (`<output>/edits.ron`), so `splatforge train --edits`
//! replays an editor session headless.
//!
//! Files: [`app`] builds the windowed or offscreen app, [`offscreen`] runs it without a window,
//! [`run`] opens and saves runs, [`control`] turns the run panel's buttons into trainer steps,
//! [`ui`] lays the panels out in a dock ([`layout`]); the panels are [`viewport`],
//! [`run_panel`], [`inspector`], [`plots`], [`views_panel`] and [`log`].

pub mod app;
pub mod control;
pub mod inspector;
pub mod layout;
pub mod live_config;
pub mod log;
pub mod offscreen;
pub mod plots;
pub mod run;
pub mod run_panel;
pub mod ui;
pub mod view_images;
pub mod view_list;
pub mod viewport;
pub mod viewport_cloud;
pub mod viewport_scene;
pub mod views_panel;

use std::path::PathBuf;
use std::sync::Mutex;

use bevy::prelude::*;
use bevy::window::{FileDragAndDrop, WindowCloseRequested};
use bevy_egui::{EguiGlobalSettings, EguiPlugin, EguiPrimaryContextPass};

use crate::train::{StopRequest, TrainConfig, TrainPlugin, TrainState, run_train_steps};

pub use app::{DisplayMode, EditorOptions, editor_app};
pub use run::{OpenRequest, PreparedRun};
pub use run_panel::{RunControl, RunPhase};

/// The editor's systems, in frame order around the trainer's update (`run_train_steps`).
#[derive(SystemSet, Clone, Debug, PartialEq, Eq, Hash)]
pub enum EditorSet {
    /// Opening runs, and what the panels asked for in the last frame (save, stop, fork...).
    Requests,
    /// How many steps the trainer may run this frame.
    Control,
    /// After the steps: status, history, per-view figures, log.
    Observe,
    /// The viewport camera, frustums, points and the cloud layer; the views panel's images.
    Viewport,
}

/// The editor on top of the trainer: panels, viewport, run control. Needs the renderer and
/// the [`crate::app::Gpu`] resource (see [`editor_app`]).
pub struct EditorPlugin {
    /// The run to open at startup.
    pub first_run: Mutex<Option<PreparedRun>>,
    /// Where the docked layout is saved (`None`: the default layout, not saved).
    pub layout: Option<PathBuf>,
    /// Open paused (press Start to train).
    pub paused: bool,
    /// Choose the steps per frame from the frame rate (else `run.steps_per_frame`).
    pub auto_steps: bool,
}

impl Plugin for EditorPlugin {
    fn build(&self, app: &mut App) {
        let first_run = self
            .first_run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let (layout, layout_problem) = layout::DockLayout::load(self.layout.clone());
        let mut log = log::EditorLog::default();
        if let Some(problem) = layout_problem {
            log.warn(0, problem);
        }
        // Bindless textures would need device features splatforge does not ask for (the
        // panels use a handful of textures). bevy_egui adds more fields under its own features.
        #[allow(clippy::needless_update)]
        let egui = EguiPlugin {
            bindless_mode_array_size: None,
            ..default()
        };
        app.add_plugins(egui)
            .add_plugins((TrainPlugin, crate::render::SplatPlugin))
            .insert_resource(FirstRun(Mutex::new(first_run)))
            .insert_resource(layout)
            .insert_resource(log)
            .insert_resource(RunControl {
                paused: self.paused,
                auto_steps: self.auto_steps,
                ..default()
            })
            .init_resource::<run::EditorRun>()
            .init_resource::<run::PendingOpen>()
            .init_resource::<control::CurrentStatus>()
            .init_resource::<control::StepBudget>()
            .init_resource::<control::RateMeter>()
            .init_resource::<control::ViewStats>()
            .init_resource::<view_list::ViewList>()
            .init_resource::<control::EvaluationsLogged>()
            .init_resource::<plots::RunHistory>()
            .init_resource::<ui::Panels>()
            .init_resource::<ui::Dialogs>()
            .init_resource::<ui::UiRequests>()
            .init_resource::<ui::DrawnTabs>()
            .init_resource::<viewport::ViewportCamera>()
            .init_resource::<viewport::ViewportOptions>()
            .init_resource::<viewport_scene::ViewportTarget>()
            .init_resource::<view_images::SelectedView>()
            .configure_sets(
                Update,
                (EditorSet::Requests, EditorSet::Control)
                    .chain()
                    .before(run_train_steps),
            )
            .configure_sets(
                Update,
                (EditorSet::Observe, EditorSet::Viewport)
                    .chain()
                    .after(run_train_steps),
            )
            .add_systems(PreStartup, open_first_run)
            .add_systems(
                Startup,
                (
                    manual_egui_context,
                    viewport_scene::spawn_viewport_camera,
                    viewport_cloud::spawn_trainer_cloud,
                ),
            )
            .add_systems(
                Update,
                (
                    run::finish_pending_open,
                    open_dropped_files,
                    open_requested,
                    quit_when_asked,
                    control::carry_out_requests,
                )
                    .chain()
                    .in_set(EditorSet::Requests),
            )
            .add_systems(
                Update,
                control::apply_run_control.in_set(EditorSet::Control),
            )
            .add_systems(
                Update,
                (view_list::refresh_view_list, control::observe_run)
                    .chain()
                    .in_set(EditorSet::Observe),
            )
            .add_systems(
                Update,
                (
                    viewport_scene::frame_new_run,
                    viewport_scene::sync_viewport_camera,
                    viewport_scene::draw_frustums,
                    viewport_scene::draw_sfm_points,
                    viewport_cloud::sync_trainer_cloud_settings,
                    view_images::refresh_selected_view,
                )
                    .chain()
                    .in_set(EditorSet::Viewport),
            )
            .add_systems(EguiPrimaryContextPass, ui::editor_ui);
    }
}

/// The run given on the command line, until startup opens it.
#[derive(Resource)]
struct FirstRun(Mutex<Option<PreparedRun>>);

/// Opens the first run before the trainer's startup sets it up.
fn open_first_run(world: &mut World) {
    let run = world
        .resource::<FirstRun>()
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(run) = run
        && let Err(error) = run::start_run(world, run, false)
    {
        world
            .resource_mut::<log::EditorLog>()
            .error(0, format!("{error:#}"));
    }
}

/// The egui context is the window's (or the offscreen image's) camera, made by the app.
fn manual_egui_context(mut settings: ResMut<EguiGlobalSettings>) {
    settings.auto_create_primary_context = false;
}

/// Opens what the menu, the file dialogs and dropped files asked for.
fn open_requested(world: &mut World) {
    let configs = std::mem::take(&mut world.resource_mut::<ui::UiRequests>().load_config);
    for path in configs {
        let Some(mut config) = world.get_resource::<TrainConfig>().map(|c| c.0.clone()) else {
            continue;
        };
        let mut state = world.get_resource::<TrainState>().cloned();
        let mut editor_run = std::mem::take(&mut *world.resource_mut::<run::EditorRun>());
        let mut made = Vec::new();
        let message = ui::load_config_file(
            &path,
            &mut config,
            state.as_mut(),
            &mut made,
            &mut editor_run,
        );
        let iteration = state.as_ref().map_or(0, |s| s.iteration);
        world.resource_mut::<TrainConfig>().0 = config;
        if let Some(state) = state {
            world.insert_resource(state);
        }
        let mut log = std::mem::take(&mut *world.resource_mut::<log::EditorLog>());
        run::record_edits(&mut editor_run, &mut log, made);
        if message.error {
            log.error(iteration, &message.text);
        } else {
            log.info(iteration, &message.text);
        }
        *world.resource_mut::<log::EditorLog>() = log;
        *world.resource_mut::<run::EditorRun>() = editor_run;
        let mut panels = world.resource_mut::<ui::Panels>();
        panels.inspector.reset_drafts();
        panels.inspector.message = Some(message);
    }
    let requests = std::mem::take(&mut world.resource_mut::<ui::UiRequests>().open);
    for request in requests {
        let config = world
            .get_resource::<TrainConfig>()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let config = world
            .resource::<run::EditorRun>()
            .staged
            .clone()
            .unwrap_or(config);
        if let Err(error) = control::open(world, request, config) {
            let iteration = world
                .get_resource::<TrainState>()
                .map_or(0, |s| s.iteration);
            world
                .resource_mut::<log::EditorLog>()
                .error(iteration, format!("{error:#}"));
        }
    }
}

/// A folder, `.ply` or `.sfck` dropped on the window opens like the File menu; a `.ron`
/// loads as configuration.
fn open_dropped_files(
    mut drops: MessageReader<FileDragAndDrop>,
    mut requests: ResMut<ui::UiRequests>,
    mut log: ResMut<log::EditorLog>,
    state: Option<Res<TrainState>>,
) {
    for drop in drops.read() {
        let FileDragAndDrop::DroppedFile { path_buf, .. } = drop else {
            continue;
        };
        match OpenRequest::for_path(path_buf) {
            Some(request) => requests.open.push(request),
            None => {
                let is_ron = path_buf
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("ron"));
                if is_ron {
                    requests.load_config.push(path_buf.clone());
                } else {
                    log.error(
                        state.as_ref().map_or(0, |s| s.iteration),
                        format!(
                            "cannot open {}: drop a scene folder, a .ply, a .sfck checkpoint \
                             or a .ron configuration",
                            path_buf.display()
                        ),
                    );
                }
            }
        }
    }
}

/// A signal from outside the app (Ctrl-C in the terminal) to quit as the window's close
/// button does.
#[derive(Resource, Clone, Default)]
pub struct QuitSignal(pub StopRequest);

/// Quits when asked (menu, window close button, Ctrl-C, frame limit): saves what the run
/// would lose and the layout, then exits.
pub fn quit_when_asked(world: &mut World) {
    let closing = world
        .resource_mut::<Messages<WindowCloseRequested>>()
        .drain()
        .count()
        > 0;
    let signalled = world
        .get_resource::<QuitSignal>()
        .is_some_and(|s| s.0.is_requested());
    let limit_reached = world
        .get_resource::<FrameLimit>()
        .is_some_and(|l| l.frames_done >= l.frames);
    let asked = std::mem::take(&mut world.resource_mut::<ui::UiRequests>().quit);
    if !(closing || signalled || limit_reached || asked) {
        if let Some(mut limit) = world.get_resource_mut::<FrameLimit>() {
            limit.frames_done += 1;
        }
        return;
    }
    let iteration = world
        .get_resource::<TrainState>()
        .map_or(0, |s| s.iteration);
    let mut lines = Vec::new();
    match run::save_unsaved(world) {
        Ok(files) => {
            for file in files {
                lines.push(format!("saved {}", file.display()));
            }
        }
        Err(error) => lines.push(format!("saving on exit failed: {error:#}")),
    }
    if let Err(error) = world.resource_mut::<layout::DockLayout>().save_if_changed() {
        lines.push(error);
    }
    for line in lines {
        world.resource_mut::<log::EditorLog>().info(iteration, line);
    }
    world.write_message(AppExit::Success);
}

/// Quit after this many frames (`--frames`).
#[derive(Resource, Clone, Debug)]
pub struct FrameLimit {
    pub frames: u32,
    pub frames_done: u32,
}

#[cfg(test)]
mod tests;
