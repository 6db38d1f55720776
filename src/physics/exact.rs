//! Exact partition function of the 2D Ising model on a finite L x L torus.
//!
//! Conventions: J = 1, no field, `Z = sum_s exp(beta * sum_<ij> s_i s_j)` over the
//! 2N bonds obtained by linking every site to its right and its down neighbour with
//! periodic wrap-around (for L = 2 each neighbouring pair is therefore bonded twice).
//!
//! [`ln_z_ising`] is Kaufman's (1949) closed form, evaluated entirely in logarithms so
//! it stays finite for large L. [`ln_z_ising_enumeration`] and
//! [`ln_z_ising_transfer_matrix`] are slow, independent test oracles for small L.

use crate::logspace::{ln_2cosh, log_sum_exp};
use std::f64::consts::PI;

/// The relative error of a free energy `f` against the exact `neg_ln_z` (-ln Z), signed: the
/// figure every command reports.
pub fn relative_error(f: f64, neg_ln_z: f64) -> f64 {
    (f - neg_ln_z) / neg_ln_z.abs()
}

/// Critical coupling of the infinite square lattice, `ln(1 + sqrt 2) / 2`.
pub const BETA_C: f64 = 0.440_686_793_509_771_5;

/// ln Z of the 2D Ising model on an L x L torus (periodic both ways), J = 1, no field,
/// Z = sum_s exp(beta * sum_{bonds <ij>} s_i s_j), with 2N bonds: every site bonds to its
/// right and its down neighbour (so for L = 2 each pair is bonded twice, which is what the
/// torus formula gives).
///
/// Kaufman's formula for an L x L torus, with K = beta and N = L^2:
///
/// ```text
/// Z = 1/2 (2 sinh 2K)^(N/2) (Z1 + Z2 + Z3 + Z4)
/// Z1 = prod_{r=0}^{L-1} 2 cosh(L g_{2r+1} / 2)    Z2 = prod 2 sinh(L g_{2r+1} / 2)
/// Z3 = prod_{r=0}^{L-1} 2 cosh(L g_{2r} / 2)      Z4 = prod 2 sinh(L g_{2r} / 2)
/// cosh g_k = cosh 2K coth 2K - cos(pi k / L)  (k >= 1, g_k > 0)
/// g_0 = 2K + ln tanh K = 2 (K - K*)           (signed: negative for K < K_c)
/// ```
///
/// Valid for every L >= 2, even or odd, and beta > 0 (the prefactor is singular at
/// beta = 0, where ln Z = N ln 2). Panics if `l < 2`.
pub fn ln_z_ising(l: usize, beta: f64) -> f64 {
    assert!(l >= 2, "ln_z_ising needs L >= 2, got {l}");
    let lf = l as f64;
    if beta >= FROZEN_BETA {
        // Deep in the ordered phase sinh 2K overflows (at K ~ 355); there Z = 2 e^{2 N K}
        // (1 + N e^{-8K} + ...): two ground states, and N single flips that break 4 bonds each.
        // At K = 20 the next term is below 1e-62 relative for any N the program accepts, and
        // Kaufman's form agrees to rounding (tested).
        let n = lf * lf;
        return 2.0 * n * beta + std::f64::consts::LN_2 + (n * (-8.0 * beta).exp()).ln_1p();
    }
    let s2k = (2.0 * beta).sinh();
    let gamma = |k: usize| -> f64 {
        if k == 0 {
            // Keep the sign: g_0 changes sign at beta_c, which flips the sign of Z4.
            2.0 * beta + beta.tanh().ln()
        } else {
            // cosh g_k - 1, rewritten without cancellation so acosh stays accurate near 1.
            let t = (s2k - 1.0).powi(2) / s2k + 2.0 * (PI * k as f64 / (2.0 * lf)).sin().powi(2);
            (t + (t * (t + 2.0)).sqrt()).ln_1p()
        }
    };

    // (ln |Z_i|, sign of Z_i); only Z4 can be negative, through g_0.
    let mut terms = [(0.0, 1.0); 4];
    for r in 0..l {
        let y_odd = 0.5 * lf * gamma(2 * r + 1);
        let y_even = 0.5 * lf * gamma(2 * r);
        terms[0].0 += ln_2cosh(y_odd);
        terms[1].0 += ln_abs_2sinh(y_odd);
        terms[2].0 += ln_2cosh(y_even);
        terms[3].0 += ln_abs_2sinh(y_even);
        if y_even < 0.0 {
            terms[3].1 = -terms[3].1;
        }
    }

    // Signed log-sum-exp. Z1 > 0 is always finite, so the maximum is finite; a term with
    // ln|Z_i| = -inf (Z4 exactly at beta_c) contributes exp(-inf) = 0.
    let max = terms.iter().map(|t| t.0).fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms
        .iter()
        .map(|&(ln_abs, sign)| sign * (ln_abs - max).exp())
        .sum();
    -std::f64::consts::LN_2 + 0.5 * lf * lf * (2.0 * s2k).ln() + max + sum.ln()
}

