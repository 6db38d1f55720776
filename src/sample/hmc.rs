//! Hybrid Monte Carlo on the device (Algorithm 2 of the paper): one chain per batch row, in the
//! flow's latent space (U(z) = -ln pi(g(z)) - ln|det dg/dz|, the force from the flow's backward
//! stage) or in physical space (U(x) = -ln pi(x), the force from the target stage). A trajectory
//! is submitted without a round trip: momenta from the device RNG, the leapfrog steps, both Hamiltonians, and
//! the Metropolis decision per chain; the chains stay on the device. Kernels:
//! shaders/hmc.wgsl; twin: src/reference/hmc.rs.

use bytemuck::{Pod, Zeroable};

use super::draw::Model;
use super::observables::ObservablesStage;
use crate::flow::{AdjointPass, Direction, FlowPass};
use crate::gpu::rng::RngStage;
use crate::gpu::WG;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};
use crate::physics::{Target, TargetStage};
use crate::streams;

/// Where the chains move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Space {
    /// z, with x = g(z): the flow's latent space.
    Latent,
    /// x itself.
    Physical,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct HmcUniform {
    chains: u32,
    n_sites: u32,
    latent: u32,
    slot: u32,
    coef: f32,
    _pad: [f32; 3],
}

/// The force evaluation at q: U(q)'s pieces (ln pi, ln|det|) and the buffer the kick reads.
struct Force {
    dispatches: Vec<Dispatch>,
    target: TargetStage,
    /// Latent space: the generation pass on the copy of q (saving its steps), the backward
    /// stage and its buffers.
    latent: Option<LatentForce>,
}

struct LatentForce {
    pass: FlowPass,
    _work: GpuBuffer<f32>,
    adjoint: GpuBuffer<f32>,
    _gamma: GpuBuffer<f32>,
    _backward: AdjointPass,
}

/// `hmc`'s leapfrog step size (the start of its adaptation), and the one `bench` times with (the
/// work does not depend on it).
pub const DEFAULT_STEP_SIZE: f64 = 0.1;

/// The step sizes HMC takes, given or adapted: below about 1e-7 a step is lost in the f32
/// positions (the chains stand still, every proposal accepted), and far above 1 nothing is
/// accepted.
pub const STEP_SIZES: std::ops::RangeInclusive<f64> = 1e-6..=100.0;

/// The most leapfrog steps a trajectory may have: its dispatches are recorded on the host
/// before it is submitted.
pub const MAX_LEAPFROG: usize = 100_000;

/// Where a leapfrog trajectory ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Leapfrog {
    /// Positions and momenta, [chains, N].
    pub q: Vec<f32>,
    pub p: Vec<f32>,
    /// H at the start of the trajectory, then at its end ([2, chains]).
    pub hamiltonians: Vec<f32>,
}

pub struct Hmc<'a> {
    model: &'a Model,
    pub space: Space,
    pub chains: usize,
    pub leapfrog_steps: usize,
    step_size: f64,
    n: usize,
    /// [chains, N]: the chains' states (z or x).
    pub state: GpuBuffer<f32>,
    q: GpuBuffer<f32>,
    p: GpuBuffer<f32>,
    ham: GpuBuffer<f32>,
    accepted: GpuBuffer<u32>,
    _bits: GpuBuffer<u32>,
    momenta: RngStage,
    uniforms_rng: RngStage,
    force: Force,
    /// Uniforms: the shared one, the start and end Hamiltonians, the half and full kicks, the
    /// drift (the last three rewritten when the step size changes).
    uniforms: [wgpu::Buffer; 6],
    begin: Dispatch,
    ham_start: Dispatch,
    ham_end: Dispatch,
    half_kick: Dispatch,
    kick: Dispatch,
    drift: Dispatch,
    decide: Dispatch,
    commit: Dispatch,
    /// Latent space: x = g(z) of the chains, for measurements.
    measure: Option<(GpuBuffer<f32>, FlowPass, Dispatch)>,
    /// The observables of the chains' configurations.
    observables: ObservablesStage,
}

