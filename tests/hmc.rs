//! HMC on the device: the potentials and forces against the f64 twin (itself against central
//! finite differences), and the leapfrog's reversibility, in latent and physical space.

mod common;

use neuralrg_gpu::config::RunConfig;
use neuralrg_gpu::flow::{params, FlowPlan};
use neuralrg_gpu::reference::hmc as twin;
use neuralrg_gpu::sample::hmc::{Hmc, Leapfrog, Space};
use neuralrg_gpu::sample::Model;

const CHAINS: usize = 3;
const N: usize = 16;

/// A small L = 4 flow with perturbed parameters (a non-trivial map), and its twin's parameters
/// and masks.
fn model_config() -> RunConfig {
    common::small_config(4, 3, 2)
}

fn twin_params(config: &RunConfig) -> (FlowPlan, Vec<f64>, Vec<u32>) {
    let plan = FlowPlan::new(config.flow_config().unwrap());
    let seed = config.train.seed;
    let mut p = params::init(&plan, seed);
    params::perturb(&mut p, 0.3, seed);
    let masks = params::masks(&plan, seed);
    (plan, common::to_f64(&p), masks)
}

/// The twin's potential and gradient of one chain.
fn twin_u(config: &RunConfig, space: Space, q: &[f64]) -> (f64, Vec<f64>) {
    let target = neuralrg_gpu::physics::IsingTarget::new(4, config.beta).unwrap();
    match space {
        Space::Physical => twin::physical(&target, q),
        Space::Latent => {
            let (plan, p, masks) = twin_params(config);
            twin::latent(&plan, &p, &masks, &target, q)
        }
    }
}

#[test]
fn twin_gradients_equal_central_finite_differences() {
    let config = model_config();
    let q = common::random_vec(3, N, 1.2);
    for space in [Space::Latent, Space::Physical] {
        let (_, grad) = twin_u(&config, space, &q);
        let h = 1e-5;
        let fd: Vec<f64> = (0..N)
            .map(|i| {
                let mut a = q.clone();
                let mut b = q.clone();
                a[i] += h;
                b[i] -= h;
                (twin_u(&config, space, &a).0 - twin_u(&config, space, &b).0) / (2.0 * h)
            })
            .collect();
        let err = common::rel_err(&grad, &fd);
        assert!(
            err < 1e-6,
            "{space:?}: twin gradient vs finite differences {err}"
        );
    }
}

#[test]
fn device_potentials_and_forces_match_the_twin() {
    let ctx = common::gpu();
    let config = model_config();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let q = common::random_vec(4, CHAINS * N, 1.2);
    for space in [Space::Latent, Space::Physical] {
        let hmc = Hmc::new(&ctx, &model, space, CHAINS, 0.1, 3, 7).unwrap();
        let (u, grad) = hmc
            .potential_and_gradient(&ctx, &common::to_f32(&q))
            .unwrap();
        for c in 0..CHAINS {
            let (tu, tg) = twin_u(&config, space, &q[c * N..(c + 1) * N]);
            assert!(
                (u[c] as f64 - tu).abs() < 1e-4 * tu.abs().max(1.0),
                "{space:?} chain {c}: U {} vs twin {tu}",
                u[c]
            );
            let g = common::to_f64(&grad[c * N..(c + 1) * N]);
            let err = common::rel_err(&g, &tg);
            assert!(err < 1e-4, "{space:?} chain {c}: force error {err}");
        }
    }
}

