//! Buffer helpers: storage buffers, uploads, blocking readbacks (for tests and tools) and
//! 1-D dispatch sizes that respect the 65,535-workgroups-per-dimension limit.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::GpuContext;

/// Usage of every storage buffer: bindable, and copyable both ways (uploads, readbacks,
/// growing by copy).
pub const STORAGE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// wgpu rejects zero-sized bindings; empty arrays get this many bytes instead.
pub const MIN_BUFFER_BYTES: u64 = 16;

/// A zero-initialised storage buffer of `bytes` bytes (at least [`MIN_BUFFER_BYTES`]).
pub fn storage_buffer(ctx: &GpuContext, label: &str, bytes: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: padded_size(bytes),
        usage: STORAGE_USAGE,
        mapped_at_creation: false,
    })
}

/// A storage buffer holding `data` (padded to at least [`MIN_BUFFER_BYTES`]).
pub fn storage_buffer_from<T: Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> wgpu::Buffer {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    if (bytes.len() as u64) < MIN_BUFFER_BYTES || !bytes.len().is_multiple_of(4) {
        let mut padded = bytes.to_vec();
        padded.resize(padded_size(bytes.len() as u64) as usize, 0);
        return ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &padded,
                usage: STORAGE_USAGE,
            });
    }
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytes,
            usage: STORAGE_USAGE,
        })
}

/// A uniform buffer holding one `T` (which must follow WGSL's uniform layout rules).
pub fn uniform_buffer_from<T: Pod>(ctx: &GpuContext, label: &str, value: &T) -> wgpu::Buffer {
    ctx.device
        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::bytes_of(value),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
}

/// Rounds a byte count up to a multiple of 4 and at least [`MIN_BUFFER_BYTES`].
pub fn padded_size(bytes: u64) -> u64 {
    bytes.max(MIN_BUFFER_BYTES).div_ceil(4) * 4
}

/// Copies the first `len` elements of `buffer` back to the CPU, blocking until the GPU is done.
///
/// For tests, tools and rare events (saving, densification counts); never call it per step in
/// the training loop.
pub fn read_buffer<T: Pod>(ctx: &GpuContext, buffer: &wgpu::Buffer, len: usize) -> Vec<T> {
    read_buffer_range(ctx, buffer, 0, len)
}

/// Like [`read_buffer`], starting at element `first`.
pub fn read_buffer_range<T: Pod>(
    ctx: &GpuContext,
    buffer: &wgpu::Buffer,
    first: usize,
    len: usize,
) -> Vec<T> {
    let element = std::mem::size_of::<T>() as u64;
    let bytes = len as u64 * element;
    if bytes == 0 {
        return Vec::new();
    }
    let staging_bytes = bytes.div_ceil(4) * 4;
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("readback staging"),
        size: staging_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("readback"),
        });
    encoder.copy_buffer_to_buffer(buffer, first as u64 * element, &staging, 0, staging_bytes);
    ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(..);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        let _ = sender.send(result);
    });
    ctx.wait_idle();
    receiver
        .recv()
        .expect("map_async callback runs during poll")
        .expect("mapping a readback buffer failed");
    let data = slice.get_mapped_range();
    let out = bytemuck::cast_slice::<u8, T>(&data[..bytes as usize]).to_vec();
    drop(data);
    staging.unmap();
    out
}

/// Writes `data` into `buffer` at element offset `first` (through the queue, ordered before the
/// next submission).
pub fn write_buffer<T: Pod>(ctx: &GpuContext, buffer: &wgpu::Buffer, first: usize, data: &[T]) {
    if data.is_empty() {
        return;
    }
    let offset = (first * std::mem::size_of::<T>()) as u64;
    let bytes: &[u8] = bytemuck::cast_slice(data);
    if bytes.len().is_multiple_of(4) {
        ctx.queue.write_buffer(buffer, offset, bytes);
    } else {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().div_ceil(4) * 4, 0);
        ctx.queue.write_buffer(buffer, offset, &padded);
    }
}

