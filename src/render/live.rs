//! Drawing the cloud being trained: an entity with [`TrainerSplatCloud`] shows the trainer's
//! `TrainGpuState::cloud`, straight from its GPU buffers, updated every frame and re-bound when
//! densification reallocates them. No copy through the CPU.

use bevy::prelude::*;

use super::cloud::LiveSplatCloud;
use crate::model::{GaussianCloud, ParamGroup};
use crate::train::TrainGpuState;

/// Shows the trainer's cloud on this entity (placed by its `Transform`, like any cloud). Until
/// training has set up its state there is nothing to draw.
#[derive(Component, Clone, Copy, Debug, Default)]
#[require(Transform, Visibility)]
pub struct TrainerSplatCloud;

/// Points every [`TrainerSplatCloud`] at the trainer's current buffers and Gaussian count.
pub fn follow_trainer(
    mut commands: Commands,
    state: Option<Res<TrainGpuState>>,
    mut clouds: Query<(Entity, Option<&mut LiveSplatCloud>), With<TrainerSplatCloud>>,
) {
    let Some(state) = state else {
        return;
    };
    for (entity, live) in &mut clouds {
        match live {
            Some(mut live) => {
                if !same_cloud(&live.0, &state.cloud) {
                    live.0 = state.cloud.clone();
                }
            }
            None => {
                commands
                    .entity(entity)
                    .insert(LiveSplatCloud(state.cloud.clone()));
            }
        }
    }
}

/// Same buffers and the same number of live Gaussians.
fn same_cloud(a: &GaussianCloud, b: &GaussianCloud) -> bool {
    a.len == b.len
        && a.sh_degree() == b.sh_degree()
        && ParamGroup::ALL
            .iter()
            .all(|group| a.params.get(*group) == b.params.get(*group))
}
