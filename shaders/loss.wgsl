// The training loss (1 - λ) L1 + λ (1 - SSIM) of a rendered image against its ground truth, its
// gradient with respect to the rendered image, and the sums behind the evaluation metrics.
// The formulas and their derivation are in src/reference/ssim.rs (the f64 reference).
//
// Three entry points, dispatched in this order by src/gpu/loss.rs:
//   ssim_forward   per 16x16 tile: SSIM map, the three gradient maps A, B, C, per-tile sums
//                  of |x - y|, S and (x - y)²;
//   loss_reduce    one workgroup: sums the tile sums into [loss, L1, SSIM, MSE] (deterministic:
//                  no atomics, the same order every run);
//   loss_backward  per 16x16 tile: blurs A, B, C and combines them with the L1 sign and the
//                  clamp mask into dLoss/d(image).
//
// Images: `image` is planar f32 (c * H * W + y * W + x), `ground_truth` packed RGBA8 (red in the
// low byte). The gradient maps are planar like the image, one buffer per map.
//
// Both tile kernels load a 26x26 halo (the tile plus the window radius 5 on each side) into
// workgroup memory, zero outside the image (SSIM's zero padding), blur it horizontally into
// 26 rows x 16 columns and then vertically into the 16x16 tile. Channels are processed one after
// the other so each kernel stays under 16 KiB of workgroup memory; each thread loads its share
// of the next channel's halo into registers while the current one is blurred, so the three
// channels wait for memory once rather than three times.

struct LossParams {
    width: u32,
    height: u32,
    // 1: round the clamped image to 8 bits first (metrics on saved PNGs); 0: training.
    quantize_8bit: u32,
    _pad0: u32,
    lambda_dssim: f32,
    // 1 / (3 W H): every mean is over all pixels and channels.
    inv_value_count: f32,
    _pad1: f32,
    _pad2: f32,
    // The normalised 1-D Gaussian window (11 taps, sigma 1.5) computed in f64 on the host,
    // so the GPU and the reference use the same weights. Tap k is window[k / 4][k % 4].
    window: array<vec4<f32>, 3>,
}

const TILE: u32 = 16u;
const RADIUS: u32 = 5u;
const TAPS: u32 = 11u;
const HALO: u32 = 26u;        // TILE + 2 RADIUS
const HALO_AREA: u32 = 676u;  // HALO x HALO
const ROWS_AREA: u32 = 416u;  // HALO rows x TILE columns
const WORKGROUP: u32 = 256u;  // TILE x TILE threads; also the reduce kernel's size
const CHANNELS: u32 = 3u;
const C1: f32 = 0.0001;       // (0.01)^2
const C2: f32 = 0.0009;       // (0.03)^2

@group(0) @binding(0) var<uniform> params: LossParams;
@group(0) @binding(1) var<storage, read> image: array<f32>;
@group(0) @binding(2) var<storage, read> ground_truth: array<u32>;
// The gradient maps of src/reference/ssim.rs, per pixel and channel:
// A = ∂S/∂mu_x - 2 mu_x ∂S/∂var_x - mu_y ∂S/∂cov, B = ∂S/∂var_x, C = ∂S/∂cov.
@group(0) @binding(3) var<storage, read_write> map_a: array<f32>;
@group(0) @binding(4) var<storage, read_write> map_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> map_c: array<f32>;
// Per tile: (sum |x - y|, sum S, sum (x - y)², 0) over its pixels and channels.
@group(0) @binding(6) var<storage, read_write> tile_sums: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> d_image: array<f32>;
// [loss, L1, SSIM, MSE].
@group(0) @binding(8) var<storage, read_write> loss_out: array<f32>;

