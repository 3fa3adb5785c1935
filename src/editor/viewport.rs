//! The viewport panel: the live cloud in 3D with an orbit and fly camera, the dataset cameras
//! as frustums (coloured by their latest loss or PSNR; clicking one looks through it), and
//! toggles for frustums, SfM points and the background colour.
//!
//! The camera lives in the scene's own world coordinates (COLMAP/OpenCV: any orientation), so
//! the cloud, the dataset cameras and the SfM points need no conversion; "up" is estimated from
//! the dataset cameras. This file holds the camera maths and the panel; the Bevy camera that
//! renders the viewport image follows [`ViewportCamera`] (`super::viewport_scene`).

use bevy::math::{DMat3, DQuat, DVec3, Quat, Vec3};
use bevy::prelude::{Resource, Transform};
use bevy_egui::egui;

use crate::camera::Camera;

/// The viewport camera: a point it looks at, the distance to it and an orientation (Bevy's
/// convention: looking down -Z with +Y up).
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct ViewportCamera {
    pub focus: Vec3,
    pub distance: f32,
    pub rotation: Quat,
    /// The scene's up direction (orbiting turns about it).
    pub up: Vec3,
    /// Vertical field of view, radians.
    pub fov_y: f32,
    /// The dataset view the camera is at (exactly, intrinsics included) until it moves.
    pub looking_through: Option<usize>,
    /// Scene scale (camera extent) for movement speeds and frustum sizes.
    pub scale: f32,
}

impl Default for ViewportCamera {
    fn default() -> Self {
        Self {
            focus: Vec3::ZERO,
            distance: 5.0,
            rotation: Quat::IDENTITY,
            up: Vec3::Y,
            fov_y: 50f32.to_radians(),
            looking_through: None,
            scale: 1.0,
        }
    }
}

impl ViewportCamera {
    /// Where the camera is.
    pub fn position(&self) -> Vec3 {
        self.focus - self.forward() * self.distance
    }

    pub fn forward(&self) -> Vec3 {
        self.rotation * Vec3::NEG_Z
    }

    pub fn right(&self) -> Vec3 {
        self.rotation * Vec3::X
    }

    /// The Bevy transform of the camera.
    pub fn transform(&self) -> Transform {
        Transform {
            translation: self.position(),
            rotation: self.rotation,
            scale: Vec3::ONE,
        }
    }

    /// Puts the camera at a dataset camera, looking the same way, and focuses at the scene
    /// scale in front of it.
    pub fn look_through(&mut self, index: usize, camera: &Camera) {
        let (rotation, centre) = bevy_pose(camera);
        self.rotation = rotation;
        self.fov_y = camera.fov_y() as f32;
        self.distance = self.scale.max(1e-3);
        self.focus = centre + self.forward() * self.distance;
        self.looking_through = Some(index);
    }

    /// Turns about the up axis (`yaw`) and the camera's right axis (`pitch`), radians, around
    /// the focus point.
    pub fn orbit(&mut self, yaw: f32, pitch: f32) {
        let yawed = Quat::from_axis_angle(self.up, yaw) * self.rotation;
        let pitched = yawed * Quat::from_axis_angle(Vec3::X, pitch);
        // Stop short of looking straight along the up axis (the orbit would flip).
        let candidate = if (pitched * Vec3::NEG_Z).dot(self.up).abs() < 0.995 {
            pitched
        } else {
            yawed
        };
        self.rotation = candidate.normalize();
        self.looking_through = None;
    }

    /// Moves the focus (and the camera with it) in camera axes: x right, y up, z forward.
    pub fn translate(&mut self, local: Vec3) {
        self.focus += self.rotation * Vec3::new(local.x, local.y, -local.z);
        self.looking_through = None;
    }

    /// Moves towards (factor < 1) or away from (factor > 1) the focus.
    pub fn zoom(&mut self, factor: f32) {
        self.distance = (self.distance * factor).clamp(1e-4 * self.scale, 1e4 * self.scale);
        self.looking_through = None;
    }

    /// Pinhole intrinsics for a `width x height` image with this field of view (principal
    /// point at the centre, square pixels).
    pub fn to_camera(&self, width: u32, height: u32) -> Camera {
        camera_from_pose(self.rotation, self.position(), self.fov_y, width, height)
    }
}

