//! Stable key/value radix sort of `u32` pairs on the GPU (`shaders/radix_sort.wgsl`).
//!
//! LSD radix sort with 8-bit digits: `ceil(key_bits / 8)` passes of three dispatches each: an
//! `upsweep` (digit counts per block), a `digit_scan` (per digit, prefix sums over the blocks)
//! and a `downsweep` (stable rank within the block, scatter). Passes ping-pong between the
//! caller's buffers and scratch buffers chosen so that the last pass writes the caller's
//! buffers: `user -> A -> user` for two passes, `user -> A -> B -> user` for three,
//! `user -> A -> user -> A -> user` for four; a single pass writes A and copies back. As in the
//! scan, the element count lives on the GPU (a `setup` kernel writes the pass parameters), so
//! [`RadixSort::encode_indirect`] sorts a count another kernel produced without a readback.
//! Dispatches are sized for the largest count the call allows and blocks past the real count
//! return at once: on the H200 an indirect dispatch costs ~4 us more than a direct one
//! (`splatforge bench dispatch`), more than a few hundred idle workgroups.

use super::scan::{
    CallCount, PARAM_SLOT_BYTES, bind_group, bind_slot, bind_whole, kernel_defs, setup_bind_group,
    subgroups_usable,
};
use super::{GpuCapabilities, GpuContext, Recorder, compute_pipeline};

/// Bits sorted per pass.
pub const DIGIT_BITS: u32 = 8;
const RADIX: u32 = 1 << DIGIT_BITS;
/// Passes for 32-bit keys.
const MAX_PASSES: u32 = 32 / DIGIT_BITS;
/// Size of the virtual ranking groups without subgroups (`FALLBACK_GROUP_SIZE` in the shader).
const FALLBACK_GROUP_SIZE: u32 = 32;
/// Largest keys per invocation the shader's register arrays hold (`MAX_KEYS_PER_THREAD`).
const MAX_KEYS_PER_THREAD: u32 = 16;
/// Largest block of keys per workgroup: blocks of 4,096 keys left too few workgroups per pass
/// on the H200 (depth sort 0.129 -> 0.112 ms, tile sort 0.084 -> 0.073 ms with 2,048;
/// `splatforge bench sort`, BENCHMARKS.md). The sort is exact with any block size.
const MAX_BLOCK_KEYS: u32 = 2048;
/// Bytes of `PassParams` in radix_sort.wgsl.
const PASS_PARAMS_BYTES: u64 = 32;
/// Words of `SortCall` in radix_sort.wgsl, plus the count of [`RadixSort::encode`].
const CALL_WORDS: usize = 5;
const KNOWN_COUNT_WORD: u32 = 4;

/// Tuning of the sort kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SortConfig {
    /// Invocations per workgroup (64, 128 or 256).
    pub workgroup_size: u32,
    /// Keys per invocation (at most 16); a block is `workgroup_size * keys_per_thread` keys.
    pub keys_per_thread: u32,
    /// Whether ranking uses subgroup ballots (else virtual groups in workgroup memory).
    pub subgroups: bool,
    /// Most ranking groups (subgroups or virtual groups) a workgroup can have.
    pub max_groups: u32,
    /// Workgroups per dispatch dimension before folding (the device limit; tests lower it).
    pub max_workgroups_per_dimension: u32,
}

impl SortConfig {
    /// The configuration for this device (see [`SortConfig::choose`]).
    pub fn for_device(ctx: &GpuContext) -> Self {
        Self::choose(
            &ctx.capabilities,
            ctx.limits.max_compute_workgroup_storage_size,
            ctx.limits.max_compute_workgroups_per_dimension,
        )
    }

