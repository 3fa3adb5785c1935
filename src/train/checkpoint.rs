//! Checkpoints: everything needed to resume a training run exactly where it stopped.
//!
//! File layout (`<model>/chkpnt<N>.sfck`, little endian):
//!
//! ```text
//! magic      8 bytes  "SFCKPT01"
//! meta_len   u64      length of the JSON metadata
//! meta       JSON     CheckpointMeta (iteration, RNG, view stack, Adam steps, ...)
//! arrays     for each array in `ARRAY_ORDER`: u64 element count, then the elements (4 bytes each)
//! checksum   u64      FNV-1a over every byte before it
//! ```
//!
//! Arrays are stored raw (bit-exact). The checksum and the length checks turn a truncated or
//! damaged file into a clear error rather than a silently wrong resume. The metadata records
//! the scene the state belongs to (its source and views); [`Checkpoint::check_resumable`]
//! refuses to resume it on another scene and checks the restored values. Copying the state off
//! the GPU into a [`Checkpoint`] is `train::state_capture`'s job.

use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use bevy::prelude::*;

use super::TrainSet;
use super::outputs;
use super::report::ReportOutputs;
use super::state::{StepContext, StepGpu, TrainGpuState, TrainState};
use super::state_capture::{self, GoodStates};
use crate::app::Gpu;
use crate::fsutil;
use crate::gpu;
use crate::model::{
    DensifyStats, GaussianCloud, Gaussians, OptimizerState, ParamBuffers, ParamGroup,
};
use crate::rng::Pcg32;
use crate::views::{SceneIdentity, SceneInfo, TrainView};

const MAGIC: &[u8; 8] = b"SFCKPT01";

/// Scalar training state stored as JSON at the start of the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// The last completed iteration.
    pub iteration: u32,
    /// Active SH degree at that point.
    pub active_sh_degree: u32,
    /// Adam steps per parameter group, in `ParamGroup::ALL` order.
    pub adam_steps: [u32; 6],
    /// The view-sampling RNG and the views left in this epoch's stack (dataset indices).
    pub rng: Pcg32,
    pub view_stack: Vec<u32>,
    /// Smoothed loss shown by the progress bar.
    pub ema_loss: f64,
    /// Training seconds so far (evaluation excluded).
    pub elapsed_s: f64,
    /// Densifications done so far (seeds the split RNG).
    pub densify_count: u32,
    /// The scene the state was trained on (absent in checkpoints of older versions).
    #[serde(default)]
    pub scene: Option<SceneIdentity>,
}

/// A complete checkpoint in CPU memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub params: Gaussians,
    pub exp_avg: Gaussians,
    pub exp_avg_sq: Gaussians,
    /// Densification accumulators, one value per Gaussian.
    pub grad_norm_sum: Vec<f32>,
    pub visible_count: Vec<u32>,
    pub max_radius: Vec<f32>,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    // The I/O error is part of the message, not a `source` (a printed chain would repeat it).
    #[error("{path}: {error}")]
    Io { path: String, error: io::Error },
    #[error("{path}: not a splatforge checkpoint (bad magic bytes)")]
    BadMagic { path: String },
    #[error("{path}: damaged checkpoint: {what}")]
    Damaged { path: String, what: String },
}

