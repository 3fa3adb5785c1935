//! Image quality metrics on the CPU, in f64: L1, PSNR and SSIM as the reference computes them
//! (REFERENCE.md, "SSIM and metrics"). `splatforge metrics` uses them on saved PNG files; the
//! GPU kernels of `gpu::loss` compute the same on the GPU, and [`ImageMetrics`] is the result
//! type of both.
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

/// Evaluation metrics of one image against its ground truth.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImageMetrics {
    /// Mean absolute error over all pixels and channels.
    pub l1: f64,
    /// `20 log10(1 / sqrt(mse))` over all pixels and channels; `f64::INFINITY` when the images
    /// are identical.
    pub psnr: f64,
    /// Mean SSIM over all pixels and channels.
    pub ssim: f64,
}

/// Width (and height) of the SSIM window, in pixels.
pub const SSIM_WINDOW_SIZE: usize = 11;
/// Half the window: the zero padding on each side.
pub const SSIM_WINDOW_RADIUS: usize = SSIM_WINDOW_SIZE / 2;
/// Standard deviation of the Gaussian window, in pixels.
pub const SSIM_WINDOW_SIGMA: f64 = 1.5;
/// SSIM stabiliser of the means, `(0.01 L)²` with dynamic range `L = 1`.
pub const SSIM_C1: f64 = 0.01 * 0.01;
/// SSIM stabiliser of the variances, `(0.03 L)²`.
pub const SSIM_C2: f64 = 0.03 * 0.03;

/// The 1-D Gaussian window, normalised to sum 1; the 2-D window is its outer product.
pub fn gaussian_window() -> [f64; SSIM_WINDOW_SIZE] {
    let radius = SSIM_WINDOW_RADIUS as f64;
    let raw: [f64; SSIM_WINDOW_SIZE] = std::array::from_fn(|i| {
        let d = i as f64 - radius;
        (-d * d / (2.0 * SSIM_WINDOW_SIGMA * SSIM_WINDOW_SIGMA)).exp()
    });
    let sum: f64 = raw.iter().sum();
    raw.map(|w| w / sum)
}

/// Unpacks RGBA8 pixels (`r | g << 8 | b << 16 | a << 24`, one `u32` per pixel) into a planar
/// RGB image with values `byte / 255`. Alpha is dropped.
pub fn unpack_rgba8(packed: &[u32]) -> Vec<f64> {
    let plane = packed.len();
    let mut out = vec![0.0; 3 * plane];
    for (i, &pixel) in packed.iter().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f64::from((pixel >> (8 * c)) & 0xff) / 255.0;
        }
    }
    out
}

/// Number of channels of a planar image of `width x height` pixels with `len` values.
pub(crate) fn channel_count(len: usize, width: usize, height: usize) -> usize {
    let plane = width * height;
    assert!(
        plane > 0 && len.is_multiple_of(plane),
        "image of {len} values is not planar {width}x{height}"
    );
    len / plane
}

/// The zero-padded Gaussian blur `G * plane` of one `width x height` channel (separable: a
/// horizontal then a vertical pass of the 1-D window, each treating outside pixels as 0).
pub fn blur(plane: &[f64], width: usize, height: usize) -> Vec<f64> {
    assert_eq!(plane.len(), width * height, "blur: plane size");
    let window = gaussian_window();
    let radius = SSIM_WINDOW_RADIUS as isize;
    let tap = |offset: usize, position: usize, size: usize| -> Option<usize> {
        let p = position as isize + offset as isize - radius;
        (p >= 0 && p < size as isize).then_some(p as usize)
    };
    let mut rows = vec![0.0; width * height];
    for y in 0..height {
        for x in 0..width {
            rows[y * width + x] = (0..SSIM_WINDOW_SIZE)
                .filter_map(|k| tap(k, x, width).map(|sx| window[k] * plane[y * width + sx]))
                .sum();
        }
    }
    let mut out = vec![0.0; width * height];
    for y in 0..height {
        for x in 0..width {
            out[y * width + x] = (0..SSIM_WINDOW_SIZE)
                .filter_map(|k| tap(k, y, height).map(|sy| window[k] * rows[sy * width + x]))
                .sum();
        }
    }
    out
}

/// The SSIM of one pixel from its local statistics (the formula of the module documentation).
pub fn ssim_from_stats(mu_x: f64, mu_y: f64, var_x: f64, var_y: f64, cov: f64) -> f64 {
    (2.0 * mu_x * mu_y + SSIM_C1) * (2.0 * cov + SSIM_C2)
        / ((mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2))
}

/// The local statistics `(mu_x, mu_y, var_x, var_y, cov)` of every pixel of one channel.
pub fn local_stats(
    x: &[f64],
    y: &[f64],
    width: usize,
    height: usize,
) -> Vec<(f64, f64, f64, f64, f64)> {
    let product =
        |a: &[f64], b: &[f64]| -> Vec<f64> { a.iter().zip(b).map(|(p, q)| p * q).collect() };
    let mu_x = blur(x, width, height);
    let mu_y = blur(y, width, height);
    let mean_xx = blur(&product(x, x), width, height);
    let mean_yy = blur(&product(y, y), width, height);
    let mean_xy = blur(&product(x, y), width, height);
    (0..width * height)
        .map(|i| {
            (
                mu_x[i],
                mu_y[i],
                mean_xx[i] - mu_x[i] * mu_x[i],
                mean_yy[i] - mu_y[i] * mu_y[i],
                mean_xy[i] - mu_x[i] * mu_y[i],
            )
        })
        .collect()
}