/// From here on ln_z_ising uses the low-temperature expansion instead of Kaufman's products.
const FROZEN_BETA: f64 = 20.0;

/// The exact energy per site <H> / N (H = -sum_<ij> s_i s_j) of the L x L periodic model:
/// -(1/N) d ln Z / d beta, by a fourth-order central difference of [`ln_z_ising`] (relative
/// accuracy about 1e-9, and 1e-3 as beta goes down to 1e-6; exact enough for any Monte Carlo
/// comparison).
///
/// The step is as large as accuracy allows, because ln Z's rounding error (about 1e-16 |ln Z|)
/// divided by the step must stay small beside the derivative: near beta = 0, where the
/// derivative is only about 2 N beta and ln Z = N ln 2 + N beta^2 + O(beta^4) is what the
/// stencil differentiates exactly, a step of beta / 4 (the stencil stays at beta > 0); deep in
/// the ordered phase, where ln Z ~ 2 N beta is nearly linear, 1e-3 beta. With 1e-3 beta
/// throughout, beta = 1e-6 came out 1.8x too large at L = 16, and beta = 1e6 below the ground
/// state.
pub fn energy_per_site(l: usize, beta: f64) -> f64 {
    let h = (0.25 * beta).min(1e-3 * beta.max(1.0));
    let f = |b: f64| ln_z_ising(l, b);
    let d =
        (8.0 * (f(beta + h) - f(beta - h)) - (f(beta + 2.0 * h) - f(beta - 2.0 * h))) / (12.0 * h);
    // Within the model's range: rounding must not put it below the ground state.
    (-d / (l * l) as f64).clamp(-2.0, 2.0)
}

/// ln|2 sinh y| without overflow for large |y|; -inf at y = 0.
fn ln_abs_2sinh(y: f64) -> f64 {
    let a = y.abs();
    a + (-(-2.0 * a).exp_m1()).ln()
}

/// Test oracle: ln Z by brute-force enumeration of all 2^N states (L <= 4 only; panics
/// otherwise). States are binned by bond sum, then combined with a log-sum-exp.
pub fn ln_z_ising_enumeration(l: usize, beta: f64) -> f64 {
    assert!(
        (2..=4).contains(&l),
        "enumeration needs 2 <= L <= 4, got {l}"
    );
    let n = l * l;
    let site = |x: usize, y: usize| (y % l) * l + x % l;
    // counts[e + 2N] = number of states whose bond sum is e, e in -2N..=2N.
    let mut counts = vec![0u64; 4 * n + 1];
    for state in 0u32..(1 << n) {
        let spin = |i: usize| if state >> i & 1 == 1 { 1i64 } else { -1 };
        let mut e = 0i64;
        for y in 0..l {
            for x in 0..l {
                e += spin(site(x, y)) * (spin(site(x + 1, y)) + spin(site(x, y + 1)));
            }
        }
        counts[(e + 2 * n as i64) as usize] += 1;
    }
    let ln_weights: Vec<f64> = counts
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c > 0)
        .map(|(i, &c)| (c as f64).ln() + beta * (i as f64 - 2.0 * n as f64))
        .collect();
    log_sum_exp(&ln_weights)
}

