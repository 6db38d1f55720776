//! The command line of the exact samplers: `hmc`, `mcmc` and `reference`. Each validates its
//! input before touching the GPU, reports one results block (or one JSON object), and writes its
//! time series atomically.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use neuralrg_gpu::config::check_lattice;
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::io::write_atomic;
use neuralrg_gpu::plot::sampling::{self, Trace};
use neuralrg_gpu::plot::Figure;
use neuralrg_gpu::sample::chains::{
    run_flow_metropolis, run_hmc, run_reweight, ChainRun, SamplerReport, Schedule,
};
use neuralrg_gpu::sample::hmc::{Hmc, Space, MAX_LEAPFROG, STEP_SIZES};
use neuralrg_gpu::sample::{reference, Model};

/// What every sampler command shares.
#[derive(Args)]
pub struct SamplerCommon {
    /// A run directory (or its checkpoint.safetensors): the flow, its lattice and temperature.
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// The lattice you expect; refused if the checkpoint's differs.
    #[arg(long, short = 'L', value_name = "L")]
    lattice: Option<usize>,
    /// Seed of every random number of the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
    /// Write the per-chain time series of the observables to this CSV file
    /// (t,chain,structure_factor,energy,abs_m; with `hmc --compare`:
    /// t,latent_structure_factor,physical_structure_factor, the chain averages).
    #[arg(long, value_name = "FILE.csv")]
    series: Option<PathBuf>,
}

#[derive(Args)]
pub struct HmcArgs {
    #[command(flatten)]
    common: SamplerCommon,
    /// Where the chains move: the flow's latent space z (x = g(z)) or physical space x.
    #[arg(long, value_enum, default_value_t = Space::Latent)]
    space: Space,
    /// Chains, one per batch row on the device.
    #[arg(long, default_value_t = 16)]
    chains: usize,
    /// Measured trajectories per chain.
    #[arg(long, default_value_t = 500)]
    trajectories: usize,
    /// Trajectories discarded first, while the step size adapts.
    #[arg(long, default_value_t = 100)]
    thermalise: usize,
    /// Leapfrog step size (the start of the adaptation, which keeps it within the same range),
    /// from 1e-6 to 100.
    #[arg(long, default_value_t = neuralrg_gpu::sample::hmc::DEFAULT_STEP_SIZE, allow_hyphen_values = true)]
    step_size: f64,
    /// Leapfrog steps per trajectory, at most 100000.
    #[arg(long, default_value_t = 10)]
    leapfrog: usize,
    /// Acceptance the step size adapts towards while thermalising; 0 keeps --step-size.
    #[arg(long, default_value_t = 0.8, allow_hyphen_values = true)]
    target_acceptance: f64,
    /// Run latent and physical HMC with the same force evaluations and print them beside the
    /// Wolff reference (Fig. 3b of the paper).
    #[arg(long)]
    compare: bool,
    /// With --compare: draw the chain-averaged structure factor of both against the
    /// trajectory, with the Wolff value (FILE.png, .svg and .csv). Use --thermalise 0 to see the
    /// approach to equilibrium.
    #[arg(long, value_name = "FILE.png", requires = "compare")]
    plot: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Independence Metropolis with the flow as proposal: an exact Markov chain.
    FlowMetropolis,
    /// Importance reweighting of direct flow samples (no chain: error by jackknife).
    Reweight,
}

#[derive(Args)]
pub struct McmcArgs {
    #[command(flatten)]
    common: SamplerCommon,
    #[arg(long, value_enum, default_value_t = Method::FlowMetropolis)]
    method: Method,
    /// Chains (flow Metropolis), or samples per batch (reweighting).
    #[arg(long, default_value_t = 64)]
    chains: usize,
    /// Measured iterations per chain (reweighting: batches of --chains samples).
    #[arg(long, default_value_t = 1000)]
    iterations: usize,
    /// Iterations discarded first (flow Metropolis).
    #[arg(long, default_value_t = 100)]
    thermalise: usize,
}

