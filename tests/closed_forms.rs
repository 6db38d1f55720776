//! Numbers with a closed form: the free energy of the identity flow and its standard error, and
//! the ln 2 that symmetrisation recovers from a flow collapsed onto one sign.

mod common;

use neuralrg_gpu::flow::{params, Arch, FlowConfig, FlowPlan};
use neuralrg_gpu::physics::ising::ln_cosh;
use neuralrg_gpu::physics::{IsingTarget, Target};
use neuralrg_gpu::sample::{self, Model};
use neuralrg_gpu::train::{AdamConfig, Objective, TrainStep};

/// E f(z) for z ~ N(0, 1), by Simpson's rule on [-12, 12].
fn gauss_mean(f: impl Fn(f64) -> f64) -> f64 {
    let (n, a, b) = (24_000, -12.0, 12.0);
    let h = (b - a) / n as f64;
    let g = |z: f64| f(z) * (-0.5 * z * z).exp() / std::f64::consts::TAU.sqrt();
    let inner: f64 = (1..n)
        .map(|i| g(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 })
        .sum();
    (g(a) + inner + g(b)) * h / 3.0
}

/// Mean and variance of the per-sample term ln N(z) - ln pi(z) of the identity flow (x = z):
///   T = -N/2 ln 2 pi + z^T B z - sum_i ln cosh z_i,  B = (A^-1 - I) / 2,
///   E T = -N/2 ln 2 pi + tr B - N E ln cosh z,
///   Var T = 2 tr B^2 + N Var ln cosh z - 2 tr B Cov(z^2, ln cosh z)   (B is diagonal in the
///   Fourier basis; only its diagonal meets the single-site terms).
fn identity_flow_moments(t: &IsingTarget) -> (f64, f64) {
    let n = t.n_sites() as f64;
    let b: Vec<f64> = t
        .eigenvalues
        .iter()
        .map(|e| (1.0 / e - 1.0) / 2.0)
        .collect();
    let tr_b: f64 = b.iter().sum();
    let tr_b2: f64 = b.iter().map(|v| v * v).sum();
    let m1 = gauss_mean(ln_cosh);
    let m2 = gauss_mean(|z| ln_cosh(z).powi(2));
    let zl = gauss_mean(|z| z * z * ln_cosh(z));
    let mean = -0.5 * n * std::f64::consts::TAU.ln() + tr_b - n * m1;
    let var = 2.0 * tr_b2 + n * (m2 - m1 * m1) - 2.0 * tr_b * (zl - m1);
    (mean, var)
}

#[test]
fn the_identity_flow_has_its_closed_form_free_energy_and_error() {
    let ctx = common::gpu();
    let l = 4;
    // The identity flow does not depend on the MLPs: the smallest keep the test fast.
    let config = common::small_config(l, 2, 1);
    let model = Model::init(&ctx, &config, 0.0).unwrap();
    let (mean, var) = identity_flow_moments(&model.target);
    // The value quoted for L = 4 at beta_c: -N/2 ln 2 pi - N/2 + tr(A^-1)/2 - N E ln cosh z.
    assert!((mean - -19.18).abs() < 0.01, "closed form {mean}");
    let m = 32_768;
    let e = sample::estimate(&ctx, &model, m, 4096, 7, |_| {}).unwrap();
    let sigma = (var / m as f64).sqrt();
    assert!(
        (e.free_energy - mean).abs() < 4.0 * sigma,
        "F = {} +/- {}, closed form {mean} +/- {sigma}",
        e.free_energy,
        e.stderr
    );
    assert!(
        (e.stderr / sigma - 1.0).abs() < 0.05,
        "standard error {} vs closed form {sigma}",
        e.stderr
    );
}

#[test]
fn symmetrisation_recovers_exactly_ln_2_from_a_collapsed_flow() {
    // The identity flow with every coupling step's t shifted by +6: x = z + (a large positive
    // shift), so q(-x) is negligible and ln q_sym(x) = ln q(x) - ln 2 for every sample.
    let ctx = common::gpu();
    let plan = FlowPlan::new(FlowConfig::new(4, None, Arch::Mera, 2, 5, 2).unwrap());
    let lay = plan.layout;
    let mut p = params::init(&plan, 1);
    for layer in &plan.layers {
        for k in 0..lay.couplings {
            let b_out = layer.param_offset
                + k * lay.coupling_size()
                + lay.t_offset()
                + lay.out_offset()
                + 2 * lay.hidden;
            p[b_out] = 6.0;
            p[b_out + 1] = 6.0;
        }
    }
    let target = IsingTarget::new(4, 0.44).unwrap();
    let batch = 64;
    let sym = Objective {
        symmetric: true,
        sym_reg: 0.0,
    };
    let step = TrainStep::new(
        &ctx,
        plan.clone(),
        &p,
        &params::masks(&plan, 1),
        &target,
        batch,
        sym,
        AdamConfig::default(),
        1,
    )
    .unwrap();
    let z = common::to_f32(&common::random_vec(3, batch * 16, 2.0));
    let s = step.gradients_for(&ctx, &z).unwrap();
    let gap = s.loss - s.objective;
    assert!(
        (gap - std::f64::consts::LN_2).abs() < 1e-4 * s.loss.abs(),
        "plain {} - symmetric {} = {gap}, not ln 2",
        s.loss,
        s.objective
    );
    // The same per-sample shift leaves the spread alone.
    assert!((s.loss_stderr - s.objective_stderr).abs() < 1e-4 * s.loss_stderr);
}

/// Importance sampling with the identity flow recovers the exact -ln Z at a high temperature,
/// where q = N(0, 1) still overlaps pi (an effective sample size of thousands), within four
/// jackknife errors, and is sharper than the variational bound, which stays above -ln Z.
#[test]
fn importance_sampling_recovers_the_exact_free_energy() {
    let ctx = common::gpu();
    let config = neuralrg_gpu::config::RunConfig {
        beta: 0.1,
        ..common::small_config(4, 2, 1)
    };
    let model = Model::init(&ctx, &config, 0.0).unwrap();
    let e = sample::estimate(&ctx, &model, 65_536, 8192, 11, |_| {}).unwrap();
    let exact = e.neg_ln_z_exact;
    assert!(e.ess > 1000.0, "{e:?}");
    assert!(
        (e.free_energy_is - exact).abs() < 4.0 * e.free_energy_is_err,
        "{e:?}"
    );
    assert!(e.free_energy_is_err < e.stderr, "{e:?}");
    assert!(e.free_energy > exact + 100.0 * e.stderr, "{e:?}");
    assert!(e.rel_error_is.abs() < 0.01 * e.rel_error, "{e:?}");
}
