//! Host side of the device random-number stage (`shaders/rng.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::buffers::GpuBuffer;
use super::context::GpuContext;
use super::error::GpuError;
use super::kernels::Dispatch;
use super::shaders::Shader;
use super::WG;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RngParams {
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    step_lo: u32,
    step_hi: u32,
    n: u32,
    _pad: [u32; 2],
}

/// Fills a buffer with values of the stream (seed, stream, step); `set_step` moves to a fresh
/// set of numbers without rebuilding anything.
pub struct RngStage {
    params: RngParams,
    uniform: wgpu::Buffer,
    pub dispatch: Dispatch,
}

impl RngStage {
    /// Standard normals into `out` (f32).
    pub fn normals(
        ctx: &GpuContext,
        out: &GpuBuffer<f32>,
        seed: u64,
        stream: u32,
    ) -> Result<Self, GpuError> {
        Self::build(ctx, "fill_normal", 2, &out.buffer, out.len, seed, stream)
    }

    /// Raw Philox outputs into `out` (u32).
    pub fn bits(
        ctx: &GpuContext,
        out: &GpuBuffer<u32>,
        seed: u64,
        stream: u32,
    ) -> Result<Self, GpuError> {
        Self::build(ctx, "fill_bits", 1, &out.buffer, out.len, seed, stream)
    }

    fn build(
        ctx: &GpuContext,
        entry: &str,
        binding: u32,
        out: &wgpu::Buffer,
        n: usize,
        seed: u64,
        stream: u32,
    ) -> Result<Self, GpuError> {
        let n32 = u32::try_from(n).map_err(|_| GpuError::Binding {
            kernel: format!("rng::{entry}"),
            message: format!("{n} values exceed the 2^32 per-stream limit"),
        })?;
        let params = RngParams {
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            stream,
            step_lo: 0,
            step_hi: 0,
            n: n32,
            _pad: [0; 2],
        };
        let uniform = ctx.uniform("rng params", &params)?;
        let kernel = ctx.kernel(Shader::Rng, entry, &[("WG", WG as f64)])?;
        let dispatch = ctx.dispatch(
            &kernel,
            &[(0, &uniform), (binding, out)],
            ctx.grid(n.div_ceil(4) as u64, WG),
        )?;
        Ok(Self {
            params,
            uniform,
            dispatch,
        })
    }

    pub fn set_step(&mut self, ctx: &GpuContext, step: u64) {
        self.params.step_lo = step as u32;
        self.params.step_hi = (step >> 32) as u32;
        ctx.write_uniform(&self.uniform, &self.params);
    }
}
