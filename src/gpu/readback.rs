//! Readbacks that never wait: several buffers copied into mappable staging buffers by an
//! encoder, mapped after its submission, and read on a later step or frame once the GPU has
//! finished. The blocking [`super::read_buffer`] drains the whole queue first, which costs a
//! training run every step the CPU had queued ahead of the GPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytemuck::Pod;

use super::GpuContext;

/// The first bytes of several buffers on their way to the CPU.
pub struct BatchReadback {
    /// Per source: its staging buffer (`None` for an empty source) and byte length.
    staging: Vec<(Option<wgpu::Buffer>, u64)>,
    /// Staging buffers still mapping.
    pending: Arc<AtomicUsize>,
    failed: Arc<AtomicBool>,
    mapping: bool,
}

impl BatchReadback {
    /// Encodes copies of the first `bytes` (a multiple of 4) of each source into `encoder`.
    pub fn encode(
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        sources: &[(&wgpu::Buffer, u64)],
    ) -> Self {
        Self::encode_reusing(ctx, encoder, sources, Vec::new())
    }

    /// [`BatchReadback::encode`], copying source `i` into `spare[i]` when that buffer is large
    /// enough (the staging buffers of an earlier readback, [`BatchReadback::into_spare`]).
    /// New staging buffers get the source's whole size, so a source that grows within its
    /// buffer keeps fitting: allocating mappable memory costs milliseconds per 100 MB (see
    /// [`staging_fits`] and [`allocate_staging`] to do that elsewhere first).
    pub fn encode_reusing(
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        sources: &[(&wgpu::Buffer, u64)],
        spare: Vec<Option<wgpu::Buffer>>,
    ) -> Self {
        let staging = allocate_staging(&ctx.device, spare, &staging_needs(sources))
            .into_iter()
            .zip(sources)
            .map(|(buffer, &(source, bytes))| {
                assert!(
                    bytes.is_multiple_of(4),
                    "BatchReadback: copies are whole words"
                );
                if bytes == 0 {
                    return (buffer, 0);
                }
                let buffer = buffer.expect("allocated for a non-empty source");
                encoder.copy_buffer_to_buffer(source, 0, &buffer, 0, bytes);
                (Some(buffer), bytes)
            })
            .collect();
        Self {
            staging,
            pending: Arc::new(AtomicUsize::new(0)),
            failed: Arc::new(AtomicBool::new(false)),
            mapping: false,
        }
    }

    /// The staging buffers, unmapped, for [`BatchReadback::encode_reusing`] (call once the
    /// data was read, or never arrived).
    pub fn into_spare(self) -> Vec<Option<wgpu::Buffer>> {
        let arrived = self.is_ready() && !self.failed();
        self.staging
            .into_iter()
            .map(|(buffer, bytes)| match buffer {
                // Mapped (or mapping): reusable once unmapped, which needs the mapping done.
                Some(buffer) if bytes > 0 && self.mapping => arrived.then(|| {
                    buffer.unmap();
                    buffer
                }),
                buffer => buffer,
            })
            .collect()
    }

    /// Starts mapping; call once the encoder given to [`BatchReadback::encode`] is submitted.
    pub fn map(&mut self) {
        if self.mapping {
            return;
        }
        self.mapping = true;
        let buffers: Vec<&wgpu::Buffer> = self
            .staging
            .iter()
            .filter(|(_, bytes)| *bytes > 0)
            .flat_map(|(b, _)| b)
            .collect();
        self.pending.store(buffers.len(), Ordering::Release);
        for buffer in buffers {
            let (pending, failed) = (self.pending.clone(), self.failed.clone());
            buffer
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |result| {
                    if result.is_err() {
                        failed.store(true, Ordering::Release);
                    }
                    pending.fetch_sub(1, Ordering::AcqRel);
                });
        }
    }

    /// Whether every copy can be read (never waits: the device must be polled, as every
    /// render does).
    pub fn is_ready(&self) -> bool {
        self.mapping && self.pending.load(Ordering::Acquire) == 0
    }

    /// Blocks until every copy can be read or a mapping failed; whether the data arrived. After
    /// the wait for the GPU it polls for up to ~100 ms more: once in CI the software driver
    /// reported the mappings of a finished submission not yet done (cause not found).
    pub fn wait(&self, ctx: &GpuContext) -> bool {
        ctx.wait_idle();
        for _ in 0..100 {
            if self.is_ready() || self.failed() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            let _ = ctx.device.poll(wgpu::PollType::Poll);
        }
        self.is_ready() && !self.failed()
    }

    /// Whether a mapping failed (the data is then unusable).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The bytes of source `index` as `T`s; only once [`BatchReadback::is_ready`] and not
    /// [`BatchReadback::failed`].
    pub fn read<T: Pod>(&self, index: usize) -> Vec<T> {
        assert!(
            self.is_ready() && !self.failed(),
            "BatchReadback::read before the data arrived"
        );
        match &self.staging[index] {
            (Some(buffer), bytes) if *bytes > 0 => {
                let data = buffer.slice(..*bytes).get_mapped_range();
                bytemuck::pod_collect_to_vec(&data)
            }
            _ => Vec::new(),
        }
    }
}

