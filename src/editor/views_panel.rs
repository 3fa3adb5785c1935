//! The views panel: the dataset's views (train and test) with their latest loss and PSNR, and
//! the selected view as ground truth | render | per-pixel error heat map, updated live.

use bevy_egui::egui;

use crate::dataset::Split;

/// One line of the view list.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewRow {
    /// Index in the dataset's view list (`TrainView::index`).
    pub index: usize,
    pub name: String,
    pub split: Split,
    /// The latest training loss of the view, and the iteration it is from.
    pub loss: Option<(u32, f64)>,
    /// The latest PSNR measured on the view (dB).
    pub psnr: Option<(u32, f64)>,
}

/// The selected view's images, as textures, with what was measured on them.
pub struct ViewImages {
    pub view: usize,
    pub iteration: u32,
    pub ground_truth: egui::TextureHandle,
    pub render: egui::TextureHandle,
    pub error: egui::TextureHandle,
    /// Width / height.
    pub aspect: f32,
    pub psnr: f64,
    /// The error the brightest colour of the heat map stands for.
    pub error_scale: f32,
}

/// What the panel asks of the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewsAction {
    /// Put the viewport camera at this view.
    LookThrough(usize),
}

#[derive(Default)]
pub struct ViewsPanel {
    /// The selected view (index in the dataset's view list).
    pub selected: Option<usize>,
    pub show_train: bool,
    pub show_test: bool,
}

impl ViewsPanel {
    pub fn new() -> Self {
        Self {
            selected: None,
            show_train: true,
            show_test: true,
        }
    }
}

pub fn views_ui(
    ui: &mut egui::Ui,
    panel: &mut ViewsPanel,
    rows: &[ViewRow],
    images: Option<&ViewImages>,
) -> Option<ViewsAction> {
    let mut action = None;
    ui.horizontal(|ui| {
        ui.checkbox(&mut panel.show_train, "train views");
        ui.checkbox(&mut panel.show_test, "test views");
        let selected = panel
            .selected
            .and_then(|i| rows.iter().find(|r| r.index == i));
        if ui
            .add_enabled(selected.is_some(), egui::Button::new("Look through"))
            .on_hover_text("Put the viewport camera at the selected view (or double-click a row)")
            .clicked()
            && let Some(row) = selected
        {
            action = Some(ViewsAction::LookThrough(row.index));
        }
    });
    let list_height = (ui.available_height() * 0.4).max(120.0);
    egui::ScrollArea::vertical()
        .id_salt("view list")
        .max_height(list_height)
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("views")
                .num_columns(4)
                .striped(true)
                .show(ui, |ui| {
                    ui.strong("view");
                    ui.strong("split");
                    ui.strong("loss");
                    ui.strong("PSNR");
                    ui.end_row();
                    for row in rows {
                        let shown = match row.split {
                            Split::Train => panel.show_train,
                            Split::Test => panel.show_test,
                        };
                        if !shown {
                            continue;
                        }
                        let selected = panel.selected == Some(row.index);
                        let response = ui.selectable_label(selected, &row.name);
                        if response.clicked() {
                            panel.selected = Some(row.index);
                        }
                        if response.double_clicked() {
                            panel.selected = Some(row.index);
                            action = Some(ViewsAction::LookThrough(row.index));
                        }
                        ui.label(match row.split {
                            Split::Train => "train",
                            Split::Test => "test",
                        });
                        ui.label(row.loss.map_or("-".into(), |(_, l)| format!("{l:.4}")));
                        ui.label(row.psnr.map_or("-".into(), |(_, p)| format!("{p:.2} dB")));
                        ui.end_row();
                    }
                });
        });
    ui.separator();
    match (panel.selected, images) {
        (Some(selected), Some(images)) if images.view == selected => {
            let name = rows
                .iter()
                .find(|r| r.index == selected)
                .map_or("", |r| r.name.as_str());
            ui.label(format!(
                "{name} at iteration {}: PSNR {:.2} dB; error scale 0 … {:.3}",
                images.iteration, images.psnr, images.error_scale
            ));
            let width = ((ui.available_width() - 16.0) / 3.0).max(32.0);
            let size = egui::vec2(width, width / images.aspect.max(0.01));
            ui.horizontal(|ui| {
                for (title, texture) in [
                    ("ground truth", &images.ground_truth),
                    ("render", &images.render),
                    ("error", &images.error),
                ] {
                    ui.vertical(|ui| {
                        ui.label(title);
                        ui.add(egui::Image::new((texture.id(), size)).alt_text(title));
                    });
                }
            });
        }
        (Some(_), _) => {
            ui.label("Rendering the view…");
        }
        (None, _) => {
            ui.label("Select a view to compare its render with the ground truth.");
        }
    }
    action
}

