//! Tests of the densification kernels against the f64 reference (`reference::densify`), on
//! both device paths.

use super::*;
use crate::gpu::test_util::{test_context, test_context_fallback};
use crate::model::Gaussians;
use crate::reference::densify::{self as reference, Moments, Origin, Stats};
use crate::rng::Pcg32;

/// Everything densification reads and writes, on the GPU.
struct GpuState {
    cloud: GaussianCloud,
    grads: ParamBuffers,
    optimizer: OptimizerState,
    stats: DensifyStats,
}

fn upload(
    ctx: &GpuContext,
    gaussians: &Gaussians,
    moments: &Moments,
    stats: &Stats,
    capacity: u32,
) -> GpuState {
    let sh_degree = gaussians.sh_degree;
    let cloud = GaussianCloud::from_gaussians(ctx, gaussians, capacity);
    let grads = ParamBuffers::zeroed(ctx, "grads", capacity, sh_degree);
    let optimizer = OptimizerState::zeroed(ctx, capacity, sh_degree);
    for group in ParamGroup::ALL {
        let g = group.index();
        let to_f32 = |v: &Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        gpu::write_buffer(
            ctx,
            optimizer.exp_avg.get(group),
            0,
            &to_f32(&moments.exp_avg[g]),
        );
        gpu::write_buffer(
            ctx,
            optimizer.exp_avg_sq.get(group),
            0,
            &to_f32(&moments.exp_avg_sq[g]),
        );
    }
    let stats_gpu = DensifyStats::zeroed(ctx, capacity);
    let sums: Vec<f32> = stats.grad_norm_sum.iter().map(|&x| x as f32).collect();
    let radii: Vec<f32> = stats.max_radius.iter().map(|&x| x as f32).collect();
    gpu::write_buffer(ctx, &stats_gpu.grad_norm_sum, 0, &sums);
    gpu::write_buffer(ctx, &stats_gpu.visible_count, 0, &stats.visible_count);
    gpu::write_buffer(ctx, &stats_gpu.max_radius, 0, &radii);
    GpuState {
        cloud,
        grads,
        optimizer,
        stats: stats_gpu,
    }
}

fn densify(ctx: &GpuContext, state: &mut GpuState, params: &DensifyParams) -> DensifyReport {
    densify_with(&mut Densifier::new(ctx), ctx, state, params)
}

fn densify_with(
    densifier: &mut Densifier,
    ctx: &GpuContext,
    state: &mut GpuState,
    params: &DensifyParams,
) -> DensifyReport {
    densifier
        .densify_and_prune(
            ctx,
            &mut state.cloud,
            &mut state.grads,
            &mut state.optimizer,
            &mut state.stats,
            params,
        )
        .expect("fits")
}

/// Every statistic of the whole capacity is zero and every buffer has the cloud's capacity.
fn assert_stats_zero_and_capacities_match(ctx: &GpuContext, state: &GpuState) {
    let capacity = state.cloud.capacity();
    assert!(capacity >= state.cloud.len);
    assert_eq!(state.grads.capacity, capacity);
    assert_eq!(state.optimizer.exp_avg.capacity, capacity);
    assert_eq!(state.optimizer.exp_avg_sq.capacity, capacity);
    assert_eq!(state.stats.capacity, capacity);
    let n = capacity as usize;
    let sums: Vec<f32> = gpu::read_buffer(ctx, &state.stats.grad_norm_sum, n);
    let counts: Vec<u32> = gpu::read_buffer(ctx, &state.stats.visible_count, n);
    let radii: Vec<f32> = gpu::read_buffer(ctx, &state.stats.max_radius, n);
    assert!(sums.iter().chain(&radii).all(|&x| x == 0.0));
    assert!(counts.iter().all(|&x| x == 0));
}

fn hand_params(max_screen_size: Option<f32>) -> DensifyParams {
    // Clone up to scale 0.1, world-size prune above 1.0.
    DensifyParams {
        grad_threshold: 0.0002,
        percent_dense: 0.01,
        extent: 10.0,
        min_opacity: 0.005,
        max_screen_size,
        seed: 99,
    }
}

/// One Gaussian of the hand-made cloud: scales, opacity logit, gradient sum, views, radius.
struct Case {
    scales: [f32; 3],
    logit_opacity: f32,
    grad_norm_sum: f64,
    visible_count: u32,
    max_radius: f64,
}

const SMALL: [f32; 3] = [0.05, 0.04, 0.03];

