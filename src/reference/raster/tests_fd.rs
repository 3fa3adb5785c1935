//! The backward pass against central finite differences of the forward pass, in f64.
//!
//! `L = sum(w .* image)` with random weights `w` in [-1, 1]. Every raw parameter of every
//! Gaussian is perturbed by `±H` and `±2H`; the difference quotient is compared with
//! `render_backward`. The 2D-stage gradients (mean2d, conic, opacity, colour) are checked the
//! same way by perturbing the projected values and compositing again.
//!
//! Finite differences across a discontinuity mean nothing (radius `ceil`, tile rectangles, the
//! 1/255 skip, the 1e-4 stop, the 0.99 cap, colour clamps, the Jacobian clamp, culling), so a
//! component is compared only when both perturbed renders make exactly the same discrete
//! decisions as the unperturbed one ([`RenderDecisions`]); the test asserts that almost all
//! components pass that filter, so it cannot pass by skipping.
//!
//! Step and tolerance: the fourth-order stencil `(8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / 12h`
//! with `H = 2^-17 = 7.6e-6` on parameters of order 1, differences taken pixel by pixel before
//! the weighted sum. Its truncation error (`h^4 f^(5) / 30`) is negligible at this step; its
//! rounding error, about `eps * sqrt(pixels) / h`, dominates and was measured at up to 1.5e-10
//! (with `h = 2^-20` the worst errors were ~1.4e-9, eight times larger, confirming they are
//! rounding and not a derivative error). A component passes when
//! `|fd - analytic| <= 1e-5 * max(|fd|, |analytic|) + 1e-9`.

use super::composite::{composite_backward, composite_forward};
use super::*;
use crate::rng::Pcg32;

/// 2^-17: the rounding of `x ± H` changes the effective step by at most ulp(x) / H ~ 1e-11.
const H: f64 = 1.0 / (1u64 << 17) as f64;
const RELATIVE_TOLERANCE: f64 = 1e-5;
const ABSOLUTE_TOLERANCE: f64 = 1e-9;

pub(super) fn random_weights(rng: &mut Pcg32, camera: &Camera) -> Vec<f64> {
    (0..3 * camera.width * camera.height)
        .map(|_| 2.0 * rng.next_f64() - 1.0)
        .collect()
}

/// Tallies of one or more finite-difference checks.
#[derive(Default, Debug)]
pub(super) struct FdReport {
    pub checked: usize,
    pub skipped: usize,
    /// Checked components large enough (`>= ABSOLUTE / RELATIVE = 1e-4`) that the relative
    /// tolerance governs them rather than the absolute floor.
    pub large: usize,
    /// Largest `|fd - analytic| / (relative * max(|fd|, |analytic|) + absolute)`; must be <= 1.
    pub worst_ratio: f64,
    pub worst: String,
    pub failures: Vec<String>,
}

impl FdReport {
    /// Records one comparison (`None` when it was skipped for a changed decision).
    fn record(&mut self, label: impl FnOnce() -> String, values: Option<(f64, f64)>) {
        let Some((fd, analytic)) = values else {
            self.skipped += 1;
            return;
        };
        self.checked += 1;
        if RELATIVE_TOLERANCE * fd.abs().max(analytic.abs()) >= ABSOLUTE_TOLERANCE {
            self.large += 1;
        }
        let allowed = RELATIVE_TOLERANCE * fd.abs().max(analytic.abs()) + ABSOLUTE_TOLERANCE;
        let ratio = (fd - analytic).abs() / allowed;
        let ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
        if ratio > self.worst_ratio || ratio > 1.0 {
            let text = format!("{}: fd {fd:.9e} analytic {analytic:.9e}", label());
            if ratio > 1.0 && self.failures.len() < 20 {
                self.failures.push(text.clone());
            }
            if ratio > self.worst_ratio {
                self.worst_ratio = ratio;
                self.worst = text;
            }
        }
    }

    pub fn checked_fraction(&self) -> f64 {
        self.checked as f64 / (self.checked + self.skipped).max(1) as f64
    }

    pub fn merge(&mut self, other: FdReport) {
        self.checked += other.checked;
        self.skipped += other.skipped;
        self.large += other.large;
        if other.worst_ratio > self.worst_ratio {
            self.worst_ratio = other.worst_ratio;
            self.worst = other.worst;
        }
        self.failures.extend(other.failures);
    }

    pub fn assert_passed(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} components outside tolerance, e.g.\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n")
        );
    }
}

