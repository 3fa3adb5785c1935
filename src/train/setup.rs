//! Startup: the GPU state, kernels and buffers of a run, from initial Gaussians or a checkpoint.

use bevy::prelude::*;

use super::TrainSet;
use super::checkpoint::{self, Checkpoint};
use super::progress::LossReadback;
use super::state::{
    StepBuffers, StepProfiler, TrainConfig, TrainFailure, TrainGpuState, TrainKernels,
    TrainMetrics, TrainState,
};
use crate::app::Gpu;
use crate::model::{
    DensifyStats, GaussianCloud, Gaussians, OptimizerState, ParamBuffers, max_gaussians,
};
use crate::views::TrainView;

/// Where the cloud of a run starts (consumed by [`setup_training`]).
#[derive(Resource)]
pub enum TrainInit {
    /// Fresh Gaussians (from SfM points or random), zero optimiser state.
    Gaussians(Gaussians),
    /// Everything from a checkpoint; training continues after its iteration.
    Checkpoint(Box<Checkpoint>),
}

/// Room for this many times the initial Gaussians before the first reallocation (densification
/// grows the buffers itself when needed).
const INITIAL_HEADROOM: u32 = 2;
const MIN_CAPACITY: u32 = 4096;

/// The buffer capacity a run starts with for `n` Gaussians: headroom for densification, within
/// what the device can bind (the caller checked that `n` itself fits).
pub fn initial_capacity(gpu: &Gpu, n: u32, sh_degree: u32) -> u32 {
    n.saturating_mul(INITIAL_HEADROOM)
        .max(MIN_CAPACITY)
        .min(max_gaussians(gpu, sh_degree))
        .max(n)
}

/// Creates the run's GPU state and step resources.
pub fn setup_training(world: &mut World) {
    let Some(init) = world.remove_resource::<TrainInit>() else {
        error!("splatforge: TrainPlugin needs a TrainInit resource; training not started");
        return;
    };
    let gpu = world.resource::<Gpu>().clone();
    let config = world.resource::<TrainConfig>().clone();
    let mut state = TrainState::new(config.run.seed, config.optimization.iterations);
    let train = match init {
        TrainInit::Gaussians(gaussians) => {
            let n = gaussians.len() as u32;
            let sh_degree = gaussians.sh_degree;
            let capacity = initial_capacity(&gpu, n, sh_degree);
            TrainGpuState {
                cloud: GaussianCloud::from_gaussians(&gpu, &gaussians, capacity),
                grads: ParamBuffers::zeroed(&gpu, "grads", capacity, sh_degree),
                optimizer: OptimizerState::zeroed(&gpu, capacity, sh_degree),
                stats: DensifyStats::zeroed(&gpu, capacity),
            }
        }
        TrainInit::Checkpoint(checkpoint) => {
            // Checkpoints name views by dataset index; the run by entity.
            let mut views = world.query::<(Entity, &TrainView)>();
            let by_index: std::collections::HashMap<u32, Entity> = views
                .iter(world)
                .map(|(e, v)| (v.index as u32, e))
                .collect();
            checkpoint::restore_state(&mut state, &checkpoint.meta, |i| by_index.get(&i).copied());
            let n = checkpoint.params.len() as u32;
            let capacity = initial_capacity(&gpu, n, checkpoint.params.sh_degree);
            checkpoint::restore(&gpu, &checkpoint, capacity)
        }
    };
    let mut metrics = TrainMetrics {
        peak_gaussians: train.cloud.len,
        peak_state_bytes: train.bytes(),
        ..default()
    };
    metrics.gaussians.push((state.iteration, train.cloud.len));
    let iteration = state.iteration;
    world.insert_resource(metrics);
    world.insert_resource(state);
    world.insert_resource(train);
    // The headless driver compiles the kernels before the app starts (to return the error);
    // an app without them compiles them here and reports a failure through TrainFailure.
    if !world.contains_resource::<TrainKernels>() {
        match TrainKernels::new(&gpu, config.run.deterministic) {
            Ok(kernels) => world.insert_resource(kernels),
            Err(error) => world.resource_mut::<TrainFailure>().record(
                TrainSet::Begin,
                iteration,
                format!("compiling the training kernels: {error}"),
            ),
        }
    }
    world.insert_resource(StepBuffers::new(&gpu));
    world.insert_resource(LossReadback::new(&gpu));
    world.insert_resource(StepProfiler::new(&gpu, config.run.profile_interval));
}