#[derive(Args)]
pub struct ReferenceArgs {
    /// Linear lattice size L (periodic), 2 to 4096.
    #[arg(long, short = 'L', value_name = "L")]
    lattice: usize,
    #[command(flatten)]
    temperature: super::TemperatureArgs,
    /// Measured sweeps (a sweep flips about N spins in clusters).
    #[arg(long, default_value_t = reference::SWEEPS)]
    sweeps: usize,
    /// Sweeps discarded first (at least 10 run: they calibrate a measured sweep).
    #[arg(long, default_value_t = reference::THERMALISE)]
    thermalise: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Refuses chains whose length overflows a count, or whose measurements (`bytes` per chain and
/// measurement, kept to the end for the statistics) would not fit in host memory.
fn chain_lengths(
    chains: usize,
    thermalise: usize,
    measure: usize,
    flag: &str,
    bytes: u64,
) -> Result<()> {
    if thermalise.checked_add(measure).is_none() {
        bail!("--thermalise plus {flag} is beyond any count; reduce them");
    }
    super::check_host_memory(
        bytes
            .saturating_mul(chains as u64)
            .saturating_mul(measure as u64),
        "chains this long",
        &format!("reduce {flag} or --chains"),
    )
}

/// Whether two output paths name the same file, however they are spelled (symbolic links
/// followed where the file exists).
fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        return a == b;
    }
    let place = |p: &Path| {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (
            std::fs::canonicalize(dir).ok(),
            p.file_name().map(|f| f.to_owned()),
        )
    };
    place(a) == place(b)
}

/// The checkpoint, checked against --lattice, and the series path checked before any work.
fn load(common: &SamplerCommon) -> Result<Checkpoint> {
    if let Some(path) = &common.series {
        super::check_output(path, "csv", "--series")?;
    }
    let ck = Checkpoint::load(&common.checkpoint)?;
    if let Some(l) = common.lattice {
        if l != ck.config.lattice {
            bail!(
                "--lattice {l} does not match the checkpoint {}, trained at L = {}",
                common.checkpoint.display(),
                ck.config.lattice
            );
        }
    }
    Ok(ck)
}

fn at_least(value: usize, min: usize, flag: &str) -> Result<()> {
    if value < min {
        bail!("{flag} must be at least {min} (got {value})");
    }
    Ok(())
}

