//! Rendering to an image instead of a window: for tests, screenshots, the viewer's `--offscreen`
//! mode and editor viewports.
//!
//! ```text
//! let target = images.add(offscreen_image(320, 240));
//! commands.spawn((Camera3d::default(), RenderTarget::Image(target.clone().into()), ..));
//! // after app.update():
//! let rgba = read_image_rgba8(&app, &target);
//! ```

use bevy::prelude::*;
use bevy::render::RenderApp;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::renderer::{RenderDevice, RenderQueue};
use bevy::render::texture::GpuImage;

/// An sRGB RGBA8 image a camera can render into and [`read_image_rgba8`] can read back.
pub fn offscreen_image(width: u32, height: u32) -> Image {
    let mut image = Image::new_target_texture(width, height, TextureFormat::Rgba8UnormSrgb, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    image
}

/// The pixels of `image` as the GPU holds them now: RGBA8 (sRGB-encoded for
/// [`offscreen_image`]), row-major, no padding. Blocks until the GPU is done. `None` while the
/// image is not on the GPU yet, or if it is not a 4-byte-per-pixel format.
pub fn read_image_rgba8(app: &App, image: &Handle<Image>) -> Option<Vec<u8>> {
    let world = app.get_sub_app(RenderApp)?.world();
    let gpu_image = world.resource::<RenderAssets<GpuImage>>().get(image)?;
    let device = world.resource::<RenderDevice>().wgpu_device().clone();
    let queue: wgpu::Queue = (**world.resource::<RenderQueue>().0).clone();
    read_texture_rgba8(&device, &queue, &gpu_image.texture)
}

/// Copies a 4-byte-per-pixel texture to the CPU (blocking).
pub fn read_texture_rgba8(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    texture: &wgpu::Texture,
) -> Option<Vec<u8>> {
    if texture.format().block_copy_size(None) != Some(4) {
        return None;
    }
    let (width, height) = (texture.width(), texture.height());
    let row = width * 4;
    let padded_row =
        row.div_ceil(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT) * wgpu::COPY_BYTES_PER_ROW_ALIGNMENT;
    let buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("offscreen readback"),
        size: u64::from(padded_row * height),
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("offscreen readback"),
    });
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &buffer,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded_row),
                rows_per_image: Some(height),
            },
        },
        texture.size(),
    );
    queue.submit([encoder.finish()]);
    let slice = buffer.slice(..);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        let _ = sender.send(result);
    });
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    receiver.recv().ok()?.ok()?;
    let mapped = slice.get_mapped_range();
    let mut pixels = Vec::with_capacity((row * height) as usize);
    for y in 0..height as usize {
        let start = y * padded_row as usize;
        pixels.extend_from_slice(&mapped[start..start + row as usize]);
    }
    drop(mapped);
    buffer.unmap();
    Some(pixels)
}
