//! One PDD training step on the device (Algorithm 1), assembled from stages: the latent draw,
//! the generation pass, the target, (for the symmetric and regularised objectives) an inference
//! pass on -x, the loss, the backward passes of the flow, Adam. Every buffer, uniform and bind
//! group is built once in [`TrainStep::new`]; a step copies the parameters and Adam's moments
//! into a rollback slot, writes two small uniforms, submits, and reads back 8 floats.

use super::adam::AdamStage;
use super::loss::{LossInputs, LossStage};
use super::{AdamConfig, Objective};
use crate::flow::{BackwardIo, BackwardPass, BackwardScratch, Direction, Flow, FlowPass, FlowPlan};
use crate::gpu::rng::RngStage;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::physics::{Target, TargetStage};
use crate::streams;

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

/// A device copy of the trained state: parameters and Adam's moments.
struct StateCopy {
    params: GpuBuffer<f32>,
    m: GpuBuffer<f32>,
    v: GpuBuffer<f32>,
}

impl StateCopy {
    fn new(ctx: &GpuContext, n_params: usize, slot: usize) -> Result<Self, GpuError> {
        Ok(Self {
            params: ctx.storage(&format!("rollback params {slot}"), n_params)?,
            m: ctx.storage(&format!("rollback adam m {slot}"), n_params)?,
            v: ctx.storage(&format!("rollback adam v {slot}"), n_params)?,
        })
    }
}

pub struct TrainStep {
    pub flow: Flow,
    pub batch: usize,
    /// [batch, N]: z, then x = g(z).
    pub state: GpuBuffer<f32>,
    rng: RngStage,
    loss: LossStage,
    adam: AdamStage,
    /// Everything between the latent draw and Adam's update.
    gradient_dispatches: Vec<Dispatch>,
    /// The state before step t (slot t % 2) and before step t - 1 (the other slot), so that a
    /// non-finite step can go back to a state that gave a finite one.
    rollback: [StateCopy; 2],
    _kept: KeptAlive,
}

/// Stages that only the recorded dispatches use, kept alive with them.
struct KeptAlive {
    _generation: FlowPass,
    /// -x and the inference pass on it.
    _inference: Option<(GpuBuffer<f32>, FlowPass)>,
    _target: TargetStage,
    _scratch: BackwardScratch,
    _backward: Vec<BackwardPass>,
}

