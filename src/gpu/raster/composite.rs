//! The composite of a view's rasterized splats over the scene (composite_splats.wgsl): a
//! full-screen fragment pass, or a compute pass where the target allows storage writes.
//!
//! Why two: the composite reads and writes every pixel of the target once, which any GPU does in
//! a few microseconds per megapixel, except that data-centre GPUs (the H100/H200) run pixel
//! shaders on a small part of the chip: there the fragment pass takes 0.46 ms at 1920x1080,
//! the compute pass a few hundredths (BENCHMARKS.md). A compute pass can only write a texture
//! created with `STORAGE_BINDING` in a format that allows it (not the sRGB formats); Bevy's HDR
//! main textures (`Rgba16Float`) can be (see `render::SplatPlugin`), the default 8-bit ones
//! cannot, and those get the fragment pass.

use std::collections::HashMap;

use bytemuck::{Pod, Zeroable};

use super::view::buffer;
use crate::gpu::{self, GpuContext, ShaderDefs};

/// How the scene texture stores colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SceneEncoding {
    /// Linear values (Bevy's default: `Rgba8UnormSrgb`, `Rgba16Float`, and linear `Rgba8Unorm`).
    Linear,
    /// sRGB-encoded values in a non-sRGB format (Bevy's `CompositingSpace::Srgb`).
    Srgb,
}

/// `Composite` in composite_splats.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(super) struct CompositeUniforms {
    pub origin: [u32; 2],
    pub size: [u32; 2],
}

/// Where a composite writes: the target texture (its format, usages and size choose the pass)
/// and the view of it to write.
#[derive(Clone, Copy)]
pub struct CompositeTarget<'a> {
    pub texture: &'a wgpu::Texture,
    pub view: &'a wgpu::TextureView,
}

impl CompositeTarget<'_> {
    /// The WGSL storage format define of the compute composite, when this target can take it.
    fn storage_define(&self) -> Option<&'static str> {
        if !self
            .texture
            .usage()
            .contains(wgpu::TextureUsages::STORAGE_BINDING)
        {
            return None;
        }
        storage_define(self.texture.format())
    }
}

fn storage_define(format: wgpu::TextureFormat) -> Option<&'static str> {
    match format {
        wgpu::TextureFormat::Rgba16Float => Some("STORAGE_RGBA16FLOAT"),
        wgpu::TextureFormat::Rgba32Float => Some("STORAGE_RGBA32FLOAT"),
        wgpu::TextureFormat::Rgba8Unorm => Some("STORAGE_RGBA8UNORM"),
        _ => None,
    }
}

/// What a composite reads: its uniforms, the rasterized image and the scene behind.
#[derive(Clone, Copy)]
pub(super) struct CompositeInputs<'a> {
    pub uniforms: &'a wgpu::Buffer,
    /// `vec4<f32>` per view pixel: (premultiplied rgb, final transmittance).
    pub image: &'a wgpu::Buffer,
    pub scene: &'a wgpu::TextureView,
    pub encoding: SceneEncoding,
}

impl<'a> CompositeInputs<'a> {
    /// Bindings 0-2 of both composite pipelines.
    fn entries(&self) -> [wgpu::BindGroupEntry<'a>; 3] {
        [
            buffer(0, self.uniforms),
            buffer(1, self.image),
            wgpu::BindGroupEntry {
                binding: 2,
                resource: wgpu::BindingResource::TextureView(self.scene),
            },
        ]
    }
}

/// Which composite pass ran (tests, benchmarks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompositePass {
    Fragment,
    Compute,
}

/// The composite pipelines, compiled on first use per target format and scene encoding.
pub(super) struct Compositor {
    defs: ShaderDefs,
    fragment_layout: wgpu::BindGroupLayout,
    fragment_pipeline_layout: wgpu::PipelineLayout,
    fragment_pipelines: HashMap<(wgpu::TextureFormat, SceneEncoding), wgpu::RenderPipeline>,
    compute_pipelines: HashMap<(wgpu::TextureFormat, SceneEncoding), wgpu::ComputePipeline>,
}

