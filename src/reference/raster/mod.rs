//! f64 CPU reference of the differentiable Gaussian rasterizer: ARCHITECTURE.md, "The rasterizer
//! (forward)" and "(backward)", with the conventions of REFERENCE.md ("Rasterizer conventions").
//!
//! This is the ground truth the GPU kernels (`gpu::raster`) are tested against, so it follows the
//! specification literally, with plain loops and no tiling:
//!
//! - [`project`]: per Gaussian, steps 1-11 of the specification (culling, EWA covariance, conic,
//!   opacity, screen extent, tile rectangle, SH colour) — see `projection.rs`;
//! - [`render`]: per pixel, every visible Gaussian in `(depth, index)` order whose tile rectangle
//!   contains the pixel's tile, composited front to back — see `composite.rs`;
//! - [`render_backward`]: the hand-derived chain rule of `L = sum(d_image .* image)`, structured
//!   like the GPU kernels: per pixel back to front to the 2D quantities (mean, conic, opacity,
//!   colour), then per Gaussian back through the projection to the raw parameters.
//!
//! Thresholds are the f32 constants of [`crate::render_settings`] widened exactly to f64, so the
//! reference and the GPU compare against the same numbers. The tests prove the backward pass
//! against central finite differences of [`render`] (`tests_fd.rs`) and check hand-computable
//! cases (`tests_cases.rs`).
//!
//! Conventions the specification leaves open, and what this reference does (the GPU matches):
//! - a Gaussian is culled (as "non-finite") if any of its stored parameters is non-finite,
//!   including SH coefficients above the active degree;
//! - a quaternion with `|q|^2 < 1e-30` is culled (it has no rotation to normalise);
//! - a non-finite or non-positive `det` culls (so NaN from overflowing scales culls too);
//! - the alpha cap is active when `opacity * exp(power) > 0.99` (strictly); a colour channel is
//!   clamped when its raw value `< 0` (strictly);
//! - the Jacobian clamp is active when `t.x / t.z < -lim_x-` or `> lim_x+` (strictly); there
//!   `tx = t.z * limit`, whose exact derivative is 0 with respect to `t.x` and `limit` with
//!   respect to `t.z` (inria and gsplat drop that second term; the exact one is used here);
//! - tile rectangles use `floor` on the f64 values, then clamp to `[0, grid]`;
//! - the tight bound's sigma count is `min(3.33, sqrt(max(0, 2 ln(255 opacity))))`;
//! - equal depths composite in index order (sort key `(depth, index)`);
//! - the reported screen radius saturates at `u32::MAX`;
//! - [`Gradients::color`] is `dL/d(colour)` as the compositing sees it, before clamped channels
//!   are zeroed (the zeroing happens on the way to the SH coefficients).

mod colour;
mod composite;
mod projection;
mod scene;
#[cfg(test)]
mod tests_cases;
#[cfg(test)]
mod tests_fd;

pub use scene::{random_scene, random_settings};

use crate::camera::Camera;
use crate::model::{Gaussians, ParamGroup};
use crate::render_settings::RenderSettings;
use composite::PixelTrace;
use projection::GaussianProjection;

/// f64 copy of a cloud's parameters, same layout as [`Gaussians`] (flat arrays, Gaussian `i` at
/// `[i * width, (i + 1) * width)`, `sh_rest` coefficient-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Params64 {
    pub sh_degree: u32,
    pub means: Vec<f64>,
    pub log_scales: Vec<f64>,
    pub rotations: Vec<f64>,
    pub logit_opacities: Vec<f64>,
    pub sh_dc: Vec<f64>,
    pub sh_rest: Vec<f64>,
}

impl From<&Gaussians> for Params64 {
    fn from(g: &Gaussians) -> Self {
        let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
        Self {
            sh_degree: g.sh_degree,
            means: widen(&g.means),
            log_scales: widen(&g.log_scales),
            rotations: widen(&g.rotations),
            logit_opacities: widen(&g.logit_opacities),
            sh_dc: widen(&g.sh_dc),
            sh_rest: widen(&g.sh_rest),
        }
    }
}

