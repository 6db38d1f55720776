//! The coupling steps' weights as the flow kernels read them: a copy of the flat parameters with
//! every step at an offset the adapter can bind on its own, refreshed by the first dispatch of
//! every forward pass (shaders/flow_pack.wgsl). Each coupling dispatch binds its own step, as a
//! uniform where the step fits the uniform binding limit, else as storage (shaders/lib/weights.wgsl
//! says why). This is the one place that chooses.

use bytemuck::{Pod, Zeroable};

use super::plan::FlowPlan;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};

const WG: u32 = 64;

/// The uniform of shaders/flow_pack.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PackUniform {
    n: u32,
    step: u32,
    stride: u32,
    _pad: u32,
}

pub struct StepWeights {
    packed: GpuBuffer<f32>,
    /// Floats from one step to the next in `packed`.
    stride: usize,
    /// Bytes each dispatch binds: the shader's array (whole vec4s) or the step itself.
    binding_bytes: u64,
    uniform: bool,
    pack: Dispatch,
    _pack_uniform: wgpu::Buffer,
}

impl StepWeights {
    /// Packed weights for `plan`, copied from `params` by [`StepWeights::pack`].
    pub fn new(
        ctx: &GpuContext,
        plan: &FlowPlan,
        params: &GpuBuffer<f32>,
    ) -> Result<Self, GpuError> {
        let step = plan.layout.coupling_size();
        let steps = plan.layers.len() * plan.layout.couplings;
        let step_bytes = (step * 4) as u64;
        let uniform = step_bytes.next_multiple_of(16) <= ctx.uniform_weights_bytes;
        let align = ctx
            .limits
            .min_uniform_buffer_offset_alignment
            .max(ctx.limits.min_storage_buffer_offset_alignment)
            .max(16) as usize;
        let stride = (step * 4).next_multiple_of(align) / 4;
        let packed = if uniform {
            ctx.storage_uniform::<f32>("flow packed weights", steps * stride)?
        } else {
            ctx.storage::<f32>("flow packed weights", steps * stride)?
        };
        let pack_uniform = ctx.uniform(
            "flow pack",
            &PackUniform {
                n: (steps * step) as u32,
                step: step as u32,
                stride: stride as u32,
                _pad: 0,
            },
        )?;
        let kernel = ctx.kernel(Shader::FlowPack, "pack", &[("WG", WG as f64)])?;
        let pack = ctx.dispatch(
            &kernel,
            &[(0, &pack_uniform), (1, &params.buffer), (2, &packed.buffer)],
            ctx.grid((steps * step) as u64, WG),
        )?;
        Ok(Self {
            packed,
            stride,
            binding_bytes: if uniform {
                step_bytes.next_multiple_of(16)
            } else {
                step_bytes
            },
            uniform,
            pack,
            _pack_uniform: pack_uniform,
        })
    }

    /// The sizes the flow kernels are specialised for: hidden width, MLP layers, and whether the
    /// weights are a uniform.
    pub fn sizes(&self, plan: &FlowPlan) -> Vec<(&'static str, u32)> {
        vec![
            ("H", plan.layout.hidden as u32),
            ("M", plan.layout.mlp_layers as u32),
            ("UW", self.uniform as u32),
        ]
    }

    /// Whether the steps are bound as uniforms.
    pub fn is_uniform(&self) -> bool {
        self.uniform
    }

    /// The weights of coupling step `k` of layer `layer`, as binding 2 of a flow kernel.
    pub fn binding(&self, plan: &FlowPlan, layer: usize, k: usize) -> wgpu::BindingResource<'_> {
        let s = layer * plan.layout.couplings + k;
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.packed.buffer,
            offset: (s * self.stride * 4) as u64,
            size: std::num::NonZeroU64::new(self.binding_bytes),
        })
    }

    /// The dispatch that copies the parameters in: first in every forward pass, so the steps
    /// follow every parameter update.
    pub fn pack(&self) -> &Dispatch {
        &self.pack
    }
}
