//! The block jackknife both importance-sampled estimates use (reweighted observables and
//! -ln Z): the samples in contiguous blocks, each estimate recomputed without one block.

/// Contiguous blocks (fewer when there are fewer samples).
pub const BLOCKS: usize = 64;

/// The jackknife standard error from the leave-one-block-out estimates:
/// sqrt((k - 1) / k * sum (m_b - mean m)^2) over the k blocks.
pub fn error(leave_out: &[f64]) -> f64 {
    let k = leave_out.len() as f64;
    let mean = leave_out.iter().sum::<f64>() / k;
    let var = (k - 1.0) / k * leave_out.iter().map(|m| (m - mean).powi(2)).sum::<f64>();
    var.sqrt()
}

#[cfg(test)]
mod tests {
    /// Leave-one-out means of equal-sized blocks give the standard error of the mean.
    #[test]
    fn leave_one_out_means_give_the_standard_error() {
        let x = [1.0, 4.0, 2.0, 8.0, 5.0];
        let n = x.len() as f64;
        let total: f64 = x.iter().sum();
        let leave_out: Vec<f64> = x.iter().map(|v| (total - v) / (n - 1.0)).collect();
        let mean = total / n;
        let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!((super::error(&leave_out) - sd / n.sqrt()).abs() < 1e-12);
    }
}
