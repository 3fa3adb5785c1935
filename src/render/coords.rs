//! Between trained scenes and Bevy: axes, an upright placement, and dataset cameras as Bevy
//! cameras.
//!
//! Trained scenes live in their dataset's world frame with OpenCV/COLMAP cameras (x right,
//! y down, z forward; `crate::Camera`). Bevy is y up and its cameras look along -z. A camera's
//! axes convert by a rotation of 180 degrees about x ([`OPENCV_TO_BEVY`]); the world frame of a
//! COLMAP reconstruction has no fixed "up" at all, so [`upright_transform`] estimates one from
//! the training cameras.
//!
//! [`bevy_camera`] places a Bevy camera where a dataset camera was, with a [`PinholeProjection`]
//! of the same intrinsics (principal point included): drawn through the plugin, a cloud seen
//! from it is the trainer's render of that view.

use bevy::camera::{CameraProjection, SubCameraView};
use bevy::math::Vec3A;
use bevy::prelude::*;
use glam::{DMat3, DQuat, DVec3};

use crate::camera::Camera as PinholeCamera;

/// Rotation from OpenCV camera axes (y down, z forward) to Bevy camera axes (y up, looking along
/// -z), and back (it is its own inverse): 180 degrees about x.
pub const OPENCV_TO_BEVY: Quat = Quat::from_xyzw(1.0, 0.0, 0.0, 0.0);

/// The placement of a trained scene that follows the OpenCV convention itself (y down, z
/// forward, as a scene reconstructed with the first camera as origin does): a rotation of 180
/// degrees about x.
pub fn opencv_scene_transform() -> Transform {
    Transform::from_rotation(OPENCV_TO_BEVY)
}

/// An upright placement of a trained scene, estimated from its cameras: the cameras' average
/// "up" (their -y axes) becomes Bevy's +y, their average horizontal viewing direction becomes
/// -z (so a default Bevy camera looks the way the capture did), and the point closest to all
/// their optical axes (the object an orbit capture circles) goes to the origin. Forward-facing
/// captures, whose axes are nearly parallel, are centred on the cameras' mean position instead.
///
/// `Transform::IDENTITY` for no cameras.
pub fn upright_transform(cameras: &[PinholeCamera]) -> Transform {
    if cameras.is_empty() {
        return Transform::IDENTITY;
    }
    // Camera axes in world coordinates are the rows of the world-to-camera rotation.
    let mut up = DVec3::ZERO;
    let mut forward = DVec3::ZERO;
    for camera in cameras {
        up -= camera.rotation.row(1);
        forward += camera.rotation.row(2);
    }
    let up = up.try_normalize().unwrap_or(DVec3::NEG_Y);
    let horizontal = (forward - up * forward.dot(up))
        .try_normalize()
        .unwrap_or_else(|| up.any_orthonormal_vector());
    // Rows of the rotation: world x, y, z axes of Bevy expressed in scene coordinates.
    let z = -horizontal;
    let x = up.cross(z);
    let rotation = DMat3::from_cols(x, up, z).transpose();
    let centre = focus_point(cameras);
    let rotation = DQuat::from_mat3(&rotation);
    Transform {
        translation: (-(rotation * centre)).as_vec3(),
        rotation: rotation.as_quat(),
        scale: Vec3::ONE,
    }
}

/// The least-squares point closest to every camera's optical axis, or the cameras' mean centre
/// when the axes are close to parallel.
fn focus_point(cameras: &[PinholeCamera]) -> DVec3 {
    let mut normal = DMat3::ZERO;
    let mut rhs = DVec3::ZERO;
    let mut mean = DVec3::ZERO;
    for camera in cameras {
        let centre = camera.center();
        let axis = camera.rotation.row(2).normalize();
        let projector = DMat3::IDENTITY - outer(axis, axis);
        normal += projector;
        rhs += projector * centre;
        mean += centre;
    }
    let mean = mean / cameras.len() as f64;
    // The normal matrix is singular along the common direction of parallel axes.
    let n = cameras.len() as f64;
    if normal.determinant() < 1e-3 * n * n * n {
        return mean;
    }
    normal.inverse() * rhs
}