/// Test oracle: ln Z = ln Tr T^L with the row-to-row transfer matrix T (2^L x 2^L,
/// L <= 8; panics otherwise). T is taken in its symmetric form, each row's horizontal
/// bonds split half-and-half between the two neighbouring factors. The power is formed by
/// plain multiplication, rescaling by the largest entry after every step so nothing
/// overflows; the logs of the scales are accumulated.
pub fn ln_z_ising_transfer_matrix(l: usize, beta: f64) -> f64 {
    assert!(
        (2..=8).contains(&l),
        "transfer matrix needs 2 <= L <= 8, got {l}"
    );
    let dim = 1usize << l;
    let spin = |row: usize, i: usize| if row >> i & 1 == 1 { 1.0 } else { -1.0 };
    let horizontal = |a: usize| {
        (0..l)
            .map(|i| spin(a, i) * spin(a, (i + 1) % l))
            .sum::<f64>()
    };
    let vertical = |a: usize, b: usize| (0..l).map(|i| spin(a, i) * spin(b, i)).sum::<f64>();

    let exponents: Vec<f64> = (0..dim * dim)
        .map(|ab| {
            let (a, b) = (ab / dim, ab % dim);
            beta * (0.5 * horizontal(a) + vertical(a, b) + 0.5 * horizontal(b))
        })
        .collect();
    // Factor exp(shift) out of every entry of T, i.e. L * shift out of T^L.
    let shift = exponents.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let t: Vec<f64> = exponents.iter().map(|e| (e - shift).exp()).collect();

    let mut ln_scale = l as f64 * shift;
    let mut power = t.clone();
    for _ in 1..l {
        power = mat_mul(&power, &t, dim);
        let max = power.iter().copied().fold(0.0, f64::max);
        power.iter_mut().for_each(|x| *x /= max);
        ln_scale += max.ln();
    }
    let trace: f64 = (0..dim).map(|i| power[i * dim + i]).sum();
    ln_scale + trace.ln()
}

