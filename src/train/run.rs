//! The PDD training loop (Algorithm 1) around [`TrainStep`]: run directory, metrics, progress,
//! periodic atomic checkpoints, resume, interruption (SIGINT, SIGTERM, SIGHUP), NaN detection,
//! and one owner per run directory (an exclusive lock).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use thiserror::Error;

use super::metrics::{self, MetricsLine, MetricsRecord, MetricsWriter, RollbackRecord};
use super::step::{StepStats, TrainStep};
use crate::config::{PartialRunConfig, RunConfig, RunConfigError};
use crate::flow::params;
use crate::gpu::{GpuContext, GpuError};
use crate::io::checkpoint::{Checkpoint, CheckpointError, FILE_NAME as CHECKPOINT};
use crate::io::lock::{DirLock, LockError, LOCK_FILE};
use crate::io::write_atomic;
use crate::physics::exact::relative_error;
use crate::physics::Target;
use crate::train::schedule::{batch_at, learning_rate};

/// The weight of the past in the moving averages of the loss (about the last 10 logged steps).
const EMA_WEIGHT: f64 = 0.9;

#[derive(Debug, Error)]
pub enum TrainError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(
        "training produced a non-finite {what} at step {step} after {rollbacks} rollbacks \
         (--max-rollbacks; each halves the learning rate); stopped. {kept}"
    )]
    NonFinite {
        step: u64,
        what: &'static str,
        rollbacks: u32,
        /// What the run directory holds now, and what to do.
        kept: String,
    },
    #[error("{0} already holds a checkpoint: --resume it, or choose another --out")]
    Exists(String),
    #[error(
        "{0} is not empty and holds no checkpoint to resume: choose another --out, or remove it"
    )]
    NotEmpty(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("writing {path}: {message}")]
    Io { path: String, message: String },
    #[error("{0}; repair it, or move it away to resume with a new log")]
    DamagedLog(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] RunConfigError),
    #[error("--resume continues in its own directory; drop --out")]
    ResumeWithOut,
    #[error(
        "--resume {file} would continue in a directory that holds a run ({held}), which it \
         would overwrite; move {file} into a directory of its own and resume from there"
    )]
    ResumeIntoRun { file: String, held: String },
    #[error(
        "--steps {steps} is below the {held} steps {dir} already holds: --steps is the run's \
         total, so give more than {held} to extend it"
    )]
    StepsBelow { steps: u64, held: u64, dir: String },
}

/// Where a `train` invocation starts, decided before any device work.
pub enum RunStart {
    /// The run in `dir` already holds its total steps (`step`).
    Complete {
        dir: PathBuf,
        step: u64,
    },
    Train(Box<PreparedRun>),
}

/// A run to train: `config` in `dir`, from `resume` or afresh, holding the directory's lock.
pub struct PreparedRun {
    pub config: RunConfig,
    pub resume: Option<Checkpoint>,
    pub dir: PathBuf,
    pub lock: DirLock,
}

/// A fresh run's directory when no --out is given.
pub fn default_dir(config: &RunConfig) -> PathBuf {
    PathBuf::from(format!(
        "runs/L{}-beta{:.4}-seed{}",
        config.lattice, config.beta, config.train.seed
    ))
}

