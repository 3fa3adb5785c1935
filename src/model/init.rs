//! Initial Gaussians (REFERENCE.md, "Initialisation and scene"): one Gaussian per SfM point, or
//! per random point for Blender scenes without points.
//!
//! Per point: `f_dc = (rgb / 255 - 0.5) / C0`, `f_rest = 0`, rotation `(1, 0, 0, 0)`, opacity
//! `logit(0.1)`, and an isotropic log-scale `ln(sqrt(max(d2, 1e-7)))` where `d2` is the mean
//! squared distance to the 3 nearest other points, computed exactly by a k-d tree
//! ([`knn_mean_sq_dist`]). (inria's `simple_knn` approximates the neighbour search; exact is
//! what it approximates.)

use rayon::prelude::*;

use super::{Gaussians, ParamGroup};
use crate::dataset::PointCloud;
use crate::rng::Pcg32;
use crate::sh;

/// Neighbours used for the initial scale (inria: 3).
pub const INIT_NEIGHBOURS: usize = 3;

/// Floor of the mean squared neighbour distance (inria's `clamp_min(dist2, 0.0000001)`).
pub const MIN_MEAN_SQ_DIST: f32 = 1e-7;

/// Initial opacity before the logit (inria: `inverse_sigmoid(0.1)`).
pub const INIT_OPACITY: f64 = 0.1;

/// Half the side of the cube random points are drawn from (inria: `[-1.3, 1.3]^3`).
pub const RANDOM_POINTS_HALF_EXTENT: f64 = 1.3;

/// Number of random points inria uses for Blender scenes without a point cloud.
pub const DEFAULT_RANDOM_POINTS: usize = 100_000;

/// The opacity logit every initial Gaussian gets: `ln(0.1 / 0.9)`, computed in f64.
pub fn initial_logit_opacity() -> f32 {
    (INIT_OPACITY / (1.0 - INIT_OPACITY)).ln() as f32
}

/// The isotropic initial log-scale for a mean squared neighbour distance `d2`.
pub fn initial_log_scale(mean_sq_dist: f32) -> f32 {
    // Clamp in f32 as inria does (on an f32 tensor), then sqrt and ln in f64.
    let d2 = mean_sq_dist.max(MIN_MEAN_SQ_DIST);
    f64::from(d2).sqrt().ln() as f32
}

/// One Gaussian per point, initialised as inria's `create_from_pcd`.
///
/// `sh_degree` (at most 3) sets the width of `f_rest`, which is all zeros. A single point has
/// no neighbour: its mean squared distance is taken as 0, so it gets the smallest scale,
/// `sqrt(1e-7)`, rather than inria's accidental `sqrt(FLT_MAX)` (which would cover the scene).
///
/// # Panics
/// If `sh_degree > 3` (the config is validated before this is called), or if the point cloud
/// has different numbers of positions and colours.
pub fn gaussians_from_points(points: &PointCloud, sh_degree: u32) -> Gaussians {
    assert_eq!(
        points.positions.len(),
        points.colors.len(),
        "point cloud has different numbers of positions and colours"
    );
    let sh_dc = points
        .colors
        .iter()
        .flat_map(|rgb| rgb.map(|c| sh::rgb_to_sh_dc(f64::from(c) / 255.0) as f32))
        .collect();
    gaussians_with_dc(&points.positions, sh_dc, sh_degree)
}

/// The Gaussians for `positions` with the given DC coefficients (3 per point) and every other
/// parameter by the initialisation rules.
fn gaussians_with_dc(positions: &[[f32; 3]], sh_dc: Vec<f32>, sh_degree: u32) -> Gaussians {
    assert!(
        sh_degree <= sh::MAX_SH_DEGREE,
        "SH degree {sh_degree} is above the maximum {}",
        sh::MAX_SH_DEGREE
    );
    let n = positions.len();
    let log_scales = knn_mean_sq_dist(positions, INIT_NEIGHBOURS)
        .into_iter()
        .flat_map(|d2| [initial_log_scale(d2); 3])
        .collect();
    Gaussians {
        sh_degree,
        means: positions.iter().flatten().copied().collect(),
        log_scales,
        rotations: [1.0, 0.0, 0.0, 0.0].repeat(n),
        logit_opacities: vec![initial_logit_opacity(); n],
        sh_dc,
        sh_rest: vec![0.0; n * ParamGroup::ShRest.width(sh_degree)],
    }
}

