//! The `neuralrg-gpu` command line: parses, validates, calls the library, prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand};

use neuralrg_gpu::config::{
    check_batch, check_lattice, resolve_beta, PartialFlow, PartialRunConfig, PartialTrain,
    RunConfig,
};
use neuralrg_gpu::flow::Arch;
use neuralrg_gpu::gpu::{GpuContext, GpuOptions, SizeAdvice};
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::io::{check_creatable_dir, check_writable, write_atomic};
use neuralrg_gpu::physics::exact::relative_error;
use neuralrg_gpu::physics::{IsingTarget, Target};
use neuralrg_gpu::plot::Figure;
use neuralrg_gpu::sample::{self, Accumulator, Model};
use neuralrg_gpu::train::{self, RunOptions, RunStart};

#[path = "cli/samplers.rs"]
mod samplers;
#[path = "cli/sweep.rs"]
mod sweep;

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
    Train(Box<TrainArgs>),
    /// Estimate the free energy of a trained flow from direct samples.
    ///
    /// Reports the variational bound mean(ln q - ln pi) with its standard error, and the
    /// importance-sampled -ln mean(pi/q) (far sharper) with its jackknife error and the
    /// effective sample size, each with its relative error to the exact -ln Z.
    #[command(allow_negative_numbers = true)]
    Eval {
        /// A run directory (or its checkpoint.safetensors).
        #[arg(long, value_name = "DIR")]
        checkpoint: PathBuf,
        /// Number of samples.
        #[arg(long, default_value_t = 8192)]
        samples: usize,
        /// Samples per GPU batch.
        #[arg(long, default_value_t = sample::EVAL_BATCH)]
        batch: usize,
        /// Seed of the latent draws.
        #[arg(long, default_value_t = sample::EVAL_SEED)]
        seed: u64,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
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
    Bench(Box<BenchArgs>),
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
    Plot {
        /// A run directory (repeat for several: they are overlaid with a legend).
        #[arg(long = "run", value_name = "DIR", required = true)]
        runs: Vec<PathBuf>,
        /// The figure's path; its .png, .svg and .csv siblings are written.
        #[arg(long, value_name = "FILE.png")]
        out: PathBuf,
    },
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
    Analyze {
        /// A run directory (or its checkpoint.safetensors).
        #[arg(long, value_name = "DIR")]
        checkpoint: PathBuf,
        /// The directory the figures go to.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The renormalisation group flow and the sample grids.
        #[arg(long)]
        rg_flow: bool,
        /// The mutual information matrices of latent and physical variables.
        #[arg(long)]
        mi: bool,
        /// The latent response of the coarsest latent variables.
        #[arg(long)]
        response: bool,
        /// Configurations of pi drawn (once) for --mi and --response.
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Seed of the samples drawn.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Draw samples x = g(z) from a flow and write them with ln q(x) and ln pi(x) to a .npz file.
    ///
    /// Load them in Python with `d = numpy.load("samples.npz")`: d["x"] has shape (batch, L, L);
    /// d["ln_q"], d["log_det"] (log|det dg/dz|) and d["ln_pi"] (unnormalised target) have shape
    /// (batch,). All float32. A model trained with --symmetric samples q_sym: signs flipped with
    /// probability 1/2 and ln_q = ln q_sym.
    #[command(group(ArgGroup::new("source").required(true).args(["init", "checkpoint"])))]
    #[command(allow_negative_numbers = true)]
    Sample {
        /// Use freshly initialised parameters (the identity flow unless --perturb is given).
        #[arg(long)]
        init: bool,
        /// A trained model: a run directory (or its checkpoint.safetensors).
        #[arg(long, value_name = "DIR")]
        checkpoint: Option<PathBuf>,
        /// With --init: add N(0, SIGMA^2) noise to the parameters, for a non-trivial flow.
        #[arg(long, value_name = "SIGMA", default_value_t = 0.0, requires = "init")]
        perturb: f64,
        /// Linear lattice size L (with --init; a checkpoint has its own).
        #[arg(long, short = 'L', value_name = "L", allow_hyphen_values = true)]
        lattice: Option<usize>,
        #[command(flatten)]
        temperature: TemperatureArgs,
        #[command(flatten)]
        flow: FlowArgs,
        /// Number of samples.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// Seed of the latent draws (and, with --init, of the parameters and masks).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file (.npz).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `neuralrg-gpu bench`.
#[derive(Args)]
struct BenchArgs {
    /// Linear lattice size L, a power of two from 4 to 4096.
    #[arg(
        long,
        short = 'L',
        value_name = "L",
        default_value_t = 32,
        allow_hyphen_values = true
    )]
    lattice: usize,
    #[command(flatten)]
    temperature: TemperatureArgs,
    #[command(flatten)]
    flow: FlowArgs,
    /// Samples per step.
    #[arg(long, default_value_t = 1024)]
    batch: usize,
    /// Seed of the parameters (the fresh flow plus small noise), masks and draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Untimed repetitions of each workload first (at most 100000).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed repetitions of each workload (the median and the spread are reported), from 1 to
    /// 100000.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Also the GPU time per kernel of one repetition: GPU timestamps where the adapter has
    /// TIMESTAMP_QUERY, else the wall clock around each dispatch.
    #[arg(long)]
    profile: bool,
    /// Run on every adapter wgpu finds that can run the kernels (the others are named, with the
    /// reason, and skipped) and print them side by side.
    #[arg(long)]
    all_adapters: bool,
    /// One JSON object on stdout instead of tables.
    #[arg(long)]
    json: bool,
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

#[derive(Args)]
struct TrainArgs {
    /// Linear lattice size L, a power of two from 4 to 4096.
    #[arg(long, short = 'L', value_name = "L", allow_hyphen_values = true)]
    lattice: Option<usize>,
    #[command(flatten)]
    temperature: TemperatureArgs,
    #[command(flatten)]
    flow: FlowArgs,
    /// Training steps in all: the run's total, counted from step 0. With --resume, the run
    /// continues to its recorded total, or to this one if given (which extends it).
    /// [default: 4000; 12000 from L = 32]
    #[arg(long)]
    steps: Option<u64>,
    /// Samples per step. [default: 64]
    #[arg(long)]
    batch: Option<usize>,
    /// Adam learning rate. [default: 0.01]
    #[arg(long, allow_hyphen_values = true)]
    lr: Option<f64>,
    /// Adam beta1. [default: 0.9]
    #[arg(long)]
    beta1: Option<f64>,
    /// Adam beta2. [default: 0.999]
    #[arg(long)]
    beta2: Option<f64>,
    /// Adam epsilon. [default: 1e-8]
    #[arg(long)]
    eps: Option<f64>,
    /// Decoupled weight decay. [default: 0]
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Clip the gradient to this global norm (0 = off). [default: 0]
    #[arg(long)]
    clip_grad: Option<f64>,
    /// Learning-rate schedule over the run's --steps after the warm-up: constant, cosine (to
    /// zero at the last step) or exponential (to 1% of --lr). [default: cosine]
    #[arg(long, value_enum)]
    lr_schedule: Option<neuralrg_gpu::train::LrSchedule>,
    /// Steps of linear warm-up from --lr / N to --lr. [default: 100]
    #[arg(long, value_name = "N")]
    warmup_steps: Option<u64>,
    /// Ramp the batch up to B (--batch times a power of two): it doubles at evenly spaced steps,
    /// lowering the gradient noise late in training. [default: none, a fixed batch]
    #[arg(long, value_name = "B")]
    batch_final: Option<usize>,
    /// After training, estimate the final model's free energy from M fresh samples (as `eval`
    /// does), print it as the result and write it to DIR/eval.json. [default: 0, off]
    #[arg(long, value_name = "M")]
    eval_samples: Option<usize>,
    /// Seed of the parameters, coupling masks and latent draws. [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// Train the symmetrised q_sym(x) = [q(x) + q(-x)] / 2 (Appendix D). [default: on]
    #[arg(long, overrides_with = "no_symmetric")]
    symmetric: bool,
    /// Train q itself, as the paper's first experiments do (the symmetrised loss is off). The
    /// later of --symmetric and --no-symmetric wins.
    #[arg(long, overrides_with = "symmetric")]
    no_symmetric: bool,
    /// Add W * KL(q(x) || q(-x)) to the loss (Appendix E), W from 0 to 1e6. [default: 0]
    #[arg(long, value_name = "W", allow_hyphen_values = true)]
    sym_reg: Option<f64>,
    /// Checkpoint every N steps. [default: 100]
    #[arg(long, value_name = "N")]
    save_every: Option<u64>,
    /// Log to metrics.jsonl every N steps. [default: 10]
    #[arg(long, value_name = "N")]
    log_every: Option<u64>,
    /// Run directory. [default: runs/L{L}-beta{beta}-seed{seed}]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// TOML file with any of the settings but --eval-samples, --max-rollbacks, --out and
    /// --resume (command-line flags win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in DIR from its checkpoint, bit for bit, or from a checkpoint file in its
    /// directory (which must hold no other run's checkpoint.safetensors or metrics.jsonl); flags
    /// that would change the model or target are refused, and other training flags given with it
    /// (e.g. --lr) replace the recorded ones, so the continuation then differs from an
    /// uninterrupted run.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// A step with a non-finite loss or gradient is rolled back (to the state before the
    /// previous update) and retried at half the learning rate, up to N times in a session; then
    /// training stops with the last good state checkpointed.
    #[arg(long, value_name = "N", default_value_t = 5)]
    max_rollbacks: u32,
    /// Testing only: put a NaN into the parameters before step K.
    #[arg(long, value_name = "K", hide = true)]
    inject_nan_at: Option<u64>,
    /// Testing only: stop before step K as a signal would (a signal races a fast adapter).
    #[arg(long, value_name = "K", hide = true)]
    inject_stop_at: Option<u64>,
}

impl TrainArgs {
    /// The flags, then the --config file where a flag is not given.
    fn with_file(&self) -> Result<PartialRunConfig> {
        let cli = self.partial();
        Ok(match &self.config {
            Some(file) => cli.or(PartialRunConfig::from_file(file)?),
            None => cli,
        })
    }

    /// The configuration a fresh run of these flags resolves to, without running anything.
    fn check(&self) -> Result<RunConfig> {
        Ok(self.with_file()?.resolve()?)
    }

    fn partial(&self) -> PartialRunConfig {
        PartialRunConfig {
            lattice: self.lattice,
            beta: self.temperature.beta,
            temperature: self.temperature.temperature,
            flow: self.flow.partial(),
            train: PartialTrain {
                steps: self.steps,
                batch: self.batch,
                seed: self.seed,
                symmetric: if self.no_symmetric {
                    Some(false)
                } else {
                    self.symmetric.then_some(true)
                },
                sym_reg: self.sym_reg,
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
                clip_grad: self.clip_grad,
                lr_schedule: self.lr_schedule,
                warmup_steps: self.warmup_steps,
                batch_final: self.batch_final,
                save_every: self.save_every,
                log_every: self.log_every,
            },
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

fn print_info(ctx: &GpuContext, json: bool) -> Result<()> {
    let r = ctx.report();
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!("adapter      {}", r.name);
    println!("backend      {} ({})", r.backend, r.device_type);
    println!("driver       {} {}", r.driver, r.driver_info);
    println!("limits");
    println!(
        "  storage buffer binding   {} bytes",
        r.max_storage_buffer_binding_size
    );
    println!("  buffer size              {} bytes", r.max_buffer_size);
    println!(
        "  uniform buffer binding   {} bytes",
        r.max_uniform_buffer_binding_size
    );
    println!(
        "  storage buffers / stage  {}",
        r.max_storage_buffers_per_shader_stage
    );
    println!(
        "  workgroup storage        {} bytes",
        r.max_compute_workgroup_storage_size
    );
    println!(
        "  invocations / workgroup  {}",
        r.max_compute_invocations_per_workgroup
    );
    println!(
        "  workgroups / dimension   {}",
        r.max_compute_workgroups_per_dimension
    );
    println!("features");
    println!("  SHADER_F16       {}", r.shader_f16);
    println!("  TIMESTAMP_QUERY  {}", r.timestamp_query);
    println!("  SUBGROUP         {}", r.subgroup);
    println!("adapters found (* this one; --adapter NAME picks one by part of its name)");
    for a in &r.adapters {
        let unfit = a
            .unsuitable
            .as_ref()
            .map(|why| format!(": cannot run the kernels, {why}"))
            .unwrap_or_default();
        println!(
            "  {} {}  ({}, {}){unfit}",
            if a.in_use { "*" } else { " " },
            a.name,
            a.backend,
            a.device_type
        );
    }
    Ok(())
}

fn run_train(args: &TrainArgs, gpu: &GpuOptions) -> Result<ExitCode> {
    // First, so a signal from here on stops the run cleanly rather than killing it.
    let stop = stop_flag();
    if args.eval_samples == Some(1) {
        bail!("--eval-samples must be 0 (off) or at least 2");
    }
    let start = train::run::start(
        args.resume.as_deref(),
        args.out.as_deref(),
        args.with_file()?,
        args.steps.is_some(),
    )?;
    let (config, resume, dir, lock) = match start {
        RunStart::Complete { dir, step } => {
            println!(
                "{} is complete at step {step} (its --steps); give --steps above {step} to extend it",
                dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        RunStart::Train(run) => (run.config, run.resume, run.dir, run.lock),
    };
    let total = config.train.steps;
    let from = resume.as_ref().map_or(0, |c| c.step);
    // Saving a checkpoint holds the parameters and both moments, read back, as bytes, and
    // serialised twice: 12 copies at 4 bytes.
    check_host_memory(
        48 * config.flow_config()?.n_params() as u64,
        "training this flow",
        "reduce --hidden, --mlp-layers, --couplings or --depth",
    )?;
    let ctx = GpuContext::new(gpu)?;
    let summary = train::train(
        &ctx,
        &config,
        resume,
        RunOptions {
            dir: dir.clone(),
            lock,
            steps: total - from,
            quiet: args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()),
            stop,
            max_rollbacks: args.max_rollbacks,
            inject_nan_at: args.inject_nan_at,
            inject_stop_at: args.inject_stop_at,
        },
    )?;
    let resume_hint = format!(
        "continue with\n  neuralrg-gpu train --resume {}",
        neuralrg_gpu::io::shell_word(&dir.display().to_string())
    );
    if summary.interrupted && summary.steps_run == 0 {
        if summary.completed_steps == 0 {
            eprintln!("interrupted before the first step: nothing was saved");
        } else {
            eprintln!(
                "interrupted before the first new step: the checkpoint at step {} of {total} is as it was; {resume_hint}",
                summary.completed_steps,
            );
        }
        return Ok(ExitCode::from(130));
    }
    if let Some(s) = summary.last {
        let exact = summary.neg_ln_z;
        let rel = |f: f64| relative_error(f, exact);
        println!(
            "variational free energy {:.6} +/- {:.6} (last batch), exact -ln Z {:.6}, relative error {:.3e}",
            s.loss,
            s.loss_stderr,
            exact,
            rel(s.loss)
        );
        if config.train.symmetric {
            println!(
                "symmetrised free energy {:.6} +/- {:.6}, relative error {:.3e}",
                s.objective,
                s.objective_stderr,
                rel(s.objective)
            );
        }
    }
    println!(
        "{} steps in {:.1} s ({:.2} steps/s); {} steps done; checkpoint in {}",
        summary.steps_run,
        summary.seconds,
        summary.steps_run as f64 / summary.seconds.max(1e-9),
        summary.completed_steps,
        dir.display()
    );
    if summary.interrupted {
        eprintln!(
            "interrupted: checkpoint saved at step {} of {total}; {resume_hint}",
            summary.completed_steps,
        );
        return Ok(ExitCode::from(130));
    }
    if let Some(m) = args.eval_samples.filter(|m| *m > 0) {
        let ck = Checkpoint::load(&dir)?;
        let batch = sample::EVAL_BATCH.min(m);
        let e = sample::evaluate(&ctx, &ck, m, batch, sample::EVAL_SEED, |_| {})?;
        println!(
            "final model, {m} fresh samples:\n{}",
            e.to_text(ck.config.train.symmetric)
        );
        let path = dir.join("eval.json");
        write_atomic(&path, serde_json::to_string(&e)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
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

/// Set by SIGINT, SIGTERM (cluster pre-emption, `docker stop`) and SIGHUP: training saves and
/// stops after the current step (a second signal while saving still waits for the atomic
/// write). The handler is installed once, for every run of the process (a sweep runs many).
fn stop_flag() -> &'static AtomicBool {
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
        stop
    })
}

fn run_bench(args: &BenchArgs, gpu: &GpuOptions) -> Result<()> {
    let config = PartialRunConfig {
        lattice: Some(check_lattice(args.lattice)?),
        beta: args.temperature.beta,
        temperature: args.temperature.temperature,
        flow: args.flow.partial(),
        train: PartialTrain {
            batch: Some(args.batch),
            seed: Some(args.seed),
            ..PartialTrain::default()
        },
    }
    .resolve()?;
    let opts = neuralrg_gpu::bench::BenchOptions {
        config,
        warmup: args.warmup,
        reps: args.reps,
        profile: args.profile,
    };
    opts.check()?;
    let adapters: Vec<Option<String>> = if args.all_adapters {
        let mut names = Vec::new();
        for a in GpuContext::adapters()? {
            match a.unsuitable {
                Some(why) => eprintln!("bench: skipping {:?} ({}): {why}", a.name, a.backend),
                None => names.push(Some(a.name)),
            }
        }
        if names.is_empty() {
            // The automatic choice says what there is and what to do.
            names.push(None);
        }
        names
    } else {
        vec![gpu.adapter.clone()]
    };
    let mut reports = Vec::new();
    for adapter in adapters {
        let ctx = GpuContext::new(&GpuOptions {
            adapter,
            ..gpu.clone()
        })?;
        let report = neuralrg_gpu::bench::run(&ctx, &opts, |what| {
            eprintln!("bench: {what} on {} ...", ctx.info.name)
        })?;
        if !args.json {
            println!("{}", neuralrg_gpu::bench::table(&report));
        }
        reports.push(report);
    }
    if args.json {
        let v = match reports.len() {
            1 => serde_json::to_value(&reports[0])?,
            _ => serde_json::json!({ "reports": reports }),
        };
        println!("{v}");
    } else if reports.len() > 1 {
        println!("median seconds per workload, side by side:");
        for t in 0..reports[0].timings.len() {
            let row: Vec<String> = reports
                .iter()
                .map(|r| format!("{}: {:.4}", r.adapter, r.timings[t].median_s))
                .collect();
            println!("  {:<22} {}", reports[0].timings[t].name, row.join("  |  "));
        }
    }
    Ok(())
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
        Command::Eval { .. }
        | Command::Sample {
            checkpoint: Some(_),
            ..
        } => ("reduce --batch", FIXED_FLOW),
        Command::Analyze { .. } => (
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
        Command::Info { json } => print_info(&*GpuContext::new(&gpu)?, json)?,
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
        Command::Train(args) => return run_train(&args, &gpu),
        Command::Sweep(args) => return sweep::run_sweep(&args, &gpu),
        Command::Hmc(args) => samplers::run_hmc_command(&args, &gpu)?,
        Command::Mcmc(args) => samplers::run_mcmc_command(&args, &gpu)?,
        Command::Reference(args) => samplers::run_reference_command(&args)?,
        Command::Analyze {
            checkpoint,
            out,
            rg_flow,
            mi,
            response,
            samples,
            seed,
        } => {
            if !(rg_flow || mi || response) {
                bail!("choose an analysis: --rg-flow, --mi, --response, or several");
            }
            if out.is_file() {
                bail!("--out must be a directory (got the file {})", out.display());
            }
            check_creatable_dir(&out).map_err(|e| {
                anyhow!(
                    "--out {} cannot be created or written ({e}): choose a directory under a \
                     writable one",
                    out.display()
                )
            })?;
            if (mi || response) && !(16..=100_000).contains(&samples) {
                bail!("--samples must be from 16 to 100000 (got {samples})");
            }
            let ck = Checkpoint::load(&checkpoint)?;
            if mi || response {
                // Per value of the configurations drawn: the spins (1 byte); x, -x, the latents
                // of both, and the configurations and latents the posterior chose (4 bytes each,
                // sample::posterior).
                check_host_memory(
                    25 * samples as u64 * (ck.config.lattice as u64).pow(2),
                    "analyzing this many configurations",
                    "reduce --samples",
                )?;
            }
            let ctx = GpuContext::new(&gpu)?;
            let which = neuralrg_gpu::plot::analyze::Analyses {
                rg_flow,
                mi,
                response,
            };
            let written =
                neuralrg_gpu::plot::analyze::analyze(&ctx, &ck, &out, which, samples, seed)?;
            for path in written {
                println!("wrote {}", path.display());
            }
        }
        Command::Plot { runs, out } => {
            check_output(&out, "png", "--out")?;
            let runs: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
            neuralrg_gpu::plot::training::training_curves(&runs)?.save(&out)?;
            let [png, svg, csv] = neuralrg_gpu::plot::outputs(&out);
            println!(
                "wrote {}, {} and {}",
                png.display(),
                svg.display(),
                csv.display()
            );
        }
        Command::Bench(args) => run_bench(&args, &gpu)?,
        Command::Eval {
            checkpoint,
            samples,
            batch,
            seed,
            json,
        } => {
            if samples < 2 {
                bail!("--samples must be at least 2");
            }
            let ck = Checkpoint::load(&checkpoint)?;
            check_batch(batch, ck.config.lattice, 1, "--batch")?;
            let ctx = GpuContext::new(&gpu)?;
            let mut progress = samplers::progress(json, "samples");
            let e = sample::evaluate(&ctx, &ck, samples, batch, seed, |done| {
                progress(done.min(samples), samples)
            })?;
            if json {
                println!("{}", serde_json::to_string(&e)?);
            } else {
                println!("model at step {}:", ck.step);
                println!("{}", e.to_text(ck.config.train.symmetric));
            }
        }
        Command::Sample {
            init: _,
            checkpoint,
            perturb,
            lattice,
            temperature,
            flow,
            batch,
            seed,
            out,
        } => {
            let cli = PartialRunConfig {
                lattice,
                beta: temperature.beta,
                temperature: temperature.temperature,
                flow: flow.partial(),
                ..Default::default()
            };
            if !(perturb.is_finite() && perturb >= 0.0) {
                bail!("--perturb must be a non-negative number (got {perturb})");
            }
            if checkpoint.is_none() && lattice.is_none() {
                bail!("--lattice is required with --init (the lattice of the fresh flow)");
            }
            if checkpoint.is_some() && perturb != 0.0 {
                bail!("--perturb perturbs a fresh flow (--init); drop it with --checkpoint");
            }
            check_output(&out, "npz", "--out")?;
            let ck = checkpoint.as_deref().map(Checkpoint::load).transpose()?;
            let config = match &ck {
                Some(ck) => ck.config.with_overrides(cli)?,
                None => PartialRunConfig {
                    train: PartialTrain {
                        seed: Some(seed),
                        ..Default::default()
                    },
                    ..cli
                }
                .resolve()?,
            };
            check_batch(batch, config.lattice, 1, "--batch")?;
            check_host_memory(
                // The samples as read back, as .npy members, and as the archive (the flow's
                // parameters are checked by train).
                3 * 4 * batch as u64 * (config.lattice as u64).pow(2),
                "sample",
                "reduce --batch",
            )?;
            let ctx = GpuContext::new(&gpu)?;
            let model = match &ck {
                Some(ck) => Model::from_checkpoint(&ctx, ck)?,
                None => Model::init(&ctx, &config, perturb)?,
            };
            let samples = sample::draw(&ctx, &model, batch, seed, 0)?;
            let broken = samples.non_finite();
            if broken > 0 {
                bail!(
                    "the flow gave non-finite densities for {broken} of {batch} samples (a \
                     --perturb this large breaks it, or the checkpoint is damaged); nothing written"
                );
            }
            let bytes = samples.to_npz()?;
            write_atomic(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            let mut acc = Accumulator::new(batch);
            samples
                .free_energy_terms()
                .into_iter()
                .for_each(|t| acc.add(t));
            let e = acc.finish(model.target.neg_ln_z());
            let (f, err, exact) = (e.free_energy, e.stderr, e.neg_ln_z_exact);
            println!("wrote {batch} samples to {}", out.display());
            let spread = match batch {
                1 => "from one sample, no standard error".to_string(),
                _ => format!("+/- {err:.6}"),
            };
            println!(
                "variational free energy {f:.6} {spread} (exact -ln Z {exact:.6}, relative error {:.3e})",
                relative_error(f, exact)
            );
        }
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
