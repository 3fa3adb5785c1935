//! Views as ECS entities: one entity per camera of the dataset, with its ground-truth image on
//! the GPU, plus the scene-wide data (extent, background, SfM points) as resources.
//!
//! A [`LoadedScene`] is read from disk first (metadata, then images decoded in parallel); the
//! [`ScenePlugin`] then spawns the entities and uploads the images once the GPU is available.
//! Test views are entities too (marked [`TestSplit`] instead of [`TrainSplit`]), so evaluation
//! queries the same data. Systems find a view by its `Entity` (the training state holds the
//! current one), never by position in a list.

use std::sync::Mutex;

use bevy::prelude::*;

use crate::app::Gpu;
use crate::camera::Camera;
use crate::dataset::{
    Dataset, DatasetError, DatasetFormat, DatasetOptions, LoadedImage, PointCloud, Split,
    load_images,
};
use crate::gpu::{self, GpuContext};

/// One camera of the dataset: an entity with this component, a [`ViewImage`], a [`ViewStats`]
/// and one split marker ([`TrainSplit`] or [`TestSplit`]).
#[derive(Component, Clone, Debug)]
pub struct TrainView {
    /// Position in the dataset's view list (stable: checkpoints and logs refer to it).
    pub index: usize,
    /// Image name as the dataset lists it.
    pub name: String,
    /// Intrinsics and pose at the training resolution.
    pub camera: Camera,
}

/// Marks a view of the training split (the views the step samples from).
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct TrainSplit;

/// Marks a held-out view (evaluated, never trained on).
#[derive(Component, Clone, Copy, Debug, Default)]
pub struct TestSplit;

/// The ground-truth image of a view on the GPU: packed RGBA8, one `u32` per pixel.
#[derive(Component, Debug)]
pub struct ViewImage {
    pub buffer: wgpu::Buffer,
    pub width: u32,
    pub height: u32,
}

/// What training has learned about one view so far, kept on its entity for tools (the
/// editor's views panel). Updated by the training step; nothing in it steers training.
#[derive(Component, Clone, Debug, Default, PartialEq)]
pub struct ViewStats {
    /// Steps that trained on this view.
    pub times_trained: u32,
    /// The latest training loss of this view that reached the CPU (losses are read back every
    /// `run.loss_readback_interval` steps, so not every step of the view has one).
    pub last_loss: Option<ViewLoss>,
    /// The latest evaluation of this view (test views, and the training views the reference
    /// evaluates: see `train::report::evaluation_views`).
    pub last_eval: Option<ViewEval>,
}

/// One training loss of a view.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewLoss {
    pub iteration: u32,
    /// `(1 - λ) L1 + λ (1 - SSIM)` of the step.
    pub loss: f64,
}

/// One evaluation of a view (its metrics at an evaluation iteration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewEval {
    pub iteration: u32,
    pub l1: f64,
    pub psnr: f64,
    pub ssim: f64,
}

/// Scene-wide facts every stage needs. The views themselves are entities ([`TrainView`]).
#[derive(Resource, Clone, Debug)]
pub struct SceneInfo {
    pub format: DatasetFormat,
    pub source: std::path::PathBuf,
    /// Camera extent (`spatial_lr_scale`): 1.1 x the largest distance of a training camera
    /// centre from their mean.
    pub extent: f64,
    /// Background colour the images were composited on (and renders use).
    pub background: [f32; 3],
    /// What identifies the scene in checkpoints: its source and its views.
    pub identity: SceneIdentity,
}

/// The scene a training state belongs to: its source folder and its views in dataset order.
/// Checkpoints record it, so that resuming on another scene is refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SceneIdentity {
    pub source: std::path::PathBuf,
    /// Image names in dataset order.
    pub views: Vec<String>,
    /// Dataset indices of the training views.
    pub train_views: Vec<u32>,
}

impl SceneIdentity {
    /// The identity of a loaded dataset.
    pub fn of(dataset: &Dataset) -> Self {
        Self {
            source: dataset.source.clone(),
            views: dataset.views.iter().map(|v| v.name.clone()).collect(),
            train_views: (0..dataset.views.len() as u32)
                .filter(|&i| dataset.views[i as usize].split == Split::Train)
                .collect(),
        }
    }
}

/// The sparse SfM points of the scene, when it has them (initialisation input).
#[derive(Resource, Clone, Debug, Default)]
pub struct SfmPoints(pub Option<PointCloud>);

/// A dataset with its images decoded, ready to become entities.
pub struct LoadedScene {
    pub dataset: Dataset,
    pub images: Vec<LoadedImage>,
}

impl LoadedScene {
    /// Reads the dataset and decodes every image (in parallel, with a progress bar unless
    /// `quiet`).
    pub fn load(options: &DatasetOptions, quiet: bool) -> Result<Self, DatasetError> {
        let dataset = Dataset::load(options)?;
        let images = load_images(&dataset, quiet)?;
        Ok(Self { dataset, images })
    }

    /// The scene-wide resource for this dataset.
    pub fn info(&self) -> SceneInfo {
        SceneInfo {
            format: self.dataset.format,
            source: self.dataset.source.clone(),
            extent: self.dataset.extent,
            background: self.dataset.background,
            identity: SceneIdentity::of(&self.dataset),
        }
    }
}