// ---------------------------------------------------------------------------------------------
// Random initialisation (Blender scenes without points)
// ---------------------------------------------------------------------------------------------

/// RNG stream for random initialisation (any fixed value; streams never overlap).
const RANDOM_INIT_STREAM: u64 = 0x1a17;

/// Draws `count` positions uniform in `[-1.3, 1.3)^3` (f64, then rounded to f32 as inria's
/// `float32` PLY stores them), then `3 * count` uniform numbers in `[0, 1)` (inria's `shs * 255`),
/// in that order, like inria's two `np.random.random` calls.
fn random_positions_and_uniforms(count: usize, seed: u64) -> (Vec<[f32; 3]>, Vec<f64>) {
    let mut rng = Pcg32::new(seed, RANDOM_INIT_STREAM);
    let side = 2.0 * RANDOM_POINTS_HALF_EXTENT;
    let positions = (0..count)
        .map(|_| [(); 3].map(|_| (rng.next_f64() * side - RANDOM_POINTS_HALF_EXTENT) as f32))
        .collect();
    let uniforms = (0..3 * count).map(|_| rng.next_f64()).collect();
    (positions, uniforms)
}

/// The random point cloud inria creates for a Blender scene without `points3d.ply`, exactly as
/// inria then trains from it.
///
/// inria draws `shs = U(0, 1) / 255` and stores colours `SH2RGB(shs) * 255 = 127.5 + U * C0`
/// into the `uchar` columns of `points3d.ply`, which truncates every one of them to 127; it then
/// reads that file back (`fetchPly`) and initialises from it. So every colour here is
/// `[127, 127, 127]` (computed, not hard-coded), and `gaussians_from_points` of this cloud is
/// what inria trains. Write it with `ply::write_points_ply` as the scene's `input.ply`.
///
/// [`random_init_gaussians`] is the variant that keeps the drawn `shs` as `f_dc`.
pub fn random_points(count: usize, seed: u64) -> PointCloud {
    let (positions, uniforms) = random_positions_and_uniforms(count, seed);
    let colors = uniforms
        .chunks_exact(3)
        .map(|u| {
            // numpy's float -> uint8 assignment truncates toward zero.
            [0, 1, 2].map(|c| (sh::sh_dc_to_rgb(u[c] / 255.0) * 255.0) as u8)
        })
        .collect();
    PointCloud { positions, colors }
}

/// Random initial Gaussians with `f_dc = U(0, 1) / 255` per channel: the colours inria draws
/// before its `points3d.ply` round trip quantises them (see [`random_points`]). Positions are
/// those of `random_points(count, seed)`; scales, opacity and rotation follow the usual rules.
pub fn random_init_gaussians(count: usize, seed: u64, sh_degree: u32) -> Gaussians {
    let (positions, uniforms) = random_positions_and_uniforms(count, seed);
    let sh_dc = uniforms.iter().map(|u| (u / 255.0) as f32).collect();
    gaussians_with_dc(&positions, sh_dc, sh_degree)
}

// ---------------------------------------------------------------------------------------------
// Exact k nearest neighbours
// ---------------------------------------------------------------------------------------------

/// For every point, the mean squared distance to its `k` nearest other points (exact).
///
/// "Other" means other indices: a duplicate of a point is a neighbour at distance 0. With
/// fewer than `k + 1` points the mean is over the `n - 1` neighbours there are; a single point
/// (or `k == 0`) gives 0. Distances are computed in f64 from the f32 coordinates and the mean is
/// rounded to f32 once. Non-finite coordinates give unspecified values (never a panic).
///
/// Runs a k-d tree built in parallel and queries all points in parallel (rayon), in tree
/// order for cache locality.
///
/// # Panics
/// If there are more than `u32::MAX` points.
pub fn knn_mean_sq_dist(positions: &[[f32; 3]], k: usize) -> Vec<f32> {
    let n = positions.len();
    let neighbours = k.min(n.saturating_sub(1));
    if neighbours == 0 {
        return vec![0.0; n];
    }
    let tree = KdTree::build(positions);
    let means_in_tree_order: Vec<f32> = tree
        .points
        .par_iter()
        .map_init(
            || NearestK::new(neighbours),
            |best, point| {
                best.clear();
                tree.search(point, best);
                best.mean()
            },
        )
        .collect();
    let mut out = vec![0.0; n];
    for (point, mean) in tree.points.iter().zip(means_in_tree_order) {
        out[point.index as usize] = mean;
    }
    out
}