/// Per source: the bytes a staging buffer must hold (0: no buffer), and the size a new one
/// gets (the source's whole size, so that a source growing within its buffer keeps fitting).
pub fn staging_needs(sources: &[(&wgpu::Buffer, u64)]) -> Vec<(u64, u64)> {
    sources
        .iter()
        .map(|&(source, bytes)| (bytes, source.size().max(bytes)))
        .collect()
}

/// Whether `spare` holds a large enough staging buffer for every need ([`staging_needs`]), so
/// that [`BatchReadback::encode_reusing`] allocates nothing.
pub fn staging_fits(needs: &[(u64, u64)], spare: &[Option<wgpu::Buffer>]) -> bool {
    needs.iter().enumerate().all(|(i, &(bytes, _))| {
        bytes == 0
            || spare
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|b| b.size() >= bytes)
    })
}

/// The staging buffers for `needs` ([`staging_needs`]): `spare[i]` where it holds the bytes
/// needed, a new buffer otherwise. Safe to call on another thread (wgpu devices are shared),
/// which is where a training step wants the tens of milliseconds of a large allocation to go.
pub fn allocate_staging(
    device: &wgpu::Device,
    mut spare: Vec<Option<wgpu::Buffer>>,
    needs: &[(u64, u64)],
) -> Vec<Option<wgpu::Buffer>> {
    spare.resize(needs.len(), None);
    spare
        .into_iter()
        .zip(needs)
        .map(|(spare, &(bytes, size))| {
            if bytes == 0 {
                return spare;
            }
            let fits = spare.as_ref().is_some_and(|b| b.size() >= bytes);
            Some(match spare {
                Some(buffer) if fits => buffer,
                _ => device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("batch readback staging"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::{storage_buffer_from, test_util::test_context};

    #[test]
    fn copies_arrive_after_submission_without_waiting_for_them() {
        let ctx = test_context();
        let floats: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.0).collect();
        let words: Vec<u32> = (0..37).map(|i| i * 3 + 1).collect();
        let (a, b) = (
            storage_buffer_from(ctx, "a", &floats),
            storage_buffer_from(ctx, "b", &words),
        );
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut readback =
            BatchReadback::encode(ctx, &mut encoder, &[(&a, 400 * 4), (&b, 37 * 4), (&a, 0)]);
        assert!(!readback.is_ready(), "not mapped before submission");
        ctx.queue.submit([encoder.finish()]);
        readback.map();
        // The copies are taken at submission: later writes do not reach them.
        crate::gpu::write_buffer(ctx, &a, 0, &[99.0f32; 10]);
        ctx.queue.submit([]);
        wait_until_ready(ctx, &readback);
        assert_eq!(readback.read::<f32>(0), floats[..400]);
        assert_eq!(readback.read::<u32>(1), words);
        assert!(readback.read::<f32>(2).is_empty());
    }

    /// The blocking wait: true once the copies can be read, false before they were mapped.
    #[test]
    fn wait_blocks_until_the_copies_arrive() {
        let ctx = test_context();
        let a = storage_buffer_from(ctx, "a", &[7u32; 64]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut readback = BatchReadback::encode(ctx, &mut encoder, &[(&a, 64 * 4)]);
        ctx.queue.submit([encoder.finish()]);
        assert!(!readback.wait(ctx), "not mapped: nothing to wait for");
        readback.map();
        assert!(readback.wait(ctx));
        assert_eq!(readback.read::<u32>(0), vec![7u32; 64]);
    }

    /// Polls (never a blocking wait, which would hide a readback that does not arrive alone).
    fn wait_until_ready(ctx: &GpuContext, readback: &BatchReadback) {
        for _ in 0..1000 {
            if readback.is_ready() {
                break;
            }
            let _ = ctx.device.poll(wgpu::PollType::Poll);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(readback.is_ready() && !readback.failed());
    }

    #[test]
    fn a_later_readback_reuses_the_staging_buffers_that_still_fit() {
        let ctx = test_context();
        let first: Vec<f32> = (0..300).map(|i| i as f32).collect();
        let (a, b) = (
            storage_buffer_from(ctx, "a", &first),
            storage_buffer_from(ctx, "b", &[1u32, 2, 3]),
        );
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        // Only part of `a`: its staging buffer still gets a's whole size.
        let mut readback = BatchReadback::encode(ctx, &mut encoder, &[(&a, 100 * 4), (&b, 12)]);
        ctx.queue.submit([encoder.finish()]);
        readback.map();
        wait_until_ready(ctx, &readback);
        assert_eq!(readback.read::<f32>(0), first[..100]);
        let spare = readback.into_spare();
        let kept = |i: usize| spare[i].clone().expect("a staging buffer");

        // `a` grew within its buffer (fits the old staging); `bigger` does not fit b's.
        let second: Vec<f32> = (0..300).map(|i| -(i as f32)).collect();
        crate::gpu::write_buffer(ctx, &a, 0, &second);
        let bigger = storage_buffer_from(ctx, "bigger", &[7u32; 40]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut again = BatchReadback::encode_reusing(
            ctx,
            &mut encoder,
            &[(&a, 300 * 4), (&bigger, 40 * 4)],
            spare.clone(),
        );
        ctx.queue.submit([encoder.finish()]);
        again.map();
        wait_until_ready(ctx, &again);
        assert_eq!(
            again.read::<f32>(0),
            second,
            "the reused buffer holds the new copy"
        );
        assert_eq!(again.read::<u32>(1), vec![7u32; 40]);
        let next = again.into_spare();
        assert!(next[0].as_ref() == Some(&kept(0)), "a's staging was reused");
        assert!(
            next[1].as_ref() != Some(&kept(1)),
            "b's was too small and replaced"
        );
    }

    #[test]
    fn staging_allocated_elsewhere_is_what_the_readback_then_uses() {
        let ctx = test_context();
        let a = storage_buffer_from(ctx, "a", &[5u32; 64]);
        let b = storage_buffer_from(ctx, "b", &[6u32; 8]);
        let sources = [(&a, 16 * 4), (&b, 0)];
        let needs = staging_needs(&sources);
        assert_eq!(needs, vec![(64, 256), (0, b.size())]);
        assert!(!staging_fits(&needs, &[]), "nothing to reuse yet");
        // On another thread, as a training run does.
        let device = ctx.device.clone();
        let thread_needs = needs.clone();
        let staging =
            std::thread::spawn(move || allocate_staging(&device, Vec::new(), &thread_needs))
                .join()
                .unwrap();
        assert!(staging[1].is_none(), "no buffer for an empty source");
        assert_eq!(
            staging[0].as_ref().map(|s| s.size()),
            Some(256),
            "the source's whole size"
        );
        assert!(staging_fits(&needs, &staging));
        let small = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 32,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        assert!(
            !staging_fits(&needs, &[Some(small)]),
            "32 bytes do not hold 64"
        );

        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut readback =
            BatchReadback::encode_reusing(ctx, &mut encoder, &sources, staging.clone());
        ctx.queue.submit([encoder.finish()]);
        readback.map();
        wait_until_ready(ctx, &readback);
        assert_eq!(readback.read::<u32>(0), vec![5u32; 16]);
        let spare = readback.into_spare();
        assert!(
            spare[0] == staging[0],
            "the buffer allocated beforehand was used"
        );
    }
}
