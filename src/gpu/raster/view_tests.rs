//! The game plugin's renderer (`view.rs`) against the trainer's rasterizer, which the f64
//! reference validates (`tests.rs`): the same image for one cloud, for a cloud split into
//! several, for a transformed cloud seen by a camera moved alike, and, with a depth buffer, the
//! trainer's render of just the Gaussians in front of it; then the display-space composite
//! against a CPU computation of `rgb + T * scene`.

use glam::{DAffine3, DMat3, DQuat, DVec3};

use super::view::*;
use super::*;
use crate::gpu::test_util::test_context;
use crate::model::Gaussians;
use crate::reference::raster::random_scene;
use crate::rng::Pcg32;

const WIDTH: u32 = 72;
const HEIGHT: u32 = 52;
/// Bevy's default near plane, as the depth mapping numerator (reverse Z: d = near / z).
const NEAR: f32 = 0.1;

fn upload(ctx: &GpuContext, gaussians: &Gaussians) -> GaussianCloud {
    GaussianCloud::from_gaussians(ctx, gaussians, gaussians.len() as u32)
}

/// The trainer's render on a black background: (premultiplied rgb, T) per pixel, row-major.
fn trainer_render(
    ctx: &GpuContext,
    gaussians: &Gaussians,
    camera: &Camera,
    active_sh_degree: u32,
) -> Vec<[f32; 4]> {
    let cloud = upload(ctx, gaussians);
    let mut rasterizer = Rasterizer::new(ctx);
    let mut frame = RasterFrame::new(ctx);
    let settings = RenderSettings {
        active_sh_degree,
        ..RenderSettings::default()
    };
    rasterizer
        .forward(ctx, &cloud, camera, &settings, &mut frame, None)
        .unwrap();
    let image = frame.read_image(ctx);
    let transmittance = frame.read_final_transmittance(ctx);
    let plane = transmittance.len();
    (0..plane)
        .map(|i| {
            [
                image[i],
                image[plane + i],
                image[2 * plane + i],
                transmittance[i],
            ]
        })
        .collect()
}

/// The plugin's render of `clouds` (rgb, T per pixel), with an optional depth buffer.
fn view_render(
    ctx: &GpuContext,
    renderer: &mut SplatRenderer,
    clouds: &[ViewCloud],
    camera: &Camera,
    depth: Option<&SceneDepth>,
) -> Vec<[f32; 4]> {
    let mut frame = SplatViewFrame::new(ctx);
    renderer
        .prepare(ctx, camera, 0.2, clouds, &mut frame, None)
        .unwrap();
    let mut encoder = new_encoder(ctx, "test draw");
    renderer.encode_rasterize(ctx, &mut encoder, &frame, depth);
    ctx.queue.submit([encoder.finish()]);
    frame.read_image(ctx)
}

fn max_difference(a: &[[f32; 4]], b: &[[f32; 4]]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(p, q)| (0..4).map(move |c| (p[c] - q[c]).abs()))
        .fold(0.0, f32::max)
}

fn whole(cloud: &GaussianCloud, sh: u32) -> ViewCloud<'_> {
    ViewCloud {
        cloud,
        world_from_local: DAffine3::IDENTITY,
        settings: CloudDrawSettings {
            max_sh_degree: sh,
            ..CloudDrawSettings::default()
        },
    }
}

#[test]
fn one_cloud_renders_exactly_like_the_trainer() {
    let ctx = test_context();
    let mut renderer = SplatRenderer::new(ctx);
    for (seed, sh) in [(1, 3), (2, 1), (3, 0)] {
        let mut rng = Pcg32::new(seed, 7);
        let (gaussians, camera) = random_scene(&mut rng, 300, 3, WIDTH, HEIGHT);
        let expected = trainer_render(ctx, &gaussians, &camera, sh);
        let cloud = upload(ctx, &gaussians);
        let got = view_render(ctx, &mut renderer, &[whole(&cloud, sh)], &camera, None);
        let difference = max_difference(&got, &expected);
        eprintln!("seed {seed}, SH {sh}: max |view - trainer| = {difference:e}");
        assert!(difference <= 1e-6, "seed {seed}: {difference}");
    }
}

