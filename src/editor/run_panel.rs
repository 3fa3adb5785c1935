//! The run panel: start, pause, resume, single step, stop; steps per frame; save now; fork;
//! and the status line (iteration, it/s, Gaussians, GPU memory, frame rate).
//!
//! The panel only records what the user asked for in [`RunControl`]; the app carries it out
//! between frames (`super::control`).

use bevy::prelude::Resource;
use bevy_egui::egui;

use super::inspector::PanelMessage;
use super::live_config::LiveConfig;

/// What the user asked the run to do.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct RunControl {
    /// No steps run while paused, except single steps.
    pub paused: bool,
    /// Single steps asked for while paused, run one per frame.
    pub pending_steps: u32,
    /// Choose the steps per frame to keep `target_fps` (training gets the rest of each frame);
    /// off: `run.steps_per_frame`.
    pub auto_steps: bool,
    /// Frames per second the automatic steps aim at while training. Every frame also draws the
    /// viewport and the panels (about 6 ms of GPU work at 1920x1080 on an H200, BENCHMARKS.md),
    /// so a higher rate leaves training less: at 15 the editor keeps about 90% of the headless
    /// speed, at 20 about 88%. The run panel changes it.
    pub target_fps: f32,
    /// One-off requests, carried out (and removed) after the panels are drawn.
    pub requests: Vec<RunRequest>,
}

impl Default for RunControl {
    fn default() -> Self {
        Self {
            paused: false,
            pending_steps: 0,
            auto_steps: true,
            target_fps: 15.0,
            requests: Vec::new(),
        }
    }
}

/// A one-off request from the run panel or the menu.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunRequest {
    /// End the run: save a checkpoint and the PLY (as Ctrl-C does headless).
    Stop,
    SavePly,
    SaveCheckpoint,
    /// Save a checkpoint and continue from it into a new output folder.
    Fork,
    /// Start again from the initial points with the current (or loaded) configuration.
    NewRun,
}

/// Where the run is, for the status line and for which buttons apply.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum RunPhase {
    /// Nothing to train (no scene, or a scene being opened).
    #[default]
    Idle,
    Running,
    Paused,
    /// All iterations ran.
    Finished,
    /// Ended by the stop button (state saved).
    Stopped,
    /// A step failed; the message says why.
    Failed(String),
}

/// What the status line shows (filled from the training resources each frame).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunStatus {
    pub phase: RunPhase,
    pub iteration: u32,
    pub last_iteration: u32,
    pub iterations_per_second: f64,
    pub frames_per_second: f64,
    /// Steps run in the last frame.
    pub steps_last_frame: u32,
    pub gaussians: u32,
    pub gpu_bytes: u64,
    pub ema_loss: Option<f64>,
    /// The run's output folder.
    pub output: String,
}

/// The run panel's own state.
#[derive(Default)]
pub struct RunPanel {
    pub message: Option<PanelMessage>,
}

pub fn run_panel_ui(
    ui: &mut egui::Ui,
    panel: &mut RunPanel,
    control: &mut RunControl,
    status: &RunStatus,
    live: &mut LiveConfig,
) {
    let active = matches!(status.phase, RunPhase::Running | RunPhase::Paused);
    ui.horizontal_wrapped(|ui| {
        let toggle = if !control.paused {
            "Pause"
        } else if status.iteration == 0 {
            "Start"
        } else {
            "Resume"
        };
        if ui
            .add_enabled(active, egui::Button::new(toggle))
            .on_hover_text("Space")
            .clicked()
        {
            control.paused = !control.paused;
            control.pending_steps = 0;
        }
        if ui
            .add_enabled(active && control.paused, egui::Button::new("Step"))
            .on_hover_text("Run exactly one iteration (while paused)")
            .clicked()
        {
            control.pending_steps += 1;
        }
        if ui
            .add_enabled(active, egui::Button::new("Stop"))
            .on_hover_text("End the run: save a checkpoint and the PLY")
            .clicked()
        {
            control.requests.push(RunRequest::Stop);
        }
    });
    ui.horizontal_wrapped(|ui| {
        let has_cloud = status.phase != RunPhase::Idle;
        let requests = [
            ("Save PLY", RunRequest::SavePly, "Write the cloud now"),
            (
                "Save checkpoint",
                RunRequest::SaveCheckpoint,
                "Write a checkpoint now (resume with --start_checkpoint)",
            ),
            (
                "Fork",
                RunRequest::Fork,
                "Save a checkpoint and continue from it in a new output folder",
            ),
            (
                "New run",
                RunRequest::NewRun,
                "Start again from the initial points with the current configuration",
            ),
        ];
        for (label, request, hover) in requests {
            if ui
                .add_enabled(has_cloud, egui::Button::new(label))
                .on_hover_text(hover)
                .clicked()
            {
                control.requests.push(request);
            }
        }
    });
    ui.horizontal(|ui| {
        ui.checkbox(&mut control.auto_steps, "Auto steps per frame")
            .on_hover_text(
                "Run as many steps per frame as keep the target frame rate; off: a fixed \
                 number (run.steps_per_frame)",
            );
        if control.auto_steps {
            let label = ui.label("target fps");
            ui.add(egui::DragValue::new(&mut control.target_fps).range(1.0..=240.0))
                .labelled_by(label.id);
        } else {
            let label = ui.label("steps per frame");
            let mut steps = live.config.run.steps_per_frame;
            let response = ui
                .add(egui::DragValue::new(&mut steps).range(1..=10_000))
                .labelled_by(label.id);
            if response.changed() {
                panel.message = live
                    .set("run.steps_per_frame", &steps.to_string())
                    .err()
                    .map(PanelMessage::error);
            }
        }
    });
    if let Some(message) = &panel.message {
        message.show(ui);
    }
    ui.separator();
    ui.label(status_line(status));
    ui.label(egui::RichText::new(phase_text(status)).strong());
    if !status.output.is_empty() {
        ui.label(egui::RichText::new(format!("output: {}", status.output)).weak());
    }
}

