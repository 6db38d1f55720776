//! The `neuralrg-gpu` command line: parses, validates, calls the library, prints.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Result};
use clap::{ArgGroup, Args, Parser, Subcommand};

use neuralrg_gpu::config::{check_lattice, resolve_beta, PartialFlow, PartialRunConfig};
use neuralrg_gpu::flow::Arch;
use neuralrg_gpu::gpu::{GpuContext, GpuOptions, SizeAdvice};
use neuralrg_gpu::io::check_writable;
use neuralrg_gpu::physics::IsingTarget;

#[path = "cli/bench.rs"]
mod bench;
#[path = "cli/figures.rs"]
mod figures;
#[path = "cli/info.rs"]
mod info;
#[path = "cli/samplers.rs"]
mod samplers;
#[path = "cli/samples.rs"]
mod samples;
#[path = "cli/sweep.rs"]
mod sweep;
#[path = "cli/train.rs"]
mod train;

#[derive(Parser)]
#[command(
    name = "neuralrg-gpu",
    version,
    about = "Neural Network Renormalization Group (Li & Wang 2018) on any GPU through wgpu",
    long_about = "Trains and uses NeuralRG flows for the 2D Ising model's continuous relaxation \
                  (eq. 7 of Li & Wang 2018). Every numerical kernel runs as a WGSL compute shader \
                  on a Vulkan, Metal or DX12 adapter; on a CPU-only Linux host install Mesa's \
                  software Vulkan driver (apt-get install mesa-vulkan-drivers libvulkan1)."
)]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); see `neuralrg-gpu info`.
    /// The backend can be forced with WGPU_BACKEND=vulkan|metal|dx12|gl.
    #[arg(long, global = true, value_name = "NAME")]
    adapter: Option<String>,
    /// Device memory this command may take, e.g. 512M or 4G (for a GPU shared with others): a
    /// configuration that needs more is refused before anything is allocated past it. On a CPU
    /// adapter the host memory available is a limit too.
    #[arg(long, global = true, value_name = "SIZE", value_parser = neuralrg_gpu::memory::parse_size)]
    memory_limit: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

