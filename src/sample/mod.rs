//! Using a flow: drawing samples x = g(z) with their densities, free-energy estimates, and the
//! latents of given configurations.

pub mod chains;
pub mod draw;
pub mod estimate;
pub mod exact;
pub mod hmc;
pub mod observables;
pub mod posterior;
pub mod reference;

pub use draw::{draw, Model, Sampler, Samples};
pub use estimate::{
    estimate, evaluate, Accumulator, Estimate, EstimateError, EVAL_BATCH, EVAL_SEED,
};
