//! Exclusive prefix sums of `u32` arrays on the GPU (`shaders/scan.wgsl`).
//!
//! Reduce-then-scan over tiles of `workgroup_size * items_per_thread` values: tile sums are
//! scanned one level up (recursively), then every tile is scanned from its tile's offset. The
//! element count lives on the GPU: a one-invocation `setup` kernel turns it into per-level
//! parameters, so [`PrefixScan::encode_indirect`] can scan a count that another kernel produced
//! without a CPU readback. Each level is dispatched for its largest tile count (tiles past the
//! real count return at once), not indirectly: an indirect dispatch costs ~4 us more on the
//! H200 (`splatforge bench dispatch`). [`PrefixScan::encode`] is the same
//! with a count known on the CPU (uploaded through a copy recorded in the caller's encoder, so
//! several scans in one encoder each see their own count).
//!
//! Also home of a few helpers the radix sort (`gpu::sort`) shares: the kernel specialisation for
//! subgroups, per-call parameter uploads and buffer bindings.

use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

use super::{GpuCapabilities, GpuContext, Recorder, ShaderDefs, compute_pipeline};

/// Bytes per parameter slot (one per scan level or sort pass): the largest uniform offset
/// alignment wgpu allows, so any slot can be bound at its offset on any adapter.
pub(crate) const PARAM_SLOT_BYTES: u64 = 256;

/// Scan levels below the top one, at most: with 2048-value tiles two suffice for 2^32 values;
/// the margin is for the tiny tiles the tests use.
const MAX_LEVELS: u32 = 7;

/// Largest tile the shader's workgroup array holds (`MAX_TILE` in scan.wgsl).
const MAX_TILE: u32 = 2048;

/// Tuning of the scan kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanConfig {
    /// Invocations per workgroup (a power of two, 64..=256).
    pub workgroup_size: u32,
    /// Values per invocation; a tile is `workgroup_size * items_per_thread` (at most 2048).
    pub items_per_thread: u32,
    /// Workgroups per dispatch dimension before a dispatch is folded into two dimensions (the
    /// device limit; tests lower it to exercise the folding).
    pub max_workgroups_per_dimension: u32,
}

impl ScanConfig {
    /// 256 invocations of 8 values: 2048-value tiles (8 KiB of workgroup memory, fine on every
    /// adapter), three levels for 2^28 values.
    pub fn for_device(ctx: &GpuContext) -> Self {
        Self {
            workgroup_size: 256,
            items_per_thread: 8,
            max_workgroups_per_dimension: ctx.limits.max_compute_workgroups_per_dimension,
        }
    }

    pub fn tile_size(&self) -> u32 {
        self.workgroup_size * self.items_per_thread
    }

    /// Element counts of the levels below the top one, for `count` values: level 0 is the
    /// input, level `l + 1` holds one sum per tile of level `l`. The top level (at most one
    /// tile) holds the tile sums of the last of them, or is the input when there are none.
    fn level_counts(&self, count: u32) -> Vec<u32> {
        let tile = self.tile_size();
        let mut counts = Vec::new();
        let mut n = count;
        while n > tile {
            counts.push(n);
            n = n.div_ceil(tile);
        }
        counts
    }
}

/// Whether the scan and sort kernels can use subgroups with workgroups of `workgroup_size`: the
/// device has them and every workgroup is made of whole subgroups (the kernels order
/// invocations by subgroup id and lane).
pub(crate) fn subgroups_usable(caps: &GpuCapabilities, workgroup_size: u32) -> bool {
    caps.subgroups
        && caps.subgroup_min_size > 0
        && caps.subgroup_max_size <= workgroup_size
        && workgroup_size.is_multiple_of(caps.subgroup_max_size)
}

/// Shader definitions for the scan and sort kernels: `SUBGROUPS` or nothing.
pub(crate) fn kernel_defs(subgroups: bool) -> ShaderDefs {
    let mut defs = ShaderDefs::new();
    if subgroups {
        defs.define("SUBGROUPS");
    }
    defs
}

/// Where a scan's or sort's element count comes from.
#[derive(Clone, Copy)]
pub(crate) enum CallCount<'a> {
    /// Known on the CPU: it travels with the call's parameters.
    Known(u32),
    /// Word `word` of `buffer` (which needs `STORAGE` usage), read when the commands run.
    OnGpu { buffer: &'a wgpu::Buffer, word: u32 },
}

