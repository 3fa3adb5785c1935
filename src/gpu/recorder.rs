//! Recording compute work into as few passes as possible.
//!
//! wgpu gives every compute pass command buffers of its own, and on the H200 starting a new pass
//! costs ~5 us of GPU time on top of a dispatch's ~1.7 us (`splatforge bench dispatch`): a
//! training step of a dozen passes lost ~50 us to that. A [`Recorder`] keeps one pass open
//! across the kernels that record into it and ends it only when something needs the encoder
//! itself (a buffer copy or clear, a timestamp, a submission).

/// A command encoder with the compute pass currently open on it, if any.
pub struct Recorder<'e> {
    encoder: &'e mut wgpu::CommandEncoder,
    pass: PassSlot<'e>,
}

/// Where a recorder keeps its open pass: its own (ended when the recorder is dropped), or a
/// slot of its caller's that outlives it, so the next recorder on the same encoder continues
/// the pass ([`Recorder::resume`]).
// (The owned pass makes the enum ~430 bytes; a recorder is a short-lived stack value, and
// boxing it would allocate for every recorder.)
#[allow(clippy::large_enum_variant)]
enum PassSlot<'e> {
    Owned(Option<wgpu::ComputePass<'static>>),
    Borrowed(&'e mut Option<wgpu::ComputePass<'static>>),
}

impl PassSlot<'_> {
    fn get(&mut self) -> &mut Option<wgpu::ComputePass<'static>> {
        match self {
            PassSlot::Owned(pass) => pass,
            PassSlot::Borrowed(pass) => pass,
        }
    }
}

// Declared so that the borrow checker keeps the encoder borrowed until the recorder is gone:
// an owned pass still open when the encoder is finished would be an error.
impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if let PassSlot::Owned(pass) = &mut self.pass {
            *pass = None;
        }
    }
}

impl<'e> Recorder<'e> {
    pub fn new(encoder: &'e mut wgpu::CommandEncoder) -> Self {
        Self {
            encoder,
            pass: PassSlot::Owned(None),
        }
    }

    /// A recorder that continues `pass` (open on `encoder`, or `None`) and leaves the pass it
    /// records into open there when dropped: kernels recorded by different callers then share
    /// one pass (the training step's stages, `train::StepEncoder`). Whoever owns `pass` must
    /// end it (set it to `None`) before using `encoder` itself.
    pub fn resume(
        encoder: &'e mut wgpu::CommandEncoder,
        pass: &'e mut Option<wgpu::ComputePass<'static>>,
    ) -> Self {
        Self {
            encoder,
            pass: PassSlot::Borrowed(pass),
        }
    }

    /// The open compute pass (begun now if none is).
    pub fn pass(&mut self) -> &mut wgpu::ComputePass<'static> {
        let encoder = &mut *self.encoder;
        self.pass.get().get_or_insert_with(|| {
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("recorded kernels"),
                    timestamp_writes: None,
                })
                .forget_lifetime()
        })
    }

    /// The encoder, for commands outside compute passes (the open pass ends first).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        *self.pass.get() = None;
        self.encoder
    }

    /// Ends the open pass and puts `fresh` in place of the encoder, returning the one recorded
    /// so far (to submit it before a blocking readback).
    pub fn swap_encoder(&mut self, fresh: wgpu::CommandEncoder) -> wgpu::CommandEncoder {
        *self.pass.get() = None;
        std::mem::replace(self.encoder, fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::test_context;
    use crate::gpu::{self};

    #[test]
    fn kernels_share_a_pass_until_the_encoder_is_needed() {
        let ctx = test_context();
        let source = "
            @group(0) @binding(0) var<storage, read_write> data: array<u32>;
            @compute @workgroup_size(1)
            fn add_one() { data[0] = data[0] + 1u; }
        ";
        let pipeline =
            gpu::pipeline::compute_pipeline_from_wgsl(ctx, "recorder test", source, "add_one", &[]);
        let buffer = gpu::storage_buffer_from(ctx, "recorder test", &[0u32, 0, 0, 0]);
        let bind = gpu::bind_buffers(ctx, "recorder test", &pipeline, 0, &[&buffer]);
        let copy = gpu::storage_buffer_from(ctx, "recorder copy", &[0u32, 0, 0, 0]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut rec = Recorder::new(&mut encoder);
            for _ in 0..3 {
                let pass = rec.pass();
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                pass.dispatch_workgroups(1, 1, 1);
            }
            // A copy in between sees the three additions; the dispatch after it runs later.
            rec.encoder()
                .copy_buffer_to_buffer(&buffer, 0, &copy, 0, 16);
            let pass = rec.pass();
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(1, 1, 1);
        }
        ctx.queue.submit([encoder.finish()]);
        assert_eq!(gpu::read_buffer::<u32>(ctx, &buffer, 1), vec![4]);
        assert_eq!(gpu::read_buffer::<u32>(ctx, &copy, 1), vec![3]);
    }

    /// Recorders resumed one after another on one pass slot (as the training step's stages
    /// use `StepEncoder`) continue one pass: it is still open after each, and their kernels
    /// run in order.
    #[test]
    fn resumed_recorders_share_the_callers_pass() {
        let ctx = test_context();
        let source = "
            @group(0) @binding(0) var<storage, read_write> data: array<u32>;
            @compute @workgroup_size(1)
            fn double_plus_one() { data[0] = 2u * data[0] + 1u; }
        ";
        let pipeline = gpu::pipeline::compute_pipeline_from_wgsl(
            ctx,
            "recorder test",
            source,
            "double_plus_one",
            &[],
        );
        let buffer = gpu::storage_buffer_from(ctx, "recorder test", &[0u32, 0, 0, 0]);
        let bind = gpu::bind_buffers(ctx, "recorder test", &pipeline, 0, &[&buffer]);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        let mut slot = None;
        for _ in 0..3 {
            let mut rec = Recorder::resume(&mut encoder, &mut slot);
            let pass = rec.pass();
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(1, 1, 1);
            drop(rec);
            assert!(slot.is_some(), "the pass ended with its recorder");
        }
        slot = None;
        ctx.queue.submit([encoder.finish()]);
        assert!(slot.is_none());
        // ((0 * 2 + 1) * 2 + 1) * 2 + 1: three kernels, in order.
        assert_eq!(gpu::read_buffer::<u32>(ctx, &buffer, 1), vec![7]);
    }
}
