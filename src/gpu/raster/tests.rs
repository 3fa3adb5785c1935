//! The GPU rasterizer against the f64 reference (`reference::raster`) on random scenes and edge
//! cases, on the fast path (float atomics, subgroups) and the fallback path.
//!
//! Metrics and tolerances (the numbers each test prints are the achieved ones):
//! - Forward: max |gpu - ref| over every pixel and channel of the image and of the final
//!   transmittance, <= 1e-4.
//! - Projection: visibility equal; radii and tile rectangles equal, except off-by-one
//!   differences where f32 and f64 round to different sides of a `ceil`/`floor` boundary. Such a
//!   Gaussian is reported, and the pixels of every tile either rectangle covers are left out of
//!   the image comparison (their count is printed); a scene with such a mismatch skips the
//!   gradient comparison (the two renders are then different functions), and at most one scene
//!   in a run may do so.
//! - Gradients, per parameter group (and per 2D stage: mean2d, conic, opacity, colour):
//!   `||g_gpu - g_ref|| / ||g_ref||` <= `GRAD_REL_TOL`, and elementwise
//!   `|g_gpu - g_ref| <= GRAD_ELEM_ABS * max|g_ref| + GRAD_ELEM_REL * |g_ref|` for every
//!   element of every group (nothing excluded).

use super::*;
use crate::gpu::test_util::{test_context, test_context_fallback};
use crate::gpu::{self, read_buffer, storage_buffer_from};
use crate::model::{Gaussians, ParamGroup};
use crate::reference::raster::{self as reference, Params64, random_scene, random_settings};
use crate::render_settings::TILE_SIZE;
use crate::rng::Pcg32;

const IMAGE_TOL: f64 = 1e-4;
const GRAD_REL_TOL: f64 = 5e-4;
const GRAD_ELEM_ABS: f64 = 1e-3;
const GRAD_ELEM_REL: f64 = 1e-2;

// ---------------------------------------------------------------------------------------------
// Running the GPU rasterizer

/// How the test renders: the real GPU binning, or the CPU stand-in for sort and scan (which
/// also checks the emission and range kernels, and isolates failures of the sort/scan); or the
/// GPU binning with the deterministic backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Binning {
    Gpu,
    Cpu,
    Deterministic,
}

/// The rasterizer a test with `binning` uses. Test images have few tiles, so by default the
/// forward runs in pieces; the CPU-binning tests run the one-pass forward of larger images.
fn new_rasterizer(ctx: &GpuContext, binning: Binning) -> Rasterizer {
    let deterministic = binning == Binning::Deterministic;
    let mut rasterizer = Rasterizer::with_options(ctx, RasterOptions { deterministic });
    if binning == Binning::Cpu {
        rasterizer.set_forward_in_pieces(false);
    }
    rasterizer
}

fn upload(ctx: &GpuContext, gaussians: &Gaussians) -> GaussianCloud {
    GaussianCloud::from_gaussians(ctx, gaussians, gaussians.len() as u32)
}

fn render(
    ctx: &GpuContext,
    rasterizer: &mut Rasterizer,
    cloud: &GaussianCloud,
    camera: &Camera,
    settings: &RenderSettings,
    frame: &mut RasterFrame,
    binning: Binning,
) {
    match binning {
        Binning::Gpu | Binning::Deterministic => rasterizer
            .forward(ctx, cloud, camera, settings, frame, None)
            .expect("render"),
        Binning::Cpu => forward_with_cpu_binning(ctx, rasterizer, cloud, camera, settings, frame),
    }
}

/// The forward pass with the depth sort, scan and tile sort done on the CPU between the GPU
/// stages.
fn forward_with_cpu_binning(
    ctx: &GpuContext,
    r: &mut Rasterizer,
    cloud: &GaussianCloud,
    camera: &Camera,
    settings: &RenderSettings,
    frame: &mut RasterFrame,
) {
    validate(cloud, camera, settings).expect("valid inputs");
    frame
        .prepare(ctx, cloud.len, camera.width, camera.height)
        .unwrap();
    let mut uniforms = RenderUniforms::new(camera, settings, cloud.len, cloud.sh_degree());
    if let Some(chunk_size) = r.chunk_size_override {
        uniforms.chunk_size = chunk_size;
    }
    frame.write_uniforms(ctx, uniforms);
    let n = cloud.len as usize;
    let mut count = 0;
    if n > 0 {
        let mut encoder = new_encoder(ctx, "test");
        r.encode_project(ctx, &mut encoder, cloud, frame);
        ctx.queue.submit([encoder.finish()]);
        let keys: Vec<u32> = read_buffer(ctx, &frame.depth_keys, n);
        let mut ids: Vec<u32> = (0..n as u32).collect();
        ids.sort_by_key(|&i| keys[i as usize]); // stable: ties stay in index order
        gpu::write_buffer(ctx, &frame.depth_ids, 0, &ids);
        // The tiles each Gaussian reaches, counted by the GPU kernel in this depth order.
        let mut encoder = new_encoder(ctx, "test");
        r.encode_gather_depth_order_counts(ctx, &mut encoder, frame);
        ctx.queue.submit([encoder.finish()]);
        let counts: Vec<u32> = read_buffer(ctx, &frame.depth_order_counts, n);
        let mut offsets = vec![0u32; n + 1];
        for k in 0..n {
            offsets[k + 1] = offsets[k] + counts[k];
        }
        count = offsets[n];
        gpu::write_buffer(ctx, &frame.offsets, 0, &offsets);
    }
    assert!(
        !r.deterministic,
        "CPU binning sorts Gaussian ids, not slots"
    );
    frame
        .prepare_intersections(
            ctx,
            count,
            super::frame::ListExtras {
                chunk_size: Some(uniforms.chunk_size),
                deterministic: false,
                pieces: r.forward_in_pieces(camera.width, camera.height),
            },
        )
        .unwrap();
    if count > 0 {
        let mut encoder = new_encoder(ctx, "test");
        r.encode_emit(ctx, &mut encoder, frame);
        ctx.queue.submit([encoder.finish()]);
        let tiles: Vec<u32> = read_buffer(ctx, &frame.intersection_tiles, count as usize);
        let gaussians: Vec<u32> = read_buffer(ctx, &frame.intersection_gaussians, count as usize);
        let mut pairs: Vec<(u32, u32)> = tiles.into_iter().zip(gaussians).collect();
        pairs.sort_by_key(|p| p.0); // stable
        let (tiles, gaussians): (Vec<u32>, Vec<u32>) = pairs.into_iter().unzip();
        gpu::write_buffer(ctx, &frame.intersection_tiles, 0, &tiles);
        gpu::write_buffer(ctx, &frame.intersection_gaussians, 0, &gaussians);
    }
    let mut encoder = new_encoder(ctx, "test");
    r.encode_tile_ranges(ctx, &mut encoder, frame, CountMode::Exact);
    r.encode_rasterize(ctx, &mut encoder, frame);
    ctx.queue.submit([encoder.finish()]);
}

