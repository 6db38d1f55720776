//! `neuralrg-gpu train`: its flags, and a run from them to the printed result.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;

use neuralrg_gpu::config::{PartialRunConfig, PartialTrain, RunConfig};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::io::write_atomic;
use neuralrg_gpu::physics::exact::relative_error;
use neuralrg_gpu::sample;
use neuralrg_gpu::train::{self, RunOptions, RunStart};

use super::{check_host_memory, FlowArgs, TemperatureArgs};

#[derive(Args)]
pub struct TrainArgs {
    /// Linear lattice size L, a power of two from 4 to 4096.
    #[arg(long, short = 'L', value_name = "L", allow_hyphen_values = true)]
    pub lattice: Option<usize>,
    #[command(flatten)]
    pub temperature: TemperatureArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Training steps in all: the run's total, counted from step 0. With --resume, the run
    /// continues to its recorded total, or to this one if given (which extends it).
    /// [default: 4000; 12000 from L = 32]
    #[arg(long)]
    pub steps: Option<u64>,
    /// Samples per step. [default: 64]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate. [default: 0.01]
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<f64>,
    /// Adam beta1. [default: 0.9]
    #[arg(long)]
    beta1: Option<f64>,
    /// Adam beta2. [default: 0.999]
    #[arg(long)]
    beta2: Option<f64>,
    /// Adam epsilon. [default: 1e-8]
    #[arg(long)]
    pub eps: Option<f64>,
    /// Decoupled weight decay. [default: 0]
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Clip the gradient to this global norm (0 = off). [default: 0]
    #[arg(long)]
    pub clip_grad: Option<f64>,
    /// Learning-rate schedule over the run's --steps after the warm-up: constant, cosine (to
    /// zero at the last step) or exponential (to 1% of --lr). [default: cosine]
    #[arg(long, value_enum)]
    pub lr_schedule: Option<neuralrg_gpu::train::LrSchedule>,
    /// Steps of linear warm-up from --lr / N to --lr. [default: 100]
    #[arg(long, value_name = "N")]
    pub warmup_steps: Option<u64>,
    /// Ramp the batch up to B (--batch times a power of two): it doubles at evenly spaced steps,
    /// lowering the gradient noise late in training. [default: none, a fixed batch]
    #[arg(long, value_name = "B")]
    pub batch_final: Option<usize>,
    /// After training, estimate the final model's free energy from M fresh samples (as `eval`
    /// does), print it as the result and write it to DIR/eval.json. [default: 0, off]
    #[arg(long, value_name = "M")]
    pub eval_samples: Option<usize>,
    /// Seed of the parameters, coupling masks and latent draws. [default: 0]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train the symmetrised q_sym(x) = [q(x) + q(-x)] / 2 (Appendix D). [default: on]
    #[arg(long, overrides_with = "no_symmetric")]
    pub symmetric: bool,
    /// Train q itself, as the paper's first experiments do (the symmetrised loss is off). The
    /// later of --symmetric and --no-symmetric wins.
    #[arg(long, overrides_with = "symmetric")]
    pub no_symmetric: bool,
    /// Add W * KL(q(x) || q(-x)) to the loss (Appendix E), W from 0 to 1e6. [default: 0]
    #[arg(long, value_name = "W", allow_hyphen_values = true)]
    pub sym_reg: Option<f64>,
    /// Checkpoint every N steps. [default: 100]
    #[arg(long, value_name = "N")]
    pub save_every: Option<u64>,
    /// Log to metrics.jsonl every N steps. [default: 10]
    #[arg(long, value_name = "N")]
    pub log_every: Option<u64>,
    /// Run directory. [default: runs/L{L}-beta{beta}-seed{seed}]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// TOML file with any of the settings but --eval-samples, --max-rollbacks, --out and
    /// --resume (command-line flags win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue the run in DIR from its checkpoint, bit for bit, or from a checkpoint file in its
    /// directory (which must hold no other run's checkpoint.safetensors or metrics.jsonl); flags
    /// that would change the model or target are refused, and other training flags given with it
    /// (e.g. --lr) replace the recorded ones, so the continuation then differs from an
    /// uninterrupted run.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// No progress bar (it is also off when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// A step with a non-finite loss or gradient is rolled back (to the state before the
    /// previous update) and retried at half the learning rate, up to N times in a session; then
    /// training stops with the last good state checkpointed.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_rollbacks: u32,
    /// Testing only: put a NaN into the parameters before step K.
    #[arg(long, value_name = "K", hide = true)]
    pub inject_nan_at: Option<u64>,
    /// Testing only: stop before step K as a signal would (a signal races a fast adapter).
    #[arg(long, value_name = "K", hide = true)]
    pub inject_stop_at: Option<u64>,
}

impl TrainArgs {
    /// The flags, then the --config file where a flag is not given.
    pub fn with_file(&self) -> Result<PartialRunConfig> {
        let cli = self.partial();
        Ok(match &self.config {
            Some(file) => cli.or(PartialRunConfig::from_file(file)?),
            None => cli,
        })
    }

    /// The configuration a fresh run of these flags resolves to, without running anything.
    pub fn check(&self) -> Result<RunConfig> {
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

pub fn run_train(args: &TrainArgs, gpu: &GpuOptions) -> Result<ExitCode> {
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
