//! The continuous relaxation of the Ising model, eq. (7):
//! pi(x) = exp(-x^T A^{-1} x / 2) prod_i cosh x_i with A = K + alpha I, K = beta * adjacency.
//! A is diagonal in the separable 2D Hartley basis (cas = cos + sin, its own inverse up to 1/L),
//! with eigenvalues alpha + 2 beta (cos(2 pi a / L) + cos(2 pi b / L)); so ln det A is a sum of logs
//! and A^{-1} x costs O(N L) per sample.

use std::f64::consts::{PI, TAU};

use serde::Serialize;
use thiserror::Error;

use super::exact::ln_z_ising;
use super::lattice::{check_lattice, Lattice, LatticeError};
use super::target::Target;
use super::target_stage::TargetStage;
use crate::gpu::{GpuBuffer, GpuContext, GpuError};

/// lambda_min(A) after the shift (footnote 66).
pub const MIN_EIGENVALUE: f64 = 0.1;

/// The range of inverse temperatures any command accepts (temperatures likewise, 1e-6 to 1e6):
/// far beyond any physics of interest on both sides, and inside it -ln Z stays finite in f64
/// (it grows like N beta; Kaufman's products lose f64 range below beta ~ 1e-150).
pub const MIN_BETA: f64 = 1e-6;
pub const MAX_BETA: f64 = 1e6;

#[derive(Debug, Error, PartialEq)]
pub enum TargetError {
    #[error(transparent)]
    Lattice(#[from] LatticeError),
    #[error(
        "beta must be between {MIN_BETA:e} and {MAX_BETA:e} (got {0}); the temperature T = 1/beta \
         likewise"
    )]
    BadBeta(f64),
}

#[derive(Debug, Clone)]
pub struct IsingTarget {
    pub lattice: Lattice,
    pub beta: f64,
    /// Diagonal shift making lambda_min(A) = MIN_EIGENVALUE.
    pub alpha: f64,
    /// Eigenvalues of A, indexed [b * L + a] for the frequencies (a along x, b along y).
    pub eigenvalues: Vec<f64>,
    pub ln_det_a: f64,
}

/// Stable ln cosh x = |x| + ln(1 + e^{-2|x|}) - ln 2.
pub fn ln_cosh(x: f64) -> f64 {
    crate::logspace::ln_2cosh(x) - std::f64::consts::LN_2
}

/// cas(2 pi k j / L) for k, j in 0..L, row-major: the 1D Hartley matrix.
pub fn cas_table(l: usize) -> Vec<f64> {
    (0..l * l)
        .map(|i| {
            let phase = TAU * ((i / l) * (i % l) % l) as f64 / l as f64;
            phase.cos() + phase.sin()
        })
        .collect()
}

impl IsingTarget {
    pub fn new(l: usize, beta: f64) -> Result<Self, TargetError> {
        check_lattice(l)?;
        if !(MIN_BETA..=MAX_BETA).contains(&beta) {
            return Err(TargetError::BadBeta(beta));
        }
        let lf = l as f64;
        let k_eig: Vec<f64> = (0..l * l)
            .map(|i| {
                let (a, b) = ((i % l) as f64, (i / l) as f64);
                2.0 * beta * ((TAU * a / lf).cos() + (TAU * b / lf).cos())
            })
            .collect();
        let k_min = k_eig.iter().cloned().fold(f64::INFINITY, f64::min);
        let alpha = MIN_EIGENVALUE - k_min;
        // (k - k_min) + lambda_min rather than k + alpha: exact for the smallest eigenvalue even
        // when beta is so large that alpha swamps lambda_min.
        let eigenvalues: Vec<f64> = k_eig.iter().map(|k| (k - k_min) + MIN_EIGENVALUE).collect();
        let ln_det_a = eigenvalues.iter().map(|e| e.ln()).sum();
        Ok(Self {
            lattice: Lattice::new(l),
            beta,
            alpha,
            eigenvalues,
            ln_det_a,
        })
    }

    /// ln Z of the Ising model on this torus (Kaufman).
    pub fn ln_z_ising(&self) -> f64 {
        ln_z_ising(self.lattice.l, self.beta)
    }

    /// 1 / (N lambda_ab), indexed like `eigenvalues`: the diagonal of A^{-1} in the Hartley basis,
    /// with the 1/N that makes the 2D transform its own inverse.
    pub fn inverse_eigenvalues_scaled(&self) -> Vec<f64> {
        let n = self.n_sites() as f64;
        self.eigenvalues.iter().map(|e| 1.0 / (n * e)).collect()
    }
}

impl Target for IsingTarget {
    fn lattice(&self) -> usize {
        self.lattice.l
    }

    /// -ln Z = -ln Z_Ising - ln det A / 2 + N/2 [ln(2/pi) - alpha].
    fn neg_ln_z(&self) -> f64 {
        let n = self.n_sites() as f64;
        -self.ln_z_ising() - 0.5 * self.ln_det_a + 0.5 * n * ((2.0 / PI).ln() - self.alpha)
    }

    fn log_prob_and_grad(&self, x: &[f64]) -> (f64, Vec<f64>) {
        crate::reference::target::log_prob_and_grad(self, x)
    }

    fn stage(
        &self,
        ctx: &GpuContext,
        x: &GpuBuffer<f32>,
        batch: usize,
    ) -> Result<TargetStage, GpuError> {
        super::ising_stage::build(ctx, self, x, batch)
    }
}

/// The exact reference values for one target, as `neuralrg-gpu exact` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct ExactSummary {
    pub lattice: usize,
    pub n_sites: usize,
    pub beta: f64,
    pub alpha: f64,
    pub ln_z_ising: f64,
    pub ln_z_ising_per_site: f64,
    pub ln_det_a: f64,
    pub neg_ln_z: f64,
}

impl IsingTarget {
    pub fn exact_summary(&self) -> ExactSummary {
        let n = self.n_sites();
        let ln_z_ising = self.ln_z_ising();
        ExactSummary {
            lattice: self.lattice.l,
            n_sites: n,
            beta: self.beta,
            alpha: self.alpha,
            ln_z_ising,
            ln_z_ising_per_site: ln_z_ising / n as f64,
            ln_det_a: self.ln_det_a,
            neg_ln_z: self.neg_ln_z(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_eigenvalue_of_a_is_the_shift() {
        for l in [2, 3, 4, 5, 8] {
            for beta in [0.1, 0.44, 1.0] {
                let t = IsingTarget::new(l, beta).unwrap();
                let min = t.eigenvalues.iter().cloned().fold(f64::INFINITY, f64::min);
                assert!((min - MIN_EIGENVALUE).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(
            IsingTarget::new(1, 0.4).unwrap_err(),
            TargetError::Lattice(LatticeError::TooSmall(1))
        );
        assert!(IsingTarget::new(4, 0.0).is_err());
        assert!(IsingTarget::new(4, -1.0).is_err());
        assert!(IsingTarget::new(4, f64::NAN).is_err());
        assert!(IsingTarget::new(4, f64::INFINITY).is_err());
    }

    #[test]
    fn ln_cosh_is_stable_for_large_arguments() {
        assert!((ln_cosh(0.3) - 0.3f64.cosh().ln()).abs() < 1e-15);
        assert!((ln_cosh(-800.0) - (800.0 - std::f64::consts::LN_2)).abs() < 1e-12);
    }
}