/// Runs the backward pass for `d_image` and returns the raw-parameter gradients and the 2D
/// gradients (9 floats per Gaussian).
#[allow(clippy::too_many_arguments)]
fn backward(
    ctx: &GpuContext,
    rasterizer: &mut Rasterizer,
    cloud: &GaussianCloud,
    camera: &Camera,
    settings: &RenderSettings,
    frame: &RasterFrame,
    d_image: &[f32],
    stats: Option<&DensifyStats>,
) -> (Gaussians, Vec<f32>) {
    let d_image = storage_buffer_from(ctx, "d_image", d_image);
    // Garbage in the gradient buffers proves they are overwritten, not accumulated.
    let grads = ParamBuffers::zeroed(ctx, "grads", cloud.capacity(), cloud.sh_degree());
    for group in ParamGroup::ALL {
        let len = cloud.capacity() as usize * group.width(cloud.sh_degree());
        gpu::write_buffer(ctx, grads.get(group), 0, &vec![123.0f32; len]);
    }
    let mut encoder = new_encoder(ctx, "test backward");
    rasterizer.backward(
        ctx,
        &mut encoder,
        cloud,
        camera,
        settings,
        frame,
        &d_image,
        &grads,
        stats,
        None,
    );
    ctx.queue.submit([encoder.finish()]);
    let grads_cpu = grads.download(ctx, cloud.len as usize);
    let grad_2d = read_buffer(
        ctx,
        &frame.grad_2d,
        cloud.len as usize * frame::GRAD_2D_STRIDE as usize,
    );
    (grads_cpu, grad_2d)
}

/// What the projection kernel produced for one Gaussian.
#[derive(Clone, Debug)]
struct GpuSplat {
    mean2d: [f32; 2],
    conic: [f32; 3],
    opacity: f32,
    color: [f32; 3],
    radius: u32,
    tile_min: [u32; 2],
    tile_max: [u32; 2],
}