/// Resolves a `train` invocation: `resume` is --resume (a run directory or its checkpoint
/// file), `out` is --out, `flags` the settings given (flags over a --config file), and
/// `steps_given` whether --steps was among them. A resumed run takes its recorded settings
/// with `flags` over them (those that would change the model or the target are refused); the
/// directory's lock is taken before the directory is checked, so a second process is told who
/// owns it.
pub fn start(
    resume: Option<&Path>,
    out: Option<&Path>,
    flags: PartialRunConfig,
    steps_given: bool,
) -> Result<RunStart, TrainError> {
    let resume_path = resume;
    let (config, resume, dir) = match resume {
        Some(given) => {
            // The run directory; the path of its checkpoint file names it too (a file in the
            // working directory has the empty path as its parent).
            let dir = match given
                .parent()
                .filter(|p| given.is_file() && !p.as_os_str().is_empty())
            {
                Some(parent) => parent.to_path_buf(),
                None if given.is_file() => PathBuf::from("."),
                None => given.to_path_buf(),
            };
            if out.is_some_and(|o| o != dir) {
                return Err(TrainError::ResumeWithOut);
            }
            // The file named, so that an error names it.
            let ck = Checkpoint::load(given)?;
            // --steps is the run's total; without it the run goes on to its recorded total.
            let config = ck.config.with_overrides(flags)?;
            (config, Some(ck), dir)
        }
        None => {
            let config = flags.resolve()?;
            let dir = out.map_or_else(|| default_dir(&config), Path::to_path_buf);
            (config, None, dir)
        }
    };
    let total = config.train.steps;
    let lock = DirLock::acquire(&dir)?;
    // A checkpoint file under another name continues in its directory, which must not hold a
    // run: resuming would overwrite that run's checkpoint and mix the two logs.
    if let Some(given) = resume_path
        .filter(|g| g.is_file() && g.file_name() != Some(std::ffi::OsStr::new(CHECKPOINT)))
    {
        if let Some(held) = [CHECKPOINT, metrics::FILE_NAME]
            .iter()
            .map(|f| dir.join(f))
            .find(|f| f.exists())
        {
            return Err(TrainError::ResumeIntoRun {
                file: given.display().to_string(),
                held: held.display().to_string(),
            });
        }
    }
    let from = resume.as_ref().map_or(0, |c| c.step);
    // Runs resumed by older versions recorded the last increment, not the total.
    if total < from && steps_given {
        return Err(TrainError::StepsBelow {
            steps: total,
            held: from,
            dir: dir.display().to_string(),
        });
    }
    if total <= from {
        return Ok(RunStart::Complete { dir, step: from });
    }
    check_run_dir(&dir, resume.is_some())?;
    Ok(RunStart::Train(Box::new(PreparedRun {
        config,
        resume,
        dir,
        lock,
    })))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Summary {
    pub completed_steps: u64,
    pub steps_run: u64,
    pub last: Option<StepStats>,
    pub neg_ln_z: f64,
    pub seconds: f64,
    pub interrupted: bool,
}

pub struct RunOptions<'a> {
    pub dir: PathBuf,
    /// The directory's lock, taken before anything was checked or written there; held until
    /// training returns.
    pub lock: DirLock,
    /// Steps to run now.
    pub steps: u64,
    pub quiet: bool,
    /// Set by SIGINT, SIGTERM or SIGHUP: save and stop after the current step.
    pub stop: &'a AtomicBool,
    /// Non-finite steps rolled back (each halving the learning rate) before training stops.
    pub max_rollbacks: u32,
    /// Fault injection for tests: a NaN in the parameters before this step (1-based).
    pub inject_nan_at: Option<u64>,
    /// For tests: stop before this step (1-based) as `stop` would.
    pub inject_stop_at: Option<u64>,
}

/// A fresh run needs a new or empty directory (its lock file aside): one that holds a checkpoint
/// is refused (`--resume` continues it), and anything else might be another run's files.
pub fn check_run_dir(dir: &Path, resuming: bool) -> Result<(), TrainError> {
    if resuming {
        return Ok(());
    }
    if dir.join(CHECKPOINT).exists() {
        return Err(TrainError::Exists(dir.display().to_string()));
    }
    let occupied = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .any(|e| e.file_name() != LOCK_FILE),
        Err(_) => false,
    };
    if occupied {
        return Err(TrainError::NotEmpty(dir.display().to_string()));
    }
    Ok(())
}

/// Trains `config` into `opts.dir`, from scratch or from `resume`. A fresh run that ends before
/// its first checkpoint (an error, a signal) removes the files it wrote, so the directory can
/// be used again, or goes with its lock if the lock created it.
pub fn train(
    ctx: &GpuContext,
    config: &RunConfig,
    resume: Option<Checkpoint>,
    opts: RunOptions,
) -> Result<Summary, TrainError> {
    // The directory held nothing of a run (checked here): what is there afterwards is ours.
    check_run_dir(&opts.dir, resume.is_some())?;
    let fresh = resume.is_none();
    let result = run_steps(ctx, config, resume, &opts);
    if fresh && !opts.dir.join(CHECKPOINT).exists() {
        for name in [CONFIG_FILE, metrics::FILE_NAME] {
            let _ = std::fs::remove_file(opts.dir.join(name));
        }
    }
    result
}

/// The run's settings as trained, beside its checkpoint.
const CONFIG_FILE: &str = "config.toml";

