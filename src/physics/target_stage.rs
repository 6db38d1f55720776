//! The target on the device: batched ln pi(x) and grad ln pi(x) for a buffer of samples, as every
//! model's stage leaves them (`Target::stage` builds one; `ising_stage.rs` is the Ising model's).

use crate::gpu::{Dispatch, GpuBuffer};

/// Evaluates ln pi and its gradient for `batch` samples held in `x` ([batch, N], row-major sites).
pub struct TargetStage {
    pub log_pi: GpuBuffer<f32>,
    pub grad: GpuBuffer<f32>,
    dispatches: Vec<Dispatch>,
    // Kept alive for the dispatches that bind them.
    _buffers: Vec<GpuBuffer<f32>>,
    _uniforms: Vec<wgpu::Buffer>,
}

impl TargetStage {
    /// A model's stage: `dispatches` fill `log_pi` ([batch]) and `grad` ([batch, N]) from the
    /// current x; `buffers` and `uniforms` are what they bind besides.
    pub(super) fn new(
        log_pi: GpuBuffer<f32>,
        grad: GpuBuffer<f32>,
        dispatches: Vec<Dispatch>,
        buffers: Vec<GpuBuffer<f32>>,
        uniforms: Vec<wgpu::Buffer>,
    ) -> Self {
        Self {
            log_pi,
            grad,
            dispatches,
            _buffers: buffers,
            _uniforms: uniforms,
        }
    }

    /// The dispatches, in order, that fill `log_pi` and `grad` from the current `x`.
    pub fn dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.dispatches.iter()
    }
}
