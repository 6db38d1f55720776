//! Statistics of one observable measured along Markov chains: mean, integrated
//! autocorrelation time and an error bar that accounts for it.
//!
//! Successive Markov-chain measurements are correlated, so the naive `sd / sqrt(n)`
//! underestimates the error by `sqrt(2 tau_int)`. `tau_int` is estimated from the
//! chain-averaged autocorrelation function with Sokal's automatic window (Madras & Sokal
//! 1988; Sokal 1997, "Monte Carlo methods in statistical mechanics"), which trades the bias
//! of a short window against the noise of a long one.

use serde::Serialize;

/// Sokal's window factor: stop at the first W with W >= c tau_int(W). c = 5 leaves a
/// truncation bias of order e^-5 for a single exponential mode.
const WINDOW_C: f64 = 5.0;

/// Statistics of one observable measured along Markov chains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub mean: f64,
    /// Standard error accounting for autocorrelation: sqrt(2 tau_int var / n_total).
    pub err: f64,
    /// Integrated autocorrelation time (in measurements), >= 0.5; 0.5 for uncorrelated data.
    pub tau_int: f64,
    /// The automatic window W where the sum stopped (0 for a constant series, where no sum
    /// is needed).
    pub window: usize,
    /// Effective sample size n_total / (2 tau_int).
    pub ess: f64,
    /// Measurements in all (chains x length).
    pub n: usize,
}

/// `chains[c][t]`: measurement t of chain c (all chains the same length, >= 2).
///
/// The autocovariance is averaged over chains, with every chain's deviations taken from
/// the grand mean, so that chains stuck in different regions show up as long correlation
/// rather than being hidden by per-chain centring. Non-finite measurements propagate into
/// a non-finite summary.
///
/// # Panics
/// If `chains` is empty, a chain has fewer than 2 measurements, or the chains differ in
/// length; callers guarantee all three.
pub fn summarize(chains: &[Vec<f64>]) -> Summary {
    let len = chain_len(chains);
    let n = chains.len() * len;
    let (mean, devs) = centre(chains);
    let gamma0 = autocov(&devs, 0);
    if gamma0 == 0.0 {
        // Constant series: no fluctuations, hence no correlation to estimate.
        return Summary {
            mean,
            err: 0.0,
            tau_int: 0.5,
            window: 0,
            ess: n as f64,
            n,
        };
    }
    let (tau_int, window) = auto_window(&devs, gamma0);
    Summary {
        mean,
        err: (2.0 * tau_int * gamma0 / n as f64).sqrt(),
        tau_int,
        window,
        ess: n as f64 / (2.0 * tau_int),
        n,
    }
}

/// The common chain length, after checking the documented preconditions.
fn chain_len(chains: &[Vec<f64>]) -> usize {
    assert!(!chains.is_empty(), "summarize needs at least one chain");
    let len = chains[0].len();
    assert!(len >= 2, "summarize needs chains of length >= 2, got {len}");
    assert!(
        chains.iter().all(|c| c.len() == len),
        "summarize needs chains of equal length"
    );
    len
}

/// Grand mean and every chain's deviations from it.
///
/// Sums are taken relative to the first measurement, so a constant series gives exactly
/// zero deviations (rather than rounding noise that would look perfectly correlated) and a
/// large common offset costs no precision.
fn centre(chains: &[Vec<f64>]) -> (f64, Vec<Vec<f64>>) {
    let shift = chains[0][0];
    let n = chains.iter().map(Vec::len).sum::<usize>() as f64;
    let mean_shifted = chains.iter().flatten().map(|x| x - shift).sum::<f64>() / n;
    let devs = chains
        .iter()
        .map(|c| c.iter().map(|x| (x - shift) - mean_shifted).collect())
        .collect();
    (shift + mean_shifted, devs)
}

