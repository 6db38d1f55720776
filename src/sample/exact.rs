//! Independent samples of pi itself, for lattices Wolff can equilibrate: spins s from the Wolff
//! cluster algorithm, then x given s, which is Gaussian, N(A s, A) (after eq. 7: pi(s, x) is
//! proportional to exp(-x^T A^{-1} x / 2 + s . x)). Exact whatever the flow, and nearly
//! uncorrelated, as estimators that assume independent samples (the KSG mutual information)
//! need.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::physics::{wolff, IsingTarget};
use crate::reference::target::apply_a_power;
use crate::streams;

/// `count` configurations x ([count, N], row-major sites, as the device takes them) drawn from pi
/// at the target's beta.
pub fn draw(target: &IsingTarget, count: usize, seed: u64) -> Vec<f32> {
    let l = target.lattice.l;
    let n = l * l;
    let chain_seed = streams::host(seed, streams::Host::Wolff).random::<u64>();
    let spins = wolff::configurations(l, target.beta, count, 2, 200, chain_seed);
    let mut noise = streams::host(seed, streams::Host::ExactNoise);
    let mut xs = Vec::with_capacity(count * n);
    for s in spins.chunks_exact(n) {
        let s: Vec<f64> = s.iter().map(|v| *v as f64).collect();
        let xi: Vec<f64> = (0..n).map(|_| noise.sample(StandardNormal)).collect();
        let mean = apply_a_power(target, &s, 1.0);
        let spread = apply_a_power(target, &xi, 0.5);
        xs.extend(mean.iter().zip(&spread).map(|(m, d)| (m + d) as f32));
    }
    xs
}

#[cfg(test)]
mod tests {
    use crate::physics::exact::BETA_C;
    use crate::physics::IsingTarget;
    use crate::sample::observables::measure;

    /// The structure factor measured from these x (spins drawn again given x) equals the exact
    /// one of the Ising model: x carries the spins' distribution.
    #[test]
    fn configurations_carry_the_ising_distribution() {
        let target = IsingTarget::new(4, BETA_C).unwrap();
        let xs = super::draw(&target, 20_000, 3);
        let s: Vec<f64> = xs
            .chunks_exact(16)
            .map(|x| measure(x, 4, &[0.5; 16]).structure_factor)
            .collect();
        let n = s.len() as f64;
        let mean = s.iter().sum::<f64>() / n;
        let sd = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        // Exact <m^2> at L = 4, beta_c (enumeration): 0.761359.
        assert!(
            (mean - 0.761359).abs() < 4.0 * sd / n.sqrt() * 1.5,
            "{mean} +/- {}",
            sd / n.sqrt()
        );
    }
}