    /// The largest blocks (at most `MAX_BLOCK_KEYS`) whose downsweep fits `workgroup_memory`
    /// bytes, preferring the subgroup path (then larger workgroups): with subgroups of 32 and
    /// 48 KiB (NVIDIA) 256 invocations x 8 keys; with subgroups of 8 and 32 KiB (lavapipe)
    /// 128 x 16.
    pub fn choose(caps: &GpuCapabilities, workgroup_memory: u32, max_per_dimension: u32) -> Self {
        for subgroups in [true, false] {
            let mut candidates = Vec::new();
            for workgroup_size in [256, 128, 64] {
                if subgroups && !subgroups_usable(caps, workgroup_size) {
                    continue;
                }
                let group_size = if subgroups {
                    caps.subgroup_min_size
                } else {
                    FALLBACK_GROUP_SIZE.min(workgroup_size)
                };
                for keys_per_thread in [16, 8, 4] {
                    candidates.push(Self {
                        workgroup_size,
                        keys_per_thread,
                        subgroups,
                        max_groups: workgroup_size / group_size,
                        max_workgroups_per_dimension: max_per_dimension,
                    });
                }
            }
            // Stable: among equal block sizes the larger workgroup stays first.
            candidates.retain(|c| c.block_size() <= MAX_BLOCK_KEYS);
            candidates.sort_by_key(|c| std::cmp::Reverse(c.block_size()));
            if let Some(config) = candidates
                .into_iter()
                .find(|c| c.workgroup_memory_bytes() <= u64::from(workgroup_memory))
            {
                return config;
            }
        }
        panic!("RadixSort: no configuration fits {workgroup_memory} bytes of workgroup memory")
    }

    pub fn block_size(&self) -> u32 {
        self.workgroup_size * self.keys_per_thread
    }

    /// Workgroup memory of the downsweep kernel (the largest): the staging block, the
    /// per-group histograms and the workgroup scan's arrays.
    pub fn workgroup_memory_bytes(&self) -> u64 {
        let scan_words = if self.subgroups { 256 } else { 512 };
        4 * u64::from(self.block_size() + self.max_groups * RADIX + scan_words)
    }
}

/// Which buffer pair a pass reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// The caller's keys and values.
    User,
    A,
    B,
}

/// The buffer pairs of passes 0..passes: pass `p` reads `chain[p]` and writes `chain[p + 1]`.
/// The last pass writes the caller's buffers, except for a single pass (then copied back).
fn pass_chain(passes: u32) -> Vec<Slot> {
    let mut chain = vec![Slot::User];
    for i in 1..passes {
        chain.push(match (passes % 2, i % 2) {
            (_, 1) => Slot::A,
            (0, _) => Slot::User,
            _ => Slot::B,
        });
    }
    chain.push(if passes == 1 { Slot::A } else { Slot::User });
    chain
}

/// Scratch buffers, sized for `capacity` pairs.
struct SortScratch {
    keys_a: wgpu::Buffer,
    values_a: wgpu::Buffer,
    /// Only for three passes.
    b: Option<(wgpu::Buffer, wgpu::Buffer)>,
    /// `RADIX * blocks` digit counts (then their per-digit prefix sums), and the digit totals.
    digit_counts: wgpu::Buffer,
    capacity: u32,
}

#[derive(Clone, PartialEq, Eq)]
struct BindingKey {
    keys: wgpu::Buffer,
    values: wgpu::Buffer,
    passes: u32,
    scratch_generation: u64,
}

struct Bindings {
    key: BindingKey,
    upsweep: Vec<wgpu::BindGroup>,
    digit_scan: Vec<wgpu::BindGroup>,
    downsweep: Vec<wgpu::BindGroup>,
    copy_back: Option<wgpu::BindGroup>,
}

/// GPU stable key/value radix sort, with cached pipelines, scratch buffers and bind groups
/// (reuse one per call site: scratch only grows).
pub struct RadixSort {
    config: SortConfig,
    setup: wgpu::ComputePipeline,
    upsweep: wgpu::ComputePipeline,
    digit_scan: wgpu::ComputePipeline,
    downsweep: wgpu::ComputePipeline,
    copy_back: wgpu::ComputePipeline,
    /// One `PassParams` slot per pass, written by `setup`.
    pass_params: wgpu::Buffer,
    scratch: Option<SortScratch>,
    scratch_generation: u64,
    bindings: Option<Bindings>,
}