// Negative numbers are values, never flags, so that `--steps -1` is refused by the option's own
// check (naming it and its range) rather than as an unknown argument.
#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter, the limits that bound lattice and batch sizes, optional features, and
    /// every adapter found (the names `--adapter` takes).
    #[command(allow_negative_numbers = true)]
    Info {
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Exact free energy of the target: Kaufman's ln Z of the Ising torus and -ln Z of eq. (7).
    #[command(allow_negative_numbers = true)]
    Exact {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        temperature: TemperatureArgs,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the flow's architecture: per layer the level, shift, blocks, sites kept, parameters.
    ///
    /// `--json` prints the whole plan as one object (`config`, `layout`, and per layer `level`,
    /// `shifted`, `blocks` (the 4 site indices of every block, site (x, y) = y * L + x, in the
    /// order the bijector sees them), `kept_after` and `param_offset`): what another
    /// implementation needs to rebuild the same network.
    #[command(allow_negative_numbers = true)]
    Plan {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        flow: FlowArgs,
        /// One JSON object on stdout instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Train a flow by probability density distillation (Algorithm 1).
    ///
    /// Writes to the run directory (--out): config.toml (the resolved configuration),
    /// metrics.jsonl (one JSON object per logged step) and checkpoint.safetensors (every
    /// --save-every steps, at the end, and on SIGINT/SIGTERM/SIGHUP, which stop the run after
    /// the current step and print the command that continues it). One process owns a run
    /// directory at a time. Values come from the command line, else --config FILE (TOML, same
    /// names as config.toml), else the defaults.
    #[command(allow_negative_numbers = true)]
    Train(Box<train::TrainArgs>),
    /// Estimate the free energy of a trained flow from direct samples.
    ///
    /// Reports the variational bound mean(ln q - ln pi) with its standard error, and the
    /// importance-sampled -ln mean(pi/q) (far sharper) with its jackknife error and the
    /// effective sample size, each with its relative error to the exact -ln Z.
    #[command(allow_negative_numbers = true)]
    Eval(samples::EvalArgs),
    /// Time a training step (plain and symmetric), the generation of a batch with ln q, and a
    /// latent-HMC leapfrog step.
    ///
    /// After --warmup untimed repetitions, reports the median, minimum and maximum of --reps
    /// timed ones, samples/s, and GFLOP/s against a flop model of the flow (2 flops per
    /// multiply-add of its MLPs; a training step counts forward + backward = 3x a pass, twice
    /// for the symmetric objective; a leapfrog step, with one chain per batch row, a pass and
    /// its input-gradient backward = 2x a pass). The defaults (L = 32, batch 1024, the default flow) suit a
    /// hardware GPU; on a CPU adapter start small, e.g. `-L 16 --batch 64`.
    #[command(allow_negative_numbers = true)]
    Bench(Box<bench::BenchArgs>),
    /// Sample the Ising model exactly with Hybrid Monte Carlo (Algorithm 2).
    ///
    /// Chains move in the flow's latent space (U(z) = -ln pi(g(z)) - ln|det dg/dz|) or in
    /// physical space. Reports the uniform structure factor, the energy per site (beside its exact value) and
    /// |m| with error bars that account for autocorrelation, the acceptance, the integrated
    /// autocorrelation time and the effective sample size per second. The step size adapts
    /// towards --target-acceptance while thermalising and is frozen after, so the measured
    /// chain is exact. `--json` keys: sampler, lattice, beta, samples, structure_factor(_err),
    /// energy(_err), energy_exact, abs_m(_err), acceptance, tau_int, ess, ess_per_s, seconds,
    /// step_size, force_evaluations, and warning when the error bars may not be trusted.
    #[command(allow_negative_numbers = true)]
    Hmc(Box<samplers::HmcArgs>),
    /// Sample the Ising model exactly with the flow as proposal.
    ///
    /// Independence Metropolis (flow proposals accepted with min(1, pi(x') q(x) / (pi(x)
    /// q(x')))) or importance reweighting of direct samples, reported like `hmc`.
    #[command(allow_negative_numbers = true)]
    Mcmc(Box<samplers::McmcArgs>),
    /// Wolff cluster Monte Carlo of the discrete Ising model: the reference for the samplers.
    ///
    /// Runs on the CPU and reports <m^2>, <|m|> and the energy per site with error bars and the
    /// exact energy (Kaufman). `--json` keys: lattice, beta, sweeps, m2(_err), abs_m(_err),
    /// energy(_err), energy_exact, tau_int, seconds.
    #[command(allow_negative_numbers = true)]
    Reference(samplers::ReferenceArgs),
    /// Train a grid of temperatures x depths (Fig. S1, S2), then evaluate and plot it.
    ///
    /// One run directory per point under --out (T{T}-depth{D}), trained in turn with `train`'s
    /// flags given after `--`; points trained to its --steps are skipped and the others resumed
    /// to them, so an interrupted sweep goes on where it stopped, and one run again with more
    /// --steps extends every point. Then every point's free energy is
    /// estimated and fig_s1_error (relative error against T per depth, with error bars) and
    /// fig_s2_samples (a sample per temperature) are written as .png, .svg and .csv.
    /// Example: `neuralrg-gpu sweep --temperatures 2.0:2.7:0.1 --depths 1..3 --out sweep -- -L 8
    /// --steps 500 --symmetric`.
    #[command(allow_negative_numbers = true)]
    Sweep(Box<sweep::SweepArgs>),
    /// Draw the training curve of one or more runs (Fig. 3a).
    ///
    /// The relative error of the variational free energy (and of the symmetrised one) against
    /// the step, on a log scale. Writes FILE.png, FILE.svg and FILE.csv (`label,x,y,err`, the
    /// numbers behind the figure).
    /// Steps whose estimate fell below the exact value (noise) have no place on the log scale
    /// and are left out of the picture, not of the CSV.
    #[command(allow_negative_numbers = true)]
    Plot(figures::PlotArgs),
    /// Pictures of what a trained flow learned (Fig. 1, 4 of the paper).
    ///
    /// `--rg-flow`: one generated configuration and
    /// the variables that continue to each coarser level, drawn as the lattices L, L/2, L/4, ...
    /// (the renormalised configurations), and 16 generated samples as spins sign(x) and as
    /// tanh x in grey. `--mi`: the mutual information (Kraskov-Stoegbauer-Grassberger) among
    /// the 16 coarsest latent variables z = g^{-1}(eta x) (the inference pass on the device) and
    /// among the physical variables at the same sites, for independent configurations x of pi
    /// itself (Wolff spins, then x given the spins) (Fig. 4b, c). `--response`: the latent
    /// response E[dz_i/dx] of the 4 coarsest latent variables over configurations of pi (as
    /// eta x), by the flow's backward stage through the inference pass on the device, one
    /// lattice per variable (Fig. 4a). For a symmetrised model the sign eta = +-1 of each x is
    /// drawn with probability q(eta x) / [q(x) + q(-x)], the posterior the paper infers latents
    /// with (Appendix D); otherwise eta = 1.
    ///
    /// Writes rg_flow, samples_spins, samples_tanh, mi and response as .png, .svg and .csv
    /// (`panel,row,col,value`) into --out (created if missing).
    #[command(allow_negative_numbers = true)]
    Analyze(figures::AnalyzeArgs),
    /// Draw samples x = g(z) from a flow and write them with ln q(x) and ln pi(x) to a .npz file.
    ///
    /// Load them in Python with `d = numpy.load("samples.npz")`: d["x"] has shape (batch, L, L);
    /// d["ln_q"], d["log_det"] (log|det dg/dz|) and d["ln_pi"] (unnormalised target) have shape
    /// (batch,). All float32. A model trained with --symmetric samples q_sym: signs flipped with
    /// probability 1/2 and ln_q = ln q_sym.
    #[command(group(ArgGroup::new("source").required(true).args(["init", "checkpoint"])))]
    #[command(allow_negative_numbers = true)]
    Sample(samples::SampleArgs),
}

#[derive(Args)]
struct LatticeArgs {
    /// Linear lattice size L (N = L x L sites, periodic), 2 to 4096. The flow needs a power of
    /// two >= 4.
    #[arg(long, short = 'L', value_name = "L", allow_hyphen_values = true)]
    lattice: usize,
}

/// The temperature of the target.
#[derive(Args)]
struct TemperatureArgs {
    /// Inverse temperature beta (default: the critical beta_c = ln(1 + sqrt 2) / 2).
    #[arg(
        long,
        value_name = "B",
        conflicts_with = "temperature",
        allow_hyphen_values = true
    )]
    beta: Option<f64>,
    /// Temperature T instead of --beta (beta = 1/T).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    temperature: Option<f64>,
}

