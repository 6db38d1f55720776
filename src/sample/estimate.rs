//! Free energies from direct flow samples, accumulated in constant memory whatever the sample
//! count: the variational bound mean(ln q - ln pi) (eq. 5) with its standard error, and the
//! importance-sampled -ln Z = -ln mean(pi/q) by log-sum-exp with a jackknife error and Kish's
//! effective sample size. Samples are added in a fixed order, so results are reproducible.

use thiserror::Error;

use super::draw::{Model, Sampler};
use crate::analysis::jackknife::{self, BLOCKS};
use crate::gpu::{GpuContext, GpuError};
use crate::io::checkpoint::Checkpoint;
use crate::physics::exact::relative_error;
use crate::physics::Target;

/// Samples per device batch of an evaluation (`eval`'s default, and the evaluations after
/// `train` and of a sweep's points).
pub const EVAL_BATCH: usize = 1024;
/// Seed of an evaluation's latent draws, likewise.
pub const EVAL_SEED: u64 = 1;

#[derive(Debug, Error)]
pub enum EstimateError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(
        "the flow gave non-finite densities for {count} of the first {seen} samples (the \
         checkpoint is damaged or the flow is broken); no estimate"
    )]
    NonFinite { count: usize, seen: usize },
}

/// Free-energy estimates over many samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Estimate {
    pub samples: usize,
    /// The variational free energy mean(ln q - ln pi), an upper bound on -ln Z, and its
    /// standard error.
    pub free_energy: f64,
    pub stderr: f64,
    pub neg_ln_z_exact: f64,
    pub rel_error: f64,
    /// -ln mean(pi/q): importance-sampled -ln Z, with its jackknife error.
    pub free_energy_is: f64,
    pub free_energy_is_err: f64,
    pub rel_error_is: f64,
    /// Kish's effective sample size of the weights pi/q: (sum w)^2 / sum w^2.
    pub ess: f64,
}

/// ln(sum of exp(a)) over the values added, kept as a running maximum and a sum scaled by it.
#[derive(Debug, Clone, Copy)]
struct LogSumExp {
    max: f64,
    sum: f64,
}

impl LogSumExp {
    const EMPTY: Self = Self {
        max: f64::NEG_INFINITY,
        sum: 0.0,
    };

    fn add(&mut self, a: f64) {
        self.merge(&Self { max: a, sum: 1.0 });
    }

    fn merge(&mut self, o: &Self) {
        if o.sum == 0.0 {
            return;
        }
        if o.max > self.max {
            self.sum = self.sum * (self.max - o.max).exp() + o.sum;
            self.max = o.max;
        } else {
            self.sum += o.sum * (o.max - self.max).exp();
        }
    }

    fn value(&self) -> f64 {
        self.max + self.sum.ln()
    }
}

/// One jackknife block: its count, and ln sum w and ln sum w^2 of its log-weights.
#[derive(Debug, Clone, Copy)]
struct Block {
    count: usize,
    w: LogSumExp,
    w2: LogSumExp,
}

/// The running sums behind an [`Estimate`], fed per-sample terms ln q - ln pi in order.
#[derive(Debug, Clone)]
pub struct Accumulator {
    samples: usize,
    seen: usize,
    /// Welford's running mean and sum of squared deviations of the terms.
    mean: f64,
    m2: f64,
    blocks: Vec<Block>,
    non_finite: usize,
}

impl Accumulator {
    /// For exactly `samples` terms (their number fixes the blocks).
    pub fn new(samples: usize) -> Self {
        let empty = Block {
            count: 0,
            w: LogSumExp::EMPTY,
            w2: LogSumExp::EMPTY,
        };
        Self {
            samples,
            seen: 0,
            mean: 0.0,
            m2: 0.0,
            blocks: vec![empty; BLOCKS.min(samples).max(1)],
            non_finite: 0,
        }
    }

