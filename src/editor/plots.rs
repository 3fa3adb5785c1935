//! The plots panel (egui_plot): loss (raw and smoothed), test and train PSNR at evaluations,
//! Gaussian count, position learning rate and it/s, over iterations, with linked x axes.

use bevy::prelude::Resource;
use bevy_egui::egui;
use egui_plot::{Legend, Line, Plot, Points};

use crate::train::state::EvalRecord;

/// What the editor samples itself, once per frame at most (the trainer keeps the rest in
/// `TrainMetrics`).
#[derive(Resource, Clone, Debug, Default)]
pub struct RunHistory {
    /// `[iteration, it/s]`, about once per second while training.
    pub speed: Vec<[f64; 2]>,
    /// `[iteration, position learning rate]` actually used, at each frame where it changed
    /// (the schedule and live edits both move it).
    pub position_lr: Vec<[f64; 2]>,
}

impl RunHistory {
    /// Records the position learning rate at `iteration` if it changed noticeably.
    pub fn sample_position_lr(&mut self, iteration: u32, lr: f64) {
        let changed = self
            .position_lr
            .last()
            .is_none_or(|&[_, last]| (lr - last).abs() > 1e-3 * last.abs());
        if changed {
            self.position_lr.push([f64::from(iteration), lr]);
        }
    }
}

/// The series the panel draws, borrowed from the resources that hold them.
pub struct PlotSeries<'a> {
    /// `(iteration, loss)` at every loss readback.
    pub loss: &'a [(u32, f64)],
    pub evaluations: &'a [EvalRecord],
    /// `(iteration, live Gaussians)` after each densification.
    pub gaussians: &'a [(u32, u32)],
    pub history: &'a RunHistory,
}

/// Which plots are shown.
pub struct PlotsPanel {
    pub loss: bool,
    pub psnr: bool,
    pub gaussians: bool,
    pub position_lr: bool,
    pub speed: bool,
    /// Loss and learning rate on a log10 scale.
    pub log_scale: bool,
}

impl Default for PlotsPanel {
    fn default() -> Self {
        Self {
            loss: true,
            psnr: true,
            gaussians: true,
            position_lr: true,
            speed: true,
            log_scale: true,
        }
    }
}

/// The trainer's smoothed loss over the readbacks: 0.4 new + 0.6 old (as the progress bar).
pub fn smoothed(loss: &[(u32, f64)]) -> Vec<[f64; 2]> {
    let mut ema: Option<f64> = None;
    loss.iter()
        .map(|&(iteration, value)| {
            let next = ema.map_or(value, |old| 0.4 * value + 0.6 * old);
            ema = Some(next);
            [f64::from(iteration), next]
        })
        .collect()
}

