//! Compute pipeline creation from embedded, preprocessed WGSL.
//!
//! Kernel wrappers create their pipelines with [`compute_pipeline`] in their constructors;
//! whoever builds a set of kernels wraps the constructors in [`build_kernels`], which turns a
//! shader that fails to preprocess or compile into a [`GpuError::Shader`] instead of a panic.
//!
//! Inside [`build_kernels`] each shader is parsed and validated with naga (wgpu's own shader
//! compiler) before it reaches the device. (A device error scope would catch the same errors,
//! but scopes are per thread and the trainer's startup runs on Bevy's task pool threads, where
//! other scopes interleave.)

use std::cell::RefCell;

use super::{GpuContext, GpuError, ShaderDefs, shader};

thread_local! {
    /// Shader errors met while [`build_kernels`] runs on this thread (`None` outside it).
    static SHADER_ERRORS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `build` (kernel constructors) and returns its result, or the first shader error met
/// meanwhile (a preprocessing, parse or validation error, naming the shader).
pub fn build_kernels<T>(_ctx: &GpuContext, build: impl FnOnce() -> T) -> Result<T, GpuError> {
    let outer = SHADER_ERRORS.replace(Some(Vec::new()));
    let built = build();
    let errors = SHADER_ERRORS.replace(outer).unwrap_or_default();
    match errors.into_iter().next() {
        Some(error) => Err(GpuError::Shader(error)),
        None => Ok(built),
    }
}

/// Records a shader error inside [`build_kernels`]; outside it, panics with it (shaders are
/// part of the program: that is a bug in splatforge, caught by the tests that build every
/// pipeline).
fn shader_error(error: String) {
    let recorded = SHADER_ERRORS.with_borrow_mut(|errors| match errors {
        Some(errors) => {
            errors.push(error.clone());
            true
        }
        None => false,
    });
    if !recorded {
        panic!("{error}");
    }
}

/// Whether [`build_kernels`] is collecting errors on this thread.
fn collecting() -> bool {
    SHADER_ERRORS.with_borrow(Option::is_some)
}

/// Parses and validates WGSL with naga, as the device would; the error names `label`.
fn validate_wgsl(label: &str, source: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| e.emit_to_string_with_path(source, label))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string_with_path(source, label))?;
    Ok(())
}

/// A trivial kernel standing in for one that failed (its error is on record).
fn placeholder(entry_point: &str) -> String {
    format!("@compute @workgroup_size(1) fn {entry_point}() {{}}")
}

/// Compiles `entry_point` of the embedded shader `file`, specialised by `defs`, with WGSL
/// `override` constants set from `constants`. The bind group layouts are derived from the shader
/// (`pipeline.get_bind_group_layout(i)`).
///
/// Inside [`build_kernels`], a shader that does not preprocess or compile makes that function
/// return the error (the pipeline returned here is then a placeholder). Outside it, this
/// panics: shaders are part of the program, so that is a bug in splatforge, caught by the
/// tests that build every pipeline.
pub fn compute_pipeline(
    ctx: &GpuContext,
    file: &str,
    entry_point: &str,
    defs: &ShaderDefs,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let label = format!("{file}:{entry_point}");
    match shader::preprocess(file, defs) {
        Ok(source) => compute_pipeline_from_wgsl(ctx, &label, &source, entry_point, constants),
        Err(error) => {
            shader_error(error.to_string());
            compute_pipeline_from_wgsl(ctx, &label, &placeholder(entry_point), entry_point, &[])
        }
    }
}

/// Compiles `entry_point` of WGSL `source` (already preprocessed); `label` names it in errors.
pub fn compute_pipeline_from_wgsl(
    ctx: &GpuContext,
    label: &str,
    source: &str,
    entry_point: &str,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let mut source = std::borrow::Cow::Borrowed(source);
    let mut constants = constants;
    if collecting()
        && let Err(error) = validate_wgsl(label, &source)
    {
        shader_error(error);
        // (The stand-in declares no override constants.)
        source = placeholder(entry_point).into();
        constants = &[];
    }
    let descriptor = wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(source),
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
            label: Some(label),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::test_context;

    #[test]
    fn a_shader_that_does_not_compile_is_an_error_naming_it() {
        let ctx = test_context();
        let broken = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5 +; }";
        let result = build_kernels(ctx, || {
            compute_pipeline_from_wgsl(ctx, "broken.wgsl:main", broken, "main", &[])
        });
        let message = result.expect_err("an error").to_string();
        assert!(message.contains("broken.wgsl"), "{message}");
        assert!(message.contains("failed to compile"), "{message}");

        // A missing embedded file (a preprocessing error) too.
        let result = build_kernels(ctx, || {
            compute_pipeline(ctx, "nope.wgsl", "main", &ShaderDefs::new(), &[])
        });
        let message = result.expect_err("an error").to_string();
        assert!(message.contains("nope.wgsl"), "{message}");

        // The device is still usable and good shaders still build.
        let good = "@compute @workgroup_size(1) fn main() {}";
        build_kernels(ctx, || {
            compute_pipeline_from_wgsl(ctx, "good.wgsl:main", good, "main", &[])
        })
        .expect("a valid shader compiles");
    }
}
