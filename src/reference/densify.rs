//! f64 reference of densification (clone, split, prune) and of the opacity reset, exactly as
//! REFERENCE.md ("Densify and prune") describes them, written as plain loops over
//! [`Gaussians`] with f64 Adam moments and statistics.
//!
//! Order of the result (the GPU version produces the same): the surviving original Gaussians in
//! their original order, then the surviving clones in the order of their parents, then the
//! surviving first children of every split parent, then the surviving second children. This is
//! the reference's order too: it appends clones, then `repeat(N, 1)` children, then prunes.
//!
//! The random offsets of split children come from [`split_normal`], a counter-based generator
//! keyed by (seed, parent index, child, axis) that `shaders/densify.wgsl` implements bit for bit
//! in its integer part, so both produce the same children up to float rounding.

use crate::model::densify::{DensifyParams, DensifyReport};
pub use crate::model::densify::{
    RESET_OPACITY, SPLIT_CHILDREN, SPLIT_SCALE_DIVISOR, pcg_hash, split_seed_key,
};
use crate::model::{Gaussians, ParamGroup};

/// Both Adam moments in f64, one flat array per group in [`ParamGroup::ALL`] order, laid out
/// like the parameters of [`Gaussians`].
#[derive(Clone, Debug, PartialEq)]
pub struct Moments {
    pub exp_avg: [Vec<f64>; 6],
    pub exp_avg_sq: [Vec<f64>; 6],
}

impl Moments {
    /// Zero moments for `len` Gaussians of the given SH degree.
    pub fn zeroed(len: usize, sh_degree: u32) -> Self {
        let zeros = ParamGroup::ALL.map(|g| vec![0.0; len * g.width(sh_degree)]);
        Self {
            exp_avg: zeros.clone(),
            exp_avg_sq: zeros,
        }
    }

    /// Appends Gaussian `i`'s moments from `other`, or zeros when `source` is `None`.
    fn push(&mut self, other: &Moments, source: Option<usize>, sh_degree: u32) {
        for group in ParamGroup::ALL {
            let (g, w) = (group.index(), group.width(sh_degree));
            for (dst, src) in [
                (&mut self.exp_avg[g], &other.exp_avg[g]),
                (&mut self.exp_avg_sq[g], &other.exp_avg_sq[g]),
            ] {
                match source {
                    Some(i) => dst.extend_from_slice(&src[i * w..(i + 1) * w]),
                    None => dst.extend(std::iter::repeat_n(0.0, w)),
                }
            }
        }
    }
}

/// The densification statistics in f64 (see `crate::model::DensifyStats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub grad_norm_sum: Vec<f64>,
    pub visible_count: Vec<u32>,
    pub max_radius: Vec<f64>,
}

impl Stats {
    pub fn zeroed(len: usize) -> Self {
        Self {
            grad_norm_sum: vec![0.0; len],
            visible_count: vec![0; len],
            max_radius: vec![0.0; len],
        }
    }
}

