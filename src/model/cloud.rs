//! The Gaussian cloud on the GPU: one storage buffer per parameter group, sized by capacity.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Gaussians, ParamGroup};
use crate::gpu::{self, GpuContext};

/// Six GPU buffers, one per [`ParamGroup`], each holding `capacity * width` floats.
///
/// The same shape serves the parameters, their gradients and the two Adam moments.
///
/// Cloning copies the buffer handles, not the data (wgpu buffers are shared references).
#[derive(Clone)]
pub struct ParamBuffers {
    pub capacity: u32,
    pub sh_degree: u32,
    buffers: [wgpu::Buffer; 6],
    /// Unique per allocation, increasing (see [`GaussianCloud::generation`]).
    generation: u64,
}

/// Source of [`ParamBuffers`] generations: every allocation takes the next number.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Bytes per Gaussian of the widest parameter group (`f_rest`, or the quaternion at degree 0):
/// the group whose buffer reaches a binding limit first.
pub fn widest_group_bytes(sh_degree: u32) -> u64 {
    ParamGroup::ALL
        .iter()
        .map(|g| g.width(sh_degree) as u64 * 4)
        .max()
        .unwrap_or(4)
}

/// Bytes of a vec4<f32>: every parameter buffer's size is a multiple of it.
const VEC4_BYTES: u64 = 16;

/// The most Gaussians of SH degree `sh_degree` whose parameter buffers this device can bind
/// (each group is one storage binding).
pub fn max_gaussians(ctx: &GpuContext, sh_degree: u32) -> u32 {
    let max = ctx.max_binding_bytes().min(ctx.limits.max_buffer_size);
    // Less the padding to whole vec4s (`ParamBuffers::zeroed`).
    u32::try_from(max.saturating_sub(VEC4_BYTES) / widest_group_bytes(sh_degree))
        .unwrap_or(u32::MAX)
}

impl ParamBuffers {
    /// Zero-filled buffers for `capacity` Gaussians, each padded to whole vec4s (the Adam
    /// kernel reads and writes a group as vec4s).
    pub fn zeroed(ctx: &GpuContext, label: &str, capacity: u32, sh_degree: u32) -> Self {
        let buffers = ParamGroup::ALL.map(|group| {
            let floats = u64::from(capacity) * group.width(sh_degree) as u64;
            let bytes = (floats * 4).div_ceil(VEC4_BYTES) * VEC4_BYTES;
            gpu::storage_buffer(ctx, &format!("{label}.{}", group.name()), bytes)
        });
        Self {
            capacity,
            sh_degree,
            buffers,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The buffer of one group.
    pub fn get(&self, group: ParamGroup) -> &wgpu::Buffer {
        &self.buffers[group.index()]
    }

    /// All six buffers in [`ParamGroup::ALL`] order.
    pub fn all(&self) -> &[wgpu::Buffer; 6] {
        &self.buffers
    }

    /// Uploads `gaussians` into the first `gaussians.len()` slots.
    pub fn upload(&self, ctx: &GpuContext, gaussians: &Gaussians) {
        assert!(gaussians.len() <= self.capacity as usize);
        assert_eq!(gaussians.sh_degree, self.sh_degree);
        for group in ParamGroup::ALL {
            gpu::write_buffer(ctx, self.get(group), 0, gaussians.group(group));
        }
    }

    /// Downloads the first `len` Gaussians (blocking).
    pub fn download(&self, ctx: &GpuContext, len: usize) -> Gaussians {
        let mut out = Gaussians::empty(self.sh_degree);
        for group in ParamGroup::ALL {
            let w = group.width(self.sh_degree);
            *out.group_mut(group) = gpu::read_buffer(ctx, self.get(group), len * w);
        }
        out
    }

    /// Clears every buffer to zero (encoded, runs at submission).
    pub fn clear(&self, encoder: &mut wgpu::CommandEncoder) {
        for buffer in &self.buffers {
            encoder.clear_buffer(buffer, 0, None);
        }
    }

    /// Bytes of GPU memory held.
    pub fn bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size()).sum()
    }

    /// Frees the GPU memory now (once submitted work using it has finished) rather than when
    /// the last handle is dropped; the buffers must not be used afterwards.
    pub fn destroy(&self) {
        for buffer in &self.buffers {
            buffer.destroy();
        }
    }
}