/// Mean SSIM of `a` against `b` over all pixels and channels (planar, `width x height`).
pub fn ssim(a: &[f64], b: &[f64], width: usize, height: usize) -> f64 {
    assert_eq!(a.len(), b.len(), "ssim: images of different sizes");
    let channels = channel_count(a.len(), width, height);
    let plane = width * height;
    let total: f64 = (0..channels)
        .map(|c| {
            let range = c * plane..(c + 1) * plane;
            local_stats(&a[range.clone()], &b[range], width, height)
                .into_iter()
                .map(|(mx, my, vx, vy, cov)| ssim_from_stats(mx, my, vx, vy, cov))
                .sum::<f64>()
        })
        .sum();
    total / a.len() as f64
}

/// Mean absolute difference over all values.
pub fn l1(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "l1: images of different sizes");
    a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f64>() / a.len() as f64
}

/// Mean squared difference over all values.
pub fn mse(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "mse: images of different sizes");
    a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>() / a.len() as f64
}

/// PSNR in dB for values in `[0, 1]`: `20 log10(1 / sqrt(mse))`; `f64::INFINITY` for identical
/// images.
pub fn psnr(a: &[f64], b: &[f64]) -> f64 {
    psnr_from_mse(mse(a, b))
}

/// `20 log10(1 / sqrt(mse)) = -10 log10(mse)`, infinite when `mse` is 0.
pub fn psnr_from_mse(mse: f64) -> f64 {
    if mse <= 0.0 {
        f64::INFINITY
    } else {
        -10.0 * mse.log10()
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

    /// The zero-padded 2-D window sum written as the obvious double loop.
    fn blur_direct(plane: &[f64], width: usize, height: usize) -> Vec<f64> {
        let g = gaussian_window();
        let r = SSIM_WINDOW_RADIUS as isize;
        let mut out = vec![0.0; width * height];
        for y in 0..height as isize {
            for x in 0..width as isize {
                let mut sum = 0.0;
                for dy in -r..=r {
                    for dx in -r..=r {
                        let (sx, sy) = (x + dx, y + dy);
                        if sx >= 0 && sy >= 0 && sx < width as isize && sy < height as isize {
                            let weight = g[(dx + r) as usize] * g[(dy + r) as usize];
                            sum += weight * plane[sy as usize * width + sx as usize];
                        }
                    }
                }
                out[y as usize * width + x as usize] = sum;
            }
        }
        out
    }

    #[test]
    fn window_is_normalised_symmetric_gaussian() {
        let g = gaussian_window();
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for k in 0..SSIM_WINDOW_SIZE {
            assert_eq!(g[k], g[SSIM_WINDOW_SIZE - 1 - k]);
        }
        // By hand: 1 / (1 + 2 (e^(-1/4.5) + e^(-4/4.5) + e^(-9/4.5) + e^(-16/4.5) + e^(-25/4.5))).
        assert!((g[5] - 0.266_011).abs() < 1e-6, "{}", g[5]);
        assert!((g[4] / g[5] - (-1.0f64 / 4.5).exp()).abs() < 1e-15);
    }

    #[test]
    fn separable_blur_equals_the_direct_window_sum() {
        let mut rng = Pcg32::new(3, 0);
        for (w, h) in [(19, 13), (4, 7), (1, 1)] {
            let plane = random_image(&mut rng, w * h, -1.0, 2.0);
            let error = blur(&plane, w, h)
                .iter()
                .zip(blur_direct(&plane, w, h))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(error < 1e-14, "{w}x{h}: {error}");
        }
    }

    #[test]
    fn unpack_puts_red_in_the_low_byte() {
        let packed = [0xff_20_10_ffu32, 0x00_00_ff_00];
        let rgb = unpack_rgba8(&packed);
        assert_eq!(rgb, vec![1.0, 0.0, 16.0 / 255.0, 1.0, 32.0 / 255.0, 0.0]);
    }

    #[test]
    fn identical_images() {
        let mut rng = Pcg32::new(5, 1);
        let image = random_image(&mut rng, 3 * 19 * 13, 0.0, 1.0);
        assert!((ssim(&image, &image, 19, 13) - 1.0).abs() < 1e-14);
        assert_eq!(l1(&image, &image), 0.0);
        assert_eq!(psnr(&image, &image), f64::INFINITY);
    }

    #[test]
    fn constant_error_has_known_l1_and_psnr() {
        let gt = vec![0.25; 3 * 8 * 5];
        let image: Vec<f64> = gt.iter().map(|g| g + 0.1).collect();
        assert!((l1(&image, &gt) - 0.1).abs() < 1e-15);
        // mse = 0.01, so PSNR = 20 dB.
        assert!((psnr(&image, &gt) - 20.0).abs() < 1e-12);
    }
}
