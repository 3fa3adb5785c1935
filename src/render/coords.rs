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
/// "up" (their -y axes) becomes Bevy's +y; their average horizontal viewing direction (for an
/// orbit, where those cancel out, the first camera's) becomes -z, so a default Bevy camera
/// looks the way the capture did; and the point closest to all their optical axes (the object
/// an orbit capture circles) goes to the origin. Forward-facing captures, whose axes are nearly
/// parallel, are centred on the cameras' mean position instead.
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
    // The horizontal part of a direction, if it has one worth the name.
    let horizontal_part = |d: DVec3| {
        let h = d - up * d.dot(up);
        (h.length() > 0.1 * d.length()).then(|| h.normalize())
    };
    // Forward-facing captures look one way on average; an orbit's views cancel out, and
    // then the first camera's direction is the one to keep.
    let first_forward = cameras[0].rotation.row(2);
    let horizontal = horizontal_part(forward / cameras.len() as f64)
        .or_else(|| horizontal_part(first_forward))
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
/// If the camera's transform scales (a camera placed in a scaled scene), the rotation of the
/// result carries the inverse scale, as Bevy's view matrix does: camera-space coordinates are
/// then those of the unscaled scene.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera at `centre` looking at `target`, with the world direction `up` above it.
    fn looking_at(centre: DVec3, target: DVec3, up: DVec3) -> PinholeCamera {
        let z = (target - centre).normalize();
        let x = z.cross(up).normalize(); // OpenCV: x right, y down, z forward
        let y = z.cross(x);
        PinholeCamera::from_world_pose(
            80,
            60,
            70.0,
            72.0,
            43.0,
            28.0,
            DMat3::from_cols(x, y, z),
            centre,
        )
    }

    #[test]
    fn a_dataset_camera_becomes_a_bevy_camera_that_projects_like_it() {
        let camera = looking_at(
            DVec3::new(1.0, -2.0, 0.5),
            DVec3::new(0.2, 0.1, 3.0),
            DVec3::new(0.1, 0.0, 1.0),
        );
        let scene = Transform {
            translation: Vec3::new(0.3, 1.0, -2.0),
            rotation: Quat::from_euler(EulerRot::XYZ, 0.4, -1.1, 0.2),
            scale: Vec3::splat(1.5),
        };
        let (transform, projection) = bevy_camera(&camera, &scene);
        let Projection::Custom(custom) = &projection else {
            panic!("a pinhole projection")
        };
        let clip_from_view = custom.get_clip_from_view();
        // Points of the scene project to the same pixels through Bevy's matrices.
        for point in [DVec3::new(0.2, 0.1, 3.0), DVec3::new(-0.5, 0.7, 2.0)] {
            let (u, v) = camera.project(camera.to_camera(point));
            let world = scene.transform_point(point.as_vec3());
            let view = GlobalTransform::from(transform).affine().inverse();
            let clip = clip_from_view * view.transform_point3(world).extend(1.0);
            let ndc = clip.truncate() / clip.w;
            let pixel = ((ndc.x + 1.0) * 40.0, (1.0 - ndc.y) * 30.0);
            assert!((f64::from(pixel.0) - u).abs() < 1e-3, "{pixel:?} vs {u}");
            assert!((f64::from(pixel.1) - v).abs() < 1e-3, "{pixel:?} vs {v}");
        }
        // And the renderer recovers the camera (up to the scene's scale) from them.
        let recovered =
            pinhole_from_clip(clip_from_view, &GlobalTransform::from(transform), 80, 60).unwrap();
        assert!((recovered.fx - 70.0).abs() < 1e-3 && (recovered.fy - 72.0).abs() < 1e-3);
        assert!((recovered.cx - 43.0).abs() < 1e-3 && (recovered.cy - 28.0).abs() < 1e-3);
        let point = DVec3::new(-0.5, 0.7, 2.0);
        let in_world = scene.transform_point(point.as_vec3()).as_dvec3();
        // The camera was scaled with the scene: camera-space coordinates are the unscaled ones.
        let expected = camera.to_camera(point);
        let got = recovered.to_camera(in_world);
        assert!((got - expected).length() < 1e-4, "{got} vs {expected}");
        assert!(
            pinhole_from_clip(
                Mat4::orthographic_rh(-1.0, 1.0, -1.0, 1.0, 0.1, 10.0),
                &GlobalTransform::IDENTITY,
                80,
                60
            )
            .is_none()
        );
    }

    #[test]
    fn upright_transform_puts_the_cameras_up_along_y_and_their_focus_at_the_origin() {
        // An orbit of cameras around (1, 2, 3) in a world whose "up" is (0, -0.6, 0.8).
        let up = DVec3::new(0.0, -0.6, 0.8);
        let focus = DVec3::new(1.0, 2.0, 3.0);
        let side = up.any_orthonormal_vector();
        let other = up.cross(side);
        let cameras: Vec<PinholeCamera> = (0..12)
            .map(|k| {
                let angle = f64::from(k) * std::f64::consts::TAU / 12.0;
                let centre = focus + 3.0 * (side * angle.cos() + other * angle.sin()) + 1.0 * up;
                looking_at(centre, focus, up)
            })
            .collect();
        let transform = upright_transform(&cameras);
        let mapped_up = transform.rotation * up.as_vec3();
        assert!((mapped_up - Vec3::Y).length() < 1e-4, "{mapped_up}");
        // The first camera looks along -z, horizontally.
        let first = transform.rotation * cameras[0].rotation.row(2).as_vec3();
        assert!(first.x.abs() < 1e-4 && first.z < -0.5, "{first}");
        assert!(transform.transform_point(focus.as_vec3()).length() < 1e-3);
        // A plain OpenCV scene (y down) turns upright with the fixed rotation.
        let down = opencv_scene_transform().rotation * Vec3::Y;
        assert!((down + Vec3::Y).length() < 1e-6);
    }

    #[test]
    fn the_projection_keeps_the_vertical_field_for_other_viewport_shapes() {
        let camera = looking_at(DVec3::ZERO, DVec3::Z, DVec3::NEG_Y);
        let mut projection = PinholeProjection::from_camera(&camera);
        projection.update(160.0, 60.0);
        let (fx, fy, cx, cy, _) = projection.scaled();
        assert_eq!((fx, fy), (70.0, 72.0));
        // The principal point keeps its offset from the image centre (43 - 40 = 3).
        assert_eq!((cx, cy), (83.0, 28.0));
        projection.update(160.0, 120.0);
        let (fx, fy, cx, cy, _) = projection.scaled();
        assert_eq!((fx, fy, cx, cy), (140.0, 144.0, 86.0, 56.0));
    }
}
