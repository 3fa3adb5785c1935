//! Per-pixel compositing, forward and backward: ARCHITECTURE.md, "Rasterization". Plain loops:
//! every pixel visits every visible Gaussian in `(depth, index)` order and composites it only if
//! the pixel's tile lies in the Gaussian's tile rectangle, as the tiled GPU kernel does.

use super::Projected;
use crate::camera::Camera;
use crate::render_settings::{MAX_ALPHA, MIN_ALPHA, MIN_TRANSMITTANCE, RenderSettings, TILE_SIZE};

/// One Gaussian composited into one pixel.
#[derive(Clone, Debug)]
pub(super) struct Contribution {
    pub gaussian: usize,
    /// `exp(power)`, the Gaussian's falloff at the pixel centre.
    pub falloff: f64,
    /// `min(0.99, opacity * falloff)`.
    pub alpha: f64,
    /// Whether the cap at 0.99 was active (then alpha is a constant).
    pub capped: bool,
    /// Transmittance in front of this Gaussian.
    pub transmittance: f64,
}

/// What the forward pass did at one pixel.
#[derive(Clone, Debug, Default)]
pub(super) struct PixelTrace {
    /// Composited Gaussians, front to back.
    pub contributions: Vec<Contribution>,
    pub final_transmittance: f64,
    /// Whether compositing stopped because the transmittance would have fallen below 1e-4.
    pub stopped: bool,
}

impl PixelTrace {
    /// The discrete decisions at this pixel: which Gaussians, in which order, capped or not.
    pub fn decisions(&self) -> Vec<(usize, bool)> {
        self.contributions
            .iter()
            .map(|k| (k.gaussian, k.capped))
            .collect()
    }
}

/// The gradient of the loss with respect to one Gaussian's 2D quantities.
#[derive(Clone, Debug, Default)]
pub(super) struct Grad2d {
    pub mean2d: [f64; 2],
    pub conic: [f64; 3],
    pub opacity: f64,
    pub color: [f64; 3],
}

/// Visible Gaussians sorted front to back by `(depth, index)`.
fn depth_order(projected: &[Projected]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..projected.len())
        .filter(|&i| projected[i].visible)
        .collect();
    order.sort_by(|&i, &j| {
        projected[i]
            .depth
            .total_cmp(&projected[j].depth)
            .then(i.cmp(&j))
    });
    order
}

/// `-0.5 (A dx² + C dy²) - B dx dy` with `d = mean2d - pixel centre` and conic `(A, B, C)`.
fn power_at(p: &Projected, pixel_centre: [f64; 2]) -> (f64, [f64; 2]) {
    let d = [p.mean2d[0] - pixel_centre[0], p.mean2d[1] - pixel_centre[1]];
    let [ca, cb, cc] = p.conic;
    let power = -0.5 * (ca * d[0] * d[0] + cc * d[1] * d[1]) - cb * d[0] * d[1];
    (power, d)
}

fn tile_contains(p: &Projected, tile: [u32; 2]) -> bool {
    (p.tile_min[0]..p.tile_max[0]).contains(&tile[0])
        && (p.tile_min[1]..p.tile_max[1]).contains(&tile[1])
}

fn pixel_centre(x: u32, y: u32) -> [f64; 2] {
    [f64::from(x) + 0.5, f64::from(y) + 0.5]
}