// Forward: the halo of x (image) and y (ground truth), and the horizontal window sums of
// (x, y, x², y²) and of x y. `forward_rows` is also the scratch of the workgroup sums (in the
// forward and the reduce kernels), so no kernel needs a separate array for it.
var<workgroup> forward_halo_x: array<f32, HALO_AREA>;
var<workgroup> forward_halo_y: array<f32, HALO_AREA>;
var<workgroup> forward_rows: array<vec4<f32>, ROWS_AREA>;
var<workgroup> forward_rows_xy: array<f32, ROWS_AREA>;
// Backward: the halo of the maps A, B, C, and their horizontal window sums.
var<workgroup> backward_halo_a: array<f32, HALO_AREA>;
var<workgroup> backward_halo_b: array<f32, HALO_AREA>;
var<workgroup> backward_halo_c: array<f32, HALO_AREA>;
var<workgroup> backward_rows: array<vec4<f32>, ROWS_AREA>;

fn window_weight(k: u32) -> f32 {
    return params.window[k / 4u][k % 4u];
}

// The rendered value the loss sees: clamped to [0, 1] (and rounded to 8 bits for metrics).
fn loss_input(raw: f32) -> f32 {
    let clamped = clamp(raw, 0.0, 1.0);
    if params.quantize_8bit != 0u {
        return floor(clamped * 255.0 + 0.5) / 255.0;
    }
    return clamped;
}

// Image coordinates of halo entry `i` of the tile `tile`, and whether they are inside the image.
fn halo_pixel(tile: vec2<u32>, i: u32) -> vec3<i32> {
    let p = vec2<i32>(tile * TILE) - vec2<i32>(i32(RADIUS)) + vec2<i32>(i32(i % HALO), i32(i / HALO));
    let inside = p.x >= 0 && p.y >= 0 && p.x < i32(params.width) && p.y < i32(params.height);
    return vec3<i32>(p, select(0, 1, inside));
}

fn pixel_index(p: vec2<i32>) -> u32 {
    return u32(p.y) * params.width + u32(p.x);
}

// Sums four f32 values per thread over a workgroup of WORKGROUP threads (a fixed tree, so the
// result does not depend on timing). Every thread gets the result.
fn workgroup_sum(lane: u32, value: vec4<f32>) -> vec4<f32> {
    forward_rows[lane] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            forward_rows[lane] += forward_rows[lane + stride];
        }
        workgroupBarrier();
    }
    return forward_rows[0];
}

// SSIM of one pixel from its window statistics, and the three gradient-map values there.
struct SsimPixel {
    value: f32,
    a: f32,
    b: f32,
    c: f32,
}

fn ssim_pixel(mu_x: f32, mu_y: f32, mean_xx: f32, mean_yy: f32, mean_xy: f32) -> SsimPixel {
    let var_x = mean_xx - mu_x * mu_x;
    let var_y = mean_yy - mu_y * mu_y;
    let cov = mean_xy - mu_x * mu_y;
    let luminance_num = 2.0 * mu_x * mu_y + C1;
    let structure_num = 2.0 * cov + C2;
    let luminance_den = mu_x * mu_x + mu_y * mu_y + C1;
    let structure_den = var_x + var_y + C2;
    let inv_den = 1.0 / (luminance_den * structure_den);
    let value = luminance_num * structure_num * inv_den;
    let d_mu_x = 2.0 * mu_y * structure_num * inv_den - 2.0 * mu_x * value / luminance_den;
    let d_var_x = -value / structure_den;
    let d_cov = 2.0 * luminance_num * inv_den;
    var out: SsimPixel;
    out.value = value;
    out.a = d_mu_x - 2.0 * mu_x * d_var_x - mu_y * d_cov;
    out.b = d_var_x;
    out.c = d_cov;
    return out;
}

// One thread's share of a tile's halo: entries lane, lane + 256 and lane + 512 (HALO_AREA is
// 676 = 2 * 256 + 164).
const HALO_PER_THREAD: u32 = 3u;

// This thread's halo entries of the rendered image in `channel` (zero outside the image).
// Loaded one channel ahead: the loads are in flight while the current channel is blurred.
fn load_image_halo(tile: vec2<u32>, lane: u32, channel: u32) -> array<f32, HALO_PER_THREAD> {
    let plane = params.width * params.height;
    var values: array<f32, HALO_PER_THREAD>;
    for (var j = 0u; j < HALO_PER_THREAD; j++) {
        values[j] = 0.0;
        let i = lane + j * WORKGROUP;
        if i < HALO_AREA {
            let p = halo_pixel(tile, i);
            if p.z != 0 {
                values[j] = loss_input(image[channel * plane + pixel_index(p.xy)]);
            }
        }
    }
    return values;
}