/// Gamma(t): sum over chains and s < len - t of d[s] d[s + t], over chains * (len - t).
fn autocov(devs: &[Vec<f64>], t: usize) -> f64 {
    let len = devs[0].len();
    let sum: f64 = devs
        .iter()
        .map(|d| {
            d[..len - t]
                .iter()
                .zip(&d[t..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
        })
        .sum();
    sum / (devs.len() * (len - t)) as f64
}

/// tau_int(W) = 1/2 + sum_{t=1}^{W} rho(t), stopped at the smallest W >= 1 with
/// W >= c tau_int(W) (or at W = len - 1, the last lag with data), clamped to >= 1/2.
///
/// Returns (tau_int, W).
fn auto_window(devs: &[Vec<f64>], gamma0: f64) -> (f64, usize) {
    let last = devs[0].len() - 1;
    let mut tau = 0.5;
    let mut w = 0;
    while w < last {
        w += 1;
        tau += autocov(devs, w) / gamma0;
        if w as f64 >= WINDOW_C * tau {
            break;
        }
    }
    (tau.max(0.5), w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn uniforms(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random::<f64>()).collect()
    }

    /// x_t = a x_{t-1} + u_t with centred uniform noise (tau_int does not depend on the
    /// noise distribution), started at 0 with a burn-in of 50 / (1 - a) steps discarded.
    fn ar1(a: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let burn = (50.0 / (1.0 - a)) as usize;
        let mut x = 0.0;
        let mut out = Vec::with_capacity(n);
        for t in 0..burn + n {
            x = a * x + (rng.random::<f64>() - 0.5);
            if t >= burn {
                out.push(x);
            }
        }
        out
    }

    #[test]
    fn iid_data_is_uncorrelated() {
        let n = 100_000;
        let x = uniforms(n, 7);
        let s = summarize(std::slice::from_ref(&x));
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        let naive = (var / n as f64).sqrt();
        assert!((s.tau_int - 0.5).abs() < 0.05, "tau_int = {}", s.tau_int);
        assert!(
            (s.err / naive - 1.0).abs() < 0.05,
            "err {} vs naive {naive}",
            s.err
        );
        assert!((s.mean - 0.5).abs() < 4.0 * s.err, "mean = {}", s.mean);
        assert_eq!(s.n, n);
        assert!(s.window >= 1 && s.window as f64 >= WINDOW_C * s.tau_int);
        assert!((s.ess - n as f64 / (2.0 * s.tau_int)).abs() < 1e-6);
    }

    #[test]
    fn ar1_matches_exact_tau() {
        let a = 0.9;
        let exact = (1.0 + a) / (2.0 * (1.0 - a));
        let s = summarize(&[ar1(a, 200_000, 11)]);
        assert!(
            (s.tau_int / exact - 1.0).abs() < 0.1,
            "tau_int = {} vs {exact}",
            s.tau_int
        );
        assert!(
            s.window as f64 >= WINDOW_C * s.tau_int,
            "window {}",
            s.window
        );
    }

    #[test]
    fn several_chains_share_the_pooled_mean() {
        let chains: Vec<Vec<f64>> = (0..4).map(|c| ar1(0.5, 5_000, 100 + c)).collect();
        let pooled: Vec<f64> = chains.iter().flatten().copied().collect();
        let s = summarize(&chains);
        let pooled_mean = pooled.iter().sum::<f64>() / pooled.len() as f64;
        assert!(
            (s.mean - pooled_mean).abs() < 1e-12,
            "{} vs {pooled_mean}",
            s.mean
        );
        assert_eq!(s.n, 20_000);
        // tau_int(a = 0.5) = 1.5; four independent chains estimate it like one long one.
        assert!(
            (s.tau_int / 1.5 - 1.0).abs() < 0.15,
            "tau_int = {}",
            s.tau_int
        );
    }

    #[test]
    fn constant_series() {
        let s = summarize(&[vec![0.1; 1000], vec![0.1; 1000]]);
        assert_eq!(
            s,
            Summary {
                mean: 0.1,
                err: 0.0,
                tau_int: 0.5,
                window: 0,
                ess: 2000.0,
                n: 2000
            }
        );
    }

    #[test]
    fn anticorrelated_series_is_clamped() {
        let x: Vec<f64> = (0..100)
            .map(|t| if t % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let s = summarize(&[x]);
        assert_eq!(s.tau_int, 0.5);
        assert_eq!(s.window, 1);
        assert_eq!(s.mean, 0.0);
        assert!((s.err - 0.1).abs() < 1e-12, "err = {}", s.err);
    }

    #[test]
    fn shortest_chain_stops_at_last_lag() {
        let s = summarize(&[vec![1.0, 2.0]]);
        assert_eq!(s.window, 1);
        assert_eq!(s.mean, 1.5);
        assert_eq!(s.tau_int, 0.5);
    }

    #[test]
    #[should_panic(expected = "equal length")]
    fn unequal_chains_panic() {
        summarize(&[vec![1.0, 2.0], vec![1.0, 2.0, 3.0]]);
    }
}
