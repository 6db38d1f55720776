//! Small dense f64 linear algebra for test oracles: LU with partial pivoting.

/// LU factorisation of a row-major n x n matrix; returns the factors and the row permutation,
/// or `None` if the matrix is singular.
fn lu(a: &[f64], n: usize) -> Option<(Vec<f64>, Vec<usize>, f64)> {
    let mut m = a.to_vec();
    let mut perm: Vec<usize> = (0..n).collect();
    let mut sign = 1.0;
    for k in 0..n {
        let p = (k..n).max_by(|&i, &j| m[i * n + k].abs().total_cmp(&m[j * n + k].abs()))?;
        if m[p * n + k] == 0.0 {
            return None;
        }
        if p != k {
            for c in 0..n {
                m.swap(k * n + c, p * n + c);
            }
            perm.swap(k, p);
            sign = -sign;
        }
        for i in k + 1..n {
            let f = m[i * n + k] / m[k * n + k];
            m[i * n + k] = f;
            for c in k + 1..n {
                m[i * n + c] -= f * m[k * n + c];
            }
        }
    }
    Some((m, perm, sign))
}

/// ln |det a| of a row-major n x n matrix (-inf if singular).
pub fn ln_abs_det(a: &[f64], n: usize) -> f64 {
    match lu(a, n) {
        Some((m, _, _)) => (0..n).map(|i| m[i * n + i].abs().ln()).sum(),
        None => f64::NEG_INFINITY,
    }
}

/// Solves a x = b for a row-major n x n matrix.
pub fn solve(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    let (m, perm, _) = lu(a, n)?;
    let mut x: Vec<f64> = perm.iter().map(|&p| b[p]).collect();
    for i in 0..n {
        for c in 0..i {
            x[i] -= m[i * n + c] * x[c];
        }
    }
    for i in (0..n).rev() {
        for c in i + 1..n {
            x[i] -= m[i * n + c] * x[c];
        }
        x[i] /= m[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_takes_determinants() {
        let a = [2.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 4.0];
        assert!((ln_abs_det(&a, 3) - 18.0f64.ln()).abs() < 1e-12);
        let x = solve(&a, 3, &[3.0, 5.0, 5.0]).unwrap();
        for (xi, want) in x.iter().zip([1.0, 1.0, 1.0]) {
            assert!((xi - want).abs() < 1e-12);
        }
    }
}
