//! Statistics of samples: Markov-chain time series (autocorrelation-aware errors), importance
//! reweighting and the block jackknife it shares with the free-energy estimates.

pub mod jackknife;
pub mod mutual_information;
pub mod reweight;
pub mod series;
