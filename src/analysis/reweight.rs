//! Self-normalised importance reweighting of direct flow samples: <O>_pi = sum w O / sum w with
//! w = pi / q, a jackknife error over contiguous blocks, and Kish's effective sample size.

use super::jackknife::{self, BLOCKS};

/// A reweighted mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weighted {
    pub mean: f64,
    pub err: f64,
    /// (sum w)^2 / sum w^2.
    pub ess: f64,
}

/// The reweighted mean of `values` with log-weights `log_w` (the same length, at least 2).
pub fn reweight(values: &[f64], log_w: &[f64]) -> Weighted {
    assert!(
        values.len() == log_w.len() && values.len() >= 2,
        "one log-weight per value, at least two"
    );
    let n = values.len();
    // Weights relative to the largest, so none overflows.
    let top = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - top).exp()).collect();
    let blocks = BLOCKS.min(n);
    let mut sums = vec![(0.0, 0.0); blocks];
    for (i, (wi, vi)) in w.iter().zip(values).enumerate() {
        let b = &mut sums[i * blocks / n];
        b.0 += wi * vi;
        b.1 += wi;
    }
    let ratio = |skip: Option<usize>| {
        let (s, t) = sums
            .iter()
            .enumerate()
            .filter(|(b, _)| Some(*b) != skip)
            .fold((0.0, 0.0), |(s, t), (_, x)| (s + x.0, t + x.1));
        s / t
    };
    // Leave-one-block-out from the other blocks directly (no cancellation when a block holds
    // most of the weight).
    let leave_out: Vec<f64> = (0..blocks).map(|b| ratio(Some(b))).collect();
    let (sw, sw2) = w.iter().fold((0.0, 0.0), |(a, b), x| (a + x, b + x * x));
    Weighted {
        mean: ratio(None),
        err: jackknife::error(&leave_out),
        ess: sw * sw / sw2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Equal weights: the plain mean, the plain jackknife error, every sample counts.
    #[test]
    fn equal_weights_are_the_plain_mean() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let v: Vec<f64> = (0..6400).map(|_| rng.random::<f64>()).collect();
        let r = reweight(&v, &vec![3.0; v.len()]);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((r.mean - mean).abs() < 1e-12);
        assert!((r.ess - n).abs() < 1e-6);
        assert!((r.err / (sd / n.sqrt()) - 1.0).abs() < 0.3, "{r:?}");
    }

    /// Samples from N(0, 1) reweighted to N(1, 1) (log w = x - 1/2) have mean 1.
    #[test]
    fn reweighting_shifts_a_gaussian() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let x: Vec<f64> = (0..200_000)
            .map(|_| -> f64 { rng.sample(rand_distr::StandardNormal) })
            .collect();
        let lw: Vec<f64> = x.iter().map(|v| v - 0.5).collect();
        let r = reweight(&x, &lw);
        assert!((r.mean - 1.0).abs() < 4.0 * r.err, "{r:?}");
        // Kish's ESS for this shift: n / e.
        let expected = x.len() as f64 / std::f64::consts::E;
        assert!((r.ess / expected - 1.0).abs() < 0.1, "{r:?}");
    }
}