/// Leaves hold at most this many points (at least 2, see [`KdTree`]).
const LEAF_SIZE: usize = 8;

/// Subtrees larger than this are built in parallel.
const PARALLEL_BUILD_MIN: usize = 1 << 14;

#[derive(Clone, Copy, Debug)]
struct TreePoint {
    position: [f32; 3],
    /// Index in the caller's array.
    index: u32,
}

/// A k-d tree stored implicitly in a permuted copy of the points.
///
/// A node covers a range `lo..hi` of `points`. If it has more than [`LEAF_SIZE`] points it is
/// split at `mid = lo + (hi - lo) / 2` along the axis of the widest extent of its points, at
/// the median value `v`: every point in `lo..mid` has coordinate `<= v` along that axis and
/// every point in `mid..hi` has `>= v`. The split is stored at `splits[mid]`: each internal
/// node has its own `mid` (a child's `mid` lies strictly inside the child's range because
/// internal nodes have at least 2 points), so one entry per point stores the whole tree. (The
/// median point itself does not stay at `mid`: the right child reorders its range.)
struct KdTree {
    points: Vec<TreePoint>,
    splits: Vec<Split>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Split {
    value: f32,
    axis: u8,
}

impl KdTree {
    fn build(positions: &[[f32; 3]]) -> Self {
        let n = u32::try_from(positions.len()).expect("k-d tree holds at most u32::MAX points");
        let mut points: Vec<TreePoint> = positions
            .iter()
            .zip(0..n)
            .map(|(&position, index)| TreePoint { position, index })
            .collect();
        let mut splits = vec![Split::default(); points.len()];
        build_node(&mut points, &mut splits);
        Self { points, splits }
    }

    /// Fills `best` with the nearest neighbours of `query` (excluding the point itself).
    fn search(&self, query: &TreePoint, best: &mut NearestK) {
        let q = query.position.map(f64::from);
        self.search_node(0, self.points.len(), &q, query.index, best);
    }

    fn search_node(&self, lo: usize, hi: usize, q: &[f64; 3], skip: u32, best: &mut NearestK) {
        if hi - lo <= LEAF_SIZE {
            for p in &self.points[lo..hi] {
                if p.index != skip {
                    best.offer(squared_distance(q, &p.position));
                }
            }
            return;
        }
        let mid = lo + (hi - lo) / 2;
        let split = self.splits[mid];
        let diff = q[usize::from(split.axis)] - f64::from(split.value);
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid, hi))
        } else {
            ((mid, hi), (lo, mid))
        };
        self.search_node(near.0, near.1, q, skip, best);
        // Every point on the far side is at least |diff| away along the axis.
        if diff * diff < best.worst() {
            self.search_node(far.0, far.1, q, skip, best);
        }
    }
}

fn build_node(points: &mut [TreePoint], splits: &mut [Split]) {
    let n = points.len();
    if n <= LEAF_SIZE {
        return;
    }
    let axis = widest_axis(points);
    let mid = n / 2;
    points.select_nth_unstable_by(mid, |a, b| a.position[axis].total_cmp(&b.position[axis]));
    splits[mid] = Split {
        value: points[mid].position[axis],
        axis: axis as u8,
    };
    let (left_points, right_points) = points.split_at_mut(mid);
    let (left_splits, right_splits) = splits.split_at_mut(mid);
    if n >= PARALLEL_BUILD_MIN {
        rayon::join(
            || build_node(left_points, left_splits),
            || build_node(right_points, right_splits),
        );
    } else {
        build_node(left_points, left_splits);
        build_node(right_points, right_splits);
    }
}