/// A progress line on stderr, for text output to a terminal only (a log file or a pipe would
/// collect every `\r` update), redrawn at most ten times a second and ended at `total`.
pub(crate) fn progress(json: bool, what: &'static str) -> impl FnMut(usize, usize) {
    let show = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last: Option<std::time::Instant> = None;
    move |done, total| {
        let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(100));
        if show && (due || done == total) {
            last = Some(std::time::Instant::now());
            eprint!("\r{what}: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
}

fn print(report: &impl serde::Serialize, text: String, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

fn write_series(path: Option<&Path>, csv: &str) -> Result<()> {
    if let Some(p) = path {
        write_atomic(p, csv.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

pub fn run_hmc_command(args: &HmcArgs, gpu: &GpuOptions) -> Result<()> {
    let c = &args.common;
    if !STEP_SIZES.contains(&args.step_size) {
        bail!(
            "--step-size must be from {:e} to {} (got {})",
            STEP_SIZES.start(),
            STEP_SIZES.end(),
            args.step_size
        );
    }
    if !(0.0..1.0).contains(&args.target_acceptance) {
        bail!(
            "--target-acceptance must be in [0, 1), 0 for a fixed step size (got {})",
            args.target_acceptance
        );
    }
    at_least(args.chains, 1, "--chains")?;
    at_least(args.trajectories, 2, "--trajectories")?;
    at_least(args.leapfrog, 1, "--leapfrog")?;
    if args.leapfrog > MAX_LEAPFROG {
        bail!(
            "--leapfrog must be at most {MAX_LEAPFROG} (got {})",
            args.leapfrog
        );
    }
    if let Some(p) = &args.plot {
        super::check_figure_output(p, "--plot")?;
        // The figure writes its numbers beside it, as FILE.csv (and FILE.svg).
        let beside = neuralrg_gpu::plot::outputs(p);
        if let Some(series) = c
            .series
            .as_ref()
            .filter(|s| beside.iter().any(|b| same_file(s, b)))
        {
            bail!(
                "--series {} is where --plot writes its own numbers; choose another name",
                series.display()
            );
        }
    }
    let ck = load(c)?;
    neuralrg_gpu::config::check_batch(args.chains, ck.config.lattice, 1, "--chains")?;
    // Three observables of 8 bytes per measurement.
    chain_lengths(
        args.chains,
        args.thermalise,
        args.trajectories,
        "--trajectories",
        24,
    )?;
    let ctx = GpuContext::new(gpu)?;
    let model = Model::from_checkpoint(&ctx, &ck)?;
    let schedule = Schedule {
        thermalise: args.thermalise,
        measure: args.trajectories,
        target_acceptance: (args.target_acceptance > 0.0).then_some(args.target_acceptance),
    };
    let run = |space: Space| -> Result<(SamplerReport, ChainRun)> {
        let mut hmc = Hmc::new(
            &ctx,
            &model,
            space,
            args.chains,
            args.step_size,
            args.leapfrog,
            c.seed,
        )?;
        let name = match space {
            Space::Latent => "latent HMC",
            Space::Physical => "physical HMC",
        };
        let run = run_hmc(&ctx, &mut hmc, &schedule, progress(c.json, name))?;
        Ok((SamplerReport::from_chains(name, &model, &run), run))
    };
    if !args.compare {
        let (report, chain) = run(args.space)?;
        write_series(c.series.as_deref(), &chain.series.to_csv())?;
        return print(&report, report.to_text(), c.json);
    }
    let (latent, latent_run) = run(Space::Latent)?;
    let (physical, physical_run) = run(Space::Physical)?;
    let l = model.target.lattice.l;
    let wolff = reference::run(
        l,
        model.target.beta,
        reference::SWEEPS,
        reference::THERMALISE,
        c.seed,
    );
    // The chain-averaged structure factor after every measured trajectory, both spaces.
    let latent_trace = latent_run.series.chain_average(0);
    let physical_trace = physical_run.series.chain_average(0);
    write_series(
        c.series.as_deref(),
        &sampling::comparison_csv(&latent_trace, &physical_trace),
    )?;
    if let Some(path) = &args.plot {
        let traces = [
            Trace {
                label: "latent HMC",
                values: &latent_trace,
            },
            Trace {
                label: "physical HMC",
                values: &physical_trace,
            },
        ];
        sampling::structure_factor_figure(
            l,
            args.chains,
            args.thermalise,
            &traces,
            ("Wolff", wolff.m2),
        )
        .save(&path.with_extension(""))?;
    }
    let text = format!(
        "{}\n{}\n{}",
        latent.to_text(),
        physical.to_text(),
        wolff.to_text()
    );
    print(
        &serde_json::json!({"latent": latent, "physical": physical, "wolff": wolff}),
        text,
        c.json,
    )
}

pub fn run_mcmc_command(args: &McmcArgs, gpu: &GpuOptions) -> Result<()> {
    let c = &args.common;
    at_least(args.chains, 1, "--chains")?;
    at_least(args.iterations, 2, "--iterations")?;
    if args.method == Method::Reweight && c.series.is_some() {
        bail!("--series writes Markov chains; reweighting draws independent samples, drop it");
    }
    let ck = load(c)?;
    neuralrg_gpu::config::check_batch(args.chains, ck.config.lattice, 1, "--chains")?;
    // Three observables of 8 bytes per measurement; reweighting keeps each sample's weight too.
    let bytes = match args.method {
        Method::Reweight => 32,
        _ => 24,
    };
    chain_lengths(
        args.chains,
        args.thermalise,
        args.iterations,
        "--iterations",
        bytes,
    )?;
    let ctx = GpuContext::new(gpu)?;
    let model = Model::from_checkpoint(&ctx, &ck)?;
    let report = match args.method {
        Method::FlowMetropolis => {
            let schedule = Schedule {
                thermalise: args.thermalise,
                measure: args.iterations,
                target_acceptance: None,
            };
            let run = run_flow_metropolis(
                &ctx,
                &model,
                args.chains,
                &schedule,
                c.seed,
                progress(c.json, "flow Metropolis"),
            )?;
            write_series(c.series.as_deref(), &run.series.to_csv())?;
            SamplerReport::from_chains("flow Metropolis", &model, &run)
        }
        Method::Reweight => run_reweight(
            &ctx,
            &model,
            args.chains * args.iterations,
            args.chains,
            c.seed,
            progress(c.json, "reweighting"),
        )?,
    };
    print(&report, report.to_text(), c.json)
}

pub fn run_reference_command(args: &ReferenceArgs) -> Result<()> {
    let l = check_lattice(args.lattice)?;
    let beta =
        neuralrg_gpu::config::resolve_beta(args.temperature.beta, args.temperature.temperature)?;
    at_least(args.sweeps, 2, "--sweeps")?;
    // Three measurements of 8 bytes per sweep, kept for the autocorrelation analysis, and the
    // centred copy of one.
    super::check_host_memory(
        32u64.saturating_mul(args.sweeps as u64),
        "this many sweeps",
        "reduce --sweeps",
    )?;
    let r = reference::run(l, beta, args.sweeps, args.thermalise, args.seed);
    print(&r, r.to_text(), args.json)
}