/// The bind group of a `setup` kernel (scan.wgsl, radix_sort.wgsl) for one call: `call` (its
/// per-call parameters; word 0 is set here to where the count is, word `known_count_word`
/// holds a known count) at binding 10, the count at 11 and `params`, which `setup` fills, at
/// 12. The parameters get a buffer of their own, created with its contents: each call in an
/// encoder sees its own values without a copy command (a copy between two passes costs the
/// H200 ~5 us, `splatforge bench dispatch`).
pub(crate) fn setup_bind_group(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    mut call: Vec<u32>,
    known_count_word: u32,
    count: CallCount<'_>,
    params: &wgpu::Buffer,
) -> wgpu::BindGroup {
    let create = |words: &[u32]| {
        ctx.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("kernel call parameters"),
                contents: bytemuck::cast_slice(words),
                usage: wgpu::BufferUsages::STORAGE,
            })
    };
    let (call_buffer, source) = match count {
        CallCount::Known(n) => {
            call[0] = known_count_word;
            call[known_count_word as usize] = n;
            let buffer = create(&call);
            let source = CountSource::new(ctx, &buffer, known_count_word);
            debug_assert_eq!(source.index, known_count_word);
            (buffer, source)
        }
        CallCount::OnGpu { buffer, word } => {
            let source = CountSource::new(ctx, buffer, word);
            call[0] = source.index;
            (create(&call), source)
        }
    };
    bind_group(
        ctx,
        label,
        pipeline,
        vec![
            (10, bind_whole(ctx, &call_buffer)),
            (11, source.binding()),
            (12, bind_whole(ctx, params)),
        ],
    )
}

/// A binding of `buffer` from its start, as long as the device allows one binding to be.
pub(crate) fn bind_whole<'a>(
    ctx: &GpuContext,
    buffer: &'a wgpu::Buffer,
) -> wgpu::BindingResource<'a> {
    let limit = ctx.max_binding_bytes() / 4 * 4;
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: NonZeroU64::new(buffer.size().min(limit) / 4 * 4),
    })
}

/// A binding of parameter slot `slot` (`bytes` long) of `buffer`.
pub(crate) fn bind_slot(buffer: &wgpu::Buffer, slot: u32, bytes: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: u64::from(slot) * PARAM_SLOT_BYTES,
        size: NonZeroU64::new(bytes),
    })
}

/// A bind group for group 0 of `pipeline` from `(binding, resource)` pairs.
pub(crate) fn bind_group(
    ctx: &GpuContext,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    entries: Vec<(u32, wgpu::BindingResource<'_>)>,
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = entries
        .into_iter()
        .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource })
        .collect();
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    })
}

/// Where a kernel's `setup` reads the element count: word `index` of a small binding of
/// `buffer` starting at `offset` (aligned down to the storage offset alignment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CountSource {
    buffer: wgpu::Buffer,
    offset: u64,
    size: u64,
    pub(crate) index: u32,
}

impl CountSource {
    /// The count at word `word` of `buffer` (which needs `STORAGE` usage).
    pub(crate) fn new(ctx: &GpuContext, buffer: &wgpu::Buffer, word: u32) -> Self {
        let byte = u64::from(word) * 4;
        assert!(
            byte + 4 <= buffer.size(),
            "count word {word} is past the end of its {}-byte buffer",
            buffer.size()
        );
        let alignment = u64::from(ctx.limits.min_storage_buffer_offset_alignment);
        let offset = byte / alignment * alignment;
        let size = (buffer.size() - offset).min(PARAM_SLOT_BYTES) / 4 * 4;
        Self {
            buffer: buffer.clone(),
            offset,
            size,
            index: ((byte - offset) / 4) as u32,
        }
    }

    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: NonZeroU64::new(self.size),
        })
    }
}

/// One level above the input: the tile sums of the level below and their scan.
struct LevelScratch {
    sums: wgpu::Buffer,
    scanned: wgpu::Buffer,
    capacity: u32,
}

/// What the cached bind groups were built for.
#[derive(Clone, PartialEq, Eq)]
struct BindingKey {
    input: wgpu::Buffer,
    output: wgpu::Buffer,
    levels: u32,
    scratch_generation: u64,
}