impl Checkpoint {
    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let io_err = |error| CheckpointError::Io {
            path: path.display().to_string(),
            error,
        };
        self.check_consistent()
            .map_err(|what| CheckpointError::Damaged {
                path: path.display().to_string(),
                what,
            })?;
        let meta = serde_json::to_vec(&self.meta).map_err(|e| io_err(io::Error::other(e)))?;
        fsutil::write_atomic_with(path, |w| {
            let mut w = HashingWriter::new(w);
            w.write_all(MAGIC)?;
            w.write_all(&(meta.len() as u64).to_le_bytes())?;
            w.write_all(&meta)?;
            for array in self.arrays() {
                w.write_all(&(array.len() as u64).to_le_bytes())?;
                w.write_all(bytemuck::cast_slice(array))?;
            }
            let hash = w.hash;
            w.inner.write_all(&hash.to_le_bytes())
        })
        .map_err(io_err)
    }

    /// Reads and verifies a checkpoint written by [`Checkpoint::write`].
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
            path: name.clone(),
            error,
        })?;
        let damaged = |what: String| CheckpointError::Damaged {
            path: name.clone(),
            what,
        };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(CheckpointError::BadMagic { path: name.clone() });
        }
        if bytes.len() < MAGIC.len() + 16 {
            return Err(damaged("truncated".into()));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let stored = u64::from_le_bytes(tail.try_into().expect("8 bytes"));
        if fnv1a(FNV_OFFSET, body) != stored {
            return Err(damaged(
                "checksum mismatch (the file is truncated or corrupted)".into(),
            ));
        }
        let mut reader = Reader {
            bytes: body,
            pos: MAGIC.len(),
        };
        let meta_len = reader
            .u64()
            .ok_or_else(|| damaged("truncated header".into()))?;
        let meta_bytes = reader
            .take(meta_len)
            .ok_or_else(|| damaged("truncated metadata".into()))?;
        let meta: CheckpointMeta = serde_json::from_slice(meta_bytes)
            .map_err(|e| damaged(format!("bad metadata: {e}")))?;

        let mut arrays: Vec<Vec<u32>> = Vec::new();
        for label in array_labels() {
            let len = reader
                .u64()
                .ok_or_else(|| damaged(format!("truncated before array {label}")))?;
            let data = len
                .checked_mul(4)
                .and_then(|n| reader.take(n))
                .ok_or_else(|| damaged(format!("array {label} is truncated")))?;
            arrays.push(
                data.chunks_exact(4)
                    .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                    .collect(),
            );
        }
        if reader.pos != body.len() {
            return Err(damaged("unexpected bytes after the last array".into()));
        }
        let mut arrays = arrays.into_iter();
        let mut next = || -> Vec<f32> {
            bytemuck::cast_slice(&arrays.next().expect("one entry per label")).to_vec()
        };
        let mut gaussians = || {
            let mut g = Gaussians::default();
            for group in ParamGroup::ALL {
                *g.group_mut(group) = next();
            }
            g
        };
        let (params, exp_avg, exp_avg_sq) = (gaussians(), gaussians(), gaussians());
        let grad_norm_sum = next();
        let visible_count: Vec<u32> = bytemuck::cast_slice(&next()).to_vec();
        let max_radius = next();

        let mut checkpoint = Checkpoint {
            meta,
            params,
            exp_avg,
            exp_avg_sq,
            grad_norm_sum,
            visible_count,
            max_radius,
        };
        checkpoint.infer_sh_degree().map_err(&damaged)?;
        checkpoint.check_consistent().map_err(damaged)?;
        Ok(checkpoint)
    }

    /// The arrays in file order.
    fn arrays(&self) -> Vec<&[f32]> {
        let mut out = Vec::new();
        for g in [&self.params, &self.exp_avg, &self.exp_avg_sq] {
            for group in ParamGroup::ALL {
                out.push(g.group(group));
            }
        }
        out.push(&self.grad_norm_sum);
        out.push(bytemuck::cast_slice(&self.visible_count));
        out.push(&self.max_radius);
        out
    }

    /// The SH degree is implied by the width of f_rest.
    fn infer_sh_degree(&mut self) -> Result<(), String> {
        let n = self.params.len();
        let rest = self.params.sh_rest.len();
        let degree = (0..=crate::sh::MAX_SH_DEGREE)
            .find(|&d| ParamGroup::ShRest.width(d) * n == rest || (n == 0 && rest == 0))
            .ok_or_else(|| format!("f_rest holds {rest} values for {n} Gaussians"))?;
        for g in [&mut self.params, &mut self.exp_avg, &mut self.exp_avg_sq] {
            g.sh_degree = degree;
        }
        Ok(())
    }

    fn check_consistent(&self) -> Result<(), String> {
        let n = self.params.len();
        for (name, g) in [
            ("parameters", &self.params),
            ("exp_avg", &self.exp_avg),
            ("exp_avg_sq", &self.exp_avg_sq),
        ] {
            if g.len() != n {
                return Err(format!("{name} hold {} Gaussians, expected {n}", g.len()));
            }
            g.check_shapes().map_err(|e| format!("{name}: {e}"))?;
        }
        for (name, len) in [
            ("grad_norm_sum", self.grad_norm_sum.len()),
            ("visible_count", self.visible_count.len()),
            ("max_radius", self.max_radius.len()),
        ] {
            if len != n {
                return Err(format!("{name} holds {len} values, expected {n}"));
            }
        }
        Ok(())
    }
}