// This thread's halo entries of the ground truth, all channels packed (zero outside).
fn load_ground_truth_halo(tile: vec2<u32>, lane: u32) -> array<u32, HALO_PER_THREAD> {
    var packed: array<u32, HALO_PER_THREAD>;
    for (var j = 0u; j < HALO_PER_THREAD; j++) {
        packed[j] = 0u;
        let i = lane + j * WORKGROUP;
        if i < HALO_AREA {
            let p = halo_pixel(tile, i);
            if p.z != 0 {
                packed[j] = ground_truth[pixel_index(p.xy)];
            }
        }
    }
    return packed;
}

fn unpack_channel(packed: u32, channel: u32) -> f32 {
    return f32((packed >> (8u * channel)) & 0xffu) / 255.0;
}

@compute @workgroup_size(16, 16)
fn ssim_forward(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let tile = group.xy;
    let pixel = tile * TILE + local.xy;
    let inside = pixel.x < params.width && pixel.y < params.height;
    let plane = params.width * params.height;
    let index = pixel.y * params.width + pixel.x;
    let truth = load_ground_truth_halo(tile, lane);
    var next_image = load_image_halo(tile, lane, 0u);
    var sums = vec4<f32>(0.0);
    for (var channel = 0u; channel < CHANNELS; channel++) {
        // 1. The halo of x and y, zero outside the image.
        for (var j = 0u; j < HALO_PER_THREAD; j++) {
            let i = lane + j * WORKGROUP;
            if i < HALO_AREA {
                forward_halo_x[i] = next_image[j];
                forward_halo_y[i] = unpack_channel(truth[j], channel);
            }
        }
        workgroupBarrier();
        if channel + 1u < CHANNELS {
            next_image = load_image_halo(tile, lane, channel + 1u);
        }
        // 2. Horizontal window sums of the five moments, for every halo row.
        for (var i = lane; i < ROWS_AREA; i += WORKGROUP) {
            let first = (i / TILE) * HALO + i % TILE;
            var moments = vec4<f32>(0.0);
            var moment_xy = 0.0;
            for (var k = 0u; k < TAPS; k++) {
                let w = window_weight(k);
                let x = forward_halo_x[first + k];
                let y = forward_halo_y[first + k];
                moments += w * vec4<f32>(x, y, x * x, y * y);
                moment_xy += w * x * y;
            }
            forward_rows[i] = moments;
            forward_rows_xy[i] = moment_xy;
        }
        workgroupBarrier();
        // 3. Vertical window sums: the local statistics of this thread's pixel.
        var moments = vec4<f32>(0.0);
        var moment_xy = 0.0;
        for (var k = 0u; k < TAPS; k++) {
            let w = window_weight(k);
            let row = (local.y + k) * TILE + local.x;
            moments += w * forward_rows[row];
            moment_xy += w * forward_rows_xy[row];
        }
        if inside {
            let s = ssim_pixel(moments.x, moments.y, moments.z, moments.w, moment_xy);
            let out = channel * plane + index;
            map_a[out] = s.a;
            map_b[out] = s.b;
            map_c[out] = s.c;
            let centre = (local.y + RADIUS) * HALO + local.x + RADIUS;
            let diff = forward_halo_x[centre] - forward_halo_y[centre];
            sums += vec4<f32>(abs(diff), s.value, diff * diff, 0.0);
        }
        // The next channel overwrites the halo and the rows.
        workgroupBarrier();
    }
    let total = workgroup_sum(lane, sums);
    if lane == 0u {
        tile_sums[tile.y * groups.x + tile.x] = total;
    }
}

