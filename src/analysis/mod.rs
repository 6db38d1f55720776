//! Statistics of samples: Markov-chain time series (autocorrelation-aware errors) and
//! importance reweighting.

pub mod mutual_information;
pub mod reweight;
pub mod series;