/// Per-pixel error of `render` (planar f32 CHW, clamped to [0, 1] as the loss sees it)
/// against `ground_truth` (packed RGBA8): the mean absolute error over the channels, and the
/// PSNR of the whole image (on the clamped floats).
pub fn pixel_errors(render: &[f32], ground_truth: &[u32]) -> (Vec<f32>, f64) {
    let pixels = ground_truth.len();
    let mut errors = Vec::with_capacity(pixels);
    let mut squared = 0.0f64;
    for (i, &packed) in ground_truth.iter().enumerate() {
        let bytes = packed.to_le_bytes();
        let mut sum = 0.0f32;
        for c in 0..3 {
            let rendered = render[c * pixels + i].clamp(0.0, 1.0);
            let truth = f32::from(bytes[c]) / 255.0;
            let d = rendered - truth;
            sum += d.abs();
            squared += f64::from(d * d);
        }
        errors.push(sum / 3.0);
    }
    let mse = squared / (3 * pixels.max(1)) as f64;
    let psnr = if mse > 0.0 {
        -10.0 * mse.log10()
    } else {
        f64::INFINITY
    };
    (errors, psnr)
}

/// The heat map of `errors`: black (0) through red and yellow to white (`scale` and above).
pub fn heat_map(errors: &[f32], scale: f32) -> Vec<[u8; 3]> {
    const STOPS: [[f32; 3]; 4] = [
        [0.0, 0.0, 0.0],
        [0.8, 0.1, 0.1],
        [1.0, 0.85, 0.1],
        [1.0, 1.0, 1.0],
    ];
    errors
        .iter()
        .map(|&e| {
            let t = (e / scale.max(1e-6)).clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
            let i = (t.floor() as usize).min(STOPS.len() - 2);
            let f = t - i as f32;
            std::array::from_fn(|c| {
                let v = STOPS[i][c] * (1.0 - f) + STOPS[i + 1][c] * f;
                (v * 255.0 + 0.5) as u8
            })
        })
        .collect()
}

/// The error the heat map's top colour stands for: the 99th percentile, so a few outliers do
/// not wash the map out (at least 1/255).
pub fn error_scale(errors: &[f32]) -> f32 {
    if errors.is_empty() {
        return 1.0;
    }
    let mut sorted = errors.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted[(sorted.len() - 1) * 99 / 100].max(1.0 / 255.0)
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    use super::*;

    #[test]
    fn errors_psnr_and_heat_map() {
        // Two pixels: exact, and off by 0.5 in red only.
        let render = [0.2, 1.0, 0.4, 0.0, 0.6, 0.0];
        let gt = [
            u32::from_le_bytes([51, 102, 153, 255]),
            u32::from_le_bytes([127, 0, 0, 255]),
        ];
        let (errors, psnr) = pixel_errors(&render, &gt);
        assert!(errors[0] < 1e-6);
        assert!((errors[1] - (1.0 - 127.0 / 255.0) / 3.0).abs() < 1e-6);
        let mse = ((1.0f64 - 127.0 / 255.0).powi(2)) / 6.0;
        assert!((psnr - (-10.0 * mse.log10())).abs() < 1e-3, "{psnr}");
        let map = heat_map(&[0.0, 0.5, 1.0, 2.0], 1.0);
        assert_eq!(map[0], [0, 0, 0]);
        assert_eq!(map[2], [255, 255, 255]);
        assert_eq!(map[3], [255, 255, 255], "clamped above the scale");
        assert!(map[1][0] > map[1][2], "the middle is warm");
        assert_eq!(error_scale(&[0.0; 10]), 1.0 / 255.0);
    }

    #[test]
    fn selecting_and_looking_through_a_view() {
        let rows = vec![
            ViewRow {
                index: 0,
                name: "a.jpg".into(),
                split: Split::Train,
                loss: Some((10, 0.05)),
                psnr: None,
            },
            ViewRow {
                index: 1,
                name: "b.jpg".into(),
                split: Split::Test,
                loss: None,
                psnr: Some((7000, 27.25)),
            },
        ];
        let mut actions = Vec::new();
        let mut harness = Harness::new_ui_state(
            |ui, panel: &mut ViewsPanel| {
                if let Some(a) = views_ui(ui, panel, &rows, None) {
                    actions.push(a);
                }
            },
            ViewsPanel::new(),
        );
        harness.run();
        harness.get_by_label("27.25 dB");
        harness.get_by_label("0.0500");
        harness.get_by_label("b.jpg").click();
        harness.run();
        assert_eq!(harness.state().selected, Some(1));
        harness.get_by_label("Rendering the view…");
        harness.get_by_label("Look through").click();
        harness.run();
        harness.get_by_label("test views").click();
        harness.run();
        assert!(harness.query_by_label("b.jpg").is_none());
        drop(harness);
        assert_eq!(actions, [ViewsAction::LookThrough(1)]);
    }
}
