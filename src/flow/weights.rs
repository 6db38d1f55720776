//! The coupling steps' weights as the flow kernels read them: a copy of the flat parameters with
//! every step at an offset the adapter can bind, refreshed by the first dispatch of every forward
//! pass (shaders/flow_pack.wgsl). Each coupling dispatch binds the consecutive steps of one layer
//! it applies (a group), as a uniform where a step fits the uniform binding limit, else as
//! storage (shaders/lib/weights.wgsl says why). This is the one place that chooses both the
//! binding and how many steps a dispatch may take.

use bytemuck::{Pod, Zeroable};

use super::plan::FlowPlan;
use crate::gpu::WG;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};

/// The uniform of shaders/flow_pack.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PackUniform {
    n: u32,
    step: u32,
    stride: u32,
    _pad: u32,
}

/// Bytes of the uniform window a flow dispatch binds its group of steps through (`UB` vec4s in
/// lib/weights.wgsl): the adapter's uniform binding limit, at most the 64 KiB every WebGPU
/// adapter offers, fixed per adapter so that the shader text does not depend on the group.
fn uniform_window(ctx: &GpuContext) -> u64 {
    ctx.limits.max_uniform_buffer_binding_size.min(64 << 10) / 16 * 16
}

pub struct StepWeights {
    packed: GpuBuffer<f32>,
    /// Floats from one step to the next in `packed`.
    stride: usize,
    /// Most steps one binding holds: a layer's, where the binding limit and
    /// [`GpuContext::steps_per_dispatch`] allow.
    group: usize,
    /// Bytes each dispatch binds: the uniform window, or `group` steps of storage.
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
        let window = uniform_window(ctx);
        let uniform_limit = ctx.uniform_weights_bytes.min(window);
        let uniform = step_bytes.next_multiple_of(16) <= uniform_limit;
        let align = ctx
            .limits
            .min_uniform_buffer_offset_alignment
            .max(ctx.limits.min_storage_buffer_offset_alignment)
            .max(16) as usize;
        let stride = (step * 4).next_multiple_of(align) / 4;
        let (last_bytes, limit) = if uniform {
            (step_bytes.next_multiple_of(16), uniform_limit)
        } else {
            (step_bytes, ctx.limits.max_storage_buffer_binding_size)
        };
        let group = (1 + limit.saturating_sub(last_bytes) / (4 * stride as u64))
            .min(plan.layout.couplings.min(ctx.steps_per_dispatch) as u64)
            .max(1) as usize;
        // A uniform binding is the shader's whole window; a storage one, the group's steps.
        let binding_bytes = if uniform {
            window
        } else {
            (group - 1) as u64 * 4 * stride as u64 + step_bytes
        };
        // Room past the last step for a binding from it.
        let len = (steps - 1) * stride + (binding_bytes as usize).div_ceil(4);
        let packed = if uniform {
            ctx.storage_uniform::<f32>("flow packed weights", len)?
        } else {
            ctx.storage::<f32>("flow packed weights", len)?
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
            group,
            binding_bytes,
            uniform,
            pack,
            _pack_uniform: pack_uniform,
        })
    }

    /// The sizes the flow kernels are specialised for: hidden width, MLP layers, whether the
    /// weights are a uniform, the uniform window in vec4s and the floats from step to step.
    /// None depends on the number of couplings, so flows that differ only in it share pipelines
    /// (each costs seconds to compile on a CPU adapter).
    pub fn sizes(&self, ctx: &GpuContext, plan: &FlowPlan) -> Vec<(&'static str, u32)> {
        vec![
            ("H", plan.layout.hidden as u32),
            ("M", plan.layout.mlp_layers as u32),
            ("HB", super::cost::hidden_block(plan.layout.hidden) as u32),
            ("UW", self.uniform as u32),
            ("UB", (uniform_window(ctx) / 16) as u32),
            ("SS", self.stride as u32),
        ]
    }

    /// Steps of a layer one dispatch applies when each costs `loops_per_step` loop iterations
    /// per invocation: as many as a binding holds and the driver's loop budget allows, counting
    /// one more iteration per step for the kernels' loop over the group.
    pub fn steps_per_dispatch(&self, ctx: &GpuContext, loops_per_step: u64) -> usize {
        let fit = ctx
            .loop_budget
            .map_or(usize::MAX, |b| (b / (loops_per_step + 1)) as usize);
        self.group.min(fit).max(1)
    }

    /// Most coupling steps one dispatch binds.
    pub fn steps_per_binding(&self) -> usize {
        self.group
    }

    /// Whether the steps are bound as uniforms.
    pub fn is_uniform(&self) -> bool {
        self.uniform
    }

    /// The weights of the group of coupling steps from step `k` of layer `layer`, as binding 2
    /// of a flow kernel.
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
