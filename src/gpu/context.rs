//! Opening a wgpu device, with or without Bevy.
//!
//! Tests and command-line tools open their own device with [`GpuContext::new_headless`]; inside a
//! Bevy app the same type wraps Bevy's `RenderDevice`/`RenderQueue` (see `crate::app`), so the
//! trainer and the viewer share one device and one set of buffers.

use std::fmt;

/// Optional adapter capabilities the kernels use when present.
///
/// Every kernel has a path that works without them; these flags pick the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct GpuCapabilities {
    /// `atomicAdd` on `f32` in storage buffers (WGSL `atomic<f32>`). Without it, float
    /// accumulation falls back to a compare-and-swap loop on `atomic<u32>`.
    pub float32_atomics: bool,
    /// Subgroup (warp/wave) operations in compute shaders.
    pub subgroups: bool,
    /// GPU timestamp queries (for `splatforge bench`).
    pub timestamps: bool,
    /// Smallest subgroup size the adapter may use (0 when subgroups are absent).
    pub subgroup_min_size: u32,
    /// Largest subgroup size the adapter may use (0 when subgroups are absent).
    pub subgroup_max_size: u32,
}

impl GpuCapabilities {
    /// The capabilities granted by a device with these features.
    pub fn from_features(features: wgpu::Features, info: &wgpu::AdapterInfo) -> Self {
        let subgroups = features.contains(wgpu::Features::SUBGROUP);
        Self {
            float32_atomics: features.contains(wgpu::Features::SHADER_FLOAT32_ATOMIC),
            subgroups,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY)
                && features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS),
            subgroup_min_size: if subgroups { info.subgroup_min_size } else { 0 },
            subgroup_max_size: if subgroups { info.subgroup_max_size } else { 0 },
        }
    }

    /// The same capabilities with the optional fast paths switched off (to test fallbacks).
    pub fn without_fast_paths(self) -> Self {
        Self {
            float32_atomics: false,
            subgroups: false,
            subgroup_min_size: 0,
            subgroup_max_size: 0,
            ..self
        }
    }
}

/// The features splatforge asks for when the adapter offers them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_FLOAT32_ATOMIC
        | wgpu::Features::SUBGROUP
        | wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        // Bevy's renderer on this device (editor, game plugin) builds pipelines with
        // read-write storage textures of formats only the adapter-specific format features
        // allow (depth mip generation, SSAO); Bevy's own device asks for them too.
        | wgpu::Features::TEXTURE_ADAPTER_SPECIFIC_FORMAT_FEATURES
}

/// The features a device opened by splatforge asks for: every feature the adapter has, as Bevy's
/// renderer does (the same device serves Bevy's renderer, whose passes need some of them, e.g.
/// storage access to `R16Float` textures), except the experimental ones and, on discrete GPUs,
/// `MAPPABLE_PRIMARY_BUFFERS` (which slows them down). [`wanted_features`] are among them
/// whenever the adapter has them.
pub fn device_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let mut features = adapter.features() - wgpu::Features::all_experimental_mask();
    if adapter.get_info().device_type == wgpu::DeviceType::DiscreteGpu {
        features.remove(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS);
    }
    features
}

/// The limits splatforge asks for: the adapter's own, so big clouds fit in one binding where the
/// hardware allows it (software Vulkan caps a storage binding at 128 MiB).
pub fn wanted_limits(adapter: &wgpu::Adapter) -> wgpu::Limits {
    adapter.limits()
}

/// Why no GPU device could be opened.
#[derive(Debug)]
pub enum GpuError {
    /// No adapter at all: no Vulkan/Metal/DX12 driver is installed.
    NoAdapter(String),
    /// An adapter exists but refused to open a device.
    RequestDevice(String),
    /// A kernel's shader did not preprocess or compile (a bug in splatforge or in the driver's
    /// compiler; the message names the shader).
    Shader(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoAdapter(detail) => write!(
                f,
                "no GPU adapter found ({detail}). splatforge needs a Vulkan, Metal or DX12 \
                 driver: install your GPU vendor's driver, or on a machine without a GPU the \
                 software Vulkan driver (Debian/Ubuntu: `apt install mesa-vulkan-drivers`, and \
                 set XDG_RUNTIME_DIR if it is unset)"
            ),
            GpuError::RequestDevice(detail) => {
                write!(f, "the GPU adapter refused to open a device: {detail}")
            }
            GpuError::Shader(detail) => write!(f, "a GPU kernel failed to compile: {detail}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// Options for opening a device without Bevy.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Disable the optional fast paths (float atomics, subgroups) even where the adapter has
    /// them, so tests exercise the fallbacks.
    pub force_fallbacks: bool,
}

/// A wgpu device, its queue and what it can do. Cheap to clone (wgpu handles are shared).
#[derive(Clone)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
    pub capabilities: GpuCapabilities,
    pub limits: wgpu::Limits,
    /// The adapter and instance the device came from, when splatforge opened it (Bevy needs
    /// them to adopt the device; windows need the instance to create surfaces).
    pub adapter: Option<wgpu::Adapter>,
    pub instance: Option<wgpu::Instance>,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.adapter_info.name)
            .field("backend", &self.adapter_info.backend)
            .field("capabilities", &self.capabilities)
            .finish()
    }
}