impl Params64 {
    /// Number of Gaussians.
    pub fn len(&self) -> usize {
        self.logit_opacities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Same shape, all values zero (a gradient accumulator).
    pub fn zeros_like(&self) -> Self {
        let zeros = |v: &[f64]| vec![0.0; v.len()];
        Self {
            sh_degree: self.sh_degree,
            means: zeros(&self.means),
            log_scales: zeros(&self.log_scales),
            rotations: zeros(&self.rotations),
            logit_opacities: zeros(&self.logit_opacities),
            sh_dc: zeros(&self.sh_dc),
            sh_rest: zeros(&self.sh_rest),
        }
    }

    /// The flat array of a parameter group.
    pub fn group(&self, group: ParamGroup) -> &[f64] {
        match group {
            ParamGroup::Means => &self.means,
            ParamGroup::LogScales => &self.log_scales,
            ParamGroup::Rotations => &self.rotations,
            ParamGroup::Opacities => &self.logit_opacities,
            ParamGroup::ShDc => &self.sh_dc,
            ParamGroup::ShRest => &self.sh_rest,
        }
    }

    /// The flat array of a parameter group, mutable.
    pub fn group_mut(&mut self, group: ParamGroup) -> &mut Vec<f64> {
        match group {
            ParamGroup::Means => &mut self.means,
            ParamGroup::LogScales => &mut self.log_scales,
            ParamGroup::Rotations => &mut self.rotations,
            ParamGroup::Opacities => &mut self.logit_opacities,
            ParamGroup::ShDc => &mut self.sh_dc,
            ParamGroup::ShRest => &mut self.sh_rest,
        }
    }

    /// The parameters of Gaussian `i` in one group.
    pub fn of(&self, group: ParamGroup, i: usize) -> &[f64] {
        let w = group.width(self.sh_degree);
        &self.group(group)[i * w..(i + 1) * w]
    }

    /// The parameters of Gaussian `i` in one group, mutable.
    pub fn of_mut(&mut self, group: ParamGroup, i: usize) -> &mut [f64] {
        let w = group.width(self.sh_degree);
        &mut self.group_mut(group)[i * w..(i + 1) * w]
    }

    /// Rounds to f32 (for uploading the same cloud to the GPU).
    pub fn to_gaussians(&self) -> Gaussians {
        let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        Gaussians {
            sh_degree: self.sh_degree,
            means: narrow(&self.means),
            log_scales: narrow(&self.log_scales),
            rotations: narrow(&self.rotations),
            logit_opacities: narrow(&self.logit_opacities),
            sh_dc: narrow(&self.sh_dc),
            sh_rest: narrow(&self.sh_rest),
        }
    }

    /// Panics unless every group has `len * width` values (the reference is a test oracle: a
    /// malformed cloud is a bug in the test, not user input).
    fn assert_shapes(&self) {
        for group in ParamGroup::ALL {
            let expected = self.len() * group.width(self.sh_degree);
            assert_eq!(
                self.group(group).len(),
                expected,
                "reference::raster: group {} has the wrong length for {} Gaussians of SH degree {}",
                group.name(),
                self.len(),
                self.sh_degree
            );
        }
    }
}

/// Projection result of one Gaussian (`visible == false` means culled; the other fields are then
/// zero).
#[derive(Clone, Debug, PartialEq)]
pub struct Projected {
    pub visible: bool,
    /// Pixel-space mean `(fx t.x / t.z + cx, fy t.y / t.z + cy)`.
    pub mean2d: [f64; 2],
    /// Inverse of the blurred 2D covariance: `(xx, xy, yy)` entries.
    pub conic: [f64; 3],
    /// `sigmoid(logit)`, times the antialiasing compensation in antialiased mode.
    pub opacity: f64,
    /// SH colour after the `max(0, .)` clamp.
    pub color: [f64; 3],
    /// Channels whose raw SH colour was negative (clamped to 0; no gradient).
    pub clamped: [bool; 3],
    /// View-space depth `t.z`.
    pub depth: f64,
    /// Screen radius in pixels, `max(extent.x, extent.y)`.
    pub radius: u32,
    /// Tile rectangle, `tile_min` inclusive, `tile_max` exclusive.
    pub tile_min: [u32; 2],
    pub tile_max: [u32; 2],
}

impl Projected {
    /// What a culled Gaussian reports.
    pub fn culled() -> Self {
        Self {
            visible: false,
            mean2d: [0.0; 2],
            conic: [0.0; 3],
            opacity: 0.0,
            color: [0.0; 3],
            clamped: [false; 3],
            depth: 0.0,
            radius: 0,
            tile_min: [0; 2],
            tile_max: [0; 2],
        }
    }
}

/// Projects every Gaussian (steps 1-11 of the specification).
pub fn project(params: &Params64, camera: &Camera, settings: &RenderSettings) -> Vec<Projected> {
    project_detailed(params, camera, settings)
        .iter()
        .map(projected_of)
        .collect()
}

/// A rendered image with what the backward pass and the tests need.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub width: u32,
    pub height: u32,
    /// Planar CHW: channel `c` of pixel `(x, y)` at `c * H * W + y * W + x`.
    pub image: Vec<f64>,
    /// Transmittance left after the last composited Gaussian, `y * W + x`.
    pub final_transmittance: Vec<f64>,
    pub projected: Vec<Projected>,
}