fn read_splats(ctx: &GpuContext, frame: &RasterFrame) -> Vec<GpuSplat> {
    let n = frame.num_gaussians as usize;
    let raw: Vec<f32> = read_buffer(ctx, &frame.splats, n * 12);
    let radii = frame.read_radii(ctx);
    let rects: Vec<u32> = read_buffer(ctx, &frame.tile_rects, n * 2);
    let corner = |packed: u32| [packed & 0xffff, packed >> 16];
    (0..n)
        .map(|i| {
            let s = &raw[i * 12..(i + 1) * 12];
            GpuSplat {
                mean2d: [s[0], s[1]],
                conic: [s[4], s[5], s[6]],
                opacity: s[7],
                color: [s[8], s[9], s[10]],
                radius: radii[i],
                tile_min: corner(rects[2 * i]),
                tile_max: corner(rects[2 * i + 1]),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparisons

/// Per-Gaussian projection check. Returns the Gaussians whose radius or tile rectangle differ
/// by one (rounding boundaries); panics on anything else.
fn compare_projection(
    label: &str,
    gpu: &[GpuSplat],
    reference: &[reference::Projected],
    gaussians: &Gaussians,
    camera: &Camera,
) -> Vec<usize> {
    assert_eq!(gpu.len(), reference.len());
    let mut boundary = Vec::new();
    let mut worst = [0.0f64; 4]; // mean2d, conic (rel), opacity, colour
    for (i, (g, r)) in gpu.iter().zip(reference).enumerate() {
        let gpu_visible = g.radius > 0;
        assert_eq!(
            gpu_visible, r.visible,
            "{label}: Gaussian {i} visibility differs (gpu radius {}, ref {:?})",
            g.radius, r
        );
        if !r.visible {
            continue;
        }
        let off_by = |a: u32, b: u32| a.abs_diff(b);
        let rect_diff = (0..2)
            .map(|k| off_by(g.tile_min[k], r.tile_min[k]).max(off_by(g.tile_max[k], r.tile_max[k])))
            .max()
            .unwrap();
        let radius_diff = if r.radius == u32::MAX || g.radius == u32::MAX {
            u32::from(r.radius != g.radius)
        } else {
            off_by(g.radius, r.radius)
        };
        assert!(
            rect_diff <= 1 && radius_diff <= 1,
            "{label}: Gaussian {i}: gpu radius {} rect {:?}..{:?}, ref radius {} rect {:?}..{:?}",
            g.radius,
            g.tile_min,
            g.tile_max,
            r.radius,
            r.tile_min,
            r.tile_max
        );
        if rect_diff > 0 || radius_diff > 0 {
            boundary.push(i);
        }
        // mean2d inherits the f32 rounding of t = W mean + T (relative to |mean| + |T|),
        // amplified by f / t.z and by the view ratio: the error is measured in units of that.
        let mean = glam::DVec3::from_slice(
            &gaussians.means[3 * i..3 * i + 3]
                .iter()
                .map(|&v| f64::from(v))
                .collect::<Vec<_>>(),
        );
        let world_scale = mean.length() + camera.translation.length() + 1.0;
        let conditioning = |k: usize| {
            let (focal, principal) = if k == 0 {
                (camera.fx, camera.cx)
            } else {
                (camera.fy, camera.cy)
            };
            let ratio = (r.mean2d[k] - principal) / focal;
            f32::EPSILON as f64 * world_scale * focal * (1.0 + ratio.abs()) / r.depth
        };
        worst[0] = worst[0].max(
            (0..2)
                .map(|k| (f64::from(g.mean2d[k]) - r.mean2d[k]).abs() / conditioning(k))
                .fold(0.0, f64::max),
        );
        let conic_scale = r.conic.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        worst[1] = worst[1].max(
            (0..3)
                .map(|k| (f64::from(g.conic[k]) - r.conic[k]).abs() / conic_scale)
                .fold(0.0, f64::max),
        );
        worst[2] = worst[2].max((f64::from(g.opacity) - r.opacity).abs());
        worst[3] = worst[3].max(
            (0..3)
                .map(|k| (f64::from(g.color[k]) - r.color[k]).abs() / r.color[k].abs().max(1.0))
                .fold(0.0, f64::max),
        );
    }
    assert!(
        worst[0] < 16.0 && worst[1] < 1e-4 && worst[2] < 1e-6 && worst[3] < 1e-5,
        "{label}: projection errors (mean2d in f32 ulps of its conditioning, conic rel, \
         opacity abs, colour rel) = {worst:?}"
    );
    boundary
}

/// The image comparison, leaving out the tiles either rectangle of a `boundary` Gaussian covers.
/// Returns (max image error, max transmittance error, pixels left out).
fn compare_image(
    label: &str,
    ctx: &GpuContext,
    frame: &RasterFrame,
    rendered: &reference::Rendered,
    gpu_splats: &[GpuSplat],
    boundary: &[usize],
) -> (f64, f64, usize) {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut excluded = vec![false; w * h];
    for &i in boundary {
        let p = &rendered.projected[i];
        let g = &gpu_splats[i];
        for (min, max) in [(p.tile_min, p.tile_max), (g.tile_min, g.tile_max)] {
            for ty in min[1]..max[1] {
                for tx in min[0]..max[0] {
                    for y in (ty * TILE_SIZE) as usize..((ty + 1) * TILE_SIZE) as usize {
                        for x in (tx * TILE_SIZE) as usize..((tx + 1) * TILE_SIZE) as usize {
                            if x < w && y < h {
                                excluded[y * w + x] = true;
                            }
                        }
                    }
                }
            }
        }
    }
    let image = frame.read_image(ctx);
    let transmittance = frame.read_final_transmittance(ctx);
    assert!(image.iter().chain(&transmittance).all(|v| v.is_finite()));
    let plane = w * h;
    let mut image_err = 0.0f64;
    let mut t_err = 0.0f64;
    for p in (0..plane).filter(|&p| !excluded[p]) {
        for c in 0..3 {
            let e = (f64::from(image[c * plane + p]) - rendered.image[c * plane + p]).abs();
            image_err = image_err.max(e);
        }
        t_err = t_err.max((f64::from(transmittance[p]) - rendered.final_transmittance[p]).abs());
    }
    let left_out = excluded.iter().filter(|&&e| e).count();
    assert!(
        image_err <= IMAGE_TOL && t_err <= IMAGE_TOL,
        "{label}: image error {image_err:e}, transmittance error {t_err:e} (> {IMAGE_TOL:e})"
    );
    (image_err, t_err, left_out)
}

/// `||g - r|| / ||r||` and the worst elementwise ratio err / (abs + rel |r|) of one gradient
/// array; panics when either is out of tolerance.
fn compare_gradient(label: &str, what: &str, gpu: &[f32], reference: &[f64]) -> f64 {
    assert_eq!(gpu.len(), reference.len(), "{label}: {what} length");
    assert!(
        gpu.iter().all(|v| v.is_finite()),
        "{label}: {what} has non-finite values"
    );
    let norm_ref = reference.iter().map(|v| v * v).sum::<f64>().sqrt();
    let norm_diff = gpu
        .iter()
        .zip(reference)
        .map(|(&g, &r)| (f64::from(g) - r).powi(2))
        .sum::<f64>()
        .sqrt();
    let max_ref = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if norm_ref == 0.0 {
        assert!(
            norm_diff <= 1e-6,
            "{label}: {what} should be zero, |g| = {norm_diff:e}"
        );
        return 0.0;
    }
    let relative = norm_diff / norm_ref;
    assert!(
        relative <= GRAD_REL_TOL,
        "{label}: {what}: ||gpu - ref|| / ||ref|| = {relative:e} > {GRAD_REL_TOL:e}"
    );
    for (k, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let bound = GRAD_ELEM_ABS * max_ref + GRAD_ELEM_REL * r.abs();
        assert!(
            (f64::from(g) - r).abs() <= bound,
            "{label}: {what}[{k}] gpu {g:e} vs ref {r:e} (bound {bound:e})"
        );
    }
    relative
}

/// Compares every gradient group and the 2D-stage gradients; returns the worst relative error.
fn compare_gradients(
    label: &str,
    grads: &Gaussians,
    grad_2d: &[f32],
    reference: &reference::Gradients,
) -> f64 {
    let mut worst = 0.0f64;
    for group in ParamGroup::ALL {
        let rel = compare_gradient(
            label,
            group.name(),
            grads.group(group),
            reference.params.group(group),
        );
        worst = worst.max(rel);
    }
    let n = reference.opacity.len();
    let pick = |range: std::ops::Range<usize>| -> Vec<f32> {
        (0..n)
            .flat_map(|i| range.clone().map(move |k| grad_2d[9 * i + k]))
            .collect()
    };
    let flat2 = |v: &[[f64; 2]]| v.iter().flatten().copied().collect::<Vec<f64>>();
    let flat3 = |v: &[[f64; 3]]| v.iter().flatten().copied().collect::<Vec<f64>>();
    for (what, gpu, reference) in [
        ("mean2d", pick(0..2), flat2(&reference.mean2d)),
        ("conic", pick(2..5), flat3(&reference.conic)),
        ("opacity (2D)", pick(5..6), reference.opacity.clone()),
        ("colour (2D)", pick(6..9), flat3(&reference.color)),
    ] {
        worst = worst.max(compare_gradient(label, what, &gpu, &reference));
    }
    worst
}

fn random_d_image(rng: &mut Pcg32, width: u32, height: u32) -> Vec<f32> {
    (0..3 * width * height)
        .map(|_| 2.0 * rng.next_f32() - 1.0)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenes

/// One scene: render on the GPU and with the reference, compare projection, image and (unless
/// a rounding-boundary mismatch made the renders different functions) every gradient.
struct SceneResult {
    image_err: f64,
    transmittance_err: f64,
    grad_rel: Option<f64>,
    boundary_mismatches: usize,
    pixels_left_out: usize,
}

#[allow(clippy::too_many_arguments)]
fn check_scene(
    ctx: &GpuContext,
    rasterizer: &mut Rasterizer,
    frame: &mut RasterFrame,
    label: &str,
    gaussians: &Gaussians,
    camera: &Camera,
    settings: &RenderSettings,
    d_image: &[f32],
    binning: Binning,
) -> SceneResult {
    let cloud = upload(ctx, gaussians);
    render(ctx, rasterizer, &cloud, camera, settings, frame, binning);
    let params = Params64::from(gaussians);
    let rendered = reference::render(&params, camera, settings);
    let gpu_splats = read_splats(ctx, frame);
    let boundary = compare_projection(label, &gpu_splats, &rendered.projected, gaussians, camera);
    let (image_err, transmittance_err, pixels_left_out) =
        compare_image(label, ctx, frame, &rendered, &gpu_splats, &boundary);
    let (grads, grad_2d) = backward(
        ctx, rasterizer, &cloud, camera, settings, frame, d_image, None,
    );
    let grad_rel = if boundary.is_empty() {
        let d_image64: Vec<f64> = d_image.iter().map(|&v| f64::from(v)).collect();
        let reference = reference::render_backward(&params, camera, settings, &d_image64);
        Some(compare_gradients(label, &grads, &grad_2d, &reference))
    } else {
        for group in ParamGroup::ALL {
            assert!(grads.group(group).iter().all(|v| v.is_finite()));
        }
        None
    };
    SceneResult {
        image_err,
        transmittance_err,
        grad_rel,
        boundary_mismatches: boundary.len(),
        pixels_left_out,
    }
}

/// Random scenes: 1 to ~2000 Gaussians, random cameras, SH degrees 0-3 with random active
/// degrees, odd image sizes, AA and tight bounds on and off, non-black backgrounds.
fn random_scenes_match_reference(ctx: &GpuContext, binning: Binning, seed: u64) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(seed, 17);
    let sizes = [(37, 29), (64, 48), (96, 80), (17, 61), (80, 33), (1, 1)];
    let counts = [1, 7, 60, 300, 1000, 2000];
    let mut skipped = 0;
    let mut worst = SceneResult {
        image_err: 0.0,
        transmittance_err: 0.0,
        grad_rel: Some(0.0),
        boundary_mismatches: 0,
        pixels_left_out: 0,
    };
    for scene in 0..12 {
        let (width, height) = sizes[scene % sizes.len()];
        let n = counts[(scene * 5 + 1) % counts.len()];
        let sh_degree = (scene % 4) as u32;
        let (gaussians, camera) = random_scene(&mut rng, n, sh_degree, width, height);
        let mut settings = random_settings(&mut rng, 3);
        // Cover both settings explicitly at least once each way.
        if scene < 4 {
            settings.antialiased = scene % 2 == 1;
            settings.tight_tile_bounds = scene / 2 == 1;
        }
        let d_image = random_d_image(&mut rng, width, height);
        let label = format!(
            "{binning:?} scene {scene} ({n} Gaussians, {width}x{height}, SH {sh_degree} active \
             {}, aa {}, tight {})",
            settings.active_sh_degree, settings.antialiased, settings.tight_tile_bounds
        );
        let result = check_scene(
            ctx,
            &mut rasterizer,
            &mut frame,
            &label,
            &gaussians,
            &camera,
            &settings,
            &d_image,
            binning,
        );
        eprintln!(
            "{label}: image {:.2e}, T {:.2e}, grad rel {}, boundary mismatches {} ({} px left out)",
            result.image_err,
            result.transmittance_err,
            result
                .grad_rel
                .map_or("skipped".to_owned(), |r| format!("{r:.2e}")),
            result.boundary_mismatches,
            result.pixels_left_out
        );
        worst.image_err = worst.image_err.max(result.image_err);
        worst.transmittance_err = worst.transmittance_err.max(result.transmittance_err);
        match result.grad_rel {
            Some(r) => worst.grad_rel = Some(worst.grad_rel.unwrap().max(r)),
            None => skipped += 1,
        }
    }
    eprintln!(
        "{binning:?} worst: image {:.2e}, T {:.2e}, grad rel {:.2e}; gradient checks skipped \
         for rounding-boundary mismatches: {skipped}",
        worst.image_err,
        worst.transmittance_err,
        worst.grad_rel.unwrap()
    );
    assert!(
        skipped <= 1,
        "too many scenes with rounding-boundary mismatches"
    );
}

#[test]
fn random_scenes_match_reference_cpu_binning_fast_path() {
    random_scenes_match_reference(test_context(), Binning::Cpu, 1);
}

#[test]
fn random_scenes_match_reference_cpu_binning_fallback_path() {
    random_scenes_match_reference(test_context_fallback(), Binning::Cpu, 2);
}

// ---------------------------------------------------------------------------------------------
// Edge cases

/// Appends a Gaussian placed in camera space: pixel `(u, v)` at view depth `depth`.
#[allow(clippy::too_many_arguments)]
fn push_gaussian(
    g: &mut Gaussians,
    camera: &Camera,
    (u, v, depth): (f64, f64, f64),
    log_scales: [f32; 3],
    rotation: [f32; 4],
    logit: f32,
    dc: [f32; 3],
) {
    let camera_space = glam::DVec3::new(
        (u - camera.cx) * depth / camera.fx,
        (v - camera.cy) * depth / camera.fy,
        depth,
    );
    let world = camera.world_from_camera_rotation() * (camera_space - camera.translation);
    g.means.extend(world.to_array().map(|x| x as f32));
    g.log_scales.extend(log_scales);
    g.rotations.extend(rotation);
    g.logit_opacities.push(logit);
    g.sh_dc.extend(dc);
    let rest = 3 * crate::sh::rest_coeffs_for_degree(g.sh_degree);
    g.sh_rest
        .extend((0..rest).map(|k| 0.05 * ((k % 7) as f32 - 3.0)));
}

/// A random scene plus hand-made edge cases (see the comments), and a second list of Gaussians
/// whose parameters overflow f32 inside the projection (the GPU culls them; the f64 reference
/// would not).
fn edge_case_scene(seed: u64) -> (Gaussians, Gaussians, Camera, RenderSettings) {
    let mut rng = Pcg32::new(seed, 99);
    let (mut g, camera) = random_scene(&mut rng, 150, 3, 70, 45);
    let settings = RenderSettings {
        background: [0.2, 0.5, 0.9],
        active_sh_degree: 1,
        ..RenderSettings::default()
    };
    let q = [0.9, 0.1, -0.3, 0.2];
    let id = [1.0, 0.0, 0.0, 0.0];
    let grey = [0.3, 0.3, 0.3];
    let px = |pixels: f64, depth: f64| ((pixels * depth / camera.fx).ln()) as f32;
    // Pixel positions avoid integers: an extent is an integer, so an integer position puts the
    // tile rectangle's edge exactly on a floor() boundary, where f32 and f64 may round apart.
    let cx = camera.cx.floor() + 0.37;
    let cy = camera.cy.floor() + 0.21;
    // Behind the camera, and in front of the near plane.
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, -1.0),
        [px(5.0, 1.0); 3],
        q,
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 0.1),
        [px(5.0, 0.1); 3],
        q,
        2.0,
        grey,
    );
    // Just beyond the near plane, large.
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 0.25),
        [px(9.0, 0.25); 3],
        q,
        0.0,
        grey,
    );
    // Straddling the borders; centred far outside but huge.
    push_gaussian(
        &mut g,
        &camera,
        (-3.63, 20.21, 2.0),
        [px(6.0, 2.0); 3],
        q,
        1.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (72.37, 47.21, 2.0),
        [px(6.0, 2.0); 3],
        q,
        1.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (-199.63, 10.21, 3.0),
        [px(150.0, 3.0); 3],
        q,
        1.0,
        grey,
    );
    // Huge (covers every tile), tiny, and a needle (scale ratio e^15).
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 3.0),
        [px(400.0, 3.0); 3],
        q,
        -2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (20.37, 20.21, 2.0),
        [-20.0; 3],
        q,
        3.0,
        grey,
    );
    let needle = px(30.0, 2.0);
    push_gaussian(
        &mut g,
        &camera,
        (40.37, 15.21, 2.0),
        [needle, needle - 15.0, needle - 15.0],
        q,
        3.0,
        grey,
    );
    // Zero opacity (logit -100), and opacity just above the 1/255 cull.
    push_gaussian(
        &mut g,
        &camera,
        (30.37, 30.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        -100.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (30.37, 30.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        -5.0,
        grey,
    );
    // A stack of opaque splats: the alpha cap and the transmittance stop.
    for k in 0..8 {
        let depth = 1.0 + 0.1 * f64::from(k);
        push_gaussian(
            &mut g,
            &camera,
            (50.37, 30.21, depth),
            [px(4.0, depth); 3],
            id,
            8.0,
            [0.5, 1.0, -0.5],
        );
    }
    // Very far away (depth 1e20).
    push_gaussian(&mut g, &camera, (cx, cy, 1e20), [0.0; 3], q, 2.0, grey);
    // Non-finite parameters, a zero quaternion and a tiny one.
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [nan, 0.0, 0.0, 1.0],
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [inf, 0.0, 0.0],
        q,
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        q,
        -inf,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        q,
        2.0,
        [0.1, nan, 0.1],
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [0.0; 4],
        2.0,
        grey,
    );
    push_gaussian(
        &mut g,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [1e-20, 0.0, 0.0, 0.0],
        2.0,
        grey,
    );
    let n = g.len();
    push_gaussian(
        &mut g,
        &camera,
        (10.37, 10.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        2.0,
        grey,
    );
    g.means[3 * n] = nan; // NaN mean
    let n = g.len();
    push_gaussian(
        &mut g,
        &camera,
        (10.37, 10.21, 2.0),
        [px(5.0, 2.0); 3],
        q,
        2.0,
        grey,
    );
    let last = g.sh_rest.len() - 1;
    g.sh_rest[last] = inf; // Inf in an SH band above the active degree: still culled
    assert_eq!(g.len(), n + 1);
    g.check_shapes().unwrap();

    // Overflowing f32 inside the projection: log-scale 50 (exp(50)^2 > f32::MAX) and |q| = 1e20.
    let mut overflow = Gaussians::empty(3);
    push_gaussian(
        &mut overflow,
        &camera,
        (cx, cy, 2.0),
        [50.0; 3],
        q,
        2.0,
        grey,
    );
    push_gaussian(
        &mut overflow,
        &camera,
        (cx, cy, 2.0),
        [px(5.0, 2.0); 3],
        [1e20, 0.0, 0.0, 0.0],
        2.0,
        grey,
    );
    (g, overflow, camera, settings)
}

fn concat(a: &Gaussians, b: &Gaussians) -> Gaussians {
    let mut out = a.clone();
    for i in 0..b.len() {
        out.push_from(b, i);
    }
    out
}

fn edge_cases_match_reference(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut frame = RasterFrame::new(ctx);
    for (seed, antialiased, tight) in [(5, false, false), (6, true, true)] {
        let (base, overflow, camera, mut settings) = edge_case_scene(seed);
        settings.antialiased = antialiased;
        settings.tight_tile_bounds = tight;
        let all = concat(&base, &overflow);
        let cloud = upload(ctx, &all);
        render(
            ctx,
            &mut rasterizer,
            &cloud,
            &camera,
            &settings,
            &mut frame,
            binning,
        );
        // The reference renders the cloud without the f32-overflow Gaussians, which the GPU
        // must cull: the images are then the same.
        let params = Params64::from(&base);
        let rendered = reference::render(&params, &camera, &settings);
        let gpu_splats = read_splats(ctx, &frame);
        let label = format!("{binning:?} edge cases (aa {antialiased}, tight {tight})");
        let boundary = compare_projection(
            &label,
            &gpu_splats[..base.len()],
            &rendered.projected,
            &base,
            &camera,
        );
        assert!(
            boundary.is_empty(),
            "{label}: boundary mismatches {boundary:?}"
        );
        assert!(gpu_splats[base.len()..].iter().all(|s| s.radius == 0));
        let (image_err, t_err, _) = compare_image(&label, ctx, &frame, &rendered, &gpu_splats, &[]);

        let mut rng = Pcg32::new(seed, 3);
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        let (grads, grad_2d) = backward(
            ctx,
            &mut rasterizer,
            &cloud,
            &camera,
            &settings,
            &frame,
            &d_image,
            None,
        );
        let d_image64: Vec<f64> = d_image.iter().map(|&v| f64::from(v)).collect();
        let reference = reference::render_backward(&params, &camera, &settings, &d_image64);
        // Gradients of the base Gaussians against the reference; exactly zero for the others.
        let mut base_grads = Gaussians::empty(3);
        for i in 0..base.len() {
            base_grads.push_from(&grads, i);
        }
        for group in ParamGroup::ALL {
            let w = group.width(3);
            assert!(
                grads.group(group)[base.len() * w..]
                    .iter()
                    .all(|&v| v == 0.0),
                "{label}: culled Gaussians must get zero {} gradients",
                group.name()
            );
        }
        let rel = compare_gradients(&label, &base_grads, &grad_2d[..9 * base.len()], &reference);
        // The culled ones (NaN, behind, ...) have zero gradients in the reference too, which the
        // elementwise check above enforced; say how many there were.
        let culled = rendered.projected.iter().filter(|p| !p.visible).count();
        eprintln!(
            "{label}: image {image_err:.2e}, T {t_err:.2e}, grad rel {rel:.2e}; {culled} of {} \
             culled, {} more culled for f32 overflow",
            base.len(),
            overflow.len()
        );
    }
}

#[test]
fn edge_cases_match_reference_fast_path() {
    edge_cases_match_reference(test_context(), Binning::Cpu);
}

#[test]
fn edge_cases_match_reference_fallback_path() {
    edge_cases_match_reference(test_context_fallback(), Binning::Cpu);
}

/// An empty cloud renders the background, and its backward pass does nothing (and does not
/// crash); a render of a cloud of one Gaussian afterwards still works.
fn empty_and_single(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(11, 0);
    let (one, camera) = random_scene(&mut rng, 1, 1, 33, 21);
    let settings = RenderSettings {
        background: [0.25, 0.5, 0.75],
        ..RenderSettings::default()
    };
    let empty = Gaussians::empty(1);
    let cloud = GaussianCloud::from_gaussians(ctx, &empty, 4);
    render(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &mut frame,
        binning,
    );
    assert_eq!(frame.num_intersections, 0);
    let image = frame.read_image(ctx);
    let plane = 33 * 21;
    for c in 0..3 {
        assert!(
            image[c * plane..(c + 1) * plane]
                .iter()
                .all(|&v| v == settings.background[c])
        );
    }
    assert!(
        frame
            .read_final_transmittance(ctx)
            .iter()
            .all(|&t| t == 1.0)
    );
    let d_image = random_d_image(&mut rng, 33, 21);
    let (grads, _) = backward(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &frame,
        &d_image,
        None,
    );
    assert_eq!(grads.len(), 0);

    // One Gaussian, placed in the middle so it is visible.
    let mut single = Gaussians::empty(1);
    push_gaussian(
        &mut single,
        &camera,
        (16.37, 10.21, 2.0),
        // Anisotropic: an isotropic Gaussian's rotation gradient is exactly zero in the
        // reference and f32 noise on the GPU, which no relative metric can compare.
        [-2.1, -1.6, -1.9],
        one.rotations[..4].try_into().unwrap(),
        1.0,
        [0.4, -0.2, 1.0],
    );
    let result = check_scene(
        ctx,
        &mut rasterizer,
        &mut frame,
        &format!("{binning:?} single Gaussian"),
        &single,
        &camera,
        &settings,
        &d_image,
        binning,
    );
    assert!(frame.num_intersections > 0);
    assert!(result.grad_rel.is_some());
}

#[test]
fn empty_and_single_gaussian_fast_path() {
    empty_and_single(test_context(), Binning::Cpu);
}

#[test]
fn empty_and_single_gaussian_fallback_path() {
    empty_and_single(test_context_fallback(), Binning::Cpu);
}

/// Every Gaussian covers every tile: the longest possible tile lists (more than one batch of
/// 256), and every workgroup sees every splat.
fn all_cover_all(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    if binning == Binning::Deterministic {
        // The pieces of large images: lists of 600 cut once, at 512.
        rasterizer.set_chunk_size(512);
    }
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(21, 0);
    let (_, camera) = random_scene(&mut rng, 0, 0, 50, 35);
    let mut g = Gaussians::empty(0);
    let n = 600;
    for _ in 0..n {
        let depth = 2.0 + 2.0 * rng.next_f64();
        let u = 25.0 + 10.0 * (rng.next_f64() - 0.5);
        let v = 17.0 + 10.0 * (rng.next_f64() - 0.5);
        let size = 40.0 + 20.0 * rng.next_f64();
        let q = [
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
            rng.normal() as f32,
        ];
        let dc = [
            rng.next_f32() - 0.5,
            rng.next_f32(),
            2.0 * rng.next_f32() - 1.0,
        ];
        push_gaussian(
            &mut g,
            &camera,
            (u, v, depth),
            // Anisotropic, so the rotation gradient is not zero (for an isotropic Gaussian it is
            // exactly zero in the reference and f32 noise on the GPU).
            std::array::from_fn(|_| ((size * depth / camera.fx).ln() + 0.3 * rng.normal()) as f32),
            q,
            -4.0 + rng.next_f32(),
            dc,
        );
    }
    let settings = RenderSettings {
        background: [1.0, 1.0, 1.0],
        active_sh_degree: 0,
        ..RenderSettings::default()
    };
    let d_image = random_d_image(&mut rng, camera.width, camera.height);
    let result = check_scene(
        ctx,
        &mut rasterizer,
        &mut frame,
        &format!("{binning:?} all cover all"),
        &g,
        &camera,
        &settings,
        &d_image,
        binning,
    );
    let [gx, gy] = frame.tile_grid();
    assert_eq!(frame.num_intersections, n as u32 * gx * gy);
    eprintln!(
        "{binning:?} all cover all: image {:.2e}, grad rel {:?}",
        result.image_err, result.grad_rel
    );
}

#[test]
fn every_gaussian_covers_every_tile_fast_path() {
    all_cover_all(test_context(), Binning::Cpu);
}

#[test]
fn every_gaussian_covers_every_tile_fallback_path() {
    all_cover_all(test_context_fallback(), Binning::Cpu);
}

// ---------------------------------------------------------------------------------------------
// Densification statistics and buffer reuse

/// Two consecutive views accumulate into one `DensifyStats`: the sums of the reference's
/// `screen_grad_ndc_norm`, the visit counts, and the largest radius.
fn densify_stats_two_views(ctx: &GpuContext, binning: Binning) {
    let mut rasterizer = new_rasterizer(ctx, binning);
    let mut rng = Pcg32::new(31, 0);
    let (g, camera_a) = random_scene(&mut rng, 400, 1, 48, 40);
    // The second view: turned a little and moved sideways.
    let turn = glam::DMat3::from_rotation_y(0.15) * camera_a.world_from_camera_rotation();
    let camera_b = Camera::from_world_pose(
        48,
        40,
        camera_a.fx,
        camera_a.fy,
        camera_a.cx,
        camera_a.cy,
        turn,
        camera_a.center() + glam::DVec3::new(0.2, -0.1, 0.05),
    );
    let settings = RenderSettings::default();
    let cloud = upload(ctx, &g);
    let stats = DensifyStats::zeroed(ctx, cloud.capacity());
    let params = Params64::from(&g);
    let n = g.len();
    let mut expected_norm = vec![0.0f64; n];
    let mut expected_count = vec![0u32; n];
    let mut expected_radius = vec![0u32; n];
    for camera in [&camera_a, &camera_b] {
        let mut frame = RasterFrame::new(ctx);
        render(
            ctx,
            &mut rasterizer,
            &cloud,
            camera,
            &settings,
            &mut frame,
            binning,
        );
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        backward(
            ctx,
            &mut rasterizer,
            &cloud,
            camera,
            &settings,
            &frame,
            &d_image,
            Some(&stats),
        );
        let d_image64: Vec<f64> = d_image.iter().map(|&v| f64::from(v)).collect();
        let reference = reference::render_backward(&params, camera, &settings, &d_image64);
        let gpu_radii = frame.read_radii(ctx);
        for i in 0..n {
            expected_norm[i] += reference.screen_grad_ndc_norm[i];
            expected_count[i] += u32::from(reference.radii[i] > 0);
            expected_radius[i] = expected_radius[i].max(reference.radii[i]);
            assert_eq!(gpu_radii[i], reference.radii[i], "radius of Gaussian {i}");
        }
    }
    let norm: Vec<f32> = read_buffer(ctx, &stats.grad_norm_sum, n);
    let count: Vec<u32> = read_buffer(ctx, &stats.visible_count, n);
    let radius: Vec<f32> = read_buffer(ctx, &stats.max_radius, n);
    assert_eq!(count, expected_count);
    let expected_radius: Vec<f32> = expected_radius.iter().map(|&r| r as f32).collect();
    assert_eq!(radius, expected_radius);
    let rel = compare_gradient(
        &format!("{binning:?} densify stats"),
        "grad_norm_sum",
        &norm,
        &expected_norm,
    );
    let visible_twice = count.iter().filter(|&&c| c == 2).count();
    eprintln!(
        "{binning:?} densify stats: grad norm rel {rel:.2e}; {visible_twice} of {n} visible in both views"
    );
    assert!(
        visible_twice > n / 4,
        "the two views should share many Gaussians"
    );
}

#[test]
fn densify_stats_accumulate_over_two_views_fast_path() {
    densify_stats_two_views(test_context(), Binning::Cpu);
}

#[test]
fn densify_stats_accumulate_over_two_views_fallback_path() {
    densify_stats_two_views(test_context_fallback(), Binning::Cpu);
}

/// Rendering again at the same sizes reuses every buffer (no per-render allocation once sizes
/// are stable), and gives the same image.
#[test]
fn frame_buffers_are_reused() {
    let ctx = test_context();
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(41, 0);
    let (g, camera) = random_scene(&mut rng, 300, 2, 40, 30);
    let cloud = upload(ctx, &g);
    let settings = RenderSettings::default();
    render(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &mut frame,
        Binning::Cpu,
    );
    let first = frame.read_image(ctx);
    let buffers = [
        frame.image.clone(),
        frame.splats.clone(),
        frame.intersection_tiles.clone(),
        frame.tile_ranges.clone(),
    ];
    render(
        ctx,
        &mut rasterizer,
        &cloud,
        &camera,
        &settings,
        &mut frame,
        Binning::Cpu,
    );
    assert_eq!(frame.read_image(ctx), first);
    let again = [
        &frame.image,
        &frame.splats,
        &frame.intersection_tiles,
        &frame.tile_ranges,
    ];
    assert!(buffers.iter().zip(again).all(|(a, b)| a == b));
}

#[test]
fn tile_key_bits_cover_every_tile_id() {
    assert_eq!(tile_key_bits(1), 0);
    assert_eq!(tile_key_bits(2), 1);
    assert_eq!(tile_key_bits(3), 2);
    assert_eq!(tile_key_bits(4), 2);
    assert_eq!(tile_key_bits(5), 3);
    assert_eq!(tile_key_bits(120 * 68), 13);
    assert_eq!(tile_key_bits(8192), 13);
    assert_eq!(tile_key_bits(8193), 14);
}

#[test]
fn invalid_inputs_are_errors() {
    let ctx = test_context();
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(1, 0);
    let (g, mut camera) = random_scene(&mut rng, 5, 0, 16, 16);
    let cloud = upload(ctx, &g);
    let mut settings = RenderSettings {
        near_plane: f32::NAN,
        ..RenderSettings::default()
    };
    let err = rasterizer.forward(ctx, &cloud, &camera, &settings, &mut frame, None);
    assert!(matches!(err, Err(RasterError::InvalidSettings(_))));
    settings.near_plane = 0.2;
    camera.fx = -1.0;
    let err = rasterizer.forward(ctx, &cloud, &camera, &settings, &mut frame, None);
    assert!(matches!(err, Err(RasterError::InvalidCamera)));
}

// ---------------------------------------------------------------------------------------------
// GPU binning (gpu::sort, gpu::scan)

#[test]
fn random_scenes_match_reference_fast_path() {
    random_scenes_match_reference(test_context(), Binning::Gpu, 3);
}

#[test]
fn random_scenes_match_reference_fallback_path() {
    random_scenes_match_reference(test_context_fallback(), Binning::Gpu, 4);
}

#[test]
fn edge_cases_with_gpu_binning() {
    edge_cases_match_reference(test_context(), Binning::Gpu);
    empty_and_single(test_context(), Binning::Gpu);
    all_cover_all(test_context(), Binning::Gpu);
    densify_stats_two_views(test_context(), Binning::Gpu);
}

/// The GPU's depth order, intersection list and tile ranges equal the ones built on the CPU
/// from the same projection: sorted by (tile, depth, index), exactly.
#[test]
fn gpu_binning_equals_cpu_binning() {
    let ctx = test_context();
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let mut rng = Pcg32::new(51, 0);
    for (n, width, height) in [(3000, 96, 80), (500, 33, 17), (1, 16, 16)] {
        let (mut g, camera) = random_scene(&mut rng, n, 1, width, height);
        // Equal depths: the sort must keep index order among them.
        if n > 10 {
            for i in 0..5 {
                let (a, b) = (3 * i, 3 * (i + 5));
                g.means.copy_within(a..a + 3, b);
            }
        }
        let cloud = upload(ctx, &g);
        let settings = RenderSettings::default();
        rasterizer
            .forward(ctx, &cloud, &camera, &settings, &mut frame, None)
            .unwrap();
        let keys: Vec<u32> = read_buffer(ctx, &frame.depth_keys, n);
        let ids: Vec<u32> = read_buffer(ctx, &frame.depth_ids, n);
        let mut seen = vec![false; n];
        for &id in &ids {
            assert!(!seen[id as usize], "depth ids are not a permutation");
            seen[id as usize] = true;
        }
        for k in 1..n {
            assert!(
                (keys[k - 1], ids[k - 1]) < (keys[k], ids[k]),
                "depth order broken at {k}: ({}, {}) then ({}, {})",
                keys[k - 1],
                ids[k - 1],
                keys[k],
                ids[k]
            );
        }
        let splats = read_splats(ctx, &frame);
        let [gx, gy] = frame.tile_grid();
        let mut expected: Vec<(u32, u32)> = Vec::new();
        let mut rect_entries = 0;
        for &id in &ids {
            let s = &splats[id as usize];
            if s.radius == 0 {
                continue;
            }
            for y in s.tile_min[1]..s.tile_max[1] {
                for x in s.tile_min[0]..s.tile_max[0] {
                    rect_entries += 1;
                    if splat_reaches_tile(s, x, y) {
                        expected.push((y * gx + x, id));
                    }
                }
            }
        }
        expected.sort_by_key(|p| p.0);
        let m = frame.num_intersections as usize;
        assert_eq!(m, expected.len());
        let tiles: Vec<u32> = read_buffer(ctx, &frame.intersection_tiles, m);
        let gaussians: Vec<u32> = read_buffer(ctx, &frame.intersection_gaussians, m);
        let actual: Vec<(u32, u32)> = tiles.into_iter().zip(gaussians).collect();
        assert!(actual == expected, "intersection lists differ");
        let ranges: Vec<[u32; 2]> = read_buffer(ctx, &frame.tile_ranges, (gx * gy) as usize);
        for tile in 0..gx * gy {
            let start = expected.partition_point(|p| p.0 < tile) as u32;
            let end = expected.partition_point(|p| p.0 <= tile) as u32;
            let expected_range = if start == end { [0, 0] } else { [start, end] };
            assert_eq!(
                ranges[tile as usize], expected_range,
                "range of tile {tile}"
            );
        }
        eprintln!(
            "{n} Gaussians {width}x{height}: {m} intersections binned exactly \
             ({rect_entries} tiles in the rectangles)"
        );
    }
}

/// The tile culling of bin.wgsl (`splat_reach`, `strip_x_range`, `reached_columns`), in the
/// same f32 operations: whether `s` reaches tile (`tile_x`, `tile_y`) of its rectangle.
fn splat_reaches_tile(s: &GpuSplat, tile_x: u32, tile_y: u32) -> bool {
    const CULL_MARGIN: f32 = 1e-4;
    const MIN_CONIC_CONDITION: f32 = 1e-3;
    const STRIP_SLACK: f32 = 0.05;
    let [a, b, c] = s.conic;
    let det = a * c - b * b;
    let t = 2.0 * (255.0 * s.opacity).ln();
    let extent = [(c * t / det).sqrt(), (a * t / det).sqrt()];
    let scale = a * extent[0] * extent[0]
        + c * extent[1] * extent[1]
        + 2.0 * b.abs() * extent[0] * extent[1];
    let threshold = t + CULL_MARGIN * (scale + 1.0);
    if !(det >= MIN_CONIC_CONDITION * a * c && scale.is_finite()) {
        return true;
    }
    let extent = [(c * threshold / det).sqrt(), (a * threshold / det).sqrt()];
    let tile = TILE_SIZE as f32;
    let low = tile_y as f32 * tile + 0.5 - s.mean2d[1];
    let high = low + tile - 1.0;
    let y_reach = extent[1] * (1.0 + STRIP_SLACK) + 0.05;
    let (y0, y1) = (low.max(-y_reach), high.min(y_reach));
    // Empty strip (or NaN).
    if !matches!(
        y0.partial_cmp(&y1),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    ) {
        return false;
    }
    let root0 = (a * threshold - det * y0 * y0).max(0.0).sqrt();
    let root1 = (a * threshold - det * y1 * y1).max(0.0).sqrt();
    let peak = b * extent[0] / c;
    let mut right = (-b * y0 + root0).max(-b * y1 + root1) / a;
    if y0 <= -peak && -peak <= y1 {
        right = extent[0];
    }
    let mut left = (-b * y0 - root0).min(-b * y1 - root1) / a;
    if y0 <= peak && peak <= y1 {
        left = -extent[0];
    }
    let slack = STRIP_SLACK * extent[0] + 0.05;
    let (left, right) = (left - slack, right + slack);
    let first = ((left + s.mean2d[0] - (tile - 0.5)) / tile).ceil();
    let last = ((right + s.mean2d[0] - 0.5) / tile).floor();
    if first.is_nan() || last.is_nan() {
        return true;
    }
    first <= tile_x as f32 && tile_x as f32 <= last
}

/// Renders with deferred intersection counts equal exact ones (same image bit for bit, same
/// gradients up to the order of float atomics), on both device paths.
#[test]
fn deferred_counts_render_like_exact_counts() {
    for ctx in [test_context(), test_context_fallback()] {
        let mut rng = Pcg32::new(77, 0);
        let (g, camera) = random_scene(&mut rng, 800, 2, 61, 47);
        let (_, other_camera) = random_scene(&mut rng, 1, 2, 61, 47);
        let cloud = upload(ctx, &g);
        let settings = RenderSettings::default();
        let mut exact = Rasterizer::new(ctx);
        let mut deferred = Rasterizer::new(ctx);
        deferred.set_deferred_counts(true);
        let mut exact_frame = RasterFrame::new(ctx);
        let mut deferred_frame = RasterFrame::new(ctx);
        let d_image = random_d_image(&mut rng, 61, 47);
        let d_image = storage_buffer_from(ctx, "d_image", &d_image);
        // The first deferred render is exact (it sets the basis); the next two are deferred.
        for (round, cam) in [&camera, &camera, &other_camera].into_iter().enumerate() {
            let mut images = Vec::new();
            let mut grads = Vec::new();
            for (r, frame) in [
                (&mut exact, &mut exact_frame),
                (&mut deferred, &mut deferred_frame),
            ] {
                r.forward(ctx, &cloud, cam, &settings, frame, None).unwrap();
                images.push(frame.read_image(ctx));
                let g = ParamBuffers::zeroed(ctx, "grads", cloud.len, cloud.sh_degree());
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                r.backward(
                    ctx,
                    &mut encoder,
                    &cloud,
                    cam,
                    &settings,
                    frame,
                    &d_image,
                    &g,
                    None,
                    None,
                );
                ctx.queue.submit([encoder.finish()]);
                grads.push(g.download(ctx, cloud.len as usize));
            }
            assert_eq!(images[0], images[1], "round {round}: images differ");
            for group in ParamGroup::ALL {
                let (a, b) = (grads[0].group(group), grads[1].group(group));
                let norm: f64 = a.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                let diff: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(x - y).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    diff <= 1e-5 * norm.max(1e-12),
                    "round {round}: {group:?} differs"
                );
            }
        }
        assert_eq!(deferred_frame.intersection_overflows, 0);
        // Only the first render of the shape waited for its count.
        assert_eq!(
            deferred_frame.num_intersections, 0,
            "the last render was deferred"
        );
    }
}

