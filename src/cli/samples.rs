//! `neuralrg-gpu eval` and `sample`: a flow's direct samples, estimated from or written out.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use neuralrg_gpu::config::{check_batch, PartialRunConfig, PartialTrain};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::io::write_atomic;
use neuralrg_gpu::physics::exact::relative_error;
use neuralrg_gpu::physics::Target;
use neuralrg_gpu::sample::{self, Accumulator, Model};

use super::{check_host_memory, check_output, samplers, FlowArgs, TemperatureArgs};

#[derive(Args)]
pub struct EvalArgs {
    /// A run directory (or its checkpoint.safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 8192)]
    pub samples: usize,
    /// Samples per GPU batch.
    #[arg(long, default_value_t = sample::EVAL_BATCH)]
    pub batch: usize,
    /// Seed of the latent draws.
    #[arg(long, default_value_t = sample::EVAL_SEED)]
    pub seed: u64,
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SampleArgs {
    /// Use freshly initialised parameters (the identity flow unless --perturb is given).
    #[arg(long)]
    pub init: bool,
    /// A trained model: a run directory (or its checkpoint.safetensors).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// With --init: add N(0, SIGMA^2) noise to the parameters, for a non-trivial flow.
    #[arg(long, value_name = "SIGMA", default_value_t = 0.0, requires = "init")]
    pub perturb: f64,
    /// Linear lattice size L (with --init; a checkpoint has its own).
    #[arg(long, short = 'L', value_name = "L", allow_hyphen_values = true)]
    pub lattice: Option<usize>,
    #[command(flatten)]
    pub temperature: TemperatureArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Number of samples.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Seed of the latent draws (and, with --init, of the parameters and masks).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (.npz).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run_eval(args: EvalArgs, gpu: &GpuOptions) -> Result<()> {
    let EvalArgs {
        checkpoint,
        samples,
        batch,
        seed,
        json,
    } = args;
    if samples < 2 {
        bail!("--samples must be at least 2");
    }
    let ck = Checkpoint::load(&checkpoint)?;
    check_batch(batch, ck.config.lattice, 1, "--batch")?;
    let ctx = GpuContext::new(gpu)?;
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
    Ok(())
}

pub fn run_sample(args: SampleArgs, gpu: &GpuOptions) -> Result<()> {
    let SampleArgs {
        init: _,
        checkpoint,
        perturb,
        lattice,
        temperature,
        flow,
        batch,
        seed,
        out,
    } = args;
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
    let ctx = GpuContext::new(gpu)?;
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
    Ok(())
}