struct Bindings {
    key: BindingKey,
    reduce: Vec<wgpu::BindGroup>,
    scan_add: Vec<wgpu::BindGroup>,
    scan_top: wgpu::BindGroup,
}

/// Words of the per-call parameters (`ScanCall` in scan.wgsl, plus the count itself for
/// [`PrefixScan::encode`]).
const CALL_WORDS: usize = 5;
/// Where [`PrefixScan::encode`] puts the count in the call-parameter buffer.
const KNOWN_COUNT_WORD: u32 = 4;

/// GPU exclusive prefix sum of `u32` arrays, with cached pipelines, scratch buffers and bind
/// groups (reuse one per call site: scratch only grows).
pub struct PrefixScan {
    config: ScanConfig,
    setup: wgpu::ComputePipeline,
    reduce: wgpu::ComputePipeline,
    scan_top: wgpu::ComputePipeline,
    scan_add: wgpu::ComputePipeline,
    /// One `LevelParams` slot per level, written by `setup`.
    level_params: wgpu::Buffer,
    scratch: Vec<LevelScratch>,
    scratch_generation: u64,
    bindings: Option<Bindings>,
    /// Workgroups (folded x, y, z) per level below the top of the last prepared scan, for its
    /// largest count.
    level_groups: Vec<(u32, u32, u32)>,
}

