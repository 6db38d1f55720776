//! The backward stage of the flow: the adjoint of a [`FlowPass`](super::FlowPass) carried back
//! through every layer, with the parameter gradients optional. Training seeds it with the loss's
//! adjoints and asks for the weight gradients; the HMC force seeds it with -grad ln pi and the
//! latent response with unit vectors, and both skip them. Built once, submitted as often as needed.

use bytemuck::{Pod, Zeroable};

use super::pass::{step_groups, Direction, Flow, FlowPass, LayerUniform, ROWS_PER_INVOCATION};
use crate::gpu::WG;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceUniform {
    param_base: u32,
    coupling_size: u32,
    hidden: u32,
    mlp_layers: u32,
    rows: u32,
    stride4: u32,
    flags: u32,
    slice_rows: u32,
}

/// `ReduceUniform::flags`: the chunk starts a (layer, step)'s sums, or ends them.
const FIRST_CHUNK: u32 = 1;
const LAST_CHUNK: u32 = 2;

/// How a backward pass forms the weight gradients (`GA` in shaders/flow_backward.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradientShape {
    /// No parameter gradients.
    None,
    /// Per-row factors, reduced by grad_reduce in chunks of `chunk_rows` rows (`stride` floats
    /// per factor), each weight's sum over a chunk split into slices of `slice_rows` rows where
    /// given (its SL = 1 variant), else one running sum per weight (SL = 0).
    Factors {
        chunk_rows: usize,
        stride: usize,
        slice_rows: Option<usize>,
    },
    /// Every invocation sums groups of four rows into one partial per parameter; a layer's rows
    /// spread over `min_invocations` to `max_invocations` of them (see
    /// [`GradientShape::schedule`]), each carrying at most `max_quads` groups; the scratch
    /// holds at most `max_partials` coupling steps' worth of partials.
    Accumulated {
        min_invocations: usize,
        max_invocations: usize,
        max_quads: usize,
        max_partials: usize,
    },
}

/// Workgroup size of the accumulating backward: small, so a layer's few invocations still fill
/// every core of a CPU adapter.
const WG_ACCUMULATE: u32 = 16;

/// Groups of four rows an invocation of the accumulating backward carries where a layer has
/// enough rows: each invocation writes one partial sum per weight, which then has to be read
/// and added, costing about a quarter of one group's arithmetic, so fewer than this many groups
/// per partial spend a noticeable share of the work on partial sums. 16 rather than 8: 3-5%
/// on a step at L = 16, batch 64, 2% at 256, nothing at 1024 (docs/BENCHMARKS.md).
const MIN_QUADS: usize = 16;

/// Rows per slice of the factor shape's weight reduction on GPUs: each reduction invocation sums
/// one weight over one slice, so a layer of R rows gives (weights x R / 1024) invocations rather
/// than one 4-rows-per-iteration loop over all R per weight, which on a GPU would leave all but
/// a few hundred threads idle (the default flow's step has 546 weights); the slices' sums are
/// then added in order (`fold`). A constant, and chunks hold whole slices, so the order of the
/// sums does not depend on the GPU or on the chunking.
const REDUCE_SLICE_ROWS: usize = 1024;

/// Workgroups per core the accumulating backward may spread a large layer over, for balance
/// between cores that finish at different times.
const WORKGROUPS_PER_CORE: usize = 4;

/// The cores the accumulating backward spreads a layer's rows for. A constant, not the host's
/// count: how the rows are split decides the order of the gradient sums, so a split that
/// followed the host (or a CPU quota) would change the bits of a run resumed elsewhere. Four:
/// a 2-core host loses nothing by it (docs/BENCHMARKS.md), and every larger one still gets at
/// least four workgroups per layer.
const SPREAD_CORES: usize = 4;

