//! The Gaussian cloud: raw parameters on the CPU ([`Gaussians`]) and on the GPU
//! ([`GaussianCloud`]), PLY input/output ([`ply`]) and initialisation ([`init`]).
//!
//! Parameters are stored as the reference stores them: positions, log-scales, unnormalised
//! rotation quaternions `(w, x, y, z)`, opacity logits, and SH coefficients (DC and rest).
//! Each parameter group lives in its own flat `f32` array (structure of arrays), identical in
//! CPU and GPU memory, so uploads and downloads are plain copies.

pub mod cameras_json;
pub mod cloud;
pub mod densify;
#[cfg(feature = "train")]
pub mod init;
pub mod ply;

pub use cloud::{
    AdamHyper, DensifyStats, GaussianCloud, OptimizerState, ParamBuffers, max_gaussians,
    widest_group_bytes,
};

use crate::sh;

/// One of the six parameter groups, each with its own learning rate (REFERENCE.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamGroup {
    /// `xyz`: 3 floats per Gaussian.
    Means,
    /// `scaling` (log of the axis scales): 3 floats.
    LogScales,
    /// `rotation` (unnormalised quaternion w, x, y, z): 4 floats.
    Rotations,
    /// `opacity` (logit): 1 float.
    Opacities,
    /// `f_dc`: 3 floats (one per colour channel).
    ShDc,
    /// `f_rest`: `3 * ((degree + 1)^2 - 1)` floats, coefficient-major: index `k * 3 + c` is
    /// colour channel `c` of coefficient `k + 1`.
    ShRest,
}

impl ParamGroup {
    pub const ALL: [ParamGroup; 6] = [
        ParamGroup::Means,
        ParamGroup::LogScales,
        ParamGroup::Rotations,
        ParamGroup::Opacities,
        ParamGroup::ShDc,
        ParamGroup::ShRest,
    ];

    /// Floats per Gaussian in this group for a cloud of SH degree `sh_degree`.
    pub const fn width(self, sh_degree: u32) -> usize {
        match self {
            ParamGroup::Means | ParamGroup::LogScales | ParamGroup::ShDc => 3,
            ParamGroup::Rotations => 4,
            ParamGroup::Opacities => 1,
            ParamGroup::ShRest => 3 * sh::rest_coeffs_for_degree(sh_degree),
        }
    }

    /// The reference's name for the group (also used in error messages).
    pub const fn name(self) -> &'static str {
        match self {
            ParamGroup::Means => "xyz",
            ParamGroup::LogScales => "scaling",
            ParamGroup::Rotations => "rotation",
            ParamGroup::Opacities => "opacity",
            ParamGroup::ShDc => "f_dc",
            ParamGroup::ShRest => "f_rest",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// A Gaussian cloud in CPU memory (for initialisation, PLY files, checkpoints and tests).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gaussians {
    /// SH degree of the stored coefficients (0..=3).
    pub sh_degree: u32,
    pub means: Vec<f32>,
    pub log_scales: Vec<f32>,
    pub rotations: Vec<f32>,
    pub logit_opacities: Vec<f32>,
    pub sh_dc: Vec<f32>,
    pub sh_rest: Vec<f32>,
}

impl Gaussians {
    /// An empty cloud of the given SH degree.
    pub fn empty(sh_degree: u32) -> Self {
        Self {
            sh_degree,
            ..Self::default()
        }
    }

    /// Number of Gaussians.
    pub fn len(&self) -> usize {
        self.logit_opacities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The flat array of a parameter group.
    pub fn group(&self, group: ParamGroup) -> &[f32] {
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
    pub fn group_mut(&mut self, group: ParamGroup) -> &mut Vec<f32> {
        match group {
            ParamGroup::Means => &mut self.means,
            ParamGroup::LogScales => &mut self.log_scales,
            ParamGroup::Rotations => &mut self.rotations,
            ParamGroup::Opacities => &mut self.logit_opacities,
            ParamGroup::ShDc => &mut self.sh_dc,
            ParamGroup::ShRest => &mut self.sh_rest,
        }
    }

    /// Checks that every group has `len * width` values; names the first group that does not.
    pub fn check_shapes(&self) -> Result<(), String> {
        let n = self.len();
        for group in ParamGroup::ALL {
            let expected = n * group.width(self.sh_degree);
            let actual = self.group(group).len();
            if actual != expected {
                return Err(format!(
                    "parameter group {} has {actual} values, expected {expected} for {n} \
                     Gaussians of SH degree {}",
                    group.name(),
                    self.sh_degree
                ));
            }
        }
        Ok(())
    }

    /// Appends Gaussian `i` of `other` (which must have the same SH degree).
    pub fn push_from(&mut self, other: &Gaussians, i: usize) {
        debug_assert_eq!(self.sh_degree, other.sh_degree);
        for group in ParamGroup::ALL {
            let w = group.width(self.sh_degree);
            let src = &other.group(group)[i * w..(i + 1) * w];
            self.group_mut(group).extend_from_slice(src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_match_reference_layout() {
        let widths: Vec<usize> = ParamGroup::ALL.iter().map(|g| g.width(3)).collect();
        // 3 + 3 + 4 + 1 + 3 + 45 = 59 parameters per Gaussian at degree 3.
        assert_eq!(widths, [3, 3, 4, 1, 3, 45]);
        assert_eq!(ParamGroup::ShRest.width(0), 0);
    }

    #[test]
    fn shape_check_names_the_group() {
        let mut g = Gaussians::empty(1);
        g.push_from(
            &Gaussians {
                sh_degree: 1,
                means: vec![0.0; 3],
                log_scales: vec![0.0; 3],
                rotations: vec![1.0, 0.0, 0.0, 0.0],
                logit_opacities: vec![0.0],
                sh_dc: vec![0.0; 3],
                sh_rest: vec![0.0; 9],
            },
            0,
        );
        assert!(g.check_shapes().is_ok());
        g.sh_rest.pop();
        assert!(g.check_shapes().unwrap_err().contains("f_rest"));
    }
}
