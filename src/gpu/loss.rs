//! The training loss `(1 - λ) L1 + λ (1 - SSIM)` on the GPU, forward and backward, and the image
//! metrics for evaluation (`shaders/loss.wgsl`; the f64 reference is `reference::ssim`).
//!
//! Inputs: the rendered image, planar f32 (`c * H * W + y * W + x`, 3 channels), and the ground
//! truth, packed RGBA8 (one `u32` per pixel). The rendered image is clamped to `[0, 1]` before
//! the loss; its gradient passes where `0 <= x <= 1` (inclusive, like `torch.clamp`).
//!
//! Three dispatches in one compute pass:
//! 1. `ssim_forward`, one workgroup per 16x16 tile: window statistics (separable blur of a 26x26
//!    halo in workgroup memory), the SSIM map and three gradient maps A, B, C (see
//!    `reference::ssim`), and per-tile sums of `|x - y|`, SSIM and `(x - y)²`;
//! 2. `loss_reduce`, one workgroup: tile sums to `[loss, L1, SSIM, MSE]`. A fixed summation
//!    tree, no atomics (so no `FLOAT_ATOMICS` variant and no zeroing of `loss_out`): the loss is
//!    bit-identical from run to run on a device;
//! 3. `loss_backward`, one workgroup per tile: blur of A, B, C (the window is symmetric, so the
//!    transposed blur is the blur) combined with the L1 sign and the clamp mask.
//!
//! Cost. Memory traffic per pixel (3 channels, f32): forward reads the image and ground truth
//! (12 + 4 bytes) and writes the maps (36 bytes); backward reads the maps (36), the image and
//! ground truth again (16) and writes `d_image` (12): about 116 bytes per pixel, 240 MB at
//! 1920x1080, against a floor of 28 bytes per pixel (read image + ground truth, write the
//! gradient), which only a single kernel recomputing the statistics over a halo of 10 pixels
//! could approach. Halo re-reads (26² / 16² = 2.6x per tile) are mostly served by L1/L2. On an
//! H100 (~3 TB/s) that is on the order of 0.1 ms at 1080p. Arithmetic is about 1,000
//! operations per pixel for both kernels (2 G at 1080p), far below the GPU's rate; the reduce
//! kernel is one workgroup looping over the tile sums (8,160 at 1080p, 32 per thread): a few
//! microseconds. Workgroup memory: 13.4 KiB (forward), 14.4 KiB (backward), under the 16 KiB
//! default limit.

use super::{
    GpuContext, Recorder, ShaderDefs, bind_entries, compute_pipeline, read_buffer,
    uniform_buffer_from,
};
pub use crate::image_metrics::ImageMetrics;
use crate::image_metrics::{gaussian_window, psnr_from_mse};

const SHADER: &str = "loss.wgsl";
/// Side of the square pixel tile of one workgroup (`TILE` in the shader).
const TILE: u32 = 16;
/// Channels of the rendered image.
const CHANNELS: u64 = 3;
/// Cached bind-group sets kept at most (views of different sizes, evaluation, ...).
const MAX_CACHED_BINDINGS: usize = 16;

/// The shader's `LossParams` (WGSL uniform layout: 16-byte aligned array of vec4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    width: u32,
    height: u32,
    quantize_8bit: u32,
    _pad0: u32,
    lambda_dssim: f32,
    inv_value_count: f32,
    _pad1: [f32; 2],
    window: [[f32; 4]; 3],
}

impl LossParams {
    fn new(width: u32, height: u32, lambda_dssim: f32, quantize_8bit: bool) -> Self {
        let taps = gaussian_window();
        let window = std::array::from_fn(|row| {
            std::array::from_fn(|col| taps.get(row * 4 + col).map_or(0.0, |&w| w as f32))
        });
        let value_count = CHANNELS as f64 * f64::from(width) * f64::from(height);
        Self {
            width,
            height,
            quantize_8bit: u32::from(quantize_8bit),
            _pad0: 0,
            lambda_dssim,
            inv_value_count: (1.0 / value_count) as f32,
            _pad1: [0.0; 2],
            window,
        }
    }
}