impl GradientShape {
    /// The one place that chooses: accumulate where the adapter asks for it (CPU adapters, see
    /// [`GpuContext::accumulate_gradients`]), the MLP is narrow enough for its loops to unroll
    /// (the accumulators are indexed by constants only), and the driver's loop budget allows a
    /// few groups of rows per invocation; otherwise factors, chunked to the row and loop budgets.
    fn choose(ctx: &GpuContext, flow: &Flow, batch: usize) -> Self {
        let plan = &flow.plan;
        let (h, m) = (plan.layout.hidden, plan.layout.mlp_layers);
        let layer_rows = batch * plan.max_blocks();
        let budget = ctx
            .row_budget_bytes
            .min(ctx.limits.max_storage_buffer_binding_size);
        if ctx.accumulate_gradients && h <= super::cost::UNROLL_MAX {
            // A step's partial sums, with room for the padding of a group's (`partials_stride`).
            let step_bytes = 4 * (plan.layout.coupling_size() + 3) as u64;
            let loops = ctx.loop_budget.unwrap_or(u64::MAX);
            let per_quad = super::cost::accumulating_backward_loops(h as u64, m as u64);
            let max_quads = (loops
                .saturating_sub(super::cost::write_partials_loops(h as u64, m as u64))
                / per_quad)
                .min(1 << 16) as usize;
            // Keep the partials within the row budget and each sum within the loop budget
            // (sum_partials loops over the partials, then over its four lanes).
            let max_partials = (budget / step_bytes).min(loops.saturating_sub(4)) as usize;
            let per_core = SPREAD_CORES * WG_ACCUMULATE as usize;
            let max_invocations = (WORKGROUPS_PER_CORE * per_core).min(max_partials);
            if max_quads >= 1
                && max_invocations >= 1
                && layer_rows.div_ceil(4).div_ceil(max_quads) <= max_partials
            {
                return Self::Accumulated {
                    min_invocations: per_core.min(max_invocations),
                    max_invocations,
                    max_quads,
                    max_partials,
                };
            }
        }
        let factors = factor_count(h, m);
        let memory_rows = (budget / (4 * factors as u64)) as usize;
        // A weight's sum over a slice (or, unsliced, a chunk) is one loop, within the driver's
        // loop budget.
        let loop_rows = ctx
            .loop_budget
            .map_or(usize::MAX, |l| super::cost::reduce_rows_within(l) as usize);
        // Slices pay where threads are many (GPUs); a CPU adapter, each of whose few cores takes
        // hundreds of weights anyway, continues each sum in place (see grad_reduce.wgsl).
        let cpu = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let slice_rows = ctx
            .reduce_slice_rows
            .or((!cpu).then_some(REDUCE_SLICE_ROWS))
            // Whole vec4s, so every row keeps its lane; one slice fits the factor buffer.
            .map(|r| (r.min(loop_rows).min(memory_rows) / 4 * 4).max(4));
        let chunk_rows = match slice_rows {
            // Chunks of whole slices, so that the slices, and the order of the sums, are the
            // same however the rows are chunked; `fold` loops over a chunk's slices.
            Some(slice) => {
                let fold_loops = ctx
                    .loop_budget
                    .map_or(usize::MAX, |l| l.saturating_sub(8) as usize);
                (memory_rows / slice).min(fold_loops).max(1) * slice
            }
            // Chunks of whole vec4s, so every row keeps its lane whatever the chunking.
            None => (memory_rows.min(loop_rows) / 4 * 4).max(4),
        };
        let chunk_rows = layer_rows.min(chunk_rows);
        Self::Factors {
            chunk_rows,
            stride: chunk_rows.next_multiple_of(4),
            slice_rows,
        }
    }