/// The axis along which the points' bounding box is longest.
fn widest_axis(points: &[TreePoint]) -> usize {
    let mut lo = [f32::INFINITY; 3];
    let mut hi = [f32::NEG_INFINITY; 3];
    for p in points {
        for a in 0..3 {
            lo[a] = lo[a].min(p.position[a]);
            hi[a] = hi[a].max(p.position[a]);
        }
    }
    let extent = [0, 1, 2].map(|a| hi[a] - lo[a]);
    let mut axis = 0;
    for a in 1..3 {
        if extent[a] > extent[axis] {
            axis = a;
        }
    }
    axis
}

fn squared_distance(q: &[f64; 3], p: &[f32; 3]) -> f64 {
    let dx = q[0] - f64::from(p[0]);
    let dy = q[1] - f64::from(p[1]);
    let dz = q[2] - f64::from(p[2]);
    dx * dx + dy * dy + dz * dz
}

/// The `k` smallest squared distances seen so far, sorted ascending.
struct NearestK {
    k: usize,
    distances: Vec<f64>,
}

impl NearestK {
    fn new(k: usize) -> Self {
        Self {
            k,
            distances: Vec::with_capacity(k + 1),
        }
    }

    fn clear(&mut self) {
        self.distances.clear();
    }

    /// The distance a candidate must beat (infinite until `k` are known).
    fn worst(&self) -> f64 {
        if self.distances.len() < self.k {
            f64::INFINITY
        } else {
            self.distances[self.k - 1]
        }
    }

    fn offer(&mut self, d: f64) {
        if d.is_nan() || d >= self.worst() {
            return;
        }
        let at = self.distances.partition_point(|&x| x <= d);
        self.distances.insert(at, d);
        self.distances.truncate(self.k);
    }

