//! Adam: its hyper-parameters and its device stage.

use crate::gpu::WG;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, Shader};

/// Where `grad_norm` leaves |grad|^2 in the training statistics (after the loss stage's four:
/// loss and objective, each with its standard error); `NORM_SLOT` in shaders/adam.wgsl.
pub(crate) const NORM_SLOT: usize = 4;

/// Adam hyper-parameters (decoupled weight decay, optional global-norm clipping; 0 = off).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub clip_grad: f64,
}

/// The product's defaults (`train`'s), the learning rate from [`crate::config::defaults`].
impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: crate::config::defaults::LR,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            clip_grad: 0.0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamUniform {
    n_params: u32,
    _pad: [u32; 3],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    clip: f32,
    bias1: f32,
    bias2: f32,
}

impl AdamUniform {
    /// The uniform of update `t` (1-based); bias corrections in f64 on the host.
    fn new(a: &AdamConfig, n_params: usize, t: u64) -> Self {
        Self {
            n_params: n_params as u32,
            _pad: [0; 3],
            lr: a.lr as f32,
            beta1: a.beta1 as f32,
            beta2: a.beta2 as f32,
            eps: a.eps as f32,
            weight_decay: a.weight_decay as f32,
            clip: a.clip_grad as f32,
            bias1: (1.0 - a.beta1.powf(t as f64)) as f32,
            bias2: (1.0 - a.beta2.powf(t as f64)) as f32,
        }
    }
}

/// The optimiser stage (`shaders/adam.wgsl`) over the flat parameter buffer: zeroing the
/// gradient, its fixed-order norm (into `stats[NORM_SLOT]`), and the update, which skips a non-finite
/// gradient.
pub struct AdamStage {
    pub config: AdamConfig,
    pub grad: GpuBuffer<f32>,
    pub m: GpuBuffer<f32>,
    pub v: GpuBuffer<f32>,
    pub zero_grad: Dispatch,
    pub grad_norm: Dispatch,
    pub update: Dispatch,
    n_params: usize,
    uniform: wgpu::Buffer,
}

impl AdamStage {
    pub fn new(
        ctx: &GpuContext,
        config: AdamConfig,
        params: &GpuBuffer<f32>,
        stats: &GpuBuffer<f32>,
    ) -> Result<Self, GpuError> {
        let n_params = params.len;
        // grad_norm: one workgroup strides over every parameter, then a tree reduction.
        let loops = (n_params as u64).div_ceil(WG as u64) + WG.ilog2() as u64;
        ctx.check_loops(
            "adam::grad_norm",
            loops,
            "use a smaller flow (--hidden, --couplings, --depth)",
        )?;
        let grad = ctx.storage::<f32>("grad", n_params)?;
        let m = ctx.storage::<f32>("adam m", n_params)?;
        let v = ctx.storage::<f32>("adam v", n_params)?;
        let uniform = ctx.uniform("adam", &AdamUniform::new(&config, n_params, 1))?;
        let k = |entry| ctx.kernel(Shader::Adam, entry, &[("WG", WG as f64)]);
        let params_grid = ctx.grid(n_params as u64, WG);
        Ok(Self {
            zero_grad: ctx.dispatch(
                &k("zero_grad")?,
                &[(0, &uniform), (1, &grad.buffer)],
                params_grid,
            )?,
            grad_norm: ctx.dispatch(
                &k("grad_norm")?,
                &[(0, &uniform), (1, &grad.buffer), (5, &stats.buffer)],
                [1, 1, 1],
            )?,
            update: ctx.dispatch(
                &k("adam")?,
                &[
                    (0, &uniform),
                    (1, &grad.buffer),
                    (2, &params.buffer),
                    (3, &m.buffer),
                    (4, &v.buffer),
                    (5, &stats.buffer),
                ],
                params_grid,
            )?,
            config,
            grad,
            m,
            v,
            n_params,
            uniform,
        })
    }

    /// Prepares update `t` (1-based) for the next submission.
    pub fn set_update(&self, ctx: &GpuContext, t: u64) {
        ctx.write_uniform(
            &self.uniform,
            &AdamUniform::new(&self.config, self.n_params, t),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::gpu::Shader;

    #[test]
    fn the_norm_slot_matches_the_shader() {
        assert_eq!(
            Shader::Adam.constant("NORM_SLOT"),
            Some(super::NORM_SLOT as u32)
        );
    }
}
