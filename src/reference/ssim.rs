//! f64 reference of the training loss and its gradient (REFERENCE.md, "SSIM and metrics"):
//! SSIM's gradient and the loss `(1 - λ) L1 + λ (1 - SSIM)` that `gpu::loss` computes on the
//! GPU. The metrics themselves (L1, PSNR, SSIM, the window) are production code in
//! [`crate::image_metrics`], re-exported here so the tests read as before.
//!
//! Images are planar `f64` slices, channel-major (`c * H * W + y * W + x`), with any number of
//! channels (`len / (W H)`); ground truth packed as RGBA8 on the GPU is unpacked with
//! [`unpack_rgba8`].
//!
//! SSIM: an 11 x 11 Gaussian window (sigma 1.5, normalised) slides over every pixel of every
//! channel; pixels outside the image count as 0 (zero padding of 5, like torch's `conv2d`), so
//! the local means near the border are pulled toward 0. With the local statistics
//! `mu_x = G * x`, `var_x = G * x² - mu_x²`, `cov = G * (x y) - mu_x mu_y` (same for `y`):
//!
//! ```text
//! S = (2 mu_x mu_y + C1) (2 cov + C2) / ((mu_x² + mu_y² + C1) (var_x + var_y + C2))
//! ```
//!
//! and SSIM is the mean of `S` over all pixels and channels.
//!
//! The gradient: `S(p)` depends on `x(q)` through `mu_x(p)`, `G * x²(p)` and `G * (x y)(p)`, each
//! with weight `G(p - q)`. Collecting the terms,
//!
//! ```text
//! dS_total/dx(q) = Gᵀ * A (q) + 2 x(q) Gᵀ * B (q) + y(q) Gᵀ * C (q),
//!   A = ∂S/∂mu_x - 2 mu_x ∂S/∂var_x - mu_y ∂S/∂cov,   B = ∂S/∂var_x,   C = ∂S/∂cov,
//! ```
//!
//! where `Gᵀ *` sums over the output pixels `p` inside the image. The window is symmetric, so
//! `Gᵀ *` is the same zero-padded blur as `G *`. The GPU kernels follow these formulas exactly.

use crate::image_metrics::{ImageMetrics, channel_count, local_stats, ssim_from_stats};
pub use crate::image_metrics::{
    SSIM_C1, SSIM_C2, SSIM_WINDOW_RADIUS, SSIM_WINDOW_SIZE, blur, gaussian_window, l1, mse, psnr,
    psnr_from_mse, ssim, unpack_rgba8,
};

/// Clamps every value to `[0, 1]`, as the trainer does to the rendered image before the loss.
pub fn clamp_unit(image: &[f64]) -> Vec<f64> {
    image.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

/// The value an image has after it is saved as an 8-bit PNG and read back: clamped to `[0, 1]`
/// and rounded to the nearest 255th (halves up, as torchvision's `save_image`).
pub fn quantize_8bit(value: f64) -> f64 {
    (value.clamp(0.0, 1.0) * 255.0 + 0.5).floor() / 255.0
}

/// The partial derivatives of the SSIM of one pixel (`crate::image_metrics::ssim_from_stats`)
/// with respect to `mu_x`, `var_x` and `cov` (the other statistics held fixed).
#[derive(Clone, Copy, Debug)]
struct SsimTerms {
    d_mu_x: f64,
    d_var_x: f64,
    d_cov: f64,
}

fn ssim_terms(mu_x: f64, mu_y: f64, var_x: f64, var_y: f64, cov: f64) -> SsimTerms {
    let luminance_num = 2.0 * mu_x * mu_y + SSIM_C1;
    let structure_num = 2.0 * cov + SSIM_C2;
    let luminance_den = mu_x * mu_x + mu_y * mu_y + SSIM_C1;
    let structure_den = var_x + var_y + SSIM_C2;
    let den = luminance_den * structure_den;
    let value = ssim_from_stats(mu_x, mu_y, var_x, var_y, cov);
    SsimTerms {
        d_mu_x: 2.0 * mu_y * structure_num / den - 2.0 * mu_x * value / luminance_den,
        d_var_x: -value / structure_den,
        d_cov: 2.0 * luminance_num / den,
    }
}

/// Per-pixel SSIM terms of one channel, and `mu_x`.
fn channel_terms(x: &[f64], y: &[f64], width: usize, height: usize) -> (Vec<SsimTerms>, Vec<f64>) {
    let stats = local_stats(x, y, width, height);
    let terms = stats
        .iter()
        .map(|&(mx, my, vx, vy, cov)| ssim_terms(mx, my, vx, vy, cov))
        .collect();
    (terms, stats.iter().map(|s| s.0).collect())
}

/// The gradient of [`ssim`] (the mean) with respect to every value of `a`.
pub fn ssim_backward(a: &[f64], b: &[f64], width: usize, height: usize) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "ssim_backward: images of different sizes");
    let channels = channel_count(a.len(), width, height);
    let plane = width * height;
    let inv_count = 1.0 / a.len() as f64;
    let mut grad = vec![0.0; a.len()];
    for c in 0..channels {
        let range = c * plane..(c + 1) * plane;
        let (x, y) = (&a[range.clone()], &b[range.clone()]);
        let (terms, mu_x) = channel_terms(x, y, width, height);
        let mu_y = blur(y, width, height);
        // The maps A, B, C of the module documentation, blurred by the (symmetric) window.
        let map_a: Vec<f64> = (0..plane)
            .map(|i| terms[i].d_mu_x - 2.0 * mu_x[i] * terms[i].d_var_x - mu_y[i] * terms[i].d_cov)
            .collect();
        let map_b: Vec<f64> = terms.iter().map(|t| t.d_var_x).collect();
        let map_c: Vec<f64> = terms.iter().map(|t| t.d_cov).collect();
        let (blur_a, blur_b, blur_c) = (
            blur(&map_a, width, height),
            blur(&map_b, width, height),
            blur(&map_c, width, height),
        );
        for i in 0..plane {
            grad[range.start + i] =
                inv_count * (blur_a[i] + 2.0 * x[i] * blur_b[i] + y[i] * blur_c[i]);
        }
    }
    grad
}

