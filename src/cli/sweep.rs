//! The `sweep` command: trains a grid of temperatures x depths with `train`'s own code, one run
//! directory per point, resuming what is done; evaluates every point; draws Fig. S1 and S2. Or
//! prints the plan, or writes a Slurm job array of the same points.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, ValueEnum};

use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::io::checkpoint::Checkpoint;
use neuralrg_gpu::io::write_atomic;
use neuralrg_gpu::plot::Figure;
use neuralrg_gpu::sample::{self, Model};
use neuralrg_gpu::sweep::{self, Evaluated, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// DIR/sweep.slurm: a Slurm job array with one point per task.
    Slurm,
}

#[derive(Args)]
pub struct SweepArgs {
    /// Temperatures: FROM:TO:STEP (TO included) or a comma-separated list, e.g. 2.0:2.7:0.1.
    #[arg(long, value_name = "T")]
    temperatures: String,
    /// Depths of the flow: FROM..TO (TO included) or a comma-separated list, e.g. 1..3 (at most
    /// log2 L for mera and tree).
    #[arg(long, value_name = "D")]
    depths: String,
    /// The sweep's directory: one run directory per point (T{T}-depth{D}) and the figures.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Print the points, their directories and how far each is trained; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write a job script for a cluster instead of training here.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// Samples of each point's final free-energy estimate.
    #[arg(long, default_value_t = 4096)]
    eval_samples: usize,
    /// `train`'s flags for every point, after `--` (e.g. `-- -L 8 --steps 500 --symmetric`);
    /// the sweep sets --temperature, --depth and --out itself.
    #[arg(last = true, allow_hyphen_values = true, value_name = "TRAIN FLAGS")]
    train: Vec<String>,
}

/// Flags a sweep sets for each point itself.
const OWN_FLAGS: [&str; 6] = [
    "--temperature",
    "--beta",
    "--depth",
    "--out",
    "--resume",
    "--quiet",
];