pub fn plots_ui(ui: &mut egui::Ui, panel: &mut PlotsPanel, series: &PlotSeries) {
    ui.horizontal_wrapped(|ui| {
        ui.checkbox(&mut panel.loss, "Loss");
        ui.checkbox(&mut panel.psnr, "PSNR");
        ui.checkbox(&mut panel.gaussians, "Gaussians");
        ui.checkbox(&mut panel.position_lr, "Position LR");
        ui.checkbox(&mut panel.speed, "it/s");
        ui.checkbox(&mut panel.log_scale, "log scale");
    });
    let shown = [
        panel.loss,
        panel.psnr,
        panel.gaussians,
        panel.position_lr,
        panel.speed,
    ]
    .iter()
    .filter(|&&s| s)
    .count();
    if shown == 0 {
        return;
    }
    let height = ((ui.available_height() - 8.0 * shown as f32) / shown as f32).max(80.0);
    let log = panel.log_scale;
    let scale = move |v: f64| if log { v.max(1e-12).log10() } else { v };
    let axis_name = move |name: &str| {
        if log {
            format!("log10 {name}")
        } else {
            name.to_string()
        }
    };
    let link = egui::Id::new("splatforge plots");
    let plot = |id: &str| {
        Plot::new(id)
            .height(height)
            .legend(Legend::default())
            .link_axis(link, [true, false])
            .link_cursor(link, [true, false])
            .x_axis_label("iteration")
    };
    egui::ScrollArea::vertical().show(ui, |ui| {
        if panel.loss {
            let raw: Vec<[f64; 2]> = series
                .loss
                .iter()
                .map(|&(i, l)| [f64::from(i), scale(l)])
                .collect();
            let ema: Vec<[f64; 2]> = smoothed(series.loss)
                .into_iter()
                .map(|[i, l]| [i, scale(l)])
                .collect();
            plot("loss")
                .y_axis_label(axis_name("loss"))
                .show(ui, |plot| {
                    plot.line(Line::new("loss", raw).width(1.0));
                    plot.line(Line::new("loss (smoothed)", ema).width(2.0));
                });
        }
        if panel.psnr {
            let split = |name: &str| -> Vec<[f64; 2]> {
                series
                    .evaluations
                    .iter()
                    .filter(|r| r.split == name)
                    .map(|r| [f64::from(r.iteration), r.psnr])
                    .collect()
            };
            plot("psnr").y_axis_label("PSNR dB").show(ui, |plot| {
                for name in ["test", "train"] {
                    let points = split(name);
                    plot.line(Line::new(format!("{name} PSNR"), points.clone()));
                    plot.points(Points::new(format!("{name} PSNR"), points).radius(3.0));
                }
            });
        }
        if panel.gaussians {
            let points: Vec<[f64; 2]> = series
                .gaussians
                .iter()
                .map(|&(i, n)| [f64::from(i), f64::from(n)])
                .collect();
            plot("gaussians")
                .y_axis_label("Gaussians")
                .show(ui, |plot| plot.line(Line::new("Gaussians", points)));
        }
        if panel.position_lr {
            let points: Vec<[f64; 2]> = series
                .history
                .position_lr
                .iter()
                .map(|&[i, lr]| [i, scale(lr)])
                .collect();
            plot("position lr")
                .y_axis_label(axis_name("learning rate"))
                .show(ui, |plot| plot.line(Line::new("position LR", points)));
        }
        if panel.speed {
            let points = series.history.speed.clone();
            plot("speed")
                .y_axis_label("it/s")
                .show(ui, |plot| plot.line(Line::new("it/s", points)));
        }
    });
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    use super::*;

    #[test]
    fn smoothing_follows_the_trainer() {
        let loss = [(10, 1.0), (20, 0.5), (30, 0.5)];
        let ema = smoothed(&loss);
        assert_eq!(ema[0], [10.0, 1.0]);
        assert!((ema[1][1] - 0.8).abs() < 1e-12);
        assert!((ema[2][1] - 0.68).abs() < 1e-12);
    }

    #[test]
    fn position_lr_is_sampled_when_it_changes() {
        let mut history = RunHistory::default();
        history.sample_position_lr(1, 1e-4);
        history.sample_position_lr(2, 1e-4);
        history.sample_position_lr(3, 0.5e-4);
        assert_eq!(history.position_lr, [[1.0, 1e-4], [3.0, 0.5e-4]]);
    }

    #[test]
    fn each_plot_can_be_switched_off() {
        let history = RunHistory {
            speed: vec![[10.0, 200.0], [20.0, 220.0]],
            position_lr: vec![[1.0, 1e-4]],
        };
        let loss = vec![(10, 0.3), (20, 0.2)];
        let mut harness = Harness::new_ui_state(
            |ui, panel: &mut PlotsPanel| {
                let series = PlotSeries {
                    loss: &loss,
                    evaluations: &[],
                    gaussians: &[(0, 100), (600, 150)],
                    history: &history,
                };
                plots_ui(ui, panel, &series);
            },
            PlotsPanel::default(),
        );
        harness.run();
        // The legends name every series.
        harness.get_by_label("loss (smoothed)");
        harness.get_by_label("position LR");
        harness.get_by_label("Loss").click();
        harness.run();
        assert!(!harness.state().loss);
        assert!(harness.query_by_label("loss (smoothed)").is_none());
    }
}