/// The live Gaussian parameters on the GPU: what the trainer optimises and the viewer draws.
///
/// A renderer drawing the live cloud binds `params` once and rebinds when
/// [`GaussianCloud::generation`] changes (densification and restores replace the buffers);
/// `len` may change at the same time.
///
/// Cloning copies the buffer handles (the game plugin draws the trainer's cloud this way).
#[derive(Clone)]
pub struct GaussianCloud {
    /// Number of live Gaussians (the first `len` slots of every buffer).
    pub len: u32,
    pub params: ParamBuffers,
}

impl GaussianCloud {
    /// Uploads `gaussians` into buffers with room for `capacity` (at least `gaussians.len()`).
    pub fn from_gaussians(ctx: &GpuContext, gaussians: &Gaussians, capacity: u32) -> Self {
        let len = gaussians.len() as u32;
        let params = ParamBuffers::zeroed(ctx, "gaussians", capacity.max(len), gaussians.sh_degree);
        params.upload(ctx, gaussians);
        Self { len, params }
    }

    /// Downloads the live Gaussians (blocking).
    pub fn download(&self, ctx: &GpuContext) -> Gaussians {
        self.params.download(ctx, self.len as usize)
    }

    pub fn sh_degree(&self) -> u32 {
        self.params.sh_degree
    }

    pub fn capacity(&self) -> u32 {
        self.params.capacity
    }

    /// Identifies the parameter buffers: it changes (increases) whenever they are replaced
    /// by new ones, so a bind group made for one generation stays valid while it holds.
    pub fn generation(&self) -> u64 {
        self.params.generation
    }
}

/// Adam's fixed hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamHyper {
    /// The reference's values: betas (0.9, 0.999), eps 1e-15 (REFERENCE.md).
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-15,
        }
    }
}

/// Adam's state for the whole cloud: both moments per parameter, and the per-group step counts
/// used for bias correction (the reference keeps one count per parameter group).
pub struct OptimizerState {
    pub exp_avg: ParamBuffers,
    pub exp_avg_sq: ParamBuffers,
    /// Adam steps taken per [`ParamGroup`], in [`ParamGroup::ALL`] order.
    pub steps: [u32; 6],
}

impl OptimizerState {
    pub fn zeroed(ctx: &GpuContext, capacity: u32, sh_degree: u32) -> Self {
        Self {
            exp_avg: ParamBuffers::zeroed(ctx, "adam.exp_avg", capacity, sh_degree),
            exp_avg_sq: ParamBuffers::zeroed(ctx, "adam.exp_avg_sq", capacity, sh_degree),
            steps: [0; 6],
        }
    }
}

/// Densification statistics, accumulated over the steps between two densifications
/// (REFERENCE.md, "Densify and prune"). One value per Gaussian slot in each buffer.
pub struct DensifyStats {
    pub capacity: u32,
    /// Sum over views where the Gaussian was visible of |dL/d(mean2d)| in NDC units (f32).
    pub grad_norm_sum: wgpu::Buffer,
    /// Number of views in which the Gaussian was visible (u32).
    pub visible_count: wgpu::Buffer,
    /// Largest screen radius in pixels seen while visible (f32).
    pub max_radius: wgpu::Buffer,
}

impl DensifyStats {
    pub fn zeroed(ctx: &GpuContext, capacity: u32) -> Self {
        let bytes = u64::from(capacity) * 4;
        Self {
            capacity,
            grad_norm_sum: gpu::storage_buffer(ctx, "densify.grad_norm_sum", bytes),
            visible_count: gpu::storage_buffer(ctx, "densify.visible_count", bytes),
            max_radius: gpu::storage_buffer(ctx, "densify.max_radius", bytes),
        }
    }

    /// Frees the GPU memory now (see [`ParamBuffers::destroy`]).
    pub fn destroy(&self) {
        for buffer in [&self.grad_norm_sum, &self.visible_count, &self.max_radius] {
            buffer.destroy();
        }
    }

    /// Resets every accumulator to zero (encoded).
    pub fn clear(&self, encoder: &mut wgpu::CommandEncoder) {
        for buffer in [&self.grad_norm_sum, &self.visible_count, &self.max_radius] {
            encoder.clear_buffer(buffer, 0, None);
        }
    }
}