/// The Bevy orientation (looking down -Z, +Y up) and centre of a dataset camera (OpenCV axes:
/// looking down +Z, +Y down).
pub fn bevy_pose(camera: &Camera) -> (Quat, Vec3) {
    let c = camera.world_from_camera_rotation();
    let bevy_axes = DMat3::from_cols(c.x_axis, -c.y_axis, -c.z_axis);
    let rotation = DQuat::from_mat3(&bevy_axes).normalize();
    (rotation.as_quat(), camera.center().as_vec3())
}

/// A splatforge camera (OpenCV axes) at a Bevy pose with vertical field of view `fov_y`.
pub fn camera_from_pose(
    rotation: Quat,
    position: Vec3,
    fov_y: f32,
    width: u32,
    height: u32,
) -> Camera {
    let b = DMat3::from_quat(rotation.as_dquat());
    let world_from_camera = DMat3::from_cols(b.x_axis, -b.y_axis, -b.z_axis);
    let focal = f64::from(height) / 2.0 / (f64::from(fov_y) / 2.0).tan();
    Camera::from_world_pose(
        width,
        height,
        focal,
        focal,
        f64::from(width) / 2.0,
        f64::from(height) / 2.0,
        world_from_camera,
        position.as_dvec3(),
    )
}

/// The scene's up direction: the mean of the dataset cameras' up axes (-y in OpenCV), or +Y
/// when there are none.
pub fn estimate_up<'a>(cameras: impl Iterator<Item = &'a Camera>) -> Vec3 {
    let sum: DVec3 = cameras
        .map(|c| -(c.world_from_camera_rotation().y_axis))
        .sum();
    sum.try_normalize().map_or(Vec3::Y, |v| v.as_vec3())
}

/// What the viewport shows besides the cloud.
#[derive(Resource, Clone, Debug, PartialEq)]
pub struct ViewportOptions {
    pub show_frustums: bool,
    pub show_points: bool,
    /// Background colour of the viewport (display values, as the trainer renders).
    pub background: [f32; 3],
    pub color_by: FrustumColor,
}

impl Default for ViewportOptions {
    fn default() -> Self {
        Self {
            show_frustums: true,
            show_points: false,
            background: [0.0; 3],
            color_by: FrustumColor::Loss,
        }
    }
}

/// What the frustums' colours show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrustumColor {
    Loss,
    Psnr,
}

/// A dataset camera as the viewport needs it: where it is, for picking.
#[derive(Clone, Debug)]
pub struct ViewMarker {
    pub index: usize,
    pub camera: Camera,
}

/// What the viewport panel did this frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewportResponse {
    /// The image area in physical pixels (what the renderers should produce).
    pub size: [u32; 2],
    /// Where the image was drawn, in points.
    pub rect: Option<egui::Rect>,
    /// A frustum was clicked: look through this view.
    pub picked: Option<usize>,
}

/// Draws the viewport: a toolbar, then `layers` (textures, bottom first) over the background,
/// letterboxed to the aspect of the view looked through; mouse and keys move the camera.
pub fn viewport_ui(
    ui: &mut egui::Ui,
    camera: &mut ViewportCamera,
    options: &mut ViewportOptions,
    layers: &[egui::TextureId],
    markers: &[ViewMarker],
) -> ViewportResponse {
    ui.horizontal(|ui| {
        ui.checkbox(&mut options.show_frustums, "Frustums");
        ui.checkbox(&mut options.show_points, "SfM points");
        let label = ui.label("Background");
        ui.color_edit_button_rgb(&mut options.background)
            .labelled_by(label.id);
        egui::ComboBox::from_id_salt("frustum colour")
            .selected_text(match options.color_by {
                FrustumColor::Loss => "colour: loss",
                FrustumColor::Psnr => "colour: PSNR",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut options.color_by, FrustumColor::Loss, "colour: loss");
                ui.selectable_value(&mut options.color_by, FrustumColor::Psnr, "colour: PSNR");
            });
        if let Some(index) = camera.looking_through {
            ui.label(format!("at view {index}"));
        }
    });
    let available = ui.available_rect_before_wrap();
    let through = camera
        .looking_through
        .and_then(|i| markers.iter().find(|m| m.index == i))
        .map(|m| f64::from(m.camera.width) / f64::from(m.camera.height));
    let rect = match through {
        Some(aspect) => letterbox(available, aspect as f32),
        None => available,
    };
    let response = ui.allocate_rect(available, egui::Sense::click_and_drag());
    let painter = ui.painter_at(available);
    painter.rect_filled(available, 0.0, egui::Color32::from_gray(16));
    let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
    for &texture in layers {
        painter.image(texture, rect, uv, egui::Color32::WHITE);
    }

    let pixels_per_point = ui.ctx().pixels_per_point();
    let size = [
        (rect.width() * pixels_per_point).round().max(1.0) as u32,
        (rect.height() * pixels_per_point).round().max(1.0) as u32,
    ];
    let mut picked = None;
    if response.clicked()
        && let Some(pointer) = response.interact_pointer_pos()
    {
        let to_pixels = |p: egui::Pos2| ((p - rect.min) * pixels_per_point).to_pos2();
        picked = pick_view(
            camera,
            size,
            markers,
            to_pixels(pointer),
            12.0 * pixels_per_point,
        );
    }
    handle_input(ui, &response, camera, rect.height().max(1.0));
    if let Some(index) = picked
        && let Some(marker) = markers.iter().find(|m| m.index == index)
    {
        camera.look_through(index, &marker.camera);
    }
    ViewportResponse {
        size,
        rect: Some(rect),
        picked,
    }
}

