//! `neuralrg-gpu bench`: the time of a training step (plain and symmetric), of generating a
//! batch with ln q and of one latent-HMC leapfrog step for a chain per batch row, after a
//! warm-up, as the median and spread of repeated wall-clock measurements, with the flop model's
//! achieved GFLOP/s; optionally the GPU time per kernel.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::config::RunConfig;
use crate::flow::plan::{FlowPlan, PlanError};
use crate::flow::{cost, params, Direction, FlowPass};
use crate::gpu::profiler::Clock;
use crate::gpu::rng::RngStage;
use crate::gpu::{Dispatch, GpuContext, GpuError};
use crate::physics::ising::{IsingTarget, TargetError};
use crate::sample::hmc::{Hmc, Space};
use crate::sample::Model;
use crate::streams;
use crate::train::{Objective, TrainStep};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("--reps must be from 1 to {MAX_REPS} (got {0})")]
    Reps(usize),
    #[error("--warmup must be at most {MAX_REPS} (got {0})")]
    Warmup(usize),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// Most timed (and most untimed) repetitions: far more than a median needs, and few enough
/// that their times fit in memory and their count in any integer.
pub const MAX_REPS: usize = 100_000;

/// Noise on the fresh flow's parameters, so no kernel sees only zeros.
const PERTURB: f64 = 0.01;

/// What to measure and how often.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub config: RunConfig,
    /// Untimed repetitions first (pipeline compilation, caches).
    pub warmup: usize,
    /// Timed repetitions.
    pub reps: usize,
    /// Also the GPU time per kernel of one repetition.
    pub profile: bool,
}

impl BenchOptions {
    /// What `run` would refuse, found before any device work; the plan and target it runs.
    pub fn check(&self) -> Result<(FlowPlan, IsingTarget), BenchError> {
        if !(1..=MAX_REPS).contains(&self.reps) {
            return Err(BenchError::Reps(self.reps));
        }
        if self.warmup > MAX_REPS {
            return Err(BenchError::Warmup(self.warmup));
        }
        Ok((self.config.plan()?, self.config.target()?))
    }
}

/// Seconds per repetition of one workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    pub name: String,
    pub median_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub reps: usize,
    pub samples_per_s: f64,
    /// The flop model's count per repetition (`flow::cost`).
    pub flops: u64,
    pub gflop_per_s: f64,
    /// With --profile: seconds per kernel (summed over its dispatches) in one repetition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernels: Option<BTreeMap<String, f64>>,
}

/// A benchmark on one adapter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub lattice: usize,
    pub batch: usize,
    pub arch: String,
    pub depth: usize,
    pub couplings: usize,
    pub hidden: usize,
    pub mlp_layers: usize,
    pub parameters: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_clock: Option<Clock>,
    pub timings: Vec<Timing>,
}

fn timing(
    name: &str,
    mut times: Vec<f64>,
    batch: usize,
    flops: u64,
    kernels: Option<BTreeMap<String, f64>>,
) -> Timing {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Timing {
        name: name.to_string(),
        median_s: median,
        min_s: times[0],
        max_s: times[times.len() - 1],
        reps: times.len(),
        samples_per_s: batch as f64 / median,
        flops,
        gflop_per_s: flops as f64 / median * 1e-9,
        kernels,
    }
}

/// Seconds per kernel name, summed over its dispatches.
fn by_kernel(dispatches: &[&Dispatch], times: &[f64]) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (d, t) in dispatches.iter().zip(times) {
        *out.entry(d.name().to_string()).or_insert(0.0) += t;
    }
    out
}