/// `iteration 1200 / 7000 · 241 it/s · 1,234,567 Gaussians · GPU 512 MiB · 30 fps (8 steps)`.
pub fn status_line(status: &RunStatus) -> String {
    let mut line = format!(
        "iteration {} / {} · {:.0} it/s · {} Gaussians · GPU {:.0} MiB · {:.0} fps",
        status.iteration,
        status.last_iteration,
        status.iterations_per_second,
        thousands(status.gaussians),
        status.gpu_bytes as f64 / (1u64 << 20) as f64,
        status.frames_per_second,
    );
    if status.steps_last_frame > 0 {
        line.push_str(&format!(" ({} steps/frame)", status.steps_last_frame));
    }
    if let Some(loss) = status.ema_loss {
        line.push_str(&format!(" · loss {loss:.4}"));
    }
    line
}

fn phase_text(status: &RunStatus) -> String {
    match &status.phase {
        RunPhase::Idle => "No scene: File > Open scene…".to_string(),
        RunPhase::Running => "Training".to_string(),
        RunPhase::Paused if status.iteration == 0 => "Ready: press Start".to_string(),
        RunPhase::Paused => "Paused".to_string(),
        RunPhase::Finished => "Finished".to_string(),
        RunPhase::Stopped => "Stopped (checkpoint and PLY saved)".to_string(),
        RunPhase::Failed(why) => format!("Failed: {why}"),
    }
}

/// 1234567 -> "1,234,567".
fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::{NodeT, Queryable};

    use super::*;
    use crate::config::Config;
    use crate::edits::ConfigEdit;

    struct Panel {
        panel: RunPanel,
        control: RunControl,
        status: RunStatus,
        config: Config,
        made: Vec<ConfigEdit>,
    }

    fn harness(phase: RunPhase, iteration: u32) -> Harness<'static, Panel> {
        let state = Panel {
            panel: RunPanel::default(),
            control: RunControl {
                paused: phase == RunPhase::Paused,
                ..Default::default()
            },
            status: RunStatus {
                phase,
                iteration,
                last_iteration: 7000,
                iterations_per_second: 241.4,
                frames_per_second: 29.6,
                steps_last_frame: 8,
                gaussians: 1_234_567,
                gpu_bytes: 512 << 20,
                ema_loss: Some(0.0412),
                output: "output/x".into(),
            },
            config: Config::default(),
            made: Vec::new(),
        };
        Harness::new_ui_state(
            |ui, s: &mut Panel| {
                let mut live = LiveConfig {
                    config: &mut s.config,
                    state: None,
                    made: &mut s.made,
                };
                run_panel_ui(ui, &mut s.panel, &mut s.control, &s.status, &mut live);
            },
            state,
        )
    }

    #[test]
    fn pause_step_resume_and_stop() {
        let mut harness = harness(RunPhase::Running, 1200);
        harness.run();
        harness.get_by_label(
            "iteration 1200 / 7000 · 241 it/s · 1,234,567 Gaussians · GPU 512 MiB · 30 fps \
             (8 steps/frame) · loss 0.0412",
        );
        assert!(harness.get_by_label("Step").accesskit_node().is_disabled());
        harness.get_by_label("Pause").click();
        harness.run();
        assert!(harness.state().control.paused);
        // Pausing does not change the phase shown until the app has paused the run.
        harness.state_mut().status.phase = RunPhase::Paused;
        harness.run();
        harness.get_by_label("Step").click();
        harness.run();
        harness.get_by_label("Step").click();
        harness.run();
        assert_eq!(harness.state().control.pending_steps, 2);
        harness.get_by_label("Resume").click();
        harness.run();
        let control = &harness.state().control;
        assert!(!control.paused);
        assert_eq!(
            control.pending_steps, 0,
            "resuming drops queued single steps"
        );
        harness.get_by_label("Stop").click();
        harness.run();
        assert_eq!(harness.state().control.requests, [RunRequest::Stop]);
    }

    #[test]
    fn a_paused_fresh_run_offers_start_and_fixed_steps_per_frame_is_a_config_edit() {
        let mut harness = harness(RunPhase::Paused, 0);
        harness.run();
        harness.get_by_label("Ready: press Start");
        harness.get_by_label("Save checkpoint").click();
        harness.run();
        harness.get_by_label("Auto steps per frame").click();
        harness.run();
        assert!(!harness.state().control.auto_steps);
        harness.get_by_label("steps per frame").focus();
        harness.run();
        harness.key_combination_modifiers(egui::Modifiers::COMMAND, &[egui::Key::A]);
        harness.get_by_label("steps per frame").type_text("2");
        harness.run();
        harness.key_press(egui::Key::Enter);
        harness.run();
        let s = harness.state();
        assert_eq!(s.control.requests, [RunRequest::SaveCheckpoint]);
        assert_eq!(s.config.run.steps_per_frame, 2);
        assert_eq!(s.made.len(), 1);
        assert_eq!(s.made[0].key, "run.steps_per_frame");
        harness.get_by_label("Start").click();
        harness.run();
        assert!(!harness.state().control.paused);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