impl Checkpoint {
    /// Whether this checkpoint can continue a run on `scene` with SH degree `sh_degree`: it
    /// must come from the same scene (same views, same training split) and hold sane values.
    /// The error names the checkpoint's scene and this one.
    pub fn check_resumable(&self, scene: &SceneIdentity, sh_degree: u32) -> Result<(), String> {
        let meta = &self.meta;
        if let Some(own) = &meta.scene {
            if own.views != scene.views {
                return Err(format!(
                    "it was trained on the scene {} ({} views), not on {} ({} views)",
                    own.source.display(),
                    own.views.len(),
                    scene.source.display(),
                    scene.views.len()
                ));
            }
            if own.train_views != scene.train_views {
                return Err(format!(
                    "it was trained on {} training views of {}, this run has {} (is --eval set \
                     for one run and not the other?)",
                    own.train_views.len(),
                    own.source.display(),
                    scene.train_views.len()
                ));
            }
        }
        if self.params.sh_degree != sh_degree && !self.params.is_empty() {
            return Err(format!(
                "it has SH degree {}, the configuration {sh_degree}",
                self.params.sh_degree
            ));
        }
        if meta.active_sh_degree > sh_degree {
            return Err(format!(
                "its active SH degree {} exceeds the SH degree {sh_degree}",
                meta.active_sh_degree
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for &index in &meta.view_stack {
            if scene.train_views.binary_search(&index).is_err() {
                return Err(format!(
                    "its view stack names view {index}, which is not a training view of {} \
                     ({} views)",
                    scene.source.display(),
                    scene.views.len()
                ));
            }
            if !seen.insert(index) {
                return Err(format!("its view stack lists view {index} twice"));
            }
        }
        if let Some(group) = meta.adam_steps.iter().position(|&s| s > meta.iteration) {
            return Err(format!(
                "Adam step count {} of group {} exceeds the iteration {}",
                meta.adam_steps[group],
                ParamGroup::ALL[group].name(),
                meta.iteration
            ));
        }
        if !(meta.ema_loss.is_finite() && meta.elapsed_s.is_finite() && meta.elapsed_s >= 0.0) {
            return Err("its smoothed loss or training time is not a finite number".into());
        }
        for (name, g) in [
            ("parameter", &self.params),
            ("exp_avg", &self.exp_avg),
            ("exp_avg_sq", &self.exp_avg_sq),
        ] {
            if let Some((group, index)) = first_non_finite(g) {
                return Err(format!(
                    "{name} {} of Gaussian {index} is not finite",
                    group.name()
                ));
            }
        }
        let stats_finite = self
            .grad_norm_sum
            .iter()
            .chain(&self.max_radius)
            .all(|v| v.is_finite());
        if !stats_finite {
            return Err("its densification statistics hold non-finite values".into());
        }
        Ok(())
    }
}

fn array_labels() -> Vec<String> {
    let mut labels = Vec::new();
    for set in ["param", "exp_avg", "exp_avg_sq"] {
        for group in ParamGroup::ALL {
            labels.push(format!("{set}.{}", group.name()));
        }
    }
    labels.extend(["grad_norm_sum", "visible_count", "max_radius"].map(String::from));
    labels
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

struct HashingWriter<W> {
    inner: W,
    hash: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: FNV_OFFSET,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash = fnv1a(self.hash, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let end = self.pos.checked_add(n)?;
        let out = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

/// The first parameter group (and Gaussian) holding a non-finite value, if any.
pub fn first_non_finite(gaussians: &Gaussians) -> Option<(ParamGroup, usize)> {
    ParamGroup::ALL.into_iter().find_map(|group| {
        let width = group.width(gaussians.sh_degree).max(1);
        gaussians
            .group(group)
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| (group, i / width))
    })
}

/// GPU buffers for a checkpoint's state, with room for `capacity` Gaussians.
pub fn restore(gpu: &Gpu, checkpoint: &Checkpoint, capacity: u32) -> TrainGpuState {
    let n = checkpoint.params.len();
    let capacity = capacity.max(n as u32).max(1);
    let sh_degree = checkpoint.params.sh_degree;
    let cloud = GaussianCloud::from_gaussians(gpu, &checkpoint.params, capacity);
    let grads = ParamBuffers::zeroed(gpu, "grads", capacity, sh_degree);
    let mut optimizer = OptimizerState::zeroed(gpu, capacity, sh_degree);
    optimizer.exp_avg.upload(gpu, &checkpoint.exp_avg);
    optimizer.exp_avg_sq.upload(gpu, &checkpoint.exp_avg_sq);
    optimizer.steps = checkpoint.meta.adam_steps;
    let stats = DensifyStats::zeroed(gpu, capacity);
    gpu::write_buffer(gpu, &stats.grad_norm_sum, 0, &checkpoint.grad_norm_sum);
    gpu::write_buffer(gpu, &stats.visible_count, 0, &checkpoint.visible_count);
    gpu::write_buffer(gpu, &stats.max_radius, 0, &checkpoint.max_radius);
    TrainGpuState {
        cloud,
        grads,
        optimizer,
        stats,
    }
}

/// Applies a checkpoint's scalar state to a fresh [`TrainState`]; `view_entity` maps a
/// dataset index to its view entity (indices were checked by [`Checkpoint::check_resumable`]).
pub fn restore_state(
    state: &mut TrainState,
    meta: &CheckpointMeta,
    view_entity: impl Fn(u32) -> Option<Entity>,
) {
    state.iteration = meta.iteration;
    state.active_sh_degree = meta.active_sh_degree;
    state.rng = meta.rng.clone();
    state.view_stack = meta
        .view_stack
        .iter()
        .filter_map(|&i| view_entity(i))
        .collect();
    state.ema_loss = Some(meta.ema_loss);
    state.elapsed = std::time::Duration::from_secs_f64(meta.elapsed_s.max(0.0));
    state.densify_count = meta.densify_count;
    state.finished = state.iteration >= state.last_iteration;
}

/// Writes `chkpnt<N>.sfck` at `run.checkpoint_iterations`, and keeps the last good state.
pub fn save_checkpoint(
    mut ctx: StepContext,
    step: StepGpu,
    scene: Res<SceneInfo>,
    train: Res<TrainGpuState>,
    views: Query<&TrainView>,
    mut out: ReportOutputs,
    mut good: GoodStates,
) {
    good.collect(&mut ctx);
    let (config, state) = (&ctx.config, &ctx.state);
    let wanted = config.run.checkpoint_iterations.contains(&state.iteration);
    // With `detect_anomaly` every loss readback also checks the parameters, waiting for them
    // (slow, like the reference's PyTorch anomaly detection); otherwise every
    // `good_state_interval` steps, without waiting.
    let check_interval = if config.run.detect_anomaly {
        config.run.loss_readback_interval.max(1)
    } else {
        config.run.good_state_interval
    };
    let keep_good = check_interval > 0
        && (state.iteration.is_multiple_of(check_interval) || good.capture_due());
    if !wanted && !keep_good {
        return;
    }
    // Capturing the last good state is part of training (the reference has no such safety net,
    // so its cost counts); writing a requested checkpoint file is output, like saving a PLY.
    let StepGpu {
        gpu, mut encoder, ..
    } = step;
    let view_index = |e: Entity| views.get(e).ok().map(|v| v.index as u32);
    if !wanted && !config.run.detect_anomaly {
        good.start_capture(
            &gpu,
            &mut encoder,
            &train,
            state,
            &scene.identity,
            view_index,
        );
        return;
    }
    encoder.flush(&gpu);
    let checkpoint = state_capture::capture(&gpu, &train, state, &scene.identity, view_index);
    let iteration = state.iteration;
    if !state_capture::all_finite(&mut ctx.failure, &checkpoint) {
        return;
    }
    if wanted {
        let started = std::time::Instant::now();
        let path = outputs::checkpoint_path(&out.model.0, iteration);
        match checkpoint.write(&path) {
            Ok(()) if !config.run.quiet => {
                eprintln!("\n[ITER {iteration}] Saved checkpoint {}", path.display())
            }
            Ok(()) => {}
            Err(error) => ctx
                .failure
                .record(TrainSet::Checkpoint, iteration, error.to_string()),
        }
        out.report_time.0 += started.elapsed();
    }
    good.keep(checkpoint);
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::fsutil::TempDir;

    pub(in crate::train) fn sample(n: usize, sh_degree: u32, seed: u64) -> Checkpoint {
        let mut rng = Pcg32::new(seed, 0);
        let mut gaussians = || {
            let mut g = Gaussians::empty(sh_degree);
            for group in ParamGroup::ALL {
                *g.group_mut(group) = (0..n * group.width(sh_degree))
                    .map(|_| rng.next_f32() * 4.0 - 2.0)
                    .collect();
            }
            g
        };
        let (params, exp_avg, exp_avg_sq) = (gaussians(), gaussians(), gaussians());
        Checkpoint {
            meta: CheckpointMeta {
                iteration: 1234,
                active_sh_degree: sh_degree.min(1),
                adam_steps: [1, 2, 3, 4, 5, 6],
                rng: Pcg32::new(seed, 9),
                view_stack: vec![3, 1, 4],
                ema_loss: 0.0625,
                elapsed_s: 12.5,
                densify_count: 7,
                scene: Some(SceneIdentity {
                    source: "scenes/a".into(),
                    views: (0..6).map(|i| format!("v{i}.png")).collect(),
                    train_views: vec![1, 2, 3, 4, 5],
                }),
            },
            params,
            exp_avg,
            exp_avg_sq,
            grad_norm_sum: (0..n).map(|i| i as f32 * 0.5).collect(),
            visible_count: (0..n as u32).collect(),
            max_radius: (0..n).map(|i| i as f32).collect(),
        }
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let dir = TempDir::new("checkpoint").unwrap();
        for (n, degree) in [(0, 3), (1, 0), (17, 3), (5, 2)] {
            let checkpoint = sample(n, degree, n as u64);
            let path = dir.path().join(format!("chkpnt{n}.sfck"));
            checkpoint.write(&path).unwrap();
            let back = Checkpoint::read(&path).unwrap();
            if n > 0 {
                assert_eq!(back, checkpoint);
            } else {
                assert_eq!(back.params.len(), 0);
                assert_eq!(back.meta, checkpoint.meta);
            }
        }
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let dir = TempDir::new("checkpoint").unwrap();
        let path = dir.path().join("chkpnt1.sfck");
        sample(9, 3, 1).write(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();

        let truncated = dir.path().join("truncated.sfck");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = Checkpoint::read(&truncated).unwrap_err().to_string();
        assert!(
            err.contains("truncated.sfck") && err.contains("damaged"),
            "{err}"
        );

        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 0x40;
        let corrupt = dir.path().join("corrupt.sfck");
        std::fs::write(&corrupt, &flipped).unwrap();
        let err = Checkpoint::read(&corrupt).unwrap_err().to_string();
        assert!(
            err.contains("corrupt.sfck") && err.contains("checksum"),
            "{err}"
        );

        let other = dir.path().join("other.sfck");
        std::fs::write(&other, b"PLY not a checkpoint").unwrap();
        let err = Checkpoint::read(&other).unwrap_err().to_string();
        assert!(err.contains("other.sfck") && err.contains("magic"), "{err}");

        let missing = Checkpoint::read(&dir.path().join("missing.sfck")).unwrap_err();
        assert!(missing.to_string().contains("missing.sfck"));
    }

    #[test]
    fn resuming_on_another_scene_or_with_bad_values_is_refused() {
        let checkpoint = sample(4, 3, 2);
        let own = checkpoint.meta.scene.clone().unwrap();
        checkpoint.check_resumable(&own, 3).unwrap();
        // The same views elsewhere (a moved dataset) are the same scene.
        let moved = SceneIdentity {
            source: "elsewhere/a".into(),
            ..own.clone()
        };
        checkpoint.check_resumable(&moved, 3).unwrap();

        let other = SceneIdentity {
            source: "scenes/b".into(),
            views: (0..9).map(|i| format!("w{i}.png")).collect(),
            train_views: (0..9).collect(),
        };
        let error = checkpoint.check_resumable(&other, 3).unwrap_err();
        assert!(
            error.contains("scenes/a") && error.contains("scenes/b"),
            "names both scenes: {error}"
        );
        let resplit = SceneIdentity {
            train_views: vec![0, 1, 2, 3, 4, 5],
            ..own.clone()
        };
        let error = checkpoint.check_resumable(&resplit, 3).unwrap_err();
        assert!(error.contains("--eval"), "{error}");
        let error = checkpoint.check_resumable(&own, 2).unwrap_err();
        assert!(error.contains("SH degree"), "{error}");

        let broken = |edit: fn(&mut Checkpoint)| {
            let mut c = checkpoint.clone();
            edit(&mut c);
            c.check_resumable(&own, 3).unwrap_err()
        };
        // A test view (0) in the view stack: the restored order would train on it.
        assert!(broken(|c| c.meta.view_stack = vec![0]).contains("view 0"));
        assert!(broken(|c| c.meta.view_stack = vec![17]).contains("view 17"));
        assert!(broken(|c| c.meta.view_stack = vec![2, 2]).contains("twice"));
        assert!(broken(|c| c.meta.adam_steps[0] = 5000).contains("Adam"));
        assert!(broken(|c| c.params.means[1] = f32::NAN).contains("xyz"));
        assert!(broken(|c| c.exp_avg_sq.logit_opacities[0] = f32::INFINITY).contains("exp_avg_sq"));
        assert!(broken(|c| c.meta.ema_loss = f64::NAN).contains("finite"));
    }

    #[test]
    fn checkpoints_without_a_scene_still_read() {
        let dir = TempDir::new("checkpoint").unwrap();
        let mut old = sample(3, 1, 4);
        old.meta.scene = None;
        let path = dir.path().join("old.sfck");
        old.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.meta.scene, None);
        let scene = SceneIdentity {
            source: "s".into(),
            views: (0..6).map(|i| i.to_string()).collect(),
            train_views: vec![1, 3, 4],
        };
        back.check_resumable(&scene, 1).unwrap();
    }
}
