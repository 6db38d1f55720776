//! Direct sampling from the flow: z ~ N(0, 1) on the device, x = g(z), ln q(x), ln pi(x).

use crate::flow::{Direction, Flow, FlowPass};
use crate::gpu::rng::RngStage;
use crate::gpu::{GpuContext, GpuError};
use crate::io::npy;
use crate::physics::target_stage::TargetStage;
use crate::physics::IsingTarget;

/// RNG stream of the latent draws for sampling (training uses others).
pub const SAMPLE_STREAM: u32 = 1;

/// A batch of samples with their log-densities, all f32 as computed on the device.
pub struct Samples {
    pub lattice: usize,
    pub batch: usize,
    /// [batch, L, L]
    pub x: Vec<f32>,
    pub ln_q: Vec<f32>,
    pub log_det: Vec<f32>,
    /// Unnormalised ln pi(x) of the target.
    pub ln_pi: Vec<f32>,
}

/// Draws `batch` samples with the latent stream (seed, SAMPLE_STREAM, step).
pub fn draw(
    ctx: &GpuContext,
    flow: &Flow,
    target: &IsingTarget,
    batch: usize,
    seed: u64,
    step: u64,
) -> Result<Samples, GpuError> {
    let n = flow.plan.config.n_sites();
    let state = ctx.storage::<f32>("samples", batch * n)?;
    let mut rng = RngStage::normals(ctx, &state, seed, SAMPLE_STREAM)?;
    rng.set_step(ctx, step);
    let pass = FlowPass::new(ctx, flow, &state, batch, Direction::Generate, None)?;
    let target_stage = TargetStage::new(ctx, target, &state, batch)?;
    let all: Vec<_> = std::iter::once(&rng.dispatch)
        .chain(pass.dispatches())
        .chain(target_stage.dispatches())
        .collect();
    ctx.submit("sample", &all)?;
    Ok(Samples {
        lattice: flow.plan.config.lattice,
        batch,
        x: ctx.read(&state)?,
        ln_q: ctx.read(&pass.ln_q)?,
        log_det: ctx.read(&pass.log_det)?,
        ln_pi: ctx.read(&target_stage.log_pi)?,
    })
}

/// Mean and standard error of a sample.
pub fn mean_stderr(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

impl Samples {
    /// Per-sample ln q(x) - ln pi(x): its mean is the variational free energy (eq. 5).
    pub fn free_energy_terms(&self) -> Vec<f64> {
        self.ln_q
            .iter()
            .zip(&self.ln_pi)
            .map(|(q, p)| *q as f64 - *p as f64)
            .collect()
    }

    /// The `.npz` archive: `x` [batch, L, L], `ln_q`, `log_det`, `ln_pi` [batch], all float32.
    pub fn to_npz(&self) -> Result<Vec<u8>, String> {
        let l = self.lattice;
        npy::npz(&[
            ("x", npy::npy_f32(&[self.batch, l, l], &self.x)),
            ("ln_q", npy::npy_f32(&[self.batch], &self.ln_q)),
            ("log_det", npy::npy_f32(&[self.batch], &self.log_det)),
            ("ln_pi", npy::npy_f32(&[self.batch], &self.ln_pi)),
        ])
    }
}
