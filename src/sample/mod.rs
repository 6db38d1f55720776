//! Using a flow: drawing samples x = g(z) with their densities, and free-energy estimates.

pub mod draw;
pub mod estimate;
pub mod hmc;

pub use draw::{draw, Model, Sampler, Samples};
pub use estimate::{estimate, Accumulator, Estimate, EstimateError};