fn run_steps(
    ctx: &GpuContext,
    config: &RunConfig,
    resume: Option<Checkpoint>,
    opts: &RunOptions,
) -> Result<Summary, TrainError> {
    let dir = &opts.dir;
    opts.lock.remove_stale_temporaries().map_err(io_err(dir))?;
    let target = config.target().map_err(RunConfigError::from)?;
    let plan = config.plan().map_err(RunConfigError::from)?;
    let t = &config.train;
    let (start, elapsed_before, params, masks) = match &resume {
        Some(ck) => (ck.step, ck.elapsed_s, ck.params.clone(), ck.masks.clone()),
        None => {
            let (p, masks) = params::fresh(&plan, t.seed, 0.0);
            (0, 0.0, p, masks)
        }
    };
    // The batch may ramp up: a new step stage is built when it changes, carrying the state.
    let build = |batch: usize, params: &[f32]| {
        TrainStep::new(
            ctx,
            plan.clone(),
            params,
            &masks,
            &target,
            batch,
            config.objective(),
            t.adam,
            t.seed,
        )
    };
    let log_path = dir.join(metrics::FILE_NAME);
    let log_err = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::InvalidData => TrainError::DamagedLog(e.to_string()),
        _ => io_err(&log_path)(e),
    };
    // A resumed run whose log is damaged stops before the device is used or anything written.
    if resume.is_some() {
        metrics::check(dir).map_err(log_err)?;
    }
    // A ramp's largest batch is built first, so a batch the adapter or the memory budget cannot
    // hold is refused now rather than in the middle of the run.
    let first = batch_at(t.batch, t.batch_final, start, t.steps);
    if let Some(last) = t.batch_final.filter(|&b| b > first) {
        drop(build(last, &params)?);
        // wgpu frees a dropped buffer once the device is polled.
        ctx.wait()?;
    }
    let mut trainer = build(first, &params)?;
    if let Some(ck) = &resume {
        trainer.load(ctx, &ck.params, &ck.adam_m, &ck.adam_v)?;
    }
    let config_path = dir.join(CONFIG_FILE);
    write_atomic(&config_path, config.to_toml().as_bytes()).map_err(io_err(&config_path))?;
    let mut metrics = match resume {
        Some(_) => MetricsWriter::resume(dir, start),
        None => MetricsWriter::create(dir),
    }
    .map_err(log_err)?;

    let began = Instant::now();
    // The configuration as it goes on: a rollback halves the learning rate.
    let mut config = config.clone();
    let save = |trainer: &TrainStep, config: &RunConfig, step: u64| -> Result<(), TrainError> {
        let ck = Checkpoint {
            config: config.clone(),
            step,
            elapsed_s: elapsed_before + began.elapsed().as_secs_f64(),
            params: ctx.read(&trainer.flow.params)?,
            adam_m: ctx.read(trainer.moments().0)?,
            adam_v: ctx.read(trainer.moments().1)?,
            masks: masks.clone(),
        };
        ck.save(dir).map_err(io_err(&dir.join(CHECKPOINT)))
    };

    // Once everything is allocated: a configuration the adapter cannot hold fails in one line.
    eprintln!(
        "training L = {} at beta = {:.6} on {}: steps {} -> {}, batch {}{}, into {}",
        config.lattice,
        config.beta,
        ctx.info.name,
        start,
        start + opts.steps,
        t.batch,
        t.batch_final
            .map_or(String::new(), |b| format!(" ramping to {b}")),
        dir.display()
    );
    let neg_ln_z = target.neg_ln_z();
    let rel = |f: f64| relative_error(f, neg_ln_z);
    let bar = if opts.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(opts.steps)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} steps  {per_sec}  eta {eta}  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let end = start + opts.steps;
    let mut last = None;
    let mut completed = start;
    let mut last_saved = start;
    let mut interrupted = false;
    let mut rollbacks = 0;
    let mut samples: u64 = 0;
    let mut poison = opts.inject_nan_at;
    // The moving averages of the loss and the trained objective over the logged steps,
    // continued from the log on a resume, so a resumed run logs what an uninterrupted one would.
    let mut ema: Option<(f64, f64)> = super::metrics::read(dir)
        .ok()
        .and_then(|r| r.last().cloned())
        .filter(|_| start > 0)
        .and_then(|r| Some((r.loss_ema?, r.loss_sym_ema.or(r.loss_ema)?)));
    let mut step = start;
    while step < end {
        if opts.stop.load(Ordering::SeqCst) || opts.inject_stop_at == Some(step + 1) {
            interrupted = true;
            break;
        }
        let tc = &config.train;
        let batch = batch_at(tc.batch, tc.batch_final, step, tc.steps);
        if batch != trainer.batch {
            let state = [
                &trainer.flow.params,
                trainer.moments().0,
                trainer.moments().1,
            ]
            .map(|b| ctx.read(b));
            let [p, m, v] = state;
            let (p, m, v) = (p?, m?, v?);
            // The old stage's memory goes back before the new one is built.
            drop(trainer);
            ctx.wait()?;
            trainer = build(batch, &p)?;
            trainer.load(ctx, &p, &m, &v)?;
        }
        if poison == Some(step + 1) {
            poison = None;
            trainer.poison(ctx);
        }
        let lr = learning_rate(tc.adam.lr, tc.lr_schedule, tc.warmup_steps, step, tc.steps);
        trainer.set_lr(lr);
        let stats = trainer.step(ctx, step)?;
        if !stats.is_finite() {
            let what = if stats.loss.is_finite() && stats.objective.is_finite() {
                "gradient"
            } else {
                "loss"
            };
            // Back to the state before the previous update, at half the rate; step `step` is
            // retried (its update skipped), so the step count and random streams go on as before.
            trainer.roll_back(ctx, step)?;
            rollbacks += 1;
            if rollbacks > opts.max_rollbacks {
                bar.abandon();
                // The restored state has `step - 1` updates; save it if the checkpoint has fewer.
                if step > last_saved + 1 {
                    save(&trainer, &config, step)?;
                    last_saved = step;
                }
                let kept = if dir.join(CHECKPOINT).exists() {
                    format!(
                        "The checkpoint holds the last good state, at step {last_saved}: lower \
                         --lr or set --clip-grad, and --resume"
                    )
                } else {
                    "No checkpoint was written: lower --lr or set --clip-grad and start again"
                        .into()
                };
                return Err(TrainError::NonFinite {
                    step: step + 1,
                    what,
                    rollbacks: opts.max_rollbacks,
                    kept,
                });
            }
            config.train.adam.lr /= 2.0;
            trainer.set_lr(config.train.adam.lr);
            write_atomic(&config_path, config.to_toml().as_bytes())
                .map_err(io_err(&config_path))?;
            metrics
                .write(&MetricsLine::Rollback(RollbackRecord {
                    step: step + 1,
                    rollback: what.into(),
                    lr: config.train.adam.lr,
                }))
                .map_err(io_err(&log_path))?;
            bar.suspend(|| {
                eprintln!(
                    "non-finite {what} at step {}: rolled back one update and retrying at half \
                     the learning rate, {:e} ({rollbacks} of {} rollbacks)",
                    step + 1,
                    config.train.adam.lr,
                    opts.max_rollbacks
                )
            });
            continue;
        }
        let done = step + 1;
        step = done;
        completed = done;
        samples += trainer.batch as u64;
        last = Some(stats);
        let elapsed = began.elapsed().as_secs_f64();
        if done % t.log_every == 0 || done == end {
            let sym = config.train.symmetric;
            ema = Some(match ema {
                None => (stats.loss, stats.objective),
                Some((l, o)) => (
                    EMA_WEIGHT * l + (1.0 - EMA_WEIGHT) * stats.loss,
                    EMA_WEIGHT * o + (1.0 - EMA_WEIGHT) * stats.objective,
                ),
            });
            let (loss_ema, objective_ema) = ema.expect("just set");
            metrics
                .write(&MetricsLine::Step(MetricsRecord {
                    step: done,
                    loss: stats.loss,
                    loss_stderr: stats.loss_stderr,
                    neg_ln_z_exact: neg_ln_z,
                    rel_error: rel(stats.loss),
                    grad_norm: stats.grad_norm,
                    lr,
                    elapsed_s: elapsed_before + elapsed,
                    samples_per_s: samples as f64 / elapsed,
                    loss_sym: sym.then_some(stats.objective),
                    loss_sym_stderr: sym.then_some(stats.objective_stderr),
                    rel_error_sym: sym.then(|| rel(stats.objective)),
                    loss_ema: Some(loss_ema),
                    loss_sym_ema: sym.then_some(objective_ema),
                }))
                .map_err(io_err(&log_path))?;
        }
        let smooth = ema.map_or(String::new(), |(_, o)| {
            format!("  (average {:.4}, rel err {:.2e})", o, rel(o))
        });
        bar.set_message(format!(
            "loss {:.4} +/- {:.4}  rel err {:.2e}{smooth}",
            stats.objective,
            stats.objective_stderr,
            rel(stats.objective)
        ));
        bar.inc(1);
        if done % t.save_every == 0 || done == end {
            save(&trainer, &config, done)?;
            last_saved = done;
        }
    }
    if last_saved < completed {
        save(&trainer, &config, completed)?;
    }
    bar.finish_and_clear();
    Ok(Summary {
        completed_steps: completed,
        steps_run: completed - start,
        last,
        neg_ln_z,
        seconds: began.elapsed().as_secs_f64(),
        interrupted,
    })
}