fn hand_cases() -> Vec<Case> {
    let case = |scales, logit_opacity, grad_norm_sum, visible_count, max_radius| Case {
        scales,
        logit_opacity,
        grad_norm_sum,
        visible_count,
        max_radius,
    };
    vec![
        case(SMALL, 0.0, 0.0001, 1, 5.0),            // 0: kept as is
        case(SMALL, 0.0, 0.001, 2, 5.0),             // 1: cloned
        case([0.5, 0.2, 0.1], 1.0, 0.003, 3, 5.0),   // 2: split
        case(SMALL, -6.0, 0.0, 1, 5.0),              // 3: pruned (opacity 0.0025)
        case(SMALL, 0.0, 0.0001, 1, 30.0),           // 4: pruned by screen size
        case([2.0, 0.1, 0.1], 0.0, 0.0001, 1, 5.0),  // 5: pruned by world size
        case(SMALL, 0.0, 1.0, 0, 5.0),               // 6: never visible: average 0, kept
        case(SMALL, -6.0, 0.001, 1, 5.0),            // 7: cloned, then both pruned
        case([2.0, 2.0, 2.0], 0.0, 0.001, 1, 5.0),   // 8: split; children (1.25) too big
        case(SMALL, 0.0, 0.0004, 2, 5.0),            // 9: average exactly at threshold
        case([0.3, 1.5, 0.3], 0.0, 0.001, 1, 100.0), // 10: split; children (0.94) kept
    ]
}

fn hand_cloud(rng: &mut Pcg32) -> (Gaussians, Moments, Stats) {
    let cases = hand_cases();
    let mut g = Gaussians::empty(1);
    let mut stats = Stats::default();
    for case in &cases {
        g.means.extend((0..3).map(|_| rng.normal() as f32));
        g.log_scales.extend(case.scales.map(f32::ln));
        g.rotations.extend((0..4).map(|_| rng.normal() as f32));
        g.logit_opacities.push(case.logit_opacity);
        g.sh_dc.extend((0..3).map(|_| rng.normal() as f32));
        g.sh_rest.extend((0..9).map(|_| rng.normal() as f32));
        stats.grad_norm_sum.push(case.grad_norm_sum);
        stats.visible_count.push(case.visible_count);
        stats.max_radius.push(case.max_radius);
    }
    let mut moments = Moments::zeroed(cases.len(), 1);
    for values in moments.exp_avg.iter_mut().chain(&mut moments.exp_avg_sq) {
        for v in values.iter_mut() {
            // Values exact in f32, so the GPU copies compare bit for bit.
            *v = f64::from(rng.normal() as f32);
        }
    }
    (g, moments, stats)
}

fn child(parent: usize, child: usize) -> Origin {
    Origin::Child { parent, child }
}

/// The documented order: survivors, clones, first children, second children.
fn expected_hand_origins(max_screen_size: bool) -> Vec<Origin> {
    use Origin::{Clone, Original};
    if max_screen_size {
        vec![
            Original(0),
            Original(1),
            Original(6),
            Original(9),
            Clone(1),
            Clone(9),
            child(2, 0),
            child(10, 0),
            child(2, 1),
            child(10, 1),
        ]
    } else {
        vec![
            Original(0),
            Original(1),
            Original(4),
            Original(5),
            Original(6),
            Original(9),
            Clone(1),
            Clone(9),
            child(2, 0),
            child(8, 0),
            child(10, 0),
            child(2, 1),
            child(8, 1),
            child(10, 1),
        ]
    }
}

