//! Training: the objective, its loss stage, Adam, and the device training step.

pub mod adam;
pub mod loss;
pub mod metrics;
pub mod objective;
pub mod run;
pub mod schedule;
pub mod step;

pub use adam::AdamConfig;
pub use objective::Objective;
pub use run::{train, RunOptions, RunStart, Summary, TrainError};
pub use schedule::{batch_at, learning_rate, LrSchedule};
pub use step::{StepStats, TrainStep};
