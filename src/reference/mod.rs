//! The f64 CPU twin of every kernel: the oracle GPU results are tested against. Host code that
//! needs the same mathematics in f64 uses it too rather than a second copy: the Target seam's
//! `log_prob_and_grad`, exact samples of pi (`sample::exact`) and the RG-flow figure's levels.

pub mod adam;
pub mod backward;
pub mod dense;
pub mod flow;
pub mod hmc;
pub mod rng;
pub mod target;