/// Checks a densified GPU cloud against the expected origins: originals and clones bit for
/// bit with their moments (zero for clones), children with copied rotation, SH and opacity,
/// scales / 1.6 and (within `tolerance`) the reference's means.
fn check_result(
    ctx: &GpuContext,
    state: &GpuState,
    source: &Gaussians,
    source_moments: &Moments,
    reference: &reference::Densified,
    tolerance: f64,
) {
    let n = state.cloud.len as usize;
    assert_eq!(n, reference.origins.len());
    let out = state.cloud.download(ctx);
    let m = state.optimizer.exp_avg.download(ctx, n);
    let v = state.optimizer.exp_avg_sq.download(ctx, n);
    let sh = source.sh_degree;
    let mut worst_child_error = 0.0f64;
    for (k, origin) in reference.origins.iter().enumerate() {
        let (parent, is_child, is_original) = match *origin {
            Origin::Original(i) => (i, false, true),
            Origin::Clone(i) => (i, false, false),
            Origin::Child { parent, .. } => (parent, true, false),
        };
        for group in ParamGroup::ALL {
            let w = group.width(sh);
            let got = &out.group(group)[k * w..(k + 1) * w];
            let parent_values = &source.group(group)[parent * w..(parent + 1) * w];
            let expected = &reference.gaussians.group(group)[k * w..(k + 1) * w];
            let moved = matches!(group, ParamGroup::Means | ParamGroup::LogScales);
            if is_child && moved {
                for (&g, &r) in got.iter().zip(expected) {
                    let (g, r) = (f64::from(g), f64::from(r));
                    worst_child_error = worst_child_error.max((g - r).abs() / r.abs().max(1.0));
                    assert!(
                        (g - r).abs() <= tolerance * r.abs().max(1.0),
                        "{origin:?} {}: {g} vs {r}",
                        group.name()
                    );
                }
            } else {
                assert_eq!(got, parent_values, "{origin:?} {}", group.name());
            }
            let g = group.index();
            for (moment, source_moment) in [
                (
                    &m.group(group)[k * w..(k + 1) * w],
                    &source_moments.exp_avg[g],
                ),
                (
                    &v.group(group)[k * w..(k + 1) * w],
                    &source_moments.exp_avg_sq[g],
                ),
            ] {
                for (j, &value) in moment.iter().enumerate() {
                    let expected = if is_original {
                        source_moment[parent * w + j] as f32
                    } else {
                        0.0
                    };
                    assert_eq!(value, expected, "{origin:?} {} moment", group.name());
                }
            }
        }
        if is_child {
            // Scales exactly the parent's / 1.6 (up to rounding).
            for axis in 0..3 {
                let parent_scale = f64::from(source.log_scales[3 * parent + axis]).exp();
                let child_scale = f64::from(out.log_scales[3 * k + axis]).exp();
                assert!((child_scale / parent_scale - 1.0 / 1.6).abs() < 1e-5);
            }
        }
    }
    eprintln!("largest child mean/log-scale error vs reference: {worst_child_error:e}");
}

fn hand_made(ctx: &GpuContext) {
    for screen_size in [false, true] {
        let mut rng = Pcg32::new(11, 0);
        let (g, moments, stats) = hand_cloud(&mut rng);
        let params = hand_params(screen_size.then_some(20.0));
        let capacity = g.len() as u32;
        let mut state = upload(ctx, &g, &moments, &stats, capacity);
        let mut densifier = Densifier::new(ctx);
        let report = densify_with(&mut densifier, ctx, &mut state, &params);
        let expected_report = if screen_size {
            // Pruned: 3, 4, 5, 7 and its clone, both children of 8.
            DensifyReport {
                before: 11,
                cloned: 3,
                split: 3,
                pruned: 7,
                after: 10,
            }
        } else {
            // Pruned: 3, 7 and its clone.
            DensifyReport {
                before: 11,
                cloned: 3,
                split: 3,
                pruned: 3,
                after: 14,
            }
        };
        assert_eq!(report, expected_report);
        // Without the size rule the result (14) outgrows the capacity (11): everything is
        // reallocated with headroom; with it (10) the capacity stays.
        let expected_capacity = if screen_size { 11 } else { 14 * 5 / 4 };
        assert_eq!(state.cloud.capacity(), expected_capacity);
        assert_stats_zero_and_capacities_match(ctx, &state);

        let mut ref_stats = stats.clone();
        let reference = reference::densify_and_prune(&g, &moments, &mut ref_stats, &params);
        assert_eq!(reference.report, expected_report);
        assert_eq!(reference.origins, expected_hand_origins(screen_size));
        assert_eq!(ref_stats, Stats::zeroed(report.after as usize));
        check_result(ctx, &state, &g, &moments, &reference, 1e-5);

        // Again with the zeroed statistics: nothing to densify or prune, nothing moves.
        let before = state.cloud.download(ctx);
        let m_before = state.optimizer.exp_avg.download(ctx, before.len());
        let again = densify_with(&mut densifier, ctx, &mut state, &params);
        let after = report.after;
        assert_eq!(
            again,
            DensifyReport {
                before: after,
                cloned: 0,
                split: 0,
                pruned: 0,
                after
            }
        );
        assert_eq!(state.cloud.download(ctx), before);
        assert_eq!(
            state.optimizer.exp_avg.download(ctx, before.len()),
            m_before
        );
    }
}

#[test]
fn hand_made_cloud_gives_exact_counts() {
    hand_made(test_context());
}

#[test]
fn hand_made_cloud_gives_exact_counts_fallback() {
    hand_made(test_context_fallback());
}