impl Compositor {
    pub fn new(ctx: &GpuContext, defs: ShaderDefs) -> Self {
        let fragment_layout =
            ctx.device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("composite_splats"),
                    entries: &[
                        layout_entry(
                            0,
                            wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Uniform,
                                has_dynamic_offset: false,
                                min_binding_size: None,
                            },
                        ),
                        layout_entry(
                            1,
                            wgpu::BindingType::Buffer {
                                ty: wgpu::BufferBindingType::Storage { read_only: true },
                                has_dynamic_offset: false,
                                min_binding_size: None,
                            },
                        ),
                        layout_entry(
                            2,
                            wgpu::BindingType::Texture {
                                // Unfilterable: the pass only loads texels, and every float format
                                // (Rgba32Float included) can be bound this way.
                                sample_type: wgpu::TextureSampleType::Float { filterable: false },
                                view_dimension: wgpu::TextureViewDimension::D2,
                                multisampled: false,
                            },
                        ),
                    ],
                });
        let fragment_pipeline_layout =
            ctx.device
                .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some("composite_splats"),
                    bind_group_layouts: &[Some(&fragment_layout)],
                    immediate_size: 0,
                });
        Self {
            defs,
            fragment_layout,
            fragment_pipeline_layout,
            fragment_pipelines: HashMap::new(),
            compute_pipelines: HashMap::new(),
        }
    }

    /// Encodes `rgb + T * scene` (display space) into `target` for the rasterized image of
    /// `inputs`; the target's pixels outside the view get the scene unchanged.
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        inputs: CompositeInputs,
        target: CompositeTarget,
    ) -> CompositePass {
        match target.storage_define() {
            Some(define) => {
                self.encode_compute(ctx, encoder, inputs, target, define);
                CompositePass::Compute
            }
            None => {
                self.encode_fragment(ctx, encoder, inputs, target);
                CompositePass::Fragment
            }
        }
    }

    fn encode_fragment(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        inputs: CompositeInputs,
        target: CompositeTarget,
    ) {
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("composite_splats"),
            layout: &self.fragment_layout,
            entries: &inputs.entries(),
        });
        let pipeline = self.fragment_pipeline(ctx, target.texture.format(), inputs.encoding);
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("composite_splats"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: target.view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations {
                    // Every pixel is written.
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: wgpu::StoreOp::Store,
                },
            })],
            depth_stencil_attachment: None,
            timestamp_writes: None,
            occlusion_query_set: None,
            multiview_mask: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.draw(0..3, 0..1);
    }

    fn encode_compute(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        inputs: CompositeInputs,
        target: CompositeTarget,
        define: &str,
    ) {
        let encoding = inputs.encoding;
        let format = target.texture.format();
        let defs = &self.defs;
        let pipeline = self
            .compute_pipelines
            .entry((format, encoding))
            .or_insert_with(|| {
                let mut defs = defs.clone();
                defs.define("COMPUTE_COMPOSITE").define(define);
                if encoding == SceneEncoding::Srgb {
                    defs.define("SRGB_STORAGE");
                }
                gpu::compute_pipeline(
                    ctx,
                    "composite_splats.wgsl",
                    "composite_compute",
                    &defs,
                    &[],
                )
            });
        let [uniforms, image, scene] = inputs.entries();
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("composite_compute"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                uniforms,
                image,
                scene,
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(target.view),
                },
            ],
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("composite_compute"),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        let size = target.texture.size();
        pass.dispatch_workgroups(size.width.div_ceil(16), size.height.div_ceil(16), 1);
    }

    fn fragment_pipeline(
        &mut self,
        ctx: &GpuContext,
        format: wgpu::TextureFormat,
        encoding: SceneEncoding,
    ) -> &wgpu::RenderPipeline {
        let layout = &self.fragment_pipeline_layout;
        let defs = &self.defs;
        self.fragment_pipelines
            .entry((format, encoding))
            .or_insert_with(|| {
                let mut defs = defs.clone();
                if encoding == SceneEncoding::Srgb {
                    defs.define("SRGB_STORAGE");
                }
                let source = gpu::shader::preprocess("composite_splats.wgsl", &defs)
                    .unwrap_or_else(|e| panic!("{e}"));
                let module = ctx
                    .device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some("composite_splats.wgsl"),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    });
                ctx.device
                    .create_render_pipeline(&wgpu::RenderPipelineDescriptor {
                        label: Some("composite_splats"),
                        layout: Some(layout),
                        vertex: wgpu::VertexState {
                            module: &module,
                            entry_point: Some("fullscreen"),
                            compilation_options: Default::default(),
                            buffers: &[],
                        },
                        primitive: wgpu::PrimitiveState::default(),
                        depth_stencil: None,
                        multisample: wgpu::MultisampleState::default(),
                        fragment: Some(wgpu::FragmentState {
                            module: &module,
                            entry_point: Some("composite_splats"),
                            compilation_options: Default::default(),
                            targets: &[Some(wgpu::ColorTargetState {
                                format,
                                blend: None,
                                write_mask: wgpu::ColorWrites::ALL,
                            })],
                        }),
                        multiview_mask: None,
                        cache: None,
                    })
            })
    }
}

fn layout_entry(binding: u32, ty: wgpu::BindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::FRAGMENT,
        ty,
        count: None,
    }
}
