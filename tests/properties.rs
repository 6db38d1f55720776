//! Property tests over generated flows (every architecture, lattices 4 and 8 and one at 16,
//! every depth, hidden widths 1 to 128, 1 to 4 MLP layers, 1 to 4 couplings, parameters far from
//! the identity): the GPU against the f64 twin in both directions, the GPU gradients of every
//! objective through `TrainStep::step` as training runs it, and the twin against central finite
//! differences. Cases come from a fixed seed; a failure prints its shrunk configuration.

mod common;

use common::cases::{cases, check, Case, SHAPES};
use neuralrg_gpu::flow::{cost, params, Direction, Flow, FlowPass};
use neuralrg_gpu::gpu::rng::RngStage;
use neuralrg_gpu::gpu::{GpuContext, GpuError};
use neuralrg_gpu::physics::IsingTarget;
use neuralrg_gpu::reference::adam::adam_step;
use neuralrg_gpu::reference::backward::loss_and_grads;
use neuralrg_gpu::reference::flow as twin;
use neuralrg_gpu::streams;
use neuralrg_gpu::train::{AdamConfig, TrainStep};
use proptest::prelude::*;

/// max |a - b| over max |b| (or 1e-30).
fn rel(a: &[f64], b: &[f64]) -> f64 {
    common::rel_err(a, b)
}

/// Log-determinants: 1e-4 relative, or 1e-5 absolute where a near-identity flow's log-det is a
/// small sum of cancelling terms (f32 rounds each term at about 1e-7 of its size).
fn log_dets_agree(a: &[f64], b: &[f64]) -> bool {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= 1e-4 * scale + 1e-5)
}

fn diff(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x - y).collect()
}

/// Whether the adapter caps loop iterations below what a kernel of this case needs (llvmpipe):
/// then the stage must refuse the case with a `LoopBudget` error instead of computing garbage.
fn over_budget(ctx: &GpuContext, loops: u64) -> bool {
    ctx.loop_budget.is_some_and(|limit| loops > limit)
}

fn refused<T>(r: Result<T, GpuError>) -> Result<(), TestCaseError> {
    match r {
        Err(GpuError::LoopBudget { .. }) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!(
            "refused with the wrong error: {e}"
        ))),
        Ok(_) => Err(TestCaseError::fail(
            "a case beyond the loop budget was not refused",
        )),
    }
}

/// One GPU pass: (state after, log|det|, ln q).
fn gpu_pass(
    ctx: &GpuContext,
    flow: &Flow,
    input: &[f32],
    batch: usize,
    dir: Direction,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let state = ctx.storage_from("state", input).unwrap();
    let pass = FlowPass::new(ctx, flow, &state, batch, dir, false).unwrap();
    ctx.submit("flow", &pass.dispatches().collect::<Vec<_>>())
        .unwrap();
    (
        common::to_f64(&ctx.read(&state).unwrap()),
        common::to_f64(&ctx.read(&pass.log_det).unwrap()),
        common::to_f64(&ctx.read(&pass.ln_q).unwrap()),
    )
}

/// The twin of a batched pass: (outputs, log|det| per sample).
fn twin_pass(
    c: &Case,
    p: &[f64],
    masks: &[u32],
    input: &[f64],
    dir: Direction,
) -> (Vec<f64>, Vec<f64>) {
    let plan = c.plan();
    let n = c.lattice * c.lattice;
    let mut out = Vec::with_capacity(input.len());
    let mut lds = Vec::new();
    for s in input.chunks(n) {
        let (y, ld) = twin::pass(&plan, p, masks, s, dir, None);
        out.extend(y);
        lds.push(ld);
    }
    (out, lds)
}