    /// How a backward pass in this shape runs a layer of `rows` rows: groups of four rows per
    /// invocation, and coupling steps per dispatch, as many as the loop budget and (accumulating)
    /// the partial sums' memory allow; the factor shape reduces every step on its own.
    fn schedule(self, ctx: &GpuContext, flow: &Flow, rows: usize) -> (usize, usize) {
        let (h, m) = (
            flow.plan.layout.hidden as u64,
            flow.plan.layout.mlp_layers as u64,
        );
        match self {
            Self::None => (
                1,
                flow.weights
                    .steps_per_dispatch(ctx, super::cost::coupling_backward_loops(h, m)),
            ),
            Self::Factors { .. } => (1, 1),
            Self::Accumulated {
                min_invocations,
                max_invocations,
                max_quads,
                max_partials,
            } => {
                // MIN_QUADS groups per invocation, but at least one workgroup per spread core
                // (SPREAD_CORES) and at most WORKGROUPS_PER_CORE.
                let invocations = rows
                    .div_ceil(4)
                    .div_ceil(MIN_QUADS)
                    .clamp(min_invocations, max_invocations);
                let quads = rows.div_ceil(4).div_ceil(invocations).clamp(1, max_quads);
                let per_step = quads as u64 * super::cost::accumulating_backward_loops(h, m)
                    + super::cost::write_partials_loops(h, m);
                let partials = rows.div_ceil(4).div_ceil(quads);
                let steps = flow
                    .weights
                    .steps_per_dispatch(ctx, per_step)
                    .min(max_partials / partials)
                    .max(1);
                (quads, steps)
            }
        }
    }
}

/// Row factors per (sample, block) row of the factor shape: per MLP 4 + 2 h m (mlp_layout.wgsl's
/// `factors_size`), twice, and the s-MLP's two tanh-scale factors.
fn factor_count(h: usize, m: usize) -> usize {
    2 * (4 + 2 * h * m) + 2
}

/// Floats between two invocations' partial sums of a group of `steps` coupling steps of
/// `coupling_size` parameters each (the accumulating shape): padded to whole vec4s, which
/// grad_reduce::sum_partials reads. Its WGSL twin is `partials_stride` in flow_backward.wgsl.
fn partials_stride(steps: usize, coupling_size: usize) -> usize {
    (steps * coupling_size).next_multiple_of(4)
}

/// Per-row working memory of a backward pass, shared by the passes of one step (they run one
/// after the other): the four adjoints of every (sample, block) row, and, when parameter
/// gradients are wanted, what their [`GradientShape`] needs: the factors of one chunk of rows
/// (factor-major: `stride` floats per factor), the four-lane sums of one coupling step's
/// parameters over each slice of the chunk, and their running sums across chunks; or the
/// invocations' partial sums.
pub struct BackwardScratch {
    adj_rows: GpuBuffer<f32>,
    rows: GpuBuffer<f32>,
    acc4: GpuBuffer<f32>,
    slices: GpuBuffer<f32>,
    shape: GradientShape,
}

impl BackwardScratch {
    pub fn new(
        ctx: &GpuContext,
        flow: &Flow,
        batch: usize,
        parameter_gradients: bool,
    ) -> Result<Self, GpuError> {
        let plan = &flow.plan;
        let layer_rows = batch * plan.max_blocks();
        let adj_rows = ctx.storage::<f32>("adjoint rows", layer_rows * 4)?;
        let shape = if parameter_gradients {
            GradientShape::choose(ctx, flow, batch)
        } else {
            GradientShape::None
        };
        let step = plan.layout.coupling_size();
        let unused = |what: &str| ctx.storage::<f32>(&format!("{what} (unused)"), 4);
        let (rows, acc4, slices) = match shape {
            GradientShape::None => (
                unused("row factors")?,
                unused("reduction lanes")?,
                unused("slice sums")?,
            ),
            GradientShape::Factors {
                chunk_rows,
                stride,
                slice_rows,
            } => {
                let factors = factor_count(plan.layout.hidden, plan.layout.mlp_layers);
                (
                    ctx.storage::<f32>("row factors", factors * stride)?,
                    ctx.storage::<f32>("reduction lanes", 4 * step)?,
                    match slice_rows {
                        Some(slice) => {
                            ctx.storage::<f32>("slice sums", 4 * step * chunk_rows.div_ceil(slice))?
                        }
                        None => unused("slice sums")?,
                    },
                )
            }
            GradientShape::Accumulated { .. } => {
                // The most partial sums any layer's group of steps writes.
                let most = plan
                    .layers
                    .iter()
                    .map(|l| {
                        let rows = batch * l.blocks.len();
                        let (quads, steps) = shape.schedule(ctx, flow, rows);
                        rows.div_ceil(4).div_ceil(quads) * partials_stride(steps, step)
                    })
                    .max()
                    .unwrap_or(4);
                (
                    ctx.storage::<f32>("gradient partial sums", most)?,
                    unused("reduction lanes")?,
                    unused("slice sums")?,
                )
            }
        };
        Ok(Self {
            adj_rows,
            rows,
            acc4,
            slices,
            shape,
        })
    }

