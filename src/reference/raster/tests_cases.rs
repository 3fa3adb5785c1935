//! Hand-checkable cases: closed-form pixel values, every culling rule, the alpha cap, colour
//! clamps, inactive SH bands, the transmittance stop and the densification statistic.

use super::projection::{Cull, project_gaussian};
use super::tests_fd::{check_parameter_gradients, random_weights};
use super::*;
use crate::render_settings::{COVARIANCE_BLUR, MAX_ALPHA, MIN_ALPHA};
use crate::rng::Pcg32;
use crate::sh;
use glam::{DMat3, DVec3};

/// One Gaussian described by its meaning rather than its raw parameters.
#[derive(Clone)]
struct Splat {
    mean: [f64; 3],
    scales: [f64; 3],
    rotation: [f64; 4],
    opacity: f64,
    rgb: [f64; 3],
}

impl Splat {
    fn at(mean: [f64; 3]) -> Self {
        Self {
            mean,
            scales: [0.05; 3],
            rotation: [2.0, 0.0, 0.0, 0.0], // unnormalised on purpose
            opacity: 0.6,
            rgb: [0.2, 0.6, 0.9],
        }
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// A cloud of `splats` with all higher SH bands zero.
fn cloud(sh_degree: u32, splats: &[Splat]) -> Params64 {
    let mut params = Params64::from(&Gaussians::empty(sh_degree));
    for s in splats {
        params.means.extend(s.mean);
        params.log_scales.extend(s.scales.map(f64::ln));
        params.rotations.extend(s.rotation);
        params.logit_opacities.push(logit(s.opacity));
        params.sh_dc.extend(s.rgb.map(sh::rgb_to_sh_dc));
        let rest = ParamGroup::ShRest.width(sh_degree);
        params.sh_rest.extend(std::iter::repeat_n(0.0, rest));
    }
    params
}

/// Camera at the origin looking down +z with square pixels.
fn straight_camera(width: u32, height: u32, focal: f64, cx: f64, cy: f64) -> Camera {
    Camera {
        width,
        height,
        fx: focal,
        fy: focal,
        cx,
        cy,
        rotation: DMat3::IDENTITY,
        translation: DVec3::ZERO,
    }
}

fn settings() -> RenderSettings {
    RenderSettings {
        background: [0.1, 0.2, 0.3],
        active_sh_degree: 3,
        ..RenderSettings::default()
    }
}

fn pixel_value(r: &Rendered, c: usize, x: u32, y: u32) -> f64 {
    r.image[(c as u32 * r.height * r.width + y * r.width + x) as usize]
}

fn cull_reason(params: &Params64, i: usize, camera: &Camera, s: &RenderSettings) -> Option<Cull> {
    project_gaussian(params, i, camera, s).err()
}

fn all_finite(g: &Gradients) -> bool {
    ParamGroup::ALL
        .iter()
        .all(|&k| g.params.group(k).iter().all(|v| v.is_finite()))
        && g.mean2d.iter().flatten().all(|v| v.is_finite())
        && g.conic.iter().flatten().all(|v| v.is_finite())
        && g.color.iter().flatten().all(|v| v.is_finite())
        && g.opacity.iter().all(|v| v.is_finite())
        && g.screen_grad_ndc_norm.iter().all(|v| v.is_finite())
}

fn gaussian_gradient_is_zero(g: &Gradients, i: usize) -> bool {
    ParamGroup::ALL
        .iter()
        .all(|&k| g.params.of(k, i).iter().all(|&v| v == 0.0))
        && g.mean2d[i] == [0.0; 2]
        && g.conic[i] == [0.0; 3]
        && g.opacity[i] == 0.0
        && g.color[i] == [0.0; 3]
        && g.screen_grad_ndc_norm[i] == 0.0
        && g.radii[i] == 0
}

/// A Gaussian of world size 0.05 at depth 2 seen with focal 40 is 1 pixel wide (variance 1 px²,
/// 1 + 0.3 after the blur). With the principal point at the centre of pixel (16, 12), every pixel
/// value has a closed form; this also pins the pixel-centre convention (centre at i + 0.5).
#[test]
fn isotropic_gaussian_matches_closed_form_everywhere() {
    let camera = straight_camera(33, 25, 40.0, 16.5, 12.5);
    let splat = Splat::at([0.0, 0.0, 2.0]);
    let params = cloud(1, std::slice::from_ref(&splat));
    for antialiased in [false, true] {
        for tight_tile_bounds in [false, true] {
            let s = RenderSettings {
                antialiased,
                tight_tile_bounds,
                ..settings()
            };
            let r = render(&params, &camera, &s);
            let p = &r.projected[0];
            let variance = 1.0 + f64::from(COVARIANCE_BLUR);
            // Antialiased: opacity * sqrt(det before blur / det) = opacity * 1 / variance.
            let opacity = splat.opacity * if antialiased { 1.0 / variance } else { 1.0 };
            assert!(p.visible);
            assert!((p.mean2d[0] - 16.5).abs() < 1e-12 && (p.mean2d[1] - 12.5).abs() < 1e-12);
            assert!((p.conic[0] - 1.0 / variance).abs() < 1e-12 && p.conic[1].abs() < 1e-12);
            assert!(
                (p.opacity - opacity).abs() < 1e-12,
                "{} vs {opacity}",
                p.opacity
            );
            assert_eq!(p.depth, 2.0);
            // Square bound: ceil(3 sqrt(1.3 + sqrt(0.1))) = 4; tight: ceil(k sqrt(1.3)) = 4 with
            // k = sqrt(2 ln(255 opacity)) = 3.18 (3.10 antialiased).
            assert_eq!(p.radius, 4);
            // x: floor((16.5 - 4) / 16) = 0 .. floor((16.5 + 4 + 15) / 16) = 2 (grid 3);
            // y: 0 .. floor((12.5 + 4 + 15) / 16) = 1 (grid 2): rows from 16 on are not covered.
            assert_eq!((p.tile_min, p.tile_max), ([0, 0], [2, 1]));
            for y in 0..25 {
                for x in 0..33 {
                    let (dx, dy) = (f64::from(x) + 0.5 - 16.5, f64::from(y) + 0.5 - 12.5);
                    let alpha = opacity * (-0.5 * (dx * dx + dy * dy) / variance).exp();
                    let covered = y < 16 && alpha >= f64::from(MIN_ALPHA);
                    let alpha = if covered { alpha } else { 0.0 };
                    for c in 0..3 {
                        let expected =
                            splat.rgb[c] * alpha + (1.0 - alpha) * f64::from(s.background[c]);
                        let got = pixel_value(&r, c, x, y);
                        assert!(
                            (got - expected).abs() < 1e-12,
                            "({x}, {y}) {c}: {got} vs {expected}"
                        );
                    }
                    let t = r.final_transmittance[(y * 33 + x) as usize];
                    assert!((t - (1.0 - alpha)).abs() < 1e-12);
                }
            }
        }
    }
}

/// Two Gaussians on the same pixel: the nearer one (index 1) is composited first.
#[test]
fn gaussians_composite_front_to_back_by_depth() {
    let camera = straight_camera(21, 19, 40.0, 10.5, 9.5);
    let far = Splat {
        opacity: 0.5,
        rgb: [1.0, 0.0, 0.0],
        ..Splat::at([0.0, 0.0, 3.0])
    };
    let near = Splat {
        opacity: 0.7,
        rgb: [0.0, 1.0, 0.0],
        ..Splat::at([0.0, 0.0, 2.0])
    };
    let s = settings();
    let r = render(&cloud(0, &[far.clone(), near.clone()]), &camera, &s);
    for (c, bg) in s.background.map(f64::from).into_iter().enumerate() {
        let expected = near.rgb[c] * 0.7 + far.rgb[c] * 0.5 * 0.3 + bg * 0.3 * 0.5;
        assert!((pixel_value(&r, c, 10, 9) - expected).abs() < 1e-12);
    }
}

/// Eight Gaussians stacked on one pixel with opacity 0.8: after five the transmittance is
/// 0.2^5 = 3.2e-4, and the sixth would take it to 6.4e-5 < 1e-4, so compositing stops there.
#[test]
fn compositing_stops_before_transmittance_falls_below_threshold() {
    let camera = straight_camera(21, 19, 40.0, 10.5, 9.5);
    let splats: Vec<Splat> = (0..8)
        .map(|k| Splat {
            opacity: 0.8,
            ..Splat::at([0.0, 0.0, 2.0 + 0.1 * f64::from(k)])
        })
        .collect();
    let params = cloud(0, &splats);
    let s = settings();
    let decisions = render_decisions(&params, &camera, &s);
    let centre = 9 * 21 + 10;
    let composited: Vec<usize> = decisions.pixels[centre].iter().map(|&(g, _)| g).collect();
    assert_eq!(composited, [0, 1, 2, 3, 4]);
    assert!(decisions.stopped[centre]);
    let r = render(&params, &camera, &s);
    assert!((r.final_transmittance[centre] - 0.2f64.powi(5)).abs() < 1e-15);
    // The occluded Gaussians get no gradient from the centre pixel.
    let mut d_image = vec![0.0; 3 * 21 * 19];
    d_image[centre] = 1.0;
    let g = render_backward(&params, &camera, &s, &d_image);
    for i in 5..8 {
        assert_eq!(g.opacity[i], 0.0);
        assert_eq!(g.params.of(ParamGroup::ShDc, i)[0], 0.0);
    }
    assert!(g.params.of(ParamGroup::ShDc, 4)[0] > 0.0);
}

/// Behind the camera, in front of the near plane, and exactly on it: culled, no gradient, and
/// the image is the image without them.
#[test]
fn gaussians_behind_the_near_plane_are_culled_with_zero_gradient() {
    let camera = straight_camera(25, 23, 30.0, 12.0, 11.0);
    let visible = Splat::at([0.05, -0.02, 1.5]);
    let splats = [
        Splat::at([0.0, 0.0, -1.0]),
        visible.clone(),
        Splat::at([0.0, 0.0, 0.15]),
        Splat::at([0.0, 0.0, f64::from(0.2f32)]), // exactly on the near plane (f32 setting)
    ];
    let params = cloud(2, &splats);
    let s = settings();
    for i in [0, 2, 3] {
        assert_eq!(
            cull_reason(&params, i, &camera, &s),
            Some(Cull::NearPlane),
            "{i}"
        );
    }
    let r = render(&params, &camera, &s);
    assert_eq!(r.image, render(&cloud(2, &[visible]), &camera, &s).image);
    let weights = random_weights(&mut Pcg32::new(1, 1), &camera);
    let g = render_backward(&params, &camera, &s, &weights);
    for i in [0, 2, 3] {
        assert!(
            !r.projected[i].visible && gaussian_gradient_is_zero(&g, i),
            "{i}"
        );
    }
    assert!(g.params.of(ParamGroup::Means, 1).iter().any(|&v| v != 0.0));
}

/// Gaussians across the left border and the bottom-right corner: partly visible, tile
/// rectangles clamped to the grid, and their gradients still exact.
#[test]
fn gaussians_straddling_the_border() {
    let camera = straight_camera(37, 29, 30.0, 18.5, 14.5);
    // u = 30 x / z + 18.5: x = -1.4 at depth 2 gives u = -2.5; (1.4, 1.1) gives (39.5, 31).
    let splats = [
        Splat {
            scales: [0.2, 0.1, 0.15],
            ..Splat::at([-1.4, 0.0, 2.0])
        },
        Splat {
            scales: [0.15, 0.2, 0.1],
            rotation: [0.9, 0.3, -0.2, 0.4],
            ..Splat::at([1.4, 1.1, 2.0])
        },
    ];
    let params = cloud(1, &splats);
    for antialiased in [false, true] {
        let s = RenderSettings {
            antialiased,
            ..settings()
        };
        let r = render(&params, &camera, &s);
        let (left, corner) = (&r.projected[0], &r.projected[1]);
        assert!(left.visible && corner.visible);
        assert!(left.mean2d[0] < 0.0 && left.tile_min[0] == 0);
        assert!(corner.mean2d[0] > 37.0 && corner.mean2d[1] > 29.0);
        assert_eq!(corner.tile_max, [3, 2]); // the grid of a 37 x 29 image
        assert!(pixel_value(&r, 0, 0, 14) != f64::from(s.background[0]));
        assert!(pixel_value(&r, 0, 36, 28) != f64::from(s.background[0]));
        let weights = random_weights(&mut Pcg32::new(2, 2), &camera);
        let report = check_parameter_gradients(&params, &camera, &s, &weights);
        report.assert_passed("border Gaussians");
        assert_eq!(report.checked_fraction(), 1.0);
    }
}

/// Opacity below 1/255 culls; so does an antialiasing factor that makes it so.
#[test]
fn transparent_gaussians_are_culled() {
    let camera = straight_camera(25, 23, 30.0, 12.0, 11.0);
    let mut params = cloud(
        0,
        &[
            Splat::at([0.0, 0.0, 2.0]),
            Splat {
                scales: [1e-7; 3],
                ..Splat::at([0.1, 0.0, 2.0])
            },
        ],
    );
    params.logit_opacities[0] = -30.0;
    let s = settings();
    assert_eq!(cull_reason(&params, 0, &camera, &s), Some(Cull::LowOpacity));
    assert_eq!(cull_reason(&params, 1, &camera, &s), None);
    let aa = RenderSettings {
        antialiased: true,
        ..settings()
    };
    assert_eq!(
        cull_reason(&params, 1, &camera, &aa),
        Some(Cull::LowOpacity)
    );
    let g = render_backward(
        &params,
        &camera,
        &aa,
        &random_weights(&mut Pcg32::new(3, 3), &camera),
    );
    assert!(gaussian_gradient_is_zero(&g, 0) && gaussian_gradient_is_zero(&g, 1));
}

/// A NaN or infinity in any parameter culls that Gaussian: the image is the image without it
/// and no output or gradient is non-finite.
#[test]
fn non_finite_parameters_are_culled_without_spreading() {
    let mut rng = Pcg32::new(4, 4);
    let camera = straight_camera(19, 17, 25.0, 9.0, 8.5);
    let splats = [
        Splat::at([0.1, 0.0, 2.0]),
        Splat::at([-0.1, 0.05, 2.5]),
        Splat::at([0.0, -0.1, 3.0]),
    ];
    let mut params = cloud(3, &splats);
    for v in &mut params.sh_rest {
        *v = 0.2 * rng.normal();
    }
    let mut without = params.clone();
    for group in ParamGroup::ALL {
        let w = group.width(3);
        without.group_mut(group).drain(w..2 * w);
    }
    let s = RenderSettings {
        active_sh_degree: 1, // a NaN in an inactive band still culls
        ..settings()
    };
    let expected = render(&without, &camera, &s).image;
    let weights = random_weights(&mut rng, &camera);
    for group in ParamGroup::ALL {
        for k in 0..group.width(3) {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let mut p = params.clone();
                p.of_mut(group, 1)[k] = bad;
                assert_eq!(cull_reason(&p, 1, &camera, &s), Some(Cull::NonFinite));
                let r = render(&p, &camera, &s);
                assert_eq!(r.image, expected, "{}[{k}] = {bad}", group.name());
                assert!(r.final_transmittance.iter().all(|t| t.is_finite()));
                let g = render_backward(&p, &camera, &s, &weights);
                assert!(all_finite(&g) && gaussian_gradient_is_zero(&g, 1));
            }
        }
    }
}

/// A zero quaternion and an overflowing scale cull instead of producing NaN.
#[test]
fn degenerate_rotation_and_overflowing_scale_are_culled() {
    let camera = straight_camera(19, 17, 25.0, 9.0, 8.5);
    let mut params = cloud(0, &[Splat::at([0.0, 0.0, 2.0]), Splat::at([0.1, 0.0, 2.0])]);
    params.of_mut(ParamGroup::Rotations, 0).fill(0.0);
    params.of_mut(ParamGroup::LogScales, 1)[0] = 800.0; // exp overflows to infinity
    let s = settings();
    assert_eq!(
        cull_reason(&params, 0, &camera, &s),
        Some(Cull::DegenerateRotation)
    );
    assert_eq!(
        cull_reason(&params, 1, &camera, &s),
        Some(Cull::DegenerateCovariance)
    );
    let g = render_backward(
        &params,
        &camera,
        &s,
        &random_weights(&mut Pcg32::new(5, 5), &camera),
    );
    assert!(all_finite(&g));
}

#[test]
fn empty_cloud_renders_the_background() {
    let camera = straight_camera(23, 19, 25.0, 11.5, 9.5);
    let params = Params64::from(&Gaussians::empty(3));
    let s = settings();
    let r = render(&params, &camera, &s);
    for c in 0..3 {
        assert!((0..23 * 19).all(|i| r.image[c * 23 * 19 + i] == f64::from(s.background[c])));
    }
    assert!(r.final_transmittance.iter().all(|&t| t == 1.0) && r.projected.is_empty());
    let g = render_backward(&params, &camera, &s, &vec![1.0; 3 * 23 * 19]);
    assert!(g.params.is_empty() && g.mean2d.is_empty() && g.radii.is_empty());
}

/// A Gaussian much larger than the image and one far below a pixel: finite, and exact
/// gradients (the tiny one is culled in antialiased mode, where its opacity vanishes).
#[test]
fn huge_and_tiny_scales() {
    let camera = straight_camera(29, 23, 30.0, 14.0, 11.0);
    let huge = Splat {
        scales: [20.0, 15.0, 10.0],
        rotation: [0.8, 0.1, 0.5, -0.2],
        opacity: 0.4,
        ..Splat::at([0.3, -0.2, 3.0])
    };
    let tiny = Splat {
        scales: [1e-6, 2e-6, 3e-7],
        opacity: 0.9,
        ..Splat::at([0.02, 0.03, 1.0])
    };
    let params = cloud(1, &[huge, tiny]);
    let s = settings();
    let r = render(&params, &camera, &s);
    assert_eq!(
        (r.projected[0].tile_min, r.projected[0].tile_max),
        ([0, 0], [2, 2])
    );
    assert!(r.projected[0].radius > 100); // sigma of order 30 px * 20 / 3

    // ceil(3 sqrt(0.3 + sqrt(0.1))) = ceil(2.35): the blur alone, with inria's 0.1 floor.
    assert!(r.projected[1].visible && r.projected[1].radius == 3);
    // The tiny Gaussian is the blur alone: conic = I / 0.3.
    assert!((r.projected[1].conic[0] * f64::from(COVARIANCE_BLUR) - 1.0).abs() < 1e-6);
    assert!(r.image.iter().all(|v| v.is_finite()));
    let weights = random_weights(&mut Pcg32::new(6, 6), &camera);
    let report = check_parameter_gradients(&params, &camera, &s, &weights);
    report.assert_passed("huge and tiny scales");
    assert_eq!(report.checked_fraction(), 1.0);
    let aa = RenderSettings {
        antialiased: true,
        ..settings()
    };
    assert_eq!(
        cull_reason(&params, 1, &camera, &aa),
        Some(Cull::LowOpacity)
    );
}

/// At the centre of an almost opaque Gaussian alpha is capped at 0.99: from that pixel its
/// opacity, position and shape get no gradient, its colour gets `0.99 * T`.
#[test]
fn capped_alpha_passes_no_gradient_to_opacity_or_geometry() {
    let camera = straight_camera(21, 19, 40.0, 10.5, 9.5);
    let splat = Splat {
        opacity: 0.9997,
        rotation: [0.9, 0.2, 0.1, -0.3],
        scales: [0.05, 0.06, 0.04],
        ..Splat::at([0.0, 0.0, 2.0])
    };
    let params = cloud(0, &[splat]);
    let s = settings();
    let decisions = render_decisions(&params, &camera, &s);
    let centre = 9 * 21 + 10;
    assert_eq!(decisions.pixels[centre], [(0, true)]);
    let mut d_image = vec![0.0; 3 * 21 * 19];
    for c in 0..3 {
        d_image[c * 21 * 19 + centre] = 1.0;
    }
    let g = render_backward(&params, &camera, &s, &d_image);
    for group in [
        ParamGroup::Means,
        ParamGroup::LogScales,
        ParamGroup::Rotations,
        ParamGroup::Opacities,
    ] {
        assert!(
            g.params.group(group).iter().all(|&v| v == 0.0),
            "{}",
            group.name()
        );
    }
    assert_eq!((g.opacity[0], g.mean2d[0]), (0.0, [0.0; 2]));
    for c in 0..3 {
        let expected = sh::C0 * f64::from(MAX_ALPHA);
        assert!((g.params.sh_dc[c] - expected).abs() < 1e-15);
    }
    // One pixel to the right, alpha = 0.9997 exp(-0.5 dx² conic.xx) is below the cap.
    d_image.fill(0.0);
    d_image[centre + 1] = 1.0;
    assert_eq!(
        render_decisions(&params, &camera, &s).pixels[centre + 1],
        [(0, false)]
    );
    let g = render_backward(&params, &camera, &s, &d_image);
    assert!(g.params.logit_opacities[0] != 0.0 && g.params.means[0] != 0.0);
}

/// A channel whose SH colour is negative is clamped to 0 and none of its coefficients get a
/// gradient; the other channels do.
#[test]
fn clamped_colour_channel_gets_no_sh_gradient() {
    let camera = straight_camera(21, 19, 30.0, 10.0, 9.0);
    let mut params = cloud(
        2,
        &[Splat {
            rgb: [-0.5, 0.6, 0.9],
            // x != y, so no basis function of the view direction is exactly zero
            ..Splat::at([0.1, 0.15, 2.0])
        }],
    );
    let mut rng = Pcg32::new(7, 7);
    for v in &mut params.sh_rest {
        *v = 0.1 * rng.normal();
    }
    let s = settings();
    let r = render(&params, &camera, &s);
    assert_eq!(r.projected[0].clamped, [true, false, false]);
    assert_eq!(r.projected[0].color[0], 0.0);
    let g = render_backward(&params, &camera, &s, &random_weights(&mut rng, &camera));
    assert!(
        g.color[0][0] != 0.0,
        "the 2D-stage colour gradient is reported unclamped"
    );
    assert_eq!(g.params.sh_dc[0], 0.0);
    assert!(g.params.sh_dc[1] != 0.0 && g.params.sh_dc[2] != 0.0);
    for k in 0..sh::rest_coeffs_for_degree(2) {
        assert_eq!(g.params.sh_rest[k * 3], 0.0, "coefficient {k}");
        assert!(g.params.sh_rest[k * 3 + 1] != 0.0 && g.params.sh_rest[k * 3 + 2] != 0.0);
    }
}

/// Bands above the active degree change nothing and get exactly zero gradient.
#[test]
fn sh_bands_above_the_active_degree_are_inert() {
    let mut rng = Pcg32::new(8, 8);
    let (gaussians, camera) = random_scene(&mut rng, 12, 3, 27, 21);
    let params = Params64::from(&gaussians);
    let weights = random_weights(&mut rng, &camera);
    for active in 0..=3 {
        let s = RenderSettings {
            active_sh_degree: active,
            ..settings()
        };
        let mut noisy = params.clone();
        for i in 0..params.len() {
            for v in
                &mut noisy.of_mut(ParamGroup::ShRest, i)[3 * sh::rest_coeffs_for_degree(active)..]
            {
                *v += rng.normal();
            }
        }
        assert_eq!(
            render(&params, &camera, &s).image,
            render(&noisy, &camera, &s).image
        );
        let g = render_backward(&params, &camera, &s, &weights);
        let mut any_active_gradient = false;
        for i in 0..params.len() {
            let rest = g.params.of(ParamGroup::ShRest, i);
            let (active_part, inactive) = rest.split_at(3 * sh::rest_coeffs_for_degree(active));
            assert!(inactive.iter().all(|&v| v == 0.0));
            any_active_gradient |= active_part.iter().any(|&v| v != 0.0);
        }
        assert_eq!(any_active_gradient, active > 0);
    }
}

/// `screen_grad_ndc_norm = |(dL/du W/2, dL/dv H/2)|` for visible Gaussians, 0 for culled ones;
/// `radii` is the projected radius.
#[test]
fn densification_statistic_follows_its_definition() {
    let mut rng = Pcg32::new(9, 9);
    let (gaussians, camera) = random_scene(&mut rng, 30, 1, 43, 31);
    let params = Params64::from(&gaussians);
    let s = settings();
    let r = render(&params, &camera, &s);
    let g = render_backward(&params, &camera, &s, &random_weights(&mut rng, &camera));
    let mut visible = 0;
    for (i, p) in r.projected.iter().enumerate() {
        assert_eq!(g.radii[i], p.radius);
        if p.visible {
            visible += 1;
            let [du, dv] = g.mean2d[i];
            let expected = ((du * 43.0 / 2.0).powi(2) + (dv * 31.0 / 2.0).powi(2)).sqrt();
            assert!((g.screen_grad_ndc_norm[i] - expected).abs() <= 1e-14 * expected.max(1e-300));
            assert!(p.radius > 0);
        } else {
            assert_eq!((g.screen_grad_ndc_norm[i], g.radii[i]), (0.0, 0));
        }
    }
    assert!(visible > 10 && visible < 30, "{visible} of 30 visible");
}

#[test]
fn params64_round_trips_and_groups() {
    let mut rng = Pcg32::new(10, 10);
    let (gaussians, _) = random_scene(&mut rng, 5, 2, 20, 20);
    let params = Params64::from(&gaussians);
    assert_eq!(params.to_gaussians(), gaussians);
    assert_eq!(params.len(), 5);
    let zeros = params.zeros_like();
    for group in ParamGroup::ALL {
        assert_eq!(zeros.group(group).len(), params.group(group).len());
        assert!(zeros.group(group).iter().all(|&v| v == 0.0));
        assert_eq!(params.of(group, 3).len(), group.width(2));
    }
}
