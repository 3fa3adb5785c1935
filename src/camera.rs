//! Pinhole cameras in the OpenCV/COLMAP convention: camera x right, y down, z forward.
//!
//! Pixel coordinates are continuous with pixel `(i, j)` covering `[i, i+1) x [j, j+1)`, so its
//! centre is `(i + 0.5, j + 0.5)`; a camera-space point projects to
//! `(fx * x / z + cx, fy * y / z + cy)`. This is COLMAP's and gsplat's convention. (inria's
//! rasterizer samples pixel `i` at `i` with the principal point at `W/2 - 0.5`, which is the same
//! thing for centred principal points.)

use glam::{DMat3, DVec3, Mat4, Vec4};

/// Intrinsics and pose of one view.
#[derive(Clone, Debug, PartialEq)]
pub struct Camera {
    pub width: u32,
    pub height: u32,
    pub fx: f64,
    pub fy: f64,
    pub cx: f64,
    pub cy: f64,
    /// World-to-camera rotation: `x_cam = rotation * x_world + translation`.
    pub rotation: DMat3,
    /// World-to-camera translation.
    pub translation: DVec3,
}

impl Camera {
    /// The camera centre in world coordinates.
    pub fn center(&self) -> DVec3 {
        -(self.rotation.transpose() * self.translation)
    }

    /// Camera-to-world rotation (its columns are the camera axes in world coordinates).
    pub fn world_from_camera_rotation(&self) -> DMat3 {
        self.rotation.transpose()
    }

    /// Builds a camera from a camera-to-world rotation and centre.
    #[allow(clippy::too_many_arguments)]
    pub fn from_world_pose(
        width: u32,
        height: u32,
        fx: f64,
        fy: f64,
        cx: f64,
        cy: f64,
        world_from_camera: DMat3,
        center: DVec3,
    ) -> Self {
        let rotation = world_from_camera.transpose();
        Self {
            width,
            height,
            fx,
            fy,
            cx,
            cy,
            rotation,
            translation: -(rotation * center),
        }
    }

    /// Horizontal field of view, radians.
    pub fn fov_x(&self) -> f64 {
        2.0 * (f64::from(self.width) / (2.0 * self.fx)).atan()
    }

    /// Vertical field of view, radians.
    pub fn fov_y(&self) -> f64 {
        2.0 * (f64::from(self.height) / (2.0 * self.fy)).atan()
    }

    /// Maps a world point to camera space.
    pub fn to_camera(&self, world: DVec3) -> DVec3 {
        self.rotation * world + self.translation
    }

    /// Projects a camera-space point to continuous pixel coordinates.
    pub fn project(&self, camera_space: DVec3) -> (f64, f64) {
        (
            self.fx * camera_space.x / camera_space.z + self.cx,
            self.fy * camera_space.y / camera_space.z + self.cy,
        )
    }

    /// The same view at another image size: focal lengths and principal point scale with it.
    pub fn resized(&self, width: u32, height: u32) -> Self {
        let sx = f64::from(width) / f64::from(self.width);
        let sy = f64::from(height) / f64::from(self.height);
        Self {
            width,
            height,
            fx: self.fx * sx,
            fy: self.fy * sy,
            cx: self.cx * sx,
            cy: self.cy * sy,
            ..self.clone()
        }
    }

    /// World-to-camera as a column-major f32 matrix (for GPU uniforms).
    pub fn view_matrix(&self) -> Mat4 {
        let r = self.rotation.as_mat3();
        let t = self.translation.as_vec3();
        Mat4::from_cols(
            r.x_axis.extend(0.0),
            r.y_axis.extend(0.0),
            r.z_axis.extend(0.0),
            Vec4::new(t.x, t.y, t.z, 1.0),
        )
    }

    /// Why the GPU (which computes in f32) cannot render with these intrinsics, if it cannot:
    /// the image must be non-empty, the focal lengths positive normal f32 numbers and the
    /// principal point finite in f32.
    pub fn intrinsics_problem(&self) -> Option<String> {
        if self.width == 0 || self.height == 0 {
            return Some(format!(
                "the image is {}x{} pixels",
                self.width, self.height
            ));
        }
        let normal = |v: f64| (v as f32).is_normal() && v > 0.0;
        if !normal(self.fx) || !normal(self.fy) {
            return Some(format!(
                "the focal lengths ({}, {}) are not positive numbers the GPU can represent",
                self.fx, self.fy
            ));
        }
        if !(self.cx as f32).is_finite() || !(self.cy as f32).is_finite() {
            return Some(format!(
                "the principal point ({}, {}) is not finite",
                self.cx, self.cy
            ));
        }
        None
    }

    /// True when every number is finite and the rotation is orthonormal (within 1e-3).
    pub fn is_valid(&self) -> bool {
        let finite = [self.fx, self.fy, self.cx, self.cy]
            .iter()
            .all(|v| v.is_finite())
            && self.rotation.is_finite()
            && self.translation.is_finite();
        if !finite || self.fx <= 0.0 || self.fy <= 0.0 || self.width == 0 || self.height == 0 {
            return false;
        }
        let should_be_identity = self.rotation * self.rotation.transpose();
        (should_be_identity - DMat3::IDENTITY)
            .to_cols_array()
            .iter()
            .all(|v| v.abs() < 1e-3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera() -> Camera {
        let rotation = DMat3::from_rotation_y(0.3) * DMat3::from_rotation_x(-0.2);
        Camera::from_world_pose(
            64,
            48,
            50.0,
            52.0,
            32.0,
            24.0,
            rotation,
            DVec3::new(1.0, 2.0, -3.0),
        )
    }

    #[test]
    fn center_round_trips() {
        let cam = camera();
        assert!((cam.center() - DVec3::new(1.0, 2.0, -3.0)).length() < 1e-12);
        assert!(cam.to_camera(cam.center()).length() < 1e-12);
        assert!(cam.is_valid());
    }

    #[test]
    fn degenerate_intrinsics_are_named() {
        assert_eq!(camera().intrinsics_problem(), None);
        let mut tiny = camera();
        tiny.fx = 1e-320; // positive, but 0 in f32
        assert!(tiny.intrinsics_problem().unwrap().contains("focal"));
        let mut huge = camera();
        huge.cy = 1e300;
        assert!(huge.intrinsics_problem().unwrap().contains("principal"));
        assert!(camera().resized(0, 3).intrinsics_problem().is_some());
    }

    #[test]
    fn resize_scales_intrinsics() {
        let cam = camera().resized(32, 24);
        assert_eq!((cam.fx, cam.fy, cam.cx, cam.cy), (25.0, 26.0, 16.0, 12.0));
    }

    #[test]
    fn view_matrix_matches_to_camera() {
        let cam = camera();
        let p = DVec3::new(0.3, -0.7, 2.0);
        let expected = cam.to_camera(p).as_vec3();
        let got = cam.view_matrix().transform_point3(p.as_vec3());
        assert!((expected - got).length() < 1e-5);
    }
}