    /// How the passes using this scratch form the weight gradients.
    pub fn shape(&self) -> GradientShape {
        self.shape
    }
}

/// The buffers a backward pass reads and writes.
pub struct BackwardIo<'a> {
    /// The pass being reversed, built with `save_steps`: its direction, batch and what each of
    /// its coupling steps saw.
    pub pass: &'a FlowPass,
    /// Per sample: d objective / d log|det| of the pass.
    pub gamma: &'a GpuBuffer<f32>,
    /// [batch, N]: on entry the adjoint of the pass's output, on exit that of its input.
    pub adjoint: &'a GpuBuffer<f32>,
    /// Where the parameter gradients are added (the caller zeroes it); needs a scratch built
    /// with parameter gradients.
    pub grad: Option<&'a GpuBuffer<f32>>,
}

/// The dispatches of one backward pass over all layers, in the reverse of the pass's order: per
/// layer a gather, per group of coupling steps (and row chunk; see
/// [`GradientShape::schedule`]) the steps' backward and, with parameter gradients, the
/// fixed-order weight reduction; then a scatter.
pub struct BackwardPass {
    dispatches: Vec<Dispatch>,
    _uniforms: Vec<wgpu::Buffer>,
}

impl BackwardPass {
    /// The backward of `io.pass`, a pass of `flow`.
    pub fn new(
        ctx: &GpuContext,
        flow: &Flow,
        scratch: &BackwardScratch,
        io: BackwardIo,
    ) -> Result<Self, GpuError> {
        let plan = &flow.plan;
        let lay = &plan.layout;
        let n = plan.config.n_sites();
        let (batch, direction) = (io.pass.batch, io.pass.direction);
        let steps = io
            .pass
            .steps
            .as_ref()
            .expect("a backward pass reverses a FlowPass built with save_steps");
        assert_eq!(
            io.adjoint.len,
            batch * n,
            "adjoint must hold batch x N values"
        );
        assert!(
            io.grad.is_none() || scratch.shape != GradientShape::None,
            "parameter gradients need a scratch built for them"
        );
        // Without parameter gradients the factor shape writes no factors.
        let shape = if io.grad.is_some() {
            scratch.shape
        } else {
            GradientShape::None
        };
        let accumulate = matches!(shape, GradientShape::Accumulated { .. });
        ctx.check_loops(
            "flow_backward::coupling_backward",
            super::cost::coupling_backward_loops(lay.hidden as u64, lay.mlp_layers as u64),
            "use a smaller --hidden or --mlp-layers",
        )?;
        let consts = [("WG", WG as f64)];
        let gather = ctx.kernel(Shader::FlowBackward, "gather", &consts)?;
        let scatter = ctx.kernel(Shader::FlowBackward, "scatter", &consts)?;
        let coupling_wg = if accumulate { WG_ACCUMULATE } else { WG };
        let mut sizes = flow.weights.sizes(ctx, plan);
        sizes.push(("GA", accumulate as u32));
        let coupling = ctx.specialised_kernel(
            Shader::FlowBackward,
            &sizes,
            "coupling_backward",
            &[("WG", coupling_wg as f64)],
        )?;
        let sum_partials = ctx.kernel(Shader::GradReduce, "sum_partials", &consts)?;
        let sliced = matches!(
            shape,
            GradientShape::Factors {
                slice_rows: Some(_),
                ..
            }
        );
        let sl = [("SL", sliced as u32)];
        let reduce = ctx.specialised_kernel(Shader::GradReduce, &sl, "reduce", &consts)?;
        let reduce_hidden =
            ctx.specialised_kernel(Shader::GradReduce, &sl, "reduce_hidden", &consts)?;
        let fold = ctx.kernel(Shader::GradReduce, "fold", &consts)?;
        let hidden_tiles = 2 * (lay.mlp_layers - 1) * lay.hidden.div_ceil(4).pow(2);
        let layers: Vec<usize> = match direction {
            Direction::Generate => (0..plan.layers.len()).collect(),
            Direction::Infer => (0..plan.layers.len()).rev().collect(),
        };
        // Back through the steps in the reverse of the pass's order.
        let ascending = direction == Direction::Infer;
        let mut dispatches = Vec::new();
        let mut uniforms = Vec::new();
        for li in layers {
            let layer = &plan.layers[li];
            let layer_rows = batch * layer.blocks.len();
            let (quads, group) = shape.schedule(ctx, flow, layer_rows);
            let (chunk_rows, stride, slice_rows) = match shape {
                GradientShape::Factors {
                    chunk_rows,
                    stride,
                    slice_rows,
                } => (chunk_rows, stride, slice_rows.unwrap_or(chunk_rows)),
                _ => (layer_rows, 0, layer_rows),
            };
            let uniform = |k: usize, count: usize, chunk_start: usize, chunk: usize| LayerUniform {
                k: k as u32,
                step_count: count as u32,
                forward: (direction == Direction::Generate) as u32,
                chunk_start: chunk_start as u32,
                chunk_rows: chunk as u32,
                row_stride: stride as u32,
                quads: quads as u32,
                ..LayerUniform::new(plan, li, batch)
            };
            let layer_u = ctx.uniform("backward layer", &uniform(0, 0, 0, 0))?;
            let move_bindings = [
                (0, &layer_u),
                (5, &scratch.adj_rows.buffer),
                (7, &io.adjoint.buffer),
                (8, &flow.blocks.buffer),
            ];
            let row_grid = ctx.grid(layer_rows as u64, WG);
            dispatches.push(ctx.dispatch(&gather, &move_bindings, row_grid)?);
            for (k, count) in step_groups(lay.couplings, group, ascending) {
                for chunk_start in (0..layer_rows).step_by(chunk_rows) {
                    let chunk = chunk_rows.min(layer_rows - chunk_start);
                    let invocations = chunk.div_ceil(ROWS_PER_INVOCATION * quads);
                    let u =
                        ctx.uniform("backward steps", &uniform(k, count, chunk_start, chunk))?;
                    dispatches.push(ctx.dispatch_resources(
                        &coupling,
                        &[
                            (0, u.as_entire_binding()),
                            (1, flow.mask_buf.buffer.as_entire_binding()),
                            (2, flow.weights.binding(plan, li, k)),
                            (3, steps.buffer.as_entire_binding()),
                            (4, io.gamma.buffer.as_entire_binding()),
                            (5, scratch.adj_rows.buffer.as_entire_binding()),
                            (6, scratch.rows.buffer.as_entire_binding()),
                        ],
                        ctx.grid(invocations as u64, coupling_wg),
                    )?);
                    uniforms.push(u);
                    let Some(grad) = io.grad else { continue };
                    if accumulate {
                        // The group's steps are consecutive in the parameters too.
                        let params = count * lay.coupling_size();
                        let r = ctx.uniform(
                            "sum partials",
                            &ReduceUniform {
                                param_base: (layer.param_offset + k * lay.coupling_size()) as u32,
                                coupling_size: params as u32,
                                rows: invocations as u32,
                                stride4: (partials_stride(count, lay.coupling_size()) / 4) as u32,
                                ..ReduceUniform::zeroed()
                            },
                        )?;
                        dispatches.push(ctx.dispatch(
                            &sum_partials,
                            &[(0, &r), (1, &scratch.rows.buffer), (2, &grad.buffer)],
                            ctx.grid(params.div_ceil(4) as u64, WG),
                        )?);
                        uniforms.push(r);
                        continue;
                    }
                    assert_eq!(count, 1, "the factor shape reduces one step at a time");
                    let r = ctx.uniform(
                        "reduce",
                        &ReduceUniform {
                            param_base: (layer.param_offset + k * lay.coupling_size()) as u32,
                            coupling_size: lay.coupling_size() as u32,
                            hidden: lay.hidden as u32,
                            mlp_layers: lay.mlp_layers as u32,
                            rows: chunk as u32,
                            stride4: (stride / 4) as u32,
                            flags: if chunk_start == 0 { FIRST_CHUNK } else { 0 }
                                | if chunk_start + chunk == layer_rows {
                                    LAST_CHUNK
                                } else {
                                    0
                                },
                            slice_rows: slice_rows as u32,
                        },
                    )?;
                    // Each weight's sum over each slice of the chunk, then the slices' sums in
                    // order onto the running sums (or the gradient, after the last chunk).
                    let slices = chunk.div_ceil(slice_rows) as u64;
                    // Unsliced, the sums go on in place: no slice sums, no fold.
                    let sums = [
                        (0, &r),
                        (1, &scratch.rows.buffer),
                        (2, &grad.buffer),
                        (3, &scratch.acc4.buffer),
                        (4, &scratch.slices.buffer),
                    ];
                    let bindings: Vec<_> = if sliced {
                        vec![sums[0], sums[1], sums[4]]
                    } else {
                        sums[..4].to_vec()
                    };
                    dispatches.push(ctx.dispatch(
                        &reduce,
                        &bindings,
                        ctx.grid(lay.coupling_size() as u64 * slices, WG),
                    )?);
                    if hidden_tiles > 0 {
                        dispatches.push(ctx.dispatch(
                            &reduce_hidden,
                            &bindings,
                            ctx.grid(hidden_tiles as u64 * slices, WG),
                        )?);
                    }
                    if sliced {
                        dispatches.push(ctx.dispatch(
                            &fold,
                            &[sums[0], sums[2], sums[3], sums[4]],
                            ctx.grid(lay.coupling_size() as u64, WG),
                        )?);
                    }
                    uniforms.push(r);
                }
            }
            dispatches.push(ctx.dispatch(&scatter, &move_bindings, row_grid)?);
            uniforms.push(layer_u);
        }
        Ok(Self {
            dispatches,
            _uniforms: uniforms,
        })
    }

