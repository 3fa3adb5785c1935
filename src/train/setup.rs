//! Startup: the GPU state, kernels and buffers of a run, from initial Gaussians or a checkpoint.

use bevy::prelude::*;

use super::checkpoint::{self, Checkpoint};
use super::progress::LossReadback;
use super::state::{
    StepBuffers, StepProfiler, TrainConfig, TrainGpuState, TrainKernels, TrainMetrics, TrainState,
};
use crate::app::Gpu;
use crate::model::{DensifyStats, GaussianCloud, Gaussians, OptimizerState, ParamBuffers};

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
            let capacity = (n * INITIAL_HEADROOM).max(MIN_CAPACITY);
            let sh_degree = gaussians.sh_degree;
            TrainGpuState {
                cloud: GaussianCloud::from_gaussians(&gpu, &gaussians, capacity),
                grads: ParamBuffers::zeroed(&gpu, "grads", capacity, sh_degree),
                optimizer: OptimizerState::zeroed(&gpu, capacity, sh_degree),
                stats: DensifyStats::zeroed(&gpu, capacity),
            }
        }
        TrainInit::Checkpoint(checkpoint) => {
            checkpoint::restore_state(&mut state, &checkpoint.meta);
            let n = checkpoint.params.len() as u32;
            checkpoint::restore(&gpu, &checkpoint, (n * INITIAL_HEADROOM).max(MIN_CAPACITY))
        }
    };
    let mut metrics = TrainMetrics {
        peak_gaussians: train.cloud.len,
        peak_state_bytes: train.bytes(),
        ..default()
    };
    metrics.gaussians.push((state.iteration, train.cloud.len));
    world.insert_resource(metrics);
    world.insert_resource(state);
    world.insert_resource(train);
    world.insert_resource(TrainKernels::new(&gpu, config.run.deterministic));
    world.insert_resource(StepBuffers::new(&gpu));
    world.insert_resource(LossReadback::new(&gpu));
    world.insert_resource(StepProfiler::new(&gpu, config.run.profile_interval));
}