/// Composites every pixel; returns the planar CHW image and each pixel's trace (`y * W + x`).
pub(super) fn composite_forward(
    projected: &[Projected],
    camera: &Camera,
    settings: &RenderSettings,
) -> (Vec<f64>, Vec<PixelTrace>) {
    let (width, height) = (camera.width, camera.height);
    let plane = (width * height) as usize;
    let background = settings.background.map(f64::from);
    let order = depth_order(projected);
    let mut image = vec![0.0; 3 * plane];
    let mut traces = Vec::with_capacity(plane);
    for y in 0..height {
        for x in 0..width {
            let tile = [x / TILE_SIZE, y / TILE_SIZE];
            let centre = pixel_centre(x, y);
            let mut transmittance = 1.0;
            let mut colour = [0.0; 3];
            let mut contributions = Vec::new();
            let mut stopped = false;
            for &g in &order {
                let p = &projected[g];
                if !tile_contains(p, tile) {
                    continue;
                }
                let (power, _) = power_at(p, centre);
                if power > 0.0 {
                    continue;
                }
                let falloff = power.exp();
                let unclamped_alpha = p.opacity * falloff;
                let capped = unclamped_alpha > f64::from(MAX_ALPHA);
                let alpha = if capped {
                    f64::from(MAX_ALPHA)
                } else {
                    unclamped_alpha
                };
                if alpha < f64::from(MIN_ALPHA) {
                    continue;
                }
                let next_transmittance = transmittance * (1.0 - alpha);
                if next_transmittance < f64::from(MIN_TRANSMITTANCE) {
                    stopped = true;
                    break;
                }
                for (acc, rgb) in colour.iter_mut().zip(p.color) {
                    *acc += rgb * alpha * transmittance;
                }
                contributions.push(Contribution {
                    gaussian: g,
                    falloff,
                    alpha,
                    capped,
                    transmittance,
                });
                transmittance = next_transmittance;
            }
            let pixel = (y * width + x) as usize;
            for c in 0..3 {
                image[c * plane + pixel] = colour[c] + transmittance * background[c];
            }
            traces.push(PixelTrace {
                contributions,
                final_transmittance: transmittance,
                stopped,
            });
        }
    }
    (image, traces)
}

/// Per pixel, back to front over its composited Gaussians: the gradient of
/// `L = sum(d_image .* image)` with respect to each Gaussian's mean2d, conic, opacity and colour.
///
/// With `T_k` the transmittance in front of contribution `k` and `S_k` the colour of everything
/// behind it (`sum_{j>k} rgb_j alpha_j T_j + T_final background`):
/// `dC/d rgb_k = alpha_k T_k` and `dC/d alpha_k = rgb_k T_k - S_k / (1 - alpha_k)`.
pub(super) fn composite_backward(
    projected: &[Projected],
    traces: &[PixelTrace],
    camera: &Camera,
    settings: &RenderSettings,
    d_image: &[f64],
) -> Vec<Grad2d> {
    let (width, height) = (camera.width, camera.height);
    let plane = (width * height) as usize;
    let background = settings.background.map(f64::from);
    let mut grads = vec![Grad2d::default(); projected.len()];
    for y in 0..height {
        for x in 0..width {
            let pixel = (y * width + x) as usize;
            let trace = &traces[pixel];
            let d_pixel: [f64; 3] = std::array::from_fn(|c| d_image[c * plane + pixel]);
            let mut behind = background.map(|bg| bg * trace.final_transmittance);
            for k in trace.contributions.iter().rev() {
                let p = &projected[k.gaussian];
                let grad = &mut grads[k.gaussian];
                let mut d_alpha = 0.0;
                for c in 0..3 {
                    grad.color[c] += d_pixel[c] * k.alpha * k.transmittance;
                    d_alpha +=
                        d_pixel[c] * (p.color[c] * k.transmittance - behind[c] / (1.0 - k.alpha));
                    behind[c] += p.color[c] * k.alpha * k.transmittance;
                }
                if k.capped {
                    continue; // alpha = 0.99 is a constant here
                }
                // alpha = opacity * exp(power): d/d opacity = exp(power), d/d power = alpha.
                grad.opacity += d_alpha * k.falloff;
                let d_power = d_alpha * k.alpha;
                let (_, [dx, dy]) = power_at(p, pixel_centre(x, y));
                let [ca, cb, cc] = p.conic;
                grad.mean2d[0] += d_power * (-ca * dx - cb * dy);
                grad.mean2d[1] += d_power * (-cc * dy - cb * dx);
                grad.conic[0] += d_power * (-0.5 * dx * dx);
                grad.conic[1] += d_power * (-dx * dy);
                grad.conic[2] += d_power * (-0.5 * dy * dy);
            }
        }
    }
    grads
}