fn random_cloud(rng: &mut Pcg32, n: usize) -> (Gaussians, Moments, Stats) {
    let mut g = Gaussians::empty(3);
    let mut stats = Stats::default();
    for _ in 0..n {
        g.means.extend((0..3).map(|_| (rng.normal() * 3.0) as f32));
        // Largest scales from 0.01 to 2: cloned, split and too big for extent 10.
        let base = 0.01 + 2.0 * rng.next_f64().powi(3);
        g.log_scales
            .extend((0..3).map(|_| (base * (0.5 + 0.5 * rng.next_f64())).ln() as f32));
        g.rotations.extend((0..4).map(|_| rng.normal() as f32));
        // About 6% below logit(0.005) = -5.3.
        g.logit_opacities.push((rng.normal() * 3.5) as f32);
        g.sh_dc.extend((0..3).map(|_| rng.normal() as f32));
        g.sh_rest
            .extend((0..45).map(|_| (rng.normal() * 0.1) as f32));
        let views = rng.below(5);
        stats.visible_count.push(views);
        stats.grad_norm_sum.push(f64::from(
            (rng.next_f64() * 0.0006 * f64::from(views)) as f32,
        ));
        stats.max_radius.push(f64::from(rng.below(30)));
    }
    let mut moments = Moments::zeroed(n, 3);
    for values in moments.exp_avg.iter_mut().chain(&mut moments.exp_avg_sq) {
        for v in values.iter_mut() {
            *v = f64::from(rng.normal() as f32);
        }
    }
    (g, moments, stats)
}

fn random_vs_reference(ctx: &GpuContext) {
    let n = 3000;
    let mut rng = Pcg32::new(2024, 3);
    let (g, moments, stats) = random_cloud(&mut rng, n);
    // Infinity: inria's effective behaviour (world-size rule only).
    for max_screen_size in [None, Some(20.0), Some(f32::INFINITY)] {
        let params = DensifyParams {
            max_screen_size,
            seed: 0x1234_5678_9abc_def0,
            ..hand_params(None)
        };
        let mut state = upload(ctx, &g, &moments, &stats, 4000);
        let report = densify(ctx, &mut state, &params);
        let mut ref_stats = stats.clone();
        let reference = reference::densify_and_prune(&g, &moments, &mut ref_stats, &params);
        eprintln!("{max_screen_size:?}: {report:?}");
        assert_eq!(report, reference.report);
        // The data must exercise every rule.
        assert!(report.cloned > 100 && report.split > 100 && report.pruned > 100);
        assert_stats_zero_and_capacities_match(ctx, &state);
        check_result(ctx, &state, &g, &moments, &reference, 1e-5);
    }
}

#[test]
fn random_cloud_matches_reference() {
    random_vs_reference(test_context());
}

#[test]
fn random_cloud_matches_reference_fallback() {
    random_vs_reference(test_context_fallback());
}

/// Many splits of one Gaussian: in the parent's rotated frame the children's offsets have
/// mean 0 and standard deviation `scale` per axis, and uncorrelated axes.
fn split_statistics(ctx: &GpuContext) {
    let copies = 4096;
    let scales = [0.2f64, 0.5, 2.0];
    let mean = [1.0f32, -2.0, 3.0];
    let rotation = [0.8f32, 0.3, -0.4, 0.33];
    let mut g = Gaussians::empty(0);
    for _ in 0..copies {
        g.means.extend(mean);
        g.log_scales.extend(scales.map(|s| s.ln() as f32));
        g.rotations.extend(rotation);
        g.logit_opacities.push(0.0);
        g.sh_dc.extend([0.0; 3]);
    }
    let stats = Stats {
        grad_norm_sum: vec![1.0; copies],
        visible_count: vec![1; copies],
        max_radius: vec![0.0; copies],
    };
    let mut state = upload(ctx, &g, &Moments::zeroed(copies, 0), &stats, copies as u32);
    let report = densify(ctx, &mut state, &hand_params(None));
    assert_eq!(
        (report.split, report.after),
        (copies as u32, 2 * copies as u32)
    );
    let out = state.cloud.download(ctx);

    let r = reference::rotation_matrix(rotation.map(f64::from));
    let samples = out.len() as f64;
    let local: Vec<[f64; 3]> = (0..out.len())
        .map(|k| {
            let d: [f64; 3] =
                std::array::from_fn(|a| f64::from(out.means[3 * k + a]) - f64::from(mean[a]));
            // R^T d: the offset in the parent's frame.
            std::array::from_fn(|axis| (0..3).map(|row| r[row][axis] * d[row]).sum())
        })
        .collect();
    let sample_mean: [f64; 3] =
        std::array::from_fn(|a| local.iter().map(|p| p[a]).sum::<f64>() / samples);
    let sample_std: [f64; 3] = std::array::from_fn(|a| {
        let var = local
            .iter()
            .map(|p| (p[a] - sample_mean[a]).powi(2))
            .sum::<f64>()
            / samples;
        var.sqrt()
    });
    for axis in 0..3 {
        // Standard errors: 1.1% of the scale for the mean, 0.8% for the std.
        assert!(
            sample_mean[axis].abs() < 0.05 * scales[axis],
            "axis {axis}: mean {}",
            sample_mean[axis]
        );
        assert!(
            (sample_std[axis] / scales[axis] - 1.0).abs() < 0.03,
            "axis {axis}: std {} vs {}",
            sample_std[axis],
            scales[axis]
        );
    }
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let covariance = local
            .iter()
            .map(|p| (p[a] - sample_mean[a]) * (p[b] - sample_mean[b]))
            .sum::<f64>()
            / samples;
        let correlation = covariance / (sample_std[a] * sample_std[b]);
        assert!(correlation.abs() < 0.05, "axes {a}, {b}: {correlation}");
    }
}