/// A deferred render whose view has more intersections than the list holds drops the farthest
/// entries, is counted as an overflow once its count reaches the CPU, and the next render is
/// exact again.
#[test]
fn deferred_count_overflow_is_detected_and_recovered() {
    let ctx = test_context();
    let mut rng = Pcg32::new(78, 0);
    let (mut g, camera) = random_scene(&mut rng, 1500, 0, 64, 48);
    // Small Gaussians first, then the same number 50 times larger: far more tiles each (the
    // deferred list is sized from the counts of earlier renders of the same shape).
    let mut grown = g.clone();
    for (small, large) in g.log_scales.iter_mut().zip(&mut grown.log_scales) {
        *small -= 2.0;
        *large += 2.0;
    }
    let (small, large) = (upload(ctx, &g), upload(ctx, &grown));
    let settings = RenderSettings::default();
    let mut exact = Rasterizer::new(ctx);
    let mut exact_frame = RasterFrame::new(ctx);
    let mut count = |cloud: &GaussianCloud| {
        exact
            .forward(ctx, cloud, &camera, &settings, &mut exact_frame, None)
            .unwrap();
        exact_frame.num_intersections
    };
    let (small_count, large_count) = (count(&small), count(&large));
    assert!(
        large_count > 2 * small_count.max(1024),
        "the scene must overflow the deferred list: {small_count} vs {large_count}"
    );
    let expected_large = exact_frame.read_image(ctx);

    let mut deferred = Rasterizer::new(ctx);
    deferred.set_deferred_counts(true);
    let mut frame = RasterFrame::new(ctx);
    for cloud in [&small, &large] {
        deferred
            .forward(ctx, cloud, &camera, &settings, &mut frame, None)
            .unwrap();
    }
    assert_eq!(frame.num_intersections, 0, "the second render was deferred");
    ctx.wait_idle();
    // The next render notices the overflow and waits for its count.
    deferred
        .forward(ctx, &large, &camera, &settings, &mut frame, None)
        .unwrap();
    assert_eq!(frame.intersection_overflows, 1);
    assert_eq!(
        frame.num_intersections, large_count,
        "exact again after the overflow"
    );
    assert_eq!(frame.read_image(ctx), expected_large);
}

