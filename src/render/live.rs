//! Drawing the cloud being trained: an entity with [`TrainerSplatCloud`] shows the trainer's
//! `TrainGpuState::cloud`, straight from its GPU buffers, updated every frame and re-bound when
//! densification reallocates them. No copy through the CPU.

use bevy::prelude::*;

use super::cloud::LiveSplatCloud;
use crate::model::GaussianCloud;
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

/// Same buffers (their generation changes whenever densification or a restore replaces
/// them) and the same number of live Gaussians.
fn same_cloud(a: &GaussianCloud, b: &GaussianCloud) -> bool {
    a.len == b.len && a.sh_degree() == b.sh_degree() && a.generation() == b.generation()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bevy::camera::RenderTarget;
    use bevy::core_pipeline::tonemapping::{DebandDither, Tonemapping};
    use bevy::render::view::Msaa;

    use super::*;
    use crate::app::{HeadlessOptions, finish_setup, headless_app};
    use crate::cli::render::planar_to_rgb8;
    use crate::config::Config;
    use crate::dataset::DatasetOptions;
    use crate::fsutil::TempDir;
    use crate::gpu::raster::{RasterFrame, Rasterizer};
    use crate::gpu::test_util::test_context;
    use crate::model::{Gaussians, init};
    use crate::render::offscreen::{offscreen_image, read_image_rgba8};
    use crate::render::{SplatPlugin, bevy_camera};
    use crate::train::{ModelPath, TrainConfig, TrainPlugin, setup};
    use crate::views::{LoadedScene, SceneInfo, ScenePlugin};
    use crate::{Camera as PinholeCamera, RenderSettings};

    /// What the trainer renders of `gaussians` (RGB8, black background).
    fn trainer_image(gaussians: &Gaussians, camera: &PinholeCamera) -> Vec<u8> {
        let ctx = test_context();
        let cloud = GaussianCloud::from_gaussians(ctx, gaussians, gaussians.len() as u32);
        let mut frame = RasterFrame::new(ctx);
        Rasterizer::new(ctx)
            .forward(
                ctx,
                &cloud,
                camera,
                &RenderSettings::default(),
                &mut frame,
                None,
            )
            .unwrap();
        planar_to_rgb8(&frame.read_image(ctx), camera.width, camera.height)
    }

    fn drawn(app: &App, target: &Handle<Image>) -> Vec<u8> {
        read_image_rgba8(app, target)
            .unwrap()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect()
    }

    /// The largest difference of two 8-bit images, in levels.
    fn max_difference(a: &[u8], b: &[u8]) -> u8 {
        a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap()
    }

    /// A training app drawing its own cloud through the plugin: the picture follows every step
    /// and follows the cloud into new buffers.
    #[test]
    fn the_trainers_cloud_is_drawn_as_it_trains_and_after_it_is_reallocated() {
        let ctx = test_context();
        let dir = TempDir::new("live-cloud").unwrap();
        let mut options =
            DatasetOptions::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo"));
        options.resolution = 8;
        let scene = LoadedScene::load(&options, true).unwrap();
        let gaussians = init::gaussians_from_points(scene.dataset.points.as_ref().unwrap(), 1);
        let camera = scene.dataset.views[3].camera.clone();
        let mut config = Config::default();
        config.model.sh_degree = 1;
        config.optimization.iterations = 100;
        config.run.steps_per_frame = 5;
        config.run.test_iterations = vec![];
        config.run.save_iterations = vec![];

        let mut app = headless_app(ctx, &HeadlessOptions::default());
        app.add_plugins((ScenePlugin::new(scene), TrainPlugin, SplatPlugin))
            .insert_resource(ClearColor(Color::BLACK))
            .insert_resource(TrainConfig(config))
            .insert_resource(ModelPath(dir.path().to_path_buf()))
            .insert_resource(setup::TrainInit::Gaussians(gaussians));
        let target = app
            .world_mut()
            .resource_mut::<Assets<Image>>()
            .add(offscreen_image(camera.width, camera.height));
        app.world_mut().spawn(TrainerSplatCloud);
        app.world_mut().spawn((
            Camera3d::default(),
            RenderTarget::Image(target.clone().into()),
            bevy_camera(&camera, &Transform::IDENTITY),
            Msaa::Off,
            Tonemapping::None,
            DebandDither::Disabled,
        ));
        finish_setup(&mut app);
        assert!(app.world().contains_resource::<SceneInfo>());

        // Image targets are drawn from the second frame on (the first one uploads them).
        app.update();
        let mut previous: Option<Vec<u8>> = None;
        for frame in 1..4 {
            app.update();
            let state = app.world().resource::<TrainGpuState>();
            let expected = trainer_image(&state.cloud.download(ctx), &camera);
            let got = drawn(&app, &target);
            let difference = max_difference(&got, &expected);

            eprintln!("frame {frame}: max difference to the trainer's render {difference}");
            assert!(difference <= 1, "frame {frame}: {difference} levels");
            if let Some(previous) = &previous {
                assert_ne!(previous, &got, "training changes the picture");
            }
            previous = Some(got);
        }

        // Densification reallocates the cloud: new buffers, another count. Simulate it with
        // every other Gaussian of the current cloud in fresh buffers; the entity follows.
        let current = app.world().resource::<TrainGpuState>().cloud.download(ctx);
        let mut half = Gaussians::empty(current.sh_degree);
        for i in (0..current.len()).step_by(2) {
            half.push_from(&current, i);
        }
        let replacement = GaussianCloud::from_gaussians(ctx, &half, 2 * half.len() as u32);
        app.world_mut().resource_mut::<TrainGpuState>().cloud = replacement;
        app.world_mut()
            .resource_mut::<crate::train::StopRequest>()
            .request();
        app.update();
        let got = drawn(&app, &target);
        let difference = max_difference(&got, &trainer_image(&half, &camera));
        eprintln!("after reallocation: max difference {difference}");
        assert!(difference <= 1, "{difference} levels");
    }
}