/// The training loss of a rendered `image` against the ground truth `gt` (both planar,
/// `width x height`), and its gradient with respect to `image`.
///
/// The image is clamped to `[0, 1]` first; the gradient passes where `0 <= image <= 1` (like
/// `torch.clamp`) and is 0 elsewhere. The L1 term's derivative at `image == gt` is 0.
///
/// Returns `(loss, l1, ssim, d_loss/d_image)` with `loss = (1 - λ) l1 + λ (1 - ssim)`.
pub fn loss_and_grad(
    image: &[f64],
    gt: &[f64],
    width: usize,
    height: usize,
    lambda_dssim: f64,
) -> (f64, f64, f64, Vec<f64>) {
    assert_eq!(image.len(), gt.len(), "loss: images of different sizes");
    let x = clamp_unit(image);
    let l1_value = l1(&x, gt);
    let ssim_value = ssim(&x, gt, width, height);
    let d_ssim = ssim_backward(&x, gt, width, height);
    let inv_count = 1.0 / image.len() as f64;
    let d_image = (0..image.len())
        .map(|i| {
            let passes_clamp = (0.0..=1.0).contains(&image[i]);
            let d_l1 = inv_count * sign(x[i] - gt[i]);
            if passes_clamp {
                (1.0 - lambda_dssim) * d_l1 - lambda_dssim * d_ssim[i]
            } else {
                0.0
            }
        })
        .collect();
    let loss = (1.0 - lambda_dssim) * l1_value + lambda_dssim * (1.0 - ssim_value);
    (loss, l1_value, ssim_value, d_image)
}