// ---------------------------------------------------------------------------------------------
// The deterministic backward pass

#[test]
fn deterministic_backward_matches_reference() {
    let ctx = test_context();
    random_scenes_match_reference(ctx, Binning::Deterministic, 5);
    edge_cases_match_reference(ctx, Binning::Deterministic);
    empty_and_single(ctx, Binning::Deterministic);
    all_cover_all(ctx, Binning::Deterministic);
    densify_stats_two_views(ctx, Binning::Deterministic);
}

#[test]
fn deterministic_backward_matches_reference_fallback_path() {
    let ctx = test_context_fallback();
    random_scenes_match_reference(ctx, Binning::Deterministic, 6);
    all_cover_all(ctx, Binning::Deterministic);
}

/// Repeated backward passes of one scene give bit-identical gradients in deterministic mode,
/// on both device paths, with tile lists long enough to be cut into several pieces.
#[test]
fn deterministic_backward_is_bit_identical() {
    for ctx in [test_context(), test_context_fallback()] {
        let mut rasterizer = new_rasterizer(ctx, Binning::Deterministic);
        let mut frame = RasterFrame::new(ctx);
        let mut rng = Pcg32::new(77, 0);
        let (gaussians, camera) = random_scene(&mut rng, 4000, 1, 48, 40);
        let settings = random_settings(&mut rng, 1);
        let d_image = random_d_image(&mut rng, camera.width, camera.height);
        let cloud = upload(ctx, &gaussians);
        let mut runs = Vec::new();
        for _ in 0..3 {
            render(
                ctx,
                &mut rasterizer,
                &cloud,
                &camera,
                &settings,
                &mut frame,
                Binning::Deterministic,
            );
            let (grads, grad_2d) = backward(
                ctx,
                &mut rasterizer,
                &cloud,
                &camera,
                &settings,
                &frame,
                &d_image,
                None,
            );
            let bits: Vec<u32> = ParamGroup::ALL
                .iter()
                .flat_map(|&g| grads.group(g).to_vec())
                .chain(grad_2d)
                .map(f32::to_bits)
                .collect();
            runs.push(bits);
        }
        let [gx, gy] = frame.tile_grid();
        let ranges: Vec<u32> = read_buffer(ctx, &frame.tile_ranges, 2 * (gx * gy) as usize);
        let longest = ranges.chunks(2).map(|r| r[1] - r[0]).max().unwrap();
        assert!(
            longest > 2 * frame.uniforms_value.chunk_size,
            "the scene should cut lists into pieces (longest list {longest})"
        );
        assert!(runs[0].iter().any(|&b| b != 0));
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0], runs[2]);
    }
}

