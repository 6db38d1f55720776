//! The NeuralRG flow: the layer plan (Fig. 1, Fig. 2), the flat parameter layout, and the device
//! drivers for generation x = g(z), inference z = g^{-1}(x) and the backward of either.

pub mod backward;
pub mod cost;
pub mod params;
pub mod pass;
pub mod plan;
pub mod weights;

pub use backward::{AdjointPass, BackwardIo, BackwardPass, BackwardScratch, GradientShape};
pub use params::ParamLayout;
pub use pass::{padded_chunks, Direction, Flow, FlowPass, Inferred};
pub use plan::{Arch, FlowConfig, FlowPlan, LayerPlan};
pub use weights::StepWeights;
