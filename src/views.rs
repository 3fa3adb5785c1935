//! Views as ECS entities: one entity per camera of the dataset, with its ground-truth image on
//! the GPU, plus the scene-wide data (extent, background, SfM points) as resources.
//!
//! A [`LoadedScene`] is read from disk first (metadata, then images decoded in parallel); the
//! [`ScenePlugin`] then spawns the entities and uploads the images once the GPU is available.
//! Test views are entities too (with [`Split::Test`]), so evaluation queries the same data.

use std::sync::Mutex;

use bevy::prelude::*;

use crate::app::Gpu;
use crate::camera::Camera;
use crate::dataset::{
    Dataset, DatasetError, DatasetFormat, DatasetOptions, LoadedImage, PointCloud, Split,
    load_images,
};
use crate::gpu::{self, GpuContext};

/// One camera of the dataset.
#[derive(Component, Clone, Debug)]
pub struct TrainView {
    /// Position in the dataset's view list (stable: checkpoints and logs refer to it).
    pub index: usize,
    /// Image name as the dataset lists it.
    pub name: String,
    /// Intrinsics and pose at the training resolution.
    pub camera: Camera,
    pub split: Split,
}

/// The ground-truth image of a view on the GPU: packed RGBA8, one `u32` per pixel.
#[derive(Component, Debug)]
pub struct ViewImage {
    pub buffer: wgpu::Buffer,
    pub width: u32,
    pub height: u32,
}

/// Scene-wide facts every stage needs.
#[derive(Resource, Clone, Debug)]
pub struct SceneInfo {
    pub format: DatasetFormat,
    pub source: std::path::PathBuf,
    /// Camera extent (`spatial_lr_scale`): 1.1 x the largest distance of a training camera
    /// centre from their mean.
    pub extent: f64,
    /// Background colour the images were composited on (and renders use).
    pub background: [f32; 3],
    /// All views in dataset order (the same order as [`TrainView::index`]).
    pub views: Vec<TrainView>,
}

impl SceneInfo {
    pub fn train_views(&self) -> impl Iterator<Item = &TrainView> {
        self.views.iter().filter(|v| v.split == Split::Train)
    }

    pub fn test_views(&self) -> impl Iterator<Item = &TrainView> {
        self.views.iter().filter(|v| v.split == Split::Test)
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
            views: self
                .dataset
                .views
                .iter()
                .enumerate()
                .map(|(index, view)| TrainView {
                    index,
                    name: view.name.clone(),
                    camera: view.camera.clone(),
                    split: view.split,
                })
                .collect(),
        }
    }
}

/// Spawns one entity per view with its image uploaded to `gpu`; returns them in view order.
pub fn spawn_views(world: &mut World, gpu: &GpuContext, scene: LoadedScene) -> Vec<Entity> {
    let info = scene.info();
    let mut entities = Vec::with_capacity(info.views.len());
    for (view, image) in info.views.iter().zip(scene.images) {
        let buffer = gpu::storage_buffer_from(gpu, &format!("image {}", view.name), &image.pixels);
        let entity = world
            .spawn((
                view.clone(),
                ViewImage {
                    buffer,
                    width: image.width,
                    height: image.height,
                },
                Name::new(view.name.clone()),
            ))
            .id();
        entities.push(entity);
    }
    world.insert_resource(SfmPoints(scene.dataset.points));
    world.insert_resource(info);
    entities
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
    use crate::gpu::test_util::test_context;

    fn demo_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo")
    }

    #[test]
    fn app_spawns_one_view_entity_per_registered_image_with_its_gpu_image() {
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
        let mut query = world.query::<(&TrainView, &ViewImage)>();
        let mut views: Vec<(&TrainView, &ViewImage)> = query.iter(world).collect();
        views.sort_by_key(|(v, _)| v.index);
        // tiny_colmap registers 40 images; llffhold 8 puts 5 of them in the test split.
        assert_eq!(views.len(), 40);
        assert_eq!(
            views.iter().filter(|(v, _)| v.split == Split::Test).count(),
            5
        );
        for ((view, image), (name, _)) in views.iter().zip(&expected) {
            assert_eq!(&view.name, name);
            assert_eq!((image.width, image.height), (320, 240));
            assert_eq!((view.camera.width, view.camera.height), (320, 240));
        }
        // The uploaded images hold exactly the decoded pixels (checked for two views).
        for index in [0, 39] {
            let (_, image) = views[index];
            let on_gpu: Vec<u32> = gpu::read_buffer(gpu, &image.buffer, 320 * 240);
            assert_eq!(on_gpu, expected[index].1);
        }
        let info = world.resource::<SceneInfo>();
        assert_eq!(info.train_views().count(), 35);
        assert!(info.extent > 0.0);
        let points = world.resource::<SfmPoints>();
        assert_eq!(points.0.as_ref().map(PointCloud::len), Some(1457));
    }
}
