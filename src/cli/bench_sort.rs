//! `splatforge bench sort`: the radix sort (`gpu::sort`) on this device, for each block shape
//! asked for, on the training step's two kinds of input: the depth sort (~500k random 32-bit
//! keys) and the tile sort (~5M keys of 12 bits, so most keys are equal and stability matters).
//!
//! Every sort is also checked against a stable CPU sort, keys and values exactly. The test
//! suite runs on the software driver, whose subgroups of 8 and 32 KiB of workgroup memory pick
//! other block shapes than a large GPU does; this command proves a shape correct on the device
//! that will use it, in the same run that times it. (It was written when blocks of 2,048 keys
//! sorted faster on the H200 but trained to a lower test PSNR: BENCHMARKS.md, sixth session.)

use anyhow::bail;

use crate::gpu::sort::{RadixSort, SortConfig, reference_sort};
use crate::gpu::timing::StageTimer;
use crate::gpu::{self, GpuContext, GpuOptions};
use crate::rng::Pcg32;

/// Tiles of a 960x640 image (bench_tabletop): the range of the tile-like keys.
const TILES: u32 = 2400;
/// Bits the training sorts tile ids by for that many tiles: `ceil(log2(2400))`.
const TILE_KEY_BITS: u32 = 12;

/// Arguments of `splatforge bench sort`.
#[derive(clap::Args, Debug)]
pub struct SortBenchArgs {
    /// Keys of the depth-like case (random 32-bit keys).
    #[arg(long, default_value_t = 500_000)]
    pub depth_keys: u32,
    /// Keys of the tile-like case (random tile ids below 2,400, sorted by 12 bits).
    #[arg(long, default_value_t = 5_000_000)]
    pub tile_keys: u32,
    /// Keys per invocation to try (blocks of workgroup size x this), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,8,4")]
    pub keys_per_thread: Vec<u32>,
    /// Timed repetitions (the median is reported), after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub iters: u32,
}

/// One case's result.
struct Row {
    case: &'static str,
    keys: u32,
    config: SortConfig,
    /// Median GPU milliseconds per sort.
    ms: f64,
    /// The first position where the GPU's result differs from the stable CPU sort, if any.
    mismatch: Option<usize>,
}

pub fn run(args: &SortBenchArgs) -> anyhow::Result<()> {
    let ctx = GpuContext::new_headless(&GpuOptions::default())?;
    println!("# splatforge bench sort\n");
    println!("device: {}", ctx.describe());
    println!(
        "median of {} sorts; every result compared with a stable CPU sort\n",
        args.iters
    );
    println!("| case | keys | workgroup x keys per thread | subgroups | ms | result |");
    println!("|---|---:|---|---|---:|---|");
    let rows = measure(&ctx, args)?;
    for row in &rows {
        let result = match row.mismatch {
            None => "exact".to_owned(),
            Some(at) => format!("**WRONG** from position {at}"),
        };
        println!(
            "| {} | {} | {} x {} | {} | {:.3} | {result} |",
            row.case,
            row.keys,
            row.config.workgroup_size,
            row.config.keys_per_thread,
            row.config.subgroups,
            row.ms
        );
    }
    if rows.iter().any(|r| r.mismatch.is_some()) {
        bail!("a block shape sorted wrongly on this device (see the table)");
    }
    Ok(())
}

