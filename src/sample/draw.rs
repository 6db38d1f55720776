//! Direct sampling from a flow: z ~ N(0, 1) on the device, x = g(z), ln q(x), ln pi(x); for a
//! symmetrised model (Appendix D) the sign of x is flipped with probability 1/2 and ln q is
//! ln q_sym(x) = ln [q(x) + q(-x)] / 2.

use rand::Rng;

use crate::config::RunConfig;
use crate::flow::{params, Direction, Flow, FlowPass};
use crate::gpu::rng::RngStage;
use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::io::checkpoint::Checkpoint;
use crate::io::npy;
use crate::logspace::log_sum_exp;
use crate::physics::{IsingTarget, Target, TargetStage};
use crate::streams;

/// A flow with its target, ready to sample.
pub struct Model {
    pub flow: Flow,
    pub target: IsingTarget,
    /// Sample from q_sym instead of q.
    pub symmetric: bool,
}

impl Model {
    /// A trained model.
    pub fn from_checkpoint(ctx: &GpuContext, ck: &Checkpoint) -> Result<Self, GpuError> {
        Self::new(ctx, &ck.config, &ck.params, &ck.masks)
    }

    /// Freshly initialised parameters (the identity flow), plus N(0, perturb^2) noise.
    pub fn init(ctx: &GpuContext, config: &RunConfig, perturb: f64) -> Result<Self, GpuError> {
        let plan = config.plan().expect("validated config");
        let (p, masks) = params::fresh(&plan, config.train.seed, perturb);
        Self::new(ctx, config, &p, &masks)
    }

    fn new(
        ctx: &GpuContext,
        config: &RunConfig,
        p: &[f32],
        masks: &[u32],
    ) -> Result<Self, GpuError> {
        let plan = config.plan().expect("validated config");
        Ok(Self {
            flow: Flow::new(ctx, plan, p, masks)?,
            target: config.target().expect("validated config"),
            symmetric: config.train.symmetric,
        })
    }
}

/// A batch of samples with their log-densities, all f32 as computed on the device.
pub struct Samples {
    pub lattice: usize,
    pub batch: usize,
    /// [batch, L, L]
    pub x: Vec<f32>,
    /// ln q(x) (ln q_sym(x) for a symmetrised model).
    pub ln_q: Vec<f32>,
    /// log|det dg/dz| of the draw (before any sign flip).
    pub log_det: Vec<f32>,
    /// Unnormalised ln pi(x) of the target.
    pub ln_pi: Vec<f32>,
}

/// Everything sampling a batch needs, built once and reused for every batch.
pub struct Sampler<'a> {
    model: &'a Model,
    batch: usize,
    seed: u64,
    state: GpuBuffer<f32>,
    rng: RngStage,
    pass: FlowPass,
    target: TargetStage,
    /// For q_sym: -x and the inference pass that gives ln q(-x).
    negated: Option<(GpuBuffer<f32>, FlowPass)>,
}

impl<'a> Sampler<'a> {
    pub fn new(
        ctx: &GpuContext,
        model: &'a Model,
        batch: usize,
        seed: u64,
    ) -> Result<Self, GpuError> {
        let flow = &model.flow;
        let n = flow.plan.config.n_sites();
        let state = ctx.storage::<f32>("samples", batch * n)?;
        let rng = RngStage::normals(ctx, &state, seed, streams::SAMPLE)?;
        let pass = FlowPass::new(ctx, flow, &state, batch, Direction::Generate, false)?;
        let target = model.target.stage(ctx, &state, batch)?;
        let negated = if model.symmetric {
            let neg = ctx.storage::<f32>("samples, negated", batch * n)?;
            let inf = FlowPass::new(ctx, flow, &neg, batch, Direction::Infer, false)?;
            Some((neg, inf))
        } else {
            None
        };
        Ok(Self {
            model,
            batch,
            seed,
            state,
            rng,
            pass,
            target,
            negated,
        })
    }

    /// The batch drawn with the latent stream (seed, streams::SAMPLE, step).
    pub fn draw(&mut self, ctx: &GpuContext, step: u64) -> Result<Samples, GpuError> {
        let n = self.model.flow.plan.config.n_sites();
        self.rng.set_step(ctx, step);
        let all: Vec<_> = std::iter::once(&self.rng.dispatch)
            .chain(self.pass.dispatches())
            .chain(self.target.dispatches())
            .collect();
        ctx.submit("sample", &all)?;
        let mut s = Samples {
            lattice: self.model.flow.plan.config.lattice,
            batch: self.batch,
            x: ctx.read(&self.state)?,
            ln_q: ctx.read(&self.pass.ln_q)?,
            log_det: ctx.read(&self.pass.log_det)?,
            ln_pi: ctx.read(&self.target.log_pi)?,
        };
        if let Some((neg, inf)) = &self.negated {
            ctx.write(neg, &s.x.iter().map(|v| -v).collect::<Vec<f32>>());
            ctx.submit("inference on -x", &inf.dispatches().collect::<Vec<_>>())?;
            let ln_q_neg = ctx.read(&inf.ln_q)?;
            let mut flips = streams::host(self.seed, streams::Host::SignFlips { step });
            for (i, (lq, lqn)) in s.ln_q.iter_mut().zip(ln_q_neg).enumerate() {
                let ln_2q_sym = log_sum_exp(&[*lq as f64, lqn as f64]);
                *lq = (ln_2q_sym - std::f64::consts::LN_2) as f32;
                if flips.random::<bool>() {
                    s.x[i * n..(i + 1) * n].iter_mut().for_each(|v| *v = -*v);
                }
            }
        }
        Ok(s)
    }
}

/// One batch of `batch` samples with the latent stream (seed, streams::SAMPLE, step).
pub fn draw(
    ctx: &GpuContext,
    model: &Model,
    batch: usize,
    seed: u64,
    step: u64,
) -> Result<Samples, GpuError> {
    Sampler::new(ctx, model, batch, seed)?.draw(ctx, step)
}

impl Samples {
    /// How many samples have a non-finite value, ln q or ln pi (a damaged checkpoint or a
    /// broken flow).
    pub fn non_finite(&self) -> usize {
        let n = self.lattice * self.lattice;
        (0..self.batch)
            .filter(|&i| {
                !(self.ln_q[i].is_finite()
                    && self.ln_pi[i].is_finite()
                    && self.x[i * n..(i + 1) * n].iter().all(|v| v.is_finite()))
            })
            .count()
    }

    /// Per-sample ln q(x) - ln pi(x): its mean is the variational free energy (eq. 5).
    pub fn free_energy_terms(&self) -> Vec<f64> {
        self.ln_q
            .iter()
            .zip(&self.ln_pi)
            .map(|(q, p)| *q as f64 - *p as f64)
            .collect()
    }

    /// The `.npz` archive: `x` [batch, L, L], `ln_q`, `log_det`, `ln_pi` [batch], all float32.
    pub fn to_npz(&self) -> Result<Vec<u8>, npy::NpzError> {
        let l = self.lattice;
        npy::npz(&[
            ("x", npy::npy_f32(&[self.batch, l, l], &self.x)),
            ("ln_q", npy::npy_f32(&[self.batch], &self.ln_q)),
            ("log_det", npy::npy_f32(&[self.batch], &self.log_det)),
            ("ln_pi", npy::npy_f32(&[self.batch], &self.ln_pi)),
        ])
    }
}