/// The flow architecture (Fig. 1, Fig. 2; Appendix B).
#[derive(Args)]
struct FlowArgs {
    /// mera: disentangler + decimator per level (Fig. 1); tree: decimators only (Fig. 2b);
    /// tebd: shifted/unshifted layers at the finest scale only (Fig. 2a). [default: mera]
    #[arg(long, value_enum)]
    arch: Option<Arch>,
    /// Network depth: levels for mera/tree (1..=log2 L; fewer gives Fig. S1's trapezoids), layer
    /// pairs for tebd (1..=L, and at most 2^27 / L^2 pairs: a flow has at most 2^26 blocks).
    /// [default: log2 L]
    #[arg(long)]
    depth: Option<usize>,
    /// Real NVP coupling steps per bijector. [default: 10]
    #[arg(long, allow_hyphen_values = true)]
    couplings: Option<usize>,
    /// Hidden width of the s and t MLPs, at most 128. [default: 10]
    #[arg(long, allow_hyphen_values = true)]
    hidden: Option<usize>,
    /// Hidden layers of the s and t MLPs, at most 4. [default: 3]
    #[arg(long, allow_hyphen_values = true)]
    mlp_layers: Option<usize>,
}

impl FlowArgs {
    fn partial(&self) -> PartialFlow {
        PartialFlow {
            arch: self.arch,
            depth: self.depth,
            couplings: self.couplings,
            hidden: self.hidden,
            mlp_layers: self.mlp_layers,
        }
    }
}

fn target(lattice: usize, t: &TemperatureArgs) -> Result<IsingTarget> {
    let l = check_lattice(lattice)?;
    let beta = resolve_beta(t.beta, t.temperature)?;
    Ok(IsingTarget::new(l, beta)?)
}

/// Refuses an output path we could not write, before any GPU work.
fn check_output(path: &Path, extension: &str, flag: &str) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some(extension) {
        bail!("{flag} must end in .{extension} (got {})", path.display());
    }
    if path.is_dir() {
        bail!("{flag} names a directory: {}", path.display());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("the directory of {flag} does not exist: {}", dir.display());
    }
    check_writable(path).map_err(|e| {
        anyhow!(
            "{flag} {} cannot be written ({e}): choose a path in a writable directory",
            path.display()
        )
    })
}

/// Refuses a figure's path (FILE.png) where it or its .svg and .csv siblings, written beside it,
/// could not be written, before any GPU work.
fn check_figure_output(path: &Path, flag: &str) -> Result<()> {
    check_output(path, "png", flag)?;
    for sibling in &neuralrg_gpu::plot::outputs(path)[1..] {
        if sibling.is_dir() {
            bail!(
                "{flag} {} is written with {} beside it, which is a directory; choose another \
                 name",
                path.display(),
                sibling.display()
            );
        }
    }
    Ok(())
}