impl<'a> Hmc<'a> {
    /// `chains` chains started from N(0, 1) draws (of z, or of x in physical space).
    pub fn new(
        ctx: &GpuContext,
        model: &'a Model,
        space: Space,
        chains: usize,
        step_size: f64,
        leapfrog_steps: usize,
        seed: u64,
    ) -> Result<Self, GpuError> {
        assert!(
            chains >= 1 && leapfrog_steps >= 1,
            "validated by the caller"
        );
        let flow = &model.flow;
        let n = flow.plan.config.n_sites();
        let values = chains * n;
        let state = ctx.storage::<f32>("hmc chains", values)?;
        let q = ctx.storage::<f32>("hmc positions", values)?;
        let p = ctx.storage::<f32>("hmc momenta", values)?;
        let ham = ctx.storage::<f32>("hmc hamiltonians", 2 * chains)?;
        let accepted = ctx.storage::<u32>("hmc decisions", chains)?;
        let bits = ctx.storage::<u32>("hmc uniforms", chains)?;
        let latent = space == Space::Latent;
        let base = HmcUniform {
            chains: chains as u32,
            n_sites: n as u32,
            latent: latent as u32,
            slot: 0,
            coef: 0.0,
            _pad: [0.0; 3],
        };
        let with = |slot: u32, coef: f32| HmcUniform { slot, coef, ..base };
        let uniforms = [
            ctx.uniform("hmc", &base)?,
            ctx.uniform("hmc start", &with(0, 0.0))?,
            ctx.uniform("hmc end", &with(1, 0.0))?,
            ctx.uniform("hmc half kick", &base)?,
            ctx.uniform("hmc kick", &base)?,
            ctx.uniform("hmc drift", &base)?,
        ];
        let k = |entry| ctx.kernel(Shader::Hmc, entry, &[("WG", WG as f64)]);
        let sites = ctx.grid(values as u64, WG);
        let force = Self::force(ctx, model, space, chains, &q, &uniforms[0], sites)?;
        let (log_det, force_input) = match &force.latent {
            Some(l) => (&l.pass.log_det, &l.adjoint),
            None => (&force.target.log_pi, &force.target.grad),
        };
        let kick_with = |u: &wgpu::Buffer| {
            ctx.dispatch(
                &k("kick")?,
                &[(0, u), (2, &p.buffer), (3, &force_input.buffer)],
                sites,
            )
        };
        let ham_with = |u: &wgpu::Buffer| {
            ctx.dispatch(
                &k("hamiltonian")?,
                &[
                    (0, u),
                    (2, &p.buffer),
                    (5, &force.target.log_pi.buffer),
                    (6, &log_det.buffer),
                    (7, &ham.buffer),
                ],
                ctx.grid(chains as u64, 1),
            )
        };
        let u0 = &uniforms[0];
        let begin = ctx.dispatch(
            &k("begin")?,
            &[(0, u0), (1, &q.buffer), (4, &state.buffer)],
            sites,
        )?;
        let decide = ctx.dispatch(
            &k("decide")?,
            &[
                (0, u0),
                (7, &ham.buffer),
                (8, &bits.buffer),
                (9, &accepted.buffer),
            ],
            ctx.grid(chains as u64, WG),
        )?;
        let commit = ctx.dispatch(
            &k("commit")?,
            &[
                (0, u0),
                (1, &q.buffer),
                (4, &state.buffer),
                (9, &accepted.buffer),
            ],
            sites,
        )?;
        let drift = ctx.dispatch(
            &k("drift")?,
            &[(0, &uniforms[5]), (1, &q.buffer), (2, &p.buffer)],
            sites,
        )?;
        let measure = if latent {
            let x = ctx.storage::<f32>("hmc measured x", values)?;
            let pass = FlowPass::new(ctx, flow, &x, chains, Direction::Generate, false)?;
            let copy = ctx.dispatch(
                &k("to_work")?,
                &[(0, u0), (1, &state.buffer), (10, &x.buffer)],
                sites,
            )?;
            Some((x, pass, copy))
        } else {
            None
        };
        let measured = measure.as_ref().map_or(&state, |m| &m.0);
        let observables =
            ObservablesStage::new(ctx, measured, chains, flow.plan.config.lattice, seed)?;
        let mut start = RngStage::normals(ctx, &state, seed, streams::HMC_START)?;
        start.set_step(ctx, 0);
        ctx.submit("hmc start", &[&start.dispatch])?;
        let mut hmc = Self {
            model,
            space,
            chains,
            leapfrog_steps,
            step_size,
            n,
            momenta: RngStage::normals(ctx, &p, seed, streams::HMC_MOMENTA)?,
            uniforms_rng: RngStage::bits(ctx, &bits, seed, streams::HMC_ACCEPT)?,
            ham_start: ham_with(&uniforms[1])?,
            ham_end: ham_with(&uniforms[2])?,
            half_kick: kick_with(&uniforms[3])?,
            kick: kick_with(&uniforms[4])?,
            state,
            q,
            p,
            ham,
            accepted,
            _bits: bits,
            force,
            uniforms,
            begin,
            drift,
            decide,
            commit,
            measure,
            observables,
        };
        hmc.set_step_size(ctx, step_size);
        Ok(hmc)
    }

