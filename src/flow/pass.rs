//! Device drivers for the flow: the model's buffers ([`Flow`]) and one batched evaluation in
//! either direction ([`FlowPass`]), built once and submitted as often as needed.

use bytemuck::{Pod, Zeroable};

use super::plan::FlowPlan;
use super::weights::StepWeights;
use crate::gpu::WG;
use crate::gpu::{fitting_batch, Dispatch, GpuBuffer, GpuContext, GpuError, Shader};

/// Rows (sample, block) per invocation of the coupling kernels: one per vec4 lane.
pub(crate) const ROWS_PER_INVOCATION: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// x = g(z): layers from the top level down.
    Generate,
    /// z = g^{-1}(x): layers from level 0 up (the RG direction).
    Infer,
}

/// The model on the device: parameters, the kernels' packed copy of them, block tables and
/// coupling masks.
pub struct Flow {
    pub plan: FlowPlan,
    pub params: GpuBuffer<f32>,
    pub weights: StepWeights,
    pub(crate) blocks: GpuBuffer<u32>,
    pub(crate) mask_buf: GpuBuffer<u32>,
}

impl Flow {
    pub fn new(
        ctx: &GpuContext,
        plan: FlowPlan,
        params: &[f32],
        masks: &[u32],
    ) -> Result<Self, GpuError> {
        assert_eq!(
            params.len(),
            plan.n_params(),
            "parameter vector does not fit the plan"
        );
        assert_eq!(masks.len(), plan.layers.len() * plan.layout.couplings);
        let table: Vec<u32> = plan
            .layers
            .iter()
            .flat_map(|l| l.blocks.iter().flatten().copied())
            .collect();
        let params = ctx.storage_from("flow params", params)?;
        Ok(Self {
            weights: StepWeights::new(ctx, &plan, &params)?,
            params,
            blocks: ctx.storage_from("flow blocks", &table)?,
            mask_buf: ctx.storage_from("flow masks", masks)?,
            plan,
        })
    }
}

/// The inference pass's results for a set of configurations: the latents and ln q of each.
pub struct Inferred {
    /// z = g^{-1}(x), [count, N].
    pub z: Vec<f32>,
    /// ln q(x) = ln N(z) + log|det dg^{-1}/dx|, [count].
    pub ln_q: Vec<f32>,
}

impl Flow {
    /// z = g^{-1}(x) and ln q(x) for every row of `xs` ([count, N]), up to `batch` rows per
    /// submission (fewer where the adapter cannot hold that many; the last one padded with
    /// zeros): the inference pass as a map over any number of configurations, for analyses.
    /// Each row's arithmetic is the same whatever the batch.
    pub fn infer_rows(
        &self,
        ctx: &GpuContext,
        xs: &[f32],
        batch: usize,
    ) -> Result<Inferred, GpuError> {
        let n = self.plan.config.n_sites();
        assert_eq!(xs.len() % n, 0, "xs must hold whole configurations");
        let (batch, (state, pass)) = fitting_batch(batch.clamp(1, (xs.len() / n).max(1)), |b| {
            let state = ctx.storage::<f32>("inferred rows", b * n)?;
            let pass = FlowPass::new(ctx, self, &state, b, Direction::Infer, false)?;
            Ok((state, pass))
        })?;
        let dispatches: Vec<&Dispatch> = pass.dispatches().collect();
        let mut out = Inferred {
            z: Vec::with_capacity(xs.len()),
            ln_q: Vec::with_capacity(xs.len() / n),
        };
        for (padded, rows) in padded_chunks(xs, n, batch) {
            ctx.write(&state, &padded);
            ctx.submit("inference", &dispatches)?;
            out.z.extend_from_slice(&ctx.read(&state)?[..rows * n]);
            out.ln_q.extend_from_slice(&ctx.read(&pass.ln_q)?[..rows]);
        }
        Ok(out)
    }
}

/// `xs` ([count, n]) in chunks of `batch` rows, each padded with zero rows to `batch`, with the
/// number of its rows that are real: how analyses feed a stage built for one batch.
pub fn padded_chunks(
    xs: &[f32],
    n: usize,
    batch: usize,
) -> impl Iterator<Item = (Vec<f32>, usize)> + '_ {
    xs.chunks(batch * n).map(move |rows| {
        let mut padded = rows.to_vec();
        padded.resize(batch * n, 0.0);
        (padded, rows.len() / n)
    })
}

