//! GPU timestamps between the stages of a command encoder, for `splatforge bench`.
//!
//! Timestamps are written between passes (`TIMESTAMP_QUERY_INSIDE_ENCODERS`), so the kernel
//! wrappers need not know about timing: the caller marks a stage after encoding it.

use super::GpuContext;

/// Records named timestamps into one encoder and resolves them to milliseconds per stage.
pub struct StageTimer {
    query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    capacity: u32,
    labels: Vec<String>,
    /// When each mark was encoded: the CPU time spent encoding each stage.
    cpu_marks: Vec<std::time::Instant>,
    period_ns: f32,
}

impl StageTimer {
    /// A timer for up to `max_marks` marks, or `None` when the device has no timestamps.
    pub fn new(ctx: &GpuContext, max_marks: u32) -> Option<Self> {
        if !ctx.capabilities.timestamps {
            return None;
        }
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("stage timer"),
            ty: wgpu::QueryType::Timestamp,
            count: max_marks,
        });
        let bytes = u64::from(max_marks) * 8;
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stage timer resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("stage timer readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Some(Self {
            query_set,
            resolve,
            readback,
            capacity: max_marks,
            labels: Vec::new(),
            cpu_marks: Vec::new(),
            period_ns: ctx.queue.get_timestamp_period(),
        })
    }

    /// Forgets earlier marks (call before recording a new encoder).
    pub fn reset(&mut self) {
        self.labels.clear();
        self.cpu_marks.clear();
    }

    /// Writes a timestamp labelled `label`: the time since the previous mark is that stage's.
    /// The first mark of an encoder is the start and its label is ignored.
    pub fn mark(&mut self, encoder: &mut wgpu::CommandEncoder, label: &str) {
        let index = self.labels.len() as u32;
        assert!(
            index < self.capacity,
            "StageTimer: more marks than capacity"
        );
        encoder.write_timestamp(&self.query_set, index);
        self.labels.push(label.to_owned());
        self.cpu_marks.push(std::time::Instant::now());
    }

    /// CPU milliseconds between consecutive marks (the time spent encoding and submitting each
    /// stage, or waiting where a stage blocks), in mark order.
    pub fn cpu_ms(&self) -> Vec<(String, f64)> {
        (1..self.cpu_marks.len())
            .map(|i| {
                let dt = self.cpu_marks[i] - self.cpu_marks[i - 1];
                (self.labels[i].clone(), dt.as_secs_f64() * 1e3)
            })
            .collect()
    }

    /// Copies the timestamps to a readable buffer (call after the last mark, same encoder).
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let count = self.labels.len() as u32;
        if count == 0 {
            return;
        }
        encoder.resolve_query_set(&self.query_set, 0..count, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, u64::from(count) * 8);
    }

    /// Milliseconds per stage, in mark order (blocks until the submission finished).
    pub fn read_ms(&self, ctx: &GpuContext) -> Vec<(String, f64)> {
        let count = self.labels.len();
        if count < 2 {
            return Vec::new();
        }
        let slice = self.readback.slice(..(count as u64 * 8));
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = sender.send(r);
        });
        ctx.wait_idle();
        receiver
            .recv()
            .expect("map callback ran")
            .expect("timestamp readback failed");
        let ticks: Vec<u64> = bytemuck::cast_slice(&slice.get_mapped_range()).to_vec();
        self.readback.unmap();
        (1..count)
            .map(|i| {
                let dt = ticks[i].saturating_sub(ticks[i - 1]) as f64;
                (
                    self.labels[i].clone(),
                    dt * f64::from(self.period_ns) * 1e-6,
                )
            })
            .collect()
    }
}