impl PrefixScan {
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_config(ctx, ScanConfig::for_device(ctx))
    }

    /// A scan with explicit tuning (tests use tiny tiles to exercise several levels cheaply).
    pub fn with_config(ctx: &GpuContext, config: ScanConfig) -> Self {
        assert!(
            config.workgroup_size.is_power_of_two()
                && (64..=256).contains(&config.workgroup_size)
                && config.items_per_thread >= 1
                && config.tile_size() <= MAX_TILE
                && config.max_workgroups_per_dimension >= 1,
            "unsupported scan configuration {config:?}"
        );
        let defs = kernel_defs(subgroups_usable(&ctx.capabilities, config.workgroup_size));
        let constants = [
            ("WORKGROUP_SIZE", f64::from(config.workgroup_size)),
            ("ITEMS_PER_THREAD", f64::from(config.items_per_thread)),
        ];
        let pipeline = |entry| compute_pipeline(ctx, "scan.wgsl", entry, &defs, &constants);
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
            reduce: pipeline("reduce"),
            scan_top: pipeline("scan_top"),
            scan_add: pipeline("scan_add"),
            level_params: buffer(
                "scan level parameters",
                u64::from(MAX_LEVELS + 1) * PARAM_SLOT_BYTES,
                U::UNIFORM | U::STORAGE,
            ),
            scratch: Vec::new(),
            scratch_generation: 0,
            bindings: None,
            level_groups: Vec::new(),
        }
    }

    pub fn config(&self) -> ScanConfig {
        self.config
    }

    /// Encodes an exclusive prefix sum of `input[0..count]` (u32) into `output[0..count]` and
    /// writes the total into `output[count]` (so `output` holds at least count+1 u32).
    /// `input` and `output` are different buffers. `count` may be 0 (then output[0] = 0).
    /// Never submits or waits.
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        count: u32,
    ) {
        self.record(ctx, &mut Recorder::new(encoder), input, output, count);
    }

    /// [`PrefixScan::encode`] into `rec`'s open compute pass.
    pub fn record(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        count: u32,
    ) {
        self.record_with_count(ctx, rec, input, output, CallCount::Known(count), count);
    }

    /// Like [`PrefixScan::encode`], with the count read on the GPU from word
    /// `count_offset_u32` of `count_buffer` (which needs `STORAGE` usage) when the commands
    /// run, clamped to `max_count`. `input` must hold `max_count` values and `output`
    /// `max_count + 1`; the total goes to `output[count]`. Never submits or waits.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_indirect(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        count_buffer: &wgpu::Buffer,
        count_offset_u32: u32,
        max_count: u32,
    ) {
        let count = CallCount::OnGpu {
            buffer: count_buffer,
            word: count_offset_u32,
        };
        let rec = &mut Recorder::new(encoder);
        self.record_with_count(ctx, rec, input, output, count, max_count);
    }

    fn record_with_count(
        &mut self,
        ctx: &GpuContext,
        rec: &mut Recorder,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        count: CallCount<'_>,
        max_count: u32,
    ) {
        let setup = self.prepare(ctx, input, output, count, max_count);
        let pass = rec.pass();
        pass.set_pipeline(&self.setup);
        pass.set_bind_group(0, &setup, &[]);
        pass.dispatch_workgroups(1, 1, 1);
        self.record_levels(pass);
    }

    /// Sizes scratch and builds the bind groups of a scan of at most `max_count` values whose
    /// count `setup` will read from `count`; returns `setup`'s, which holds this call's
    /// parameters.
    fn prepare(
        &mut self,
        ctx: &GpuContext,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
        count: CallCount<'_>,
        max_count: u32,
    ) -> wgpu::BindGroup {
        assert!(input != output, "PrefixScan: input and output must differ");
        assert!(
            input.size() >= u64::from(max_count) * 4,
            "PrefixScan: input holds {} bytes, {max_count} values need {}",
            input.size(),
            u64::from(max_count) * 4
        );
        assert!(
            output.size() >= (u64::from(max_count) + 1) * 4,
            "PrefixScan: output holds {} bytes, {max_count} values and the total need {}",
            output.size(),
            (u64::from(max_count) + 1) * 4
        );
        let level_counts = self.config.level_counts(max_count);
        let levels = level_counts.len() as u32;
        assert!(
            levels <= MAX_LEVELS,
            "PrefixScan: {max_count} values need too many levels"
        );
        self.ensure_scratch(ctx, &level_counts);
        let tile = self.config.tile_size();
        let per_dimension = self.config.max_workgroups_per_dimension;
        self.level_groups = level_counts
            .iter()
            .map(|&n| super::dispatch_size_1d(n.div_ceil(tile), per_dimension))
            .collect();

        let mut call = vec![0u32; CALL_WORDS];
        call[1] = max_count;
        call[2] = levels;
        call[3] = self.config.tile_size();
        let setup = setup_bind_group(
            ctx,
            "scan setup",
            &self.setup,
            call,
            KNOWN_COUNT_WORD,
            count,
            &self.level_params,
        );

        let key = BindingKey {
            input: input.clone(),
            output: output.clone(),
            levels,
            scratch_generation: self.scratch_generation,
        };
        if self.bindings.as_ref().map(|b| &b.key) != Some(&key) {
            self.bindings = Some(self.build_bindings(ctx, key));
        }
        setup
    }

    /// Grows the per-level scratch buffers to hold `level_counts` (never shrinks).
    fn ensure_scratch(&mut self, ctx: &GpuContext, level_counts: &[u32]) {
        let tile = self.config.tile_size();
        for (l, &count) in level_counts.iter().enumerate() {
            let needed = count.div_ceil(tile);
            if self.scratch.get(l).is_some_and(|s| s.capacity >= needed) {
                continue;
            }
            // Some slack, so slowly growing counts do not reallocate every call.
            let capacity = needed + needed / 8 + 16;
            let scratch = LevelScratch {
                sums: super::storage_buffer(ctx, "scan tile sums", u64::from(capacity) * 4),
                scanned: super::storage_buffer(
                    ctx,
                    "scan tile offsets",
                    (u64::from(capacity) + 1) * 4,
                ),
                capacity,
            };
            if l < self.scratch.len() {
                self.scratch[l] = scratch;
            } else {
                self.scratch.push(scratch);
            }
            self.scratch_generation += 1;
        }
    }

    fn build_bindings(&self, ctx: &GpuContext, key: BindingKey) -> Bindings {
        let levels = key.levels as usize;
        // Level l reads `sources[l]` and writes `destinations[l]`; level l + 1 holds its tile
        // sums (`scratch[l].sums`) and their scan (`scratch[l].scanned`).
        let mut sources = vec![&key.input];
        let mut destinations = vec![&key.output];
        for s in &self.scratch[..levels] {
            sources.push(&s.sums);
            destinations.push(&s.scanned);
        }
        let params = |l: usize| bind_slot(&self.level_params, l as u32, 16);
        let reduce = (0..levels)
            .map(|l| {
                bind_group(
                    ctx,
                    "scan reduce",
                    &self.reduce,
                    vec![
                        (0, params(l)),
                        (1, bind_whole(ctx, sources[l])),
                        (2, bind_whole(ctx, &self.scratch[l].sums)),
                    ],
                )
            })
            .collect();
        let scan_add = (0..levels)
            .map(|l| {
                bind_group(
                    ctx,
                    "scan add",
                    &self.scan_add,
                    vec![
                        (0, params(l)),
                        (1, bind_whole(ctx, sources[l])),
                        (2, bind_whole(ctx, destinations[l])),
                        (3, bind_whole(ctx, &self.scratch[l].scanned)),
                    ],
                )
            })
            .collect();
        let scan_top = bind_group(
            ctx,
            "scan top",
            &self.scan_top,
            vec![
                (0, params(levels)),
                (1, bind_whole(ctx, sources[levels])),
                (2, bind_whole(ctx, destinations[levels])),
            ],
        );
        Bindings {
            key,
            reduce,
            scan_add,
            scan_top,
        }
    }

    fn bindings(&self) -> &Bindings {
        self.bindings
            .as_ref()
            .expect("PrefixScan: prepare() before recording")
    }

    /// Records the scan itself, after its `setup` dispatch.
    fn record_levels(&self, pass: &mut wgpu::ComputePass<'_>) {
        let bindings = self.bindings();
        let levels = self.level_groups.len();
        pass.set_pipeline(&self.reduce);
        for (group, &(x, y, z)) in bindings.reduce.iter().zip(&self.level_groups) {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
        pass.set_pipeline(&self.scan_top);
        pass.set_bind_group(0, &bindings.scan_top, &[]);
        pass.dispatch_workgroups(1, 1, 1);
        pass.set_pipeline(&self.scan_add);
        for l in (0..levels).rev() {
            let (x, y, z) = self.level_groups[l];
            pass.set_bind_group(0, &bindings.scan_add[l], &[]);
            pass.dispatch_workgroups(x, y, z);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gpu::{self, test_util};
    use crate::rng::Pcg32;

    /// Panics naming the first differing element (printing millions of values helps nobody).
    pub(crate) fn assert_same(got: &[u32], want: &[u32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths differ");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "{what}: element {i} of {} is {} (expected {})",
                got.len(),
                got[i],
                want[i]
            );
        }
    }

    /// Exclusive prefix sum with the total appended.
    fn cpu_exclusive_scan(values: &[u32]) -> Vec<u32> {
        let mut out = Vec::with_capacity(values.len() + 1);
        let mut sum = 0u32;
        for &v in values {
            out.push(sum);
            sum = sum.wrapping_add(v);
        }
        out.push(sum);
        out
    }

    /// Values below 1000, so a million of them sum to less than 2^32.
    fn random_values(count: usize, seed: u64) -> Vec<u32> {
        let mut rng = Pcg32::new(seed, 11);
        (0..count).map(|_| rng.below(1000)).collect()
    }

    /// An output buffer of `len` words filled with a marker, so unwritten words show.
    fn poisoned(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
        gpu::storage_buffer_from(ctx, "scan output", &vec![0xdead_beef_u32; len])
    }

    fn gpu_scan(ctx: &GpuContext, scan: &mut PrefixScan, values: &[u32]) -> Vec<u32> {
        let input = gpu::storage_buffer_from(ctx, "scan input", values);
        let output = poisoned(ctx, values.len() + 1);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        scan.encode(ctx, &mut encoder, &input, &output, values.len() as u32);
        ctx.queue.submit([encoder.finish()]);
        gpu::read_buffer(ctx, &output, values.len() + 1)
    }

    fn check_sizes(ctx: &GpuContext, scan: &mut PrefixScan, sizes: &[usize]) {
        for (i, &size) in sizes.iter().enumerate() {
            let values = random_values(size, 100 + i as u64);
            let got = gpu_scan(ctx, scan, &values);
            let what = format!("scan of {size} values ({:?})", scan.config());
            assert_same(&got, &cpu_exclusive_scan(&values), &what);
        }
    }

    const EDGE_SIZES: [usize; 7] = [0, 1, 255, 256, 257, 4097, 1_000_000];

    #[test]
    fn scan_matches_cpu() {
        let ctx = test_util::test_context();
        // lavapipe has subgroups (of 8): this is the subgroup path.
        assert!(ctx.capabilities.subgroups, "{}", ctx.describe());
        assert!(subgroups_usable(&ctx.capabilities, 256));
        let mut scan = PrefixScan::new(ctx);
        // 4M values take three levels' worth of tiles (2048 of them) at default tiles.
        check_sizes(ctx, &mut scan, &EDGE_SIZES);
        check_sizes(ctx, &mut scan, &[4 << 20]);
    }

    #[test]
    fn scan_fallback_matches_cpu() {
        let ctx = test_util::test_context_fallback();
        assert!(!subgroups_usable(&ctx.capabilities, 256));
        let mut scan = PrefixScan::new(ctx);
        check_sizes(ctx, &mut scan, &EDGE_SIZES);
    }

    #[test]
    fn small_tiles_use_several_levels_and_folded_dispatches() {
        for ctx in [
            test_util::test_context(),
            test_util::test_context_fallback(),
        ] {
            let config = ScanConfig {
                workgroup_size: 64,
                items_per_thread: 2,
                max_workgroups_per_dimension: 5,
            };
            // 128-value tiles: 300,000 values are 2344 tiles, then 19, then one: two levels
            // below the top, and up to 469 x 5 folded workgroups.
            assert_eq!(config.level_counts(300_000), vec![300_000, 2344]);
            assert_eq!(config.level_counts(16_385).len(), 2);
            let mut scan = PrefixScan::with_config(ctx, config);
            check_sizes(ctx, &mut scan, &[0, 1, 127, 128, 129, 16_385, 300_000]);
        }
    }

    #[test]
    fn indirect_scan_reads_the_count_on_the_gpu() {
        for ctx in [
            test_util::test_context(),
            test_util::test_context_fallback(),
        ] {
            let mut scan = PrefixScan::new(ctx);
            let max_count = 20_000u32;
            let values = random_values(max_count as usize, 7);
            let input = gpu::storage_buffer_from(ctx, "scan input", &values);
            // Counts at unaligned word offsets; the last exceeds max_count and is clamped.
            let cases = [(13_000u32, 67u32), (0, 1), (max_count, 100), (50_000, 3)];
            for (count, word) in cases {
                let mut words = vec![0xffff_ffff_u32; 128];
                words[word as usize] = count;
                let count_buffer = gpu::storage_buffer_from(ctx, "count", &words);
                let output = poisoned(ctx, max_count as usize + 2);
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                scan.encode_indirect(
                    ctx,
                    &mut encoder,
                    &input,
                    &output,
                    &count_buffer,
                    word,
                    max_count,
                );
                ctx.queue.submit([encoder.finish()]);
                let got: Vec<u32> = gpu::read_buffer(ctx, &output, max_count as usize + 2);
                let n = count.min(max_count) as usize;
                let mut want = cpu_exclusive_scan(&values[..n]);
                // Nothing past the total is touched.
                want.resize(max_count as usize + 2, 0xdead_beef);
                assert_same(&got, &want, &format!("indirect scan of {count} values"));
            }
        }
    }

    #[test]
    fn scans_in_one_encoder_see_their_own_counts() {
        let ctx = test_util::test_context();
        let mut scan = PrefixScan::new(ctx);
        let sizes = [5000usize, 300, 70_000];
        let inputs: Vec<Vec<u32>> = (0..3)
            .map(|i| random_values(sizes[i], 40 + i as u64))
            .collect();
        let buffers: Vec<(wgpu::Buffer, wgpu::Buffer)> = inputs
            .iter()
            .map(|v| {
                (
                    gpu::storage_buffer_from(ctx, "in", v),
                    poisoned(ctx, v.len() + 1),
                )
            })
            .collect();
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for (values, (input, output)) in inputs.iter().zip(&buffers) {
            scan.encode(ctx, &mut encoder, input, output, values.len() as u32);
        }
        ctx.queue.submit([encoder.finish()]);
        for (values, (_, output)) in inputs.iter().zip(&buffers) {
            let got: Vec<u32> = gpu::read_buffer(ctx, output, values.len() + 1);
            assert_same(&got, &cpu_exclusive_scan(values), "scan sharing an encoder");
        }
    }
}