/// The uniform of the per-layer flow kernels: WGSL `Layer` (shaders/lib/layer.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct LayerUniform {
    pub batch: u32,
    pub n_sites: u32,
    pub n_blocks: u32,
    pub block_offset: u32,
    pub mask_offset: u32,
    pub couplings: u32,
    pub hidden: u32,
    pub mlp_layers: u32,
    pub row_offset: u32,
    pub ld_stride: u32,
    pub save_steps: u32,
    pub k: u32,
    pub forward: u32,
    pub chunk_start: u32,
    pub chunk_rows: u32,
    pub row_stride: u32,
    pub quads: u32,
    pub step_count: u32,
}

impl LayerUniform {
    /// Layer `li` for a batch; the pass-specific fields are left at 0.
    pub(crate) fn new(plan: &FlowPlan, li: usize, batch: usize) -> Self {
        let layer = &plan.layers[li];
        let lay = &plan.layout;
        Self {
            batch: batch as u32,
            n_sites: plan.config.n_sites() as u32,
            n_blocks: layer.blocks.len() as u32,
            block_offset: plan.block_offset(li) as u32,
            mask_offset: (li * lay.couplings) as u32,
            couplings: lay.couplings as u32,
            hidden: lay.hidden as u32,
            mlp_layers: lay.mlp_layers as u32,
            row_offset: plan.row_offset(li, batch) as u32,
            ..Self::zeroed()
        }
    }
}

