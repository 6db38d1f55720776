//! `neuralrg-gpu plot` and `analyze`: the training curves of runs, and the pictures of what a
//! trained flow learned.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use clap::Args;

use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::io::check_creatable_dir;
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::plot::Figure;

use super::{check_figure_output, check_host_memory};

#[derive(Args)]
pub struct PlotArgs {
    /// A run directory (repeat for several: they are overlaid with a legend).
    #[arg(long = "run", value_name = "DIR", required = true)]
    pub runs: Vec<PathBuf>,
    /// The figure's path; its .png, .svg and .csv siblings are written.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// A run directory (or its checkpoint.safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The directory the figures go to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The renormalisation group flow and the sample grids.
    #[arg(long)]
    pub rg_flow: bool,
    /// The mutual information matrices of latent and physical variables.
    #[arg(long)]
    pub mi: bool,
    /// The latent response of the coarsest latent variables.
    #[arg(long)]
    pub response: bool,
    /// Configurations of pi drawn (once) for --mi and --response.
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Seed of the samples drawn.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run_plot(args: PlotArgs) -> Result<()> {
    let PlotArgs { runs, out } = args;
    check_figure_output(&out, "--out")?;
    let runs: Vec<&Path> = runs.iter().map(PathBuf::as_path).collect();
    neuralrg_gpu::plot::training::training_curves(&runs)?.save(&out)?;
    let [png, svg, csv] = neuralrg_gpu::plot::outputs(&out);
    println!(
        "wrote {}, {} and {}",
        png.display(),
        svg.display(),
        csv.display()
    );
    Ok(())
}

pub fn run_analyze(args: AnalyzeArgs, gpu: &GpuOptions) -> Result<()> {
    let AnalyzeArgs {
        checkpoint,
        out,
        rg_flow,
        mi,
        response,
        samples,
        seed,
    } = args;
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
    let ctx = GpuContext::new(gpu)?;
    let which = neuralrg_gpu::plot::analyze::Analyses {
        rg_flow,
        mi,
        response,
    };
    let written = neuralrg_gpu::plot::analyze::analyze(&ctx, &ck, &out, which, samples, seed)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
