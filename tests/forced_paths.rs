//! Code paths that only large problems reach, forced at L = 4 by lowering the limits that
//! trigger them, and compared bit for bit with the unforced run: dispatches spread over a
//! two-dimensional grid (more than 65,535 workgroups), the weight reduction in chunks of rows
//! (a factor buffer above its 64 MiB budget, or sums longer than a driver's loop budget), with
//! each weight's sum continued in place (CPU adapters) or cut into slices of 20 rows (as GPUs
//! cut layers of over 1,024 rows),
//! coupling weights bound as storage (a step above the uniform binding limit), and a layer's
//! coupling steps split over several dispatches (one step each, or uneven groups: wide MLPs
//! within a loop budget); each for both shapes of the weight gradients (accumulated per invocation, or per-row factors reduced
//! afterwards), which agree with each other to f32 rounding.

mod common;

use neuralrg_gpu::flow::{
    params, Arch, BackwardScratch, Flow, FlowConfig, FlowPlan, GradientShape,
};
use neuralrg_gpu::gpu::{GpuContext, GpuOptions};
use neuralrg_gpu::physics::IsingTarget;
use neuralrg_gpu::train::{AdamConfig, Objective, StepStats, TrainStep};

const BATCH: usize = 64;

/// Rows per slice of the sliced weight reduction here: a layer has 256 rows, so it is cut into
/// slices.
const SLICE_ROWS: usize = 20;

fn context(opts: GpuOptions) -> std::sync::Arc<GpuContext> {
    common::gpu_with(&opts)
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
        &params::masks(plan, 3),
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

/// Whether `opts` reaches a path the default options do not: a 2D grid, chunked factors,
/// storage weights, or the other gradient shape.
fn forces_something(opts: &GpuOptions, plan: &FlowPlan) -> bool {
    let ctx = context(opts.clone());
    let flow = Flow::new(
        &ctx,
        plan.clone(),
        &params::init(plan, 1),
        &params::masks(plan, 1),
    )
    .unwrap();
    let rows = BATCH * plan.max_blocks();
    let chunked = match BackwardScratch::new(&ctx, &flow, BATCH, true)
        .unwrap()
        .shape()
    {
        GradientShape::Factors { chunk_rows, .. } => chunk_rows < rows,
        _ => false,
    };
    let two_d = ctx.grid((BATCH * 16) as u64, 64)[1] > 1;
    let split = flow.weights.steps_per_binding() < plan.layout.couplings;
    chunked || two_d || split || !flow.weights.is_uniform() || opts.accumulate_gradients.is_some()
}

const OUTPUTS: [&str; 3] = ["grad", "dz", "params after Adam"];

fn assert_same_bits(a: &(StepStats, Vec<Vec<f32>>), b: &(StepStats, Vec<Vec<f32>>), what: &str) {
    assert_eq!(a.0, b.0, "{what}: statistics");
    for (name, (x, y)) in OUTPUTS.iter().zip(a.1.iter().zip(&b.1)) {
        let same = x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{what}: {name} differs");
    }
}

/// Whether two separately compiled shader variants that write the same arithmetic give the same
/// bits on `ctx`'s adapter. naga marks no expression as exempt from contraction, so a GPU
/// driver may fuse a multiply and an add into one FMA in one variant and not in the other;
/// llvmpipe compiles both alike, which these tests hold it to.
fn variants_compile_alike(ctx: &GpuContext) -> bool {
    ctx.info.device_type == wgpu::DeviceType::Cpu
}

/// `got` equals `want` to f32 rounding (relative to the largest value).
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * scale,
            "{what}: value {i}: {a} vs {b}"
        );
    }
}

/// The same bits where `ctx`'s adapter compiles variants alike, else the same to f32 rounding.
fn assert_same_arithmetic(
    ctx: &GpuContext,
    a: &(StepStats, Vec<Vec<f32>>),
    b: &(StepStats, Vec<Vec<f32>>),
    what: &str,
) {
    if variants_compile_alike(ctx) {
        return assert_same_bits(a, b, what);
    }
    let stats = |s: &StepStats| [s.loss, s.objective, s.grad_norm];
    for (x, y) in stats(&a.0).iter().zip(stats(&b.0)) {
        assert!(
            (x - y).abs() <= 1e-5 * y.abs(),
            "{what}: statistics {:?} vs {:?}",
            a.0,
            b.0
        );
    }
    for (name, (x, y)) in OUTPUTS.iter().zip(a.1.iter().zip(&b.1)) {
        assert_close(x, y, &format!("{what}: {name}"));
    }
}

