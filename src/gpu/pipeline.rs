//! Compute pipeline creation from embedded, preprocessed WGSL.

use super::{GpuContext, ShaderDefs, shader};

/// Compiles `entry_point` of the embedded shader `file`, specialised by `defs`, with WGSL
/// `override` constants set from `constants`. The bind group layouts are derived from the shader
/// (`pipeline.get_bind_group_layout(i)`).
///
/// Panics if the shader does not preprocess or compile: shaders are part of the program, so that
/// is a bug in splatforge, caught by the tests that build every pipeline.
pub fn compute_pipeline(
    ctx: &GpuContext,
    file: &str,
    entry_point: &str,
    defs: &ShaderDefs,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let source = shader::preprocess(file, defs).unwrap_or_else(|e| panic!("{e}"));
    let label = format!("{file}:{entry_point}");
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some(&label),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    };
    let module = if shader_bounds_checks() {
        ctx.device.create_shader_module(descriptor)
    } else {
        // SAFETY: splatforge's kernels guard every index they compute against the sizes they
        // are given, and each kernel is tested against a CPU reference on random and edge-case
        // inputs. wgpu's injected bounds checks would only turn an indexing bug into silently
        // clamped reads, at a cost in every inner loop; set SPLATFORGE_SHADER_CHECKS=1 to have
        // them back while debugging.
        unsafe {
            ctx.device
                .create_shader_module_trusted(descriptor, wgpu::ShaderRuntimeChecks::unchecked())
        }
    };
    ctx.device
        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(entry_point),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                // Kernels initialise the workgroup memory they read; skipping the implicit
                // zeroing saves a pass over shared memory per workgroup.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        })
}

/// Whether kernels are compiled with wgpu's runtime bounds checks (`SPLATFORGE_SHADER_CHECKS=1`).
pub fn shader_bounds_checks() -> bool {
    static CHECKS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHECKS.get_or_init(|| {
        std::env::var("SPLATFORGE_SHADER_CHECKS").is_ok_and(|v| !v.is_empty() && v != "0")
    })
}