/// `dL/dx` by the fourth-order central stencil `(8 (L(h) - L(-h)) - (L(2h) - L(-2h))) / 12h`.
/// The differences are formed pixel by pixel before the weighted sum, so the rounding of the
/// long sum cancels. `image_at(offset)` renders with the component moved by `offset`, or gives
/// `None` when that render's discrete decisions differ from the unperturbed one's.
fn stencil_derivative(image_at: impl Fn(f64) -> Option<Vec<f64>>, weights: &[f64]) -> Option<f64> {
    let near_plus = image_at(H)?;
    let near_minus = image_at(-H)?;
    let far_plus = image_at(2.0 * H)?;
    let far_minus = image_at(-2.0 * H)?;
    let sum: f64 = (0..weights.len())
        .map(|i| {
            let near = near_plus[i] - near_minus[i];
            let far = far_plus[i] - far_minus[i];
            weights[i] * (8.0 * near - far)
        })
        .sum();
    Some(sum / (12.0 * H))
}

/// Checks `dL/d(every raw parameter)` of `render_backward` by central differences.
pub(super) fn check_parameter_gradients(
    params: &Params64,
    camera: &Camera,
    settings: &RenderSettings,
    weights: &[f64],
) -> FdReport {
    let analytic = render_backward(params, camera, settings, weights);
    let baseline = forward(params, camera, settings).decisions();
    let mut report = FdReport::default();
    for group in ParamGroup::ALL {
        let width = group.width(params.sh_degree);
        for index in 0..params.group(group).len() {
            let image_at = |offset: f64| {
                let mut perturbed = params.clone();
                perturbed.group_mut(group)[index] += offset;
                let f = forward(&perturbed, camera, settings);
                (f.decisions() == baseline).then_some(f.image)
            };
            let values = stencil_derivative(image_at, weights)
                .map(|fd| (fd, analytic.params.group(group)[index]));
            report.record(
                || {
                    format!(
                        "{}[{}] of Gaussian {}",
                        group.name(),
                        index % width,
                        index / width
                    )
                },
                values,
            );
        }
    }
    report
}

/// The 2D-stage gradients (mean2d, conic, opacity, colour) by central differences of the
/// compositing alone, perturbing the projected values directly.
pub(super) fn check_2d_gradients(
    params: &Params64,
    camera: &Camera,
    settings: &RenderSettings,
    weights: &[f64],
) -> FdReport {
    let f = forward(params, camera, settings);
    let grads = composite_backward(&f.projected, &f.traces, camera, settings, weights);
    let pixel_decisions = |t: &composite::PixelTrace| (t.decisions(), t.stopped);
    let baseline: Vec<_> = f.traces.iter().map(pixel_decisions).collect();
    type Field = fn(&mut Projected) -> &mut f64;
    type Analytic = fn(&composite::Grad2d) -> f64;
    let fields: [(&str, Field, Analytic); 9] = [
        ("mean2d.x", |p| &mut p.mean2d[0], |g| g.mean2d[0]),
        ("mean2d.y", |p| &mut p.mean2d[1], |g| g.mean2d[1]),
        ("conic.xx", |p| &mut p.conic[0], |g| g.conic[0]),
        ("conic.xy", |p| &mut p.conic[1], |g| g.conic[1]),
        ("conic.yy", |p| &mut p.conic[2], |g| g.conic[2]),
        ("opacity", |p| &mut p.opacity, |g| g.opacity),
        ("color.r", |p| &mut p.color[0], |g| g.color[0]),
        ("color.g", |p| &mut p.color[1], |g| g.color[1]),
        ("color.b", |p| &mut p.color[2], |g| g.color[2]),
    ];
    let mut report = FdReport::default();
    for i in (0..f.projected.len()).filter(|&i| f.projected[i].visible) {
        for (name, field, analytic) in fields {
            let image_at = |offset: f64| {
                let mut perturbed = f.projected.clone();
                *field(&mut perturbed[i]) += offset;
                let (image, traces) = composite_forward(&perturbed, camera, settings);
                let same = traces
                    .iter()
                    .map(pixel_decisions)
                    .eq(baseline.iter().cloned());
                same.then_some(image)
            };
            let values = stencil_derivative(image_at, weights).map(|fd| (fd, analytic(&grads[i])));
            report.record(|| format!("2D {name} of Gaussian {i}"), values);
        }
    }
    report
}

/// How often the scenes hit each branch (so the finite differences cover them).
#[derive(Default, Debug)]
struct Coverage {
    visible: usize,
    culled: usize,
    capped_contributions: usize,
    contributions: usize,
    stopped_pixels: usize,
    clamped_channels: usize,
    jacobian_clamps: usize,
}

impl Coverage {
    fn add(&mut self, params: &Params64, camera: &Camera, settings: &RenderSettings) {
        let f = forward(params, camera, settings);
        for d in &f.detailed {
            match d {
                Ok(p) => {
                    self.visible += 1;
                    self.clamped_channels += p.projected.clamped.iter().filter(|&&c| c).count();
                    self.jacobian_clamps += p.jacobian_clamped.iter().filter(|&&c| c).count();
                }
                Err(_) => self.culled += 1,
            }
        }
        for t in &f.traces {
            self.contributions += t.contributions.len();
            self.capped_contributions += t.contributions.iter().filter(|k| k.capped).count();
            self.stopped_pixels += usize::from(t.stopped);
        }
    }
}