#[test]
fn clouds_split_at_random_render_like_the_whole_cloud() {
    let ctx = test_context();
    let mut renderer = SplatRenderer::new(ctx);
    let mut rng = Pcg32::new(11, 3);
    let (gaussians, camera) = random_scene(&mut rng, 400, 2, WIDTH, HEIGHT);
    let expected = trainer_render(ctx, &gaussians, &camera, 2);
    let mut parts = [
        Gaussians::empty(2),
        Gaussians::empty(2),
        Gaussians::empty(2),
    ];
    for i in 0..gaussians.len() {
        let part = rng.below(3) as usize;
        parts[part].push_from(&gaussians, i);
    }
    let clouds: Vec<GaussianCloud> = parts.iter().map(|p| upload(ctx, p)).collect();
    let views: Vec<ViewCloud> = clouds.iter().map(|c| whole(c, 2)).collect();
    let got = view_render(ctx, &mut renderer, &views, &camera, None);
    let difference = max_difference(&got, &expected);
    eprintln!("3 clouds: max |split - whole| = {difference:e}");
    assert!(difference <= 1e-5, "{difference}");
}

#[test]
fn a_transformed_cloud_seen_by_a_camera_moved_alike_looks_the_same() {
    let ctx = test_context();
    let mut renderer = SplatRenderer::new(ctx);
    let mut rng = Pcg32::new(5, 1);
    let (gaussians, camera) = random_scene(&mut rng, 300, 3, WIDTH, HEIGHT);
    let expected = trainer_render(ctx, &gaussians, &camera, 3);
    let cloud = upload(ctx, &gaussians);
    // world = S local with a rotation, a translation and a uniform scale of 2.5.
    let rotation = DMat3::from_quat(DQuat::from_euler(glam::EulerRot::YXZ, 0.7, -0.4, 1.1));
    let placement = DAffine3::from_mat3_translation(2.5 * rotation, DVec3::new(3.0, -1.0, 7.0));
    // The camera moved by S: camera_from_world' = camera_from_world S^-1 (scaled by 1 / 2.5).
    let camera_from_world = DAffine3::from_mat3_translation(camera.rotation, camera.translation);
    let moved = camera_from_world * placement.inverse();
    let moved_camera = Camera {
        rotation: moved.matrix3,
        translation: moved.translation,
        ..camera.clone()
    };
    let view = ViewCloud {
        world_from_local: placement,
        ..whole(&cloud, 3)
    };
    let got = view_render(ctx, &mut renderer, &[view], &moved_camera, None);
    let difference = max_difference(&got, &expected);
    eprintln!("transformed pair: max difference {difference:e}");
    assert!(difference <= 1e-4, "{difference}");
}

#[test]
fn the_opacity_multiplier_scales_every_opacity_before_culling() {
    let ctx = test_context();
    let mut renderer = SplatRenderer::new(ctx);
    let mut rng = Pcg32::new(13, 5);
    let (gaussians, camera) = random_scene(&mut rng, 300, 1, WIDTH, HEIGHT);
    let scale = 0.4f64;
    // The same cloud with each opacity logit changed so that sigmoid(logit') = 0.4 sigmoid(logit).
    let mut faded = gaussians.clone();
    for logit in &mut faded.logit_opacities {
        let opacity = scale / (1.0 + (-f64::from(*logit)).exp());
        *logit = (opacity / (1.0 - opacity)).ln() as f32;
    }
    let expected = trainer_render(ctx, &faded, &camera, 1);
    let cloud = upload(ctx, &gaussians);
    let view = ViewCloud {
        settings: CloudDrawSettings {
            opacity: scale as f32,
            max_sh_degree: 1,
            ..CloudDrawSettings::default()
        },
        ..whole(&cloud, 1)
    };
    let got = view_render(ctx, &mut renderer, &[view], &camera, None);
    let difference = max_difference(&got, &expected);
    eprintln!("opacity x{scale}: max difference {difference:e}");
    assert!(difference <= 1e-4, "{difference}");
    let unfaded = trainer_render(ctx, &gaussians, &camera, 1);
    assert!(max_difference(&got, &unfaded) > 0.05);
}

