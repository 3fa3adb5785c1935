//! Plain wgpu, no Bevy: device setup, buffer helpers, shader loading and one wrapper per shader
//! family. Everything here can be tested without an App (see the tests next to each kernel).
//!
//! Kernel families (one WGSL file each under `shaders/`, one Rust wrapper each here):
//! - [`scan`]: exclusive prefix sums;
//! - [`sort`]: key/value radix sort;
//! - [`raster`]: the differentiable Gaussian rasterizer (projection, binning, rasterization and
//!   their backward passes);
//! - [`loss`]: L1 + D-SSIM loss with its gradient;
//! - [`adam`]: the Adam optimiser step;
//! - [`densify`]: clone/split/prune with stream compaction.

#[cfg(feature = "train")]
pub mod adam;
pub mod buffers;
pub mod context;
#[cfg(feature = "train")]
pub mod densify;
#[cfg(feature = "train")]
pub mod loss;
pub mod pipeline;
pub mod raster;
pub mod readback;
pub mod recorder;
pub mod scan;
pub mod shader;
pub mod sort;
pub mod timing;

pub use buffers::*;
pub use context::{GpuCapabilities, GpuContext, GpuError, GpuOptions};
pub use pipeline::{build_kernels, compute_pipeline};
pub use recorder::Recorder;
pub use shader::ShaderDefs;

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use std::sync::OnceLock;

    /// One shared device for all unit tests of the process (opening lavapipe is slow and each
    /// device costs memory). Tests needing the fallback paths use [`test_context_fallback`].
    pub fn test_context() -> &'static GpuContext {
        static CTX: OnceLock<GpuContext> = OnceLock::new();
        CTX.get_or_init(|| {
            GpuContext::new_headless(&GpuOptions::default())
                .unwrap_or_else(|e| panic!("GPU tests need a device: {e}"))
        })
    }

    /// Held while a test drives a Bevy app on [`test_context`]'s device: Bevy installs its
    /// device-error and device-lost handlers on the device itself, so two apps on one device
    /// at the same time would receive each other's events.
    pub fn one_app_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A device with the float-atomic and subgroup fast paths switched off.
    pub fn test_context_fallback() -> &'static GpuContext {
        static CTX: OnceLock<GpuContext> = OnceLock::new();
        CTX.get_or_init(|| {
            GpuContext::new_headless(&GpuOptions {
                force_fallbacks: true,
            })
            .unwrap_or_else(|e| panic!("GPU tests need a device: {e}"))
        })
    }
}
