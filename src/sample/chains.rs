//! Samplers of the physical distribution that are exact, run and summarised the same way:
//! HMC (latent or physical space), flow independence Metropolis, and importance reweighting of
//! direct flow samples. Each gives the structure factor, the energy and |m| with error bars
//! that account for autocorrelation, the acceptance, the integrated autocorrelation time and
//! the effective sample size per second.

use std::time::Instant;

use rand::Rng;

use super::draw::{Model, Sampler};
use super::estimate::EstimateError;
use super::hmc::{Hmc, STEP_SIZES};
use super::observables::{measure, ChainSeries, NAMES};
use crate::analysis::reweight::reweight;
use crate::analysis::series::{summarize, Summary};
use crate::gpu::{GpuContext, GpuError};
use crate::physics::exact::energy_per_site;
use crate::streams;

/// How long a chain runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Trajectories (or iterations) discarded first; HMC adapts its step size during them.
    pub thermalise: usize,
    /// Trajectories (or iterations) measured.
    pub measure: usize,
    /// HMC: the acceptance the step size is adapted towards while thermalising (`None`: fixed).
    pub target_acceptance: Option<f64>,
}

/// What a chain run produced.
#[derive(Debug, Clone)]
pub struct ChainRun {
    pub series: ChainSeries,
    /// Accepted proposals and proposals, over the measured part.
    pub accepted: u64,
    pub proposals: u64,
    pub cost: Cost,
}

/// What the measured part of a sampler run cost.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// Wall time.
    pub seconds: f64,
    /// HMC: the step size used while measuring, and the force evaluations it took.
    pub step_size: Option<f64>,
    pub force_evaluations: Option<u64>,
}

/// A sampler's estimates (the JSON object of `hmc` and `mcmc`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SamplerReport {
    pub sampler: String,
    pub lattice: usize,
    pub beta: f64,
    /// Measurements in all.
    pub samples: usize,
    pub structure_factor: f64,
    pub structure_factor_err: f64,
    pub energy: f64,
    pub energy_err: f64,
    pub abs_m: f64,
    pub abs_m_err: f64,
    /// The exact energy per site of the Ising model (Kaufman).
    pub energy_exact: f64,
    /// Accepted fraction of proposals (null for reweighting, which accepts nothing).
    pub acceptance: Option<f64>,
    /// The largest integrated autocorrelation time of the three observables, in measurements.
    pub tau_int: f64,
    /// The smallest effective sample size of the three (Kish's for reweighting).
    pub ess: f64,
    pub ess_per_s: f64,
    pub seconds: f64,
    pub step_size: Option<f64>,
    pub force_evaluations: Option<u64>,
    /// Why the error bars may not be trusted, if they may not.
    pub warning: Option<String>,
}

/// Chains shorter than this many autocorrelation times give unreliable errors (Sokal).
const MIN_TAUS: f64 = 50.0;
/// Reweighting with a smaller effective fraction rests on a few samples.
const MIN_ESS_FRACTION: f64 = 0.01;
/// Reweighting with fewer effective samples has too few for its jackknife (64 blocks).
const MIN_ESS: f64 = 100.0;

impl SamplerReport {
    /// The report of a chain run, each observable summarised over all chains.
    pub fn from_chains(sampler: &str, model: &Model, run: &ChainRun) -> Self {
        let s: Vec<Summary> = run.series.values.iter().map(|v| summarize(v)).collect();
        let tau = s.iter().map(|x| x.tau_int).fold(0.5, f64::max);
        let ess = s.iter().map(|x| x.ess).fold(f64::INFINITY, f64::min);
        let length = run.series.len() as f64;
        let mut report = Self::new(
            sampler,
            model,
            [s[0].mean, s[1].mean, s[2].mean],
            [s[0].err, s[1].err, s[2].err],
            s[0].n,
            (run.proposals > 0).then(|| run.accepted as f64 / run.proposals as f64),
            tau,
            ess,
            &run.cost,
        );
        let mut warnings = Vec::new();
        // Chains that never moved measure their start alone (a step size far too large, or a
        // flow whose densities are not finite), whatever the other statistics say.
        if run.proposals > 0 && run.accepted == 0 {
            warnings.push(
                "no proposal was accepted, so the chains never left their start: the values are \
                 not samples of pi (try a smaller --step-size, or check the flow with eval)"
                    .to_string(),
            );
        }
        if length < MIN_TAUS * tau {
            warnings.push(format!(
                "the chains are {length} measurements long, under {MIN_TAUS} autocorrelation \
                 times ({tau:.1} each): the error bars may be too small; measure longer"
            ));
        }
        report.warning = (!warnings.is_empty()).then(|| warnings.join("; "));
        report
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        sampler: &str,
        model: &Model,
        mean: [f64; 3],
        err: [f64; 3],
        samples: usize,
        acceptance: Option<f64>,
        tau_int: f64,
        ess: f64,
        cost: &Cost,
    ) -> Self {
        let l = model.target.lattice.l;
        Self {
            sampler: sampler.to_string(),
            lattice: l,
            beta: model.target.beta,
            samples,
            structure_factor: mean[0],
            structure_factor_err: err[0],
            energy: mean[1],
            energy_err: err[1],
            abs_m: mean[2],
            abs_m_err: err[2],
            energy_exact: energy_per_site(l, model.target.beta),
            acceptance,
            tau_int,
            ess,
            ess_per_s: ess / cost.seconds.max(1e-9),
            seconds: cost.seconds,
            step_size: cost.step_size,
            force_evaluations: cost.force_evaluations,
            warning: None,
        }
    }

