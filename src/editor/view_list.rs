//! The dataset's views as the panels list them: by dataset index, with their split, refreshed
//! from the trainer's view entities ([`TrainView`]) when a scene's views are spawned or
//! despawned. Panels work on this plain list; systems that need a view's entity (its image,
//! its statistics) look it up here.

use bevy::prelude::*;

use crate::camera::Camera;
use crate::dataset::Split;
use crate::views::{TrainSplit, TrainView};

/// One dataset view.
#[derive(Clone, Debug)]
pub struct ListedView {
    /// Index in the dataset's view list (the order of `cameras.json`'s source).
    pub index: usize,
    pub name: String,
    pub camera: Camera,
    pub split: Split,
    pub entity: Entity,
}

/// The current scene's views, sorted by index (empty without a scene).
#[derive(Resource, Clone, Debug, Default)]
pub struct ViewList(pub Vec<ListedView>);

impl ViewList {
    /// The view with dataset index `index`.
    pub fn get(&self, index: usize) -> Option<&ListedView> {
        self.0
            .binary_search_by_key(&index, |v| v.index)
            .ok()
            .map(|i| &self.0[i])
    }

    /// The training views, in index order.
    pub fn train_views(&self) -> impl Iterator<Item = &ListedView> {
        self.0.iter().filter(|v| v.split == Split::Train)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Rebuilds the list when view entities appear or disappear.
pub fn refresh_view_list(
    added: Query<(), Added<TrainView>>,
    mut removed: RemovedComponents<TrainView>,
    views: Query<(Entity, &TrainView, Has<TrainSplit>)>,
    mut list: ResMut<ViewList>,
) {
    let removed_any = removed.read().count() > 0;
    if added.is_empty() && !removed_any {
        return;
    }
    let mut listed: Vec<ListedView> = views
        .iter()
        .map(|(entity, view, train)| ListedView {
            index: view.index,
            name: view.name.clone(),
            camera: view.camera.clone(),
            split: if train { Split::Train } else { Split::Test },
            entity,
        })
        .collect();
    listed.sort_unstable_by_key(|v| v.index);
    list.0 = listed;
}