@compute @workgroup_size(256)
fn loss_reduce(@builtin(local_invocation_index) lane: u32) {
    let tiles = ((params.width + TILE - 1u) / TILE) * ((params.height + TILE - 1u) / TILE);
    var sum = vec4<f32>(0.0);
    for (var i = lane; i < tiles; i += WORKGROUP) {
        sum += tile_sums[i];
    }
    let total = workgroup_sum(lane, sum);
    if lane == 0u {
        let means = total * params.inv_value_count;
        let lambda = params.lambda_dssim;
        loss_out[0] = (1.0 - lambda) * means.x + lambda * (1.0 - means.y);
        loss_out[1] = means.x;
        loss_out[2] = means.y;
        loss_out[3] = means.z;
    }
}

// This thread's halo entries of the maps A, B, C in `channel` (zero outside the image, because
// the transposed window sum only runs over output pixels inside it). Loaded one channel ahead,
// like the forward's image halo.
fn load_map_halo(tile: vec2<u32>, lane: u32, channel: u32) -> array<vec3<f32>, HALO_PER_THREAD> {
    let plane = params.width * params.height;
    var values: array<vec3<f32>, HALO_PER_THREAD>;
    for (var j = 0u; j < HALO_PER_THREAD; j++) {
        values[j] = vec3<f32>(0.0);
        let i = lane + j * WORKGROUP;
        if i < HALO_AREA {
            let p = halo_pixel(tile, i);
            if p.z != 0 {
                let source = channel * plane + pixel_index(p.xy);
                values[j] = vec3<f32>(map_a[source], map_b[source], map_c[source]);
            }
        }
    }
    return values;
}

@compute @workgroup_size(16, 16)
fn loss_backward(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let tile = group.xy;
    let pixel = tile * TILE + local.xy;
    let inside = pixel.x < params.width && pixel.y < params.height;
    let plane = params.width * params.height;
    let index = pixel.y * params.width + pixel.x;
    let lambda = params.lambda_dssim;
    var truth = 0u;
    if inside {
        truth = ground_truth[index];
    }
    var next_maps = load_map_halo(tile, lane, 0u);
    for (var channel = 0u; channel < CHANNELS; channel++) {
        // 1. The halo of the maps.
        for (var j = 0u; j < HALO_PER_THREAD; j++) {
            let i = lane + j * WORKGROUP;
            if i < HALO_AREA {
                backward_halo_a[i] = next_maps[j].x;
                backward_halo_b[i] = next_maps[j].y;
                backward_halo_c[i] = next_maps[j].z;
            }
        }
        workgroupBarrier();
        if channel + 1u < CHANNELS {
            next_maps = load_map_halo(tile, lane, channel + 1u);
        }
        // 2. Horizontal window sums (the window is symmetric: the transposed blur is the blur).
        for (var i = lane; i < ROWS_AREA; i += WORKGROUP) {
            let first = (i / TILE) * HALO + i % TILE;
            var sum = vec4<f32>(0.0);
            for (var k = 0u; k < TAPS; k++) {
                let w = window_weight(k);
                sum += w * vec4<f32>(
                    backward_halo_a[first + k],
                    backward_halo_b[first + k],
                    backward_halo_c[first + k],
                    0.0,
                );
            }
            backward_rows[i] = sum;
        }
        workgroupBarrier();
        // 3. Vertical window sums, then the chain rule at this pixel.
        var blurred = vec4<f32>(0.0);
        for (var k = 0u; k < TAPS; k++) {
            blurred += window_weight(k) * backward_rows[(local.y + k) * TILE + local.x];
        }
        if inside {
            let at = channel * plane + index;
            let raw = image[at];
            let x = loss_input(raw);
            let y = unpack_channel(truth, channel);
            let d_ssim = blurred.x + 2.0 * x * blurred.y + y * blurred.z;
            let d_loss = params.inv_value_count * ((1.0 - lambda) * sign(x - y) - lambda * d_ssim);
            // torch.clamp passes the gradient where 0 <= raw <= 1 (false for NaN too).
            let passes_clamp = raw >= 0.0 && raw <= 1.0;
            d_image[at] = select(0.0, d_loss, passes_clamp);
        }
        workgroupBarrier();
    }
}