/// The groups of consecutive coupling steps of a layer, at most `size` steps each, as (first step,
/// steps), in the order a pass applies them: ascending (generation, and the backward of
/// inference) or descending. The kernels run a group's steps in the same order
/// (`group_step` in shaders/lib/layer.wgsl), so the grouping never changes the arithmetic.
pub(crate) fn step_groups(couplings: usize, size: usize, ascending: bool) -> Vec<(usize, usize)> {
    let mut groups: Vec<(usize, usize)> = (0..couplings)
        .step_by(size)
        .map(|k| (k, size.min(couplings - k)))
        .collect();
    if !ascending {
        groups.reverse();
    }
    groups
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LogQUniform {
    batch: u32,
    n_sites: u32,
    ld_stride: u32,
    mode: u32,
}

/// `LogQUniform::mode` bits, as shaders/flow_log_q.wgsl names them.
const PRIOR: u32 = 1;
const LOG_DET: u32 = 2;
const INFER: u32 = 4;

/// One batched pass of the flow over `state` ([batch, N]), in place. Afterwards `log_det` holds
/// log|det| of the map applied (dg/dz for generation, dg^{-1}/dx for inference) and `ln_q` the
/// model log-density ln q(x) = ln N(z) - log|det dg/dz| of each sample. Built with `save_steps`
/// it also saves what each coupling step saw ([`FlowPlan::n_rows`] x couplings x 4 values, a
/// layout only the flow's stages know), which a [`BackwardPass`](super::BackwardPass) reverses.
pub struct FlowPass {
    pub log_det: GpuBuffer<f32>,
    pub ln_q: GpuBuffer<f32>,
    pub(crate) batch: usize,
    pub(crate) direction: Direction,
    /// The saved steps, with `save_steps`.
    pub(crate) steps: Option<GpuBuffer<f32>>,
    dispatches: Vec<Dispatch>,
    _buffers: Vec<GpuBuffer<f32>>,
    _uniforms: Vec<wgpu::Buffer>,
}

impl FlowPass {
    pub fn new(
        ctx: &GpuContext,
        flow: &Flow,
        state: &GpuBuffer<f32>,
        batch: usize,
        direction: Direction,
        save_steps: bool,
    ) -> Result<Self, GpuError> {
        let plan = &flow.plan;
        let (steps, unused_steps) = if save_steps {
            let len = plan.n_rows(batch) * plan.layout.couplings * 4;
            (Some(ctx.storage::<f32>("saved coupling steps", len)?), None)
        } else {
            (None, Some(ctx.storage::<f32>("flow steps (unused)", 1)?))
        };
        let steps_buf = steps
            .as_ref()
            .or(unused_steps.as_ref())
            .expect("one of the two");
        let n = plan.config.n_sites();
        assert_eq!(state.len, batch * n, "state must hold batch x N values");
        let stride = plan.max_blocks();
        let partial = ctx.storage::<f32>("flow log-det partials", batch * stride)?;
        let log_det = ctx.storage::<f32>("flow log-det", batch)?;
        let ln_q = ctx.storage::<f32>("flow ln q", batch)?;
        let consts = [("WG", WG as f64)];
        let entry = match direction {
            Direction::Generate => "generate",
            Direction::Infer => "infer",
        };
        let (h, m) = (plan.layout.hidden as u64, plan.layout.mlp_layers as u64);
        ctx.check_loops(
            "flow_coupling",
            super::cost::coupling_step_loops(h, m),
            "use a smaller --hidden or --mlp-layers",
        )?;
        let coupling = ctx.specialised_kernel(
            Shader::FlowCoupling,
            &flow.weights.sizes(ctx, plan),
            entry,
            &consts,
        )?;
        let log_q = ctx.kernel(Shader::FlowLogQ, "log_q", &consts)?;

        let mut uniforms = Vec::new();
        let log_q_uniform = |mode| {
            ctx.uniform(
                "flow log q",
                &LogQUniform {
                    batch: batch as u32,
                    n_sites: n as u32,
                    ld_stride: stride as u32,
                    mode,
                },
            )
        };
        let (before, after) = match direction {
            Direction::Generate => (Some(log_q_uniform(PRIOR)?), log_q_uniform(LOG_DET)?),
            Direction::Infer => (None, log_q_uniform(PRIOR | LOG_DET | INFER)?),
        };
        let log_q_dispatch = |u: &wgpu::Buffer| {
            ctx.dispatch(
                &log_q,
                &[
                    (0, u),
                    (1, &state.buffer),
                    (2, &partial.buffer),
                    (3, &log_det.buffer),
                    (4, &ln_q.buffer),
                ],
                ctx.grid(batch as u64, 1),
            )
        };
        let mut dispatches = vec![flow.weights.pack().clone()];
        if let Some(u) = &before {
            dispatches.push(log_q_dispatch(u)?);
        }
        let order: Vec<usize> = match direction {
            Direction::Generate => (0..plan.layers.len()).rev().collect(),
            Direction::Infer => (0..plan.layers.len()).collect(),
        };
        let group = flow
            .weights
            .steps_per_dispatch(ctx, super::cost::coupling_step_loops(h, m));
        let ascending = direction == Direction::Generate;
        for li in order {
            let n_blocks = plan.layers[li].blocks.len();
            for (k, count) in step_groups(plan.layout.couplings, group, ascending) {
                let u = ctx.uniform(
                    "flow steps",
                    &LayerUniform {
                        ld_stride: stride as u32,
                        save_steps: save_steps as u32,
                        k: k as u32,
                        step_count: count as u32,
                        ..LayerUniform::new(plan, li, batch)
                    },
                )?;
                dispatches.push(ctx.dispatch_resources(
                    &coupling,
                    &[
                        (0, u.as_entire_binding()),
                        (1, state.buffer.as_entire_binding()),
                        (2, flow.weights.binding(plan, li, k)),
                        (3, flow.blocks.buffer.as_entire_binding()),
                        (4, flow.mask_buf.buffer.as_entire_binding()),
                        (5, partial.buffer.as_entire_binding()),
                        (6, steps_buf.buffer.as_entire_binding()),
                    ],
                    ctx.grid((batch * n_blocks).div_ceil(ROWS_PER_INVOCATION) as u64, WG),
                )?);
                uniforms.push(u);
            }
        }
        dispatches.push(log_q_dispatch(&after)?);
        uniforms.extend(before);
        uniforms.push(after);
        Ok(Self {
            log_det,
            ln_q,
            batch,
            direction,
            steps,
            dispatches,
            _buffers: std::iter::once(partial).chain(unused_steps).collect(),
            _uniforms: uniforms,
        })
    }

    /// The dispatches, in order, that run the pass.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.dispatches.iter()
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::Shader;

    #[test]
    fn log_q_modes_match_the_shader() {
        for (name, v) in [
            ("PRIOR", super::PRIOR),
            ("LOG_DET", super::LOG_DET),
            ("INFER", super::INFER),
        ] {
            assert_eq!(Shader::FlowLogQ.constant(name), Some(v), "{name}");
        }
    }
}
