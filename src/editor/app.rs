//! Building the editor app, in a window or offscreen (rendering the whole window content to an
//! image: tests, screenshots, benchmarks). Both are the same app: the trainer, the editor's
//! systems and panels; only where the panels are drawn differs.

use std::path::PathBuf;

use bevy::camera::RenderTarget;
use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::window::{Window, WindowPlugin, WindowResolution};
use bevy_egui::PrimaryEguiContext;

use super::run::PreparedRun;
use super::{EditorPlugin, FrameLimit, QuitSignal};
use crate::app::{Gpu, GpuPlugin, HeadlessOptions, headless_app, render_creation};
use crate::gpu::GpuContext;

/// Where the editor draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayMode {
    /// A window of this size in logical pixels (needs a display).
    Window { size: [u32; 2] },
    /// An image of this size in pixels, no window and no display needed.
    Offscreen { size: [u32; 2] },
}

/// Everything the editor app is built from.
pub struct EditorOptions {
    pub gpu: GpuContext,
    /// The run to open at startup.
    pub first_run: Option<PreparedRun>,
    pub display: DisplayMode,
    /// Where the docked layout is kept (`None`: default layout, not saved).
    pub layout: Option<PathBuf>,
    /// Open paused.
    pub paused: bool,
    /// Choose the steps per frame from the frame rate (else `run.steps_per_frame`).
    pub auto_steps: bool,
    /// Quit (saving as on close) after this many frames.
    pub frames: Option<u32>,
    /// Set from outside (Ctrl-C, SIGTERM) to quit as on close.
    pub quit: QuitSignal,
    /// Install Bevy's log output (once per process).
    pub log: bool,
}

/// The image the offscreen editor draws into.
#[derive(Resource, Clone, Debug)]
pub struct OffscreenImage(pub Handle<Image>);

/// The editor app; `app.run()` it (window) or drive it with [`super::offscreen::run_offscreen`].
pub fn editor_app(options: EditorOptions) -> App {
    let mut app = match options.display {
        DisplayMode::Window { size } => windowed_app(&options.gpu, size, options.log),
        DisplayMode::Offscreen { .. } => headless_app(
            &options.gpu,
            &HeadlessOptions {
                log: options.log,
                asset_root: None,
            },
        ),
    };
    app.add_plugins(EditorPlugin {
        first_run: std::sync::Mutex::new(options.first_run),
        layout: options.layout,
        paused: options.paused,
        auto_steps: options.auto_steps,
    })
    .insert_resource(options.quit);
    if let Some(frames) = options.frames {
        app.insert_resource(FrameLimit {
            frames,
            frames_done: 0,
        });
    }
    match options.display {
        DisplayMode::Window { .. } => app.add_systems(Startup, spawn_window_ui_camera),
        DisplayMode::Offscreen { size } => {
            let image = offscreen_image(&mut app, size);
            app.insert_resource(OffscreenImage(image))
                .add_systems(Startup, spawn_offscreen_ui_camera)
        }
    };
    app
}

/// Bevy's default plugins with a window, on splatforge's GPU device.
fn windowed_app(gpu: &GpuContext, size: [u32; 2], log: bool) -> App {
    let mut app = App::new();
    let mut plugins = DefaultPlugins
        .set(WindowPlugin {
            primary_window: Some(Window {
                title: "splatforge editor".into(),
                resolution: WindowResolution::new(size[0], size[1]),
                ..default()
            }),
            // Closing saves first (see `quit_when_asked`).
            close_when_requested: false,
            ..default()
        })
        .set(RenderPlugin {
            render_creation: render_creation(gpu),
            synchronous_pipeline_compilation: true,
            ..default()
        })
        // As in the headless app: the trainer submits its work from the main world.
        .disable::<PipelinedRenderingPlugin>()
        // Ctrl-C quits through the editor (saving first).
        .disable::<bevy::app::TerminalCtrlCHandlerPlugin>();
    if !log {
        plugins = plugins.disable::<bevy::log::LogPlugin>();
    }
    app.add_plugins(plugins)
        .insert_resource(Gpu(gpu.clone()))
        .add_plugins(GpuPlugin);
    app
}

fn offscreen_image(app: &mut App, size: [u32; 2]) -> Handle<Image> {
    use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};
    let mut image = Image::new_fill(
        Extent3d {
            width: size[0].max(1),
            height: size[1].max(1),
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 255],
        TextureFormat::Rgba8UnormSrgb,
        bevy::asset::RenderAssetUsages::default(),
    );
    image.texture_descriptor.usage = TextureUsages::TEXTURE_BINDING
        | TextureUsages::COPY_DST
        | TextureUsages::COPY_SRC
        | TextureUsages::RENDER_ATTACHMENT;
    app.world_mut().resource_mut::<Assets<Image>>().add(image)
}

/// The panels' camera: draws only egui (no scene layers), over a dark background.
fn ui_camera() -> impl Bundle {
    (
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            clear_color: ClearColorConfig::Custom(Color::srgb(0.1, 0.1, 0.1)),
            ..default()
        },
    )
}

fn spawn_window_ui_camera(mut commands: Commands) {
    commands.spawn(ui_camera());
}

fn spawn_offscreen_ui_camera(mut commands: Commands, image: Res<OffscreenImage>) {
    commands.spawn((ui_camera(), RenderTarget::Image(image.0.clone().into())));
}