impl RadixSort {
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_config(ctx, SortConfig::for_device(ctx))
    }

    /// A sort with explicit tuning (tests use tiny blocks and folding limits).
    pub fn with_config(ctx: &GpuContext, config: SortConfig) -> Self {
        let limit = u64::from(ctx.limits.max_compute_workgroup_storage_size);
        assert!(
            [64, 128, 256].contains(&config.workgroup_size)
                && (1..=MAX_KEYS_PER_THREAD).contains(&config.keys_per_thread)
                && config.max_groups >= 1
                && config.max_workgroups_per_dimension >= 1
                && config.workgroup_memory_bytes() <= limit,
            "unsupported radix sort configuration {config:?}"
        );
        assert!(
            !config.subgroups || subgroups_usable(&ctx.capabilities, config.workgroup_size),
            "RadixSort: the device cannot use subgroups with {config:?}"
        );
        let defs = kernel_defs(config.subgroups);
        let constants = [
            ("WORKGROUP_SIZE", f64::from(config.workgroup_size)),
            ("KEYS_PER_THREAD", f64::from(config.keys_per_thread)),
            ("BLOCK_SIZE", f64::from(config.block_size())),
            (
                "GROUP_HISTOGRAM_WORDS",
                f64::from(config.max_groups * RADIX),
            ),
            (
                "FALLBACK_GROUP_SIZE",
                f64::from(FALLBACK_GROUP_SIZE.min(config.workgroup_size)),
            ),
        ];
        let pipeline = |entry| compute_pipeline(ctx, "radix_sort.wgsl", entry, &defs, &constants);
        let buffer = |label, size, usage| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        Self {
            config,
            setup: pipeline("setup"),
            upsweep: pipeline("upsweep"),
            digit_scan: pipeline("digit_scan"),
            downsweep: pipeline("downsweep"),
            copy_back: pipeline("copy_back"),
            pass_params: buffer(
                "sort pass parameters",
                u64::from(MAX_PASSES) * PARAM_SLOT_BYTES,
                U::UNIFORM | U::STORAGE,
            ),
            scratch: None,
            scratch_generation: 0,
            bindings: None,
        }
    }

    pub fn config(&self) -> SortConfig {
        self.config
    }

    /// Stable ascending sort of `count` (key, value) u32 pairs by key bits [0, key_bits)
    /// (bits above are ignored and may be anything). Sorts in place: on return the sorted pairs
    /// are in `keys` / `values` (ping-pong internally through scratch buffers you own and
    /// reuse; copy back when the pass count is odd). Only ceil(key_bits / bits_per_pass) passes
    /// run. key_bits in 1..=32. Never submits or waits.
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        keys: &wgpu::Buffer,
        values: &wgpu::Buffer,
        count: u32,
        key_bits: u32,
    ) {
        let mut rec = Recorder::new(encoder);
        self.record(ctx, &mut rec, keys, values, count, key_bits);
    }

    /// [`RadixSort::encode`] into `rec`'s open compute pass.
    pub fn record(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        keys: &wgpu::Buffer,
        values: &wgpu::Buffer,
        count: u32,
        key_bits: u32,
    ) {
        let count_source = CallCount::Known(count);
        self.record_with_count(ctx, rec, keys, values, count_source, count, key_bits);
    }

    /// Like [`RadixSort::encode`], with the count read on the GPU from word
    /// `count_offset_u32` of `count_buffer` (which needs `STORAGE` usage) when the commands
    /// run, clamped to `max_count`. `keys` and `values` must hold `max_count` elements; scratch
    /// is sized for `max_count`. Never submits or waits.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_indirect(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        keys: &wgpu::Buffer,
        values: &wgpu::Buffer,
        count_buffer: &wgpu::Buffer,
        count_offset_u32: u32,
        max_count: u32,
        key_bits: u32,
    ) {
        let mut rec = Recorder::new(encoder);
        self.record_indirect(
            ctx,
            &mut rec,
            keys,
            values,
            count_buffer,
            count_offset_u32,
            max_count,
            key_bits,
        );
    }

    /// [`RadixSort::encode_indirect`] into `rec`'s open compute pass.
    #[allow(clippy::too_many_arguments)]
    pub fn record_indirect(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        keys: &wgpu::Buffer,
        values: &wgpu::Buffer,
        count_buffer: &wgpu::Buffer,
        count_offset_u32: u32,
        max_count: u32,
        key_bits: u32,
    ) {
        let count_source = CallCount::OnGpu {
            buffer: count_buffer,
            word: count_offset_u32,
        };
        self.record_with_count(ctx, rec, keys, values, count_source, max_count, key_bits);
    }

    #[allow(clippy::too_many_arguments)]
    fn record_with_count(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        keys: &wgpu::Buffer,
        values: &wgpu::Buffer,
        count_source: CallCount<'_>,
        max_count: u32,
        key_bits: u32,
    ) {
        assert!(
            (1..=32).contains(&key_bits),
            "RadixSort: key_bits must be in 1..=32, not {key_bits}"
        );
        assert!(keys != values, "RadixSort: keys and values must differ");
        let bytes = u64::from(max_count) * 4;
        assert!(
            keys.size() >= bytes && values.size() >= bytes,
            "RadixSort: {max_count} pairs need {bytes} bytes per buffer; keys: {}, values: {}",
            keys.size(),
            values.size()
        );
        let passes = key_bits.div_ceil(DIGIT_BITS);
        self.ensure_scratch(ctx, max_count, passes);

        let mut call = vec![0u32; CALL_WORDS];
        call[1] = max_count;
        call[2] = key_bits;
        call[3] = self.config.block_size();
        let setup = setup_bind_group(
            ctx,
            "sort setup",
            &self.setup,
            call,
            KNOWN_COUNT_WORD,
            count_source,
            &self.pass_params,
        );

        let key = BindingKey {
            keys: keys.clone(),
            values: values.clone(),
            passes,
            scratch_generation: self.scratch_generation,
        };
        if self.bindings.as_ref().map(|b| &b.key) != Some(&key) {
            self.bindings = Some(self.build_bindings(ctx, key));
        }
        let bindings = self.bindings.as_ref().expect("bindings were just built");

        let pass = rec.pass();
        pass.set_pipeline(&self.setup);
        pass.set_bind_group(0, &setup, &[]);
        pass.dispatch_workgroups(1, 1, 1);
        // One workgroup per block of `max_count` keys (those past the count return at once).
        let per_dimension = self.config.max_workgroups_per_dimension;
        let (bx, by, bz) =
            super::dispatch_size_1d(max_count.div_ceil(self.config.block_size()), per_dimension);
        for p in 0..passes as usize {
            pass.set_pipeline(&self.upsweep);
            pass.set_bind_group(0, &bindings.upsweep[p], &[]);
            pass.dispatch_workgroups(bx, by, bz);
            pass.set_pipeline(&self.digit_scan);
            pass.set_bind_group(0, &bindings.digit_scan[p], &[]);
            pass.dispatch_workgroups(RADIX, 1, 1);
            pass.set_pipeline(&self.downsweep);
            pass.set_bind_group(0, &bindings.downsweep[p], &[]);
            pass.dispatch_workgroups(bx, by, bz);
        }
        if let Some(copy_back) = &bindings.copy_back {
            let groups = max_count.div_ceil(self.config.workgroup_size);
            let (cx, cy, cz) = super::dispatch_size_1d(groups, per_dimension);
            pass.set_pipeline(&self.copy_back);
            pass.set_bind_group(0, copy_back, &[]);
            pass.dispatch_workgroups(cx, cy, cz);
        }
    }

    /// Grows scratch to `max_count` pairs (with the B pair when three passes need it).
    fn ensure_scratch(&mut self, ctx: &GpuContext, max_count: u32, passes: u32) {
        let needs_b = pass_chain(passes).contains(&Slot::B);
        if let Some(s) = &mut self.scratch
            && s.capacity >= max_count
        {
            if needs_b && s.b.is_none() {
                let bytes = u64::from(s.capacity) * 4;
                s.b = Some((
                    super::storage_buffer(ctx, "sort keys B", bytes),
                    super::storage_buffer(ctx, "sort values B", bytes),
                ));
                self.scratch_generation += 1;
            }
            return;
        }
        // Some slack, so slowly growing counts do not reallocate every call.
        let capacity = max_count.saturating_add(max_count / 8);
        let bytes = u64::from(capacity) * 4;
        let blocks = u64::from(capacity.div_ceil(self.config.block_size()));
        let had_b = self.scratch.as_ref().is_some_and(|s| s.b.is_some());
        self.scratch = Some(SortScratch {
            keys_a: super::storage_buffer(ctx, "sort keys A", bytes),
            values_a: super::storage_buffer(ctx, "sort values A", bytes),
            b: (needs_b || had_b).then(|| {
                (
                    super::storage_buffer(ctx, "sort keys B", bytes),
                    super::storage_buffer(ctx, "sort values B", bytes),
                )
            }),
            digit_counts: super::storage_buffer(
                ctx,
                "sort digit counts",
                u64::from(RADIX) * (blocks + 1) * 4,
            ),
            capacity,
        });
        self.scratch_generation += 1;
    }

    fn build_bindings(&self, ctx: &GpuContext, key: BindingKey) -> Bindings {
        let scratch = self.scratch.as_ref().expect("scratch sized before binding");
        let pair = |slot: Slot| -> (&wgpu::Buffer, &wgpu::Buffer) {
            match slot {
                Slot::User => (&key.keys, &key.values),
                Slot::A => (&scratch.keys_a, &scratch.values_a),
                Slot::B => {
                    let (k, v) = scratch.b.as_ref().expect("B scratch for three passes");
                    (k, v)
                }
            }
        };
        let params = |p: usize| bind_slot(&self.pass_params, p as u32, PASS_PARAMS_BYTES);
        let chain = pass_chain(key.passes);
        let mut upsweep = Vec::new();
        let mut digit_scan = Vec::new();
        let mut downsweep = Vec::new();
        for p in 0..key.passes as usize {
            let (keys_in, values_in) = pair(chain[p]);
            let (keys_out, values_out) = pair(chain[p + 1]);
            upsweep.push(bind_group(
                ctx,
                "sort upsweep",
                &self.upsweep,
                vec![
                    (0, params(p)),
                    (1, bind_whole(ctx, keys_in)),
                    (5, bind_whole(ctx, &scratch.digit_counts)),
                ],
            ));
            digit_scan.push(bind_group(
                ctx,
                "sort digit scan",
                &self.digit_scan,
                vec![(0, params(p)), (5, bind_whole(ctx, &scratch.digit_counts))],
            ));
            downsweep.push(bind_group(
                ctx,
                "sort downsweep",
                &self.downsweep,
                vec![
                    (0, params(p)),
                    (1, bind_whole(ctx, keys_in)),
                    (2, bind_whole(ctx, values_in)),
                    (3, bind_whole(ctx, keys_out)),
                    (4, bind_whole(ctx, values_out)),
                    (5, bind_whole(ctx, &scratch.digit_counts)),
                ],
            ));
        }
        let copy_back = (key.passes == 1).then(|| {
            let (keys_in, values_in) = pair(Slot::A);
            bind_group(
                ctx,
                "sort copy back",
                &self.copy_back,
                vec![
                    (0, params(0)),
                    (1, bind_whole(ctx, keys_in)),
                    (2, bind_whole(ctx, values_in)),
                    (3, bind_whole(ctx, &key.keys)),
                    (4, bind_whole(ctx, &key.values)),
                ],
            )
        });
        Bindings {
            key,
            upsweep,
            digit_scan,
            downsweep,
            copy_back,
        }
    }
}