    /// Adds the next term ln q(x) - ln pi(x).
    pub fn add(&mut self, term: f64) {
        assert!(self.seen < self.samples, "more terms than announced");
        if !term.is_finite() {
            self.non_finite += 1;
        }
        let i = self.seen;
        self.seen += 1;
        let delta = term - self.mean;
        self.mean += delta / self.seen as f64;
        self.m2 += delta * (term - self.mean);
        let b = i * self.blocks.len() / self.samples;
        let block = &mut self.blocks[b];
        block.count += 1;
        block.w.add(-term);
        block.w2.add(-2.0 * term);
    }

    /// Terms that were not finite so far.
    pub fn non_finite(&self) -> usize {
        self.non_finite
    }

    pub fn seen(&self) -> usize {
        self.seen
    }

    /// The estimates, against the exact -ln Z.
    pub fn finish(&self, neg_ln_z_exact: f64) -> Estimate {
        let n = self.seen as f64;
        let var = self.m2 / (n - 1.0).max(1.0);
        let lse = |skip: Option<usize>| {
            let (mut w, mut w2, mut count) = (LogSumExp::EMPTY, LogSumExp::EMPTY, 0);
            for (b, block) in self.blocks.iter().enumerate() {
                if Some(b) != skip {
                    w.merge(&block.w);
                    w2.merge(&block.w2);
                    count += block.count;
                }
            }
            (w.value(), w2.value(), count as f64)
        };
        let (ln_w, ln_w2, _) = lse(None);
        let free_energy_is = (n).ln() - ln_w;
        // Leave-one-block-out, each from the other blocks directly (no cancellation).
        let leave_out: Vec<f64> = (0..self.blocks.len())
            .map(|b| {
                let (w, _, count) = lse(Some(b));
                count.ln() - w
            })
            .collect();
        let rel = |f: f64| relative_error(f, neg_ln_z_exact);
        Estimate {
            samples: self.seen,
            free_energy: self.mean,
            stderr: (var / n).sqrt(),
            neg_ln_z_exact,
            rel_error: rel(self.mean),
            free_energy_is,
            free_energy_is_err: jackknife::error(&leave_out),
            rel_error_is: rel(free_energy_is),
            ess: (2.0 * ln_w - ln_w2).exp(),
        }
    }
}

