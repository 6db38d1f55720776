//! One PDD training step on the device (Algorithm 1): z ~ N(0, 1), x = g(z), the objective, the
//! hand-written backward pass, Adam. Every buffer, uniform and bind group is built once in
//! [`TrainStep::new`]; a step writes two small uniforms, submits, and reads back 8 floats.

use bytemuck::{Pod, Zeroable};

use super::{AdamConfig, Objective};
use crate::flow::pass::LayerUniform;
use crate::flow::{Direction, Flow, FlowPass, FlowPlan};
use crate::gpu::rng::RngStage;
use crate::gpu::{grid, Dispatch, GpuBuffer, GpuContext, GpuError, Shader};
use crate::physics::target_stage::TargetStage;
use crate::physics::IsingTarget;

const WG: u32 = 64;
/// RNG stream of the training latent draws.
pub const TRAIN_STREAM: u32 = 0;
/// Largest per-row factor buffer of the backward pass; bigger layers are processed in chunks.
const ROW_BUDGET_BYTES: u64 = 64 << 20;

/// What one step reports (all reductions on the device, in a fixed order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// mean(ln q(x) - ln pi(x)) and its standard error over the batch.
    pub loss: f64,
    pub loss_stderr: f64,
    /// The trained objective (the symmetrised and/or regularised loss; else equal to `loss`).
    pub objective: f64,
    pub objective_stderr: f64,
    /// |gradient| before clipping.
    pub grad_norm: f64,
}

