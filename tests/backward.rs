//! Training gradients: the f64 twin against central finite differences, and the GPU against the
//! twin (parameter and input gradients, plain, symmetric and regularised objectives).

mod common;

use neuralrg_gpu::flow::{params, Arch, FlowConfig, FlowPlan};
use neuralrg_gpu::physics::IsingTarget;
use neuralrg_gpu::reference::backward::loss_and_grads;
use neuralrg_gpu::train::Objective;

use common::cases::OBJECTIVES;

fn small_plan(l: usize) -> FlowPlan {
    FlowPlan::new(FlowConfig::new(l, None, Arch::Mera, 2, 3, 2).unwrap())
}

fn random_params(plan: &FlowPlan, seed: u64) -> Vec<f64> {
    let mut p = params::init(plan, seed);
    params::perturb(&mut p, 0.3, seed);
    common::to_f64(&p)
}

#[test]
fn twin_gradients_equal_central_finite_differences() {
    let plan = small_plan(4);
    let target = IsingTarget::new(4, 0.44).unwrap();
    let masks = params::masks(&plan, 3);
    let p = random_params(&plan, 11);
    let batch = 2;
    let z = common::random_vec(5, batch * 16, 1.5);
    for obj in OBJECTIVES {
        let g = loss_and_grads(&plan, &p, &masks, &target, &z, obj);
        let f = |p: &[f64], z: &[f64]| loss_and_grads(&plan, p, &masks, &target, z, obj).objective;
        let h = 1e-5;
        let fd: Vec<f64> = (0..p.len())
            .map(|i| {
                let (mut pp, mut pm) = (p.to_vec(), p.to_vec());
                pp[i] += h;
                pm[i] -= h;
                (f(&pp, &z) - f(&pm, &z)) / (2.0 * h)
            })
            .collect();
        let e = common::rel_err(&g.grads, &fd);
        assert!(e < 1e-6, "{obj:?}: parameter gradients rel err {e}");
        // The full z-derivative is dz - a c z (dz holds ln N(z) fixed).
        let c = 1.0 / batch as f64;
        let full: Vec<f64> = (0..z.len())
            .map(|i| g.dz[i] - g.a[i / 16] * c * z[i])
            .collect();
        let fdz: Vec<f64> = (0..z.len())
            .map(|i| {
                let (mut zp, mut zm) = (z.clone(), z.clone());
                zp[i] += h;
                zm[i] -= h;
                (f(&p, &zp) - f(&p, &zm)) / (2.0 * h)
            })
            .collect();
        let e = common::rel_err(&full, &fdz);
        assert!(e < 1e-6, "{obj:?}: latent gradients rel err {e}");
    }
}

use neuralrg_gpu::reference::adam::adam_step;
use neuralrg_gpu::train::{AdamConfig, TrainStep};

fn train_step(
    plan: &FlowPlan,
    p: &[f64],
    masks: &[u32],
    target: &IsingTarget,
    batch: usize,
    obj: Objective,
    adam: AdamConfig,
) -> (std::sync::Arc<neuralrg_gpu::gpu::GpuContext>, TrainStep) {
    let ctx = common::gpu();
    let step = TrainStep::new(
        &ctx,
        plan.clone(),
        &common::to_f32(p),
        masks,
        target,
        batch,
        obj,
        adam,
        1,
    )
    .unwrap();
    (ctx, step)
}

#[test]
fn gpu_gradients_match_the_twin_at_l_4_and_8_and_odd_widths() {
    // (L, hidden, MLP layers): hidden 6 is not a multiple of the reduction's 4 x 4 tiles.
    for (l, hidden, mlp_layers) in [(4, 8, 2), (8, 8, 2), (4, 6, 3)] {
        let plan =
            FlowPlan::new(FlowConfig::new(l, None, Arch::Mera, 4, hidden, mlp_layers).unwrap());
        let target = IsingTarget::new(l, 0.44).unwrap();
        let masks = params::masks(&plan, 4);
        // Rounded to f32 first, so the twin sees exactly the GPU's inputs.
        let p = common::to_f64(&common::to_f32(&random_params(&plan, 21 + l as u64)));
        let batch = 3;
        let z = common::to_f64(&common::to_f32(&common::random_vec(8, batch * l * l, 1.5)));
        for obj in OBJECTIVES {
            let (ctx, step) = train_step(
                &plan,
                &p,
                &masks,
                &target,
                batch,
                obj,
                AdamConfig::default(),
            );
            let stats = step.gradients_for(&ctx, &common::to_f32(&z)).unwrap();
            let twin = loss_and_grads(&plan, &p, &masks, &target, &z, obj);
            assert!(
                (stats.loss - twin.loss).abs() < 1e-4 * twin.loss.abs(),
                "L={l} {obj:?}: loss {} vs {}",
                stats.loss,
                twin.loss
            );
            assert!((stats.objective - twin.objective).abs() < 1e-4 * twin.objective.abs());
            let grads = common::to_f64(&ctx.read(step.grad()).unwrap());
            let e = common::rel_err(&grads, &twin.grads);
            assert!(e < 1e-3, "L={l} {obj:?}: parameter gradients rel err {e}");
            let dz = common::to_f64(&ctx.read(step.dz()).unwrap());
            let e = common::rel_err(&dz, &twin.dz);
            assert!(e < 1e-3, "L={l} {obj:?}: latent gradients rel err {e}");
            let norm = twin.grads.iter().map(|g| g * g).sum::<f64>().sqrt();
            assert!(
                (stats.grad_norm - norm).abs() < 1e-3 * norm,
                "grad norm {} vs {norm}",
                stats.grad_norm
            );
        }
    }
}

#[test]
fn gpu_adam_matches_the_twin() {
    let plan = small_plan(4);
    let target = IsingTarget::new(4, 0.44).unwrap();
    let masks = params::masks(&plan, 2);
    let p0 = common::to_f64(&common::to_f32(&random_params(&plan, 5)));
    for adam in [
        AdamConfig {
            lr: 1e-3,
            ..AdamConfig::default()
        },
        AdamConfig {
            lr: 0.01,
            weight_decay: 0.1,
            clip_grad: 0.05,
            ..AdamConfig::default()
        },
    ] {
        let (ctx, mut step) = train_step(&plan, &p0, &masks, &target, 4, Objective::PLAIN, adam);
        let mut p = p0.clone();
        let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for t in 0..3 {
            step.step(&ctx, t).unwrap();
            let g = common::to_f64(&ctx.read(step.grad()).unwrap());
            // The clipping case must clip: the gradient is longer than the clip norm.
            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!(
                adam.clip_grad == 0.0 || norm > 2.0 * adam.clip_grad,
                "norm {norm}"
            );
            adam_step(&adam, t + 1, &mut p, &mut m, &mut v, &g);
            // Compare, then continue the twin from the GPU's state so errors do not compound.
            let gp = common::to_f64(&ctx.read(&step.flow.params).unwrap());
            let gm = common::to_f64(&ctx.read(step.moments().0).unwrap());
            let gv = common::to_f64(&ctx.read(step.moments().1).unwrap());
            assert!(common::rel_err(&gp, &p) < 1e-5, "{adam:?} step {t}: params");
            assert!(common::rel_err(&gm, &m) < 1e-5, "{adam:?} step {t}: m");
            assert!(common::rel_err(&gv, &v) < 1e-4, "{adam:?} step {t}: v");
            (p, m, v) = (gp, gm, gv);
        }
    }
}
