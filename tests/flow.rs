//! The flow: GPU generation and inference against the f64 twin, round trips, exact log-Jacobians.

mod common;

use neuralrg_gpu::flow::{params, Arch, Direction, Flow, FlowConfig, FlowPass, FlowPlan};
use neuralrg_gpu::gpu::GpuContext;
use neuralrg_gpu::reference::{dense, flow as twin};

fn plan(l: usize, arch: Arch, couplings: usize, hidden: usize, mlp_layers: usize) -> FlowPlan {
    FlowPlan::new(FlowConfig::new(l, None, arch, couplings, hidden, mlp_layers).unwrap())
}

/// Initialised, then perturbed so that s and t are far from zero.
fn random_params(plan: &FlowPlan, seed: u64, sigma: f64) -> Vec<f32> {
    let mut p = params::init(plan, seed);
    params::perturb(&mut p, sigma, seed);
    p
}

/// Runs one pass on the GPU; returns (state after, log_det, ln_q).
fn run(
    ctx: &GpuContext,
    flow: &Flow,
    input: &[f32],
    batch: usize,
    dir: Direction,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let state = ctx.storage_from("state", input).unwrap();
    let pass = FlowPass::new(ctx, flow, &state, batch, dir, false).unwrap();
    ctx.submit("flow", &pass.dispatches().collect::<Vec<_>>())
        .unwrap();
    (
        ctx.read(&state).unwrap(),
        ctx.read(&pass.log_det).unwrap(),
        ctx.read(&pass.ln_q).unwrap(),
    )
}

#[test]
fn identity_initialisation_is_exactly_the_identity() {
    let ctx = common::gpu();
    let p = plan(8, Arch::Mera, 4, 8, 2);
    let z = common::to_f32(&common::random_vec(1, 3 * 64, 2.0));
    let flow = Flow::new(&ctx, p.clone(), &params::init(&p, 5), &params::masks(&p, 5)).unwrap();
    for dir in [Direction::Generate, Direction::Infer] {
        let (x, ld, _) = run(&ctx, &flow, &z, 3, dir);
        assert_eq!(x, z, "{dir:?}");
        assert!(ld.iter().all(|&v| v == 0.0), "{dir:?}: {ld:?}");
    }
    let pd: Vec<f64> = params::init(&p, 5).iter().map(|&v| v as f64).collect();
    let z64 = common::to_f64(&z[..64]);
    let (x, ld) = twin::generate(&p, &pd, &params::masks(&p, 5), &z64);
    assert_eq!(x, z64);
    assert_eq!(ld, 0.0);
}

#[test]
fn gpu_round_trips_at_l_4_8_16() {
    let ctx = common::gpu();
    for (l, arch) in [
        (4, Arch::Mera),
        (8, Arch::Mera),
        (16, Arch::Mera),
        (8, Arch::Tree),
        (8, Arch::Tebd),
    ] {
        let p = plan(l, arch, 4, 8, 2);
        let n = l * l;
        let batch = 4;
        let flow = Flow::new(
            &ctx,
            p.clone(),
            &random_params(&p, l as u64, 0.1),
            &params::masks(&p, 9),
        )
        .unwrap();
        let z = common::to_f32(&common::random_vec(2, batch * n, 2.0));
        let (x, ld_g, lq_g) = run(&ctx, &flow, &z, batch, Direction::Generate);
        let moved = common::rel_err(&common::to_f64(&x), &common::to_f64(&z));
        assert!(
            moved > 0.1,
            "perturbed parameters must move the samples (moved {moved})"
        );
        let (z_back, ld_i, lq_i) = run(&ctx, &flow, &x, batch, Direction::Infer);
        let e = common::rel_err(&common::to_f64(&z_back), &common::to_f64(&z));
        eprintln!(
            "L={l} {arch:?}: moved {moved:.3}, round-trip rel err {e:.2e}, log-det {}",
            ld_g[0]
        );
        assert!(e < 1e-5, "L={l} {arch:?}: g^-1(g(z)) != z, rel err {e}");
        let (x_again, _, _) = run(&ctx, &flow, &z_back, batch, Direction::Generate);
        let e = common::rel_err(&common::to_f64(&x_again), &common::to_f64(&x));
        assert!(e < 1e-5, "L={l} {arch:?}: g(g^-1(x)) != x, rel err {e}");
        for s in 0..batch {
            assert!(
                (ld_g[s] + ld_i[s]).abs() < 1e-4 * (1.0 + ld_g[s].abs()),
                "inverse log-det is not the negative"
            );
            assert!(
                (lq_g[s] - lq_i[s]).abs() < 1e-4 * (1.0 + lq_g[s].abs()),
                "ln q from z and from x differ"
            );
        }
    }
}

