//! Statistics of samples: Markov-chain time series (autocorrelation-aware errors) and
//! importance reweighting.

pub mod reweight;
pub mod series;
