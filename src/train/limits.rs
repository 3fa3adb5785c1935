//! Sizes derived from the user's input, checked before anything of that size is allocated: the
//! training image size after `-r`, the number of initial Gaussians and the Gaussian capacity.
//! Each check compares against the device's binding limits and the machine's available memory
//! and, when it fails, names the setting to change.
//!
//! Without these, a typo such as `-r 100000` or `model.random_init_points=4294967295` aborts
//! the process with "memory allocation failed", or runs on for minutes before the GPU refuses.

use std::path::Path;

use crate::dataset::Dataset;
use crate::gpu::GpuContext;
use crate::model::{ParamGroup, max_gaussians, widest_group_bytes};

/// Bytes of GPU memory per pixel in one buffer of a render: the planar RGB float image (the
/// largest per-pixel buffer of the rasterizer and of the loss gradient).
pub const RENDER_BYTES_PER_PIXEL: u64 = 3 * 4;
/// Bytes of CPU memory per pixel of a decoded training image (RGBA8, kept until uploaded).
pub const IMAGE_BYTES_PER_PIXEL: u64 = 4;
/// CPU memory per initial Gaussian while it is prepared: the point (position and colour), its
/// parameters at SH degree 3 and the neighbour search of the initial scales.
pub const INIT_BYTES_PER_POINT: u64 = 512;

/// Memory the operating system says is available to this process, in bytes (`None` where it
/// cannot tell; then only the device limits are checked).
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo.lines().find_map(|line| {
        let kib: u64 = line
            .strip_prefix("MemAvailable:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        kib.checked_mul(1024)
    })
}

/// `1.5 GiB`, `640 MiB`: a byte count for messages.
pub fn human_bytes(bytes: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", (b / MIB).max(1.0))
    }
}

/// The training images of `dataset` at their loaded size: each must fit the device's largest
/// storage binding as a render (`max_binding` bytes), and all of them decoded must fit the
/// available memory. `setting` names what chose the size (e.g. `model.resolution = 100000`).
pub fn check_images(
    dataset: &Dataset,
    setting: &str,
    max_binding: u64,
    available: Option<u64>,
) -> Result<(), String> {
    let Some(largest) = dataset
        .views
        .iter()
        .max_by_key(|v| u64::from(v.camera.width) * u64::from(v.camera.height))
    else {
        return Ok(());
    };
    let (w, h) = (largest.camera.width, largest.camera.height);
    let render = (u64::from(w) * u64::from(h)).saturating_mul(RENDER_BYTES_PER_PIXEL);
    if render > max_binding {
        return Err(format!(
            "{setting}: the training images would be up to {w}x{h} pixels ({}); a render of \
             that size needs {} in one GPU buffer, and this GPU allows {}: choose a smaller \
             resolution (-r 2, 4 or 8, or a width in pixels)",
            largest.name,
            human_bytes(render),
            human_bytes(max_binding)
        ));
    }
    let decoded: u64 = dataset
        .views
        .iter()
        .map(|v| {
            (u64::from(v.camera.width) * u64::from(v.camera.height))
                .saturating_mul(IMAGE_BYTES_PER_PIXEL)
        })
        .fold(0u64, u64::saturating_add);
    if let Some(available) = available
        && decoded > available
    {
        return Err(format!(
            "{setting}: the {} images at up to {w}x{h} pixels need {} of memory once decoded, \
             and {} is available: choose a smaller resolution",
            dataset.views.len(),
            human_bytes(decoded),
            human_bytes(available)
        ));
    }
    Ok(())
}

/// `count` Gaussians of SH degree `sh_degree` must fit the device's storage bindings (each
/// parameter group is one binding) and, while they are prepared on the CPU, the available
/// memory. `setting` names where the count comes from.
pub fn check_gaussian_count(
    gpu: &GpuContext,
    count: u64,
    sh_degree: u32,
    setting: &str,
    available: Option<u64>,
) -> Result<(), String> {
    let max = u64::from(max_gaussians(gpu, sh_degree));
    if count > max {
        let group = ParamGroup::ALL
            .into_iter()
            .max_by_key(|g| g.width(sh_degree))
            .map(ParamGroup::name)
            .unwrap_or("f_rest");
        return Err(format!(
            "{setting}: {count} Gaussians at SH degree {sh_degree} would need {} for their \
             {group} parameters in one GPU buffer, and this GPU allows {} ({max} Gaussians)",
            human_bytes(count.saturating_mul(widest_group_bytes(sh_degree))),
            human_bytes(gpu.max_binding_bytes().min(gpu.limits.max_buffer_size)),
        ));
    }
    let needed = count.saturating_mul(INIT_BYTES_PER_POINT);
    if let Some(available) = available
        && needed > available
    {
        return Err(format!(
            "{setting}: preparing {count} Gaussians needs about {} of memory, and {} is \
             available",
            human_bytes(needed),
            human_bytes(available)
        ));
    }
    Ok(())
}

/// The setting that chose the image size, for messages: `model.resolution = N` (flag `-r`).
pub fn resolution_setting(resolution: i32, source: &Path) -> String {
    format!(
        "model.resolution = {resolution} (-r) for {}",
        source.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DatasetOptions;
    use crate::gpu::test_util::test_context;

    fn demo(resolution: i32) -> Dataset {
        let mut options =
            DatasetOptions::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
        options.resolution = resolution;
        Dataset::load(&options).unwrap()
    }

    #[test]
    fn oversized_images_are_refused_naming_the_setting() {
        let setting = "model.resolution = 100000 (-r)";
        // The demo scene (320x240) upscaled to 100000 pixels wide: 75000 rows.
        let huge = demo(100_000);
        assert_eq!(huge.views[0].camera.width, 100_000);
        let error = check_images(&huge, setting, 128 << 20, None).unwrap_err();
        assert!(error.starts_with(setting), "{error}");
        assert!(error.contains("100000x75000"), "{error}");
        assert!(error.contains("128 MiB"), "{error}");
        // Within the binding limit but beyond the memory: 40 images of 2000x1500.
        let big = demo(2000);
        let error = check_images(&big, setting, 1 << 40, Some(100 << 20)).unwrap_err();
        assert!(
            error.contains("40 images") && error.contains("memory"),
            "{error}"
        );
        // The demo as shipped fits.
        check_images(&demo(-1), setting, 128 << 20, Some(1 << 30)).unwrap();
    }

    #[test]
    fn too_many_gaussians_are_refused_naming_the_setting() {
        let gpu = test_context();
        let setting = "model.random_init_points";
        let error = check_gaussian_count(gpu, u64::from(u32::MAX), 3, setting, None).unwrap_err();
        assert!(
            error.starts_with(setting) && error.contains("f_rest"),
            "{error}"
        );
        let error = check_gaussian_count(gpu, 3_000_000, 0, setting, Some(1 << 30)).unwrap_err();
        assert!(error.contains("memory"), "{error}");
        check_gaussian_count(gpu, 100_000, 3, setting, Some(1 << 30)).unwrap();
    }

    #[test]
    fn available_memory_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available_memory().is_some_and(|m| m > 0));
        }
    }

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_bytes(640 << 20), "640 MiB");
        assert_eq!(human_bytes(10), "1 MiB");
    }
}
