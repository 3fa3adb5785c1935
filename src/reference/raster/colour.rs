//! View-dependent colour from spherical harmonics (REFERENCE.md, "SH colour"), with the
//! derivative of the basis with respect to the view direction.

use super::Params64;
use crate::model::ParamGroup;
use crate::sh::{self, C1, C2, C3};
use glam::DVec3;

/// Coefficient `j` (0 = DC) of colour channel `c` of Gaussian `i`.
pub(super) fn sh_coefficient(params: &Params64, i: usize, j: usize, c: usize) -> f64 {
    if j == 0 {
        params.of(ParamGroup::ShDc, i)[c]
    } else {
        params.of(ParamGroup::ShRest, i)[(j - 1) * 3 + c]
    }
}

/// Mutable access to coefficient `j` of channel `c` (for gradients, same layout).
pub(super) fn sh_coefficient_mut(params: &mut Params64, i: usize, j: usize, c: usize) -> &mut f64 {
    if j == 0 {
        &mut params.of_mut(ParamGroup::ShDc, i)[c]
    } else {
        &mut params.of_mut(ParamGroup::ShRest, i)[(j - 1) * 3 + c]
    }
}

/// `sum_j basis_j(dir) coeff_j + 0.5` per channel, before the clamp at 0.
pub(super) fn raw_colour(params: &Params64, i: usize, degree: u32, dir: DVec3) -> [f64; 3] {
    let basis = sh::basis(degree, dir.to_array());
    std::array::from_fn(|c| {
        let sum: f64 = basis
            .iter()
            .enumerate()
            .map(|(j, b)| b * sh_coefficient(params, i, j, c))
            .sum();
        sum + 0.5
    })
}

/// The gradient of each basis function of [`sh::basis`] with respect to `(x, y, z)`, the
/// components treated as independent (the normalisation is differentiated by the caller).
pub(super) fn basis_gradients(degree: u32, d: DVec3) -> Vec<DVec3> {
    let DVec3 { x, y, z } = d;
    let v = DVec3::new;
    let mut g = vec![v(0.0, 0.0, 0.0)];
    if degree >= 1 {
        // -C1 y, C1 z, -C1 x
        g.extend([v(0.0, -C1, 0.0), v(0.0, 0.0, C1), v(-C1, 0.0, 0.0)]);
    }
    if degree >= 2 {
        g.extend([
            // C2[0] x y
            v(C2[0] * y, C2[0] * x, 0.0),
            // C2[1] y z
            v(0.0, C2[1] * z, C2[1] * y),
            // C2[2] (2 zz - xx - yy)
            v(-2.0 * C2[2] * x, -2.0 * C2[2] * y, 4.0 * C2[2] * z),
            // C2[3] x z
            v(C2[3] * z, 0.0, C2[3] * x),
            // C2[4] (xx - yy)
            v(2.0 * C2[4] * x, -2.0 * C2[4] * y, 0.0),
        ]);
    }
    if degree >= 3 {
        let (xx, yy, zz) = (x * x, y * y, z * z);
        g.extend([
            // C3[0] y (3 xx - yy)
            v(6.0 * C3[0] * x * y, C3[0] * (3.0 * xx - 3.0 * yy), 0.0),
            // C3[1] x y z
            v(C3[1] * y * z, C3[1] * x * z, C3[1] * x * y),
            // C3[2] y (4 zz - xx - yy)
            v(
                -2.0 * C3[2] * x * y,
                C3[2] * (4.0 * zz - xx - 3.0 * yy),
                8.0 * C3[2] * y * z,
            ),
            // C3[3] z (2 zz - 3 xx - 3 yy)
            v(
                -6.0 * C3[3] * x * z,
                -6.0 * C3[3] * y * z,
                C3[3] * (6.0 * zz - 3.0 * xx - 3.0 * yy),
            ),
            // C3[4] x (4 zz - xx - yy)
            v(
                C3[4] * (4.0 * zz - 3.0 * xx - yy),
                -2.0 * C3[4] * x * y,
                8.0 * C3[4] * x * z,
            ),
            // C3[5] z (xx - yy)
            v(2.0 * C3[5] * x * z, -2.0 * C3[5] * y * z, C3[5] * (xx - yy)),
            // C3[6] x (xx - 3 yy)
            v(C3[6] * (3.0 * xx - 3.0 * yy), -6.0 * C3[6] * x * y, 0.0),
        ]);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each basis gradient against central differences of `sh::basis`.
    #[test]
    fn basis_gradients_match_finite_differences() {
        let d = DVec3::new(0.3, -0.5, 0.8); // need not be unit: components are independent here
        let h = 1e-6;
        let grads = basis_gradients(3, d);
        assert_eq!(grads.len(), 16);
        for axis in 0..3 {
            let mut plus = d.to_array();
            let mut minus = d.to_array();
            plus[axis] += h;
            minus[axis] -= h;
            let (bp, bm) = (sh::basis(3, plus), sh::basis(3, minus));
            for j in 0..16 {
                let fd = (bp[j] - bm[j]) / (2.0 * h);
                let analytic = grads[j][axis];
                assert!(
                    (fd - analytic).abs() <= 1e-8 * (1.0 + analytic.abs()),
                    "basis {j}, axis {axis}: fd {fd} vs analytic {analytic}"
                );
            }
        }
    }
}