/// A `Depth32Float` texture (optionally 4x multisampled) holding `left` in the left half of
/// the image and `right` in the right half (reverse-Z values).
fn depth_texture(ctx: &GpuContext, left: f32, right: f32, samples: u32) -> wgpu::TextureView {
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("test depth"),
        size: wgpu::Extent3d {
            width: WIDTH,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: samples,
        dimension: wgpu::TextureDimension::D2,
        format: wgpu::TextureFormat::Depth32Float,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let source = format!(
        "@vertex fn main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {{
             let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
             return vec4<f32>(uv * 2.0 - 1.0, {right:?}, 1.0);
         }}"
    );
    let module = ctx
        .device
        .create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("test depth"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
    let pipeline = ctx
        .device
        .create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("test depth"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: Some(wgpu::DepthStencilState {
                format: wgpu::TextureFormat::Depth32Float,
                depth_write_enabled: Some(true),
                depth_compare: Some(wgpu::CompareFunction::Always),
                stencil: wgpu::StencilState::default(),
                bias: wgpu::DepthBiasState::default(),
            }),
            multisample: wgpu::MultisampleState {
                count: samples,
                ..Default::default()
            },
            fragment: None,
            multiview_mask: None,
            cache: None,
        });
    let mut encoder = new_encoder(ctx, "test depth");
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("test depth"),
            color_attachments: &[],
            depth_stencil_attachment: Some(wgpu::RenderPassDepthStencilAttachment {
                view: &view,
                depth_ops: Some(wgpu::Operations {
                    load: wgpu::LoadOp::Clear(left),
                    store: wgpu::StoreOp::Store,
                }),
                stencil_ops: None,
            }),
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(&pipeline);
        let half = (WIDTH / 2) as f32;
        pass.set_viewport(half, 0.0, WIDTH as f32 - half, HEIGHT as f32, 0.0, 1.0);
        pass.draw(0..3, 0..1);
    }
    ctx.queue.submit([encoder.finish()]);
    view
}

/// The Gaussians of `gaussians` whose camera-space depth is below `limit`.
fn in_front_of(gaussians: &Gaussians, camera: &Camera, limit: f64) -> Gaussians {
    let mut kept = Gaussians::empty(gaussians.sh_degree);
    for i in 0..gaussians.len() {
        let m = &gaussians.means[3 * i..3 * i + 3];
        let mean = DVec3::new(f64::from(m[0]), f64::from(m[1]), f64::from(m[2]));
        if camera.to_camera(mean).z < limit {
            kept.push_from(gaussians, i);
        }
    }
    kept
}

/// The middle of the widest gap between the Gaussians' depths in `[0.8, 1.2] * target`, so no
/// Gaussian sits at the depth f32 and f64 could round to either side of.
fn depth_between_gaussians(gaussians: &Gaussians, camera: &Camera, target: f64) -> f64 {
    let mut depths: Vec<f64> = (0..gaussians.len())
        .map(|i| {
            let m = &gaussians.means[3 * i..3 * i + 3];
            camera
                .to_camera(DVec3::new(
                    f64::from(m[0]),
                    f64::from(m[1]),
                    f64::from(m[2]),
                ))
                .z
        })
        .filter(|z| (0.8 * target..=1.2 * target).contains(z))
        .collect();
    depths.push(0.8 * target);
    depths.push(1.2 * target);
    depths.sort_by(f64::total_cmp);
    let (low, high) = depths
        .windows(2)
        .map(|w| (w[0], w[1]))
        .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
        .expect("two bounds at least");
    assert!(
        high - low > 1e-4 * target,
        "no gap between the Gaussians' depths"
    );
    0.5 * (low + high)
}

#[test]
fn the_depth_test_hides_exactly_the_splats_behind_the_scene() {
    let ctx = test_context();
    let mut renderer = SplatRenderer::new(ctx);
    let mut rng = Pcg32::new(21, 2);
    let (gaussians, camera) = random_scene(&mut rng, 500, 1, WIDTH, HEIGHT);
    let cloud = upload(ctx, &gaussians);
    // Left half: a surface at about depth 2; right half: at about depth 4.
    let left = depth_between_gaussians(&gaussians, &camera, 2.0);
    let right = depth_between_gaussians(&gaussians, &camera, 4.0);
    let expected_left = trainer_render(ctx, &in_front_of(&gaussians, &camera, left), &camera, 1);
    let expected_right = trainer_render(ctx, &in_front_of(&gaussians, &camera, right), &camera, 1);
    let half = (WIDTH / 2) as usize;
    let expected: Vec<[f32; 4]> = (0..(WIDTH * HEIGHT) as usize)
        .map(|i| {
            if i % WIDTH as usize >= half {
                expected_right[i]
            } else {
                expected_left[i]
            }
        })
        .collect();
    for samples in [1, 4] {
        let view = depth_texture(ctx, NEAR / left as f32, NEAR / right as f32, samples);
        let depth = SceneDepth {
            view: &view,
            multisampled: samples > 1,
            mapping: DepthMapping {
                numerator: NEAR,
                offset: 0.0,
            },
            origin: [0, 0],
        };
        let got = view_render(
            ctx,
            &mut renderer,
            &[whole(&cloud, 1)],
            &camera,
            Some(&depth),
        );
        let difference = max_difference(&got, &expected);
        eprintln!("depth test ({samples} samples): max difference {difference:e}");
        assert!(difference <= 1e-5, "{samples} samples: {difference}");
        // The test is not vacuous: the surfaces hide something in both halves.
        let unoccluded = trainer_render(ctx, &gaussians, &camera, 1);
        assert!(max_difference(&got, &unoccluded) > 0.05);
    }
}