/// Intermediate buffers, sized for the largest image seen so far.
struct Scratch {
    /// The gradient maps A, B, C (planar, 3 channels each).
    maps: [wgpu::Buffer; 3],
    /// One vec4 of sums per tile.
    tile_sums: wgpu::Buffer,
    /// Pixels the maps hold.
    pixel_capacity: u64,
    /// Tiles `tile_sums` holds.
    tile_capacity: u64,
}

impl Scratch {
    fn new(ctx: &GpuContext, pixels: u64, tiles: u64) -> Self {
        let map_bytes = pixels * CHANNELS * 4;
        let map = |name: &str| super::storage_buffer(ctx, name, map_bytes);
        Self {
            maps: [map("loss map A"), map("loss map B"), map("loss map C")],
            tile_sums: super::storage_buffer(ctx, "loss tile sums", tiles * 16),
            pixel_capacity: pixels,
            tile_capacity: tiles,
        }
    }
}

/// What a cached set of bind groups was made for.
#[derive(Clone, PartialEq)]
struct BindingKey {
    image: wgpu::Buffer,
    target: wgpu::Buffer,
    /// `None` for metrics (no backward pass).
    d_image: Option<wgpu::Buffer>,
    /// `None` for training steps that do not read the loss value (no reduce pass).
    out: Option<wgpu::Buffer>,
    params: LossParams,
}

struct Bindings {
    key: BindingKey,
    forward: wgpu::BindGroup,
    reduce: Option<wgpu::BindGroup>,
    backward: Option<wgpu::BindGroup>,
}

/// Pipelines, intermediate buffers and cached bind groups of the loss kernels.
///
/// The image size, λ and the 8-bit flag live in a small uniform buffer per cached bind-group
/// set (not written through the queue), so several `encode` calls with different images or
/// sizes can share one command encoder. The cache keeps the last 16 sets (and so references
/// to their buffers); the intermediate buffers only grow.
pub struct LossKernels {
    forward: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    backward: wgpu::ComputePipeline,
    scratch: Scratch,
    bindings: Vec<Bindings>,
    /// `[loss, L1, SSIM, MSE]` of the last `metrics` call.
    metrics_out: wgpu::Buffer,
}

impl LossKernels {
    pub fn new(ctx: &GpuContext) -> Self {
        let defs = ShaderDefs::for_capabilities(&ctx.capabilities);
        let pipeline = |entry: &str| compute_pipeline(ctx, SHADER, entry, &defs, &[]);
        Self {
            forward: pipeline("ssim_forward"),
            reduce: pipeline("loss_reduce"),
            backward: pipeline("loss_backward"),
            scratch: Scratch::new(ctx, 0, 0),
            bindings: Vec::new(),
            metrics_out: super::storage_buffer(ctx, "loss metrics out", 16),
        }
    }