/// The plain reference of [`RadixSort`]: the pairs stably sorted by the low `key_bits` bits of
/// their keys (equal keys keep their input order), on the CPU. Tests and `splatforge bench
/// sort` compare the GPU's result with it.
pub fn reference_sort(keys: &[u32], values: &[u32], key_bits: u32) -> (Vec<u32>, Vec<u32>) {
    let mask = if key_bits >= 32 {
        u32::MAX
    } else {
        (1 << key_bits) - 1
    };
    let mut pairs: Vec<(u32, u32)> = keys.iter().copied().zip(values.iter().copied()).collect();
    // `sort_by_key` is stable.
    pairs.sort_by_key(|&(key, _)| key & mask);
    pairs.into_iter().unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::scan::PrefixScan;
    use crate::gpu::scan::tests::assert_same;
    use crate::gpu::{self, test_util};
    use crate::rng::Pcg32;

    /// The expected result: a stable sort by the low `key_bits` bits (values are the original
    /// indices in every test, so this also checks stability).
    fn gpu_sort(
        ctx: &GpuContext,
        sort: &mut RadixSort,
        keys: &[u32],
        key_bits: u32,
    ) -> (Vec<u32>, Vec<u32>) {
        let values: Vec<u32> = (0..keys.len() as u32).collect();
        let key_buffer = gpu::storage_buffer_from(ctx, "keys", keys);
        let value_buffer = gpu::storage_buffer_from(ctx, "values", &values);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        sort.encode(
            ctx,
            &mut encoder,
            &key_buffer,
            &value_buffer,
            keys.len() as u32,
            key_bits,
        );
        ctx.queue.submit([encoder.finish()]);
        (
            gpu::read_buffer(ctx, &key_buffer, keys.len()),
            gpu::read_buffer(ctx, &value_buffer, keys.len()),
        )
    }

    fn check(ctx: &GpuContext, sort: &mut RadixSort, keys: &[u32], key_bits: u32, what: &str) {
        let values: Vec<u32> = (0..keys.len() as u32).collect();
        let (want_keys, want_values) = reference_sort(keys, &values, key_bits);
        let (got_keys, got_values) = gpu_sort(ctx, sort, keys, key_bits);
        let what = format!(
            "{what} ({} keys, {key_bits} bits, {:?})",
            keys.len(),
            sort.config()
        );
        assert_same(&got_keys, &want_keys, &format!("keys of {what}"));
        assert_same(&got_values, &want_values, &format!("values of {what}"));
    }

    fn random_keys(count: usize, seed: u64) -> Vec<u32> {
        let mut rng = Pcg32::new(seed, 23);
        (0..count).map(|_| rng.next_u32()).collect()
    }

    fn both_contexts() -> [&'static GpuContext; 2] {
        [
            test_util::test_context(),
            test_util::test_context_fallback(),
        ]
    }

    #[test]
    fn configurations_follow_the_device() {
        let fast = test_util::test_context();
        let fallback = test_util::test_context_fallback();
        // lavapipe: subgroups of 8 and 32 KiB of workgroup memory.
        let config = SortConfig::for_device(fast);
        assert!(config.subgroups, "{config:?} on {}", fast.describe());
        assert!(config.workgroup_memory_bytes() <= 32 << 10);
        assert!(!SortConfig::for_device(fallback).subgroups);
        assert_eq!(pass_chain(1), [Slot::User, Slot::A]);
        assert_eq!(pass_chain(2), [Slot::User, Slot::A, Slot::User]);
        assert_eq!(pass_chain(3), [Slot::User, Slot::A, Slot::B, Slot::User]);
        assert_eq!(
            pass_chain(4),
            [Slot::User, Slot::A, Slot::User, Slot::A, Slot::User]
        );
    }

    #[test]
    fn configurations_fit_other_devices() {
        let caps = |min, max| GpuCapabilities {
            subgroups: min > 0,
            subgroup_min_size: min,
            subgroup_max_size: max,
            ..Default::default()
        };
        let pick = |min, max, memory| {
            let c = SortConfig::choose(&caps(min, max), memory, 65535);
            assert!(c.workgroup_memory_bytes() <= u64::from(memory), "{c:?}");
            (c.workgroup_size, c.keys_per_thread, c.subgroups)
        };
        // NVIDIA, AMD RDNA, Intel, Adreno: blocks of MAX_BLOCK_KEYS.
        assert_eq!(pick(32, 32, 48 << 10), (256, 8, true));
        assert_eq!(pick(32, 64, 64 << 10), (256, 8, true));
        assert_eq!(pick(8, 32, 64 << 10), (256, 8, true));
        assert_eq!(pick(64, 128, 32 << 10), (256, 8, true));
        // Subgroups of 8 and 32 KiB (lavapipe): 32 histograms of 256 x 8 would not fit.
        assert_eq!(pick(8, 8, 32 << 10), (128, 16, true));
        // Vulkan without subgroup size control reports 4..128: 64 histograms would not fit.
        assert_eq!(pick(4, 128, 32 << 10), (256, 8, false));
        // No subgroups and WebGPU's minimum of 16 KiB.
        assert_eq!(pick(0, 0, 16 << 10), (128, 16, false));
    }

    #[test]
    fn sorts_random_32_bit_keys() {
        for (c, ctx) in both_contexts().into_iter().enumerate() {
            let mut sort = RadixSort::new(ctx);
            for (i, size) in [0usize, 1, 255, 256, 257, 1_000_000]
                .into_iter()
                .enumerate()
            {
                let keys = random_keys(size, (c * 10 + i) as u64);
                check(ctx, &mut sort, &keys, 32, "random keys");
            }
        }
    }

    #[test]
    fn sorts_a_large_array() {
        let keys = random_keys(4 << 20, 99);
        for ctx in both_contexts() {
            let mut sort = RadixSort::new(ctx);
            // Once untimed (pipelines, scratch), then timed (for the record, not checked).
            check(ctx, &mut sort, &keys, 32, "4M random keys");
            let key_buffer = gpu::storage_buffer_from(ctx, "keys", &keys);
            let value_buffer = gpu::storage_buffer_from(ctx, "values", &keys);
            ctx.wait_idle();
            let start = std::time::Instant::now();
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            let count = keys.len() as u32;
            sort.encode(ctx, &mut encoder, &key_buffer, &value_buffer, count, 32);
            ctx.queue.submit([encoder.finish()]);
            ctx.wait_idle();
            eprintln!(
                "4M-pair 32-bit sort: {:.0} ms on {} ({:?})",
                start.elapsed().as_secs_f64() * 1e3,
                ctx.adapter_info.name,
                sort.config()
            );
        }
    }

    #[test]
    fn only_the_low_key_bits_decide() {
        for ctx in both_contexts() {
            let mut sort = RadixSort::new(ctx);
            // 13-bit tile ids with garbage above: equal low bits must keep index order.
            let keys = random_keys(100_000, 5);
            check(ctx, &mut sort, &keys, 13, "garbage above bit 13");
            // Every pass count (1 pass copies back, 3 go through the B scratch) and the
            // masks of partial digits.
            let keys = random_keys(3000, 6);
            for key_bits in [1, 5, 8, 9, 16, 17, 20, 24, 25, 31, 32] {
                check(ctx, &mut sort, &keys, key_bits, "partial keys");
            }
        }
    }

    #[test]
    fn sorts_duplicates_and_presorted_input() {
        for ctx in both_contexts() {
            let mut sort = RadixSort::new(ctx);
            let mut rng = Pcg32::new(8, 1);
            let few: Vec<u32> = (0..50_000).map(|_| rng.below(4)).collect();
            check(ctx, &mut sort, &few, 32, "four distinct keys");
            check(ctx, &mut sort, &vec![7; 20_000], 32, "one key");
            // Depth-like keys: positive floats whose top byte is nearly constant.
            let depths: Vec<u32> = (0..50_000)
                .map(|_| (1.0 + 50.0 * rng.next_f32()).to_bits())
                .collect();
            check(ctx, &mut sort, &depths, 32, "float depths");
            let mut sorted = random_keys(50_000, 9);
            sorted.sort_unstable();
            check(ctx, &mut sort, &sorted, 32, "sorted keys");
            sorted.reverse();
            check(ctx, &mut sort, &sorted, 32, "reverse sorted keys");
        }
    }

    #[test]
    fn small_blocks_with_folded_dispatches() {
        for ctx in both_contexts() {
            let mut config = SortConfig::for_device(ctx);
            config.workgroup_size = 64;
            config.keys_per_thread = 2;
            config.max_groups = if config.subgroups {
                64 / ctx.capabilities.subgroup_min_size
            } else {
                2
            };
            // 128-key blocks: 70,000 keys are 547 blocks in a 183 x 3 grid, and more than one
            // digit_scan step (512 blocks each at 64 invocations).
            config.max_workgroups_per_dimension = 3;
            let mut sort = RadixSort::with_config(ctx, config);
            let keys = random_keys(70_000, 12);
            check(ctx, &mut sort, &keys, 32, "small blocks");
            check(ctx, &mut sort, &keys, 13, "small blocks");
        }
    }

    #[test]
    fn indirect_sort_reads_the_count_on_the_gpu() {
        for ctx in both_contexts() {
            let mut sort = RadixSort::new(ctx);
            let max_count = 30_000u32;
            let keys = random_keys(max_count as usize, 13);
            let values: Vec<u32> = (0..max_count).collect();
            // Counts at unaligned word offsets; the last exceeds max_count and is clamped.
            for (count, word, key_bits) in [
                (17_000u32, 45u32, 32u32),
                (0, 2, 32),
                (5, 9, 8),
                (90_000, 0, 20),
            ] {
                let mut words = vec![0xffff_ffff_u32; 64];
                words[word as usize] = count;
                let count_buffer = gpu::storage_buffer_from(ctx, "count", &words);
                let key_buffer = gpu::storage_buffer_from(ctx, "keys", &keys);
                let value_buffer = gpu::storage_buffer_from(ctx, "values", &values);
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                sort.encode_indirect(
                    ctx,
                    &mut encoder,
                    &key_buffer,
                    &value_buffer,
                    &count_buffer,
                    word,
                    max_count,
                    key_bits,
                );
                ctx.queue.submit([encoder.finish()]);
                let n = count.min(max_count) as usize;
                let (mut want_keys, mut want_values) =
                    reference_sort(&keys[..n], &values[..n], key_bits);
                // Pairs past the count stay as they were.
                want_keys.extend_from_slice(&keys[n..]);
                want_values.extend_from_slice(&values[n..]);
                let what = format!("indirect sort of {count} pairs, {key_bits} bits");
                let got_keys: Vec<u32> = gpu::read_buffer(ctx, &key_buffer, keys.len());
                let got_values: Vec<u32> = gpu::read_buffer(ctx, &value_buffer, keys.len());
                assert_same(&got_keys, &want_keys, &format!("keys of {what}"));
                assert_same(&got_values, &want_values, &format!("values of {what}"));
            }
        }
    }

    /// The rasterizer's binning without a readback: scan per-item counts, then sort as many
    /// pairs as the scan's total (read from the scan's output on the GPU), in one encoder.
    #[test]
    fn sorts_as_many_pairs_as_a_scan_counted() {
        for ctx in both_contexts() {
            let mut rng = Pcg32::new(31, 2);
            let items = 5000usize;
            let counts: Vec<u32> = (0..items).map(|_| rng.below(5)).collect();
            let max_count = 4 * items as u32;
            let keys = random_keys(max_count as usize, 32);
            let values: Vec<u32> = (0..max_count).collect();
            let count_buffer = gpu::storage_buffer_from(ctx, "counts", &counts);
            let offsets = gpu::storage_buffer(ctx, "offsets", (items as u64 + 1) * 4);
            let key_buffer = gpu::storage_buffer_from(ctx, "keys", &keys);
            let value_buffer = gpu::storage_buffer_from(ctx, "values", &values);
            let mut scan = PrefixScan::new(ctx);
            let mut sort = RadixSort::new(ctx);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            scan.encode(ctx, &mut encoder, &count_buffer, &offsets, items as u32);
            sort.encode_indirect(
                ctx,
                &mut encoder,
                &key_buffer,
                &value_buffer,
                &offsets,
                items as u32,
                max_count,
                12,
            );
            ctx.queue.submit([encoder.finish()]);
            let total = counts.iter().sum::<u32>() as usize;
            let (mut want_keys, mut want_values) =
                reference_sort(&keys[..total], &values[..total], 12);
            want_keys.extend_from_slice(&keys[total..]);
            want_values.extend_from_slice(&values[total..]);
            let got_keys: Vec<u32> = gpu::read_buffer(ctx, &key_buffer, keys.len());
            let got_values: Vec<u32> = gpu::read_buffer(ctx, &value_buffer, keys.len());
            assert_same(&got_keys, &want_keys, "keys sorted by a scanned count");
            assert_same(
                &got_values,
                &want_values,
                "values sorted by a scanned count",
            );
        }
    }

    /// The rasterizer's pattern: one sorter, a 32-bit depth sort and a short tile-key sort of
    /// another length, in one encoder.
    #[test]
    fn sorts_in_one_encoder_see_their_own_parameters() {
        let ctx = test_util::test_context();
        let mut sort = RadixSort::new(ctx);
        let jobs = [
            (random_keys(9000, 20), 32u32),
            (random_keys(40_000, 21), 12),
        ];
        let buffers: Vec<(wgpu::Buffer, wgpu::Buffer)> = jobs
            .iter()
            .map(|(keys, _)| {
                let values: Vec<u32> = (0..keys.len() as u32).collect();
                (
                    gpu::storage_buffer_from(ctx, "keys", keys),
                    gpu::storage_buffer_from(ctx, "values", &values),
                )
            })
            .collect();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for ((keys, key_bits), (key_buffer, value_buffer)) in jobs.iter().zip(&buffers) {
            sort.encode(
                ctx,
                &mut encoder,
                key_buffer,
                value_buffer,
                keys.len() as u32,
                *key_bits,
            );
        }
        ctx.queue.submit([encoder.finish()]);
        for ((keys, key_bits), (key_buffer, value_buffer)) in jobs.iter().zip(&buffers) {
            let values: Vec<u32> = (0..keys.len() as u32).collect();
            let (want_keys, want_values) = reference_sort(keys, &values, *key_bits);
            let got_keys: Vec<u32> = gpu::read_buffer(ctx, key_buffer, keys.len());
            let got_values: Vec<u32> = gpu::read_buffer(ctx, value_buffer, keys.len());
            assert_same(&got_keys, &want_keys, "keys of a sort sharing an encoder");
            assert_same(
                &got_values,
                &want_values,
                "values of a sort sharing an encoder",
            );
        }
    }
}