/// Bevy camera axes to OpenCV camera axes (flip y and z); its own inverse.
fn opencv_from_bevy() -> DMat3 {
    DMat3::from_diagonal(DVec3::new(1.0, -1.0, -1.0))
}

fn outer(a: DVec3, b: DVec3) -> DMat3 {
    DMat3::from_cols(a * b.x, a * b.y, a * b.z)
}

/// A dataset camera as a Bevy camera: its `Transform` in a world where the trained scene is
/// placed by `scene` (the cloud's own `Transform`), and a [`PinholeProjection`] with its
/// intrinsics. Spawn both on a `Camera3d` whose viewport has the camera's aspect ratio (its
/// size, or a multiple) to see exactly what the training view saw.
pub fn bevy_camera(camera: &PinholeCamera, scene: &Transform) -> (Transform, Projection) {
    // Bevy camera axes -> OpenCV camera axes -> world.
    let world_from_camera = camera.world_from_camera_rotation() * opencv_from_bevy();
    let local = Transform {
        translation: camera.center().as_vec3(),
        rotation: DQuat::from_mat3(&world_from_camera).normalize().as_quat(),
        scale: Vec3::ONE,
    };
    (
        scene.mul_transform(local),
        Projection::custom(PinholeProjection::from_camera(camera)),
    )
}

/// The inverse of [`bevy_camera`]: the pinhole camera (OpenCV axes, in the scene's own frame)
/// that a Bevy camera at `transform` with `projection` has when it renders `width` x `height`
/// pixels; `None` for a projection that is not a pinhole (orthographic).
///
/// The rotation of the result carries the inverse of any scale in `transform` relative to
/// `scene`, as Bevy's own view matrix does.
pub fn pinhole_from_clip(
    clip_from_view: Mat4,
    world_from_view: &GlobalTransform,
    width: u32,
    height: u32,
) -> Option<PinholeCamera> {
    let p = clip_from_view.as_dmat4();
    let (w, h) = (f64::from(width), f64::from(height));
    // A pinhole's clip w is the view-space depth -z, and x, y do not mix.
    let is_pinhole = p.x_axis.w == 0.0
        && p.y_axis.w == 0.0
        && p.z_axis.w == -1.0
        && p.w_axis.w == 0.0
        && p.y_axis.x == 0.0
        && p.x_axis.y == 0.0
        && p.w_axis.x == 0.0
        && p.w_axis.y == 0.0;
    if !is_pinhole || width == 0 || height == 0 {
        return None;
    }
    // ndc.x = P00 x/z_cv - P02 with z_cv = -z_view; u = (ndc.x + 1) w / 2 (see ARCHITECTURE.md).
    let fx = w * p.x_axis.x / 2.0;
    let cx = w * (1.0 - p.z_axis.x) / 2.0;
    let fy = h * p.y_axis.y / 2.0;
    let cy = h * (1.0 + p.z_axis.y) / 2.0;
    let view_from_world = world_from_view.to_matrix().as_dmat4().inverse();
    let flip = opencv_from_bevy();
    Some(PinholeCamera {
        width,
        height,
        fx,
        fy,
        cx,
        cy,
        rotation: flip * DMat3::from_mat4(view_from_world),
        translation: flip * view_from_world.w_axis.truncate(),
    })
}

/// How a depth-buffer value `d` of `clip_from_view` maps to camera-space depth:
/// `z = numerator / (d + offset)` (reverse-Z pinholes, e.g. Bevy's perspective projection).
pub fn depth_mapping(clip_from_view: Mat4) -> (f32, f32) {
    // clip.z = P22 z_view + P23, clip.w = -z_view = z: d = -P22 + P23 / z.
    (clip_from_view.w_axis.z, clip_from_view.z_axis.z)
}