/// Seconds of each of `opts.reps` calls of `work(t)` after `opts.warmup` untimed ones (t counts
/// them all).
fn repeat(
    opts: &BenchOptions,
    mut work: impl FnMut(u64) -> Result<(), GpuError>,
) -> Result<Vec<f64>, GpuError> {
    let mut times = Vec::with_capacity(opts.reps);
    for t in 0..(opts.warmup + opts.reps) as u64 {
        let start = Instant::now();
        work(t)?;
        if t as usize >= opts.warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

/// With --profile: the GPU time per kernel of one more run of `d`, its clock kept in `clock`.
fn kernel_times(
    ctx: &GpuContext,
    opts: &BenchOptions,
    d: &[&Dispatch],
    clock: &mut Option<Clock>,
) -> Result<Option<BTreeMap<String, f64>>, GpuError> {
    if !opts.profile {
        return Ok(None);
    }
    let (c, times) = ctx.profile(d)?;
    *clock = Some(c);
    Ok(Some(by_kernel(d, &times)))
}

/// Runs the benchmark on `ctx`; `progress` hears each workload's name as it starts.
pub fn run(
    ctx: &GpuContext,
    opts: &BenchOptions,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport, BenchError> {
    let (plan, target) = opts.check()?;
    let c = &opts.config;
    let batch = c.train.batch;
    let seed = c.train.seed;
    let (p, masks) = params::fresh(&plan, seed, PERTURB);
    let mut clock = None;
    let mut timings = Vec::new();

    for (name, objective) in [
        ("train_step", Objective::PLAIN),
        (
            "train_step_symmetric",
            Objective {
                symmetric: true,
                sym_reg: 0.0,
            },
        ),
    ] {
        progress(name);
        let mut step = TrainStep::new(
            ctx,
            plan.clone(),
            &p,
            &masks,
            &target,
            batch,
            objective,
            c.train.adam,
            seed,
        )?;
        let times = repeat(opts, |t| step.step(ctx, t).map(|_| ()))?;
        let d = step.dispatches(ctx, (opts.warmup + opts.reps) as u64);
        let kernels = kernel_times(ctx, opts, &d, &mut clock)?;
        let flops = cost::train_step_flops(&plan, batch, objective.needs_negated_pass());
        timings.push(timing(name, times, batch, flops, kernels));
    }

    progress("generate");
    // The same parameters as the training steps (`Model::init` draws them as above); its flow
    // serves generation and the leapfrog step.
    let model = Model::init(ctx, c, PERTURB)?;
    let flow = &model.flow;
    let state = ctx.storage::<f32>("bench samples", batch * plan.config.n_sites())?;
    let mut rng = RngStage::normals(ctx, &state, seed, streams::SAMPLE)?;
    let pass = FlowPass::new(ctx, flow, &state, batch, Direction::Generate, false)?;
    let times = repeat(opts, |t| {
        rng.set_step(ctx, t);
        let d: Vec<&Dispatch> = std::iter::once(&rng.dispatch)
            .chain(pass.dispatches())
            .collect();
        ctx.submit("bench generate", &d)?;
        ctx.wait()
    })?;
    let d: Vec<&Dispatch> = std::iter::once(&rng.dispatch)
        .chain(pass.dispatches())
        .collect();
    let kernels = kernel_times(ctx, opts, &d, &mut clock)?;
    timings.push(timing(
        "generate",
        times,
        batch,
        cost::pass_flops(&plan, batch),
        kernels,
    ));

    progress("hmc_leapfrog");
    let mut hmc = Hmc::new(
        ctx,
        &model,
        Space::Latent,
        batch,
        crate::sample::hmc::DEFAULT_STEP_SIZE,
        1,
        seed,
    )?;
    // One whole trajectory first, so the chains hold momenta and a force like a running sampler.
    hmc.trajectory(ctx, 0)?;
    let d = hmc.leapfrog_step();
    let times = repeat(opts, |_| {
        ctx.submit("bench leapfrog", &d)?;
        ctx.wait()
    })?;
    let kernels = kernel_times(ctx, opts, &d, &mut clock)?;
    timings.push(timing(
        "hmc_leapfrog",
        times,
        batch,
        cost::leapfrog_flops(&plan, batch),
        kernels,
    ));

    let f = &c.flow;
    Ok(BenchReport {
        adapter: ctx.info.name.clone(),
        backend: format!("{:?}", ctx.info.backend),
        device_type: format!("{:?}", ctx.info.device_type),
        driver: format!("{} {}", ctx.info.driver, ctx.info.driver_info),
        lattice: c.lattice,
        batch,
        arch: format!("{:?}", f.arch).to_lowercase(),
        depth: f.depth,
        couplings: f.couplings,
        hidden: f.hidden,
        mlp_layers: f.mlp_layers,
        parameters: plan.n_params(),
        profile_clock: clock,
        timings,
    })
}

/// The report as a table, one row per workload (and, with a profile, per kernel).
pub fn table(r: &BenchReport) -> String {
    let mut s = format!(
        "{} ({}, {}), L = {}, batch {}, {} depth {}, {} couplings, MLP 2 -> {} x {} -> 2, {} parameters\n",
        r.adapter, r.backend, r.driver, r.lattice, r.batch, r.arch, r.depth, r.couplings,
        r.hidden, r.mlp_layers, r.parameters
    );
    s.push_str(&format!(
        "{:<22} {:>11} {:>11} {:>11} {:>12} {:>10}\n",
        "workload", "median s", "min s", "max s", "samples/s", "GFLOP/s"
    ));
    for t in &r.timings {
        s.push_str(&format!(
            "{:<22} {:>11.4} {:>11.4} {:>11.4} {:>12.1} {:>10.2}\n",
            t.name, t.median_s, t.min_s, t.max_s, t.samples_per_s, t.gflop_per_s
        ));
    }
    for t in &r.timings {
        let Some(k) = &t.kernels else { continue };
        let total: f64 = k.values().sum();
        s.push_str(&format!(
            "\n{} per kernel ({:?}; {:.4} s in all):\n",
            t.name,
            r.profile_clock.expect("set with kernels"),
            total
        ));
        let mut rows: Vec<_> = k.iter().collect();
        rows.sort_by(|a, b| b.1.total_cmp(a.1));
        for (name, secs) in rows {
            s.push_str(&format!(
                "  {:<40} {:>10.4} s {:>6.1}%\n",
                name,
                secs,
                100.0 * secs / total
            ));
        }
    }
    s
}
