//! Code paths that only large problems reach, forced at L = 4 by lowering the limits that
//! trigger them, and compared bit for bit with the unforced run: dispatches spread over a
//! two-dimensional grid (more than 65,535 workgroups) and the weight reduction in chunks of rows
//! (a factor buffer above its 64 MiB budget, or sums longer than a driver's loop budget).

mod common;

use neuralrg_gpu::flow::{params, Arch, BackwardScratch, Flow, FlowConfig, FlowPlan};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::physics::IsingTarget;
use neuralrg_gpu::train::{AdamConfig, Objective, StepStats, TrainStep};

const BATCH: usize = 64;

fn context(opts: GpuOptions) -> std::sync::Arc<GpuContext> {
    std::env::set_var("NODEVICE_SELECT", "1");
    GpuContext::new(&opts).unwrap_or_else(|e| panic!("GPU tests need a GPU adapter: {e}"))
}

/// One gradient evaluation and one training step: the statistics, the parameter and latent
/// gradients, and the parameters after Adam.
fn run(ctx: &GpuContext, plan: &FlowPlan, obj: Objective) -> (StepStats, Vec<Vec<f32>>) {
    let target = IsingTarget::new(4, 0.44).unwrap();
    let mut p = params::init(plan, 3);
    params::perturb(&mut p, 0.3, 3);
    let batch = BATCH;
    let mut step = TrainStep::new(
        ctx,
        plan.clone(),
        &p,
        params::masks(plan, 3),
        &target,
        batch,
        obj,
        AdamConfig::default(),
        9,
    )
    .unwrap();
    let z = common::to_f32(&common::random_vec(2, batch * 16, 1.5));
    let stats = step.gradients_for(ctx, &z).unwrap();
    let grad = ctx.read(step.grad()).unwrap();
    let dz = ctx.read(step.dz()).unwrap();
    let trained = step.step(ctx, 4).unwrap();
    assert!(trained.is_finite());
    let after = ctx.read(&step.flow.params).unwrap();
    (stats, vec![grad, dz, after])
}

#[test]
fn two_dimensional_grids_and_chunked_reductions_give_the_same_bits() {
    let plan = FlowPlan::new(FlowConfig::new(4, None, Arch::Mera, 2, 6, 3).unwrap());
    let plain = context(GpuOptions::default());
    let row_size = 2 * (4 + 2 * 6 * 3) + 2;
    let forced = [
        // One workgroup per dimension: every dispatch of more than 64 invocations goes 2D.
        GpuOptions {
            max_workgroups_per_dim: Some(1),
            ..GpuOptions::default()
        },
        // A factor buffer of 100 rows: the 64 x 4 rows of a layer in 3 chunks.
        GpuOptions {
            row_budget_bytes: Some(100 * 4 * row_size as u64),
            ..GpuOptions::default()
        },
    ];
    for obj in [
        Objective::PLAIN,
        Objective {
            symmetric: true,
            sym_reg: 0.25,
        },
    ] {
        let (stats, bufs) = run(&plain, &plan, obj);
        for opts in &forced {
            let ctx = context(opts.clone());
            let flow = Flow::new(
                &ctx,
                plan.clone(),
                &params::init(&plan, 1),
                params::masks(&plan, 1),
            )
            .unwrap();
            let rows = BATCH * plan.max_blocks();
            let chunk = BackwardScratch::new(&ctx, &flow, BATCH, true)
                .unwrap()
                .chunk_rows();
            let two_d = ctx.grid((BATCH * 16) as u64, 64)[1] > 1;
            assert!(
                chunk < rows || two_d,
                "{opts:?} forces nothing: chunk {chunk} of {rows} rows"
            );
            let (s, b) = run(&ctx, &plan, obj);
            assert_eq!(s, stats, "{opts:?} {obj:?}: statistics");
            for (name, (x, y)) in ["grad", "dz", "params after Adam"]
                .iter()
                .zip(b.iter().zip(&bufs))
            {
                let same = x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{opts:?} {obj:?}: {name} differs from the unforced run"
                );
            }
        }
    }
}
