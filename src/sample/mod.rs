//! Using a flow: drawing samples x = g(z) with their densities.

pub mod draw;

pub use draw::{draw, estimate, Estimate, Model, Sampler, Samples};