/// Refuses a command whose host-side arrays (`bytes`) would not fit in the memory available.
fn check_host_memory(bytes: u64, command: &str, advice: &str) -> Result<()> {
    use neuralrg_gpu::memory::{host_available, human};
    match host_available() {
        Some(available) if bytes > available => bail!(
            "{command} needs about {} of host memory, but {} is available; {advice}",
            human(bytes),
            human(available)
        ),
        _ => Ok(()),
    }
}

/// What to change when a buffer does not fit: the command's own flags (a checkpoint fixes the
/// lattice and the flow).
fn size_advice(command: &Command) -> SizeAdvice {
    const FIXED_FLOW: &str = "this checkpoint's flow is too large for the adapter (or raise \
                              --memory-limit)";
    let (batch, flow) = match command {
        Command::Train(args) if args.resume.is_some() => {
            ("reduce --batch (or --batch-final)", FIXED_FLOW)
        }
        Command::Train(_) | Command::Sweep(_) => (
            "reduce --batch (or --batch-final) or --lattice",
            SizeAdvice::default().flow,
        ),
        Command::Hmc(_) | Command::Mcmc(_) => ("reduce --chains", FIXED_FLOW),
        Command::Eval(_) => ("reduce --batch", FIXED_FLOW),
        Command::Sample(args) if args.checkpoint.is_some() => ("reduce --batch", FIXED_FLOW),
        Command::Analyze(_) => (
            "this checkpoint's lattice is too large for the adapter (or raise --memory-limit)",
            FIXED_FLOW,
        ),
        _ => return SizeAdvice::default(),
    };
    SizeAdvice { batch, flow }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let gpu = GpuOptions {
        adapter: cli.adapter,
        memory_limit: cli.memory_limit,
        size_advice: size_advice(&cli.command),
        ..GpuOptions::default()
    };
    match cli.command {
        Command::Info { json } => info::print_info(&*GpuContext::new(&gpu)?, json)?,
        Command::Exact {
            lattice,
            temperature,
            json,
        } => {
            let s = target(lattice.lattice, &temperature)?.exact_summary();
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("lattice              {} (N = {})", s.lattice, s.n_sites);
                println!("beta                 {:.15}", s.beta);
                println!("alpha                {:.15}", s.alpha);
                println!("ln Z_Ising           {:.15e}", s.ln_z_ising);
                println!("ln Z_Ising / N       {:.15}", s.ln_z_ising_per_site);
                println!("ln det A             {:.15e}", s.ln_det_a);
                println!("-ln Z (target)       {:.15e}", s.neg_ln_z);
            }
        }
        Command::Plan {
            lattice,
            flow,
            json,
        } => {
            let config = PartialRunConfig {
                lattice: Some(lattice.lattice),
                flow: flow.partial(),
                ..Default::default()
            }
            .resolve()?;
            let plan = config.plan()?;
            if json {
                println!("{}", serde_json::to_string(&plan)?);
            } else {
                print!("{}", plan.table());
            }
        }
        Command::Train(args) => return train::run_train(&args, &gpu),
        Command::Sweep(args) => return sweep::run_sweep(&args, &gpu),
        Command::Hmc(args) => samplers::run_hmc_command(&args, &gpu)?,
        Command::Mcmc(args) => samplers::run_mcmc_command(&args, &gpu)?,
        Command::Reference(args) => samplers::run_reference_command(&args)?,
        Command::Analyze(args) => figures::run_analyze(args, &gpu)?,
        Command::Plot(args) => figures::run_plot(args)?,
        Command::Bench(args) => bench::run_bench(&args, &gpu)?,
        Command::Eval(args) => samples::run_eval(args, &gpu)?,
        Command::Sample(args) => samples::run_sample(args, &gpu)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of stdout goes away
    // (`neuralrg-gpu plan ... | head`) instead of panicking on the broken pipe.
    #[cfg(unix)]
    // SAFETY: restores the default disposition of SIGPIPE before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // We choose the adapter ourselves; Mesa's device-select Vulkan layer would also probe for a
    // display and print spurious errors on headless hosts.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            // Help and version as asked (status 0), or help in place of a missing command
            // (status 2, a usage error to scripts).
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(e.exit_code() as u8);
            }
            // One line: clap's first paragraph says what is wrong; `--help` says the rest.
            let msg = e.render().to_string();
            let first: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let mut line = first.join(" ");
            // Counts and sizes are whole numbers from 0 up; say so instead of Rust's parse error.
            if line.contains("invalid digit found in string") {
                line = line.replace(
                    "invalid digit found in string",
                    "a whole number from 0 up is expected",
                );
            }
            eprintln!("{line} (see --help)");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