/// Renders a cloud: projection, then per-pixel front-to-back compositing.
pub fn render(params: &Params64, camera: &Camera, settings: &RenderSettings) -> Rendered {
    forward(params, camera, settings).rendered(camera)
}

/// Gradients of `L = sum(d_image .* image)`.
#[derive(Clone, Debug)]
pub struct Gradients {
    /// `dL/d(every raw parameter)`, same layout as the parameters.
    pub params: Params64,
    /// `dL/d(mean2d)` per Gaussian (pixel units; 0 if culled).
    pub mean2d: Vec<[f64; 2]>,
    /// `dL/d(conic)` per Gaussian (0 if culled).
    pub conic: Vec<[f64; 3]>,
    /// `dL/d(opacity)`, the post-sigmoid, post-compensation opacity (0 if culled).
    pub opacity: Vec<f64>,
    /// `dL/d(color)`, the colour after the clamp, before zeroing clamped channels (0 if culled).
    pub color: Vec<[f64; 3]>,
    /// `|(dL/du * W/2, dL/dv * H/2)|` per Gaussian, 0 if culled (the densification statistic).
    pub screen_grad_ndc_norm: Vec<f64>,
    /// Screen radius, 0 if culled.
    pub radii: Vec<u32>,
}

/// Analytic backward of [`render`] for `L = sum(d_image .* image)`; `d_image` is planar CHW like
/// the image.
pub fn render_backward(
    params: &Params64,
    camera: &Camera,
    settings: &RenderSettings,
    d_image: &[f64],
) -> Gradients {
    let pixel_count = (camera.width * camera.height) as usize;
    assert_eq!(
        d_image.len(),
        3 * pixel_count,
        "reference::raster: d_image must be 3 x H x W"
    );
    let Forward {
        detailed,
        projected,
        traces,
        ..
    } = forward(params, camera, settings);

    // Stage 1: per pixel, back to front, to the 2D quantities of each Gaussian.
    let grads_2d = composite::composite_backward(&projected, &traces, camera, settings, d_image);

    // Stage 2: per Gaussian, back through the projection to the raw parameters.
    let mut param_grads = params.zeros_like();
    for (i, projection) in detailed.iter().enumerate() {
        if let Ok(projection) = projection {
            projection::projection_backward(
                params,
                i,
                camera,
                settings,
                projection,
                &grads_2d[i],
                &mut param_grads,
            );
        }
    }

    let half_width = 0.5 * f64::from(camera.width);
    let half_height = 0.5 * f64::from(camera.height);
    Gradients {
        params: param_grads,
        mean2d: grads_2d.iter().map(|g| g.mean2d).collect(),
        conic: grads_2d.iter().map(|g| g.conic).collect(),
        opacity: grads_2d.iter().map(|g| g.opacity).collect(),
        color: grads_2d.iter().map(|g| g.color).collect(),
        screen_grad_ndc_norm: grads_2d
            .iter()
            .map(|g| (g.mean2d[0] * half_width).hypot(g.mean2d[1] * half_height))
            .collect(),
        radii: projected.iter().map(|p| p.radius).collect(),
    }
}