impl StepStats {
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite() && self.objective.is_finite() && self.grad_norm.is_finite()
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceUniform {
    param_base: u32,
    coupling_size: u32,
    hidden: u32,
    mlp_layers: u32,
    rows: u32,
    row_size: u32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct LossUniform {
    batch: u32,
    n_sites: u32,
    flags: u32,
    _pad: u32,
    c: f32,
    sym_reg: f32,
    _pad1: [f32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AdamUniform {
    n_params: u32,
    _pad: [u32; 3],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    clip: f32,
    bias1: f32,
    bias2: f32,
}

/// Adam's uniform for update `t` (1-based); bias corrections in f64 on the host.
fn adam_uniform(a: &AdamConfig, n_params: usize, t: u64) -> AdamUniform {
    AdamUniform {
        n_params: n_params as u32,
        _pad: [0; 3],
        lr: a.lr as f32,
        beta1: a.beta1 as f32,
        beta2: a.beta2 as f32,
        eps: a.eps as f32,
        weight_decay: a.weight_decay as f32,
        clip: a.clip_grad as f32,
        bias1: (1.0 - a.beta1.powf(t as f64)) as f32,
        bias2: (1.0 - a.beta2.powf(t as f64)) as f32,
    }
}

/// The buffers one backward pass over the layers shares.
struct BackwardBuffers<'a> {
    flow: &'a Flow,
    steps: &'a GpuBuffer<f32>,
    gamma: &'a GpuBuffer<f32>,
    adj_state: &'a GpuBuffer<f32>,
    adj_rows: &'a GpuBuffer<f32>,
    rows: &'a GpuBuffer<f32>,
    grad: &'a GpuBuffer<f32>,
}

pub struct TrainStep {
    pub flow: Flow,
    pub batch: usize,
    pub objective: Objective,
    pub adam: AdamConfig,
    /// [batch, N]: z, then x = g(z).
    pub state: GpuBuffer<f32>,
    pub grad: GpuBuffer<f32>,
    pub adam_m: GpuBuffer<f32>,
    pub adam_v: GpuBuffer<f32>,
    /// After a step: the adjoint of z (see `reference::backward::TwinGradients::dz`).
    pub dz: GpuBuffer<f32>,
    stats: GpuBuffer<f32>,
    rng: RngStage,
    adam_uniform: wgpu::Buffer,
    /// Everything between the latent draw and Adam.
    gradient_dispatches: Vec<Dispatch>,
    adam_dispatch: Dispatch,
    // Kept alive for the dispatches that bind them.
    _passes: Vec<FlowPass>,
    _target: TargetStage,
    _buffers: Vec<GpuBuffer<f32>>,
    _uniforms: Vec<wgpu::Buffer>,
}

impl TrainStep {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        plan: FlowPlan,
        params: &[f32],
        masks: Vec<u32>,
        target: &IsingTarget,
        batch: usize,
        objective: Objective,
        adam: AdamConfig,
        seed: u64,
    ) -> Result<Self, GpuError> {
        let n = plan.config.n_sites();
        let n_params = plan.n_params();
        let couplings = plan.layout.couplings;
        let flow = Flow::new(ctx, plan, params, masks)?;
        let plan = &flow.plan;
        let neg = objective.needs_negated_pass();
        let consts = [("WG", WG as f64)];
        let sites = grid((batch * n) as u64, WG);
        let per_sample = grid(batch as u64, WG);

        let state = ctx.storage::<f32>("train state", batch * n)?;
        let rng = RngStage::normals(ctx, &state, seed, TRAIN_STREAM)?;
        let steps_len = plan.n_rows(batch) * couplings * 4;
        let steps_gen = ctx.storage::<f32>("steps (generation)", steps_len)?;
        let gen_pass = FlowPass::new(
            ctx,
            &flow,
            &state,
            batch,
            Direction::Generate,
            Some(&steps_gen),
        )?;
        let target_stage = TargetStage::new(ctx, target, &state, batch)?;

        // The inference pass on -x, for ln q(-x); placeholders when the objective needs none.
        let side = if neg { batch * n } else { 1 };
        let neg_state = ctx.storage::<f32>("train -x", side)?;
        let steps_inf = ctx.storage::<f32>("steps (inference)", if neg { steps_len } else { 1 })?;
        let inf_pass = if neg {
            Some(FlowPass::new(
                ctx,
                &flow,
                &neg_state,
                batch,
                Direction::Infer,
                Some(&steps_inf),
            )?)
        } else {
            None
        };

        let gamma_gen = ctx.storage::<f32>("gamma (generation)", batch)?;
        let gamma_inf = ctx.storage::<f32>("gamma (inference)", batch)?;
        let terms = ctx.storage::<f32>("loss terms", 2 * batch)?;
        let stats = ctx.storage::<f32>("train stats", 8)?;
        let dz = ctx.storage::<f32>("adjoint (generation)", batch * n)?;
        let adj_inf = ctx.storage::<f32>("adjoint (inference)", side)?;
        let grad = ctx.storage::<f32>("grad", n_params)?;
        let adam_m = ctx.storage::<f32>("adam m", n_params)?;
        let adam_v = ctx.storage::<f32>("adam v", n_params)?;

        let row_size = 2 * (4 + 2 * plan.layout.hidden * plan.layout.mlp_layers) + 2;
        let layer_rows = batch * plan.max_blocks();
        let budget = ROW_BUDGET_BYTES.min(ctx.limits.max_storage_buffer_binding_size);
        let chunk_rows = layer_rows.min((budget / (4 * row_size as u64)).max(1) as usize);
        let adj_rows = ctx.storage::<f32>("adjoint rows", layer_rows * 4)?;
        let rows = ctx.storage::<f32>("row factors", chunk_rows * row_size)?;

        let mut uniforms = Vec::new();
        let loss_k = |entry| ctx.kernel(Shader::Loss, entry, &consts);
        let loss_uniform = ctx.uniform(
            "loss",
            &LossUniform {
                batch: batch as u32,
                n_sites: n as u32,
                flags: neg as u32 | (objective.symmetric as u32) << 1,
                _pad: 0,
                c: 1.0 / batch as f32,
                sym_reg: objective.sym_reg as f32,
                _pad1: [0.0; 2],
            },
        )?;
        let ln_q_neg = inf_pass.as_ref().map_or(&gen_pass.ln_q, |p| &p.ln_q);

        let mut d: Vec<Dispatch> = gen_pass.dispatches().cloned().collect();
        d.extend(target_stage.dispatches().cloned());
        if let Some(inf) = &inf_pass {
            d.push(ctx.dispatch(
                &loss_k("negate")?,
                &[
                    (0, &loss_uniform),
                    (11, &state.buffer),
                    (12, &neg_state.buffer),
                ],
                sites,
            )?);
            d.extend(inf.dispatches().cloned());
        }
        d.push(ctx.dispatch(
            &loss_k("coefficients")?,
            &[
                (0, &loss_uniform),
                (1, &gen_pass.ln_q.buffer),
                (2, &ln_q_neg.buffer),
                (3, &target_stage.log_pi.buffer),
                (4, &gamma_gen.buffer),
                (5, &gamma_inf.buffer),
                (6, &terms.buffer),
            ],
            per_sample,
        )?);
        d.push(ctx.dispatch(
            &loss_k("seed")?,
            &[
                (0, &loss_uniform),
                (5, &gamma_inf.buffer),
                (7, &target_stage.grad.buffer),
                (8, &neg_state.buffer),
                (9, &dz.buffer),
                (10, &adj_inf.buffer),
            ],
            sites,
        )?);
        d.push(ctx.dispatch(
            &loss_k("batch_stats")?,
            &[(0, &loss_uniform), (6, &terms.buffer), (13, &stats.buffer)],
            [1, 1, 1],
        )?);

        let adam_uniform = ctx.uniform("adam", &adam_uniform(&adam, n_params, 1))?;
        let adam_k = |entry| ctx.kernel(Shader::Adam, entry, &consts);
        let params_grid = grid(n_params as u64, WG);
        d.push(ctx.dispatch(
            &adam_k("zero_grad")?,
            &[(0, &adam_uniform), (1, &grad.buffer)],
            params_grid,
        )?);

        // The two backward passes differ only in their saved steps, log-det weights and adjoint.
        let bwd = |d: &mut Vec<Dispatch>,
                   uniforms: &mut Vec<wgpu::Buffer>,
                   dir: Direction,
                   (steps, gamma, adj_state): (
            &GpuBuffer<f32>,
            &GpuBuffer<f32>,
            &GpuBuffer<f32>,
        )| {
            let b = BackwardBuffers {
                flow: &flow,
                steps,
                gamma,
                adj_state,
                adj_rows: &adj_rows,
                rows: &rows,
                grad: &grad,
            };
            backward_dispatches(ctx, d, uniforms, dir, b, batch, row_size, chunk_rows)
        };
        if neg {
            bwd(
                &mut d,
                &mut uniforms,
                Direction::Infer,
                (&steps_inf, &gamma_inf, &adj_inf),
            )?;
            d.push(ctx.dispatch(
                &loss_k("combine")?,
                &[(0, &loss_uniform), (9, &dz.buffer), (10, &adj_inf.buffer)],
                sites,
            )?);
        }
        bwd(
            &mut d,
            &mut uniforms,
            Direction::Generate,
            (&steps_gen, &gamma_gen, &dz),
        )?;
        d.push(ctx.dispatch(
            &adam_k("grad_norm")?,
            &[(0, &adam_uniform), (1, &grad.buffer), (5, &stats.buffer)],
            [1, 1, 1],
        )?);
        let adam_dispatch = ctx.dispatch(
            &adam_k("adam")?,
            &[
                (0, &adam_uniform),
                (1, &grad.buffer),
                (2, &flow.params.buffer),
                (3, &adam_m.buffer),
                (4, &adam_v.buffer),
                (5, &stats.buffer),
            ],
            params_grid,
        )?;
        uniforms.push(loss_uniform);

        let mut passes = vec![gen_pass];
        passes.extend(inf_pass);
        Ok(Self {
            flow,
            batch,
            objective,
            adam,
            state,
            grad,
            adam_m,
            adam_v,
            dz,
            stats,
            rng,
            adam_uniform,
            gradient_dispatches: d,
            adam_dispatch,
            _passes: passes,
            _target: target_stage,
            _buffers: vec![
                steps_gen, steps_inf, neg_state, gamma_gen, gamma_inf, terms, adj_inf, adj_rows,
                rows,
            ],
            _uniforms: uniforms,
        })
    }

    /// Training step `t` (0-based): draws z with the stream (seed, TRAIN_STREAM, t), computes the
    /// gradient, applies Adam update t + 1, and returns the statistics of the batch it trained on.
    pub fn step(&mut self, ctx: &GpuContext, t: u64) -> Result<StepStats, GpuError> {
        self.rng.set_step(ctx, t);
        let u = adam_uniform(&self.adam, self.flow.plan.n_params(), t + 1);
        ctx.write_uniform(&self.adam_uniform, &u);
        let all: Vec<&Dispatch> = std::iter::once(&self.rng.dispatch)
            .chain(&self.gradient_dispatches)
            .chain(std::iter::once(&self.adam_dispatch))
            .collect();
        ctx.submit("train step", &all)?;
        self.read_stats(ctx)
    }

    /// The gradient for latent draws `z` ([batch, N]) without updating anything: the statistics,
    /// then `grad` and `dz` hold the parameter and latent gradients.
    pub fn gradients_for(&self, ctx: &GpuContext, z: &[f32]) -> Result<StepStats, GpuError> {
        ctx.write(&self.state, z);
        ctx.submit(
            "gradients",
            &self.gradient_dispatches.iter().collect::<Vec<_>>(),
        )?;
        self.read_stats(ctx)
    }

    fn read_stats(&self, ctx: &GpuContext) -> Result<StepStats, GpuError> {
        let s = ctx.read(&self.stats)?;
        Ok(StepStats {
            loss: s[0] as f64,
            loss_stderr: s[1] as f64,
            objective: s[2] as f64,
            objective_stderr: s[3] as f64,
            grad_norm: (s[4] as f64).sqrt(),
        })
    }

    /// Replaces the parameters and Adam moments (resuming from a checkpoint).
    pub fn load(&self, ctx: &GpuContext, params: &[f32], m: &[f32], v: &[f32]) {
        ctx.write(&self.flow.params, params);
        ctx.write(&self.adam_m, m);
        ctx.write(&self.adam_v, v);
    }
}

/// The dispatches of one backward pass over all layers, in the reverse of the pass's order:
/// per layer a gather, per coupling step and row chunk the step's backward and the weight
/// reduction, then a scatter.
#[allow(clippy::too_many_arguments)]
fn backward_dispatches(
    ctx: &GpuContext,
    out: &mut Vec<Dispatch>,
    uniforms: &mut Vec<wgpu::Buffer>,
    dir: Direction,
    b: BackwardBuffers,
    batch: usize,
    row_size: usize,
    chunk_rows: usize,
) -> Result<(), GpuError> {
    let plan = &b.flow.plan;
    let lay = &plan.layout;
    let kk = lay.couplings;
    let consts = [("WG", WG as f64)];
    let gather = ctx.kernel(Shader::FlowBackward, "gather", &consts)?;
    let scatter = ctx.kernel(Shader::FlowBackward, "scatter", &consts)?;
    let coupling = ctx.kernel(Shader::FlowBackward, "coupling_backward", &consts)?;
    let reduce = ctx.kernel(Shader::GradReduce, "reduce", &consts)?;
    let reduce_hidden = ctx.kernel(Shader::GradReduce, "reduce_hidden", &consts)?;
    let hidden_tiles = 2 * (lay.mlp_layers - 1) * lay.hidden.div_ceil(4).pow(2);
    let (layers, steps): (Vec<usize>, Vec<usize>) = match dir {
        Direction::Generate => ((0..plan.layers.len()).collect(), (0..kk).rev().collect()),
        Direction::Infer => ((0..plan.layers.len()).rev().collect(), (0..kk).collect()),
    };
    for li in layers {
        let layer = &plan.layers[li];
        let layer_rows = batch * layer.blocks.len();
        let uniform = |k: usize, chunk_start: usize, chunk: usize| LayerUniform {
            k: k as u32,
            forward: (dir == Direction::Generate) as u32,
            chunk_start: chunk_start as u32,
            chunk_rows: chunk as u32,
            row_size: row_size as u32,
            ..LayerUniform::new(plan, li, batch)
        };
        let layer_u = ctx.uniform("backward layer", &uniform(0, 0, 0))?;
        let move_bindings = [
            (0, &layer_u),
            (5, &b.adj_rows.buffer),
            (7, &b.adj_state.buffer),
            (8, &b.flow.blocks.buffer),
        ];
        let row_grid = grid(layer_rows as u64, WG);
        out.push(ctx.dispatch(&gather, &move_bindings, row_grid)?);
        for &k in &steps {
            for chunk_start in (0..layer_rows).step_by(chunk_rows) {
                let chunk = chunk_rows.min(layer_rows - chunk_start);
                let u = ctx.uniform("backward step", &uniform(k, chunk_start, chunk))?;
                out.push(ctx.dispatch(
                    &coupling,
                    &[
                        (0, &u),
                        (1, &b.flow.params.buffer),
                        (2, &b.flow.mask_buf.buffer),
                        (3, &b.steps.buffer),
                        (4, &b.gamma.buffer),
                        (5, &b.adj_rows.buffer),
                        (6, &b.rows.buffer),
                    ],
                    grid(chunk as u64, WG),
                )?);
                let r = ctx.uniform(
                    "reduce",
                    &ReduceUniform {
                        param_base: (layer.param_offset + k * lay.coupling_size()) as u32,
                        coupling_size: lay.coupling_size() as u32,
                        hidden: lay.hidden as u32,
                        mlp_layers: lay.mlp_layers as u32,
                        rows: chunk as u32,
                        row_size: row_size as u32,
                        _pad: [0; 2],
                    },
                )?;
                let reduce_bindings = [(0, &r), (1, &b.rows.buffer), (2, &b.grad.buffer)];
                out.push(ctx.dispatch(
                    &reduce,
                    &reduce_bindings,
                    grid(lay.coupling_size() as u64, WG),
                )?);
                if hidden_tiles > 0 {
                    out.push(ctx.dispatch(
                        &reduce_hidden,
                        &reduce_bindings,
                        grid(hidden_tiles as u64, WG),
                    )?);
                }
                uniforms.push(u);
                uniforms.push(r);
            }
        }
        out.push(ctx.dispatch(&scatter, &move_bindings, row_grid)?);
        uniforms.push(layer_u);
    }
    Ok(())
}
