//! TEMPORARY: the API of `gpu::scan::PrefixScan` and `gpu::sort::RadixSort` (branch
//! `scan-sort`, not merged yet), so this module compiles. Removed at the merge.

use crate::gpu::GpuContext;

pub struct PrefixScan;

impl PrefixScan {
    pub fn new(_ctx: &GpuContext) -> Self {
        Self
    }

    pub fn encode(
        &mut self,
        _ctx: &GpuContext,
        _encoder: &mut wgpu::CommandEncoder,
        _input: &wgpu::Buffer,
        _output: &wgpu::Buffer,
        _count: u32,
    ) {
        unimplemented!("gpu::scan is not merged yet")
    }
}

pub struct RadixSort;

impl RadixSort {
    pub fn new(_ctx: &GpuContext) -> Self {
        Self
    }

    pub fn encode(
        &mut self,
        _ctx: &GpuContext,
        _encoder: &mut wgpu::CommandEncoder,
        _keys: &wgpu::Buffer,
        _values: &wgpu::Buffer,
        _count: u32,
        _key_bits: u32,
    ) {
        unimplemented!("gpu::sort is not merged yet")
    }
}