/// Both cases for every block shape that fits the device, in table order.
fn measure(ctx: &GpuContext, args: &SortBenchArgs) -> anyhow::Result<Vec<Row>> {
    if args.iters == 0 || args.keys_per_thread.is_empty() {
        bail!("--iters and --keys-per-thread need at least one value");
    }
    let Some(mut timer) = StageTimer::new(ctx, 2) else {
        bail!("this device has no timestamp queries inside encoders");
    };
    let device_config = SortConfig::for_device(ctx);
    let memory = u64::from(ctx.limits.max_compute_workgroup_storage_size);
    let mut rows = Vec::new();
    for &keys_per_thread in &args.keys_per_thread {
        let config = SortConfig {
            keys_per_thread,
            ..device_config
        };
        if !(1..=16).contains(&keys_per_thread) || config.workgroup_memory_bytes() > memory {
            bail!("{keys_per_thread} keys per invocation do not fit this device (1 to 16)");
        }
        let mut sort = RadixSort::with_config(ctx, config);
        let cases = [
            ("depth-like, 32 bits", args.depth_keys, 32, u32::MAX),
            ("tile-like, 12 bits", args.tile_keys, TILE_KEY_BITS, TILES),
        ];
        for (case, count, key_bits, below) in cases {
            let mut rng = Pcg32::new(u64::from(count), u64::from(key_bits));
            let keys: Vec<u32> = (0..count)
                .map(|_| match below {
                    u32::MAX => rng.next_u32(),
                    n => rng.next_u32() % n,
                })
                .collect();
            let values: Vec<u32> = (0..count).collect();
            let key_buffer = gpu::storage_buffer_from(ctx, "bench sort keys", &keys);
            let value_buffer = gpu::storage_buffer_from(ctx, "bench sort values", &values);
            let mut times = Vec::new();
            for iteration in 0..=args.iters {
                // The sort works in place: every repetition starts from the same input.
                gpu::write_buffer(ctx, &key_buffer, 0, &keys);
                gpu::write_buffer(ctx, &value_buffer, 0, &values);
                timer.reset();
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                timer.mark(&mut encoder, "begin");
                sort.encode(
                    ctx,
                    &mut encoder,
                    &key_buffer,
                    &value_buffer,
                    count,
                    key_bits,
                );
                timer.mark(&mut encoder, "sort");
                timer.resolve(&mut encoder);
                ctx.queue.submit([encoder.finish()]);
                let ms = timer.read_ms(ctx)[0].1;
                if iteration > 0 {
                    times.push(ms);
                }
            }
            let got_keys: Vec<u32> = gpu::read_buffer(ctx, &key_buffer, count as usize);
            let got_values: Vec<u32> = gpu::read_buffer(ctx, &value_buffer, count as usize);
            rows.push(Row {
                case,
                keys: count,
                config,
                ms: super::bench::median(&mut times),
                mismatch: first_mismatch(&keys, key_bits, &got_keys, &got_values),
            });
        }
    }
    Ok(rows)
}

/// Where `(got_keys, got_values)` first differs from [`reference_sort`] of `keys` with their
/// original positions as values.
fn first_mismatch(
    keys: &[u32],
    key_bits: u32,
    got_keys: &[u32],
    got_values: &[u32],
) -> Option<usize> {
    let positions: Vec<u32> = (0..keys.len() as u32).collect();
    let (want_keys, want_values) = reference_sort(keys, &positions, key_bits);
    want_keys
        .iter()
        .zip(&want_values)
        .zip(got_keys.iter().zip(got_values))
        .position(|(want, got)| want != got)
        .or((got_keys.len() != keys.len()).then_some(got_keys.len().min(keys.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::test_context;

    #[test]
    fn every_block_shape_sorts_exactly_and_is_timed() {
        let args = SortBenchArgs {
            depth_keys: 9_000,
            tile_keys: 20_000,
            keys_per_thread: vec![16, 8, 2],
            iters: 1,
        };
        let rows = measure(test_context(), &args).unwrap();
        assert_eq!(rows.len(), 6);
        for row in &rows {
            assert_eq!(row.mismatch, None, "{} {:?}", row.case, row.config);
            assert!(
                row.ms > 0.0 && row.ms.is_finite(),
                "{}: {}",
                row.case,
                row.ms
            );
        }
        let shapes: Vec<u32> = rows.iter().map(|r| r.config.keys_per_thread).collect();
        assert_eq!(shapes, [16, 16, 8, 8, 2, 2]);
    }

    #[test]
    fn a_wrong_order_is_found() {
        let keys = [5, 1, 5, 0];
        // Stable by the low 3 bits: 0 (3), 1 (1), 5 (0), 5 (2).
        assert_eq!(first_mismatch(&keys, 3, &[0, 1, 5, 5], &[3, 1, 0, 2]), None);
        // Equal keys swapped: unstable.
        assert_eq!(
            first_mismatch(&keys, 3, &[0, 1, 5, 5], &[3, 1, 2, 0]),
            Some(2)
        );
        assert_eq!(
            first_mismatch(&keys, 3, &[1, 0, 5, 5], &[1, 3, 0, 2]),
            Some(0)
        );
        assert_eq!(first_mismatch(&keys, 3, &[0, 1, 5], &[3, 1, 0]), Some(3));
    }
}
