// Composites a view's rasterized splats (rasterize_view.wgsl) over the scene, in display space
// (gpu::raster::view; ARCHITECTURE.md, "Drawing splats in Bevy").
//
// Key choices:
// - Training composites sRGB-encoded ("display") values: C = sum(c_i a_i T_i) + T * background.
//   Bevy's main textures hold linear values (Rgba8UnormSrgb, Rgba16Float), so this pass reads
//   the scene, encodes it to sRGB, computes `rgb + T * scene` exactly as the trainer does and
//   decodes the result back: with no tonemapping after it, the pixels are the trainer's. (Fixed-
//   function blending cannot do this: the sum is not linear in linear-light values.)
// - A full-screen triangle over the whole target, reading the current main texture and writing
//   the other one (Bevy's post-process ping-pong). Outside the camera's viewport the scene is
//   copied unchanged, so cameras sharing a target (split screen) keep each other's pixels.
// - SRGB_STORAGE: the main texture already stores sRGB-encoded values (Bevy's
//   CompositingSpace::Srgb, an Rgba8Unorm target); no conversion either way.
// - COMPUTE_COMPOSITE: the same per-pixel sum as a compute pass writing a storage texture
//   (STORAGE_RGBA16FLOAT / STORAGE_RGBA32FLOAT / STORAGE_RGBA8UNORM name its format), for
//   GPUs whose pixel shading is slow (gpu/raster/composite.rs says why).

struct Composite {
    // The viewport in target pixels: origin and size (= the splat image's size).
    origin: vec2<u32>,
    size: vec2<u32>,
}

@group(0) @binding(0) var<uniform> composite: Composite;
@group(0) @binding(1) var<storage, read> view_image: array<vec4<f32>>;
@group(0) @binding(2) var scene: texture_2d<f32>;

#ifdef COMPUTE_COMPOSITE
#ifdef STORAGE_RGBA16FLOAT
@group(0) @binding(3) var target_texture: texture_storage_2d<rgba16float, write>;
#endif
#ifdef STORAGE_RGBA32FLOAT
@group(0) @binding(3) var target_texture: texture_storage_2d<rgba32float, write>;
#endif
#ifdef STORAGE_RGBA8UNORM
@group(0) @binding(3) var target_texture: texture_storage_2d<rgba8unorm, write>;
#endif
#else
@vertex
fn fullscreen(@builtin(vertex_index) index: u32) -> @builtin(position) vec4<f32> {
    // (-1, -1), (3, -1), (-1, 3): one triangle covering the target.
    let uv = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

@fragment
fn composite_splats(@builtin(position) position: vec4<f32>) -> @location(0) vec4<f32> {
    return composite_pixel(vec2<u32>(position.xy));
}
#endif

// The sRGB transfer functions (IEC 61966-2-1), extended to values above 1 by the same curve
// (HDR targets without tonemapping can hold them).
fn srgb_encode(linear: vec3<f32>) -> vec3<f32> {
    let x = max(linear, vec3<f32>(0.0));
    return select(1.055 * pow(x, vec3<f32>(1.0 / 2.4)) - 0.055, 12.92 * x, x <= vec3<f32>(0.0031308));
}

fn srgb_decode(encoded: vec3<f32>) -> vec3<f32> {
    let x = max(encoded, vec3<f32>(0.0));
    return select(pow((x + 0.055) / 1.055, vec3<f32>(2.4)), x / 12.92, x <= vec3<f32>(0.04045));
}

// The target's value at `pixel`: the scene, with the splats in front inside the viewport.
fn composite_pixel(pixel: vec2<u32>) -> vec4<f32> {
    let under = textureLoad(scene, pixel, 0);
    let inside = all(pixel >= composite.origin) && all(pixel < composite.origin + composite.size);
    if !inside {
        return under;
    }
    let local = pixel - composite.origin;
    let splats = view_image[local.y * composite.size.x + local.x];
    let transmittance = splats.a;
    // Over operator with the splats in front: alpha = 1 - T (1 - under.a).
    let alpha = 1.0 - transmittance * (1.0 - under.a);
#ifdef SRGB_STORAGE
    return vec4<f32>(splats.rgb + transmittance * under.rgb, alpha);
#else
    let display = splats.rgb + transmittance * srgb_encode(under.rgb);
    return vec4<f32>(srgb_decode(display), alpha);
#endif
}

#ifdef COMPUTE_COMPOSITE
@compute @workgroup_size(16, 16)
fn composite_compute(@builtin(global_invocation_id) id: vec3<u32>) {
    let pixel = id.xy;
    if any(pixel >= textureDimensions(target_texture)) {
        return;
    }
    textureStore(target_texture, pixel, composite_pixel(pixel));
}
#endif
