//! f64 twin of the target stage (`shaders/target_transform.wgsl`, `shaders/target_log_prob.wgsl`):
//! ln pi(x) and its gradient through the same separable Hartley transforms.

use crate::physics::ising::{cas_table, ln_cosh, IsingTarget};
use crate::physics::Target;

/// One separable Hartley pass over an L x L field, along x (`axis` 0) or y (`axis` 1), optionally
/// scaled elementwise: the shader's `hartley`.
pub fn hartley(src: &[f64], l: usize, cas: &[f64], axis: usize, scale: Option<&[f64]>) -> Vec<f64> {
    (0..l * l)
        .map(|i| {
            let (r, c) = (i / l, i % l);
            let acc: f64 = (0..l)
                .map(|j| match axis {
                    0 => src[r * l + j] * cas[c * l + j],
                    _ => src[j * l + c] * cas[r * l + j],
                })
                .sum();
            acc * scale.map_or(1.0, |s| s[i])
        })
        .collect()
}

/// A^{-1} x for one sample.
pub fn apply_a_inverse(target: &IsingTarget, x: &[f64]) -> Vec<f64> {
    apply_a_power(target, x, -1.0)
}

/// A^p x for one sample: A is diagonal in the Hartley basis, so A^p scales its modes by
/// lambda^p (p = 1/2 draws the correlated Gaussian noise of x given the spins).
pub fn apply_a_power(target: &IsingTarget, x: &[f64], power: f64) -> Vec<f64> {
    let l = target.lattice.l;
    let cas = cas_table(l);
    let n = target.n_sites() as f64;
    let scale: Vec<f64> = target
        .eigenvalues
        .iter()
        .map(|e| e.powf(power) / n)
        .collect();
    let t1 = hartley(x, l, &cas, 0, None);
    let t2 = hartley(&t1, l, &cas, 1, Some(&scale));
    let t3 = hartley(&t2, l, &cas, 1, None);
    hartley(&t3, l, &cas, 0, None)
}

/// ln pi(x) (unnormalised) and grad ln pi(x) = -A^{-1} x + tanh x, for one sample.
pub fn log_prob_and_grad(target: &IsingTarget, x: &[f64]) -> (f64, Vec<f64>) {
    let y = apply_a_inverse(target, x);
    let lp = x
        .iter()
        .zip(&y)
        .map(|(xi, yi)| ln_cosh(*xi) - 0.5 * xi * yi)
        .sum();
    let grad = x.iter().zip(&y).map(|(xi, yi)| xi.tanh() - yi).collect();
    (lp, grad)
}

/// ln pi(x) alone.
pub fn log_prob(target: &IsingTarget, x: &[f64]) -> f64 {
    log_prob_and_grad(target, x).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::lattice::Lattice;

    /// A^p through the Hartley basis against the dense A = K + alpha I (K: beta on every bond of
    /// the torus): A^1 x equals it, A^{1/2} twice equals A, and A^{-1} undoes A.
    #[test]
    fn powers_of_a_match_the_dense_matrix() {
        let (l, beta) = (4, 0.37);
        let target = IsingTarget::new(l, beta).unwrap();
        let x: Vec<f64> = (0..l * l)
            .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let mut dense = x.iter().map(|v| target.alpha * v).collect::<Vec<f64>>();
        for (i, j) in Lattice::new(l).bonds() {
            dense[i] += beta * x[j];
            dense[j] += beta * x[i];
        }
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(u, v)| (u - v).abs() < 1e-12);
        assert!(close(&apply_a_power(&target, &x, 1.0), &dense));
        let half = apply_a_power(&target, &x, 0.5);
        assert!(close(&apply_a_power(&target, &half, 0.5), &dense));
        assert!(close(&apply_a_inverse(&target, &dense), &x));
    }
}