/// The GPU flow against the twin in both directions: what the layers move (x - z, so a
/// near-identity flow cannot hide an error behind z), log|det|, ln q.
fn flow_matches_the_twin(c: &Case) -> Result<(), TestCaseError> {
    let ctx = common::shared_gpu();
    let plan = c.plan();
    let n = c.lattice * c.lattice;
    let p32 = c.params(&plan);
    let p = common::to_f64(&p32);
    let masks = params::masks(&plan, c.seed);
    let flow = Flow::new(&ctx, plan.clone(), &p32, &masks).unwrap();
    let z = common::to_f64(&common::to_f32(&common::random_vec(
        c.seed,
        c.batch * n,
        2.0,
    )));
    let (h, m) = (c.hidden as u64, c.mlp_layers as u64);
    if over_budget(&ctx, cost::coupling_step_loops(h, m)) {
        let state = ctx.storage_from("state", &common::to_f32(&z)).unwrap();
        return refused(FlowPass::new(
            &ctx,
            &flow,
            &state,
            c.batch,
            Direction::Generate,
            false,
        ));
    }

    let (x, ld, lq) = gpu_pass(
        &ctx,
        &flow,
        &common::to_f32(&z),
        c.batch,
        Direction::Generate,
    );
    let (xt, ldt) = twin_pass(c, &p, &masks, &z, Direction::Generate);
    let moved = rel(&diff(&x, &z), &diff(&xt, &z));
    prop_assert!(moved < 1e-4, "generation: x - z rel err {moved}");
    prop_assert!(
        diff(&xt, &z).iter().any(|d| d.abs() > 1e-3),
        "the flow must move samples"
    );
    prop_assert!(
        log_dets_agree(&ld, &ldt),
        "generation log-det {ld:?} vs {ldt:?}"
    );
    let lqt: Vec<f64> = z
        .chunks(n)
        .zip(&ldt)
        .map(|(zs, l)| twin::ln_normal(zs) - l)
        .collect();
    prop_assert!(rel(&lq, &lqt) < 1e-4, "generation ln q {lq:?} vs {lqt:?}");

    // Inference on the twin's x (rounded as the GPU sees it).
    let x32 = common::to_f32(&xt);
    let x64 = common::to_f64(&x32);
    let (zi, ldi, lqi) = gpu_pass(&ctx, &flow, &x32, c.batch, Direction::Infer);
    let (zit, ldit) = twin_pass(c, &p, &masks, &x64, Direction::Infer);
    let moved = rel(&diff(&zi, &x64), &diff(&zit, &x64));
    prop_assert!(moved < 1e-4, "inference: z - x rel err {moved}");
    prop_assert!(
        log_dets_agree(&ldi, &ldit),
        "inference log-det {ldi:?} vs {ldit:?}"
    );
    let lqit: Vec<f64> = zit
        .chunks(n)
        .zip(&ldit)
        .map(|(zs, l)| twin::ln_normal(zs) + l)
        .collect();
    prop_assert!(
        rel(&lqi, &lqit) < 1e-4,
        "inference ln q {lqi:?} vs {lqit:?}"
    );
    // And the two directions are each other's inverse: z comes back (x was rounded to f32,
    // which a deep flow's inverse amplifies; the twin comparisons above are the tight ones).
    let e = rel(&zi, &z);
    prop_assert!(e < 1e-3, "round trip rel err {e}");
    Ok(())
}

#[test]
fn gpu_flow_matches_the_twin_over_generated_architectures() {
    check(
        40,
        cases(vec![4, 8], SHAPES.to_vec(), 1),
        flow_matches_the_twin,
    );
}

#[test]
fn gpu_flow_matches_the_twin_at_l_16() {
    check(
        3,
        cases(vec![16], vec![(3, 3), (8, 2)], 1).prop_map(|c| Case {
            couplings: c.couplings.min(2),
            batch: 2,
            ..c
        }),
        flow_matches_the_twin,
    );
}

/// The sample standard error of the mean, as the loss stage computes it.
fn stderr(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let ss: f64 = v.iter().map(|a| (a - mean).powi(2)).sum();
    (ss / (n - 1.0).max(1.0) / n).sqrt()
}

/// One training step as `train` runs it (z from the device RNG, Adam applied) against the twin:
/// loss, objective and their standard errors, the parameter and latent gradients, the gradient
/// norm, and the updated parameters.
fn step_matches_the_twin(c: &Case) -> Result<(), TestCaseError> {
    let ctx = common::shared_gpu();
    let plan = c.plan();
    let n = c.lattice * c.lattice;
    let target = IsingTarget::new(c.lattice, 0.44).unwrap();
    let p32 = c.params(&plan);
    let p = common::to_f64(&p32);
    let masks = params::masks(&plan, c.seed);
    let adam = AdamConfig {
        lr: 1e-2,
        ..AdamConfig::default()
    };
    let step = TrainStep::new(
        &ctx,
        plan.clone(),
        &p32,
        &masks,
        &target,
        c.batch,
        c.objective,
        adam,
        c.seed,
    );
    let (h, m) = (c.hidden as u64, c.mlp_layers as u64);
    if over_budget(&ctx, cost::coupling_backward_loops(h, m)) {
        return refused(step);
    }
    let mut step = step.unwrap();
    let t = c.seed % 7;
    let stats = step.step(&ctx, t).unwrap();

    // The same draw, bit for bit: the device stream (seed, TRAIN, t).
    let zbuf = ctx.storage::<f32>("z", c.batch * n).unwrap();
    let mut rng = RngStage::normals(&ctx, &zbuf, c.seed, streams::TRAIN).unwrap();
    rng.set_step(&ctx, t);
    ctx.submit("z", &[&rng.dispatch]).unwrap();
    let z = common::to_f64(&ctx.read(&zbuf).unwrap());

    let tw = loss_and_grads(&plan, &p, &masks, &target, &z, c.objective);
    let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(1.0);
    prop_assert!(
        close(stats.loss, tw.loss, 1e-4),
        "loss {} vs {}",
        stats.loss,
        tw.loss
    );
    prop_assert!(
        close(stats.objective, tw.objective, 1e-4),
        "objective {} vs {}",
        stats.objective,
        tw.objective
    );
    let (se, seo) = (stderr(&tw.plain_terms), stderr(&tw.objective_terms));
    prop_assert!(
        (stats.loss_stderr - se).abs() <= 1e-3 * se + 1e-5,
        "loss stderr {} vs {se}",
        stats.loss_stderr
    );
    prop_assert!(
        (stats.objective_stderr - seo).abs() <= 1e-3 * seo + 1e-5,
        "objective stderr {} vs {seo}",
        stats.objective_stderr
    );
    let g = common::to_f64(&ctx.read(step.grad()).unwrap());
    let e = rel(&g, &tw.grads);
    prop_assert!(e < 1e-3, "parameter gradients rel err {e}");
    let dz = common::to_f64(&ctx.read(step.dz()).unwrap());
    let e = rel(&dz, &tw.dz);
    prop_assert!(e < 1e-3, "latent gradients rel err {e}");
    let norm = tw.grads.iter().map(|v| v * v).sum::<f64>().sqrt();
    prop_assert!(
        close(stats.grad_norm, norm, 1e-3),
        "grad norm {} vs {norm}",
        stats.grad_norm
    );

    let (mut pt, mut m, mut v) = (p.clone(), vec![0.0; p.len()], vec![0.0; p.len()]);
    adam_step(&adam, t + 1, &mut pt, &mut m, &mut v, &g);
    let pg = common::to_f64(&ctx.read(&step.flow.params).unwrap());
    prop_assert!(rel(&diff(&pg, &p), &diff(&pt, &p)) < 1e-3, "Adam update");
    Ok(())
}