impl GpuContext {
    /// Opens the best available adapter (a discrete GPU where there is one) without Bevy.
    pub fn new_headless(options: &GpuOptions) -> Result<Self, GpuError> {
        pollster::block_on(Self::open(options))
    }

    async fn open(options: &GpuOptions) -> Result<Self, GpuError> {
        let instance = Self::instance();
        let adapter = Self::request_adapter(&instance).await?;
        let adapter_info = adapter.get_info();
        let features = device_features(&adapter);
        let limits = wanted_limits(&adapter);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("splatforge"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                // Small memory blocks: buffers past 64 MiB (the cloud's larger arrays, the
                // intersection lists) get memory of their own, returned to the driver when
                // freed, instead of 256 MiB blocks that stay reserved after densification grows
                // the cloud (nvidia-smi's peak on bench_tabletop: BENCHMARKS.md, "Memory").
                memory_hints: wgpu::MemoryHints::MemoryUsage,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        let mut capabilities = GpuCapabilities::from_features(device.features(), &adapter_info);
        if options.force_fallbacks {
            capabilities = capabilities.without_fast_paths();
        }
        Ok(Self {
            device,
            queue,
            adapter_info,
            capabilities,
            limits,
            adapter: Some(adapter),
            instance: Some(instance),
        })
    }

    /// The best adapter of `instance` (a discrete GPU where there is one).
    pub async fn request_adapter(instance: &wgpu::Instance) -> Result<wgpu::Adapter, GpuError> {
        instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))
    }

    /// The wgpu instance: backends from `WGPU_BACKEND` when set, else the primary ones.
    pub fn instance() -> wgpu::Instance {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            descriptor.backends = wgpu::Backends::PRIMARY;
        }
        wgpu::Instance::new(descriptor)
    }

    /// Wraps a device opened elsewhere (Bevy's `RenderDevice`/`RenderQueue`).
    pub fn from_parts(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: wgpu::AdapterInfo,
    ) -> Self {
        let capabilities = GpuCapabilities::from_features(device.features(), &adapter_info);
        let limits = device.limits();
        Self {
            device,
            queue,
            adapter_info,
            capabilities,
            limits,
            adapter: None,
            instance: None,
        }
    }

    /// A one-line description: adapter name, backend and granted capabilities.
    pub fn describe(&self) -> String {
        let c = &self.capabilities;
        format!(
            "{} ({:?}, {:?}); float32 atomics: {}, subgroups: {}{}, timestamps: {}",
            self.adapter_info.name,
            self.adapter_info.backend,
            self.adapter_info.device_type,
            yes_no(c.float32_atomics),
            yes_no(c.subgroups),
            if c.subgroups {
                format!(" ({}..{})", c.subgroup_min_size, c.subgroup_max_size)
            } else {
                String::new()
            },
            yes_no(c.timestamps),
        )
    }

    /// Largest storage buffer binding, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }

    /// Blocks until all submitted work has finished.
    pub fn wait_idle(&self) {
        // A device-lost error surfaces at the next submission; nothing useful to do here.
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use crate::gpu::{self, ShaderDefs, test_util};

    /// Sums 1..=n with the float-atomic path or the compare-and-swap fallback, the pattern every
    /// gradient-accumulating kernel uses.
    const ATOMIC_SUM: &str = r#"
#ifdef FLOAT_ATOMICS
@group(0) @binding(0) var<storage, read_write> total: array<atomic<f32>>;
fn add_total(v: f32) { atomicAdd(&total[0], v); }
#else
@group(0) @binding(0) var<storage, read_write> total: array<atomic<u32>>;
fn add_total(v: f32) {
    var old = atomicLoad(&total[0]);
    loop {
        let swapped = atomicCompareExchangeWeak(&total[0], old, bitcast<u32>(bitcast<f32>(old) + v));
        if swapped.exchanged { break; }
        old = swapped.old_value;
    }
}
#endif
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < 1000u { add_total(f32(id.x + 1u)); }
}
"#;

    fn run_atomic_sum(ctx: &super::GpuContext) -> f32 {
        let defs = ShaderDefs::for_capabilities(&ctx.capabilities);
        let source = gpu::shader::preprocess_text("atomic_sum", ATOMIC_SUM, &defs).unwrap();
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: None,
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let total = gpu::storage_buffer(ctx, "total", 4);
        let bind = gpu::bind_buffers(ctx, "sum", &pipeline, 0, &[&total]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            gpu::dispatch_1d(ctx, &mut pass, 1000, 64);
        }
        ctx.queue.submit([encoder.finish()]);
        gpu::read_buffer::<f32>(ctx, &total, 1)[0]
    }

    #[test]
    fn float_atomics_and_fallback_sum_exactly() {
        // 1 + 2 + ... + 1000 = 500500 is exact in f32 whatever the order.
        let fast = test_util::test_context();
        let fallback = test_util::test_context_fallback();
        assert!(!fallback.capabilities.float32_atomics);
        assert_eq!(run_atomic_sum(fast), 500_500.0);
        assert_eq!(run_atomic_sum(fallback), 500_500.0);
        eprintln!("device: {}", fast.describe());
    }
}