    /// One line per observable and one for the sampler's efficiency.
    pub fn to_text(&self) -> String {
        let values = [
            (NAMES[0], self.structure_factor, self.structure_factor_err),
            (NAMES[1], self.energy, self.energy_err),
            (NAMES[2], self.abs_m, self.abs_m_err),
        ];
        let mut out = format!(
            "{} at L = {}, beta = {:.6}: {} measurements in {:.1} s\n",
            self.sampler, self.lattice, self.beta, self.samples, self.seconds
        );
        for (name, v, e) in values {
            out.push_str(&format!("  {name:<17} {v:.6} +/- {e:.6}"));
            if name == "energy" {
                out.push_str(&format!("   (exact {:.6})", self.energy_exact));
            }
            out.push('\n');
        }
        let acc = self
            .acceptance
            .map_or("-".to_string(), |a| format!("{a:.3}"));
        out.push_str(&format!(
            "  acceptance {acc}, tau_int {:.2}, ESS {:.1} ({:.1}/s)",
            self.tau_int, self.ess, self.ess_per_s
        ));
        if let Some(eps) = self.step_size {
            out.push_str(&format!(", step size {eps:.4}"));
        }
        if let Some(w) = &self.warning {
            out.push_str(&format!("\n  warning: {w}"));
        }
        out
    }
}

/// Runs HMC for `schedule`: the step size adapts towards the target acceptance while
/// thermalising (multiplied by exp(acceptance - target) after each trajectory) and is frozen
/// after, so the measured chain is exact. `progress(done, total)` after every trajectory.
pub fn run_hmc(
    ctx: &GpuContext,
    hmc: &mut Hmc,
    schedule: &Schedule,
    mut progress: impl FnMut(usize, usize),
) -> Result<ChainRun, GpuError> {
    let total = schedule.thermalise + schedule.measure;
    let chains = hmc.chains;
    thermalise(ctx, hmc, schedule, &mut progress)?;
    let l = hmc.model().target.lattice.l;
    let mut series = ChainSeries::new(l, chains);
    let began = Instant::now();
    let mut accepted = 0;
    for t in schedule.thermalise..total {
        accepted += hmc.trajectory(ctx, t as u64)? as u64;
        series.push_values(&hmc.observe(ctx, t as u64)?);
        progress(t + 1, total);
    }
    let proposals = (schedule.measure * chains) as u64;
    Ok(ChainRun {
        series,
        accepted,
        proposals,
        cost: Cost {
            seconds: began.elapsed().as_secs_f64(),
            step_size: Some(hmc.step_size()),
            force_evaluations: Some(proposals * hmc.forces_per_trajectory() as u64),
        },
    })
}

/// The thermalisation trajectories of `schedule` (0..thermalise), adapting the step size.
pub fn thermalise(
    ctx: &GpuContext,
    hmc: &mut Hmc,
    schedule: &Schedule,
    mut progress: impl FnMut(usize, usize),
) -> Result<(), GpuError> {
    let total = schedule.thermalise + schedule.measure;
    for t in 0..schedule.thermalise {
        let accepted = hmc.trajectory(ctx, t as u64)?;
        if let Some(target) = schedule.target_acceptance {
            let rate = accepted as f64 / hmc.chains as f64;
            let eps = hmc.step_size() * (rate - target).exp();
            hmc.set_step_size(ctx, eps.clamp(*STEP_SIZES.start(), *STEP_SIZES.end()));
        }
        progress(t + 1, total);
    }
    Ok(())
}