#[test]
fn gpu_training_step_matches_the_twin_for_every_objective() {
    check(
        32,
        cases(vec![4, 8], SHAPES.to_vec(), 2),
        step_matches_the_twin,
    );
}

/// Central differences of the twin's objective along a few parameters and latent coordinates.
fn twin_matches_finite_differences(c: &Case) -> Result<(), TestCaseError> {
    let plan = c.plan();
    let n = c.lattice * c.lattice;
    let target = IsingTarget::new(c.lattice, 0.44).unwrap();
    let p = common::to_f64(&c.params(&plan));
    let masks = params::masks(&plan, c.seed);
    let z = common::random_vec(c.seed + 1, c.batch * n, 1.5);
    let f =
        |p: &[f64], z: &[f64]| loss_and_grads(&plan, p, &masks, &target, z, c.objective).objective;
    let g = loss_and_grads(&plan, &p, &masks, &target, &z, c.objective);
    let h = 1e-5;
    // Every parameter of the first coupling step's s and t MLPs would be many; a stride covers
    // every kind (weights, biases, scales) across the whole vector.
    let stride = (p.len() / 40).max(1);
    let picks: Vec<usize> = (0..p.len()).step_by(stride).chain([p.len() - 1]).collect();
    let fd: Vec<f64> = picks
        .iter()
        .map(|&i| {
            let (mut pp, mut pm) = (p.clone(), p.clone());
            pp[i] += h;
            pm[i] -= h;
            (f(&pp, &z) - f(&pm, &z)) / (2.0 * h)
        })
        .collect();
    let an: Vec<f64> = picks.iter().map(|&i| g.grads[i]).collect();
    let e = rel(&an, &fd);
    prop_assert!(
        e < 1e-6,
        "parameter gradients vs finite differences: rel err {e}"
    );
    // The full z-derivative is dz - a c z (dz holds ln N(z) fixed).
    let cb = 1.0 / c.batch as f64;
    let zpicks: Vec<usize> = (0..z.len()).step_by((z.len() / 8).max(1)).collect();
    let full: Vec<f64> = zpicks
        .iter()
        .map(|&i| g.dz[i] - g.a[i / n] * cb * z[i])
        .collect();
    let fdz: Vec<f64> = zpicks
        .iter()
        .map(|&i| {
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[i] += h;
            zm[i] -= h;
            (f(&p, &zp) - f(&p, &zm)) / (2.0 * h)
        })
        .collect();
    let e = rel(&full, &fdz);
    prop_assert!(
        e < 1e-6,
        "latent gradients vs finite differences: rel err {e}"
    );
    Ok(())
}

#[test]
fn twin_gradients_equal_finite_differences_over_generated_architectures() {
    check(
        8,
        cases(vec![4], vec![(1, 4), (3, 3), (5, 2), (7, 1)], 1),
        twin_matches_finite_differences,
    );
}

/// Wide hidden layers run in blocks of 8 units and a last block of the rest: one such shape
/// (two blocks of 8 and one of 4, two hidden-to-hidden layers) through both passes and a
/// training step, whatever the generated cases draw.
#[test]
fn wide_layers_in_blocks_match_the_twin() {
    let case = Case {
        lattice: 4,
        arch: neuralrg_gpu::flow::Arch::Mera,
        depth: 2,
        couplings: 2,
        hidden: 20,
        mlp_layers: 3,
        batch: 2,
        seed: 7,
        objective: common::cases::OBJECTIVES[0],
    };
    assert!(
        cost::hidden_block(20) == 8,
        "the case no longer has a partial block"
    );
    flow_matches_the_twin(&case).unwrap();
    step_matches_the_twin(&case).unwrap();
}