    /// Encodes loss forward + backward (no submit, no wait). Writes dLoss/d(image) (planar CHW
    /// f32, 3*H*W) into `d_image` and, given `loss_out`, the scalar results into it as 4 f32:
    /// `[total loss, L1, SSIM, MSE]` (MSE of the clamped image; the trainer may ignore it).
    /// Without `loss_out` the reduce dispatch is left out (training steps that do not read the
    /// loss: one dispatch fewer). Everything is complete once this encoder has run, so the
    /// trainer can copy `loss_out` to a staging buffer in the same encoder.
    ///
    /// `image` and `d_image` must be different buffers of at least `3 * W * H` f32, `target` at
    /// least `W * H` u32, `loss_out` at least 16 bytes; all with STORAGE usage.
    #[allow(clippy::too_many_arguments)]
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        image: &wgpu::Buffer,
        target: &wgpu::Buffer,
        width: u32,
        height: u32,
        lambda_dssim: f32,
        d_image: &wgpu::Buffer,
        loss_out: Option<&wgpu::Buffer>,
    ) {
        let key = BindingKey {
            image: image.clone(),
            target: target.clone(),
            d_image: Some(d_image.clone()),
            out: loss_out.cloned(),
            params: LossParams::new(width, height, lambda_dssim, false),
        };
        self.record(ctx, rec, key);
    }

    /// Evaluation metrics of `image` against `target` (blocking: submits and reads back 16
    /// bytes). The image is clamped to `[0, 1]` and, when `quantize_8bit`, rounded to 8 bits
    /// first (`floor(255 x + 0.5) / 255`, as evaluation on saved PNGs does).
    pub fn metrics(
        &mut self,
        ctx: &GpuContext,
        image: &wgpu::Buffer,
        target: &wgpu::Buffer,
        width: u32,
        height: u32,
        quantize_8bit: bool,
    ) -> ImageMetrics {
        let key = BindingKey {
            image: image.clone(),
            target: target.clone(),
            d_image: None,
            out: Some(self.metrics_out.clone()),
            params: LossParams::new(width, height, 0.0, quantize_8bit),
        };
        let mut encoder = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("image metrics"),
            });
        self.record(ctx, &mut Recorder::new(&mut encoder), key);
        ctx.queue.submit([encoder.finish()]);
        let [_, l1, ssim, mse] = read_buffer::<f32>(ctx, &self.metrics_out, 4)[..] else {
            unreachable!("read_buffer returns the 4 values asked for")
        };
        ImageMetrics {
            l1: f64::from(l1),
            psnr: psnr_from_mse(f64::from(mse)),
            ssim: f64::from(ssim),
        }
    }

    /// Records forward, reduce and (when `key.d_image` is set) backward.
    fn record(&mut self, ctx: &GpuContext, rec: &mut Recorder, key: BindingKey) {
        let (width, height) = (key.params.width, key.params.height);
        assert!(
            width > 0 && height > 0,
            "loss: empty {width}x{height} image"
        );
        let pixels = u64::from(width) * u64::from(height);
        let image_bytes = CHANNELS * pixels * 4;
        assert!(
            key.image.size() >= image_bytes,
            "loss: image buffer too small"
        );
        assert!(
            key.target.size() >= pixels * 4,
            "loss: target buffer too small"
        );
        if let Some(out) = &key.out {
            assert!(out.size() >= 16, "loss: output buffer too small");
        }
        if let Some(d_image) = &key.d_image {
            assert!(
                d_image.size() >= image_bytes,
                "loss: d_image buffer too small"
            );
            assert!(d_image != &key.image, "loss: d_image must not alias image");
        }
        let tiles_x = width.div_ceil(TILE);
        let tiles_y = height.div_ceil(TILE);
        let max_groups = ctx.limits.max_compute_workgroups_per_dimension;
        assert!(
            tiles_x <= max_groups && tiles_y <= max_groups,
            "loss: {width}x{height} image exceeds the dispatch limit"
        );
        self.ensure_scratch(ctx, pixels, u64::from(tiles_x) * u64::from(tiles_y));
        let cached = self.bindings_for(ctx, key);
        let bindings = &self.bindings[cached];

        let pass = rec.pass();
        pass.set_pipeline(&self.forward);
        pass.set_bind_group(0, &bindings.forward, &[]);
        pass.dispatch_workgroups(tiles_x, tiles_y, 1);
        if let Some(reduce) = &bindings.reduce {
            pass.set_pipeline(&self.reduce);
            pass.set_bind_group(0, reduce, &[]);
            pass.dispatch_workgroups(1, 1, 1);
        }
        if let Some(backward) = &bindings.backward {
            pass.set_pipeline(&self.backward);
            pass.set_bind_group(0, backward, &[]);
            pass.dispatch_workgroups(tiles_x, tiles_y, 1);
        }
    }

    /// Grows the intermediate buffers (dropping the bind groups that used the old ones).
    fn ensure_scratch(&mut self, ctx: &GpuContext, pixels: u64, tiles: u64) {
        let scratch = &self.scratch;
        if pixels <= scratch.pixel_capacity && tiles <= scratch.tile_capacity {
            return;
        }
        self.scratch = Scratch::new(
            ctx,
            pixels.max(scratch.pixel_capacity),
            tiles.max(scratch.tile_capacity),
        );
        self.bindings.clear();
    }

    /// The index in `self.bindings` of the bind groups for `key`, created on first use.
    fn bindings_for(&mut self, ctx: &GpuContext, key: BindingKey) -> usize {
        if let Some(found) = self.bindings.iter().position(|b| b.key == key) {
            return found;
        }
        if self.bindings.len() >= MAX_CACHED_BINDINGS {
            self.bindings.remove(0);
        }
        let params = uniform_buffer_from(ctx, "loss params", &key.params);
        let [map_a, map_b, map_c] = &self.scratch.maps;
        let tile_sums = &self.scratch.tile_sums;
        // Binding numbers as declared in shaders/loss.wgsl.
        let forward = bind_entries(
            ctx,
            "loss",
            &self.forward,
            &[
                (0, &params),
                (1, &key.image),
                (2, &key.target),
                (3, map_a),
                (4, map_b),
                (5, map_c),
                (6, tile_sums),
            ],
        );
        let reduce = key.out.as_ref().map(|out| {
            bind_entries(
                ctx,
                "loss",
                &self.reduce,
                &[(0, &params), (6, tile_sums), (8, out)],
            )
        });
        let backward = key.d_image.as_ref().map(|d_image| {
            bind_entries(
                ctx,
                "loss",
                &self.backward,
                &[
                    (0, &params),
                    (1, &key.image),
                    (2, &key.target),
                    (3, map_a),
                    (4, map_b),
                    (5, map_c),
                    (7, d_image),
                ],
            )
        });
        self.bindings.push(Bindings {
            key,
            forward,
            reduce,
            backward,
        });
        self.bindings.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::{test_context, test_context_fallback};
    use crate::gpu::{read_buffer, storage_buffer, storage_buffer_from};
    use crate::reference::ssim as reference;
    use crate::rng::Pcg32;

    /// A ground truth (random RGBA8, alpha 255) and a rendered image correlated with it, with
    /// values in about (-0.15, 1.15) so some are clamped, and a few exactly 0 and 1 (where the
    /// gradient still passes).
    fn test_images(seed: u64, width: u32, height: u32) -> (Vec<f32>, Vec<u32>) {
        let mut rng = Pcg32::new(seed, 2);
        let pixels = (width * height) as usize;
        let target: Vec<u32> = (0..pixels).map(|_| rng.next_u32() | 0xff00_0000).collect();
        let gt = reference::unpack_rgba8(&target);
        let image = gt
            .iter()
            .map(|&g| match rng.below(40) {
                0 => 0.0,
                1 => 1.0,
                _ => (-0.15 + 1.3 * (0.6 * g + 0.4 * rng.next_f64())) as f32,
            })
            .collect();
        (image, target)
    }

    struct GpuLoss {
        loss: [f32; 4],
        d_image: Vec<f32>,
    }

    fn run_gpu_loss(
        ctx: &GpuContext,
        kernels: &mut LossKernels,
        image: &[f32],
        target: &[u32],
        width: u32,
        height: u32,
        lambda: f32,
    ) -> GpuLoss {
        let image_buffer = storage_buffer_from(ctx, "image", image);
        let target_buffer = storage_buffer_from(ctx, "target", target);
        let d_image = storage_buffer(ctx, "d_image", image.len() as u64 * 4);
        let loss_out = storage_buffer(ctx, "loss_out", 16);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        kernels.encode(
            ctx,
            &mut Recorder::new(&mut encoder),
            &image_buffer,
            &target_buffer,
            width,
            height,
            lambda,
            &d_image,
            Some(&loss_out),
        );
        ctx.queue.submit([encoder.finish()]);
        let loss = read_buffer::<f32>(ctx, &loss_out, 4);
        GpuLoss {
            loss: [loss[0], loss[1], loss[2], loss[3]],
            d_image: read_buffer(ctx, &d_image, image.len()),
        }
    }

    fn to_f64(values: &[f32]) -> Vec<f64> {
        values.iter().map(|&v| f64::from(v)).collect()
    }

    fn relative_error(gpu: f32, reference: f64) -> f64 {
        (f64::from(gpu) - reference).abs() / reference.abs()
    }

    /// Checks the GPU loss against the reference; returns (worst relative scalar error,
    /// gradient max abs error / gradient max).
    fn check_loss(
        ctx: &GpuContext,
        kernels: &mut LossKernels,
        seed: u64,
        w: u32,
        h: u32,
    ) -> (f64, f64) {
        let lambda = 0.2;
        let (image, target) = test_images(seed, w, h);
        let gpu = run_gpu_loss(ctx, kernels, &image, &target, w, h, lambda);
        let gt = reference::unpack_rgba8(&target);
        let image64 = to_f64(&image);
        let (loss, l1, ssim, d_image) =
            reference::loss_and_grad(&image64, &gt, w as usize, h as usize, f64::from(lambda));
        let mse = reference::mse(&reference::clamp_unit(&image64), &gt);
        let scalar_error = [
            (gpu.loss[0], loss),
            (gpu.loss[1], l1),
            (gpu.loss[2], ssim),
            (gpu.loss[3], mse),
        ]
        .iter()
        .map(|&(g, r)| relative_error(g, r))
        .fold(0.0, f64::max);
        let scale = d_image.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let grad_error = gpu
            .d_image
            .iter()
            .zip(&d_image)
            .map(|(&g, &r)| (f64::from(g) - r).abs())
            .fold(0.0, f64::max);
        // Clamped pixels get exactly zero.
        for (i, &v) in image.iter().enumerate() {
            if !(0.0..=1.0).contains(&v) {
                assert_eq!(gpu.d_image[i], 0.0, "clamped pixel {i} has a gradient");
            }
        }
        assert!(image.iter().filter(|v| !(0.0..=1.0).contains(*v)).count() > image.len() / 20);
        (scalar_error, grad_error / scale)
    }

    #[test]
    fn gpu_loss_matches_reference() {
        for (name, ctx) in [
            ("fast", test_context()),
            ("fallback", test_context_fallback()),
        ] {
            let mut kernels = LossKernels::new(ctx);
            for (seed, (w, h)) in [(1, (37, 29)), (2, (64, 48)), (3, (100, 75)), (4, (5, 3))] {
                let (scalar, grad) = check_loss(ctx, &mut kernels, seed, w, h);
                eprintln!("{name} {w}x{h}: scalars rel {scalar:.2e}, d_image rel {grad:.2e}");
                assert!(
                    scalar < 1e-5,
                    "{name} {w}x{h}: scalar relative error {scalar}"
                );
                assert!(
                    grad < 1e-4,
                    "{name} {w}x{h}: gradient relative error {grad}"
                );
            }
        }
    }

    #[test]
    fn gpu_loss_sums_over_more_tiles_than_reduce_threads() {
        // 288x240 = 18 x 15 = 270 tiles: the reduce kernel's threads loop more than once.
        let ctx = test_context();
        let mut kernels = LossKernels::new(ctx);
        let (scalar, grad) = check_loss(ctx, &mut kernels, 9, 288, 240);
        eprintln!("288x240: scalars rel {scalar:.2e}, d_image rel {grad:.2e}");
        assert!(scalar < 2e-6 && grad < 1e-5, "{scalar} {grad}");
    }

    #[test]
    fn encodes_of_different_sizes_share_one_encoder() {
        let ctx = test_context();
        let mut kernels = LossKernels::new(ctx);
        let sizes = [(37u32, 29u32, 0.2f32), (20, 50, 0.5), (37, 29, 0.2)];
        let mut runs = Vec::new();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for (seed, &(w, h, lambda)) in sizes.iter().enumerate() {
            let (image, target) = test_images(100 + seed as u64, w, h);
            let image_buffer = storage_buffer_from(ctx, "image", &image);
            let target_buffer = storage_buffer_from(ctx, "target", &target);
            let d_image = storage_buffer(ctx, "d_image", image.len() as u64 * 4);
            let loss_out = storage_buffer(ctx, "loss_out", 16);
            kernels.encode(
                ctx,
                &mut Recorder::new(&mut encoder),
                &image_buffer,
                &target_buffer,
                w,
                h,
                lambda,
                &d_image,
                Some(&loss_out),
            );
            runs.push((image, target, d_image, loss_out));
        }
        ctx.queue.submit([encoder.finish()]);
        for ((image, target, d_image, loss_out), &(w, h, lambda)) in runs.iter().zip(&sizes) {
            let gt = reference::unpack_rgba8(target);
            let (loss, _, _, grad) = reference::loss_and_grad(
                &to_f64(image),
                &gt,
                w as usize,
                h as usize,
                f64::from(lambda),
            );
            let gpu_loss = read_buffer::<f32>(ctx, loss_out, 1)[0];
            assert!(
                relative_error(gpu_loss, loss) < 1e-5,
                "{w}x{h}: {gpu_loss} vs {loss}"
            );
            let gpu_grad = read_buffer::<f32>(ctx, d_image, image.len());
            let scale = grad.iter().map(|v| v.abs()).fold(0.0, f64::max);
            for (g, r) in gpu_grad.iter().zip(&grad) {
                assert!((f64::from(*g) - r).abs() < 1e-4 * scale);
            }
        }
    }

    /// Leaving the loss value out (steps that do not read it) changes nothing in the gradient.
    #[test]
    fn gradient_without_the_loss_value_is_the_same() {
        let ctx = test_context();
        let mut kernels = LossKernels::new(ctx);
        let (w, h) = (40, 24);
        let (image, target) = test_images(5, w, h);
        let image_buffer = storage_buffer_from(ctx, "image", &image);
        let target_buffer = storage_buffer_from(ctx, "target", &target);
        let loss_out = storage_buffer(ctx, "loss_out", 16);
        let gradient = |kernels: &mut LossKernels, out: Option<&wgpu::Buffer>| {
            let d_image = storage_buffer(ctx, "d_image", image.len() as u64 * 4);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            let mut rec = Recorder::new(&mut encoder);
            kernels.encode(
                ctx,
                &mut rec,
                &image_buffer,
                &target_buffer,
                w,
                h,
                0.2,
                &d_image,
                out,
            );
            drop(rec);
            ctx.queue.submit([encoder.finish()]);
            read_buffer::<f32>(ctx, &d_image, image.len())
        };
        let with_value = gradient(&mut kernels, Some(&loss_out));
        let without = gradient(&mut kernels, None);
        assert!(with_value.iter().any(|&g| g != 0.0));
        assert_eq!(
            with_value.iter().map(|g| g.to_bits()).collect::<Vec<_>>(),
            without.iter().map(|g| g.to_bits()).collect::<Vec<_>>()
        );
        assert!(read_buffer::<f32>(ctx, &loss_out, 1)[0] > 0.0);
    }

    #[test]
    fn identical_images_have_zero_loss() {
        let ctx = test_context();
        let mut kernels = LossKernels::new(ctx);
        let (w, h) = (37, 29);
        let (_, target) = test_images(5, w, h);
        // The same f32 values the shader unpacks (v / 255 rounded to f32).
        let image: Vec<f32> = reference::unpack_rgba8(&target)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let gpu = run_gpu_loss(ctx, &mut kernels, &image, &target, w, h, 0.2);
        eprintln!("identical: {:?}", gpu.loss);
        assert!(gpu.loss[0].abs() < 1e-6 && gpu.loss[1] == 0.0 && gpu.loss[3] == 0.0);
        assert!((gpu.loss[2] - 1.0).abs() < 1e-6);
        // The gradient of either term is zero here; 1 / N is the size of a single L1 step.
        let step = 1.0 / image.len() as f32;
        let largest = gpu.d_image.iter().map(|v| v.abs()).fold(0.0, f32::max);
        assert!(largest < 1e-4 * step, "{largest}");
        let metrics = kernels.metrics(
            ctx,
            &storage_buffer_from(ctx, "i", &image),
            &storage_buffer_from(ctx, "t", &target),
            w,
            h,
            true,
        );
        assert_eq!((metrics.l1, metrics.psnr), (0.0, f64::INFINITY));
        assert!((metrics.ssim - 1.0).abs() < 1e-6);
    }

    #[test]
    fn metrics_match_reference() {
        for (name, ctx) in [
            ("fast", test_context()),
            ("fallback", test_context_fallback()),
        ] {
            let mut kernels = LossKernels::new(ctx);
            for (seed, (w, h)) in [(7u64, (37u32, 29u32)), (8, (64, 48))] {
                let (mut image, target) = test_images(seed, w, h);
                // f32 (GPU) and f64 (reference) may round a value within an f32 rounding error
                // of a half 255th to different 8-bit levels; keep test values away from those.
                for v in &mut image {
                    let scaled = f64::from(*v) * 255.0;
                    if (scaled - scaled.floor() - 0.5).abs() < 1e-3 {
                        *v += 0.01 / 255.0;
                    }
                }
                let image_buffer = storage_buffer_from(ctx, "image", &image);
                let target_buffer = storage_buffer_from(ctx, "target", &target);
                let gt = reference::unpack_rgba8(&target);
                for quantize in [false, true] {
                    let gpu = kernels.metrics(ctx, &image_buffer, &target_buffer, w, h, quantize);
                    let cpu = reference::image_metrics(
                        &to_f64(&image),
                        &gt,
                        w as usize,
                        h as usize,
                        quantize,
                    );
                    eprintln!("{name} {w}x{h} quantize {quantize}: {gpu:?} vs {cpu:?}");
                    let relative = |a: f64, b: f64| (a - b).abs() / b.abs();
                    assert!(relative(gpu.l1, cpu.l1) < 1e-5, "{name}: l1");
                    assert!(relative(gpu.ssim, cpu.ssim) < 1e-5, "{name}: ssim");
                    assert!((gpu.psnr - cpu.psnr).abs() < 1e-4, "{name}: psnr");
                }
            }
        }
    }

    /// A smooth ground truth (what photographs mostly are) and a render close to it: SSIM near
    /// 1, small local variances, where f32 cancellation in `E[x²] - mu²` matters most.
    #[test]
    fn gpu_loss_matches_reference_on_smooth_images() {
        let ctx = test_context();
        let mut kernels = LossKernels::new(ctx);
        let (w, h) = (64u32, 48u32);
        let mut rng = Pcg32::new(77, 3);
        let target: Vec<u32> = (0..w * h)
            .map(|i| {
                let (x, y) = (f64::from(i % w), f64::from(i / w));
                let channel = |c: f64| {
                    let v = 0.5 + 0.3 * (x / 9.0 + c).sin() * (y / 7.0 - c).cos();
                    (v * 255.0).round() as u32
                };
                channel(0.0) | channel(1.0) << 8 | channel(2.0) << 16 | 0xff00_0000
            })
            .collect();
        let image: Vec<f32> = reference::unpack_rgba8(&target)
            .iter()
            .map(|&g| (g + 0.01 * rng.normal()) as f32)
            .collect();
        let gpu = run_gpu_loss(ctx, &mut kernels, &image, &target, w, h, 0.2);
        let gt = reference::unpack_rgba8(&target);
        let (loss, l1, ssim, d_image) =
            reference::loss_and_grad(&to_f64(&image), &gt, w as usize, h as usize, 0.2);
        let scale = d_image.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let grad_error = gpu
            .d_image
            .iter()
            .zip(&d_image)
            .map(|(&g, &r)| (f64::from(g) - r).abs())
            .fold(0.0, f64::max);
        let errors = [
            relative_error(gpu.loss[0], loss),
            relative_error(gpu.loss[1], l1),
            relative_error(gpu.loss[2], ssim),
            grad_error / scale,
        ];
        eprintln!("smooth: ssim {ssim:.4}, relative errors {errors:?}");
        assert!(ssim > 0.5 && ssim < 0.99, "{ssim}");
        // Small local variances computed as E[x²] - mu² in f32 lose digits (any f32 SSIM does):
        // about 5e-6 on the loss (1 - SSIM is small) and 5e-5 on the gradient here.
        assert!(errors[..3].iter().all(|&e| e < 1e-5), "{errors:?}");
        assert!(errors[3] < 1e-4, "{errors:?}");
    }
}
