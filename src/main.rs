//! The `neuralrg-gpu` command line: parses, validates, calls the library, prints.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use std::path::PathBuf;

use anyhow::{bail, Context};
use neuralrg_gpu::config::{check_lattice, resolve_beta};
use neuralrg_gpu::flow::{params, Arch, Flow, FlowConfig, FlowPlan};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::io::write_atomic;
use neuralrg_gpu::physics::IsingTarget;
use neuralrg_gpu::sample::{self, draw::mean_stderr};

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the GPU adapter, the limits that bound lattice and batch sizes, and optional features.
    Info {
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Exact free energy of the target: Kaufman's ln Z of the Ising torus and -ln Z of eq. (7).
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
    Plan {
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        flow: FlowArgs,
    },
    /// Draw samples x = g(z) from a flow and write them with ln q(x) and ln pi(x) to a .npz file.
    ///
    /// Load them in Python with `d = numpy.load("samples.npz")`: d["x"] has shape (batch, L, L);
    /// d["ln_q"], d["log_det"] (log|det dg/dz|) and d["ln_pi"] (unnormalised target) have shape
    /// (batch,). All float32.
    Sample {
        /// Use freshly initialised parameters (the identity flow unless --perturb is given).
        #[arg(long, required = true)]
        init: bool,
        /// Add N(0, SIGMA^2) noise to the initial parameters, for a non-trivial untrained flow.
        #[arg(long, value_name = "SIGMA", default_value_t = 0.0)]
        perturb: f64,
        #[command(flatten)]
        lattice: LatticeArgs,
        #[command(flatten)]
        temperature: TemperatureArgs,
        #[command(flatten)]
        flow: FlowArgs,
        /// Number of samples.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
        /// Seed of the parameters, the coupling masks and the latent draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output file (.npz).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Linear lattice size L (N = L x L sites, periodic).
#[derive(Args)]
struct LatticeArgs {
    /// Linear lattice size L (N = L x L sites, periodic). The flow needs a power of two >= 4.
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

fn target(lattice: &LatticeArgs, t: &TemperatureArgs) -> Result<IsingTarget> {
    let l = check_lattice(lattice.lattice)?;
    let beta = resolve_beta(t.beta, t.temperature)?;
    Ok(IsingTarget::new(l, beta)?)
}

/// The flow architecture (Fig. 1, Fig. 2; Appendix B).
#[derive(Args)]
struct FlowArgs {
    /// Network depth: levels for mera/tree (1..=log2 L, fewer gives Fig. S1's trapezoids), layer
    /// pairs for tebd (1..=L). Default log2 L.
    #[arg(long)]
    depth: Option<usize>,
    /// mera: disentangler + decimator per level (Fig. 1); tree: decimators only (Fig. 2b);
    /// tebd: shifted/unshifted layers at the finest scale only (Fig. 2a).
    #[arg(long, value_enum, default_value = "mera")]
    arch: Arch,
    /// Real NVP coupling steps per bijector.
    #[arg(long, default_value_t = 10, allow_hyphen_values = true)]
    couplings: usize,
    /// Hidden width of the s and t MLPs (at most 128).
    #[arg(long, default_value_t = 64, allow_hyphen_values = true)]
    hidden: usize,
    /// Hidden layers of the s and t MLPs (at most 4).
    #[arg(long, default_value_t = 2, allow_hyphen_values = true)]
    mlp_layers: usize,
}

impl FlowArgs {
    fn config(&self, lattice: &LatticeArgs) -> Result<FlowConfig> {
        Ok(FlowConfig::new(
            lattice.lattice,
            self.depth,
            self.arch,
            self.couplings,
            self.hidden,
            self.mlp_layers,
        )?)
    }
}

/// Refuses an output path we could not write, before any GPU work.
fn check_output(path: &std::path::Path, extension: &str) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some(extension) {
        bail!("--out must end in .{extension} (got {})", path.display());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        bail!("the directory of --out does not exist: {}", dir.display());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let gpu = GpuOptions {
        adapter: cli.adapter,
    };
    match cli.command {
        Command::Info { json } => {
            let ctx = GpuContext::new(&gpu)?;
            let r = ctx.report();
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
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
            }
        }
        Command::Plan { lattice, flow } => {
            print!("{}", FlowPlan::new(flow.config(&lattice)?).table());
        }
        Command::Sample {
            init: _,
            perturb,
            lattice,
            temperature,
            flow,
            batch,
            seed,
            out,
        } => {
            let plan = FlowPlan::new(flow.config(&lattice)?);
            let target = target(&lattice, &temperature)?;
            if batch == 0 {
                bail!("--batch must be at least 1");
            }
            if !(perturb.is_finite() && perturb >= 0.0) {
                bail!("--perturb must be a non-negative number (got {perturb})");
            }
            check_output(&out, "npz")?;
            let mut p = params::init(&plan, seed);
            params::perturb(&mut p, perturb, seed);
            let masks = params::masks(&plan, seed);
            let ctx = GpuContext::new(&gpu)?;
            let flow = Flow::new(&ctx, plan, &p, masks)?;
            let samples = sample::draw(&ctx, &flow, &target, batch, seed, 0)?;
            let bytes = samples.to_npz().map_err(anyhow::Error::msg)?;
            write_atomic(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            let (f, err) = mean_stderr(&samples.free_energy_terms());
            let exact = target.neg_ln_z();
            println!("wrote {batch} samples to {}", out.display());
            println!(
                "variational free energy {f:.6} +/- {err:.6} (exact -ln Z {exact:.6}, relative error {:.3e})",
                (f - exact) / exact.abs()
            );
        }
        Command::Exact {
            lattice,
            temperature,
            json,
        } => {
            let s = target(&lattice, &temperature)?.exact_summary();
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
    }
    Ok(())
}

fn main() -> ExitCode {
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
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first paragraph says what is wrong; `--help` says the rest.
            let msg = e.render().to_string();
            let first: Vec<&str> = msg
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", first.join(" "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
