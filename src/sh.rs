//! Real spherical-harmonics constants and helpers (REFERENCE.md, "SH colour").

/// Band 0.
pub const C0: f64 = 0.282_094_791_773_878_14;
/// Band 1.
pub const C1: f64 = 0.488_602_511_902_919_9;
/// Band 2.
pub const C2: [f64; 5] = [
    1.092_548_430_592_079_2,
    -1.092_548_430_592_079_2,
    0.315_391_565_252_520_05,
    -1.092_548_430_592_079_2,
    0.546_274_215_296_039_6,
];
/// Band 3.
pub const C3: [f64; 7] = [
    -0.590_043_589_926_643_5,
    2.890_611_442_640_554,
    -0.457_045_799_464_465_8,
    0.373_176_332_590_115_4,
    -0.457_045_799_464_465_8,
    1.445_305_721_320_277,
    -0.590_043_589_926_643_5,
];

/// Highest SH degree supported.
pub const MAX_SH_DEGREE: u32 = 3;

/// Number of SH coefficients per colour channel for a degree: `(degree + 1)^2`.
pub const fn coeffs_for_degree(degree: u32) -> usize {
    ((degree + 1) * (degree + 1)) as usize
}

/// Number of non-DC coefficients per channel ("f_rest" has 3 times this many values).
pub const fn rest_coeffs_for_degree(degree: u32) -> usize {
    coeffs_for_degree(degree) - 1
}

/// The DC coefficient that makes a Gaussian show `rgb` (in [0, 1]) from every direction.
pub fn rgb_to_sh_dc(rgb: f64) -> f64 {
    (rgb - 0.5) / C0
}

/// Inverse of [`rgb_to_sh_dc`].
pub fn sh_dc_to_rgb(dc: f64) -> f64 {
    dc * C0 + 0.5
}

/// The SH basis values for unit direction `d`, up to `degree`, in the reference's order
/// (index 0 is the DC term).
pub fn basis(degree: u32, d: [f64; 3]) -> Vec<f64> {
    let [x, y, z] = d;
    let mut b = vec![C0];
    if degree >= 1 {
        b.extend([-C1 * y, C1 * z, -C1 * x]);
    }
    if degree >= 2 {
        let (xx, yy, zz) = (x * x, y * y, z * z);
        b.extend([
            C2[0] * x * y,
            C2[1] * y * z,
            C2[2] * (2.0 * zz - xx - yy),
            C2[3] * x * z,
            C2[4] * (xx - yy),
        ]);
    }
    if degree >= 3 {
        let (xx, yy, zz) = (x * x, y * y, z * z);
        b.extend([
            C3[0] * y * (3.0 * xx - yy),
            C3[1] * x * y * z,
            C3[2] * y * (4.0 * zz - xx - yy),
            C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            C3[4] * x * (4.0 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3.0 * yy),
        ]);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coefficient_counts() {
        assert_eq!(
            (0..=3).map(rest_coeffs_for_degree).collect::<Vec<_>>(),
            [0, 3, 8, 15]
        );
        for degree in 0..=3 {
            assert_eq!(
                basis(degree, [0.0, 0.0, 1.0]).len(),
                coeffs_for_degree(degree)
            );
        }
    }

    #[test]
    fn dc_round_trip() {
        for v in [0.0, 0.25, 1.0] {
            assert!((sh_dc_to_rgb(rgb_to_sh_dc(v)) - v).abs() < 1e-15);
        }
    }
}