    /// The dispatches that evaluate U and its gradient at `q`.
    fn force(
        ctx: &GpuContext,
        model: &Model,
        space: Space,
        chains: usize,
        q: &GpuBuffer<f32>,
        uniform: &wgpu::Buffer,
        sites: [u32; 3],
    ) -> Result<Force, GpuError> {
        let flow = &model.flow;
        if space == Space::Physical {
            let target = model.target.stage(ctx, q, chains)?;
            return Ok(Force {
                dispatches: target.dispatches().cloned().collect(),
                target,
                latent: None,
            });
        }
        let k = |entry| ctx.kernel(Shader::Hmc, entry, &[("WG", WG as f64)]);
        let n = flow.plan.config.n_sites();
        let work = ctx.storage::<f32>("hmc x", chains * n)?;
        let pass = FlowPass::new(ctx, flow, &work, chains, Direction::Generate, true)?;
        let target = model.target.stage(ctx, &work, chains)?;
        let adjoint = ctx.storage::<f32>("hmc force", chains * n)?;
        // The coefficient of ln|det dg/dz| in U: -1 for every chain.
        let gamma = ctx.storage_from("hmc log-det coefficients", &vec![-1.0f32; chains])?;
        let backward = AdjointPass::new(ctx, flow, &pass, &gamma, &adjoint)?;
        let mut dispatches = vec![ctx.dispatch(
            &k("to_work")?,
            &[(0, uniform), (1, &q.buffer), (10, &work.buffer)],
            sites,
        )?];
        dispatches.extend(pass.dispatches().cloned());
        dispatches.extend(target.dispatches().cloned());
        dispatches.push(ctx.dispatch(
            &k("seed")?,
            &[
                (0, uniform),
                (11, &target.grad.buffer),
                (12, &adjoint.buffer),
            ],
            sites,
        )?);
        dispatches.extend(backward.dispatches().cloned());
        Ok(Force {
            dispatches,
            target,
            latent: Some(LatentForce {
                pass,
                _work: work,
                adjoint,
                _gamma: gamma,
                _backward: backward,
            }),
        })
    }

    pub fn step_size(&self) -> f64 {
        self.step_size
    }

    /// The leapfrog step size from the next trajectory on.
    pub fn set_step_size(&mut self, ctx: &GpuContext, eps: f64) {
        self.step_size = eps;
        // The kick reads dU (latent) or grad ln pi = -dU (physical).
        let sign = match self.space {
            Space::Latent => -1.0,
            Space::Physical => 1.0,
        };
        let u = |coef: f64| HmcUniform {
            chains: self.chains as u32,
            n_sites: self.n as u32,
            latent: (self.space == Space::Latent) as u32,
            slot: 0,
            coef: coef as f32,
            _pad: [0.0; 3],
        };
        ctx.write_uniform(&self.uniforms[3], &u(sign * eps / 2.0));
        ctx.write_uniform(&self.uniforms[4], &u(sign * eps));
        ctx.write_uniform(&self.uniforms[5], &u(eps));
    }

    /// From the chains' states and the momenta in place: the leapfrog steps, with H at the start
    /// and at the end.
    fn integration(&self) -> Vec<&Dispatch> {
        let mut d: Vec<&Dispatch> = vec![&self.begin];
        d.extend(&self.force.dispatches);
        d.push(&self.ham_start);
        d.push(&self.half_kick);
        for step in 0..self.leapfrog_steps {
            d.extend(self.leapfrog(step + 1 == self.leapfrog_steps));
        }
        d.push(&self.ham_end);
        d
    }

