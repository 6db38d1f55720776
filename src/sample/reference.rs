//! The reference the samplers are judged by: Wolff cluster Monte Carlo of the discrete Ising
//! model (`physics::wolff`), summarised like the samplers, with the exact energy beside it.

use std::time::Instant;

use crate::analysis::series::summarize;
use crate::physics::exact::energy_per_site;
use crate::physics::wolff;
use crate::streams;
use rand::Rng;

/// The `reference` command's result (its JSON object).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReferenceReport {
    pub lattice: usize,
    pub beta: f64,
    pub sweeps: usize,
    pub m2: f64,
    pub m2_err: f64,
    pub abs_m: f64,
    pub abs_m_err: f64,
    /// Energy per site, and the exact value from Kaufman's ln Z.
    pub energy: f64,
    pub energy_err: f64,
    pub energy_exact: f64,
    /// The largest integrated autocorrelation time of the three, in sweeps.
    pub tau_int: f64,
    pub seconds: f64,
}

/// `reference`'s default measured sweeps, and sweeps discarded first (also the Wolff run that
/// `hmc --compare` draws beside its chains).
pub const SWEEPS: usize = 10_000;
pub const THERMALISE: usize = 1000;

/// `sweeps` measured Wolff sweeps after `thermalise` (at least
/// [`wolff::CALIBRATION_SWEEPS`](crate::physics::wolff::CALIBRATION_SWEEPS)).
pub fn run(l: usize, beta: f64, sweeps: usize, thermalise: usize, seed: u64) -> ReferenceReport {
    let began = Instant::now();
    let chain_seed = streams::host(seed, streams::Host::WolffReference).random::<u64>();
    let s = wolff::run(l, beta, sweeps, thermalise, chain_seed);
    let seconds = began.elapsed().as_secs_f64();
    let [m2, abs_m, energy] = [s.m2, s.abs_m, s.energy].map(|v| summarize(&[v]));
    ReferenceReport {
        lattice: l,
        beta,
        sweeps,
        m2: m2.mean,
        m2_err: m2.err,
        abs_m: abs_m.mean,
        abs_m_err: abs_m.err,
        energy: energy.mean,
        energy_err: energy.err,
        energy_exact: energy_per_site(l, beta),
        tau_int: [m2.tau_int, abs_m.tau_int, energy.tau_int]
            .into_iter()
            .fold(0.5, f64::max),
        seconds,
    }
}

impl ReferenceReport {
    pub fn to_text(&self) -> String {
        format!(
            "Wolff at L = {}, beta = {:.6}: {} sweeps in {:.1} s (tau_int {:.2})\n  \
             structure_factor  {:.6} +/- {:.6}\n  energy            {:.6} +/- {:.6}   (exact {:.6})\n  \
             abs_m             {:.6} +/- {:.6}",
            self.lattice,
            self.beta,
            self.sweeps,
            self.seconds,
            self.tau_int,
            self.m2,
            self.m2_err,
            self.energy,
            self.energy_err,
            self.energy_exact,
            self.abs_m,
            self.abs_m_err
        )
    }
}

#[cfg(test)]
mod tests {
    /// Wolff's energy agrees with Kaufman's within its error (which tests both).
    #[test]
    fn wolff_energy_matches_the_exact_energy() {
        for (l, beta) in [(8, crate::physics::exact::BETA_C), (16, 0.3), (8, 0.6)] {
            let r = super::run(l, beta, 20_000, 200, 5);
            assert!(
                (r.energy - r.energy_exact).abs() < 4.0 * r.energy_err && r.energy_err < 0.01,
                "L = {l}, beta = {beta}: {} +/- {} vs {}",
                r.energy,
                r.energy_err,
                r.energy_exact
            );
        }
    }
}
