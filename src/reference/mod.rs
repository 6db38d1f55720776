//! The f64 CPU twin of every kernel: the oracle GPU results are tested against.

pub mod adam;
pub mod backward;
pub mod dense;
pub mod flow;
pub mod hmc;
pub mod rng;
pub mod target;