impl TrainStep {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        plan: FlowPlan,
        params: &[f32],
        masks: &[u32],
        target: &dyn Target,
        batch: usize,
        objective: Objective,
        adam: AdamConfig,
        seed: u64,
    ) -> Result<Self, GpuError> {
        let n = plan.config.n_sites();
        let flow = Flow::new(ctx, plan, params, masks)?;
        let state = ctx.storage::<f32>("train state", batch * n)?;
        let rng = RngStage::normals(ctx, &state, seed, streams::TRAIN)?;
        let gen = FlowPass::new(ctx, &flow, &state, batch, Direction::Generate, true)?;
        let target_stage = target.stage(ctx, &state, batch)?;
        // ln q(-x): an inference pass on -x, for the objectives that need it.
        let inf = if objective.needs_negated_pass() {
            let neg_state = ctx.storage::<f32>("train -x", batch * n)?;
            let pass = FlowPass::new(ctx, &flow, &neg_state, batch, Direction::Infer, true)?;
            Some((neg_state, pass))
        } else {
            None
        };
        let loss = LossStage::new(
            ctx,
            objective,
            batch,
            n,
            LossInputs {
                x: &state,
                ln_q: &gen.ln_q,
                ln_pi: &target_stage.log_pi,
                grad_ln_pi: &target_stage.grad,
                negated: inf.as_ref().map(|(s, pass)| (s, &pass.ln_q)),
            },
        )?;
        let adam = AdamStage::new(ctx, adam, &flow.params, &loss.stats)?;

        // Both backward passes share one scratch: they run one after the other.
        let scratch = BackwardScratch::new(ctx, &flow, batch, true)?;
        let backward = |pass, gamma, adjoint| {
            BackwardPass::new(
                ctx,
                &flow,
                &scratch,
                BackwardIo {
                    pass,
                    gamma,
                    adjoint,
                    grad: Some(&adam.grad),
                },
            )
        };
        let bwd_inf = match &inf {
            Some((_, pass)) => Some(backward(pass, &loss.gamma_inf, &loss.adj_inf)?),
            None => None,
        };
        let bwd_gen = backward(&gen, &loss.gamma_gen, &loss.adj_gen)?;

        let mut d: Vec<Dispatch> = gen.dispatches().cloned().collect();
        d.extend(target_stage.dispatches().cloned());
        if let Some((_, pass)) = &inf {
            d.extend(loss.negate.clone());
            d.extend(pass.dispatches().cloned());
        }
        d.extend(loss.head.iter().cloned());
        d.push(adam.zero_grad.clone());
        if let Some(b) = &bwd_inf {
            d.extend(b.dispatches().cloned());
            d.extend(loss.combine.clone());
        }
        d.extend(bwd_gen.dispatches().cloned());
        d.push(adam.grad_norm.clone());

        let n_params = flow.params.len;
        let rollback = [
            StateCopy::new(ctx, n_params, 0)?,
            StateCopy::new(ctx, n_params, 1)?,
        ];
        let trainer = Self {
            flow,
            batch,
            state,
            rng,
            loss,
            adam,
            gradient_dispatches: d,
            rollback,
            _kept: KeptAlive {
                _generation: gen,
                _inference: inf,
                _target: target_stage,
                _scratch: scratch,
                _backward: bwd_inf.into_iter().chain([bwd_gen]).collect(),
            },
        };
        trainer.remember_start(ctx)?;
        Ok(trainer)
    }

    /// (live, slot) buffer pairs of rollback slot `slot`.
    fn slot_pairs(&self, slot: usize) -> [(&GpuBuffer<f32>, &GpuBuffer<f32>); 3] {
        let c = &self.rollback[slot];
        [
            (&self.flow.params, &c.params),
            (&self.adam.m, &c.m),
            (&self.adam.v, &c.v),
        ]
    }

    /// Both rollback slots hold the current state (the run's start, or its checkpoint's).
    fn remember_start(&self, ctx: &GpuContext) -> Result<(), GpuError> {
        for slot in 0..2 {
            ctx.copy("rollback snapshot", &self.slot_pairs(slot))?;
        }
        Ok(())
    }

    /// After a non-finite step `t`: restores the state from before step t - 1's update (the last
    /// one whose step was finite), so that retrying step t skips the update that led here.
    pub fn roll_back(&self, ctx: &GpuContext, t: u64) -> Result<(), GpuError> {
        let back = self
            .slot_pairs(((t + 1) % 2) as usize)
            .map(|(live, copy)| (copy, live));
        ctx.copy("rollback", &back)
    }

    /// The learning rate from the next step on (the schedule's, or a lowered one after a
    /// rollback).
    pub fn set_lr(&mut self, lr: f64) {
        self.adam.config.lr = lr;
    }

    /// Fault injection for tests: a NaN in the first parameter.
    pub fn poison(&self, ctx: &GpuContext) {
        ctx.write(&self.flow.params, &[f32::NAN]);
    }

    /// Training step `t` (0-based): draws z with the stream (seed, streams::TRAIN, t), computes
    /// the gradient, applies Adam update t + 1, and returns the statistics of the batch it
    /// trained on.
    pub fn step(&mut self, ctx: &GpuContext, t: u64) -> Result<StepStats, GpuError> {
        ctx.copy("rollback snapshot", &self.slot_pairs((t % 2) as usize))?;
        ctx.submit("train step", &self.dispatches(ctx, t))?;
        self.read_stats(ctx)
    }

    /// Every dispatch of step `t`, in order (for profiling; [`TrainStep::step`] runs them).
    pub fn dispatches(&mut self, ctx: &GpuContext, t: u64) -> Vec<&Dispatch> {
        self.rng.set_step(ctx, t);
        self.adam.set_update(ctx, t + 1);
        std::iter::once(&self.rng.dispatch)
            .chain(&self.gradient_dispatches)
            .chain(std::iter::once(&self.adam.update))
            .collect()
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
        let s = ctx.read(&self.loss.stats)?;
        Ok(StepStats {
            loss: s[0] as f64,
            loss_stderr: s[1] as f64,
            objective: s[2] as f64,
            objective_stderr: s[3] as f64,
            grad_norm: (s[super::adam::NORM_SLOT] as f64).sqrt(),
        })
    }

    /// The parameter gradient of the last step.
    pub fn grad(&self) -> &GpuBuffer<f32> {
        &self.adam.grad
    }

    /// After a step: the adjoint of z (see `reference::backward::TwinGradients::dz`).
    pub fn dz(&self) -> &GpuBuffer<f32> {
        &self.loss.adj_gen
    }

    /// Adam's first and second moments.
    pub fn moments(&self) -> (&GpuBuffer<f32>, &GpuBuffer<f32>) {
        (&self.adam.m, &self.adam.v)
    }

    /// Replaces the parameters and Adam moments (resuming from a checkpoint).
    pub fn load(
        &self,
        ctx: &GpuContext,
        params: &[f32],
        m: &[f32],
        v: &[f32],
    ) -> Result<(), GpuError> {
        ctx.write(&self.flow.params, params);
        ctx.write(&self.adam.m, m);
        ctx.write(&self.adam.v, v);
        self.remember_start(ctx)
    }
}
