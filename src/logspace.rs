//! Log-space arithmetic without overflow, shared by the exact free energy, the Ising target and
//! the symmetrised density ln q_sym.

/// ln(2 cosh y) = |y| + ln(1 + e^{-2|y|}), finite for every finite y.
pub fn ln_2cosh(y: f64) -> f64 {
    let a = y.abs();
    a + (-2.0 * a).exp().ln_1p()
}

/// ln sum_i exp(x_i) for a non-empty slice with a finite maximum.
pub fn log_sum_exp(xs: &[f64]) -> f64 {
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + xs.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agree_with_the_direct_formulas_and_do_not_overflow() {
        assert!((ln_2cosh(0.3) - (2.0 * 0.3f64.cosh()).ln()).abs() < 1e-15);
        assert_eq!(ln_2cosh(-800.0), 800.0);
        let xs = [0.5, -1.0, 2.0];
        let direct = xs.iter().map(|x: &f64| x.exp()).sum::<f64>().ln();
        assert!((log_sum_exp(&xs) - direct).abs() < 1e-15);
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
    }
}
