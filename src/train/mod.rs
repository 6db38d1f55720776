//! Training: the objective, Adam, and the device training step.

pub mod adam;
pub mod objective;
pub mod step;

pub use adam::AdamConfig;
pub use objective::Objective;
pub use step::{StepStats, TrainStep};