/// A pinhole camera projection with a principal point (Bevy's `PerspectiveProjection` has
/// none): what a dataset camera saw. Infinite reverse-Z, like Bevy's perspective projection.
///
/// The intrinsics are those of a `width` x `height` image. For another viewport size they are
/// scaled so the vertical field of view stays the same and the principal point keeps its place
/// relative to the image centre; for a viewport of the same aspect ratio that is exactly the
/// resized dataset camera.
#[derive(Clone, Copy, Debug, PartialEq, Reflect)]
pub struct PinholeProjection {
    pub width: f32,
    pub height: f32,
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
    pub near: f32,
    /// Only used for frustum culling and shadow cascades (the projection itself is infinite).
    pub far: f32,
    /// The viewport size Bevy last reported.
    viewport: Vec2,
}

impl PinholeProjection {
    pub fn from_camera(camera: &PinholeCamera) -> Self {
        Self {
            width: camera.width as f32,
            height: camera.height as f32,
            fx: camera.fx as f32,
            fy: camera.fy as f32,
            cx: camera.cx as f32,
            cy: camera.cy as f32,
            near: 0.01,
            far: 1000.0,
            viewport: Vec2::new(camera.width as f32, camera.height as f32),
        }
    }

    /// Intrinsics for the current viewport: (fx, fy, cx, cy) in its pixels.
    fn scaled(&self) -> (f32, f32, f32, f32, Vec2) {
        let size = self.viewport;
        let scale = size.y / self.height;
        let cx = (self.cx - self.width / 2.0) * scale + size.x / 2.0;
        let cy = self.cy * scale;
        (self.fx * scale, self.fy * scale, cx, cy, size)
    }

    /// Camera-space corner directions (at depth 1) of the image: bottom right, top right, top
    /// left, bottom left, in Bevy view axes.
    fn corners_at_unit_depth(&self) -> [Vec3A; 4] {
        let (fx, fy, cx, cy, size) = self.scaled();
        let point = |u: f32, v: f32| Vec3A::new((u - cx) / fx, -(v - cy) / fy, -1.0);
        [
            point(size.x, size.y),
            point(size.x, 0.0),
            point(0.0, 0.0),
            point(0.0, size.y),
        ]
    }
}

impl CameraProjection for PinholeProjection {
    fn get_clip_from_view(&self) -> Mat4 {
        let (fx, fy, cx, cy, size) = self.scaled();
        Mat4::from_cols(
            Vec4::new(2.0 * fx / size.x, 0.0, 0.0, 0.0),
            Vec4::new(0.0, 2.0 * fy / size.y, 0.0, 0.0),
            Vec4::new(1.0 - 2.0 * cx / size.x, 2.0 * cy / size.y - 1.0, 0.0, -1.0),
            Vec4::new(0.0, 0.0, self.near, 0.0),
        )
    }

    fn get_clip_from_view_for_sub(&self, sub_view: &SubCameraView) -> Mat4 {
        // The sub-view's pixels are a window of the full image: shift the principal point and
        // rescale to the sub-view's size.
        let full = sub_view.full_size.as_vec2();
        let mut projection = *self;
        projection.viewport = full;
        let (fx, fy, cx, cy, _) = projection.scaled();
        let size = sub_view.size.as_vec2();
        let (cx, cy) = (cx - sub_view.offset.x, cy - sub_view.offset.y);
        Mat4::from_cols(
            Vec4::new(2.0 * fx / size.x, 0.0, 0.0, 0.0),
            Vec4::new(0.0, 2.0 * fy / size.y, 0.0, 0.0),
            Vec4::new(1.0 - 2.0 * cx / size.x, 2.0 * cy / size.y - 1.0, 0.0, -1.0),
            Vec4::new(0.0, 0.0, self.near, 0.0),
        )
    }

    fn update(&mut self, width: f32, height: f32) {
        if width > 0.0 && height > 0.0 {
            self.viewport = Vec2::new(width, height);
        }
    }

    fn far(&self) -> f32 {
        self.far
    }

    fn get_frustum_corners(&self, z_near: f32, z_far: f32) -> [Vec3A; 8] {
        let unit = self.corners_at_unit_depth();
        let at = |depth: f32| unit.map(|c| c * depth.abs());
        let near = at(z_near);
        let far = at(z_far);
        [
            near[0], near[1], near[2], near[3], far[0], far[1], far[2], far[3],
        ]
    }
}