/// Dense row-major `a * b` for square `dim x dim` matrices (i-k-j order for locality).
fn mat_mul(a: &[f64], b: &[f64], dim: usize) -> Vec<f64> {
    let mut c = vec![0.0; dim * dim];
    for i in 0..dim {
        let c_row = &mut c[i * dim..(i + 1) * dim];
        for k in 0..dim {
            let a_ik = a[i * dim + k];
            let b_row = &b[k * dim..(k + 1) * dim];
            c_row
                .iter_mut()
                .zip(b_row)
                .for_each(|(c, b)| *c += a_ik * b);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The energy from the derivative of Kaufman's ln Z against enumeration's bond sums.
    #[test]
    fn energy_per_site_matches_enumeration() {
        for beta in [0.1, BETA_C, 0.7] {
            let h = 1e-4;
            // Enumeration's own derivative, by a difference much finer than the function's.
            let e_enum = -(ln_z_ising_enumeration(4, beta + h)
                - ln_z_ising_enumeration(4, beta - h))
                / (2.0 * h)
                / 16.0;
            let e = energy_per_site(4, beta);
            assert!((e - e_enum).abs() < 1e-6, "beta {beta}: {e} vs {e_enum}");
        }
        // Deep in the ordered phase: all bonds satisfied, e = -2, and never below.
        assert!((energy_per_site(8, 30.0) + 2.0).abs() < 1e-9);
        for l in [4, 16] {
            let e = energy_per_site(l, 1e6);
            assert!((-2.0..-2.0 + 1e-12).contains(&e), "L = {l}: {e}");
        }
        // Near infinite temperature, e = -2 tanh beta to O(beta^3): the derivative of a
        // nearly flat ln Z (it was 1.8x too large at L = 16, beta = 1e-6).
        for (l, beta) in [(4, 1e-6), (16, 1e-6), (16, 1e-4), (64, 1e-5)] {
            let e = energy_per_site(l, beta);
            let want = -2.0 * f64::tanh(beta);
            assert!(
                (e / want - 1.0).abs() < 2e-3,
                "L = {l}, beta {beta}: {e} vs {want}"
            );
        }
    }

    // Both sides of T_c, including just either side of it, where g_0 changes sign.
    const BETAS: [f64; 9] = [
        0.05,
        0.1,
        0.3,
        BETA_C - 1e-7,
        BETA_C,
        BETA_C + 1e-7,
        0.6,
        1.0,
        2.0,
    ];

    fn rel_err(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn beta_c_constant() {
        assert!((BETA_C - 0.5 * 2f64.sqrt().ln_1p()).abs() < 1e-16);
    }

    #[test]
    fn kaufman_matches_enumeration() {
        for l in 2..=4 {
            for beta in BETAS {
                let (exact, brute) = (ln_z_ising(l, beta), ln_z_ising_enumeration(l, beta));
                assert!(
                    rel_err(exact, brute) < 1e-10,
                    "L={l} beta={beta}: {exact} vs {brute}"
                );
            }
        }
    }

    #[test]
    fn kaufman_matches_transfer_matrix() {
        for l in 2..=8 {
            for beta in BETAS {
                let (exact, tm) = (ln_z_ising(l, beta), ln_z_ising_transfer_matrix(l, beta));
                assert!(
                    rel_err(exact, tm) < 1e-10,
                    "L={l} beta={beta}: {exact} vs {tm}"
                );
            }
        }
    }

    #[test]
    fn oracles_agree() {
        for l in 2..=4 {
            for beta in BETAS {
                let (tm, brute) = (
                    ln_z_ising_transfer_matrix(l, beta),
                    ln_z_ising_enumeration(l, beta),
                );
                assert!(
                    rel_err(tm, brute) < 1e-12,
                    "L={l} beta={beta}: {tm} vs {brute}"
                );
            }
        }
    }

    #[test]
    fn zero_coupling_limits() {
        // beta -> 0: Z -> 2^N. L = 2 at beta = 0 by enumeration is exactly 4 ln 2.
        let n = 9.0;
        assert!((ln_z_ising(3, 1e-9) - n * std::f64::consts::LN_2).abs() < 1e-6);
        assert!((ln_z_ising_enumeration(2, 0.0) - 4.0 * std::f64::consts::LN_2).abs() < 1e-14);
    }

    #[test]
    fn large_lattice_finite_and_increasing() {
        let l = 256;
        let n = (l * l) as f64;
        let values: Vec<f64> = [0.3, BETA_C, 0.6]
            .iter()
            .map(|&b| ln_z_ising(l, b))
            .collect();
        for v in &values {
            assert!(v.is_finite());
            // ln Z >= N ln 2 for a ferromagnet (Jensen with <sum s_i s_j>_0 = 0).
            assert!(*v / n > std::f64::consts::LN_2);
        }
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        // Low temperature: ln Z / N -> 2 beta (two ground states, energy -2N).
        assert!((ln_z_ising(l, 2.0) / n - 4.0).abs() < 1e-3);
    }

    #[test]
    fn large_lattice_approaches_onsager_at_beta_c() {
        // Onsager at beta_c: ln Z / N = ln sqrt 2 + 2 G / pi, G = Catalan's constant.
        // The finite-size excess is ~0.64 / N here, so 1e-4 is a loose bound.
        const CATALAN: f64 = 0.915_965_594_177_219;
        let onsager = 0.5 * std::f64::consts::LN_2 + 2.0 * CATALAN / PI;
        let per_site = ln_z_ising(256, BETA_C) / (256.0 * 256.0);
        assert!((per_site - onsager).abs() < 1e-4, "{per_site} vs {onsager}");
    }

    #[test]
    fn finite_for_all_sizes_and_temperatures() {
        let extremes = [1e-6, 1e-3, 19.999, 20.0, 355.0, 1e3, 1e6];
        for l in [2, 3, 5, 16, 31, 32, 33, 64, 127, 255, 256, 4096] {
            for beta in BETAS.into_iter().chain(extremes) {
                assert!(ln_z_ising(l, beta).is_finite(), "L={l} beta={beta}");
                let t = crate::physics::IsingTarget::new(l, beta).unwrap();
                assert!(
                    crate::physics::Target::neg_ln_z(&t).is_finite(),
                    "-ln Z at L={l} beta={beta}"
                );
            }
        }
    }

    #[test]
    fn the_low_temperature_form_continues_kaufmans() {
        for l in [2, 3, 8, 33, 256] {
            let below = ln_z_ising(l, FROZEN_BETA * (1.0 - 1e-12));
            let at = ln_z_ising(l, FROZEN_BETA);
            assert!(rel_err(at, below) < 1e-11, "L={l}: {below} -> {at}");
        }
    }
}