    /// The dispatches, in order, that run the pass.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.dispatches.iter()
    }
}

/// A backward pass that carries an adjoint through the flow without parameter gradients, with
/// its own scratch: the HMC force and the latent response. `adjoint` holds the adjoint of
/// `pass`'s output on entry and that of its input on exit; `gamma` weights ln|det| per sample.
pub struct AdjointPass {
    _scratch: BackwardScratch,
    pass: BackwardPass,
}

impl AdjointPass {
    pub fn new(
        ctx: &GpuContext,
        flow: &Flow,
        pass: &FlowPass,
        gamma: &GpuBuffer<f32>,
        adjoint: &GpuBuffer<f32>,
    ) -> Result<Self, GpuError> {
        let scratch = BackwardScratch::new(ctx, flow, pass.batch, false)?;
        let pass = BackwardPass::new(
            ctx,
            flow,
            &scratch,
            BackwardIo {
                pass,
                gamma,
                adjoint,
                grad: None,
            },
        )?;
        Ok(Self {
            _scratch: scratch,
            pass,
        })
    }

    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.pass.dispatches()
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::Shader;

    #[test]
    fn chunk_flags_match_the_shader() {
        assert_eq!(
            Shader::GradReduce.constant("FIRST_CHUNK"),
            Some(super::FIRST_CHUNK)
        );
        assert_eq!(
            Shader::GradReduce.constant("LAST_CHUNK"),
            Some(super::LAST_CHUNK)
        );
    }
}