/// The largest rectangle of aspect `aspect` (width / height) centred in `outer`.
pub fn letterbox(outer: egui::Rect, aspect: f32) -> egui::Rect {
    let outer_aspect = outer.width() / outer.height().max(1e-3);
    let size = if outer_aspect > aspect {
        egui::vec2(outer.height() * aspect, outer.height())
    } else {
        egui::vec2(outer.width(), outer.width() / aspect)
    };
    egui::Rect::from_center_size(outer.center(), size)
}

/// The view whose camera centre projects nearest to `pixel` (within `radius` pixels) in an
/// image of `size` seen by `camera`.
pub fn pick_view(
    camera: &ViewportCamera,
    size: [u32; 2],
    markers: &[ViewMarker],
    pixel: egui::Pos2,
    radius: f32,
) -> Option<usize> {
    let eye = camera.to_camera(size[0], size[1]);
    markers
        .iter()
        .filter_map(|marker| {
            let local = eye.to_camera(marker.camera.center());
            if local.z <= 1e-6 {
                return None;
            }
            let (u, v) = eye.project(local);
            let distance = egui::pos2(u as f32, v as f32).distance(pixel);
            (distance <= radius).then_some((distance, marker.index))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, index)| index)
}

/// Mouse and keys: left drag orbits, right or middle drag pans, the wheel zooms; while the
/// pointer is over the viewport, W/A/S/D fly, Q/E go down/up (Shift: faster).
fn handle_input(
    ui: &egui::Ui,
    response: &egui::Response,
    camera: &mut ViewportCamera,
    height_points: f32,
) {
    if response.dragged_by(egui::PointerButton::Primary) {
        let delta = response.drag_delta();
        if delta != egui::Vec2::ZERO {
            camera.orbit(-delta.x * 0.008, -delta.y * 0.008);
        }
    }
    if response.dragged_by(egui::PointerButton::Secondary)
        || response.dragged_by(egui::PointerButton::Middle)
    {
        let delta = response.drag_delta();
        if delta != egui::Vec2::ZERO {
            // One point of drag moves what is at the focus by one point on screen.
            let per_point = 2.0 * camera.distance * (camera.fov_y / 2.0).tan() / height_points;
            camera.translate(Vec3::new(-delta.x * per_point, delta.y * per_point, 0.0));
        }
    }
    if !response.hovered() {
        return;
    }
    let (scroll, dt, keys, fast) = ui.input(|input| {
        let key = |k: egui::Key| if input.key_down(k) { 1.0 } else { 0.0 };
        let keys = Vec3::new(
            key(egui::Key::D) - key(egui::Key::A),
            key(egui::Key::E) - key(egui::Key::Q),
            key(egui::Key::W) - key(egui::Key::S),
        );
        (
            input.smooth_scroll_delta.y,
            input.stable_dt.min(0.1),
            keys,
            input.modifiers.shift,
        )
    });
    if scroll != 0.0 {
        camera.zoom((-scroll * 0.002).exp());
    }
    if keys != Vec3::ZERO {
        let speed = camera.scale * if fast { 2.0 } else { 0.5 };
        camera.translate(keys * speed * dt);
        ui.ctx().request_repaint();
    }
}

#[cfg(test)]
mod tests {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable;

    use super::*;

    fn dataset_camera(center: DVec3, look_at: DVec3) -> Camera {
        // OpenCV axes: z towards the target, y down (world up is +y here).
        let z = (look_at - center).normalize();
        let x = z.cross(DVec3::Y).normalize();
        let y = z.cross(x);
        Camera::from_world_pose(
            320,
            240,
            300.0,
            300.0,
            160.0,
            120.0,
            DMat3::from_cols(x, y, z),
            center,
        )
    }