/// sRGB encoding of a linear value (IEC 61966-2-1).
fn srgb_encode(x: f64) -> f64 {
    if x <= 0.0031308 {
        12.92 * x
    } else {
        1.055 * x.powf(1.0 / 2.4) - 0.055
    }
}

fn srgb_decode(x: f64) -> f64 {
    if x <= 0.04045 {
        x / 12.92
    } else {
        ((x + 0.055) / 1.055).powf(2.4)
    }
}

fn texture_with(
    ctx: &GpuContext,
    format: wgpu::TextureFormat,
    pixels: &[u8],
    bytes_per_pixel: u32,
) -> wgpu::Texture {
    texture_with_usage(
        ctx,
        format,
        pixels,
        bytes_per_pixel,
        wgpu::TextureUsages::empty(),
    )
}

fn texture_with_usage(
    ctx: &GpuContext,
    format: wgpu::TextureFormat,
    pixels: &[u8],
    bytes_per_pixel: u32,
    extra_usage: wgpu::TextureUsages,
) -> wgpu::Texture {
    let texture = ctx.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("test scene"),
        size: wgpu::Extent3d {
            width: WIDTH,
            height: HEIGHT,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::TEXTURE_BINDING
            | wgpu::TextureUsages::RENDER_ATTACHMENT
            | wgpu::TextureUsages::COPY_DST
            | wgpu::TextureUsages::COPY_SRC
            | extra_usage,
        view_formats: &[],
    });
    ctx.queue.write_texture(
        texture.as_image_copy(),
        pixels,
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(WIDTH * bytes_per_pixel),
            rows_per_image: Some(HEIGHT),
        },
        texture.size(),
    );
    texture
}

#[test]
fn the_composite_adds_the_scene_behind_in_display_space() {
    let ctx = test_context();
    let mut renderer = SplatRenderer::new(ctx);
    let mut rng = Pcg32::new(8, 8);
    let (gaussians, camera) = random_scene(&mut rng, 300, 0, WIDTH, HEIGHT);
    let cloud = upload(ctx, &gaussians);
    let mut frame = SplatViewFrame::new(ctx);
    renderer
        .prepare(ctx, &camera, 0.2, &[whole(&cloud, 0)], &mut frame, None)
        .unwrap();
    let mut encoder = new_encoder(ctx, "test");
    renderer.encode_rasterize(ctx, &mut encoder, &frame, None);
    ctx.queue.submit([encoder.finish()]);
    let splats = frame.read_image(ctx);
    // The scene behind: random sRGB bytes (alpha 255).
    let scene_bytes: Vec<u8> = (0..WIDTH * HEIGHT * 4)
        .map(|i| {
            if i % 4 == 3 {
                255
            } else {
                rng.below(256) as u8
            }
        })
        .collect();
    // Expected display value of each channel: rgb + T * scene (display).
    let expected = |pixel: usize, channel: usize| {
        let scene = f64::from(scene_bytes[4 * pixel + channel]) / 255.0;
        f64::from(splats[pixel][channel]) + f64::from(splats[pixel][3]) * scene
    };
    // The same scene stored three ways: linear sRGB-format bytes, sRGB-encoded bytes in a
    // linear format (CompositingSpace::Srgb), and linear half floats (HDR); the last two also
    // as storage textures, composited by the compute pass.
    let storage = wgpu::TextureUsages::STORAGE_BINDING;
    let none = wgpu::TextureUsages::empty();
    let cases: [(
        wgpu::TextureFormat,
        SceneEncoding,
        wgpu::TextureUsages,
        &str,
    ); 5] = [
        (
            wgpu::TextureFormat::Rgba8UnormSrgb,
            SceneEncoding::Linear,
            none,
            "Rgba8UnormSrgb",
        ),
        (
            wgpu::TextureFormat::Rgba8Unorm,
            SceneEncoding::Srgb,
            none,
            "Rgba8Unorm, sRGB storage",
        ),
        (
            wgpu::TextureFormat::Rgba8Unorm,
            SceneEncoding::Srgb,
            storage,
            "Rgba8Unorm, sRGB storage, compute",
        ),
        (
            wgpu::TextureFormat::Rgba16Float,
            SceneEncoding::Linear,
            none,
            "Rgba16Float",
        ),
        (
            wgpu::TextureFormat::Rgba16Float,
            SceneEncoding::Linear,
            storage,
            "Rgba16Float, compute",
        ),
    ];
    for (format, encoding, usage, name) in cases {
        let (scene, output) = if format == wgpu::TextureFormat::Rgba16Float {
            let halves: Vec<u8> = scene_bytes
                .chunks_exact(4)
                .flat_map(|p| {
                    let linear = |b: u8| srgb_decode(f64::from(b) / 255.0) as f32;
                    [linear(p[0]), linear(p[1]), linear(p[2]), 1.0]
                        .map(|v| half_bits(v).to_le_bytes())
                        .concat()
                })
                .collect();
            let scene = texture_with(ctx, format, &halves, 8);
            let output = texture_with_usage(ctx, format, &vec![0; halves.len()], 8, usage);
            (scene, output)
        } else {
            let scene = texture_with(ctx, format, &scene_bytes, 4);
            let output = texture_with_usage(ctx, format, &vec![0; scene_bytes.len()], 4, usage);
            (scene, output)
        };
        let mut encoder = new_encoder(ctx, "test composite");
        let pass = renderer.encode_composite(
            ctx,
            &mut encoder,
            &frame,
            &scene.create_view(&Default::default()),
            encoding,
            CompositeTarget {
                texture: &output,
                view: &output.create_view(&Default::default()),
            },
            [0, 0],
        );
        let expected_pass = if usage.is_empty() {
            CompositePass::Fragment
        } else {
            CompositePass::Compute
        };
        assert_eq!(pass, expected_pass, "{name}");
        ctx.queue.submit([encoder.finish()]);
        let got = read_display_values(ctx, &output, format);
        let worst = got
            .iter()
            .enumerate()
            .flat_map(|(pixel, value)| {
                (0..3).map(move |c| (value[c] - expected(pixel, c).clamp(0.0, 1.0)).abs())
            })
            .fold(0.0f64, f64::max);
        eprintln!("composite into {name}: max display difference {worst:e}");
        // One 8-bit step (the output is 8-bit except for HDR, where half floats round).
        assert!(worst <= 1.0 / 255.0 + 1e-6, "{name}: {worst}");
    }
}