/// Forward n steps, negate the momenta, n steps more: back at the start; and the Hamiltonians
/// and end points match the twin's leapfrog.
#[test]
fn leapfrog_is_reversible_and_matches_the_twin() {
    let ctx = common::gpu();
    let config = model_config();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let z0 = common::to_f32(&common::random_vec(5, CHAINS * N, 1.0));
    let p0 = common::to_f32(&common::random_vec(6, CHAINS * N, 1.0));
    let (eps, steps) = (0.05, 8);
    for space in [Space::Latent, Space::Physical] {
        let mut hmc = Hmc::new(&ctx, &model, space, CHAINS, eps, steps, 7).unwrap();
        let Leapfrog {
            q: q1,
            p: p1,
            hamiltonians: h1,
        } = hmc.integrate_from(&ctx, &z0, &p0).unwrap();
        let back: Vec<f32> = p1.iter().map(|v| -v).collect();
        let Leapfrog {
            q: q2,
            p: p2,
            hamiltonians: h2,
        } = hmc.integrate_from(&ctx, &q1, &back).unwrap();
        let err_q = common::rel_err(&common::to_f64(&q2), &common::to_f64(&z0));
        let err_p = common::rel_err(
            &common::to_f64(&p2.iter().map(|v| -v).collect::<Vec<_>>()),
            &common::to_f64(&p0),
        );
        assert!(err_q < 1e-4 && err_p < 1e-4, "{space:?}: {err_q} {err_p}");
        // Energy is conserved to second order in the step size: the same trajectory in steps
        // half as long changes H about a quarter as much (a first-order error, half as much).
        // Checked in physical space, where these steps are in that regime; the perturbed flow
        // makes the latent potential too stiff for them (its dH, equal to the twin's, is not
        // yet monotone in the step size), and there the end H is held to the twin's below.
        let dh = |split: usize| {
            let h = Hmc::new(
                &ctx,
                &model,
                space,
                CHAINS,
                eps / split as f64,
                split * steps,
                7,
            )
            .unwrap()
            .integrate_from(&ctx, &z0, &p0)
            .unwrap()
            .hamiltonians;
            (0..CHAINS)
                .map(|c| h[CHAINS + c] - h[c])
                .collect::<Vec<_>>()
        };
        if space == Space::Physical {
            let (fine, finer) = (dh(2), dh(4));
            for c in 0..CHAINS {
                assert!(
                    finer[c].abs() < 0.35 * fine[c].abs() + 1e-6,
                    "chain {c}: dH {} at eps / 2, {} at eps / 4",
                    fine[c],
                    finer[c]
                );
            }
        }
        // Exactly reversed.
        for c in 0..CHAINS {
            assert!((h1[CHAINS + c] - h2[c]).abs() < 1e-3 * h1[c].abs().max(1.0));
            let q = common::to_f64(&z0[c * N..(c + 1) * N]);
            let p = common::to_f64(&p0[c * N..(c + 1) * N]);
            let (tq, tp) = twin::leapfrog(&q, &p, eps, steps, |x| twin_u(&config, space, x).1);
            let e = common::rel_err(&common::to_f64(&q1[c * N..(c + 1) * N]), &tq);
            let ep = common::rel_err(&common::to_f64(&p1[c * N..(c + 1) * N]), &tp);
            assert!(e < 1e-4 && ep < 1e-3, "{space:?} chain {c}: {e} {ep}");
            let th = twin::hamiltonian(twin_u(&config, space, &q).0, &p);
            assert!(
                ((h1[c] as f64) - th).abs() < 1e-4 * th.abs().max(1.0),
                "{space:?}"
            );
            // The end Hamiltonian, at the twin's end point.
            let th_end = twin::hamiltonian(twin_u(&config, space, &tq).0, &tp);
            assert!(
                ((h1[CHAINS + c] as f64) - th_end).abs() < 1e-4 * th_end.abs().max(1.0),
                "{space:?} chain {c}: end H {} vs twin {th_end}",
                h1[CHAINS + c]
            );
        }
        // A zero step leaves the state as it was.
        hmc.set_step_size(&ctx, 0.0);
        let still = hmc.integrate_from(&ctx, &z0, &p0).unwrap();
        assert_eq!((still.q, still.p), (z0.clone(), p0.clone()), "{space:?}");
    }
}

/// The device's observables of the chains equal the host twin's, with the same spins drawn
/// from the device stream (latent space: of x = g(z)).
#[test]
fn device_observables_match_the_twin() {
    use neuralrg_gpu::reference::rng;
    use neuralrg_gpu::sample::observables::measure;
    let ctx = common::gpu();
    let config = model_config();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let z = common::to_f32(&common::random_vec(8, CHAINS * N, 1.5));
    for space in [Space::Latent, Space::Physical] {
        let mut hmc = Hmc::new(&ctx, &model, space, CHAINS, 0.1, 2, 9).unwrap();
        ctx.write(&hmc.state, &z);
        let x = hmc.configurations(&ctx).unwrap();
        let got = hmc.observe(&ctx, 5).unwrap();
        let bits = rng::bits(9, neuralrg_gpu::streams::OBSERVE, 5, CHAINS * N);
        for c in 0..CHAINS {
            let u: Vec<f32> = bits[c * N..(c + 1) * N]
                .iter()
                .map(|b| rng::uniform01(*b))
                .collect();
            let want = measure(&x[c * N..(c + 1) * N], 4, &u).values();
            for k in 0..3 {
                assert!(
                    (got[3 * c + k] as f64 - want[k]).abs() < 1e-5,
                    "{space:?} chain {c} observable {k}: {} vs {}",
                    got[3 * c + k],
                    want[k]
                );
            }
        }
    }
}