    #[test]
    fn looking_through_a_dataset_camera_reproduces_its_pose_and_projection() {
        let original = dataset_camera(DVec3::new(1.0, 0.5, -4.0), DVec3::ZERO);
        let mut camera = ViewportCamera {
            scale: 2.0,
            ..Default::default()
        };
        camera.look_through(3, &original);
        assert_eq!(camera.looking_through, Some(3));
        assert!((camera.position().as_dvec3() - original.center()).length() < 1e-5);
        let again = camera.to_camera(320, 240);
        for point in [DVec3::ZERO, DVec3::new(0.3, -0.2, 0.5)] {
            let (u0, v0) = original.project(original.to_camera(point));
            let (u1, v1) = again.project(again.to_camera(point));
            assert!(
                (u0 - u1).abs() < 1e-3 && (v0 - v1).abs() < 1e-3,
                "{u0},{v0} {u1},{v1}"
            );
        }
        // Moving leaves the view.
        camera.orbit(0.1, 0.0);
        assert_eq!(camera.looking_through, None);
    }

    #[test]
    fn orbiting_keeps_the_focus_and_distance_and_up_is_estimated() {
        let mut camera = ViewportCamera {
            focus: Vec3::new(1.0, 2.0, 3.0),
            ..Default::default()
        };
        let before = (camera.position() - camera.focus).length();
        camera.orbit(0.7, 0.3);
        assert!(((camera.position() - camera.focus).length() - before).abs() < 1e-4);
        assert!((camera.forward().length() - 1.0).abs() < 1e-5);
        // Pitch stops short of the pole.
        for _ in 0..50 {
            camera.orbit(0.0, 0.2);
        }
        assert!(camera.forward().dot(camera.up).abs() < 0.996);
        let cameras = [
            dataset_camera(DVec3::new(0.0, 0.0, -4.0), DVec3::ZERO),
            dataset_camera(DVec3::new(4.0, 0.0, 0.0), DVec3::ZERO),
        ];
        let up = estimate_up(cameras.iter());
        assert!((up - Vec3::Y).length() < 1e-5, "{up}");
    }

    #[test]
    fn letterbox_and_picking() {
        let outer = egui::Rect::from_min_size(egui::pos2(0.0, 0.0), egui::vec2(400.0, 200.0));
        let inner = letterbox(outer, 4.0 / 3.0);
        assert!((inner.height() - 200.0).abs() < 1e-4);
        assert!((inner.width() - 266.6667).abs() < 1e-3);
        assert!((inner.center() - outer.center()).length() < 1e-4);

        let mut camera = ViewportCamera::default();
        camera.look_through(0, &dataset_camera(DVec3::new(0.0, 0.0, -6.0), DVec3::ZERO));
        let target = dataset_camera(DVec3::new(0.5, 0.0, 0.0), DVec3::new(0.5, 0.0, 5.0));
        let markers = [ViewMarker {
            index: 7,
            camera: target,
        }];
        let eye = camera.to_camera(320, 240);
        let (u, v) = eye.project(eye.to_camera(DVec3::new(0.5, 0.0, 0.0)));
        let hit = egui::pos2(u as f32 + 5.0, v as f32);
        assert_eq!(pick_view(&camera, [320, 240], &markers, hit, 12.0), Some(7));
        let miss = egui::pos2(u as f32 + 30.0, v as f32);
        assert_eq!(pick_view(&camera, [320, 240], &markers, miss, 12.0), None);
    }

    #[test]
    fn dragging_orbits_and_the_toolbar_toggles() {
        let mut state = (ViewportCamera::default(), ViewportOptions::default());
        state.0.looking_through = Some(0);
        let mut harness = Harness::builder()
            .with_size(egui::vec2(400.0, 300.0))
            .build_ui_state(
                |ui, (camera, options): &mut (ViewportCamera, ViewportOptions)| {
                    viewport_ui(ui, camera, options, &[], &[]);
                },
                state,
            );
        harness.run();
        let before = harness.state().0.rotation;
        harness.drag_at(egui::pos2(200.0, 150.0));
        harness.run();
        harness.hover_at(egui::pos2(260.0, 170.0));
        harness.run();
        harness.drop_at(egui::pos2(260.0, 170.0));
        harness.run();
        let camera = &harness.state().0;
        assert!(camera.rotation.angle_between(before) > 0.1);
        assert_eq!(camera.looking_through, None);
        harness.get_by_label("Frustums").click();
        harness.run();
        assert!(!harness.state().1.show_frustums);
    }
}
