//! The learning-rate schedule: a linear warm-up, then constant, cosine (to zero) or exponential
//! (to 1% of the base rate) decay over the run's total steps, the end value being the rate of
//! step `--steps`, one past the last step trained. A function of the step alone, so a resumed
//! run follows it exactly.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    #[default]
    Constant,
    Cosine,
    Exponential,
}

/// Where the exponential schedule ends, as a fraction of the base rate.
const EXPONENTIAL_END: f64 = 0.01;

/// The learning rate of step `t` (0-based) of a run of `total` steps with base rate `base`.
pub fn learning_rate(base: f64, schedule: LrSchedule, warmup: u64, t: u64, total: u64) -> f64 {
    if t < warmup {
        return base * (t + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((t - warmup) as f64 / span).min(1.0);
    match schedule {
        LrSchedule::Constant => base,
        LrSchedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        LrSchedule::Exponential => base * EXPONENTIAL_END.powf(progress),
    }
}

/// The batch of step `t` (0-based) of a run of `total` steps ramping from `batch` to
/// `batch_final` (`batch` times a power of two, 2^K): it doubles K times, at evenly spaced
/// steps, so each of the K + 1 batch sizes trains for the same number of steps.
pub fn batch_at(batch: usize, batch_final: Option<usize>, t: u64, total: u64) -> usize {
    let Some(last) = batch_final.filter(|f| *f > batch) else {
        return batch;
    };
    let k = (last / batch).ilog2() as u64;
    let stage = (t.saturating_mul(k + 1) / total.max(1)).min(k);
    batch << stage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_double_at_even_steps() {
        let b = |t| batch_at(64, Some(256), t, 300);
        assert_eq!(
            [b(0), b(99), b(100), b(199), b(200), b(299)],
            [64, 64, 128, 128, 256, 256]
        );
        assert_eq!(batch_at(64, None, 5, 10), 64);
        assert_eq!(batch_at(64, Some(64), 5, 10), 64);
    }

    #[test]
    fn schedules_start_warm_up_and_end_where_they_say() {
        let lr = |s, w, t| learning_rate(0.01, s, w, t, 1000);
        assert_eq!(lr(LrSchedule::Constant, 0, 999), 0.01);
        assert_eq!(lr(LrSchedule::Cosine, 0, 0), 0.01);
        assert!(lr(LrSchedule::Cosine, 0, 999) < 1e-7);
        assert!((lr(LrSchedule::Cosine, 0, 500) - 0.005).abs() < 1e-12);
        assert!((lr(LrSchedule::Exponential, 0, 1000) - 1e-4).abs() < 1e-15);
        // Warm-up: linear from base / warmup to base, then the schedule from its start.
        assert!((lr(LrSchedule::Cosine, 100, 0) - 1e-4).abs() < 1e-15);
        assert_eq!(lr(LrSchedule::Cosine, 100, 99), 0.01);
        assert_eq!(lr(LrSchedule::Cosine, 100, 100), 0.01);
    }
}