/// Past 65,535 chains the per-chain kernels run on a two-dimensional grid: forced here with a
/// tiny workgroup limit, the Hamiltonians and end points are the same bits.
#[test]
fn two_dimensional_chain_grids_give_the_same_bits() {
    use neuralrg_gpu::gpu::GpuOptions;
    let config = model_config();
    let z0 = common::to_f32(&common::random_vec(5, CHAINS * N, 1.0));
    let p0 = common::to_f32(&common::random_vec(6, CHAINS * N, 1.0));
    let run = |opts: GpuOptions| {
        let ctx = common::gpu_with(&opts);
        let model = Model::init(&ctx, &config, 0.3).unwrap();
        let hmc = Hmc::new(&ctx, &model, Space::Latent, CHAINS, 0.05, 3, 7).unwrap();
        hmc.integrate_from(&ctx, &z0, &p0).unwrap()
    };
    let forced = run(GpuOptions {
        max_workgroups_per_dim: Some(2),
        ..GpuOptions::default()
    });
    assert_eq!(forced, run(GpuOptions::default()));
}

/// The device's accept/reject decisions are the twin's (`reference::hmc::accept`) on the same
/// Hamiltonians and the same uniforms from the device stream, and exactly the accepted chains
/// move.
#[test]
fn decisions_match_the_twin() {
    use neuralrg_gpu::reference::rng;
    let ctx = common::gpu();
    let config = model_config();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let (chains, seed) = (64, 11);
    // A step size that accepts some chains and rejects others.
    let mut hmc = Hmc::new(&ctx, &model, Space::Physical, chains, 0.6, 4, seed).unwrap();
    let (mut accepted, mut rejected) = (0, 0);
    for t in 0..4 {
        let before = hmc.configurations(&ctx).unwrap();
        let count = hmc.trajectory(&ctx, t).unwrap();
        let after = hmc.configurations(&ctx).unwrap();
        let (ham, decided) = hmc.last_decisions(&ctx).unwrap();
        let bits = rng::bits(seed, neuralrg_gpu::streams::HMC_ACCEPT, t, chains);
        assert_eq!(count, decided.iter().filter(|d| **d != 0).count());
        for c in 0..chains {
            let (h0, h1) = (ham[c] as f64, ham[chains + c] as f64);
            let moved = after[c * N..(c + 1) * N] != before[c * N..(c + 1) * N];
            assert_eq!(moved, decided[c] != 0, "trajectory {t} chain {c}");
            // f32 on the device, f64 here: a uniform within rounding of the bound may go
            // either way.
            let u = rng::uniform01(bits[c]) as f64;
            if (u - (h0 - h1).exp()).abs() < 1e-5 {
                continue;
            }
            assert_eq!(
                decided[c] != 0,
                twin::accept(h0, h1, bits[c]),
                "trajectory {t} chain {c}: H {h0} -> {h1}, u {u}"
            );
            if decided[c] != 0 {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
    }
    assert!(
        accepted > 0 && rejected > 0,
        "the test needs both outcomes: {accepted} accepted, {rejected} rejected"
    );
}

/// A trajectory whose Hamiltonian overflows (a step size of 10^6 drives x past f32's range, so
/// H ends infinite or NaN) is rejected by every chain: the chains keep their finite states, and
/// the sampler's report warns that they never moved.
#[test]
fn diverging_trajectories_are_rejected() {
    let ctx = common::gpu();
    let config = model_config();
    let model = Model::init(&ctx, &config, 0.3).unwrap();
    let chains = 8;
    let mut hmc = Hmc::new(&ctx, &model, Space::Physical, chains, 1e6, 4, 3).unwrap();
    let before = hmc.configurations(&ctx).unwrap();
    let ends = hmc
        .integrate_from(&ctx, &before, &vec![1.0; chains * N])
        .unwrap();
    assert!(
        ends.hamiltonians[chains..].iter().all(|h| !h.is_finite()),
        "the test needs trajectories that diverge: {:?}",
        ends.hamiltonians
    );
    for t in 0..3 {
        assert_eq!(hmc.trajectory(&ctx, t).unwrap(), 0, "trajectory {t}");
    }
    let after = hmc.configurations(&ctx).unwrap();
    assert!(after.iter().all(|v| v.is_finite()));
    assert_eq!(after, before);
    // Its report says that the chains never moved.
    use neuralrg_gpu::sample::chains::{run_hmc, SamplerReport, Schedule};
    let schedule = Schedule {
        thermalise: 0,
        measure: 3,
        target_acceptance: None,
    };
    let run = run_hmc(&ctx, &mut hmc, &schedule, |_, _| {}).unwrap();
    let report = SamplerReport::from_chains("physical HMC", &model, &run);
    let warning = report.warning.unwrap_or_default();
    assert!(warning.contains("no proposal was accepted"), "{warning}");
}