/// One random scene configuration.
struct Case {
    width: u32,
    height: u32,
    gaussians: usize,
    sh_degree: u32,
    active_sh_degree: u32,
    antialiased: bool,
    tight_tile_bounds: bool,
    /// Make every Gaussian fairly opaque (logits shifted to at least 1.5), so that overlapping
    /// layers reach the transmittance stop.
    opaque: bool,
}

const fn case(
    (width, height): (u32, u32),
    gaussians: usize,
    (sh_degree, active_sh_degree): (u32, u32),
    antialiased: bool,
    tight_tile_bounds: bool,
) -> Case {
    Case {
        width,
        height,
        gaussians,
        sh_degree,
        active_sh_degree,
        antialiased,
        tight_tile_bounds,
        opaque: false,
    }
}

/// Odd sizes (never multiples of 16), every SH degree with the active degree below and equal to
/// the stored one, every combination of antialiasing and tile-bound mode.
const CASES: [Case; 11] = [
    case((37, 29), 12, (3, 3), false, false),
    case((50, 33), 30, (3, 1), true, true),
    case((23, 41), 20, (2, 2), true, false),
    case((33, 17), 8, (1, 0), false, true),
    case((19, 21), 30, (0, 0), false, false),
    case((45, 31), 25, (3, 2), true, false),
    case((29, 37), 1, (3, 3), true, true),
    case((41, 27), 16, (2, 1), false, true),
    case((31, 23), 24, (1, 1), true, true),
    case((27, 35), 18, (3, 0), false, false),
    // Dense and opaque: many overlapping layers, so pixels reach the transmittance stop.
    Case {
        opaque: true,
        ..case((19, 17), 60, (1, 1), true, false)
    },
];

#[test]
fn backward_matches_finite_differences_on_random_scenes() {
    let start = std::time::Instant::now();
    let mut rng = Pcg32::new(2024, 11);
    let mut params_report = FdReport::default();
    let mut report_2d = FdReport::default();
    let mut coverage = Coverage::default();
    for (case_index, c) in CASES.iter().enumerate() {
        for _scene in 0..2 {
            let (gaussians, camera) =
                random_scene(&mut rng, c.gaussians, c.sh_degree, c.width, c.height);
            let mut params = Params64::from(&gaussians);
            if c.opaque {
                for logit in &mut params.logit_opacities {
                    *logit = logit.abs() + 1.5;
                }
            }
            let settings = RenderSettings {
                background: [
                    0.2 + 0.6 * rng.next_f32(),
                    rng.next_f32(),
                    0.1 + 0.8 * rng.next_f32(),
                ],
                active_sh_degree: c.active_sh_degree,
                near_plane: 0.2,
                antialiased: c.antialiased,
                tight_tile_bounds: c.tight_tile_bounds,
            };
            let weights = random_weights(&mut rng, &camera);
            coverage.add(&params, &camera, &settings);
            let report = check_parameter_gradients(&params, &camera, &settings, &weights);
            eprintln!(
                "case {case_index}: {} checked, {} skipped, worst ratio {:.3} ({})",
                report.checked, report.skipped, report.worst_ratio, report.worst
            );
            params_report.merge(report);
            report_2d.merge(check_2d_gradients(&params, &camera, &settings, &weights));
        }
    }
    eprintln!("coverage: {coverage:?}");
    eprintln!(
        "parameters: {} checked ({:.1}%, {} of them >= 1e-4), worst ratio {:.3} ({}); 2D: {} checked ({:.1}%), worst ratio {:.3} ({}); {:.1} s",
        params_report.checked,
        100.0 * params_report.checked_fraction(),
        params_report.large,
        params_report.worst_ratio,
        params_report.worst,
        report_2d.checked,
        100.0 * report_2d.checked_fraction(),
        report_2d.worst_ratio,
        report_2d.worst,
        start.elapsed().as_secs_f64()
    );
    params_report.assert_passed("raw-parameter gradients");
    report_2d.assert_passed("2D-stage gradients");
    assert!(
        params_report.checked_fraction() >= 0.95,
        "too many components skipped"
    );
    assert!(
        report_2d.checked_fraction() >= 0.95,
        "too many components skipped"
    );
    // The scenes must exercise every branch the backward pass treats specially.
    assert!(
        coverage.culled > 0 && coverage.visible > 100,
        "{coverage:?}"
    );
    assert!(
        coverage.capped_contributions > 0 && coverage.stopped_pixels > 0,
        "{coverage:?}"
    );
    assert!(
        coverage.clamped_channels > 0 && coverage.jacobian_clamps > 0,
        "{coverage:?}"
    );
}
