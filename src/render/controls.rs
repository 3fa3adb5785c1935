//! An orbit + fly camera for looking at splat clouds (the viewer's; usable by any app):
//!
//! - left mouse drag: orbit around the focus point;
//! - right (or middle) mouse drag: pan;
//! - mouse wheel: move towards or away from the focus;
//! - W A S D: fly forward, left, back, right; Q E: down, up; Shift: four times faster.
//!
//! The camera's `Transform` is derived from [`OrbitCamera`] every frame while it moves;
//! [`OrbitCamera::looking_from`] sets one up from an existing transform (e.g. a dataset
//! camera's).

use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll, MouseScrollUnit};
use bevy::prelude::*;

/// Drives its entity's `Transform` from the mouse and keyboard.
#[derive(Component, Clone, Copy, Debug, PartialEq, Reflect)]
#[reflect(Component, Clone, PartialEq)]
pub struct OrbitCamera {
    /// The point orbited around.
    pub focus: Vec3,
    /// Distance from the focus.
    pub distance: f32,
    /// Rotation about world +y, radians.
    pub yaw: f32,
    /// Rotation about the camera's x axis, radians (positive looks down on the focus).
    pub pitch: f32,
    /// Fly speed in world units per second (Shift: four times this).
    pub speed: f32,
    /// Radians per pixel of mouse motion.
    pub sensitivity: f32,
}

impl Default for OrbitCamera {
    fn default() -> Self {
        Self {
            focus: Vec3::ZERO,
            distance: 5.0,
            yaw: 0.0,
            pitch: 0.3,
            speed: 1.0,
            sensitivity: 0.005,
        }
    }
}

impl OrbitCamera {
    /// The orbit that reproduces `transform`, focused `distance` in front of it.
    pub fn looking_from(transform: &Transform, distance: f32) -> Self {
        let forward = transform.forward();
        let (yaw, pitch) = yaw_pitch(*forward);
        Self {
            focus: transform.translation + forward * distance,
            distance,
            yaw,
            pitch,
            speed: (distance * 0.5).max(0.05),
            ..Self::default()
        }
    }

    /// The camera transform of this orbit.
    pub fn transform(&self) -> Transform {
        let rotation = Quat::from_euler(EulerRot::YXZ, self.yaw, -self.pitch, 0.0);
        let position = self.focus - rotation * Vec3::NEG_Z * self.distance;
        Transform::from_translation(position).with_rotation(rotation)
    }
}

/// (yaw, pitch) of a viewing direction, as [`OrbitCamera`] uses them.
fn yaw_pitch(forward: Vec3) -> (f32, f32) {
    let pitch = (-forward.y).clamp(-1.0, 1.0).asin();
    let yaw = (-forward.x).atan2(-forward.z);
    (yaw, pitch)
}

/// Adds [`orbit_camera_input`].
pub struct OrbitCameraPlugin;

impl Plugin for OrbitCameraPlugin {
    fn build(&self, app: &mut App) {
        app.register_type::<OrbitCamera>()
            .add_systems(Update, orbit_camera_input);
    }
}

/// Applies this frame's mouse and keyboard input to every [`OrbitCamera`].
pub fn orbit_camera_input(
    time: Res<Time>,
    mouse_buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    mut cameras: Query<(&mut OrbitCamera, &mut Transform)>,
) {
    for (mut orbit, mut transform) in &mut cameras {
        let before = *orbit;
        let delta = motion.delta;
        if mouse_buttons.pressed(MouseButton::Left) {
            orbit.yaw -= delta.x * orbit.sensitivity;
            orbit.pitch = (orbit.pitch + delta.y * orbit.sensitivity).clamp(-1.55, 1.55);
        }
        if mouse_buttons.pressed(MouseButton::Right) || mouse_buttons.pressed(MouseButton::Middle) {
            let rotation = orbit.transform().rotation;
            let scale = orbit.distance * orbit.sensitivity * 0.5;
            orbit.focus += rotation * Vec3::new(-delta.x, delta.y, 0.0) * scale;
        }
        let lines = match scroll.unit {
            MouseScrollUnit::Line => scroll.delta.y,
            MouseScrollUnit::Pixel => scroll.delta.y / 40.0,
        };
        if lines != 0.0 {
            orbit.distance = (orbit.distance * 0.9f32.powf(lines)).max(0.01);
        }
        let mut walk = Vec3::ZERO;
        for (key, direction) in [
            (KeyCode::KeyW, Vec3::NEG_Z),
            (KeyCode::KeyS, Vec3::Z),
            (KeyCode::KeyA, Vec3::NEG_X),
            (KeyCode::KeyD, Vec3::X),
            (KeyCode::KeyQ, Vec3::NEG_Y),
            (KeyCode::KeyE, Vec3::Y),
        ] {
            if keys.pressed(key) {
                walk += direction;
            }
        }
        if walk != Vec3::ZERO {
            let boost = if keys.pressed(KeyCode::ShiftLeft) || keys.pressed(KeyCode::ShiftRight) {
                4.0
            } else {
                1.0
            };
            let step = orbit.speed * boost * time.delta_secs();
            let rotation = orbit.transform().rotation;
            orbit.focus += rotation * walk.normalize() * step;
        }
        if *orbit != before {
            let scale = transform.scale;
            *transform = orbit.transform().with_scale(scale);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looking_from_a_transform_reproduces_it() {
        let transform =
            Transform::from_xyz(1.0, 2.0, 3.0).looking_at(Vec3::new(-1.0, 0.5, -2.0), Vec3::Y);
        let orbit = OrbitCamera::looking_from(&transform, 4.0);
        let back = orbit.transform();
        assert!((back.translation - transform.translation).length() < 1e-4);
        assert!(back.rotation.angle_between(transform.rotation) < 1e-4);
    }
}