    /// One leapfrog step after the opening half kick: drift, force, then a full kick (a half
    /// kick to end the trajectory).
    fn leapfrog(&self, last: bool) -> Vec<&Dispatch> {
        let mut d = vec![&self.drift];
        d.extend(&self.force.dispatches);
        d.push(if last { &self.half_kick } else { &self.kick });
        d
    }

    /// The dispatches of one leapfrog step inside a trajectory, the unit a trajectory repeats
    /// (`bench` times it).
    pub fn leapfrog_step(&self) -> Vec<&Dispatch> {
        self.leapfrog(false)
    }

    /// Force evaluations per trajectory: one at the start and one per leapfrog step.
    pub fn forces_per_trajectory(&self) -> usize {
        self.leapfrog_steps + 1
    }

    /// Trajectory `t` (momenta and uniforms from the streams at step t): the chains that
    /// accept move; returns how many accepted.
    pub fn trajectory(&mut self, ctx: &GpuContext, t: u64) -> Result<usize, GpuError> {
        self.momenta.set_step(ctx, t);
        self.uniforms_rng.set_step(ctx, t);
        let mut d = vec![&self.momenta.dispatch];
        d.extend(self.integration());
        d.extend([&self.uniforms_rng.dispatch, &self.decide, &self.commit]);
        ctx.submit("hmc trajectory", &d)?;
        Ok(ctx
            .read(&self.accepted)?
            .iter()
            .filter(|a| **a != 0)
            .count())
    }

    /// The chains' configurations x ([chains, N]; g(z) in latent space).
    pub fn configurations(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        match &self.measure {
            Some((x, pass, copy)) => {
                let d: Vec<&Dispatch> = std::iter::once(copy).chain(pass.dispatches()).collect();
                ctx.submit("hmc measure", &d)?;
                ctx.read(x)
            }
            None => ctx.read(&self.state),
        }
    }

    /// The observables of the chains' configurations ([chains, 3], in
    /// [`NAMES`](super::observables::NAMES) order), measurement `t` drawing its spins from the
    /// device stream at step t.
    pub fn observe(&mut self, ctx: &GpuContext, t: u64) -> Result<Vec<f32>, GpuError> {
        let mut d: Vec<&Dispatch> = match &self.measure {
            Some((_, pass, copy)) => std::iter::once(copy).chain(pass.dispatches()).collect(),
            None => Vec::new(),
        };
        d.extend(self.observables.dispatches(ctx, t));
        ctx.submit("hmc observables", &d)?;
        ctx.read(&self.observables.values)
    }

    /// Testing: the last trajectory's Hamiltonians ([2, chains]: start, then end) and the
    /// chains' decisions (1: accepted).
    pub fn last_decisions(&self, ctx: &GpuContext) -> Result<(Vec<f32>, Vec<u32>), GpuError> {
        Ok((ctx.read(&self.ham)?, ctx.read(&self.accepted)?))
    }

    /// Testing: the leapfrog alone from `state` with momenta `p` (no refresh, no decision).
    pub fn integrate_from(
        &self,
        ctx: &GpuContext,
        state: &[f32],
        p: &[f32],
    ) -> Result<Leapfrog, GpuError> {
        ctx.write(&self.state, state);
        ctx.write(&self.p, p);
        ctx.submit("hmc leapfrog", &self.integration())?;
        Ok(Leapfrog {
            q: ctx.read(&self.q)?,
            p: ctx.read(&self.p)?,
            hamiltonians: ctx.read(&self.ham)?,
        })
    }

    /// U and dU/dq at positions `q` ([chains, N]), as the leapfrog sees them.
    pub fn potential_and_gradient(
        &self,
        ctx: &GpuContext,
        q: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
        ctx.write(&self.q, q);
        ctx.submit(
            "hmc force",
            &self.force.dispatches.iter().collect::<Vec<_>>(),
        )?;
        let mut u: Vec<f32> = ctx
            .read(&self.force.target.log_pi)?
            .iter()
            .map(|l| -l)
            .collect();
        let grad = match &self.force.latent {
            Some(l) => {
                for (u, ld) in u.iter_mut().zip(ctx.read(&l.pass.log_det)?) {
                    *u -= ld;
                }
                ctx.read(&l.adjoint)?
            }
            None => ctx
                .read(&self.force.target.grad)?
                .iter()
                .map(|g| -g)
                .collect(),
        };
        Ok((u, grad))
    }

    /// The model the chains sample.
    pub fn model(&self) -> &Model {
        self.model
    }
}
