//! The `neuralrg-gpu` command line: parses, validates, calls the library, prints.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use neuralrg_gpu::config::{check_lattice, resolve_beta};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::physics::IsingTarget;

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
        target: TargetArgs,
        /// One JSON object on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The physical system: lattice size and temperature.
#[derive(Args)]
struct TargetArgs {
    /// Linear lattice size L (N = L x L sites, periodic).
    #[arg(long, short = 'L', value_name = "L", allow_hyphen_values = true)]
    lattice: usize,
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

impl TargetArgs {
    fn target(&self) -> Result<IsingTarget> {
        let l = check_lattice(self.lattice)?;
        let beta = resolve_beta(self.beta, self.temperature)?;
        Ok(IsingTarget::new(l, beta)?)
    }
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
        Command::Exact { target, json } => {
            let s = target.target()?.exact_summary();
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
            // One line: clap's first line says what is wrong; `--help` says the rest.
            let msg = e.render().to_string();
            eprintln!(
                "{} (see --help)",
                msg.lines().next().unwrap_or("invalid arguments")
            );
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