/// Every discrete decision of a render. Two renders with equal decisions are the same smooth
/// function of the parameters, so finite differences between them are meaningful.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderDecisions {
    /// Per Gaussian: culled or not, and for visible ones the tile rectangle, the clamped colour
    /// channels and whether the Jacobian clamp was active on x and y.
    pub gaussians: Vec<GaussianDecisions>,
    /// Per pixel (`y * W + x`): the composited Gaussians in order, each with whether its alpha was
    /// capped at 0.99. This also records every 1/255 skip and the depth order.
    pub pixels: Vec<Vec<(usize, bool)>>,
    /// Per pixel: whether compositing stopped because the transmittance would have fallen
    /// below 1e-4.
    pub stopped: Vec<bool>,
}

/// The discrete decisions of one Gaussian's projection.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianDecisions {
    pub visible: bool,
    pub tile_min: [u32; 2],
    pub tile_max: [u32; 2],
    pub color_clamped: [bool; 3],
    pub jacobian_clamped: [bool; 2],
}

/// The discrete decisions of a render (see [`RenderDecisions`]).
pub fn render_decisions(
    params: &Params64,
    camera: &Camera,
    settings: &RenderSettings,
) -> RenderDecisions {
    forward(params, camera, settings).decisions()
}

/// Everything the forward pass computes.
struct Forward {
    detailed: Vec<Result<GaussianProjection, projection::Cull>>,
    projected: Vec<Projected>,
    image: Vec<f64>,
    traces: Vec<PixelTrace>,
}

fn forward(params: &Params64, camera: &Camera, settings: &RenderSettings) -> Forward {
    let detailed = project_detailed(params, camera, settings);
    let projected: Vec<Projected> = detailed.iter().map(projected_of).collect();
    let (image, traces) = composite::composite_forward(&projected, camera, settings);
    Forward {
        detailed,
        projected,
        image,
        traces,
    }
}

impl Forward {
    fn rendered(self, camera: &Camera) -> Rendered {
        Rendered {
            width: camera.width,
            height: camera.height,
            image: self.image,
            final_transmittance: self.traces.iter().map(|t| t.final_transmittance).collect(),
            projected: self.projected,
        }
    }

    fn decisions(&self) -> RenderDecisions {
        let gaussians = self
            .detailed
            .iter()
            .map(|d| match d {
                Ok(p) => GaussianDecisions {
                    visible: true,
                    tile_min: p.projected.tile_min,
                    tile_max: p.projected.tile_max,
                    color_clamped: p.projected.clamped,
                    jacobian_clamped: p.jacobian_clamped,
                },
                Err(_) => GaussianDecisions {
                    visible: false,
                    tile_min: [0; 2],
                    tile_max: [0; 2],
                    color_clamped: [false; 3],
                    jacobian_clamped: [false; 2],
                },
            })
            .collect();
        let pixels = self.traces.iter().map(PixelTrace::decisions).collect();
        let stopped = self.traces.iter().map(|t| t.stopped).collect();
        RenderDecisions {
            gaussians,
            pixels,
            stopped,
        }
    }
}

fn project_detailed(
    params: &Params64,
    camera: &Camera,
    settings: &RenderSettings,
) -> Vec<Result<GaussianProjection, projection::Cull>> {
    params.assert_shapes();
    (0..params.len())
        .map(|i| projection::project_gaussian(params, i, camera, settings))
        .collect()
}

fn projected_of(detail: &Result<GaussianProjection, projection::Cull>) -> Projected {
    match detail {
        Ok(p) => p.projected.clone(),
        Err(_) => Projected::culled(),
    }
}
