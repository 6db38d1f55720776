//! The GPU runtime: adapter and device, typed errors, the shader registry with its
//! pipeline cache, typed buffers, and the device random-number stage.

pub mod buffers;
pub mod context;
pub mod error;
pub mod kernels;
pub mod profiler;
pub mod rng;
pub mod shaders;
mod wgsl_if;

pub use buffers::{fitting_batch, GpuBuffer};
pub use context::{
    AdapterReport, AdapterSummary, BudgetSource, GpuContext, GpuOptions, SizeAdvice,
};
pub use error::GpuError;
pub use kernels::{grid, Dispatch, Kernel};
pub use shaders::Shader;

/// Invocations per workgroup (passed to each stage's `override WG`): of the stages that give
/// each invocation its own rows or elements, and of those that reduce with one workgroup per
/// sample or per chain; the accumulating backward chooses its own (`flow::backward`).
pub const WG: u32 = 64;

/// Storage buffers one stage may bind: WebGPU's portable limit, which tests/shaders.rs holds
/// every entry point to; `coupling_backward` binds that many, so an adapter must offer them.
pub const STORAGE_BUFFERS_PER_STAGE: u32 = 8;