/// The standard normal sample of `axis` (0..3) of child `child` (0..2) of Gaussian `parent`
/// (its index before densification), for the seed key [`split_seed_key`].
///
/// Two uniforms from a chained PCG hash of (key, parent, child, axis, draw), 24 bits each, then
/// Box-Muller: `sqrt(-2 ln u1) cos(2 pi u2)` with `u1` in (0, 1] and `u2` in [0, 1).
pub fn split_normal(seed_key: u32, parent: u32, child: u32, axis: u32) -> f64 {
    let (u1, u2) = split_uniforms(seed_key, parent, child, axis);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The two uniforms behind [`split_normal`] (exact in f32 and f64 alike).
pub fn split_uniforms(seed_key: u32, parent: u32, child: u32, axis: u32) -> (f64, f64) {
    let stream = (child * 3 + axis) * 2;
    let base = pcg_hash(seed_key ^ parent);
    let bits1 = pcg_hash(base ^ stream);
    let bits2 = pcg_hash(base ^ (stream + 1));
    let unit = 1.0 / f64::from(1u32 << 24);
    let u1 = 1.0 - f64::from(bits1 >> 8) * unit;
    let u2 = f64::from(bits2 >> 8) * unit;
    (u1, u2)
}

/// The rotation matrix of the quaternion `(w, x, y, z)` after normalising it (rows).
pub fn rotation_matrix(q: [f64; 4]) -> [[f64; 3]; 3] {
    let norm = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    super::unit_quaternion_rotation(q.map(|v| v / norm))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Largest axis scale of Gaussian `i`.
fn max_scale(gaussians: &Gaussians, i: usize) -> f64 {
    gaussians.log_scales[3 * i..3 * i + 3]
        .iter()
        .map(|&s| f64::from(s).exp())
        .fold(f64::NEG_INFINITY, f64::max)
}

/// Where a Gaussian of the densified cloud comes from (indices before densification).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Original(usize),
    Clone(usize),
    Child { parent: usize, child: usize },
}

/// The result of [`densify_and_prune`].
#[derive(Clone, Debug, PartialEq)]
pub struct Densified {
    pub gaussians: Gaussians,
    pub moments: Moments,
    /// Where each Gaussian of the result comes from.
    pub origins: Vec<Origin>,
    pub report: DensifyReport,
}

/// Densifies and prunes; resets `stats` to zeros of the new length.
pub fn densify_and_prune(
    gaussians: &Gaussians,
    moments: &Moments,
    stats: &mut Stats,
    params: &DensifyParams,
) -> Densified {
    let n = gaussians.len();
    let threshold = f64::from(params.grad_threshold);
    let clone_max_scale = f64::from(params.percent_dense) * f64::from(params.extent);

    // Selection on the accumulated gradient and the size.
    let mut clones = Vec::new();
    let mut splits = Vec::new();
    for i in 0..n {
        // Never visible: 0 (the reference divides 0 by 0 and maps the NaN to 0). A NaN sum is
        // mapped to 0 as well.
        let count = stats.visible_count[i];
        let mut avg_grad = if count == 0 {
            0.0
        } else {
            stats.grad_norm_sum[i] / f64::from(count)
        };
        if avg_grad.is_nan() {
            avg_grad = 0.0;
        }
        if avg_grad >= threshold {
            let scale = max_scale(gaussians, i);
            if scale <= clone_max_scale {
                clones.push(i);
            } else if scale > clone_max_scale {
                splits.push(i);
            }
        }
    }

    // The densified cloud before pruning, in the documented order.
    let mut origins: Vec<Origin> = (0..n)
        .filter(|i| splits.binary_search(i).is_err())
        .map(Origin::Original)
        .collect();
    origins.extend(clones.iter().map(|&i| Origin::Clone(i)));
    for child in 0..SPLIT_CHILDREN {
        origins.extend(splits.iter().map(|&parent| Origin::Child { parent, child }));
    }

    let seed_key = split_seed_key(params.seed);
    let world_prune_scale = 0.1 * f64::from(params.extent);
    let mut out = Gaussians::empty(gaussians.sh_degree);
    let mut out_moments = Moments::zeroed(0, gaussians.sh_degree);
    let mut out_origins = Vec::new();
    for origin in origins.iter().copied() {
        let (source, radius) = match origin {
            Origin::Original(i) => (i, stats.max_radius[i]),
            // New Gaussians have not been seen yet: radius 0.
            Origin::Clone(i) | Origin::Child { parent: i, .. } => (i, 0.0),
        };
        let mut item = Gaussians::empty(gaussians.sh_degree);
        item.push_from(gaussians, source);
        if let Origin::Child { parent, child } = origin {
            split_child(&mut item, seed_key, parent, child);
        }
        let opacity = sigmoid(f64::from(item.logit_opacities[0]));
        let mut prune = opacity < f64::from(params.min_opacity);
        if let Some(max_screen_size) = params.max_screen_size {
            prune |= radius > f64::from(max_screen_size) || max_scale(&item, 0) > world_prune_scale;
        }
        if !prune {
            out.push_from(&item, 0);
            let kept = match origin {
                Origin::Original(i) => Some(i),
                _ => None,
            };
            out_moments.push(moments, kept, gaussians.sh_degree);
            out_origins.push(origin);
        }
    }

    *stats = Stats::zeroed(out.len());
    let report = DensifyReport {
        before: n as u32,
        cloned: clones.len() as u32,
        split: splits.len() as u32,
        pruned: (origins.len() - out.len()) as u32,
        after: out.len() as u32,
    };
    Densified {
        gaussians: out,
        moments: out_moments,
        origins: out_origins,
        report,
    }
}

/// Turns the copy of `parent` in `item` into its child number `child`: mean moved by
/// `R(q) s` with `s_k ~ Normal(0, scale_k)`, scales divided by [`SPLIT_SCALE_DIVISOR`].
fn split_child(item: &mut Gaussians, seed_key: u32, parent: usize, child: usize) {
    let scale: [f64; 3] = std::array::from_fn(|k| f64::from(item.log_scales[k]).exp());
    let sample: [f64; 3] = std::array::from_fn(|k| {
        scale[k] * split_normal(seed_key, parent as u32, child as u32, k as u32)
    });
    let q: [f64; 4] = std::array::from_fn(|k| f64::from(item.rotations[k]));
    let r = rotation_matrix(q);
    for (row, mean) in r.iter().zip(item.means.iter_mut()) {
        let offset: f64 = row.iter().zip(&sample).map(|(a, b)| a * b).sum();
        *mean = (f64::from(*mean) + offset) as f32;
    }
    for (log_scale, s) in item.log_scales.iter_mut().zip(scale) {
        *log_scale = (s / SPLIT_SCALE_DIVISOR).ln() as f32;
    }
}

/// The periodic opacity reset: `opacity = logit(min(sigmoid(opacity), 0.01))` and zero Adam
/// moments for the opacity group.
pub fn reset_opacity(gaussians: &mut Gaussians, moments: &mut Moments) {
    for o in &mut gaussians.logit_opacities {
        *o = logit(sigmoid(f64::from(*o)).min(RESET_OPACITY)) as f32;
    }
    let g = ParamGroup::Opacities.index();
    moments.exp_avg[g].fill(0.0);
    moments.exp_avg_sq[g].fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_gaussian(log_scale: f32, logit_opacity: f32) -> Gaussians {
        Gaussians {
            sh_degree: 0,
            means: vec![1.0, 2.0, 3.0],
            log_scales: vec![log_scale; 3],
            rotations: vec![1.0, 0.0, 0.0, 0.0],
            logit_opacities: vec![logit_opacity],
            sh_dc: vec![0.1, 0.2, 0.3],
            sh_rest: vec![],
        }
    }

    fn params() -> DensifyParams {
        DensifyParams {
            grad_threshold: 0.0002,
            percent_dense: 0.01,
            extent: 10.0,
            min_opacity: 0.005,
            max_screen_size: None,
            seed: 5,
        }
    }

    #[test]
    fn uniforms_are_in_range_and_normals_look_normal() {
        let key = split_seed_key(123);
        let n = 20_000u32;
        let xs: Vec<f64> = (0..n).map(|i| split_normal(key, i, 1, 2)).collect();
        let mean = xs.iter().sum::<f64>() / f64::from(n);
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / f64::from(n);
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        for i in 0..1000 {
            let (u1, u2) = split_uniforms(key, i, 0, 0);
            assert!(u1 > 0.0 && u1 <= 1.0 && (0.0..1.0).contains(&u2));
        }
        // Different children, axes and seeds draw different numbers.
        assert_ne!(split_normal(key, 0, 0, 0), split_normal(key, 0, 1, 0));
        assert_ne!(split_normal(key, 0, 0, 0), split_normal(key, 0, 0, 1));
        assert_ne!(key, split_seed_key(124));
    }

    #[test]
    fn rotation_matrix_is_orthonormal() {
        let r = rotation_matrix([0.3, -1.0, 0.5, 2.0]);
        for a in 0..3 {
            for b in 0..3 {
                let dot: f64 = (0..3).map(|k| r[a][k] * r[b][k]).sum();
                assert!((dot - f64::from(u8::from(a == b))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn split_replaces_the_parent_by_two_smaller_children() {
        // Scale e^0 = 1 > 0.01 * 10: split.
        let g = one_gaussian(0.0, 0.0);
        let mut stats = Stats {
            grad_norm_sum: vec![0.001],
            visible_count: vec![2],
            max_radius: vec![5.0],
        };
        let moments = Moments::zeroed(1, 0);
        let result = densify_and_prune(&g, &moments, &mut stats, &params());
        let out = result.gaussians;
        assert_eq!(
            result.report,
            DensifyReport {
                before: 1,
                cloned: 0,
                split: 1,
                pruned: 0,
                after: 2
            }
        );
        assert_eq!(out.len(), 2);
        for s in &out.log_scales {
            assert!((f64::from(*s) - (1.0f64 / 1.6).ln()).abs() < 1e-7);
        }
        assert_eq!(out.sh_dc, [g.sh_dc.clone(), g.sh_dc.clone()].concat());
        assert_eq!(result.moments, Moments::zeroed(2, 0));
        assert_eq!(
            result.origins,
            [
                Origin::Child {
                    parent: 0,
                    child: 0
                },
                Origin::Child {
                    parent: 0,
                    child: 1
                }
            ]
        );
        assert_eq!(stats, Stats::zeroed(2));
    }

    #[test]
    fn opacity_reset_caps_at_one_percent() {
        let mut g = one_gaussian(0.0, 2.0);
        g.push_from(&one_gaussian(0.0, -6.0), 0);
        let mut m = Moments::zeroed(2, 0);
        m.exp_avg[ParamGroup::Opacities.index()] = vec![1.0, 1.0];
        reset_opacity(&mut g, &mut m);
        assert!((f64::from(g.logit_opacities[0]) - (0.01f64 / 0.99).ln()).abs() < 1e-6);
        assert!((g.logit_opacities[1] + 6.0).abs() < 1e-6);
        assert_eq!(m, Moments::zeroed(2, 0));
    }
}