#[test]
fn split_children_are_normal_in_the_rotated_frame() {
    split_statistics(test_context());
}

#[test]
fn split_children_are_normal_in_the_rotated_frame_fallback() {
    split_statistics(test_context_fallback());
}

#[test]
fn empty_cloud() {
    for ctx in [test_context(), test_context_fallback()] {
        empty_cloud_on(ctx);
    }
}

fn empty_cloud_on(ctx: &GpuContext) {
    let g = Gaussians::empty(0);
    let mut state = upload(ctx, &g, &Moments::zeroed(0, 0), &Stats::default(), 8);
    let report = densify(ctx, &mut state, &hand_params(Some(20.0)));
    assert_eq!(
        report,
        DensifyReport {
            before: 0,
            cloned: 0,
            split: 0,
            pruned: 0,
            after: 0
        }
    );
    assert_stats_zero_and_capacities_match(ctx, &state);

    // Everything pruned (opacity far below 0.005).
    let mut rng = Pcg32::new(1, 2);
    let (mut g, moments, stats) = random_cloud(&mut rng, 50);
    g.logit_opacities.fill(-10.0);
    let mut state = upload(ctx, &g, &moments, &stats, 50);
    let report = densify(ctx, &mut state, &hand_params(None));
    assert_eq!(
        (report.pruned, report.after),
        (report.before + report.cloned + report.split, 0)
    );
    assert_eq!(state.cloud.len, 0);
    assert_stats_zero_and_capacities_match(ctx, &state);
}

fn opacity_reset_vs_reference(ctx: &GpuContext) {
    let n = 1000;
    let mut rng = Pcg32::new(5, 5);
    let (mut g, mut moments, stats) = random_cloud(&mut rng, n);
    for o in &mut g.logit_opacities {
        *o = (rng.normal() * 5.0) as f32;
    }
    let state = upload(ctx, &g, &moments, &stats, 1024);
    let mut densifier = Densifier::new(ctx);
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    densifier.reset_opacity(ctx, &mut encoder, &state.cloud, &state.optimizer);
    ctx.queue.submit([encoder.finish()]);
    let before = g.clone();
    reference::reset_opacity(&mut g, &mut moments);
    let out = state.cloud.download(ctx);
    let capped = before
        .logit_opacities
        .iter()
        .filter(|&&o| o > -4.595)
        .count();
    assert!(capped > 100 && capped < 900, "{capped}");
    for (k, (&got, &expected)) in out
        .logit_opacities
        .iter()
        .zip(&g.logit_opacities)
        .enumerate()
    {
        let (got, expected) = (f64::from(got), f64::from(expected));
        assert!(
            (got - expected).abs() <= 1e-6 * expected.abs().max(1.0),
            "{k}: {got} vs {expected}"
        );
    }
    // Other groups untouched; only the opacity moments are zeroed.
    let m = state.optimizer.exp_avg.download(ctx, n);
    let v = state.optimizer.exp_avg_sq.download(ctx, n);
    for group in ParamGroup::ALL {
        if group != ParamGroup::Opacities {
            assert_eq!(out.group(group), before.group(group));
        }
        let g_index = group.index();
        for (gpu_values, ref_values) in [
            (m.group(group), &moments.exp_avg[g_index]),
            (v.group(group), &moments.exp_avg_sq[g_index]),
        ] {
            let expected: Vec<f32> = ref_values.iter().map(|&x| x as f32).collect();
            assert_eq!(gpu_values, expected.as_slice(), "{}", group.name());
        }
    }
}

#[test]
fn opacity_reset_matches_reference() {
    opacity_reset_vs_reference(test_context());
}

#[test]
fn opacity_reset_matches_reference_fallback() {
    opacity_reset_vs_reference(test_context_fallback());
}
