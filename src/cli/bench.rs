//! `neuralrg-gpu bench`: its flags, and the benchmark on one adapter or on all of them.

use anyhow::Result;
use clap::Args;

use neuralrg_gpu::config::{check_lattice, PartialRunConfig, PartialTrain};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};

use super::{FlowArgs, TemperatureArgs};

/// `neuralrg-gpu bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Linear lattice size L, a power of two from 4 to 4096.
    #[arg(
        long,
        short = 'L',
        value_name = "L",
        default_value_t = 32,
        allow_hyphen_values = true
    )]
    pub lattice: usize,
    #[command(flatten)]
    pub temperature: TemperatureArgs,
    #[command(flatten)]
    pub flow: FlowArgs,
    /// Samples per step.
    #[arg(long, default_value_t = 1024)]
    pub batch: usize,
    /// Seed of the parameters (the fresh flow plus small noise), masks and draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Untimed repetitions of each workload first (at most 100000).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed repetitions of each workload (the median and the spread are reported), from 1 to
    /// 100000.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Also the GPU time per kernel of one repetition: GPU timestamps where the adapter has
    /// TIMESTAMP_QUERY, else the wall clock around each dispatch.
    #[arg(long)]
    pub profile: bool,
    /// Run on every adapter wgpu finds that can run the kernels (the others are named, with the
    /// reason, and skipped) and print them side by side.
    #[arg(long)]
    pub all_adapters: bool,
    /// One JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run_bench(args: &BenchArgs, gpu: &GpuOptions) -> Result<()> {
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
                // One device through two backends (WGPU_BACKEND=vulkan,gl) has one name, which
                // selects the same adapter both times: it runs once.
                None if names.contains(&Some(a.name.clone())) => eprintln!(
                    "bench: {:?} is listed again through {}; it runs once (choose a backend with \
                     WGPU_BACKEND to time the other)",
                    a.name, a.backend
                ),
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