/// Display (sRGB-encoded) values of an output texture, clamped to [0, 1].
fn read_display_values(
    ctx: &GpuContext,
    texture: &wgpu::Texture,
    format: wgpu::TextureFormat,
) -> Vec<[f64; 3]> {
    let bytes_per_pixel = format.block_copy_size(None).unwrap();
    let row = WIDTH * bytes_per_pixel;
    let padded =
        row.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: u64::from(padded * HEIGHT),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = new_encoder(ctx, "test readback");
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded),
                rows_per_image: Some(HEIGHT),
            },
        },
        texture.size(),
    );
    ctx.queue.submit([encoder.finish()]);
    let bytes: Vec<u8> = crate::gpu::read_buffer(ctx, &buffer, (padded * HEIGHT) as usize);
    let mut out = Vec::with_capacity((WIDTH * HEIGHT) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let at = (y * padded + x * bytes_per_pixel) as usize;
            let pixel = &bytes[at..at + bytes_per_pixel as usize];
            out.push(match format {
                // Stored sRGB-encoded: the bytes are display values.
                wgpu::TextureFormat::Rgba8UnormSrgb | wgpu::TextureFormat::Rgba8Unorm => {
                    [0, 1, 2].map(|c| f64::from(pixel[c]) / 255.0)
                }
                _ => [0, 1, 2].map(|c| {
                    let bits = u16::from_le_bytes([pixel[2 * c], pixel[2 * c + 1]]);
                    srgb_encode(f64::from(half_value(bits)).clamp(0.0, 1.0))
                }),
            });
        }
    }
    out
}

/// IEEE half-precision bits of `v` (round to nearest; finite, non-negative test values).
fn half_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mantissa = bits & 0x7f_ffff;
    if v == 0.0 {
        return 0;
    }
    if exponent <= 0 {
        // Subnormal half.
        let value = (v / 2f32.powi(-24)).round() as u16;
        return value;
    }
    let rounded = (mantissa + 0x1000) >> 13;
    ((exponent as u32) << 10).wrapping_add(rounded) as u16
}

fn half_value(bits: u16) -> f32 {
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f32::from(bits & 0x3ff);
    match exponent {
        0 => mantissa * 2f32.powi(-24),
        _ => (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
    }
}