/// The tile culling of bin.wgsl (mirrored by `splat_reaches_tile` here, which
/// `gpu_binning_equals_cpu_binning` shows to agree with the shader) drops a tile only where
/// every pixel centre has alpha below 1/255 (f64), and drops many tiles of the rectangle.
#[test]
fn culled_tiles_receive_no_alpha() {
    let mut rng = Pcg32::new(8, 0);
    let (mut culled, mut kept) = (0, 0);
    for _ in 0..3000 {
        // A random 2D covariance (blur included), opacity and mean.
        let sx = (0.5 + 40.0 * rng.next_f64()).powi(2);
        let sy = (0.5 + 40.0 * rng.next_f64()).powi(2);
        let angle = std::f64::consts::PI * rng.next_f64();
        let (sin, cos) = angle.sin_cos();
        let cov = [
            cos * cos * sx + sin * sin * sy + 0.3,
            cos * sin * (sx - sy),
            sin * sin * sx + cos * cos * sy + 0.3,
        ];
        let det = cov[0] * cov[2] - cov[1] * cov[1];
        let conic = [cov[2] / det, -cov[1] / det, cov[0] / det];
        let opacity = 1.0 / 255.0 + (1.0 - 1.0 / 255.0) * rng.next_f64().powi(3);
        let mean = [200.0 * rng.next_f64(), 200.0 * rng.next_f64()];
        let splat = GpuSplat {
            mean2d: mean.map(|v| v as f32),
            conic: conic.map(|v| v as f32),
            opacity: opacity as f32,
            color: [0.0; 3],
            radius: 1,
            tile_min: [0, 0],
            tile_max: [0, 0],
        };
        let tx = (mean[0] / 16.0) as i64 + (rng.next_f64() * 12.0) as i64 - 6;
        let ty = (mean[1] / 16.0) as i64 + (rng.next_f64() * 12.0) as i64 - 6;
        if tx < 0 || ty < 0 {
            continue;
        }
        if splat_reaches_tile(&splat, tx as u32, ty as u32) {
            kept += 1;
            continue;
        }
        culled += 1;
        let (a, b, c) = (
            f64::from(splat.conic[0]),
            f64::from(splat.conic[1]),
            f64::from(splat.conic[2]),
        );
        for py in 0..16 {
            for px in 0..16 {
                let dx = (tx * 16 + px) as f64 + 0.5 - f64::from(splat.mean2d[0]);
                let dy = (ty * 16 + py) as f64 + 0.5 - f64::from(splat.mean2d[1]);
                let power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy;
                let alpha = f64::from(splat.opacity) * power.exp();
                assert!(
                    alpha < 1.0 / 255.0,
                    "tile ({tx}, {ty}) culled but pixel ({px}, {py}) has alpha {alpha}"
                );
            }
        }
    }
    eprintln!("tiles culled {culled}, kept {kept}");
    assert!(culled > 500 && kept > 500);
}
