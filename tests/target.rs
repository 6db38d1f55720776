//! The Ising target: its f64 twin against dense linear algebra and finite differences, the GPU
//! kernel against the twin, and -ln Z of eq. (7) against direct numerical integration.

mod common;

use neuralrg_gpu::gpu::GpuOptions;
use neuralrg_gpu::physics::ising::ln_cosh;
use neuralrg_gpu::physics::{IsingTarget, Lattice, Target};
use neuralrg_gpu::reference::{dense, target as twin};

const BETAS: [f64; 3] = [0.3, neuralrg_gpu::physics::exact::BETA_C, 0.6];

/// Dense A = K + alpha I built from the bond list, independent of the Fourier diagonalisation.
fn dense_a(t: &IsingTarget) -> Vec<f64> {
    let n = t.n_sites();
    let mut a = vec![0.0; n * n];
    for (i, j) in Lattice::new(t.lattice.l).bonds() {
        a[i * n + j] += t.beta;
        a[j * n + i] += t.beta;
    }
    for i in 0..n {
        a[i * n + i] += t.alpha;
    }
    a
}

#[test]
fn ln_det_a_equals_the_dense_determinant() {
    for l in [4, 6] {
        for beta in BETAS {
            let t = IsingTarget::new(l, beta).unwrap();
            let want = dense::ln_abs_det(&dense_a(&t), t.n_sites());
            assert!(
                (t.ln_det_a - want).abs() < 1e-10 * want.abs().max(1.0),
                "L={l} beta={beta}"
            );
        }
    }
}

#[test]
fn twin_log_prob_equals_the_dense_formula() {
    for l in [3, 4, 6] {
        let t = IsingTarget::new(l, 0.44).unwrap();
        let n = t.n_sites();
        let x = common::random_vec(l as u64, n, 2.5);
        let y = dense::solve(&dense_a(&t), n, &x).unwrap();
        let want: f64 = x
            .iter()
            .zip(&y)
            .map(|(a, b)| ln_cosh(*a) - 0.5 * a * b)
            .sum();
        let (lp, grad) = twin::log_prob_and_grad(&t, &x);
        assert!(
            (lp - want).abs() < 1e-10 * want.abs(),
            "L={l}: {lp} vs {want}"
        );
        let want_grad: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a.tanh() - b).collect();
        assert!(common::rel_err(&grad, &want_grad) < 1e-10);
    }
}

#[test]
fn twin_gradient_equals_central_finite_differences() {
    let t = IsingTarget::new(4, 0.44).unwrap();
    let x = common::random_vec(7, t.n_sites(), 2.0);
    let (_, grad) = twin::log_prob_and_grad(&t, &x);
    let h = 1e-5;
    let fd: Vec<f64> = (0..x.len())
        .map(|i| {
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += h;
            m[i] -= h;
            (twin::log_prob(&t, &p) - twin::log_prob(&t, &m)) / (2.0 * h)
        })
        .collect();
    assert!(common::rel_err(&fd, &grad) < 1e-6);
}

#[test]
fn gpu_log_prob_and_gradient_match_the_twin() {
    // A Hartley pass carries up to 16 outputs per invocation: L = 20 leaves a last tile past the
    // line's end, L = 32 two whole tiles; batches not a multiple of 4 leave idle lanes. The
    // second context, at most two workgroups per dimension, puts both kernels on a grid of two
    // dimensions (hartley: 4 quads x 20 lines x 2 tiles = 160 invocations, three workgroups).
    let ctx = common::gpu();
    let small_grid = common::gpu_with(&GpuOptions {
        max_workgroups_per_dim: Some(2),
        ..GpuOptions::default()
    });
    let cases = [(4, 5), (8, 3), (5, 2), (20, 3), (32, 2)];
    for (ctx, (l, batch)) in cases
        .iter()
        .map(|c| (ctx.clone(), *c))
        .chain([(small_grid, (20, 16))])
    {
        for beta in BETAS {
            let t = IsingTarget::new(l, beta).unwrap();
            let n = t.n_sites();
            let x = common::random_vec(100 + l as u64, batch * n, 2.5);
            let xs: Vec<f64> = common::to_f64(&common::to_f32(&x)); // what the GPU sees
            let xbuf = ctx.storage_from("x", &common::to_f32(&x)).unwrap();
            let stage = t.stage(&ctx, &xbuf, batch).unwrap();
            ctx.submit("target", &stage.dispatches().collect::<Vec<_>>())
                .unwrap();
            let lp = common::to_f64(&ctx.read(&stage.log_pi).unwrap());
            let grad = common::to_f64(&ctx.read(&stage.grad).unwrap());
            for s in 0..batch {
                let xs = &xs[s * n..(s + 1) * n];
                let (want_lp, want_grad) = twin::log_prob_and_grad(&t, xs);
                // ln pi is a difference of two sums that can nearly cancel: measure the error
                // relative to the size of the terms, as f32 rounding does.
                let y = twin::apply_a_inverse(&t, xs);
                let scale: f64 = xs
                    .iter()
                    .zip(&y)
                    .map(|(a, b)| ln_cosh(*a) + 0.5 * (a * b).abs())
                    .sum();
                let e = (lp[s] - want_lp).abs() / scale;
                assert!(
                    e < 1e-5,
                    "L={l} beta={beta} sample {s}: ln pi {} vs {want_lp}",
                    lp[s]
                );
                let eg = common::rel_err(&grad[s * n..(s + 1) * n], &want_grad);
                assert!(
                    eg < 1e-5,
                    "L={l} beta={beta} sample {s}: gradient rel err {eg}"
                );
            }
        }
    }
}

/// -ln Z of eq. (7) by direct integration at L = 2 (N = 4): with A = C C^T,
/// Z = sqrt(det A) * int du exp(-|u|^2 / 2) prod_i cosh((C u)_i), by the trapezoid rule,
/// which converges exponentially for this smooth, Gaussian-decaying integrand.
#[test]
fn neg_ln_z_of_the_continuous_target_equals_direct_integration() {
    for beta in [0.3, 0.6] {
        let t = IsingTarget::new(2, beta).unwrap();
        let a = dense_a(&t);
        let n = 4;
        // Cholesky factor C (lower).
        let mut c = [0.0; 16];
        for i in 0..n {
            for j in 0..=i {
                let s: f64 =
                    a[i * n + j] - (0..j).map(|k| c[i * n + k] * c[j * n + k]).sum::<f64>();
                c[i * n + j] = if i == j { s.sqrt() } else { s / c[j * n + j] };
            }
        }
        let (h, m) = (0.3, 45i32); // nodes u = k h, |k| <= m: box [-13.5, 13.5]
        let nodes: Vec<f64> = (-m..=m).map(|k| k as f64 * h).collect();
        let mut z = 0.0;
        for &u0 in &nodes {
            for &u1 in &nodes {
                for &u2 in &nodes {
                    for &u3 in &nodes {
                        let u = [u0, u1, u2, u3];
                        let mut w = (-0.5 * u.iter().map(|v| v * v).sum::<f64>()).exp();
                        for i in 0..n {
                            let xi: f64 = (0..=i).map(|k| c[i * n + k] * u[k]).sum();
                            w *= xi.cosh();
                        }
                        z += w;
                    }
                }
            }
        }
        let ln_z = (z * h.powi(4)).ln() + 0.5 * t.ln_det_a;
        let want = t.neg_ln_z();
        assert!(
            (-ln_z - want).abs() < 1e-9 * want.abs(),
            "beta={beta}: {} vs {want}",
            -ln_z
        );
    }
}