#[test]
fn two_dimensional_grids_chunked_reductions_and_storage_weights_give_the_same_bits() {
    let plan = FlowPlan::new(FlowConfig::new(4, None, Arch::Mera, 2, 6, 3).unwrap());
    let row_size = 2 * (4 + 2 * 6 * 3) + 2;
    // One workgroup per dimension: every dispatch of more than 64 invocations goes 2D.
    let two_d = GpuOptions {
        max_workgroups_per_dim: Some(1),
        ..GpuOptions::default()
    };
    // No step fits a uniform binding: the weights are bound as storage.
    let storage = GpuOptions {
        uniform_weights_bytes: Some(0),
        ..GpuOptions::default()
    };
    let shape = |accumulate: bool| GpuOptions {
        accumulate_gradients: Some(accumulate),
        ..GpuOptions::default()
    };
    // The 6 coupling steps of a layer in 6 dispatches, or in groups of 4 and 2.
    let steps = |accumulate: bool, n: usize| GpuOptions {
        steps_per_dispatch: Some(n),
        ..shape(accumulate)
    };
    // Each gradient shape, forced, with the variants that must give its bits; the factor shape
    // with its sums in place and in slices.
    let factors = |slices: Option<usize>| {
        let f = |o: GpuOptions| GpuOptions {
            accumulate_gradients: Some(false),
            reduce_slice_rows: slices,
            ..o
        };
        (
            f(GpuOptions::default()),
            vec![
                f(two_d.clone()),
                // A factor buffer of 100 rows: the 64 x 4 rows of a layer in 3 chunks.
                f(GpuOptions {
                    row_budget_bytes: Some(100 * 4 * row_size as u64),
                    ..GpuOptions::default()
                }),
                f(storage.clone()),
                f(steps(false, 1)),
                f(steps(false, 4)),
            ],
        )
    };
    let groups = [
        (
            shape(true),
            vec![
                two_d.clone(),
                storage.clone(),
                steps(true, 1),
                steps(true, 4),
            ],
        ),
        factors(None),
        factors(Some(SLICE_ROWS)),
    ];
    for obj in [
        Objective::PLAIN,
        Objective {
            symmetric: true,
            sym_reg: 0.25,
        },
    ] {
        for (base, variants) in &groups {
            let expected = run(&context(base.clone()), &plan, obj);
            for opts in variants {
                assert!(forces_something(opts, &plan), "{opts:?} forces nothing");
                let ctx = context(opts.clone());
                let got = run(&ctx, &plan, obj);
                let what = format!("{opts:?} {obj:?}");
                match opts.uniform_weights_bytes {
                    // Weights bound as storage: another compiled variant.
                    Some(_) => assert_same_arithmetic(&ctx, &got, &expected, &what),
                    None => assert_same_bits(&got, &expected, &what),
                }
            }
        }
    }
}

#[test]
fn both_gradient_shapes_agree() {
    let plan = FlowPlan::new(FlowConfig::new(4, None, Arch::Mera, 2, 6, 3).unwrap());
    let shape = |accumulate: bool, slices: Option<usize>| {
        context(GpuOptions {
            accumulate_gradients: Some(accumulate),
            reduce_slice_rows: slices,
            ..GpuOptions::default()
        })
    };
    for obj in [
        Objective::PLAIN,
        Objective {
            symmetric: true,
            sym_reg: 0.25,
        },
    ] {
        let (s_acc, acc) = run(&shape(true, None), &plan, obj);
        // The factor shape with its sums in place, and in slices.
        for slices in [None, Some(SLICE_ROWS)] {
            let (s_fac, fac) = run(&shape(false, slices), &plan, obj);
            let forward = |s: &StepStats| (s.loss, s.loss_stderr, s.objective, s.objective_stderr);
            assert_eq!(
                forward(&s_acc),
                forward(&s_fac),
                "{obj:?}: the forward statistics do not depend on the shape"
            );
            let rel = (s_acc.grad_norm - s_fac.grad_norm).abs() / s_fac.grad_norm;
            assert!(
                rel < 1e-5,
                "{obj:?} {slices:?}: gradient norms {s_acc:?} vs {s_fac:?}"
            );
            // The same sums in another order: f32 rounding only.
            let (g_acc, g_fac) = (&acc[0], &fac[0]);
            let scale = g_fac.iter().fold(0f32, |m, g| m.max(g.abs()));
            for (p, (a, f)) in g_acc.iter().zip(g_fac).enumerate() {
                assert!(
                    (a - f).abs() <= 1e-5 * scale,
                    "{obj:?} {slices:?}: gradient {p}: accumulated {a} vs factors {f} (largest {scale})"
                );
            }
            // dz does not depend on the gradient shape, which is another compiled variant.
            let what = format!("{obj:?} {slices:?}: dz");
            match variants_compile_alike(&shape(true, None)) {
                true => assert_eq!(acc[1], fac[1], "{what}"),
                false => assert_close(&fac[1], &acc[1], &what),
            }
        }
    }
}