/// Spawns one entity per view with its image uploaded to `gpu`; returns them in view order.
pub fn spawn_views(world: &mut World, gpu: &GpuContext, scene: LoadedScene) -> Vec<Entity> {
    let info = scene.info();
    let mut entities = Vec::with_capacity(scene.dataset.views.len());
    for (index, (view, image)) in scene.dataset.views.iter().zip(scene.images).enumerate() {
        let buffer = gpu::storage_buffer_from(gpu, &format!("image {}", view.name), &image.pixels);
        let mut entity = world.spawn((
            TrainView {
                index,
                name: view.name.clone(),
                camera: view.camera.clone(),
            },
            ViewImage {
                buffer,
                width: image.width,
                height: image.height,
            },
            ViewStats::default(),
            Name::new(view.name.clone()),
        ));
        match view.split {
            Split::Train => entity.insert(TrainSplit),
            Split::Test => entity.insert(TestSplit),
        };
        entities.push(entity.id());
    }
    world.insert_resource(SfmPoints(scene.dataset.points));
    world.insert_resource(info);
    entities
}

/// The view entities of a split, in dataset order (a query's order is not the dataset's).
pub fn views_in_order<'a>(views: impl Iterator<Item = (Entity, &'a TrainView)>) -> Vec<Entity> {
    let mut found: Vec<(usize, Entity)> = views.map(|(e, v)| (v.index, e)).collect();
    found.sort_unstable_by_key(|(index, _)| *index);
    found.into_iter().map(|(_, e)| e).collect()
}

/// Puts a [`LoadedScene`] into the app: [`SceneInfo`] and [`SfmPoints`] resources and one entity
/// per view, spawned at startup once the [`Gpu`] resource exists.
pub struct ScenePlugin {
    scene: Mutex<Option<LoadedScene>>,
}

impl ScenePlugin {
    pub fn new(scene: LoadedScene) -> Self {
        Self {
            scene: Mutex::new(Some(scene)),
        }
    }
}

/// The scene waiting to be spawned (taken by the startup system).
#[derive(Resource)]
struct PendingScene(Option<LoadedScene>);

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        let scene = self
            .scene
            .lock()
            .expect("scene lock is never poisoned")
            .take();
        if let Some(scene) = scene {
            // The resources are available to other plugins' startup systems right away; the
            // entities follow in `PreStartup`, when the GPU resource exists.
            app.insert_resource(scene.info())
                .insert_resource(PendingScene(Some(scene)))
                .add_systems(PreStartup, spawn_pending_scene);
        }
    }
}

fn spawn_pending_scene(world: &mut World) {
    let Some(scene) = world
        .get_resource_mut::<PendingScene>()
        .and_then(|mut pending| pending.0.take())
    else {
        return;
    };
    let Some(gpu) = world.get_resource::<Gpu>().map(|g| g.0.clone()) else {
        error!("splatforge: no GPU device; the scene's views were not spawned");
        return;
    };
    spawn_views(world, &gpu, scene);
    world.remove_resource::<PendingScene>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{HeadlessOptions, finish_setup, headless_app};
    use crate::gpu::test_util::{one_app_at_a_time, test_context};

    fn demo_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
    }

    #[test]
    fn app_spawns_one_view_entity_per_registered_image_with_its_gpu_image() {
        let _turn = one_app_at_a_time();
        let gpu = test_context();
        let mut options = DatasetOptions::new(demo_path());
        options.eval = true;
        let scene = LoadedScene::load(&options, true).unwrap();
        let expected: Vec<(String, Vec<u32>)> = scene
            .dataset
            .views
            .iter()
            .zip(&scene.images)
            .map(|(v, i)| (v.name.clone(), i.pixels.clone()))
            .collect();

        let mut app = headless_app(gpu, &HeadlessOptions::default());
        app.add_plugins(ScenePlugin::new(scene));
        finish_setup(&mut app);
        app.update();

        let world = app.world_mut();
        let mut query = world.query::<(&TrainView, &ViewImage, Has<TestSplit>, Has<TrainSplit>)>();
        let mut views: Vec<_> = query.iter(world).collect();
        views.sort_by_key(|(v, ..)| v.index);
        // tiny_colmap registers 40 images; llffhold 8 puts 5 of them in the test split.
        assert_eq!(views.len(), 40);
        assert_eq!(views.iter().filter(|(.., test, _)| *test).count(), 5);
        assert!(
            views.iter().all(|(.., test, train)| test != train),
            "one split each"
        );
        for ((view, image, ..), (name, _)) in views.iter().zip(&expected) {
            assert_eq!(&view.name, name);
            assert_eq!((image.width, image.height), (320, 240));
            assert_eq!((view.camera.width, view.camera.height), (320, 240));
        }
        // The uploaded images hold exactly the decoded pixels (checked for two views).
        for index in [0, 39] {
            let (_, image, ..) = views[index];
            let on_gpu: Vec<u32> = gpu::read_buffer(gpu, &image.buffer, 320 * 240);
            assert_eq!(on_gpu, expected[index].1);
        }
        let info = world.resource::<SceneInfo>();
        assert_eq!(info.identity.train_views.len(), 35);
        assert_eq!(info.identity.views.len(), 40);
        assert!(info.extent > 0.0);
        let points = world.resource::<SfmPoints>();
        assert_eq!(points.0.as_ref().map(PointCloud::len), Some(1457));
    }
}