/// Independence Metropolis with the flow as proposal: chain c takes row c of each batch of
/// direct samples and accepts x' with probability min(1, [pi(x') q(x)] / [pi(x) q(x')]).
pub fn run_flow_metropolis(
    ctx: &GpuContext,
    model: &Model,
    chains: usize,
    schedule: &Schedule,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<ChainRun, EstimateError> {
    let mut sampler = Sampler::new(ctx, model, chains, seed)?;
    let l = model.target.lattice.l;
    let n = l * l;
    let total = schedule.thermalise + schedule.measure;
    let mut uniforms = streams::host(seed, streams::Host::Metropolis);
    let mut spins = streams::host(seed, streams::Host::Spins);
    let mut series = ChainSeries::new(l, chains);
    // Each chain's configuration and its log-weight ln pi - ln q.
    let mut x = vec![0.0f32; chains * n];
    let mut log_w = vec![f64::NEG_INFINITY; chains];
    let (mut accepted, mut proposals) = (0, 0);
    let mut non_finite = 0;
    let mut began = Instant::now();
    for t in 0..total {
        if t == schedule.thermalise {
            began = Instant::now();
        }
        let draw = sampler.draw(ctx, t as u64)?;
        let measuring = t >= schedule.thermalise;
        for c in 0..chains {
            let lw = draw.ln_pi[c] as f64 - draw.ln_q[c] as f64;
            non_finite += !lw.is_finite() as usize;
            // The first proposal always moves a chain off its empty start.
            let ok = lw.is_finite()
                && (log_w[c] == f64::NEG_INFINITY || uniforms.random::<f64>().ln() < lw - log_w[c]);
            if ok {
                x[c * n..(c + 1) * n].copy_from_slice(&draw.x[c * n..(c + 1) * n]);
                log_w[c] = lw;
            }
            if measuring {
                accepted += ok as u64;
                proposals += 1;
            }
        }
        // A chain still at its empty start has met only non-finite densities (a broken flow):
        // measuring it would report the zero configuration as the physics.
        if measuring && log_w.contains(&f64::NEG_INFINITY) {
            return Err(EstimateError::NonFinite {
                count: non_finite,
                seen: (t + 1) * chains,
            });
        }
        if measuring {
            series.push(&x, &mut spins);
        }
        progress(t + 1, total);
    }
    Ok(ChainRun {
        series,
        accepted,
        proposals,
        cost: Cost {
            seconds: began.elapsed().as_secs_f64(),
            step_size: None,
            force_evaluations: None,
        },
    })
}

/// Importance reweighting of `samples` direct flow samples drawn in batches of `batch`.
pub fn run_reweight(
    ctx: &GpuContext,
    model: &Model,
    samples: usize,
    batch: usize,
    seed: u64,
    mut progress: impl FnMut(usize, usize),
) -> Result<SamplerReport, EstimateError> {
    let mut sampler = Sampler::new(ctx, model, batch.min(samples), seed)?;
    let l = model.target.lattice.l;
    let n = l * l;
    let mut spins = streams::host(seed, streams::Host::Spins);
    let mut values: [Vec<f64>; 3] = Default::default();
    let mut log_w = Vec::with_capacity(samples);
    let began = Instant::now();
    for k in 0.. {
        if log_w.len() >= samples {
            break;
        }
        let draw = sampler.draw(ctx, k)?;
        let take = (samples - log_w.len()).min(draw.ln_q.len());
        let batch_w: Vec<f64> = (0..take)
            .map(|c| draw.ln_pi[c] as f64 - draw.ln_q[c] as f64)
            .collect();
        // A sample without a finite weight (a broken flow's overflow) would make every average
        // NaN: no estimate, as the free-energy estimates refuse one.
        let count = batch_w.iter().filter(|w| !w.is_finite()).count();
        if count > 0 {
            return Err(EstimateError::NonFinite {
                count,
                seen: log_w.len() + take,
            });
        }
        for (xc, lw) in draw.x.chunks_exact(n).zip(batch_w) {
            log_w.push(lw);
            let u: Vec<f32> = (0..n).map(|_| spins.random()).collect();
            for (v, o) in values.iter_mut().zip(measure(xc, l, &u).values()) {
                v.push(o);
            }
        }
        progress(log_w.len(), samples);
    }
    let r: Vec<_> = values.iter().map(|v| reweight(v, &log_w)).collect();
    let cost = Cost {
        seconds: began.elapsed().as_secs_f64(),
        step_size: None,
        force_evaluations: None,
    };
    let mut report = SamplerReport::new(
        "reweight",
        model,
        [r[0].mean, r[1].mean, r[2].mean],
        [r[0].err, r[1].err, r[2].err],
        samples,
        None,
        0.5,
        r[0].ess,
        &cost,
    );
    if r[0].ess < MIN_ESS_FRACTION * samples as f64 {
        report.warning = Some(format!(
            "the effective sample size is {:.1} of {samples} samples (under {}%): the values \
             rest on a few heavy weights and their errors are unreliable; use hmc or more samples",
            r[0].ess,
            100.0 * MIN_ESS_FRACTION
        ));
    } else if r[0].ess < MIN_ESS {
        report.warning = Some(format!(
            "the effective sample size is {:.1}, under {MIN_ESS}: too few samples for reliable \
             error bars; use more samples",
            r[0].ess
        ));
    }
    Ok(report)
}