/// The device-memory budget: a training step's buffers are counted, later steps allocate
/// nothing more, a dropped step gives its memory back (so stages built one after another, as
/// a batch ramp or `bench` builds them, fit a budget of one), and under a budget below one step
/// the buffer that would pass it is refused (by name, with the flag to change) before it is
/// created.
#[test]
fn the_memory_budget_counts_every_storage_buffer_and_refuses_the_one_past_it() {
    let plan = FlowPlan::new(FlowConfig::new(4, None, Arch::Mera, 2, 8, 2).unwrap());
    let target = IsingTarget::new(4, 0.44).unwrap();
    // A fresh plain training stage of the plan on `ctx`.
    let build = |ctx: &GpuContext| {
        TrainStep::new(
            ctx,
            plan.clone(),
            &params::init(&plan, 1),
            &params::masks(&plan, 1),
            &target,
            BATCH,
            Objective::PLAIN,
            AdamConfig::default(),
            1,
        )
    };
    let ctx = context(GpuOptions::default());
    let before = ctx.allocated_bytes();
    let mut step = build(&ctx).unwrap();
    let built = ctx.allocated_bytes();
    let one_step = built - before;
    assert!(one_step > 0);
    for t in 0..3 {
        step.step(&ctx, t).unwrap();
    }
    assert_eq!(
        ctx.allocated_bytes(),
        built,
        "steps allocated device memory"
    );
    drop(step);
    assert_eq!(
        ctx.allocated_bytes(),
        before,
        "a dropped step kept its memory"
    );

    let exact = context(GpuOptions {
        memory_limit: Some(before + one_step),
        ..GpuOptions::default()
    });
    for round in 0..3 {
        let mut step = build(&exact).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(step.step(&exact, round).unwrap().is_finite());
    }

    let small = context(GpuOptions {
        memory_limit: Some(before + one_step / 2),
        ..GpuOptions::default()
    });
    let err = build(&small)
        .err()
        .expect("a budget of half the need is refused")
        .to_string();
    assert!(
        err.contains("--memory-limit") && err.contains("reduce --"),
        "{err}"
    );
    assert_eq!(
        small.allocated_bytes(),
        before,
        "a refused stage kept memory"
    );

    // A refusal advises shrinking what holds most of the memory, whichever buffer came last.
    let advice = neuralrg_gpu::gpu::SizeAdvice::default();
    let tight = context(GpuOptions {
        memory_limit: Some(before + 4_000),
        ..GpuOptions::default()
    });
    for (most, last, said) in [
        ("samples", "params", advice.batch),
        ("params", "samples", advice.flow),
    ] {
        let held = tight.storage::<f32>(most, 900).unwrap();
        let err = tight.storage::<f32>(last, 200).err().unwrap().to_string();
        assert!(err.ends_with(said), "{err}");
        drop(held);
    }
    assert_eq!(tight.allocated_bytes(), before);
}

/// A flow whose coupling kernels would run more loop iterations per invocation than the
/// adapter allows (llvmpipe stops every thread at 65,535; forced here with a budget below one
/// step's) is refused when its stages are built, in one typed error naming the flags to change.
#[test]
fn a_flow_beyond_the_loop_budget_is_refused_naming_the_flags() {
    use neuralrg_gpu::flow::cost;
    use neuralrg_gpu::gpu::GpuError;
    let plan = FlowPlan::new(FlowConfig::new(4, None, Arch::Mera, 2, 8, 2).unwrap());
    let budget = cost::coupling_step_loops(8, 2) - 1;
    let ctx = context(GpuOptions {
        loop_budget: Some(budget),
        ..GpuOptions::default()
    });
    let err = TrainStep::new(
        &ctx,
        plan.clone(),
        &params::init(&plan, 1),
        &params::masks(&plan, 1),
        &IsingTarget::new(4, 0.44).unwrap(),
        BATCH,
        Objective::PLAIN,
        AdamConfig::default(),
        1,
    )
    .err()
    .expect("a flow beyond the loop budget was built");
    assert!(
        matches!(&err, GpuError::LoopBudget { limit, .. } if *limit == budget),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("--hidden") && message.contains("--mlp-layers"),
        "{message}"
    );
}