#[test]
fn gpu_matches_the_twin_at_l_4_and_8() {
    let ctx = common::gpu();
    for l in [4, 8] {
        let p = plan(l, Arch::Mera, 4, 8, 2);
        let n = l * l;
        let batch = 3;
        let pf = random_params(&p, 30 + l as u64, 0.2);
        let pd = common::to_f64(&pf);
        let masks = params::masks(&p, 3);
        let flow = Flow::new(&ctx, p.clone(), &pf, &masks).unwrap();
        let z = common::to_f32(&common::random_vec(3, batch * n, 2.0));
        let (x, ld, lq) = run(&ctx, &flow, &z, batch, Direction::Generate);
        let (zi, ldi, lqi) = run(&ctx, &flow, &x, batch, Direction::Infer);
        // In submissions of two rows, the last padded: the same bits as one batch.
        let rows = flow.infer_rows(&ctx, &x, 2).unwrap();
        assert_eq!(rows.z, zi, "L={l}: rows in pairs");
        assert_eq!(rows.ln_q, lqi, "L={l}: ln q in pairs");
        for s in 0..batch {
            let zs = common::to_f64(&z[s * n..(s + 1) * n]);
            let (want_x, want_ld) = twin::generate(&p, &pd, &masks, &zs);
            let e = common::rel_err(&common::to_f64(&x[s * n..(s + 1) * n]), &want_x);
            assert!(e < 1e-4, "L={l} sample {s}: x rel err {e}");
            let scale = want_ld.abs().max(1.0);
            assert!(
                (ld[s] as f64 - want_ld).abs() < 1e-4 * scale,
                "log-det {} vs {want_ld}",
                ld[s]
            );
            let want_lq = twin::ln_normal(&zs) - want_ld;
            assert!(
                (lq[s] as f64 - want_lq).abs() < 1e-4 * want_lq.abs(),
                "ln q {} vs {want_lq}",
                lq[s]
            );

            let xs = common::to_f64(&x[s * n..(s + 1) * n]);
            let (want_z, want_ldi) = twin::infer(&p, &pd, &masks, &xs);
            let e = common::rel_err(&common::to_f64(&zi[s * n..(s + 1) * n]), &want_z);
            assert!(e < 1e-4, "L={l} sample {s}: inferred z rel err {e}");
            assert!((ldi[s] as f64 - want_ldi).abs() < 1e-4 * want_ldi.abs().max(1.0));
            let want_lqi = twin::ln_q(&p, &pd, &masks, &xs);
            assert!((lqi[s] as f64 - want_lqi).abs() < 1e-4 * want_lqi.abs());
        }
    }
}

/// The twin's log|det dg/dz| against log|det| of the full 16 x 16 Jacobian by central differences.
#[test]
fn twin_log_det_equals_the_numerical_jacobian() {
    for arch in [Arch::Mera, Arch::Tree, Arch::Tebd] {
        let p = plan(4, arch, 4, 8, 2);
        let pd = common::to_f64(&random_params(&p, 77, 0.3));
        let masks = params::masks(&p, 77);
        let z = common::random_vec(4, 16, 1.5);
        let (_, ld) = twin::generate(&p, &pd, &masks, &z);
        let h = 1e-5;
        let mut jac = vec![0.0; 256];
        for j in 0..16 {
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[j] += h;
            zm[j] -= h;
            let (xp, _) = twin::generate(&p, &pd, &masks, &zp);
            let (xm, _) = twin::generate(&p, &pd, &masks, &zm);
            for i in 0..16 {
                jac[i * 16 + j] = (xp[i] - xm[i]) / (2.0 * h);
            }
        }
        let want = dense::ln_abs_det(&jac, 16);
        assert!(
            ld.abs() > 0.1,
            "{arch:?}: the test needs a non-trivial Jacobian (log-det {ld})"
        );
        assert!(
            (ld - want).abs() < 1e-6 * want.abs().max(1.0),
            "{arch:?}: {ld} vs {want}"
        );
        let (_, ld_inv) = twin::infer(&p, &pd, &masks, &twin::generate(&p, &pd, &masks, &z).0);
        assert!((ld + ld_inv).abs() < 1e-10);
    }
}