    /// Mean of the distances found (0 if none).
    fn mean(&self) -> f32 {
        if self.distances.is_empty() {
            return 0.0;
        }
        (self.distances.iter().sum::<f64>() / self.distances.len() as f64) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    // ---- point sets -------------------------------------------------------------------------

    fn uniform(n: usize, rng: &mut Pcg32) -> Vec<[f32; 3]> {
        (0..n)
            .map(|_| [(); 3].map(|_| rng.next_f32() * 2.0 - 1.0))
            .collect()
    }

    /// Half the points are copies of others (exact duplicates, some repeated several times).
    fn with_duplicates(n: usize, rng: &mut Pcg32) -> Vec<[f32; 3]> {
        let mut points = uniform(n.div_ceil(2), rng);
        while points.len() < n {
            let source = rng.below(points.len() as u32) as usize;
            points.push(points[source]);
        }
        points
    }

    /// Tight Gaussian clusters around a few centres, like SfM points on surfaces.
    fn clustered(n: usize, clusters: usize, rng: &mut Pcg32) -> Vec<[f32; 3]> {
        let centres = uniform(clusters, rng);
        (0..n)
            .map(|_| {
                let c = centres[rng.below(clusters as u32) as usize];
                c.map(|x| x + (rng.normal() * 1e-3) as f32)
            })
            .collect()
    }

    /// Points on one line, some of them repeated.
    fn collinear(n: usize, rng: &mut Pcg32) -> Vec<[f32; 3]> {
        (0..n)
            .map(|_| {
                let t = (rng.below(n as u32 * 2) as f32) * 0.01;
                [0.5 + t, -0.25 + 2.0 * t, 3.0 * t]
            })
            .collect()
    }

    /// An integer lattice: many exactly tied distances.
    fn lattice(n: usize) -> Vec<[f32; 3]> {
        let side = (n as f64).cbrt().ceil() as usize;
        (0..n)
            .map(|i| [i % side, (i / side) % side, i / (side * side)].map(|v| v as f32))
            .collect()
    }

    fn planar(n: usize, rng: &mut Pcg32) -> Vec<[f32; 3]> {
        (0..n)
            .map(|_| [rng.next_f32(), rng.next_f32(), 0.0])
            .collect()
    }

    /// O(N^2) reference: sort all distances to other points, average the k smallest.
    fn brute_force(positions: &[[f32; 3]], k: usize) -> Vec<f32> {
        positions
            .iter()
            .enumerate()
            .map(|(i, p)| brute_force_one(positions, i, p, k))
            .collect()
    }

    fn brute_force_one(positions: &[[f32; 3]], i: usize, p: &[f32; 3], k: usize) -> f32 {
        let mut d: Vec<f64> = positions
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, q)| {
                (0..3)
                    .map(|a| (f64::from(p[a]) - f64::from(q[a])).powi(2))
                    .sum()
            })
            .collect();
        let m = k.min(d.len());
        if m == 0 {
            return 0.0;
        }
        // The m smallest, in ascending order.
        d.select_nth_unstable_by(m - 1, f64::total_cmp);
        let nearest = &mut d[..m];
        nearest.sort_by(f64::total_cmp);
        (nearest.iter().sum::<f64>() / m as f64) as f32
    }

    fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: length");
        for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
            // Relative 1e-6 (a few f32 ulps: the sum order may differ); zero must be exactly zero.
            assert!(
                (a - e).abs() <= 1e-6 * e.abs(),
                "{what}: point {i}: kd-tree {a:e}, brute force {e:e}"
            );
        }
    }

    // ---- kNN ---------------------------------------------------------------------------------

    #[test]
    fn knn_matches_brute_force_on_many_point_sets() {
        let mut rng = Pcg32::new(7, 0);
        for &n in &[1, 2, 3, 4, 5, 9, 17, 64, 257, 1000, 2000] {
            let sets: Vec<(&str, Vec<[f32; 3]>)> = vec![
                ("uniform", uniform(n, &mut rng)),
                ("duplicates", with_duplicates(n, &mut rng)),
                ("clustered", clustered(n, 1 + n / 100, &mut rng)),
                ("collinear", collinear(n, &mut rng)),
                ("lattice", lattice(n)),
                ("planar", planar(n, &mut rng)),
                ("identical", vec![[0.25, -1.5, 4.0]; n]),
            ];
            for (name, positions) in &sets {
                for k in [1, 3, 8] {
                    let expected = brute_force(positions, k);
                    let actual = knn_mean_sq_dist(positions, k);
                    assert_close(&actual, &expected, &format!("{name} n={n} k={k}"));
                }
            }
        }
    }

    #[test]
    fn knn_small_cases_by_hand() {
        // Single point and k = 0: no neighbours, defined as 0.
        assert_eq!(knn_mean_sq_dist(&[[1.0, 2.0, 3.0]], 3), [0.0]);
        assert_eq!(knn_mean_sq_dist(&[[0.0; 3], [1.0; 3]], 0), [0.0, 0.0]);
        assert!(knn_mean_sq_dist(&[], 3).is_empty());
        // Two points 2 apart: one neighbour each, mean = 4.
        assert_eq!(
            knn_mean_sq_dist(&[[0.0; 3], [2.0, 0.0, 0.0]], 3),
            [4.0, 4.0]
        );
        // Points at 0, 1, 3, 6 on a line, k = 3 (all others): 0 -> (1 + 9 + 36) / 3.
        let line = [
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [3.0, 0.0, 0.0],
            [6.0, 0.0, 0.0],
        ];
        let d = knn_mean_sq_dist(&line, 3);
        // 1 -> (1 + 4 + 25) / 3, 3 -> (9 + 4 + 9) / 3, 6 -> (36 + 25 + 9) / 3.
        assert_eq!(
            d,
            [46.0 / 3.0, 30.0 / 3.0, 22.0 / 3.0, 70.0 / 3.0].map(|v| v as f32)
        );
        // A duplicate counts as a neighbour at distance 0.
        let dup = [[0.0; 3], [0.0; 3], [1.0, 0.0, 0.0]];
        assert_eq!(knn_mean_sq_dist(&dup, 1), [0.0, 0.0, 1.0]);
    }

    #[test]
    fn knn_does_not_panic_on_non_finite_points() {
        let mut points = uniform(100, &mut Pcg32::new(3, 0));
        points[5] = [f32::NAN, 0.0, 0.0];
        points[6] = [f32::INFINITY, 1.0, f32::NEG_INFINITY];
        let d = knn_mean_sq_dist(&points, 3);
        assert_eq!(d.len(), 100);
        // Finite points never pick a non-finite neighbour (its distance is inf or NaN).
        let finite: Vec<[f32; 3]> = points
            .iter()
            .copied()
            .filter(|p| p.iter().all(|v| v.is_finite()))
            .collect();
        let expected = brute_force(&finite, 3);
        let actual: Vec<f32> = (0..100)
            .filter(|&i| i != 5 && i != 6)
            .map(|i| d[i])
            .collect();
        assert_close(&actual, &expected, "finite points");
    }

    /// Timing on one million points (uniform, and clustered with duplicates), printed, not
    /// asserted; a few queries are checked against brute force at full size.
    #[test]
    fn knn_one_million_points_timing() {
        let mut rng = Pcg32::new(11, 0);
        let n = 1_000_000;
        let mut clustered_set = clustered(n - n / 10, 2000, &mut rng);
        for i in 0..n / 10 {
            clustered_set.push(clustered_set[(i * 7919) % (n - n / 10)]);
        }
        let sets = [
            ("uniform", uniform(n, &mut rng)),
            ("clustered", clustered_set),
        ];
        for (name, positions) in &sets {
            let start = Instant::now();
            let d = knn_mean_sq_dist(positions, 3);
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "knn_mean_sq_dist, {name}, {n} points, k = 3: {seconds:.3} s on {} threads",
                rayon::current_num_threads()
            );
            for _ in 0..10 {
                let i = rng.below(n as u32) as usize;
                let expected = brute_force_one(positions, i, &positions[i], 3);
                assert_close(&d[i..=i], &[expected], &format!("{name} point {i}"));
            }
        }
    }

    // ---- initialisation ----------------------------------------------------------------------

    fn cloud(positions: Vec<[f32; 3]>, rng: &mut Pcg32) -> PointCloud {
        let colors = positions
            .iter()
            .map(|_| [(); 3].map(|_| rng.below(256) as u8))
            .collect();
        PointCloud { positions, colors }
    }

    #[test]
    fn gaussians_from_points_follow_the_reference_rules() {
        let mut rng = Pcg32::new(5, 0);
        let mut positions = uniform(300, &mut rng);
        positions.push(positions[10]); // a duplicate
        let points = cloud(positions, &mut rng);
        let d2 = brute_force(&points.positions, 3);
        for degree in 0..=3 {
            let g = gaussians_from_points(&points, degree);
            g.check_shapes().unwrap();
            assert_eq!(g.len(), points.len());
            assert_eq!(g.sh_degree, degree);
            for (i, d2) in d2.iter().enumerate() {
                assert_eq!(g.means[3 * i..3 * i + 3], points.positions[i]);
                let expected_scale = f64::from(d2.max(1e-7)).sqrt().ln();
                for a in 0..3 {
                    let s = g.log_scales[3 * i + a];
                    assert!(
                        (f64::from(s) - expected_scale).abs() < 1e-6,
                        "point {i}: log-scale {s} vs {expected_scale}"
                    );
                }
                assert_eq!(g.rotations[4 * i..4 * i + 4], [1.0, 0.0, 0.0, 0.0]);
                assert_eq!(g.logit_opacities[i], -2.197_224_6_f32);
                for c in 0..3 {
                    let rgb = f64::from(points.colors[i][c]) / 255.0;
                    let expected = (rgb - 0.5) / sh::C0;
                    assert!((f64::from(g.sh_dc[3 * i + c]) - expected).abs() <= 1e-6);
                }
            }
            assert!(g.sh_rest.iter().all(|&v| v == 0.0));
            assert_eq!(
                g.sh_rest.len(),
                g.len() * 3 * sh::rest_coeffs_for_degree(degree)
            );
        }
    }

    #[test]
    fn known_colours_and_constants() {
        let points = PointCloud {
            positions: vec![[0.0; 3], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]],
            colors: vec![[0, 255, 128], [64, 191, 1], [127, 127, 127]],
        };
        let g = gaussians_from_points(&points, 3);
        // (c / 255 - 0.5) / C0 with C0 = 0.28209479177387814.
        let expected_dc = [
            -1.772_453_850_905_516,
            1.772_453_850_905_516,
            0.006_950_799_415_315_724,
            -0.882_751_525_745_100_2,
            0.882_751_525_745_100_2,
            -1.758_552_252_074_884_6,
            -0.006_950_799_415_315_724,
            -0.006_950_799_415_315_724,
            -0.006_950_799_415_315_724,
        ];
        for (a, e) in g.sh_dc.iter().zip(expected_dc) {
            assert!((f64::from(*a) - e).abs() < 1e-6, "{a} vs {e}");
        }
        // logit(0.1) = ln(1/9).
        assert_eq!(initial_logit_opacity(), (1.0f64 / 9.0).ln() as f32);
        // Neighbour distances: point 0 has 1 and 4 -> mean of the 2 there are = 2.5.
        let expected_scales = [2.5f64, 3.0, 4.5].map(|d2| d2.sqrt().ln() as f32);
        for (scales, expected) in g.log_scales.chunks_exact(3).zip(expected_scales) {
            assert_eq!(scales, [expected; 3]);
        }
    }

    #[test]
    fn degenerate_point_clouds() {
        let floor = (1e-7f32 as f64).sqrt().ln() as f32;
        // Empty.
        let g = gaussians_from_points(&PointCloud::default(), 3);
        assert!(g.is_empty());
        g.check_shapes().unwrap();
        // One point: no neighbour, smallest scale.
        let one = PointCloud {
            positions: vec![[1.0, 2.0, 3.0]],
            colors: vec![[10, 20, 30]],
        };
        assert_eq!(gaussians_from_points(&one, 0).log_scales, [floor; 3]);
        // All duplicates: distance 0, clamped to 1e-7.
        let dups = PointCloud {
            positions: vec![[0.5; 3]; 5],
            colors: vec![[0; 3]; 5],
        };
        assert!(
            gaussians_from_points(&dups, 1)
                .log_scales
                .iter()
                .all(|&s| s == floor)
        );
        assert!((f64::from(floor) - (-8.059_047_825_479_573)).abs() < 1e-6);
    }

    #[test]
    fn random_points_are_reproducible_and_bounded() {
        let a = random_points(5000, 42);
        let b = random_points(5000, 42);
        let c = random_points(5000, 43);
        assert_eq!(a, b);
        assert_ne!(a.positions, c.positions);
        assert_eq!(a.len(), 5000);
        assert_eq!(a.colors.len(), 5000);
        let h = RANDOM_POINTS_HALF_EXTENT as f32;
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for p in a.positions.iter().flatten() {
            assert!((-h..=h).contains(p), "{p} outside [-1.3, 1.3]");
            lo = lo.min(*p);
            hi = hi.max(*p);
        }
        // Uniform over the whole cube, not a corner of it.
        assert!(lo < -1.29 && hi > 1.29, "{lo} {hi}");
        // inria's uchar truncation of 127.5 + U * C0.
        assert!(a.colors.iter().all(|c| *c == [127; 3]));
        assert!(random_points(0, 1).is_empty());
    }

    #[test]
    fn random_init_gaussians_keep_the_drawn_colours() {
        let g = random_init_gaussians(4000, 9, 3);
        g.check_shapes().unwrap();
        assert_eq!(g, random_init_gaussians(4000, 9, 3));
        assert_ne!(g.sh_dc, random_init_gaussians(4000, 10, 3).sh_dc);
        let points = random_points(4000, 9);
        let means: Vec<f32> = points.positions.iter().flatten().copied().collect();
        assert_eq!(g.means, means);
        assert!(g.sh_dc.iter().all(|&v| (0.0..1.0 / 255.0).contains(&v)));
        let mean_dc = g.sh_dc.iter().map(|&v| f64::from(v)).sum::<f64>() / g.sh_dc.len() as f64;
        assert!((mean_dc * 255.0 - 0.5).abs() < 0.02, "{mean_dc}");
        // Same scales, opacity and rotation as the point-cloud path.
        let from_points = gaussians_from_points(&points, 3);
        assert_eq!(g.log_scales, from_points.log_scales);
        assert_eq!(g.logit_opacities, from_points.logit_opacities);
        assert_eq!(g.rotations, from_points.rotations);
    }
}
