//! Resolving and validating user input before anything touches the GPU.

use thiserror::Error;

use crate::physics::exact::BETA_C;

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("give either --beta or --temperature, not both")]
    BetaAndTemperature,
    #[error("--beta must be a positive finite number (got {0})")]
    BadBeta(f64),
    #[error("--temperature must be a positive finite number (got {0})")]
    BadTemperature(f64),
    #[error("--lattice must be at least 2 (got {0})")]
    LatticeTooSmall(usize),
}

/// beta from `--beta` or `--temperature` (beta = 1/T); the critical beta_c when neither is given.
pub fn resolve_beta(beta: Option<f64>, temperature: Option<f64>) -> Result<f64, ConfigError> {
    match (beta, temperature) {
        (Some(_), Some(_)) => Err(ConfigError::BetaAndTemperature),
        (Some(b), None) if b.is_finite() && b > 0.0 => Ok(b),
        (Some(b), None) => Err(ConfigError::BadBeta(b)),
        (None, Some(t)) if t.is_finite() && t > 0.0 => Ok(1.0 / t),
        (None, Some(t)) => Err(ConfigError::BadTemperature(t)),
        (None, None) => Ok(BETA_C),
    }
}

/// Any lattice the Ising target is defined on (L >= 2).
pub fn check_lattice(l: usize) -> Result<usize, ConfigError> {
    if l < 2 {
        Err(ConfigError::LatticeTooSmall(l))
    } else {
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_resolution() {
        assert_eq!(resolve_beta(None, None), Ok(BETA_C));
        assert_eq!(resolve_beta(Some(0.3), None), Ok(0.3));
        assert_eq!(resolve_beta(None, Some(2.0)), Ok(0.5));
        assert_eq!(
            resolve_beta(Some(0.3), Some(2.0)),
            Err(ConfigError::BetaAndTemperature)
        );
        assert_eq!(
            resolve_beta(Some(0.0), None),
            Err(ConfigError::BadBeta(0.0))
        );
        assert_eq!(
            resolve_beta(None, Some(-1.0)),
            Err(ConfigError::BadTemperature(-1.0))
        );
        assert!(resolve_beta(Some(f64::NAN), None).is_err());
        assert!(resolve_beta(None, Some(f64::INFINITY)).is_err());
    }
}