/// -1, 0 or 1 (0 at 0, like torch's `sign` and the derivative torch uses for `abs` at 0).
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Evaluation metrics of `image` against `gt`: the image is clamped to `[0, 1]` and, when
/// `quantize_8bit`, rounded to 8 bits first (as metrics on saved PNGs are).
pub fn image_metrics(
    image: &[f64],
    gt: &[f64],
    width: usize,
    height: usize,
    quantize: bool,
) -> ImageMetrics {
    let x: Vec<f64> = if quantize {
        image.iter().map(|&v| quantize_8bit(v)).collect()
    } else {
        clamp_unit(image)
    };
    ImageMetrics {
        l1: l1(&x, gt),
        psnr: psnr(&x, gt),
        ssim: ssim(&x, gt, width, height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Pcg32;

    fn random_image(rng: &mut Pcg32, len: usize, low: f64, high: f64) -> Vec<f64> {
        (0..len)
            .map(|_| low + (high - low) * rng.next_f64())
            .collect()
    }

    /// A ground truth and an image correlated with it (so SSIM is far from 0 and 1).
    fn image_pair(seed: u64, len: usize, low: f64, high: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Pcg32::new(seed, 1);
        let gt = random_image(&mut rng, len, 0.0, 1.0);
        let image = gt
            .iter()
            .map(|g| low + (high - low) * (0.7 * g + 0.3 * rng.next_f64()))
            .collect();
        (image, gt)
    }

    /// Largest |a - b| and largest |b| over two gradients.
    fn max_error(a: &[f64], b: &[f64]) -> (f64, f64) {
        let error = a
            .iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
        let scale = b.iter().map(|v| v.abs()).fold(0.0, f64::max);
        (error, scale)
    }

    /// Central finite differences of `f` with respect to every value of `x`.
    fn finite_differences(x: &[f64], step: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let mut probe = x.to_vec();
        (0..x.len())
            .map(|i| {
                probe[i] = x[i] + step;
                let plus = f(&probe);
                probe[i] = x[i] - step;
                let minus = f(&probe);
                probe[i] = x[i];
                (plus - minus) / (2.0 * step)
            })
            .collect()
    }

    #[test]
    fn identical_images() {
        let (image, _) = image_pair(5, 3 * 19 * 13, 0.0, 1.0);
        assert!((ssim(&image, &image, 19, 13) - 1.0).abs() < 1e-14);
        let (error, _) = max_error(
            &ssim_backward(&image, &image, 19, 13),
            &vec![0.0; image.len()],
        );
        assert!(error < 1e-14, "{error}");
        assert_eq!(l1(&image, &image), 0.0);
        assert_eq!(psnr(&image, &image), f64::INFINITY);
        let (loss, l1_value, ssim_value, grad) = loss_and_grad(&image, &image, 19, 13, 0.2);
        assert!(loss.abs() < 1e-14 && l1_value == 0.0 && (ssim_value - 1.0).abs() < 1e-14);
        assert!(grad.iter().all(|g| g.abs() < 1e-14));
    }

    #[test]
    fn ssim_gradient_matches_finite_differences() {
        for (seed, (w, h)) in [(11, (19, 13)), (12, (23, 17))] {
            let (image, gt) = image_pair(seed, 3 * w * h, 0.02, 0.98);
            let analytic = ssim_backward(&image, &gt, w, h);
            let numeric = finite_differences(&image, 1e-6, |x| ssim(x, &gt, w, h));
            let (error, scale) = max_error(&numeric, &analytic);
            eprintln!(
                "ssim {w}x{h}: max |fd - analytic| / max |analytic| = {:.1e}",
                error / scale
            );
            assert!(
                scale > 0.0 && error <= 1e-6 * scale,
                "{w}x{h}: {error} vs {scale}"
            );
        }
    }

    #[test]
    fn loss_gradient_matches_finite_differences() {
        for (seed, (w, h)) in [(21, (19, 13)), (22, (23, 17))] {
            let (image, gt) = image_pair(seed, 3 * w * h, 0.02, 0.98);
            let (_, _, _, analytic) = loss_and_grad(&image, &gt, w, h, 0.2);
            let numeric = finite_differences(&image, 1e-6, |x| loss_and_grad(x, &gt, w, h, 0.2).0);
            let (error, scale) = max_error(&numeric, &analytic);
            eprintln!(
                "loss {w}x{h}: max |fd - analytic| / max |analytic| = {:.1e}",
                error / scale
            );
            assert!(
                scale > 0.0 && error <= 1e-6 * scale,
                "{w}x{h}: {error} vs {scale}"
            );
        }
    }

    #[test]
    fn clamped_pixels_get_no_gradient() {
        let (w, h) = (19, 13);
        // Values in (-0.3, 1.3): about one in six is clamped.
        let (image, gt) = image_pair(31, 3 * w * h, -0.3, 1.3);
        let (_, _, _, analytic) = loss_and_grad(&image, &gt, w, h, 0.2);
        let numeric = finite_differences(&image, 1e-6, |x| loss_and_grad(x, &gt, w, h, 0.2).0);
        let (error, scale) = max_error(&numeric, &analytic);
        eprintln!(
            "clamped: max |fd - analytic| / max |analytic| = {:.1e}",
            error / scale
        );
        assert!(error <= 1e-6 * scale, "{error} vs {scale}");
        let outside: Vec<usize> = (0..image.len())
            .filter(|&i| !(0.0..=1.0).contains(&image[i]))
            .collect();
        assert!(outside.len() > image.len() / 10);
        assert!(outside.iter().all(|&i| analytic[i] == 0.0));
        // The bounds themselves pass the gradient (inclusive, like torch.clamp).
        let mut at_bounds = image.clone();
        at_bounds[0] = 0.0;
        at_bounds[1] = 1.0;
        let (_, _, _, grad) = loss_and_grad(&at_bounds, &gt, w, h, 0.2);
        assert!(grad[0] != 0.0 && grad[1] != 0.0);
        // Clamping happens before both terms: clamped pixels still shift SSIM and L1 like 0 or 1.
        let clamped = clamp_unit(&image);
        let (loss, l1_value, ssim_value, _) = loss_and_grad(&image, &gt, w, h, 0.2);
        assert_eq!(l1_value, l1(&clamped, &gt));
        assert_eq!(ssim_value, ssim(&clamped, &gt, w, h));
        assert!((loss - (0.8 * l1_value + 0.2 * (1.0 - ssim_value))).abs() < 1e-15);
    }

    #[test]
    fn quantization_rounds_to_the_nearest_255th() {
        assert_eq!(quantize_8bit(-0.2), 0.0);
        assert_eq!(quantize_8bit(1.7), 1.0);
        assert_eq!(quantize_8bit(100.4 / 255.0), 100.0 / 255.0);
        assert_eq!(quantize_8bit(100.6 / 255.0), 101.0 / 255.0);
        let gt = unpack_rgba8(&[0xff_80_40_20; 12]);
        let noisy: Vec<f64> = gt.iter().map(|g| g + 0.3 / 255.0).collect();
        let metrics = image_metrics(&noisy, &gt, 4, 3, true);
        assert_eq!((metrics.l1, metrics.psnr), (0.0, f64::INFINITY));
        assert!(image_metrics(&noisy, &gt, 4, 3, false).psnr.is_finite());
    }
}