/// The estimates over the first `samples` draws of batches of `batch` (batch k uses step k).
pub fn estimate(
    ctx: &GpuContext,
    model: &Model,
    samples: usize,
    batch: usize,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<Estimate, EstimateError> {
    let mut sampler = Sampler::new(ctx, model, batch.min(samples), seed)?;
    let mut acc = Accumulator::new(samples);
    for k in 0.. {
        if acc.seen() >= samples {
            break;
        }
        let draw = sampler.draw(ctx, k)?;
        let take = (samples - acc.seen()).min(draw.ln_q.len());
        for term in draw.free_energy_terms().into_iter().take(take) {
            acc.add(term);
        }
        if acc.non_finite() > 0 {
            return Err(EstimateError::NonFinite {
                count: acc.non_finite(),
                seen: acc.seen(),
            });
        }
        progress(acc.seen());
    }
    Ok(acc.finish(model.target.neg_ln_z()))
}

/// A checkpoint's estimates (`eval`, and `train --eval-samples` after training).
pub fn evaluate(
    ctx: &GpuContext,
    ck: &Checkpoint,
    samples: usize,
    batch: usize,
    seed: u64,
    progress: impl FnMut(usize),
) -> Result<Estimate, EstimateError> {
    let model = Model::from_checkpoint(ctx, ck)?;
    estimate(ctx, &model, samples, batch, seed, progress)
}

impl Estimate {
    /// Both estimates with their errors and relative errors, and the effective sample size, in
    /// two lines; `symmetric`: of a symmetrised model (q_sym).
    pub fn to_text(&self, symmetric: bool) -> String {
        let kind = if symmetric { "symmetrised " } else { "" };
        format!(
            "{kind}variational free energy {:.6} +/- {:.6} from {} samples; exact -ln Z {:.6}; \
             relative error {:.3e}\nimportance-sampled free energy {:.6} +/- {:.6} (jackknife); \
             relative error {:.3e}; effective sample size {:.1} of {} ({:.1}%)",
            self.free_energy,
            self.stderr,
            self.samples,
            self.neg_ln_z_exact,
            self.rel_error,
            self.free_energy_is,
            self.free_energy_is_err,
            self.rel_error_is,
            self.ess,
            self.samples,
            100.0 * self.ess / self.samples as f64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn terms(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| -30.0 + 0.7 * rng.random::<f64>() + rng.random::<f64>().powi(3))
            .collect()
    }

    fn accumulate(t: &[f64]) -> Estimate {
        let mut acc = Accumulator::new(t.len());
        t.iter().for_each(|&x| acc.add(x));
        acc.finish(-31.0)
    }

    /// Every estimate against its textbook two-pass formula.
    #[test]
    fn estimates_match_their_direct_formulas() {
        for n in [2, 5, 64, 1000, 4097] {
            let t = terms(n, n as u64);
            let e = accumulate(&t);
            let nf = n as f64;
            let mean = t.iter().sum::<f64>() / nf;
            let var = t.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0);
            assert!((e.free_energy - mean).abs() < 1e-12);
            assert!((e.stderr - (var / nf).sqrt()).abs() < 1e-12);
            let w: Vec<f64> = t.iter().map(|x| (-x).exp()).collect();
            let sw = w.iter().sum::<f64>();
            let f_is = -(sw / nf).ln();
            assert!((e.free_energy_is - f_is).abs() < 1e-10, "{n}");
            let ess = sw * sw / w.iter().map(|x| x * x).sum::<f64>();
            assert!((e.ess - ess).abs() < 1e-8 * ess, "{n}: {} vs {ess}", e.ess);
            // Jackknife over the same contiguous blocks.
            let nb = BLOCKS.min(n);
            let block = |i: usize| i * nb / n;
            let loo: Vec<f64> = (0..nb)
                .map(|b| {
                    let (s, c) = (0..n)
                        .filter(|&i| block(i) != b)
                        .fold((0.0, 0.0), |(s, c), i| (s + w[i], c + 1.0));
                    -(s / c).ln()
                })
                .collect();
            let m = loo.iter().sum::<f64>() / nb as f64;
            let jv =
                (nb as f64 - 1.0) / nb as f64 * loo.iter().map(|f| (f - m).powi(2)).sum::<f64>();
            assert!((e.free_energy_is_err - jv.sqrt()).abs() < 1e-9, "{n}");
            assert!((e.rel_error_is - (f_is + 31.0) / 31.0).abs() < 1e-12);
        }
    }

    /// Equal weights: importance sampling is exact, every sample counts, no spread.
    #[test]
    fn equal_weights_are_exact() {
        let e = accumulate(&[-12.5; 100]);
        assert_eq!(e.free_energy, -12.5);
        assert!((e.free_energy_is + 12.5).abs() < 1e-12);
        assert!((e.ess - 100.0).abs() < 1e-9);
        assert!(e.free_energy_is_err < 1e-12 && e.stderr == 0.0);
    }

    /// Weights spanning e^700 still sum without overflow.
    #[test]
    fn extreme_log_weights_do_not_overflow() {
        let e = accumulate(&[-700.0, 700.0, 0.0, -650.0]);
        assert!(
            (e.free_energy_is - (4f64.ln() - 700.0 - (1.0 + (-50f64).exp()).ln())).abs() < 1e-9
        );
        assert!(e.ess.is_finite() && e.free_energy_is_err.is_finite());
    }

    #[test]
    fn non_finite_terms_are_counted() {
        let mut acc = Accumulator::new(3);
        acc.add(1.0);
        acc.add(f64::NAN);
        acc.add(f64::INFINITY);
        assert_eq!(acc.non_finite(), 2);
    }
}
