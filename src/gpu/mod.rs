//! The GPU runtime: adapter and device, typed errors, the shader registry with its
//! pipeline cache, typed buffers, and the device random-number stage.

pub mod buffers;
pub mod context;
pub mod error;
pub mod kernels;
pub mod profiler;
pub mod rng;
pub mod shaders;

pub use buffers::GpuBuffer;
pub use context::{AdapterReport, BudgetSource, GpuContext, GpuOptions};
pub use error::GpuError;
pub use kernels::{grid, Dispatch, Kernel};
pub use shaders::Shader;
