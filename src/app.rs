//! The Bevy side of splatforge: the GPU device as a resource, and headless apps.
//!
//! splatforge opens its wgpu device itself ([`GpuContext::new_headless`]) and hands it to Bevy's
//! `RenderPlugin` (`RenderCreation::Manual`), so Bevy's `RenderDevice`/`RenderQueue` and the
//! trainer's [`Gpu`] resource are one device: the viewer draws the buffers the trainer updates.
//! A game that creates its own renderer gets the same through [`GpuPlugin`], which wraps Bevy's
//! device once the renderer exists.

use std::sync::Arc;

use bevy::app::{PluginGroup, ScheduleRunnerPlugin};
use bevy::prelude::*;
use bevy::render::renderer::{
    RenderAdapter, RenderAdapterInfo, RenderDevice, RenderInstance, RenderQueue, WgpuWrapper,
};
use bevy::render::settings::{RenderCreation, RenderResources};
use bevy::render::{RenderPlugin, pipelined_rendering::PipelinedRenderingPlugin};
use bevy::window::{ExitCondition, WindowPlugin};

use crate::gpu::GpuContext;

/// The wgpu device shared by every splatforge system (main world).
#[derive(Resource, Clone, Debug, Deref)]
pub struct Gpu(pub GpuContext);

/// Makes the render device available as [`Gpu`] in the main world.
///
/// With a device opened by splatforge ([`headless_app`]) the resource is inserted up front and
/// this plugin does nothing; otherwise it wraps Bevy's `RenderDevice` when the renderer is ready.
pub struct GpuPlugin;

impl Plugin for GpuPlugin {
    fn build(&self, _app: &mut App) {}

    fn finish(&self, app: &mut App) {
        let world = app.world_mut();
        if world.contains_resource::<Gpu>() {
            return;
        }
        let (Some(device), Some(queue), Some(info)) = (
            world.get_resource::<RenderDevice>(),
            world.get_resource::<RenderQueue>(),
            world.get_resource::<RenderAdapterInfo>(),
        ) else {
            warn!("splatforge: no render device; GPU systems will not run");
            return;
        };
        let context = GpuContext::from_parts(
            device.wgpu_device().clone(),
            (**queue.0).clone(),
            (*info.0).clone(),
        );
        world.insert_resource(Gpu(context));
    }
}

/// Bevy's renderer resources for a device splatforge opened itself.
///
/// Panics if `gpu` was not opened by [`GpuContext::new_headless`] (it needs the adapter and
/// instance).
pub fn render_creation(gpu: &GpuContext) -> RenderCreation {
    let adapter = gpu
        .adapter
        .clone()
        .expect("render_creation needs a GpuContext opened by splatforge");
    let instance = gpu
        .instance
        .clone()
        .expect("render_creation needs a GpuContext opened by splatforge");
    RenderResources(
        RenderDevice::from(gpu.device.clone()),
        RenderQueue(Arc::new(WgpuWrapper::new(gpu.queue.clone()))),
        RenderAdapterInfo(WgpuWrapper::new(gpu.adapter_info.clone())),
        RenderAdapter(Arc::new(WgpuWrapper::new(adapter))),
        RenderInstance(Arc::new(WgpuWrapper::new(instance))),
    )
    .into()
}

/// Options for [`headless_app`].
#[derive(Clone, Debug, Default)]
pub struct HeadlessOptions {
    /// Install Bevy's log subscriber (once per process; tests leave it off).
    pub log: bool,
}

/// A windowless Bevy app on `gpu`: Bevy's default plugins (as far as splatforge enables them),
/// no window, the renderer on `gpu`, and [`Gpu`] available from the start.
///
/// Add your plugins, then either `app.run()`, or [`finish_setup`] and drive it with
/// `app.update()` (the trainer does).
pub fn headless_app(gpu: &GpuContext, options: &HeadlessOptions) -> App {
    let mut app = App::new();
    let mut plugins = DefaultPlugins
        .set(WindowPlugin {
            primary_window: None,
            exit_condition: ExitCondition::DontExit,
            ..default()
        })
        .set(RenderPlugin {
            render_creation: render_creation(gpu),
            synchronous_pipeline_compilation: true,
            ..default()
        })
        // The trainer submits its own GPU work from the main world; rendering on a second
        // thread would only add latency and a copy of the world per frame.
        .disable::<PipelinedRenderingPlugin>()
        // splatforge handles Ctrl-C itself (finish the step, save, exit 130).
        .disable::<bevy::app::TerminalCtrlCHandlerPlugin>();
    if !options.log {
        plugins = plugins.disable::<bevy::log::LogPlugin>();
    }
    // With the editor feature, DefaultPlugins brings a window event loop, which needs a
    // display; a headless app has no window.
    #[cfg(feature = "editor")]
    {
        plugins = plugins.disable::<bevy::winit::WinitPlugin>();
    }
    app.add_plugins(plugins)
        .add_plugins(ScheduleRunnerPlugin::run_loop(std::time::Duration::ZERO))
        .insert_resource(Gpu(gpu.clone()))
        .add_plugins(GpuPlugin);
    app
}

/// Completes plugin setup (what `app.run()` does first) for apps driven by `app.update()`.
pub fn finish_setup(app: &mut App) {
    while app.plugins_state() == bevy::app::PluginsState::Adding {
        bevy::tasks::tick_global_task_pools_on_main_thread();
    }
    app.finish();
    app.cleanup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_util::test_context;

    #[test]
    fn headless_app_shares_the_device_with_bevy() {
        let gpu = test_context();
        let mut app = headless_app(gpu, &HeadlessOptions::default());
        finish_setup(&mut app);
        app.update();
        let world = app.world();
        let render_device = world.resource::<RenderDevice>();
        assert_eq!(render_device.wgpu_device(), &world.resource::<Gpu>().device);
        assert_eq!(render_device.wgpu_device(), &gpu.device);
    }
}