/// Workgroup counts `(x, y, 1)` covering `workgroups` groups in a 1-D kernel, folded into two
/// dimensions when it exceeds the per-dimension limit. Kernels recover the linear group index
/// with `linear_workgroup_id` from `shaders/common.wgsl`.
pub fn dispatch_size_1d(workgroups: u32, max_per_dimension: u32) -> (u32, u32, u32) {
    if workgroups <= max_per_dimension {
        (workgroups.max(1), 1, 1)
    } else {
        let y = workgroups.div_ceil(max_per_dimension);
        (workgroups.div_ceil(y), y, 1)
    }
}

/// Dispatches a 1-D kernel over `items` invocations with `workgroup_size` threads per group.
pub fn dispatch_1d(
    ctx: &GpuContext,
    pass: &mut wgpu::ComputePass<'_>,
    items: u32,
    workgroup_size: u32,
) {
    let groups = items.div_ceil(workgroup_size);
    let (x, y, z) = dispatch_size_1d(groups, ctx.limits.max_compute_workgroups_per_dimension);
    pass.dispatch_workgroups(x, y, z);
}

/// A bind group for `pipeline`'s group `index` with the given buffers bound at 0, 1, 2, ...
pub fn bind_buffers(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    index: u32,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<(u32, &wgpu::Buffer)> = buffers
        .iter()
        .enumerate()
        .map(|(binding, buffer)| (binding as u32, *buffer))
        .collect();
    bind_entries_in_group(ctx, label, pipeline, index, &entries)
}

/// A bind group for `pipeline`'s group 0 with buffers at explicit binding numbers (for entry
/// points that share one declaration list and each use a sparse subset of it).
pub fn bind_entries(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    entries: &[(u32, &wgpu::Buffer)],
) -> wgpu::BindGroup {
    bind_entries_in_group(ctx, label, pipeline, 0, entries)
}

fn bind_entries_in_group(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    index: u32,
    entries: &[(u32, &wgpu::Buffer)],
) -> wgpu::BindGroup {
    let layout = pipeline.get_bind_group_layout(index);
    let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
        .iter()
        .map(|&(binding, buffer)| wgpu::BindGroupEntry {
            binding,
            resource: buffer.as_entire_binding(),
        })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &layout,
        entries: &entries,
    })
}

/// A bind group that is rebuilt only when one of its buffers changes (buffers compare by
/// identity; the cache keeps its buffers alive, so a new buffer never aliases an old key).
#[derive(Default)]
pub struct CachedBindGroup {
    key: Vec<(u32, wgpu::Buffer)>,
    group: Option<wgpu::BindGroup>,
}

impl CachedBindGroup {
    /// The bind group of `pipeline`'s group 0 with `entries` as (binding, buffer) pairs.
    pub fn get(
        &mut self,
        ctx: &GpuContext,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        entries: &[(u32, &wgpu::Buffer)],
    ) -> &wgpu::BindGroup {
        let unchanged = self.group.is_some()
            && self.key.len() == entries.len()
            && self.key.iter().zip(entries).all(
                |((binding, buffer), (new_binding, new_buffer))| {
                    binding == new_binding && buffer == *new_buffer
                },
            );
        if !unchanged {
            self.group = Some(bind_entries(ctx, label, pipeline, entries));
            self.key = entries
                .iter()
                .map(|(binding, buffer)| (*binding, (*buffer).clone()))
                .collect();
        }
        self.group.as_ref().expect("bind group was just created")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_size_folds_large_counts() {
        assert_eq!(dispatch_size_1d(0, 65535), (1, 1, 1));
        assert_eq!(dispatch_size_1d(10, 65535), (10, 1, 1));
        assert_eq!(dispatch_size_1d(65535, 65535), (65535, 1, 1));
        let (x, y, _) = dispatch_size_1d(200_000, 65535);
        assert!(x <= 65535 && x * y >= 200_000 && x * (y - 1) < 200_000);
    }

    #[test]
    fn padded_size_rounds_up() {
        assert_eq!(padded_size(0), MIN_BUFFER_BYTES);
        assert_eq!(padded_size(17), 20);
        assert_eq!(padded_size(64), 64);
    }
}