pub fn run_sweep(args: &SweepArgs, gpu: &GpuOptions) -> Result<ExitCode> {
    let temperatures = sweep::parse_temperatures(&args.temperatures)?;
    let depths = sweep::parse_depths(&args.depths)?;
    let count = temperatures.len() * depths.len();
    if count > sweep::MAX_POINTS {
        bail!(
            "the sweep has {count} points ({} temperatures x {} depths), more than {}",
            temperatures.len(),
            depths.len(),
            sweep::MAX_POINTS
        );
    }
    if let Some(f) = args
        .train
        .iter()
        .find(|a| OWN_FLAGS.iter().any(|o| a.split('=').next() == Some(*o)))
    {
        bail!("{f} is set by the sweep for each point; drop it from the train flags");
    }
    if args.eval_samples < 2 {
        bail!("--eval-samples must be at least 2");
    }
    if args.out.is_file() {
        bail!(
            "--out must be a directory (got the file {})",
            args.out.display()
        );
    }
    let points = sweep::points(&temperatures, &depths, &args.out);
    // Every point's command parses and resolves before anything runs, and a run already in a
    // point's directory must be that point's.
    // A checkpoint that cannot be read stops the sweep here, with the reason, rather than
    // later as a "directory not empty" from its training.
    let mut steps = 0;
    for p in &points {
        let want = train_args(&p.fresh_args(&args.train))?.check()?;
        p.check_existing(&want)?;
        // The same for every point: its default follows the lattice, which all share.
        steps = want.train.steps;
    }
    if args.dry_run {
        for p in &points {
            let state = match p.state(steps)? {
                State::New => "new".to_string(),
                State::Partial(s, t) => format!("trained to step {s} of {t}"),
                State::Done => "done".to_string(),
            };
            println!(
                // To the 4 decimals that name the point's directory (2.1 + 2 x 0.1 is 2.3).
                "T = {:<8.4} depth {:<3} {}  ({state})",
                p.temperature,
                p.depth,
                p.dir.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Emit::Slurm) = args.emit {
        if points
            .iter()
            .map(|p| p.state(steps))
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .all(|s| *s == State::Done)
        {
            println!("every point is trained: run the sweep without --emit to collect and plot");
            return Ok(ExitCode::SUCCESS);
        }
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let binary =
            std::env::current_exe().map_or("neuralrg-gpu".to_string(), |p| p.display().to_string());
        let path = args.out.join("sweep.slurm");
        write_atomic(
            &path,
            sweep::slurm_script(&points, &args.train, steps, &binary)?.as_bytes(),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {}: submit it with `sbatch {}`, then run this sweep again without --emit to \
             collect and plot",
            path.display(),
            neuralrg_gpu::io::shell_word(&path.display().to_string())
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bar = indicatif::ProgressBar::new(points.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("sweep [{bar:30}] {pos}/{len} points  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    for p in &points {
        bar.set_message(format!("T = {}, depth {}", p.temperature, p.depth));
        if p.state(steps)? != State::Done {
            let train = train_args(&p.train_args(&args.train, steps)?)?;
            let code = bar.suspend(|| super::train::run_train(&train, gpu))?;
            if code != ExitCode::SUCCESS {
                bar.abandon();
                eprintln!("the sweep stopped; run the same command again to go on");
                return Ok(code);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    collect(&points, args, gpu)?;
    Ok(ExitCode::SUCCESS)
}

/// `train ARGS --quiet` parsed as the command line would be.
fn train_args(args: &[String]) -> Result<Box<super::train::TrainArgs>> {
    let argv = std::iter::once("neuralrg-gpu".to_string())
        .chain(args.iter().cloned())
        .chain(std::iter::once("--quiet".to_string()));
    match super::Cli::try_parse_from(argv) {
        Ok(super::Cli {
            command: super::Command::Train(t),
            ..
        }) => Ok(t),
        Ok(_) => unreachable!("the arguments start with `train`"),
        Err(e) => bail!(
            "the train flags do not parse: {}",
            e.to_string().lines().next().unwrap_or_default()
        ),
    }
}

/// Evaluates every point and draws Fig. S1 (relative error against temperature per depth) and
/// Fig. S2 (a sample per temperature from the deepest flow).
fn collect(points: &[sweep::Point], args: &SweepArgs, gpu: &GpuOptions) -> Result<()> {
    let ctx = GpuContext::new(gpu)?;
    let deepest = points.iter().map(|p| p.depth).max().unwrap_or(1);
    let mut results = Vec::new();
    let mut samples = Vec::new();
    let mut lattice = 0;
    println!(
        "{:>8} {:>6} {:>14} {:>12}",
        "T", "depth", "rel. error", "+/-"
    );
    for p in points {
        let ck = Checkpoint::load(&p.dir)?;
        lattice = ck.config.lattice;
        let model = Model::from_checkpoint(&ctx, &ck)?;
        let e = sample::estimate(
            &ctx,
            &model,
            args.eval_samples,
            sample::EVAL_BATCH,
            sample::EVAL_SEED,
            |_| {},
        )?;
        let err = e.stderr / e.neg_ln_z_exact.abs();
        println!(
            "{:>8.4} {:>6} {:>14.4e} {:>12.2e}",
            p.temperature, p.depth, e.rel_error, err
        );
        results.push(Evaluated {
            point: p.clone(),
            rel_error: e.rel_error,
            rel_error_err: err,
        });
        if p.depth == deepest {
            let x = sample::draw(&ctx, &model, 1, 1, 0)?.x;
            samples.push((p.temperature, x));
        }
    }
    let s1 = args.out.join("fig_s1_error");
    sweep::error_figure(&results).save(&s1)?;
    let s2 = args.out.join("fig_s2_samples");
    sweep::sample_figure(&samples, lattice).save(&s2)?;
    println!(
        "wrote {} and {} (.png, .svg, .csv)",
        s1.display(),
        s2.display()
    );
    Ok(())
}
